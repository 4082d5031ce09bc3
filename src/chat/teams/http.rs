//! `POST /api/messages`: every activity Teams sends the bot.
//!
//! The JWT is checked before anything is acted on ([`super::auth`]); a
//! missing or bad one is `401` and nothing happens. Activities from another
//! tenant are refused. Then, by kind:
//! - a message is a command (`rerun …`, `hold …`, …, the mention removed);
//!   what Slack answers ephemerally goes to the asker's 1:1 chat;
//! - `adaptiveCard/action` is a button (`Action.Execute`): handled, and so
//!   recorded, before the invoke is answered — with the card as it now
//!   stands, or a text only the clicker sees;
//! - `task/fetch` opens a dialog, `task/submit` submits it (errors: the
//!   dialog again, each under its field).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{TeamsChat, cards, message_ref};
use crate::chat::{
    ButtonClick, Chat, FormSubmission, Interaction, Interactions, Reply, SlashCommand,
};

/// Activities are small; a card submission with a long log is well under this.
const BODY_LIMIT: usize = 256 * 1024;
/// How long an invoke waits for its handler before answering "still working".
const INVOKE_BUDGET: Duration = Duration::from_secs(10);
const MESSAGE_TYPE: &str = "application/vnd.microsoft.activity.message";
/// The only Bot Framework channel the bot serves.
const TEAMS_CHANNEL_ID: &str = "msteams";
/// The verb of a button that opens a form it carries (see `form_launcher`).
pub const OPEN_FORM_VERB: &str = "open_form";

/// Teams opens a dialog only in answer to a click: a command that needs a
/// form (`rerun x` without a reason) sends this card, whose button opens it.
fn form_launcher(form: &crate::chat::Form) -> Value {
    json!({
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [{
            "type": "TextBlock",
            "wrap": true,
            "text": format!("To rerun **{}/{}**, give a reason (and changes, if any).", form.namespace, form.cronjob),
        }],
        "actions": [{
            "type": "Action.Submit",
            "title": "Open the form",
            "data": {"msteams": {"type": "task/fetch"}, "verb": OPEN_FORM_VERB, "form": form},
        }],
    })
}

#[derive(Clone)]
struct TeamsState {
    teams: Arc<TeamsChat>,
    handler: Arc<dyn Interactions>,
}

