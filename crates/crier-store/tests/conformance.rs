//! One behaviour on two backends: every test here runs against SQLite (a temp file) and
//! PostgreSQL (a fresh schema in the database named by `CRIER_TEST_DATABASE_URL`).
//!
//! A test written with `conformance!(name, |store| async move { … })` becomes two tests,
//! `name::sqlite` and `name::postgres` (`cargo test -p crier-store postgres` runs one side).
//! Without `CRIER_TEST_DATABASE_URL` the PostgreSQL side is skipped with a line on stderr,
//! except in CI (`CI=true`), where a missing database is a failure. When the variable is set,
//! an unreachable database fails the test: a skipped suite must never look like a green one.
//!
//! Times are fixed epoch milliseconds, never the clock, so each assertion is exact.

use std::collections::BTreeMap;
use std::time::Duration;

use crier_core::ids::{AccountId, KeyId, WorkspaceId};
use crier_core::posts::PostStatus;
use crier_core::{KeyDigest, KeyMode, Scope, ScopeSet, SecretKey};
use crier_store::{
    Account, Actor, AuditEntry, Backend, IdempotencyBegin, KeyChange, KeyChanges, KeyRow, KeyUsage,
    MIGRATIONS_POSTGRES, MIGRATIONS_SQLITE, Migration, Post, Store, StoreError, WorkspaceChanges,
};
use crier_testdb::{PgSchema, TestDb};
use serde_json::json;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// 2027-01-15T08:00:00Z: any fixed instant will do.
const T0: i64 = 1_800_000_000_000;
const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60 * MINUTE;

// ---------------------------------------------------------------------------------------------
// Harness (crier-testdb's, with the body given the store)
// ---------------------------------------------------------------------------------------------

fn migrations_of(store: &Store) -> &'static [Migration] {
    match store.backend() {
        Backend::Sqlite => MIGRATIONS_SQLITE,
        Backend::Postgres => MIGRATIONS_POSTGRES,
    }
}

fn versions(migrations: &[Migration]) -> Vec<i64> {
    migrations.iter().map(|m| m.version).collect()
}

/// Runs `body` on the database's store (the database lives until it is done).
async fn with_store<F, Fut>(db: TestDb, body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    body(db.store.clone()).await;
}

/// `conformance!(name, |store| async move { … })` defines `name::sqlite` and
/// `name::postgres`, each running the body on a fresh, migrated store of that backend.
macro_rules! conformance {
    ($name:ident, $body:expr) => {
        crier_testdb::both!($name, |db| with_store(db, $body));
    };
}

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

/// A new key row for `ws`, created at `now`, with every optional field filled in so that a
/// round trip checks them all. The secret is dropped: storage never sees it.
fn key_row(ws: &WorkspaceId, mode: KeyMode, now: i64) -> KeyRow {
    let secret = SecretKey::generate(mode);
    KeyRow {
        id: KeyId::generate(),
        workspace_id: ws.clone(),
        name: "publisher".to_owned(),
        description: "posts from the CMS".to_owned(),
        prefix: secret.display_prefix().to_owned(),
        digest: secret.digest(),
        mode,
        scopes: [Scope::PostsRead, Scope::PostsWrite, Scope::MediaRead]
            .into_iter()
            .collect(),
        per_minute: 120,
        per_day: 50_000,
        allowed_ips: vec!["10.0.0.0/8".to_owned(), "2001:db8::/32".to_owned()],
        allowed_origins: vec!["https://example.com".to_owned()],
        allowed_brand_ids: vec![crier_core::ids::BrandId::generate().to_string()],
        allowed_account_ids: vec![crier_core::ids::AccountId::generate().to_string()],
        expires_at: Some(now + 365 * DAY),
        last_used_at: None,
        request_count: 0,
        created_at: now,
        updated_at: now,
        revoked_at: None,
        replaced_by: None,
        created_by: Some(KeyId::generate()),
        member_id: None,
    }
}

fn audit(ws: &WorkspaceId, actor: Actor, action: &str, target: &KeyId, now: i64) -> AuditEntry {
    let request_id = format!("req_{action}_{now}");
    AuditEntry::new(
        ws,
        actor,
        action,
        target.as_str(),
        Some(&request_id),
        json!({ "action": action }),
        now,
    )
}

/// Stores a fresh key for `ws` with a `key.created` entry by the operator.
async fn insert_new_key(store: &Store, ws: &WorkspaceId, mode: KeyMode, now: i64) -> KeyRow {
    let key = key_row(ws, mode, now);
    let entry = audit(ws, Actor::Cli, "key.created", &key.id, now);
    store.insert_key(&key, &entry).await.expect("insert key");
    key
}

async fn new_workspace(store: &Store, name: &str) -> WorkspaceId {
    store
        .create_workspace(name, "free", T0)
        .await
        .expect("create workspace")
        .id
}

async fn stored_key(store: &Store, key: &KeyRow) -> KeyRow {
    store
        .get_key(&key.workspace_id, &key.id)
        .await
        .expect("get key")
        .expect("the key exists")
}

// ---------------------------------------------------------------------------------------------
// Harness and migrations
// ---------------------------------------------------------------------------------------------

#[test]
fn migrations_are_in_step() {
    let names =
        |ms: &[Migration]| -> Vec<(i64, &str)> { ms.iter().map(|m| (m.version, m.name)).collect() };
    assert_eq!(names(MIGRATIONS_SQLITE), names(MIGRATIONS_POSTGRES));
    assert!(!MIGRATIONS_SQLITE.is_empty());
    for ms in [MIGRATIONS_SQLITE, MIGRATIONS_POSTGRES] {
        assert!(
            ms.windows(2).all(|w| w[0].version < w[1].version),
            "versions strictly increase"
        );
        assert!(ms.iter().all(|m| !m.sql.trim().is_empty()));
    }
}

#[tokio::test]
async fn connect_refuses_unusable_urls() {
    for url in [
        "mysql://localhost/db",
        "sqlite::memory:",
        "sqlite://",
        "sqlite://?mode=memory",
    ] {
        match Store::connect(url).await {
            Err(StoreError::Config(_)) => {}
            other => panic!("{url}: expected a config error, got {other:?}"),
        }
    }
}

/// The harness's own promise: a PostgreSQL store works inside its schema and nowhere else.
#[tokio::test]
async fn postgres_store_lives_in_its_own_schema() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let store = crier_testdb::connect_migrated(&schema.url).await;
    store.create_workspace("acme", "free", T0).await.unwrap();

    let mut conn = PgConnection::connect(&schema.url).await.unwrap();
    let current: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(current, schema.name);
    let names: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT name FROM \"{}\".workspaces",
        schema.name
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(names, ["acme"]);
    conn.close().await.ok();

    // Another store starts empty, in a schema of its own.
    let other = TestDb::postgres().await.expect("the variable is set");
    assert!(other.store.list_workspaces().await.unwrap().is_empty());
    other
        .store
        .create_workspace("acme", "free", T0)
        .await
        .unwrap();

    store.close().await;
    other.store.close().await;
    schema.drop().await;
}

conformance!(migrate_twice_applies_nothing, |store| async move {
    let all = versions(migrations_of(&store));
    assert_eq!(store.migrate().await.unwrap(), Vec::<i64>::new());
    assert_eq!(store.applied_migrations().await.unwrap(), all);
});

/// Several nodes starting at once on an empty database: each migration is applied once.
async fn check_concurrent_migrate(url: &str) {
    let a = Store::connect(url).await.unwrap();
    let b = Store::connect(url).await.unwrap();
    let expected = versions(migrations_of(&a));
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let mut applied = ra.expect("first node migrates");
    applied.extend(rb.expect("second node migrates"));
    applied.sort_unstable();
    assert_eq!(applied, expected);
    assert_eq!(b.applied_migrations().await.unwrap(), expected);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn migrate_concurrently_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check_concurrent_migrate(&format!("sqlite://{}", dir.path().join("c.db").display())).await;
}

#[tokio::test]
async fn migrate_concurrently_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    check_concurrent_migrate(&schema.url).await;
    schema.drop().await;
}

conformance!(ping_answers_until_closed, |store| async move {
    store.ping().await.expect("ping");
    store.close().await;
    assert!(store.ping().await.is_err(), "a closed store is not ready");
});

// ---------------------------------------------------------------------------------------------
// Workspaces
// ---------------------------------------------------------------------------------------------

