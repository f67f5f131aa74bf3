//! The review workflow and the approval type.

use serde::Serialize;

use crate::error::Error;
use crate::model::{Language, Scenario, ScriptContent, Status};

/// Who may approve what.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReviewPolicy {
    /// Let an author approve their own draft (off by default: four eyes).
    pub allow_self_approval: bool,
}

/// Fail unless the workflow allows `from → to`.
pub fn check_transition(from: Status, to: Status) -> Result<(), Error> {
    if from == to && to == Status::Retired {
        return Err(Error::AlreadyRetired);
    }
    if from.can_move_to(to) {
        Ok(())
    } else {
        Err(Error::InvalidTransition { from, to })
    }
}

/// Fail unless `reviewer` may approve text written by `author_ids`: everyone
/// who wrote a version under review (every version since the last approval),
/// not only the latest editor — otherwise one author could ask a colleague
/// for a trivial edit and then approve their own words.
pub fn check_reviewer(
    author_ids: &[&str],
    reviewer_id: &str,
    policy: ReviewPolicy,
) -> Result<(), Error> {
    if author_ids.contains(&reviewer_id) && !policy.allow_self_approval {
        return Err(Error::SelfApproval);
    }
    Ok(())
}

/// A script version that passed review. Its fields are private and there are
/// two ways to get one, both checking the status: [`approve`] (the review
/// transition) and [`restore_approved`] (reading back what the database
/// recorded as approved, for index rebuilds). The indexer accepts nothing
/// else, so unapproved text cannot reach a phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovedScript {
    id: String,
    org_id: String,
    version: u32,
    content: ScriptContent,
}

impl ApprovedScript {
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn org_id(&self) -> &str {
        &self.org_id
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn title(&self) -> &str {
        &self.content.title
    }
    pub fn body(&self) -> &str {
        &self.content.body
    }
    pub fn scenario(&self) -> Scenario {
        self.content.scenario
    }
    pub fn tags(&self) -> &[String] {
        &self.content.tags
    }
    pub fn products(&self) -> &[String] {
        &self.content.products
    }
    pub fn language(&self) -> Language {
        self.content.language
    }
    pub fn content(&self) -> &ScriptContent {
        &self.content
    }
}

/// A version under review, as the caller loaded it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub script_id: &'a str,
    pub org_id: &'a str,
    pub version: u32,
    pub status: Status,
    /// Everyone who wrote a version under review (since the last approval).
    pub author_ids: &'a [&'a str],
    pub content: &'a ScriptContent,
}

/// The approve transition: `in_review → approved` by a reviewer the policy allows.
pub fn approve(
    c: Candidate<'_>,
    reviewer_id: &str,
    policy: ReviewPolicy,
) -> Result<ApprovedScript, Error> {
    check_transition(c.status, Status::Approved)?;
    check_reviewer(c.author_ids, reviewer_id, policy)?;
    Ok(ApprovedScript {
        id: c.script_id.to_string(),
        org_id: c.org_id.to_string(),
        version: c.version,
        content: c.content.clone(),
    })
}

/// Rebuild the approval of a version the database records as approved
/// (index rebuilds and consistency repair). `None` unless `status` is approved.
pub fn restore_approved(
    script_id: &str,
    org_id: &str,
    version: u32,
    status: Status,
    content: ScriptContent,
) -> Option<ApprovedScript> {
    (status == Status::Approved).then(|| ApprovedScript {
        id: script_id.to_string(),
        org_id: org_id.to_string(),
        version,
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> ScriptContent {
        ScriptContent {
            title: "t".into(),
            body: "b".into(),
            scenario: Scenario::Closing,
            tags: vec![],
            products: vec![],
            language: Language::En,
        }
    }

    #[test]
    fn approval_needs_review_and_a_second_person() {
        let c = content();
        let cand = |status| Candidate {
            script_id: "s1",
            org_id: "o1",
            version: 2,
            status,
            author_ids: &["alice", "carol"],
            content: &c,
        };
        assert!(matches!(
            approve(cand(Status::Draft), "bob", ReviewPolicy::default()),
            Err(Error::InvalidTransition { .. })
        ));
        assert!(matches!(
            approve(cand(Status::InReview), "alice", ReviewPolicy::default()),
            Err(Error::SelfApproval)
        ));
        // Any author of a version under review, not only the latest.
        assert!(matches!(
            approve(cand(Status::InReview), "carol", ReviewPolicy::default()),
            Err(Error::SelfApproval)
        ));
        let ok = approve(
            cand(Status::InReview),
            "alice",
            ReviewPolicy {
                allow_self_approval: true,
            },
        )
        .unwrap();
        assert_eq!(ok.version(), 2);
        let ok = approve(cand(Status::InReview), "bob", ReviewPolicy::default()).unwrap();
        assert_eq!(ok.id(), "s1");
        assert!(restore_approved("s1", "o1", 1, Status::Draft, content()).is_none());
        assert!(restore_approved("s1", "o1", 1, Status::Approved, content()).is_some());
    }

    #[test]
    fn retiring_twice_is_its_own_error() {
        assert!(matches!(
            check_transition(Status::Retired, Status::Retired),
            Err(Error::AlreadyRetired)
        ));
        assert!(check_transition(Status::Approved, Status::Retired).is_ok());
        assert!(check_transition(Status::Draft, Status::Approved).is_err());
    }
}
