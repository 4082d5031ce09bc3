//! Settings: every one an environment variable and a CLI flag (`.env` is read first).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Where the bot keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// An embedded sled database in `RERUN_BOT_DATA_DIR` (one replica).
    Sled,
    /// Custom resources in the bot's namespace (several replicas).
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A feature switch (`on` / `off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Switch::On
    }
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Slack bot token (`xoxb-…`); Slack is on when it is set.
    #[arg(long, env = "SLACK_BOT_TOKEN", hide_env_values = true)]
    pub slack_bot_token: Option<String>,
    /// Slack app-level token (`xapp-…`); when set, Socket Mode is used (no public URL needed).
    #[arg(long, env = "SLACK_APP_TOKEN", hide_env_values = true)]
    pub slack_app_token: Option<String>,
    /// Slack signing secret; required for HTTP mode, every request is verified with it.
    #[arg(long, env = "SLACK_SIGNING_SECRET", hide_env_values = true)]
    pub slack_signing_secret: Option<String>,
    /// Slack Web API base URL (GovSlack, proxies, tests).
    #[arg(long, env = "SLACK_API_URL", default_value = "https://slack.com/api")]
    pub slack_api_url: String,
    /// Default Slack channel id for alerts (a CronJob's `rerun-bot.io/channel` overrides it).
    #[arg(long, env = "RERUN_BOT_CHANNEL")]
    pub channel: Option<String>,
    /// The bot's Entra app id (Microsoft Teams); Teams is on when it is set.
    #[arg(long, env = "TEAMS_APP_ID")]
    pub teams_app_id: Option<String>,
    /// The Entra app's client secret.
    #[arg(long, env = "TEAMS_APP_PASSWORD", hide_env_values = true)]
    pub teams_app_password: Option<String>,
    /// The Entra tenant the bot is registered in (single-tenant token authority).
    #[arg(long, env = "TEAMS_TENANT_ID")]
    pub teams_tenant_id: Option<String>,
    /// Default Teams channel id for alerts (`19:…@thread.tacv2`; a CronJob's
    /// `rerun-bot.io/teams-channel` overrides it).
    #[arg(long, env = "TEAMS_CHANNEL")]
    pub teams_channel: Option<String>,
    /// Bot Connector base URL until a team's activity names its own (then that is stored).
    #[arg(
        long,
        env = "TEAMS_SERVICE_URL",
        default_value = "https://smba.trafficmanager.net/teams/"
    )]
    pub teams_service_url: String,
    /// Entra login host for the bot's tokens (sovereign clouds, tests).
    #[arg(
        long,
        env = "TEAMS_LOGIN_URL",
        default_value = "https://login.microsoftonline.com"
    )]
    pub teams_login_url: String,
    /// Bot Framework OpenID metadata: names the keys inbound activities are signed with.
    #[arg(
        long,
        env = "TEAMS_OPENID_METADATA_URL",
        default_value = "https://login.botframework.com/v1/.well-known/openidconfiguration"
    )]
    pub teams_openid_metadata_url: String,
    /// Namespaces to watch, comma-separated; empty: all.
    #[arg(long, env = "RERUN_BOT_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Where state is kept: `sled` (one replica, a volume) or `kubernetes`
    /// (custom resources; needs the CRDs of manifests/ha/).
    #[arg(long, env = "RERUN_BOT_STORE", value_enum, default_value = "sled")]
    pub store: StoreKind,
    /// Namespace of the bot's custom resources with `RERUN_BOT_STORE=kubernetes`;
    /// default: the pod's own namespace (the kube client's default).
    #[arg(long, env = "RERUN_BOT_STORE_NAMESPACE")]
    pub store_namespace: Option<String>,
    /// This replica's name in the leader Lease (`rerun-bot-leader`) with
    /// `RERUN_BOT_STORE=kubernetes`; default: the pod's hostname.
    #[arg(long, env = "RERUN_BOT_IDENTITY")]
    pub identity: Option<String>,
    /// sled database directory.
    #[arg(long, env = "RERUN_BOT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Address of the HTTP port (Slack endpoints, /healthz, /readyz, /metrics).
    #[arg(long, env = "RERUN_BOT_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Slack user or user-group ids allowed to request reruns; empty: anyone.
    #[arg(long, env = "RERUN_BOT_REQUESTERS", value_delimiter = ',')]
    pub requesters: Vec<String>,
    /// Ids allowed to approve; empty: anyone but the requester.
    #[arg(long, env = "RERUN_BOT_APPROVERS", value_delimiter = ',')]
    pub approvers: Vec<String>,
    /// Ids allowed to hold/resume everything or a namespace; empty: nobody.
    #[arg(long, env = "RERUN_BOT_ADMINS", value_delimiter = ',')]
    pub admins: Vec<String>,
    /// A pending rerun request expires after this.
    #[arg(long, env = "RERUN_BOT_APPROVAL_TTL", default_value = "1h")]
    pub approval_ttl: humantime::Duration,
    /// On start, alert failures this recent that were never alerted; older ones never.
    #[arg(long, env = "RERUN_BOT_LOOKBACK", default_value = "1h")]
    pub lookback: humantime::Duration,
    /// Require a ticket reference on every rerun request.
    #[arg(long, env = "RERUN_BOT_REQUIRE_TICKET", default_value_t = false)]
    pub require_ticket: bool,
    /// A regular expression every ticket must match as a whole, e.g.
    /// `^(INC|OPS)-[0-9]+$`; unset: any ticket.
    #[arg(long, env = "RERUN_BOT_TICKET_PATTERN")]
    pub ticket_pattern: Option<crate::core::ticket::TicketPattern>,
    /// Where a ticket is looked at: a URL with `{ticket}` in it, e.g.
    /// `https://jira.example.com/browse/{ticket}`; tickets become links there.
    #[arg(long, env = "RERUN_BOT_TICKET_URL")]
    pub ticket_url: Option<crate::core::ticket::TicketUrl>,
    /// Bearer token for `GET /audit`; unset: the endpoint is off.
    #[arg(long, env = "RERUN_BOT_AUDIT_TOKEN", hide_env_values = true)]
    pub audit_token: Option<String>,
    /// Re-surface age: a CronJob's failures are one incident (one alert, the
    /// rest in its thread) until a Job of it succeeds; an incident whose alert
    /// is older than this comes back as a new top-level alert.
    #[arg(long, env = "RERUN_BOT_THREAD_WINDOW", default_value = "24h")]
    pub thread_window: humantime::Duration,
    /// More CronJobs than this opening an incident in one channel within a
    /// minute make a storm: one digest message instead of an alert each. `0`: off.
    #[arg(long, env = "RERUN_BOT_STORM_THRESHOLD", default_value_t = 5)]
    pub storm_threshold: usize,
    /// Audit events, finished rerun requests and finished holds are kept this long.
    #[arg(long, env = "RERUN_BOT_AUDIT_RETENTION", default_value = "180d")]
    pub audit_retention: humantime::Duration,
    /// Log lines shown in an alert.
    #[arg(long, env = "RERUN_BOT_LOG_LINES", default_value_t = 20)]
    pub log_lines: usize,
    /// Log bytes shown in an alert (the end of the log is kept).
    #[arg(long, env = "RERUN_BOT_LOG_BYTES", default_value_t = 2048)]
    pub log_bytes: usize,
    /// How long an alert waits for the exit code and log tail before it is
    /// posted without them (they follow by update). `0s`: post at once.
    #[arg(long, env = "RERUN_BOT_CAPTURE_BUDGET", default_value = "0s")]
    pub capture_budget: humantime::Duration,
    /// How sends to a channel are paced: `platform` (at Slack's and Teams'
    /// documented rates, so 429s stay rare) or `off` (only a 429 slows a
    /// channel down; for fakes without rate limits).
    #[arg(
        long,
        env = "RERUN_BOT_CHAT_PACING",
        value_enum,
        default_value = "platform"
    )]
    pub chat_pacing: crate::chat::pacing::Pacing,
    /// Log output format.
    #[arg(long, env = "RERUN_BOT_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// "⏰ did not start" alerts: a due run of a CronJob with no Job within
    /// its grace (`rerun-bot.io/missed-after`). `on` or `off`.
    #[arg(long, env = "RERUN_BOT_MISSED_RUNS", value_enum, default_value = "on")]
    pub missed_runs: Switch,
    /// "🐢 running for …" alerts: a Job running longer than
    /// `rerun-bot.io/max-duration`, else 3× its usual duration. `on` or `off`.
    #[arg(long, env = "RERUN_BOT_LONG_RUNS", value_enum, default_value = "on")]
    pub long_runs: Switch,
    /// How often schedules and running Jobs are checked (tests shorten it).
    #[arg(long, hide = true, default_value = "30s")]
    pub health_interval: humantime::Duration,
}

