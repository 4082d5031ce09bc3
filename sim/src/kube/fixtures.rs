//! Test fixtures: a CronJob builder and the ways a Job fails.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Builds a batch/v1 CronJob.
#[derive(Clone, Debug)]
pub struct CronJobFixture {
    name: String,
    namespace: String,
    schedule: String,
    time_zone: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    extra_containers: Vec<(String, String)>,
    backoff_limit: i32,
    concurrency_policy: String,
    suspend: bool,
    annotations: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

impl CronJobFixture {
    pub fn new(name: &str) -> Self {
        CronJobFixture {
            name: name.to_string(),
            namespace: "default".to_string(),
            schedule: "0 3 * * *".to_string(),
            time_zone: None,
            args: vec!["run.sh".to_string()],
            env: Vec::new(),
            extra_containers: Vec::new(),
            backoff_limit: 2,
            concurrency_policy: "Allow".to_string(),
            suspend: false,
            annotations: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }

    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = ns.to_string();
        self
    }

    pub fn schedule(mut self, s: &str) -> Self {
        self.schedule = s.to_string();
        self
    }

    pub fn time_zone(mut self, tz: &str) -> Self {
        self.time_zone = Some(tz.to_string());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// An environment variable of the main container.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// Adds another container after `main`.
    pub fn container(mut self, name: &str, image: &str) -> Self {
        self.extra_containers
            .push((name.to_string(), image.to_string()));
        self
    }

    pub fn backoff_limit(mut self, n: i32) -> Self {
        self.backoff_limit = n;
        self
    }

    pub fn concurrency_policy(mut self, p: &str) -> Self {
        self.concurrency_policy = p.to_string();
        self
    }

    pub fn suspended(mut self) -> Self {
        self.suspend = true;
        self
    }

    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.to_string(), v.to_string());
        self
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.to_string(), v.to_string());
        self
    }

    pub fn owner(self, who: &str) -> Self {
        self.annotation("rerun-bot.io/owner", who)
    }

    pub fn channel(self, c: &str) -> Self {
        self.annotation("rerun-bot.io/channel", c)
    }

    pub fn alerts_off(self) -> Self {
        self.annotation("rerun-bot.io/alerts", "off")
    }

    pub fn terminate_on_hold(self) -> Self {
        self.annotation("rerun-bot.io/on-hold", "terminate")
    }

    pub fn build(self) -> Value {
        let mut main = json!({
            "name": "main",
            "image": "busybox:1.36",
            "command": ["/bin/sh", "-c"],
            "args": self.args,
        });
        if !self.env.is_empty() {
            main["env"] = self
                .env
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
        }
        let mut containers = vec![main];
        containers.extend(
            self.extra_containers
                .iter()
                .map(|(n, i)| json!({"name": n, "image": i})),
        );
        let mut spec = json!({
            "schedule": self.schedule,
            "concurrencyPolicy": self.concurrency_policy,
            "suspend": self.suspend,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {
                "metadata": {},
                "spec": {
                    "backoffLimit": self.backoff_limit,
                    "template": {
                        "metadata": {},
                        "spec": {"restartPolicy": "Never", "containers": containers},
                    },
                },
            },
        });
        if let Some(tz) = self.time_zone {
            spec["timeZone"] = tz.into();
        }
        json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": self.labels,
                "annotations": self.annotations,
            },
            "spec": spec,
        })
    }
}

/// How [`FakeKube::fail_job`](super::FakeKube::fail_job) fails a Job.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Condition reason: `BackoffLimitExceeded`, `DeadlineExceeded`, …
    pub reason: String,
    pub message: String,
    /// Exit code of the failing (first) container.
    pub exit_code: i32,
    /// Container termination reason: `Error`, `OOMKilled`, …
    pub termination_reason: String,
    pub log: String,
    pub failed_pods: i32,
}

impl Failure {
    /// Three failed attempts (backoffLimit 2), exit 1.
    pub fn backoff_limit() -> Self {
        Failure {
            reason: "BackoffLimitExceeded".into(),
            message: "Job has reached the specified backoff limit".into(),
            exit_code: 1,
            termination_reason: "Error".into(),
            log: "starting run.sh\nconnecting to db\nERROR: job failed\n".into(),
            failed_pods: 3,
        }
    }

    /// `activeDeadlineSeconds` ran out: the running pod is killed (137).
    pub fn deadline_exceeded() -> Self {
        Failure {
            reason: "DeadlineExceeded".into(),
            message: "Job was active longer than specified deadline".into(),
            exit_code: 137,
            termination_reason: "Error".into(),
            log: "starting run.sh\nprocessing batch 1 of 40\nprocessing batch 2 of 40\n".into(),
            failed_pods: 1,
        }
    }

    /// Three attempts killed by the OOM killer (137, `OOMKilled`).
    pub fn oom_killed() -> Self {
        Failure {
            reason: "BackoffLimitExceeded".into(),
            message: "Job has reached the specified backoff limit".into(),
            exit_code: 137,
            termination_reason: "OOMKilled".into(),
            log: "starting run.sh\nloading 2.1 GB into memory\n".into(),
            failed_pods: 3,
        }
    }

    pub fn log(mut self, s: impl Into<String>) -> Self {
        self.log = s.into();
        self
    }
}
