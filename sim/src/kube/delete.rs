//! DELETE: `DeleteOptions` (propagation policy, preconditions, dry run) and
//! the cascade (orphan, background, foreground).

use std::collections::HashSet;

use serde_json::Value;

use super::error::ApiError;
use super::json::{obj_at, rv_of, str_at, uid_of};
use super::query::Query;
use super::resource::Resource;
use super::store::{Key, Mode, Store};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Propagation {
    Orphan,
    Background,
    Foreground,
}

#[derive(Default)]
pub(super) struct DeleteOpts {
    policy: Option<Propagation>,
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

impl DeleteOpts {
    pub(super) fn parse(body: &[u8], q: &Query) -> Result<DeleteOpts, ApiError> {
        let policy = |s: &str| match s {
            "Orphan" => Ok(Propagation::Orphan),
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            other => Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                ),
            )),
        };
        let mut opts = DeleteOpts {
            dry_run: q.dry_run(),
            ..DeleteOpts::default()
        };
        if let Some(p) = q.get("propagationPolicy") {
            opts.policy = Some(policy(p)?);
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(opts);
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        if !v.is_object() {
            return Err(ApiError::bad_request(
                "invalid DeleteOptions: not an object",
            ));
        }
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            opts.policy = Some(policy(p)?);
        }
        if let Some(orphan) = v.get("orphanDependents").and_then(Value::as_bool) {
            if opts.policy.is_some() {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Invalid value: both orphanDependents and propagationPolicy are set",
                ));
            }
            opts.policy = Some(if orphan {
                Propagation::Orphan
            } else {
                Propagation::Background
            });
        }
        opts.uid = str_at(&v, &["preconditions", "uid"]).map(str::to_string);
        opts.resource_version =
            str_at(&v, &["preconditions", "resourceVersion"]).map(str::to_string);
        if let Some(Value::Array(d)) = v.get("dryRun") {
            opts.dry_run |= d.iter().any(|x| x == "All");
        }
        Ok(opts)
    }
}

impl Store {
    pub(super) fn delete(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let old = self
            .get(r, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(r, name))?;
        if let Some(u) = &opts.uid
            && u != uid_of(&old)
        {
            return Err(ApiError::conflict(
                r,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {u}, UID in object meta: {}",
                    uid_of(&old)
                ),
            ));
        }
        if let Some(v) = &opts.resource_version
            && v != rv_of(&old)
        {
            return Err(ApiError::conflict(
                r,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {v}, ResourceVersion in object meta: {}",
                    rv_of(&old)
                ),
            ));
        }
        if opts.dry_run {
            return Ok((*old).clone());
        }
        // batch/v1 Jobs orphan by default (backwards compatibility in the
        // apiserver's job strategy); everything else cascades in the background.
        let default = if r == Resource::Jobs {
            Propagation::Orphan
        } else {
            Propagation::Background
        };
        let policy = opts.policy.unwrap_or(default);
        Ok(self
            .delete_tree(r, ns, name, policy)
            .unwrap_or_else(|| (*old).clone()))
    }

    fn delete_tree(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        policy: Propagation,
    ) -> Option<Value> {
        let uid = uid_of(self.get(r, ns, name)?).to_string();
        if r == Resource::Namespaces {
            let kinds: Vec<Resource> = self
                .objects
                .keys()
                .copied()
                .filter(|r| r.namespaced())
                .collect();
            for dr in kinds {
                let keys: Vec<Key> = self
                    .range(dr, Some(name), None)
                    .map(|(k, _)| k.clone())
                    .collect();
                for (kns, kname) in keys {
                    self.remove(dr, &kns, &kname);
                }
            }
        }
        match policy {
            Propagation::Background => {
                let out = self.remove(r, ns, name);
                for (dr, dns, dn) in self.dependents_of(&uid) {
                    self.delete_tree(dr, &dns, &dn, Propagation::Background);
                }
                out
            }
            Propagation::Orphan => {
                let out = self.remove(r, ns, name);
                for (dr, dns, dn) in self.dependents_of(&uid) {
                    let Some(dep) = self.get(dr, &dns, &dn) else {
                        continue;
                    };
                    let mut dep = (**dep).clone();
                    if let Some(refs) = dep
                        .pointer_mut("/metadata/ownerReferences")
                        .and_then(Value::as_array_mut)
                    {
                        refs.retain(|o| o.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                        if refs.is_empty() {
                            obj_at(&mut dep, "metadata").remove("ownerReferences");
                        }
                    }
                    // Cannot fail: the object exists and the version matches.
                    let _ = self.update(dr, &dns, &dn, dep, Mode::World, false);
                }
                out
            }
            Propagation::Foreground => {
                // Whole tree (cycle-safe), then delete deepest first.
                let mut order = vec![(r, ns.to_string(), name.to_string())];
                let mut seen: HashSet<(Resource, String, String)> = order.iter().cloned().collect();
                let mut i = 0;
                while i < order.len() {
                    let (or, ons, on) = order[i].clone();
                    if let Some(o) = self.get(or, &ons, &on) {
                        let ouid = uid_of(o).to_string();
                        for d in self.dependents_of(&ouid) {
                            if seen.insert(d.clone()) {
                                order.push(d);
                            }
                        }
                    }
                    i += 1;
                }
                let mut out = None;
                for (dr, dns, dn) in order.into_iter().rev() {
                    out = self.remove(dr, &dns, &dn);
                }
                out
            }
        }
    }
}
