//! `assist kb …`: import, export, list and review the knowledge base from the
//! command line, acting as a named trainer of an organisation.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use assist_knowledge_base::io::{Format, decode_utf8, parse_lexicon, parse_scripts};
use assist_knowledge_base::validate::Limits;
use assist_knowledge_base::{Kind, ReviewPolicy, Status};
use assist_protocol::Role;
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use assist_server::db::Db;
use assist_server::db::identity::UserRow;
use assist_server::db::kb::{KbContent, KbFilter};

/// Which collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Scripts,
    Lexicon,
}

impl KindArg {
    fn kind(self) -> Kind {
        match self {
            KindArg::Scripts => Kind::Script,
            KindArg::Lexicon => Kind::Lexicon,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Import scripts or lexicon entries from CSV, JSON Lines or Markdown
    /// (one file, or a directory of .md files). All records are checked first;
    /// with any error nothing is imported unless --skip-invalid.
    Import {
        /// File or directory.
        path: PathBuf,
        #[arg(long)]
        org: String,
        /// The trainer (name or id) the new versions are authored by.
        #[arg(long = "as")]
        as_user: String,
        #[arg(long, value_enum, default_value = "scripts")]
        kind: KindArg,
        /// csv, jsonl or markdown (default: from the file extension).
        #[arg(long)]
        format: Option<String>,
        /// Import the valid records and report the invalid ones.
        #[arg(long)]
        skip_invalid: bool,
        /// Also submit and approve what was imported (needs --reviewer).
        #[arg(long)]
        approve: bool,
        /// A second trainer who approves (with --approve).
        #[arg(long)]
        reviewer: Option<String>,
    },
    /// Export a collection.
    Export {
        #[arg(long)]
        org: String,
        #[arg(long, value_enum, default_value = "scripts")]
        kind: KindArg,
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Only items in this status (draft, in_review, approved, retired).
        #[arg(long)]
        status: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List a collection.
    List {
        #[arg(long)]
        org: String,
        #[arg(long, value_enum, default_value = "scripts")]
        kind: KindArg,
        #[arg(long)]
        status: Option<String>,
    },
    /// Send a draft for review.
    Submit(ActArgs),
    /// Approve an item in review (a trainer other than its author).
    Approve(ActArgs),
    /// Send an item in review back to draft.
    Reject(ActArgs),
    /// Take an item off phones for good.
    Retire(ActArgs),
    /// Rebuild the script search index (BM25 + vectors) from the approved
    /// scripts in the database, with a progress bar. Stop the server first:
    /// it holds the data directory. (A running server repairs small
    /// differences by itself at startup; this is for a damaged or lost index
    /// or a changed embedder.)
    Reindex,
}

#[derive(Debug, clap::Args)]
pub struct ActArgs {
    /// Item id (internal or your own external id).
    pub id: String,
    #[arg(long)]
    pub org: String,
    /// The trainer acting.
    #[arg(long = "as")]
    pub as_user: String,
    #[arg(long)]
    pub note: Option<String>,
}

fn parse_status(s: &Option<String>) -> anyhow::Result<Option<Status>> {
    match s {
        None => Ok(None),
        Some(t) => Status::parse(t).map(Some).ok_or_else(|| {
            anyhow::anyhow!("unknown status `{t}` (draft, in_review, approved, retired)")
        }),
    }
}

async fn trainer(db: &Db, org_id: &str, who: &str) -> anyhow::Result<UserRow> {
    let user = db.find_user(org_id, who).await?;
    if user.role != Role::Trainer {
        anyhow::bail!(
            "`{}` is a {}; only trainers edit the knowledge base",
            user.name,
            user.role
        );
    }
    Ok(user)
}

fn files_of(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read directory {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| Format::from_path(p).is_some())
            .collect();
        files.sort();
        if files.is_empty() {
            anyhow::bail!("no .csv, .jsonl or .md files in {}", path.display());
        }
        Ok(files)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

/// `assist kb reindex`: take the data directory, load the embedder and
/// rebuild the index from the database.
pub async fn reindex(config: &assist_server::config::Config, db: &Db) -> anyhow::Result<()> {
    let _lock = assist_server::serve::DataDirLock::acquire(&config.storage.data_dir)?;
    let store = crate::context::model_store(config)?;
    let dir = store
        .ready_path("embedder")
        .map_err(|e| anyhow::anyhow!("{e}; fetch it with `assist models fetch --only embedder`"))?;
    let cfg = config.clone();
    let search = tokio::task::spawn_blocking(move || {
        assist_server::suggest::SearchService::open(&cfg, &dir)
    })
    .await??;
    let bar = progress_bar(0, "indexing");
    let started = std::time::Instant::now();
    let out = search
        .rebuild(db, |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await;
    bar.finish_and_clear();
    search.shutdown();
    let repair = out.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "indexed {} approved scripts in {:.1} s ({} old entries cleared)",
        repair.reindexed.len(),
        started.elapsed().as_secs_f64(),
        repair.removed.len()
    );
    Ok(())
}

/// Run a `kb` command.
pub async fn run(db: &Db, cmd: KbCommand, policy: ReviewPolicy) -> anyhow::Result<()> {
    match cmd {
        KbCommand::Import {
            path,
            org,
            as_user,
            kind,
            format,
            skip_invalid,
            approve,
            reviewer,
        } => {
            let org = db.find_org(&org).await?;
            let author = trainer(db, &org.id, &as_user).await?;
            let reviewer = match (approve, reviewer) {
                (true, Some(r)) => Some(trainer(db, &org.id, &r).await?),
                (true, None) if policy.allow_self_approval => Some(author.clone()),
                (true, None) => anyhow::bail!("--approve needs --reviewer (a second trainer)"),
                (false, _) => None,
            };
            let limits = Limits::default();
            let mut records: Vec<(Option<String>, KbContent)> = Vec::new();
            let mut problems = 0usize;
            for file in files_of(&path)? {
                let fmt = match &format {
                    Some(f) => Format::parse(f).ok_or_else(|| {
                        anyhow::anyhow!("unknown format `{f}` (csv, jsonl, markdown)")
                    })?,
                    None => Format::from_path(&file).ok_or_else(|| {
                        anyhow::anyhow!(
                            "cannot tell the format of {} from its extension; pass --format",
                            file.display()
                        )
                    })?,
                };
                let bytes = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let text = match decode_utf8(&bytes) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("{}: {e}", file.display());
                        problems += 1;
                        continue;
                    }
                };
                let errors = match kind.kind() {
                    Kind::Script => {
                        let p = parse_scripts(text, fmt, &limits);
                        records.extend(
                            p.records
                                .into_iter()
                                .map(|r| (r.id, KbContent::Script(r.content))),
                        );
                        p.errors
                    }
                    Kind::Lexicon => {
                        let p = parse_lexicon(text, fmt, &limits);
                        records.extend(
                            p.records
                                .into_iter()
                                .map(|r| (r.id, KbContent::Lexicon(r.content))),
                        );
                        p.errors
                    }
                };
                for e in &errors {
                    eprintln!("{}: {e}", file.display());
                }
                problems += errors.len();
            }
            if problems > 0 && !skip_invalid {
                anyhow::bail!(
                    "{problems} invalid record(s) listed above; nothing was imported ({} valid). Fix them, or pass --skip-invalid",
                    records.len()
                );
            }
            let bar = progress_bar(records.len() as u64, "importing");
            let summary = db
                .kb_import(&org.id, &records, &author.id, &|n| {
                    bar.set_position(n as u64)
                })
                .await?;
            bar.finish_and_clear();
            println!(
                "imported {}: {} created, {} updated, {} unchanged, {} skipped as invalid",
                kind.kind().as_str(),
                summary.created,
                summary.updated,
                summary.unchanged,
                problems
            );
            if let Some(reviewer) = reviewer {
                let items = all_items(db, &org.id, kind.kind(), None).await?;
                let pending: Vec<_> = items
                    .into_iter()
                    .filter(|i| matches!(i.status, Status::Draft | Status::InReview))
                    .collect();
                let bar = progress_bar(pending.len() as u64, "approving");
                let mut approved = 0;
                for item in pending {
                    db.kb_submit_and_approve(
                        &org.id,
                        &item,
                        &author.id,
                        &reviewer.id,
                        policy,
                        Some("imported"),
                        Some("approved on import"),
                    )
                    .await?;
                    approved += 1;
                    bar.inc(1);
                }
                bar.finish_and_clear();
                println!("approved {approved} item(s) as {}", reviewer.name);
            }
        }
        KbCommand::Export {
            org,
            kind,
            format,
            status,
            out,
        } => {
            let org = db.find_org(&org).await?;
            let fmt = Format::parse(&format).ok_or_else(|| {
                anyhow::anyhow!("unknown format `{format}` (csv, jsonl, markdown)")
            })?;
            let items = all_items(db, &org.id, kind.kind(), parse_status(&status)?).await?;
            let text = assist_server::kb::export_text(&items, kind.kind(), fmt)
                .map_err(anyhow::Error::msg)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("exported {} item(s) to {}", items.len(), path.display());
                }
                None => print!("{text}"),
            }
        }
        KbCommand::List { org, kind, status } => {
            let org = db.find_org(&org).await?;
            let items = all_items(db, &org.id, kind.kind(), parse_status(&status)?).await?;
            for i in items {
                println!(
                    "{}\t{}\tv{}\t{}\t{}\t{}",
                    i.external_id.as_deref().unwrap_or(&i.id),
                    i.status.as_str(),
                    i.head_version,
                    i.head.label(),
                    i.head.language(),
                    i.head.title()
                );
            }
        }
        KbCommand::Submit(a) => act(db, a, Status::InReview, policy).await?,
        KbCommand::Approve(a) => act(db, a, Status::Approved, policy).await?,
        KbCommand::Reject(a) => act(db, a, Status::Draft, policy).await?,
        KbCommand::Retire(a) => act(db, a, Status::Retired, policy).await?,
        KbCommand::Reindex => {
            anyhow::bail!(
                "`kb reindex` needs the configuration; run it through `assist kb reindex`"
            )
        }
    }
    Ok(())
}

