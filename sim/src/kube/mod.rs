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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};
use tokio::sync::watch as signal;
use tokio::time::Instant;

const DEFAULT_HISTORY_LIMIT: usize = 10_000;
const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);
/// The apiserver's `--min-request-timeout` is 1800 s; watches without
/// `timeoutSeconds` last that long.
const DEFAULT_WATCH_TIMEOUT_SECS: u64 = 1800;
const MAX_BODY_BYTES: usize = 16 << 20;
const WATCH_CHUNK_BYTES: usize = 64 << 10;

// ------------------------------------------------------------------ resources

/// The kinds of objects the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Jobs,
    CronJobs,
    Pods,
    Events,
    Namespaces,
    /// coordination.k8s.io/v1 `leases`.
    Leases,
    /// apiextensions.k8s.io/v1 `customresourcedefinitions` (cluster-scoped).
    CustomResourceDefinitions,
    /// A resource a CustomResourceDefinition defines (its storage version);
    /// served only while that CRD exists (see [`FakeKube::install_crd`]).
    Custom(CustomKind),
}

/// The identity of a CRD-defined resource: group, storage version, plural,
/// kind and scope. Interned process-wide (so that [`Resource`] stays `Copy`);
/// whether a given [`FakeKube`] serves it depends on its CRDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomKind(u32);

struct CustomDef {
    group: &'static str,
    api_version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
}

/// Every custom identity ever seen; bounded by the distinct CRDs installed.
static CUSTOM_DEFS: Mutex<Vec<&'static CustomDef>> = Mutex::new(Vec::new());

impl CustomKind {
    fn intern(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        let mut defs = lock(&CUSTOM_DEFS);
        let api_version = format!("{group}/{version}");
        if let Some(i) = defs.iter().position(|d| {
            d.api_version == api_version
                && d.plural == plural
                && d.kind == kind
                && d.namespaced == namespaced
        }) {
            return CustomKind(i as u32);
        }
        let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
        defs.push(Box::leak(Box::new(CustomDef {
            group: leak(group),
            api_version: leak(&api_version),
            plural: leak(plural),
            kind: leak(kind),
            namespaced,
        })));
        CustomKind((defs.len() - 1) as u32)
    }

    fn def(self) -> &'static CustomDef {
        lock(&CUSTOM_DEFS)[self.0 as usize]
    }
}

impl Resource {
    /// The built-in kinds (custom ones come and go with their CRDs).
    pub const ALL: [Resource; 7] = [
        Resource::Jobs,
        Resource::CronJobs,
        Resource::Pods,
        Resource::Events,
        Resource::Namespaces,
        Resource::Leases,
        Resource::CustomResourceDefinitions,
    ];

    pub fn plural(self) -> &'static str {
        match self {
            Resource::Jobs => "jobs",
            Resource::CronJobs => "cronjobs",
            Resource::Pods => "pods",
            Resource::Events => "events",
            Resource::Namespaces => "namespaces",
            Resource::Leases => "leases",
            Resource::CustomResourceDefinitions => "customresourcedefinitions",
            Resource::Custom(c) => c.def().plural,
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Resource::Jobs => "Job",
            Resource::CronJobs => "CronJob",
            Resource::Pods => "Pod",
            Resource::Events => "Event",
            Resource::Namespaces => "Namespace",
            Resource::Leases => "Lease",
            Resource::CustomResourceDefinitions => "CustomResourceDefinition",
            Resource::Custom(c) => c.def().kind,
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            Resource::Jobs | Resource::CronJobs => "batch",
            Resource::Leases => "coordination.k8s.io",
            Resource::CustomResourceDefinitions => "apiextensions.k8s.io",
            Resource::Custom(c) => c.def().group,
            _ => "",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Resource::Jobs | Resource::CronJobs => "batch/v1",
            Resource::Leases => "coordination.k8s.io/v1",
            Resource::CustomResourceDefinitions => "apiextensions.k8s.io/v1",
            Resource::Custom(c) => c.def().api_version,
            _ => "v1",
        }
    }

    pub fn namespaced(self) -> bool {
        match self {
            Resource::Namespaces | Resource::CustomResourceDefinitions => false,
            Resource::Custom(c) => c.def().namespaced,
            _ => true,
        }
    }

    /// Whether a built-in kind has a `status` subresource (custom ones: see
    /// [`Store::has_status`]).
    fn builtin_has_status(self) -> bool {
        !matches!(
            self,
            Resource::Events | Resource::Leases | Resource::Custom(_)
        )
    }

    fn is_custom(self) -> bool {
        matches!(self, Resource::Custom(_))
    }

    /// `jobs.batch`, `pods`: how Status messages name the resource.
    fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_string(),
            g => format!("{}.{g}", self.plural()),
        }
    }

    /// `Job.batch`, `Pod`: how validation errors name the kind.
    fn qualified_kind(self) -> String {
        match self.group() {
            "" => self.kind().to_string(),
            g => format!("{}.{g}", self.kind()),
        }
    }

    /// A built-in resource by group and plural.
    fn lookup(group: &str, plural: &str) -> Option<Resource> {
        Self::ALL
            .into_iter()
            .find(|r| r.group() == group && r.plural() == plural)
    }

    fn max_name_len(self) -> usize {
        match self {
            // The Job name becomes the `job-name` label value.
            Resource::Jobs => 63,
            // The controller appends `-<minutes>` (11 chars) to make Job names.
            Resource::CronJobs => 52,
            Resource::Namespaces => 63,
            _ => 253,
        }
    }
}

// --------------------------------------------------------------------- errors

/// A failure answered as a k8s `Status` object.
#[derive(Clone, Debug)]
struct ApiError {
    code: u16,
    reason: String,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
        }
    }

    fn about(mut self, r: Resource, name: &str) -> Self {
        let mut d = json!({"name": name, "kind": r.plural()});
        if !r.group().is_empty() {
            d["group"] = r.group().into();
        }
        self.details = Some(d);
        self
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    fn not_found(r: Resource, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", r.qualified()),
        )
        .about(r, name)
    }

    fn already_exists(r: Resource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", r.qualified()),
        )
        .about(r, name)
    }

    fn conflict(r: Resource, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                r.qualified()
            ),
        )
        .about(r, name)
    }

    fn stale(r: Resource, name: &str) -> Self {
        Self::conflict(
            r,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    fn invalid(r: Resource, name: &str, what: impl std::fmt::Display) -> Self {
        Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {what}", r.qualified_kind()),
        )
        .about(r, name)
    }

    fn status_json(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }

    fn response(&self) -> Response {
        json_response(self.code, &self.status_json())
    }
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

fn json_response(code: u16, body: &impl Serialize) -> Response {
    let bytes =
        serde_json::to_vec(body).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn text_response(code: u16, text: impl Into<Bytes>) -> Response {
    let mut resp = Response::new(Body::from(text.into()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

// ----------------------------------------------------------------- json utils

fn now_rfc3339() -> String {
    rfc3339(Utc::now())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn name_of(obj: &Value) -> &str {
    str_at(obj, &["metadata", "name"]).unwrap_or("")
}

fn ns_of(obj: &Value) -> &str {
    str_at(obj, &["metadata", "namespace"]).unwrap_or("")
}

fn uid_of(obj: &Value) -> &str {
    str_at(obj, &["metadata", "uid"]).unwrap_or("")
}

fn rv_of(obj: &Value) -> &str {
    str_at(obj, &["metadata", "resourceVersion"]).unwrap_or("")
}

/// `v` as a JSON object, turning anything else into `{}` first.
fn obj_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// `v[key]` as a JSON object, created if missing.
fn obj_at<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    obj_mut(obj_mut(v).entry(key).or_insert(Value::Null))
}

/// The object at `path` below `v`, creating objects on the way.
fn obj_path<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    path.iter().fold(obj_mut(v), |m, k| {
        obj_mut(m.entry(*k).or_insert(Value::Null))
    })
}

fn set_or_remove(v: &mut Value, key: &str, value: Option<Value>) {
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

fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("uid").and_then(Value::as_str))
}

/// Serializes an object without `kind`/`apiVersion`, as list items come from
/// a real apiserver.
struct Bare<'a>(&'a Value);

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
struct ListBody<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Value,
    items: Vec<Bare<'a>>,
}

// ----------------------------------------------------------------- validation

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(dns_label)
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
fn qualified_name_part(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| alnum(b) || b == b'-' || b == b'_' || b == b'.')
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum)
}

fn valid_label_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => dns_subdomain(prefix) && qualified_name_part(name),
        None => qualified_name_part(k),
    }
}

fn valid_label_value(v: &str) -> bool {
    v.is_empty() || qualified_name_part(v)
}

