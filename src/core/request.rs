//! A rerun request and its life.
//!
//! ```text
//! Pending ──approve──▶ Approved ──Job created──▶ Created ──▶ Succeeded | Failed
//!    │                    └──────cannot create──────▶ Aborted
//!    ├──deny──▶ Denied   ├──cancel──▶ Cancelled   └──TTL──▶ Expired
//! ```
//!
//! [`transition`] is the only way a state changes; it takes the time and the
//! caller's permission as arguments and answers a new request or a [`Refusal`]
//! in words for the person who clicked. The store writes the result with a
//! compare-and-swap, so two clicks can never both win.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::overrides::{Diff, Overrides};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    #[default]
    Pending,
    /// Written before the Job is created; a restart finishes it.
    Approved,
    Created,
    Succeeded,
    Failed,
    Denied,
    Cancelled,
    Expired,
    /// Approved, but the Job could not be created (CronJob gone, held, …).
    Aborted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Created => "created",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Denied => "denied",
            State::Cancelled => "cancelled",
            State::Expired => "expired",
            State::Aborted => "aborted",
        }
    }

    /// No click changes it any more.
    /// Nothing more happens to a request in this state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Succeeded
                | State::Failed
                | State::Denied
                | State::Cancelled
                | State::Expired
                | State::Aborted
        )
    }

    pub fn is_decided(self) -> bool {
        self != State::Pending
    }
}

/// Everything about one request; stored as is, shown on the approval card.
/// `Default` is an empty pending request, for building one field by field.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RerunRequest {
    /// Lowercase alphanumerics; the suffix of the Job name.
    pub id: String,
    pub namespace: String,
    pub cronjob: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub reason: String,
    pub ticket: Option<String>,
    /// The ticket's link (`RERUN_BOT_TICKET_URL` when requested), shown on cards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_url: Option<String>,
    pub overrides: Overrides,
    pub diff: Diff,
    /// The failed Job the request is about, when it came from an alert.
    pub source_job: Option<String>,
    /// The alert's key (the failed Job's uid), to update the alert.
    pub alert: Option<String>,
    /// The CronJob's `jobTemplate` when requested: approval refuses if it changed.
    pub template: serde_json::Value,
    /// Where the card goes, and the thread it sits in (the alert's), if any.
    pub channel: String,
    pub thread_ts: Option<String>,
    /// The card's ts once posted.
    pub card_ts: Option<String>,
    pub state: State,
    pub approved_by: Option<String>,
    /// Who denied or cancelled.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The Job's name once created (deterministic: see `overrides::job_name`).
    pub job: Option<String>,
    /// Why it was aborted or how the Job failed.
    pub note: Option<String>,
    /// The approver confirmed a rerun of a held CronJob.
    #[serde(default)]
    pub hold_override: bool,
    /// Set when an approval met a maintenance hold: the card then offers
    /// *Approve during hold*.
    #[serde(default)]
    pub held: Option<String>,
    /// The batch (`/rerun failed`) this request is one CronJob of; such a
    /// request is approved with its batch and has no card of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// Set on a request to stop a running Job (a long-run alert's *Stop this
    /// run…*): approval deletes that Job instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopTarget>,
}

/// The running Job a stop request is about. The uid makes the delete exact:
/// a later Job of the same name is never deleted by an old approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopTarget {
    pub job: String,
    pub uid: String,
}

impl RerunRequest {
    pub fn subject(&self) -> String {
        format!("{}/{}", self.namespace, self.cronjob)
    }

    /// What the request asks for, as the audit's action prefix and in words:
    /// `rerun` or `stop`.
    pub fn noun(&self) -> &'static str {
        if self.stop.is_some() { "stop" } else { "rerun" }
    }

    /// The thread where progress goes: the alert's, else the card's own.
    pub fn thread(&self) -> Option<&str> {
        self.thread_ts.as_deref().or(self.card_ts.as_deref())
    }
}

