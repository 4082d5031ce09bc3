//! A fake Slack for tests: the Web API (`/api/{method}`), `response_url`
//! endpoints and a Socket Mode WebSocket on `127.0.0.1:<ephemeral port>`, plain
//! HTTP. The real slack-morphism client talks to it (built with an
//! `https_or_http` connector and `with_slack_api_url(&fake.api_url())`).
//!
//! What it checks, so a passing test means something:
//! - every call carries a token of the right kind (`xoxb-`/`xoxp-` for the Web
//!   API, `xapp-` for `apps.connections.open`);
//! - every message, modal and `response_url` body keeps Block Kit's documented
//!   limits; a break is recorded as a [`Violation`] and answered as Slack does
//!   (`invalid_blocks` for messages, `invalid_arguments` for views);
//! - no broadcast mention (`<!here>`, `<!channel>`, `<!everyone>`) reaches a
//!   message unless [`FakeSlack::allow_broadcast`] was called (Slack would
//!   accept and ping everyone, so the call succeeds and a violation is recorded);
//! - `chat.update` only updates a message that was posted; `views.open` needs a
//!   trigger id this fake issued, unused and at most 3 s old; a `response_url`
//!   takes at most 5 posts.
//! - with [`FakeSlack::enforce_rate_limits`] (off by default), Slack's rate
//!   limits: `chat.postMessage` about one a second per channel after a short
//!   burst, `chat.update` Tier 3 (about 50 a minute, workspace-wide); over them
//!   the answer is HTTP 429, `Retry-After: <seconds>`, `{"ok":false,"error":"ratelimited"}`.
//!
//! Self-contained on purpose (no bot types, no test-only shortcuts), so it can
//! move into a crate of its own for `rerun-bot demo`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::sync::{Notify, mpsc, oneshot};

pub const TEAM_ID: &str = "T_FAKE";
pub const TEAM_DOMAIN: &str = "example";
pub const APP_ID: &str = "A1";
pub const BOT_USER_ID: &str = "U_BOT";
pub const BOT_ID: &str = "B_BOT";

/// How long `next_*` and `socket_send` wait before they panic.
const WAIT: Duration = Duration::from_secs(10);
/// Slack's trigger ids expire after 3 seconds and work once.
const TRIGGER_TTL: Duration = Duration::from_secs(3);
/// Slack's `response_url`s take up to 5 posts.
const RESPONSE_URL_USES: usize = 5;
/// The methods whose every successful call a test must read (`assert_all_taken`).
const WATCHED: [&str; 4] = [
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "views.open",
];

/// One Web API request as the fake saw it: `params` merges query string, JSON
/// body and form body into one object (JSON-encoded form values such as
/// `blocks` or `view` are decoded); `response` is the body the fake answered.
#[derive(Debug, Clone)]
pub struct ApiCall {
    pub method: String,
    pub params: Value,
    pub at: Instant,
    pub status: u16,
    pub response: Value,
}

impl ApiCall {
    /// `true` when the fake answered HTTP 200 with `"ok": true`.
    pub fn ok(&self) -> bool {
        self.status == 200 && self.response["ok"] == json!(true)
    }

    /// The Slack error code of a failed attempt (`ratelimited`, `invalid_blocks`, …).
    pub fn error(&self) -> Option<&str> {
        self.response["error"].as_str()
    }

    fn summary(&self) -> String {
        let p = &self.params;
        let mut parts = Vec::new();
        for key in [
            "channel",
            "ts",
            "thread_ts",
            "user",
            "trigger_id",
            "view_id",
        ] {
            if let Some(v) = p.get(key).and_then(Value::as_str) {
                parts.push(format!("{key}={v}"));
            }
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            parts.push(format!("text={:?}", cut(t, 80)));
        }
        let outcome = if self.ok() {
            "ok".to_string()
        } else {
            format!("HTTP {} {}", self.status, self.error().unwrap_or(""))
        };
        format!("{}({}) → {}", self.method, parts.join(", "), outcome)
    }
}

/// A POST to a `response_url` handed out by [`FakeSlack::response_url`].
#[derive(Debug, Clone)]
pub struct ResponseUrlPost {
    pub url: String,
    pub body: Value,
    pub at: Instant,
}

impl ResponseUrlPost {
    /// The body as a [`Message`] (channel and ts empty: Slack does not say).
    pub fn message(&self) -> Message {
        Message {
            channel: String::new(),
            ts: String::new(),
            thread_ts: str_of(&self.body, "thread_ts"),
            user: None,
            text: str_of(&self.body, "text").unwrap_or_default(),
            blocks: blocks_of(&self.body),
            raw: self.body.clone(),
        }
    }

    pub fn render(&self) -> String {
        self.message().render()
    }
}

/// A broken rule: which method (or `response_url`) and what, in Slack's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub method: String,
    pub error: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.method, self.error)
    }
}

/// What a user puts into a modal input, for [`FakeSlack::view_submission_payload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewValue {
    /// `plain_text_input` (and the other text-like inputs: number, email, url,
    /// date `YYYY-MM-DD`, time `HH:mm`, a user/channel/conversation id).
    Text(String),
    /// `static_select` or `radio_buttons`: the chosen option's `value`.
    Option(String),
    /// `checkboxes` or `multi_static_select`: the chosen options' values.
    Options(Vec<String>),
}

/// A message the bot sent (`chat.postMessage`, `chat.update`, `chat.postEphemeral`).
#[derive(Debug, Clone)]
pub struct Message {
    pub channel: String,
    /// The ts Slack returned for a post; the ts being updated for an update;
    /// `message_ts` for an ephemeral message.
    pub ts: String,
    pub thread_ts: Option<String>,
    /// The recipient of an ephemeral message.
    pub user: Option<String>,
    /// Top-level (fallback) text.
    pub text: String,
    /// Always a JSON array (empty when none were sent).
    pub blocks: Value,
    /// The request parameters as sent.
    pub raw: Value,
}

impl Message {
    fn from_call(call: &ApiCall) -> Message {
        let p = &call.params;
        let ts = match call.method.as_str() {
            "chat.postMessage" => str_of(&call.response, "ts"),
            "chat.postEphemeral" => str_of(&call.response, "message_ts"),
            _ => str_of(p, "ts"),
        };
        Message {
            channel: str_of(p, "channel").unwrap_or_default(),
            ts: ts.unwrap_or_default(),
            thread_ts: str_of(p, "thread_ts"),
            user: if call.method == "chat.postEphemeral" {
                str_of(p, "user")
            } else {
                None
            },
            text: str_of(p, "text").unwrap_or_default(),
            blocks: blocks_of(p),
            raw: p.clone(),
        }
    }

    /// A plain rendering of the blocks (the fallback text when there are none),
    /// one block per paragraph: `# header`, section text, fields as `- field`,
    /// context elements joined by ` | `, `---` for dividers, buttons as
    /// `[Rerun](rerun)`, inputs as `label: [plain_text_input](action_id)`.
    pub fn render(&self) -> String {
        if self.blocks.as_array().is_none_or(|b| b.is_empty()) {
            return self.text.clone();
        }
        render_blocks(&self.blocks)
    }

    /// The button with this `action_id` (in an actions block or a section accessory).
    pub fn button(&self, action_id: &str) -> Option<Value> {
        find_button(&self.blocks, action_id).map(|(_, button)| button.clone())
    }

    pub fn has_button(&self, action_id: &str) -> bool {
        self.button(action_id).is_some()
    }

    /// Every button's `action_id`, in order.
    pub fn buttons(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (_, el) in interactive_elements(&self.blocks) {
            if el["type"] == "button"
                && let Some(id) = el["action_id"].as_str()
            {
                out.push(id.to_string());
            }
        }
        out
    }
}

enum Fault {
    RateLimit(u64),
    Status(u16),
    Error(String),
    Delay(Duration),
    /// Done at once, answered late.
    DelayReply(Duration),
}

/// Slack's rate limits as the fake enforces them ([`FakeSlack::enforce_rate_limits`]):
/// token buckets that hold `*_burst` calls and refill one per `*_every`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// `chat.postMessage` per channel (thread replies included).
    pub post_burst: u32,
    pub post_every: Duration,
    /// `chat.update`, the whole workspace (Tier 3 is per method and workspace).
    pub update_burst: u32,
    pub update_every: Duration,
}

impl RateLimits {
    /// As Slack documents them: "1 message per second per channel", short
    /// bursts allowed (5 here); `chat.update` Tier 3, 50 a minute (burst 10).
    pub fn slack() -> Self {
        RateLimits {
            post_burst: 5,
            post_every: Duration::from_secs(1),
            update_burst: 10,
            update_every: Duration::from_millis(1200),
        }
    }

    /// The bucket `method` draws from (`None`: not limited).
    fn bucket(&self, method: &str, params: &Value) -> Option<(String, u32, Duration)> {
        match method {
            "chat.postMessage" => Some((
                format!(
                    "chat.postMessage {}",
                    str_of(params, "channel").unwrap_or_default()
                ),
                self.post_burst,
                self.post_every,
            )),
            "chat.update" => Some(("chat.update".into(), self.update_burst, self.update_every)),
            _ => None,
        }
    }
}

/// One token bucket: `tokens` as of `at`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes a token, or says how long until there is one.
    fn take(&mut self, now: Instant, burst: u32, every: Duration) -> Result<(), Duration> {
        let every = every.as_secs_f64().max(1e-6);
        let refill = now.saturating_duration_since(self.at).as_secs_f64() / every;
        self.tokens = (self.tokens + refill).min(f64::from(burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) * every))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelState {
    NotMember,
    Archived,
    Missing,
}

struct StoredView {
    id: String,
    /// Every `view` parameter the bot sent for it (open, then updates).
    submitted: Vec<Value>,
    /// The view as the fake answered it (id, hash, state, …).
    stateful: Value,
}

struct Socket {
    id: u64,
    out: mpsc::UnboundedSender<Option<String>>,
}

