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
//! `<@USER>`, `<url|text>`) is converted by [`markdown`]. Paragraphs are
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
mod snooze;
pub use batch::batch_card;

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

/// Teams markdown for the shared wording.
struct Teams<'a> {
    names: Names<'a>,
}

impl Markup for Teams<'_> {
    fn text(&self, s: &str, max: usize) -> String {
        escape(&truncate_chars(s, max))
    }
    fn code(&self, s: &str, max: usize) -> String {
        // Teams markdown has no inline code; the text itself, escaped.
        escape(&truncate_chars(s, max))
    }
    fn user(&self, id: &str) -> String {
        user(self.names, id)
    }
    fn when(&self, t: DateTime<Utc>) -> String {
        when(t)
    }
    fn bold(&self, s: &str) -> String {
        format!("**{s}**")
    }
    fn italic(&self, s: &str) -> String {
        format!("_{s}_")
    }
    fn link(&self, text: &str, url: &str) -> String {
        // A space or parenthesis would end a markdown link's URL early.
        let url = url
            .replace(' ', "%20")
            .replace('(', "%28")
            .replace(')', "%29");
        format!("[{}]({url})", escape(text))
    }
}

/// A time in each reader's own zone (Teams evaluates the functions).
fn when(t: DateTime<Utc>) -> String {
    let iso = t.format("%Y-%m-%dT%H:%M:%SZ");
    format!("{{{{DATE({iso}, SHORT)}}}} {{{{TIME({iso})}}}}")
}

/// A person's display name, escaped; "someone" when it is not known.
fn user(names: Names, id: &str) -> String {
    match names(id) {
        Some(name) if !name.trim().is_empty() => escape(&truncate_chars(name.trim(), 100)),
        _ => "someone".into(),
    }
}

/// Untrusted text made inert inside Teams markdown, on one line: every
/// markdown, HTML and tag character is backslash-escaped (CommonMark), `{{`
/// cannot start a template function, control characters go.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut prev = '\0';
    for c in s.chars() {
        match c {
            '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '&' | '~' | '|' | '#' => {
                out.push('\\');
                out.push(c);
            }
            // `{{DATE(…)}}` is evaluated before markdown: keep the braces apart.
            '{' if prev == '{' => out.push_str("\u{200b}{"),
            '\n' | '\r' => out.push(' '),
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
        prev = c;
    }
    out
}

/// An escaped line that also cannot start a block (list, heading, quote,
/// indented code): leading spaces become no-break spaces, a leading list
/// marker is escaped.
fn escape_line(line: &str) -> String {
    let body = escape(line);
    let trimmed = body.trim_start_matches(' ');
    let indent = "\u{a0}".repeat(body.len() - trimmed.len());
    let mut rest = trimmed.to_string();
    if rest.starts_with(['-', '+', '=']) {
        rest.insert(0, '\\');
    } else {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 && rest[digits..].starts_with(['.', ')']) {
            rest.insert(digits, '\\');
        }
    }
    if rest.is_empty() && indent.is_empty() {
        // An empty TextBlock collapses; keep the line's height.
        return "\u{a0}".into();
    }
    indent + &rest
}

/// The app's neutral text (`*bold*`, `_italic_`, `` `code` ``, `<@USER>`,
/// `<url|text>`) as Teams markdown, one entry per line; everything else is
/// escaped like untrusted text.
pub fn markdown(text: &str, names: Names) -> Vec<String> {
    text.lines()
        .map(|line| markdown_line(line, names))
        .collect()
}