/// What happens to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `allowed`: the approver is on `RERUN_BOT_APPROVERS` (the app resolved groups).
    Approve {
        by: String,
        allowed: bool,
        hold_override: bool,
    },
    Deny {
        by: String,
        allowed: bool,
    },
    Cancel {
        by: String,
    },
    Expire,
    Created {
        job: String,
    },
    Finished {
        succeeded: bool,
        note: Option<String>,
    },
    Abort {
        why: String,
    },
}

impl Event {
    /// What a person tried, for the audit of a refusal.
    pub fn verb(&self) -> &'static str {
        match self {
            Event::Approve { .. } => "approve",
            Event::Deny { .. } => "deny",
            Event::Cancel { .. } => "cancel",
            Event::Expire => "expire",
            Event::Created { .. } => "create",
            Event::Finished { .. } => "finish",
            Event::Abort { .. } => "abort",
        }
    }
}

/// Why a click changes nothing; the text is for the person who clicked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("You asked for this, so someone else has to approve it (four-eyes rule).")]
    OwnRequest,
    #[error("You are not on the list of people allowed to {what} (RERUN_BOT_APPROVERS).")]
    NotAllowed { what: &'static str },
    #[error("Only the requester <@{requester}> can cancel this request.")]
    NotRequester { requester: String },
    #[error("This request expired at {at}. Ask again if the rerun is still needed.")]
    Expired { at: String },
    #[error("This request is already {state}{by}.")]
    AlreadyDecided { state: &'static str, by: String },
    #[error("This request is {state}; that does not apply to it.")]
    WrongState { state: &'static str },
}

fn already(req: &RerunRequest) -> Refusal {
    let by = req
        .approved_by
        .as_deref()
        .or(req.decided_by.as_deref())
        .map(|u| format!(" by <@{u}>"))
        .unwrap_or_default();
    Refusal::AlreadyDecided {
        state: req.state.as_str(),
        by,
    }
}

/// The request after `event` at `now`, or why not.
pub fn transition(
    req: &RerunRequest,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<RerunRequest, Refusal> {
    let mut next = req.clone();
    let pending_and_fresh = |req: &RerunRequest| {
        if req.state != State::Pending {
            return Err(already(req));
        }
        if now >= req.expires_at {
            return Err(Refusal::Expired {
                at: req.expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            });
        }
        Ok(())
    };
    match event {
        Event::Approve {
            by,
            allowed,
            hold_override,
        } => {
            pending_and_fresh(req)?;
            if *by == req.requested_by {
                return Err(Refusal::OwnRequest);
            }
            if !allowed {
                return Err(Refusal::NotAllowed {
                    what: if req.stop.is_some() {
                        "approve stopping runs"
                    } else {
                        "approve reruns"
                    },
                });
            }
            next.state = State::Approved;
            next.approved_by = Some(by.clone());
            next.decided_at = Some(now);
            next.hold_override = *hold_override;
        }
        Event::Deny { by, allowed } => {
            pending_and_fresh(req)?;
            if *by == req.requested_by {
                return Err(Refusal::WrongState {
                    state: "your own request: use Cancel",
                });
            }
            if !allowed {
                return Err(Refusal::NotAllowed {
                    what: if req.stop.is_some() {
                        "deny stopping runs"
                    } else {
                        "deny reruns"
                    },
                });
            }
            next.state = State::Denied;
            next.decided_by = Some(by.clone());
            next.decided_at = Some(now);
        }
        Event::Cancel { by } => {
            if req.state != State::Pending {
                return Err(already(req));
            }
            if *by != req.requested_by {
                return Err(Refusal::NotRequester {
                    requester: req.requested_by.clone(),
                });
            }
            next.state = State::Cancelled;
            next.decided_by = Some(by.clone());
            next.decided_at = Some(now);
        }
        Event::Expire => {
            if req.state != State::Pending {
                return Err(already(req));
            }
            if now < req.expires_at {
                return Err(Refusal::WrongState { state: "not due" });
            }
            next.state = State::Expired;
            next.decided_at = Some(now);
        }
        Event::Created { job } => {
            if req.state != State::Approved {
                return Err(Refusal::WrongState {
                    state: req.state.as_str(),
                });
            }
            next.state = State::Created;
            next.job = Some(job.clone());
        }
        Event::Finished { succeeded, note } => {
            if req.state != State::Created {
                return Err(Refusal::WrongState {
                    state: req.state.as_str(),
                });
            }
            next.state = if *succeeded {
                State::Succeeded
            } else {
                State::Failed
            };
            next.note = note.clone();
        }
        Event::Abort { why } => {
            if req.state != State::Approved {
                return Err(Refusal::WrongState {
                    state: req.state.as_str(),
                });
            }
            next.state = State::Aborted;
            next.note = Some(why.clone());
        }
    }
    Ok(next)
}

/// What the cluster says at approval time.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts<'a> {
    /// The CronJob's current `jobTemplate`, `None` when the CronJob is gone.
    pub template: Option<&'a serde_json::Value>,
    /// `spec.concurrencyPolicy` (`Allow` when unset).
    pub concurrency_policy: &'a str,
    /// Names of the CronJob's running Jobs (reruns included).
    pub running: &'a [String],
    /// The hold id when a maintenance hold covers the CronJob.
    pub held: Option<&'a str>,
}

/// Why an approval cannot create the Job now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Blocker {
    #[error("The CronJob no longer exists; nothing was created.")]
    CronJobGone,
    #[error(
        "The CronJob's job template changed since this request was made; nothing was created. Please ask again so the approver sees what will run."
    )]
    TemplateChanged,
    #[error(
        "The CronJob is on a maintenance hold (`{hold}`); nothing was created. To rerun it during the hold anyway, use *Approve during hold* on the card."
    )]
    Held { hold: String },
    #[error(
        "The CronJob's concurrencyPolicy is {policy} and {} is running; nothing was created. Try again when it has finished.",
        jobs.iter().map(|j| format!("`{j}`")).collect::<Vec<_>>().join(", ")
    )]
    Running { policy: String, jobs: Vec<String> },
}

