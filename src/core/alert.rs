//! When a failed Job is alerted, what the alert says, and where it goes.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::model::{Condition, ContainerExit, CronJobSnapshot, JobSnapshot};
use super::schedule;

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
