//! One contract for every `Store`: sled on a temp dir, and `KubeStore` on
//! custom resources in the simulated apiserver (through the real kube-rs
//! client). "Restart" is a new instance on the same data.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use rerun_bot::core::alert::LogTail;
use rerun_bot::core::hold::Operation;
use rerun_bot::core::request::{Event, RerunRequest, State, transition};
use rerun_bot::core::{FailureAlert, ThreadState};
use rerun_bot::store::{AlertRecord, AlertState, AuditEvent, KubeStore, SledStore, Store};
use serde_json::json;

use crate::support::{FakeKube, Resource};

const NS: &str = "rerun-bot";

enum Backend {
    Sled(tempfile::TempDir),
    Kube(FakeKube),
}

impl Backend {
    async fn sled() -> Backend {
        Backend::Sled(tempfile::tempdir().unwrap())
    }

    async fn kube() -> Backend {
        let kube = FakeKube::start().await;
        kube.install_crds(
            rerun_bot::store::crds::all()
                .into_iter()
                .map(|crd| serde_json::to_value(crd).unwrap()),
        );
        Backend::Kube(kube)
    }

    /// A store on this backend's data (drop the previous one first: sled locks its dir).
    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sled(dir) => Arc::new(SledStore::open(dir.path()).unwrap()),
            Backend::Kube(kube) => {
                let client = kube::Client::try_from(kube.client_config()).unwrap();
                Arc::new(KubeStore::open(client, NS).await.expect("KubeStore opens"))
            }
        }
    }
}

/// Runs `$test` against both stores.
macro_rules! contract {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sled() {
                super::$name(super::Backend::sled().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn kubernetes() {
                super::$name(super::Backend::kube().await).await;
            }
        }
    };
}

fn at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

fn alert(uid: &str) -> AlertRecord {
    AlertRecord {
        alert: FailureAlert {
            namespace: "default".into(),
            cronjob: "billing-sync".into(),
            job: format!("billing-sync-{uid}"),
            job_uid: uid.into(),
            owner: None,
            reason: "BackoffLimitExceeded".into(),
            message: "Job has reached the specified backoff limit".into(),
            failed_pods: 3,
            backoff_limit: Some(2),
            started_at: None,
            failed_at: at(),
            schedule: Some("0 3 * * *".into()),
            time_zone: None,
            next_run: None,
            schedule_problem: None,
            concurrency_policy: Some("Forbid".into()),
            suspended: false,
            cronjob_missing: false,
            rerun_request: None,
            exit: None,
            log: LogTail::NotCaptured,
        },
        channel: "C1".into(),
        state: AlertState::Pending,
        created_at: at(),
        status: None,
        number: 0,
        platform: Default::default(),
    }
}

fn request(id: &str) -> RerunRequest {
    serde_json::from_value(json!({
        "id": id, "namespace": "default", "cronjob": "billing-sync",
        "requested_by": "U_ALICE", "requested_at": at(), "expires_at": at() + chrono::Duration::hours(1),
        "reason": "db was down", "ticket": "INC-1",
        "overrides": {"container": null, "args": ["--date=2024-01-01"], "args_mode": "append", "env": []},
        "diff": {"container": "main", "args": null, "env": []}, "source_job": null, "alert": null,
        "template": {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "x"}]}}}},
        "channel": "C1", "thread_ts": null, "card_ts": null, "state": "pending",
        "approved_by": null, "decided_by": null, "decided_at": null, "job": null, "note": null
    }))
    .unwrap()
}

fn operation(id: &str) -> Operation {
    serde_json::from_value(json!({
        "id": id, "kind": "hold", "target": "all", "reason": "upgrade", "by": "U_ADMIN",
        "at": at(), "channel": "C1", "phase": "planned",
        "items": [{"namespace": "default", "name": "etl", "suspended_before": false,
                   "terminate": true, "running": ["etl-1"], "outcome": "planned"}],
    }))
    .unwrap()
}

async fn alerts_are_claimed_once_and_survive_a_restart(b: Backend) {
    let store = b.open().await;
    assert!(
        store
            .insert_alert_if_absent("u1", &alert("u1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_alert_if_absent("u1", &alert("u1"))
            .await
            .unwrap()
    );
    assert!(store.alert_exists("u1").await.unwrap());
    assert!(!store.alert_exists("u2").await.unwrap());
    assert!(
        store
            .insert_alert_if_absent("teams/u1", &alert("u1"))
            .await
            .unwrap()
    );
    assert_eq!(store.pending_alerts().await.unwrap().len(), 2);
    let mut posted = alert("u1");
    posted.state = AlertState::Posted {
        ts: "1.2".into(),
        thread_ts: None,
        channel: Some("C1".into()),
    };
    posted.number = 1;
    store.put_alert("u1", &posted).await.unwrap();
    let pending = store.pending_alerts().await.unwrap();
    assert_eq!(
        pending.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["teams/u1"]
    );
    store.flush().await.unwrap();
    drop(store);
    let store = b.open().await;
    assert_eq!(store.alert("u1").await.unwrap(), Some(posted));
    assert_eq!(store.alert("nope").await.unwrap(), None);
}
contract!(alerts_are_claimed_once_and_survive_a_restart);

async fn eight_racing_claims_of_one_alert_make_one_winner(b: Backend) {
    let store = b.open().await;
    let racers = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .insert_alert_if_absent("u9", &alert("u9"))
                .await
                .unwrap()
        })
    });
    let winners = futures::future::join_all(racers)
        .await
        .into_iter()
        .filter(|w| *w.as_ref().unwrap())
        .count();
    assert_eq!(winners, 1);
}
contract!(eight_racing_claims_of_one_alert_make_one_winner);

