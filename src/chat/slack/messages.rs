//! Every Block Kit message rerun-bot sends is built here, one function each.
//!
//! Text from pods and people is escaped (`&`, `<`, `>`), which also defuses
//! `<!channel>`-style mentions, and every piece is cut to Block Kit's limits.

use chrono::{DateTime, Utc};
use slack_morphism::prelude::*;

use crate::chat::wording::{self, Markup};
use crate::chat::{Form, FormKind, FormValues};
use crate::core::alert::LogTail;
use crate::core::hold::Operation;
use crate::core::overrides::{ArgsMode, Diff};
use crate::core::request::{RerunRequest, State};
use crate::core::storm::Digest;
use crate::core::text::truncate_chars;
use crate::core::{AlertStory, FailureAlert};

mod batch;
mod board;
mod form;
mod request;
mod snooze;
pub use batch::batch_card;
pub use board::view as board;
pub use form::{form_values, form_view};
pub use request::{approval_card, diff_lines, history, request_status};

/// Block Kit limits (DESIGN.md "Fine points").
pub const SECTION_TEXT_MAX: usize = 3000;
pub const FIELD_MAX: usize = 2000;
pub const HEADER_MAX: usize = 150;

/// A rendered message: fallback text for notifications plus blocks.
pub struct Rendered {
    pub text: String,
    pub blocks: Vec<SlackBlock>,
}

/// Slack's three control characters; this is all mrkdwn escaping there is.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped text that fits `max` characters, never cutting an entity in half.
pub fn escape_cut(s: &str, max: usize) -> String {
    let escaped = escape(s);
    if escaped.chars().count() <= max {
        return escaped;
    }
    let mut out = String::new();
    let mut count = 0;
    for c in s.chars() {
        let piece = match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            c => c.to_string(),
        };
        let n = piece.chars().count();
        if count + n + 1 > max {
            break;
        }
        out.push_str(&piece);
        count += n;
    }
    out.push('…');
    out
}

/// A Slack date token: shown in each reader's own time zone.
fn when(t: DateTime<Utc>) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
        t.timestamp(),
        t.format("%Y-%m-%d %H:%M UTC")
    )
}

