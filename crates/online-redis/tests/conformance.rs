//! The online-store conformance kit against a real Redis and a real
//! three-master Redis Cluster started for the test.

use almanac_online::OnlineStore;
use almanac_online_redis::harness::{TestCluster, ensure_redis};
use almanac_online_redis::{RedisClusterStore, RedisStore, Timeouts};

#[test]
fn redis_passes_the_conformance_kit() {
    let url = ensure_redis(6379, 0).expect("a Redis server is required for this test");
    let store = RedisStore::connect(&url, &format!("conformance{}", std::process::id()), Timeouts::default()).expect("connect");
    almanac_online::testkit::run_all(&store, "redis");
}

#[test]
fn redis_cluster_passes_the_conformance_kit() {
    let cluster = TestCluster::start(3).expect("a 3-master Redis Cluster is required for this test");
    let store = RedisClusterStore::connect(&cluster.nodes, "conformance", Timeouts::default()).expect("connect");
    store.ping().expect("cluster ready");
    almanac_online::testkit::run_all(&store, "cluster");
}

#[test]
fn an_unreachable_redis_fails_fast_with_the_url() {
    let started = std::time::Instant::now();
    let timeouts = Timeouts { connect: std::time::Duration::from_millis(300), response: std::time::Duration::from_millis(300) };
    // Port 1 on loopback: nothing listens there.
    let error = match RedisStore::connect("redis://127.0.0.1:1/0", "p", timeouts) {
        Err(error) => error,
        Ok(store) => store.read(&[almanac_online::Lookup { view: "v", key: b"k" }]).expect_err("nothing listens on port 1"),
    };
    let text = error.to_string();
    assert!(error.is_unavailable(), "{text}");
    assert!(text.contains("redis://127.0.0.1:1/0") && text.contains("check that Redis is running"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
}
