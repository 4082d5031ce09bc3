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
    }
}
