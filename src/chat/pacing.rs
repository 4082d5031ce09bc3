//! Paced sending: every send to a conversation waits its turn in one FIFO
//! queue per (platform, conversation), released at the platform's documented
//! rate. A 429 pauses that queue for its `Retry-After` (the message keeps its
//! place and is sent again) instead of failing the message or letting every
//! task retry on its own; other queues go on.
//!
//! Each queue has two lanes: what people are waiting for (approval cards,
//! replies, hold summaries, an alert's status after a click) goes before the
//! bulk of alerts, so a storm of failures never starves an approval. Within a
//! lane the order is first come, first sent.
//!
//! Platform-neutral: the adapters say which conversation a call counts
//! against, the [`Limit`]s that apply, and run the call; a call answers
//! [`SendError::RateLimited`] for a 429.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{ChatError, Outgoing};

/// How sends are paced (`RERUN_BOT_CHAT_PACING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Pacing {
    /// At the platform's documented rates, so that 429s stay rare.
    #[default]
    Platform,
    /// As fast as the platform takes them: only a 429 slows a queue down
    /// (for fakes without rate limits).
    Off,
}

/// Which lane of its queue a send waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Someone is waiting for it: goes first.
    Interactive,
    /// Alerts: sent when no interactive message waits.
    Bulk,
}

impl Lane {
    /// Alerts are bulk, unless they show what a person did (a status);
    /// everything else answers a person.
    pub fn of(message: &Outgoing<'_>) -> Lane {
        match message {
            Outgoing::Alert { status: None, .. } | Outgoing::Digest(_) => Lane::Bulk,
            Outgoing::Alert {
                status: Some(_), ..
            }
            | Outgoing::Notice(_)
            | Outgoing::Request(_)
            | Outgoing::Batch(_)
            | Outgoing::History(_)
            | Outgoing::Operation(_) => Lane::Interactive,
        }
    }

    fn index(self) -> usize {
        match self {
            Lane::Interactive => 0,
            Lane::Bulk => 1,
        }
    }
}

/// A platform's rate limit for one queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// A token bucket: `burst` at once, then one per `every`.
    Bucket { burst: u32, every: Duration },
    /// At most `max` sends within any `window`.
    Window { max: u32, window: Duration },
}

/// What a paced call answers when it did not succeed.
#[derive(Debug)]
pub enum SendError {
    /// HTTP 429: the queue waits `Retry-After` (1 s when absent), then the
    /// same call is made again.
    RateLimited(Option<Duration>),
    /// Anything else: final, handed to the caller.
    Failed(ChatError),
}

impl From<ChatError> for SendError {
    fn from(e: ChatError) -> Self {
        SendError::Failed(e)
    }
}

/// A message answered 429 this many times fails (the app's own retry takes over).
const MAX_RATE_LIMITED: u32 = 10;
/// A `Retry-After` longer than this is taken as this.
const MAX_PAUSE: Duration = Duration::from_secs(120);
/// The pause after a 429 without `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// Idle queues are forgotten once there are more than this many.
const QUEUES_KEPT: usize = 64;

/// The queues of one platform (or one kind of call), by conversation.
pub struct Pacer {
    platform: &'static str,
    limits: Vec<Limit>,
    /// Calls of one queue in flight at once (1: strictly in order).
    in_flight: usize,
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    tickets: AtomicU64,
}

impl Pacer {
    pub fn new(platform: &'static str, limits: Vec<Limit>, in_flight: usize) -> Self {
        Pacer {
            platform,
            limits,
            in_flight: in_flight.max(1),
            queues: Mutex::new(HashMap::new()),
            tickets: AtomicU64::new(0),
        }
    }

