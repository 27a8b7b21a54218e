//! The point-in-time oracle suite through PostgreSQL (DESIGN §2, §12): the
//! random and adversarial cases of `almanac_offline::testkit`, their
//! history loaded into real tables of the local server, the join run
//! inside PostgreSQL as the planner's SQL; the result must equal the
//! brute-force oracle and the embedded engine's, row for row.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (database `test`, or
//! `ALMANAC_TEST_POSTGRES_URL`); a missing server fails the test loudly.

use std::sync::atomic::{AtomicU64, Ordering};

use almanac_offline::testkit::{self, Case};
use almanac_offline::{EmbeddedOfflineStore, OfflineStore, ViewRequest};
use almanac_postgres::PostgresOfflineStore;
use postgres::{Client, NoTls};
use proptest::prelude::*;

fn url() -> String {
    std::env::var("ALMANAC_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_string())
}

fn client() -> Client {
    Client::connect(&url(), NoTls).unwrap_or_else(|e| panic!("PostgreSQL must be running at {} for these tests: {e}", url()))
}

/// A fresh schema per case, so cases never see each other's tables.
fn schema_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("almanac_oracle_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Run `case` on PostgreSQL and on the embedded engine; both must equal the
/// oracle and each other.
fn check_case(case: &Case) -> Result<(), TestCaseError> {
    let schema = schema_name();
    let mut admin = client();
    admin.batch_execute(&format!("CREATE SCHEMA {schema}")).expect("create schema");
    let result = (|| {
        // Zone-less `ts` becomes `timestamp` (read as UTC), `created` `timestamptz`.
        let store = PostgresOfflineStore::new(url());
        for (name, batch) in [("users", testkit::history_batch(&case.users, false, case.user_has_created)), ("pairs", testkit::history_batch(&case.pairs, true, false))] {
            store.load_table(&format!("{schema}.{name}"), batch.schema_ref(), std::slice::from_ref(&batch)).expect("load history");
        }
        let (views, entities, options) = testkit::requests(case);
        let in_database: Vec<ViewRequest> = views
            .iter()
            .cloned()
            .map(|mut view| {
                view.source.table = Some(format!("{schema}.{}", view.source.name));
                view.source.path = String::new();
                view
            })
            .collect();
        let postgres = store.get_historical_features(&entities, &in_database, &options).expect("join in PostgreSQL");
        testkit::check(case, &entities, &postgres)?;

        let dir = tempfile::tempdir().expect("tempdir");
        testkit::write_rows(dir.path(), "users", &case.users, false, case.user_has_created, case.files);
        testkit::write_rows(dir.path(), "pairs", &case.pairs, true, false, case.files);
        let embedded = EmbeddedOfflineStore::new(dir.path()).expect("store").get_historical_features(&entities, &views, &options).expect("embedded join");
        prop_assert_eq!(&postgres, &embedded, "PostgreSQL and the embedded engine differ");
        Ok(())
    })();
    admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).expect("drop schema");
    result
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn postgres_matches_the_oracle_and_the_embedded_engine(case in testkit::case_strategy()) {
        check_case(&case)?;
    }
}

#[test]
fn every_adversarial_case_matches_in_postgres() {
    for (name, case) in testkit::adversarial() {
        check_case(&case).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
