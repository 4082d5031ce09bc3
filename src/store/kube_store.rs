//! [`Store`] on Kubernetes custom resources in the bot's namespace
//! (`RERUN_BOT_STORE=kubernetes`), so several replicas share one truth and
//! nothing new is operated.
//!
//! Every change is a `PUT …/status` with the resourceVersion read; a `409`
//! is a lost compare-and-swap (the caller re-reads and decides again). A
//! create is the claim: `409 AlreadyExists` means someone else made it first.
//! The apiserver's write is durable when it answers, so `flush` has nothing
//! left to do.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams, Preconditions};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::crds::{
    self, AlertThreadSpec, AlertThreadStatus, AuditEventSpec, BotRecordSpec, BotRecordStatus,
    JobAlertSpec, JobAlertStatus, MaintenanceHoldSpec, MaintenanceHoldStatus, RerunRequestSpec,
    RerunRequestStatus,
};
use super::{
    AlertRecord, AlertState, AuditEvent, RecordKind, Result, Retention, Store, StoreError,
};
use crate::core::ThreadState;
use crate::core::hold::Operation;
use crate::core::request::RerunRequest;

/// A custom resource holding one record.
trait Held:
    kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    type Value: Serialize + DeserializeOwned + PartialEq + Clone + Send + Sync;
    /// Whether its records change after they are made (they have a status
    /// to write); audit events never do.
    const MUTABLE: bool = true;
    /// The resource for a new record (its spec; the apiserver drops status on create).
    fn fresh(name: &str, value: &Self::Value) -> Self;
    /// `status.record` once written, else `spec.record`.
    fn record(&self) -> &serde_json::Value;
    /// Sets the status from the record.
    fn set(&mut self, value: &Self::Value);
}

fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("store records serialize")
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(
            [(
                "app.kubernetes.io/managed-by".to_string(),
                "rerun-bot".to_string(),
            )]
            .into(),
        ),
        ..ObjectMeta::default()
    }
}

impl Held for crds::RerunRequest {
    type Value = RerunRequest;
    fn fresh(name: &str, r: &RerunRequest) -> Self {
        let mut cr = crds::RerunRequest::new(
            name,
            RerunRequestSpec {
                cronjob: format!("{}/{}", r.namespace, r.cronjob),
                requester: r.requested_by.clone(),
                reason: r.reason.clone(),
                record: to_json(r),
            },
        );
        cr.metadata = meta(name);
        cr
    }
    fn record(&self) -> &serde_json::Value {
        self.status
            .as_ref()
            .map(|s| &s.record)
            .unwrap_or(&self.spec.record)
    }
    fn set(&mut self, r: &RerunRequest) {
        self.status = Some(RerunRequestStatus {
            phase: r.state.as_str().to_string(),
            approver: r.approved_by.clone(),
            job: r.job.clone(),
            record: to_json(r),
        });
    }
}

impl Held for crds::MaintenanceHold {
    type Value = Operation;
    fn fresh(name: &str, op: &Operation) -> Self {
        let mut cr = crds::MaintenanceHold::new(
            name,
            MaintenanceHoldSpec {
                kind: to_json(&op.kind).as_str().unwrap_or_default().to_string(),
                target: op.target.clone(),
                by: op.by.clone(),
                record: to_json(op),
            },
        );
        cr.metadata = meta(name);
        cr
    }
    fn record(&self) -> &serde_json::Value {
        self.status
            .as_ref()
            .map(|s| &s.record)
            .unwrap_or(&self.spec.record)
    }
    fn set(&mut self, op: &Operation) {
        self.status = Some(MaintenanceHoldStatus {
            phase: to_json(&op.phase).as_str().unwrap_or_default().to_string(),
            record: to_json(op),
        });
    }
}

/// An alert record with its store key (the resource name is derived from it).
#[derive(Clone, PartialEq, Serialize, serde::Deserialize)]
struct Keyed<T> {
    key: String,
    #[serde(flatten)]
    value: T,
}

