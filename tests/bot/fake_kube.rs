//! The fake apiserver, driven by the real kube-rs client and watcher.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::support::kube::{CronJobFixture, Failure, FakeKube, Resource};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

const WAIT: Duration = Duration::from_secs(5);

fn client(fake: &FakeKube) -> kube::Client {
    kube::Client::try_from(fake.client_config()).expect("kube client")
}

fn job(name: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox:1.36"}],
        }}},
    }))
    .expect("job JSON")
}

fn labelled_job(name: &str, ns: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox:1.36"}],
        }}},
    })
}

fn api_code(r: Result<impl std::fmt::Debug, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn name(o: &impl kube::ResourceExt) -> String {
    o.name_any()
}

/// Runs a watcher on all Jobs; events go to the channel (errors are skipped:
/// the watcher recovers from them by itself).
fn watch_jobs(fake: &FakeKube) -> UnboundedReceiver<watcher::Event<Job>> {
    let api: Api<Job> = Api::all(client(fake));
    let (tx, rx) = unbounded_channel();
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = events.next().await {
            if let Ok(ev) = ev
                && tx.send(ev).is_err()
            {
                break;
            }
        }
    });
    rx
}

async fn next_event<F>(
    rx: &mut UnboundedReceiver<watcher::Event<Job>>,
    what: &str,
    mut f: F,
) -> watcher::Event<Job>
where
    F: FnMut(&watcher::Event<Job>) -> bool,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if f(&ev) => return ev,
            Ok(Some(_)) => {}
            Ok(None) => panic!("watcher ended while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

fn applied(name: &str) -> impl FnMut(&watcher::Event<Job>) -> bool + '_ {
    move |ev| matches!(ev, watcher::Event::Apply(j) | watcher::Event::InitApply(j) if j.metadata.name.as_deref() == Some(name))
}

async fn synced(rx: &mut UnboundedReceiver<watcher::Event<Job>>) {
    next_event(rx, "InitDone", |ev| matches!(ev, watcher::Event::InitDone)).await;
}

fn watch_requests(fake: &FakeKube) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.path == "/apis/batch/v1/jobs" && r.query.contains("watch=true"))
        .count()
}

#[tokio::test]
async fn create_get_list_and_conflicts() {
    let fake = FakeKube::start().await;
    let jobs: Api<Job> = Api::default_namespaced(client(&fake));

    let created = jobs
        .create(&PostParams::default(), &job("alpha"))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert!(
        meta.uid.as_deref().is_some_and(|u| u.len() == 36),
        "{meta:?}"
    );
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert_eq!(
        meta.resource_version.as_deref(),
        Some(fake.resource_version().to_string().as_str())
    );
    // The apiserver's Job defaulting.
    let spec = created.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(6));
    let uid = meta.uid.clone().unwrap();
    let selector = spec
        .selector
        .as_ref()
        .unwrap()
        .match_labels
        .as_ref()
        .unwrap();
    assert_eq!(
        selector.get("batch.kubernetes.io/controller-uid"),
        Some(&uid)
    );

    let got = jobs.get("alpha").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(
        fake.get(Resource::Jobs, "default", "alpha").unwrap()["metadata"]["uid"],
        json!(uid)
    );

    assert_eq!(
        api_code(jobs.create(&PostParams::default(), &job("alpha")).await),
        (409, "AlreadyExists".into())
    );
    assert_eq!(api_code(jobs.get("nope").await), (404, "NotFound".into()));
    assert!(jobs.get_opt("nope").await.unwrap().is_none());
    // A name the apiserver refuses (Job names become label values: <= 63).
    let long = "x".repeat(64);
    assert_eq!(
        api_code(jobs.create(&PostParams::default(), &job(&long)).await).0,
        422
    );

    // World objects are visible to clients; lists are ordered by name.
    fake.create(Resource::Jobs, labelled_job("beta", "default", json!({})));
    let list = jobs.list(&ListParams::default()).await.unwrap();
    let names: Vec<String> = list.items.iter().map(name).collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(
        list.metadata.resource_version,
        Some(fake.resource_version().to_string())
    );

    // Namespaces appear implicitly; unknown paths are Status 404.
    fake.create(Resource::Jobs, labelled_job("gamma", "team-a", json!({})));
    assert!(fake.get(Resource::Namespaces, "", "team-a").is_some());
    let all: Api<Job> = Api::all(client(&fake));
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );
    let version = client(&fake).apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
    let nothing: Api<CronJob> = Api::namespaced(client(&fake), "default");
    assert_eq!(api_code(nothing.get("absent").await).0, 404);
}

#[tokio::test]
async fn merge_patch_replace_and_status_rules() {
    let fake = FakeKube::start().await;
    let jobs: Api<Job> = Api::default_namespaced(client(&fake));
    let created = jobs
        .create(&PostParams::default(), &job("p"))
        .await
        .unwrap();
    let rv0: u64 = created
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();

    let patched = jobs
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "billing"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .get("team")
            .map(String::as_str),
        Some("billing")
    );
    let rv1: u64 = patched
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv1 > rv0);
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );

    // null deletes; strategic merge is accepted as a merge patch.
    let patched = jobs
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"team": null}}})),
        )
        .await
        .unwrap();
    assert!(
        !patched
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("team")
    );

    // A stale resourceVersion is a conflict, for patch and replace.
    let stale = json!({"metadata": {"resourceVersion": rv0.to_string(), "labels": {"x": "1"}}});
    assert_eq!(
        api_code(
            jobs.patch("p", &PatchParams::default(), &Patch::Merge(stale))
                .await
        ),
        (409, "Conflict".into())
    );
    let mut old = created.clone();
    old.metadata.labels = Some([("x".to_string(), "1".to_string())].into());
    assert_eq!(
        api_code(jobs.replace("p", &PostParams::default(), &old).await).0,
        409
    );
    let mut current = jobs.get("p").await.unwrap();
    current.metadata.labels = Some([("x".to_string(), "2".to_string())].into());
    let replaced = jobs
        .replace("p", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(
        replaced
            .metadata
            .labels
            .unwrap()
            .get("x")
            .map(String::as_str),
        Some("2")
    );

    // Status only changes through the status subresource.
    let ignored = jobs
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"failed": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(ignored.status.and_then(|s| s.failed), None);
    let set = jobs
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"failed": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(set.status.and_then(|s| s.failed), Some(3));

    // A no-op patch does not bump the version.
    let before = fake.resource_version();
    jobs.patch(
        "p",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "2"}}})),
    )
    .await
    .unwrap();
    assert_eq!(fake.resource_version(), before);

    assert_eq!(
        api_code(
            jobs.patch("absent", &PatchParams::default(), &Patch::Merge(json!({})))
                .await
        )
        .0,
        404
    );
    let patch = fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
}

#[tokio::test]
async fn delete_propagation() {
    let fake = FakeKube::start().await;
    let jobs: Api<Job> = Api::default_namespaced(client(&fake));
    let pods: Api<Pod> = Api::default_namespaced(client(&fake));

    let cascaded = fake.spawn_bare_job("default", "cascaded");
    let uid = cascaded["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(fake.owned_by(Resource::Pods, &uid).len(), 1);
    let deleted = jobs
        .delete("cascaded", &DeleteParams::background())
        .await
        .unwrap();
    assert!(
        deleted
            .left()
            .is_some_and(|j| j.metadata.uid.as_deref() == Some(uid.as_str()))
    );
    assert!(fake.get(Resource::Jobs, "default", "cascaded").is_none());
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "pods deleted with the Job"
    );

    // No policy: batch/v1 Jobs orphan their pods (ownerReference removed).
    fake.spawn_bare_job("default", "orphaning");
    jobs.delete("orphaning", &DeleteParams::default())
        .await
        .unwrap();
    let left = pods.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(left.len(), 1);
    assert!(
        left[0].metadata.owner_references.is_none(),
        "{:?}",
        left[0].metadata
    );

    // Foreground through a CronJob: CronJob → Job → pod.
    fake.apply_cronjob(CronJobFixture::new("nightly").build());
    let spawned = fake.spawn_job("default", "nightly", Utc::now());
    let pod_count = pods.list(&ListParams::default()).await.unwrap().items.len();
    let cronjobs: Api<CronJob> = Api::default_namespaced(client(&fake));
    cronjobs
        .delete("nightly", &DeleteParams::foreground())
        .await
        .unwrap();
    assert!(
        fake.get(
            Resource::Jobs,
            "default",
            spawned["metadata"]["name"].as_str().unwrap()
        )
        .is_none()
    );
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        pod_count - 1
    );

    // Preconditions and missing objects.
    fake.spawn_bare_job("default", "guarded");
    let dp = DeleteParams::background().preconditions(kube::api::Preconditions {
        uid: Some("not-the-uid".into()),
        resource_version: None,
    });
    assert_eq!(
        api_code(jobs.delete("guarded", &dp).await),
        (409, "Conflict".into())
    );
    assert_eq!(
        api_code(jobs.delete("absent", &DeleteParams::default()).await).0,
        404
    );
    let body = fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "DELETE")
        .unwrap()
        .body;
    assert!(body.is_some(), "kube-rs sends DeleteOptions as a body");
}