/// A user, user-group or free-text owner from `rerun-bot.io/owner`.
pub fn mention(owner: &str) -> String {
    let owner = owner.trim();
    let is_id = |prefix: &[char]| {
        owner.len() > 1
            && owner.starts_with(prefix)
            && owner[1..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    if is_id(&['U', 'W']) {
        format!("<@{owner}>")
    } else if is_id(&['S']) {
        format!("<!subteam^{owner}>")
    } else {
        escape_cut(owner, 200)
    }
}

fn md(text: String) -> SlackBlockText {
    SlackBlockText::MarkDown(SlackBlockMarkDownText::new(text))
}

fn section(text: String) -> SlackBlock {
    SlackSectionBlock::new().with_text(md(text)).into()
}

fn button(
    action_id: &str,
    text: &str,
    value: &str,
    style: Option<SlackBlockButtonStyle>,
) -> SlackActionBlockElement {
    let mut b = SlackBlockButtonElement::new(SlackBlockPlainText::new(text.into()).into())
        .with_action_id(action_id.into())
        .with_value(value.into());
    b.style = style;
    SlackActionBlockElement::Button(b)
}

/// Log text inside a code block: escaped, fenced, fitted into `budget` chars.
fn code_block(log: &str, budget: usize) -> String {
    // A ``` in the log would close the fence early; a zero-width space breaks it.
    let defused = log.replace("```", "`\u{200b}`\u{200b}`");
    let body = escape(&defused);
    let room = budget.saturating_sub(8);
    let body = if body.chars().count() > room {
        // Keep the end of the log: that is where the error is.
        let skip = body.chars().count() - room + 1;
        let mut tail: String = body.chars().skip(skip).collect();
        // Do not start inside an entity such as `&lt;`.
        if let Some(amp) = tail
            .find(';')
            .filter(|&i| i < 6 && tail[..i].chars().all(|c| c.is_ascii_alphanumeric()))
        {
            tail = tail[amp + 1..].to_string();
        }
        format!("…{tail}")
    } else {
        body
    };
    format!("```{body}```")
}

/// Escaped text in which user mentions (`<@U…>`, `<@W…>`) still work; group and
/// broadcast mentions (`<!subteam^…>`, `<!channel>`) stay defused.
pub fn escape_keep_mentions(s: &str, max: usize) -> String {
    let escaped = escape_cut(s, max);
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped.as_str();
    while let Some(at) = rest.find("&lt;@") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 5..];
        let id_len = after.find("&gt;").filter(|&n| {
            n > 1
                && after.starts_with(['U', 'W'])
                && after[..n]
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        });
        match id_len {
            Some(n) => {
                out.push_str(&format!("<@{}>", &after[..n]));
                rest = &after[n + 4..];
            }
            None => {
                out.push_str("&lt;@");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn context(text: String) -> SlackBlock {
    SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
        SlackBlockMarkDownText::new(text),
    )])
    .into()
}

fn code(s: &str, max: usize) -> String {
    format!("`{}`", escape_cut(&s.replace('`', "'"), max))
}

/// Slack's mrkdwn for the shared wording.
struct Slack;

impl Markup for Slack {
    fn text(&self, s: &str, max: usize) -> String {
        escape_cut(s, max)
    }
    fn code(&self, s: &str, max: usize) -> String {
        code(s, max)
    }
    fn user(&self, id: &str) -> String {
        format!("<@{id}>")
    }
    fn when(&self, t: DateTime<Utc>) -> String {
        when(t)
    }
    fn bold(&self, s: &str) -> String {
        format!("*{s}*")
    }
    fn italic(&self, s: &str) -> String {
        format!("_{s}_")
    }
    fn link(&self, text: &str, url: &str) -> String {
        format!("<{}|{}>", escape(url), escape(text))
    }
}

/// Escaped neutral text (`escape_keep_mentions`) in which the bot's own
/// http(s) links `<url|text>` (`wording::ticket_neutral`) work again; the
/// link's text stays escaped.
fn keep_links(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find("&lt;http") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 4..];
        let link = after.find("&gt;").and_then(|end| {
            let inner = &after[..end];
            let (url, _) = inner.split_once('|')?;
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && !url.contains(char::is_whitespace)
                && !url.contains("&lt;");
            ok.then_some(end)
        });
        match link {
            Some(end) => {
                out.push_str(&format!("<{}>", &after[..end]));
                rest = &after[end + 4..];
            }
            None => {
                out.push_str("&lt;");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The failure alert (top level or, with `reply`, a repeated failure in its thread).
pub fn failure_alert(
    alert: &FailureAlert,
    story: &AlertStory,
    reply: bool,
    status: Option<&str>,
) -> Rendered {
    let what = format!("{}/{}", alert.namespace, alert.cronjob);
    let header = wording::alert_header(alert, story, reply);
    let mut blocks: Vec<SlackBlock> = vec![
        SlackHeaderBlock::new(SlackBlockPlainText::new(truncate_chars(&header, HEADER_MAX)).into())
            .into(),
    ];

    let reason = wording::health::summary(&Slack, alert).unwrap_or_else(|| {
        let mut reason = format!("*Reason:* `{}`", escape_cut(&alert.reason, 200));
        if !alert.message.is_empty() {
            reason.push_str(&format!(" — {}", escape_cut(&alert.message, 1000)));
        }
        reason
    });
    blocks.push(section(reason));

    // A missed or long run has its own fields; a failure these.
    let health_fields = wording::health::fields(&Slack, alert);
    let failed = health_fields.is_none();
    let mut fields: Vec<String> = health_fields
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| format!("*{k}*\n{v}"))
        .collect();
    if failed {
        fields.push(format!("*Job*\n`{}`", escape_cut(&alert.job, 300)));
        fields.push(format!("*Attempts*\n{}", wording::attempts(alert)));
    }
    if let Some(exit) = alert.exit.as_ref().filter(|_| failed) {
        let reason = exit
            .reason
            .as_deref()
            .map(|r| format!(" ({})", escape_cut(r, 100)))
            .unwrap_or_default();
        fields.push(format!(
            "*Exit code*\n{}{}\ncontainer `{}`",
            exit.exit_code,
            reason,
            escape_cut(&exit.container, 253)
        ));
    }
    if let Some(started) = alert.started_at.filter(|_| failed) {
        fields.push(format!("*Started*\n{}", when(started)));
    }
    if failed {
        fields.push(format!("*Failed*\n{}", when(alert.failed_at)));
    }
    if let Some(schedule) = &alert.schedule {
        let tz = alert
            .time_zone
            .as_deref()
            .map(|z| format!(" ({})", escape_cut(z, 64)))
            .unwrap_or_default();
        let next = wording::next_run(&Slack, alert);
        fields.push(format!(
            "*Schedule*\n`{}`{}\n{}",
            escape_cut(schedule, 200),
            tz,
            next
        ));
    }
    if let Some(policy) = &alert.concurrency_policy {
        fields.push(format!("*Concurrency*\n{}", escape_cut(policy, 50)));
    }
    fields.push(match &alert.owner {
        Some(owner) => format!("*Owner*\n{}", mention(owner)),
        None => "*Owner*\n_not set_ (annotate `rerun-bot.io/owner`)".to_string(),
    });
    blocks.push(
        SlackSectionBlock::new()
            .with_fields(
                fields
                    .into_iter()
                    .map(|f| md(truncate_chars(&f, FIELD_MAX)))
                    .collect(),
            )
            .into(),
    );

    match &alert.log {
        LogTail::Captured {
            container,
            text,
            lines,
            truncated,
        } if !text.trim().is_empty() => {
            let title = wording::log_title(&Slack, container, *lines, *truncated) + "\n";
            let budget = SECTION_TEXT_MAX - title.chars().count();
            blocks.push(section(format!("{title}{}", code_block(text, budget))));
        }
        LogTail::Captured { container, .. } => {
            blocks.push(section(format!(
                "_Container `{}` wrote no log output._",
                escape_cut(container, 253)
            )));
        }
        LogTail::Unavailable(why) => {
            blocks.push(section(format!(
                "_Logs unavailable: {}_",
                escape_cut(why, 500)
            )));
        }
        LogTail::Capturing => {
            blocks.push(context(
                "⏳ Reading the exit code and the end of the log…".into(),
            ));
        }
        LogTail::NotCaptured => {}
    }

    let mut notes = wording::alert_notes(&Slack, alert, story, reply);
    if let Some(status) = status {
        notes.push(keep_links(&escape_keep_mentions(status, 1000)));
    }
    if !notes.is_empty() {
        blocks.push(
            SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
                SlackBlockMarkDownText::new(notes.join(" ")),
            )])
            .into(),
        );
    }

    if !alert.cronjob_missing {
        // Recovered: nothing to rerun any more; Hold stays.
        let mut actions = Vec::new();
        for (n, (action, label)) in wording::health::buttons(alert, story).iter().enumerate() {
            let style = (n == 0).then_some(SlackBlockButtonStyle::Primary);
            actions.push(button(action, label, &alert.job_uid, style));
        }
        actions.push(button(
            "hold",
            "Hold",
            &alert.job_uid,
            Some(SlackBlockButtonStyle::Danger),
        ));
        if story.recovered.is_none() {
            actions.push(snooze::control(&alert.job_uid));
        }
        blocks.push(
            SlackActionsBlock::new(actions)
                .with_block_id("alert_actions".into())
                .into(),
        );
    }

    let text = wording::health::fallback(alert, story).unwrap_or_else(|| {
        format!(
            "CronJob {what} failed: {} ({} failed attempts)",
            alert.reason, alert.failed_pods
        )
    });
    Rendered {
        text: escape_cut(&text, 500),
        blocks,
    }
}

