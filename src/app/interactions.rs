//! What people do in chat: buttons, forms and slash commands, routed to the flows.

use std::sync::Arc;

use async_trait::async_trait;

use super::App;
use crate::chat::{FormKind, Interaction, Interactions, Reply, SlashCommand};
use crate::core::command::{self, Command, CommandKind};

#[async_trait]
impl Interactions for Arc<App> {
    async fn handle(&self, interaction: Interaction) -> Reply {
        match interaction {
            Interaction::Button(click) => {
                tracing::info!(user = %click.user, action = %click.action_id, "button clicked");
                match click.action_id.as_str() {
                    "rerun" => self.on_rerun_button(&click, FormKind::RerunReason).await,
                    "rerun_with_changes" => {
                        self.on_rerun_button(&click, FormKind::RerunOverrides).await
                    }
                    "stop_run" => self.on_stop_button(&click).await,
                    "approve" | "approve_held" | "deny" | "cancel" => {
                        self.on_request_button(&click).await
                    }
                    "batch_approve" | "batch_deny" | "batch_cancel" => {
                        self.on_batch_button(&click).await
                    }
                    "hold" => self.on_hold_button(&click).await,
                    "snooze" => self.on_snooze_button(&click).await,
                    "rerun_failed" => self.on_rerun_failed_button(&click).await,
                    a if a.starts_with("rerun_cronjob") => {
                        self.on_rerun_cronjob_button(&click).await
                    }
                    "hold_confirm" | "resume_confirm" | "hold_cancel" => {
                        self.on_confirm(&click).await
                    }
                    other => {
                        tracing::warn!(action = other, "unknown button");
                        Reply::Ephemeral(format!(
                            "This button (`{other}`) is not one rerun-bot knows."
                        ))
                    }
                }
            }
            Interaction::Form(form) => self.on_form(form).await,
            Interaction::Command(cmd) => self.on_command(cmd).await,
        }
    }
}

impl App {
    async fn on_command(self: &Arc<Self>, cmd: SlashCommand) -> Reply {
        if CommandKind::from_slash(&cmd.command).is_none() {
            return Reply::Ephemeral(format!(
                "rerun-bot does not know `{}`. Its commands:\n{}",
                cmd.command,
                command::help()
            ));
        }
        let parsed = match command::parse(&cmd.command, &cmd.text) {
            Ok(c) => c,
            Err(e) => return Reply::Ephemeral(e.to_string()),
        };
        tracing::info!(user = %cmd.user, command = %cmd.command, "slash command");
        match parsed {
            Command::Help(kind) => Reply::Ephemeral(format!(
                "`{}`\n\nReruns need a second person's approval. All commands:\n{}",
                command::usage(kind),
                command::help()
            )),
            Command::Rerun(rerun) => self.on_rerun_command(&cmd, rerun).await,
            Command::RerunFailed(filter) => self.on_rerun_failed_command(&cmd, &filter).await,
            Command::RerunHistory { cronjob } => self.history(cronjob.as_deref()).await,
            Command::CronJobs(query) => self.board(query).await,
            Command::CronJob { name, namespace } => {
                self.cronjob_detail(&name, namespace.as_deref()).await
            }
            Command::Hold(hold) => self.on_hold_command(&cmd, hold).await,
            Command::HoldStatus => self.hold_status().await,
            Command::Resume(resume) => self.on_resume_command(&cmd, resume).await,
            Command::Snooze(snooze) => self.on_snooze_command(&cmd, snooze).await,
            Command::SnoozeList => self.snooze_list().await,
            Command::Stop(stop) => self.on_stop_command(&cmd, stop).await,
            Command::Unsnooze { cronjob, namespace } => {
                self.on_unsnooze_command(&cmd, &cronjob, namespace.as_deref())
                    .await
            }
        }
    }
}
