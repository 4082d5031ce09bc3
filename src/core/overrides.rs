//! Changes a person asks for on a rerun (arguments and environment of one
//! container), and the rerun Job built from a CronJob's template with them.
//! Pure functions: no I/O, no clock.
//!
//! - [`apply`] changes one container of a `JobSpec` (args appended or replaced,
//!   env vars replaced in place or appended) and copies everything else exactly.
//! - [`build_job`] does what `kubectl create job --from=cronjob/X` does (kubectl's
//!   `generateJobFromCronJob`): the template's spec, its labels and annotations,
//!   `cronjob.kubernetes.io/instantiate: manual` and a controller ownerReference
//!   to the CronJob; plus rerun-bot's label and annotations, under the
//!   deterministic name from [`job_name`].
//! - [`diff`] says what changes, for the approval card and the audit trail, with
//!   the values of [`looks_secret`] names masked.

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

/// `<cronjob>-rerun-<id>`, id being the first 8 chars of the request id (all of
/// it if shorter). Deterministic, and always a valid DNS-1123 label of at most
/// 63 chars: a long CronJob name is cut (with any `-` it then ends with), the
/// suffix is kept; a `.` of the CronJob name (legal there, not in a label)
/// becomes `-`, and characters outside `[a-z0-9]` are dropped from the id.
pub fn job_name(cronjob: &str, request_id: &str) -> String {
    let id: String = request_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(8)
        .collect();
    let room = 63 - "-rerun-".len() - id.len();
    let base: String = cronjob
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .take(room)
        .collect();
    [base.trim_matches('-'), "rerun", &id]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
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

/// The JobSpec with the overrides applied to one container (`overrides.container`,
/// or the first); everything else is copied exactly.
///
/// Args: `Append` adds to the container's args (an empty append leaves them as they
/// were, `None` included); `Replace` sets exactly the given ones (`Some(vec![])` if
/// none). Env: each key's last value replaces every entry of that name in place (a
/// `valueFrom` too), or is added at the end; no env override leaves `env` as it was.
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
            // Every entry of the name: with duplicates, the last one is the one in effect.
            let mut found = false;
            for slot in env.iter_mut().filter(|e| e.name == name) {
                *slot = var.clone();
                found = true;
            }
            if !found {
                env.push(var);
            }
        }
    }
    Ok(spec)
}

/// The rerun Job, like `kubectl create job --from=cronjob/X`: named
/// [`job_name`], in the CronJob's namespace, with the job template's labels (plus
/// [`MANAGED_BY_LABEL`]) and annotations (plus [`INSTANTIATE_ANNOTATION`]`: manual`
/// and the request's: the reason cut to [`REASON_ANNOTATION_MAX`] chars, ticket
/// and source job only when there is one), a controller ownerReference to the
/// CronJob (no `blockOwnerDeletion`, as kubectl), and the spec from [`apply`].
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
/// contains PASSWORD, PASSWD, SECRET, TOKEN, CREDENTIAL, PRIVATE, APIKEY,
/// ACCESSKEY, AUTH, CERT, DSN, COOKIE, SESSION or SIGNATURE; or one of its
/// `_`/`-`/`.`-separated words is PASS, PWD or KEY (so `DB_PASS`, `API_KEY`,
/// `ACCESS_KEY_ID` and `SSH_KEY` are; `KEYSPACE`, `MONKEY`, `BYPASS` and
/// `PASSENGER_COUNT` are not). Errs on the side of masking.
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
        "ACCESSKEY",
        "AUTH",
        "CERT",
        "DSN",
        "COOKIE",
        "SESSION",
        "SIGNATURE",
    ];
    const WORDS: &[&str] = &["PASS", "PWD", "KEY"];
    PARTS.iter().any(|p| upper.contains(p))
        || upper.split(['_', '-', '.']).any(|w| WORDS.contains(&w))
}

/// What a rerun changes against the template, for the approval card and the
/// audit trail. Values of [`looks_secret`] names are [`MASK`]ed, before and after.
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
    /// `None`: a new variable. A `valueFrom` is described, never resolved:
    /// `(from secretKeyRef db/password)`, `(from configMapKeyRef …)`,
    /// `(from fieldRef metadata.name)`, `(from resourceFieldRef limits.memory)`.
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

