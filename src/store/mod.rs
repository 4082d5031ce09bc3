//! Persistence: what must survive a restart.
//!
//! Trees (DESIGN.md "Storage"): `alerts` (job uid → [`AlertRecord`], the dedup
//! key), `threads` (namespace/cronjob → the open [`ThreadState`]), `audit`
//! (monotonic id → [`AuditEvent`], append-only), `requests` (request id →
//! [`RerunRequest`], changed only by compare-and-swap), `meta` (schema version).
//! The rule everywhere: write before you act, act, then record the result.
//!
//! sled 0.34 is unmaintained upstream, so nothing outside this module names it.

pub mod crds;
mod kube_store;
pub mod migrate;
mod sled_store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::chat::Platform;
use crate::core::hold::Operation;
use crate::core::request::RerunRequest;
use crate::core::{FailureAlert, ThreadState};

pub use kube_store::KubeStore;
pub use sled_store::SledStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(String),
    #[error("corrupt record in `{tree}`: {why}")]
    Corrupt { tree: &'static str, why: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One failed Job's alert. Written as `Pending` before it is posted, so an
/// alert is never lost to a crash and never posted twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub alert: FailureAlert,
    pub channel: String,
    pub state: AlertState,
    pub created_at: DateTime<Utc>,
    /// What is happening about it (a rerun requested, running, …), shown on the alert.
    #[serde(default)]
    pub status: Option<String>,
    /// Its number in its thread (1: the thread's first alert), once posted.
    #[serde(default)]
    pub number: u32,
    /// The platform this copy of the alert goes to (each platform has its own record).
    #[serde(default)]
    pub platform: Platform,
    /// The storm digest it is a line of (then it has no message of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// What may go: records nothing needs any more (`Store::prune`).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Alerts of failures before this: older than the lookback and any
    /// thread window, so the alert decision ignores their Jobs anyway.
    pub alerts_before: DateTime<Utc>,
    /// Audit events, finished requests and finished holds before this
    /// (`RERUN_BOT_AUDIT_RETENTION`).
    pub records_before: DateTime<Utc>,
}

impl Retention {
    pub fn alert_expired(&self, a: &AlertRecord) -> bool {
        a.state != AlertState::Pending && a.alert.failed_at < self.alerts_before
    }

    pub fn request_expired(&self, r: &RerunRequest) -> bool {
        r.state.is_final() && r.requested_at < self.records_before
    }

    /// A hold still in force (done, not ended by a resume) is never expired.
    pub fn operation_expired(&self, o: &Operation) -> bool {
        use crate::core::hold::{Kind, Phase};
        let finished = match o.phase {
            Phase::Cancelled => true,
            Phase::Done => o.kind == Kind::Resume || o.ended,
            Phase::Planned => true,
            Phase::Applying => false,
        };
        finished && o.at < self.records_before
    }

    pub fn audit_expired(&self, e: &AuditEvent) -> bool {
        e.at < self.records_before
    }
}

/// The store key of a Job's alert on a platform: the Job uid for Slack (as
/// before Teams existed), `teams/<uid>` for Teams.
pub fn alert_key(platform: Platform, job_uid: &str) -> String {
    match platform {
        Platform::Slack => job_uid.to_string(),
        Platform::Teams => format!("teams/{job_uid}"),
    }
}

/// The store key of a CronJob's alert thread on a platform.
pub fn thread_key(platform: Platform, namespace: &str, cronjob: &str) -> String {
    match platform {
        Platform::Slack => format!("{namespace}/{cronjob}"),
        Platform::Teams => format!("teams/{namespace}/{cronjob}"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertState {
    Pending,
    Posted {
        ts: String,
        /// Set when the alert is a reply in an earlier alert's thread.
        thread_ts: Option<String>,
        /// The channel it was posted in (records from before this field: see the thread).
        #[serde(default)]
        channel: Option<String>,
    },
    /// Not posted: the CronJob was snoozed (the failure still counts in its incident).
    Snoozed,
}

/// One line of the audit trail: who did what, when, to what, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    /// Chat user id, or `rerun-bot` for the bot's own actions.
    pub actor: String,
    pub action: String,
    /// `namespace/cronjob`
    pub subject: String,
    #[serde(default)]
    pub detail: serde_json::Value,
    /// The platform the actor acted on (absent for the bot's own actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An audit event with its sequence number, as `GET /audit` sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// The kinds of [`Store::record`]s: the state of the features that came after
/// the first trees, each a JSON value under a key, so a new kind needs no new
/// tree, resource or migration code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// `namespace/cronjob` → [`crate::core::RunHistory`].
    History,
    /// batch id → [`crate::core::batch::BatchRequest`] (`/rerun failed`).
    Batch,
    /// `<platform>/<channel>` → [`crate::core::storm::Digest`], the channel's storm.
    Digest,
    /// `namespace/cronjob` → [`crate::core::snooze::Snooze`], the CronJob's snooze.
    Snooze,
    /// `namespace/cronjob` → [`crate::core::slots::AlertedSlots`]: the
    /// slots a "did not start" alert was raised for (never one twice).
    Slot,
    /// Job uid → [`crate::core::slots::LongRun`]: a Job alerted as running
    /// too long, until its end is told.
    LongRun,
}

impl RecordKind {
    pub const ALL: [RecordKind; 6] = [
        RecordKind::History,
        RecordKind::Batch,
        RecordKind::Digest,
        RecordKind::Snooze,
        RecordKind::Slot,
        RecordKind::LongRun,
    ];

    /// Its sled tree (`record.<name>`) and resource name prefix.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::History => "history",
            RecordKind::Batch => "batch",
            RecordKind::Digest => "digest",
            RecordKind::Snooze => "snooze",
            RecordKind::Slot => "slot",
            RecordKind::LongRun => "longrun",
        }
    }
}