#[derive(Default)]
struct FakeState {
    calls: Vec<ApiCall>,
    taken: Vec<bool>,
    attempts: Vec<ApiCall>,
    responses: Vec<ResponseUrlPost>,
    responses_taken: Vec<bool>,
    response_urls: HashMap<u64, usize>,
    violations: Vec<Violation>,
    allow_broadcast: bool,
    faults: HashMap<String, VecDeque<Fault>>,
    users: HashMap<String, String>,
    usergroups: HashMap<String, Vec<String>>,
    channels: HashMap<String, ChannelState>,
    /// (channel, ts) → the message as it now stands.
    messages: HashMap<(String, String), Value>,
    views: Vec<StoredView>,
    triggers: HashMap<String, (Instant, bool)>,
    seq: u64,
    ts_seq: u64,
    sockets: Vec<Socket>,
    pending_acks: HashMap<String, oneshot::Sender<Value>>,
    socket_acks: Vec<Value>,
    rate_limits: Option<RateLimits>,
    buckets: HashMap<String, Bucket>,
    /// Attempts the rate limiter answered 429, by method.
    throttled: HashMap<String, usize>,
}

impl FakeState {
    /// `Some(retry_after_secs)` when `method` is over its rate limit now.
    fn throttle(&mut self, method: &str, params: &Value, now: Instant) -> Option<u64> {
        let (key, burst, every) = self.rate_limits?.bucket(method, params)?;
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: f64::from(burst),
            at: now,
        });
        let wait = bucket.take(now, burst, every).err()?;
        *self.throttled.entry(method.to_string()).or_default() += 1;
        // Slack's Retry-After is whole seconds.
        Some(wait.as_secs_f64().ceil().max(1.0) as u64)
    }

    fn next_id(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Unique, increasing, Slack-shaped: `1700000000.000100`, `…000200`, …
    fn next_ts(&mut self) -> String {
        self.ts_seq += 1;
        let micros = 1_700_000_000_000_000u64 + self.ts_seq * 100;
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }

    fn user_name(&self, user: &str) -> String {
        self.users.get(user).cloned().unwrap_or_else(|| {
            user.trim_start_matches("U_")
                .trim_start_matches('U')
                .to_lowercase()
        })
    }

    fn violate(&mut self, method: &str, errors: &[String]) {
        for e in errors {
            self.violations.push(Violation {
                method: method.to_string(),
                error: e.clone(),
            });
        }
    }
}

struct Inner {
    addr: SocketAddr,
    signing_secret: String,
    state: Mutex<FakeState>,
    changed: Notify,
}

/// The fake Slack. Cheap to clone; all clones share one server.
#[derive(Clone)]
pub struct FakeSlack {
    inner: Arc<Inner>,
}

impl fmt::Debug for FakeSlack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FakeSlack({})", self.inner.addr)
    }
}

impl FakeSlack {
    /// Starts the server on an ephemeral loopback port (on the current runtime).
    pub async fn start(signing_secret: &str) -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake Slack: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake Slack: local addr");
        let fake = FakeSlack {
            inner: Arc::new(Inner {
                addr,
                signing_secret: signing_secret.to_string(),
                state: Mutex::new(FakeState::default()),
                changed: Notify::new(),
            }),
        };
        let app = Router::new()
            .route("/socket", get(socket_upgrade))
            .route("/response/{n}", any(response_post))
            .fallback(api)
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT/api/` (slack-morphism joins `{url}/{method}`;
    /// the fake accepts the doubled slash too).
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.inner.addr)
    }

    pub fn signing_secret(&self) -> &str {
        &self.inner.signing_secret
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ----- what was called -------------------------------------------------

    /// Successful calls of `method`, in order (taken or not).
    pub fn calls(&self, method: &str) -> Vec<ApiCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Every successful call, in order.
    pub fn all_calls(&self) -> Vec<ApiCall> {
        self.lock().calls.clone()
    }

    /// The successful calls after the first `n`, in order: a reader that
    /// keeps its own count follows the workspace without copying it all.
    pub fn calls_since(&self, n: usize) -> Vec<ApiCall> {
        self.lock().calls.iter().skip(n).cloned().collect()
    }

    /// How many times `method` was tried, failed attempts (429, 5xx, Slack
    /// errors, bad auth, invalid blocks) included.
    pub fn attempts(&self, method: &str) -> usize {
        self.lock()
            .attempts
            .iter()
            .filter(|c| c.method == method)
            .count()
    }

    /// Every attempt at `method`, failed ones included, with status and answer.
    pub fn attempt_log(&self, method: &str) -> Vec<ApiCall> {
        self.lock()
            .attempts
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Every `response_url` post, in order (taken or not).
    pub fn responses(&self) -> Vec<ResponseUrlPost> {
        self.lock().responses.clone()
    }

    /// A message as it now stands after updates (`None` if never posted).
    pub fn current_message(&self, channel: &str, ts: &str) -> Option<Value> {
        self.lock()
            .messages
            .get(&(channel.to_string(), ts.to_string()))
            .cloned()
    }

    fn describe(&self) -> String {
        let st = self.lock();
        let mut out = String::new();
        for c in &st.attempts {
            out.push_str("\n  ");
            out.push_str(&c.summary());
        }
        for r in &st.responses {
            out.push_str(&format!(
                "\n  POST {} text={:?}",
                r.url,
                cut(r.body["text"].as_str().unwrap_or(""), 80)
            ));
        }
        if out.is_empty() {
            out.push_str(" (nothing)");
        }
        out
    }

    /// The next successful call of `method` that no `next_*` has taken yet;
    /// waits up to 10 s, then panics listing everything that was called.
    pub async fn next_call(&self, method: &str) -> ApiCall {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let changed = self.inner.changed.notified();
            {
                let mut st = self.lock();
                if let Some(i) =
                    (0..st.calls.len()).find(|&i| !st.taken[i] && st.calls[i].method == method)
                {
                    st.taken[i] = true;
                    return st.calls[i].clone();
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "fake Slack: no new {method} within {WAIT:?}; calls so far:{}",
                    self.describe()
                );
            }
        }
    }

    pub async fn next_message(&self) -> Message {
        Message::from_call(&self.next_call("chat.postMessage").await)
    }

    pub async fn next_update(&self) -> Message {
        Message::from_call(&self.next_call("chat.update").await)
    }

    /// Every `chat.update` of the message `ts` so far, in order; marks them taken.
    pub fn updates_of(&self, ts: &str) -> Vec<Message> {
        let mut st = self.lock();
        let mut out = Vec::new();
        for i in 0..st.calls.len() {
            if st.calls[i].method == "chat.update" && st.calls[i].params["ts"] == ts {
                st.taken[i] = true;
                out.push(Message::from_call(&st.calls[i]));
            }
        }
        out
    }

    pub async fn next_ephemeral(&self) -> Message {
        Message::from_call(&self.next_call("chat.postEphemeral").await)
    }

    /// The next `response_url` post not yet taken; waits up to 10 s.
    pub async fn next_response(&self) -> ResponseUrlPost {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let changed = self.inner.changed.notified();
            {
                let mut st = self.lock();
                if let Some(i) = st.responses_taken.iter().position(|t| !t) {
                    st.responses_taken[i] = true;
                    return st.responses[i].clone();
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "fake Slack: no new response_url post within {WAIT:?}; calls so far:{}",
                    self.describe()
                );
            }
        }
    }

    /// Waits `d` and panics if, meanwhile, a new message, update, ephemeral
    /// message, modal or `response_url` post arrived that nobody has taken.
    pub async fn expect_quiet(&self, d: Duration) {
        let (calls_before, responses_before) = {
            let st = self.lock();
            (st.calls.len(), st.responses.len())
        };
        tokio::time::sleep(d).await;
        let st = self.lock();
        let mut news = Vec::new();
        for (i, c) in st.calls.iter().enumerate().skip(calls_before) {
            if !st.taken[i] && WATCHED.contains(&c.method.as_str()) {
                news.push(c.summary());
            }
        }
        for (i, r) in st.responses.iter().enumerate().skip(responses_before) {
            if !st.responses_taken[i] {
                news.push(format!("POST {} {}", r.url, r.body));
            }
        }
        drop(st);
        assert!(
            news.is_empty(),
            "fake Slack: expected quiet for {d:?}, got:\n  {}",
            news.join("\n  ")
        );
    }

    /// Panics listing every message, update, ephemeral message, modal and
    /// `response_url` post that no `next_*` took: a test reads all the bot sent.
    pub fn assert_all_taken(&self) {
        let st = self.lock();
        let mut left = Vec::new();
        for (i, c) in st.calls.iter().enumerate() {
            if !st.taken[i] && WATCHED.contains(&c.method.as_str()) {
                left.push(c.summary());
            }
        }
        for (i, r) in st.responses.iter().enumerate() {
            if !st.responses_taken[i] {
                left.push(format!("POST {} {}", r.url, r.body));
            }
        }
        drop(st);
        crate::report::assert_none("fake Slack: the test never looked at", &left);
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.lock().violations.clone()
    }

    /// Returns and forgets the violations (for tests that provoke them on purpose).
    pub fn take_violations(&self) -> Vec<Violation> {
        std::mem::take(&mut self.lock().violations)
    }

    pub fn assert_no_violations(&self) {
        let v = self.violations();
        crate::report::assert_none(
            &format!(
                "fake Slack: {} Block Kit / Slack rule violation(s)",
                v.len()
            ),
            &v,
        );
    }

    /// From now on broadcast mentions are not violations.
    pub fn allow_broadcast(&self) {
        self.lock().allow_broadcast = true;
    }

    // ----- faults ----------------------------------------------------------

    fn push_fault(&self, method: &str, times: usize, fault: impl Fn() -> Fault) {
        let mut st = self.lock();
        let q = st.faults.entry(method.to_string()).or_default();
        for _ in 0..times {
            q.push_back(fault());
        }
    }

    /// The next `times` attempts at `method` get HTTP 429, `Retry-After:
    /// retry_after_secs`, body `{"ok":false,"error":"ratelimited"}`.
    pub fn rate_limit_next(&self, method: &str, times: usize, retry_after_secs: u64) {
        self.push_fault(method, times, || Fault::RateLimit(retry_after_secs));
    }

