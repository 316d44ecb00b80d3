//! Posts over HTTP, tenancy: another workspace's posts and accounts are 404 everywhere.
//!
//! The publishing worker never runs on its own here: `run_due` drives it, with the manual
//! clock, so every step is deterministic; the helpers are in `common/posts.rs`.

mod common;

use common::posts::{act, act_ok, assert_param, draft, run, world};
use common::{KeySpec, both};
use crier_core::Scope;
use crier_worker::Processed;
use serde_json::json;

// ---- tenancy ----

async fn another_workspaces_posts_and_accounts_are_404_everywhere() {
    let (app, key, acct) = world().await;
    let other = app.other_workspace("globex").await;
    let (their_key, _) = app
        .key_in(
            &other,
            KeySpec {
                scopes: Scope::ALL.to_vec(),
                ..KeySpec::default()
            },
        )
        .await;
    let their_acct = app.sandbox_account(&their_key, "globex").await;
    let their_post = draft(&app, &their_key, &[&their_acct], "theirs").await;
    let their_scheduled = draft(&app, &their_key, &[&their_acct], "theirs, later").await;
    act_ok(
        &app,
        &their_key,
        &their_scheduled,
        "schedule",
        Some(json!({"scheduled_at": "2026-11-23T10:00:00Z"})),
        "scheduled",
    )
    .await;
    let theirs_before = app.posts_in(&other.id).await;
    let before = app.posts_snapshot().await;

    for post in [&their_post, &their_scheduled] {
        let path = format!("/v1/posts/{post}");
        let responses = [
            app.get(&path).key(&key).send().await,
            app.patch(&path)
                .key(&key)
                .json(json!({"body": "mine now"}))
                .send()
                .await,
            app.delete(&path).key(&key).send().await,
            act(
                &app,
                &key,
                post,
                "schedule",
                Some(json!({"scheduled_at": "2026-11-24T10:00:00Z"})),
            )
            .await,
            act(&app, &key, post, "publish", None).await,
            act(&app, &key, post, "retry", None).await,
            act(&app, &key, post, "cancel", None).await,
            act(&app, &key, post, "approve", Some(json!({}))).await,
            app.get(&format!("{path}/analytics")).key(&key).send().await,
        ];
        for r in responses {
            r.assert_error(404, "not_found");
        }
    }
    let path = format!("/v1/accounts/{their_acct}");
    for r in [
        app.delete(&path).key(&key).send().await,
        app.get(&format!("{path}/timeline")).key(&key).send().await,
        app.post(&format!("{path}/faults"))
            .key(&key)
            .json(json!({"fail_next": 3, "kind": "error"}))
            .send()
            .await,
    ] {
        r.assert_error(404, "not_found");
    }
    // Their account is no account of ours to post to, and lists show none of theirs.
    let r = app
        .post("/v1/posts")
        .key(&key)
        .json(json!({"body": "x", "account_ids": [acct, their_acct]}))
        .send()
        .await;
    assert_param(&r, "account_ids");
    let r = app.get("/v1/posts").key(&key).send().await;
    assert_eq!(r.body["data"], json!([]));
    let r = app
        .get(&format!("/v1/posts?account_id={their_acct}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.body["data"], json!([]));
    let r = app.get("/v1/queue").key(&key).send().await;
    assert_eq!(r.body["data"], json!([]));
    let r = app.get("/v1/accounts").key(&key).send().await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);

    assert_eq!(app.posts_snapshot().await, before);
    assert_eq!(app.posts_in(&other.id).await, theirs_before);
    // Their account is still connected, their post still a draft.
    let r = app.get("/v1/accounts").key(&their_key).send().await;
    assert_eq!(r.body["data"][0]["status"], "connected");
    // Their fault injection did not happen: their post publishes at the first try.
    act_ok(&app, &their_key, &their_post, "publish", None, "publishing").await;
    assert_eq!(run(&app).await, [Processed::Published]);
}

both!(
    tests: another_workspaces_posts_and_accounts_are_404_everywhere,
);
