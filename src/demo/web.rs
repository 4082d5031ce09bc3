//! The chat page and its small API: `GET /api/state` (both tabs), `GET
//! /api/events` (SSE: something changed), `POST
//! /api/{click,submit,close,dismiss,command}` (Slack) and the same under
//! `/api/teams/` (Teams).
//! The page's files are part of the binary; nothing is loaded from elsewhere.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::USERS;
use super::teams::TeamsSide;
use super::workspace::Workspace;

const INDEX: &str = include_str!("page/index.html");
const CSS: &str = include_str!("page/app.css");
const BLOCKS_JS: &str = include_str!("page/blocks.js");
const APP_JS: &str = include_str!("page/app.js");
const CARDS_JS: &str = include_str!("page/cards.js");
const TEAMS_JS: &str = include_str!("page/teams.js");

#[derive(Clone)]
struct Page {
    ws: Arc<Workspace>,
    teams: Arc<TeamsSide>,
}

pub fn router(ws: Arc<Workspace>, teams: Arc<TeamsSide>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/blocks.js",
            get(|| async { asset("text/javascript; charset=utf-8", BLOCKS_JS) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/cards.js",
            get(|| async { asset("text/javascript; charset=utf-8", CARDS_JS) }),
        )
        .route(
            "/teams.js",
            get(|| async { asset("text/javascript; charset=utf-8", TEAMS_JS) }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/state", get(state))
        .route("/api/events", get(events))
        .route("/api/click", post(click))
        .route("/api/submit", post(submit))
        .route("/api/close", post(close))
        .route("/api/dismiss", post(dismiss))
        .route("/api/command", post(command))
        .route("/api/teams/click", post(teams_click))
        .route("/api/teams/submit", post(teams_submit))
        .route("/api/teams/close", post(teams_close))
        .route("/api/teams/dismiss", post(teams_dismiss))
        .route("/api/teams/command", post(teams_command))
        .with_state(Page { ws, teams })
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct Who {
    user: String,
}

/// Only the demo's people act; anyone else gets a 400, never a panic.
fn unknown(user: &str) -> Option<Response> {
    (!USERS.iter().any(|(id, _, _)| *id == user)).then(|| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unknown user"})),
        )
            .into_response()
    })
}

fn answer(result: Result<Value, String>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => (StatusCode::CONFLICT, Json(json!({"error": e}))).into_response(),
    }
}

async fn state(State(Page { ws, teams }): State<Page>, Query(who): Query<Who>) -> Response {
    if let Some(r) = unknown(&who.user) {
        return r;
    }
    let mut state = ws.state(&who.user);
    state["teams"] = teams.state(&who.user);
    Json(state).into_response()
}

async fn events(State(Page { ws, .. }): State<Page>) -> impl IntoResponse {
    let rx = ws.subscribe();
    let stop = ws.stop.clone();
    let stream = futures::stream::unfold((rx, stop), |(mut rx, stop)| async move {
        tokio::select! {
            _ = stop.cancelled() => None,
            changed = rx.changed() => {
                changed.ok()?;
                let v = *rx.borrow_and_update();
                Some((Ok::<_, std::convert::Infallible>(Event::default().data(v.to_string())), (rx, stop)))
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct Click {
    user: String,
    key: String,
    block: usize,
    element: Option<usize>,
}

async fn click(State(Page { ws, .. }): State<Page>, Json(c): Json<Click>) -> Response {
    if let Some(r) = unknown(&c.user) {
        return r;
    }
    answer(
        ws.click(&c.user, &c.key, c.block, c.element)
            .await
            .map(|status| json!({"status": status})),
    )
}

#[derive(Deserialize)]
struct Submit {
    user: String,
    values: Map<String, Value>,
}

async fn submit(State(Page { ws, .. }): State<Page>, Json(s): Json<Submit>) -> Response {
    if let Some(r) = unknown(&s.user) {
        return r;
    }
    answer(
        ws.submit(&s.user, &s.values)
            .await
            .map(|closed| json!({"closed": closed})),
    )
}

async fn close(State(Page { ws, .. }): State<Page>, Json(w): Json<Who>) -> Response {
    if let Some(r) = unknown(&w.user) {
        return r;
    }
    ws.close_modal(&w.user);
    Json(json!({})).into_response()
}

#[derive(Deserialize)]
struct Dismiss {
    user: String,
    key: String,
}

async fn dismiss(State(Page { ws, .. }): State<Page>, Json(d): Json<Dismiss>) -> Response {
    if let Some(r) = unknown(&d.user) {
        return r;
    }
    ws.dismiss(&d.user, &d.key);
    Json(json!({})).into_response()
}

#[derive(Deserialize)]
struct Command {
    user: String,
    text: String,
}

async fn command(State(Page { ws, .. }): State<Page>, Json(c): Json<Command>) -> Response {
    if let Some(r) = unknown(&c.user) {
        return r;
    }
    answer(ws.command(&c.user, &c.text).await.map(|()| json!({})))
}

// ----- Teams ---------------------------------------------------------------

#[derive(Deserialize)]
struct TeamsClick {
    user: String,
    id: String,
    action: String,
    #[serde(default)]
    values: Map<String, Value>,
}

async fn teams_click(State(p): State<Page>, Json(c): Json<TeamsClick>) -> Response {
    if let Some(r) = unknown(&c.user) {
        return r;
    }
    answer(
        p.teams
            .click(&c.user, &c.id, &c.action, &c.values)
            .await
            .map(|()| json!({})),
    )
}

async fn teams_submit(State(p): State<Page>, Json(s): Json<Submit>) -> Response {
    if let Some(r) = unknown(&s.user) {
        return r;
    }
    answer(
        p.teams
            .submit(&s.user, &s.values)
            .await
            .map(|closed| json!({"closed": closed})),
    )
}

async fn teams_close(State(p): State<Page>, Json(w): Json<Who>) -> Response {
    if let Some(r) = unknown(&w.user) {
        return r;
    }
    p.teams.close(&w.user);
    Json(json!({})).into_response()
}

#[derive(Deserialize)]
struct TeamsDismiss {
    user: String,
    id: u64,
}

async fn teams_dismiss(State(p): State<Page>, Json(d): Json<TeamsDismiss>) -> Response {
    if let Some(r) = unknown(&d.user) {
        return r;
    }
    p.teams.dismiss(&d.user, d.id);
    Json(json!({})).into_response()
}

#[derive(Deserialize)]
struct TeamsCommand {
    user: String,
    text: String,
    #[serde(default)]
    chat: bool,
}

async fn teams_command(State(p): State<Page>, Json(c): Json<TeamsCommand>) -> Response {
    if let Some(r) = unknown(&c.user) {
        return r;
    }
    answer(
        p.teams
            .command(&c.user, &c.text, c.chat)
            .await
            .map(|()| json!({})),
    )
}
