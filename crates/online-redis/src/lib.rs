//! # almanac-online-redis
//!
//! The production online stores: [`RedisStore`] (one Redis server, a pool of
//! pipelined connections) and [`RedisClusterStore`] (Redis Cluster). Both
//! store Almanac's record bytes ([`almanac_online::record`]) as plain string
//! values, under keys
//!
//! ```text
//! <project>:<view>:{<entity key bytes>}
//! ```
//!
//! The braces are a Redis Cluster hash tag: every view of one entity hashes
//! to one slot, so a multi-view read for an entity goes to one node, and a
//! request for many entities is one pipelined round trip per node.
//!
//! Keep-if-newer is a Lua script ([`KEEP_IF_NEWER`]) run server-side, so the
//! compare and the write are atomic per key even with concurrent writers.
//! It compares the 16 version bytes of the record header byte by byte (never
//! with Lua's locale-dependent string comparison).
//!
//! This crate owns the Redis wire details only; the record format, the
//! conformance kit and the trait live in `almanac-online`.

use std::collections::HashMap;
use std::time::Duration;

use almanac_online::{Capabilities, Entry, Lookup, OnlineError, OnlineStore, WriteStats};
use redis::cluster::{ClusterClient, cluster_pipe};
use redis::cluster_routing::Slot;
use redis::{Client, Connection, ConnectionLike};

/// For each `KEYS[i]`, store `ARGV[i]` unless the stored record's version
/// (header bytes 6..21, 1-based) is greater; a key given several times in
/// one call ends at the newest of its records. Returns how many records
/// replaced the one before them (stored or earlier in the call).
///
/// One `MGET` and one `MSET` per call rather than a `GETRANGE` and a `SET`
/// per key: each `redis.call` costs the server about a microsecond of
/// dispatch, which dominated bulk writes. Versions are compared byte by byte
/// because Lua's string `<` goes through the server's collation locale.
pub const KEEP_IF_NEWER: &str = r#"
local stored = redis.call('MGET', unpack(KEYS))
local chosen, order, written = {}, {}, 0
for i = 1, #KEYS do
  local key, new = KEYS[i], ARGV[i]
  local old = chosen[key] or stored[i]
  local newer = true
  if old and #old >= 21 then
    for j = 6, 21 do
      local a, b = string.byte(new, j), string.byte(old, j)
      if a ~= b then
        newer = a > b
        break
      end
    end
  end
  if newer then
    if not chosen[key] then
      order[#order + 1] = key
    end
    chosen[key] = new
    written = written + 1
  end
end
if #order > 0 then
  local args = {}
  for i, key in ipairs(order) do
    args[i * 2 - 1] = key
    args[i * 2] = chosen[key]
  end
  redis.call('MSET', unpack(args))
end
return written
"#;

/// Keys per script call: large enough to amortize the call, small enough
/// not to stall the server for other clients (a few hundred microseconds).
const KEYS_PER_CALL: usize = 512;
/// Script calls per pipelined round trip.
const CALLS_PER_PIPELINE: usize = 16;

/// Timeouts for connecting and for each reply: a store that is down answers
/// with an error in bounded time instead of hanging a request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(2), response: Duration::from_secs(5) }
    }
}

fn key(prefix: &str, view: &str, entity: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + view.len() + entity.len() + 4);
    out.extend_from_slice(prefix.as_bytes());
    out.push(b':');
    out.extend_from_slice(view.as_bytes());
    out.extend_from_slice(b":{");
    out.extend_from_slice(entity);
    out.push(b'}');
    out
}

/// The entity part of a stored key (between the view's prefix and the last `}`).
fn entity_of(stored: &[u8], prefix_len: usize) -> Option<&[u8]> {
    stored.get(prefix_len..stored.len().checked_sub(1)?)
}

fn view_pattern(prefix: &str, view: &str) -> String {
    format!("{prefix}:{view}:{{*")
}

fn unavailable(store: &str, error: impl std::fmt::Display) -> OnlineError {
    OnlineError::Unavailable {
        store: store.to_string(),
        reason: error.to_string(),
        help: Some("check that Redis is running and reachable at that address, and the `online` settings in almanac.yaml".into()),
    }
}