impl Settings {
    /// Checks what clap cannot: combinations.
    pub fn validate(&self) -> Result<(), String> {
        if self.slack().is_none() && self.teams().is_none() {
            return Err("no chat platform: set SLACK_BOT_TOKEN (Slack) or TEAMS_APP_ID (Microsoft Teams), or both".into());
        }
        if self.teams().is_some() {
            let missing: Vec<&str> = [
                ("TEAMS_APP_PASSWORD", &self.teams_app_password),
                ("TEAMS_TENANT_ID", &self.teams_tenant_id),
                ("TEAMS_CHANNEL", &self.teams_channel),
            ]
            .into_iter()
            .filter(|(_, v)| v.as_deref().is_none_or(|v| v.trim().is_empty()))
            .map(|(name, _)| name)
            .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "Teams is on (TEAMS_APP_ID is set) but {} {} not set; README \"Teams setup\" says where each comes from",
                    missing.join(", "),
                    if missing.len() == 1 { "is" } else { "are" }
                ));
            }
        }
        if self.log_lines == 0 || self.log_bytes < 64 {
            return Err("RERUN_BOT_LOG_LINES must be ≥ 1 and RERUN_BOT_LOG_BYTES ≥ 64".into());
        }
        if self.slack().is_none() {
            return Ok(());
        }
        if self.slack_app_token.is_none()
            && self
                .slack_signing_secret
                .as_deref()
                .unwrap_or("")
                .is_empty()
        {
            return Err(
                "set SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)".into(),
            );
        }
        if self.channel.as_deref().is_none_or(|c| c.trim().is_empty()) {
            return Err("Slack is on (SLACK_BOT_TOKEN is set) but RERUN_BOT_CHANNEL is not: set it to the alert channel's id (C…)".into());
        }
        Ok(())
    }

    /// The Slack bot token, when Slack is on.
    pub fn slack(&self) -> Option<&str> {
        self.slack_bot_token
            .as_deref()
            .filter(|t| !t.trim().is_empty())
    }

    /// The Teams app id, when Teams is on.
    pub fn teams(&self) -> Option<&str> {
        self.teams_app_id
            .as_deref()
            .filter(|t| !t.trim().is_empty())
    }
}
