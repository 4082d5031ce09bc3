//! Every Adaptive Card rerun-bot sends to Teams is built here, one function each:
//! the Teams twin of `chat/slack/messages.rs`, sharing its sentences through
//! [`crate::chat::wording`].
//!
//! Cards are Adaptive Cards 1.5. Fields go into `FactSet`s, times into
//! `{{DATE(…, SHORT)}} {{TIME(…)}}` so each reader sees their own zone.
//!
//! Escaping: `TextBlock` text and fact values are markdown. Untrusted text (pod
//! logs, reasons, args, notes) goes through [`escape`], which backslash-escapes
//! every character that starts markdown, HTML or a `<at>` tag and breaks `{{` so
//! no template function runs; cards never carry `msteams.entities`, so nothing
//! can become a mention. The bot's own neutral text (`*bold*`, `` `code` ``,
//! `<@USER>`, `<url|text>`) is converted by [`markdown()`]. Paragraphs are
//! separate `TextBlock`s: a single `\n` inside markdown is not a line break on
//! every client.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::chat::wording::{self, Markup};
use crate::chat::{Confirm, Form, FormKind, FormValues, Outgoing, Reply};
use crate::core::alert::LogTail;
use crate::core::hold::Operation;
use crate::core::overrides::ArgsMode;
use crate::core::request::{RerunRequest, State};
use crate::core::storm::Digest;
use crate::core::text::truncate_chars;
use crate::core::{AlertStory, FailureAlert};

mod batch;
mod board;
mod dialog;
mod markdown;
mod request;
mod snooze;
pub use batch::batch_card;
pub use dialog::{dialog, dialog_title, form_submission};
pub use markdown::{escape, markdown};
pub use request::{approval_card, history};

use markdown::{Teams, escape_line, plain_text, when};

/// Display name for a user id seen as `<@id>` in neutral text (Entra object id or Slack id).
pub type Names<'a> = &'a dyn Fn(&str) -> Option<String>;

pub const CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";
/// The `data.verb` of a dialog's submit button.
pub const DIALOG_SUBMIT_VERB: &str = "form_submit";

/// What of a log tail is shown: its end, at most this many characters…
pub const LOG_MAX_CHARS: usize = 6000;
/// …and lines (one `TextBlock` each).
pub const LOG_MAX_LINES: usize = 80;
/// A card's JSON stays under this, well inside Teams' 100 KB per message.
pub const CARD_MAX_BYTES: usize = 80_000;

// ----- building blocks -------------------------------------------------------

fn card(body: Vec<Value>, actions: Vec<Value>) -> Value {
    let mut card = json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "msteams": {"width": "Full"},
        "body": body,
    });
    if !actions.is_empty() {
        card["actions"] = Value::Array(actions);
    }
    fit(card)
}

/// Drops body elements from the end (keeping the actions) until the card fits;
/// every piece is bounded already, this is the last line of defence.
fn fit(mut card: Value) -> Value {
    let size = |c: &Value| serde_json::to_vec(c).map(|v| v.len()).unwrap_or(usize::MAX);
    if size(&card) <= CARD_MAX_BYTES {
        return card;
    }
    if let Some(body) = card["body"].as_array_mut() {
        body.push(text_block("…"));
    }
    while size(&card) > CARD_MAX_BYTES {
        let Some(body) = card["body"].as_array_mut() else {
            break;
        };
        if body.len() <= 2 {
            break;
        }
        let last = body.len() - 2;
        body.remove(last);
    }
    if let Some(body) = card["body"].as_array_mut()
        && let Some(last) = body.last_mut()
    {
        *last = subtle("… (cut to fit the message size limit)");
    }
    card
}

/// A markdown paragraph (already escaped/converted).
fn text_block(text: &str) -> Value {
    json!({"type": "TextBlock", "text": text, "wrap": true})
}

fn subtle(text: &str) -> Value {
    json!({"type": "TextBlock", "text": text, "wrap": true, "isSubtle": true, "size": "Small"})
}

fn heading(text: &str) -> Value {
    json!({
        "type": "TextBlock",
        "text": escape(&truncate_chars(text, 150)),
        "wrap": true,
        "style": "heading",
        "size": "Large",
        "weight": "Bolder",
    })
}

/// Lines as paragraphs: the first as given, the rest tight under it.
fn paragraphs(lines: impl IntoIterator<Item = String>) -> Vec<Value> {
    lines
        .into_iter()
        .enumerate()
        .map(|(n, line)| {
            let mut block = text_block(&line);
            if n > 0 {
                block["spacing"] = "None".into();
            }
            block
        })
        .collect()
}

/// Shared wording (`\n`-separated lines inside an entry) as paragraphs.
fn entry(text: &str) -> Vec<Value> {
    paragraphs(text.split('\n').map(str::to_string))
}

