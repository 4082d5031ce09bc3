//! Every Adaptive Card the bot sends to Microsoft Teams, for realistic cases:
//! snapshots of the card JSON, and every card parsed by Microsoft's own
//! `adaptivecards` package (`tests/cards/validate.mjs`).

use chrono::{DateTime, TimeZone, Utc};
use rerun_bot::chat::teams::cards;
use rerun_bot::chat::{Confirm, Form, FormKind, FormValues, Outgoing, Reply};
use rerun_bot::core::alert::LogTail;
use rerun_bot::core::hold::{Item, Kind, Operation, Outcome, Phase};
use rerun_bot::core::model::ContainerExit;
use rerun_bot::core::overrides::{ArgsMode, Diff, EnvChange, Overrides};
use rerun_bot::core::request::{RerunRequest, State, StopTarget};
use rerun_bot::core::{AlertStory, FailureAlert};
use serde_json::Value;

use crate::support::cards::validate_cards;

const ALICE: &str = "6e1f2a3b-0000-4000-8000-00000000a11c";
const BOB: &str = "6e1f2a3b-0000-4000-8000-000000000b0b";

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, h, m, 0).unwrap()
}

fn names(id: &str) -> Option<String> {
    match id {
        ALICE => Some("Alice Admin".into()),
        BOB => Some("Bob *Builder*".into()),
        "U_OWNER" => Some("Olga Owner".into()),
        _ => None,
    }
}

fn alert() -> FailureAlert {
    FailureAlert {
        namespace: "default".into(),
        cronjob: "billing-sync".into(),
        job: "billing-sync-28391040".into(),
        job_uid: "9f1c2d3e-job-uid".into(),
        owner: Some(ALICE.into()),
        reason: "BackoffLimitExceeded".into(),
        message: "Job has reached the specified backoff limit".into(),
        failed_pods: 3,
        backoff_limit: Some(2),
        started_at: Some(at(3, 0)),
        failed_at: at(3, 4),
        schedule: Some("0 3 * * *".into()),
        time_zone: None,
        next_run: Some(Utc.with_ymd_and_hms(2024, 1, 2, 3, 0, 0).unwrap()),
        schedule_problem: None,
        concurrency_policy: Some("Forbid".into()),
        suspended: false,
        cronjob_missing: false,
        rerun_request: None,
        exit: Some(ContainerExit {
            pod: "billing-sync-28391040-x7k2q".into(),
            container: "main".into(),
            exit_code: 1,
            reason: Some("Error".into()),
            finished_at: Some(at(3, 4)),
        }),
        log: LogTail::Captured {
            container: "main".into(),
            text: "connecting to db\nERROR: relation \"invoices\" does not exist".into(),
            lines: 2,
            truncated: false,
        },
        failed_indexes: None,
        kind: Default::default(),
    }
}

fn deadline_alert() -> FailureAlert {
    FailureAlert {
        reason: "DeadlineExceeded".into(),
        message: "Job was active longer than specified deadline".into(),
        failed_pods: 1,
        schedule: Some("30 2 * * 1-5".into()),
        time_zone: Some("Europe/Berlin".into()),
        owner: None,
        exit: Some(ContainerExit {
            pod: "billing-sync-28391040-x7k2q".into(),
            container: "main".into(),
            exit_code: 137,
            reason: Some("Error".into()),
            finished_at: None,
        }),
        log: LogTail::Captured {
            container: "main".into(),
            text: "starting run.sh\nprocessing batch 1 of 40\n    at step 2 (retrying)\nprocessing batch 2 of 40".into(),
            lines: 4,
            truncated: false,
        },
        ..alert()
    }
}

fn oom_alert() -> FailureAlert {
    FailureAlert {
        owner: Some("team billing <billing@example.com>".into()),
        exit: Some(ContainerExit {
            pod: "report-28391040-abcde".into(),
            container: "worker".into(),
            exit_code: 137,
            reason: Some("OOMKilled".into()),
            finished_at: Some(at(3, 4)),
        }),
        concurrency_policy: Some("Allow".into()),
        log: LogTail::Unavailable("pods \"report-28391040-abcde\" not found".into()),
        suspended: true,
        ..alert()
    }
}