#[tokio::test]
async fn label_and_field_selectors() {
    let fake = FakeKube::start().await;
    fake.create(
        Resource::Jobs,
        labelled_job("a1", "default", json!({"team": "a", "tier": "x"})),
    );
    fake.create(
        Resource::Jobs,
        labelled_job("a2", "default", json!({"team": "a"})),
    );
    fake.create(
        Resource::Jobs,
        labelled_job("b1", "default", json!({"team": "b"})),
    );
    fake.create(
        Resource::Jobs,
        labelled_job("none", "default", json!({"other": "1"})),
    );
    let jobs: Api<Job> = Api::default_namespaced(client(&fake));
    let names = |sel: &'static str| {
        let jobs = jobs.clone();
        async move {
            let items = jobs
                .list(&ListParams::default().labels(sel))
                .await
                .unwrap()
                .items;
            items.iter().map(name).collect::<Vec<_>>().join(",")
        }
    };
    assert_eq!(names("team=a").await, "a1,a2");
    assert_eq!(names("team==b").await, "b1");
    assert_eq!(names("team!=a").await, "b1,none");
    assert_eq!(names("team").await, "a1,a2,b1");
    assert_eq!(names("!team").await, "none");
    assert_eq!(names("team in (a,b)").await, "a1,a2,b1");
    assert_eq!(names("team notin (a)").await, "b1,none");
    assert_eq!(names("team=a,tier=x").await, "a1");
    let fields = jobs
        .list(&ListParams::default().fields("metadata.name=b1"))
        .await
        .unwrap()
        .items;
    assert_eq!(fields.iter().map(name).collect::<Vec<_>>(), ["b1"]);
    let fields = jobs
        .list(&ListParams::default().fields("metadata.name!=b1,metadata.namespace=default"))
        .await
        .unwrap()
        .items;
    assert_eq!(fields.len(), 3);
    assert_eq!(
        api_code(jobs.list(&ListParams::default().labels("team in (a")).await).0,
        400
    );
    assert_eq!(
        api_code(
            jobs.list(&ListParams::default().fields("spec.parallelism=1"))
                .await
        )
        .0,
        400
    );
}

