//! End-to-end tests: the real bot (kube-rs, slack-morphism, sled, axum) against
//! the fakes in `tests/support`. One module per user-facing capability.

#[path = "../support/mod.rs"]
mod support;

mod alerts;
mod batch;
mod board;
mod demo;
mod durable;
mod fake_kube;
mod fake_slack;
mod fake_teams;
mod ha;
mod health;
mod hold;
mod incidents;
mod manifests;
mod pacing;
mod rerun;
mod security;
mod service;
mod snooze;
mod stop;
mod store;
mod storm;
mod teams;
mod teams_app;
mod teams_cards;
mod tickets;

/// Redactions that make rendered messages stable across runs.
pub fn snapshot_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[^>]+>",
            "[date]",
        ),
        (r"\b\d{8}\b", "[minutes]"),
        (r"-[a-z0-9]{5}\b", "-[pod]"),
    ]
}

#[macro_export]
macro_rules! assert_message_snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({ filters => $crate::snapshot_filters(), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!($name, $text);
        })
    };
}
