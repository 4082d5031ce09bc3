//! What the bot says, in words both renderers share: the request status line,
//! the changes of a rerun, the lines of a hold or resume, the notes of an alert.
//!
//! Each renderer supplies its [`Markup`] (Slack mrkdwn, Teams markdown), so a
//! sentence is written once and the platforms cannot drift apart.

pub mod batch;
pub mod health;
pub mod snooze;
pub mod stop;

pub use snooze::snooze_line;

use chrono::{DateTime, Utc};

use crate::core::FailureAlert;
use crate::core::hold::{Item, Kind, Operation, Outcome, Phase};
use crate::core::incident::{AlertStory, Recovery};
use crate::core::overrides::Diff;
use crate::core::request::{RerunRequest, State};
use crate::core::storm::{Digest, LISTED};

/// How a platform marks up the pieces of a sentence.
pub trait Markup {
    /// Untrusted text (from pods and people), escaped, at most `max` chars.
    fn text(&self, s: &str, max: usize) -> String;
    /// Untrusted text shown as code.
    fn code(&self, s: &str, max: usize) -> String;
    /// A person, by platform user id.
    fn user(&self, id: &str) -> String;
    /// A time, shown in each reader's own zone.
    fn when(&self, t: DateTime<Utc>) -> String;
    /// Already marked-up text, bold.
    fn bold(&self, s: &str) -> String;
    /// Already marked-up text, italic.
    fn italic(&self, s: &str) -> String;
    /// A link: `text` is untrusted (escaped here), `url` the bot's own http(s)
    /// URL with anything user-given in it percent-encoded.
    fn link(&self, text: &str, url: &str) -> String;
}

/// A ticket reference: a link when `RERUN_BOT_TICKET_URL` made one, else its text.
pub fn ticket(m: &dyn Markup, ticket: &str, url: Option<&str>, max: usize) -> String {
    match url {
        Some(url) => m.link(&crate::core::text::truncate_chars(ticket, max), url),
        None => m.text(ticket, max),
    }
}

/// A ticket inside the app's neutral text (alert statuses): `<url|INC-1>`, or
/// `` `INC-1` `` without a link. Characters that would end the link or the
/// code early are left out of the shown text; the URL carries the ticket as is.
pub fn ticket_neutral(ticket: &str, url: Option<&str>) -> String {
    let shown: String = crate::core::text::truncate_chars(ticket, 100)
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '|' | '`') && !c.is_control())
        .collect();
    match url {
        Some(url) => format!("<{url}|{shown}>"),
        None => format!("`{shown}`"),
    }
}

/// A container's arguments, shell-quoted.
pub fn args_text(m: &dyn Markup, args: &[String]) -> String {
    if args.is_empty() {
        m.italic("(none)")
    } else {
        m.code(&shell_words::join(args), 900)
    }
}

/// The changes of a rerun against the CronJob's template, one line each.
pub fn diff_lines(m: &dyn Markup, diff: &Diff) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some((before, after)) = &diff.args {
        lines.push(format!(
            "args: {} → {}",
            args_text(m, before),
            args_text(m, after)
        ));
    }
    for change in &diff.env {
        let was = match &change.before {
            None => "new".to_string(),
            Some(before) => format!("was {}", m.code(before, 300)),
        };
        lines.push(format!(
            "env {} = {} ({was})",
            m.code(&change.name, 200),
            m.code(&change.after, 300)
        ));
    }
    lines
}

/// The heading of the changes on an approval card.
pub fn changes_title(m: &dyn Markup, diff: &Diff) -> String {
    if diff.is_empty() {
        format!(
            "{} none — the CronJob's current job template, as is.",
            m.bold("Changes:")
        )
    } else {
        m.bold(&format!(
            "Changes to container {}:",
            m.code(&diff.container, 253)
        ))
    }
}

/// The warning on a pending request whose CronJob is on a maintenance hold.
pub fn held_warning(m: &dyn Markup, hold: &str) -> String {
    format!(
        "⚠️ The CronJob is on maintenance hold {}. {} runs it anyway.",
        m.code(hold, 100),
        m.bold("Approve during hold")
    )
}

/// A pending request's line: who may approve, until when.
fn pending(m: &dyn Markup, req: &RerunRequest) -> String {
    format!(
        "⏳ Waiting for approval by someone other than {}. Expires {}.",
        m.user(&req.requested_by),
        m.when(req.expires_at)
    )
}