/// A typed [`Store::record`].
pub async fn get_record<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    kind: RecordKind,
    key: &str,
) -> Result<Option<T>> {
    store
        .record(kind, key)
        .await?
        .map(|v| {
            serde_json::from_value(v).map_err(|e| StoreError::Corrupt {
                tree: kind.name(),
                why: format!("{key}: {e}"),
            })
        })
        .transpose()
}

/// A typed [`Store::put_record`].
pub async fn put_record<T: Serialize>(
    store: &dyn Store,
    kind: RecordKind,
    key: &str,
    value: &T,
) -> Result<()> {
    let value = serde_json::to_value(value).expect("store records serialize");
    store.put_record(kind, key, &value).await
}

/// Every record of a kind, typed; one that does not decode is skipped with a warning.
pub async fn all_records<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    kind: RecordKind,
) -> Result<Vec<(String, T)>> {
    Ok(store
        .records(kind)
        .await?
        .into_iter()
        .filter_map(|(k, v)| match serde_json::from_value(v) {
            Ok(t) => Some((k, t)),
            Err(e) => {
                tracing::warn!(kind = kind.name(), key = %k, error = %e, "undecodable record skipped");
                None
            }
        })
        .collect())
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts the record only if there is none for this Job yet. `false`: one exists.
    async fn insert_alert_if_absent(&self, job_uid: &str, record: &AlertRecord) -> Result<bool>;
    async fn alert(&self, job_uid: &str) -> Result<Option<AlertRecord>>;
    /// Whether an alert record exists (the hot path of every Job event).
    async fn alert_exists(&self, job_uid: &str) -> Result<bool> {
        Ok(self.alert(job_uid).await?.is_some())
    }
    async fn put_alert(&self, job_uid: &str, record: &AlertRecord) -> Result<()>;
    /// Alerts written but not (yet) posted, oldest first.
    async fn pending_alerts(&self) -> Result<Vec<(String, AlertRecord)>>;
    /// Every alert with its key (`uid`, `teams/uid`), oldest first.
    async fn alerts(&self) -> Result<Vec<(String, AlertRecord)>>;

    async fn thread(&self, cronjob_key: &str) -> Result<Option<ThreadState>>;
    async fn put_thread(&self, cronjob_key: &str, thread: &ThreadState) -> Result<()>;
    /// Every alert thread with its key (`namespace/cronjob`,
    /// `teams/namespace/cronjob`), by key.
    async fn threads(&self) -> Result<Vec<(String, ThreadState)>>;

    /// Inserts a new request; `false` if the id is taken.
    async fn insert_request(&self, request: &RerunRequest) -> Result<bool>;
    async fn request(&self, id: &str) -> Result<Option<RerunRequest>>;
    /// Replaces `current` by `next` only if the stored request still equals
    /// `current`; `false`: someone else changed it first (re-read and decide again).
    async fn swap_request(&self, current: &RerunRequest, next: &RerunRequest) -> Result<bool>;
    /// Every request, oldest first.
    async fn requests(&self) -> Result<Vec<RerunRequest>>;

    /// Holds and resumes (`holds` tree), by id.
    async fn insert_operation(&self, op: &Operation) -> Result<bool>;
    async fn operation(&self, id: &str) -> Result<Option<Operation>>;
    /// Compare-and-swap, like [`Store::swap_request`].
    async fn swap_operation(&self, current: &Operation, next: &Operation) -> Result<bool>;
    /// Every hold and resume, oldest first.
    async fn operations(&self) -> Result<Vec<Operation>>;

    /// Appends to the audit trail and returns the event's sequence number.
    async fn append_audit(&self, event: &AuditEvent) -> Result<u64>;
    /// Audit events with a sequence number ≥ `from`, in order, at most `limit`.
    async fn audit(&self, from: u64, limit: usize) -> Result<Vec<(u64, AuditEvent)>>;
    /// Puts an event from another store's audit trail in under its sequence
    /// number, if that number is free; `false`: it is taken (copied before).
    async fn import_audit(&self, seq: u64, event: &AuditEvent) -> Result<bool>;

    /// A [`RecordKind`] record.
    async fn record(&self, kind: RecordKind, key: &str) -> Result<Option<serde_json::Value>>;
    /// Creates or overwrites a record.
    async fn put_record(
        &self,
        kind: RecordKind,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<()>;
    /// Compare-and-swap: writes `next` only if the record still is `current`
    /// (`None`: absent); `false`: someone else changed it first.
    async fn swap_record(
        &self,
        kind: RecordKind,
        key: &str,
        current: Option<&serde_json::Value>,
        next: &serde_json::Value,
    ) -> Result<bool>;
    async fn delete_record(&self, kind: RecordKind, key: &str) -> Result<()>;
    /// Every record of a kind with its key, by key.
    async fn records(&self, kind: RecordKind) -> Result<Vec<(String, serde_json::Value)>>;

    /// Deletes what `retention` lets go; returns how many records went.
    async fn prune(&self, retention: &Retention) -> Result<usize>;

    /// Makes every earlier write durable.
    async fn flush(&self) -> Result<()>;
}
