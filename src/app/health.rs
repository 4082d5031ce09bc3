//! Schedule health: "⏰ did not start" and "🐢 running for …" alerts.
//!
//! One timer loop (the leader's, every `--health-interval`) looks at every
//! cached CronJob and every running Job of one; the rules are
//! `core::slots` (pure). What it needs between looks is kept small, in memory:
//! the slots a Job was seen for (fed by the Job watch, pruned to the window
//! judged), the running Jobs of CronJobs, the Jobs alerted as running too
//! long, and the last warning logged per CronJob (a bad annotation or
//! schedule is logged once per change, not on every look).
//!
//! Both alerts are [`FailureAlert`]s with their own [`AlertKind`] and a
//! synthetic key (`missed/<ns>/<cronjob>/<slot unix>`, `overrun/<job uid>`),
//! so they take the failure alerts' path: stored pending first (the
//! compare-and-swap that makes them one per slot / Job), then posted into
//! the CronJob's incident thread, which a later success closes. The slots
//! alerted are also stored per CronJob ([`RecordKind::Slot`]) and read back
//! at every start, so a restart never alerts a slot again; Jobs alerted as
//! too long are stored ([`RecordKind::LongRun`]) until their end is told.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::App;
use super::alerts::record_thread_key;
use crate::chat::Outgoing;
use crate::core::alert::{AlertKind, LogTail, RunEnd, overrun_key};
use crate::core::slots::{
    self, AlertedSlots, CronJobTiming, LongRun, MissedCheck, RECENT_DURATIONS,
};
use crate::core::{CronJobSnapshot, FailureAlert, JobSnapshot};
use crate::store::{self, RecordKind, alert_key};

/// What the loop keeps between looks.
pub(crate) struct Health {
    /// When this process started: slots before it (beyond the lookback) are
    /// never judged.
    started: DateTime<Utc>,
    /// Slots a Job was seen for, or alerted, by `namespace/cronjob` (sorted).
    slots: HashMap<String, Vec<DateTime<Utc>>>,
    /// Running Jobs of CronJobs, by uid.
    running: HashMap<String, RunningJob>,
    /// Jobs alerted as running too long, by uid.
    long_runs: HashMap<String, LongRun>,
    /// The warning last logged per CronJob.
    warned: HashMap<String, String>,
}

impl Health {
    pub(crate) fn new(started: DateTime<Utc>) -> Self {
        Health {
            started,
            slots: HashMap::new(),
            running: HashMap::new(),
            long_runs: HashMap::new(),
            warned: HashMap::new(),
        }
    }

    fn see(&mut self, key: &str, slot: DateTime<Utc>) -> bool {
        let slots = self.slots.entry(key.to_string()).or_default();
        match slots.binary_search(&slot) {
            Ok(_) => false,
            Err(at) => {
                slots.insert(at, slot);
                true
            }
        }
    }
}

/// What the loop needs of a running Job of a CronJob: not its whole
/// [`JobSnapshot`] (a cluster may have thousands running at once).
#[derive(Debug, Clone)]
struct RunningJob {
    /// `namespace/cronjob`, as the CronJob cache is keyed.
    cronjob_key: String,
    name: String,
    started_at: DateTime<Utc>,
    // What a "running for …" alert tells of the Job.
    failed_pods: i32,
    backoff_limit: Option<i32>,
    rerun_request: Option<String>,
}

impl RunningJob {
    /// The Job as an overrun alert reads it (its CronJob's, `uid`, running).
    fn snapshot(&self, uid: &str, cronjob: &CronJobSnapshot) -> JobSnapshot {
        JobSnapshot {
            namespace: cronjob.namespace.clone(),
            name: self.name.clone(),
            uid: uid.to_string(),
            cronjob: Some(cronjob.name.clone()),
            rerun_request: self.rerun_request.clone(),
            started_at: Some(self.started_at),
            active: 1,
            failed_pods: self.failed_pods,
            backoff_limit: self.backoff_limit,
            failed: None,
            complete: None,
            failed_indexes: None,
            terminating: 0,
            managed_by: None,
            scheduled_for: None,
        }
    }
}

/// A verdict of one look, acted on after the locks are released.
enum Finding {
    Missed {
        cronjob: CronJobSnapshot,
        missed: slots::Missed,
        grace: Duration,
    },
    Overrun {
        job: Box<JobSnapshot>,
        cronjob: CronJobSnapshot,
        overrun: slots::Overrun,
    },
}