    /// Runs `attempt` when it is `key`'s turn in `lane`; after a 429 the
    /// queue pauses and the same attempt is made again, in its place.
    pub async fn send<T, F, Fut>(
        &self,
        key: &str,
        lane: Lane,
        mut attempt: F,
    ) -> Result<T, ChatError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SendError>>,
    {
        let queue = self.queue(key);
        let seq = self.tickets.fetch_add(1, Ordering::Relaxed);
        let mut ticket = Ticket::enqueue(queue.clone(), lane, seq);
        let mut limited = 0;
        loop {
            let flight = ticket.turn(&self.limits, self.in_flight).await;
            let result = attempt().await;
            drop(flight);
            match result {
                Ok(v) => return Ok(v),
                Err(SendError::Failed(e)) => return Err(e),
                Err(SendError::RateLimited(after)) => {
                    limited += 1;
                    let pause = after.unwrap_or(DEFAULT_PAUSE).min(MAX_PAUSE);
                    queue.slow_down(pause, &self.limits);
                    tracing::warn!(
                        platform = self.platform,
                        conversation = key,
                        pause_ms = pause.as_millis() as u64,
                        times = limited,
                        "rate limited; the conversation's queue pauses"
                    );
                    if limited >= MAX_RATE_LIMITED {
                        return Err(ChatError::Unavailable(format!(
                            "{}: rate limited {limited} times in a row",
                            self.platform
                        )));
                    }
                    ticket.requeue();
                }
            }
        }
    }

    fn queue(&self, key: &str) -> Arc<Queue> {
        let mut queues = self.queues.lock().expect("pacer queues lock");
        if let Some(q) = queues.get(key) {
            return q.clone();
        }
        if queues.len() >= QUEUES_KEPT {
            let now = Instant::now();
            queues.retain(|_, q| Arc::strong_count(q) > 1 || !q.lock().idle(&self.limits, now));
        }
        let now = Instant::now();
        let q = Arc::new(Queue {
            state: Mutex::new(State {
                lanes: [VecDeque::new(), VecDeque::new()],
                in_flight: 0,
                paused_until: None,
                meters: self.limits.iter().map(|l| Meter::new(l, now)).collect(),
            }),
            changed: Notify::new(),
        });
        queues.insert(key.to_string(), q.clone());
        q
    }
}

struct Queue {
    state: Mutex<State>,
    changed: Notify,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a 429: nothing goes out for `pause`, and what the meters had
    /// saved up is spent (the platform's budget clearly is).
    fn slow_down(&self, pause: Duration, limits: &[Limit]) {
        let now = Instant::now();
        {
            let mut st = self.lock();
            let until = now + pause;
            st.paused_until = Some(st.paused_until.map_or(until, |p| p.max(until)));
            for (meter, limit) in st.meters.iter_mut().zip(limits) {
                meter.spend_all(limit, now);
            }
        }
        self.changed.notify_waiters();
    }
}

struct State {
    /// Waiting tickets by lane, each in ticket order.
    lanes: [VecDeque<u64>; 2],
    in_flight: usize,
    paused_until: Option<Instant>,
    meters: Vec<Meter>,
}

impl State {
    fn head(&self) -> Option<(usize, u64)> {
        self.lanes
            .iter()
            .enumerate()
            .find_map(|(i, lane)| lane.front().map(|&seq| (i, seq)))
    }

    /// When the next send may go, as far as the limits and pauses say.
    fn ready_at(&mut self, limits: &[Limit], now: Instant) -> Instant {
        let mut at = self.paused_until.filter(|p| *p > now).unwrap_or(now);
        for (meter, limit) in self.meters.iter_mut().zip(limits) {
            at = at.max(meter.ready_at(limit, now));
        }
        at
    }

    fn idle(&mut self, limits: &[Limit], now: Instant) -> bool {
        self.lanes.iter().all(VecDeque::is_empty)
            && self.in_flight == 0
            && self.paused_until.is_none_or(|p| p <= now)
            && self
                .meters
                .iter_mut()
                .zip(limits)
                .all(|(m, l)| m.recovered(l, now))
    }
}

/// The state of one [`Limit`].
enum Meter {
    Bucket { tokens: f64, at: Instant },
    Window { sent: VecDeque<Instant> },
}

