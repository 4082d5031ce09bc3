//! Rerun many with one approval (`/rerun failed`, and the storm digest's
//! *Rerun all failed…* through [`App::request_batch`]).
//!
//! 1. Asking: every CronJob with an open incident whose last failure is
//!    recent enough becomes an item (`core::batch`), skipped with why when
//!    held, deleted or running under Forbid. Nothing failed: an answer, nothing
//!    stored. Else the batch is stored (a [`RecordKind::Batch`] record) and its
//!    card posted; the full list goes into the card's thread when the card
//!    cannot list it all.
//! 2. Deciding: `batch_approve` / `batch_deny` / `batch_cancel`, with the
//!    four-eyes rule of single requests; a compare-and-swap lets exactly one
//!    click win, and the decision is flushed before the click is answered.
//! 3. Acting ([`App::launch_batch`], the leader's; again at every start and
//!    takeover for approved batches): per item, the CronJob is checked again,
//!    then a child request — already approved, id from the batch id and the
//!    index — is inserted once and its Job created by the single-rerun
//!    machinery (`act`), which reports back here through `update_card`:
//!    one line per CronJob in the card's thread as it finishes, the card's
//!    counts updated.

use super::*;
use crate::chat::wording::{self, Markup};
use crate::core::batch::{self, BatchRequest, CronJobFacts};
use crate::core::command::RerunFailedCommand;
use crate::store::{self as store, RecordKind};

/// The neutral markup of the app's own notices (the adapters escape and
/// convert it): `` `code` ``, `*bold*`, `<@user>`.
struct Neutral;

impl Markup for Neutral {
    fn text(&self, s: &str, max: usize) -> String {
        crate::core::text::truncate_chars(s, max)
    }
    fn code(&self, s: &str, max: usize) -> String {
        format!(
            "`{}`",
            crate::core::text::truncate_chars(&s.replace('`', "'"), max)
        )
    }
    fn user(&self, id: &str) -> String {
        format!("<@{id}>")
    }
    fn when(&self, t: DateTime<Utc>) -> String {
        t.format("%Y-%m-%d %H:%M UTC").to_string()
    }
    fn bold(&self, s: &str) -> String {
        format!("*{s}*")
    }
    fn italic(&self, s: &str) -> String {
        format!("_{s}_")
    }
    fn link(&self, text: &str, url: &str) -> String {
        format!("<{url}|{text}>")
    }
}

/// Lines per thread message when the full list goes into the thread.
const THREAD_LINES: usize = 40;