conformance!(
    the_database_clock_is_read_against_ours,
    |store| async move {
        let local = || crier_core::clock::Clock::now_ms(&crier_core::SystemClock);
        let offset = store.clock_offset_ms(local).await.unwrap();
        match store.backend() {
            // One machine, one clock.
            Backend::Sqlite => assert_eq!(offset, None),
            // The server runs on this machine here: within a second (units, rounding and the
            // round trip's middle all wrong would be far more).
            Backend::Postgres => {
                let ms = offset.expect("an offset");
                assert!(ms.abs() < 1000, "{ms} ms");
            }
        }
        // A clock ten minutes fast reads as the database ten minutes behind.
        if store.backend() == Backend::Postgres {
            let fast = || local() + 10 * MINUTE;
            let ms = store.clock_offset_ms(fast).await.unwrap().unwrap();
            assert!((ms + 10 * MINUTE).abs() < 1000, "{ms} ms");
        }
    }
);

conformance!(workspaces_create_get_find_list, |store| async move {
    let acme = store.create_workspace("acme", "pro", T0).await.unwrap();
    assert_eq!(acme.name, "acme");
    assert_eq!(acme.plan, "pro");
    assert_eq!(acme.timezone, "UTC");
    assert!(!acme.require_approval);
    assert_eq!((acme.created_at, acme.updated_at), (T0, T0));

    assert_eq!(
        store.get_workspace(&acme.id).await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(
        store.find_workspace(acme.id.as_str()).await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(
        store.find_workspace("acme").await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(
        store.get_workspace(&WorkspaceId::generate()).await.unwrap(),
        None
    );
    assert_eq!(store.find_workspace("nobody").await.unwrap(), None);

    // A workspace named like another's id does not hide that one: the id wins.
    let tricky = store
        .create_workspace(acme.id.as_str(), "free", T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        store.find_workspace(acme.id.as_str()).await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(
        store.find_workspace(tricky.id.as_str()).await.unwrap(),
        Some(tricky.clone())
    );

    // Ids are time-ordered, so the list is in creation order.
    assert_eq!(store.list_workspaces().await.unwrap(), vec![acme, tricky]);
});

conformance!(workspace_duplicate_name_conflicts, |store| async move {
    let first = store.create_workspace("acme", "free", T0).await.unwrap();
    match store.create_workspace("acme", "pro", T0 + 1).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.list_workspaces().await.unwrap(), vec![first]);
});

conformance!(
    workspace_update_changes_only_given_fields,
    |store| async move {
        let ws = store.create_workspace("acme", "free", T0).await.unwrap();

        let changes = WorkspaceChanges {
            timezone: Some("Europe/Paris".to_owned()),
            ..Default::default()
        };
        let after = store
            .update_workspace(&ws.id, &changes, T0 + 10)
            .await
            .unwrap()
            .expect("the workspace exists");
        assert_eq!(after.timezone, "Europe/Paris");
        assert_eq!(
            (after.plan.as_str(), after.require_approval),
            ("free", false)
        );
        assert_eq!((after.created_at, after.updated_at), (T0, T0 + 10));

        let changes = WorkspaceChanges {
            require_approval: Some(true),
            plan: Some("pro".to_owned()),
            ..Default::default()
        };
        let after = store
            .update_workspace(&ws.id, &changes, T0 + 20)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.timezone, "Europe/Paris");
        assert!(after.require_approval);
        assert_eq!(after.plan, "pro");
        assert_eq!(
            store.get_workspace(&ws.id).await.unwrap(),
            Some(after.clone())
        );

        let changes = WorkspaceChanges {
            require_approval: Some(false),
            ..Default::default()
        };
        let after = store
            .update_workspace(&ws.id, &changes, T0 + 30)
            .await
            .unwrap()
            .unwrap();
        assert!(!after.require_approval);
        assert_eq!(after.updated_at, T0 + 30);

        // No changes still touches updated_at.
        let after = store
            .update_workspace(&ws.id, &WorkspaceChanges::default(), T0 + 40)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (after.timezone.as_str(), after.plan.as_str()),
            ("Europe/Paris", "pro")
        );
        assert_eq!(after.updated_at, T0 + 40);

        let unknown = store
            .update_workspace(&WorkspaceId::generate(), &WorkspaceChanges::default(), T0)
            .await
            .unwrap();
        assert_eq!(unknown, None);
    }
);

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

conformance!(a_key_is_not_made_by_a_revoked_key, |store| async move {
    // A request authenticated just before its key was revoked must not leave a key made by
    // it behind the revocation (which ends what the key made): the write checks its maker.
    let ws = store.create_workspace("acme", "pro", T0).await.unwrap().id;
    let maker = insert_new_key(&store, &ws, KeyMode::Live, T0).await;
    let mut made = key_row(&ws, KeyMode::Live, T0 + 1);
    made.created_by = Some(maker.id.clone());
    let entry = audit(&ws, Actor::Cli, "key.revoked", &maker.id, T0 + 1);
    store
        .revoke_key(&ws, &maker.id, T0 + 1, &entry)
        .await
        .unwrap()
        .expect("revoked");
    let entry = audit(&ws, Actor::Cli, "key.created", &made.id, T0 + 2);
    let refused = store.insert_key(&made, &entry).await.unwrap_err();
    assert!(matches!(refused, StoreError::Conflict(_)), "{refused:?}");
    assert_eq!(store.get_key(&ws, &made.id).await.unwrap(), None);
    // A live maker makes keys.
    let live = insert_new_key(&store, &ws, KeyMode::Live, T0 + 3).await;
    made.created_by = Some(live.id.clone());
    store.insert_key(&made, &entry).await.unwrap();
});

conformance!(key_insert_round_trips, |store| async move {
    let ws = store.create_workspace("acme", "pro", T0).await.unwrap().id;
    let other = new_workspace(&store, "other").await;
    let key = insert_new_key(&store, &ws, KeyMode::Live, T0 + 1).await;

    assert_eq!(
        store.get_key(&ws, &key.id).await.unwrap(),
        Some(key.clone())
    );
    // Tenant scoping: the right id in the wrong workspace does not exist.
    assert_eq!(store.get_key(&other, &key.id).await.unwrap(), None);
    assert_eq!(store.get_key(&ws, &KeyId::generate()).await.unwrap(), None);

    let found = store
        .key_by_digest(&key.digest)
        .await
        .unwrap()
        .expect("found by digest");
    assert_eq!(found.key, key);
    assert_eq!(found.plan, "pro");
    // The plan is read live from the workspace.
    let changes = WorkspaceChanges {
        plan: Some("business".to_owned()),
        ..Default::default()
    };
    store.update_workspace(&ws, &changes, T0 + 2).await.unwrap();
    let found = store.key_by_digest(&key.digest).await.unwrap().unwrap();
    assert_eq!(found.plan, "business");

    let unknown = SecretKey::generate(KeyMode::Live).digest();
    assert!(store.key_by_digest(&unknown).await.unwrap().is_none());

    // Optional fields empty round-trip as well.
    let mut bare = key_row(&ws, KeyMode::Test, T0 + 3);
    bare.scopes = ScopeSet::EMPTY;
    bare.allowed_ips.clear();
    bare.allowed_origins.clear();
    bare.expires_at = None;
    bare.created_by = None;
    bare.description.clear();
    let entry = audit(&ws, Actor::Cli, "key.created", &bare.id, T0 + 3);
    store.insert_key(&bare, &entry).await.unwrap();
    assert_eq!(stored_key(&store, &bare).await, bare);

    let log = store.list_audit(&ws, Some(key.id.as_str())).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, "key.created");
    assert_eq!(log[0].actor, Actor::Cli);
});

