//! Storage of the knowledge base: items, versions and workflow events.
//!
//! Every save is a new version (so history and diffs are complete). Writes
//! carry the head version the editor saw; if someone else saved in between,
//! the write is refused as a conflict (optimistic concurrency) and nothing is
//! written. Each operation is one transaction that starts with its write.
//!
//! This file holds the types, row mapping and the plain reads and writes;
//! `review` the workflow steps with the four-eyes check; `import` bulk
//! imports in one transaction.

use assist_knowledge_base::validate::{FieldError, Limits, validate_lexicon, validate_script};
use assist_knowledge_base::workflow::{self, Candidate, ReviewPolicy, check_transition};
use assist_knowledge_base::{ApprovedScript, Kind, LexiconContent, ScriptContent, Status};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, DbResult, is_unique_violation};
use crate::time::now_ms;

mod import;
mod review;

pub use import::ImportSummary;

/// Content of either kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum KbContent {
    Script(ScriptContent),
    Lexicon(LexiconContent),
}

impl KbContent {
    pub fn kind(&self) -> Kind {
        match self {
            KbContent::Script(_) => Kind::Script,
            KbContent::Lexicon(_) => Kind::Lexicon,
        }
    }

    /// Title of a script, pattern of a lexicon entry.
    pub fn title(&self) -> &str {
        match self {
            KbContent::Script(s) => &s.title,
            KbContent::Lexicon(l) => &l.pattern,
        }
    }

    /// Scenario of a script, category of a lexicon entry.
    pub fn label(&self) -> &'static str {
        match self {
            KbContent::Script(s) => s.scenario.as_str(),
            KbContent::Lexicon(l) => l.category.as_str(),
        }
    }

    pub fn language(&self) -> &'static str {
        match self {
            KbContent::Script(s) => s.language.as_str(),
            KbContent::Lexicon(l) => l.language.as_str(),
        }
    }

    /// Validate and normalise.
    pub fn validated(&self, limits: &Limits) -> Result<KbContent, Vec<FieldError>> {
        match self {
            KbContent::Script(s) => validate_script(s, limits).map(KbContent::Script),
            KbContent::Lexicon(l) => validate_lexicon(l, limits).map(KbContent::Lexicon),
        }
    }

    fn to_json(&self) -> String {
        match self {
            KbContent::Script(s) => serde_json::to_string(s),
            KbContent::Lexicon(l) => serde_json::to_string(l),
        }
        .unwrap_or_default()
    }

    fn from_json(kind: Kind, text: &str) -> DbResult<KbContent> {
        let parsed = match kind {
            Kind::Script => serde_json::from_str(text).map(KbContent::Script),
            Kind::Lexicon => serde_json::from_str(text).map(KbContent::Lexicon),
        };
        parsed.map_err(|e| DbError::Invalid(format!("stored content is unreadable: {e}")))
    }

    /// The text compared in version diffs.
    pub fn diff_text(&self) -> String {
        match self {
            KbContent::Script(s) => assist_knowledge_base::diff::script_text(s),
            KbContent::Lexicon(l) => assist_knowledge_base::diff::lexicon_text(l),
        }
    }
}

/// An item with its head and (if any) approved content.
#[derive(Debug, Clone, Serialize)]
pub struct KbItem {
    pub id: String,
    pub org_id: String,
    pub kind: Kind,
    pub external_id: Option<String>,
    pub status: Status,
    pub head_version: i64,
    pub approved_version: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub head: KbContent,
    pub head_author_id: String,
    /// The live content when it differs from the head (an edit in review).
    pub approved: Option<KbContent>,
}

/// One version in the history.
#[derive(Debug, Clone, Serialize)]
pub struct KbVersion {
    pub version: i64,
    pub content: KbContent,
    pub author_id: String,
    pub created_at: i64,
}

/// One workflow step in the history.
#[derive(Debug, Clone, Serialize)]
pub struct KbEvent {
    pub version: i64,
    pub from_status: Option<Status>,
    pub to_status: Status,
    pub actor_id: String,
    pub note: Option<String>,
    pub at: i64,
}

/// List filters.
#[derive(Debug, Clone, Default)]
pub struct KbFilter {
    pub status: Option<Status>,
    /// Scenario (scripts) or category (lexicon).
    pub label: Option<String>,
    pub language: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

fn kind_str(k: Kind) -> &'static str {
    k.as_str()
}

