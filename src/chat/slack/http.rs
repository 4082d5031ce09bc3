//! Slack's HTTP mode: `/slack/commands`, `/slack/interactivity`, `/slack/events`.
//!
//! Every request's signature is checked against the signing secret before
//! anything is parsed (a missing, wrong or more than 5 minutes old signature is
//! `401` and nothing happens). Slack wants an answer within 3 s, so slow work
//! continues in the background and reports back ephemerally.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use slack_morphism::prelude::*;
use slack_morphism::signature_verifier::{
    SlackEventSignatureVerifier, SlackEventSignatureVerifierError,
};

use super::{command_from, interactions_from};
use crate::chat::{Chat, Interaction, Interactions, Reply};

/// How long a slash command may take before Slack gets a "working on it" answer.
const COMMAND_ANSWER_BUDGET: Duration = Duration::from_millis(2500);

#[derive(Clone)]
pub(crate) struct Dispatch {
    pub handler: Arc<dyn Interactions>,
    pub chat: Arc<dyn Chat>,
}

impl Dispatch {
    /// Runs a slash command, answering within the budget whatever happens; a
    /// late answer goes out as an ephemeral message.
    pub async fn command(&self, interaction: Interaction) -> Reply {
        let (user, channel) = match &interaction {
            Interaction::Command(c) => (c.user.clone(), c.channel.clone()),
            _ => unreachable!("commands only"),
        };
        let this = self.clone();
        let mut work = tokio::spawn(async move { this.handler.handle(interaction).await });
        match tokio::time::timeout(COMMAND_ANSWER_BUDGET, &mut work).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "command handler panicked");
                Reply::Ephemeral(
                    "Internal error: the bot could not handle this command. It has been logged."
                        .into(),
                )
            }
            Err(_) => {
                let chat = self.chat.clone();
                tokio::spawn(async move {
                    let reply = match work.await {
                        Ok(Reply::Ack | Reply::FormErrors(_)) | Err(_) => return,
                        Ok(reply) => reply,
                    };
                    if let Err(e) = chat.post_ephemeral(&channel, &user, &reply).await {
                        tracing::warn!(error = %e, "could not deliver a late command answer");
                    }
                });
                Reply::Ephemeral("⏳ Working on it…".into())
            }
        }
    }

    /// A submitted form is answered synchronously: Slack keeps the modal open
    /// with the errors, or closes it on an empty answer. Button clicks are
    /// acknowledged at once and answered with ephemeral messages.
    pub async fn interactions(
        &self,
        interactions: Vec<Interaction>,
    ) -> Option<SlackViewSubmissionResponse> {
        let (forms, buttons): (Vec<_>, Vec<_>) = interactions
            .into_iter()
            .partition(|i| matches!(i, Interaction::Form(_)));
        self.buttons(buttons).await;
        let form = forms.into_iter().next()?;
        let this = self.clone();
        let work = tokio::spawn(async move { this.handler.handle(form).await });
        let errors: Vec<(&str, String)> =
            match tokio::time::timeout(COMMAND_ANSWER_BUDGET, work).await {
                Ok(Ok(Reply::FormErrors(errors))) => errors,
                Ok(Ok(Reply::Ephemeral(text))) => vec![("reason", text)],
                Ok(Ok(_)) => return None,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "form handler panicked");
                    vec![(
                        "reason",
                        "Internal error; it has been logged. Please try again.".into(),
                    )]
                }
                // The work goes on: say so, and do not invite a second request.
            Err(_) => vec![(
                "reason",
                "Still working on it: the approval card will appear in the channel shortly. Close this form; do not submit it again.".into(),
            )],
            };
        Some(SlackViewSubmissionResponse::Errors(
            SlackViewSubmissionErrorsResponse::new(
                errors
                    .into_iter()
                    .map(|(field, text)| {
                        (field.to_string(), super::messages::escape_cut(&text, 1000))
                    })
                    .collect(),
            ),
        ))
    }

    /// Buttons that decide (approve, deny, cancel, confirm a hold or resume)
    /// are handled — and so recorded — before Slack gets its answer (within
    /// the budget); the others are acknowledged at once. Answers go out as
    /// ephemeral messages, after the acknowledgement.
    pub async fn buttons(&self, interactions: Vec<Interaction>) {
        let mut deciding = Vec::new();
        for interaction in interactions {
            let Interaction::Button(click) = &interaction else {
                continue;
            };
            let decides = crate::chat::DECIDING_ACTIONS.contains(&click.action_id.as_str());
            let this = self.clone();
            let task = tokio::spawn(async move { this.click(interaction).await });
            if decides {
                deciding.push(task);
            }
        }
        if !deciding.is_empty()
            && tokio::time::timeout(COMMAND_ANSWER_BUDGET, futures::future::join_all(deciding))
                .await
                .is_err()
        {
            tracing::warn!(
                "a deciding click took longer than the answer budget; acknowledged anyway"
            );
        }
    }

    async fn click(&self, interaction: Interaction) {
        let Interaction::Button(click) = &interaction else {
            return;
        };
        let (user, channel) = (
            click.user.clone(),
            click.message.as_ref().map(|m| m.channel.clone()),
        );
        let reply = self.handler.handle(interaction).await;
        if matches!(reply, Reply::Ack | Reply::FormErrors(_)) {
            return;
        }
        let Some(channel) = channel else {
            tracing::warn!("button click without a channel; answer dropped");
            return;
        };
        let chat = self.chat.clone();
        tokio::spawn(async move {
            if let Err(e) = chat.post_ephemeral(&channel, &user, &reply).await {
                tracing::warn!(error = %e, "could not answer a button click");
            }
        });
    }
}

