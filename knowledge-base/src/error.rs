//! Errors of the knowledge base.

use crate::model::Status;
use crate::validate::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot move from {} to {}", from.as_str(), to.as_str())]
    InvalidTransition { from: Status, to: Status },
    #[error("it is already retired")]
    AlreadyRetired,
    #[error("authors cannot approve their own drafts; another trainer must review it")]
    SelfApproval,
    #[error("invalid content: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}