conformance!(
    key_insert_refuses_duplicates_atomically,
    |store| async move {
        let ws = new_workspace(&store, "acme").await;
        let key = insert_new_key(&store, &ws, KeyMode::Live, T0).await;

        // Same digest under a new id: a conflict, and its audit entry is not written either.
        let mut twin = key_row(&ws, KeyMode::Live, T0 + 1);
        twin.digest = key.digest;
        let entry = audit(&ws, Actor::Cli, "key.created", &twin.id, T0 + 1);
        match store.insert_key(&twin, &entry).await {
            Err(StoreError::Conflict(_)) => {}
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(store.get_key(&ws, &twin.id).await.unwrap(), None);
        assert!(
            store
                .list_audit(&ws, Some(twin.id.as_str()))
                .await
                .unwrap()
                .is_empty()
        );

        // A key needs an existing workspace (foreign keys are on for SQLite too).
        let nowhere = WorkspaceId::generate();
        let orphan = key_row(&nowhere, KeyMode::Live, T0 + 2);
        let entry = audit(&nowhere, Actor::Cli, "key.created", &orphan.id, T0 + 2);
        match store.insert_key(&orphan, &entry).await {
            Err(StoreError::Database(_)) => {}
            other => panic!("expected a foreign key error, got {other:?}"),
        }
        assert!(store.key_by_digest(&orphan.digest).await.unwrap().is_none());
        assert!(store.list_audit(&nowhere, None).await.unwrap().is_empty());
    }
);

conformance!(list_keys_pages_newest_first, |store| async move {
    let ws = new_workspace(&store, "acme").await;
    let other = new_workspace(&store, "other").await;
    let mut keys = Vec::new();
    for (i, mode) in [
        KeyMode::Live,
        KeyMode::Test,
        KeyMode::Live,
        KeyMode::Test,
        KeyMode::Live,
    ]
    .into_iter()
    .enumerate()
    {
        keys.push(insert_new_key(&store, &ws, mode, T0 + i as i64).await);
    }
    insert_new_key(&store, &other, KeyMode::Live, T0 + 10).await;
    let newest_first: Vec<KeyRow> = keys.iter().rev().cloned().collect();

    let page = store.list_keys(&ws, None, 2, 0).await.unwrap();
    assert_eq!(page.items, newest_first[0..2]);
    assert!(page.has_more);
    let page = store.list_keys(&ws, None, 2, 2).await.unwrap();
    assert_eq!(page.items, newest_first[2..4]);
    assert!(page.has_more);
    let page = store.list_keys(&ws, None, 2, 4).await.unwrap();
    assert_eq!(page.items, newest_first[4..]);
    assert!(!page.has_more);
    let page = store.list_keys(&ws, None, 5, 0).await.unwrap();
    assert_eq!(page.items, newest_first);
    assert!(!page.has_more, "exactly `limit` rows left is not more");
    let page = store.list_keys(&ws, None, 10, 5).await.unwrap();
    assert!(page.items.is_empty() && !page.has_more);

    let test_keys: Vec<KeyRow> = newest_first
        .iter()
        .filter(|k| k.mode == KeyMode::Test)
        .cloned()
        .collect();
    let page = store
        .list_keys(&ws, Some(KeyMode::Test), 10, 0)
        .await
        .unwrap();
    assert_eq!(page.items, test_keys);
    assert!(!page.has_more);
    let page = store
        .list_keys(&ws, Some(KeyMode::Live), 2, 0)
        .await
        .unwrap();
    assert!(page.items.iter().all(|k| k.mode == KeyMode::Live));
    assert_eq!(
        page.items,
        [newest_first[0].clone(), newest_first[2].clone()]
    );
    assert!(page.has_more);

    let page = store.list_keys(&other, None, 10, 0).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let page = store
        .list_keys(&WorkspaceId::generate(), None, 10, 0)
        .await
        .unwrap();
    assert!(page.items.is_empty() && !page.has_more);
});

conformance!(
    update_key_writes_mutable_fields_of_active_keys,
    |store| async move {
        let ws = new_workspace(&store, "acme").await;
        let other = new_workspace(&store, "other").await;
        let key = insert_new_key(&store, &ws, KeyMode::Live, T0).await;
        let actor = Actor::Key(KeyId::generate());

        let mut wanted = key.clone();
        wanted.name = "renamed".to_owned();
        wanted.description = "now read-only".to_owned();
        wanted.scopes = ScopeSet::of(Scope::PostsRead);
        wanted.per_minute = 10;
        wanted.per_day = 1000;
        wanted.allowed_ips = vec!["192.0.2.1/32".to_owned()];
        wanted.allowed_origins = vec![];
        wanted.expires_at = None;
        wanted.updated_at = T0 + 5;
        // Fields that are not the caller's to change are ignored.
        let mut sent = wanted.clone();
        sent.prefix = "sk_test_XXXX".to_owned();
        sent.digest = SecretKey::generate(KeyMode::Test).digest();
        sent.mode = KeyMode::Test;
        sent.request_count = 999;
        sent.last_used_at = Some(T0 + 5);
        sent.created_at = T0 + 5;
        sent.revoked_at = Some(T0 + 5);
        sent.replaced_by = Some(KeyId::generate());
        sent.created_by = None;

        let entry = audit(&ws, actor.clone(), "key.updated", &key.id, T0 + 5);
        let stored = store
            .update_key(&sent, &entry)
            .await
            .unwrap()
            .expect("updated");
        assert_eq!(stored, wanted);
        assert_eq!(stored_key(&store, &key).await, wanted);

        // Another workspace's id for the key: nothing happens, nothing is audited.
        let mut foreign = wanted.clone();
        foreign.workspace_id = other.clone();
        foreign.name = "hijacked".to_owned();
        let entry = audit(&other, actor.clone(), "key.updated", &key.id, T0 + 6);
        assert_eq!(store.update_key(&foreign, &entry).await.unwrap(), None);
        assert_eq!(stored_key(&store, &key).await.name, "renamed");
        assert!(store.list_audit(&other, None).await.unwrap().is_empty());

        // A revoked key is frozen.
        let entry = audit(&ws, actor.clone(), "key.revoked", &key.id, T0 + 7);
        store
            .revoke_key(&ws, &key.id, T0 + 7, &entry)
            .await
            .unwrap();
        let mut late = wanted.clone();
        late.name = "too late".to_owned();
        late.updated_at = T0 + 8;
        let entry = audit(&ws, actor, "key.updated", &key.id, T0 + 8);
        assert_eq!(store.update_key(&late, &entry).await.unwrap(), None);
        let after = stored_key(&store, &key).await;
        assert_eq!((after.name.as_str(), after.updated_at), ("renamed", T0 + 7));
        let actions: Vec<String> = store
            .list_audit(&ws, Some(key.id.as_str()))
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["key.revoked", "key.updated", "key.created"]);

        // Unknown id.
        let ghost = key_row(&ws, KeyMode::Live, T0);
        let entry = audit(&ws, Actor::Cli, "key.updated", &ghost.id, T0 + 9);
        assert_eq!(store.update_key(&ghost, &entry).await.unwrap(), None);
    }
);

conformance!(revoke_key_keeps_the_first_revocation, |store| async move {
    let ws = new_workspace(&store, "acme").await;
    let other = new_workspace(&store, "other").await;
    let key = insert_new_key(&store, &ws, KeyMode::Live, T0).await;

    let entry = audit(&ws, Actor::Cli, "key.revoked", &key.id, T0 + 10);
    let revoked = store
        .revoke_key(&ws, &key.id, T0 + 10, &entry)
        .await
        .unwrap()
        .expect("revoked");
    assert_eq!(revoked.revoked_at, Some(T0 + 10));
    assert_eq!(revoked.updated_at, T0 + 10);
    assert_eq!(
        revoked,
        KeyRow {
            revoked_at: Some(T0 + 10),
            updated_at: T0 + 10,
            ..key.clone()
        }
    );
    assert_eq!(stored_key(&store, &key).await, revoked);

    // Again, later: the key comes back as it is, and no second entry is written.
    let entry = audit(&ws, Actor::Cli, "key.revoked", &key.id, T0 + 20);
    let again = store
        .revoke_key(&ws, &key.id, T0 + 20, &entry)
        .await
        .unwrap();
    assert_eq!(again, Some(revoked.clone()));
    let revocations = store
        .list_audit(&ws, Some(key.id.as_str()))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "key.revoked")
        .count();
    assert_eq!(revocations, 1);

    // Authentication still finds a revoked key (and refuses it on `revoked_at`).
    let found = store.key_by_digest(&key.digest).await.unwrap().unwrap();
    assert_eq!(found.key.revoked_at, Some(T0 + 10));

    // Another workspace cannot revoke it, nor learn that it exists.
    let live = insert_new_key(&store, &ws, KeyMode::Live, T0 + 30).await;
    let entry = audit(&other, Actor::Cli, "key.revoked", &live.id, T0 + 31);
    assert_eq!(
        store
            .revoke_key(&other, &live.id, T0 + 31, &entry)
            .await
            .unwrap(),
        None
    );
    assert_eq!(stored_key(&store, &live).await.revoked_at, None);
    assert!(store.list_audit(&other, None).await.unwrap().is_empty());

    let entry = audit(&ws, Actor::Cli, "key.revoked", &live.id, T0 + 32);
    let unknown = KeyId::generate();
    assert_eq!(
        store
            .revoke_key(&ws, &unknown, T0 + 32, &entry)
            .await
            .unwrap(),
        None
    );
});

