//! The small facts rerun-bot keeps about Jobs and CronJobs.
//!
//! The bot never keeps whole Kubernetes objects (10,000 Jobs would cost far
//! more memory than it needs); `kube/` reduces every object to one of these.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A `status.conditions[]` entry that is `True`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub reason: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// What the bot needs to know about one Job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSnapshot {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Name of the controlling CronJob (`ownerReferences[controller=true].kind == CronJob`).
    pub cronjob: Option<String>,
    /// `rerun-bot.io/request-id` when the bot created this Job as a rerun.
    pub rerun_request: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub active: i32,
    pub failed_pods: i32,
    pub backoff_limit: Option<i32>,
    /// `Failed=True`; never `FailureTarget`, which comes first since Kubernetes 1.31.
    /// `None` for a Job another controller manages (`spec.managedBy`).
    pub failed: Option<Condition>,
    /// `Complete=True`, or `SuccessCriteriaMet=True` (1.31+: a `successPolicy`
    /// was met, or all completions reached) which comes before it.
    pub complete: Option<Condition>,
    /// `status.failedIndexes` of an Indexed Job with `backoffLimitPerIndex`
    /// (`"1,3-5"`).
    #[serde(default)]
    pub failed_indexes: Option<String>,
    /// `status.terminating`: pods being deleted, not failures (yet).
    #[serde(default)]
    pub terminating: i32,
    /// `spec.managedBy` when it is not the built-in Job controller: the
    /// conditions are that controller's business and are not judged.
    #[serde(default)]
    pub managed_by: Option<String>,
    /// The scheduled time this Job was created for (`core::slots::job_slot`);
    /// `None` for manual Jobs and reruns.
    #[serde(default)]
    pub scheduled_for: Option<DateTime<Utc>>,
}

impl JobSnapshot {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Running = pods active (or still terminating, with a replacement to
    /// come) and neither `Complete` nor `Failed` (DESIGN.md).
    pub fn is_running(&self) -> bool {
        (self.active > 0 || self.terminating > 0)
            && self.failed.is_none()
            && self.complete.is_none()
    }
}

/// `rerun-bot.io/on-hold`: what a maintenance hold does to this CronJob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnHold {
    #[default]
    Suspend,
    Terminate,
}

/// What the bot needs to know about one CronJob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJobSnapshot {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub schedule: String,
    pub time_zone: Option<String>,
    pub concurrency_policy: String,
    pub suspended: bool,
    /// `rerun-bot.io/channel`
    pub channel: Option<String>,
    /// `rerun-bot.io/teams-channel`
    #[serde(default)]
    pub teams_channel: Option<String>,
    /// `rerun-bot.io/owner`
    pub owner: Option<String>,
    /// `rerun-bot.io/alerts: "off"`
    pub alerts_off: bool,
    /// `rerun-bot.io/on-hold`
    pub on_hold: OnHold,
    /// `rerun-bot.io/hold-id`: a maintenance hold covers this CronJob.
    #[serde(default)]
    pub hold_id: Option<String>,
    /// `rerun-bot.io/suspended-before-hold`, while held.
    #[serde(default)]
    pub suspended_before_hold: Option<bool>,
    pub backoff_limit: Option<i32>,
    pub containers: Vec<String>,
    /// `status.lastSuccessfulTime`: the controller's record of the last success.
    #[serde(default)]
    pub last_successful_time: Option<DateTime<Utc>>,
    /// `spec.startingDeadlineSeconds`.
    #[serde(default)]
    pub starting_deadline_seconds: Option<i64>,
    /// `status.lastScheduleTime`: the last slot the controller created a Job for.
    #[serde(default)]
    pub last_schedule_time: Option<DateTime<Utc>>,
    /// `metadata.creationTimestamp`: no run is due before it.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// `rerun-bot.io/missed-after` (checked by `core::slots::grace`).
    #[serde(default)]
    pub missed_after: Option<String>,
    /// `rerun-bot.io/max-duration` (checked by `core::slots::overrun_threshold`).
    #[serde(default)]
    pub max_duration: Option<String>,
    /// `rerun-bot.io/alerts: failures-only`: no missed-run or long-run alerts.
    #[serde(default)]
    pub failures_only: bool,
}

impl CronJobSnapshot {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// How the failed container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerExit {
    pub pod: String,
    pub container: String,
    pub exit_code: i32,
    /// `OOMKilled`, `Error`, `DeadlineExceeded`, …
    pub reason: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}
