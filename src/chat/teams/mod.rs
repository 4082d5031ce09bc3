//! Microsoft Teams over the Bot Framework protocol (DESIGN.md "Microsoft Teams
//! contract"): inbound `/api/messages` with JWT validation ([`auth`]), the
//! token and Connector clients ([`connector`]), and Adaptive Card rendering
//! ([`cards`]). No Teams type leaves this module.
//!
//! Ids as the app sees them ([`MessageRef`]): `channel` is the conversation a
//! message lives in without any `;messageid=` (`19:…@thread.tacv2` for a team
//! channel, `19:…@thread.v2` for a group chat, `a:…` for a 1:1 chat); `ts` is
//! the activity id of a thread's first message, or `<root>/<activity>` for a
//! reply in a channel thread, so a reply can be updated and replied next to.

pub mod auth;
pub mod cards;
pub mod connector;
pub mod http;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::pacing::{Lane, Limit, Pacer, Pacing};
use super::{Chat, ChatError, Form, MessageRef, Outgoing, Reply};
use crate::metrics::Metrics;

/// What the Teams adapter needs from the configuration.
#[derive(Debug, Clone)]
pub struct TeamsSettings {
    pub app_id: String,
    pub app_password: String,
    pub tenant_id: String,
    pub service_url: String,
    pub login_url: String,
    pub openid_metadata_url: String,
    /// `TEAMS_CHANNEL`: where cards of commands typed in a 1:1 chat go.
    pub default_channel: String,
}

/// A person seen in an activity: their per-bot id (to open a 1:1 chat) and name.
#[derive(Debug, Clone)]
struct Person {
    id: String,
    name: String,
    /// Their 1:1 chat with the bot, once known.
    personal: Option<String>,
}

/// Teams' limits per bot and thread (DESIGN.md: 7 a second, 60 per 30 s,
/// 1,800 an hour; a new thread counts against its channel), the longer
/// windows with a margin for a clock's jitter.
fn limits(pacing: Pacing) -> Vec<Limit> {
    let window = |max, secs| Limit::Window {
        max,
        window: Duration::from_secs(secs),
    };
    match pacing {
        Pacing::Platform => vec![window(7, 1), window(58, 30), window(1780, 3600)],
        Pacing::Off => Vec::new(),
    }
}

/// The queue that 1:1 chats are created in (not limited per thread).
const NEW_PERSONAL_CHATS: &str = "personal chats";

/// Forms waiting for their invoke's answer, at most.
const FORMS_KEPT: usize = 1000;

/// How many recently sent cards are kept to answer clicks with.
const CARDS_KEPT: usize = 2000;

#[derive(Default)]
struct SentCards {
    by_ref: HashMap<(String, String), (u64, Value)>,
    order: VecDeque<(String, String)>,
    seq: u64,
}

impl SentCards {
    fn remember(&mut self, at: &MessageRef, card: Value) {
        self.seq += 1;
        let key = (at.channel.clone(), at.ts.clone());
        if self.by_ref.insert(key.clone(), (self.seq, card)).is_none() {
            self.order.push_back(key);
            while self.order.len() > CARDS_KEPT {
                if let Some(old) = self.order.pop_front() {
                    self.by_ref.remove(&old);
                }
            }
        }
    }
}

pub struct TeamsChat {
    settings: TeamsSettings,
    connector: connector::Connector,
    verifier: auth::Verifier,
    /// The Connector base URL: configured, then the one a team's activity names.
    service_url: RwLock<String>,
    /// By Entra object id.
    people: Mutex<HashMap<String, Person>>,
    /// Forms the app opened while an invoke was being handled, by trigger id.
    forms: Mutex<HashMap<String, Form>>,
    cards: Mutex<SentCards>,
    triggers: AtomicU64,
    metrics: Arc<Metrics>,
    /// One queue per thread (a new thread: its channel; a chat: itself),
    /// where Teams counts its limits.
    pacer: Pacer,
}

