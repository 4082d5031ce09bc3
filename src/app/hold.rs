//! Maintenance holds and resumes: previewed, confirmed, applied CronJob by
//! CronJob, recorded.
//!
//! 1. `/hold …`, `/resume …` or the alert's *Hold* button: the core selects the
//!    CronJobs and plans what happens to each; the plan is stored and shown
//!    as a preview with a confirm button (only the person who asked confirms).
//! 2. Confirm: the operation turns *applying* (compare-and-swap: one confirm
//!    wins), then every CronJob gets one merge patch that suspends it and
//!    records the hold on it; owners who asked for `terminate` also lose their
//!    running Jobs (`propagationPolicy: Background`). Progress is stored after
//!    every CronJob and shown in the channel.
//! 3. A restart finishes an operation left *applying*: the patches are
//!    idempotent. Resume works from the annotations alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::{App, BOT_ACTOR};
use crate::chat::{ButtonClick, Confirm, MessageRef, Outgoing, Reply, SlashCommand};
use crate::core::CronJobSnapshot;
use crate::core::command::{HoldCommand, ResumeCommand, ResumeTarget, Target};
use crate::core::hold::{self, Kind, Operation, Outcome, Phase};
use crate::core::policy::Allow;
use crate::core::request::id_from;

/// Attempts per CronJob patch before it is reported as failed.
const PATCH_ATTEMPTS: u32 = 3;
/// How often a large operation's progress message is refreshed.
const PROGRESS_EVERY: usize = 50;
/// How often its progress is stored.
const SAVE_EVERY: usize = 10;
/// How often `--until` deadlines are checked.
const HOLD_TIMER_TICK: Duration = Duration::from_secs(1);

impl App {
    fn all_cronjobs(&self) -> Vec<CronJobSnapshot> {
        self.cronjobs
            .read()
            .expect("cronjob cache lock")
            .values()
            .cloned()
            .collect()
    }

    /// The CronJobs as the apiserver has them now, for planning.
    async fn current_cronjobs(&self) -> Result<Vec<CronJobSnapshot>, Reply> {
        self.cluster.list_cronjobs().await.map_err(|e| {
            Reply::Ephemeral(format!(
                "Cannot list CronJobs right now ({e}); nothing was changed. Try again."
            ))
        })
    }

    async fn audit_op(&self, actor: &str, action: &str, op: &Operation, detail: serde_json::Value) {
        let mut detail = detail;
        if let Some(map) = detail.as_object_mut() {
            map.insert("operation".into(), op.id.clone().into());
            map.insert("reason".into(), op.reason.clone().into());
            map.insert(
                "cronjobs".into(),
                op.items.iter().map(|i| i.key()).collect::<Vec<_>>().into(),
            );
        }
        self.audit_event(actor, action, op.target.clone(), detail)
            .await;
    }

    /// Whether `user` may act on `target`; the refusal text otherwise.
    async fn may_hold(&self, user: &str, admin: bool, what: &str) -> Result<(), String> {
        let (allow, list): (&Allow, &str) = if admin {
            (&self.reruns.policy.admins, "RERUN_BOT_ADMINS")
        } else {
            (&self.reruns.policy.approvers, "RERUN_BOT_APPROVERS")
        };
        if self.may(allow, user).await {
            return Ok(());
        }
        self.audit_event(
            user,
            "hold.refused",
            what.to_string(),
            serde_json::json!({"why": format!("not on {list}")}),
        )
        .await;
        Err(match allow {
            Allow::Only(ids) if ids.is_empty() => format!(
                "Nobody may {what} yet: set `{list}` to the Slack user or user-group ids allowed to. Nothing was changed."
            ),
            _ => format!(
                "You are not allowed to {what} (`{list}`: {}). Nothing was changed.",
                allow.describe()
            ),
        })
    }

    /// `/hold …`: plans the hold and answers with its preview.
    pub(crate) async fn on_hold_command(&self, cmd: &SlashCommand, hold: HoldCommand) -> Reply {
        self.plan_hold(&cmd.user, &cmd.channel, hold).await
    }