/// A storm digest: how many failed where, the first of them, and "Rerun all failed…".
pub fn digest(d: &Digest) -> Rendered {
    let headline = wording::digest_headline(d);
    let mut blocks: Vec<SlackBlock> = vec![
        SlackHeaderBlock::new(
            SlackBlockPlainText::new(truncate_chars(&headline, HEADER_MAX)).into(),
        )
        .into(),
        section(truncate_chars(
            &wording::digest_namespaces(&Slack, d),
            SECTION_TEXT_MAX,
        )),
    ];
    let list = wording::digest_list(&Slack, d).join("\n");
    if !list.is_empty() {
        blocks.push(section(truncate_chars(&list, SECTION_TEXT_MAX)));
    }
    blocks.push(context(escape_cut(&wording::digest_note(d), 2000)));
    blocks.push(
        SlackActionsBlock::new(vec![button(
            "rerun_failed",
            "Rerun all failed…",
            &d.id,
            Some(SlackBlockButtonStyle::Primary),
        )])
        .with_block_id("digest_actions".into())
        .into(),
    );
    Rendered {
        text: escape_cut(&headline, 500),
        blocks,
    }
}

/// The immediate answer to a person (an ephemeral message).
pub fn reply(reply: &crate::chat::Reply) -> Rendered {
    match reply {
        crate::chat::Reply::History(requests) => history(requests),
        crate::chat::Reply::Board(view) => board(view),
        crate::chat::Reply::Ephemeral(text) => notice(text),
        crate::chat::Reply::Confirm(c) => confirm(c),
        crate::chat::Reply::Ack | crate::chat::Reply::FormErrors(_) => notice(""),
    }
}

/// A preview with its confirm and cancel buttons.
pub fn confirm(c: &crate::chat::Confirm) -> Rendered {
    let mut blocks = vec![section(escape_keep_mentions(&c.text, SECTION_TEXT_MAX))];
    blocks.push(
        SlackActionsBlock::new(vec![
            button(
                c.action,
                c.label,
                &c.value,
                Some(SlackBlockButtonStyle::Danger),
            ),
            button("hold_cancel", "Cancel", &c.value, None),
        ])
        .with_block_id("confirm_actions".into())
        .into(),
    );
    Rendered {
        text: escape_cut(&c.text, 500),
        blocks,
    }
}

