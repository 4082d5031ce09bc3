//! Slack's Socket Mode: the bot dials out over a WebSocket (no public URL),
//! used when `SLACK_APP_TOKEN` is set. Same dispatch as the HTTP mode.

use std::sync::Arc;

use slack_morphism::prelude::*;

use super::http::Dispatch;
use super::{Client, command_from, interactions_from};
use crate::chat::Reply;

/// A running Socket Mode connection; dropping it does not stop it, `shutdown` does.
pub struct SocketMode {
    listener: SlackClientSocketModeListener<super::Connector>,
}

impl SocketMode {
    pub(crate) async fn start(
        client: Arc<Client>,
        app_token: &str,
        dispatch: Dispatch,
    ) -> Result<Self, String> {
        let callbacks = SlackSocketModeListenerCallbacks::new()
            .with_command_events(on_command)
            .with_interaction_events(on_interaction);
        let env = Arc::new(
            SlackClientEventsListenerEnvironment::new(client)
                .with_error_handler(on_error)
                .with_user_state(dispatch),
        );
        let listener =
            SlackClientSocketModeListener::new(&SlackClientSocketModeConfig::new(), env, callbacks);
        listener
            .listen_for(&SlackApiToken::new(app_token.into()))
            .await
            .map_err(|e| format!("Socket Mode: {e}"))?;
        listener.start().await;
        Ok(SocketMode { listener })
    }

    pub async fn shutdown(&self) {
        self.listener.shutdown().await;
    }
}

async fn dispatch_of(states: &SlackClientEventsUserState) -> Dispatch {
    states
        .read()
        .await
        .get_user_state::<Dispatch>()
        .expect("Socket Mode state is set at start")
        .clone()
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<Client>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let dispatch = dispatch_of(&states).await;
    let reply = dispatch.command(command_from(event)).await;
    let rendered = match reply {
        Reply::Ack => super::messages::notice(""),
        reply => super::messages::reply(&reply),
    };
    Ok(SlackCommandEventResponse::new(
        SlackMessageContent::new()
            .with_text(rendered.text)
            .with_blocks(rendered.blocks),
    )
    .with_response_type(SlackMessageResponseType::Ephemeral))
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<Client>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackInteractionResponse> {
    Ok(
        match dispatch_of(&states)
            .await
            .interactions(interactions_from(event))
            .await
        {
            Some(answer) => SlackInteractionResponse::ViewSubmission(answer),
            None => SlackInteractionResponse::Empty,
        },
    )
}

fn on_error(
    err: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<Client>,
    _states: SlackClientEventsUserState,
) -> axum::http::StatusCode {
    tracing::warn!(error = %err, "Socket Mode error");
    axum::http::StatusCode::OK
}
