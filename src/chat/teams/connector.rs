//! Outbound to Teams: the bot's token (OAuth2 client credentials, cached) and
//! the Bot Connector REST calls (`/v3/conversations…`).
//!
//! A 429 goes back to the caller with its `Retry-After` (the conversation's
//! paced queue waits, then sends again); 412, 502, 503 and 504 are retried
//! with backoff (a POST after a 504 or a timeout is not: it may have landed);
//! 403 (the bot was removed from the team) and 404 (no such conversation) are
//! [`ChatError::ChannelUnavailable`]; anything else is an API error.

use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::chat::ChatError;
use crate::chat::pacing::SendError;
use crate::metrics::{MethodLabel, Metrics};

const SCOPE: &str = "https://api.botframework.com/.default";
/// A token is renewed this long before Entra says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Conversation ids go into the path percent-encoded (`19:…;messageid=…`).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

pub struct Connector {
    http: reqwest::Client,
    app_id: String,
    app_password: String,
    token_url: String,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    metrics: std::sync::Arc<Metrics>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

/// What `POST /v3/conversations` answers.
#[derive(Debug, Deserialize)]
pub struct Created {
    pub id: String,
    #[serde(default, rename = "activityId")]
    pub activity_id: Option<String>,
}

impl Connector {
    pub fn new(
        http: reqwest::Client,
        app_id: &str,
        app_password: &str,
        login_url: &str,
        tenant: &str,
        metrics: std::sync::Arc<Metrics>,
    ) -> Self {
        Connector {
            http,
            app_id: app_id.to_string(),
            app_password: app_password.to_string(),
            token_url: format!(
                "{}/{}/oauth2/v2.0/token",
                login_url.trim_end_matches('/'),
                tenant
            ),
            token: tokio::sync::Mutex::new(None),
            metrics,
        }
    }

