//! The words of a stop request: a long-run alert's *Stop this run…*, asked,
//! approved by someone else, then the Job is deleted.

use super::Markup;
use crate::core::request::{RerunRequest, State, StopTarget};

/// Where a stop request stands (after *pending*, which reads as a rerun's).
pub fn status(m: &dyn Markup, req: &RerunRequest, stop: &StopTarget) -> String {
    let job = m.code(&stop.job, 253);
    let by = |u: &Option<String>| u.as_deref().map(|u| m.user(u)).unwrap_or_default();
    let note = req
        .note
        .as_deref()
        .map(|n| format!(" ({})", m.text(n, 500)))
        .unwrap_or_default();
    match req.state {
        State::Pending => super::pending(m, req),
        State::Approved => format!(
            "✅ Approved by {} — stopping Job {job}…",
            by(&req.approved_by)
        ),
        State::Created | State::Succeeded | State::Failed => format!(
            "🛑 Job {job} stopped (approved by {}){note}.",
            by(&req.approved_by)
        ),
        State::Denied => format!(
            "🚫 Denied by {}. The Job keeps running.",
            by(&req.decided_by)
        ),
        State::Cancelled => "Cancelled by the requester. The Job keeps running.".into(),
        State::Expired => "⌛ Expired without approval. The Job keeps running.".into(),
        State::Aborted => format!(
            "⚠️ Not stopped: {}.",
            m.text(req.note.as_deref().unwrap_or("?"), 500)
        ),
    }
}

/// What approving does, on the card.
pub fn what_it_does(m: &dyn Markup, stop: &StopTarget) -> String {
    format!(
        "{} Job {} and its pods are deleted (each pod gets its termination grace period). The CronJob's schedule is not changed: its next run starts as usual.",
        m.bold("Approving stops the run:"),
        m.code(&stop.job, 253)
    )
}
