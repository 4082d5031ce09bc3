//! Next run of a CronJob schedule, as Kubernetes reads it.
//!
//! Kubernetes takes the standard 5-field syntax plus `@hourly`-style macros and
//! evaluates it in `spec.timeZone` (default: the controller manager's zone, which
//! is UTC on every managed cluster we know of). croner parses the same syntax
//! (with Vixie-cron's "day-of-month OR day-of-week" rule, as robfig/cron does).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("unparsable schedule `{schedule}`: {why}")]
    Unparsable { schedule: String, why: String },
    #[error("unknown time zone `{0}`")]
    UnknownTimeZone(String),
    #[error("no next run found")]
    NoNextRun,
}

/// The first run strictly after `now`.
pub fn next_run(
    schedule: &str,
    time_zone: Option<&str>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ScheduleError> {
    let schedule = schedule.trim();
    let unparsable = |why: String| ScheduleError::Unparsable {
        schedule: schedule.to_string(),
        why,
    };
    if schedule.starts_with("@every") {
        // robfig/cron's interval form depends on the last run, which we do not track.
        return Err(unparsable(
            "`@every` intervals have no fixed next run".into(),
        ));
    }
    // Kubernetes rejects seconds; a 6-field pattern is a user error, not a seconds field.
    if !schedule.starts_with('@') && schedule.split_whitespace().count() != 5 {
        return Err(unparsable(
            "expected 5 fields (minute hour day month weekday)".into(),
        ));
    }
    let cron = Cron::new(schedule)
        .parse()
        .map_err(|e| unparsable(e.to_string()))?;
    let tz: Tz = match time_zone {
        None | Some("") => Tz::UTC,
        Some(name) => name
            .parse()
            .map_err(|_| ScheduleError::UnknownTimeZone(name.to_string()))?,
    };
    let local = now.with_timezone(&tz);
    cron.find_next_occurrence(&local, false)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ScheduleError::NoNextRun)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn table() {
        let now = at("2026-11-23T10:15:30Z");
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("0 3 * * *", None, "2026-11-24T03:00:00Z"),
            ("*/5 * * * *", None, "2026-11-23T10:20:00Z"),
            ("@hourly", None, "2026-11-23T11:00:00Z"),
            ("@daily", None, "2026-11-24T00:00:00Z"),
            ("@weekly", None, "2026-11-29T00:00:00Z"),
            ("0 3 * * *", Some("Europe/Berlin"), "2026-11-24T02:00:00Z"),
            (
                "30 9 * * 1-5",
                Some("America/New_York"),
                "2026-11-23T14:30:00Z",
            ),
            ("0 0 1 1 *", Some(""), "2027-01-01T00:00:00Z"),
        ];
        for (schedule, tz, want) in cases {
            assert_eq!(
                next_run(schedule, *tz, now).unwrap(),
                at(want),
                "{schedule} in {tz:?}"
            );
        }
    }

    #[test]
    fn errors() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert!(matches!(
            next_run("not a cron", None, now),
            Err(ScheduleError::Unparsable { .. })
        ));
        assert!(matches!(
            next_run("0 0 3 * * *", None, now),
            Err(ScheduleError::Unparsable { .. })
        ));
        assert!(matches!(
            next_run("61 * * * *", None, now),
            Err(ScheduleError::Unparsable { .. })
        ));
        assert_eq!(
            next_run("0 3 * * *", Some("Mars/Olympus"), now),
            Err(ScheduleError::UnknownTimeZone("Mars/Olympus".into()))
        );
        assert!(next_run("@every 1h", None, now).is_err());
    }
}
