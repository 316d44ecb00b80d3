//! Posts over HTTP, bad input: refused, and nothing changes.
//!
//! The publishing worker never runs on its own here: `run_due` drives it, with the manual
//! clock, so every step is deterministic; the helpers are in `common/posts.rs`.

mod common;

use common::both;
use common::posts::{act, act_ok, assert_param, draft, get_post, run, status_of, world};
use crier_core::ids::{AccountId, BrandId, PostId};
use crier_worker::Processed;
use serde_json::json;

// ---- bad input ----

async fn bad_input_is_refused_and_changes_nothing() {
    let (app, key, acct) = world().await;
    let id = draft(&app, &key, &[&acct], "existing").await;
    let before = app.posts_snapshot().await;
    let unknown_acct = AccountId::generate().to_string();

    // Malformed JSON.
    for raw in ["{\"body\":", "not json", "{\"body\": \"x\",}"] {
        let r = app
            .post("/v1/posts")
            .key(&key)
            .header("content-type", "application/json")
            .raw(raw)
            .send()
            .await;
        r.assert_error(400, "invalid_request");
        assert!(r.text.contains("not valid JSON"), "{}", r.text);
    }
    // Not JSON at all.
    let r = app
        .post("/v1/posts")
        .key(&key)
        .header("content-type", "text/plain")
        .raw("body=x")
        .send()
        .await;
    r.assert_error(415, "unsupported_media_type");

    for (body, param) in [
        (json!({"body": "x", "account_ids": acct}), "account_ids"),
        (json!({"body": "x", "account_ids": [1]}), "account_ids[0]"),
        (json!({"body": 5, "account_ids": [acct]}), "body"),
        (
            json!({"body": "x", "account_ids": [acct], "thread": "y"}),
            "thread",
        ),
        (
            json!({"body": "x", "account_ids": [unknown_acct]}),
            "account_ids",
        ),
        (
            json!({"body": "x", "account_ids": ["acct_nope"]}),
            "account_ids",
        ),
        (json!({"body": "x", "account_ids": []}), "account_ids"),
        (
            json!({"body": "x", "account_ids": [acct, acct]}),
            "account_ids",
        ),
        (
            json!({"body": "x", "account_ids": [acct], "colour": "red"}),
            "colour",
        ),
        (
            json!({"body": "x", "account_ids": [acct], "overrides": {&acct: {"bodyy": "y"}}}),
            &format!("overrides.{acct}.bodyy"),
        ),
        (json!({"account_ids": [acct]}), "body"),
        (json!({"body": "x"}), "account_ids"),
        (json!({"body": "   ", "account_ids": [acct]}), "body"),
        (
            json!({"body": "x", "thread": ["ok", ""], "account_ids": [acct]}),
            "thread[1]",
        ),
        (
            json!({"body": "x".repeat(20_001), "account_ids": [acct]}),
            "body",
        ),
        (
            json!({"body": "x", "account_ids": [acct], "media_ids": ["med_nope"]}),
            "media_ids[0]",
        ),
    ] {
        let r = app
            .post("/v1/posts")
            .key(&key)
            .json(body.clone())
            .send()
            .await;
        assert_param(&r, param);
        assert_eq!(app.posts_snapshot().await, before, "{body}");
    }

    // The same rules on edits.
    for (body, param) in [
        (json!({"account_ids": acct}), "account_ids"),
        (json!({"account_ids": [unknown_acct]}), "account_ids"),
        (json!({"body": ""}), "body"),
        (json!({"status": "published"}), "status"),
    ] {
        let r = app
            .patch(&format!("/v1/posts/{id}"))
            .key(&key)
            .json(body.clone())
            .send()
            .await;
        assert_param(&r, param);
    }

    // Over 1 MiB.
    let big = format!(
        "{{\"body\":\"{}\",\"account_ids\":[\"{acct}\"]}}",
        "a".repeat(1024 * 1024)
    );
    for call in [
        app.post("/v1/posts"),
        app.patch(&format!("/v1/posts/{id}")),
        app.post("/v1/batches"),
    ] {
        call.key(&key)
            .header("content-type", "application/json")
            .raw(big.clone())
            .send()
            .await
            .assert_error(413, "payload_too_large");
    }

    // Unknown post ids, well-formed or not.
    let ghost = PostId::generate().to_string();
    for ghost in [ghost.as_str(), "post_nope", "acct_0000000000000000000000"] {
        let path = format!("/v1/posts/{ghost}");
        for r in [
            app.get(&path).key(&key).send().await,
            app.patch(&path)
                .key(&key)
                .json(json!({"body": "y"}))
                .send()
                .await,
            app.delete(&path).key(&key).send().await,
            act(&app, &key, ghost, "publish", None).await,
            act(&app, &key, ghost, "retry", None).await,
            app.get(&format!("{path}/analytics")).key(&key).send().await,
        ] {
            r.assert_error(404, "not_found");
        }
    }
    assert_eq!(app.posts_snapshot().await, before);
    assert_eq!(get_post(&app, &key, &id).await["body"], "existing");
}

