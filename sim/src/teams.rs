//! A fake Microsoft Teams, as a bot sees it through the Bot Framework: the
//! channel's OpenID metadata and JWKS (`login.botframework.com`), the Entra ID
//! token endpoint (`login.microsoftonline.com/{tenant}/oauth2/v2.0/token`) and
//! the Connector (`{serviceUrl}/v3/conversations…`), all on one plain-HTTP
//! server on `127.0.0.1:<ephemeral port>`; and the other direction: activities
//! signed as Teams signs them (RS256 JWT, `kid` from the JWKS) POSTed to the
//! bot's `/api/messages` as named users would cause them.
//!
//! What it checks, so a passing test means something:
//! - every Connector call carries `Authorization: Bearer <token>` with a token
//!   this fake issued for the app id and secret it was started with and that
//!   has not expired (else `401`, as the Connector answers);
//! - conversation ids arrive percent-encoded (`19%3A…%3Bmessageid%3D…`) and are
//!   decoded; unknown conversations and activities answer `404`
//!   (`ConversationNotFound`), [`FakeTeams::forbid_conversation`] `403`
//!   (`BotNotInConversationRoster`);
//! - a body over 100 KB answers `413`; a thread takes at most 7 sends a second,
//!   60 in 30 s and 1,800 an hour, then `429` with `Retry-After`;
//! - an activity with text *and* a card (Teams shows two messages), more than
//!   one attachment, an attachment that is not an Adaptive Card, a card newer
//!   than 1.5 or an invoke answered in a shape Teams does not take is recorded
//!   as a [`Violation`] (Teams would accept most of them and show something
//!   odd).
//!
//! Checked against Microsoft's own client code: `tests/conformance/` runs
//! botframework-connector's `JwtTokenValidation` on this fake's tokens and its
//! `ConnectorClient` + MSAL against this fake's token endpoint and Connector.
//!
//! Self-contained on purpose (no bot types, no test-only shortcuts): the tests,
//! the bench and `rerun-bot demo` share it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64_STD, URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use percent_encoding::percent_decode_str;
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

/// The bot's display name in mentions and in `recipient.name`.
pub const BOT_NAME: &str = "rerun-bot";
/// `iss` of every token the channel sends to a bot.
pub const ISSUER: &str = "https://api.botframework.com";
/// The scope a bot asks Entra ID for to call the Connector.
pub const SCOPE: &str = "https://api.botframework.com/.default";
/// The only attachment type the bot may send.
pub const ADAPTIVE_CARD: &str = "application/vnd.microsoft.card.adaptive";

/// How long `next_*` waits before it panics.
const WAIT: Duration = Duration::from_secs(10);
/// Teams refuses a message over 100 KB.
const MAX_BODY: usize = 100 * 1024;
/// Entra ID's client-credential tokens: `expires_in: 3599`.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3599);
/// Per bot per thread: (window, sends allowed in it).
const THREAD_LIMITS: [(Duration, usize); 3] = [
    (Duration::from_secs(1), 7),
    (Duration::from_secs(30), 60),
    (Duration::from_secs(3600), 1800),
];
/// The newest Adaptive Card schema Teams renders.
const MAX_CARD_VERSION: (u64, u64) = (1, 5);

// ----- public types ----------------------------------------------------------

/// A person in the tenant: the Entra object id is stable (and what policies
/// name); `id` (`29:…`) is what this bot sees in `from.id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamsUser {
    /// The short name tests use (`alice`).
    pub key: String,
    /// The display name (`Alice`).
    pub name: String,
    pub aad_object_id: String,
    pub id: String,
}

/// What kind of send produced a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A new thread in a channel (`POST /v3/conversations`, or a send to the
    /// bare channel id), or a message in a group chat.
    Post,
    /// A message in an existing channel thread.
    Reply,
    /// `PUT …/activities/{id}`.
    Update,
    /// A message in a 1:1 chat.
    Personal,
}

/// A message the bot sent through the Connector.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: Kind,
    /// Where the message lives, as a bot addresses it: `{channel};messageid={root}`
    /// for channel threads, the chat id for chats.
    pub conversation: String,
    /// The channel (`19:…@thread.tacv2`) for channel messages.
    pub channel: Option<String>,
    /// The id the send returned (for an update: the activity updated).
    pub activity_id: String,
    /// The thread's root activity (channel messages).
    pub root: Option<String>,
    /// `replyToId` (the URL's for `POST …/activities/{id}`, else the body's).
    pub reply_to: Option<String>,
    /// The Adaptive Card (the attachment's `content`), if one was sent.
    pub card: Option<Value>,
    pub text: String,
    /// The activity as sent.
    pub raw: Value,
    pub at: Instant,
}

impl Message {
    /// The card as plain text (see [`render_card`]), else the text.
    pub fn render(&self) -> String {
        match &self.card {
            Some(card) => render_card(card),
            None => self.text.clone(),
        }
    }

    /// Every action's verb (`Action.Execute`), `data.verb` (`Action.Submit`)
    /// or title, in order.
    pub fn buttons(&self) -> Vec<String> {
        self.card
            .as_ref()
            .map(|c| actions_of(c).into_iter().map(action_name).collect())
            .unwrap_or_default()
    }

    pub fn has_button(&self, verb_or_title: &str) -> bool {
        self.button(verb_or_title).is_some()
    }

    /// The action whose verb, `data.verb` or title is `verb_or_title`.
    pub fn button(&self, verb_or_title: &str) -> Option<Value> {
        self.card
            .as_ref()
            .and_then(|c| find_action(c, verb_or_title).cloned())
    }

    fn summary(&self) -> String {
        let what = match &self.card {
            Some(card) => format!("card {:?}", cut(&render_card(card), 80)),
            None => format!("text {:?}", cut(&self.text, 80)),
        };
        format!(
            "{:?} {} in {} {}",
            self.kind, self.activity_id, self.conversation, what
        )
    }
}

/// A broken rule: which call and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub call: String,
    pub error: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.call, self.error)
    }
}

/// One request to the Connector, token endpoint or metadata as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The path, percent-decoded.
    pub path: String,
    pub status: u16,
    pub request: Value,
    pub response: Value,
    pub at: Instant,
}

impl Call {
    fn summary(&self) -> String {
        format!("{} {} → {}", self.method, self.path, self.status)
    }
}

/// Ways a token on an activity can be wrong, for security tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forgery {
    /// No `Authorization` header at all.
    NoToken,
    /// `Authorization: Basic …` instead of a bearer token.
    NotBearer,
    /// Signed by an RSA key the JWKS does not list (its own `kid`).
    WrongKey,
    /// `aud` is another app's id.
    WrongAudience,
    /// `iss` is not `https://api.botframework.com`.
    WrongIssuer,
    /// Expired 10 minutes ago (beyond the 5 minutes of skew).
    Expired,
    /// `nbf` 10 minutes ahead.
    NotYetValid,
    /// The `serviceurl` claim names another host than the activity's `serviceUrl`.
    ServiceUrlMismatch,
    /// Signed by a JWKS key endorsed for `webchat` only.
    UnendorsedChannel,
    /// A valid token with its signature altered.
    BadSignature,
    /// `alg: none`, unsigned.
    AlgNone,
    /// HS256 with the app password as the secret.
    Hs256,
    /// RS256 by the right key, but no `kid` in the header.
    NoKid,
}

impl Forgery {
    pub const ALL: [Forgery; 13] = [
        Forgery::NoToken,
        Forgery::NotBearer,
        Forgery::WrongKey,
        Forgery::WrongAudience,
        Forgery::WrongIssuer,
        Forgery::Expired,
        Forgery::NotYetValid,
        Forgery::ServiceUrlMismatch,
        Forgery::UnendorsedChannel,
        Forgery::BadSignature,
        Forgery::AlgNone,
        Forgery::Hs256,
        Forgery::NoKid,
    ];
}

/// The bot's answer to an activity.
#[derive(Debug, Clone)]
pub struct BotReply {
    pub status: u16,
    /// The JSON body (`Null` when empty; a string when not JSON).
    pub body: Value,
    /// The activity that was sent.
    pub activity: Value,
}

impl BotReply {
    /// The card of an `adaptiveCard/action` answer typed
    /// `application/vnd.microsoft.card.adaptive`.
    pub fn card(&self) -> Option<&Value> {
        (self.body["type"] == ADAPTIVE_CARD).then(|| &self.body["value"])
    }

    /// The text of an `adaptiveCard/action` answer typed
    /// `application/vnd.microsoft.activity.message` (or an error's message),
    /// or of a `task` answer of type `message`.
    pub fn text(&self) -> Option<String> {
        if self.body["task"]["type"] == "message" {
            return self.body["task"]["value"].as_str().map(str::to_string);
        }
        match self.body["type"].as_str() {
            Some("application/vnd.microsoft.activity.message") => {
                self.body["value"].as_str().map(str::to_string)
            }
            Some("application/vnd.microsoft.error") => {
                self.body["value"]["message"].as_str().map(str::to_string)
            }
            _ => None,
        }
    }

