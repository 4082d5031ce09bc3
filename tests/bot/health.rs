//! Schedule health: "⏰ did not start" when a due run has no Job within its
//! grace, "🐢 running for …" when a Job runs far too long — through the
//! real bot against the fake apiserver and Slack.
//!
//! CronJobs here run hourly (`0 * * * *`) and report (in their status) a
//! last run two hours back, so the run due at the top of this hour is
//! already missed once `rerun-bot.io/missed-after: 1s` is over; the loop
//! looks every 200 ms. "No alert" is asserted after several looks (the
//! `rerun_bot_schedule_checks_total` counter), never after a sleep.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use serde_json::{Value, json};

use crate::support::slack::ViewValue;
use crate::support::{CronJobFixture, Failure, Resource, Tester};

pub(super) const ARGS: &[&str] = &["--health-interval", "200ms", "--audit-token", AUDIT_TOKEN];
const AUDIT_TOKEN: &str = "health-audit";
/// Runs due once a year (1 January): no missed run gets in the way of a long one.
pub(super) const YEARLY: &str = "0 3 1 1 *";

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The top of the current hour: the slot an hourly CronJob was due last.
fn this_hour() -> DateTime<Utc> {
    let now = Utc::now();
    now - chrono::Duration::seconds(i64::from(now.minute() * 60 + now.second()))
        - chrono::Duration::nanoseconds(i64::from(now.nanosecond()))
}

fn hourly(name: &str) -> CronJobFixture {
    CronJobFixture::new(name)
        .schedule("0 * * * *")
        .owner("U_OWNER")
        .annotation("rerun-bot.io/missed-after", "1s")
}

/// Applies the CronJob as one that has run before: its status reports the
/// run due `last_run`.
fn apply_with_last_run(t: &Tester, fixture: CronJobFixture, last_run: DateTime<Utc>) -> String {
    let cj = fixture.build();
    let name = cj["metadata"]["name"].as_str().unwrap().to_string();
    t.kube.apply_cronjob(cj);
    t.kube.update(Resource::CronJobs, "default", &name, |c| {
        c["status"] = json!({"lastScheduleTime": rfc3339(last_run)});
    });
    name
}

