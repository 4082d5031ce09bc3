//! Adaptive Cards checked by Microsoft's own parser: the `adaptivecards` npm
//! package, run by `tests/cards/validate.mjs` under node.

use std::path::Path;
use std::process::Command;

/// Parses every card with `adaptivecards` (as Adaptive Cards 1.5) and panics
/// with every error and warning it reports, naming the card.
pub fn validate_cards(cards: &[serde_json::Value]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cards");
    assert!(
        dir.join("node_modules/adaptivecards").is_dir(),
        "the Adaptive Cards validator is not installed: run `npm ci --prefix tests/cards`"
    );
    let file = tempfile::NamedTempFile::new().expect("temp file");
    serde_json::to_writer(file.as_file(), cards).expect("write cards");
    let out = Command::new("node")
        .arg(dir.join("validate.mjs"))
        .arg(file.path())
        .output()
        .expect("run node (is node installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "Adaptive Cards validation failed ({}):\n{stdout}{stderr}",
        out.status
    );
}
