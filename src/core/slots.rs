//! Schedule health: when a CronJob's runs are due, which run a Job is, whether
//! a due run was missed (and the likely reason), and when a run takes too long.
//!
//! Pure functions: the clock comes in as an argument. Times are found as
//! Kubernetes finds them ([`Schedule::next_after`], robfig/cron semantics also
//! at DST changes). Every loop here is bounded: counting stops past
//! [`MAX_MISSED`], and searches give up after about ten years of calendar.
//!
//! Kubernetes facts used here (checked against kubernetes/kubernetes
//! `pkg/controller/cronjob/utils.go`):
//! - the controller names a scheduled Job `<cronjob>-<scheduledTime.Unix()/60>`
//!   (`getJobName`, `getTimeHashInMinutes`) and, since 1.32 (feature
//!   `CronJobsScheduledAnnotation`), annotates it with
//!   `batch.kubernetes.io/cronjob-scheduled-timestamp`: the scheduled time in
//!   the CronJob's zone, RFC 3339 (`scheduledTime.In(tz).Format(time.RFC3339)`);
//! - `mostRecentScheduleTime` counts the slots from `lastScheduleTime` (or the
//!   creation time), or from `now - startingDeadlineSeconds` when that is later;
//!   more than 100 makes it record a `TooManyMissedTimes` warning event ("Set or
//!   decrease .spec.startingDeadlineSeconds or check clock skew"). The
//!   controller before 1.21 stopped scheduling the CronJob altogether then
//!   (kubernetes #42649); today's still starts only the most recent slot.
//!   Either way the runs in between never happened, and the fix is the same.
//! - a slot older than `now - startingDeadlineSeconds` is never started.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub use super::schedule::{Schedule, ScheduleError};

/// Kubernetes' limit: more missed slots than this and it warns (and, before
/// 1.21, gave up).
pub const MAX_MISSED: usize = 100;
/// `batch.kubernetes.io/cronjob-scheduled-timestamp` (Kubernetes 1.32+).
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// `rerun-bot.io/missed-after`: how long after a due time a missing Job is a miss.
pub const MISSED_AFTER_ANNOTATION: &str = "rerun-bot.io/missed-after";
/// `rerun-bot.io/max-duration`: a run longer than this is alerted.
pub const MAX_DURATION_ANNOTATION: &str = "rerun-bot.io/max-duration";
/// Grace when neither the annotation nor `startingDeadlineSeconds` says more.
pub const DEFAULT_GRACE: Duration = Duration::minutes(5);
/// Durations from an annotation must be more than zero and at most this.
pub const MAX_SETTING: Duration = Duration::days(366);
/// The overrun rule needs this many successful runs to know what is usual.
pub const MIN_DURATIONS: usize = 3;
/// The overrun rule looks at this many of the latest successful runs.
pub const RECENT_DURATIONS: usize = 10;

/// A value read from an annotation, with what was wrong with the annotation
/// (for the log and `/cronjobs <name>`) when a fallback had to be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked<T> {
    pub value: T,
    pub warning: Option<String>,
}

/// The scheduled times in an interval, counted up to one past [`MAX_MISSED`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DueSlots {
    /// The earliest slots of the interval, at most [`MAX_MISSED`], in order.
    pub slots: Vec<DateTime<Utc>>,
    /// More than [`MAX_MISSED`] slots fall in the interval (counting stopped).
    pub more: bool,
}

impl DueSlots {
    /// "3", or "more than 100".
    pub fn count_text(&self) -> String {
        if self.more {
            format!("more than {MAX_MISSED}")
        } else {
            self.slots.len().to_string()
        }
    }
}

/// The scheduled times `t` with `after < t <= until`. An interval that ends
/// before it starts (a clock that jumped backwards) has none.
pub fn due_slots(schedule: &Schedule, after: DateTime<Utc>, until: DateTime<Utc>) -> DueSlots {
    let mut due = DueSlots::default();
    let mut t = after;
    while let Some(next) = schedule.next_after(t).filter(|n| *n <= until) {
        if due.slots.len() == MAX_MISSED {
            due.more = true;
            break;
        }
        due.slots.push(next);
        t = next;
    }
    due
}

/// How far back [`last_due`] looks (about eight years, in minutes: 2^22).
const LAST_DUE_HORIZON_MINUTES: i64 = 1 << 22;

