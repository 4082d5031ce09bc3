//! Maintenance holds: previewed, confirmed by the person who asked, applied
//! CronJob by CronJob, and undone exactly by `/resume`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::tester::{Answer, CHANNEL};
use crate::support::{CronJobFixture, Failure, Message, Resource, Tester};

const ADMIN: &str = "U_ADMIN";

/// The preview a command answered with, as a message the user can click on.
fn preview(answer: &Answer, user: &str) -> Message {
    let body = answer.json();
    assert!(
        body["blocks"].to_string().contains("confirm"),
        "expected a preview with buttons: {body}"
    );
    Message {
        channel: CHANNEL.into(),
        ts: String::new(),
        thread_ts: None,
        user: Some(user.into()),
        text: body["text"].as_str().unwrap_or_default().into(),
        blocks: body["blocks"].clone(),
        raw: body,
    }
}

fn text(answer: &Answer) -> String {
    answer.json()["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn cronjob(t: &Tester, ns: &str, name: &str) -> Value {
    t.kube.get(Resource::CronJobs, ns, name).unwrap()
}

fn suspended(t: &Tester, ns: &str, name: &str) -> bool {
    cronjob(t, ns, name)["spec"]["suspend"]
        .as_bool()
        .unwrap_or(false)
}

fn annotation(t: &Tester, ns: &str, name: &str, key: &str) -> Option<String> {
    cronjob(t, ns, name)["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_string)
}

async fn cluster(t: &Tester) {
    t.kube
        .apply_cronjob(CronJobFixture::new("billing-sync").build());
    t.kube
        .apply_cronjob(CronJobFixture::new("paused").suspended().build());
    t.kube
        .apply_cronjob(CronJobFixture::new("etl").terminate_on_hold().build());
    t.kube
        .apply_cronjob(CronJobFixture::new("reports").namespace("web").build());
    t.kube
        .wait_for("cronjobs", Duration::from_secs(5), |k| {
            k.list(Resource::CronJobs, None).len() == 4
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Types `/command text` as `user`, confirms the preview; returns the summary.
async fn confirmed(t: &Tester, user: &str, command: &str, args: &str, button: &str) -> Message {
    let answer = t.command(user, CHANNEL, command, args).await;
    let shown = preview(&answer, user);
    t.click(user, &shown, button).await;
    let progress = t.slack.next_message().await;
    assert_eq!(progress.channel, CHANNEL);
    let done = t.slack.next_update().await;
    assert_eq!(done.ts, progress.ts);
    done
}

#[tokio::test]
async fn hold_all_then_resume_restores_every_schedule_exactly() {
    let t = Tester::with_args(&["--admins", ADMIN, "--audit-token", "tok"]).await;
    cluster(&t).await;
    let etl_run = t.kube.spawn_job("default", "etl", chrono::Utc::now());
    let etl_run = etl_run["metadata"]["name"].as_str().unwrap().to_string();
    let other_run = t
        .kube
        .spawn_job("default", "billing-sync", chrono::Utc::now());
    let other_run = other_run["metadata"]["name"].as_str().unwrap().to_string();

    let answer = t
        .command(ADMIN, CHANNEL, "/hold", "all --reason \"db upgrade\"")
        .await;
    let preview_text = text(&answer);
    assert!(
        preview_text.contains("3 CronJobs will be suspended"),
        "{preview_text}"
    );
    assert!(
        preview_text.contains("1 already suspended"),
        "{preview_text}"
    );
    assert!(
        preview_text.contains(&etl_run),
        "running Jobs to terminate are listed: {preview_text}"
    );
    assert!(
        !suspended(&t, "default", "billing-sync"),
        "nothing before confirming"
    );

    let shown = preview(&answer, ADMIN);
    t.click(ADMIN, &shown, "hold_confirm").await;
    let progress = t.slack.next_message().await;
    let summary = t.slack.next_update().await.render();
    assert_eq!(progress.channel, CHANNEL);
    assert!(
        summary.contains("3 suspended, 1 already suspended"),
        "{summary}"
    );
    assert!(summary.contains(&etl_run), "{summary}");
    for (ns, name) in [
        ("default", "billing-sync"),
        ("default", "etl"),
        ("web", "reports"),
        ("default", "paused"),
    ] {
        assert!(suspended(&t, ns, name), "{ns}/{name}");
        assert!(annotation(&t, ns, name, "rerun-bot.io/hold-id").is_some());
        assert_eq!(
            annotation(&t, ns, name, "rerun-bot.io/held-by").as_deref(),
            Some(ADMIN)
        );
    }
    assert_eq!(
        annotation(
            &t,
            "default",
            "paused",
            "rerun-bot.io/suspended-before-hold"
        )
        .as_deref(),
        Some("true")
    );
    assert!(
        t.kube.get(Resource::Jobs, "default", &etl_run).is_none(),
        "terminate: deleted"
    );
    assert!(
        t.kube.get(Resource::Jobs, "default", &other_run).is_some(),
        "suspend only: kept"
    );
    let delete = t
        .kube
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(delete.body.unwrap()["propagationPolicy"], "Background");

    // Status shows the hold.
    let status = text(&t.command("U_ANY", CHANNEL, "/hold", "status").await);
    assert!(
        status.contains("db upgrade") && status.contains("4 CronJobs"),
        "{status}"
    );

    // While `all` is held, a new CronJob and one unsuspended by hand are held too.
    t.kube.apply_cronjob(CronJobFixture::new("late").build());
    let late = t.slack.next_message().await.render();
    assert!(
        late.contains("default/late") && late.contains("appeared"),
        "{late}"
    );
    assert!(suspended(&t, "default", "late"));
    t.kube.update(Resource::CronJobs, "web", "reports", |cj| {
        cj["spec"]["suspend"] = json!(false);
    });
    let again = t.slack.next_message().await.render();
    assert!(
        again.contains("web/reports") && again.contains("unsuspended by someone"),
        "{again}"
    );
    assert!(suspended(&t, "web", "reports"));

    let resumed = confirmed(&t, ADMIN, "/resume", "all", "resume_confirm").await;
    let summary = resumed.render();
    assert!(summary.contains("4 resumed, 1 left suspended"), "{summary}");
    assert!(
        summary.contains(&etl_run),
        "terminated Jobs are listed: {summary}"
    );
    // One click asks for a rerun of what the hold stopped (the normal four-eyes flow).
    assert_eq!(resumed.buttons(), ["rerun_cronjob:0"]);
    t.click("U_ALICE", &resumed, "rerun_cronjob:0").await;
    let view = t.next_view().await;
    assert_eq!(view["callback_id"], "rerun_reason");
    t.submit(
        "U_ALICE",
        &view,
        &[(
            "reason",
            crate::support::slack::ViewValue::Text("stopped by the hold".into()),
        )],
    )
    .await;
    let card = t.slack.next_message().await;
    assert_eq!(card.thread_ts.as_deref(), Some(resumed.ts.as_str()));
    assert!(card.render().contains("default/etl"), "{}", card.render());
    assert!(summary.contains("at most one catch-up run"), "{summary}");
    for name in ["billing-sync", "etl", "late"] {
        assert!(!suspended(&t, "default", name), "{name}");
    }
    assert!(
        suspended(&t, "default", "paused"),
        "suspended before: stays suspended"
    );
    assert!(!suspended(&t, "web", "reports"));
    for (ns, name) in [("default", "billing-sync"), ("default", "paused")] {
        assert!(annotation(&t, ns, name, "rerun-bot.io/hold-id").is_none());
    }

    // A namespace hold does not fight people: a CronJob unsuspended by hand is
    // reported by the resume, not touched.
    confirmed(&t, ADMIN, "/hold", "ns:web", "hold_confirm").await;
    t.kube.update(Resource::CronJobs, "web", "reports", |cj| {
        cj["spec"]["suspend"] = json!(false);
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let summary = confirmed(&t, ADMIN, "/resume", "ns:web", "resume_confirm")
        .await
        .render();
    assert!(
        summary.contains("0 resumed") && summary.contains("web/reports"),
        "{summary}"
    );
    assert!(summary.contains("Unsuspended by someone else"), "{summary}");

    let trail = rerun_bot::audit_client::fetch(&t.url(""), "tok", Some("1h"), None)
        .await
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e.event.action.as_str()).collect();
    let cycle = [
        "hold.planned",
        "hold.confirmed",
        "hold.applied",
        "resume.planned",
        "resume.confirmed",
        "resume.applied",
    ];
    let mut expected = cycle[..3].to_vec();
    expected.extend(["hold.extended", "hold.extended"]);
    expected.extend(&cycle[3..]);
    expected.push("rerun.requested");
    expected.extend(cycle); // the namespace hold and its resume
    assert_eq!(actions, expected);
    t.finish().await;
}

#[tokio::test]
async fn who_may_hold_and_bad_targets_change_nothing() {
    let t = Tester::with_args(&["--approvers", "U_BOB"]).await;
    cluster(&t).await;
    let nobody = text(&t.command("U_BOB", CHANNEL, "/hold", "all").await);
    assert!(nobody.contains("set `RERUN_BOT_ADMINS`"), "{nobody}");
    let ns = text(&t.command("U_BOB", CHANNEL, "/hold", "ns:web").await);
    assert!(ns.contains("RERUN_BOT_ADMINS"), "{ns}");
    let eve = text(&t.command("U_EVE", CHANNEL, "/hold", "billing-sync").await);
    assert!(eve.contains("not allowed to hold"), "{eve}");
    let unknown = text(&t.command("U_BOB", CHANNEL, "/hold", "nope").await);
    assert!(unknown.contains("No CronJob `nope`"), "{unknown}");
    let no_hold = text(
        &t.command("U_BOB", CHANNEL, "/resume", "hold-zzzzzzzz")
            .await,
    );
    assert!(no_hold.contains("No CronJob is on hold"), "{no_hold}");

    // An approver holds one CronJob; someone else cannot confirm their preview.
    let answer = t.command("U_BOB", CHANNEL, "/hold", "billing-sync").await;
    let shown = preview(&answer, "U_BOB");
    t.click("U_EVE", &shown, "hold_confirm").await;
    assert!(
        t.slack
            .next_ephemeral()
            .await
            .render()
            .contains("Only <@U_BOB>")
    );
    t.click("U_BOB", &shown, "hold_cancel").await;
    assert!(
        t.slack
            .next_ephemeral()
            .await
            .render()
            .contains("Nothing was changed")
    );
    t.click("U_BOB", &shown, "hold_confirm").await;
    assert!(
        t.slack
            .next_ephemeral()
            .await
            .render()
            .contains("already cancelled")
    );
    assert!(!suspended(&t, "default", "billing-sync"));
    assert_eq!(t.kube.count_requests("PATCH", "/apis/batch/v1"), 0);
    t.finish().await;
}

#[tokio::test]
async fn the_alert_hold_button_holds_that_cronjob_and_reruns_then_need_a_confirmation() {
    let t = Tester::start().await;
    cluster(&t).await;
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let alert = t.slack.next_message().await;
    t.click("U_BOB", &alert, "hold").await;
    let shown = t.slack.next_ephemeral().await;
    assert!(
        shown.render().contains("1 CronJob will be suspended"),
        "{}",
        shown.render()
    );
    t.click("U_BOB", &shown, "hold_confirm").await;
    t.slack.next_message().await;
    assert!(t.slack.next_update().await.render().contains("1 suspended"));
    assert!(suspended(&t, "default", "billing-sync"));
    assert!(!suspended(&t, "default", "etl"), "only that CronJob");
    t.finish().await;
}

#[tokio::test]
async fn apiserver_errors_are_retried_then_reported_never_skipped() {
    let t = Tester::with_args(&["--admins", ADMIN]).await;
    cluster(&t).await;
    // One CronJob's patch fails twice (then succeeds); another's always fails.
    t.kube.fail_next(
        "PATCH",
        "/apis/batch/v1/namespaces/default/cronjobs/billing-sync",
        2,
        500,
        None,
    );
    t.kube.fail_next(
        "PATCH",
        "/apis/batch/v1/namespaces/web/cronjobs/reports",
        100,
        500,
        None,
    );
    // And one is deleted between the preview and the confirm.
    let answer = t.command(ADMIN, CHANNEL, "/hold", "all").await;
    t.kube.delete(Resource::CronJobs, "default", "etl");
    t.click(ADMIN, &preview(&answer, ADMIN), "hold_confirm")
        .await;
    t.slack.next_message().await;
    let summary = t.slack.next_update().await.render();
    assert!(
        summary.contains("Failed") && summary.contains("web/reports"),
        "{summary}"
    );
    assert!(summary.contains("1 deleted meanwhile"), "{summary}");
    // The global hold tries the failed one once more, and says it could not.
    let again = t.slack.next_message().await.render();
    assert!(
        again.contains("web/reports") && again.contains("could not suspend"),
        "{again}"
    );
    assert!(suspended(&t, "default", "billing-sync"), "retried");
    assert!(!suspended(&t, "web", "reports"));
    t.kube.clear_faults();
    // Resume undoes what was held; the failed one was never held.
    let summary = confirmed(&t, ADMIN, "/resume", "all", "resume_confirm")
        .await
        .render();
    assert!(summary.contains("1 resumed, 1 left suspended"), "{summary}");
    assert!(!suspended(&t, "default", "billing-sync"));
    t.finish().await;
}

#[tokio::test]
async fn a_hold_interrupted_by_a_restart_is_finished_at_start() {
    let mut t = Tester::with_args(&["--admins", ADMIN]).await;
    cluster(&t).await;
    // The apiserver stalls patches in `web`; the bot dies while waiting.
    t.kube
        .fail_next("PATCH", "/apis/batch/v1/namespaces/web", 1000, 503, Some(1));
    let answer = t.command(ADMIN, CHANNEL, "/hold", "all").await;
    t.click(ADMIN, &preview(&answer, ADMIN), "hold_confirm")
        .await;
    let progress = t.slack.next_message().await;
    t.kube
        .wait_for("default held", Duration::from_secs(5), |k| {
            k.list(Resource::CronJobs, Some("default"))
                .iter()
                .all(|c| c["spec"]["suspend"] == true)
        })
        .await;
    t.stop().await;
    t.kube.clear_faults();
    assert!(!suspended(&t, "web", "reports"), "half applied");

    t.start_again().await;
    let summary = t.slack.next_update().await;
    assert_eq!(
        summary.ts, progress.ts,
        "the same message ends as the summary"
    );
    assert!(
        summary
            .render()
            .contains("3 suspended, 1 already suspended"),
        "{}",
        summary.render()
    );
    assert!(suspended(&t, "web", "reports"));
    // And /resume undoes all of it.
    let summary = confirmed(&t, ADMIN, "/resume", "all", "resume_confirm")
        .await
        .render();
    assert!(summary.contains("3 resumed, 1 left suspended"), "{summary}");
    t.finish().await;
}

#[tokio::test]
async fn a_large_hold_shows_progress_and_misses_nothing() {
    let t = Tester::with_args(&["--admins", ADMIN]).await;
    for i in 0..120 {
        t.kube.apply_cronjob(
            CronJobFixture::new(&format!("bulk-{i:03}"))
                .namespace("bulk")
                .build(),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = t
        .command(ADMIN, CHANNEL, "/hold", "ns:bulk --reason \"db move\"")
        .await;
    assert!(text(&answer).contains("120 CronJobs will be suspended"));
    t.click(ADMIN, &preview(&answer, ADMIN), "hold_confirm")
        .await;
    let progress = t.slack.next_message().await;
    assert!(
        progress.render().contains("0/120 CronJobs done"),
        "{}",
        progress.render()
    );
    for step in ["50/120", "100/120"] {
        let update = t.slack.next_update().await;
        assert!(update.render().contains(step), "{}", update.render());
    }
    let summary = t.slack.next_update().await.render();
    assert!(
        summary.contains("120 suspended") && summary.contains("db move"),
        "{summary}"
    );
    let held = t
        .kube
        .list(Resource::CronJobs, Some("bulk"))
        .iter()
        .filter(|c| c["spec"]["suspend"] == true)
        .count();
    assert_eq!(held, 120);
    t.finish().await;
}

#[tokio::test]
async fn until_reminds_then_resumes_by_itself() {
    let t = Tester::with_args(&["--admins", ADMIN, "--audit-token", "tok"]).await;
    cluster(&t).await;
    let answer = t
        .command(
            ADMIN,
            CHANNEL,
            "/hold",
            "ns:default --until 4s --reason \"short\"",
        )
        .await;
    assert!(
        text(&answer).contains("resumes by itself 4s after you confirm"),
        "{}",
        text(&answer)
    );
    t.click(ADMIN, &preview(&answer, ADMIN), "hold_confirm")
        .await;
    let progress = t.slack.next_message().await;
    let summary = t.slack.next_update().await.render();
    assert!(summary.contains("Resumes by itself"), "{summary}");
    assert!(suspended(&t, "default", "billing-sync"));

    let reminder = t.slack.next_message().await;
    assert_eq!(reminder.thread_ts.as_deref(), Some(progress.ts.as_str()));
    assert!(
        reminder.render().contains("resumes by itself"),
        "{}",
        reminder.render()
    );
    assert!(
        suspended(&t, "default", "billing-sync"),
        "not before its time"
    );

    let resumed = t.slack.next_message().await;
    assert!(
        resumed.render().contains("Resume hold-"),
        "{}",
        resumed.render()
    );
    let done = t.slack.next_update().await.render();
    assert!(done.contains("2 resumed, 1 left suspended"), "{done}");
    assert!(!suspended(&t, "default", "billing-sync"));
    assert!(
        suspended(&t, "default", "paused"),
        "suspended before: stays"
    );
    assert!(!suspended(&t, "web", "reports"), "never held");
    let trail = rerun_bot::audit_client::fetch(&t.url(""), "tok", Some("1h"), None)
        .await
        .unwrap();
    assert!(trail.iter().any(|e| e.event.action == "resume.automatic"));
    t.finish().await;
}
