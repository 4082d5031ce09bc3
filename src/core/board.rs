//! The `/cronjobs` status board: one row per CronJob (schedule in its zone,
//! next run, last success and failure, failures in a row, typical duration,
//! snooze or hold, incident), filtered, sorted (failing first, then by name)
//! and cut into pages; and one CronJob in detail with its last runs.
//!
//! Pure: the app gathers each CronJob's facts into an [`Entry`], the clock
//! comes in as an argument, and the words of every cell are written here once
//! for both platforms (Slack's table block, Teams' card).

use chrono::{DateTime, Duration, Utc};

use super::incident::{Run, RunHistory};
use super::model::CronJobSnapshot;
use super::slots::{self, DEFAULT_GRACE, Schedule};
use super::snooze::Snooze;

/// CronJobs per page (a Block Kit table holds 100 rows; a card stays small).
pub const PAGE_SIZE: usize = 50;
/// Runs shown by `/cronjobs <name>`.
pub const DETAIL_RUNS: usize = 10;
/// The typical duration is the median of this many latest successes.
pub const TYPICAL_OF: usize = 10;

/// Which CronJobs a board lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    #[default]
    All,
    /// An open incident (`--failing`, also `--failed`).
    Failing,
    /// The last due run has no Job (`--missed`).
    Missed,
    /// On a maintenance hold, or suspended (`--held`).
    Held,
}

impl Filter {
    /// The flag that asks for it (`None` for all).
    pub fn flag(self) -> Option<&'static str> {
        match self {
            Filter::All => None,
            Filter::Failing => Some("--failing"),
            Filter::Missed => Some("--missed"),
            Filter::Held => Some("--held"),
        }
    }

    fn adjective(self) -> &'static str {
        match self {
            Filter::All => "",
            Filter::Failing => " failing",
            Filter::Missed => " that missed a run",
            Filter::Held => " held or suspended",
        }
    }

    fn keeps(self, row: &Row) -> bool {
        match self {
            Filter::All => true,
            Filter::Failing => row.incident.is_some(),
            Filter::Missed => row.missed.is_some(),
            Filter::Held => row.hold_id.is_some() || row.suspended,
        }
    }
}

/// What a board asks for: `/cronjobs [<namespace>] [--failing|--missed|--held] [--page N]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pub namespace: Option<String>,
    pub filter: Filter,
    /// 1-based.
    pub page: usize,
}

impl Query {
    /// The command that shows page `page` of this board.
    pub fn command_for(&self, page: usize) -> String {
        let mut cmd = "/cronjobs".to_string();
        if let Some(ns) = &self.namespace {
            cmd.push(' ');
            cmd.push_str(ns);
        }
        if let Some(flag) = self.filter.flag() {
            cmd.push(' ');
            cmd.push_str(flag);
        }
        cmd.push_str(&format!(" --page {page}"));
        cmd
    }
}

/// An open incident of the CronJob (on any platform).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incident {
    pub since: DateTime<Utc>,
    pub failures: u32,
}

/// What the app knows about one CronJob, gathered for the board.
#[derive(Debug, Clone)]
pub struct Entry {
    pub cronjob: CronJobSnapshot,
    pub history: RunHistory,
    pub incident: Option<Incident>,
    pub snooze: Option<Snooze>,
    /// A Job of it runs now (it covers the due slot, or blocks it: the
    /// missed-run alert tells which).
    pub running: bool,
}

/// One line of the board.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub schedule: String,
    pub time_zone: Option<String>,
    pub suspended: bool,
    pub hold_id: Option<String>,
    pub next_run: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    pub failures_in_a_row: u32,
    pub typical: Option<Duration>,
    pub snooze: Option<Snooze>,
    pub incident: Option<Incident>,
    /// The last due slot, when no Job ran for it (and none runs now).
    pub missed: Option<DateTime<Utc>>,
    /// What is wrong with the schedule or its zone.
    pub warning: Option<String>,
}

