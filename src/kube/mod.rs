//! The Kubernetes adapter (kube-rs): watches Jobs and CronJobs, reads pods and
//! logs. Everything leaves this module as the small `core` snapshots; times
//! leave as chrono (k8s-openapi speaks jiff).

pub mod lease;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};

use crate::core::alert::LogTail;
use crate::core::text::{tail_bytes, tail_lines};
use crate::core::{Condition, ContainerExit, CronJobSnapshot, JobSnapshot, OnHold};

pub const ANNOTATION_CHANNEL: &str = "rerun-bot.io/channel";
pub const ANNOTATION_TEAMS_CHANNEL: &str = "rerun-bot.io/teams-channel";
pub const ANNOTATION_OWNER: &str = "rerun-bot.io/owner";
pub const ANNOTATION_ALERTS: &str = "rerun-bot.io/alerts";
pub const ANNOTATION_ON_HOLD: &str = "rerun-bot.io/on-hold";
pub const ANNOTATION_REQUEST_ID: &str = "rerun-bot.io/request-id";
pub const ANNOTATION_HOLD_ID: &str = crate::core::hold::HOLD_ID;

/// What creating a Job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    /// A Job of that name exists already (409): the earlier create went through.
    AlreadyExisted,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// This replica's lease ran out: it must not act (the new leader will).
    #[error("this replica no longer leads")]
    NotLeader,
}

/// What a watch stream tells the app.
#[derive(Debug)]
pub enum Watched<T> {
    /// The stream (re)started listing; `Synced` follows when the list is done.
    Restarted,
    Applied(T),
    Deleted(T),
    Synced,
    /// The watch broke; kube-rs backs off and relists by itself.
    Failed(String),
}

pub fn time(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        .unwrap_or_default()
}

fn true_condition<'a>(
    conditions: impl Iterator<Item = &'a k8s_openapi::api::batch::v1::JobCondition>,
    kind: &str,
    fallback_at: Option<DateTime<Utc>>,
) -> Option<Condition> {
    let mut conditions = conditions;
    conditions
        .find(|c| c.type_ == kind && c.status == "True")
        .map(|c| Condition {
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
            at: c
                .last_transition_time
                .as_ref()
                .map(time)
                .or(fallback_at)
                .unwrap_or_default(),
        })
}

/// `spec.managedBy` of Jobs the built-in Job controller runs (or unset).
pub const JOB_CONTROLLER: &str = "kubernetes.io/job-controller";
/// The index of a pod of an Indexed Job (annotation; also a label since 1.28).
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// A Job reduced to what the bot needs; `None` for objects without name or uid.
///
/// As Kubernetes 1.31–1.35 report Jobs:
/// - failed = `Failed=True` (reasons `BackoffLimitExceeded`, `DeadlineExceeded`,
///   `PodFailurePolicy` with the matching rule in its message, `FailedIndexes`,
///   `MaxFailedIndexesExceeded`); `FailureTarget` comes first and is not failed;
/// - complete = `Complete=True`, or `SuccessCriteriaMet=True` (a
///   `successPolicy` met; it comes before `Complete`);
/// - `status.failedIndexes` and `status.terminating` are kept; terminating
///   pods are not failures;
/// - a Job with `spec.managedBy` other than `kubernetes.io/job-controller` is
///   run by another controller: its conditions are not judged (neither failed
///   nor complete here).
pub fn job_snapshot(job: &Job) -> Option<JobSnapshot> {
    let meta = job.meta();
    let cronjob = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == "CronJob")
        .map(|o| o.name.clone());
    let status = job.status.as_ref();
    let conditions = || {
        status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
    };
    let created = meta.creation_timestamp.as_ref().map(time);
    let managed_by = job
        .spec
        .as_ref()
        .and_then(|s| s.managed_by.clone())
        .filter(|m| m != JOB_CONTROLLER);
    let judged = managed_by.is_none();
    if let Some(other) = &managed_by {
        tracing::debug!(
            job = %format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default()),
            managed_by = %other,
            "Job is managed by another controller; its conditions are not judged"
        );
    }
    let complete = true_condition(conditions(), "Complete", created)
        .or_else(|| true_condition(conditions(), "SuccessCriteriaMet", created));
    let annotations = job.annotations();
    let scheduled_for = cronjob.as_deref().and_then(|cj| {
        crate::core::slots::job_slot(
            cj,
            meta.name.as_deref().unwrap_or_default(),
            annotations
                .get(crate::core::slots::SCHEDULED_TIMESTAMP_ANNOTATION)
                .map(String::as_str),
            annotations
                .get(crate::core::overrides::INSTANTIATE_ANNOTATION)
                .is_some_and(|v| v == "manual"),
        )
    });
    Some(JobSnapshot {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        cronjob,
        rerun_request: job.annotations().get(ANNOTATION_REQUEST_ID).cloned(),
        started_at: status.and_then(|s| s.start_time.as_ref()).map(time),
        active: status.and_then(|s| s.active).unwrap_or(0),
        failed_pods: status.and_then(|s| s.failed).unwrap_or(0),
        backoff_limit: job.spec.as_ref().and_then(|s| s.backoff_limit),
        failed: true_condition(conditions(), "Failed", created).filter(|_| judged),
        complete: complete.filter(|_| judged),
        failed_indexes: status
            .and_then(|s| s.failed_indexes.clone())
            .filter(|i| !i.trim().is_empty()),
        terminating: status.and_then(|s| s.terminating).unwrap_or(0),
        managed_by,
        scheduled_for,
    })
}

