//! Asking for a rerun: the alert's buttons, the forms, `/rerun`, the request and its card.

use super::*;

/// Where the card of a request asked from an alert goes: the alert's
/// channel and thread.
pub(super) fn card_place(click: &ButtonClick, record: &AlertRecord) -> (String, Option<String>) {
    match (&click.message, &record.state) {
        (Some(m), AlertState::Posted { ts, thread_ts, .. }) => (
            m.channel.clone(),
            Some(thread_ts.clone().unwrap_or_else(|| ts.clone())),
        ),
        (Some(m), AlertState::Pending | AlertState::Snoozed) => {
            (m.channel.clone(), Some(m.ts.clone()))
        }
        (None, _) => (record.channel.clone(), None),
    }
}

impl App {
    // ----- asking -----------------------------------------------------------

    /// `rerun` / `rerun_with_changes` on an alert: opens the matching form.
    pub(crate) async fn on_rerun_button(&self, click: &ButtonClick, kind: FormKind) -> Reply {
        let Some(record) = self.clicked_alert(click).await else {
            return Reply::Ephemeral("This alert is no longer known to rerun-bot.".into());
        };
        let alert = &record.alert;
        if !self.may(&self.reruns.policy.requesters, &click.user).await {
            return Reply::Ephemeral(
                self.refuse_requester(
                    &click.user,
                    format!("{}/{}", alert.namespace, alert.cronjob),
                )
                .await,
            );
        }
        let Some(cj) = self.find_by_name(&alert.namespace, &alert.cronjob).await else {
            return Reply::Ephemeral(format!(
                "CronJob `{}/{}` no longer exists; nothing to rerun.",
                alert.namespace, alert.cronjob
            ));
        };
        let (channel, thread_ts) = card_place(click, &record);
        let target = FormTarget {
            namespace: alert.namespace.clone(),
            cronjob: alert.cronjob.clone(),
            alert: Some(alert.job_uid.clone()),
            channel,
            thread_ts,
            failed_since: None,
            stop: None,
        };
        let context = vec![match &alert.kind {
            crate::core::alert::AlertKind::Missed { slot, .. } => format!(
                "The run due {} did not start; this starts one now.",
                slot.format("%Y-%m-%d %H:%M UTC")
            ),
            _ => format!(
                "Failed Job {}: {} ({} failed attempts){}",
                alert.job,
                alert.reason,
                alert.failed_pods,
                alert
                    .exit
                    .as_ref()
                    .map(|e| format!(", exit code {}", e.exit_code))
                    .unwrap_or_default()
            ),
        }];
        self.open_form(
            &click.trigger_id,
            kind,
            &cj,
            target,
            context,
            FormValues::default(),
        )
        .await
    }

    /// `rerun_cronjob` (a resume summary's *Rerun* for a Job the hold
    /// terminated): the reason form for that CronJob; the card goes into the
    /// summary's thread.
    pub(crate) async fn on_rerun_cronjob_button(&self, click: &ButtonClick) -> Reply {
        let Some((namespace, name)) = click.value.as_deref().and_then(|v| v.split_once('/')) else {
            return Reply::Ephemeral("This button names no CronJob.".into());
        };
        if !self.may(&self.reruns.policy.requesters, &click.user).await {
            return Reply::Ephemeral(
                self.refuse_requester(&click.user, format!("{namespace}/{name}"))
                    .await,
            );
        }
        let Some(cj) = self.find_by_name(namespace, name).await else {
            return Reply::Ephemeral(format!(
                "CronJob `{namespace}/{name}` no longer exists; nothing to rerun."
            ));
        };
        let Some(at) = &click.message else {
            return Reply::Ephemeral("This button is not on a message rerun-bot knows.".into());
        };
        let target = FormTarget {
            namespace: cj.namespace.clone(),
            cronjob: cj.name.clone(),
            alert: None,
            channel: at.channel.clone(),
            thread_ts: Some(at.ts.clone()),
            failed_since: None,
            stop: None,
        };
        let context = vec!["Its running Job was terminated by a maintenance hold.".to_string()];
        self.open_form(
            &click.trigger_id,
            FormKind::RerunReason,
            &cj,
            target,
            context,
            FormValues::default(),
        )
        .await
    }

