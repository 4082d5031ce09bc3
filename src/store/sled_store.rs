use std::path::Path;

use serde::{Serialize, de::DeserializeOwned};

use super::{
    AlertRecord, AlertState, AuditEvent, RecordKind, Result, Retention, Store, StoreError,
};
use crate::core::ThreadState;
use crate::core::hold::Operation;
use crate::core::request::RerunRequest;

const SCHEMA_VERSION: &[u8] = b"1";

/// [`Store`] on sled. sled keeps an exclusive lock on its directory: one bot
/// process per data dir (the Deployment uses `strategy: Recreate`).
pub struct SledStore {
    db: sled::Db,
    /// Group commit: flush requests handed out, and the highest one a
    /// finished flush covers. One fsync serves every caller waiting for it.
    flush_tickets: std::sync::atomic::AtomicU64,
    flushed_upto: tokio::sync::Mutex<u64>,
    alerts: sled::Tree,
    threads: sled::Tree,
    audit: sled::Tree,
    requests: sled::Tree,
    holds: sled::Tree,
    /// One tree per [`RecordKind`] (`record.<name>`).
    records: std::collections::HashMap<RecordKind, sled::Tree>,
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records serialize")
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        why: e.to_string(),
    })
}

fn insert_new<T: Serialize>(tree: &sled::Tree, key: &str, value: &T) -> Result<bool> {
    let swapped =
        tree.compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(encode(value)))?;
    Ok(swapped.is_ok())
}

fn get<T: DeserializeOwned>(tree: &sled::Tree, name: &'static str, key: &str) -> Result<Option<T>> {
    tree.get(key)?.map(|v| decode(name, &v)).transpose()
}

/// Replaces `current` by `next` only if the stored value still equals `current`
/// (compared decoded: equal values may be stored with different bytes).
fn swap<T: Serialize + DeserializeOwned + PartialEq>(
    tree: &sled::Tree,
    name: &'static str,
    key: &str,
    current: &T,
    next: &T,
) -> Result<bool> {
    let Some(stored) = tree.get(key.as_bytes())? else {
        return Ok(false);
    };
    if decode::<T>(name, &stored)? != *current {
        return Ok(false);
    }
    let swapped = tree.compare_and_swap(key.as_bytes(), Some(stored), Some(encode(next)))?;
    Ok(swapped.is_ok())
}

/// Every record of a tree with its key, in key order.
fn keyed<T: DeserializeOwned>(tree: &sled::Tree, name: &'static str) -> Result<Vec<(String, T)>> {
    tree.iter()
        .map(|item| {
            let (k, v) = item?;
            Ok((String::from_utf8_lossy(&k).into_owned(), decode(name, &v)?))
        })
        .collect()
}

fn values<T: DeserializeOwned>(tree: &sled::Tree, name: &'static str) -> Result<Vec<T>> {
    tree.iter().map(|item| decode(name, &item?.1)).collect()
}

