//! Rerun many with one approval: `/rerun failed` lists every CronJob with an
//! open incident (skipped ones with why), a second person approves once, and
//! each included CronJob gets exactly one Job — whatever the clicks and
//! restarts — reported per CronJob in the card's thread.

use std::time::Duration;

use serde_json::Value;

use crate::support::slack::Message;
use crate::support::tester::{CHANNEL, Platforms};
use crate::support::{CronJobFixture, Failure, Resource, Tester};

const AUDIT_TOKEN: &str = "batch-audit-token";
const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";
const HOLD: &str = "hold-maint01";

/// Jobs the bot created (the rerun label), by name.
fn reruns(t: &Tester) -> Vec<Value> {
    let mut jobs: Vec<Value> = t
        .kube
        .list(Resource::Jobs, None)
        .into_iter()
        .filter(|j| j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot")
        .collect();
    jobs.sort_by_key(|j| {
        j["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    jobs
}

fn names(jobs: &[Value]) -> Vec<String> {
    jobs.iter()
        .map(|j| j["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

async fn audit_actions(t: &Tester) -> Vec<String> {
    rerun_bot::audit_client::fetch(&t.url(""), AUDIT_TOKEN, Some("1h"), None)
        .await
        .expect("audit endpoint answers")
        .into_iter()
        .map(|e| e.event.action)
        .collect()
}

fn count(actions: &[String], action: &str) -> usize {
    actions.iter().filter(|a| *a == action).count()
}

fn answer_text(answer: &crate::support::tester::Answer) -> String {
    answer.json()["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Takes every message, update and ephemeral message the bot sends until it
/// is quiet for `quiet`; returns the messages (posts) and updates.
pub(crate) async fn drain(t: &Tester, quiet: Duration) -> (Vec<Message>, Vec<Message>) {
    let (mut posts, mut updates) = (Vec::new(), Vec::new());
    loop {
        let next = async {
            tokio::select! {
                m = t.slack.next_message() => (true, m),
                u = t.slack.next_update() => (false, u),
            }
        };
        match tokio::time::timeout(quiet, next).await {
            Ok((true, m)) => posts.push(m),
            Ok((false, u)) => updates.push(u),
            Err(_) => return (posts, updates),
        }
    }
}

/// Takes messages and updates until `done` holds for the posts taken so far
/// (the fake gives up after 10 s), then the rest until quiet.
async fn until(t: &Tester, done: impl Fn(&[Message]) -> bool) -> (Vec<Message>, Vec<Message>) {
    let (mut posts, mut updates) = (Vec::new(), Vec::new());
    while !done(&posts) {
        tokio::select! {
            m = t.slack.next_message() => posts.push(m),
            u = t.slack.next_update() => updates.push(u),
        }
    }
    let (more_posts, more_updates) = drain(t, Duration::from_millis(300)).await;
    posts.extend(more_posts);
    updates.extend(more_updates);
    (posts, updates)
}

/// Four CronJobs fail and are alerted: `alpha` and `beta` can be rerun,
/// `gamma` is on a maintenance hold, `delta` is deleted after its failure.
async fn four_failed(t: &Tester) -> Vec<Message> {
    for name in ["alpha", "beta", "gamma", "delta"] {
        let mut cj = CronJobFixture::new(name)
            .schedule("0 3 * * *")
            .backoff_limit(0);
        if name == "gamma" {
            cj = cj.annotation("rerun-bot.io/hold-id", HOLD);
        }
        t.kube.apply_cronjob(cj.build());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut alerts = Vec::new();
    for name in ["alpha", "beta", "gamma", "delta"] {
        t.fail_job(name, Failure::backoff_limit()).await;
        let alert = t.slack.next_message().await;
        assert!(
            alert.render().contains(&format!("default/{name}")),
            "{}",
            alert.render()
        );
        alerts.push(alert);
    }
    t.kube.delete(Resource::CronJobs, "default", "delta");
    alerts
}

/// Alice asks; returns the card (checked for what it lists).
async fn asked(t: &Tester) -> Message {
    let answer = t
        .command(
            "U_ALICE",
            CHANNEL,
            "/rerun",
            "failed --reason \"db was down; fixed\" --ticket INC-7",
        )
        .await;
    let said = answer_text(&answer);
    assert!(
        said.contains("Rerun of 2 CronJobs requested") && said.contains("2 skipped"),
        "{said}"
    );
    let card = t.slack.next_message().await;
    assert_eq!(card.channel, CHANNEL);
    assert_eq!(card.thread_ts, None, "a card of its own");
    let shown = card.render();
    for part in [
        "Rerun 2 failed CronJobs",
        "<@U_ALICE>",
        "db was down; fixed",
        "INC-7",
        "`default/alpha` — failed Job `alpha-",
        "`default/beta` — failed Job `beta-",
        "BackoffLimitExceeded",
        &format!("`default/gamma` — skipped: on maintenance hold `{HOLD}`"),
        "`default/delta` — skipped: the CronJob was deleted",
        "Waiting for approval by someone other than <@U_ALICE>",
    ] {
        assert!(shown.contains(part), "card lacks {part}:\n{shown}");
    }
    assert_eq!(
        card.buttons(),
        ["batch_approve", "batch_deny", "batch_cancel"]
    );
    card
}

#[tokio::test]
async fn rerun_failed_lists_skips_refuses_the_requester_and_makes_one_job_per_cronjob() {
    let t =
        Tester::with_args(&["--audit-token", AUDIT_TOKEN, "--approvers", "U_BOB,U_CAROL"]).await;
    let alerts = four_failed(&t).await;
    let card = asked(&t).await;
    assert!(reruns(&t).is_empty(), "nothing before the approval");

    t.click("U_ALICE", &card, "batch_approve").await;
    let own = t.slack.next_ephemeral().await;
    assert_eq!(own.user.as_deref(), Some("U_ALICE"));
    assert!(
        own.render().contains("someone else has to approve"),
        "{}",
        own.render()
    );
    t.click("U_EVE", &card, "batch_approve").await;
    let eve = t.slack.next_ephemeral().await;
    assert!(eve.render().contains("not on the list"), "{}", eve.render());
    t.click("U_EVE", &card, "batch_cancel").await;
    let not_hers = t.slack.next_ephemeral().await;
    assert!(
        not_hers.render().contains("Only the requester"),
        "{}",
        not_hers.render()
    );
    t.slack.expect_quiet(Duration::from_millis(200)).await;
    assert!(reruns(&t).is_empty());

    t.click("U_BOB", &card, "batch_approve").await;
    let approved = t.slack.next_update().await;
    assert_eq!(approved.ts, card.ts);
    assert!(
        approved.render().contains("Approved by <@U_BOB>"),
        "{}",
        approved.render()
    );
    assert!(approved.buttons().is_empty(), "no buttons once approved");
    let (posts, updates) = drain(&t, Duration::from_millis(700)).await;
    assert!(
        posts.is_empty(),
        "nothing in the thread until a Job ends: {posts:?}"
    );
    let jobs = reruns(&t);
    let id = card.buttons_values().pop().unwrap();
    assert_eq!(
        names(&jobs),
        [format!("alpha-rerun-{id}"), format!("beta-rerun-{id}")],
        "one Job per included CronJob, none for the held and the deleted"
    );
    for (job, cronjob) in jobs.iter().zip(["alpha", "beta"]) {
        let a = &job["metadata"]["annotations"];
        assert_eq!(a["rerun-bot.io/requested-by"], "U_ALICE");
        assert_eq!(a["rerun-bot.io/approved-by"], "U_BOB");
        assert_eq!(a["rerun-bot.io/reason"], "db was down; fixed");
        assert_eq!(a["rerun-bot.io/ticket"], "INC-7");
        assert!(
            a["rerun-bot.io/source-job"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{cronjob}-")),
            "{a}"
        );
        let owner = &job["metadata"]["ownerReferences"][0];
        assert_eq!(owner["name"], cronjob);
    }
    // Each alert shows its rerun; the card shows both running.
    for alert in &alerts[..2] {
        assert!(
            updates
                .iter()
                .any(|u| u.ts == alert.ts && u.render().contains("running")),
            "alert {} not updated: {updates:?}",
            alert.ts
        );
    }
    let card_now = updates.iter().rev().find(|u| u.ts == card.ts).unwrap();
    assert!(
        card_now.render().contains("2 running"),
        "{}",
        card_now.render()
    );

    // Their outcomes go into the card's thread, one line per CronJob.
    t.kube.complete_job("default", &names(&jobs)[0]);
    t.kube
        .fail_job("default", &names(&jobs)[1], Failure::oom_killed());
    let in_card_thread = |posts: &[Message]| -> Vec<String> {
        posts
            .iter()
            .filter(|p| p.thread_ts.as_deref() == Some(card.ts.as_str()))
            .map(Message::render)
            .collect()
    };
    let (posts, _updates) = until(&t, |posts| in_card_thread(posts).len() >= 2).await;
    let in_thread = in_card_thread(&posts);
    assert_eq!(in_thread.len(), 2, "{in_thread:?}");
    assert!(
        in_thread
            .iter()
            .any(|l| l.contains("✅ `default/alpha`: rerun Job") && l.contains("succeeded")),
        "{in_thread:?}"
    );
    assert!(
        in_thread
            .iter()
            .any(|l| l.contains("❌ `default/beta`: rerun Job") && l.contains("failed")),
        "{in_thread:?}"
    );
    let card_done = t.slack.current_message(CHANNEL, &card.ts).unwrap();
    let shown = crate::support::slack::render_blocks(&card_done["blocks"]);
    assert!(
        shown.contains("1 succeeded, 1 failed"),
        "the card counts: {shown}"
    );
    assert!(shown.contains("→ ✅ rerun"), "{shown}");

    let actions = audit_actions(&t).await;
    for (action, n) in [
        ("batch.requested", 1),
        ("batch.refused", 3),
        ("batch.approved", 1),
        ("rerun.approved", 2),
        ("rerun.created", 2),
        ("rerun.succeeded", 1),
        ("rerun.failed", 1),
        ("batch.finished", 1),
    ] {
        assert_eq!(count(&actions, action), n, "{action} in {actions:?}");
    }
    t.finish().await;
}

trait Values {
    /// The `value` of every button (the batch id on a batch card).
    fn buttons_values(&self) -> Vec<String>;
}

impl Values for Message {
    fn buttons_values(&self) -> Vec<String> {
        self.buttons()
            .iter()
            .filter_map(|b| self.button(b))
            .filter_map(|b| b["value"].as_str().map(str::to_string))
            .take(1)
            .collect()
    }
}

#[tokio::test]
async fn concurrent_approvals_of_one_batch_make_one_job_each() {
    let t = Tester::with_args(&["--audit-token", AUDIT_TOKEN]).await;
    four_failed(&t).await;
    let card = asked(&t).await;
    let clicks =
        ["U_BOB", "U_CAROL", "U_BOB", "U_DAVE"].map(|user| t.click(user, &card, "batch_approve"));
    for answer in futures::future::join_all(clicks).await {
        assert_eq!(answer.status, 200);
    }
    let (_posts, _updates) = drain(&t, Duration::from_millis(700)).await;
    // Three of the four were told it is approved already.
    let mut told = 0;
    while let Ok(e) =
        tokio::time::timeout(Duration::from_millis(300), t.slack.next_ephemeral()).await
    {
        assert!(e.render().contains("already approved"), "{}", e.render());
        told += 1;
    }
    assert_eq!(told, 3);
    assert_eq!(reruns(&t).len(), 2, "one Job per included CronJob");
    assert_eq!(
        t.kube
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/jobs"))
            .count(),
        2,
        "exactly one create each"
    );
    let actions = audit_actions(&t).await;
    assert_eq!(count(&actions, "batch.approved"), 1, "{actions:?}");
    t.finish().await;
}

#[tokio::test]
async fn a_restart_right_after_the_approval_still_gives_each_cronjob_exactly_one_job() {
    let mut t = Tester::with_args(&["--audit-token", AUDIT_TOKEN]).await;
    four_failed(&t).await;
    let card = asked(&t).await;
    // No Job create gets through before the bot stops.
    t.kube.fail_next("POST", JOBS, 10_000, 503, None);
    t.click("U_BOB", &card, "batch_approve").await;
    let approved = t.slack.next_update().await;
    assert!(approved.render().contains("Approved by <@U_BOB>"));
    // The batch is under way: a Job create was tried (and refused).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while t.kube.count_requests("POST", JOBS) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Job create tried"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    t.stop().await;
    t.kube.clear_faults();
    assert!(reruns(&t).is_empty(), "stopped before any Job was created");

    t.start_again().await;
    let (_posts, _updates) = drain(&t, Duration::from_millis(700)).await;
    let id = card.buttons_values().pop().unwrap();
    assert_eq!(
        names(&reruns(&t)),
        [format!("alpha-rerun-{id}"), format!("beta-rerun-{id}")]
    );
    let card_now = t.slack.current_message(CHANNEL, &card.ts).unwrap();
    let shown = crate::support::slack::render_blocks(&card_now["blocks"]);
    assert!(shown.contains("2 running"), "{shown}");

    // A second restart creates nothing more.
    t.restart().await;
    t.slack.expect_quiet(Duration::from_millis(500)).await;
    assert_eq!(reruns(&t).len(), 2, "exactly one Job each");
    let actions = audit_actions(&t).await;
    assert_eq!(count(&actions, "rerun.created"), 2, "{actions:?}");
    assert_eq!(count(&actions, "rerun.approved"), 2, "{actions:?}");
    t.finish().await;
}

#[tokio::test]
async fn nothing_failed_or_no_reason_is_a_clear_answer_and_nothing_is_stored() {
    let t = Tester::with_args(&["--audit-token", AUDIT_TOKEN]).await;
    let said = answer_text(
        &t.command("U_ALICE", CHANNEL, "/rerun", "failed --reason x")
            .await,
    );
    assert!(said.contains("Nothing failed in the last 24h"), "{said}");
    assert!(said.contains("Nothing was requested"), "{said}");

    // A failure whose incident recovered is not "failed" any more.
    t.kube
        .apply_cronjob(CronJobFixture::new("alpha").backoff_limit(0).build());
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.fail_job("alpha", Failure::backoff_limit()).await;
    let _alert = t.slack.next_message().await;
    let no_reason = answer_text(&t.command("U_ALICE", CHANNEL, "/rerun", "failed").await);
    assert!(no_reason.contains("A reason is required"), "{no_reason}");
    assert!(no_reason.contains("--reason"), "{no_reason}");
    let bad = answer_text(
        &t.command("U_ALICE", CHANNEL, "/rerun", "failed --since soon")
            .await,
    );
    assert!(bad.contains("is not a duration"), "{bad}");
    let elsewhere = answer_text(
        &t.command("U_ALICE", CHANNEL, "/rerun", "failed -n other --reason x")
            .await,
    );
    assert!(
        elsewhere.contains("Nothing failed in the last 24h in namespace `other`"),
        "{elsewhere}"
    );

    let scheduled = chrono::Utc::now() - chrono::Duration::minutes(5);
    let ok = t.kube.spawn_job("default", "alpha", scheduled);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    t.kube
        .complete_job("default", ok["metadata"]["name"].as_str().unwrap());
    let (_posts, updates) = drain(&t, Duration::from_millis(700)).await;
    assert!(
        updates.iter().any(|u| u.render().contains("recovered")),
        "{updates:?}"
    );
    let said = answer_text(
        &t.command("U_ALICE", CHANNEL, "/rerun", "failed --reason x")
            .await,
    );
    assert!(said.contains("Nothing failed"), "{said}");
    t.slack.expect_quiet(Duration::from_millis(300)).await;
    let actions = audit_actions(&t).await;
    assert_eq!(count(&actions, "batch.requested"), 0, "{actions:?}");
    t.finish().await;
}

#[tokio::test]
async fn on_teams_the_same_batch_card_is_decided_with_four_eyes() {
    let t = Tester::on(Platforms::Both, &[]).await;
    t.kube.apply_cronjob(
        CronJobFixture::new("alpha")
            .schedule("0 3 * * *")
            .backoff_limit(0)
            .build(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.fail_job("alpha", Failure::backoff_limit()).await;
    let _slack_alert = t.slack.next_message().await;
    let teams = t.teams();
    let _teams_alert = teams.next_message().await;

    // One CronJob failed, alerted on both platforms: listed once.
    let said = answer_text(
        &t.command(
            "U_ALICE",
            CHANNEL,
            "/rerun",
            "failed --reason \"db was down\"",
        )
        .await,
    );
    assert!(said.contains("Rerun of 1 CronJob requested"), "{said}");
    let slack_card = t.slack.next_message().await;
    assert!(slack_card.render().contains("Rerun 1 failed CronJob"));

    let channel = t.teams_channel();
    let answer = teams
        .send_message("alice", &channel, "rerun failed --reason \"db was down\"")
        .await;
    assert_eq!(answer.status, 200);
    let card = teams.next_message().await;
    let shown = card.render();
    assert!(shown.contains("Rerun 1 failed CronJob"), "{shown}");
    assert!(shown.contains("default/alpha"), "{shown}");
    assert!(card.has_button("batch_approve"), "{:?}", card.buttons());
    let own = teams.click("alice", &card, "batch_approve").await;
    let text = own.text().expect("a refusal for Alice alone");
    assert!(text.contains("someone else has to approve"), "{text}");
    assert!(reruns(&t).is_empty());
    teams.click("bob", &card, "batch_approve").await;
    let mut last = None;
    loop {
        let next = async {
            tokio::select! {
                m = teams.next_message() => m,
                u = teams.next_update() => u,
            }
        };
        match tokio::time::timeout(Duration::from_millis(700), next).await {
            Ok(m) => last = Some(m),
            Err(_) => break,
        }
    }
    assert!(last.is_some());
    let (_posts, _updates) = drain(&t, Duration::from_millis(300)).await;
    let jobs = reruns(&t);
    assert_eq!(jobs.len(), 1, "one Job");
    assert_eq!(
        jobs[0]["metadata"]["annotations"]["rerun-bot.io/approved-by"],
        t.teams().user("bob").aad_object_id
    );
    let now = teams.current(&card.activity_id).unwrap().render();
    assert!(now.contains("1 running"), "{now}");
    t.finish().await;
}