fn markdown_line(line: &str, names: Names) -> String {
    let mut out = String::new();
    let mut plain = String::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let flush = |plain: &mut String, out: &mut String| {
        if !plain.is_empty() {
            let escaped = if out.is_empty() {
                escape_line(plain)
            } else {
                escape(plain)
            };
            out.push_str(&escaped);
            plain.clear();
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let close = |delim: char| -> Option<usize> {
            let j = chars[i + 1..].iter().position(|&x| x == delim)? + i + 1;
            Some(j)
        };
        match c {
            '`' => {
                if let Some(j) = close('`').filter(|&j| j > i + 1) {
                    flush(&mut plain, &mut out);
                    let inner: String = chars[i + 1..j].iter().collect();
                    out.push_str(&escape(&inner));
                    i = j + 1;
                    continue;
                }
            }
            '*' | '_' => {
                let opens = chars.get(i + 1).is_some_and(|n| !n.is_whitespace())
                    && (i == 0 || !chars[i - 1].is_alphanumeric());
                if let Some(j) = close(c).filter(|&j| {
                    opens
                        && j > i + 1
                        && !chars[j - 1].is_whitespace()
                        && chars.get(j + 1).is_none_or(|n| !n.is_alphanumeric())
                }) {
                    flush(&mut plain, &mut out);
                    let inner: String = chars[i + 1..j].iter().collect();
                    let inner = markdown_line(&inner, names);
                    let inner = inner.trim_start_matches('\\');
                    out.push_str(&if c == '*' {
                        format!("**{inner}**")
                    } else {
                        format!("_{inner}_")
                    });
                    i = j + 1;
                    continue;
                }
            }
            '<' => {
                if let Some(j) = close('>') {
                    let inner: String = chars[i + 1..j].iter().collect();
                    if let Some(id) = inner.strip_prefix('@').filter(|id| {
                        !id.is_empty()
                            && id
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    }) {
                        flush(&mut plain, &mut out);
                        out.push_str(&user(names, id));
                        i = j + 1;
                        continue;
                    }
                    if let Some(link) = link(&inner) {
                        flush(&mut plain, &mut out);
                        out.push_str(&link);
                        i = j + 1;
                        continue;
                    }
                }
            }
            _ => {}
        }
        plain.push(c);
        i += 1;
    }
    flush(&mut plain, &mut out);
    if out.is_empty() { "\u{a0}".into() } else { out }
}

/// `<url|text>` or `<url>` as a markdown link, for http(s) URLs only.
fn link(inner: &str) -> Option<String> {
    let (url, text) = inner.split_once('|').unwrap_or((inner, inner));
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '<' | '>'));
    ok.then(|| format!("[{}]({url})", escape(text)))
}

