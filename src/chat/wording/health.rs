//! The words of the schedule-health alerts: "⏰ did not start" and
//! "🐢 running for …" (both renderers show the same sentences and fields).

use chrono::Duration;

use super::Markup;
use crate::core::FailureAlert;
use crate::core::alert::{AlertKind, RunEnd};
use crate::core::incident::AlertStory;
use crate::core::slots::{MAX_MISSED, MissReason, short_duration};

fn secs(s: i64) -> String {
    short_duration(Duration::seconds(s))
}

/// The header (plain text) of a missed or long run; `None` for a failure,
/// and for the first alert of an incident that is over (it says so).
pub fn header(alert: &FailureAlert, story: &AlertStory, reply: bool) -> Option<String> {
    if story.recovered.is_some() && !reply {
        return None;
    }
    let what = format!("{}/{}", alert.namespace, alert.cronjob);
    match &alert.kind {
        AlertKind::Failed => None,
        AlertKind::Missed { .. } => Some(format!("⏰ CronJob {what} did not start")),
        AlertKind::Overrun {
            running_for_secs,
            threshold_secs,
            usual_secs,
            ended,
        } => Some(match ended {
            None => {
                let usual = match usual_secs {
                    Some(u) => format!("usually {}", secs(*u)),
                    None => format!("max {}", secs(*threshold_secs)),
                };
                format!(
                    "🐢 CronJob {what} running for {} ({usual})",
                    secs(*running_for_secs)
                )
            }
            Some(end) => format!("🐢 CronJob {what} ran long: {}", ended_text(end)),
        }),
    }
}

fn ended_text(end: &RunEnd) -> String {
    let after = secs(end.after_secs);
    match end.succeeded {
        Some(true) => format!("succeeded after {after}"),
        Some(false) => format!("failed after {after}"),
        None => format!("deleted after {after}"),
    }
}

/// The plain-text summary (notifications, screen readers).
pub fn fallback(alert: &FailureAlert, _story: &AlertStory) -> Option<String> {
    header(alert, &AlertStory::default(), false)
}

/// What happened and why, in a sentence or two (replaces "Reason: …").
pub fn summary(m: &dyn Markup, alert: &FailureAlert) -> Option<String> {
    match &alert.kind {
        AlertKind::Failed => None,
        AlertKind::Missed {
            slot,
            reason,
            grace_secs,
        } => {
            let why = match reason {
                MissReason::StillRunning { job } => format!(
                    "Job {} is still running and {} skips a run while one runs.",
                    m.code(job, 253),
                    m.code("concurrencyPolicy: Forbid", 50)
                ),
                MissReason::TooLate {
                    starting_deadline_seconds,
                } => format!(
                    "It is older than {}: Kubernetes will not start it any more.",
                    m.code(
                        &format!("startingDeadlineSeconds: {starting_deadline_seconds}"),
                        80
                    )
                ),
                MissReason::TooManyMissed { since } => format!(
                    "More than {MAX_MISSED} runs were missed since {}, so Kubernetes gives up on them ({}). {} set {} on the CronJob (e.g. 300).",
                    m.when(*since),
                    m.code("TooManyMissedTimes", 40),
                    m.bold("Fix:"),
                    m.code("startingDeadlineSeconds", 40)
                ),
                MissReason::Unknown => {
                    "Kubernetes created no Job for it (controller down or overloaded, clock skew, or the CronJob changed meanwhile).".to_string()
                }
            };
            Some(format!(
                "{} The run due {} did not start within {}. {why}",
                m.bold("Did not start:"),
                m.when(*slot),
                secs(*grace_secs)
            ))
        }
        AlertKind::Overrun {
            running_for_secs,
            threshold_secs,
            usual_secs,
            ended,
        } => {
            let rule = match usual_secs {
                Some(u) => format!(
                    "its recent successful runs took {} (median); more than {} is alerted",
                    secs(*u),
                    secs(*threshold_secs)
                ),
                None => format!(
                    "{} is {}",
                    m.code("rerun-bot.io/max-duration", 40),
                    secs(*threshold_secs)
                ),
            };
            let mut text = format!(
                "{} Job {} had run for {} when this was posted; {rule}.",
                m.bold("Running too long:"),
                m.code(&alert.job, 253),
                secs(*running_for_secs)
            );
            if let Some(end) = ended {
                let mark = match end.succeeded {
                    Some(true) => "✅",
                    Some(false) => "❌",
                    None => "🗑️",
                };
                text.push_str(&format!(" {mark} It {}.", ended_text(end)));
            }
            Some(text)
        }
    }
}

/// The fields of a missed or long run (the renderer adds schedule,
/// concurrency and owner, as on every alert).
pub fn fields(m: &dyn Markup, alert: &FailureAlert) -> Option<Vec<(&'static str, String)>> {
    match &alert.kind {
        AlertKind::Failed => None,
        AlertKind::Missed {
            slot,
            reason,
            grace_secs,
        } => {
            let mut f = vec![("Due", m.when(*slot)), ("Grace", secs(*grace_secs))];
            if let MissReason::StillRunning { job } = reason {
                f.push(("Still running", m.code(job, 253)));
            }
            Some(f)
        }
        AlertKind::Overrun {
            running_for_secs,
            threshold_secs,
            usual_secs,
            ended,
        } => {
            let mut f = vec![("Job", m.code(&alert.job, 253))];
            if let Some(started) = alert.started_at {
                f.push(("Started", m.when(started)));
            }
            f.push(match ended {
                Some(end) => ("Ended", ended_text(end)),
                None => ("Running for", secs(*running_for_secs)),
            });
            f.push((
                "Usually",
                match usual_secs {
                    Some(u) => secs(*u),
                    None => "unknown".to_string(),
                },
            ));
            f.push(("Alert past", secs(*threshold_secs)));
            Some(f)
        }
    }
}

/// The alert's buttons (action ids and labels) before Hold: while its
/// incident is open, a failure's Rerun and Rerun with changes, a missed run's
/// Run now; a long run's Stop this run while it runs, even once another run
/// closed the incident.
pub fn buttons(
    alert: &FailureAlert,
    story: &AlertStory,
) -> &'static [(&'static str, &'static str)] {
    if story.recovered.is_some() && !matches!(alert.kind, AlertKind::Overrun { ended: None, .. }) {
        return &[];
    }
    match alert.kind {
        AlertKind::Failed => &[
            ("rerun", "Rerun"),
            ("rerun_with_changes", "Rerun with changes…"),
        ],
        AlertKind::Missed { .. } => &[("rerun", "Run now")],
        AlertKind::Overrun { ended: None, .. } => &[("stop_run", "Stop this run…")],
        AlertKind::Overrun { .. } => &[],
    }
}
