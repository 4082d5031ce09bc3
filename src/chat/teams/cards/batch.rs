//! The Adaptive Card of a batch (`/rerun failed`): the Teams twin of
//! `chat/slack/messages/batch.rs`.

use super::*;
use crate::chat::wording::batch as words;
use crate::core::batch::BatchRequest;

/// What it reruns and skips (at most `wording::batch::CARD_ITEMS`), the
/// reason, where it stands; buttons only while it is pending.
pub fn batch_card(b: &BatchRequest, names: Names) -> Value {
    let m = Teams { names };
    let c = b.counts();
    let mut body = vec![heading(&words::title(b))];
    body.push(facts(vec![
        ("Requested by", m.user(&b.requested_by)),
        (
            "Failed since",
            format!(
                "{}{}",
                when(b.since),
                b.namespace
                    .as_deref()
                    .map(|ns| format!(" in {}", m.code(ns, 100)))
                    .unwrap_or_default()
            ),
        ),
        (
            "Ticket",
            b.ticket
                .as_deref()
                .map(|t| wording::ticket(&m, t, b.ticket_url.as_deref(), 300))
                .unwrap_or_else(|| "_none_".into()),
        ),
        ("Expires", when(b.expires_at)),
    ]));
    body.push(text_block(&format!(
        "**Reason:** {}",
        m.text(&b.reason, 2000)
    )));
    let (included, skipped, more) = words::card_lines(&m, b);
    body.push(text_block(&m.bold(&format!(
        "Reruns ({}), each from its CronJob's current job template, as is:",
        c.included
    ))));
    body.extend(paragraphs(included));
    if !skipped.is_empty() {
        body.push(text_block(&m.bold(&format!("Skipped ({}):", c.skipped))));
        body.extend(paragraphs(skipped));
    }
    if let Some(more) = words::more_line(more) {
        body.push(subtle(&escape(&more)));
    }
    let mut status = text_block(&words::status(&m, b));
    status["separator"] = true.into();
    body.push(status);
    let mut actions = Vec::new();
    if b.state == State::Pending {
        actions.push(execute(
            "batch_approve",
            &format!("Approve all {}", c.included),
            &b.id,
            Some("positive"),
        ));
        actions.push(execute("batch_deny", "Deny", &b.id, Some("destructive")));
        actions.push(execute("batch_cancel", "Cancel request", &b.id, None));
    }
    card(body, actions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::batch::big_batch;

    #[test]
    fn a_big_batch_card_fits_and_keeps_its_buttons() {
        let nobody = |_: &str| None;
        for n in [1, 40, 120] {
            let card = batch_card(&big_batch(n), &nobody);
            let size = serde_json::to_vec(&card).unwrap().len();
            assert!(size <= CARD_MAX_BYTES, "{n}: {size} bytes");
            let verbs: Vec<&str> = card["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["verb"].as_str().unwrap())
                .collect();
            assert_eq!(verbs, ["batch_approve", "batch_deny", "batch_cancel"]);
            let shown = card.to_string();
            assert_eq!(shown.contains("and 80 more"), n == 120, "{n}");
        }
    }
}
