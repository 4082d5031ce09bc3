//! Stopping a run that takes too long: a long-run alert's *Stop this run…*
//! asks with a reason, someone else approves, and the bot deletes exactly
//! that Job (the delete carries its uid as a precondition) with its pods.
//!
//! A stop request is a [`RerunRequest`] with [`StopTarget`] set: it is asked,
//! carded, decided, expired, recovered and audited (`stop.*`) the way a rerun
//! is; only the act differs, and lives here.

use super::*;
use crate::core::alert::AlertKind;
use crate::core::command::StopCommand;
use crate::core::slots::short_duration;

/// How long a Job has run, for the form.
fn running_for(job: &JobSnapshot) -> String {
    match job.started_at {
        Some(at) => format!(
            "Job {} has run for {}.",
            job.name,
            short_duration(Utc::now() - at)
        ),
        None => format!("Job {} has not started a pod yet.", job.name),
    }
}

/// Tries at deleting before the request is left approved for the next start.
const DELETE_ATTEMPTS: u32 = 3;

impl App {
    /// `stop_run` on a long-run alert: the reason form, while the Job runs.
    pub(crate) async fn on_stop_button(&self, click: &ButtonClick) -> Reply {
        let Some(record) = self.clicked_alert(click).await else {
            return Reply::Ephemeral("This alert is no longer known to rerun-bot.".into());
        };
        let alert = &record.alert;
        let AlertKind::Overrun {
            running_for_secs,
            usual_secs,
            ended,
            ..
        } = &alert.kind
        else {
            return Reply::Ephemeral(
                "Only a run that takes too long can be stopped from its alert.".into(),
            );
        };
        if ended.is_some() {
            return Reply::Ephemeral(format!(
                "Job `{}` has ended already; nothing to stop.",
                alert.job
            ));
        }
        if !self.may(&self.reruns.policy.requesters, &click.user).await {
            return Reply::Ephemeral(
                self.refuse_requester(
                    &click.user,
                    format!("{}/{}", alert.namespace, alert.cronjob),
                )
                .await,
            );
        }
        let uid = alert
            .job_uid
            .strip_prefix("overrun/")
            .unwrap_or(&alert.job_uid);
        match self.cluster.job(&alert.namespace, &alert.job).await {
            Ok(Some(job)) if job.uid == uid && job.is_running() => {}
            Ok(Some(job)) if job.uid == uid => {
                return Reply::Ephemeral(format!(
                    "Job `{}` has {} already; nothing to stop.",
                    alert.job,
                    if job.complete.is_some() {
                        "succeeded"
                    } else {
                        "ended"
                    }
                ));
            }
            Ok(_) => {
                return Reply::Ephemeral(format!(
                    "Job `{}` is gone already; nothing to stop.",
                    alert.job
                ));
            }
            Err(e) => {
                return Reply::Ephemeral(format!(
                    "Cannot read Job `{}` right now ({e}); nothing was requested. Try again.",
                    alert.job
                ));
            }
        }
        let Some(cj) = self.find_by_name(&alert.namespace, &alert.cronjob).await else {
            return Reply::Ephemeral(format!(
                "CronJob `{}/{}` no longer exists; delete its Job with `kubectl delete job {} -n {}`.",
                alert.namespace, alert.cronjob, alert.job, alert.namespace
            ));
        };
        let (channel, thread_ts) = ask::card_place(click, &record);
        let target = FormTarget {
            namespace: alert.namespace.clone(),
            cronjob: alert.cronjob.clone(),
            alert: Some(alert.job_uid.clone()),
            channel,
            thread_ts,
            failed_since: None,
            stop: Some(StopTarget {
                job: alert.job.clone(),
                uid: uid.to_string(),
            }),
        };
        let usual = usual_secs
            .map(|u| {
                format!(
                    " (usually {})",
                    short_duration(chrono::Duration::seconds(u))
                )
            })
            .unwrap_or_default();
        let context = vec![
            format!(
                "Job {} had run for {}{usual} when it was alerted.",
                alert.job,
                short_duration(chrono::Duration::seconds(*running_for_secs))
            ),
            "Approving deletes the Job and its pods; the CronJob's next run starts as usual."
                .to_string(),
        ];
        self.open_form(
            &click.trigger_id,
            FormKind::StopReason,
            &cj,
            target,
            context,
            FormValues::default(),
        )
        .await
    }

