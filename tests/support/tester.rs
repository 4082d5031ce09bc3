//! `Tester`: fakes plus the real bot, reading like the user's story.
//!
//! ```ignore
//! let t = Tester::start().await;
//! t.kube.apply_cronjob(CronJobFixture::new("billing-sync").build());
//! t.fail_job("billing-sync", Failure::backoff_limit()).await;
//! let alert = t.slack.next_message().await;
//! t.finish().await;
//! ```

use std::sync::Arc;
use std::time::Duration;

use chrono::{DurationRound, Utc};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rerun_bot::Bot;
use rerun_bot::config::Settings;

use super::kube::{Failure, FakeKube};
use super::slack::{FakeSlack, Message};
use rerun_sim::teams::FakeTeams;

pub const SIGNING_SECRET: &str = "test-signing-secret";
pub const CHANNEL: &str = "C_ALERTS";
pub const TEAMS_APP_ID: &str = "5a1b2c3d-0000-4000-8000-00000000b07a";
pub const TEAMS_PASSWORD: &str = "test-teams-client-secret";
pub const TEAMS_TENANT: &str = "72f988bf-0000-4000-8000-000000000011";

/// Which chat platforms a test's bot speaks on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platforms {
    Slack,
    Teams,
    Both,
}

#[derive(Parser)]
struct SettingsOnly {
    #[command(flatten)]
    settings: Settings,
}

/// An HTTP answer from the bot.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub struct Tester {
    pub kube: FakeKube,
    pub slack: FakeSlack,
    /// The simulated Bot Framework, when the bot speaks Teams.
    pub teams: Option<FakeTeams>,
    platforms: Platforms,
    bot: Option<Bot>,
    data_dir: Arc<tempfile::TempDir>,
    extra_args: Vec<String>,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    /// Jobs spawned by [`Tester::next_slot`]'s callers, for distinct names.
    spawned: std::sync::atomic::AtomicI64,
    /// The minute the tester started: slots count back from it.
    born: chrono::DateTime<Utc>,
}

impl Tester {
    /// Fakes and a bot with default settings, ready (first lists done).
    pub async fn start() -> Tester {
        Self::with_args(&[]).await
    }

    /// Like `start`, with extra CLI flags for the bot (`--lookback 2h`, …).
    pub async fn with_args(args: &[&str]) -> Tester {
        let kube = FakeKube::start().await;
        let slack = FakeSlack::start(SIGNING_SECRET).await;
        Self::with_fakes(kube, slack, args).await
    }

    /// Starts the bot against fakes the test has already filled.
    pub async fn with_fakes(kube: FakeKube, slack: FakeSlack, args: &[&str]) -> Tester {
        Self::with_platforms(kube, slack, None, Platforms::Slack, args).await
    }

    /// A bot on Teams only (`Platforms::Teams`) or on both platforms.
    pub async fn on(platforms: Platforms, args: &[&str]) -> Tester {
        let kube = FakeKube::start().await;
        let slack = FakeSlack::start(SIGNING_SECRET).await;
        let teams = match platforms {
            Platforms::Slack => None,
            _ => Some(FakeTeams::start(TEAMS_APP_ID, TEAMS_PASSWORD, TEAMS_TENANT).await),
        };
        Self::with_platforms(kube, slack, teams, platforms, args).await
    }

    pub async fn with_platforms(
        kube: FakeKube,
        slack: FakeSlack,
        teams: Option<FakeTeams>,
        platforms: Platforms,
        args: &[&str],
    ) -> Tester {
        let mut t = Tester {
            kube,
            slack,
            teams,
            platforms,
            bot: None,
            data_dir: Arc::new(tempfile::tempdir().expect("temp dir")),
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            http: Client::builder(TokioExecutor::new()).build_http(),
            spawned: Default::default(),
            born: Utc::now()
                .duration_trunc(chrono::Duration::minutes(1))
                .expect("a minute"),
        };
        t.boot().await;
        t
    }

    pub fn settings(&self) -> Settings {
        let mut args: Vec<String> = [
            "rerun-bot",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            self.data_dir.path().to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.platforms != Platforms::Teams {
            args.extend(
                [
                    "--slack-bot-token",
                    "xoxb-test-token",
                    "--slack-signing-secret",
                    SIGNING_SECRET,
                    "--slack-api-url",
                    &self.slack.api_url(),
                    "--channel",
                    CHANNEL,
                ]
                .map(String::from),
            );
        }
        if let Some(teams) = &self.teams {
            args.extend([
                "--teams-app-id".into(),
                TEAMS_APP_ID.into(),
                "--teams-app-password".into(),
                TEAMS_PASSWORD.into(),
                "--teams-tenant-id".into(),
                TEAMS_TENANT.into(),
                "--teams-channel".into(),
                teams.channel("alerts"),
                "--teams-service-url".into(),
                teams.service_url(),
                "--teams-login-url".into(),
                teams.login_url(),
                "--teams-openid-metadata-url".into(),
                teams.openid_metadata_url(),
            ]);
        }
        if !self.extra_args.iter().any(|a| a == "--capture-budget") {
            // Alerts wait for their exit code and log, so tests read whole
            // alerts; `alerts::details_follow_by_update…` covers the default.
            args.extend(["--capture-budget".to_string(), "10s".to_string()]);
        }
        args.extend(self.extra_args.iter().cloned());
        SettingsOnly::try_parse_from(args)
            .expect("test settings parse")
            .settings
    }

    async fn boot(&mut self) {
        let client = kube::Client::try_from(self.kube.client_config()).expect("kube client");
        let bot = Bot::start(self.settings(), client)
            .await
            .expect("bot starts");
        if let Some(teams) = &self.teams {
            teams.set_bot_endpoint(&format!("http://{}/api/messages", bot.http_addr()));
        }
        self.bot = Some(bot);
        self.wait_ready().await;
    }

    pub fn bot(&self) -> &Bot {
        self.bot.as_ref().expect("bot running")
    }

    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.bot().is_ready() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "bot not ready within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the bot (as a crash would: nothing is handed over) and starts a
    /// new one on the same data dir.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.boot().await;
    }

