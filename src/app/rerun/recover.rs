//! Time and restarts: expiry, recovery of approved requests, history.

use super::*;

impl App {
    // ----- time and restarts ------------------------------------------------

    pub(super) async fn expire(&self, id: &str) {
        let Ok((before, next)) = self.advance(id, &Event::Expire, Utc::now()).await else {
            return;
        };
        self.audit(
            BOT_ACTOR,
            &format!("{}.expired", next.noun()),
            &next,
            serde_json::json!({"from": before.state.as_str(), "to": next.state.as_str()}),
        )
        .await;
        tracing::info!(request = %id, what = next.noun(), "request expired");
        self.update_card(&next).await;
        self.set_alert_status(
            &next,
            format!("⌛ {} request expired without approval.", title(&next)),
        )
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
            self.expire_batches(now).await;
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
            if req.stop.is_some() {
                tracing::info!(request = %req.id, "approved stop not done yet; stopping the Job");
                self.stop_job(req).await;
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
