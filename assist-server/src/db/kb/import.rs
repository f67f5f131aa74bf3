//! Bulk import of validated records in one transaction.

use super::*;

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSummary {
    pub created: usize,
    /// Existing items (same `id`) that got a new draft version.
    pub updated: usize,
    /// Existing items whose content was identical (no new version).
    pub unchanged: usize,
}

impl Db {
    /// Import validated records in ONE transaction: all or nothing. Records
    /// with an `id` that exists get a new draft version; others are created.
    /// `progress` is called after each record.
    pub async fn kb_import(
        &self,
        org_id: &str,
        records: &[(Option<String>, KbContent)],
        author_id: &str,
        progress: &(dyn Fn(usize) + Sync),
    ) -> DbResult<ImportSummary> {
        let mut summary = ImportSummary::default();
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // Take the write lock first (SQLite): the reads below must not
        // upgrade a read transaction later, which could fail under load.
        sqlx::query("UPDATE kb_items SET updated_at = updated_at WHERE id = ''")
            .execute(&mut *tx)
            .await?;
        for (i, (external_id, content)) in records.iter().enumerate() {
            let existing =
                match external_id {
                    Some(ext) => sqlx::query(
                        "SELECT i.id, i.kind, i.status, i.head_version, v.content FROM kb_items i \
                     JOIN kb_versions v ON v.item_id = i.id AND v.version = i.head_version \
                     WHERE i.org_id = $1 AND i.external_id = $2 AND i.kind = $3",
                    )
                    .bind(org_id)
                    .bind(ext)
                    .bind(kind_str(content.kind()))
                    .fetch_optional(&mut *tx)
                    .await?,
                    None => None,
                };
            match existing {
                Some(row) => {
                    let item_id: String = row.try_get("id")?;
                    let head: i64 = row.try_get("head_version")?;
                    let status = parse_status(&row.try_get::<String, _>("status")?)?;
                    let old = KbContent::from_json(
                        content.kind(),
                        &row.try_get::<String, _>("content")?,
                    )?;
                    if &old == content {
                        summary.unchanged += 1;
                    } else {
                        // The import holds the write lock, so the head cannot move under it.
                        let moved = append_head(
                            &mut tx,
                            &item_id,
                            head,
                            status,
                            content,
                            author_id,
                            Some("imported"),
                            now,
                        )
                        .await?;
                        if !moved {
                            return Err(stale(&item_id, head, head + 1));
                        }
                        summary.updated += 1;
                    }
                }
                None => {
                    insert_item(
                        &mut tx,
                        org_id,
                        content,
                        external_id.as_deref(),
                        author_id,
                        Some("imported"),
                        now,
                    )
                    .await?;
                    summary.created += 1;
                }
            }
            progress(i + 1);
        }
        tx.commit().await?;
        Ok(summary)
    }
}
