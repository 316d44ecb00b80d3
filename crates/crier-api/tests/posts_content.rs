//! Posts over HTTP, their content: threads, per-account overrides and the length rules.
//!
//! The publishing worker never runs on its own here: `run_due` drives it, with the manual
//! clock, so every step is deterministic; the helpers are in `common/posts.rs`.

mod common;

use common::both;
use common::posts::{
    FAMILY, act, act_ok, assert_param, create, draft, get_post, run, timeline, world,
};
use crier_worker::Processed;
use serde_json::{Value, json};

// ---- threads and overrides ----

async fn a_thread_publishes_as_a_reply_chain() {
    let (app, key, acct) = world().await;
    let p = create(
        &app,
        &key,
        json!({"body": "1/3 We launched.", "thread": ["2/3 Here is how.", "3/3 Thanks!"],
               "account_ids": [acct]}),
    )
    .await;
    let id = p["id"].as_str().unwrap();
    assert_eq!(p["thread"], json!(["2/3 Here is how.", "3/3 Thanks!"]));
    act_ok(&app, &key, id, "publish", None, "publishing").await;
    assert_eq!(
        run(&app).await,
        [Processed::Published],
        "one job per account"
    );

    let tl = timeline(&app, &key, &acct).await;
    assert_eq!(tl.len(), 3);
    assert_eq!(tl[0]["body"], "1/3 We launched.");
    assert_eq!(tl[1]["body"], "2/3 Here is how.");
    assert_eq!(tl[2]["body"], "3/3 Thanks!");
    assert_eq!(tl[0]["reply_to"], Value::Null);
    assert_eq!(tl[1]["reply_to"], tl[0]["id"], "part 2 replies to part 1");
    assert_eq!(tl[2]["reply_to"], tl[1]["id"], "part 3 replies to part 2");
    for (i, part) in tl.iter().enumerate() {
        assert_eq!(part["idempotency_key"], format!("{id}:{acct}:{i}"));
    }
    let p = get_post(&app, &key, id).await;
    assert_eq!(p["status"], "published");
    assert_eq!(p["targets"][0]["external_id"], tl[0]["id"]);
    assert!(
        p["targets"][0]["url"]
            .as_str()
            .unwrap()
            .ends_with(tl[0]["id"].as_str().unwrap())
    );
    assert_eq!(p["targets"][0]["attempts"], 3, "one call per part");
}

async fn overrides_give_one_account_other_text() {
    let (app, key, a) = world().await;
    let b = app.sandbox_account(&key, "other").await;
    let p = create(
        &app,
        &key,
        json!({"body": "Default text.", "account_ids": [a, b],
               "overrides": {(b.clone()): {"body": "Text for b.", "thread": ["b's reply"]}}}),
    )
    .await;
    let id = p["id"].as_str().unwrap();
    assert_eq!(p["overrides"][&b]["body"], "Text for b.");
    act_ok(&app, &key, id, "publish", None, "publishing").await;
    assert_eq!(
        run(&app).await,
        [Processed::Published, Processed::Published]
    );
    let ta = timeline(&app, &key, &a).await;
    assert_eq!(ta.len(), 1);
    assert_eq!(ta[0]["body"], "Default text.");
    let tb = timeline(&app, &key, &b).await;
    assert_eq!(tb.len(), 2);
    assert_eq!(tb[0]["body"], "Text for b.");
    assert_eq!(tb[1]["body"], "b's reply");
    assert_eq!(tb[1]["reply_to"], tb[0]["id"]);

    // Overrides may only name the post's accounts.
    let c = app.sandbox_account(&key, "third").await;
    let before = app.posts_snapshot().await;
    let r = app
        .post("/v1/posts")
        .key(&key)
        .json(json!({"body": "x", "account_ids": [a], "overrides": {(c.clone()): {"body": "y"}}}))
        .send()
        .await;
    assert_param(&r, &format!("overrides.{c}"));
    assert_eq!(app.posts_snapshot().await, before);
}

// ---- length rules ----

