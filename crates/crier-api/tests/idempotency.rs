//! `Idempotency-Key` on `POST /v1/keys`: replays, conflicts, scoping per API key, validation,
//! encryption at rest, expiry, which responses are kept, and concurrent retries.
mod common;

use std::time::Duration;

use base64::Engine;
use common::{KeySpec, TestApp, both};
use crier_core::Scope;
use serde_json::{Value, json};

const IDEM: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";

async fn key_count(app: &TestApp) -> usize {
    app.store
        .list_keys(&app.workspace.id, None, 50, 0)
        .await
        .unwrap()
        .items
        .len()
}

async fn create(app: &TestApp, key: &str, idem: &str, body: Value) -> common::Response {
    app.post("/v1/keys")
        .key(key)
        .header(IDEM, idem)
        .json(body)
        .send()
        .await
}

async fn a_retry_with_the_same_body_replays_the_first_response() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let body = json!({"name": "ci", "scopes": ["posts:read"]});
    let first = create(&app, &admin, "retry-1", body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.header(REPLAYED), None);
    let secret = first.body["key"].as_str().unwrap().to_owned();
    let id = first.body["id"].as_str().unwrap().to_owned();
    assert_eq!(key_count(&app).await, 2);

    for _ in 0..2 {
        let again = create(&app, &admin, "retry-1", body.clone()).await;
        assert_eq!(again.status, 201, "{}", again.text);
        assert_eq!(again.header(REPLAYED), Some("true"));
        assert_eq!(
            again.text, first.text,
            "the replay is byte for byte the first"
        );
        assert_eq!(again.body["key"], secret.as_str());
        assert_eq!(again.body["id"], id.as_str());
        assert!(
            again
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json"))
        );
        // A replay is a new request with its own id.
        assert_ne!(again.header("x-request-id"), first.header("x-request-id"));
    }
    assert_eq!(key_count(&app).await, 2, "only one key was created");
    // The replayed secret is the real one: it authenticates as the created key.
    let r = app.get("/v1/workspace").key(&secret).send().await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Without the header, the same body creates another key.
    let r = app.post("/v1/keys").key(&admin).json(body).send().await;
    assert_eq!(r.status, 201);
    assert_eq!(key_count(&app).await, 3);
}

async fn the_same_idempotency_key_with_another_request_is_409() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (_, other) = app
        .key(KeySpec {
            scopes: vec![Scope::PostsRead],
            ..KeySpec::default()
        })
        .await;
    let first = create(&app, &admin, "k-1", json!({"scopes": ["posts:read"]})).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let before = app.snapshot().await;

    // Another body.
    let r = create(&app, &admin, "k-1", json!({"scopes": ["posts:write"]})).await;
    r.assert_error(409, "idempotency_conflict");
    assert_eq!(r.header(REPLAYED), None);
    // Another path, same body.
    let r = app
        .post(&format!("/v1/keys/{}/rotate", other.id))
        .key(&admin)
        .header(IDEM, "k-1")
        .json(json!({"scopes": ["posts:read"]}))
        .send()
        .await;
    r.assert_error(409, "idempotency_conflict");
    // Another path and an empty body.
    let r = app
        .post(&format!("/v1/keys/{}/rotate", other.id))
        .key(&admin)
        .header(IDEM, "k-1")
        .send()
        .await;
    r.assert_error(409, "idempotency_conflict");
    // Same body, another query string: no POST takes a query parameter, so it is refused as
    // unknown before the key is looked at (and neither replayed nor run).
    let r = app
        .post("/v1/keys?x=1")
        .key(&admin)
        .header(IDEM, "k-1")
        .json(json!({"scopes": ["posts:read"]}))
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "x");
    assert_eq!(r.header(REPLAYED), None);

    assert_eq!(app.snapshot().await, before, "nothing created or rotated");
    let still = app
        .store
        .get_key(&app.workspace.id, &other.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.replaced_by, None);
    assert_eq!(still.expires_at, None);

    // The original still replays.
    let r = create(&app, &admin, "k-1", json!({"scopes": ["posts:read"]})).await;
    assert_eq!(r.header(REPLAYED), Some("true"));
    assert_eq!(r.text, first.text);
}

