//! The online-store conformance kit against the embedded LMDB store.

use almanac_online_lmdb::EmbeddedStore;

#[test]
fn embedded_store_passes_the_conformance_kit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("online")).expect("open");
    almanac_online::testkit::run_all(&store, "t");
}
