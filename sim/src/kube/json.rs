//! Small helpers on JSON objects: metadata accessors, building nested
//! objects, list bodies.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

pub(super) fn now_rfc3339() -> String {
    rfc3339(Utc::now())
}

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

pub(super) fn name_of(obj: &Value) -> &str {
    str_at(obj, &["metadata", "name"]).unwrap_or("")
}

pub(super) fn ns_of(obj: &Value) -> &str {
    str_at(obj, &["metadata", "namespace"]).unwrap_or("")
}

pub(super) fn uid_of(obj: &Value) -> &str {
    str_at(obj, &["metadata", "uid"]).unwrap_or("")
}

pub(super) fn rv_of(obj: &Value) -> &str {
    str_at(obj, &["metadata", "resourceVersion"]).unwrap_or("")
}

/// `v` as a JSON object, turning anything else into `{}` first.
pub(super) fn obj_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// `v[key]` as a JSON object, created if missing.
pub(super) fn obj_at<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    obj_mut(obj_mut(v).entry(key).or_insert(Value::Null))
}

/// The object at `path` below `v`, creating objects on the way.
pub(super) fn obj_path<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    path.iter().fold(obj_mut(v), |m, k| {
        obj_mut(m.entry(*k).or_insert(Value::Null))
    })
}

pub(super) fn set_or_remove(v: &mut Value, key: &str, value: Option<Value>) {
    let m = obj_mut(v);
    match value {
        Some(x) if !x.is_null() => {
            m.insert(key.to_string(), x);
        }
        _ => {
            m.remove(key);
        }
    }
}

pub(super) fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("uid").and_then(Value::as_str))
}

/// Serializes an object without `kind`/`apiVersion`, as list items come from
/// a real apiserver.
pub(super) struct Bare<'a>(pub(super) &'a Value);

impl Serialize for Bare<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(m) => {
                let mut map = s.serialize_map(None)?;
                for (k, v) in m {
                    if k != "kind" && k != "apiVersion" {
                        map.serialize_entry(k, v)?;
                    }
                }
                map.end()
            }
            other => other.serialize(s),
        }
    }
}

#[derive(serde::Serialize)]
pub(super) struct ListBody<'a> {
    pub(super) kind: String,
    #[serde(rename = "apiVersion")]
    pub(super) api_version: &'static str,
    pub(super) metadata: Value,
    pub(super) items: Vec<Bare<'a>>,
}

pub(super) fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
