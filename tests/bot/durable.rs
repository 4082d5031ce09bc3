//! A decision is recorded before it is acknowledged: the bot binary is killed
//! with SIGKILL right after Slack got its `200` for a deciding click, and the
//! bot started again on the same data finishes what was decided — exactly once.

use std::time::Duration;

use serde_json::Value;

use crate::support::process::{
    CHANNEL, SECRET, ask_rerun, click, command, eventually, reruns, spawn,
};
use crate::support::slack::Message;
use crate::support::{CronJobFixture, FakeKube, FakeSlack, Resource};

const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";

#[tokio::test]
async fn an_approval_acknowledged_then_killed_still_gets_its_one_job() {
    let kube = FakeKube::start().await;
    let slack = FakeSlack::start(SECRET).await;
    kube.apply_cronjob(CronJobFixture::new("billing-sync").build());
    let dir = tempfile::tempdir().unwrap();
    let bot = spawn(dir.path(), &kube, &slack, &[]).await;
    let card = ask_rerun(
        bot.port,
        &slack,
        "U_ALICE",
        "billing-sync --reason \"db was down\"",
    )
    .await;

    // The Job create never gets through before the kill.
    kube.fail_next("POST", JOBS, 10_000, 503, Some(30));
    assert_eq!(
        click(bot.port, &slack, "U_BOB", &card, "approve").await,
        200
    );
    bot.kill();
    kube.clear_faults();
    assert_eq!(reruns(&kube), 0, "killed before the Job was created");

    let bot = spawn(dir.path(), &kube, &slack, &[]).await;
    eventually("the approved Job is created after the restart", || {
        reruns(&kube) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reruns(&kube), 1, "exactly one");
    bot.kill();
    let bot = spawn(dir.path(), &kube, &slack, &[]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(reruns(&kube), 1, "a second restart creates nothing");
    drop(bot);
}

#[tokio::test]
async fn a_hold_confirm_acknowledged_then_killed_completes_after_the_restart() {
    let kube = FakeKube::start().await;
    let slack = FakeSlack::start(SECRET).await;
    for name in ["billing-sync", "etl", "reports"] {
        kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    let dir = tempfile::tempdir().unwrap();
    let bot = spawn(dir.path(), &kube, &slack, &[]).await;
    let answer: Value = serde_json::from_str(
        &command(bot.port, &slack, "U_ADMIN", "/hold", "all --reason upgrade").await,
    )
    .unwrap();
    let preview = Message {
        channel: CHANNEL.into(),
        ts: String::new(),
        thread_ts: None,
        user: Some("U_ADMIN".into()),
        text: answer["text"].as_str().unwrap_or_default().into(),
        blocks: answer["blocks"].clone(),
        raw: answer.clone(),
    };
    assert!(preview.has_button("hold_confirm"), "{answer}");

    // The apiserver stalls: the hold cannot get anywhere before the kill.
    kube.set_latency(Duration::from_secs(30));
    assert_eq!(
        click(bot.port, &slack, "U_ADMIN", &preview, "hold_confirm").await,
        200
    );
    bot.kill();
    kube.set_latency(Duration::ZERO);
    let suspended = |kube: &FakeKube| {
        kube.list(Resource::CronJobs, None)
            .iter()
            .filter(|c| c["spec"]["suspend"] == true)
            .count()
    };
    assert_eq!(suspended(&kube), 0, "killed before anything was held");

    let _bot = spawn(dir.path(), &kube, &slack, &[]).await;
    eventually("every CronJob held after the restart", || {
        suspended(&kube) == 3
    })
    .await;
}
