//! Reruns with four-eyes approval, through the real kube-rs and slack-morphism
//! clients: alert → form → approval card → approve by someone else → one Job.

use std::time::Duration;

use serde_json::{Value, json};

use crate::assert_message_snapshot;
use crate::support::slack::ViewValue;
use crate::support::tester::CHANNEL;
use crate::support::{CronJobFixture, Failure, Message, Resource, Tester};

const AUDIT_TOKEN: &str = "audit-secret";

fn billing_sync() -> CronJobFixture {
    CronJobFixture::new("billing-sync")
        .schedule("0 3 * * *")
        .owner("U_OWNER")
        .backoff_limit(2)
        .args(&["sync --day=yesterday"])
        .env("DB_HOST", "db.internal")
}

fn text(v: &str) -> ViewValue {
    ViewValue::Text(v.to_string())
}

/// Jobs the bot created (the rerun label), in the fake apiserver.
fn reruns(t: &Tester) -> Vec<Value> {
    t.kube
        .list(Resource::Jobs, None)
        .into_iter()
        .filter(|j| j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot")
        .collect()
}

async fn audit_actions(t: &Tester) -> Vec<String> {
    rerun_bot::audit_client::fetch(&t.url(""), AUDIT_TOKEN, Some("1h"), None)
        .await
        .expect("audit endpoint answers")
        .into_iter()
        .map(|e| e.event.action)
        .collect()
}

/// `billing-sync` (as `fixture`) exists, and `user` asks by command; returns the card.
async fn ask_by_command(t: &Tester, fixture: CronJobFixture, user: &str, text: &str) -> Message {
    t.kube.apply_cronjob(fixture.build());
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.command(user, CHANNEL, "/rerun", text).await;
    t.slack.next_message().await
}

/// A failed Job's alert, and the form its Rerun button opened for `user`.
async fn alert_and_form(t: &Tester, user: &str, button: &str) -> (Message, Value) {
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job(
        "billing-sync",
        Failure::backoff_limit().log("ERROR: db down\n"),
    )
    .await;
    let alert = t.slack.next_message().await;
    let answer = t.click(user, &alert, button).await;
    assert_eq!(answer.status, 200);
    let view = t.next_view().await;
    (alert, view)
}

/// Alice asks for a plain rerun from the alert; returns the alert and the card.
async fn requested(t: &Tester) -> (Message, Message) {
    let (alert, view) = alert_and_form(t, "U_ALICE", "rerun").await;
    assert_eq!(view["callback_id"], "rerun_reason");
    let answer = t
        .submit(
            "U_ALICE",
            &view,
            &[
                ("reason", text("db was down; fixed")),
                ("ticket", text("INC-42")),
            ],
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "", "the form closes");
    let card = t.slack.next_message().await;
    assert_eq!(
        card.thread_ts.as_deref(),
        Some(alert.ts.as_str()),
        "card in the alert's thread"
    );
    let updated = t.slack.next_update().await;
    assert_eq!(updated.ts, alert.ts);
    assert!(
        updated.render().contains("Rerun requested by <@U_ALICE>"),
        "{}",
        updated.render()
    );
    (alert, card)
}

#[tokio::test]
async fn rerun_button_then_approval_creates_exactly_one_job_and_reports_it() {
    let t = Tester::with_args(&["--audit-token", AUDIT_TOKEN]).await;
    let (alert, card) = requested(&t).await;
    let shown = card.render();
    for part in [
        "U_ALICE",
        "default/billing-sync",
        "db was down; fixed",
        "INC-42",
        "none",
    ] {
        assert!(shown.contains(part), "card lacks {part}:\n{shown}");
    }
    assert_eq!(card.buttons(), ["approve", "deny", "cancel"]);
    assert!(reruns(&t).is_empty(), "nothing before approval");

    t.click("U_BOB", &card, "approve").await;
    let approved = t.slack.next_update().await;
    assert_eq!(approved.ts, card.ts);
    assert!(
        approved.render().contains("Approved by <@U_BOB>"),
        "{}",
        approved.render()
    );
    assert!(approved.buttons().is_empty(), "no buttons once approved");
    let _alert_approved = t.slack.next_update().await;
    let created = t.slack.next_message().await;
    assert_eq!(created.thread_ts.as_deref(), Some(alert.ts.as_str()));
    assert_message_snapshot!("approval_card_approved", approved.render());
    let jobs = reruns(&t);
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    let name = job["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("billing-sync-rerun-"), "{name}");
    assert!(
        created.render().contains(&format!("Job `{name}` created")),
        "{}",
        created.render()
    );
    let a = &job["metadata"]["annotations"];
    assert_eq!(a["cronjob.kubernetes.io/instantiate"], "manual");
    assert_eq!(a["rerun-bot.io/requested-by"], "U_ALICE");
    assert_eq!(a["rerun-bot.io/approved-by"], "U_BOB");
    assert_eq!(a["rerun-bot.io/reason"], "db was down; fixed");
    assert_eq!(a["rerun-bot.io/ticket"], "INC-42");
    assert!(
        a["rerun-bot.io/source-job"]
            .as_str()
            .unwrap()
            .starts_with("billing-sync-")
    );
    let id = a["rerun-bot.io/request-id"].as_str().unwrap();
    assert!(name.ends_with(id) || name.ends_with(&id[..8]));
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["controller"].as_bool()),
        (Some("CronJob"), Some(true))
    );
    let cj = t
        .kube
        .get(Resource::CronJobs, "default", "billing-sync")
        .unwrap();
    assert_eq!(owner["uid"], cj["metadata"]["uid"]);
    assert_eq!(
        job["spec"]["template"]["spec"], cj["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        "pod template copied as is"
    );
    assert_eq!(job["spec"]["backoffLimit"], 2);
    let _card_created = t.slack.next_update().await;
    let _alert_created = t.slack.next_update().await;

    // Its outcome comes into the thread; no new top-level alert.
    t.kube.complete_job("default", name);
    let done = t.slack.next_message().await;
    assert_eq!(done.thread_ts.as_deref(), Some(alert.ts.as_str()));
    assert!(done.render().contains("succeeded"), "{}", done.render());
    let card_done = t.slack.next_update().await;
    assert!(
        card_done.render().contains("succeeded"),
        "{}",
        card_done.render()
    );
    let alert_done = t.slack.next_update().await;
    assert!(
        alert_done.render().contains("succeeded"),
        "{}",
        alert_done.render()
    );
    // The rerun's success ends the incident: the alert says so, the thread sums up.
    let recovered = t.slack.next_update().await;
    assert_eq!(recovered.ts, alert.ts);
    assert!(
        recovered.render().contains("recovered"),
        "{}",
        recovered.render()
    );
    let summary = t.slack.next_message().await;
    assert_eq!(summary.thread_ts.as_deref(), Some(alert.ts.as_str()));
    assert!(
        summary.render().contains("Recovered"),
        "{}",
        summary.render()
    );

    assert_eq!(
        audit_actions(&t).await,
        [
            "alert.posted",
            "rerun.requested",
            "rerun.approved",
            "rerun.created",
            "rerun.succeeded",
            "incident.recovered"
        ]
    );
    t.finish().await;
}

#[tokio::test]
async fn the_requester_and_people_not_allowed_cannot_approve() {
    let t = Tester::with_args(&["--approvers", "U_BOB,S_SRE", "--audit-token", AUDIT_TOKEN]).await;
    t.slack.add_usergroup("S_SRE", &["U_CAROL"]);
    let (_alert, card) = requested(&t).await;

    t.click("U_ALICE", &card, "approve").await;
    let own = t.slack.next_ephemeral().await;
    assert_eq!(own.user.as_deref(), Some("U_ALICE"));
    assert!(
        own.render().contains("someone else has to approve"),
        "{}",
        own.render()
    );

    t.click("U_EVE", &card, "approve").await;
    let eve = t.slack.next_ephemeral().await;
    assert!(eve.render().contains("not on the list"), "{}", eve.render());
    assert!(eve.render().contains("<@U_BOB>"), "{}", eve.render());

    t.click("U_EVE", &card, "cancel").await;
    let not_requester = t.slack.next_ephemeral().await;
    assert!(
        not_requester.render().contains("Only the requester"),
        "{}",
        not_requester.render()
    );
    t.slack.expect_quiet(Duration::from_millis(200)).await;
    assert!(reruns(&t).is_empty());

    // Carol is in the approvers' user group.
    t.click("U_CAROL", &card, "approve").await;
    let approved = t.slack.next_update().await;
    assert!(
        approved.render().contains("Approved by <@U_CAROL>"),
        "{}",
        approved.render()
    );
    t.slack.next_update().await; // alert
    t.slack.next_message().await; // "Job created"
    t.slack.next_update().await; // card
    t.slack.next_update().await; // alert
    assert_eq!(reruns(&t).len(), 1);
    let actions = audit_actions(&t).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "rerun.refused").count(),
        3,
        "{actions:?}"
    );
    t.finish().await;
}

