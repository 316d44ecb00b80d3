//! API keys over HTTP, reading: the list and its pages, another workspace's key, usage
//! written in batches off the request path, and a read that writes nothing.
//!
//! The key format itself is covered in crier-core; the helpers are in `common/keys.rs`.

mod common;

use std::time::Duration;

use common::keys::{assert_param, assert_status, created, stored, ts};
use common::{KeySpec, TestApp, both};
use crier_core::{Clock, Scope};
use serde_json::{Value, json};
use sqlx::ConnectOptions;

// ---- Read, list, usage ----

async fn the_list_is_newest_first_and_pages_with_limit_and_offset() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await; // named "test key", the oldest
    for i in 0..7 {
        app.clock.advance(Duration::from_secs(1));
        let r = app
            .post("/v1/keys")
            .key(&admin)
            .json(json!({"name": format!("k{i}"), "scopes": ["posts:read"]}))
            .send()
            .await;
        created(&r);
    }
    let mut seen = Vec::new();
    for (offset, names, more) in [
        (0, vec!["k6", "k5", "k4"], true),
        (3, vec!["k3", "k2", "k1"], true),
        (6, vec!["k0", "test key"], false),
    ] {
        let r = app
            .get(&format!("/v1/keys?limit=3&offset={offset}"))
            .key(&admin)
            .send()
            .await;
        assert_status(&r, 200);
        let data = r.body["data"].as_array().unwrap();
        let got: Vec<&str> = data.iter().map(|k| k["name"].as_str().unwrap()).collect();
        assert_eq!(got, names, "offset {offset}");
        assert_eq!(r.body["has_more"], more, "offset {offset}");
        seen.extend(data.iter().map(|k| ts(&k["created_at"])));
    }
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");

    let all = app.get("/v1/keys").key(&admin).send().await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 8);
    assert_eq!(all.body["has_more"], false);
    assert_param(
        &app.get("/v1/keys?limit=51").key(&admin).send().await,
        "limit",
    );
    assert_param(
        &app.get("/v1/keys?limit=0").key(&admin).send().await,
        "limit",
    );
}

async fn another_workspaces_key_does_not_exist() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let other = app.other_workspace("globex").await;
    let (_, theirs) = app
        .key_in(
            &other,
            KeySpec {
                scopes: vec![Scope::PostsRead],
                ..KeySpec::default()
            },
        )
        .await;
    let path = format!("/v1/keys/{}", theirs.id);
    app.get(&path)
        .key(&admin)
        .send()
        .await
        .assert_error(404, "not_found");
    app.patch(&path)
        .key(&admin)
        .json(json!({"name": "stolen"}))
        .send()
        .await
        .assert_error(404, "not_found");
    app.delete(&path)
        .key(&admin)
        .send()
        .await
        .assert_error(404, "not_found");
    app.post(&format!("{path}/rotate"))
        .key(&admin)
        .send()
        .await
        .assert_error(404, "not_found");
    let row = app
        .store
        .get_key(&other.id, &theirs.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row, theirs, "untouched");
    app.get("/v1/keys/key_nonsense")
        .key(&admin)
        .send()
        .await
        .assert_error(404, "not_found");
}

async fn last_used_at_and_usage_are_written_in_batches() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (user, user_row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let path = format!("/v1/keys/{}", user_row.id);
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(10));
        assert_status(&app.get("/v1/keys").key(&user).send().await, 200);
    }
    let last_request = app.clock.now();
    app.clock.advance(Duration::from_secs(10));

    // Nothing written yet: the requests were counted in memory only.
    let r = app.get(&path).key(&admin).send().await;
    assert_eq!(r.body["last_used_at"], Value::Null, "{}", r.text);
    let row = stored(&app, &user_row.id).await;
    assert_eq!((row.last_used_at, row.request_count), (None, 0));

    app.state.flush_usage().await;
    let r = app.get(&path).key(&admin).send().await;
    assert_eq!(ts(&r.body["last_used_at"]), last_request);
    let row = stored(&app, &user_row.id).await;
    assert_eq!(row.request_count, 3);

    // The workspace view is cached for 2 s of real time (the manual clock does not move it),
    // so a view read before the flush could be served stale. This test reads the workspace
    // for the first time only after the flush: the cache is empty, the view comes from
    // storage, and it must hold exactly what was flushed: the user's 3 requests and the
    // admin's one GET before the flush. The admin's later requests (including this one) are
    // still only in memory.
    let r = app.get("/v1/workspace").key(&admin).send().await;
    assert_status(&r, 200);
    assert_eq!(r.body["usage"]["requests"], 4, "{}", r.text);
    assert_eq!(r.body["usage"]["period"], "2026-11");
}

async fn data_version(conn: &mut sqlx::SqliteConnection) -> i64 {
    sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_authenticated_read_writes_nothing_to_the_database() {
    let app = TestApp::new().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    // `data_version` changes when another connection commits to the file, so a separate
    // connection sees every write the app's pools make.
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(app.db_path())
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let before = data_version(&mut conn).await;
    for i in 0..50 {
        let path = match i % 3 {
            0 => "/v1/keys".to_owned(),
            1 => "/v1/workspace".to_owned(),
            _ => format!("/v1/keys/{}", row.id),
        };
        assert_status(&app.get(&path).key(&key).send().await, 200);
    }
    let after_reads = data_version(&mut conn).await;
    assert_eq!(
        before, after_reads,
        "50 authenticated reads wrote to the database"
    );

    // The check can fail: the batched usage write is seen by the same connection.
    app.state.flush_usage().await;
    let after_flush = data_version(&mut conn).await;
    assert_ne!(after_reads, after_flush, "the flush should have written");
    assert_eq!(stored(&app, &row.id).await.request_count, 50);
}

both!(
    tests: the_list_is_newest_first_and_pages_with_limit_and_offset,
    another_workspaces_key_does_not_exist,
    last_used_at_and_usage_are_written_in_batches,
);
