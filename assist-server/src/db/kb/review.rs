//! The knowledge base's workflow steps: submit, reject, retire, and
//! approval with the four-eyes check.

use super::*;

impl Db {
    /// Move the head through the workflow (submit, reject, retire). Approval
    /// has its own method because it needs the four-eyes check.
    pub async fn kb_transition(
        &self,
        org_id: &str,
        id: &str,
        expected_version: i64,
        to: Status,
        actor_id: &str,
        note: Option<&str>,
    ) -> DbResult<KbItem> {
        let current = self.kb_get(org_id, id).await?;
        if current.head_version != expected_version {
            return Err(stale(id, expected_version, current.head_version));
        }
        check_transition(current.status, to).map_err(|e| DbError::Conflict(e.to_string()))?;
        if to == Status::Approved {
            return Err(DbError::Invalid("use the approve action to approve".into()));
        }
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // Retiring takes the item off phones: no approved version any more.
        let clear_approved = to == Status::Retired;
        let n = sqlx::query(
            "UPDATE kb_items SET status = $1, updated_at = $2, \
                 approved_version = CASE WHEN $3 = 1 THEN NULL ELSE approved_version END \
             WHERE id = $4 AND head_version = $5 AND status = $6",
        )
        .bind(to.as_str())
        .bind(now)
        .bind(i64::from(clear_approved))
        .bind(&current.id)
        .bind(expected_version)
        .bind(current.status.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            return Err(stale(id, expected_version, current.head_version));
        }
        insert_event(
            &mut tx,
            &current.id,
            expected_version,
            Some(current.status),
            to,
            actor_id,
            note,
            now,
        )
        .await?;
        tx.commit().await?;
        self.kb_get(org_id, &current.id).await
    }

    /// Approve the head version (in review) as `reviewer_id`. For scripts the
    /// [`ApprovedScript`] to index is returned.
    pub async fn kb_approve(
        &self,
        org_id: &str,
        id: &str,
        expected_version: i64,
        reviewer_id: &str,
        policy: ReviewPolicy,
        note: Option<&str>,
    ) -> DbResult<(KbItem, Option<ApprovedScript>)> {
        let current = self.kb_get(org_id, id).await?;
        if current.head_version != expected_version {
            return Err(stale(id, expected_version, current.head_version));
        }
        check_transition(current.status, Status::Approved)
            .map_err(|e| DbError::Conflict(e.to_string()))?;
        let authors = self
            .kb_authors_under_review(&current.id, expected_version)
            .await?;
        let authors: Vec<&str> = authors.iter().map(String::as_str).collect();
        workflow::check_reviewer(&authors, reviewer_id, policy)
            .map_err(|e| DbError::Forbidden(e.to_string()))?;
        let approved = match &current.head {
            KbContent::Script(content) => Some(
                workflow::approve(
                    Candidate {
                        script_id: &current.id,
                        org_id,
                        version: u32::try_from(current.head_version).unwrap_or(u32::MAX),
                        status: current.status,
                        author_ids: &authors,
                        content,
                    },
                    reviewer_id,
                    policy,
                )
                .map_err(|e| DbError::Conflict(e.to_string()))?,
            ),
            KbContent::Lexicon(_) => None,
        };
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE kb_items SET status = 'approved', approved_version = head_version, updated_at = $1 \
             WHERE id = $2 AND head_version = $3 AND status = 'in_review'",
        )
        .bind(now)
        .bind(&current.id)
        .bind(expected_version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            return Err(stale(id, expected_version, current.head_version));
        }
        insert_event(
            &mut tx,
            &current.id,
            expected_version,
            Some(current.status),
            Status::Approved,
            reviewer_id,
            note,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok((self.kb_get(org_id, &current.id).await?, approved))
    }

    /// Everyone who wrote a version of `item_id` up to `head` since its last
    /// approval: the text under review is theirs, so none of them may approve
    /// it. The approve update checks the head is still `head`, so this set
    /// cannot grow before the approval commits.
    async fn kb_authors_under_review(&self, item_id: &str, head: i64) -> DbResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT author_id FROM kb_versions WHERE item_id = $1 AND version <= $2 \
             AND version > COALESCE((SELECT MAX(version) FROM kb_events \
                 WHERE item_id = $3 AND to_status = 'approved' AND version <= $4), 0)",
        )
        .bind(item_id)
        .bind(head)
        .bind(item_id)
        .bind(head)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| r.try_get("author_id").map_err(DbError::from))
            .collect()
    }

    /// Submit `item` if it is a draft, then approve it: what a bulk
    /// import with approval does per item.
    #[allow(clippy::too_many_arguments)]
    pub async fn kb_submit_and_approve(
        &self,
        org_id: &str,
        item: &KbItem,
        author_id: &str,
        reviewer_id: &str,
        policy: ReviewPolicy,
        submit_note: Option<&str>,
        approve_note: Option<&str>,
    ) -> DbResult<(KbItem, Option<ApprovedScript>)> {
        let mut version = item.head_version;
        if item.status == Status::Draft {
            version = self
                .kb_transition(
                    org_id,
                    &item.id,
                    version,
                    Status::InReview,
                    author_id,
                    submit_note,
                )
                .await?
                .head_version;
        }
        self.kb_approve(org_id, &item.id, version, reviewer_id, policy, approve_note)
            .await
    }
}