#[tokio::test]
async fn double_clicks_concurrent_approvers_and_slack_retries_make_one_job() {
    let t = Tester::start().await;
    let (_alert, card) = requested(&t).await;
    let clicks = ["U_BOB", "U_CAROL", "U_BOB", "U_DAVE", "U_CAROL", "U_BOB"]
        .map(|user| t.click(user, &card, "approve"));
    for answer in futures::future::join_all(clicks).await {
        assert_eq!(answer.status, 200);
    }
    // Slack redelivering the same click.
    let payload = t.slack.block_action_payload("U_BOB", &card, "approve");
    let body = crate::support::FakeSlack::interaction_form(&payload);
    let ts = chrono::Utc::now().timestamp();
    let sig = t.slack.sign(ts, &body);
    t.post(
        "/slack/interactivity",
        "application/x-www-form-urlencoded",
        &[
            ("x-slack-request-timestamp", ts.to_string()),
            ("x-slack-signature", sig),
            ("x-slack-retry-num", "1".into()),
            ("x-slack-retry-reason", "http_timeout".into()),
        ],
        &body,
    )
    .await;
    t.kube
        .wait_for("one rerun Job", Duration::from_secs(5), |k| {
            k.list(Resource::Jobs, None).len() == 2
        })
        .await;
    for _ in 0..6 {
        let refusal = t.slack.next_ephemeral().await;
        assert!(
            refusal.render().contains("already approved by"),
            "{}",
            refusal.render()
        );
    }
    assert_eq!(
        t.kube
            .count_requests("POST", "/apis/batch/v1/namespaces/default/jobs"),
        1,
        "one create"
    );
    // What the winner caused: card and alert updated twice, one "created" notice.
    for _ in 0..4 {
        t.slack.next_update().await;
    }
    assert!(t.slack.next_message().await.render().contains("created"));
    t.slack.expect_quiet(Duration::from_millis(300)).await;
    assert_eq!(reruns(&t).len(), 1);
    t.finish().await;
}

