//! "Stop this run": a long-run alert's four-eyes request that deletes the
//! Job that runs too long — exactly that Job, only after a second person
//! approves, in Slack and in Teams, across a restart.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use super::health::{ARGS, YEARLY, audit_actions, job_name, looks, running_since};
use crate::support::slack::{Message, ViewValue};
use crate::support::tester::{Answer, CHANNEL, Platforms};
use crate::support::{CronJobFixture, Resource, Tester};

const REASON: &str = "stuck on a lock; the next run redoes the day";

/// `etl` (at most 30 min) with a Job that has run for 2h 10m; returns the
/// Job's name and uid.
fn long_run(t: &Tester) -> (String, String) {
    t.kube.apply_cronjob(
        CronJobFixture::new("etl")
            .schedule(YEARLY)
            .annotation("rerun-bot.io/max-duration", "30m")
            .build(),
    );
    let job = running_since(
        t,
        "etl",
        Utc::now() - chrono::Duration::minutes(131),
        chrono::Duration::minutes(130),
    );
    let uid = job["metadata"]["uid"].as_str().unwrap().to_string();
    (job_name(&job), uid)
}

fn job(t: &Tester, name: &str) -> Option<Value> {
    t.kube.get(Resource::Jobs, "default", name)
}

/// Jobs rerun-bot created (a stop creates none).
fn created(t: &Tester) -> usize {
    t.kube
        .list(Resource::Jobs, None)
        .iter()
        .filter(|j| j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot")
        .count()
}

/// The DELETEs of Job `name` the apiserver was sent.
fn deletes(t: &Tester, name: &str) -> Vec<Value> {
    t.kube
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path.ends_with(&format!("/jobs/{name}")))
        .map(|r| r.body.unwrap_or(Value::Null))
        .collect()
}