/// The indexes in `status.failedIndexes` (`"1,3-5"`): whether `index` is one.
fn in_indexes(indexes: &str, index: u64) -> bool {
    indexes.split(',').any(|part| {
        let mut ends = part.trim().splitn(2, '-').map(|n| n.trim().parse::<u64>());
        match (ends.next(), ends.next()) {
            (Some(Ok(one)), None) => one == index,
            (Some(Ok(lo)), Some(Ok(hi))) => (lo..=hi).contains(&index),
            _ => false,
        }
    })
}

/// A pod's completion index (annotation, else label), if it has one.
fn completion_index(pod: &Pod) -> Option<u64> {
    let meta = pod.meta();
    [meta.annotations.as_ref(), meta.labels.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|m| m.get(COMPLETION_INDEX))
        .and_then(|v| v.trim().parse().ok())
}

fn annotation(annotations: &BTreeMap<String, String>, key: &str) -> Option<String> {
    annotations
        .get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

pub fn cronjob_snapshot(cj: &CronJob) -> Option<CronJobSnapshot> {
    let meta = cj.meta();
    let spec = cj.spec.as_ref();
    let annotations = cj.annotations();
    let job_spec = spec.and_then(|s| s.job_template.spec.as_ref());
    Some(CronJobSnapshot {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        schedule: spec.map(|s| s.schedule.clone()).unwrap_or_default(),
        time_zone: spec.and_then(|s| s.time_zone.clone()),
        concurrency_policy: spec
            .and_then(|s| s.concurrency_policy.clone())
            .unwrap_or_else(|| "Allow".into()),
        suspended: spec.and_then(|s| s.suspend).unwrap_or(false),
        channel: annotation(annotations, ANNOTATION_CHANNEL),
        teams_channel: annotation(annotations, ANNOTATION_TEAMS_CHANNEL),
        owner: annotation(annotations, ANNOTATION_OWNER),
        alerts_off: annotation(annotations, ANNOTATION_ALERTS)
            .is_some_and(|v| v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("false")),
        on_hold: match annotation(annotations, ANNOTATION_ON_HOLD).as_deref() {
            Some(v) if v.eq_ignore_ascii_case("terminate") => OnHold::Terminate,
            _ => OnHold::Suspend,
        },
        hold_id: annotation(annotations, ANNOTATION_HOLD_ID),
        suspended_before_hold: annotation(annotations, crate::core::hold::SUSPENDED_BEFORE)
            .map(|v| v == "true"),
        backoff_limit: job_spec.and_then(|s| s.backoff_limit),
        containers: job_spec
            .and_then(|s| s.template.spec.as_ref())
            .map(|p| p.containers.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default(),
        last_successful_time: cj
            .status
            .as_ref()
            .and_then(|s| s.last_successful_time.as_ref())
            .map(time),
        starting_deadline_seconds: spec.and_then(|s| s.starting_deadline_seconds),
        last_schedule_time: cj
            .status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(time),
        created_at: meta.creation_timestamp.as_ref().map(time),
        missed_after: annotations
            .get(crate::core::slots::MISSED_AFTER_ANNOTATION)
            .cloned(),
        max_duration: annotations
            .get(crate::core::slots::MAX_DURATION_ANNOTATION)
            .cloned(),
        failures_only: annotation(annotations, ANNOTATION_ALERTS)
            .is_some_and(|v| v.eq_ignore_ascii_case("failures-only")),
    })
}

/// Lists every object of `apis` page by page (500 at a time), reducing each
/// to its snapshot as it arrives, so no page of full objects outlives its turn.
async fn for_each_listed<K, T>(
    apis: Vec<Api<K>>,
    reduce: fn(&K) -> Option<T>,
    mut each: impl FnMut(T),
) -> Result<(), KubeError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for api in apis {
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list(&params).await?;
            page.items.iter().filter_map(reduce).for_each(&mut each);
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    Ok(())
}

/// The cluster as the bot sees it: a kube-rs client and the watched namespaces.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    /// Empty: all namespaces.
    namespaces: Vec<String>,
}

impl Cluster {
    pub fn new(client: kube::Client, namespaces: Vec<String>) -> Self {
        Cluster { client, namespaces }
    }

    fn apis<K>(&self) -> Vec<Api<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        if self.namespaces.is_empty() {
            vec![Api::all(self.client.clone())]
        } else {
            self.namespaces
                .iter()
                .map(|ns| Api::namespaced(self.client.clone(), ns))
                .collect()
        }
    }

    /// How many `Synced` events mark the end of the first full list.
    pub fn streams_per_watch(&self) -> usize {
        self.namespaces.len().max(1)
    }

    pub fn watch_jobs(&self) -> impl Stream<Item = Watched<JobSnapshot>> + Send + 'static {
        watch(self.apis::<Job>(), job_snapshot)
    }

    pub fn watch_cronjobs(&self) -> impl Stream<Item = Watched<CronJobSnapshot>> + Send + 'static {
        watch(self.apis::<CronJob>(), cronjob_snapshot)
    }

    pub async fn cronjob(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<CronJobSnapshot>, KubeError> {
        let api: Api<CronJob> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.get_opt(name).await?.as_ref().and_then(cronjob_snapshot))
    }

    /// The whole CronJob (a rerun copies its template), `None` when it is gone.
    pub async fn cronjob_object(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<CronJob>, KubeError> {
        let api: Api<CronJob> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.get_opt(name).await?)
    }

    /// Creates the Job; a name clash means an earlier attempt created it.
    pub async fn create_job(&self, job: &Job) -> Result<Created, KubeError> {
        let namespace = job.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Job> = Api::namespaced(self.client.clone(), &namespace);
        match api.create(&PostParams::default(), job).await {
            Ok(_) => Ok(Created::New),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Created::AlreadyExisted),
            Err(e) => Err(e.into()),
        }
    }

    /// Every watched CronJob as it is now (holds plan from this, not from the
    /// watch cache, which may lag a moment behind).
    pub async fn list_cronjobs(&self) -> Result<Vec<CronJobSnapshot>, KubeError> {
        let mut out = Vec::new();
        for_each_listed(self.apis::<CronJob>(), cronjob_snapshot, |cj| out.push(cj)).await?;
        Ok(out)
    }

    /// A merge patch on a CronJob; `Ok(false)` when it no longer exists.
    pub async fn patch_cronjob(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<bool, KubeError> {
        let api: Api<CronJob> = Api::namespaced(self.client.clone(), namespace);
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a Job with its pods (`propagationPolicy: Background`); a Job
    /// already gone counts as deleted.
    pub async fn delete_job(&self, namespace: &str, name: &str) -> Result<(), KubeError> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes exactly the Job with this uid, with its pods (`Background`).
    /// `false`: it is gone already, or the name now belongs to another Job
    /// (the uid precondition's 409); nothing was deleted then.
    pub async fn delete_job_exact(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<bool, KubeError> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Running Jobs by `namespace/cronjob`, in the watched namespaces.
    pub async fn running_jobs_by_cronjob(
        &self,
    ) -> Result<std::collections::HashMap<String, Vec<String>>, KubeError> {
        let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
        for_each_listed(self.apis::<Job>(), job_snapshot, |job| {
            if let (Some(cj), true) = (&job.cronjob, job.is_running()) {
                out.entry(format!("{}/{cj}", job.namespace))
                    .or_default()
                    .push(job.name);
            }
        })
        .await?;
        Ok(out)
    }

    pub async fn job(&self, namespace: &str, name: &str) -> Result<Option<JobSnapshot>, KubeError> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.get_opt(name).await?.as_ref().and_then(job_snapshot))
    }

    /// Names of the running Jobs the CronJob controls (reruns included).
    pub async fn running_jobs(
        &self,
        namespace: &str,
        cronjob: &str,
    ) -> Result<Vec<String>, KubeError> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        let mut running = Vec::new();
        for_each_listed(vec![api], job_snapshot, |j| {
            if j.cronjob.as_deref() == Some(cronjob) && j.is_running() {
                running.push(j.name);
            }
        })
        .await?;
        Ok(running)
    }

    /// Exit code and log tail of the failed Job's failed container, captured
    /// now because history limits delete the Job and its pods soon after.
    pub async fn failure_details(
        &self,
        job: &JobSnapshot,
        max_lines: usize,
        max_bytes: usize,
    ) -> (Option<ContainerExit>, LogTail) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &job.namespace);
        let mut found = match job_pods(&pods, job).await {
            Ok(found) => found,
            Err(why) => return (None, LogTail::Unavailable(why)),
        };
        // An Indexed Job: read a pod of a failed index (any pod if none is left).
        if let Some(indexes) = &job.failed_indexes {
            let of_failed: Vec<Pod> = found
                .iter()
                .filter(|p| completion_index(p).is_some_and(|i| in_indexes(indexes, i)))
                .cloned()
                .collect();
            if failed_container(&of_failed).is_some() {
                found = of_failed;
            }
        }
        let Some(failed) = failed_container(&found) else {
            return match found.is_empty() {
                true => (
                    None,
                    LogTail::Unavailable("the Job's pods are already gone".into()),
                ),
                false => (
                    None,
                    LogTail::Unavailable("no terminated container found".into()),
                ),
            };
        };
        let params = LogParams {
            container: Some(failed.exit.container.clone()),
            tail_lines: Some(max_lines as i64),
            // limitBytes keeps the *first* bytes of the tail, which would hide the
            // error at the end behind one long line: stream instead, keep the end.
            limit_bytes: Some(LOG_READ_LIMIT as i64),
            previous: failed.previous,
            ..LogParams::default()
        };
        let log = match read_tail(&pods, &failed.exit.pod, &params, max_bytes * 4).await {
            Ok(text) => {
                let lines = tail_lines(&text, max_lines);
                let (kept, cut) = tail_bytes(lines, max_bytes);
                LogTail::Captured {
                    container: failed.exit.container.clone(),
                    lines: kept.lines().count(),
                    truncated: cut,
                    text: kept.to_string(),
                }
            }
            Err(e) => LogTail::Unavailable(format!("cannot read logs ({})", short(&e))),
        };
        (Some(failed.exit), log)
    }
}