impl Row {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The median of the durations (`None` without any).
pub fn median(durations: &[Duration]) -> Option<Duration> {
    let mut d = durations.to_vec();
    d.sort();
    let n = d.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(d[n / 2]),
        _ => Some(d[n / 2 - 1] + (d[n / 2] - d[n / 2 - 1]) / 2),
    }
}

/// The board's row of one CronJob at `now`.
pub fn row(entry: &Entry, now: DateTime<Utc>) -> Row {
    let c = &entry.cronjob;
    let h = &entry.history;
    let (next_run, missed, warning) = match Schedule::parse(&c.schedule, c.time_zone.as_deref()) {
        Ok(s) => {
            let next = s.next_after(now);
            let missed = if c.suspended || entry.running {
                None
            } else {
                missed_slot(&s, c, h, now)
            };
            let warning = next
                .is_none()
                .then(|| "the schedule has no next run".to_string());
            (next, missed, warning)
        }
        Err(e) => (None, None, Some(e.to_string())),
    };
    let incident = entry.incident.map(|mut i| {
        i.failures = i.failures.max(h.failures_in_a_row);
        if let Some(s) = h.failing_since {
            i.since = i.since.min(s);
        }
        i
    });
    Row {
        namespace: c.namespace.clone(),
        name: c.name.clone(),
        schedule: c.schedule.clone(),
        time_zone: c.time_zone.clone().filter(|z| !z.trim().is_empty()),
        suspended: c.suspended,
        hold_id: c.hold_id.clone(),
        next_run,
        last_success: h.last_success_at(c.last_successful_time),
        last_failure: h
            .runs
            .iter()
            .filter(|r| !r.succeeded)
            .map(|r| r.finished_at)
            .max(),
        failures_in_a_row: h.failures_in_a_row,
        typical: median(&h.successful_durations(TYPICAL_OF)),
        snooze: entry.snooze.clone(),
        incident,
        missed,
        warning,
    }
}

/// The last due slot (due longer than the grace ago) when no Job of the
/// CronJob is known for it: no run of that slot (by its name), none started
/// at or after it. `None` before any run is known.
fn missed_slot(
    schedule: &Schedule,
    c: &CronJobSnapshot,
    h: &RunHistory,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let slot = slots::last_due(schedule, now - DEFAULT_GRACE)?;
    let newest_known = h
        .runs
        .iter()
        .filter_map(|r| {
            slots::job_slot(&c.name, &r.job, None, false)
                .or(r.started_at)
                .or(Some(r.finished_at))
        })
        .chain(c.last_successful_time)
        .max()?;
    (newest_known < slot).then_some(slot)
}

/// Failing first (an open incident), then by `namespace/name`.
pub fn sort(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        (a.incident.is_none(), &a.namespace, &a.name).cmp(&(
            b.incident.is_none(),
            &b.namespace,
            &b.name,
        ))
    });
}

/// One page of the board.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub query: Query,
    pub rows: Vec<Row>,
    /// 1-based; `pages` is at least 1.
    pub page: usize,
    pub pages: usize,
    /// CronJobs the filter kept, on every page.
    pub total: usize,
    /// Of those, failing (an open incident).
    pub failing: usize,
    pub now: DateTime<Utc>,
}

/// Filters, sorts and cuts the rows; a page past the last is an error to show.
pub fn board(rows: Vec<Row>, query: &Query, now: DateTime<Utc>) -> Result<Page, String> {
    let mut rows: Vec<Row> = rows
        .into_iter()
        .filter(|r| query.namespace.as_ref().is_none_or(|ns| &r.namespace == ns))
        .filter(|r| query.filter.keeps(r))
        .collect();
    sort(&mut rows);
    let total = rows.len();
    let failing = rows.iter().filter(|r| r.incident.is_some()).count();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = query.page.max(1);
    if page > pages {
        return Err(format!(
            "There {} only {pages} page{} of CronJobs here: `{}`.",
            if pages == 1 { "is" } else { "are" },
            if pages == 1 { "" } else { "s" },
            query.command_for(pages)
        ));
    }
    let rows = rows
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    Ok(Page {
        query: query.clone(),
        rows,
        page,
        pages,
        total,
        failing,
        now,
    })
}