impl Meter {
    fn new(limit: &Limit, now: Instant) -> Meter {
        match limit {
            Limit::Bucket { burst, .. } => Meter::Bucket {
                tokens: f64::from(*burst),
                at: now,
            },
            Limit::Window { .. } => Meter::Window {
                sent: VecDeque::new(),
            },
        }
    }

    /// Brings the meter up to `now` (refill, forget old sends).
    fn refresh(&mut self, limit: &Limit, now: Instant) {
        match (self, limit) {
            (Meter::Bucket { tokens, at }, Limit::Bucket { burst, every }) => {
                let every = every.as_secs_f64().max(1e-6);
                let refill = now.saturating_duration_since(*at).as_secs_f64() / every;
                *tokens = (*tokens + refill).min(f64::from(*burst));
                *at = now;
            }
            (Meter::Window { sent }, Limit::Window { window, .. }) => {
                while sent
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= *window)
                {
                    sent.pop_front();
                }
            }
            _ => {}
        }
    }

    fn ready_at(&mut self, limit: &Limit, now: Instant) -> Instant {
        self.refresh(limit, now);
        match (&*self, limit) {
            (Meter::Bucket { tokens, .. }, Limit::Bucket { every, .. }) => {
                if *tokens >= 1.0 {
                    now
                } else {
                    now + every.mul_f64(1.0 - tokens)
                }
            }
            (Meter::Window { sent }, Limit::Window { max, window }) => {
                let max = *max as usize;
                if sent.len() < max {
                    now
                } else {
                    sent[sent.len() - max] + *window
                }
            }
            _ => now,
        }
    }

    fn take(&mut self, limit: &Limit, now: Instant) {
        self.refresh(limit, now);
        match self {
            Meter::Bucket { tokens, .. } => *tokens = (*tokens - 1.0).max(0.0),
            Meter::Window { sent } => sent.push_back(now),
        }
    }

    /// A bucket starts again from empty; a window already counts what went.
    fn spend_all(&mut self, limit: &Limit, now: Instant) {
        self.refresh(limit, now);
        if let Meter::Bucket { tokens, .. } = self {
            *tokens = 0.0;
        }
    }

    fn recovered(&mut self, limit: &Limit, now: Instant) -> bool {
        self.refresh(limit, now);
        match (&*self, limit) {
            (Meter::Bucket { tokens, .. }, Limit::Bucket { burst, .. }) => {
                *tokens >= f64::from(*burst)
            }
            (Meter::Window { sent }, _) => sent.is_empty(),
            _ => true,
        }
    }
}

/// A send's place in its queue; leaving the queue (sent, failed, or the
/// caller gave up) makes way for the next.
struct Ticket {
    queue: Arc<Queue>,
    lane: usize,
    seq: u64,
    queued: bool,
}

impl Ticket {
    fn enqueue(queue: Arc<Queue>, lane: Lane, seq: u64) -> Ticket {
        let mut ticket = Ticket {
            queue,
            lane: lane.index(),
            seq,
            queued: false,
        };
        ticket.requeue();
        ticket
    }

    /// Back into its lane, in ticket order (ahead of later ones).
    fn requeue(&mut self) {
        {
            let mut st = self.queue.lock();
            let lane = &mut st.lanes[self.lane];
            let at = lane.partition_point(|&s| s < self.seq);
            lane.insert(at, self.seq);
        }
        self.queued = true;
        self.queue.changed.notify_waiters();
    }

