//! Acting on an approved request: creating its Job exactly once, reporting how it went.

use super::*;

impl App {
    // ----- acting -----------------------------------------------------------

    /// Creates the Job of an approved request (also after a restart).
    pub(super) async fn create_rerun_job(&self, req: RerunRequest) {
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
    pub(super) async fn create_with_retry(
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

    pub(super) async fn abort(&self, req: &RerunRequest, why: String) {
        let Ok((before, next)) = self
            .advance(&req.id, &Event::Abort { why: why.clone() }, Utc::now())
            .await
        else {
            return;
        };
        self.audit(
            BOT_ACTOR,
            &format!("{}.aborted", next.noun()),
            &next,
            serde_json::json!({"from": before.state.as_str(), "to": next.state.as_str(), "why": why}),
        ).await;
        let _ = self.store.flush().await;
        tracing::warn!(request = %next.id, %why, what = next.noun(), "approved request not carried out");
        let (thread, status) = match next.stop {
            Some(_) => (
                format!("⚠️ The approved stop was not done: {why}."),
                format!("⚠️ Not stopped: {why}."),
            ),
            None => (
                format!("⚠️ The approved rerun was not run: {why}."),
                format!("⚠️ Rerun not run: {why}."),
            ),
        };
        self.notify(&next, &thread).await;
        self.update_card(&next).await;
        self.set_alert_status(&next, status).await;
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

    pub(super) async fn finish(&self, req: RerunRequest, job: JobSnapshot) {
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
        // The rerun's success ends the CronJob's incident (after its own report).
        if let Some(run) = crate::core::incident::Run::of(&job).filter(|r| r.succeeded) {
            self.close_incidents(&job.namespace, &next.cronjob, &run)
                .await;
        }
    }

    // ----- telling ----------------------------------------------------------

    pub(super) async fn notify(&self, req: &RerunRequest, text: &str) {
        if req.batch.is_some() {
            return; // a batch tells it per CronJob, in its own words (`batch`)
        }
        if let Err(e) = self
            .chat
            .post(&req.channel, req.thread(), Outgoing::Notice(text))
            .await
        {
            tracing::warn!(error = %e, request = %req.id, "cannot post rerun progress");
        }
    }

    pub(super) async fn update_card(&self, req: &RerunRequest) {
        if req.batch.is_some() {
            return self.batch_child_changed(req).await; // its card is the batch's
        }
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
    pub(super) async fn set_alert_status(&self, req: &RerunRequest, status: String) {
        let Some(uid) = &req.alert else { return };
        for platform in Platform::ALL {
            let key = alert_key(platform, uid);
            let Ok(Some(record)) = self.store.alert(&key).await else {
                continue;
            };
            // Under the thread's lock, as the post and the details are, so
            // no write of one overwrites the other's.
            let lock = self.thread_lock(&crate::app::alerts::record_thread_key(&record));
            let _serialized = lock.lock().await;
            let Ok(Some(mut record)) = self.store.alert(&key).await else {
                continue;
            };
            record.status = Some(status.clone());
            if let Err(e) = self.store.put_alert(&key, &record).await {
                tracing::warn!(error = %e, "cannot store the alert status");
            }
            let Some((at, story, false)) = self.posted_alert(&record).await else {
                continue;
            };
            let message = Outgoing::Alert {
                alert: &record.alert,
                story: &story,
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
    pub(super) async fn alert_copy(&self, uid: &str, here: Platform) -> Option<AlertRecord> {
        for p in std::iter::once(here).chain(Platform::ALL) {
            if let Ok(Some(record)) = self.store.alert(&alert_key(p, uid)).await {
                return Some(record);
            }
        }
        None
    }
}
