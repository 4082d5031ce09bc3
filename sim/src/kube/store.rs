//! The object store: objects by kind and key, the global `resourceVersion`,
//! the watch history and the garbage collector's owner index.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::Value;

use super::crd::{FieldValidation, Served};
use super::json::{name_of, ns_of, obj_at, owner_uids};
use super::query::Filter;
use super::resource::Resource;

const DEFAULT_HISTORY_LIMIT: usize = 10_000;

pub(super) type Key = (String, String);

pub(super) struct HistoryEvent {
    pub(super) rv: u64,
    pub(super) resource: Resource,
    pub(super) kind: &'static str,
    pub(super) object: Arc<Value>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// An HTTP client: status is reset on create (status subresource rules).
    Client,
    /// A test fixture or controller: status is kept as given.
    World,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// PUT/PATCH of the main resource: status changes are ignored.
    Main,
    /// PUT/PATCH of the `status` subresource: only status changes apply.
    Status,
    /// The world: everything except identity applies.
    World,
}

pub(super) struct Store {
    pub(super) rv: u64,
    pub(super) objects: BTreeMap<Resource, BTreeMap<Key, Arc<Value>>>,
    /// What the CRDs make served: custom resource → its definition.
    pub(super) served: BTreeMap<Resource, Served>,
    /// How this request wants unknown fields handled (`fieldValidation`).
    pub(super) field_validation: FieldValidation,
    /// `Warning` headers for the current request.
    pub(super) warnings: Vec<String>,
    /// owner uid → dependents (what the garbage collector's graph knows).
    dependents: HashMap<String, BTreeSet<(Resource, String, String)>>,
    pub(super) history: VecDeque<HistoryEvent>,
    pub(super) history_limit: usize,
    /// A watch may resume from any version >= horizon.
    pub(super) horizon: u64,
    /// Highest version of an event that was forgotten; an open watch behind
    /// it has lost events and is ended with 410.
    pub(super) lost_upto: u64,
    pub(super) drop_gen: u64,
    /// (namespace, pod) → container → log text.
    pub(super) logs: HashMap<Key, BTreeMap<String, String>>,
    seed: u64,
    seq: u64,
}

