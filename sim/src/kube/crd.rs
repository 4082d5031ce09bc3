//! CustomResourceDefinitions: what they make served, their validation and
//! status, and structural-schema handling of custom resources.

use serde_json::{Value, json};

use super::error::ApiError;
use super::json::{json_type_name, name_of, now_rfc3339, obj_mut, str_at};
use super::query::Query;
use super::resource::{CustomKind, Resource};
use super::table::parse_simple_path;
use super::validate::{dns_label, dns_subdomain};

/// How a request wants fields unknown to the schema handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub(super) fn from_query(q: &Query) -> Result<FieldValidation, ApiError> {
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
pub(super) struct PrinterColumn {
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) format: String,
    pub(super) description: String,
    pub(super) priority: i64,
    pub(super) json_path: String,
}

/// A resource a CRD makes served (its storage version).
#[derive(Clone, Debug)]
pub(super) struct Served {
    pub(super) crd: String,
    pub(super) group: String,
    pub(super) version: String,
    pub(super) plural: String,
    pub(super) singular: String,
    pub(super) kind: String,
    pub(super) short_names: Vec<String>,
    pub(super) categories: Vec<String>,
    pub(super) status: bool,
    pub(super) columns: Vec<PrinterColumn>,
    pub(super) schema: Option<Value>,
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
    pub(super) fn from_crd(crd: &Value) -> Option<(Resource, Served)> {
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
pub(super) fn validate_crd(obj: &Value) -> Result<(), ApiError> {
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
pub(super) fn crd_status(obj: &Value, old_status: Option<&Value>) -> Value {
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

/// Structural-schema handling of a custom resource, as the apiserver does
/// it: unknown fields pruned (reported in `pruned`), `null`s of non-nullable
/// fields dropped, defaults applied, then types, `required` and `enum` checked.
pub(super) fn apply_schema(
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
