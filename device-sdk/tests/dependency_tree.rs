//! The phone library pulls in no server, model or search-engine code
//! (ARCHITECTURE: "protocol only (never candle/tantivy)"). Dev-dependencies
//! (the fake server of the tests) do not count: `-e normal`.

use std::process::Command;

const FORBIDDEN: &[&str] = &[
    "candle",
    "tantivy",
    "qdrant",
    "assist-models",
    "assist-server",
    "assist-indexer",
];

fn tree(extra: &[&str]) -> Option<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "-p",
            "assist-device-sdk",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(extra)
        .output()
        .expect("run cargo tree");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn no_heavy_or_server_crates_reach_the_phone() {
    // Offline first (no index update); fall back to a normal run.
    let text = tree(&["--offline"])
        .or_else(|| tree(&[]))
        .expect("cargo tree failed with and without --offline");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("assist-protocol")),
        "the tree lists the protocol crate:\n{text}"
    );
    for line in &lines {
        for bad in FORBIDDEN {
            assert!(
                !line.starts_with(bad),
                "`{line}` must not be a dependency of the device SDK"
            );
        }
    }
    // The library alone (no simulator CLI) stays lean too.
    let lib = tree(&["--offline", "--no-default-features"])
        .or_else(|| tree(&["--no-default-features"]))
        .expect("cargo tree --no-default-features");
    for bad in ["symphonia", "rubato", "clap", "indicatif"] {
        assert!(
            !lib.lines().any(|l| l.starts_with(bad)),
            "{bad} is for the CLI only"
        );
    }
}