async fn threads_are_kept_per_key(b: Backend) {
    let store = b.open().await;
    let thread = ThreadState {
        channel: "C1".into(),
        posted_in: "C1".into(),
        ts: "1.1".into(),
        parent_job_uid: "u1".into(),
        opened_at: at(),
        failures: 1,
    };
    store
        .put_thread("default/billing-sync", &thread)
        .await
        .unwrap();
    let mut more = thread.clone();
    more.failures = 3;
    store
        .put_thread("default/billing-sync", &more)
        .await
        .unwrap();
    store
        .put_thread("teams/default/billing-sync", &thread)
        .await
        .unwrap();
    drop(store);
    let store = b.open().await;
    assert_eq!(
        store.thread("default/billing-sync").await.unwrap(),
        Some(more)
    );
    assert_eq!(
        store.thread("teams/default/billing-sync").await.unwrap(),
        Some(thread)
    );
    assert_eq!(store.thread("default/other").await.unwrap(), None);
}
contract!(threads_are_kept_per_key);

async fn request_transitions_are_compare_and_swap_under_eight_racers(b: Backend) {
    let store = b.open().await;
    let req = request("abc12345");
    assert!(store.insert_request(&req).await.unwrap());
    assert!(!store.insert_request(&req).await.unwrap(), "ids are unique");
    let racers = (0..8).map(|i| {
        let store = store.clone();
        let req = req.clone();
        tokio::spawn(async move {
            let event = Event::Approve {
                by: format!("U_{i}"),
                allowed: true,
                hold_override: false,
            };
            let next = transition(&req, &event, at()).unwrap();
            store.swap_request(&req, &next).await.unwrap()
        })
    });
    let winners = futures::future::join_all(racers)
        .await
        .into_iter()
        .filter(|w| *w.as_ref().unwrap())
        .count();
    assert_eq!(winners, 1, "exactly one approval wins");
    drop(store);
    let store = b.open().await;
    let stored = store.request("abc12345").await.unwrap().unwrap();
    assert_eq!(stored.state, State::Approved);
    // A swap from a stale copy loses.
    let stale = transition(
        &req,
        &Event::Cancel {
            by: "U_ALICE".into(),
        },
        at(),
    )
    .unwrap();
    assert!(!store.swap_request(&req, &stale).await.unwrap());
    assert!(store.insert_request(&request("def67890")).await.unwrap());
    let ids: Vec<String> = store
        .requests()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"abc12345".to_string()) && ids.contains(&"def67890".to_string()));
}
contract!(request_transitions_are_compare_and_swap_under_eight_racers);

async fn operations_are_compare_and_swap(b: Backend) {
    let store = b.open().await;
    let op = operation("h1");
    assert!(store.insert_operation(&op).await.unwrap());
    assert!(!store.insert_operation(&op).await.unwrap());
    let mut next = op.clone();
    next.phase = rerun_bot::core::hold::Phase::Applying;
    assert!(store.swap_operation(&op, &next).await.unwrap());
    assert!(!store.swap_operation(&op, &next).await.unwrap(), "stale");
    drop(store);
    let store = b.open().await;
    assert_eq!(store.operation("h1").await.unwrap(), Some(next));
    assert_eq!(store.operations().await.unwrap().len(), 1);
    assert_eq!(store.operation("h2").await.unwrap(), None);
}
contract!(operations_are_compare_and_swap);

async fn the_audit_trail_is_ordered_paged_and_kept(b: Backend) {
    let store = b.open().await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(
            store
                .append_audit(&AuditEvent {
                    at: Utc::now(),
                    actor: "U_ALICE".into(),
                    action: format!("a{i}"),
                    subject: "default/x".into(),
                    detail: json!({"i": i}),
                    platform: None,
                })
                .await
                .unwrap(),
        );
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "increasing: {seqs:?}");
    drop(store);
    let store = b.open().await;
    let all = store.audit(0, 100).await.unwrap();
    let actions: Vec<_> = all.iter().map(|(_, e)| e.action.as_str()).collect();
    assert_eq!(actions, ["a0", "a1", "a2", "a3", "a4"]);
    assert_eq!(all[2].1.detail, json!({"i": 2}));
    assert_eq!(store.audit(all[3].0, 100).await.unwrap().len(), 2);
    assert_eq!(store.audit(0, 2).await.unwrap().len(), 2);
}
contract!(the_audit_trail_is_ordered_paged_and_kept);

