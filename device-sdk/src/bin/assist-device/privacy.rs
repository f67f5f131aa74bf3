//! `assist-device privacy`: the personal-contact exclusion list (numbers,
//! prefixes, contacts) whose calls and chats never leave the phone.

use std::process::ExitCode;

use anyhow::Result;
use assist_device_sdk::Privacy;
use clap::{Args, Subcommand};

use crate::Ctx;

#[derive(Debug, Subcommand)]
pub(crate) enum PrivacyCommand {
    /// Exclude a number, a prefix or a contact.
    Add(PrivacyValue),
    /// Stop excluding it.
    Remove(PrivacyValue),
    /// Show the list and how many items it kept on the phone.
    List,
    /// Whether contacts the phone marks personal are excluded.
    MarkedPersonal {
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct PrivacyValue {
    #[arg(long)]
    number: Option<String>,
    #[arg(long)]
    prefix: Option<String>,
    #[arg(long)]
    contact: Option<String>,
}

pub(crate) fn run(ctx: &Ctx, c: PrivacyCommand) -> Result<ExitCode> {
    let p = Privacy::new(&ctx.outbox);
    match c {
        PrivacyCommand::Add(v) => add(&p, v)?,
        PrivacyCommand::Remove(v) => remove(&p, v)?,
        PrivacyCommand::List => list(&p)?,
        PrivacyCommand::MarkedPersonal { state } => {
            p.set_exclude_marked_personal(state == "on")?;
            println!(
                "contacts marked personal: {}",
                if state == "on" {
                    "excluded"
                } else {
                    "not excluded"
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn add(p: &Privacy, v: PrivacyValue) -> Result<()> {
    if let Some(n) = v.number {
        println!("excluding number {}", p.add_number(&n)?);
    } else if let Some(x) = v.prefix {
        println!("excluding numbers starting with {}", p.add_prefix(&x)?);
    } else if let Some(c) = v.contact {
        p.add_contact(&c)?;
        println!("excluding contact {c}");
    }
    Ok(())
}

fn remove(p: &Privacy, v: PrivacyValue) -> Result<()> {
    let removed = if let Some(n) = v.number {
        p.remove_number(&n)?
    } else if let Some(x) = v.prefix {
        p.remove_prefix(&x)?
    } else if let Some(c) = v.contact {
        p.remove_contact(&c)?
    } else {
        false
    };
    println!(
        "{}",
        if removed {
            "removed"
        } else {
            "was not on the list"
        }
    );
    Ok(())
}

fn list(p: &Privacy) -> Result<()> {
    let l = p.list()?;
    println!("numbers:  {}", join(&l.numbers));
    println!("prefixes: {}", join(&l.prefixes));
    println!("contacts: {}", join(&l.contacts));
    println!(
        "contacts marked personal: {}",
        if l.exclude_marked_personal {
            "excluded"
        } else {
            "not excluded"
        }
    );
    println!(
        "kept on the phone so far: {} calls, {} chats",
        l.excluded_calls, l.excluded_chats
    );
    Ok(())
}

fn join(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}
