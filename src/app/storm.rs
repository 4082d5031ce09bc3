//! Storm digests in chat (`core::storm`): when more than
//! `RERUN_BOT_STORM_THRESHOLD` CronJobs open an incident in one channel
//! within a minute, the rest of the storm is one digest message, updated as
//! it grows, with one line per CronJob in its thread.
//!
//! Lines are group-committed: every alert of the storm adds its line and
//! waits for the channel's digest lock; whoever gets it posts every line
//! waiting by then in one message. With the channel's paced queue, a storm of
//! 200 failures is a handful of thread messages, not 200 — and no alert costs
//! a second call for its details (they are in its line or not shown).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::App;
use crate::chat::{ChatError, MessageRef, Outgoing, Platform};
use crate::core::storm::{Digest, DigestEntry, Recent};
use crate::store::{self, AlertRecord, RecordKind};

/// Lines per thread message (within every platform's message limits).
const LINES_PER_MESSAGE: usize = 30;
/// The digest message is updated at most this often (Slack's chat.update is Tier 3).
const UPDATE_EVERY: Duration = Duration::from_secs(3);

/// The storm state of the channels, in memory; digests are also stored.
#[derive(Default)]
pub(crate) struct Storms {
    /// New incidents of the last minute, by digest key.
    recent: HashMap<String, Recent>,
    /// Digests by key (`<platform>/<channel>`), current or last.
    digests: HashMap<String, Digest>,
    /// Lines waiting to be posted, and what became of those posted, by key.
    waiting: HashMap<String, Vec<DigestEntry>>,
    posted: HashMap<String, HashMap<String, Result<Posted, String>>>,
    /// When each digest message was last updated, and whether it is behind.
    updated: HashMap<String, (Instant, bool)>,
}

/// Where a CronJob's line of a digest went.
#[derive(Debug, Clone)]
pub(crate) struct Posted {
    pub digest: MessageRef,
    pub digest_id: String,
    pub line_ts: String,
}

fn digest_key(platform: Platform, channel: &str) -> String {
    format!("{}/{channel}", platform.name())
}

fn entry_of(record: &AlertRecord) -> DigestEntry {
    let a = &record.alert;
    DigestEntry {
        namespace: a.namespace.clone(),
        cronjob: a.cronjob.clone(),
        job: a.job.clone(),
        job_uid: a.job_uid.clone(),
        reason: a.reason.clone(),
        exit_code: a.exit.as_ref().map(|e| e.exit_code),
        failed_at: a.failed_at,
        own_alert: false,
        recovered: false,
    }
}

/// A digest line: `• ns/cronjob — reason, exit code, Job`.
fn line(e: &DigestEntry) -> String {
    let exit = e
        .exit_code
        .map(|c| format!(", exit code {c}"))
        .unwrap_or_default();
    format!(
        "• {}/{} — {}{exit} (Job {})",
        e.namespace, e.cronjob, e.reason, e.job
    )
}

