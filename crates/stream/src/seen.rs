//! Deduplication (DESIGN §10): the ids of the events ingested within the
//! horizon, rebuilt at start from the stream's own history files, so what
//! survives a restart is exactly what was written (a file is either whole
//! or absent), with no second state to keep in step.

use std::collections::HashMap;

use almanac::core::Value;
use almanac_aggregate::exact::xxh64;

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
    // The project's one fixed hash (the sketches' XXH64), with two seeds.
    let low = xxh64(text.as_bytes(), 1);
    let high = xxh64(text.as_bytes(), 2);
    (u128::from(high) << 64) | u128::from(low)
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