fn plural(n: usize, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

impl App {
    // ----- asking -----------------------------------------------------------

    /// `/rerun failed …` typed in `channel`.
    pub(crate) async fn on_rerun_failed_command(
        &self,
        cmd: &SlashCommand,
        filter: &RerunFailedCommand,
    ) -> Reply {
        self.request_batch(&cmd.user, &cmd.channel, None, filter)
            .await
    }

    /// Asks for a rerun of every failed CronJob `filter` covers, on one card
    /// posted in `channel` (in `thread`, if given: the storm digest's). The
    /// answer is for `user` alone.
    pub(crate) async fn request_batch(
        &self,
        user: &str,
        channel: &str,
        thread: Option<&str>,
        filter: &RerunFailedCommand,
    ) -> Reply {
        if !self.may(&self.reruns.policy.requesters, user).await {
            return Reply::Ephemeral(self.refuse_requester(user, "batch".into()).await);
        }
        if let Some(ticket) = filter.ticket.as_deref()
            && let Err(why) = self.reruns.tickets.check(Some(ticket))
        {
            return Reply::Ephemeral(format!("{why}; nothing was requested."));
        }
        let missing_ticket = self.reruns.tickets.required && filter.ticket.is_none();
        let reason = filter.reason.as_deref().map(str::trim).unwrap_or_default();
        if reason.is_empty() || missing_ticket {
            return Reply::Ephemeral(format!(
                "A reason is required{}: add `--reason \"…\"`{}, for example `/rerun failed --reason \"the database was down\"`. Nothing was requested.\n\nUsage: `{}`",
                if missing_ticket {
                    " and so is a ticket"
                } else {
                    ""
                },
                if missing_ticket {
                    " and `--ticket …`"
                } else {
                    ""
                },
                crate::core::command::usage(crate::core::command::CommandKind::Rerun)
            ));
        }
        if reason.chars().count() > REASON_MAX {
            return Reply::Ephemeral(format!(
                "Keep the reason under {REASON_MAX} characters; link a ticket for details. Nothing was requested."
            ));
        }
        let now = Utc::now();
        let since =
            now - chrono::Duration::from_std(filter.since).unwrap_or(chrono::Duration::days(1));
        let secs = filter.since.as_secs();
        let window = format!(
            "{}{}",
            if secs.is_multiple_of(3600) {
                format!("{}h", secs / 3600)
            } else {
                format!("{}m", secs / 60)
            },
            filter
                .namespace
                .as_deref()
                .map(|ns| format!(" in namespace `{ns}`"))
                .unwrap_or_default()
        );
        let (threads, alerts) = match (self.store.threads().await, self.store.alerts().await) {
            (Ok(t), Ok(a)) => (t, a),
            (Err(e), _) | (_, Err(e)) => {
                return Reply::Ephemeral(format!(
                    "Cannot read the incidents right now ({e}); nothing was requested. Try again."
                ));
            }
        };
        let alerts: Vec<_> = alerts.into_iter().map(|(_, r)| r.alert).collect();
        let candidates = batch::candidates(&threads, &alerts, since, filter.namespace.as_deref());
        if candidates.is_empty() {
            return Reply::Ephemeral(format!(
                "Nothing failed in the last {window}: no CronJob has an open incident with a failure that recent, so there is nothing to rerun. Nothing was requested."
            ));
        }
        let mut facts = HashMap::new();
        for c in &candidates {
            match self.cronjob_facts(&c.namespace, &c.cronjob).await {
                Ok(f) => {
                    facts.insert((c.namespace.clone(), c.cronjob.clone()), f);
                }
                Err(why) => {
                    return Reply::Ephemeral(format!("{why}; nothing was requested. Try again."));
                }
            }
        }
        let items = batch::items(&candidates, |c| {
            facts
                .get(&(c.namespace.clone(), c.cronjob.clone()))
                .cloned()
                .flatten()
        });
        let mut b = BatchRequest {
            id: String::new(),
            requested_by: user.to_string(),
            requested_at: now,
            expires_at: now
                + chrono::Duration::from_std(self.reruns.approval_ttl)
                    .unwrap_or(chrono::Duration::hours(1)),
            reason: reason.to_string(),
            ticket: filter.ticket.clone(),
            ticket_url: self.reruns.tickets.link(filter.ticket.as_deref()),
            since,
            namespace: filter.namespace.clone(),
            channel: channel.to_string(),
            thread_ts: thread.map(str::to_string),
            items,
            ..BatchRequest::default()
        };
        let counts = b.counts();
        if counts.included == 0 {
            let lines: Vec<String> = b
                .items
                .iter()
                .take(20)
                .map(|i| wording::batch::item_line(&Neutral, i))
                .collect();
            return Reply::Ephemeral(format!(
                "Nothing to rerun: {} failed in the last {window}, but {}:\n{}{}\nNothing was requested.",
                plural(b.items.len(), "CronJob"),
                if b.items.len() == 1 {
                    "it is skipped"
                } else {
                    "each is skipped"
                },
                lines.join("\n"),
                if b.items.len() > 20 {
                    format!("\n…and {} more", b.items.len() - 20)
                } else {
                    String::new()
                }
            ));
        }
        loop {
            b.id = request::id_from(new_id());
            let value = serde_json::to_value(&b).expect("batches serialize");
            match self
                .store
                .swap_record(RecordKind::Batch, &b.id, None, &value)
                .await
            {
                Ok(true) => break,
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot store a batch request");
                    return Reply::Ephemeral(
                        "The bot cannot record the request right now; nothing was requested."
                            .into(),
                    );
                }
            }
        }
        self.audit_batch(
            user,
            "batch.requested",
            &b,
            serde_json::json!({
                "from": null,
                "to": "pending",
                "since": b.since,
                "namespace": b.namespace,
                "expires_at": b.expires_at,
                "cronjobs": b.items.iter().filter(|i| i.included()).map(|i| i.subject()).collect::<Vec<_>>(),
                "skipped": b.items.iter().filter_map(|i| i.skipped.as_ref().map(|s| serde_json::json!({"cronjob": i.subject(), "why": s.to_string()}))).collect::<Vec<_>>(),
            }),
        )
        .await;
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %e, "cannot flush the store");
        }
        tracing::info!(batch = %b.id, cronjobs = counts.included, skipped = counts.skipped, "batch rerun requested");
        let b = self.post_batch_card(b).await;
        if b.items.len() > wording::batch::CARD_ITEMS
            && let Some(thread) = b.thread()
        {
            let lines: Vec<String> = b
                .items
                .iter()
                .map(|i| wording::batch::item_line(&Neutral, i))
                .collect();
            for (n, chunk) in lines.chunks(THREAD_LINES).enumerate() {
                let text = format!(
                    "*All {} of batch `{}`* ({}/{}):\n{}",
                    plural(b.items.len(), "CronJob"),
                    b.id,
                    n + 1,
                    lines.len().div_ceil(THREAD_LINES),
                    chunk.join("\n")
                );
                if let Err(e) = self
                    .chat
                    .post(&b.channel, Some(thread), Outgoing::Notice(&text))
                    .await
                {
                    tracing::warn!(error = %e, batch = %b.id, "cannot post the batch's full list");
                }
            }
        }
        Reply::Ephemeral(format!(
            "Rerun of {} requested (batch `{}`){}. Someone other than you must approve it on the card.",
            plural(counts.included, "CronJob"),
            b.id,
            if counts.skipped > 0 {
                format!("; {} skipped, see the card", counts.skipped)
            } else {
                String::new()
            }
        ))
    }

    /// What a batch needs to know of a CronJob now; `Ok(None)`: it is gone.
    async fn cronjob_facts(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<CronJobFacts>, String> {
        // The apiserver's word, not the watch cache's: a CronJob deleted a
        // moment ago is skipped as deleted, not approved and aborted.
        let cj = match self.cluster.cronjob(namespace, name).await {
            Ok(Some(cj)) => cj,
            Ok(None) => return Ok(None),
            Err(e) => return Err(format!("Cannot read CronJob `{namespace}/{name}` ({e})")),
        };
        let running = if matches!(cj.concurrency_policy.as_str(), "Forbid" | "Replace") {
            self.cluster
                .running_jobs(namespace, name)
                .await
                .map_err(|e| format!("Cannot check `{namespace}/{name}` for running Jobs ({e})"))?
        } else {
            Vec::new()
        };
        Ok(Some(CronJobFacts {
            held: cj.hold_id.filter(|h| !h.trim().is_empty()),
            concurrency_policy: cj.concurrency_policy,
            running,
        }))
    }

    /// Posts the card (in the thread given, or the channel typed in, else the
    /// default channel) and records where it went.
    async fn post_batch_card(&self, b: BatchRequest) -> BatchRequest {
        let mut posted = self
            .chat
            .post(&b.channel, b.thread_ts.as_deref(), Outgoing::Batch(&b))
            .await;
        let default = self.default_channel(Platform::of(&b.channel)).to_string();
        if let Err(ChatError::ChannelUnavailable(why)) = &posted
            && b.thread_ts.is_none()
            && b.channel != default
        {
            tracing::info!(channel = %b.channel, %why, "cannot post the batch card there; using the default channel");
            posted = self.chat.post(&default, None, Outgoing::Batch(&b)).await;
        }
        let at = match posted {
            Ok(at) => at,
            Err(e) => {
                tracing::warn!(error = %e, batch = %b.id, "batch card not posted");
                return b;
            }
        };
        let id = b.id.clone();
        self.change_batch(&id, |current| {
            (current.card_ts.is_none()).then(|| {
                let mut next = current.clone();
                next.channel = at.channel.clone();
                next.card_ts = Some(at.ts.clone());
                next
            })
        })
        .await
        .map(|(_, next)| next)
        .unwrap_or(b)
    }

    // ----- deciding ---------------------------------------------------------

    /// `batch_approve`, `batch_deny`, `batch_cancel` on a batch card.
    pub(crate) async fn on_batch_button(self: &Arc<Self>, click: &ButtonClick) -> Reply {
        let b = match click.value.as_deref() {
            Some(id) => self.batch(id).await,
            None => None,
        };
        let Some(b) = b else {
            return Reply::Ephemeral("This batch request is not known to rerun-bot.".into());
        };
        let made_on = Platform::of(&b.channel);
        if Platform::of_user(&click.user) != made_on {
            return Reply::Ephemeral(format!(
                "This batch request was made in {}; it is decided there.",
                made_on.title()
            ));
        }
        let now = Utc::now();
        let event = match click.action_id.as_str() {
            "batch_approve" => Event::Approve {
                by: click.user.clone(),
                allowed: self.may(&self.reruns.policy.approvers, &click.user).await,
                hold_override: false,
            },
            "batch_deny" => Event::Deny {
                by: click.user.clone(),
                allowed: self.may(&self.reruns.policy.approvers, &click.user).await,
            },
            _ => Event::Cancel {
                by: click.user.clone(),
            },
        };
        let mut refusal = None;
        let decided = self
            .change_batch(&b.id, |current| {
                match batch::transition(current, &event, now) {
                    Ok(next) => Some(next),
                    Err(r) => {
                        refusal = Some(r);
                        None
                    }
                }
            })
            .await;
        let Some((before, next)) = decided else {
            let refusal = refusal.unwrap_or(Refusal::WrongState {
                state: "unwritable",
            });
            return self.refuse_batch(&click.user, &b, &event, refusal).await;
        };
        let action = match next.state {
            State::Approved => "batch.approved",
            State::Denied => "batch.denied",
            _ => "batch.cancelled",
        };
        self.audit_batch(
            &click.user,
            action,
            &next,
            serde_json::json!({"from": before.state.as_str(), "to": next.state.as_str()}),
        )
        .await;
        // Approval is final: durable before anything is created.
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %e, "cannot flush the store");
        }
        tracing::info!(batch = %next.id, state = next.state.as_str(), by = %click.user, "batch decided");
        self.update_batch_card(&next).await;
        if next.state == State::Approved {
            let this = self.clone();
            // The leader creates the Jobs: here at once, or its recovery within seconds.
            self.spawn(async move {
                if this.leads() {
                    this.launch_batch(&next.id).await;
                }
            });
        }
        Reply::Ack
    }

    async fn refuse_batch(
        &self,
        user: &str,
        b: &BatchRequest,
        event: &Event,
        refusal: Refusal,
    ) -> Reply {
        let action = event.verb();
        self.audit_batch(
            user,
            "batch.refused",
            b,
            serde_json::json!({"action": action, "why": refusal.to_string()}),
        )
        .await;
        let text = self.refusal_text(&refusal);
        if let Refusal::Expired { .. } = refusal
            && b.state == State::Pending
        {
            self.expire_batch(&b.id).await;
        }
        Reply::Ephemeral(text)
    }

    pub(super) async fn expire_batch(&self, id: &str) {
        let now = Utc::now();
        let Some((before, next)) = self
            .change_batch(id, |b| batch::transition(b, &Event::Expire, now).ok())
            .await
        else {
            return;
        };
        self.audit_batch(
            BOT_ACTOR,
            "batch.expired",
            &next,
            serde_json::json!({"from": before.state.as_str(), "to": next.state.as_str()}),
        )
        .await;
        tracing::info!(batch = %id, "batch request expired");
        self.update_batch_card(&next).await;
    }

    // ----- acting -----------------------------------------------------------

    /// Gives every included CronJob of an approved batch its child request
    /// and Job, each exactly once; safe to run again (after a restart, a
    /// takeover, or while it runs elsewhere: the claim makes it wait its turn).
    pub(super) async fn launch_batch(&self, id: &str) {
        let Some(_claim) = self.claim(format!("batch:{id}")) else {
            return; // launching right now
        };
        let Some(b) = self.batch(id).await else {
            return;
        };
        if b.state != State::Approved {
            return;
        }
        for index in 0..b.items.len() {
            if !self.leads() {
                return;
            }
            let item = &b.items[index];
            if !item.included() {
                continue;
            }
            let child_id = b.child_id(index);
            let child = match self.store.request(&child_id).await {
                Ok(Some(child)) if child.batch.as_deref() == Some(id) => child,
                Ok(Some(_)) => {
                    self.item_not_run(
                        &b,
                        index,
                        "its request id is taken; rerun it on its own".into(),
                    )
                    .await;
                    continue;
                }
                Ok(None) if item.state.is_final() => continue,
                Ok(None) => match self.new_child(&b, index).await {
                    Ok(Some(child)) => child,
                    Ok(None) => continue, // not run, and told
                    Err(e) => {
                        tracing::warn!(error = %e, batch = %id, cronjob = %item.subject(), "cannot start the batch's rerun; will retry at the next start");
                        continue;
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, batch = %id, "cannot read a batch's rerun request");
                    continue;
                }
            };
            // The item follows its child (a restart may have cut that short).
            self.batch_child_changed(&child).await;
            if child.state == State::Approved
                && let Some(_claim) = self.claim(format!("req:{}", child.id))
            {
                // Read again under the claim: recovery may have created it meanwhile.
                if let Ok(Some(child)) = self.store.request(&child.id).await
                    && child.state == State::Approved
                {
                    self.create_rerun_job(child).await;
                }
            }
        }
    }

    /// Checks the CronJob of item `index` again and stores its child request,
    /// approved by the batch's approver. `Ok(None)`: it cannot run (the item
    /// says why).
    async fn new_child(
        &self,
        b: &BatchRequest,
        index: usize,
    ) -> Result<Option<RerunRequest>, String> {
        let item = &b.items[index];
        let cj = self
            .cluster
            .cronjob_object(&item.namespace, &item.cronjob)
            .await
            .map_err(|e| e.to_string())?;
        let facts = match &cj {
            None => None,
            Some(cj) => {
                let policy = cj
                    .spec
                    .as_ref()
                    .and_then(|s| s.concurrency_policy.clone())
                    .unwrap_or_else(|| "Allow".into());
                let running = if matches!(policy.as_str(), "Forbid" | "Replace") {
                    self.cluster
                        .running_jobs(&item.namespace, &item.cronjob)
                        .await
                        .map_err(|e| e.to_string())?
                } else {
                    Vec::new()
                };
                Some(CronJobFacts {
                    held: held(cj),
                    concurrency_policy: policy,
                    running,
                })
            }
        };
        if let Some(skip) = batch::skip_for(facts.as_ref()) {
            self.item_not_run(b, index, skip.to_string()).await;
            return Ok(None);
        }
        let Some(cj) = cj else { return Ok(None) };
        let Some(spec) = cj.spec.as_ref().and_then(|s| s.job_template.spec.as_ref()) else {
            self.item_not_run(b, index, "the CronJob has no job template".into())
                .await;
            return Ok(None);
        };
        let diff = match overrides::diff(spec, &Overrides::default()) {
            Ok(d) => d,
            Err(e) => {
                self.item_not_run(b, index, e.to_string()).await;
                return Ok(None);
            }
        };
        let child = RerunRequest {
            id: b.child_id(index),
            namespace: item.namespace.clone(),
            cronjob: item.cronjob.clone(),
            requested_by: b.requested_by.clone(),
            requested_at: b.requested_at,
            expires_at: b.expires_at,
            reason: b.reason.clone(),
            ticket: b.ticket.clone(),
            ticket_url: b.ticket_url.clone(),
            overrides: Overrides::default(),
            diff,
            source_job: item.failed_job.clone(),
            alert: item.alert.clone(),
            template: template_of(&cj),
            channel: b.channel.clone(),
            thread_ts: b.thread().map(str::to_string),
            state: State::Approved,
            approved_by: b.approved_by.clone(),
            decided_at: b.decided_at,
            batch: Some(b.id.clone()),
            ..RerunRequest::default()
        };
        match self.store.insert_request(&child).await {
            Ok(true) => {
                self.audit(
                    b.approved_by.as_deref().unwrap_or(BOT_ACTOR),
                    "rerun.approved",
                    &child,
                    serde_json::json!({"from": null, "to": "approved", "batch": b.id, "source_job": child.source_job}),
                )
                .await;
                let _ = self.store.flush().await;
                Ok(Some(child))
            }
            Ok(false) => match self.store.request(&child.id).await {
                Ok(Some(existing)) if existing.batch == child.batch => Ok(Some(existing)),
                Ok(_) => {
                    self.item_not_run(
                        b,
                        index,
                        "its request id is taken; rerun it on its own".into(),
                    )
                    .await;
                    Ok(None)
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        }
    }

    /// Item `index` is not run, because of `why`: on the record, in the thread.
    async fn item_not_run(&self, b: &BatchRequest, index: usize, why: String) {
        let item = &b.items[index];
        let stand_in = RerunRequest {
            id: b.child_id(index),
            namespace: item.namespace.clone(),
            cronjob: item.cronjob.clone(),
            state: State::Aborted,
            note: Some(why.clone()),
            batch: Some(b.id.clone()),
            ..RerunRequest::default()
        };
        self.audit_event(
            BOT_ACTOR,
            "batch.not_run",
            item.subject(),
            serde_json::json!({"batch": b.id, "why": why}),
        )
        .await;
        self.batch_child_changed(&stand_in).await;
    }

    // ----- telling ----------------------------------------------------------

    /// A child request changed (`act` calls this where it would update a
    /// card): its item follows; a finished one gets its line in the thread;
    /// the card shows the counts.
    pub(super) async fn batch_child_changed(&self, child: &RerunRequest) {
        let Some(id) = child.batch.as_deref() else {
            return;
        };
        let changed = self
            .change_batch(id, |b| {
                let index = b.index_of(&child.id)?;
                batch::record_item(
                    b,
                    index,
                    child.state,
                    child.job.as_deref(),
                    child.note.as_deref(),
                )
            })
            .await;
        let Some((_, next)) = changed else {
            return;
        };
        let subject = format!("`{}`", child.subject());
        let job = child
            .job
            .as_deref()
            .map(|j| format!(" `{j}`"))
            .unwrap_or_default();
        let note = child.note.as_deref().unwrap_or("no reason given");
        let line = match child.state {
            State::Succeeded => Some(format!("✅ {subject}: rerun Job{job} succeeded.")),
            State::Failed => Some(format!("❌ {subject}: rerun Job{job} failed: {note}.")),
            State::Aborted => Some(format!("⚠️ {subject}: not run: {note}.")),
            _ => None,
        };
        if let Some(line) = &line
            && let Some(thread) = next.thread()
            && let Err(e) = self
                .chat
                .post(&next.channel, Some(thread), Outgoing::Notice(line))
                .await
        {
            tracing::warn!(error = %e, batch = %id, "cannot post batch progress");
        }
        let c = next.counts();
        let all_started = c.running + c.done() == c.included;
        if next.state.is_final() {
            self.audit_batch(
                BOT_ACTOR,
                "batch.finished",
                &next,
                serde_json::json!({
                    "to": next.state.as_str(),
                    "succeeded": c.succeeded,
                    "failed": c.failed,
                    "not_run": c.not_run,
                }),
            )
            .await;
            let _ = self.store.flush().await;
            tracing::info!(batch = %id, state = next.state.as_str(), "batch finished");
        }
        // The card changes with each outcome and once every Job is running,
        // not with each Job created (chat.update is rate limited).
        if line.is_some() || (child.state == State::Created && all_started) {
            self.update_batch_card(&next).await;
        }
    }

    async fn update_batch_card(&self, b: &BatchRequest) {
        let Some(ts) = &b.card_ts else { return };
        let at = MessageRef {
            channel: b.channel.clone(),
            ts: ts.clone(),
        };
        if let Err(e) = self.chat.update(&at, Outgoing::Batch(b)).await {
            tracing::warn!(error = %e, batch = %b.id, "cannot update the batch card");
        }
    }

    /// One audit record about a batch; each carries its id, state, reason,
    /// ticket and counts, so it stands alone.
    async fn audit_batch(
        &self,
        actor: &str,
        action: &str,
        b: &BatchRequest,
        detail: serde_json::Value,
    ) {
        let mut detail = detail;
        let c = b.counts();
        if let Some(map) = detail.as_object_mut() {
            let mut put = |k: &str, v: serde_json::Value| {
                map.entry(k.to_string()).or_insert(v);
            };
            put("batch", b.id.clone().into());
            put("state", b.state.as_str().into());
            put("requested_by", b.requested_by.clone().into());
            put("approved_by", b.approved_by.clone().into());
            put("reason", b.reason.clone().into());
            put("ticket", b.ticket.clone().into());
            if b.ticket_url.is_some() {
                put("ticket_url", b.ticket_url.clone().into());
            }
            put("included", c.included.into());
            put("skipped", c.skipped.into());
        }
        self.audit_event(actor, action, format!("batch/{}", b.id), detail)
            .await;
    }

    // ----- the record -------------------------------------------------------

    pub(super) async fn batch(&self, id: &str) -> Option<BatchRequest> {
        match store::get_record(self.store.as_ref(), RecordKind::Batch, id).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, batch = %id, "cannot read a batch");
                None
            }
        }
    }

    /// Applies `change` with compare-and-swap, re-reading after a lost race;
    /// `None` when `change` declines (or the batch is unreadable). Returns
    /// the batch before and after.
    async fn change_batch(
        &self,
        id: &str,
        mut change: impl FnMut(&BatchRequest) -> Option<BatchRequest>,
    ) -> Option<(BatchRequest, BatchRequest)> {
        loop {
            let raw = match self.store.record(RecordKind::Batch, id).await {
                Ok(Some(raw)) => raw,
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, batch = %id, "cannot read a batch");
                    return None;
                }
            };
            let current: BatchRequest = match serde_json::from_value(raw.clone()) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, batch = %id, "undecodable batch");
                    return None;
                }
            };
            let next = change(&current)?;
            let value = serde_json::to_value(&next).expect("batches serialize");
            match self
                .store
                .swap_record(RecordKind::Batch, id, Some(&raw), &value)
                .await
            {
                Ok(true) => return Some((current, next)),
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(error = %e, batch = %id, "cannot store a batch change");
                    return None;
                }
            }
        }
    }

    // ----- time and restarts ------------------------------------------------

    /// Expires pending batches on time (with the requests' expiry loop).
    pub(super) async fn expire_batches(&self, now: DateTime<Utc>) {
        let batches = store::all_records::<BatchRequest>(self.store.as_ref(), RecordKind::Batch)
            .await
            .unwrap_or_default();
        for (id, b) in batches {
            if b.state == State::Pending && b.expires_at <= now {
                self.expire_batch(&id).await;
            }
        }
    }

    /// At start and after a takeover: approved batches get their children
    /// and Jobs; pending ones past their time expire.
    pub(crate) async fn recover_batches(&self) {
        let batches = match store::all_records::<BatchRequest>(
            self.store.as_ref(),
            RecordKind::Batch,
        )
        .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read batches");
                return;
            }
        };
        let now = Utc::now();
        for (id, b) in batches {
            if !self.leads() {
                return;
            }
            match b.state {
                State::Approved => self.launch_batch(&id).await,
                State::Pending if b.expires_at <= now => self.expire_batch(&id).await,
                _ => {}
            }
        }
    }
}