/// Waits until the Slack message `ts` reads `text`.
async fn reads(t: &Tester, at: &Message, text: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let current = t.slack.current_message(&at.channel, &at.ts).unwrap();
        if current.to_string().contains(text) {
            return current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the message never reads {text:?}: {current}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Alice clicks *Stop this run…* and gives a reason: the approval card.
async fn ask_stop(t: &Tester, alert: &Message, job: &str) -> Message {
    let answer = t.click("U_ALICE", alert, "stop_run").await;
    assert_eq!(answer.status, 200);
    let view = t.next_view().await;
    assert_eq!(view["callback_id"], "stop_reason");
    let shown = view.to_string();
    for part in [
        "Stop a run of CronJob",
        "had run for 2h 10m",
        "Approving deletes the Job",
        "Request stop",
    ] {
        assert!(shown.contains(part), "the form lacks {part:?}: {view}");
    }
    let answer = t
        .submit(
            "U_ALICE",
            &view,
            &[("reason", ViewValue::Text(REASON.into()))],
        )
        .await;
    assert_eq!(answer.body, "", "the form closes");
    let card = t.slack.next_message().await;
    assert_eq!(card.thread_ts.as_deref(), Some(alert.ts.as_str()));
    let shown = card.render();
    for part in ["🛑 Stop request: default/etl", "Job to stop", job, REASON] {
        assert!(shown.contains(part), "the card lacks {part:?}: {shown}");
    }
    assert_eq!(card.buttons(), ["approve", "deny", "cancel"]);
    let status = t.slack.next_update().await;
    assert_eq!(status.ts, alert.ts);
    assert!(
        status
            .render()
            .contains(&format!("Stop of `{job}` requested")),
        "{}",
        status.render()
    );
    card
}

/// A long run, its alert, and Alice's stop request for it.
async fn asked(t: &Tester) -> (String, String, Message, Message) {
    let (name, uid) = long_run(t);
    let alert = t.slack.next_message().await;
    assert!(alert.render().contains("🐢"), "{}", alert.render());
    assert_eq!(alert.buttons(), ["stop_run", "hold"]);
    let card = ask_stop(t, &alert, &name).await;
    (name, uid, alert, card)
}

/// Takes every update of the alert and the card once the loop is quiet.
async fn finish(t: Tester, alert: &Message, card: &Message) {
    looks(&t, 3).await;
    t.slack.updates_of(&alert.ts);
    t.slack.updates_of(&card.ts);
    t.finish().await;
}

#[tokio::test]
async fn a_long_run_is_stopped_only_after_a_second_person_approves() {
    let t = Tester::with_args(ARGS).await;
    let (name, uid, alert, card) = asked(&t).await;

    // The requester cannot approve her own stop.
    t.click("U_ALICE", &card, "approve").await;
    let own = t.slack.next_ephemeral().await;
    assert!(own.render().contains("someone else"), "{}", own.render());
    assert!(
        job(&t, &name).is_some(),
        "nothing is deleted before approval"
    );
    assert!(deletes(&t, &name).is_empty());

    t.click("U_BOB", &card, "approve").await;
    t.kube
        .wait_for("the Job deleted", Duration::from_secs(10), |k| {
            k.get(Resource::Jobs, "default", &name).is_none()
        })
        .await;
    let sent = deletes(&t, &name);
    assert_eq!(sent.len(), 1, "one DELETE: {sent:?}");
    assert_eq!(
        sent[0]["preconditions"]["uid"],
        uid.as_str(),
        "exactly that Job"
    );
    assert_eq!(sent[0]["propagationPolicy"], "Background", "with its pods");
    let told = t.slack.next_message().await;
    assert_eq!(told.thread_ts.as_deref(), Some(alert.ts.as_str()));
    assert!(
        told.render().contains(&format!("Job `{name}` stopped")),
        "{}",
        told.render()
    );
    reads(&t, &card, "stopped (approved by").await;
    // The alert says the run is over, and offers no stop any more.
    reads(&t, &alert, "🗑️").await;
    let now = reads(&t, &alert, "Stopped at").await;
    assert!(now.to_string().contains("🗑️"), "{now}");
    assert!(!now.to_string().contains("stop_run"), "{now}");
    assert_eq!(created(&t), 0, "a stop creates no Job");

    // A late click on the card changes nothing.
    t.click("U_CAROL", &card, "approve").await;
    let late = t.slack.next_ephemeral().await;
    assert!(late.render().contains("already"), "{}", late.render());
    assert_eq!(deletes(&t, &name).len(), 1);

    let actions = audit_actions(&t).await;
    for action in [
        "stop.requested",
        "stop.approved",
        "stop.refused",
        "stop.done",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    assert!(
        !actions.iter().any(|a| a.starts_with("rerun.")),
        "{actions:?}"
    );
    finish(t, &alert, &card).await;
}

#[tokio::test]
async fn a_denied_stop_leaves_the_run_alone() {
    let t = Tester::with_args(ARGS).await;
    let (name, _, alert, card) = asked(&t).await;
    t.click("U_BOB", &card, "deny").await;
    reads(&t, &card, "Denied by").await;
    let now = reads(&t, &card, "The Job keeps running").await;
    assert!(
        !now.to_string().contains("\"approve\""),
        "no buttons: {now}"
    );
    reads(&t, &alert, "Stop denied by").await;
    assert!(job(&t, &name).is_some());
    assert!(deletes(&t, &name).is_empty());
    // Denied is final: a later approval changes nothing.
    t.click("U_CAROL", &card, "approve").await;
    let late = t.slack.next_ephemeral().await;
    assert!(
        late.render().contains("already denied"),
        "{}",
        late.render()
    );
    assert!(deletes(&t, &name).is_empty());
    let actions = audit_actions(&t).await;
    assert!(actions.iter().any(|a| a == "stop.denied"), "{actions:?}");
    finish(t, &alert, &card).await;
}

#[tokio::test]
async fn a_run_that_ends_before_the_approval_is_not_stopped() {
    let t = Tester::with_args(ARGS).await;
    let (name, _, alert, card) = asked(&t).await;
    t.kube.complete_job("default", &name);
    // The success ends the incident; its summary names the pending stop.
    let summary = t.slack.next_message().await;
    let shown = summary.render();
    assert!(shown.contains("Recovered"), "{shown}");
    assert!(
        shown.contains("Stop ") && shown.contains("pending"),
        "{shown}"
    );
    reads(&t, &alert, "succeeded after").await;

    t.click("U_BOB", &card, "approve").await;
    let told = t.slack.next_message().await;
    assert!(
        told.render().contains("The approved stop was not done"),
        "{}",
        told.render()
    );
    reads(&t, &card, "had succeeded before it could be stopped").await;
    assert!(
        job(&t, &name).is_some(),
        "the finished Job is left as it is"
    );
    assert!(deletes(&t, &name).is_empty());

    // The alert no longer offers a stop; an old button says why.
    t.click("U_ALICE", &alert, "stop_run").await;
    let why = t.slack.next_ephemeral().await;
    assert!(
        why.render().contains("already; nothing to stop"),
        "{}",
        why.render()
    );
    let actions = audit_actions(&t).await;
    assert!(actions.iter().any(|a| a == "stop.aborted"), "{actions:?}");
    finish(t, &alert, &card).await;
}

#[tokio::test]
async fn an_approval_never_deletes_a_new_job_of_the_same_name() {
    let t = Tester::with_args(ARGS).await;
    let (name, old_uid, alert, card) = asked(&t).await;
    // Someone deletes the Job by hand and starts it again, under the same name.
    t.kube.delete(Resource::Jobs, "default", &name);
    reads(&t, &alert, "🗑️").await;
    let again = running_since(
        &t,
        "etl",
        Utc::now() - chrono::Duration::minutes(131),
        chrono::Duration::minutes(1),
    );
    assert_eq!(job_name(&again), name);
    assert_ne!(again["metadata"]["uid"], old_uid.as_str());

    t.click("U_BOB", &card, "approve").await;
    let told = t.slack.next_message().await;
    assert!(
        told.render().contains("it was gone already"),
        "{}",
        told.render()
    );
    let still = job(&t, &name).expect("the new Job runs on");
    assert_eq!(still["metadata"]["uid"], again["metadata"]["uid"]);
    assert!(deletes(&t, &name).is_empty(), "the bot sent no DELETE");
    finish(t, &alert, &card).await;
}

#[tokio::test]
async fn an_approved_stop_is_carried_out_after_a_restart() {
    let mut t = Tester::with_args(ARGS).await;
    let (name, _, alert, card) = asked(&t).await;
    // The apiserver answers nothing about the Job for a while: the approval
    // is recorded, the stop waits.
    let path = format!("/apis/batch/v1/namespaces/default/jobs/{name}");
    t.kube.fail_next("GET", &path, 3, 500, None);
    t.click("U_BOB", &card, "approve").await;
    reads(&t, &card, "stopping Job").await;
    looks(&t, 15).await;
    assert!(job(&t, &name).is_some());

    t.restart().await;
    t.kube
        .wait_for("the Job deleted", Duration::from_secs(10), |k| {
            k.get(Resource::Jobs, "default", &name).is_none()
        })
        .await;
    let told = t.slack.next_message().await;
    assert!(
        told.render().contains(&format!("Job `{name}` stopped")),
        "{}",
        told.render()
    );
    reads(&t, &card, "stopped (approved by").await;
    assert_eq!(deletes(&t, &name).len(), 1);
    let actions = audit_actions(&t).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "stop.done").count(),
        1,
        "{actions:?}"
    );
    finish(t, &alert, &card).await;
}

fn said(answer: &Answer) -> String {
    answer.json()["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn the_stop_command_asks_for_a_running_job_and_refuses_what_it_cannot_stop() {
    let t = Tester::with_args(ARGS).await;
    let (name, _) = long_run(&t);
    let alert = t.slack.next_message().await;
    t.kube.spawn_bare_job("default", "by-hand");
    // Another run of etl succeeds: the incident closes, the long one runs on.
    let ended = t.succeed_job("etl").await;
    let summary = t.slack.next_message().await;
    assert!(
        summary.render().contains("Recovered"),
        "{}",
        summary.render()
    );
    // The alert still offers to stop the long run (its rerun actions go).
    let recovered = reads(&t, &alert, "recovered").await;
    assert!(recovered.to_string().contains("stop_run"), "{recovered}");
    for (text, says) in [
        (
            "nope-1 --reason x".to_string(),
            "No Job `nope-1`".to_string(),
        ),
        (
            format!("{name} -n other --reason x"),
            "in namespace `other`".into(),
        ),
        ("Bad_Name --reason x".into(), "not a valid Job name".into()),
        (
            "by-hand --reason x".into(),
            "not a Job of a CronJob rerun-bot watches".into(),
        ),
        (
            format!("{ended} --reason x"),
            "has succeeded already".into(),
        ),
        ("--reason x".into(), "Which Job?".into()),
    ] {
        let answer = t.command("U_ALICE", CHANNEL, "/stop", &text).await;
        assert_eq!(answer.status, 200);
        assert!(said(&answer).contains(&says), "{text}: {}", answer.body);
    }
    assert_eq!(
        t.slack.calls("chat.postMessage").len(),
        2,
        "nothing was requested"
    );

    // Without a reason: the form.
    let answer = t.command("U_ALICE", CHANNEL, "/stop", &name).await;
    assert_eq!(answer.status, 200);
    let view = t.next_view().await;
    assert_eq!(view["callback_id"], "stop_reason");
    assert!(view.to_string().contains("has run for 2h 10m"), "{view}");

    let answer = t
        .command(
            "U_ALICE",
            CHANNEL,
            "/stop",
            &format!("{name} --reason \"{REASON}\""),
        )
        .await;
    assert!(
        said(&answer).contains(&format!("Stop of Job `default/{name}` requested")),
        "{}",
        answer.body
    );
    let card = t.slack.next_message().await;
    assert_eq!(
        card.thread_ts, None,
        "the card goes where the command was typed"
    );
    assert!(
        card.render().contains("🛑 Stop request: default/etl"),
        "{}",
        card.render()
    );
    // The Job's long-run alert shows the request too.
    reads(&t, &alert, &format!("Stop of `{name}` requested")).await;
    t.click("U_BOB", &card, "approve").await;
    t.kube
        .wait_for("the Job deleted", Duration::from_secs(10), |k| {
            k.get(Resource::Jobs, "default", &name).is_none()
        })
        .await;
    let told = t.slack.next_message().await;
    assert_eq!(told.thread_ts.as_deref(), Some(card.ts.as_str()));
    assert!(told.render().contains("stopped"), "{}", told.render());
    assert!(job(&t, "by-hand").is_some() && job(&t, &ended).is_some());
    reads(&t, &alert, "Stopped at").await;
    finish(t, &alert, &card).await;
}

#[tokio::test]
async fn teams_gets_the_long_run_card_and_stops_the_run_after_approval() {
    let t = Tester::on(Platforms::Teams, ARGS).await;
    let (name, _) = long_run(&t);
    let teams = t.teams();
    let alert = teams.next_message().await;
    let shown = alert.render();
    assert!(
        shown.contains("🐢 CronJob default/etl running for 2h 10m (max 30m)"),
        "{shown}"
    );
    assert!(shown.contains("waiting for lock"), "the log tail: {shown}");
    assert!(alert.has_button("stop_run"), "{:?}", alert.buttons());
    assert!(alert.has_button("hold"), "{:?}", alert.buttons());
    assert!(shown.contains("Stop this run"), "{shown}");

    let fetched = teams.click("alice", &alert, "stop_run").await;
    let dialog = fetched.dialog().expect("Stop this run opens a dialog");
    assert!(
        dialog.render().contains("had run for 2h 10m"),
        "{}",
        dialog.render()
    );
    let submitted = teams
        .submit_dialog("alice", &dialog, &[("reason", REASON)])
        .await;
    assert!(submitted.dialog().is_none(), "{:?}", submitted.body);
    let card = teams.next_message().await;
    assert_eq!(card.root.as_deref(), Some(alert.activity_id.as_str()));
    assert!(
        card.render().contains("🛑 Stop request: default/etl"),
        "{}",
        card.render()
    );

    let own = teams.click("alice", &card, "approve").await;
    assert!(own.text().unwrap_or_default().contains("someone else"));
    let approved = teams.click("bob", &card, "approve").await;
    assert_eq!(approved.status, 200);
    t.kube
        .wait_for("the Job deleted", Duration::from_secs(10), |k| {
            k.get(Resource::Jobs, "default", &name).is_none()
        })
        .await;
    let told = teams.next_message().await;
    assert!(told.render().contains("stopped"), "{}", told.render());
    // The alert says the run was deleted, and offers no stop any more.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = teams.current(&alert.activity_id).expect("the alert");
        let shown = now.render();
        if shown.contains("deleted after 2h 10m") && shown.contains("Stopped at") {
            assert!(!now.has_button("stop_run"), "{:?}", now.buttons());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", now.render());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    looks(&t, 3).await;
    teams.updates_of(&alert.activity_id);
    teams.updates_of(&card.activity_id);
    // Microsoft's parser reads every card at finish.
    t.finish().await;
}