conformance!(rotate_key_replaces_an_active_key_once, |store| async move {
    let ws = new_workspace(&store, "acme").await;
    let other = new_workspace(&store, "other").await;
    let old = insert_new_key(&store, &ws, KeyMode::Live, T0).await;
    let grace = T0 + 100 + DAY;

    let new = key_row(&ws, KeyMode::Live, T0 + 100);
    let entry = audit(&ws, Actor::Cli, "key.rotated", &old.id, T0 + 100);
    let replaced = store
        .rotate_key(&old.id, &new, grace, &entry)
        .await
        .unwrap()
        .expect("rotated");
    let expected_old = KeyRow {
        expires_at: Some(grace),
        replaced_by: Some(new.id.clone()),
        updated_at: T0 + 100,
        ..old.clone()
    };
    assert_eq!(replaced, expected_old);
    assert_eq!(stored_key(&store, &old).await, expected_old);
    assert_eq!(stored_key(&store, &new).await, new);
    // Both authenticate until the old one expires.
    assert_eq!(
        store.key_by_digest(&old.digest).await.unwrap().unwrap().key,
        expected_old
    );
    assert_eq!(
        store.key_by_digest(&new.digest).await.unwrap().unwrap().key,
        new
    );

    // A replaced key cannot be rotated again, and the would-be successor is not stored.
    let second = key_row(&ws, KeyMode::Live, T0 + 200);
    let entry = audit(&ws, Actor::Cli, "key.rotated", &old.id, T0 + 200);
    assert_eq!(
        store
            .rotate_key(&old.id, &second, T0 + 300, &entry)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_key(&ws, &second.id).await.unwrap(), None);
    assert!(store.key_by_digest(&second.digest).await.unwrap().is_none());
    assert_eq!(stored_key(&store, &old).await, expected_old);

    // Nor can it be updated: a later expiry would revive it beside its successor.
    let revived = KeyRow {
        expires_at: None,
        name: "revived".into(),
        updated_at: T0 + 250,
        ..expected_old.clone()
    };
    let entry = audit(&ws, Actor::Cli, "key.updated", &old.id, T0 + 250);
    assert_eq!(store.update_key(&revived, &entry).await.unwrap(), None);
    assert_eq!(stored_key(&store, &old).await, expected_old);

    // The successor can be rotated in its turn.
    let entry = audit(&ws, Actor::Cli, "key.rotated", &new.id, T0 + 300);
    let third = key_row(&ws, KeyMode::Live, T0 + 300);
    let rotated = store
        .rotate_key(&new.id, &third, T0 + 400, &entry)
        .await
        .unwrap();
    assert_eq!(rotated.unwrap().replaced_by, Some(third.id.clone()));

    // A revoked key cannot be rotated.
    let entry = audit(&ws, Actor::Cli, "key.revoked", &third.id, T0 + 500);
    store
        .revoke_key(&ws, &third.id, T0 + 500, &entry)
        .await
        .unwrap();
    let fourth = key_row(&ws, KeyMode::Live, T0 + 600);
    let entry = audit(&ws, Actor::Cli, "key.rotated", &third.id, T0 + 600);
    assert_eq!(
        store
            .rotate_key(&third.id, &fourth, T0 + 700, &entry)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_key(&ws, &fourth.id).await.unwrap(), None);

    // The successor names the workspace: a key of another workspace is not found.
    let active = insert_new_key(&store, &ws, KeyMode::Live, T0 + 800).await;
    let intruder = key_row(&other, KeyMode::Live, T0 + 900);
    let entry = audit(&other, Actor::Cli, "key.rotated", &active.id, T0 + 900);
    assert_eq!(
        store
            .rotate_key(&active.id, &intruder, T0 + 1000, &entry)
            .await
            .unwrap(),
        None
    );
    assert_eq!(stored_key(&store, &active).await, active);
    assert_eq!(store.get_key(&other, &intruder.id).await.unwrap(), None);
    assert!(store.list_audit(&other, None).await.unwrap().is_empty());
});

conformance!(audit_log_records_every_key_change, |store| async move {
    let ws = new_workspace(&store, "acme").await;
    let other = new_workspace(&store, "other").await;
    let admin = insert_new_key(&store, &ws, KeyMode::Live, T0).await;
    let by_admin = Actor::Key(admin.id.clone());

    let key = key_row(&ws, KeyMode::Live, T0 + 1);
    let created = audit(&ws, by_admin.clone(), "key.created", &key.id, T0 + 1);
    store.insert_key(&key, &created).await.unwrap();

    let updated = AuditEntry::new(
        &ws,
        by_admin.clone(),
        "key.updated",
        key.id.as_str(),
        Some("req_update"),
        json!({ "changed": ["name"], "nested": { "n": 1 } }),
        T0 + 2,
    );
    let renamed = KeyRow {
        name: "renamed".to_owned(),
        updated_at: T0 + 2,
        ..key.clone()
    };
    store.update_key(&renamed, &updated).await.unwrap().unwrap();

    let successor = key_row(&ws, KeyMode::Live, T0 + 3);
    let rotated = audit(&ws, by_admin.clone(), "key.rotated", &key.id, T0 + 3);
    store
        .rotate_key(&key.id, &successor, T0 + 3 + DAY, &rotated)
        .await
        .unwrap()
        .unwrap();

    let revoked = AuditEntry::new(
        &ws,
        Actor::Cli,
        "key.revoked",
        key.id.as_str(),
        None,
        json!({}),
        T0 + 4,
    );
    store
        .revoke_key(&ws, &key.id, T0 + 4, &revoked)
        .await
        .unwrap()
        .unwrap();

    // Another workspace's log is its own.
    let theirs = insert_new_key(&store, &other, KeyMode::Live, T0 + 5).await;

    let for_key = store.list_audit(&ws, Some(key.id.as_str())).await.unwrap();
    assert_eq!(
        for_key,
        vec![
            revoked.clone(),
            rotated.clone(),
            updated.clone(),
            created.clone()
        ]
    );
    assert_eq!(for_key[0].request_id, None);
    assert_eq!(for_key[1].actor, by_admin);
    assert_eq!(for_key[2].request_id.as_deref(), Some("req_update"));

    let everything = store.list_audit(&ws, None).await.unwrap();
    assert_eq!(everything.len(), 5);
    assert_eq!(everything[..4], for_key[..]);
    assert_eq!(everything[4].target_id, admin.id.as_str());
    assert!(everything.iter().all(|e| e.workspace_id == ws));

    let for_admin = store
        .list_audit(&ws, Some(admin.id.as_str()))
        .await
        .unwrap();
    assert_eq!(for_admin.len(), 1);
    assert!(
        store
            .list_audit(&ws, Some(theirs.id.as_str()))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list_audit(&other, None).await.unwrap().len(), 1);
});

// ---------------------------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------------------------

fn used(key: &KeyRow, at: i64, requests: i64) -> KeyUsage {
    KeyUsage {
        key_id: key.id.clone(),
        workspace_id: key.workspace_id.clone(),
        last_used_at: at,
        requests,
    }
}

fn requests(n: i64) -> BTreeMap<String, i64> {
    BTreeMap::from([("requests".to_owned(), n)])
}

conformance!(
    record_usage_counts_and_keeps_the_latest_use,
    |store| async move {
        let a = new_workspace(&store, "a").await;
        let b = new_workspace(&store, "b").await;
        let k1 = insert_new_key(&store, &a, KeyMode::Live, T0).await;
        let k2 = insert_new_key(&store, &a, KeyMode::Test, T0).await;
        let k3 = insert_new_key(&store, &b, KeyMode::Live, T0).await;

        let batch = [
            used(&k1, T0 + 100, 3),
            used(&k2, T0 + 50, 4),
            used(&k3, T0 + 70, 5),
        ];
        store.record_usage(&batch, "2027-01").await.unwrap();
        let s1 = stored_key(&store, &k1).await;
        assert_eq!((s1.last_used_at, s1.request_count), (Some(T0 + 100), 3));
        let s2 = stored_key(&store, &k2).await;
        assert_eq!((s2.last_used_at, s2.request_count), (Some(T0 + 50), 4));
        assert_eq!(
            store.workspace_usage(&a, "2027-01").await.unwrap(),
            requests(7)
        );
        assert_eq!(
            store.workspace_usage(&b, "2027-01").await.unwrap(),
            requests(5)
        );

        // A batch flushed late, by a slower node, never moves last_used_at back; one key twice in
        // one batch counts both and keeps the later time.
        let batch = [
            used(&k1, T0 + 20, 2),
            used(&k2, T0 + 200, 1),
            used(&k2, T0 + 150, 1),
        ];
        store.record_usage(&batch, "2027-01").await.unwrap();
        let s1 = stored_key(&store, &k1).await;
        assert_eq!((s1.last_used_at, s1.request_count), (Some(T0 + 100), 5));
        let s2 = stored_key(&store, &k2).await;
        assert_eq!((s2.last_used_at, s2.request_count), (Some(T0 + 200), 6));
        assert_eq!(
            store.workspace_usage(&a, "2027-01").await.unwrap(),
            requests(11)
        );
        assert_eq!(
            store.workspace_usage(&b, "2027-01").await.unwrap(),
            requests(5)
        );

        // Periods are counted apart.
        store
            .record_usage(&[used(&k1, T0 + 300, 1)], "2027-02")
            .await
            .unwrap();
        assert_eq!(
            store.workspace_usage(&a, "2027-02").await.unwrap(),
            requests(1)
        );
        assert_eq!(
            store.workspace_usage(&a, "2027-01").await.unwrap(),
            requests(11)
        );
        assert_eq!(stored_key(&store, &k1).await.request_count, 6);
        assert!(
            store
                .workspace_usage(&a, "2026-12")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .workspace_usage(&WorkspaceId::generate(), "2027-01")
                .await
                .unwrap()
                .is_empty()
        );

        // Other fields are untouched.
        let s3 = stored_key(&store, &k3).await;
        assert_eq!(
            s3,
            KeyRow {
                last_used_at: Some(T0 + 70),
                request_count: 5,
                ..k3
            }
        );
    }
);

