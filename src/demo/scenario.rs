//! The simulated cluster's life: what the CronJob and Job controllers and the
//! kubelet would do, on an accelerated schedule, through the fake apiserver's
//! own methods (so the bot sees the same watch events as from a real one).
//!
//! - CronJobs run on their cron schedules (a few minutes apart); a suspended
//!   CronJob spawns nothing and misses its runs (no catch-up).
//! - Every Job's pod logs realistic lines, then succeeds or fails the way its
//!   program would with those args and env: a bad `--date` fails again, a
//!   smaller `REPORT_BATCH_ROWS` stops the OOM kill. Reruns (Jobs a client
//!   created) get their pod from the Job controller first.
//! - A deleted Job stops (its pods are gone with it); finished Jobs beyond the
//!   CronJob's history limits are deleted, as the CronJob controller does.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rerun_sim::{CronJobFixture, Failure, FakeKube, Resource};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How fast the scenario goes.
#[derive(Debug, Clone)]
pub struct Pace {
    /// Delay before the opening runs (one failure of each kind) start.
    pub kickoff: Duration,
    /// Time between two log lines of a running pod.
    pub step: Duration,
    /// How long the long-running `ops/etl` runs before its deadline.
    pub long_run: Duration,
    /// Whether CronJobs also run on their cron schedules.
    pub schedules: bool,
}

impl Default for Pace {
    /// For people watching: things happen every few seconds.
    fn default() -> Self {
        Pace {
            kickoff: Duration::from_secs(2),
            step: Duration::from_millis(1200),
            long_run: Duration::from_secs(240),
            schedules: true,
        }
    }
}

impl Pace {
    /// For tests: the opening alerts within a second, no scheduled runs.
    pub fn fast() -> Self {
        Pace {
            kickoff: Duration::ZERO,
            step: Duration::from_millis(30),
            long_run: Duration::from_secs(600),
            schedules: false,
        }
    }
}

