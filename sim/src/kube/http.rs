//! The HTTP side: request recording and faults, routing, and the handlers
//! of collections and objects.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::crd::FieldValidation;
use super::delete::DeleteOpts;
use super::discovery::{Discovery, api_group, version_json};
use super::error::{ApiError, json_response, text_response};
use super::json::{Bare, ListBody, rv_of};
use super::list::list_response;
use super::logs::pod_log;
use super::query::{Filter, Query};
use super::resource::Resource;
use super::store::{Key, Mode, Origin, Store};
use super::table::{table_json, table_kind, table_version};
use super::watch::watch_response;
use super::{Inner, RecordedRequest, lock};

const MAX_BODY_BYTES: usize = 16 << 20;

pub(super) struct Call<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    content_type: Option<&'a str>,
    pub(super) accept: Option<&'a str>,
    body: &'a [u8],
}

pub(super) async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
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