/// A log written by someone who wants to mention, link and format.
const HOSTILE: &str = "<at>Bob</at> please approve\n<b>bold</b> <script>alert(1)</script> &amp; &lt;\n[x](http://evil) **not bold** _not italic_ `code`\n{{DATE(2024-01-01T00:00:00Z, SHORT)}} # not a heading\n- not a list\n1. not numbered\n> not a quote\n\n\\ backslash \\* end";

fn hostile_alert() -> FailureAlert {
    FailureAlert {
        reason: "<at>Bob</at>".into(),
        message: "[click](http://evil) **now**".into(),
        owner: Some("<at>Bob</at> [x](http://evil)".into()),
        log: LogTail::Captured {
            container: "main".into(),
            text: HOSTILE.into(),
            lines: 11,
            truncated: false,
        },
        ..alert()
    }
}

/// A megabyte of log whose last line is the one that matters.
fn huge_alert() -> FailureAlert {
    let mut text = String::new();
    let mut n = 0;
    while text.len() < 1_000_000 {
        text.push_str(&format!(
            "line {n} <at>Bob</at> *** [x](http://evil) ééé 🚀\n"
        ));
        n += 1;
    }
    text.push_str("FATAL: the real error is here");
    FailureAlert {
        log: LogTail::Captured {
            container: "main".into(),
            text,
            lines: n + 1,
            truncated: true,
        },
        ..alert()
    }
}

fn request(state: State) -> RerunRequest {
    let mut req = RerunRequest {
        id: "r7x2k9".into(),
        namespace: "default".into(),
        cronjob: "billing-sync".into(),
        requested_by: ALICE.into(),
        requested_at: at(3, 10),
        expires_at: at(7, 10),
        reason: "db was down; fixed".into(),
        ticket: Some("INC-42".into()),
        source_job: Some("billing-sync-28391040".into()),
        alert: Some("9f1c2d3e-job-uid".into()),
        channel: "19:abc@thread.tacv2".into(),
        thread_ts: Some("1704078000000".into()),
        state,
        ..Default::default()
    };
    match state {
        State::Pending | State::Expired => {}
        State::Denied | State::Cancelled => {
            req.decided_by = Some(if state == State::Denied { BOB } else { ALICE }.into());
            req.decided_at = Some(at(3, 20));
        }
        _ => {
            req.approved_by = Some(BOB.into());
            req.decided_at = Some(at(3, 20));
        }
    }
    if matches!(state, State::Created | State::Succeeded | State::Failed) {
        req.job = Some("billing-sync-rerun-r7x2k9".into());
    }
    match state {
        State::Failed => req.note = Some("BackoffLimitExceeded".into()),
        State::Aborted => req.note = Some("the CronJob is on hold `hold-1`".into()),
        _ => {}
    }
    req
}

fn request_with_changes() -> RerunRequest {
    RerunRequest {
        ticket: Some("OPS-7".into()),
        reason: "missed the 1st".into(),
        source_job: None,
        overrides: Overrides {
            container: None,
            args: vec!["--date=2024-01-01".into()],
            args_mode: ArgsMode::Append,
            env: vec![("DATE".into(), "2024-01-01".into())],
        },
        diff: Diff {
            container: "main".into(),
            args: Some((
                vec!["sync --day=yesterday".into()],
                vec!["sync --day=yesterday".into(), "--date=2024-01-01".into()],
            )),
            env: vec![
                EnvChange {
                    name: "DATE".into(),
                    before: None,
                    after: "2024-01-01".into(),
                },
                EnvChange {
                    name: "API_TOKEN".into(),
                    before: Some("(from secretKeyRef billing/token)".into()),
                    after: "••••••".into(),
                },
            ],
        },
        ..request(State::Pending)
    }
}

fn hostile_request() -> RerunRequest {
    RerunRequest {
        reason: "<at>Bob</at> [x](http://evil) **urgent** <b>now</b>".into(),
        ticket: Some("[INC](http://evil)".into()),
        diff: Diff {
            container: "main".into(),
            args: Some((vec![], vec!["<at>Bob</at>".into(), "*x*".into()])),
            env: vec![],
        },
        held: Some("hold-1".into()),
        ..request(State::Pending)
    }
}

