//! `rerun-bot demo`: the real bot — [`Bot::start`], the same kube-rs and
//! slack-morphism code paths as `serve`, every Slack request signed and
//! verified — against a simulated cluster and a simulated Slack workspace
//! (the `rerun-sim` crate), with a chat page in the browser.
//!
//! - [`scenario`] plays the cluster: CronJobs on an accelerated schedule,
//!   Jobs whose pods start, log and finish (some fail), reruns that run.
//! - `workspace` reads what the bot sent to the simulated Slack and sends the
//!   visitor's clicks, forms and slash commands to the bot as Slack would.
//! - `teams` does the same for the simulated Microsoft Teams (Bot Framework):
//!   the bot speaks both platforms, every alert goes to both, a request lives
//!   where it was made.
//! - `web` serves the page and its small JSON/SSE API.

pub mod scenario;
mod teams;
mod web;
mod workspace;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rerun_sim::{FakeKube, FakeSlack, FakeTeams};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Bot;
use crate::config::Settings;
pub use scenario::Pace;

/// The alert channel of the simulated workspace.
pub const CHANNEL: &str = "C_ALERTS";
/// The people a visitor can act as: id, name, role.
pub const USERS: [(&str, &str, &str); 3] = [
    ("U_ALICE", "Alice", "requester"),
    ("U_BOB", "Bob", "approver"),
    ("U_DANA", "Dana", "admin"),
];

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the chat page is served.
    pub listen: SocketAddr,
    /// The bot's data dir; `None`: a fresh temp dir, removed at shutdown.
    pub data_dir: Option<PathBuf>,
    pub pace: Pace,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            listen: "127.0.0.1:8088".parse().expect("valid address"),
            data_dir: None,
            pace: Pace::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "cannot listen on {addr}: {source} (is another demo running there? choose another port with --listen)"
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the bot did not start: {0}")]
    Bot(#[from] crate::StartError),
    #[error("the bot did not become ready within 10 s")]
    NotReady,
}

/// A running demo: simulators, the bot, the scenario and the page.
pub struct Demo {
    addr: SocketAddr,
    bot: Option<Bot>,
    stop: CancellationToken,
    tasks: TaskTracker,
    temp_dir: Option<PathBuf>,
}

#[derive(Parser)]
struct SettingsOnly {
    #[command(flatten)]
    settings: Settings,
}

fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// The bot's settings for the demo: Slack over HTTP (signed requests) against
/// the simulated workspace and Teams against the simulated Bot Framework
/// (JWT-signed activities); Bob and Dana approve, Dana is the admin, on both.
fn settings(
    slack: &FakeSlack,
    teams: &FakeTeams,
    data_dir: &std::path::Path,
    audit_token: &str,
) -> Settings {
    let data_dir = data_dir.to_string_lossy().into_owned();
    let api_url = slack.api_url();
    let args = [
        "rerun-bot",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
        "--slack-bot-token",
        "xoxb-demo-token",
        "--slack-signing-secret",
        slack.signing_secret(),
        "--slack-api-url",
        &api_url,
        "--channel",
        CHANNEL,
        "--capture-budget",
        "5s",
    ];
    let mut s = SettingsOnly::try_parse_from(args)
        .expect("demo settings parse")
        .settings;
    // Whatever the environment says, the demo is this workspace and cluster.
    s.slack_app_token = None;
    s.teams_app_id = Some(teams.app_id().to_string());
    s.teams_app_password = Some(teams.app_password().to_string());
    s.teams_tenant_id = Some(teams.tenant().to_string());
    s.teams_channel = Some(teams.channel(teams::CHANNEL_NAME));
    s.teams_service_url = teams.service_url();
    s.teams_login_url = teams.login_url();
    s.teams_openid_metadata_url = teams.openid_metadata_url();
    s.namespaces = Vec::new();
    s.requesters = Vec::new();
    let aad = |key: &str| teams.user(key).aad_object_id;
    s.approvers = vec!["U_BOB".into(), "U_DANA".into(), aad("bob"), aad("dana")];
    s.admins = vec!["U_DANA".into(), aad("dana")];
    s.audit_token = Some(audit_token.to_string());
    s.require_ticket = false;
    s
}

impl Demo {
    /// Binds the page first (a second demo on the same port stops here), then
    /// starts the simulators, the bot and the scenario.
    pub async fn start(options: DemoOptions) -> Result<Demo, DemoError> {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| DemoError::Listen {
                addr: options.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| DemoError::Listen {
            addr: options.listen,
            source,
        })?;
        let (data_dir, temp_dir) = match &options.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let d = std::env::temp_dir().join(format!(
                    "rerun-bot-demo-{}-{}",
                    std::process::id(),
                    &random_hex()[..8]
                ));
                (d.clone(), Some(d))
            }
        };
        std::fs::create_dir_all(&data_dir).map_err(|source| DemoError::DataDir {
            path: data_dir.clone(),
            source,
        })?;

        let kube = FakeKube::start().await;
        let slack = FakeSlack::start(&random_hex()).await;
        for (id, name, _) in USERS {
            slack.add_user(id, &name.to_lowercase());
        }
        let fake_teams = FakeTeams::start(teams::APP_ID, &random_hex(), teams::TENANT).await;
        for (_, name, _) in USERS {
            fake_teams.user(&name.to_lowercase());
        }
        scenario::install(&kube);

        let audit_token = random_hex();
        let client = ::kube::Client::try_from(kube.client_config())
            .map_err(|e| DemoError::Bot(crate::StartError::Settings(e.to_string())))?;
        let bot = Bot::start(
            settings(&slack, &fake_teams, &data_dir, &audit_token),
            client,
        )
        .await?;
        fake_teams.set_bot_endpoint(&format!("http://{}/api/messages", bot.http_addr()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !bot.is_ready() {
            if tokio::time::Instant::now() > deadline {
                bot.shutdown().await;
                return Err(DemoError::NotReady);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let bot_url = format!("http://{}", bot.http_addr());

        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let workspace = Arc::new(workspace::Workspace::new(
            slack.clone(),
            kube.clone(),
            bot_url,
            audit_token,
            stop.clone(),
        ));
        tasks.spawn(workspace.clone().follow(stop.clone()));
        let teams_side = Arc::new(teams::TeamsSide::new(fake_teams, workspace.clone()));
        tasks.spawn(teams_side.clone().follow(stop.clone()));
        let driver = scenario::Driver::new(kube.clone(), options.pace.clone());
        tasks.spawn(driver.run(stop.clone()));
        let router = web::router(workspace, teams_side);
        let shutdown = stop.clone();
        tasks.spawn(async move {
            let serve = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "demo page server stopped");
            }
        });
        tracing::info!(%addr, "rerun-bot demo started");
        Ok(Demo {
            addr,
            bot: Some(bot),
            stop,
            tasks,
            temp_dir,
        })
    }

    /// Where the page is: `http://127.0.0.1:8088/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the scenario, the page and the bot; removes a temp data dir.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        self.tasks.close();
        // Open event streams end with the token; do not wait for ever on a browser.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
        if let Some(bot) = self.bot.take() {
            bot.shutdown().await;
        }
        if let Some(dir) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `rerun-bot demo`: prints the URL and runs until Ctrl-C.
pub async fn run(options: DemoOptions) -> Result<(), String> {
    let demo = Demo::start(options).await.map_err(|e| e.to_string())?;
    println!(
        "rerun-bot demo: open {} in a browser (Ctrl-C to stop)",
        demo.url()
    );
    crate::shutdown_signal().await;
    demo.shutdown().await;
    Ok(())
}
