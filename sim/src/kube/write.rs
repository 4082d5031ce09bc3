//! Create and update: admission, defaulting, `status` subresource rules and
//! `metadata.generation`.

use serde_json::{Value, json};

use super::crd::{FieldValidation, apply_schema, crd_status, validate_crd};
use super::error::ApiError;
use super::json::{now_rfc3339, obj_at, obj_mut, obj_path, rv_of, set_or_remove, str_at};
use super::resource::Resource;
use super::store::{Mode, Origin, Store};
use super::validate::{check_lease, check_shape, validate_meta, validate_name};

impl Store {
    /// Kind-specific admission: CRD validation, Lease decoding, custom
    /// resource schemas (pruning, defaults, types; `fieldValidation`).
    fn admit(&mut self, r: Resource, name: &str, obj: &mut Value) -> Result<(), ApiError> {
        match r {
            Resource::CustomResourceDefinitions => validate_crd(obj),
            Resource::Leases => check_lease(obj),
            Resource::Custom(_) => {
                let Some(schema) = self.served.get(&r).and_then(|s| s.schema.clone()) else {
                    return Ok(());
                };
                let (mut pruned, mut errs) = (Vec::new(), Vec::new());
                apply_schema(obj, &schema, "", &mut pruned, &mut errs);
                if !pruned.is_empty() {
                    match self.field_validation {
                        FieldValidation::Strict => {
                            let list: Vec<String> = pruned
                                .iter()
                                .map(|p| format!("unknown field \"{p}\""))
                                .collect();
                            let version = r.api_version().rsplit('/').next().unwrap_or("");
                            return Err(ApiError::bad_request(format!(
                                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                                list.join(", "),
                                kind = r.kind(),
                            )));
                        }
                        FieldValidation::Warn => self
                            .warnings
                            .extend(pruned.iter().map(|p| format!("unknown field \"{p}\""))),
                        FieldValidation::Ignore => {}
                    }
                }
                match errs.len() {
                    0 => Ok(()),
                    1 => Err(ApiError::invalid(r, name, &errs[0])),
                    _ => Err(ApiError::invalid(r, name, format!("[{}]", errs.join(", ")))),
                }
            }
            _ => Ok(()),
        }
    }

    pub(super) fn create(
        &mut self,
        r: Resource,
        path_ns: Option<&str>,
        mut obj: Value,
        origin: Origin,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        check_shape(r, &obj)?;
        if r.is_custom() {
            for (key, what) in [("kind", "Kind"), ("apiVersion", "apiVersion")] {
                if obj
                    .get(key)
                    .is_none_or(|v| v.as_str().is_none_or(str::is_empty))
                {
                    return Err(ApiError::bad_request(format!(
                        "Object '{what}' is missing in '{obj}'"
                    )));
                }
            }
        }
        let top = obj_mut(&mut obj);
        top.insert("apiVersion".into(), r.api_version().into());
        top.insert("kind".into(), r.kind().into());
        let meta = obj_at(&mut obj, "metadata");
        let ns = if r.namespaced() {
            let body_ns = meta
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            let ns = match (path_ns, body_ns) {
                (Some(p), Some(b)) if p != b => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                (Some(p), _) => p.to_string(),
                (None, Some(b)) => b,
                (None, None) => "default".to_string(),
            };
            meta.insert("namespace".into(), ns.clone().into());
            ns
        } else {
            meta.remove("namespace");
            String::new()
        };
        let name = match meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(n) => n.to_string(),
            None => {
                let Some(base) = meta
                    .get("generateName")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                else {
                    return Err(ApiError::invalid(
                        r,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                };
                let base: String = base
                    .chars()
                    .take(r.max_name_len().saturating_sub(5))
                    .collect();
                loop {
                    let candidate = format!("{base}{}", self.random_suffix());
                    if !self.map(r).contains_key(&(ns.clone(), candidate.clone())) {
                        break candidate;
                    }
                }
            }
        };
        validate_name(r, &name)?;
        if self.map(r).contains_key(&(ns.clone(), name.clone())) {
            return Err(ApiError::already_exists(r, &name));
        }
        let uid = self.new_uid();
        let meta = obj_at(&mut obj, "metadata");
        meta.insert("name".into(), name.clone().into());
        meta.insert("uid".into(), uid.clone().into());
        meta.insert("creationTimestamp".into(), now_rfc3339().into());
        // The Lease strategy keeps no generation.
        if r != Resource::Leases {
            meta.insert("generation".into(), 1.into());
        }
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(k);
        }
        apply_defaults(r, &mut obj, &uid, &name);
        validate_meta(r, &name, &obj)?;
        let keep_status =
            origin == Origin::World && obj.get("status").is_some_and(|s| !s.is_null());
        if self.has_status(r) && !keep_status {
            if r.is_custom() {
                // The custom resource strategy drops status on create.
                obj_mut(&mut obj).remove("status");
            } else {
                obj_mut(&mut obj).insert("status".into(), initial_status(r));
            }
        }
        self.admit(r, &name, &mut obj)?;
        if r == Resource::CustomResourceDefinitions {
            let status = crd_status(
                &obj,
                obj.get("status")
                    .filter(|s| s.get("storedVersions").is_some()),
            );
            obj_mut(&mut obj).insert("status".into(), status);
        }
        if dry_run {
            return Ok(obj);
        }
        if r.namespaced() && self.get(Resource::Namespaces, "", &ns).is_none() {
            self.create(
                Resource::Namespaces,
                None,
                json!({"metadata": {"name": ns}}),
                Origin::Client,
                false,
            )?;
        }
        Ok(self.put(r, obj, "ADDED"))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn update(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        mut new: Value,
        mode: Mode,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let old = self
            .get(r, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(r, name))?;
        check_shape(r, &new)?;
        if let Some(n) = str_at(&new, &["metadata", "name"]).filter(|n| !n.is_empty())
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if r.namespaced()
            && let Some(n) = str_at(&new, &["metadata", "namespace"]).filter(|n| !n.is_empty())
            && n != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        match str_at(&new, &["metadata", "resourceVersion"]).filter(|v| !v.is_empty()) {
            Some(v) if v != rv_of(&old) => return Err(ApiError::stale(r, name)),
            Some(_) => {}
            // Custom resources and CRDs refuse unconditional updates.
            None if mode != Mode::World
                && (r.is_custom() || r == Resource::CustomResourceDefinitions) =>
            {
                return Err(ApiError::invalid(
                    r,
                    name,
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                ));
            }
            None => {}
        }
        let has_status = self.has_status(r);
        let mut result = match mode {
            Mode::Main => {
                if has_status {
                    set_or_remove(&mut new, "status", old.get("status").cloned());
                }
                new
            }
            Mode::Status => {
                let mut o = (*old).clone();
                set_or_remove(&mut o, "status", new.get("status").cloned());
                o
            }
            Mode::World => new,
        };
        let top = obj_mut(&mut result);
        top.insert("apiVersion".into(), r.api_version().into());
        top.insert("kind".into(), r.kind().into());
        let meta = obj_at(&mut result, "metadata");
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
        ] {
            match old.pointer(&format!("/metadata/{k}")) {
                Some(v) => {
                    meta.insert(k.to_string(), v.clone());
                }
                None => {
                    meta.remove(k);
                }
            }
        }
        self.admit(r, name, &mut result)?;
        if r == Resource::CustomResourceDefinitions && mode != Mode::Status {
            let status = crd_status(&result, old.get("status"));
            obj_mut(&mut result).insert("status".into(), status);
        }
        if r != Resource::Leases
            && generation_fields(r, has_status, &old) != generation_fields(r, has_status, &result)
        {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            obj_at(&mut result, "metadata").insert("generation".into(), (generation + 1).into());
        }
        validate_meta(r, name, &result)?;
        if result == *old {
            return Ok((*old).clone());
        }
        if dry_run {
            return Ok(result);
        }
        Ok(self.put(r, result, "MODIFIED"))
    }
}

