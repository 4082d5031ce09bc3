//! Snoozing a CronJob's alerts: `/snooze`, `/snooze list`, `/unsnooze`, the
//! alert's *Snooze…* (a Slack `static_select`, a Teams `Action.ShowCard`),
//! who may, what is audited, and the timer that ends a snooze.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::tester::{CHANNEL, Platforms};
use crate::support::{CronJobFixture, Failure, FakeKube, FakeSlack, Message, Tester};
use rerun_sim::teams::{FakeTeams, Kind};

const AUDIT_TOKEN: &str = "audit-secret";

fn billing_sync() -> CronJobFixture {
    CronJobFixture::new("billing-sync")
        .schedule("0 3 * * *")
        .backoff_limit(2)
}

async fn audit_actions(t: &Tester) -> Vec<String> {
    rerun_bot::audit_client::fetch(&t.url(""), AUDIT_TOKEN, Some("1h"), None)
        .await
        .expect("audit endpoint answers")
        .into_iter()
        .map(|e| e.event.action)
        .filter(|a| a.starts_with("snooze."))
        .collect()
}

/// `user` types `/command text`; what only they see (its blocks keep mentions).
async fn say(t: &Tester, user: &str, command: &str, text: &str) -> String {
    let answer = t.command(user, CHANNEL, command, text).await;
    assert_eq!(answer.status, 200);
    crate::support::slack::render_blocks(&answer.json()["blocks"])
}

async fn with_cronjob(args: &[&str]) -> Tester {
    let mut all = vec!["--audit-token", AUDIT_TOKEN];
    all.extend_from_slice(args);
    let t = Tester::with_args(&all).await;
    t.kube.apply_cronjob(billing_sync().build());
    tokio::time::sleep(Duration::from_millis(200)).await;
    t
}

#[tokio::test]
async fn snooze_by_command_is_stored_listed_audited_and_ended_by_unsnooze() {
    let t = with_cronjob(&["--approvers", "U_BOB,U_CAROL"]).await;
    let set = say(
        &t,
        "U_BOB",
        "/snooze",
        "billing-sync 4h --reason \"db migration\"",
    )
    .await;
    assert!(
        set.contains("Snoozed `default/billing-sync` until") && set.contains("not posted"),
        "{set}"
    );
    let list = say(&t, "U_DAVE", "/snooze", "list").await;
    for part in ["default/billing-sync", "<@U_BOB>", "db migration", "until"] {
        assert!(list.contains(part), "list lacks {part}: {list}");
    }

    // Not an approver: refused, audited.
    let refused = say(&t, "U_ALICE", "/snooze", "billing-sync 1h").await;
    assert!(
        refused.contains("not allowed to snooze") && refused.contains("Nothing was changed"),
        "{refused}"
    );
    // Someone else's snooze in force: nothing changes.
    let taken = say(&t, "U_CAROL", "/snooze", "billing-sync 1h").await;
    assert!(
        taken.contains("already snoozed by <@U_BOB> until")
            && taken.contains("nothing was changed"),
        "{taken}"
    );
    // The same person's: replaced.
    let again = say(&t, "U_BOB", "/snooze", "billing-sync until-recovered").await;
    assert!(again.contains("now lasts until it recovers"), "{again}");

    // Bad input: a clear answer, nothing changed.
    for (text, want) in [
        ("billing-sync soon", "is not a duration"),
        ("billing-sync 8d", "at most a week"),
        ("billing-sync", "For how long?"),
        ("no-such-job 1h", "No CronJob `no-such-job`"),
        ("", "until-recovered [--reason"),
    ] {
        let answer = say(&t, "U_BOB", "/snooze", text).await;
        assert!(answer.contains(want), "{text:?}: {answer}");
    }
    let unknown = say(&t, "U_CAROL", "/unsnooze", "no-such-job").await;
    assert!(unknown.contains("No CronJob `no-such-job`"), "{unknown}");
    let list = say(&t, "U_DAVE", "/snooze", "list").await;
    assert!(list.contains("until it recovers"), "{list}");

    let cleared = say(&t, "U_CAROL", "/unsnooze", "billing-sync").await;
    assert!(cleared.contains("no longer snoozed"), "{cleared}");
    let none = say(&t, "U_CAROL", "/unsnooze", "billing-sync -n default").await;
    assert!(
        none.contains("is not snoozed; nothing was changed"),
        "{none}"
    );
    let empty = say(&t, "U_DAVE", "/snooze", "list").await;
    assert!(empty.contains("No CronJob is snoozed"), "{empty}");

    assert_eq!(
        audit_actions(&t).await,
        [
            "snooze.set",
            "snooze.refused",
            "snooze.set",
            "snooze.cleared"
        ]
    );
    let help = say(&t, "U_DAVE", "/rerun", "help").await;
    assert!(
        help.contains("/snooze") && help.contains("/unsnooze"),
        "{help}"
    );
    assert!(
        t.slack.calls("chat.postMessage").is_empty(),
        "nothing posted"
    );
    t.finish().await;
}

#[tokio::test]
async fn a_snooze_ends_by_itself_when_its_time_is_up() {
    let t = with_cronjob(&[]).await;
    let set = say(&t, "U_BOB", "/snooze", "billing-sync 1s").await;
    assert!(set.contains("Snoozed"), "{set}");
    // The leader's timer ends it (audited by the bot) within a few ticks.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !audit_actions(&t)
        .await
        .contains(&"snooze.ended".to_string())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the snooze never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(audit_actions(&t).await, ["snooze.set", "snooze.ended"]);
    let ended = rerun_bot::audit_client::fetch(&t.url(""), AUDIT_TOKEN, Some("1h"), None)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event.action == "snooze.ended")
        .unwrap();
    assert_eq!(ended.event.actor, "rerun-bot");
    assert_eq!(ended.event.subject, "default/billing-sync");
    assert_eq!(ended.event.detail["why"], "expired");
    let list = say(&t, "U_DAVE", "/snooze", "list").await;
    assert!(list.contains("No CronJob is snoozed"), "{list}");
    t.finish().await;
}