/// Runs the whole approval of `card` by Bob and returns the created Job.
async fn approve(t: &Tester, card: &Message, from_alert: bool) -> Value {
    t.click("U_BOB", card, "approve").await;
    assert!(
        t.slack
            .next_update()
            .await
            .render()
            .contains("Approved by <@U_BOB>")
    );
    if from_alert {
        t.slack.next_update().await;
    }
    let created = t.slack.next_message().await;
    assert!(created.render().contains("created"), "{}", created.render());
    t.slack.next_update().await;
    if from_alert {
        t.slack.next_update().await;
    }
    let jobs = reruns(t);
    assert_eq!(jobs.len(), 1);
    jobs[0].clone()
}

/// The template with two containers, volumes, resources, a service account, …
fn rich_cronjob() -> Value {
    let mut cj = billing_sync()
        .container("sidecar", "envoy:1.30")
        .label("team", "billing")
        .build();
    let spec = &mut cj["spec"]["jobTemplate"];
    spec["metadata"] = json!({"labels": {"app": "billing"}, "annotations": {"note": "keep me"}});
    let pod = &mut spec["spec"]["template"]["spec"];
    pod["serviceAccountName"] = json!("billing");
    pod["volumes"] = json!([{"name": "cfg", "configMap": {"name": "billing-cfg"}}]);
    pod["containers"][0]["resources"] = json!({"limits": {"memory": "256Mi"}});
    pod["containers"][0]["volumeMounts"] = json!([{"name": "cfg", "mountPath": "/cfg"}]);
    pod["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "billing", "key": "token"}}}));
    spec["spec"]["activeDeadlineSeconds"] = json!(600);
    cj
}

#[tokio::test]
async fn slash_command_with_overrides_changes_only_the_chosen_container() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(rich_cronjob());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = t
        .command(
            "U_ALICE",
            "C_OPS",
            "/rerun",
            "billing-sync --arg --date=2024-01-01 --env DATE=2024-01-01 --env API_TOKEN=hunter2 --reason \"missed the 1st\" --ticket OPS-7",
        )
        .await;
    let reply = answer.json()["text"].as_str().unwrap().to_string();
    assert!(
        reply.contains("Rerun of `default/billing-sync` requested"),
        "{reply}"
    );
    let card = t.slack.next_message().await;
    assert_eq!(
        card.channel, "C_OPS",
        "the card goes where the command was typed"
    );
    assert_eq!(card.thread_ts, None);
    let shown = card.render();
    assert!(shown.contains("--date=2024-01-01"), "{shown}");
    assert!(shown.contains("DATE"), "{shown}");
    assert!(
        !shown.contains("hunter2"),
        "secret-looking values are masked:\n{shown}"
    );
    assert!(shown.contains("secretKeyRef"), "{shown}");
    assert_message_snapshot!("approval_card_with_changes", shown);

    let job = approve(&t, &card, false).await;
    let cj = t
        .kube
        .get(Resource::CronJobs, "default", "billing-sync")
        .unwrap();
    let template = &cj["spec"]["jobTemplate"];
    // Everything but the first container's args and env is the template's.
    let mut expected = template["spec"].clone();
    let mut got = job["spec"].clone();
    for spec in [&mut expected, &mut got] {
        let main = &mut spec["template"]["spec"]["containers"][0];
        main.as_object_mut().unwrap().remove("args");
        main.as_object_mut().unwrap().remove("env");
    }
    // The apiserver defaults some fields on create (the fake does as a real one).
    for key in [
        "selector",
        "manualSelector",
        "completionMode",
        "completions",
        "parallelism",
        "podReplacementPolicy",
        "suspend",
    ] {
        if expected.get(key).is_none() {
            got.as_object_mut().unwrap().remove(key);
        }
    }
    if let Some(labels) = got["template"]["metadata"].as_object_mut() {
        labels.remove("labels");
    }
    if let Some(labels) = expected["template"]["metadata"].as_object_mut() {
        labels.remove("labels");
    }
    assert_eq!(
        got, expected,
        "only args and env of the chosen container change"
    );
    let main = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        main["args"],
        json!(["sync --day=yesterday", "--date=2024-01-01"])
    );
    let env = main["env"].as_array().unwrap();
    assert_eq!(env[0], json!({"name": "DB_HOST", "value": "db.internal"}));
    assert_eq!(env[1], json!({"name": "API_TOKEN", "value": "hunter2"}));
    assert_eq!(env[2], json!({"name": "DATE", "value": "2024-01-01"}));
    assert_eq!(job["metadata"]["labels"]["app"], "billing");
    assert_eq!(
        job["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "rerun-bot"
    );
    assert_eq!(job["metadata"]["annotations"]["note"], "keep me");
    assert!(
        job["metadata"]["annotations"]
            .get("rerun-bot.io/source-job")
            .is_none()
    );
    t.finish().await;
}