fn item(name: &str, suspended_before: bool, outcome: Outcome, terminated: &[&str]) -> Item {
    Item {
        namespace: "billing".into(),
        name: name.into(),
        suspended_before,
        terminate: !terminated.is_empty(),
        running: terminated.iter().map(|s| s.to_string()).collect(),
        terminated: terminated.iter().map(|s| s.to_string()).collect(),
        outcome,
    }
}

fn operation(kind: Kind, phase: Phase, items: Vec<Item>) -> Operation {
    Operation {
        id: match kind {
            Kind::Hold => "hold-1".into(),
            Kind::Resume => "resume-1".into(),
        },
        kind,
        target: "ns:billing".into(),
        reason: Some("db maintenance <at>Bob</at>".into()),
        by: ALICE.into(),
        at: at(4, 0),
        channel: "19:abc@thread.tacv2".into(),
        phase,
        items,
        message: None,
        ended: false,
        until_secs: Some(7200),
        resume_at: (kind == Kind::Hold).then(|| at(6, 0)),
        reminded: false,
    }
}

fn hold_done() -> Operation {
    operation(
        Kind::Hold,
        Phase::Done,
        vec![
            item(
                "billing-sync",
                false,
                Outcome::Held,
                &["billing-sync-28391040"],
            ),
            item("invoices", true, Outcome::Held, &[]),
            item(
                "reports",
                false,
                Outcome::Failed("409 Conflict".into()),
                &[],
            ),
            item("old", false, Outcome::Gone, &[]),
        ],
    )
}

fn hold_progress() -> Operation {
    let mut op = hold_done();
    op.phase = Phase::Applying;
    op.items[2].outcome = Outcome::Planned;
    op.items[3].outcome = Outcome::Planned;
    op
}

fn resume_done() -> Operation {
    let mut items: Vec<Item> = (0..7)
        .map(|n| {
            item(
                &format!("job-{n}"),
                false,
                Outcome::Resumed,
                &[&format!("job-{n}-28391040")],
            )
        })
        .collect();
    items.push(item("invoices", true, Outcome::LeftSuspended, &[]));
    items.push(item("manual", false, Outcome::ChangedByHand, &[]));
    let mut op = operation(Kind::Resume, Phase::Done, items);
    op.reason = None;
    op
}

fn form(kind: FormKind) -> Form {
    Form {
        kind,
        namespace: "default".into(),
        cronjob: "billing-sync".into(),
        context: vec![
            "Job billing-sync-28391040 failed: BackoffLimitExceeded".into(),
            "Last log line: <at>Bob</at> [x](http://evil)".into(),
        ],
        containers: match kind {
            FormKind::RerunReason | FormKind::StopReason => vec!["main".into()],
            FormKind::RerunOverrides => vec!["main".into(), "sidecar".into()],
        },
        prefill: FormValues {
            args: "--date=2024-01-01".into(),
            args_mode: ArgsMode::Replace,
            env: "DATE=2024-01-01".into(),
            container: Some("sidecar".into()),
            ..Default::default()
        },
        require_ticket: kind == FormKind::RerunOverrides,
        metadata: r#"{"alert":"9f1c2d3e-job-uid"}"#.into(),
    }
}

fn no_names(_: &str) -> Option<String> {
    None
}

/// A card as insta sees it: pretty JSON under `tests/bot/snapshots/teams_*.snap`.
fn snapshot(name: &str, card: &Value) {
    insta::with_settings!({ prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(format!("teams_{name}"), serde_json::to_string_pretty(card).unwrap());
    });
}

/// Every string in a card, with where it is.
fn strings<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((path, s)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| strings(v, format!("{path}[{i}]"), out)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, v)| strings(v, format!("{path}.{k}"), out)),
        _ => {}
    }
}

/// Markdown text of a card (TextBlocks and facts) with its escapes removed:
/// what is left is what a markdown renderer acts on.
fn active_markdown(card: &Value) -> Vec<(String, String)> {
    let mut all = Vec::new();
    strings(card, "$".into(), &mut all);
    all.into_iter()
        .filter(|(path, _)| {
            path.ends_with(".text") || path.ends_with(".value") && path.contains(".facts[")
        })
        .map(|(path, s)| {
            let mut out = String::new();
            let mut chars = s.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    chars.next();
                    out.push('·');
                } else {
                    out.push(c);
                }
            }
            (path, out)
        })
        .collect()
}

