//! The custom resources [`super::KubeStore`] keeps its records in (group
//! `rerun-bot.io`, version `v1alpha1`, namespaced, status subresource).
//!
//! Each resource carries the bot's record whole, as JSON: in `spec.record` as
//! created, and in `status.record` once changed. Immutable facts people look
//! for (CronJob, requester, …) are copied into `spec`, the changing ones
//! (phase, approver, …) into `status`, so `kubectl get rerunrequests` is a
//! useful view. A change is one `PUT …/status` with the resourceVersion read:
//! a 409 means someone else changed it first.

// Several `printcolumn(type_ = "string", …)` read as duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `record`: any JSON object, kept as is by the apiserver.
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rerun-bot.io",
    version = "v1alpha1",
    kind = "RerunRequest",
    plural = "rerunrequests",
    shortname = "rr",
    namespaced,
    status = "RerunRequestStatus",
    printcolumn(name = "CronJob", type_ = "string", json_path = ".spec.cronjob"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Requester", type_ = "string", json_path = ".spec.requester"),
    printcolumn(name = "Approver", type_ = "string", json_path = ".status.approver"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RerunRequestSpec {
    /// `namespace/name` of the CronJob to rerun.
    pub cronjob: String,
    pub requester: String,
    pub reason: String,
    #[schemars(schema_with = "any_object")]
    pub record: serde_json::Value,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RerunRequestStatus {
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[schemars(schema_with = "any_object")]
    pub record: serde_json::Value,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rerun-bot.io",
    version = "v1alpha1",
    kind = "MaintenanceHold",
    plural = "maintenanceholds",
    namespaced,
    status = "MaintenanceHoldStatus",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.target"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "By", type_ = "string", json_path = ".spec.by"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceHoldSpec {
    /// `hold` or `resume`.
    pub kind: String,
    pub target: String,
    pub by: String,
    #[schemars(schema_with = "any_object")]
    pub record: serde_json::Value,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceHoldStatus {
    pub phase: String,
    #[schemars(schema_with = "any_object")]
    pub record: serde_json::Value,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rerun-bot.io",
    version = "v1alpha1",
    kind = "JobAlert",
    plural = "jobalerts",
    namespaced,
    status = "JobAlertStatus",
    printcolumn(name = "CronJob", type_ = "string", json_path = ".spec.cronjob"),
    printcolumn(name = "Job", type_ = "string", json_path = ".spec.job"),
    printcolumn(name = "Platform", type_ = "string", json_path = ".spec.platform"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct JobAlertSpec {
    /// The store key (the Job uid, `teams/<uid>` for Teams' copy).
    pub key: String,
    pub cronjob: String,
    pub job: String,
    pub platform: String,
    #[schemars(schema_with = "any_object")]
    pub record: serde_json::Value,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobAlertStatus {
    /// `Pending` or `Posted`.
    pub state: String,
    #[schemars(schema_with = "any_object")]
    pub record: serde_json::Value,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rerun-bot.io",
    version = "v1alpha1",
    kind = "AlertThread",
    plural = "alertthreads",
    namespaced,
    status = "AlertThreadStatus",
    printcolumn(name = "CronJob", type_ = "string", json_path = ".spec.cronjob"),
    printcolumn(name = "Platform", type_ = "string", json_path = ".spec.platform"),
    printcolumn(name = "Failures", type_ = "integer", json_path = ".status.failures"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AlertThreadSpec {
    /// The store key (`namespace/cronjob`, `teams/namespace/cronjob`).
    pub key: String,
    pub cronjob: String,
    pub platform: String,
    #[schemars(schema_with = "any_object")]
    pub record: serde_json::Value,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertThreadStatus {
    pub failures: u32,
    #[schemars(schema_with = "any_object")]
    pub record: serde_json::Value,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rerun-bot.io",
    version = "v1alpha1",
    kind = "AuditEvent",
    plural = "auditevents",
    namespaced,
    status = "AuditEventStatus",
    printcolumn(name = "Action", type_ = "string", json_path = ".spec.action"),
    printcolumn(name = "Actor", type_ = "string", json_path = ".spec.actor"),
    printcolumn(name = "Subject", type_ = "string", json_path = ".spec.subject"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventSpec {
    /// The event's sequence number (also its name's digits): time-sortable.
    pub seq: u64,
    pub action: String,
    pub actor: String,
    pub subject: String,
    #[schemars(schema_with = "any_object")]
    pub record: serde_json::Value,
}

/// Audit events never change; the status exists for symmetry with the others.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventStatus {}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rerun-bot.io",
    version = "v1alpha1",
    kind = "BotRecord",
    plural = "botrecords",
    namespaced,
    status = "BotRecordStatus",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "Key", type_ = "string", json_path = ".spec.key"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
/// The records of the later features (`Store::record`: run histories, …).
pub struct BotRecordSpec {
    /// `history`, …
    pub kind: String,
    /// The store key (`namespace/cronjob`, …).
    pub key: String,
    #[schemars(schema_with = "any_object")]
    pub record: serde_json::Value,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BotRecordStatus {
    #[schemars(schema_with = "any_object")]
    pub record: serde_json::Value,
}

/// Every CRD, as `rerun-bot crds` prints them (multi-document YAML).
pub fn all()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![
        RerunRequest::crd(),
        MaintenanceHold::crd(),
        JobAlert::crd(),
        AlertThread::crd(),
        AuditEvent::crd(),
        BotRecord::crd(),
    ]
}

/// The CRDs as multi-document YAML, as `manifests/ha/crds.yaml` holds them.
pub fn yaml() -> String {
    let mut out = String::from(
        "# Generated by `rerun-bot crds` from src/store/crds.rs; do not edit by hand.\n",
    );
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd).expect("CRDs serialize"));
    }
    out
}