async fn idempotency_keys_belong_to_one_api_key() {
    let app = TestApp::new().await;
    let a = app.admin_key().await;
    let b = app.admin_key().await;
    let body = json!({"scopes": ["posts:read"]});
    let ra = create(&app, &a, "shared", body.clone()).await;
    let rb = create(&app, &b, "shared", body.clone()).await;
    assert_eq!(ra.status, 201, "{}", ra.text);
    assert_eq!(rb.status, 201, "{}", rb.text);
    assert_eq!(rb.header(REPLAYED), None, "b must not get a's response");
    assert_ne!(ra.body["id"], rb.body["id"]);
    assert_ne!(ra.body["key"], rb.body["key"]);
    assert_eq!(key_count(&app).await, 4);
    // Each replays its own.
    let again_b = create(&app, &b, "shared", body.clone()).await;
    assert_eq!(again_b.text, rb.text);
    let again_a = create(&app, &a, "shared", body).await;
    assert_eq!(again_a.text, ra.text);
    // And a different body under b is b's conflict only.
    create(&app, &b, "shared", json!({"scopes": ["posts:write"]}))
        .await
        .assert_error(409, "idempotency_conflict");
    assert_eq!(key_count(&app).await, 4);
}

async fn an_invalid_idempotency_key_is_400() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let before = app.snapshot().await;
    let too_long = "a".repeat(256);
    // Empty, too long, a control character (tab is a legal header byte), non-ASCII.
    for bad in ["", too_long.as_str(), "tab\there", "caf\u{e9}"] {
        let r = app
            .post("/v1/keys")
            .key(&admin)
            .header(IDEM, bad)
            .json(json!({"scopes": ["posts:read"]}))
            .send()
            .await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["param"], "Idempotency-Key", "{bad:?}");
    }
    assert_eq!(app.snapshot().await, before);
    let stored = app.raw_texts("SELECT idem_key FROM idempotency_keys").await;
    assert!(stored.is_empty(), "{stored:?}");
    // 255 printable characters, spaces included, are fine.
    let longest = format!("{} x", "b".repeat(252));
    assert_eq!(longest.len(), 254);
    let longest = format!("{longest}!");
    let r = create(&app, &admin, &longest, json!({"scopes": ["posts:read"]})).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn stored_responses_are_not_in_the_clear() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let r = create(
        &app,
        &admin,
        "at-rest",
        json!({"name": "secret holder", "scopes": ["posts:read"]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let secret = r.body["key"].as_str().unwrap().to_owned();
    let id = r.body["id"].as_str().unwrap().to_owned();

    let status = app
        .raw_texts("SELECT CAST(status AS TEXT) FROM idempotency_keys")
        .await;
    assert_eq!(status, vec![Some("201".to_owned())]);
    let stored = app.raw_texts("SELECT response FROM idempotency_keys").await;
    assert_eq!(stored.len(), 1);
    let stored = stored[0].clone().expect("a stored response");
    assert!(!stored.is_empty());
    for needle in [secret.as_str(), id.as_str(), &secret[..12], "secret holder"] {
        assert!(
            !stored.contains(needle),
            "`{needle}` is at rest in the clear"
        );
    }
    // Nor merely encoded: whatever the column holds, decoded, hides them too.
    if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&stored) {
        let raw = String::from_utf8_lossy(&raw);
        for needle in [secret.as_str(), id.as_str(), "secret holder", "api_key"] {
            assert!(!raw.contains(needle), "`{needle}` is at rest, only encoded");
        }
    }
    // And the whole file does not hold the secret anywhere (WAL included).
    let mut files = vec![app.db_path()];
    for suffix in ["-wal", "-shm"] {
        let mut p = app.db_path().into_os_string();
        p.push(suffix);
        files.push(p.into());
    }
    for f in files {
        if let Ok(bytes) = std::fs::read(&f) {
            let hay = String::from_utf8_lossy(&bytes);
            assert!(!hay.contains(&secret), "{} holds the secret", f.display());
        }
    }
    // Yet the rightful caller gets it back.
    let again = create(
        &app,
        &admin,
        "at-rest",
        json!({"name": "secret holder", "scopes": ["posts:read"]}),
    )
    .await;
    assert_eq!(again.text, r.text);
}

async fn after_24_hours_the_idempotency_key_runs_afresh() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let first = create(&app, &admin, "daily", json!({"scopes": ["posts:read"]})).await;
    assert_eq!(first.status, 201, "{}", first.text);
    // Still within the day: a different body is a conflict.
    app.clock.advance(Duration::from_secs(23 * 3600));
    create(&app, &admin, "daily", json!({"scopes": ["posts:write"]}))
        .await
        .assert_error(409, "idempotency_conflict");
    assert_eq!(key_count(&app).await, 2);
    // Past it (no purge job runs in tests: expiry is checked when the key is claimed).
    app.clock.advance(Duration::from_secs(2 * 3600));
    let r = create(&app, &admin, "daily", json!({"scopes": ["posts:write"]})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header(REPLAYED), None);
    assert_ne!(r.body["id"], first.body["id"]);
    assert_eq!(r.body["scopes"], json!(["posts:write"]));
    assert_eq!(key_count(&app).await, 3);
    // And the new response is what replays now.
    let again = create(&app, &admin, "daily", json!({"scopes": ["posts:write"]})).await;
    assert_eq!(again.header(REPLAYED), Some("true"));
    assert_eq!(again.text, r.text);
}

