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
//!
//! One file per step: [`ask`] (1), [`decide`] (2), [`act`] (3, 4 and what is
//! told where), [`recover`] (time and restarts); shared helpers and the
//! permissions here.

mod act;
mod ask;
mod batch;
mod decide;
mod from_digest;
mod recover;
mod stop;

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
    self, Event, Facts, Refusal, RerunRequest, State, StopTarget, approval_blocker, transition,
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
    /// Set by a storm digest's *Rerun all failed…*: the form asks for a batch
    /// of every CronJob that failed since then (`/rerun failed`), not one rerun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed_since: Option<DateTime<Utc>>,
    /// Set by a long-run alert's *Stop this run…*: the request stops that Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stop: Option<StopTarget>,
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
    pub(super) fn into_reply(self, form: bool) -> Reply {
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
    pub(super) async fn members(&self, allow: &Allow) -> HashMap<String, Vec<String>> {
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
    pub(super) async fn audit(
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
            let job = match &req.stop {
                Some(stop) => stop.job.clone(),
                None => overrides::job_name(&req.cronjob, &req.id),
            };
            put("job", job.into());
            put("requested_by", req.requested_by.clone().into());
            put("reason", req.reason.clone().into());
            put("ticket", req.ticket.clone().into());
            if req.ticket_url.is_some() {
                put("ticket_url", req.ticket_url.clone().into());
            }
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
    pub(super) async fn refuse_requester(&self, user: &str, subject: String) -> String {
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
}

/// A command without its reason (or required ticket) whose form could not
/// open: what to add, and the command's usage.
fn reason_required(missing_ticket: bool, kind: crate::core::command::CommandKind) -> String {
    let (so_is, add) = if missing_ticket {
        (" and so is a ticket", " and `--ticket …`")
    } else {
        ("", "")
    };
    format!(
        "A reason is required{so_is}: add `--reason \"…\"`{add}.\n\n{}",
        crate::core::command::usage(kind)
    )
}

/// The request's word in a sentence's start: `Rerun` or `Stop`.
fn title(req: &RerunRequest) -> &'static str {
    if req.stop.is_some() { "Stop" } else { "Rerun" }
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
