//! Storm digests: when many CronJobs start failing in one channel at once
//! (the database was down at 03:00), one message tells it instead of one
//! alert each.
//!
//! More than `threshold` distinct CronJobs opening an incident in one channel
//! within [`WINDOW`] start a [`Digest`]; every incident opened there while the
//! storm goes on joins it (one line in its thread) until [`QUIET`] passes
//! without a new one.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// New incidents are counted over this window.
pub const WINDOW: Duration = Duration::seconds(60);
/// A storm is over after this long without a new incident in its channel.
pub const QUIET: Duration = Duration::minutes(10);
/// CronJobs named on the digest itself; the full list is in its thread.
pub const LISTED: usize = 15;

/// One CronJob in a storm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    pub namespace: String,
    pub cronjob: String,
    pub job: String,
    pub job_uid: String,
    pub reason: String,
    pub exit_code: Option<i32>,
    pub failed_at: DateTime<Utc>,
    /// It had an alert of its own (it failed before the storm was seen).
    #[serde(default)]
    pub own_alert: bool,
    /// Its incident ended meanwhile.
    #[serde(default)]
    pub recovered: bool,
}

impl DigestEntry {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.cronjob)
    }
}

/// A storm in one channel of one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub id: String,
    /// The routed channel (as alerts are routed).
    pub channel: String,
    /// Where the digest message is, once posted.
    pub posted_in: Option<String>,
    pub ts: Option<String>,
    pub started_at: DateTime<Utc>,
    /// When the last incident joined.
    pub last_at: DateTime<Utc>,
    /// One per CronJob, in the order they failed.
    pub entries: Vec<DigestEntry>,
}

impl Digest {
    pub fn new(id: String, channel: &str, now: DateTime<Utc>) -> Self {
        Digest {
            id,
            channel: channel.to_string(),
            posted_in: None,
            ts: None,
            started_at: now,
            last_at: now,
            entries: Vec::new(),
        }
    }

    /// Whether new incidents in its channel still join it.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        now - self.last_at < QUIET
    }

    /// Adds a CronJob (once; a later failure of it replaces its line's facts).
    pub fn add(&mut self, entry: DigestEntry, now: DateTime<Utc>) -> bool {
        self.last_at = self.last_at.max(now);
        match self.entries.iter_mut().find(|e| e.key() == entry.key()) {
            Some(e) => {
                *e = DigestEntry {
                    own_alert: e.own_alert,
                    ..entry
                };
                false
            }
            None => {
                self.entries.push(entry);
                true
            }
        }
    }

    /// Marks a CronJob's incident as ended; `false` when it is not in the digest.
    pub fn recover(&mut self, namespace: &str, cronjob: &str) -> bool {
        match self
            .entries
            .iter_mut()
            .find(|e| e.namespace == namespace && e.cronjob == cronjob && !e.recovered)
        {
            Some(e) => {
                e.recovered = true;
                true
            }
            None => false,
        }
    }

    /// Failed CronJobs per namespace, most first (ties by name).
    pub fn by_namespace(&self) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &self.entries {
            *counts.entry(e.namespace.as_str()).or_default() += 1;
        }
        let mut v: Vec<(String, usize)> = counts
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    pub fn recovered(&self) -> usize {
        self.entries.iter().filter(|e| e.recovered).count()
    }

    /// When its first failure happened.
    pub fn since(&self) -> DateTime<Utc> {
        self.entries
            .iter()
            .map(|e| e.failed_at)
            .min()
            .unwrap_or(self.started_at)
    }
}

/// The new incidents of one channel in the last [`WINDOW`].
#[derive(Debug, Clone, Default)]
pub struct Recent {
    entries: Vec<(DateTime<Utc>, DigestEntry)>,
}

impl Recent {
    /// Counts `entry` (opened now); returns the entries of the window when
    /// their distinct CronJobs now exceed `threshold` (a storm starts), else
    /// `None`. `threshold == 0`: never.
    pub fn opened(
        &mut self,
        entry: DigestEntry,
        now: DateTime<Utc>,
        threshold: usize,
    ) -> Option<Vec<DigestEntry>> {
        self.entries.retain(|(at, _)| now - *at < WINDOW);
        self.entries.retain(|(_, e)| e.key() != entry.key());
        self.entries.push((now, entry));
        if threshold == 0 || self.entries.len() <= threshold {
            return None;
        }
        Some(
            std::mem::take(&mut self.entries)
                .into_iter()
                .map(|(_, e)| e)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn entry(ns: &str, name: &str) -> DigestEntry {
        DigestEntry {
            namespace: ns.into(),
            cronjob: name.into(),
            job: format!("{name}-1"),
            job_uid: format!("uid-{name}"),
            reason: "BackoffLimitExceeded".into(),
            exit_code: Some(1),
            failed_at: t("2026-12-01T03:00:00Z"),
            own_alert: false,
            recovered: false,
        }
    }

    #[test]
    fn more_than_the_threshold_within_a_minute_starts_a_storm() {
        let mut r = Recent::default();
        let now = t("2026-12-01T03:00:00Z");
        for i in 0..5 {
            assert_eq!(r.opened(entry("ns", &format!("c{i}")), now, 5), None);
        }
        // The same CronJob again does not count twice.
        assert_eq!(r.opened(entry("ns", "c4"), now, 5), None);
        let storm = r.opened(entry("ns", "c5"), now, 5).expect("a storm");
        assert_eq!(storm.len(), 6);
        // Spread over more than a minute: no storm.
        let mut r = Recent::default();
        for i in 0..10 {
            let at = now + Duration::seconds(61 * i);
            assert_eq!(r.opened(entry("ns", &format!("c{i}")), at, 5), None);
        }
        // Threshold 0: digests are off.
        let mut r = Recent::default();
        for i in 0..50 {
            assert_eq!(r.opened(entry("ns", &format!("c{i}")), now, 0), None);
        }
    }

    #[test]
    fn a_digest_counts_cronjobs_once_by_namespace_and_goes_quiet() {
        let now = t("2026-12-01T03:00:30Z");
        let mut d = Digest::new("d1".into(), "C1", now);
        assert!(d.add(entry("ops", "a"), now));
        assert!(d.add(entry("billing", "b"), now));
        assert!(d.add(entry("ops", "c"), now));
        assert!(!d.add(entry("ops", "a"), now), "once per CronJob");
        assert_eq!(d.entries.len(), 3);
        assert_eq!(
            d.by_namespace(),
            vec![("ops".to_string(), 2), ("billing".to_string(), 1)]
        );
        assert_eq!(d.since(), t("2026-12-01T03:00:00Z"));
        assert!(d.recover("ops", "a"));
        assert!(!d.recover("ops", "a"));
        assert_eq!(d.recovered(), 1);
        assert!(d.active(now + Duration::minutes(9)));
        assert!(!d.active(now + QUIET));
    }
}
