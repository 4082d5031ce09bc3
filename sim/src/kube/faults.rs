//! Fault injection: scripted error answers, outages, latency, dropped
//! watches, compaction and history limits.

use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::json;
use tokio::time::Instant;

use super::error::{ApiError, reason_for};
use super::store::Store;
use super::{FakeKube, Inner, lock};

pub(super) struct FailRule {
    method: String,
    prefix: String,
    remaining: usize,
    status: u16,
    retry_after: Option<u64>,
}

pub(super) struct Knobs {
    pub(super) rules: Vec<FailRule>,
    /// Every request is answered with this status until then.
    pub(super) outage: Option<(Instant, u16)>,
    pub(super) latency: Duration,
    pub(super) bookmark_interval: Duration,
}

impl Inner {
    pub(super) fn bookmark_interval(&self) -> Duration {
        lock(&self.knobs).bookmark_interval
    }

    pub(super) fn take_fault(&self, method: &str, path: &str) -> (Duration, Option<Response>) {
        let mut k = lock(&self.knobs);
        let latency = k.latency;
        match k.outage {
            Some((until, status)) if Instant::now() < until => {
                let err = ApiError::new(
                    status,
                    reason_for(status),
                    format!("injected outage: the apiserver answers {status} for {method} {path}"),
                );
                return (latency, Some(err.response()));
            }
            Some(_) => k.outage = None,
            None => {}
        }
        let hit = k.rules.iter_mut().find(|f| {
            f.remaining > 0
                && (f.method == "*" || f.method.eq_ignore_ascii_case(method))
                && path.starts_with(&f.prefix)
        });
        let resp = hit.map(|f| {
            f.remaining -= 1;
            let mut err = ApiError::new(
                f.status,
                reason_for(f.status),
                format!("injected fault for {method} {path}"),
            );
            if let Some(s) = f.retry_after {
                err.details = Some(json!({"retryAfterSeconds": s}));
            }
            let mut resp = err.response();
            if let Some(s) = f.retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            resp
        });
        k.rules.retain(|f| f.remaining > 0);
        (latency, resp)
    }
}

impl FakeKube {
    /// Ends every open watch stream abruptly (the connection is cut).
    pub fn drop_watches(&self) {
        self.inner.mutate(|s| s.drop_gen += 1);
    }

    /// Forgets all watch history: any resume from a version before now gets
    /// `410 Expired` (open, caught-up watches carry on).
    pub fn compact(&self) {
        self.inner.mutate(Store::compact);
    }

    /// The next `times` requests with this method (`*` = any) and path prefix
    /// are answered with `status` (Status JSON; `Retry-After` if given).
    pub fn fail_next(
        &self,
        method: &str,
        path_prefix: &str,
        times: usize,
        status: u16,
        retry_after: Option<u64>,
    ) {
        lock(&self.inner.knobs).rules.push(FailRule {
            method: method.to_string(),
            prefix: path_prefix.to_string(),
            remaining: times,
            status,
            retry_after,
        });
    }

    /// Drops every failure rule still pending and ends an outage.
    pub fn clear_faults(&self) {
        let mut k = lock(&self.inner.knobs);
        k.rules.clear();
        k.outage = None;
    }

    /// The apiserver is down for `d`: open watches are cut and every request
    /// (discovery, `/version` and health included) is answered with `status`
    /// (e.g. 500 or 503) until `d` has passed or [`FakeKube::end_outage`].
    pub fn fail_all_for(&self, d: Duration, status: u16) {
        lock(&self.inner.knobs).outage = Some((Instant::now() + d, status));
        self.drop_watches();
    }

    pub fn end_outage(&self) {
        lock(&self.inner.knobs).outage = None;
    }

    /// Whether an outage is in progress.
    pub fn in_outage(&self) -> bool {
        lock(&self.inner.knobs)
            .outage
            .is_some_and(|(until, _)| Instant::now() < until)
    }

    /// Delay added before every response.
    pub fn set_latency(&self, d: Duration) {
        lock(&self.inner.knobs).latency = d;
    }

    /// How long a watch that asked for bookmarks stays idle before one.
    pub fn set_bookmark_interval(&self, d: Duration) {
        lock(&self.inner.knobs).bookmark_interval = d;
        self.inner.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// How many watch events are retained (default 10 000).
    pub fn set_history_limit(&self, n: usize) {
        self.inner.mutate(|s| {
            s.history_limit = n;
            s.trim();
        });
    }
}