/// The verbs of a card's buttons, wherever they are.
fn verbs(card: &Value) -> Vec<String> {
    let mut all = Vec::new();
    strings(card, "$".into(), &mut all);
    all.into_iter()
        .filter(|(path, _)| path.ends_with(".verb"))
        .map(|(_, s)| s.to_string())
        .collect()
}

fn alert_card(alert: &FailureAlert, failures: u32, reply: bool, status: Option<&str>) -> Value {
    let story = AlertStory {
        failures,
        ..AlertStory::single()
    };
    cards::message(
        &Outgoing::Alert {
            alert,
            story: &story,
            reply,
            status,
        },
        &names,
    )
}

#[test]
fn teams_cards_alerts() {
    let backoff = alert_card(
        &alert(),
        1,
        false,
        Some(
            "🔁 Rerun requested by <@6e1f2a3b-0000-4000-8000-00000000a11c> — *waiting* for `approval`.",
        ),
    );
    snapshot("alert_backoff_limit", &backoff);
    let deadline = alert_card(&deadline_alert(), 1, false, None);
    snapshot("alert_deadline_exceeded", &deadline);
    let oom = alert_card(&oom_alert(), 2, false, None);
    snapshot("alert_oom_killed", &oom);

    let body = backoff["body"].to_string();
    assert!(
        body.contains(r#"{"title":"Attempts","value":"3 failed / backoffLimit 2"}"#),
        "{body}"
    );
    assert!(body.contains("{{DATE(2024-01-01T03:04:00Z, SHORT)}} {{TIME(2024-01-01T03:04:00Z)}}"));
    assert!(
        body.contains("Rerun requested by Alice Admin — **waiting** for approval."),
        "{body}"
    );
    assert!(body.contains(r#""fontType":"Monospace""#));
    assert_eq!(
        verbs(&backoff),
        [
            "rerun",
            "rerun_with_changes",
            "hold",
            "snooze",
            "snooze",
            "snooze",
            "snooze"
        ]
    );
    assert_eq!(
        backoff["actions"][0]["data"]["msteams"]["type"],
        "task/fetch"
    );
    assert_eq!(backoff["actions"][0]["data"]["value"], "9f1c2d3e-job-uid");
    assert_eq!(backoff["actions"][2]["type"], "Action.Execute");
    assert_eq!(
        backoff["actions"][2]["data"],
        serde_json::json!({"value": "9f1c2d3e-job-uid"})
    );
    assert!(
        oom["body"]
            .to_string()
            .contains("137 (OOMKilled) · container worker")
    );
    assert!(oom["body"].to_string().contains("suspended: no next run"));

    let mut others = vec![];
    for log in [
        LogTail::Capturing,
        LogTail::NotCaptured,
        LogTail::Captured {
            container: "main".into(),
            text: " \n".into(),
            lines: 1,
            truncated: false,
        },
    ] {
        others.push(alert_card(&FailureAlert { log, ..alert() }, 1, false, None));
    }
    let gone = FailureAlert {
        cronjob_missing: true,
        rerun_request: Some("r7x2k9".into()),
        schedule: None,
        owner: None,
        exit: None,
        started_at: None,
        ..alert()
    };
    let gone_card = alert_card(&gone, 3, true, None);
    assert!(
        gone_card.get("actions").is_none(),
        "no buttons for a CronJob that is gone"
    );
    others.push(gone_card);
    let mut all = vec![backoff, deadline, oom];
    all.extend(others);
    validate_cards(&all);
}

#[test]
fn teams_cards_hostile_text_is_inert() {
    let hostile = alert_card(
        &hostile_alert(),
        1,
        false,
        Some("<at>Bob</at> [x](http://evil) <!channel>"),
    );
    snapshot("alert_hostile_log", &hostile);
    let request = cards::message(&Outgoing::Request(&hostile_request()), &names);
    let notice = cards::message(&Outgoing::Notice(HOSTILE), &names);
    let dialog = cards::dialog(
        &form(FormKind::RerunOverrides),
        &FormValues {
            reason: HOSTILE.into(),
            ..Default::default()
        },
        &[("reason", "<at>Bob</at> [x](http://evil)".into())],
    );
    for (n, card) in [&hostile, &request, &notice, &dialog]
        .into_iter()
        .enumerate()
    {
        assert!(
            !card.to_string().contains("entities"),
            "no mention entities: {card}"
        );
        for (path, text) in active_markdown(card) {
            for bad in ["<", ">", "[", "`", "{{DATE(2024-01-01T00:00:00Z", "](http"] {
                assert!(
                    !text.contains(bad),
                    "{path}: `{bad}` is live markdown in {text:?}"
                );
            }
            if n == 2 {
                // A notice is the bot's own words: `*bold*` and `_italic_` are its markup.
                continue;
            }
            // The only emphasis left is the bot's own bold (`**…**` of its labels).
            let stars = text.replace("**", "");
            assert!(
                !stars.contains('*') && !text.contains("_not italic_"),
                "{path}: {text:?}"
            );
            assert!(
                !text.contains("\n- ") && !text.starts_with("- ") && !text.starts_with('#'),
                "{path}: {text:?}"
            );
        }
    }
    // Names from the directory are escaped too.
    assert!(request["body"].to_string().contains(r"Alice Admin"));
    let approved = cards::message(&Outgoing::Request(&request_for_bob()), &names);
    assert!(
        approved["body"].to_string().contains(r"Bob \\*Builder\\*"),
        "{approved}"
    );
    validate_cards(&[hostile, request, notice, dialog, approved]);
}

fn request_for_bob() -> RerunRequest {
    request(State::Approved)
}

#[test]
fn teams_cards_a_megabyte_of_log_fits_and_keeps_its_end() {
    let card = alert_card(&huge_alert(), 1, false, None);
    let bytes = serde_json::to_vec(&card).unwrap().len();
    assert!(bytes < cards::CARD_MAX_BYTES, "{bytes} bytes");
    let attachment = cards::attachment(card.clone());
    assert_eq!(attachment["contentType"], cards::CONTENT_TYPE);
    assert!(serde_json::to_vec(&attachment).unwrap().len() < 100 * 1024);
    let log = card["body"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "Container")
        .expect("the log");
    let lines = log["items"].as_array().unwrap();
    assert!(lines.len() <= cards::LOG_MAX_LINES);
    assert_eq!(
        lines.last().unwrap()["text"],
        "FATAL: the real error is here"
    );
    assert!(card["body"].to_string().contains("cut to fit"));
    assert_eq!(
        verbs(&card),
        [
            "rerun",
            "rerun_with_changes",
            "hold",
            "snooze",
            "snooze",
            "snooze",
            "snooze"
        ],
        "buttons survive"
    );
    validate_cards(&[card]);
}

#[test]
fn teams_cards_requests_in_every_state() {
    let mut all = vec![];
    for state in [
        State::Pending,
        State::Approved,
        State::Created,
        State::Succeeded,
        State::Failed,
        State::Denied,
        State::Cancelled,
        State::Expired,
        State::Aborted,
    ] {
        let card = cards::message(&Outgoing::Request(&request(state)), &names);
        snapshot(&format!("request_{}", state.as_str()), &card);
        if state == State::Pending {
            assert_eq!(verbs(&card), ["approve", "deny", "cancel"]);
            assert_eq!(
                card["actions"][0]["data"],
                serde_json::json!({"value": "r7x2k9"})
            );
        } else {
            assert!(verbs(&card).is_empty(), "{state:?} has no buttons");
        }
        all.push(card);
    }
    let changes = cards::message(&Outgoing::Request(&request_with_changes()), &names);
    snapshot("request_with_changes", &changes);
    assert!(
        changes["body"]
            .to_string()
            .contains(r"env API\\_TOKEN = •••••• (was (from secretKeyRef billing/token))")
    );
    let held = cards::message(&Outgoing::Request(&hostile_request()), &names);
    assert_eq!(verbs(&held), ["approve", "approve_held", "deny", "cancel"]);
    all.extend([changes, held]);
    // A stop request: what it deletes instead of what it changes.
    for state in [State::Pending, State::Succeeded, State::Aborted] {
        let mut stop = request(state);
        stop.stop = Some(StopTarget {
            job: "billing-sync-28391040".into(),
            uid: "9f1c2d3e-job-uid".into(),
        });
        if state == State::Aborted {
            stop.note =
                Some("Job `billing-sync-28391040` had succeeded before it could be stopped".into());
        }
        let card = cards::message(&Outgoing::Request(&stop), &names);
        snapshot(&format!("request_stop_{}", state.as_str()), &card);
        let text = card["body"].to_string();
        assert!(text.contains("🛑 Stop request"), "{text}");
        assert!(!text.contains("Changes"), "a stop changes nothing: {text}");
        all.push(card);
    }
    validate_cards(&all);
}

#[test]
fn teams_cards_history_and_replies() {
    let requests: Vec<RerunRequest> = [State::Succeeded, State::Denied, State::Pending]
        .into_iter()
        .map(request)
        .chain([request_with_changes()])
        .collect();
    let history = cards::message(&Outgoing::History(&requests), &names);
    snapshot("history", &history);
    assert!(
        history["body"].to_string().contains(
            "(https://teams.microsoft.com/l/message/19%3Aabc%40thread.tacv2/1704078000000)"
        )
    );
    let confirm = Reply::Confirm(Confirm {
        text:
            "Hold *3 CronJobs* in `ns:billing`?\n• billing/billing-sync (terminates 1 running Job)"
                .into(),
        action: "hold_confirm",
        label: "Hold",
        value: "hold-1".into(),
    });
    let confirm_card = cards::reply(&confirm, &names);
    snapshot("hold_preview", &confirm_card);
    assert_eq!(verbs(&confirm_card), ["hold_confirm", "hold_cancel"]);
    assert_eq!(
        confirm_card["actions"][1]["data"],
        serde_json::json!({"value": "hold-1"})
    );
    let ephemeral = Reply::Ephemeral("You asked for this rerun, <@6e1f2a3b-0000-4000-8000-00000000a11c>: someone else approves it. See `/rerun help`.".into());
    let errors = Reply::FormErrors(vec![("reason", "A reason is required.".into())]);
    let replies = [
        cards::reply(&Reply::History(requests.clone()), &names),
        cards::reply(&Reply::History(vec![]), &no_names),
        confirm_card.clone(),
        cards::reply(&ephemeral, &names),
        cards::reply(&errors, &names),
        cards::reply(&Reply::Ack, &names),
    ];
    assert_eq!(
        cards::reply_text(&ephemeral, &names),
        "You asked for this rerun, Alice Admin: someone else approves it. See /rerun help."
    );
    assert_eq!(
        cards::reply_text(&errors, &names),
        "reason: A reason is required."
    );
    assert!(
        cards::reply_text(&Reply::History(requests.clone()), &no_names).starts_with(
            "Last 4 rerun requests\nr7x2k9 default/billing-sync · succeeded · asked by someone"
        )
    );
    let mut all = vec![history];
    all.extend(replies);
    validate_cards(&all);
}

#[test]
fn teams_cards_holds() {
    let preview_done = cards::message(&Outgoing::Operation(&hold_done()), &names);
    snapshot("hold_summary", &preview_done);
    let progress = cards::message(&Outgoing::Operation(&hold_progress()), &names);
    snapshot("hold_progress", &progress);
    assert!(
        progress["body"]
            .to_string()
            .contains("⏳ 2/4 CronJobs done…")
    );
    let resume = cards::message(&Outgoing::Operation(&resume_done()), &names);
    snapshot("resume_summary", &resume);
    let expected: Vec<String> = (0..7).map(|n| format!("rerun_cronjob:{n}")).collect();
    assert_eq!(verbs(&resume), expected);
    let sets: Vec<&Value> = resume["body"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "ActionSet")
        .collect();
    assert_eq!(sets.len(), 2);
    assert_eq!(
        sets[0]["actions"][0]["data"],
        serde_json::json!({"msteams": {"type": "task/fetch"}, "verb": "rerun_cronjob:0", "value": "billing/job-0"})
    );
    validate_cards(&[preview_done, progress, resume]);
}

#[test]
fn teams_cards_dialogs() {
    let reason = form(FormKind::RerunReason);
    let overrides = form(FormKind::RerunOverrides);
    assert_eq!(cards::dialog_title(&reason), "Rerun billing-sync");
    assert_eq!(
        cards::dialog_title(&overrides),
        "Rerun billing-sync with changes"
    );
    let plain = cards::dialog(&reason, &reason.prefill, &[]);
    snapshot("dialog_rerun_reason", &plain);
    let stop = form(FormKind::StopReason);
    assert_eq!(cards::dialog_title(&stop), "Stop a run of billing-sync");
    let stop_dialog = cards::dialog(&stop, &FormValues::default(), &[]);
    snapshot("dialog_stop_reason", &stop_dialog);
    assert!(stop_dialog.to_string().contains("Request stop"));
    let values = FormValues {
        reason: "db was down".into(),
        env: "1BAD=x".into(),
        ..overrides.prefill.clone()
    };
    let errors = [
        ("env", "`1BAD` is not a valid variable name.".to_string()),
        ("ticket", "A ticket is required.".to_string()),
    ];
    let with_errors = cards::dialog(&overrides, &values, &errors);
    snapshot("dialog_rerun_overrides_errors", &with_errors);

    let ids: Vec<&str> = with_errors["body"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["args", "args_mode", "env", "container", "reason", "ticket"]
    );
    let ids: Vec<&str> = plain["body"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(ids, ["reason", "ticket"]);
    let body = with_errors["body"].as_array().unwrap();
    let env = body.iter().position(|b| b["id"] == "env").unwrap();
    assert_eq!(body[env + 1]["color"], "attention");
    assert!(body[env + 1]["text"].as_str().unwrap().contains("1BAD"));
    let ticket = body.iter().position(|b| b["id"] == "ticket").unwrap();
    assert_eq!(body[ticket]["isRequired"], true);
    assert_eq!(body[ticket + 1]["text"], "A ticket is required.");

    // What Teams sends back on submit: the button's data plus every input by id.
    let mut data = with_errors["actions"][0]["data"].clone();
    assert_eq!(data["verb"], cards::DIALOG_SUBMIT_VERB);
    for (id, value) in [
        ("reason", "db was down"),
        ("ticket", "INC-1"),
        ("args", "--a\r\n--b"),
        ("args_mode", "replace"),
        ("env", "DATE=1"),
        ("container", "sidecar"),
    ] {
        data[id] = value.into();
    }
    let (form_back, values_back) = cards::form_submission(&data).expect("ours");
    assert_eq!(form_back.kind, FormKind::RerunOverrides);
    assert_eq!(form_back.metadata, overrides.metadata);
    assert_eq!(
        values_back,
        FormValues {
            reason: "db was down".into(),
            ticket: "INC-1".into(),
            args: "--a\n--b".into(),
            args_mode: ArgsMode::Replace,
            env: "DATE=1".into(),
            container: Some("sidecar".into()),
        }
    );
    assert!(
        cards::form_submission(&serde_json::json!({"verb": "approve", "value": "r1"})).is_none()
    );
    validate_cards(&[
        plain,
        with_errors,
        cards::dialog(&overrides, &overrides.prefill, &[]),
        stop_dialog,
    ]);
}

#[test]
fn teams_cards_validator_reports_what_teams_would_reject() {
    let broken = serde_json::json!({
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": "x", "fonttype": "Monospace"},
            {"type": "Input.Text", "id": "reason", "isRequired": true},
            {"type": "TextBlock", "text": "y", "color": "red"},
        ],
        "actions": [{"type": "Action.Frobnicate", "title": "?"}],
    });
    let failure = std::panic::catch_unwind(|| validate_cards(&[broken])).expect_err("must fail");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    for expected in [
        "unknown property $.body[0].fonttype",
        "RequiredInputsShouldHaveLabel",
        "RequiredInputsShouldHaveErrorMessage",
        "Invalid value \"red\"",
        "Action.Frobnicate",
    ] {
        assert!(
            message.contains(expected),
            "`{expected}` not reported:\n{message}"
        );
    }
}
