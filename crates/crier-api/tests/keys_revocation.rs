//! API keys over HTTP, revocation and expiry: on the next request, also from another
//! process, and the cache invalidated per key.
//!
//! The key format itself is covered in crier-core; the helpers are in `common/keys.rs`.

mod common;

use std::time::{Duration, Instant};

use common::keys::{HOUR, MINUTE, assert_message_mentions, assert_status, at, created, stored, ts};
use common::{KeySpec, NowMs, TestApp, both};
use crier_core::{Clock, KeyDigest, Scope};
use crier_store::{Actor, AuditEntry, KeyRow};
use serde_json::json;
use tokio_util::sync::CancellationToken;

// ---- Revoke, expire ----

async fn a_revoked_key_fails_on_its_next_request() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let path = format!("/v1/keys/{}", row.id);
    assert_status(&app.get("/v1/keys").key(&key).send().await, 200);
    app.clock.advance(MINUTE);
    let revoked_at = app.clock.now();

    let r = app.delete(&path).key(&admin).send().await;
    assert_status(&r, 200);
    assert_eq!(r.body["id"], row.id.as_str());
    assert_eq!(ts(&r.body["revoked_at"]), revoked_at);
    assert!(r.body.get("key").is_none());

    let r = app.get("/v1/keys").key(&key).send().await;
    r.assert_error(401, "unauthorized");
    assert_message_mentions(&r, "revoked");

    // Revoking again is a no-op that returns the key as it is.
    app.clock.advance(MINUTE);
    let audit_before = app
        .store
        .list_audit(&app.workspace.id, None)
        .await
        .unwrap()
        .len();
    let r = app.delete(&path).key(&admin).send().await;
    assert_status(&r, 200);
    assert_eq!(ts(&r.body["revoked_at"]), revoked_at);
    let audit_after = app
        .store
        .list_audit(&app.workspace.id, None)
        .await
        .unwrap()
        .len();
    assert_eq!(
        audit_before, audit_after,
        "a repeated revoke is not a new event"
    );

    // A revoked key can no longer change or be rotated.
    app.patch(&path)
        .key(&admin)
        .json(json!({"name": "back from the dead"}))
        .send()
        .await
        .assert_error(409, "conflict");
    app.post(&format!("{path}/rotate"))
        .key(&admin)
        .send()
        .await
        .assert_error(409, "conflict");
    let s = stored(&app, &row.id).await;
    assert_eq!(s.revoked_at, Some(revoked_at.as_millisecond()));
    assert_eq!(s.name, row.name);
}

async fn a_key_may_revoke_itself() {
    let app = TestApp::new().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysWrite],
            ..KeySpec::default()
        })
        .await;
    let r = app
        .delete(&format!("/v1/keys/{}", row.id))
        .key(&key)
        .send()
        .await;
    assert_status(&r, 200);
    let r = app.get("/v1/workspace").key(&key).send().await;
    r.assert_error(401, "unauthorized");
    assert_message_mentions(&r, "revoked");
}

/// `crier logout` revokes the key its device login made, whatever that key's scopes: any valid
/// key may revoke itself, and only itself.
async fn a_key_without_keys_write_may_revoke_itself_and_nothing_else() {
    let app = TestApp::new().await;
    let spec = || KeySpec {
        scopes: vec![Scope::PostsRead],
        ..KeySpec::default()
    };
    let (key, row) = app.key(spec()).await;
    let (other, other_row) = app.key(spec()).await;

    let r = app
        .delete(&format!("/v1/keys/{}", other_row.id))
        .key(&key)
        .send()
        .await;
    r.assert_error(403, "forbidden_scope");
    assert_message_mentions(&r, "keys:write");
    assert!(stored(&app, &other_row.id).await.revoked_at.is_none());
    assert_status(&app.get("/v1/posts").key(&other).send().await, 200);

    let r = app
        .delete(&format!("/v1/keys/{}", row.id))
        .key(&key)
        .send()
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["id"], row.id.as_str());
    assert!(r.body["revoked_at"].is_string(), "{}", r.body);
    let r = app.get("/v1/posts").key(&key).send().await;
    r.assert_error(401, "unauthorized");
    assert_message_mentions(&r, "revoked");
    assert_status(&app.get("/v1/posts").key(&other).send().await, 200);
}

async fn revoke_directly(app: &TestApp, row: &KeyRow) {
    let now = app.clock.now_ms_value();
    let audit = AuditEntry::new(
        &app.workspace.id,
        Actor::Cli,
        "key.revoked",
        row.id.as_str(),
        None,
        json!({}),
        now,
    );
    // As another process would: this app's store would tell its cache at once.
    let revoked = app
        .other_process()
        .await
        .revoke_key(&app.workspace.id, &row.id, now, &audit)
        .await
        .unwrap()
        .unwrap();
    assert!(revoked.revoked_at.is_some());
}