impl Page {
    /// "120 CronJobs in `billing` · 3 failing".
    pub fn title(&self) -> String {
        let scope = match &self.query.namespace {
            Some(ns) => format!(" in `{ns}`"),
            None => String::new(),
        };
        let mut t = format!(
            "{} CronJob{}{}{scope}",
            self.total,
            if self.total == 1 { "" } else { "s" },
            self.query.filter.adjective()
        );
        if self.query.filter != Filter::Failing && self.failing > 0 {
            t.push_str(&format!(" · {} failing", self.failing));
        }
        t
    }

    /// What to say when the filter kept nothing.
    pub fn empty_text(&self) -> Option<String> {
        if self.total > 0 {
            return None;
        }
        let scope = match &self.query.namespace {
            Some(ns) => format!(" in namespace `{ns}`"),
            None => String::new(),
        };
        Some(match self.query.filter {
            Filter::All => format!("No CronJobs are watched{scope}."),
            Filter::Failing => format!("No CronJob{scope} is failing: no open incident. ✅"),
            Filter::Missed => format!("No CronJob{scope} missed its last run."),
            Filter::Held => format!("No CronJob{scope} is held or suspended."),
        })
    }

    /// "page 1 of 3 — `/cronjobs --page 2`"; `None` on a single page.
    pub fn footer(&self) -> Option<String> {
        if self.pages <= 1 {
            return None;
        }
        let mut t = format!("page {} of {}", self.page, self.pages);
        if self.page < self.pages {
            t.push_str(&format!(
                " — next: `{}`",
                self.query.command_for(self.page + 1)
            ));
        }
        if self.page > 1 {
            t.push_str(&format!(
                " — previous: `{}`",
                self.query.command_for(self.page - 1)
            ));
        }
        Some(t)
    }
}

/// Column headings of the board.
pub const HEADERS: [&str; 8] = [
    "CronJob",
    "Schedule",
    "Next run",
    "Last success",
    "Last failure",
    "In a row",
    "Typical",
    "State",
];

/// The schedule with its zone: `0 3 * * * (Europe/Berlin)`, UTC when unset.
pub fn schedule_text(row: &Row) -> String {
    format!(
        "{} ({})",
        row.schedule.trim(),
        row.time_zone.as_deref().unwrap_or("UTC")
    )
}

/// A duration in at most two units: `35s`, `4m 10s`, `2h 5m`, `3d 4h`.
pub fn duration_text(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, _) if secs == 0 => format!("{mins}m"),
        (0, 0, _) => format!("{mins}m {secs}s"),
        (0, _, 0) => format!("{hours}h"),
        (0, _, _) => format!("{hours}h {mins}m"),
        (_, 0, _) => format!("{days}d"),
        _ => format!("{days}d {hours}h"),
    }
}

/// `t` seen from `now`: `in 42m`, `in <1m`, `3h 5m ago`, `just now`; `—`
/// without one.
pub fn relative(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(t) = t else {
        return "—".into();
    };
    let d = t - now;
    if d.num_seconds().abs() < 60 {
        if d > Duration::zero() {
            "in <1m".into()
        } else {
            "just now".into()
        }
    } else if d > Duration::zero() {
        format!("in {}", duration_text(d))
    } else {
        format!("{} ago", duration_text(-d))
    }
}

/// The time in UTC with how long ago (or ahead) it is.
pub fn when_text(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        None => "—".into(),
        Some(t) => format!(
            "{} ({})",
            t.format("%Y-%m-%d %H:%M UTC"),
            relative(Some(t), now)
        ),
    }
}

