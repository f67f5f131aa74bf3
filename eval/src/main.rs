//! `assist-eval`: benchmarks and quality reports. See `assist-eval --help`.

fn main() -> std::process::ExitCode {
    assist_eval::cli::main()
}