    /// The CronJob from the watch cache, or from the apiserver when the
    /// watch has not delivered it yet (a CronJob created a moment ago).
    pub(super) async fn find_by_name(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<CronJobSnapshot> {
        match self.cached_cronjob(namespace, name) {
            Some(cj) => Some(cj),
            None => self.cluster.cronjob(namespace, name).await.ok().flatten(),
        }
    }

    pub(super) async fn open_form(
        &self,
        trigger_id: &str,
        kind: FormKind,
        cj: &CronJobSnapshot,
        target: FormTarget,
        context: Vec<String>,
        prefill: FormValues,
    ) -> Reply {
        let form = Form {
            kind,
            namespace: cj.namespace.clone(),
            cronjob: cj.name.clone(),
            context,
            containers: cj.containers.clone(),
            prefill,
            require_ticket: self.reruns.tickets.required,
            metadata: serde_json::to_string(&target).expect("form target serializes"),
        };
        match self.chat.open_form(trigger_id, &form).await {
            Ok(()) => Reply::Ack,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the rerun form");
                Reply::Ephemeral(format!(
                    "Could not open the form ({e}). Use `/rerun {} -n {} --reason \"…\"` instead.",
                    cj.name, cj.namespace
                ))
            }
        }
    }

    /// A submitted rerun form.
    pub(crate) async fn on_form(&self, form: FormSubmission) -> Reply {
        let Ok(target) = serde_json::from_str::<FormTarget>(&form.metadata) else {
            return Reply::Ephemeral(
                "This form is from another version of rerun-bot; please start again.".into(),
            );
        };
        if let Some(since) = target.failed_since {
            return self.on_rerun_failed_form(form, &target, since).await;
        }
        if (form.kind == FormKind::StopReason) != target.stop.is_some() {
            return Reply::Ephemeral(
                "This form does not match what it was opened for; please start again.".into(),
            );
        }
        let overrides = match form.kind {
            FormKind::RerunReason | FormKind::StopReason => Overrides::default(),
            FormKind::RerunOverrides => match values_to_overrides(&form.values) {
                Ok(o) => o,
                Err(e) => return e.into_reply(true),
            },
        };
        let ticket = Some(form.values.ticket.trim().to_string()).filter(|t| !t.is_empty());
        let ask = Ask {
            user: form.user,
            target,
            overrides,
            reason: form.values.reason.trim().to_string(),
            ticket,
        };
        match self.ask(ask).await {
            Ok(_) => Reply::Ack,
            Err(e) => e.into_reply(true),
        }
    }

    /// `/rerun <cronjob> …`
    pub(crate) async fn on_rerun_command(&self, cmd: &SlashCommand, rerun: RerunCommand) -> Reply {
        if !self.may(&self.reruns.policy.requesters, &cmd.user).await {
            let subject = match &rerun.namespace {
                Some(ns) => format!("{ns}/{}", rerun.cronjob),
                None => rerun.cronjob.clone(),
            };
            return Reply::Ephemeral(self.refuse_requester(&cmd.user, subject).await);
        }
        let cj = match self.find_cronjob(&rerun.cronjob, rerun.namespace.as_deref()) {
            Ok(cj) => cj,
            Err(text) => return Reply::Ephemeral(text),
        };
        let target = FormTarget {
            namespace: cj.namespace.clone(),
            cronjob: cj.name.clone(),
            alert: None,
            channel: cmd.channel.clone(),
            thread_ts: None,
            failed_since: None,
            stop: None,
        };
        // A ticket given on the command line is checked before anything else.
        if let Some(ticket) = rerun.ticket.as_deref()
            && let Err(why) = self.reruns.tickets.check(Some(ticket))
        {
            return Reply::Ephemeral(format!("{why}; nothing was requested."));
        }
        let missing_ticket = self.reruns.tickets.required && rerun.ticket.is_none();
        if rerun.reason.is_none() || missing_ticket {
            let prefill = overrides_to_values(
                &rerun.overrides,
                rerun.reason.as_deref(),
                rerun.ticket.as_deref(),
            );
            return match self
                .open_form(
                    &cmd.trigger_id,
                    FormKind::RerunOverrides,
                    &cj,
                    target,
                    vec![],
                    prefill,
                )
                .await
            {
                Reply::Ack => Reply::Ack,
                Reply::Ephemeral(_) => Reply::Ephemeral(reason_required(
                    missing_ticket,
                    crate::core::command::CommandKind::Rerun,
                )),
                other => other,
            };
        }
        let ask = Ask {
            user: cmd.user.clone(),
            target,
            overrides: rerun.overrides,
            reason: rerun.reason.unwrap_or_default(),
            ticket: rerun.ticket,
        };
        match self.ask(ask).await {
            Ok(req) => Reply::Ephemeral(format!(
                "Rerun of `{}` requested (request `{}`). Someone other than you must approve it on the card.",
                req.subject(),
                req.id
            )),
            Err(e) => e.into_reply(false),
        }
    }