impl TeamsChat {
    pub fn new(settings: TeamsSettings, metrics: Arc<Metrics>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("rerun-bot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(TeamsChat {
            connector: connector::Connector::new(
                http.clone(),
                &settings.app_id,
                &settings.app_password,
                &settings.login_url,
                &settings.tenant_id,
                metrics.clone(),
            ),
            verifier: auth::Verifier::new(&settings.app_id, &settings.openid_metadata_url, http),
            service_url: RwLock::new(settings.service_url.clone()),
            people: Mutex::new(HashMap::new()),
            forms: Mutex::new(HashMap::new()),
            cards: Mutex::new(SentCards::default()),
            triggers: AtomicU64::new(0),
            metrics,
            settings,
            pacer: Pacer::new("teams", limits(Pacing::Platform), 1),
        })
    }

    pub fn with_pacing(mut self, pacing: Pacing) -> Self {
        self.pacer = Pacer::new("teams", limits(pacing), 1);
        self
    }

    fn settings_channel(&self) -> String {
        self.settings.default_channel.clone()
    }

    fn service_url(&self) -> String {
        self.service_url.read().expect("service url lock").clone()
    }

    /// A team's activity names the Connector to answer through.
    fn learn_service_url(&self, url: &str) {
        let mut current = self.service_url.write().expect("service url lock");
        if *current != url {
            tracing::info!(
                service_url = url,
                "Teams serviceUrl learned from an activity"
            );
            *current = url.to_string();
        }
    }

    fn learn_person(&self, aad_object_id: &str, id: &str, name: &str) {
        let mut people = self.people.lock().expect("people lock");
        let person = people
            .entry(aad_object_id.to_string())
            .or_insert_with(|| Person {
                id: id.to_string(),
                name: name.to_string(),
                personal: None,
            });
        person.id = id.to_string();
        if !name.is_empty() {
            person.name = name.to_string();
        }
    }

    fn learn_personal_chat(&self, aad_object_id: &str, conversation: &str) {
        if let Some(p) = self
            .people
            .lock()
            .expect("people lock")
            .get_mut(aad_object_id)
        {
            p.personal = Some(conversation.to_string());
        }
    }

    fn name_of(&self, id: &str) -> Option<String> {
        self.people
            .lock()
            .expect("people lock")
            .get(id)
            .map(|p| p.name.clone())
            .filter(|n| !n.is_empty())
    }

    /// The MAC of what a form is about, keyed by the app's secret: Slack
    /// keeps a modal's `private_metadata` to itself, but a Teams dialog's
    /// data travels through the client, which could change where the card
    /// goes or which alert it is about.
    fn form_mac(&self, form: &Form) -> Hmac<Sha256> {
        let key = Sha256::new()
            .chain_update(b"rerun-bot/teams-form/v1\0")
            .chain_update(self.settings.app_password.as_bytes())
            .finalize();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
        let about = serde_json::json!([
            form.kind,
            form.namespace,
            form.cronjob,
            form.metadata,
            form.containers,
            form.require_ticket
        ]);
        mac.update(about.to_string().as_bytes());
        mac
    }

    /// The form with its metadata sealed (`<metadata>~<mac>`), to send out.
    pub(crate) fn seal(&self, form: &Form) -> Form {
        let tag = hex::encode(self.form_mac(form).finalize().into_bytes());
        let mut sealed = form.clone();
        sealed.metadata = format!("{}~{tag}", form.metadata);
        sealed
    }

    /// A form that came back from a client, if it is one the bot sealed.
    pub(crate) fn unseal(&self, mut form: Form) -> Option<Form> {
        let (metadata, tag) = form.metadata.rsplit_once('~')?;
        let tag = hex::decode(tag).ok()?;
        form.metadata = metadata.to_string();
        self.form_mac(&form).verify_slice(&tag).ok()?;
        Some(form)
    }

    fn new_trigger(&self) -> String {
        format!(
            "teams:{}",
            self.triggers.fetch_add(1, Ordering::Relaxed) + 1
        )
    }

    fn take_form(&self, trigger: &str) -> Option<Form> {
        self.forms.lock().expect("forms lock").remove(trigger)
    }

    fn card_seq(&self) -> u64 {
        self.cards.lock().expect("cards lock").seq
    }

    /// The card last sent at `at`, if it was sent after `since`.
    fn card_since(&self, at: &MessageRef, since: u64) -> Option<Value> {
        let cards = self.cards.lock().expect("cards lock");
        cards
            .by_ref
            .get(&(at.channel.clone(), at.ts.clone()))
            .filter(|(seq, _)| *seq > since)
            .map(|(_, card)| card.clone())
    }

    fn render(&self, message: &Outgoing<'_>) -> Value {
        cards::message(message, &|id: &str| self.name_of(id))
    }

    fn render_reply(&self, reply: &Reply) -> Value {
        cards::reply(reply, &|id: &str| self.name_of(id))
    }

    fn reply_text(&self, reply: &Reply) -> String {
        cards::reply_text(reply, &|id: &str| self.name_of(id))
    }

    async fn send_card(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        card: Value,
        lane: Lane,
    ) -> Result<MessageRef, ChatError> {
        let activity = card_activity(card.clone());
        let service_url = self.service_url();
        let (connector, url, activity) = (&self.connector, service_url.as_str(), &activity);
        let ts = if is_team_channel(channel) {
            match thread_ts {
                None => {
                    let tenant = self.settings.tenant_id.as_str();
                    let created = self
                        .pacer
                        .send(channel, lane, move || {
                            connector.create_thread(url, channel, tenant, activity.clone())
                        })
                        .await?;
                    created
                        .activity_id
                        .or_else(|| message_id(&created.id).map(str::to_string))
                        .ok_or_else(|| ChatError::Api("new thread without an activity id".into()))?
                }
                Some(thread) => {
                    let root = split_ts(thread).0;
                    let conversation = thread_conversation(channel, root);
                    let conversation = conversation.as_str();
                    let id = self
                        .pacer
                        .send(conversation, lane, move || {
                            connector.send(url, conversation, activity)
                        })
                        .await?;
                    format!("{root}/{id}")
                }
            }
        } else {
            self.pacer
                .send(channel, lane, move || {
                    connector.send(url, channel, activity)
                })
                .await?
        };
        let at = MessageRef {
            channel: channel.to_string(),
            ts,
        };
        self.cards.lock().expect("cards lock").remember(&at, card);
        Ok(at)
    }

    /// A message for one person only: their 1:1 chat with the bot.
    async fn tell(&self, user: &str, card: Value) -> Result<(), ChatError> {
        let person = self.people.lock().expect("people lock").get(user).cloned();
        let Some(person) = person else {
            return Err(ChatError::Api(format!(
                "no 1:1 chat with Teams user {user}: they have not written to the bot yet"
            )));
        };
        let conversation = match person.personal {
            Some(c) => c,
            None => {
                let url = self.service_url();
                let (connector, url, id) = (&self.connector, url.as_str(), person.id.as_str());
                let (tenant, app) = (&self.settings.tenant_id, &self.settings.app_id);
                let created = self
                    .pacer
                    .send(NEW_PERSONAL_CHATS, Lane::Interactive, move || {
                        connector.create_personal(url, id, tenant, app)
                    })
                    .await?;
                self.learn_personal_chat(user, &created.id);
                created.id
            }
        };
        self.send_card(&conversation, None, card, Lane::Interactive)
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl Chat for TeamsChat {
    async fn post(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        message: Outgoing<'_>,
    ) -> Result<MessageRef, ChatError> {
        let lane = Lane::of(&message);
        let card = self.render(&message);
        self.send_card(channel, thread_ts, card, lane).await
    }

    async fn update(&self, at: &MessageRef, message: Outgoing<'_>) -> Result<(), ChatError> {
        let lane = Lane::of(&message);
        let card = self.render(&message);
        let (root, activity_id) = split_ts(&at.ts);
        let conversation = if is_team_channel(&at.channel) {
            thread_conversation(&at.channel, root)
        } else {
            at.channel.clone()
        };
        let mut activity = card_activity(card.clone());
        activity["id"] = json!(activity_id);
        let url = self.service_url();
        let (connector, url, conversation, activity) = (
            &self.connector,
            url.as_str(),
            conversation.as_str(),
            &activity,
        );
        self.pacer
            .send(conversation, lane, move || {
                connector.update(url, conversation, activity_id, activity)
            })
            .await?;
        self.cards.lock().expect("cards lock").remember(at, card);
        Ok(())
    }

    async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        reply: &Reply,
    ) -> Result<(), ChatError> {
        let card = self.render_reply(reply);
        if channel.starts_with("a:") {
            // Already the person's 1:1 chat with the bot.
            return self
                .send_card(channel, None, card, Lane::Interactive)
                .await
                .map(|_| ());
        }
        self.tell(user, card).await
    }

    /// Teams opens dialogs only as the answer to an invoke: the form waits
    /// here for the invoke's handler to send it back.
    async fn open_form(&self, trigger_id: &str, form: &Form) -> Result<(), ChatError> {
        let mut forms = self.forms.lock().expect("forms lock");
        // A form whose invoke was answered before the app opened it is never
        // taken; forms live for one invoke, so a full map holds only those.
        if forms.len() >= FORMS_KEPT {
            forms.clear();
        }
        forms.insert(trigger_id.to_string(), form.clone());
        Ok(())
    }

    async fn group_members(&self, _group: &str) -> Result<Vec<String>, ChatError> {
        Ok(Vec::new())
    }
}