impl App {
    /// Loads the stored digests (start of each leadership term).
    pub(crate) async fn load_digests(&self) {
        match store::all_records::<Digest>(self.store.as_ref(), RecordKind::Digest).await {
            Ok(all) => {
                let mut storms = self.storms.lock().expect("storm lock");
                for (key, d) in all {
                    storms.digests.entry(key).or_insert(d);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the storm digests"),
        }
    }

    /// A storm is going on in the channel (new incidents there join its digest).
    pub(crate) fn storm_active(
        &self,
        platform: Platform,
        channel: &str,
        now: DateTime<Utc>,
    ) -> bool {
        self.storms
            .lock()
            .expect("storm lock")
            .digests
            .get(&digest_key(platform, channel))
            .is_some_and(|d| d.active(now))
    }

    /// Drops a deleted digest from memory.
    pub(crate) fn forget_digest(&self, key: &str) {
        let mut storms = self.storms.lock().expect("storm lock");
        storms.digests.remove(key);
        storms.updated.remove(key);
    }

    /// A digest by its id (a button on it names it).
    pub(crate) fn digest_by_id(&self, id: &str) -> Option<Digest> {
        self.storms
            .lock()
            .expect("storm lock")
            .digests
            .values()
            .find(|d| d.id == id)
            .cloned()
    }

    /// Whether a new incident of `record` joins its channel's storm digest
    /// (one is going on, or this incident starts one).
    pub(crate) async fn joins_storm(&self, record: &AlertRecord, now: DateTime<Utc>) -> bool {
        let threshold = self.settings.storm_threshold;
        if threshold == 0 {
            return false;
        }
        let key = digest_key(record.platform, &record.channel);
        let started = {
            let mut storms = self.storms.lock().expect("storm lock");
            if storms.digests.get(&key).is_some_and(|d| d.active(now)) {
                return true;
            }
            let Some(window) = storms.recent.entry(key.clone()).or_default().opened(
                entry_of(record),
                now,
                threshold,
            ) else {
                return false;
            };
            let mut digest = Digest::new(
                format!("{:012x}", super::new_id() & 0xffff_ffff_ffff),
                &record.channel,
                now,
            );
            // The CronJobs that failed just before had alerts of their own.
            for e in window {
                let own_alert = e.job_uid != record.alert.job_uid;
                if own_alert {
                    digest.add(DigestEntry { own_alert, ..e }, now);
                }
            }
            storms.digests.insert(key.clone(), digest.clone());
            digest
        };
        tracing::warn!(channel = %record.channel, platform = record.platform.name(), digest = %started.id, "failure storm: further incidents go into one digest");
        self.store_digest(&key, &started).await;
        true
    }

    async fn store_digest(&self, key: &str, digest: &Digest) {
        if let Err(e) =
            store::put_record(self.store.as_ref(), RecordKind::Digest, key, digest).await
        {
            tracing::warn!(error = %e, digest = %digest.id, "cannot store the storm digest");
        }
    }

    /// Adds the alert's line to its channel's digest and waits until it is
    /// posted (by this call or by one that took it along).
    pub(crate) async fn post_in_digest(&self, record: &AlertRecord) -> Result<Posted, ChatError> {
        let key = digest_key(record.platform, &record.channel);
        let uid = record.alert.job_uid.clone();
        self.storms
            .lock()
            .expect("storm lock")
            .waiting
            .entry(key.clone())
            .or_default()
            .push(entry_of(record));
        let lock = self.thread_lock(&format!("digest/{key}"));
        let _serialized = lock.lock().await;
        let (lines, mut digest) = {
            let mut storms = self.storms.lock().expect("storm lock");
            if let Some(done) = storms.posted.get_mut(&key).and_then(|p| p.remove(&uid)) {
                return done.map_err(ChatError::Unavailable);
            }
            let lines = storms.waiting.remove(&key).unwrap_or_default();
            let Some(digest) = storms.digests.get_mut(&key) else {
                return Err(ChatError::Api("no storm digest".into()));
            };
            let now = Utc::now();
            for e in &lines {
                digest.add(e.clone(), now);
            }
            (lines, digest.clone())
        };
        let result = self.post_lines(&key, &mut digest, &lines).await;
        let mut storms = self.storms.lock().expect("storm lock");
        if let Some(d) = storms.digests.get_mut(&key) {
            d.posted_in = digest.posted_in.clone();
            d.ts = digest.ts.clone();
        }
        let posted = storms.posted.entry(key).or_default();
        let mut own = Err(ChatError::Api("line not posted".into()));
        for (i, e) in lines.iter().enumerate() {
            let r = match &result {
                Ok(done) => Ok(done[i / LINES_PER_MESSAGE].clone()),
                Err(why) => Err(why.to_string()),
            };
            if e.job_uid == uid {
                own = r.map_err(ChatError::Unavailable);
            } else {
                posted.insert(e.job_uid.clone(), r);
            }
        }
        own
    }

    /// Posts the digest (once) and `lines` into its thread; one [`Posted`]
    /// per message of lines.
    async fn post_lines(
        &self,
        key: &str,
        digest: &mut Digest,
        lines: &[DigestEntry],
    ) -> Result<Vec<Posted>, ChatError> {
        let at = match (&digest.posted_in, &digest.ts) {
            (Some(channel), Some(ts)) => MessageRef {
                channel: channel.clone(),
                ts: ts.clone(),
            },
            _ => {
                let at = self
                    .chat
                    .post(&digest.channel, None, Outgoing::Digest(digest))
                    .await?;
                digest.posted_in = Some(at.channel.clone());
                digest.ts = Some(at.ts.clone());
                self.updated(key, false);
                at
            }
        };
        self.store_digest(key, digest).await;
        let mut done = Vec::new();
        for chunk in lines.chunks(LINES_PER_MESSAGE) {
            let text = chunk.iter().map(line).collect::<Vec<_>>().join("\n");
            let line_at = self
                .chat
                .post(&at.channel, Some(&at.ts), Outgoing::Notice(&text))
                .await?;
            done.push(Posted {
                digest: at.clone(),
                digest_id: digest.id.clone(),
                line_ts: line_at.ts,
            });
        }
        self.refresh_digest(key).await;
        Ok(done)
    }

    /// Notes an update of the digest message (`behind`: one is due).
    fn updated(&self, key: &str, behind: bool) {
        let mut storms = self.storms.lock().expect("storm lock");
        let entry = storms
            .updated
            .entry(key.to_string())
            .or_insert((Instant::now(), false));
        if behind {
            entry.1 = true;
        } else {
            *entry = (Instant::now(), false);
        }
    }

    /// Updates the digest message with its current counts, at most every
    /// [`UPDATE_EVERY`]; one due sooner is left to [`App::run_digest_updates`].
    pub(crate) async fn refresh_digest(&self, key: &str) {
        let too_soon = self
            .storms
            .lock()
            .expect("storm lock")
            .updated
            .get(key)
            .is_some_and(|(at, _)| at.elapsed() < UPDATE_EVERY);
        if too_soon {
            self.updated(key, true);
            return;
        }
        let digest = self
            .storms
            .lock()
            .expect("storm lock")
            .digests
            .get(key)
            .cloned();
        let Some(digest) = digest else { return };
        let (Some(channel), Some(ts)) = (&digest.posted_in, &digest.ts) else {
            return;
        };
        self.updated(key, false);
        let at = MessageRef {
            channel: channel.clone(),
            ts: ts.clone(),
        };
        if let Err(e) = self.chat.update(&at, Outgoing::Digest(&digest)).await {
            tracing::warn!(error = %e, digest = %digest.id, "cannot update the storm digest");
        }
    }

    /// Brings digest messages that fell behind up to date (a leader duty).
    pub(crate) async fn run_digest_updates(self: std::sync::Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let due: Vec<String> = self
                .storms
                .lock()
                .expect("storm lock")
                .updated
                .iter()
                .filter(|(_, (at, behind))| *behind && at.elapsed() >= UPDATE_EVERY)
                .map(|(k, _)| k.clone())
                .collect();
            for key in due {
                let lock = self.thread_lock(&format!("digest/{key}"));
                let _serialized = lock.lock().await;
                self.refresh_digest(&key).await;
            }
        }
    }

    /// A CronJob of a digest recovered: the digest counts it.
    pub(crate) async fn digest_recovered(
        &self,
        platform: Platform,
        channel: &str,
        ns: &str,
        cj: &str,
    ) {
        let key = digest_key(platform, channel);
        let digest = {
            let mut storms = self.storms.lock().expect("storm lock");
            let Some(d) = storms.digests.get_mut(&key) else {
                return;
            };
            if !d.recover(ns, cj) {
                return;
            }
            d.clone()
        };
        self.store_digest(&key, &digest).await;
        self.refresh_digest(&key).await;
    }
}
