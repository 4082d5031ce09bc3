//! Failure alerts: one interactive message per failed Job of a CronJob.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use crate::assert_message_snapshot;
use crate::support::tester::{CHANNEL, SIGNING_SECRET};
use crate::support::{CronJobFixture, Failure, FakeKube, FakeSlack, Resource, Tester};

fn billing_sync() -> CronJobFixture {
    CronJobFixture::new("billing-sync")
        .schedule("0 3 * * *")
        .owner("U_OWNER")
        .backoff_limit(2)
        .concurrency_policy("Forbid")
}

#[tokio::test]
async fn backoff_limit_exceeded_alert_shows_why_and_offers_actions() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job(
        "billing-sync",
        Failure::backoff_limit()
            .log("connecting to db\nERROR: relation \"invoices\" does not exist\n"),
    )
    .await;

    let alert = t.slack.next_message().await;
    assert_eq!(alert.channel, CHANNEL);
    assert_eq!(alert.thread_ts, None);
    for action in ["rerun", "rerun_with_changes", "hold"] {
        assert!(alert.has_button(action), "button {action} missing");
    }
    assert_message_snapshot!("alert_backoff_limit", alert.render());
    t.wait_metric("rerun_bot_alerts_posted_total 1").await;
    t.finish().await;
}

#[tokio::test]
async fn deadline_exceeded_alert_with_time_zone_schedule() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(
        billing_sync()
            .schedule("30 2 * * 1-5")
            .time_zone("Europe/Berlin")
            .build(),
    );
    t.fail_job("billing-sync", Failure::deadline_exceeded())
        .await;

    let alert = t.slack.next_message().await;
    let text = alert.render();
    assert!(text.contains("DeadlineExceeded"), "{text}");
    assert!(text.contains("30 2 * * 1-5"), "{text}");
    assert!(text.contains("Europe/Berlin"), "{text}");
    assert_message_snapshot!("alert_deadline_exceeded", text);
    t.finish().await;
}

#[tokio::test]
async fn oom_killed_shows_exit_code_137() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::oom_killed()).await;

    let text = t.slack.next_message().await.render();
    assert!(text.contains("137 (OOMKilled)"), "{text}");
    t.finish().await;
}

#[tokio::test]
async fn jobs_without_cronjob_and_opted_out_cronjobs_are_ignored() {
    let t = Tester::start().await;
    t.kube
        .apply_cronjob(CronJobFixture::new("quiet").alerts_off().build());
    let bare = t.kube.spawn_bare_job("default", "one-off");
    t.kube.fail_job(
        "default",
        bare["metadata"]["name"].as_str().unwrap(),
        Failure::backoff_limit(),
    );
    t.fail_job("quiet", Failure::backoff_limit()).await;
    t.slack.expect_quiet(Duration::from_millis(800)).await;

    // The bot is not stuck: a real failure afterwards still alerts.
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    assert!(
        t.slack
            .next_message()
            .await
            .render()
            .contains("billing-sync")
    );
    t.finish().await;
}

#[tokio::test]
async fn one_alert_per_job_through_updates_watch_drops_expiry_and_restart() {
    let mut t = Tester::start().await;
    t.kube.apply_cronjob(billing_sync().build());
    let job = t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    t.slack.next_message().await;

    // More MODIFIED events of the same failed Job.
    for i in 0..5 {
        t.kube.update(Resource::Jobs, "default", &name, |j| {
            j["metadata"]["labels"]["touched"] = json!(i.to_string());
        });
    }
    // A dropped watch (resume from the last resourceVersion)…
    t.kube.drop_watches();
    // …and an expired one (410 Gone: the watcher relists everything).
    t.kube.compact();
    t.kube.drop_watches();
    t.kube
        .wait_for("the bot to relist Jobs", Duration::from_secs(10), |k| {
            k.count_requests("GET", "/apis/batch/v1/jobs") >= 3
        })
        .await;
    t.slack.expect_quiet(Duration::from_millis(800)).await;

    // A restart on the same data dir relists too.
    t.restart().await;
    t.slack.expect_quiet(Duration::from_millis(800)).await;
    assert_eq!(t.slack.calls("chat.postMessage").len(), 1);
    t.finish().await;
}