    pub async fn stop(&mut self) {
        if let Some(bot) = self.bot.take() {
            bot.shutdown().await;
        }
    }

    pub async fn start_again(&mut self) {
        self.boot().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.bot().http_addr(), path)
    }

    pub async fn get(&self, path: &str) -> Answer {
        let req = hyper::Request::get(self.url(path))
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(req).await
    }

    /// POSTs to the bot with the given headers, as Slack would.
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> Answer {
        let mut req = hyper::Request::post(self.url(path)).header("content-type", content_type);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        self.send(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await
    }

    /// POSTs a body signed with the signing secret, at the current time.
    pub async fn post_signed(&self, path: &str, content_type: &str, body: &str) -> Answer {
        let ts = Utc::now().timestamp();
        let sig = self.slack.sign(ts, body);
        self.post(
            path,
            content_type,
            &[
                ("x-slack-request-timestamp", ts.to_string()),
                ("x-slack-signature", sig),
            ],
            body,
        )
        .await
    }

    async fn send(&self, req: hyper::Request<Full<Bytes>>) -> Answer {
        let res = self.http.request(req).await.expect("bot answers HTTP");
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// `user` clicks the button `action_id` on `message`.
    pub async fn click(&self, user: &str, message: &Message, action_id: &str) -> Answer {
        let payload = self.slack.block_action_payload(user, message, action_id);
        self.interact(&payload).await
    }

    /// Posts an interaction payload, signed, as Slack would.
    pub async fn interact(&self, payload: &serde_json::Value) -> Answer {
        let body = FakeSlack::interaction_form(payload);
        self.post_signed(
            "/slack/interactivity",
            "application/x-www-form-urlencoded",
            &body,
        )
        .await
    }

    /// The view of the next modal the bot opened (`views.open`).
    pub async fn next_view(&self) -> serde_json::Value {
        self.slack.next_call("views.open").await.params["view"].clone()
    }

    /// `user` submits `view` with `values` typed in; returns the bot's answer
    /// (empty: the modal closes; `response_action: errors`: it stays open).
    pub async fn submit(
        &self,
        user: &str,
        view: &serde_json::Value,
        values: &[(&str, super::slack::ViewValue)],
    ) -> Answer {
        let payload = self.slack.view_submission_payload(user, view, values);
        self.interact(&payload).await
    }

    /// `user` types `/command text` in `channel`; returns the immediate answer.
    pub async fn command(&self, user: &str, channel: &str, command: &str, text: &str) -> Answer {
        let body = self.slack.slash_command_form(user, channel, command, text);
        self.post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            &body,
        )
        .await
    }

    /// A scheduled minute no Job of this test had: distinct minutes give
    /// distinct Job names, as the controller's would. (Counted from the
    /// tester's start, not from the clock: two calls a minute boundary apart
    /// would otherwise name the same Job.)
    pub fn next_slot(&self) -> chrono::DateTime<Utc> {
        let n = self
            .spawned
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.born - chrono::Duration::minutes(n + 1)
    }

    /// Spawns a Job for `cronjob` (namespace `default`) and fails it.
    pub async fn fail_job(&self, cronjob: &str, failure: Failure) -> serde_json::Value {
        self.fail_job_in("default", cronjob, failure).await
    }

    pub async fn fail_job_in(
        &self,
        ns: &str,
        cronjob: &str,
        failure: Failure,
    ) -> serde_json::Value {
        let job = self.kube.spawn_job(ns, cronjob, self.next_slot());
        let name = job["metadata"]["name"].as_str().unwrap().to_string();
        self.kube.fail_job(ns, &name, failure)
    }

    /// Spawns a Job for `cronjob` (namespace `default`) and completes it a
    /// second later than any failure before it (conditions have seconds).
    pub async fn succeed_job(&self, cronjob: &str) -> String {
        let job = self.kube.spawn_job("default", cronjob, self.next_slot());
        let name = job["metadata"]["name"].as_str().unwrap().to_string();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        self.kube.complete_job("default", &name);
        name
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.body
    }

    /// Waits until `/metrics` contains `line` (counters move after the message is sent).
    pub async fn wait_metric(&self, line: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let metrics = self.metrics().await;
            if metrics.contains(line) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "metric `{line}` not seen:\n{metrics}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The simulated Teams (panics when the bot does not speak Teams).
    pub fn teams(&self) -> &FakeTeams {
        self.teams.as_ref().expect("this test's bot speaks Teams")
    }

    /// The Teams channel alerts go to by default.
    pub fn teams_channel(&self) -> String {
        self.teams().channel("alerts")
    }

    /// Every message the bot sent was looked at, none broke Block Kit's rules
    /// (nor Teams'), and every Adaptive Card parses.
    pub async fn finish(mut self) {
        self.slack.expect_quiet(Duration::from_millis(300)).await;
        self.slack.assert_no_violations();
        self.slack.assert_all_taken();
        if let Some(teams) = &self.teams {
            teams.wait_quiet(Duration::from_millis(300)).await;
            teams.finish();
            // Every card the bot sent, through Microsoft's parser.
            super::cards::validate_cards(&teams.cards());
        }
        self.stop().await;
    }
}
