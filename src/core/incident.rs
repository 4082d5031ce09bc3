//! Incidents: a CronJob's failures are one story until one of its Jobs succeeds.
//!
//! Two records tell it:
//! - [`RunHistory`], per CronJob and platform-neutral: its recent runs (from
//!   the Job watch, each Job once), its last success and its failures in a row;
//! - the incident of each platform, kept in its alert thread
//!   ([`ThreadState`]): where its first alert is, how many failures it holds,
//!   and, once a Job succeeded, its [`Recovery`].
//!
//! What an alert shows of both is an [`AlertStory`].

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::alert::ThreadState;
use super::model::JobSnapshot;

/// Runs kept per CronJob (the strip shows the last [`STRIP`]).
pub const KEPT_RUNS: usize = 20;
/// Runs shown on an alert.
pub const STRIP: usize = 10;

/// One finished Job of a CronJob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub job: String,
    pub uid: String,
    pub succeeded: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    /// Created by the bot for a rerun request.
    #[serde(default)]
    pub rerun: bool,
}

impl Run {
    /// The run a finished Job was; `None` while it runs or without a CronJob.
    pub fn of(job: &JobSnapshot) -> Option<Run> {
        job.cronjob.as_ref()?;
        let (succeeded, finished_at) = match (&job.complete, &job.failed) {
            (Some(c), _) => (true, c.at),
            (None, Some(f)) => (false, f.at),
            (None, None) => return None,
        };
        Some(Run {
            job: job.name.clone(),
            uid: job.uid.clone(),
            succeeded,
            started_at: job.started_at,
            finished_at,
            rerun: job.rerun_request.is_some(),
        })
    }

    pub fn duration(&self) -> Option<Duration> {
        self.started_at
            .map(|s| self.finished_at - s)
            .filter(|d| *d >= Duration::zero())
    }
}

/// The last success the bot knows of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Success {
    pub job: String,
    pub at: DateTime<Utc>,
}

/// A CronJob's recent runs, newest last.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunHistory {
    pub runs: Vec<Run>,
    pub last_success: Option<Success>,
    /// Failures since the last success (more than the kept runs can show).
    pub failures_in_a_row: u32,
    /// When the first of those failures happened.
    pub failing_since: Option<DateTime<Utc>>,
}

/// What recording a run changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Seen before (a relist, a MODIFIED event), or older than everything kept.
    Unchanged,
    Failure,
    /// A success newer than every recorded failure.
    Success,
    /// A success, but a failure finished after it: no recovery.
    EarlierSuccess,
}

impl RunHistory {
    /// Adds a finished Job once; runs arrive in any order (a relist).
    pub fn record(&mut self, run: Run) -> Recorded {
        if self.runs.iter().any(|r| r.uid == run.uid) {
            return Recorded::Unchanged;
        }
        let full = self.runs.len() >= KEPT_RUNS;
        if full
            && self
                .runs
                .first()
                .is_some_and(|r| run.finished_at < r.finished_at)
        {
            return Recorded::Unchanged;
        }
        let newer_than_success = self
            .last_success
            .as_ref()
            .is_none_or(|s| run.finished_at > s.at);
        let outcome = if run.succeeded {
            if newer_than_success {
                let after: Vec<&Run> = self
                    .runs
                    .iter()
                    .filter(|r| !r.succeeded && r.finished_at > run.finished_at)
                    .collect();
                self.failures_in_a_row = after.len() as u32;
                self.failing_since = after.iter().map(|r| r.finished_at).min();
                self.last_success = Some(Success {
                    job: run.job.clone(),
                    at: run.finished_at,
                });
                if after.is_empty() {
                    Recorded::Success
                } else {
                    Recorded::EarlierSuccess
                }
            } else {
                Recorded::EarlierSuccess
            }
        } else {
            if newer_than_success {
                self.failures_in_a_row += 1;
                self.failing_since = Some(match self.failing_since {
                    Some(s) => s.min(run.finished_at),
                    None => run.finished_at,
                });
            }
            Recorded::Failure
        };
        let at = self
            .runs
            .iter()
            .position(|r| r.finished_at > run.finished_at)
            .unwrap_or(self.runs.len());
        self.runs.insert(at, run);
        if self.runs.len() > KEPT_RUNS {
            self.runs.drain(..self.runs.len() - KEPT_RUNS);
        }
        outcome
    }

