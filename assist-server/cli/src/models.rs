//! `assist models`: fetch, list and verify the local models.

use assist_models::store::{ModelState, ModelStatus};
use clap::Subcommand;

use assist_server::config::Config;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download, assemble and verify models (idempotent; resumes).
    Fetch {
        /// Only these roles or model ids (repeatable or comma-separated). Default: all non-optional models.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Show every model: missing / partial / ready / corrupt, with sizes.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash ready models; corrupt ones are moved aside.
    Verify {
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
}

pub(crate) async fn run(config: &Config, cmd: ModelsCommand) -> anyhow::Result<()> {
    let store = crate::context::model_store(config)?;
    match cmd {
        ModelsCommand::Fetch { only } => {
            let outcomes = tokio::task::spawn_blocking(move || store.fetch(&only)).await??;
            for o in outcomes {
                println!(
                    "{:<28} {:<12} {:?} {}",
                    o.id,
                    o.role,
                    o.action,
                    o.path.display()
                );
            }
        }
        ModelsCommand::List { json } => {
            let list = tokio::task::spawn_blocking(move || store.list()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_model_table(&list);
            }
        }
        ModelsCommand::Verify { only } => {
            let list = tokio::task::spawn_blocking(move || store.verify(&only)).await??;
            print_model_table(&list);
            let bad = list
                .iter()
                .filter(|s| {
                    matches!(
                        s.state,
                        ModelState::Corrupt { .. } | ModelState::Invalid { .. }
                    )
                })
                .count();
            if bad > 0 {
                anyhow::bail!(
                    "{bad} model(s) failed verification; run `assist models fetch` to repair"
                );
            }
        }
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn state_text(s: &ModelState) -> String {
    match s {
        ModelState::Missing => "missing".into(),
        ModelState::Partial => "partial".into(),
        ModelState::Ready => "ready".into(),
        ModelState::Corrupt { reason } => format!("corrupt ({reason})"),
        ModelState::Registered { layout } => format!("registered ({layout:?})"),
        ModelState::Invalid { reason } => format!("invalid ({reason})"),
    }
}

fn print_model_table(list: &[ModelStatus]) {
    println!(
        "{:<30} {:<12} {:<16} {:>10}  STATE",
        "MODEL", "ROLE", "FORMAT", "SIZE"
    );
    for s in list {
        println!(
            "{:<30} {:<12} {:<16} {:>10}  {}{}",
            s.id,
            s.role,
            s.format,
            human_bytes(s.size_bytes),
            state_text(&s.state),
            if s.optional { " (optional)" } else { "" }
        );
    }
}
