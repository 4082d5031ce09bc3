//! Query strings, and the label and field selectors a list or watch
//! filters by.

use serde_json::Value;

use super::error::ApiError;
use super::json::ns_of;
use super::resource::Resource;
use super::validate::{valid_label_key, valid_label_value};

#[derive(Clone, Debug)]
enum LabelOp {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Gt(i64),
    Lt(i64),
}

#[derive(Clone, Debug)]
struct LabelReq {
    key: String,
    op: LabelOp,
}

impl LabelReq {
    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (LabelOp::Exists, v) => v.is_some(),
            (LabelOp::NotExists, v) => v.is_none(),
            (LabelOp::Eq(x), v) => v == Some(x.as_str()),
            (LabelOp::Ne(x), v) => v != Some(x.as_str()),
            (LabelOp::In(xs), Some(v)) => xs.iter().any(|x| x == v),
            (LabelOp::In(_), None) => false,
            (LabelOp::NotIn(xs), v) => v.is_none_or(|v| !xs.iter().any(|x| x == v)),
            (LabelOp::Gt(n), v) => v
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            (LabelOp::Lt(n), v) => v
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        }
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_label_selector(s: &str) -> Result<Vec<LabelReq>, ApiError> {
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    for term in split_top_level(s) {
        let req = parse_label_term(term.trim()).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to parse requirement: invalid label selector term {:?} in {s:?}",
                term.trim()
            ))
        })?;
        out.push(req);
    }
    Ok(out)
}

fn parse_label_term(t: &str) -> Option<LabelReq> {
    let req = |key: &str, op: LabelOp| {
        let key = key.trim();
        valid_label_key(key).then(|| LabelReq {
            key: key.to_string(),
            op,
        })
    };
    if let Some(key) = t.strip_prefix('!') {
        return req(key, LabelOp::NotExists);
    }
    if let Some(open) = t.find('(') {
        if !t.ends_with(')') {
            return None;
        }
        let head: Vec<&str> = t[..open].split_whitespace().collect();
        let [key, op] = head[..] else { return None };
        let values: Vec<String> = t[open + 1..t.len() - 1]
            .split(',')
            .map(|v| v.trim().to_string())
            .collect();
        if values.iter().any(|v| !valid_label_value(v)) {
            return None;
        }
        return match op {
            "in" => req(key, LabelOp::In(values)),
            "notin" => req(key, LabelOp::NotIn(values)),
            _ => None,
        };
    }
    let value = |v: &str| {
        let v = v.trim();
        valid_label_value(v).then(|| v.to_string())
    };
    if let Some((k, v)) = t.split_once("!=") {
        return req(k, LabelOp::Ne(value(v)?));
    }
    if let Some((k, v)) = t.split_once("==") {
        return req(k, LabelOp::Eq(value(v)?));
    }
    if let Some((k, v)) = t.split_once('=') {
        return req(k, LabelOp::Eq(value(v)?));
    }
    if let Some((k, v)) = t.split_once('>') {
        return req(k, LabelOp::Gt(v.trim().parse().ok()?));
    }
    if let Some((k, v)) = t.split_once('<') {
        return req(k, LabelOp::Lt(v.trim().parse().ok()?));
    }
    req(t, LabelOp::Exists)
}

#[derive(Clone, Debug)]
struct FieldReq {
    field: String,
    value: String,
    negate: bool,
}

fn field_supported(r: Resource, f: &str) -> bool {
    matches!(f, "metadata.name" | "metadata.namespace")
        || match r {
            Resource::Pods => matches!(
                f,
                "spec.nodeName"
                    | "spec.restartPolicy"
                    | "spec.schedulerName"
                    | "spec.serviceAccountName"
                    | "status.phase"
                    | "status.podIP"
                    | "status.nominatedNodeName"
            ),
            Resource::Events => matches!(
                f,
                "involvedObject.kind"
                    | "involvedObject.namespace"
                    | "involvedObject.name"
                    | "involvedObject.uid"
                    | "involvedObject.apiVersion"
                    | "involvedObject.resourceVersion"
                    | "involvedObject.fieldPath"
                    | "reason"
                    | "reportingComponent"
                    | "source"
                    | "type"
            ),
            Resource::Jobs => f == "status.successful",
            Resource::Namespaces => f == "status.phase",
            _ => false,
        }
}

fn field_value(obj: &Value, field: &str) -> String {
    let (path, missing) = match field {
        "source" => ("source.component", ""),
        "status.successful" => ("status.succeeded", "0"),
        f => (f, ""),
    };
    let v = path.split('.').try_fold(obj, |v, k| v.get(k));
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => missing.to_string(),
    }
}

fn parse_field_selector(r: Resource, s: &str) -> Result<Vec<FieldReq>, ApiError> {
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    for term in s.split(',') {
        let term = term.trim();
        let (field, value, negate) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, true)
        } else if let Some((f, v)) = term.split_once("==") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, v, false)
        } else {
            return Err(ApiError::bad_request(format!(
                "invalid selector: '{s}'; can't understand '{term}'"
            )));
        };
        let field = field.trim();
        if !field_supported(r, field) {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {field}"
            )));
        }
        out.push(FieldReq {
            field: field.to_string(),
            value: value.trim().to_string(),
            negate,
        });
    }
    Ok(out)
}

/// What a list or watch selects: namespace, label and field selectors.
#[derive(Clone, Debug, Default)]
pub(super) struct Filter {
    pub(super) namespace: Option<String>,
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

impl Filter {
    pub(super) fn from_query(r: Resource, ns: Option<&str>, q: &Query) -> Result<Filter, ApiError> {
        Ok(Filter {
            namespace: ns.map(str::to_string),
            labels: parse_label_selector(q.get("labelSelector").unwrap_or(""))?,
            fields: parse_field_selector(r, q.get("fieldSelector").unwrap_or(""))?,
        })
    }

    pub(super) fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && ns_of(obj) != ns
        {
            return false;
        }
        let labels = obj.pointer("/metadata/labels");
        self.labels
            .iter()
            .all(|req| req.matches(labels.and_then(|l| l.get(&req.key)).and_then(Value::as_str)))
            && self
                .fields
                .iter()
                .all(|f| (field_value(obj, &f.field) == f.value) != f.negate)
    }
}

pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(s: &str) -> Result<Query, ApiError> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(s)
            .map(Query)
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("") | Some("false") | Some("False") | Some("0") => Ok(false),
            Some("true") | Some("True") | Some("1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid boolean value for {key}: {other:?}"
            ))),
        }
    }

    pub(super) fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid integer value for {key}: {v:?}"))
            }),
        }
    }

    pub(super) fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}