conformance!(
    concurrent_flushes_of_the_same_keys_in_any_order_both_land,
    |store| async move {
        // Two nodes flushing the same busy keys, each in its own order (a node's pending map
        // has none): on PostgreSQL they must queue, not deadlock, and every count lands.
        let ws = new_workspace(&store, "busy").await;
        let mut keys = Vec::new();
        for i in 0..120 {
            keys.push(insert_new_key(&store, &ws, KeyMode::Live, T0 + i).await);
        }
        let forward: Vec<KeyUsage> = keys.iter().map(|k| used(k, T0 + 500, 1)).collect();
        let backward: Vec<KeyUsage> = keys.iter().rev().map(|k| used(k, T0 + 600, 2)).collect();
        for _ in 0..10 {
            let (a, b) = tokio::join!(
                store.record_usage(&forward, "2027-03"),
                store.record_usage(&backward, "2027-03")
            );
            a.unwrap();
            b.unwrap();
        }
        for k in &keys {
            let s = stored_key(&store, k).await;
            assert_eq!((s.last_used_at, s.request_count), (Some(T0 + 600), 30));
        }
        assert_eq!(
            store.workspace_usage(&ws, "2027-03").await.unwrap(),
            requests(120 * 30)
        );
    }
);

conformance!(
    record_usage_of_an_empty_batch_does_nothing,
    |store| async move {
        let ws = new_workspace(&store, "acme").await;
        let key = insert_new_key(&store, &ws, KeyMode::Live, T0).await;
        store.record_usage(&[], "2027-01").await.unwrap();
        assert!(
            store
                .workspace_usage(&ws, "2027-01")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(stored_key(&store, &key).await, key);
    }
);

conformance!(
    a_spend_under_a_limit_never_passes_it_and_a_refund_never_goes_below_zero,
    |store| async move {
        let ws = new_workspace(&store, "acme").await;
        let spend = |n| store.spend_counter(&ws, "2027-01", "ai_credits", n, Some(10));
        assert_eq!(spend(4).await.unwrap(), Some(4));
        assert_eq!(spend(6).await.unwrap(), Some(10));
        assert_eq!(spend(1).await.unwrap(), None, "the limit is reached");
        store
            .refund_counter(&ws, "2027-01", "ai_credits", 3)
            .await
            .unwrap();
        assert_eq!(spend(3).await.unwrap(), Some(10));
        store
            .refund_counter(&ws, "2027-01", "ai_credits", 50)
            .await
            .unwrap();
        let usage = store.workspace_usage(&ws, "2027-01").await.unwrap();
        assert_eq!(usage, BTreeMap::from([("ai_credits".to_owned(), 0)]));
        // Twenty spenders at once, three credits each, under a limit of 30: exactly ten fit.
        let all = futures::future::join_all(
            (0..20).map(|_| store.spend_counter(&ws, "2027-02", "ai_credits", 3, Some(30))),
        )
        .await;
        let fitted = all.into_iter().filter(|r| matches!(r, Ok(Some(_)))).count();
        assert_eq!(fitted, 10);
        let usage = store.workspace_usage(&ws, "2027-02").await.unwrap();
        assert_eq!(usage, BTreeMap::from([("ai_credits".to_owned(), 30)]));
    }
);

/// Migration 23 splits counters into shards: a database of the shape before it keeps every
/// count, and a spend under a limit still sees what was spent before.
async fn counters_survive_the_shard_migration(db: TestDb) {
    let ws = new_workspace(&db.store, "acme").await;
    db.execute("DELETE FROM crier_migrations WHERE version = 23")
        .await;
    db.execute(
        "DROP TABLE usage_counters;
         CREATE TABLE usage_counters (
             workspace_id TEXT NOT NULL,
             period       TEXT NOT NULL,
             metric       TEXT NOT NULL,
             value        BIGINT NOT NULL,
             PRIMARY KEY (workspace_id, period, metric)
         )",
    )
    .await;
    let old = format!(
        "INSERT INTO usage_counters (workspace_id, period, metric, value) VALUES
             ('{ws}', '2027-01', 'posts_published', 41), ('{ws}', '2027-01', 'ai_credits', 7)"
    );
    db.execute(Box::leak(old.into_boxed_str())).await;
    assert_eq!(db.store.migrate().await.unwrap(), vec![23]);
    let usage = db.store.workspace_usage(&ws, "2027-01").await.unwrap();
    assert_eq!(
        usage,
        BTreeMap::from([
            ("ai_credits".to_owned(), 7),
            ("posts_published".to_owned(), 41)
        ])
    );
    let spend = db
        .store
        .spend_counter(&ws, "2027-01", "ai_credits", 4, Some(10))
        .await
        .unwrap();
    assert_eq!(spend, None, "7 + 4 would pass the limit of 10");
}

crier_testdb::both!(
    counters_survive_the_shard_migration_,
    counters_survive_the_shard_migration
);

// ---------------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------------

const LOCK: i64 = 30_000;

/// `idempotency_begin` at `now`, with a 30 s lock and a 24 h lifetime.
async fn begin(store: &Store, key: &KeyId, idem: &str, fp: &str, now: i64) -> IdempotencyBegin {
    store
        .idempotency_begin(key, idem, fp, now, now + LOCK, now + DAY)
        .await
        .expect("idempotency_begin")
}

conformance!(idempotency_lifecycle, |store| async move {
    use IdempotencyBegin::*;
    let k = KeyId::generate();
    let other_key = KeyId::generate();

    assert_eq!(begin(&store, &k, "i1", "fp-a", T0).await, Started);
    assert_eq!(begin(&store, &k, "i1", "fp-a", T0 + 1).await, InProgress);
    assert_eq!(begin(&store, &k, "i1", "fp-b", T0 + 1).await, Mismatch);
    // Idempotency keys belong to their API key.
    assert_eq!(
        begin(&store, &other_key, "i1", "fp-b", T0 + 1).await,
        Started
    );

    store
        .idempotency_finish(&k, "i1", 201, r#"{"id":"post_1"}"#)
        .await
        .unwrap();
    let done = Done {
        status: 201,
        response: r#"{"id":"post_1"}"#.to_owned(),
    };
    assert_eq!(begin(&store, &k, "i1", "fp-a", T0 + 2).await, done);
    assert_eq!(begin(&store, &k, "i1", "fp-b", T0 + 2).await, Mismatch);
    // A finished record outlives its lock, and is neither finished again nor released.
    assert_eq!(begin(&store, &k, "i1", "fp-a", T0 + 10 * LOCK).await, done);
    store.idempotency_finish(&k, "i1", 500, "{}").await.unwrap();
    store.idempotency_release(&k, "i1").await.unwrap();
    assert_eq!(begin(&store, &k, "i1", "fp-a", T0 + 3).await, done);

    // Released: the next request runs afresh, whatever it is.
    assert_eq!(begin(&store, &k, "i2", "fp-a", T0).await, Started);
    store.idempotency_release(&k, "i2").await.unwrap();
    assert_eq!(begin(&store, &k, "i2", "fp-b", T0 + 1).await, Started);
    assert_eq!(begin(&store, &k, "i2", "fp-b", T0 + 2).await, InProgress);

    // Ran, but its response could not be kept: never run again, not even after the lock.
    assert_eq!(begin(&store, &k, "i3", "fp-a", T0).await, Started);
    store
        .idempotency_finish_unrecorded(&k, "i3", 201)
        .await
        .unwrap();
    let unrecorded = Unrecorded { status: 201 };
    assert_eq!(begin(&store, &k, "i3", "fp-a", T0 + 1).await, unrecorded);
    assert_eq!(
        begin(&store, &k, "i3", "fp-a", T0 + 10 * LOCK).await,
        unrecorded
    );
    assert_eq!(begin(&store, &k, "i3", "fp-b", T0 + 1).await, Mismatch);
    store.idempotency_release(&k, "i3").await.unwrap();
    assert_eq!(begin(&store, &k, "i3", "fp-a", T0 + 2).await, unrecorded);

    // The other API key's record is untouched by all this.
    assert_eq!(
        begin(&store, &other_key, "i1", "fp-b", T0 + 3).await,
        InProgress
    );
});

conformance!(
    idempotency_takes_over_expired_and_abandoned_records,
    |store| async move {
        use IdempotencyBegin::*;
        let k = KeyId::generate();

        // Expired: anything may take the key once now >= expires_at.
        let started = store
            .idempotency_begin(&k, "exp", "fp-a", T0, T0 + LOCK, T0 + 1000)
            .await
            .unwrap();
        assert_eq!(started, Started);
        store
            .idempotency_finish(&k, "exp", 200, "old")
            .await
            .unwrap();
        assert_eq!(begin(&store, &k, "exp", "fp-b", T0 + 999).await, Mismatch);
        assert_eq!(
            begin(&store, &k, "exp", "fp-a", T0 + 999).await,
            Done {
                status: 200,
                response: "old".to_owned()
            }
        );
        assert_eq!(begin(&store, &k, "exp", "fp-b", T0 + 1000).await, Started);
        assert_eq!(
            begin(&store, &k, "exp", "fp-b", T0 + 1001).await,
            InProgress
        );
        assert_eq!(begin(&store, &k, "exp", "fp-a", T0 + 1001).await, Mismatch);

        // A running record whose server died: the same request takes it over once the lock has
        // run out; a different request is still a mismatch.
        assert_eq!(begin(&store, &k, "lock", "fp-a", T0).await, Started);
        assert_eq!(
            begin(&store, &k, "lock", "fp-a", T0 + LOCK - 1).await,
            InProgress
        );
        assert_eq!(begin(&store, &k, "lock", "fp-b", T0 + LOCK).await, Mismatch);
        assert_eq!(begin(&store, &k, "lock", "fp-a", T0 + LOCK).await, Started);
        // The new owner holds a fresh lock.
        assert_eq!(
            begin(&store, &k, "lock", "fp-a", T0 + LOCK + 1).await,
            InProgress
        );
        store
            .idempotency_finish(&k, "lock", 202, "accepted")
            .await
            .unwrap();
        assert_eq!(
            begin(&store, &k, "lock", "fp-a", T0 + 3 * LOCK).await,
            Done {
                status: 202,
                response: "accepted".to_owned()
            }
        );
    }
);

conformance!(
    purge_idempotency_deletes_only_expired_records,
    |store| async move {
        use IdempotencyBegin::*;
        let k = KeyId::generate();
        for (idem, expires) in [("a", T0 + 10), ("b", T0 + 20), ("c", T0 + 30)] {
            let started = store
                .idempotency_begin(&k, idem, "fp", T0, T0 + 5, expires)
                .await
                .unwrap();
            assert_eq!(started, Started);
        }
        store.idempotency_finish(&k, "b", 200, "b").await.unwrap();

        assert_eq!(store.purge_idempotency(T0 + 5).await.unwrap(), 0);
        assert_eq!(store.purge_idempotency(T0 + 20).await.unwrap(), 2);
        assert_eq!(store.purge_idempotency(T0 + 20).await.unwrap(), 0);

        // "c" is still there (a different request is refused); "a" and "b" are gone. The lock of
        // "c" ran out at T0 + 5, so the same request would take it over: ask with another one.
        let c = store
            .idempotency_begin(&k, "c", "other", T0 + 21, T0 + 50, T0 + 100)
            .await
            .unwrap();
        assert_eq!(c, Mismatch);
        for idem in ["a", "b"] {
            let again = store
                .idempotency_begin(&k, idem, "other", T0 + 21, T0 + 50, T0 + 100)
                .await
                .unwrap();
            assert_eq!(again, Started, "{idem} was purged");
        }
        assert_eq!(store.purge_idempotency(T0 + 1000).await.unwrap(), 3);
    }
);

// ---------------------------------------------------------------------------------------------
// Key-change notifications
// ---------------------------------------------------------------------------------------------

/// Waits for the change to `digest` to be reported by digest (on PostgreSQL the channel is
/// database-wide: changes by tests running in other schemas at the same time are skipped).
async fn wait_for_change(changes: &mut KeyChanges, backend: Backend, digest: &KeyDigest) {
    tokio::time::timeout(
        Duration::from_secs(5),
        next_change_to(changes, backend, &[*digest]),
    )
    .await
    .unwrap_or_else(|_| panic!("no change reported for {digest:?} within 5 s"));
}

async fn next_change_to(changes: &mut KeyChanges, backend: Backend, digests: &[KeyDigest]) {
    loop {
        match changes.next().await.expect("read key changes") {
            KeyChange::Key(d) if digests.contains(&d) => return,
            // Only a subscriber that lost track may say "everything"; SQLite's must not.
            KeyChange::All if backend == Backend::Sqlite => {
                panic!("the SQLite subscriber reported every key, not the one that changed")
            }
            _ => continue,
        }
    }
}

conformance!(
    the_counter_reports_each_change_without_notifications,
    |store| async move {
        // What a PostgreSQL node follows besides its listener, and all a SQLite one follows:
        // each change by its key, never "everything", whatever notifications did.
        let ws = new_workspace(&store, "acme").await;
        let key = insert_new_key(&store, &ws, KeyMode::Live, T0).await;
        let mut polled = store
            .key_changes_polled(Duration::from_millis(20))
            .await
            .unwrap();
        let entry = audit(&ws, Actor::Cli, "key.revoked", &key.id, T0 + 1);
        store
            .revoke_key(&ws, &key.id, T0 + 1, &entry)
            .await
            .unwrap()
            .unwrap();
        // (`Backend::Sqlite`: a report of every key fails the test on either database.)
        wait_for_change(&mut polled, Backend::Sqlite, &key.digest).await;
    }
);

conformance!(key_changes_are_announced_on_commit, |store| async move {
    let backend = store.backend();
    let ws = new_workspace(&store, "acme").await;
    let key = insert_new_key(&store, &ws, KeyMode::Live, T0).await;
    let mut changes = store.key_changes().await.unwrap();

    let renamed = KeyRow {
        name: "renamed".to_owned(),
        updated_at: T0 + 1,
        ..key.clone()
    };
    let entry = audit(&ws, Actor::Cli, "key.updated", &key.id, T0 + 1);
    store.update_key(&renamed, &entry).await.unwrap().unwrap();
    wait_for_change(&mut changes, backend, &key.digest).await;

    let successor = key_row(&ws, KeyMode::Live, T0 + 2);
    let entry = audit(&ws, Actor::Cli, "key.rotated", &key.id, T0 + 2);
    store
        .rotate_key(&key.id, &successor, T0 + DAY, &entry)
        .await
        .unwrap()
        .unwrap();
    wait_for_change(&mut changes, backend, &key.digest).await;

    let entry = audit(&ws, Actor::Cli, "key.revoked", &successor.id, T0 + 3);
    store
        .revoke_key(&ws, &successor.id, T0 + 3, &entry)
        .await
        .unwrap()
        .unwrap();
    wait_for_change(&mut changes, backend, &successor.digest).await;

    // Writes that change nothing announce nothing: revoking again, updating a revoked key, a
    // rotation that fails on a duplicate digest (rolled back, notification and all).
    let entry = audit(&ws, Actor::Cli, "key.revoked", &successor.id, T0 + 4);
    store
        .revoke_key(&ws, &successor.id, T0 + 4, &entry)
        .await
        .unwrap()
        .unwrap();
    let frozen = KeyRow {
        name: "frozen".to_owned(),
        ..successor.clone()
    };
    let entry = audit(&ws, Actor::Cli, "key.updated", &successor.id, T0 + 5);
    assert_eq!(store.update_key(&frozen, &entry).await.unwrap(), None);
    let active = insert_new_key(&store, &ws, KeyMode::Live, T0 + 6).await;
    let clash = KeyRow {
        digest: key.digest,
        ..key_row(&ws, KeyMode::Live, T0 + 7)
    };
    let entry = audit(&ws, Actor::Cli, "key.rotated", &active.id, T0 + 7);
    assert!(
        store
            .rotate_key(&active.id, &clash, T0 + DAY, &entry)
            .await
            .is_err()
    );
    assert_eq!(stored_key(&store, &active).await, active);
    let watched = [successor.digest, active.digest];
    let quiet = next_change_to(&mut changes, backend, &watched);
    let waited = tokio::time::timeout(Duration::from_millis(800), quiet).await;
    assert!(
        waited.is_err(),
        "a write that changed nothing was announced"
    );
});

// ---------------------------------------------------------------------------------------------
// Test mode: connected accounts, queue slots and the queue are each mode's own
// ---------------------------------------------------------------------------------------------

fn account(ws: &WorkspaceId, handle: &str, livemode: bool, status: &str) -> Account {
    Account {
        status: crier_core::accounts::AccountStatus::parse(status).expect("an account status"),
        ..Account::new(ws, livemode, "sandbox", handle, handle, T0)
    }
}

fn at(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

conformance!(
    connected_accounts_slots_and_the_queue_are_per_mode,
    |store| async move {
        let ws = new_workspace(&store, "acme").await;
        let live = account(&ws, "live", true, "connected");
        let test = account(&ws, "test", false, "connected");
        for a in [
            &live,
            &test,
            &account(&ws, "test-2", false, "connected"),
            &account(&ws, "gone", true, "disconnected"),
        ] {
            store.connect_account(a).await.unwrap();
        }
        assert_eq!(store.count_connected_accounts(&ws, true).await.unwrap(), 1);
        assert_eq!(store.count_connected_accounts(&ws, false).await.unwrap(), 2);

        // Replacing one mode's slots leaves the other's.
        store.set_slots(&ws, true, &[(1, 540)]).await.unwrap();
        store
            .set_slots(&ws, false, &[(5, 930), (2, 600), (2, 600)])
            .await
            .unwrap();
        assert_eq!(store.slots(&ws, true).await.unwrap(), [(1, 540)]);
        assert_eq!(store.slots(&ws, false).await.unwrap(), [(2, 600), (5, 930)]);
        store.set_slots(&ws, false, &[]).await.unwrap();
        assert_eq!(store.slots(&ws, true).await.unwrap(), [(1, 540)]);
        assert!(store.slots(&ws, false).await.unwrap().is_empty());
        store.set_slots(&ws, false, &[(1, 540)]).await.unwrap();

        // T0 is Friday 2027-01-15 08:00 UTC. A live post takes Monday 09:00; test mode's
        // Monday stays free.
        let monday = at("2027-01-18T09:00:00Z");
        let post = Post {
            status: PostStatus::Scheduled,
            scheduled_at: Some(monday),
            ..Post::draft(&ws, true, &[&live], "live".to_owned(), T0)
        };
        store.insert_posts(&[post]).await.unwrap();
        let horizon = T0 + 10 * 7 * DAY;
        assert_eq!(
            store.scheduled_times(&ws, true, T0, horizon).await.unwrap(),
            [monday]
        );
        assert!(
            store
                .scheduled_times(&ws, false, T0, horizon)
                .await
                .unwrap()
                .is_empty()
        );
        let workspace = store.get_workspace(&ws).await.unwrap().unwrap();
        let next = |livemode| {
            let store = store.clone();
            let workspace = workspace.clone();
            async move {
                store
                    .queue_plan(&workspace, livemode, T0)
                    .await
                    .unwrap()
                    .next_free(jiff::Timestamp::from_millisecond(T0).unwrap())
                    .map(|t| t.as_millisecond())
            }
        };
        assert_eq!(next(true).await, Some(at("2027-01-25T09:00:00Z")));
        assert_eq!(next(false).await, Some(monday));
    }
);

conformance!(
    tenant_scoped_getters_see_one_mode_only,
    |store| async move {
        let ws = new_workspace(&store, "acme").await;
        let other = new_workspace(&store, "other").await;
        let live = account(&ws, "live", true, "connected");
        store.connect_account(&live).await.unwrap();
        let post = Post::draft(&ws, true, &[&live], "live".to_owned(), T0);
        store.insert_post(&post).await.unwrap();
        let tenant = |workspace: &WorkspaceId, livemode| crier_core::Tenant {
            workspace: workspace.clone(),
            livemode,
        };
        let found = store
            .get_post_in(&tenant(&ws, true), &post.id)
            .await
            .unwrap();
        assert_eq!(found.map(|p| p.id), Some(post.id.clone()));
        let account = store
            .get_account_in(&tenant(&ws, true), &live.id)
            .await
            .unwrap();
        assert_eq!(account, Some(live.clone()));
        // The other mode and the other workspace do not see them.
        for t in [tenant(&ws, false), tenant(&other, true)] {
            assert!(store.get_post_in(&t, &post.id).await.unwrap().is_none());
            assert!(store.get_account_in(&t, &live.id).await.unwrap().is_none());
        }
    }
);

/// Slots stored before slots had a mode were set on one shared list by keys of both modes;
/// the upgrade keeps them as live slots, and test mode starts with none.
async fn check_slots_upgrade(url: &str) {
    let store = Store::connect(url).await.unwrap();
    let all = migrations_of(&store);
    sqlx::any::install_default_drivers();
    let raw = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE crier_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&raw)
    .await
    .unwrap();
    let (before, after): (Vec<&Migration>, Vec<&Migration>) =
        all.iter().partition(|m| m.version < 7);
    for m in &before {
        sqlx::raw_sql(m.sql).execute(&raw).await.unwrap();
        sqlx::query("INSERT INTO crier_migrations (version, name, applied_at) VALUES ($1, $2, 0)")
            .bind(m.version)
            .bind(m.name)
            .execute(&raw)
            .await
            .unwrap();
    }
    let ws = WorkspaceId::generate();
    for (day, minute) in [(1, 540), (3, 1110)] {
        sqlx::query(
            "INSERT INTO queue_slots (workspace_id, weekday, minute_of_day) VALUES ($1, $2, $3)",
        )
        .bind(ws.as_str())
        .bind(day as i64)
        .bind(minute as i64)
        .execute(&raw)
        .await
        .unwrap();
    }
    // Sandbox accounts from before accounts had a network identity: two with one handle (the
    // old code allowed that) and one alone.
    sqlx::query(
        "INSERT INTO workspaces (id, name, plan, created_at, updated_at)
         VALUES ($1, 'upgrade', 'free', 0, 0)",
    )
    .bind(ws.as_str())
    .execute(&raw)
    .await
    .unwrap();
    let ids: Vec<AccountId> = (0..3).map(|_| AccountId::generate()).collect();
    for (id, handle) in ids.iter().zip(["dup", "dup", "solo"]) {
        sqlx::query(
            "INSERT INTO accounts (id, workspace_id, platform, handle, livemode, status,
                created_at) VALUES ($1, $2, 'sandbox', $3, 1, 'connected', 0)",
        )
        .bind(id.as_str())
        .bind(ws.as_str())
        .bind(handle)
        .execute(&raw)
        .await
        .unwrap();
    }
    raw.close().await;

    let pending: Vec<i64> = after.iter().map(|m| m.version).collect();
    assert_eq!(store.migrate().await.unwrap(), pending);
    assert!(pending.contains(&7));
    assert_eq!(store.slots(&ws, true).await.unwrap(), [(1, 540), (3, 1110)]);
    assert!(store.slots(&ws, false).await.unwrap().is_empty());
    // The same slot in both modes is two rows.
    store.set_slots(&ws, false, &[(1, 540)]).await.unwrap();
    assert_eq!(store.slots(&ws, false).await.unwrap(), [(1, 540)]);
    assert_eq!(store.slots(&ws, true).await.unwrap(), [(1, 540), (3, 1110)]);
    // Connecting a handle again finds its newest account; the older duplicate keeps its id.
    let t = crier_core::Tenant {
        workspace: ws.clone(),
        livemode: true,
    };
    let find = |h: &'static str| {
        let store = store.clone();
        let t = t.clone();
        async move {
            store
                .find_account(&t, "sandbox", None, h)
                .await
                .unwrap()
                .map(|a| a.id)
        }
    };
    assert_eq!(find("dup").await, Some(ids[1].clone()));
    assert_eq!(find("solo").await, Some(ids[2].clone()));
    let old = store.get_account(&ws, &ids[0]).await.unwrap().unwrap();
    assert_eq!(old.external_id, ids[0].as_str());
    store.close().await;
}

