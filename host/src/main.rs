use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    fmes::cli::run(fmes::cli::Cli::parse())
}