fn validate_name(r: Resource, name: &str) -> Result<(), ApiError> {
    let ok = if r == Resource::Namespaces {
        dns_label(name)
    } else {
        dns_subdomain(name)
    };
    if !ok {
        return Err(ApiError::invalid(
            r,
            name,
            format!(
                "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        ));
    }
    if name.len() > r.max_name_len() {
        return Err(ApiError::invalid(
            r,
            name,
            format!(
                "metadata.name: Invalid value: \"{name}\": must be no more than {} characters",
                r.max_name_len()
            ),
        ));
    }
    Ok(())
}

/// Shape checks a real apiserver does while decoding.
fn check_shape(r: Resource, obj: &Value) -> Result<(), ApiError> {
    let Value::Object(m) = obj else {
        return Err(ApiError::bad_request(
            "the body of the request was in an unknown format - accepted media types include: application/json",
        ));
    };
    if let Some(v) = m.get("apiVersion").filter(|v| !v.is_null())
        && v.as_str() != Some(r.api_version())
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({})",
            r.api_version()
        )));
    }
    if let Some(v) = m.get("kind").filter(|v| !v.is_null())
        && v.as_str() != Some(r.kind())
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({v}) does not match the expected kind ({})",
            r.kind()
        )));
    }
    for key in ["metadata", "spec", "status"] {
        if let Some(v) = m.get(key)
            && !(v.is_object() || v.is_null())
        {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {key} into Go struct field of type {}",
                r.kind()
            )));
        }
    }
    for key in ["labels", "annotations"] {
        match obj.pointer(&format!("/metadata/{key}")) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) if m.values().all(Value::is_string) => {}
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal metadata.{key} into Go struct field ObjectMeta.metadata.{key} of type map[string]string"
                )));
            }
        }
    }
    Ok(())
}

fn validate_meta(r: Resource, name: &str, obj: &Value) -> Result<(), ApiError> {
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            let v = v.as_str().unwrap_or("");
            if !valid_label_key(k) {
                return Err(ApiError::invalid(
                    r,
                    name,
                    format!(
                        "metadata.labels: Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'"
                    ),
                ));
            }
            if !valid_label_value(v) {
                return Err(ApiError::invalid(
                    r,
                    name,
                    format!(
                        "metadata.labels: Invalid value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
                    ),
                ));
            }
        }
    }
    if let Some(ann) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let mut total = 0;
        for (k, v) in ann {
            if !valid_label_key(k) {
                return Err(ApiError::invalid(
                    r,
                    name,
                    format!(
                        "metadata.annotations: Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'"
                    ),
                ));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            return Err(ApiError::invalid(
                r,
                name,
                "metadata.annotations: Too long: must have at most 262144 bytes",
            ));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ selectors

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
struct Filter {
    namespace: Option<String>,
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

impl Filter {
    fn from_query(r: Resource, ns: Option<&str>, q: &Query) -> Result<Filter, ApiError> {
        Ok(Filter {
            namespace: ns.map(str::to_string),
            labels: parse_label_selector(q.get("labelSelector").unwrap_or(""))?,
            fields: parse_field_selector(r, q.get("fieldSelector").unwrap_or(""))?,
        })
    }

    fn matches(&self, obj: &Value) -> bool {
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

// ---------------------------------------------------------------------- query

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(s: &str) -> Result<Query, ApiError> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(s)
            .map(Query)
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("") | Some("false") | Some("False") | Some("0") => Ok(false),
            Some("true") | Some("True") | Some("1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid boolean value for {key}: {other:?}"
            ))),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid integer value for {key}: {v:?}"))
            }),
        }
    }

    fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

// ---------------------------------------------------------------------- store

type Key = (String, String);

