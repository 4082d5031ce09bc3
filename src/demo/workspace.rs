//! The simulated Slack workspace as the page sees it.
//!
//! Reading: every call the bot made to the simulated Slack (`chat.postMessage`,
//! `chat.update`, `chat.postEphemeral`, `views.open`) is followed in order and
//! applied as Slack would: the channel's messages as they now stand, each
//! person's ephemeral messages and open modal. Writing: a click, a form or a
//! slash command becomes the payload Slack would send (built by the simulated
//! Slack), signed with the signing secret and posted to the bot's own
//! endpoints, so the bot's signature checks and handlers run as in production.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rerun_sim::slack::ViewValue;
use rerun_sim::{FakeKube, FakeSlack, Message, Resource};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{CHANNEL, USERS};

/// What is kept, so an hour of the demo stays small.
const MAX_MESSAGES: usize = 300;
const MAX_EPHEMERALS: usize = 100;
const MAX_AUDIT: usize = 100;
const MAX_JOBS: usize = 40;

struct Posted {
    seq: u64,
    at: DateTime<Utc>,
    channel: String,
    ts: String,
    thread_ts: Option<String>,
    text: String,
    blocks: Value,
    edited: bool,
}

struct Ephemeral {
    id: u64,
    seq: u64,
    at: DateTime<Utc>,
    user: String,
    channel: String,
    ts: String,
    thread_ts: Option<String>,
    text: String,
    blocks: Value,
}

struct Modal {
    id: u64,
    view: Value,
    errors: Value,
}

#[derive(Default)]
struct Model {
    cursor: usize,
    seq: u64,
    messages: Vec<Posted>,
    ephemerals: Vec<Ephemeral>,
    modals: HashMap<String, Modal>,
    /// trigger id → the person whose action it came with.
    triggers: HashMap<String, String>,
    audit: Vec<Value>,
    kube_rv: u64,
}

impl Model {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn add_ephemeral(
        &mut self,
        user: &str,
        channel: &str,
        ts: Option<String>,
        thread_ts: Option<String>,
        text: String,
        blocks: Value,
    ) {
        let id = self.next();
        self.ephemerals.push(Ephemeral {
            id,
            seq: id,
            at: Utc::now(),
            user: user.to_string(),
            channel: channel.to_string(),
            ts: ts.unwrap_or_else(|| format!("1700000000.9{id:05}")),
            thread_ts,
            text,
            blocks,
        });
        let extra = self.ephemerals.len().saturating_sub(MAX_EPHEMERALS);
        self.ephemerals.drain(..extra);
    }
}

fn blocks_of(p: &Value) -> Value {
    match &p["blocks"] {
        Value::Array(_) => p["blocks"].clone(),
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| json!([])),
        _ => json!([]),
    }
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub struct Workspace {
    slack: FakeSlack,
    kube: FakeKube,
    bot_url: String,
    audit_token: String,
    http: Client<HttpConnector, Full<Bytes>>,
    model: Mutex<Model>,
    version: watch::Sender<u64>,
    started: DateTime<Utc>,
    pub stop: CancellationToken,
}

/// What the page asked for could not be done (shown to the visitor).
pub type Refusal = String;