/// The state column: incident, snooze, hold, suspension, missed run,
/// schedule warning, or fine.
pub fn state_text(row: &Row, now: DateTime<Utc>) -> String {
    let mut parts = Vec::new();
    if let Some(i) = row.incident {
        parts.push(format!(
            "🔴 failing since {} ({} in a row)",
            relative(Some(i.since), now),
            i.failures
        ));
    }
    if let Some(s) = &row.snooze {
        parts.push(match s.until {
            Some(until) => format!("🔕 snoozed for {} more", duration_text(until - now)),
            None => "🔕 snoozed until it recovers".into(),
        });
    }
    if let Some(h) = &row.hold_id {
        parts.push(format!("⏸️ held ({h})"));
    } else if row.suspended {
        parts.push("⏸️ suspended".into());
    }
    if let Some(slot) = row.missed {
        parts.push(format!(
            "⏰ missed the run due {}",
            relative(Some(slot), now)
        ));
    }
    if row.warning.is_some() {
        parts.push("⚠️ bad schedule".into());
    }
    if parts.is_empty() {
        "✅ fine".into()
    } else {
        parts.join(" · ")
    }
}

/// The cells of one row, in [`HEADERS`] order (plain text).
pub fn cells(row: &Row, now: DateTime<Utc>) -> [String; 8] {
    [
        row.key(),
        schedule_text(row),
        if row.warning.is_some() && row.next_run.is_none() {
            "?".into()
        } else if row.suspended || row.hold_id.is_some() {
            "— (suspended)".into()
        } else {
            relative(row.next_run, now)
        },
        relative(row.last_success, now),
        relative(row.last_failure, now),
        row.failures_in_a_row.to_string(),
        row.typical.map(duration_text).unwrap_or_else(|| "—".into()),
        state_text(row, now),
    ]
}

/// `/cronjobs <name>`: one CronJob and its last runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub row: Row,
    /// Newest first, at most [`DETAIL_RUNS`].
    pub runs: Vec<Run>,
    pub now: DateTime<Utc>,
}

impl Detail {
    pub fn new(entry: &Entry, now: DateTime<Utc>) -> Detail {
        Detail {
            row: row(entry, now),
            runs: entry
                .history
                .runs
                .iter()
                .rev()
                .take(DETAIL_RUNS)
                .cloned()
                .collect(),
            now,
        }
    }

    /// Label and plain-text value of each fact, in order.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let r = &self.row;
        let now = self.now;
        let mut facts = vec![
            ("Schedule", schedule_text(r)),
            (
                "Next run",
                if r.suspended || r.hold_id.is_some() {
                    "— (suspended)".into()
                } else {
                    when_text(r.next_run, now)
                },
            ),
            ("Last success", when_text(r.last_success, now)),
            ("Last failure", when_text(r.last_failure, now)),
            ("Failures in a row", r.failures_in_a_row.to_string()),
            (
                "Typical duration",
                match r.typical {
                    Some(d) => format!("{} (median of recent successes)", duration_text(d)),
                    None => "— (no successful run known)".into(),
                },
            ),
            ("State", state_text(r, now)),
        ];
        if let Some(s) = &r.snooze {
            let mut t = match s.until {
                Some(until) => format!("until {}", when_text(Some(until), now)),
                None => "until it recovers".into(),
            };
            if let Some(reason) = &s.reason {
                t.push_str(&format!(": {reason}"));
            }
            facts.push(("Snoozed", t));
        }
        facts
    }

    /// What is wrong with the CronJob's settings, to show as warnings.
    pub fn warnings(&self) -> Vec<String> {
        self.row
            .warning
            .iter()
            .map(|w| format!("⚠️ {w}: the bot cannot tell its next run or notice a missed one."))
            .collect()
    }
}

/// Column headings of the runs of `/cronjobs <name>`.
pub const RUN_HEADERS: [&str; 4] = ["Job", "Outcome", "Started", "Duration"];

/// The cells of one run, in [`RUN_HEADERS`] order (plain text).
pub fn run_cells(run: &Run, now: DateTime<Utc>) -> [String; 4] {
    [
        run.job.clone(),
        match (run.succeeded, run.rerun) {
            (true, false) => "✓ succeeded".into(),
            (true, true) => "✓ succeeded (rerun)".into(),
            (false, false) => "✗ failed".into(),
            (false, true) => "✗ failed (rerun)".into(),
        },
        relative(run.started_at.or(Some(run.finished_at)), now),
        run.duration()
            .map(duration_text)
            .unwrap_or_else(|| "—".into()),
    ]
}

