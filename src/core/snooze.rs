//! Snoozing a CronJob's alerts: for a while (`1h`, `4h`, `24h`, … at most a
//! week) or until it recovers (a Job of it succeeds). Its failures are still
//! recorded, but posted nowhere while the snooze lasts. Pure: the time comes in.
//!
//! One snooze per CronJob (`namespace/cronjob`), whatever the platform. A
//! second snooze of a snoozed CronJob replaces the first only when the same
//! person asks (to lengthen or shorten it); anyone else is told who snoozed
//! it until when, and may `/unsnooze` it first (approvers may, as they may
//! snooze).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The longest snooze: a week, as the longest `/hold --until`.
pub const MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the alert's *Snooze…* control offers: `(value, label)`.
pub const CHOICES: [(&str, &str); 4] = [
    ("1h", "1 hour"),
    ("4h", "4 hours"),
    ("24h", "24 hours"),
    (UNTIL_RECOVERED, "Until it recovers"),
];

/// The word for "until a Job of it succeeds".
pub const UNTIL_RECOVERED: &str = "until-recovered";

/// A CronJob's alerts, silenced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snooze {
    pub namespace: String,
    pub cronjob: String,
    /// Who snoozed it (a platform user id).
    pub by: String,
    /// Where they did: `slack` or `teams`.
    pub platform: String,
    pub at: DateTime<Utc>,
    /// When it ends by itself; `None`: when the CronJob recovers.
    pub until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Failures not posted because of it.
    #[serde(default)]
    pub suppressed: u32,
}

impl Snooze {
    /// The store key, `namespace/cronjob`.
    pub fn key(&self) -> String {
        key(&self.namespace, &self.cronjob)
    }

    /// Still silencing at `now` (an until-recovered one is, until ended).
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// The store key of a CronJob's snooze.
pub fn key(namespace: &str, cronjob: &str) -> String {
    format!("{namespace}/{cronjob}")
}

/// How long a snooze lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    For(Duration),
    UntilRecovered,
}

impl Length {
    /// When a snooze of this length, made at `now`, ends by itself.
    pub fn until(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Length::For(d) => {
                Some(now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
            }
            Length::UntilRecovered => None,
        }
    }
}

/// `1h`, `90m`, `2d` (humantime, 1 s to a week) or `until-recovered`.
pub fn parse_length(text: &str) -> Result<Length, String> {
    let text = text.trim();
    if matches!(text, UNTIL_RECOVERED | "until-recovery" | "recovered") {
        return Ok(Length::UntilRecovered);
    }
    match humantime::parse_duration(text) {
        Ok(d) if d.as_secs() >= 1 && d <= MAX => Ok(Length::For(d)),
        Ok(_) => Err(format!(
            "`{text}`: snooze for at least 1s and at most a week (`7d`), or `{UNTIL_RECOVERED}`"
        )),
        Err(_) => Err(format!(
            "`{text}` is not a duration: write it like `1h`, `4h`, `24h` or `90m`, or `{UNTIL_RECOVERED}`"
        )),
    }
}

/// What a new snooze of a CronJob does, given the one it has (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// None in force: this one is new.
    New,
    /// The same person's snooze in force: replaced (lengthened or shortened).
    Replace,
    /// Someone else's snooze in force: nothing changes.
    Taken,
}

/// Decides a snooze by `by` at `now` against the CronJob's `current` one.
pub fn decide(current: Option<&Snooze>, by: &str, now: DateTime<Utc>) -> Decision {
    match current {
        Some(s) if s.is_active(now) && s.by == by => Decision::Replace,
        Some(s) if s.is_active(now) => Decision::Taken,
        _ => Decision::New,
    }
}

/// The snoozes whose time ran out at `now` (until-recovered ones never do).
pub fn expired(snoozes: &[Snooze], now: DateTime<Utc>) -> Vec<&Snooze> {
    snoozes.iter().filter(|s| !s.is_active(now)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn snooze(by: &str, until: Option<&str>) -> Snooze {
        Snooze {
            namespace: "billing".into(),
            cronjob: "sync".into(),
            by: by.into(),
            platform: "slack".into(),
            at: at("2024-05-01T10:00:00Z"),
            until: until.map(at),
            reason: None,
            suppressed: 0,
        }
    }

    #[test]
    fn lengths() {
        assert_eq!(
            parse_length("4h"),
            Ok(Length::For(Duration::from_secs(4 * 3600)))
        );
        assert_eq!(
            parse_length("90m"),
            Ok(Length::For(Duration::from_secs(5400)))
        );
        assert_eq!(parse_length("7d"), Ok(Length::For(MAX)));
        assert_eq!(parse_length("until-recovered"), Ok(Length::UntilRecovered));
        for (bad, why) in [
            ("8d", "at most a week"),
            ("0s", "at least 1s"),
            ("soon", "not a duration"),
            ("-1h", "not a duration"),
            ("", "not a duration"),
        ] {
            let e = parse_length(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        for (value, _) in CHOICES {
            assert!(parse_length(value).is_ok(), "{value}");
        }
        let now = at("2024-05-01T10:00:00Z");
        assert_eq!(
            Length::For(Duration::from_secs(3600)).until(now),
            Some(at("2024-05-01T11:00:00Z"))
        );
        assert_eq!(Length::UntilRecovered.until(now), None);
    }

    #[test]
    fn only_the_same_person_replaces_a_snooze_in_force() {
        let now = at("2024-05-01T10:30:00Z");
        let bobs = snooze("U_BOB", Some("2024-05-01T11:00:00Z"));
        assert_eq!(decide(None, "U_BOB", now), Decision::New);
        assert_eq!(decide(Some(&bobs), "U_BOB", now), Decision::Replace);
        assert_eq!(decide(Some(&bobs), "U_ALICE", now), Decision::Taken);
        // Run out (the timer has not ended it yet): as if there were none.
        let later = at("2024-05-01T11:00:00Z");
        assert_eq!(decide(Some(&bobs), "U_ALICE", later), Decision::New);
        let forever = snooze("U_BOB", None);
        assert_eq!(
            decide(Some(&forever), "U_ALICE", at("2030-01-01T00:00:00Z")),
            Decision::Taken
        );
    }

    #[test]
    fn expiry() {
        let now = at("2024-05-01T11:00:00Z");
        let all = [
            snooze("U_A", Some("2024-05-01T10:59:59Z")),
            snooze("U_B", Some("2024-05-01T11:00:00Z")),
            snooze("U_C", Some("2024-05-01T11:00:01Z")),
            snooze("U_D", None),
        ];
        let gone: Vec<&str> = expired(&all, now).iter().map(|s| s.by.as_str()).collect();
        assert_eq!(gone, ["U_A", "U_B"]);
        assert!(all[2].is_active(now) && all[3].is_active(now));
        assert_eq!(all[0].key(), "billing/sync");
    }
}