#[tokio::test]
async fn pagination_with_limit_and_continue() {
    let fake = FakeKube::start().await;
    for i in 0..5 {
        fake.create(
            Resource::Jobs,
            labelled_job(&format!("job-{i}"), "paging", json!({})),
        );
    }
    fake.create(
        Resource::Jobs,
        labelled_job("elsewhere", "other", json!({})),
    );
    let jobs: Api<Job> = Api::namespaced(client(&fake), "paging");
    let mut params = ListParams::default().limit(2);
    let mut pages = Vec::new();
    let mut seen = Vec::new();
    loop {
        let page = jobs.list(&params).await.unwrap();
        pages.push(page.items.len());
        seen.extend(page.items.iter().map(name));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(seen, ["job-0", "job-1", "job-2", "job-3", "job-4"]);
    let queries: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/apis/batch/v1/namespaces/paging/jobs")
        .map(|r| r.query)
        .collect();
    assert_eq!(queries.len(), 3);
    // kube-rs's query strings start with `&` (`?&limit=2`).
    assert!(
        queries[0] == "&limit=2" && queries[1].starts_with("&limit=2&continue="),
        "{queries:?}"
    );
    assert_eq!(
        api_code(jobs.list(&ListParams::default().continue_token("zz")).await).0,
        400
    );
}

#[tokio::test]
async fn watcher_sees_changes_and_survives_dropped_watches() {
    let fake = FakeKube::start().await;
    fake.create(Resource::Jobs, labelled_job("before", "default", json!({})));
    let mut rx = watch_jobs(&fake);
    next_event(&mut rx, "initial list", applied("before")).await;
    synced(&mut rx).await;

    fake.create(Resource::Jobs, labelled_job("added", "default", json!({})));
    next_event(&mut rx, "ADDED", applied("added")).await;
    fake.update(Resource::Jobs, "default", "added", |j| {
        j["metadata"]["labels"]["touched"] = json!("yes")
    });
    next_event(&mut rx, "MODIFIED", |ev| {
        matches!(ev, watcher::Event::Apply(j) if j.metadata.labels.as_ref().is_some_and(|l| l.contains_key("touched")))
    })
    .await;
    let watches = watch_requests(&fake);
    assert_eq!(watches, 1);
    let watch = fake
        .requests()
        .into_iter()
        .find(|r| r.query.contains("watch=true"))
        .unwrap();
    assert!(
        watch.query.contains("allowWatchBookmarks=true"),
        "{}",
        watch.query
    );

    fake.drop_watches();
    fake.create(
        Resource::Jobs,
        labelled_job("after-drop", "default", json!({})),
    );
    let ev = next_event(&mut rx, "an event after the drop", applied("after-drop")).await;
    assert!(
        matches!(ev, watcher::Event::Apply(_)),
        "resumed, not relisted: {ev:?}"
    );
    assert!(watch_requests(&fake) > watches, "the watcher reconnected");
    fake.delete(Resource::Jobs, "default", "before");
    next_event(
        &mut rx,
        "DELETED",
        |ev| matches!(ev, watcher::Event::Delete(j) if name(j) == "before"),
    )
    .await;
}

#[tokio::test]
async fn watcher_relists_after_compaction() {
    let fake = FakeKube::start().await;
    let mut rx = watch_jobs(&fake);
    synced(&mut rx).await;
    fake.create(Resource::Jobs, labelled_job("one", "default", json!({})));
    next_event(&mut rx, "one", applied("one")).await;
    let lists = fake.count_requests("GET", "/apis/batch/v1/jobs") - watch_requests(&fake);

    fake.compact();
    fake.drop_watches();
    fake.create(Resource::Jobs, labelled_job("two", "default", json!({})));
    next_event(&mut rx, "Init (relist)", |ev| {
        matches!(ev, watcher::Event::Init)
    })
    .await;
    next_event(
        &mut rx,
        "two in the relist",
        |ev| matches!(ev, watcher::Event::InitApply(j) if name(j) == "two"),
    )
    .await;
    synced(&mut rx).await;
    assert!(fake.count_requests("GET", "/apis/batch/v1/jobs") - watch_requests(&fake) > lists);

    fake.create(Resource::Jobs, labelled_job("three", "default", json!({})));
    next_event(
        &mut rx,
        "three",
        |ev| matches!(ev, watcher::Event::Apply(j) if name(j) == "three"),
    )
    .await;
}

#[tokio::test]
async fn raw_watch_expiry_bookmarks_and_timeout() {
    let fake = FakeKube::start().await;
    fake.set_history_limit(3);
    fake.set_bookmark_interval(Duration::from_millis(100));
    let jobs: Api<Job> = Api::default_namespaced(client(&fake));
    let start = fake.resource_version();
    for i in 0..5 {
        fake.create(
            Resource::Jobs,
            labelled_job(&format!("j{i}"), "default", json!({})),
        );
    }
    let mut expired = jobs
        .watch(&WatchParams::default(), &start.to_string())
        .await
        .unwrap()
        .boxed();
    match expired.next().await {
        Some(Ok(WatchEvent::Error(e))) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected 410, got {other:?}"),
    }
    assert!(expired.next().await.is_none(), "the stream ends after 410");

    // Within the history: replay, then bookmarks while idle.
    let recent = fake.resource_version() - 1;
    let params = WatchParams::default().timeout(2);
    let mut stream = jobs
        .watch(&params, &recent.to_string())
        .await
        .unwrap()
        .boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Added(j))) => assert_eq!(name(&j), "j4"),
        other => panic!("expected ADDED j4, got {other:?}"),
    }
    match tokio::time::timeout(WAIT, stream.next()).await.unwrap() {
        Some(Ok(WatchEvent::Bookmark(b))) => {
            assert_eq!(
                b.metadata.resource_version,
                fake.resource_version().to_string()
            )
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }
    // "0": synthetic ADDED for everything, filtered by label selector.
    fake.update(Resource::Jobs, "default", "j2", |j| {
        j["metadata"]["labels"]["pick"] = json!("me")
    });
    let mut from_now = jobs
        .watch(&WatchParams::default().labels("pick=me").timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    match from_now.next().await {
        Some(Ok(WatchEvent::Added(j))) => assert_eq!(name(&j), "j2"),
        other => panic!("expected ADDED j2, got {other:?}"),
    }
    // timeoutSeconds=1 closes the stream (bookmarks until then).
    let t = tokio::time::Instant::now();
    loop {
        match tokio::time::timeout(WAIT, from_now.next())
            .await
            .expect("closed by timeoutSeconds")
        {
            None => break,
            Some(Ok(WatchEvent::Bookmark(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn injected_faults() {
    let fake = FakeKube::start().await;
    let jobs: Api<Job> = Api::default_namespaced(client(&fake));
    fake.fail_next(
        "GET",
        "/apis/batch/v1/namespaces/default/jobs",
        1,
        500,
        None,
    );
    assert_eq!(
        api_code(jobs.list(&ListParams::default()).await),
        (500, "InternalError".into())
    );
    jobs.list(&ListParams::default()).await.unwrap();

    // kube-rs retries 429/503/504 by itself.
    let before = fake.count_requests("GET", "/apis/batch/v1/namespaces/default/jobs");
    fake.fail_next(
        "GET",
        "/apis/batch/v1/namespaces/default/jobs",
        1,
        429,
        None,
    );
    jobs.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        fake.count_requests("GET", "/apis/batch/v1/namespaces/default/jobs"),
        before + 2
    );

    // Retry-After on the wire.
    fake.fail_next("*", "/api/v1/pods", 1, 429, Some(7));
    let raw = raw_get(&fake, "/api/v1/pods").await;
    assert!(raw.starts_with("HTTP/1.1 429"), "{raw}");
    assert!(raw.to_ascii_lowercase().contains("retry-after: 7"), "{raw}");
    assert!(raw.contains("\"reason\":\"TooManyRequests\""), "{raw}");

    fake.set_latency(Duration::from_millis(150));
    let t = tokio::time::Instant::now();
    jobs.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
}

async fn raw_get(fake: &FakeKube, path: &str) -> String {
    let addr = fake.url().trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn pod_logs_tail_and_limit() {
    let fake = FakeKube::start().await;
    let job = fake.spawn_bare_job("default", "logged");
    let log: String = (1..=10).map(|i| format!("line {i}\n")).collect();
    fake.fail_job(
        "default",
        "logged",
        Failure::backoff_limit().log(log.clone()),
    );
    let uid = job["metadata"]["uid"].as_str().unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client(&fake));
    let selected = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/controller-uid={uid}")))
        .await
        .unwrap()
        .items;
    assert_eq!(selected.len(), 3, "three failed attempts");
    let pod = name(&selected[0]);

    let all = pods.logs(&pod, &LogParams::default()).await.unwrap();
    assert_eq!(all, log);
    let params = LogParams {
        container: Some("main".into()),
        tail_lines: Some(3),
        ..LogParams::default()
    };
    assert_eq!(
        pods.logs(&pod, &params).await.unwrap(),
        "line 8\nline 9\nline 10\n"
    );
    let params = LogParams {
        tail_lines: Some(3),
        limit_bytes: Some(9),
        ..LogParams::default()
    };
    assert_eq!(pods.logs(&pod, &params).await.unwrap(), "line 8\nli");
    let params = LogParams {
        container: Some("nope".into()),
        ..LogParams::default()
    };
    assert_eq!(api_code(pods.logs(&pod, &params).await).0, 400);
    assert_eq!(
        api_code(pods.logs("absent", &LogParams::default()).await).0,
        404
    );
    let params = LogParams {
        previous: true,
        ..LogParams::default()
    };
    assert_eq!(
        api_code(pods.logs(&pod, &params).await).0,
        400,
        "no previous instance"
    );

    // Two containers: the container must be named.
    fake.apply_cronjob(
        CronJobFixture::new("sidecars")
            .container("envoy", "envoy:v1")
            .build(),
    );
    let spawned = fake.spawn_job("default", "sidecars", Utc::now());
    let pod =
        fake.owned_by(Resource::Pods, spawned["metadata"]["uid"].as_str().unwrap())[0]["metadata"]
            ["name"]
            .as_str()
            .unwrap()
            .to_string();
    fake.set_log("default", &pod, "envoy", "proxy up\n");
    assert_eq!(
        api_code(pods.logs(&pod, &LogParams::default()).await).0,
        400
    );
    let params = LogParams {
        container: Some("envoy".into()),
        ..LogParams::default()
    };
    assert_eq!(pods.logs(&pod, &params).await.unwrap(), "proxy up\n");
    let last = fake.requests().pop().unwrap();
    assert_eq!(last.query, "&container=envoy");
}

#[tokio::test]
async fn spawn_job_like_the_cronjob_controller() {
    let fake = FakeKube::start().await;
    let cj = fake.apply_cronjob(
        CronJobFixture::new("billing-sync")
            .namespace("team-b")
            .owner("U_ALICE")
            .build(),
    );
    let scheduled = Utc.with_ymd_and_hms(2025, 3, 4, 3, 0, 0).unwrap();
    let job = fake.spawn_job("team-b", "billing-sync", scheduled);
    assert_eq!(
        job["metadata"]["name"],
        json!(format!("billing-sync-{}", scheduled.timestamp() / 60))
    );
    assert_eq!(
        job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        json!("2025-03-04T03:00:00Z")
    );
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], json!("CronJob"));
    assert_eq!(owner["name"], json!("billing-sync"));
    assert_eq!(owner["uid"], cj["metadata"]["uid"]);
    assert_eq!(
        (
            owner["controller"].clone(),
            owner["blockOwnerDeletion"].clone()
        ),
        (json!(true), json!(true))
    );
    assert_eq!(job["status"]["active"], json!(1));
    assert!(job["status"]["startTime"].is_string());
    assert_eq!(
        job["spec"]["backoffLimit"],
        json!(2),
        "copied from the jobTemplate"
    );

    let typed: Job = serde_json::from_value(job.clone()).expect("a valid Job");
    let uid = typed.metadata.uid.clone().unwrap();
    let pods = fake.owned_by(Resource::Pods, &uid);
    assert_eq!(pods.len(), 1);
    let labels = &pods[0]["metadata"]["labels"];
    assert_eq!(labels["batch.kubernetes.io/controller-uid"], json!(uid));
    assert_eq!(labels["controller-uid"], json!(uid));
    assert_eq!(labels["job-name"], job["metadata"]["name"]);
    assert_eq!(pods[0]["status"]["phase"], json!("Running"));

    let cronjob: CronJob = serde_json::from_value(
        fake.get(Resource::CronJobs, "team-b", "billing-sync")
            .unwrap(),
    )
    .unwrap();
    let status = cronjob.status.unwrap();
    assert_eq!(status.active.unwrap()[0].uid.as_deref(), Some(uid.as_str()));
    assert!(status.last_schedule_time.is_some());
    // The typed CronJob round-trips, including the fixture's annotations.
    assert_eq!(
        cronjob
            .metadata
            .annotations
            .unwrap()
            .get("rerun-bot.io/owner")
            .map(String::as_str),
        Some("U_ALICE")
    );

    let done = fake.complete_job("team-b", typed.metadata.name.as_deref().unwrap());
    let types: Vec<&str> = done["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    assert!(
        fake.get(Resource::CronJobs, "team-b", "billing-sync")
            .unwrap()["status"]["active"]
            .is_null()
    );
}

#[tokio::test]
async fn fail_job_emits_failure_target_then_failed() {
    let fake = FakeKube::start().await;
    fake.apply_cronjob(CronJobFixture::new("reports").build());
    let job = fake.spawn_job("default", "reports", Utc::now());
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    let from = fake.resource_version();
    let done = fake.fail_job("default", &name, Failure::oom_killed());

    let jobs: Api<Job> = Api::default_namespaced(client(&fake));
    let mut stream = jobs
        .watch(&WatchParams::default().timeout(1), &from.to_string())
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while let Some(ev) = stream.next().await {
        if let WatchEvent::Modified(j) = ev.unwrap() {
            let status = j.status.unwrap_or_default();
            let types: Vec<String> = status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.type_)
                .collect();
            seen.push((types, status.failed, status.active));
        }
    }
    assert_eq!(
        seen,
        [
            (vec!["FailureTarget".to_string()], Some(3), Some(0)),
            (
                vec!["FailureTarget".to_string(), "Failed".to_string()],
                Some(3),
                Some(0)
            ),
        ]
    );
    let failed = &done["status"]["conditions"][1];
    assert_eq!(failed["reason"], json!("BackoffLimitExceeded"));
    assert!(failed["lastTransitionTime"].is_string());

    let pods = fake.owned_by(Resource::Pods, job["metadata"]["uid"].as_str().unwrap());
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        assert_eq!(pod["status"]["phase"], json!("Failed"));
        let terminated = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(
            (terminated["exitCode"].clone(), terminated["reason"].clone()),
            (json!(137), json!("OOMKilled"))
        );
    }
    let cj = fake.get(Resource::CronJobs, "default", "reports").unwrap();
    assert!(cj["status"]["active"].is_null(), "{cj}");
}

// ------------------------------------------------------- custom resources

const CRD_YAML: &str = include_str!("../fixtures/rerunrequest-crd.yaml");
const GROUP: &str = "rerun-bot.io";

fn crd_value() -> Value {
    serde_yaml::from_str(CRD_YAML).expect("CRD fixture YAML")
}

/// kubectl v1.32: `$KUBECTL`, else `kubectl.1.32` on PATH or beside the real
/// file of the image's `kubectl` dispatcher.
fn kubectl_binary() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("KUBECTL").map(std::path::PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    let dirs: Vec<std::path::PathBuf> = std::env::split_paths(&path).collect();
    if let Some(p) = dirs
        .iter()
        .map(|d| d.join("kubectl.1.32"))
        .find(|p| p.is_file())
    {
        return Some(p);
    }
    let dispatcher = dirs
        .iter()
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())?;
    let real = std::fs::canonicalize(dispatcher).ok()?;
    let fixed = real.parent()?.join("kubectl.1.32");
    fixed.is_file().then_some(fixed)
}

/// kubectl pointed at the fake through a kubeconfig in a temporary directory
/// (its own discovery cache and HOME).
struct Kubectl {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
}

struct KubectlOut {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(fake: &FakeKube) -> Option<Kubectl> {
        let Some(bin) = kubectl_binary() else {
            eprintln!(
                "NOTICE: kubectl 1.32 not found (set KUBECTL=…); skipping the kubectl checks"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": fake.url()}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
            "current-context": "fake",
        });
        std::fs::write(dir.path().join("kubeconfig"), config.to_string()).expect("kubeconfig");
        Some(Kubectl { bin, dir })
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write file");
        p.to_string_lossy().into_owned()
    }

    async fn run(&self, args: &[&str]) -> KubectlOut {
        let d = self.dir.path();
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(&self.bin)
                .arg(format!("--kubeconfig={}", d.join("kubeconfig").display()))
                .arg(format!("--cache-dir={}", d.join("cache").display()))
                .args(args)
                .env("HOME", d)
                .env_remove("KUBECONFIG")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("kubectl timed out")
        .expect("run kubectl");
        let r = KubectlOut {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!("$ kubectl {}\n{}{}", args.join(" "), r.stdout, r.stderr);
        r
    }

    async fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args).await;
        assert!(r.ok, "kubectl {args:?} failed:\n{}{}", r.stdout, r.stderr);
        r.stdout
    }
}