fn parse_kind(s: &str) -> DbResult<Kind> {
    match s {
        "script" => Ok(Kind::Script),
        "lexicon" => Ok(Kind::Lexicon),
        other => Err(DbError::Invalid(format!("unknown kb kind `{other}`"))),
    }
}

fn parse_status(s: &str) -> DbResult<Status> {
    Status::parse(s).ok_or_else(|| DbError::Invalid(format!("unknown status `{s}`")))
}

fn invalid(errors: Vec<FieldError>) -> DbError {
    DbError::Invalid(
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "),
    )
}

fn stale(id: &str, expected: i64, actual: i64) -> DbError {
    DbError::Conflict(format!(
        "`{id}` was changed by someone else (you edited version {expected}, the latest is {actual}); reload and try again"
    ))
}

const ITEM_COLUMNS: &str = "i.id, i.org_id, i.kind, i.external_id, i.status, i.head_version, i.approved_version, \
     i.created_at, i.updated_at, h.content AS head_content, h.author_id AS head_author, a.content AS approved_content";

const ITEM_FROM: &str = "kb_items i JOIN kb_versions h ON h.item_id = i.id AND h.version = i.head_version \
     LEFT JOIN kb_versions a ON a.item_id = i.id AND a.version = i.approved_version";

fn item_row(r: &AnyRow) -> DbResult<KbItem> {
    let kind = parse_kind(&r.try_get::<String, _>("kind")?)?;
    let head_version: i64 = r.try_get("head_version")?;
    let approved_version: Option<i64> = r.try_get("approved_version")?;
    let approved_content: Option<String> = r.try_get("approved_content")?;
    let approved = match (approved_version, approved_content) {
        (Some(v), Some(text)) if v != head_version => Some(KbContent::from_json(kind, &text)?),
        _ => None,
    };
    Ok(KbItem {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        kind,
        external_id: r.try_get("external_id")?,
        status: parse_status(&r.try_get::<String, _>("status")?)?,
        head_version,
        approved_version,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        head: KbContent::from_json(kind, &r.try_get::<String, _>("head_content")?)?,
        head_author_id: r.try_get("head_author")?,
        approved,
    })
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

async fn insert_version(
    tx: &mut Tx,
    item_id: &str,
    version: i64,
    content: &KbContent,
    author: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query("INSERT INTO kb_versions (item_id, version, content, author_id, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(item_id)
        .bind(version)
        .bind(content.to_json())
        .bind(author)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert_event(
    tx: &mut Tx,
    item_id: &str,
    version: i64,
    from: Option<Status>,
    to: Status,
    actor: &str,
    note: Option<&str>,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO kb_events (item_id, version, from_status, to_status, actor_id, note, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(item_id)
    .bind(version)
    .bind(from.map(Status::as_str))
    .bind(to.as_str())
    .bind(actor)
    .bind(note)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Insert a new item whose version 1 (draft) is `content`; returns its id.
#[allow(clippy::too_many_arguments)]
async fn insert_item(
    tx: &mut Tx,
    org_id: &str,
    content: &KbContent,
    external_id: Option<&str>,
    author_id: &str,
    note: Option<&str>,
    now: i64,
) -> DbResult<String> {
    let id = format!(
        "{}_{}",
        match content.kind() {
            Kind::Script => "scr",
            Kind::Lexicon => "lex",
        },
        uuid::Uuid::now_v7().simple()
    );
    sqlx::query(
        "INSERT INTO kb_items (id, org_id, kind, external_id, status, head_version, approved_version, title, label, language, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'draft', 1, NULL, $5, $6, $7, $8, $8)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(kind_str(content.kind()))
    .bind(external_id)
    .bind(content.title())
    .bind(content.label())
    .bind(content.language())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            DbError::Conflict(format!(
                "an item with id `{}` already exists",
                external_id.unwrap_or_default()
            ))
        } else {
            e.into()
        }
    })?;
    insert_version(tx, &id, 1, content, author_id, now).await?;
    insert_event(tx, &id, 1, None, Status::Draft, author_id, note, now).await?;
    Ok(id)
}

/// Make `content` the new head (a draft) of `item_id`, provided the head is
/// still `head`. `false` means someone else moved it first; nothing is written.
#[allow(clippy::too_many_arguments)]
async fn append_head(
    tx: &mut Tx,
    item_id: &str,
    head: i64,
    from: Status,
    content: &KbContent,
    author_id: &str,
    note: Option<&str>,
    now: i64,
) -> DbResult<bool> {
    let n = sqlx::query(
        "UPDATE kb_items SET head_version = $1, status = 'draft', title = $2, label = $3, language = $4, updated_at = $5 \
         WHERE id = $6 AND head_version = $7",
    )
    .bind(head + 1)
    .bind(content.title())
    .bind(content.label())
    .bind(content.language())
    .bind(now)
    .bind(item_id)
    .bind(head)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n != 1 {
        return Ok(false);
    }
    insert_version(tx, item_id, head + 1, content, author_id, now).await?;
    insert_event(
        tx,
        item_id,
        head + 1,
        Some(from),
        Status::Draft,
        author_id,
        note,
        now,
    )
    .await?;
    Ok(true)
}

impl Db {
    /// Create a new item as version 1, draft.
    pub async fn kb_create(
        &self,
        org_id: &str,
        content: &KbContent,
        author_id: &str,
        external_id: Option<&str>,
        limits: &Limits,
    ) -> DbResult<KbItem> {
        let content = content.validated(limits).map_err(invalid)?;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let id = insert_item(&mut tx, org_id, &content, external_id, author_id, None, now).await?;
        tx.commit().await?;
        self.kb_get(org_id, &id).await
    }

    /// Load an item of `org_id` by internal or external id.
    pub async fn kb_get(&self, org_id: &str, id: &str) -> DbResult<KbItem> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM {ITEM_FROM} WHERE i.org_id = $1 AND (i.id = $2 OR i.external_id = $2)"
        );
        let r = sqlx::query(&sql)
            .bind(org_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| {
                DbError::NotFound(format!(
                    "no knowledge-base item `{id}` in this organisation"
                ))
            })?;
        item_row(&r)
    }

    /// Items of one kind, newest first.
    /// How many items of a kind are in each workflow state (`draft`,
    /// `in_review`, …): numbers for home pages.
    pub async fn kb_status_counts(&self, org_id: &str, kind: Kind) -> DbResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM kb_items WHERE org_id = $1 AND kind = $2 GROUP BY status ORDER BY status",
        )
        .bind(org_id)
        .bind(kind_str(kind))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }

    pub async fn kb_list(&self, org_id: &str, kind: Kind, f: &KbFilter) -> DbResult<Vec<KbItem>> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM {ITEM_FROM} WHERE i.org_id = $1 AND i.kind = $2 \
               AND ($3 = '' OR i.status = $3) AND ($4 = '' OR i.label = $4) AND ($5 = '' OR i.language = $5) \
             ORDER BY i.updated_at DESC, i.id LIMIT $6 OFFSET $7"
        );
        let rows = sqlx::query(&sql)
            .bind(org_id)
            .bind(kind_str(kind))
            .bind(f.status.map(Status::as_str).unwrap_or(""))
            .bind(f.label.clone().unwrap_or_default())
            .bind(f.language.clone().unwrap_or_default())
            .bind(if f.limit <= 0 {
                100
            } else {
                f.limit.min(10_000)
            })
            .bind(f.offset.max(0))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(item_row).collect()
    }

    /// Save an edit as a new head version (draft). `expected_version` is the
    /// head the editor started from.
    pub async fn kb_update(
        &self,
        org_id: &str,
        id: &str,
        expected_version: i64,
        content: &KbContent,
        author_id: &str,
        limits: &Limits,
    ) -> DbResult<KbItem> {
        let current = self.kb_get(org_id, id).await?;
        if current.kind != content.kind() {
            return Err(DbError::Invalid(format!(
                "`{id}` is a {}, not a {}",
                current.kind.as_str(),
                content.kind().as_str()
            )));
        }
        let content = content.validated(limits).map_err(invalid)?;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let moved = append_head(
            &mut tx,
            &current.id,
            expected_version,
            current.status,
            &content,
            author_id,
            Some("edited"),
            now,
        )
        .await?;
        if !moved {
            tx.rollback().await?;
            return Err(stale(id, expected_version, current.head_version));
        }
        tx.commit().await?;
        self.kb_get(org_id, &current.id).await
    }

    /// Every version of an item, oldest first, and every workflow event.
    pub async fn kb_history(
        &self,
        org_id: &str,
        id: &str,
    ) -> DbResult<(KbItem, Vec<KbVersion>, Vec<KbEvent>)> {
        let item = self.kb_get(org_id, id).await?;
        let rows = sqlx::query(
            "SELECT version, content, author_id, created_at FROM kb_versions WHERE item_id = $1 ORDER BY version",
        )
        .bind(&item.id)
        .fetch_all(self.pool())
        .await?;
        let versions = rows
            .iter()
            .map(|r| {
                Ok(KbVersion {
                    version: r.try_get("version")?,
                    content: KbContent::from_json(item.kind, &r.try_get::<String, _>("content")?)?,
                    author_id: r.try_get("author_id")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<DbResult<Vec<_>>>()?;
        let rows = sqlx::query(
            "SELECT version, from_status, to_status, actor_id, note, at FROM kb_events WHERE item_id = $1 ORDER BY at, version",
        )
        .bind(&item.id)
        .fetch_all(self.pool())
        .await?;
        let events = rows
            .iter()
            .map(|r| {
                let from: Option<String> = r.try_get("from_status")?;
                Ok(KbEvent {
                    version: r.try_get("version")?,
                    from_status: from.as_deref().map(parse_status).transpose()?,
                    to_status: parse_status(&r.try_get::<String, _>("to_status")?)?,
                    actor_id: r.try_get("actor_id")?,
                    note: r.try_get("note")?,
                    at: r.try_get("at")?,
                })
            })
            .collect::<DbResult<Vec<_>>>()?;
        Ok((item, versions, events))
    }

    /// All approved scripts of an organisation (for index rebuilds).
    pub async fn kb_approved_scripts(&self, org_id: Option<&str>) -> DbResult<Vec<ApprovedScript>> {
        let rows = sqlx::query(
            "SELECT i.id, i.org_id, i.approved_version, v.content FROM kb_items i \
             JOIN kb_versions v ON v.item_id = i.id AND v.version = i.approved_version \
             WHERE i.kind = 'script' AND i.approved_version IS NOT NULL AND ($1 = '' OR i.org_id = $1) ORDER BY i.id",
        )
        .bind(org_id.unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let content: ScriptContent =
                    serde_json::from_str(&r.try_get::<String, _>("content")?).map_err(|e| {
                        DbError::Invalid(format!("stored script is unreadable: {e}"))
                    })?;
                let version: i64 = r.try_get("approved_version")?;
                let id: String = r.try_get("id")?;
                let org: String = r.try_get("org_id")?;
                workflow::restore_approved(
                    &id,
                    &org,
                    u32::try_from(version).unwrap_or(u32::MAX),
                    Status::Approved,
                    content,
                )
                .ok_or_else(|| DbError::Invalid("approved script could not be restored".into()))
            })
            .collect()
    }
    /// The approved risk-lexicon entries of an organisation, as `(id, content)`.
    pub async fn kb_approved_lexicon(
        &self,
        org_id: &str,
    ) -> DbResult<Vec<(String, LexiconContent)>> {
        let rows = sqlx::query(
            "SELECT i.id, v.content FROM kb_items i \
             JOIN kb_versions v ON v.item_id = i.id AND v.version = i.approved_version \
             WHERE i.kind = 'lexicon' AND i.approved_version IS NOT NULL AND i.org_id = $1 ORDER BY i.id",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let content: LexiconContent =
                    serde_json::from_str(&r.try_get::<String, _>("content")?).map_err(|e| {
                        DbError::Invalid(format!("stored lexicon entry is unreadable: {e}"))
                    })?;
                Ok((r.try_get("id")?, content))
            })
            .collect()
    }

    /// Changes whenever the organisation's lexicon changes (count and newest
    /// update), so a cached risk engine knows when to rebuild.
    pub async fn kb_lexicon_stamp(&self, org_id: &str) -> DbResult<(i64, i64)> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(MAX(updated_at), 0) AS at FROM kb_items \
             WHERE org_id = $1 AND kind = 'lexicon'",
        )
        .bind(org_id)
        .fetch_one(self.pool())
        .await?;
        Ok((r.try_get("n")?, r.try_get("at")?))
    }
}