    /// From now on `chat.postMessage` and `chat.update` are held to `limits`
    /// (e.g. [`RateLimits::slack`]); off until called.
    pub fn enforce_rate_limits(&self, limits: RateLimits) {
        let mut st = self.lock();
        st.rate_limits = Some(limits);
        st.buckets.clear();
    }

    /// How many attempts at `method` were answered HTTP 429 (by the rate
    /// limiter or by [`FakeSlack::rate_limit_next`]).
    pub fn rate_limited(&self, method: &str) -> usize {
        self.lock()
            .attempts
            .iter()
            .filter(|c| c.method == method && c.status == 429)
            .count()
    }

    /// How many attempts at `method` the rate limiter answered 429.
    pub fn throttled(&self, method: &str) -> usize {
        self.lock().throttled.get(method).copied().unwrap_or(0)
    }

    /// Messages posted at the top level of `channel` (not into a thread).
    pub fn top_level_posts(&self, channel: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| {
                c.method == "chat.postMessage"
                    && c.response["channel"].as_str() == Some(channel)
                    && str_of(&c.params, "thread_ts").is_none_or(|t| t.is_empty())
            })
            .count()
    }

    /// The next `times` attempts at `method` get this HTTP status (500, 503, …).
    pub fn fail_next(&self, method: &str, times: usize, status: u16) {
        self.push_fault(method, times, || Fault::Status(status));
    }

    /// The next `times` attempts at `method` get HTTP 200 `{"ok":false,"error":error}`.
    pub fn error_next(&self, method: &str, times: usize, error: &str) {
        self.push_fault(method, times, || Fault::Error(error.to_string()));
    }

    /// The next `times` attempts at `method` are answered (normally) after `delay`.
    pub fn delay_next(&self, method: &str, times: usize, delay: Duration) {
        self.push_fault(method, times, || Fault::Delay(delay));
    }

    /// The next `times` attempts at `method` are carried out at once (a
    /// message is posted) but answered only after `delay`: Slack did it, its
    /// answer is slow.
    pub fn delay_reply_next(&self, method: &str, times: usize, delay: Duration) {
        self.push_fault(method, times, || Fault::DelayReply(delay));
    }

    // ----- world -----------------------------------------------------------

    pub fn add_user(&self, id: &str, name: &str) {
        self.lock().users.insert(id.to_string(), name.to_string());
    }

    pub fn add_usergroup(&self, id: &str, members: &[&str]) {
        self.lock().usergroups.insert(
            id.to_string(),
            members.iter().map(|m| m.to_string()).collect(),
        );
    }

    /// Posting there answers `not_in_channel` from now on.
    pub fn remove_bot_from(&self, channel: &str) {
        self.lock()
            .channels
            .insert(channel.to_string(), ChannelState::NotMember);
    }

    /// Posting or updating there answers `is_archived` (Slack's code) from now on.
    pub fn archive_channel(&self, channel: &str) {
        self.lock()
            .channels
            .insert(channel.to_string(), ChannelState::Archived);
    }

    /// Everything about this channel answers `channel_not_found` from now on.
    pub fn delete_channel(&self, channel: &str) {
        self.lock()
            .channels
            .insert(channel.to_string(), ChannelState::Missing);
    }

    /// A fresh `http://127.0.0.1:PORT/response/<n>` that takes up to 5 posts.
    pub fn response_url(&self) -> String {
        let mut st = self.lock();
        let n = st.next_id();
        st.response_urls.insert(n, 0);
        format!("http://{}/response/{n}", self.inner.addr)
    }

    /// A fresh trigger id, valid for one `views.open`/`views.push` within 3 s.
    pub fn trigger_id(&self) -> String {
        let mut st = self.lock();
        let n = st.next_id();
        let id = format!("{}.{}.{:032x}", 1_700_000_000_000u64 + n, 42, n);
        st.triggers.insert(id.clone(), (Instant::now(), false));
        id
    }

    // ----- what Slack sends to the bot --------------------------------------

    /// `v0=` + hex HMAC-SHA256(signing secret, `v0:{ts}:{body}`), the value of
    /// `X-Slack-Signature` for `X-Slack-Request-Timestamp: ts`.
    pub fn sign(&self, ts: i64, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.inner.signing_secret.as_bytes())
            .expect("HMAC takes any key");
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn user_obj(&self, user: &str) -> Value {
        let name = self.lock().user_name(user);
        json!({"id": user, "username": name, "name": name, "team_id": TEAM_ID})
    }

    /// The `block_actions` payload Slack sends when `user` clicks the button
    /// `action_id` on `message`. Panics if the message has no such button.
    /// Clicks on an ephemeral message carry no `message` (as in Slack).
    pub fn block_action_payload(&self, user: &str, message: &Message, action_id: &str) -> Value {
        let Some((block_id, button)) = find_button(&message.blocks, action_id) else {
            panic!(
                "fake Slack: the message has no button {action_id:?} (buttons: {:?}):\n{}",
                message.buttons(),
                message.render()
            );
        };
        let block_id = block_id.to_string();
        let button = button.clone();
        let ephemeral = message.user.is_some();
        let mut action = json!({
            "type": "button",
            "action_id": action_id,
            "block_id": block_id,
            "text": button["text"],
            "action_ts": now_ts(),
        });
        if let Some(v) = button.get("value") {
            action["value"] = v.clone();
        }
        if let Some(s) = button.get("style") {
            action["style"] = s.clone();
        }
        let mut payload = json!({
            "type": "block_actions",
            "user": self.user_obj(user),
            "api_app_id": APP_ID,
            "token": "fake-verification-token",
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": self.trigger_id(),
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "enterprise": null,
            "is_enterprise_install": false,
            "channel": {"id": message.channel, "name": channel_name(&message.channel)},
            "state": {"values": {}},
            "response_url": self.response_url(),
            "actions": [action],
        });
        if !ephemeral {
            let mut m = json!({
                "type": "message",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "app_id": APP_ID,
                "team": TEAM_ID,
                "ts": message.ts,
                "text": message.text,
                "blocks": with_block_ids(&message.blocks),
            });
            if let Some(t) = &message.thread_ts {
                m["thread_ts"] = json!(t);
            }
            payload["message"] = m;
        }
        payload
    }

    /// The `view_submission` payload for `view` (the `view` parameter the bot
    /// sent to `views.open`, or the view Slack answered), with `values` typed
    /// into its inputs, keyed by block id (the bot's block and action ids are
    /// equal). Inputs not mentioned keep their initial value, as in Slack.
    pub fn view_submission_payload(
        &self,
        user: &str,
        view: &Value,
        values: &[(&str, ViewValue)],
    ) -> Value {
        let stateful = self.stateful_view(view);
        let blocks = stateful["blocks"].as_array().cloned().unwrap_or_default();
        let mut state = Map::new();
        let mut known = Vec::new();
        for (i, block) in blocks.iter().enumerate() {
            if block["type"] != "input" {
                continue;
            }
            let block_id = block["block_id"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("b{i}"));
            let el = &block["element"];
            let action_id = el["action_id"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("a{i}"));
            let given = values.iter().find(|(k, _)| *k == block_id).map(|(_, v)| v);
            known.push(block_id.clone());
            state.insert(
                block_id.clone(),
                json!({ action_id: input_state(el, &block_id, given) }),
            );
        }
        for (k, _) in values {
            assert!(
                known.iter().any(|b| b == k),
                "fake Slack: the view has no input block {k:?} (inputs: {known:?})"
            );
        }
        let mut v = stateful;
        v["state"] = json!({"values": state});
        json!({
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "user": self.user_obj(user),
            "api_app_id": APP_ID,
            "token": "fake-verification-token",
            "trigger_id": self.trigger_id(),
            "view": v,
            "response_urls": [],
            "enterprise": null,
            "is_enterprise_install": false,
        })
    }

    fn stateful_view(&self, view: &Value) -> Value {
        let mut st = self.lock();
        let found = st
            .views
            .iter()
            .rev()
            .find(|s| {
                s.submitted.contains(view)
                    || (view.get("id").is_some() && view["id"] == json!(s.id))
            })
            .map(|s| s.stateful.clone());
        match found {
            Some(v) => v,
            None => {
                let id = format!("V{:010}", st.next_id());
                drop(st);
                stateful_of(view, &id)
            }
        }
    }

    /// The fields Slack sends for `/command text` typed by `user` in `channel`
    /// (`text` is passed as given: callers write it the way Slack encodes it).
    pub fn slash_command_fields(
        &self,
        user: &str,
        channel: &str,
        command: &str,
        text: &str,
    ) -> Vec<(String, String)> {
        let user_name = self.lock().user_name(user);
        vec![
            ("token".into(), "fake-verification-token".into()),
            ("team_id".into(), TEAM_ID.into()),
            ("team_domain".into(), TEAM_DOMAIN.into()),
            ("channel_id".into(), channel.into()),
            ("channel_name".into(), channel_name(channel)),
            ("user_id".into(), user.into()),
            ("user_name".into(), user_name),
            ("command".into(), command.into()),
            ("text".into(), text.into()),
            ("api_app_id".into(), APP_ID.into()),
            ("is_enterprise_install".into(), "false".into()),
            ("response_url".into(), self.response_url()),
            ("trigger_id".into(), self.trigger_id()),
        ]
    }

    /// The `application/x-www-form-urlencoded` body of a slash command request.
    pub fn slash_command_form(
        &self,
        user: &str,
        channel: &str,
        command: &str,
        text: &str,
    ) -> String {
        serde_urlencoded::to_string(self.slash_command_fields(user, channel, command, text))
            .expect("form encodes")
    }

    /// The same slash command as the JSON payload of a Socket Mode envelope.
    pub fn slash_command_payload(
        &self,
        user: &str,
        channel: &str,
        command: &str,
        text: &str,
    ) -> Value {
        let map: Map<String, Value> = self
            .slash_command_fields(user, channel, command, text)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        Value::Object(map)
    }

    /// `payload=<urlencoded JSON>`, the body of an interactivity request.
    pub fn interaction_form(payload: &Value) -> String {
        serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form encodes")
    }

    // ----- Socket Mode -----------------------------------------------------

    /// Live Socket Mode connections.
    pub fn socket_connections(&self) -> usize {
        self.lock().sockets.len()
    }

    /// Every ack received on Socket Mode connections, in order.
    pub fn socket_acks(&self) -> Vec<Value> {
        self.lock().socket_acks.clone()
    }

    /// Sends `{"type":"disconnect","reason":"refresh_requested"}` on every
    /// connection and closes it, as Slack does before it rotates hosts.
    pub fn socket_disconnect_all(&self) {
        let st = self.lock();
        let msg = json!({"type": "disconnect", "reason": "refresh_requested",
                         "debug_info": {"host": "fake-slack"}})
        .to_string();
        for s in &st.sockets {
            let _ = s.out.send(Some(msg.clone()));
            let _ = s.out.send(None);
        }
    }

    /// Sends `payload` in an envelope of `envelope_type` (`interactive`,
    /// `slash_commands`, `events_api`) to a connected Socket Mode client
    /// (waiting up to 10 s for one) and returns its ack
    /// (`{"envelope_id":…, "payload"?:…}`); panics after 10 s without one.
    pub async fn socket_send(&self, envelope_type: &str, payload: Value) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        let accepts_response_payload = match envelope_type {
            "interactive" => matches!(
                payload["type"].as_str(),
                Some("view_submission" | "block_suggestion")
            ),
            "slash_commands" => true,
            _ => false,
        };
        let (out, envelope_id, ack) = loop {
            let changed = self.inner.changed.notified();
            {
                let mut st = self.lock();
                if let Some(out) = st.sockets.first().map(|s| s.out.clone()) {
                    let n = st.next_id();
                    let envelope_id = format!("{n:08x}-f4ce-4a0e-8e1f-{n:012x}");
                    let (tx, rx) = oneshot::channel();
                    st.pending_acks.insert(envelope_id.clone(), tx);
                    break (out, envelope_id, rx);
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "fake Slack: no Socket Mode connection within {WAIT:?} (apps.connections.open attempts: {})",
                    self.attempts("apps.connections.open")
                );
            }
        };
        let mut envelope = json!({
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        });
        if envelope_type == "events_api" {
            envelope["retry_attempt"] = json!(0);
            envelope["retry_reason"] = json!("");
        }
        out.send(Some(envelope.to_string())).unwrap_or_else(|_| {
            panic!("fake Slack: the Socket Mode connection closed before {envelope_id} was sent")
        });
        match tokio::time::timeout(WAIT, ack).await {
            Ok(Ok(ack)) => ack,
            _ => panic!(
                "fake Slack: no ack for {envelope_type} envelope {envelope_id} within {WAIT:?}"
            ),
        }
    }

    async fn serve_socket(self, socket: WebSocket) {
        let (mut tx, mut rx) = socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Option<String>>();
        let id = {
            let mut st = self.lock();
            let id = st.next_id();
            let hello = json!({
                "type": "hello",
                "num_connections": st.sockets.len() + 1,
                "debug_info": {"host": "fake-slack", "build_number": 1, "approximate_connection_time": 18060},
                "connection_info": {"app_id": APP_ID},
            });
            let _ = out.send(Some(hello.to_string()));
            st.sockets.push(Socket { id, out });
            id
        };
        self.inner.changed.notify_waiters();
        let writer = tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                match frame {
                    Some(text) => {
                        if tx.send(WsMessage::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                    None => {
                        let _ = tx.send(WsMessage::Close(None)).await;
                        break;
                    }
                }
            }
        });
        while let Some(Ok(frame)) = rx.next().await {
            match frame {
                WsMessage::Text(text) => {
                    let Ok(ack) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    let Some(envelope_id) = ack["envelope_id"].as_str().map(str::to_string) else {
                        continue;
                    };
                    let mut st = self.lock();
                    st.socket_acks.push(ack.clone());
                    if let Some(waiter) = st.pending_acks.remove(&envelope_id) {
                        let _ = waiter.send(ack);
                    }
                }
                WsMessage::Close(_) => break,
                _ => {}
            }
        }
        self.lock().sockets.retain(|s| s.id != id);
        self.inner.changed.notify_waiters();
        writer.abort();
    }

    // ----- the Web API -----------------------------------------------------

    async fn handle_api(&self, method: String, params: Value, bearer: Option<String>) -> Response {
        let at = Instant::now();
        let token = bearer.or_else(|| str_of(&params, "token"));
        let auth_error = auth_error(&method, token.as_deref());
        let (mut delay, mut reply_delay) = (None, None);
        let (status, body, retry_after) = if let Some(e) = auth_error {
            (200, json!({"ok": false, "error": e}), None)
        } else {
            let fault = {
                let mut st = self.lock();
                st.faults.get_mut(&method).and_then(|q| q.pop_front())
            };
            let fault = fault.or_else(|| {
                self.lock()
                    .throttle(&method, &params, at)
                    .map(Fault::RateLimit)
            });
            match fault {
                Some(Fault::RateLimit(secs)) => (
                    429,
                    json!({"ok": false, "error": "ratelimited"}),
                    Some(secs),
                ),
                Some(Fault::Status(code)) => (
                    code,
                    json!({"ok": false, "error": format!("fake_http_{code}")}),
                    None,
                ),
                Some(Fault::Error(e)) => (200, json!({"ok": false, "error": e}), None),
                Some(Fault::Delay(d)) => {
                    delay = Some(d);
                    (200, Value::Null, None)
                }
                Some(Fault::DelayReply(d)) => {
                    reply_delay = Some(d);
                    (200, Value::Null, None)
                }
                None => (200, Value::Null, None),
            }
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let body = if body.is_null() {
            self.dispatch(&method, &params)
        } else {
            body
        };
        let call = ApiCall {
            method,
            params,
            at,
            status,
            response: body.clone(),
        };
        {
            let mut st = self.lock();
            st.attempts.push(call.clone());
            if call.ok() {
                st.calls.push(call);
                st.taken.push(false);
            }
        }
        self.inner.changed.notify_waiters();
        if let Some(d) = reply_delay {
            tokio::time::sleep(d).await;
        }

        let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status >= 500 {
            // Slack's edge answers 5xx with an HTML page, not JSON.
            return (
                status_code,
                [(header::CONTENT_TYPE, "text/html")],
                format!("<html><body>fake Slack: HTTP {status}</body></html>"),
            )
                .into_response();
        }
        let mut res = (
            status_code,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body.to_string(),
        )
            .into_response();
        if let Some(secs) = retry_after {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                secs.to_string().parse().expect("number header"),
            );
        }
        res
    }

    fn dispatch(&self, method: &str, p: &Value) -> Value {
        let mut st = self.lock();
        let result = match method {
            "chat.postMessage" => chat_post_message(&mut st, p),
            "chat.update" => chat_update(&mut st, p),
            "chat.postEphemeral" => chat_post_ephemeral(&mut st, p),
            "chat.delete" => chat_delete(&mut st, p),
            "chat.getPermalink" => chat_get_permalink(&st, p),
            "views.open" | "views.push" => views_open(&mut st, method, p),
            "views.update" => views_update(&mut st, p),
            "views.publish" => views_publish(&mut st, p),
            "auth.test" => Ok(json!({
                "url": format!("https://{TEAM_DOMAIN}.slack.com/"),
                "team": "Example",
                "user": "rerun-bot",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": false,
            })),
            "users.info" => {
                let id = str_of(p, "user").unwrap_or_default();
                match st.users.get(&id) {
                    Some(name) => Ok(json!({"user": user_json(&id, name)})),
                    None => Err(json!({"error": "user_not_found"})),
                }
            }
            "usergroups.users.list" => {
                let id = str_of(p, "usergroup").unwrap_or_default();
                match st.usergroups.get(&id) {
                    Some(members) => Ok(json!({"users": members})),
                    None => Err(json!({"error": "no_such_subteam"})),
                }
            }
            "conversations.info" => {
                let id = str_of(p, "channel").unwrap_or_default();
                match st.channels.get(&id).copied() {
                    Some(ChannelState::Missing) => Err(json!({"error": "channel_not_found"})),
                    _ if id.is_empty() => Err(json!({"error": "channel_not_found"})),
                    state => Ok(json!({"channel": {
                        "id": id,
                        "name": channel_name(&id),
                        "name_normalized": channel_name(&id),
                        "created": 1_700_000_000,
                        "creator": "U_ADMIN",
                        "is_channel": true,
                        "is_group": false,
                        "is_im": false,
                        "is_private": false,
                        "is_archived": state == Some(ChannelState::Archived),
                        "is_member": state.is_none(),
                    }})),
                }
            }
            "apps.connections.open" => {
                let n = st.next_id();
                Ok(
                    json!({"url": format!("ws://{}/socket?ticket={n}&app_id={APP_ID}", self.inner.addr)}),
                )
            }
            _ => Err(json!({"error": "unknown_method"})),
        };
        let (ok, fields) = match result {
            Ok(v) => (true, v),
            Err(v) => (false, v),
        };
        let mut body = Map::new();
        body.insert("ok".into(), json!(ok));
        if let Value::Object(m) = fields {
            body.extend(m);
        }
        Value::Object(body)
    }

    async fn handle_response_post(&self, n: u64, params: Value) -> Response {
        let url = format!("http://{}/response/{n}", self.inner.addr);
        let reply = |code: StatusCode, body: Value| {
            (
                code,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        };
        let res = {
            let mut st = self.lock();
            match st.response_urls.get(&n).copied() {
                None => Err((
                    StatusCode::NOT_FOUND,
                    json!({"ok": false, "error": "no_such_url"}),
                )),
                Some(uses) if uses >= RESPONSE_URL_USES => {
                    st.violate(
                        "response_url",
                        &[format!("{url} used more than {RESPONSE_URL_USES} times")],
                    );
                    Err((
                        StatusCode::NOT_FOUND,
                        json!({"ok": false, "error": "used_url"}),
                    ))
                }
                Some(uses) => {
                    st.response_urls.insert(n, uses + 1);
                    let deleting = truthy(params.get("delete_original"));
                    let check = check_message(&params);
                    let allow = st.allow_broadcast;
                    st.violate("response_url", &check.broadcasts(allow));
                    if !check.errors.is_empty() {
                        st.violate("response_url", &check.errors);
                        Err((
                            StatusCode::OK,
                            json!({"ok": false, "error": "invalid_blocks", "errors": check.errors}),
                        ))
                    } else if !deleting && !has_content(&params) {
                        Err((StatusCode::OK, json!({"ok": false, "error": "no_text"})))
                    } else {
                        st.responses.push(ResponseUrlPost {
                            url,
                            body: params,
                            at: Instant::now(),
                        });
                        st.responses_taken.push(false);
                        Ok(())
                    }
                }
            }
        };
        self.inner.changed.notify_waiters();
        match res {
            Ok(()) => reply(StatusCode::OK, json!({"ok": true})),
            Err((code, body)) => reply(code, body),
        }
    }
}

