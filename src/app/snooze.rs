//! Snoozing a CronJob's alerts: `/snooze`, `/snooze list`, `/unsnooze`, and the
//! alert's *Snooze…* control (1 h, 4 h, 24 h, until it recovers).
//!
//! One snooze per CronJob (`namespace/cronjob`), on every platform, kept as a
//! [`RecordKind::Snooze`] record (sled tree `record.snooze`; a `BotRecord`
//! with `RERUN_BOT_STORE=kubernetes`). Who may snooze: approvers
//! (`RERUN_BOT_APPROVERS`; empty: anyone). The rules are in
//! [`crate::core::snooze`]; every change is audited (`snooze.set`,
//! `snooze.cleared`, `snooze.ended`, `snooze.refused`).
//!
//! For the alert path: [`App::active_snooze`] (is this CronJob silenced?),
//! [`App::count_suppressed`] (one more failure not posted),
//! [`App::end_snooze_on_recovery`] (a Job of it succeeded), and the hook
//! [`App::snooze_ended`] that the timer ([`App::run_snooze_timers`]) and the
//! recovery call when a snooze ends.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{App, BOT_ACTOR};
use crate::chat::{ButtonClick, Platform, Reply, SlashCommand};
use crate::core::command::SnoozeCommand;
use crate::core::snooze::{self, Decision, Length, Snooze};
use crate::store::{RecordKind, StoreError};

/// How often the timer looks for snoozes whose time ran out.
const SNOOZE_TICK: Duration = Duration::from_secs(1);

/// When, in the neutral text of replies (chat renders no time tokens there).
fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// How long a snooze lasts, in words: "until 2024-05-01 14:00 UTC" / "until it recovers".
fn lasts(s: &Snooze) -> String {
    match s.until {
        Some(t) => format!("until {}", when(t)),
        None => "until it recovers (a Job of it succeeds)".into(),
    }
}

fn decode(key: &str, raw: serde_json::Value) -> Result<Snooze, StoreError> {
    serde_json::from_value(raw).map_err(|e| StoreError::Corrupt {
        tree: RecordKind::Snooze.name(),
        why: format!("{key}: {e}"),
    })
}

/// What [`App::count_suppressed`] found.
pub(crate) enum Suppression {
    /// A snooze is in force: the failure is counted in it (the snooze as it is now).
    Counted(Snooze),
    /// No snooze in force at that time.
    NotSnoozed,
    /// The snooze was unreadable, or in force but its count kept losing races.
    Unknown,
}

impl App {
    // ----- for the alert path -------------------------------------------------

    /// The CronJob's snooze in force at `now`, if any: its failures are to be
    /// recorded (and counted in the incident) but posted nowhere.
    pub async fn active_snooze(
        &self,
        namespace: &str,
        cronjob: &str,
        now: DateTime<Utc>,
    ) -> Option<Snooze> {
        match self.snooze(&snooze::key(namespace, cronjob)).await {
            Ok(Some((s, _))) if s.is_active(now) => Some(s),
            Ok(_) => None,
            Err(e) => {
                // Unreadable: alert as if not snoozed (a lost alert is worse).
                tracing::warn!(error = %e, namespace, cronjob, "cannot read the snooze");
                None
            }
        }
    }

    /// Counts one failure the CronJob's snooze kept from being posted.
    pub(crate) async fn count_suppressed(
        &self,
        namespace: &str,
        cronjob: &str,
        now: DateTime<Utc>,
    ) -> Suppression {
        let key = snooze::key(namespace, cronjob);
        for _ in 0..5 {
            let (current, raw) = match self.snooze(&key).await {
                Ok(Some(found)) => found,
                Ok(None) => return Suppression::NotSnoozed,
                Err(_) => return Suppression::Unknown,
            };
            if !current.is_active(now) {
                return Suppression::NotSnoozed;
            }
            let mut next = current.clone();
            next.suppressed = next.suppressed.saturating_add(1);
            if let Ok(true) = self.swap_snooze(&key, Some(&raw), &next).await {
                return Suppression::Counted(next);
            }
        }
        Suppression::Unknown
    }

    /// A Job of the CronJob succeeded: ends its until-recovered snooze (a
    /// snooze for a time runs its time), audits `snooze.ended` and calls
    /// [`App::snooze_ended`]. Returns the snooze it ended.
    pub async fn end_snooze_on_recovery(&self, namespace: &str, cronjob: &str) -> Option<Snooze> {
        let key = snooze::key(namespace, cronjob);
        let (s, raw) = self.snooze(&key).await.ok().flatten()?;
        if s.until.is_some() {
            return None;
        }
        self.end_snooze(s, raw, "recovered").await
    }