async fn a_validation_error_is_kept_but_a_refusal_is_not() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;

    // A 400 ran the request: it is the answer to this key, replayed as it was.
    let bad = json!({"scopes": ["keys:nope"]});
    let first = create(&app, &admin, "v-1", bad.clone()).await;
    first.assert_error(400, "invalid_request");
    assert_eq!(first.header(REPLAYED), None);
    let again = create(&app, &admin, "v-1", bad).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.header(REPLAYED), Some("true"));
    assert_eq!(again.text, first.text);
    assert_eq!(key_count(&app).await, 1);

    // A 401 has no API key to file it under; nothing is kept.
    let fake = crier_core::SecretKey::generate(crier_core::KeyMode::Live);
    create(
        &app,
        fake.expose(),
        "v-2",
        json!({"scopes": ["posts:read"]}),
    )
    .await
    .assert_error(401, "unauthorized");

    // A 403 is a refusal before anything ran: fixing the key's scopes and retrying runs it.
    // (The fix goes through the API, PATCH by an admin key, not storage surgery.)
    let (narrow, narrow_row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead, Scope::PostsRead],
            ..KeySpec::default()
        })
        .await;
    let body = json!({"scopes": ["posts:read"]});
    create(&app, &narrow, "v-3", body.clone())
        .await
        .assert_error(403, "forbidden_scope");
    let kept = app
        .raw_texts("SELECT idem_key FROM idempotency_keys ORDER BY idem_key")
        .await;
    assert_eq!(kept, vec![Some("v-1".to_owned())], "only the 400 is kept");
    let r = app
        .patch(&format!("/v1/keys/{}", narrow_row.id))
        .key(&admin)
        .json(json!({"scopes": ["keys:read", "keys:write", "posts:read"]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = create(&app, &narrow, "v-3", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header(REPLAYED), None);
}

async fn concurrent_requests_with_one_key_create_one_key() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let body = json!({"scopes": ["posts:read"]});
    for round in 0..8 {
        let idem = format!("race-{round}");
        let before = key_count(&app).await;
        let (a, b) = tokio::join!(
            create(&app, &admin, &idem, body.clone()),
            create(&app, &admin, &idem, body.clone())
        );
        let (winner, other) = if a.status == 201 && a.header(REPLAYED).is_none() {
            (a, b)
        } else {
            (b, a)
        };
        assert_eq!(winner.status, 201, "{}", winner.text);
        assert_eq!(winner.header(REPLAYED), None);
        match other.status.as_u16() {
            409 => other.assert_error(409, "idempotency_conflict"),
            201 => {
                assert_eq!(other.header(REPLAYED), Some("true"), "two fresh runs");
                assert_eq!(other.text, winner.text);
            }
            s => panic!("unexpected {s}: {}", other.text),
        }
        assert_eq!(key_count(&app).await, before + 1, "round {round}");
        // Once the winner has finished, a retry replays it.
        let r = create(&app, &admin, &idem, body.clone()).await;
        assert_eq!(r.header(REPLAYED), Some("true"));
        assert_eq!(r.text, winner.text);
    }
}

// A cleaner expression of the same race across tasks, with shared ownership of the app.
async fn concurrent_requests_on_separate_tasks_create_one_key() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let admin = app.admin_key().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let app = app.clone();
        let admin = admin.clone();
        tasks.spawn(async move {
            create(&app, &admin, "fan-out", json!({"scopes": ["posts:read"]})).await
        });
    }
    let mut fresh = Vec::new();
    let mut replays = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap();
        match (r.status.as_u16(), r.header(REPLAYED)) {
            (201, None) => fresh.push(r),
            (201, Some("true")) => replays.push(r),
            (409, _) => r.assert_error(409, "idempotency_conflict"),
            _ => panic!("unexpected {}: {}", r.status, r.text),
        }
    }
    assert_eq!(fresh.len(), 1, "exactly one request ran");
    for r in &replays {
        assert_eq!(r.text, fresh[0].text);
    }
    assert_eq!(key_count(&app).await, 2);
}

