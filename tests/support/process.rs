//! The bot binary as its own process against the fakes, as in production:
//! for crash (SIGKILL) and multi-replica tests.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use super::slack::Message;
use super::{FakeKube, FakeSlack, Resource};

pub const SECRET: &str = "process-secret";
pub const CHANNEL: &str = "C_PROCESS";

pub struct Bot {
    pub child: Child,
    pub port: u16,
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bot {
    /// SIGKILL: no shutdown, no flush, nothing handed over.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the bot");
        self.child.wait().expect("reap the bot");
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the bot binary with a kubeconfig for `kube`, Slack on `slack` in
/// HTTP mode, data in `dir`, plus `env`; waits for `/readyz`.
pub async fn spawn(
    dir: &std::path::Path,
    kube: &FakeKube,
    slack: &FakeSlack,
    env: &[(&str, &str)],
) -> Bot {
    let config = dir.join("kubeconfig");
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: t\ncurrent-context: fake\nusers:\n- name: t\n  user:\n    token: t\n",
            kube.url()
        ),
    )
    .unwrap();
    // A port picked free may be taken by another test before the bot binds
    // it: then the bot exits at once and is started again on another.
    for _ in 0..3 {
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
            // This fake Slack has no rate limits, and these tests count one
            // alert per failure: no pacing, no storm digests (each test may
            // turn them on through `env`).
            .env("RERUN_BOT_CHAT_PACING", "off")
            .env("RERUN_BOT_STORM_THRESHOLD", "0")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the bot binary");
        let mut bot = Bot { child, port };
        // Generous: the whole suite shares two cores.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if post(port, "/readyz", None, "").await.0 == 200 {
                return bot;
            }
            if let Ok(Some(status)) = bot.child.try_wait() {
                eprintln!("the bot exited before it was ready ({status}); starting it again");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "bot not ready in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("the bot exited before it was ready, three times (see its stderr above)");
}

/// POST (GET when `signed` is None and the body is empty) to the bot.
pub async fn post(port: u16, path: &str, signed: Option<&FakeSlack>, body: &str) -> (u16, String) {
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

pub async fn click(
    port: u16,
    slack: &FakeSlack,
    user: &str,
    message: &Message,
    action: &str,
) -> u16 {
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

pub async fn command(
    port: u16,
    slack: &FakeSlack,
    user: &str,
    command: &str,
    text: &str,
) -> String {
    let body = slack.slash_command_form(user, CHANNEL, command, text);
    let (status, answer) = post(port, "/slack/commands", Some(slack), &body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

pub fn reruns(kube: &FakeKube) -> usize {
    kube.list(Resource::Jobs, None)
        .into_iter()
        .filter(|j| j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot")
        .count()
}

/// Waits up to 15 s for `ok`.
pub async fn eventually(what: &str, ok: impl FnMut() -> bool) {
    eventually_within(Duration::from_secs(15), what, ok).await
}

pub async fn eventually_within(within: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 15 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `user` types `/rerun <text>` into the bot on `port`; returns the approval card.
pub async fn ask_rerun(port: u16, slack: &FakeSlack, user: &str, text: &str) -> Message {
    command(port, slack, user, "/rerun", text).await;
    let card = slack.next_message().await;
    assert!(card.has_button("approve"), "{}", card.render());
    card
}