/// What `/cronjobs …` answers with.
#[derive(Debug, Clone, PartialEq)]
pub enum View {
    Page(Page),
    Detail(Box<Detail>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::incident::Success;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cronjob(ns: &str, name: &str, schedule: &str) -> CronJobSnapshot {
        // Through serde: fields added later (with defaults) need no change here.
        serde_json::from_value(serde_json::json!({
            "namespace": ns,
            "name": name,
            "uid": format!("uid-{name}"),
            "schedule": schedule,
            "time_zone": null,
            "concurrency_policy": "Allow",
            "suspended": false,
            "channel": null,
            "owner": null,
            "alerts_off": false,
            "on_hold": "suspend",
            "backoff_limit": null,
            "containers": ["main"],
        }))
        .expect("a CronJobSnapshot")
    }

    fn entry(c: CronJobSnapshot) -> Entry {
        Entry {
            cronjob: c,
            history: RunHistory::default(),
            incident: None,
            snooze: None,
            running: false,
        }
    }

    fn run(job: &str, ok: bool, start: &str, secs: i64) -> Run {
        let s = at(start);
        Run {
            job: job.into(),
            uid: format!("u-{job}"),
            succeeded: ok,
            started_at: Some(s),
            finished_at: s + Duration::seconds(secs),
            rerun: false,
        }
    }

    #[test]
    fn medians() {
        let s = Duration::seconds;
        let cases: &[(&[i64], Option<i64>)] = &[
            (&[], None),
            (&[30], Some(30)),
            (&[40, 10, 30], Some(30)),
            (&[10, 20, 30, 100], Some(25)),
        ];
        for (input, want) in cases {
            let d: Vec<Duration> = input.iter().map(|x| s(*x)).collect();
            assert_eq!(median(&d), want.map(s), "{input:?}");
        }
    }

    #[test]
    fn texts() {
        let cases = [
            (5, "5s"),
            (60, "1m"),
            (250, "4m 10s"),
            (3600, "1h"),
            (7500, "2h 5m"),
            (86_400 * 3 + 3600 * 4 + 5, "3d 4h"),
            (86_400 * 2, "2d"),
        ];
        for (secs, want) in cases {
            assert_eq!(duration_text(Duration::seconds(secs)), want);
        }
        let now = at("2026-12-01T12:00:00Z");
        assert_eq!(relative(None, now), "—");
        assert_eq!(relative(Some(at("2026-12-01T12:42:00Z")), now), "in 42m");
        assert_eq!(relative(Some(at("2026-12-01T08:55:00Z")), now), "3h 5m ago");
        assert_eq!(relative(Some(at("2026-12-01T11:59:30Z")), now), "just now");
        assert_eq!(
            relative(Some(at("2026-12-01T12:00:30Z")), now),
            "in <1m",
            "a run due in seconds is ahead, not past"
        );
    }

    #[test]
    fn a_row_tells_the_story() {
        let now = at("2026-12-01T12:00:00Z");
        let mut c = cronjob("billing", "billing-sync", "0 3 * * *");
        c.time_zone = Some("Europe/Berlin".into());
        let mut e = entry(c);
        e.history
            .record(run("billing-sync-1", true, "2026-11-30T02:00:00Z", 30));
        e.history
            .record(run("billing-sync-2", true, "2026-11-29T02:00:00Z", 50));
        e.history
            .record(run("billing-sync-3", false, "2026-12-01T02:00:00Z", 10));
        e.incident = Some(Incident {
            since: at("2026-12-01T02:00:10Z"),
            failures: 1,
        });
        let r = row(&e, now);
        assert_eq!(r.typical, Some(Duration::seconds(40)));
        assert_eq!(r.failures_in_a_row, 1);
        assert_eq!(r.last_failure, Some(at("2026-12-01T02:00:10Z")));
        assert_eq!(
            cells(&r, now),
            [
                "billing/billing-sync".to_string(),
                "0 3 * * * (Europe/Berlin)".into(),
                "in 14h".into(),
                "1d 9h ago".into(),
                "9h 59m ago".into(),
                "1".into(),
                "40s".into(),
                "🔴 failing since 9h 59m ago (1 in a row)".into(),
            ]
        );
    }

    #[test]
    fn bad_schedules_warn_and_never_panic() {
        let now = at("2026-12-01T12:00:00Z");
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("not a cron", None, "unparsable schedule"),
            ("@every 1h", None, "`@every`"),
            ("0 3 * * *", Some("Mars/Olympus"), "unknown time zone"),
            ("0 0 30 2 *", None, "never runs"),
        ];
        for (schedule, tz, want) in cases {
            let mut c = cronjob("ops", "x", schedule);
            c.time_zone = tz.map(str::to_string);
            let d = Detail::new(&entry(c), now);
            assert!(
                d.row.warning.as_deref().unwrap_or("").contains(want),
                "{schedule}: {:?}",
                d.row.warning
            );
            assert_eq!(cells(&d.row, now)[2], "?");
            assert!(cells(&d.row, now)[7].contains("⚠️ bad schedule"));
            assert!(d.warnings()[0].contains(want));
        }
    }

