//! `almanac import-feast`: Feast definitions are Python code, so the
//! importer is Python (`python/almanac/feast_import.py`, which loads the repo
//! with the `feast` package). Its source is compiled into this binary and
//! run by a Python that has `feast` (the user's Feast environment: the
//! Almanac SDK need not be installed there), with `ALMANAC_BIN` set to this
//! binary so the written repo is checked by the same Almanac. Output and
//! exit code pass through.

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};

use crate::args::ImportFeastArgs;

const IMPORTER: &str = include_str!("../../../../python/almanac/feast_import.py");

/// The interpreter: `ALMANAC_PYTHON` if set, else `python3` on the PATH.
fn python() -> String {
    std::env::var("ALMANAC_PYTHON").ok().filter(|p| !p.trim().is_empty()).unwrap_or_else(|| "python3".to_string())
}

pub fn run(args: &ImportFeastArgs, json: bool) -> anyhow::Result<ExitCode> {
    let repo = &args.feast_repo;
    // `feast init NAME` puts the repo in NAME/feature_repo.
    if !repo.join("feature_store.yaml").is_file() && !repo.join("feature_repo/feature_store.yaml").is_file() {
        anyhow::bail!("{} has no feature_store.yaml (nor feature_repo/feature_store.yaml); pass the folder of a Feast repo", repo.display());
    }
    let python = python();
    check_feast(&python)?;
    let mut command = Command::new(&python);
    command.arg("-").arg(repo);
    if let Some(output) = &args.output {
        command.arg("--output").arg(output);
    }
    if json {
        command.arg("--json");
    }
    if args.no_check {
        command.arg("--no-check");
    }
    if let Ok(me) = std::env::current_exe() {
        command.env("ALMANAC_BIN", me);
    }
    let mut child = command.stdin(Stdio::piped()).spawn().map_err(|e| anyhow::anyhow!("cannot run {python}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(IMPORTER.as_bytes()).map_err(|e| anyhow::anyhow!("cannot hand the importer to {python}: {e}"))?;
    }
    let status = child.wait().map_err(|e| anyhow::anyhow!("{python} did not finish: {e}"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(1),
    })
}

/// `feast` importable, or one line saying how to get it.
fn check_feast(python: &str) -> anyhow::Result<()> {
    let probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('feast') else 1)";
    let status = Command::new(python).arg("-c").arg(probe).status().map_err(|e| {
        anyhow::anyhow!("cannot run `{python}` ({e}); the importer needs a Python with the `feast` package (set ALMANAC_PYTHON to choose it)")
    })?;
    if status.success() {
        return Ok(());
    }
    anyhow::bail!("`{python}` cannot import `feast`; run this with the Python of your Feast environment (ALMANAC_PYTHON=/path/to/venv/bin/python), or `pip install feast`")
}