/// A hold or resume: progress while it runs, the summary when it is done.
pub fn operation(op: &Operation) -> Rendered {
    let lines = wording::operation_lines(&Slack, op);
    let mut blocks = Vec::new();
    let reruns: Vec<SlackActionBlockElement> = wording::resume_reruns(op)
        .iter()
        .map(|(action_id, label, key)| button(action_id, label, key, None))
        .collect();
    if !reruns.is_empty() {
        blocks.push(
            SlackActionsBlock::new(reruns)
                .with_block_id("resume_reruns".into())
                .into(),
        );
    }
    let text = truncate_chars(&lines.join("\n"), SECTION_TEXT_MAX);
    blocks.insert(0, section(text));
    Rendered {
        text: escape_cut(&wording::operation_summary(op), 500),
        blocks,
    }
}

/// A plain notice (for example in a thread).
pub fn notice(text: &str) -> Rendered {
    Rendered {
        text: escape_cut(text, 3000),
        blocks: vec![section(escape_keep_mentions(text, SECTION_TEXT_MAX))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hold::{Item, Kind, Outcome, Phase};

    #[test]
    fn escaping_defuses_mentions_and_html() {
        assert_eq!(
            escape("<!channel> & <script>"),
            "&lt;!channel&gt; &amp; &lt;script&gt;"
        );
        assert_eq!(escape_cut("<<<<", 9), "&lt;&lt;…");
        assert!(escape_cut(&"x".repeat(5000), 3000).chars().count() <= 3000);
    }

    #[test]
    fn user_mentions_survive_escaping_broadcasts_do_not() {
        assert_eq!(
            escape_keep_mentions("by <@U_BOB> & <!channel> <@bob> <@S1>", 200),
            "by <@U_BOB> &amp; &lt;!channel&gt; &lt;@bob&gt; &lt;@S1&gt;"
        );
        assert_eq!(escape_keep_mentions("<@U1", 200), "&lt;@U1");
    }

    #[test]
    fn resume_summary_buttons_have_unique_action_ids() {
        let item = |name: &str| Item {
            namespace: "default".into(),
            name: name.into(),
            suspended_before: false,
            terminate: true,
            running: vec![],
            terminated: vec![format!("{name}-1")],
            outcome: Outcome::Resumed,
        };
        let op = Operation {
            id: "resume-1".into(),
            kind: Kind::Resume,
            target: "all".into(),
            reason: None,
            by: "U1".into(),
            at: Utc::now(),
            channel: "C1".into(),
            phase: Phase::Done,
            items: vec![item("a"), item("b")],
            message: None,
            ended: false,
            until_secs: None,
            resume_at: None,
            reminded: false,
        };
        let json = serde_json::to_value(operation(&op).blocks).unwrap();
        let ids: Vec<&str> = json[1]["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["rerun_cronjob:0", "rerun_cronjob:1"]);
    }

    #[test]
    fn the_bots_links_survive_in_statuses_nothing_else_does() {
        let status = "requested by <@U_A> (ticket <https://t.example/browse/INC-1?a=1&b=2|INC-1>) <!channel> <javascript:x|y> <https://a b|c>";
        assert_eq!(
            keep_links(&escape_keep_mentions(status, 1000)),
            "requested by <@U_A> (ticket <https://t.example/browse/INC-1?a=1&amp;b=2|INC-1>) &lt;!channel&gt; &lt;javascript:x|y&gt; &lt;https://a b|c&gt;"
        );
        assert_eq!(keep_links("&lt;https://x"), "&lt;https://x");
        assert_eq!(
            Slack.link("a<b>|c", "https://t.example/a%3Cb?x=1&y=2"),
            "<https://t.example/a%3Cb?x=1&amp;y=2|a&lt;b&gt;|c>"
        );
    }

    #[test]
    fn mentions() {
        assert_eq!(mention("U123ABC"), "<@U123ABC>");
        assert_eq!(mention("S0PLATFORM"), "<!subteam^S0PLATFORM>");
        assert_eq!(mention("team <billing>"), "team &lt;billing&gt;");
        assert_eq!(mention("Ursula"), "Ursula");
    }

    #[test]
    fn code_block_keeps_the_end_and_fits() {
        let log = format!("{}\nfinal error <here>", "a".repeat(10_000));
        let block = code_block(&log, 2000);
        assert!(block.chars().count() <= 2000, "{}", block.chars().count());
        assert!(block.ends_with("final error &lt;here&gt;```"));
        assert!(block.starts_with("```…"));
        assert_eq!(code_block("a ``` b", 100), "```a `\u{200b}`\u{200b}` b```");
    }
}
