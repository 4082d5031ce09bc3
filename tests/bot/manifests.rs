//! The deployment files users apply as they are: `manifests/` (kustomize base,
//! Slack app manifest, Teams app package) and `.env.example`. These tests pin what matters for
//! safety — least-privilege RBAC, a single locked-down replica, no secrets in
//! the repository — so that changing any of it is a conscious test change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

/// Files in `manifests/` that are not Kubernetes resources applied by kustomize.
const SLACK_APP: &str = "slack-app.yaml";
const KUSTOMIZATION: &str = "kustomization.yaml";
const SECRET_EXAMPLE: &str = "secret.example.yaml";

/// Every setting of DESIGN.md's configuration table, plus the alert settings
/// added since (thread window, log tail, log format) and the Teams settings.
const SETTINGS: &[&str] = &[
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_API_URL",
    "RERUN_BOT_CHANNEL",
    "RERUN_BOT_NAMESPACES",
    "RERUN_BOT_DATA_DIR",
    "RERUN_BOT_LISTEN",
    "RERUN_BOT_REQUESTERS",
    "RERUN_BOT_APPROVERS",
    "RERUN_BOT_ADMINS",
    "RERUN_BOT_APPROVAL_TTL",
    "RERUN_BOT_LOOKBACK",
    "RERUN_BOT_REQUIRE_TICKET",
    "RERUN_BOT_AUDIT_TOKEN",
    "RUST_LOG",
    "RERUN_BOT_LOG_FORMAT",
    "RERUN_BOT_THREAD_WINDOW",
    "RERUN_BOT_STORM_THRESHOLD",
    "RERUN_BOT_LOG_LINES",
    "RERUN_BOT_LOG_BYTES",
    "RERUN_BOT_CAPTURE_BUDGET",
    "RERUN_BOT_CHAT_PACING",
    "TEAMS_APP_ID",
    "TEAMS_APP_PASSWORD",
    "TEAMS_TENANT_ID",
    "TEAMS_CHANNEL",
    "TEAMS_SERVICE_URL",
    "TEAMS_LOGIN_URL",
    "TEAMS_OPENID_METADATA_URL",
    "RERUN_BOT_STORE",
    "RERUN_BOT_STORE_NAMESPACE",
    "RERUN_BOT_IDENTITY",
    "RERUN_BOT_AUDIT_RETENTION",
    "RERUN_BOT_TICKET_PATTERN",
    "RERUN_BOT_TICKET_URL",
    "RERUN_BOT_MISSED_RUNS",
    "RERUN_BOT_LONG_RUNS",
];

/// The Teams settings the ConfigMap carries (empty until Teams is set up), and
/// the Bot Connector default the README documents.
const TEAMS_CONFIG: &[&str] = &[
    "TEAMS_APP_ID",
    "TEAMS_TENANT_ID",
    "TEAMS_CHANNEL",
    "TEAMS_SERVICE_URL",
];
const TEAMS_SERVICE_URL_DEFAULT: &str = "https://smba.trafficmanager.net/teams/";

/// The whole of what the bot may do in the cluster: read; create Jobs (reruns);
/// patch CronJobs and delete Jobs (holds). Change it only with `clusterrole.yaml`.
const ALLOWED_RBAC: &[(&str, &str, &str)] = &[
    ("batch", "jobs", "get"),
    ("batch", "jobs", "list"),
    ("batch", "jobs", "watch"),
    ("batch", "jobs", "create"),
    ("batch", "jobs", "delete"),
    ("batch", "cronjobs", "patch"),
    ("batch", "cronjobs", "get"),
    ("batch", "cronjobs", "list"),
    ("batch", "cronjobs", "watch"),
    ("", "pods", "get"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "pods/log", "get"),
    ("", "events", "get"),
    ("", "events", "list"),
    ("", "events", "watch"),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn manifests_dir() -> PathBuf {
    root().join("manifests")
}

/// The kustomize base's resources (`manifests/base/`).
fn base_dir() -> PathBuf {
    manifests_dir().join("base")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `*.yaml` (and `*.yml`) in `dir`, sorted by name.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML files in {}", dir.display());
    files
}

/// `manifests/base/*.yaml` and `manifests/*.yaml`.
fn manifest_files() -> Vec<PathBuf> {
    let mut files = yaml_files(&base_dir());
    files.extend(yaml_files(&manifests_dir()));
    files
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("UTF-8 file name")
}

/// All non-empty YAML documents of a file (`---`-separated).
fn documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value = Value::deserialize(de)
            .unwrap_or_else(|e| panic!("{}: document {i} is not valid YAML: {e}", path.display()));
        if !value.is_null() {
            docs.push(value);
        }
    }
    assert!(
        !docs.is_empty(),
        "{} holds no YAML document",
        path.display()
    );
    docs
}