pub fn router(teams: Arc<TeamsChat>, handler: Arc<dyn Interactions>) -> Router {
    Router::new()
        .route("/api/messages", post(messages))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(TeamsState { teams, handler })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Activity {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    service_url: String,
    channel_id: String,
    from: Account,
    conversation: Conversation,
    channel_data: Value,
    reply_to_id: Option<String>,
    text: Option<String>,
    entities: Vec<Value>,
    value: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Account {
    id: String,
    name: String,
    aad_object_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Conversation {
    id: String,
    conversation_type: Option<String>,
    tenant_id: Option<String>,
}

impl Activity {
    fn tenant(&self) -> Option<&str> {
        self.channel_data["tenant"]["id"]
            .as_str()
            .or(self.conversation.tenant_id.as_deref())
    }

    fn personal(&self) -> bool {
        self.conversation.conversation_type.as_deref() == Some("personal")
            || self.conversation.id.starts_with("a:")
    }
}

async fn messages(State(st): State<TeamsState>, headers: HeaderMap, body: Bytes) -> Response {
    let activity: Activity = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("not an activity: {e}\n")).into_response();
        }
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // The Bot Framework signs every channel's activities with the same keys;
    // only Teams vouches for `from.aadObjectId` and the tenant (a Web Chat or
    // Direct Line client writes its own `from` and `channelData`).
    let verified = if activity.channel_id != TEAMS_CHANNEL_ID {
        Err(super::auth::AuthError::OtherChannel(
            activity.channel_id.clone(),
        ))
    } else {
        st.teams
            .verifier
            .verify(authorization, &activity.channel_id, &activity.service_url)
            .await
    };
    if let Err(e) = verified {
        st.teams.metrics.teams_auth_rejected.inc();
        tracing::warn!(error = %e, "rejected a request to /api/messages");
        return (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response();
    }
    if activity.tenant() != Some(st.teams.settings.tenant_id.as_str()) {
        tracing::warn!(
            tenant = activity.tenant().unwrap_or("none"),
            "activity from another tenant ignored"
        );
        return match (activity.kind.as_str(), activity.name.as_deref()) {
            ("invoke", Some(name)) => invoke_error(name, 403, "This bot serves another tenant."),
            _ => StatusCode::OK.into_response(),
        };
    }
    if activity.conversation.conversation_type.as_deref() == Some("channel") {
        st.teams.learn_service_url(&activity.service_url);
    }
    let user = activity.from.aad_object_id.clone().unwrap_or_default();
    if !user.is_empty() {
        st.teams
            .learn_person(&user, &activity.from.id, &activity.from.name);
        if activity.personal() {
            st.teams
                .learn_personal_chat(&user, &activity.conversation.id);
        }
    }
    match (activity.kind.as_str(), activity.name.as_deref()) {
        ("message", _) if user.is_empty() => {
            tracing::warn!("message without from.aadObjectId ignored");
            StatusCode::OK.into_response()
        }
        ("message", _) => {
            // An older client's `Action.Submit` of a deciding button is
            // recorded before Teams hears back, as an invoke would be.
            let decides = activity.value["verb"]
                .as_str()
                .is_some_and(|v| crate::chat::DECIDING_ACTIONS.contains(&v));
            let work = tokio::spawn(async move { on_message(st, activity, user).await });
            if decides && tokio::time::timeout(INVOKE_BUDGET, work).await.is_err() {
                tracing::warn!(
                    "a deciding Action.Submit took longer than the budget; answered anyway"
                );
            }
            // Other messages are answered at once; answers go to the asker's 1:1 chat.
            StatusCode::OK.into_response()
        }
        ("invoke", Some(name)) if user.is_empty() => {
            tracing::warn!(name, "invoke without from.aadObjectId refused");
            invoke_text(name, "rerun-bot cannot tell who you are; nothing was done.")
        }
        ("invoke", Some("adaptiveCard/action")) => on_action(st, activity, user).await,
        ("invoke", Some("task/fetch")) => on_task_fetch(st, activity, user).await,
        ("invoke", Some("task/submit")) => on_task_submit(st, activity, user).await,
        ("invoke", name) => {
            tracing::debug!(?name, "invoke not handled");
            (StatusCode::OK, Json(json!({}))).into_response()
        }
        _ => StatusCode::OK.into_response(),
    }
}

/// Runs the handler for an invoke within the budget; what takes longer goes on.
async fn handle(st: &TeamsState, interaction: Interaction) -> Option<Reply> {
    let handler = st.handler.clone();
    let work = tokio::spawn(async move { handler.handle(interaction).await });
    match tokio::time::timeout(INVOKE_BUDGET, work).await {
        Ok(Ok(reply)) => Some(reply),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "Teams handler panicked");
            Some(Reply::Ephemeral(
                "Internal error: rerun-bot could not handle this. It has been logged.".into(),
            ))
        }
        Err(_) => None,
    }
}

/// An invoke refused: still HTTP 200 (Teams wants that), the status in the body.
fn invoke_error(name: &str, status: u16, text: &str) -> Response {
    let body = match name {
        "task/fetch" | "task/submit" => json!({"task": {"type": "message", "value": text}}),
        _ => json!({
            "statusCode": status,
            "type": "application/vnd.microsoft.error",
            "value": {"code": "Forbidden", "message": text},
        }),
    };
    (StatusCode::OK, Json(body)).into_response()
}

fn invoke_text(name: &str, text: &str) -> Response {
    let body = match name {
        "task/fetch" | "task/submit" => json!({"task": {"type": "message", "value": text}}),
        _ => json!({"statusCode": 200, "type": MESSAGE_TYPE, "value": text}),
    };
    (StatusCode::OK, Json(body)).into_response()
}