/// One Redis server.
pub struct RedisStore {
    url: String,
    prefix: String,
    pool: r2d2::Pool<Client>,
}

/// Sets the per-reply timeout on every pooled connection.
#[derive(Debug)]
struct WithTimeouts(Timeouts);

impl r2d2::CustomizeConnection<Connection, redis::RedisError> for WithTimeouts {
    fn on_acquire(&self, conn: &mut Connection) -> Result<(), redis::RedisError> {
        conn.set_read_timeout(Some(self.0.response))?;
        conn.set_write_timeout(Some(self.0.response))
    }
}

impl RedisStore {
    /// Connect to `url` (`redis://host:port/db`); `project` namespaces the keys.
    /// Fails fast with a clear error when the server does not answer.
    pub fn connect(url: &str, project: &str, timeouts: Timeouts) -> Result<Self, OnlineError> {
        let client = Client::open(url).map_err(|e| unavailable(url, e))?;
        let pool = r2d2::Pool::builder()
            .max_size(16)
            .min_idle(Some(1))
            // No PING per checkout: it would double every read's round trips.
            // A broken connection is detected on use and dropped by the pool.
            .test_on_check_out(false)
            .connection_timeout(timeouts.connect)
            .connection_customizer(Box::new(WithTimeouts(timeouts)))
            .build(client)
            .map_err(|e| unavailable(url, e))?;
        Ok(RedisStore { url: url.to_string(), prefix: project.to_string(), pool })
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<Client>, OnlineError> {
        self.pool.get().map_err(|e| unavailable(&self.url, e))
    }

    fn err(&self) -> impl Fn(redis::RedisError) -> OnlineError + '_ {
        move |e| unavailable(&self.url, e)
    }
}

impl OnlineStore for RedisStore {
    fn describe(&self) -> String {
        self.url.clone()
    }

    /// Every read is a network round trip: never inline on async workers.
    fn capabilities(&self) -> Capabilities {
        Capabilities { inline_reads: false }
    }

    fn read(&self, lookups: &[Lookup<'_>]) -> Result<Vec<Option<Vec<u8>>>, OnlineError> {
        if lookups.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for lookup in lookups {
            cmd.arg(key(&self.prefix, lookup.view, lookup.key));
        }
        cmd.query(&mut *self.conn()?).map_err(self.err())
    }

    fn write(&self, view: &str, entries: &[Entry]) -> Result<WriteStats, OnlineError> {
        let mut conn = self.conn()?;
        let mut stats = WriteStats::default();
        for round in entries.chunks(KEYS_PER_CALL * CALLS_PER_PIPELINE) {
            let mut pipe = redis::pipe();
            for call in round.chunks(KEYS_PER_CALL) {
                let cmd = pipe.cmd("EVAL").arg(KEEP_IF_NEWER).arg(call.len());
                for entry in call {
                    cmd.arg(key(&self.prefix, view, &entry.key));
                }
                for entry in call {
                    cmd.arg(&entry.record[..]);
                }
            }
            let written: Vec<u64> = pipe.query(&mut *conn).map_err(self.err())?;
            let written: u64 = written.iter().sum();
            stats.written += written;
            stats.kept_newer += round.len() as u64 - written;
        }
        Ok(stats)
    }

    fn delete_view(&self, view: &str) -> Result<u64, OnlineError> {
        let mut conn = self.conn()?;
        delete_matching(&mut *conn, &view_pattern(&self.prefix, view)).map_err(self.err())
    }

    fn scan(&self, view: &str, limit: Option<usize>) -> Result<Vec<Entry>, OnlineError> {
        let mut conn = self.conn()?;
        let prefix_len = key(&self.prefix, view, b"").len() - 1;
        scan_node(&mut *conn, &view_pattern(&self.prefix, view), prefix_len, limit).map_err(self.err())
    }

    fn ping(&self) -> Result<(), OnlineError> {
        redis::cmd("PING").query::<String>(&mut *self.conn()?).map(|_| ()).map_err(self.err())
    }
}

/// All keys of one node matching `pattern`, via SCAN (never KEYS, which
/// blocks the server).
fn keys_matching(conn: &mut dyn ConnectionLike, pattern: &str, limit: Option<usize>) -> redis::RedisResult<Vec<Vec<u8>>> {
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000).query(conn)?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 || limit.is_some_and(|l| keys.len() >= l) {
            break;
        }
    }
    if let Some(limit) = limit {
        keys.truncate(limit);
    }
    Ok(keys)
}