/// What a request's card says about where it stands.
pub fn request_status(m: &dyn Markup, req: &RerunRequest) -> String {
    let job = req
        .job
        .as_deref()
        .map(|j| m.code(j, 100))
        .unwrap_or_default();
    let by = |u: &Option<String>| u.as_deref().map(|u| m.user(u)).unwrap_or_default();
    let note = req
        .note
        .as_deref()
        .map(|n| format!(": {}", m.text(n, 500)))
        .unwrap_or_default();
    if let Some(stop) = &req.stop {
        return stop::status(m, req, stop);
    }
    match req.state {
        State::Pending => pending(m, req),
        State::Approved => format!(
            "✅ Approved by {} — creating the Job…",
            by(&req.approved_by)
        ),
        State::Created => format!(
            "🚀 Job {job} created (approved by {}); running…",
            by(&req.approved_by)
        ),
        State::Succeeded => format!(
            "✅ Job {job} succeeded (approved by {}).",
            by(&req.approved_by)
        ),
        State::Failed => format!("❌ Job {job} failed{note}."),
        State::Denied => format!("🚫 Denied by {}. Nothing was created.", by(&req.decided_by)),
        State::Cancelled => "Cancelled by the requester. Nothing was created.".into(),
        State::Expired => "⌛ Expired without approval. Nothing was created.".into(),
        State::Aborted => format!("⚠️ Not run{note}."),
    }
}

/// The header of a failure alert (plain text): what happened, and for the
/// first alert of an incident how often since, or that it is over.
pub fn alert_header(alert: &FailureAlert, story: &AlertStory, reply: bool) -> String {
    if let Some(header) = health::header(alert, story, reply) {
        return header;
    }
    let what = format!("{}/{}", alert.namespace, alert.cronjob);
    if reply {
        format!("🔁 CronJob {what} failed again")
    } else if story.recovered.is_some() {
        format!("✅ CronJob {what} recovered")
    } else if story.failures > 1 {
        format!("🚨 CronJob {what} failed {} times in a row", story.failures)
    } else if alert.rerun_request.is_some() {
        format!("🚨 Rerun of CronJob {what} failed")
    } else {
        format!("🚨 CronJob {what} failed")
    }
}

/// A storm digest's headline (plain text).
pub fn digest_headline(d: &Digest) -> String {
    let n = d.entries.len();
    let what = if n == 1 { "CronJob" } else { "CronJobs" };
    format!(
        "⚠️ {n} {what} failed since {}",
        d.since().format("%H:%M UTC")
    )
}

/// The namespaces of a storm: `billing: 12 · ops: 25` (the largest ten).
pub fn digest_namespaces(m: &dyn Markup, d: &Digest) -> String {
    let all = d.by_namespace();
    let mut parts: Vec<String> = all
        .iter()
        .take(10)
        .map(|(ns, n)| format!("{}: {n}", m.bold(&m.text(ns, 63))))
        .collect();
    if all.len() > 10 {
        parts.push(format!("{} more namespaces", all.len() - 10));
    }
    parts.join(" · ")
}

/// The CronJobs a digest names itself (the first [`LISTED`]), one line each.
pub fn digest_list(m: &dyn Markup, d: &Digest) -> Vec<String> {
    d.entries
        .iter()
        .take(LISTED)
        .map(|e| {
            let exit = e
                .exit_code
                .map(|c| format!(", exit code {c}"))
                .unwrap_or_default();
            let mark = if e.recovered { "✅ " } else { "" };
            format!(
                "• {mark}{} — {}{exit}",
                m.code(&format!("{}/{}", e.namespace, e.cronjob), 200),
                m.text(&e.reason, 100)
            )
        })
        .collect()
}

/// The small print of a digest: what is where, and what recovered.
pub fn digest_note(d: &Digest) -> String {
    let mut note = String::new();
    if d.entries.len() > LISTED {
        note.push_str(&format!("…and {} more. ", d.entries.len() - LISTED));
    }
    note.push_str("Every CronJob, with its reason and exit code, is in the thread; their later failures go there too.");
    let own = d.entries.iter().filter(|e| e.own_alert).count();
    if own > 0 {
        note.push_str(&format!(
            " {own} had an alert of their own before the storm was seen."
        ));
    }
    match d.recovered() {
        0 => {}
        n => note.push_str(&format!(" ✅ {n} recovered since.")),
    }
    note
}