/// A base resource file (`manifests/base/`), else one of `manifests/`.
fn manifest(name: &str) -> Vec<Value> {
    let base = base_dir().join(name);
    if base.is_file() {
        documents(&base)
    } else {
        documents(&manifests_dir().join(name))
    }
}

/// The one document of `kind` among all files in `manifests/`.
fn resource(kind: &str) -> Value {
    let mut found: Vec<Value> = manifest_files()
        .iter()
        .flat_map(|f| documents(f))
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind} in manifests/");
    found.remove(0)
}

fn str_at<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v:?}"))
}

fn seq_at<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {v:?}"))
}

fn strings(v: &Value, what: &str) -> Vec<String> {
    seq_at(v, what)
        .iter()
        .map(|s| str_at(s, what).to_string())
        .collect()
}

/// Whether `text` contains something shaped like a real Slack token:
/// `xox[bpa]-<digit>` or `xapp-<digit>`. Returns its start.
fn contains_slack_token(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let prefixes: &[&[u8]] = &[b"xoxb-", b"xoxp-", b"xoxa-", b"xapp-"];
    (0..bytes.len()).find_map(|start| {
        let rest = &bytes[start..];
        let prefix = prefixes.iter().find(|p| rest.starts_with(p))?;
        if !rest.get(prefix.len()).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let end = rest.len().min(prefix.len() + 8);
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    })
}

/// Something shaped like a real Entra client secret (TEAMS_APP_PASSWORD): three
/// characters, a digit, `Q~`, then 31 or more of `[A-Za-z0-9_.~-]`. Returns its start.
fn contains_entra_secret(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let secret_char = |b: &u8| b.is_ascii_alphanumeric() || b"_.~-".contains(b);
    (4..bytes.len().saturating_sub(1)).find_map(|at| {
        if &bytes[at..at + 2] != b"Q~" || !bytes[at - 1].is_ascii_digit() {
            return None;
        }
        let start = at - 4;
        if !bytes[start..at].iter().all(secret_char) {
            return None;
        }
        let tail = bytes[at + 2..]
            .iter()
            .take_while(|b| secret_char(b))
            .count();
        (tail >= 31).then(|| String::from_utf8_lossy(&bytes[start..at + 2]).into_owned())
    })
}

#[test]
fn entra_secret_detector_finds_real_looking_secrets_only() {
    assert!(
        contains_entra_secret("TEAMS_APP_PASSWORD=abc8Q~dEfGhIjKlMnOpQrStUvWxYz0123456789ab")
            .is_some()
    );
    assert!(
        contains_entra_secret("TEAMS_APP_PASSWORD: \"Xy_1Q~a.b-c~d_e0123456789abcdefghijklmn\"")
            .is_some()
    );
    assert!(contains_entra_secret("TEAMS_APP_PASSWORD=REPLACE-ME").is_none());
    assert!(contains_entra_secret("abc8Q~short").is_none());
    assert!(contains_entra_secret("Q~").is_none());
}

#[test]
fn token_detector_finds_real_looking_tokens_only() {
    assert!(contains_slack_token("SLACK_BOT_TOKEN=xoxb-1234-5678-abc").is_some());
    assert!(contains_slack_token("token: xoxp-9").is_some());
    assert!(contains_slack_token("xoxa-2-abc").is_some());
    assert!(contains_slack_token("SLACK_APP_TOKEN=xapp-1-A0-1-ff").is_some());
    assert!(contains_slack_token("SLACK_BOT_TOKEN=xoxb-REPLACE-ME").is_none());
    assert!(contains_slack_token("xoxb-…, xoxc-1, xapp-REPLACE-ME").is_none());
}

