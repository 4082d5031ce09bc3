//! The simulated Microsoft Teams channel as the page sees it.
//!
//! Reading: every message the bot sent through the simulated Bot Framework's
//! Connector (new threads, replies, `PUT` updates, 1:1 chat messages) is
//! followed in order and applied as Teams shows it: the alert channel's
//! threads as they now stand and each person's chat with the bot. Writing: a
//! click, a dialog or a typed message becomes the activity Teams would send
//! (built and signed by [`FakeTeams`]) and is POSTed to the bot's
//! `/api/messages`, so the bot's JWT checks and handlers run as in production.
//! What the bot answers an invoke with (a dialog, a text for the clicker
//! alone) is kept for that person only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rerun_sim::FakeTeams;
use rerun_sim::teams::{BotReply, Dialog, Kind, Message};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::USERS;
use super::workspace::{Refusal, Workspace};

/// What is kept, so an hour of the demo stays small.
const MAX_ITEMS: usize = 300;
const MAX_NOTICES: usize = 50;

/// The demo's Teams app registration (nothing leaves the machine).
pub const APP_ID: &str = "5a1b2c3d-0000-4000-8000-0000000de770";
pub const TENANT: &str = "72f988bf-0000-4000-8000-0000000de770";
/// The Teams channel the bot posts alerts to.
pub const CHANNEL_NAME: &str = "alerts";

struct Item {
    seq: u64,
    at: DateTime<Utc>,
    id: String,
    /// The channel thread's root (channel items).
    root: Option<String>,
    /// The person whose 1:1 chat with the bot this is in (their page id).
    personal_of: Option<String>,
    /// Who wrote it (a page id); `None`: the bot.
    author: Option<String>,
    card: Option<Value>,
    text: String,
    edited: bool,
}

struct Notice {
    id: u64,
    seq: u64,
    at: DateTime<Utc>,
    user: String,
    /// The thread it was answered in, if any.
    root: Option<String>,
    text: String,
}

struct Open {
    /// Changes with every card the dialog shows (errors come as a new card).
    id: u64,
    dialog: Dialog,
}

#[derive(Default)]
struct Model {
    cursor: usize,
    seq: u64,
    items: Vec<Item>,
    notices: Vec<Notice>,
    dialogs: HashMap<String, Open>,
}

impl Model {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn notice(&mut self, user: &str, root: Option<String>, text: String) {
        let id = self.next();
        self.notices.push(Notice {
            id,
            seq: id,
            at: Utc::now(),
            user: user.to_string(),
            root,
            text,
        });
        let extra = self.notices.len().saturating_sub(MAX_NOTICES);
        self.notices.drain(..extra);
    }
}

/// The page id (`U_ALICE`) → the simulated tenant's user key (`alice`).
fn key_of(user: &str) -> Option<String> {
    USERS
        .iter()
        .find(|(id, _, _)| *id == user)
        .map(|(_, name, _)| name.to_lowercase())
}

