//! The Microsoft Teams app package: `manifests/teams-app/manifest.json` and its two
//! icons, zipped with the bot's app id filled in (`rerun-bot teams-app`).
//!
//! The files are compiled into the binary, so the command works wherever the
//! binary runs. The committed manifest carries [`PLACEHOLDER_APP_ID`] (the zero
//! GUID, which keeps the file valid against the schema) in `id` and
//! `bots[0].botId`; [`package`] replaces both with the real id.

use std::io::{Cursor, Write};

use serde_json::Value;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// The committed manifest, as it is in the repository.
pub const MANIFEST: &str = include_str!("../manifests/teams-app/manifest.json");
/// 192×192, full colour.
pub const COLOR_ICON: &[u8] = include_bytes!("../manifests/teams-app/color.png");
/// 32×32, white on transparent.
pub const OUTLINE_ICON: &[u8] = include_bytes!("../manifests/teams-app/outline.png");

/// What the committed manifest holds where the app id goes.
pub const PLACEHOLDER_APP_ID: &str = "00000000-0000-0000-0000-000000000000";

/// The file names inside the package (Teams wants them at the zip's root).
pub const MANIFEST_FILE: &str = "manifest.json";
pub const COLOR_FILE: &str = "color.png";
pub const OUTLINE_FILE: &str = "outline.png";

/// Where to find the app id, for error messages.
const WHERE_THE_ID_IS: &str = "use the bot's Entra application (client) ID, the same value as TEAMS_APP_ID: \
     Entra admin center → App registrations → your bot → Overview → \"Application (client) ID\", \
     e.g. --app-id 1b4e28ba-2fa1-11d2-883f-0016d3cca427";

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("--app-id {0:?} is not a GUID; {WHERE_THE_ID_IS}")]
    AppId(String),
    #[error("--app-id is the placeholder GUID of manifest.json; {WHERE_THE_ID_IS}")]
    PlaceholderAppId,
    #[error("--name must be 1 to 30 characters (Teams' limit for an app's short name), got {0}")]
    Name(usize),
    #[error(
        "--app-version {0:?} is not MAJOR.MINOR.PATCH (e.g. 0.1.1); Teams wants a higher one for every update of an uploaded app"
    )]
    Version(String),
    #[error("the built-in manifest.json is broken: {0}")]
    Manifest(String),
    #[error("cannot write the zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("cannot write the zip: {0}")]
    Io(#[from] std::io::Error),
}

/// What goes into the package besides the committed files.
#[derive(Debug, Clone)]
pub struct PackageOptions {
    /// The bot's Entra app id (TEAMS_APP_ID); goes into `id` and `bots[0].botId`.
    pub app_id: String,
    /// The app's name in Teams (`name.short` and `name.full`); `None` keeps the manifest's.
    pub name: Option<String>,
    /// The manifest's `version`; Teams requires it to grow with every update.
    pub version: String,
}

impl PackageOptions {
    /// The given app id with the manifest's name and this binary's version.
    pub fn new(app_id: impl Into<String>) -> PackageOptions {
        PackageOptions {
            app_id: app_id.into(),
            name: None,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Checks an app id and returns it in lowercase: a GUID, 8-4-4-4-12 hex digits,
/// optionally in braces (as some Azure pages show it).
pub fn parse_app_id(input: &str) -> Result<String, PackageError> {
    let trimmed = input.trim();
    let bare = trimmed
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(trimmed);
    let groups: Vec<&str> = bare.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    let ok = groups.len() == lengths.len()
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        return Err(PackageError::AppId(input.to_string()));
    }
    let id = bare.to_ascii_lowercase();
    if id == PLACEHOLDER_APP_ID {
        return Err(PackageError::PlaceholderAppId);
    }
    Ok(id)
}

fn check_version(version: &str) -> Result<(), PackageError> {
    let parts: Vec<&str> = version.split('.').collect();
    let ok = parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        });
    if ok {
        Ok(())
    } else {
        Err(PackageError::Version(version.to_string()))
    }
}