/// `Action.Execute` on a card: the button's verb and data, the clicker from
/// `from.aadObjectId` (never from `data`).
async fn on_action(st: TeamsState, activity: Activity, user: String) -> Response {
    let action = &activity.value["action"];
    let verb = action["verb"].as_str().unwrap_or_default().to_string();
    let click = click(&st, &activity, user, verb, &action["data"]);
    let at = click.message.clone();
    let since = st.teams.card_seq();
    let reply = handle(&st, Interaction::Button(click.clone())).await;
    let Some(reply) = reply else {
        return invoke_text(
            "adaptiveCard/action",
            "Still working on it; the card will show the outcome.",
        );
    };
    match reply {
        Reply::Ack => match at.and_then(|at| st.teams.card_since(&at, since)) {
            Some(card) => (
                StatusCode::OK,
                Json(json!({"statusCode": 200, "type": cards::CONTENT_TYPE, "value": card})),
            )
                .into_response(),
            None => invoke_text("adaptiveCard/action", "Done."),
        },
        Reply::Ephemeral(_) | Reply::FormErrors(_) => {
            invoke_text("adaptiveCard/action", &st.teams.reply_text(&reply))
        }
        // A preview or a list: for the clicker alone, in their 1:1 chat.
        Reply::History(_) | Reply::Board(_) | Reply::Confirm(_) => {
            match st
                .teams
                .tell(&click.user, st.teams.render_reply(&reply))
                .await
            {
                Ok(()) => invoke_text(
                    "adaptiveCard/action",
                    "Sent to you in your chat with rerun-bot.",
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the clicker's 1:1 chat");
                    invoke_text("adaptiveCard/action", &st.teams.reply_text(&reply))
                }
            }
        }
    }
}

fn click(
    st: &TeamsState,
    activity: &Activity,
    user: String,
    action_id: String,
    data: &Value,
) -> ButtonClick {
    ButtonClick {
        user,
        action_id,
        value: data["value"].as_str().map(str::to_string),
        message: activity
            .reply_to_id
            .as_deref()
            .map(|id| message_ref(&activity.conversation.id, id)),
        trigger_id: st.teams.new_trigger(),
    }
}

/// The dialog of `form`, sealed (see [`TeamsChat::seal`]).
fn dialog(
    teams: &TeamsChat,
    form: &crate::chat::Form,
    values: &crate::chat::FormValues,
    errors: &[(&str, String)],
) -> Value {
    json!({"task": {"type": "continue", "value": {
        "title": cards::dialog_title(form),
        "card": cards::attachment(cards::dialog(&teams.seal(form), values, errors)),
    }}})
}

const FORGED_FORM: &str =
    "This dialog is not one rerun-bot made (or it was changed); nothing was done.";

/// A form-opening button (`rerun`, `rerun_with_changes`, …): the app opens
/// the form, which goes back as the dialog.
async fn on_task_fetch(st: TeamsState, activity: Activity, user: String) -> Response {
    let data = &activity.value["data"];
    // A form sent to someone's chat (a command without a reason) carries itself.
    if data["verb"] == OPEN_FORM_VERB {
        let form = serde_json::from_value::<crate::chat::Form>(data["form"].clone())
            .ok()
            .and_then(|f| st.teams.unseal(f));
        return match form {
            Some(form) => (
                StatusCode::OK,
                Json(dialog(&st.teams, &form, &form.prefill, &[])),
            )
                .into_response(),
            None => invoke_text("task/fetch", FORGED_FORM),
        };
    }
    let verb = data["verb"].as_str().unwrap_or_default().to_string();
    let click = click(&st, &activity, user, verb, data);
    let trigger = click.trigger_id.clone();
    let reply = handle(&st, Interaction::Button(click)).await;
    if let Some(form) = st.teams.take_form(&trigger) {
        return (
            StatusCode::OK,
            Json(dialog(&st.teams, &form, &form.prefill, &[])),
        )
            .into_response();
    }
    match reply {
        None => invoke_text("task/fetch", "Still working on it; try again in a moment."),
        Some(Reply::Ack) => invoke_text("task/fetch", "Done."),
        Some(reply) => invoke_text("task/fetch", &st.teams.reply_text(&reply)),
    }
}

async fn on_task_submit(st: TeamsState, activity: Activity, user: String) -> Response {
    let Some((form, values)) = cards::form_submission(&activity.value["data"]) else {
        return invoke_text(
            "task/submit",
            "This dialog is not one rerun-bot knows; nothing was done.",
        );
    };
    let Some(form) = st.teams.unseal(form) else {
        tracing::warn!("a dialog submission with a changed or unsigned form refused");
        return invoke_text("task/submit", FORGED_FORM);
    };
    let submission = FormSubmission {
        user,
        kind: form.kind,
        metadata: form.metadata.clone(),
        values: values.clone(),
    };
    match handle(&st, Interaction::Form(submission)).await {
        Some(Reply::FormErrors(errors)) => (
            StatusCode::OK,
            Json(dialog(&st.teams, &form, &values, &errors)),
        )
            .into_response(),
        Some(Reply::Ack) => invoke_text(
            "task/submit",
            "Sent for approval: the request card is in the thread.",
        ),
        Some(reply) => invoke_text("task/submit", &st.teams.reply_text(&reply)),
        None => invoke_text(
            "task/submit",
            "Still working on it: the approval card will appear shortly. Do not submit again.",
        ),
    }
}

