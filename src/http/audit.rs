//! `GET /audit`: the audit trail as JSON lines, for `rerun-bot audit` and
//! people's own tooling. sled locks its directory to the running bot, so this
//! endpoint is how anyone else reads the history.
//!
//! Off unless `RERUN_BOT_AUDIT_TOKEN` is set; then every request needs
//! `Authorization: Bearer <token>`. Query: `since` (RFC 3339 time or a
//! duration such as `24h`, default everything), `cronjob` (`name` or
//! `namespace/name`), `limit` (default 10,000).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::store::{AuditEntry, Store};

#[derive(Clone)]
pub struct AuditState {
    pub store: Arc<dyn Store>,
    pub token: String,
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    pub since: Option<String>,
    pub cronjob: Option<String>,
    pub limit: Option<usize>,
}

/// `2026-11-23T10:00:00Z` or a duration back from `now` (`90m`, `24h`, `7d`).
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = humantime::parse_duration(s).map_err(|_| {
        format!("`since` must be an RFC 3339 time or a duration like 24h, not `{s}`")
    })?;
    Ok(now - chrono::Duration::from_std(d).map_err(|e| e.to_string())?)
}

/// Whether an event's subject (`namespace/cronjob`) matches `name` or `namespace/name`.
pub fn subject_matches(subject: &str, filter: &str) -> bool {
    if filter.contains('/') {
        subject == filter
    } else {
        subject.rsplit('/').next() == Some(filter)
    }
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Constant-time comparison: the token guards the whole history.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

pub async fn audit(
    State(state): State<AuditState>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    if !authorized(&headers, &state.token) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong bearer token\n",
        )
            .into_response();
    }
    let since = match query.since.as_deref().map(|s| parse_since(s, Utc::now())) {
        Some(Err(why)) => return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
        Some(Ok(t)) => Some(t),
        None => None,
    };
    let limit = query.limit.unwrap_or(10_000).min(100_000);
    let mut out = String::new();
    let mut from = 0;
    let mut written = 0;
    'pages: loop {
        let page = match state.store.audit(from, 1000).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "audit trail unreadable");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "audit trail unreadable\n",
                )
                    .into_response();
            }
        };
        let Some((last, _)) = page.last() else { break };
        from = last + 1;
        for (seq, event) in page {
            if since.is_some_and(|s| event.at < s)
                || query
                    .cronjob
                    .as_deref()
                    .is_some_and(|c| !subject_matches(&event.subject, c))
            {
                continue;
            }
            let entry = AuditEntry { seq, event };
            out.push_str(&serde_json::to_string(&entry).expect("audit events serialize"));
            out.push('\n');
            written += 1;
            if written >= limit {
                break 'pages;
            }
        }
    }
    ([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_times_and_durations() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_since("2026-11-22T10:00:00Z", now)
                .unwrap()
                .to_rfc3339(),
            "2026-11-22T10:00:00+00:00"
        );
        assert_eq!(
            parse_since("24h", now).unwrap().to_rfc3339(),
            "2026-11-22T10:00:00+00:00"
        );
        assert_eq!(
            parse_since("90m", now).unwrap().to_rfc3339(),
            "2026-11-23T08:30:00+00:00"
        );
        assert!(
            parse_since("yesterday", now)
                .unwrap_err()
                .contains("RFC 3339")
        );
    }

    #[test]
    fn subjects() {
        assert!(subject_matches("default/billing-sync", "billing-sync"));
        assert!(subject_matches(
            "default/billing-sync",
            "default/billing-sync"
        ));
        assert!(!subject_matches(
            "default/billing-sync",
            "other/billing-sync"
        ));
        assert!(!subject_matches("default/billing-sync-2", "billing-sync"));
    }

    #[test]
    fn bearer_token_must_match_exactly() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorized(&h, "s3cret"));
        assert!(!authorized(&h, "s3cret2"));
        h.insert(header::AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(!authorized(&h, "s3cret"));
    }
}