impl Store {
    pub(super) fn new() -> Store {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Store {
            rv: 0,
            objects: BTreeMap::new(),
            served: BTreeMap::new(),
            field_validation: FieldValidation::Warn,
            warnings: Vec::new(),
            dependents: HashMap::new(),
            history: VecDeque::new(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            horizon: 0,
            lost_upto: 0,
            drop_gen: 0,
            logs: HashMap::new(),
            seed,
            seq: 0,
        }
    }

    fn random(&mut self) -> u64 {
        // splitmix64
        self.seq += 1;
        let mut z = self
            .seed
            .wrapping_add(self.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn new_uid(&mut self) -> String {
        let (a, b) = (self.random(), self.random());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    pub(super) fn random_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut x = self.random();
        (0..5)
            .map(|_| {
                let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
                x /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }

    pub(super) fn map(&self, r: Resource) -> &BTreeMap<Key, Arc<Value>> {
        static EMPTY: BTreeMap<Key, Arc<Value>> = BTreeMap::new();
        self.objects.get(&r).unwrap_or(&EMPTY)
    }

    pub(super) fn has_status(&self, r: Resource) -> bool {
        match r {
            Resource::Custom(_) => self.served.get(&r).is_some_and(|s| s.status),
            r => r.builtin_has_status(),
        }
    }

    /// The custom resource served at `/apis/{group}/{version}/{plural}`.
    pub(super) fn served_at(&self, group: &str, version: &str, plural: &str) -> Option<Resource> {
        self.served
            .iter()
            .find(|(_, s)| s.group == group && s.version == version && s.plural == plural)
            .map(|(r, _)| *r)
    }

    /// Recomputes what is served from the CRDs.
    fn resync_crds(&mut self) {
        self.served = self
            .map(Resource::CustomResourceDefinitions)
            .values()
            .filter_map(|crd| Served::from_crd(crd))
            .collect();
    }

    pub(super) fn get(&self, r: Resource, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.map(r).get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of `r` in key order, within `ns` if given, strictly after `after`.
    pub(super) fn range<'a>(
        &'a self,
        r: Resource,
        ns: Option<&'a str>,
        after: Option<&Key>,
    ) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a {
        let start = match (after, ns) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        self.map(r)
            .range((start, Bound::Unbounded))
            .take_while(move |(k, _)| ns.is_none_or(|ns| k.0 == ns))
    }

    /// One page of a list: items, and the key to continue after if more match.
    pub(super) fn page(
        &self,
        r: Resource,
        filter: &Filter,
        after: Option<&Key>,
        limit: Option<usize>,
    ) -> (Vec<Arc<Value>>, Option<Key>) {
        let mut items = Vec::new();
        let mut last: Option<&Key> = None;
        for (k, v) in self.range(r, filter.namespace.as_deref(), after) {
            if !filter.matches(v) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                return (items, last.cloned());
            }
            items.push(v.clone());
            last = Some(k);
        }
        (items, None)
    }

    pub(super) fn dependents_of(&self, uid: &str) -> Vec<(Resource, String, String)> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn reindex(&mut self, r: Resource, key: &Key, old: Option<&Value>, new: Option<&Value>) {
        let entry = (r, key.0.clone(), key.1.clone());
        if let Some(old) = old {
            for uid in owner_uids(old) {
                if let Some(set) = self.dependents.get_mut(uid) {
                    set.remove(&entry);
                    if set.is_empty() {
                        self.dependents.remove(uid);
                    }
                }
            }
        }
        if let Some(new) = new {
            for uid in owner_uids(new) {
                self.dependents
                    .entry(uid.to_string())
                    .or_default()
                    .insert(entry.clone());
            }
        }
    }

    fn record(&mut self, resource: Resource, kind: &'static str, object: Arc<Value>) {
        self.history.push_back(HistoryEvent {
            rv: self.rv,
            resource,
            kind,
            object,
        });
        self.trim();
    }

    pub(super) fn trim(&mut self) {
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.lost_upto = self.lost_upto.max(e.rv);
                self.horizon = self.horizon.max(e.rv);
            }
        }
    }

    pub(super) fn compact(&mut self) {
        if let Some(e) = self.history.back() {
            self.lost_upto = self.lost_upto.max(e.rv);
        }
        self.history.clear();
        // Versions are etcd revisions shared by every kind, so gaps are normal.
        self.rv += 1;
        self.horizon = self.rv;
    }

    /// Stores `obj` under a new version and emits `kind` (ADDED/MODIFIED).
    pub(super) fn put(&mut self, r: Resource, mut obj: Value, kind: &'static str) -> Value {
        self.rv += 1;
        obj_at(&mut obj, "metadata").insert("resourceVersion".into(), self.rv.to_string().into());
        let key = (ns_of(&obj).to_string(), name_of(&obj).to_string());
        let arc = Arc::new(obj);
        let old = self
            .objects
            .entry(r)
            .or_default()
            .insert(key.clone(), arc.clone());
        self.reindex(r, &key, old.as_deref(), Some(&arc));
        self.record(r, kind, arc.clone());
        if r == Resource::CustomResourceDefinitions {
            self.resync_crds();
        }
        (*arc).clone()
    }

    /// Removes an object (no cascade) and emits DELETED.
    pub(super) fn remove(&mut self, r: Resource, ns: &str, name: &str) -> Option<Value> {
        if r == Resource::CustomResourceDefinitions && self.get(r, ns, name).is_some() {
            // The CRD finalizer deletes every object of the resource first.
            let gone: Vec<Resource> = self
                .served
                .iter()
                .filter(|(_, s)| s.crd == name)
                .map(|(r, _)| *r)
                .collect();
            for cr in gone {
                let keys: Vec<Key> = self.map(cr).keys().cloned().collect();
                for (kns, kname) in keys {
                    self.remove(cr, &kns, &kname);
                }
                self.objects.remove(&cr);
            }
        }
        let key = (ns.to_string(), name.to_string());
        let old = self.objects.get_mut(&r)?.remove(&key)?;
        self.reindex(r, &key, Some(&old), None);
        if r == Resource::Pods {
            self.logs.remove(&key);
        }
        self.rv += 1;
        let mut obj = Arc::unwrap_or_clone(old);
        obj_at(&mut obj, "metadata").insert("resourceVersion".into(), self.rv.to_string().into());
        let arc = Arc::new(obj);
        self.record(r, "DELETED", arc.clone());
        if r == Resource::CustomResourceDefinitions {
            self.resync_crds();
        }
        Some((*arc).clone())
    }
}