/// A message to the bot: a command, or an `Action.Submit` of an older client.
async fn on_message(st: TeamsState, activity: Activity, user: String) {
    let trigger = st.teams.new_trigger();
    // Commands typed in a 1:1 chat make their cards in the alert channel,
    // where an approver can see them.
    let channel = if activity.personal() {
        st.teams.settings_channel()
    } else {
        activity
            .conversation
            .id
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let interaction = if let Some(verb) = activity.value["verb"].as_str() {
        Interaction::Button(click(
            &st,
            &activity,
            user.clone(),
            verb.to_string(),
            &activity.value,
        ))
    } else {
        let text = command_text(
            activity.text.as_deref().unwrap_or_default(),
            &activity.entities,
        );
        let (word, rest) = match text.split_once(char::is_whitespace) {
            Some((w, r)) => (w.to_string(), r.trim().to_string()),
            None => (text.clone(), String::new()),
        };
        let word = word.to_lowercase();
        let (command, text) = match word.as_str() {
            "" | "help" => ("/rerun".to_string(), "help".to_string()),
            _ => (format!("/{word}"), rest),
        };
        Interaction::Command(SlashCommand {
            user: user.clone(),
            channel,
            command,
            text,
            trigger_id: trigger.clone(),
        })
    };
    let trigger = match &interaction {
        Interaction::Button(c) => c.trigger_id.clone(),
        _ => trigger,
    };
    let reply = st.handler.handle(interaction).await;
    if let Some(form) = st.teams.take_form(&trigger) {
        if let Err(e) = st
            .teams
            .tell(&user, form_launcher(&st.teams.seal(&form)))
            .await
        {
            tracing::warn!(error = %e, "cannot send the form to the asker");
        }
        return;
    }
    if matches!(reply, Reply::Ack | Reply::FormErrors(_)) {
        return;
    }
    let card = st.teams.render_reply(&reply);
    let sent = if activity.personal() {
        st.teams
            .post_ephemeral(&activity.conversation.id, &user, &reply)
            .await
    } else {
        st.teams.tell(&user, card).await
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot answer a Teams command");
    }
}

/// The command in a message: mentions of the bot removed, HTML entities
/// decoded, a leading `/` allowed.
pub(crate) fn command_text(text: &str, entities: &[Value]) -> String {
    let mut text = text.to_string();
    for e in entities {
        if e["type"] == "mention"
            && let Some(m) = e["text"].as_str().filter(|m| !m.is_empty())
        {
            text = text.replace(m, " ");
        }
    }
    // Any other `<at>…</at>` (a mention of someone else) goes too.
    while let (Some(start), Some(end)) = (text.find("<at>"), text.find("</at>")) {
        if end < start {
            break;
        }
        text.replace_range(start..end + "</at>".len(), " ");
    }
    let text = text
        .replace("&nbsp;", " ")
        .replace('\u{a0}', " ")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let text = text.trim();
    text.strip_prefix('/').unwrap_or(text).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::command_text;
    use serde_json::json;

    #[test]
    fn mentions_and_entities_are_removed() {
        let entities = [json!({"type": "mention", "text": "<at>rerun-bot</at>"})];
        assert_eq!(
            command_text(
                "<at>rerun-bot</at>&nbsp;rerun billing-sync --arg --date=2024-01-01 --reason &quot;db down&quot;",
                &entities
            ),
            "rerun billing-sync --arg --date=2024-01-01 --reason \"db down\""
        );
        assert_eq!(command_text("/hold all", &[]), "hold all");
        assert_eq!(command_text("  <at>Bot</at> cronjobs ", &[]), "cronjobs");
        assert_eq!(command_text("<at>rerun-bot</at>", &entities), "");
        let empty = [json!({"type": "mention", "text": ""})];
        assert_eq!(command_text("cronjobs", &empty), "cronjobs");
    }
}