/// The demo's CronJobs: two namespaces, one suspended, one terminated on hold.
pub fn cronjobs() -> Vec<Value> {
    let mut billing_sync = CronJobFixture::new("billing-sync")
        .namespace("billing")
        .schedule("*/3 * * * *")
        .owner("U_ALICE")
        .args(&["--date=yesterday", "--region=eu-west-1"])
        .env("DB_HOST", "billing-db.billing.svc")
        .env("BILLING_API_URL", "https://billing-api.internal/v2")
        .env("LOG_LEVEL", "info")
        .backoff_limit(2)
        .build();
    program(
        &mut billing_sync,
        "/app/billing-sync",
        "billing/sync:2.14.1",
    );
    let mut invoice_mailer = CronJobFixture::new("invoice-mailer")
        .namespace("billing")
        .schedule("*/2 * * * *")
        .args(&["--batch=200"])
        .build();
    program(
        &mut invoice_mailer,
        "/app/invoice-mailer",
        "billing/mailer:1.3.0",
    );
    let mut report_gen = CronJobFixture::new("report-gen")
        .namespace("ops")
        .schedule("*/4 * * * *")
        .owner("U_BOB")
        .args(&["--format=pdf", "--period=daily"])
        .env("REPORT_BATCH_ROWS", "500000")
        .backoff_limit(2)
        .build();
    program(&mut report_gen, "/app/report-gen", "ops/report-gen:0.9.4");
    report_gen["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"memory": "256Mi"}, "requests": {"memory": "128Mi"}});
    let mut etl = CronJobFixture::new("etl")
        .namespace("ops")
        .schedule("*/5 * * * *")
        .owner("U_DANA")
        .terminate_on_hold()
        .concurrency_policy("Forbid")
        .args(&["--source=s3://warehouse/raw", "--target=postgres://dwh"])
        .backoff_limit(0)
        .build();
    program(&mut etl, "/app/etl", "ops/etl:3.1.0");
    etl["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] = json!(240);
    let mut log_rotate = CronJobFixture::new("log-rotate")
        .namespace("ops")
        .schedule("0 * * * *")
        .suspended()
        .build();
    program(&mut log_rotate, "/app/log-rotate", "ops/log-rotate:1.0.0");
    vec![billing_sync, invoice_mailer, report_gen, etl, log_rotate]
}

fn program(cj: &mut Value, command: &str, image: &str) {
    let c = &mut cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    c["command"] = json!([command]);
    c["image"] = json!(format!("registry.example.com/{image}"));
}

/// Creates the namespaces and CronJobs.
pub fn install(kube: &FakeKube) {
    for ns in ["billing", "ops"] {
        if kube.get(Resource::Namespaces, "", ns).is_none() {
            kube.create(Resource::Namespaces, json!({"metadata": {"name": ns}}));
        }
    }
    for cj in cronjobs() {
        kube.apply_cronjob(cj);
    }
}

/// How a run ends.
#[derive(Debug, Clone)]
pub enum End {
    Succeed,
    Fail(Failure),
}

/// What a pod of a Job does: its log lines, one per step, then its end.
#[derive(Debug, Clone)]
pub struct Plan {
    pub lines: Vec<String>,
    /// Time between lines (the pace's step unless the program runs long).
    pub step: Duration,
    pub end: End,
}

/// The first container's args and env of a Job.
fn args_env(job: &Value) -> (Vec<String>, HashMap<String, String>) {
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    let args = c["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let env = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    (args, env)
}

fn valid_date(d: &str) -> bool {
    matches!(d, "yesterday" | "today") || chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok()
}

/// What `cronjob`'s program does in `job` (`run`: the scheduled run's number,
/// from 1; `None` for a rerun or a Job made by hand).
pub fn plan(cronjob: &str, job: &Value, run: Option<u32>, pace: &Pace) -> Plan {
    let (args, env) = args_env(job);
    let arg = |name: &str| {
        args.iter()
            .rev()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_string))
    };
    let step = pace.step;
    let quick = |lines: Vec<String>, end| Plan { lines, step, end };
    match cronjob {
        "billing-sync" => {
            let date = arg("date").unwrap_or_else(|| "yesterday".into());
            let region = arg("region").unwrap_or_else(|| "eu-west-1".into());
            let mut lines = vec![
                format!("INFO billing-sync 2.14.1 starting (region={region}, date={date})"),
                format!(
                    "INFO connecting to {}:5432",
                    env.get("DB_HOST")
                        .map(String::as_str)
                        .unwrap_or("localhost")
                ),
            ];
            if !valid_date(&date) {
                lines.push("Traceback (most recent call last):".into());
                lines.push("  File \"/app/billing_sync/cli.py\", line 41, in main".into());
                lines.push("    day = parse_day(args.date)".into());
                lines.push("  File \"/app/billing_sync/dates.py\", line 12, in parse_day".into());
                lines.push("    return date.fromisoformat(value)".into());
                lines.push(format!("ValueError: Invalid isoformat string: '{date}'"));
                return quick(
                    lines,
                    End::Fail(Failure::backoff_limit().log(String::new())),
                );
            }
            lines.push("INFO fetched 1,204 invoices from billing-api".into());
            if run.is_some_and(|n| n % 4 == 1) {
                lines.push("INFO writing ledger entries (batch 1 of 3)".into());
                lines.push("Traceback (most recent call last):".into());
                lines
                    .push("  File \"/app/billing_sync/ledger.py\", line 88, in write_batch".into());
                lines.push("    cur.execute(INSERT_ENTRIES, rows)".into());
                lines.push("  File \"/usr/lib/python3.12/site-packages/psycopg/cursor.py\", line 732, in execute".into());
                lines.push("    raise ex.with_traceback(None)".into());
                lines.push("psycopg.errors.UndefinedTable: relation \"ledger_entries_2025\" does not exist".into());
                lines.push(
                    "LINE 1: INSERT INTO ledger_entries_2025 (invoice_id, amount_cents, ...".into(),
                );
                return quick(
                    lines,
                    End::Fail(Failure::backoff_limit().log(String::new())),
                );
            }
            for b in 1..=3 {
                lines.push(format!("INFO writing ledger entries (batch {b} of 3)"));
            }
            lines.push("INFO done: 1,204 invoices, 3,877 ledger entries, 0 errors".into());
            quick(lines, End::Succeed)
        }
        "report-gen" => {
            let rows: u64 = env
                .get("REPORT_BATCH_ROWS")
                .and_then(|r| r.parse().ok())
                .unwrap_or(500_000);
            let mut lines = vec![
                "INFO report-gen 0.9.4: daily report, format=pdf".into(),
                format!("INFO loading {rows} rows per batch from warehouse"),
            ];
            if rows > 100_000 {
                lines.push(format!(
                    "INFO batch 1: {} MiB resident",
                    rows * 612 / 1_000_000
                ));
                lines.push("WARN memory above 90% of the container limit".into());
                return quick(lines, End::Fail(Failure::oom_killed().log(String::new())));
            }
            for b in 1..=4 {
                lines.push(format!("INFO batch {b}: {} MiB resident", 40 + b * 3));
            }
            lines.push("INFO wrote reports/daily.pdf (38 pages)".into());
            quick(lines, End::Succeed)
        }
        "etl" => {
            let steps = 40u32;
            let mut lines = vec!["INFO etl 3.1.0: s3://warehouse/raw → postgres://dwh".into()];
            for i in 1..steps {
                lines.push(format!(
                    "INFO copied partition {i} of 120 ({} rows)",
                    50_000 + i * 137
                ));
            }
            let mut failure = Failure::deadline_exceeded().log(String::new());
            failure.failed_pods = 1;
            Plan {
                lines,
                step: (pace.long_run / steps).max(pace.step),
                end: End::Fail(failure),
            }
        }
        "invoice-mailer" => quick(
            vec![
                "INFO invoice-mailer 1.3.0: 200 per batch".into(),
                "INFO sent 37 invoices, 0 bounced".into(),
            ],
            End::Succeed,
        ),
        _ => quick(
            vec![format!("INFO {cronjob} starting"), "INFO done".into()],
            End::Succeed,
        ),
    }
}

/// The scheduled time due at `now`, if any: the first run after `after` that
/// is not later than `now`. A suspended CronJob has none.
pub fn due(cronjob: &Value, after: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if cronjob["spec"]["suspend"] == json!(true) {
        return None;
    }
    let schedule = cronjob["spec"]["schedule"].as_str()?;
    let tz = cronjob["spec"]["timeZone"].as_str();
    let next = crate::core::schedule::next_run(schedule, tz, after).ok()?;
    (next <= now).then_some(next)
}

fn key(obj: &Value) -> (String, String) {
    (
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

fn owner_cronjob(job: &Value) -> Option<String> {
    job["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["kind"] == "CronJob")
        .and_then(|o| o["name"].as_str().map(str::to_string))
}

/// `succeeded`, `failed` or `None` (still going).
pub fn finished(job: &Value) -> Option<&'static str> {
    let conds = job["status"]["conditions"].as_array()?;
    conds
        .iter()
        .find_map(|c| match (c["type"].as_str(), c["status"].as_str()) {
            (Some("Complete"), Some("True")) => Some("succeeded"),
            (Some("Failed"), Some("True")) => Some("failed"),
            _ => None,
        })
}

/// Plays the controllers and the pods.
pub struct Driver {
    kube: FakeKube,
    pace: Pace,
    started: tokio::time::Instant,
    /// Job uids with a pod task.
    tracked: HashSet<String>,
    /// Per CronJob: scheduled runs so far, and the time schedules were last checked.
    runs: HashMap<(String, String), u32>,
    checked: DateTime<Utc>,
    kicked_off: bool,
}

impl Driver {
    pub fn new(kube: FakeKube, pace: Pace) -> Driver {
        Driver {
            kube,
            pace,
            started: tokio::time::Instant::now(),
            tracked: HashSet::new(),
            runs: HashMap::new(),
            checked: Utc::now(),
            kicked_off: false,
        }
    }

    pub async fn run(mut self, stop: CancellationToken) {
        let tick = self
            .pace
            .step
            .clamp(Duration::from_millis(20), Duration::from_millis(250));
        loop {
            self.tick(&stop);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// One pass: opening runs, scheduled runs, pods for new Jobs.
    pub fn tick(&mut self, stop: &CancellationToken) {
        if !self.kicked_off && self.started.elapsed() >= self.pace.kickoff {
            self.kicked_off = true;
            // One of each: a long run first (so a hold has something to
            // terminate), then a stack trace, an OOM kill and a success.
            for (ns, name) in [
                ("ops", "etl"),
                ("billing", "billing-sync"),
                ("ops", "report-gen"),
                ("billing", "invoice-mailer"),
            ] {
                self.spawn(ns, name, Utc::now());
            }
        }
        let now = Utc::now();
        if self.pace.schedules {
            for cj in self.kube.list(Resource::CronJobs, None) {
                if let Some(at) = due(&cj, self.checked, now) {
                    let (ns, name) = key(&cj);
                    self.spawn(&ns, &name, at);
                }
            }
        }
        self.checked = now;
        let jobs = self.kube.list(Resource::Jobs, None);
        let present: HashSet<String> = jobs
            .iter()
            .filter_map(|j| j["metadata"]["uid"].as_str().map(str::to_string))
            .collect();
        self.tracked.retain(|uid| present.contains(uid));
        for job in jobs {
            let uid = job["metadata"]["uid"].as_str().unwrap_or("").to_string();
            if self.tracked.contains(&uid) || finished(&job).is_some() {
                continue;
            }
            self.tracked.insert(uid.clone());
            let (ns, name) = key(&job);
            // A Job a client created (a rerun) gets its pod from the Job controller.
            let Some(job) = self.kube.run_job(&ns, &name) else {
                continue;
            };
            let cronjob = owner_cronjob(&job).unwrap_or_else(|| name.clone());
            let scheduled = job["metadata"]["annotations"]
                .get("batch.kubernetes.io/cronjob-scheduled-timestamp")
                .is_some();
            let run = scheduled.then(|| {
                let n = self.runs.entry((ns.clone(), cronjob.clone())).or_insert(0);
                *n += 1;
                *n
            });
            let plan = plan(&cronjob, &job, run, &self.pace);
            let kube = self.kube.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = live(kube, ns, name, uid, cronjob, plan) => {}
                }
            });
        }
    }

    /// The CronJob controller's run at `at` (nothing if suspended or gone,
    /// or if that minute's Job exists already).
    fn spawn(&mut self, ns: &str, name: &str, at: DateTime<Utc>) {
        let Some(cj) = self.kube.get(Resource::CronJobs, ns, name) else {
            return;
        };
        if cj["spec"]["suspend"] == json!(true) {
            return;
        }
        // `Forbid`: no new run while one is still going.
        if cj["spec"]["concurrencyPolicy"] == "Forbid" {
            let uid = cj["metadata"]["uid"].as_str().unwrap_or("");
            if self
                .kube
                .owned_by(Resource::Jobs, uid)
                .iter()
                .any(|j| finished(j).is_none())
            {
                return;
            }
        }
        let job_name = format!("{name}-{}", at.timestamp().div_euclid(60));
        if self.kube.get(Resource::Jobs, ns, &job_name).is_some() {
            return;
        }
        self.kube.spawn_job(ns, name, at);
    }
}

fn still_there(kube: &FakeKube, ns: &str, name: &str, uid: &str) -> bool {
    kube.get(Resource::Jobs, ns, name)
        .is_some_and(|j| j["metadata"]["uid"] == uid && finished(&j).is_none())
}

/// One Job's pod: log line by line, then end; stop if the Job is deleted.
async fn live(kube: FakeKube, ns: String, name: String, uid: String, cronjob: String, plan: Plan) {
    let pod = kube
        .owned_by(Resource::Pods, &uid)
        .into_iter()
        .last()
        .and_then(|p| p["metadata"]["name"].as_str().map(str::to_string));
    let mut log = String::new();
    for line in &plan.lines {
        tokio::time::sleep(plan.step).await;
        if !still_there(&kube, &ns, &name, &uid) {
            return;
        }
        log.push_str(&format!(
            "{} {line}\n",
            Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        ));
        if let Some(pod) = &pod {
            kube.set_log(&ns, pod, "main", log.clone());
        }
    }
    tokio::time::sleep(plan.step).await;
    if !still_there(&kube, &ns, &name, &uid) {
        return;
    }
    match plan.end {
        End::Succeed => {
            kube.complete_job(&ns, &name);
        }
        End::Fail(failure) => {
            kube.fail_job(&ns, &name, failure.log(log));
        }
    }
    prune_history(&kube, &ns, &cronjob);
}

/// The CronJob controller deletes finished Jobs beyond its history limits
/// (`successfulJobsHistoryLimit`, `failedJobsHistoryLimit`), oldest first.
pub fn prune_history(kube: &FakeKube, ns: &str, cronjob: &str) {
    let Some(cj) = kube.get(Resource::CronJobs, ns, cronjob) else {
        return;
    };
    let cj_uid = cj["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let limit = |field: &str, default: u64| cj["spec"][field].as_u64().unwrap_or(default) as usize;
    for (outcome, keep) in [
        ("succeeded", limit("successfulJobsHistoryLimit", 3)),
        ("failed", limit("failedJobsHistoryLimit", 1)),
    ] {
        let mut jobs: Vec<Value> = kube
            .owned_by(Resource::Jobs, &cj_uid)
            .into_iter()
            .filter(|j| finished(j) == Some(outcome))
            .collect();
        jobs.sort_by_key(|j| {
            j["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
        });
        let extra = jobs.len().saturating_sub(keep);
        for job in jobs.into_iter().take(extra) {
            let (ns, name) = key(&job);
            let uid = job["metadata"]["uid"].as_str().unwrap_or("");
            for pod in kube.owned_by(Resource::Pods, uid) {
                let (pns, pname) = key(&pod);
                kube.delete(Resource::Pods, &pns, &pname);
            }
            kube.delete(Resource::Jobs, &ns, &name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cj(name: &str) -> Value {
        cronjobs()
            .into_iter()
            .find(|c| c["metadata"]["name"] == name)
            .unwrap()
    }

    #[test]
    fn schedules_are_minutes_apart_and_suspended_ones_never_run() {
        let sync = cj("billing-sync");
        let t0 = at("2026-01-05T10:00:30Z");
        assert_eq!(due(&sync, t0, at("2026-01-05T10:02:59Z")), None);
        assert_eq!(
            due(&sync, t0, at("2026-01-05T10:03:00Z")),
            Some(at("2026-01-05T10:03:00Z"))
        );
        let rotate = cj("log-rotate");
        assert_eq!(rotate["spec"]["suspend"], true);
        assert_eq!(due(&rotate, t0, at("2026-01-05T12:00:00Z")), None);
        let mut resumed = rotate.clone();
        resumed["spec"]["suspend"] = json!(false);
        assert_eq!(
            due(&resumed, t0, at("2026-01-05T12:00:00Z")),
            Some(at("2026-01-05T11:00:00Z"))
        );
    }

    fn job_from(cronjob: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
        let mut spec = cj(cronjob)["spec"]["jobTemplate"]["spec"].clone();
        let c = &mut spec["template"]["spec"]["containers"][0];
        if !args.is_empty() {
            c["args"] = json!(args);
        }
        for (k, v) in env {
            c["env"] = json!([{"name": k, "value": v}]);
        }
        json!({"spec": spec})
    }

    fn fails(p: &Plan) -> Option<(String, String)> {
        match &p.end {
            End::Succeed => None,
            End::Fail(f) => Some((f.reason.clone(), f.termination_reason.clone())),
        }
    }

    #[test]
    fn programs_fail_the_way_their_args_say() {
        let pace = Pace::fast();
        let sync = job_from("billing-sync", &[], &[]);
        assert!(fails(&plan("billing-sync", &sync, Some(1), &pace)).is_some());
        assert!(fails(&plan("billing-sync", &sync, Some(2), &pace)).is_none());
        assert!(fails(&plan("billing-sync", &sync, None, &pace)).is_none());
        let bad = job_from("billing-sync", &["--date=2025-13-01"], &[]);
        let p = plan("billing-sync", &bad, None, &pace);
        assert_eq!(fails(&p).unwrap().0, "BackoffLimitExceeded");
        assert!(p.lines.iter().any(|l| l.contains("ValueError")));
        let good = job_from("billing-sync", &["--date=2025-12-01"], &[]);
        assert!(fails(&plan("billing-sync", &good, None, &pace)).is_none());

        let report = job_from("report-gen", &[], &[]);
        assert_eq!(
            fails(&plan("report-gen", &report, None, &pace)).unwrap().1,
            "OOMKilled"
        );
        let smaller = job_from("report-gen", &[], &[("REPORT_BATCH_ROWS", "50000")]);
        assert!(fails(&plan("report-gen", &smaller, None, &pace)).is_none());

        let etl = job_from("etl", &[], &[]);
        let p = plan("etl", &etl, Some(1), &pace);
        assert_eq!(fails(&p).unwrap().0, "DeadlineExceeded");
        assert!(p.step * p.lines.len() as u32 >= pace.long_run / 2);
    }

    #[tokio::test]
    async fn jobs_run_finish_stop_when_deleted_and_suspended_cronjobs_spawn_nothing() {
        let kube = FakeKube::start().await;
        install(&kube);
        let pace = Pace {
            kickoff: Duration::ZERO,
            step: Duration::from_millis(5),
            long_run: Duration::from_secs(600),
            schedules: false,
        };
        let stop = CancellationToken::new();
        let mut driver = Driver::new(kube.clone(), pace);
        driver.tick(&stop);
        // The opening runs: four Jobs, none for the suspended log-rotate.
        let jobs = kube.list(Resource::Jobs, None);
        assert_eq!(jobs.len(), 4, "{jobs:#?}");
        assert!(
            jobs.iter()
                .all(|j| owner_cronjob(j).as_deref() != Some("log-rotate"))
        );
        driver.spawn("ops", "log-rotate", Utc::now());
        // etl is `Forbid` and still running: its next run is skipped.
        driver.spawn("ops", "etl", Utc::now() + chrono::Duration::minutes(5));
        assert_eq!(kube.list(Resource::Jobs, None).len(), 4);

        let state = |ns: &str, prefix: &str| {
            kube.list(Resource::Jobs, Some(ns))
                .into_iter()
                .find(|j| j["metadata"]["name"].as_str().unwrap().starts_with(prefix))
                .and_then(|j| finished(&j))
        };
        kube.wait_for("the short runs to end", Duration::from_secs(10), |_| {
            state("billing", "billing-sync") == Some("failed")
                && state("ops", "report-gen") == Some("failed")
                && state("billing", "invoice-mailer") == Some("succeeded")
        })
        .await;
        let failed = kube
            .list(Resource::Pods, Some("billing"))
            .into_iter()
            .find(|p| p["status"]["phase"] == "Failed")
            .unwrap();
        assert_eq!(
            failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            1
        );

        // A Job a client created (a rerun) gets a pod, then succeeds.
        let mut rerun = kube
            .get(Resource::Jobs, "billing", &key(&jobs[0]).1)
            .unwrap();
        rerun = json!({
            "metadata": {"name": "billing-sync-rerun-abc123", "namespace": "billing",
                         "labels": {"app.kubernetes.io/managed-by": "rerun-bot"}},
            "spec": rerun["spec"].clone(),
        });
        rerun["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["--date=2025-12-01"]);
        kube.create(Resource::Jobs, rerun);
        driver.tick(&stop);
        assert_eq!(
            kube.list(Resource::Pods, Some("billing"))
                .iter()
                .filter(|p| p["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("billing-sync-rerun"))
                .count(),
            1
        );
        kube.wait_for("the rerun to succeed", Duration::from_secs(10), |_| {
            state("billing", "billing-sync-rerun") == Some("succeeded")
        })
        .await;

        // The long run stops when its Job is deleted: no pod comes back.
        let etl = kube
            .list(Resource::Jobs, Some("ops"))
            .into_iter()
            .find(|j| owner_cronjob(j).as_deref() == Some("etl"))
            .unwrap();
        assert_eq!(finished(&etl), None);
        let (ns, name) = key(&etl);
        for pod in kube.owned_by(Resource::Pods, etl["metadata"]["uid"].as_str().unwrap()) {
            kube.delete(Resource::Pods, &ns, &key(&pod).1);
        }
        kube.delete(Resource::Jobs, &ns, &name);
        tokio::time::sleep(Duration::from_millis(50)).await;
        driver.tick(&stop);
        assert!(kube.get(Resource::Jobs, &ns, &name).is_none());
        assert!(
            kube.list(Resource::Pods, Some("ops"))
                .iter()
                .all(|p| !p["metadata"]["name"].as_str().unwrap().starts_with("etl-"))
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn finished_jobs_beyond_the_history_limits_are_deleted() {
        let kube = FakeKube::start().await;
        install(&kube);
        let t = at("2026-01-05T10:00:00Z");
        for i in 0..3 {
            let j = kube.spawn_job("billing", "billing-sync", t + chrono::Duration::minutes(i));
            kube.fail_job(
                "billing",
                j["metadata"]["name"].as_str().unwrap(),
                Failure::backoff_limit(),
            );
        }
        for i in 3..8 {
            let j = kube.spawn_job("billing", "billing-sync", t + chrono::Duration::minutes(i));
            kube.complete_job("billing", j["metadata"]["name"].as_str().unwrap());
        }
        prune_history(&kube, "billing", "billing-sync");
        let left: Vec<(String, Option<&str>)> = kube
            .list(Resource::Jobs, Some("billing"))
            .iter()
            .map(|j| (key(j).1, finished(j)))
            .collect();
        assert_eq!(
            left.iter().filter(|(_, s)| *s == Some("failed")).count(),
            1,
            "{left:?}"
        );
        assert_eq!(
            left.iter().filter(|(_, s)| *s == Some("succeeded")).count(),
            3,
            "{left:?}"
        );
        let minutes = (t + chrono::Duration::minutes(2)).timestamp() / 60;
        assert!(
            left.iter()
                .any(|(n, _)| *n == format!("billing-sync-{minutes}")),
            "newest failure kept"
        );
    }
}
