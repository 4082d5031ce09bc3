//! One contract for every `Store`: sled on a temp dir, and `KubeStore` on
//! custom resources in the simulated apiserver (through the real kube-rs
//! client). "Restart" is a new instance on the same data.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use rerun_bot::chat::Platform;
use rerun_bot::core::alert::LogTail;
use rerun_bot::core::hold::Operation;
use rerun_bot::core::request::{Event, RerunRequest, State, transition};
use rerun_bot::core::{FailureAlert, ThreadState};
use rerun_bot::store::{
    AlertRecord, AlertState, AuditEvent, KubeStore, RecordKind, SledStore, Store, migrate,
};
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
            failed_indexes: None,
            kind: Default::default(),
        },
        channel: "C1".into(),
        state: AlertState::Pending,
        created_at: at(),
        status: None,
        number: 0,
        platform: Default::default(),
        digest: None,
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
        ..Default::default()
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

fn thread_state(ts: &str, failures: u32) -> ThreadState {
    ThreadState {
        channel: "C1".into(),
        posted_in: "C1".into(),
        ts: ts.into(),
        parent_job_uid: "u1".into(),
        opened_at: at(),
        failures,
        ..Default::default()
    }
}

fn posted(uid: &str, platform: Platform, ts: &str) -> AlertRecord {
    let mut record = alert(uid);
    record.platform = platform;
    record.state = AlertState::Posted {
        ts: ts.into(),
        thread_ts: Some("1.1".into()),
        channel: Some("C1".into()),
    };
    record.number = 2;
    record.status = Some("rerun requested".into());
    record
}

fn audit_event(i: u32) -> AuditEvent {
    AuditEvent {
        at: at() + chrono::Duration::seconds(i.into()),
        actor: "U_ALICE".into(),
        action: format!("a{i}"),
        subject: "default/billing-sync".into(),
        detail: json!({"i": i, "why": "db was down"}),
        platform: Some(Platform::Slack),
    }
}

async fn every_alert_and_thread_is_listed_with_its_key(b: Backend) {
    let store = b.open().await;
    assert!(store.alerts().await.unwrap().is_empty());
    assert!(store.threads().await.unwrap().is_empty());
    let mut teams = alert("u1");
    teams.platform = Platform::Teams;
    let mut later = posted("u2", Platform::Slack, "2.2");
    later.created_at = at() + chrono::Duration::minutes(5);
    store
        .insert_alert_if_absent("u1", &alert("u1"))
        .await
        .unwrap();
    store.put_alert("u2", &later).await.unwrap();
    store
        .insert_alert_if_absent("teams/u1", &teams)
        .await
        .unwrap();
    store
        .put_thread("teams/default/billing-sync", &thread_state("t", 1))
        .await
        .unwrap();
    store
        .put_thread("default/billing-sync", &thread_state("s", 2))
        .await
        .unwrap();
    drop(store);
    let store = b.open().await;
    let mut alerts = store.alerts().await.unwrap();
    assert_eq!(alerts.last().unwrap().0, "u2", "oldest first");
    alerts.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        alerts,
        [
            ("teams/u1".to_string(), teams),
            ("u1".to_string(), alert("u1")),
            ("u2".to_string(), later),
        ]
    );
    assert_eq!(
        store.threads().await.unwrap(),
        [
            ("default/billing-sync".to_string(), thread_state("s", 2)),
            (
                "teams/default/billing-sync".to_string(),
                thread_state("t", 1)
            ),
        ]
    );
}
contract!(every_alert_and_thread_is_listed_with_its_key);

async fn audit_events_are_imported_once_under_their_sequence_number(b: Backend) {
    let store = b.open().await;
    assert!(store.import_audit(3, &audit_event(3)).await.unwrap());
    assert!(store.import_audit(1, &audit_event(1)).await.unwrap());
    assert!(
        !store.import_audit(3, &audit_event(9)).await.unwrap(),
        "taken: kept as it was"
    );
    // The store's own numbers never overwrite an imported event.
    let own = store.append_audit(&audit_event(7)).await.unwrap();
    assert!(own != 1 && own != 3);
    drop(store);
    let store = b.open().await;
    let all = store.audit(0, 100).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "in order");
    let imported: Vec<_> = all.iter().filter(|(seq, _)| *seq != own).cloned().collect();
    assert_eq!(imported, [(1, audit_event(1)), (3, audit_event(3))]);
    assert!(all.contains(&(own, audit_event(7))));
    assert_eq!(all.len(), 3);
    let from_2 = all.iter().find(|(seq, _)| *seq >= 2).cloned().unwrap();
    assert_eq!(store.audit(2, 1).await.unwrap(), [from_2]);
}
contract!(audit_events_are_imported_once_under_their_sequence_number);