    /// The dialog of a `task` answer of type `continue`.
    pub fn dialog(&self) -> Option<Dialog> {
        let task = &self.body["task"];
        if task["type"] != "continue" {
            return None;
        }
        let card = task["value"]["card"]["content"].clone();
        if !card.is_object() {
            return None;
        }
        Some(Dialog {
            title: task["value"]["title"].as_str().unwrap_or("").to_string(),
            card,
            conversation: self.activity["conversation"]["id"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            reply_to: self.activity["replyToId"].as_str().map(str::to_string),
        })
    }

    /// The answer as text: a card rendered, a message, a dialog's title and card.
    pub fn render(&self) -> String {
        if let Some(card) = self.card() {
            return render_card(card);
        }
        if let Some(d) = self.dialog() {
            return format!("## {}\n{}", d.title, render_card(&d.card));
        }
        if let Some(t) = self.text() {
            return t;
        }
        if self.body.is_null() {
            String::new()
        } else {
            self.body.to_string()
        }
    }
}

/// A dialog (task module) the bot opened, to fill in with [`FakeTeams::submit_dialog`].
#[derive(Debug, Clone)]
pub struct Dialog {
    pub title: String,
    /// The Adaptive Card content.
    pub card: Value,
    /// The conversation of the message whose button opened it.
    pub conversation: String,
    pub reply_to: Option<String>,
}

impl Dialog {
    pub fn render(&self) -> String {
        render_card(&self.card)
    }

    /// Input ids, in order.
    pub fn inputs(&self) -> Vec<String> {
        inputs_of(&self.card)
            .into_iter()
            .filter_map(|i| i["id"].as_str().map(str::to_string))
            .collect()
    }
}

// ----- state -------------------------------------------------------------------

struct Key {
    kid: String,
    n: String,
    e: String,
    encoding: EncodingKey,
    endorsements: Vec<String>,
}

impl Key {
    fn generate(endorsements: &[&str]) -> Key {
        let mut rng = rand::thread_rng();
        let private = RsaPrivateKey::new(&mut rng, 2048).expect("fake Teams: RSA key");
        let der = private.to_pkcs1_der().expect("fake Teams: PKCS#1 DER");
        let n = B64.encode(private.n().to_bytes_be());
        let e = B64.encode(private.e().to_bytes_be());
        // Microsoft's kids are the x5t: a base64url SHA-1 thumbprint (27 chars).
        let kid = B64.encode(&Sha256::digest(n.as_bytes())[..20]);
        Key {
            kid,
            n,
            e,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            endorsements: endorsements.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": self.n,
            "e": self.e,
            "endorsements": self.endorsements,
        })
    }
}

struct Keys {
    /// Signs Teams' activities; endorsed for `msteams`.
    main: Arc<Key>,
    /// In the JWKS, endorsed for `webchat` only.
    webchat: Arc<Key>,
    /// Not in the JWKS.
    rogue: Arc<Key>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvKind {
    Channel,
    GroupChat,
    Personal,
}

struct Conversation {
    kind: ConvKind,
    name: String,
}

struct Activity {
    /// The chat or channel id (no `;messageid=`).
    base: String,
    /// The thread root (channel messages).
    root: Option<String>,
    from_bot: bool,
    deleted: bool,
}

enum Fault {
    Status(u16, Option<u64>),
    Delay(Duration),
}

#[derive(Default)]
struct FakeState {
    seq: u64,
    users: BTreeMap<String, TeamsUser>,
    channels: BTreeMap<String, String>,
    conversations: HashMap<String, Conversation>,
    personal: HashMap<String, String>,
    activities: HashMap<String, Activity>,
    messages: Vec<Message>,
    taken: Vec<bool>,
    cards: Vec<Value>,
    calls: Vec<Call>,
    violations: Vec<Violation>,
    faults: VecDeque<Fault>,
    forbidden: HashSet<String>,
    tokens: HashMap<String, Instant>,
    token_lifetime: Option<Duration>,
    token_requests: usize,
    metadata_fetches: usize,
    jwks_fetches: usize,
    sends: HashMap<String, VecDeque<Instant>>,
    throttled: usize,
    bot_endpoint: Option<String>,
}

impl FakeState {
    /// Teams-shaped activity ids: increasing 13-digit numbers.
    fn next_id(&mut self) -> String {
        self.seq += 1;
        (1_700_000_000_000u64 + self.seq).to_string()
    }

    fn violate(&mut self, call: &str, errors: Vec<String>) {
        for error in errors {
            self.violations.push(Violation {
                call: call.to_string(),
                error,
            });
        }
    }

    fn user(&mut self, key: &str) -> TeamsUser {
        self.users
            .entry(key.to_string())
            .or_insert_with(|| make_user(key))
            .clone()
    }

    fn user_by_id(&self, id: &str) -> Option<TeamsUser> {
        self.users
            .values()
            .find(|u| u.id == id || u.aad_object_id.eq_ignore_ascii_case(id))
            .cloned()
    }

    fn channel(&mut self, name: &str) -> String {
        if let Some(id) = self.channels.get(name) {
            return id.clone();
        }
        let id = format!(
            "19:{}@thread.tacv2",
            &hex_digest(&format!("channel:{name}"))[..32]
        );
        self.channels.insert(name.to_string(), id.clone());
        self.conversations.insert(
            id.clone(),
            Conversation {
                kind: ConvKind::Channel,
                name: name.to_string(),
            },
        );
        id
    }

    fn personal_chat(&mut self, user: &TeamsUser) -> String {
        if let Some(id) = self.personal.get(&user.aad_object_id) {
            return id.clone();
        }
        let id = format!(
            "a:1{}",
            &hex_digest(&format!("personal:{}", user.aad_object_id))[..40]
        );
        self.personal.insert(user.aad_object_id.clone(), id.clone());
        self.conversations.insert(
            id.clone(),
            Conversation {
                kind: ConvKind::Personal,
                name: user.key.clone(),
            },
        );
        id
    }

    /// Records a send on `thread`; `Some(retry_after_secs)` if over a limit.
    fn throttle(&mut self, thread: &str, now: Instant) -> Option<u64> {
        let q = self.sends.entry(thread.to_string()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= THREAD_LIMITS[2].0)
        {
            q.pop_front();
        }
        for (window, max) in THREAD_LIMITS {
            let within = q
                .iter()
                .rev()
                .take_while(|t| now.duration_since(**t) < window)
                .count();
            if within >= max {
                let oldest = q[q.len() - max];
                let wait = window.saturating_sub(now.duration_since(oldest));
                self.throttled += 1;
                return Some(wait.as_secs_f64().ceil().max(1.0) as u64);
            }
        }
        q.push_back(now);
        None
    }
}

struct Inner {
    addr: SocketAddr,
    app_id: String,
    app_password: String,
    tenant: String,
    team_id: String,
    keys: Mutex<Keys>,
    state: Mutex<FakeState>,
    changed: Notify,
    http: reqwest::Client,
}

/// The fake Teams. Cheap to clone; all clones share one server.
#[derive(Clone)]
pub struct FakeTeams {
    inner: Arc<Inner>,
}

impl fmt::Debug for FakeTeams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FakeTeams({})", self.inner.addr)
    }
}

struct Failure {
    status: u16,
    body: Value,
    retry_after: Option<u64>,
}

fn fail(status: u16, code: &str, message: &str) -> Failure {
    Failure {
        status,
        body: json!({"error": {"code": code, "message": message}}),
        retry_after: None,
    }
}

fn not_found(what: &str) -> Failure {
    fail(
        404,
        "ConversationNotFound",
        &format!("Conversation not found. ({what})"),
    )
}

type Outcome = Result<(u16, Value), Failure>;

impl FakeTeams {
    /// Starts the server on an ephemeral loopback port (on the current
    /// runtime), with three fresh RSA 2048 keys.
    pub async fn start(app_id: &str, app_password: &str, tenant: &str) -> FakeTeams {
        let gen_key =
            |e: &'static [&'static str]| tokio::task::spawn_blocking(move || Key::generate(e));
        let (main, webchat, rogue) = tokio::join!(
            gen_key(&["msteams"]),
            gen_key(&["webchat"]),
            gen_key(&["msteams"]),
        );
        let keys = Keys {
            main: Arc::new(main.expect("key task")),
            webchat: Arc::new(webchat.expect("key task")),
            rogue: Arc::new(rogue.expect("key task")),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake Teams: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake Teams: local addr");
        let mut state = FakeState::default();
        // A team's id is its General channel's id.
        let team_id = state.channel("General");
        let fake = FakeTeams {
            inner: Arc::new(Inner {
                addr,
                app_id: app_id.to_string(),
                app_password: app_password.to_string(),
                tenant: tenant.to_string(),
                team_id,
                keys: Mutex::new(keys),
                state: Mutex::new(state),
                changed: Notify::new(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("fake Teams: HTTP client"),
            }),
        };
        let app = Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn keys(&self) -> MutexGuard<'_, Keys> {
        self.inner.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ----- where things are ------------------------------------------------

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The Connector's serviceUrl, `{url}/teams/` (as Teams' `…/teams/`).
    pub fn service_url(&self) -> String {
        format!("{}/teams/", self.url())
    }

    /// `TEAMS_OPENID_METADATA_URL`: `{url}/v1/.well-known/openidconfiguration`.
    pub fn openid_metadata_url(&self) -> String {
        format!("{}/v1/.well-known/openidconfiguration", self.url())
    }

    /// `TEAMS_LOGIN_URL` (the Entra ID authority host): `{url}`.
    pub fn login_url(&self) -> String {
        self.url()
    }

    /// `{url}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.url(), self.inner.tenant)
    }