    /// `/stop <job> [-n ns] --reason … [--ticket T]`: the same request as the
    /// alert's button, for a running Job of a watched CronJob.
    pub(crate) async fn on_stop_command(&self, cmd: &SlashCommand, stop: StopCommand) -> Reply {
        if !self.may(&self.reruns.policy.requesters, &cmd.user).await {
            let subject = match &stop.namespace {
                Some(ns) => format!("{ns}/{}", stop.job),
                None => stop.job.clone(),
            };
            return Reply::Ephemeral(self.refuse_requester(&cmd.user, subject).await);
        }
        let job = match self
            .find_running_job(&stop.job, stop.namespace.as_deref())
            .await
        {
            Ok(job) => job,
            Err(text) => return Reply::Ephemeral(text),
        };
        let Some(cj) = job
            .cronjob
            .as_deref()
            .and_then(|c| self.cached_cronjob(&job.namespace, c))
        else {
            return Reply::Ephemeral(format!(
                "Job `{}/{}` is not a Job of a CronJob rerun-bot watches; nothing was requested.",
                job.namespace, job.name
            ));
        };
        if let Some(ticket) = stop.ticket.as_deref()
            && let Err(why) = self.reruns.tickets.check(Some(ticket))
        {
            return Reply::Ephemeral(format!("{why}; nothing was requested."));
        }
        let target = FormTarget {
            namespace: cj.namespace.clone(),
            cronjob: cj.name.clone(),
            alert: Some(crate::core::alert::overrun_key(&job.uid)),
            channel: cmd.channel.clone(),
            thread_ts: None,
            failed_since: None,
            stop: Some(StopTarget {
                job: job.name.clone(),
                uid: job.uid.clone(),
            }),
        };
        let missing_ticket = self.reruns.tickets.required && stop.ticket.is_none();
        if stop.reason.is_none() || missing_ticket {
            let prefill = FormValues {
                reason: stop.reason.clone().unwrap_or_default(),
                ticket: stop.ticket.clone().unwrap_or_default(),
                ..FormValues::default()
            };
            let context = vec![running_for(&job)];
            return match self
                .open_form(
                    &cmd.trigger_id,
                    FormKind::StopReason,
                    &cj,
                    target,
                    context,
                    prefill,
                )
                .await
            {
                Reply::Ephemeral(_) => Reply::Ephemeral(reason_required(
                    missing_ticket,
                    crate::core::command::CommandKind::Stop,
                )),
                other => other,
            };
        }
        let ask = Ask {
            user: cmd.user.clone(),
            target,
            overrides: Overrides::default(),
            reason: stop.reason.unwrap_or_default(),
            ticket: stop.ticket,
        };
        match self.ask(ask).await {
            Ok(req) => Reply::Ephemeral(format!(
                "Stop of Job `{}/{}` requested (request `{}`). Someone other than you must approve it on the card.",
                job.namespace, job.name, req.id
            )),
            Err(e) => e.into_reply(false),
        }
    }

