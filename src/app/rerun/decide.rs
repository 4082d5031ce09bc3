//! Deciding: approve, deny and cancel on the card, with the four-eyes checks.

use super::*;

impl App {
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
        // A stop deletes a running Job: template, hold and concurrency do not
        // matter to it (`stop_job` finds out whether it still runs).
        if let Event::Approve { hold_override, .. } = &event
            && req.stop.is_none()
            && let Err(reply) = self.check_approval(&click.user, &req, *hold_override).await
        {
            return reply;
        }
        let (before, next) = match self.advance(&req.id, &event, now).await {
            Ok(pair) => pair,
            Err(refusal) => return self.refuse(&click.user, &req, &event, refusal).await,
        };
        let action = match next.state {
            State::Approved => "approved",
            State::Denied => "denied",
            _ => "cancelled",
        };
        self.audit(
            &click.user,
            &format!("{}.{action}", next.noun()),
            &next,
            serde_json::json!({"from": before.state.as_str(), "to": next.state.as_str()}),
        )
        .await;
        // Approval is final: durable before anything is created.
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %e, "cannot flush the store");
        }
        tracing::info!(request = %next.id, state = next.state.as_str(), by = %click.user, what = next.noun(), "request decided");
        self.update_card(&next).await;
        let what = title(&next);
        match next.state {
            State::Approved => {
                let doing = match &next.stop {
                    Some(stop) => format!("stopping `{}`", stop.job),
                    None => "creating the Job".to_string(),
                };
                self.set_alert_status(
                    &next,
                    format!("✅ {what} approved by <@{}>; {doing}…", click.user),
                )
                .await;
                let this = self.clone();
                // The leader acts: here at once, or its recovery within seconds.
                self.spawn(async move {
                    if this.leads()
                        && let Some(_claim) = this.claim(format!("req:{}", next.id))
                    {
                        if next.stop.is_some() {
                            this.stop_job(next).await;
                        } else {
                            this.create_rerun_job(next).await;
                        }
                    }
                });
            }
            State::Denied => {
                self.set_alert_status(&next, format!("🚫 {what} denied by <@{}>.", click.user))
                    .await;
            }
            _ => {
                self.set_alert_status(&next, format!("{what} request cancelled."))
                    .await;
            }
        }
        Reply::Ack
    }

    pub(super) async fn refuse(
        &self,
        user: &str,
        req: &RerunRequest,
        event: &Event,
        refusal: Refusal,
    ) -> Reply {
        let action = event.verb();
        self.audit(
            user,
            &format!("{}.refused", req.noun()),
            req,
            serde_json::json!({"action": action, "why": refusal.to_string()}),
        )
        .await;
        let text = self.refusal_text(&refusal);
        if let Refusal::Expired { .. } = refusal
            && req.state == State::Pending
        {
            self.expire(&req.id).await;
        }
        Reply::Ephemeral(text)
    }

    /// A refusal in words for the clicker; who may approve, when that was it.
    pub(super) fn refusal_text(&self, refusal: &Refusal) -> String {
        match refusal {
            Refusal::NotAllowed { .. } => format!(
                "{refusal} Approvers: {}.",
                self.reruns.policy.approvers.describe()
            ),
            _ => refusal.to_string(),
        }
    }

    /// Whether an approval may go ahead: the cluster's facts against the
    /// core's blockers. A hold met here is offered as *Approve during hold*.
    pub(super) async fn check_approval(
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
    pub(super) async fn advance(
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
}
