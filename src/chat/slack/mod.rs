//! The Slack adapter: Web API calls (slack-morphism), Block Kit rendering,
//! signed HTTP endpoints and Socket Mode. Nothing outside `chat::slack`
//! names a slack-morphism type.

pub mod http;
pub mod messages;
pub mod socket;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use super::pacing::{Lane, Limit, Pacer, Pacing, SendError};
use super::{
    ButtonClick, Chat, ChatError, Form, FormKind, FormSubmission, Interaction, MessageRef,
    Outgoing, Reply, SlashCommand,
};
use crate::metrics::{MethodLabel, Metrics};

pub type Connector = SlackClientHyperConnector<HttpsConnector<HttpConnector>>;
pub type Client = SlackClient<Connector>;

/// How often a failed Web API call is tried again before the caller hears of it.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// The real slack-morphism client, able to talk `http://` too (GovSlack
/// proxies, tests): its default connector is https-only.
pub fn client(api_url: &str) -> std::io::Result<(Arc<Client>, String)> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .build();
    // slack-morphism joins `{url}/{method}`: a trailing slash would double up.
    let api_url = api_url.trim_end_matches('/').to_string();
    let connector = SlackClientHyperConnector::with_connector(https).with_slack_api_url(&api_url);
    Ok((Arc::new(SlackClient::new(connector)), api_url))
}

/// Slack's limits as the bot paces itself: `chat.postMessage` "1 per second
/// per channel" with a short burst (Slack allows a little more, so a clock's
/// jitter never costs a 429); `chat.update` Tier 3, 50 a minute per workspace.
fn post_limits(pacing: Pacing) -> Vec<Limit> {
    match pacing {
        Pacing::Platform => vec![Limit::Bucket {
            burst: 4,
            every: Duration::from_secs(1),
        }],
        Pacing::Off => Vec::new(),
    }
}

fn update_limits(pacing: Pacing) -> Vec<Limit> {
    match pacing {
        Pacing::Platform => vec![Limit::Bucket {
            burst: 8,
            every: Duration::from_millis(1200),
        }],
        Pacing::Off => Vec::new(),
    }
}

/// `chat.update` is limited per workspace: one queue for all of it.
const UPDATES: &str = "chat.update";

pub struct SlackChat {
    client: Arc<Client>,
    token: SlackApiToken,
    metrics: Arc<Metrics>,
    retry: RetryPolicy,
    /// `chat.postMessage`, one queue per channel, one call in flight each.
    posts: Pacer,
    /// `chat.update`, one queue.
    updates: Pacer,
}

impl SlackChat {
    pub fn new(client: Arc<Client>, bot_token: &str, metrics: Arc<Metrics>) -> Self {
        SlackChat {
            client,
            token: SlackApiToken::new(bot_token.into()),
            metrics,
            retry: RetryPolicy::default(),
            posts: Pacer::new("slack", post_limits(Pacing::Platform), 1),
            updates: Pacer::new("slack", update_limits(Pacing::Platform), 4),
        }
    }