    /// The CronJob `name` (in `namespace`, or the only one of that name).
    pub(crate) fn find_cronjob(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<CronJobSnapshot, String> {
        let cache = self.cronjobs.read().expect("cronjob cache lock");
        let mut same_name: Vec<&CronJobSnapshot> = cache
            .values()
            .filter(|c| c.name == name && namespace.is_none_or(|ns| c.namespace == ns))
            .collect();
        same_name.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        match same_name.as_slice() {
            [one] => Ok((*one).clone()),
            [] => {
                let mut close: Vec<(usize, String)> = cache
                    .values()
                    .filter(|c| namespace.is_none_or(|ns| c.namespace == ns))
                    .map(|c| (edit_distance(name, &c.name), c.key()))
                    .filter(|(d, key)| *d <= 3 || key.contains(name))
                    .collect();
                close.sort();
                let where_ = namespace
                    .map(|ns| format!(" in namespace `{ns}`"))
                    .unwrap_or_default();
                let hint = if close.is_empty() {
                    " Try `/cronjobs` to list them.".to_string()
                } else {
                    format!(
                        " Did you mean {}?",
                        close
                            .iter()
                            .take(5)
                            .map(|(_, k)| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                Err(format!(
                    "No CronJob `{name}`{where_} is watched by rerun-bot.{hint}"
                ))
            }
            many => Err(format!(
                "There are {} CronJobs named `{name}`: {}. Add `-n <namespace>`.",
                many.len(),
                many.iter()
                    .map(|c| format!("`{}`", c.key()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Checks and records a request and posts its approval card.
    pub(super) async fn ask(&self, ask: Ask) -> Result<RerunRequest, AskError> {
        if !self.may(&self.reruns.policy.requesters, &ask.user).await {
            let subject = format!("{}/{}", ask.target.namespace, ask.target.cronjob);
            return Err(AskError::Message(
                self.refuse_requester(&ask.user, subject).await,
            ));
        }
        if ask.reason.is_empty() {
            return Err(AskError::Field(
                "reason",
                "A reason (root cause) is required.".into(),
            ));
        }
        if ask.reason.chars().count() > REASON_MAX {
            return Err(AskError::Field(
                "reason",
                format!(
                    "Keep the reason under {REASON_MAX} characters; link a ticket for details."
                ),
            ));
        }
        if let Err(why) = self.reruns.tickets.check(ask.ticket.as_deref()) {
            return Err(AskError::Field("ticket", why));
        }
        let t = &ask.target;
        let cj = match self.cluster.cronjob_object(&t.namespace, &t.cronjob).await {
            Ok(Some(cj)) => cj,
            Ok(None) => {
                return Err(AskError::Message(format!(
                    "CronJob `{}/{}` no longer exists; nothing to {}.",
                    t.namespace,
                    t.cronjob,
                    if t.stop.is_some() {
                        "stop from here"
                    } else {
                        "rerun"
                    }
                )));
            }
            Err(e) => {
                return Err(AskError::Message(format!(
                    "Cannot read CronJob `{}/{}` right now ({e}); nothing was requested. Try again.",
                    t.namespace, t.cronjob
                )));
            }
        };
        let Some(spec) = cj.spec.as_ref().and_then(|s| s.job_template.spec.as_ref()) else {
            return Err(AskError::Message("The CronJob has no job template.".into()));
        };
        let diff = overrides::diff(spec, &ask.overrides).map_err(|e| {
            AskError::Field(
                if ask.overrides.container.is_some() {
                    "container"
                } else {
                    "args"
                },
                e.to_string(),
            )
        })?;
        let now = Utc::now();
        let source_job = match t.alert.as_deref() {
            Some(uid) => self
                .alert_copy(uid, Platform::of(&t.channel))
                .await
                .map(|r| r.alert.job)
                .filter(|job| !job.is_empty()),
            None => None,
        };
        let mut req = RerunRequest {
            id: String::new(),
            namespace: t.namespace.clone(),
            cronjob: t.cronjob.clone(),
            requested_by: ask.user.clone(),
            requested_at: now,
            expires_at: now
                + chrono::Duration::from_std(self.reruns.approval_ttl)
                    .unwrap_or(chrono::Duration::hours(1)),
            reason: ask.reason,
            ticket_url: self.reruns.tickets.link(ask.ticket.as_deref()),
            ticket: ask.ticket,
            overrides: ask.overrides,
            diff,
            source_job,
            alert: t.alert.clone(),
            template: template_of(&cj),
            channel: t.channel.clone(),
            thread_ts: t.thread_ts.clone(),
            stop: t.stop.clone(),
            ..RerunRequest::default()
        };
        loop {
            req.id = request::id_from(new_id());
            match self.store.insert_request(&req).await {
                Ok(true) => break,
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot store a rerun request");
                    return Err(AskError::Message(
                        "The bot cannot record the request right now; nothing was requested."
                            .into(),
                    ));
                }
            }
        }
        self.audit(
            &req.requested_by,
            &format!("{}.requested", req.noun()),
            &req,
            serde_json::json!({
                "from": null,
                "to": "pending",
                "reason": req.reason,
                "ticket": req.ticket,
                "ticket_url": req.ticket_url,
                "source_job": req.source_job,
                "diff": req.diff,
                "expires_at": req.expires_at,
            }),
        )
        .await;
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %e, "cannot flush the store");
        }
        tracing::info!(request = %req.id, cronjob = %req.subject(), what = req.noun(), "requested");
        let req = self.post_card(req).await;
        self.set_alert_status(
            &req,
            format!(
                "{} requested by <@{}>{} — waiting for approval.",
                match &req.stop {
                    Some(stop) => format!("🛑 Stop of `{}`", stop.job),
                    None => "🔁 Rerun".to_string(),
                },
                req.requested_by,
                req.ticket
                    .as_deref()
                    .map(|t| format!(
                        " (ticket {})",
                        crate::chat::wording::ticket_neutral(t, req.ticket_url.as_deref())
                    ))
                    .unwrap_or_default()
            ),
        )
        .await;
        Ok(req)
    }

    /// Posts the card (into the alert's thread, or the channel typed in, else
    /// the default channel) and records where it went.
    pub(super) async fn post_card(&self, mut req: RerunRequest) -> RerunRequest {
        let mut posted = self
            .chat
            .post(
                &req.channel,
                req.thread_ts.as_deref(),
                Outgoing::Request(&req),
            )
            .await;
        if let Err(ChatError::ChannelUnavailable(why)) = &posted
            && req.thread_ts.is_none()
            && req.channel != self.default_channel(Platform::of(&req.channel))
        {
            tracing::info!(channel = %req.channel, %why, "cannot post the card there; using the default channel");
            posted = self
                .chat
                .post(
                    self.default_channel(Platform::of(&req.channel)),
                    None,
                    Outgoing::Request(&req),
                )
                .await;
        }
        match posted {
            Ok(at) => {
                let mut next = req.clone();
                next.channel = at.channel;
                next.card_ts = Some(at.ts);
                match self.store.swap_request(&req, &next).await {
                    Ok(true) => req = next,
                    _ => {
                        // Someone acted on it meanwhile: keep theirs, add where the card is.
                        if let Ok(Some(mut current)) = self.store.request(&req.id).await
                            && current.card_ts.is_none()
                        {
                            let before = current.clone();
                            current.channel = next.channel.clone();
                            current.card_ts = next.card_ts.clone();
                            let _ = self.store.swap_request(&before, &current).await;
                            req = current;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, request = %req.id, "approval card not posted"),
        }
        req
    }
}