fn facts(facts: Vec<(&str, String)>) -> Value {
    json!({
        "type": "FactSet",
        "facts": facts
            .into_iter()
            .map(|(title, value)| json!({"title": title, "value": value}))
            .collect::<Vec<_>>(),
    })
}

/// A deciding button: an `Action.Execute` with the Slack action id as verb.
fn execute(verb: &str, title: &str, value: &str, style: Option<&str>) -> Value {
    let mut action = json!({
        "type": "Action.Execute",
        "title": truncate_chars(title, 75),
        "verb": verb,
        "data": {"value": value},
    });
    if let Some(style) = style {
        action["style"] = style.into();
    }
    action
}

/// A button that opens a form: `Action.Submit` that Teams turns into `task/fetch`.
fn open_form(verb: &str, title: &str, value: &str, style: Option<&str>) -> Value {
    let mut action = json!({
        "type": "Action.Submit",
        "title": truncate_chars(title, 75),
        "data": {"msteams": {"type": "task/fetch"}, "verb": verb, "value": value},
    });
    if let Some(style) = style {
        action["style"] = style.into();
    }
    action
}

// ----- messages --------------------------------------------------------------

/// An Adaptive Card (`{"type":"AdaptiveCard","version":"1.5",…}`) for every Outgoing variant.
pub fn message(message: &Outgoing<'_>, names: Names) -> Value {
    match message {
        Outgoing::Alert {
            alert,
            story,
            reply,
            status,
        } => failure_alert(alert, story, *reply, *status, names),
        Outgoing::Notice(text) => notice(text, names),
        Outgoing::Request(req) => approval_card(req, names),
        Outgoing::Batch(batch) => batch_card(batch, names),
        Outgoing::History(requests) => history(requests, names),
        Outgoing::Operation(op) => operation(op, names),
        Outgoing::Digest(d) => digest_card(d, names),
    }
}

/// A card for what the person who acted sees (Ephemeral text, History, Confirm; FormErrors as text).
pub fn reply(reply: &Reply, names: Names) -> Value {
    match reply {
        Reply::Ack => card(vec![], vec![]),
        Reply::Ephemeral(text) => notice(text, names),
        Reply::History(requests) => history(requests, names),
        Reply::Board(view) => board::view(view),
        Reply::Confirm(c) => confirm(c, names),
        Reply::FormErrors(errors) => {
            let mut body = vec![text_block("**Please fix the form:**")];
            body.extend(errors.iter().map(|(field, error)| {
                text_block(&format!("{}: {}", escape(field), escape(error)))
            }));
            card(body, vec![])
        }
    }
}

