//! What people do in chat. This release alerts only: the buttons and slash
//! commands answer politely, and say what is coming, instead of failing.

use async_trait::async_trait;

use super::App;
use crate::chat::{Interaction, Interactions, Reply};

pub const HELP: &str = "rerun-bot posts an alert here when a CronJob's Job fails.\n\
Coming next: `/rerun <cronjob> [-n ns] [--arg X]… [--env K=V]… --reason \"…\"` (reruns need a second person's approval), \
`/hold all|<cronjob>|ns:<ns>` and `/resume` for maintenance.";

#[async_trait]
impl Interactions for App {
    async fn handle(&self, interaction: Interaction) -> Reply {
        match interaction {
            Interaction::Button(click) => {
                let subject = click
                    .value
                    .as_deref()
                    .and_then(|uid| self.store.alert(uid).ok().flatten())
                    .map(|r| format!(" for `{}/{}`", r.alert.namespace, r.alert.cronjob))
                    .unwrap_or_default();
                let what = match click.action_id.as_str() {
                    "rerun" => "Rerun",
                    "rerun_with_changes" => "Rerun with changes",
                    "hold" => "Hold",
                    other => {
                        tracing::warn!(action = other, "unknown button");
                        return Reply::Ephemeral(format!(
                            "This button (`{other}`) is not one rerun-bot knows."
                        ));
                    }
                };
                tracing::info!(user = %click.user, action = %click.action_id, "button clicked");
                Reply::Ephemeral(format!(
                    "*{what}*{subject} is not available yet in this version of rerun-bot. Nothing was changed."
                ))
            }
            Interaction::Command(cmd) => {
                let text = cmd.text.trim();
                if text.is_empty() || text == "help" || text == "--help" {
                    return Reply::Ephemeral(HELP.to_string());
                }
                Reply::Ephemeral(format!(
                    "`{} {}` is not available yet in this version of rerun-bot. Nothing was changed.\n\n{HELP}",
                    cmd.command, text
                ))
            }
        }
    }
}
