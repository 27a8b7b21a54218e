//! # almanac-cli
//!
//! The `almanac` binary: argument parsing (clap) and presentation (tables,
//! JSON, progress) over the [`almanac`] facade. No feature-store logic lives
//! here; every command is a thin shell over a facade call, so the server and
//! the Python SDK get the same behaviour.

mod args;
mod commands;
mod render;
mod time;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            report(&error);
            ExitCode::from(1)
        }
    }
}

/// Print an error with its whole cause chain. Definition mistakes are
/// already fully rendered (locations, snippets, help) by their `Display`.
pub(crate) fn report(error: &anyhow::Error) {
    if let Some(almanac::Error::Definitions(diagnostics)) = error.downcast_ref::<almanac::Error>() {
        eprintln!("{diagnostics}");
        return;
    }
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}
