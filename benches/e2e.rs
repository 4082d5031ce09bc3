//! `cargo bench --bench e2e`: end-to-end figures of the release binary against
//! the same fakes the tests use. Prints one JSON line.
//!
//! - latency from writing a Job's `Failed` condition to `chat.postMessage`
//!   arriving at the fake Slack: single failures, and a burst of 200;
//! - the same latency for a bare kube-rs watcher on the same fake (the floor);
//! - time from process start to `/readyz` and peak RSS (VmHWM) with 10,000
//!   Jobs and 2,000 CronJobs in the cluster;
//! - duplicate alerts (must be 0);
//! - latency from the approve click's HTTP request to the Job's POST arriving
//!   at the fake apiserver (50 requests, one at a time);
//! - 100 concurrent approve clicks on one request: time until every click is
//!   answered, and the Jobs created (must be 1);
//! - `/hold ns:maint` of 500 CronJobs: from the confirm click to the summary,
//!   and the same for `/resume` (every CronJob suspended, then none).
//!
//! - the same for Microsoft Teams (`teams_*`): a second bot process with only
//!   the TEAMS_* settings (Slack off) against the simulated Bot Framework and a
//!   fresh cluster of the same size: failure → alert card POST at the fake
//!   Connector (`POST /teams/v3/conversations`), single and a burst of 200;
//!   approve (`adaptiveCard/action` invoke, signed as Teams signs it) → Job
//!   POST; ready time, peak RSS and duplicates.
//!
//! The fake Connector enforces Teams' per-thread limits (7 sends/s, 60/30 s;
//! new threads count against their channel), so Teams' single failures are
//! spaced 250 ms apart (Slack's 20 ms would measure the limiter) and the burst
//! starts once the channel's 30 s window is empty. The burst of 200 cannot go
//! faster than those limits: `teams_burst200` says how many 429s the bot got
//! and how long until the last alert; `teams_alert_latency_burst200_unthrottled`
//! is the alerts that never got a 429.
//!
//! - the same with state in custom resources (`ha`): a bot on
//!   `RERUN_BOT_STORE=kubernetes` (CRDs installed, Lease leader election) on a
//!   fresh cluster of the same size: failure → `chat.postMessage` (single, burst
//!   of 200), approve → Job POST, ready time and peak RSS taken as the sled
//!   figures are (and its ratio to the sled RSS); then failover: a second
//!   replica joins, the leader is killed (SIGKILL), a CronJob fails right
//!   after; from the kill to that alert at the fake Slack, 5 times on the same
//!   cluster (the survivor leads the next run, a fresh replica follows).
//!
//! - `storm_limited`: the fake Slack with Slack's rate limits on (1
//!   `chat.postMessage` a second per channel after a burst of 5, `chat.update`
//!   Tier 3), a fresh bot at its default pacing, 200 CronJobs (or
//!   `BENCH_STORM_CRONJOBS`) failing at once in one channel: seconds from the
//!   first failure until every CronJob is named in a message or update the
//!   fake accepted, `chat.postMessage` calls, 429s, top-level posts.
//!   `BENCH_ONLY=storm_limited` runs this entry alone.
//!
//! The other Slack bots run with `RERUN_BOT_CHAT_PACING=off`: their fake has no
//! rate limits, and their figures are the pipeline's, not Slack's pace.
//!
//! - `schedule_health`: 2,000 CronJobs watched by a bot with the missed- and
//!   long-run checks off, then by one with them on (looking every second, 30×
//!   the default): CPU per minute, RSS (median of a sample a second: total,
//!   and `RssAnon`, the heap without the binary's mapped pages), alerts
//!   (none: nothing was missed).
//!   `BENCH_ONLY=schedule_health` runs this entry alone (about a minute).
//!
//! `BENCH_ONLY=slack` runs the Slack entry alone (latencies, ready time, peak
//! RSS, approvals, holds, duplicates), without the floor, Teams, HA and the rest.
//! `BENCH_BOT_ENV="RERUN_BOT_MISSED_RUNS=off …"` adds settings to every bot
//! started (to see what a feature costs); `BENCH_BOT_EXE` runs a wrapper
//! instead of the binary (e.g. a script that execs `heaptrack` on it).
//!
//! Targets (issues "Failure alerts", "Rerun with four-eyes approval"): p99 ≤ 2×
//! floor + 10 ms, RSS ≤ 40 MiB, ready ≤ 2 s, zero duplicates; approve → Job POST
//! p99 ≤ 50 ms; exactly one Job for 100 concurrent clicks. Issue "Microsoft
//! Teams": Teams' figures within ±20 % of Slack's. Issue 10: KubeStore's peak RSS
//! ≤ 1.2× sled's.

use rerun_sim::{kube as kube_fake, slack as slack_fake, teams as teams_fake};

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::{WatchStreamExt, watcher};
use kube_fake::{CronJobFixture, Failure, FakeKube, Resource};
use serde_json::json;
use slack_fake::FakeSlack;
use teams_fake::{FakeTeams, Kind};

const JOBS: usize = 10_000;
const CRONJOBS: usize = 2_000;
const BURST: usize = 200;
const SINGLES: usize = 50;
const TEAMS_APP_ID: &str = "5a1b2c3d-0000-4000-8000-0000000be7c4";
const TEAMS_PASSWORD: &str = "bench-teams-client-secret";
const TEAMS_TENANT: &str = "72f988bf-0000-4000-8000-0000000be7c4";
/// Teams' single failures are this far apart: under 7 new threads a second.
const TEAMS_SINGLE_GAP: Duration = Duration::from_millis(250);

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    json!({ "n": ms.len(), "p50_ms": round(percentile(&ms, 0.5)), "p99_ms": round(percentile(&ms, 0.99)) })
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn kubeconfig(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: bench\ncurrent-context: fake\nusers:\n- name: bench\n  user:\n    token: bench-token\n"
        ),
    )
    .unwrap();
    path
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn http_status(url: &str) -> Option<u16> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let req = hyper::Request::get(url).body(Default::default()).ok()?;
    Some(client.request(req).await.ok()?.status().as_u16())
}