    pub fn with_pacing(mut self, pacing: Pacing) -> Self {
        self.posts = Pacer::new("slack", post_limits(pacing), 1);
        self.updates = Pacer::new("slack", update_limits(pacing), 4);
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Runs one Web API call outside the paced queues, with retries: 429
    /// waits for `Retry-After`, the rest as [`SlackChat::attempt`].
    async fn call<T, F, Fut>(&self, method: &str, f: F) -> Result<T, ChatError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ClientResult<T>>,
    {
        let mut limited = 0;
        loop {
            match self.attempt(method, &f).await {
                Ok(v) => return Ok(v),
                Err(SendError::Failed(e)) => return Err(e),
                Err(SendError::RateLimited(after)) => {
                    limited += 1;
                    if limited >= self.retry.attempts {
                        return Err(ChatError::Unavailable(format!("{method}: rate limited")));
                    }
                    let wait = after
                        .unwrap_or(Duration::from_secs(1))
                        .min(self.retry.max_backoff);
                    tracing::warn!(
                        method,
                        wait_ms = wait.as_millis() as u64,
                        "Slack API call rate limited; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Runs one Web API call: 5xx and network errors back off exponentially;
    /// a 429 goes back to the caller (a paced queue, or [`SlackChat::call`]);
    /// Slack's own errors are final.
    async fn attempt<T, F, Fut>(&self, method: &str, f: F) -> Result<T, SendError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ClientResult<T>>,
    {
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = f().await;
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            self.metrics
                .slack_api_errors
                .get_or_create(&MethodLabel {
                    method: method.to_string(),
                })
                .inc();
            let wait = match &err {
                SlackClientError::RateLimitError(e) => {
                    return Err(SendError::RateLimited(e.retry_after));
                }
                SlackClientError::HttpError(e) if e.status_code.is_server_error() => Some(backoff),
                SlackClientError::HttpProtocolError(_)
                | SlackClientError::SystemError(_)
                | SlackClientError::EndOfStream(_) => Some(backoff),
                SlackClientError::ApiError(e)
                    if matches!(
                        e.code.as_str(),
                        "internal_error"
                            | "fatal_error"
                            | "service_unavailable"
                            | "request_timeout"
                    ) =>
                {
                    Some(backoff)
                }
                _ => None,
            };
            match wait {
                Some(wait) if attempt < self.retry.attempts => {
                    tracing::warn!(method, attempt, wait_ms = wait.as_millis() as u64, error = %err, "Slack API call failed; retrying");
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                }
                Some(_) => {
                    return Err(ChatError::Unavailable(format!("{method}: {err}")).into());
                }
                None => {
                    return Err(SendError::Failed(match &err {
                        SlackClientError::ApiError(e)
                            if matches!(
                                e.code.as_str(),
                                "channel_not_found" | "not_in_channel" | "is_archived"
                            ) =>
                        {
                            ChatError::ChannelUnavailable(e.code.clone())
                        }
                        _ => ChatError::Api(format!("{method}: {err}")),
                    }));
                }
            }
        }
    }

    fn render(message: &Outgoing<'_>) -> messages::Rendered {
        match message {
            Outgoing::Alert {
                alert,
                story,
                reply,
                status,
            } => messages::failure_alert(alert, story, *reply, *status),
            Outgoing::Notice(text) => messages::notice(text),
            Outgoing::Request(request) => messages::approval_card(request),
            Outgoing::Batch(batch) => messages::batch_card(batch),
            Outgoing::History(requests) => messages::history(requests),
            Outgoing::Operation(op) => messages::operation(op),
            Outgoing::Digest(d) => messages::digest(d),
        }
    }
}

#[async_trait]
impl Chat for SlackChat {
    async fn post(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        message: Outgoing<'_>,
    ) -> Result<MessageRef, ChatError> {
        let lane = Lane::of(&message);
        let rendered = Self::render(&message);
        let mut req = SlackApiChatPostMessageRequest::new(
            channel.into(),
            SlackMessageContent::new()
                .with_text(rendered.text)
                .with_blocks(rendered.blocks),
        );
        req.thread_ts = thread_ts.map(|ts| ts.into());
        // Mentions only where the bot writes them itself (`<@U…>`); never parse user text.
        req.link_names = Some(false);
        let (this, req) = (self, &req);
        let res = self
            .posts
            .send(channel, lane, || {
                this.attempt("chat.postMessage", move || async move {
                    this.client
                        .open_session(&this.token)
                        .chat_post_message(req)
                        .await
                })
            })
            .await?;
        Ok(MessageRef {
            channel: res.channel.to_string(),
            ts: res.ts.to_string(),
        })
    }

    async fn update(&self, at: &MessageRef, message: Outgoing<'_>) -> Result<(), ChatError> {
        let lane = Lane::of(&message);
        let rendered = Self::render(&message);
        let req = SlackApiChatUpdateRequest::new(
            at.channel.clone().into(),
            SlackMessageContent::new()
                .with_text(rendered.text)
                .with_blocks(rendered.blocks),
            at.ts.clone().into(),
        );
        let (this, req) = (self, &req);
        self.updates
            .send(UPDATES, lane, || {
                this.attempt("chat.update", move || async move {
                    this.client.open_session(&this.token).chat_update(req).await
                })
            })
            .await?;
        Ok(())
    }

    async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        reply: &Reply,
    ) -> Result<(), ChatError> {
        let rendered = messages::reply(reply);
        let req = SlackApiChatPostEphemeralRequest::new(
            channel.into(),
            user.into(),
            SlackMessageContent::new()
                .with_text(rendered.text)
                .with_blocks(rendered.blocks),
        );
        self.call("chat.postEphemeral", || async {
            self.client
                .open_session(&self.token)
                .chat_post_ephemeral(&req)
                .await
        })
        .await?;
        Ok(())
    }

    async fn open_form(&self, trigger_id: &str, form: &Form) -> Result<(), ChatError> {
        let req = SlackApiViewsOpenRequest::new(trigger_id.into(), messages::form_view(form));
        self.call("views.open", || async {
            self.client.open_session(&self.token).views_open(&req).await
        })
        .await?;
        Ok(())
    }

    async fn group_members(&self, group: &str) -> Result<Vec<String>, ChatError> {
        let req = SlackApiUserGroupsUsersListRequest::new(group.into());
        let res = self
            .call("usergroups.users.list", || async {
                self.client
                    .open_session(&self.token)
                    .usergroups_users_list(&req)
                    .await
            })
            .await?;
        Ok(res.users.into_iter().map(|u| u.to_string()).collect())
    }
}

/// Slack's interaction payload → the app's neutral [`Interaction`]s.
pub(crate) fn interactions_from(event: SlackInteractionEvent) -> Vec<Interaction> {
    match event {
        SlackInteractionEvent::BlockActions(ev) => {
            let Some(user) = ev.user.as_ref().map(|u| u.id.to_string()) else {
                return Vec::new();
            };
            let channel =
                ev.channel
                    .as_ref()
                    .map(|c| c.id.to_string())
                    .or_else(|| match &ev.container {
                        SlackInteractionActionContainer::Message(m) => {
                            m.channel_id.as_ref().map(|c| c.to_string())
                        }
                        _ => None,
                    });
            let ts = match &ev.container {
                SlackInteractionActionContainer::Message(m) => Some(m.message_ts.to_string()),
                _ => None,
            };
            let message = channel
                .zip(ts)
                .map(|(channel, ts)| MessageRef { channel, ts });
            ev.actions
                .unwrap_or_default()
                .into_iter()
                .map(|action| {
                    Interaction::Button(ButtonClick {
                        user: user.clone(),
                        action_id: action.action_id.to_string(),
                        // A select (the alert's *Snooze…*) sends its chosen option.
                        value: action
                            .value
                            .or_else(|| action.selected_option.map(|o| o.value)),
                        message: message.clone(),
                        trigger_id: ev.trigger_id.to_string(),
                    })
                })
                .collect()
        }
        SlackInteractionEvent::ViewSubmission(ev) => {
            let SlackView::Modal(modal) = &ev.view.view else {
                return Vec::new();
            };
            let Some(kind) = modal
                .callback_id
                .as_ref()
                .and_then(|id| FormKind::from_id(id.as_ref()))
            else {
                return Vec::new();
            };
            vec![Interaction::Form(FormSubmission {
                user: ev.user.id.to_string(),
                kind,
                metadata: modal.private_metadata.clone().unwrap_or_default(),
                values: messages::form_values(ev.view.state_params.state.as_ref()),
            })]
        }
        _ => Vec::new(),
    }
}

pub(crate) fn command_from(ev: SlackCommandEvent) -> Interaction {
    Interaction::Command(SlashCommand {
        user: ev.user_id.to_string(),
        channel: ev.channel_id.to_string(),
        command: ev.command.to_string(),
        text: ev.text.unwrap_or_default(),
        trigger_id: ev.trigger_id.to_string(),
    })
}
