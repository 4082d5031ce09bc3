//! The `rerun-bot` binary: parses the command line and runs the library.

use clap::{Parser, Subcommand};
use rerun_bot::LogFormat;
use rerun_bot::config::Settings;

#[derive(Parser)]
#[command(
    name = "rerun-bot",
    version,
    about = "Chat-ops for Kubernetes CronJobs: failure alerts in Slack, reruns with four-eyes approval, maintenance holds"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bot: watch Jobs, post alerts, answer Slack.
    Serve(Box<Settings>),
    /// Print the audit trail of a running bot (its `GET /audit` endpoint).
    Audit(AuditArgs),
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
    // A missing .env is fine; a broken one is worth knowing about.
    if let Err(e) = dotenvy::dotenv()
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
    }
}
