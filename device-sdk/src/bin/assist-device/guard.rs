//! `assist-device guard`: what the local guard says about a text (no
//! network), and fetching the newest signed rules.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use assist_device_sdk::{Guard, GuardDecision, GuardUpdate};
use clap::Subcommand;

use crate::Ctx;

#[derive(Debug, Subcommand)]
pub(crate) enum GuardCommand {
    /// What the guard says about a message (no network).
    Check { text: String },
    /// Fetch, verify and install the newest rules.
    Update,
}

pub(crate) async fn run(ctx: &Ctx, c: GuardCommand) -> Result<ExitCode> {
    let guard = Guard::load(&ctx.outbox)?;
    match c {
        GuardCommand::Check { text } => Ok(check(&guard, &text)),
        GuardCommand::Update => update(ctx, &guard).await,
    }
}

/// Print the decision and how long it took; exit code 2 for a block.
fn check(guard: &Guard, text: &str) -> ExitCode {
    match guard.version() {
        Some(v) => println!("rules version {v}"),
        None => println!("no rules on this phone yet (run `assist-device guard update`)"),
    }
    let t = Instant::now();
    let d = guard.check(text);
    let us = t.elapsed().as_micros();
    match &d {
        GuardDecision::Allow => println!("allow ({us} µs)"),
        GuardDecision::Warn { rule, alternative } | GuardDecision::Block { rule, alternative } => {
            let word = if d.is_block() { "block" } else { "warn" };
            println!(
                "{word}: \"{}\" matches rule {} ({}, {}) ({us} µs)",
                rule.matched, rule.rule_id, rule.category, rule.severity
            );
            if let Some(a) = alternative {
                println!("  say instead: {}", a.text);
            }
        }
    }
    if d.is_block() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

async fn update(ctx: &Ctx, guard: &Guard) -> Result<ExitCode> {
    let client = ctx.client()?;
    match client.update_guard(guard).await? {
        GuardUpdate::Updated {
            version,
            rules,
            skipped,
        } => {
            println!("rules version {version} installed ({rules} rules)");
            for (id, why) in skipped {
                println!("  rule {id} skipped: {why}");
            }
        }
        GuardUpdate::NotModified { version } => {
            println!("rules version {version} are current")
        }
    }
    Ok(ExitCode::SUCCESS)
}
