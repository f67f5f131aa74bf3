//! `assist-device outbox`: what is waiting for the server, delivering it
//! now, and the dead items; also how every subcommand prints a flush report.

use std::process::ExitCode;

use anyhow::Result;
use assist_device_sdk::{FlushProgress, FlushReport, OutboxStatus, rfc3339_ms};
use clap::Subcommand;

use crate::Ctx;

#[derive(Debug, Subcommand)]
pub(crate) enum OutboxCommand {
    /// Counts per kind and state, bytes, drops, dead items with their errors.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Deliver everything now (ignores backoff, honours nothing but the server).
    Flush,
    /// Move dead items back to pending.
    RetryDead,
    /// Delete dead items (counted and reported as dropped).
    PurgeDead,
}

pub(crate) async fn run(ctx: &Ctx, c: OutboxCommand) -> Result<ExitCode> {
    match c {
        OutboxCommand::Status { json } => status(ctx, json),
        OutboxCommand::Flush => flush(ctx).await,
        OutboxCommand::RetryDead => {
            println!(
                "{} dead item(s) back in the queue",
                ctx.outbox.retry_dead()?
            );
            Ok(ExitCode::SUCCESS)
        }
        OutboxCommand::PurgeDead => {
            println!(
                "{} dead item(s) deleted (reported as dropped)",
                ctx.outbox.purge_dead()?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn status(ctx: &Ctx, json: bool) -> Result<ExitCode> {
    let st = ctx.outbox.status()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("outbox {}", ctx.outbox.dir().display());
    println!(
        "{:<10} {:>8} {:>6} {:>12}",
        "kind", "pending", "dead", "bytes"
    );
    for (kind, k) in &st.per_kind {
        println!(
            "{:<10} {:>8} {:>6} {:>12}",
            kind.as_str(),
            k.pending,
            k.dead,
            k.bytes
        );
    }
    println!(
        "total {} of {} items, {} of {} bytes",
        st.items, st.max_items, st.bytes, st.max_bytes
    );
    print_status_details(&st);
    Ok(ExitCode::SUCCESS)
}

/// Drops and refusals, uploads under way, the schedule and the dead items.
fn print_status_details(st: &OutboxStatus) {
    println!(
        "dropped: {} events, {} chats, {} recordings; refused when full: {} events, {} chats, {} recordings",
        st.dropped.event,
        st.dropped.chat,
        st.dropped.recording,
        st.refused.event,
        st.refused.chat,
        st.refused.recording
    );
    for u in &st.uploads {
        println!(
            "upload {}: {} of {} bytes on the server",
            u.upload_key, u.offset, u.size
        );
    }
    if let Some(t) = st.next_attempt_at {
        println!("next attempt: {}", rfc3339_ms(t));
    }
    if let Some(t) = st.held_until {
        println!("the server asked to wait until {}", rfc3339_ms(t));
    }
    for d in &st.dead {
        println!(
            "dead {} {} after {} attempt(s): {}",
            d.kind.as_str(),
            d.key,
            d.attempts,
            d.error
        );
    }
}

async fn flush(ctx: &Ctx) -> Result<ExitCode> {
    let client = ctx.client()?;
    ctx.outbox.make_due_now()?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} items {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = client
        .flush_with(&|p| match p {
            FlushProgress::Items { done, total } => {
                bar.set_length(total);
                bar.set_position(done);
            }
            FlushProgress::Upload {
                upload_key,
                offset,
                size,
            } => {
                bar.set_message(format!(
                    "{upload_key}: {}/{} KiB",
                    offset / 1024,
                    size / 1024
                ));
            }
        })
        .await?;
    bar.finish_and_clear();
    print_report(&report);
    Ok(if report.unauthorized {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// What a flush did, in one line, then the calls the recordings became and
/// why it stopped early, if it did.
pub(crate) fn print_report(r: &FlushReport) {
    println!(
        "sent {}, duplicates {}, failed {}, dead {}, still queued {}",
        r.sent, r.duplicates, r.failed, r.dead, r.remaining
    );
    for (key, call) in &r.calls {
        println!("  recording {key} → call {call}");
    }
    if let Some(why) = &r.stopped {
        if let Some(reason) = why.strip_suffix("; queued, will retry") {
            println!("queued, will retry ({reason})");
        } else {
            println!("stopped: {why}");
        }
    }
    if r.dead > 0 {
        println!("  see `assist-device outbox status` for the dead items and their errors");
    }
}
