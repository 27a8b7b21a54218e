//! The conformance kit: behaviour every [`OnlineStore`] must show, run by
//! each implementation's tests (the embedded store in `almanac-online-lmdb`,
//! Redis and Redis Cluster in `almanac-online-redis`), so no store is held
//! to a weaker contract.
//!
//! Each case uses its own view names under `prefix`, so the kit can run on
//! a shared server without interfering with other data. Failures panic with
//! the case's name (this is test code).

use crate::key::{KeyPart, encode_key};
use crate::record::{RecordCodec, RecordHeader};
use crate::{Entry, Lookup, OnlineStore};
use almanac_core::Value;

/// A record of a one-feature (int64) view with value `value`.
pub fn entry(key: &[u8], event_ts: i64, created_ts: Option<i64>, value: i64) -> Entry {
    let mut record = Vec::new();
    codec().encode_values(&[Value::Int64(value)], event_ts, created_ts, &mut record).expect("encode");
    Entry { key: key.to_vec(), record }
}

fn codec() -> RecordCodec {
    let field = almanac_core::Field { name: "x".into(), dtype: almanac_core::DType::Int64, description: String::new(), tags: Default::default() };
    RecordCodec::new(&[field])
}

fn value_of(record: &Option<Vec<u8>>) -> Option<(i64, i64)> {
    let record = record.as_ref()?;
    let decoded = codec().decode(record).expect("decode");
    match decoded.values[0] {
        Value::Int64(v) => Some((decoded.event_ts, v)),
        _ => None,
    }
}

fn read_one(store: &dyn OnlineStore, view: &str, key: &[u8]) -> Option<(i64, i64)> {
    let got = store.read(&[Lookup { view, key }]).expect("read");
    assert_eq!(got.len(), 1);
    value_of(&got[0])
}

/// Run every case.
pub fn run_all(store: &dyn OnlineStore, prefix: &str) {
    missing_reads_are_none(store, prefix);
    write_then_read(store, prefix);
    keep_if_newer(store, prefix);
    created_time_breaks_ties(store, prefix);
    multi_view_reads_keep_order(store, prefix);
    delete_and_scan(store, prefix);
    awkward_keys(store, prefix);
    large_batches(store, prefix);
    store.ping().expect("ping");
}

fn view(prefix: &str, case: &str) -> String {
    format!("{prefix}_{case}")
}

pub fn missing_reads_are_none(store: &dyn OnlineStore, prefix: &str) {
    let v = view(prefix, "missing");
    store.delete_view(&v).expect("delete");
    assert_eq!(store.read(&[Lookup { view: &v, key: b"nope" }]).expect("read"), vec![None], "missing_reads_are_none");
    assert!(store.read(&[]).expect("empty read").is_empty());
    assert_eq!(store.write(&v, &[]).expect("empty write").written, 0);
}

pub fn write_then_read(store: &dyn OnlineStore, prefix: &str) {
    let v = view(prefix, "basic");
    store.delete_view(&v).expect("delete");
    let stats = store.write(&v, &[entry(b"a", 10, None, 1), entry(b"b", 20, None, 2)]).expect("write");
    assert_eq!(stats.written, 2, "write_then_read");
    assert_eq!(read_one(store, &v, b"a"), Some((10, 1)));
    assert_eq!(read_one(store, &v, b"b"), Some((20, 2)));
    // Records come back byte for byte.
    let stored = store.read(&[Lookup { view: &v, key: b"a" }]).expect("read");
    assert_eq!(stored[0].as_deref(), Some(entry(b"a", 10, None, 1).record.as_slice()));
}

pub fn keep_if_newer(store: &dyn OnlineStore, prefix: &str) {
    let v = view(prefix, "newer");
    store.delete_view(&v).expect("delete");
    store.write(&v, &[entry(b"k", 100, None, 1)]).expect("write");
    let older = store.write(&v, &[entry(b"k", 99, None, 2)]).expect("write older");
    assert_eq!((older.written, older.kept_newer), (0, 1), "an older record must not replace a newer one");
    assert_eq!(read_one(store, &v, b"k"), Some((100, 1)));
    store.write(&v, &[entry(b"k", 100, None, 3)]).expect("write equal");
    assert_eq!(read_one(store, &v, b"k"), Some((100, 3)), "an equal version overwrites (re-runs are idempotent)");
    store.write(&v, &[entry(b"k", 101, None, 4)]).expect("write newer");
    assert_eq!(read_one(store, &v, b"k"), Some((101, 4)));
    // Negative instants (before 1970) order correctly too.
    store.write(&v, &[entry(b"neg", -5, None, 1)]).expect("write");
    store.write(&v, &[entry(b"neg", -6, None, 2)]).expect("write");
    assert_eq!(read_one(store, &v, b"neg"), Some((-5, 1)));
    // Within one batch, the newest of several records for a key wins,
    // whatever their order in the batch.
    store.write(&v, &[entry(b"dup", 7, None, 1), entry(b"dup", 9, None, 2), entry(b"dup", 8, None, 3)]).expect("write");
    assert_eq!(read_one(store, &v, b"dup"), Some((9, 2)));
}

