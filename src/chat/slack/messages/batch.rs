//! The Block Kit approval card of a batch (`/rerun failed`).

use super::*;
use crate::chat::wording::batch as words;
use crate::core::batch::BatchRequest;

/// Lines per section: each line is bounded (≈ 700 chars at worst, names
/// and reasons escaped), so four stay inside Block Kit's 3,000 characters;
/// 40 lines are at most 11 sections.
const LINES_PER_SECTION: usize = 4;

fn list(title: String, lines: &[String], blocks: &mut Vec<SlackBlock>) {
    for (n, chunk) in lines.chunks(LINES_PER_SECTION).enumerate() {
        let text = if n == 0 {
            format!("{title}\n{}", chunk.join("\n"))
        } else {
            chunk.join("\n")
        };
        blocks.push(section(truncate_chars(&text, SECTION_TEXT_MAX)));
    }
}

/// What it reruns and skips (at most `wording::batch::CARD_ITEMS`), the
/// reason, where it stands; buttons only while it is pending.
pub fn batch_card(b: &BatchRequest) -> Rendered {
    let title = words::title(b);
    let mut blocks: Vec<SlackBlock> = vec![
        SlackHeaderBlock::new(SlackBlockPlainText::new(truncate_chars(&title, HEADER_MAX)).into())
            .into(),
    ];
    let c = b.counts();
    let fields = vec![
        format!("*Requested by*\n<@{}>", b.requested_by),
        format!(
            "*Failed since*\n{}{}",
            when(b.since),
            b.namespace
                .as_deref()
                .map(|ns| format!(" in {}", code(ns, 100)))
                .unwrap_or_default()
        ),
        format!(
            "*Ticket*\n{}",
            b.ticket
                .as_deref()
                .map(|t| wording::ticket(&Slack, t, b.ticket_url.as_deref(), 300))
                .unwrap_or_else(|| "_none_".into())
        ),
        format!("*Expires*\n{}", when(b.expires_at)),
    ];
    blocks.push(
        SlackSectionBlock::new()
            .with_fields(fields.into_iter().map(md).collect())
            .into(),
    );
    blocks.push(section(format!(
        "*Reason:* {}",
        escape_cut(&b.reason, 2000)
    )));
    let (included, skipped, more) = words::card_lines(&Slack, b);
    list(
        format!(
            "*Reruns ({}), each from its CronJob's current job template, as is:*",
            c.included
        ),
        &included,
        &mut blocks,
    );
    if !skipped.is_empty() {
        list(format!("*Skipped ({}):*", c.skipped), &skipped, &mut blocks);
    }
    if let Some(more) = words::more_line(more) {
        blocks.push(context(more));
    }
    blocks.push(context(words::status(&Slack, b)));
    if b.state == State::Pending {
        blocks.push(
            SlackActionsBlock::new(vec![
                button(
                    "batch_approve",
                    &format!("Approve all {}", c.included),
                    &b.id,
                    Some(SlackBlockButtonStyle::Primary),
                ),
                button(
                    "batch_deny",
                    "Deny",
                    &b.id,
                    Some(SlackBlockButtonStyle::Danger),
                ),
                button("batch_cancel", "Cancel request", &b.id, None),
            ])
            .with_block_id("batch_actions".into())
            .into(),
        );
    }
    Rendered {
        text: escape_cut(
            &format!(
                "{title}, requested by {}: {}",
                b.requested_by,
                b.state.as_str()
            ),
            500,
        ),
        blocks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::batch::big_batch;

    #[test]
    fn a_big_batch_fits_block_kit() {
        for n in [1, 39, 40, 41, 120] {
            let card = batch_card(&big_batch(n));
            let blocks = serde_json::to_value(&card.blocks).unwrap();
            let blocks = blocks.as_array().unwrap();
            assert!(blocks.len() <= 50, "{n}: {} blocks", blocks.len());
            for b in blocks {
                if let Some(text) = b["text"]["text"].as_str() {
                    assert!(text.chars().count() <= SECTION_TEXT_MAX, "{n}: {text}");
                }
                for f in b["fields"].as_array().into_iter().flatten() {
                    assert!(f["text"].as_str().unwrap().chars().count() <= FIELD_MAX);
                }
            }
            let shown = blocks.iter().map(|b| b.to_string()).collect::<String>();
            assert!(!shown.contains("<!channel>"), "escaped");
            assert_eq!(
                shown.contains(&format!("and {} more", n.saturating_sub(40))),
                n > 40,
                "{n}"
            );
            assert!(shown.contains("batch_approve"));
        }
    }
}