impl Cluster {
    /// The last log lines of a running Job: its newest pod's first container
    /// (a long-run alert shows what it is doing now).
    pub async fn running_log(
        &self,
        job: &JobSnapshot,
        max_lines: usize,
        max_bytes: usize,
    ) -> LogTail {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &job.namespace);
        let found = match job_pods(&pods, job).await {
            Ok(found) => found,
            Err(why) => return LogTail::Unavailable(why),
        };
        let newest = found
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_none_or(|phase| phase == "Running" || phase == "Pending")
            })
            .max_by_key(|p| p.meta().creation_timestamp.as_ref().map(time))
            .or_else(|| found.last());
        let Some(pod) = newest else {
            return LogTail::Unavailable("the Job has no pods".into());
        };
        let Some(container) = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .map(|c| c.name.clone())
        else {
            return LogTail::Unavailable("the pod has no containers".into());
        };
        let params = LogParams {
            container: Some(container.clone()),
            tail_lines: Some(max_lines as i64),
            limit_bytes: Some(LOG_READ_LIMIT as i64),
            ..LogParams::default()
        };
        match read_tail(&pods, &pod.name_any(), &params, max_bytes * 4).await {
            Ok(text) => {
                let lines = tail_lines(&text, max_lines);
                let (kept, cut) = tail_bytes(lines, max_bytes);
                LogTail::Captured {
                    container,
                    lines: kept.lines().count(),
                    truncated: cut,
                    text: kept.to_string(),
                }
            }
            Err(e) => LogTail::Unavailable(format!("cannot read logs ({})", short(&e))),
        }
    }
}

