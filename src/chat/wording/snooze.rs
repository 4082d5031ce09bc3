//! What the bot says about snoozes, for both renderers: the line an alert
//! shows while its CronJob is snoozed, and the choices of *Snooze…*.

use super::Markup;
use crate::core::snooze::{CHOICES, Snooze};

/// The label of the alert's snooze control.
pub const LABEL: &str = "Snooze…";

/// "🔕 Snoozed by Bob until 14:00" / "🔕 Snoozed by Bob until it recovers",
/// with how many failures it kept quiet; for the incident's alert to show.
pub fn snooze_line(m: &dyn Markup, s: &Snooze) -> String {
    let until = match s.until {
        Some(t) => format!("until {}", m.when(t)),
        None => "until it recovers".to_string(),
    };
    let quiet = match s.suppressed {
        0 => String::new(),
        1 => " — 1 failure not posted".to_string(),
        n => format!(" — {n} failures not posted"),
    };
    let reason = s
        .reason
        .as_deref()
        .map(|r| format!(": {}", m.text(r, 300)))
        .unwrap_or_default();
    format!("🔕 Snoozed by {} {until}{reason}{quiet}", m.user(&s.by))
}

/// The choices of the alert's *Snooze…* control: `(value, label)`, the value
/// `<choice>/<alert key>` (what a click carries back, as `ButtonClick::value`).
pub fn choices(alert_key: &str) -> Vec<(String, &'static str)> {
    CHOICES
        .iter()
        .map(|(choice, label)| (format!("{choice}/{alert_key}"), *label))
        .collect()
}