// ----- HTTP plumbing ----------------------------------------------------------

async fn api(State(fake): State<FakeSlack>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let Some(method) = uri.path().strip_prefix("/api/") else {
        return (StatusCode::NOT_FOUND, "fake Slack: no such path").into_response();
    };
    let method = method.trim_matches('/').to_string();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let params = match parse_params(uri.query(), &content_type, &body) {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                json!({"ok": false, "error": e}).to_string(),
            )
                .into_response();
        }
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    fake.handle_api(method, params, bearer).await
}

async fn response_post(
    State(fake): State<FakeSlack>,
    Path(n): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut params = match parse_params(None, &content_type, &body) {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    // Incoming-webhook style `payload=<json>` is accepted too.
    if let Some(Value::String(s)) = params.get("payload")
        && let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(s)
    {
        params = v;
    }
    fake.handle_response_post(n, params).await
}

async fn socket_upgrade(State(fake): State<FakeSlack>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| fake.serve_socket(socket))
}

/// Query string, JSON body and form body merged into one object; form values
/// that hold JSON (`blocks`, `view`, …) are decoded.
fn parse_params(query: Option<&str>, content_type: &str, body: &[u8]) -> Result<Value, String> {
    let mut map = Map::new();
    let add_form = |s: &str, map: &mut Map<String, Value>| -> Result<(), String> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(s).map_err(|_| "invalid_form_data".to_string())?;
        for (k, v) in pairs {
            map.insert(k, Value::String(v));
        }
        Ok(())
    };
    if let Some(q) = query {
        add_form(q, &mut map)?;
    }
    let trimmed = String::from_utf8_lossy(body);
    let trimmed = trimmed.trim();
    if !trimmed.is_empty() {
        if content_type.starts_with("application/json")
            || (content_type.is_empty() && trimmed.starts_with('{'))
        {
            match serde_json::from_str::<Value>(trimmed) {
                Ok(Value::Object(m)) => map.extend(m),
                _ => return Err("invalid_json".to_string()),
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded")
            || content_type.is_empty()
        {
            add_form(trimmed, &mut map)?;
        } else {
            return Err("invalid_form_data".to_string());
        }
    }
    for key in ["blocks", "attachments", "view", "metadata"] {
        if let Some(Value::String(s)) = map.get(key)
            && let Ok(v @ (Value::Array(_) | Value::Object(_))) = serde_json::from_str::<Value>(s)
        {
            map.insert(key.to_string(), v);
        }
    }
    Ok(Value::Object(map))
}

fn auth_error(method: &str, token: Option<&str>) -> Option<&'static str> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Some("not_authed");
    };
    let app = token.starts_with("xapp-");
    let web = token.starts_with("xoxb-") || token.starts_with("xoxp-");
    if !app && !web {
        return Some("invalid_auth");
    }
    match method {
        "auth.test" => None,
        "apps.connections.open" if !app => Some("not_allowed_token_type"),
        "apps.connections.open" => None,
        _ if app => Some("not_allowed_token_type"),
        _ => None,
    }
}

