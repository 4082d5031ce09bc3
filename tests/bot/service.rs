//! The service around the alerts: probes, metrics, Socket Mode, start-up errors.

use std::time::Duration;

use crate::support::tester::{CHANNEL, SIGNING_SECRET};
use crate::support::{CronJobFixture, Failure, FakeKube, FakeSlack, Resource, Tester};

#[tokio::test]
async fn probes_and_metrics() {
    let t = Tester::start().await;
    assert_eq!(t.get("/healthz").await.status, 200);
    assert_eq!(t.get("/readyz").await.status, 200);
    let metrics = t.metrics().await;
    for name in ["rerun_bot_alerts_posted_total", "rerun_bot_alerts_pending"] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    t.kube.drop_watches();
    t.kube.fail_next("GET", "/apis/batch/v1/jobs", 1, 500, None);
    t.kube.compact();
    t.kube
        .wait_for("the watch to come back", Duration::from_secs(10), |k| {
            k.count_requests("GET", "/apis/batch/v1/jobs") >= 3
        })
        .await;
    t.kube
        .apply_cronjob(CronJobFixture::new("after-outage").build());
    t.fail_job("after-outage", Failure::backoff_limit()).await;
    t.slack.next_message().await;
    t.wait_metric("rerun_bot_watch_restarts_total{resource=\"jobs\"}")
        .await;
    t.finish().await;
}

#[tokio::test]
async fn not_ready_until_the_first_lists_are_done() {
    let kube = FakeKube::start().await;
    let slack = FakeSlack::start(SIGNING_SECRET).await;
    kube.set_latency(Duration::from_millis(400));
    let client = kube::Client::try_from(kube.client_config()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = Tester::with_fakes(FakeKube::start().await, slack.clone(), &[]).await;
    let mut settings = t.settings();
    settings.data_dir = dir.path().to_path_buf();
    let bot = rerun_bot::Bot::start(settings, client).await.unwrap();
    assert!(!bot.is_ready(), "ready before any list came back");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !bot.is_ready() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bot.shutdown().await;
    t.finish().await;
}

#[tokio::test]
async fn namespaces_setting_limits_the_watch() {
    let t = Tester::with_args(&["--namespaces", "team-a,team-b"]).await;
    for ns in ["team-a", "team-b", "team-c"] {
        t.kube
            .apply_cronjob(CronJobFixture::new("sync").namespace(ns).build());
        t.fail_job_in(ns, "sync", Failure::backoff_limit()).await;
    }
    let mut seen = vec![];
    for _ in 0..2 {
        let text = t.slack.next_message().await.render();
        seen.push(if text.contains("team-a/sync") {
            "team-a"
        } else if text.contains("team-b/sync") {
            "team-b"
        } else {
            "other"
        });
    }
    seen.sort();
    assert_eq!(seen, ["team-a", "team-b"]);
    assert!(t.kube.list(Resource::Jobs, Some("team-c")).len() == 1);
    t.finish().await;
}

#[tokio::test]
async fn socket_mode_answers_commands_and_buttons() {
    let slack = FakeSlack::start(SIGNING_SECRET).await;
    let t = Tester::with_fakes(
        FakeKube::start().await,
        slack,
        &["--slack-app-token", "xapp-test-token"],
    )
    .await;
    let ack = t
        .slack
        .socket_send(
            "slash_commands",
            serde_json::from_str(&serde_json::to_string(&command_payload()).unwrap()).unwrap(),
        )
        .await;
    let text = ack.to_string();
    assert!(text.contains("/rerun"), "{text}");

    t.kube
        .apply_cronjob(CronJobFixture::new("billing-sync").build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let alert = t.slack.next_message().await;
    let payload = t.slack.block_action_payload("U_ALICE", &alert, "hold");
    t.slack.socket_send("interactive", payload).await;
    let reply = t.slack.next_ephemeral().await;
    assert!(reply.render().contains("Nothing changes until you confirm"));
    assert_eq!(reply.channel, CHANNEL);

    // A form over Socket Mode: its errors come back in the envelope's ack.
    let payload = t
        .slack
        .block_action_payload("U_ALICE", &alert, "rerun_with_changes");
    t.slack.socket_send("interactive", payload).await;
    let view = t.next_view().await;
    let submission = t.slack.view_submission_payload(
        "U_ALICE",
        &view,
        &[
            ("env", crate::support::slack::ViewValue::Text("=x".into())),
            ("reason", crate::support::slack::ViewValue::Text("r".into())),
        ],
    );
    let ack = t.slack.socket_send("interactive", submission).await;
    assert_eq!(ack["payload"]["response_action"], "errors", "{ack}");
    assert!(
        ack["payload"]["errors"]["env"]
            .as_str()
            .unwrap()
            .contains("Line 1")
    );
    t.finish().await;
}

fn command_payload() -> serde_json::Value {
    serde_json::json!({
        "token": "x", "team_id": "T1", "team_domain": "example", "channel_id": CHANNEL,
        "channel_name": "alerts", "user_id": "U_ALICE", "user_name": "alice", "command": "/rerun",
        "text": "help", "api_app_id": "A1", "response_url": "http://127.0.0.1:9/response",
        "trigger_id": "trigger-1"
    })
}

#[tokio::test]
async fn settings_without_signing_secret_or_app_token_are_refused() {
    let t = Tester::start().await;
    let mut settings = t.settings();
    settings.slack_signing_secret = None;
    let client = kube::Client::try_from(t.kube.client_config()).unwrap();
    let err = rerun_bot::Bot::start(settings, client)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("SLACK_SIGNING_SECRET"), "{err}");
    t.finish().await;
}

#[tokio::test]
async fn settings_name_the_missing_platform_settings() {
    let t = Tester::start().await;
    let client = || kube::Client::try_from(t.kube.client_config()).unwrap();
    let mut none = t.settings();
    none.slack_bot_token = None;
    let err = rerun_bot::Bot::start(none, client())
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("SLACK_BOT_TOKEN") && err.to_string().contains("TEAMS_APP_ID"),
        "{err}"
    );
    let mut teams = t.settings();
    teams.teams_app_id = Some("5a1b2c3d-0000-4000-8000-00000000b07a".into());
    teams.teams_tenant_id = Some("72f988bf-0000-4000-8000-000000000011".into());
    let err = rerun_bot::Bot::start(teams, client())
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("TEAMS_APP_PASSWORD, TEAMS_CHANNEL are not set"),
        "{err}"
    );
    let mut no_channel = t.settings();
    no_channel.channel = None;
    let err = rerun_bot::Bot::start(no_channel, client())
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("RERUN_BOT_CHANNEL"), "{err}");
    t.finish().await;
}