async fn post_count(app: &TestApp) -> usize {
    app.raw_texts("SELECT id FROM posts").await.len()
}

/// The largest response a POST can produce: a batch of 100 drafts, each to 20 accounts, with
/// bodies as long as a request of at most 1 MiB allows. The first request's answer (over
/// 1 MiB) is kept, so the retry replays it instead of creating 100 more posts.
async fn a_committed_batch_over_a_mebibyte_is_replayed_not_repeated() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let mut accounts = Vec::new();
    for i in 0..20 {
        accounts.push(app.sandbox_account(&admin, &format!("brand{i}")).await);
    }
    let batch = |len: usize| {
        let posts: Vec<Value> = (0..100)
            .map(|i| {
                let body = format!("{i:03} {}", "y".repeat(len));
                json!({"body": body, "account_ids": accounts})
            })
            .collect();
        json!({ "posts": posts })
    };
    // The longest bodies that keep the request within the 1 MiB body limit.
    let mut len = 20_000;
    while serde_json::to_vec(&batch(len)).unwrap().len() > 1024 * 1024 {
        len -= 100;
    }
    let body = batch(len);
    let send = || {
        app.post("/v1/batches")
            .key(&admin)
            .header(IDEM, "big-batch")
            .json(body.clone())
            .send()
    };
    let first = send().await;
    assert_eq!(
        first.status,
        201,
        "{}",
        &first.text[..first.text.len().min(500)]
    );
    assert_eq!(first.header(REPLAYED), None);
    assert!(
        first.text.len() > 1024 * 1024,
        "the response is over 1 MiB ({} bytes)",
        first.text.len()
    );
    // The worst case `idempotency::MAX_STORED` is sized for (at most about 1.42 MiB).
    assert!(
        first.text.len() < crier_api::idempotency::MAX_STORED / 2,
        "{} bytes",
        first.text.len()
    );
    assert_eq!(first.body["data"].as_array().unwrap().len(), 100);
    assert_eq!(post_count(&app).await, 100);

    let again = send().await;
    assert_eq!(
        again.status,
        201,
        "{}",
        &again.text[..again.text.len().min(500)]
    );
    assert_eq!(again.header(REPLAYED), Some("true"));
    assert!(again.text == first.text, "the replay is the first response");
    assert_eq!(post_count(&app).await, 100, "the retry created nothing");
}