#[tokio::test]
async fn slots_stored_before_modes_become_live_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check_slots_upgrade(&format!("sqlite://{}", dir.path().join("u.db").display())).await;
}

#[tokio::test]
async fn slots_stored_before_modes_become_live_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    check_slots_upgrade(&schema.url).await;
    schema.drop().await;
}

// ---------------------------------------------------------------------------------------------
// Publishing steps
// ---------------------------------------------------------------------------------------------

conformance!(
    publishing_steps_are_kept_per_part_and_bounded,
    |store| async move {
        let post = crier_core::ids::PostId::generate();
        let account = crier_core::ids::AccountId::generate();
        let other = crier_core::ids::AccountId::generate();
        assert_eq!(
            store
                .publish_step(&post, &account, 0, "container")
                .await
                .unwrap(),
            None
        );
        assert!(
            store
                .put_publish_step(&post, &account, 0, "container", "c-1", 3, 10)
                .await
                .unwrap()
        );
        // Replaced in place (a replacement does not count against the bound).
        assert!(
            store
                .put_publish_step(&post, &account, 0, "container", "c-2", 1, 11)
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .publish_step(&post, &account, 0, "container")
                .await
                .unwrap()
                .as_deref(),
            Some("c-2")
        );
        // Per part and per account.
        assert_eq!(
            store
                .publish_step(&post, &account, 1, "container")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .publish_step(&post, &other, 0, "container")
                .await
                .unwrap(),
            None
        );
        // At the bound, a new name is refused and nothing is written.
        assert!(
            store
                .put_publish_step(&post, &account, 0, "upload", "u-1", 2, 12)
                .await
                .unwrap()
        );
        assert!(
            !store
                .put_publish_step(&post, &account, 0, "third", "x", 2, 13)
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .publish_step(&post, &account, 0, "third")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .publish_step(&post, &account, 0, "upload")
                .await
                .unwrap()
                .as_deref(),
            Some("u-1")
        );
    }
);

