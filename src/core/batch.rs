//! Rerun many with one approval (`/rerun failed`, the storm digest's
//! *Rerun all failed…*).
//!
//! A [`BatchRequest`] lists every CronJob with an open incident whose last
//! failure is recent enough, each with its failed Job and reason; CronJobs that
//! cannot be rerun now (held, deleted, a running Job under `Forbid`) are listed
//! as skipped, with why. It is decided like a single request — the same
//! [`State`]s, four-eyes rule and [`Refusal`]s, by [`transition`] — and once
//! approved becomes one child [`RerunRequest`]
//! per included CronJob, already approved, under an id derived from the batch
//! id and the item's index ([`BatchRequest::child_id`]): inserting a child is
//! idempotent, and the child's Job name is deterministic, so each CronJob gets
//! exactly one Job whatever the clicks and restarts. The children report back
//! into their item ([`record_item`]); the batch ends when all of them did.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alert::{FailureAlert, ThreadState};
use super::request::{self, Event, Refusal, RerunRequest, State};

/// Most CronJobs one batch reruns; more are listed as skipped (child ids
/// have three digits for the index).
pub const MAX_ITEMS: usize = 500;

/// Why a CronJob with an open incident is not rerun by the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum Skip {
    /// A maintenance hold covers it.
    Held { hold: String },
    /// The CronJob no longer exists.
    Deleted,
    /// `concurrencyPolicy` Forbid (or Replace) and a Job of it is running.
    Running { policy: String, jobs: Vec<String> },
    /// The batch has [`MAX_ITEMS`] already.
    TooMany,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Held { hold } => write!(f, "on maintenance hold `{hold}`"),
            Skip::Deleted => write!(f, "the CronJob was deleted"),
            Skip::Running { policy, jobs } => write!(
                f,
                "concurrencyPolicy {policy} and {} is running",
                jobs.iter()
                    .take(3)
                    .map(|j| format!("`{j}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Skip::TooMany => write!(
                f,
                "more than {MAX_ITEMS} CronJobs in one batch; ask again for the rest"
            ),
        }
    }
}

/// One CronJob of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    pub namespace: String,
    pub cronjob: String,
    /// The failed Job of its incident (the latest alerted one), if known.
    pub failed_job: Option<String>,
    /// That Job's uid: the alert the child request updates.
    pub alert: Option<String>,
    /// Why it failed (`BackoffLimitExceeded`, …).
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub failed_at: DateTime<Utc>,
    /// Failures in its open incident.
    pub failures: u32,
    /// Not rerun, and why; set when asked, or when the approval met it.
    pub skipped: Option<Skip>,
    /// Its child request's state once approved (`Pending` before).
    #[serde(default)]
    pub state: State,
    /// The rerun Job's name once created.
    #[serde(default)]
    pub job: Option<String>,
    /// How its Job failed or why it was not run.
    #[serde(default)]
    pub note: Option<String>,
}

impl BatchItem {
    pub fn subject(&self) -> String {
        format!("{}/{}", self.namespace, self.cronjob)
    }

    /// Rerun by the batch (not skipped).
    pub fn included(&self) -> bool {
        self.skipped.is_none()
    }
}

/// A request to rerun many CronJobs, with one approval.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BatchRequest {
    /// Lowercase alphanumerics, like a request id.
    pub id: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub reason: String,
    pub ticket: Option<String>,
    #[serde(default)]
    pub ticket_url: Option<String>,
    /// Failures since this time were asked for (`--since`).
    pub since: DateTime<Utc>,
    /// `-n`: only this namespace.
    pub namespace: Option<String>,
    /// Where the card is, and the thread it was asked in, if any.
    pub channel: String,
    pub thread_ts: Option<String>,
    pub card_ts: Option<String>,
    pub state: State,
    pub approved_by: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// By namespace and CronJob; the index is part of each child's id.
    pub items: Vec<BatchItem>,
}

/// How far a batch is, for its card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// CronJobs rerun by the batch (not skipped when asked).
    pub included: usize,
    /// Skipped when asked.
    pub skipped: usize,
    /// Jobs created and running.
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Approved, but not run (held, deleted, … at approval).
    pub not_run: usize,
}

