//! Changes a person asks for on a rerun (arguments and environment of one
//! container), and the rerun Job built from a CronJob's template with them.
//!
//! [`build_job`] does what `kubectl create job --from=cronjob/X` does (kubectl's
//! `generateJobFromCronJob`): the template's spec verbatim, its labels and
//! annotations, `cronjob.kubernetes.io/instantiate: manual` and a controller
//! ownerReference to the CronJob; plus rerun-bot's label and annotations.
//! [`diff`] says what changes, with secret-looking values masked.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, EnvVarSource};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::{Deserialize, Serialize};

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "rerun-bot";
pub const INSTANTIATE_ANNOTATION: &str = "cronjob.kubernetes.io/instantiate";
pub const REQUEST_ID_ANNOTATION: &str = "rerun-bot.io/request-id";
pub const REQUESTED_BY_ANNOTATION: &str = "rerun-bot.io/requested-by";
pub const APPROVED_BY_ANNOTATION: &str = "rerun-bot.io/approved-by";
pub const REASON_ANNOTATION: &str = "rerun-bot.io/reason";
pub const TICKET_ANNOTATION: &str = "rerun-bot.io/ticket";
pub const SOURCE_JOB_ANNOTATION: &str = "rerun-bot.io/source-job";
pub const REASON_ANNOTATION_MAX: usize = 1024;
pub const MASK: &str = "••••••";

/// Append to the container's current args (default) or replace them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgsMode {
    #[default]
    Append,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Overrides {
    /// The container to change; `None`: the first one.
    pub container: Option<String>,
    pub args: Vec<String>,
    pub args_mode: ArgsMode,
    /// `KEY=VALUE` pairs, in the order given; a later one wins.
    pub env: Vec<(String, String)>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.container.is_none()
            && self.args.is_empty()
            && self.args_mode == ArgsMode::Append
            && self.env.is_empty()
    }
}

/// Kubernetes' rule for environment variable names (`[-._a-zA-Z][-._a-zA-Z0-9]*`).
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || "-._".contains(c))
        && chars.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// Parses `KEY=VALUE` (the value may be empty or contain `=`).
