//! The alert's *Snooze…* control as an Adaptive Card action: an
//! `Action.ShowCard` holding one `Action.Execute` (verb `snooze`) per choice,
//! `data.value` = `<choice>/<alert key>` (Teams supports `Action.ShowCard` in
//! bot cards; the inner buttons arrive as `adaptiveCard/action` invokes).

use serde_json::{Value, json};

use super::execute;
use crate::chat::wording::snooze as wording;

pub(super) fn control(alert_key: &str) -> Value {
    let buttons: Vec<Value> = wording::choices(alert_key)
        .into_iter()
        .map(|(value, label)| execute("snooze", label, &value, None))
        .collect();
    json!({
        "type": "Action.ShowCard",
        "title": wording::LABEL,
        "card": {
            "type": "AdaptiveCard",
            "body": [{
                "type": "TextBlock",
                "text": "Snooze this CronJob's alerts: its failures are recorded, not posted.",
                "wrap": true,
                "size": "Small",
            }],
            "actions": buttons,
        },
    })
}
