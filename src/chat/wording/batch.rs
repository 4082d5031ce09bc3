//! What a batch card (`/rerun failed`) says, for both renderers.

use super::Markup;
use crate::core::batch::{BatchItem, BatchRequest};
use crate::core::request::State;

/// Items shown on a card; the rest are counted ("…and N more") and listed
/// in the card's thread.
pub const CARD_ITEMS: usize = 40;

/// The card's title (plain text).
pub fn title(b: &BatchRequest) -> String {
    let n = b.counts().included;
    format!(
        "🔁 Rerun {n} failed CronJob{}{}",
        if n == 1 { "" } else { "s" },
        b.namespace
            .as_deref()
            .map(|ns| format!(" in {ns}"))
            .unwrap_or_default()
    )
}

/// One CronJob of the batch: what failed, and, once approved, how its rerun is.
pub fn item_line(m: &dyn Markup, item: &BatchItem) -> String {
    let what = m.code(&item.subject(), 320);
    if let Some(skip) = &item.skipped {
        return format!("• {what} — skipped: {}", m.text(&skip.to_string(), 300));
    }
    let mut failed = match &item.failed_job {
        Some(job) => format!("failed Job {}", m.code(job, 100)),
        None => "failed".to_string(),
    };
    if let Some(reason) = &item.reason {
        failed.push_str(&format!(": {}", m.text(reason, 100)));
    }
    if let Some(exit) = item.exit_code {
        failed.push_str(&format!(", exit code {exit}"));
    }
    if item.failures > 1 {
        failed.push_str(&format!(" ({} failures in a row)", item.failures));
    }
    let job = item
        .job
        .as_deref()
        .map(|j| format!(" {}", m.code(j, 100)))
        .unwrap_or_default();
    let note = item
        .note
        .as_deref()
        .map(|n| format!(": {}", m.text(n, 200)))
        .unwrap_or_default();
    let status = match item.state {
        State::Pending => String::new(),
        State::Approved => " → creating the Job…".into(),
        State::Created => format!(" → 🚀 rerun{job} running"),
        State::Succeeded => format!(" → ✅ rerun{job} succeeded"),
        State::Failed => format!(" → ❌ rerun{job} failed{note}"),
        _ => format!(" → ⚠️ not run{note}"),
    };
    format!("• {what} — {failed}{status}")
}

/// The lines a card shows: included CronJobs first, then the skipped, at
/// most [`CARD_ITEMS`] in all; and how many were left out.
pub fn card_lines(m: &dyn Markup, b: &BatchRequest) -> (Vec<String>, Vec<String>, usize) {
    let included: Vec<&BatchItem> = b.items.iter().filter(|i| i.included()).collect();
    let skipped: Vec<&BatchItem> = b.items.iter().filter(|i| !i.included()).collect();
    let shown_in = included.len().min(CARD_ITEMS);
    let shown_sk = skipped.len().min(CARD_ITEMS - shown_in);
    let more = b.items.len() - shown_in - shown_sk;
    (
        included[..shown_in]
            .iter()
            .map(|i| item_line(m, i))
            .collect(),
        skipped[..shown_sk]
            .iter()
            .map(|i| item_line(m, i))
            .collect(),
        more,
    )
}

/// "…and 12 more", when the card could not list everything.
pub fn more_line(more: usize) -> Option<String> {
    (more > 0).then(|| format!("…and {more} more: the full list is in the thread."))
}

/// Where the batch stands.
pub fn status(m: &dyn Markup, b: &BatchRequest) -> String {
    let c = b.counts();
    let by = |u: &Option<String>| u.as_deref().map(|u| m.user(u)).unwrap_or_default();
    let progress = || {
        let mut parts = Vec::new();
        if c.running > 0 {
            parts.push(format!("{} running", c.running));
        }
        if c.succeeded > 0 {
            parts.push(format!("{} succeeded", c.succeeded));
        }
        if c.failed > 0 {
            parts.push(format!("{} failed", c.failed));
        }
        if c.not_run > 0 {
            parts.push(format!("{} not run", c.not_run));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" {}.", parts.join(", "))
        }
    };
    match b.state {
        State::Pending => format!(
            "⏳ Waiting for approval by someone other than {}. One approval reruns all {}. Expires {}.",
            m.user(&b.requested_by),
            c.included,
            m.when(b.expires_at)
        ),
        State::Approved | State::Created => format!(
            "✅ Approved by {} — {} of {} reruns done.{}",
            by(&b.approved_by),
            c.done(),
            c.included,
            progress()
        ),
        State::Succeeded => format!(
            "✅ All {} reruns succeeded (approved by {}).",
            c.included,
            by(&b.approved_by)
        ),
        State::Failed | State::Aborted => {
            format!("Done (approved by {}):{}", by(&b.approved_by), progress())
        }
        State::Denied => format!("🚫 Denied by {}. Nothing was created.", by(&b.decided_by)),
        State::Cancelled => "Cancelled by the requester. Nothing was created.".into(),
        State::Expired => "⌛ Expired without approval. Nothing was created.".into(),
    }
}
