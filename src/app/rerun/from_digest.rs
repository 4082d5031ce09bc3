//! A storm digest's *Rerun all failed…*: a form for the reason (and ticket),
//! then one batch request for every CronJob that failed since the storm
//! began (`/rerun failed`, one approval by someone else).

use chrono::{DateTime, Utc};

use super::FormTarget;
use crate::app::App;
use crate::chat::{ButtonClick, Form, FormKind, FormSubmission, FormValues, Reply};
use crate::core::command::RerunFailedCommand;

impl App {
    /// `rerun_failed` on a digest (its value is the digest id): opens the form.
    pub(crate) async fn on_rerun_failed_button(&self, click: &ButtonClick) -> Reply {
        let Some(digest) = click.value.as_deref().and_then(|id| self.digest_by_id(id)) else {
            return Reply::Ephemeral(
                "This storm digest is no longer known; use `/rerun failed --since 1h --reason \"…\"`."
                    .into(),
            );
        };
        let Some(at) = &click.message else {
            return Reply::Ephemeral("This button is not on a message rerun-bot knows.".into());
        };
        let since = digest.since();
        let target = FormTarget {
            namespace: String::new(),
            cronjob: String::new(),
            alert: None,
            channel: at.channel.clone(),
            thread_ts: Some(at.ts.clone()),
            failed_since: Some(since),
            stop: None,
        };
        let open = digest.entries.iter().filter(|e| !e.recovered).count();
        let form = Form {
            kind: FormKind::RerunReason,
            namespace: "storm".into(),
            cronjob: "everything that failed".into(),
            context: vec![format!(
                "Reruns every CronJob that failed since {} and has not recovered ({open} in this digest), each once, after one approval by someone else. Held, deleted and still-running ones are skipped.",
                since.format("%H:%M UTC")
            )],
            containers: Vec::new(),
            prefill: FormValues::default(),
            require_ticket: self.reruns.tickets.required,
            metadata: serde_json::to_string(&target).expect("form target serializes"),
        };
        match self.chat.open_form(&click.trigger_id, &form).await {
            Ok(()) => Reply::Ack,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the rerun-failed form");
                Reply::Ephemeral(format!(
                    "Could not open the form ({e}). Use `/rerun failed --since 1h --reason \"…\"` instead."
                ))
            }
        }
    }

    /// The submitted form of *Rerun all failed…*.
    pub(super) async fn on_rerun_failed_form(
        &self,
        form: FormSubmission,
        target: &FormTarget,
        since: DateTime<Utc>,
    ) -> Reply {
        let window =
            (Utc::now() - since).to_std().unwrap_or_default() + std::time::Duration::from_secs(60);
        let filter = RerunFailedCommand {
            since: window,
            namespace: None,
            reason: Some(form.values.reason.trim().to_string()).filter(|r| !r.is_empty()),
            ticket: Some(form.values.ticket.trim().to_string()).filter(|t| !t.is_empty()),
        };
        if filter.reason.is_none() {
            return Reply::FormErrors(vec![("reason", "Say why these reruns are needed.".into())]);
        }
        if let Some(t) = filter.ticket.as_deref()
            && let Err(why) = self.reruns.tickets.check(Some(t))
        {
            return Reply::FormErrors(vec![("ticket", why.to_string())]);
        }
        if self.reruns.tickets.required && filter.ticket.is_none() {
            return Reply::FormErrors(vec![("ticket", "A ticket is required.".into())]);
        }
        self.request_batch(
            &form.user,
            &target.channel,
            target.thread_ts.as_deref(),
            &filter,
        )
        .await
    }
}