#[tokio::test]
async fn the_changes_form_checks_every_field_before_anything_is_created() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(rich_cronjob());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let alert = t.slack.next_message().await;
    t.click("U_ALICE", &alert, "rerun_with_changes").await;
    let view = t.next_view().await;
    assert_eq!(view["callback_id"], "rerun_overrides");
    let ids: Vec<&str> = view["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["block_id"].as_str())
        .collect();
    for id in ["args", "args_mode", "env", "container", "reason", "ticket"] {
        assert!(ids.contains(&id), "{id} missing: {ids:?}");
    }

    let bad = t
        .submit(
            "U_ALICE",
            &view,
            &[("env", text("OK=1\n1BAD=x")), ("reason", text("why"))],
        )
        .await
        .json();
    assert_eq!(bad["response_action"], "errors");
    assert!(
        bad["errors"]["env"].as_str().unwrap().contains("Line 2"),
        "{bad}"
    );
    let empty_reason = t
        .submit("U_ALICE", &view, &[("reason", text("   "))])
        .await
        .json();
    assert!(
        empty_reason["errors"]["reason"]
            .as_str()
            .unwrap()
            .contains("required")
    );
    t.slack.expect_quiet(Duration::from_millis(200)).await;

    let ok = t
        .submit(
            "U_ALICE",
            &view,
            &[
                ("args", text("--only=eu\n--dry-run=false")),
                ("args_mode", ViewValue::Option("replace".into())),
                ("container", ViewValue::Option("sidecar".into())),
                ("reason", text("eu shard only")),
            ],
        )
        .await;
    assert_eq!(ok.body, "");
    let card = t.slack.next_message().await;
    assert!(card.render().contains("sidecar"), "{}", card.render());
    t.slack.next_update().await; // alert status
    let job = approve(&t, &card, true).await;
    let containers = &job["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        containers[1]["args"],
        json!(["--only=eu", "--dry-run=false"])
    );
    assert_eq!(
        containers[0]["args"],
        json!(["sync --day=yesterday"]),
        "main untouched"
    );
    t.finish().await;
}