/// A graceful shutdown (a rolling deploy's SIGTERM) while Slack is slow to
/// answer an alert it has already posted: the bot waits for the answer and
/// records it, so the bot started again does not post the alert a second time.
#[tokio::test]
async fn a_shutdown_while_an_alert_is_being_posted_lets_it_finish_once() {
    let mut t = Tester::start().await;
    t.kube.apply_cronjob(billing_sync().build());
    t.slack
        .delay_reply_next("chat.postMessage", 1, Duration::from_millis(1500));
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let alert = t.slack.next_message().await;
    // Slack has the message; its answer is on the way.
    t.stop().await;
    t.start_again().await;
    t.slack.expect_quiet(Duration::from_millis(800)).await;
    assert_eq!(t.slack.calls("chat.postMessage").len(), 1, "posted once");
    t.slack.updates_of(&alert.ts);
    t.finish().await;
}

fn failed_job_at(
    name: &str,
    cronjob_uid: &str,
    failed_at: chrono::DateTime<Utc>,
) -> serde_json::Value {
    let at = failed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "default",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "billing-sync",
                                 "uid": cronjob_uid, "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never",
                 "containers": [{"name": "main", "image": "busybox:1.36"}]}}},
        "status": {
            "failed": 3,
            "startTime": at,
            "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "lastTransitionTime": at},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit", "lastTransitionTime": at},
            ],
        },
    })
}

#[tokio::test]
async fn start_up_alerts_recent_unalerted_failures_once_and_never_old_ones() {
    let kube = FakeKube::start().await;
    let slack = FakeSlack::start(SIGNING_SECRET).await;
    let cj = kube.apply_cronjob(billing_sync().build());
    let uid = cj["metadata"]["uid"].as_str().unwrap();
    // Failed while the bot was down: 30 minutes ago (inside the 1h lookback)
    // and 3 hours ago (outside it).
    kube.create(
        Resource::Jobs,
        failed_job_at(
            "billing-sync-recent",
            uid,
            Utc::now() - chrono::Duration::minutes(30),
        ),
    );
    kube.create(
        Resource::Jobs,
        failed_job_at(
            "billing-sync-old",
            uid,
            Utc::now() - chrono::Duration::hours(3),
        ),
    );

    let mut t = Tester::with_fakes(kube, slack, &["--lookback", "1h"]).await;
    let alert = t.slack.next_message().await;
    assert!(
        alert.render().contains("billing-sync-recent"),
        "{}",
        alert.render()
    );
    t.slack.expect_quiet(Duration::from_millis(800)).await;

    t.restart().await;
    t.slack.expect_quiet(Duration::from_millis(800)).await;
    t.finish().await;
}

#[tokio::test]
async fn repeated_failures_go_into_the_first_alerts_thread() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let first = t.slack.next_message().await;

    t.fail_job("billing-sync", Failure::oom_killed()).await;
    let reply = t.slack.next_message().await;
    assert_eq!(reply.thread_ts.as_deref(), Some(first.ts.as_str()));
    assert!(
        reply.render().contains("failed again"),
        "{}",
        reply.render()
    );

    let parent = t.slack.next_update().await;
    assert_eq!(parent.ts, first.ts);
    assert!(
        parent.render().contains("Failed 2 times"),
        "{}",
        parent.render()
    );

    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let third = t.slack.next_message().await;
    assert_eq!(third.thread_ts.as_deref(), Some(first.ts.as_str()));
    assert!(
        t.slack
            .next_update()
            .await
            .render()
            .contains("Failed 3 times")
    );

    // Another CronJob opens its own thread.
    t.kube.apply_cronjob(CronJobFixture::new("reports").build());
    t.fail_job("reports", Failure::backoff_limit()).await;
    assert_eq!(t.slack.next_message().await.thread_ts, None);
    t.finish().await;
}

#[tokio::test]
async fn thread_window_is_configurable() {
    let t = Tester::with_args(&["--thread-window", "0s"]).await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    t.slack.next_message().await;
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    assert_eq!(
        t.slack.next_message().await.thread_ts,
        None,
        "window 0s: no threading"
    );
    t.finish().await;
}