conformance!(
    publishing_steps_of_waiting_targets_outlive_the_purge,
    |store| async move {
        use crier_core::posts::PostStatus;
        let ws = new_workspace(&store, "steps").await;
        let mut a = crier_store::Account::new(&ws, true, "sandbox", "ada", "", 0);
        a.external_id = a.id.to_string();
        let a = store.connect_account(&a).await.unwrap();
        let waiting = crier_store::Post {
            status: PostStatus::Scheduled,
            scheduled_at: Some(100),
            ..crier_store::Post::draft(&ws, true, &[&a], "waits".into(), 0)
        };
        store
            .insert_posts(std::slice::from_ref(&waiting))
            .await
            .unwrap();
        let gone = crier_core::ids::PostId::generate();
        store
            .put_publish_step(&waiting.id, &a.id, 0, "container", "c", 8, 10)
            .await
            .unwrap();
        store
            .put_publish_step(&gone, &a.id, 0, "container", "c", 8, 10)
            .await
            .unwrap();
        store
            .put_publish_step(&gone, &a.id, 1, "container", "new", 8, 1000)
            .await
            .unwrap();
        // A failed target may be retried, and its retry looks its part up by these steps
        // (a video uploaded before the answer was lost): they stay. A published one's go.
        let mut ended = Vec::new();
        for (status, target) in [
            (PostStatus::Failed, crier_core::posts::TargetStatus::Failed),
            (
                PostStatus::Published,
                crier_core::posts::TargetStatus::Published,
            ),
        ] {
            let mut post = crier_store::Post {
                status,
                ..crier_store::Post::draft(&ws, true, &[&a], "ended".into(), 0)
            };
            post.targets[0].status = target;
            store
                .insert_posts(std::slice::from_ref(&post))
                .await
                .unwrap();
            store
                .put_publish_step(&post.id, &a.id, 0, "video", "v", 8, 10)
                .await
                .unwrap();
            ended.push(post.id);
        }
        // Older than the cut: the gone target's old step and the published one's go; the
        // waiting and the failed targets keep theirs.
        assert_eq!(store.purge_publish_steps(500).await.unwrap(), 2);
        for (id, kept) in [(&ended[0], true), (&ended[1], false)] {
            assert_eq!(
                store
                    .publish_step(id, &a.id, 0, "video")
                    .await
                    .unwrap()
                    .is_some(),
                kept
            );
        }
        assert!(
            store
                .publish_step(&waiting.id, &a.id, 0, "container")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .publish_step(&gone, &a.id, 0, "container")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .publish_step(&gone, &a.id, 1, "container")
                .await
                .unwrap()
                .is_some()
        );
    }
);