fn std_to_chrono(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

impl App {
    /// Keeps the small facts the loop needs about a Job of a CronJob (every
    /// Job event); a Job alerted as too long that has ended gets its alert
    /// updated.
    pub(crate) fn track_job(self: &Arc<Self>, job: &JobSnapshot) {
        let Some(cronjob) = job.cronjob.as_deref() else {
            return;
        };
        if !self.settings.missed_runs && !self.settings.long_runs {
            return; // no loop looks (`run_schedule_health`)
        }
        let key = format!("{}/{cronjob}", job.namespace);
        let ended = {
            let mut h = self.health.lock().expect("health lock");
            if let Some(slot) = job.scheduled_for
                && self.settings.missed_runs
            {
                h.see(&key, slot);
            }
            if job.is_running()
                && let Some(started_at) = job.started_at
            {
                let running = RunningJob {
                    cronjob_key: key,
                    name: job.name.clone(),
                    started_at,
                    failed_pods: job.failed_pods,
                    backoff_limit: job.backoff_limit,
                    rerun_request: job.rerun_request.clone(),
                };
                h.running.insert(job.uid.clone(), running);
                None
            } else {
                h.running.remove(&job.uid);
                let finished = job.failed.as_ref().or(job.complete.as_ref());
                match finished {
                    Some(c) => h
                        .long_runs
                        .remove(&job.uid)
                        .map(|lr| (lr, Some(job.complete.is_some()), c.at)),
                    None => None,
                }
            }
        };
        if let Some((lr, succeeded, at)) = ended {
            let this = self.clone();
            self.spawn(async move { this.end_long_run(&lr, succeeded, at).await });
        }
    }

    /// A Job was deleted: no longer running; if it was alerted as too long,
    /// its alert says it is gone.
    pub(crate) fn forget_job(self: &Arc<Self>, job: &JobSnapshot) {
        let gone = {
            let mut h = self.health.lock().expect("health lock");
            h.running.remove(&job.uid);
            h.long_runs.remove(&job.uid)
        };
        if let Some(lr) = gone {
            let (succeeded, at) = match (&job.complete, &job.failed) {
                (Some(c), _) => (Some(true), c.at),
                (None, Some(f)) => (Some(false), f.at),
                (None, None) => (None, Utc::now()),
            };
            let this = self.clone();
            self.spawn(async move { this.end_long_run(&lr, succeeded, at).await });
        }
    }

    /// Reads the alerted slots and long runs (at the start of each term).
    async fn load_health(&self) {
        let slots = store::all_records::<AlertedSlots>(self.store.as_ref(), RecordKind::Slot).await;
        let long_runs =
            store::all_records::<LongRun>(self.store.as_ref(), RecordKind::LongRun).await;
        let mut h = self.health.lock().expect("health lock");
        match slots {
            Ok(all) => {
                for (key, alerted) in all {
                    for slot in alerted.slots {
                        h.see(&key, slot);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the alerted slots"),
        }
        match long_runs {
            Ok(all) => h.long_runs.extend(all),
            Err(e) => tracing::warn!(error = %e, "cannot read the long runs"),
        }
    }

    /// The schedule-health loop: started once the Job watch listed every
    /// Job (a slot whose Job is merely not seen yet is not missed).
    pub(crate) async fn run_schedule_health(self: Arc<Self>) {
        if !self.settings.missed_runs && !self.settings.long_runs {
            return;
        }
        self.load_health().await;
        while !self.is_ready() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        loop {
            if self.leads() {
                let findings = self.look(Utc::now());
                for finding in findings {
                    match finding {
                        Finding::Missed {
                            cronjob,
                            missed,
                            grace,
                        } => self.raise_missed(&cronjob, &missed, grace).await,
                        Finding::Overrun {
                            job,
                            cronjob,
                            overrun,
                        } => self.raise_overrun(&job, &cronjob, &overrun).await,
                    }
                }
            }
            self.metrics.schedule_checks.inc();
            tokio::time::sleep(self.settings.health_interval).await;
        }
    }

    /// One look at every CronJob and running Job: what deserves an alert.
    /// Marks what it finds as seen at once, so the next look does not find
    /// it again while it is being posted.
    fn look(&self, now: DateTime<Utc>) -> Vec<Finding> {
        let lookback = std_to_chrono(self.settings.lookback);
        let mut findings = Vec::new();
        let mut warnings: Vec<(String, Vec<String>)> = Vec::new();
        let cronjobs = self.cronjobs.read().expect("cronjob cache lock");
        let mut h = self.health.lock().expect("health lock");
        // One running Job per CronJob, for "still running under Forbid".
        let mut running_of: HashMap<&str, &str> = HashMap::new();
        for job in h.running.values() {
            running_of
                .entry(job.cronjob_key.as_str())
                .or_insert(job.name.as_str());
        }
        let running_of: HashMap<String, String> = running_of
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let started = h.started;
        if self.settings.missed_runs {
            for (key, cj) in cronjobs.iter() {
                if cj.alerts_off || cj.failures_only {
                    continue;
                }
                let mut warned = Vec::new();
                let grace = slots::grace(cj.missed_after.as_deref(), cj.starting_deadline_seconds);
                warned.extend(grace.warning);
                let grace = grace.value;
                let verdict = {
                    let seen: &[DateTime<Utc>] =
                        h.slots.get(key).map(Vec::as_slice).unwrap_or_default();
                    slots::missed_run(
                        &CronJobTiming {
                            schedule: &cj.schedule,
                            time_zone: cj.time_zone.as_deref(),
                            suspended: cj.suspended,
                            starting_deadline_seconds: cj.starting_deadline_seconds,
                            concurrency_policy: &cj.concurrency_policy,
                            running_job: running_of.get(key).map(String::as_str),
                            last_schedule_time: cj.last_schedule_time,
                        },
                        &MissedCheck {
                            seen,
                            bot_started: started,
                            lookback,
                            grace,
                            now,
                        },
                    )
                };
                match verdict {
                    Ok(Some(missed)) => {
                        // No run is due before the CronJob existed (its
                        // creation, or the last run the controller reports,
                        // whichever is earlier: clocks differ).
                        let earliest = match (cj.created_at, cj.last_schedule_time) {
                            (Some(c), Some(l)) => Some(c.min(l)),
                            (c, l) => c.or(l),
                        };
                        let before_creation = earliest.is_some_and(|e| missed.slot <= e);
                        if h.see(key, missed.slot) && !before_creation {
                            findings.push(Finding::Missed {
                                cronjob: cj.clone(),
                                missed,
                                grace,
                            });
                        }
                    }
                    Ok(None) => {}
                    Err(e) => warned.push(format!("no missed-run alerts: {e}")),
                }
                // Forget what no look will judge again.
                let keep_from = now - grace - lookback - Duration::hours(1);
                if let Some(seen) = h.slots.get_mut(key) {
                    let old = seen.partition_point(|s| *s < keep_from);
                    seen.drain(..old);
                }
                warnings.push((key.clone(), warned));
            }
        }
        if self.settings.long_runs {
            // Judged in place; only the Jobs found too long are copied out.
            let mut overruns = Vec::new();
            for (uid, job) in &h.running {
                if h.long_runs.contains_key(uid) {
                    continue;
                }
                let Some(cj) = cronjobs.get(&job.cronjob_key) else {
                    continue;
                };
                if cj.alerts_off || cj.failures_only {
                    continue;
                }
                let durations =
                    self.successful_durations(&cj.namespace, &cj.name, RECENT_DURATIONS);
                let threshold = slots::overrun_threshold(cj.max_duration.as_deref(), &durations);
                if let Some(w) = threshold.warning {
                    match warnings.iter_mut().find(|(k, _)| *k == cj.key()) {
                        Some((_, list)) => list.push(w),
                        None => warnings.push((cj.key(), vec![w])),
                    }
                }
                let Some(overrun) = threshold.value else {
                    continue;
                };
                if now - job.started_at <= overrun.threshold {
                    continue;
                }
                overruns.push((job.snapshot(uid, cj), job.started_at, cj.clone(), overrun));
            }
            for (job, started_at, cj, overrun) in overruns {
                h.long_runs.insert(
                    job.uid.clone(),
                    LongRun {
                        namespace: job.namespace.clone(),
                        cronjob: cj.name.clone(),
                        job: job.name.clone(),
                        alert: overrun_key(&job.uid),
                        started_at,
                        alerted_at: now,
                    },
                );
                findings.push(Finding::Overrun {
                    job: Box::new(job),
                    cronjob: cj,
                    overrun,
                });
            }
        }
        // A warning once per CronJob per change, not on every look.
        for (key, list) in warnings {
            if list.is_empty() {
                h.warned.remove(&key);
                continue;
            }
            let text = list.join("; ");
            if h.warned.get(&key) != Some(&text) {
                tracing::warn!(cronjob = %key, warning = %text, "schedule health");
                h.warned.insert(key, text);
            }
        }
        h.warned.retain(|k, _| cronjobs.contains_key(k));
        h.slots.retain(|k, _| cronjobs.contains_key(k));
        findings
    }

    /// Records the slot as alerted, then raises its "did not start" alert.
    async fn raise_missed(&self, cj: &CronJobSnapshot, missed: &slots::Missed, grace: Duration) {
        let key = cj.key();
        {
            let lock = self.thread_lock(&format!("slot/{key}"));
            let _serialized = lock.lock().await;
            let mut alerted: AlertedSlots = match store::get_record(
                self.store.as_ref(),
                RecordKind::Slot,
                &key,
            )
            .await
            {
                Ok(a) => a.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %e, cronjob = %key, "alerted slots unreadable; not alerting now");
                    return;
                }
            };
            if !alerted.add(missed.slot) {
                return; // alerted before (an earlier term)
            }
            if let Err(e) =
                store::put_record(self.store.as_ref(), RecordKind::Slot, &key, &alerted).await
            {
                tracing::warn!(error = %e, cronjob = %key, "cannot record the alerted slot");
            }
        }
        let alert = FailureAlert::missed(cj, missed, grace, Utc::now());
        tracing::info!(cronjob = %key, slot = %missed.slot, reason = ?missed.reason, "run did not start");
        self.raise_health_alert(alert, cj).await;
    }

    /// Records the long run, then raises its "running for …" alert with the
    /// last log lines of its pod.
    async fn raise_overrun(
        &self,
        job: &JobSnapshot,
        cj: &CronJobSnapshot,
        overrun: &slots::Overrun,
    ) {
        let Some(started_at) = job.started_at else {
            return;
        };
        let now = Utc::now();
        let long_run = LongRun {
            namespace: job.namespace.clone(),
            cronjob: cj.name.clone(),
            job: job.name.clone(),
            alert: overrun_key(&job.uid),
            started_at,
            alerted_at: now,
        };
        if let Err(e) = store::put_record(
            self.store.as_ref(),
            RecordKind::LongRun,
            &job.uid,
            &long_run,
        )
        .await
        {
            tracing::warn!(error = %e, job = %job.key(), "cannot record the long run");
        }
        let mut alert = FailureAlert::overrun(job, started_at, cj, overrun, now);
        let read = self
            .cluster
            .running_log(job, self.settings.log_lines, self.settings.log_bytes);
        alert.log = match tokio::time::timeout(std::time::Duration::from_secs(10), read).await {
            Ok(log) => log,
            Err(_) => LogTail::Unavailable("the log took too long to read".into()),
        };
        tracing::info!(job = %job.key(), threshold = ?overrun.threshold, "run takes too long");
        self.raise_health_alert(alert, cj).await;
    }

    /// Stores the alert as pending on every platform (once per key), then posts it.
    async fn raise_health_alert(&self, alert: FailureAlert, cj: &CronJobSnapshot) {
        let records = self.record_pending(&alert, Some(cj), Utc::now()).await;
        if records.is_empty() {
            return;
        }
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %e, "cannot flush the store");
        }
        // The same claim as the pending-retry loop's.
        let Some(_claim) = self.claim(alert.job_uid.clone()) else {
            return;
        };
        for (key, record) in records {
            self.post_alert(&key, record, false).await;
        }
    }

    /// A Job alerted as running too long ended: its alert says how.
    async fn end_long_run(&self, lr: &LongRun, succeeded: Option<bool>, at: DateTime<Utc>) {
        let job_uid = lr.alert.strip_prefix("overrun/").unwrap_or(&lr.alert);
        if let Err(e) = self.store.delete_record(RecordKind::LongRun, job_uid).await {
            tracing::warn!(error = %e, job = %lr.job, "cannot delete the long-run record");
        }
        let end = RunEnd {
            succeeded,
            after_secs: (at - lr.started_at).num_seconds().max(0),
        };
        for d in &self.settings.destinations {
            let key = alert_key(d.platform, &lr.alert);
            let Ok(Some(record)) = self.store.alert(&key).await else {
                continue;
            };
            // The CronJob's thread lock: in order with the incident's updates.
            let lock = self.thread_lock(&record_thread_key(&record));
            let _serialized = lock.lock().await;
            let Ok(Some(mut record)) = self.store.alert(&key).await else {
                continue;
            };
            let AlertKind::Overrun { ended, .. } = &mut record.alert.kind else {
                continue;
            };
            if ended.is_some() {
                continue;
            }
            *ended = Some(end.clone());
            if let Err(e) = self.store.put_alert(&key, &record).await {
                tracing::warn!(error = %e, "cannot record the end of the long run");
                continue;
            }
            // Still pending: it is posted with the end in it.
            let Some((at, story, reply)) = self.posted_alert(&record).await else {
                continue;
            };
            if !self.leads() {
                return;
            }
            let message = Outgoing::Alert {
                alert: &record.alert,
                story: &story,
                reply,
                status: record.status.as_deref(),
            };
            if let Err(e) = self.chat.update(&at, message).await {
                tracing::warn!(error = %e, "cannot update the long-run alert");
            }
        }
        tracing::info!(job = %lr.job, ?succeeded, "long run ended");
    }
}
