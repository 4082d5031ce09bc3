//! Name, label, annotation and shape checks a real apiserver does; Lease
//! decoding.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::error::ApiError;
use super::json::{json_type_name, name_of};
use super::resource::Resource;

pub(super) fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(super) fn dns_subdomain(s: &str) -> bool {
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

pub(super) fn valid_label_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => dns_subdomain(prefix) && qualified_name_part(name),
        None => qualified_name_part(k),
    }
}

pub(super) fn valid_label_value(v: &str) -> bool {
    v.is_empty() || qualified_name_part(v)
}

pub(super) fn validate_name(r: Resource, name: &str) -> Result<(), ApiError> {
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
pub(super) fn check_shape(r: Resource, obj: &Value) -> Result<(), ApiError> {
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

pub(super) fn validate_meta(r: Resource, name: &str, obj: &Value) -> Result<(), ApiError> {
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
pub(super) fn check_lease(obj: &mut Value) -> Result<(), ApiError> {
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
