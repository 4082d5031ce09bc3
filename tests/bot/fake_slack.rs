//! The fake Slack checked against the real slack-morphism client: if these
//! pass, the bot's tests exercise what Slack would accept and answer.
//!
//! Observed with slack-morphism 2.31 (and relied on by the fake):
//! - `chat.*`, `views.*` and `apps.connections.open` are JSON POSTs with
//!   `Authorization: Bearer …`; `auth.test`, `users.info`,
//!   `usergroups.users.list`, `conversations.info` and `chat.getPermalink` are
//!   GETs with query parameters (and the same header).
//! - HTTP 429 comes back at once as `SlackClientError::RateLimitError` with
//!   `retry_after` from the header: the client retries by itself only when built
//!   `with_rate_control(…with_max_retries(n))`, and then waits `Retry-After`.
//! - Socket Mode takes the `ws://` URL from `apps.connections.open` as is
//!   (tokio-tungstenite), and acks each envelope with `{"envelope_id": …}`
//!   (plus `payload` for slash commands and for view submissions).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use slack_morphism::errors::{SlackClientApiError, SlackClientError};
use slack_morphism::prelude::*;
use slack_morphism::signature_verifier::SlackEventSignatureVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::slack::{FakeSlack, ViewValue};

const SECRET: &str = "fake-slack-selftest-secret";
const BOT_TOKEN: &str = "xoxb-selftest";
const APP_TOKEN: &str = "xapp-selftest";

fn client_with(fake: &FakeSlack, rate: Option<SlackApiRateControlConfig>) -> Arc<SlackHyperClient> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .expect("native roots")
        .https_or_http()
        .enable_http1()
        .build();
    // As the bot does: no trailing slash, or slack-morphism doubles it.
    let mut connector = SlackClientHyperConnector::with_connector(https)
        .with_slack_api_url(fake.api_url().trim_end_matches('/'));
    if let Some(rate) = rate {
        connector = connector.with_rate_control(rate);
    }
    Arc::new(SlackClient::new(connector))
}

fn client(fake: &FakeSlack) -> Arc<SlackHyperClient> {
    client_with(fake, None)
}

fn bot_token() -> SlackApiToken {
    SlackApiToken::new(BOT_TOKEN.into())
}

fn button(action_id: &str, text: &str, value: &str) -> SlackActionBlockElement {
    SlackActionBlockElement::Button(
        SlackBlockButtonElement::new(pt!(text))
            .with_action_id(action_id.into())
            .with_value(value.into()),
    )
}

fn alert_blocks() -> Vec<SlackBlock> {
    vec![
        SlackHeaderBlock::new(pt!("CronJob default/billing-sync failed")).into(),
        SlackSectionBlock::new()
            .with_text(md!("*Reason:* `BackoffLimitExceeded`"))
            .with_fields(vec![
                md!("*Job*\n`billing-sync-1`"),
                md!("*Attempts*\n3 failed / backoffLimit 2"),
            ])
            .into(),
        SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
            SlackBlockMarkDownText::new("owner <@U_OWNER>".into()),
        )])
        .into(),
        SlackDividerBlock::new().into(),
        SlackActionsBlock::new(vec![
            button("rerun", "Rerun", "job-uid-1"),
            button("rerun_with_changes", "Rerun with changes…", "job-uid-1"),
            button("hold", "Hold", "job-uid-1"),
        ])
        .into(),
    ]
}

fn post_req(channel: &str, text: &str, blocks: Vec<SlackBlock>) -> SlackApiChatPostMessageRequest {
    SlackApiChatPostMessageRequest::new(
        channel.into(),
        SlackMessageContent::new()
            .with_text(text.into())
            .with_blocks(blocks),
    )
}

fn api_error(err: SlackClientError) -> SlackClientApiError {
    match err {
        SlackClientError::ApiError(e) => e,
        other => panic!("expected a Slack API error, got {other:?}"),
    }
}