    pub fn app_id(&self) -> &str {
        &self.inner.app_id
    }

    pub fn app_password(&self) -> &str {
        &self.inner.app_password
    }

    pub fn tenant(&self) -> &str {
        &self.inner.tenant
    }

    /// The team (its General channel's id).
    pub fn team_id(&self) -> &str {
        &self.inner.team_id
    }

    /// `28:{app_id}`, the bot's id in conversations.
    pub fn bot_id(&self) -> String {
        format!("28:{}", self.inner.app_id)
    }

    /// Where activities go: `http://127.0.0.1:PORT/api/messages`.
    pub fn set_bot_endpoint(&self, url: &str) {
        self.lock().bot_endpoint = Some(url.to_string());
    }

    // ----- the world -------------------------------------------------------

    /// The user called `key` (`alice` → display name `Alice`), made on first
    /// use with a deterministic Entra object id and `29:` id.
    pub fn user(&self, key: &str) -> TeamsUser {
        self.lock().user(key)
    }

    /// The channel called `name` in the team (made on first use): `19:…@thread.tacv2`.
    pub fn channel(&self, name: &str) -> String {
        self.lock().channel(name)
    }

    /// The conversation id of the thread rooted at `root` in `channel`.
    pub fn thread(channel: &str, root: &str) -> String {
        format!("{};messageid={root}", base_of(channel))
    }

    /// A group chat (made on first use): `19:…@thread.v2`.
    pub fn group_chat(&self, name: &str) -> String {
        let id = format!(
            "19:{}@thread.v2",
            &hex_digest(&format!("group:{name}"))[..32]
        );
        self.lock().conversations.insert(
            id.clone(),
            Conversation {
                kind: ConvKind::GroupChat,
                name: name.to_string(),
            },
        );
        id
    }

    /// The bot's 1:1 chat with `user` (`a:…`; the same id the bot gets when it
    /// creates the conversation).
    pub fn personal_chat(&self, user: &str) -> String {
        let mut st = self.lock();
        let u = st.user(user);
        st.personal_chat(&u)
    }

    // ----- knobs -----------------------------------------------------------

    /// The next `times` Connector calls get `status` (429, 412, 502, 503, …),
    /// with `Retry-After: retry_after` when given.
    pub fn fail_next(&self, times: usize, status: u16, retry_after: Option<u64>) {
        let mut st = self.lock();
        for _ in 0..times {
            st.faults.push_back(Fault::Status(status, retry_after));
        }
    }

    /// The next `times` Connector calls are answered (normally) after `delay`.
    pub fn delay_next(&self, times: usize, delay: Duration) {
        let mut st = self.lock();
        for _ in 0..times {
            st.faults.push_back(Fault::Delay(delay));
        }
    }

    /// From now on the bot is not in this conversation (a channel, chat, or a
    /// thread's channel): `403 BotNotInConversationRoster`.
    pub fn forbid_conversation(&self, id: &str) {
        self.lock().forbidden.insert(base_of(id).to_string());
    }