fn api_status(r: Result<impl std::fmt::Debug, kube::Error>) -> (u16, String, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Now, to the microsecond (what a MicroTime holds).
fn micro_now() -> MicroTime {
    let t = k8s_openapi::jiff::Timestamp::now();
    MicroTime(k8s_openapi::jiff::Timestamp::from_microsecond(t.as_microsecond()).unwrap())
}

fn rr_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1alpha1", "RerunRequest"),
        "rerunrequests",
    )
}

fn rerun_requests(fake: &FakeKube, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client(fake), ns, &rr_resource())
}

fn rerun_request(name: &str, cronjob: &str, requester: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "rerun-bot.io/v1alpha1",
        "kind": "RerunRequest",
        "metadata": {"name": name, "labels": {"rerun-bot.io/cronjob": cronjob}},
        "spec": {"cronjob": cronjob, "requestedBy": requester, "reason": "flaky"},
    }))
    .expect("RerunRequest JSON")
}

/// A raw request (method, path, Accept, body): status, headers and JSON body.
async fn raw(
    fake: &FakeKube,
    method: &str,
    path: &str,
    accept: Option<&str>,
    body: Option<(&str, Value)>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new().request(
        method.parse().expect("method"),
        format!("{}{path}", fake.url()),
    );
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    if let Some((ct, b)) = body {
        req = req.header("Content-Type", ct).body(b.to_string());
    }
    let resp = req.send().await.expect("raw request");
    let code = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    (
        code,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

#[tokio::test]
async fn crd_missing_then_served_then_deleted() {
    let fake = FakeKube::start().await;
    let rrs = rerun_requests(&fake, "rerun-bot");
    let path = "/apis/rerun-bot.io/v1alpha1/namespaces/rerun-bot/rerunrequests";
    // Not installed: the real 404 for an unknown resource, and no group.
    let (code, reason, message) = api_status(rrs.list(&ListParams::default()).await);
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (
            404,
            "NotFound",
            "the server could not find the requested resource"
        )
    );
    assert_eq!(
        raw(&fake, "GET", "/apis/rerun-bot.io", None, None).await.0,
        404
    );
    assert_eq!(
        raw(&fake, "GET", "/apis/rerun-bot.io/v1alpha1", None, None)
            .await
            .0,
        404
    );
    assert_eq!(raw(&fake, "GET", path, None, None).await.0, 404);
    assert_eq!(fake.custom_resource(GROUP, "rerunrequests"), None);

    // Applied over HTTP with the typed CRD client.
    let crds: Api<CustomResourceDefinition> = Api::all(client(&fake));
    let crd: CustomResourceDefinition = serde_json::from_value(crd_value()).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    assert!(created.metadata.uid.is_some());
    let status = created.status.clone().expect("CRD status");
    assert_eq!(status.stored_versions, Some(vec!["v1alpha1".to_string()]));
    let established = status.conditions.unwrap_or_default();
    assert!(
        established
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    assert_eq!(
        api_code(crds.create(&PostParams::default(), &crd).await),
        (409, "AlreadyExists".into())
    );
    assert_eq!(
        crds.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    crds.get("rerunrequests.rerun-bot.io").await.unwrap();
    let r = fake
        .custom_resource(GROUP, "rerunrequests")
        .expect("served");
    assert_eq!(
        (r.kind(), r.api_version(), r.namespaced()),
        ("RerunRequest", "rerun-bot.io/v1alpha1", true)
    );

    // Discovery lists it with its verbs, kind, short names and status.
    let (_, _, groups) = raw(&fake, "GET", "/apis", None, None).await;
    let group = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == GROUP)
        .expect("group in /apis")
        .clone();
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        "rerun-bot.io/v1alpha1"
    );
    let (_, _, g) = raw(&fake, "GET", "/apis/rerun-bot.io", None, None).await;
    assert_eq!(g["versions"][0]["version"], "v1alpha1");
    let (_, _, list) = raw(&fake, "GET", "/apis/rerun-bot.io/v1alpha1", None, None).await;
    let res = list["resources"].as_array().unwrap();
    let main = res.iter().find(|r| r["name"] == "rerunrequests").unwrap();
    assert_eq!(main["kind"], "RerunRequest");
    assert_eq!(main["namespaced"], true);
    assert_eq!(main["singularName"], "rerunrequest");
    assert_eq!(main["shortNames"], json!(["rr"]));
    assert_eq!(main["categories"], json!(["rerun-bot"]));
    for verb in [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ] {
        assert!(
            main["verbs"].as_array().unwrap().iter().any(|v| v == verb),
            "{verb}"
        );
    }
    let status_sub = res
        .iter()
        .find(|r| r["name"] == "rerunrequests/status")
        .unwrap();
    assert_eq!(status_sub["verbs"], json!(["get", "patch", "update"]));
    // kube-rs discovery agrees.
    let discovery = kube::Discovery::new(client(&fake)).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk(GROUP, "v1alpha1", "RerunRequest"))
        .expect("kube-rs discovery finds the CRD");
    assert_eq!(ar.plural, "rerunrequests");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);

    rrs.create(
        &PostParams::default(),
        &rerun_request("r1", "nightly", "alice"),
    )
    .await
    .unwrap();

    // Bad CRDs are refused as the apiextensions strategy does.
    let mut bad = crd_value();
    bad["metadata"]["name"] = "wrong.rerun-bot.io".into();
    let bad: CustomResourceDefinition = serde_json::from_value(bad).unwrap();
    let (code, _, message) = api_status(crds.create(&PostParams::default(), &bad).await);
    assert_eq!(code, 422);
    assert!(
        message.contains("must be spec.names.plural+\".\"+spec.group"),
        "{message}"
    );

    // Deleting the CRD deletes its objects and stops serving it.
    crds.delete("rerunrequests.rerun-bot.io", &DeleteParams::default())
        .await
        .unwrap();
    assert!(fake.list(r, None).is_empty());
    assert_eq!(api_code(rrs.get("r1").await), (404, "NotFound".into()));
    assert_eq!(fake.custom_resource(GROUP, "rerunrequests"), None);
    assert_eq!(
        raw(&fake, "GET", "/apis/rerun-bot.io/v1alpha1", None, None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn dynamic_object_crud_replace_conflict_and_status() {
    let fake = FakeKube::start().await;
    let r = fake.install_crd(crd_value());
    let rrs = rerun_requests(&fake, "rerun-bot");
    let pp = PostParams::default();

    let mut req = rerun_request("r1", "nightly", "alice");
    req.data["status"] = json!({"phase": "Approved"});
    req.data["spec"]["unknown"] = json!("dropped");
    let created = rrs.create(&pp, &req).await.unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert_eq!(meta.namespace.as_deref(), Some("rerun-bot"));
    // Status is dropped on create (status subresource), unknown fields
    // pruned, defaults applied.
    assert_eq!(created.data.get("status"), None);
    assert_eq!(created.data["spec"].get("unknown"), None);
    assert_eq!(created.data["spec"]["attempts"], 0);
    assert_eq!(
        api_code(
            rrs.create(&pp, &rerun_request("r1", "nightly", "bob"))
                .await
        ),
        (409, "AlreadyExists".into())
    );
    let (code, _, message) = api_status(
        rrs.create(&pp, &{
            let mut x = rerun_request("r2", "nightly", "bob");
            x.data["spec"]["cronjob"] = json!(7);
            x
        })
        .await,
    );
    assert_eq!(code, 422);
    assert_eq!(
        message,
        "RerunRequest.rerun-bot.io \"r2\" is invalid: spec.cronjob: Invalid value: \"integer\": spec.cronjob in body must be of type string: \"integer\""
    );
    let (code, _, message) = api_status(
        rrs.create(&pp, &{
            let mut x = rerun_request("r2", "nightly", "bob");
            x.data["spec"] = json!({"cronjob": "nightly"});
            x
        })
        .await,
    );
    assert_eq!(
        (code, message.ends_with("spec.requestedBy: Required value")),
        (422, true),
        "{message}"
    );

    // Replace: the resourceVersion must match; status is ignored on the main
    // resource; generation follows spec changes.
    let mut fresh = rrs.get("r1").await.unwrap();
    let stale = fresh.clone();
    fresh.data["spec"]["reason"] = json!("really flaky");
    fresh.data["status"] = json!({"phase": "Denied"});
    let replaced = rrs.replace("r1", &pp, &fresh).await.unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(replaced.data.get("status"), None);
    assert_ne!(
        replaced.metadata.resource_version,
        stale.metadata.resource_version
    );
    let (code, reason, message) = api_status(rrs.replace("r1", &pp, &stale).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(
        message,
        "Operation cannot be fulfilled on rerunrequests.rerun-bot.io \"r1\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let mut unconditional = replaced.clone();
    unconditional.metadata.resource_version = None;
    let (code, _, message) = api_status(rrs.replace("r1", &pp, &unconditional).await);
    assert_eq!(code, 422);
    assert!(
        message.ends_with(
            "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
        ),
        "{message}"
    );

    // replace_status changes only status (CAS too); generation stays.
    let mut st = replaced.clone();
    st.data["status"] = json!({"phase": "Approved", "approvedBy": "bob"});
    st.data["spec"]["reason"] = json!("ignored");
    let after = rrs.replace_status("r1", &pp, &st).await.unwrap();
    assert_eq!(after.data["status"]["approvedBy"], "bob");
    assert_eq!(after.data["spec"]["reason"], "really flaky");
    assert_eq!(after.metadata.generation, Some(2));
    assert_eq!(
        api_code(rrs.replace_status("r1", &pp, &st).await),
        (409, "Conflict".into())
    );
    let mut bad_phase = after.clone();
    bad_phase.data["status"]["phase"] = json!("Sideways");
    let (code, _, message) = api_status(rrs.replace_status("r1", &pp, &bad_phase).await);
    assert_eq!(code, 422);
    assert!(
        message.contains("status.phase: Unsupported value: \"Sideways\""),
        "{message}"
    );
    assert_eq!(
        fake.get(r, "rerun-bot", "r1").unwrap()["status"]["phase"],
        "Approved"
    );

    // Merge patch and JSON patch (a failed test op changes nothing).
    let patched = rrs
        .patch(
            "r1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"extra": "yes"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["extra"], "yes");
    let r1 = "/apis/rerun-bot.io/v1alpha1/namespaces/rerun-bot/rerunrequests/r1";
    let jp = json!([
        {"op": "test", "path": "/spec/requestedBy", "value": "alice"},
        {"op": "replace", "path": "/spec/reason", "value": "patched"},
        {"op": "add", "path": "/spec/args", "value": ["--date", "2024-01-01"]},
        {"op": "add", "path": "/spec/args/-", "value": "--force"},
    ]);
    let (code, _, patched) = raw(
        &fake,
        "PATCH",
        r1,
        None,
        Some(("application/json-patch+json", jp)),
    )
    .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["spec"]["reason"], "patched");
    assert_eq!(
        patched["spec"]["args"],
        json!(["--date", "2024-01-01", "--force"])
    );
    let jp = json!([
        {"op": "test", "path": "/spec/requestedBy", "value": "mallory"},
        {"op": "replace", "path": "/spec/reason", "value": "nope"},
    ]);
    let (code, _, _) = raw(
        &fake,
        "PATCH",
        r1,
        None,
        Some(("application/json-patch+json", jp)),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        rrs.get("r1").await.unwrap().data["spec"]["reason"],
        "patched"
    );
    // Unknown fields in a write come back as warnings (fieldValidation=Warn).
    let (code, headers, _) = raw(
        &fake,
        "PATCH",
        r1,
        None,
        Some(("application/merge-patch+json", json!({"spec": {"typo": 1}}))),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        headers["warning"],
        "299 - \"unknown field \\\"spec.typo\\\"\""
    );
    let (code, _, message) = api_status(
        rrs.patch(
            "r1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {}})),
        )
        .await,
    );
    assert_eq!(code, 415, "{message}");
    let stale_patch =
        Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "spec": {"reason": "x"}}));
    assert_eq!(
        api_code(rrs.patch("r1", &PatchParams::default(), &stale_patch).await),
        (409, "Conflict".into())
    );

    // Lists: label and name selectors, paging.
    for (n, cj) in [("r2", "nightly"), ("r3", "weekly"), ("r4", "weekly")] {
        rrs.create(&pp, &rerun_request(n, cj, "carol"))
            .await
            .unwrap();
    }
    let names = |l: kube::core::ObjectList<DynamicObject>| -> Vec<String> {
        l.items.iter().map(name).collect()
    };
    assert_eq!(
        names(
            rrs.list(&ListParams::default().labels("rerun-bot.io/cronjob=weekly"))
                .await
                .unwrap()
        ),
        ["r3", "r4"]
    );
    assert_eq!(
        names(
            rrs.list(&ListParams::default().fields("metadata.name=r2"))
                .await
                .unwrap()
        ),
        ["r2"]
    );
    let page = rrs.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(names(page.clone()), ["r1", "r2", "r3"]);
    let token = page.metadata.continue_.clone().expect("continue token");
    assert_eq!(
        names(
            rrs.list(&ListParams::default().limit(3).continue_token(&token))
                .await
                .unwrap()
        ),
        ["r4"]
    );
    let all: Api<DynamicObject> = Api::all_with(client(&fake), &rr_resource());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        4
    );

    // Deletes: precondition, absent, collection by label.
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: Some("1".into()),
            uid: None,
        }),
        ..DeleteParams::default()
    };
    assert_eq!(
        api_code(rrs.delete("r2", &dp).await),
        (409, "Conflict".into())
    );
    let current = rrs.get("r2").await.unwrap().metadata.resource_version;
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: current,
            uid: None,
        }),
        ..DeleteParams::default()
    };
    rrs.delete("r2", &dp).await.unwrap();
    assert_eq!(
        api_code(rrs.delete("r2", &DeleteParams::default()).await),
        (404, "NotFound".into())
    );
    rrs.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("rerun-bot.io/cronjob=weekly"),
    )
    .await
    .unwrap();
    assert_eq!(
        names(rrs.list(&ListParams::default()).await.unwrap()),
        ["r1"]
    );
    // Other namespaces are separate.
    let other = rerun_requests(&fake, "elsewhere");
    assert_eq!(api_code(other.get("r1").await), (404, "NotFound".into()));
}

