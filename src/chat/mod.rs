//! The platform-neutral chat layer.
//!
//! The app speaks in [`Outgoing`] messages and receives [`Interaction`]s; a
//! platform adapter (`slack`, `teams`) renders the one and parses the other.
//! No Slack or Teams type crosses this module's boundary.
//!
//! Conversation ids, message ids and trigger ids are plain strings to the app.
//! [`Platform::of`] tells whose they are, so [`Chats`] can route every call to
//! the adapter that made the id, and stored ids need no migration.

pub mod pacing;
pub mod slack;
pub mod teams;
pub mod wording;

use std::sync::Arc;

use async_trait::async_trait;

use crate::core::hold::Operation;
use crate::core::overrides::ArgsMode;
use crate::core::request::RerunRequest;
use crate::core::{AlertStory, FailureAlert};

/// A chat platform the bot speaks on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    #[default]
    Slack,
    Teams,
}

impl Platform {
    pub const ALL: [Platform; 2] = [Platform::Slack, Platform::Teams];

    /// Whose conversation (or trigger) id this is. Teams ids always contain a
    /// `:` (`19:…@thread.tacv2`, `a:…`, `29:…`); Slack's never do (`C0123`,
    /// `D0456`, `1334.5678.9abc`).
    pub fn of(id: &str) -> Platform {
        if id.contains(':') {
            Platform::Teams
        } else {
            Platform::Slack
        }
    }

    /// Whose user id this is: Teams users are Entra object ids (GUIDs).
    pub fn of_user(id: &str) -> Platform {
        let guid = id.len() == 36
            && id.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            });
        if guid {
            Platform::Teams
        } else {
            Platform::Slack
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Platform::Slack => "slack",
            Platform::Teams => "teams",
        }
    }

    /// As people call it.
    pub fn title(self) -> &'static str {
        match self {
            Platform::Slack => "Slack",
            Platform::Teams => "Microsoft Teams",
        }
    }
}

/// Where a posted message lives, so it can be updated or replied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub channel: String,
    pub ts: String,
}

/// Everything the bot posts, in its own words; the adapter renders it.
#[derive(Debug, Clone)]
pub enum Outgoing<'a> {
    /// A failure alert. `story` is its incident and the CronJob's history;
    /// `reply` marks a repeated failure posted into the incident's thread.
    Alert {
        alert: &'a FailureAlert,
        story: &'a AlertStory,
        reply: bool,
        /// What is happening about it (a rerun requested, approved, running, …).
        status: Option<&'a str>,
    },
    /// A plain line of text (escaped by the adapter; user mentions `<@U…>` kept).
    Notice(&'a str),
    /// A rerun request's approval card, drawn for its current state.
    Request(&'a RerunRequest),
    /// A batch's approval card (`/rerun failed`): what it reruns, what it
    /// skips and why, and how far it is.
    Batch(&'a crate::core::batch::BatchRequest),
    /// The last requests, newest first (`/rerun history`).
    History(&'a [RerunRequest]),
    /// A hold or resume: progress while it runs, the summary when done.
    Operation(&'a Operation),
    /// A storm of failures in one channel (`core::storm`).
    Digest(&'a crate::core::storm::Digest),
}

/// The forms: two to rerun (DESIGN.md "Modals"), one to stop a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FormKind {
    /// `rerun_reason`: reason and ticket only.
    RerunReason,
    /// `rerun_overrides`: args, args mode, env, container, reason, ticket.
    RerunOverrides,
    /// `stop_reason`: reason and ticket, to stop a run that takes too long.
    StopReason,
}

impl FormKind {
    pub fn id(self) -> &'static str {
        match self {
            FormKind::RerunReason => "rerun_reason",
            FormKind::RerunOverrides => "rerun_overrides",
            FormKind::StopReason => "stop_reason",
        }
    }

    /// The submit button's label.
    pub fn submit_label(self) -> &'static str {
        match self {
            FormKind::StopReason => "Request stop",
            _ => "Request rerun",
        }
    }

    /// The hint under the reason field.
    pub fn reason_hint(self) -> &'static str {
        match self {
            FormKind::StopReason => {
                "Why this run should stop rather than finish; recorded in the audit trail."
            }
            _ => {
                "Why it failed and why a rerun fixes it; recorded on the Job and in the audit trail."
            }
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        match id {
            "rerun_reason" => Some(FormKind::RerunReason),
            "rerun_overrides" => Some(FormKind::RerunOverrides),
            "stop_reason" => Some(FormKind::StopReason),
            _ => None,
        }
    }
}

/// What a person typed into a form (or what it is prefilled with), as text.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct FormValues {
    pub reason: String,
    pub ticket: String,
    /// One argument per line.
    pub args: String,
    pub args_mode: ArgsMode,
    /// `KEY=VALUE` per line.
    pub env: String,
    pub container: Option<String>,
}

/// A form to open for a person.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Form {
    pub kind: FormKind,
    pub namespace: String,
    pub cronjob: String,
    /// Lines of context (the failure), plain text.
    pub context: Vec<String>,
    /// The template's containers; a choice is offered when there are several.
    pub containers: Vec<String>,
    pub prefill: FormValues,
    pub require_ticket: bool,
    /// Opaque to the adapter; comes back with the submission.
    pub metadata: String,
}

