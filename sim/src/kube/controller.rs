//! The CronJob, Job and kubelet controllers the world methods play: Jobs
//! spawned from CronJobs, pods started and finished, Jobs failed or completed.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::FakeKube;
use super::fixtures::Failure;
use super::json::{
    name_of, now_rfc3339, ns_of, obj_at, obj_mut, rfc3339, rv_of, set_or_remove, str_at, uid_of,
};
use super::resource::Resource;

fn container_list(pod_or_template_spec: &Value) -> Vec<(String, String)> {
    pod_or_template_spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                c.get("image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

fn push_condition(status: &mut Value, cond: Value) {
    let conds = obj_mut(status)
        .entry("conditions")
        .or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    if let Value::Array(a) = conds {
        a.push(cond);
    }
}

impl FakeKube {
    /// Creates (or updates, keeping status) a CronJob.
    pub fn apply_cronjob(&self, cj: Value) -> Value {
        let ns = str_at(&cj, &["metadata", "namespace"])
            .unwrap_or("default")
            .to_string();
        let name = name_of(&cj).to_string();
        if self.get(Resource::CronJobs, &ns, &name).is_some() {
            self.update(Resource::CronJobs, &ns, &name, |old| {
                let status = old.get("status").cloned();
                *old = cj;
                set_or_remove(old, "status", status);
            })
        } else {
            self.create(Resource::CronJobs, cj)
        }
    }

    /// The CronJob controller's work for one scheduled time: the Job
    /// `<cronjob>-<unix minutes>` (owned by the CronJob), the CronJob's
    /// status, then the Job controller starting one running pod.
    pub fn spawn_job(&self, ns: &str, cronjob: &str, scheduled: DateTime<Utc>) -> Value {
        let cj = self
            .get(Resource::CronJobs, ns, cronjob)
            .unwrap_or_else(|| panic!("spawn_job: no CronJob {ns}/{cronjob}"));
        let name = format!("{cronjob}-{}", scheduled.timestamp().div_euclid(60));
        let template = cj
            .pointer("/spec/jobTemplate")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut annotations = template
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        annotations.insert(
            "batch.kubernetes.io/cronjob-scheduled-timestamp".into(),
            rfc3339(scheduled).into(),
        );
        let mut metadata = json!({
            "name": name,
            "namespace": ns,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": cronjob,
                "uid": uid_of(&cj),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        });
        if let Some(labels) = template
            .pointer("/metadata/labels")
            .filter(|l| l.is_object())
        {
            metadata["labels"] = labels.clone();
        }
        let job = self.create(
            Resource::Jobs,
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": metadata,
                "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
                "status": {},
            }),
        );
        let job_ref = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": name,
            "namespace": ns,
            "uid": uid_of(&job),
            "resourceVersion": rv_of(&job),
        });
        self.update(Resource::CronJobs, ns, cronjob, |c| {
            let status = obj_at(c, "status");
            let active = status.entry("active").or_insert_with(|| json!([]));
            if let Value::Array(a) = active {
                a.push(job_ref);
            } else {
                *active = json!([job_ref]);
            }
            status.insert("lastScheduleTime".into(), rfc3339(scheduled).into());
        });
        self.start_job(&job)
    }

    /// A Job with no owner (as `kubectl create job` makes), plus its running pod.
    pub fn spawn_bare_job(&self, ns: &str, name: &str) -> Value {
        let job = self.create(
            Resource::Jobs,
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "backoffLimit": 2,
                    "template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": "main",
                            "image": "busybox:1.36",
                            "command": ["/bin/sh", "-c"],
                            "args": ["run.sh"],
                        }],
                    }},
                },
                "status": {},
            }),
        );
        self.start_job(&job)
    }

    /// Job controller: one running pod, then `startTime` and `active: 1`.
    fn start_job(&self, job: &Value) -> Value {
        self.start_pod(job);
        let now = now_rfc3339();
        self.update(Resource::Jobs, ns_of(job), name_of(job), |j| {
            let status = obj_at(j, "status");
            status.entry("startTime").or_insert(now.into());
            status.insert("active".into(), 1.into());
            status.insert("ready".into(), 1.into());
            status.insert("terminating".into(), 0.into());
            status.insert("uncountedTerminatedPods".into(), json!({}));
        })
    }

    /// A running pod of `job`, named `<job>-<5 chars>` like the controller's.
    fn start_pod(&self, job: &Value) -> Value {
        let (ns, job_name, job_uid) = (ns_of(job), name_of(job), uid_of(job));
        let template = job
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", job_uid),
            ("batch.kubernetes.io/job-name", job_name),
            ("controller-uid", job_uid),
            ("job-name", job_name),
        ] {
            labels.entry(k).or_insert(v.into());
        }
        let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        obj_mut(&mut spec).insert("nodeName".into(), "fake-node".into());
        let now = now_rfc3339();
        let statuses: Vec<Value> = container_list(&spec)
            .into_iter()
            .map(|(name, image)| {
                json!({
                    "name": name, "image": image, "imageID": "", "ready": true,
                    "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": now}},
                })
            })
            .collect();
        self.create(
            Resource::Pods,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": format!("{job_name}-"),
                    "namespace": ns,
                    "labels": labels,
                    "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or_else(|| json!({})),
                    "ownerReferences": [{
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": job_name,
                        "uid": job_uid,
                        "controller": true,
                        "blockOwnerDeletion": true,
                    }],
                },
                "spec": spec,
                "status": {
                    "phase": "Running",
                    "startTime": now,
                    "hostIP": "10.0.0.10",
                    "podIP": "10.244.0.10",
                    "qosClass": "BestEffort",
                    "conditions": [
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                        {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    ],
                    "containerStatuses": statuses,
                },
            }),
        )
    }

    /// The kubelet ends a pod: the first container exits with `exit`, the
    /// others with 0 (`Completed`).
    fn finish_pod(&self, pod: &Value, phase: &str, exit: (i32, &str), log: Option<&str>) -> Value {
        let (ns, name) = (ns_of(pod).to_string(), name_of(pod).to_string());
        let containers = container_list(pod.get("spec").unwrap_or(&Value::Null));
        if let (Some(log), Some((first, _))) = (log, containers.first()) {
            self.set_log(&ns, &name, first, log);
        }
        let now = now_rfc3339();
        let started = pod
            .pointer("/status/startTime")
            .and_then(Value::as_str)
            .unwrap_or(&now)
            .to_string();
        let statuses: Vec<Value> = containers
            .iter()
            .enumerate()
            .map(|(i, (cname, image))| {
                let (code, reason) = if i == 0 { exit } else { (0, "Completed") };
                json!({
                    "name": cname, "image": image, "imageID": "", "ready": false,
                    "restartCount": 0, "started": false,
                    "state": {"terminated": {
                        "exitCode": code, "reason": reason,
                        "startedAt": started, "finishedAt": now,
                        "containerID": format!("containerd://{name}-{cname}"),
                    }},
                })
            })
            .collect();
        let ready_reason = if phase == "Succeeded" {
            "PodCompleted"
        } else {
            "PodFailed"
        };
        self.update(Resource::Pods, &ns, &name, |p| {
            let status = obj_at(p, "status");
            status.insert("phase".into(), phase.into());
            status.insert("containerStatuses".into(), statuses.into());
            status.insert(
                "conditions".into(),
                json!([
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": started},
                    {"type": "ContainersReady", "status": "False", "reason": ready_reason, "lastTransitionTime": now},
                    {"type": "Ready", "status": "False", "reason": ready_reason, "lastTransitionTime": now},
                ]),
            );
        })
    }

    fn active_pods(&self, job_uid: &str) -> Vec<Value> {
        let mut pods: Vec<Value> = self
            .owned_by(Resource::Pods, job_uid)
            .into_iter()
            .filter(|p| {
                !matches!(
                    str_at(p, &["status", "phase"]),
                    Some("Failed") | Some("Succeeded")
                )
            })
            .collect();
        pods.sort_by_key(|p| rv_of(p).parse::<u64>().unwrap_or(0));
        pods
    }

    /// The CronJob controller forgets a finished Job.
    fn cronjob_forget(&self, job: &Value, succeeded: bool) {
        let owner = job
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|o| o.get("kind").and_then(Value::as_str) == Some("CronJob"))
            .and_then(|o| o.get("name").and_then(Value::as_str))
            .map(str::to_string);
        let Some(cronjob) = owner else { return };
        let ns = ns_of(job);
        if self.get(Resource::CronJobs, ns, &cronjob).is_none() {
            return;
        }
        let uid = uid_of(job).to_string();
        let now = now_rfc3339();
        self.update(Resource::CronJobs, ns, &cronjob, |c| {
            let status = obj_at(c, "status");
            if let Some(Value::Array(a)) = status.get_mut("active") {
                a.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                if a.is_empty() {
                    status.remove("active");
                }
            }
            if succeeded {
                status.insert("lastSuccessfulTime".into(), now.into());
            }
        });
    }

    /// The Job controller failing a Job (Kubernetes >= 1.31): the pods fail
    /// (`failed_pods` of them, each log set), then a MODIFIED with the counts
    /// and `FailureTarget`, then a MODIFIED adding `Failed`; the owning
    /// CronJob drops it from `status.active`. Returns the final Job.
    pub fn fail_job(&self, ns: &str, job: &str, f: Failure) -> Value {
        let j = self
            .get(Resource::Jobs, ns, job)
            .unwrap_or_else(|| panic!("fail_job: no Job {ns}/{job}"));
        let exit = (f.exit_code, f.termination_reason.as_str());
        let mut running = self.active_pods(uid_of(&j));
        if running.is_empty() {
            running.push(self.start_pod(&j));
        }
        let mut failed = 0;
        for pod in &running {
            self.finish_pod(pod, "Failed", exit, Some(&f.log));
            failed += 1;
        }
        while failed < f.failed_pods {
            // A replacement pod, failing the same way.
            let pod = self.start_pod(&j);
            self.finish_pod(&pod, "Failed", exit, Some(&f.log));
            failed += 1;
        }
        let condition = |kind: &str| {
            let now = now_rfc3339();
            json!({
                "type": kind, "status": "True", "reason": f.reason, "message": f.message,
                "lastProbeTime": now, "lastTransitionTime": now,
            })
        };
        let target = condition("FailureTarget");
        self.update(Resource::Jobs, ns, job, |j| {
            let status = obj_at(j, "status");
            let before = status.get("failed").and_then(Value::as_i64).unwrap_or(0);
            status.insert("failed".into(), (before + i64::from(failed)).into());
            status.insert("active".into(), 0.into());
            status.insert("ready".into(), 0.into());
            status.insert("terminating".into(), 0.into());
            status.insert("uncountedTerminatedPods".into(), json!({}));
            push_condition(&mut j["status"], target);
        });
        let done = condition("Failed");
        let job_now = self.update(Resource::Jobs, ns, job, |j| {
            push_condition(&mut j["status"], done)
        });
        self.cronjob_forget(&job_now, false);
        job_now
    }

    /// The Job controller completing a Job: pods succeed (exit 0), then
    /// `SuccessCriteriaMet`, then `Complete` with `completionTime`.
    pub fn complete_job(&self, ns: &str, job: &str) -> Value {
        let j = self
            .get(Resource::Jobs, ns, job)
            .unwrap_or_else(|| panic!("complete_job: no Job {ns}/{job}"));
        let mut running = self.active_pods(uid_of(&j));
        if running.is_empty() {
            running.push(self.start_pod(&j));
        }
        for pod in &running {
            self.finish_pod(pod, "Succeeded", (0, "Completed"), None);
        }
        let condition = |kind: &str| {
            let now = now_rfc3339();
            json!({
                "type": kind, "status": "True", "reason": "CompletionsReached",
                "message": "Reached expected number of succeeded pods",
                "lastProbeTime": now, "lastTransitionTime": now,
            })
        };
        let met = condition("SuccessCriteriaMet");
        self.update(Resource::Jobs, ns, job, |j| {
            let status = obj_at(j, "status");
            status.insert("succeeded".into(), 1.into());
            status.insert("active".into(), 0.into());
            status.insert("ready".into(), 0.into());
            status.insert("terminating".into(), 0.into());
            status.insert("uncountedTerminatedPods".into(), json!({}));
            push_condition(&mut j["status"], met);
        });
        let complete = condition("Complete");
        let job_now = self.update(Resource::Jobs, ns, job, |j| {
            obj_at(j, "status").insert("completionTime".into(), now_rfc3339().into());
            push_condition(&mut j["status"], complete);
        });
        self.cronjob_forget(&job_now, true);
        job_now
    }
}

impl FakeKube {
    /// The Job controller picking up a Job that a client created (a rerun,
    /// `kubectl create job`): its first pod starts running and the Job
    /// becomes active. A Job that already has pods, or has finished, is left
    /// as it is. `None` if there is no such Job.
    pub fn run_job(&self, ns: &str, job: &str) -> Option<Value> {
        let j = self.get(Resource::Jobs, ns, job)?;
        let finished = j
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                matches!(c["type"].as_str(), Some("Complete" | "Failed")) && c["status"] == "True"
            });
        if finished || !self.owned_by(Resource::Pods, uid_of(&j)).is_empty() {
            return Some(j);
        }
        Some(self.start_job(&j))
    }
}