async fn checks(t: &Tester) -> u64 {
    t.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("rerun_bot_schedule_checks_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the loop has looked `n` more times than now.
pub(super) async fn looks(t: &Tester, n: u64) {
    let target = checks(t).await + n;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while checks(t).await < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the schedule-health loop does not look"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(super) async fn audit_actions(t: &Tester) -> Vec<String> {
    rerun_bot::audit_client::fetch(&t.url(""), AUDIT_TOKEN, Some("1h"), None)
        .await
        .expect("audit endpoint answers")
        .into_iter()
        .map(|e| e.event.action)
        .collect()
}

pub(super) fn job_name(job: &Value) -> String {
    job["metadata"]["name"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_slot_with_no_job_is_one_did_not_start_alert() {
    let t = Tester::with_args(ARGS).await;
    apply_with_last_run(
        &t,
        hourly("report"),
        this_hour() - chrono::Duration::hours(2),
    );
    let alert = t.slack.next_message().await;
    let shown = alert.render();
    assert!(
        shown.contains("⏰ CronJob default/report did not start"),
        "{shown}"
    );
    assert!(shown.contains("Did not start"), "{shown}");
    assert!(shown.contains("Kubernetes created no Job"), "{shown}");
    assert!(shown.contains("U_OWNER"), "{shown}");
    assert_eq!(alert.thread_ts, None, "a new incident");
    let buttons = alert.buttons();
    assert_eq!(buttons, ["rerun", "hold"], "Run now and Hold");
    assert!(alert.blocks.to_string().contains("Run now"));
    // Once per slot: more looks add nothing.
    looks(&t, 5).await;
    t.slack.expect_quiet(Duration::from_millis(100)).await;
    assert!(
        audit_actions(&t)
            .await
            .contains(&"alert.posted".to_string())
    );
    t.finish().await;
}

#[tokio::test]
async fn more_than_100_missed_runs_say_set_starting_deadline_seconds() {
    let t = Tester::with_args(ARGS).await;
    apply_with_last_run(
        &t,
        hourly("report"),
        this_hour() - chrono::Duration::days(5),
    );
    let alert = t.slack.next_message().await;
    let shown = alert.render();
    assert!(shown.contains("did not start"), "{shown}");
    assert!(shown.contains("More than 100 runs were missed"), "{shown}");
    assert!(shown.contains("startingDeadlineSeconds"), "{shown}");
    t.finish().await;
}

#[tokio::test]
async fn a_job_for_the_slot_or_a_slot_within_its_grace_is_no_alert() {
    let t = Tester::with_args(ARGS).await;
    // The controller created the Job for this hour's run.
    apply_with_last_run(&t, hourly("ran"), this_hour() - chrono::Duration::hours(2));
    t.kube.spawn_job("default", "ran", this_hour());
    // Due, no Job yet, but within its grace of two hours.
    apply_with_last_run(
        &t,
        hourly("patient").annotation("rerun-bot.io/missed-after", "2h"),
        this_hour() - chrono::Duration::hours(2),
    );
    looks(&t, 5).await;
    t.finish().await;
}

#[tokio::test]
async fn forbid_behind_a_running_job_names_it() {
    let t = Tester::with_args(ARGS).await;
    let two_hours_ago = this_hour() - chrono::Duration::hours(2);
    // Suspended until its stuck run is there (and seen by the bot).
    apply_with_last_run(
        &t,
        hourly("report").concurrency_policy("Forbid").suspended(),
        two_hours_ago,
    );
    // The run of two hours ago still runs (and status says it was the last).
    let stuck = job_name(&t.kube.spawn_job("default", "report", two_hours_ago));
    looks(&t, 2).await;
    t.kube.update(Resource::CronJobs, "default", "report", |c| {
        c["spec"]["suspend"] = json!(false);
    });
    let alert = t.slack.next_message().await;
    let shown = alert.render();
    assert!(shown.contains("did not start"), "{shown}");
    assert!(shown.contains(&stuck), "names the running Job: {shown}");
    assert!(shown.contains("concurrencyPolicy: Forbid"), "{shown}");
    t.finish().await;
}

#[tokio::test]
async fn a_suspended_cronjob_misses_nothing() {
    let t = Tester::with_args(ARGS).await;
    apply_with_last_run(
        &t,
        hourly("paused").suspended(),
        this_hour() - chrono::Duration::hours(2),
    );
    looks(&t, 5).await;
    t.finish().await;
}

#[tokio::test]
async fn failures_only_opts_out_of_missed_and_long_runs_not_of_failures() {
    let t = Tester::with_args(ARGS).await;
    apply_with_last_run(
        &t,
        hourly("quiet")
            .annotation("rerun-bot.io/alerts", "failures-only")
            .annotation("rerun-bot.io/max-duration", "1m"),
        this_hour() - chrono::Duration::hours(2),
    );
    let running = job_name(&t.kube.spawn_job(
        "default",
        "quiet",
        this_hour() - chrono::Duration::hours(2),
    ));
    t.kube.update(Resource::Jobs, "default", &running, |j| {
        j["status"]["startTime"] = json!(rfc3339(Utc::now() - chrono::Duration::hours(1)));
    });
    looks(&t, 5).await;
    t.slack.expect_quiet(Duration::from_millis(100)).await;
    // A failure is still alerted.
    t.fail_job("quiet", Failure::backoff_limit()).await;
    let alert = t.slack.next_message().await;
    assert!(
        alert.render().contains("🚨 CronJob default/quiet failed"),
        "{}",
        alert.render()
    );
    t.finish().await;
}

#[tokio::test]
async fn a_restart_does_not_alert_the_same_slot_again() {
    let mut t = Tester::with_args(ARGS).await;
    apply_with_last_run(
        &t,
        hourly("report"),
        this_hour() - chrono::Duration::hours(2),
    );
    let alert = t.slack.next_message().await;
    assert!(alert.render().contains("did not start"));
    t.wait_metric("rerun_bot_alerts_posted_total 1").await;
    t.restart().await;
    looks(&t, 5).await;
    t.finish().await;
}

#[tokio::test]
async fn run_now_needs_a_second_person_then_creates_the_job() {
    let t = Tester::with_args(ARGS).await;
    apply_with_last_run(
        &t,
        hourly("report"),
        this_hour() - chrono::Duration::hours(2),
    );
    let alert = t.slack.next_message().await;
    assert!(alert.render().contains("did not start"));
    let answer = t.click("U_ALICE", &alert, "rerun").await;
    assert_eq!(answer.status, 200);
    let view = t.next_view().await;
    assert_eq!(view["callback_id"], "rerun_reason");
    assert!(
        view.to_string().contains("did not start"),
        "the form says what it is about: {view}"
    );
    let answer = t
        .submit(
            "U_ALICE",
            &view,
            &[("reason", ViewValue::Text("controller was down".into()))],
        )
        .await;
    assert_eq!(answer.body, "", "the form closes");
    let card = t.slack.next_message().await;
    assert_eq!(card.thread_ts.as_deref(), Some(alert.ts.as_str()));
    assert_eq!(card.buttons(), ["approve", "deny", "cancel"]);
    let requested = t.slack.next_update().await;
    assert_eq!(requested.ts, alert.ts);
    let reruns = |t: &Tester| {
        t.kube
            .list(Resource::Jobs, None)
            .into_iter()
            .filter(|j| j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot")
            .collect::<Vec<_>>()
    };
    // Alice cannot approve her own request.
    t.click("U_ALICE", &card, "approve").await;
    let own = t.slack.next_ephemeral().await;
    assert!(own.render().contains("someone else"), "{}", own.render());
    assert!(reruns(&t).is_empty());
    t.click("U_BOB", &card, "approve").await;
    t.kube
        .wait_for("the rerun Job", Duration::from_secs(10), |k| {
            k.list(Resource::Jobs, None)
                .iter()
                .any(|j| j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot")
        })
        .await;
    let jobs = reruns(&t);
    assert_eq!(jobs.len(), 1);
    let a = &jobs[0]["metadata"]["annotations"];
    assert_eq!(a["rerun-bot.io/requested-by"], "U_ALICE");
    assert_eq!(a["rerun-bot.io/approved-by"], "U_BOB");
    assert_eq!(a["rerun-bot.io/reason"], "controller was down");
    assert!(
        a.get("rerun-bot.io/source-job").is_none(),
        "no failed Job: {a}"
    );
    let created = t.slack.next_message().await;
    assert_eq!(created.thread_ts.as_deref(), Some(alert.ts.as_str()));
    let actions = audit_actions(&t).await;
    for action in ["rerun.requested", "rerun.approved", "rerun.created"] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    looks(&t, 3).await;
    t.slack.updates_of(&alert.ts);
    t.slack.updates_of(&card.ts);
    t.finish().await;
}

/// A scheduled Job of `cronjob` that started `ago` back and still runs.
pub(super) fn running_since(
    t: &Tester,
    cronjob: &str,
    slot: DateTime<Utc>,
    ago: chrono::Duration,
) -> Value {
    let job = t.kube.spawn_job("default", cronjob, slot);
    let name = job_name(&job);
    let uid = job["metadata"]["uid"].as_str().unwrap().to_string();
    for pod in t.kube.owned_by(Resource::Pods, &uid) {
        let pod = pod["metadata"]["name"].as_str().unwrap().to_string();
        t.kube.set_log(
            "default",
            &pod,
            "main",
            "step 1 done\nstep 2: waiting for lock…\n",
        );
    }
    t.kube.update(Resource::Jobs, "default", &name, |j| {
        j["status"]["startTime"] = json!(rfc3339(Utc::now() - ago));
    })
}

#[tokio::test]
async fn a_job_past_max_duration_is_alerted_then_updated_when_it_finishes() {
    let t = Tester::with_args(ARGS).await;
    t.kube.apply_cronjob(
        CronJobFixture::new("etl")
            .schedule(YEARLY)
            .annotation("rerun-bot.io/max-duration", "30m")
            .build(),
    );
    let job = running_since(
        &t,
        "etl",
        Utc::now() - chrono::Duration::minutes(131),
        chrono::Duration::minutes(130),
    );
    let name = job_name(&job);
    let alert = t.slack.next_message().await;
    let shown = alert.render();
    assert!(
        shown.contains("🐢 CronJob default/etl running for 2h 10m (max 30m)"),
        "{shown}"
    );
    assert!(shown.contains(&name), "{shown}");
    assert!(shown.contains("rerun-bot.io/max-duration"), "{shown}");
    assert!(shown.contains("waiting for lock"), "the log tail: {shown}");
    assert_eq!(alert.buttons(), ["stop_run", "hold"]);
    looks(&t, 3).await;
    t.slack.expect_quiet(Duration::from_millis(100)).await;

    t.kube.complete_job("default", &name);
    // The success ends the incident; the thread sums it up.
    let summary = t.slack.next_message().await;
    assert_eq!(summary.thread_ts.as_deref(), Some(alert.ts.as_str()));
    assert!(
        summary.render().contains("Recovered"),
        "{}",
        summary.render()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let current = t.slack.current_message(&alert.channel, &alert.ts).unwrap();
        if current.to_string().contains("succeeded after 2h 10m") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the alert never says how the run ended: {current}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every update of the alert (the incident's and the run's) has gone out.
    looks(&t, 3).await;
    t.slack.updates_of(&alert.ts);
    t.finish().await;
}

#[tokio::test]
async fn without_max_duration_three_times_the_usual_duration_is_too_long() {
    let t = Tester::with_args(ARGS).await;
    t.kube
        .apply_cronjob(CronJobFixture::new("etl").schedule(YEARLY).build());
    // Three successful runs of five minutes each.
    for n in 0..3 {
        let slot = Utc::now() - chrono::Duration::hours(10 - n);
        let job = running_since(&t, "etl", slot, chrono::Duration::minutes(5));
        t.kube.complete_job("default", &job_name(&job));
    }
    // Fourteen minutes is within the rule (at least 10 minutes over 5m)…
    let fine = running_since(
        &t,
        "etl",
        Utc::now() - chrono::Duration::hours(5),
        chrono::Duration::minutes(14),
    );
    looks(&t, 3).await;
    t.slack.expect_quiet(Duration::from_millis(100)).await;
    // …an hour is not.
    let slow = running_since(
        &t,
        "etl",
        Utc::now() - chrono::Duration::hours(4),
        chrono::Duration::minutes(60),
    );
    let alert = t.slack.next_message().await;
    let shown = alert.render();
    assert!(
        shown.contains("🐢 CronJob default/etl running for 1h (usually 5m)"),
        "{shown}"
    );
    assert!(shown.contains(&job_name(&slow)), "{shown}");
    assert!(!shown.contains(&job_name(&fine)), "{shown}");
    t.kube
        .fail_job("default", &job_name(&slow), Failure::backoff_limit());
    // Its failure comes into the thread; the alert says it failed.
    let failed = t.slack.next_message().await;
    assert_eq!(failed.thread_ts.as_deref(), Some(alert.ts.as_str()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let current = t.slack.current_message(&alert.channel, &alert.ts).unwrap();
        if current.to_string().contains("failed after") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the alert never says the run failed: {current}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every update of the alert (the incident's and the run's) has gone out.
    looks(&t, 3).await;
    t.slack.updates_of(&alert.ts);
    t.finish().await;
}

#[tokio::test]
async fn bad_schedules_and_annotations_are_no_alert_and_no_panic() {
    let t = Tester::with_args(ARGS).await;
    let last = this_hour() - chrono::Duration::hours(2);
    apply_with_last_run(&t, hourly("garbled").schedule("every day at noon"), last);
    apply_with_last_run(&t, hourly("interval").schedule("@every 1h"), last);
    apply_with_last_run(&t, hourly("martian").time_zone("Mars/Olympus"), last);
    apply_with_last_run(
        &t,
        hourly("absurd")
            .annotation("rerun-bot.io/missed-after", "never")
            .annotation("rerun-bot.io/max-duration", "-3"),
        this_hour(),
    );
    looks(&t, 5).await;
    t.slack.expect_quiet(Duration::from_millis(100)).await;
    // The loop goes on for the CronJobs that are fine.
    apply_with_last_run(&t, hourly("fine"), last);
    let alert = t.slack.next_message().await;
    assert!(
        alert.render().contains("default/fine did not start"),
        "{}",
        alert.render()
    );
    assert_eq!(t.get("/healthz").await.status, 200);
    t.finish().await;
}

#[tokio::test]
async fn missed_runs_off_is_no_alert() {
    let t = Tester::with_args(&["--health-interval", "200ms", "--missed-runs", "off"]).await;
    apply_with_last_run(
        &t,
        hourly("report"),
        this_hour() - chrono::Duration::hours(2),
    );
    looks(&t, 5).await;
    t.finish().await;
}

#[tokio::test]
async fn teams_gets_the_did_not_start_card_with_run_now_and_hold() {
    let t = Tester::on(crate::support::tester::Platforms::Teams, ARGS).await;
    apply_with_last_run(
        &t,
        hourly("report"),
        this_hour() - chrono::Duration::hours(2),
    );
    let card = t.teams().next_message().await;
    let shown = card.render();
    assert!(
        shown.contains("⏰ CronJob default/report did not start"),
        "{shown}"
    );
    assert!(shown.contains("Kubernetes created no Job"), "{shown}");
    assert!(card.has_button("rerun"), "{:?}", card.buttons());
    assert!(card.has_button("hold"), "{:?}", card.buttons());
    assert!(shown.contains("Run now"), "{shown}");
    looks(&t, 3).await;
    // Microsoft's parser reads the card at finish.
    t.finish().await;
}