#[derive(Clone)]
struct HttpState {
    verifier: Arc<SlackEventSignatureVerifier>,
    dispatch: Dispatch,
}

pub fn router(signing_secret: &str, handler: Arc<dyn Interactions>, chat: Arc<dyn Chat>) -> Router {
    let state = HttpState {
        verifier: Arc::new(SlackEventSignatureVerifier::new(&SlackSigningSecret::new(
            signing_secret.into(),
        ))),
        dispatch: Dispatch { handler, chat },
    };
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactivity", post(interactivity))
        .route("/slack/events", post(events))
        .with_state(state)
}

fn unauthorized(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        format!("invalid Slack signature: {why}\n"),
    )
        .into_response()
}

fn bad_request(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response()
}

/// The body, if and only if Slack signed it recently.
fn verified<'b>(
    state: &HttpState,
    headers: &HeaderMap,
    body: &'b Bytes,
) -> Result<&'b str, &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(ts), Some(signature)) = (
        header(SlackEventSignatureVerifier::SLACK_SIGNED_TIMESTAMP),
        header(SlackEventSignatureVerifier::SLACK_SIGNED_HASH_HEADER),
    ) else {
        return Err("missing signature headers");
    };
    let body = std::str::from_utf8(body).map_err(|_| "body is not UTF-8")?;
    match state.verifier.verify(signature, body, ts) {
        Ok(()) => Ok(body),
        Err(e) => {
            tracing::warn!(error = %e, "rejected a Slack request");
            Err(match e {
                SlackEventSignatureVerifierError::IncorrectOrExpiredTimestampError(_) => {
                    "stale or invalid timestamp"
                }
                _ => "signature mismatch",
            })
        }
    }
}

fn reply_body(reply: Reply) -> Response {
    match reply {
        Reply::Ack | Reply::FormErrors(_) => StatusCode::OK.into_response(),
        Reply::Ephemeral(_) | Reply::History(_) | Reply::Board(_) | Reply::Confirm(_) => {
            let rendered = super::messages::reply(&reply);
            Json(
                SlackCommandEventResponse::new(
                    SlackMessageContent::new()
                        .with_text(rendered.text)
                        .with_blocks(rendered.blocks),
                )
                .with_response_type(SlackMessageResponseType::Ephemeral),
            )
            .into_response()
        }
    }
}

async fn commands(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match verified(&state, &headers, &body) {
        Ok(b) => b,
        Err(why) => return unauthorized(why),
    };
    let event: SlackCommandEvent = match serde_urlencoded::from_str(body) {
        Ok(e) => e,
        Err(e) => return bad_request(&format!("not a slash command payload: {e}")),
    };
    reply_body(state.dispatch.command(command_from(event)).await)
}

async fn interactivity(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match verified(&state, &headers, &body) {
        Ok(b) => b,
        Err(why) => return unauthorized(why),
    };
    #[derive(serde::Deserialize)]
    struct Form {
        payload: String,
    }
    let form: Form = match serde_urlencoded::from_str(body) {
        Ok(f) => f,
        Err(_) => return bad_request("expected a form with a `payload` field"),
    };
    let event: SlackInteractionEvent = match serde_json::from_str(&form.payload) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "unparsable interaction payload");
            return bad_request("unsupported interaction payload");
        }
    };
    match state.dispatch.interactions(interactions_from(event)).await {
        Some(answer) => Json(answer).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

async fn events(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match verified(&state, &headers, &body) {
        Ok(b) => b,
        Err(why) => return unauthorized(why),
    };
    let value: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) => return bad_request("expected JSON"),
    };
    if value["type"] == "url_verification" {
        return Json(serde_json::json!({ "challenge": value["challenge"] })).into_response();
    }
    // rerun-bot subscribes to no events yet; acknowledge so Slack does not retry.
    StatusCode::OK.into_response()
}