impl Counts {
    /// Included CronJobs whose rerun is over (however it ended).
    pub fn done(&self) -> usize {
        self.succeeded + self.failed + self.not_run
    }
}

impl BatchRequest {
    /// The thread where progress goes: the one it was asked in, else the card's.
    pub fn thread(&self) -> Option<&str> {
        self.thread_ts.as_deref().or(self.card_ts.as_deref())
    }

    /// The id of the child request of item `index`: the batch id and the
    /// index, so the child (and its Job name, which takes the first 8
    /// characters: the batch id) is the same after any restart.
    pub fn child_id(&self, index: usize) -> String {
        format!("{}{index:03}", self.id)
    }

    /// The item a child request id names.
    pub fn index_of(&self, child_id: &str) -> Option<usize> {
        let index: usize = child_id.strip_prefix(&self.id)?.parse().ok()?;
        (index < self.items.len()).then_some(index)
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for item in &self.items {
            if item.state == State::Aborted {
                c.included += 1;
                c.not_run += 1;
                continue;
            }
            if !item.included() {
                c.skipped += 1;
                continue;
            }
            c.included += 1;
            match item.state {
                State::Created => c.running += 1,
                State::Succeeded => c.succeeded += 1,
                State::Failed => c.failed += 1,
                _ => {}
            }
        }
        c
    }

    /// A stand-in request with the batch's decision fields, so deciding a
    /// batch is deciding a request.
    fn as_request(&self) -> RerunRequest {
        RerunRequest {
            id: self.id.clone(),
            requested_by: self.requested_by.clone(),
            requested_at: self.requested_at,
            expires_at: self.expires_at,
            state: self.state,
            approved_by: self.approved_by.clone(),
            decided_by: self.decided_by.clone(),
            decided_at: self.decided_at,
            ..RerunRequest::default()
        }
    }
}

/// The batch after a decision (`Approve`, `Deny`, `Cancel`, `Expire`) at
/// `now`, or why not — the rules of a single request, word for word.
pub fn transition(
    batch: &BatchRequest,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<BatchRequest, Refusal> {
    match event {
        Event::Approve {
            hold_override: true,
            ..
        } => {
            return Err(Refusal::WrongState {
                state: "a batch: held CronJobs are skipped, rerun them one by one",
            });
        }
        Event::Approve { .. } | Event::Deny { .. } | Event::Cancel { .. } | Event::Expire => {}
        _ => {
            return Err(Refusal::WrongState {
                state: batch.state.as_str(),
            });
        }
    }
    let decided = request::transition(&batch.as_request(), event, now)?;
    let mut next = batch.clone();
    next.state = decided.state;
    next.approved_by = decided.approved_by;
    next.decided_by = decided.decided_by;
    next.decided_at = decided.decided_at;
    Ok(next)
}

fn rank(state: State) -> u8 {
    match state {
        State::Pending => 0,
        State::Approved => 1,
        State::Created => 2,
        _ => 3,
    }
}

/// The batch after item `index`'s child request reached `state` (with its
/// Job and note); `None` when that changes nothing (the item is there
/// already, or further). When every included item is over, an approved
/// batch ends: `Succeeded` if every rerun succeeded, else `Failed`.
pub fn record_item(
    batch: &BatchRequest,
    index: usize,
    state: State,
    job: Option<&str>,
    note: Option<&str>,
) -> Option<BatchRequest> {
    let item = batch.items.get(index)?;
    if !item.included() || rank(state) <= rank(item.state) || batch.state != State::Approved {
        return None;
    }
    let mut next = batch.clone();
    let it = &mut next.items[index];
    it.state = state;
    if let Some(job) = job {
        it.job = Some(job.to_string());
    }
    if let Some(note) = note {
        it.note = Some(note.to_string());
    }
    let c = next.counts();
    if c.done() == c.included {
        next.state = if c.succeeded == c.included {
            State::Succeeded
        } else {
            State::Failed
        };
    }
    Some(next)
}

/// A CronJob with an open incident recent enough for a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub namespace: String,
    pub cronjob: String,
    pub failures: u32,
    pub last_failure_at: DateTime<Utc>,
    /// Its latest alerted failure.
    pub alert: Option<FailureAlert>,
}

