//! One module per command; each is a thin shell over the facade.

mod demo;
mod features;
mod historical;
mod import_feast;
mod init;
mod monitor;
mod online;
mod parity;
mod plan;
mod serve;
mod stream;

use std::process::ExitCode;

use crate::args::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Parity(args) => return Ok(parity::run(&cli.repo, args, cli.json)),
        Command::ImportFeast(args) => return import_feast::run(args, cli.json),
        Command::Monitor(args) => return Ok(monitor::run(&cli.repo, args, cli.json)),
        _ => {}
    }
    match cli.command {
        Command::Init(args) => init::run(&args, cli.json),
        Command::Plan(args) => plan::plan(&cli.repo, args.explain, cli.json),
        Command::Apply => plan::apply(&cli.repo, cli.json),
        Command::Features(command) => features::run(&cli.repo, command, cli.json),
        Command::Historical(args) => historical::historical(&cli.repo, &args, cli.json),
        Command::Export(args) => historical::export(&cli.repo, &args, cli.json),
        Command::Materialize(args) => online::materialize(&cli.repo, &args, cli.json),
        Command::MaterializeIncremental(args) => online::materialize_incremental(&cli.repo, &args, cli.json),
        Command::Online(args) => online::online(&cli.repo, &args, cli.json),
        Command::Serve(args) => serve::run(&cli.repo, &args),
        Command::Ingest(args) => stream::ingest(&cli.repo, &args, cli.json),
        Command::Publish(args) => stream::publish(&cli.repo, &args, cli.json),
        Command::Parity(_) | Command::Monitor(_) | Command::ImportFeast(_) => Ok(()),
        Command::Demo(args) => demo::run(&args),
    }?;
    Ok(ExitCode::SUCCESS)
}