#[tokio::test]
async fn unknown_ambiguous_and_reasonless_commands_change_nothing() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(billing_sync().build());
    t.kube
        .apply_cronjob(billing_sync().namespace("staging").build());
    t.kube
        .wait_for("cronjobs listed", Duration::from_secs(5), |k| {
            k.list(Resource::CronJobs, None).len() == 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let tr = &t;
    let say = |text: &'static str| async move {
        let a = tr.command("U_ALICE", CHANNEL, "/rerun", text).await;
        a.json()["text"].as_str().unwrap_or_default().to_string()
    };
    let unknown = say("billing-synk --reason x").await;
    assert!(unknown.contains("No CronJob `billing-synk`"), "{unknown}");
    assert!(unknown.contains("default/billing-sync"), "{unknown}");
    let ambiguous = say("billing-sync --reason x").await;
    assert!(ambiguous.contains("Add `-n "), "{ambiguous}");
    assert!(ambiguous.contains("staging/billing-sync"), "{ambiguous}");
    let malformed = say("billing-sync --reason \"unclosed").await;
    assert!(
        malformed.contains("Usage: `/rerun "),
        "usage follows errors: {malformed}"
    );
    let help = say("help").await;
    assert!(help.contains("--replace-args"), "{help}");
    assert!(t.slack.calls("chat.postMessage").is_empty());

    // Without a reason the form opens, prefilled with what was typed.
    let answer = t
        .command(
            "U_ALICE",
            CHANNEL,
            "/rerun",
            "billing-sync -n staging --arg --x=1 --env A=b",
        )
        .await;
    assert_eq!(answer.status, 200);
    let view = t.next_view().await;
    let rendered = view.to_string();
    assert!(
        rendered.contains("--x=1") && rendered.contains("A=b"),
        "{rendered}"
    );
    assert!(reruns(&t).is_empty());
    t.finish().await;
}

#[tokio::test]
async fn denied_cancelled_and_expired_requests_never_run() {
    let t = Tester::with_args(&["--approval-ttl", "1s", "--audit-token", AUDIT_TOKEN]).await;
    t.kube.apply_cronjob(billing_sync().build());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let tr = &t;
    let ask = |user: &'static str| async move {
        tr.command(
            user,
            CHANNEL,
            "/rerun",
            "billing-sync --reason \"try again\"",
        )
        .await;
        tr.slack.next_message().await
    };

    let card = ask("U_ALICE").await;
    t.click("U_BOB", &card, "deny").await;
    let denied = t.slack.next_update().await;
    assert!(
        denied.render().contains("Denied by <@U_BOB>"),
        "{}",
        denied.render()
    );
    assert!(denied.buttons().is_empty());
    t.click("U_CAROL", &card, "approve").await;
    assert!(
        t.slack
            .next_ephemeral()
            .await
            .render()
            .contains("already denied by <@U_BOB>")
    );

    let card = ask("U_ALICE").await;
    t.click("U_ALICE", &card, "cancel").await;
    assert!(t.slack.next_update().await.render().contains("Cancelled"));

    let card = ask("U_ALICE").await;
    let expired = t.slack.next_update().await;
    assert_eq!(expired.ts, card.ts);
    assert!(expired.render().contains("Expired"), "{}", expired.render());
    assert!(
        expired.buttons().is_empty(),
        "an expired card loses its buttons"
    );
    t.click("U_BOB", &card, "approve").await;
    assert!(
        t.slack
            .next_ephemeral()
            .await
            .render()
            .contains("already expired")
    );
    assert!(reruns(&t).is_empty());
    let actions = audit_actions(&t).await;
    for a in ["rerun.denied", "rerun.cancelled", "rerun.expired"] {
        assert!(actions.contains(&a.to_string()), "{a}: {actions:?}");
    }
    t.finish().await;
}

