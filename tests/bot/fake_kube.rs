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
