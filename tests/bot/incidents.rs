//! Incidents: a CronJob's failures are one alert and its thread until a Job
//! of it succeeds; then the alert says it recovered and the thread sums up.

use std::time::Duration;

use serde_json::json;

use crate::support::tester::{CHANNEL, Platforms};
use crate::support::{CronJobFixture, Failure, Resource, Tester};

const AUDIT_TOKEN: &str = "incident-audit-token";

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
        .collect()
}

#[tokio::test]
async fn three_failures_then_a_success_are_one_incident_that_closes() {
    let t = Tester::with_args(&["--audit-token", AUDIT_TOKEN]).await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let first = t.slack.next_message().await;
    assert_eq!(first.thread_ts, None);
    let shown = first.render();
    assert!(
        shown.contains("🚨 CronJob default/billing-sync failed"),
        "{shown}"
    );
    assert!(shown.contains("No success seen"), "{shown}");
    assert!(shown.contains("last runs ✗"), "{shown}");

    for n in 2..=3 {
        t.fail_job("billing-sync", Failure::oom_killed()).await;
        let reply = t.slack.next_message().await;
        assert_eq!(reply.thread_ts.as_deref(), Some(first.ts.as_str()));
        assert!(
            reply
                .render()
                .contains(&format!("Failure #{n} of this incident")),
            "{}",
            reply.render()
        );
        let parent = t.slack.next_update().await;
        assert_eq!(parent.ts, first.ts);
        let text = parent.render();
        assert!(
            text.contains(&format!("failed {n} times in a row")),
            "headline: {text}"
        );
        assert!(
            text.contains(&format!("Failed {n} times in a row since")),
            "{text}"
        );
    }

    let ok = t.succeed_job("billing-sync").await;
    let recovered = t.slack.next_update().await;
    assert_eq!(recovered.ts, first.ts);
    let text = recovered.render();
    assert!(
        text.contains("✅ CronJob default/billing-sync recovered"),
        "{text}"
    );
    assert!(text.contains(&format!("`{ok}`")), "{text}");
    assert!(text.contains("after 3 failures"), "{text}");
    assert!(text.contains("last runs ✗ ✗ ✗ ✓"), "{text}");
    assert_eq!(
        recovered.buttons(),
        ["hold"],
        "Rerun buttons go, Hold stays"
    );
    let summary = t.slack.next_message().await;
    assert_eq!(summary.thread_ts.as_deref(), Some(first.ts.as_str()));
    let line = summary.render();
    assert!(line.contains("Recovered"), "{line}");
    assert!(line.contains("3 failures"), "{line}");
    assert!(line.contains("No reruns"), "{line}");

    // The next failure opens a new incident: a new top-level alert.
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let again = t.slack.next_message().await;
    assert_eq!(again.thread_ts, None, "a new incident");
    assert_ne!(again.ts, first.ts);
    let text = again.render();
    assert!(text.contains("Last success"), "{text}");
    assert!(text.contains("✓ ✗"), "{text}");
    let actions = audit_actions(&t).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "incident.recovered")
            .count(),
        1,
        "{actions:?}"
    );
    t.finish().await;
}

#[tokio::test]
async fn replayed_and_older_successes_do_not_close_an_incident() {
    let mut t = Tester::start().await;
    t.kube.apply_cronjob(billing_sync().build());
    // A success from before the failure (the cluster keeps a few old Jobs).
    t.succeed_job("billing-sync").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let first = t.slack.next_message().await;
    assert!(
        first.render().contains("Last success"),
        "{}",
        first.render()
    );
    // Recorded as posted (a stop mid-post would post it again after the restart).
    t.wait_metric("rerun_bot_alerts_posted_total 1").await;

    // A restart replays every Job: the old success ends nothing.
    t.restart().await;
    t.slack.expect_quiet(Duration::from_millis(800)).await;
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let reply = t.slack.next_message().await;
    assert_eq!(
        reply.thread_ts.as_deref(),
        Some(first.ts.as_str()),
        "{}",
        reply.render()
    );
    t.slack.next_update().await;
    t.finish().await;
}

