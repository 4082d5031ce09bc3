//! Incidents: a CronJob's failures are one story until one of its Jobs
//! succeeds (`core::incident`).
//!
//! Every finished Job of a CronJob is recorded once in the CronJob's
//! [`RunHistory`] (kept in memory, fed by the Job watch, stored when new). A
//! success newer than the incident's last failure closes the incident on
//! every platform: its first alert says so (its Rerun buttons go, Hold
//! stays) and its thread gets a summary line.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{App, BOT_ACTOR};
use crate::chat::{Outgoing, Platform};
use crate::core::incident::{self, AlertStory, Recorded, Run, RunHistory};
use crate::core::request::{RerunRequest, State};
use crate::core::{JobSnapshot, ThreadState};
use crate::store::{self, AlertRecord, AuditEvent, RecordKind, thread_key};

fn history_key(namespace: &str, cronjob: &str) -> String {
    format!("{namespace}/{cronjob}")
}

impl App {
    /// Loads the stored run histories (at the start of each leadership term,
    /// before the Job watch replays what the cluster still has).
    pub(crate) async fn load_histories(&self) {
        match store::all_records::<RunHistory>(self.store.as_ref(), RecordKind::History).await {
            Ok(all) => {
                let mut map = self.histories.lock().expect("history lock");
                for (key, stored) in all {
                    match map.get_mut(&key) {
                        // Known from an earlier term: what was seen since counts too.
                        Some(current) => {
                            for run in stored.runs {
                                current.record(run);
                            }
                        }
                        None => {
                            map.insert(key, stored);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the run histories"),
        }
    }

    /// Deletes the records of the later features nothing needs any more:
    /// histories of CronJobs that are gone and ran last before `before`,
    /// storm digests quiet since then, finished batches asked before then.
    pub(crate) async fn prune_records(&self, before: DateTime<Utc>) -> usize {
        let store = self.store.as_ref();
        let mut gone = Vec::new();
        for (key, h) in store::all_records::<RunHistory>(store, RecordKind::History)
            .await
            .unwrap_or_default()
        {
            let (ns, name) = key.split_once('/').unwrap_or_default();
            let last = h.runs.last().map(|r| r.finished_at);
            if self.cached_cronjob(ns, name).is_none() && last.is_none_or(|t| t < before) {
                gone.push((RecordKind::History, key));
            }
        }
        for (key, d) in store::all_records::<crate::core::storm::Digest>(store, RecordKind::Digest)
            .await
            .unwrap_or_default()
        {
            if d.last_at < before {
                gone.push((RecordKind::Digest, key));
            }
        }
        for (key, b) in
            store::all_records::<crate::core::batch::BatchRequest>(store, RecordKind::Batch)
                .await
                .unwrap_or_default()
        {
            if b.state.is_final() && b.requested_at < before {
                gone.push((RecordKind::Batch, key));
            }
        }
        let mut deleted = 0;
        for (kind, key) in gone {
            match store.delete_record(kind, &key).await {
                Ok(()) => deleted += 1,
                Err(e) => {
                    tracing::warn!(error = %e, kind = kind.name(), %key, "cannot delete an expired record")
                }
            }
            match kind {
                RecordKind::History => {
                    self.histories.lock().expect("history lock").remove(&key);
                }
                RecordKind::Digest => self.forget_digest(&key),
                _ => {}
            }
        }
        deleted
    }

    /// The CronJob's history as the bot knows it.
    pub(crate) fn run_history(&self, namespace: &str, cronjob: &str) -> RunHistory {
        self.histories
            .lock()
            .expect("history lock")
            .get(&history_key(namespace, cronjob))
            .cloned()
            .unwrap_or_default()
    }

    /// [`RunHistory::successful_durations`] of the CronJob, without copying
    /// its history (the health loop asks this for every running Job).
    pub(crate) fn successful_durations(
        &self,
        namespace: &str,
        cronjob: &str,
        n: usize,
    ) -> Vec<chrono::Duration> {
        self.histories
            .lock()
            .expect("history lock")
            .get(&history_key(namespace, cronjob))
            .map(|h| h.successful_durations(n))
            .unwrap_or_default()
    }

    /// Records a finished Job of a CronJob (once per Job) and stores the
    /// history; returns the run when it is a new success, which ends the
    /// CronJob's incidents. Cheap when the Job was seen before.
    pub(crate) fn on_finished_job(self: &Arc<Self>, job: &JobSnapshot) -> Option<Run> {
        let run = Run::of(job)?;
        let key = history_key(&job.namespace, job.cronjob.as_deref().unwrap_or_default());
        let recorded = self
            .histories
            .lock()
            .expect("history lock")
            .entry(key.clone())
            .or_default()
            .record(run.clone());
        if recorded == Recorded::Unchanged {
            return None;
        }
        // Marked after the change, so the write that takes the mark stores it.
        self.unstored_histories
            .lock()
            .expect("unstored histories lock")
            .insert(key.clone());
        let this = self.clone();
        self.spawn(async move { this.store_history(&key).await });
        (recorded == Recorded::Success).then_some(run)
    }

    /// Ends the incidents of the CronJob of `job` after `run` succeeded, in a task.
    pub(crate) fn spawn_close_incidents(self: &Arc<Self>, job: &JobSnapshot, run: Run) {
        let this = self.clone();
        let namespace = job.namespace.clone();
        let cronjob = job.cronjob.clone().unwrap_or_default();
        self.spawn(async move { this.close_incidents(&namespace, &cronjob, &run).await });
    }

    /// Writes the history as it is in memory now (under its lock, so the
    /// last write is the newest), unless an earlier write already stored
    /// every change (a Job watch replay records several runs of a CronJob
    /// before the first write).
    async fn store_history(&self, key: &str) {
        let lock = self.thread_lock(&format!("history/{key}"));
        let _serialized = lock.lock().await;
        // Taken before the copy: a change marked after this is in the copy
        // or has its own write to come.
        if !self
            .unstored_histories
            .lock()
            .expect("unstored histories lock")
            .remove(key)
        {
            return;
        }
        let Some(history) = self
            .histories
            .lock()
            .expect("history lock")
            .get(key)
            .cloned()
        else {
            return;
        };
        if let Err(e) =
            store::put_record(self.store.as_ref(), RecordKind::History, key, &history).await
        {
            // The next change writes it all.
            self.unstored_histories
                .lock()
                .expect("unstored histories lock")
                .insert(key.to_string());
            tracing::warn!(error = %e, cronjob = %key, "cannot store the run history");
        }
    }

    /// Closes the CronJob's open incident on every platform after `run` succeeded.
    pub(crate) async fn close_incidents(&self, namespace: &str, cronjob: &str, run: &Run) {
        for platform in Platform::ALL {
            let key = thread_key(platform, namespace, cronjob);
            let lock = self.thread_lock(&key);
            let _serialized = lock.lock().await;
            let Ok(Some(thread)) = self.store.thread(&key).await else {
                continue;
            };
            let Some(closed) = incident::recover(&thread, &run.job, run.finished_at, run.rerun)
            else {
                continue;
            };
            if !self.leads() {
                return; // the leader closes it
            }
            if let Err(e) = self.store.put_thread(&key, &closed).await {
                tracing::warn!(error = %e, cronjob = %key, "cannot record the recovery");
                continue;
            }
            let reruns = self.incident_reruns(namespace, cronjob, &closed).await;
            let _ = self
                .store
                .append_audit(&AuditEvent {
                    at: Utc::now(),
                    actor: BOT_ACTOR.into(),
                    action: "incident.recovered".into(),
                    subject: format!("{namespace}/{cronjob}"),
                    platform: None,
                    detail: serde_json::json!({
                        "platform": platform,
                        "job": run.job,
                        "failures": closed.failures,
                        "since": closed.since,
                        "recovered_at": run.finished_at,
                        "reruns": reruns.iter().map(|r| &r.id).collect::<Vec<_>>(),
                    }),
                })
                .await;
            if let Err(e) = self.store.flush().await {
                tracing::warn!(error = %e, "cannot flush the store");
            }
            tracing::info!(cronjob = %key, job = %run.job, failures = closed.failures, "incident recovered");
            self.refresh_thread_parent(&closed).await;
            if closed.digest.is_some() {
                self.digest_recovered(platform, &closed.channel, namespace, cronjob)
                    .await;
            }
            let line = recovery_summary(&closed, &reruns, run.finished_at);
            if let Err(e) = self
                .chat
                .post(&closed.posted_in, Some(&closed.ts), Outgoing::Notice(&line))
                .await
            {
                tracing::warn!(error = %e, "cannot post the recovery into the thread");
            }
        }
        if self.leads() {
            // A snooze "until it recovers" ends with the incident (audited there).
            self.end_snooze_on_recovery(namespace, cronjob).await;
        }
    }

    /// A snooze ended: the CronJob's open incidents get one line saying what
    /// it kept quiet, and their alerts lose the snooze line.
    pub(crate) async fn tell_snooze_ended(&self, snooze: &crate::core::snooze::Snooze) {
        if !self.leads() {
            return;
        }
        for platform in Platform::ALL {
            let key = thread_key(platform, &snooze.namespace, &snooze.cronjob);
            let lock = self.thread_lock(&key);
            let _serialized = lock.lock().await;
            let Ok(Some(thread)) = self.store.thread(&key).await else {
                continue;
            };
            if thread.recovered.is_some() {
                continue;
            }
            let quiet = match snooze.suppressed {
                0 => "no failure".to_string(),
                n => crate::chat::wording::failures(n),
            };
            let line = format!(
                "🔔 Snooze by <@{}> ended: {quiet} while snoozed. The incident is still open ({} failures since {}).",
                snooze.by,
                thread.failures,
                thread
                    .since
                    .unwrap_or(thread.opened_at)
                    .format("%Y-%m-%d %H:%M UTC"),
            );
            if let Err(e) = self
                .chat
                .post(&thread.posted_in, Some(&thread.ts), Outgoing::Notice(&line))
                .await
            {
                tracing::warn!(error = %e, "cannot post the end of the snooze");
            }
            self.refresh_thread_parent(&thread).await;
        }
    }

    /// The rerun requests made for the CronJob during the incident.
    async fn incident_reruns(
        &self,
        namespace: &str,
        cronjob: &str,
        thread: &ThreadState,
    ) -> Vec<RerunRequest> {
        let since = thread.since.unwrap_or(thread.opened_at);
        let until = thread.recovered.as_ref().map(|r| r.at);
        self.store
            .requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.namespace == namespace && r.cronjob == cronjob)
            // Kubernetes keeps whole seconds: a request made in the second
            // the run succeeded belongs to the incident.
            .filter(|r| {
                r.requested_at >= since
                    && until.is_none_or(|u| r.requested_at < u + chrono::Duration::seconds(1))
            })
            .collect()
    }

    /// [`App::story`] with the CronJob's snooze (on the incident's first alert).
    pub(crate) async fn alert_story(
        &self,
        record: &AlertRecord,
        thread: Option<&ThreadState>,
        reply: bool,
    ) -> AlertStory {
        let mut story = self.story(record, thread, reply);
        if !reply && story.recovered.is_none() {
            let a = &record.alert;
            story.snoozed = self
                .active_snooze(&a.namespace, &a.cronjob, Utc::now())
                .await;
        }
        story
    }

    /// What an alert shows of its incident and of the CronJob's history.
    pub(crate) fn story(
        &self,
        record: &AlertRecord,
        thread: Option<&ThreadState>,
        reply: bool,
    ) -> AlertStory {
        let a = &record.alert;
        let history = self.run_history(&a.namespace, &a.cronjob);
        let status_success = self
            .cached_cronjob(&a.namespace, &a.cronjob)
            .and_then(|c| c.last_successful_time);
        let mut story = AlertStory {
            failures: 1,
            last_success: history.last_success_at(status_success),
            known_runs: !history.runs.is_empty(),
            runs: history.strip(),
            ..AlertStory::default()
        };
        // The thread this alert opened (its first alert) tells the incident.
        if let Some(t) = thread {
            if reply {
                story.failures = record.number.max(2);
            } else if opened_by(t, record) {
                story.failures = t.failures;
                story.since = t.since;
                story.recovered = t.recovered.clone();
                story.continues_from = t.continues_from;
            }
        }
        story
    }
}

/// Whether the thread's first alert is this record's (any platform's copy).
fn opened_by(thread: &ThreadState, record: &AlertRecord) -> bool {
    thread.parent_job_uid == record.alert.job_uid
        || thread.parent_job_uid == store::alert_key(record.platform, &record.alert.job_uid)
}

/// The thread's last line of an incident: failures, reruns, time to recovery.
fn recovery_summary(thread: &ThreadState, reruns: &[RerunRequest], at: DateTime<Utc>) -> String {
    let Some(r) = &thread.recovered else {
        return String::new();
    };
    let since = thread.since.unwrap_or(thread.opened_at);
    let took = humantime::format_duration(std::time::Duration::from_secs(
        (at - since).num_seconds().max(0) as u64 / 60 * 60,
    ));
    let failures = crate::chat::wording::failures(r.failures);
    let mut line = format!(
        "✅ Recovered: {} succeeded at {}. Incident: {failures} since {}, {took} to recovery.",
        r.job,
        at.format("%Y-%m-%d %H:%M UTC"),
        since.format("%H:%M UTC"),
    );
    if reruns.is_empty() {
        line.push_str(" No reruns.");
    }
    for req in reruns {
        let approver = req
            .approved_by
            .as_deref()
            .map(|a| format!(", approved by <@{a}>"))
            .unwrap_or_default();
        let ticket = match (&req.ticket, &req.ticket_url) {
            (Some(t), Some(url)) => format!(", ticket {t} ({url})"),
            (Some(t), None) => format!(", ticket {t}"),
            _ => String::new(),
        };
        let outcome = match (req.state, req.stop.is_some()) {
            (State::Succeeded | State::Created | State::Failed, true) => "stopped",
            (State::Approved, true) => "stopping",
            (State::Aborted, true) => "not stopped",
            (state, _) => rerun_outcome(state),
        };
        line.push_str(&format!(
            "\n• {} {} by <@{}>{approver}: \"{}\"{ticket} — {outcome}.",
            if req.stop.is_some() { "Stop" } else { "Rerun" },
            req.id,
            req.requested_by,
            req.reason
        ));
    }
    line
}

/// How a rerun request ended, in the recovery summary.
fn rerun_outcome(state: State) -> &'static str {
    match state {
        State::Succeeded => "succeeded",
        State::Failed => "failed",
        State::Pending => "pending",
        State::Approved | State::Created => "running",
        State::Denied => "denied",
        State::Cancelled => "cancelled",
        State::Expired => "expired",
        State::Aborted => "not run",
    }
}