/// The diff of `overrides` against `template` (same container choice and errors
/// as [`apply`]): one [`EnvChange`] per distinct key, last value wins, in
/// first-appearance order, even when the value is unchanged (it was asked for).
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
                .rfind(|e| e.name == name)
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
        args: args_after(container, overrides).map(|after| {
            (
                mask_args(&container.args.clone().unwrap_or_default()),
                mask_args(&after),
            )
        }),
        env,
    })
}

/// Arguments as they may be shown: the value of a secret-looking option is
/// masked, whether it is joined (`--db-password=x`) or the next argument
/// (`--token x`).
pub fn mask_args(args: &[String]) -> Vec<String> {
    let option_name = |arg: &str| arg.trim_start_matches('-').to_string();
    let mut out = Vec::with_capacity(args.len());
    let mut mask_next = false;
    for arg in args {
        if mask_next {
            out.push(MASK.to_string());
            mask_next = false;
            continue;
        }
        match arg.split_once('=') {
            Some((key, _)) if looks_secret(&option_name(key)) => out.push(format!("{key}={MASK}")),
            Some(_) => out.push(arg.clone()),
            None => {
                mask_next = arg.starts_with('-') && looks_secret(&option_name(arg));
                out.push(arg.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn cronjob() -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": "billing-sync", "namespace": "billing", "uid": "cj-uid",
                         "labels": {"team": "billing"},
                         "annotations": {"rerun-bot.io/owner": "U1"}},
            "spec": {"schedule": "0 3 * * *", "concurrencyPolicy": "Forbid", "jobTemplate": {
                "metadata": {"labels": {"app": "billing", "tier": "batch"},
                             "annotations": {"note": "keep"}},
                "spec": {"backoffLimit": 2, "activeDeadlineSeconds": 600,
                         "ttlSecondsAfterFinished": 86400, "template": {
                    "metadata": {"labels": {"app": "billing"},
                                 "annotations": {"prometheus.io/scrape": "false"}},
                    "spec": {
                        "restartPolicy": "Never", "serviceAccountName": "billing",
                        "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}},
                                    {"name": "scratch", "emptyDir": {}}],
                        "initContainers": [{"name": "init", "image": "busybox", "args": ["prep"],
                                            "env": [{"name": "DB_HOST", "value": "init-db"}]}],
                        "containers": [
                            {"name": "main", "image": "billing:1", "command": ["/app/billing"],
                             "args": ["sync", "--all"],
                             "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                           "limits": {"memory": "1Gi"}},
                             "volumeMounts": [{"name": "cfg", "mountPath": "/etc/billing"}],
                             "env": [
                                {"name": "DB_HOST", "value": "db"},
                                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
                                {"name": "SESSION_SECRET", "value": "plain-s3cret"},
                                {"name": "REGION", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "region"}}},
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "MEM_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}
                             ]},
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
            args: strings(args),
            args_mode: mode,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn pod_mut(spec: &mut JobSpec) -> &mut k8s_openapi::api::core::v1::PodSpec {
        spec.template.spec.as_mut().unwrap()
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

    /// A container's env as `NAME=value`, or `NAME<-` for a `valueFrom`.
    fn env_of(spec: &JobSpec, index: usize) -> Option<Vec<String>> {
        let env = spec.template.spec.as_ref().unwrap().containers[index]
            .env
            .as_ref()?;
        Some(
            env.iter()
                .map(|e| match (&e.value, &e.value_from) {
                    (_, Some(_)) => format!("{}<-", e.name),
                    (value, None) => format!("{}={}", e.name, value.as_deref().unwrap_or("")),
                })
                .collect(),
        )
    }

    #[test]
    fn build_job_keeps_managed_by_failure_and_success_policies_and_completion_mode() {
        let mut cj = cronjob();
        let extra = json!({
            "managedBy": "example.com/batch-controller",
            "completionMode": "Indexed", "completions": 4, "parallelism": 2,
            "backoffLimitPerIndex": 1, "maxFailedIndexes": 2,
            "podReplacementPolicy": "Failed",
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [3]}}]},
            "successPolicy": {"rules": [{"succeededIndexes": "0-1", "succeededCount": 1}]},
        });
        let mut spec = serde_json::to_value(template()).unwrap();
        spec.as_object_mut().unwrap().remove("backoffLimit");
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        cj.spec.as_mut().unwrap().job_template.spec =
            Some(serde_json::from_value(spec.clone()).unwrap());
        let changed = with(&["--date=2026-01-01"], ArgsMode::Append, &[], None);
        for overrides in [Overrides::default(), changed] {
            let job = build_job(&cj, &overrides, &meta()).unwrap();
            let v = serde_json::to_value(&job).unwrap();
            for field in [
                "managedBy",
                "completionMode",
                "completions",
                "parallelism",
                "backoffLimitPerIndex",
                "maxFailedIndexes",
                "podReplacementPolicy",
                "podFailurePolicy",
                "successPolicy",
            ] {
                assert_eq!(v["spec"][field], spec[field], "{field}");
            }
        }
    }

    #[test]
    fn build_job_is_kubectl_create_job_from_plus_rerun_metadata() {
        let job = build_job(&cronjob(), &Overrides::default(), &meta()).unwrap();
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(
            (&v["apiVersion"], &v["kind"]),
            (&json!("batch/v1"), &json!("Job"))
        );
        assert_eq!(v.get("status"), None);
        assert_eq!(
            v["spec"],
            serde_json::to_value(template()).unwrap(),
            "verbatim"
        );
        // Exactly this metadata: not the CronJob's own labels and annotations.
        assert_eq!(
            v["metadata"],
            json!({
                "name": "billing-sync-rerun-abc12345",
                "namespace": "billing",
                "labels": {"app": "billing", "tier": "batch",
                           "app.kubernetes.io/managed-by": "rerun-bot"},
                "annotations": {
                    "note": "keep",
                    "cronjob.kubernetes.io/instantiate": "manual",
                    "rerun-bot.io/request-id": "abc12345xyz",
                    "rerun-bot.io/requested-by": "U_ALICE",
                    "rerun-bot.io/approved-by": "U_BOB",
                    "rerun-bot.io/reason": "db down",
                    "rerun-bot.io/ticket": "INC-1",
                    "rerun-bot.io/source-job": "billing-sync-29000000",
                },
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                     "name": "billing-sync", "uid": "cj-uid", "controller": true}],
            })
        );

        // No uid, no template metadata, no namespace: still a well-formed Job.
        let mut bare = cronjob();
        bare.metadata.uid = None;
        bare.metadata.namespace = None;
        bare.spec.as_mut().unwrap().job_template.metadata = None;
        let m = build_job(&bare, &Overrides::default(), &meta())
            .unwrap()
            .metadata;
        assert_eq!(m.owner_references.unwrap()[0].uid, "");
        assert_eq!(m.namespace, None);
        assert_eq!(
            m.labels.unwrap().into_iter().collect::<Vec<_>>(),
            [(MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string())]
        );
        assert!(!m.annotations.unwrap().contains_key("note"));
    }

    #[test]
    fn build_job_applies_the_overrides() {
        let o = with(
            &["-v"],
            ArgsMode::Append,
            &[("LOG", "debug")],
            Some("sidecar"),
        );
        let job = build_job(&cronjob(), &o, &meta()).unwrap();
        assert_eq!(job.spec, Some(apply(&template(), &o).unwrap()));
        assert_eq!(
            without_changes(job.spec.as_ref().unwrap(), 1),
            without_changes(&template(), 1)
        );
    }

    #[test]
    fn optional_annotations_and_the_reason_cut() {
        let long_ascii = "x".repeat(1500);
        let multibyte = "é".repeat(2000);
        let edge = format!("{}€€", "a".repeat(1023));
        #[rustfmt::skip]
        let cases = [
            (Some("INC-1"), Some("job-1"), "short", Some("INC-1"), Some("job-1"), "short".to_string()),
            (None, None, "short", None, None, "short".to_string()),
            (Some(""), Some("job-1"), "", None, Some("job-1"), String::new()),
            (None, None, long_ascii.as_str(), None, None, "x".repeat(1024)),
            (None, None, multibyte.as_str(), None, None, "é".repeat(1024)),
            (None, None, edge.as_str(), None, None, format!("{}€", "a".repeat(1023))),
        ];
        for (ticket, source_job, reason, want_ticket, want_source, want_reason) in cases {
            let m = RerunMeta {
                ticket,
                source_job,
                reason,
                ..meta()
            };
            let a = build_job(&cronjob(), &Overrides::default(), &m)
                .unwrap()
                .metadata
                .annotations
                .unwrap();
            assert_eq!(a.get(TICKET_ANNOTATION).map(String::as_str), want_ticket);
            assert_eq!(
                a.get(SOURCE_JOB_ANNOTATION).map(String::as_str),
                want_source
            );
            assert_eq!(a[REASON_ANNOTATION], want_reason);
            assert!(a[REASON_ANNOTATION].chars().count() <= REASON_ANNOTATION_MAX);
        }
    }

    #[test]
    fn args_overrides_touch_only_the_chosen_container() {
        #[rustfmt::skip]
        let cases: Vec<(Overrides, usize, Option<Vec<&str>>)> = vec![
            (with(&["--date=1"], ArgsMode::Append, &[], None), 0, Some(vec!["sync", "--all", "--date=1"])),
            (with(&["x", "y"], ArgsMode::Replace, &[], None), 0, Some(vec!["x", "y"])),
            (with(&[], ArgsMode::Replace, &[], None), 0, Some(vec![])),
            (with(&[], ArgsMode::Append, &[("A", "1")], None), 0, Some(vec!["sync", "--all"])),
            (with(&["--v"], ArgsMode::Append, &[], Some("sidecar")), 1, Some(vec!["--proxy", "--v"])),
            (with(&[], ArgsMode::Replace, &[], Some("sidecar")), 1, Some(vec![])),
        ];
        for (o, index, args) in cases {
            let spec = apply(&template(), &o).unwrap();
            // Everything else, init containers and the other container included.
            assert_eq!(
                without_changes(&spec, index),
                without_changes(&template(), index),
                "{o:?}"
            );
            let c = &spec.template.spec.as_ref().unwrap().containers[index];
            assert_eq!(c.args, args.map(|a| strings(&a)), "{o:?}");
            if o.env.is_empty() {
                assert_eq!(env_of(&spec, index), env_of(&template(), index), "{o:?}");
            }
        }

        // A container without args.
        let mut no_args = template();
        pod_mut(&mut no_args).containers[0].args = None;
        for (o, args) in [
            (with(&[], ArgsMode::Append, &[("A", "1")], None), None),
            (
                with(&["a"], ArgsMode::Append, &[], None),
                Some(strings(&["a"])),
            ),
            (with(&[], ArgsMode::Replace, &[], None), Some(vec![])),
        ] {
            let spec = apply(&no_args, &o).unwrap();
            assert_eq!(
                spec.template.spec.unwrap().containers[0].args,
                args,
                "{o:?}"
            );
        }
    }

    #[test]
    fn env_overrides_replace_in_place_or_append() {
        let base = [
            "DB_HOST=db",
            "DB_PASSWORD<-",
            "SESSION_SECRET=plain-s3cret",
            "REGION<-",
            "POD_NAME<-",
            "MEM_LIMIT<-",
        ];
        let patched = |at: usize, to: &str, extra: &[&str]| {
            let mut env = strings(&base);
            env[at] = to.to_string();
            env.extend(strings(extra));
            env
        };
        #[rustfmt::skip]
        let cases = [
            (vec![], strings(&base)),
            (vec![("DB_PASSWORD", "x")], patched(1, "DB_PASSWORD=x", &[])),
            (vec![("POD_NAME", "")], patched(4, "POD_NAME=", &[])),
            (vec![("NEW", "1")], patched(0, "DB_HOST=db", &["NEW=1"])),
            (vec![("NEW", "1"), ("NEW", "2")], patched(0, "DB_HOST=db", &["NEW=2"])),
            (
                vec![("B", "1"), ("DB_HOST", "h"), ("A", "1"), ("B", "2"), ("DB_HOST", "h2")],
                patched(0, "DB_HOST=h2", &["B=2", "A=1"]),
            ),
        ];
        for (env, want) in cases {
            let o = with(&[], ArgsMode::Append, &env, None);
            let spec = apply(&template(), &o).unwrap();
            assert_eq!(env_of(&spec, 0), Some(want), "{env:?}");
            assert_eq!(without_changes(&spec, 0), without_changes(&template(), 0));
            let init = &spec.template.spec.as_ref().unwrap().init_containers;
            assert_eq!(init, &template().template.spec.unwrap().init_containers);
        }

        // A container without env gets one only when asked.
        let sidecar = |env: &[(&str, &str)]| {
            let o = with(&["a"], ArgsMode::Append, env, Some("sidecar"));
            env_of(&apply(&template(), &o).unwrap(), 1)
        };
        assert_eq!(sidecar(&[]), None);
        assert_eq!(sidecar(&[("A", "1")]), Some(strings(&["A=1"])));

        // A name given twice in the template: both take the new value (the last is in effect).
        let mut twice = template();
        let env = pod_mut(&mut twice).containers[0].env.as_mut().unwrap();
        env.push(EnvVar {
            name: "DB_HOST".into(),
            value: Some("db-last".into()),
            value_from: None,
        });
        let o = with(&[], ArgsMode::Append, &[("DB_HOST", "h")], None);
        let env = env_of(&apply(&twice, &o).unwrap(), 0).unwrap();
        assert_eq!(
            (env[0].as_str(), env[6].as_str()),
            ("DB_HOST=h", "DB_HOST=h")
        );
        assert_eq!(
            diff(&twice, &o).unwrap().env[0].before.as_deref(),
            Some("db-last")
        );
    }

    #[test]
    fn errors() {
        let unknown = OverrideError::UnknownContainer {
            name: "nope".into(),
            available: strings(&["main", "sidecar"]),
        };
        let nope = with(&[], ArgsMode::Append, &[], Some("nope"));
        let mut no_containers = template();
        pod_mut(&mut no_containers).containers.clear();
        let mut no_pod_spec = template();
        no_pod_spec.template.spec = None;
        let mut no_cronjob_spec = cronjob();
        no_cronjob_spec.spec = None;
        let mut no_job_spec = cronjob();
        no_job_spec.spec.as_mut().unwrap().job_template.spec = None;
        let none = Overrides::default();
        #[rustfmt::skip]
        let cases: Vec<(&str, Option<OverrideError>, OverrideError)> = vec![
            ("apply unknown", apply(&template(), &nope).err(), unknown.clone()),
            ("diff unknown", diff(&template(), &nope).err(), unknown.clone()),
            ("build unknown", build_job(&cronjob(), &nope, &meta()).err(), unknown.clone()),
            ("apply no containers", apply(&no_containers, &none).err(), OverrideError::NoContainers),
            ("diff no containers", diff(&no_containers, &none).err(), OverrideError::NoContainers),
            ("apply no pod spec", apply(&no_pod_spec, &none).err(), OverrideError::NoContainers),
            ("build no spec", build_job(&no_cronjob_spec, &none, &meta()).err(), OverrideError::NoTemplate),
            ("build no job spec", build_job(&no_job_spec, &none, &meta()).err(), OverrideError::NoTemplate),
        ];
        for (what, got, want) in cases {
            assert_eq!(got, Some(want), "{what}");
        }
        assert_eq!(
            unknown.to_string(),
            "container `nope` is not in the job template (containers: main, sidecar)"
        );
        assert_eq!(
            containers(&template()),
            ["main", "sidecar"],
            "not init containers"
        );
        assert!(containers(&no_pod_spec).is_empty());
    }

    #[test]
    fn job_names_are_deterministic_dns_1123_labels() {
        let a48 = "a".repeat(48);
        let a80 = "a".repeat(80);
        let dash_at_cut = format!("{}-cdef", "b".repeat(47));
        let dot_at_cut = format!("{}.x", "c".repeat(47));
        #[rustfmt::skip]
        let cases: Vec<(&str, &str, String)> = vec![
            ("billing-sync", "abc12345zz", "billing-sync-rerun-abc12345".into()),
            ("billing-sync", "q1", "billing-sync-rerun-q1".into()),
            (&a48, "abc12345", format!("{a48}-rerun-abc12345")), // exactly 63
            (&a80, "abc12345", format!("{a48}-rerun-abc12345")),
            (&a80, "q1", format!("{}-rerun-q1", "a".repeat(54))),
            (&dash_at_cut, "abc12345", format!("{}-rerun-abc12345", "b".repeat(47))),
            (&dot_at_cut, "abc12345", format!("{}-rerun-abc12345", "c".repeat(47))),
            ("nightly.report", "abc12345", "nightly-report-rerun-abc12345".into()),
            ("", "abc", "rerun-abc".into()),
        ];
        for (cronjob, id, want) in cases {
            let name = job_name(cronjob, id);
            assert_eq!(name, want);
            assert_eq!(name, job_name(cronjob, id), "deterministic");
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
            assert!(
                alnum(name.chars().next()) && alnum(name.chars().last()),
                "{name}"
            );
        }
    }

    #[test]
    fn secret_looking_options_are_masked_in_shown_args() {
        let args: Vec<String> = [
            "sync",
            "--date=2024-01-01",
            "--db-password=hunter2",
            "--token",
            "abc",
            "--verbose",
            "API_KEY=x",
            "--monkey=banana",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            mask_args(&args),
            [
                "sync",
                "--date=2024-01-01",
                &format!("--db-password={MASK}"),
                "--token",
                MASK,
                "--verbose",
                &format!("API_KEY={MASK}"),
                "--monkey=banana",
            ]
        );
        let o = Overrides {
            args: vec!["--api-token=t0ps3cret".into()],
            ..Overrides::default()
        };
        let shown = serde_json::to_string(&diff(&template(), &o).unwrap()).unwrap();
        assert!(!shown.contains("t0ps3cret"), "{shown}");
    }

    #[test]
    fn secrets_are_recognised_by_name() {
        #[rustfmt::skip]
        let cases = [
            ("DB_PASSWORD", true), ("dbPassword", true), ("PGPASSWD", true), ("DB_PASS", true),
            ("db-pass", true), ("client_secret", true), ("GITHUB_TOKEN", true),
            ("KAFKA_CREDENTIALS", true), ("PRIVATE_KEY", true), ("apiKey", true),
            ("STRIPE_API_KEY", true), ("AWS_ACCESS_KEY_ID", true), ("awsAccessKey", true),
            ("SSH_KEY", true), ("AUTH_HEADER", true), ("ssl.cert", true), ("SENTRY_DSN", true),
            ("PGDSN", true), ("COOKIE_JAR", true), ("SESSION_ID", true), ("REQUEST_SIGNATURE", true),
            ("DATE", false), ("KEYSPACE", false), ("PASSENGER_COUNT", false), ("MONKEY", false),
            ("BYPASS_CACHE", false), ("DB_HOST", false), ("REGION", false), ("LOG_LEVEL", false),
        ];
        for (name, secret) in cases {
            assert_eq!(looks_secret(name), secret, "{name}");
        }
    }

    #[test]
    fn diffs_mask_secrets_and_describe_sources() {
        let o = with(
            &[],
            ArgsMode::Append,
            &[
                ("DATE", "0"),
                ("DB_PASSWORD", "hunter2"),
                ("SESSION_SECRET", "new-s3cret"),
                ("DB_HOST", "db2"),
                ("REGION", "eu"),
                ("POD_NAME", "p"),
                ("MEM_LIMIT", "1"),
                ("API_TOKEN", "tok-s3cret"),
                ("DATE", "1"),
                ("DB_HOST", "db"),
            ],
            None,
        );
        let d = diff(&template(), &o).unwrap();
        assert_eq!(d.container, "main");
        assert_eq!(d.args, None);
        let env: Vec<(&str, Option<&str>, &str)> = d
            .env
            .iter()
            .map(|e| (e.name.as_str(), e.before.as_deref(), e.after.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("DATE", None, "1"),
                ("DB_PASSWORD", Some("(from secretKeyRef db/pw)"), MASK),
                ("SESSION_SECRET", Some(MASK), MASK),
                ("DB_HOST", Some("db"), "db"), // unchanged, but asked for
                ("REGION", Some("(from configMapKeyRef cfg/region)"), "eu"),
                ("POD_NAME", Some("(from fieldRef metadata.name)"), "p"),
                (
                    "MEM_LIMIT",
                    Some("(from resourceFieldRef limits.memory)"),
                    "1"
                ),
                ("API_TOKEN", None, MASK),
            ]
        );
        let text = serde_json::to_string(&d).unwrap();
        for secret in ["hunter2", "plain-s3cret", "new-s3cret", "tok-s3cret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(serde_json::from_str::<Diff>(&text).unwrap(), d);
    }

    #[test]
    fn diffs_of_args_and_emptiness() {
        let sync = || strings(&["sync", "--all"]);
        #[rustfmt::skip]
        let cases = [
            (Overrides::default(), "main", None, true),
            (with(&[], ArgsMode::Append, &[], Some("sidecar")), "sidecar", None, true),
            (with(&["--date=1"], ArgsMode::Append, &[], None), "main",
             Some((sync(), strings(&["sync", "--all", "--date=1"]))), false),
            (with(&[], ArgsMode::Replace, &[], None), "main", Some((sync(), vec![])), false),
            (with(&["sync", "--all"], ArgsMode::Replace, &[], None), "main", Some((sync(), sync())), false),
            (with(&["-v"], ArgsMode::Append, &[], Some("sidecar")), "sidecar",
             Some((strings(&["--proxy"]), strings(&["--proxy", "-v"]))), false),
            (with(&[], ArgsMode::Append, &[("A", "1")], None), "main", None, false),
        ];
        for (o, container, args, empty) in cases {
            let d = diff(&template(), &o).unwrap();
            assert_eq!((d.container.as_str(), &d.args), (container, &args), "{o:?}");
            assert_eq!(d.is_empty(), empty, "{o:?}");
        }
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