#[tokio::test]
async fn a_rerun_that_succeeds_closes_the_incident_and_is_in_its_summary() {
    let t = Tester::with_args(&["--audit-token", AUDIT_TOKEN]).await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let alert = t.slack.next_message().await;
    t.command(
        "U_ALICE",
        CHANNEL,
        "/rerun",
        "billing-sync --reason \"db fixed\" --ticket INC-7",
    )
    .await;
    let card = t.slack.next_message().await;
    t.click("U_BOB", &card, "approve").await;
    t.slack.next_update().await; // approved
    let created = t.slack.next_message().await;
    assert!(created.render().contains("created"), "{}", created.render());
    t.slack.next_update().await; // card: created
    let job = t
        .kube
        .list(Resource::Jobs, None)
        .into_iter()
        .find(|j| j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot")
        .expect("the rerun Job");
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    t.kube.complete_job("default", &name);
    let done = t.slack.next_message().await;
    assert!(done.render().contains("succeeded"), "{}", done.render());
    t.slack.next_update().await; // card: succeeded
    let recovered = t.slack.next_update().await;
    assert_eq!(recovered.ts, alert.ts);
    let text = recovered.render();
    assert!(text.contains("recovered"), "{text}");
    assert!(text.contains("(a rerun)"), "{text}");
    let summary = t.slack.next_message().await;
    assert_eq!(summary.thread_ts.as_deref(), Some(alert.ts.as_str()));
    let line = summary.render();
    for part in [
        "<@U_ALICE>",
        "approved by <@U_BOB>",
        "db fixed",
        "INC-7",
        "succeeded",
    ] {
        assert!(line.contains(part), "summary lacks {part}: {line}");
    }
    assert!(
        audit_actions(&t)
            .await
            .contains(&"incident.recovered".to_string())
    );
    t.finish().await;
}

#[tokio::test]
async fn an_incident_older_than_the_resurface_age_comes_back_to_the_top() {
    let t = Tester::with_args(&["--thread-window", "0s"]).await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let first = t.slack.next_message().await;
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let second = t.slack.next_message().await;
    assert_eq!(second.thread_ts, None, "re-surfaced at the top");
    let text = second.render();
    assert!(text.contains("failed 2 times in a row"), "{text}");
    assert!(text.contains("goes on from an alert posted"), "{text}");
    assert_ne!(first.ts, second.ts);
    t.finish().await;
}

#[tokio::test]
async fn last_success_comes_from_the_cronjob_status_when_the_bot_saw_none() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(billing_sync().build());
    t.kube
        .update(Resource::CronJobs, "default", "billing-sync", |cj| {
            cj["status"] = json!({"lastSuccessfulTime": "2026-11-30T03:04:05Z"});
        });
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let text = t.slack.next_message().await.render();
    assert!(text.contains("Last success"), "{text}");
    assert!(text.contains("2026-11-30 03:04 UTC"), "{text}");
    t.finish().await;
}

#[tokio::test]
async fn history_survives_a_restart_after_the_jobs_are_gone() {
    let mut t = Tester::start().await;
    t.kube.apply_cronjob(billing_sync().build());
    let ok = t.succeed_job("billing-sync").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // The history limit deletes the old Job.
    t.kube.delete(Resource::Jobs, "default", &ok);
    t.restart().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let text = t.slack.next_message().await.render();
    assert!(text.contains("last runs ✓ ✗"), "{text}");
    t.finish().await;
}