/// sled reports its directory lock as an `Other` error with this text.
fn is_lock_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<Self> {
        let config = sled::Config::new()
            .path(dir)
            // sled's default page cache is 1 GiB; the bot's working set is tiny.
            .cache_capacity(4 * 1024 * 1024)
            .flush_every_ms(Some(500));
        // A store closed a moment ago (a restart in the same process) may still
        // hold the directory lock while sled's flusher thread winds down.
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if is_lock_error(&e) && attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(sled::Error::Io(e)) if is_lock_error(&e) => {
                    tracing::debug!(error = %e, "sled data dir locked");
                    return Err(StoreError::Db(format!(
                        "{} is locked by another process, a rerun-bot using it (one per data dir): stop it first",
                        dir.display()
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let meta = db.open_tree("meta")?;
        match meta.get("schema")? {
            None => {
                meta.insert("schema", SCHEMA_VERSION)?;
            }
            Some(v) if v.as_ref() == SCHEMA_VERSION => {}
            Some(v) => {
                return Err(StoreError::Db(format!(
                    "data dir has schema version {}, this rerun-bot understands {}",
                    String::from_utf8_lossy(&v),
                    String::from_utf8_lossy(SCHEMA_VERSION)
                )));
            }
        }
        Ok(SledStore {
            flush_tickets: std::sync::atomic::AtomicU64::new(0),
            flushed_upto: tokio::sync::Mutex::new(0),
            alerts: db.open_tree("alerts")?,
            threads: db.open_tree("threads")?,
            audit: db.open_tree("audit")?,
            requests: db.open_tree("requests")?,
            holds: db.open_tree("holds")?,
            records: RecordKind::ALL
                .into_iter()
                .map(|k| Ok((k, db.open_tree(format!("record.{}", k.name()))?)))
                .collect::<Result<_>>()?,
            db,
        })
    }
}

impl SledStore {
    fn tree(&self, kind: RecordKind) -> &sled::Tree {
        &self.records[&kind]
    }
}

#[async_trait::async_trait]
impl Store for SledStore {
    async fn record(&self, kind: RecordKind, key: &str) -> Result<Option<serde_json::Value>> {
        get(self.tree(kind), kind.name(), key)
    }

    async fn put_record(
        &self,
        kind: RecordKind,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<()> {
        self.tree(kind).insert(key, encode(value))?;
        Ok(())
    }

    async fn swap_record(
        &self,
        kind: RecordKind,
        key: &str,
        current: Option<&serde_json::Value>,
        next: &serde_json::Value,
    ) -> Result<bool> {
        match current {
            None => insert_new(self.tree(kind), key, next),
            Some(current) => swap(self.tree(kind), kind.name(), key, current, next),
        }
    }

    async fn delete_record(&self, kind: RecordKind, key: &str) -> Result<()> {
        self.tree(kind).remove(key)?;
        Ok(())
    }

    async fn records(&self, kind: RecordKind) -> Result<Vec<(String, serde_json::Value)>> {
        keyed(self.tree(kind), kind.name())
    }

    async fn insert_alert_if_absent(&self, job_uid: &str, record: &AlertRecord) -> Result<bool> {
        let swapped =
            self.alerts
                .compare_and_swap(job_uid, None as Option<&[u8]>, Some(encode(record)))?;
        Ok(swapped.is_ok())
    }

    async fn alert(&self, job_uid: &str) -> Result<Option<AlertRecord>> {
        self.alerts
            .get(job_uid)?
            .map(|v| decode("alerts", &v))
            .transpose()
    }

    async fn put_alert(&self, job_uid: &str, record: &AlertRecord) -> Result<()> {
        self.alerts.insert(job_uid, encode(record))?;
        Ok(())
    }

    async fn pending_alerts(&self) -> Result<Vec<(String, AlertRecord)>> {
        let mut pending = Vec::new();
        for item in self.alerts.iter() {
            let (k, v) = item?;
            let record: AlertRecord = decode("alerts", &v)?;
            if record.state == AlertState::Pending {
                pending.push((String::from_utf8_lossy(&k).into_owned(), record));
            }
        }
        pending.sort_by_key(|(_, r)| r.created_at);
        Ok(pending)
    }

    async fn alerts(&self) -> Result<Vec<(String, AlertRecord)>> {
        let mut all = keyed(&self.alerts, "alerts")?;
        all.sort_by_key(|(_, r): &(String, AlertRecord)| r.created_at);
        Ok(all)
    }

    async fn thread(&self, cronjob_key: &str) -> Result<Option<ThreadState>> {
        self.threads
            .get(cronjob_key)?
            .map(|v| decode("threads", &v))
            .transpose()
    }

    async fn put_thread(&self, cronjob_key: &str, thread: &ThreadState) -> Result<()> {
        self.threads.insert(cronjob_key, encode(thread))?;
        Ok(())
    }

    async fn threads(&self) -> Result<Vec<(String, ThreadState)>> {
        // sled iterates in key order.
        keyed(&self.threads, "threads")
    }

    async fn insert_request(&self, request: &RerunRequest) -> Result<bool> {
        insert_new(&self.requests, &request.id, request)
    }

    async fn request(&self, id: &str) -> Result<Option<RerunRequest>> {
        get(&self.requests, "requests", id)
    }

    async fn swap_request(&self, current: &RerunRequest, next: &RerunRequest) -> Result<bool> {
        swap(&self.requests, "requests", &current.id, current, next)
    }

    async fn requests(&self) -> Result<Vec<RerunRequest>> {
        let mut all: Vec<RerunRequest> = values(&self.requests, "requests")?;
        all.sort_by_key(|r| r.requested_at);
        Ok(all)
    }

    async fn insert_operation(&self, op: &Operation) -> Result<bool> {
        insert_new(&self.holds, &op.id, op)
    }

    async fn operation(&self, id: &str) -> Result<Option<Operation>> {
        get(&self.holds, "holds", id)
    }

    async fn swap_operation(&self, current: &Operation, next: &Operation) -> Result<bool> {
        swap(&self.holds, "holds", &current.id, current, next)
    }

    async fn operations(&self) -> Result<Vec<Operation>> {
        let mut all: Vec<Operation> = values(&self.holds, "holds")?;
        all.sort_by_key(|o| o.at);
        Ok(all)
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<u64> {
        // generate_id is monotonic across restarts; big-endian keys keep sled's
        // order. An id taken by an imported event is skipped, never overwritten.
        loop {
            let id = self.db.generate_id()?;
            if self.import_audit(id, event).await? {
                return Ok(id);
            }
        }
    }

    async fn import_audit(&self, seq: u64, event: &AuditEvent) -> Result<bool> {
        let swapped = self.audit.compare_and_swap(
            seq.to_be_bytes(),
            None as Option<&[u8]>,
            Some(encode(event)),
        )?;
        Ok(swapped.is_ok())
    }

    async fn audit(&self, from: u64, limit: usize) -> Result<Vec<(u64, AuditEvent)>> {
        self.audit
            .range(from.to_be_bytes()..)
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                let id =
                    u64::from_be_bytes(k.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                        tree: "audit",
                        why: "key is not a u64".into(),
                    })?);
                Ok((id, decode("audit", &v)?))
            })
            .collect()
    }

    async fn prune(&self, retention: &Retention) -> Result<usize> {
        fn drop_where<T: DeserializeOwned>(
            tree: &sled::Tree,
            name: &'static str,
            expired: impl Fn(&T) -> bool,
        ) -> Result<usize> {
            let mut gone = 0;
            for item in tree.iter() {
                let (k, v) = item?;
                // Unreadable records stay: pruning never hides a problem.
                if decode::<T>(name, &v).is_ok_and(|r| expired(&r)) {
                    tree.remove(k)?;
                    gone += 1;
                }
            }
            Ok(gone)
        }
        Ok(
            drop_where(&self.alerts, "alerts", |a| retention.alert_expired(a))?
                + drop_where(&self.requests, "requests", |r| retention.request_expired(r))?
                + drop_where(&self.holds, "holds", |o| retention.operation_expired(o))?
                + drop_where(&self.audit, "audit", |e| retention.audit_expired(e))?,
        )
    }

    async fn flush(&self) -> Result<()> {
        // Not `flush_async`: concurrent calls of it deadlock in sled 0.34
        // (spacejam/sled#1308; the e2e benchmark's burst of 200 alerts hit it).
        use std::sync::atomic::Ordering::SeqCst;
        // The caller's writes happened before it takes its ticket.
        let ticket = self.flush_tickets.fetch_add(1, SeqCst) + 1;
        {
            let mut flushed_upto = self.flushed_upto.lock().await;
            if *flushed_upto >= ticket {
                return Ok(()); // a flush that started after our writes has finished
            }
            let covers = self.flush_tickets.load(SeqCst);
            let db = self.db.clone();
            tokio::task::spawn_blocking(move || db.flush())
                .await
                .map_err(|e| StoreError::Db(format!("flush task: {e}")))??;
            *flushed_upto = covers;
            Ok(())
        }
    }
}

/// The store's behaviour is specified by the contract both stores pass
/// (tests/bot/store.rs); these are sled's own concerns.
#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_flushes_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
        let flushes = (0..64u32).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .put_thread(
                        &format!("ns/cj-{i}"),
                        &ThreadState {
                            channel: "C".into(),
                            posted_in: "C".into(),
                            ts: "1.1".into(),
                            parent_job_uid: "u".into(),
                            opened_at: Utc::now(),
                            failures: 1,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                store.flush().await.unwrap();
            })
        });
        let all = futures::future::join_all(flushes);
        tokio::time::timeout(std::time::Duration::from_secs(20), all)
            .await
            .expect("no flush deadlock");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert("schema", b"99")
                .unwrap();
            db.flush().unwrap();
        }
        let err = SledStore::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("schema version 99"), "{err}");
    }
}
