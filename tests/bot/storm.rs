//! Storm digests: many CronJobs failing in one channel at once are one
//! digest message, with a line per CronJob in its thread.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::tester::{CHANNEL, Platforms};
use crate::support::{CronJobFixture, Failure, Tester};

fn names(n: usize, from: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("sync-{i:03}")).collect()
}

/// Applies the CronJobs, then fails one Job of each.
async fn fail_all(t: &Tester, names: &[String]) {
    for n in names {
        t.kube
            .apply_cronjob(CronJobFixture::new(n).schedule("0 3 * * *").build());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in names {
        t.fail_job(n, Failure::backoff_limit()).await;
    }
}

/// Waits until the newest update `latest` takes (and renders) contains
/// `text` (a digest is updated at most every few seconds); then takes the
/// updates that still follow.
async fn headline(text: &str, mut latest: impl FnMut() -> Option<String>) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        if let Some(u) = latest() {
            last = u;
        }
        if last.contains(text) {
            tokio::time::sleep(Duration::from_millis(3500)).await;
            latest();
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the digest never said {text:?}; last: {last}");
}

/// [`headline`] of the Slack message `ts`.
async fn slack_headline(t: &Tester, ts: &str, text: &str) -> String {
    headline(text, || t.slack.updates_of(ts).last().map(|u| u.render())).await
}

/// [`headline`] of the Teams card `id`.
async fn teams_headline(t: &Tester, id: &str, text: &str) -> String {
    headline(text, || t.teams().updates_of(id).last().map(|u| u.render())).await
}

/// The CronJobs named in the digest thread's lines so far.
fn lined(lines: &[String]) -> HashSet<String> {
    lines
        .iter()
        .flat_map(|l| l.lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| {
            l.strip_prefix("• default/")
                .and_then(|r| r.split(' ').next())
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn a_storm_of_thirty_is_five_alerts_and_one_digest_with_its_thread() {
    let t = Tester::start().await;
    let storm = names(30, 0);
    fail_all(&t, &storm).await;

    // The first five had alerts of their own; the sixth started the storm.
    let mut alone = Vec::new();
    let mut digest = None;
    let mut lines = Vec::new();
    while lined(&lines).len() < 25 {
        let m = t.slack.next_message().await;
        match (&m.thread_ts, &digest) {
            (None, None) if m.render().contains("CronJobs failed since") => {
                assert!(m.has_button("rerun_failed"), "{:?}", m.buttons());
                digest = Some(m);
            }
            (None, _) => alone.push(m),
            (Some(ts), Some(d)) => {
                assert_eq!(ts, &d.ts, "lines go into the digest's thread");
                lines.push(m.render());
            }
            (Some(_), None) => panic!("a reply before the digest: {}", m.render()),
        }
    }
    assert_eq!(alone.len(), 5, "alerts before the storm was seen");
    let digest = digest.expect("one digest");
    assert_eq!(digest.channel, CHANNEL);
    assert!(
        lines.len() < 25,
        "lines are batched: {} thread messages for 25 CronJobs",
        lines.len()
    );
    for line in &lines {
        assert!(line.contains("BackoffLimitExceeded"), "{line}");
    }
    // Once the storm is known, an alert waits for its exit code: its line has it.
    assert!(lines.iter().any(|l| l.contains("exit code 1")), "{lines:?}");

    // The digest's headline catches up with the whole storm.
    let last = slack_headline(&t, &digest.ts, "30 CronJobs failed").await;
    assert!(last.contains("default"), "{last}");
    assert!(last.contains("…and 15 more"), "{last}");

    // A late 31st joins the storm: a line and an updated headline, no alert.
    fail_all(&t, &names(1, 30)).await;
    let line = t.slack.next_message().await;
    assert_eq!(line.thread_ts.as_deref(), Some(digest.ts.as_str()));
    assert!(line.render().contains("sync-030"), "{}", line.render());
    slack_headline(&t, &digest.ts, "31 CronJobs failed").await;

    // A repeated failure of a digest CronJob is a reply in the digest's thread.
    t.fail_job("sync-010", Failure::oom_killed()).await;
    let again = t.slack.next_message().await;
    assert_eq!(again.thread_ts.as_deref(), Some(digest.ts.as_str()));
    assert!(
        again.render().contains("failed again"),
        "{}",
        again.render()
    );
    t.finish().await;
}

#[tokio::test]
async fn storm_threshold_zero_turns_digests_off() {
    let t = Tester::with_args(&["--storm-threshold", "0"]).await;
    fail_all(&t, &names(8, 0)).await;
    for _ in 0..8 {
        let m = t.slack.next_message().await;
        assert_eq!(m.thread_ts, None);
        assert!(
            !m.render().contains("CronJobs failed since"),
            "{}",
            m.render()
        );
    }
    t.finish().await;
}

#[tokio::test]
async fn teams_storm_is_one_digest_card() {
    let t = Tester::on(Platforms::Teams, &["--storm-threshold", "2"]).await;
    fail_all(&t, &names(6, 0)).await;
    let mut digest = None;
    let mut alone = 0;
    let mut seen = HashSet::new();
    while seen.len() < 4 {
        let m = t.teams().next_message().await;
        match (&m.root, &digest) {
            (Some(root), Some(d)) if root == d => {
                seen.extend(lined(&[m.render()]));
            }
            _ if m.render().contains("CronJobs failed since") => {
                assert!(m.has_button("rerun_failed"), "{:?}", m.buttons());
                digest = Some(m.activity_id.clone());
            }
            _ => alone += 1,
        }
    }
    assert_eq!(alone, 2);
    teams_headline(&t, digest.as_deref().unwrap(), "6 CronJobs failed").await;
    t.finish().await;
}

#[tokio::test]
async fn rerun_all_failed_from_the_digest_is_one_batch_with_one_approval() {
    let t = Tester::with_args(&["--storm-threshold", "2", "--approvers", "U_BOB"]).await;
    let storm = names(4, 0);
    fail_all(&t, &storm).await;
    let mut digest = None;
    let mut lines = Vec::new();
    while lined(&lines).len() < 2 {
        let m = t.slack.next_message().await;
        match &m.thread_ts {
            None if m.render().contains("CronJobs failed since") => digest = Some(m),
            None => {}
            Some(_) => lines.push(m.render()),
        }
    }
    let digest = digest.expect("a digest");
    slack_headline(&t, &digest.ts, "4 CronJobs failed").await;

    // Rerun all failed…: a form for the reason, then one request for all four.
    let answer = t.click("U_ALICE", &digest, "rerun_failed").await;
    assert_eq!(answer.status, 200);
    let view = t.next_view().await;
    let submitted = t
        .submit(
            "U_ALICE",
            &view,
            &[(
                "reason",
                crate::support::slack::ViewValue::Text("db is back".into()),
            )],
        )
        .await;
    assert_eq!(submitted.status, 200);
    let card = t.slack.next_message().await;
    let shown = card.render();
    assert!(shown.contains("Rerun 4 failed CronJobs"), "{shown}");
    assert!(shown.contains("db is back"), "{shown}");
    assert!(card.has_button("batch_approve"), "{:?}", card.buttons());

    t.click("U_BOB", &card, "batch_approve").await;
    crate::batch::drain(&t, Duration::from_millis(1500)).await;
    let made: Vec<String> = t
        .kube
        .list(crate::support::Resource::Jobs, None)
        .into_iter()
        .filter(|j| j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot")
        .map(|j| j["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(made.len(), 4, "one Job per CronJob of the storm: {made:?}");
    for n in &storm {
        assert!(
            made.iter().any(|m| m.starts_with(&format!("{n}-rerun-"))),
            "{n}: {made:?}"
        );
    }
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_under_slacks_rate_limits_is_a_handful_of_posts_and_rare_429s() {
    let t = Tester::start().await;
    t.slack
        .enforce_rate_limits(rerun_sim::slack::RateLimits::slack());
    let storm = names(60, 0);
    fail_all(&t, &storm).await;

    // Every CronJob is accounted for: an alert of its own or a digest line.
    let mut alone = HashSet::new();
    let mut lines = Vec::new();
    let mut digest = None;
    while alone.len() + lined(&lines).len() < storm.len() {
        let m = t.slack.next_message().await;
        let text = m.render();
        match &m.thread_ts {
            None if text.contains("CronJobs failed since") => digest = Some(m),
            None => {
                let name = text
                    .split("default/")
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .unwrap_or_default()
                    .to_string();
                assert!(alone.insert(name), "two alerts for one CronJob: {text}");
            }
            Some(_) => lines.push(text),
        }
    }
    let digest = digest.expect("a digest");
    slack_headline(&t, &digest.ts, "60 CronJobs failed").await;
    let top = t.slack.top_level_posts(CHANNEL);
    assert!(top <= 10, "{top} top-level messages for a storm of 60");
    let calls = t.slack.attempts("chat.postMessage") + t.slack.attempts("chat.update");
    let limited = t.slack.rate_limited("chat.postMessage") + t.slack.rate_limited("chat.update");
    assert!(
        limited * 20 < calls,
        "{limited} of {calls} calls were answered 429"
    );
    // Five had alerts of their own before the storm was seen.
    assert_eq!(alone.len(), 5, "{alone:?}");
    t.finish().await;
}