/// The latest scheduled time at or before `now`; `None` if there is none
/// within about eight years. Bounded: windows doubling backwards, then a
/// bisection (some 60 schedule steps in all, whatever the schedule).
pub fn last_due(schedule: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut minutes = 1;
    let first = loop {
        let start = now - Duration::minutes(minutes);
        if let Some(t) = schedule.next_after(start).filter(|t| *t <= now) {
            break t;
        }
        if minutes >= LAST_DUE_HORIZON_MINUTES {
            return None;
        }
        minutes *= 2;
    };
    // `lo` is a slot <= now; no slot lies in (hi, now].
    let (mut lo, mut hi) = (first, now);
    loop {
        match schedule.next_after(lo) {
            Some(n) if n <= hi => {
                if n == hi {
                    return Some(n);
                }
                let mid = n + (hi - n) / 2;
                match schedule.next_after(mid) {
                    Some(m) if m <= hi => lo = m,
                    _ => {
                        lo = n;
                        hi = mid;
                    }
                }
            }
            _ => return Some(lo),
        }
    }
}

/// A duration annotation: humantime (`90s`, `1h 30m`), more than zero, at most
/// [`MAX_SETTING`].
fn duration_annotation(name: &str, value: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("ignoring {name}: `{}` {why}", value.trim());
    let parsed = humantime::parse_duration(value.trim())
        .map_err(|_| bad("is not a duration (like 90s, 20m or 1h 30m)"))?;
    let d = Duration::from_std(parsed).map_err(|_| bad("is too long"))?;
    if d <= Duration::zero() {
        return Err(bad("is not more than zero"));
    }
    if d > MAX_SETTING {
        return Err(bad("is longer than 366 days"));
    }
    Ok(d)
}

/// How long after a due time a missing Job counts as missed: the
/// `rerun-bot.io/missed-after` annotation if valid, else the larger of
/// `startingDeadlineSeconds` and [`DEFAULT_GRACE`]. An invalid annotation
/// (`-3`, `never`, empty) gives the default and a warning.
pub fn grace(
    missed_after: Option<&str>,
    starting_deadline_seconds: Option<i64>,
) -> Checked<Duration> {
    let default = starting_deadline_seconds
        .filter(|s| *s > 0)
        .map(|s| Duration::seconds(s.min(MAX_SETTING.num_seconds())))
        .map_or(DEFAULT_GRACE, |d| d.max(DEFAULT_GRACE));
    match missed_after.map(|v| duration_annotation(MISSED_AFTER_ANNOTATION, v)) {
        Some(Ok(d)) => Checked {
            value: d,
            warning: None,
        },
        Some(Err(warning)) => Checked {
            value: default,
            warning: Some(format!(
                "{warning}; using {}",
                humantime::format_duration(default.to_std().unwrap_or_default())
            )),
        },
        None => Checked {
            value: default,
            warning: None,
        },
    }
}

/// The scheduled time a Job of `cronjob` was created for: the
/// `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation (RFC 3339,
/// Kubernetes 1.32+), else the `<cronjob>-<unix minutes>` name. Manual Jobs
/// (`cronjob.kubernetes.io/instantiate: manual`: `kubectl create job --from`,
/// the bot's reruns `<cronjob>-rerun-<id>`) belong to no slot.
///
/// The name suffix must be 8 digits (the minutes from 1989 to 2160), so a
/// hand-made `report-2024` is not mistaken for a run of 1970.
pub fn job_slot(
    cronjob: &str,
    job_name: &str,
    scheduled_timestamp: Option<&str>,
    manual: bool,
) -> Option<DateTime<Utc>> {
    if manual {
        return None;
    }
    if let Some(t) = scheduled_timestamp
        .and_then(|v| DateTime::parse_from_rfc3339(v.trim()).ok())
        .map(|t| t.with_timezone(&Utc))
    {
        return Some(t);
    }
    let suffix = job_name.strip_prefix(cronjob)?.strip_prefix('-')?;
    if suffix.len() != 8 || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let minutes: i64 = suffix.parse().ok()?;
    DateTime::from_timestamp(minutes.checked_mul(60)?, 0)
}

/// What the bot knows about a CronJob when it judges a missed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronJobTiming<'a> {
    pub schedule: &'a str,
    pub time_zone: Option<&'a str>,
    pub suspended: bool,
    pub starting_deadline_seconds: Option<i64>,
    /// `Allow` (default), `Forbid`, `Replace`.
    pub concurrency_policy: &'a str,
    /// A running Job of the CronJob, if any (its name).
    pub running_job: Option<&'a str>,
    /// `status.lastScheduleTime`: the last slot the controller created a Job for.
    pub last_schedule_time: Option<DateTime<Utc>>,
}

/// What the bot has seen, and when it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissedCheck<'a> {
    /// Slots a Job was seen for (from [`job_slot`]), plus slots already
    /// alerted (so none is alerted twice, across restarts too). Any order.
    pub seen: &'a [DateTime<Utc>],
    pub bot_started: DateTime<Utc>,
    /// `RERUN_BOT_LOOKBACK`: slots this long before the start are judged too;
    /// also the length of the window judged on each look.
    pub lookback: Duration,
    /// From [`grace`].
    pub grace: Duration,
    pub now: DateTime<Utc>,
}

