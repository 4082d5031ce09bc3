//! Time and restarts: `--until` reminders and resumes, `/hold status`, and
//! operations a restart left applying.

use super::*;

impl App {
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
    pub(super) async fn tell(&self, op: &Operation, text: &str) {
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
    pub(super) async fn auto_resume(self: &Arc<Self>, held: Operation) {
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
            id: format!("resume-{}", id_from(crate::app::rerun::new_id())),
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
