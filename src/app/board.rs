//! `/cronjobs`: the status board and one CronJob in detail (`core::board`).
//!
//! Gathers each CronJob's facts (the CronJob cache, its run history, its
//! incidents on every platform, its snooze, its running Jobs when missed runs
//! are asked for) and lets the core filter, sort and cut them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::App;
use crate::chat::Reply;
use crate::core::CronJobSnapshot;
use crate::core::board::{self, Detail, Entry, Filter, Incident, Query, View};

impl App {
    /// Open incidents by `namespace/cronjob`, over every platform's thread:
    /// the earliest start and the most failures.
    async fn open_incidents(&self) -> HashMap<String, Incident> {
        let mut open: HashMap<String, Incident> = HashMap::new();
        let threads = match self.store.threads().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the alert threads for /cronjobs");
                return open;
            }
        };
        for (key, t) in threads {
            if t.recovered.is_some() {
                continue;
            }
            let key = key.strip_prefix("teams/").unwrap_or(&key).to_string();
            let since = t.since.unwrap_or(t.opened_at);
            open.entry(key)
                .and_modify(|i| {
                    i.since = i.since.min(since);
                    i.failures = i.failures.max(t.failures);
                })
                .or_insert(Incident {
                    since,
                    failures: t.failures,
                });
        }
        open
    }

    async fn entry(
        &self,
        c: CronJobSnapshot,
        incidents: &HashMap<String, Incident>,
        running: &HashSet<String>,
        now: DateTime<Utc>,
    ) -> Entry {
        let key = c.key();
        Entry {
            history: self.run_history(&c.namespace, &c.name),
            incident: incidents.get(&key).copied(),
            snooze: self.active_snooze(&c.namespace, &c.name, now).await,
            running: running.contains(&key),
            cronjob: c,
        }
    }

    /// The CronJobs with a running Job (`namespace/cronjob`); asked of the
    /// cluster only when missed runs matter.
    async fn running(&self) -> HashSet<String> {
        match self.cluster.running_jobs_by_cronjob().await {
            Ok(running) => running.into_keys().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list running Jobs for /cronjobs");
                HashSet::new()
            }
        }
    }

    fn watched(&self, namespace: Option<&str>) -> Vec<CronJobSnapshot> {
        self.cronjobs
            .read()
            .expect("cronjob cache lock")
            .values()
            .filter(|c| namespace.is_none_or(|ns| c.namespace == ns))
            .cloned()
            .collect()
    }

    /// `/cronjobs [<namespace>|<cronjob>] [--failing|--missed|--held] [--page N]`.
    pub(crate) async fn board(&self, query: Query) -> Reply {
        let now = Utc::now();
        let cronjobs = self.watched(query.namespace.as_deref());
        if cronjobs.is_empty()
            && let Some(word) = &query.namespace
        {
            // Not a namespace with CronJobs: perhaps a CronJob's name.
            return match self.find_cronjob(word, None) {
                Ok(_) => self.cronjob_detail(word, None).await,
                Err(text) if text.starts_with("No CronJob") => {
                    let namespaces = self.namespaces_like(word);
                    let close = if namespaces.is_empty() {
                        String::new()
                    } else {
                        format!(" Namespaces like it: {}.", namespaces.join(", "))
                    };
                    Reply::Ephemeral(format!(
                        "No CronJobs watched in namespace `{word}`.{close} {text}"
                    ))
                }
                Err(text) => Reply::Ephemeral(text),
            };
        }
        let incidents = self.open_incidents().await;
        let running = if query.filter == Filter::Missed {
            self.running().await
        } else {
            HashSet::new()
        };
        let mut rows = Vec::with_capacity(cronjobs.len());
        for c in cronjobs {
            let e = self.entry(c, &incidents, &running, now).await;
            rows.push(board::row(&e, now));
        }
        match board::board(rows, &query, now) {
            Ok(page) => match page.empty_text() {
                Some(text) => Reply::Ephemeral(text),
                None => Reply::Board(Box::new(View::Page(page))),
            },
            Err(text) => Reply::Ephemeral(text),
        }
    }

    /// Namespaces with CronJobs, those close to `word` first (at most 10).
    fn namespaces_like(&self, word: &str) -> Vec<String> {
        let mut all: Vec<String> = self
            .watched(None)
            .into_iter()
            .map(|c| c.namespace)
            .collect();
        all.sort();
        all.dedup();
        all.sort_by_key(|ns| crate::core::command::edit_distance(word, ns));
        all.into_iter()
            .filter(|ns| crate::core::command::edit_distance(word, ns) <= 3)
            .take(10)
            .map(|ns| format!("`{ns}`"))
            .collect()
    }

    /// `/cronjobs <cronjob> [-n <namespace>]`: one CronJob and its last runs.
    pub(crate) async fn cronjob_detail(&self, name: &str, namespace: Option<&str>) -> Reply {
        let now = Utc::now();
        let c = match self.find_cronjob(name, namespace) {
            Ok(c) => c,
            Err(text) => return Reply::Ephemeral(text),
        };
        let incidents = self.open_incidents().await;
        let running = self.running().await;
        let e = self.entry(c, &incidents, &running, now).await;
        if let Some(w) = board::row(&e, now).warning {
            tracing::warn!(cronjob = %e.cronjob.key(), warning = %w, "CronJob settings");
        }
        Reply::Board(Box::new(View::Detail(Box::new(Detail::new(&e, now)))))
    }
}
