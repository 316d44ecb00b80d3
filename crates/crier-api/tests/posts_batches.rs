//! Posts over HTTP, batches: all or nothing, scheduled items, and replayed creates and
//! batches that create nothing twice.
//!
//! The publishing worker never runs on its own here: `run_due` drives it, with the manual
//! clock, so every step is deterministic; the helpers are in `common/posts.rs`.

mod common;

use common::both;
use common::posts::{
    assert_param, item, job_times, ms, post_count, run, status_of, timeline, ts, world,
};
use crier_core::Scope;
use crier_core::ids::AccountId;
use crier_worker::Processed;
use serde_json::{Value, json};

// ---- batches ----

async fn a_batch_creates_drafts_all_or_nothing() {
    let (app, key, acct) = world().await;
    let r = app
        .post("/v1/batches")
        .key(&key)
        .json(json!({"posts": [item(&acct, "one"), item(&acct, "two"), item(&acct, "three")]}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["has_more"], false);
    let data = r.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (p, text) in data.iter().zip(["one", "two", "three"]) {
        assert_eq!(p["status"], "draft");
        assert_eq!(p["body"], text);
        assert!(p["id"].as_str().unwrap().starts_with("post_"));
        assert_eq!(p["targets"][0]["status"], "pending");
    }
    assert_eq!(post_count(&app).await, 3);
    assert!(app.jobs().await.is_empty());

    let before = app.posts_snapshot().await;
    let unknown = AccountId::generate().to_string();
    let long = "x".repeat(301);
    for (posts, param) in [
        (
            json!([item(&acct, "ok"), item(&unknown, "bad account")]),
            "posts[1].account_ids".to_owned(),
        ),
        (
            json!([item(&acct, "ok"), item(&acct, "ok"), {"account_ids": [acct]}]),
            "posts[2].body".to_owned(),
        ),
        (
            json!([{"body": "x", "account_ids": acct}]),
            "posts[0].account_ids".to_owned(),
        ),
        (
            json!([item(&acct, "ok"), {"body": "x", "account_ids": [acct], "colour": "red"}]),
            "posts[1].colour".to_owned(),
        ),
        (
            json!([item(&acct, "ok"), {"body": "x", "account_ids": [acct],
                                       "scheduled_at": "2026-11-22T09:00:00Z"}]),
            "posts[1].scheduled_at".to_owned(),
        ),
        (
            json!([{"body": long, "account_ids": [acct], "scheduled_at": "2026-11-23T09:00:00Z"}]),
            format!("posts[0].targets.{acct}.body"),
        ),
        (
            json!([item(&acct, "ok"), {"body": "x", "account_ids": [acct], "media_ids": ["med_x"]}]),
            "posts[1].media_ids[0]".to_owned(),
        ),
        (
            json!([item(&acct, "ok"), {"body": "x", "account_ids": [acct],
                                       "overrides": {"acct_nope": {"body": "y"}}}]),
            "posts[1].overrides.acct_nope".to_owned(),
        ),
        (json!([]), "posts".to_owned()),
        (
            Value::Array((0..101).map(|i| item(&acct, &format!("#{i}"))).collect()),
            "posts".to_owned(),
        ),
    ] {
        let r = app
            .post("/v1/batches")
            .key(&key)
            .json(json!({ "posts": posts }))
            .send()
            .await;
        assert_param(&r, &param);
        assert_eq!(app.posts_snapshot().await, before, "{param}");
    }

    // Exactly 100 is allowed.
    let r = app
        .post("/v1/batches")
        .key(&key)
        .json(json!({"posts": (0..100).map(|i| item(&acct, &format!("#{i}"))).collect::<Vec<_>>()}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 100);
    assert_eq!(post_count(&app).await, 103);
}

async fn scheduled_batch_items_need_posts_publish_and_go_out_when_due() {
    let (app, admin, acct) = world().await;
    let writer = app.key_with(&[Scope::PostsRead, Scope::PostsWrite]).await;
    let at = "2026-11-22T11:00:00Z";
    let body = json!({"posts": [
        item(&acct, "a draft"),
        {"body": "at eleven", "account_ids": [acct], "scheduled_at": at},
    ]});
    let before = app.posts_snapshot().await;
    let r = app
        .post("/v1/batches")
        .key(&writer)
        .json(body.clone())
        .send()
        .await;
    r.assert_error(403, "forbidden_scope");
    assert!(r.text.contains("posts:publish"), "{}", r.text);
    assert_eq!(app.posts_snapshot().await, before);

    let r = app.post("/v1/batches").key(&admin).json(body).send().await;
    assert_eq!(r.status, 201, "{}", r.text);
    let data = r.body["data"].as_array().unwrap();
    assert_eq!(data[0]["status"], "draft");
    assert_eq!(data[1]["status"], "scheduled");
    assert_eq!(data[1]["scheduled_at"], at);
    let id = data[1]["id"].as_str().unwrap();
    assert_eq!(job_times(&app.jobs().await, id), [ms(at)]);
    assert_eq!(app.jobs().await.len(), 1);

    assert_eq!(run(&app).await, []);
    app.clock.set(ts(at));
    assert_eq!(run(&app).await, [Processed::Published]);
    assert_eq!(status_of(&app, &admin, id).await, "published");
    let tl = timeline(&app, &admin, &acct).await;
    assert_eq!(tl.len(), 1);
    assert_eq!(tl[0]["body"], "at eleven");
}

// ---- idempotency ----

async fn replayed_creates_and_batches_create_nothing_twice() {
    let (app, key, acct) = world().await;
    let body = json!({"body": "Once.", "account_ids": [acct]});
    let first = app
        .post("/v1/posts")
        .key(&key)
        .header("idempotency-key", "post-1")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    for _ in 0..2 {
        let again = app
            .post("/v1/posts")
            .key(&key)
            .header("idempotency-key", "post-1")
            .json(body.clone())
            .send()
            .await;
        assert_eq!(again.status, 201, "{}", again.text);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.body["id"], first.body["id"]);
        assert_eq!(again.text, first.text);
    }
    assert_eq!(post_count(&app).await, 1);
    let r = app
        .post("/v1/posts")
        .key(&key)
        .header("idempotency-key", "post-1")
        .json(json!({"body": "Twice?", "account_ids": [acct]}))
        .send()
        .await;
    r.assert_error(409, "idempotency_conflict");
    assert_eq!(post_count(&app).await, 1);

    let batch = json!({"posts": [item(&acct, "b1"), item(&acct, "b2"), item(&acct, "b3")]});
    let first = app
        .post("/v1/batches")
        .key(&key)
        .header("idempotency-key", "batch-1")
        .json(batch.clone())
        .send()
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(post_count(&app).await, 4);
    let again = app
        .post("/v1/batches")
        .key(&key)
        .header("idempotency-key", "batch-1")
        .json(batch)
        .send()
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.text, first.text);
    assert_eq!(post_count(&app).await, 4, "the batch was not created twice");

    // A replayed publish does not publish twice.
    let id = first.body["data"][0]["id"].as_str().unwrap();
    for _ in 0..2 {
        let r = app
            .post(&format!("/v1/posts/{id}/publish"))
            .key(&key)
            .header("idempotency-key", "publish-1")
            .send()
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(app.jobs().await.len(), 1);
    assert_eq!(run(&app).await, [Processed::Published]);
    assert_eq!(timeline(&app, &key, &acct).await.len(), 1);
}

both!(
    tests: a_batch_creates_drafts_all_or_nothing,
    scheduled_batch_items_need_posts_publish_and_go_out_when_due,
    replayed_creates_and_batches_create_nothing_twice,
);
