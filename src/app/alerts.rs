//! Failure alerts: from a Job's `Failed=True` to one message in chat.
//!
//! 1. `on_job` sees a failed Job of a CronJob (watch event, relist or restart);
//! 2. the core decides whether it deserves an alert (owner, opt-out, lookback);
//! 3. the alert is written to the store as *pending* — the compare-and-swap on
//!    the Job uid is what makes it exactly one alert per Job;
//! 4. exit code and log tail are captured, then it is posted (top level or into
//!    the CronJob's open thread) and marked *posted*.
//!
//! An alert that cannot be posted stays pending and is retried; after a crash
//! the pending ones are posted at start-up.

use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;

use super::snooze::Suppression;
use super::{App, BOT_ACTOR, Destination};
use crate::chat::{ChatError, MessageRef, Outgoing, Platform};
use crate::core::alert::LogTail;
use crate::core::alert::{self, AlertDecision, ThreadState};
use crate::core::incident::{self, Grouping};
use crate::core::{AlertStory, ContainerExit, CronJobSnapshot, FailureAlert, JobSnapshot};
use crate::kube::Watched;
use crate::metrics::ResourceLabel;
use crate::store::{AlertRecord, AlertState, AuditEvent, alert_key, thread_key};

/// How often recording a posted alert is tried (every 0.5 s: a minute).
const RECORD_TRIES: u32 = 120;

/// How long an alert of a storm waits for its exit code and log tail.
const STORM_CAPTURE_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

