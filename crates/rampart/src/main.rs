//! The `rampart` binary: command line, logging setup, signals, and wiring of the data plane.
//! `anyhow` is used here and nowhere else.

mod cli;
mod commands;
mod logging;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rampart: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
