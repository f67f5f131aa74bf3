//! Post-call analyses and the follow-up tasks they found.
//!
//! An analysis is one JSON document per call plus its coaching metrics
//! (JSON), written together with the call's tasks in the transaction that
//! completes the analysis job. Re-analysing a call replaces its document and
//! the tasks nobody has touched yet (open ones); done or dismissed tasks stay.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, DbResult};
use crate::time::now_ms;

type Tx = sqlx::Transaction<'static, sqlx::Any>;

#[derive(Debug, Clone, Serialize)]
pub struct AnalysisRow {
    pub id: String,
    pub org_id: String,
    pub call_id: String,
    pub rep_user_id: String,
    pub team_id: Option<String>,
    #[serde(skip)]
    pub document: String,
    #[serde(skip)]
    pub metrics: String,
    pub llm_status: String,
    pub model: Option<String>,
    pub call_started_at: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskRow {
    pub id: String,
    pub org_id: String,
    pub rep_user_id: String,
    pub team_id: Option<String>,
    pub call_id: Option<String>,
    pub title: String,
    /// `rep` or `customer`.
    pub owner: String,
    pub due_at: Option<i64>,
    pub due_text: Option<String>,
    pub source_quote: Option<String>,
    /// `llm`, `rule` or `both`.
    pub origin: String,
    /// `open`, `done` or `dismissed`.
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
}

const ANALYSIS_COLUMNS: &str = "id, org_id, call_id, rep_user_id, team_id, document, metrics, llm_status, model, \
     call_started_at, created_at";
const TASK_COLUMNS: &str = "id, org_id, rep_user_id, team_id, call_id, title, owner, due_at, due_text, source_quote, \
     origin, status, created_at, updated_at, completed_at";

fn analysis_row(r: &AnyRow) -> DbResult<AnalysisRow> {
    Ok(AnalysisRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        call_id: r.try_get("call_id")?,
        rep_user_id: r.try_get("rep_user_id")?,
        team_id: r.try_get("team_id")?,
        document: r.try_get("document")?,
        metrics: r.try_get("metrics")?,
        llm_status: r.try_get("llm_status")?,
        model: r.try_get("model")?,
        call_started_at: r.try_get("call_started_at")?,
        created_at: r.try_get("created_at")?,
    })
}

fn task_row(r: &AnyRow) -> DbResult<TaskRow> {
    Ok(TaskRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        rep_user_id: r.try_get("rep_user_id")?,
        team_id: r.try_get("team_id")?,
        call_id: r.try_get("call_id")?,
        title: r.try_get("title")?,
        owner: r.try_get("owner")?,
        due_at: r.try_get("due_at")?,
        due_text: r.try_get("due_text")?,
        source_quote: r.try_get("source_quote")?,
        origin: r.try_get("origin")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        completed_at: r.try_get("completed_at")?,
    })
}

