//! The embedded engine against the brute-force oracle of
//! [`almanac_offline::testkit`] (DESIGN §2): random cases on the in-memory
//! and the spilled path, and the named adversarial cases.

use almanac_offline::testkit::{self, Case};
use almanac_offline::{EmbeddedOfflineStore, OfflineStore};
use proptest::prelude::*;

/// Run the engine on `case` and compare with the oracle. `spill` forces the
/// partitioned, spilled path (a one-byte memory budget).
fn check_case(case: &Case, spill: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    testkit::write_rows(dir.path(), "users", &case.users, false, case.user_has_created, case.files);
    testkit::write_rows(dir.path(), "pairs", &case.pairs, true, false, case.files);
    let mut store = EmbeddedOfflineStore::new(dir.path()).expect("store");
    if spill {
        store = store.with_memory_budget(1);
    }
    let (views, entities, options) = testkit::requests(case);
    let out = store.get_historical_features(&entities, &views, &options).expect("join");
    testkit::check(case, &entities, &out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_brute_force_oracle(case in testkit::case_strategy()) {
        check_case(&case, false)?;
    }

    #[test]
    fn the_spilled_path_matches_the_oracle_too(case in testkit::case_strategy()) {
        check_case(&case, true)?;
    }
}

#[test]
fn every_adversarial_case_matches_the_oracle() {
    for (name, case) in testkit::adversarial() {
        check_case(&case, false).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_case(&case, true).unwrap_or_else(|e| panic!("{name} (spilled): {e}"));
    }
}
