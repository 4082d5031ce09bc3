//! Ticket references: `RERUN_BOT_TICKET_PATTERN` checks them wherever they are
//! typed (forms, dialogs, `/rerun --ticket`), `RERUN_BOT_TICKET_URL` turns them
//! into links on the approval card, the alert, `/rerun history` and the audit.

use std::time::Duration;

use clap::Parser;
use serde_json::Value;

use crate::support::slack::ViewValue;
use crate::support::tester::{CHANNEL, Platforms};
use crate::support::{CronJobFixture, Failure, Resource, Tester};

const AUDIT_TOKEN: &str = "audit-secret";
const PATTERN: &str = "^(INC|OPS)-[0-9]+$";
const URL: &str = "https://jira.example.com/browse/{ticket}";

fn ticket_args() -> Vec<&'static str> {
    vec![
        "--ticket-pattern",
        PATTERN,
        "--ticket-url",
        URL,
        "--audit-token",
        AUDIT_TOKEN,
    ]
}

fn billing_sync() -> CronJobFixture {
    CronJobFixture::new("billing-sync")
        .schedule("0 3 * * *")
        .backoff_limit(2)
}

fn text(v: &str) -> ViewValue {
    ViewValue::Text(v.to_string())
}

fn reruns(t: &Tester) -> Vec<Value> {
    t.kube
        .list(Resource::Jobs, None)
        .into_iter()
        .filter(|j| j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot")
        .collect()
}

async fn audit(t: &Tester) -> Vec<rerun_bot::store::AuditEntry> {
    rerun_bot::audit_client::fetch(&t.url(""), AUDIT_TOKEN, Some("1h"), None)
        .await
        .expect("audit endpoint answers")
}

#[tokio::test]
async fn a_ticket_off_the_pattern_is_a_field_error_a_good_one_a_link_everywhere() {
    let t = Tester::with_args(&ticket_args()).await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let alert = t.slack.next_message().await;
    t.click("U_ALICE", &alert, "rerun").await;
    let view = t.next_view().await;

    let bad = t
        .submit(
            "U_ALICE",
            &view,
            &[("reason", text("db was down")), ("ticket", text("foo"))],
        )
        .await
        .json();
    assert_eq!(bad["response_action"], "errors", "{bad}");
    assert_eq!(
        bad["errors"]["ticket"],
        format!("ticket `foo` does not match {PATTERN}"),
        "{bad}"
    );
    t.slack.expect_quiet(Duration::from_millis(200)).await;
    assert!(
        audit(&t)
            .await
            .iter()
            .all(|e| e.event.action != "rerun.requested"),
        "nothing requested"
    );

    let ok = t
        .submit(
            "U_ALICE",
            &view,
            &[("reason", text("db was down")), ("ticket", text("INC-42"))],
        )
        .await;
    assert_eq!(ok.body, "", "the form closes");
    let card = t.slack.next_message().await;
    let link = "<https://jira.example.com/browse/INC-42|INC-42>";
    assert!(card.render().contains(link), "{}", card.render());
    let status = t.slack.next_update().await;
    assert_eq!(status.ts, alert.ts);
    assert!(
        status.render().contains(&format!("(ticket {link})")),
        "{}",
        status.render()
    );

    let history = t
        .command("U_CAROL", CHANNEL, "/rerun", "history billing-sync")
        .await
        .body;
    assert!(history.contains(link), "{history}");

    let requested = audit(&t)
        .await
        .into_iter()
        .find(|e| e.event.action == "rerun.requested")
        .expect("rerun.requested audited");
    assert_eq!(requested.event.detail["ticket"], "INC-42");
    assert_eq!(
        requested.event.detail["ticket_url"],
        "https://jira.example.com/browse/INC-42"
    );
    let table = rerun_bot::audit_client::table(&[requested]);
    assert!(
        table.contains("ticket_url=https://jira.example.com/browse/INC-42"),
        "{table}"
    );

    t.click("U_BOB", &card, "approve").await;
    while tokio::time::timeout(Duration::from_millis(500), async {
        tokio::select! {
            _ = t.slack.next_message() => {},
            _ = t.slack.next_update() => {},
        }
    })
    .await
    .is_ok()
    {}
    let jobs = reruns(&t);
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0]["metadata"]["annotations"]["rerun-bot.io/ticket"],
        "INC-42"
    );
    let approved = audit(&t)
        .await
        .into_iter()
        .find(|e| e.event.action == "rerun.approved")
        .expect("rerun.approved audited");
    assert_eq!(
        approved.event.detail["ticket_url"],
        "https://jira.example.com/browse/INC-42"
    );
    t.finish().await;
}

