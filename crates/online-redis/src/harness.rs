//! Real Redis servers for tests and benchmarks: find the local Redis (or
//! start one from `redis-server`), and start a throwaway Redis Cluster on
//! free local ports. Nothing here is a mock; when a server cannot be had the
//! error says why, and callers fail loudly rather than skip.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else { return false };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) else { return false };
    redis::cmd("PING").query::<String>(&mut conn).is_ok()
}

/// Make sure a Redis answers at `127.0.0.1:port`; start one from
/// `redis-server` if none does. Returns the URL (database `db`).
pub fn ensure_redis(port: u16, db: u8) -> Result<String, String> {
    let url = format!("redis://127.0.0.1:{port}/{db}");
    if ping(&url) {
        return Ok(url);
    }
    let status = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "yes"])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("no Redis answers at 127.0.0.1:{port} and `redis-server` could not be started ({e}); install Redis (Debian: apt-get install redis-server)"))?;
    if !status.success() {
        return Err(format!("no Redis answers at 127.0.0.1:{port} and `redis-server` exited with {status}"));
    }
    wait_until(Duration::from_secs(10), || ping(&url)).map_err(|_| format!("started redis-server on port {port} but it never answered PING"))?;
    Ok(url)
}

fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(())
}

/// A free port whose cluster-bus port (+10000) is free too.
fn free_port() -> Result<u16, String> {
    for _ in 0..200 {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port pair for a cluster node".into())
}

/// A Redis Cluster of `masters` nodes (no replicas), stopped on drop.
pub struct TestCluster {
    _dir: tempfile::TempDir,
    children: Vec<Child>,
    pub nodes: Vec<String>,
}

impl TestCluster {
    pub fn start(masters: usize) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut cluster = TestCluster { _dir: dir, children: Vec::new(), nodes: Vec::new() };
        let mut addresses = Vec::new();
        for _ in 0..masters {
            let port = free_port()?;
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-config-file", &format!("nodes-{port}.conf"), "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(cluster._dir.path())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start redis-server for the test cluster: {e}"))?;
            cluster.children.push(child);
            let url = format!("redis://127.0.0.1:{port}");
            wait_until(Duration::from_secs(10), || ping(&url)).map_err(|_| format!("cluster node on port {port} never answered"))?;
            addresses.push(format!("127.0.0.1:{port}"));
            cluster.nodes.push(url);
        }
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .map_err(|e| format!("cannot run `redis-cli --cluster create`: {e}"))?;
        if !output.status.success() {
            return Err(format!("`redis-cli --cluster create` failed: {}", String::from_utf8_lossy(&output.stdout)));
        }
        let all_ok = || {
            cluster.nodes.iter().all(|url| {
                redis::Client::open(url.as_str())
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
                    .and_then(|mut conn| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut conn))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            })
        };
        wait_until(Duration::from_secs(20), all_ok).map_err(|_| "the test cluster never reached cluster_state:ok".to_string())?;
        Ok(cluster)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
