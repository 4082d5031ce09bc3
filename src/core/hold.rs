//! Maintenance holds: which CronJobs a hold covers, what it writes on them,
//! and how a resume undoes exactly that.
//!
//! A hold is planned first (and shown as a preview), then applied CronJob by
//! CronJob with one merge patch each. The patch records the hold on the
//! CronJob itself (`rerun-bot.io/hold-id`, `held-by`, `held-at`,
//! `suspended-before-hold`), so a resume works from the cluster alone, even
//! if the bot's own data is lost.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::command::Target;
use super::model::{CronJobSnapshot, OnHold};

pub const HOLD_ID: &str = "rerun-bot.io/hold-id";
pub const HELD_BY: &str = "rerun-bot.io/held-by";
pub const HELD_AT: &str = "rerun-bot.io/held-at";
pub const SUSPENDED_BEFORE: &str = "rerun-bot.io/suspended-before-hold";

/// What happened to one CronJob of a hold or resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Not applied yet.
    Planned,
    /// Held (suspended by the bot, or recorded as already suspended).
    Held,
    Resumed,
    /// Left suspended: it was suspended before the hold.
    LeftSuspended,
    /// Someone unsuspended it by hand during the hold: reported, not touched.
    ChangedByHand,
    /// Deleted meanwhile.
    Gone,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub namespace: String,
    pub name: String,
    /// `spec.suspend` before the hold.
    pub suspended_before: bool,
    /// `rerun-bot.io/on-hold: terminate`: running Jobs are deleted too.
    pub terminate: bool,
    /// Running Jobs to delete (terminate only), as planned.
    pub running: Vec<String>,
    /// Jobs actually deleted.
    #[serde(default)]
    pub terminated: Vec<String>,
    pub outcome: Outcome,
}

impl Item {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Hold,
    Resume,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Previewed, waiting for the confirm click.
    Planned,
    Applying,
    Done,
    Cancelled,
}

/// A hold or a resume: planned, confirmed, applied; stored under its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    pub kind: Kind,
    /// `all`, `ns:billing`, `billing/billing-sync`, or the resumed hold id.
    pub target: String,
    pub reason: Option<String>,
    pub by: String,
    pub at: DateTime<Utc>,
    /// Where it was asked; progress and the summary go there.
    pub channel: String,
    pub phase: Phase,
    pub items: Vec<Item>,
    /// The progress/summary message (channel, ts), once posted.
    #[serde(default)]
    pub message: Option<(String, String)>,
    /// A hold that a resume has ended (set when the resume is confirmed).
    #[serde(default)]
    pub ended: bool,
    /// `--until`: how long the hold lasts, in seconds.
    #[serde(default)]
    pub until_secs: Option<u64>,
    /// When the bot resumes it by itself (set when the hold is confirmed;
    /// cleared when the automatic resume starts).
    #[serde(default)]
    pub resume_at: Option<DateTime<Utc>>,
    /// The channel was reminded of the automatic resume.
    #[serde(default)]
    pub reminded: bool,
}

/// What the hold timer does about a hold at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    Remind,
    Resume,
}

/// Reminds a tenth of the hold's length before it ends (at least a second,
/// at most 10 minutes, never earlier than half-way), then resumes on time.
pub fn timer(op: &Operation, now: DateTime<Utc>) -> Option<Timer> {
    if op.kind != Kind::Hold || op.phase != Phase::Done || op.ended {
        return None;
    }
    let at = op.resume_at?;
    let until = op.until_secs.unwrap_or(0);
    let lead = chrono::Duration::seconds((until / 10).max(1).min(until / 2).min(600) as i64);
    if now >= at {
        Some(Timer::Resume)
    } else if !op.reminded && now >= at - lead {
        Some(Timer::Remind)
    } else {
        None
    }
}

/// The hold of `all` still in force, if any: CronJobs created or unsuspended
/// by someone else meanwhile are held too.
pub fn global_hold(ops: &[Operation]) -> Option<&Operation> {
    ops.iter()
        .rev()
        .find(|o| o.kind == Kind::Hold && o.target == "all" && o.phase == Phase::Done && !o.ended)
}

/// What a global hold does about a CronJob it sees change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforce {
    /// New (or released) and running on schedule: hold it.
    Hold,
    /// Held by this hold, but unsuspended by someone: suspend it again.
    Resuspend,
}