/// Every item of one kind (optionally in one status), as the CLI lists and exports them.
async fn all_items(
    db: &Db,
    org_id: &str,
    kind: Kind,
    status: Option<Status>,
) -> anyhow::Result<Vec<assist_server::db::kb::KbItem>> {
    Ok(db
        .kb_list(
            org_id,
            kind,
            &KbFilter {
                status,
                limit: 10_000,
                ..KbFilter::default()
            },
        )
        .await?)
}

async fn act(db: &Db, a: ActArgs, to: Status, policy: ReviewPolicy) -> anyhow::Result<()> {
    let org = db.find_org(&a.org).await?;
    let user = trainer(db, &org.id, &a.as_user).await?;
    let item = db.kb_get(&org.id, &a.id).await?;
    let item = if to == Status::Approved {
        db.kb_approve(
            &org.id,
            &item.id,
            item.head_version,
            &user.id,
            policy,
            a.note.as_deref(),
        )
        .await?
        .0
    } else {
        db.kb_transition(
            &org.id,
            &item.id,
            item.head_version,
            to,
            &user.id,
            a.note.as_deref(),
        )
        .await?
    };
    println!(
        "{}\t{}\tv{}",
        item.external_id.as_deref().unwrap_or(&item.id),
        item.status.as_str(),
        item.head_version
    );
    Ok(())
}

fn progress_bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}