/// What a change must touch to bump `metadata.generation`: the spec for
/// built-in kinds; for custom resources everything but metadata (and status
/// when it is a subresource).
fn generation_fields(r: Resource, has_status: bool, obj: &Value) -> Value {
    if !r.is_custom() {
        return obj.get("spec").cloned().unwrap_or(Value::Null);
    }
    let mut v = obj.clone();
    let m = obj_mut(&mut v);
    m.remove("metadata");
    if has_status {
        m.remove("status");
    }
    v
}

/// What the apiserver's defaulting and the Job strategy add on create.
fn apply_defaults(r: Resource, obj: &mut Value, uid: &str, name: &str) {
    match r {
        Resource::Jobs => {
            let spec = obj_at(obj, "spec");
            for (k, v) in [
                ("parallelism", json!(1)),
                ("completions", json!(1)),
                ("backoffLimit", json!(6)),
                ("completionMode", json!("NonIndexed")),
                ("suspend", json!(false)),
                ("podReplacementPolicy", json!("TerminatingOrFailed")),
            ] {
                spec.entry(k).or_insert(v);
            }
            let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
            if !manual {
                spec.insert(
                    "selector".into(),
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
                );
                let labels = obj_path(obj, &["spec", "template", "metadata", "labels"]);
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", uid),
                    ("batch.kubernetes.io/job-name", name),
                    ("controller-uid", uid),
                    ("job-name", name),
                ] {
                    labels.insert(k.into(), v.into());
                }
            }
            // Job labels default to the (final) template labels.
            let template_labels = obj.pointer("/spec/template/metadata/labels").cloned();
            let labels = obj_path(obj, &["metadata", "labels"]);
            if labels.is_empty()
                && let Some(Value::Object(t)) = template_labels
            {
                *labels = t;
            }
        }
        Resource::CronJobs => {
            let spec = obj_at(obj, "spec");
            for (k, v) in [
                ("concurrencyPolicy", json!("Allow")),
                ("suspend", json!(false)),
                ("successfulJobsHistoryLimit", json!(3)),
                ("failedJobsHistoryLimit", json!(1)),
            ] {
                spec.entry(k).or_insert(v);
            }
        }
        Resource::Namespaces => {
            obj_path(obj, &["metadata", "labels"])
                .insert("kubernetes.io/metadata.name".into(), name.into());
            obj_at(obj, "spec")
                .entry("finalizers")
                .or_insert(json!(["kubernetes"]));
        }
        Resource::CustomResourceDefinitions => {
            let spec = obj_at(obj, "spec");
            spec.entry("conversion")
                .or_insert(json!({"strategy": "None"}));
            let kind = spec
                .get("names")
                .and_then(|n| n.get("kind"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(Value::Object(names)) = spec.get_mut("names") {
                names
                    .entry("singular")
                    .or_insert_with(|| kind.to_ascii_lowercase().into());
                names
                    .entry("listKind")
                    .or_insert_with(|| format!("{kind}List").into());
            }
        }
        Resource::Pods | Resource::Events | Resource::Leases | Resource::Custom(_) => {}
    }
}

fn initial_status(r: Resource) -> Value {
    match r {
        Resource::Pods => json!({"phase": "Pending", "qosClass": "BestEffort"}),
        Resource::Namespaces => json!({"phase": "Active"}),
        _ => json!({}),
    }
}