#[tokio::test]
async fn channel_annotation_routes_the_alert() {
    let t = Tester::start().await;
    t.kube
        .apply_cronjob(billing_sync().channel("C_BILLING").build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    assert_eq!(t.slack.next_message().await.channel, "C_BILLING");
    t.finish().await;
}

#[tokio::test]
async fn hostile_log_is_escaped_and_bounded() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(billing_sync().build());
    let mut log = "x".repeat(1024 * 1024);
    log.push_str("\n<!channel> look <script>alert(1)</script> & ``` done\n");
    t.fail_job("billing-sync", Failure::backoff_limit().log(log))
        .await;

    let alert = t.slack.next_message().await;
    let raw = alert.raw.to_string();
    assert!(!raw.contains("<!channel>"), "broadcast mention leaked");
    assert!(!raw.contains("<script>"), "markup leaked");
    let text = alert.render();
    assert!(
        text.contains("&lt;!channel&gt; look &lt;script&gt;alert(1)&lt;/script&gt; &amp;"),
        "{text}"
    );
    assert!(raw.len() < 40_000, "message is {} bytes", raw.len());
    t.finish().await;
}

#[tokio::test]
async fn rate_limited_post_is_retried_after_retry_after() {
    let t = Tester::start().await;
    t.slack.rate_limit_next("chat.postMessage", 1, 1);
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;

    let started = std::time::Instant::now();
    t.slack.next_message().await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After not honoured"
    );
    assert_eq!(t.slack.attempts("chat.postMessage"), 2);
    t.wait_metric("slack_api_errors_total{method=\"chat.postMessage\"} 1")
        .await;
    t.finish().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let t = Tester::start().await;
    t.slack.fail_next("chat.postMessage", 2, 503);
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    t.slack.next_message().await;
    assert_eq!(t.slack.attempts("chat.postMessage"), 3);
    assert_eq!(t.slack.calls("chat.postMessage").len(), 1);
    t.finish().await;
}

#[tokio::test]
async fn an_alert_slack_refused_is_posted_after_a_restart() {
    let mut t = Tester::start().await;
    // Slack is down for longer than the retries last.
    t.slack.fail_next("chat.postMessage", 5, 500);
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while t.slack.attempts("chat.postMessage") < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the bot gave up before 5 attempts"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(t.slack.calls("chat.postMessage").is_empty());

    t.restart().await;
    let alert = t.slack.next_message().await;
    assert!(alert.render().contains("BackoffLimitExceeded"));
    t.finish().await;
}

#[tokio::test]
async fn failure_target_alone_is_not_an_alert() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(billing_sync().build());
    let job = t.kube.spawn_job("default", "billing-sync", Utc::now());
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    let now = Utc::now().to_rfc3339();
    t.kube.update(Resource::Jobs, "default", &name, |j| {
        j["status"]["conditions"] = json!([{"type": "FailureTarget", "status": "True",
            "reason": "BackoffLimitExceeded", "lastTransitionTime": now}]);
    });
    t.slack.expect_quiet(Duration::from_millis(800)).await;

    t.kube.update(Resource::Jobs, "default", &name, |j| {
        j["status"]["conditions"].as_array_mut().unwrap().push(json!({"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit",
            "lastTransitionTime": now}));
    });
    assert!(
        t.slack
            .next_message()
            .await
            .render()
            .contains("BackoffLimitExceeded")
    );
    t.finish().await;
}

#[tokio::test]
async fn cronjob_deleted_before_the_alert_still_alerts_with_what_is_known() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(billing_sync().build());
    let job = t.kube.spawn_job("default", "billing-sync", Utc::now());
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    t.kube.delete(Resource::CronJobs, "default", "billing-sync");
    t.kube.fail_job("default", &name, Failure::backoff_limit());

    let alert = t.slack.next_message().await;
    assert!(
        alert.render().contains("no longer exists"),
        "{}",
        alert.render()
    );
    assert!(!alert.has_button("rerun"), "no rerun without a CronJob");
    t.finish().await;
}