/// The last runs as a strip, oldest first: `✓ ✓ ✗ ✗`.
pub fn run_strip(runs: &[bool]) -> String {
    runs.iter()
        .map(|ok| if *ok { "✓" } else { "✗" })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The CronJob's history on an alert: last success and the last runs.
pub fn history_line(m: &dyn Markup, story: &AlertStory) -> String {
    let success = match story.last_success {
        Some(at) => format!("Last success {}", m.when(at)),
        None if story.known_runs => "No success seen".to_string(),
        None => "Last success unknown".to_string(),
    };
    if story.runs.is_empty() {
        success
    } else {
        format!("{success} · last runs {}", run_strip(&story.runs))
    }
}

/// `1 failure`, `3 failures`.
pub fn failures(n: u32) -> String {
    match n {
        1 => "1 failure".to_string(),
        n => format!("{n} failures"),
    }
}

/// How an incident ended, for its first alert.
pub fn recovered_line(m: &dyn Markup, r: &Recovery) -> String {
    let failures = failures(r.failures);
    let how = if r.by_rerun { " (a rerun)" } else { "" };
    format!(
        "✅ Recovered — {}{how} succeeded {}, after {failures}.",
        m.code(&r.job, 253),
        m.when(r.at)
    )
}

/// The attempts of a failed Job.
pub fn attempts(alert: &FailureAlert) -> String {
    match alert.backoff_limit {
        Some(limit) => format!("{} failed / backoffLimit {}", alert.failed_pods, limit),
        None => format!("{} failed", alert.failed_pods),
    }
}

/// When a CronJob runs next, or why that is unknown.
pub fn next_run(m: &dyn Markup, alert: &FailureAlert) -> String {
    match (alert.next_run, &alert.schedule_problem) {
        (_, _) if alert.suspended => "suspended: no next run".to_string(),
        (Some(t), _) => format!("next {}", m.when(t)),
        (None, Some(problem)) => format!("⚠️ {}", m.text(problem, 300)),
        (None, None) => "next run unknown".to_string(),
    }
}

/// The heading of a captured log tail.
pub fn log_title(m: &dyn Markup, container: &str, lines: usize, truncated: bool) -> String {
    let container = m.code(container, 253);
    match (truncated, lines) {
        (true, _) => format!("{} of {container} (cut to fit):", m.bold("End of the log")),
        (false, 1) => format!("{} of {container}:", m.bold("Last log line")),
        (false, n) => format!("{} of {container}:", m.bold(&format!("Last {n} log lines"))),
    }
}

/// The small print of an alert: its incident, rerun, a missing CronJob, history.
pub fn alert_notes(
    m: &dyn Markup,
    alert: &FailureAlert,
    story: &AlertStory,
    reply: bool,
) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(r) = story.recovered.as_ref().filter(|_| !reply) {
        notes.push(recovered_line(m, r));
    }
    if alert.cronjob_missing {
        notes.push("The CronJob no longer exists.".to_string());
    }
    if let Some(indexes) = &alert.failed_indexes {
        notes.push(format!("Failed indexes: {}", m.text(indexes, 200)));
    }
    if let Some(request) = &alert.rerun_request {
        notes.push(format!(
            "This Job was a rerun (request {}).",
            m.code(request, 64)
        ));
    }
    let since = story
        .since
        .map(|t| format!(" since {}", m.when(t)))
        .unwrap_or_default();
    if story.failures > 1 && !reply && story.recovered.is_none() {
        notes.push(format!(
            "❗ Failed {} times in a row{since} — later failures are in the thread.",
            story.failures
        ));
    }
    if let Some(at) = story.continues_from.filter(|_| !reply) {
        notes.push(format!(
            "This incident goes on from an alert posted {}.",
            m.when(at)
        ));
    }
    if reply {
        notes.push(format!("Failure #{} of this incident.", story.failures));
    }
    if let Some(snoozed) = story.snoozed.as_ref().filter(|_| !reply) {
        notes.push(snooze_line(m, snoozed));
    }
    if !reply {
        notes.push(history_line(m, story));
    }
    notes
}