// ----- methods ---------------------------------------------------------------

type MethodResult = Result<Value, Value>;

fn channel_check(st: &FakeState, channel: &str, posting: bool) -> Result<(), Value> {
    if channel.is_empty() {
        return Err(json!({"error": "channel_not_found"}));
    }
    match st.channels.get(channel) {
        Some(ChannelState::Missing) => Err(json!({"error": "channel_not_found"})),
        Some(ChannelState::Archived) => Err(json!({"error": "is_archived"})),
        Some(ChannelState::NotMember) if posting => Err(json!({"error": "not_in_channel"})),
        _ => Ok(()),
    }
}

/// Validates a message body; records violations; `Err` is Slack's answer.
fn message_rules(st: &mut FakeState, method: &str, p: &Value) -> Result<(), Value> {
    let check = check_message(p);
    let allow = st.allow_broadcast;
    st.violate(method, &check.broadcasts(allow));
    if !check.errors.is_empty() {
        st.violate(method, &check.errors);
        let only_text = check
            .errors
            .iter()
            .all(|e| e.ends_with("[json-pointer:/text]"));
        let code = if only_text {
            "msg_too_long"
        } else {
            "invalid_blocks"
        };
        let messages: Vec<String> = check
            .errors
            .iter()
            .map(|e| format!("[ERROR] {e}"))
            .collect();
        return Err(
            json!({"error": code, "errors": check.errors, "response_metadata": {"messages": messages}}),
        );
    }
    if !has_content(p) {
        return Err(json!({"error": "no_text"}));
    }
    Ok(())
}

fn bot_message(p: &Value, ts: &str) -> Value {
    let mut m = json!({
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "app_id": APP_ID,
        "team": TEAM_ID,
        "ts": ts,
        "text": p.get("text").cloned().unwrap_or(json!("")),
    });
    if let Some(b) = p.get("blocks").filter(|b| b.is_array()) {
        m["blocks"] = with_block_ids(b);
    }
    if let Some(t) = p.get("thread_ts").filter(|t| !t.is_null()) {
        m["thread_ts"] = t.clone();
    }
    m
}

fn chat_post_message(st: &mut FakeState, p: &Value) -> MethodResult {
    let channel = str_of(p, "channel").unwrap_or_default();
    channel_check(st, &channel, true)?;
    message_rules(st, "chat.postMessage", p)?;
    let ts = st.next_ts();
    let message = bot_message(p, &ts);
    st.messages
        .insert((channel.clone(), ts.clone()), message.clone());
    Ok(json!({"channel": channel, "ts": ts, "message": message}))
}

fn chat_update(st: &mut FakeState, p: &Value) -> MethodResult {
    let channel = str_of(p, "channel").unwrap_or_default();
    channel_check(st, &channel, false)?;
    let ts = str_of(p, "ts").unwrap_or_default();
    let key = (channel.clone(), ts.clone());
    if !st.messages.contains_key(&key) {
        return Err(json!({"error": "message_not_found"}));
    }
    message_rules(st, "chat.update", p)?;
    let old = st.messages[&key].clone();
    let mut message = bot_message(p, &ts);
    if let Some(t) = old.get("thread_ts") {
        message["thread_ts"] = t.clone();
    }
    message["edited"] = json!({"user": BOT_USER_ID, "ts": now_ts()});
    st.messages.insert(key, message.clone());
    let text = message["text"].clone();
    Ok(json!({"channel": channel, "ts": ts, "text": text, "message": message}))
}

fn chat_post_ephemeral(st: &mut FakeState, p: &Value) -> MethodResult {
    let channel = str_of(p, "channel").unwrap_or_default();
    channel_check(st, &channel, true)?;
    if str_of(p, "user").is_none_or(|u| u.is_empty()) {
        return Err(json!({"error": "user_not_in_channel"}));
    }
    message_rules(st, "chat.postEphemeral", p)?;
    Ok(json!({"message_ts": st.next_ts()}))
}

fn chat_delete(st: &mut FakeState, p: &Value) -> MethodResult {
    let channel = str_of(p, "channel").unwrap_or_default();
    channel_check(st, &channel, false)?;
    let ts = str_of(p, "ts").unwrap_or_default();
    match st.messages.remove(&(channel.clone(), ts.clone())) {
        Some(_) => Ok(json!({"channel": channel, "ts": ts})),
        None => Err(json!({"error": "message_not_found"})),
    }
}

fn chat_get_permalink(st: &FakeState, p: &Value) -> MethodResult {
    let channel = str_of(p, "channel").unwrap_or_default();
    channel_check(st, &channel, false)?;
    let ts = str_of(p, "message_ts").unwrap_or_default();
    let Some(m) = st.messages.get(&(channel.clone(), ts.clone())) else {
        return Err(json!({"error": "message_not_found"}));
    };
    let mut link = format!(
        "https://{TEAM_DOMAIN}.slack.com/archives/{channel}/p{}",
        ts.replace('.', "")
    );
    if let Some(t) = m["thread_ts"].as_str() {
        link.push_str(&format!("?thread_ts={t}&cid={channel}"));
    }
    Ok(json!({"channel": channel, "permalink": link}))
}

fn view_rules(st: &mut FakeState, method: &str, view: &Value, home: bool) -> Result<(), Value> {
    let errors = check_view(view, home);
    if errors.is_empty() {
        return Ok(());
    }
    st.violate(method, &errors);
    let messages: Vec<String> = errors.iter().map(|e| format!("[ERROR] {e}")).collect();
    Err(
        json!({"error": "invalid_arguments", "errors": errors, "response_metadata": {"messages": messages}}),
    )
}

