//! Watch streams: history replay, bookmarks, `410 Expired`, timeouts and
//! dropped connections.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::watch as signal;
use tokio::time::Instant;

use super::Inner;
use super::error::ApiError;
use super::query::{Filter, Query};
use super::resource::Resource;

/// The apiserver's `--min-request-timeout` is 1800 s; watches without
/// `timeoutSeconds` last that long.
const DEFAULT_WATCH_TIMEOUT_SECS: u64 = 1800;

const WATCH_CHUNK_BYTES: usize = 64 << 10;

fn event_line(kind: &str, obj: &Value) -> Bytes {
    let mut buf = format!("{{\"type\":\"{kind}\",\"object\":").into_bytes();
    if serde_json::to_writer(&mut buf, obj).is_err() {
        buf.extend_from_slice(b"{}");
    }
    buf.extend_from_slice(b"}\n");
    Bytes::from(buf)
}

fn bookmark_line(r: Resource, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": r.kind(), "apiVersion": r.api_version(), "metadata": meta}),
    )
}

fn expired_line(asked: u64, oldest: u64) -> Bytes {
    event_line(
        "ERROR",
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": format!("too old resource version: {asked} ({oldest})"),
            "reason": "Expired",
            "code": 410,
        }),
    )
}

struct Watch {
    inner: Arc<Inner>,
    resource: Resource,
    filter: Filter,
    /// Everything up to this version has been looked at.
    pos: u64,
    pending: VecDeque<Bytes>,
    done: bool,
    bookmarks: bool,
    drop_gen: u64,
    deadline: Instant,
    last_sent: Instant,
    changes: signal::Receiver<u64>,
}

impl Watch {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            if !self.pending.is_empty() {
                let mut chunk = Vec::new();
                while let Some(line) = self.pending.pop_front() {
                    chunk.extend_from_slice(&line);
                    if chunk.len() >= WATCH_CHUNK_BYTES {
                        break;
                    }
                }
                return Some(Ok(Bytes::from(chunk)));
            }
            let now = Instant::now();
            if self.done || now >= self.deadline {
                return None;
            }
            self.changes.borrow_and_update();
            let interval = self.inner.bookmark_interval();
            {
                let s = self.inner.store();
                if s.drop_gen != self.drop_gen {
                    self.done = true;
                    return Some(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "watch dropped by FakeKube::drop_watches",
                    )));
                }
                if self.pos < s.lost_upto {
                    self.pending.push_back(expired_line(self.pos, s.horizon));
                    self.done = true;
                    continue;
                }
                let start = s.history.partition_point(|e| e.rv <= self.pos);
                for e in s.history.range(start..) {
                    if e.resource == self.resource && self.filter.matches(&e.object) {
                        self.pending.push_back(event_line(e.kind, &e.object));
                    }
                }
                self.pos = self.pos.max(s.rv);
                if !self.pending.is_empty() {
                    self.last_sent = now;
                    continue;
                }
                if self.bookmarks && now.duration_since(self.last_sent) >= interval {
                    self.pending
                        .push_back(bookmark_line(self.resource, self.pos, false));
                    self.last_sent = now;
                    continue;
                }
            }
            let mut wake = self.deadline;
            if self.bookmarks {
                wake = wake.min(self.last_sent + interval);
            }
            tokio::select! {
                _ = self.changes.changed() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

pub(super) fn watch_response(
    inner: &Arc<Inner>,
    r: Resource,
    filter: Filter,
    q: &Query,
) -> Result<Response, ApiError> {
    let rv_param = q.get("resourceVersion").unwrap_or("");
    let bookmarks = q.flag("allowWatchBookmarks")?;
    let initial_events = q.flag("sendInitialEvents")?;
    let timeout = match q.int("timeoutSeconds")? {
        // Clamped to a year so the deadline cannot overflow.
        Some(t) if t > 0 => (t as u64).min(365 * 24 * 3600),
        _ => DEFAULT_WATCH_TIMEOUT_SECS,
    };
    let from = if rv_param.is_empty() || rv_param == "0" || initial_events {
        None
    } else {
        Some(rv_param.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("invalid resource version: {rv_param:?}"))
        })?)
    };
    let mut pending = VecDeque::new();
    let mut done = false;
    let changes = inner.changes.subscribe();
    let (pos, drop_gen) = {
        let s = inner.store();
        let pos = match from {
            None => {
                for (_, v) in s.range(r, filter.namespace.as_deref(), None) {
                    if filter.matches(v) {
                        pending.push_back(event_line("ADDED", v));
                    }
                }
                if initial_events && bookmarks {
                    pending.push_back(bookmark_line(r, s.rv, true));
                }
                s.rv
            }
            Some(x) if x < s.horizon => {
                pending.push_back(expired_line(x, s.horizon));
                done = true;
                x
            }
            Some(x) => x,
        };
        (pos, s.drop_gen)
    };
    let now = Instant::now();
    let watch = Watch {
        inner: inner.clone(),
        resource: r,
        filter,
        pos,
        pending,
        done,
        bookmarks,
        drop_gen,
        deadline: now + Duration::from_secs(timeout),
        last_sent: now,
        changes,
    };
    let stream = futures::stream::unfold(watch, |mut w| async move {
        let item = w.next_chunk().await?;
        Some((item, w))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