    /// Every access token issued so far is expired from now on.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for exp in self.lock().tokens.values_mut() {
            *exp = now;
        }
    }

    /// Tokens issued from now on last `d` (and say so in `expires_in`).
    pub fn set_token_lifetime(&self, d: Duration) {
        self.lock().token_lifetime = Some(d);
    }

    /// Replaces the signing key by a new one with a new `kid`; the old key
    /// leaves the JWKS, so a bot must refetch it to accept new activities.
    /// Returns the new kid.
    pub async fn rotate_key(&self) -> String {
        let key = tokio::task::spawn_blocking(|| Key::generate(&["msteams"]))
            .await
            .expect("key task");
        let kid = key.kid.clone();
        self.keys().main = Arc::new(key);
        kid
    }

    /// The kid activities are signed with now.
    pub fn kid(&self) -> String {
        self.keys().main.kid.clone()
    }

    // ----- counters --------------------------------------------------------

    pub fn metadata_fetches(&self) -> usize {
        self.lock().metadata_fetches
    }

    pub fn jwks_fetches(&self) -> usize {
        self.lock().jwks_fetches
    }

    /// Token endpoint requests, failed ones included.
    pub fn token_requests(&self) -> usize {
        self.lock().token_requests
    }

    /// How many Connector calls were answered 429 by the per-thread limits.
    pub fn throttled(&self) -> usize {
        self.lock().throttled
    }

    /// Every request to the fake, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    // ----- what the bot sent -----------------------------------------------

    /// Every message, reply, update and 1:1 message the bot sent, in order.
    pub fn messages(&self) -> Vec<Message> {
        self.lock().messages.clone()
    }

    /// The messages from index `n` on (what a follower has not read yet),
    /// without copying the ones before.
    pub fn messages_since(&self, n: usize) -> Vec<Message> {
        let st = self.lock();
        st.messages
            .get(n..)
            .map(<[Message]>::to_vec)
            .unwrap_or_default()
    }

    /// Every Adaptive Card the bot sent: in messages and updates, in invoke
    /// answers and in dialogs.
    pub fn cards(&self) -> Vec<Value> {
        self.lock().cards.clone()
    }

    /// The activity as it now stands (its last send or update).
    pub fn current(&self, activity_id: &str) -> Option<Message> {
        self.lock()
            .messages
            .iter()
            .rev()
            .find(|m| m.activity_id == activity_id)
            .cloned()
    }

    /// Every update of `activity_id` so far, in order; marks them taken.
    pub fn updates_of(&self, activity_id: &str) -> Vec<Message> {
        let mut st = self.lock();
        let mut out = Vec::new();
        for i in 0..st.messages.len() {
            if st.messages[i].kind == Kind::Update && st.messages[i].activity_id == activity_id {
                st.taken[i] = true;
                out.push(st.messages[i].clone());
            }
        }
        out
    }

    fn describe(&self) -> String {
        let st = self.lock();
        let mut out = String::new();
        for c in &st.calls {
            out.push_str("\n  ");
            out.push_str(&c.summary());
        }
        for (i, m) in st.messages.iter().enumerate() {
            out.push_str(&format!(
                "\n  {}{}",
                if st.taken[i] { "(taken) " } else { "" },
                m.summary()
            ));
        }
        if out.is_empty() {
            out.push_str(" (nothing)");
        }
        out
    }

    async fn next_where(&self, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let changed = self.inner.changed.notified();
            {
                let mut st = self.lock();
                if let Some(i) =
                    (0..st.messages.len()).find(|&i| !st.taken[i] && pred(&st.messages[i]))
                {
                    st.taken[i] = true;
                    return st.messages[i].clone();
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "fake Teams: no new {what} within {WAIT:?}; so far:{}",
                    self.describe()
                );
            }
        }
    }

    /// The next post, reply or 1:1 message nobody took yet; waits up to 10 s,
    /// then panics listing everything the bot did.
    pub async fn next_message(&self) -> Message {
        self.next_where("message", |m| m.kind != Kind::Update).await
    }

    /// The next update nobody took yet.
    pub async fn next_update(&self) -> Message {
        self.next_where("update", |m| m.kind == Kind::Update).await
    }

    /// The next update of `activity_id` nobody took yet.
    pub async fn next_update_of(&self, activity_id: &str) -> Message {
        let id = activity_id.to_string();
        self.next_where(&format!("update of {activity_id}"), move |m| {
            m.kind == Kind::Update && m.activity_id == id
        })
        .await
    }

    /// Waits `d` and panics if, meanwhile, the bot sent anything nobody took.
    pub async fn wait_quiet(&self, d: Duration) {
        let before = self.lock().messages.len();
        tokio::time::sleep(d).await;
        let st = self.lock();
        let news: Vec<String> = (before..st.messages.len())
            .filter(|&i| !st.taken[i])
            .map(|i| st.messages[i].summary())
            .collect();
        drop(st);
        assert!(
            news.is_empty(),
            "fake Teams: expected quiet for {d:?}, got:\n  {}",
            news.join("\n  ")
        );
    }

    /// Panics listing every message the bot sent that no `next_*` took.
    pub fn assert_all_taken(&self) {
        let st = self.lock();
        let left: Vec<String> = (0..st.messages.len())
            .filter(|&i| !st.taken[i])
            .map(|i| st.messages[i].summary())
            .collect();
        drop(st);
        crate::report::assert_none("fake Teams: the test never looked at", &left);
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.lock().violations.clone()
    }

    /// Returns and forgets the violations (for tests that provoke them).
    pub fn take_violations(&self) -> Vec<Violation> {
        std::mem::take(&mut self.lock().violations)
    }

    pub fn assert_no_violations(&self) {
        let v = self.violations();
        crate::report::assert_none(
            &format!("fake Teams: {} Teams rule violation(s)", v.len()),
            &v,
        );
    }

    /// The end of a test: no violations, every message looked at.
    pub fn finish(&self) {
        self.assert_no_violations();
        self.assert_all_taken();
    }

    // ----- tokens ----------------------------------------------------------

    /// The `Authorization` header Teams would put on `activity` (`None` for
    /// [`Forgery::NoToken`]), forged as asked.
    pub fn auth_header(&self, activity: &Value, forgery: Option<&Forgery>) -> Option<String> {
        let now = chrono::Utc::now().timestamp();
        let service_url = activity["serviceUrl"].as_str().unwrap_or("").to_string();
        let mut claims = json!({
            "serviceurl": service_url,
            "nbf": now - 5,
            "exp": now + 3600,
            "iat": now - 5,
            "iss": ISSUER,
            "aud": self.inner.app_id,
        });
        let keys = self.keys();
        let mut key = keys.main.clone();
        let mut kid = true;
        match forgery {
            None => {}
            Some(Forgery::NoToken) => return None,
            Some(Forgery::NotBearer) => {
                let basic =
                    B64_STD.encode(format!("{}:{}", self.inner.app_id, self.inner.app_password));
                return Some(format!("Basic {basic}"));
            }
            Some(Forgery::WrongKey) => key = keys.rogue.clone(),
            Some(Forgery::WrongAudience) => {
                claims["aud"] = json!("00000000-0000-0000-0000-00000000beef")
            }
            Some(Forgery::WrongIssuer) => {
                claims["iss"] = json!(format!("https://sts.windows.net/{}/", self.inner.tenant))
            }
            Some(Forgery::Expired) => {
                claims["iat"] = json!(now - 4200);
                claims["nbf"] = json!(now - 4200);
                claims["exp"] = json!(now - 600);
            }
            Some(Forgery::NotYetValid) => {
                claims["nbf"] = json!(now + 600);
                claims["iat"] = json!(now + 600);
            }
            Some(Forgery::ServiceUrlMismatch) => {
                claims["serviceurl"] = json!("https://smba.evil.example/teams/")
            }
            Some(Forgery::UnendorsedChannel) => key = keys.webchat.clone(),
            Some(Forgery::NoKid) => kid = false,
            Some(Forgery::AlgNone) => {
                let head = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
                let body = B64.encode(claims.to_string());
                return Some(format!("Bearer {head}.{body}."));
            }
            Some(Forgery::Hs256) => {
                let mut h = Header::new(Algorithm::HS256);
                h.kid = Some(key.kid.clone());
                let t = jsonwebtoken::encode(
                    &h,
                    &claims,
                    &EncodingKey::from_secret(self.inner.app_password.as_bytes()),
                )
                .expect("HS256 encodes");
                return Some(format!("Bearer {t}"));
            }
            Some(Forgery::BadSignature) => {}
        }
        drop(keys);
        let mut token = sign(&key, &claims, kid);
        if forgery == Some(&Forgery::BadSignature) {
            let sig_at = token.rfind('.').expect("three parts") + 1;
            let c = token.as_bytes()[sig_at + 5];
            let swapped = if c == b'A' { 'B' } else { 'A' };
            token.replace_range(sig_at + 5..sig_at + 6, &swapped.to_string());
        }
        Some(format!("Bearer {token}"))
    }

    // ----- what Teams sends to the bot -------------------------------------

    fn base_activity(&self, kind: &str, user: &TeamsUser, conversation: &str, id: &str) -> Value {
        let base = base_of(conversation);
        let (conv_kind, conv_name) = {
            let st = self.lock();
            match st.conversations.get(base) {
                Some(c) => (c.kind, c.name.clone()),
                None => panic!(
                    "fake Teams: unknown conversation {conversation:?} (make it with channel(), group_chat() or personal_chat())"
                ),
            }
        };
        let tenant = &self.inner.tenant;
        let now = chrono::Utc::now();
        let mut conv = json!({
            "conversationType": match conv_kind {
                ConvKind::Channel => "channel",
                ConvKind::GroupChat => "groupChat",
                ConvKind::Personal => "personal",
            },
            "tenantId": tenant,
            "id": conversation,
        });
        let channel_data = match conv_kind {
            ConvKind::Channel => {
                conv["isGroup"] = json!(true);
                let mut channel = json!({"id": base});
                if base != self.inner.team_id {
                    channel["name"] = json!(conv_name);
                }
                json!({
                    "teamsChannelId": base,
                    "teamsTeamId": self.inner.team_id,
                    "channel": channel,
                    "team": {
                        "id": self.inner.team_id,
                        "name": "Platform",
                        "aadGroupId": guid(&format!("team:{}", self.inner.team_id)),
                    },
                    "tenant": {"id": tenant},
                })
            }
            ConvKind::GroupChat => {
                conv["isGroup"] = json!(true);
                json!({"tenant": {"id": tenant}})
            }
            ConvKind::Personal => json!({"tenant": {"id": tenant}}),
        };
        json!({
            "type": kind,
            "id": id,
            "timestamp": now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "localTimestamp": now.with_timezone(&chrono::FixedOffset::east_opt(3600).expect("offset"))
                .format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
            "serviceUrl": self.service_url(),
            "channelId": "msteams",
            "from": {"id": user.id, "name": user.name, "aadObjectId": user.aad_object_id},
            "conversation": conv,
            "recipient": {"id": self.bot_id(), "name": BOT_NAME},
            "entities": [{
                "type": "clientInfo",
                "locale": "en-US",
                "country": "US",
                "platform": "Web",
                "timezone": "Europe/Berlin",
            }],
            "channelData": channel_data,
            "locale": "en-US",
            "localTimezone": "Europe/Berlin",
        })
    }

    /// The message activity `user` sends typing `text` in `conversation`: a
    /// channel id (a new thread), a thread (`{channel};messageid={root}`), a
    /// group chat or a 1:1 chat. In channels and group chats the bot is
    /// @mentioned first (`<at>rerun-bot</at> …`, with its `mention` entity and
    /// Teams' `text/html` attachment), as it only hears mentions there.
    pub fn message_activity(&self, user: &str, conversation: &str, text: &str) -> Value {
        let u = self.user(user);
        let id = self.lock().next_id();
        let is_channel_root = !conversation.contains(";messageid=")
            && self.conv_kind(conversation) == Some(ConvKind::Channel);
        let conv_id = if is_channel_root {
            FakeTeams::thread(conversation, &id)
        } else {
            conversation.to_string()
        };
        let mut a = self.base_activity("message", &u, &conv_id, &id);
        let personal = self.conv_kind(conversation) == Some(ConvKind::Personal);
        let at = format!("<at>{BOT_NAME}</at>");
        let text = if personal || text.contains("<at>") {
            text.to_string()
        } else {
            format!("{at} {text}")
        };
        a["text"] = json!(text);
        a["textFormat"] = json!("plain");
        if text.contains(&at) {
            a["entities"].as_array_mut().expect("entities").insert(
                0,
                json!({
                    "type": "mention",
                    "mentioned": {"id": self.bot_id(), "name": BOT_NAME},
                    "text": at,
                }),
            );
        }
        if !personal {
            let html = html_escape(&text).replace(
                &html_escape(&at),
                &format!(
                    "<span itemscope=\"\" itemtype=\"http://schema.skype.com/Mention\" itemid=\"0\">{BOT_NAME}</span>"
                ),
            );
            a["attachments"] =
                json!([{"contentType": "text/html", "content": format!("<p>{html}</p>")}]);
        }
        a
    }

    /// `user` types `text` in `conversation` (see [`FakeTeams::message_activity`]).
    pub async fn send_message(&self, user: &str, conversation: &str, text: &str) -> BotReply {
        let a = self.message_activity(user, conversation, text);
        self.send_activity(a).await
    }

    fn conv_kind(&self, conversation: &str) -> Option<ConvKind> {
        self.lock()
            .conversations
            .get(base_of(conversation))
            .map(|c| c.kind)
    }

    fn invoke(
        &self,
        user: &str,
        conversation: &str,
        reply_to: Option<&str>,
        name: &str,
        value: Value,
    ) -> Value {
        let u = self.user(user);
        let id = format!("f:{}", self.lock().next_id());
        let mut a = self.base_activity("invoke", &u, conversation, &id);
        a["name"] = json!(name);
        a["value"] = value;
        if let Some(r) = reply_to {
            a["replyToId"] = json!(r);
            a["channelData"]["source"] = json!({"name": "message"});
            a["channelData"]["legacy"] = json!({"replyToId": r});
        }
        a
    }

    /// The activity Teams sends when `user` clicks the button `verb_or_title`
    /// on `message` (as it now stands), with `values` typed into the card's
    /// inputs: `Action.Execute` → invoke `adaptiveCard/action`;
    /// `Action.Submit` with `data.msteams.type` `task/fetch` → invoke
    /// `task/fetch`; another `Action.Submit` → a message activity carrying
    /// `value`. Panics if there is no such button.
    pub fn click_activity(
        &self,
        user: &str,
        message: &Message,
        verb_or_title: &str,
        values: &[(&str, &str)],
    ) -> Value {
        let now = self.current(&message.activity_id);
        let shown = now.as_ref().unwrap_or(message);
        let Some(card) = &shown.card else {
            panic!(
                "fake Teams: activity {} has no card to click:\n{}",
                shown.activity_id,
                shown.render()
            );
        };
        let Some(action) = find_action(card, verb_or_title).cloned() else {
            panic!(
                "fake Teams: the card has no button {verb_or_title:?} (buttons: {:?}):\n{}",
                shown.buttons(),
                shown.render()
            );
        };
        let data = merged_data(card, &action, values);
        let conv = &shown.conversation;
        let reply_to = Some(shown.activity_id.as_str());
        match action["type"].as_str().unwrap_or("") {
            "Action.Execute" => {
                let mut act =
                    json!({"type": "Action.Execute", "verb": action["verb"], "data": data});
                if let Some(t) = action.get("title") {
                    act["title"] = t.clone();
                }
                if let Some(i) = action.get("id") {
                    act["id"] = i.clone();
                }
                self.invoke(
                    user,
                    conv,
                    reply_to,
                    "adaptiveCard/action",
                    json!({"action": act, "trigger": "manual"}),
                )
            }
            "Action.Submit" if data["msteams"]["type"] == "task/fetch" => self.invoke(
                user,
                conv,
                reply_to,
                "task/fetch",
                json!({"type": "task/fetch", "data": data, "context": {"theme": "default"}}),
            ),
            "Action.Submit" => {
                let u = self.user(user);
                let id = self.lock().next_id();
                let mut a = self.base_activity("message", &u, conv, &id);
                a["replyToId"] = json!(shown.activity_id);
                a["value"] = data;
                a["channelData"]["source"] = json!({"name": "message"});
                a["channelData"]["legacy"] = json!({"replyToId": shown.activity_id});
                a
            }
            other => {
                panic!("fake Teams: button {verb_or_title:?} is an {other}, nothing the bot hears")
            }
        }
    }

    /// `user` clicks `verb_or_title` on `message` (see [`FakeTeams::click_activity`]).
    pub async fn click(&self, user: &str, message: &Message, verb_or_title: &str) -> BotReply {
        self.click_with(user, message, verb_or_title, &[]).await
    }

    /// As [`FakeTeams::click`], with values typed into the card's inputs first.
    pub async fn click_with(
        &self,
        user: &str,
        message: &Message,
        verb_or_title: &str,
        values: &[(&str, &str)],
    ) -> BotReply {
        let a = self.click_activity(user, message, verb_or_title, values);
        self.send_activity(a).await
    }

    /// The `task/submit` invoke for `dialog` with `values` (input id → value;
    /// for a ChoiceSet the choice's value, for a Toggle its valueOn/valueOff)
    /// merged into its first `Action.Submit`'s data, as Teams does. Inputs not
    /// given keep their initial `value`; empty ones are left out.
    pub fn dialog_submit_activity(
        &self,
        user: &str,
        dialog: &Dialog,
        values: &[(&str, &str)],
    ) -> Value {
        let Some(action) = actions_of(&dialog.card)
            .into_iter()
            .find(|a| a["type"] == "Action.Submit" || a["type"] == "Action.Execute")
            .cloned()
        else {
            panic!(
                "fake Teams: the dialog has no submit button:\n{}",
                dialog.render()
            );
        };
        let data = merged_data(&dialog.card, &action, values);
        self.invoke(
            user,
            &dialog.conversation,
            dialog.reply_to.as_deref(),
            "task/submit",
            json!({"type": "task/submit", "data": data, "context": {"theme": "default"}}),
        )
    }

    /// `user` fills in and submits `dialog`.
    pub async fn submit_dialog(
        &self,
        user: &str,
        dialog: &Dialog,
        values: &[(&str, &str)],
    ) -> BotReply {
        let a = self.dialog_submit_activity(user, dialog, values);
        self.send_activity(a).await
    }

    /// POSTs `activity` to the bot endpoint with a valid token.
    pub async fn send_activity(&self, activity: Value) -> BotReply {
        self.send_activity_with(activity, None).await
    }

    /// POSTs `activity` to the bot endpoint, its token forged as asked.
    pub async fn send_forged(&self, activity: Value, forgery: Forgery) -> BotReply {
        self.send_activity_with(activity, Some(forgery)).await
    }

    async fn send_activity_with(&self, activity: Value, forgery: Option<Forgery>) -> BotReply {
        let Some(endpoint) = self.lock().bot_endpoint.clone() else {
            panic!("fake Teams: no bot endpoint (call set_bot_endpoint first)");
        };
        self.remember_inbound(&activity);
        let mut req = self
            .inner
            .http
            .post(&endpoint)
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .header(
                header::USER_AGENT,
                "Microsoft-SkypeBotApi (Microsoft-BotFramework 3.0)",
            )
            .body(activity.to_string());
        if let Some(h) = self.auth_header(&activity, forgery.as_ref()) {
            req = req.header(header::AUTHORIZATION, h);
        }
        let res = match req.send().await {
            Ok(r) => r,
            Err(e) => panic!("fake Teams: POST {endpoint} failed: {e}"),
        };
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        let reply = BotReply {
            status,
            body,
            activity,
        };
        if forgery.is_none() {
            self.check_reply(&reply);
        }
        reply
    }

    /// Users' messages are activities the bot may reply to or start a thread from.
    fn remember_inbound(&self, activity: &Value) {
        if activity["type"] != "message" {
            return;
        }
        let (Some(id), Some(conv)) = (
            activity["id"].as_str(),
            activity["conversation"]["id"].as_str(),
        ) else {
            return;
        };
        let (base, root) = split_conv(conv);
        self.lock()
            .activities
            .entry(id.to_string())
            .or_insert(Activity {
                base: base.to_string(),
                root: root.map(str::to_string),
                from_bot: false,
                deleted: false,
            });
    }

    /// Teams' rules for the answer to an activity.
    fn check_reply(&self, reply: &BotReply) {
        let a = &reply.activity;
        let name = a["name"].as_str().unwrap_or("");
        let call = format!("answer to {} {}", a["type"].as_str().unwrap_or(""), name);
        let mut errors = Vec::new();
        let mut cards = Vec::new();
        let b = &reply.body;
        if a["type"] != "invoke" {
            if !(200..300).contains(&reply.status) {
                errors.push(format!("HTTP {} to a {} activity", reply.status, a["type"]));
            }
        } else if name == "adaptiveCard/action" {
            match b["type"].as_str() {
                _ if reply.status != 200 => errors.push(format!(
                    "HTTP {} (Teams wants 200 with a statusCode in the body)",
                    reply.status
                )),
                Some(ADAPTIVE_CARD) => {
                    errors.extend(check_card(&b["value"], "value"));
                    cards.push(b["value"].clone());
                }
                Some("application/vnd.microsoft.activity.message") if b["value"].is_string() => {}
                Some("application/vnd.microsoft.error") if b["value"]["message"].is_string() => {}
                _ => errors.push(format!(
                    "not a Universal Action answer: {}",
                    cut(&b.to_string(), 200)
                )),
            }
            if reply.status == 200 && !b["statusCode"].is_u64() {
                errors.push("no numeric statusCode".into());
            }
        } else if name == "task/fetch" || name == "task/submit" {
            let task = &b["task"];
            if reply.status != 200 {
                errors.push(format!("HTTP {} to {name}", reply.status));
            } else if b.is_null() && name == "task/submit" {
                // An empty answer closes the dialog.
            } else if task["type"] == "continue" {
                let card = &task["value"]["card"];
                if card["contentType"] != ADAPTIVE_CARD {
                    errors.push(format!("dialog card contentType {}", card["contentType"]));
                }
                errors.extend(check_card(&card["content"], "task.value.card.content"));
                cards.push(card["content"].clone());
            } else if task["type"] == "message" {
                if !task["value"].is_string() {
                    errors.push("task message value is not a string".into());
                }
            } else {
                errors.push(format!(
                    "not a task module answer: {}",
                    cut(&b.to_string(), 200)
                ));
            }
        }
        let mut st = self.lock();
        st.cards.extend(cards);
        st.violate(&call, errors);
    }

    // ----- the server ------------------------------------------------------

    fn base_for(&self, headers: &HeaderMap) -> String {
        let fwd = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        match (fwd("x-forwarded-proto"), fwd("x-forwarded-host")) {
            (Some(proto), Some(host)) => format!("{proto}://{host}"),
            _ => self.url(),
        }
    }

    async fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let raw_path = uri.path().to_string();
        let segs: Vec<String> = raw_path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let path = format!("/{}", segs.join("/"));
        let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
        let tenant = self.inner.tenant.as_str();
        let outcome: Outcome = match (method.as_str(), seg.as_slice()) {
            ("GET", ["v1", ".well-known", "openidconfiguration"]) => {
                self.lock().metadata_fetches += 1;
                Ok((
                    200,
                    json!({
                        "issuer": ISSUER,
                        "authorization_endpoint": "https://invalid.botframework.com",
                        "jwks_uri": format!("{}/v1/.well-known/keys", self.url()),
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                    }),
                ))
            }
            ("GET", ["v1", ".well-known", "keys"]) => {
                self.lock().jwks_fetches += 1;
                let keys = self.keys();
                Ok((200, json!({"keys": [keys.main.jwk(), keys.webchat.jwk()]})))
            }
            ("GET", [t, "v2.0", ".well-known", "openid-configuration"]) => {
                if *t == tenant {
                    Ok((200, tenant_config(&self.base_for(&headers), tenant)))
                } else {
                    Err(aad_error(
                        400,
                        "invalid_tenant",
                        &format!("AADSTS90002: Tenant '{t}' not found."),
                    ))
                }
            }
            ("GET", [_, "discovery", "instance"]) => {
                let base = self.base_for(&headers);
                let host = base
                    .split_once("://")
                    .map_or(base.as_str(), |(_, h)| h)
                    .to_string();
                Ok((
                    200,
                    json!({
                        "tenant_discovery_endpoint": format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
                        "api-version": "1.1",
                        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
                    }),
                ))
            }
            ("POST", [t, "oauth2", "v2.0", "token"]) => self.token(t, &headers, &body),
            (_, ["teams", "v3", "conversations", rest @ ..]) => {
                let m = method.as_str().to_string();
                let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
                self.connector(&m, &rest, &headers, &body).await
            }
            _ => Err(fail(
                404,
                "NotFound",
                &format!("fake Teams: no route {method} {path}"),
            )),
        };
        let (status, response, retry_after) = match outcome {
            Ok((s, b)) => (s, b, None),
            Err(f) => (f.status, f.body, f.retry_after),
        };
        let request = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        self.lock().calls.push(Call {
            method: method.to_string(),
            path,
            status,
            request,
            response: response.clone(),
            at: Instant::now(),
        });
        self.inner.changed.notify_waiters();
        let mut res = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            response.to_string(),
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

    fn token(&self, tenant: &str, headers: &HeaderMap, body: &[u8]) -> Outcome {
        self.lock().token_requests += 1;
        let form: HashMap<String, String> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        let (mut id, mut secret) = (
            form.get("client_id").cloned(),
            form.get("client_secret").cloned(),
        );
        if let Some(basic) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| B64_STD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            && let Some((i, s)) = basic.split_once(':')
        {
            id = Some(i.to_string());
            secret = Some(s.to_string());
        }
        if tenant != self.inner.tenant {
            return Err(aad_error(
                400,
                "invalid_request",
                &format!(
                    "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            ));
        }
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return Err(aad_error(
                400,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
            ));
        }
        if id.as_deref() != Some(self.inner.app_id.as_str()) {
            return Err(aad_error(
                400,
                "unauthorized_client",
                &format!(
                    "AADSTS700016: Application with identifier '{}' was not found in the directory '{tenant}'.",
                    id.unwrap_or_default()
                ),
            ));
        }
        if secret.as_deref() != Some(self.inner.app_password.as_str()) {
            return Err(aad_error(
                401,
                "invalid_client",
                &format!(
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    self.inner.app_id
                ),
            ));
        }
        let scopes: Vec<&str> = form
            .get("scope")
            .map(|s| s.split_whitespace().collect())
            .unwrap_or_default();
        if !scopes.contains(&SCOPE)
            || scopes
                .iter()
                .any(|s| *s != SCOPE && !["openid", "profile", "offline_access"].contains(s))
        {
            return Err(aad_error(
                400,
                "invalid_scope",
                &format!(
                    "AADSTS1002012: The provided value for scope {} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                    form.get("scope").cloned().unwrap_or_default()
                ),
            ));
        }
        let lifetime = self.lock().token_lifetime.unwrap_or(TOKEN_LIFETIME);
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "aud": ISSUER,
            "iss": format!("https://sts.windows.net/{tenant}/"),
            "iat": now - 5,
            "nbf": now - 5,
            "exp": now + lifetime.as_secs() as i64,
            "appid": self.inner.app_id,
            "appidacr": "1",
            "idp": format!("https://sts.windows.net/{tenant}/"),
            "tid": tenant,
            "ver": "1.0",
            "jti": hex_digest(&format!("{now}:{}", self.lock().next_id())),
        });
        let key = self.keys().main.clone();
        let token = sign(&key, &claims, true);
        self.lock()
            .tokens
            .insert(token.clone(), Instant::now() + lifetime);
        Ok((
            200,
            json!({
                "token_type": "Bearer",
                "expires_in": lifetime.as_secs(),
                "ext_expires_in": lifetime.as_secs(),
                "access_token": token,
            }),
        ))
    }

    async fn connector(
        &self,
        method: &str,
        rest: &[String],
        headers: &HeaderMap,
        body: &[u8],
    ) -> Outcome {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let valid = bearer.is_some_and(|t| {
            self.lock()
                .tokens
                .get(t)
                .is_some_and(|exp| *exp > Instant::now())
        });
        if !valid {
            return Err(Failure {
                status: 401,
                body: json!({"message": "Authorization has been denied for this request."}),
                retry_after: None,
            });
        }
        let call = format!("{method} /v3/conversations/{}", rest.join("/"));
        if body.len() > MAX_BODY {
            self.lock().violate(
                &call,
                vec![format!(
                    "body of {} bytes (Teams takes at most {MAX_BODY})",
                    body.len()
                )],
            );
            return Err(fail(413, "MessageSizeTooBig", "Message size too big"));
        }
        let fault = self.lock().faults.pop_front();
        match fault {
            Some(Fault::Status(status, retry_after)) => {
                let code = match status {
                    429 => "TooManyRequests",
                    412 => "PreconditionFailed",
                    403 => "Forbidden",
                    404 => "NotFound",
                    400 => "BadArgument",
                    _ => "ServiceError",
                };
                let mut f = fail(status, code, &format!("fake Teams: injected HTTP {status}"));
                f.retry_after = retry_after;
                return Err(f);
            }
            Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
            None => {}
        }
        let parsed = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(v) => v,
                Err(e) => return Err(fail(400, "BadSyntax", &format!("invalid JSON: {e}"))),
            }
        };
        let mut st = self.lock();
        let r = match (method, rest) {
            ("POST", []) => create_conversation(&mut st, &self.inner, &call, &parsed),
            ("POST", [cid, a]) if a == "activities" => send(&mut st, &call, cid, None, &parsed),
            ("POST", [cid, a, aid]) if a == "activities" => {
                send(&mut st, &call, cid, Some(aid), &parsed)
            }
            ("PUT", [cid, a, aid]) if a == "activities" => {
                update(&mut st, &call, cid, aid, &parsed)
            }
            ("DELETE", [cid, a, aid]) if a == "activities" => delete(&mut st, cid, aid),
            ("GET", [cid, m]) if m == "members" || m == "pagedmembers" => {
                known_conv(&st, cid)?;
                let members: Vec<Value> = st
                    .users
                    .values()
                    .map(|u| member_json(u, &self.inner.tenant))
                    .collect();
                if m == "members" {
                    Ok((200, Value::Array(members)))
                } else {
                    Ok((200, json!({"members": members})))
                }
            }
            ("GET", [cid, m, uid]) if m == "members" => {
                known_conv(&st, cid)?;
                match st.user_by_id(uid) {
                    Some(u) => Ok((200, member_json(&u, &self.inner.tenant))),
                    None => Err(fail(
                        404,
                        "MemberNotFoundInConversation",
                        "The member was not found in the conversation.",
                    )),
                }
            }
            _ => Err(fail(
                404,
                "NotFound",
                &format!("fake Teams: no Connector route {call}"),
            )),
        };
        drop(st);
        self.inner.changed.notify_waiters();
        r
    }
}