    async fn token(&self) -> Result<String, ChatError> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = &*cached
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let answer = self
            .http
            .post(&self.token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.app_id.as_str()),
                ("client_secret", self.app_password.as_str()),
                ("scope", SCOPE),
            ])
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| ChatError::Unavailable(format!("Entra token endpoint: {e}")))?;
        let status = answer.status();
        if !status.is_success() {
            // The body names the cause (AADSTS…), never the secret.
            let body = answer.text().await.unwrap_or_default();
            let why = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error_description"].as_str().map(str::to_string))
                .unwrap_or(body);
            return Err(ChatError::Api(format!(
                "Entra refused the bot's token ({status}): {}; check TEAMS_APP_ID, TEAMS_APP_PASSWORD and TEAMS_TENANT_ID",
                crate::core::text::truncate_chars(&why, 300)
            )));
        }
        let token: TokenAnswer = answer
            .json()
            .await
            .map_err(|e| ChatError::Api(format!("unreadable token answer: {e}")))?;
        let lifetime = Duration::from_secs(token.expires_in.max(60));
        let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN).max(lifetime / 2);
        *cached = Some((token.access_token.clone(), until));
        Ok(token.access_token)
    }

    /// A new thread in a channel: `POST /v3/conversations`.
    pub async fn create_thread(
        &self,
        service_url: &str,
        channel: &str,
        tenant: &str,
        activity: Value,
    ) -> Result<Created, SendError> {
        let body = json!({
            "isGroup": true,
            "channelData": {"channel": {"id": channel}, "tenant": {"id": tenant}},
            "tenantId": tenant,
            "activity": activity,
        });
        let url = format!("{}v3/conversations", base(service_url));
        self.call("create_conversation", Method::POST, &url, Some(&body))
            .await
            .and_then(|v| parse(v).map_err(SendError::Failed))
    }

    /// A 1:1 chat with a person (their per-bot id `29:…`).
    pub async fn create_personal(
        &self,
        service_url: &str,
        user_id: &str,
        tenant: &str,
        bot_id: &str,
    ) -> Result<Created, SendError> {
        let body = json!({
            "isGroup": false,
            "bot": {"id": format!("28:{bot_id}")},
            "members": [{"id": user_id}],
            "channelData": {"tenant": {"id": tenant}},
            "tenantId": tenant,
        });
        let url = format!("{}v3/conversations", base(service_url));
        self.call("create_conversation", Method::POST, &url, Some(&body))
            .await
            .and_then(|v| parse(v).map_err(SendError::Failed))
    }

    /// Sends into a conversation (a thread when the id carries `;messageid=`).
    pub async fn send(
        &self,
        service_url: &str,
        conversation: &str,
        activity: &Value,
    ) -> Result<String, SendError> {
        let url = format!(
            "{}v3/conversations/{}/activities",
            base(service_url),
            utf8_percent_encode(conversation, PATH_SEGMENT)
        );
        let created: Created = self
            .call("send_to_conversation", Method::POST, &url, Some(activity))
            .await
            .and_then(|v| parse(v).map_err(SendError::Failed))?;
        Ok(created.id)
    }

    /// Replaces an activity (a card) for everyone.
    pub async fn update(
        &self,
        service_url: &str,
        conversation: &str,
        activity_id: &str,
        activity: &Value,
    ) -> Result<(), SendError> {
        let url = format!(
            "{}v3/conversations/{}/activities/{}",
            base(service_url),
            utf8_percent_encode(conversation, PATH_SEGMENT),
            utf8_percent_encode(activity_id, PATH_SEGMENT)
        );
        self.call("update_activity", Method::PUT, &url, Some(activity))
            .await
            .map(|_| ())
    }

    async fn call(
        &self,
        method_name: &'static str,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, SendError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut not_sent = false;
            let token = self.token().await.map_err(SendError::Failed)?;
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(&token)
                .timeout(Duration::from_secs(15));
            if let Some(body) = body {
                request = request.json(body);
            }
            let (status, retry_after, text) = match request.send().await {
                Ok(answer) => {
                    let status = answer.status();
                    let retry_after = answer
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    (
                        Some(status),
                        retry_after,
                        answer.text().await.unwrap_or_default(),
                    )
                }
                Err(e) => {
                    not_sent = e.is_connect();
                    (None, None, e.to_string())
                }
            };
            // A POST that may have landed (a timeout, a 504) is not sent again:
            // it would post the message twice. An update (PUT) may be repeated.
            let idempotent = method == Method::PUT;
            let retryable = match status {
                None => idempotent || not_sent,
                Some(s) => {
                    s == StatusCode::PRECONDITION_FAILED
                        || s == StatusCode::BAD_GATEWAY
                        || s == StatusCode::SERVICE_UNAVAILABLE
                        || (s == StatusCode::GATEWAY_TIMEOUT && idempotent)
                }
            };
            if status.is_none_or(|s| !s.is_success()) {
                self.metrics
                    .teams_api_errors
                    .get_or_create(&MethodLabel {
                        method: method_name.to_string(),
                    })
                    .inc();
            }
            match status {
                Some(s) if s.is_success() => {
                    return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                }
                Some(StatusCode::UNAUTHORIZED) if attempt == 1 => {
                    // The cached token may have been revoked: fetch a new one once.
                    *self.token.lock().await = None;
                    continue;
                }
                Some(StatusCode::TOO_MANY_REQUESTS) => {
                    // Not sent: the paced queue waits and sends it again.
                    return Err(SendError::RateLimited(retry_after));
                }
                Some(s) if s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND => {
                    return Err(SendError::Failed(ChatError::ChannelUnavailable(format!(
                        "{method_name}: {s} {}",
                        error_code(&text)
                    ))));
                }
                _ if retryable && attempt < ATTEMPTS => {
                    let wait = retry_after.unwrap_or(backoff).min(MAX_WAIT);
                    tracing::debug!(
                        method = method_name,
                        ?status,
                        ?wait,
                        "Connector call retried"
                    );
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(MAX_WAIT);
                }
                Some(s) if retryable => {
                    return Err(ChatError::Unavailable(format!("{method_name}: {s}")).into());
                }
                Some(s) => {
                    return Err(ChatError::Api(format!(
                        "{method_name}: {s} {}",
                        error_code(&text)
                    ))
                    .into());
                }
                None => {
                    return Err(ChatError::Unavailable(format!("{method_name}: {text}")).into());
                }
            }
        }
    }
}

/// `https://smba…/teams/` with exactly one trailing slash.
fn base(service_url: &str) -> String {
    format!("{}/", service_url.trim_end_matches('/'))
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ChatError> {
    serde_json::from_value(v).map_err(|e| ChatError::Api(format!("unexpected answer: {e}")))
}

/// The Connector's `{"error":{"code":…}}`, for the log line.
fn error_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}