conformance!(
    registered_clients_sealed_otherwise_page_by_where_they_are_registered,
    |store| async move {
        // Five clients in an order that tests each part of the cursor: platform, then
        // instance, then redirect URI; one sealed with the current key, one without a secret.
        let client = |secret: Option<&str>| crier_store::StoredClient {
            client_id: "id".into(),
            client_secret: secret.map(str::to_owned),
        };
        for (platform, instance, redirect, secret) in [
            (
                "mastodon",
                "https://a.example",
                "https://app/1",
                Some("v1.old.x"),
            ),
            (
                "mastodon",
                "https://a.example",
                "https://app/2",
                Some("v1.old.x"),
            ),
            (
                "mastodon",
                "https://b.example",
                "https://app/1",
                Some("v1.new.x"),
            ),
            ("mastodon", "https://b.example", "https://app/2", None),
            (
                "pixelfed",
                "https://a.example",
                "https://app/1",
                Some("v1.old.x"),
            ),
            (
                "mastodon",
                "https://c.example",
                "https://app/1",
                Some("v1.old.x"),
            ),
        ] {
            store
                .put_oauth_client(platform, instance, redirect, &client(secret), 1)
                .await
                .unwrap();
        }
        let mut after = (String::new(), String::new(), String::new());
        let mut seen = Vec::new();
        loop {
            let page = store
                .clients_sealed_otherwise("v1.new.", &after, 1)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.at.clone();
            seen.extend(page.into_iter().map(|c| c.at));
        }
        let at = |p: &str, i: &str, r: &str| (p.to_owned(), i.to_owned(), r.to_owned());
        assert_eq!(
            seen,
            vec![
                at("mastodon", "https://a.example", "https://app/1"),
                at("mastodon", "https://a.example", "https://app/2"),
                at("mastodon", "https://c.example", "https://app/1"),
                at("pixelfed", "https://a.example", "https://app/1"),
            ]
        );
    }
);

conformance!(
    keys_visible_to_a_members_limited_key_page_over_both_filters,
    |store| async move {
        let ws = new_workspace(&store, "w").await;
        let brand = crier_core::ids::BrandId::generate();
        let other_brand = crier_core::ids::BrandId::generate();
        // Eight keys, newest last: the member made 0, 2, 3, 5 and 7; of those 0, 3 and 7 are
        // limited to `brand` alone, 2 to `other_brand`, 5 to no brand at all (unlimited).
        let mut keys = Vec::new();
        for i in 0..8 {
            let mut k = key_row(&ws, KeyMode::Live, T0 + i);
            k.allowed_account_ids = vec![];
            k.allowed_brand_ids = match i {
                0 | 3 | 7 => vec![brand.to_string()],
                2 => vec![other_brand.to_string()],
                _ => vec![],
            };
            let entry = audit(&ws, Actor::Cli, "key.created", &k.id, T0 + i);
            store.insert_key(&k, &entry).await.unwrap();
            keys.push(k);
        }
        let mine: Vec<&str> = [0, 2, 3, 5, 7]
            .iter()
            .map(|&i| keys[i].id.as_str())
            .collect();
        let brands = [brand.clone()];
        let mut seen = Vec::new();
        for offset in 0..4 {
            let page = store
                .list_keys_visible(&ws, None, Some(&mine), Some((&brands, &[])), 1, offset)
                .await
                .unwrap();
            // Every page is whole while more follow.
            assert_eq!(page.items.len(), usize::from(offset < 3), "page {offset}");
            assert_eq!(page.has_more, offset < 2, "page {offset}");
            seen.extend(page.items.into_iter().map(|k| k.id));
        }
        // Newest first: 7, 3, 0.
        assert_eq!(
            seen,
            vec![keys[7].id.clone(), keys[3].id.clone(), keys[0].id.clone()]
        );
        // Each filter alone.
        let page = store
            .list_keys_visible(&ws, None, Some(&mine), None, 10, 0)
            .await
            .unwrap();
        assert_eq!(page.items.len(), 5);
        let page = store
            .list_keys_visible(&ws, None, None, Some((&brands, &[])), 10, 0)
            .await
            .unwrap();
        assert_eq!(
            page.items.len(),
            3,
            "0, 3 and 7: those limited to the brand"
        );
    }
);