#[test]
fn every_manifest_is_valid_yaml_and_every_resource_is_named() {
    for file in manifest_files() {
        let name = file_name(&file);
        let docs = documents(&file);
        if name == SLACK_APP || name == KUSTOMIZATION {
            continue; // checked by their own tests below
        }
        for (i, doc) in docs.iter().enumerate() {
            let at = format!("{name} document {i}");
            assert!(doc.is_mapping(), "{at}: not a mapping");
            for key in ["apiVersion", "kind"] {
                let v = doc[key].as_str().unwrap_or("");
                assert!(!v.is_empty(), "{at}: missing {key}");
            }
            let meta = &doc["metadata"];
            let resource_name = meta["name"].as_str().unwrap_or("");
            assert!(!resource_name.is_empty(), "{at}: missing metadata.name");
            assert_eq!(
                meta["labels"]["app.kubernetes.io/name"].as_str(),
                Some("rerun-bot"),
                "{at}: label app.kubernetes.io/name: rerun-bot"
            );
            if let Some(ns) = meta["namespace"].as_str() {
                assert_eq!(ns, "rerun-bot", "{at}: namespace");
            }
        }
    }
}

#[test]
fn kustomization_lists_every_resource_file_and_nothing_else() {
    let docs = manifest(KUSTOMIZATION);
    assert_eq!(docs.len(), 1, "{KUSTOMIZATION}: one document");
    let k = &docs[0];
    assert_eq!(k["kind"].as_str(), Some("Kustomization"));
    assert_eq!(k["namespace"].as_str(), Some("rerun-bot"));

    let listed = strings(&k["resources"], "kustomization resources");
    let listed_set: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    assert_eq!(listed_set.len(), listed.len(), "a resource is listed twice");
    for entry in &listed {
        assert!(
            base_dir().join(entry).is_file(),
            "{KUSTOMIZATION} lists {entry}, which does not exist"
        );
    }

    for file in yaml_files(&base_dir()) {
        let name = file_name(&file);
        match name {
            KUSTOMIZATION | SLACK_APP => {}
            SECRET_EXAMPLE => assert!(
                !listed_set.contains(name),
                "{SECRET_EXAMPLE} holds placeholders; applying it would overwrite the real Secret"
            ),
            _ => assert!(
                listed_set.contains(name),
                "{name} is in manifests/base/ but not in {KUSTOMIZATION}"
            ),
        }
    }
}

