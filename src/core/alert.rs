//! When a failed Job is alerted, what the alert says, and where it goes.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::model::{Condition, ContainerExit, CronJobSnapshot, JobSnapshot};
use super::schedule;
use super::slots::{MissReason, Missed, Overrun, OverrunSource};

/// Everything a chat platform needs to render one failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureAlert {
    pub namespace: String,
    pub cronjob: String,
    pub job: String,
    pub job_uid: String,
    pub owner: Option<String>,
    pub reason: String,
    pub message: String,
    pub failed_pods: i32,
    pub backoff_limit: Option<i32>,
    pub started_at: Option<DateTime<Utc>>,
    pub failed_at: DateTime<Utc>,
    pub schedule: Option<String>,
    pub time_zone: Option<String>,
    pub next_run: Option<DateTime<Utc>>,
    /// Why no next run could be computed (unparsable schedule, unknown zone).
    pub schedule_problem: Option<String>,
    pub concurrency_policy: Option<String>,
    pub suspended: bool,
    /// The CronJob was gone when the failure was seen.
    pub cronjob_missing: bool,
    /// The rerun request this Job was created for, if the bot made it.
    pub rerun_request: Option<String>,
    pub exit: Option<ContainerExit>,
    pub log: LogTail,
    /// `status.failedIndexes` of an Indexed Job (`"1,3-5"`).
    #[serde(default)]
    pub failed_indexes: Option<String>,
    /// A failed Job (before this field: always), a run that did not start,
    /// or a run that takes too long.
    #[serde(default)]
    pub kind: AlertKind,
}

/// What an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertKind {
    /// A Job ended `Failed` (`job`, `reason`, `exit`, `log` tell how).
    #[default]
    Failed,
    /// "⏰ did not start": no Job appeared for the slot within the grace.
    Missed {
        slot: DateTime<Utc>,
        reason: MissReason,
        /// How long after the slot it counted as missed.
        grace_secs: i64,
    },
    /// "🐢 running for …": the Job `job` runs longer than its threshold.
    Overrun {
        /// How long it had run when alerted.
        running_for_secs: i64,
        threshold_secs: i64,
        /// The median of recent successful runs (`None`: the threshold is
        /// the `rerun-bot.io/max-duration` annotation).
        usual_secs: Option<i64>,
        /// Set when the Job ended (the alert is updated then).
        #[serde(default)]
        ended: Option<RunEnd>,
    },
}

/// How a Job alerted as running too long ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnd {
    /// `Some(true)` succeeded, `Some(false)` failed, `None` deleted.
    pub succeeded: Option<bool>,
    pub after_secs: i64,
}

/// The synthetic alert key of a missed slot: `missed/<ns>/<cronjob>/<slot unix>`.
pub fn missed_key(namespace: &str, cronjob: &str, slot: DateTime<Utc>) -> String {
    format!("missed/{namespace}/{cronjob}/{}", slot.timestamp())
}

/// The synthetic alert key of a Job running too long: `overrun/<job uid>`.
pub fn overrun_key(job_uid: &str) -> String {
    format!("overrun/{job_uid}")
}

/// The end of the failed container's log, captured when the failure was seen
/// (the Job and its pods may be deleted minutes later by the history limits).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LogTail {
    #[default]
    NotCaptured,
    Captured {
        container: String,
        text: String,
        lines: usize,
        truncated: bool,
    },
    Unavailable(String),
    /// Being read: the alert went out first, the details follow by update.
    Capturing,
}

