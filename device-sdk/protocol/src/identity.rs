//! Organisations, teams, users, devices and tokens as they appear on the wire.

use serde::{Deserialize, Serialize};

/// What a user may do. Checked on every endpoint together with the organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sales rep or service agent: own calls, own suggestions, own tasks, appeals.
    Rep,
    /// Team lead: alerts and aggregates for their own team.
    Manager,
    /// Curates the scripts library and the risk lexicon.
    Trainer,
    /// Reviews risk events, appeals, the audit log and retention.
    Compliance,
    /// Manages the organisation: teams, users, devices, tokens.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Rep,
        Role::Manager,
        Role::Trainer,
        Role::Compliance,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Rep => "rep",
            Role::Manager => "manager",
            Role::Trainer => "trainer",
            Role::Compliance => "compliance",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role `{s}` (expected one of rep, manager, trainer, compliance, admin)"
                )
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub org_id: String,
    pub team_id: Option<String>,
    pub name: String,
    pub role: Role,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub org_id: String,
    /// The rep this work phone is bound to.
    pub user_id: String,
    pub name: String,
    pub created_at: String,
}

/// A newly created API token. `secret` is shown exactly once: the server keeps
/// only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub id: String,
    pub user_id: String,
    pub device_id: Option<String>,
    pub secret: String,
    pub expires_at: Option<String>,
}

/// Token metadata (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub user_id: String,
    pub device_id: Option<String>,
    pub name: String,
    /// The first characters of the secret, to recognise it in a list.
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// Who the caller is, as returned by `GET /v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub user: User,
    pub org: Org,
    pub device_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTeam {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUser {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub team_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateDevice {
    pub user_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateToken {
    pub user_id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Bind the token to one of the user's devices (device tokens).
    #[serde(default)]
    pub device_id: Option<String>,
    /// Lifetime in days; none means the token does not expire.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub org_id: String,
    pub actor_user_id: Option<String>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    /// Why the content was opened (from the `X-Access-Reason` header), if given.
    pub reason: Option<String>,
    pub at: String,
}

/// A page of results with an opaque cursor for the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}