/// The text of a hold or resume: who and what, then progress or the summary,
/// one entry per paragraph (lists inside an entry are `\n`-separated lines).
pub fn operation_lines(m: &dyn Markup, op: &Operation) -> Vec<String> {
    let verb = match op.kind {
        Kind::Hold => "Hold",
        Kind::Resume => "Resume",
    };
    let total = op.items.len();
    let done = op.count(|o| *o != Outcome::Planned);
    let mut lines = vec![format!(
        "{} {} by {}{}",
        m.bold(&format!("{verb} {}", m.text(&op.target, 200))),
        m.code(&op.id, 40),
        m.user(&op.by),
        op.reason
            .as_deref()
            .map(|r| format!(": {}", m.text(r, 500)))
            .unwrap_or_default()
    )];
    if let Some(at) = op.resume_at {
        lines.push(format!("⏰ Resumes by itself {}.", m.when(at)));
    }
    if op.phase != Phase::Done {
        lines.push(format!("⏳ {done}/{total} CronJobs done…"));
        return lines;
    }
    let count = |o: &Outcome| op.count(|x| x == o);
    let held = |before: bool| {
        op.items
            .iter()
            .filter(|i| i.outcome == Outcome::Held && i.suspended_before == before)
            .count()
    };
    let mut summary = match op.kind {
        Kind::Hold => format!(
            "✅ {} suspended, {} already suspended (left alone)",
            held(false),
            held(true)
        ),
        Kind::Resume => format!(
            "✅ {} resumed, {} left suspended (suspended before the hold)",
            count(&Outcome::Resumed),
            count(&Outcome::LeftSuspended)
        ),
    };
    let gone = count(&Outcome::Gone);
    if gone > 0 {
        summary.push_str(&format!(", {gone} deleted meanwhile"));
    }
    lines.push(summary + ".");
    let list = |f: &dyn Fn(&Item) -> Option<String>| -> String {
        op.items
            .iter()
            .filter_map(f)
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let failed = list(&|i| match &i.outcome {
        Outcome::Failed(why) => Some(format!(
            "• {} — {}",
            m.code(&i.key(), 300),
            m.text(why, 200)
        )),
        _ => None,
    });
    if !failed.is_empty() {
        lines.push(format!(
            "❌ {} (not changed; try again):\n{failed}",
            m.bold("Failed")
        ));
    }
    let by_hand = list(&|i| {
        (i.outcome == Outcome::ChangedByHand).then(|| format!("• {}", m.code(&i.key(), 300)))
    });
    if !by_hand.is_empty() {
        lines.push(format!(
            "⚠️ {} (left as they are):\n{by_hand}",
            m.bold("Unsuspended by someone else during the hold")
        ));
    }
    let terminated = list(&|i| {
        (!i.terminated.is_empty()).then(|| {
            let jobs: Vec<String> = i.terminated.iter().map(|j| m.code(j, 100)).collect();
            format!("• {}: {}", m.code(&i.key(), 300), jobs.join(", "))
        })
    });
    if !terminated.is_empty() {
        let title = match op.kind {
            Kind::Hold => format!(
                "🛑 {} ({}):",
                m.bold("Running Jobs terminated"),
                m.code("rerun-bot.io/on-hold: terminate", 100)
            ),
            Kind::Resume => format!(
                "🛑 {} (not recreated; {} asks for one, with approval):",
                m.bold("Jobs the hold terminated"),
                m.bold("Rerun")
            ),
        };
        lines.push(format!("{title}\n{terminated}"));
    }
    if op.kind == Kind::Resume {
        lines.push(
            "A schedule missed during the hold gives at most one catch-up run (Kubernetes semantics)."
                .into(),
        );
    }
    lines
}

/// One-click reruns (the normal four-eyes flow) for what a finished resume's
/// hold terminated: `(action id, button label, CronJob key)`. Action ids are
/// unique within a message: `rerun_cronjob:<n>`.
pub fn resume_reruns(op: &Operation) -> Vec<(String, String, String)> {
    if op.kind != Kind::Resume || op.phase != Phase::Done {
        return Vec::new();
    }
    op.items
        .iter()
        .filter(|i| !i.terminated.is_empty())
        .take(25)
        .enumerate()
        .map(|(n, i)| {
            (
                format!("rerun_cronjob:{n}"),
                crate::core::text::truncate_chars(&format!("Rerun {}", i.name), 75),
                i.key(),
            )
        })
        .collect()
}

/// The one-line summary of a hold or resume (plain text, for notifications).
pub fn operation_summary(op: &Operation) -> String {
    let verb = match op.kind {
        Kind::Hold => "Hold",
        Kind::Resume => "Resume",
    };
    format!(
        "{verb} {}{}: {}/{}",
        op.target,
        if op.phase == Phase::Done { " done" } else { "" },
        op.count(|o| *o != Outcome::Planned),
        op.items.len()
    )
}