/// The most log bytes read per alert (a bound on time, not on memory).
const LOG_READ_LIMIT: usize = 8 * 1024 * 1024;

/// Streams a log and keeps only its last `keep` bytes in memory.
async fn read_tail(
    pods: &Api<Pod>,
    pod: &str,
    params: &LogParams,
    keep: usize,
) -> Result<String, kube::Error> {
    use futures::AsyncReadExt;
    let mut stream = std::pin::pin!(pods.log_stream(pod, params).await?);
    let mut tail: Vec<u8> = Vec::with_capacity(2 * keep);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(kube::Error::ReadEvents)?;
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > 2 * keep {
            tail.drain(..tail.len() - keep);
        }
    }
    if tail.len() > keep {
        tail.drain(..tail.len() - keep);
    }
    Ok(String::from_utf8_lossy(&tail).into_owned())
}

fn short(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}", s.code, s.reason),
        other => other.to_string().chars().take(200).collect(),
    }
}

struct FailedContainer {
    exit: ContainerExit,
    /// The exit belongs to the previous instance of a restarted container.
    previous: bool,
}

/// The most recently terminated container with a non-zero exit, else the most
/// recently terminated one at all.
fn failed_container(pods: &[Pod]) -> Option<FailedContainer> {
    let mut best: Option<(bool, Option<DateTime<Utc>>, FailedContainer)> = None;
    for pod in pods {
        let Some(status) = &pod.status else { continue };
        let statuses = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for cs in statuses {
            let current = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
            let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
            let (terminated, previous): (&ContainerStateTerminated, bool) = match (current, last) {
                (Some(t), _) => (t, false),
                (None, Some(t)) => (t, true),
                (None, None) => continue,
            };
            let finished = terminated.finished_at.as_ref().map(time);
            let failed = terminated.exit_code != 0;
            let candidate = FailedContainer {
                exit: ContainerExit {
                    pod: pod.name_any(),
                    container: cs.name.clone(),
                    exit_code: terminated.exit_code,
                    reason: terminated.reason.clone(),
                    finished_at: finished,
                },
                previous,
            };
            let better = match &best {
                None => true,
                Some((b_failed, b_finished, _)) => (failed, finished) > (*b_failed, *b_finished),
            };
            if better {
                best = Some((failed, finished, candidate));
            }
        }
    }
    best.map(|(_, _, c)| c)
}