    /// The running Job `name`: in `namespace`, else in the namespaces of the
    /// watched CronJobs (the only one of that name).
    async fn find_running_job(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<JobSnapshot, String> {
        let namespaces: Vec<String> = match namespace {
            Some(ns) => vec![ns.to_string()],
            None => {
                let cache = self.cronjobs.read().expect("cronjob cache lock");
                let mut all: Vec<String> = cache.values().map(|c| c.namespace.clone()).collect();
                all.sort();
                all.dedup();
                all
            }
        };
        let mut found = Vec::new();
        for ns in &namespaces {
            match self.cluster.job(ns, name).await {
                Ok(Some(job)) => found.push(job),
                Ok(None) => {}
                Err(e) => {
                    return Err(format!(
                        "Cannot look Job `{name}` up right now ({e}); nothing was requested. Try again."
                    ));
                }
            }
        }
        let where_ = namespace
            .map(|ns| format!(" in namespace `{ns}`"))
            .unwrap_or_default();
        match found.as_slice() {
            [] => Err(format!(
                "No Job `{name}`{where_} in the namespaces rerun-bot watches. Its long-run alert names it; so does `kubectl get jobs -n <namespace>`."
            )),
            [job] if !job.is_running() => Err(format!(
                "Job `{}/{name}` has {} already; nothing to stop.",
                job.namespace,
                if job.complete.is_some() {
                    "succeeded"
                } else {
                    "ended"
                }
            )),
            [job] => Ok(job.clone()),
            many => Err(format!(
                "There are {} Jobs named `{name}`: {}. Add `-n <namespace>`.",
                many.len(),
                many.iter()
                    .map(|j| format!("`{}`", j.key()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Deletes the Job of an approved stop request (also after a restart).
    /// A Job that ended before the delete is not stopped: the request is
    /// aborted and says how it ended.
    pub(super) async fn stop_job(&self, req: RerunRequest) {
        let Some(stop) = req.stop.clone() else {
            return;
        };
        let mut attempt = 0u32;
        let deleted = loop {
            attempt += 1;
            if !self.leads() {
                return; // the leader's recovery finishes it
            }
            let found = match self.cluster.job(&req.namespace, &stop.job).await {
                Ok(found) => found.filter(|j| j.uid == stop.uid),
                Err(e) if attempt < DELETE_ATTEMPTS => {
                    tracing::warn!(error = %e, request = %req.id, attempt, "cannot read the Job to stop; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, request = %req.id, "cannot read the Job to stop; will retry at the next start");
                    return;
                }
            };
            match found {
                Some(job) if !job.is_running() => {
                    let how = if job.complete.is_some() {
                        "succeeded"
                    } else {
                        "failed"
                    };
                    return self
                        .abort(
                            &req,
                            format!("Job `{}` had {how} before it could be stopped", stop.job),
                        )
                        .await;
                }
                None => break false,
                Some(_) => {}
            }
            match self
                .cluster
                .delete_job_exact(&req.namespace, &stop.job, &stop.uid)
                .await
            {
                Ok(deleted) => break deleted,
                Err(e) if attempt < DELETE_ATTEMPTS => {
                    tracing::warn!(error = %e, request = %req.id, attempt, "deleting the Job failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, request = %req.id, "cannot delete the Job");
                    return self
                        .abort(&req, format!("the Job could not be deleted: {e}"))
                        .await;
                }
            }
        };
        // Gone without this delete: stopped by someone or something else, or
        // by this request before a restart.
        let note = (!deleted).then(|| "it was gone already".to_string());
        let now = Utc::now();
        let created = Event::Created {
            job: stop.job.clone(),
        };
        let finished = Event::Finished {
            succeeded: true,
            note: note.clone(),
        };
        let Ok((before, _)) = self.advance(&req.id, &created, now).await else {
            return; // recorded already
        };
        let Ok((_, next)) = self.advance(&req.id, &finished, now).await else {
            return;
        };
        let approved_by = next.approved_by.clone().unwrap_or_default();
        self.audit(
            BOT_ACTOR,
            "stop.done",
            &next,
            serde_json::json!({
                "from": before.state.as_str(),
                "to": next.state.as_str(),
                "job": stop.job,
                "job_uid": stop.uid,
                "deleted": deleted,
                "approved_by": next.approved_by,
            }),
        )
        .await;
        let _ = self.store.flush().await;
        tracing::info!(request = %next.id, job = %stop.job, deleted, "run stopped");
        let said = match &note {
            Some(n) => format!("🛑 Job `{}` stopped ({n}).", stop.job),
            None => format!(
                "🛑 Job `{}` stopped (approved by <@{approved_by}>): it and its pods are being deleted.",
                stop.job
            ),
        };
        self.notify(&next, &said).await;
        self.update_card(&next).await;
        self.set_alert_status(
            &next,
            format!(
                "🛑 Stopped at <@{}>'s request, approved by <@{approved_by}>.",
                next.requested_by
            ),
        )
        .await;
    }
}