    #[test]
    fn missed_runs() {
        let now = at("2026-12-01T12:00:00Z");
        // Hourly; the last run known started at 09:00 → 11:00 has no Job.
        let mut e = entry(cronjob("ops", "hourly", "0 * * * *"));
        e.history
            .record(run("hourly-1", true, "2026-12-01T09:00:05Z", 30));
        assert_eq!(row(&e, now).missed, Some(at("2026-12-01T11:00:00Z")));
        // Within the grace: 12:00 is not yet missed, 11:00 is the slot judged.
        e.history
            .record(run("hourly-2", true, "2026-12-01T11:00:05Z", 30));
        assert_eq!(row(&e, now).missed, None);
        // A Job running now: not judged here.
        let mut running = entry(cronjob("ops", "hourly", "0 * * * *"));
        running
            .history
            .record(run("hourly-1", true, "2026-12-01T09:00:05Z", 30));
        running.running = true;
        assert_eq!(row(&running, now).missed, None);
        // Suspended: nothing is due.
        let mut s = e.clone();
        s.history = RunHistory::default();
        s.history
            .record(run("hourly-1", true, "2026-12-01T09:00:05Z", 30));
        s.cronjob.suspended = true;
        assert_eq!(row(&s, now).missed, None);
        // Nothing known: no claim.
        assert_eq!(
            row(&entry(cronjob("ops", "new", "0 * * * *")), now).missed,
            None
        );
        // The controller's lastSuccessfulTime counts.
        let mut c = cronjob("ops", "hourly", "0 * * * *");
        c.last_successful_time = Some(at("2026-12-01T11:01:00Z"));
        assert_eq!(row(&entry(c), now).missed, None);
    }

    fn rows(n: usize, failing: &[usize]) -> Vec<Row> {
        let now = at("2026-12-01T12:00:00Z");
        (0..n)
            .map(|i| {
                let mut e = entry(cronjob(
                    if i % 2 == 0 { "a" } else { "b" },
                    &format!("job-{i:03}"),
                    "*/5 * * * *",
                ));
                if failing.contains(&i) {
                    e.incident = Some(Incident {
                        since: at("2026-12-01T11:00:00Z"),
                        failures: 2,
                    });
                }
                if i == 7 {
                    e.cronjob.hold_id = Some("hold-abc".into());
                }
                row(&e, now)
            })
            .collect()
    }