async fn length_rules_are_enforced_when_scheduling_or_publishing() {
    let (app, key, a) = world().await;
    let b = app.sandbox_account(&key, "second").await;

    // A draft may be too long.
    let long = "x".repeat(301);
    let id = draft(&app, &key, &[&a], &long).await;
    let before = app.posts_snapshot().await;
    let r = act(&app, &key, &id, "publish", None).await;
    assert_param(&r, &format!("targets.{a}.body"));
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&a) && message.contains("300"), "{message}");
    let r = act(
        &app,
        &key,
        &id,
        "schedule",
        Some(json!({"scheduled_at": "2026-11-23T10:00:00Z"})),
    )
    .await;
    assert_param(&r, &format!("targets.{a}.body"));
    assert_eq!(app.posts_snapshot().await, before);

    // 300 family emoji are 300 graphemes (2100 chars): within the limit.
    let emoji = FAMILY.repeat(300);
    assert_eq!(emoji.chars().count(), 2100);
    let r = app
        .patch(&format!("/v1/posts/{id}"))
        .key(&key)
        .json(json!({ "body": emoji }))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    act_ok(&app, &key, &id, "publish", None, "publishing").await;
    assert_eq!(run(&app).await, [Processed::Published]);
    assert_eq!(timeline(&app, &key, &a).await[0]["body"], emoji);

    // 301 emoji are one too many.
    let id = draft(&app, &key, &[&a], &FAMILY.repeat(301)).await;
    let r = act(&app, &key, &id, "publish", None).await;
    assert_param(&r, &format!("targets.{a}.body"));

    // A too-long thread part is named by its index in `thread`.
    let p = create(
        &app,
        &key,
        json!({"body": "fine", "thread": ["fine too", long], "account_ids": [a]}),
    )
    .await;
    let tid = p["id"].as_str().unwrap();
    let before = app.posts_snapshot().await;
    let r = act(&app, &key, tid, "publish", None).await;
    assert_param(&r, &format!("targets.{a}.thread[1]"));
    assert_eq!(app.posts_snapshot().await, before);

    // An override too long for one account names that account.
    let p = create(
        &app,
        &key,
        json!({"body": "fine", "account_ids": [a, b],
               "overrides": {(b.clone()): {"body": long}}}),
    )
    .await;
    let oid = p["id"].as_str().unwrap();
    let r = act(
        &app,
        &key,
        oid,
        "schedule",
        Some(json!({"scheduled_at": "2026-11-23T10:00:00Z"})),
    )
    .await;
    assert_param(&r, &format!("targets.{b}.body"));

    // Editing a scheduled post is checked too; the post stays as it was.
    let sid = draft(&app, &key, &[&a], "short").await;
    act_ok(
        &app,
        &key,
        &sid,
        "schedule",
        Some(json!({"scheduled_at": "2026-11-23T10:00:00Z"})),
        "scheduled",
    )
    .await;
    let before = app.posts_snapshot().await;
    let r = app
        .patch(&format!("/v1/posts/{sid}"))
        .key(&key)
        .json(json!({ "body": long }))
        .send()
        .await;
    assert_param(&r, &format!("targets.{a}.body"));
    assert_eq!(app.posts_snapshot().await, before);
}

/// Network options (`overrides.{account}.options`) are the account's network's: a name the
/// network does not take is a problem with a rule id in preflight and a 400 on scheduling;
/// more than 16, or names over 64 bytes, are refused on create; nothing is saved.
async fn network_options_are_checked_against_the_accounts_network() {
    let (app, key, a) = world().await;
    let r = app
        .post("/v1/posts/validate")
        .key(&key)
        .json(json!({"body": "hi", "account_ids": [a],
                     "overrides": {(a.clone()): {"options": {"title": "A title"}}}}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["valid"], false, "{}", r.text);
    assert_eq!(r.body["problems"][0]["rule"], "sandbox.options.unknown");
    assert_eq!(r.body["problems"][0]["field"], "options.title");

    let p = create(
        &app,
        &key,
        json!({"body": "hi", "account_ids": [a],
               "overrides": {(a.clone()): {"options": {"title": "A title"}}}}),
    )
    .await;
    assert_eq!(
        p["overrides"][&a]["options"]["title"], "A title",
        "kept on the draft"
    );
    let id = p["id"].as_str().unwrap();
    let before = app.posts_snapshot().await;
    let r = act(&app, &key, id, "publish", None).await;
    assert_param(&r, &format!("targets.{a}.options.title"));
    assert_eq!(app.posts_snapshot().await, before);

    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("o{i}"), json!(true))).collect();
    let long_name: serde_json::Map<String, Value> =
        [("x".repeat(65), json!(true))].into_iter().collect();
    let nested: serde_json::Map<String, Value> = [("title".to_owned(), json!({"a": 1}))]
        .into_iter()
        .collect();
    let number: serde_json::Map<String, Value> =
        [("title".to_owned(), json!(1))].into_iter().collect();
    let long_text: serde_json::Map<String, Value> = [("title".to_owned(), json!("x".repeat(5001)))]
        .into_iter()
        .collect();
    for options in [many, long_name, nested, number, long_text] {
        let r = app
            .post("/v1/posts")
            .key(&key)
            .json(json!({"body": "hi", "account_ids": [a],
                         "overrides": {(a.clone()): {"options": options}}}))
            .send()
            .await;
        assert_param(&r, &format!("overrides.{a}.options"));
        assert_eq!(app.posts_snapshot().await, before, "nothing saved");
    }
}

both!(
    tests: a_thread_publishes_as_a_reply_chain,
    overrides_give_one_account_other_text,
    length_rules_are_enforced_when_scheduling_or_publishing,
    network_options_are_checked_against_the_accounts_network,
);
