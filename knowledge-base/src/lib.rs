//! Curated content for the assist service: the sales-scripts library (话术) and
//! the risk lexicon, with their draft → in_review → approved → retired workflow.
//!
//! Only the approve transition produces an [`ApprovedScript`]; the indexer
//! accepts nothing else, so unapproved text can never reach a phone.
//!
//! This crate is filled in by the Knowledge issue; the foundation fixes the
//! workflow states and the approval type so other crates can build on them.
//!
//! ```
//! use assist_knowledge_base::Status;
//! assert!(Status::Draft.can_move_to(Status::InReview));
//! assert!(!Status::Draft.can_move_to(Status::Approved));
//! ```

use serde::{Deserialize, Serialize};

/// Workflow state of a script or a lexicon entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    InReview,
    Approved,
    Retired,
}

impl Status {
    /// Whether the workflow allows `self → to`. Edits of approved content go
    /// back to `Draft` and through review again.
    pub fn can_move_to(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Draft, InReview)
                | (InReview, Draft)
                | (InReview, Approved)
                | (Approved, Draft)
                | (Approved, Retired)
                | (Draft, Retired)
        )
    }
}

/// A script that passed review. Its fields are private and the only
/// constructor is crate-internal, so holding one proves approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovedScript {
    id: String,
    version: u32,
    title: String,
    body: String,
}

impl ApprovedScript {
    #[allow(dead_code)] // used by the approve transition (Knowledge issue)
    pub(crate) fn new(id: String, version: u32, title: String, body: String) -> Self {
        ApprovedScript {
            id,
            version,
            title,
            body,
        }
    }
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn title(&self) -> &str {
        &self.title
    }
    pub fn body(&self) -> &str {
        &self.body
    }
}

/// Errors of the knowledge base.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot move from {from:?} to {to:?}")]
    InvalidTransition { from: Status, to: Status },
}