struct HistoryEvent {
    rv: u64,
    resource: Resource,
    kind: &'static str,
    object: Arc<Value>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// An HTTP client: status is reset on create (status subresource rules).
    Client,
    /// A test fixture or controller: status is kept as given.
    World,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// PUT/PATCH of the main resource: status changes are ignored.
    Main,
    /// PUT/PATCH of the `status` subresource: only status changes apply.
    Status,
    /// The world: everything except identity applies.
    World,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Propagation {
    Orphan,
    Background,
    Foreground,
}

#[derive(Default)]
struct DeleteOpts {
    policy: Option<Propagation>,
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

impl DeleteOpts {
    fn parse(body: &[u8], q: &Query) -> Result<DeleteOpts, ApiError> {
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

struct Store {
    rv: u64,
    objects: BTreeMap<Resource, BTreeMap<Key, Arc<Value>>>,
    /// What the CRDs make served: custom resource → its definition.
    served: BTreeMap<Resource, Served>,
    /// How this request wants unknown fields handled (`fieldValidation`).
    field_validation: FieldValidation,
    /// `Warning` headers for the current request.
    warnings: Vec<String>,
    /// owner uid → dependents (what the garbage collector's graph knows).
    dependents: HashMap<String, BTreeSet<(Resource, String, String)>>,
    history: VecDeque<HistoryEvent>,
    history_limit: usize,
    /// A watch may resume from any version >= horizon.
    horizon: u64,
    /// Highest version of an event that was forgotten; an open watch behind
    /// it has lost events and is ended with 410.
    lost_upto: u64,
    drop_gen: u64,
    /// (namespace, pod) → container → log text.
    logs: HashMap<Key, BTreeMap<String, String>>,
    seed: u64,
    seq: u64,
}

impl Store {
    fn new() -> Store {
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

    fn new_uid(&mut self) -> String {
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

    fn random_suffix(&mut self) -> String {
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

    fn map(&self, r: Resource) -> &BTreeMap<Key, Arc<Value>> {
        static EMPTY: BTreeMap<Key, Arc<Value>> = BTreeMap::new();
        self.objects.get(&r).unwrap_or(&EMPTY)
    }

    fn has_status(&self, r: Resource) -> bool {
        match r {
            Resource::Custom(_) => self.served.get(&r).is_some_and(|s| s.status),
            r => r.builtin_has_status(),
        }
    }

    /// The custom resource served at `/apis/{group}/{version}/{plural}`.
    fn served_at(&self, group: &str, version: &str, plural: &str) -> Option<Resource> {
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

    fn get(&self, r: Resource, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.map(r).get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of `r` in key order, within `ns` if given, strictly after `after`.
    fn range<'a>(
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
    fn page(
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

    fn dependents_of(&self, uid: &str) -> Vec<(Resource, String, String)> {
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

    fn trim(&mut self) {
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.lost_upto = self.lost_upto.max(e.rv);
                self.horizon = self.horizon.max(e.rv);
            }
        }
    }

    fn compact(&mut self) {
        if let Some(e) = self.history.back() {
            self.lost_upto = self.lost_upto.max(e.rv);
        }
        self.history.clear();
        // Versions are etcd revisions shared by every kind, so gaps are normal.
        self.rv += 1;
        self.horizon = self.rv;
    }

    /// Stores `obj` under a new version and emits `kind` (ADDED/MODIFIED).
    fn put(&mut self, r: Resource, mut obj: Value, kind: &'static str) -> Value {
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
    fn remove(&mut self, r: Resource, ns: &str, name: &str) -> Option<Value> {
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

    fn create(
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
    fn update(
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

    #[allow(clippy::too_many_arguments)]
    fn patch(
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

    fn delete(
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

// ----------------------------------------------------------------------- CRDs

/// How a request wants fields unknown to the schema handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    fn from_query(q: &Query) -> Result<FieldValidation, ApiError> {
        match q.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            ))),
        }
    }
}

/// An `additionalPrinterColumns` entry.
#[derive(Clone, Debug)]
struct PrinterColumn {
    name: String,
    kind: String,
    format: String,
    description: String,
    priority: i64,
    json_path: String,
}

/// A resource a CRD makes served (its storage version).
#[derive(Clone, Debug)]
struct Served {
    crd: String,
    group: String,
    version: String,
    plural: String,
    singular: String,
    kind: String,
    short_names: Vec<String>,
    categories: Vec<String>,
    status: bool,
    columns: Vec<PrinterColumn>,
    schema: Option<Value>,
}

fn strings_at(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn storage_version(crd: &Value) -> Option<&Value> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)?
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
}

impl Served {
    fn from_crd(crd: &Value) -> Option<(Resource, Served)> {
        let spec = crd.get("spec")?;
        let group = spec.get("group")?.as_str()?;
        let plural = str_at(spec, &["names", "plural"])?;
        let kind = str_at(spec, &["names", "kind"])?;
        let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
        let v = storage_version(crd)?;
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            return None;
        }
        let version = v.get("name")?.as_str()?;
        let columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: str_at(c, &["name"]).unwrap_or("").to_string(),
                        kind: str_at(c, &["type"]).unwrap_or("string").to_string(),
                        format: str_at(c, &["format"]).unwrap_or("").to_string(),
                        description: str_at(c, &["description"]).unwrap_or("").to_string(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        json_path: str_at(c, &["jsonPath"]).unwrap_or("").to_string(),
                    })
                    .collect()
            })
            // Without printer columns the apiserver shows an Age column.
            .unwrap_or_else(|| {
                vec![PrinterColumn {
                    name: "Age".into(),
                    kind: "date".into(),
                    format: String::new(),
                    description: String::new(),
                    priority: 0,
                    json_path: ".metadata.creationTimestamp".into(),
                }]
            });
        let r = Resource::Custom(CustomKind::intern(group, version, plural, kind, namespaced));
        let served = Served {
            crd: name_of(crd).to_string(),
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            singular: str_at(spec, &["names", "singular"])
                .map(str::to_string)
                .unwrap_or_else(|| kind.to_ascii_lowercase()),
            kind: kind.to_string(),
            short_names: strings_at(spec, "/names/shortNames"),
            categories: strings_at(spec, "/names/categories"),
            status: v.pointer("/subresources/status").is_some(),
            columns,
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
        };
        Some((r, served))
    }
}

/// Checks of the apiextensions strategy (the parts a client can trip over).
fn validate_crd(obj: &Value) -> Result<(), ApiError> {
    let r = Resource::CustomResourceDefinitions;
    let name = name_of(obj);
    let invalid = |what: String| Err(ApiError::invalid(r, name, what));
    let group = str_at(obj, &["spec", "group"]).unwrap_or("");
    let plural = str_at(obj, &["spec", "names", "plural"]).unwrap_or("");
    let kind = str_at(obj, &["spec", "names", "kind"]).unwrap_or("");
    if group.is_empty() {
        return invalid("spec.group: Required value".into());
    }
    if !group.contains('.') || !dns_subdomain(group) {
        return invalid(format!(
            "spec.group: Invalid value: \"{group}\": should be a domain with at least one dot"
        ));
    }
    if plural.is_empty() {
        return invalid("spec.names.plural: Required value".into());
    }
    if !dns_label(plural) {
        return invalid(format!(
            "spec.names.plural: Invalid value: \"{plural}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        ));
    }
    if kind.is_empty() {
        return invalid("spec.names.kind: Required value".into());
    }
    if name != format!("{plural}.{group}") {
        return invalid(format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        ));
    }
    match str_at(obj, &["spec", "scope"]) {
        Some("Namespaced") | Some("Cluster") => {}
        Some(other) => {
            return invalid(format!(
                "spec.scope: Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
            ));
        }
        None => return invalid("spec.scope: Required value".into()),
    }
    let versions = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if versions.is_empty() {
        return invalid("spec.versions: Invalid value: null: must have exactly one version marked as storage version".into());
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage != 1 {
        return invalid(format!(
            "spec.versions: Invalid value: {}: must have exactly one version marked as storage version",
            Value::Array(versions.to_vec())
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.pointer("/schema/openAPIV3Schema").is_none() {
            return invalid(format!(
                "spec.versions[{i}].schema.openAPIV3Schema: Required value: schemas are required"
            ));
        }
        for (j, c) in v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let path = str_at(c, &["jsonPath"]).unwrap_or("");
            if parse_simple_path(path).is_none() {
                return invalid(format!(
                    "spec.versions[{i}].additionalPrinterColumns[{j}].jsonPath: Invalid value: \"{path}\": must be a simple json path starting with ."
                ));
            }
        }
    }
    Ok(())
}

/// What the CRD controllers write: accepted names, Established, stored versions.
fn crd_status(obj: &Value, old_status: Option<&Value>) -> Value {
    let now = now_rfc3339();
    let mut names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let kind = str_at(&names, &["kind"]).unwrap_or("").to_string();
    let m = obj_mut(&mut names);
    m.entry("singular")
        .or_insert_with(|| kind.to_ascii_lowercase().into());
    m.entry("listKind")
        .or_insert_with(|| format!("{kind}List").into());
    let mut stored = old_status
        .map(|s| strings_at(s, "/storedVersions"))
        .unwrap_or_default();
    if let Some(v) = storage_version(obj)
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
        && !stored.iter().any(|s| s == v)
    {
        stored.push(v.to_string());
    }
    let conditions = old_status
        .and_then(|s| s.get("conditions"))
        .cloned()
        .unwrap_or_else(|| {
            json!([
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": now},
            ])
        });
    json!({"acceptedNames": names, "conditions": conditions, "storedVersions": stored})
}

/// A step of a simple JSONPath (`.a.b[0].c`).
#[derive(Debug, PartialEq)]
enum PathStep {
    Key(String),
    Index(usize),
}

/// Parses the simple JSON paths printer columns may use; `None` if not one.
fn parse_simple_path(p: &str) -> Option<Vec<PathStep>> {
    let p = p.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(p);
    let mut rest = p.strip_prefix('.')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let key = &rest[..end];
        if key.is_empty() && !rest.starts_with('[') {
            return None;
        }
        if !key.is_empty() {
            steps.push(PathStep::Key(key.to_string()));
        }
        rest = &rest[end..];
        while let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            let inside = r[..close].trim_matches(|c| c == '\'' || c == '"');
            match inside.parse::<usize>() {
                Ok(i) => steps.push(PathStep::Index(i)),
                Err(_) if !inside.is_empty() && !inside.contains(['*', ':', '?', '@']) => {
                    steps.push(PathStep::Key(inside.to_string()))
                }
                Err(_) => return None,
            }
            rest = &r[close + 1..];
        }
        if let Some(r) = rest.strip_prefix('.') {
            if r.is_empty() {
                return None;
            }
            rest = r;
        }
    }
    Some(steps)
}

fn eval_simple_path<'a>(obj: &'a Value, steps: &[PathStep]) -> Option<&'a Value> {
    steps.iter().try_fold(obj, |v, s| match s {
        PathStep::Key(k) => v.get(k),
        PathStep::Index(i) => v.get(*i),
    })
}

/// Kubernetes' `duration.HumanDuration`, as `kubectl get` shows ages.
fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    if d < chrono::Duration::seconds(-1) {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age_of(ts: Option<&str>) -> String {
    match ts.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
        Some(t) => human_duration(Utc::now() - t.with_timezone(&Utc)),
        None => "<unknown>".into(),
    }
}

/// A printer column's cell, as the apiextensions table convertor makes it.
fn column_cell(col: &PrinterColumn, obj: &Value) -> Value {
    let Some(v) = parse_simple_path(&col.json_path)
        .and_then(|steps| eval_simple_path(obj, &steps))
        .filter(|v| !v.is_null())
    else {
        return Value::Null;
    };
    match (col.kind.as_str(), v) {
        ("string", Value::String(s)) => s.clone().into(),
        // jsonpath prints other values as Go's fmt would.
        ("string", other) => other.to_string().into(),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Into::into),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, Into::into),
        ("boolean", Value::Bool(b)) => (*b).into(),
        ("date", Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => human_duration(Utc::now() - t.with_timezone(&Utc)).into(),
            Err(_) => "<invalid>".into(),
        },
        _ => Value::Null,
    }
}

fn json_type_name(v: &Value) -> &'static str {
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

/// Structural-schema handling of a custom resource, as the apiserver does
/// it: unknown fields pruned (reported in `pruned`), `null`s of non-nullable
/// fields dropped, defaults applied, then types, `required` and `enum` checked.
fn apply_schema(
    v: &mut Value,
    s: &Value,
    path: &str,
    pruned: &mut Vec<String>,
    errs: &mut Vec<String>,
) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    let preserve = s
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    let int_or_string = s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
    let actual = json_type_name(v);
    let type_ok = match ty {
        "" => true,
        _ if int_or_string => matches!(actual, "integer" | "string"),
        "number" => matches!(actual, "integer" | "number"),
        t => t == actual,
    };
    if !type_ok {
        let expected = if int_or_string { "integer,string" } else { ty };
        errs.push(format!(
            "{p}: Invalid value: \"{actual}\": {p} in body must be of type {expected}: \"{actual}\"",
            p = if path.is_empty() { "<root>" } else { path }
        ));
        return;
    }
    if let Some(choices) = s.get("enum").and_then(Value::as_array)
        && !choices.contains(v)
    {
        let list: Vec<String> = choices.iter().map(Value::to_string).collect();
        errs.push(format!(
            "{path}: Unsupported value: {v}: supported values: {}",
            list.join(", ")
        ));
    }
    match v {
        Value::Object(m) => {
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            let embedded = s
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let sub = props.and_then(|p| p.get(&k)).or(additional);
                let keep_meta = (path.is_empty() || embedded)
                    && matches!(k.as_str(), "apiVersion" | "kind" | "metadata");
                match sub {
                    Some(sub) => {
                        let child = m.get_mut(&k).expect("key listed");
                        if child.is_null()
                            && sub.get("nullable").and_then(Value::as_bool) != Some(true)
                        {
                            m.remove(&k);
                            continue;
                        }
                        if keep_meta && k == "metadata" {
                            continue;
                        }
                        apply_schema(child, sub, &join(&k), pruned, errs);
                    }
                    None if keep_meta || preserve => {}
                    None => {
                        m.remove(&k);
                        pruned.push(join(&k));
                    }
                }
            }
            if let Some(props) = props {
                for (k, sub) in props {
                    if !m.contains_key(k)
                        && let Some(d) = sub.get("default")
                    {
                        let mut d = d.clone();
                        apply_schema(&mut d, sub, &join(k), &mut Vec::new(), errs);
                        m.insert(k.clone(), d);
                    }
                }
            }
            for k in strings_at(s, "/required") {
                if !m.contains_key(&k) {
                    errs.push(format!("{}: Required value", join(&k)));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    apply_schema(item, item_schema, &format!("{path}[{i}]"), pruned, errs);
                }
            }
        }
        _ => {}
    }
}

/// A MicroTime as the apiserver writes it back (UTC, microseconds).
fn normalize_micro_time(v: &mut Value, field: &str) -> Result<(), String> {
    let Some(Value::String(s)) = v.get(field) else {
        return Ok(());
    };
    let t = DateTime::parse_from_rfc3339(s).map_err(|_| {
        format!("parsing time \"{s}\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse")
    })?;
    v[field] = t
        .with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::Micros, true)
        .into();
    Ok(())
}

