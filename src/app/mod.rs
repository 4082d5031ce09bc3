//! The orchestrator: feeds cluster events and chat interactions to the core
//! and carries out its decisions through the adapters.

mod alerts;
mod board;
mod health;
mod hold;
mod incidents;
mod interactions;
mod rerun;
mod snooze;
mod storm;

pub(crate) use rerun::new_id;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::{Chat, Platform};
use crate::core::CronJobSnapshot;
use crate::core::policy::Policy;
use crate::kube::Cluster;
use crate::kube::lease::Leadership;
use crate::metrics::Metrics;
use crate::store::Store;

/// The actor of the bot's own audit records.
pub(crate) const BOT_ACTOR: &str = "rerun-bot";

/// Where alerts go on one platform.
#[derive(Debug, Clone)]
pub struct Destination {
    pub platform: Platform,
    /// The default channel (a CronJob's annotation overrides it).
    pub default_channel: String,
}

/// What the alerting needs from the configuration.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Every alert goes to each of these (one per configured platform).
    pub destinations: Vec<Destination>,
    pub lookback: Duration,
    pub thread_window: Duration,
    pub log_lines: usize,
    pub log_bytes: usize,
    /// How long an alert waits for its details before it is posted without them.
    pub capture_budget: Duration,
    /// How often alerts that could not be posted are tried again.
    pub pending_retry: Duration,
    /// How long audit events and finished requests and holds are kept.
    pub audit_retention: Duration,
    /// More new incidents than this in one channel within a minute make a
    /// storm digest (`0`: never).
    pub storm_threshold: usize,
    /// "⏰ did not start" alerts (`RERUN_BOT_MISSED_RUNS`).
    pub missed_runs: bool,
    /// "🐢 running for …" alerts (`RERUN_BOT_LONG_RUNS`).
    pub long_runs: bool,
    /// How often the schedule-health loop looks (`--health-interval`).
    pub health_interval: Duration,
}

/// What reruns need from the configuration.
#[derive(Debug, Clone)]
pub struct RerunSettings {
    pub policy: Policy,
    pub approval_ttl: Duration,
    /// Required? What it must look like, and the link it becomes.
    pub tickets: crate::core::ticket::TicketRules,
}

/// A key claimed in [`App::claim`], released on drop.
pub(crate) struct Claim<'a> {
    app: &'a App,
    key: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.app
            .in_flight
            .lock()
            .expect("in-flight lock")
            .remove(&self.key);
    }
}

pub struct App {
    settings: AlertSettings,
    reruns: RerunSettings,
    /// User-group members by group id, with when they were looked up.
    groups: Mutex<HashMap<String, (std::time::Instant, Vec<String>)>>,
    store: Arc<dyn Store>,
    chat: Arc<dyn Chat>,
    cluster: Cluster,
    metrics: Arc<Metrics>,
    /// Whether this replica may act (always, with one replica).
    leadership: Leadership,
    /// CronJobs by `namespace/name`, kept current by the CronJob watch.
    cronjobs: RwLock<HashMap<String, CronJobSnapshot>>,
    /// Job uids whose alert is being raised right now (guards the pending-retry loop).
    in_flight: Mutex<HashSet<String>>,
    /// Run histories by `namespace/cronjob` (`app::incidents`).
    histories: Mutex<HashMap<String, crate::core::RunHistory>>,
    /// Histories changed in memory since their last write (`app::incidents`):
    /// a write takes the mark first, so one write stores several changes.
    unstored_histories: Mutex<std::collections::HashSet<String>>,
    /// Storm digests and the recent incidents of each channel (`app::storm`).
    storms: Mutex<storm::Storms>,
    /// Slots seen, running Jobs and long runs (`app::health`).
    health: Mutex<health::Health>,
    /// One lock per CronJob, so its failures are threaded in order.
    thread_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    ready: AtomicBool,
    /// Every task the app starts, so shutdown can wait for all of them.
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Work a shutdown lets finish ([`App::critical`]).
    critical: Arc<Critical>,
}

/// How long a shutdown waits for open critical sections (an alert being
/// posted and recorded) before it cuts them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The critical sections open right now.
#[derive(Default)]
struct Critical {
    open: AtomicUsize,
    closed: tokio::sync::Notify,
}

impl Critical {
    /// Until no critical section is open.
    async fn idle(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }

    /// A task being shut down: it goes on while a critical section is open
    /// (its own or another task's), for at most [`SHUTDOWN_GRACE`].
    async fn drain(&self, work: std::pin::Pin<&mut impl std::future::Future<Output = ()>>) {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            tokio::select! {
                _ = work => {}
                _ = self.idle() => {}
            }
        })
        .await;
    }
}

/// An open critical section; closes when dropped.
pub(crate) struct CriticalSection(Arc<Critical>);