    /// The last [`STRIP`] outcomes, oldest first (`true`: succeeded).
    pub fn strip(&self) -> Vec<bool> {
        let skip = self.runs.len().saturating_sub(STRIP);
        self.runs.iter().skip(skip).map(|r| r.succeeded).collect()
    }

    /// Durations of the last successful runs, newest last.
    pub fn successful_durations(&self, n: usize) -> Vec<Duration> {
        let mut d: Vec<Duration> = self
            .runs
            .iter()
            .filter(|r| r.succeeded)
            .filter_map(Run::duration)
            .collect();
        let skip = d.len().saturating_sub(n);
        d.drain(..skip);
        d
    }

    /// The last success: the bot's record, or the CronJob's
    /// `status.lastSuccessfulTime` when that is newer (Jobs the bot never saw).
    pub fn last_success_at(&self, cronjob_status: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        match (self.last_success.as_ref().map(|s| s.at), cronjob_status) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// How an incident ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// The Job that succeeded.
    pub job: String,
    pub at: DateTime<Utc>,
    /// Failures in the incident.
    pub failures: u32,
    /// It was a rerun the bot created.
    #[serde(default)]
    pub by_rerun: bool,
}

/// Where a failure goes, given the CronJob's incident on one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// A new incident: a new top-level alert (it opens a thread).
    NewThread,
    /// The open incident's alert is older than the re-surface age: a new
    /// top-level alert that continues it (and says since when).
    Resurface(ThreadState),
    /// Reply in the incident's thread and update its first alert.
    Reply(ThreadState),
}

/// Failures of one CronJob form one incident until a Job of it succeeds; an
/// incident whose alert is older than `resurface` comes back to the top.
pub fn group(
    thread: Option<&ThreadState>,
    channel: &str,
    failed_at: DateTime<Utc>,
    now: DateTime<Utc>,
    resurface: Duration,
) -> Grouping {
    let Some(t) = thread else {
        return Grouping::NewThread;
    };
    if t.channel != channel {
        return Grouping::NewThread;
    }
    match &t.recovered {
        // A failure from before the recovery (seen late, e.g. on a relist)
        // belongs to the closed incident: told in its thread, not reopening it.
        Some(r) if failed_at < r.at => Grouping::Reply(t.clone()),
        Some(_) => Grouping::NewThread,
        None if now - t.opened_at >= resurface => Grouping::Resurface(t.clone()),
        None => Grouping::Reply(t.clone()),
    }
}

/// The incident as it is once the failure of Job `uid` at `failed_at` is in
/// it (where it goes: `grouping`); its message is not posted yet, so a new
/// thread has no `ts`.
pub fn with_failure(
    grouping: &Grouping,
    channel: &str,
    uid: &str,
    failed_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ThreadState {
    match grouping {
        Grouping::NewThread => ThreadState {
            channel: channel.to_string(),
            posted_in: String::new(),
            ts: String::new(),
            parent_job_uid: uid.to_string(),
            opened_at: now,
            failures: 1,
            since: Some(failed_at),
            last_failure_at: Some(failed_at),
            ..ThreadState::default()
        },
        Grouping::Resurface(t) => ThreadState {
            posted_in: String::new(),
            ts: String::new(),
            parent_job_uid: uid.to_string(),
            opened_at: now,
            failures: t.failures + 1,
            since: t.since.or(Some(t.opened_at)),
            last_failure_at: Some(failed_at),
            continues_from: Some(t.opened_at),
            digest: None,
            ..t.clone()
        },
        // Late news of a closed incident: told in its thread, counted nowhere.
        Grouping::Reply(t) if t.recovered.is_some() => t.clone(),
        Grouping::Reply(t) => ThreadState {
            failures: t.failures + 1,
            last_failure_at: t.last_failure_at.max(Some(failed_at)),
            ..t.clone()
        },
    }
}

/// The incident closed by a success at `at`, if it is open and the success
/// is newer than its last failure.
pub fn recover(
    thread: &ThreadState,
    job: &str,
    at: DateTime<Utc>,
    by_rerun: bool,
) -> Option<ThreadState> {
    if thread.recovered.is_some() {
        return None;
    }
    if thread.last_failure_at.is_some_and(|last| at < last) {
        return None;
    }
    let mut closed = thread.clone();
    closed.recovered = Some(Recovery {
        job: job.to_string(),
        at,
        failures: thread.failures,
        by_rerun,
    });
    Some(closed)
}

/// What an alert tells beyond its one failure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertStory {
    /// Failures in the incident so far (1: this is the first).
    pub failures: u32,
    /// When the incident's first failure happened.
    pub since: Option<DateTime<Utc>>,
    pub recovered: Option<Recovery>,
    /// The incident's earlier alert, when this one re-surfaced it.
    pub continues_from: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    /// The bot has seen runs of this CronJob (else "last success: unknown").
    pub known_runs: bool,
    /// Last runs, oldest first (`true`: succeeded).
    pub runs: Vec<bool>,
    /// The CronJob's snooze, while it is snoozed.
    pub snoozed: Option<super::snooze::Snooze>,
}