/// `(namespace, cronjob)` of a thread key: `ns/cronjob` (Slack) or
/// `teams/ns/cronjob` (Teams). CronJob and namespace names have no `/`.
pub fn thread_subject(key: &str) -> Option<(&str, &str)> {
    let rest = match key.matches('/').count() {
        1 => key,
        2 => key.strip_prefix("teams/")?,
        _ => return None,
    };
    rest.split_once('/')
}

/// Every CronJob with an open incident (on any platform, once) whose last
/// failure is at or after `since`, in `namespace` if given, with its latest
/// alerted failure; by namespace and name.
pub fn candidates(
    threads: &[(String, ThreadState)],
    alerts: &[FailureAlert],
    since: DateTime<Utc>,
    namespace: Option<&str>,
) -> Vec<Candidate> {
    let mut open: BTreeMap<(String, String), Candidate> = BTreeMap::new();
    for (key, thread) in threads {
        let Some((ns, cj)) = thread_subject(key) else {
            continue;
        };
        let last = thread.last_failure_at.unwrap_or(thread.opened_at);
        if thread.recovered.is_some() || last < since || namespace.is_some_and(|n| n != ns) {
            continue;
        }
        let entry = open
            .entry((ns.to_string(), cj.to_string()))
            .or_insert_with(|| Candidate {
                namespace: ns.to_string(),
                cronjob: cj.to_string(),
                failures: 0,
                last_failure_at: last,
                alert: None,
            });
        entry.failures = entry.failures.max(thread.failures);
        entry.last_failure_at = entry.last_failure_at.max(last);
    }
    for alert in alerts {
        if let Some(c) = open.get_mut(&(alert.namespace.clone(), alert.cronjob.clone()))
            && c.alert
                .as_ref()
                .is_none_or(|a| alert.failed_at > a.failed_at)
        {
            c.alert = Some(alert.clone());
        }
    }
    open.into_values().collect()
}

/// What the cluster says about a candidate's CronJob when the batch is asked
/// (and again when it is approved).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CronJobFacts {
    /// The maintenance hold covering it.
    pub held: Option<String>,
    /// `spec.concurrencyPolicy`.
    pub concurrency_policy: String,
    /// Its running Jobs (only looked up under Forbid or Replace).
    pub running: Vec<String>,
}

/// Why the CronJob cannot be rerun now (`facts` `None`: it is gone), the
/// rules of a single approval ([`request::approval_blocker`]).
pub fn skip_for(facts: Option<&CronJobFacts>) -> Option<Skip> {
    let Some(f) = facts else {
        return Some(Skip::Deleted);
    };
    if let Some(hold) = &f.held {
        return Some(Skip::Held { hold: hold.clone() });
    }
    if matches!(f.concurrency_policy.as_str(), "Forbid" | "Replace") && !f.running.is_empty() {
        return Some(Skip::Running {
            policy: f.concurrency_policy.clone(),
            jobs: f.running.clone(),
        });
    }
    None
}

/// The items of a batch: one per candidate, skipped when `facts` say so or
/// when [`MAX_ITEMS`] are included already.
pub fn items(
    candidates: &[Candidate],
    mut facts: impl FnMut(&Candidate) -> Option<CronJobFacts>,
) -> Vec<BatchItem> {
    let mut included = 0;
    candidates
        .iter()
        .map(|c| {
            let mut skipped = skip_for(facts(c).as_ref());
            if skipped.is_none() {
                if included >= MAX_ITEMS {
                    skipped = Some(Skip::TooMany);
                } else {
                    included += 1;
                }
            }
            BatchItem {
                namespace: c.namespace.clone(),
                cronjob: c.cronjob.clone(),
                failed_job: c.alert.as_ref().map(|a| a.job.clone()),
                alert: c.alert.as_ref().map(|a| a.job_uid.clone()),
                reason: c.alert.as_ref().map(|a| a.reason.clone()),
                exit_code: c
                    .alert
                    .as_ref()
                    .and_then(|a| a.exit.as_ref())
                    .map(|e| e.exit_code),
                failed_at: c.last_failure_at,
                failures: c.failures,
                skipped,
                state: State::Pending,
                job: None,
                note: None,
            }
        })
        .collect()
}