// ----- the Connector's operations ------------------------------------------------

fn known_conv(st: &FakeState, cid: &str) -> Result<ConvKind, Failure> {
    let base = base_of(cid);
    if st.forbidden.contains(base) {
        return Err(fail(
            403,
            "BotNotInConversationRoster",
            "The bot is not part of the conversation roster.",
        ));
    }
    st.conversations
        .get(base)
        .map(|c| c.kind)
        .ok_or_else(|| not_found(cid))
}

fn create_conversation(st: &mut FakeState, inner: &Inner, call: &str, p: &Value) -> Outcome {
    let channel = p["channelData"]["channel"]["id"].as_str();
    let members = p["members"].as_array().cloned().unwrap_or_default();
    if let Some(channel) = channel {
        if known_conv(st, channel)? != ConvKind::Channel {
            return Err(not_found(channel));
        }
        if !p["activity"].is_object() {
            return Err(fail(
                400,
                "BadArgument",
                "Activity is required to create a channel conversation.",
            ));
        }
        let key = channel.to_string();
        if let Some(secs) = st.throttle(&key, Instant::now()) {
            return Err(throttled(secs));
        }
        let id = st.next_id();
        let conv = FakeTeams::thread(channel, &id);
        record(
            st,
            call,
            Kind::Post,
            &conv,
            &id,
            Some(&id),
            None,
            &p["activity"],
        )?;
        return Ok((201, json!({"id": conv, "activityId": id})));
    }
    if p["isGroup"] == json!(true) || members.len() != 1 {
        return Err(fail(
            400,
            "BadSyntax",
            "Incorrect conversation creation parameters (a channel, or exactly one member with isGroup false)",
        ));
    }
    let tenant = p["tenantId"]
        .as_str()
        .or_else(|| p["channelData"]["tenant"]["id"].as_str());
    if tenant != Some(inner.tenant.as_str()) {
        return Err(fail(
            400,
            "BadSyntax",
            "Incorrect conversation creation parameters (tenantId or channelData.tenant.id missing or wrong)",
        ));
    }
    let member = members[0]["id"].as_str().unwrap_or("");
    let Some(user) = st.user_by_id(member) else {
        return Err(fail(
            403,
            "Forbidden",
            &format!("The bot is not installed for user {member:?}."),
        ));
    };
    let conv = st.personal_chat(&user);
    if p["activity"].is_object() {
        if let Some(secs) = st.throttle(&conv, Instant::now()) {
            return Err(throttled(secs));
        }
        let id = st.next_id();
        record(
            st,
            call,
            Kind::Personal,
            &conv,
            &id,
            None,
            None,
            &p["activity"],
        )?;
        return Ok((201, json!({"id": conv, "activityId": id})));
    }
    Ok((201, json!({"id": conv})))
}