#[tokio::test]
async fn custom_resource_watch_bookmarks_and_expiry() {
    let fake = FakeKube::start().await;
    let r = fake.install_crd(crd_value());
    let rrs = rerun_requests(&fake, "rerun-bot");
    rrs.create(
        &PostParams::default(),
        &rerun_request("r1", "nightly", "alice"),
    )
    .await
    .unwrap();
    let (tx, mut rx) = unbounded_channel();
    let api = rrs.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = events.next().await {
            if let Ok(ev) = ev
                && tx.send(ev).is_err()
            {
                break;
            }
        }
    });
    let is = |n: &'static str| move |ev: &watcher::Event<DynamicObject>| matches!(ev, watcher::Event::Apply(o) | watcher::Event::InitApply(o) if o.metadata.name.as_deref() == Some(n));
    tokio::time::timeout(WAIT, async {
        while let Some(ev) = rx.recv().await {
            if is("r1")(&ev) {
                break;
            }
        }
    })
    .await
    .expect("initial r1");
    // A change by another client (the world), then a dropped watch and a compaction.
    fake.update(r, "rerun-bot", "r1", |o| {
        o["status"] = json!({"phase": "Approved"})
    });
    fake.drop_watches();
    fake.compact();
    rrs.create(
        &PostParams::default(),
        &rerun_request("r2", "nightly", "bob"),
    )
    .await
    .unwrap();
    tokio::time::timeout(WAIT, async {
        while let Some(ev) = rx.recv().await {
            if is("r2")(&ev) {
                break;
            }
        }
    })
    .await
    .expect("r2 after the watch was dropped");

    // Raw watch from an old version: 410; a recent one resumes with bookmarks.
    let old = rrs
        .watch(&WatchParams::default().timeout(2), "1")
        .await
        .unwrap()
        .boxed()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(old, WatchEvent::Error(ref e) if e.code == 410),
        "{old:?}"
    );
    fake.set_bookmark_interval(Duration::from_millis(50));
    let rv = fake.resource_version().to_string();
    let mut w = rrs
        .watch(&WatchParams::default().timeout(3), &rv)
        .await
        .unwrap()
        .boxed();
    fake.delete(r, "rerun-bot", "r2");
    let mut saw_delete = false;
    let mut saw_bookmark = false;
    while let Ok(Some(ev)) = tokio::time::timeout(WAIT, w.next()).await {
        match ev.unwrap() {
            WatchEvent::Deleted(o) => saw_delete |= o.metadata.name.as_deref() == Some("r2"),
            WatchEvent::Bookmark(_) => saw_bookmark = true,
            _ => {}
        }
        if saw_delete && saw_bookmark {
            break;
        }
    }
    assert!(saw_delete && saw_bookmark);
}