fn store_view(st: &mut FakeState, id: String, submitted: &Value) -> Value {
    let stateful = stateful_of(submitted, &id);
    match st.views.iter_mut().find(|v| v.id == id) {
        Some(v) => {
            v.submitted.push(submitted.clone());
            v.stateful = stateful.clone();
        }
        None => st.views.push(StoredView {
            id,
            submitted: vec![submitted.clone()],
            stateful: stateful.clone(),
        }),
    }
    stateful
}

fn views_open(st: &mut FakeState, method: &str, p: &Value) -> MethodResult {
    let trigger = str_of(p, "trigger_id").unwrap_or_default();
    match st.triggers.get(&trigger).copied() {
        None => return Err(json!({"error": "invalid_trigger_id"})),
        Some((_, true)) => return Err(json!({"error": "exchanged_trigger_id"})),
        Some((issued, false)) if issued.elapsed() > TRIGGER_TTL => {
            return Err(json!({"error": "expired_trigger_id"}));
        }
        Some(_) => {}
    }
    let view = p.get("view").cloned().unwrap_or(Value::Null);
    view_rules(st, method, &view, false)?;
    st.triggers.insert(trigger, (Instant::now(), true));
    let id = format!("V{:010}", st.next_id());
    Ok(json!({"view": store_view(st, id, &view)}))
}

fn views_update(st: &mut FakeState, p: &Value) -> MethodResult {
    let view = p.get("view").cloned().unwrap_or(Value::Null);
    let by_id = str_of(p, "view_id");
    let by_external = str_of(p, "external_id");
    let found = st
        .views
        .iter()
        .find(|v| {
            by_id.as_deref() == Some(v.id.as_str())
                || (by_external.is_some()
                    && v.stateful["external_id"].as_str() == by_external.as_deref())
        })
        .map(|v| v.id.clone());
    let Some(id) = found else {
        return Err(json!({"error": "not_found"}));
    };
    view_rules(st, "views.update", &view, false)?;
    Ok(json!({"view": store_view(st, id, &view)}))
}

fn views_publish(st: &mut FakeState, p: &Value) -> MethodResult {
    if str_of(p, "user_id").is_none_or(|u| u.is_empty()) {
        return Err(json!({"error": "invalid_arguments"}));
    }
    let view = p.get("view").cloned().unwrap_or(Value::Null);
    view_rules(st, "views.publish", &view, true)?;
    let id = format!("V{:010}", st.next_id());
    Ok(json!({"view": store_view(st, id, &view)}))
}

fn stateful_of(view: &Value, id: &str) -> Value {
    let mut v = view.clone();
    if !v.is_object() {
        v = json!({});
    }
    let o = v.as_object_mut().unwrap();
    o.insert("id".into(), json!(id));
    o.insert("team_id".into(), json!(TEAM_ID));
    o.entry("state").or_insert(json!({"values": {}}));
    o.insert(
        "hash".into(),
        json!(format!("1700000000.{}", id.trim_start_matches('V'))),
    );
    o.insert("root_view_id".into(), json!(id));
    o.insert("previous_view_id".into(), Value::Null);
    o.insert("app_id".into(), json!(APP_ID));
    o.insert("bot_id".into(), json!(BOT_ID));
    o.entry("private_metadata").or_insert(json!(""));
    o.entry("callback_id").or_insert(json!(""));
    o.entry("external_id").or_insert(json!(""));
    o.entry("clear_on_close").or_insert(json!(false));
    o.entry("notify_on_close").or_insert(json!(false));
    if let Some(b) = o.get("blocks").cloned() {
        o.insert("blocks".into(), with_block_ids(&b));
    }
    v
}

fn user_json(id: &str, name: &str) -> Value {
    json!({
        "id": id,
        "team_id": TEAM_ID,
        "name": name,
        "real_name": name,
        "deleted": false,
        "is_bot": false,
        "is_admin": false,
        "tz": "Europe/Berlin",
        "tz_label": "Central European Time",
        "tz_offset": 3600,
        "profile": {"real_name": name, "display_name": name, "team": TEAM_ID},
    })
}

/// What a view's `state.values` holds for one input after the user typed `given`.
fn input_state(el: &Value, block_id: &str, given: Option<&ViewValue>) -> Value {
    let kind = el["type"].as_str().unwrap_or("");
    let options = || -> Vec<Value> {
        let mut all: Vec<Value> = el["options"].as_array().cloned().unwrap_or_default();
        for g in el["option_groups"].as_array().into_iter().flatten() {
            all.extend(g["options"].as_array().cloned().unwrap_or_default());
        }
        all
    };
    let pick =
        |value: &str| -> Value {
            let all = options();
            all.iter().find(|o| o["value"] == value).cloned().unwrap_or_else(|| {
            let values: Vec<&str> = all.iter().filter_map(|o| o["value"].as_str()).collect();
            panic!("fake Slack: input {block_id:?} has no option {value:?} (options: {values:?})")
        })
        };
    let mut state = json!({"type": kind});
    match (kind, given) {
        ("static_select" | "radio_buttons" | "external_select", Some(ViewValue::Option(v))) => {
            state["selected_option"] = pick(v);
        }
        ("static_select" | "radio_buttons" | "external_select", None) => {
            state["selected_option"] = el.get("initial_option").cloned().unwrap_or(Value::Null);
        }
        ("checkboxes" | "multi_static_select", Some(ViewValue::Options(vs))) => {
            state["selected_options"] = Value::Array(vs.iter().map(|v| pick(v)).collect());
        }
        ("checkboxes" | "multi_static_select", None) => {
            state["selected_options"] = el.get("initial_options").cloned().unwrap_or(json!([]));
        }
        ("datepicker", Some(ViewValue::Text(t))) => state["selected_date"] = json!(t),
        ("datepicker", None) => {
            state["selected_date"] = el.get("initial_date").cloned().unwrap_or(Value::Null)
        }
        ("timepicker", Some(ViewValue::Text(t))) => state["selected_time"] = json!(t),
        ("timepicker", None) => {
            state["selected_time"] = el.get("initial_time").cloned().unwrap_or(Value::Null)
        }
        ("users_select", Some(ViewValue::Text(t))) => state["selected_user"] = json!(t),
        ("users_select", None) => {
            state["selected_user"] = el.get("initial_user").cloned().unwrap_or(Value::Null)
        }
        ("channels_select", Some(ViewValue::Text(t))) => state["selected_channel"] = json!(t),
        ("channels_select", None) => {
            state["selected_channel"] = el.get("initial_channel").cloned().unwrap_or(Value::Null)
        }
        ("conversations_select", Some(ViewValue::Text(t))) => {
            state["selected_conversation"] = json!(t)
        }
        ("conversations_select", None) => {
            state["selected_conversation"] = el
                .get("initial_conversation")
                .cloned()
                .unwrap_or(Value::Null)
        }
        (
            "plain_text_input" | "number_input" | "email_text_input" | "url_text_input",
            Some(ViewValue::Text(t)),
        ) => {
            state["value"] = json!(t);
        }
        ("plain_text_input" | "number_input" | "email_text_input" | "url_text_input", None) => {
            state["value"] = el.get("initial_value").cloned().unwrap_or(Value::Null);
        }
        (_, Some(v)) => {
            panic!("fake Slack: input {block_id:?} is a {kind:?}, which does not take {v:?}")
        }
        (_, None) => {}
    }
    state
}

// ----- Block Kit rules --------------------------------------------------------

const BLOCK_TYPES: &[&str] = &[
    "section",
    "header",
    "divider",
    "image",
    "actions",
    "context",
    "input",
    "file",
    "video",
    "markdown",
    "rich_text",
    "table",
    "task_card",
    "alert",
    "card",
    "carousel",
    "context_actions",
    "container",
    "plan",
    "data_table",
    "data_visualization",
    "share_shortcut",
    "event",
];

const SELECTS: &[&str] = &[
    "static_select",
    "external_select",
    "users_select",
    "conversations_select",
    "channels_select",
    "multi_static_select",
    "multi_external_select",
    "multi_users_select",
    "multi_conversations_select",
    "multi_channels_select",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Actions,
    Accessory,
    Input,
}

impl Place {
    fn allows(self, kind: &str) -> bool {
        let common = SELECTS.contains(&kind)
            || matches!(
                kind,
                "checkboxes" | "datepicker" | "radio_buttons" | "timepicker"
            );
        match self {
            Place::Actions => {
                common
                    || matches!(
                        kind,
                        "button"
                            | "overflow"
                            | "datetimepicker"
                            | "rich_text_input"
                            | "workflow_button"
                    )
            }
            Place::Accessory => {
                common || matches!(kind, "button" | "overflow" | "image" | "workflow_button")
            }
            Place::Input => {
                common
                    || matches!(
                        kind,
                        "plain_text_input"
                            | "datetimepicker"
                            | "email_text_input"
                            | "number_input"
                            | "url_text_input"
                            | "file_input"
                            | "rich_text_input"
                    )
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Place::Actions => "an actions block",
            Place::Accessory => "a section accessory",
            Place::Input => "an input block",
        }
    }
}

#[derive(Default)]
struct Check {
    errors: Vec<String>,
    mentions: Vec<String>,
    block_ids: HashSet<String>,
    action_ids: HashSet<String>,
    link_names: bool,
}

impl Check {
    fn err(&mut self, path: &str, msg: impl fmt::Display) {
        self.errors.push(format!("{msg} [json-pointer:{path}]"));
    }

    fn broadcasts(&self, allowed: bool) -> Vec<String> {
        if allowed {
            Vec::new()
        } else {
            self.mentions.clone()
        }
    }

