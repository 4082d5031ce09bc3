//! Every Block Kit message rerun-bot sends is built here, one function each.
//!
//! Text from pods and people is escaped (`&`, `<`, `>`), which also defuses
//! `<!channel>`-style mentions, and every piece is cut to Block Kit's limits.

use chrono::{DateTime, Utc};
use slack_morphism::prelude::*;

use crate::core::FailureAlert;
use crate::core::alert::LogTail;
use crate::core::text::truncate_chars;

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

/// The failure alert (top level or, with `reply`, a repeated failure in its thread).
pub fn failure_alert(alert: &FailureAlert, failures: u32, reply: bool) -> Rendered {
    let what = format!("{}/{}", alert.namespace, alert.cronjob);
    let header = if reply {
        format!("🔁 CronJob {what} failed again")
    } else if alert.rerun_request.is_some() {
        format!("🚨 Rerun of CronJob {what} failed")
    } else {
        format!("🚨 CronJob {what} failed")
    };
    let mut blocks: Vec<SlackBlock> = vec![
        SlackHeaderBlock::new(SlackBlockPlainText::new(truncate_chars(&header, HEADER_MAX)).into())
            .into(),
    ];

    let mut reason = format!("*Reason:* `{}`", escape_cut(&alert.reason, 200));
    if !alert.message.is_empty() {
        reason.push_str(&format!(" — {}", escape_cut(&alert.message, 1000)));
    }
    blocks.push(section(reason));

    let mut fields = vec![format!("*Job*\n`{}`", escape_cut(&alert.job, 300))];
    fields.push(match alert.backoff_limit {
        Some(limit) => format!(
            "*Attempts*\n{} failed / backoffLimit {}",
            alert.failed_pods, limit
        ),
        None => format!("*Attempts*\n{} failed", alert.failed_pods),
    });
    if let Some(exit) = &alert.exit {
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
    if let Some(started) = alert.started_at {
        fields.push(format!("*Started*\n{}", when(started)));
    }
    fields.push(format!("*Failed*\n{}", when(alert.failed_at)));
    if let Some(schedule) = &alert.schedule {
        let tz = alert
            .time_zone
            .as_deref()
            .map(|z| format!(" ({})", escape_cut(z, 64)))
            .unwrap_or_default();
        let next = match (alert.next_run, &alert.schedule_problem) {
            (_, _) if alert.suspended => "suspended: no next run".to_string(),
            (Some(t), _) => format!("next {}", when(t)),
            (None, Some(problem)) => format!("⚠️ {}", escape_cut(problem, 300)),
            (None, None) => "next run unknown".to_string(),
        };
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
            let container = escape_cut(container, 253);
            let title = match (*truncated, *lines) {
                (true, _) => format!("*End of the log* of `{container}` (cut to fit):\n"),
                (false, 1) => format!("*Last log line* of `{container}`:\n"),
                (false, n) => format!("*Last {n} log lines* of `{container}`:\n"),
            };
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
        LogTail::NotCaptured => {}
    }

    let mut notes = Vec::new();
    if alert.cronjob_missing {
        notes.push("The CronJob no longer exists.".to_string());
    }
    if let Some(request) = &alert.rerun_request {
        notes.push(format!(
            "This Job was a rerun (request `{}`).",
            escape_cut(request, 64)
        ));
    }
    if failures > 1 && !reply {
        notes.push(format!(
            "❗ Failed {failures} times — later failures are in the thread."
        ));
    }
    if reply {
        notes.push(format!("Failure #{failures} in this thread."));
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
        blocks.push(
            SlackActionsBlock::new(vec![
                button(
                    "rerun",
                    "Rerun",
                    &alert.job_uid,
                    Some(SlackBlockButtonStyle::Primary),
                ),
                button(
                    "rerun_with_changes",
                    "Rerun with changes…",
                    &alert.job_uid,
                    None,
                ),
                button(
                    "hold",
                    "Hold",
                    &alert.job_uid,
                    Some(SlackBlockButtonStyle::Danger),
                ),
            ])
            .with_block_id("alert_actions".into())
            .into(),
        );
    }

    Rendered {
        text: escape_cut(
            &format!(
                "CronJob {what} failed: {} ({} failed attempts)",
                alert.reason, alert.failed_pods
            ),
            500,
        ),
        blocks,
    }
}

/// A plain notice (for example in a thread).
pub fn notice(text: &str) -> Rendered {
    Rendered {
        text: escape_cut(text, 3000),
        blocks: vec![section(escape_cut(text, SECTION_TEXT_MAX))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
