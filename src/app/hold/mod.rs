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

mod apply;
mod global;
mod timers;

/// Attempts per CronJob patch before it is reported as failed.
const PATCH_ATTEMPTS: u32 = 3;
/// How often a large operation's progress message is refreshed.
const PROGRESS_EVERY: usize = 50;
/// How often its progress is stored: the whole operation is one record, so
/// every 10 CronJobs wrote a 500-CronJob hold 50 times over (the bench's RSS
/// after holds: 58.7 MiB; every 50: 53–54 MiB). A restart re-applies at most
/// this many CronJobs, and every patch is idempotent.
const SAVE_EVERY: usize = 50;
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
            id: format!("hold-{}", id_from(crate::app::rerun::new_id())),
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
            id: format!("resume-{}", id_from(crate::app::rerun::new_id())),
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
}
