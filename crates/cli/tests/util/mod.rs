//! Helpers for end-to-end tests: a temp repo folder and a command wrapper
//! around the real `almanac` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    pub fn fails(self) -> Run {
        assert_eq!(self.code, 1, "expected exit code 1\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(!self.stderr.contains("panicked"), "panic: {}", self.stderr);
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

pub fn almanac() -> Command {
    Command::new(env!("CARGO_BIN_EXE_almanac"))
}

/// Run `almanac --repo REPO ARGS...`.
pub fn run(repo: &Path, args: &[&str]) -> Run {
    almanac().arg("--repo").arg(repo).args(args).output().expect("run almanac").into()
}

/// A fresh demo repo at a small scale, in its own temp folder.
pub fn demo_repo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    let out: Run = almanac()
        .args(["init", "--demo", "--scale", "0.005", "--reference-dates"])
        .arg(&repo)
        .output()
        .expect("init")
        .into();
    out.ok();
    (dir, repo)
}