/// A batch of `n` CronJobs with the longest names, half of them skipped: for
/// the renderers' bound tests.
#[cfg(test)]
pub fn big_batch(n: usize) -> BatchRequest {
    let now = chrono::DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    BatchRequest {
        id: "abcd1234".into(),
        requested_by: "U_ALICE".into(),
        requested_at: now,
        expires_at: now,
        reason: "<!channel> ".repeat(400),
        ticket: Some("INC-1".into()),
        since: now,
        channel: "C1".into(),
        items: (0..n)
            .map(|i| BatchItem {
                namespace: format!("n{i:03}{}", "x".repeat(58)),
                cronjob: format!("c{i:03}{}", "y".repeat(240)),
                failed_job: Some(format!("j{i:03}{}", "z".repeat(59))),
                alert: Some(format!("uid-{i}")),
                reason: Some("BackoffLimitExceeded `*<b>*`".repeat(10)),
                exit_code: Some(137),
                failed_at: now,
                failures: 3,
                skipped: (i % 2 == 1).then(|| Skip::Running {
                    policy: "Forbid".into(),
                    jobs: vec!["r".repeat(63); 5],
                }),
                state: State::Pending,
                job: None,
                note: None,
            })
            .collect(),
        ..BatchRequest::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::incident::Recovery;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    fn thread(last: i64, failures: u32, recovered: bool) -> ThreadState {
        ThreadState {
            channel: "C1".into(),
            posted_in: "C1".into(),
            ts: "1.1".into(),
            parent_job_uid: "uid".into(),
            opened_at: t(last - 10),
            failures,
            last_failure_at: Some(t(last)),
            recovered: recovered.then(|| Recovery {
                job: "x-1".into(),
                at: t(last + 1),
                failures,
                by_rerun: false,
            }),
            ..ThreadState::default()
        }
    }

    fn alert(ns: &str, cj: &str, job: &str, at: i64) -> FailureAlert {
        FailureAlert {
            namespace: ns.into(),
            cronjob: cj.into(),
            job: job.into(),
            job_uid: format!("uid-{job}"),
            owner: None,
            reason: "BackoffLimitExceeded".into(),
            message: String::new(),
            failed_pods: 1,
            backoff_limit: Some(0),
            started_at: None,
            failed_at: t(at),
            schedule: None,
            time_zone: None,
            next_run: None,
            schedule_problem: None,
            concurrency_policy: None,
            suspended: false,
            cronjob_missing: false,
            rerun_request: None,
            exit: None,
            log: Default::default(),
            failed_indexes: None,
            kind: Default::default(),
        }
    }

    fn batch(items: Vec<BatchItem>) -> BatchRequest {
        BatchRequest {
            id: "abcd1234".into(),
            requested_by: "U_ALICE".into(),
            requested_at: t(0),
            expires_at: t(60),
            reason: "db was down".into(),
            since: t(-1440),
            channel: "C1".into(),
            items,
            ..BatchRequest::default()
        }
    }

    fn item(cj: &str, skipped: Option<Skip>) -> BatchItem {
        items(
            &[Candidate {
                namespace: "default".into(),
                cronjob: cj.into(),
                failures: 1,
                last_failure_at: t(0),
                alert: None,
            }],
            |_| Some(CronJobFacts::default()),
        )
        .pop()
        .map(|i| BatchItem { skipped, ..i })
        .unwrap()
    }

    #[test]
    fn thread_keys_name_their_cronjob() {
        let cases = [
            ("default/billing-sync", Some(("default", "billing-sync"))),
            (
                "teams/default/billing-sync",
                Some(("default", "billing-sync")),
            ),
            // A namespace called `teams`, on Slack.
            ("teams/billing", Some(("teams", "billing"))),
            ("teams/teams/billing", Some(("teams", "billing"))),
            ("nonsense", None),
            ("a/b/c", None),
            ("x/y/z/w", None),
        ];
        for (key, want) in cases {
            assert_eq!(thread_subject(key), want, "{key}");
        }
    }

    #[test]
    fn candidates_are_open_recent_incidents_once_each_with_their_latest_failure() {
        let threads = vec![
            ("default/a".to_string(), thread(-5, 2, false)),
            // The same CronJob's Teams thread: one candidate, not two.
            ("teams/default/a".to_string(), thread(-4, 3, false)),
            ("default/recovered".to_string(), thread(-5, 1, true)),
            ("default/old".to_string(), thread(-200, 1, false)),
            ("other/b".to_string(), thread(-1, 1, false)),
        ];
        let alerts = vec![
            alert("default", "a", "a-1", -30),
            alert("default", "a", "a-2", -4),
            alert("default", "a", "a-0", -60),
            alert("other", "b", "b-1", -1),
            alert("default", "unrelated", "u-1", -1),
        ];
        let got = candidates(&threads, &alerts, t(-60), None);
        let names: Vec<_> = got
            .iter()
            .map(|c| {
                (
                    c.subject(),
                    c.failures,
                    c.alert.as_ref().map(|a| a.job.as_str()),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("default/a".to_string(), 3, Some("a-2")),
                ("other/b".to_string(), 1, Some("b-1")),
            ]
        );
        assert_eq!(got[0].last_failure_at, t(-4));
        let only = candidates(&threads, &alerts, t(-60), Some("other"));
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].cronjob, "b");
        assert!(candidates(&threads, &alerts, t(0), None).is_empty());
        assert!(candidates(&[], &alerts, t(-60), None).is_empty());
    }

    impl Candidate {
        fn subject(&self) -> String {
            format!("{}/{}", self.namespace, self.cronjob)
        }
    }

    #[test]
    fn skips_say_why() {
        let facts = |held: Option<&str>, policy: &str, running: &[&str]| CronJobFacts {
            held: held.map(Into::into),
            concurrency_policy: policy.into(),
            running: running.iter().map(|s| s.to_string()).collect(),
        };
        let cases: Vec<(Option<CronJobFacts>, Option<&str>)> = vec![
            (None, Some("the CronJob was deleted")),
            (
                Some(facts(Some("hold-1"), "Allow", &[])),
                Some("on maintenance hold `hold-1`"),
            ),
            (
                Some(facts(None, "Forbid", &["a-9"])),
                Some("concurrencyPolicy Forbid and `a-9` is running"),
            ),
            (
                Some(facts(None, "Replace", &["a-9"])),
                Some("concurrencyPolicy Replace and `a-9` is running"),
            ),
            (Some(facts(None, "Allow", &["a-9"])), None),
            (Some(facts(None, "Forbid", &[])), None),
        ];
        for (f, want) in cases {
            assert_eq!(
                skip_for(f.as_ref()).map(|s| s.to_string()).as_deref(),
                want,
                "{f:?}"
            );
        }
    }

    #[test]
    fn items_beyond_the_limit_are_skipped() {
        let many: Vec<Candidate> = (0..MAX_ITEMS + 2)
            .map(|n| Candidate {
                namespace: "default".into(),
                cronjob: format!("cj-{n:04}"),
                failures: 1,
                last_failure_at: t(0),
                alert: Some(alert("default", &format!("cj-{n:04}"), "j", 0)),
            })
            .collect();
        // The first one is gone: it does not count against the limit.
        let got = items(&many, |c| {
            (c.cronjob != "cj-0000").then(CronJobFacts::default)
        });
        assert_eq!(got[0].skipped, Some(Skip::Deleted));
        assert_eq!(got.iter().filter(|i| i.included()).count(), MAX_ITEMS);
        assert_eq!(got.last().unwrap().skipped, Some(Skip::TooMany));
        assert_eq!(got[1].failed_job.as_deref(), Some("j"));
        assert_eq!(got[1].alert.as_deref(), Some("uid-j"));
    }

    #[test]
    fn a_batch_is_decided_like_a_request() {
        let b = batch(vec![item("a", None)]);
        let approve = |by: &str, allowed| Event::Approve {
            by: by.into(),
            allowed,
            hold_override: false,
        };
        let cases: Vec<(Event, i64, Result<State, &str>)> = vec![
            (approve("U_BOB", true), 1, Ok(State::Approved)),
            (approve("U_ALICE", true), 1, Err("someone else")),
            (approve("U_BOB", false), 1, Err("allowed to approve")),
            (approve("U_BOB", true), 60, Err("expired")),
            (
                Event::Approve {
                    by: "U_BOB".into(),
                    allowed: true,
                    hold_override: true,
                },
                1,
                Err("rerun them one by one"),
            ),
            (
                Event::Deny {
                    by: "U_BOB".into(),
                    allowed: true,
                },
                1,
                Ok(State::Denied),
            ),
            (
                Event::Cancel { by: "U_BOB".into() },
                1,
                Err("Only the requester"),
            ),
            (
                Event::Cancel {
                    by: "U_ALICE".into(),
                },
                1,
                Ok(State::Cancelled),
            ),
            (Event::Expire, 59, Err("not due")),
            (Event::Expire, 60, Ok(State::Expired)),
            (Event::Created { job: "x".into() }, 1, Err("pending")),
        ];
        for (event, at, want) in cases {
            match (transition(&b, &event, t(at)), want) {
                (Ok(next), Ok(state)) => {
                    assert_eq!(next.state, state, "{event:?}");
                    assert_eq!(next.items, b.items, "a decision leaves the items");
                }
                (Err(r), Err(text)) => assert!(r.to_string().contains(text), "{event:?}: {r}"),
                (got, want) => panic!("{event:?}: got {got:?}, want {want:?}"),
            }
        }
        let approved = transition(&b, &approve("U_BOB", true), t(1)).unwrap();
        assert_eq!(approved.approved_by.as_deref(), Some("U_BOB"));
        assert_eq!(
            transition(&approved, &approve("U_CAROL", true), t(2))
                .unwrap_err()
                .to_string(),
            "This request is already approved by <@U_BOB>."
        );
    }

    #[test]
    fn items_move_forward_only_and_the_batch_ends_with_its_last_item() {
        let mut b = batch(vec![
            item("a", None),
            item("b", Some(Skip::Deleted)),
            item("c", None),
        ]);
        assert_eq!(
            record_item(&b, 0, State::Approved, None, None),
            None,
            "nothing moves before the approval"
        );
        b.state = State::Approved;
        assert_eq!(
            record_item(&b, 1, State::Approved, None, None),
            None,
            "skipped"
        );
        assert_eq!(record_item(&b, 7, State::Approved, None, None), None);
        let b = record_item(&b, 0, State::Approved, None, None).unwrap();
        let b = record_item(&b, 0, State::Created, Some("a-rerun-abcd1234"), None).unwrap();
        assert_eq!(
            record_item(&b, 0, State::Approved, None, None),
            None,
            "backwards"
        );
        assert_eq!(
            record_item(&b, 0, State::Created, None, None),
            None,
            "again"
        );
        let b = record_item(&b, 0, State::Succeeded, None, None).unwrap();
        assert_eq!(b.state, State::Approved, "c is not done yet");
        assert_eq!(
            b.counts(),
            Counts {
                included: 2,
                skipped: 1,
                running: 0,
                succeeded: 1,
                failed: 0,
                not_run: 0
            }
        );
        let failed = record_item(&b, 2, State::Failed, None, Some("BackoffLimitExceeded")).unwrap();
        assert_eq!(failed.state, State::Failed);
        assert_eq!(failed.items[0].job.as_deref(), Some("a-rerun-abcd1234"));
        assert_eq!(
            failed.items[2].note.as_deref(),
            Some("BackoffLimitExceeded")
        );
        let ok = record_item(&b, 2, State::Succeeded, None, None).unwrap();
        assert_eq!(ok.state, State::Succeeded);
        assert_eq!(record_item(&ok, 2, State::Failed, None, None), None, "over");
        let aborted = record_item(&b, 2, State::Aborted, None, Some("held")).unwrap();
        assert_eq!(aborted.state, State::Failed);
        assert_eq!(aborted.counts().not_run, 1);
    }

    #[test]
    fn child_ids_are_the_batch_id_and_the_index() {
        let b = batch(vec![item("a", None), item("b", None)]);
        assert_eq!(b.child_id(1), "abcd1234001");
        assert_eq!(b.index_of("abcd1234001"), Some(1));
        assert_eq!(b.index_of("abcd1234007"), None, "no such item");
        assert_eq!(b.index_of("zzzz1234001"), None, "another batch");
        assert_eq!(
            crate::core::overrides::job_name("billing-sync", &b.child_id(1)),
            "billing-sync-rerun-abcd1234"
        );
    }
}