/// Lease decoding and validation (coordination.k8s.io/v1).
fn check_lease(obj: &mut Value) -> Result<(), ApiError> {
    let r = Resource::Leases;
    let name = name_of(obj).to_string();
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return Ok(());
    };
    for f in ["acquireTime", "renewTime"] {
        normalize_micro_time(spec, f).map_err(ApiError::bad_request)?;
    }
    for (f, min) in [("leaseDurationSeconds", 1), ("leaseTransitions", 0)] {
        match spec.get(f) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.is_i64() => {
                let n = n.as_i64().unwrap_or(0);
                if n < min {
                    let what = if min == 1 {
                        "must be greater than 0"
                    } else {
                        "must be greater than or equal to 0"
                    };
                    return Err(ApiError::invalid(
                        r,
                        &name,
                        format!("spec.{f}: Invalid value: {n}: {what}"),
                    ));
                }
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal {} into Go struct field LeaseSpec.spec.{f} of type int32",
                    json_type_name(other)
                )));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------- inner

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

struct FailRule {
    method: String,
    prefix: String,
    remaining: usize,
    status: u16,
    retry_after: Option<u64>,
}

struct Knobs {
    rules: Vec<FailRule>,
    /// Every request is answered with this status until then.
    outage: Option<(Instant, u16)>,
    latency: Duration,
    bookmark_interval: Duration,
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

    fn bookmark_interval(&self) -> Duration {
        lock(&self.knobs).bookmark_interval
    }

    fn take_fault(&self, method: &str, path: &str) -> (Duration, Option<Response>) {
        let mut k = lock(&self.knobs);
        let latency = k.latency;
        match k.outage {
            Some((until, status)) if Instant::now() < until => {
                let err = ApiError::new(
                    status,
                    reason_for(status),
                    format!("injected outage: the apiserver answers {status} for {method} {path}"),
                );
                return (latency, Some(err.response()));
            }
            Some(_) => k.outage = None,
            None => {}
        }
        let hit = k.rules.iter_mut().find(|f| {
            f.remaining > 0
                && (f.method == "*" || f.method.eq_ignore_ascii_case(method))
                && path.starts_with(&f.prefix)
        });
        let resp = hit.map(|f| {
            f.remaining -= 1;
            let mut err = ApiError::new(
                f.status,
                reason_for(f.status),
                format!("injected fault for {method} {path}"),
            );
            if let Some(s) = f.retry_after {
                err.details = Some(json!({"retryAfterSeconds": s}));
            }
            let mut resp = err.response();
            if let Some(s) = f.retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            resp
        });
        k.rules.retain(|f| f.remaining > 0);
        (latency, resp)
    }
}

// ---------------------------------------------------------------------- http

struct Call<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    content_type: Option<&'a str>,
    accept: Option<&'a str>,
    body: &'a [u8],
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_ascii_uppercase();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await;
    let json_body = match &bytes {
        Ok(b) if !b.is_empty() => serde_json::from_slice(b).ok(),
        _ => None,
    };
    lock(&inner.requests).push(RecordedRequest {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        body: json_body,
        content_type: content_type.clone(),
        accept: accept.clone(),
        at: std::time::Instant::now(),
    });
    let (latency, fault) = inner.take_fault(&method, &path);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(resp) = fault {
        return resp;
    }
    let Ok(bytes) = bytes else {
        return ApiError::new(413, "RequestEntityTooLarge", "request entity too large").response();
    };
    let call = Call {
        method: &method,
        path: &path,
        query: &query,
        content_type: content_type.as_deref(),
        accept: accept.as_deref(),
        body: &bytes,
    };
    route(&inner, &call).unwrap_or_else(|e| e.response())
}

fn route(inner: &Arc<Inner>, c: &Call) -> Result<Response, ApiError> {
    let trimmed = c.path.trim_end_matches('/');
    let segs: Vec<&str> = trimmed.split('/').skip(1).collect();
    let get_only = |v: Value| {
        if c.method == "GET" {
            Ok(json_response(200, &v))
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    match segs.as_slice() {
        ["version"] => get_only(version_json()),
        ["healthz"] | ["readyz"] | ["livez"] => Ok(text_response(200, "ok")),
        ["api"] => get_only(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": inner.addr.to_string()}],
        })),
        ["apis"] => {
            let groups = Discovery::of(&inner.store()).groups();
            get_only(json!({
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": groups.iter().map(|(g, vs)| api_group(g, vs)).collect::<Vec<_>>(),
            }))
        }
        ["apis", group] => {
            let groups = Discovery::of(&inner.store()).groups();
            let (g, vs) = groups
                .iter()
                .find(|(g, _)| g == group)
                .ok_or_else(ApiError::path_not_found)?;
            get_only(api_group(g, vs))
        }
        ["api", "v1"] => get_only(Discovery::of(&inner.store()).resource_list("", "v1")),
        ["openapi", "v3"] => get_only(Discovery::of(&inner.store()).openapi_root()),
        ["openapi", "v3", "api", "v1"] => {
            get_only(Discovery::of(&inner.store()).openapi_gv("", "v1"))
        }
        ["openapi", "v3", "apis", group, version] => {
            let d = Discovery::of(&inner.store());
            if !d
                .groups()
                .iter()
                .any(|(g, vs)| g == group && vs.iter().any(|v| v == version))
            {
                return Err(ApiError::path_not_found());
            }
            get_only(d.openapi_gv(group, version))
        }
        ["apis", group, version] => {
            let d = Discovery::of(&inner.store());
            if !d
                .groups()
                .iter()
                .any(|(g, vs)| g == group && vs.iter().any(|v| v == version))
            {
                return Err(ApiError::path_not_found());
            }
            get_only(d.resource_list(group, version))
        }
        ["api", "v1", rest @ ..] => {
            resources(inner, c, rest, &|plural| Resource::lookup("", plural))
        }
        ["apis", group, version, rest @ ..] => {
            let builtin = |plural: &str| {
                Resource::lookup(group, plural)
                    .filter(|r| r.api_version() == format!("{group}/{version}"))
            };
            resources(inner, c, rest, &|plural| {
                builtin(plural).or_else(|| inner.store().served_at(group, version, plural))
            })
        }
        _ => Err(ApiError::path_not_found()),
    }
}

/// What discovery shows: the built-in kinds and the served custom ones.
struct Discovery {
    custom: Vec<(Resource, Served)>,
}

impl Discovery {
    fn of(s: &Store) -> Discovery {
        Discovery {
            custom: s.served.iter().map(|(r, v)| (*r, v.clone())).collect(),
        }
    }

    /// Groups (built-in first, then custom ones by name) with their versions.
    fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let builtin = Resource::ALL.iter().map(|r| {
            (
                r.group().to_string(),
                r.api_version()
                    .rsplit('/')
                    .next()
                    .unwrap_or("v1")
                    .to_string(),
            )
        });
        let mut custom: Vec<(String, String)> = self
            .custom
            .iter()
            .map(|(_, s)| (s.group.clone(), s.version.clone()))
            .collect();
        custom.sort();
        for (g, v) in builtin.chain(custom) {
            if g.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(og, _)| *og == g) {
                Some((_, vs)) if !vs.contains(&v) => vs.push(v),
                Some(_) => {}
                None => out.push((g, vec![v])),
            }
        }
        out
    }

    fn resource_list(&self, group: &str, version: &str) -> Value {
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let verbs = json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ]);
        let mut resources = Vec::new();
        for r in Resource::ALL.into_iter().filter(|r| r.api_version() == gv) {
            let mut entry = json!({
                "name": r.plural(), "singularName": r.kind().to_ascii_lowercase(), "namespaced": r.namespaced(),
                "kind": r.kind(), "verbs": verbs,
            });
            if r == Resource::CustomResourceDefinitions {
                entry["shortNames"] = json!(["crd", "crds"]);
                entry["categories"] = json!(["api-extensions"]);
            }
            resources.push(entry);
            if r.builtin_has_status() {
                resources.push(json!({
                    "name": format!("{}/status", r.plural()), "singularName": "", "namespaced": r.namespaced(),
                    "kind": r.kind(), "verbs": ["get", "patch", "update"],
                }));
            }
            if r == Resource::Pods {
                resources.push(json!({
                    "name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"],
                }));
            }
        }
        for (r, s) in self
            .custom
            .iter()
            .filter(|(_, s)| s.group == group && s.version == version)
        {
            let mut entry = json!({
                "name": s.plural, "singularName": s.singular, "namespaced": r.namespaced(),
                "kind": s.kind,
                "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
                "storageVersionHash": format!("{:012x}", fnv(&format!("{group}/{version}/{}", s.plural)) & 0xffff_ffff_ffff),
            });
            if !s.short_names.is_empty() {
                entry["shortNames"] = json!(s.short_names);
            }
            if !s.categories.is_empty() {
                entry["categories"] = json!(s.categories);
            }
            resources.push(entry);
            if s.status {
                resources.push(json!({
                    "name": format!("{}/status", s.plural), "singularName": "", "namespaced": r.namespaced(),
                    "kind": s.kind, "verbs": ["get", "patch", "update"],
                }));
            }
        }
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
    }
}