#[tokio::test]
async fn audit_endpoint_needs_the_token_and_the_cli_reads_it() {
    let t = Tester::with_args(&["--audit-token", "s3cret-token"]).await;
    t.kube
        .apply_cronjob(CronJobFixture::new("billing-sync").build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    t.slack.next_message().await;

    assert_eq!(t.get("/audit").await.status, 401);
    let wrong = t
        .post(
            "/audit",
            "text/plain",
            &[("authorization", "Bearer nope".into())],
            "",
        )
        .await;
    assert_eq!(wrong.status, 405, "only GET");

    let base = t.url("");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let lines = loop {
        let lines =
            rerun_bot::audit_client::fetch(&base, "s3cret-token", Some("1h"), Some("billing-sync"))
                .await
                .unwrap();
        if !lines.is_empty() || std::time::Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].event.action, "alert.posted");
    assert_eq!(lines[0].event.subject, "default/billing-sync");
    assert!(rerun_bot::audit_client::table(&lines).contains("alert.posted"));

    let none = rerun_bot::audit_client::fetch(&base, "s3cret-token", None, Some("other"))
        .await
        .unwrap();
    assert!(none.is_empty());
    let err = rerun_bot::audit_client::fetch(&base, "wrong", None, None)
        .await
        .unwrap_err();
    assert!(err.contains("refused the token"), "{err}");
    let err = rerun_bot::audit_client::fetch(&base, "s3cret-token", Some("last week"), None)
        .await
        .unwrap_err();
    assert!(err.contains("RFC 3339"), "{err}");
    t.finish().await;
}

#[tokio::test]
async fn audit_endpoint_is_off_without_a_token() {
    let t = Tester::start().await;
    let err = rerun_bot::audit_client::fetch(&t.url(""), "anything", None, None)
        .await
        .unwrap_err();
    assert!(err.contains("no /audit endpoint"), "{err}");
    t.finish().await;
}