pub fn parse_env(pair: &str) -> Result<(String, String), String> {
    let Some((key, value)) = pair.split_once('=') else {
        return Err(format!("`{pair}` is not KEY=VALUE"));
    };
    if !valid_env_name(key) {
        return Err(format!(
            "`{key}` is not a valid environment variable name (letters, digits, `-`, `.`, `_`; not starting with a digit)"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// Who asked, who approved and why: written onto the rerun Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RerunMeta<'a> {
    pub request_id: &'a str,
    pub requested_by: &'a str,
    pub approved_by: &'a str,
    pub reason: &'a str,
    pub ticket: Option<&'a str>,
    pub source_job: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("the CronJob has no job template")]
    NoTemplate,
    #[error("the job template has no containers")]
    NoContainers,
    #[error("container `{name}` is not in the job template (containers: {})", available.join(", "))]
    UnknownContainer {
        name: String,
        available: Vec<String>,
    },
}

/// `<cronjob>-rerun-<first 8 chars of the id>`, a valid DNS-1123 label of at
/// most 63 chars: a long CronJob name is cut, the suffix is kept.
pub fn job_name(cronjob: &str, request_id: &str) -> String {
    let id: String = request_id.chars().take(8).collect();
    let suffix = format!("-rerun-{id}");
    let room = 63usize.saturating_sub(suffix.len());
    let mut base: String = cronjob.chars().take(room).collect();
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    format!("{base}{suffix}")
}

fn pod_containers(template: &JobSpec) -> &[Container] {
    template
        .template
        .spec
        .as_ref()
        .map(|p| p.containers.as_slice())
        .unwrap_or_default()
}

/// The template's containers, in order (not init containers).
pub fn containers(template: &JobSpec) -> Vec<String> {
    pod_containers(template)
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

/// Index of the container the overrides are for (the first by default).
fn chosen(template: &JobSpec, overrides: &Overrides) -> Result<usize, OverrideError> {
    let all = pod_containers(template);
    if all.is_empty() {
        return Err(OverrideError::NoContainers);
    }
    match &overrides.container {
        None => Ok(0),
        Some(name) => all.iter().position(|c| &c.name == name).ok_or_else(|| {
            OverrideError::UnknownContainer {
                name: name.clone(),
                available: containers(template),
            }
        }),
    }
}

/// The env overrides, one per key (the last value wins), in first-seen order.
fn env_pairs(overrides: &Overrides) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in &overrides.env {
        match out.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out
}

fn args_after(container: &Container, overrides: &Overrides) -> Option<Vec<String>> {
    match overrides.args_mode {
        ArgsMode::Append if overrides.args.is_empty() => None,
        ArgsMode::Append => {
            let mut args = container.args.clone().unwrap_or_default();
            args.extend(overrides.args.iter().cloned());
            Some(args)
        }
        ArgsMode::Replace => Some(overrides.args.clone()),
    }
}

/// The JobSpec with the overrides applied to one container; everything else
/// is copied exactly.
pub fn apply(template: &JobSpec, overrides: &Overrides) -> Result<JobSpec, OverrideError> {
    let index = chosen(template, overrides)?;
    let mut spec = template.clone();
    let pod = spec
        .template
        .spec
        .as_mut()
        .ok_or(OverrideError::NoContainers)?;
    let container = &mut pod.containers[index];
    if let Some(args) = args_after(container, overrides) {
        container.args = Some(args);
    }
    let pairs = env_pairs(overrides);
    if !pairs.is_empty() {
        let env = container.env.get_or_insert_with(Vec::new);
        for (name, value) in pairs {
            let var = EnvVar {
                name: name.clone(),
                value: Some(value),
                value_from: None,
            };
            match env.iter_mut().find(|e| e.name == name) {
                Some(slot) => *slot = var,
                None => env.push(var),
            }
        }
    }
    Ok(spec)
}

/// The rerun Job, like `kubectl create job --from=cronjob/X`, plus rerun-bot's
/// label and annotations.
pub fn build_job(
    cronjob: &CronJob,
    overrides: &Overrides,
    meta: &RerunMeta<'_>,
) -> Result<Job, OverrideError> {
    let template = cronjob
        .spec
        .as_ref()
        .map(|s| &s.job_template)
        .ok_or(OverrideError::NoTemplate)?;
    let spec = apply(
        template.spec.as_ref().ok_or(OverrideError::NoTemplate)?,
        overrides,
    )?;
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut labels = template_meta.labels.unwrap_or_default();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    let mut annotations: BTreeMap<String, String> = template_meta.annotations.unwrap_or_default();
    let mut put = |k: &str, v: &str| {
        annotations.insert(k.to_string(), v.to_string());
    };
    put(INSTANTIATE_ANNOTATION, "manual");
    put(REQUEST_ID_ANNOTATION, meta.request_id);
    put(REQUESTED_BY_ANNOTATION, meta.requested_by);
    put(APPROVED_BY_ANNOTATION, meta.approved_by);
    let reason: String = meta.reason.chars().take(REASON_ANNOTATION_MAX).collect();
    put(REASON_ANNOTATION, &reason);
    if let Some(ticket) = meta.ticket.filter(|t| !t.is_empty()) {
        put(TICKET_ANNOTATION, ticket);
    }
    if let Some(job) = meta.source_job {
        put(SOURCE_JOB_ANNOTATION, job);
    }
    let name = cronjob.metadata.name.clone().unwrap_or_default();
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(&name, meta.request_id)),
            namespace: cronjob.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name,
                uid: cronjob.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// Whether an env name looks like it holds a secret (case-insensitive): it
/// contains PASSWORD, PASSWD, SECRET, TOKEN, CREDENTIAL, PRIVATE, APIKEY, AUTH,
/// CERT, COOKIE, SESSION or SIGNATURE; or one of its `_`/`-`/`.`-separated
/// words is PASS, PWD, KEY or DSN (so `DB_PASS` and `API_KEY` are, `KEYSPACE`
/// and `PASSENGER_COUNT` are not).
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    const PARTS: &[&str] = &[
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "CREDENTIAL",
        "PRIVATE",
        "APIKEY",
        "AUTH",
        "CERT",
        "COOKIE",
        "SESSION",
        "SIGNATURE",
    ];
    const WORDS: &[&str] = &["PASS", "PWD", "KEY", "DSN"];
    PARTS.iter().any(|p| upper.contains(p))
        || upper.split(['_', '-', '.']).any(|w| WORDS.contains(&w))
}

/// What a rerun changes against the template (secret-looking values masked).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Diff {
    pub container: String,
    /// `(before, after)` when the args change.
    pub args: Option<(Vec<String>, Vec<String>)>,
    pub env: Vec<EnvChange>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.args.is_none() && self.env.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvChange {
    pub name: String,
    /// `None`: a new variable. A `valueFrom` is described, never resolved.
    pub before: Option<String>,
    pub after: String,
}

fn describe_source(source: &EnvVarSource) -> String {
    if let Some(s) = &source.secret_key_ref {
        format!("(from secretKeyRef {}/{})", s.name, s.key)
    } else if let Some(c) = &source.config_map_key_ref {
        format!("(from configMapKeyRef {}/{})", c.name, c.key)
    } else if let Some(f) = &source.field_ref {
        format!("(from fieldRef {})", f.field_path)
    } else if let Some(r) = &source.resource_field_ref {
        format!("(from resourceFieldRef {})", r.resource)
    } else {
        "(from valueFrom)".into()
    }
}

/// The diff of `overrides` against `template`.
pub fn diff(template: &JobSpec, overrides: &Overrides) -> Result<Diff, OverrideError> {
    let index = chosen(template, overrides)?;
    let container = &pod_containers(template)[index];
    let mask = |name: &str, value: &str| {
        if looks_secret(name) {
            MASK.to_string()
        } else {
            value.to_string()
        }
    };
    let env = env_pairs(overrides)
        .into_iter()
        .map(|(name, after)| {
            let before = container
                .env
                .iter()
                .flatten()
                .find(|e| e.name == name)
                .map(|e| match (&e.value_from, &e.value) {
                    (Some(source), _) => describe_source(source),
                    (None, value) => mask(&name, value.as_deref().unwrap_or_default()),
                });
            EnvChange {
                after: mask(&name, &after),
                before,
                name,
            }
        })
        .collect();
    Ok(Diff {
        container: container.name.clone(),
        args: args_after(container, overrides)
            .map(|after| (container.args.clone().unwrap_or_default(), after)),
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn cronjob() -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": "billing-sync", "namespace": "billing", "uid": "cj-uid",
                         "annotations": {"rerun-bot.io/owner": "U1"}},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {
                "metadata": {"labels": {"app": "billing"}, "annotations": {"note": "keep"}},
                "spec": {"backoffLimit": 2, "activeDeadlineSeconds": 600, "template": {
                    "metadata": {"labels": {"app": "billing"}},
                    "spec": {
                        "restartPolicy": "Never", "serviceAccountName": "billing",
                        "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
                        "initContainers": [{"name": "init", "image": "busybox", "args": ["prep"]}],
                        "containers": [
                            {"name": "main", "image": "billing:1", "args": ["sync", "--all"],
                             "resources": {"limits": {"memory": "1Gi"}},
                             "env": [{"name": "DB_HOST", "value": "db"},
                                     {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]},
                            {"name": "sidecar", "image": "envoy", "args": ["--proxy"]}
                        ]}}}}}
        }))
        .unwrap()
    }

    fn template() -> JobSpec {
        cronjob().spec.unwrap().job_template.spec.unwrap()
    }

    fn meta() -> RerunMeta<'static> {
        RerunMeta {
            request_id: "abc12345xyz",
            requested_by: "U_ALICE",
            approved_by: "U_BOB",
            reason: "db down",
            ticket: Some("INC-1"),
            source_job: Some("billing-sync-29000000"),
        }
    }

    fn with(
        args: &[&str],
        mode: ArgsMode,
        env: &[(&str, &str)],
        container: Option<&str>,
    ) -> Overrides {
        Overrides {
            container: container.map(str::to_string),
            args: args.iter().map(|s| s.to_string()).collect(),
            args_mode: mode,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The spec as JSON without the chosen container's args and env.
    fn without_changes(spec: &JobSpec, index: usize) -> Value {
        let mut v = serde_json::to_value(spec).unwrap();
        let c = v["template"]["spec"]["containers"][index]
            .as_object_mut()
            .unwrap();
        c.remove("args");
        c.remove("env");
        v
    }

    #[test]
    fn job_is_kubectl_create_job_from_plus_rerun_metadata() {
        let job = build_job(&cronjob(), &Overrides::default(), &meta()).unwrap();
        assert_eq!(
            job.spec.as_ref(),
            Some(&template()),
            "verbatim without overrides"
        );
        let m = &job.metadata;
        assert_eq!(m.name.as_deref(), Some("billing-sync-rerun-abc12345"));
        assert_eq!(m.namespace.as_deref(), Some("billing"));
        let labels = m.labels.clone().unwrap();
        assert_eq!(labels["app"], "billing");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY_VALUE);
        let a = m.annotations.clone().unwrap();
        let expected: BTreeMap<String, String> = [
            ("note", "keep"),
            (INSTANTIATE_ANNOTATION, "manual"),
            (REQUEST_ID_ANNOTATION, "abc12345xyz"),
            (REQUESTED_BY_ANNOTATION, "U_ALICE"),
            (APPROVED_BY_ANNOTATION, "U_BOB"),
            (REASON_ANNOTATION, "db down"),
            (TICKET_ANNOTATION, "INC-1"),
            (SOURCE_JOB_ANNOTATION, "billing-sync-29000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(a, expected);
        let owner = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str(),
                owner.controller
            ),
            ("CronJob", "billing-sync", "cj-uid", Some(true))
        );
        assert_eq!(owner.block_owner_deletion, None);
        assert!(job.status.is_none());

        let bare = RerunMeta {
            ticket: Some(""),
            source_job: None,
            reason: &"é".repeat(2000),
            ..meta()
        };
        let a = build_job(&cronjob(), &Overrides::default(), &bare)
            .unwrap()
            .metadata
            .annotations
            .unwrap();
        assert!(!a.contains_key(TICKET_ANNOTATION) && !a.contains_key(SOURCE_JOB_ANNOTATION));
        assert_eq!(a[REASON_ANNOTATION].chars().count(), REASON_ANNOTATION_MAX);
    }

    #[test]
    fn overrides_touch_only_the_chosen_container() {
        let cases: Vec<(Overrides, usize, Option<Vec<&str>>)> = vec![
            (
                with(&["--date=1"], ArgsMode::Append, &[], None),
                0,
                Some(vec!["sync", "--all", "--date=1"]),
            ),
            (
                with(&["x"], ArgsMode::Replace, &[], None),
                0,
                Some(vec!["x"]),
            ),
            (with(&[], ArgsMode::Replace, &[], None), 0, Some(vec![])),
            (
                with(&[], ArgsMode::Append, &[("A", "1")], None),
                0,
                Some(vec!["sync", "--all"]),
            ),
            (
                with(&["--v"], ArgsMode::Append, &[], Some("sidecar")),
                1,
                Some(vec!["--proxy", "--v"]),
            ),
        ];
        for (o, index, args) in cases {
            let spec = apply(&template(), &o).unwrap();
            assert_eq!(
                without_changes(&spec, index),
                without_changes(&template(), index),
                "{o:?}"
            );
            let c = &spec.template.spec.as_ref().unwrap().containers[index];
            let want = args.map(|a| a.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(c.args, want, "{o:?}");
        }
        // Env: replace in place (a valueFrom too), append new, the last of a key wins.
        let o = with(
            &[],
            ArgsMode::Append,
            &[("DB_PASSWORD", "x"), ("NEW", "1"), ("NEW", "2")],
            None,
        );
        let spec = apply(&template(), &o).unwrap();
        let env = spec.template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        let pairs: Vec<(&str, Option<&str>, bool)> = env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref(), e.value_from.is_some()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("DB_HOST", Some("db"), false),
                ("DB_PASSWORD", Some("x"), false),
                ("NEW", Some("2"), false)
            ]
        );
        // No env override leaves a container without env as it was.
        let sidecar = apply(
            &template(),
            &with(&["a"], ArgsMode::Append, &[], Some("sidecar")),
        )
        .unwrap();
        assert_eq!(sidecar.template.spec.unwrap().containers[1].env, None);
    }

    #[test]
    fn errors() {
        let err = apply(&template(), &with(&[], ArgsMode::Append, &[], Some("nope"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container `nope` is not in the job template (containers: main, sidecar)"
        );
        let mut empty = template();
        empty.template.spec.as_mut().unwrap().containers.clear();
        assert_eq!(
            apply(&empty, &Overrides::default()),
            Err(OverrideError::NoContainers)
        );
        let mut no_template = cronjob();
        no_template.spec = None;
        assert_eq!(
            build_job(&no_template, &Overrides::default(), &meta()).unwrap_err(),
            OverrideError::NoTemplate
        );
    }

    #[test]
    fn job_names_fit_dns_1123() {
        let long = "a".repeat(80);
        let cut = format!("{}-x", "b".repeat(52));
        for (cronjob, id) in [
            ("billing-sync", "abc12345zz"),
            (long.as_str(), "abc12345"),
            (cut.as_str(), "q1"),
        ] {
            let name = job_name(cronjob, id);
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
            assert!(
                !name.starts_with('-') && !name.ends_with('-') && !name.contains("--"),
                "{name}"
            );
            assert_eq!(name, job_name(cronjob, id), "deterministic");
        }
        assert_eq!(
            job_name("billing-sync", "abc12345zz"),
            "billing-sync-rerun-abc12345"
        );
        assert_eq!(job_name(&long, "abc12345").len(), 63);
        assert!(job_name(&long, "abc12345").ends_with("a-rerun-abc12345"));
    }

    #[test]
    fn secrets_are_recognised_by_name() {
        for name in [
            "DB_PASSWORD",
            "api_key",
            "GITHUB_TOKEN",
            "db-pass",
            "SENTRY_DSN",
            "AUTH_HEADER",
            "client_secret",
            "ssl.cert",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in [
            "DATE",
            "KEYSPACE",
            "PASSENGER_COUNT",
            "MONKEY",
            "DB_HOST",
            "REGION",
        ] {
            assert!(!looks_secret(name), "{name}");
        }
    }

    #[test]
    fn diffs_mask_secrets_and_describe_sources() {
        let o = with(
            &["--date=1"],
            ArgsMode::Append,
            &[
                ("DB_PASSWORD", "hunter2"),
                ("DB_HOST", "db2"),
                ("API_TOKEN", "t"),
                ("DATE", "1"),
            ],
            None,
        );
        let d = diff(&template(), &o).unwrap();
        assert_eq!(d.container, "main");
        assert_eq!(
            d.args,
            Some((
                vec!["sync".into(), "--all".into()],
                vec!["sync".into(), "--all".into(), "--date=1".into()]
            ))
        );
        let env: Vec<(&str, Option<&str>, &str)> = d
            .env
            .iter()
            .map(|e| (e.name.as_str(), e.before.as_deref(), e.after.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("DB_PASSWORD", Some("(from secretKeyRef db/pw)"), MASK),
                ("DB_HOST", Some("db"), "db2"),
                ("API_TOKEN", None, MASK),
                ("DATE", None, "1"),
            ]
        );
        assert!(!d.is_empty());
        assert!(diff(&template(), &Overrides::default()).unwrap().is_empty());
    }

    #[test]
    fn env_pairs() {
        assert_eq!(
            parse_env("DATE=2024-01-01"),
            Ok(("DATE".into(), "2024-01-01".into()))
        );
        assert_eq!(parse_env("EMPTY="), Ok(("EMPTY".into(), String::new())));
        assert_eq!(parse_env("Q=a=b"), Ok(("Q".into(), "a=b".into())));
        assert_eq!(parse_env("my.var_1=x"), Ok(("my.var_1".into(), "x".into())));
        assert!(parse_env("NOEQUALS").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_env("1BAD=x").unwrap_err().contains("not a valid"));
        assert!(parse_env("=x").unwrap_err().contains("not a valid"));
        assert!(parse_env("SP ACE=x").unwrap_err().contains("not a valid"));
    }

    #[test]
    fn empty_overrides() {
        assert!(Overrides::default().is_empty());
        let o = Overrides {
            args_mode: ArgsMode::Replace,
            ..Overrides::default()
        };
        assert!(
            !o.is_empty(),
            "replace with no args clears the args: a change"
        );
    }
}