impl Discovery {
    /// `/openapi/v3`: one document per group-version.
    fn openapi_root(&self) -> Value {
        let mut paths = Map::new();
        let mut gvs = vec![(String::new(), "v1".to_string())];
        for (g, vs) in self.groups() {
            gvs.extend(vs.into_iter().map(|v| (g.clone(), v)));
        }
        for (g, v) in gvs {
            let key = if g.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{g}/{v}")
            };
            let hash = format!("{:016X}", fnv(&self.openapi_gv(&g, &v).to_string()));
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
            );
        }
        json!({"paths": paths})
    }

    /// A group-version's OpenAPI v3 document: its paths and operations (with
    /// the `fieldValidation` parameter, which tells kubectl to leave
    /// validation to the server) and, for custom kinds, their schemas.
    fn openapi_gv(&self, group: &str, version: &str) -> Value {
        let gv_prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let mut kinds: Vec<(Resource, Option<Served>)> = Resource::ALL
            .into_iter()
            .filter(|r| {
                r.group() == group && r.api_version().ends_with(&format!("/{version}"))
                    || (group.is_empty() && r.group().is_empty() && version == "v1")
            })
            .map(|r| (r, None))
            .collect();
        kinds.extend(
            self.custom
                .iter()
                .filter(|(_, s)| s.group == group && s.version == version)
                .map(|(r, s)| (*r, Some(s.clone()))),
        );
        let mut paths = Map::new();
        let mut schemas = Map::new();
        let param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        for (r, served) in kinds {
            let gvk = json!({"group": group, "version": version, "kind": r.kind()});
            let op = |action: &str, writes: bool| {
                let mut params = vec![param("dryRun"), param("fieldManager")];
                if writes {
                    params.push(param("fieldValidation"));
                }
                json!({
                    "operationId": format!("{action}{}", r.kind()),
                    "parameters": params,
                    "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-action": action,
                    "x-kubernetes-group-version-kind": gvk,
                })
            };
            let base = if r.namespaced() {
                format!("{gv_prefix}/namespaces/{{namespace}}/{}", r.plural())
            } else {
                format!("{gv_prefix}/{}", r.plural())
            };
            paths.insert(
                base.clone(),
                json!({"get": op("list", false), "post": op("post", true), "delete": op("deletecollection", false)}),
            );
            paths.insert(
                format!("{base}/{{name}}"),
                json!({"get": op("get", false), "put": op("put", true), "patch": op("patch", true), "delete": op("delete", false)}),
            );
            if let Some(s) = served {
                let mut schema = s
                    .schema
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object"}));
                obj_mut(&mut schema).insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
                let reversed: Vec<&str> = group.split('.').rev().collect();
                schemas.insert(
                    format!("{}.{version}.{}", reversed.join("."), r.kind()),
                    schema,
                );
            }
        }
        json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.33.1"},
            "paths": paths,
            "components": {"schemas": schemas},
        })
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn api_group(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": vs,
        "preferredVersion": vs[0],
    })
}

fn version_json() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.1",
        "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
        "gitTreeState": "clean",
        "buildDate": "2025-05-15T08:19:08Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn resources(
    inner: &Arc<Inner>,
    c: &Call,
    rest: &[&str],
    lookup: &dyn Fn(&str) -> Option<Resource>,
) -> Result<Response, ApiError> {
    let lookup = |plural: &str| lookup(plural).ok_or_else(ApiError::path_not_found);
    match rest {
        ["namespaces", ns, plural, more @ ..] => {
            // `namespaces/{name}/status` is the Namespace's own subresource.
            if *plural == "status" && more.is_empty() && lookup("namespaces").is_ok() {
                return object(inner, c, Resource::Namespaces, "", ns, Some("status"));
            }
            let r = lookup(plural)?;
            if !r.namespaced() {
                return Err(ApiError::path_not_found());
            }
            match more {
                [] => collection(inner, c, r, Some(ns)),
                [name] => object(inner, c, r, ns, name, None),
                [name, sub] => object(inner, c, r, ns, name, Some(sub)),
                _ => Err(ApiError::path_not_found()),
            }
        }
        [plural] => collection(inner, c, lookup(plural)?, None),
        [plural, name] => {
            let r = lookup(plural)?;
            if r.namespaced() {
                return Err(ApiError::path_not_found());
            }
            object(inner, c, r, "", name, None)
        }
        [plural, name, sub] => {
            let r = lookup(plural)?;
            if r.namespaced() {
                return Err(ApiError::path_not_found());
            }
            object(inner, c, r, "", name, Some(sub))
        }
        _ => Err(ApiError::path_not_found()),
    }
}

fn json_body(c: &Call) -> Result<Value, ApiError> {
    if let Some(ct) = c.content_type {
        let ct = ct.split(';').next().unwrap_or("").trim();
        if !ct.is_empty() && ct != "application/json" && ct != "*/*" {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json (got {ct})"
                ),
            ));
        }
    }
    serde_json::from_slice(c.body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request was in an unknown format: {e}"
        ))
    })
}

fn collection(
    inner: &Arc<Inner>,
    c: &Call,
    r: Resource,
    ns: Option<&str>,
) -> Result<Response, ApiError> {
    let q = Query::parse(c.query)?;
    match c.method {
        "GET" => {
            let filter = Filter::from_query(r, ns, &q)?;
            if q.flag("watch")? {
                watch_response(inner, r, filter, &q)
            } else {
                list_response(inner, c, r, filter, &q)
            }
        }
        "POST" => {
            if r.namespaced() && ns.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let body = json_body(c)?;
            let (v, warnings) = mutate_validated(inner, &q, |s| {
                s.create(r, ns, body, Origin::Client, q.dry_run())
            })?;
            Ok(with_warnings(json_response(201, &v), &warnings))
        }
        "DELETE" => {
            let filter = Filter::from_query(r, ns, &q)?;
            let opts = DeleteOpts::parse(c.body, &q)?;
            let deleted = inner.mutate(|s| {
                let keys: Vec<Key> = s
                    .range(r, ns, None)
                    .filter(|(_, v)| filter.matches(v))
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.iter()
                    .filter_map(|(kns, kname)| s.delete(r, kns, kname, &opts).ok())
                    .collect::<Vec<_>>()
            });
            let rv = inner.store().rv;
            Ok(json_response(
                200,
                &ListBody {
                    kind: format!("{}List", r.kind()),
                    api_version: r.api_version(),
                    metadata: json!({"resourceVersion": rv.to_string()}),
                    items: deleted.iter().map(Bare).collect(),
                },
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn object(
    inner: &Arc<Inner>,
    c: &Call,
    r: Resource,
    ns: &str,
    name: &str,
    sub: Option<&str>,
) -> Result<Response, ApiError> {
    let q = Query::parse(c.query)?;
    let status_sub = match sub {
        None => false,
        Some("status") if inner.store().has_status(r) => true,
        Some("log") if r == Resource::Pods => {
            return if c.method == "GET" {
                pod_log(inner, ns, name, &q)
            } else {
                Err(ApiError::method_not_allowed())
            };
        }
        Some(_) => return Err(ApiError::path_not_found()),
    };
    let dry_run = q.dry_run();
    match c.method {
        "GET" => {
            let s = inner.store();
            let v = s
                .get(r, ns, name)
                .ok_or_else(|| ApiError::not_found(r, name))?;
            if let Some(version) = table_version(c.accept)
                && let Some(kind) = table_kind(&s, r)
            {
                let meta = json!({"resourceVersion": rv_of(v)});
                return Ok(json_response(
                    200,
                    &table_json(version, &kind, meta, std::slice::from_ref(v), &q)?,
                ));
            }
            Ok(json_response(200, &**v))
        }
        "PUT" => {
            let body = json_body(c)?;
            let mode = if status_sub { Mode::Status } else { Mode::Main };
            let (v, warnings) =
                mutate_validated(inner, &q, |s| s.update(r, ns, name, body, mode, dry_run))?;
            Ok(with_warnings(json_response(200, &v), &warnings))
        }
        "PATCH" => {
            let ct = c.content_type.unwrap_or("");
            let fm = q.get("fieldManager");
            let ((code, v), warnings) = mutate_validated(inner, &q, |s| {
                s.patch(r, ns, name, ct, c.body, status_sub, fm, dry_run)
            })?;
            Ok(with_warnings(json_response(code, &v), &warnings))
        }
        "DELETE" if !status_sub => {
            let opts = DeleteOpts::parse(c.body, &q)?;
            let v = inner.mutate(|s| s.delete(r, ns, name, &opts))?;
            Ok(json_response(200, &v))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Runs a write with the request's `fieldValidation`; returns its warnings.
fn mutate_validated<T>(
    inner: &Arc<Inner>,
    q: &Query,
    f: impl FnOnce(&mut Store) -> Result<T, ApiError>,
) -> Result<(T, Vec<String>), ApiError> {
    let fv = FieldValidation::from_query(q)?;
    let (out, warnings) = inner.mutate(|s| {
        s.field_validation = fv;
        s.warnings.clear();
        let out = f(s);
        s.field_validation = FieldValidation::Warn;
        (out, std::mem::take(&mut s.warnings))
    });
    out.map(|v| (v, warnings))
}

/// `Warning: 299 - "…"` headers, as the apiserver sends them.
fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let quoted = serde_json::to_string(w).unwrap_or_default();
        if let Ok(h) = HeaderValue::from_str(&format!("299 - {quoted}")) {
            resp.headers_mut().append(header::WARNING, h);
        }
    }
    resp
}

/// The Table version `Accept` asks for before any plain JSON, if any.
fn table_version(accept: Option<&str>) -> Option<&'static str> {
    for range in accept?.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk.trim().eq_ignore_ascii_case(k))
                .map(|(_, v)| v.trim())
        };
        let json_like = media == "application/json" || media == "*/*" || media == "application/*";
        match param("as") {
            Some("Table") if json_like && param("g") == Some("meta.k8s.io") => match param("v") {
                Some("v1") => return Some("meta.k8s.io/v1"),
                Some("v1beta1") => return Some("meta.k8s.io/v1beta1"),
                _ => {}
            },
            None if json_like => return None,
            _ => {}
        }
    }
    None
}

/// How the server prints a kind as a Table (kinds without one get plain lists).
enum TableKind {
    Custom(Vec<PrinterColumn>),
    Lease,
    Crd,
}

fn table_kind(s: &Store, r: Resource) -> Option<TableKind> {
    match r {
        Resource::Custom(_) => s
            .served
            .get(&r)
            .map(|v| TableKind::Custom(v.columns.clone())),
        Resource::Leases => Some(TableKind::Lease),
        Resource::CustomResourceDefinitions => Some(TableKind::Crd),
        _ => None,
    }
}

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

impl TableKind {
    fn columns(&self) -> Vec<Value> {
        let col = |name: &str, ty: &str, format: &str, desc: &str, priority: i64| json!({"name": name, "type": ty, "format": format, "description": desc, "priority": priority});
        let mut out = vec![col("Name", "string", "name", NAME_DESCRIPTION, 0)];
        match self {
            TableKind::Custom(cols) => out.extend(cols.iter().map(|c| {
                let desc = if c.description.is_empty() {
                    format!(
                        "Custom resource definition column (in JSONPath format): {}",
                        c.json_path
                    )
                } else {
                    c.description.clone()
                };
                col(&c.name, &c.kind, &c.format, &desc, c.priority)
            })),
            TableKind::Lease => {
                out.push(col(
                    "Holder",
                    "string",
                    "",
                    "The holder of the lease (spec.holderIdentity).",
                    0,
                ));
                out.push(col("Age", "string", "", CREATION_DESCRIPTION, 0));
            }
            TableKind::Crd => out.push(col("Created At", "date", "", CREATION_DESCRIPTION, 0)),
        }
        out
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = vec![Value::from(name_of(obj))];
        let created = str_at(obj, &["metadata", "creationTimestamp"]);
        match self {
            TableKind::Custom(cols) => cells.extend(cols.iter().map(|c| column_cell(c, obj))),
            TableKind::Lease => {
                cells.push(
                    str_at(obj, &["spec", "holderIdentity"])
                        .unwrap_or("")
                        .into(),
                );
                cells.push(age_of(created).into());
            }
            TableKind::Crd => cells.push(created.unwrap_or("").into()),
        }
        cells
    }
}

/// A `meta.k8s.io` Table of `items` (`includeObject`: None, Metadata, Object).
fn table_json(
    api_version: &str,
    kind: &TableKind,
    metadata: Value,
    items: &[Arc<Value>],
    q: &Query,
) -> Result<Value, ApiError> {
    let include = q.get("includeObject").unwrap_or("Metadata");
    if !matches!(include, "None" | "Metadata" | "Object") {
        return Err(ApiError::bad_request(format!(
            "unrecognized includeObject value: \"{include}\""
        )));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let mut row = json!({"cells": kind.cells(obj)});
            match include {
                "Object" => row["object"] = (**obj).clone(),
                "Metadata" => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
                    })
                }
                _ => {}
            }
            row
        })
        .collect();
    Ok(json!({
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": metadata,
        "columnDefinitions": kind.columns(),
        "rows": rows,
    }))
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

