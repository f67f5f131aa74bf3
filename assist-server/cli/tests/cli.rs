//! Configuration layering, the data-directory lock and the admin commands.

use std::ffi::OsString;

use assist_cli::{AdminCommand, admin_with, parse_from};
use assist_server::db::testing;
use assist_server::serve::DataDirLock;

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

#[test]
fn file_values_apply_and_flags_override_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("assist.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:9999\"\nmax_body_bytes = 2048\n\n[models]\nrequired_models = [\"asr\"]\nmodel_path = [\"llm=/opt/qwen\"]\n\n[jobs]\njob_workers = 7\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let cli = parse_from(args(&["assist", "--config", p, "config"])).unwrap();
    assert_eq!(cli.settings.server.listen.port(), 9999);
    assert_eq!(cli.settings.server.max_body_bytes, 2048);
    assert_eq!(cli.settings.models.required_models, vec!["asr".to_string()]);
    assert_eq!(
        cli.settings.models.model_paths,
        vec!["llm=/opt/qwen".to_string()]
    );
    assert_eq!(cli.settings.jobs.job_workers, 7);
    // Defaults stay where the file is silent.
    assert_eq!(cli.settings.jobs.job_lease_secs, 60);
    // A flag beats the file, also after the subcommand.
    let cli = parse_from(args(&[
        "assist",
        "--config",
        p,
        "serve",
        "--listen",
        "127.0.0.1:7000",
    ]))
    .unwrap();
    assert_eq!(cli.settings.server.listen.port(), 7000);
    assert_eq!(cli.settings.server.max_body_bytes, 2048);
}

#[test]
fn unknown_or_bad_config_keys_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("assist.toml");
    std::fs::write(&path, "[jobs]\nworkers = 3\n").unwrap();
    let err = parse_from(args(&[
        "assist",
        "--config",
        path.to_str().unwrap(),
        "config",
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("workers") && err.contains("job_workers"),
        "{err}"
    );
    let err = parse_from(args(&[
        "assist",
        "--config",
        "/no/such/file.toml",
        "config",
    ]))
    .unwrap_err()
    .to_string();
    assert!(err.contains("/no/such/file.toml"), "{err}");
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = DataDirLock::acquire(dir.path()).unwrap();
    let err = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
    assert!(err.contains("already using the data directory"), "{err}");
    assert!(err.contains(&std::process::id().to_string()), "{err}");
    drop(first);
    DataDirLock::acquire(dir.path()).expect("free again after the first stops");
}

#[tokio::test]
async fn admin_commands_create_an_org_with_users_and_tokens() {
    let t = testing::sqlite().await;
    let db = &t.db;
    admin_with(
        db,
        AdminCommand::CreateOrg {
            name: "Acme".into(),
        },
    )
    .await
    .unwrap();
    admin_with(
        db,
        AdminCommand::CreateTeam {
            org: "Acme".into(),
            name: "East".into(),
        },
    )
    .await
    .unwrap();
    admin_with(
        db,
        AdminCommand::CreateUser {
            org: "Acme".into(),
            role: assist_protocol::Role::Rep,
            team: Some("East".into()),
            name: "zhang".into(),
        },
    )
    .await
    .unwrap();
    admin_with(
        db,
        AdminCommand::CreateDevice {
            org: "Acme".into(),
            user: "zhang".into(),
            name: "phone-1".into(),
        },
    )
    .await
    .unwrap();
    admin_with(
        db,
        AdminCommand::CreateToken {
            org: "Acme".into(),
            user: "zhang".into(),
            device: Some("phone-1".into()),
            expires_in_days: Some(90),
            name: None,
        },
    )
    .await
    .unwrap();
    let org = db.find_org("Acme").await.unwrap();
    let tokens = db.list_tokens(&org.id).await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].device_id.is_some());
    assert!(tokens[0].expires_at.is_some());
    // Errors are clear.
    let err = admin_with(
        db,
        AdminCommand::CreateOrg {
            name: "Acme".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    let err = admin_with(
        db,
        AdminCommand::CreateTeam {
            org: "Nope".into(),
            name: "x".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no organisation `Nope`"), "{err}");
}