impl AlertStory {
    /// The story of a lone failure (no incident record yet).
    pub fn single() -> Self {
        AlertStory {
            failures: 1,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn run(uid: &str, ok: bool, at: &str) -> Run {
        Run {
            job: format!("job-{uid}"),
            uid: uid.into(),
            succeeded: ok,
            started_at: Some(t(at) - Duration::minutes(5)),
            finished_at: t(at),
            rerun: false,
        }
    }

    fn thread(opened: &str) -> ThreadState {
        ThreadState {
            channel: "C1".into(),
            posted_in: "C1".into(),
            ts: "1.1".into(),
            parent_job_uid: "u0".into(),
            opened_at: t(opened),
            failures: 2,
            since: Some(t(opened)),
            last_failure_at: Some(t(opened) + Duration::minutes(5)),
            ..Default::default()
        }
    }

    #[test]
    fn a_streak_counts_until_a_success() {
        let mut h = RunHistory::default();
        assert_eq!(
            h.record(run("a", true, "2026-11-23T01:00:00Z")),
            Recorded::Success
        );
        assert_eq!(
            h.record(run("b", false, "2026-11-23T02:00:00Z")),
            Recorded::Failure
        );
        assert_eq!(
            h.record(run("c", false, "2026-11-23T03:00:00Z")),
            Recorded::Failure
        );
        assert_eq!(h.failures_in_a_row, 2);
        assert_eq!(h.failing_since, Some(t("2026-11-23T02:00:00Z")));
        // The same Job again (a MODIFIED event, a relist): nothing changes.
        assert_eq!(
            h.record(run("c", false, "2026-11-23T03:00:00Z")),
            Recorded::Unchanged
        );
        assert_eq!(h.failures_in_a_row, 2);
        assert_eq!(h.strip(), vec![true, false, false]);
        assert_eq!(
            h.record(run("d", true, "2026-11-23T04:00:00Z")),
            Recorded::Success
        );
        assert_eq!(h.failures_in_a_row, 0);
        assert_eq!(h.failing_since, None);
        assert_eq!(h.last_success.as_ref().unwrap().job, "job-d");
    }

    #[test]
    fn runs_arrive_in_any_order() {
        let mut h = RunHistory::default();
        h.record(run("late-fail", false, "2026-11-23T05:00:00Z"));
        // An older success seen after a newer failure: no recovery.
        assert_eq!(
            h.record(run("old-ok", true, "2026-11-23T04:00:00Z")),
            Recorded::EarlierSuccess
        );
        assert_eq!(h.failures_in_a_row, 1);
        assert_eq!(h.strip(), vec![true, false]);
        // An even older failure does not count in the streak.
        assert_eq!(
            h.record(run("older-fail", false, "2026-11-23T03:00:00Z")),
            Recorded::Failure
        );
        assert_eq!(h.failures_in_a_row, 1);
        assert_eq!(h.strip(), vec![false, true, false]);
    }

    #[test]
    fn keeps_the_newest_runs() {
        let mut h = RunHistory::default();
        let base = t("2026-11-23T00:00:00Z");
        for i in 0..30 {
            let mut r = run(&format!("r{i}"), i % 3 != 0, "2026-11-23T00:00:00Z");
            r.finished_at = base + Duration::minutes(i);
            r.started_at = Some(r.finished_at - Duration::minutes(2));
            h.record(r);
        }
        assert_eq!(h.runs.len(), KEPT_RUNS);
        assert_eq!(h.runs.first().unwrap().uid, "r10");
        assert_eq!(h.strip().len(), STRIP);
        // Older than everything kept: ignored.
        let mut old = run("ancient", false, "2026-11-22T00:00:00Z");
        old.started_at = None;
        assert_eq!(h.record(old), Recorded::Unchanged);
        let d = h.successful_durations(10);
        assert_eq!(d.len(), 10);
        assert!(d.iter().all(|d| *d == Duration::minutes(2)));
    }

    #[test]
    fn last_success_takes_the_newer_source() {
        let mut h = RunHistory::default();
        assert_eq!(h.last_success_at(None), None);
        let status = t("2026-11-23T06:00:00Z");
        assert_eq!(h.last_success_at(Some(status)), Some(status));
        h.record(run("a", true, "2026-11-23T07:00:00Z"));
        assert_eq!(
            h.last_success_at(Some(status)),
            Some(t("2026-11-23T07:00:00Z"))
        );
    }

    #[test]
    fn grouping_table() {
        let now = t("2026-11-23T10:00:00Z");
        let failed = t("2026-11-23T09:59:00Z");
        let day = Duration::hours(24);
        let open = thread("2026-11-23T05:00:00Z");
        assert_eq!(group(None, "C1", failed, now, day), Grouping::NewThread);
        assert_eq!(
            group(Some(&open), "C1", failed, now, day),
            Grouping::Reply(open.clone())
        );
        // Routed elsewhere meanwhile: a new thread there.
        assert_eq!(
            group(Some(&open), "C2", failed, now, day),
            Grouping::NewThread
        );
        // Open for longer than the re-surface age: back to the top.
        let old = thread("2026-11-22T09:00:00Z");
        assert_eq!(
            group(Some(&old), "C1", failed, now, day),
            Grouping::Resurface(old.clone())
        );
        // Recovered: a failure after the recovery is a new incident, one from
        // before it (seen late) stays in the closed thread.
        let closed = recover(&open, "job-ok", t("2026-11-23T08:00:00Z"), false).unwrap();
        assert_eq!(
            group(Some(&closed), "C1", failed, now, day),
            Grouping::NewThread
        );
        assert_eq!(
            group(Some(&closed), "C1", t("2026-11-23T07:00:00Z"), now, day),
            Grouping::Reply(closed.clone())
        );
    }

    #[test]
    fn recovery_needs_a_newer_success_and_happens_once() {
        let open = thread("2026-11-23T05:00:00Z");
        // Finished before the incident's last failure: not a recovery.
        assert_eq!(
            recover(&open, "old", t("2026-11-23T05:01:00Z"), false),
            None
        );
        let closed = recover(&open, "ok", t("2026-11-23T06:00:00Z"), true).unwrap();
        let r = closed.recovered.as_ref().unwrap();
        assert_eq!((r.job.as_str(), r.failures, r.by_rerun), ("ok", 2, true));
        assert_eq!(
            recover(&closed, "again", t("2026-11-23T07:00:00Z"), false),
            None
        );
    }

    #[test]
    fn a_failure_counts_into_its_incident() {
        let at = t("2026-01-01T10:00:00Z");
        let now = at + Duration::minutes(1);
        let open = thread("2026-01-01T08:00:00Z");
        let new = with_failure(&Grouping::NewThread, "C2", "u9", at, now);
        assert_eq!(
            (
                new.failures,
                new.since,
                new.channel.as_str(),
                new.ts.as_str()
            ),
            (1, Some(at), "C2", "")
        );
        assert_eq!(new.parent_job_uid, "u9");
        let again = with_failure(&Grouping::Reply(open.clone()), "C1", "u9", at, now);
        assert_eq!(again.failures, 3);
        assert_eq!(again.last_failure_at, Some(at));
        assert_eq!(
            (again.ts.as_str(), again.parent_job_uid.as_str()),
            ("1.1", "u0")
        );
        let back = with_failure(&Grouping::Resurface(open.clone()), "C1", "u9", at, now);
        assert_eq!(
            (back.failures, back.ts.as_str()),
            (3, ""),
            "a new top-level alert"
        );
        assert_eq!(back.continues_from, Some(open.opened_at));
        assert_eq!(back.since, open.since, "the incident began then");
        let mut closed = open.clone();
        closed.recovered = Some(Recovery {
            job: "ok".into(),
            at: at + Duration::minutes(30),
            failures: 2,
            by_rerun: false,
        });
        let late = with_failure(&Grouping::Reply(closed.clone()), "C1", "u9", at, now);
        assert_eq!(
            late, closed,
            "late news of a closed incident counts nowhere"
        );
    }
}
