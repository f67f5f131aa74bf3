//! Boundaries the compiler cannot see, checked with `cargo tree`: the server
//! library does not depend on the phone SDK (only the `assist` binary's demo
//! drives a phone); the risk and analysis engines need neither the server, a
//! database driver nor an HTTP framework; and the risk engine not even candle
//! (it takes the embedder's trait from `assist-model-api`). Dev-dependencies
//! do not count: `-e normal`.

use std::process::Command;

fn tree(package: &str) -> String {
    let run = |offline: bool| {
        let mut c = Command::new(env!("CARGO"));
        c.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["tree", "-p", package, "-e", "normal", "--prefix", "none"]);
        if offline {
            c.arg("--offline");
        }
        let out = c.output().expect("run cargo tree");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // Offline first (no index update); fall back to a normal run.
    run(true)
        .or_else(|| run(false))
        .unwrap_or_else(|| panic!("cargo tree -p {package} failed"))
}

fn assert_absent(package: &str, forbidden: &[&str]) {
    let text = tree(package);
    assert!(
        text.lines().any(|l| l.starts_with(package)),
        "the tree lists {package} itself:\n{text}"
    );
    for line in text.lines() {
        for bad in forbidden {
            assert!(
                !line.starts_with(&format!("{bad} ")),
                "`{line}` must not be a dependency of {package}"
            );
        }
    }
}

#[test]
fn the_server_library_does_not_depend_on_the_phone_sdk() {
    assert_absent("assist-server", &["assist-device-sdk", "assist-cli"]);
}

#[test]
fn risk_and_analysis_are_pure_engines() {
    let server_side = [
        "assist-server",
        "assist-device-sdk",
        "sqlx",
        "axum",
        "hyper",
        "reqwest",
    ];
    assert_absent("assist-risk", &server_side);
    assert_absent("assist-analysis", &server_side);
    // The risk engine needs the embedder's trait only, not candle: the phone
    // guard and eval can use it without the model code.
    assert_absent(
        "assist-risk",
        &["candle-core", "tokenizers", "assist-models"],
    );
}
