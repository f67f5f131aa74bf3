//! `assist admin`: organisations, teams, users, devices and tokens, straight
//! on the database (audited as the command line).

use std::io::IsTerminal;

use assist_protocol::Role;
use clap::Subcommand;

use assist_server::config::Config;
use assist_server::db::Db;
use assist_server::time::{now_ms, rfc3339};

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
    /// Give a user a console sign-in name and password. The password is read
    /// from standard input (one line; pipe it, it is not echoed anywhere), or
    /// made up and printed once with `--generate`. Ends the user's open
    /// console sessions.
    SetPassword {
        #[arg(long)]
        org: String,
        /// User id or name.
        #[arg(long)]
        user: String,
        /// The sign-in name (default: the user's name without spaces).
        #[arg(long)]
        username: Option<String>,
        /// Make up a strong password and print it.
        #[arg(long)]
        generate: bool,
    },
    /// Make a one-time console invitation link for a user, who then chooses
    /// a password; printed once.
    Invite {
        #[arg(long)]
        org: String,
        /// User id or name.
        #[arg(long)]
        user: String,
        /// The sign-in name (default: the user's name without spaces).
        #[arg(long)]
        username: Option<String>,
        /// Where the console is reached, for the link.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        base_url: String,
        /// Hours the link stays valid.
        #[arg(long, default_value_t = 72)]
        valid_hours: u64,
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

pub(crate) async fn run(config: &Config, cmd: AdminCommand) -> anyhow::Result<()> {
    let db = crate::context::open_db(config).await?;
    let out = admin_with(&db, cmd).await;
    db.close().await;
    out
}

/// Run an admin command against an open database (also used by tests).
pub async fn admin_with(db: &Db, cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::CreateOrg { name } => {
            let org = db.create_org(&name).await?;
            db.audit(assist_server::db::audit::AuditRecord {
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
        AdminCommand::SetPassword {
            org,
            user,
            username,
            generate,
        } => {
            let org = db.find_org(&org).await?;
            let user = db.find_user(&org.id, &user).await?;
            let username = username.unwrap_or_else(|| default_username(&user.name));
            let password = if generate {
                generated_password()
            } else {
                if std::io::stdin().is_terminal() {
                    anyhow::bail!(
                        "pipe the password on standard input (it is not echoed), e.g. `read -rs PW && printf '%s\\n' \"$PW\" | assist admin set-password …`, or use --generate"
                    );
                }
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_string()
            };
            let login = assist_server::console::set_password(db, &user, &username, &password)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            cli_audit(db, &org.id, "console.set_password", "user", &user.id).await?;
            if generate {
                if std::io::stderr().is_terminal() {
                    eprintln!(
                        "console sign-in for {} ({}); the password below is shown only once:",
                        user.name, user.role
                    );
                }
                println!("{}\t{password}", login.username);
            } else {
                println!("{}\t{}", login.username, user.name);
            }
        }
        AdminCommand::Invite {
            org,
            user,
            username,
            base_url,
            valid_hours,
        } => {
            let org = db.find_org(&org).await?;
            let user = db.find_user(&org.id, &user).await?;
            let username = username.unwrap_or_else(|| default_username(&user.name));
            let policy = assist_server::console::Policy::from_config(
                &assist_server::config::ConsoleConfig {
                    console_invite_hours: valid_hours.max(1),
                    ..Default::default()
                },
            );
            let secret =
                assist_server::console::create_invitation(db, &policy, &user, &username, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            cli_audit(db, &org.id, "console.invite", "user", &user.id).await?;
            if std::io::stderr().is_terminal() {
                eprintln!(
                    "invitation for {} (sign-in name {username}), valid {valid_hours} h, shown only once:",
                    user.name
                );
            }
            println!("{}/invite/{secret}", base_url.trim_end_matches('/'));
        }
        AdminCommand::RotateGuardKey => {
            let key =
                assist_server::guard::ServerKey::rotate(db, assist_server::guard::GUARD_KEY_NAME)
                    .await?;
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

/// A sign-in name from a person's name: the name without spaces.
fn default_username(name: &str) -> String {
    name.split_whitespace().collect()
}

/// 16 characters from an alphabet without look-alikes (about 90 bits).
pub(crate) fn generated_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
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
    db.audit(assist_server::db::audit::AuditRecord {
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
