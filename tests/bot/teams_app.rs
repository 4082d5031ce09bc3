//! `rerun-bot teams-app`: the built binary writes the package users upload to Teams.

use std::io::{Cursor, Read};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const APP_ID: &str = "6f1c3a52-8d4e-4b7a-9c0d-2e5f7a8b9c10";

/// Runs the binary in `dir` (no `.env` there) without a TEAMS_APP_ID from outside.
fn rerun_bot(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rerun-bot"))
        .args(args)
        .current_dir(dir)
        .env_remove("TEAMS_APP_ID")
        .output()
        .expect("run rerun-bot")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(&png[12..16], b"IHDR", "IHDR comes first");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

fn unzip(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("the zip was written");
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("a valid zip");
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).expect("zip entry");
            let mut data = Vec::new();
            file.read_to_end(&mut data).expect("zip entry data");
            (file.name().expect("entry name").to_string(), data)
        })
        .collect()
}

#[test]
fn teams_app_writes_the_manifest_and_both_icons() {
    let dir = tempfile::tempdir().unwrap();
    let out = rerun_bot(
        dir.path(),
        &[
            "teams-app",
            "--app-id",
            APP_ID,
            "--name",
            "rerun-bot staging",
            "--out",
            "pkg.zip",
        ],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("pkg.zip"),
        "{}",
        text(&out.stdout)
    );

    let files = unzip(&dir.path().join("pkg.zip"));
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["manifest.json", "color.png", "outline.png"]);

    let manifest: Value = serde_json::from_slice(&files[0].1).expect("manifest.json is JSON");
    assert_eq!(manifest["id"], APP_ID);
    assert_eq!(manifest["bots"][0]["botId"], APP_ID);
    assert_eq!(manifest["name"]["short"], "rerun-bot staging");
    assert_eq!(manifest["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest["icons"]["color"], "color.png");
    assert_eq!(manifest["icons"]["outline"], "outline.png");

    assert_eq!(png_size(&files[1].1), (192, 192), "color.png");
    assert_eq!(png_size(&files[2].1), (32, 32), "outline.png");

    // The committed icons, unchanged.
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/teams-app");
    assert_eq!(
        files[1].1,
        std::fs::read(committed.join("color.png")).unwrap()
    );
    assert_eq!(
        files[2].1,
        std::fs::read(committed.join("outline.png")).unwrap()
    );
}

#[test]
fn teams_app_defaults_to_rerun_bot_teams_zip_and_takes_the_id_from_teams_app_id() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rerun-bot"))
        .args(["teams-app", "--app-version", "0.1.1"])
        .current_dir(dir.path())
        .env("TEAMS_APP_ID", APP_ID.to_uppercase())
        .output()
        .expect("run rerun-bot");
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let files = unzip(&dir.path().join("rerun-bot-teams.zip"));
    let manifest: Value = serde_json::from_slice(&files[0].1).unwrap();
    assert_eq!(manifest["id"], APP_ID, "lowercased");
    assert_eq!(manifest["bots"][0]["botId"], APP_ID);
    assert_eq!(manifest["version"], "0.1.1");
    assert_eq!(manifest["name"]["short"], "rerun-bot");
}

#[test]
fn teams_app_refuses_a_bad_app_id_and_says_where_the_right_one_is() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["rerun-bot", "00000000-0000-0000-0000-000000000000"] {
        let out = rerun_bot(dir.path(), &["teams-app", "--app-id", bad]);
        assert!(!out.status.success(), "{bad} was accepted");
        let err = text(&out.stderr);
        assert!(err.contains("Application (client) ID"), "{bad}: {err}");
        assert!(err.contains("TEAMS_APP_ID"), "{bad}: {err}");
    }
    let out = rerun_bot(dir.path(), &["teams-app"]);
    assert!(!out.status.success(), "no --app-id and no TEAMS_APP_ID");
    assert!(text(&out.stderr).contains("--app-id"));
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

#[test]
fn help_mentions_the_teams_app_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = rerun_bot(dir.path(), &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("teams-app"), "{help}");

    let out = rerun_bot(dir.path(), &["teams-app", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in [
        "--app-id",
        "--name",
        "--app-version",
        "--out",
        "rerun-bot-teams.zip",
    ] {
        assert!(help.contains(flag), "teams-app --help lacks {flag}: {help}");
    }
}
