//! The alert's *Snooze…* control in Block Kit: a `static_select` with
//! `action_id` `snooze` (Slack sends the chosen option's value).

use slack_morphism::prelude::*;

use crate::chat::wording::snooze as wording;

/// `static_select` `snooze` with 1 h, 4 h, 24 h and until it recovers.
pub(super) fn control(alert_key: &str) -> SlackActionBlockElement {
    let options = wording::choices(alert_key)
        .into_iter()
        .map(|(value, label)| SlackBlockChoiceItem {
            text: SlackBlockPlainTextOnly::from(label),
            value,
            description: None,
            url: None,
        })
        .collect();
    SlackActionBlockElement::StaticSelect(
        SlackBlockStaticSelectElement::new()
            .with_action_id("snooze".into())
            .with_placeholder(SlackBlockPlainTextOnly::from(wording::LABEL))
            .with_options(options),
    )
}
