//! Lists: `limit`/`continue` paging, plain lists and Tables.

use std::sync::Arc;

use axum::response::Response;
use serde_json::json;

use super::Inner;
use super::error::{ApiError, json_response};
use super::http::Call;
use super::json::{Bare, ListBody};
use super::query::{Filter, Query};
use super::resource::Resource;
use super::store::Key;
use super::table::{table_json, table_kind, table_version};

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

pub(super) fn list_response(
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