    /// The alert's *Hold* button: a hold of that CronJob, previewed the same way.
    pub(crate) async fn on_hold_button(&self, click: &ButtonClick) -> Reply {
        let Some(record) = self.clicked_alert(click).await else {
            return Reply::Ephemeral("This alert is no longer known to rerun-bot.".into());
        };
        let channel = click
            .message
            .as_ref()
            .map(|m| m.channel.clone())
            .unwrap_or(record.channel);
        let target = Target::CronJob {
            name: record.alert.cronjob,
            namespace: Some(record.alert.namespace),
        };
        self.plan_hold(
            &click.user,
            &channel,
            HoldCommand {
                target,
                reason: None,
                until: None,
            },
        )
        .await
    }

    async fn plan_hold(&self, user: &str, channel: &str, hold: HoldCommand) -> Reply {
        let what = format!("hold `{}`", hold::describe(&hold.target));
        if let Err(text) = self
            .may_hold(user, hold::needs_admin(&hold.target), &what)
            .await
        {
            return Reply::Ephemeral(text);
        }
        let all = match self.current_cronjobs().await {
            Ok(all) => all,
            Err(reply) => return reply,
        };
        let selected = match hold::select(&hold.target, &all) {
            Ok(s) => s,
            Err(text) => return Reply::Ephemeral(text),
        };
        let running = if selected
            .iter()
            .any(|c| c.on_hold == crate::core::OnHold::Terminate)
        {
            match self.cluster.running_jobs_by_cronjob().await {
                Ok(r) => r,
                Err(e) => {
                    return Reply::Ephemeral(format!(
                        "Cannot list running Jobs right now ({e}); nothing was changed. Try again."
                    ));
                }
            }
        } else {
            HashMap::new()
        };
        let items = hold::plan_hold(&selected, &running);
        let already_held = selected.len() - items.len();
        if items.is_empty() {
            return Reply::Ephemeral(format!(
                "Every CronJob of `{}` is already on a hold (`/hold status`). Nothing was changed.",
                hold::describe(&hold.target)
            ));
        }
        let op = Operation {
            id: format!("hold-{}", id_from(super::rerun::new_id())),
            kind: Kind::Hold,
            target: hold::describe(&hold.target),
            reason: hold.reason,
            by: user.to_string(),
            at: Utc::now(),
            channel: channel.to_string(),
            phase: Phase::Planned,
            items,
            message: None,
            ended: false,
            until_secs: hold.until.map(|d| d.as_secs()),
            resume_at: None,
            reminded: false,
        };
        if let Err(e) = self.store.insert_operation(&op).await {
            tracing::error!(error = %e, "cannot store a hold plan");
            return Reply::Ephemeral(
                "The bot cannot record the hold right now; nothing was changed.".into(),
            );
        }
        self.audit_op(user, "hold.planned", &op, serde_json::json!({}))
            .await;
        let suspend = op.items.iter().filter(|i| !i.suspended_before).count();
        let mut text = format!(
            "*Hold `{}`* (id `{}`){}:\n• {suspend} CronJob{} will be suspended",
            op.target,
            op.id,
            op.reason
                .as_deref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default(),
            if suspend == 1 { "" } else { "s" },
        );
        let before = op.items.len() - suspend;
        if before > 0 {
            text.push_str(&format!(
                "\n• {before} already suspended: recorded, left alone, stay suspended after `/resume`"
            ));
        }
        if already_held > 0 {
            text.push_str(&format!(
                "\n• {already_held} already on another hold: left out"
            ));
        }
        let terminate: Vec<String> = op
            .items
            .iter()
            .filter(|i| i.terminate)
            .take(20)
            .map(|i| {
                let jobs = if i.running.is_empty() {
                    "no running Job".to_string()
                } else {
                    i.running
                        .iter()
                        .map(|j| format!("`{j}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!("    ◦ `{}`: {jobs}", i.key())
            })
            .collect();
        if !terminate.is_empty() {
            text.push_str(&format!(
                "\n• their running Jobs are terminated too (owner asked, `rerun-bot.io/on-hold: terminate`):\n{}",
                terminate.join("\n")
            ));
        }
        if let Some(secs) = op.until_secs {
            text.push_str(&format!(
                "\n• resumes by itself {} after you confirm (a reminder comes first)",
                humantime::format_duration(Duration::from_secs(secs))
            ));
        }
        text.push_str("\nNothing changes until you confirm.");
        Reply::Confirm(Confirm {
            text,
            action: "hold_confirm",
            label: "Hold",
            value: op.id.clone(),
        })
    }

    /// `/resume …`: plans the resume from the CronJobs' hold annotations.
    pub(crate) async fn on_resume_command(
        &self,
        cmd: &SlashCommand,
        resume: ResumeCommand,
    ) -> Reply {
        let all = match self.current_cronjobs().await {
            Ok(all) => all,
            Err(reply) => return reply,
        };
        let (label, items, admin) = match &resume.target {
            ResumeTarget::Target(target) => {
                let selected = match hold::select(target, &all) {
                    Ok(s) => s,
                    Err(text) => return Reply::Ephemeral(text),
                };
                (
                    hold::describe(target),
                    hold::plan_resume(&selected, None),
                    hold::needs_admin(target),
                )
            }
            ResumeTarget::HoldId(id) => {
                let refs: Vec<&CronJobSnapshot> = all.iter().collect();
                let items = hold::plan_resume(&refs, Some(id));
                // A bulk hold needs an admin to resume, however much of it is left.
                let admin = match self.store.operation(id).await {
                    Ok(Some(held)) => held.target == "all" || held.target.starts_with("ns:"),
                    _ => items.len() != 1,
                };
                (id.clone(), items, admin)
            }
        };
        if items.is_empty() {
            return Reply::Ephemeral(match &resume.target {
                ResumeTarget::HoldId(id) => format!(
                    "No CronJob is on hold `{id}` (see `/hold status`). Nothing was changed."
                ),
                ResumeTarget::Target(_) => format!(
                    "Nothing of `{label}` is on a rerun-bot hold. CronJobs suspended by hand are never resumed by the bot."
                ),
            });
        }
        if let Err(text) = self
            .may_hold(&cmd.user, admin, &format!("resume `{label}`"))
            .await
        {
            return Reply::Ephemeral(text);
        }
        let op = Operation {
            id: format!("resume-{}", id_from(super::rerun::new_id())),
            kind: Kind::Resume,
            target: label,
            reason: None,
            by: cmd.user.clone(),
            at: Utc::now(),
            channel: cmd.channel.clone(),
            phase: Phase::Planned,
            items,
            message: None,
            ended: false,
            until_secs: None,
            resume_at: None,
            reminded: false,
        };
        if self.store.insert_operation(&op).await.is_err() {
            return Reply::Ephemeral(
                "The bot cannot record the resume right now; nothing was changed.".into(),
            );
        }
        self.audit_op(&cmd.user, "resume.planned", &op, serde_json::json!({}))
            .await;
        let stay = op.items.iter().filter(|i| i.suspended_before).count();
        let mut text = format!(
            "*Resume `{}`* (id `{}`):\n• {} CronJob{} will be unsuspended",
            op.target,
            op.id,
            op.items.len() - stay,
            if op.items.len() - stay == 1 { "" } else { "s" }
        );
        if stay > 0 {
            text.push_str(&format!(
                "\n• {stay} stay suspended: they were suspended before the hold"
            ));
        }
        text.push_str("\nCronJobs unsuspended by someone else meanwhile are reported, not touched. Nothing changes until you confirm.");
        Reply::Confirm(Confirm {
            text,
            action: "resume_confirm",
            label: "Resume",
            value: op.id.clone(),
        })
    }

    /// `hold_confirm`, `resume_confirm`, `hold_cancel` on a preview.
    pub(crate) async fn on_confirm(self: &Arc<Self>, click: &ButtonClick) -> Reply {
        let op = match click.value.as_deref() {
            Some(id) => self.store.operation(id).await.ok().flatten(),
            None => None,
        };
        let Some(op) = op else {
            return Reply::Ephemeral("This hold or resume is not known to rerun-bot.".into());
        };
        if click.user != op.by {
            return Reply::Ephemeral(format!(
                "Only <@{}>, who asked for it, can confirm or cancel this preview.",
                op.by
            ));
        }
        if op.phase != Phase::Planned {
            return Reply::Ephemeral(format!(
                "This {} was already {}.",
                if op.kind == Kind::Hold {
                    "hold"
                } else {
                    "resume"
                },
                match op.phase {
                    Phase::Cancelled => "cancelled",
                    _ => "confirmed",
                }
            ));
        }
        let mut next = op.clone();
        next.phase = if click.action_id == "hold_cancel" {
            Phase::Cancelled
        } else {
            Phase::Applying
        };
        next.resume_at = next
            .until_secs
            .map(|secs| Utc::now() + chrono::Duration::seconds(secs as i64));
        if !matches!(self.store.swap_operation(&op, &next).await, Ok(true)) {
            return Reply::Ephemeral("This preview was already confirmed or cancelled.".into());
        }
        let kind = if op.kind == Kind::Hold {
            "hold"
        } else {
            "resume"
        };
        if next.phase == Phase::Cancelled {
            self.audit_op(
                &click.user,
                &format!("{kind}.cancelled"),
                &next,
                serde_json::json!({}),
            )
            .await;
            let _ = self.store.flush().await;
            return Reply::Ephemeral(format!("Cancelled `{}`. Nothing was changed.", op.id));
        }
        self.audit_op(
            &click.user,
            &format!("{kind}.confirmed"),
            &next,
            serde_json::json!({}),
        )
        .await;
        if next.kind == Kind::Resume {
            self.end_global_hold(&next).await;
        }
        let _ = self.store.flush().await;
        let this = self.clone();
        self.spawn(async move { this.apply_once(next).await });
        Reply::Ack
    }

    /// Applies `op` unless this replica does not lead or already applies it;
    /// the leader's recovery finishes what a follower confirmed.
    async fn apply_once(self: &Arc<Self>, op: Operation) {
        if !self.leads() {
            return;
        }
        let Some(_claim) = self.claim(format!("op:{}", op.id)) else {
            return;
        };
        // Read again under the claim: another pass may have finished it.
        let Ok(Some(op)) = self.store.operation(&op.id).await else {
            return;
        };
        if op.phase == Phase::Applying {
            self.apply(op).await;
        }
    }

    /// Applies every planned item, storing progress after each.
    pub(crate) async fn apply(self: &Arc<Self>, mut op: Operation) {
        if op.kind == Kind::Resume {
            // Also after a restart: the global hold ends before anything is resumed.
            self.end_global_hold(&op).await;
        }
        if op.message.is_none() {
            match self
                .chat
                .post(&op.channel, None, Outgoing::Operation(&op))
                .await
            {
                Ok(at) => {
                    op = self
                        .save_op(op, |o| o.message = Some((at.channel, at.ts)))
                        .await
                }
                Err(e) => tracing::warn!(error = %e, op = %op.id, "cannot post hold progress"),
            }
        }
        // Progress is stored every SAVE_EVERY CronJobs (not after each: the
        // whole operation is one record); re-applying after a crash is safe,
        // as every patch is idempotent.
        let mut stored = op.clone();
        for index in 0..op.items.len() {
            if !self.leads() {
                // Progress so far is stored; the new leader goes on from there.
                return;
            }
            if op.items[index].outcome != Outcome::Planned {
                continue;
            }
            let (outcome, terminated, suspended_before) = match op.kind {
                Kind::Hold => self.hold_one(&op, index).await,
                Kind::Resume => {
                    let (outcome, terminated) = self.resume_one(&op, index).await;
                    (outcome, terminated, op.items[index].suspended_before)
                }
            };
            op.items[index].outcome = outcome;
            op.items[index].terminated = terminated;
            op.items[index].suspended_before = suspended_before;
            let done = index + 1;
            if done % SAVE_EVERY == 0 {
                stored = self.save_op(stored, |o| *o = op.clone()).await;
            }
            if done % PROGRESS_EVERY == 0 {
                self.show_op(&op).await;
            }
        }
        op = self
            .save_op(stored, |o| {
                *o = op;
            })
            .await;
        op = self.save_op(op, |o| o.phase = Phase::Done).await;
        let _ = self.store.flush().await;
        let kind = if op.kind == Kind::Hold {
            "hold"
        } else {
            "resume"
        };
        let failed: Vec<String> = op
            .items
            .iter()
            .filter(|i| matches!(i.outcome, Outcome::Failed(_)))
            .map(|i| i.key())
            .collect();
        self.audit_op(
            BOT_ACTOR,
            &format!("{kind}.applied"),
            &op,
            serde_json::json!({
                "held": op.count(|o| *o == Outcome::Held),
                "resumed": op.count(|o| *o == Outcome::Resumed),
                "left_suspended": op.count(|o| *o == Outcome::LeftSuspended),
                "changed_by_hand": op.count(|o| *o == Outcome::ChangedByHand),
                "gone": op.count(|o| *o == Outcome::Gone),
                "failed": failed,
                "terminated": op.items.iter().flat_map(|i| i.terminated.iter().map(move |j| format!("{}/{j}", i.namespace))).collect::<Vec<_>>(),
            }),
        ).await;
        tracing::info!(op = %op.id, kind, items = op.items.len(), failed = failed.len(), "hold operation done");
        if op.kind == Kind::Hold && op.target == "all" {
            // What appeared or was unsuspended while the hold was applied.
            if let Ok(current) = self.cluster.list_cronjobs().await {
                for cj in &current {
                    self.enforce_global_hold(cj).await;
                }
            }
        }
        self.show_op(&op).await;
    }

    /// Stores `op` changed by `change` (the applier is its only writer).
    async fn save_op(&self, op: Operation, change: impl FnOnce(&mut Operation)) -> Operation {
        let mut next = op.clone();
        change(&mut next);
        if !matches!(self.store.swap_operation(&op, &next).await, Ok(true)) {
            tracing::warn!(op = %op.id, "hold progress not stored");
        }
        next
    }

    async fn show_op(&self, op: &Operation) {
        let Some((channel, ts)) = &op.message else {
            return;
        };
        let at = MessageRef {
            channel: channel.clone(),
            ts: ts.clone(),
        };
        if let Err(e) = self.chat.update(&at, Outgoing::Operation(op)).await {
            tracing::warn!(error = %e, "cannot update hold progress");
        }
    }

    /// Holds one CronJob as it is now (the preview may be minutes old):
    /// returns its outcome, the Jobs terminated, and whether it was
    /// suspended before.
    async fn hold_one(&self, op: &Operation, index: usize) -> (Outcome, Vec<String>, bool) {
        let item = &op.items[index];
        let now = match self.cluster.cronjob(&item.namespace, &item.name).await {
            Ok(Some(cj)) => cj,
            Ok(None) => return (Outcome::Gone, Vec::new(), item.suspended_before),
            Err(e) => {
                return (
                    Outcome::Failed(e.to_string()),
                    Vec::new(),
                    item.suspended_before,
                );
            }
        };
        match now.hold_id.as_deref() {
            Some(id) if id != op.id => {
                return (
                    Outcome::Failed(format!("held meanwhile by `{id}`; left to that hold")),
                    Vec::new(),
                    item.suspended_before,
                );
            }
            // Ours already (an earlier attempt before a restart): keep what it recorded.
            Some(_) => {}
            None => {}
        }
        let suspended_before = match (&now.hold_id, now.suspended_before_hold) {
            (Some(_), Some(before)) => before,
            _ => now.suspended,
        };
        let (outcome, terminated) = self.hold_now(op, index, suspended_before).await;
        (outcome, terminated, suspended_before)
    }

    async fn hold_now(
        &self,
        op: &Operation,
        index: usize,
        suspended_before: bool,
    ) -> (Outcome, Vec<String>) {
        let item = &op.items[index];
        let patch = hold::hold_patch(&op.id, &op.by, op.at, suspended_before);
        match self
            .patch_with_retry(&item.namespace, &item.name, &patch)
            .await
        {
            Ok(true) => {}
            Ok(false) => return (Outcome::Gone, Vec::new()),
            Err(why) => return (Outcome::Failed(why), Vec::new()),
        }
        let mut terminated = Vec::new();
        for job in &item.running {
            if !self.leads() {
                return (
                    Outcome::Failed(
                        "held; this replica stopped leading before terminating its Jobs".into(),
                    ),
                    terminated,
                );
            }
            match self.cluster.delete_job(&item.namespace, job).await {
                Ok(()) => terminated.push(job.clone()),
                Err(e) => {
                    tracing::warn!(error = %e, job = %job, "cannot terminate a running Job");
                    return (
                        Outcome::Failed(format!(
                            "held, but Job `{job}` could not be terminated: {e}"
                        )),
                        terminated,
                    );
                }
            }
        }
        (Outcome::Held, terminated)
    }

    async fn resume_one(&self, op: &Operation, index: usize) -> (Outcome, Vec<String>) {
        let item = &op.items[index];
        let now = match self.cluster.cronjob(&item.namespace, &item.name).await {
            Ok(Some(cj)) => cj,
            Ok(None) => return (Outcome::Gone, Vec::new()),
            Err(e) => return (Outcome::Failed(e.to_string()), Vec::new()),
        };
        let Some(hold_id) = now.hold_id.as_deref() else {
            // Only a resume removes the hold's annotations: this one is done
            // already (an earlier attempt, before a restart).
            let outcome = if item.suspended_before {
                Outcome::LeftSuspended
            } else {
                Outcome::Resumed
            };
            return (outcome, Vec::new());
        };
        // What the hold terminated, for the summary's Rerun buttons.
        let terminated = match self.store.operation(hold_id).await {
            Ok(Some(held)) => held
                .items
                .into_iter()
                .find(|i| i.namespace == item.namespace && i.name == item.name)
                .map(|i| i.terminated)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let outcome = hold::resume_outcome(item, now.suspended);
        let patch = hold::resume_patch(&outcome);
        let outcome = match self
            .patch_with_retry(&item.namespace, &item.name, &patch)
            .await
        {
            Ok(true) => outcome,
            Ok(false) => Outcome::Gone,
            Err(why) => Outcome::Failed(why),
        };
        (outcome, terminated)
    }

    async fn patch_with_retry(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<bool, String> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if !self.leads() {
                return Err("this replica no longer leads; the new leader finishes it".into());
            }
            match self.cluster.patch_cronjob(namespace, name, patch).await {
                Ok(found) => return Ok(found),
                Err(e) if attempt < PATCH_ATTEMPTS => {
                    tracing::warn!(error = %e, cronjob = %format!("{namespace}/{name}"), attempt, "patch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// A resume of `all` or of the global hold's id ends the global hold
    /// before it unsuspends anything, so the two never fight.
    async fn end_global_hold(&self, resume: &Operation) {
        let ops = self.store.operations().await.unwrap_or_default();
        let Some(global) = hold::global_hold(&ops) else {
            return;
        };
        if resume.target != "all" && resume.target != global.id {
            return;
        }
        let mut current = global.clone();
        loop {
            let mut ended = current.clone();
            ended.ended = true;
            match self.store.swap_operation(&current, &ended).await {
                Ok(true) => return,
                // Changed meanwhile (a CronJob joined it): read again and retry.
                Ok(false) => match self.store.operation(&current.id).await {
                    Ok(Some(op)) => current = op,
                    _ => return,
                },
                Err(e) => {
                    tracing::error!(error = %e, "cannot end the global hold");
                    return;
                }
            }
        }
    }

    /// The CronJob watch saw `cj` change: while `all` is held, a CronJob that
    /// appears or is unsuspended by someone else is held too.
    pub(crate) async fn enforce_global_hold(self: &Arc<Self>, cj: &CronJobSnapshot) {
        if cj.suspended {
            return;
        }
        let ops = match self.store.operations().await {
            Ok(ops) => ops,
            Err(_) => return,
        };
        let Some(global) = hold::global_hold(&ops) else {
            return;
        };
        let Some(action) = hold::enforce(global, cj) else {
            return;
        };
        let key = format!("hold:{}", cj.key());
        if !self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .insert(key.clone())
        {
            return;
        }
        let (this, global, cj) = (self.clone(), global.clone(), cj.clone());
        self.spawn(async move {
            this.hold_late(global, cj, action).await;
            this.in_flight.lock().expect("in-flight lock").remove(&key);
        });
    }

    async fn hold_late(&self, global: Operation, cj: CronJobSnapshot, action: hold::Enforce) {
        // A resume may have ended the hold since the event: check again, last thing.
        let ops = self.store.operations().await.unwrap_or_default();
        if hold::global_hold(&ops).map(|g| &g.id) != Some(&global.id) {
            return;
        }
        let patch = match action {
            hold::Enforce::Hold => hold::hold_patch(&global.id, &global.by, Utc::now(), false),
            // Re-record the hold too, so `/resume` always finds what it must undo.
            hold::Enforce::Resuspend => hold::hold_patch(&global.id, &global.by, Utc::now(), false),
        };
        let why = match action {
            hold::Enforce::Hold => "appeared (or was released) during the global hold",
            hold::Enforce::Resuspend => "was unsuspended by someone during the global hold",
        };
        let text = match self.patch_with_retry(&cj.namespace, &cj.name, &patch).await {
            Ok(true) => format!(
                "🛑 CronJob `{}` {why} `{}`; rerun-bot suspended it. `/resume {}` releases it with the rest.",
                cj.key(),
                global.id,
                global.id
            ),
            Ok(false) => return,
            Err(e) => format!(
                "⚠️ CronJob `{}` {why} `{}`, and rerun-bot could not suspend it: {e}",
                cj.key(),
                global.id
            ),
        };
        if action == hold::Enforce::Hold {
            let mut current = global.clone();
            for _ in 0..5 {
                let mut next = current.clone();
                next.items.push(hold::Item {
                    namespace: cj.namespace.clone(),
                    name: cj.name.clone(),
                    suspended_before: false,
                    terminate: false,
                    running: Vec::new(),
                    terminated: Vec::new(),
                    outcome: Outcome::Held,
                });
                match self.store.swap_operation(&current, &next).await {
                    Ok(true) => break,
                    _ => match self.store.operation(&global.id).await {
                        Ok(Some(op)) => current = op,
                        _ => break,
                    },
                }
            }
        }
        self.audit_event(
            BOT_ACTOR,
            "hold.extended",
            cj.key(),
            serde_json::json!({"operation": global.id, "why": why}),
        )
        .await;
        tracing::info!(cronjob = %cj.key(), hold = %global.id, why, "global hold enforced");
        if let Err(e) = self
            .chat
            .post(&global.channel, None, Outgoing::Notice(&text))
            .await
        {
            tracing::warn!(error = %e, "cannot tell the channel about a held CronJob");
        }
    }

    /// `--until`: reminds the channel before a hold ends, then resumes it.
    pub(crate) async fn run_hold_timers(self: Arc<Self>) {
        loop {
            tokio::time::sleep(HOLD_TIMER_TICK).await;
            let now = Utc::now();
            for op in self.store.operations().await.unwrap_or_default() {
                match hold::timer(&op, now) {
                    Some(hold::Timer::Remind) => {
                        let mut next = op.clone();
                        next.reminded = true;
                        if !matches!(self.store.swap_operation(&op, &next).await, Ok(true)) {
                            continue;
                        }
                        let text = format!(
                            "⏰ Hold `{}` ({}) resumes by itself at {} UTC. `/resume {}` ends it now; a new `/hold` keeps CronJobs held.",
                            op.id,
                            op.target,
                            op.resume_at.unwrap_or(now).format("%H:%M:%S"),
                            op.id
                        );
                        self.tell(&op, &text).await;
                    }
                    Some(hold::Timer::Resume) => self.auto_resume(op).await,
                    None => {}
                }
            }
        }
    }

    /// A thread reply under the operation's message (or a channel message).
    async fn tell(&self, op: &Operation, text: &str) {
        let (channel, thread) = match &op.message {
            Some((channel, ts)) => (channel.as_str(), Some(ts.as_str())),
            None => (op.channel.as_str(), None),
        };
        if let Err(e) = self
            .chat
            .post(channel, thread, Outgoing::Notice(text))
            .await
        {
            tracing::warn!(error = %e, "cannot post about a hold");
        }
    }

    /// The `--until` time has come: resume exactly what the hold holds.
    async fn auto_resume(self: &Arc<Self>, held: Operation) {
        let mut next = held.clone();
        next.resume_at = None; // exactly once
        if !matches!(self.store.swap_operation(&held, &next).await, Ok(true)) {
            return;
        }
        let current = match self.cluster.list_cronjobs().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, hold = %held.id, "cannot list CronJobs for an automatic resume");
                self.tell(&held, &format!("⚠️ Hold `{}` should have resumed now, but the CronJobs could not be listed ({e}). Use `/resume {}`.", held.id, held.id)).await;
                return;
            }
        };
        let refs: Vec<&CronJobSnapshot> = current.iter().collect();
        let resume = Operation {
            id: format!("resume-{}", id_from(super::rerun::new_id())),
            kind: Kind::Resume,
            target: held.id.clone(),
            reason: Some(format!("`--until` of hold `{}`", held.id)),
            by: held.by.clone(),
            at: Utc::now(),
            channel: held.channel.clone(),
            phase: Phase::Applying,
            items: hold::plan_resume(&refs, Some(&held.id)),
            message: None,
            ended: false,
            until_secs: None,
            resume_at: None,
            reminded: false,
        };
        if self.store.insert_operation(&resume).await.is_err() {
            return;
        }
        self.audit_op(
            BOT_ACTOR,
            "resume.automatic",
            &resume,
            serde_json::json!({"hold": held.id}),
        )
        .await;
        self.apply(resume).await;
    }

    /// `/hold status`: what is held, by whom, since when, why.
    pub(crate) async fn hold_status(&self) -> Reply {
        let mut by_hold: HashMap<String, Vec<String>> = HashMap::new();
        for cj in self.all_cronjobs() {
            if let Some(id) = cj.hold_id.clone() {
                by_hold.entry(id).or_default().push(cj.key());
            }
        }
        if by_hold.is_empty() {
            return Reply::Ephemeral("Nothing is on a rerun-bot hold.".into());
        }
        let mut ids: Vec<_> = by_hold.keys().cloned().collect();
        ids.sort();
        let mut lines: Vec<String> = Vec::new();
        for id in &ids {
            lines.push({
                let mut cronjobs = by_hold[id].clone();
                cronjobs.sort();
                let who = match self.store.operation(id).await {
                    Ok(Some(op)) => format!(
                        " — `{}` by <@{}> since {}{}",
                        op.target,
                        op.by,
                        op.at.format("%Y-%m-%d %H:%M UTC"),
                        op.reason.map(|r| format!(": {r}")).unwrap_or_default()
                    ),
                    _ => String::new(),
                };
                let shown: Vec<String> =
                    cronjobs.iter().take(20).map(|c| format!("`{c}`")).collect();
                let more = cronjobs.len().saturating_sub(20);
                format!(
                    "• hold `{id}`{who}: {} CronJob{} — {}{}",
                    cronjobs.len(),
                    if cronjobs.len() == 1 { "" } else { "s" },
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                )
            });
        }
        Reply::Ephemeral(format!(
            "{}\nResume with `/resume <hold-id>`.",
            lines.join("\n")
        ))
    }

    /// After a restart: holds and resumes left half-applied are finished.
    pub(crate) async fn recover_operations(self: Arc<Self>) {
        for op in self.store.operations().await.unwrap_or_default() {
            if op.phase == Phase::Applying {
                self.apply_once(op).await;
            }
        }
    }
}