/// The manifest of the package: the committed one with the app id (in `id` and
/// `bots[0].botId`), the version and, if given, the name filled in.
pub fn manifest(options: &PackageOptions) -> Result<Value, PackageError> {
    let app_id = parse_app_id(&options.app_id)?;
    check_version(&options.version)?;
    let mut manifest: Value =
        serde_json::from_str(MANIFEST).map_err(|e| PackageError::Manifest(e.to_string()))?;
    let broken = |what: &str| PackageError::Manifest(format!("{what} is missing"));
    *manifest.get_mut("id").ok_or_else(|| broken("id"))? = Value::from(app_id.clone());
    *manifest
        .pointer_mut("/bots/0/botId")
        .ok_or_else(|| broken("bots[0].botId"))? = Value::from(app_id);
    *manifest
        .get_mut("version")
        .ok_or_else(|| broken("version"))? = Value::from(options.version.clone());
    if let Some(name) = &options.name {
        let name = name.trim();
        let chars = name.chars().count();
        if !(1..=30).contains(&chars) {
            return Err(PackageError::Name(chars));
        }
        let names = manifest
            .get_mut("name")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| broken("name"))?;
        names.insert("short".into(), Value::from(name));
        names.insert("full".into(), Value::from(name));
    }
    Ok(manifest)
}