#[tokio::test]
async fn a_bad_ticket_on_the_command_line_is_refused_and_nothing_changes() {
    let t = Tester::with_args(&ticket_args()).await;
    t.kube.apply_cronjob(billing_sync().build());
    tokio::time::sleep(Duration::from_millis(200)).await;
    for text in [
        "billing-sync --reason \"db down\" --ticket foo",
        // Without a reason the form would open: the ticket is checked first.
        "billing-sync --ticket inc-1",
    ] {
        let answer = t.command("U_ALICE", CHANNEL, "/rerun", text).await.json();
        let said = answer["text"].as_str().unwrap_or_default();
        assert!(
            said.contains("does not match ^(INC|OPS)-[0-9]+$") && said.contains("nothing"),
            "{text}: {answer}"
        );
    }
    assert!(t.slack.calls("chat.postMessage").is_empty());
    assert!(t.slack.calls("views.open").is_empty());

    // The same command with a good ticket: a card with the link.
    let answer = t
        .command(
            "U_ALICE",
            CHANNEL,
            "/rerun",
            "billing-sync --reason \"db down\" --ticket OPS-7",
        )
        .await;
    assert_eq!(answer.status, 200);
    let card = t.slack.next_message().await;
    assert!(
        card.render()
            .contains("<https://jira.example.com/browse/OPS-7|OPS-7>"),
        "{}",
        card.render()
    );
    assert!(reruns(&t).is_empty());
    t.finish().await;
}

#[tokio::test]
async fn without_a_url_tickets_stay_text_and_any_ticket_goes_without_a_pattern() {
    let t = Tester::start().await;
    t.kube.apply_cronjob(billing_sync().build());
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.command(
        "U_ALICE",
        CHANNEL,
        "/rerun",
        "billing-sync --reason x --ticket \"see <https://evil.example|here>\"",
    )
    .await;
    let card = t.slack.next_message().await;
    let shown = card.render();
    assert!(
        shown.contains("see &lt;https://evil.example|here&gt;"),
        "{shown}"
    );
    t.finish().await;
}

#[tokio::test]
async fn teams_dialog_checks_the_ticket_and_the_card_links_it() {
    let t = Tester::on(Platforms::Teams, &ticket_args()).await;
    t.kube.apply_cronjob(billing_sync().build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let teams = t.teams();
    let alert = teams.next_message().await;
    let fetched = teams.click("alice", &alert, "rerun").await;
    let dialog = fetched.dialog().expect("Rerun opens a dialog");
    let again = teams
        .submit_dialog(
            "alice",
            &dialog,
            &[("reason", "db down"), ("ticket", "foo")],
        )
        .await;
    let errors = again.dialog().expect("the dialog again, with its errors");
    assert!(
        errors.render().contains("does not match"),
        "{}",
        errors.render()
    );
    teams.wait_quiet(Duration::from_millis(200)).await;

    let done = teams
        .submit_dialog(
            "alice",
            &dialog,
            &[("reason", "db down"), ("ticket", "INC-42")],
        )
        .await;
    assert!(
        done.dialog().is_none(),
        "the dialog closes: {:?}",
        done.body
    );
    let card = teams.next_message().await;
    let link = "[INC-42](https://jira.example.com/browse/INC-42)";
    assert!(
        card.card.as_ref().unwrap().to_string().contains(link),
        "{:?}",
        card.card
    );
    let status = teams.next_update_of(&alert.activity_id).await;
    assert!(
        status.card.as_ref().unwrap().to_string().contains(link),
        "{:?}",
        status.card
    );
    t.finish().await;
}

#[derive(Parser)]
struct SettingsOnly {
    #[command(flatten)]
    settings: rerun_bot::config::Settings,
}

#[test]
fn a_bad_pattern_or_url_stops_the_start_with_a_clear_message() {
    let parse = |args: &[&str]| {
        let mut all = vec!["rerun-bot", "--slack-bot-token", "xoxb-x"];
        all.extend_from_slice(args);
        SettingsOnly::try_parse_from(all)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let e = parse(&["--ticket-pattern", "(INC"]).unwrap_err();
    assert!(
        e.contains("RERUN_BOT_TICKET_PATTERN `(INC` is not a valid regular expression"),
        "{e}"
    );
    let e = parse(&["--ticket-url", "https://jira.example.com/browse/"]).unwrap_err();
    assert!(e.contains("has no {ticket}"), "{e}");
    assert!(parse(&["--ticket-pattern", PATTERN, "--ticket-url", URL]).is_ok());
}