impl Drop for CriticalSection {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

impl App {
    pub fn new(
        settings: AlertSettings,
        reruns: RerunSettings,
        store: Arc<dyn Store>,
        chat: Arc<dyn Chat>,
        cluster: Cluster,
        metrics: Arc<Metrics>,
        leadership: Leadership,
    ) -> Arc<Self> {
        Arc::new(App {
            settings,
            reruns,
            groups: Mutex::new(HashMap::new()),
            store,
            chat,
            cluster,
            metrics,
            leadership,
            cronjobs: RwLock::new(HashMap::new()),
            in_flight: Mutex::new(HashSet::new()),
            histories: Mutex::new(HashMap::new()),
            unstored_histories: Mutex::new(Default::default()),
            storms: Mutex::new(storm::Storms::default()),
            health: Mutex::new(health::Health::new(chrono::Utc::now())),
            thread_locks: Mutex::new(HashMap::new()),
            ready: AtomicBool::new(false),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            critical: Arc::default(),
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Why the leader election is stuck, if it is (several replicas).
    pub fn election_problem(&self) -> Option<String> {
        self.leadership.problem()
    }

    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs `work` until it ends or the app shuts down (see [`App::critical`]).
    pub(crate) fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let (stop, critical) = (self.shutdown.clone(), self.critical.clone());
        self.tasks.spawn(async move {
            tokio::pin!(work);
            tokio::select! {
                _ = stop.cancelled() => critical.drain(work).await,
                _ = &mut work => {}
            }
        });
    }

    /// Runs `work` until it ends, `term` ends or the app shuts down.
    pub(crate) fn spawn_in(
        &self,
        term: &CancellationToken,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (stop, term) = (self.shutdown.clone(), term.clone());
        let critical = self.critical.clone();
        self.tasks.spawn(async move {
            tokio::pin!(work);
            tokio::select! {
                _ = stop.cancelled() => critical.drain(work).await,
                _ = term.cancelled() => {}
                _ = &mut work => {}
            }
        });
    }

    /// Opens a section a shutdown does not cut in half: from sending an
    /// alert to recording that it was sent (cut off after the send, the
    /// alert would be sent again after the restart). `None` once the app
    /// shuts down: start nothing new, it stays pending.
    pub(crate) fn critical(&self) -> Option<CriticalSection> {
        if self.shutdown.is_cancelled() {
            return None;
        }
        self.critical.open.fetch_add(1, Ordering::AcqRel);
        Some(CriticalSection(self.critical.clone()))
    }

    /// This replica may act now (the leader's fence has not run out). Asked
    /// before every side effect: posting, creating, patching, deleting.
    pub(crate) fn leads(&self) -> bool {
        self.leadership.is_leader()
    }

    /// Claims `key` for this process until the guard drops; `None`: taken.
    pub(crate) fn claim(&self, key: String) -> Option<Claim<'_>> {
        // `then`, not `then_some`: a Claim built for a key already taken would
        // be dropped at once, under the lock, and its drop locks again (and
        // would release the other holder's claim).
        let fresh = self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .insert(key.clone());
        fresh.then(|| Claim { app: self, key })
    }

    /// What only the leader does: alerts (the Job watch), pending alerts,
    /// expiry, hold timers, and finishing what was decided. With one replica
    /// it runs from the start; with several, for as long as this one leads.
    pub(crate) async fn run_duties(self: Arc<Self>, job_synced: tokio::sync::oneshot::Sender<()>) {
        let mut job_synced = Some(job_synced);
        loop {
            self.leadership.led().await;
            tracing::info!("leading: watching Jobs, posting alerts, creating reruns");
            let term = self.shutdown.child_token();
            self.load_histories().await;
            self.load_digests().await;
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.spawn_in(&term, self.clone().run_job_watch(tx));
            self.spawn_in(&term, self.clone().run_pending_retry());
            self.spawn_in(&term, self.clone().run_request_expiry());
            self.spawn_in(&term, self.clone().run_hold_timers());
            self.spawn_in(&term, self.clone().run_snooze_timers());
            self.spawn_in(&term, self.clone().run_retention());
            self.spawn_in(&term, self.clone().run_digest_updates());
            let this = self.clone();
            let synced = job_synced.take();
            let health_term = term.clone();
            self.spawn_in(&term, async move {
                if rx.await.is_err() {
                    return;
                }
                // Missed and long runs: judged once every Job was listed.
                this.spawn_in(&health_term, this.clone().run_schedule_health());
                if let Some(tx) = synced {
                    let _ = tx.send(());
                }
                // Finish what was decided (approved, confirmed) — at start,
                // after a takeover, and, with several replicas, what a
                // follower recorded since.
                loop {
                    this.recover_batches().await;
                    this.clone().recover_requests().await;
                    this.clone().recover_operations().await;
                    // One replica: nobody else decides meanwhile.
                    if this.leadership.is_sole() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            });
            self.leadership.lost().await;
            tracing::warn!("no longer leading: stopped acting");
            term.cancel();
        }
    }

    /// Deletes records nothing needs any more: at each start of leadership,
    /// then every six hours. Alert records go once their failure is older
    /// than the lookback and the thread window (and a day): the alert
    /// decision ignores such Jobs anyway.
    async fn run_retention(self: Arc<Self>) {
        // Histories are kept for the CronJobs that exist: wait for the first list.
        while !self.is_ready() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        loop {
            let now = chrono::Utc::now();
            let age = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
            let retention = crate::store::Retention {
                alerts_before: now
                    - age(self.settings.lookback.max(self.settings.thread_window))
                    - chrono::Duration::days(1),
                records_before: now - age(self.settings.audit_retention),
            };
            let records = self.prune_records(retention.records_before).await;
            match self.store.prune(&retention).await.map(|n| n + records) {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "expired records deleted"),
                Err(e) => tracing::warn!(error = %e, "cannot delete expired records"),
            }
            tokio::time::sleep(Duration::from_secs(6 * 3600)).await;
        }
    }

    /// Stops every task of the app and waits for them.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    pub(crate) fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.shutdown.clone().cancelled_owned()
    }

    /// The default alert channel on `platform` (the first platform's when it is off).
    pub(crate) fn default_channel(&self, platform: Platform) -> &str {
        self.settings
            .destinations
            .iter()
            .find(|d| d.platform == platform)
            .or(self.settings.destinations.first())
            .map(|d| d.default_channel.as_str())
            .unwrap_or_default()
    }

    fn cached_cronjob(&self, namespace: &str, name: &str) -> Option<CronJobSnapshot> {
        self.cronjobs
            .read()
            .expect("cronjob cache lock")
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }
}
