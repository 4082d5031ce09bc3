//! A decision is recorded before it is acknowledged: the bot binary is killed
//! with SIGKILL right after Slack got its `200` for a deciding click, and the
//! bot started again on the same data finishes what was decided — exactly once.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;

use crate::support::slack::Message;
use crate::support::{CronJobFixture, FakeKube, FakeSlack, Resource};

const SECRET: &str = "durable-secret";
const CHANNEL: &str = "C_DURABLE";
const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";

struct Bot {
    child: Child,
    port: u16,
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bot {
    /// SIGKILL: no shutdown, no flush, nothing handed over.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL the bot");
        self.child.wait().expect("reap the bot");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn spawn(dir: &std::path::Path, kube: &FakeKube, slack: &FakeSlack) -> Bot {
    let config = dir.join("kubeconfig");
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: t\ncurrent-context: fake\nusers:\n- name: t\n  user:\n    token: t\n",
            kube.url()
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_rerun-bot"))
        .arg("serve")
        .env_clear()
        .env("KUBECONFIG", &config)
        .env("SLACK_BOT_TOKEN", "xoxb-durable")
        .env("SLACK_SIGNING_SECRET", SECRET)
        .env("SLACK_API_URL", slack.api_url())
        .env("RERUN_BOT_CHANNEL", CHANNEL)
        .env("RERUN_BOT_ADMINS", "U_ADMIN")
        .env("RERUN_BOT_DATA_DIR", dir.join("data"))
        .env("RERUN_BOT_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the bot binary");
    let bot = Bot { child, port };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if post(port, "/readyz", None, "").await.0 == 200 {
            return bot;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bot not ready in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POST (GET when `signed` is None and the body is empty) to the bot.
async fn post(port: u16, path: &str, signed: Option<&FakeSlack>, body: &str) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let url = format!("http://127.0.0.1:{port}{path}");
    let req = match signed {
        None => hyper::Request::get(url).body(Full::default()).unwrap(),
        Some(slack) => {
            let ts = Utc::now().timestamp();
            hyper::Request::post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-slack-request-timestamp", ts.to_string())
                .header("x-slack-signature", slack.sign(ts, body))
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap()
        }
    };
    match client.request(req).await {
        Ok(res) => {
            let status = res.status().as_u16();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
        Err(_) => (0, String::new()),
    }
}

async fn click(port: u16, slack: &FakeSlack, user: &str, message: &Message, action: &str) -> u16 {
    let payload = slack.block_action_payload(user, message, action);
    post(
        port,
        "/slack/interactivity",
        Some(slack),
        &FakeSlack::interaction_form(&payload),
    )
    .await
    .0
}

async fn command(port: u16, slack: &FakeSlack, user: &str, command: &str, text: &str) -> String {
    let body = slack.slash_command_form(user, CHANNEL, command, text);
    let (status, answer) = post(port, "/slack/commands", Some(slack), &body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

fn reruns(kube: &FakeKube) -> usize {
    kube.list(Resource::Jobs, None)
        .into_iter()
        .filter(|j| j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot")
        .count()
}

async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 15 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_approval_acknowledged_then_killed_still_gets_its_one_job() {
    let kube = FakeKube::start().await;
    let slack = FakeSlack::start(SECRET).await;
    kube.apply_cronjob(CronJobFixture::new("billing-sync").build());
    let dir = tempfile::tempdir().unwrap();
    let bot = spawn(dir.path(), &kube, &slack).await;
    command(
        bot.port,
        &slack,
        "U_ALICE",
        "/rerun",
        "billing-sync --reason \"db was down\"",
    )
    .await;
    let card = slack.next_message().await;
    assert!(card.has_button("approve"), "{}", card.render());

    // The Job create never gets through before the kill.
    kube.fail_next("POST", JOBS, 10_000, 503, Some(30));
    assert_eq!(
        click(bot.port, &slack, "U_BOB", &card, "approve").await,
        200
    );
    bot.kill();
    kube.clear_faults();
    assert_eq!(reruns(&kube), 0, "killed before the Job was created");

    let bot = spawn(dir.path(), &kube, &slack).await;
    eventually("the approved Job is created after the restart", || {
        reruns(&kube) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reruns(&kube), 1, "exactly one");
    bot.kill();
    let bot = spawn(dir.path(), &kube, &slack).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(reruns(&kube), 1, "a second restart creates nothing");
    drop(bot);
}

#[tokio::test]
async fn a_hold_confirm_acknowledged_then_killed_completes_after_the_restart() {
    let kube = FakeKube::start().await;
    let slack = FakeSlack::start(SECRET).await;
    for name in ["billing-sync", "etl", "reports"] {
        kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    let dir = tempfile::tempdir().unwrap();
    let bot = spawn(dir.path(), &kube, &slack).await;
    let answer: Value = serde_json::from_str(
        &command(bot.port, &slack, "U_ADMIN", "/hold", "all --reason upgrade").await,
    )
    .unwrap();
    let preview = Message {
        channel: CHANNEL.into(),
        ts: String::new(),
        thread_ts: None,
        user: Some("U_ADMIN".into()),
        text: answer["text"].as_str().unwrap_or_default().into(),
        blocks: answer["blocks"].clone(),
        raw: answer.clone(),
    };
    assert!(preview.has_button("hold_confirm"), "{answer}");

    // The apiserver stalls: the hold cannot get anywhere before the kill.
    kube.set_latency(Duration::from_secs(30));
    assert_eq!(
        click(bot.port, &slack, "U_ADMIN", &preview, "hold_confirm").await,
        200
    );
    bot.kill();
    kube.set_latency(Duration::ZERO);
    let suspended = |kube: &FakeKube| {
        kube.list(Resource::CronJobs, None)
            .iter()
            .filter(|c| c["spec"]["suspend"] == true)
            .count()
    };
    assert_eq!(suspended(&kube), 0, "killed before anything was held");

    let _bot = spawn(dir.path(), &kube, &slack).await;
    eventually("every CronJob held after the restart", || {
        suspended(&kube) == 3
    })
    .await;
}