fn encode_continue(k: &Key) -> String {
    format!("v1/{}/{}", k.0, k.1)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Result<Key, ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return Err(bad());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let rest = text.strip_prefix("v1/").ok_or_else(bad)?;
    let (ns, name) = rest.split_once('/').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

fn list_response(
    inner: &Arc<Inner>,
    c: &Call,
    r: Resource,
    filter: Filter,
    q: &Query,
) -> Result<Response, ApiError> {
    let limit = match q.int("limit")? {
        Some(l) if l < 0 => {
            return Err(ApiError::bad_request(
                "limit must be a non-negative integer",
            ));
        }
        Some(0) | None => None,
        Some(l) => Some(l as usize),
    };
    let after = match q.get("continue").filter(|s| !s.is_empty()) {
        Some(t) => {
            let k = decode_continue(t)?;
            if filter.namespace.as_ref().is_some_and(|ns| *ns != k.0) {
                return Err(ApiError::bad_request(format!(
                    "continue key is not valid: {t:?}"
                )));
            }
            Some(k)
        }
        None => None,
    };
    let (items, next, rv, table) = {
        let s = inner.store();
        let (items, next) = s.page(r, &filter, after.as_ref(), limit);
        let table = table_version(c.accept).and_then(|v| Some((v, table_kind(&s, r)?)));
        (items, next, s.rv, table)
    };
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(k) = next {
        metadata["continue"] = encode_continue(&k).into();
    }
    if let Some((version, kind)) = table {
        return Ok(json_response(
            200,
            &table_json(version, &kind, metadata, &items, q)?,
        ));
    }
    Ok(json_response(
        200,
        &ListBody {
            kind: format!("{}List", r.kind()),
            api_version: r.api_version(),
            metadata,
            items: items.iter().map(|v| Bare(v)).collect(),
        },
    ))
}

fn pod_log(inner: &Arc<Inner>, ns: &str, name: &str, q: &Query) -> Result<Response, ApiError> {
    let text = {
        let s = inner.store();
        let pod = s
            .get(Resource::Pods, ns, name)
            .ok_or_else(|| ApiError::not_found(Resource::Pods, name))?;
        let names_in = |key: &str| -> Vec<String> {
            pod.pointer(&format!("/spec/{key}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        };
        let regular = names_in("containers");
        let all: Vec<String> = regular
            .iter()
            .cloned()
            .chain(names_in("initContainers"))
            .chain(names_in("ephemeralContainers"))
            .collect();
        let container = match q.get("container").filter(|c| !c.is_empty()) {
            Some(c) if all.iter().any(|n| n == c) => c.to_string(),
            Some(c) => {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            None if regular.len() == 1 => regular[0].clone(),
            None => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    regular.join(" ")
                )));
            }
        };
        if q.flag("previous")? {
            let statuses = ["containerStatuses", "initContainerStatuses"]
                .iter()
                .filter_map(|k| {
                    pod.pointer(&format!("/status/{k}"))
                        .and_then(Value::as_array)
                })
                .flatten();
            let has_previous = statuses
                .filter(|cs| cs.get("name").and_then(Value::as_str) == Some(container.as_str()))
                .any(|cs| {
                    cs.get("restartCount").and_then(Value::as_i64).unwrap_or(0) > 0
                        || cs.pointer("/lastState/terminated").is_some()
                });
            if !has_previous {
                return Err(ApiError::bad_request(format!(
                    "previous terminated container \"{container}\" in pod \"{name}\" not found"
                )));
            }
        }
        s.logs
            .get(&(ns.to_string(), name.to_string()))
            .and_then(|m| m.get(&container))
            .cloned()
            .unwrap_or_default()
    };
    let mut out = text.as_bytes();
    if let Some(n) = q.int("tailLines")? {
        if n < 0 {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "PodLogOptions \"{name}\" is invalid: tailLines: Invalid value: {n}: must be greater than or equal to 0"
                ),
            ));
        }
        out = tail_lines(out, n as usize);
    }
    if let Some(b) = q.int("limitBytes")? {
        if b < 1 {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "PodLogOptions \"{name}\" is invalid: limitBytes: Invalid value: {b}: must be greater than 0"
                ),
            ));
        }
        // Like the kubelet: the first `limitBytes` bytes, even mid-character.
        out = &out[..out.len().min(b as usize)];
    }
    Ok(text_response(200, Bytes::copy_from_slice(out)))
}

/// The last `n` lines (a final newline does not start another line).
fn tail_lines(text: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &text[i + 1..];
            }
        }
    }
    text
}

// ---------------------------------------------------------------------- watch

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