/// The alert's `snooze` select, as Slack sends a choice of it: the action
/// carries `selected_option`, no `value`. `ephemeral`: the alert was only
/// for the clicker, so the payload has no `message` object.
fn select_payload(
    slack: &FakeSlack,
    user: &str,
    alert: &Message,
    label: &str,
    ephemeral: bool,
) -> Value {
    let select = alert
        .blocks
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .find(|e| e["action_id"] == "snooze")
        .unwrap_or_else(|| panic!("no snooze control:\n{}", alert.render()));
    assert_eq!(select["type"], "static_select");
    assert_eq!(select["placeholder"]["text"], "Snooze…");
    let option = select["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["text"]["text"] == label)
        .unwrap_or_else(|| panic!("no option {label}: {select}"))
        .clone();
    let mut payload = slack.block_action_payload(user, alert, "hold");
    payload["actions"] = json!([{
        "type": "static_select",
        "action_id": "snooze",
        "block_id": "alert_actions",
        "selected_option": option,
        "placeholder": select["placeholder"],
        "action_ts": "1700000000.000100",
    }]);
    if ephemeral {
        payload.as_object_mut().unwrap().remove("message");
        payload["container"]["is_ephemeral"] = json!(true);
    }
    payload
}

#[tokio::test]
async fn snooze_from_the_slack_alert_select_and_refused_for_a_non_approver() {
    let t = with_cronjob(&["--approvers", "U_BOB"]).await;
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let alert = t.slack.next_message().await;
    // Not an approver.
    let answer = t
        .interact(&select_payload(
            &t.slack, "U_ALICE", &alert, "1 hour", false,
        ))
        .await;
    assert_eq!(answer.status, 200);
    let refused = t.slack.next_ephemeral().await.render();
    assert!(refused.contains("not allowed to snooze"), "{refused}");

    // Bob picks "4 hours".
    t.interact(&select_payload(&t.slack, "U_BOB", &alert, "4 hours", false))
        .await;
    let done = t.slack.next_ephemeral().await.render();
    assert!(
        done.contains("Snoozed `default/billing-sync` until"),
        "{done}"
    );
    // Bob again, from a payload without a `message` object: replaced.
    t.interact(&select_payload(
        &t.slack,
        "U_BOB",
        &alert,
        "Until it recovers",
        true,
    ))
    .await;
    let replaced = t.slack.next_ephemeral().await.render();
    assert!(
        replaced.contains("now lasts until it recovers"),
        "{replaced}"
    );
    let list = say(&t, "U_BOB", "/snooze", "list").await;
    assert!(
        list.contains("default/billing-sync") && list.contains("until it recovers"),
        "{list}"
    );
    assert_eq!(
        audit_actions(&t).await,
        ["snooze.refused", "snooze.set", "snooze.set"]
    );
    t.finish().await;
}

#[tokio::test]
async fn snooze_from_the_teams_alert_card_and_by_command_in_teams() {
    let kube = FakeKube::start().await;
    let slack = FakeSlack::start(crate::support::tester::SIGNING_SECRET).await;
    let teams = FakeTeams::start(
        crate::support::tester::TEAMS_APP_ID,
        crate::support::tester::TEAMS_PASSWORD,
        crate::support::tester::TEAMS_TENANT,
    )
    .await;
    let bob = teams.user("bob").aad_object_id;
    let t = Tester::with_platforms(
        kube,
        slack,
        Some(teams),
        Platforms::Teams,
        &["--approvers", &bob, "--audit-token", AUDIT_TOKEN],
    )
    .await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let teams = t.teams();
    let alert = teams.next_message().await;
    let card = alert.card.clone().expect("an alert card");
    let show = card["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "Action.ShowCard")
        .expect("a Snooze… ShowCard")
        .clone();
    assert_eq!(show["title"], "Snooze…");
    let titles: Vec<&str> = show["card"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(
                (a["type"].as_str(), a["verb"].as_str()),
                (Some("Action.Execute"), Some("snooze"))
            );
            a["title"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        titles,
        ["1 hour", "4 hours", "24 hours", "Until it recovers"]
    );

    let dana = teams.click("dana", &alert, "24 hours").await;
    let refused = dana.text().expect("a text for Dana alone");
    assert!(refused.contains("not allowed to snooze"), "{refused}");
    let clicked = teams.click("bob", &alert, "24 hours").await;
    assert_eq!(clicked.status, 200);
    let text = clicked.text().expect("a text for Bob alone");
    assert!(
        text.contains("Snoozed") && text.contains("default/billing-sync"),
        "{text}"
    );

    // The same grammar by message: `snooze list`, `unsnooze`.
    let channel = t.teams_channel();
    teams.send_message("dana", &channel, "snooze list").await;
    let list = teams.next_message().await;
    assert_eq!(list.kind, Kind::Personal, "only Dana sees it");
    assert!(
        list.render().contains("default/billing-sync"),
        "{}",
        list.render()
    );
    teams
        .send_message("bob", &channel, "unsnooze billing-sync")
        .await;
    let cleared = teams.next_message().await;
    assert!(
        cleared.render().contains("no longer snoozed"),
        "{}",
        cleared.render()
    );
    assert_eq!(
        audit_actions(&t).await,
        ["snooze.refused", "snooze.set", "snooze.cleared"]
    );
    t.finish().await;
}
