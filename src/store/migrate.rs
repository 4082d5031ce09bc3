//! `rerun-bot migrate`: copies every record of one store into another (sled →
//! custom resources), so a bot that started on one replica keeps its history
//! when it moves to `RERUN_BOT_STORE=kubernetes`.
//!
//! Idempotent: a record is only ever created, under the key it had, and a key
//! the destination already holds is left as it is (counted "already there").
//! A second run copies nothing and writes nothing; an interrupted run is
//! finished by running it again. Audit events keep their sequence numbers,
//! so the copied trail stays in order and sorts before the new store's own.

use std::fmt;
use std::future::Future;
use std::path::Path;

use futures::stream::{self, StreamExt};

use super::{SledStore, Store, StoreError};

/// Records written at once (each is a round trip or two to the apiserver).
const PARALLEL: usize = 8;
/// Audit events read from the source at a time.
const AUDIT_PAGE: usize = 500;

/// What happened to one kind of record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Created in the destination by this run.
    pub copied: usize,
    /// The destination had the key already (from an earlier run): left alone.
    pub already_there: usize,
}

impl Count {
    fn add(&mut self, copied: bool) {
        if copied {
            self.copied += 1;
        } else {
            self.already_there += 1;
        }
    }
}

/// Per kind of record, what a migration copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub requests: Count,
    /// Holds and resumes.
    pub holds: Count,
    pub alerts: Count,
    pub threads: Count,
    /// Run histories and the other [`super::RecordKind`] records.
    pub records: Count,
    pub audit: Count,
}

impl Summary {
    /// (kind, count), in the order they are copied.
    pub fn kinds(&self) -> [(&'static str, Count); 6] {
        [
            ("rerun requests", self.requests),
            ("holds and resumes", self.holds),
            ("alerts", self.alerts),
            ("alert threads", self.threads),
            ("other records", self.records),
            ("audit events", self.audit),
        ]
    }

    /// Records this run created.
    pub fn copied(&self) -> usize {
        self.kinds().iter().map(|(_, c)| c.copied).sum()
    }
}

/// A table: kind, copied, already there.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<18} {:>7} {:>14}", "", "copied", "already there")?;
        for (kind, count) in self.kinds() {
            writeln!(
                f,
                "{kind:<18} {:>7} {:>14}",
                count.copied, count.already_there
            )?;
        }
        Ok(())
    }
}

/// A migration stopped: what it was doing, and why.
#[derive(Debug, thiserror::Error)]
#[error("{doing}: {}", plain(source))]
pub struct MigrateError {
    pub doing: String,
    #[source]
    pub source: StoreError,
}

/// A store error as one line for people (no `database:` prefix).
pub fn plain(e: &StoreError) -> String {
    match e {
        StoreError::Db(why) => why.clone(),
        e => e.to_string(),
    }
}

fn failed(doing: impl Into<String>) -> impl FnOnce(StoreError) -> MigrateError {
    let doing = doing.into();
    move |source| MigrateError { doing, source }
}

/// Opens a sled data dir to migrate from. Unlike [`SledStore::open`] it
/// refuses a directory that holds no database (a mistyped path would
/// otherwise be created empty and "migrate" nothing).
pub fn open_sled(dir: &Path) -> Result<SledStore, StoreError> {
    if !dir.join("db").is_file() || !dir.join("conf").is_file() {
        return Err(StoreError::Db(format!(
            "{} holds no sled database (the bot's RERUN_BOT_DATA_DIR has files `conf` and `db`)",
            dir.display()
        )));
    }
    SledStore::open(dir)
}

/// Creates each record in the destination unless its key is there already.
/// Stops at the first error; what was copied until then stays (rerun to finish).
pub async fn migrate(from: &dyn Store, to: &dyn Store) -> Result<Summary, MigrateError> {
    let mut summary = Summary::default();

    let requests = from.requests().await.map_err(failed("reading requests"))?;
    copy(requests, &mut summary.requests, |r| async move {
        to.insert_request(&r)
            .await
            .map_err(failed(format!("copying request {}", r.id)))
    })
    .await?;

    let holds = from
        .operations()
        .await
        .map_err(failed("reading holds and resumes"))?;
    copy(holds, &mut summary.holds, |op| async move {
        to.insert_operation(&op).await.map_err(failed(format!(
            "copying {} {}",
            format!("{:?}", op.kind).to_lowercase(),
            op.id
        )))
    })
    .await?;

    let alerts = from.alerts().await.map_err(failed("reading alerts"))?;
    copy(alerts, &mut summary.alerts, |(key, record)| async move {
        to.insert_alert_if_absent(&key, &record)
            .await
            .map_err(failed(format!("copying alert {key}")))
    })
    .await?;

    let threads = from
        .threads()
        .await
        .map_err(failed("reading alert threads"))?;
    copy(threads, &mut summary.threads, |(key, thread)| async move {
        let fail = || failed(format!("copying alert thread {key}"));
        // The destination's thread may have moved on since an earlier run: kept.
        if to.thread(&key).await.map_err(fail())?.is_some() {
            return Ok(false);
        }
        to.put_thread(&key, &thread).await.map_err(fail())?;
        Ok(true)
    })
    .await?;

    for kind in super::RecordKind::ALL {
        let records = from
            .records(kind)
            .await
            .map_err(failed(format!("reading {} records", kind.name())))?;
        copy(records, &mut summary.records, |(key, value)| async move {
            // Kept when the destination has one already (it may have moved on).
            to.swap_record(kind, &key, None, &value)
                .await
                .map_err(failed(format!("copying {} record {key}", kind.name())))
        })
        .await?;
    }

    let mut next = 0;
    loop {
        let page = from
            .audit(next, AUDIT_PAGE)
            .await
            .map_err(failed(format!("reading audit events from {next}")))?;
        let Some(&(last, _)) = page.last() else { break };
        copy(page, &mut summary.audit, |(seq, event)| async move {
            to.import_audit(seq, &event)
                .await
                .map_err(failed(format!("copying audit event {seq}")))
        })
        .await?;
        match last.checked_add(1) {
            Some(n) => next = n,
            None => break,
        }
    }

    to.flush().await.map_err(failed("flushing"))?;
    Ok(summary)
}

/// Runs `create` (`true`: created, `false`: already there) on every item,
/// a few at a time.
async fn copy<T, F, Fut>(items: Vec<T>, count: &mut Count, create: F) -> Result<(), MigrateError>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = Result<bool, MigrateError>>,
{
    let mut created = stream::iter(items).map(create).buffer_unordered(PARALLEL);
    while let Some(result) = created.next().await {
        count.add(result?);
    }
    Ok(())
}