/// A sled store as a bot that ran for a while leaves it: requests in several
/// states, a hold, alerts pending and posted on both platforms, threads, and
/// five audit events.
async fn used_sled_store(dir: &std::path::Path) -> SledStore {
    let store = SledStore::open(dir).unwrap();
    let approve = Event::Approve {
        by: "U_BOB".into(),
        allowed: true,
        hold_override: false,
    };
    let pending = request("aaaa0001");
    let approved = transition(&request("aaaa0002"), &approve, at()).unwrap();
    let created = transition(
        &approved,
        &Event::Created {
            job: "billing-sync-rerun-x".into(),
        },
        at(),
    )
    .unwrap();
    let mut created = created;
    created.id = "aaaa0003".into();
    let denied = transition(
        &request("aaaa0004"),
        &Event::Deny {
            by: "U_BOB".into(),
            allowed: true,
        },
        at(),
    )
    .unwrap();
    for r in [&pending, &approved, &created, &denied] {
        assert!(store.insert_request(r).await.unwrap());
    }
    let mut hold = operation("h1");
    hold.phase = rerun_bot::core::hold::Phase::Done;
    store.insert_operation(&hold).await.unwrap();
    let mut teams_pending = alert("u2");
    teams_pending.platform = Platform::Teams;
    store
        .insert_alert_if_absent("u2", &alert("u2"))
        .await
        .unwrap();
    store
        .insert_alert_if_absent("teams/u2", &teams_pending)
        .await
        .unwrap();
    store
        .put_alert("u1", &posted("u1", Platform::Slack, "1.2"))
        .await
        .unwrap();
    store
        .put_alert("teams/u1", &posted("u1", Platform::Teams, "1:abc"))
        .await
        .unwrap();
    store
        .put_thread("default/billing-sync", &thread_state("1.1", 2))
        .await
        .unwrap();
    store
        .put_record(
            RecordKind::History,
            "default/billing-sync",
            &serde_json::json!({"runs": [], "last_success": null, "failures_in_a_row": 2}),
        )
        .await
        .unwrap();
    store
        .put_thread("teams/default/billing-sync", &thread_state("1:root", 2))
        .await
        .unwrap();
    for i in 0..5 {
        store.append_audit(&audit_event(i)).await.unwrap();
    }
    store.flush().await.unwrap();
    store
}

const PLURALS: [&str; 6] = [
    "rerunrequests",
    "maintenanceholds",
    "jobalerts",
    "alertthreads",
    "auditevents",
    "botrecords",
];

