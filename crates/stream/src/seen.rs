//! Deduplication (DESIGN §10): the ids of the events ingested within the
//! horizon, rebuilt at start from the stream's own history files, so what
//! survives a restart is exactly what was written (a file is either whole
//! or absent), with no second state to keep in step.

use std::collections::HashMap;

use almanac::core::Value;

/// Ids are kept as 128-bit hashes of their canonical text: 24 bytes an
/// event instead of a string, and two ids colliding is out of reach.
pub type IdHash = u128;

pub fn id_hash(id: &Value) -> IdHash {
    let text = match id {
        Value::Int64(v) => v.to_string(),
        Value::Int32(v) => v.to_string(),
        Value::String(s) => s.clone(),
        other => almanac::core::convert::describe(other),
    };
    let low = almanac_aggregate_hash(text.as_bytes(), 0x5eed_0001);
    let high = almanac_aggregate_hash(text.as_bytes(), 0x5eed_0002);
    (u128::from(high) << 64) | u128::from(low)
}

/// FNV-1a with a seed folded in: stable, fast, and good enough spread for
/// a 128-bit pair (the ids are not adversarial keys of a hash table: the
/// table rehashes them with its own hasher).
fn almanac_aggregate_hash(bytes: &[u8], seed: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final avalanche, so ids that differ in one byte differ everywhere.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash
}

/// The ids seen within the horizon, with their event times.
#[derive(Default)]
pub struct Seen {
    ids: HashMap<IdHash, i64>,
    /// Grows until pruning is worth a pass over the map.
    prune_at: usize,
}

impl Seen {
    pub fn contains(&self, id: IdHash) -> bool {
        self.ids.contains_key(&id)
    }

    pub fn insert(&mut self, id: IdHash, event_micros: i64) {
        self.ids.insert(id, event_micros);
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Forget ids with event time before `before`: an event that old is
    /// late whatever its id, so it can no longer be taken as new. Runs when
    /// the map has doubled since the last pass (amortized O(1) per insert).
    pub fn prune(&mut self, before: i64) {
        if self.ids.len() < self.prune_at {
            return;
        }
        self.ids.retain(|_, &mut at| at >= before);
        self.prune_at = (self.ids.len() * 2).max(100_000);
    }
}
