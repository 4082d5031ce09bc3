//! The whole bot in Microsoft Teams, through the real Bot Framework code of the
//! bot (JWT validation, token and Connector clients) against the simulated
//! Bot Framework: alerts, dialogs, four-eyes reruns, commands, holds, both
//! platforms at once. Every card the bot sends is parsed by Microsoft's
//! `adaptivecards` package when a test finishes (`Tester::finish`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::tester::{CHANNEL, Platforms, TEAMS_APP_ID, TEAMS_PASSWORD, TEAMS_TENANT};
use crate::support::{CronJobFixture, Failure, FakeKube, FakeSlack, Resource, Tester};
use rerun_sim::teams::{FakeTeams, Forgery, Kind, Message};

fn billing_sync() -> CronJobFixture {
    CronJobFixture::new("billing-sync")
        .schedule("0 3 * * *")
        .backoff_limit(2)
        .args(&["sync --day=yesterday"])
        .env("DB_HOST", "db.internal")
}

fn reruns(t: &Tester) -> Vec<Value> {
    t.kube
        .list(Resource::Jobs, None)
        .into_iter()
        .filter(|j| j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot")
        .collect()
}

/// Whether `uid` is the Job the alert card is about (its buttons carry the uid).
fn shown_uid(alert: &Message, uid: &str) -> bool {
    alert
        .card
        .as_ref()
        .is_some_and(|c| c.to_string().contains(uid))
}

fn aad(t: &Tester, user: &str) -> String {
    t.teams().user(user).aad_object_id
}

/// A failed `billing-sync` Job and its alert card in the Teams channel.
async fn alert(t: &Tester) -> Message {
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job(
        "billing-sync",
        Failure::backoff_limit().log("ERROR: db down\n"),
    )
    .await;
    let alert = t.teams().next_message().await;
    assert_eq!(alert.kind, Kind::Post, "a new thread in the channel");
    assert_eq!(alert.channel.as_deref(), Some(t.teams_channel().as_str()));
    alert
}

/// Alice clicks Rerun on the alert, fills in the dialog; returns the approval card.
async fn requested(t: &Tester, alert: &Message) -> Message {
    let teams = t.teams();
    let fetched = teams.click("alice", alert, "rerun").await;
    assert_eq!(fetched.status, 200);
    let dialog = fetched.dialog().expect("Rerun opens a dialog");
    assert!(
        dialog.inputs().contains(&"reason".to_string()),
        "{:?}",
        dialog.inputs()
    );
    let submitted = teams
        .submit_dialog(
            "alice",
            &dialog,
            &[("reason", "db was down; fixed"), ("ticket", "INC-42")],
        )
        .await;
    assert_eq!(submitted.status, 200);
    assert!(
        submitted.dialog().is_none(),
        "the dialog closes: {:?}",
        submitted.body
    );
    let card = teams.next_message().await;
    assert_eq!(
        card.kind,
        Kind::Reply,
        "the card goes into the alert's thread"
    );
    assert_eq!(card.root.as_deref(), Some(alert.activity_id.as_str()));
    let status = teams.next_update_of(&alert.activity_id).await;
    assert!(
        status.render().contains("Rerun requested by Alice"),
        "{}",
        status.render()
    );
    card
}

#[tokio::test]
async fn teams_alert_dialog_and_second_person_approval_create_exactly_one_job() {
    let t = Tester::on(Platforms::Teams, &[]).await;
    let alert = alert(&t).await;
    let shown = alert.render();
    for part in [
        "billing-sync",
        "default",
        "BackoffLimitExceeded",
        "ERROR: db down",
    ] {
        assert!(shown.contains(part), "alert lacks {part}:\n{shown}");
    }
    for button in ["rerun", "rerun_with_changes", "hold"] {
        assert!(
            alert.has_button(button),
            "no {button}: {:?}",
            alert.buttons()
        );
    }
    let card = requested(&t, &alert).await;
    assert!(reruns(&t).is_empty(), "nothing before approval");

    // The requester cannot approve their own request.
    let own = t.teams().click("alice", &card, "approve").await;
    assert_eq!(own.status, 200);
    let refusal = own.text().expect("a text for Alice alone");
    assert!(refusal.contains("someone else has to approve"), "{refusal}");
    assert!(reruns(&t).is_empty());

    // Dana's Teams still shows the card with its buttons (a stale view).
    let stale = t.teams().click_activity("dana", &card, "approve", &[]);
    let approved = t.teams().click("bob", &card, "approve").await;
    assert_eq!(approved.status, 200);
    let updated = approved.card().expect("Bob sees the updated card at once");
    assert!(updated.to_string().contains("Bob"), "{updated}");
    let card_now = t.teams().next_update_of(&card.activity_id).await;
    assert!(
        card_now.render().contains("Approved by Bob"),
        "{}",
        card_now.render()
    );
    let _alert_approved = t.teams().next_update_of(&alert.activity_id).await;
    let created = t.teams().next_message().await;
    assert_eq!(created.root.as_deref(), Some(alert.activity_id.as_str()));

    let jobs = reruns(&t);
    assert_eq!(jobs.len(), 1);
    let a = &jobs[0]["metadata"]["annotations"];
    assert_eq!(a["rerun-bot.io/requested-by"], aad(&t, "alice").as_str());
    assert_eq!(a["rerun-bot.io/approved-by"], aad(&t, "bob").as_str());
    assert_eq!(a["rerun-bot.io/reason"], "db was down; fixed");
    assert_eq!(a["rerun-bot.io/ticket"], "INC-42");
    let failed = t
        .kube
        .list(Resource::Jobs, None)
        .into_iter()
        .find(|j| {
            j["metadata"]["uid"]
                .as_str()
                .is_some_and(|u| shown_uid(&alert, u))
        })
        .expect("the failed Job");
    assert_eq!(
        a["rerun-bot.io/source-job"], failed["metadata"]["name"],
        "the rerun names the Job it reruns"
    );
    let _card_created = t.teams().next_update_of(&card.activity_id).await;
    let _alert_created = t.teams().next_update_of(&alert.activity_id).await;

    // A late second approval from the stale card is refused; still one Job.
    let again = t.teams().send_activity(stale).await;
    assert_eq!(again.status, 200);
    let text = again.text().expect("a text for Dana alone");
    assert!(text.contains("already"), "{text}");
    assert_eq!(reruns(&t).len(), 1);
    t.finish().await;
}

#[tokio::test]
async fn six_concurrent_teams_approvals_make_one_job() {
    let t = Tester::on(Platforms::Teams, &[]).await;
    let alert = alert(&t).await;
    let card = requested(&t, &alert).await;
    let teams = t.teams().clone();
    let clicks = ["bob", "dana", "erin", "bob", "dana", "erin"].map(|user| {
        let teams = teams.clone();
        let card = card.clone();
        tokio::spawn(async move { teams.click(user, &card, "approve").await })
    });
    for click in clicks {
        assert_eq!(click.await.unwrap().status, 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reruns(&t).len(), 1, "exactly one Job");
    assert_eq!(
        t.kube
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/jobs"))
            .count(),
        1,
        "exactly one create"
    );
    drain(&t).await;
    t.finish().await;
}

/// Takes every Teams message and update the bot sends until it is quiet for
/// half a second; returns the last one.
async fn drain(t: &Tester) -> Option<Message> {
    let teams = t.teams();
    let mut last = None;
    loop {
        let next = async {
            tokio::select! {
                m = teams.next_message() => m,
                u = teams.next_update() => u,
            }
        };
        match tokio::time::timeout(Duration::from_millis(500), next).await {
            Ok(m) => last = Some(m),
            Err(_) => return last,
        }
    }
}

#[tokio::test]
async fn unlisted_approver_is_refused_by_entra_object_id() {
    let kube = FakeKube::start().await;
    let slack = FakeSlack::start(crate::support::tester::SIGNING_SECRET).await;
    let teams = FakeTeams::start(TEAMS_APP_ID, TEAMS_PASSWORD, TEAMS_TENANT).await;
    let bob = teams.user("bob").aad_object_id;
    let t = Tester::with_platforms(
        kube,
        slack,
        Some(teams),
        Platforms::Teams,
        &["--approvers", &bob],
    )
    .await;
    let alert = alert(&t).await;
    let card = requested(&t, &alert).await;
    let dana = t.teams().click("dana", &card, "approve").await;
    let text = dana.text().expect("a refusal for Dana alone");
    assert!(
        text.contains("not on the list of people allowed to approve"),
        "{text}"
    );
    assert!(reruns(&t).is_empty());
    t.teams().click("bob", &card, "approve").await;
    drain(&t).await;
    assert_eq!(reruns(&t).len(), 1);
    t.finish().await;
}

#[tokio::test]
async fn rerun_command_with_overrides_by_mention_makes_a_card_in_the_channel() {
    let t = Tester::on(Platforms::Teams, &[]).await;
    t.kube.apply_cronjob(billing_sync().build());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let channel = t.teams_channel();
    let answer = t
        .teams()
        .send_message(
            "alice",
            &channel,
            "rerun billing-sync --arg --date=2024-01-01 --env DB_PASSWORD=hunter2 --reason \"backfill\"",
        )
        .await;
    assert_eq!(answer.status, 200);
    let card = t.teams().next_message().await;
    assert_eq!(card.kind, Kind::Post, "a card of its own in the channel");
    let shown = card.render();
    assert!(shown.contains("--date=2024-01-01"), "{shown}");
    assert!(!shown.contains("hunter2"), "secret masked: {shown}");
    t.teams().click("bob", &card, "approve").await;
    drain(&t).await;
    let jobs = reruns(&t);
    assert_eq!(jobs.len(), 1);
    let container = &jobs[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["args"],
        json!(["sync --day=yesterday", "--date=2024-01-01"])
    );
    assert!(
        container["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "DB_PASSWORD", "value": "hunter2"}))
    );
    t.finish().await;
}

#[tokio::test]
async fn bad_commands_are_answered_to_the_asker_alone() {
    let t = Tester::on(Platforms::Teams, &[]).await;
    t.kube.apply_cronjob(billing_sync().build());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let channel = t.teams_channel();
    for (text, expect) in [
        ("rerun no-such-job --reason x", "no-such-job"),
        ("rerun billing-sync --env NOEQUALS --reason x", "KEY=VALUE"),
        ("frobnicate", "does not know"),
        ("help", "rerun"),
    ] {
        t.teams().send_message("alice", &channel, text).await;
        let answer = t.teams().next_message().await;
        assert_eq!(answer.kind, Kind::Personal, "{text}: only Alice sees it");
        assert!(
            answer.render().contains(expect),
            "{text}: {}",
            answer.render()
        );
    }
    assert!(reruns(&t).is_empty());
    t.finish().await;
}

#[tokio::test]
async fn dialog_errors_are_shown_under_their_field_and_nothing_is_made() {
    let t = Tester::on(Platforms::Teams, &[]).await;
    let alert = alert(&t).await;
    let fetched = t.teams().click("alice", &alert, "rerun_with_changes").await;
    let dialog = fetched.dialog().expect("dialog");
    let again = t
        .teams()
        .submit_dialog(
            "alice",
            &dialog,
            &[("env", "GOOD=1\nnot a pair"), ("reason", "")],
        )
        .await;
    let errors = again.dialog().expect("the dialog again, with its errors");
    let shown = errors.render();
    assert!(shown.contains("Line 2"), "{shown}");
    assert!(shown.contains("Reason (root cause) is required"), "{shown}");
    assert!(reruns(&t).is_empty());
    t.teams().wait_quiet(Duration::from_millis(300)).await;
    t.finish().await;
}

#[tokio::test]
async fn forged_tokens_are_refused_and_change_nothing() {
    let t = Tester::on(Platforms::Teams, &[]).await;
    let alert = alert(&t).await;
    let card = requested(&t, &alert).await;
    for forgery in Forgery::ALL {
        let click = t.teams().click_activity("bob", &card, "approve", &[]);
        let answer = t.teams().send_forged(click, forgery.clone()).await;
        assert_eq!(answer.status, 401, "{forgery:?}: {:?}", answer.body);
    }
    // Identity claimed in `data` is ignored: the clicker is from.aadObjectId.
    let mut forged = t.teams().click_activity("alice", &card, "approve", &[]);
    forged["value"]["action"]["data"]["user"] = json!(aad(&t, "bob"));
    let answer = t.teams().send_activity(forged).await;
    let text = answer.text().unwrap_or_default();
    assert!(text.contains("someone else has to approve"), "{text}");
    // Another tenant's activity.
    let mut other = t.teams().click_activity("bob", &card, "approve", &[]);
    other["channelData"]["tenant"]["id"] = json!("00000000-0000-4000-8000-0000000000ff");
    other["conversation"]["tenantId"] = json!("00000000-0000-4000-8000-0000000000ff");
    let refused = t.teams().send_activity(other).await;
    assert_eq!(
        refused.status, 200,
        "invokes are answered 200, the error in the body"
    );
    assert_eq!(refused.body["statusCode"], 403, "{:?}", refused.body);
    assert!(
        refused
            .text()
            .unwrap_or_default()
            .contains("another tenant")
    );
    // Malformed JSON.
    assert_eq!(
        t.post("/api/messages", "application/json", &[], "{not json")
            .await
            .status,
        400
    );
    t.teams().wait_quiet(Duration::from_millis(300)).await;
    assert!(reruns(&t).is_empty(), "nothing created");
    t.finish().await;
}

#[tokio::test]
async fn connector_429_is_retried_and_the_alert_arrives() {
    let t = Tester::on(Platforms::Teams, &[]).await;
    t.teams().fail_next(2, 429, Some(1));
    let alert = alert(&t).await;
    assert!(alert.render().contains("billing-sync"));
    let answered_429 = t
        .teams()
        .calls()
        .iter()
        .filter(|c| c.path.starts_with("/teams/v3/conversations") && c.status == 429)
        .count();
    assert_eq!(answered_429, 2, "two 429s, then the post went through");
    t.finish().await;
}

#[tokio::test]
async fn hold_all_and_resume_all_from_teams() {
    let kube = FakeKube::start().await;
    let slack = FakeSlack::start(crate::support::tester::SIGNING_SECRET).await;
    let teams = FakeTeams::start(TEAMS_APP_ID, TEAMS_PASSWORD, TEAMS_TENANT).await;
    let dana = teams.user("dana").aad_object_id;
    let t = Tester::with_platforms(
        kube,
        slack,
        Some(teams),
        Platforms::Teams,
        &["--admins", &dana],
    )
    .await;
    t.kube.apply_cronjob(billing_sync().build());
    t.kube
        .apply_cronjob(CronJobFixture::new("etl").terminate_on_hold().build());
    let running = t.kube.spawn_job("default", "etl", chrono::Utc::now());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let channel = t.teams_channel();

    t.teams()
        .send_message("dana", &channel, "hold all --reason \"db upgrade\"")
        .await;
    let preview = t.teams().next_message().await;
    assert_eq!(preview.kind, Kind::Personal, "the preview is Dana's alone");
    assert!(preview.render().contains("etl"), "{}", preview.render());
    let confirmed = t.teams().click("dana", &preview, "hold_confirm").await;
    assert_eq!(confirmed.status, 200);
    drain(&t).await;
    for name in ["billing-sync", "etl"] {
        let cj = t.kube.get(Resource::CronJobs, "default", name).unwrap();
        assert_eq!(cj["spec"]["suspend"], true, "{name} suspended");
    }
    let job = running["metadata"]["name"].as_str().unwrap();
    assert!(
        t.kube.get(Resource::Jobs, "default", job).is_none(),
        "terminated"
    );

    t.teams().send_message("dana", &channel, "resume all").await;
    let preview = t.teams().next_message().await;
    t.teams().click("dana", &preview, "resume_confirm").await;
    drain(&t).await;
    for name in ["billing-sync", "etl"] {
        let cj = t.kube.get(Resource::CronJobs, "default", name).unwrap();
        assert_eq!(cj["spec"]["suspend"], false, "{name} resumed");
    }
    t.finish().await;
}

#[tokio::test]
async fn both_platforms_get_every_alert_and_a_request_lives_where_it_was_made() {
    let t = Tester::on(Platforms::Both, &[]).await;
    let teams_alert = alert(&t).await;
    let slack_alert = t.slack.next_message().await;
    assert_eq!(slack_alert.channel, CHANNEL);
    assert!(slack_alert.render().contains("billing-sync"));

    // Asked in Teams: the card is in Teams; both alerts show the status.
    let card = requested(&t, &teams_alert).await;
    let slack_status = t.slack.next_update().await;
    assert_eq!(slack_status.ts, slack_alert.ts);
    assert!(
        slack_status.render().contains("Rerun requested"),
        "{}",
        slack_status.render()
    );
    t.teams().click("bob", &card, "approve").await;
    drain(&t).await;
    assert_eq!(reruns(&t).len(), 1);
    // The Slack copy followed along.
    let mut last = String::new();
    while let Ok(update) =
        tokio::time::timeout(Duration::from_millis(500), t.slack.next_update()).await
    {
        last = update.render();
    }
    assert!(
        last.contains("created") || last.contains("approved"),
        "{last}"
    );
    t.finish().await;
}

#[tokio::test]
async fn repeated_failures_thread_under_the_first_card_once_each_across_a_restart() {
    let mut t = Tester::on(Platforms::Teams, &[]).await;
    let first = alert(&t).await;
    let second_job = t
        .fail_job("billing-sync", Failure::deadline_exceeded())
        .await;
    let reply = t.teams().next_message().await;
    assert_eq!(reply.kind, Kind::Reply);
    assert_eq!(reply.root.as_deref(), Some(first.activity_id.as_str()));
    assert!(
        reply.render().contains("DeadlineExceeded"),
        "{}",
        reply.render()
    );
    let parent = t.teams().next_update_of(&first.activity_id).await;
    assert!(parent.render().contains("2 times"), "{}", parent.render());

    // MODIFIED events and a restart find the records: nothing twice.
    let name = second_job["metadata"]["name"].as_str().unwrap().to_string();
    for i in 0..3 {
        t.kube.update(Resource::Jobs, "default", &name, |j| {
            j["metadata"]["labels"]["touched"] = json!(i.to_string());
        });
    }
    t.restart().await;
    t.teams().wait_quiet(Duration::from_millis(800)).await;
    t.finish().await;
}

#[tokio::test]
async fn a_channel_the_bot_was_removed_from_falls_back_to_the_default_and_oversized_bodies_are_refused()
 {
    let t = Tester::on(Platforms::Teams, &["--audit-token", "tok"]).await;
    let gone = t.teams().channel("removed-from");
    t.teams().forbid_conversation(&gone);
    t.kube.apply_cronjob(
        billing_sync()
            .annotation("rerun-bot.io/teams-channel", &gone)
            .build(),
    );
    t.fail_job("billing-sync", Failure::oom_killed()).await;
    let alert = t.teams().next_message().await;
    assert_eq!(
        alert.channel.as_deref(),
        Some(t.teams_channel().as_str()),
        "403 on the annotated channel: the default channel gets it"
    );
    let big = format!(
        "{{\"type\":\"message\",\"text\":\"{}\"}}",
        "x".repeat(300 * 1024)
    );
    assert_eq!(
        t.post("/api/messages", "application/json", &[], &big)
            .await
            .status,
        413
    );

    // The audit trail names the platform of the alert.
    let events = rerun_bot::audit_client::fetch(&t.url(""), "tok", Some("1h"), None)
        .await
        .unwrap();
    let posted = events
        .iter()
        .find(|e| e.event.action == "alert.posted")
        .expect("alert.posted");
    assert_eq!(posted.event.detail["platform"], "teams");
    t.finish().await;
}

#[tokio::test]
async fn the_audit_trail_names_teams_people_and_their_platform() {
    let t = Tester::on(Platforms::Teams, &["--audit-token", "tok"]).await;
    let alert = alert(&t).await;
    let card = requested(&t, &alert).await;
    t.teams().click("bob", &card, "approve").await;
    drain(&t).await;
    let events = rerun_bot::audit_client::fetch(&t.url(""), "tok", Some("1h"), None)
        .await
        .unwrap();
    let approved = events
        .iter()
        .find(|e| e.event.action == "rerun.approved")
        .expect("rerun.approved");
    assert_eq!(approved.event.actor, aad(&t, "bob"));
    assert_eq!(
        approved.event.platform,
        Some(rerun_bot::chat::Platform::Teams)
    );
    let table = rerun_bot::audit_client::table(&events);
    assert!(table.contains("teams"), "{table}");
    t.finish().await;
}

#[tokio::test]
async fn an_activity_of_another_bot_framework_channel_is_refused() {
    let t = Tester::on(Platforms::Teams, &[]).await;
    let alert = alert(&t).await;
    let card = requested(&t, &alert).await;
    // A token the Bot Framework would sign for Web Chat (a key endorsed for
    // `webchat`) on an activity that says so: valid for that channel, but the
    // bot serves Teams alone (a Web Chat client writes its own `from`).
    let mut click = t.teams().click_activity("bob", &card, "approve", &[]);
    click["channelId"] = json!("webchat");
    let answer = t
        .teams()
        .send_forged(click, Forgery::UnendorsedChannel)
        .await;
    assert_eq!(answer.status, 401, "{:?}", answer.body);
    t.teams().wait_quiet(Duration::from_millis(300)).await;
    assert!(reruns(&t).is_empty(), "nothing created");
    t.finish().await;
}

#[tokio::test]
async fn a_slack_request_is_not_approved_from_teams() {
    let t = Tester::on(Platforms::Both, &[]).await;
    let teams_alert = alert(&t).await;
    let _slack_alert = t.slack.next_message().await;
    t.command(
        "U_ALICE",
        CHANNEL,
        "/rerun",
        "billing-sync --reason \"db was down\"",
    )
    .await;
    let card = t.slack.next_message().await;
    let id = card.button("approve").expect("an approve button")["value"]
        .as_str()
        .expect("the request id")
        .to_string();
    // Alice again, on Teams (another id: "anyone but the requester" cannot
    // tell), sends an approval naming the Slack request.
    let mut forged = t.teams().click_activity("alice", &teams_alert, "hold", &[]);
    forged["value"]["action"]["verb"] = json!("approve");
    forged["value"]["action"]["data"]["value"] = json!(id);
    let answer = t.teams().send_activity(forged).await;
    assert_eq!(answer.status, 200);
    t.teams().wait_quiet(Duration::from_millis(300)).await;
    assert!(
        reruns(&t).is_empty(),
        "a request is approved where it was made: {:?}",
        answer.body
    );
    t.finish().await;
}

#[tokio::test]
async fn an_older_clients_action_submit_decision_is_recorded_before_the_answer() {
    let t = Tester::on(Platforms::Teams, &[]).await;
    let alert = alert(&t).await;
    let card = requested(&t, &alert).await;
    // An older Teams client sends a deciding button as a message carrying `value`.
    let click = t.teams().click_activity("bob", &card, "approve", &[]);
    let mut old = t.teams().message_activity("bob", &card.conversation, "");
    old["text"] = json!(null);
    old["replyToId"] = json!(card.activity_id);
    old["value"] = json!({
        "verb": "approve",
        "value": click["value"]["action"]["data"]["value"],
    });
    let answer = t.teams().send_activity(old).await;
    assert_eq!(answer.status, 200);
    // Recorded (and the card updated) by the time Teams hears back.
    let updates = t.teams().updates_of(&card.activity_id);
    assert!(
        updates
            .iter()
            .any(|u| u.render().contains("Approved by Bob")),
        "no approval on the card when the 200 came: {updates:?}"
    );
    drain(&t).await;
    assert_eq!(reruns(&t).len(), 1);
    t.finish().await;
}

#[tokio::test]
async fn a_dialog_whose_form_was_changed_in_the_client_is_refused() {
    let t = Tester::on(Platforms::Teams, &[]).await;
    let alert = alert(&t).await;
    let fetched = t.teams().click("alice", &alert, "rerun").await;
    let dialog = fetched.dialog().expect("dialog");
    // The client sends the form back with another target in its metadata.
    let mut forged = t
        .teams()
        .dialog_submit_activity("alice", &dialog, &[("reason", "mine")]);
    let form = &mut forged["value"]["data"]["form"];
    let metadata = form["metadata"].as_str().unwrap().to_string();
    let (inner, tag) = metadata.rsplit_once('~').expect("sealed metadata");
    let elsewhere = inner.replace(t.teams_channel().as_str(), "a:someone-elses-chat");
    assert_ne!(elsewhere, inner, "the metadata names the channel: {inner}");
    form["metadata"] = json!(format!("{elsewhere}~{tag}"));
    let answer = t.teams().send_activity(forged.clone()).await;
    assert!(
        answer
            .text()
            .unwrap_or_default()
            .contains("not one rerun-bot made"),
        "{:?}",
        answer.body
    );
    // Unsigned is refused too.
    forged["value"]["data"]["form"]["metadata"] = json!(inner);
    let answer = t.teams().send_activity(forged).await;
    assert!(
        answer
            .text()
            .unwrap_or_default()
            .contains("not one rerun-bot made")
    );
    t.teams().wait_quiet(Duration::from_millis(300)).await;
    // The untouched dialog still works.
    let ok = t
        .teams()
        .submit_dialog("alice", &dialog, &[("reason", "db was down")])
        .await;
    assert!(ok.dialog().is_none(), "{:?}", ok.body);
    let card = t.teams().next_message().await;
    assert_eq!(card.root.as_deref(), Some(alert.activity_id.as_str()));
    drain(&t).await;
    t.finish().await;
}
