//! Reruns with four-eyes approval: from a click or `/rerun` to exactly one Job.
//!
//! 1. A person asks (the alert's buttons open a form; `/rerun` may carry
//!    everything). The request is checked (allowed? reason? overrides valid
//!    against the CronJob's template?), stored as *pending* and shown as an
//!    approval card.
//! 2. Someone else approves. The core decides ([`transition`]); the store's
//!    compare-and-swap makes exactly one click win; *approved* is written (and
//!    flushed) before anything is created.
//! 3. The Job is created from the CronJob's current template plus the
//!    overrides, under a name derived from the request id: a second create is a
//!    409, "already created", never a second Job.
//! 4. The Job watch reports its outcome into the thread; the card and the
//!    alert follow every step. Every transition is in the audit trail.
//!
//! After a restart, approved requests without their Job get it created (or are
//! aborted when the CronJob is gone or held); pending ones expire on time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::CronJob;
use serde::{Deserialize, Serialize};

use super::{App, BOT_ACTOR};
use crate::chat::{
    ButtonClick, ChatError, Form, FormKind, FormSubmission, FormValues, MessageRef, Outgoing,
    Platform, Reply, SlashCommand,
};
use crate::core::command::{RerunCommand, edit_distance};
use crate::core::overrides::{self, Overrides, RerunMeta, parse_env};
use crate::core::policy::Allow;
use crate::core::request::{
    self, Event, Facts, Refusal, RerunRequest, State, approval_blocker, transition,
};
use crate::core::{CronJobSnapshot, JobSnapshot};
use crate::kube::{ANNOTATION_HOLD_ID, Created};
use crate::store::{AlertRecord, AlertState, AuditEvent, alert_key};

/// How long user-group members are trusted before they are looked up again.
const GROUP_CACHE_TTL: Duration = Duration::from_secs(300);
/// Longest reason accepted (the Job annotation keeps the first 1,024 chars).
const REASON_MAX: usize = 3000;

/// What a form is about; travels in the form's `private_metadata`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FormTarget {
    namespace: String,
    cronjob: String,
    /// The alert (failed Job uid) it came from.
    alert: Option<String>,
    /// Where the card goes, and in which thread.
    channel: String,
    thread_ts: Option<String>,
}

/// A request as asked, before it is checked.
struct Ask {
    user: String,
    target: FormTarget,
    overrides: Overrides,
    reason: String,
    ticket: Option<String>,
}

/// Why a request was not created: a form field to fix, or a message.
enum AskError {
    Field(&'static str, String),
    Message(String),
}

impl AskError {
    fn into_reply(self, form: bool) -> Reply {
        match self {
            AskError::Field(field, text) if form => Reply::FormErrors(vec![(field, text)]),
            AskError::Field(_, text) | AskError::Message(text) => Reply::Ephemeral(text),
        }
    }
}

fn values_to_overrides(values: &FormValues) -> Result<Overrides, AskError> {
    let args: Vec<String> = values
        .args
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let mut env = Vec::new();
    for (n, line) in values.env.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        env.push(
            parse_env(line).map_err(|e| AskError::Field("env", format!("Line {}: {e}", n + 1)))?,
        );
    }
    Ok(Overrides {
        container: values.container.clone(),
        args,
        args_mode: values.args_mode,
        env,
    })
}

fn overrides_to_values(o: &Overrides, reason: Option<&str>, ticket: Option<&str>) -> FormValues {
    FormValues {
        reason: reason.unwrap_or_default().to_string(),
        ticket: ticket.unwrap_or_default().to_string(),
        args: o.args.join("\n"),
        args_mode: o.args_mode,
        env: o
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        container: o.container.clone(),
    }
}

fn held(cj: &CronJob) -> Option<String> {
    cj.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_HOLD_ID))
        .filter(|v| !v.trim().is_empty())
        .cloned()
}

fn template_of(cj: &CronJob) -> serde_json::Value {
    cj.spec
        .as_ref()
        .map(|s| serde_json::to_value(&s.job_template).unwrap_or_default())
        .unwrap_or_default()
}

impl App {
    // ----- permissions ------------------------------------------------------

