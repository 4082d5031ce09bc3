//! The `rerun-bot` binary: parses the command line and runs the library.

use clap::{Parser, Subcommand};
use rerun_bot::LogFormat;
use rerun_bot::config::Settings;

#[derive(Parser)]
#[command(
    name = "rerun-bot",
    version,
    about = "Chat-ops for Kubernetes CronJobs: failure alerts in Slack and Microsoft Teams, reruns with four-eyes approval, maintenance holds"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bot: watch Jobs, post alerts, answer Slack and Teams.
    Serve(Box<Settings>),
    /// Print the audit trail of a running bot (its `GET /audit` endpoint).
    Audit(AuditArgs),
    /// Build the Microsoft Teams app package (manifest.json + icons) to upload to Teams.
    TeamsApp(TeamsAppArgs),
    /// Print the CustomResourceDefinitions of RERUN_BOT_STORE=kubernetes (`| kubectl apply -f -`).
    Crds,
    /// Try the whole bot in one command, with no cluster and no Slack workspace.
    ///
    /// Runs the real bot (the same Kubernetes and Slack code as `serve`, every
    /// Slack request signed and verified) against a simulated Kubernetes
    /// apiserver and a simulated Slack workspace, and serves a chat page:
    /// the #alerts channel, a composer for slash commands, a switch between
    /// Alice (requester), Bob (approver) and Dana (admin), and the simulated
    /// cluster's CronJobs, Jobs and the audit trail. Simulated: CronJobs in the
    /// namespaces billing and ops on schedules a few minutes apart, their Jobs'
    /// pods, logs and failures (a stack trace, an OOM kill, a deadline), and
    /// reruns. Reads no .env, needs no network or kube context, writes only to
    /// a temp dir (or --data-dir). Runs until Ctrl-C.
    Demo(DemoArgs),
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Where to serve the chat page.
    #[arg(long, default_value = "127.0.0.1:8088")]
    listen: std::net::SocketAddr,
    /// The bot's data dir (sled); default: a fresh temp dir, removed at exit.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct TeamsAppArgs {
    /// The bot's Entra application (client) ID, a GUID: the same value as TEAMS_APP_ID.
    #[arg(long, env = "TEAMS_APP_ID")]
    app_id: String,
    /// The app's name in Teams (at most 30 characters), e.g. "rerun-bot prod"; default rerun-bot.
    #[arg(long)]
    name: Option<String>,
    /// The manifest's version; raise it for every update of an uploaded app.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    app_version: String,
    /// Where to write the zip.
    #[arg(long, default_value = "rerun-bot-teams.zip")]
    out: std::path::PathBuf,
}

#[derive(clap::Args)]
struct AuditArgs {
    /// Base URL of the bot's HTTP port, e.g. http://rerun-bot.rerun-bot.svc
    #[arg(long, env = "RERUN_BOT_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The bot's RERUN_BOT_AUDIT_TOKEN.
    #[arg(long, env = "RERUN_BOT_AUDIT_TOKEN", hide_env_values = true)]
    token: String,
    /// Only events since this time (RFC 3339) or this long ago (24h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Only events of this CronJob (`name` or `namespace/name`).
    #[arg(long)]
    cronjob: Option<String>,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A missing .env is fine; a broken one is worth knowing about. The demo
    // reads none: it is the same on every machine.
    let demo = std::env::args().nth(1).as_deref() == Some("demo");
    if !demo
        && let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("warning: .env not loaded: {e}");
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(settings) => {
            init_tracing(settings.log_format);
            rerun_bot::serve(*settings)
                .await
                .map_err(anyhow::Error::msg)
        }
        Command::Audit(args) => {
            let lines = rerun_bot::audit_client::fetch(
                &args.url,
                &args.token,
                args.since.as_deref(),
                args.cronjob.as_deref(),
            )
            .await
            .map_err(anyhow::Error::msg)?;
            if args.json {
                for line in &lines {
                    println!("{}", serde_json::to_string(line)?);
                }
            } else {
                print!("{}", rerun_bot::audit_client::table(&lines));
            }
            Ok(())
        }
        Command::Crds => {
            print!("{}", rerun_bot::store::crds::yaml());
            Ok(())
        }
        Command::Demo(args) => {
            // The page is the show; the bot's log only says what went wrong.
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
            tracing_subscriber::fmt().with_env_filter(filter).init();
            let options = rerun_bot::demo::DemoOptions {
                listen: args.listen,
                data_dir: args.data_dir,
                pace: rerun_bot::demo::Pace::default(),
            };
            if let Err(e) = rerun_bot::demo::run(options).await {
                // One line that says what to do; no backtrace for a busy port.
                eprintln!("error: {e}");
                std::process::exit(2);
            }
            Ok(())
        }
        Command::TeamsApp(args) => {
            let zip = rerun_bot::teams_app::package(&rerun_bot::teams_app::PackageOptions {
                app_id: args.app_id,
                name: args.name,
                version: args.app_version,
            })?;
            std::fs::write(&args.out, zip)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))?;
            println!(
                "wrote {}: upload it in Teams (Apps → Manage your apps → Upload an app) or the Teams admin center",
                args.out.display()
            );
            Ok(())
        }
    }
}
