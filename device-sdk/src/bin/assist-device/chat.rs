//! `assist-device chat send`: check a message with the local guard, screen
//! it against the privacy list, queue it and send it.

use std::process::ExitCode;

use anyhow::Result;
use assist_device_sdk::protocol::device::{ChatChannel, ChatSender};
use assist_device_sdk::{Client, Guard, GuardDecision, NewChat, Party, Privacy, Screened};
use clap::{Args, Subcommand};

use crate::Ctx;
use crate::outbox::print_report;

#[derive(Debug, Subcommand)]
pub(crate) enum ChatCommand {
    /// Check a message with the guard, queue it and send it.
    Send(SendArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    #[arg(long)]
    conversation: String,
    #[arg(long, value_parser = ["rep", "customer"], default_value = "rep")]
    sender: String,
    #[arg(long, value_parser = ["wechat", "wecom", "sms", "other"], default_value = "wechat")]
    channel: String,
    /// The other side's number (checked against the privacy list).
    #[arg(long)]
    phone: Option<String>,
    /// The other side's contact id (checked against the privacy list).
    #[arg(long)]
    contact: Option<String>,
    text: String,
}

pub(crate) async fn run(ctx: &Ctx, c: ChatCommand) -> Result<ExitCode> {
    match c {
        ChatCommand::Send(args) => send(ctx, args).await,
    }
}

async fn send(ctx: &Ctx, args: SendArgs) -> Result<ExitCode> {
    let client = ctx.client()?;
    let guard = load_guard(ctx, &client).await?;
    let sender = if args.sender == "customer" {
        ChatSender::Customer
    } else {
        ChatSender::Rep
    };
    if sender == ChatSender::Rep && blocked_by_guard(&guard, &args.text, &args.conversation)? {
        let _ = client.flush().await; // report the blocked attempt
        return Ok(ExitCode::from(2));
    }
    let channel = match args.channel.as_str() {
        "wecom" => ChatChannel::Wecom,
        "sms" => ChatChannel::Sms,
        "other" => ChatChannel::Other,
        _ => ChatChannel::Wechat,
    };
    let party = Party {
        phone: args.phone.as_deref(),
        contact_id: args.contact.as_deref(),
        marked_personal: false,
    };
    let chat = NewChat {
        conversation_id: args.conversation,
        channel: Some(channel),
        customer_ref: None,
        sender,
        text: args.text,
        sent_at: None,
        client_message_id: None,
    };
    match Privacy::new(&ctx.outbox).enqueue_chat(&party, chat)? {
        Screened::Excluded(why) => {
            println!("excluded by the privacy list ({why:?}): kept on the phone, only counted");
            return Ok(ExitCode::SUCCESS);
        }
        Screened::Queued(q) => println!("queued {}", q.key),
    }
    let report = client.flush().await?;
    print_report(&report);
    Ok(ExitCode::SUCCESS)
}

/// The guard rules on this phone; on a phone without any, try to fetch them
/// first (the server checks every message anyway).
async fn load_guard(ctx: &Ctx, client: &Client) -> Result<Guard> {
    let guard = Guard::load(&ctx.outbox)?;
    if guard.version().is_none()
        && let Err(e) = client.update_guard(&guard).await
    {
        eprintln!(
            "note: no guard rules on this phone yet and cannot fetch them ({e}); the server still checks"
        );
    }
    Ok(guard)
}

/// Check the rep's message with the guard and say what it found; `true` if
/// the message must not be sent.
fn blocked_by_guard(guard: &Guard, text: &str, conversation: &str) -> Result<bool> {
    match guard.check_outgoing(text, Some(conversation))? {
        GuardDecision::Allow => Ok(false),
        GuardDecision::Warn { rule, alternative } => {
            println!(
                "warning: \"{}\" matches rule {} ({}, {}); sending anyway",
                rule.matched, rule.rule_id, rule.category, rule.severity
            );
            if let Some(a) = alternative {
                println!("  suggested instead: {}", a.text);
            }
            Ok(false)
        }
        GuardDecision::Block { rule, alternative } => {
            println!(
                "blocked: \"{}\" matches rule {} ({}, {}); the message was not sent",
                rule.matched, rule.rule_id, rule.category, rule.severity
            );
            match alternative {
                Some(a) => println!("  say instead: {}", a.text),
                None => println!("  (no approved alternative for {})", rule.category),
            }
            Ok(true)
        }
    }
}