/// Plain text of the neutral markup: no markup, names for mentions.
fn plain_text(text: &str, names: Names) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('>') {
            Some(end) => {
                let inner = &after[..end];
                if let Some(id) = inner.strip_prefix('@') {
                    out.push_str(&names(id).unwrap_or_else(|| "someone".into()));
                } else if let Some((url, text)) = inner.split_once('|') {
                    out.push_str(&format!("{text} ({url})"));
                } else {
                    out.push('<');
                    out.push_str(inner);
                    out.push('>');
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace('`', "").replace("*", "")
}

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
        if story.recovered.is_none() {
            for (n, (verb, title)) in wording::health::buttons(alert).iter().enumerate() {
                let style = (n == 0).then_some("positive");
                actions.push(open_form(verb, title, &alert.job_uid, style));
            }
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

/// The approval card of a rerun request; buttons only while it is pending.
pub fn approval_card(req: &RerunRequest, names: Names) -> Value {
    let m = Teams { names };
    let what = req.subject();
    let mut body = vec![heading(&match &req.stop {
        Some(_) => format!("🛑 Stop request: {what}"),
        None => format!("🔁 Rerun request: {what}"),
    })];
    let mut fields = vec![
        ("Requested by", m.user(&req.requested_by)),
        ("CronJob", m.code(&what, 300)),
        (
            "Ticket",
            req.ticket
                .as_deref()
                .map(|t| wording::ticket(&m, t, req.ticket_url.as_deref(), 300))
                .unwrap_or_else(|| "_none_".into()),
        ),
        ("Expires", when(req.expires_at)),
    ];
    match (&req.stop, &req.source_job) {
        (Some(stop), _) => fields.push(("Job to stop", m.code(&stop.job, 300))),
        (None, Some(job)) => fields.push(("Failed Job", m.code(job, 300))),
        (None, None) => {}
    }
    body.push(facts(fields));
    body.push(text_block(&format!(
        "**Reason:** {}",
        m.text(&req.reason, 2000)
    )));
    if let Some(stop) = &req.stop {
        body.push(text_block(&wording::stop::what_it_does(&m, stop)));
    } else {
        body.push(text_block(&wording::changes_title(&m, &req.diff)));
        body.extend(paragraphs(wording::diff_lines(&m, &req.diff)));
    }
    let mut status = text_block(&wording::request_status(&m, req));
    status["separator"] = true.into();
    body.push(status);
    let mut actions = Vec::new();
    if req.state == State::Pending {
        actions.push(execute("approve", "Approve", &req.id, Some("positive")));
        if let Some(hold) = &req.held {
            let mut warning = text_block(&wording::held_warning(&m, hold));
            warning["color"] = "warning".into();
            body.push(warning);
            actions.push(execute(
                "approve_held",
                "Approve during hold",
                &req.id,
                Some("destructive"),
            ));
        }
        actions.push(execute("deny", "Deny", &req.id, Some("destructive")));
        actions.push(execute("cancel", "Cancel request", &req.id, None));
    }
    card(body, actions)
}

/// Where a request's thread is, as a link: Teams or Slack, by its channel id.
fn thread_link(req: &RerunRequest) -> Option<String> {
    let ts = req.thread()?;
    if req.channel.contains(':') {
        let channel: String =
            url::form_urlencoded::byte_serialize(req.channel.as_bytes()).collect();
        let ts: String = url::form_urlencoded::byte_serialize(ts.as_bytes()).collect();
        Some(format!(
            "https://teams.microsoft.com/l/message/{channel}/{ts}"
        ))
    } else {
        Some(format!(
            "https://slack.com/archives/{}/p{}",
            req.channel,
            ts.replace('.', "")
        ))
    }
}

/// `/rerun history`: one entry per request, newest first.
pub fn history(requests: &[RerunRequest], names: Names) -> Value {
    if requests.is_empty() {
        return card(vec![text_block("No rerun requests yet.")], vec![]);
    }
    let m = Teams { names };
    let mut body = vec![text_block(&format!(
        "**Last {} rerun requests**",
        requests.len()
    ))];
    for req in requests.iter().take(40) {
        let mut first = format!(
            "{} · {} · **{}{}** · asked by {}",
            m.code(&req.id, 20),
            m.code(&req.subject(), 300),
            if req.stop.is_some() { "stop " } else { "" },
            req.state.as_str(),
            m.user(&req.requested_by)
        );
        if let Some(by) = &req.approved_by {
            first.push_str(&format!(" · approved by {}", m.user(by)));
        } else if let Some(by) = &req.decided_by
            && req.state == State::Denied
        {
            first.push_str(&format!(" · denied by {}", m.user(by)));
        }
        first.push_str(&format!(" · {}", when(req.requested_at)));
        let mut lines = vec![first];
        let mut reason = format!("Reason: {}", m.text(&req.reason, 500));
        if let Some(t) = &req.ticket {
            reason.push_str(&format!(
                " · ticket {}",
                wording::ticket(&m, t, req.ticket_url.as_deref(), 200)
            ));
        }
        lines.push(reason);
        let changes = wording::diff_lines(&m, &req.diff);
        if !changes.is_empty() {
            lines.push(format!("Changes: {}", changes.join("; ")));
        }
        let mut job = String::new();
        if let Some(j) = &req.job {
            job.push_str(&format!("Job {}", m.code(j, 100)));
        }
        if let Some(note) = &req.note {
            job.push_str(&format!(" — {}", m.text(note, 300)));
        }
        if let Some(link) = thread_link(req) {
            job.push_str(&format!(" · [thread]({link})"));
        }
        if !job.is_empty() {
            lines.push(job.trim_start_matches([' ', '·']).to_string());
        }
        body.push(json!({
            "type": "Container",
            "separator": true,
            "items": paragraphs(lines),
        }));
    }
    card(body, vec![])
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

// ----- dialogs ---------------------------------------------------------------

/// The dialog title (Teams task module title).
pub fn dialog_title(form: &Form) -> String {
    let title = match form.kind {
        FormKind::RerunReason => format!("Rerun {}", form.cronjob),
        FormKind::RerunOverrides => format!("Rerun {} with changes", form.cronjob),
        FormKind::StopReason => format!("Stop a run of {}", form.cronjob),
    };
    truncate_chars(&title, 100)
}

fn text_input(
    id: &str,
    label: &str,
    value: &str,
    multiline: bool,
    required: bool,
    placeholder: Option<&str>,
) -> Value {
    let mut input = json!({
        "type": "Input.Text",
        "id": id,
        "label": label,
        "isMultiline": multiline,
    });
    if !value.is_empty() {
        input["value"] = truncate_chars(value, 3000).into();
    }
    if let Some(p) = placeholder {
        input["placeholder"] = p.into();
    }
    if required {
        input["isRequired"] = true.into();
        input["errorMessage"] = format!("{label} is required.").into();
    }
    input
}

/// The dialog (task module) card for a form, filled with `values`, each error shown under its field.
pub fn dialog(form: &Form, values: &FormValues, errors: &[(&str, String)]) -> Value {
    let mut body = vec![text_block(&format!(
        "{} **{}** — a second person must approve it.",
        if form.kind == FormKind::StopReason {
            "Stop a run of CronJob"
        } else {
            "Rerun CronJob"
        },
        escape(&truncate_chars(
            &format!("{}/{}", form.namespace, form.cronjob),
            300
        ))
    ))];
    let context: Vec<String> = form
        .context
        .iter()
        .flat_map(|c| c.lines())
        .take(20)
        .map(|line| escape_line(&truncate_chars(line, 500)))
        .collect();
    for (n, line) in context.iter().enumerate() {
        let mut block = subtle(line);
        if n > 0 {
            block["spacing"] = "None".into();
        }
        body.push(block);
    }
    let fields = ["args", "args_mode", "env", "container", "reason", "ticket"];
    // Errors about something that is no field go on top.
    for (field, error) in errors.iter().filter(|(f, _)| !fields.contains(f)) {
        body.push(error_block(&format!("{field}: {error}")));
    }
    let push = |body: &mut Vec<Value>, input: Value, id: &str| {
        body.push(input);
        for (_, error) in errors.iter().filter(|(f, _)| *f == id) {
            body.push(error_block(error));
        }
    };
    if form.kind == FormKind::RerunOverrides {
        push(
            &mut body,
            text_input(
                "args",
                "Arguments, one per line",
                &values.args,
                true,
                false,
                Some("Appended to the container's args, or replacing them (below)."),
            ),
            "args",
        );
        push(
            &mut body,
            json!({
                "type": "Input.ChoiceSet",
                "id": "args_mode",
                "label": "Arguments mode",
                "style": "expanded",
                "isMultiSelect": false,
                "value": match values.args_mode {
                    ArgsMode::Append => "append",
                    ArgsMode::Replace => "replace",
                },
                "choices": [
                    {"title": "Append to the current args", "value": "append"},
                    {"title": "Replace the current args", "value": "replace"},
                ],
            }),
            "args_mode",
        );
        push(
            &mut body,
            text_input(
                "env",
                "Environment, KEY=VALUE per line",
                &values.env,
                true,
                false,
                Some("Sets or overrides variables of the container."),
            ),
            "env",
        );
        if form.containers.len() > 1 {
            let initial = values
                .container
                .as_deref()
                .filter(|c| form.containers.iter().any(|x| x == c))
                .unwrap_or(&form.containers[0]);
            push(
                &mut body,
                json!({
                    "type": "Input.ChoiceSet",
                    "id": "container",
                    "label": "Container",
                    "style": "compact",
                    "isMultiSelect": false,
                    "value": initial,
                    "choices": form
                        .containers
                        .iter()
                        .take(100)
                        .map(|c| json!({"title": c, "value": c}))
                        .collect::<Vec<_>>(),
                }),
                "container",
            );
        }
    }
    push(
        &mut body,
        text_input(
            "reason",
            "Reason (root cause)",
            &values.reason,
            true,
            true,
            Some(form.kind.reason_hint()),
        ),
        "reason",
    );
    push(
        &mut body,
        text_input(
            "ticket",
            "Ticket or incident",
            &values.ticket,
            false,
            form.require_ticket,
            None,
        ),
        "ticket",
    );
    let form_json = serde_json::to_value(form).unwrap_or(Value::Null);
    card(
        body,
        vec![json!({
            "type": "Action.Submit",
            "title": form.kind.submit_label(),
            "style": "positive",
            "data": {"verb": DIALOG_SUBMIT_VERB, "form": form_json},
        })],
    )
}

fn error_block(error: &str) -> Value {
    json!({
        "type": "TextBlock",
        "text": escape(&truncate_chars(error, 1000)),
        "wrap": true,
        "color": "attention",
        "spacing": "Small",
        "size": "Small",
    })
}

/// What a `task/submit` carries in `value.data`, back into the form and its values; None if not ours.
pub fn form_submission(data: &Value) -> Option<(Form, FormValues)> {
    if data.get("verb")?.as_str()? != DIALOG_SUBMIT_VERB {
        return None;
    }
    let form: Form = serde_json::from_value(data.get("form")?.clone()).ok()?;
    // Multiline inputs may come back with Windows line ends.
    let text = |id: &str| {
        data.get(id)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .replace("\r\n", "\n")
    };
    let container = data
        .get("container")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    let values = FormValues {
        reason: text("reason"),
        ticket: text("ticket"),
        args: text("args"),
        args_mode: match data.get("args_mode").and_then(Value::as_str) {
            Some("replace") => ArgsMode::Replace,
            _ => ArgsMode::Append,
        },
        env: text("env"),
        container,
    };
    Some((form, values))
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