struct BotProcess {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn slack_env(slack: &FakeSlack) -> Vec<(&'static str, String)> {
    vec![
        ("SLACK_BOT_TOKEN", "xoxb-bench".into()),
        ("SLACK_SIGNING_SECRET", "bench-secret".into()),
        ("SLACK_API_URL", slack.api_url()),
        ("RERUN_BOT_CHANNEL", "C_BENCH".into()),
        ("RERUN_BOT_ADMINS", "U_ADMIN".into()),
        // This fake has no rate limits (`storm_limited` turns them on).
        ("RERUN_BOT_CHAT_PACING", "off".into()),
        // These entries time one alert per failure; `storm_limited` measures the digest.
        ("RERUN_BOT_STORM_THRESHOLD", "0".into()),
    ]
}

fn spawn_bot(kube: &FakeKube, slack: &FakeSlack, port: u16) -> BotProcess {
    spawn_bot_with(kube, port, &slack_env(slack), "")
}

/// The Slack bot with its state in custom resources (`RERUN_BOT_STORE=kubernetes`),
/// named `identity` in the leader Lease.
fn spawn_kube_store_bot(
    kube: &FakeKube,
    slack: &FakeSlack,
    port: u16,
    identity: &str,
) -> BotProcess {
    let mut env = slack_env(slack);
    env.extend([
        ("RERUN_BOT_STORE", "kubernetes".into()),
        ("RERUN_BOT_STORE_NAMESPACE", HA_NS.into()),
        ("RERUN_BOT_IDENTITY", identity.into()),
    ]);
    spawn_bot_with(kube, port, &env, &format!(".{identity}"))
}

/// The bot with Teams alone (no SLACK_*), alerts to the channel `alerts`.
fn spawn_teams_bot(kube: &FakeKube, teams: &FakeTeams, port: u16) -> BotProcess {
    spawn_bot_with(
        kube,
        port,
        &[
            ("TEAMS_APP_ID", teams.app_id().into()),
            ("TEAMS_APP_PASSWORD", teams.app_password().into()),
            ("TEAMS_TENANT_ID", teams.tenant().into()),
            ("TEAMS_CHANNEL", teams.channel("alerts")),
            ("TEAMS_SERVICE_URL", teams.service_url()),
            ("TEAMS_LOGIN_URL", teams.login_url()),
            ("TEAMS_OPENID_METADATA_URL", teams.openid_metadata_url()),
            // One alert per failure is what the Teams entries time.
            ("RERUN_BOT_STORM_THRESHOLD", "0".into()),
        ],
        ".teams",
    )
}

fn spawn_bot_with(
    kube: &FakeKube,
    port: u16,
    chat_env: &[(&str, String)],
    log_suffix: &str,
) -> BotProcess {
    spawn_bot_full(kube, port, chat_env, log_suffix, &[])
}

/// The Slack bot with extra CLI flags (hidden ones have no environment variable).
fn spawn_bot_args(
    kube: &FakeKube,
    port: u16,
    chat_env: &[(&str, String)],
    args: &[&str],
) -> BotProcess {
    spawn_bot_full(kube, port, chat_env, ".health", args)
}

fn spawn_bot_full(
    kube: &FakeKube,
    port: u16,
    chat_env: &[(&str, String)],
    log_suffix: &str,
    args: &[&str],
) -> BotProcess {
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &kube.url());
    // BENCH_BOT_EXE: a wrapper to run instead (a profiler's script, which then
    // runs the binary); BENCH_BOT_ENV="K=V K=V": settings added to every bot.
    let exe = std::env::var("BENCH_BOT_EXE")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_rerun-bot").to_string());
    let extra: Vec<(String, String)> = std::env::var("BENCH_BOT_ENV")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let child = Command::new(exe)
        .arg("serve")
        .args(args)
        .env_clear()
        .env("KUBECONFIG", config)
        .envs(chat_env.iter().map(|(k, v)| (k, v)))
        .envs(extra)
        .env("RERUN_BOT_DATA_DIR", dir.path().join("data"))
        .env("RERUN_BOT_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "RUST_LOG",
            std::env::var("BENCH_BOT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .current_dir(dir.path())
        // With BENCH_BOT_LOG set, the bot's log (stdout) goes to BENCH_BOT_LOG_FILE
        // (the Teams bot's to BENCH_BOT_LOG_FILE.teams).
        .stdout(match std::env::var("BENCH_BOT_LOG_FILE") {
            Ok(path) => {
                Stdio::from(std::fs::File::create(format!("{path}{log_suffix}")).expect("log file"))
            }
            Err(_) => Stdio::null(),
        })
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the release binary");
    BotProcess { child, _dir: dir }
}

/// Fails `names` (one Job each) and returns the write instant per CronJob.
fn fail_many(kube: &FakeKube, names: &[String]) -> HashMap<String, Instant> {
    let mut written = HashMap::new();
    for name in names {
        let job = kube.spawn_job("default", name, Utc::now());
        let job_name = job["metadata"]["name"].as_str().unwrap().to_string();
        kube.fail_job("default", &job_name, Failure::backoff_limit().log("boom\n"));
        written.insert(name.clone(), Instant::now());
    }
    written
}

/// Waits for one alert per CronJob in `written`; returns latencies in ms.
async fn alert_latencies(
    slack: &FakeSlack,
    written: &HashMap<String, Instant>,
    seen: &mut HashMap<String, usize>,
) -> Vec<f64> {
    let mut latencies = Vec::new();
    while latencies.len() < written.len() {
        let call =
            tokio::time::timeout(Duration::from_secs(60), slack.next_call("chat.postMessage"))
                .await
                .expect("alerts within 60 s");
        let text = call.params["text"].as_str().unwrap_or_default().to_string();
        let Some(name) = text
            .strip_prefix("CronJob default/")
            .and_then(|t| t.split(' ').next())
        else {
            continue;
        };
        let name = name.trim_end_matches(':').to_string();
        *seen.entry(name.clone()).or_default() += 1;
        if let Some(at) = written.get(&name) {
            latencies.push(call.at.saturating_duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    latencies
}

/// The floor: how fast a bare kube-rs watcher sees the same writes.
async fn watcher_floor(kube: &FakeKube, n: usize, burst: bool) -> Vec<f64> {
    let client = kube::Client::try_from(kube.client_config()).unwrap();
    let api: kube::Api<Job> = kube::Api::all(client);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(
            watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
        );
        while let Some(Ok(job)) = stream.next().await {
            let failed = job
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Failed" && c.status == "True");
            if failed {
                let _ = tx.send((job.metadata.name.unwrap_or_default(), Instant::now()));
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let names: Vec<String> = (0..n)
        .map(|i| format!("floor-{}-{i}", if burst { "b" } else { "s" }))
        .collect();
    for name in &names {
        kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    let mut latencies = Vec::new();
    let mut written = HashMap::new();
    let receive =
        |latencies: &mut Vec<f64>, written: &HashMap<String, Instant>, got: (String, Instant)| {
            if let Some(at) = written.get(&got.0) {
                latencies.push(got.1.saturating_duration_since(*at).as_secs_f64() * 1000.0);
            }
        };
    if burst {
        for name in &names {
            let job = kube.spawn_job("default", name, Utc::now());
            let job_name = job["metadata"]["name"].as_str().unwrap().to_string();
            kube.fail_job("default", &job_name, Failure::backoff_limit());
            written.insert(job_name, Instant::now());
        }
        while latencies.len() < n {
            let got = rx.recv().await.unwrap();
            receive(&mut latencies, &written, got);
        }
    } else {
        for name in &names {
            let job = kube.spawn_job("default", name, Utc::now());
            let job_name = job["metadata"]["name"].as_str().unwrap().to_string();
            kube.fail_job("default", &job_name, Failure::backoff_limit());
            written.insert(job_name.clone(), Instant::now());
            loop {
                let got = rx.recv().await.unwrap();
                let done = got.0 == job_name;
                receive(&mut latencies, &written, got);
                if done {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    task.abort();
    latencies
}

/// POSTs `body` to the bot signed as Slack would; returns status and body.
async fn signed_request(port: u16, slack: &FakeSlack, path: &str, body: String) -> (u16, Vec<u8>) {
    use http_body_util::BodyExt;
    let ts = Utc::now().timestamp();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let req = hyper::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", slack.sign(ts, &body))
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
        .unwrap();
    let Ok(res) = client.request(req).await else {
        return (0, Vec::new());
    };
    let status = res.status().as_u16();
    let bytes = res
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    (status, bytes)
}

/// A button click, as Slack posts it.
async fn click(port: u16, slack: &FakeSlack, payload: &serde_json::Value) -> u16 {
    signed_post(
        port,
        slack,
        "/slack/interactivity",
        FakeSlack::interaction_form(payload),
    )
    .await
}

async fn signed_post(port: u16, slack: &FakeSlack, path: &str, body: String) -> u16 {
    signed_request(port, slack, path, body).await.0
}

/// `/rerun <cronjob> --reason …` by U_ALICE; returns the card it posted.
async fn request_rerun(slack: &FakeSlack, port: u16, cronjob: &str) -> slack_fake::Message {
    let form = slack.slash_command_form(
        "U_ALICE",
        "C_BENCH",
        "/rerun",
        &format!("{cronjob} --reason bench"),
    );
    assert_eq!(signed_post(port, slack, "/slack/commands", form).await, 200);
    loop {
        let card = tokio::time::timeout(Duration::from_secs(30), slack.next_message())
            .await
            .expect("approval card within 30 s");
        if card.has_button("approve") {
            return card;
        }
    }
}

fn job_posts(kube: &FakeKube) -> Vec<Instant> {
    kube.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/jobs"))
        .map(|r| r.at)
        .collect()
}

/// From the approve click's request to the Job POST at the apiserver, one at a time.
async fn approval_latencies(
    kube: &FakeKube,
    slack: &FakeSlack,
    port: u16,
    cronjobs: &[String],
) -> Vec<f64> {
    let mut latencies = Vec::new();
    for cronjob in cronjobs {
        let card = request_rerun(slack, port, cronjob).await;
        let before = job_posts(kube).len();
        let payload = slack.block_action_payload("U_BOB", &card, "approve");
        let clicked = Instant::now();
        assert_eq!(click(port, slack, &payload).await, 200);
        let deadline = Instant::now() + Duration::from_secs(30);
        let posted = loop {
            if let Some(at) = job_posts(kube).get(before) {
                break *at;
            }
            assert!(Instant::now() < deadline, "no Job POST within 30 s");
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push(posted.saturating_duration_since(clicked).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies
}

/// 100 approvers click at once; returns the time until all were answered
/// (one Job created, 99 told "already approved") and the Jobs created.
async fn concurrent_approvals(
    kube: &FakeKube,
    slack: &FakeSlack,
    port: u16,
    cronjob: &str,
) -> (f64, usize) {
    let card = request_rerun(slack, port, cronjob).await;
    let before = job_posts(kube).len();
    let refusals_before = slack.calls("chat.postEphemeral").len();
    let payloads: Vec<String> = (0..100)
        .map(|i| {
            FakeSlack::interaction_form(&slack.block_action_payload(
                &format!("U_APPROVER{i}"),
                &card,
                "approve",
            ))
        })
        .collect();
    let started = Instant::now();
    let clicks = payloads
        .into_iter()
        .map(|body| signed_post(port, slack, "/slack/interactivity", body));
    for status in futures::future::join_all(clicks).await {
        assert_eq!(status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while slack.calls("chat.postEphemeral").len() < refusals_before + 99
        || job_posts(kube).len() == before
    {
        assert!(
            Instant::now() < deadline,
            "100 approvals not processed within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let created = kube
        .list(Resource::Jobs, Some("default"))
        .iter()
        .filter(|j| {
            j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot"
                && j["metadata"]["ownerReferences"][0]["name"] == cronjob
        })
        .count();
    (elapsed, created)
}

/// `/<command> <args>` by U_ADMIN, confirmed; returns ms from the confirm click
/// to the summary.
async fn confirmed_operation(
    slack: &FakeSlack,
    port: u16,
    command: &str,
    args: &str,
    button: &str,
) -> f64 {
    let form = slack.slash_command_form("U_ADMIN", "C_BENCH", command, args);
    let (_, body) = signed_request(port, slack, "/slack/commands", form).await;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let preview = slack_fake::Message {
        channel: "C_BENCH".into(),
        ts: String::new(),
        thread_ts: None,
        user: Some("U_ADMIN".into()),
        text: String::new(),
        blocks: answer["blocks"].clone(),
        raw: answer.clone(),
    };
    let payload = slack.block_action_payload("U_ADMIN", &preview, button);
    let started = Instant::now();
    assert_eq!(click(port, slack, &payload).await, 200);
    loop {
        let update = tokio::time::timeout(Duration::from_secs(120), slack.next_update())
            .await
            .expect("summary within 120 s");
        if update.text.contains(" done: ") {
            return started.elapsed().as_secs_f64() * 1000.0;
        }
    }
}

/// Holds and resumes 500 CronJobs of one namespace.
async fn hold_and_resume(kube: &FakeKube, slack: &FakeSlack, port: u16) -> (f64, f64, bool) {
    for i in 0..500 {
        kube.apply_cronjob(
            CronJobFixture::new(&format!("maint-{i}"))
                .namespace("maint")
                .build(),
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let suspended = |kube: &FakeKube| {
        kube.list(Resource::CronJobs, Some("maint"))
            .iter()
            .filter(|c| c["spec"]["suspend"] == true)
            .count()
    };
    let hold_ms = confirmed_operation(slack, port, "/hold", "ns:maint", "hold_confirm").await;
    let all_held = suspended(kube) == 500;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resume_ms = confirmed_operation(slack, port, "/resume", "ns:maint", "resume_confirm").await;
    (hold_ms, resume_ms, all_held && suspended(kube) == 0)
}

// ----- Microsoft Teams -------------------------------------------------------

/// The CronJob an alert card is about (its heading: `🚨 CronJob default/<name> failed`).
fn teams_alert_cronjob(card: &serde_json::Value) -> Option<String> {
    let heading = card["body"][0]["text"].as_str()?;
    let name = heading
        .split("CronJob default/")
        .nth(1)?
        .split(' ')
        .next()?;
    Some(name.replace('\\', ""))
}

/// The next post, reply or 1:1 message of the bot that `pred` accepts (others
/// are passed over), within `limit`.
async fn next_teams_message(
    teams: &FakeTeams,
    limit: Duration,
    what: &str,
    pred: impl Fn(&teams_fake::Message) -> bool,
) -> teams_fake::Message {
    let deadline = Instant::now() + limit;
    loop {
        assert!(
            Instant::now() < deadline,
            "no Teams {what} within {limit:?}"
        );
        // `next_message` gives up (panics) after 10 s; stop waiting before it does.
        if let Ok(m) = tokio::time::timeout(Duration::from_secs(9), teams.next_message()).await
            && pred(&m)
        {
            return m;
        }
    }
}

/// Waits for one new thread per CronJob in `written` in the alert channel;
/// returns latencies in ms, and the alerts by CronJob.
async fn teams_alert_latencies(
    teams: &FakeTeams,
    written: &HashMap<String, Instant>,
    seen: &mut HashMap<String, usize>,
    limit: Duration,
) -> (Vec<f64>, HashMap<String, teams_fake::Message>) {
    let channel = teams.channel("alerts");
    let mut latencies = Vec::new();
    let mut alerts = HashMap::new();
    while latencies.len() < written.len() {
        let m = next_teams_message(teams, limit, "alert", |m| {
            m.kind == Kind::Post && m.channel.as_deref() == Some(channel.as_str())
        })
        .await;
        let Some(name) = m.card.as_ref().and_then(teams_alert_cronjob) else {
            continue;
        };
        *seen.entry(name.clone()).or_default() += 1;
        if let Some(at) = written.get(&name) {
            latencies.push(m.at.saturating_duration_since(*at).as_secs_f64() * 1000.0);
            alerts.insert(name, m);
        }
    }
    (latencies, alerts)
}

/// POSTs an activity to the bot's `/api/messages` with Teams' `Authorization`.
async fn post_activity(port: u16, activity: &serde_json::Value, auth: &str) -> u16 {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let req = hyper::Request::post(format!("http://127.0.0.1:{port}/api/messages"))
        .header("content-type", "application/json; charset=utf-8")
        .header("authorization", auth)
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            activity.to_string(),
        )))
        .unwrap();
    match client.request(req).await {
        Ok(res) => res.status().as_u16(),
        Err(_) => 0,
    }
}

/// Alice clicks Rerun on `alert` and gives a reason; returns the approval card
/// (a reply in the alert's thread).
async fn teams_request_rerun(
    teams: &FakeTeams,
    alert: &teams_fake::Message,
) -> teams_fake::Message {
    let fetched = teams.click("alice", alert, "rerun").await;
    assert_eq!(fetched.status, 200);
    let dialog = fetched.dialog().expect("Rerun opens a dialog");
    let submitted = teams
        .submit_dialog("alice", &dialog, &[("reason", "bench")])
        .await;
    assert_eq!(submitted.status, 200);
    let root = alert.activity_id.clone();
    next_teams_message(teams, Duration::from_secs(30), "approval card", |m| {
        m.kind == Kind::Reply && m.root.as_deref() == Some(root.as_str()) && m.has_button("approve")
    })
    .await
}

/// From Bob's approve click (the invoke's request; signed before the clock
/// starts, as Slack's body is built before it) to the Job POST, one at a time.
async fn teams_approval_latencies(
    kube: &FakeKube,
    teams: &FakeTeams,
    port: u16,
    alerts: &[teams_fake::Message],
) -> Vec<f64> {
    let mut latencies = Vec::new();
    for alert in alerts {
        let card = teams_request_rerun(teams, alert).await;
        let before = job_posts(kube).len();
        let activity = teams.click_activity("bob", &card, "approve", &[]);
        let auth = teams.auth_header(&activity, None).expect("a token");
        let clicked = Instant::now();
        assert_eq!(post_activity(port, &activity, &auth).await, 200);
        let deadline = Instant::now() + Duration::from_secs(30);
        let posted = loop {
            if let Some(at) = job_posts(kube).get(before) {
                break *at;
            }
            assert!(Instant::now() < deadline, "no Job POST within 30 s");
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push(posted.saturating_duration_since(clicked).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies
}

/// The Teams figures: the Slack scenario's alerting and approval parts with
/// a Teams-only bot on a fresh cluster of the same size.
async fn teams_scenario() -> serde_json::Map<String, serde_json::Value> {
    let kube = FakeKube::start().await;
    let teams = FakeTeams::start(TEAMS_APP_ID, TEAMS_PASSWORD, TEAMS_TENANT).await;
    populate(&kube);
    let channel = teams.channel("alerts");

    let port = free_port();
    let started = Instant::now();
    let mut bot = spawn_teams_bot(&kube, &teams, port);
    teams.set_bot_endpoint(&format!("http://127.0.0.1:{port}/api/messages"));
    wait_ready(&mut bot, port, started).await;
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;

    let mut seen: HashMap<String, usize> = HashMap::new();
    let singles: Vec<String> = (0..SINGLES).map(|i| format!("single-{i}")).collect();
    for name in &singles {
        kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut single_ms = Vec::new();
    let mut single_alerts = Vec::new();
    for name in &singles {
        let next = Instant::now() + TEAMS_SINGLE_GAP;
        let written = fail_many(&kube, std::slice::from_ref(name));
        let (ms, mut alerts) =
            teams_alert_latencies(&teams, &written, &mut seen, Duration::from_secs(60)).await;
        single_ms.extend(ms);
        single_alerts.push(alerts.remove(name).expect("the alert"));
        tokio::time::sleep_until(next.into()).await;
    }
    let singles_throttled = teams.throttled();

    // The burst starts with the channel's 30 s window empty.
    let burst: Vec<String> = (0..BURST).map(|i| format!("burst-{i}")).collect();
    for name in &burst {
        kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    tokio::time::sleep(Duration::from_secs(31)).await;
    let calls_before = teams.calls().len();
    let burst_started = Instant::now();
    let written = fail_many(&kube, &burst);
    let (burst_ms, _) =
        teams_alert_latencies(&teams, &written, &mut seen, Duration::from_secs(600)).await;
    let burst_s = burst_started.elapsed().as_secs_f64();
    // Which alerts the Connector answered 429 at least once.
    let calls = teams.calls();
    let mut throttled_posts = 0;
    let mut throttled_cronjobs = std::collections::HashSet::new();
    for c in &calls[calls_before..] {
        if c.method == "POST" && c.path == "/teams/v3/conversations" && c.status == 429 {
            throttled_posts += 1;
            if let Some(name) =
                teams_alert_cronjob(&c.request["activity"]["attachments"][0]["content"])
            {
                throttled_cronjobs.insert(name);
            }
        }
    }
    let unthrottled_ms: Vec<f64> = {
        let mut at_by_name = Vec::new();
        for m in teams.messages() {
            if m.kind == Kind::Post
                && m.channel.as_deref() == Some(channel.as_str())
                && let Some(name) = m.card.as_ref().and_then(teams_alert_cronjob)
                && let Some(w) = written.get(&name)
                && !throttled_cronjobs.contains(&name)
            {
                at_by_name.push(m.at.saturating_duration_since(*w).as_secs_f64() * 1000.0);
            }
        }
        at_by_name
    };
    let rss_kib = vm_hwm_kib(bot.child.id()).unwrap_or(0);

    let approve_ms = teams_approval_latencies(&kube, &teams, port, &single_alerts).await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut per_cronjob: HashMap<String, usize> = HashMap::new();
    for m in teams.messages() {
        if m.kind == Kind::Post
            && m.channel.as_deref() == Some(channel.as_str())
            && let Some(name) = m.card.as_ref().and_then(teams_alert_cronjob)
        {
            *per_cronjob.entry(name).or_default() += 1;
        }
    }
    let duplicates: usize = per_cronjob.values().map(|n| n.saturating_sub(1)).sum();
    let old_alerted = per_cronjob
        .keys()
        .filter(|k| k.starts_with("cron-"))
        .count();
    let violations = teams.violations().len();
    drop(bot);

    let mut out = serde_json::Map::new();
    out.insert("teams_alert_latency_single".into(), summary(single_ms));
    out.insert("teams_alert_latency_burst200".into(), summary(burst_ms));
    out.insert(
        "teams_alert_latency_burst200_unthrottled".into(),
        summary(unthrottled_ms),
    );
    out.insert(
        "teams_burst200".into(),
        json!({
            "s_until_last_alert": round(burst_s),
            "connector_429s": throttled_posts,
            "alerts_answered_429": throttled_cronjobs.len(),
            "limit": "7 sends/s and 60 per 30 s per thread; new threads count against the channel",
        }),
    );
    out.insert("teams_singles_429s".into(), json!(singles_throttled));
    out.insert(
        "teams_ready_ms_10k_jobs_2k_cronjobs".into(),
        json!(round(ready_ms)),
    );
    out.insert(
        "teams_peak_rss_mib".into(),
        json!(round(rss_kib as f64 / 1024.0)),
    );
    out.insert("teams_duplicate_alerts".into(), json!(duplicates));
    out.insert("teams_alerts_outside_lookback".into(), json!(old_alerted));
    out.insert("teams_approve_to_job_post".into(), summary(approve_ms));
    out.insert("teams_rule_violations".into(), json!(violations));
    out
}

// ----- State in custom resources, two replicas (`ha`) -------------------------

const HA_NS: &str = "rerun-bot";
const FAILOVERS: usize = 5;

fn lease_holder(kube: &FakeKube) -> Option<String> {
    kube.get(Resource::Leases, HA_NS, "rerun-bot-leader")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The CronJob a Slack alert is about (`CronJob default/<name> …`).
fn alert_cronjob(call: &slack_fake::ApiCall) -> Option<String> {
    let text = call.params["text"].as_str()?;
    let name = text.strip_prefix("CronJob default/")?.split(' ').next()?;
    Some(name.trim_end_matches(':').to_string())
}

fn alerts_by_cronjob(slack: &FakeSlack) -> HashMap<String, usize> {
    let mut by = HashMap::new();
    for call in slack.calls("chat.postMessage") {
        if let Some(name) = alert_cronjob(&call) {
            *by.entry(name).or_default() += 1;
        }
    }
    by
}

/// The storm's CronJobs (`storm-0000`, …) named in a text.
fn storm_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("storm-") {
        let tail = &rest[i + 6..];
        let digits = tail.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 4 {
            names.push(format!("storm-{}", &tail[..4]));
        }
        rest = &tail[digits..];
    }
    names
}

/// `storm_limited`: see the module comment.
async fn storm_limited_scenario() -> serde_json::Value {
    let n: usize = std::env::var("BENCH_STORM_CRONJOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(BURST);
    let kube = FakeKube::start().await;
    let slack = FakeSlack::start("bench-secret").await;
    slack.enforce_rate_limits(slack_fake::RateLimits::slack());
    let names: Vec<String> = (0..n).map(|i| format!("storm-{i:04}")).collect();
    for name in &names {
        kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    let env: Vec<(&str, String)> = slack_env(&slack)
        .into_iter()
        .filter(|(k, _)| *k != "RERUN_BOT_CHAT_PACING" && *k != "RERUN_BOT_STORM_THRESHOLD")
        .collect();
    let port = free_port();
    let started = Instant::now();
    let mut bot = spawn_bot_with(&kube, port, &env, ".storm");
    wait_ready(&mut bot, port, started).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let first_failure = Instant::now();
    fail_many(&kube, &names);
    let mut missing: std::collections::HashSet<String> = names.iter().cloned().collect();
    let mut read = 0;
    let mut last = first_failure;
    let deadline =
        Instant::now() + Duration::from_secs(60) + Duration::from_millis(1500) * n as u32;
    while !missing.is_empty() && Instant::now() < deadline {
        let calls = slack.calls_since(read);
        read += calls.len();
        for call in calls {
            if call.method != "chat.postMessage" && call.method != "chat.update" {
                continue;
            }
            for name in storm_names(&call.params.to_string()) {
                if missing.remove(&name) {
                    last = call.at;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stragglers (retries, duplicates) have a moment to arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(bot);
    let posts = slack.attempts("chat.postMessage");
    let limited = slack.rate_limited("chat.postMessage");
    let updates = slack.attempts("chat.update");
    let updates_limited = slack.rate_limited("chat.update");
    json!({
        "cronjobs": n,
        "all_accounted_for": missing.is_empty(),
        "not_accounted_for": missing.len(),
        "seconds_to_all": round(last.saturating_duration_since(first_failure).as_secs_f64()),
        "post_message_calls": posts,
        "post_message_429s": limited,
        "update_calls": updates,
        "update_429s": updates_limited,
        "share_429": round((limited + updates_limited) as f64 / (posts + updates).max(1) as f64),
        "top_level_posts": slack.top_level_posts("C_BENCH"),
    })
}

/// Requests to the bot's custom resources since request `from`, by method.
fn cr_requests(kube: &FakeKube, from: usize) -> (usize, serde_json::Value) {
    let requests = kube.requests();
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for r in requests.iter().skip(from) {
        if r.path.starts_with("/apis/rerun-bot.io/") {
            *by.entry(r.method.clone()).or_default() += 1;
        }
    }
    (requests.len(), json!(by))
}

/// The KubeStore figures: the sled scenario's alerting and approval parts with
/// one replica on `RERUN_BOT_STORE=kubernetes`, then 5 failovers.
async fn ha_scenario(sled_rss_kib: u64) -> serde_json::Value {
    let kube = FakeKube::start().await;
    kube.install_crds(
        rerun_bot::store::crds::all()
            .into_iter()
            .map(|crd| serde_json::to_value(crd).unwrap()),
    );
    let slack = FakeSlack::start("bench-secret").await;
    populate(&kube);

    let port = free_port();
    let started = Instant::now();
    let mut bot = spawn_kube_store_bot(&kube, &slack, port, "ha-0");
    wait_ready(&mut bot, port, started).await;
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    wait_until("ha-0 leads", Duration::from_secs(30), || {
        lease_holder(&kube).as_deref() == Some("ha-0")
    })
    .await;
    let leading_ms = started.elapsed().as_secs_f64() * 1000.0;

    let mut seen: HashMap<String, usize> = HashMap::new();
    let singles: Vec<String> = (0..SINGLES).map(|i| format!("single-{i}")).collect();
    for name in &singles {
        kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (from, _) = cr_requests(&kube, usize::MAX);
    let mut single_ms = Vec::new();
    for name in &singles {
        let written = fail_many(&kube, std::slice::from_ref(name));
        single_ms.extend(alert_latencies(&slack, &written, &mut seen).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, singles_cr_requests) = cr_requests(&kube, from);
    let burst: Vec<String> = (0..BURST).map(|i| format!("burst-{i}")).collect();
    for name in &burst {
        kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = fail_many(&kube, &burst);
    let burst_ms = alert_latencies(&slack, &written, &mut seen).await;
    let rss_kib = vm_hwm_kib(bot.child.id()).unwrap_or(0);
    let approve_ms = approval_latencies(&kube, &slack, port, &singles).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let by = alerts_by_cronjob(&slack);
    let duplicates: usize = by.values().map(|n| n.saturating_sub(1)).sum();
    let old_alerted = by.keys().filter(|k| k.starts_with("cron-")).count();

    // Failover: a fresh follower joins; the leader is killed; a CronJob fails
    // right after; until its alert. The survivor leads the next run.
    let mut replicas: Vec<(String, BotProcess)> = vec![("ha-0".into(), bot)];
    let mut failover_ms = Vec::new();
    let mut failover_cronjobs = Vec::new();
    for run in 0..FAILOVERS {
        let id = format!("ha-{}", run + 1);
        let port = free_port();
        let started = Instant::now();
        let mut follower = spawn_kube_store_bot(&kube, &slack, port, &id);
        wait_ready(&mut follower, port, started).await;
        let cronjob = format!("failover-{run}");
        kube.apply_cronjob(CronJobFixture::new(&cronjob).build());
        failover_cronjobs.push(cronjob.clone());
        // Both replicas have seen the CronJob and the follower has settled.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let leader = lease_holder(&kube).expect("a leader");
        let i = replicas
            .iter()
            .position(|(name, _)| *name == leader)
            .unwrap_or_else(|| panic!("the leader {leader} is not running"));
        let (_, mut killed_bot) = replicas.remove(i);
        let calls_before = slack.all_calls().len();
        let killed = Instant::now();
        killed_bot.child.kill().expect("SIGKILL the leader");
        killed_bot.child.wait().expect("reap the leader");
        fail_many(&kube, std::slice::from_ref(&cronjob));
        drop(killed_bot);
        replicas.push((id.clone(), follower));
        let deadline = killed + Duration::from_secs(60);
        let alerted = loop {
            if let Some(call) = slack.calls_since(calls_before).into_iter().find(|c| {
                c.method == "chat.postMessage" && alert_cronjob(c).as_deref() == Some(&cronjob)
            }) {
                break call.at;
            }
            assert!(
                Instant::now() < deadline,
                "failover {run}: no alert within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        failover_ms.push(alerted.saturating_duration_since(killed).as_secs_f64() * 1000.0);
        assert_eq!(
            lease_holder(&kube).as_deref(),
            Some(id.as_str()),
            "failover {run}: the survivor leads"
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let by = alerts_by_cronjob(&slack);
    let failover_duplicates: usize = failover_cronjobs
        .iter()
        .map(|c| by.get(c).copied().unwrap_or(0).saturating_sub(1))
        .sum();
    drop(replicas);

    failover_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rss_mib = rss_kib as f64 / 1024.0;
    json!({
        "store": "kubernetes",
        "failover_kill9_to_first_alert": {
            "n": failover_ms.len(),
            "p50_ms": round(percentile(&failover_ms, 0.5)),
            "max_ms": round(failover_ms.last().copied().unwrap_or(f64::NAN)),
            "runs_ms": failover_ms.iter().map(|x| round(*x)).collect::<Vec<_>>(),
            "lease": "10 s, renew deadline 7 s, retry 1 s",
        },
        "failover_duplicate_alerts": failover_duplicates,
        "alert_latency_single": summary(single_ms),
        "alert_latency_burst200": summary(burst_ms),
        "approve_to_job_post": summary(approve_ms),
        "ready_ms_10k_jobs_2k_cronjobs": round(ready_ms),
        "leader_ms_10k_jobs_2k_cronjobs": round(leading_ms),
        "peak_rss_mib": round(rss_mib),
        "peak_rss_ratio_to_sled": round(rss_kib as f64 / sled_rss_kib.max(1) as f64),
        "duplicate_alerts": duplicates,
        "alerts_outside_lookback": old_alerted,
        "custom_resource_requests_during_50_singles": singles_cr_requests,
    })
}

/// The cluster: 2,000 CronJobs and 10,000 Jobs (a fifth failed long ago).
fn populate(kube: &FakeKube) {
    for i in 0..CRONJOBS {
        kube.apply_cronjob(CronJobFixture::new(&format!("cron-{i}")).build());
    }
    let long_ago = Utc::now() - chrono::Duration::days(2);
    for i in 0..JOBS {
        let cj = format!("cron-{}", i % CRONJOBS);
        let job = kube.spawn_job(
            "default",
            &cj,
            long_ago - chrono::Duration::minutes(i as i64),
        );
        if i % 5 == 0 {
            let name = job["metadata"]["name"].as_str().unwrap().to_string();
            kube.update(Resource::Jobs, "default", &name, |j| {
                j["status"]["active"] = json!(0);
                j["status"]["conditions"] = json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                    "lastTransitionTime": long_ago.to_rfc3339()}]);
            });
        }
    }
}

/// CPU time (user + system) the process used so far, in ms (`/proc/<pid>/stat`,
/// clock ticks of 10 ms).
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `RssAnon`, `RssFile`, …).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The median of samples, in MiB.
fn median_mib(mut kib: Vec<u64>) -> f64 {
    kib.sort_unstable();
    kib.get(kib.len() / 2).copied().unwrap_or(0) as f64 / 1024.0
}

/// How long each schedule-health bot is measured once ready.
const HEALTH_WINDOW: Duration = Duration::from_secs(20);

/// 2,000 CronJobs (hourly, every 5 min, daily, weekdays in Berlin), each with
/// a last run in its status and a finished Job, watched with the missed- and
/// long-run checks on (looking every second: 30× the default rate) and off:
/// CPU per minute, RSS, and alerts (must be none: nothing was missed).
async fn schedule_health_scenario() -> serde_json::Value {
    let kube = FakeKube::start().await;
    let slack = FakeSlack::start("bench-secret").await;
    let schedules = [
        ("0 * * * *", None),
        ("*/5 * * * *", None),
        ("0 3 * * *", None),
        ("30 2 * * 1-5", Some("Europe/Berlin")),
    ];
    let now = Utc::now();
    for i in 0..CRONJOBS {
        let (schedule, tz) = schedules[i % schedules.len()];
        let mut cj = CronJobFixture::new(&format!("cron-{i}")).schedule(schedule);
        if let Some(tz) = tz {
            cj = cj.time_zone(tz);
        }
        kube.apply_cronjob(cj.build());
        let job = kube.spawn_job(
            "default",
            &format!("cron-{i}"),
            now - chrono::Duration::days(1),
        );
        let name = job["metadata"]["name"].as_str().unwrap().to_string();
        kube.complete_job("default", &name);
        // The controller ran every due run: nothing is missed.
        kube.update(Resource::CronJobs, "default", &format!("cron-{i}"), |c| {
            c["status"]["lastScheduleTime"] = json!(now.to_rfc3339());
        });
    }
    let mut out = serde_json::Map::new();
    for (label, switch) in [("off", "off"), ("on", "on")] {
        let port = free_port();
        let mut env = slack_env(&slack);
        env.push(("RERUN_BOT_MISSED_RUNS", switch.into()));
        env.push(("RERUN_BOT_LONG_RUNS", switch.into()));
        let started = Instant::now();
        let mut bot = spawn_bot_args(&kube, port, &env, &["--health-interval", "1s"]);
        wait_ready(&mut bot, port, started).await;
        // Settle: the first lists, histories and the first looks.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let pid = bot.child.id();
        let cpu_before = cpu_ms(pid).unwrap_or(0.0);
        let posts_before = slack.calls("chat.postMessage").len();
        // RSS sampled every second of the window, the median taken: one
        // sample lands on whatever a look has allocated at that instant.
        let (mut rss, mut anon, mut file) = (Vec::new(), Vec::new(), Vec::new());
        let window = Instant::now();
        while window.elapsed() < HEALTH_WINDOW {
            tokio::time::sleep(Duration::from_secs(1)).await;
            rss.extend(status_kib(pid, "VmRSS"));
            anon.extend(status_kib(pid, "RssAnon"));
            file.extend(status_kib(pid, "RssFile"));
        }
        let cpu = cpu_ms(pid).unwrap_or(0.0) - cpu_before;
        let per_min = cpu * 60.0 / HEALTH_WINDOW.as_secs_f64();
        out.insert(
            label.into(),
            json!({
                "cpu_ms_per_min": round(per_min),
                "cpu_percent_of_a_core": round(per_min / 600.0),
                "rss_mib": round(median_mib(rss)),
                "rss_anon_mib": round(median_mib(anon)),
                "rss_file_mib": round(median_mib(file)),
                "peak_rss_mib": round(vm_hwm_kib(pid).unwrap_or(0) as f64 / 1024.0),
                "alerts": slack.calls("chat.postMessage").len() - posts_before,
            }),
        );
        drop(bot);
    }
    let cpu = |k: &str| out[k]["cpu_ms_per_min"].as_f64().unwrap_or(0.0);
    let rss = |k: &str, what: &str| out[k][what].as_f64().unwrap_or(0.0);
    let extra_at_1s = cpu("on") - cpu("off");
    let rss_more = rss("on", "rss_mib") - rss("off", "rss_mib");
    // The heap alone: the binary's pages mapped (RssFile) vary by run with
    // the code each process happened to touch, and are not the checks' state.
    let anon_more = rss("on", "rss_anon_mib") - rss("off", "rss_anon_mib");
    out.insert(
        "checks_cpu_ms_per_min_at_1s_interval".into(),
        json!(round(extra_at_1s)),
    );
    // The default looks every 30 s: a thirtieth of the looks.
    out.insert(
        "checks_cpu_percent_of_a_core_at_30s_default".into(),
        json!(round(extra_at_1s / 30.0 / 600.0)),
    );
    out.insert("rss_mib_more".into(), json!(round(rss_more)));
    out.insert("rss_anon_mib_more".into(), json!(round(anon_more)));
    out.insert("cronjobs".into(), json!(CRONJOBS));
    serde_json::Value::Object(out)
}

/// Waits for `/readyz` to answer 200.
async fn wait_ready(bot: &mut BotProcess, port: u16, started: Instant) {
    let ready_url = format!("http://127.0.0.1:{port}/readyz");
    loop {
        if http_status(&ready_url).await == Some(200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "bot not ready in 60 s"
        );
        if let Ok(Some(status)) = bot.child.try_wait() {
            panic!("bot exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -- --list` / `cargo test --benches` probes: nothing to list.
        return;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("schedule_health") {
        let health = schedule_health_scenario().await;
        println!("{}", json!({"bench": "e2e", "schedule_health": health}));
        return;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("storm_limited") {
        let storm = storm_limited_scenario().await;
        println!("{}", json!({"bench": "e2e", "storm_limited": storm}));
        return;
    }
    let kube = FakeKube::start().await;
    let slack = FakeSlack::start("bench-secret").await;
    populate(&kube);

    let port = free_port();
    let started = Instant::now();
    let mut bot = spawn_bot(&kube, &slack, port);
    wait_ready(&mut bot, port, started).await;
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;

    let mut seen: HashMap<String, usize> = HashMap::new();
    // Single failures, one at a time.
    let singles: Vec<String> = (0..SINGLES).map(|i| format!("single-{i}")).collect();
    for name in &singles {
        kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut single_ms = Vec::new();
    for name in &singles {
        let written = fail_many(&kube, std::slice::from_ref(name));
        single_ms.extend(alert_latencies(&slack, &written, &mut seen).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A burst of 200 failures of different CronJobs.
    let burst: Vec<String> = (0..BURST).map(|i| format!("burst-{i}")).collect();
    for name in &burst {
        kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = fail_many(&kube, &burst);
    let burst_ms = alert_latencies(&slack, &written, &mut seen).await;

    // The alerting scenario's peak memory, before reruns and holds add their own.
    let rss_kib = vm_hwm_kib(bot.child.id()).unwrap_or(0);
    let approve_ms = approval_latencies(&kube, &slack, port, &singles).await;
    let (hold_ms, resume_ms, held_all) = hold_and_resume(&kube, &slack, port).await;
    let (concurrent_ms, concurrent_jobs) =
        concurrent_approvals(&kube, &slack, port, &burst[0]).await;

    // Let stragglers (duplicates) arrive, then count.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_all_kib = vm_hwm_kib(bot.child.id()).unwrap_or(0);
    let posts = slack.calls("chat.postMessage");
    let mut per_cronjob: HashMap<String, usize> = HashMap::new();
    for call in &posts {
        let text = call.params["text"].as_str().unwrap_or_default();
        if let Some(name) = text
            .strip_prefix("CronJob default/")
            .and_then(|t| t.split(' ').next())
        {
            *per_cronjob
                .entry(name.trim_end_matches(':').to_string())
                .or_default() += 1;
        }
    }
    let duplicates: usize = per_cronjob.values().map(|n| n.saturating_sub(1)).sum();
    let old_alerted = per_cronjob
        .keys()
        .filter(|k| k.starts_with("cron-"))
        .count();
    drop(bot);

    let mut line = json!({
        "bench": "e2e",
        "alert_latency_single": summary(single_ms),
        "alert_latency_burst200": summary(burst_ms),
        "ready_ms_10k_jobs_2k_cronjobs": round(ready_ms),
        "peak_rss_mib": round(rss_kib as f64 / 1024.0),
        "peak_rss_mib_after_reruns_and_holds": round(rss_all_kib as f64 / 1024.0),
        "duplicate_alerts": duplicates,
        "approve_to_job_post": summary(approve_ms),
        "hold_500_cronjobs_ms": round(hold_ms),
        "resume_500_cronjobs_ms": round(resume_ms),
        "hold_500_all_suspended_then_resumed": held_all,
        "approvals_100_concurrent": {"ms": round(concurrent_ms), "jobs_created": concurrent_jobs},
        "alerts_outside_lookback": old_alerted,
    });
    if std::env::var("BENCH_ONLY").as_deref() == Ok("slack") {
        println!("{line}");
        return;
    }
    line["watcher_floor_single"] = summary(watcher_floor(&kube, SINGLES, false).await);
    line["watcher_floor_burst200"] = summary(watcher_floor(&kube, BURST, true).await);
    drop(kube);
    let teams = teams_scenario().await;
    let ha = ha_scenario(rss_kib).await;
    line.as_object_mut().unwrap().extend(teams);
    line["ha"] = ha;
    line["storm_limited"] = storm_limited_scenario().await;
    line["schedule_health"] = schedule_health_scenario().await;
    println!("{line}");
}