#[tokio::test]
async fn lease_compare_and_swap() {
    let fake = FakeKube::start().await;
    let leases: Api<Lease> = Api::namespaced(client(&fake), "rerun-bot");
    let pp = PostParams::default();
    let now = micro_now();
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("rerun-bot-leader".into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("pod-a".into()),
            lease_duration_seconds: Some(10),
            acquire_time: Some(now.clone()),
            renew_time: Some(now.clone()),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    };
    let created = leases.create(&pp, &lease).await.unwrap();
    assert_eq!(
        api_code(leases.create(&pp, &lease).await),
        (409, "AlreadyExists".into())
    );
    let raw_lease = fake
        .get(Resource::Leases, "rerun-bot", "rerun-bot-leader")
        .unwrap();
    // MicroTime as kube-rs sends it (UTC, microseconds), kept.
    let sent = serde_json::to_value(&now).unwrap();
    assert_eq!(raw_lease["spec"]["renewTime"], sent);
    assert_eq!(raw_lease["apiVersion"], "coordination.k8s.io/v1");
    let got = leases.get("rerun-bot-leader").await.unwrap();
    assert_eq!(got.spec.as_ref().unwrap().renew_time, Some(now.clone()));

    // Two candidates read the same version; only the first replace wins.
    let mut a = got.clone();
    let mut b = got.clone();
    a.spec.as_mut().unwrap().renew_time = Some(micro_now());
    b.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    b.spec.as_mut().unwrap().lease_transitions = Some(1);
    let renewed = leases.replace("rerun-bot-leader", &pp, &a).await.unwrap();
    assert_ne!(
        renewed.metadata.resource_version,
        created.metadata.resource_version
    );
    let (code, reason, message) = api_status(leases.replace("rerun-bot-leader", &pp, &b).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(
        message,
        "Operation cannot be fulfilled on leases.coordination.k8s.io \"rerun-bot-leader\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // Re-read and take over.
    let mut b = leases.get("rerun-bot-leader").await.unwrap();
    let spec = b.spec.as_mut().unwrap();
    spec.holder_identity = Some("pod-b".into());
    spec.lease_transitions = Some(1);
    spec.acquire_time = Some(micro_now());
    let taken = leases.replace("rerun-bot-leader", &pp, &b).await.unwrap();
    assert_eq!(
        taken.spec.unwrap().holder_identity.as_deref(),
        Some("pod-b")
    );

    let mut bad = lease.clone();
    bad.metadata.name = Some("bad".into());
    bad.spec.as_mut().unwrap().lease_duration_seconds = Some(0);
    let (code, _, message) = api_status(leases.create(&pp, &bad).await);
    assert_eq!(code, 422);
    assert!(
        message.contains("spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"),
        "{message}"
    );

    assert_eq!(
        leases
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    leases
        .delete("rerun-bot-leader", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        api_code(leases.get("rerun-bot-leader").await),
        (404, "NotFound".into())
    );
}

#[tokio::test]
async fn tables_with_printer_columns() {
    let fake = FakeKube::start().await;
    let r = fake.install_crd(crd_value());
    let rrs = rerun_requests(&fake, "rerun-bot");
    rrs.create(
        &PostParams::default(),
        &rerun_request("r1", "nightly", "alice"),
    )
    .await
    .unwrap();
    fake.update(r, "rerun-bot", "r1", |o| {
        o["status"] = json!({"phase": "Approved", "approvedBy": "bob"})
    });
    rrs.create(
        &PostParams::default(),
        &rerun_request("r2", "weekly", "carol"),
    )
    .await
    .unwrap();
    let path = "/apis/rerun-bot.io/v1alpha1/namespaces/rerun-bot/rerunrequests";
    let (code, _, t) = raw(&fake, "GET", path, Some(TABLE), None).await;
    assert_eq!(code, 200);
    assert_eq!(
        (t["kind"].as_str(), t["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1"))
    );
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        ["Name", "CronJob", "Phase", "Requester", "Approver", "Age"]
    );
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    assert_eq!(t["columnDefinitions"][5]["type"], "date");
    let row = &t["rows"][0];
    assert_eq!(
        row["cells"].as_array().unwrap()[..5],
        [
            json!("r1"),
            json!("nightly"),
            json!("Approved"),
            json!("alice"),
            json!("bob")
        ]
    );
    let age = row["cells"][5].as_str().unwrap();
    assert!(age.ends_with('s'), "{age}");
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["metadata"]["name"], "r1");
    // Missing values are null cells.
    assert_eq!(t["rows"][1]["cells"][2], Value::Null);
    let (_, _, full) = raw(
        &fake,
        "GET",
        &format!("{path}?includeObject=Object"),
        Some(TABLE),
        None,
    )
    .await;
    assert_eq!(full["rows"][0]["object"]["spec"]["cronjob"], "nightly");
    let (_, _, one) = raw(&fake, "GET", &format!("{path}/r2"), Some(TABLE), None).await;
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);
    // Plain JSON when Table is not asked for (or comes second).
    let (_, _, plain) = raw(&fake, "GET", path, Some("application/json, */*"), None).await;
    assert_eq!(plain["kind"], "RerunRequestList");
    assert_eq!(plain["apiVersion"], "rerun-bot.io/v1alpha1");
    // Leases print NAME HOLDER AGE.
    fake.create(
        Resource::Leases,
        json!({"metadata": {"name": "l", "namespace": "rerun-bot"}, "spec": {"holderIdentity": "pod-a"}}),
    );
    let (_, _, lt) = raw(
        &fake,
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/rerun-bot/leases",
        Some(TABLE),
        None,
    )
    .await;
    assert_eq!(lt["rows"][0]["cells"][1], "pod-a");
    assert_eq!(lt["columnDefinitions"][1]["name"], "Holder");
}

