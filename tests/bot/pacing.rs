//! Paced sending under Slack's real limits (the fake's limiter on: about one
//! `chat.postMessage` a second per channel after a burst of 5, `chat.update`
//! Tier 3): one queue per channel, interactive messages before alerts, 429s
//! rare, every alert posted once, other channels not held up.
//!
//! What is asserted is the order and number of calls the fake saw; how fast
//! the queue drains is the benchmark's (`storm_limited` in `benches/e2e.rs`).

use std::time::Duration;

use crate::support::slack::{ApiCall, RateLimits, ViewValue};
use crate::support::tester::CHANNEL;
use crate::support::{CronJobFixture, Failure, Tester};

const OTHER_CHANNEL: &str = "C_OTHER";

fn storm(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("storm-{i:02}")).collect()
}

/// The CronJob among `names` that a top-level post is the alert of.
fn alert_of(call: &ApiCall, names: &[String]) -> Option<String> {
    if call.params["thread_ts"]
        .as_str()
        .is_some_and(|t| !t.is_empty())
    {
        return None;
    }
    let body = call.params.to_string();
    names.iter().find(|n| body.contains(n.as_str())).cloned()
}

/// Waits (up to 10 s) until the fake has `n` messages.
async fn posted_at_least(t: &Tester, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while t.slack.calls("chat.postMessage").len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {n} messages posted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// No more than 1 call in 20 answered 429.
fn assert_few_429s(t: &Tester) {
    for method in ["chat.postMessage", "chat.update"] {
        let (limited, attempts) = (t.slack.rate_limited(method), t.slack.attempts(method));
        assert!(
            limited * 20 < attempts.max(1),
            "{method}: {limited} of {attempts} attempts answered 429"
        );
    }
}

fn assert_each_alerted_once(posts: &[ApiCall], names: &[String]) {
    for name in names {
        let n = posts
            .iter()
            .filter(|c| alert_of(c, names).as_deref() == Some(name.as_str()))
            .count();
        assert_eq!(n, 1, "{name} alerted {n} times");
    }
}

#[tokio::test]
async fn an_approval_card_goes_before_a_burst_of_alerts_drains() {
    let t = Tester::with_args(&["--storm-threshold", "0"]).await; // one alert each, no digest
    t.slack.enforce_rate_limits(RateLimits::slack());
    let names = storm(12);
    t.kube
        .apply_cronjob(CronJobFixture::new("billing-sync").build());
    for name in &names {
        t.kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let alert = t.slack.next_message().await;

    // A burst of failures in the same channel; once its first alerts are
    // out (the rest wait their turn), Alice asks for a rerun of billing-sync.
    for name in &names {
        t.fail_job(name, Failure::backoff_limit()).await;
    }
    posted_at_least(&t, 3).await;
    let answer = t.click("U_ALICE", &alert, "rerun").await;
    assert_eq!(answer.status, 200);
    let view = t.next_view().await;
    let answer = t
        .submit(
            "U_ALICE",
            &view,
            &[
                ("reason", ViewValue::Text("db is back".into())),
                ("ticket", ViewValue::Text("INC-7".into())),
            ],
        )
        .await;
    assert_eq!(answer.status, 200);

    let mut posts = Vec::new();
    for _ in 0..names.len() + 1 {
        posts.push(t.slack.next_call("chat.postMessage").await);
    }
    let updated = t.slack.next_update().await;
    assert_eq!(updated.ts, alert.ts);

    let card = posts
        .iter()
        .position(|c| c.params["thread_ts"].as_str() == Some(alert.ts.as_str()))
        .expect("the approval card, in the alert's thread");
    let alerts_after_card = posts[card..]
        .iter()
        .filter(|c| alert_of(c, &names).is_some())
        .count();
    assert!(
        alerts_after_card > 0,
        "the approval card waited until every alert was out:\n{:#?}",
        posts
            .iter()
            .map(|c| c.params["text"].clone())
            .collect::<Vec<_>>()
    );
    assert_each_alerted_once(&posts, &names);
    assert_eq!(t.slack.top_level_posts(CHANNEL), names.len() + 1);
    assert_few_429s(&t);
    t.finish().await;
}

#[tokio::test]
async fn a_second_channel_is_not_held_up_by_the_first() {
    let t = Tester::with_args(&["--storm-threshold", "0"]).await; // one alert each, no digest
    t.slack.enforce_rate_limits(RateLimits::slack());
    let names = storm(10);
    for name in &names {
        t.kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    t.kube.apply_cronjob(
        CronJobFixture::new("elsewhere")
            .channel(OTHER_CHANNEL)
            .build(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for name in &names {
        t.fail_job(name, Failure::backoff_limit()).await;
    }
    posted_at_least(&t, 1).await;
    t.fail_job("elsewhere", Failure::backoff_limit()).await;

    let mut posts = Vec::new();
    for _ in 0..names.len() + 1 {
        posts.push(t.slack.next_call("chat.postMessage").await);
    }
    let other = posts
        .iter()
        .position(|c| c.response["channel"] == OTHER_CHANNEL)
        .expect("the alert in the other channel");
    let first_channel_after = posts[other..]
        .iter()
        .filter(|c| c.response["channel"] == CHANNEL)
        .count();
    assert!(
        first_channel_after > 0,
        "the other channel's alert waited for the first channel's burst"
    );
    assert_each_alerted_once(&posts, &names);
    assert_eq!(t.slack.top_level_posts(CHANNEL), names.len());
    assert_eq!(t.slack.top_level_posts(OTHER_CHANNEL), 1);
    assert_few_429s(&t);
    t.finish().await;
}

#[tokio::test]
async fn a_429_pauses_the_channel_and_the_message_keeps_its_place() {
    let t = Tester::start().await;
    let names = storm(3);
    for name in &names {
        t.kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Slack says "wait a second" to the first alert: it is sent again after
    // the pause, once, and nothing is lost or doubled.
    t.slack.rate_limit_next("chat.postMessage", 1, 1);
    for name in &names {
        t.fail_job(name, Failure::backoff_limit()).await;
    }
    let mut posts = Vec::new();
    for _ in 0..names.len() {
        posts.push(t.slack.next_call("chat.postMessage").await);
    }
    assert_each_alerted_once(&posts, &names);
    let refused = &t.slack.attempt_log("chat.postMessage")[0];
    assert_eq!(refused.status, 429);
    assert_eq!(
        alert_of(refused, &names),
        alert_of(&posts[0], &names),
        "the refused alert is the first one posted after the pause"
    );
    assert_eq!(t.slack.rate_limited("chat.postMessage"), 1);
    assert_eq!(t.slack.attempts("chat.postMessage"), names.len() + 1);
    t.finish().await;
}