#[tokio::test]
async fn kube_store_records_read_well_in_kubectl_terms_and_missing_crds_are_named() {
    // Without the CRDs: a clear error naming the fix.
    let bare = FakeKube::start().await;
    let client = kube::Client::try_from(bare.client_config()).unwrap();
    let err = KubeStore::open(client, NS).await.err().expect("refused");
    assert!(err.to_string().contains("not installed"), "{err}");
    assert!(err.to_string().contains("rerun-bot crds"), "{err}");

    let b = Backend::kube().await;
    let store = b.open().await;
    let req = request("abc12345");
    store.insert_request(&req).await.unwrap();
    let next = transition(
        &req,
        &Event::Approve {
            by: "U_BOB".into(),
            allowed: true,
            hold_override: false,
        },
        at(),
    )
    .unwrap();
    assert!(store.swap_request(&req, &next).await.unwrap());
    let Backend::Kube(kube) = &b else {
        unreachable!()
    };
    let rr = kube
        .custom_resource("rerun-bot.io", "rerunrequests")
        .expect("served");
    let obj = kube
        .get(rr, NS, "abc12345")
        .expect("a RerunRequest named by the id");
    assert_eq!(obj["spec"]["cronjob"], "default/billing-sync");
    assert_eq!(obj["spec"]["requester"], "U_ALICE");
    assert_eq!(obj["status"]["phase"], "approved");
    assert_eq!(obj["status"]["approver"], "U_BOB");
    assert_eq!(
        obj["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "rerun-bot"
    );
    let _ = Resource::Jobs;
}

#[test]
fn the_committed_crds_are_what_the_binary_prints() {
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/ha/crds.yaml"),
    )
    .unwrap();
    assert!(
        committed == rerun_bot::store::crds::yaml(),
        "manifests/ha/crds.yaml is stale: run `cargo run -- crds > manifests/ha/crds.yaml`"
    );
}

/// The whole bot on `RERUN_BOT_STORE=kubernetes`: alert, four-eyes rerun,
/// restart — one alert, one Job, and the records visible as custom resources.
#[tokio::test]
async fn the_bot_runs_on_custom_resources() {
    use crate::support::tester::CHANNEL;
    use crate::support::{CronJobFixture, Failure, FakeSlack, Tester};
    let Backend::Kube(kube) = Backend::kube().await else {
        unreachable!()
    };
    let slack = FakeSlack::start(crate::support::tester::SIGNING_SECRET).await;
    let mut t = Tester::with_fakes(
        kube,
        slack,
        &["--store", "kubernetes", "--store-namespace", NS],
    )
    .await;
    t.kube
        .apply_cronjob(CronJobFixture::new("billing-sync").build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    let alert = t.slack.next_message().await;
    assert_eq!(alert.channel, CHANNEL);
    t.click("U_ALICE", &alert, "rerun").await;
    let view = t.next_view().await;
    t.submit(
        "U_ALICE",
        &view,
        &[(
            "reason",
            crate::support::slack::ViewValue::Text("db was down".into()),
        )],
    )
    .await;
    let card = t.slack.next_message().await;
    let _requested = t.slack.next_update().await;
    t.click("U_BOB", &card, "approve").await;
    let _approved = t.slack.next_update().await;
    let _alert_approved = t.slack.next_update().await;
    let _created = t.slack.next_message().await;
    let _card_created = t.slack.next_update().await;
    let _alert_created = t.slack.next_update().await;
    let reruns = |t: &Tester| {
        t.kube
            .list(Resource::Jobs, None)
            .into_iter()
            .filter(|j| j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerun-bot")
            .count()
    };
    assert_eq!(reruns(&t), 1);
    let rr = t
        .kube
        .custom_resource("rerun-bot.io", "rerunrequests")
        .unwrap();
    let requests = t.kube.list(rr, Some(NS));
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["status"]["phase"], "created");
    let alerts = t.kube.custom_resource("rerun-bot.io", "jobalerts").unwrap();
    assert_eq!(t.kube.list(alerts, Some(NS)).len(), 1);
    let audit = t
        .kube
        .custom_resource("rerun-bot.io", "auditevents")
        .unwrap();
    assert!(t.kube.list(audit, Some(NS)).len() >= 4);

    t.restart().await;
    t.slack
        .expect_quiet(std::time::Duration::from_millis(500))
        .await;
    assert_eq!(reruns(&t), 1, "nothing twice after a restart");
    t.finish().await;
}
