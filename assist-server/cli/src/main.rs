//! The `assist` binary: see `assist --help`.

fn main() -> std::process::ExitCode {
    assist_cli::main()
}