#[tokio::test]
async fn faults_and_outages_on_the_new_paths() {
    let fake = FakeKube::start().await;
    fake.install_crd(crd_value());
    let rrs = rerun_requests(&fake, "rerun-bot");
    let leases: Api<Lease> = Api::namespaced(client(&fake), "rerun-bot");
    fake.fail_next("PUT", "/apis/rerun-bot.io/", 1, 500, None);
    rrs.create(
        &PostParams::default(),
        &rerun_request("r1", "nightly", "alice"),
    )
    .await
    .unwrap();
    let got = rrs.get("r1").await.unwrap();
    assert_eq!(
        api_code(rrs.replace("r1", &PostParams::default(), &got).await).0,
        500
    );
    rrs.replace("r1", &PostParams::default(), &got)
        .await
        .unwrap();
    fake.fail_next("GET", "/apis/coordination.k8s.io/", 1, 403, None);
    assert_eq!(api_code(leases.list(&ListParams::default()).await).0, 403);

    // Down: everything answers 500 (and open watches are cut) until the end.
    fake.fail_all_for(Duration::from_millis(400), 500);
    assert!(fake.in_outage());
    assert_eq!(api_code(rrs.get("r1").await), (500, "InternalError".into()));
    assert_eq!(api_code(leases.get("x").await).0, 500);
    assert_eq!(raw(&fake, "GET", "/version", None, None).await.0, 500);
    tokio::time::sleep(Duration::from_millis(450)).await;
    rrs.get("r1").await.unwrap();
    fake.fail_all_for(Duration::from_secs(60), 503);
    fake.end_outage();
    rrs.get("r1").await.unwrap();
}

