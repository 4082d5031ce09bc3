//! Slack requests are trusted only when signed with the signing secret and recent.

use std::time::Duration;

use chrono::Utc;

use crate::support::tester::CHANNEL;
use crate::support::{CronJobFixture, Failure, Tester};

async fn tester_with_alert() -> (Tester, crate::support::Message) {
    let t = Tester::start().await;
    t.kube
        .apply_cronjob(CronJobFixture::new("billing-sync").build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let alert = t.slack.next_message().await;
    (t, alert)
}

#[tokio::test]
async fn unsigned_forged_and_stale_requests_are_rejected_without_effect() {
    let (t, alert) = tester_with_alert().await;
    let payload = t.slack.block_action_payload("U_ALICE", &alert, "rerun");
    let body = crate::support::FakeSlack::interaction_form(&payload);
    let now = Utc::now().timestamp();
    let form = "application/x-www-form-urlencoded";

    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("missing", vec![]),
        (
            "forged",
            vec![
                ("x-slack-request-timestamp", now.to_string()),
                ("x-slack-signature", "v0=".to_string() + &"0".repeat(64)),
            ],
        ),
        (
            "signed with another secret",
            vec![
                ("x-slack-request-timestamp", now.to_string()),
                (
                    "x-slack-signature",
                    crate::support::FakeSlack::start("other-secret")
                        .await
                        .sign(now, &body),
                ),
            ],
        ),
        (
            "stale (6 minutes old)",
            vec![
                ("x-slack-request-timestamp", (now - 360).to_string()),
                ("x-slack-signature", t.slack.sign(now - 360, &body)),
            ],
        ),
        (
            "from the future",
            vec![
                ("x-slack-request-timestamp", (now + 360).to_string()),
                ("x-slack-signature", t.slack.sign(now + 360, &body)),
            ],
        ),
        (
            "signature of a different body",
            vec![
                ("x-slack-request-timestamp", now.to_string()),
                ("x-slack-signature", t.slack.sign(now, "payload=%7B%7D")),
            ],
        ),
    ];
    for (what, headers) in cases {
        for path in ["/slack/interactivity", "/slack/commands", "/slack/events"] {
            let answer = t.post(path, form, &headers, &body).await;
            assert_eq!(answer.status, 401, "{what} on {path}: {answer:?}");
        }
    }
    t.slack.expect_quiet(Duration::from_millis(500)).await;
    t.finish().await;
}

#[tokio::test]
async fn hold_previews_and_forged_request_buttons_change_nothing() {
    let (t, alert) = tester_with_alert().await;
    let answer = t.click("U_ALICE", &alert, "hold").await;
    assert_eq!(answer.status, 200);
    let reply = t.slack.next_ephemeral().await;
    assert_eq!(reply.user.as_deref(), Some("U_ALICE"));
    assert_eq!(reply.channel, CHANNEL);
    assert!(
        reply.render().contains("Nothing changes until you confirm"),
        "{}",
        reply.render()
    );

    // An approve button naming a request that never existed.
    let mut forged = alert.clone();
    forged.blocks = serde_json::json!([{"type": "actions", "block_id": "request_actions", "elements": [
        {"type": "button", "action_id": "approve", "value": "zzzzzzzz",
         "text": {"type": "plain_text", "text": "Approve"}}]}]);
    t.click("U_BOB", &forged, "approve").await;
    let reply = t.slack.next_ephemeral().await.render();
    assert!(reply.contains("not known"), "{reply}");
    t.slack
        .expect_quiet(std::time::Duration::from_millis(200))
        .await;
    assert_eq!(
        t.kube
            .count_requests("POST", "/apis/batch/v1/namespaces/default/jobs"),
        0
    );
    t.finish().await;
}

#[tokio::test]
async fn slash_commands_answer_ephemerally_with_help() {
    let t = Tester::start().await;
    let answer = t.command("U_ALICE", CHANNEL, "/rerun", "help").await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["response_type"], "ephemeral");
    assert!(body["text"].as_str().unwrap().contains("/rerun"), "{body}");

    let body = t
        .command(
            "U_ALICE",
            CHANNEL,
            "/hold",
            "all --reason \"<!here> maintenance\"",
        )
        .await
        .json();
    let text = body.to_string();
    assert!(text.contains("RERUN_BOT_ADMINS"), "{text}");
    assert!(
        !text.contains("<!here>"),
        "user text must be escaped: {text}"
    );
    t.finish().await;
}

#[tokio::test]
async fn garbage_payloads_get_400_not_a_crash() {
    let t = Tester::start().await;
    for (path, body) in [
        ("/slack/interactivity", "payload=not-json"),
        ("/slack/interactivity", "nothing=here"),
        ("/slack/commands", "user_id=U1"),
        ("/slack/events", "{not json"),
    ] {
        let answer = t
            .post_signed(path, "application/x-www-form-urlencoded", body)
            .await;
        assert_eq!(answer.status, 400, "{path} {body}: {answer:?}");
    }
    // Still healthy and answering.
    assert_eq!(t.get("/healthz").await.status, 200);
    t.finish().await;
}

#[tokio::test]
async fn events_url_verification_is_answered() {
    let t = Tester::start().await;
    let body = r#"{"type":"url_verification","challenge":"abc123","token":"x"}"#;
    let answer = t
        .post_signed("/slack/events", "application/json", body)
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["challenge"], "abc123");
    t.finish().await;
}
