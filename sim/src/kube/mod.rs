//! A fake Kubernetes API server for tests, benchmarks and (later) `rerun-bot demo`.
//!
//! [`FakeKube::start`] serves a small slice of the Kubernetes REST API over
//! plain HTTP on `127.0.0.1:<port>`; the real kube-rs client and its `watcher`
//! talk to it through [`FakeKube::client_config`]:
//!
//! - batch/v1 `jobs`, `cronjobs`; core/v1 `pods` (+ `pods/log`), `events`, and
//!   the cluster-scoped `namespaces` (created implicitly when first used);
//!   coordination.k8s.io/v1 `leases`;
//! - apiextensions.k8s.io/v1 `customresourcedefinitions`: a CRD's storage
//!   version is served (discovery, CRUD, `status` subresource if declared,
//!   watch) while it exists, 404 before; custom resources are pruned,
//!   defaulted and type-checked against the structural schema
//!   (`fieldValidation` Ignore/Warn/Strict), refuse unconditional updates, and
//!   print as `meta.k8s.io` Tables with their `additionalPrinterColumns` when
//!   kubectl asks (`Accept: application/json;as=Table;…`; Leases and CRDs too);
//! - create / get / list / watch / replace / merge and JSON patch / delete, `status`
//!   subresources, `deletecollection`, `/version` and discovery;
//! - one global `resourceVersion` counter and a bounded history of watch
//!   events: a watch resumes from any retained version and gets a `410 Expired`
//!   ERROR event for an older one; bookmarks, `timeoutSeconds`, label and field
//!   selectors, `limit`/`continue` paging; errors are k8s `Status` JSON;
//! - faults: dropped watch streams, compaction, scripted error answers (with
//!   `Retry-After`), added latency, an outage answering every request with
//!   one status for a while ([`FakeKube::fail_all_for`]).
//!
//! The "world" methods ([`FakeKube::create`], [`FakeKube::update`], …) act like
//! other clients of the apiserver (they bump the version and emit watch
//! events); [`FakeKube::spawn_job`], [`FakeKube::fail_job`] and
//! [`FakeKube::complete_job`] play the CronJob and Job controllers on top of them.
//!
//! Deliberate simplifications: deletion is immediate (no finalizers, no grace
//! period; `Foreground` removes the dependents first, then the owner);
//! server-side apply is a merge patch that creates a missing object;
//! `resourceVersion` on a list is ignored (lists are always the
//! latest state); an update that changes nothing is a no-op (no new version, no
//! event), as on a real apiserver. Of a CRD only the storage version is
//! served (no conversion between versions); schema validation covers types,
//! `required`, `enum`, defaults and pruning (no formats, patterns, bounds or
//! CEL rules); a deleted CRD takes its objects with it at once; watches
//! always send plain objects (no Tables); protobuf bodies answer 415.
//!
//! Delete propagation when the request names no policy follows the apiserver's
//! defaults: batch/v1 Jobs orphan their pods (the GC strips the ownerReference,
//! emitting MODIFIED), everything else cascades in the background.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch as signal;
use tokio::time::Instant;

mod controller;
mod crd;
mod delete;
mod discovery;
mod error;
mod faults;
mod fixtures;
mod http;
mod json;
mod list;
mod logs;
mod patch;
mod query;
mod resource;
mod store;
mod table;
mod validate;
mod watch;
mod write;

pub use fixtures::{CronJobFixture, Failure};
pub use resource::{CustomKind, Resource};

use faults::Knobs;
use http::handle;
use json::{name_of, rv_of, set_or_remove, str_at};
use store::{Mode, Origin, Store};

const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Option<Value>,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    /// When the request arrived.
    pub at: std::time::Instant,
}

struct Inner {
    addr: SocketAddr,
    store: Mutex<Store>,
    /// Bumped after every change; open watches wait on it.
    changes: signal::Sender<u64>,
    requests: Mutex<Vec<RecordedRequest>>,
    knobs: Mutex<Knobs>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn mutate<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let out = f(&mut self.store());
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
        out
    }
}

/// The fake apiserver. Cheap to clone; the server task runs on the runtime
/// that called [`FakeKube::start`].
#[derive(Clone)]
pub struct FakeKube {
    inner: Arc<Inner>,
}