/// Why a due run did not start, as far as the bot can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MissReason {
    /// `concurrencyPolicy: Forbid` and this Job of the CronJob still runs.
    StillRunning {
        job: String,
    },
    /// Older than `startingDeadlineSeconds`: the controller will not start it.
    TooLate {
        starting_deadline_seconds: i64,
    },
    /// More than 100 slots since `lastScheduleTime` and no
    /// `startingDeadlineSeconds`: Kubernetes warns `TooManyMissedTimes` (and
    /// before 1.21 stopped scheduling). Fix: set `startingDeadlineSeconds`.
    TooManyMissed {
        since: DateTime<Utc>,
    },
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missed {
    pub slot: DateTime<Utc>,
    pub reason: MissReason,
}

/// Whether a due run of the CronJob was missed: the latest slot of the window
/// `(max(bot_started, now - grace) - lookback, now - grace]` with no Job seen.
///
/// - Suspended: no verdict (a suspended CronJob is meant not to run).
/// - Slots before `bot_started - lookback`: never judged (nobody watched).
/// - A slot the controller reports scheduling (`lastScheduleTime`) is not
///   missed; an older slot from before the bot started is not judged either:
///   its Job may have been deleted by the history limits while nobody watched.
/// - With more than [`MAX_MISSED`] slots in the window only the latest is
///   judged, so every look costs at most some hundred schedule steps.
/// - A clock that jumped backwards (`now` before the start) judges nothing.
pub fn missed_run(
    cj: &CronJobTiming<'_>,
    check: &MissedCheck<'_>,
) -> Result<Option<Missed>, ScheduleError> {
    if cj.suspended {
        return Ok(None);
    }
    let schedule = Schedule::parse(cj.schedule, cj.time_zone)?;
    let cutoff = check.now - check.grace.max(Duration::zero());
    let lookback = check.lookback.max(Duration::zero());
    let lower = (check.bot_started - lookback).max(cutoff - lookback);
    if cutoff <= lower || check.now < check.bot_started {
        return Ok(None);
    }
    let due = due_slots(&schedule, lower, cutoff);
    let candidates = if due.more {
        last_due(&schedule, cutoff).into_iter().collect()
    } else {
        due.slots
    };
    let judged = |slot: &DateTime<Utc>| {
        if check.seen.contains(slot) || cj.last_schedule_time == Some(*slot) {
            return false;
        }
        let handled_by_controller = cj.last_schedule_time.is_some_and(|last| *slot < last);
        !(handled_by_controller && *slot < check.bot_started)
    };
    let Some(slot) = candidates.into_iter().rev().find(judged) else {
        return Ok(None);
    };
    let reason = if let (true, Some(job)) = (
        cj.concurrency_policy.eq_ignore_ascii_case("Forbid"),
        cj.running_job,
    ) {
        MissReason::StillRunning {
            job: job.to_string(),
        }
    } else if let Some(d) = cj
        .starting_deadline_seconds
        .filter(|d| *d >= 0 && check.now > slot + Duration::seconds(*d))
    {
        MissReason::TooLate {
            starting_deadline_seconds: d,
        }
    } else if let (None, Some(since)) = (cj.starting_deadline_seconds, cj.last_schedule_time) {
        if due_slots(&schedule, since, check.now).more {
            MissReason::TooManyMissed { since }
        } else {
            MissReason::Unknown
        }
    } else {
        MissReason::Unknown
    };
    Ok(Some(Missed { slot, reason }))
}

/// When a running Job counts as running too long, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrunSource {
    /// `rerun-bot.io/max-duration`.
    Annotation,
    /// 3× the median of recent successful runs (at least median + 10 min).
    Median { median: Duration, runs: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overrun {
    pub threshold: Duration,
    pub source: OverrunSource,
}

/// The overrun threshold: the `rerun-bot.io/max-duration` annotation if
/// valid, else 3× the median of the last (up to) [`RECENT_DURATIONS`]
/// successful run durations (`successes` oldest first), but at least
/// median + 10 min; `None` with fewer than [`MIN_DURATIONS`] of them. An
/// invalid annotation gives the fallback and a warning. Negative durations
/// (clock skew) are ignored.
pub fn overrun_threshold(
    max_duration: Option<&str>,
    successes: &[Duration],
) -> Checked<Option<Overrun>> {
    let warning = match max_duration.map(|v| duration_annotation(MAX_DURATION_ANNOTATION, v)) {
        Some(Ok(d)) => {
            return Checked {
                value: Some(Overrun {
                    threshold: d,
                    source: OverrunSource::Annotation,
                }),
                warning: None,
            };
        }
        Some(Err(w)) => Some(w),
        None => None,
    };
    let mut recent: Vec<Duration> = successes
        .iter()
        .rev()
        .filter(|d| **d >= Duration::zero())
        .take(RECENT_DURATIONS)
        .copied()
        .collect();
    let value = (recent.len() >= MIN_DURATIONS).then(|| {
        recent.sort();
        let n = recent.len();
        let median = if n % 2 == 1 {
            recent[n / 2]
        } else {
            (recent[n / 2 - 1] + recent[n / 2]) / 2
        };
        Overrun {
            threshold: (median * 3).max(median + Duration::minutes(10)),
            source: OverrunSource::Median { median, runs: n },
        }
    });
    let warning = warning.map(|w| match &value {
        Some(o) => format!(
            "{w}; using {} from recent runs",
            humantime::format_duration(to_std(o.threshold))
        ),
        None => format!("{w}; too few successful runs to judge overruns"),
    });
    Checked { value, warning }
}

/// The slots of a CronJob a "did not start" alert was raised for (stored per
/// CronJob, so no slot is alerted twice, across restarts too).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertedSlots {
    pub slots: Vec<DateTime<Utc>>,
}