/// A raw HTTP/1.1 request, for what slack-morphism never sends (forms, no token).
async fn raw_http(
    fake: &FakeSlack,
    request_line: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(fake.addr())
        .await
        .expect("connect");
    let mut req = format!(
        "{request_line} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        fake.addr()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    let status = raw[9..12].parse().expect("status code");
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn panics<F: FnOnce()>(f: F) -> String {
    let err = std::panic::catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[tokio::test]
async fn post_update_ephemeral_and_permalink_round_trip() {
    let fake = FakeSlack::start(SECRET).await;
    let client = client(&fake);
    let token = bot_token();
    let session = client.open_session(&token);

    let posted = session
        .chat_post_message(&post_req(
            "C_ALERTS",
            "CronJob default/billing-sync failed",
            alert_blocks(),
        ))
        .await
        .expect("chat.postMessage");
    let first = fake.next_message().await;
    assert_eq!(first.ts, posted.ts.to_string());
    assert_eq!(first.channel, "C_ALERTS");
    assert_eq!(first.thread_ts, None);
    assert_eq!(first.text, "CronJob default/billing-sync failed");
    assert_eq!(
        first.render(),
        "# CronJob default/billing-sync failed\n\n\
         *Reason:* `BackoffLimitExceeded`\n- *Job*\n  `billing-sync-1`\n- *Attempts*\n  3 failed / backoffLimit 2\n\n\
         owner <@U_OWNER>\n\n\
         ---\n\n\
         [Rerun](rerun) [Rerun with changes…](rerun_with_changes) [Hold](hold)"
    );
    assert!(first.has_button("rerun") && !first.has_button("approve"));
    assert_eq!(first.button("hold").unwrap()["value"], "job-uid-1");

    // A reply in its thread gets a later, different ts.
    let mut reply = post_req("C_ALERTS", "failed again", vec![]);
    reply.thread_ts = Some(posted.ts.clone());
    let reply_res = session
        .chat_post_message(&reply)
        .await
        .expect("thread reply");
    let second = fake.next_message().await;
    assert_eq!(second.thread_ts.as_deref(), Some(first.ts.as_str()));
    assert!(second.ts > first.ts, "{} then {}", first.ts, second.ts);
    assert_eq!(second.render(), "failed again", "no blocks: the text");
    assert_eq!(reply_res.ts.to_string(), second.ts);

    // Update in place.
    let update = SlackApiChatUpdateRequest::new(
        "C_ALERTS".into(),
        SlackMessageContent::new()
            .with_text("updated".into())
            .with_blocks(vec![
                SlackSectionBlock::new()
                    .with_text(md!("Rerun approved by <@U_BOB>"))
                    .into(),
            ]),
        posted.ts.clone(),
    );
    let updated = session.chat_update(&update).await.expect("chat.update");
    assert_eq!(updated.ts, posted.ts);
    let up = fake.next_update().await;
    assert_eq!(
        (up.channel.as_str(), up.ts.as_str()),
        ("C_ALERTS", first.ts.as_str())
    );
    assert_eq!(up.render(), "Rerun approved by <@U_BOB>");
    assert_eq!(
        fake.current_message("C_ALERTS", &first.ts).unwrap()["text"],
        "updated"
    );

    // Updating a message that was never posted is Slack's message_not_found.
    let bogus = SlackApiChatUpdateRequest::new(
        "C_ALERTS".into(),
        SlackMessageContent::new().with_text("x".into()),
        "1.000001".into(),
    );
    let err = api_error(session.chat_update(&bogus).await.unwrap_err());
    assert_eq!(err.code, "message_not_found");

    // Ephemeral.
    let eph = SlackApiChatPostEphemeralRequest::new(
        "C_ALERTS".into(),
        "U_ALICE".into(),
        SlackMessageContent::new().with_text("only you".into()),
    );
    session
        .chat_post_ephemeral(&eph)
        .await
        .expect("chat.postEphemeral");
    let e = fake.next_ephemeral().await;
    assert_eq!(e.user.as_deref(), Some("U_ALICE"));
    assert_eq!(e.render(), "only you");
    assert!(!e.ts.is_empty());

    // Permalink (a GET).
    let link = session
        .chat_get_permalink(&SlackApiChatGetPermalinkRequest::new(
            "C_ALERTS".into(),
            posted.ts.clone(),
        ))
        .await
        .expect("chat.getPermalink");
    assert_eq!(
        link.permalink.as_str(),
        format!(
            "https://example.slack.com/archives/C_ALERTS/p{}",
            first.ts.replace('.', "")
        )
    );

    assert_eq!(fake.calls("chat.postMessage").len(), 2);
    assert_eq!(fake.attempts("chat.update"), 2);
    assert_eq!(fake.calls("chat.update").len(), 1);
    fake.assert_all_taken();
    fake.assert_no_violations();
}

#[tokio::test]
async fn untaken_and_unexpected_messages_are_reported() {
    let fake = FakeSlack::start(SECRET).await;
    let client = client(&fake);
    let token = bot_token();
    let session = client.open_session(&token);
    session
        .chat_post_message(&post_req("C_ALERTS", "nobody reads me", vec![]))
        .await
        .unwrap();
    let msg = panics(|| fake.assert_all_taken());
    assert!(msg.contains("nobody reads me"), "{msg}");
    fake.next_message().await;
    fake.assert_all_taken();

    // A message arriving during expect_quiet fails it.
    let quiet = tokio::spawn({
        let fake = fake.clone();
        async move { fake.expect_quiet(Duration::from_millis(400)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    session
        .chat_post_message(&post_req("C_ALERTS", "surprise", vec![]))
        .await
        .unwrap();
    let err = quiet.await.expect_err("expect_quiet must panic");
    assert!(err.is_panic());
    fake.next_message().await;
    fake.expect_quiet(Duration::from_millis(100)).await;

    // A click on a button the message does not have is a test bug, said clearly.
    let m = fake.responses();
    assert!(m.is_empty());
    let plain = crate::support::slack::Message {
        channel: "C_ALERTS".into(),
        ts: "1.1".into(),
        thread_ts: None,
        user: None,
        text: "x".into(),
        blocks: json!([]),
        raw: json!({}),
    };
    let msg = panics(|| {
        fake.block_action_payload("U_ALICE", &plain, "rerun");
    });
    assert!(msg.contains("no button \"rerun\""), "{msg}");
}

#[tokio::test]
async fn block_kit_limits_are_enforced_like_slack() {
    let fake = FakeSlack::start(SECRET).await;
    let client = client(&fake);
    let token = bot_token();
    let session = client.open_session(&token);

    // 51 blocks.
    let many: Vec<SlackBlock> = (0..51)
        .map(|i| {
            SlackSectionBlock::new()
                .with_text(md!(format!("block {i}")))
                .into()
        })
        .collect();
    let err = api_error(
        session
            .chat_post_message(&post_req("C_ALERTS", "too many", many))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, "invalid_blocks");
    let errors = err.errors.unwrap_or_default();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("no more than 50 items allowed [json-pointer:/blocks]")),
        "{errors:?}"
    );
    // 50 are fine.
    let fifty: Vec<SlackBlock> = (0..50)
        .map(|i| {
            SlackSectionBlock::new()
                .with_text(md!(format!("block {i}")))
                .into()
        })
        .collect();
    session
        .chat_post_message(&post_req("C_ALERTS", "fifty", fifty))
        .await
        .expect("50 blocks are allowed");
    fake.next_message().await;

    // A 200-char header, a 3001-char section, a 76-char button, a duplicate action id.
    let blocks: Vec<SlackBlock> = vec![
        SlackHeaderBlock::new(pt!("h".repeat(200))).into(),
        SlackSectionBlock::new()
            .with_text(md!("s".repeat(3001)))
            .into(),
        SlackActionsBlock::new(vec![
            button("rerun", &"b".repeat(76), "v"),
            button("rerun", "again", "v"),
        ])
        .into(),
    ];
    let err = api_error(
        session
            .chat_post_message(&post_req("C_ALERTS", "bad", blocks))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, "invalid_blocks");
    let v = fake.take_violations();
    let all: Vec<String> = v.iter().map(|v| v.to_string()).collect();
    for expected in [
        "chat.postMessage: no more than 50 items allowed [json-pointer:/blocks]",
        "chat.postMessage: must be less than 151 characters [json-pointer:/blocks/0/text/text]",
        "chat.postMessage: must be less than 3001 characters [json-pointer:/blocks/1/text/text]",
        "chat.postMessage: must be less than 76 characters [json-pointer:/blocks/2/elements/0/text/text]",
        "chat.postMessage: duplicate action_id \"rerun\" [json-pointer:/blocks/2/elements/1/action_id]",
    ] {
        assert!(
            all.iter().any(|a| a == expected),
            "missing {expected:?} in {all:#?}"
        );
    }
    assert_eq!(all.len(), 5, "{all:#?}");
    assert_eq!(
        fake.calls("chat.postMessage").len(),
        1,
        "rejected posts are attempts, not calls"
    );
    assert_eq!(fake.attempts("chat.postMessage"), 3);

    // Shapes slack-morphism would never build: through a form body, blocks as a JSON string.
    let blocks = json!([
        {"type": "header", "text": {"type": "mrkdwn", "text": "*bold header*"}},
        {"type": "section"},
        {"text": {"type": "plain_text", "text": "no type"}},
        {"type": "context", "elements": (0..11).map(|i| json!({"type": "mrkdwn", "text": format!("c{i}")})).collect::<Vec<_>>()},
        {"type": "section", "text": {"type": "markdown", "text": "x"}, "block_id": "dup"},
        {"type": "divider", "block_id": "dup"},
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "mrkdwn", "text": "md"}, "action_id": "a", "value": "v".repeat(2001)}]},
    ]);
    let form = serde_urlencoded::to_string([
        ("channel", "C_ALERTS"),
        ("text", "form"),
        ("blocks", &blocks.to_string()),
    ])
    .unwrap();
    let (status, body) = raw_http(
        &fake,
        "POST /api/chat.postMessage",
        &[
            ("Authorization", "Bearer xoxb-form"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &form,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (200, Some("invalid_blocks")),
        "{body}"
    );
    let all: Vec<String> = fake
        .take_violations()
        .into_iter()
        .map(|v| v.error)
        .collect();
    for expected in [
        "must be plain_text [json-pointer:/blocks/0/text/type]",
        "must provide either text or fields [json-pointer:/blocks/1]",
        "missing required field [json-pointer:/blocks/2/type]",
        "no more than 10 items allowed [json-pointer:/blocks/3/elements]",
        "unsupported text type \"markdown\" [json-pointer:/blocks/4/text/type]",
        "duplicate block_id \"dup\" [json-pointer:/blocks/5/block_id]",
        "must be plain_text [json-pointer:/blocks/6/elements/0/text/type]",
        "must be less than 2001 characters [json-pointer:/blocks/6/elements/0/value]",
    ] {
        assert!(
            all.iter().any(|a| a == expected),
            "missing {expected:?} in {all:#?}"
        );
    }
    // The form's blocks were decoded into JSON for the record.
    let attempt = fake.attempt_log("chat.postMessage").pop().unwrap();
    assert!(attempt.params["blocks"].is_array());

    // Top-level text over 40,000 characters.
    let err = api_error(
        session
            .chat_post_message(&post_req("C_ALERTS", &"t".repeat(40_001), vec![]))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, "msg_too_long");
    assert_eq!(fake.take_violations().len(), 1);
    fake.assert_no_violations();
    fake.assert_all_taken();
}

#[tokio::test]
async fn broadcast_mentions_are_violations_unless_allowed() {
    let fake = FakeSlack::start(SECRET).await;
    let client = client(&fake);
    let token = bot_token();
    let session = client.open_session(&token);

    // Slack would accept (and ping everyone): the call succeeds, the test fails at the end.
    let blocks = vec![
        SlackSectionBlock::new()
            .with_text(md!("maintenance <!channel|channel>"))
            .into(),
    ];
    session
        .chat_post_message(&post_req("C_ALERTS", "<!here> heads up", blocks))
        .await
        .expect("accepted");
    fake.next_message().await;
    let v: Vec<String> = fake.violations().into_iter().map(|v| v.error).collect();
    assert_eq!(
        v,
        vec![
            "broadcast mention <!here> [json-pointer:/text]".to_string(),
            "broadcast mention <!channel> [json-pointer:/blocks/0/text/text]".to_string(),
        ]
    );
    let msg = panics(|| fake.assert_no_violations());
    assert!(msg.contains("<!here>"), "{msg}");
    fake.take_violations();

    // Escaped text, user-group mentions and date tokens are fine.
    let ok =
        "&lt;!here&gt; <!subteam^S123> <!date^1700000000^{date_short_pretty}|2023-11-14> <!heresy";
    session
        .chat_post_message(&post_req("C_ALERTS", ok, vec![]))
        .await
        .unwrap();
    fake.next_message().await;
    fake.assert_no_violations();

    // `@here` only broadcasts with link_names.
    let mut req = post_req("C_ALERTS", "@here", vec![]);
    req.link_names = Some(true);
    session.chat_post_message(&req).await.unwrap();
    fake.next_message().await;
    assert_eq!(fake.take_violations().len(), 1);

    fake.allow_broadcast();
    session
        .chat_post_message(&post_req("C_ALERTS", "<!everyone>", vec![]))
        .await
        .unwrap();
    fake.next_message().await;
    fake.assert_no_violations();
}

#[tokio::test]
async fn tokens_channels_users_and_groups() {
    let fake = FakeSlack::start(SECRET).await;
    let client = client(&fake);
    let token = bot_token();
    let session = client.open_session(&token);

    let me = session.auth_test().await.expect("auth.test");
    assert_eq!(me.user_id.to_string(), "U_BOT");
    assert_eq!(me.bot_id.map(|b| b.to_string()).as_deref(), Some("B_BOT"));
    assert_eq!(
        fake.calls("auth.test")[0].params,
        json!({}),
        "a GET without parameters"
    );

    fake.add_user("U_ALICE", "alice");
    let alice = session
        .users_info(&SlackApiUsersInfoRequest::new("U_ALICE".into()))
        .await
        .expect("users.info");
    assert_eq!(alice.user.name.as_deref(), Some("alice"));
    assert_eq!(
        fake.calls("users.info")[0].params["user"],
        "U_ALICE",
        "query parameters are recorded"
    );
    let err = api_error(
        session
            .users_info(&SlackApiUsersInfoRequest::new("U_NOBODY".into()))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, "user_not_found");

    fake.add_usergroup("S_APPROVERS", &["U_ALICE", "U_BOB"]);
    let members = session
        .usergroups_users_list(&SlackApiUserGroupsUsersListRequest::new(
            "S_APPROVERS".into(),
        ))
        .await
        .expect("usergroups.users.list");
    assert_eq!(
        members
            .users
            .iter()
            .map(|u| u.to_string())
            .collect::<Vec<_>>(),
        ["U_ALICE", "U_BOB"]
    );
    let err = api_error(
        session
            .usergroups_users_list(&SlackApiUserGroupsUsersListRequest::new("S_NONE".into()))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, "no_such_subteam");

    let info = session
        .conversations_info(&SlackApiConversationsInfoRequest::new("C_ALERTS".into()))
        .await
        .expect("conversations.info");
    assert_eq!(info.channel.flags.is_member, Some(true));

    // Channels the bot cannot post to.
    fake.remove_bot_from("C_OTHER");
    fake.archive_channel("C_OLD");
    fake.delete_channel("C_GONE");
    for (channel, code) in [
        ("C_OTHER", "not_in_channel"),
        ("C_OLD", "is_archived"),
        ("C_GONE", "channel_not_found"),
    ] {
        let err = api_error(
            session
                .chat_post_message(&post_req(channel, "hi", vec![]))
                .await
                .unwrap_err(),
        );
        assert_eq!(err.code, code, "{channel}");
    }
    let info = session
        .conversations_info(&SlackApiConversationsInfoRequest::new("C_OTHER".into()))
        .await
        .unwrap();
    assert_eq!(info.channel.flags.is_member, Some(false));

    // Tokens: wrong kind, garbage, none.
    let app_token = SlackApiToken::new(APP_TOKEN.into());
    let app_session = client.open_session(&app_token);
    let err = api_error(
        app_session
            .chat_post_message(&post_req("C_ALERTS", "x", vec![]))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, "not_allowed_token_type");
    let err = api_error(
        session
            .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, "not_allowed_token_type");
    let garbage_token = SlackApiToken::new("hunter2".into());
    let garbage = client.open_session(&garbage_token);
    assert_eq!(
        api_error(garbage.auth_test().await.unwrap_err()).code,
        "invalid_auth"
    );
    let (status, body) = raw_http(&fake, "GET /api/auth.test", &[], "").await;
    assert_eq!((status, body["error"].as_str()), (200, Some("not_authed")));
    let (_, body) = raw_http(
        &fake,
        "POST /api/no.such.method",
        &[("Authorization", "Bearer xoxb-x")],
        "",
    )
    .await;
    assert_eq!(body, json!({"ok": false, "error": "unknown_method"}));
    // A token in a form body counts as well (Slack accepts it there).
    let (_, body) = raw_http(
        &fake,
        "POST /api/auth.test",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "token=xoxb-in-body",
    )
    .await;
    assert_eq!(body["ok"], true, "{body}");
    // A base URL with a trailing slash makes slack-morphism send `/api//method`.
    let (_, body) = raw_http(
        &fake,
        "GET /api//users.info?user=U_ALICE",
        &[("Authorization", "Bearer xoxb-x")],
        "",
    )
    .await;
    assert_eq!(body["user"]["name"], "alice", "{body}");

    assert_eq!(fake.calls("chat.postMessage").len(), 0);
    fake.assert_all_taken();
    fake.assert_no_violations();
}

#[tokio::test]
async fn rate_limits_and_failures_reach_the_client() {
    let fake = FakeSlack::start(SECRET).await;
    let client = client(&fake);
    let token = bot_token();
    let session = client.open_session(&token);

    // Without rate control, slack-morphism hands the 429 straight back.
    fake.rate_limit_next("chat.postMessage", 1, 1);
    match session
        .chat_post_message(&post_req("C_ALERTS", "x", vec![]))
        .await
    {
        Err(SlackClientError::RateLimitError(e)) => {
            assert_eq!(e.retry_after, Some(Duration::from_secs(1)));
            assert_eq!(e.code.as_deref(), Some("ratelimited"));
        }
        other => panic!("expected a rate limit error, got {other:?}"),
    }
    assert_eq!(
        (
            fake.attempts("chat.postMessage"),
            fake.calls("chat.postMessage").len()
        ),
        (1, 0)
    );
    let limited = &fake.attempt_log("chat.postMessage")[0];
    assert_eq!(
        (limited.status, limited.error()),
        (429, Some("ratelimited"))
    );

    // 5xx: an HttpError with the status.
    fake.fail_next("chat.update", 1, 503);
    let upd = SlackApiChatUpdateRequest::new(
        "C_ALERTS".into(),
        SlackMessageContent::new().with_text("x".into()),
        "1.1".into(),
    );
    match session.chat_update(&upd).await {
        Err(SlackClientError::HttpError(e)) => assert_eq!(e.status_code.as_u16(), 503),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    // Slack-level errors.
    fake.error_next("chat.postMessage", 1, "fatal_error");
    assert_eq!(
        api_error(
            session
                .chat_post_message(&post_req("C_ALERTS", "x", vec![]))
                .await
                .unwrap_err()
        )
        .code,
        "fatal_error"
    );
    // The knobs are used up: the next call goes through.
    session
        .chat_post_message(&post_req("C_ALERTS", "third time", vec![]))
        .await
        .expect("no faults left");
    assert_eq!(fake.next_message().await.text, "third time");

    // With rate control and retries, slack-morphism waits Retry-After and retries.
    let retrying = client_with(
        &fake,
        Some(SlackApiRateControlConfig::new().with_max_retries(2)),
    );
    fake.rate_limit_next("chat.postMessage", 1, 1);
    let started = Instant::now();
    retrying
        .open_session(&bot_token())
        .chat_post_message(&post_req("C_ALERTS", "after a wait", vec![]))
        .await
        .expect("retried after Retry-After");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.attempts("chat.postMessage"), 5);
    assert_eq!(fake.next_message().await.text, "after a wait");

    // Latency.
    fake.delay_next("auth.test", 1, Duration::from_millis(300));
    let started = Instant::now();
    session.auth_test().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    fake.assert_all_taken();
    fake.assert_no_violations();
}

#[tokio::test]
async fn modals_open_update_and_submit() {
    let fake = FakeSlack::start(SECRET).await;
    let client = client(&fake);
    let token = bot_token();
    let session = client.open_session(&token);

    session
        .chat_post_message(&post_req("C_ALERTS", "alert", alert_blocks()))
        .await
        .unwrap();
    let alert = fake.next_message().await;
    let click = fake.block_action_payload("U_ALICE", &alert, "rerun_with_changes");
    let trigger = click["trigger_id"].as_str().unwrap().to_string();

    let append = SlackBlockChoiceItem::new(pt!("append"), "append".into());
    let replace = SlackBlockChoiceItem::new(pt!("replace"), "replace".into());
    let input = |id: &str, label: &str, el: SlackInputBlockElement| -> SlackBlock {
        SlackInputBlock::new(pt!(label), el)
            .with_block_id(id.into())
            .into()
    };
    let modal = |title: &str| {
        SlackView::Modal(
            SlackModalView::new(
                pt!(title),
                vec![
                    input(
                        "args",
                        "Arguments",
                        SlackBlockPlainTextInputElement::new()
                            .with_action_id("args".into())
                            .with_multiline(true)
                            .into(),
                    ),
                    input(
                        "args_mode",
                        "Arguments are",
                        SlackBlockRadioButtonsElement::new(vec![append.clone(), replace.clone()])
                            .with_action_id("args_mode".into())
                            .with_initial_option(append.clone())
                            .into(),
                    ),
                    input(
                        "reason",
                        "Reason",
                        SlackBlockPlainTextInputElement::new()
                            .with_action_id("reason".into())
                            .with_initial_value("because".into())
                            .into(),
                    ),
                ],
            )
            .with_submit(pt!("Request"))
            .with_close(pt!("Cancel"))
            .with_callback_id("rerun_overrides".into())
            .with_private_metadata("{\"alert\":\"job-uid-1\"}".into()),
        )
    };

    // A title over 24 characters is Slack's invalid_arguments.
    let err = api_error(
        session
            .views_open(&SlackApiViewsOpenRequest::new(
                trigger.clone().into(),
                modal("Rerun billing-sync with changes"),
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, "invalid_arguments");
    let v = fake.take_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        v[0].error,
        "must be less than 25 characters [json-pointer:/view/title/text]"
    );

    let opened = session
        .views_open(&SlackApiViewsOpenRequest::new(
            trigger.clone().into(),
            modal("Rerun with changes"),
        ))
        .await
        .expect("views.open");
    let view_id = opened.view.state_params.id.clone();
    assert!(view_id.to_string().starts_with('V'));
    let call = fake.next_call("views.open").await;
    assert_eq!(call.params["trigger_id"], trigger.as_str());
    assert_eq!(
        crate::support::slack::render_blocks(&call.params["view"]["blocks"]),
        "Arguments: [plain_text_input](args) multiline\n\n\
         Arguments are: [radio_buttons: (x) append ( ) replace](args_mode)\n\n\
         Reason: [plain_text_input](reason) = \"because\""
    );
    // A trigger id works once.
    let err = api_error(
        session
            .views_open(&SlackApiViewsOpenRequest::new(
                trigger.into(),
                modal("Again"),
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, "exchanged_trigger_id");
    let err = api_error(
        session
            .views_open(&SlackApiViewsOpenRequest::new(
                "made.up".into(),
                modal("Again"),
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, "invalid_trigger_id");

    // views.update by id.
    let updated = session
        .views_update(
            &SlackApiViewsUpdateRequest::new(modal("Rerun (updated)"))
                .with_view_id(view_id.clone()),
        )
        .await
        .expect("views.update");
    assert_eq!(updated.view.state_params.id, view_id);
    fake.next_call("views.update").await;

    // The submission: as Slack sends it, deserializable by slack-morphism.
    let payload = fake.view_submission_payload(
        "U_ALICE",
        &call.params["view"],
        &[
            (
                "args",
                ViewValue::Text("--date=2024-01-01\n--dry-run".into()),
            ),
            ("args_mode", ViewValue::Option("replace".into())),
        ],
    );
    let values = &payload["view"]["state"]["values"];
    assert_eq!(
        values["args"]["args"],
        json!({"type": "plain_text_input", "value": "--date=2024-01-01\n--dry-run"})
    );
    assert_eq!(
        values["args_mode"]["args_mode"]["selected_option"]["value"],
        "replace"
    );
    assert_eq!(
        values["reason"]["reason"]["value"], "because",
        "untouched inputs keep their initial value"
    );
    assert_eq!(payload["view"]["id"], json!(view_id.to_string()));
    assert_eq!(
        payload["view"]["title"]["text"], "Rerun (updated)",
        "the view as it now stands"
    );
    match serde_json::from_value::<SlackInteractionEvent>(payload).expect("slack-morphism reads it")
    {
        SlackInteractionEvent::ViewSubmission(ev) => {
            assert_eq!(ev.user.id.to_string(), "U_ALICE");
            let SlackView::Modal(m) = ev.view.view else {
                panic!("a modal")
            };
            assert_eq!(
                m.private_metadata.as_deref(),
                Some("{\"alert\":\"job-uid-1\"}")
            );
            let state = ev.view.state_params.state.expect("state");
            let mode = &state.values[&"args_mode".into()][&"args_mode".into()];
            assert_eq!(mode.selected_option.as_ref().unwrap().value, "replace");
        }
        other => panic!("expected a view submission, got {other:?}"),
    }
    let msg = panics(|| {
        fake.view_submission_payload(
            "U_ALICE",
            &call.params["view"],
            &[("args_mode", ViewValue::Option("merge".into()))],
        );
    });
    assert!(msg.contains("no option \"merge\""), "{msg}");
    let msg = panics(|| {
        fake.view_submission_payload(
            "U_ALICE",
            &call.params["view"],
            &[("ticket", ViewValue::Text("T-1".into()))],
        );
    });
    assert!(msg.contains("no input block \"ticket\""), "{msg}");

    // Input blocks need a submit button; views.publish takes a home view.
    let no_submit = SlackView::Modal(SlackModalView::new(
        pt!("No submit"),
        vec![input(
            "reason",
            "Reason",
            SlackBlockPlainTextInputElement::new()
                .with_action_id("reason".into())
                .into(),
        )],
    ));
    let t = fake.trigger_id();
    assert_eq!(
        api_error(
            session
                .views_open(&SlackApiViewsOpenRequest::new(t.into(), no_submit))
                .await
                .unwrap_err()
        )
        .code,
        "invalid_arguments"
    );
    assert_eq!(fake.take_violations().len(), 1);
    let home = SlackView::Home(SlackHomeView::new(vec![
        SlackSectionBlock::new().with_text(md!("home")).into(),
    ]));
    session
        .views_publish(&SlackApiViewsPublishRequest::new("U_ALICE".into(), home))
        .await
        .expect("views.publish");

    fake.assert_all_taken();
    fake.assert_no_violations();
}

#[tokio::test]
async fn payloads_for_the_bot_are_what_slack_morphism_reads() {
    let fake = FakeSlack::start(SECRET).await;
    let client = client(&fake);
    let token = bot_token();
    let session = client.open_session(&token);
    fake.add_user("U_ALICE", "alice");

    // Signatures: accepted by slack-morphism's verifier, rejected when anything differs.
    let verifier = SlackEventSignatureVerifier::new(&SlackSigningSecret::new(SECRET.into()));
    let ts = chrono::Utc::now().timestamp();
    let body = "payload=%7B%7D";
    let sig = fake.sign(ts, body);
    assert!(sig.starts_with("v0=") && sig.len() == 3 + 64, "{sig}");
    verifier
        .verify(&sig, body, &ts.to_string())
        .expect("valid signature");
    assert!(
        verifier
            .verify(&sig, "payload=%7B%7D ", &ts.to_string())
            .is_err()
    );
    assert!(verifier.verify(&sig, body, &(ts + 1).to_string()).is_err());
    let other = FakeSlack::start("another-secret").await;
    assert!(
        verifier
            .verify(&other.sign(ts, body), body, &ts.to_string())
            .is_err()
    );

    // A click.
    let mut req = post_req("C_ALERTS", "alert", alert_blocks());
    req.thread_ts = None;
    session.chat_post_message(&req).await.unwrap();
    let alert = fake.next_message().await;
    let payload = fake.block_action_payload("U_ALICE", &alert, "rerun");
    let response_url = payload["response_url"].as_str().unwrap().to_string();
    let form = FakeSlack::interaction_form(&payload);
    assert!(form.starts_with("payload=%7B"), "{form}");
    let decoded: Vec<(String, String)> = serde_urlencoded::from_str(&form).unwrap();
    let event: SlackInteractionEvent =
        serde_json::from_str(&decoded[0].1).expect("slack-morphism reads the click");
    match event {
        SlackInteractionEvent::BlockActions(ev) => {
            let user = ev.user.expect("user");
            assert_eq!(
                (user.id.to_string(), user.username.as_deref()),
                ("U_ALICE".to_string(), Some("alice"))
            );
            let action = &ev.actions.expect("actions")[0];
            assert_eq!(action.action_id.to_string(), "rerun");
            assert_eq!(action.value.as_deref(), Some("job-uid-1"));
            assert!(action.block_id.is_some());
            match ev.container {
                SlackInteractionActionContainer::Message(m) => {
                    assert_eq!(m.message_ts.to_string(), alert.ts);
                    assert_eq!(
                        m.channel_id.map(|c| c.to_string()).as_deref(),
                        Some("C_ALERTS")
                    );
                }
                other => panic!("expected a message container, got {other:?}"),
            }
            let message = ev.message.expect("the clicked message");
            assert_eq!(message.origin.ts.to_string(), alert.ts);
            assert_eq!(message.content.blocks.map(|b| b.len()), Some(5));
            assert_eq!(
                ev.channel.map(|c| c.id.to_string()).as_deref(),
                Some("C_ALERTS")
            );
        }
        other => panic!("expected block actions, got {other:?}"),
    }

    // The response_url it carries takes the bot's answer (here via slack-morphism).
    client
        .respond_to_event(
            &SlackResponseUrl::new(response_url.parse().unwrap()),
            &SlackApiPostWebhookMessageRequest::new(
                SlackMessageContent::new().with_text("on it".into()),
            )
            .with_replace_original(false),
        )
        .await
        .expect("response_url post");
    let answer = fake.next_response().await;
    assert_eq!(answer.url, response_url);
    assert_eq!(answer.body["text"], "on it");
    assert_eq!(answer.render(), "on it");
    // …at most five times.
    for _ in 0..4 {
        client
            .respond_to_event(
                &SlackResponseUrl::new(response_url.parse().unwrap()),
                &SlackApiPostWebhookMessageRequest::new(
                    SlackMessageContent::new().with_text("again".into()),
                ),
            )
            .await
            .unwrap();
        fake.next_response().await;
    }
    let sixth = client
        .respond_to_event(
            &SlackResponseUrl::new(response_url.parse().unwrap()),
            &SlackApiPostWebhookMessageRequest::new(
                SlackMessageContent::new().with_text("sixth".into()),
            ),
        )
        .await;
    assert!(sixth.is_err());
    assert_eq!(fake.take_violations().len(), 1);

    // A click on an ephemeral message carries no message, as in Slack.
    let eph = SlackApiChatPostEphemeralRequest::new(
        "C_ALERTS".into(),
        "U_ALICE".into(),
        SlackMessageContent::new()
            .with_text("confirm?".into())
            .with_blocks(vec![
                SlackActionsBlock::new(vec![button("hold_confirm", "Hold", "h1")]).into(),
            ]),
    );
    session.chat_post_ephemeral(&eph).await.unwrap();
    let e = fake.next_ephemeral().await;
    let p = fake.block_action_payload("U_ALICE", &e, "hold_confirm");
    assert_eq!(p["container"]["is_ephemeral"], true);
    assert!(p.get("message").is_none());
    serde_json::from_value::<SlackInteractionEvent>(p).expect("slack-morphism reads it");

    // A slash command.
    let form = fake.slash_command_form(
        "U_ALICE",
        "C_ALERTS",
        "/rerun",
        "billing-sync --arg --date=2024-01-01 & <more>",
    );
    let cmd: SlackCommandEvent =
        serde_urlencoded::from_str(&form).expect("slack-morphism reads the command");
    assert_eq!(cmd.command.to_string(), "/rerun");
    assert_eq!(cmd.user_id.to_string(), "U_ALICE");
    assert_eq!(cmd.channel_id.to_string(), "C_ALERTS");
    assert_eq!(
        cmd.text.as_deref(),
        Some("billing-sync --arg --date=2024-01-01 & <more>")
    );
    assert!(
        cmd.response_url
            .0
            .as_str()
            .starts_with(&format!("http://{}/response/", fake.addr()))
    );
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(&form).unwrap();
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    for required in [
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "response_url",
        "trigger_id",
    ] {
        assert!(
            names.contains(&required),
            "{required} missing from {names:?}"
        );
    }

    fake.assert_all_taken();
    fake.assert_no_violations();
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let guard = states.read().await;
    let seen = guard
        .get_user_state::<tokio::sync::mpsc::UnboundedSender<SlackInteractionEvent>>()
        .expect("state");
    seen.send(event).expect("test listens");
    Ok(())
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SlackHyperClient>,
    _states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    Ok(SlackCommandEventResponse::new(
        SlackMessageContent::new().with_text(format!("got {}", event.text.unwrap_or_default())),
    )
    .with_response_type(SlackMessageResponseType::Ephemeral))
}

fn on_error(
    err: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<SlackHyperClient>,
    _states: SlackClientEventsUserState,
) -> axum::http::StatusCode {
    panic!("Socket Mode error: {err}");
}

#[tokio::test]
async fn socket_mode_over_ws() {
    let fake = FakeSlack::start(SECRET).await;
    let client = client(&fake);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<SlackInteractionEvent>();
    let env = Arc::new(
        SlackClientEventsListenerEnvironment::new(client.clone())
            .with_error_handler(on_error)
            .with_user_state(tx),
    );
    let callbacks = SlackSocketModeListenerCallbacks::new()
        .with_interaction_events(on_interaction)
        .with_command_events(on_command);
    // The bot's configuration: the default (two connections, the second after 5 s).
    let listener =
        SlackClientSocketModeListener::new(&SlackClientSocketModeConfig::new(), env, callbacks);
    listener
        .listen_for(&SlackApiToken::new(APP_TOKEN.into()))
        .await
        .unwrap();
    listener.start().await;

    // A click arrives over the socket and is acked.
    let token = bot_token();
    let session = client.open_session(&token);
    session
        .chat_post_message(&post_req("C_ALERTS", "alert", alert_blocks()))
        .await
        .unwrap();
    let alert = fake.next_message().await;
    let click = fake.block_action_payload("U_ALICE", &alert, "hold");
    let ack = fake.socket_send("interactive", click).await;
    let envelope_id = ack["envelope_id"]
        .as_str()
        .expect("envelope id")
        .to_string();
    assert_eq!(
        ack,
        json!({"envelope_id": envelope_id}),
        "a bare ack for block actions"
    );
    assert_eq!(fake.socket_connections(), 1);
    assert_eq!(fake.attempts("apps.connections.open"), 1);
    assert!(
        fake.calls("apps.connections.open")[0].response["url"]
            .as_str()
            .unwrap()
            .starts_with("ws://127.0.0.1:")
    );
    let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("callback ran")
        .unwrap();
    let SlackInteractionEvent::BlockActions(ev) = event else {
        panic!("block actions")
    };
    assert_eq!(ev.actions.unwrap()[0].action_id.to_string(), "hold");

    // A slash command's ack carries the reply.
    let cmd = fake.slash_command_payload("U_ALICE", "C_ALERTS", "/rerun", "help");
    let ack = fake.socket_send("slash_commands", cmd).await;
    assert_eq!(ack["payload"]["text"], "got help", "{ack}");
    assert_eq!(ack["payload"]["response_type"], "ephemeral", "{ack}");
    assert_eq!(fake.socket_acks().len(), 2);

    // Slack asks for a reconnect; slack-morphism opens a new connection.
    fake.socket_disconnect_all();
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.attempts("apps.connections.open") < 2 || fake.socket_connections() == 0 {
        assert!(Instant::now() < deadline, "no reconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ack = fake
        .socket_send(
            "slash_commands",
            fake.slash_command_payload("U_ALICE", "C_ALERTS", "/rerun", "again"),
        )
        .await;
    assert_eq!(ack["payload"]["text"], "got again");

    listener.shutdown().await;
    fake.assert_all_taken();
    fake.assert_no_violations();
}

#[tokio::test]
async fn the_rate_limiter_answers_429_with_retry_after_as_slack_does() {
    use crate::support::slack::RateLimits;
    let fake = FakeSlack::start(SECRET).await;
    let session_client = client(&fake);
    let token = bot_token();
    let session = session_client.open_session(&token);
    // Refills slow enough that nothing comes back during the test.
    fake.enforce_rate_limits(RateLimits {
        post_burst: 2,
        post_every: Duration::from_secs(60),
        update_burst: 1,
        update_every: Duration::from_secs(60),
    });

    // Per channel: the burst goes through, the next is refused.
    let first = session
        .chat_post_message(&post_req("C_ALERTS", "one", vec![]))
        .await
        .expect("within the burst");
    session
        .chat_post_message(&post_req("C_ALERTS", "two", vec![]))
        .await
        .expect("within the burst");
    match session
        .chat_post_message(&post_req("C_ALERTS", "three", vec![]))
        .await
    {
        Err(SlackClientError::RateLimitError(e)) => {
            assert_eq!(e.retry_after, Some(Duration::from_secs(60)));
            assert_eq!(e.code.as_deref(), Some("ratelimited"));
        }
        other => panic!("expected a rate limit error, got {other:?}"),
    }
    let refused = fake.attempt_log("chat.postMessage").pop().unwrap();
    assert_eq!(
        (refused.status, refused.error()),
        (429, Some("ratelimited"))
    );
    // Another channel has its own budget; a reply in a thread counts against it.
    let mut reply = post_req("C_OTHER", "in a thread", vec![]);
    reply.thread_ts = Some("1700000000.000100".into());
    session
        .chat_post_message(&reply)
        .await
        .expect("another channel");
    session
        .chat_post_message(&post_req("C_OTHER", "top", vec![]))
        .await
        .expect("another channel");
    assert!(matches!(
        session
            .chat_post_message(&post_req("C_OTHER", "too many", vec![]))
            .await,
        Err(SlackClientError::RateLimitError(_))
    ));

    // chat.update: one budget for the workspace.
    let update = |text: &str| {
        SlackApiChatUpdateRequest::new(
            first.channel.clone(),
            SlackMessageContent::new().with_text(text.into()),
            first.ts.clone(),
        )
    };
    session
        .chat_update(&update("edited"))
        .await
        .expect("within the burst");
    assert!(matches!(
        session.chat_update(&update("again")).await,
        Err(SlackClientError::RateLimitError(e)) if e.retry_after == Some(Duration::from_secs(60))
    ));

    assert_eq!(fake.attempts("chat.postMessage"), 6);
    assert_eq!(fake.rate_limited("chat.postMessage"), 2);
    assert_eq!(fake.throttled("chat.postMessage"), 2);
    assert_eq!(fake.rate_limited("chat.update"), 1);
    assert_eq!(fake.top_level_posts("C_ALERTS"), 2);
    assert_eq!(fake.top_level_posts("C_OTHER"), 1);
    // Other methods are not limited.
    session.auth_test().await.expect("not limited");
    for _ in 0..4 {
        fake.next_message().await;
    }
    fake.next_update().await;
    fake.assert_all_taken();
    fake.assert_no_violations();
}