#[tokio::test]
async fn forbid_with_a_running_job_and_a_changed_template_block_approval() {
    let t = Tester::start().await;
    let card = ask_by_command(
        &t,
        billing_sync().concurrency_policy("Forbid"),
        "U_ALICE",
        "billing-sync --reason \"rerun\"",
    )
    .await;
    let running = t
        .kube
        .spawn_job("default", "billing-sync", chrono::Utc::now());
    let running = running["metadata"]["name"].as_str().unwrap().to_string();

    t.click("U_BOB", &card, "approve").await;
    let refused = t.slack.next_ephemeral().await.render();
    assert!(
        refused.contains("Forbid") && refused.contains(&running),
        "{refused}"
    );
    t.kube.complete_job("default", &running);

    // Someone edits the template meanwhile: the approver must see what runs.
    t.kube
        .update(Resource::CronJobs, "default", "billing-sync", |cj| {
            cj["spec"]["jobTemplate"]["spec"]["backoffLimit"] = json!(5);
        });
    t.click("U_BOB", &card, "approve").await;
    let changed = t.slack.next_ephemeral().await.render();
    assert!(changed.contains("template changed"), "{changed}");

    // Deleted CronJob.
    t.kube.delete(Resource::CronJobs, "default", "billing-sync");
    t.click("U_BOB", &card, "approve").await;
    let gone = t.slack.next_ephemeral().await.render();
    assert!(gone.contains("no longer exists"), "{gone}");
    assert!(reruns(&t).is_empty());
    t.finish().await;
}

#[tokio::test]
async fn a_crash_between_approval_and_job_creation_is_finished_at_start() {
    let mut t = Tester::start().await;
    let card = ask_by_command(
        &t,
        billing_sync(),
        "U_ALICE",
        "billing-sync --reason \"crash test\"",
    )
    .await;
    // The apiserver stalls every Job create; the bot dies while waiting.
    t.kube.fail_next(
        "POST",
        "/apis/batch/v1/namespaces/default/jobs",
        1000,
        503,
        Some(1),
    );
    t.click("U_BOB", &card, "approve").await;
    assert!(
        t.slack
            .next_update()
            .await
            .render()
            .contains("Approved by <@U_BOB>")
    );
    t.stop().await;
    t.kube.clear_faults();
    assert!(reruns(&t).is_empty());

    t.start_again().await;
    let created = t.slack.next_message().await;
    assert!(created.render().contains("created"), "{}", created.render());
    t.slack.next_update().await; // card
    assert_eq!(reruns(&t).len(), 1);

    // A second restart changes nothing: the request is recorded as created.
    t.restart().await;
    t.slack.expect_quiet(Duration::from_millis(300)).await;
    assert_eq!(reruns(&t).len(), 1);
    t.finish().await;
}

#[tokio::test]
async fn a_failed_rerun_is_reported_in_the_thread_not_as_a_new_alert() {
    let t = Tester::start().await;
    let (alert, card) = requested(&t).await;
    let job = approve(&t, &card, true).await;
    let name = job["metadata"]["name"].as_str().unwrap();
    t.kube.fail_job("default", name, Failure::backoff_limit());
    let failed = t.slack.next_message().await;
    assert_eq!(failed.thread_ts.as_deref(), Some(alert.ts.as_str()));
    assert!(
        failed.render().contains("failed: BackoffLimitExceeded"),
        "{}",
        failed.render()
    );
    assert!(t.slack.next_update().await.render().contains("failed"));
    assert!(t.slack.next_update().await.render().contains("failed"));
    t.slack.expect_quiet(Duration::from_millis(300)).await;
    t.finish().await;
}