    fn scan(&mut self, text: &str, path: &str) {
        for mention in ["<!channel", "<!here", "<!everyone"] {
            let mut rest = text;
            while let Some(i) = rest.find(mention) {
                rest = &rest[i + mention.len()..];
                if rest.starts_with('>') || rest.starts_with('|') {
                    self.mentions.push(format!(
                        "broadcast mention {mention}> [json-pointer:{path}]"
                    ));
                    break;
                }
            }
        }
        if self.link_names {
            for word in ["@here", "@channel", "@everyone"] {
                if text.contains(word) {
                    self.mentions.push(format!(
                        "broadcast mention {word} with link_names [json-pointer:{path}]"
                    ));
                }
            }
        }
    }

    /// A string field of `min..=max` characters; `None` if absent or not a string.
    fn string(
        &mut self,
        v: Option<&Value>,
        path: &str,
        min: usize,
        max: usize,
        required: bool,
    ) -> Option<String> {
        match v {
            None | Some(Value::Null) => {
                if required {
                    self.err(path, "missing required field");
                }
                None
            }
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if n > max {
                    self.err(path, format!("must be less than {} characters", max + 1));
                } else if n < min {
                    self.err(path, format!("must be more than {} characters", min - 1));
                }
                Some(s.clone())
            }
            Some(other) => {
                self.err(path, format!("must be a string, not {other}"));
                None
            }
        }
    }

    fn text_obj(
        &mut self,
        v: Option<&Value>,
        path: &str,
        plain_only: bool,
        max: usize,
        required: bool,
    ) {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            if required {
                self.err(path, "missing required field");
            }
            return;
        };
        let Some(o) = v.as_object() else {
            self.err(path, "must be a text object");
            return;
        };
        match o.get("type").and_then(Value::as_str) {
            Some("plain_text") => {}
            Some("mrkdwn") if !plain_only => {}
            Some("mrkdwn") => self.err(&format!("{path}/type"), "must be plain_text"),
            Some(t) => self.err(
                &format!("{path}/type"),
                format!("unsupported text type {t:?}"),
            ),
            None => self.err(&format!("{path}/type"), "missing required field"),
        }
        if let Some(s) = self.string(o.get("text"), &format!("{path}/text"), 1, max, true) {
            self.scan(&s, &format!("{path}/text"));
        }
    }

    fn array<'v>(
        &mut self,
        v: Option<&'v Value>,
        path: &str,
        min: usize,
        max: usize,
        required: bool,
    ) -> &'v [Value] {
        match v {
            None | Some(Value::Null) => {
                if required {
                    self.err(path, "missing required field");
                }
                &[]
            }
            Some(Value::Array(a)) => {
                if a.len() > max {
                    self.err(path, format!("no more than {max} items allowed"));
                } else if a.len() < min {
                    self.err(path, format!("must provide at least {min} items"));
                }
                a
            }
            Some(_) => {
                self.err(path, "must be an array");
                &[]
            }
        }
    }

    fn blocks(&mut self, v: Option<&Value>, path: &str, max: usize, required: bool) {
        let blocks = self.array(v, path, 0, max, required);
        for (i, b) in blocks.iter().enumerate() {
            self.block(b, &format!("{path}/{i}"));
        }
    }

    fn block(&mut self, b: &Value, path: &str) {
        let Some(o) = b.as_object() else {
            self.err(path, "must be an object");
            return;
        };
        let p = |k: &str| format!("{path}/{k}");
        if let Some(id) = self.string(o.get("block_id"), &p("block_id"), 1, 255, false)
            && !self.block_ids.insert(id.clone())
        {
            self.err(&p("block_id"), format!("duplicate block_id {id:?}"));
        }
        let Some(kind) = o.get("type").and_then(Value::as_str) else {
            self.err(&p("type"), "missing required field");
            return;
        };
        match kind {
            "section" => {
                if o.get("text").is_none() && o.get("fields").is_none() {
                    self.err(path, "must provide either text or fields");
                }
                self.text_obj(o.get("text"), &p("text"), false, 3000, false);
                let fields = self.array(o.get("fields"), &p("fields"), 1, 10, false);
                for (i, f) in fields.iter().enumerate() {
                    self.text_obj(Some(f), &format!("{path}/fields/{i}"), false, 2000, true);
                }
                if let Some(a) = o.get("accessory") {
                    self.element(a, &p("accessory"), Place::Accessory);
                }
            }
            "header" => self.text_obj(o.get("text"), &p("text"), true, 150, true),
            "divider" => {}
            "context" => {
                let elements = self.array(o.get("elements"), &p("elements"), 1, 10, true);
                for (i, e) in elements.iter().enumerate() {
                    let ep = format!("{path}/elements/{i}");
                    if e["type"] == "image" {
                        self.image(e, &ep);
                    } else {
                        self.text_obj(Some(e), &ep, false, 3000, true);
                    }
                }
            }
            "actions" => {
                let elements = self.array(o.get("elements"), &p("elements"), 1, 25, true);
                for (i, e) in elements.iter().enumerate() {
                    self.element(e, &format!("{path}/elements/{i}"), Place::Actions);
                }
            }
            "image" => {
                self.image(b, path);
                self.text_obj(o.get("title"), &p("title"), true, 2000, false);
            }
            "input" => {
                self.text_obj(o.get("label"), &p("label"), true, 2000, true);
                self.text_obj(o.get("hint"), &p("hint"), true, 2000, false);
                match o.get("element") {
                    Some(e) => self.element(e, &p("element"), Place::Input),
                    None => self.err(&p("element"), "missing required field"),
                }
            }
            "markdown" => {
                if let Some(s) = self.string(o.get("text"), &p("text"), 1, 12000, true) {
                    self.scan(&s, &p("text"));
                }
            }
            "rich_text" => {
                self.array(o.get("elements"), &p("elements"), 0, usize::MAX, true);
                self.rich_broadcasts(b, path);
            }
            k if BLOCK_TYPES.contains(&k) => {}
            other => self.err(&p("type"), format!("unsupported block type {other:?}")),
        }
    }

    fn rich_broadcasts(&mut self, v: &Value, path: &str) {
        match v {
            Value::Object(o) => {
                if o.get("type").and_then(Value::as_str) == Some("broadcast") {
                    let range = o.get("range").and_then(Value::as_str).unwrap_or("?");
                    self.mentions
                        .push(format!("broadcast element ({range}) [json-pointer:{path}]"));
                }
                for (k, child) in o {
                    self.rich_broadcasts(child, &format!("{path}/{k}"));
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    self.rich_broadcasts(child, &format!("{path}/{i}"));
                }
            }
            _ => {}
        }
    }

    fn image(&mut self, e: &Value, path: &str) {
        if e.get("slack_file").is_none() {
            self.string(
                e.get("image_url"),
                &format!("{path}/image_url"),
                1,
                3000,
                true,
            );
        }
        self.string(
            e.get("alt_text"),
            &format!("{path}/alt_text"),
            1,
            2000,
            true,
        );
    }

    fn element(&mut self, e: &Value, path: &str, place: Place) {
        let Some(o) = e.as_object() else {
            self.err(path, "must be an object");
            return;
        };
        let p = |k: &str| format!("{path}/{k}");
        let Some(kind) = o.get("type").and_then(Value::as_str) else {
            self.err(&p("type"), "missing required field");
            return;
        };
        if !place.allows(kind) {
            self.err(
                &p("type"),
                format!("{kind} is not allowed in {}", place.name()),
            );
        }
        if let Some(id) = self.string(o.get("action_id"), &p("action_id"), 1, 255, false)
            && !self.action_ids.insert(id.clone())
        {
            self.err(&p("action_id"), format!("duplicate action_id {id:?}"));
        }
        self.text_obj(o.get("placeholder"), &p("placeholder"), true, 150, false);
        if let Some(c) = o.get("confirm") {
            self.confirm(c, &p("confirm"));
        }
        match kind {
            "button" => {
                self.text_obj(o.get("text"), &p("text"), true, 75, true);
                self.string(o.get("value"), &p("value"), 0, 2000, false);
                self.string(o.get("url"), &p("url"), 1, 3000, false);
                self.string(
                    o.get("accessibility_label"),
                    &p("accessibility_label"),
                    1,
                    75,
                    false,
                );
                if let Some(style) = o.get("style")
                    && style != "primary"
                    && style != "danger"
                {
                    self.err(&p("style"), "must be primary or danger");
                }
            }
            "static_select" | "multi_static_select" => {
                if o.get("option_groups").is_some() {
                    let groups =
                        self.array(o.get("option_groups"), &p("option_groups"), 1, 100, false);
                    for (i, g) in groups.iter().enumerate() {
                        let gp = format!("{path}/option_groups/{i}");
                        self.text_obj(g.get("label"), &format!("{gp}/label"), true, 75, true);
                        self.options(g.get("options"), &format!("{gp}/options"), 1, 100, true);
                    }
                } else {
                    self.options(o.get("options"), &p("options"), 1, 100, true);
                }
            }
            "radio_buttons" | "checkboxes" => {
                self.options(o.get("options"), &p("options"), 1, 10, false)
            }
            "overflow" => self.options(o.get("options"), &p("options"), 1, 5, true),
            "plain_text_input" => {
                self.string(o.get("initial_value"), &p("initial_value"), 0, 3000, false);
                for key in ["min_length", "max_length"] {
                    if let Some(n) = o.get(key).and_then(Value::as_u64)
                        && n > 3000
                    {
                        self.err(&p(key), "must be at most 3000");
                    }
                }
            }
            "image" => self.image(e, path),
            _ => {}
        }
    }

    fn options(&mut self, v: Option<&Value>, path: &str, min: usize, max: usize, plain_only: bool) {
        let options = self.array(v, path, min, max, true);
        for (i, opt) in options.iter().enumerate() {
            let op = format!("{path}/{i}");
            self.text_obj(opt.get("text"), &format!("{op}/text"), plain_only, 75, true);
            self.string(opt.get("value"), &format!("{op}/value"), 1, 150, true);
            self.text_obj(
                opt.get("description"),
                &format!("{op}/description"),
                plain_only,
                75,
                false,
            );
        }
    }

    fn confirm(&mut self, c: &Value, path: &str) {
        self.text_obj(c.get("title"), &format!("{path}/title"), true, 100, true);
        self.text_obj(c.get("text"), &format!("{path}/text"), false, 300, true);
        self.text_obj(c.get("confirm"), &format!("{path}/confirm"), true, 30, true);
        self.text_obj(c.get("deny"), &format!("{path}/deny"), true, 30, true);
    }
}

