//! How a database's schema compares with this build's migrations, on SQLite and PostgreSQL:
//! what `crier serve` checks before it starts (see the binary's `check_schema`).

use crier_testdb::{TestDb, both};

async fn a_migrated_schema_has_nothing_pending_and_nothing_unknown() {
    let db = TestDb::fresh().await.unwrap();
    let status = db.store.schema_status().await.unwrap();
    assert!(status.pending.is_empty(), "{status:?}");
    assert!(status.unknown.is_empty(), "{status:?}");
    assert_eq!(
        status.known_latest,
        crier_store::MIGRATIONS_SQLITE.last().unwrap().version
    );
    // A migration a newer release applied, and one this build knows but the database lost.
    db.execute(
        "INSERT INTO crier_migrations (version, name, applied_at) VALUES (999999, 'future', 0)",
    )
    .await;
    db.execute("DELETE FROM crier_migrations WHERE version = 2")
        .await;
    let status = db.store.schema_status().await.unwrap();
    assert_eq!(status.unknown, vec![999999]);
    assert_eq!(status.pending, vec![2]);
}

both!(tests: a_migrated_schema_has_nothing_pending_and_nothing_unknown);