fn watch_response(
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

// ------------------------------------------------------------------- FakeKube

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

    // -- faults

    /// Ends every open watch stream abruptly (the connection is cut).
    pub fn drop_watches(&self) {
        self.inner.mutate(|s| s.drop_gen += 1);
    }

    /// Forgets all watch history: any resume from a version before now gets
    /// `410 Expired` (open, caught-up watches carry on).
    pub fn compact(&self) {
        self.inner.mutate(Store::compact);
    }

    /// The next `times` requests with this method (`*` = any) and path prefix
    /// are answered with `status` (Status JSON; `Retry-After` if given).
    pub fn fail_next(
        &self,
        method: &str,
        path_prefix: &str,
        times: usize,
        status: u16,
        retry_after: Option<u64>,
    ) {
        lock(&self.inner.knobs).rules.push(FailRule {
            method: method.to_string(),
            prefix: path_prefix.to_string(),
            remaining: times,
            status,
            retry_after,
        });
    }

    /// Drops every failure rule still pending and ends an outage.
    pub fn clear_faults(&self) {
        let mut k = lock(&self.inner.knobs);
        k.rules.clear();
        k.outage = None;
    }

    /// The apiserver is down for `d`: open watches are cut and every request
    /// (discovery, `/version` and health included) is answered with `status`
    /// (e.g. 500 or 503) until `d` has passed or [`FakeKube::end_outage`].
    pub fn fail_all_for(&self, d: Duration, status: u16) {
        lock(&self.inner.knobs).outage = Some((Instant::now() + d, status));
        self.drop_watches();
    }

    pub fn end_outage(&self) {
        lock(&self.inner.knobs).outage = None;
    }

    /// Whether an outage is in progress.
    pub fn in_outage(&self) -> bool {
        lock(&self.inner.knobs)
            .outage
            .is_some_and(|(until, _)| Instant::now() < until)
    }

    /// Delay added before every response.
    pub fn set_latency(&self, d: Duration) {
        lock(&self.inner.knobs).latency = d;
    }

    /// How long a watch that asked for bookmarks stays idle before one.
    pub fn set_bookmark_interval(&self, d: Duration) {
        lock(&self.inner.knobs).bookmark_interval = d;
        self.inner.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// How many watch events are retained (default 10 000).
    pub fn set_history_limit(&self, n: usize) {
        self.inner.mutate(|s| {
            s.history_limit = n;
            s.trim();
        });
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

// ---------------------------------------------------------------- controllers

/// Builds a batch/v1 CronJob.
#[derive(Clone, Debug)]
pub struct CronJobFixture {
    name: String,
    namespace: String,
    schedule: String,
    time_zone: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    extra_containers: Vec<(String, String)>,
    backoff_limit: i32,
    concurrency_policy: String,
    suspend: bool,
    annotations: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

impl CronJobFixture {
    pub fn new(name: &str) -> Self {
        CronJobFixture {
            name: name.to_string(),
            namespace: "default".to_string(),
            schedule: "0 3 * * *".to_string(),
            time_zone: None,
            args: vec!["run.sh".to_string()],
            env: Vec::new(),
            extra_containers: Vec::new(),
            backoff_limit: 2,
            concurrency_policy: "Allow".to_string(),
            suspend: false,
            annotations: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }

    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = ns.to_string();
        self
    }

    pub fn schedule(mut self, s: &str) -> Self {
        self.schedule = s.to_string();
        self
    }

    pub fn time_zone(mut self, tz: &str) -> Self {
        self.time_zone = Some(tz.to_string());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// An environment variable of the main container.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// Adds another container after `main`.
    pub fn container(mut self, name: &str, image: &str) -> Self {
        self.extra_containers
            .push((name.to_string(), image.to_string()));
        self
    }

    pub fn backoff_limit(mut self, n: i32) -> Self {
        self.backoff_limit = n;
        self
    }

    pub fn concurrency_policy(mut self, p: &str) -> Self {
        self.concurrency_policy = p.to_string();
        self
    }

    pub fn suspended(mut self) -> Self {
        self.suspend = true;
        self
    }

    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.to_string(), v.to_string());
        self
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.to_string(), v.to_string());
        self
    }

    pub fn owner(self, who: &str) -> Self {
        self.annotation("rerun-bot.io/owner", who)
    }

    pub fn channel(self, c: &str) -> Self {
        self.annotation("rerun-bot.io/channel", c)
    }

    pub fn alerts_off(self) -> Self {
        self.annotation("rerun-bot.io/alerts", "off")
    }

    pub fn terminate_on_hold(self) -> Self {
        self.annotation("rerun-bot.io/on-hold", "terminate")
    }

    pub fn build(self) -> Value {
        let mut main = json!({
            "name": "main",
            "image": "busybox:1.36",
            "command": ["/bin/sh", "-c"],
            "args": self.args,
        });
        if !self.env.is_empty() {
            main["env"] = self
                .env
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
        }
        let mut containers = vec![main];
        containers.extend(
            self.extra_containers
                .iter()
                .map(|(n, i)| json!({"name": n, "image": i})),
        );
        let mut spec = json!({
            "schedule": self.schedule,
            "concurrencyPolicy": self.concurrency_policy,
            "suspend": self.suspend,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {
                "metadata": {},
                "spec": {
                    "backoffLimit": self.backoff_limit,
                    "template": {
                        "metadata": {},
                        "spec": {"restartPolicy": "Never", "containers": containers},
                    },
                },
            },
        });
        if let Some(tz) = self.time_zone {
            spec["timeZone"] = tz.into();
        }
        json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": self.labels,
                "annotations": self.annotations,
            },
            "spec": spec,
        })
    }
}

/// How [`FakeKube::fail_job`] fails a Job.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Condition reason: `BackoffLimitExceeded`, `DeadlineExceeded`, …
    pub reason: String,
    pub message: String,
    /// Exit code of the failing (first) container.
    pub exit_code: i32,
    /// Container termination reason: `Error`, `OOMKilled`, …
    pub termination_reason: String,
    pub log: String,
    pub failed_pods: i32,
}

impl Failure {
    /// Three failed attempts (backoffLimit 2), exit 1.
    pub fn backoff_limit() -> Self {
        Failure {
            reason: "BackoffLimitExceeded".into(),
            message: "Job has reached the specified backoff limit".into(),
            exit_code: 1,
            termination_reason: "Error".into(),
            log: "starting run.sh\nconnecting to db\nERROR: job failed\n".into(),
            failed_pods: 3,
        }
    }

    /// `activeDeadlineSeconds` ran out: the running pod is killed (137).
    pub fn deadline_exceeded() -> Self {
        Failure {
            reason: "DeadlineExceeded".into(),
            message: "Job was active longer than specified deadline".into(),
            exit_code: 137,
            termination_reason: "Error".into(),
            log: "starting run.sh\nprocessing batch 1 of 40\nprocessing batch 2 of 40\n".into(),
            failed_pods: 1,
        }
    }

    /// Three attempts killed by the OOM killer (137, `OOMKilled`).
    pub fn oom_killed() -> Self {
        Failure {
            reason: "BackoffLimitExceeded".into(),
            message: "Job has reached the specified backoff limit".into(),
            exit_code: 137,
            termination_reason: "OOMKilled".into(),
            log: "starting run.sh\nloading 2.1 GB into memory\n".into(),
            failed_pods: 3,
        }
    }

    pub fn log(mut self, s: impl Into<String>) -> Self {
        self.log = s.into();
        self
    }
}