#[test]
fn slack_app_manifest_has_the_commands_and_interactivity() {
    let docs = manifest(SLACK_APP);
    assert_eq!(docs.len(), 1, "{SLACK_APP}: one document");
    let app = &docs[0];
    assert_eq!(app["_metadata"]["major_version"].as_u64(), Some(1));
    assert_eq!(
        app["display_information"]["name"].as_str(),
        Some("rerun-bot")
    );
    assert!(
        app["features"]["bot_user"]["display_name"].is_string(),
        "features.bot_user.display_name"
    );

    let commands = seq_at(&app["features"]["slash_commands"], "slash_commands");
    let mut names = BTreeSet::new();
    for c in commands {
        let name = str_at(&c["command"], "slash command");
        assert!(names.insert(name), "{name} is declared twice");
        assert!(
            str_at(&c["url"], name).ends_with("/slack/commands"),
            "{name}: url must point at /slack/commands"
        );
        assert!(
            !str_at(&c["description"], name).is_empty(),
            "{name}: description"
        );
        assert!(
            !str_at(&c["usage_hint"], name).is_empty(),
            "{name}: usage_hint"
        );
        assert_eq!(
            c["should_escape"].as_bool(),
            Some(false),
            "{name}: should_escape"
        );
    }
    assert_eq!(
        names,
        BTreeSet::from([
            "/rerun",
            "/hold",
            "/resume",
            "/cronjobs",
            "/snooze",
            "/unsnooze",
            "/stop"
        ])
    );

    let interactivity = &app["settings"]["interactivity"];
    assert_eq!(interactivity["is_enabled"].as_bool(), Some(true));
    assert!(
        str_at(&interactivity["request_url"], "interactivity.request_url")
            .ends_with("/slack/interactivity")
    );
    assert!(
        app["settings"]["socket_mode_enabled"].is_bool(),
        "settings.socket_mode_enabled"
    );

    let scopes: BTreeSet<String> = strings(&app["oauth_config"]["scopes"]["bot"], "bot scopes")
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = [
        "chat:write",
        "chat:write.public",
        "commands",
        "users:read",
        "usergroups:read",
        "channels:read",
        "groups:read",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(scopes, expected, "bot scopes (widen them deliberately)");
}

fn container_port_names(container: &Value) -> BTreeSet<String> {
    container["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect()
}

#[test]
fn deployment_runs_one_locked_down_replica() {
    let d = resource("Deployment");
    let spec = &d["spec"];
    assert_eq!(
        spec["replicas"].as_u64(),
        Some(1),
        "sled allows one process per data dir"
    );
    assert_eq!(
        spec["strategy"]["type"].as_str(),
        Some("Recreate"),
        "a rolling update would start a second pod on the locked data dir"
    );
    let selector = &spec["selector"]["matchLabels"];
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(
        selector["app.kubernetes.io/name"].as_str(),
        Some("rerun-bot")
    );
    assert_eq!(
        labels["app.kubernetes.io/name"],
        selector["app.kubernetes.io/name"]
    );

    let pod = &spec["template"]["spec"];
    assert_eq!(pod["serviceAccountName"].as_str(), Some("rerun-bot"));
    let containers = seq_at(&pod["containers"], "containers");
    assert_eq!(containers.len(), 1, "one container");
    let c = &containers[0];
    assert_eq!(strings(&c["args"], "args"), vec!["serve".to_string()]);

    let sc = &c["securityContext"];
    let pod_sc = &pod["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    let non_root = sc["runAsNonRoot"]
        .as_bool()
        .or(pod_sc["runAsNonRoot"].as_bool());
    assert_eq!(non_root, Some(true), "runAsNonRoot");
    assert!(
        sc["runAsNonRoot"].as_bool().unwrap_or(true),
        "the container must not undo the pod's runAsNonRoot"
    );
    assert!(
        strings(&sc["capabilities"]["drop"], "capabilities.drop").contains(&"ALL".to_string()),
        "capabilities: drop ALL"
    );

    let ports = container_port_names(c);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe} path");
        let port_ok = match &get["port"] {
            Value::String(name) => ports.contains(name),
            Value::Number(n) => n.as_u64() == Some(8080),
            _ => false,
        };
        assert!(port_ok, "{probe} must use the container's HTTP port");
    }

    // The data dir is the persistent volume, and the settings say so.
    let env = seq_at(&c["env"], "env");
    let env_var = |name: &str| env.iter().find(|e| e["name"].as_str() == Some(name));
    let data_dir = env_var("RERUN_BOT_DATA_DIR").expect("RERUN_BOT_DATA_DIR is set");
    let data_dir = str_at(&data_dir["value"], "RERUN_BOT_DATA_DIR");
    let mount = seq_at(&c["volumeMounts"], "volumeMounts")
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(data_dir))
        .unwrap_or_else(|| panic!("nothing is mounted at {data_dir}"));
    let volume = seq_at(&pod["volumes"], "volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the data mount's volume");
    let claim = str_at(
        &volume["persistentVolumeClaim"]["claimName"],
        "data volume claimName",
    );
    let pvc = resource("PersistentVolumeClaim");
    assert_eq!(pvc["metadata"]["name"].as_str(), Some(claim));

    // Secrets come from the Secrets, the rest from the ConfigMap. All are
    // optional: Slack is on with SLACK_BOT_TOKEN, Teams with TEAMS_APP_ID, and
    // a Slack-only or Teams-only install has only its own Secret.
    for (var, secret, optional) in [
        ("SLACK_BOT_TOKEN", "rerun-bot-slack", true),
        ("SLACK_SIGNING_SECRET", "rerun-bot-slack", true),
        ("SLACK_APP_TOKEN", "rerun-bot-slack", true),
        ("TEAMS_APP_PASSWORD", "rerun-bot-teams", true),
    ] {
        let e = env_var(var).unwrap_or_else(|| panic!("{var} is not set"));
        let key_ref = &e["valueFrom"]["secretKeyRef"];
        assert_eq!(
            key_ref["name"].as_str(),
            Some(secret),
            "{var} from the Secret {secret}"
        );
        assert_eq!(key_ref["key"].as_str(), Some(var));
        assert_eq!(
            key_ref["optional"].as_bool().unwrap_or(false),
            optional,
            "{var} optional"
        );
    }
    for var in TEAMS_CONFIG {
        assert!(
            env_var(var).is_none(),
            "{var} comes from the ConfigMap, not the Deployment"
        );
    }
    let config_map = resource("ConfigMap");
    let config_name = str_at(&config_map["metadata"]["name"], "ConfigMap name");
    assert!(
        seq_at(&c["envFrom"], "envFrom")
            .iter()
            .any(|e| e["configMapRef"]["name"].as_str() == Some(config_name)),
        "envFrom the ConfigMap {config_name}"
    );
    assert!(
        config_map["data"]["RERUN_BOT_CHANNEL"].is_string(),
        "the ConfigMap sets the required RERUN_BOT_CHANNEL"
    );
    // Teams: the ids are in the ConfigMap, empty (Teams off) until set up, so
    // that a Slack-only install starts as before; the client secret is not.
    let data = &config_map["data"];
    for var in TEAMS_CONFIG {
        assert!(data[var].is_string(), "the ConfigMap names {var}");
    }
    assert_eq!(
        data["TEAMS_APP_ID"].as_str(),
        Some(""),
        "TEAMS_APP_ID turns Teams on: it ships empty"
    );
    assert_eq!(
        data["TEAMS_SERVICE_URL"].as_str(),
        Some(TEAMS_SERVICE_URL_DEFAULT)
    );
    assert!(
        data["TEAMS_APP_PASSWORD"].is_null(),
        "TEAMS_APP_PASSWORD belongs in the Secret rerun-bot-teams, not the ConfigMap"
    );

    let secrets = manifest(SECRET_EXAMPLE);
    let names: Vec<&str> = secrets
        .iter()
        .map(|s| str_at(&s["metadata"]["name"], "Secret name"))
        .collect();
    assert_eq!(names, ["rerun-bot-slack", "rerun-bot-teams"]);
    for (secret, keys) in [
        (
            &secrets[0],
            &["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"][..],
        ),
        (&secrets[1], &["TEAMS_APP_PASSWORD"][..]),
    ] {
        assert_eq!(secret["kind"].as_str(), Some("Secret"));
        for key in keys {
            assert!(
                secret["stringData"][key].is_string(),
                "{SECRET_EXAMPLE} shows the key {key}"
            );
        }
    }
}