impl AlertedSlots {
    /// At most this many are kept (the newest): far more than one look judges.
    pub const KEPT: usize = 200;

    /// Adds `slot`; `false` if it was there already.
    pub fn add(&mut self, slot: DateTime<Utc>) -> bool {
        if self.slots.contains(&slot) {
            return false;
        }
        self.slots.push(slot);
        self.slots.sort();
        let extra = self.slots.len().saturating_sub(Self::KEPT);
        self.slots.drain(..extra);
        true
    }
}

/// A running Job alerted as running too long: what its end updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LongRun {
    pub namespace: String,
    pub cronjob: String,
    pub job: String,
    /// The alert's key (`overrun/<job uid>`, before the platform prefix).
    pub alert: String,
    pub started_at: DateTime<Utc>,
    pub alerted_at: DateTime<Utc>,
}

/// A duration as people read it on an alert: `2h 10m`, `35m`, `50s`.
pub fn short_duration(d: Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

fn to_std(d: Duration) -> StdDuration {
    d.to_std().unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // the case tables
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sched(s: &str, tz: Option<&str>) -> Schedule {
        Schedule::parse(s, tz).unwrap()
    }

    fn utc(ts: &[DateTime<Utc>]) -> Vec<String> {
        ts.iter()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .collect()
    }

    #[test]
    fn next_after_table_dst_macros_and_or_rule() {
        // (schedule, zone, after, want): robfig/cron's answers.
        let cases: &[(&str, Option<&str>, &str, &str)] = &[
            // Europe/Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST
            // (01:00 UTC): 02:30 does not exist that day; Kubernetes skips it.
            (
                "30 2 * * *",
                Some("Europe/Berlin"),
                "2026-03-28T12:00:00Z",
                "2026-03-30T00:30:00Z",
            ),
            (
                "30 2 * * *",
                Some("Europe/Berlin"),
                "2026-03-27T12:00:00Z",
                "2026-03-28T01:30:00Z",
            ),
            // Hourly across the gap: 01:00 CET, then 03:00 CEST.
            (
                "0 * * * *",
                Some("Europe/Berlin"),
                "2026-03-29T00:00:00Z",
                "2026-03-29T01:00:00Z",
            ),
            // Falls back 2026-10-25 03:00 CEST -> 02:00 CET (01:00 UTC): 02:30 runs twice.
            (
                "30 2 * * *",
                Some("Europe/Berlin"),
                "2026-10-24T12:00:00Z",
                "2026-10-25T00:30:00Z",
            ),
            (
                "30 2 * * *",
                Some("Europe/Berlin"),
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:30:00Z",
            ),
            (
                "30 2 * * *",
                Some("Europe/Berlin"),
                "2026-10-25T01:30:00Z",
                "2026-10-26T01:30:00Z",
            ),
            // Hourly: 02:00 CEST and 02:00 CET are both runs.
            (
                "0 * * * *",
                Some("Europe/Berlin"),
                "2026-10-25T00:00:00Z",
                "2026-10-25T01:00:00Z",
            ),
            (
                "@hourly",
                None,
                "2026-11-23T10:15:30Z",
                "2026-11-23T11:00:00Z",
            ),
            (
                "@weekly",
                None,
                "2026-11-23T10:15:30Z",
                "2026-11-29T00:00:00Z",
            ),
            (
                "@weekly",
                Some("Europe/Berlin"),
                "2026-11-23T10:15:30Z",
                "2026-11-28T23:00:00Z",
            ),
            // Day of month and day of week both set: either matches (the 13th OR a Friday).
            (
                "0 9 13 * 5",
                None,
                "2026-11-10T00:00:00Z",
                "2026-11-13T09:00:00Z",
            ),
            (
                "0 9 13 * 5",
                None,
                "2026-11-13T09:00:00Z",
                "2026-11-20T09:00:00Z",
            ),
            (
                "0 9 13 * 5",
                None,
                "2026-12-05T00:00:00Z",
                "2026-12-11T09:00:00Z",
            ),
            (
                "0 9 13 * 5",
                None,
                "2026-12-11T09:00:00Z",
                "2026-12-13T09:00:00Z",
            ),
            // Leap day: four years on.
            (
                "0 0 29 2 *",
                None,
                "2024-03-01T00:00:00Z",
                "2028-02-29T00:00:00Z",
            ),
        ];
        for (s, tz, after, want) in cases {
            assert_eq!(
                sched(s, *tz).next_after(at(after)),
                Some(at(want)),
                "{s} in {tz:?} after {after}"
            );
        }
        assert_eq!(
            Schedule::parse("0 0 30 2 *", None).unwrap_err(),
            ScheduleError::NoNextRun
        );
    }

    #[test]
    fn due_slots_counts_to_101_and_survives_backward_clocks() {
        let s = sched("*/5 * * * *", None);
        let due = due_slots(&s, at("2026-11-23T10:00:00Z"), at("2026-11-23T10:20:00Z"));
        assert_eq!(
            utc(&due.slots),
            [
                "2026-11-23T10:05:00Z",
                "2026-11-23T10:10:00Z",
                "2026-11-23T10:15:00Z",
                "2026-11-23T10:20:00Z"
            ]
        );
        assert_eq!(due.count_text(), "4");
        let many = due_slots(&s, at("2026-11-23T00:00:00Z"), at("2026-11-25T00:00:00Z"));
        assert!(many.more);
        assert_eq!(many.slots.len(), MAX_MISSED);
        assert_eq!(many.count_text(), "more than 100");
        // Exactly 100 is not "more".
        let hundred = due_slots(&s, at("2026-11-23T00:00:00Z"), at("2026-11-23T08:20:00Z"));
        assert_eq!((hundred.slots.len(), hundred.more), (100, false));
        // until before after: a clock that jumped backwards.
        assert_eq!(
            due_slots(&s, at("2026-11-23T10:00:00Z"), at("2026-11-23T09:00:00Z")),
            DueSlots::default()
        );
        // DST: the spring-forward day has no 02:30 in Berlin, fall-back has two.
        let b = sched("30 2 * * *", Some("Europe/Berlin"));
        assert_eq!(
            due_slots(&b, at("2026-03-28T12:00:00Z"), at("2026-03-29T23:00:00Z"))
                .slots
                .len(),
            0
        );
        assert_eq!(
            due_slots(&b, at("2026-10-24T12:00:00Z"), at("2026-10-25T23:00:00Z"))
                .slots
                .len(),
            2
        );
    }

    #[test]
    fn last_due_table() {
        let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            (
                "*/5 * * * *",
                None,
                "2026-11-23T10:17:00Z",
                Some("2026-11-23T10:15:00Z"),
            ),
            (
                "*/5 * * * *",
                None,
                "2026-11-23T10:15:00Z",
                Some("2026-11-23T10:15:00Z"),
            ),
            (
                "* * * * *",
                None,
                "2026-11-23T10:15:30Z",
                Some("2026-11-23T10:15:00Z"),
            ),
            (
                "@weekly",
                None,
                "2026-11-23T10:15:30Z",
                Some("2026-11-22T00:00:00Z"),
            ),
            (
                "* 3 * * *",
                None,
                "2026-11-23T10:00:00Z",
                Some("2026-11-23T03:59:00Z"),
            ),
            (
                "* * 1 * *",
                None,
                "2026-11-23T10:00:00Z",
                Some("2026-11-01T23:59:00Z"),
            ),
            (
                "0 0 29 2 *",
                None,
                "2027-06-01T00:00:00Z",
                Some("2024-02-29T00:00:00Z"),
            ),
            (
                "30 2 * * *",
                Some("Europe/Berlin"),
                "2026-03-29T12:00:00Z",
                Some("2026-03-28T01:30:00Z"),
            ),
            (
                "30 2 * * *",
                Some("Europe/Berlin"),
                "2026-10-25T02:00:00Z",
                Some("2026-10-25T01:30:00Z"),
            ),
            (
                "0 0 1 1 *",
                None,
                "1970-06-01T00:00:00Z",
                Some("1970-01-01T00:00:00Z"),
            ),
        ];
        for (s, tz, now, want) in cases {
            assert_eq!(
                last_due(&sched(s, *tz), at(now)),
                want.map(at),
                "{s} in {tz:?} at {now}"
            );
        }
    }

    #[test]
    fn bad_schedules_are_errors_not_panics() {
        for s in [
            "@every 1h",
            "not a cron",
            "",
            "0 0 3 * * *",
            "61 * * * *",
            "TZ=UTC 0 3 * * *",
        ] {
            assert!(
                matches!(
                    Schedule::parse(s, None),
                    Err(ScheduleError::Unparsable { .. })
                ),
                "{s:?}"
            );
        }
        assert_eq!(
            Schedule::parse("0 3 * * *", Some("Mars/Olympus")).unwrap_err(),
            ScheduleError::UnknownTimeZone("Mars/Olympus".into())
        );
        let cj = CronJobTiming {
            schedule: "@every 5m",
            ..timing()
        };
        assert!(
            missed_run(
                &cj,
                &check(&[], "2026-11-23T10:00:00Z", "2026-11-23T12:00:00Z")
            )
            .is_err()
        );
    }

    #[test]
    fn grace_table() {
        let m = Duration::minutes;
        let cases: &[(Option<&str>, Option<i64>, Duration, bool)] = &[
            (None, None, m(5), false),
            (None, Some(60), m(5), false),
            (None, Some(3600), m(60), false),
            (None, Some(-5), m(5), false),
            (Some("90s"), Some(3600), Duration::seconds(90), false),
            (Some("1h 30m"), None, m(90), false),
            (Some("-3"), None, m(5), true),
            (Some("never"), Some(1200), m(20), true),
            (Some(""), None, m(5), true),
            (Some("0s"), None, m(5), true),
            (Some("1000y"), None, m(5), true),
            (Some("99999999999999999999y"), None, m(5), true),
        ];
        for (annotation, deadline, want, warns) in cases {
            let g = grace(*annotation, *deadline);
            assert_eq!(g.value, *want, "{annotation:?} {deadline:?}");
            assert_eq!(
                g.warning.is_some(),
                *warns,
                "{annotation:?}: {:?}",
                g.warning
            );
        }
        let w = grace(Some("never"), None).warning.unwrap();
        assert!(
            w.contains("rerun-bot.io/missed-after") && w.contains("`never`") && w.contains("5m"),
            "{w}"
        );
    }

    #[test]
    fn job_slot_table() {
        // 2026-11-23T10:00:00Z = 1795428000 s = 29923800 min.
        let slot = Some(at("2026-11-23T10:00:00Z"));
        let cases: &[(&str, Option<&str>, bool, Option<DateTime<Utc>>)] = &[
            ("billing-sync-29923800", None, false, slot),
            // The annotation wins; it is in the CronJob's zone.
            (
                "billing-sync-29923800",
                Some("2026-11-23T11:00:00+01:00"),
                false,
                slot,
            ),
            ("billing-sync-1", Some("2026-11-23T10:00:00Z"), false, slot),
            // A broken annotation falls back to the name.
            ("billing-sync-29923800", Some("yesterday"), false, slot),
            ("billing-sync-rerun-abc123", None, true, None),
            ("billing-sync-rerun-abc123", None, false, None),
            ("billing-sync-29923800", None, true, None),
            ("billing-sync-2024", None, false, None),
            ("billing-sync-manual-x", None, false, None),
            ("billing-sync", None, false, None),
            ("other-29923800", None, false, None),
            ("billing-sync-+2992380", None, false, None),
        ];
        for (name, annotation, manual, want) in cases {
            assert_eq!(
                job_slot("billing-sync", name, *annotation, *manual),
                *want,
                "{name} {annotation:?}"
            );
        }
        // A CronJob whose name ends in digits: `nightly-2` and its Job `nightly-2-29923800`.
        assert_eq!(
            job_slot("nightly-2", "nightly-2-29923800", None, false),
            slot
        );
    }

    fn timing() -> CronJobTiming<'static> {
        CronJobTiming {
            schedule: "0 * * * *",
            time_zone: None,
            suspended: false,
            starting_deadline_seconds: None,
            concurrency_policy: "Allow",
            running_job: None,
            last_schedule_time: None,
        }
    }

    fn check<'a>(seen: &'a [DateTime<Utc>], started: &str, now: &str) -> MissedCheck<'a> {
        MissedCheck {
            seen,
            bot_started: at(started),
            lookback: Duration::hours(1),
            grace: Duration::minutes(5),
            now: at(now),
        }
    }

    #[test]
    fn missed_run_table() {
        let ten = at("2026-11-23T10:00:00Z");
        let nine = at("2026-11-23T09:00:00Z");
        let started = "2026-11-23T08:00:00Z";
        let missed = |reason| Some(Missed { slot: ten, reason });
        let forbid = CronJobTiming {
            concurrency_policy: "Forbid",
            running_job: Some("billing-sync-29923740"),
            ..timing()
        };
        let cases: Vec<(
            &str,
            CronJobTiming,
            Vec<DateTime<Utc>>,
            &str,
            &str,
            Option<Missed>,
        )> = vec![
            (
                "inside the grace",
                timing(),
                vec![nine],
                started,
                "2026-11-23T10:04:00Z",
                None,
            ),
            (
                "seen",
                timing(),
                vec![nine, ten],
                started,
                "2026-11-23T10:06:00Z",
                None,
            ),
            (
                "unknown",
                timing(),
                vec![nine],
                started,
                "2026-11-23T10:06:00Z",
                missed(MissReason::Unknown),
            ),
            (
                "the latest unseen slot",
                timing(),
                vec![],
                started,
                "2026-11-23T10:06:00Z",
                missed(MissReason::Unknown),
            ),
            (
                "an older unseen slot, the latest seen",
                CronJobTiming {
                    schedule: "*/30 * * * *",
                    ..timing()
                },
                vec![ten],
                started,
                "2026-11-23T10:06:00Z",
                Some(Missed {
                    slot: at("2026-11-23T09:30:00Z"),
                    reason: MissReason::Unknown,
                }),
            ),
            (
                "suspended",
                CronJobTiming {
                    suspended: true,
                    ..timing()
                },
                vec![],
                started,
                "2026-11-23T10:06:00Z",
                None,
            ),
            (
                "Forbid behind a running Job",
                forbid,
                vec![nine],
                started,
                "2026-11-23T10:06:00Z",
                missed(MissReason::StillRunning {
                    job: "billing-sync-29923740".into(),
                }),
            ),
            (
                "a running Job under Allow is no reason",
                CronJobTiming {
                    running_job: Some("x"),
                    ..timing()
                },
                vec![nine],
                started,
                "2026-11-23T10:06:00Z",
                missed(MissReason::Unknown),
            ),
            (
                "too late to start",
                CronJobTiming {
                    starting_deadline_seconds: Some(120),
                    ..timing()
                },
                vec![nine],
                started,
                "2026-11-23T10:06:00Z",
                missed(MissReason::TooLate {
                    starting_deadline_seconds: 120,
                }),
            ),
            (
                "still within startingDeadlineSeconds",
                CronJobTiming {
                    starting_deadline_seconds: Some(600),
                    ..timing()
                },
                vec![nine],
                started,
                "2026-11-23T10:06:00Z",
                missed(MissReason::Unknown),
            ),
            (
                "more than 100 since lastScheduleTime",
                CronJobTiming {
                    last_schedule_time: Some(at("2026-11-18T00:00:00Z")),
                    ..timing()
                },
                vec![nine],
                started,
                "2026-11-23T10:06:00Z",
                missed(MissReason::TooManyMissed {
                    since: at("2026-11-18T00:00:00Z"),
                }),
            ),
            (
                "100 or fewer since lastScheduleTime",
                CronJobTiming {
                    last_schedule_time: Some(at("2026-11-23T08:00:00Z")),
                    ..timing()
                },
                vec![nine],
                started,
                "2026-11-23T10:06:00Z",
                missed(MissReason::Unknown),
            ),
            (
                "many missed but startingDeadlineSeconds set",
                CronJobTiming {
                    last_schedule_time: Some(at("2026-11-18T00:00:00Z")),
                    starting_deadline_seconds: Some(3600),
                    ..timing()
                },
                vec![nine],
                started,
                "2026-11-23T10:06:00Z",
                missed(MissReason::Unknown),
            ),
            (
                "the controller scheduled it (lastScheduleTime)",
                CronJobTiming {
                    last_schedule_time: Some(ten),
                    ..timing()
                },
                vec![nine],
                started,
                "2026-11-23T10:06:00Z",
                None,
            ),
            // Bot started 09:30, lookback 1h: 09:00 is judged, 08:00 never.
            (
                "before the start, within the lookback",
                timing(),
                vec![],
                "2026-11-23T09:30:00Z",
                "2026-11-23T09:40:00Z",
                Some(Missed {
                    slot: nine,
                    reason: MissReason::Unknown,
                }),
            ),
            (
                "before the start, beyond the lookback",
                timing(),
                vec![ten],
                "2026-11-23T10:01:00Z",
                "2026-11-23T10:06:00Z",
                None,
            ),
            (
                "older than lastScheduleTime and before the start: history limits",
                CronJobTiming {
                    schedule: "*/30 * * * *",
                    last_schedule_time: Some(ten),
                    ..timing()
                },
                vec![],
                "2026-11-23T09:50:00Z",
                "2026-11-23T10:06:00Z",
                None,
            ),
            // The clock jumped back before the start: nothing.
            (
                "clock jumped backwards",
                timing(),
                vec![],
                "2026-11-23T12:00:00Z",
                "2026-11-23T10:06:00Z",
                None,
            ),
        ];
        for (what, cj, seen, started, now, want) in cases {
            assert_eq!(
                missed_run(&cj, &check(&seen, started, now)).unwrap(),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn missed_run_in_dst_and_dense_schedules() {
        // Spring forward: no 02:30 in Berlin on 2026-03-29, so nothing is missed that night.
        let cj = CronJobTiming {
            schedule: "30 2 * * *",
            time_zone: Some("Europe/Berlin"),
            ..timing()
        };
        let c = check(&[], "2026-03-29T00:00:00Z", "2026-03-29T02:00:00Z");
        assert_eq!(
            missed_run(
                &cj,
                &MissedCheck {
                    lookback: Duration::hours(3),
                    ..c
                }
            )
            .unwrap(),
            None
        );
        // Fall back: the second 02:30 (01:30 UTC) is due too.
        let first = at("2026-10-25T00:30:00Z");
        let c = check(
            std::slice::from_ref(&first),
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:40:00Z",
        );
        assert_eq!(
            missed_run(&cj, &c).unwrap().map(|m| m.slot),
            Some(at("2026-10-25T01:30:00Z"))
        );
        // Every minute with a day of lookback: only the latest slot is judged.
        let cj = CronJobTiming {
            schedule: "* * * * *",
            ..timing()
        };
        let c = MissedCheck {
            lookback: Duration::days(1),
            ..check(&[], "2026-11-22T00:00:00Z", "2026-11-23T10:00:30Z")
        };
        assert_eq!(
            missed_run(&cj, &c).unwrap().map(|m| m.slot),
            Some(at("2026-11-23T09:55:00Z"))
        );
    }

    #[test]
    fn overrun_threshold_table() {
        let m = Duration::minutes;
        let mins = |v: &[i64]| v.iter().map(|x| m(*x)).collect::<Vec<_>>();
        let median = |md: i64, runs: usize, threshold: i64| {
            Some(Overrun {
                threshold: m(threshold),
                source: OverrunSource::Median {
                    median: m(md),
                    runs,
                },
            })
        };
        let cases: Vec<(Option<&str>, Vec<Duration>, Option<Overrun>, bool)> = vec![
            (
                Some("2h"),
                vec![],
                Some(Overrun {
                    threshold: m(120),
                    source: OverrunSource::Annotation,
                }),
                false,
            ),
            (None, mins(&[30, 40]), None, false),
            (None, mins(&[30, 35, 40]), median(35, 3, 105), false),
            // Short runs: at least median + 10 min.
            (None, mins(&[1, 2, 3]), median(2, 3, 12), false),
            // Even count: the mean of the middle two.
            (None, mins(&[10, 20, 30, 40]), median(25, 4, 75), false),
            // Only the last 10 count (oldest first): the two 1000s are old.
            (
                None,
                mins(&[1000, 1000, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30]),
                median(30, 10, 90),
                false,
            ),
            // Negative durations (clock skew) are left out.
            (
                None,
                vec![m(-5), m(30), m(30), m(30)],
                median(30, 3, 90),
                false,
            ),
            (Some("-3"), mins(&[30, 35, 40]), median(35, 3, 105), true),
            (Some("never"), mins(&[30]), None, true),
            (Some("0s"), vec![], None, true),
        ];
        for (annotation, runs, want, warns) in cases {
            let got = overrun_threshold(annotation, &runs);
            assert_eq!(got.value, want, "{annotation:?} {runs:?}");
            assert_eq!(
                got.warning.is_some(),
                warns,
                "{annotation:?}: {:?}",
                got.warning
            );
        }
        let w = overrun_threshold(Some("-3"), &mins(&[30, 35, 40]))
            .warning
            .unwrap();
        assert!(
            w.contains("rerun-bot.io/max-duration") && w.contains("1h 45m"),
            "{w}"
        );
    }

    #[test]
    fn alerted_slots_keep_the_newest_once_each() {
        let mut a = AlertedSlots::default();
        let t0 = at("2026-01-01T00:00:00Z");
        assert!(a.add(t0));
        assert!(!a.add(t0));
        for i in 1..=(AlertedSlots::KEPT as i64 + 5) {
            a.add(t0 + Duration::minutes(i));
        }
        assert_eq!(a.slots.len(), AlertedSlots::KEPT);
        assert!(!a.slots.contains(&t0));
        assert!(a.slots.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn short_durations() {
        let cases = [
            (Duration::seconds(50), "50s"),
            (Duration::minutes(35), "35m"),
            (Duration::minutes(130), "2h 10m"),
            (Duration::hours(3), "3h"),
            (Duration::seconds(-5), "0s"),
        ];
        for (d, want) in cases {
            assert_eq!(short_duration(d), want);
        }
    }
}