/// The zip to upload to Teams: `manifest.json`, `color.png`, `outline.png`.
/// The same options give the same bytes (entries carry a fixed timestamp).
pub fn package(options: &PackageOptions) -> Result<Vec<u8>, PackageError> {
    let manifest = manifest(options)?;
    let mut json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| PackageError::Manifest(e.to_string()))?;
    json.push(b'\n');

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    // PNGs are compressed already.
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for (name, bytes, options) in [
        (MANIFEST_FILE, json.as_slice(), deflated),
        (COLOR_FILE, COLOR_ICON, stored),
        (OUTLINE_FILE, OUTLINE_ICON, stored),
    ] {
        zip.start_file(name, options)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

/// Width and height from a PNG's IHDR chunk, or `None` if it is not a PNG.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.len() < 24 || !png.starts_with(SIGNATURE) || &png[12..16] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((width, height))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Read;

    use super::*;

    const ID: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";

    fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("a zip");
        (0..archive.len())
            .map(|i| {
                let mut file = archive.by_index(i).expect("entry");
                let mut data = Vec::new();
                file.read_to_end(&mut data).expect("entry data");
                (file.name().expect("entry name").to_string(), data)
            })
            .collect()
    }

    #[test]
    fn committed_manifest_holds_the_placeholder_in_both_places() {
        let m: Value = serde_json::from_str(MANIFEST).expect("manifest.json is JSON");
        assert_eq!(m["id"], PLACEHOLDER_APP_ID);
        assert_eq!(m["bots"][0]["botId"], PLACEHOLDER_APP_ID);
        assert_eq!(
            m["$schema"],
            "https://developer.microsoft.com/en-us/json-schemas/teams/v1.17/MicrosoftTeams.schema.json"
        );
        assert_eq!(m["manifestVersion"], "1.17");
        assert_eq!(
            m["version"],
            env!("CARGO_PKG_VERSION"),
            "bump with Cargo.toml"
        );
        assert_eq!(m["icons"]["color"], COLOR_FILE);
        assert_eq!(m["icons"]["outline"], OUTLINE_FILE);
    }

    #[test]
    fn manifest_bot_has_the_scopes_and_the_commands_of_the_slack_grammar() {
        let m: Value = serde_json::from_str(MANIFEST).expect("manifest.json is JSON");
        let bots = m["bots"].as_array().expect("bots");
        assert_eq!(bots.len(), 1);
        let bot = &bots[0];
        let scopes: BTreeSet<&str> = bot["scopes"]
            .as_array()
            .expect("scopes")
            .iter()
            .map(|s| s.as_str().expect("scope"))
            .collect();
        let all = BTreeSet::from(["team", "groupChat", "personal"]);
        assert_eq!(scopes, all);
        assert_eq!(bot["supportsFiles"], false);
        assert_eq!(bot["isNotificationOnly"], false);

        let lists = bot["commandLists"].as_array().expect("commandLists");
        let mut covered = BTreeSet::new();
        for list in lists {
            for scope in list["scopes"].as_array().expect("list scopes") {
                assert!(covered.insert(scope.as_str().expect("scope")));
            }
            let commands = list["commands"].as_array().expect("commands");
            assert!(commands.len() <= 10, "Teams allows 10 commands per list");
            let titles: Vec<&str> = commands
                .iter()
                .map(|c| {
                    let title = c["title"].as_str().expect("title");
                    let description = c["description"].as_str().expect("description");
                    assert!(title.chars().count() <= 32, "{title}: title ≤ 32 chars");
                    let n = description.chars().count();
                    assert!((1..=128).contains(&n), "{title}: description 1..128 chars");
                    title
                })
                .collect();
            assert_eq!(
                titles,
                [
                    "rerun",
                    "rerun history",
                    "rerun failed",
                    "hold",
                    "resume",
                    "cronjobs",
                    "snooze",
                    "unsnooze",
                    "stop",
                    "help"
                ]
            );
        }
        assert_eq!(covered, all, "a command list for each scope");
    }

    #[test]
    fn app_ids_must_be_guids_and_not_the_placeholder() {
        assert_eq!(parse_app_id(ID).unwrap(), ID);
        assert_eq!(parse_app_id(&ID.to_uppercase()).unwrap(), ID);
        assert_eq!(parse_app_id(&format!(" {{{ID}}} ")).unwrap(), ID);
        for bad in [
            "",
            "rerun-bot",
            "1b4e28ba2fa111d2883f0016d3cca427",
            "1b4e28ba-2fa1-11d2-883f-0016d3cca42",
            "1b4e28ba-2fa1-11d2-883f-0016d3cca4277",
            "1b4e28ba-2fa1-11d2-883f-0016d3cca42g",
            "{{TEAMS_APP_ID}}",
        ] {
            let err = parse_app_id(bad).unwrap_err().to_string();
            assert!(err.contains("Application (client) ID"), "{bad}: {err}");
        }
        assert!(matches!(
            parse_app_id(PLACEHOLDER_APP_ID),
            Err(PackageError::PlaceholderAppId)
        ));
    }

    #[test]
    fn versions_are_major_minor_patch() {
        for good in ["0.1.0", "1.2.3", "10.0.11"] {
            check_version(good).unwrap();
        }
        for bad in ["", "1", "1.2", "1.2.3.4", "v1.2.3", "1.02.3", "1.2.x"] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifest_gets_the_id_in_both_places_the_version_and_the_name() {
        let mut options = PackageOptions::new(ID.to_uppercase());
        options.version = "0.2.7".into();
        options.name = Some("rerun-bot prod".into());
        let m = manifest(&options).unwrap();
        assert_eq!(m["id"], ID);
        assert_eq!(m["bots"][0]["botId"], ID);
        assert_eq!(m["version"], "0.2.7");
        assert_eq!(m["name"]["short"], "rerun-bot prod");
        assert_eq!(m["name"]["full"], "rerun-bot prod");

        let default = manifest(&PackageOptions::new(ID)).unwrap();
        let committed: Value = serde_json::from_str(MANIFEST).unwrap();
        assert_eq!(default["name"], committed["name"]);
        assert_eq!(default["version"], env!("CARGO_PKG_VERSION"));

        options.name = Some("x".repeat(31));
        assert!(matches!(manifest(&options), Err(PackageError::Name(31))));
        options.name = Some("  ".into());
        assert!(matches!(manifest(&options), Err(PackageError::Name(0))));
    }

    #[test]
    fn package_holds_exactly_the_manifest_and_the_two_icons() {
        let bytes = package(&PackageOptions::new(ID)).unwrap();
        let files = unzip(&bytes);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [MANIFEST_FILE, COLOR_FILE, OUTLINE_FILE]);

        let m: Value = serde_json::from_slice(&files[0].1).expect("manifest.json is JSON");
        assert_eq!(m["id"], ID);
        assert_eq!(m["bots"][0]["botId"], ID);
        assert!(!String::from_utf8_lossy(&files[0].1).contains(PLACEHOLDER_APP_ID));
        assert_eq!(files[1].1, COLOR_ICON);
        assert_eq!(files[2].1, OUTLINE_ICON);

        assert_eq!(
            bytes,
            package(&PackageOptions::new(ID)).unwrap(),
            "reproducible"
        );
    }

    #[test]
    fn icons_have_the_sizes_teams_requires() {
        assert_eq!(png_size(COLOR_ICON), Some((192, 192)));
        assert_eq!(png_size(OUTLINE_ICON), Some((32, 32)));
        // IHDR colour type 6 = RGBA: the outline icon needs its transparency.
        assert_eq!(
            OUTLINE_ICON[25], 6,
            "outline.png must have an alpha channel"
        );
        assert_eq!(png_size(b"GIF89a"), None);
    }

    #[test]
    fn bad_options_build_nothing() {
        assert!(matches!(
            package(&PackageOptions::new("not-a-guid")),
            Err(PackageError::AppId(_))
        ));
        let mut options = PackageOptions::new(ID);
        options.version = "latest".into();
        assert!(matches!(package(&options), Err(PackageError::Version(_))));
    }
}