/// Makes every write of a response into `idempotency_keys` fail (a storage fault after the
/// handler committed); writes without a response still go through.
async fn break_response_storage(app: &TestApp) {
    match app.backend() {
        crier_store::Backend::Sqlite => {
            app.raw_execute(
                "CREATE TRIGGER break_idempotency BEFORE UPDATE ON idempotency_keys
                 WHEN NEW.response IS NOT NULL
                 BEGIN SELECT RAISE(ABORT, 'injected storage fault'); END",
            )
            .await
        }
        crier_store::Backend::Postgres => {
            app.raw_execute(
                "CREATE FUNCTION break_idempotency() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'injected storage fault'; END $$;
                 CREATE TRIGGER break_idempotency BEFORE UPDATE ON idempotency_keys
                 FOR EACH ROW WHEN (NEW.response IS NOT NULL)
                 EXECUTE FUNCTION break_idempotency();",
            )
            .await
        }
    }
}

/// The handler committed but its response could not be stored: the caller still gets the
/// handler's answer (never a 500), and a retry with the key does not run the handler again.
async fn a_response_that_cannot_be_stored_is_answered_and_not_run_again() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    break_response_storage(&app).await;
    let body = json!({"name": "ci", "scopes": ["posts:read"]});
    let first = create(&app, &admin, "unstored", body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert!(
        first.body["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("sk_"))
    );
    assert_eq!(key_count(&app).await, 2);

    let before = app.snapshot().await;
    let again = create(&app, &admin, "unstored", body.clone()).await;
    again.assert_error(409, "idempotency_conflict");
    let message = again.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("already ran"), "{message}");
    assert_eq!(app.snapshot().await, before, "the retry created nothing");
    assert_eq!(key_count(&app).await, 2);
}