/// The first reason not to create the Job, if any. A held CronJob blocks
/// unless the approver confirmed (`hold_override`).
pub fn approval_blocker(req: &RerunRequest, facts: &Facts<'_>) -> Option<Blocker> {
    let Some(template) = facts.template else {
        return Some(Blocker::CronJobGone);
    };
    if *template != req.template {
        return Some(Blocker::TemplateChanged);
    }
    if let Some(hold) = facts.held
        && !req.hold_override
    {
        return Some(Blocker::Held {
            hold: hold.to_string(),
        });
    }
    if matches!(facts.concurrency_policy, "Forbid" | "Replace") && !facts.running.is_empty() {
        return Some(Blocker::Running {
            policy: facts.concurrency_policy.to_string(),
            jobs: facts.running.to_vec(),
        });
    }
    None
}

/// A request id: `n` in base 36, lowercase, at least 8 characters.
pub fn id_from(n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut n = n;
    let mut out = Vec::new();
    while n > 0 || out.len() < 8 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    fn request() -> RerunRequest {
        RerunRequest {
            id: "abc12345".into(),
            namespace: "default".into(),
            cronjob: "billing-sync".into(),
            requested_by: "U_ALICE".into(),
            requested_at: t(0),
            expires_at: t(60),
            reason: "db was down".into(),
            ticket: None,
            overrides: Overrides::default(),
            diff: Diff {
                container: "main".into(),
                args: None,
                env: vec![],
            },
            template: serde_json::json!({"spec": {"backoffLimit": 1}}),
            channel: "C1".into(),
            ..RerunRequest::default()
        }
    }

    fn approve(by: &str, allowed: bool) -> Event {
        Event::Approve {
            by: by.into(),
            allowed,
            hold_override: false,
        }
    }

    #[test]
    fn transitions_from_pending() {
        let cases: Vec<(Event, i64, Result<State, &str>)> = vec![
            (approve("U_BOB", true), 1, Ok(State::Approved)),
            (approve("U_ALICE", true), 1, Err("someone else")),
            (approve("U_BOB", false), 1, Err("allowed to approve")),
            (approve("U_BOB", true), 60, Err("expired")),
            (
                Event::Deny {
                    by: "U_BOB".into(),
                    allowed: true,
                },
                1,
                Ok(State::Denied),
            ),
            (
                Event::Deny {
                    by: "U_ALICE".into(),
                    allowed: true,
                },
                1,
                Err("use Cancel"),
            ),
            (
                Event::Cancel {
                    by: "U_ALICE".into(),
                },
                1,
                Ok(State::Cancelled),
            ),
            (
                Event::Cancel { by: "U_BOB".into() },
                1,
                Err("Only the requester"),
            ),
            (Event::Expire, 59, Err("not due")),
            (Event::Expire, 60, Ok(State::Expired)),
            (
                Event::Created { job: "x".into() },
                1,
                Err("pending; that does not apply"),
            ),
        ];
        for (event, at, want) in cases {
            let got = transition(&request(), &event, t(at));
            match (got, want) {
                (Ok(next), Ok(state)) => assert_eq!(next.state, state, "{event:?}"),
                (Err(refusal), Err(text)) => {
                    assert!(refusal.to_string().contains(text), "{event:?}: {refusal}")
                }
                (got, want) => panic!("{event:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_request_is_approved_once_and_runs_once() {
        let approved = transition(&request(), &approve("U_BOB", true), t(1)).unwrap();
        assert_eq!(approved.approved_by.as_deref(), Some("U_BOB"));
        let again = transition(&approved, &approve("U_CAROL", true), t(2)).unwrap_err();
        assert_eq!(
            again.to_string(),
            "This request is already approved by <@U_BOB>."
        );
        assert!(
            transition(
                &approved,
                &Event::Cancel {
                    by: "U_ALICE".into()
                },
                t(2)
            )
            .is_err()
        );
        let created = transition(
            &approved,
            &Event::Created {
                job: "billing-sync-rerun-abc12345".into(),
            },
            t(2),
        )
        .unwrap();
        assert!(
            transition(&created, &Event::Created { job: "y".into() }, t(3)).is_err(),
            "a second Job is never recorded"
        );
        let done = transition(
            &created,
            &Event::Finished {
                succeeded: false,
                note: Some("BackoffLimitExceeded".into()),
            },
            t(5),
        )
        .unwrap();
        assert_eq!(done.state, State::Failed);
        let aborted = transition(&approved, &Event::Abort { why: "gone".into() }, t(2)).unwrap();
        assert_eq!(aborted.state, State::Aborted);
        assert!(transition(&request(), &Event::Abort { why: "x".into() }, t(1)).is_err());
    }

    #[test]
    fn blockers() {
        let req = request();
        let same = req.template.clone();
        let other = serde_json::json!({"spec": {"backoffLimit": 2}});
        let running = vec!["billing-sync-29000000".to_string()];
        let facts = |template, policy, running: &'static [String], held| Facts {
            template,
            concurrency_policy: policy,
            running,
            held,
        };
        let running: &'static [String] = Box::leak(running.into_boxed_slice());
        assert_eq!(
            approval_blocker(&req, &facts(None, "Allow", &[], None)),
            Some(Blocker::CronJobGone)
        );
        assert_eq!(
            approval_blocker(&req, &facts(Some(&other), "Allow", &[], None)),
            Some(Blocker::TemplateChanged)
        );
        assert_eq!(
            approval_blocker(&req, &facts(Some(&same), "Allow", running, None)),
            None
        );
        for policy in ["Forbid", "Replace"] {
            let b = approval_blocker(&req, &facts(Some(&same), policy, running, None)).unwrap();
            assert!(
                b.to_string().contains("`billing-sync-29000000` is running"),
                "{b}"
            );
        }
        assert!(matches!(
            approval_blocker(&req, &facts(Some(&same), "Allow", &[], Some("h1"))),
            Some(Blocker::Held { .. })
        ));
        let confirmed = RerunRequest {
            hold_override: true,
            ..req
        };
        assert_eq!(
            approval_blocker(&confirmed, &facts(Some(&same), "Allow", &[], Some("h1"))),
            None
        );
    }

    #[test]
    fn ids_are_lowercase_alphanumerics() {
        assert_eq!(id_from(0), "00000000");
        assert_eq!(id_from(35), "0000000z");
        let big = id_from(u64::MAX);
        assert_eq!(big, "3w5e11264sgsf");
        assert!(
            big.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
    }
}
