//! `pods/log`: container choice, `previous`, `tailLines`, `limitBytes`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::response::Response;
use serde_json::Value;

use super::Inner;
use super::error::{ApiError, text_response};
use super::query::Query;
use super::resource::Resource;

pub(super) fn pod_log(
    inner: &Arc<Inner>,
    ns: &str,
    name: &str,
    q: &Query,
) -> Result<Response, ApiError> {
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
