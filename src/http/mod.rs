//! The bot's HTTP port: the chat platforms' endpoints, probes, metrics and the audit trail.

pub mod audit;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::app::App;

/// `chat`: the platforms' endpoints (`/slack/*`, `/api/messages`).
pub fn router(app: Arc<App>, chat: Router, audit: Option<audit::AuditState>) -> Router {
    let probes = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app);
    let probes = match audit {
        Some(state) => probes.merge(
            Router::new()
                .route("/audit", get(audit::audit))
                .with_state(state),
        ),
        None => probes,
    };
    probes.merge(chat)
}

/// Ready once the store is open and the first lists of Jobs and CronJobs are in.
async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    if let Some(problem) = app.election_problem() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{problem}\n"));
    }
    if app.is_ready() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first list of Jobs and CronJobs\n".to_string(),
        )
    }
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics().render(),
    )
}
