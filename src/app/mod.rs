//! The orchestrator: feeds cluster events and chat interactions to the core
//! and carries out its decisions through the adapters.

mod alerts;
mod hold;
mod interactions;
mod rerun;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::{Chat, Platform};
use crate::core::CronJobSnapshot;
use crate::core::policy::Policy;
use crate::kube::Cluster;
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
}

/// What reruns need from the configuration.
#[derive(Debug, Clone)]
pub struct RerunSettings {
    pub policy: Policy,
    pub approval_ttl: Duration,
    pub require_ticket: bool,
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
    /// CronJobs by `namespace/name`, kept current by the CronJob watch.
    cronjobs: RwLock<HashMap<String, CronJobSnapshot>>,
    /// Job uids whose alert is being raised right now (guards the pending-retry loop).
    in_flight: Mutex<HashSet<String>>,
    /// One lock per CronJob, so its failures are threaded in order.
    thread_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    ready: AtomicBool,
    /// Every task the app starts, so shutdown can wait for all of them.
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl App {
    pub fn new(
        settings: AlertSettings,
        reruns: RerunSettings,
        store: Arc<dyn Store>,
        chat: Arc<dyn Chat>,
        cluster: Cluster,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(App {
            settings,
            reruns,
            groups: Mutex::new(HashMap::new()),
            store,
            chat,
            cluster,
            metrics,
            cronjobs: RwLock::new(HashMap::new()),
            in_flight: Mutex::new(HashSet::new()),
            thread_locks: Mutex::new(HashMap::new()),
            ready: AtomicBool::new(false),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs `work` until it ends or the app shuts down.
    pub(crate) fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let stop = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = work => {}
            }
        });
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
