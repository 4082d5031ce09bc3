//! Next run of a CronJob schedule, as Kubernetes reads it.
//!
//! Kubernetes takes the standard 5-field syntax plus `@hourly`-style macros and
//! evaluates it in `spec.timeZone` (default: the controller manager's zone, which
//! is UTC on every managed cluster we know of). croner parses the same syntax
//! (with Vixie-cron's "day-of-month OR day-of-week" rule, as robfig/cron does).

use chrono::{DateTime, Duration, FixedOffset, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("unparsable schedule `{schedule}`: {why}")]
    Unparsable { schedule: String, why: String },
    #[error("unknown time zone `{0}`")]
    UnknownTimeZone(String),
    #[error("the schedule never runs (no such date)")]
    NoNextRun,
}

/// A parsed CronJob schedule in its time zone.
///
/// Times are found the way Kubernetes (robfig/cron v3) finds them: a run is
/// every instant whose wall-clock time in the zone matches the pattern. croner
/// alone works on wall-clock (naive) times and differs at DST changes: in a
/// spring-forward gap it moves a run to the first valid time after the gap
/// (`30 2 * * *` in Europe/Berlin runs at 03:00 CEST), and in a fall-back
/// overlap it takes only the first of the two instants (an hourly schedule skips
/// the repeated 02:00). robfig/cron skips the run that falls into the gap
/// ("2am nightly job (skipped)" in its spec tests) and runs twice in the overlap
/// ("1am nightly job (runs twice)"). [`Schedule::next_after`] gives robfig's
/// answer: it runs croner in the zone's fixed UTC offset of each stretch between
/// two transitions, so croner never sees a gap or an overlap.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

/// Transitions of real time zones are months apart; a search window shorter
/// than that crosses at most one.
const WINDOW: Duration = Duration::days(7);
/// Bounds [`Schedule::next_after`] (~11 years of windows).
const MAX_WINDOWS: usize = 600;

impl Schedule {
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Self, ScheduleError> {
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
        let tz: Tz = match time_zone.map(str::trim) {
            None | Some("") => Tz::UTC,
            Some(name) => name
                .parse()
                .map_err(|_| ScheduleError::UnknownTimeZone(name.to_string()))?,
        };
        // `0 0 30 2 *` parses but never runs; croner would search to year
        // 5000 on every call. Any real pattern matches within 8 years of 2000.
        let probe = DateTime::from_timestamp(946_684_800, 0).unwrap_or_default();
        match cron.find_next_occurrence(&probe, false) {
            Ok(t) if t < probe + Duration::days(9 * 366) => Ok(Schedule { cron, tz }),
            _ => Err(ScheduleError::NoNextRun),
        }
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    fn offset_at(&self, t: DateTime<Utc>) -> FixedOffset {
        self.tz.offset_from_utc_datetime(&t.naive_utc()).fix()
    }

    /// croner's next match after `from` in the fixed offset `off`.
    fn next_in(&self, from: DateTime<Utc>, off: FixedOffset) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&from.with_timezone(&off), false)
            .ok()
            .map(|c| c.with_timezone(&Utc))
    }

    /// The first scheduled time strictly after `t`; `None` past year 5000.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let second = Duration::seconds(1);
        let mut from = t;
        // `off` applies from `known` on; `found` is the next match in `off`.
        let mut known = from + second;
        let mut off = self.offset_at(known);
        let mut found = self.next_in(from, off)?;
        for _ in 0..MAX_WINDOWS {
            let end = found.min(from + WINDOW);
            if self.offset_at(end) == off {
                if found <= end {
                    return Some(found);
                }
                // No transition up to `end`: `found` is still the next match.
                from = end;
                known = end;
                continue;
            }
            // A transition in (known, end]: find its first second.
            let (mut lo, mut hi) = (known, end);
            while hi - lo > second {
                let mid = lo + (hi - lo) / 2;
                if self.offset_at(mid) == off {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            if found < hi {
                return Some(found);
            }
            // Go on in the new offset, from the transition itself.
            from = hi - second;
            known = hi;
            off = self.offset_at(hi);
            found = self.next_in(from, off)?;
        }
        None
    }
}

/// The first run strictly after `now`.
pub fn next_run(
    schedule: &str,
    time_zone: Option<&str>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ScheduleError> {
    Schedule::parse(schedule, time_zone)?
        .next_after(now)
        .ok_or(ScheduleError::NoNextRun)
}

#[cfg(test)]
mod tests {
    use super::*;

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