#[tokio::test]
async fn history_lists_the_last_requests() {
    let t = Tester::start().await;
    let card = ask_by_command(
        &t,
        billing_sync(),
        "U_ALICE",
        "billing-sync --reason \"first\" --ticket T-1",
    )
    .await;
    t.click("U_BOB", &card, "deny").await;
    t.slack.next_update().await;
    let history = t
        .command("U_CAROL", CHANNEL, "/rerun", "history billing-sync")
        .await;
    let text = history.body;
    for part in ["first", "T-1", "denied by", "U_ALICE", "thread"] {
        assert!(text.contains(part), "history lacks {part}: {text}");
    }
    let none = t
        .command("U_CAROL", CHANNEL, "/rerun", "history other")
        .await
        .body;
    assert!(none.contains("No rerun requests"), "{none}");
    t.finish().await;
}

#[tokio::test]
async fn a_held_cronjob_runs_only_when_the_approver_confirms() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(
        billing_sync()
            .annotation("rerun-bot.io/hold-id", "h-maint")
            .build(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.command(
        "U_ALICE",
        CHANNEL,
        "/rerun",
        "billing-sync --reason \"needed today\"",
    )
    .await;
    let card = t.slack.next_message().await;
    assert!(!card.has_button("approve_held"));

    t.click("U_BOB", &card, "approve").await;
    let refused = t.slack.next_ephemeral().await.render();
    assert!(
        refused.contains("maintenance hold") && refused.contains("h-maint"),
        "{refused}"
    );
    let offered = t.slack.next_update().await;
    assert_eq!(
        offered.buttons(),
        ["approve", "approve_held", "deny", "cancel"]
    );
    assert!(reruns(&t).is_empty());

    t.click("U_BOB", &offered, "approve_held").await;
    assert!(
        t.slack
            .next_update()
            .await
            .render()
            .contains("Approved by <@U_BOB>")
    );
    assert!(t.slack.next_message().await.render().contains("created"));
    t.slack.next_update().await;
    assert_eq!(reruns(&t).len(), 1);
    t.finish().await;
}

#[tokio::test]
async fn only_listed_requesters_may_ask_and_refusals_are_recorded() {
    let t = Tester::with_args(&["--requesters", "S_DEV", "--audit-token", AUDIT_TOKEN]).await;
    t.slack.add_usergroup("S_DEV", &["U_ALICE"]);
    t.kube.apply_cronjob(billing_sync().build());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let eve = t
        .command("U_EVE", CHANNEL, "/rerun", "billing-sync --reason \"mine\"")
        .await
        .json();
    let text = eve["text"].as_str().unwrap();
    assert!(text.contains("not allowed to request"), "{text}");
    assert!(t.slack.calls("chat.postMessage").is_empty(), "no card");
    let alice = t
        .command("U_ALICE", CHANNEL, "/rerun", "billing-sync --reason \"db\"")
        .await
        .json();
    assert!(
        alice["text"].as_str().unwrap().contains("requested"),
        "{alice}"
    );
    t.slack.next_message().await;
    let trail = rerun_bot::audit_client::fetch(&t.url(""), AUDIT_TOKEN, Some("1h"), None)
        .await
        .unwrap();
    let refused = trail
        .iter()
        .find(|e| e.event.action == "rerun.refused")
        .unwrap();
    assert_eq!(refused.event.actor, "U_EVE");
    let requested = trail
        .iter()
        .find(|e| e.event.action == "rerun.requested")
        .unwrap();
    assert_eq!(requested.event.actor, "U_ALICE");
    assert_eq!(requested.event.detail["reason"], "db");
    assert!(
        requested.event.detail["job"]
            .as_str()
            .unwrap()
            .starts_with("billing-sync-rerun-")
    );
    t.finish().await;
}