pub fn enforce(global: &Operation, cronjob: &CronJobSnapshot) -> Option<Enforce> {
    match (&cronjob.hold_id, cronjob.suspended) {
        (None, false) => Some(Enforce::Hold),
        (Some(id), false) if *id == global.id => Some(Enforce::Resuspend),
        _ => None,
    }
}

impl Operation {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.items.iter().filter(|i| f(&i.outcome)).count()
    }
}

pub fn describe(target: &Target) -> String {
    match target {
        Target::All => "all".into(),
        Target::Namespace(ns) => format!("ns:{ns}"),
        Target::CronJob { name, namespace } => match namespace {
            Some(ns) => format!("{ns}/{name}"),
            None => name.clone(),
        },
    }
}

/// Whether the target needs an admin (`all`, a namespace) or an approver.
pub fn needs_admin(target: &Target) -> bool {
    !matches!(target, Target::CronJob { .. })
}

/// The CronJobs `target` names, sorted, or why none.
pub fn select<'a>(
    target: &Target,
    cronjobs: &'a [CronJobSnapshot],
) -> Result<Vec<&'a CronJobSnapshot>, String> {
    let mut found: Vec<&CronJobSnapshot> = cronjobs
        .iter()
        .filter(|c| match target {
            Target::All => true,
            Target::Namespace(ns) => &c.namespace == ns,
            Target::CronJob { name, namespace } => {
                &c.name == name && namespace.as_ref().is_none_or(|ns| &c.namespace == ns)
            }
        })
        .collect();
    found.sort_by_key(|c| (c.namespace.clone(), c.name.clone()));
    match (target, found.len()) {
        (Target::All, 0) => Err("rerun-bot watches no CronJobs; nothing to hold.".into()),
        (Target::Namespace(ns), 0) => Err(format!(
            "No CronJobs in namespace `{ns}` (or it is not watched). Nothing was changed."
        )),
        (Target::CronJob { name, .. }, 0) => Err(format!(
            "No CronJob `{name}` is watched by rerun-bot. Nothing was changed."
        )),
        (Target::CronJob { name, .. }, n) if n > 1 => Err(format!(
            "There are {n} CronJobs named `{name}`: {}. Add `-n <namespace>`.",
            found
                .iter()
                .map(|c| format!("`{}`", c.key()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Ok(found),
    }
}

/// The hold's plan: every selected CronJob, with its running Jobs when its
/// owner asked for `terminate`. CronJobs another hold covers are left out.
pub fn plan_hold(
    selected: &[&CronJobSnapshot],
    running: &HashMap<String, Vec<String>>,
) -> Vec<Item> {
    selected
        .iter()
        .filter(|c| c.hold_id.is_none())
        .map(|c| {
            let terminate = c.on_hold == OnHold::Terminate;
            Item {
                namespace: c.namespace.clone(),
                name: c.name.clone(),
                suspended_before: c.suspended,
                terminate,
                running: if terminate {
                    running.get(&c.key()).cloned().unwrap_or_default()
                } else {
                    Vec::new()
                },
                terminated: Vec::new(),
                outcome: Outcome::Planned,
            }
        })
        .collect()
}

/// The merge patch that holds one CronJob: the hold is written on it, and it
/// is suspended (a CronJob already suspended is only annotated).
pub fn hold_patch(hold_id: &str, by: &str, at: DateTime<Utc>, suspended_before: bool) -> Value {
    let mut patch = json!({"metadata": {"annotations": {
        HOLD_ID: hold_id,
        HELD_BY: by,
        HELD_AT: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        SUSPENDED_BEFORE: suspended_before.to_string(),
    }}});
    if !suspended_before {
        patch["spec"] = json!({"suspend": true});
    }
    patch
}

/// The resume plan: CronJobs carrying a bot hold (the given hold id, or any
/// bot hold for a target) and what resuming each means.
pub fn plan_resume(selected: &[&CronJobSnapshot], hold_id: Option<&str>) -> Vec<Item> {
    selected
        .iter()
        .filter(|c| match (&c.hold_id, hold_id) {
            (Some(held), Some(wanted)) => held == wanted,
            (Some(_), None) => true,
            (None, _) => false,
        })
        .map(|c| {
            let suspended_before = c.suspended_before_hold.unwrap_or(false);
            Item {
                namespace: c.namespace.clone(),
                name: c.name.clone(),
                suspended_before,
                terminate: false,
                running: Vec::new(),
                terminated: Vec::new(),
                outcome: Outcome::Planned,
            }
        })
        .collect()
}

/// What resuming does to a CronJob as it is now.
pub fn resume_outcome(item: &Item, suspended_now: bool) -> Outcome {
    match (item.suspended_before, suspended_now) {
        (true, _) => Outcome::LeftSuspended,
        (false, true) => Outcome::Resumed,
        (false, false) => Outcome::ChangedByHand,
    }
}

/// The merge patch of a resume: the hold's annotations go; `suspend: false`
/// only when the bot suspended it and nobody changed it since.
pub fn resume_patch(outcome: &Outcome) -> Value {
    let mut patch = json!({"metadata": {"annotations": {
        HOLD_ID: null, HELD_BY: null, HELD_AT: null, SUSPENDED_BEFORE: null,
    }}});
    if *outcome == Outcome::Resumed {
        patch["spec"] = json!({"suspend": false});
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cj(ns: &str, name: &str, suspended: bool, terminate: bool) -> CronJobSnapshot {
        CronJobSnapshot {
            namespace: ns.into(),
            name: name.into(),
            uid: format!("{ns}-{name}"),
            schedule: "0 3 * * *".into(),
            time_zone: None,
            concurrency_policy: "Allow".into(),
            suspended,
            channel: None,
            teams_channel: None,
            owner: None,
            alerts_off: false,
            on_hold: if terminate {
                OnHold::Terminate
            } else {
                OnHold::Suspend
            },
            hold_id: None,
            suspended_before_hold: None,
            backoff_limit: None,
            containers: vec!["main".into()],
            last_successful_time: None,
            starting_deadline_seconds: None,
            last_schedule_time: None,
            created_at: None,
            missed_after: None,
            max_duration: None,
            failures_only: false,
        }
    }

    fn all() -> Vec<CronJobSnapshot> {
        vec![
            cj("billing", "sync", false, true),
            cj("billing", "report", true, false),
            cj("web", "sync", false, false),
        ]
    }

    #[test]
    fn targets_select_cronjobs() {
        let cjs = all();
        let names =
            |t: Target| select(&t, &cjs).map(|v| v.iter().map(|c| c.key()).collect::<Vec<_>>());
        assert_eq!(names(Target::All).unwrap().len(), 3);
        assert_eq!(
            names(Target::Namespace("billing".into())).unwrap(),
            ["billing/report", "billing/sync"]
        );
        assert!(
            names(Target::Namespace("nope".into()))
                .unwrap_err()
                .contains("`nope`")
        );
        let sync = |ns: Option<&str>| Target::CronJob {
            name: "sync".into(),
            namespace: ns.map(str::to_string),
        };
        assert!(names(sync(None)).unwrap_err().contains("Add `-n"));
        assert_eq!(names(sync(Some("web"))).unwrap(), ["web/sync"]);
        assert!(needs_admin(&Target::All) && !needs_admin(&sync(None)));
        assert!(select(&Target::All, &[]).is_err());
    }

    #[test]
    fn a_hold_plans_terminate_only_for_owners_who_asked() {
        let cjs = all();
        let selected: Vec<&CronJobSnapshot> = cjs.iter().collect();
        let running: HashMap<String, Vec<String>> = [
            ("billing/sync".to_string(), vec!["sync-1".to_string()]),
            ("web/sync".to_string(), vec!["web-1".to_string()]),
        ]
        .into();
        let items = plan_hold(&selected, &running);
        let by_key: HashMap<String, &Item> = items.iter().map(|i| (i.key(), i)).collect();
        assert_eq!(by_key["billing/sync"].running, ["sync-1"]);
        assert!(
            by_key["web/sync"].running.is_empty(),
            "suspend-only owners keep their Jobs"
        );
        assert!(by_key["billing/report"].suspended_before);
        // A CronJob already under a hold is not held twice.
        let mut held = cj("web", "other", true, false);
        held.hold_id = Some("h1".into());
        assert!(plan_hold(&[&held], &running).is_empty());
    }

    #[test]
    fn hold_then_resume_restores_suspend_exactly() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = hold_patch("h1", "U_ADMIN", at, false);
        assert_eq!(p["spec"]["suspend"], true);
        assert_eq!(p["metadata"]["annotations"][SUSPENDED_BEFORE], "false");
        assert_eq!(
            p["metadata"]["annotations"][HELD_AT],
            "2026-11-23T03:00:00Z"
        );
        assert!(
            hold_patch("h1", "U", at, true).get("spec").is_none(),
            "already suspended: untouched"
        );

        // (suspended before, suspended now) → outcome and patch.
        let cases = [
            (false, true, Outcome::Resumed, Some(false)),
            (true, true, Outcome::LeftSuspended, None),
            (false, false, Outcome::ChangedByHand, None),
        ];
        for (before, now, outcome, suspend) in cases {
            let item = Item {
                namespace: "n".into(),
                name: "c".into(),
                suspended_before: before,
                terminate: false,
                running: vec![],
                terminated: vec![],
                outcome: Outcome::Planned,
            };
            let got = resume_outcome(&item, now);
            assert_eq!(got, outcome);
            let patch = resume_patch(&got);
            assert_eq!(
                patch["spec"]["suspend"].as_bool(),
                suspend,
                "{before} {now}"
            );
            assert!(patch["metadata"]["annotations"][HOLD_ID].is_null());
        }
    }

    #[test]
    fn a_global_hold_catches_new_and_unsuspended_cronjobs() {
        let op = |target: &str, phase: Phase, ended: bool| Operation {
            id: format!("hold-{target}"),
            kind: Kind::Hold,
            target: target.into(),
            reason: None,
            by: "U".into(),
            at: Utc::now(),
            channel: "C".into(),
            phase,
            items: vec![],
            message: None,
            ended,
            until_secs: None,
            resume_at: None,
            reminded: false,
        };
        let ops = [
            op("all", Phase::Done, true),
            op("ns:web", Phase::Done, false),
        ];
        assert!(global_hold(&ops).is_none(), "ended, or not `all`");
        let ops = [op("all", Phase::Done, false)];
        let global = global_hold(&ops).unwrap();
        assert!(global_hold(&[op("all", Phase::Applying, false)]).is_none());
        let mut c = cj("n", "new", false, false);
        assert_eq!(enforce(global, &c), Some(Enforce::Hold));
        c.hold_id = Some("hold-all".into());
        assert_eq!(enforce(global, &c), Some(Enforce::Resuspend));
        c.suspended = true;
        assert_eq!(enforce(global, &c), None);
        let mut by_hand = cj("n", "x", true, false);
        assert_eq!(
            enforce(global, &by_hand),
            None,
            "suspended by hand: left alone"
        );
        by_hand.hold_id = Some("hold-other".into());
        by_hand.suspended = false;
        assert_eq!(enforce(global, &by_hand), None, "another hold's CronJob");
    }

    #[test]
    fn until_reminds_then_resumes_once() {
        let at = Utc::now();
        let mut op = Operation {
            id: "hold-1".into(),
            kind: Kind::Hold,
            target: "all".into(),
            reason: None,
            by: "U".into(),
            at,
            channel: "C".into(),
            phase: Phase::Done,
            items: vec![],
            message: None,
            ended: false,
            until_secs: Some(7200),
            resume_at: Some(at + chrono::Duration::hours(2)),
            reminded: false,
        };
        let m = |min: i64| at + chrono::Duration::minutes(min);
        assert_eq!(timer(&op, m(100)), None);
        assert_eq!(timer(&op, m(111)), Some(Timer::Remind), "10 minutes before");
        op.reminded = true;
        assert_eq!(timer(&op, m(115)), None);
        assert_eq!(timer(&op, m(120)), Some(Timer::Resume));
        op.resume_at = None;
        assert_eq!(timer(&op, m(130)), None, "once");
        op.resume_at = Some(m(120));
        op.ended = true;
        assert_eq!(timer(&op, m(130)), None, "resumed by hand already");
    }

    #[test]
    fn resume_takes_the_bots_holds_only() {
        let mut a = cj("n", "a", true, false);
        a.hold_id = Some("h1".into());
        a.suspended_before_hold = Some(false);
        let mut b = cj("n", "b", true, false);
        b.hold_id = Some("h2".into());
        b.suspended_before_hold = Some(true);
        let by_hand = cj("n", "c", true, false);
        let all = [&a, &b, &by_hand];
        assert_eq!(
            plan_resume(&all, None).len(),
            2,
            "suspended by hand: never touched"
        );
        let h2 = plan_resume(&all, Some("h2"));
        assert_eq!(h2.len(), 1);
        assert!(h2[0].suspended_before);
    }
}