/// Rules for a message body (`chat.*`, `response_url`).
fn check_message(p: &Value) -> Check {
    let mut c = Check {
        link_names: truthy(p.get("link_names")),
        ..Check::default()
    };
    if let Some(t) = c.string(p.get("text"), "/text", 0, 40_000, false) {
        c.scan(&t, "/text");
    }
    c.blocks(p.get("blocks"), "/blocks", 50, false);
    if let Some(atts) = p.get("attachments").and_then(Value::as_array) {
        for (i, a) in atts.iter().enumerate() {
            for key in ["text", "pretext", "fallback", "title"] {
                if let Some(s) = a.get(key).and_then(Value::as_str) {
                    c.scan(s, &format!("/attachments/{i}/{key}"));
                }
            }
            c.blocks(
                a.get("blocks"),
                &format!("/attachments/{i}/blocks"),
                50,
                false,
            );
        }
    }
    c
}

/// Rules for a modal (or, with `home`, a Home tab). Broadcasts notify nobody
/// from a view, so they are not checked here.
fn check_view(view: &Value, home: bool) -> Vec<String> {
    let mut c = Check::default();
    let Some(o) = view.as_object() else {
        c.err("/view", "missing required field");
        return c.errors;
    };
    match (o.get("type").and_then(Value::as_str), home) {
        (Some("modal"), false) | (Some("home"), true) => {}
        (Some(t), _) => c.err("/view/type", format!("unsupported view type {t:?} here")),
        (None, _) => c.err("/view/type", "missing required field"),
    }
    if !home {
        c.text_obj(o.get("title"), "/view/title", true, 24, true);
        c.text_obj(o.get("close"), "/view/close", true, 24, false);
        c.text_obj(o.get("submit"), "/view/submit", true, 24, false);
        let has_input = o
            .get("blocks")
            .and_then(Value::as_array)
            .is_some_and(|b| b.iter().any(|b| b["type"] == "input"));
        if has_input && o.get("submit").is_none_or(Value::is_null) {
            c.err(
                "/view/submit",
                "must provide submit when the view has input blocks",
            );
        }
    }
    c.string(
        o.get("private_metadata"),
        "/view/private_metadata",
        0,
        3000,
        false,
    );
    c.string(o.get("callback_id"), "/view/callback_id", 0, 255, false);
    c.string(o.get("external_id"), "/view/external_id", 0, 255, false);
    c.blocks(o.get("blocks"), "/view/blocks", 100, true);
    // Texts in views were scanned for mentions on the way; they notify nobody.
    c.mentions.clear();
    c.errors
}

// ----- rendering and helpers --------------------------------------------------

fn text_of(v: &Value) -> String {
    v.get("text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// A plain rendering of Block Kit blocks, one paragraph per block (see [`Message::render`]).
pub fn render_blocks(blocks: &Value) -> String {
    let Some(blocks) = blocks.as_array() else {
        return String::new();
    };
    blocks
        .iter()
        .map(render_block)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn render_block(b: &Value) -> String {
    let kind = b["type"].as_str().unwrap_or("");
    match kind {
        "header" => format!("# {}", text_of(&b["text"])),
        "section" => {
            let mut lines = Vec::new();
            if b.get("text").is_some() {
                lines.push(text_of(&b["text"]));
            }
            for f in b["fields"].as_array().into_iter().flatten() {
                let t = text_of(f);
                let mut parts = t.lines();
                lines.push(format!("- {}", parts.next().unwrap_or("")));
                for rest in parts {
                    lines.push(format!("  {rest}"));
                }
            }
            if let Some(a) = b.get("accessory") {
                lines.push(render_element(a));
            }
            lines.join("\n")
        }
        "context" => b["elements"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                if e["type"] == "image" {
                    render_element(e)
                } else {
                    text_of(e)
                }
            })
            .collect::<Vec<_>>()
            .join(" | "),
        "divider" => "---".to_string(),
        "actions" => b["elements"]
            .as_array()
            .into_iter()
            .flatten()
            .map(render_element)
            .collect::<Vec<_>>()
            .join(" "),
        "image" => format!("[image: {}]", b["alt_text"].as_str().unwrap_or("")),
        "input" => {
            let mut s = format!(
                "{}: {}",
                text_of(&b["label"]),
                render_element(&b["element"])
            );
            if b["optional"] == true {
                s.push_str(" (optional)");
            }
            if b.get("hint").is_some() {
                s.push_str(&format!("\n  ({})", text_of(&b["hint"])));
            }
            s
        }
        "markdown" => b["text"].as_str().unwrap_or("").to_string(),
        "rich_text" => b["elements"]
            .as_array()
            .into_iter()
            .flatten()
            .map(render_rich)
            .collect::<Vec<_>>()
            .join("\n"),
        other => format!("[{other}]"),
    }
}

fn render_element(e: &Value) -> String {
    let kind = e["type"].as_str().unwrap_or("");
    let id = e["action_id"].as_str().unwrap_or("");
    match kind {
        "button" => format!("[{}]({id})", text_of(&e["text"])),
        "image" => format!("[image: {}]", e["alt_text"].as_str().unwrap_or("")),
        "overflow" => format!("[…]({id})"),
        "radio_buttons" | "checkboxes" => {
            let chosen: Vec<&Value> = match kind {
                "radio_buttons" => e.get("initial_option").into_iter().collect(),
                _ => e["initial_options"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .collect(),
            };
            let opts = e["options"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| {
                    let on = chosen.iter().any(|c| c["value"] == o["value"]);
                    format!("({}) {}", if on { "x" } else { " " }, text_of(&o["text"]))
                })
                .collect::<Vec<_>>()
                .join(" ");
            format!("[{kind}: {opts}]({id})")
        }
        "plain_text_input" | "number_input" | "email_text_input" | "url_text_input" => {
            let mut s = format!("[{kind}]({id})");
            if e["multiline"] == true {
                s.push_str(" multiline");
            }
            if let Some(v) = e["initial_value"].as_str() {
                s.push_str(&format!(" = {v:?}"));
            }
            s
        }
        k if SELECTS.contains(&k) => {
            let shown = e
                .get("initial_option")
                .map(|o| text_of(&o["text"]))
                .or_else(|| e.get("placeholder").map(text_of))
                .unwrap_or_default();
            format!("[{kind}: {shown}]({id})")
        }
        other => format!("[{other}]({id})"),
    }
}

fn render_rich(e: &Value) -> String {
    let inline = |v: &Value| -> String {
        v["elements"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| match x["type"].as_str().unwrap_or("") {
                "text" | "link" => x["text"]
                    .as_str()
                    .or(x["url"].as_str())
                    .unwrap_or("")
                    .to_string(),
                "user" => format!("<@{}>", x["user_id"].as_str().unwrap_or("")),
                "usergroup" => format!("<!subteam^{}>", x["usergroup_id"].as_str().unwrap_or("")),
                "channel" => format!("<#{}>", x["channel_id"].as_str().unwrap_or("")),
                "broadcast" => format!("<!{}>", x["range"].as_str().unwrap_or("")),
                "emoji" => format!(":{}:", x["name"].as_str().unwrap_or("")),
                other => format!("[{other}]"),
            })
            .collect()
    };
    match e["type"].as_str().unwrap_or("") {
        "rich_text_preformatted" => format!("```{}```", inline(e)),
        "rich_text_quote" => format!("> {}", inline(e)),
        "rich_text_list" => e["elements"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| format!("- {}", inline(i)))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => inline(e),
    }
}

/// Every interactive element with its block's id (`b{index}` when the block has none).
fn interactive_elements(blocks: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (i, b) in blocks.as_array().into_iter().flatten().enumerate() {
        let block_id = b["block_id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| generated_block_id(i));
        match b["type"].as_str() {
            Some("actions") => {
                for e in b["elements"].as_array().into_iter().flatten() {
                    out.push((block_id.clone(), e));
                }
            }
            Some("section") => {
                if let Some(a) = b.get("accessory") {
                    out.push((block_id.clone(), a));
                }
            }
            _ => {}
        }
    }
    out
}

fn find_button<'a>(blocks: &'a Value, action_id: &str) -> Option<(String, &'a Value)> {
    interactive_elements(blocks)
        .into_iter()
        .find(|(_, e)| e["type"] == "button" && e["action_id"] == action_id)
}

/// Slack fills in a block id for every block sent without one.
fn generated_block_id(index: usize) -> String {
    format!("fk{index:03}")
}

fn with_block_ids(blocks: &Value) -> Value {
    let mut blocks = blocks.clone();
    if let Some(a) = blocks.as_array_mut() {
        for (i, b) in a.iter_mut().enumerate() {
            if let Some(o) = b.as_object_mut()
                && !o.contains_key("block_id")
            {
                o.insert("block_id".into(), json!(generated_block_id(i)));
            }
        }
    }
    blocks
}

fn has_content(p: &Value) -> bool {
    let text = p
        .get("text")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    let blocks = p
        .get("blocks")
        .and_then(Value::as_array)
        .is_some_and(|b| !b.is_empty());
    let atts = p
        .get("attachments")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    text || blocks || atts
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn blocks_of(v: &Value) -> Value {
    match v.get("blocks") {
        Some(b @ Value::Array(_)) => b.clone(),
        _ => json!([]),
    }
}

/// `C_ALERTS` → `alerts`: a readable name for a channel id.
fn channel_name(channel: &str) -> String {
    channel
        .trim_start_matches("C_")
        .trim_start_matches('#')
        .to_lowercase()
}

fn now_ts() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