impl Held for crds::JobAlert {
    type Value = Keyed<AlertRecord>;
    fn fresh(name: &str, a: &Self::Value) -> Self {
        let mut cr = crds::JobAlert::new(
            name,
            JobAlertSpec {
                key: a.key.clone(),
                cronjob: format!("{}/{}", a.value.alert.namespace, a.value.alert.cronjob),
                job: a.value.alert.job.clone(),
                platform: a.value.platform.name().to_string(),
                record: to_json(a),
            },
        );
        cr.metadata = meta(name);
        cr
    }
    fn record(&self) -> &serde_json::Value {
        self.status
            .as_ref()
            .map(|s| &s.record)
            .unwrap_or(&self.spec.record)
    }
    fn set(&mut self, a: &Self::Value) {
        self.status = Some(JobAlertStatus {
            state: match a.value.state {
                AlertState::Pending => "Pending",
                AlertState::Posted { .. } => "Posted",
                AlertState::Snoozed => "Snoozed",
            }
            .to_string(),
            record: to_json(a),
        });
    }
}

impl Held for crds::AlertThread {
    type Value = Keyed<ThreadState>;
    fn fresh(name: &str, t: &Self::Value) -> Self {
        let (platform, cronjob) = split_platform(&t.key, THREAD_PARTS);
        let mut cr = crds::AlertThread::new(
            name,
            AlertThreadSpec {
                key: t.key.clone(),
                cronjob: cronjob.to_string(),
                platform: platform.to_string(),
                record: to_json(t),
            },
        );
        cr.metadata = meta(name);
        cr
    }
    fn record(&self) -> &serde_json::Value {
        self.status
            .as_ref()
            .map(|s| &s.record)
            .unwrap_or(&self.spec.record)
    }
    fn set(&mut self, t: &Self::Value) {
        self.status = Some(AlertThreadStatus {
            failures: t.value.failures,
            record: to_json(t),
        });
    }
}

/// A [`RecordKind`] record as a [`crds::BotRecord`] holds it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
struct KindRecord {
    kind: String,
    key: String,
    value: serde_json::Value,
}

impl Held for crds::BotRecord {
    type Value = KindRecord;
    fn fresh(name: &str, r: &KindRecord) -> Self {
        let mut cr = crds::BotRecord::new(
            name,
            BotRecordSpec {
                kind: r.kind.clone(),
                key: r.key.clone(),
                record: to_json(r),
            },
        );
        cr.metadata = meta(name);
        cr
    }
    fn record(&self) -> &serde_json::Value {
        self.status
            .as_ref()
            .map(|s| &s.record)
            .unwrap_or(&self.spec.record)
    }
    fn set(&mut self, r: &KindRecord) {
        self.status = Some(BotRecordStatus { record: to_json(r) });
    }
}

/// A record's resource name: `<kind>.<key with / as .>` when that is a DNS
/// subdomain, else `<kind>.x<hex of the key>` (cut and hashed past 253).
fn record_name(kind: RecordKind, key: &str) -> String {
    let plain = key.replace('/', ".");
    let dns = !plain.is_empty()
        && plain
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && plain.starts_with(|c: char| c.is_ascii_alphanumeric())
        && plain.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !plain.contains("..");
    let name = if dns {
        format!("{}.{plain}", kind.name())
    } else {
        format!("{}.x{}", kind.name(), hex::encode(key))
    };
    if name.len() <= 253 {
        return name;
    }
    use sha2::Digest;
    format!(
        "{}.h{}",
        kind.name(),
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    )
}

impl Held for crds::AuditEvent {
    type Value = (u64, AuditEvent);
    const MUTABLE: bool = false;
    fn fresh(name: &str, (seq, e): &Self::Value) -> Self {
        let mut cr = crds::AuditEvent::new(
            name,
            AuditEventSpec {
                seq: *seq,
                action: e.action.clone(),
                actor: e.actor.clone(),
                subject: e.subject.clone(),
                record: to_json(e),
            },
        );
        cr.metadata = meta(name);
        cr
    }
    fn record(&self) -> &serde_json::Value {
        &self.spec.record
    }
    fn set(&mut self, _: &Self::Value) {}
}