    /// Members of the groups an allow-list names, from chat (cached).
    async fn members(&self, allow: &Allow) -> HashMap<String, Vec<String>> {
        let mut out = HashMap::new();
        for group in allow.groups() {
            let cached = self
                .groups
                .lock()
                .expect("group cache")
                .get(group)
                .filter(|(at, _)| at.elapsed() < GROUP_CACHE_TTL)
                .map(|(_, m)| m.clone());
            let members = match cached {
                Some(m) => m,
                None => match self.chat.group_members(group).await {
                    Ok(m) => {
                        self.groups
                            .lock()
                            .expect("group cache")
                            .insert(group.to_string(), (Instant::now(), m.clone()));
                        m
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, group, "cannot list user-group members");
                        Vec::new()
                    }
                },
            };
            out.insert(group.to_string(), members);
        }
        out
    }

    pub(crate) async fn may(&self, allow: &Allow, user: &str) -> bool {
        allow.allows(user, &self.members(allow).await)
    }

    /// One audit record about a request: every record carries the request's
    /// id, state, Job name, changes, reason and ticket, so each stands alone.
    async fn audit(
        &self,
        actor: &str,
        action: &str,
        req: &RerunRequest,
        detail: serde_json::Value,
    ) {
        let mut detail = detail;
        if let Some(map) = detail.as_object_mut() {
            let mut put = |k: &str, v: serde_json::Value| {
                map.entry(k.to_string()).or_insert(v);
            };
            put("request", req.id.clone().into());
            put("state", req.state.as_str().into());
            put("job", overrides::job_name(&req.cronjob, &req.id).into());
            put("requested_by", req.requested_by.clone().into());
            put("reason", req.reason.clone().into());
            put("ticket", req.ticket.clone().into());
            put("diff", serde_json::to_value(&req.diff).unwrap_or_default());
        }
        self.audit_event(actor, action, req.subject(), detail).await;
    }

    pub(crate) async fn audit_event(
        &self,
        actor: &str,
        action: &str,
        subject: String,
        detail: serde_json::Value,
    ) {
        if let Err(e) = self
            .store
            .append_audit(&AuditEvent {
                at: Utc::now(),
                actor: actor.to_string(),
                action: action.to_string(),
                subject,
                detail,
                platform: (actor != BOT_ACTOR).then(|| Platform::of_user(actor)),
            })
            .await
        {
            tracing::error!(error = %e, action, "cannot write the audit trail");
        }
    }

    /// Refuses a request by someone not on `RERUN_BOT_REQUESTERS`, on the record.
    async fn refuse_requester(&self, user: &str, subject: String) -> String {
        self.audit_event(
            user,
            "rerun.refused",
            subject,
            serde_json::json!({"action": "request", "why": "not on RERUN_BOT_REQUESTERS"}),
        )
        .await;
        format!(
            "You are not allowed to request reruns. Requesters: {}.",
            self.reruns.policy.requesters.describe()
        )
    }

    // ----- asking -----------------------------------------------------------

    /// `rerun` / `rerun_with_changes` on an alert: opens the matching form.
    pub(crate) async fn on_rerun_button(&self, click: &ButtonClick, kind: FormKind) -> Reply {
        let Some(record) = self.clicked_alert(click).await else {
            return Reply::Ephemeral("This alert is no longer known to rerun-bot.".into());
        };
        let alert = &record.alert;
        if !self.may(&self.reruns.policy.requesters, &click.user).await {
            return Reply::Ephemeral(
                self.refuse_requester(
                    &click.user,
                    format!("{}/{}", alert.namespace, alert.cronjob),
                )
                .await,
            );
        }
        let Some(cj) = self.find_by_name(&alert.namespace, &alert.cronjob).await else {
            return Reply::Ephemeral(format!(
                "CronJob `{}/{}` no longer exists; nothing to rerun.",
                alert.namespace, alert.cronjob
            ));
        };
        let (channel, thread_ts) = match (&click.message, &record.state) {
            (Some(m), AlertState::Posted { ts, thread_ts, .. }) => (
                m.channel.clone(),
                Some(thread_ts.clone().unwrap_or_else(|| ts.clone())),
            ),
            (Some(m), AlertState::Pending) => (m.channel.clone(), Some(m.ts.clone())),
            (None, _) => (record.channel.clone(), None),
        };
        let target = FormTarget {
            namespace: alert.namespace.clone(),
            cronjob: alert.cronjob.clone(),
            alert: Some(alert.job_uid.clone()),
            channel,
            thread_ts,
        };
        let context = vec![format!(
            "Failed Job {}: {} ({} failed attempts){}",
            alert.job,
            alert.reason,
            alert.failed_pods,
            alert
                .exit
                .as_ref()
                .map(|e| format!(", exit code {}", e.exit_code))
                .unwrap_or_default()
        )];
        self.open_form(
            &click.trigger_id,
            kind,
            &cj,
            target,
            context,
            FormValues::default(),
        )
        .await
    }

    /// `rerun_cronjob` (a resume summary's *Rerun* for a Job the hold
    /// terminated): the reason form for that CronJob; the card goes into the
    /// summary's thread.
    pub(crate) async fn on_rerun_cronjob_button(&self, click: &ButtonClick) -> Reply {
        let Some((namespace, name)) = click.value.as_deref().and_then(|v| v.split_once('/')) else {
            return Reply::Ephemeral("This button names no CronJob.".into());
        };
        if !self.may(&self.reruns.policy.requesters, &click.user).await {
            return Reply::Ephemeral(
                self.refuse_requester(&click.user, format!("{namespace}/{name}"))
                    .await,
            );
        }
        let Some(cj) = self.find_by_name(namespace, name).await else {
            return Reply::Ephemeral(format!(
                "CronJob `{namespace}/{name}` no longer exists; nothing to rerun."
            ));
        };
        let Some(at) = &click.message else {
            return Reply::Ephemeral("This button is not on a message rerun-bot knows.".into());
        };
        let target = FormTarget {
            namespace: cj.namespace.clone(),
            cronjob: cj.name.clone(),
            alert: None,
            channel: at.channel.clone(),
            thread_ts: Some(at.ts.clone()),
        };
        let context = vec!["Its running Job was terminated by a maintenance hold.".to_string()];
        self.open_form(
            &click.trigger_id,
            FormKind::RerunReason,
            &cj,
            target,
            context,
            FormValues::default(),
        )
        .await
    }

    /// The CronJob from the watch cache, or from the apiserver when the
    /// watch has not delivered it yet (a CronJob created a moment ago).
    async fn find_by_name(&self, namespace: &str, name: &str) -> Option<CronJobSnapshot> {
        match self.cached_cronjob(namespace, name) {
            Some(cj) => Some(cj),
            None => self.cluster.cronjob(namespace, name).await.ok().flatten(),
        }
    }

    async fn open_form(
        &self,
        trigger_id: &str,
        kind: FormKind,
        cj: &CronJobSnapshot,
        target: FormTarget,
        context: Vec<String>,
        prefill: FormValues,
    ) -> Reply {
        let form = Form {
            kind,
            namespace: cj.namespace.clone(),
            cronjob: cj.name.clone(),
            context,
            containers: cj.containers.clone(),
            prefill,
            require_ticket: self.reruns.require_ticket,
            metadata: serde_json::to_string(&target).expect("form target serializes"),
        };
        match self.chat.open_form(trigger_id, &form).await {
            Ok(()) => Reply::Ack,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the rerun form");
                Reply::Ephemeral(format!(
                    "Could not open the form ({e}). Use `/rerun {} -n {} --reason \"…\"` instead.",
                    cj.name, cj.namespace
                ))
            }
        }
    }

    /// A submitted rerun form.
    pub(crate) async fn on_form(&self, form: FormSubmission) -> Reply {
        let Ok(target) = serde_json::from_str::<FormTarget>(&form.metadata) else {
            return Reply::Ephemeral(
                "This form is from another version of rerun-bot; please start again.".into(),
            );
        };
        let overrides = match form.kind {
            FormKind::RerunReason => Overrides::default(),
            FormKind::RerunOverrides => match values_to_overrides(&form.values) {
                Ok(o) => o,
                Err(e) => return e.into_reply(true),
            },
        };
        let ticket = Some(form.values.ticket.trim().to_string()).filter(|t| !t.is_empty());
        let ask = Ask {
            user: form.user,
            target,
            overrides,
            reason: form.values.reason.trim().to_string(),
            ticket,
        };
        match self.ask(ask).await {
            Ok(_) => Reply::Ack,
            Err(e) => e.into_reply(true),
        }
    }

    /// `/rerun <cronjob> …`
    pub(crate) async fn on_rerun_command(&self, cmd: &SlashCommand, rerun: RerunCommand) -> Reply {
        if !self.may(&self.reruns.policy.requesters, &cmd.user).await {
            let subject = match &rerun.namespace {
                Some(ns) => format!("{ns}/{}", rerun.cronjob),
                None => rerun.cronjob.clone(),
            };
            return Reply::Ephemeral(self.refuse_requester(&cmd.user, subject).await);
        }
        let cj = match self.find_cronjob(&rerun.cronjob, rerun.namespace.as_deref()) {
            Ok(cj) => cj,
            Err(text) => return Reply::Ephemeral(text),
        };
        let target = FormTarget {
            namespace: cj.namespace.clone(),
            cronjob: cj.name.clone(),
            alert: None,
            channel: cmd.channel.clone(),
            thread_ts: None,
        };
        let missing_ticket = self.reruns.require_ticket && rerun.ticket.is_none();
        if rerun.reason.is_none() || missing_ticket {
            let prefill = overrides_to_values(
                &rerun.overrides,
                rerun.reason.as_deref(),
                rerun.ticket.as_deref(),
            );
            return match self
                .open_form(
                    &cmd.trigger_id,
                    FormKind::RerunOverrides,
                    &cj,
                    target,
                    vec![],
                    prefill,
                )
                .await
            {
                Reply::Ack => Reply::Ack,
                Reply::Ephemeral(_) => Reply::Ephemeral(format!(
                    "A reason is required{}: add `--reason \"…\"`{}.\n\n{}",
                    if missing_ticket {
                        " and so is a ticket"
                    } else {
                        ""
                    },
                    if missing_ticket {
                        " and `--ticket …`"
                    } else {
                        ""
                    },
                    crate::core::command::usage(crate::core::command::CommandKind::Rerun)
                )),
                other => other,
            };
        }
        let ask = Ask {
            user: cmd.user.clone(),
            target,
            overrides: rerun.overrides,
            reason: rerun.reason.unwrap_or_default(),
            ticket: rerun.ticket,
        };
        match self.ask(ask).await {
            Ok(req) => Reply::Ephemeral(format!(
                "Rerun of `{}` requested (request `{}`). Someone other than you must approve it on the card.",
                req.subject(),
                req.id
            )),
            Err(e) => e.into_reply(false),
        }
    }

    /// The CronJob `name` (in `namespace`, or the only one of that name).
    fn find_cronjob(&self, name: &str, namespace: Option<&str>) -> Result<CronJobSnapshot, String> {
        let cache = self.cronjobs.read().expect("cronjob cache lock");
        let mut same_name: Vec<&CronJobSnapshot> = cache
            .values()
            .filter(|c| c.name == name && namespace.is_none_or(|ns| c.namespace == ns))
            .collect();
        same_name.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        match same_name.as_slice() {
            [one] => Ok((*one).clone()),
            [] => {
                let mut close: Vec<(usize, String)> = cache
                    .values()
                    .filter(|c| namespace.is_none_or(|ns| c.namespace == ns))
                    .map(|c| (edit_distance(name, &c.name), c.key()))
                    .filter(|(d, key)| *d <= 3 || key.contains(name))
                    .collect();
                close.sort();
                let where_ = namespace
                    .map(|ns| format!(" in namespace `{ns}`"))
                    .unwrap_or_default();
                let hint = if close.is_empty() {
                    " Try `/cronjobs` to list them.".to_string()
                } else {
                    format!(
                        " Did you mean {}?",
                        close
                            .iter()
                            .take(5)
                            .map(|(_, k)| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                Err(format!(
                    "No CronJob `{name}`{where_} is watched by rerun-bot.{hint}"
                ))
            }
            many => Err(format!(
                "There are {} CronJobs named `{name}`: {}. Add `-n <namespace>`.",
                many.len(),
                many.iter()
                    .map(|c| format!("`{}`", c.key()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Checks and records a request and posts its approval card.
    async fn ask(&self, ask: Ask) -> Result<RerunRequest, AskError> {
        if !self.may(&self.reruns.policy.requesters, &ask.user).await {
            let subject = format!("{}/{}", ask.target.namespace, ask.target.cronjob);
            return Err(AskError::Message(
                self.refuse_requester(&ask.user, subject).await,
            ));
        }
        if ask.reason.is_empty() {
            return Err(AskError::Field(
                "reason",
                "A reason (root cause) is required.".into(),
            ));
        }
        if ask.reason.chars().count() > REASON_MAX {
            return Err(AskError::Field(
                "reason",
                format!(
                    "Keep the reason under {REASON_MAX} characters; link a ticket for details."
                ),
            ));
        }
        if self.reruns.require_ticket && ask.ticket.is_none() {
            return Err(AskError::Field(
                "ticket",
                "A ticket reference is required here.".into(),
            ));
        }
        let t = &ask.target;
        let cj = match self.cluster.cronjob_object(&t.namespace, &t.cronjob).await {
            Ok(Some(cj)) => cj,
            Ok(None) => {
                return Err(AskError::Message(format!(
                    "CronJob `{}/{}` no longer exists; nothing to rerun.",
                    t.namespace, t.cronjob
                )));
            }
            Err(e) => {
                return Err(AskError::Message(format!(
                    "Cannot read CronJob `{}/{}` right now ({e}); nothing was requested. Try again.",
                    t.namespace, t.cronjob
                )));
            }
        };
        let Some(spec) = cj.spec.as_ref().and_then(|s| s.job_template.spec.as_ref()) else {
            return Err(AskError::Message("The CronJob has no job template.".into()));
        };
        let diff = overrides::diff(spec, &ask.overrides).map_err(|e| {
            AskError::Field(
                if ask.overrides.container.is_some() {
                    "container"
                } else {
                    "args"
                },
                e.to_string(),
            )
        })?;
        let now = Utc::now();
        let source_job = match t.alert.as_deref() {
            Some(uid) => self
                .alert_copy(uid, Platform::of(&t.channel))
                .await
                .map(|r| r.alert.job),
            None => None,
        };
        let mut req = RerunRequest {
            id: String::new(),
            namespace: t.namespace.clone(),
            cronjob: t.cronjob.clone(),
            requested_by: ask.user.clone(),
            requested_at: now,
            expires_at: now
                + chrono::Duration::from_std(self.reruns.approval_ttl)
                    .unwrap_or(chrono::Duration::hours(1)),
            reason: ask.reason,
            ticket: ask.ticket,
            overrides: ask.overrides,
            diff,
            source_job,
            alert: t.alert.clone(),
            template: template_of(&cj),
            channel: t.channel.clone(),
            thread_ts: t.thread_ts.clone(),
            ..RerunRequest::default()
        };
        loop {
            req.id = request::id_from(new_id());
            match self.store.insert_request(&req).await {
                Ok(true) => break,
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot store a rerun request");
                    return Err(AskError::Message(
                        "The bot cannot record the request right now; nothing was requested."
                            .into(),
                    ));
                }
            }
        }
        self.audit(
            &req.requested_by,
            "rerun.requested",
            &req,
            serde_json::json!({
                "from": null,
                "to": "pending",
                "reason": req.reason,
                "ticket": req.ticket,
                "source_job": req.source_job,
                "diff": req.diff,
                "expires_at": req.expires_at,
            }),
        )
        .await;
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %e, "cannot flush the store");
        }
        tracing::info!(request = %req.id, cronjob = %req.subject(), "rerun requested");
        let req = self.post_card(req).await;
        self.set_alert_status(
            &req,
            format!(
                "🔁 Rerun requested by <@{}> — waiting for approval.",
                req.requested_by
            ),
        )
        .await;
        Ok(req)
    }

    /// Posts the card (into the alert's thread, or the channel typed in, else
    /// the default channel) and records where it went.
    async fn post_card(&self, mut req: RerunRequest) -> RerunRequest {
        let mut posted = self
            .chat
            .post(
                &req.channel,
                req.thread_ts.as_deref(),
                Outgoing::Request(&req),
            )
            .await;
        if let Err(ChatError::ChannelUnavailable(why)) = &posted
            && req.thread_ts.is_none()
            && req.channel != self.default_channel(Platform::of(&req.channel))
        {
            tracing::info!(channel = %req.channel, %why, "cannot post the card there; using the default channel");
            posted = self
                .chat
                .post(
                    self.default_channel(Platform::of(&req.channel)),
                    None,
                    Outgoing::Request(&req),
                )
                .await;
        }
        match posted {
            Ok(at) => {
                let mut next = req.clone();
                next.channel = at.channel;
                next.card_ts = Some(at.ts);
                match self.store.swap_request(&req, &next).await {
                    Ok(true) => req = next,
                    _ => {
                        // Someone acted on it meanwhile: keep theirs, add where the card is.
                        if let Ok(Some(mut current)) = self.store.request(&req.id).await
                            && current.card_ts.is_none()
                        {
                            let before = current.clone();
                            current.channel = next.channel.clone();
                            current.card_ts = next.card_ts.clone();
                            let _ = self.store.swap_request(&before, &current).await;
                            req = current;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, request = %req.id, "approval card not posted"),
        }
        req
    }

    // ----- deciding ---------------------------------------------------------

    /// `approve`, `deny`, `cancel` on a card.
    pub(crate) async fn on_request_button(self: &Arc<Self>, click: &ButtonClick) -> Reply {
        let req = match click.value.as_deref() {
            Some(id) => self.store.request(id).await.ok().flatten(),
            None => None,
        };
        let Some(req) = req else {
            return Reply::Ephemeral("This rerun request is not known to rerun-bot.".into());
        };
        // A request lives where it was made: ids of two platforms cannot be
        // compared, so a click naming another platform's request (one person,
        // two accounts) would pass the four-eyes check.
        let made_on = Platform::of(&req.channel);
        if Platform::of_user(&click.user) != made_on {
            return Reply::Ephemeral(format!(
                "This rerun request was made in {}; it is decided there.",
                made_on.title()
            ));
        }
        let now = Utc::now();
        let event = match click.action_id.as_str() {
            action @ ("approve" | "approve_held") => Event::Approve {
                by: click.user.clone(),
                allowed: self.may(&self.reruns.policy.approvers, &click.user).await,
                hold_override: action == "approve_held",
            },
            "deny" => Event::Deny {
                by: click.user.clone(),
                allowed: self.may(&self.reruns.policy.approvers, &click.user).await,
            },
            _ => Event::Cancel {
                by: click.user.clone(),
            },
        };
        if let Err(refusal) = transition(&req, &event, now) {
            return self.refuse(&click.user, &req, &event, refusal).await;
        }
        if let Event::Approve { hold_override, .. } = &event
            && let Err(reply) = self.check_approval(&click.user, &req, *hold_override).await
        {
            return reply;
        }
        let (before, next) = match self.advance(&req.id, &event, now).await {
            Ok(pair) => pair,
            Err(refusal) => return self.refuse(&click.user, &req, &event, refusal).await,
        };
        let action = match next.state {
            State::Approved => "rerun.approved",
            State::Denied => "rerun.denied",
            _ => "rerun.cancelled",
        };
        self.audit(
            &click.user,
            action,
            &next,
            serde_json::json!({"from": before.state.as_str(), "to": next.state.as_str()}),
        )
        .await;
        // Approval is final: durable before anything is created.
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %e, "cannot flush the store");
        }
        tracing::info!(request = %next.id, state = next.state.as_str(), by = %click.user, "rerun request decided");
        self.update_card(&next).await;
        match next.state {
            State::Approved => {
                self.set_alert_status(
                    &next,
                    format!("✅ Rerun approved by <@{}>; creating the Job…", click.user),
                )
                .await;
                let this = self.clone();
                // The leader creates it: here at once, or its recovery within seconds.
                self.spawn(async move {
                    if this.leads()
                        && let Some(_claim) = this.claim(format!("req:{}", next.id))
                    {
                        this.create_rerun_job(next).await;
                    }
                });
            }
            State::Denied => {
                self.set_alert_status(&next, format!("🚫 Rerun denied by <@{}>.", click.user))
                    .await;
            }
            _ => {
                self.set_alert_status(&next, "Rerun request cancelled.".to_string())
                    .await;
            }
        }
        Reply::Ack
    }

    async fn refuse(
        &self,
        user: &str,
        req: &RerunRequest,
        event: &Event,
        refusal: Refusal,
    ) -> Reply {
        let action = match event {
            Event::Approve { .. } => "approve",
            Event::Deny { .. } => "deny",
            _ => "cancel",
        };
        self.audit(
            user,
            "rerun.refused",
            req,
            serde_json::json!({"action": action, "why": refusal.to_string()}),
        )
        .await;
        let mut text = refusal.to_string();
        if let Refusal::NotAllowed { .. } = refusal {
            text.push_str(&format!(
                " Approvers: {}.",
                self.reruns.policy.approvers.describe()
            ));
        }
        if let Refusal::Expired { .. } = refusal
            && req.state == State::Pending
        {
            self.expire(&req.id).await;
        }
        Reply::Ephemeral(text)
    }

    /// Whether an approval may go ahead: the cluster's facts against the
    /// core's blockers. A hold met here is offered as *Approve during hold*.
    async fn check_approval(
        &self,
        user: &str,
        req: &RerunRequest,
        hold_override: bool,
    ) -> Result<(), Reply> {
        let cj = match self
            .cluster
            .cronjob_object(&req.namespace, &req.cronjob)
            .await
        {
            Ok(cj) => cj,
            Err(e) => {
                return Err(Reply::Ephemeral(format!(
                    "Cannot read the CronJob right now ({e}); nothing was approved. Try again."
                )));
            }
        };
        let policy = cj
            .as_ref()
            .and_then(|c| c.spec.as_ref())
            .and_then(|s| s.concurrency_policy.clone())
            .unwrap_or_else(|| "Allow".into());
        let running = if matches!(policy.as_str(), "Forbid" | "Replace") {
            match self
                .cluster
                .running_jobs(&req.namespace, &req.cronjob)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    return Err(Reply::Ephemeral(format!(
                        "Cannot check for running Jobs right now ({e}); nothing was approved. Try again."
                    )));
                }
            }
        } else {
            Vec::new()
        };
        let template = cj.as_ref().map(template_of);
        let hold = cj.as_ref().and_then(held);
        let facts = Facts {
            template: template.as_ref(),
            concurrency_policy: &policy,
            running: &running,
            held: hold.as_deref(),
        };
        let confirmed = RerunRequest {
            hold_override,
            ..req.clone()
        };
        if let Some(blocker) = approval_blocker(&confirmed, &facts) {
            if let request::Blocker::Held { hold } = &blocker
                && req.held.as_deref() != Some(hold.as_str())
            {
                // Offer the explicit override on the card.
                let mut next = req.clone();
                next.held = Some(hold.clone());
                if let Ok(true) = self.store.swap_request(req, &next).await {
                    self.update_card(&next).await;
                }
            }
            self.audit(
                user,
                "rerun.refused",
                req,
                serde_json::json!({"action": "approve", "why": blocker.to_string()}),
            )
            .await;
            return Err(Reply::Ephemeral(blocker.to_string()));
        }
        Ok(())
    }

    /// Applies `event` with compare-and-swap, re-reading after a lost race.
    /// Returns the request before and after.
    async fn advance(
        &self,
        id: &str,
        event: &Event,
        now: DateTime<Utc>,
    ) -> Result<(RerunRequest, RerunRequest), Refusal> {
        loop {
            let current = match self.store.request(id).await {
                Ok(Some(r)) => r,
                _ => {
                    return Err(Refusal::WrongState {
                        state: "unreadable",
                    });
                }
            };
            let next = transition(&current, event, now)?;
            match self.store.swap_request(&current, &next).await {
                Ok(true) => return Ok((current, next)),
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot store a request transition");
                    return Err(Refusal::WrongState {
                        state: "unwritable",
                    });
                }
            }
        }
    }

    // ----- acting -----------------------------------------------------------

    /// Creates the Job of an approved request (also after a restart).
    async fn create_rerun_job(&self, req: RerunRequest) {
        // Read the CronJob again, last thing: a hold or an edit may have come
        // in since the approval (or since before a restart).
        let cj = match self
            .cluster
            .cronjob_object(&req.namespace, &req.cronjob)
            .await
        {
            Ok(cj) => cj,
            Err(e) => {
                tracing::warn!(error = %e, request = %req.id, "cannot read the CronJob; will retry at the next start");
                return;
            }
        };
        let Some(cj) = cj else {
            return self.abort(&req, "the CronJob was deleted".into()).await;
        };
        if let Some(hold) = held(&cj)
            && !req.hold_override
        {
            return self
                .abort(&req, format!("the CronJob is on maintenance hold `{hold}`"))
                .await;
        }
        if template_of(&cj) != req.template {
            return self
                .abort(
                    &req,
                    "the CronJob's job template changed after the approval; please ask again"
                        .into(),
                )
                .await;
        }
        let approved_by = req.approved_by.clone().unwrap_or_default();
        let meta = RerunMeta {
            request_id: &req.id,
            requested_by: &req.requested_by,
            approved_by: &approved_by,
            reason: &req.reason,
            ticket: req.ticket.as_deref(),
            source_job: req.source_job.as_deref(),
        };
        let job = match overrides::build_job(&cj, &req.overrides, &meta) {
            Ok(job) => job,
            Err(e) => return self.abort(&req, e.to_string()).await,
        };
        let name = job.metadata.name.clone().unwrap_or_default();
        let created = match self.create_with_retry(&job, &req).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, request = %req.id, "cannot create the rerun Job");
                return self
                    .abort(&req, format!("the Job could not be created: {e}"))
                    .await;
            }
        };
        let Ok((before, next)) = self
            .advance(&req.id, &Event::Created { job: name.clone() }, Utc::now())
            .await
        else {
            return; // already recorded (the Job watch was faster)
        };
        self.audit(
            BOT_ACTOR,
            "rerun.created",
            &next,
            serde_json::json!({
                "from": before.state.as_str(),
                "to": next.state.as_str(),
                "job": name,
                "already_existed": created == Created::AlreadyExisted,
                "requested_by": next.requested_by,
                "approved_by": next.approved_by,
                "reason": next.reason,
                "ticket": next.ticket,
                "diff": next.diff,
            }),
        )
        .await;
        let _ = self.store.flush().await;
        tracing::info!(request = %next.id, job = %name, "rerun Job created");
        self.notify(
            &next,
            &format!("🚀 Job `{name}` created (approved by <@{approved_by}>)."),
        )
        .await;
        self.update_card(&next).await;
        self.set_alert_status(
            &next,
            format!("🚀 Rerun `{name}` running (approved by <@{approved_by}>)."),
        )
        .await;
    }

    /// Creates the Job, retrying transient errors; before giving up, looks the
    /// deterministic name up (a timed-out create may have gone through).
    async fn create_with_retry(
        &self,
        job: &k8s_openapi::api::batch::v1::Job,
        req: &RerunRequest,
    ) -> Result<Created, crate::kube::KubeError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if !self.leads() {
                return Err(crate::kube::KubeError::NotLeader);
            }
            match self.cluster.create_job(job).await {
                Ok(c) => return Ok(c),
                Err(e) if attempt < 3 => {
                    tracing::warn!(error = %e, request = %req.id, attempt, "creating the rerun Job failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                }
                Err(e) => {
                    let name = job.metadata.name.as_deref().unwrap_or_default();
                    return match self.cluster.job(&req.namespace, name).await {
                        Ok(Some(_)) => Ok(Created::AlreadyExisted),
                        _ => Err(e),
                    };
                }
            }
        }
    }

    async fn abort(&self, req: &RerunRequest, why: String) {
        let Ok((before, next)) = self
            .advance(&req.id, &Event::Abort { why: why.clone() }, Utc::now())
            .await
        else {
            return;
        };
        self.audit(
            BOT_ACTOR,
            "rerun.aborted",
            &next,
            serde_json::json!({"from": before.state.as_str(), "to": next.state.as_str(), "why": why}),
        ).await;
        let _ = self.store.flush().await;
        tracing::warn!(request = %next.id, %why, "approved rerun not run");
        self.notify(&next, &format!("⚠️ The approved rerun was not run: {why}."))
            .await;
        self.update_card(&next).await;
        self.set_alert_status(&next, format!("⚠️ Rerun not run: {why}."))
            .await;
    }

    /// A Job event for a Job the bot created as a rerun. `false`: not ours.
    pub(crate) async fn on_rerun_job(self: &Arc<Self>, job: &JobSnapshot) -> bool {
        let Some(id) = &job.rerun_request else {
            return false;
        };
        let Ok(Some(req)) = self.store.request(id).await else {
            return false;
        };
        let finished = job.complete.is_some() || job.failed.is_some();
        if !finished || !matches!(req.state, State::Approved | State::Created) {
            return true;
        }
        let this = self.clone();
        let job = job.clone();
        self.spawn(async move { this.finish(req, job).await });
        true
    }

    async fn finish(&self, req: RerunRequest, job: JobSnapshot) {
        let now = Utc::now();
        if req.state == State::Approved {
            let _ = self
                .advance(
                    &req.id,
                    &Event::Created {
                        job: job.name.clone(),
                    },
                    now,
                )
                .await;
        }
        let (succeeded, note) = match (&job.complete, &job.failed) {
            (Some(_), _) => (true, None),
            (_, Some(f)) => (
                false,
                Some(if f.message.is_empty() {
                    f.reason.clone()
                } else {
                    format!("{}: {}", f.reason, f.message)
                }),
            ),
            _ => return,
        };
        let Ok((before, next)) = self
            .advance(
                &req.id,
                &Event::Finished {
                    succeeded,
                    note: note.clone(),
                },
                now,
            )
            .await
        else {
            return; // reported already
        };
        self.audit(
            BOT_ACTOR,
            if succeeded { "rerun.succeeded" } else { "rerun.failed" },
            &next,
            serde_json::json!({"from": before.state.as_str(), "to": next.state.as_str(), "job": job.name, "note": note}),
        ).await;
        let _ = self.store.flush().await;
        let text = if succeeded {
            format!("✅ Rerun Job `{}` succeeded.", job.name)
        } else {
            let exit = match self.cluster.failure_details(&job, 1, 256).await.0 {
                Some(e) => format!(" Exit code {} in container `{}`.", e.exit_code, e.container),
                None => String::new(),
            };
            format!(
                "❌ Rerun Job `{}` failed: {}.{exit}",
                job.name,
                note.clone().unwrap_or_default()
            )
        };
        tracing::info!(request = %next.id, job = %job.name, succeeded, "rerun finished");
        self.notify(&next, &text).await;
        self.update_card(&next).await;
        self.set_alert_status(&next, text).await;
    }

    // ----- telling ----------------------------------------------------------

    async fn notify(&self, req: &RerunRequest, text: &str) {
        if let Err(e) = self
            .chat
            .post(&req.channel, req.thread(), Outgoing::Notice(text))
            .await
        {
            tracing::warn!(error = %e, request = %req.id, "cannot post rerun progress");
        }
    }

    async fn update_card(&self, req: &RerunRequest) {
        let Some(ts) = &req.card_ts else { return };
        let at = MessageRef {
            channel: req.channel.clone(),
            ts: ts.clone(),
        };
        if let Err(e) = self.chat.update(&at, Outgoing::Request(req)).await {
            tracing::warn!(error = %e, request = %req.id, "cannot update the approval card");
        }
    }

    /// Shows `status` on every copy of the alert the request came from
    /// (top-level alerts only), on every platform.
    async fn set_alert_status(&self, req: &RerunRequest, status: String) {
        let Some(uid) = &req.alert else { return };
        for platform in Platform::ALL {
            let key = alert_key(platform, uid);
            let Ok(Some(record)) = self.store.alert(&key).await else {
                continue;
            };
            // Under the thread's lock, as the post and the details are, so
            // no write of one overwrites the other's.
            let lock = self.thread_lock(&super::alerts::record_thread_key(&record));
            let _serialized = lock.lock().await;
            let Ok(Some(mut record)) = self.store.alert(&key).await else {
                continue;
            };
            record.status = Some(status.clone());
            if let Err(e) = self.store.put_alert(&key, &record).await {
                tracing::warn!(error = %e, "cannot store the alert status");
            }
            let Some((at, failures, false)) = self.posted_alert(&record).await else {
                continue;
            };
            let message = Outgoing::Alert {
                alert: &record.alert,
                failures,
                reply: false,
                status: record.status.as_deref(),
            };
            if let Err(e) = self.chat.update(&at, message).await {
                tracing::warn!(error = %e, platform = platform.name(), "cannot update the alert");
            }
        }
    }

    /// The copy of the alert a button sits on: the one of the platform the
    /// click came from (a request lives where it was made), else any copy.
    pub(crate) async fn clicked_alert(&self, click: &ButtonClick) -> Option<AlertRecord> {
        let uid = click.value.as_deref()?;
        let here = click
            .message
            .as_ref()
            .map(|m| Platform::of(&m.channel))
            .unwrap_or_default();
        self.alert_copy(uid, here).await
    }

    /// The alert about Job `uid`: the copy on `here`, else any copy.
    async fn alert_copy(&self, uid: &str, here: Platform) -> Option<AlertRecord> {
        for p in std::iter::once(here).chain(Platform::ALL) {
            if let Ok(Some(record)) = self.store.alert(&alert_key(p, uid)).await {
                return Some(record);
            }
        }
        None
    }

    // ----- time and restarts ------------------------------------------------

    async fn expire(&self, id: &str) {
        let Ok((before, next)) = self.advance(id, &Event::Expire, Utc::now()).await else {
            return;
        };
        self.audit(
            BOT_ACTOR,
            "rerun.expired",
            &next,
            serde_json::json!({"from": before.state.as_str(), "to": next.state.as_str()}),
        )
        .await;
        tracing::info!(request = %id, "rerun request expired");
        self.update_card(&next).await;
        self.set_alert_status(&next, "⌛ Rerun request expired without approval.".into())
            .await;
    }

    /// Expires pending requests on time.
    pub(crate) async fn run_request_expiry(self: Arc<Self>) {
        let every = (self.reruns.approval_ttl / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(30));
        loop {
            let now = Utc::now();
            for req in self.store.requests().await.unwrap_or_default() {
                if req.state == State::Pending && req.expires_at <= now {
                    self.expire(&req.id).await;
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    /// After a restart: approved requests get their Job (or are aborted).
    pub(crate) async fn recover_requests(self: Arc<Self>) {
        let requests = match self.store.requests().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read rerun requests");
                return;
            }
        };
        for req in requests.into_iter().filter(|r| r.state == State::Approved) {
            if !self.leads() {
                return;
            }
            let Some(_claim) = self.claim(format!("req:{}", req.id)) else {
                continue; // being created right now
            };
            // Read again under the claim: it may have been created meanwhile.
            let Ok(Some(req)) = self.store.request(&req.id).await else {
                continue;
            };
            if req.state != State::Approved {
                continue;
            }
            let name = overrides::job_name(&req.cronjob, &req.id);
            match self.cluster.job(&req.namespace, &name).await {
                Ok(Some(job)) => {
                    tracing::info!(request = %req.id, job = %name, "approved rerun's Job exists; recording it");
                    let finished = job.complete.is_some() || job.failed.is_some();
                    if let Ok((before, next)) = self
                        .advance(&req.id, &Event::Created { job: name.clone() }, Utc::now())
                        .await
                    {
                        self.audit(
                            BOT_ACTOR,
                            "rerun.created",
                            &next,
                            serde_json::json!({"from": before.state.as_str(), "to": next.state.as_str(), "job": name, "already_existed": true}),
                        ).await;
                        self.notify(&next, &format!("🚀 Job `{name}` created."))
                            .await;
                        self.update_card(&next).await;
                        if finished {
                            self.finish(next, job).await;
                        }
                    }
                }
                Ok(None) => {
                    tracing::info!(request = %req.id, "approved rerun has no Job yet; creating it");
                    self.create_rerun_job(req).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, request = %req.id, "cannot look the rerun Job up")
                }
            }
        }
    }

    /// `/rerun history [cronjob]`: the last 10 requests, newest first.
    pub(crate) async fn history(&self, cronjob: Option<&str>) -> Reply {
        let mut all = match self.store.requests().await {
            Ok(r) => r,
            Err(e) => return Reply::Ephemeral(format!("Cannot read the history right now: {e}")),
        };
        all.retain(|r| cronjob.is_none_or(|c| r.cronjob == c || r.subject() == c));
        all.reverse();
        all.truncate(10);
        Reply::History(all)
    }
}

/// A fresh random number for a request id (the store refuses duplicates).
pub(crate) fn new_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    // 8 base-36 digits.
    h.finish() % 2_821_109_907_456
}