#[tokio::test]
async fn malformed_objects_never_stop_the_watch() {
    let t = Tester::start().await;
    // A Job of a CronJob with no status, one with a Failed condition but no
    // pods, and a CronJob with an unparsable schedule.
    t.kube
        .apply_cronjob(billing_sync().schedule("every day at 3").build());
    let cj = t
        .kube
        .get(Resource::CronJobs, "default", "billing-sync")
        .unwrap();
    let mut job = failed_job_at(
        "billing-sync-nopods",
        cj["metadata"]["uid"].as_str().unwrap(),
        Utc::now(),
    );
    t.kube.create(
        Resource::Jobs,
        json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "no-status", "namespace": "default",
                     "ownerReferences": job["metadata"]["ownerReferences"].clone()}}),
    );
    job["spec"]["template"]["spec"]["containers"] = json!([]);
    t.kube.create(Resource::Jobs, job);

    let alert = t.slack.next_message().await;
    let text = alert.render();
    assert!(text.contains("unparsable schedule"), "{text}");
    assert!(text.contains("Logs unavailable"), "{text}");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_failures_gives_one_alert_each() {
    // Storm digests off: this is about one alert per failure (tests/bot/storm.rs
    // has the digests); pacing off: this fake has no rate limits (tests/bot/pacing.rs).
    let t = Tester::with_args(&["--storm-threshold", "0", "--chat-pacing", "off"]).await;
    let names: Vec<String> = (0..40).map(|i| format!("burst-{i}")).collect();
    for name in &names {
        t.kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    for name in &names {
        t.fail_job(name, Failure::backoff_limit()).await;
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..names.len() {
        let text = t.slack.next_message().await.text;
        let name = text
            .split('/')
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap()
            .to_string();
        assert!(seen.insert(name.clone()), "second alert for {name}");
    }
    assert_eq!(seen.len(), names.len());
    t.finish().await;
}

#[tokio::test]
async fn details_follow_by_update_when_posting_at_once() {
    // The default: post at once, then add the exit code and log tail.
    let t = Tester::with_args(&["--capture-budget", "0s"]).await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job(
        "billing-sync",
        Failure::backoff_limit().log("ERROR: relation \"invoices\" does not exist\n"),
    )
    .await;
    let first = t.slack.next_message().await;
    let text = first.render();
    assert!(text.contains("BackoffLimitExceeded"), "{text}");
    assert!(text.contains("Reading the exit code"), "{text}");
    assert!(first.has_button("rerun"));
    let full = t.slack.next_update().await;
    assert_eq!(full.ts, first.ts);
    let text = full.render();
    assert!(
        text.contains("relation \"invoices\" does not exist"),
        "{text}"
    );
    assert!(text.contains("*Exit code*"), "{text}");
    assert!(!text.contains("Reading the exit code"), "{text}");

    // A repeated failure is completed in its thread the same way.
    t.fail_job("billing-sync", Failure::oom_killed()).await;
    let reply = t.slack.next_message().await;
    assert_eq!(reply.thread_ts.as_deref(), Some(first.ts.as_str()));
    let mut updates = [t.slack.next_update().await, t.slack.next_update().await];
    updates.sort_by_key(|u| u.ts != reply.ts);
    assert_eq!(updates[0].ts, reply.ts);
    assert!(
        updates[0].render().contains("137 (OOMKilled)"),
        "{}",
        updates[0].render()
    );
    assert!(
        updates[0].render().contains("failed again"),
        "{}",
        updates[0].render()
    );
    assert_eq!(updates[1].ts, first.ts, "the parent's count");
    t.finish().await;
}

/// A terminated pod of an Indexed Job, as the kubelet leaves it.
fn index_pod(
    job: &serde_json::Value,
    name: &str,
    index: u32,
    exit: i32,
    finished: &str,
) -> serde_json::Value {
    let uid = job["metadata"]["uid"].as_str().unwrap();
    let job_name = job["metadata"]["name"].as_str().unwrap();
    let phase = if exit == 0 { "Succeeded" } else { "Failed" };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "default",
            "labels": {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": job_name,
                       "controller-uid": uid, "job-name": job_name,
                       "batch.kubernetes.io/job-completion-index": index.to_string()},
            "annotations": {"batch.kubernetes.io/job-completion-index": index.to_string()},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": uid,
                                 "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1.36"}]},
        "status": {"phase": phase, "containerStatuses": [{
            "name": "main", "image": "busybox:1.36", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit, "reason": if exit == 0 { "Completed" } else { "Error" },
                                     "finishedAt": finished}}}]},
    })
}

