//! Applying a confirmed operation: one merge patch per CronJob (and, where
//! the owner asked for it, its running Jobs deleted), progress stored and shown.

use super::*;

impl App {
    /// Applies `op` unless this replica does not lead or already applies it;
    /// the leader's recovery finishes what a follower confirmed.
    pub(super) async fn apply_once(self: &Arc<Self>, op: Operation) {
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
    pub(super) async fn save_op(
        &self,
        op: Operation,
        change: impl FnOnce(&mut Operation),
    ) -> Operation {
        let mut next = op.clone();
        change(&mut next);
        if !matches!(self.store.swap_operation(&op, &next).await, Ok(true)) {
            tracing::warn!(op = %op.id, "hold progress not stored");
        }
        next
    }

    pub(super) async fn show_op(&self, op: &Operation) {
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
    pub(super) async fn hold_one(
        &self,
        op: &Operation,
        index: usize,
    ) -> (Outcome, Vec<String>, bool) {
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

    pub(super) async fn hold_now(
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

    pub(super) async fn resume_one(&self, op: &Operation, index: usize) -> (Outcome, Vec<String>) {
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

    pub(super) async fn patch_with_retry(
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
}