fn send(
    st: &mut FakeState,
    call: &str,
    cid: &str,
    reply_to: Option<&String>,
    p: &Value,
) -> Outcome {
    let kind = known_conv(st, cid)?;
    let (base, mut root) = split_conv(cid);
    if let Some(r) = root
        && !st
            .activities
            .get(r)
            .is_some_and(|a| a.base == base && !a.deleted)
    {
        return Err(not_found(cid));
    }
    if kind == ConvKind::Channel
        && root.is_none()
        && let Some(r) = reply_to
    {
        root = Some(
            st.activities
                .get(r.as_str())
                .and_then(|a| a.root.as_deref())
                .unwrap_or(r),
        );
    }
    let root = root.map(str::to_string);
    let thread = match &root {
        Some(r) => FakeTeams::thread(base, r),
        None => base.to_string(),
    };
    if let Some(secs) = st.throttle(&thread, Instant::now()) {
        return Err(throttled(secs));
    }
    let id = st.next_id();
    let reply_to = reply_to
        .cloned()
        .or_else(|| p["replyToId"].as_str().map(str::to_string));
    let (kind, conv, root) = match (kind, root) {
        (ConvKind::Channel, Some(r)) => (Kind::Reply, FakeTeams::thread(base, &r), Some(r)),
        (ConvKind::Channel, None) => (Kind::Post, FakeTeams::thread(base, &id), Some(id.clone())),
        (ConvKind::GroupChat, _) => (Kind::Post, base.to_string(), None),
        (ConvKind::Personal, _) => (Kind::Personal, base.to_string(), None),
    };
    record(
        st,
        call,
        kind,
        &conv,
        &id,
        root.as_deref(),
        reply_to.as_deref(),
        p,
    )?;
    Ok((201, json!({"id": id})))
}