/// Store (or replace) a call's analysis and its new tasks.
pub async fn store_analysis(tx: &mut Tx, a: &AnalysisRow, tasks: &[TaskRow]) -> DbResult<()> {
    sqlx::query("DELETE FROM analyses WHERE call_id = $1")
        .bind(&a.call_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM tasks WHERE call_id = $1 AND status = 'open'")
        .bind(&a.call_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO analyses ({ANALYSIS_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&a.id)
    .bind(&a.org_id)
    .bind(&a.call_id)
    .bind(&a.rep_user_id)
    .bind(&a.team_id)
    .bind(&a.document)
    .bind(&a.metrics)
    .bind(&a.llm_status)
    .bind(&a.model)
    .bind(a.call_started_at)
    .bind(a.created_at)
    .execute(&mut **tx)
    .await?;
    for t in tasks {
        sqlx::query(&format!(
            "INSERT INTO tasks ({TASK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(&t.id)
        .bind(&t.org_id)
        .bind(&t.rep_user_id)
        .bind(&t.team_id)
        .bind(&t.call_id)
        .bind(&t.title)
        .bind(&t.owner)
        .bind(t.due_at)
        .bind(&t.due_text)
        .bind(&t.source_quote)
        .bind(&t.origin)
        .bind(&t.status)
        .bind(t.created_at)
        .bind(t.updated_at)
        .bind(t.completed_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Which tasks a listing covers.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub rep_user_id: Option<String>,
    pub team_id: Option<String>,
    pub call_id: Option<String>,
    pub status: Option<String>,
    /// Only tasks due before this time (unix ms): with `status = open`, the overdue ones.
    pub due_before: Option<i64>,
    pub limit: i64,
}

impl Db {
    pub async fn analysis_for_call(&self, call_id: &str) -> DbResult<Option<AnalysisRow>> {
        let r = sqlx::query(&format!(
            "SELECT {ANALYSIS_COLUMNS} FROM analyses WHERE call_id = $1"
        ))
        .bind(call_id)
        .fetch_optional(self.pool())
        .await?;
        r.as_ref().map(analysis_row).transpose()
    }

    /// Analyses of one rep or one team whose call started in `[from, to)`.
    pub async fn analyses_between(
        &self,
        org_id: &str,
        rep_user_id: Option<&str>,
        team_id: Option<&str>,
        from: i64,
        to: i64,
    ) -> DbResult<Vec<AnalysisRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ANALYSIS_COLUMNS} FROM analyses WHERE org_id = $1 AND ($2 = '' OR rep_user_id = $2) \
             AND ($3 = '' OR team_id = $3) AND call_started_at >= $4 AND call_started_at < $5 \
             ORDER BY call_started_at LIMIT 10000"
        ))
        .bind(org_id)
        .bind(rep_user_id.unwrap_or(""))
        .bind(team_id.unwrap_or(""))
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(analysis_row).collect()
    }

    pub async fn list_tasks(&self, org_id: &str, f: &TaskFilter) -> DbResult<Vec<TaskRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE org_id = $1 AND ($2 = '' OR rep_user_id = $2) \
             AND ($3 = '' OR team_id = $3) AND ($4 = '' OR call_id = $4) AND ($5 = '' OR status = $5) \
             AND ($6 = 0 OR (due_at IS NOT NULL AND due_at < $6)) \
             ORDER BY CASE WHEN due_at IS NULL THEN 1 ELSE 0 END, due_at, created_at LIMIT $7"
        ))
        .bind(org_id)
        .bind(f.rep_user_id.as_deref().unwrap_or(""))
        .bind(f.team_id.as_deref().unwrap_or(""))
        .bind(f.call_id.as_deref().unwrap_or(""))
        .bind(f.status.as_deref().unwrap_or(""))
        .bind(f.due_before.unwrap_or(0))
        .bind(f.limit.clamp(1, 1000))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(task_row).collect()
    }

    pub async fn get_task(&self, id: &str) -> DbResult<TaskRow> {
        let r = sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| DbError::NotFound(format!("no task `{id}`")))?;
        task_row(&r)
    }

    /// Change a task's status, title or due time.
    pub async fn update_task(
        &self,
        id: &str,
        status: Option<&str>,
        title: Option<&str>,
        due_at: Option<Option<i64>>,
    ) -> DbResult<TaskRow> {
        let now = now_ms();
        let current = self.get_task(id).await?;
        let status = status.unwrap_or(&current.status);
        let completed_at = match (status, current.completed_at) {
            ("done", None) => Some(now),
            ("done", at) => at,
            _ => None,
        };
        sqlx::query(
            "UPDATE tasks SET status = $1, title = $2, due_at = $3, completed_at = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(status)
        .bind(title.unwrap_or(&current.title))
        .bind(due_at.unwrap_or(current.due_at))
        .bind(completed_at)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        self.get_task(id).await
    }

    /// Transcribed calls without an analysis (queued again at startup).
    pub async fn calls_without_analysis(&self) -> DbResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT c.id FROM calls c LEFT JOIN analyses a ON a.call_id = c.id \
             WHERE c.transcribed_at IS NOT NULL AND a.id IS NULL ORDER BY c.created_at LIMIT 10000",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("id")?))
            .collect()
    }
}