/// What `kubectl get` would show: every object's name and resourceVersion, per kind.
fn objects(kube: &FakeKube) -> Vec<(String, String, String)> {
    PLURALS
        .iter()
        .flat_map(|plural| {
            let r = kube.custom_resource("rerun-bot.io", plural).unwrap();
            kube.list(r, Some(NS)).into_iter().map(move |o| {
                (
                    plural.to_string(),
                    o["metadata"]["name"].as_str().unwrap().to_string(),
                    o["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
        })
        .collect()
}

/// Every record, in an order both stores agree on.
async fn everything(
    store: &dyn Store,
) -> (
    Vec<RerunRequest>,
    Vec<Operation>,
    Vec<(String, AlertRecord)>,
    Vec<(String, ThreadState)>,
    Vec<(u64, AuditEvent)>,
) {
    let mut requests = store.requests().await.unwrap();
    requests.sort_by(|a, b| a.id.cmp(&b.id));
    let mut alerts = store.alerts().await.unwrap();
    alerts.sort_by(|a, b| a.0.cmp(&b.0));
    (
        requests,
        store.operations().await.unwrap(),
        alerts,
        store.threads().await.unwrap(),
        store.audit(0, 1000).await.unwrap(),
    )
}

fn count(copied: usize, already_there: usize) -> migrate::Count {
    migrate::Count {
        copied,
        already_there,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_a_sled_store_into_custom_resources_once() {
    let dir = tempfile::tempdir().unwrap();
    let sled = used_sled_store(dir.path()).await;
    let b = Backend::kube().await;
    let Backend::Kube(kube) = &b else {
        unreachable!()
    };
    let summary = migrate::migrate(&sled, &*b.open().await).await.unwrap();
    assert_eq!(
        summary,
        migrate::Summary {
            requests: count(4, 0),
            holds: count(1, 0),
            alerts: count(4, 0),
            threads: count(2, 0),
            records: count(1, 0),
            audit: count(5, 0),
        }
    );
    assert_eq!(summary.copied(), 17);
    assert_eq!(
        b.open().await.records(RecordKind::History).await.unwrap(),
        sled.records(RecordKind::History).await.unwrap(),
        "other records copied as they are"
    );

    // A bot on the custom resources (a new instance) reads all of it, equal.
    let store = b.open().await;
    let copied = everything(&*store).await;
    assert_eq!(copied, everything(&sled).await);
    assert_eq!(copied.0.len(), 4);
    assert_eq!(copied.4.len(), 5);
    assert_eq!(
        store.request("aaaa0003").await.unwrap().unwrap().state,
        State::Created
    );
    assert_eq!(
        store.alert("teams/u1").await.unwrap(),
        sled.alert("teams/u1").await.unwrap()
    );
    let pending: Vec<String> = store
        .pending_alerts()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(pending.len(), 2);
    assert!(pending.contains(&"u2".into()) && pending.contains(&"teams/u2".into()));
    assert!(store.alert_exists("u1").await.unwrap());
    assert_eq!(
        store.thread("teams/default/billing-sync").await.unwrap(),
        Some(thread_state("1:root", 2))
    );
    // kubectl's view: phases in status, audit events named by sled's numbers.
    let rr = kube
        .custom_resource("rerun-bot.io", "rerunrequests")
        .unwrap();
    assert_eq!(
        kube.get(rr, NS, "aaaa0004").unwrap()["status"]["phase"],
        "denied"
    );
    let first_seq = copied.4[0].0;
    let ae = kube.custom_resource("rerun-bot.io", "auditevents").unwrap();
    assert!(
        kube.get(ae, NS, &format!("e{first_seq:020}")).is_some(),
        "named e<seq:020>"
    );
    // New events sort after the copied trail.
    let new = store.append_audit(&audit_event(5)).await.unwrap();
    let trail = store.audit(0, 100).await.unwrap();
    assert_eq!(trail.len(), 6);
    assert_eq!(trail.last().unwrap(), &(new, audit_event(5)));

    // Run twice = same result: nothing copied, no object created or written.
    let before = objects(kube);
    assert_eq!(before.len(), 4 + 1 + 4 + 2 + 6 + 1);
    let again = migrate::migrate(&sled, &*b.open().await).await.unwrap();
    assert_eq!(
        again,
        migrate::Summary {
            requests: count(0, 4),
            holds: count(0, 1),
            alerts: count(0, 4),
            threads: count(0, 2),
            records: count(0, 1),
            audit: count(0, 5),
        }
    );
    assert_eq!(again.copied(), 0);
    assert_eq!(objects(kube), before, "same objects, same resourceVersions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_migration_is_finished_by_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let sled = used_sled_store(dir.path()).await;
    let b = Backend::kube().await;
    let to = b.open().await;
    // The first run got this far: two requests, an alert, a thread, two audit events.
    for r in &sled.requests().await.unwrap()[..2] {
        assert!(to.insert_request(r).await.unwrap());
    }
    let (key, record) = sled.alerts().await.unwrap().remove(0);
    to.insert_alert_if_absent(&key, &record).await.unwrap();
    let (key, thread) = sled.threads().await.unwrap().remove(0);
    to.put_thread(&key, &thread).await.unwrap();
    for (seq, event) in &sled.audit(0, 2).await.unwrap() {
        assert!(to.import_audit(*seq, event).await.unwrap());
    }
    // Meanwhile the bot on the custom resources moved a request on: kept.
    let moved = to.request("aaaa0001").await.unwrap().unwrap();
    let cancelled = transition(
        &moved,
        &Event::Cancel {
            by: "U_ALICE".into(),
        },
        at(),
    )
    .unwrap();
    assert!(to.swap_request(&moved, &cancelled).await.unwrap());

    let summary = migrate::migrate(&sled, &*to).await.unwrap();
    assert_eq!(
        summary,
        migrate::Summary {
            requests: count(2, 2),
            holds: count(1, 0),
            alerts: count(3, 1),
            threads: count(1, 1),
            records: count(1, 0),
            audit: count(3, 2),
        }
    );
    let (mut requests, holds, alerts, threads, audit) = everything(&*b.open().await).await;
    let (mut expected, sled_holds, sled_alerts, sled_threads, sled_audit) = everything(&sled).await;
    assert_eq!(requests[0], cancelled, "the newer copy is kept");
    requests.remove(0);
    expected.remove(0);
    assert_eq!(requests, expected);
    assert_eq!(
        (holds, alerts, threads, audit),
        (sled_holds, sled_alerts, sled_threads, sled_audit)
    );
}

// -- `rerun-bot migrate`, the binary, against the simulated apiserver

fn kubeconfig(dir: &std::path::Path, kube: &FakeKube) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: t\n    namespace: {NS}\ncurrent-context: fake\nusers:\n- name: t\n  user:\n    token: t\n",
            kube.url()
        ),
    )
    .unwrap();
    path
}

/// Runs `rerun-bot migrate …`: (exit code, stdout, stderr).
async fn run_migrate(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rerun-bot"))
        .arg("migrate")
        .args(args)
        .env_clear()
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .current_dir(dir)
        .output()
        .await
        .expect("run the binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migrate_command_copies_once_and_names_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let expected = everything(&used_sled_store(&data).await).await; // dropped: unlocked
    let kube = FakeKube::start().await;
    kubeconfig(dir.path(), &kube);
    let args = ["--to", "kubernetes", "--data-dir", data_arg];

    // No CRDs: one line that says how to install them.
    let (code, stdout, stderr) = run_migrate(dir.path(), &args).await;
    assert_ne!(code, 0);
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains("rerun-bot crds | kubectl apply -f -"),
        "{stderr}"
    );

    kube.install_crds(
        rerun_bot::store::crds::all()
            .into_iter()
            .map(|crd| serde_json::to_value(crd).unwrap()),
    );
    // A mistyped data dir is not created empty and "migrated".
    let (code, _, stderr) =
        run_migrate(dir.path(), &["--to", "kubernetes", "--data-dir", "nowhere"]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("holds no sled database"), "{stderr}");
    assert!(!dir.path().join("nowhere").exists());

    // The namespace is the kube context's.
    let (code, stdout, stderr) = run_migrate(dir.path(), &args).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("custom resources in namespace {NS}")),
        "{stdout}"
    );
    let row = |out: &str, kind: &str| -> Vec<String> {
        let line = out.lines().find(|l| l.starts_with(kind)).unwrap();
        line[kind.len()..]
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(row(&stdout, "rerun requests"), ["4", "0"], "{stdout}");
    assert_eq!(row(&stdout, "holds and resumes"), ["1", "0"]);
    assert_eq!(row(&stdout, "alerts"), ["4", "0"]);
    assert_eq!(row(&stdout, "alert threads"), ["2", "0"]);
    assert_eq!(row(&stdout, "audit events"), ["5", "0"]);
    let store = KubeStore::open(kube::Client::try_from(kube.client_config()).unwrap(), NS)
        .await
        .unwrap();
    assert_eq!(everything(&store).await, expected);
    let before = objects(&kube);

    let (code, stdout, stderr) = run_migrate(dir.path(), &args).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(row(&stdout, "rerun requests"), ["0", "4"], "{stdout}");
    assert_eq!(row(&stdout, "audit events"), ["0", "5"]);
    assert!(stdout.contains("nothing new to copy"), "{stdout}");
    assert_eq!(objects(&kube), before);

    // A bot still running on the data dir: stop it first.
    let running = SledStore::open(&data).unwrap();
    let (code, _, stderr) = run_migrate(dir.path(), &args).await;
    assert_ne!(code, 0);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("stop it first"), "{stderr}");
    drop(running);
}

async fn expired_records_are_pruned_and_nothing_else(b: Backend) {
    use rerun_bot::store::Retention;
    let store = b.open().await;
    let long_ago = at() - chrono::Duration::days(400);
    // An old posted alert goes; an old pending one (never posted) stays.
    let mut old_alert = alert("old");
    old_alert.alert.failed_at = long_ago;
    old_alert.state = AlertState::Posted {
        ts: "1.1".into(),
        thread_ts: None,
        channel: Some("C1".into()),
    };
    store
        .insert_alert_if_absent("old", &old_alert)
        .await
        .unwrap();
    let mut old_pending = alert("old-pending");
    old_pending.alert.failed_at = long_ago;
    store
        .insert_alert_if_absent("old-pending", &old_pending)
        .await
        .unwrap();
    store
        .insert_alert_if_absent("new", &alert("new"))
        .await
        .unwrap();
    // Requests: an old finished one goes; an old approved one (not created yet) stays.
    let mut done = request("done0001");
    done.requested_at = long_ago;
    done.state = State::Succeeded;
    store.insert_request(&done).await.unwrap();
    let mut approved = request("appr0001");
    approved.requested_at = long_ago;
    approved.state = State::Approved;
    store.insert_request(&approved).await.unwrap();
    // Holds: an old hold still in force stays; an old ended one goes.
    let mut in_force = operation("inforce");
    in_force.at = long_ago;
    in_force.phase = rerun_bot::core::hold::Phase::Done;
    store.insert_operation(&in_force).await.unwrap();
    let mut ended = in_force.clone();
    ended.id = "ended".into();
    ended.ended = true;
    store.insert_operation(&ended).await.unwrap();
    for (when, action) in [(long_ago, "old"), (Utc::now(), "new")] {
        store
            .append_audit(&AuditEvent {
                at: when,
                actor: "U_ALICE".into(),
                action: action.into(),
                subject: "default/x".into(),
                detail: json!({}),
                platform: None,
            })
            .await
            .unwrap();
    }
    let retention = Retention {
        alerts_before: at() - chrono::Duration::days(2),
        records_before: at() - chrono::Duration::days(180),
    };
    assert_eq!(store.prune(&retention).await.unwrap(), 4);
    assert_eq!(store.alert("old").await.unwrap(), None);
    assert!(store.alert("old-pending").await.unwrap().is_some());
    assert!(store.alert("new").await.unwrap().is_some());
    assert_eq!(store.request("done0001").await.unwrap(), None);
    assert!(store.request("appr0001").await.unwrap().is_some());
    assert!(store.operation("inforce").await.unwrap().is_some());
    assert_eq!(store.operation("ended").await.unwrap(), None);
    let audit: Vec<String> = store
        .audit(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.action)
        .collect();
    assert_eq!(audit, ["new"]);
    assert_eq!(store.prune(&retention).await.unwrap(), 0, "nothing twice");
}
contract!(expired_records_are_pruned_and_nothing_else);

#[tokio::test]
async fn without_rbac_for_the_lease_readyz_says_so_and_nothing_acts() {
    use crate::support::{CronJobFixture, Failure, FakeSlack, Tester};
    let Backend::Kube(kube) = Backend::kube().await else {
        unreachable!()
    };
    kube.fail_next(
        "*",
        "/apis/coordination.k8s.io/v1/namespaces/rerun-bot/leases",
        100_000,
        403,
        None,
    );
    let slack = FakeSlack::start(crate::support::tester::SIGNING_SECRET).await;
    let t = Tester::with_fakes(
        kube,
        slack,
        &["--store", "kubernetes", "--store-namespace", NS],
    )
    .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let ready = loop {
        let r = t.get("/readyz").await;
        if r.status == 503 && r.body.contains("RBAC") || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.contains("manifests/ha/role.yaml"),
        "{}",
        ready.body
    );
    // Nobody leads: a failure is recorded by no one and posted by no one.
    t.kube
        .apply_cronjob(CronJobFixture::new("billing-sync").build());
    t.fail_job("billing-sync", Failure::backoff_limit()).await;
    t.slack
        .expect_quiet(std::time::Duration::from_millis(800))
        .await;
    t.finish().await;
}

/// Custom-resource requests since request number `from`, by method,
/// resource, shape (a list, one object, its status) and, for bot records,
/// kind (`history`, `snooze`, …).
fn custom_resource_requests(
    kube: &FakeKube,
    from: usize,
) -> (usize, std::collections::BTreeMap<String, usize>) {
    let mut by = std::collections::BTreeMap::new();
    let mut total = 0;
    let prefix = format!("/apis/rerun-bot.io/v1alpha1/namespaces/{NS}/");
    for r in kube.requests().iter().skip(from) {
        let Some(rest) = r.path.strip_prefix(&prefix) else {
            continue;
        };
        let mut parts = rest.split('/');
        let plural = parts.next().unwrap_or_default();
        let name = parts.next();
        let shape = match (name, parts.next()) {
            (None, _) => "list",
            (Some(_), None) => "one",
            (Some(_), Some(sub)) => sub,
        };
        let name = name.or_else(|| r.body.as_ref()?["metadata"]["name"].as_str());
        let key = match (plural, name) {
            ("botrecords", Some(n)) => format!(
                "{} {plural} {shape} {}",
                r.method,
                n.split('.').next().unwrap_or_default()
            ),
            _ => format!("{} {plural} {shape}", r.method),
        };
        *by.entry(key).or_default() += 1;
        total += 1;
    }
    (total, by)
}

fn print_requests(
    what: &str,
    (total, by): &(usize, std::collections::BTreeMap<String, usize>),
    per: usize,
) {
    eprintln!("custom-resource requests {what}: {total}");
    for (key, n) in by {
        eprintln!("  {key}: {n} ({:.1} each)", *n as f64 / per as f64);
    }
}

/// What one alert costs the apiserver on `RERUN_BOT_STORE=kubernetes`, in a
/// cluster with old failures (as the bench's): each round trip is
/// milliseconds and load on a real apiserver. The replay of the old failures
/// asks nothing about their alerts (they are past the lookback); then
/// CronJobs fail one at a time. Bounds a bit above today's counts catch a
/// regression.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_alert_costs_few_custom_resource_requests() {
    use crate::support::{CronJobFixture, Failure, FakeSlack, Tester};
    const SINGLES: usize = 10;
    const OLD_CRONJOBS: usize = 50;
    let Backend::Kube(kube) = Backend::kube().await else {
        unreachable!()
    };
    // Five Jobs per old CronJob, two days ago; every fifth failed (so every
    // fifth CronJob has five failures, the rest are running).
    let long_ago = Utc::now() - chrono::Duration::days(2);
    for i in 0..OLD_CRONJOBS {
        kube.apply_cronjob(CronJobFixture::new(&format!("cron-{i}")).build());
    }
    for i in 0..OLD_CRONJOBS * 5 {
        let job = kube.spawn_job(
            "default",
            &format!("cron-{}", i % OLD_CRONJOBS),
            long_ago - chrono::Duration::minutes(i as i64),
        );
        if i % 5 == 0 {
            let name = job["metadata"]["name"].as_str().unwrap().to_string();
            kube.update(Resource::Jobs, "default", &name, |j| {
                j["status"]["active"] = json!(0);
                j["status"]["conditions"] = json!([{"type": "Failed", "status": "True",
                    "reason": "BackoffLimitExceeded", "lastTransitionTime": long_ago.to_rfc3339()}]);
            });
        }
    }
    let start = kube.requests().len();
    let slack = FakeSlack::start(crate::support::tester::SIGNING_SECRET).await;
    let t = Tester::with_fakes(
        kube,
        slack,
        &[
            "--store",
            "kubernetes",
            "--store-namespace",
            NS,
            // One alert per failure (the bench's setting), not a storm digest.
            "--storm-threshold",
            "0",
            "--chat-pacing",
            "off",
        ],
    )
    .await;
    let names: Vec<String> = (0..SINGLES).map(|i| format!("single-{i}")).collect();
    for name in &names {
        t.kube.apply_cronjob(CronJobFixture::new(name).build());
    }
    // The replay's histories are written (ten CronJobs with old failures).
    let histories = t
        .kube
        .custom_resource("rerun-bot.io", "botrecords")
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while t.kube.list(histories, Some(NS)).len() < OLD_CRONJOBS / 5 {
        assert!(tokio::time::Instant::now() < deadline, "histories written");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let replay = custom_resource_requests(&t.kube, start);
    print_requests("of the start and replay", &replay, 1);
    let old_reads = replay.1.get("GET jobalerts one").copied().unwrap_or(0);
    assert_eq!(
        old_reads, 0,
        "failures past the lookback read no alert: {:#?}",
        replay.1
    );

    let from = t.kube.requests().len();
    for name in &names {
        t.fail_job(name, Failure::backoff_limit()).await;
        let alert = t.slack.next_message().await;
        assert!(alert.text.contains(name.as_str()), "{}", alert.text);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // What the last alert still writes (its audit entry, the history).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let singles = custom_resource_requests(&t.kube, from);
    print_requests(&format!("of {SINGLES} single alerts"), &singles, SINGLES);
    assert!(
        singles.0 <= 18 * SINGLES,
        "{} custom-resource requests for {SINGLES} alerts: {:#?}",
        singles.0,
        singles.1
    );
    t.finish().await;
}
