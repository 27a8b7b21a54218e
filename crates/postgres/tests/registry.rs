//! The PostgreSQL registry against a real server (DESIGN §12): two
//! concurrent applies give one success and one conflict with nothing
//! half-written, watermark advances are never lost, and every applied
//! version is kept.

use std::sync::{Arc, Barrier};

use almanac_postgres::PostgresRegistry;
use almanac_registry::{Registry, RegistryError, RegistryState};
use chrono::{DateTime, Duration, Utc};

fn url() -> String {
    std::env::var("ALMANAC_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_string())
}

/// A project name no other test run uses.
fn project(test: &str) -> String {
    format!("{test}_{}_{}", std::process::id(), Utc::now().timestamp_micros())
}

/// The next version of `current`, its definitions marked by `owner`.
fn next_version(current: &RegistryState, owner: &str, at: DateTime<Utc>) -> RegistryState {
    let mut next = current.clone();
    next.version += 1;
    next.applied_at = Some(at);
    next.definitions.entities.push(almanac_core::Entity {
        name: format!("entity_of_{owner}"),
        join_keys: vec![almanac_core::JoinKey { name: "id".into(), dtype: None }],
        governance: Default::default(),
    });
    next
}

#[test]
fn two_concurrent_applies_one_wins_the_other_conflicts_and_nothing_is_half_written() {
    let project = project("concurrent_applies");
    let at: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().expect("ts");
    // Both applies have read the same version before either writes.
    let barrier = Arc::new(Barrier::new(2));
    let applies: Vec<_> = ["alice", "bob"]
        .into_iter()
        .map(|owner| {
            let (barrier, project) = (barrier.clone(), project.clone());
            std::thread::spawn(move || {
                let registry = PostgresRegistry::new(url());
                registry.update(&project, &mut |current| {
                    barrier.wait();
                    Some(next_version(current, owner, at))
                })
            })
        })
        .collect();
    let results: Vec<_> = applies.into_iter().map(|t| t.join().expect("apply thread")).collect();
    let wins: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    let conflicts: Vec<_> = results.iter().filter(|r| matches!(r, Err(RegistryError::Conflict { planned: 0, found: 1 }))).collect();
    assert_eq!((wins.len(), conflicts.len()), (1, 1), "{results:?}");
    let message = results.iter().find_map(|r| r.as_ref().err()).expect("the loser").to_string();
    assert!(message.contains("run `almanac apply` again"), "{message}");

    let registry = PostgresRegistry::new(url());
    let stored = registry.load(&project).expect("load");
    assert_eq!(stored.version, 1);
    assert_eq!(stored.definitions.entities.len(), 1, "exactly the winner's definitions: {:?}", stored.definitions.entities);
    let winner = &wins[0].as_ref().expect("winner").definitions.entities[0].name;
    assert_eq!(&stored.definitions.entities[0].name, winner);
    let history = registry.history(&project).expect("history");
    assert_eq!(history.iter().map(|s| s.version).collect::<Vec<_>>(), vec![1], "one version recorded");
}

#[test]
fn watermark_advances_are_never_lost_even_beside_applies() {
    let project = project("watermarks");
    let registry = Arc::new(PostgresRegistry::new(url()));
    let base: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().expect("ts");
    registry.update(&project, &mut |current| Some(next_version(current, "first", base))).expect("first apply");
    let mut threads = Vec::new();
    for view in 0..4 {
        let (project, registry) = (project.clone(), Arc::new(PostgresRegistry::new(url())));
        threads.push(std::thread::spawn(move || {
            // Out of order on purpose: a later advance never moves a mark back.
            for step in [3, 1, 7, 5, 9, 2] {
                registry.advance_watermark(&project, &format!("v{view}"), base + Duration::minutes(step)).expect("advance");
            }
        }));
    }
    let applier = {
        let (project, registry) = (project.clone(), Arc::new(PostgresRegistry::new(url())));
        std::thread::spawn(move || {
            let mut landed = 0;
            for round in 0..10 {
                // An apply that loses a race is told so; it retries, as a user would.
                if registry.update(&project, &mut |current| Some(next_version(current, &format!("r{round}"), base))).is_ok() {
                    landed += 1;
                }
            }
            landed
        })
    };
    for thread in threads {
        thread.join().expect("writer");
    }
    let landed = applier.join().expect("applier");
    let state = registry.load(&project).expect("load");
    assert_eq!(state.version, 1 + landed);
    for view in 0..4 {
        assert_eq!(state.watermarks[&format!("v{view}")], base + Duration::minutes(9), "v{view}");
    }
    assert_eq!(registry.history(&project).expect("history").len() as u64, state.version, "every applied version kept");
}

#[test]
fn a_stale_commit_is_refused_and_an_unreachable_server_is_a_clear_error() {
    let project = project("stale");
    let registry = PostgresRegistry::new(url());
    let first = next_version(&registry.load(&project).expect("empty"), "a", Utc::now());
    registry.commit(0, &first).expect("first commit");
    let error = registry.commit(0, &first).expect_err("stale");
    assert!(matches!(error, RegistryError::Conflict { planned: 0, found: 1 }), "{error}");

    let error = PostgresRegistry::new("postgresql://postgres:secret@127.0.0.1:1/test").load(&project).expect_err("nothing listens on port 1");
    let message = error.to_string();
    assert!(message.contains("127.0.0.1:1") && !message.contains("secret"), "{message}");
}
