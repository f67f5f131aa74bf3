//! Curated content for the assist service: the sales-scripts library (话术)
//! and the risk lexicon, with their review workflow.
//!
//! How the pieces fit together:
//!
//! - [`model`] holds the content types: [`ScriptContent`] (title, body,
//!   scenario, tags, products, language) and [`LexiconContent`] (pattern,
//!   category, severity, match mode, action, language), and the workflow
//!   [`Status`] (draft → in_review → approved → retired).
//! - [`validate`] checks content field by field (regular expressions are
//!   compiled, with the error position); [`io`] parses and writes CSV, JSON
//!   Lines and Markdown-with-front-matter, reporting every bad record by
//!   number and line; [`diff`] renders version-to-version changes.
//! - [`workflow`] enforces the transitions and the four-eyes rule, and is the
//!   only place an [`ApprovedScript`] comes from: the indexer accepts nothing
//!   else, so unapproved text can never reach a phone.
//!
//! Storage lives in the server (one schema for SQLite and PostgreSQL); this
//! crate is pure logic with no I/O beyond parsing text.
//!
//! ```
//! use assist_knowledge_base::io::{Format, parse_scripts};
//! use assist_knowledge_base::validate::Limits;
//! use assist_knowledge_base::Scenario;
//!
//! let csv = "title,body,scenario,language\n价格异议,我理解您的顾虑……,价格异议,zh\n";
//! let parsed = parse_scripts(csv, Format::Csv, &Limits::default());
//! assert!(parsed.is_clean());
//! assert_eq!(parsed.records[0].content.scenario, Scenario::PriceObjection);
//! ```

pub mod diff;
pub mod error;
pub mod io;
pub mod model;
pub mod validate;
pub mod workflow;

pub use error::Error;
pub use model::*;
pub use workflow::{ApprovedScript, ReviewPolicy};