/// A submitted form.
#[derive(Debug, Clone)]
pub struct FormSubmission {
    pub user: String,
    pub kind: FormKind,
    pub metadata: String,
    pub values: FormValues,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The bot is not a member of the channel, or the channel does not exist.
    #[error("cannot post to channel `{0}`")]
    ChannelUnavailable(String),
    /// The platform rejected the call.
    #[error("chat API error: {0}")]
    Api(String),
    /// Network trouble, 5xx or rate limits that outlasted the retries.
    #[error("chat API unreachable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Chat: Send + Sync + 'static {
    async fn post(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        message: Outgoing<'_>,
    ) -> Result<MessageRef, ChatError>;
    async fn update(&self, at: &MessageRef, message: Outgoing<'_>) -> Result<(), ChatError>;
    /// A message only `user` sees.
    async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        reply: &Reply,
    ) -> Result<(), ChatError>;
    /// Opens a form for the person whose click or command carried `trigger_id`.
    async fn open_form(&self, trigger_id: &str, form: &Form) -> Result<(), ChatError>;
    /// The user ids in a user group.
    async fn group_members(&self, group: &str) -> Result<Vec<String>, ChatError>;
}

/// Every configured platform behind one [`Chat`]: each call goes to the
/// adapter whose id it carries.
#[derive(Clone, Default)]
pub struct Chats {
    pub slack: Option<Arc<dyn Chat>>,
    pub teams: Option<Arc<dyn Chat>>,
}

impl Chats {
    fn of(&self, id: &str) -> Result<&dyn Chat, ChatError> {
        let platform = Platform::of(id);
        match platform {
            Platform::Slack => self.slack.as_deref(),
            Platform::Teams => self.teams.as_deref(),
        }
        .ok_or_else(|| ChatError::Api(format!("{} is not configured", platform.name())))
    }

    /// The platforms that are on, Slack first.
    pub fn platforms(&self) -> Vec<Platform> {
        let mut on = Vec::new();
        if self.slack.is_some() {
            on.push(Platform::Slack);
        }
        if self.teams.is_some() {
            on.push(Platform::Teams);
        }
        on
    }
}

#[async_trait]
impl Chat for Chats {
    async fn post(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        message: Outgoing<'_>,
    ) -> Result<MessageRef, ChatError> {
        self.of(channel)?.post(channel, thread_ts, message).await
    }
    async fn update(&self, at: &MessageRef, message: Outgoing<'_>) -> Result<(), ChatError> {
        self.of(&at.channel)?.update(at, message).await
    }
    async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        reply: &Reply,
    ) -> Result<(), ChatError> {
        self.of(channel)?.post_ephemeral(channel, user, reply).await
    }
    async fn open_form(&self, trigger_id: &str, form: &Form) -> Result<(), ChatError> {
        self.of(trigger_id)?.open_form(trigger_id, form).await
    }
    /// User groups are Slack's (Teams' would need Microsoft Graph).
    async fn group_members(&self, group: &str) -> Result<Vec<String>, ChatError> {
        match &self.slack {
            Some(slack) => slack.group_members(group).await,
            None => Ok(Vec::new()),
        }
    }
}

/// Buttons whose click is a decision: recorded durably before the platform
/// is answered (DESIGN.md "Approval is final").
pub const DECIDING_ACTIONS: [&str; 10] = [
    "approve",
    "approve_held",
    "deny",
    "cancel",
    "batch_approve",
    "batch_deny",
    "batch_cancel",
    "hold_confirm",
    "resume_confirm",
    "hold_cancel",
];

/// A person acting in chat.
#[derive(Debug, Clone)]
pub enum Interaction {
    Button(ButtonClick),
    Command(SlashCommand),
    Form(FormSubmission),
}

#[derive(Debug, Clone)]
pub struct ButtonClick {
    pub user: String,
    pub action_id: String,
    pub value: Option<String>,
    /// Channel and message the button sits on.
    pub message: Option<MessageRef>,
    pub trigger_id: String,
}

#[derive(Debug, Clone)]
pub struct SlashCommand {
    pub user: String,
    pub channel: String,
    /// `/rerun`, `/hold`, …
    pub command: String,
    pub text: String,
    pub trigger_id: String,
}

/// What the person who acted sees at once.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Nothing to say right now (work continues in the background).
    Ack,
    /// A message only that person sees.
    Ephemeral(String),
    /// Request history, only for that person.
    History(Vec<RerunRequest>),
    /// The `/cronjobs` status board, or one CronJob in detail, only for that person.
    Board(Box<crate::core::board::View>),
    /// The form stays open with these errors, by field (`reason`, `env`, …).
    FormErrors(Vec<(&'static str, String)>),
    /// A preview with a confirm and a cancel button.
    Confirm(Confirm),
}

/// A preview that acts only when confirmed (bulk holds and resumes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub text: String,
    /// `hold_confirm` or `resume_confirm`; the cancel button is `hold_cancel`.
    pub action: &'static str,
    pub label: &'static str,
    /// What is confirmed (the operation's id).
    pub value: String,
}

/// The app side of interactions; the adapter acknowledges within Slack's 3 s.
#[async_trait]
pub trait Interactions: Send + Sync + 'static {
    async fn handle(&self, interaction: Interaction) -> Reply;
}

#[cfg(test)]
mod tests {
    use super::Platform;

    #[test]
    fn ids_tell_their_platform() {
        assert_eq!(Platform::of("C_ALERTS"), Platform::Slack);
        assert_eq!(Platform::of("1334.5678.9abc"), Platform::Slack);
        assert_eq!(Platform::of("19:abc@thread.tacv2"), Platform::Teams);
        assert_eq!(Platform::of("a:1xyz"), Platform::Teams);
        assert_eq!(
            Platform::of_user("3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"),
            Platform::Teams
        );
        assert_eq!(Platform::of_user("U_ALICE"), Platform::Slack);
        assert_eq!(Platform::of_user("rerun-bot"), Platform::Slack);
        assert_eq!(
            Platform::of_user("3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5g"),
            Platform::Slack
        );
    }
}