fn scan_node(conn: &mut dyn ConnectionLike, pattern: &str, prefix_len: usize, limit: Option<usize>) -> redis::RedisResult<Vec<Entry>> {
    let keys = keys_matching(conn, pattern, limit)?;
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(1000) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("GET").arg(&k[..]);
        }
        let records: Vec<Option<Vec<u8>>> = pipe.query(conn)?;
        for (k, record) in chunk.iter().zip(records) {
            // A key deleted between SCAN and GET is simply gone.
            if let (Some(entity), Some(record)) = (entity_of(k, prefix_len), record) {
                out.push(Entry { key: entity.to_vec(), record });
            }
        }
    }
    Ok(out)
}

/// Delete keys one per command (pipelined): keys of different slots cannot
/// share a DEL on a cluster node.
fn delete_matching(conn: &mut dyn ConnectionLike, pattern: &str) -> redis::RedisResult<u64> {
    let keys = keys_matching(conn, pattern, None)?;
    let mut deleted = 0;
    for chunk in keys.chunks(1000) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("UNLINK").arg(&k[..]);
        }
        let counts: Vec<u64> = pipe.query(conn)?;
        deleted += counts.iter().sum::<u64>();
    }
    Ok(deleted)
}

/// A Redis Cluster. Reads and writes go through redis-rs's cluster
/// connection (slot map, MOVED/ASK handling); key scans, which are per
/// node, go to each master directly.
pub struct RedisClusterStore {
    nodes: Vec<String>,
    prefix: String,
    pool: r2d2::Pool<ClusterClient>,
    timeouts: Timeouts,
}

impl RedisClusterStore {
    /// Connect to the cluster through any of `nodes` (`redis://host:port`).
    pub fn connect(nodes: &[String], project: &str, timeouts: Timeouts) -> Result<Self, OnlineError> {
        let describe = nodes.join(",");
        if nodes.is_empty() {
            return Err(OnlineError::Unavailable { store: "redis-cluster".into(), reason: "no nodes configured".into(), help: Some("list at least one node under `online: {type: redis-cluster, nodes: [...]}`".into()) });
        }
        let client = ClusterClient::builder(nodes.to_vec())
            .connection_timeout(timeouts.connect)
            .response_timeout(timeouts.response)
            .build()
            .map_err(|e| unavailable(&describe, e))?;
        let pool = r2d2::Pool::builder().max_size(16).min_idle(Some(1)).test_on_check_out(false).connection_timeout(timeouts.connect).build(client).map_err(|e| unavailable(&describe, e))?;
        Ok(RedisClusterStore { nodes: nodes.to_vec(), prefix: project.to_string(), pool, timeouts })
    }

    fn describe_nodes(&self) -> String {
        format!("redis-cluster {}", self.nodes.join(","))
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<ClusterClient>, OnlineError> {
        self.pool.get().map_err(|e| unavailable(&self.describe_nodes(), e))
    }

    fn err(&self) -> impl Fn(redis::RedisError) -> OnlineError + '_ {
        move |e| unavailable(&self.describe_nodes(), e)
    }

    /// A direct connection to every master, found through `CLUSTER SHARDS`'s
    /// older sibling `CLUSTER NODES` (supported by every cluster version).
    fn masters(&self) -> Result<Vec<Connection>, OnlineError> {
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut *self.conn()?).map_err(self.err())?;
        let mut masters = Vec::new();
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(address), Some(flags)) = (fields.get(1), fields.get(2)) else { continue };
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                continue;
            }
            let host_port = address.split('@').next().unwrap_or(address);
            let client = Client::open(format!("redis://{host_port}")).map_err(self.err())?;
            let conn = client.get_connection_with_timeout(self.timeouts.connect).map_err(self.err())?;
            conn.set_read_timeout(Some(self.timeouts.response)).map_err(self.err())?;
            masters.push(conn);
        }
        Ok(masters)
    }
}