fn update(st: &mut FakeState, call: &str, cid: &str, aid: &str, p: &Value) -> Outcome {
    known_conv(st, cid)?;
    let (base, _) = split_conv(cid);
    let Some(a) = st
        .activities
        .get(aid)
        .filter(|a| a.base == base && !a.deleted)
    else {
        return Err(fail(
            404,
            "ActivityNotFound",
            &format!("Activity {aid} not found in {cid}."),
        ));
    };
    if !a.from_bot {
        return Err(fail(
            403,
            "Forbidden",
            "A bot can only update its own messages.",
        ));
    }
    let root = a.root.clone();
    let thread = match &root {
        Some(r) => FakeTeams::thread(base, r),
        None => base.to_string(),
    };
    if let Some(secs) = st.throttle(&thread, Instant::now()) {
        return Err(throttled(secs));
    }
    record(
        st,
        call,
        Kind::Update,
        &thread,
        aid,
        root.as_deref(),
        None,
        p,
    )?;
    Ok((200, json!({"id": aid})))
}

fn delete(st: &mut FakeState, cid: &str, aid: &str) -> Outcome {
    known_conv(st, cid)?;
    let (base, _) = split_conv(cid);
    match st
        .activities
        .get_mut(aid)
        .filter(|a| a.base == base && a.from_bot && !a.deleted)
    {
        Some(a) => {
            a.deleted = true;
            Ok((200, Value::Null))
        }
        None => Err(fail(
            404,
            "ActivityNotFound",
            &format!("Activity {aid} not found in {cid}."),
        )),
    }
}

