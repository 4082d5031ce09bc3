//! PATCH: merge (RFC 7386), strategic (as merge), JSON (RFC 6902) and
//! server-side apply (as a merge that creates a missing object).

use serde_json::Value;

use super::error::ApiError;
use super::json::{obj_at, obj_mut, rv_of, str_at};
use super::resource::Resource;
use super::store::{Mode, Origin, Store};

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn patch(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        content_type: &str,
        body: &[u8],
        status_sub: bool,
        field_manager: Option<&str>,
        dry_run: bool,
    ) -> Result<(u16, Value), ApiError> {
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        // Custom resources have no strategic merge (no Go struct tags).
        let strategic_ok = !r.is_custom();
        let (apply, json) = match ct.as_str() {
            "application/merge-patch+json" => (false, false),
            "application/strategic-merge-patch+json" if strategic_ok => (false, false),
            "application/json-patch+json" => (false, true),
            "application/apply-patch+yaml" | "application/apply-patch+json" => (true, false),
            _ => {
                let accepted = if strategic_ok {
                    "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
                } else {
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                };
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: {accepted}"
                    ),
                ));
            }
        };
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        if json {
            let old = self
                .get(r, ns, name)
                .cloned()
                .ok_or_else(|| ApiError::not_found(r, name))?;
            let mut patched = (*old).clone();
            json_patch(&mut patched, &patch)?;
            if rv_of(&patched) != rv_of(&old) && !rv_of(&patched).is_empty() {
                return Err(ApiError::stale(r, name));
            }
            obj_at(&mut patched, "metadata").insert("resourceVersion".into(), rv_of(&old).into());
            let mode = if status_sub { Mode::Status } else { Mode::Main };
            return self
                .update(r, ns, name, patched, mode, dry_run)
                .map(|v| (200, v));
        }
        if !patch.is_object() {
            return Err(ApiError::bad_request(
                "error decoding patch: not a JSON object",
            ));
        }
        if apply && field_manager.is_none_or(str::is_empty) {
            return Err(ApiError::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let Some(old) = self.get(r, ns, name).cloned() else {
            if apply && !status_sub {
                if str_at(&patch, &["metadata", "name"]).is_some_and(|n| n != name) {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object does not match the name on the URL ({name})"
                    )));
                }
                let mut obj = patch;
                obj_at(&mut obj, "metadata").insert("name".into(), name.into());
                let path_ns = r.namespaced().then_some(ns);
                return self
                    .create(r, path_ns, obj, Origin::Client, dry_run)
                    .map(|v| (201, v));
            }
            return Err(ApiError::not_found(r, name));
        };
        if let Some(v) = str_at(&patch, &["metadata", "resourceVersion"]).filter(|v| !v.is_empty())
            && v != rv_of(&old)
        {
            return Err(ApiError::stale(r, name));
        }
        let mut merged = (*old).clone();
        merge_patch(&mut merged, &patch);
        // A patch that drops metadata.resourceVersion is still unconditional.
        obj_at(&mut merged, "metadata").insert("resourceVersion".into(), rv_of(&old).into());
        let mode = if status_sub { Mode::Status } else { Mode::Main };
        self.update(r, ns, name, merged, mode, dry_run)
            .map(|v| (200, v))
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            let t = obj_mut(target);
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.as_str()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// RFC 6902 JSON patch.
fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch.as_array().ok_or_else(|| {
        ApiError::bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    })?;
    let failed = |msg: String| ApiError::new(422, "Invalid", msg);
    let split = |p: &str| -> Result<(String, String), ApiError> {
        let (parent, last) = p
            .rsplit_once('/')
            .ok_or_else(|| failed(format!("invalid path: {p:?}")))?;
        Ok((
            parent.to_string(),
            last.replace("~1", "/").replace("~0", "~"),
        ))
    };
    fn add(doc: &mut Value, parent: &str, key: &str, v: Value, path: &str) -> Result<(), ApiError> {
        let failed = |msg: String| ApiError::new(422, "Invalid", msg);
        match doc.pointer_mut(parent) {
            Some(Value::Object(m)) => {
                m.insert(key.to_string(), v);
                Ok(())
            }
            Some(Value::Array(a)) => {
                let i = if key == "-" {
                    a.len()
                } else {
                    key.parse::<usize>()
                        .ok()
                        .filter(|i| *i <= a.len())
                        .ok_or_else(|| {
                            failed(format!(
                                "add operation does not apply: doc is missing path: \"{path}\""
                            ))
                        })?
                };
                a.insert(i, v);
                Ok(())
            }
            _ => Err(failed(format!(
                "add operation does not apply: doc is missing path: \"{path}\""
            ))),
        }
    }
    fn remove(doc: &mut Value, parent: &str, key: &str, path: &str) -> Result<Value, ApiError> {
        let missing = || {
            ApiError::new(
                422,
                "Invalid",
                format!("remove operation does not apply: doc is missing path: \"{path}\""),
            )
        };
        match doc.pointer_mut(parent) {
            Some(Value::Object(m)) => m.remove(key).ok_or_else(missing),
            Some(Value::Array(a)) => {
                let i = key
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < a.len())
                    .ok_or_else(missing)?;
                Ok(a.remove(i))
            }
            _ => Err(missing()),
        }
    }
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| failed(format!("operation missing path: {op}")))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| failed(format!("operation missing value: {op}")))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| failed(format!("operation missing from: {op}")))
        };
        match kind {
            "add" if path.is_empty() => *target = value()?,
            "add" => {
                let (parent, key) = split(path)?;
                add(target, &parent, &key, value()?, path)?;
            }
            "remove" => {
                let (parent, key) = split(path)?;
                remove(target, &parent, &key, path)?;
            }
            "replace" => {
                let v = value()?;
                let slot = target.pointer_mut(path).ok_or_else(|| {
                    failed(format!(
                        "replace operation does not apply: doc is missing key: {path}"
                    ))
                })?;
                *slot = v;
            }
            "move" => {
                let from = from()?;
                let (fp, fk) = split(from)?;
                let v = remove(target, &fp, &fk, from)?;
                let (parent, key) = split(path)?;
                add(target, &parent, &key, v, path)?;
            }
            "copy" => {
                let v = target.pointer(from()?).cloned().ok_or_else(|| {
                    failed(format!(
                        "copy operation does not apply: doc is missing from path: {}",
                        from().unwrap_or("")
                    ))
                })?;
                let (parent, key) = split(path)?;
                add(target, &parent, &key, v, path)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value()?) {
                    return Err(failed(format!("testing value {path} failed: test failed")));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!("Unexpected kind: {other}")));
            }
        }
    }
    Ok(())
}