#[tokio::test]
async fn teams_alert_recovers_in_place() {
    let t = Tester::on(Platforms::Teams, &[]).await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let alert = t.teams().next_message().await;
    assert!(alert.has_button("rerun"), "{:?}", alert.buttons());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let reply = t.teams().next_message().await;
    assert_eq!(reply.root.as_deref(), Some(alert.activity_id.as_str()));
    let parent = t.teams().next_update_of(&alert.activity_id).await;
    assert!(
        parent.render().contains("failed 2 times in a row"),
        "{}",
        parent.render()
    );

    t.succeed_job("billing-sync").await;
    let recovered = t.teams().next_update_of(&alert.activity_id).await;
    let text = recovered.render();
    assert!(text.contains("recovered"), "{text}");
    assert!(!recovered.has_button("rerun"), "{:?}", recovered.buttons());
    assert!(recovered.has_button("hold"), "{:?}", recovered.buttons());
    let summary = t.teams().next_message().await;
    assert_eq!(summary.root.as_deref(), Some(alert.activity_id.as_str()));
    assert!(
        summary.render().contains("Recovered"),
        "{}",
        summary.render()
    );
    t.finish().await;
}

#[tokio::test]
async fn snoozed_failures_count_in_the_incident_and_the_end_is_told_in_its_thread() {
    let t = Tester::with_args(&["--audit-token", AUDIT_TOKEN]).await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let first = t.slack.next_message().await;
    let answer = t
        .command(
            "U_BOB",
            CHANNEL,
            "/snooze",
            "billing-sync 3s --reason \"db migration\"",
        )
        .await;
    assert_eq!(answer.status, 200);

    // Snoozed: the failure is counted on the alert, posted nowhere.
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let counted = t.slack.next_update().await;
    assert_eq!(counted.ts, first.ts);
    let text = counted.render();
    assert!(text.contains("failed 2 times in a row"), "{text}");
    assert!(text.contains("🔕 Snoozed by <@U_BOB>"), "{text}");
    assert!(text.contains("db migration"), "{text}");

    // The snooze runs out: one line in the thread, the alert loses the snooze.
    let ended = t.slack.next_message().await;
    assert_eq!(ended.thread_ts.as_deref(), Some(first.ts.as_str()));
    let line = ended.render();
    assert!(line.contains("ended: 1 failure while snoozed"), "{line}");
    assert!(line.contains("still open"), "{line}");
    let after = t.slack.next_update().await;
    assert!(!after.render().contains("🔕"), "{}", after.render());
    let actions = audit_actions(&t).await;
    for a in ["alert.snoozed", "snooze.set", "snooze.ended"] {
        assert!(actions.iter().any(|x| x == a), "{a} not in {actions:?}");
    }
    t.finish().await;
}

#[tokio::test]
async fn a_snooze_until_recovered_ends_with_the_incident() {
    let t = Tester::with_args(&["--audit-token", AUDIT_TOKEN]).await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let first = t.slack.next_message().await;
    t.command("U_BOB", CHANNEL, "/snooze", "billing-sync until-recovered")
        .await;
    t.succeed_job("billing-sync").await;
    let recovered = t.slack.next_update().await;
    assert_eq!(recovered.ts, first.ts);
    assert!(
        recovered.render().contains("recovered"),
        "{}",
        recovered.render()
    );
    let summary = t.slack.next_message().await;
    assert!(
        summary.render().contains("Recovered"),
        "{}",
        summary.render()
    );
    let list = t.command("U_DAVE", CHANNEL, "/snooze", "list").await;
    assert!(
        !list.body.contains("default/billing-sync"),
        "the snooze ended: {}",
        list.body
    );
    t.finish().await;
}

#[tokio::test]
async fn the_history_of_a_deleted_cronjob_goes_with_the_retention() {
    let mut t = Tester::with_args(&["--audit-retention", "1s"]).await;
    t.kube.apply_cronjob(billing_sync().build());
    let ok = t.succeed_job("billing-sync").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    t.kube.delete(Resource::Jobs, "default", &ok);
    t.kube.delete(Resource::CronJobs, "default", "billing-sync");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // At the start of leadership the leader deletes what nothing needs.
    t.restart().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    t.kube.apply_cronjob(billing_sync().build());
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let text = t.slack.next_message().await.render();
    assert!(text.contains("No success seen · last runs ✗"), "{text}");
    t.finish().await;
}