/// A message activity carrying one card and nothing else (Teams splits text
/// plus a card into two messages).
fn card_activity(card: Value) -> Value {
    json!({"type": "message", "attachments": [cards::attachment(card)]})
}

/// Team channels have threads; group and 1:1 chats do not.
fn is_team_channel(conversation: &str) -> bool {
    conversation.ends_with("@thread.tacv2") || conversation.ends_with("@thread.skype")
}

fn thread_conversation(channel: &str, root: &str) -> String {
    format!("{channel};messageid={root}")
}

/// `19:…;messageid=123` → `123`.
fn message_id(conversation: &str) -> Option<&str> {
    conversation
        .split(';')
        .find_map(|part| part.strip_prefix("messageid="))
}

/// `ts` → (thread root, the activity itself).
fn split_ts(ts: &str) -> (&str, &str) {
    match ts.split_once('/') {
        Some((root, activity)) => (root, activity),
        None => (ts, ts),
    }
}

/// Where an activity is, in the app's terms: the conversation without its
/// `;messageid=`, and the `ts` of `activity_id` in it.
fn message_ref(conversation: &str, activity_id: &str) -> MessageRef {
    let channel = conversation
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let ts = match message_id(conversation) {
        Some(root) if root != activity_id => format!("{root}/{activity_id}"),
        _ => activity_id.to_string(),
    };
    MessageRef { channel, ts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_round_trip_through_thread_conversations() {
        let root = message_ref("19:abc@thread.tacv2;messageid=100", "100");
        assert_eq!(root.channel, "19:abc@thread.tacv2");
        assert_eq!(root.ts, "100");
        assert_eq!(split_ts(&root.ts), ("100", "100"));
        let reply = message_ref("19:abc@thread.tacv2;messageid=100", "105");
        assert_eq!(reply.ts, "100/105");
        assert_eq!(split_ts(&reply.ts), ("100", "105"));
        assert_eq!(
            thread_conversation(&reply.channel, split_ts(&reply.ts).0),
            "19:abc@thread.tacv2;messageid=100"
        );
        let chat = message_ref("a:1xyz", "7");
        assert_eq!((chat.channel.as_str(), chat.ts.as_str()), ("a:1xyz", "7"));
        assert!(is_team_channel("19:abc@thread.tacv2"));
        assert!(!is_team_channel("19:abc@thread.v2"));
        assert!(!is_team_channel("a:1xyz"));
    }
}
