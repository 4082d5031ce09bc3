//! Discovery (`/api`, `/apis`, …), OpenAPI v3 documents and `/version`.

use serde_json::{Map, Value, json};

use super::crd::Served;
use super::json::obj_mut;
use super::resource::Resource;
use super::store::Store;

/// What discovery shows: the built-in kinds and the served custom ones.
pub(super) struct Discovery {
    custom: Vec<(Resource, Served)>,
}

impl Discovery {
    pub(super) fn of(s: &Store) -> Discovery {
        Discovery {
            custom: s.served.iter().map(|(r, v)| (*r, v.clone())).collect(),
        }
    }

    /// Groups (built-in first, then custom ones by name) with their versions.
    pub(super) fn groups(&self) -> Vec<(String, Vec<String>)> {
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

    pub(super) fn resource_list(&self, group: &str, version: &str) -> Value {
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
    pub(super) fn openapi_root(&self) -> Value {
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
    pub(super) fn openapi_gv(&self, group: &str, version: &str) -> Value {
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

pub(super) fn api_group(name: &str, versions: &[String]) -> Value {
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

pub(super) fn version_json() -> Value {
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
