//! What each command's `--help` shows: its own options, then only the
//! settings sections it reads.

/// The settings sections (TOML tables) each command reads. Its `--help`
/// lists them after the command's own options; the other settings are still
/// accepted anywhere on the line (they are global) but not listed.
fn sections_of(command: &str) -> &'static [&'static str] {
    const ALL: &[&str] = &[
        "server", "storage", "models", "jobs", "log", "kb", "index", "speech", "alerts",
        "analysis", "live", "console",
    ];
    match command {
        "models" => &["models", "log"],
        "admin" => &["storage", "log"],
        "kb" => &["storage", "kb", "models", "index", "log"],
        "transcribe" => &["models", "speech", "log"],
        "demo" => &["server", "models", "analysis", "log"],
        _ => ALL,
    }
}

/// The clap argument ids of one settings section.
fn section_ids(section: &str) -> Vec<clap::Id> {
    use assist_server::config::*;
    fn ids<T: clap::Args>() -> Vec<clap::Id> {
        T::augment_args(clap::Command::new("section"))
            .get_arguments()
            .map(|a| a.get_id().clone())
            .collect()
    }
    match section {
        "server" => ids::<ServerConfig>(),
        "storage" => ids::<StorageConfig>(),
        "models" => ids::<ModelsConfig>(),
        "jobs" => ids::<JobsConfig>(),
        "log" => ids::<LogConfig>(),
        "kb" => ids::<KbConfig>(),
        "index" => ids::<IndexConfig>(),
        "speech" => ids::<SpeechConfig>(),
        "alerts" => ids::<AlertsConfig>(),
        "analysis" => ids::<AnalysisConfig>(),
        "live" => ids::<LiveConfig>(),
        "console" => ids::<ConsoleConfig>(),
        _ => Vec::new(),
    }
}

/// Hide every server setting from `assist --help` and give each command
/// (visible) copies of the settings it reads. Clap does not propagate a
/// global argument to a subcommand that has one with the same id, so the
/// copy is what that command and its own subcommands show and parse.
pub(crate) fn settings_per_command(mut cmd: clap::Command) -> clap::Command {
    let settings: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set() && a.get_id() != "config")
        .cloned()
        .collect();
    for a in &settings {
        cmd = cmd.mut_arg(a.get_id().clone(), |a| a.hide(true));
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        let shown: Vec<clap::Id> = sections_of(&name)
            .iter()
            .flat_map(|s| section_ids(s))
            .collect();
        let copies: Vec<clap::Arg> = settings
            .iter()
            .filter(|a| shown.contains(a.get_id()))
            .map(|a| a.clone().hide(false))
            .collect();
        cmd = cmd.mut_subcommand(name, |mut c| {
            for a in copies {
                c = c.arg(a);
            }
            c
        });
    }
    cmd
}