#[test]
fn teams_app_package_files_are_where_the_command_embeds_them() {
    let dir = manifests_dir().join("teams-app");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["color.png", "manifest.json", "outline.png"]);
    let manifest: serde_json::Value =
        serde_json::from_str(&read(&dir.join("manifest.json"))).expect("manifest.json is JSON");
    assert_eq!(manifest["id"], rerun_bot::teams_app::PLACEHOLDER_APP_ID);
    assert_eq!(
        manifest["bots"][0]["botId"],
        rerun_bot::teams_app::PLACEHOLDER_APP_ID,
        "the placeholder, filled in by `rerun-bot teams-app`"
    );
}

#[test]
fn rbac_grants_read_access_and_nothing_more() {
    let allowed: BTreeSet<(String, String, String)> = ALLOWED_RBAC
        .iter()
        .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();

    let roles: Vec<(String, Value)> = manifest_files()
        .iter()
        .flat_map(|f| {
            let name = file_name(f).to_string();
            documents(f).into_iter().map(move |d| (name.clone(), d))
        })
        .filter(|(_, d)| matches!(d["kind"].as_str(), Some("ClusterRole") | Some("Role")))
        .collect();
    assert_eq!(roles.len(), 1, "one ClusterRole, no other Role");

    let mut granted = BTreeSet::new();
    for (file, role) in &roles {
        assert!(
            role["aggregationRule"].is_null(),
            "{file}: aggregated roles grant what others add"
        );
        for (i, rule) in seq_at(&role["rules"], "rules").iter().enumerate() {
            let at = format!("{file} rule {i}");
            let rendered = serde_yaml::to_string(rule).expect("rule to YAML");
            assert!(!rendered.contains('*'), "{at}: wildcard in {rendered}");
            for forbidden in ["nonResourceURLs", "resourceNames"] {
                assert!(rule[forbidden].is_null(), "{at}: unexpected {forbidden}");
            }
            let groups = strings(&rule["apiGroups"], "apiGroups");
            let resources = strings(&rule["resources"], "resources");
            let verbs = strings(&rule["verbs"], "verbs");
            for g in &groups {
                for r in &resources {
                    for v in &verbs {
                        let grant = (g.clone(), r.clone(), v.clone());
                        assert!(
                            allowed.contains(&grant),
                            "{at} grants {v} on {g:?}/{r}, beyond this version's read-only access"
                        );
                        granted.insert(grant);
                    }
                }
            }
        }
    }
    let missing: Vec<_> = allowed.difference(&granted).collect();
    assert!(missing.is_empty(), "the bot needs {missing:?}");

    let role_name = str_at(&roles[0].1["metadata"]["name"], "ClusterRole name");
    let binding = resource("ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["kind"].as_str(), Some("ClusterRole"));
    assert_eq!(binding["roleRef"]["name"].as_str(), Some(role_name));
    let sa = resource("ServiceAccount");
    let subjects = seq_at(&binding["subjects"], "subjects");
    assert_eq!(subjects.len(), 1, "bound to the bot only");
    assert_eq!(subjects[0]["kind"].as_str(), Some("ServiceAccount"));
    assert_eq!(subjects[0]["name"], sa["metadata"]["name"]);
    assert_eq!(subjects[0]["namespace"].as_str(), Some("rerun-bot"));
}

#[test]
fn env_example_names_every_setting_and_holds_no_token() {
    let path = root().join(".env.example");
    let text = read(&path);
    let missing: Vec<&str> = SETTINGS
        .iter()
        .copied()
        .filter(|var| !text.contains(&format!("{var}=")))
        .collect();
    assert!(missing.is_empty(), ".env.example lacks {missing:?}");
    assert_eq!(
        contains_slack_token(&text),
        None,
        ".env.example must hold placeholders, not tokens"
    );
    assert_eq!(
        contains_entra_secret(&text),
        None,
        ".env.example must hold placeholders, not client secrets"
    );
    let teams_manifest = manifests_dir().join("teams-app/manifest.json");
    for file in manifest_files().into_iter().chain([teams_manifest]) {
        let text = read(&file);
        assert_eq!(
            contains_slack_token(&text),
            None,
            "{} must hold placeholders, not tokens",
            file.display()
        );
        assert_eq!(
            contains_entra_secret(&text),
            None,
            "{} must hold placeholders, not client secrets",
            file.display()
        );
    }
}

#[test]
fn every_cli_setting_is_documented() {
    // The settings the binary actually reads: `env = "…"` in src/config.rs.
    let config = read(&root().join("src/config.rs"));
    let in_code: BTreeSet<&str> = config
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(
        in_code.contains("RERUN_BOT_CHANNEL"),
        "no settings found in src/config.rs"
    );
    let env_example = read(&root().join(".env.example"));
    let readme = read(&root().join("README.md"));
    for var in &in_code {
        assert!(
            SETTINGS.contains(var),
            "{var} is new: add it to SETTINGS here"
        );
        assert!(
            env_example.contains(var),
            "{var} is missing from .env.example"
        );
        assert!(
            readme.contains(&format!("`{var}`")),
            "{var} is missing from README.md"
        );
    }
}

/// `kubectl kustomize` of `dir`, or None (with a notice) where kubectl is absent.
fn kustomize(dir: &str) -> Option<Vec<Value>> {
    let out = match std::process::Command::new("kubectl")
        .args(["kustomize", dir])
        .current_dir(root())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("NOTICE: kubectl not found ({e}); kustomize rendering not checked");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        serde_yaml::Deserializer::from_str(&text)
            .map(|de| Value::deserialize(de).unwrap())
            .filter(|v| !v.is_null())
            .collect(),
    )
}

