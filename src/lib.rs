//! rerun-bot: a chat-ops bot for Kubernetes CronJobs.
//!
//! It watches the Jobs that CronJobs spawn and posts an interactive alert when
//! one fails. `docs/design.md` follows one failure through the code.
//!
//! Layout: [`core`] is pure (rules, no I/O); [`kube`], [`chat`], [`store`] and
//! [`http`] each own one outside system; [`app`] wires events to decisions.

pub mod app;
pub mod audit_client;
pub mod chat;
pub mod config;
pub mod core;
pub mod demo;
pub mod http;
pub mod kube;
pub mod metrics;
pub mod store;
pub mod teams_app;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::app::{AlertSettings, App, Destination, RerunSettings};
use crate::chat::slack::{self, SlackChat};
use crate::chat::teams::{self, TeamsChat, TeamsSettings};
use crate::chat::{Chat, Chats, Interactions, Platform};
use crate::config::Settings;
use crate::config::StoreKind;
use crate::core::policy::Policy;
use crate::kube::Cluster;
use crate::kube::lease::{self, Leadership, LeaseSettings};
use crate::metrics::Metrics;
use crate::store::{KubeStore, SledStore, Store};
use tokio_util::sync::CancellationToken;

pub use config::LogFormat;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error("cannot open the store: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot set up the Slack client: {0}")]
    Slack(String),
    #[error("cannot set up the Teams client: {0}")]
    Teams(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running bot. Tests start it in-process; `serve` runs it until a signal.
pub struct Bot {
    app: Arc<App>,
    http_addr: SocketAddr,
    socket: Option<slack::socket::SocketMode>,
    /// Ends the leader election (several replicas).
    election: CancellationToken,
    elector: Option<tokio::task::JoinHandle<()>>,
}

impl Bot {
    pub async fn start(settings: Settings, kube: ::kube::Client) -> Result<Bot, StartError> {
        settings.validate().map_err(StartError::Settings)?;
        // kube-rs and slack-morphism both use rustls; pick its crypto provider once.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let election = CancellationToken::new();
        let (store, leadership, elector): (Arc<dyn Store>, _, _) = match settings.store {
            StoreKind::Sled => (
                Arc::new(SledStore::open(&settings.data_dir)?),
                Leadership::sole(),
                None,
            ),
            StoreKind::Kubernetes => {
                let namespace = settings
                    .store_namespace
                    .clone()
                    .unwrap_or_else(|| kube.default_namespace().to_string());
                let store = Arc::new(KubeStore::open(kube.clone(), &namespace).await?);
                let identity = settings.identity.clone().unwrap_or_else(default_identity);
                tracing::info!(%identity, %namespace, "state in custom resources; electing a leader");
                let (leadership, task) = lease::elect(
                    kube.clone(),
                    LeaseSettings::new(&namespace, &identity),
                    election.clone(),
                );
                (store, leadership, Some(task))
            }
        };
        let sole = elector.is_none();
        let metrics = Arc::new(Metrics::default());
        let mut chats = Chats::default();
        let mut destinations = Vec::new();
        let slack_client = match settings.slack() {
            Some(token) => {
                let (client, _) = slack::client(&settings.slack_api_url)
                    .map_err(|e| StartError::Slack(e.to_string()))?;
                chats.slack = Some(Arc::new(
                    SlackChat::new(client.clone(), token, metrics.clone())
                        .with_pacing(settings.chat_pacing),
                ));
                destinations.push(Destination {
                    platform: Platform::Slack,
                    default_channel: settings.channel.clone().unwrap_or_default(),
                });
                Some(client)
            }
            None => None,
        };
        let teams = match settings.teams() {
            Some(app_id) => {
                let teams = Arc::new(
                    TeamsChat::new(
                        TeamsSettings {
                            app_id: app_id.to_string(),
                            app_password: settings.teams_app_password.clone().unwrap_or_default(),
                            tenant_id: settings.teams_tenant_id.clone().unwrap_or_default(),
                            service_url: settings.teams_service_url.clone(),
                            login_url: settings.teams_login_url.clone(),
                            openid_metadata_url: settings.teams_openid_metadata_url.clone(),
                            default_channel: settings.teams_channel.clone().unwrap_or_default(),
                        },
                        metrics.clone(),
                    )
                    .map_err(StartError::Teams)?
                    .with_pacing(settings.chat_pacing),
                );
                chats.teams = Some(teams.clone());
                destinations.push(Destination {
                    platform: Platform::Teams,
                    default_channel: settings.teams_channel.clone().unwrap_or_default(),
                });
                Some(teams)
            }
            None => None,
        };
        let chat: Arc<dyn Chat> = Arc::new(chats);
        let cluster = Cluster::new(
            kube,
            settings
                .namespaces
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect(),
        );
        let app = App::new(
            AlertSettings {
                destinations,
                lookback: settings.lookback.into(),
                thread_window: settings.thread_window.into(),
                log_lines: settings.log_lines,
                log_bytes: settings.log_bytes,
                capture_budget: settings.capture_budget.into(),
                pending_retry: Duration::from_secs(30),
                audit_retention: settings.audit_retention.into(),
                storm_threshold: settings.storm_threshold,
                missed_runs: settings.missed_runs.is_on(),
                long_runs: settings.long_runs.is_on(),
                health_interval: settings.health_interval.into(),
            },
            RerunSettings {
                policy: Policy::new(&settings.requesters, &settings.approvers, &settings.admins),
                approval_ttl: settings.approval_ttl.into(),
                tickets: crate::core::ticket::TicketRules {
                    required: settings.require_ticket,
                    pattern: settings.ticket_pattern.clone(),
                    url: settings.ticket_url.clone(),
                },
            },
            store.clone(),
            chat.clone(),
            cluster,
            metrics,
            leadership,
        );

        // CronJobs first, so every alert finds its CronJob's schedule and annotations.
        // Every replica keeps the CronJob cache (commands, forms) and answers
        // chat; the leader alone acts (`App::run_duties`).
        let startup = app.clone();
        app.spawn(async move {
            let (cj_tx, cj_rx) = tokio::sync::oneshot::channel();
            startup.spawn(startup.clone().run_cronjob_watch(cj_tx));
            if cj_rx.await.is_err() {
                return;
            }
            let (job_tx, job_rx) = tokio::sync::oneshot::channel();
            startup.spawn(startup.clone().run_duties(job_tx));
            if !sole {
                startup.set_ready();
                tracing::info!("first list of CronJobs done; ready (a follower until elected)");
            } else if job_rx.await.is_ok() {
                startup.set_ready();
                tracing::info!("first lists of CronJobs and Jobs done; ready");
            }
        });

        let handler: Arc<dyn Interactions> = Arc::new(app.clone());
        let mut chat_routes = axum::Router::new();
        let mut socket = None;
        if let Some(client) = slack_client {
            let dispatch = slack::http::Dispatch {
                handler: handler.clone(),
                chat: chat.clone(),
            };
            if let Some(token) = &settings.slack_app_token {
                socket = Some(
                    slack::socket::SocketMode::start(client, token, dispatch)
                        .await
                        .map_err(StartError::Slack)?,
                );
            }
            if let Some(secret) = settings
                .slack_signing_secret
                .as_deref()
                .filter(|s| !s.is_empty())
            {
                chat_routes =
                    chat_routes.merge(slack::http::router(secret, handler.clone(), chat.clone()));
            }
        }
        if let Some(teams) = teams {
            chat_routes = chat_routes.merge(teams::http::router(teams, handler.clone()));
        }
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: settings.listen,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: settings.listen,
            source,
        })?;
        let audit = settings
            .audit_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(|token| http::audit::AuditState {
                store: store.clone(),
                token: token.to_string(),
            });
        let router = http::router(app.clone(), chat_routes, audit);
        let stop = app.cancelled();
        app.spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
        tracing::info!(%http_addr, socket_mode = socket.is_some(), "rerun-bot started");
        Ok(Bot {
            app,
            http_addr,
            socket,
            election,
            elector,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn is_ready(&self) -> bool {
        self.app.is_ready()
    }

    /// Stops every task and releases the data dir.
    /// Stops every task, then (leading) releases the Lease so another
    /// replica takes over at once.
    pub async fn shutdown(self) {
        if let Some(socket) = &self.socket {
            socket.shutdown().await;
        }
        self.app.shutdown().await;
        self.election.cancel();
        if let Some(elector) = self.elector {
            let _ = elector.await;
        }
    }
}

/// The Lease holder name: the pod's hostname (its name), else a random one.
fn default_identity() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("rerun-bot-{:x}", crate::app::new_id()))
}

/// Runs the bot until SIGINT/SIGTERM.
pub async fn serve(settings: Settings) -> anyhow_free::Result {
    let kube = ::kube::Client::try_default()
        .await
        .map_err(|e| format!("no Kubernetes access (in-cluster or KUBECONFIG): {e}"))?;
    let bot = Bot::start(settings, kube)
        .await
        .map_err(|e| e.to_string())?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    bot.shutdown().await;
    Ok(())
}

mod anyhow_free {
    /// `serve`'s errors are for people: one line that says what to fix.
    pub type Result = std::result::Result<(), String>;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