/// Plain text of a Reply, for invoke answers that are a message (`application/vnd.microsoft.activity.message`).
pub fn reply_text(reply: &Reply, names: Names) -> String {
    let text = match reply {
        Reply::Ack => String::new(),
        Reply::Ephemeral(text) => plain_text(text, names),
        Reply::Confirm(c) => plain_text(&c.text, names),
        Reply::Board(view) => board::text(view),
        Reply::History(requests) if requests.is_empty() => "No rerun requests yet.".into(),
        Reply::History(requests) => {
            let mut lines = vec![format!("Last {} rerun requests", requests.len())];
            lines.extend(requests.iter().take(40).map(|r| {
                format!(
                    "{} {} · {} · asked by {}",
                    r.id,
                    r.subject(),
                    r.state.as_str(),
                    names(&r.requested_by).unwrap_or_else(|| "someone".into())
                )
            }));
            lines.join("\n")
        }
        Reply::FormErrors(errors) => errors
            .iter()
            .map(|(field, error)| format!("{field}: {error}"))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    truncate_chars(&text, 4000)
}

/// A plain notice (for example in a thread).
/// A storm digest: how many failed where, the first of them, and "Rerun all failed…".
pub fn digest_card(d: &Digest, names: Names) -> Value {
    let m = Teams { names };
    let mut body = vec![
        heading(&wording::digest_headline(d)),
        text_block(&wording::digest_namespaces(&m, d)),
    ];
    let list = wording::digest_list(&m, d);
    if !list.is_empty() {
        body.push(text_block(&list.join("\n\n")));
    }
    body.push(subtle(&escape(&wording::digest_note(d))));
    card(
        body,
        vec![execute(
            "rerun_failed",
            "Rerun all failed…",
            &d.id,
            Some("positive"),
        )],
    )
}

pub fn notice(text: &str, names: Names) -> Value {
    card(
        paragraphs(markdown(&truncate_chars(text, 4000), names)),
        vec![],
    )
}

/// A preview with its confirm and cancel buttons.
pub fn confirm(c: &Confirm, names: Names) -> Value {
    card(
        paragraphs(markdown(&truncate_chars(&c.text, 4000), names)),
        vec![
            execute(c.action, c.label, &c.value, Some("destructive")),
            execute("hold_cancel", "Cancel", &c.value, None),
        ],
    )
}

/// The failure alert (top level or, with `reply`, a repeated failure in its thread).
pub fn failure_alert(
    alert: &FailureAlert,
    story: &AlertStory,
    reply: bool,
    status: Option<&str>,
    names: Names,
) -> Value {
    let m = Teams { names };
    let mut body = vec![heading(&wording::alert_header(alert, story, reply))];
    let reason = wording::health::summary(&m, alert).unwrap_or_else(|| {
        let mut reason = format!("**Reason:** {}", m.text(&alert.reason, 200));
        if !alert.message.is_empty() {
            reason.push_str(&format!(" — {}", m.text(&alert.message, 1000)));
        }
        reason
    });
    body.push(text_block(&reason));

    // A missed or long run has its own fields; a failure these.
    let health_fields = wording::health::fields(&m, alert);
    let failed = health_fields.is_none();
    let mut fields = health_fields.unwrap_or_default();
    if failed {
        fields.push(("Job", m.code(&alert.job, 300)));
        fields.push(("Attempts", wording::attempts(alert)));
    }
    if let Some(exit) = alert.exit.as_ref().filter(|_| failed) {
        let reason = exit
            .reason
            .as_deref()
            .map(|r| format!(" ({})", m.text(r, 100)))
            .unwrap_or_default();
        fields.push((
            "Exit code",
            format!(
                "{}{reason} · container {}",
                exit.exit_code,
                m.code(&exit.container, 253)
            ),
        ));
    }
    if let Some(started) = alert.started_at.filter(|_| failed) {
        fields.push(("Started", when(started)));
    }
    if failed {
        fields.push(("Failed", when(alert.failed_at)));
    }
    if let Some(schedule) = &alert.schedule {
        let tz = alert
            .time_zone
            .as_deref()
            .map(|z| format!(" ({})", m.text(z, 64)))
            .unwrap_or_default();
        fields.push((
            "Schedule",
            format!(
                "{}{tz} · {}",
                m.code(schedule, 200),
                wording::next_run(&m, alert)
            ),
        ));
    }
    if let Some(policy) = &alert.concurrency_policy {
        fields.push(("Concurrency", m.text(policy, 50)));
    }
    fields.push((
        "Owner",
        match &alert.owner {
            Some(owner) => match names(owner.trim()) {
                Some(name) => escape(&truncate_chars(&name, 100)),
                None => m.text(owner.trim(), 200),
            },
            None => "_not set_ (annotate rerun-bot.io/owner)".to_string(),
        },
    ));
    body.push(facts(fields));

    match &alert.log {
        LogTail::Captured {
            container,
            text,
            lines,
            truncated,
        } if !text.trim().is_empty() => {
            let (tail, cut) = log_tail(text);
            body.push(text_block(&wording::log_title(
                &m,
                container,
                *lines,
                *truncated || cut,
            )));
            body.push(json!({
                "type": "Container",
                "style": "emphasis",
                "spacing": "Small",
                "items": tail
                    .iter()
                    .enumerate()
                    .map(|(n, line)| {
                        let mut block = json!({
                            "type": "TextBlock",
                            "text": escape_line(line),
                            "wrap": true,
                            "fontType": "Monospace",
                            "size": "Small",
                        });
                        if n > 0 {
                            block["spacing"] = "None".into();
                        }
                        block
                    })
                    .collect::<Vec<_>>(),
            }));
        }
        LogTail::Captured { container, .. } => body.push(text_block(&format!(
            "_Container {} wrote no log output._",
            m.code(container, 253)
        ))),
        LogTail::Unavailable(why) => body.push(text_block(&format!(
            "_Logs unavailable: {}_",
            m.text(why, 500)
        ))),
        LogTail::Capturing => body.push(subtle("⏳ Reading the exit code and the end of the log…")),
        LogTail::NotCaptured => {}
    }

    let notes = wording::alert_notes(&m, alert, story, reply);
    if !notes.is_empty() {
        body.push(subtle(&notes.join(" ")));
    }
    if let Some(status) = status {
        body.extend(paragraphs(markdown(&truncate_chars(status, 1000), names)));
    }

    let mut actions = Vec::new();
    if !alert.cronjob_missing {
        // Recovered: nothing to rerun any more; Hold stays.
        for (n, (verb, title)) in wording::health::buttons(alert, story).iter().enumerate() {
            let style = (n == 0).then_some("positive");
            actions.push(open_form(verb, title, &alert.job_uid, style));
        }
        actions.push(execute("hold", "Hold", &alert.job_uid, Some("destructive")));
        if story.recovered.is_none() {
            actions.push(snooze::control(&alert.job_uid));
        }
    }
    card(body, actions)
}

/// The end of a log that fits a card: at most [`LOG_MAX_LINES`] lines and
/// [`LOG_MAX_CHARS`] characters, and whether anything was cut.
fn log_tail(text: &str) -> (Vec<String>, bool) {
    let text = text.trim_end_matches(['\n', '\r']);
    let total = text.chars().count();
    let mut cut = false;
    let text: String = if total > LOG_MAX_CHARS {
        cut = true;
        let tail: String = text.chars().skip(total - LOG_MAX_CHARS).collect();
        // Start at a whole line when there is one.
        match tail.find('\n') {
            Some(i) if i + 1 < tail.len() => tail[i + 1..].to_string(),
            _ => format!("…{tail}"),
        }
    } else {
        text.to_string()
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.len() > LOG_MAX_LINES {
        cut = true;
        lines.drain(..lines.len() - LOG_MAX_LINES);
    }
    (lines, cut)
}

/// A hold or resume: progress while it runs, the summary when it is done, and
/// one Rerun button per CronJob whose Jobs the hold terminated.
pub fn operation(op: &Operation, names: Names) -> Value {
    let m = Teams { names };
    let mut body: Vec<Value> = wording::operation_lines(&m, op)
        .iter()
        .flat_map(|line| entry(line))
        .collect();
    let reruns = wording::resume_reruns(op);
    // Hosts show at most five actions in a set.
    for chunk in reruns.chunks(5) {
        body.push(json!({
            "type": "ActionSet",
            "actions": chunk
                .iter()
                .map(|(verb, label, key)| open_form(verb, label, key, None))
                .collect::<Vec<_>>(),
        }));
    }
    card(body, vec![])
}

/// `{"contentType": CONTENT_TYPE, "content": card}`.
pub fn attachment(card: Value) -> Value {
    json!({"contentType": CONTENT_TYPE, "content": card})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nobody(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn escaping_defuses_markdown_tags_and_templates() {
        assert_eq!(
            escape("<at>Bob</at> [x](http://evil) **b** {{DATE(x)}}"),
            "\\<at\\>Bob\\</at\\> \\[x\\](http://evil) \\*\\*b\\*\\* {\u{200b}{DATE(x)}}"
        );
        assert_eq!(escape_line("  - item"), "\u{a0}\u{a0}\\- item");
        assert_eq!(escape_line("1. first"), "1\\. first");
        assert_eq!(escape_line(""), "\u{a0}");
    }

    #[test]
    fn neutral_markup_becomes_teams_markdown() {
        let names = |id: &str| (id == "U1").then(|| "Alice".to_string());
        assert_eq!(
            markdown(
                "*Hold* `hold-1` by <@U1> and <@U2>: <https://x.io/a|see> 2*3",
                &names
            ),
            ["**Hold** hold-1 by Alice and someone: [see](https://x.io/a) 2\\*3"]
        );
        assert_eq!(
            markdown("<javascript:alert(1)|x> <!channel>", &nobody),
            ["\\<javascript:alert(1)\\|x\\> \\<!channel\\>"]
        );
        assert_eq!(markdown("a\n- b", &nobody), ["a", "\\- b"]);
        assert_eq!(plain_text("*Hold* `x` by <@U1>", &names), "Hold x by Alice");
    }

    #[test]
    fn a_long_log_keeps_its_end() {
        let log = format!("{}\nthe error", "x\n".repeat(100_000));
        let (lines, cut) = log_tail(&log);
        assert!(cut);
        assert_eq!(lines.len(), LOG_MAX_LINES);
        assert_eq!(lines.last().unwrap(), "the error");
        let (lines, cut) = log_tail("a\nb\n");
        assert_eq!(
            (lines, cut),
            (vec!["a".to_string(), "b".to_string()], false)
        );
    }

    #[test]
    fn dialog_submissions_come_back() {
        let form = Form {
            kind: FormKind::RerunOverrides,
            namespace: "default".into(),
            cronjob: "billing-sync".into(),
            context: vec![],
            containers: vec!["main".into(), "side".into()],
            prefill: FormValues::default(),
            require_ticket: false,
            metadata: "m".into(),
        };
        let card = dialog(&form, &FormValues::default(), &[]);
        let mut data = card["actions"][0]["data"].clone();
        data["reason"] = "db down".into();
        data["args"] = "--a\r\n--b".into();
        data["args_mode"] = "replace".into();
        data["container"] = "side".into();
        let (back, values) = form_submission(&data).unwrap();
        assert_eq!(back.metadata, "m");
        assert_eq!(values.args, "--a\n--b");
        assert_eq!(values.args_mode, ArgsMode::Replace);
        assert_eq!(values.container.as_deref(), Some("side"));
        assert!(form_submission(&json!({"verb": "approve"})).is_none());
    }
}
