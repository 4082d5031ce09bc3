//! The platform-neutral chat layer.
//!
//! The app speaks in [`Outgoing`] messages and receives [`Interaction`]s; a
//! platform adapter (today `slack`, Microsoft Teams next) renders the one and
//! parses the other. No Slack type crosses this module's boundary.

pub mod slack;

use async_trait::async_trait;

use crate::core::FailureAlert;

/// Where a posted message lives, so it can be updated or replied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub channel: String,
    pub ts: String,
}

/// Everything the bot posts, in its own words; the adapter renders it.
#[derive(Debug, Clone)]
pub enum Outgoing<'a> {
    /// A failure alert. `failures` counts the failures in its thread (1 for a
    /// fresh alert); `reply` marks a repeated failure posted into a thread.
    Alert {
        alert: &'a FailureAlert,
        failures: u32,
        reply: bool,
    },
    /// A plain line of text (escaped by the adapter).
    Notice(&'a str),
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
    async fn post_ephemeral(&self, channel: &str, user: &str, text: &str) -> Result<(), ChatError>;
}

/// A person acting in chat.
#[derive(Debug, Clone)]
pub enum Interaction {
    Button(ButtonClick),
    Command(SlashCommand),
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Nothing to say right now (work continues in the background).
    Ack,
    /// A message only that person sees.
    Ephemeral(String),
}

/// The app side of interactions; the adapter acknowledges within Slack's 3 s.
#[async_trait]
pub trait Interactions: Send + Sync + 'static {
    async fn handle(&self, interaction: Interaction) -> Reply;
}
