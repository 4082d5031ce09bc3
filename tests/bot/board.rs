//! `/cronjobs` as a status board: one row per CronJob (schedule, next run,
//! last success and failure, failures in a row, typical duration, snooze or
//! hold, incident), failing first, 50 per page; `/cronjobs <name>` in detail.
//! Slack answers ephemerally with a `table` block; Teams in the asker's 1:1
//! chat with a card.

use std::time::Duration;

use serde_json::Value;

use crate::support::tester::{CHANNEL, Platforms};
use crate::support::{CronJobFixture, Failure, Tester};
use rerun_sim::teams::Kind;

/// What the asker sees of a Slack answer: the blocks as text, each table
/// row as its cells joined by ` | `.
fn seen(answer: &Value) -> String {
    let mut parts = Vec::new();
    for b in answer["blocks"].as_array().into_iter().flatten() {
        if b["type"] == "table" {
            parts.push(
                table(b)
                    .iter()
                    .map(|r| r.join(" | "))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        } else {
            parts.push(crate::support::slack::render_blocks(&Value::Array(vec![
                b.clone(),
            ])));
        }
    }
    parts.join("\n\n")
}

fn table(block: &Value) -> Vec<Vec<String>> {
    block["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            r.as_array()
                .into_iter()
                .flatten()
                .map(|c| c["text"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .collect()
}

/// The rows of the answer's table (the header row first).
fn rows(answer: &Value) -> Vec<Vec<String>> {
    let tables: Vec<&Value> = answer["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "table")
        .collect();
    assert_eq!(tables.len(), 1, "one table per message: {answer}");
    table(tables[0])
}

async fn cronjobs(t: &Tester, text: &str) -> Value {
    let answer = t.command("U_ALICE", CHANNEL, "/cronjobs", text).await;
    assert_eq!(answer.status, 200);
    let json = answer.json();
    assert_eq!(json["response_type"], "ephemeral", "for the asker alone");
    let blocks = json["blocks"].as_array().map(Vec::len).unwrap_or(0);
    assert!(blocks <= 50, "{blocks} blocks");
    for b in json["blocks"].as_array().into_iter().flatten() {
        let text = b["text"]["text"].as_str().unwrap_or("");
        assert!(text.chars().count() <= 3000, "section too long");
    }
    json
}

/// Waits until the bot's CronJob cache holds `n` CronJobs.
async fn until_watched(t: &Tester, n: usize) {
    let want = format!("{n} CronJob");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = t.command("U_ALICE", CHANNEL, "/cronjobs", "").await.body;
        if answer.contains(&want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never saw {want}: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn many(t: &Tester, n: usize) {
    for i in 0..n {
        t.kube.apply_cronjob(
            CronJobFixture::new(&format!("job-{i:03}"))
                .namespace(if i % 2 == 0 { "alpha" } else { "beta" })
                .schedule("*/15 * * * *")
                .build(),
        );
    }
}

#[tokio::test]
async fn cronjobs_board_of_120_is_paged_in_slack() {
    let t = Tester::start().await;
    many(&t, 120);
    until_watched(&t, 120).await;

    let page1 = cronjobs(&t, "").await;
    let shown = seen(&page1);
    assert!(shown.contains("*120 CronJobs*"), "{shown}");
    assert!(
        shown.contains("page 1 of 3 — next: `/cronjobs --page 2`"),
        "{shown}"
    );
    let r = rows(&page1);
    assert_eq!(r.len(), 51, "a header and 50 CronJobs");
    assert_eq!(
        r[0],
        [
            "CronJob",
            "Schedule",
            "Next run",
            "Last success",
            "Last failure",
            "In a row",
            "Typical",
            "State"
        ]
    );
    assert_eq!(r[1][0], "alpha/job-000");
    assert_eq!(r[1][1], "*/15 * * * * (UTC)");
    assert!(r[1][2].starts_with("in "), "{:?}", r[1]);
    assert_eq!(r[1][7], "✅ fine");

    let page3 = cronjobs(&t, "--page 3").await;
    let shown = seen(&page3);
    assert!(
        shown.contains("page 3 of 3 — previous: `/cronjobs --page 2`"),
        "{shown}"
    );
    let r = rows(&page3);
    assert_eq!(r.len(), 21);
    assert_eq!(r[20][0], "beta/job-119");

    let beta = seen(&cronjobs(&t, "beta --page 2").await);
    assert!(beta.contains("*60 CronJobs in `beta`*"), "{beta}");
    assert!(beta.contains("page 2 of 2"), "{beta}");

    let past = seen(&cronjobs(&t, "--page 4").await);
    assert!(
        past.contains("There are only 3 pages of CronJobs here: `/cronjobs --page 3`"),
        "{past}"
    );
    t.finish().await;
}

#[tokio::test]
async fn cronjobs_board_of_120_is_paged_in_teams() {
    let t = Tester::on(Platforms::Teams, &[]).await;
    many(&t, 120);
    let teams = t.teams();
    let channel = t.teams_channel();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let page1 = loop {
        teams.send_message("alice", &channel, "cronjobs").await;
        let answer = teams.next_message().await;
        if answer.render().contains("120 CronJobs") || tokio::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(page1.kind, Kind::Personal, "only Alice sees it");
    let card = page1.card.clone().expect("a card");
    let containers = |card: &Value| {
        card["body"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "Container")
            .count()
    };
    assert_eq!(containers(&card), 50);
    let text = page1.render();
    assert!(text.contains("# 120 CronJobs"), "{text}");
    assert!(text.contains("**alpha/job-000** · ✅ fine"), "{text}");
    assert!(text.contains("next in "), "{text}");
    assert!(
        text.contains("page 1 of 3 — next: /cronjobs --page 2"),
        "{text}"
    );

    teams
        .send_message("alice", &channel, "cronjobs --page 3")
        .await;
    let page3 = teams.next_message().await;
    assert_eq!(page3.kind, Kind::Personal);
    assert_eq!(containers(page3.card.as_ref().unwrap()), 20);
    let text = page3.render();
    assert!(text.contains("page 3 of 3"), "{text}");
    assert!(text.contains("beta/job-119"), "{text}");
    t.finish().await;
}

#[tokio::test]
async fn cronjobs_failing_lists_open_incidents_with_streak_and_since() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(
        CronJobFixture::new("billing-sync")
            .schedule("0 3 * * *")
            .build(),
    );
    t.kube
        .apply_cronjob(CronJobFixture::new("reports").schedule("0 4 * * *").build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let first = t.slack.next_message().await;
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let reply = t.slack.next_message().await;
    assert_eq!(reply.thread_ts.as_deref(), Some(first.ts.as_str()));
    t.slack.next_update().await;

    let all = cronjobs(&t, "").await;
    let r = rows(&all);
    assert_eq!(r.len(), 3);
    assert_eq!(r[1][0], "default/billing-sync", "failing first");
    assert_eq!(r[2][0], "default/reports");
    assert!(
        seen(&all).contains("*2 CronJobs · 1 failing*"),
        "{}",
        seen(&all)
    );

    for flag in ["--failing", "--failed"] {
        let failing = cronjobs(&t, flag).await;
        let r = rows(&failing);
        assert_eq!(r.len(), 2, "only the failing one: {r:?}");
        assert_eq!(r[1][0], "default/billing-sync");
        assert_eq!(r[1][5], "2", "failures in a row");
        assert_ne!(r[1][4], "—", "last failure: {:?}", r[1]);
        assert!(
            r[1][7].starts_with("🔴 failing since ") && r[1][7].contains("(2 in a row)"),
            "{:?}",
            r[1]
        );
        assert!(seen(&failing).contains("*1 CronJob failing*"));
    }
    t.finish().await;
}

#[tokio::test]
async fn cronjobs_shows_snoozed_and_held_cronjobs() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(
        CronJobFixture::new("billing-sync")
            .schedule("0 3 * * *")
            .build(),
    );
    t.kube.apply_cronjob(
        CronJobFixture::new("reports")
            .schedule("0 4 * * *")
            .suspended()
            .annotation("rerun-bot.io/hold-id", "hold-maint1")
            .build(),
    );
    until_watched(&t, 2).await;
    let snoozed = t
        .command(
            "U_BOB",
            CHANNEL,
            "/snooze",
            "billing-sync 4h --reason \"db migration\"",
        )
        .await;
    assert!(snoozed.body.contains("Snoozed"), "{}", snoozed.body);

    let r = rows(&cronjobs(&t, "").await);
    assert_eq!(r[1][0], "default/billing-sync");
    assert!(
        r[1][7].starts_with("🔕 snoozed for ") && r[1][7].ends_with(" more"),
        "{:?}",
        r[1]
    );
    assert_eq!(r[2][0], "default/reports");
    assert_eq!(r[2][7], "⏸️ held (hold-maint1)");
    assert_eq!(r[2][2], "— (suspended)");

    let held = rows(&cronjobs(&t, "--held").await);
    assert_eq!(held.len(), 2, "only the held one: {held:?}");
    assert_eq!(held[1][0], "default/reports");

    let detail = seen(&cronjobs(&t, "billing-sync").await);
    assert!(detail.contains("- *Snoozed*\n  until "), "{detail}");
    assert!(detail.contains("db migration"), "{detail}");
    t.finish().await;
}

#[tokio::test]
async fn cronjobs_name_shows_the_last_runs_after_a_failure_and_a_success() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(
        CronJobFixture::new("billing-sync")
            .schedule("0 3 * * *")
            .time_zone("Europe/Berlin")
            .build(),
    );
    let failed = t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let failed = failed["metadata"]["name"].as_str().unwrap().to_string();
    t.slack.next_message().await;
    let ok = t.succeed_job("billing-sync").await;
    t.slack.next_update().await;
    t.slack.next_message().await;

    let answer = cronjobs(&t, "billing-sync -n default").await;
    let shown = seen(&answer);
    assert!(
        shown.contains("*CronJob `default/billing-sync`*"),
        "{shown}"
    );
    assert!(
        shown.contains("- *Schedule*\n  0 3 * * * (Europe/Berlin)"),
        "{shown}"
    );
    assert!(shown.contains("- *Failures in a row*\n  0"), "{shown}");
    assert!(shown.contains("- *State*\n  ✅ fine"), "{shown}");
    assert!(shown.contains("*Last 2 runs*, newest first"), "{shown}");
    assert!(shown.contains("(median of recent successes)"), "{shown}");
    let r = rows(&answer);
    assert_eq!(r[0], ["Job", "Outcome", "Started", "Duration"]);
    assert_eq!(r.len(), 3);
    assert_eq!(
        (r[1][0].as_str(), r[1][1].as_str()),
        (ok.as_str(), "✓ succeeded")
    );
    assert_eq!(
        (r[2][0].as_str(), r[2][1].as_str()),
        (failed.as_str(), "✗ failed")
    );

    // Without -n: the only CronJob of that name.
    let again = seen(&cronjobs(&t, "billing-sync").await);
    assert!(again.contains("*Last 2 runs*"), "{again}");
    t.finish().await;
}

#[tokio::test]
async fn cronjobs_warns_about_an_unparsable_schedule() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(
        CronJobFixture::new("broken")
            .schedule("every day at 3")
            .build(),
    );
    t.kube.apply_cronjob(
        CronJobFixture::new("elsewhere")
            .schedule("0 3 * * *")
            .time_zone("Mars/Olympus")
            .build(),
    );
    until_watched(&t, 2).await;
    let r = rows(&cronjobs(&t, "").await);
    assert_eq!(r[1][0], "default/broken");
    assert_eq!(r[1][2], "?");
    assert_eq!(r[1][7], "⚠️ bad schedule");
    assert_eq!(r[2][7], "⚠️ bad schedule");

    let detail = seen(&cronjobs(&t, "broken").await);
    assert!(
        detail.contains("⚠️ unparsable schedule `every day at 3`"),
        "{detail}"
    );
    assert!(detail.contains("cannot tell its next run"), "{detail}");
    assert!(
        detail.contains("No finished run of it is known yet."),
        "{detail}"
    );
    let zone = seen(&cronjobs(&t, "elsewhere").await);
    assert!(
        zone.contains("⚠️ unknown time zone `Mars/Olympus`"),
        "{zone}"
    );
    t.finish().await;
}

#[tokio::test]
async fn cronjobs_unknown_name_answers_with_close_matches() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(
        CronJobFixture::new("billing-sync")
            .schedule("0 3 * * *")
            .build(),
    );
    until_watched(&t, 1).await;
    let answer = t
        .command("U_ALICE", CHANNEL, "/cronjobs", "biling-sync")
        .await;
    let text = seen(&answer.json());
    assert!(
        text.contains("No CronJobs watched in namespace `biling-sync`"),
        "{text}"
    );
    assert!(
        text.contains("Did you mean `default/billing-sync`?"),
        "{text}"
    );
    let other = seen(
        &t.command(
            "U_ALICE",
            CHANNEL,
            "/cronjobs",
            "nothing-like-it -n default",
        )
        .await
        .json(),
    );
    assert!(
        other.contains("No CronJob `nothing-like-it` in namespace `default`"),
        "{other}"
    );
    let bad = seen(
        &t.command("U_ALICE", CHANNEL, "/cronjobs", "--page 0")
            .await
            .json(),
    );
    assert!(bad.contains("a page is a number from 1"), "{bad}");
    t.finish().await;
}

#[tokio::test]
async fn cronjobs_detail_in_teams_is_a_card_for_the_asker() {
    let t = Tester::on(Platforms::Teams, &[]).await;
    t.kube
        .apply_cronjob(CronJobFixture::new("broken").schedule("61 * * * *").build());
    let teams = t.teams();
    let channel = t.teams_channel();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let answer = loop {
        teams
            .send_message("alice", &channel, "cronjobs broken")
            .await;
        let answer = teams.next_message().await;
        if answer.render().contains("CronJob default/broken")
            || tokio::time::Instant::now() > deadline
        {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer.kind, Kind::Personal);
    let text = answer.render();
    assert!(text.contains("# CronJob default/broken"), "{text}");
    assert!(
        text.contains("- Schedule: 61 \\* \\* \\* \\* (UTC)"),
        "{text}"
    );
    assert!(text.contains("⚠️ unparsable schedule"), "{text}");
    t.finish().await;
}