/// A replay answers only a caller the route would let in now: a key that lost `keys:write`
/// does not get the created key's secret back by replaying its create.
async fn a_replay_checks_the_routes_scope_again() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (creator, creator_row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead, Scope::KeysWrite, Scope::PostsRead],
            ..KeySpec::default()
        })
        .await;
    let body = json!({"name": "child", "scopes": ["posts:read"]});
    let first = create(&app, &creator, "scoped", body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let secret = first.body["key"].as_str().unwrap().to_owned();

    // Another key takes `keys:write` away.
    let r = app
        .patch(&format!("/v1/keys/{}", creator_row.id))
        .key(&admin)
        .json(json!({"scopes": ["keys:read", "posts:read"]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let before = app.snapshot().await;
    let kept = app
        .raw_texts("SELECT idem_key FROM idempotency_keys ORDER BY idem_key")
        .await;
    let replay = create(&app, &creator, "scoped", body.clone()).await;
    replay.assert_error(403, "forbidden_scope");
    assert!(
        replay.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("keys:write")
    );
    assert_eq!(replay.header(REPLAYED), None);
    assert!(!replay.text.contains(&secret), "the secret is not replayed");
    assert_eq!(app.snapshot().await, before);
    assert_eq!(
        app.raw_texts("SELECT idem_key FROM idempotency_keys ORDER BY idem_key")
            .await,
        kept,
        "the stored response stays"
    );

    // Given the scope back, the same key replays the first response (nothing runs twice).
    let r = app
        .patch(&format!("/v1/keys/{}", creator_row.id))
        .key(&admin)
        .json(json!({"scopes": ["keys:read", "keys:write", "posts:read"]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let replay = create(&app, &creator, "scoped", body).await;
    assert_eq!(replay.status, 201, "{}", replay.text);
    assert_eq!(replay.header(REPLAYED), Some("true"));
    assert_eq!(replay.text, first.text);
    assert_eq!(key_count(&app).await, 3);
}

/// Scopes a handler checks beyond its route's are required again too: a batch that schedules
/// needs `posts:publish`, so a key that lost it does not get that batch replayed.
async fn a_replay_checks_the_scopes_the_handler_required() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let acct = app.sandbox_account(&admin, "brand").await;
    let (writer, writer_row) = app
        .key(KeySpec {
            scopes: vec![Scope::PostsRead, Scope::PostsWrite, Scope::PostsPublish],
            ..KeySpec::default()
        })
        .await;
    let batch = |idem: &'static str, body: Value| {
        app.post("/v1/batches")
            .key(&writer)
            .header(IDEM, idem)
            .json(body)
            .send()
    };
    let scheduled = json!({"posts": [
        {"body": "later", "account_ids": [acct], "scheduled_at": "2026-11-23T09:00:00Z"}
    ]});
    let first = batch("scheduled", scheduled.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);

    let r = app
        .patch(&format!("/v1/keys/{}", writer_row.id))
        .key(&admin)
        .json(json!({"scopes": ["posts:read", "posts:write"]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let before = app.posts_snapshot().await;
    let replay = batch("scheduled", scheduled).await;
    replay.assert_error(403, "forbidden_scope");
    assert!(
        replay.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("posts:publish")
    );
    assert_eq!(replay.header(REPLAYED), None);
    assert_eq!(app.posts_snapshot().await, before);

    // What needed only the route's scope still replays for the narrowed key.
    let drafts = json!({"posts": [{"body": "draft", "account_ids": [acct]}]});
    let first = batch("drafts", drafts.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let replay = batch("drafts", drafts).await;
    assert_eq!(replay.status, 201, "{}", replay.text);
    assert_eq!(replay.header(REPLAYED), Some("true"));
    assert_eq!(replay.text, first.text);
}

/// A client that hangs up mid-request drops the request's future; the request still runs to
/// its end and is recorded, so a retry (even after the key's lock would have run out) replays
/// it instead of running it a second time. The hang-up is tried at several moments.
async fn a_hung_up_request_is_recorded_and_not_run_twice() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "brand").await;
    for (i, after_ms) in [0u64, 1, 2, 4, 8, 16, 32, 64].into_iter().enumerate() {
        let marker = format!("hang-up {i}");
        let posts: Vec<Value> = (0..50)
            .map(|n| json!({"body": format!("{marker} #{n}"), "account_ids": [acct]}))
            .collect();
        let send = || {
            app.post("/v1/batches")
                .key(&key)
                .header(IDEM, &marker)
                .json(json!({ "posts": posts }))
                .send()
        };
        // The client gives up after `after_ms`: its future is dropped wherever it is.
        let _ = tokio::time::timeout(Duration::from_millis(after_ms), send()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        // However slow the machine, the request the client left runs to its end before the
        // clock jumps past its lock (else the retry would rightly take over a lock that ran out).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline
            && app
                .raw_texts("SELECT idem_key FROM idempotency_keys WHERE state = 'running'")
                .await
                .contains(&Some(marker.clone()))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Past the lock a running request holds: a key left `running` would run again now.
        app.clock
            .set(crier_core::Clock::now(&app.clock) + jiff::SignedDuration::from_secs(120));
        let retry = send().await;
        assert_eq!(retry.status, 201, "{}", retry.text);
        let stored = app
            .posts_in(&app.workspace.id)
            .await
            .into_iter()
            .filter(|p| p.body.starts_with(&format!("{marker} #")))
            .count();
        assert_eq!(
            stored, 50,
            "hang-up after {after_ms} ms: the batch ran once"
        );
    }
}

both!(
    tests: a_retry_with_the_same_body_replays_the_first_response,
    the_same_idempotency_key_with_another_request_is_409,
    idempotency_keys_belong_to_one_api_key,
    an_invalid_idempotency_key_is_400,
    after_24_hours_the_idempotency_key_runs_afresh,
    a_validation_error_is_kept_but_a_refusal_is_not,
    concurrent_requests_with_one_key_create_one_key,
    concurrent_requests_on_separate_tasks_create_one_key,
    a_committed_batch_over_a_mebibyte_is_replayed_not_repeated,
    a_response_that_cannot_be_stored_is_answered_and_not_run_again,
    a_replay_checks_the_routes_scope_again,
    a_replay_checks_the_scopes_the_handler_required,
    a_hung_up_request_is_recorded_and_not_run_twice,
);
