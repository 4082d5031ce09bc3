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
    /// Copy a sled data dir's state into the custom resources of RERUN_BOT_STORE=kubernetes.
    ///
    /// Copies rerun requests, holds and resumes, alerts, alert threads and the
    /// audit trail. A record already there is left as it is, so running it
    /// again copies only what is missing (an interrupted run is finished by
    /// running it again). Stop the bot using the data dir first (sled locks
    /// it) and install the CRDs (`rerun-bot crds | kubectl apply -f -`). The
    /// cluster is the one of KUBECONFIG or the pod's service account, as for
    /// `serve`.
    Migrate(MigrateArgs),
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
struct MigrateArgs {
    /// Where the state goes: `kubernetes` (custom resources).
    #[arg(long, value_enum)]
    to: MigrateTarget,
    /// The sled database directory (the bot's RERUN_BOT_DATA_DIR).
    #[arg(long)]
    data_dir: std::path::PathBuf,
    /// Namespace of the custom resources; default: the kube context's (in a pod, its own).
    #[arg(long, env = "RERUN_BOT_STORE_NAMESPACE")]
    namespace: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MigrateTarget {
    Kubernetes,
}

/// `rerun-bot migrate`: one line on stdout per kind, one line on stderr on error.
async fn migrate(args: MigrateArgs) -> Result<(), String> {
    use rerun_bot::store::{KubeStore, migrate};
    let MigrateTarget::Kubernetes = args.to;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kube = kube::Client::try_default()
        .await
        .map_err(|e| format!("no Kubernetes access (in-cluster or KUBECONFIG): {e}"))?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| kube.default_namespace().to_string());
    let to = KubeStore::open(kube, &namespace)
        .await
        .map_err(|e| migrate::plain(&e))?;
    let from = migrate::open_sled(&args.data_dir).map_err(|e| migrate::plain(&e))?;
    let summary = migrate::migrate(&from, &to)
        .await
        .map_err(|e| format!("{e} (nothing is lost: run it again to finish)"))?;
    println!(
        "{} (sled) → custom resources in namespace {namespace}:",
        args.data_dir.display()
    );
    print!("{summary}");
    if summary.copied() == 0 {
        println!("nothing new to copy: everything was there already");
    } else {
        println!(
            "see them: kubectl get rerunrequests,maintenanceholds,jobalerts,alertthreads,auditevents,botrecords -n {namespace}"
        );
    }
    Ok(())
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
        Command::Migrate(args) => {
            if let Err(e) = migrate(args).await {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
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