impl OnlineStore for RedisClusterStore {
    fn describe(&self) -> String {
        self.describe_nodes()
    }

    /// Every read is a round trip per node: never inline on async workers.
    fn capabilities(&self) -> Capabilities {
        Capabilities { inline_reads: false }
    }

    /// One GET per key in a cluster pipeline: redis-rs groups the commands
    /// by node, so this is one round trip per node involved.
    fn read(&self, lookups: &[Lookup<'_>]) -> Result<Vec<Option<Vec<u8>>>, OnlineError> {
        if lookups.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = cluster_pipe();
        for lookup in lookups {
            pipe.cmd("GET").arg(key(&self.prefix, lookup.view, lookup.key));
        }
        pipe.query(&mut *self.conn()?).map_err(self.err())
    }

    /// One script call per slot (a script's keys must share a slot), the
    /// calls pipelined across nodes.
    fn write(&self, view: &str, entries: &[Entry]) -> Result<WriteStats, OnlineError> {
        let mut conn = self.conn()?;
        /// A stored key and its record, grouped by the key's cluster slot.
        type Keyed<'e> = (Vec<u8>, &'e [u8]);
        let mut by_slot: HashMap<Slot, Vec<Keyed>> = HashMap::new();
        for entry in entries {
            let k = key(&self.prefix, view, &entry.key);
            by_slot.entry(Slot::for_key(&k)).or_default().push((k, &entry.record));
        }
        let calls: Vec<&[Keyed]> = by_slot.values().flat_map(|group| group.chunks(KEYS_PER_CALL)).collect();
        let mut stats = WriteStats::default();
        for round in calls.chunks(CALLS_PER_PIPELINE * 8) {
            let mut pipe = cluster_pipe();
            for call in round {
                let cmd = pipe.cmd("EVAL").arg(KEEP_IF_NEWER).arg(call.len());
                for (k, _) in call.iter() {
                    cmd.arg(&k[..]);
                }
                for (_, record) in call.iter() {
                    cmd.arg(*record);
                }
            }
            let written: Vec<u64> = pipe.query(&mut conn).map_err(self.err())?;
            let written: u64 = written.iter().sum();
            let total: usize = round.iter().map(|c| c.len()).sum();
            stats.written += written;
            stats.kept_newer += total as u64 - written;
        }
        Ok(stats)
    }

    fn delete_view(&self, view: &str) -> Result<u64, OnlineError> {
        let pattern = view_pattern(&self.prefix, view);
        let mut deleted = 0;
        for mut master in self.masters()? {
            deleted += delete_matching(&mut master, &pattern).map_err(self.err())?;
        }
        Ok(deleted)
    }

    fn scan(&self, view: &str, limit: Option<usize>) -> Result<Vec<Entry>, OnlineError> {
        let pattern = view_pattern(&self.prefix, view);
        let prefix_len = key(&self.prefix, view, b"").len() - 1;
        let mut out = Vec::new();
        for mut master in self.masters()? {
            let left = limit.map(|l| l.saturating_sub(out.len()));
            if left == Some(0) {
                break;
            }
            out.extend(scan_node(&mut master, &pattern, prefix_len, left).map_err(self.err())?);
        }
        Ok(out)
    }

    fn ping(&self) -> Result<(), OnlineError> {
        let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut *self.conn()?).map_err(self.err())?;
        if info.contains("cluster_state:ok") {
            Ok(())
        } else {
            Err(unavailable(&self.describe_nodes(), "cluster_state is not ok"))
        }
    }
}

pub mod harness;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_entity_as_hash_tag() {
        let k = key("proj", "user_stats", b"i\x00\x00\x00\x00\x00\x00\x00\x7d");
        assert!(k.starts_with(b"proj:user_stats:{"));
        // Two views of one entity share a slot; the tag is never empty.
        assert_eq!(Slot::for_key(&k), Slot::for_key(key("proj", "other_view", b"i\x00\x00\x00\x00\x00\x00\x00\x7d")));
        assert_eq!(entity_of(&k, key("proj", "user_stats", b"").len() - 1), Some(&b"i\x00\x00\x00\x00\x00\x00\x00\x7d"[..]));
    }
}