fn throttled(secs: u64) -> Failure {
    Failure {
        status: 429,
        body: json!({"error": {"code": "TooManyRequests", "message": "Too many requests in this thread; retry later."}}),
        retry_after: Some(secs),
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    st: &mut FakeState,
    call: &str,
    kind: Kind,
    conversation: &str,
    id: &str,
    root: Option<&str>,
    reply_to: Option<&str>,
    activity: &Value,
) -> Result<(), Failure> {
    let (errors, reject) = check_activity(activity);
    st.violate(call, errors);
    if let Some(f) = reject {
        return Err(f);
    }
    let card = activity["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["contentType"] == ADAPTIVE_CARD)
        .map(|a| a["content"].clone());
    if let Some(c) = &card {
        st.cards.push(c.clone());
    }
    let (base, _) = split_conv(conversation);
    let channel = st
        .conversations
        .get(base)
        .filter(|c| c.kind == ConvKind::Channel)
        .map(|_| base.to_string());
    if kind != Kind::Update {
        st.activities.insert(
            id.to_string(),
            Activity {
                base: base.to_string(),
                root: root.map(str::to_string),
                from_bot: true,
                deleted: false,
            },
        );
    }
    st.messages.push(Message {
        kind,
        conversation: conversation.to_string(),
        channel,
        activity_id: id.to_string(),
        root: root.map(str::to_string),
        reply_to: reply_to.map(str::to_string),
        card,
        text: activity["text"].as_str().unwrap_or("").to_string(),
        raw: activity.clone(),
        at: Instant::now(),
    });
    st.taken.push(false);
    Ok(())
}

/// Violations, and a rejection when Teams would refuse the activity.
fn check_activity(a: &Value) -> (Vec<String>, Option<Failure>) {
    let mut errors = Vec::new();
    let kind = a["type"].as_str().unwrap_or("");
    if kind == "typing" {
        return (errors, None);
    }
    if kind != "message" {
        errors.push(format!("activity type {:?} (send \"message\")", a["type"]));
    }
    let text = a["text"].as_str().unwrap_or("");
    let attachments = a["attachments"].as_array().cloned().unwrap_or_default();
    if text.trim().is_empty() && attachments.is_empty() {
        errors.push("an activity with neither text nor an attachment".into());
        return (
            errors,
            Some(fail(
                400,
                "BadArgument",
                "Activity must have text or attachments.",
            )),
        );
    }
    if !text.trim().is_empty() && !attachments.is_empty() {
        errors.push(
            "text and an attachment in one activity (Teams shows them as two messages)".into(),
        );
    }
    if attachments.len() > 1 {
        errors.push(format!(
            "{} attachments (send a card as the only one)",
            attachments.len()
        ));
    }
    for (i, att) in attachments.iter().enumerate() {
        if att["contentType"] != ADAPTIVE_CARD {
            errors.push(format!(
                "attachments[{i}].contentType {} (only {ADAPTIVE_CARD})",
                att["contentType"]
            ));
        } else {
            errors.extend(check_card(
                &att["content"],
                &format!("attachments[{i}].content"),
            ));
        }
    }
    (errors, None)
}

/// The rules of Adaptive Cards that Teams enforces by showing nothing or an error.
pub fn check_card(card: &Value, path: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if card["type"] != "AdaptiveCard" {
        errors.push(format!(
            "{path}.type is {} (not \"AdaptiveCard\")",
            card["type"]
        ));
        return errors;
    }
    match card["version"].as_str().and_then(parse_version) {
        None => errors.push(format!("{path}.version missing or not \"major.minor\"")),
        Some(v) if v > MAX_CARD_VERSION => errors.push(format!(
            "{path}.version {} (Teams renders up to {}.{})",
            card["version"], MAX_CARD_VERSION.0, MAX_CARD_VERSION.1
        )),
        _ => {}
    }
    let mut ids = HashSet::new();
    for input in inputs_of(card) {
        match input["id"].as_str() {
            Some(id) if !id.is_empty() => {
                if !ids.insert(id.to_string()) {
                    errors.push(format!("{path}: input id {id:?} used twice"));
                }
            }
            _ => errors.push(format!("{path}: an {} without an id", input["type"])),
        }
    }
    for action in actions_of(card) {
        match action["type"].as_str().unwrap_or("") {
            "Action.Execute" if action["verb"].as_str().is_none_or(str::is_empty) => {
                errors.push(format!(
                    "{path}: Action.Execute {:?} without a verb",
                    action["title"]
                ))
            }
            "Action.OpenUrl" if action["url"].as_str().is_none_or(str::is_empty) => {
                errors.push(format!("{path}: Action.OpenUrl without a url"))
            }
            "Action.Execute"
            | "Action.Submit"
            | "Action.OpenUrl"
            | "Action.ShowCard"
            | "Action.ToggleVisibility" => {}
            other => errors.push(format!("{path}: unknown action type {other:?}")),
        }
        if action["title"].as_str().is_none_or(|t| t.trim().is_empty())
            && action["iconUrl"].is_null()
        {
            errors.push(format!("{path}: a {} without a title", action["type"]));
        }
    }
    errors
}

fn parse_version(v: &str) -> Option<(u64, u64)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

// ----- cards -------------------------------------------------------------------

/// Every typed node of a card (elements, actions, nested cards), in document order.
fn nodes_of(card: &Value) -> Vec<&Value> {
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => {
                if o.get("type").and_then(Value::as_str).is_some() {
                    out.push(v);
                }
                for k in [
                    "body",
                    "items",
                    "columns",
                    "actions",
                    "card",
                    "selectAction",
                    "inlines",
                ] {
                    if let Some(c) = o.get(k) {
                        walk(c, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for k in ["body", "actions"] {
        if let Some(c) = card.get(k) {
            walk(c, &mut out);
        }
    }
    out
}

fn actions_of(card: &Value) -> Vec<&Value> {
    nodes_of(card)
        .into_iter()
        .filter(|n| n["type"].as_str().is_some_and(|t| t.starts_with("Action.")))
        .collect()
}

fn inputs_of(card: &Value) -> Vec<&Value> {
    nodes_of(card)
        .into_iter()
        .filter(|n| n["type"].as_str().is_some_and(|t| t.starts_with("Input.")))
        .collect()
}

/// The verb of an `Action.Execute`, `data.verb` of an `Action.Submit`, else the title.
fn action_name(a: &Value) -> String {
    a["verb"]
        .as_str()
        .or_else(|| a["data"]["verb"].as_str())
        .or_else(|| a["title"].as_str())
        .unwrap_or("")
        .to_string()
}

fn find_action<'a>(card: &'a Value, verb_or_title: &str) -> Option<&'a Value> {
    let actions = actions_of(card);
    actions
        .iter()
        .find(|a| action_name(a) == verb_or_title)
        .or_else(|| actions.iter().find(|a| a["title"] == verb_or_title))
        .copied()
}

/// The action's data with the card's input values merged in (given values
/// override initial ones; empty inputs are left out), as the Adaptive Cards
/// renderer does.
fn merged_data(card: &Value, action: &Value, values: &[(&str, &str)]) -> Value {
    let inputs = inputs_of(card);
    let ids: Vec<&str> = inputs.iter().filter_map(|i| i["id"].as_str()).collect();
    for (k, _) in values {
        assert!(
            ids.contains(k),
            "fake Teams: the card has no input {k:?} (inputs: {ids:?})"
        );
    }
    let mut data = match &action["data"] {
        Value::Object(o) => o.clone(),
        Value::Null => Map::new(),
        other => return other.clone(),
    };
    if action["associatedInputs"] == "none" {
        return Value::Object(data);
    }
    for input in inputs {
        let Some(id) = input["id"].as_str() else {
            continue;
        };
        let given = values
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, v)| v.to_string());
        let value = given.or_else(|| match &input["value"] {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        });
        if input["type"] == "Input.ChoiceSet"
            && let Some(v) = &value
        {
            let choices: Vec<&str> = input["choices"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["value"].as_str())
                .collect();
            let multi = input["isMultiSelect"] == json!(true);
            for part in v
                .split(',')
                .filter(|_| multi)
                .chain(Some(v.as_str()).filter(|_| !multi))
            {
                assert!(
                    choices.contains(&part),
                    "fake Teams: {part:?} is not a choice of {id:?} (choices: {choices:?})"
                );
            }
        }
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            data.insert(id.to_string(), Value::String(v));
        }
    }
    Value::Object(data)
}

/// A card as plain text for snapshots, one element a line: TextBlocks as
/// their text (`# ` before headings), FactSets as `- title: value`, buttons
/// as `[Title](verb)`, inputs as `label: [Input.Text](id)` (`= value` when set).
pub fn render_card(card: &Value) -> String {
    let mut lines = Vec::new();
    if let Some(body) = card["body"].as_array() {
        for e in body {
            render_element(e, &mut lines);
        }
    }
    if let Some(actions) = card["actions"].as_array() {
        lines.push(render_actions(actions));
    }
    lines.retain(|l| !l.is_empty());
    lines.join("\n")
}

fn render_actions(actions: &[Value]) -> String {
    actions
        .iter()
        .map(|a| {
            let target = match a["type"].as_str().unwrap_or("") {
                "Action.OpenUrl" => a["url"].as_str().unwrap_or("").to_string(),
                _ => action_name(a),
            };
            format!("[{}]({target})", a["title"].as_str().unwrap_or(""))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn render_element(e: &Value, lines: &mut Vec<String>) {
    let label = || {
        e["label"]
            .as_str()
            .or_else(|| e["placeholder"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let value_suffix = || match &e["value"] {
        Value::Null => String::new(),
        Value::String(s) if s.is_empty() => String::new(),
        Value::String(s) => format!(" = {s}"),
        other => format!(" = {other}"),
    };
    match e["type"].as_str().unwrap_or("") {
        "TextBlock" => {
            let t = e["text"].as_str().unwrap_or("").to_string();
            let heading = e["style"] == "heading"
                || e["size"] == "large"
                || e["size"] == "extraLarge"
                || (e["size"] == "medium" && e["weight"] == "bolder");
            lines.push(if heading { format!("# {t}") } else { t });
        }
        "RichTextBlock" => lines.push(
            e["inlines"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| i.as_str().or_else(|| i["text"].as_str()).unwrap_or(""))
                .collect::<String>(),
        ),
        "FactSet" => {
            for f in e["facts"].as_array().into_iter().flatten() {
                lines.push(format!(
                    "- {}: {}",
                    f["title"].as_str().unwrap_or(""),
                    f["value"].as_str().unwrap_or("")
                ));
            }
        }
        "Container" => e["items"]
            .as_array()
            .into_iter()
            .flatten()
            .for_each(|i| render_element(i, lines)),
        "ColumnSet" => {
            for c in e["columns"].as_array().into_iter().flatten() {
                c["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .for_each(|i| render_element(i, lines));
            }
        }
        "ActionSet" => lines.push(render_actions(
            e["actions"].as_array().map(Vec::as_slice).unwrap_or(&[]),
        )),
        "Image" => lines.push(format!("[image: {}]", e["altText"].as_str().unwrap_or(""))),
        "Input.ChoiceSet" => {
            let choices: Vec<&str> = e["choices"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["value"].as_str())
                .collect();
            lines.push(format!(
                "{}: ({})({}){}",
                label(),
                choices.join("|"),
                e["id"].as_str().unwrap_or(""),
                value_suffix()
            ));
        }
        t if t.starts_with("Input.") => lines.push(format!(
            "{}: [{t}]({}){}",
            label(),
            e["id"].as_str().unwrap_or(""),
            value_suffix()
        )),
        other => lines.push(format!("[{other}]")),
    }
    if let Some(err) = e["errorMessage"]
        .as_str()
        .filter(|_| e["type"].as_str().is_some_and(|t| t.starts_with("Input.")))
    {
        lines.push(format!("  ! {err}"));
    }
}

// ----- small helpers -----------------------------------------------------------

async fn handle(
    State(fake): State<FakeTeams>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.handle(method, uri, headers, body).await
}

fn sign(key: &Key, claims: &Value, with_kid: bool) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.typ = Some("JWT".into());
    if with_kid {
        h.kid = Some(key.kid.clone());
        h.x5t = Some(key.kid.clone());
    }
    jsonwebtoken::encode(&h, claims, &key.encoding).expect("fake Teams: RS256 signs")
}

fn aad_error(status: u16, error: &str, description: &str) -> Failure {
    let now = chrono::Utc::now();
    Failure {
        status,
        body: json!({
            "error": error,
            "error_description": format!(
                "{description}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
                guid(&format!("trace:{now}")),
                guid(&format!("corr:{now}")),
                now.format("%Y-%m-%d %H:%M:%SZ")
            ),
            "error_codes": [description
                .strip_prefix("AADSTS")
                .and_then(|s| s.split(':').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)],
            "timestamp": now.format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": guid(&format!("trace:{now}")),
            "correlation_id": guid(&format!("corr:{now}")),
            "error_uri": "https://login.microsoftonline.com/error?code=0",
        }),
        retry_after: None,
    }
}

fn tenant_config(base: &str, tenant: &str) -> Value {
    json!({
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
    })
}

fn member_json(u: &TeamsUser, tenant: &str) -> Value {
    let (given, surname) = (u.name.clone(), "Example".to_string());
    json!({
        "id": u.id,
        "name": u.name,
        "aadObjectId": u.aad_object_id,
        "givenName": given,
        "surname": surname,
        "email": format!("{}@example.com", u.key),
        "userPrincipalName": format!("{}@example.com", u.key),
        "tenantId": tenant,
        "userRole": "user",
    })
}

fn make_user(key: &str) -> TeamsUser {
    let mut name = key.to_string();
    if let Some(first) = name.get(0..1) {
        name.replace_range(0..1, &first.to_uppercase());
    }
    let h = hex_digest(&format!("user29:{key}"));
    // Bot-specific ids look like `29:1` + ~80 base64-ish chars; hex will do.
    TeamsUser {
        key: key.to_string(),
        name,
        aad_object_id: guid(&format!("user:{key}")),
        id: format!("29:1{}", &h[..48]),
    }
}

fn hex_digest(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A deterministic version-4-shaped GUID.
fn guid(seed: &str) -> String {
    let h = hex_digest(seed);
    format!(
        "{}-{}-4{}-{}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        ["8", "9", "a", "b"][usize::from(h.as_bytes()[16] % 4)],
        &h[17..20],
        &h[20..32]
    )
}

fn base_of(conversation: &str) -> &str {
    split_conv(conversation).0
}

/// `19:x@thread.tacv2;messageid=1` → (`19:x@thread.tacv2`, Some(`1`)).
fn split_conv(conversation: &str) -> (&str, Option<&str>) {
    match conversation.split_once(";messageid=") {
        Some((base, root)) => (base, Some(root)),
        None => (conversation, None),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