    /// Called once whenever a snooze ends by itself (its time ran out, or the
    /// CronJob recovered), after it is deleted and audited: the open
    /// incident's thread gets one summary line (`App::tell_snooze_ended`).
    pub async fn snooze_ended(&self, snooze: &Snooze) {
        tracing::info!(
            cronjob = %snooze.key(),
            suppressed = snooze.suppressed,
            "snooze ended"
        );
        self.tell_snooze_ended(snooze).await;
    }

    /// The leader's timer: ends the snoozes whose time ran out, every second.
    pub(crate) async fn run_snooze_timers(self: Arc<Self>) {
        loop {
            tokio::time::sleep(SNOOZE_TICK).await;
            if self.leads() {
                self.end_expired_snoozes(Utc::now()).await;
            }
        }
    }

    /// Ends (deletes, audits `snooze.ended`, calls [`App::snooze_ended`])
    /// every snooze whose time ran out at `now`; returns how many.
    pub async fn end_expired_snoozes(&self, now: DateTime<Utc>) -> usize {
        let all = match self.store.records(RecordKind::Snooze).await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list snoozes");
                return 0;
            }
        };
        let mut ended = 0;
        for (key, raw) in all {
            let Ok(s) = decode(&key, raw.clone()) else {
                continue;
            };
            if !s.is_active(now) && self.end_snooze(s, raw, "expired").await.is_some() {
                ended += 1;
            }
        }
        ended
    }

    // ----- people -------------------------------------------------------------

    /// The alert's *Snooze…* control: `value` is `<choice>/<alert key>`.
    pub(crate) async fn on_snooze_button(&self, click: &ButtonClick) -> Reply {
        let Some((choice, uid)) = click.value.as_deref().and_then(|v| v.split_once('/')) else {
            return Reply::Ephemeral("This snooze control names no alert.".into());
        };
        let length = match snooze::parse_length(choice) {
            Ok(l) => l,
            Err(e) => return Reply::Ephemeral(format!("{e}. Nothing was changed.")),
        };
        let on_alert = ButtonClick {
            value: Some(uid.to_string()),
            ..click.clone()
        };
        let Some(record) = self.clicked_alert(&on_alert).await else {
            return Reply::Ephemeral("This alert is no longer known to rerun-bot.".into());
        };
        let (namespace, cronjob) = (record.alert.namespace, record.alert.cronjob);
        if self.find_cronjob(&cronjob, Some(&namespace)).is_err() {
            return Reply::Ephemeral(format!(
                "CronJob `{namespace}/{cronjob}` no longer exists; nothing to snooze."
            ));
        }
        self.set_snooze(&click.user, &namespace, &cronjob, length, None)
            .await
    }

    /// `/snooze <cronjob> [-n ns] <duration>|until-recovered [--reason …]`
    pub(crate) async fn on_snooze_command(&self, cmd: &SlashCommand, s: SnoozeCommand) -> Reply {
        let cj = match self.find_cronjob(&s.cronjob, s.namespace.as_deref()) {
            Ok(cj) => cj,
            Err(text) => return Reply::Ephemeral(format!("{text} Nothing was snoozed.")),
        };
        self.set_snooze(&cmd.user, &cj.namespace, &cj.name, s.length, s.reason)
            .await
    }

    /// `/unsnooze <cronjob> [-n ns]`: ends a snooze now (approvers).
    pub(crate) async fn on_unsnooze_command(
        &self,
        cmd: &SlashCommand,
        cronjob: &str,
        namespace: Option<&str>,
    ) -> Reply {
        let key = match self.find_cronjob(cronjob, namespace) {
            Ok(cj) => snooze::key(&cj.namespace, &cj.name),
            // A deleted CronJob's snooze can still be ended.
            Err(text) => match self.snoozes_named(cronjob, namespace).await.as_slice() {
                [one] => one.key(),
                _ => return Reply::Ephemeral(format!("{text} Nothing was changed.")),
            },
        };
        if let Err(text) = self.may_snooze(&cmd.user, &key, "unsnooze").await {
            return Reply::Ephemeral(text);
        }
        let Some((current, _)) = self.snooze(&key).await.ok().flatten() else {
            return Reply::Ephemeral(format!(
                "`{key}` is not snoozed; nothing was changed. `/snooze list` shows what is."
            ));
        };
        if let Err(e) = self.store.delete_record(RecordKind::Snooze, &key).await {
            tracing::error!(error = %e, "cannot delete a snooze");
            return Reply::Ephemeral(
                "The bot cannot record that right now; the snooze is unchanged. Try again.".into(),
            );
        }
        self.audit_event(
            &cmd.user,
            "snooze.cleared",
            key.clone(),
            serde_json::json!({
                "snoozed_by": current.by,
                "until": current.until,
                "suppressed": current.suppressed,
            }),
        )
        .await;
        Reply::Ephemeral(format!(
            "🔔 `{key}` is no longer snoozed ({} by <@{}>, {} failure{} not posted meanwhile); its next failure is posted.",
            lasts(&current),
            current.by,
            current.suppressed,
            if current.suppressed == 1 { "" } else { "s" }
        ))
    }

    /// `/snooze list`: every snooze in force.
    pub(crate) async fn snooze_list(&self) -> Reply {
        let now = Utc::now();
        let mut all: Vec<Snooze> = match self.store.records(RecordKind::Snooze).await {
            Ok(all) => all
                .into_iter()
                .filter_map(|(k, v)| decode(&k, v).ok())
                .filter(|s| s.is_active(now))
                .collect(),
            Err(e) => {
                return Reply::Ephemeral(format!("Cannot read the snoozes right now ({e})."));
            }
        };
        if all.is_empty() {
            return Reply::Ephemeral(
                "No CronJob is snoozed. `/snooze <cronjob> 4h` snoozes one.".into(),
            );
        }
        all.sort_by_key(|s| s.key());
        let total = all.len();
        let rows: Vec<String> = all
            .iter()
            .take(50)
            .map(|s| {
                format!(
                    "• `{}` {} — by <@{}>{}{}",
                    s.key(),
                    lasts(s),
                    s.by,
                    s.reason
                        .as_deref()
                        .map(|r| format!(": {}", crate::core::text::truncate_chars(r, 200)))
                        .unwrap_or_default(),
                    match s.suppressed {
                        0 => String::new(),
                        1 => " (1 failure not posted)".into(),
                        n => format!(" ({n} failures not posted)"),
                    }
                )
            })
            .collect();
        Reply::Ephemeral(format!(
            "🔕 {total} CronJob{} snoozed:\n{}{}",
            if total == 1 { "" } else { "s" },
            rows.join("\n"),
            if total > 50 {
                format!("\n…and {} more.", total - 50)
            } else {
                String::new()
            }
        ))
    }

    // ----- helpers --------------------------------------------------------------

    /// Records a snooze by `user` (checked against the approvers), or says why not.
    async fn set_snooze(
        &self,
        user: &str,
        namespace: &str,
        cronjob: &str,
        length: Length,
        reason: Option<String>,
    ) -> Reply {
        let key = snooze::key(namespace, cronjob);
        if let Err(text) = self.may_snooze(user, &key, "snooze").await {
            return Reply::Ephemeral(text);
        }
        let now = Utc::now();
        let current = match self.snooze(&key).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot read a snooze");
                return Reply::Ephemeral(
                    "The bot cannot read its snoozes right now; nothing was changed.".into(),
                );
            }
        };
        let decision = snooze::decide(current.as_ref().map(|(s, _)| s), user, now);
        if decision == Decision::Taken {
            let (s, _) = current.expect("taken: a snooze exists");
            return Reply::Ephemeral(format!(
                "`{key}` is already snoozed by <@{}> {}; nothing was changed. `/unsnooze {cronjob} -n {namespace}` ends it, then snooze it again.",
                s.by,
                lasts(&s)
            ));
        }
        let next = Snooze {
            namespace: namespace.to_string(),
            cronjob: cronjob.to_string(),
            by: user.to_string(),
            platform: Platform::of_user(user).name().to_string(),
            at: now,
            until: length.until(now),
            reason: reason.filter(|r| !r.trim().is_empty()),
            // A replaced snooze keeps its count; an expired one's is reported ended.
            suppressed: match (&decision, &current) {
                (Decision::Replace, Some((s, _))) => s.suppressed,
                _ => 0,
            },
        };
        if decision == Decision::New
            && let Some((old, raw)) = current.clone()
        {
            // Ran out, the timer has not seen it yet: end it properly first.
            self.end_snooze(old, raw, "expired").await;
        }
        let expected = match decision {
            Decision::Replace => current.as_ref().map(|(_, raw)| raw),
            _ => None,
        };
        match self.swap_snooze(&key, expected, &next).await {
            Ok(true) => {}
            Ok(false) => {
                return Reply::Ephemeral(format!(
                    "`{key}` was snoozed or unsnoozed by someone else just now; nothing was changed. `/snooze list` shows how it is."
                ));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store a snooze");
                return Reply::Ephemeral(
                    "The bot cannot record the snooze right now; nothing was changed.".into(),
                );
            }
        }
        let length_text = match length {
            Length::For(d) => humantime::format_duration(d).to_string(),
            Length::UntilRecovered => snooze::UNTIL_RECOVERED.to_string(),
        };
        self.audit_event(
            user,
            "snooze.set",
            key.clone(),
            serde_json::json!({
                "length": length_text,
                "until": next.until,
                "reason": next.reason,
                "replaced": decision == Decision::Replace,
            }),
        )
        .await;
        tracing::info!(cronjob = %key, by = user, length = %length_text, "snoozed");
        Reply::Ephemeral(format!(
            "🔕 {} `{key}` {}: its failures are recorded but not posted. `/unsnooze {cronjob} -n {namespace}` ends it sooner.",
            if decision == Decision::Replace {
                "Snooze of"
            } else {
                "Snoozed"
            },
            if decision == Decision::Replace {
                format!("now lasts {}", lasts(&next))
            } else {
                lasts(&next)
            }
        ))
    }

    /// Approvers may snooze (empty list: anyone); a refusal is audited.
    async fn may_snooze(&self, user: &str, key: &str, what: &str) -> Result<(), String> {
        let allow = &self.reruns.policy.approvers;
        if self.may(allow, user).await {
            return Ok(());
        }
        self.audit_event(
            user,
            "snooze.refused",
            key.to_string(),
            serde_json::json!({"action": what, "why": "not on RERUN_BOT_APPROVERS"}),
        )
        .await;
        Err(format!(
            "You are not allowed to {what} alerts (`RERUN_BOT_APPROVERS`: {}). Nothing was changed.",
            allow.describe()
        ))
    }

    /// The stored snooze under `key`, with its raw value (for compare-and-swap).
    async fn snooze(&self, key: &str) -> Result<Option<(Snooze, serde_json::Value)>, StoreError> {
        match self.store.record(RecordKind::Snooze, key).await? {
            Some(raw) => Ok(Some((decode(key, raw.clone())?, raw))),
            None => Ok(None),
        }
    }

    async fn swap_snooze(
        &self,
        key: &str,
        current: Option<&serde_json::Value>,
        next: &Snooze,
    ) -> Result<bool, StoreError> {
        let value = serde_json::to_value(next).expect("a snooze serializes");
        self.store
            .swap_record(RecordKind::Snooze, key, current, &value)
            .await
    }

    /// Snoozes of CronJobs called `name` (in `namespace`), for `/unsnooze` of a deleted one.
    async fn snoozes_named(&self, name: &str, namespace: Option<&str>) -> Vec<Snooze> {
        self.store
            .records(RecordKind::Snooze)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| decode(&k, v).ok())
            .filter(|s| s.cronjob == name && namespace.is_none_or(|ns| s.namespace == ns))
            .collect()
    }

    /// Deletes `s` if it is still stored as `raw`, audits `snooze.ended` and
    /// calls the hook; `None` when someone else ended or changed it first.
    async fn end_snooze(&self, s: Snooze, raw: serde_json::Value, why: &str) -> Option<Snooze> {
        let key = s.key();
        let _once = self.claim(format!("snooze-end/{key}"))?;
        match self.store.record(RecordKind::Snooze, &key).await {
            Ok(Some(now)) if now == raw => {}
            _ => return None,
        }
        if let Err(e) = self.store.delete_record(RecordKind::Snooze, &key).await {
            tracing::warn!(error = %e, cronjob = %key, "cannot end a snooze");
            return None;
        }
        self.audit_event(
            BOT_ACTOR,
            "snooze.ended",
            key,
            serde_json::json!({
                "why": why,
                "snoozed_by": s.by,
                "until": s.until,
                "suppressed": s.suppressed,
            }),
        )
        .await;
        self.snooze_ended(&s).await;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_say_how_long() {
        let mut s = Snooze {
            namespace: "billing".into(),
            cronjob: "sync".into(),
            by: "U_BOB".into(),
            platform: "slack".into(),
            at: "2024-05-01T10:00:00Z".parse().unwrap(),
            until: Some("2024-05-01T14:00:00Z".parse().unwrap()),
            reason: None,
            suppressed: 0,
        };
        assert_eq!(lasts(&s), "until 2024-05-01 14:00 UTC");
        s.until = None;
        assert!(lasts(&s).starts_with("until it recovers"));
    }
}
