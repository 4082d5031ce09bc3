//! The simulated Teams (`rerun_sim::teams`) held against Microsoft's own code,
//! and its rules checked one by one: if these pass, the bot's Teams tests
//! exercise what the Bot Framework would send, accept and refuse.
//!
//! `fake_teams_conformance_botbuilder_python` runs `tests/conformance/botbuilder_check.py`
//! (botframework-connector 4.17 from PyPI, installed by `.ci/run`): its
//! `JwtTokenValidation` must accept the fake's tokens and refuse every
//! [`Forgery`], and its `ConnectorClient` + MSAL must get a token from the
//! fake's token endpoint and create, reply to and update messages.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rerun_sim::teams::{ADAPTIVE_CARD, FakeTeams, Forgery, Kind};
use serde_json::{Value, json};

const APP_ID: &str = "6f1c2b9e-1111-4a2b-9c3d-0123456789ab";
const PASSWORD: &str = "fake-teams-selftest-secret";
const TENANT: &str = "3c1e5f0a-7d2b-4e8f-9a61-b2c4d6e8f0a1";

async fn start() -> FakeTeams {
    FakeTeams::start(APP_ID, PASSWORD, TENANT).await
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn token(fake: &FakeTeams) -> String {
    let res = http()
        .post(fake.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", APP_ID),
            ("client_secret", PASSWORD),
            ("scope", "https://api.botframework.com/.default"),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("token json");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Percent-encodes everything but ASCII alphanumerics, as msrest's `quote(safe='')`.
fn enc(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn card(text: &str) -> Value {
    json!({
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [{"type": "TextBlock", "text": text, "wrap": true}],
        "actions": [
            {"type": "Action.Execute", "title": "Approve", "verb": "approve", "data": {"request": "r1"}},
            {"type": "Action.Submit", "title": "Rerun", "data": {"msteams": {"type": "task/fetch"}, "verb": "rerun", "job": "j1"}},
        ],
    })
}

fn card_activity(text: &str) -> Value {
    json!({"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "content": card(text)}]})
}

/// `(status, Retry-After, body)` of a Connector call.
async fn call(
    fake: &FakeTeams,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let url = format!("{}{path}", fake.service_url());
    let mut req = http().request(method, url).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("connector call");
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let text = res.text().await.unwrap_or_default();
    (
        status,
        retry,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn new_thread(fake: &FakeTeams, token: &str, channel: &str) -> (String, String) {
    let (status, _, body) = call(
        fake,
        reqwest::Method::POST,
        "v3/conversations",
        Some(token),
        &json!({"isGroup": true, "channelData": {"channel": {"id": channel}}, "activity": card_activity("alert")}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().expect("id").to_string(),
        body["activityId"].as_str().expect("activityId").to_string(),
    )
}

// ----- Microsoft's code -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_teams_conformance_botbuilder_python() {
    let fake = start().await;
    let channel = fake.channel("alerts");
    let thread = fake.channel("conformance-thread");

    let message = fake.message_activity("alice", &thread, "rerun billing-sync");
    let personal = fake.message_activity("bob", &fake.personal_chat("bob"), "help");
    let mut cases = vec![
        json!({"name": "valid", "activity": message, "auth_header": fake.auth_header(&message, None)}),
        json!({"name": "valid_personal", "activity": personal, "auth_header": fake.auth_header(&personal, None)}),
    ];
    for f in Forgery::ALL {
        let name = format!("{f:?}");
        cases.push(json!({"name": name, "activity": message, "auth_header": fake.auth_header(&message, Some(&f))}));
    }
    let cfg = json!({
        "metadata_url": fake.openid_metadata_url(),
        "service_url": fake.service_url(),
        "login_url": fake.login_url(),
        "app_id": APP_ID,
        "password": PASSWORD,
        "tenant": TENANT,
        "channel": channel,
        "cases": cases,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg_path = dir.path().join("config.json");
    std::fs::write(&cfg_path, cfg.to_string()).expect("write config");

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/botbuilder_check.py"
    );
    let started = Instant::now();
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&cfg_path)
        .output()
        .await
        .expect("python3 on PATH (see tests/conformance/requirements.txt)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "botbuilder_check.py failed ({}); pip install -r tests/conformance/requirements.txt?\n{stderr}",
        out.status
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "report is not JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    eprintln!("botbuilder_check.py report:\n{report:#}");
    assert!(
        report.get("tokens_error").is_none() && report.get("connector_error").is_none(),
        "botbuilder_check.py broke:\n{report:#}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );

    // (a) JwtTokenValidation
    let tokens = &report["tokens"];
    for name in ["valid", "valid_personal"] {
        assert_eq!(
            tokens[name]["accepted"], true,
            "{name} refused: {:#}",
            tokens[name]
        );
    }
    assert_eq!(tokens["valid"]["claims"]["aud"], APP_ID);
    assert_eq!(
        tokens["valid"]["claims"]["serviceurl"],
        fake.service_url().as_str()
    );
    assert_eq!(
        tokens["valid"]["claims"]["iss"],
        "https://api.botframework.com"
    );
    for f in Forgery::ALL {
        let name = format!("{f:?}");
        assert_eq!(
            tokens[&name]["accepted"], false,
            "botframework-connector accepted the forgery {name}: {:#}",
            tokens[&name]
        );
    }
    assert!(fake.metadata_fetches() >= 1 && fake.jwks_fetches() >= 1);

    // (b) ConnectorClient + MSAL
    let c = &report["connector"];
    let root = c["create"]["activity_id"]
        .as_str()
        .expect("activity id")
        .to_string();
    let conv = c["create"]["id"]
        .as_str()
        .expect("conversation id")
        .to_string();
    assert_eq!(conv, FakeTeams::thread(&channel, &root));
    let post = fake.next_message().await;
    assert_eq!(
        (post.kind, post.activity_id.as_str()),
        (Kind::Post, root.as_str())
    );
    assert_eq!(post.text, "conformance: a new thread");
    let reply = fake.next_message().await;
    assert_eq!(reply.kind, Kind::Reply);
    assert_eq!(
        reply.activity_id,
        c["reply"]["id"].as_str().expect("reply id")
    );
    assert_eq!(
        (reply.conversation.as_str(), reply.root.as_deref()),
        (conv.as_str(), Some(root.as_str()))
    );
    let reply2 = fake.next_message().await;
    assert_eq!(reply2.kind, Kind::Reply);
    assert_eq!(reply2.reply_to.as_deref(), Some(root.as_str()));
    assert_eq!(reply2.root.as_deref(), Some(root.as_str()));
    let update = fake.next_update_of(&root).await;
    assert_eq!(c["update"]["id"], root.as_str());
    assert!(
        update.render().contains("conformance: updated"),
        "{}",
        update.render()
    );
    assert!(update.has_button("approve"));
    assert_eq!(c["update_unknown"]["status"], 404, "{c:#}");
    assert_eq!(c["update_unknown"]["code"], "ActivityNotFound");
    assert_eq!(c["wrong_secret"]["refused"], true, "{c:#}");
    assert!(
        c["wrong_secret"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("invalid_client"),
        "{c:#}"
    );
    // MSAL cached the token over four calls; the wrong secret asked once.
    assert_eq!(fake.token_requests(), 2, "{:#}", c["login_requests"]);
    fake.finish();
}

// ----- the fake's own rules ---------------------------------------------------

#[tokio::test]
async fn fake_teams_token_endpoint() {
    let fake = start().await;
    let ask = |tenant: &str, id: &str, secret: &str, scope: &str| {
        let url = format!("{}/{tenant}/oauth2/v2.0/token", fake.login_url());
        let form = vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".to_string(), id.to_string()),
            ("client_secret".to_string(), secret.to_string()),
            ("scope".to_string(), scope.to_string()),
        ];
        async move {
            let res = http().post(url).form(&form).send().await.expect("token");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.expect("json"))
        }
    };
    let scope = "https://api.botframework.com/.default";
    let (s, b) = ask(TENANT, APP_ID, PASSWORD, scope).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["expires_in"], 3599);
    assert_eq!(b["ext_expires_in"], 3599);
    let (s, b) = ask(TENANT, APP_ID, "nope", scope).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215:")
    );
    let (s, b) = ask(TENANT, "someone-else", PASSWORD, scope).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("unauthorized_client")));
    let (s, b) = ask(
        TENANT,
        APP_ID,
        PASSWORD,
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_scope")));
    let (s, b) = ask("other-tenant", APP_ID, PASSWORD, scope).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")));
    assert_eq!(fake.token_requests(), 5);
}

#[tokio::test]
async fn fake_teams_bearer_check() {
    let fake = start().await;
    let channel = fake.channel("alerts");
    let body = json!({"isGroup": true, "channelData": {"channel": {"id": channel}}, "activity": card_activity("x")});
    let (s, _, b) = call(
        &fake,
        reqwest::Method::POST,
        "v3/conversations",
        None,
        &body,
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(
        b["message"],
        "Authorization has been denied for this request."
    );
    let (s, _, _) = call(
        &fake,
        reqwest::Method::POST,
        "v3/conversations",
        Some("made-up"),
        &body,
    )
    .await;
    assert_eq!(s, 401);
    let t = token(&fake).await;
    let (s, _, _) = call(
        &fake,
        reqwest::Method::POST,
        "v3/conversations",
        Some(&t),
        &body,
    )
    .await;
    assert_eq!(s, 201);
    fake.expire_tokens();
    let (s, _, _) = call(
        &fake,
        reqwest::Method::POST,
        "v3/conversations",
        Some(&t),
        &body,
    )
    .await;
    assert_eq!(s, 401);
    let _ = fake.next_message().await;
    fake.finish();
}

#[tokio::test]
async fn fake_teams_percent_decoded_ids_and_conversations() {
    let fake = start().await;
    let channel = fake.channel("alerts");
    let t = token(&fake).await;
    let (conv, root) = new_thread(&fake, &t, &channel).await;
    assert!(
        conv.starts_with("19:") && conv.ends_with(&format!(";messageid={root}")),
        "{conv}"
    );
    assert!(
        root.len() == 13 && root.chars().all(|c| c.is_ascii_digit()),
        "{root}"
    );
    let post = fake.next_message().await;
    assert_eq!(post.kind, Kind::Post);
    assert_eq!(post.channel.as_deref(), Some(channel.as_str()));
    assert_eq!(post.render(), "alert\n[Approve](approve) [Rerun](rerun)");

    // A reply into the thread, its id percent-encoded as the SDKs do.
    let path = format!("v3/conversations/{}/activities", enc(&conv));
    let (s, _, b) = call(
        &fake,
        reqwest::Method::POST,
        &path,
        Some(&t),
        &json!({"type": "message", "text": "hi"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let reply = fake.next_message().await;
    assert_eq!(
        (reply.kind, reply.root.as_deref()),
        (Kind::Reply, Some(root.as_str()))
    );
    assert_eq!(reply.activity_id, b["id"].as_str().unwrap());
    assert!(reply.activity_id > root);

    // An update, in place.
    let path = format!("v3/conversations/{}/activities/{}", enc(&conv), enc(&root));
    let (s, _, b) = call(
        &fake,
        reqwest::Method::PUT,
        &path,
        Some(&t),
        &card_activity("resolved"),
    )
    .await;
    assert_eq!((s, b["id"].as_str()), (200, Some(root.as_str())));
    let updates = fake.updates_of(&root);
    assert_eq!(updates.len(), 1);
    assert!(updates[0].render().starts_with("resolved"));
    assert!(
        fake.current(&root)
            .unwrap()
            .render()
            .starts_with("resolved")
    );

    // Unknown activity, thread and conversation.
    let path = format!("v3/conversations/{}/activities/1700000009999", enc(&conv));
    let (s, _, _) = call(
        &fake,
        reqwest::Method::PUT,
        &path,
        Some(&t),
        &card_activity("x"),
    )
    .await;
    assert_eq!(s, 404);
    let path = format!(
        "v3/conversations/{}/activities",
        enc(&FakeTeams::thread(&channel, "1700000009999"))
    );
    let (s, _, b) = call(
        &fake,
        reqwest::Method::POST,
        &path,
        Some(&t),
        &json!({"type": "message", "text": "x"}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (404, Some("ConversationNotFound"))
    );
    let path = format!(
        "v3/conversations/{}/activities",
        enc("19:nothere@thread.tacv2")
    );
    let (s, _, b) = call(
        &fake,
        reqwest::Method::POST,
        &path,
        Some(&t),
        &json!({"type": "message", "text": "x"}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (404, Some("ConversationNotFound"))
    );

    // 1:1: created from the user's ids, then sent to.
    let alice = fake.user("alice");
    let (s, _, b) = call(
        &fake,
        reqwest::Method::POST,
        "v3/conversations",
        Some(&t),
        &json!({"isGroup": false, "members": [{"id": alice.id}], "tenantId": TENANT}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["id"], fake.personal_chat("alice").as_str());
    let path = format!(
        "v3/conversations/{}/activities",
        enc(b["id"].as_str().unwrap())
    );
    let (s, _, _) = call(
        &fake,
        reqwest::Method::POST,
        &path,
        Some(&t),
        &json!({"type": "message", "text": "only you"}),
    )
    .await;
    assert_eq!(s, 201);
    let dm = fake.next_message().await;
    assert_eq!((dm.kind, dm.text.as_str()), (Kind::Personal, "only you"));
    let (s, _, _) = call(
        &fake,
        reqwest::Method::POST,
        "v3/conversations",
        Some(&t),
        &json!({"isGroup": false, "members": [{"id": alice.aad_object_id}]}),
    )
    .await;
    assert_eq!(s, 400, "a 1:1 needs the tenant");

    // Removed from the channel.
    fake.forbid_conversation(&channel);
    let path = format!("v3/conversations/{}/activities", enc(&conv));
    let (s, _, b) = call(
        &fake,
        reqwest::Method::POST,
        &path,
        Some(&t),
        &json!({"type": "message", "text": "x"}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("BotNotInConversationRoster"))
    );
    fake.finish();
}

#[tokio::test]
async fn fake_teams_fail_next_knob() {
    let fake = start().await;
    let channel = fake.channel("alerts");
    let t = token(&fake).await;
    fake.fail_next(1, 429, Some(3));
    fake.fail_next(1, 503, None);
    let body = json!({"isGroup": true, "channelData": {"channel": {"id": channel}}, "activity": card_activity("x")});
    let (s, retry, _) = call(
        &fake,
        reqwest::Method::POST,
        "v3/conversations",
        Some(&t),
        &body,
    )
    .await;
    assert_eq!((s, retry.as_deref()), (429, Some("3")));
    let (s, _, _) = call(
        &fake,
        reqwest::Method::POST,
        "v3/conversations",
        Some(&t),
        &body,
    )
    .await;
    assert_eq!(s, 503);
    let (s, _, _) = call(
        &fake,
        reqwest::Method::POST,
        "v3/conversations",
        Some(&t),
        &body,
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(fake.messages().len(), 1, "failed attempts are not messages");
    let _ = fake.next_message().await;
    fake.finish();
}

#[tokio::test]
async fn fake_teams_per_thread_limits() {
    let fake = start().await;
    let channel = fake.channel("alerts");
    let t = token(&fake).await;
    let (conv, _) = new_thread(&fake, &t, &channel).await;
    let (other, _) = new_thread(&fake, &t, &channel).await;
    let path = format!("v3/conversations/{}/activities", enc(&conv));
    let msg = json!({"type": "message", "text": "tick"});
    let start_at = Instant::now();
    let mut sent = 0;
    // 7 a second: sent as fast as they go, the first 7 pass and a later one
    // is refused with Retry-After 1 (on a loaded machine the second may be
    // over before the 8th, so a few more may pass first).
    let (retry, b) = loop {
        let (s, retry, b) = call(&fake, reqwest::Method::POST, &path, Some(&t), &msg).await;
        if s == 429 {
            break (retry, b);
        }
        assert_eq!(s, 201);
        sent += 1;
        assert!(sent < 30, "never limited");
    };
    assert!(sent >= 7, "only {sent} passed");
    assert_eq!(retry.as_deref(), Some("1"), "{b}");
    // …per thread.
    let other_path = format!("v3/conversations/{}/activities", enc(&other));
    let (s, _, _) = call(&fake, reqwest::Method::POST, &other_path, Some(&t), &msg).await;
    assert_eq!(s, 201);
    // 60 in 30 s: keep to 7 a second until the 61st.
    let throttled = loop {
        // The last round is more than a second old.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let mut limited = None;
        for _ in 0..7 {
            let (s, retry, _) = call(&fake, reqwest::Method::POST, &path, Some(&t), &msg).await;
            if s == 429 {
                limited = retry;
                break;
            }
            assert_eq!(s, 201);
            sent += 1;
        }
        if let Some(r) = limited {
            break r;
        }
    };
    assert_eq!(sent, 60, "the 61st send in 30 s is refused");
    let secs: u64 = throttled.parse().expect("Retry-After seconds");
    assert!(
        secs > 1 && secs <= 30 - start_at.elapsed().as_secs() + 1,
        "Retry-After {secs}"
    );
    assert!(fake.throttled() >= 2);
    fake.take_violations();
}

#[tokio::test]
async fn fake_teams_100kb_limit_and_card_rules() {
    let fake = start().await;
    let channel = fake.channel("alerts");
    let t = token(&fake).await;
    let (conv, _) = new_thread(&fake, &t, &channel).await;
    let _ = fake.next_message().await;
    let path = format!("v3/conversations/{}/activities", enc(&conv));
    let big = json!({"type": "message", "text": "x".repeat(101 * 1024)});
    let (s, _, b) = call(&fake, reqwest::Method::POST, &path, Some(&t), &big).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (413, Some("MessageSizeTooBig"))
    );
    let v = fake.take_violations();
    assert!(v.len() == 1 && v[0].error.contains("bytes"), "{v:?}");

    // Text and a card: Teams takes it (and splits it), a violation.
    let mut both = card_activity("card");
    both["text"] = json!("and text");
    let (s, _, _) = call(&fake, reqwest::Method::POST, &path, Some(&t), &both).await;
    assert_eq!(s, 201);
    let v = fake.take_violations();
    assert!(
        v.len() == 1 && v[0].error.contains("text and an attachment"),
        "{v:?}"
    );
    let _ = fake.next_message().await;

    // Not an Adaptive Card; a card newer than 1.5.
    let hero = json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.hero", "content": {}}]});
    let (s, _, _) = call(&fake, reqwest::Method::POST, &path, Some(&t), &hero).await;
    assert_eq!(s, 201);
    let mut new = card_activity("new");
    new["attachments"][0]["content"]["version"] = json!("1.6");
    let (s, _, _) = call(&fake, reqwest::Method::POST, &path, Some(&t), &new).await;
    assert_eq!(s, 201);
    let v = fake.take_violations();
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(
        v[0].error.contains("contentType") && v[1].error.contains("1.6"),
        "{v:?}"
    );
    let _ = fake.next_message().await;
    let _ = fake.next_message().await;

    // Empty: refused.
    let (s, _, _) = call(
        &fake,
        reqwest::Method::POST,
        &path,
        Some(&t),
        &json!({"type": "message"}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(fake.take_violations().len(), 1);
    fake.finish();
}

// ----- what Teams sends ---------------------------------------------------------

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(HeaderMap, Value)>>>);

/// A stand-in bot: records what arrives, answers invokes the way the contract says.
async fn stand_in_bot(
    State(seen): State<Seen>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let a: Value = serde_json::from_slice(&body).expect("activity JSON");
    seen.0.lock().unwrap().push((headers, a.clone()));
    let answer = match a["name"].as_str() {
        Some("adaptiveCard/action") => json!({
            "statusCode": 200,
            "type": ADAPTIVE_CARD,
            "value": {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": format!("{} by {}", a["value"]["action"]["verb"].as_str().unwrap(), a["from"]["name"].as_str().unwrap())}]},
        }),
        Some("task/fetch") => {
            json!({"task": {"type": "continue", "value": {"title": "Rerun", "card": {"contentType": ADAPTIVE_CARD, "content": {
                "type": "AdaptiveCard", "version": "1.5",
                "body": [
                    {"type": "Input.Text", "id": "reason", "label": "Reason"},
                    {"type": "Input.ChoiceSet", "id": "args_mode", "label": "Args", "value": "append", "style": "expanded",
                     "choices": [{"title": "Append", "value": "append"}, {"title": "Replace", "value": "replace"}]},
                    {"type": "Input.Text", "id": "ticket", "label": "Ticket"},
                ],
                "actions": [{"type": "Action.Submit", "title": "Request", "data": {"verb": "rerun_submit", "job": "j1"}}],
            }}}}})
        }
        Some("task/submit") => json!({"task": {"type": "message", "value": "Requested."}}),
        _ => return axum::http::StatusCode::CREATED.into_response(),
    };
    axum::Json(answer).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_teams_sends_signed_activities_as_teams_does() {
    let fake = start().await;
    let seen = Seen::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/api/messages", axum::routing::post(stand_in_bot))
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake.set_bot_endpoint(&format!("http://{addr}/api/messages"));

    // The JWKS, as a bot reads it.
    let meta: Value = http()
        .get(fake.openid_metadata_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], "https://api.botframework.com");
    assert_eq!(
        meta["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    let jwks: Value = http()
        .get(meta["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((fake.metadata_fetches(), fake.jwks_fetches()), (1, 1));
    let keys = jwks["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    let verify = |auth: &str| -> Result<Value, String> {
        let token = auth.strip_prefix("Bearer ").ok_or("not bearer")?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let key = keys
            .iter()
            .find(|k| Some(k["kid"].as_str().unwrap()) == header.kid.as_deref())
            .ok_or("unknown kid")?;
        if !key["endorsements"]
            .as_array()
            .unwrap()
            .contains(&json!("msteams"))
        {
            return Err("not endorsed for msteams".into());
        }
        let dk = DecodingKey::from_rsa_components(
            key["n"].as_str().unwrap(),
            key["e"].as_str().unwrap(),
        )
        .map_err(|e| e.to_string())?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[APP_ID]);
        v.set_issuer(&["https://api.botframework.com"]);
        v.validate_nbf = true;
        jsonwebtoken::decode::<Value>(token, &dk, &v)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    };

    // A message in a channel: a new thread mentioning the bot.
    let channel = fake.channel("alerts");
    let r = fake
        .send_message("alice", &channel, "rerun billing-sync")
        .await;
    assert_eq!(r.status, 201);
    let (headers, a) = seen.0.lock().unwrap().last().cloned().unwrap();
    let claims = verify(headers["authorization"].to_str().unwrap()).expect("valid token");
    assert_eq!(claims["serviceurl"], fake.service_url().as_str());
    assert_eq!(a["serviceUrl"], fake.service_url().as_str());
    let alice = fake.user("alice");
    assert_eq!(a["type"], "message");
    assert_eq!(a["channelId"], "msteams");
    assert_eq!(a["text"], "<at>rerun-bot</at> rerun billing-sync");
    assert_eq!(
        a["entities"][0],
        json!({"type": "mention", "mentioned": {"id": format!("28:{APP_ID}"), "name": "rerun-bot"}, "text": "<at>rerun-bot</at>"})
    );
    assert_eq!(
        a["from"],
        json!({"id": alice.id, "name": "Alice", "aadObjectId": alice.aad_object_id})
    );
    assert_eq!(a["recipient"]["id"], format!("28:{APP_ID}").as_str());
    assert_eq!(a["conversation"]["conversationType"], "channel");
    assert_eq!(a["conversation"]["tenantId"], TENANT);
    assert_eq!(
        a["conversation"]["id"],
        FakeTeams::thread(&channel, a["id"].as_str().unwrap()).as_str()
    );
    assert_eq!(a["channelData"]["channel"]["id"], channel.as_str());
    assert_eq!(a["channelData"]["team"]["id"], fake.team_id());
    assert_eq!(a["channelData"]["tenant"]["id"], TENANT);
    assert_eq!(alice.aad_object_id.len(), 36);
    assert!(alice.id.starts_with("29:"));
    assert_eq!(fake.user("alice"), alice, "users are stable");

    // 1:1 and group chat.
    fake.send_message("bob", &fake.personal_chat("bob"), "help")
        .await;
    let (_, a) = seen.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(a["conversation"]["conversationType"], "personal");
    assert_eq!(a["text"], "help");
    assert!(a["conversation"]["id"].as_str().unwrap().starts_with("a:"));
    fake.send_message("bob", &fake.group_chat("oncall"), "cronjobs")
        .await;
    let (_, a) = seen.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(a["conversation"]["conversationType"], "groupChat");
    assert_eq!(a["conversation"]["isGroup"], true);

    // Every forgery fails a careful validator.
    for f in Forgery::ALL {
        match fake.auth_header(&a, Some(&f)) {
            None => assert_eq!(f, Forgery::NoToken),
            Some(h) => {
                let mut claims = verify(&h);
                if let Ok(c) = &claims
                    && c["serviceurl"] != a["serviceUrl"]
                {
                    claims = Err("serviceurl".into());
                }
                assert!(claims.is_err(), "{f:?} passed: {claims:?}");
            }
        }
    }

    // The bot posts a card; alice clicks Approve; bob opens and submits the dialog.
    let t = token(&fake).await;
    let (conv, root) = new_thread(&fake, &t, &channel).await;
    let card_msg = fake.next_message().await;
    let r = fake.click("alice", &card_msg, "approve").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.card().map(rerun_sim::teams::render_card).as_deref(),
        Some("approve by Alice")
    );
    let (_, a) = seen.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (a["type"].as_str(), a["name"].as_str()),
        (Some("invoke"), Some("adaptiveCard/action"))
    );
    assert_eq!(a["replyToId"], root.as_str());
    assert_eq!(a["conversation"]["id"], conv.as_str());
    assert_eq!(
        a["value"],
        json!({"action": {"type": "Action.Execute", "title": "Approve", "verb": "approve", "data": {"request": "r1"}}, "trigger": "manual"})
    );
    let r = fake.click("bob", &card_msg, "rerun").await;
    let (_, a) = seen.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(a["name"], "task/fetch");
    assert_eq!(
        a["value"]["data"],
        json!({"msteams": {"type": "task/fetch"}, "verb": "rerun", "job": "j1"})
    );
    assert_eq!(a["value"]["context"]["theme"], "default");
    let dialog = r.dialog().expect("a dialog");
    assert_eq!(dialog.title, "Rerun");
    assert_eq!(dialog.inputs(), ["reason", "args_mode", "ticket"]);
    assert_eq!(
        dialog.render(),
        "Reason: [Input.Text](reason)\nArgs: (append|replace)(args_mode) = append\nTicket: [Input.Text](ticket)\n[Request](rerun_submit)"
    );
    let r = fake
        .submit_dialog("bob", &dialog, &[("reason", "flaky upstream")])
        .await;
    assert_eq!(r.text().as_deref(), Some("Requested."));
    let (_, a) = seen.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(a["name"], "task/submit");
    assert_eq!(
        a["value"]["data"],
        json!({"verb": "rerun_submit", "job": "j1", "reason": "flaky upstream", "args_mode": "append"})
    );
    assert_eq!(
        a["from"]["aadObjectId"],
        fake.user("bob").aad_object_id.as_str()
    );
    // Three cards so far: the post, the invoke answer, the dialog.
    assert_eq!(fake.cards().len(), 3);

    // A key rotation: the new kid is in the JWKS, the old is not.
    let old = fake.kid();
    let new = fake.rotate_key().await;
    assert_ne!(old, new);
    let jwks: Value = http()
        .get(meta["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&new.as_str()) && !kids.contains(&old.as_str()),
        "{kids:?}"
    );
    assert_eq!(fake.jwks_fetches(), 2);
    fake.finish();
}