impl FailureAlert {
    /// The alert as far as the Job and CronJob tell it; exit code and log are
    /// added once the pods were read.
    pub fn new(
        job: &JobSnapshot,
        failed: &Condition,
        cronjob: Option<&CronJobSnapshot>,
        now: DateTime<Utc>,
    ) -> Self {
        let (next_run, schedule_problem) = match cronjob {
            Some(cj) => match schedule::next_run(&cj.schedule, cj.time_zone.as_deref(), now) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e.to_string())),
            },
            None => (None, None),
        };
        FailureAlert {
            namespace: job.namespace.clone(),
            cronjob: job.cronjob.clone().unwrap_or_default(),
            job: job.name.clone(),
            job_uid: job.uid.clone(),
            owner: cronjob.and_then(|c| c.owner.clone()),
            reason: failed.reason.clone(),
            message: failed.message.clone(),
            failed_pods: job.failed_pods,
            backoff_limit: job
                .backoff_limit
                .or_else(|| cronjob.and_then(|c| c.backoff_limit)),
            started_at: job.started_at,
            failed_at: failed.at,
            schedule: cronjob.map(|c| c.schedule.clone()),
            time_zone: cronjob.and_then(|c| c.time_zone.clone()),
            next_run,
            schedule_problem,
            concurrency_policy: cronjob.map(|c| c.concurrency_policy.clone()),
            suspended: cronjob.is_some_and(|c| c.suspended),
            cronjob_missing: cronjob.is_none(),
            rerun_request: job.rerun_request.clone(),
            exit: None,
            log: LogTail::NotCaptured,
            failed_indexes: job.failed_indexes.clone(),
            kind: AlertKind::Failed,
        }
    }

    /// A "did not start" alert for the slot `missed` of `cronjob`.
    pub fn missed(
        cronjob: &CronJobSnapshot,
        missed: &Missed,
        grace: Duration,
        now: DateTime<Utc>,
    ) -> Self {
        let (next_run, schedule_problem) =
            match schedule::next_run(&cronjob.schedule, cronjob.time_zone.as_deref(), now) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e.to_string())),
            };
        let reason = match &missed.reason {
            MissReason::StillRunning { .. } => "StillRunning",
            MissReason::TooLate { .. } => "TooLate",
            MissReason::TooManyMissed { .. } => "TooManyMissed",
            MissReason::Unknown => "DidNotStart",
        };
        FailureAlert {
            namespace: cronjob.namespace.clone(),
            cronjob: cronjob.name.clone(),
            job: String::new(),
            job_uid: missed_key(&cronjob.namespace, &cronjob.name, missed.slot),
            owner: cronjob.owner.clone(),
            reason: reason.into(),
            message: String::new(),
            failed_pods: 0,
            backoff_limit: cronjob.backoff_limit,
            started_at: None,
            failed_at: missed.slot,
            schedule: Some(cronjob.schedule.clone()),
            time_zone: cronjob.time_zone.clone(),
            next_run,
            schedule_problem,
            concurrency_policy: Some(cronjob.concurrency_policy.clone()),
            suspended: cronjob.suspended,
            cronjob_missing: false,
            rerun_request: None,
            exit: None,
            log: LogTail::NotCaptured,
            failed_indexes: None,
            kind: AlertKind::Missed {
                slot: missed.slot,
                reason: missed.reason.clone(),
                grace_secs: grace.num_seconds(),
            },
        }
    }

    /// A "running too long" alert for the running `job`.
    pub fn overrun(
        job: &JobSnapshot,
        started_at: DateTime<Utc>,
        cronjob: &CronJobSnapshot,
        overrun: &Overrun,
        now: DateTime<Utc>,
    ) -> Self {
        let (next_run, schedule_problem) =
            match schedule::next_run(&cronjob.schedule, cronjob.time_zone.as_deref(), now) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e.to_string())),
            };
        FailureAlert {
            namespace: job.namespace.clone(),
            cronjob: cronjob.name.clone(),
            job: job.name.clone(),
            job_uid: overrun_key(&job.uid),
            owner: cronjob.owner.clone(),
            reason: "RunningTooLong".into(),
            message: String::new(),
            failed_pods: job.failed_pods,
            backoff_limit: job.backoff_limit.or(cronjob.backoff_limit),
            started_at: Some(started_at),
            // When it became too long (a success of it after that ends the incident).
            failed_at: (started_at + overrun.threshold).min(now),
            schedule: Some(cronjob.schedule.clone()),
            time_zone: cronjob.time_zone.clone(),
            next_run,
            schedule_problem,
            concurrency_policy: Some(cronjob.concurrency_policy.clone()),
            suspended: cronjob.suspended,
            cronjob_missing: false,
            rerun_request: job.rerun_request.clone(),
            exit: None,
            log: LogTail::NotCaptured,
            failed_indexes: None,
            kind: AlertKind::Overrun {
                running_for_secs: (now - started_at).num_seconds().max(0),
                threshold_secs: overrun.threshold.num_seconds(),
                usual_secs: match &overrun.source {
                    OverrunSource::Median { median, .. } => Some(median.num_seconds()),
                    OverrunSource::Annotation => None,
                },
                ended: None,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertDecision {
    Alert,
    Ignore(IgnoreReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    NotFailed,
    NotFromCronJob,
    OptedOut,
    OlderThanLookback,
}

/// Whether a Job's state calls for an alert (dedup is the store's business).
pub fn decide(
    job: &JobSnapshot,
    cronjob: Option<&CronJobSnapshot>,
    now: DateTime<Utc>,
    lookback: Duration,
) -> AlertDecision {
    use AlertDecision::*;
    let Some(failed) = &job.failed else {
        return Ignore(IgnoreReason::NotFailed);
    };
    if job.cronjob.is_none() {
        return Ignore(IgnoreReason::NotFromCronJob);
    }
    if cronjob.is_some_and(|c| c.alerts_off) {
        return Ignore(IgnoreReason::OptedOut);
    }
    if failed.at < now - lookback {
        return Ignore(IgnoreReason::OlderThanLookback);
    }
    Alert
}

/// The thread of the first recent alert of a CronJob.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ThreadState {
    /// The channel the alerts were routed to (annotation or default).
    pub channel: String,
    /// The channel id the thread lives in, as the chat platform reported it.
    pub posted_in: String,
    pub ts: String,
    /// Job uid of the alert that opened the thread.
    pub parent_job_uid: String,
    pub opened_at: DateTime<Utc>,
    /// Failures in the incident, the first one included.
    pub failures: u32,
    /// When the incident's first failure happened.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// When its latest failure happened (a success must be newer to close it).
    #[serde(default)]
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Set when a Job of the CronJob succeeded: the incident is over.
    #[serde(default)]
    pub recovered: Option<super::incident::Recovery>,
    /// When the incident's earlier alert was posted, if this one re-surfaced it.
    #[serde(default)]
    pub continues_from: Option<DateTime<Utc>>,
    /// Failures counted while the CronJob was snoozed (posted nowhere).
    #[serde(default)]
    pub suppressed: u32,
    /// The incident lives in a storm digest's thread (`ts` is the digest's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::OnHold;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn job(failed_at: Option<&str>, cronjob: Option<&str>) -> JobSnapshot {
        JobSnapshot {
            namespace: "default".into(),
            name: "billing-sync-29000000".into(),
            uid: "uid-1".into(),
            cronjob: cronjob.map(Into::into),
            rerun_request: None,
            started_at: Some(t("2026-11-23T09:00:00Z")),
            active: 0,
            failed_pods: 3,
            backoff_limit: Some(2),
            failed: failed_at.map(|at| Condition {
                reason: "BackoffLimitExceeded".into(),
                message: "Job has reached the specified backoff limit".into(),
                at: t(at),
            }),
            complete: None,
            failed_indexes: None,
            terminating: 0,
            managed_by: None,
            scheduled_for: None,
        }
    }

    fn cronjob() -> CronJobSnapshot {
        CronJobSnapshot {
            namespace: "default".into(),
            name: "billing-sync".into(),
            uid: "cj-uid".into(),
            schedule: "0 3 * * *".into(),
            time_zone: None,
            concurrency_policy: "Forbid".into(),
            suspended: false,
            channel: None,
            teams_channel: None,
            owner: Some("U_OWNER".into()),
            alerts_off: false,
            on_hold: OnHold::Suspend,
            hold_id: None,
            suspended_before_hold: None,
            backoff_limit: Some(2),
            containers: vec!["main".into()],
            last_successful_time: None,
            starting_deadline_seconds: None,
            last_schedule_time: None,
            created_at: None,
            missed_after: None,
            max_duration: None,
            failures_only: false,
        }
    }

    #[test]
    fn decide_table() {
        use AlertDecision::*;
        use IgnoreReason::*;
        let now = t("2026-11-23T10:00:00Z");
        let hour = Duration::hours(1);
        let off = CronJobSnapshot {
            alerts_off: true,
            ..cronjob()
        };
        let cases = [
            (
                job(None, Some("billing-sync")),
                Some(cronjob()),
                Ignore(NotFailed),
            ),
            (
                job(Some("2026-11-23T09:59:00Z"), None),
                None,
                Ignore(NotFromCronJob),
            ),
            (
                job(Some("2026-11-23T09:59:00Z"), Some("billing-sync")),
                Some(off),
                Ignore(OptedOut),
            ),
            (
                job(Some("2026-11-23T08:59:59Z"), Some("billing-sync")),
                Some(cronjob()),
                Ignore(OlderThanLookback),
            ),
            (
                job(Some("2026-11-23T09:00:00Z"), Some("billing-sync")),
                Some(cronjob()),
                Alert,
            ),
            // CronJob already deleted: alert with what is known.
            (
                job(Some("2026-11-23T09:59:00Z"), Some("billing-sync")),
                None,
                Alert,
            ),
        ];
        for (i, (j, cj, want)) in cases.into_iter().enumerate() {
            assert_eq!(decide(&j, cj.as_ref(), now, hour), want, "case {i}");
        }
    }

    #[test]
    fn alert_takes_schedule_owner_and_next_run_from_the_cronjob() {
        let j = job(Some("2026-11-23T09:59:00Z"), Some("billing-sync"));
        let a = FailureAlert::new(
            &j,
            j.failed.as_ref().unwrap(),
            Some(&cronjob()),
            t("2026-11-23T10:00:00Z"),
        );
        assert_eq!(a.owner.as_deref(), Some("U_OWNER"));
        assert_eq!(a.next_run, Some(t("2026-11-24T03:00:00Z")));
        assert_eq!(a.backoff_limit, Some(2));
        assert!(!a.cronjob_missing);

        let bad = CronJobSnapshot {
            schedule: "every day".into(),
            ..cronjob()
        };
        let a = FailureAlert::new(
            &j,
            j.failed.as_ref().unwrap(),
            Some(&bad),
            t("2026-11-23T10:00:00Z"),
        );
        assert_eq!(a.next_run, None);
        assert!(a.schedule_problem.unwrap().contains("unparsable"));

        let a = FailureAlert::new(
            &j,
            j.failed.as_ref().unwrap(),
            None,
            t("2026-11-23T10:00:00Z"),
        );
        assert!(a.cronjob_missing);
        assert_eq!(a.cronjob, "billing-sync");
    }
}