#[tokio::test]
async fn kubectl_drives_custom_resources_and_leases() {
    let fake = FakeKube::start().await;
    let Some(k) = Kubectl::new(&fake) else { return };
    let crd = k.file("crd.yaml", CRD_YAML);

    let missing = k.run(&["get", "rerunrequests", "-n", "rerun-bot"]).await;
    assert!(
        !missing.ok
            && missing
                .stderr
                .contains("the server doesn't have a resource type \"rerunrequests\""),
        "{}",
        missing.stderr
    );
    let out = k.ok(&["apply", "-f", &crd]).await;
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/rerunrequests.rerun-bot.io created"
        ),
        "{out}"
    );
    // A second apply is a no-op patch.
    let out = k.ok(&["apply", "-f", &crd]).await;
    assert!(
        out.contains("unchanged") || out.contains("configured"),
        "{out}"
    );
    let out = k.ok(&["get", "crds"]).await;
    assert!(out.contains("rerunrequests.rerun-bot.io"), "{out}");

    let rr = k.file(
        "rr.yaml",
        "apiVersion: rerun-bot.io/v1alpha1\nkind: RerunRequest\nmetadata:\n  name: r1\n  namespace: rerun-bot\nspec:\n  cronjob: nightly\n  requestedBy: alice\n",
    );
    k.ok(&["create", "-f", &rr]).await;
    let r = fake.custom_resource(GROUP, "rerunrequests").unwrap();
    fake.update(r, "rerun-bot", "r1", |o| {
        o["status"] = json!({"phase": "Approved", "approvedBy": "bob"})
    });
    // Unknown fields: kubectl asks for strict validation and the server refuses.
    let typo = k.file(
        "typo.yaml",
        "apiVersion: rerun-bot.io/v1alpha1\nkind: RerunRequest\nmetadata:\n  name: r2\n  namespace: rerun-bot\nspec:\n  cronjob: nightly\n  requestedBy: alice\n  requestedby: typo\n",
    );
    let bad = k.run(&["create", "-f", &typo]).await;
    assert!(
        !bad.ok
            && bad
                .stderr
                .contains("strict decoding error: unknown field \"spec.requestedby\""),
        "{}",
        bad.stderr
    );

    let table = k.ok(&["get", "rerunrequests", "-n", "rerun-bot"]).await;
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "CRONJOB", "PHASE", "REQUESTER", "APPROVER", "AGE"],
        "{table}"
    );
    assert_eq!(
        lines[1][..5],
        ["r1", "nightly", "Approved", "alice", "bob"],
        "{table}"
    );
    let short = k
        .ok(&["get", "rr", "-n", "rerun-bot", "--show-labels"])
        .await;
    assert!(short.contains("r1"), "{short}");
    let all = k.ok(&["get", "rerunrequests", "-A"]).await;
    assert!(
        all.lines().next().unwrap().starts_with("NAMESPACE"),
        "{all}"
    );
    assert!(all.contains("rerun-bot"), "{all}");

    let yaml = k
        .ok(&["get", "rerunrequests", "-n", "rerun-bot", "-o", "yaml"])
        .await;
    let doc: Value = serde_yaml::from_str(&yaml).unwrap();
    let item = &doc["items"][0];
    assert_eq!(item["apiVersion"], "rerun-bot.io/v1alpha1");
    assert_eq!(item["kind"], "RerunRequest");
    assert_eq!(item["spec"]["cronjob"], "nightly");
    assert_eq!(item["spec"]["attempts"], 0);
    assert_eq!(item["status"]["approvedBy"], "bob");
    let rv = item["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    // Leases: created through kube-rs, listed by kubectl.
    let leases: Api<Lease> = Api::namespaced(client(&fake), "rerun-bot");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "rerun-bot-leader"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 10},
    }))
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let out = k.ok(&["get", "leases", "-n", "rerun-bot"]).await;
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "HOLDER", "AGE"], "{out}");
    assert_eq!(lines[1][..2], ["rerun-bot-leader", "pod-a"], "{out}");

    // Replace with the version read: fine once, then it is stale → 409.
    let edited = yaml_with_reason(item, &rv, "first");
    let f = k.file("replace1.yaml", &edited);
    k.ok(&["replace", "-f", &f]).await;
    let f = k.file("replace2.yaml", &yaml_with_reason(item, &rv, "second"));
    let stale = k.run(&["replace", "-f", &f]).await;
    assert!(!stale.ok, "{}", stale.stdout);
    assert!(
        stale.stderr.contains("Operation cannot be fulfilled on rerunrequests.rerun-bot.io \"r1\": the object has been modified; please apply your changes to the latest version and try again"),
        "{}",
        stale.stderr
    );
    let reason = k
        .ok(&[
            "get",
            "rr",
            "r1",
            "-n",
            "rerun-bot",
            "-o",
            "jsonpath={.spec.reason}",
        ])
        .await;
    assert_eq!(reason, "first");
    // The same for a Lease.
    let lease_yaml = k
        .ok(&[
            "get",
            "lease",
            "rerun-bot-leader",
            "-n",
            "rerun-bot",
            "-o",
            "json",
        ])
        .await;
    let mut lease_doc: Value = serde_json::from_str(&lease_yaml).unwrap();
    lease_doc["spec"]["holderIdentity"] = "pod-b".into();
    let f = k.file("lease.json", &lease_doc.to_string());
    k.ok(&["replace", "-f", &f]).await;
    let stale = k.run(&["replace", "-f", &f]).await;
    assert!(
        !stale.ok
            && stale.stderr.contains(
                "Operation cannot be fulfilled on leases.coordination.k8s.io \"rerun-bot-leader\""
            ),
        "{}",
        stale.stderr
    );

    // Patch (merge: custom resources have no strategic merge) and delete.
    k.ok(&[
        "patch",
        "rr",
        "r1",
        "-n",
        "rerun-bot",
        "--type=merge",
        "-p",
        r#"{"spec":{"reason":"patched"}}"#,
    ])
    .await;
    let smp = k
        .run(&[
            "patch",
            "rr",
            "r1",
            "-n",
            "rerun-bot",
            "-p",
            r#"{"spec":{"reason":"x"}}"#,
        ])
        .await;
    assert!(
        !smp.ok,
        "strategic merge patch must be refused for custom resources"
    );
    k.ok(&[
        "patch",
        "rr",
        "r1",
        "-n",
        "rerun-bot",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Created"}}"#,
    ])
    .await;
    let phase = k
        .ok(&[
            "get",
            "rr",
            "r1",
            "-n",
            "rerun-bot",
            "-o",
            "jsonpath={.status.phase}/{.spec.reason}",
        ])
        .await;
    assert_eq!(phase, "Created/patched");
    k.ok(&["delete", "rr", "r1", "-n", "rerun-bot"]).await;
    let none = k.run(&["get", "rr", "-n", "rerun-bot"]).await;
    assert!(
        none.ok && none.stderr.contains("No resources found"),
        "{}",
        none.stderr
    );
    k.ok(&["delete", "-f", &crd]).await;
    let gone = k.run(&["get", "rerunrequests", "-n", "rerun-bot"]).await;
    assert!(!gone.ok, "{}", gone.stdout);
}

/// A RerunRequest document for `kubectl replace` with a given version read.
fn yaml_with_reason(item: &Value, rv: &str, reason: &str) -> String {
    let mut doc = item.clone();
    doc["metadata"]["resourceVersion"] = rv.into();
    doc["spec"]["reason"] = reason.into();
    serde_json::to_string(&doc).unwrap()
}

/// The Job the bot creates for a rerun is the Job `kubectl create job
/// --from=cronjob/X` makes from the same CronJob, field for field, but for
/// the bot's own label and annotations (and the name).
#[tokio::test]
async fn the_rerun_job_is_the_job_kubectl_create_job_from_cronjob_makes() {
    let t = crate::support::Tester::start().await;
    let Some(kubectl) = Kubectl::new(&t.kube) else {
        t.finish().await;
        return;
    };
    t.kube.apply_cronjob(
        CronJobFixture::new("billing-sync")
            .args(&["sync --day=yesterday"])
            .env("DB_HOST", "db.internal")
            .backoff_limit(2)
            .build(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.command(
        "U_ALICE",
        crate::support::tester::CHANNEL,
        "/rerun",
        "billing-sync --reason \"compare with kubectl\"",
    )
    .await;
    let card = t.slack.next_message().await;
    t.click("U_BOB", &card, "approve").await;
    let _approved = t.slack.next_update().await;
    let _created = t.slack.next_message().await;
    let _card_created = t.slack.next_update().await;
    // What the bot sent (the apiserver adds its defaults and the Job
    // controller's labels to what it stores).
    let bot = normalized(
        t.kube
            .requests()
            .into_iter()
            .find(|r| r.method == "POST" && r.path == "/apis/batch/v1/namespaces/default/jobs")
            .and_then(|r| r.body)
            .expect("the rerun Job's POST"),
    );
    let out = kubectl
        .ok(&[
            "create",
            "job",
            "by-hand",
            "--from=cronjob/billing-sync",
            "-n",
            "default",
            "--dry-run=client",
            "-o",
            "json",
        ])
        .await;
    // kubectl prints Go's zero values (`creationTimestamp: null`, `resources: {}`).
    let by_hand = normalized(serde_json::from_str(&out).expect("kubectl prints JSON"));
    assert_eq!(
        bot["spec"]["template"], by_hand["spec"]["template"],
        "pod template"
    );
    for field in [
        "backoffLimit",
        "completions",
        "parallelism",
        "activeDeadlineSeconds",
    ] {
        assert_eq!(bot["spec"][field], by_hand["spec"][field], "spec.{field}");
    }
    let without_ours = |m: &Value, key: &str| -> Value {
        let mut map = m[key].as_object().cloned().unwrap_or_default();
        map.retain(|k, _| !k.starts_with("rerun-bot.io/") && k != "app.kubernetes.io/managed-by");
        Value::Object(map)
    };
    for key in ["labels", "annotations"] {
        assert_eq!(
            without_ours(&bot["metadata"], key),
            without_ours(&by_hand["metadata"], key),
            "metadata.{key}"
        );
    }
    let owner = |j: &Value| {
        let o = &j["metadata"]["ownerReferences"][0];
        json!([
            o["apiVersion"],
            o["kind"],
            o["name"],
            o["uid"],
            o["controller"]
        ])
    };
    assert_eq!(
        owner(&bot),
        owner(&by_hand),
        "the controller ownerReference"
    );
    t.finish().await;
}

/// Without nulls and empty objects, which mean "unset" to the apiserver.
fn normalized(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, normalized(v)))
                .filter(|(_, v)| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalized).collect()),
        other => other,
    }
}
