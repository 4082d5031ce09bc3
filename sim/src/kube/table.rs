//! `meta.k8s.io` Tables (as kubectl asks for them): printer columns, simple
//! JSON paths, human-readable ages.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::crd::PrinterColumn;
use super::error::ApiError;
use super::json::{name_of, str_at};
use super::query::Query;
use super::resource::Resource;
use super::store::Store;

/// A step of a simple JSONPath (`.a.b[0].c`).
#[derive(Debug, PartialEq)]
pub(super) enum PathStep {
    Key(String),
    Index(usize),
}

/// Parses the simple JSON paths printer columns may use; `None` if not one.
pub(super) fn parse_simple_path(p: &str) -> Option<Vec<PathStep>> {
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

/// The Table version `Accept` asks for before any plain JSON, if any.
pub(super) fn table_version(accept: Option<&str>) -> Option<&'static str> {
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
pub(super) enum TableKind {
    Custom(Vec<PrinterColumn>),
    Lease,
    Crd,
}

pub(super) fn table_kind(s: &Store, r: Resource) -> Option<TableKind> {
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
pub(super) fn table_json(
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
