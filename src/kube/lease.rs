//! Leader election on a `coordination.k8s.io/v1` Lease, hand-rolled on
//! `Api<Lease>` (DESIGN.md "Beyond one replica").
//!
//! - Every `retry` the candidate reads the Lease and replaces it with the
//!   resourceVersion it read: a 409 means someone else wrote first.
//! - Another holder's lease counts as expired by *local* observation: when
//!   the record has not changed for `lease` since this process last saw it
//!   change. `renewTime` (another machine's clock) is never compared with ours.
//! - The leader fences itself: it may act until (send time of its last
//!   successful renew + `renew_deadline`), which is shorter than `lease`, so
//!   it has stopped before anyone else can take over.
//! - On shutdown the leader releases the Lease (empty holder) after its work
//!   drained, so the next one takes over at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// This replica (the pod name): `holderIdentity`.
    pub identity: String,
    pub lease: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
}

impl LeaseSettings {
    pub fn new(namespace: &str, identity: &str) -> Self {
        LeaseSettings {
            name: "rerun-bot-leader".into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(7),
            retry: Duration::from_secs(1),
        }
    }
}

/// Whether this replica may act now; cheap to ask before every side effect.
#[derive(Clone)]
pub struct Leadership {
    /// Leading until this instant (`None` inside: not leading); no receiver:
    /// the only replica, always leading.
    until: Option<watch::Receiver<Option<Instant>>>,
    /// Why the last round could not read or write the Lease, if it could not.
    problem: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Leadership {
    /// One replica, no election: always the leader.
    pub fn sole() -> Self {
        Leadership {
            until: None,
            problem: Default::default(),
        }
    }

    /// Why this replica cannot take part in the election right now (RBAC for
    /// the Lease missing, apiserver unreachable), for `/readyz`.
    pub fn problem(&self) -> Option<String> {
        self.problem.lock().expect("lease problem").clone()
    }

    /// The only replica (no election).
    pub fn is_sole(&self) -> bool {
        self.until.is_none()
    }

    pub fn is_leader(&self) -> bool {
        match &self.until {
            None => true,
            Some(rx) => rx.borrow().is_some_and(|until| Instant::now() < until),
        }
    }

    /// Returns once this replica leads.
    pub async fn led(&self) {
        let Some(rx) = &self.until else { return };
        let mut rx = rx.clone();
        while !self.is_leader() {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Returns once this replica no longer leads (its fence ran out or it lost).
    pub async fn lost(&self) {
        let Some(rx) = &self.until else {
            return std::future::pending().await;
        };
        let mut rx = rx.clone();
        loop {
            let until = *rx.borrow_and_update();
            let Some(until) = until.filter(|u| Instant::now() < *u) else {
                return;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                changed = rx.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(until).await;
                        return;
                    }
                }
            }
        }
    }
}

/// What this candidate last saw of the Lease, to judge expiry by its own clock.
struct Observed {
    record: (Option<String>, Option<String>),
    at: Instant,
}

/// Runs the election until `stop`, then releases the Lease if held (await
/// the handle for that).
pub fn elect(
    client: kube::Client,
    settings: LeaseSettings,
    stop: CancellationToken,
) -> (Leadership, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(None);
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let problem: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let problem_out = problem.clone();
    let task = tokio::spawn(async move {
        let mut observed: Option<Observed> = None;
        loop {
            let sent = Instant::now();
            let round = attempt(&api, &settings, &mut observed).await;
            *problem.lock().expect("lease problem") = round.as_ref().err().map(|e| match e {
                kube::Error::Api(s) if s.code == 403 => format!(
                    "no RBAC access to the Lease {} in {} (get, create, update on coordination.k8s.io leases; see manifests/ha/role.yaml): {e}",
                    settings.name, settings.namespace
                ),
                e => format!("cannot read or write the Lease {}: {e}", settings.name),
            });
            match round {
                Ok(true) => {
                    let until = sent + settings.renew_deadline;
                    let was = tx.send_replace(Some(until));
                    if was.is_none_or(|w| w <= Instant::now()) {
                        tracing::info!(identity = %settings.identity, "leading");
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: cannot read or write the Lease")
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(settings.retry) => {}
            }
        }
        let leading = tx.borrow().is_some_and(|u| Instant::now() < u);
        tx.send_replace(None);
        if leading {
            release(&api, &settings).await;
        }
    });
    (
        Leadership {
            until: Some(rx),
            problem: problem_out,
        },
        task,
    )
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// One round: `true` when this candidate holds the Lease after it.
async fn attempt(
    api: &Api<Lease>,
    s: &LeaseSettings,
    observed: &mut Option<Observed>,
) -> Result<bool, kube::Error> {
    let Some(lease) = api.get_opt(&s.name).await? else {
        let fresh = Lease {
            metadata: ObjectMeta {
                name: Some(s.name.clone()),
                namespace: Some(s.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(s.identity.clone()),
                lease_duration_seconds: Some(s.lease.as_secs() as i32),
                acquire_time: Some(now_micro()),
                renew_time: Some(now_micro()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &fresh).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let record = (holder.clone(), lease.metadata.resource_version.clone());
    let now = Instant::now();
    match observed {
        Some(o) if o.record == record => {}
        _ => *observed = Some(Observed { record, at: now }),
    }
    let duration = spec
        .lease_duration_seconds
        .map(|d| Duration::from_secs(d.max(1) as u64))
        .unwrap_or(s.lease);
    let mine = holder.as_deref() == Some(s.identity.as_str());
    let expired = observed
        .as_ref()
        .is_some_and(|o| now.duration_since(o.at) >= duration);
    if !mine && holder.is_some() && !expired {
        return Ok(false);
    }
    let mut next = lease.clone();
    let mut spec = spec;
    if !mine {
        spec.holder_identity = Some(s.identity.clone());
        spec.acquire_time = Some(now_micro());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        tracing::info!(
            previous = holder.as_deref().unwrap_or("none"),
            identity = %s.identity,
            "taking over the Lease"
        );
    }
    spec.renew_time = Some(now_micro());
    spec.lease_duration_seconds = Some(s.lease.as_secs() as i32);
    next.spec = Some(spec);
    match api.replace(&s.name, &PostParams::default(), &next).await {
        Ok(written) => {
            // Our own write is a change we saw at once.
            *observed = Some(Observed {
                record: (
                    Some(s.identity.clone()),
                    written.metadata.resource_version.clone(),
                ),
                at: Instant::now(),
            });
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up (empty holder), so a successor need not wait it out.
async fn release(api: &Api<Lease>, s: &LeaseSettings) {
    let Ok(Some(mut lease)) = api.get_opt(&s.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(s.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = Some(now_micro());
    match api.replace(&s.name, &PostParams::default(), &lease).await {
        Ok(_) => tracing::info!(identity = %s.identity, "Lease released"),
        Err(e) => tracing::warn!(error = %e, "cannot release the Lease"),
    }
}