fn chrono_duration(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl App {
    /// Keeps the CronJob cache current. Returns when the stream ends (never, in practice).
    pub(crate) async fn run_cronjob_watch(
        self: Arc<Self>,
        synced: tokio::sync::oneshot::Sender<()>,
    ) {
        let mut synced = Some(synced);
        let mut pending_syncs = self.cluster.streams_per_watch();
        let mut stream = std::pin::pin!(self.cluster.watch_cronjobs());
        while let Some(event) = stream.next().await {
            match event {
                Watched::Applied(cj) => {
                    self.enforce_global_hold(&cj).await;
                    self.cronjobs
                        .write()
                        .expect("cronjob cache lock")
                        .insert(cj.key(), cj);
                }
                Watched::Deleted(cj) => {
                    self.cronjobs
                        .write()
                        .expect("cronjob cache lock")
                        .remove(&cj.key());
                }
                Watched::Synced => {
                    pending_syncs = pending_syncs.saturating_sub(1);
                    if pending_syncs == 0
                        && let Some(tx) = synced.take()
                    {
                        let _ = tx.send(());
                    }
                }
                Watched::Restarted => {}
                Watched::Failed(error) => {
                    self.metrics
                        .watch_restarts
                        .get_or_create(&ResourceLabel {
                            resource: "cronjobs",
                        })
                        .inc();
                    tracing::warn!(%error, "CronJob watch failed; retrying");
                }
            }
        }
    }

    /// Watches Jobs and raises alerts. `synced` fires once the first list is done.
    pub(crate) async fn run_job_watch(self: Arc<Self>, synced: tokio::sync::oneshot::Sender<()>) {
        let mut synced = Some(synced);
        let mut pending_syncs = self.cluster.streams_per_watch();
        let mut stream = std::pin::pin!(self.cluster.watch_jobs());
        while let Some(event) = stream.next().await {
            match event {
                Watched::Applied(job) => self.on_job(job).await,
                Watched::Synced => {
                    pending_syncs = pending_syncs.saturating_sub(1);
                    if pending_syncs == 0
                        && let Some(tx) = synced.take()
                    {
                        let _ = tx.send(());
                    }
                }
                Watched::Deleted(job) => self.forget_job(&job),
                Watched::Restarted => {}
                Watched::Failed(error) => {
                    self.metrics
                        .watch_restarts
                        .get_or_create(&ResourceLabel { resource: "jobs" })
                        .inc();
                    tracing::warn!(%error, "Job watch failed; retrying");
                }
            }
        }
    }

    /// Cheap triage of every Job event (the store answers from memory); the
    /// work happens in a task.
    async fn on_job(self: &Arc<Self>, job: JobSnapshot) {
        // Slots seen and running Jobs, for missed and long runs (`app::health`).
        self.track_job(&job);
        // Every finished run counts in its CronJob's history; a success ends its incident.
        let success = self.on_finished_job(&job);
        // The bot's own reruns report into their request's thread, not as
        // alerts (and end the incident after that report).
        if self.on_rerun_job(&job).await {
            return;
        }
        if let Some(run) = success {
            self.spawn_close_incidents(&job, run);
        }
        let Some(failed) = &job.failed else { return };
        if job.cronjob.is_none() {
            return;
        }
        // Older than the lookback: never alerted (`alert::decide`), whatever
        // the store has; the replay of a cluster's old failures asks nothing.
        if Utc::now()
            .checked_sub_signed(chrono_duration(self.settings.lookback))
            .is_some_and(|since| failed.at < since)
        {
            return;
        }
        // One record per platform; done when every platform has its own.
        let mut missing = false;
        for d in &self.settings.destinations {
            match self
                .store
                .alert_exists(&alert_key(d.platform, &job.uid))
                .await
            {
                Ok(true) => {}
                Ok(false) => missing = true,
                Err(e) => {
                    tracing::error!(error = %e, job = %job.key(), "store unreadable; alert skipped for now");
                    return;
                }
            }
        }
        if !missing {
            return;
        }
        if !self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .insert(job.uid.clone())
        {
            return;
        }
        let this = self.clone();
        self.spawn(async move {
            let uid = job.uid.clone();
            this.raise_alert(job).await;
            this.in_flight.lock().expect("in-flight lock").remove(&uid);
        });
    }

    async fn raise_alert(&self, job: JobSnapshot) {
        let started = std::time::Instant::now();
        let Some(cronjob_name) = job.cronjob.clone() else {
            return;
        };
        let cronjob = match self.cached_cronjob(&job.namespace, &cronjob_name) {
            Some(cj) => Some(cj),
            // Not seen (yet): ask the apiserver; gone means "alert with what is known".
            None => match self.cluster.cronjob(&job.namespace, &cronjob_name).await {
                Ok(cj) => cj,
                Err(e) => {
                    tracing::warn!(error = %e, job = %job.key(), "cannot read the CronJob; alerting without it");
                    None
                }
            },
        };
        let now = Utc::now();
        if let AlertDecision::Ignore(why) = alert::decide(
            &job,
            cronjob.as_ref(),
            now,
            chrono_duration(self.settings.lookback),
        ) {
            tracing::debug!(job = %job.key(), ?why, "no alert");
            return;
        }
        let Some(failed) = &job.failed else { return };
        let alert = FailureAlert::new(&job, failed, cronjob.as_ref(), now);
        let mut records = self.record_pending(&alert, cronjob.as_ref(), now).await;
        if records.is_empty() {
            return;
        }
        let decided = started.elapsed();
        // Exit code and log tail: waited for up to the capture budget; what
        // takes longer follows by updating the posted alert.
        let capture =
            self.cluster
                .failure_details(&job, self.settings.log_lines, self.settings.log_bytes);
        let mut capture = std::pin::pin!(capture);
        // In a storm the alert is a digest line, never updated later: its
        // exit code has to be in it, so it waits for the details a while.
        let budget = if records
            .iter()
            .any(|(_, r)| self.storm_active(r.platform, &r.channel, now))
        {
            self.settings.capture_budget.max(STORM_CAPTURE_BUDGET)
        } else {
            self.settings.capture_budget
        };
        let details = if budget.is_zero() {
            None
        } else {
            tokio::time::timeout(budget, &mut capture).await.ok()
        };
        let captured = started.elapsed();
        let late = details.is_none();
        for (key, record) in &mut records {
            match &details {
                Some((exit, log)) => {
                    record.alert.exit = exit.clone();
                    record.alert.log = log.clone();
                }
                None => record.alert.log = LogTail::Capturing,
            }
            if let Err(e) = self.store.put_alert(key, record).await {
                tracing::warn!(error = %e, "cannot store the alert details");
            }
        }
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %e, "cannot flush the store");
        }
        let stored = started.elapsed();
        let keys: Vec<String> = records.iter().map(|(k, _)| k.clone()).collect();
        futures::future::join_all(
            records
                .into_iter()
                .map(|(key, record)| async move { self.post_alert(&key, record, false).await }),
        )
        .await;
        tracing::debug!(
            job = %job.key(),
            decide_ms = decided.as_millis() as u64,
            capture_ms = (captured - decided).as_millis() as u64,
            store_ms = (stored - captured).as_millis() as u64,
            post_ms = (started.elapsed() - stored).as_millis() as u64,
            late,
            "alert timings"
        );
        if late {
            let (exit, log) = capture.await;
            for key in &keys {
                self.complete_alert(key, exit.clone(), log.clone()).await;
            }
        }
    }

    /// Adds the exit code and log tail to an alert posted without them.
    async fn complete_alert(&self, key: &str, exit: Option<ContainerExit>, log: LogTail) {
        let lock_key = match self.store.alert(key).await {
            Ok(Some(r)) => record_thread_key(&r),
            _ => return,
        };
        // The CronJob's thread lock: the post (and its state) is complete.
        let lock = self.thread_lock(&lock_key);
        let _serialized = lock.lock().await;
        let Ok(Some(mut record)) = self.store.alert(key).await else {
            return;
        };
        record.alert.exit = exit;
        record.alert.log = log;
        if let Err(e) = self.store.put_alert(key, &record).await {
            tracing::warn!(error = %e, "cannot store the alert details");
        }
        // Still pending: the retry posts it with the details.
        let Some((at, story, reply)) = self.posted_alert(&record).await else {
            return;
        };
        let message = Outgoing::Alert {
            alert: &record.alert,
            story: &story,
            reply,
            status: record.status.as_deref(),
        };
        if let Err(e) = self.chat.update(&at, message).await {
            tracing::warn!(error = %e, "cannot add the details to the alert");
        }
    }

    /// Where a posted alert is, the story it shows, and whether it is a
    /// reply in a thread; `None` while it is pending.
    pub(crate) async fn posted_alert(
        &self,
        record: &AlertRecord,
    ) -> Option<(MessageRef, AlertStory, bool)> {
        if record.digest.is_some() {
            return None; // a line of a storm digest: no message of its own
        }
        let AlertState::Posted {
            ts,
            thread_ts,
            channel,
        } = &record.state
        else {
            return None;
        };
        let thread = self
            .store
            .thread(&record_thread_key(record))
            .await
            .ok()
            .flatten();
        let reply = thread_ts.is_some();
        // The thread's story belongs to its first alert only.
        let own = thread.as_ref().filter(|t| t.ts == *ts || reply);
        let story = self.alert_story(record, own, reply).await;
        let channel = channel
            .clone()
            .or_else(|| {
                thread
                    .filter(|t| t.ts == *ts || thread_ts.as_deref() == Some(t.ts.as_str()))
                    .map(|t| t.posted_in)
            })
            .unwrap_or_else(|| record.channel.clone());
        Some((
            MessageRef {
                channel,
                ts: ts.clone(),
            },
            story,
            reply,
        ))
    }

    pub(crate) fn thread_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.thread_locks
            .lock()
            .expect("thread lock map")
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    /// Stores `alert` as pending on every platform: one record each, claimed
    /// by its own compare-and-swap. Answers the records this call created
    /// (none: alerted before, or the store is down).
    pub(super) async fn record_pending(
        &self,
        alert: &FailureAlert,
        cronjob: Option<&CronJobSnapshot>,
        now: chrono::DateTime<Utc>,
    ) -> Vec<(String, AlertRecord)> {
        let mut records = Vec::new();
        for d in &self.settings.destinations {
            let key = alert_key(d.platform, &alert.job_uid);
            let record = AlertRecord {
                alert: alert.clone(),
                channel: channel_for(cronjob, d),
                state: AlertState::Pending,
                created_at: now,
                status: None,
                number: 0,
                platform: d.platform,
                digest: None,
            };
            match self.store.insert_alert_if_absent(&key, &record).await {
                Ok(true) => records.push((key, record)),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, alert = %alert.job_uid, "cannot record the alert; not posting it");
                }
            }
        }
        records
    }

    /// Posts a stored pending alert and records where it went. On failure the
    /// alert stays pending for the retry loop (`retry`: this is that loop,
    /// which counted it already).
    pub(super) async fn post_alert(&self, uid: &str, mut record: AlertRecord, retry: bool) {
        if !self.leads() {
            return; // stays pending: the leader posts it
        }
        let key = record_thread_key(&record);
        let lock = self.thread_lock(&key);
        let _serialized = lock.lock().await;
        // Read again under the lock: another pass may have posted it meanwhile.
        match self.store.alert(uid).await {
            Ok(Some(current)) if current.state == AlertState::Pending => record = current,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "alert record unreadable; not posting it now");
                return;
            }
        }

        let now = Utc::now();
        let thread = match self.store.thread(&key).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "thread record unreadable; starting a new thread");
                None
            }
        };
        let failed_at = record.alert.failed_at;
        let grouping = incident::group(
            thread.as_ref(),
            &record.channel,
            failed_at,
            now,
            chrono_duration(self.settings.thread_window),
        );
        let next = incident::with_failure(&grouping, &record.channel, uid, failed_at, now);
        // Snoozed: recorded and counted in the open incident, posted nowhere.
        let not_snoozed = match self
            .count_suppressed(&record.alert.namespace, &record.alert.cronjob, now)
            .await
        {
            Suppression::Counted(snooze) => {
                self.suppress_alert(uid, record, &key, &grouping, next, &snooze)
                    .await;
                return;
            }
            Suppression::NotSnoozed => true,
            Suppression::Unknown => false,
        };
        // From here to its record, a shutdown lets the post finish.
        let Some(_critical) = self.critical() else {
            return; // shutting down: stays pending, posted after the restart
        };
        let result = self
            .send_alert(&record, &grouping, &next, now, not_snoozed)
            .await;
        let (posted, digest, digest_at) = match result {
            Ok(posted) => posted,
            Err(e) => {
                // Each pass of the retry loop counts what it finds pending; a
                // new alert left pending adds itself until then (no list of
                // every alert for each failed post).
                if !retry {
                    self.metrics.alerts_pending.inc();
                }
                tracing::warn!(error = %e, job = %record.alert.job, "alert not posted; will retry");
                return;
            }
        };
        let (thread, thread_ts) = match (grouping, digest_at) {
            // The incident's thread is the digest's.
            (_, Some(at)) => (
                ThreadState {
                    posted_in: at.channel.clone(),
                    ts: at.ts.clone(),
                    digest: digest.clone(),
                    ..next
                },
                Some(at.ts),
            ),
            (Grouping::NewThread | Grouping::Resurface(_), None) => (
                ThreadState {
                    posted_in: posted.channel.clone(),
                    ts: posted.ts.clone(),
                    ..next
                },
                None,
            ),
            (Grouping::Reply(t), None) => (next, Some(t.ts)),
        };
        record.digest = digest;
        record.state = AlertState::Posted {
            ts: posted.ts.clone(),
            thread_ts: thread_ts.clone(),
            channel: Some(posted.channel.clone()),
        };
        record.number = thread.failures;
        self.record_posted(
            uid,
            &key,
            &record,
            &thread,
            &posted,
            thread_ts.as_deref(),
            now,
        )
        .await;
        self.metrics.alerts_posted.inc();
        tracing::info!(job = %record.alert.job, cronjob = %key, reason = %record.alert.reason, "alert posted");

        if thread_ts.is_some() {
            self.refresh_thread_parent(&thread).await;
        }
    }

    /// Posts the alert where its grouping puts it: a line of the channel's
    /// storm digest, a new top-level alert, or a reply in its incident's
    /// thread. Answers where it went and, for a digest line, the digest.
    /// `not_snoozed`: no snooze was in force just before (no need to read it again).
    async fn send_alert(
        &self,
        record: &AlertRecord,
        grouping: &Grouping,
        next: &ThreadState,
        now: chrono::DateTime<Utc>,
        not_snoozed: bool,
    ) -> Result<(MessageRef, Option<String>, Option<MessageRef>), ChatError> {
        let top = matches!(grouping, Grouping::NewThread | Grouping::Resurface(_));
        // In a storm a new incident is a line of the channel's digest.
        let in_storm = top && self.joins_storm(record, now).await;
        match grouping {
            _ if in_storm => self.post_in_digest(record).await.map(|p| {
                let digest = p.digest.clone();
                (
                    MessageRef {
                        channel: digest.channel.clone(),
                        ts: p.line_ts,
                    },
                    Some(p.digest_id),
                    Some(digest),
                )
            }),
            Grouping::NewThread | Grouping::Resurface(_) => {
                let story = if not_snoozed {
                    self.story(record, Some(next), false)
                } else {
                    self.alert_story(record, Some(next), false).await
                };
                self.post_top_level(record, &story)
                    .await
                    .map(|at| (at, None, None))
            }
            Grouping::Reply(t) => {
                let mut story = self.story(record, None, true);
                story.failures = next.failures.max(2);
                self.chat
                    .post(
                        &t.posted_in,
                        Some(&t.ts),
                        Outgoing::Alert {
                            alert: &record.alert,
                            story: &story,
                            reply: true,
                            status: None,
                        },
                    )
                    .await
                    .map(|at| (at, None, None))
            }
        }
    }

    /// Records a posted alert, its incident and the audit entry. Unrecorded,
    /// the retry (here or on the next leader) would post it again.
    #[allow(clippy::too_many_arguments)]
    async fn record_posted(
        &self,
        uid: &str,
        key: &str,
        record: &AlertRecord,
        thread: &ThreadState,
        posted: &MessageRef,
        thread_ts: Option<&str>,
        now: chrono::DateTime<Utc>,
    ) {
        // Posted: unrecorded, the retry (here or on the next leader) would post
        // it again. The store may be down for a while (the apiserver, with
        // several replicas): keep trying for a minute, holding the claim and
        // the thread lock — recording what was done is safe even after this
        // replica stopped leading.
        let mut tries = 0;
        loop {
            let recorded = match self.store.put_alert(uid, record).await {
                Ok(()) => self.store.put_thread(key, thread).await,
                Err(e) => Err(e),
            };
            match recorded {
                Ok(()) => break,
                Err(e) if tries < RECORD_TRIES => {
                    tries += 1;
                    tracing::warn!(error = %e, tries, "alert posted, not recorded yet; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "alert posted but not recorded");
                    break;
                }
            }
        }
        let _ = self
            .store
            .append_audit(&AuditEvent {
                at: now,
                actor: BOT_ACTOR.into(),
                action: "alert.posted".into(),
                subject: format!("{}/{}", record.alert.namespace, record.alert.cronjob),
                platform: None,
                detail: serde_json::json!({
                    "platform": record.platform,
                    "job": record.alert.job,
                    "job_uid": record.alert.job_uid,
                    "reason": record.alert.reason,
                    "channel": posted.channel,
                    "ts": posted.ts,
                    "thread_ts": thread_ts,
                    "digest": record.digest,
                }),
            })
            .await;
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %e, "cannot flush the store");
        }
    }

    /// A failure of a snoozed CronJob: its record says so (no retry posts it),
    /// an open incident counts it and its alert shows the snooze.
    async fn suppress_alert(
        &self,
        uid: &str,
        mut record: AlertRecord,
        key: &str,
        grouping: &Grouping,
        mut next: ThreadState,
        snooze: &crate::core::snooze::Snooze,
    ) {
        record.state = AlertState::Snoozed;
        if let Err(e) = self.store.put_alert(uid, &record).await {
            tracing::warn!(error = %e, "cannot record the snoozed failure");
        }
        if let Grouping::Reply(t) = grouping
            && t.recovered.is_none()
        {
            next.suppressed = t.suppressed + 1;
            if let Err(e) = self.store.put_thread(key, &next).await {
                tracing::warn!(error = %e, "cannot count the snoozed failure");
            }
            self.refresh_thread_parent(&next).await;
        }
        let _ = self
            .store
            .append_audit(&AuditEvent {
                at: Utc::now(),
                actor: BOT_ACTOR.into(),
                action: "alert.snoozed".into(),
                subject: format!("{}/{}", record.alert.namespace, record.alert.cronjob),
                platform: None,
                detail: serde_json::json!({
                    "platform": record.platform,
                    "job": record.alert.job,
                    "job_uid": record.alert.job_uid,
                    "reason": record.alert.reason,
                    "snoozed_by": snooze.by,
                    "until": snooze.until,
                }),
            })
            .await;
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %e, "cannot flush the store");
        }
        tracing::info!(job = %record.alert.job, cronjob = %key, "failure of a snoozed CronJob: not posted");
    }

    /// Posts to the routed channel, falling back to the default channel when
    /// the bot cannot post there (wrong id in the annotation, not invited).
    async fn post_top_level(
        &self,
        record: &AlertRecord,
        story: &AlertStory,
    ) -> Result<MessageRef, ChatError> {
        let message = Outgoing::Alert {
            alert: &record.alert,
            story,
            reply: false,
            status: record.status.as_deref(),
        };
        let default = self.default_channel(record.platform);
        match self.chat.post(&record.channel, None, message.clone()).await {
            Err(ChatError::ChannelUnavailable(why)) if record.channel != default => {
                tracing::warn!(channel = %record.channel, %why, "cannot post to the CronJob's channel; using the default channel");
                self.chat.post(default, None, message).await
            }
            other => other,
        }
    }

    /// The first alert of a thread shows its incident: how often since, or
    /// that it is over.
    pub(crate) async fn refresh_thread_parent(&self, thread: &ThreadState) {
        if thread.digest.is_some() {
            return; // the thread's first message is the storm digest
        }
        let parent = match self.store.alert(&thread.parent_job_uid).await {
            Ok(Some(parent)) => parent,
            _ => return,
        };
        let at = MessageRef {
            channel: thread.posted_in.clone(),
            ts: thread.ts.clone(),
        };
        let story = self.alert_story(&parent, Some(thread), false).await;
        let message = Outgoing::Alert {
            alert: &parent.alert,
            story: &story,
            reply: false,
            status: parent.status.as_deref(),
        };
        if let Err(e) = self.chat.update(&at, message).await {
            tracing::warn!(error = %e, "cannot update the thread's first alert");
        }
    }

    /// Posts alerts that were stored but never posted (chat was down, or the
    /// bot stopped in between). Runs at start and then periodically.
    pub(crate) async fn run_pending_retry(self: Arc<Self>) {
        loop {
            let pending = match self.store.pending_alerts().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read pending alerts");
                    Vec::new()
                }
            };
            self.metrics.alerts_pending.set(pending.len() as i64);
            for (key, record) in pending {
                // The same claim as `on_job`'s: the Job's uid, whatever the platform.
                let Some(_claim) = self.claim(record.alert.job_uid.clone()) else {
                    continue;
                };
                self.post_alert(&key, record, true).await;
            }
            tokio::time::sleep(self.settings.pending_retry).await;
        }
    }
}

/// The CronJob's channel annotation for the destination's platform, else its default.
fn channel_for(cronjob: Option<&CronJobSnapshot>, to: &Destination) -> String {
    cronjob
        .and_then(|c| match to.platform {
            Platform::Slack => c.channel.clone(),
            Platform::Teams => c.teams_channel.clone(),
        })
        .unwrap_or_else(|| to.default_channel.clone())
}

pub(crate) fn record_thread_key(record: &AlertRecord) -> String {
    thread_key(
        record.platform,
        &record.alert.namespace,
        &record.alert.cronjob,
    )
}