/// NUL (`\u0000`, the one way JSON writes it) in any string or key of any body is refused
/// naming the field, on both backends alike: PostgreSQL cannot store it in text, and it
/// answered 500 for a post's body, a webhook's description and a login's email.
async fn nul_characters_are_refused_in_every_field_and_change_nothing() {
    let (app, key, acct) = world().await;
    let id = draft(&app, &key, &[&acct], "existing").await;
    let before = app.posts_snapshot().await;
    let n = "a\u{0}b";
    for (path, body, param) in [
        (
            "/v1/posts",
            json!({"body": n, "account_ids": [acct]}),
            "body",
        ),
        (
            "/v1/posts",
            json!({"body": "x", "thread": ["ok", n], "account_ids": [acct]}),
            "thread[1]",
        ),
        (
            "/v1/posts",
            json!({"body": "x", "account_ids": [acct], "overrides": {&acct: {"body": n}}}),
            &format!("overrides.{acct}.body"),
        ),
        (
            "/v1/posts",
            json!({"body": "x", "account_ids": [acct], n: 1}),
            n,
        ),
        (
            "/v1/webhooks",
            json!({"url": "https://example.com/h", "events": ["post.published"], "description": n}),
            "description",
        ),
        (
            "/v1/auth/login",
            json!({"email": format!("{n}@example.com"), "password": "x"}),
            "email",
        ),
    ] {
        let r = app.post(path).key(&key).json(body.clone()).send().await;
        assert_param(&r, param);
        assert!(r.text.contains("NUL"), "{}", r.text);
    }
    let r = app
        .patch(&format!("/v1/posts/{id}"))
        .key(&key)
        .json(json!({"body": n}))
        .send()
        .await;
    assert_param(&r, "body");
    assert_eq!(app.posts_snapshot().await, before);
    let r = app.get("/v1/webhooks").key(&key).send().await;
    assert_eq!(r.body["data"], json!([]), "{}", r.text);

    // A backslash followed by `u0000` is text like any other.
    let r = app
        .post("/v1/posts")
        .key(&key)
        .header("content-type", "application/json")
        .raw(format!(
            r#"{{"body":"C:\\u0000 and \\\\u0000","account_ids":["{acct}"]}}"#
        ))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["body"], r"C:\u0000 and \\u0000");
}

/// The request is checked before the post's status: a malformed edit or schedule of a
/// published post is `400` naming the field (the OpenAPI description forbids it whatever the
/// post), and only a well-formed one meets the `409` of the status. Nothing changes.
async fn bad_input_on_a_published_post_is_refused_before_its_status() {
    let (app, key, acct) = world().await;
    let id = draft(&app, &key, &[&acct], "Out.").await;
    act_ok(&app, &key, &id, "publish", None, "publishing").await;
    assert_eq!(run(&app).await, [Processed::Published]);
    assert_eq!(status_of(&app, &key, &id).await, "published");
    let before = app.posts_snapshot().await;
    let path = format!("/v1/posts/{id}");
    let brand = BrandId::generate().to_string();
    let over = format!("overrides.{acct}.body");
    for (body, param) in [
        (json!({"body": ""}), "body"),
        (json!({"body": "   "}), "body"),
        (json!({"thread": ["ok", ""]}), "thread[1]"),
        (json!({"account_ids": []}), "account_ids"),
        (json!({"account_ids": [acct, acct]}), "account_ids"),
        (json!({"account_ids": ["acct_nope"]}), "account_ids"),
        (
            json!({"account_ids": [acct], "brand_id": brand}),
            "brand_id",
        ),
        (json!({"brand_id": "brd_nope"}), "brand_id"),
        (json!({"media_ids": ["med_nope"]}), "media_ids[0]"),
        (
            json!({"overrides": {"nope": {"body": "y"}}}),
            "overrides.nope",
        ),
        (json!({"overrides": {&acct: {"body": ""}}}), over.as_str()),
    ] {
        let r = app.patch(&path).key(&key).json(body.clone()).send().await;
        assert_param(&r, param);
    }
    for (body, param) in [
        (json!({}), "scheduled_at"),
        (
            json!({"scheduled_at": "2026-11-23T10:00:00Z", "slot": "next"}),
            "scheduled_at",
        ),
        (json!({"slot": "tomorrow"}), "slot"),
        (
            json!({"scheduled_at": "2020-01-01T00:00:00Z"}),
            "scheduled_at",
        ),
    ] {
        let r = act(&app, &key, &id, "schedule", Some(body.clone())).await;
        assert_param(&r, param);
    }
    // Well-formed, they meet the post's status.
    app.patch(&path)
        .key(&key)
        .json(json!({"body": "Changed."}))
        .send()
        .await
        .assert_error(409, "conflict");
    for body in [
        json!({"slot": "next"}),
        json!({"scheduled_at": "2026-11-23T10:00:00Z"}),
    ] {
        act(&app, &key, &id, "schedule", Some(body))
            .await
            .assert_error(409, "conflict");
    }
    assert_eq!(app.posts_snapshot().await, before);
    assert_eq!(get_post(&app, &key, &id).await["body"], "Out.");
}

both!(
    tests: bad_input_is_refused_and_changes_nothing,
    nul_characters_are_refused_in_every_field_and_change_nothing,
    bad_input_on_a_published_post_is_refused_before_its_status,
);