/// How many resourceVersions a [`Table`] remembers before it starts over.
const SEEN_LIMIT: usize = 20_000;

/// One kind's resources in the bot's namespace.
struct Table<K> {
    api: Api<K>,
    plural: &'static str,
    /// What this process last saw of a resource, by name: its
    /// resourceVersion, or `None` when it was absent. Only a hint for
    /// [`Table::put`], which writes on it without reading first: the
    /// apiserver still checks the version (or the name, on create), and a
    /// conflict means a read and another try, as before.
    seen: Mutex<HashMap<String, Option<String>>>,
}

impl<K: Held> Table<K> {
    fn new(client: kube::Client, namespace: &str, plural: &'static str) -> Self {
        Table {
            api: Api::namespaced(client, namespace),
            plural,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn saw(&self, name: &str, version: Option<String>) {
        if !K::MUTABLE {
            return;
        }
        let mut seen = self.seen.lock().expect("seen versions");
        if seen.len() >= SEEN_LIMIT && !seen.contains_key(name) {
            seen.clear();
        }
        seen.insert(name.to_string(), version);
    }

    fn forget(&self, name: &str) {
        self.seen.lock().expect("seen versions").remove(name);
    }

    /// `Some(None)`: absent when last seen; `None`: not known.
    fn last_seen(&self, name: &str) -> Option<Option<String>> {
        self.seen.lock().expect("seen versions").get(name).cloned()
    }

    fn error(&self, e: kube::Error) -> StoreError {
        match &e {
            kube::Error::Api(s)
                if s.code == 404 && s.reason == "NotFound" && s.details.is_none() =>
            {
                // The whole story: the apiserver serves no such resource.
                StoreError::Db(format!(
                    "the {}.rerun-bot.io custom resource is not installed: install the CRDs with `rerun-bot crds | kubectl apply -f -` (or apply manifests/ha/crds.yaml)",
                    self.plural
                ))
            }
            kube::Error::Api(s) if s.code == 403 => StoreError::Db(format!(
                "no RBAC access to {}.rerun-bot.io (see manifests/ha/): {e}",
                self.plural
            )),
            _ => StoreError::Db(format!("{}: {e}", self.plural)),
        }
    }

    fn decode(&self, cr: &K) -> Result<K::Value> {
        serde_json::from_value(cr.record().clone()).map_err(|e| StoreError::Corrupt {
            tree: self.plural,
            why: format!("{}: {e}", cr.meta().name.as_deref().unwrap_or("(unnamed)")),
        })
    }

    async fn get(&self, name: &str) -> Result<Option<K>> {
        let found = self.api.get_opt(name).await.map_err(|e| self.error(e))?;
        self.saw(
            name,
            found
                .as_ref()
                .and_then(|cr| cr.meta().resource_version.clone()),
        );
        Ok(found)
    }

    async fn value(&self, name: &str) -> Result<Option<K::Value>> {
        match self.get(name).await? {
            Some(cr) => self.decode(&cr).map(Some),
            None => Ok(None),
        }
    }

    /// Creates the record; `false` when the name is taken. The status is
    /// written right after, so the view is complete (the record is already).
    async fn insert(&self, name: &str, value: &K::Value) -> Result<bool> {
        match self
            .api
            .create(&PostParams::default(), &K::fresh(name, value))
            .await
        {
            Ok(mut created) => {
                if !K::MUTABLE {
                    return Ok(true); // no status to write
                }
                self.saw(name, created.meta().resource_version.clone());
                created.set(value);
                match self
                    .api
                    .replace_status(name, &PostParams::default(), &created)
                    .await
                {
                    Ok(written) => self.saw(name, written.meta().resource_version.clone()),
                    Err(e) => {
                        tracing::debug!(error = %e, name, "status of a new record not written yet")
                    }
                }
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.forget(name);
                Ok(false)
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// Writes `next` over `cr` (read before); `false`: changed meanwhile.
    async fn write(&self, mut cr: K, next: &K::Value) -> Result<bool> {
        cr.set(next);
        let name = cr.meta().name.clone().unwrap_or_default();
        match self
            .api
            .replace_status(&name, &PostParams::default(), &cr)
            .await
        {
            Ok(written) => {
                self.saw(&name, written.meta().resource_version.clone());
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.forget(&name);
                Ok(false)
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// Compare-and-swap: `next` only if the stored record still equals `current`.
    async fn swap(&self, name: &str, current: &K::Value, next: &K::Value) -> Result<bool> {
        let Some(cr) = self.get(name).await? else {
            return Ok(false);
        };
        if self.decode(&cr)? != *current {
            return Ok(false);
        }
        self.write(cr, next).await
    }

    /// Writes `next` on the version last seen, without reading it again;
    /// `false`: changed or deleted since (read and try again).
    async fn write_seen(&self, name: &str, version: String, next: &K::Value) -> Result<bool> {
        let mut cr = K::fresh(name, next);
        cr.meta_mut().resource_version = Some(version);
        cr.set(next);
        match self
            .api
            .replace_status(name, &PostParams::default(), &cr)
            .await
        {
            Ok(written) => {
                self.saw(name, written.meta().resource_version.clone());
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                self.forget(name);
                Ok(false)
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// Creates or overwrites (last writer wins, retried on a lost race). On
    /// what this process saw last, when it saw it: no read first.
    async fn put(&self, name: &str, value: &K::Value) -> Result<()> {
        for _ in 0..10 {
            let written = match self.last_seen(name) {
                Some(None) => self.insert(name, value).await?,
                Some(Some(version)) => self.write_seen(name, version, value).await?,
                None => false,
            };
            if written {
                return Ok(());
            }
            match self.get(name).await? {
                None => {
                    if self.insert(name, value).await? {
                        return Ok(());
                    }
                }
                Some(cr) => {
                    if self.write(cr, value).await? {
                        return Ok(());
                    }
                }
            }
        }
        Err(StoreError::Db(format!(
            "{} `{name}`: ten writes in a row lost their race",
            self.plural
        )))
    }

    async fn list(&self) -> Result<Vec<K>> {
        let mut all = Vec::new();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = self.api.list(&params).await.map_err(|e| self.error(e))?;
            let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
            all.extend(page.items);
            match next {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(all),
            }
        }
    }

    /// Deletes every resource whose record `expired` says may go, each only
    /// as read (resourceVersion precondition): a record changed meanwhile stays.
    async fn prune(&self, expired: impl Fn(&K) -> bool) -> Result<usize> {
        let mut gone = 0;
        for cr in self.list().await? {
            if !expired(&cr) {
                continue;
            }
            let name = cr.meta().name.clone().unwrap_or_default();
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: cr.meta().resource_version.clone(),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            match self.api.delete(&name, &params).await {
                Ok(_) => {
                    self.saw(&name, None);
                    gone += 1
                }
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => self.forget(&name),
                Err(e) => return Err(self.error(e)),
            }
        }
        Ok(gone)
    }

    /// Whether the record decodes and `test` holds for it.
    fn holds(&self, cr: &K, test: impl Fn(&K::Value) -> bool) -> bool {
        self.decode(cr).is_ok_and(|v| test(&v))
    }

    async fn values(&self) -> Result<Vec<K::Value>> {
        self.list()
            .await?
            .iter()
            .map(|cr| self.decode(cr))
            .collect()
    }
}

/// A store key as a resource name: `<platform>.<key with / as .>`. Teams'
/// keys are Slack's with one more leading segment, `teams/` (`slack_parts`:
/// how many segments a Slack key of this kind has); namespace names have no
/// dots and CronJob names no slashes, so this is one to one.
fn object_name(key: &str, slack_parts: usize) -> String {
    match split_platform(key, slack_parts) {
        ("teams", rest) => format!("teams.{}", rest.replace('/', ".")),
        (_, rest) => format!("slack.{}", rest.replace('/', ".")),
    }
}

/// (`slack` | `teams`, the key without the platform).
fn split_platform(key: &str, slack_parts: usize) -> (&'static str, &str) {
    match key.strip_prefix("teams/") {
        Some(rest) if key.split('/').count() > slack_parts => ("teams", rest),
        _ => ("slack", key),
    }
}

/// Alert keys: a Job uid (Slack), `teams/<uid>`.
const ALERT_PARTS: usize = 1;
/// Thread keys: `namespace/cronjob` (Slack), `teams/namespace/cronjob`.
const THREAD_PARTS: usize = 2;

pub struct KubeStore {
    requests: Table<crds::RerunRequest>,
    holds: Table<crds::MaintenanceHold>,
    alerts: Table<crds::JobAlert>,
    threads: Table<crds::AlertThread>,
    audit: Table<crds::AuditEvent>,
    records: Table<crds::BotRecord>,
    /// Alert keys known to exist: alert records are never deleted while
    /// their Job is watched, so the hot path (every Job event) asks once.
    known_alerts: Mutex<HashSet<String>>,
    audit_counter: AtomicU64,
}

impl KubeStore {
    /// Checks that the custom resources are served and readable.
    pub async fn open(client: kube::Client, namespace: &str) -> Result<Self> {
        let store = KubeStore {
            requests: Table::new(client.clone(), namespace, "rerunrequests"),
            holds: Table::new(client.clone(), namespace, "maintenanceholds"),
            alerts: Table::new(client.clone(), namespace, "jobalerts"),
            threads: Table::new(client.clone(), namespace, "alertthreads"),
            audit: Table::new(client.clone(), namespace, "auditevents"),
            records: Table::new(client, namespace, "botrecords"),
            known_alerts: Mutex::new(HashSet::new()),
            audit_counter: AtomicU64::new(0),
        };
        let probe = ListParams::default().limit(1);
        macro_rules! probe {
            ($t:expr) => {
                $t.api.list(&probe).await.map_err(|e| $t.error(e))?;
            };
        }
        probe!(store.requests);
        probe!(store.holds);
        probe!(store.alerts);
        probe!(store.threads);
        probe!(store.audit);
        probe!(store.records);
        Ok(store)
    }

    fn known(&self, key: &str) -> bool {
        self.known_alerts
            .lock()
            .expect("known alerts")
            .contains(key)
    }

    fn remember(&self, key: &str) {
        self.known_alerts
            .lock()
            .expect("known alerts")
            .insert(key.to_string());
    }

    /// Time-sortable and unique per process: microseconds × 1000 + a counter.
    fn next_seq(&self) -> u64 {
        let micros = chrono::Utc::now().timestamp_micros().max(0) as u64;
        micros * 1000 + self.audit_counter.fetch_add(1, Ordering::Relaxed) % 1000
    }
}

fn kind_record(kind: RecordKind, key: &str, value: &serde_json::Value) -> KindRecord {
    KindRecord {
        kind: kind.name().to_string(),
        key: key.to_string(),
        value: value.clone(),
    }
}

fn keyed<T>(key: &str, value: T) -> Keyed<T> {
    Keyed {
        key: key.to_string(),
        value,
    }
}

#[async_trait::async_trait]
impl Store for KubeStore {
    async fn record(&self, kind: RecordKind, key: &str) -> Result<Option<serde_json::Value>> {
        Ok(self
            .records
            .value(&record_name(kind, key))
            .await?
            .map(|r| r.value))
    }

    async fn put_record(
        &self,
        kind: RecordKind,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<()> {
        self.records
            .put(&record_name(kind, key), &kind_record(kind, key, value))
            .await
    }

    async fn swap_record(
        &self,
        kind: RecordKind,
        key: &str,
        current: Option<&serde_json::Value>,
        next: &serde_json::Value,
    ) -> Result<bool> {
        let name = record_name(kind, key);
        let next = kind_record(kind, key, next);
        match current {
            None => self.records.insert(&name, &next).await,
            Some(current) => {
                self.records
                    .swap(&name, &kind_record(kind, key, current), &next)
                    .await
            }
        }
    }

    async fn delete_record(&self, kind: RecordKind, key: &str) -> Result<()> {
        let name = record_name(kind, key);
        match self
            .records
            .api
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => {
                self.records.saw(&name, None);
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                self.records.saw(&name, None);
                Ok(())
            }
            Err(e) => Err(self.records.error(e)),
        }
    }

    async fn records(&self, kind: RecordKind) -> Result<Vec<(String, serde_json::Value)>> {
        let mut all: Vec<(String, serde_json::Value)> = self
            .records
            .values()
            .await?
            .into_iter()
            .filter(|r| r.kind == kind.name())
            .map(|r| (r.key, r.value))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    async fn insert_alert_if_absent(&self, job_uid: &str, record: &AlertRecord) -> Result<bool> {
        let inserted = self
            .alerts
            .insert(
                &object_name(job_uid, ALERT_PARTS),
                &keyed(job_uid, record.clone()),
            )
            .await?;
        self.remember(job_uid);
        Ok(inserted)
    }

    async fn alert(&self, job_uid: &str) -> Result<Option<AlertRecord>> {
        Ok(self
            .alerts
            .value(&object_name(job_uid, ALERT_PARTS))
            .await?
            .map(|k| k.value))
    }

    async fn put_alert(&self, job_uid: &str, record: &AlertRecord) -> Result<()> {
        self.alerts
            .put(
                &object_name(job_uid, ALERT_PARTS),
                &keyed(job_uid, record.clone()),
            )
            .await?;
        self.remember(job_uid);
        Ok(())
    }

    async fn alert_exists(&self, job_uid: &str) -> Result<bool> {
        if self.known(job_uid) {
            return Ok(true);
        }
        let exists = self
            .alerts
            .get(&object_name(job_uid, ALERT_PARTS))
            .await?
            .is_some();
        if exists {
            self.remember(job_uid);
        }
        Ok(exists)
    }

    async fn pending_alerts(&self) -> Result<Vec<(String, AlertRecord)>> {
        let mut pending: Vec<(String, AlertRecord)> = self
            .alerts
            .values()
            .await?
            .into_iter()
            .filter(|k| k.value.state == AlertState::Pending)
            .map(|k| (k.key, k.value))
            .collect();
        pending.sort_by_key(|(_, r)| r.created_at);
        Ok(pending)
    }

    async fn alerts(&self) -> Result<Vec<(String, AlertRecord)>> {
        let mut all: Vec<(String, AlertRecord)> = self
            .alerts
            .values()
            .await?
            .into_iter()
            .map(|k| (k.key, k.value))
            .collect();
        all.sort_by_key(|(_, r)| r.created_at);
        Ok(all)
    }

    async fn thread(&self, cronjob_key: &str) -> Result<Option<ThreadState>> {
        Ok(self
            .threads
            .value(&object_name(cronjob_key, THREAD_PARTS))
            .await?
            .map(|k| k.value))
    }

    async fn put_thread(&self, cronjob_key: &str, thread: &ThreadState) -> Result<()> {
        self.threads
            .put(
                &object_name(cronjob_key, THREAD_PARTS),
                &keyed(cronjob_key, thread.clone()),
            )
            .await
    }

    async fn threads(&self) -> Result<Vec<(String, ThreadState)>> {
        let mut all: Vec<(String, ThreadState)> = self
            .threads
            .values()
            .await?
            .into_iter()
            .map(|k| (k.key, k.value))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    async fn insert_request(&self, request: &RerunRequest) -> Result<bool> {
        self.requests.insert(&request.id, request).await
    }

    async fn request(&self, id: &str) -> Result<Option<RerunRequest>> {
        self.requests.value(id).await
    }

    async fn swap_request(&self, current: &RerunRequest, next: &RerunRequest) -> Result<bool> {
        self.requests.swap(&current.id, current, next).await
    }

    async fn requests(&self) -> Result<Vec<RerunRequest>> {
        let mut all = self.requests.values().await?;
        all.sort_by_key(|r| r.requested_at);
        Ok(all)
    }

    async fn insert_operation(&self, op: &Operation) -> Result<bool> {
        self.holds.insert(&op.id, op).await
    }

    async fn operation(&self, id: &str) -> Result<Option<Operation>> {
        self.holds.value(id).await
    }

    async fn swap_operation(&self, current: &Operation, next: &Operation) -> Result<bool> {
        self.holds.swap(&current.id, current, next).await
    }

    async fn operations(&self) -> Result<Vec<Operation>> {
        let mut all = self.holds.values().await?;
        all.sort_by_key(|o| o.at);
        Ok(all)
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<u64> {
        loop {
            let seq = self.next_seq();
            if self.import_audit(seq, event).await? {
                return Ok(seq);
            }
        }
    }

    /// Named `e<seq, 20 digits>`: sled's small sequence numbers sort before
    /// this store's own (microseconds × 1000).
    async fn import_audit(&self, seq: u64, event: &AuditEvent) -> Result<bool> {
        self.audit
            .insert(&format!("e{seq:020}"), &(seq, event.clone()))
            .await
    }

    async fn audit(&self, from: u64, limit: usize) -> Result<Vec<(u64, AuditEvent)>> {
        let mut all: Vec<(u64, AuditEvent)> = self
            .audit
            .list()
            .await?
            .iter()
            .filter(|cr| cr.spec.seq >= from)
            .map(|cr| {
                serde_json::from_value(cr.spec.record.clone())
                    .map(|e| (cr.spec.seq, e))
                    .map_err(|e| StoreError::Corrupt {
                        tree: "auditevents",
                        why: e.to_string(),
                    })
            })
            .collect::<Result<_>>()?;
        all.sort_by_key(|(seq, _)| *seq);
        all.truncate(limit);
        Ok(all)
    }

    async fn prune(&self, retention: &Retention) -> Result<usize> {
        let alerts = &self.alerts;
        let requests = &self.requests;
        let holds = &self.holds;
        Ok(alerts
            .prune(|cr| alerts.holds(cr, |k| retention.alert_expired(&k.value)))
            .await?
            + requests
                .prune(|cr| requests.holds(cr, |r| retention.request_expired(r)))
                .await?
            + holds
                .prune(|cr| holds.holds(cr, |o| retention.operation_expired(o)))
                .await?
            + self
                .audit
                .prune(|cr| {
                    serde_json::from_value::<AuditEvent>(cr.spec.record.clone())
                        .is_ok_and(|e| retention.audit_expired(&e))
                })
                .await?)
    }

    /// The apiserver has persisted every write it answered.
    async fn flush(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::object_name;

    #[test]
    fn keys_become_distinct_dns_names() {
        use super::{ALERT_PARTS, THREAD_PARTS};
        assert_eq!(object_name("3f2b-uid", ALERT_PARTS), "slack.3f2b-uid");
        assert_eq!(object_name("teams/3f2b-uid", ALERT_PARTS), "teams.3f2b-uid");
        assert_eq!(
            object_name("billing/sync.v2", THREAD_PARTS),
            "slack.billing.sync.v2"
        );
        assert_eq!(
            object_name("teams/billing/sync", THREAD_PARTS),
            "teams.billing.sync"
        );
        // Slack's thread of CronJob `x.y` in a namespace called `teams` is not
        // Teams' thread of CronJob `y` in namespace `x`.
        assert_eq!(object_name("teams/x.y", THREAD_PARTS), "slack.teams.x.y");
        assert_eq!(object_name("teams/x/y", THREAD_PARTS), "teams.x.y");
    }
}
