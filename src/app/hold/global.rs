//! The global hold (`/hold all`): CronJobs created or changed while it lasts
//! are held late, and a resume of it ends it first.

use super::*;

impl App {
    /// A resume of `all` or of the global hold's id ends the global hold
    /// before it unsuspends anything, so the two never fight.
    pub(super) async fn end_global_hold(&self, resume: &Operation) {
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

    pub(super) async fn hold_late(
        &self,
        global: Operation,
        cj: CronJobSnapshot,
        action: hold::Enforce,
    ) {
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
}
