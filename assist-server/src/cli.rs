//! The `assist` command line.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use assist_models::store::{ModelState, ModelStatus, ModelStore, ProgressMode, StoreOptions};
use assist_protocol::Role;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{Config, config_path_from, file_defaults};
use crate::db::Db;
use crate::telemetry::init_logging;
use crate::time::{now_ms, rfc3339};

/// Conversation assist for company work phones: transcription, in-call
/// suggestions, risk alerts and post-call analysis with local models.
#[derive(Debug, Parser)]
#[command(name = "assist", version, propagate_version = true)]
pub struct Cli {
    /// TOML configuration file (sections: server, storage, models, jobs, log).
    #[arg(long, env = "ASSIST_CONFIG", global = true)]
    pub config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub settings: Config,
    #[command(subcommand)]
    pub command: Command,
    /// Whether the log filter was set by flag, environment or file (else the
    /// one-shot commands log warnings only, so their own output stays readable).
    #[arg(skip)]
    pub log_level_explicit: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service until SIGINT/SIGTERM.
    Serve,
    /// Fetch, list and verify the local models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Create organisations, teams, users, devices and tokens.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Import, export, list and review scripts and the risk lexicon.
    #[command(subcommand)]
    Kb(crate::kb_cli::KbCommand),
    /// Transcribe recordings on this machine (no server needed), with a
    /// progress bar per file.
    Transcribe(crate::transcribe_cli::TranscribeArgs),
    /// Fetch models if needed, start the service on a scratch data directory,
    /// and walk through it with real requests.
    Demo(DemoArgs),
    /// Print the effective configuration (secrets redacted).
    Config,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download, assemble and verify models (idempotent; resumes).
    Fetch {
        /// Only these roles or model ids (repeatable or comma-separated). Default: all non-optional models.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Show every model: missing / partial / ready / corrupt, with sizes.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash ready models; corrupt ones are moved aside.
    Verify {
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an organisation.
    CreateOrg { name: String },
    /// List organisations.
    ListOrgs,
    /// Create a team in an organisation.
    CreateTeam {
        /// Organisation id or name.
        #[arg(long)]
        org: String,
        name: String,
    },
    /// Create a user.
    CreateUser {
        #[arg(long)]
        org: String,
        /// rep, manager, trainer, compliance or admin.
        #[arg(long)]
        role: Role,
        /// Team id or name.
        #[arg(long)]
        team: Option<String>,
        name: String,
    },
    /// List the users of an organisation.
    ListUsers {
        #[arg(long)]
        org: String,
    },
    /// Bind a work phone to a rep.
    CreateDevice {
        #[arg(long)]
        org: String,
        /// The rep's user id or name.
        #[arg(long)]
        user: String,
        name: String,
    },
    /// Create an API token for a user; the secret is printed once.
    CreateToken {
        #[arg(long)]
        org: String,
        /// User id or name.
        #[arg(long)]
        user: String,
        /// Bind the token to this device (id or name) of the user.
        #[arg(long)]
        device: Option<String>,
        /// Expire after this many days.
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// A label for the token.
        #[arg(long)]
        name: Option<String>,
    },
    /// Replace the key that signs the guard rules phones trust (after a
    /// suspected leak); phones must then pin the new public key. Prints its key id.
    RotateGuardKey,
    /// Give a webhook a new signing secret, printed once (the receiver must
    /// switch to it; deliveries are signed with the new one from now on).
    RotateWebhookSecret {
        #[arg(long)]
        org: String,
        /// The webhook id (`whk_…`).
        webhook: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep serving after the walk-through (until Ctrl-C).
    #[arg(long)]
    pub keep_serving: bool,
    /// Do not fetch models (the readiness check will then say what is missing).
    #[arg(long)]
    pub skip_fetch: bool,
}

/// Parse arguments with the TOML file's values installed as defaults.
pub fn parse_from(args: Vec<OsString>) -> Result<Cli, anyhow::Error> {
    let mut cmd = Cli::command();
    let mut file_sets_log_level = false;
    if let Some(path) = config_path_from(&args) {
        let defaults = file_defaults(&path)?;
        for (id, value) in defaults {
            file_sets_log_level |= id == "log_level";
            cmd = cmd.mut_arg(id.as_str(), |a| a.default_value(value));
        }
    }
    let matches = match cmd.try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            // clap prints help/version/usage itself and picks the exit code.
            e.exit();
        }
    };
    let mut cli = Cli::from_arg_matches(&matches)?;
    if cli.settings.storage.secret_key_file.is_none() {
        cli.settings.storage.secret_key_file = Some(crate::secrets::default_key_file(
            cli.config.as_deref(),
            &cli.settings.storage.data_dir,
        ));
    }
    cli.log_level_explicit = !matches!(
        matches.value_source("log_level"),
        None | Some(clap::parser::ValueSource::DefaultValue)
    ) || file_sets_log_level;
    Ok(cli)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // Everything this process writes (database, recordings, key file) is
    // for its own user only.
    crate::private_files::private_umask();
    let cli = match parse_from(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let mut log = cli.settings.log.clone();
    if !cli.log_level_explicit && !matches!(cli.command, Command::Serve) {
        log.log_level = "warn,qdrant_edge=error".into();
    }
    init_logging(&log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.settings;
    match cli.command {
        Command::Serve => crate::serve::serve(config).await,
        Command::Models(cmd) => models(&config, cmd).await,
        Command::Admin(cmd) => admin(&config, cmd).await,
        Command::Kb(cmd) => {
            let db = open_db(&config).await?;
            let policy = assist_knowledge_base::ReviewPolicy {
                allow_self_approval: config.kb.kb_allow_self_approval,
            };
            let out = match cmd {
                crate::kb_cli::KbCommand::Reindex => crate::kb_cli::reindex(&config, &db).await,
                cmd => crate::kb_cli::run(&db, cmd, policy).await,
            };
            db.close().await;
            out
        }
        Command::Transcribe(args) => crate::transcribe_cli::run(&config, args).await,
        Command::Demo(args) => crate::demo::run(config, args).await,
        Command::Config => {
            println!("{config:#?}");
            Ok(())
        }
    }
}

/// The model store as configured, with progress bars on a terminal.
pub fn model_store(config: &Config) -> anyhow::Result<ModelStore> {
    let registered = config.models.registered().map_err(anyhow::Error::msg)?;
    Ok(ModelStore::new(
        &config.models.model_dir,
        StoreOptions {
            python: config.models.python.clone(),
            progress: ProgressMode::Auto,
            registered,
        },
    )?)
}

async fn models(config: &Config, cmd: ModelsCommand) -> anyhow::Result<()> {
    let store = model_store(config)?;
    match cmd {
        ModelsCommand::Fetch { only } => {
            let outcomes = tokio::task::spawn_blocking(move || store.fetch(&only)).await??;
            for o in outcomes {
                println!(
                    "{:<28} {:<12} {:?} {}",
                    o.id,
                    o.role,
                    o.action,
                    o.path.display()
                );
            }
        }
        ModelsCommand::List { json } => {
            let list = tokio::task::spawn_blocking(move || store.list()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_model_table(&list);
            }
        }
        ModelsCommand::Verify { only } => {
            let list = tokio::task::spawn_blocking(move || store.verify(&only)).await??;
            print_model_table(&list);
            let bad = list
                .iter()
                .filter(|s| {
                    matches!(
                        s.state,
                        ModelState::Corrupt { .. } | ModelState::Invalid { .. }
                    )
                })
                .count();
            if bad > 0 {
                anyhow::bail!(
                    "{bad} model(s) failed verification; run `assist models fetch` to repair"
                );
            }
        }
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn state_text(s: &ModelState) -> String {
    match s {
        ModelState::Missing => "missing".into(),
        ModelState::Partial => "partial".into(),
        ModelState::Ready => "ready".into(),
        ModelState::Corrupt { reason } => format!("corrupt ({reason})"),
        ModelState::Registered { layout } => format!("registered ({layout:?})"),
        ModelState::Invalid { reason } => format!("invalid ({reason})"),
    }
}

fn print_model_table(list: &[ModelStatus]) {
    println!(
        "{:<30} {:<12} {:<16} {:>10}  STATE",
        "MODEL", "ROLE", "FORMAT", "SIZE"
    );
    for s in list {
        println!(
            "{:<30} {:<12} {:<16} {:>10}  {}{}",
            s.id,
            s.role,
            s.format,
            human_bytes(s.size_bytes),
            state_text(&s.state),
            if s.optional { " (optional)" } else { "" }
        );
    }
}

async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let url = config.storage.effective_database_url();
    let db = Db::open(&url, 2)
        .await
        .with_context(|| format!("cannot open database {}", crate::config::redact_url(&url)))?;
    Ok(db.with_secret_key(crate::secrets::SecretKey::from_config(&config.storage)?))
}

async fn admin(config: &Config, cmd: AdminCommand) -> anyhow::Result<()> {
    let db = open_db(config).await?;
    let out = admin_with(&db, cmd).await;
    db.close().await;
    out
}

/// Run an admin command against an open database (also used by tests).
pub async fn admin_with(db: &Db, cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::CreateOrg { name } => {
            let org = db.create_org(&name).await?;
            db.audit(crate::db::audit::AuditRecord {
                org_id: &org.id,
                actor_user_id: None,
                action: "org.create",
                resource_type: "org",
                resource_id: Some(&org.id),
                reason: Some("assist admin create-org"),
            })
            .await?;
            println!("{}\t{}", org.id, org.name);
        }
        AdminCommand::ListOrgs => {
            for o in db.list_orgs().await? {
                println!("{}\t{}\t{}", o.id, o.name, rfc3339(o.created_at));
            }
        }
        AdminCommand::CreateTeam { org, name } => {
            let org = db.find_org(&org).await?;
            let team = db.create_team(&org.id, &name).await?;
            cli_audit(db, &org.id, "team.create", "team", &team.id).await?;
            println!("{}\t{}", team.id, team.name);
        }
        AdminCommand::CreateUser {
            org,
            role,
            team,
            name,
        } => {
            let org = db.find_org(&org).await?;
            let team_id = match team {
                Some(t) => Some(db.find_team(&org.id, &t).await?.id),
                None => None,
            };
            let user = db
                .create_user(&org.id, &name, role, team_id.as_deref())
                .await?;
            cli_audit(db, &org.id, "user.create", "user", &user.id).await?;
            println!("{}\t{}\t{}", user.id, user.name, user.role);
        }
        AdminCommand::ListUsers { org } => {
            let org = db.find_org(&org).await?;
            for u in db.list_users(&org.id, None).await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    u.id,
                    u.name,
                    u.role,
                    u.team_id.unwrap_or_default()
                );
            }
        }
        AdminCommand::CreateDevice { org, user, name } => {
            let org = db.find_org(&org).await?;
            let user = db.find_user(&org.id, &user).await?;
            let device = db.create_device(&org.id, &user.id, &name).await?;
            cli_audit(db, &org.id, "device.create", "device", &device.id).await?;
            println!("{}\t{}\t{}", device.id, device.name, user.name);
        }
        AdminCommand::CreateToken {
            org,
            user,
            device,
            expires_in_days,
            name,
        } => {
            let org = db.find_org(&org).await?;
            let user = db.find_user(&org.id, &user).await?;
            let device_id = match device {
                Some(d) => Some(find_device(db, &org.id, &d).await?),
                None => None,
            };
            let expires_at = match expires_in_days {
                Some(0) => anyhow::bail!("--expires-in-days must be at least 1"),
                Some(d) => Some(now_ms() + i64::from(d) * 86_400_000),
                None => None,
            };
            let (token, secret) = db
                .create_token(
                    &org.id,
                    &user.id,
                    device_id.as_deref(),
                    name.as_deref(),
                    expires_at,
                )
                .await?;
            cli_audit(db, &org.id, "token.create", "token", &token.id).await?;
            if std::io::stderr().is_terminal() {
                eprintln!(
                    "token {} for {} ({}); the secret below is shown only once:",
                    token.id, user.name, user.role
                );
            }
            println!("{secret}");
        }
        AdminCommand::RotateGuardKey => {
            let key = crate::guard::ServerKey::rotate(db, crate::guard::GUARD_KEY_NAME).await?;
            tracing::warn!(key_id = key.key_id(), "guard signing key rotated");
            println!("{}", key.key_id());
        }
        AdminCommand::RotateWebhookSecret { org, webhook } => {
            let org = db.find_org(&org).await?;
            let secret = db.rotate_webhook_secret(&org.id, &webhook).await?;
            cli_audit(db, &org.id, "webhook.rotate_secret", "webhook", &webhook).await?;
            if std::io::stderr().is_terminal() {
                eprintln!("new signing secret of {webhook}; shown only once:");
            }
            println!("{secret}");
        }
    }
    Ok(())
}

async fn find_device(db: &Db, org_id: &str, id_or_name: &str) -> anyhow::Result<String> {
    let devices = db.list_devices(org_id).await?;
    devices
        .into_iter()
        .find(|d| d.id == id_or_name || d.name == id_or_name)
        .map(|d| d.id)
        .ok_or_else(|| anyhow::anyhow!("no device `{id_or_name}` in this organisation"))
}

async fn cli_audit(
    db: &Db,
    org_id: &str,
    action: &str,
    kind: &str,
    id: &str,
) -> anyhow::Result<()> {
    db.audit(crate::db::audit::AuditRecord {
        org_id,
        actor_user_id: None,
        action,
        resource_type: kind,
        resource_id: Some(id),
        reason: Some("assist admin (command line)"),
    })
    .await?;
    Ok(())
}