impl FakeKube {
    /// Binds `127.0.0.1:0` and serves; the `default` namespace exists.
    pub async fn start() -> FakeKube {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("FakeKube: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("FakeKube: local addr");
        let (changes, _) = signal::channel(0);
        let inner = Arc::new(Inner {
            addr,
            store: Mutex::new(Store::new()),
            changes,
            requests: Mutex::new(Vec::new()),
            knobs: Mutex::new(Knobs {
                rules: Vec::new(),
                outage: None,
                latency: Duration::ZERO,
                bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
            }),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let fake = FakeKube { inner };
        fake.create(
            Resource::Namespaces,
            json!({"metadata": {"name": "default"}}),
        );
        fake
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// A kube-rs config for this server (default namespace `default`).
    pub fn client_config(&self) -> kube::Config {
        let mut config =
            kube::Config::new(self.url().parse().expect("FakeKube url is a valid URI"));
        config.default_namespace = "default".to_string();
        config
    }

    // -- the world: other clients of the apiserver

    /// Creates an object as another client would (status is kept as given).
    /// Panics on a name clash or an invalid object.
    pub fn create(&self, r: Resource, obj: Value) -> Value {
        let ns = r.namespaced().then(|| {
            str_at(&obj, &["metadata", "namespace"])
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_string()
        });
        self.inner
            .mutate(|s| {
                let out = s.create(r, ns.as_deref(), obj, Origin::World, false);
                s.warnings.clear();
                out
            })
            .unwrap_or_else(|e| {
                panic!(
                    "FakeKube::create({r:?}): {} {}: {}",
                    e.code, e.reason, e.message
                )
            })
    }

    /// Applies a CustomResourceDefinition as a cluster admin would
    /// (`kubectl apply`): created, or its spec replaced if it exists. Its
    /// storage version is served at once; returns that resource. Panics on an
    /// invalid CRD.
    pub fn install_crd(&self, crd: Value) -> Resource {
        let r = Resource::CustomResourceDefinitions;
        let name = name_of(&crd).to_string();
        if self.get(r, "", &name).is_some() {
            self.update(r, "", &name, |old| {
                let status = old.get("status").cloned();
                *old = crd;
                set_or_remove(old, "status", status);
            });
        } else {
            self.create(r, crd);
        }
        self.inner
            .store()
            .served
            .iter()
            .find(|(_, s)| s.crd == name)
            .map(|(r, _)| *r)
            .unwrap_or_else(|| panic!("FakeKube::install_crd: {name} serves no version"))
    }

    /// Several CRDs (e.g. a multi-document YAML parsed into values).
    pub fn install_crds(&self, crds: impl IntoIterator<Item = Value>) -> Vec<Resource> {
        crds.into_iter().map(|c| self.install_crd(c)).collect()
    }

    /// The custom resource served for `group`/`plural`, if a CRD defines it.
    pub fn custom_resource(&self, group: &str, plural: &str) -> Option<Resource> {
        self.inner
            .store()
            .served
            .iter()
            .find(|(_, s)| s.group == group && s.plural == plural)
            .map(|(r, _)| *r)
    }

    pub fn get(&self, r: Resource, ns: &str, name: &str) -> Option<Value> {
        let ns = if r.namespaced() { ns } else { "" };
        self.inner.store().get(r, ns, name).map(|v| (**v).clone())
    }

    /// All objects of `r` (in `ns` if given), ordered by namespace and name.
    pub fn list(&self, r: Resource, ns: Option<&str>) -> Vec<Value> {
        let ns = ns.filter(|_| r.namespaced());
        self.inner
            .store()
            .range(r, ns, None)
            .map(|(_, v)| (**v).clone())
            .collect()
    }

    /// Objects of `r` whose ownerReferences name `owner_uid` (the garbage
    /// collector's view), e.g. the pods of a Job.
    pub fn owned_by(&self, r: Resource, owner_uid: &str) -> Vec<Value> {
        let s = self.inner.store();
        s.dependents_of(owner_uid)
            .into_iter()
            .filter(|(dr, _, _)| *dr == r)
            .filter_map(|(dr, ns, name)| s.get(dr, &ns, &name).map(|v| (**v).clone()))
            .collect()
    }

    /// Changes an object (MODIFIED; nothing if `f` changes nothing). Panics if
    /// it does not exist. Unconditional unless `f` sets another resourceVersion.
    pub fn update(&self, r: Resource, ns: &str, name: &str, f: impl FnOnce(&mut Value)) -> Value {
        let ns = if r.namespaced() { ns } else { "" };
        let mut obj = self
            .get(r, ns, name)
            .unwrap_or_else(|| panic!("FakeKube::update: no {r:?} {ns}/{name}"));
        let seen_rv = rv_of(&obj).to_string();
        f(&mut obj);
        if rv_of(&obj) == seen_rv
            && let Some(Value::Object(m)) = obj.get_mut("metadata")
        {
            m.remove("resourceVersion");
        }
        self.inner
            .mutate(|s| {
                let out = s.update(r, ns, name, obj, Mode::World, false);
                s.warnings.clear();
                out
            })
            .unwrap_or_else(|e| {
                panic!(
                    "FakeKube::update({r:?} {ns}/{name}): {} {}: {}",
                    e.code, e.reason, e.message
                )
            })
    }

    /// Deletes one object (DELETED), without touching its dependents.
    pub fn delete(&self, r: Resource, ns: &str, name: &str) -> Option<Value> {
        let ns = if r.namespaced() { ns } else { "" };
        self.inner.mutate(|s| s.remove(r, ns, name))
    }

    /// The text `pods/log` serves for that container (current and previous).
    pub fn set_log(&self, ns: &str, pod: &str, container: &str, text: impl Into<String>) {
        self.inner
            .store()
            .logs
            .entry((ns.to_string(), pod.to_string()))
            .or_default()
            .insert(container.to_string(), text.into());
    }

    pub fn resource_version(&self) -> u64 {
        self.inner.store().rv
    }

    // -- recorded requests

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.requests).clone()
    }

    pub fn count_requests(&self, method: &str, path_prefix: &str) -> usize {
        lock(&self.inner.requests)
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.starts_with(path_prefix))
            .count()
    }

    /// Polls `f` every 10 ms; panics with `what` after `timeout`.
    pub async fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&FakeKube) -> bool) {
        let deadline = Instant::now() + timeout;
        while !f(self) {
            if Instant::now() >= deadline {
                panic!("FakeKube: timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