pub fn created_time_breaks_ties(store: &dyn OnlineStore, prefix: &str) {
    let v = view(prefix, "created");
    store.delete_view(&v).expect("delete");
    store.write(&v, &[entry(b"k", 50, Some(10), 1)]).expect("write");
    store.write(&v, &[entry(b"k", 50, Some(9), 2)]).expect("write");
    store.write(&v, &[entry(b"k", 50, None, 3)]).expect("write");
    assert_eq!(read_one(store, &v, b"k"), Some((50, 1)), "same event time: the later created time wins; none loses");
    store.write(&v, &[entry(b"k", 50, Some(11), 4)]).expect("write");
    assert_eq!(read_one(store, &v, b"k"), Some((50, 4)));
    let header = store.read(&[Lookup { view: &v, key: b"k" }]).expect("read")[0].as_deref().and_then(RecordHeader::parse);
    assert_eq!(header.map(|h| h.created_ts), Some(Some(11)));
}

pub fn multi_view_reads_keep_order(store: &dyn OnlineStore, prefix: &str) {
    let (a, b) = (view(prefix, "mv_a"), view(prefix, "mv_b"));
    store.delete_view(&a).expect("delete");
    store.delete_view(&b).expect("delete");
    store.write(&a, &[entry(b"1", 1, None, 11), entry(b"2", 1, None, 12)]).expect("write");
    store.write(&b, &[entry(b"1", 1, None, 21)]).expect("write");
    let lookups = [
        Lookup { view: &b, key: b"1" },
        Lookup { view: &a, key: b"2" },
        Lookup { view: &b, key: b"2" },
        Lookup { view: &a, key: b"1" },
        Lookup { view: "never_written_view", key: b"1" },
    ];
    let got: Vec<Option<i64>> = store.read(&lookups).expect("read").iter().map(|r| value_of(r).map(|(_, v)| v)).collect();
    assert_eq!(got, vec![Some(21), Some(12), None, Some(11), None], "multi_view_reads_keep_order");
}

pub fn delete_and_scan(store: &dyn OnlineStore, prefix: &str) {
    let (v, other) = (view(prefix, "scan"), view(prefix, "scan_other"));
    store.delete_view(&v).expect("delete");
    store.delete_view(&other).expect("delete");
    let entries: Vec<Entry> = (0..50).map(|i| entry(format!("k{i}").as_bytes(), i, None, i)).collect();
    store.write(&v, &entries).expect("write");
    store.write(&other, &[entry(b"k1", 1, None, 1)]).expect("write");
    let mut scanned = store.scan(&v, None).expect("scan");
    scanned.sort_by(|x, y| x.key.cmp(&y.key));
    let mut expected = entries.clone();
    expected.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(scanned, expected, "scan returns exactly the view's records");
    assert!(store.scan(&v, Some(5)).expect("scan").len() <= 5);
    assert_eq!(store.delete_view(&v).expect("delete"), 50);
    assert!(store.scan(&v, None).expect("scan").is_empty());
    assert_eq!(read_one(store, &other, b"k1"), Some((1, 1)), "deleting one view leaves the others");
}

pub fn awkward_keys(store: &dyn OnlineStore, prefix: &str) {
    let v = view(prefix, "keys");
    store.delete_view(&v).expect("delete");
    let mut keys = Vec::new();
    for parts in [
        vec![KeyPart::Int(125)], // 0x7d is `}`: must not break a Redis hash tag
        vec![KeyPart::Int(-1)],
        vec![KeyPart::Str("}{".into()), KeyPart::Int(0)],
        vec![KeyPart::Str(String::new())],
        vec![KeyPart::Str("ключ with spaces\n".into())],
        vec![],
    ] {
        let mut key = Vec::new();
        encode_key(&parts, &mut key);
        keys.push(key);
    }
    let entries: Vec<Entry> = keys.iter().enumerate().map(|(i, k)| entry(k, 1, None, i as i64)).collect();
    store.write(&v, &entries).expect("write");
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(read_one(store, &v, key), Some((1, i as i64)), "awkward key {i}");
    }
}

pub fn large_batches(store: &dyn OnlineStore, prefix: &str) {
    let v = view(prefix, "large");
    store.delete_view(&v).expect("delete");
    let entries: Vec<Entry> = (0..20_000i64).map(|i| entry(&i.to_be_bytes(), i, None, i * 2)).collect();
    assert_eq!(store.write(&v, &entries).expect("write").written, 20_000);
    let keys: Vec<[u8; 8]> = (0..20_000i64).step_by(7).map(|i| i.to_be_bytes()).collect();
    let lookups: Vec<Lookup> = keys.iter().map(|k| Lookup { view: &v, key: k }).collect();
    let got = store.read(&lookups).expect("read");
    for (i, record) in (0..20_000i64).step_by(7).zip(&got) {
        assert_eq!(value_of(record), Some((i, i * 2)), "large batch row {i}");
    }
    store.delete_view(&v).expect("delete");
}
