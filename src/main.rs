//! The `ratesim` binary: see [`ratesim::cli`].

fn main() -> std::process::ExitCode {
    ratesim::cli::main()
}