    #[test]
    fn filters_sorting_and_pages() {
        let now = at("2026-12-01T12:00:00Z");
        let q = |namespace: Option<&str>, filter, page| Query {
            namespace: namespace.map(str::to_string),
            filter,
            page,
        };
        let all = rows(120, &[5, 90]);
        let p1 = board(all.clone(), &q(None, Filter::All, 1), now).unwrap();
        assert_eq!(
            (p1.page, p1.pages, p1.total, p1.rows.len()),
            (1, 3, 120, 50)
        );
        // Failing first, then by namespace and name.
        assert_eq!(p1.rows[0].key(), "a/job-090");
        assert_eq!(p1.rows[1].key(), "b/job-005");
        assert_eq!(p1.rows[2].key(), "a/job-000");
        assert_eq!(p1.title(), "120 CronJobs · 2 failing");
        assert_eq!(
            p1.footer().unwrap(),
            "page 1 of 3 — next: `/cronjobs --page 2`"
        );
        let p3 = board(all.clone(), &q(None, Filter::All, 3), now).unwrap();
        assert_eq!(p3.rows.len(), 20);
        assert_eq!(p3.rows.last().unwrap().key(), "b/job-119");
        assert_eq!(
            p3.footer().unwrap(),
            "page 3 of 3 — previous: `/cronjobs --page 2`"
        );
        assert!(
            board(all.clone(), &q(None, Filter::All, 4), now)
                .unwrap_err()
                .contains("only 3 pages")
        );
        // 0 means the first page.
        assert_eq!(
            board(all.clone(), &q(None, Filter::All, 0), now)
                .unwrap()
                .page,
            1
        );

        let failing = board(all.clone(), &q(None, Filter::Failing, 1), now).unwrap();
        assert_eq!(failing.total, 2);
        assert_eq!(failing.title(), "2 CronJobs failing");
        assert_eq!(failing.footer(), None);

        let ns = board(all.clone(), &q(Some("a"), Filter::All, 2), now).unwrap();
        assert_eq!((ns.total, ns.pages, ns.rows.len()), (60, 2, 10));
        assert_eq!(ns.title(), "60 CronJobs in `a` · 1 failing");
        assert_eq!(
            ns.footer().unwrap(),
            "page 2 of 2 — previous: `/cronjobs a --page 1`"
        );

        let held = board(all.clone(), &q(None, Filter::Held, 1), now).unwrap();
        assert_eq!(held.rows.len(), 1);
        assert!(cells(&held.rows[0], now)[7].contains("held (hold-abc)"));

        let none = board(all, &q(Some("zzz"), Filter::Failing, 1), now).unwrap();
        assert!(
            none.empty_text()
                .unwrap()
                .contains("No CronJob in namespace `zzz` is failing")
        );
    }

    #[test]
    fn detail_lists_the_last_runs_newest_first() {
        let now = at("2026-12-01T12:00:00Z");
        let mut e = entry(cronjob("ops", "r", "0 * * * *"));
        for i in 0..12 {
            let start = at("2026-12-01T00:00:00Z") + Duration::hours(i);
            e.history.record(Run {
                job: format!("r-{i}"),
                uid: format!("u{i}"),
                succeeded: i != 11,
                started_at: Some(start),
                finished_at: start + Duration::seconds(65),
                rerun: false,
            });
        }
        e.history.last_success = Some(Success {
            job: "r-10".into(),
            at: at("2026-12-01T10:01:05Z"),
        });
        e.snooze = Some(Snooze {
            namespace: "ops".into(),
            cronjob: "r".into(),
            by: "U_BOB".into(),
            platform: "slack".into(),
            at: now,
            until: Some(now + Duration::hours(4)),
            reason: Some("db move".into()),
            suppressed: 0,
        });
        let d = Detail::new(&e, now);
        assert_eq!(d.runs.len(), DETAIL_RUNS);
        assert_eq!(
            run_cells(&d.runs[0], now),
            [
                "r-11".to_string(),
                "✗ failed".into(),
                "1h ago".into(),
                "1m 5s".into()
            ]
        );
        let facts = d.facts();
        assert!(facts.contains(&(
            "Typical duration",
            "1m 5s (median of recent successes)".into()
        )));
        assert!(
            facts
                .iter()
                .any(|(k, v)| *k == "Snoozed" && v.contains("db move"))
        );
        assert!(
            facts
                .iter()
                .any(|(k, v)| *k == "State" && v.contains("🔕 snoozed for 4h more"))
        );
        assert!(d.warnings().is_empty());
    }
}