impl Workspace {
    pub fn new(
        slack: FakeSlack,
        kube: FakeKube,
        bot_url: String,
        audit_token: String,
        stop: CancellationToken,
    ) -> Workspace {
        Workspace {
            slack,
            kube,
            bot_url,
            audit_token,
            http: Client::builder(TokioExecutor::new()).build_http(),
            model: Mutex::new(Model::default()),
            version: watch::channel(0).0,
            started: Utc::now(),
            stop,
        }
    }

    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Follows the simulated Slack and cluster until stopped.
    pub async fn follow(self: std::sync::Arc<Self>, stop: CancellationToken) {
        loop {
            let slack_changed = self.ingest();
            let rv = self.kube.resource_version();
            let kube_changed = {
                let mut m = self.model();
                std::mem::replace(&mut m.kube_rv, rv) != rv
            };
            if slack_changed || kube_changed {
                self.refresh_audit().await;
                self.changed();
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Applies the bot's new Web API calls; `true` if there were any.
    fn ingest(&self) -> bool {
        let cursor = self.model().cursor;
        let calls = self.slack.calls_since(cursor);
        if calls.is_empty() {
            return false;
        }
        let mut m = self.model();
        m.cursor = cursor + calls.len();
        for call in calls {
            let p = &call.params;
            let channel = str_of(p, "channel").unwrap_or_default();
            match call.method.as_str() {
                "chat.postMessage" => {
                    let seq = m.next();
                    m.messages.push(Posted {
                        seq,
                        at: Utc::now(),
                        channel,
                        ts: str_of(&call.response, "ts").unwrap_or_default(),
                        thread_ts: str_of(p, "thread_ts"),
                        text: str_of(p, "text").unwrap_or_default(),
                        blocks: blocks_of(p),
                        edited: false,
                    });
                }
                "chat.update" => {
                    let ts = str_of(p, "ts").unwrap_or_default();
                    if let Some(msg) = m
                        .messages
                        .iter_mut()
                        .find(|x| x.channel == channel && x.ts == ts)
                    {
                        msg.text = str_of(p, "text").unwrap_or_default();
                        msg.blocks = blocks_of(p);
                        msg.edited = true;
                    }
                }
                "chat.delete" => {
                    let ts = str_of(p, "ts").unwrap_or_default();
                    m.messages.retain(|x| !(x.channel == channel && x.ts == ts));
                }
                "chat.postEphemeral" => {
                    let user = str_of(p, "user").unwrap_or_default();
                    m.add_ephemeral(
                        &user,
                        &channel,
                        str_of(&call.response, "message_ts"),
                        str_of(p, "thread_ts"),
                        str_of(p, "text").unwrap_or_default(),
                        blocks_of(p),
                    );
                }
                "views.open" => {
                    let trigger = str_of(p, "trigger_id").unwrap_or_default();
                    if let Some(user) = m.triggers.remove(&trigger) {
                        let id = m.next();
                        m.modals.insert(
                            user,
                            Modal {
                                id,
                                view: p["view"].clone(),
                                errors: json!({}),
                            },
                        );
                    }
                }
                _ => {}
            }
        }
        let extra = m.messages.len().saturating_sub(MAX_MESSAGES);
        m.messages.drain(..extra);
        true
    }

    async fn refresh_audit(&self) {
        let since = self.started.to_rfc3339();
        match crate::audit_client::fetch(&self.bot_url, &self.audit_token, Some(&since), None).await
        {
            Ok(lines) => {
                let mut audit: Vec<Value> = lines
                    .iter()
                    .rev()
                    .take(MAX_AUDIT)
                    .map(|l| serde_json::to_value(l).unwrap_or(Value::Null))
                    .collect();
                audit.retain(|v| !v.is_null());
                self.model().audit = audit;
            }
            Err(e) => tracing::warn!(error = %e, "demo: audit trail not read"),
        }
    }

    // ----- what the page sees ----------------------------------------------

    /// Everything the page shows to `user`.
    pub fn state(&self, user: &str) -> Value {
        let m = self.model();
        let messages: Vec<Value> = m
            .messages
            .iter()
            .filter(|x| x.channel == CHANNEL)
            .map(|x| {
                json!({"key": format!("m:{}", x.ts), "seq": x.seq, "ts": x.ts, "at": x.at.to_rfc3339(),
                       "thread_ts": x.thread_ts, "text": x.text, "blocks": x.blocks,
                       "edited": x.edited})
            })
            .collect();
        let ephemerals: Vec<Value> = m
            .ephemerals
            .iter()
            .filter(|e| e.user == user)
            .map(|e| {
                json!({"key": format!("e:{}", e.id), "seq": e.seq, "ts": e.ts, "at": e.at.to_rfc3339(),
                       "thread_ts": e.thread_ts, "text": e.text, "blocks": e.blocks,
                       "channel": e.channel})
            })
            .collect();
        let modal = m
            .modals
            .get(user)
            .map(|md| json!({"id": md.id, "view": md.view, "errors": md.errors}));
        let users: Vec<Value> = USERS
            .iter()
            .map(|(id, name, role)| json!({"id": id, "name": name, "role": role}))
            .collect();
        json!({
            "version": *self.version.borrow(),
            "me": user,
            "users": users,
            "channel": {"id": CHANNEL, "name": "alerts"},
            "messages": messages,
            "ephemerals": ephemerals,
            "modal": modal,
            "audit": m.audit,
            "cluster": self.cluster(),
        })
    }

    fn cluster(&self) -> Value {
        let now = Utc::now();
        let mut jobs: Vec<Value> = self.kube.list(Resource::Jobs, None);
        // Running Jobs per CronJob, from the Jobs themselves (status.active lags).
        let running: Vec<(String, String)> = jobs
            .iter()
            .filter(|j| super::scenario::finished(j).is_none())
            .filter_map(|j| {
                let owner = j["metadata"]["ownerReferences"]
                    .as_array()?
                    .iter()
                    .find(|o| o["kind"] == "CronJob")?;
                Some((
                    j["metadata"]["namespace"].as_str()?.to_string(),
                    owner["name"].as_str()?.to_string(),
                ))
            })
            .collect();
        let cronjobs: Vec<Value> = self
            .kube
            .list(Resource::CronJobs, None)
            .iter()
            .map(|cj| {
                let a = &cj["metadata"]["annotations"];
                let suspended = cj["spec"]["suspend"] == json!(true);
                let next = (!suspended)
                    .then(|| {
                        crate::core::schedule::next_run(
                            cj["spec"]["schedule"].as_str().unwrap_or(""),
                            cj["spec"]["timeZone"].as_str(),
                            now,
                        )
                        .ok()
                    })
                    .flatten();
                json!({
                    "namespace": cj["metadata"]["namespace"],
                    "name": cj["metadata"]["name"],
                    "schedule": cj["spec"]["schedule"],
                    "suspended": suspended,
                    "on_hold": a.get("rerun-bot.io/on-hold").cloned().unwrap_or(json!("suspend")),
                    "held_by": a.get("rerun-bot.io/held-by"),
                    "hold_id": a.get("rerun-bot.io/hold-id"),
                    "active": running.iter().filter(|(ns, name)| {
                        cj["metadata"]["namespace"] == ns.as_str() && cj["metadata"]["name"] == name.as_str()
                    }).count(),
                    "next": next.map(|t| t.to_rfc3339()),
                })
            })
            .collect();
        jobs.sort_by_key(|j| {
            std::cmp::Reverse(
                j["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0),
            )
        });
        let jobs: Vec<Value> = jobs
            .iter()
            .map(|j| {
                let failed = j["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == "Failed" && c["status"] == "True");
                let state = match super::scenario::finished(j) {
                    Some(s) => s,
                    None if j["status"]["active"].as_i64().unwrap_or(0) > 0 => "running",
                    None => "pending",
                };
                let a = &j["metadata"]["annotations"];
                json!({
                    "namespace": j["metadata"]["namespace"],
                    "name": j["metadata"]["name"],
                    "created": j["metadata"]["creationTimestamp"],
                    "state": state,
                    "reason": failed.map(|c| c["reason"].clone()),
                    "rerun": j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot",
                    "requested_by": a.get("rerun-bot.io/requested-by"),
                    "approved_by": a.get("rerun-bot.io/approved-by"),
                })
            })
            .collect();
        let first: Vec<&Value> = jobs.iter().take(MAX_JOBS).collect();
        json!({"cronjobs": cronjobs, "jobs": first})
    }

    // ----- what the visitor does -------------------------------------------

    async fn post_signed(&self, path: &str, body: String) -> Result<(u16, String), Refusal> {
        let ts = Utc::now().timestamp();
        let signature = self.slack.sign(ts, &body);
        let req = hyper::Request::post(format!("{}{path}", self.bot_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let res = self
            .http
            .request(req)
            .await
            .map_err(|e| format!("the bot did not answer: {e}"))?;
        let status = res.status().as_u16();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// The message `key` (`m:<ts>` or `e:<id>`) as `user` sees it.
    fn message(&self, user: &str, key: &str) -> Option<Message> {
        let m = self.model();
        if let Some(ts) = key.strip_prefix("m:") {
            let x = m.messages.iter().find(|x| x.ts == ts)?;
            return Some(Message {
                channel: x.channel.clone(),
                ts: x.ts.clone(),
                thread_ts: x.thread_ts.clone(),
                user: None,
                text: x.text.clone(),
                blocks: x.blocks.clone(),
                raw: json!({}),
            });
        }
        let id: u64 = key.strip_prefix("e:")?.parse().ok()?;
        let e = m.ephemerals.iter().find(|e| e.id == id && e.user == user)?;
        Some(Message {
            channel: e.channel.clone(),
            ts: e.ts.clone(),
            thread_ts: e.thread_ts.clone(),
            user: Some(e.user.clone()),
            text: e.text.clone(),
            blocks: e.blocks.clone(),
            raw: json!({}),
        })
    }

    /// `user` clicks the button at `block`/`element` (`None`: the section's
    /// accessory) of message `key`.
    pub async fn click(
        &self,
        user: &str,
        key: &str,
        block: usize,
        element: Option<usize>,
    ) -> Result<u16, Refusal> {
        let message = self
            .message(user, key)
            .ok_or("that message is gone (or is not yours)")?;
        let b = &message.blocks[block];
        let button = match element {
            Some(i) => &b["elements"][i],
            None => &b["accessory"],
        };
        let action_id = button["action_id"]
            .as_str()
            .filter(|_| button["type"] == "button")
            .ok_or("no such button")?
            .to_string();
        let mut payload = self.slack.block_action_payload(user, &message, &action_id);
        // The button clicked, not the first one with that action id.
        if let Some(id) = b["block_id"].as_str() {
            payload["actions"][0]["block_id"] = json!(id);
        }
        match button.get("value") {
            Some(v) => payload["actions"][0]["value"] = v.clone(),
            None => {
                if let Some(a) = payload["actions"][0].as_object_mut() {
                    a.remove("value");
                }
            }
        }
        self.remember_trigger(&payload["trigger_id"], user);
        let body = FakeSlack::interaction_form(&payload);
        let (status, _) = self.post_signed("/slack/interactivity", body).await?;
        Ok(status)
    }

    fn remember_trigger(&self, trigger: &Value, user: &str) {
        if let Some(t) = trigger.as_str() {
            let mut m = self.model();
            if m.triggers.len() > 1000 {
                m.triggers.clear();
            }
            m.triggers.insert(t.to_string(), user.to_string());
        }
    }

    /// `user` submits their open modal with `values` (block id → text, or the
    /// chosen option's value). `Ok(true)`: it closed; `Ok(false)`: it stays
    /// open with the bot's errors under the fields.
    pub async fn submit(
        &self,
        user: &str,
        values: &serde_json::Map<String, Value>,
    ) -> Result<bool, Refusal> {
        let view = self
            .model()
            .modals
            .get(user)
            .map(|md| md.view.clone())
            .ok_or("no open form")?;
        let mut typed: Vec<(String, ViewValue)> = Vec::new();
        for block in view["blocks"].as_array().into_iter().flatten() {
            let (Some(id), "input") = (
                block["block_id"].as_str(),
                block["type"].as_str().unwrap_or(""),
            ) else {
                continue;
            };
            let Some(given) = values.get(id).and_then(Value::as_str) else {
                continue;
            };
            let el = &block["element"];
            match el["type"].as_str().unwrap_or("") {
                "radio_buttons" | "static_select" => {
                    typed.push((id.to_string(), ViewValue::Option(given.to_string())))
                }
                _ if given.is_empty() && el.get("initial_value").is_none() => {}
                _ => typed.push((id.to_string(), ViewValue::Text(given.to_string()))),
            }
        }
        let refs: Vec<(&str, ViewValue)> =
            typed.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let payload = self.slack.view_submission_payload(user, &view, &refs);
        let body = FakeSlack::interaction_form(&payload);
        let (status, answer) = self.post_signed("/slack/interactivity", body).await?;
        if status != 200 {
            return Err(format!("the bot answered HTTP {status}"));
        }
        let answer: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
        let closed = answer["response_action"] != "errors";
        {
            let mut m = self.model();
            if closed {
                m.modals.remove(user);
            } else if let Some(md) = m.modals.get_mut(user) {
                md.errors = answer["errors"].clone();
            }
        }
        self.changed();
        Ok(closed)
    }

    pub fn close_modal(&self, user: &str) {
        self.model().modals.remove(user);
        self.changed();
    }

    pub fn dismiss(&self, user: &str, key: &str) {
        if let Some(id) = key.strip_prefix("e:").and_then(|i| i.parse::<u64>().ok()) {
            self.model()
                .ephemerals
                .retain(|e| !(e.id == id && e.user == user));
            self.changed();
        }
    }

    /// `user` types `line` (`/hold all`) into the alert channel's composer.
    pub async fn command(&self, user: &str, line: &str) -> Result<(), Refusal> {
        let line = line.trim();
        let (command, text) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if !matches!(command, "/rerun" | "/hold" | "/resume" | "/cronjobs") {
            let shown = crate::chat::slack::messages::escape(command);
            let text = if command.starts_with('/') {
                format!(
                    "`{shown}` is not a valid command. This workspace has `/rerun`, `/hold`, `/resume` and `/cronjobs`."
                )
            } else {
                "This demo channel takes slash commands only: `/rerun help`, `/cronjobs`, `/hold all`, `/resume all`.".to_string()
            };
            let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": text}}]);
            self.model()
                .add_ephemeral(user, CHANNEL, None, None, text, blocks);
            self.changed();
            return Ok(());
        }
        // Slack sends `&`, `<` and `>` in the text as entities.
        let text = crate::chat::slack::messages::escape(text.trim());
        let fields = self
            .slack
            .slash_command_fields(user, CHANNEL, command, &text);
        if let Some((_, t)) = fields.iter().find(|(k, _)| k == "trigger_id") {
            self.remember_trigger(&json!(t), user);
        }
        let body = serde_urlencoded::to_string(&fields).map_err(|e| e.to_string())?;
        let (status, answer) = self.post_signed("/slack/commands", body).await?;
        let answer: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
        let (text, blocks) = if status != 200 {
            let t = format!("The bot answered HTTP {status} to `{command}`.");
            (
                t.clone(),
                json!([{"type": "section", "text": {"type": "mrkdwn", "text": t}}]),
            )
        } else if answer.is_object() {
            (
                answer["text"].as_str().unwrap_or("").to_string(),
                blocks_of(&answer),
            )
        } else {
            return Ok(());
        };
        self.model()
            .add_ephemeral(user, CHANNEL, None, None, text, blocks);
        self.changed();
        Ok(())
    }
}