/// Polls until the key gets 401 (revoked), failing after `within` of real time.
async fn until_refused(app: &TestApp, key: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let r = app.get("/v1/workspace").key(key).send().await;
        if r.status == 401 {
            r.assert_error(401, "unauthorized");
            assert_message_mentions(&r, "revoked");
            return started.elapsed();
        }
        assert_status(&r, 200);
        assert!(
            started.elapsed() < within,
            "the key still works {within:?} after it was revoked in storage"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An app with a key (cached by one request) and its background tasks running, the change
/// feed subscribed first, so what follows exercises the feed itself (a subscription also
/// clears the cache when it starts; see `keys_changed_before_the_feed_subscribed_...`).
async fn following_changes() -> (
    TestApp,
    String,
    KeyRow,
    CancellationToken,
    tokio::task::JoinSet<()>,
) {
    let app = TestApp::new().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let cancel = CancellationToken::new();
    let tasks = app.state.spawn_background(cancel.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_status(&app.get("/v1/workspace").key(&key).send().await, 200);
    (app, key, row, cancel, tasks)
}

async fn a_key_revoked_by_another_process_stops_working_within_a_second() {
    let (app, key, row, cancel, mut tasks) = following_changes().await;

    // As `crier admin` would: straight to storage, bypassing this process's cache. Only the
    // cross-process feed (a polled counter on SQLite) can tell the cache; the cache's own TTL
    // is five minutes.
    revoke_directly(&app, &row).await;
    let took = until_refused(&app, &key, Duration::from_millis(1500)).await;
    assert!(took < Duration::from_millis(1500), "{took:?}");

    cancel.cancel();
    while tasks.join_next().await.is_some() {}
}

async fn a_key_revoked_while_notifications_are_lost_stops_working_within_two_seconds() {
    let (app, key, _, cancel, mut tasks) = following_changes().await;

    // Every live key revoked and its change recorded under the counter as a revocation records
    // it, in one transaction, but no NOTIFY sent: as if the node's listener had lost its
    // connection without a reset, or the change came while it reconnected. On PostgreSQL only
    // the counter, followed besides the listener, can tell this node.
    app.raw_execute(
        "BEGIN;
         INSERT INTO key_changes (seq, digest)
             SELECT (SELECT value FROM crier_state WHERE name = 'key_changes')
                        + ROW_NUMBER() OVER (ORDER BY id), digest
             FROM api_keys WHERE revoked_at IS NULL;
         UPDATE crier_state SET value = (SELECT MAX(seq) FROM key_changes)
             WHERE name = 'key_changes';
         UPDATE api_keys SET revoked_at = updated_at WHERE revoked_at IS NULL;
         COMMIT;",
    )
    .await;
    until_refused(&app, &key, Duration::from_millis(2500)).await;

    cancel.cancel();
    while tasks.join_next().await.is_some() {}
}

async fn a_change_to_one_key_leaves_the_other_keys_cached() {
    let app = TestApp::new().await;
    let spec = || KeySpec {
        scopes: vec![Scope::KeysRead],
        ..KeySpec::default()
    };
    let (changed, row) = app.key(spec()).await;
    let (same_workspace, _) = app.key(spec()).await;
    let other_ws = app.other_workspace("globex").await;
    let (other_workspace, _) = app.key_in(&other_ws, spec()).await;
    let cancel = CancellationToken::new();
    let mut tasks = app.state.spawn_background(cancel.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    for key in [&changed, &same_workspace, &other_workspace] {
        assert_status(&app.get("/v1/workspace").key(key).send().await, 200);
    }
    let cached = |key: &str| {
        matches!(
            app.state.auth().cache.get(&KeyDigest::of(key)),
            crier_api::auth::cache::Lookup::Found(_)
        )
    };
    assert!(cached(&same_workspace) && cached(&other_workspace));

    revoke_directly(&app, &row).await;
    until_refused(&app, &changed, Duration::from_millis(1500)).await;
    // Another poll or two, in case the feed reported the change in more than one step.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        cached(&same_workspace),
        "a key of the same workspace was dropped"
    );
    assert!(
        cached(&other_workspace),
        "a key of another workspace was dropped"
    );

    cancel.cancel();
    while tasks.join_next().await.is_some() {}
}

async fn keys_changed_before_the_feed_subscribed_are_not_served_from_cache() {
    let app = TestApp::new().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    assert_status(&app.get("/v1/workspace").key(&key).send().await, 200);
    revoke_directly(&app, &row).await;
    // Without a feed nothing tells this process: the cached record still answers. (This is
    // the window the feed exists to close, and the control for the assertion below.)
    assert_status(&app.get("/v1/workspace").key(&key).send().await, 200);

    // The feed starts after the change: it will never report it, so subscribing must not
    // leave older cache entries behind.
    let cancel = CancellationToken::new();
    let mut tasks = app.state.spawn_background(cancel.clone());
    until_refused(&app, &key, Duration::from_millis(1500)).await;
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
}

async fn a_key_stops_working_when_it_expires() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let r = app
        .post("/v1/keys")
        .key(&admin)
        .json(json!({"scopes": ["keys:read"], "expires_at": at(&app, 3600).to_string()}))
        .send()
        .await;
    let (_, key) = created(&r);
    assert_status(&app.get("/v1/keys").key(&key).send().await, 200);
    app.clock.advance(HOUR - Duration::from_secs(1));
    assert_status(&app.get("/v1/keys").key(&key).send().await, 200);
    app.clock.advance(HOUR);
    let r = app.get("/v1/keys").key(&key).send().await;
    r.assert_error(401, "unauthorized");
    assert_message_mentions(&r, "expired");
}

both!(
    tests: a_revoked_key_fails_on_its_next_request,
    a_key_may_revoke_itself,
    a_key_without_keys_write_may_revoke_itself_and_nothing_else,
    a_key_revoked_by_another_process_stops_working_within_a_second,
    a_key_revoked_while_notifications_are_lost_stops_working_within_two_seconds,
    keys_changed_before_the_feed_subscribed_are_not_served_from_cache,
    a_change_to_one_key_leaves_the_other_keys_cached,
    a_key_stops_working_when_it_expires,
);
