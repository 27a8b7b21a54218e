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

/// A running `almanac serve` on a free port, killed on drop.
pub struct Server {
    pub child: std::process::Child,
    pub addr: String,
}

impl Server {
    pub fn start(repo: &Path, extra: &[&str]) -> Server {
        use std::io::BufRead;
        let mut child = almanac()
            .arg("--repo")
            .arg(repo)
            .args(["serve", "--port", "0"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).expect("read the serving line");
        let addr = line.trim().strip_prefix("Serving on http://").unwrap_or_else(|| panic!("unexpected first line: {line:?}")).to_string();
        Server { child, addr }
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        http(&self.addr, "POST", path, body.as_bytes(), &[])
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http(&self.addr, "GET", path, b"", &[])
    }

    /// POST and parse the JSON body, asserting the status.
    pub fn post_json(&self, path: &str, body: &serde_json::Value, status: u16) -> serde_json::Value {
        let (code, text) = self.post(path, &body.to_string());
        assert_eq!(code, status, "POST {path} {body}\n→ {code} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client (one request per connection), enough for
/// end-to-end tests without pulling an HTTP client crate into the build.
pub fn http(addr: &str, method: &str, path: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    // The server may answer (e.g. 413) and close before reading it all.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    (status, if chunked { dechunk(body) } else { body.to_string() })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A deterministic value in [0, 1) for row `i` (no RNG crate needed).
pub fn unit(i: i64, salt: i64) -> f64 {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (salt as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64
}