    /// Waits until this ticket heads the queue, a call may be in flight and
    /// the limits allow a send; then takes its place in flight.
    async fn turn(&mut self, limits: &[Limit], in_flight: usize) -> InFlight {
        loop {
            let changed = self.queue.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let wake_at = {
                let mut st = self.queue.lock();
                let now = Instant::now();
                if st.head() != Some((self.lane, self.seq)) || st.in_flight >= in_flight {
                    None
                } else {
                    let ready = st.ready_at(limits, now);
                    if ready <= now {
                        for (meter, limit) in st.meters.iter_mut().zip(limits) {
                            meter.take(limit, now);
                        }
                        st.lanes[self.lane].pop_front();
                        st.in_flight += 1;
                        self.queued = false;
                        drop(st);
                        self.queue.changed.notify_waiters();
                        return InFlight {
                            queue: self.queue.clone(),
                        };
                    }
                    Some(ready)
                }
            };
            match wake_at {
                None => changed.await,
                Some(at) => {
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.queued {
            {
                let mut st = self.queue.lock();
                let seq = self.seq;
                st.lanes[self.lane].retain(|&s| s != seq);
            }
            self.queue.changed.notify_waiters();
        }
    }
}

/// A call on its way; dropping it lets the next one go.
struct InFlight {
    queue: Arc<Queue>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut st = self.queue.lock();
            st.in_flight = st.in_flight.saturating_sub(1);
        }
        self.queue.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(burst: u32, every_ms: u64) -> Limit {
        Limit::Bucket {
            burst,
            every: Duration::from_millis(every_ms),
        }
    }

    #[test]
    fn a_bucket_lets_a_burst_through_then_one_per_interval() {
        let limit = bucket(3, 1000);
        let t0 = Instant::now();
        let mut m = Meter::new(&limit, t0);
        for _ in 0..3 {
            assert_eq!(m.ready_at(&limit, t0), t0);
            m.take(&limit, t0);
        }
        assert_eq!(m.ready_at(&limit, t0), t0 + Duration::from_secs(1));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(m.ready_at(&limit, t1), t0 + Duration::from_secs(1));
        m.spend_all(&limit, t1);
        assert_eq!(m.ready_at(&limit, t1), t1 + Duration::from_secs(1));
        assert!(!m.recovered(&limit, t1));
        assert!(m.recovered(&limit, t1 + Duration::from_secs(3)));
    }

    #[test]
    fn a_window_counts_the_sends_within_it() {
        let limit = Limit::Window {
            max: 2,
            window: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut m = Meter::new(&limit, t0);
        m.take(&limit, t0);
        m.take(&limit, t0 + Duration::from_secs(4));
        let t = t0 + Duration::from_secs(5);
        assert_eq!(m.ready_at(&limit, t), t0 + Duration::from_secs(10));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(m.ready_at(&limit, later), later);
        assert!(!m.recovered(&limit, later));
        assert!(m.recovered(&limit, t0 + Duration::from_secs(14)));
    }

    #[test]
    fn interactive_tickets_head_the_queue_before_earlier_bulk_ones() {
        let pacer = Pacer::new("test", vec![], 1);
        let q = pacer.queue("C1");
        let bulk = Ticket::enqueue(q.clone(), Lane::Bulk, 1);
        let bulk2 = Ticket::enqueue(q.clone(), Lane::Bulk, 2);
        assert_eq!(q.lock().head(), Some((1, 1)));
        let card = Ticket::enqueue(q.clone(), Lane::Interactive, 3);
        assert_eq!(q.lock().head(), Some((0, 3)));
        drop(card);
        assert_eq!(q.lock().head(), Some((1, 1)));
        drop(bulk);
        assert_eq!(q.lock().head(), Some((1, 2)));
        drop(bulk2);
        assert_eq!(q.lock().head(), None);
    }

    #[test]
    fn a_requeued_ticket_goes_back_ahead_of_later_ones() {
        let pacer = Pacer::new("test", vec![], 1);
        let q = pacer.queue("C1");
        let mut first = Ticket::enqueue(q.clone(), Lane::Bulk, 1);
        let _second = Ticket::enqueue(q.clone(), Lane::Bulk, 2);
        q.lock().lanes[1].pop_front();
        first.queued = false;
        assert_eq!(q.lock().head(), Some((1, 2)));
        first.requeue();
        assert_eq!(q.lock().head(), Some((1, 1)));
    }
}