/// Every node of a card (body, items, columns, actions, …), depth first.
fn nodes(card: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack = vec![card];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a.iter().rev()),
            Value::Object(o) => {
                if o.contains_key("type") {
                    out.push(v);
                }
                for key in ["body", "items", "columns", "actions", "card"] {
                    if let Some(child) = o.get(key) {
                        stack.push(child);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The name a click is addressed by: the verb, `data.verb`, else the title.
fn action_name(a: &Value) -> Option<&str> {
    a["verb"]
        .as_str()
        .or_else(|| a["data"]["verb"].as_str())
        .or_else(|| a["title"].as_str())
}

fn has_action(card: &Value, name: &str) -> bool {
    nodes(card).into_iter().any(|n| {
        matches!(n["type"].as_str(), Some("Action.Execute" | "Action.Submit"))
            && action_name(n) == Some(name)
    })
}

/// `values` limited to the card's own inputs, as text.
fn typed(card: &Value, values: &Map<String, Value>) -> Vec<(String, String)> {
    let ids: Vec<&str> = nodes(card)
        .into_iter()
        .filter(|n| n["type"].as_str().is_some_and(|t| t.starts_with("Input.")))
        .filter_map(|n| n["id"].as_str())
        .collect();
    values
        .iter()
        .filter(|(k, _)| ids.contains(&k.as_str()))
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

pub struct TeamsSide {
    teams: FakeTeams,
    channel: String,
    /// 1:1 chat id → page id.
    chats: HashMap<String, String>,
    model: Mutex<Model>,
    ws: Arc<Workspace>,
}

impl TeamsSide {
    pub fn new(teams: FakeTeams, ws: Arc<Workspace>) -> TeamsSide {
        let channel = teams.channel(CHANNEL_NAME);
        let chats = USERS
            .iter()
            .map(|(id, name, _)| (teams.personal_chat(&name.to_lowercase()), id.to_string()))
            .collect();
        TeamsSide {
            teams,
            channel,
            chats,
            model: Mutex::new(Model::default()),
            ws,
        }
    }

    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tenant's people as the page lists them: page id, Entra object id.
    pub fn users(&self) -> Vec<(String, String)> {
        USERS
            .iter()
            .map(|(id, name, _)| {
                let u = self.teams.user(&name.to_lowercase());
                (id.to_string(), u.aad_object_id)
            })
            .collect()
    }

    /// Follows the simulated Bot Framework until stopped.
    pub async fn follow(self: Arc<Self>, stop: CancellationToken) {
        loop {
            if self.ingest() {
                self.ws.changed();
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Applies the bot's new sends; `true` if there were any.
    fn ingest(&self) -> bool {
        let cursor = self.model().cursor;
        let news = self.teams.messages_since(cursor);
        if news.is_empty() {
            return false;
        }
        let mut m = self.model();
        m.cursor = cursor + news.len();
        for msg in news {
            self.apply(&mut m, msg);
        }
        let extra = m.items.len().saturating_sub(MAX_ITEMS);
        m.items.drain(..extra);
        true
    }

    fn apply(&self, m: &mut Model, msg: Message) {
        if msg.kind == Kind::Update {
            if let Some(item) = m.items.iter_mut().find(|i| i.id == msg.activity_id) {
                item.card = msg.card;
                item.text = msg.text;
                item.edited = true;
            }
            return;
        }
        let personal_of = (msg.kind == Kind::Personal)
            .then(|| self.chats.get(&msg.conversation).cloned())
            .flatten();
        let in_channel = msg.channel.as_deref() == Some(self.channel.as_str());
        if personal_of.is_none() && !in_channel {
            return;
        }
        let seq = m.next();
        m.items.push(Item {
            seq,
            at: Utc::now(),
            root: in_channel.then(|| msg.root.clone().unwrap_or(msg.activity_id.clone())),
            id: msg.activity_id,
            personal_of,
            author: None,
            card: msg.card,
            text: msg.text,
            edited: false,
        });
    }

    // ----- what the page sees ----------------------------------------------

    /// The Teams tab as `user` sees it.
    pub fn state(&self, user: &str) -> Value {
        let m = self.model();
        let item = |i: &Item| {
            json!({"id": i.id, "seq": i.seq, "at": i.at.to_rfc3339(), "root": i.root,
                   "author": i.author, "card": i.card, "text": i.text, "edited": i.edited})
        };
        let messages: Vec<Value> = m
            .items
            .iter()
            .filter(|i| i.personal_of.is_none())
            .map(item)
            .collect();
        let chat: Vec<Value> = m
            .items
            .iter()
            .filter(|i| i.personal_of.as_deref() == Some(user))
            .map(item)
            .collect();
        let notices: Vec<Value> = m
            .notices
            .iter()
            .filter(|n| n.user == user)
            .map(|n| {
                json!({"id": n.id, "seq": n.seq, "at": n.at.to_rfc3339(), "root": n.root,
                       "text": n.text})
            })
            .collect();
        let dialog = m
            .dialogs
            .get(user)
            .map(|d| json!({"id": d.id, "title": d.dialog.title, "card": d.dialog.card}));
        let users: Vec<Value> = self
            .users()
            .into_iter()
            .map(|(id, aad)| json!({"id": id, "aad": aad}))
            .collect();
        json!({
            "channel": {"id": self.channel, "name": CHANNEL_NAME},
            "users": users,
            "messages": messages,
            "chat": chat,
            "notices": notices,
            "dialog": dialog,
        })
    }

    // ----- what the visitor does -------------------------------------------

    async fn send(&self, activity: Value) -> Result<BotReply, Refusal> {
        let teams = self.teams.clone();
        // The simulator panics when the bot cannot be reached; that is an
        // answer here, not a crash.
        tokio::spawn(async move { teams.send_activity(activity).await })
            .await
            .map_err(|_| "the bot did not answer".to_string())
    }

    /// What an invoke's answer means for `user`: a dialog opens, a text is
    /// shown to them alone; an updated card arrives by its `PUT` as well.
    fn answered(&self, user: &str, root: Option<String>, reply: &BotReply) -> Result<(), Refusal> {
        if reply.status != 200 {
            return Err(format!("the bot answered HTTP {}", reply.status));
        }
        let mut m = self.model();
        if let Some(dialog) = reply.dialog() {
            let id = m.next();
            m.dialogs.insert(user.to_string(), Open { id, dialog });
        } else {
            m.dialogs.remove(user);
            if let Some(text) = reply.text().filter(|t| !t.trim().is_empty()) {
                m.notice(user, root, text);
            }
        }
        drop(m);
        self.ws.changed();
        Ok(())
    }

    /// `user` clicks the button `action` (verb, `data.verb` or title) on the
    /// activity `id`, with `values` typed into the card's inputs.
    pub async fn click(
        &self,
        user: &str,
        id: &str,
        action: &str,
        values: &Map<String, Value>,
    ) -> Result<(), Refusal> {
        let key = key_of(user).ok_or("unknown user")?;
        let (root, visible) = {
            let m = self.model();
            let item = m
                .items
                .iter()
                .find(|i| i.id == id)
                .ok_or("that message is gone")?;
            let visible = item.personal_of.as_deref().is_none_or(|p| p == user);
            (item.root.clone(), visible)
        };
        if !visible {
            return Err("that message is not yours".into());
        }
        let message = self.teams.current(id).ok_or("that message is gone")?;
        let card = message.card.as_ref().ok_or("that message has no card")?;
        if !has_action(card, action) {
            return Err("no such button".into());
        }
        let typed = typed(card, values);
        let refs: Vec<(&str, &str)> = typed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let activity = self.teams.click_activity(&key, &message, action, &refs);
        let reply = self.send(activity).await?;
        self.answered(user, root, &reply)
    }

    /// `user` submits their open dialog with `values` (input id → text, or
    /// the chosen choice's value). `Ok(true)`: it closed; `Ok(false)`: it
    /// stays open, the bot's errors under the fields.
    pub async fn submit(&self, user: &str, values: &Map<String, Value>) -> Result<bool, Refusal> {
        let key = key_of(user).ok_or("unknown user")?;
        let dialog = self
            .model()
            .dialogs
            .get(user)
            .map(|d| d.dialog.clone())
            .ok_or("no open dialog")?;
        let typed = typed(&dialog.card, values);
        let refs: Vec<(&str, &str)> = typed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let activity = self.teams.dialog_submit_activity(&key, &dialog, &refs);
        let reply = self.send(activity).await?;
        let root = dialog
            .conversation
            .split_once(";messageid=")
            .map(|(_, r)| r.to_string());
        self.answered(user, root, &reply)?;
        Ok(!self.model().dialogs.contains_key(user))
    }

    pub fn close(&self, user: &str) {
        self.model().dialogs.remove(user);
        self.ws.changed();
    }

    pub fn dismiss(&self, user: &str, id: u64) {
        self.model()
            .notices
            .retain(|n| !(n.id == id && n.user == user));
        self.ws.changed();
    }

    /// `user` posts `text` in the alert channel (a new thread), mentioning
    /// the bot, or in their 1:1 chat with it (`chat`).
    pub async fn command(&self, user: &str, text: &str, chat: bool) -> Result<(), Refusal> {
        let key = key_of(user).ok_or("unknown user")?;
        let text = text.trim();
        let text = text
            .strip_prefix("@rerun-bot")
            .map(str::trim_start)
            .unwrap_or(text);
        if text.is_empty() {
            return Ok(());
        }
        let conversation = if chat {
            self.teams.personal_chat(&key)
        } else {
            self.channel.clone()
        };
        let activity = self.teams.message_activity(&key, &conversation, text);
        let id = activity["id"].as_str().unwrap_or_default().to_string();
        {
            let mut m = self.model();
            let seq = m.next();
            m.items.push(Item {
                seq,
                at: Utc::now(),
                root: (!chat).then(|| id.clone()),
                id,
                personal_of: chat.then(|| user.to_string()),
                author: Some(user.to_string()),
                card: None,
                text: text.to_string(),
                edited: false,
            });
        }
        self.ws.changed();
        let reply = self.send(activity).await?;
        if !(200..300).contains(&reply.status) {
            self.model().notice(
                user,
                None,
                format!("The bot answered HTTP {} to your message.", reply.status),
            );
            self.ws.changed();
        }
        Ok(())
    }
}