fn container_list(pod_or_template_spec: &Value) -> Vec<(String, String)> {
    pod_or_template_spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                c.get("image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

fn push_condition(status: &mut Value, cond: Value) {
    let conds = obj_mut(status)
        .entry("conditions")
        .or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    if let Value::Array(a) = conds {
        a.push(cond);
    }
}

impl FakeKube {
    /// Creates (or updates, keeping status) a CronJob.
    pub fn apply_cronjob(&self, cj: Value) -> Value {
        let ns = str_at(&cj, &["metadata", "namespace"])
            .unwrap_or("default")
            .to_string();
        let name = name_of(&cj).to_string();
        if self.get(Resource::CronJobs, &ns, &name).is_some() {
            self.update(Resource::CronJobs, &ns, &name, |old| {
                let status = old.get("status").cloned();
                *old = cj;
                set_or_remove(old, "status", status);
            })
        } else {
            self.create(Resource::CronJobs, cj)
        }
    }

    /// The CronJob controller's work for one scheduled time: the Job
    /// `<cronjob>-<unix minutes>` (owned by the CronJob), the CronJob's
    /// status, then the Job controller starting one running pod.
    pub fn spawn_job(&self, ns: &str, cronjob: &str, scheduled: DateTime<Utc>) -> Value {
        let cj = self
            .get(Resource::CronJobs, ns, cronjob)
            .unwrap_or_else(|| panic!("spawn_job: no CronJob {ns}/{cronjob}"));
        let name = format!("{cronjob}-{}", scheduled.timestamp().div_euclid(60));
        let template = cj
            .pointer("/spec/jobTemplate")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut annotations = template
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        annotations.insert(
            "batch.kubernetes.io/cronjob-scheduled-timestamp".into(),
            rfc3339(scheduled).into(),
        );
        let mut metadata = json!({
            "name": name,
            "namespace": ns,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": cronjob,
                "uid": uid_of(&cj),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        });
        if let Some(labels) = template
            .pointer("/metadata/labels")
            .filter(|l| l.is_object())
        {
            metadata["labels"] = labels.clone();
        }
        let job = self.create(
            Resource::Jobs,
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": metadata,
                "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
                "status": {},
            }),
        );
        let job_ref = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": name,
            "namespace": ns,
            "uid": uid_of(&job),
            "resourceVersion": rv_of(&job),
        });
        self.update(Resource::CronJobs, ns, cronjob, |c| {
            let status = obj_at(c, "status");
            let active = status.entry("active").or_insert_with(|| json!([]));
            if let Value::Array(a) = active {
                a.push(job_ref);
            } else {
                *active = json!([job_ref]);
            }
            status.insert("lastScheduleTime".into(), rfc3339(scheduled).into());
        });
        self.start_job(&job)
    }

    /// A Job with no owner (as `kubectl create job` makes), plus its running pod.
    pub fn spawn_bare_job(&self, ns: &str, name: &str) -> Value {
        let job = self.create(
            Resource::Jobs,
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "backoffLimit": 2,
                    "template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": "main",
                            "image": "busybox:1.36",
                            "command": ["/bin/sh", "-c"],
                            "args": ["run.sh"],
                        }],
                    }},
                },
                "status": {},
            }),
        );
        self.start_job(&job)
    }

    /// Job controller: one running pod, then `startTime` and `active: 1`.
    fn start_job(&self, job: &Value) -> Value {
        self.start_pod(job);
        let now = now_rfc3339();
        self.update(Resource::Jobs, ns_of(job), name_of(job), |j| {
            let status = obj_at(j, "status");
            status.entry("startTime").or_insert(now.into());
            status.insert("active".into(), 1.into());
            status.insert("ready".into(), 1.into());
            status.insert("terminating".into(), 0.into());
            status.insert("uncountedTerminatedPods".into(), json!({}));
        })
    }

    /// A running pod of `job`, named `<job>-<5 chars>` like the controller's.
    fn start_pod(&self, job: &Value) -> Value {
        let (ns, job_name, job_uid) = (ns_of(job), name_of(job), uid_of(job));
        let template = job
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", job_uid),
            ("batch.kubernetes.io/job-name", job_name),
            ("controller-uid", job_uid),
            ("job-name", job_name),
        ] {
            labels.entry(k).or_insert(v.into());
        }
        let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        obj_mut(&mut spec).insert("nodeName".into(), "fake-node".into());
        let now = now_rfc3339();
        let statuses: Vec<Value> = container_list(&spec)
            .into_iter()
            .map(|(name, image)| {
                json!({
                    "name": name, "image": image, "imageID": "", "ready": true,
                    "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": now}},
                })
            })
            .collect();
        self.create(
            Resource::Pods,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": format!("{job_name}-"),
                    "namespace": ns,
                    "labels": labels,
                    "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or_else(|| json!({})),
                    "ownerReferences": [{
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": job_name,
                        "uid": job_uid,
                        "controller": true,
                        "blockOwnerDeletion": true,
                    }],
                },
                "spec": spec,
                "status": {
                    "phase": "Running",
                    "startTime": now,
                    "hostIP": "10.0.0.10",
                    "podIP": "10.244.0.10",
                    "qosClass": "BestEffort",
                    "conditions": [
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                        {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    ],
                    "containerStatuses": statuses,
                },
            }),
        )
    }

    /// The kubelet ends a pod: the first container exits with `exit`, the
    /// others with 0 (`Completed`).
    fn finish_pod(&self, pod: &Value, phase: &str, exit: (i32, &str), log: Option<&str>) -> Value {
        let (ns, name) = (ns_of(pod).to_string(), name_of(pod).to_string());
        let containers = container_list(pod.get("spec").unwrap_or(&Value::Null));
        if let (Some(log), Some((first, _))) = (log, containers.first()) {
            self.set_log(&ns, &name, first, log);
        }
        let now = now_rfc3339();
        let started = pod
            .pointer("/status/startTime")
            .and_then(Value::as_str)
            .unwrap_or(&now)
            .to_string();
        let statuses: Vec<Value> = containers
            .iter()
            .enumerate()
            .map(|(i, (cname, image))| {
                let (code, reason) = if i == 0 { exit } else { (0, "Completed") };
                json!({
                    "name": cname, "image": image, "imageID": "", "ready": false,
                    "restartCount": 0, "started": false,
                    "state": {"terminated": {
                        "exitCode": code, "reason": reason,
                        "startedAt": started, "finishedAt": now,
                        "containerID": format!("containerd://{name}-{cname}"),
                    }},
                })
            })
            .collect();
        let ready_reason = if phase == "Succeeded" {
            "PodCompleted"
        } else {
            "PodFailed"
        };
        self.update(Resource::Pods, &ns, &name, |p| {
            let status = obj_at(p, "status");
            status.insert("phase".into(), phase.into());
            status.insert("containerStatuses".into(), statuses.into());
            status.insert(
                "conditions".into(),
                json!([
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": started},
                    {"type": "ContainersReady", "status": "False", "reason": ready_reason, "lastTransitionTime": now},
                    {"type": "Ready", "status": "False", "reason": ready_reason, "lastTransitionTime": now},
                ]),
            );
        })
    }

    fn active_pods(&self, job_uid: &str) -> Vec<Value> {
        let mut pods: Vec<Value> = self
            .owned_by(Resource::Pods, job_uid)
            .into_iter()
            .filter(|p| {
                !matches!(
                    str_at(p, &["status", "phase"]),
                    Some("Failed") | Some("Succeeded")
                )
            })
            .collect();
        pods.sort_by_key(|p| rv_of(p).parse::<u64>().unwrap_or(0));
        pods
    }

    /// The CronJob controller forgets a finished Job.
    fn cronjob_forget(&self, job: &Value, succeeded: bool) {
        let owner = job
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|o| o.get("kind").and_then(Value::as_str) == Some("CronJob"))
            .and_then(|o| o.get("name").and_then(Value::as_str))
            .map(str::to_string);
        let Some(cronjob) = owner else { return };
        let ns = ns_of(job);
        if self.get(Resource::CronJobs, ns, &cronjob).is_none() {
            return;
        }
        let uid = uid_of(job).to_string();
        let now = now_rfc3339();
        self.update(Resource::CronJobs, ns, &cronjob, |c| {
            let status = obj_at(c, "status");
            if let Some(Value::Array(a)) = status.get_mut("active") {
                a.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                if a.is_empty() {
                    status.remove("active");
                }
            }
            if succeeded {
                status.insert("lastSuccessfulTime".into(), now.into());
            }
        });
    }

    /// The Job controller failing a Job (Kubernetes >= 1.31): the pods fail
    /// (`failed_pods` of them, each log set), then a MODIFIED with the counts
    /// and `FailureTarget`, then a MODIFIED adding `Failed`; the owning
    /// CronJob drops it from `status.active`. Returns the final Job.
    pub fn fail_job(&self, ns: &str, job: &str, f: Failure) -> Value {
        let j = self
            .get(Resource::Jobs, ns, job)
            .unwrap_or_else(|| panic!("fail_job: no Job {ns}/{job}"));
        let exit = (f.exit_code, f.termination_reason.as_str());
        let mut running = self.active_pods(uid_of(&j));
        if running.is_empty() {
            running.push(self.start_pod(&j));
        }
        let mut failed = 0;
        for pod in &running {
            self.finish_pod(pod, "Failed", exit, Some(&f.log));
            failed += 1;
        }
        while failed < f.failed_pods {
            // A replacement pod, failing the same way.
            let pod = self.start_pod(&j);
            self.finish_pod(&pod, "Failed", exit, Some(&f.log));
            failed += 1;
        }
        let condition = |kind: &str| {
            let now = now_rfc3339();
            json!({
                "type": kind, "status": "True", "reason": f.reason, "message": f.message,
                "lastProbeTime": now, "lastTransitionTime": now,
            })
        };
        let target = condition("FailureTarget");
        self.update(Resource::Jobs, ns, job, |j| {
            let status = obj_at(j, "status");
            let before = status.get("failed").and_then(Value::as_i64).unwrap_or(0);
            status.insert("failed".into(), (before + i64::from(failed)).into());
            status.insert("active".into(), 0.into());
            status.insert("ready".into(), 0.into());
            status.insert("terminating".into(), 0.into());
            status.insert("uncountedTerminatedPods".into(), json!({}));
            push_condition(&mut j["status"], target);
        });
        let done = condition("Failed");
        let job_now = self.update(Resource::Jobs, ns, job, |j| {
            push_condition(&mut j["status"], done)
        });
        self.cronjob_forget(&job_now, false);
        job_now
    }

    /// The Job controller completing a Job: pods succeed (exit 0), then
    /// `SuccessCriteriaMet`, then `Complete` with `completionTime`.
    pub fn complete_job(&self, ns: &str, job: &str) -> Value {
        let j = self
            .get(Resource::Jobs, ns, job)
            .unwrap_or_else(|| panic!("complete_job: no Job {ns}/{job}"));
        let mut running = self.active_pods(uid_of(&j));
        if running.is_empty() {
            running.push(self.start_pod(&j));
        }
        for pod in &running {
            self.finish_pod(pod, "Succeeded", (0, "Completed"), None);
        }
        let condition = |kind: &str| {
            let now = now_rfc3339();
            json!({
                "type": kind, "status": "True", "reason": "CompletionsReached",
                "message": "Reached expected number of succeeded pods",
                "lastProbeTime": now, "lastTransitionTime": now,
            })
        };
        let met = condition("SuccessCriteriaMet");
        self.update(Resource::Jobs, ns, job, |j| {
            let status = obj_at(j, "status");
            status.insert("succeeded".into(), 1.into());
            status.insert("active".into(), 0.into());
            status.insert("ready".into(), 0.into());
            status.insert("terminating".into(), 0.into());
            status.insert("uncountedTerminatedPods".into(), json!({}));
            push_condition(&mut j["status"], met);
        });
        let complete = condition("Complete");
        let job_now = self.update(Resource::Jobs, ns, job, |j| {
            obj_at(j, "status").insert("completionTime".into(), now_rfc3339().into());
            push_condition(&mut j["status"], complete);
        });
        self.cronjob_forget(&job_now, true);
        job_now
    }
}

// ------------------------------------------------------- the Job controller

impl FakeKube {
    /// The Job controller picking up a Job that a client created (a rerun,
    /// `kubectl create job`): its first pod starts running and the Job
    /// becomes active. A Job that already has pods, or has finished, is left
    /// as it is. `None` if there is no such Job.
    pub fn run_job(&self, ns: &str, job: &str) -> Option<Value> {
        let j = self.get(Resource::Jobs, ns, job)?;
        let finished = j
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                matches!(c["type"].as_str(), Some("Complete" | "Failed")) && c["status"] == "True"
            });
        if finished || !self.owned_by(Resource::Pods, uid_of(&j)).is_empty() {
            return Some(j);
        }
        Some(self.start_job(&j))
    }
}