/// Objects per page of a watch's (re)list. kube-rs asks 500 at a time;
/// 500 whole Jobs (pod templates and all) are ~5 MB decoded at once, at
/// start-up, when the bot's memory peaks.
const WATCH_PAGE: u32 = 100;

fn watch<K, T>(
    apis: Vec<Api<K>>,
    snapshot: fn(&K) -> Option<T>,
) -> impl Stream<Item = Watched<T>> + Send + 'static
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    T: Send + 'static,
{
    let streams = apis.into_iter().map(move |api| {
        watcher(api, watcher::Config::default().page_size(WATCH_PAGE))
            .default_backoff()
            .filter_map(move |event| async move {
                Some(match event {
                    Ok(watcher::Event::Init) => Watched::Restarted,
                    Ok(watcher::Event::InitApply(o)) | Ok(watcher::Event::Apply(o)) => {
                        Watched::Applied(snapshot(&o)?)
                    }
                    Ok(watcher::Event::Delete(o)) => Watched::Deleted(snapshot(&o)?),
                    Ok(watcher::Event::InitDone) => Watched::Synced,
                    Err(e) => Watched::Failed(e.to_string()),
                })
            })
            .boxed()
    });
    futures::stream::select_all(streams)
}

/// The Job's pods, by its controller-uid label; why not, in words.
async fn job_pods(pods: &Api<Pod>, job: &JobSnapshot) -> Result<Vec<Pod>, String> {
    for selector in [
        format!("batch.kubernetes.io/controller-uid={}", job.uid),
        // Clusters before 1.27 only set the legacy label.
        format!("controller-uid={}", job.uid),
    ] {
        match pods.list(&ListParams::default().labels(&selector)).await {
            Ok(list) if !list.items.is_empty() => return Ok(list.items),
            Ok(_) => {}
            Err(e) => return Err(format!("cannot list the Job's pods ({})", short(&e))),
        }
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_snapshot_reads_failed_not_failure_target() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "billing-sync-1", "namespace": "default", "uid": "u1",
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "billing-sync", "uid": "c1", "controller": true}]},
            "spec": {"backoffLimit": 2, "template": {"spec": {"containers": []}}},
            "status": {"failed": 3, "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "lastTransitionTime": "2026-11-23T10:00:00Z"}
            ]}
        }))
        .unwrap();
        let snap = job_snapshot(&job).unwrap();
        assert_eq!(snap.cronjob.as_deref(), Some("billing-sync"));
        assert!(snap.failed.is_none());
        assert_eq!(snap.failed_pods, 3);

        let mut job = job;
        job.status.as_mut().unwrap().conditions.as_mut().unwrap().push(
            serde_json::from_value(json!({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2026-11-23T10:00:05Z"}))
            .unwrap(),
        );
        let failed = job_snapshot(&job).unwrap().failed.unwrap();
        assert_eq!(failed.at.to_rfc3339(), "2026-11-23T10:00:05+00:00");
    }

    /// A Job of CronJob `nightly` as the 1.31–1.35 Job controller writes it.
    fn job_json(spec: serde_json::Value, status: serde_json::Value) -> Job {
        let mut spec_full = json!({"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox:1.36"}]}}});
        spec_full
            .as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "nightly-29923800", "namespace": "batch", "uid": "u1",
                "creationTimestamp": "2026-11-23T10:00:00Z",
                "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": "2026-11-23T11:00:00+01:00"},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly",
                    "uid": "c1", "controller": true, "blockOwnerDeletion": true}]},
            "spec": spec_full,
            "status": status,
        }))
        .unwrap()
    }

    fn cond(kind: &str, reason: &str, message: &str, at: &str) -> serde_json::Value {
        json!({"type": kind, "status": "True", "reason": reason, "message": message,
               "lastProbeTime": at, "lastTransitionTime": at})
    }

    #[test]
    fn indexed_job_with_backoff_limit_per_index_keeps_failed_indexes() {
        let spec = json!({"completionMode": "Indexed", "completions": 6, "parallelism": 3,
                          "backoffLimitPerIndex": 1, "maxFailedIndexes": 5});
        for (reason, message) in [
            ("FailedIndexes", "Job has failed indexes"),
            (
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes",
            ),
        ] {
            let job = job_json(
                spec.clone(),
                json!({"startTime": "2026-11-23T10:00:01Z", "active": 0, "failed": 8, "succeeded": 2,
                       "terminating": 0, "ready": 0, "completedIndexes": "0,2", "failedIndexes": "1,3-5",
                       "uncountedTerminatedPods": {},
                       "conditions": [cond("FailureTarget", reason, message, "2026-11-23T10:09:00Z"),
                                      cond("Failed", reason, message, "2026-11-23T10:09:02Z")]}),
            );
            let snap = job_snapshot(&job).unwrap();
            let failed = snap.failed.expect(reason);
            assert_eq!(
                (failed.reason.as_str(), failed.message.as_str()),
                (reason, message)
            );
            assert_eq!(failed.at.to_rfc3339(), "2026-11-23T10:09:02+00:00");
            assert_eq!(snap.failed_indexes.as_deref(), Some("1,3-5"));
            assert_eq!(snap.failed_pods, 8);
            assert_eq!(snap.complete, None);
        }
        // Before the Failed condition: failed indexes so far, not failed.
        let job = job_json(
            spec,
            json!({"active": 2, "failed": 2, "failedIndexes": "1", "terminating": 0,
                   "conditions": [cond("FailureTarget", "FailedIndexes", "Job has failed indexes", "2026-11-23T10:09:00Z")]}),
        );
        let snap = job_snapshot(&job).unwrap();
        assert!(snap.failed.is_none());
        assert_eq!(snap.failed_indexes.as_deref(), Some("1"));
        // An empty failedIndexes is none.
        let job = job_json(json!({}), json!({"failedIndexes": ""}));
        assert_eq!(job_snapshot(&job).unwrap().failed_indexes, None);
    }

    #[test]
    fn pod_failure_policy_failure_keeps_the_rule_in_the_message() {
        let message = "Container main for pod batch/nightly-29923800-x7k2q failed with exit code 42 matching FailJob rule at index 1";
        let job = job_json(
            json!({"backoffLimit": 6, "podFailurePolicy": {"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}]}}),
            json!({"startTime": "2026-11-23T10:00:01Z", "active": 0, "failed": 1, "terminating": 0,
                   "conditions": [cond("FailureTarget", "PodFailurePolicy", message, "2026-11-23T10:03:00Z"),
                                  cond("Failed", "PodFailurePolicy", message, "2026-11-23T10:03:01Z")]}),
        );
        let failed = job_snapshot(&job).unwrap().failed.unwrap();
        assert_eq!(failed.reason, "PodFailurePolicy");
        assert_eq!(failed.message, message);
    }

    #[test]
    fn jobs_managed_by_another_controller_are_not_judged() {
        let failed = json!({"failed": 3, "active": 0,
            "conditions": [cond("Failed", "BackoffLimitExceeded", "stale", "2026-11-20T10:00:00Z")]});
        let other = job_json(json!({"managedBy": "example.com/other"}), failed.clone());
        let snap = job_snapshot(&other).unwrap();
        assert_eq!(snap.failed, None);
        assert_eq!(snap.complete, None);
        assert_eq!(snap.managed_by.as_deref(), Some("example.com/other"));
        let done = job_json(
            json!({"managedBy": "example.com/other"}),
            json!({"conditions": [cond("Complete", "CompletionsReached", "", "2026-11-20T10:00:00Z")]}),
        );
        assert_eq!(job_snapshot(&done).unwrap().complete, None);
        // The built-in controller named explicitly is judged as usual.
        let builtin = job_json(json!({"managedBy": "kubernetes.io/job-controller"}), failed);
        let snap = job_snapshot(&builtin).unwrap();
        assert_eq!(snap.failed.unwrap().reason, "BackoffLimitExceeded");
        assert_eq!(snap.managed_by, None);
    }

    #[test]
    fn terminating_pods_are_not_failures() {
        // podReplacementPolicy: Failed — a pod being deleted; the replacement waits.
        let job = job_json(
            json!({"podReplacementPolicy": "Failed", "backoffLimit": 2}),
            json!({"startTime": "2026-11-23T10:00:01Z", "active": 0, "failed": 0, "terminating": 1,
                   "ready": 0, "uncountedTerminatedPods": {}}),
        );
        let snap = job_snapshot(&job).unwrap();
        assert_eq!((snap.terminating, snap.failed_pods), (1, 0));
        assert!(snap.failed.is_none() && snap.complete.is_none());
        // Not finished: still counts as running (a replacement pod comes).
        assert!(snap.is_running());
        // Pods terminating after a FailureTarget: not failed until Failed is added.
        let job = job_json(
            json!({"backoffLimit": 0}),
            json!({"active": 0, "failed": 1, "terminating": 2,
                   "conditions": [cond("FailureTarget", "BackoffLimitExceeded", "", "2026-11-23T10:03:00Z")]}),
        );
        let snap = job_snapshot(&job).unwrap();
        assert!(snap.failed.is_none());
        assert_eq!(snap.terminating, 2);
    }

    #[test]
    fn success_criteria_met_is_complete() {
        let job = job_json(
            json!({"completionMode": "Indexed", "completions": 10, "parallelism": 10,
                   "successPolicy": {"rules": [{"succeededIndexes": "0", "succeededCount": 1}]}}),
            json!({"startTime": "2026-11-23T10:00:01Z", "active": 0, "succeeded": 1, "terminating": 9,
                   "completedIndexes": "0",
                   "conditions": [cond("SuccessCriteriaMet", "SuccessPolicy",
                       "Matched rules at index 0", "2026-11-23T10:05:00Z")]}),
        );
        let snap = job_snapshot(&job).unwrap();
        let complete = snap
            .complete
            .clone()
            .expect("SuccessCriteriaMet counts as success");
        assert_eq!(complete.reason, "SuccessPolicy");
        assert!(snap.failed.is_none());
        assert!(!snap.is_running());
        // Complete, once added, is the one kept.
        let mut job = job;
        job.status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .push(
                serde_json::from_value(cond(
                    "Complete",
                    "SuccessPolicy",
                    "Matched rules at index 0",
                    "2026-11-23T10:05:30Z",
                ))
                .unwrap(),
            );
        assert_eq!(
            job_snapshot(&job)
                .unwrap()
                .complete
                .unwrap()
                .at
                .to_rfc3339(),
            "2026-11-23T10:05:30+00:00"
        );
    }

    #[test]
    fn scheduled_for_from_annotation_or_name_none_for_manual() {
        let job = job_json(json!({}), json!({}));
        let want = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(job_snapshot(&job).unwrap().scheduled_for, Some(want));
        let mut by_name = job.clone();
        by_name.metadata.annotations = None;
        assert_eq!(job_snapshot(&by_name).unwrap().scheduled_for, Some(want));
        let mut manual = job;
        manual.metadata.annotations = Some(
            [(
                "cronjob.kubernetes.io/instantiate".to_string(),
                "manual".to_string(),
            )]
            .into(),
        );
        assert_eq!(job_snapshot(&manual).unwrap().scheduled_for, None);
    }

    #[test]
    fn failed_indexes_parse() {
        for (indexes, index, want) in [
            ("1,3-5", 1, true),
            ("1,3-5", 4, true),
            ("1,3-5", 5, true),
            ("1,3-5", 2, false),
            ("1,3-5", 6, false),
            ("", 0, false),
            ("x,2", 2, true),
        ] {
            assert_eq!(in_indexes(indexes, index), want, "{indexes} {index}");
        }
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p",
            "labels": {"batch.kubernetes.io/job-completion-index": "3"}}}))
        .unwrap();
        assert_eq!(completion_index(&pod), Some(3));
    }

    #[test]
    fn non_controller_owner_is_not_a_cronjob_job() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "x", "namespace": "default", "uid": "u1",
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "c", "uid": "c1"}]}
        }))
        .unwrap();
        assert_eq!(job_snapshot(&job).unwrap().cronjob, None);
    }

    #[test]
    fn failed_container_prefers_the_latest_non_zero_exit() {
        let pods: Vec<Pod> = serde_json::from_value(json!([
            {"metadata": {"name": "p1"}, "status": {"containerStatuses": [
                {"name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-11-23T10:00:00Z"}}}]}},
            {"metadata": {"name": "p2"}, "status": {"containerStatuses": [
                {"name": "sidecar", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-11-23T10:09:00Z"}}},
                {"name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 1,
                 "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-11-23T10:05:00Z"}}}]}}
        ]))
        .unwrap();
        let f = failed_container(&pods).unwrap();
        assert_eq!(
            (
                f.exit.pod.as_str(),
                f.exit.container.as_str(),
                f.exit.exit_code
            ),
            ("p2", "main", 137)
        );
        assert!(f.previous);
        assert_eq!(f.exit.reason.as_deref(), Some("OOMKilled"));
    }
}