#[test]
fn the_ha_overlay_keeps_state_in_custom_resources_without_a_volume() {
    let Some(base) = kustomize("manifests") else {
        return;
    };
    assert!(base.iter().any(|d| d["kind"] == "PersistentVolumeClaim"));
    let ha = kustomize("manifests/ha").expect("kubectl is there");
    let kinds: Vec<&str> = ha.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "CustomResourceDefinition")
            .count(),
        6
    );
    assert!(!kinds.contains(&"PersistentVolumeClaim"), "{kinds:?}");
    assert!(kinds.contains(&"Role") && kinds.contains(&"RoleBinding"));
    let deploy = ha.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .unwrap();
    assert!(
        env.iter()
            .any(|e| e["name"] == "RERUN_BOT_STORE" && e["value"] == "kubernetes")
    );
    assert!(deploy["spec"]["template"]["spec"]["volumes"][0]["emptyDir"].is_mapping());
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(deploy["spec"]["strategy"]["type"], "RollingUpdate");
    assert!(deploy["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"].is_mapping());
    let pdb = ha
        .iter()
        .find(|d| d["kind"] == "PodDisruptionBudget")
        .unwrap();
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let role = ha.iter().find(|d| d["kind"] == "Role").unwrap();
    assert!(serde_yaml::to_string(role).unwrap().contains("leases"));
    let text = serde_yaml::to_string(role).unwrap();
    for plural in [
        "rerunrequests",
        "maintenanceholds",
        "jobalerts",
        "alertthreads",
        "auditevents",
        "botrecords",
    ] {
        assert!(
            text.contains(plural) && text.contains(&format!("{plural}/status")),
            "{plural}"
        );
    }
}