#[tokio::test]
async fn indexed_job_alert_names_the_failed_indexes_and_shows_a_failed_index_log() {
    let t = Tester::start().await;
    let cj = t.kube.apply_cronjob(
        billing_sync()
            .schedule("0 4 * * *")
            .concurrency_policy("Allow")
            .build(),
    );
    let now = Utc::now();
    let rfc = |d: i64| {
        (now - chrono::Duration::seconds(d)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let job = t.kube.create(
        Resource::Jobs,
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "billing-sync-29923800", "namespace": "default",
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "billing-sync",
                    "uid": cj["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"completionMode": "Indexed", "completions": 6, "parallelism": 3,
                     "backoffLimitPerIndex": 1, "maxFailedIndexes": 5,
                     "template": {"spec": {"restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox:1.36"}]}}},
            "status": {"startTime": rfc(300), "active": 3, "ready": 3, "terminating": 0},
        }),
    );
    // Index 0 failed once and then succeeded on its retry (its failure is the
    // latest one); index 1 failed twice and stays failed.
    let pods = [
        ("billing-sync-29923800-0-aaaaa", 0, 2, rfc(60)),
        ("billing-sync-29923800-0-bbbbb", 0, 0, rfc(30)),
        ("billing-sync-29923800-1-ccccc", 1, 1, rfc(200)),
        ("billing-sync-29923800-1-ddddd", 1, 1, rfc(120)),
    ];
    for (name, index, exit, finished) in &pods {
        t.kube.create(
            Resource::Pods,
            index_pod(&job, name, *index, *exit, finished),
        );
        t.kube.set_log(
            "default",
            name,
            "main",
            format!("index {index} exit {exit}\n"),
        );
    }
    t.kube.update(Resource::Jobs, "default", "billing-sync-29923800", |j| {
        j["status"] = json!({
            "startTime": rfc(300), "active": 0, "ready": 0, "terminating": 0, "failed": 3, "succeeded": 5,
            "completedIndexes": "0,2-5", "failedIndexes": "1", "uncountedTerminatedPods": {},
            "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "FailedIndexes",
                 "message": "Job has failed indexes", "lastTransitionTime": rfc(10)},
                {"type": "Failed", "status": "True", "reason": "FailedIndexes",
                 "message": "Job has failed indexes", "lastTransitionTime": rfc(5)},
            ],
        });
    });

    let text = t.slack.next_message().await.render();
    assert!(text.contains("FailedIndexes"), "{text}");
    assert!(text.contains("Failed indexes: 1"), "{text}");
    assert!(
        text.contains("index 1 exit 1"),
        "the log of a failed index: {text}"
    );
    assert!(!text.contains("index 0 exit 2"), "{text}");
    t.finish().await;
}

#[tokio::test]
async fn a_job_managed_by_another_controller_is_not_alerted_on_its_stale_failed_condition() {
    let t = Tester::start().await;
    let cj = t.kube.apply_cronjob(billing_sync().build());
    let uid = cj["metadata"]["uid"].as_str().unwrap();
    let mut job = failed_job_at(
        "billing-sync-29923800",
        uid,
        Utc::now() - chrono::Duration::minutes(10),
    );
    job["spec"]["managedBy"] = json!("example.com/other");
    t.kube.create(Resource::Jobs, job);
    t.slack.expect_quiet(Duration::from_millis(800)).await;

    // The bot is not stuck: a failure of a Job the built-in controller runs alerts.
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let text = t.slack.next_message().await.render();
    assert!(text.contains("BackoffLimitExceeded"), "{text}");
    assert!(!text.contains("29923800"), "{text}");
    t.finish().await;
}
