//! Posts over HTTP: the seed example, every legal and illegal transition of the state machine,
//! scheduling (times, UTC, the queue and its slots), threads and overrides, length rules,
//! approvals, batches, idempotency, plans and test mode, tenancy, bad input, analytics, and
//! the sandbox network's faults (rate limits, lost answers, giving up).
//!
//! The publishing worker never runs on its own here: `run_due` drives it, with the manual
//! clock, so every step is deterministic.
mod common;

use std::time::Duration;

use common::{KeySpec, NowMs, Response, TestApp, both};
use crier_api::ApiConfig;
use crier_core::ids::{AccountId, PostId};
use crier_core::{KeyMode, Scope};
use crier_worker::Processed;
use jiff::Timestamp;
use serde_json::{Value, json};

/// One "family" emoji: four people joined by zero-width joiners, seven chars, one grapheme.
const FAMILY: &str = "👨\u{200D}👩\u{200D}👧\u{200D}👦";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn ms(s: &str) -> i64 {
    ts(s).as_millisecond()
}

/// An app on the default (self-hosted) plan, a key with every scope and one sandbox account.
async fn world() -> (TestApp, String, String) {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "brand").await;
    (app, key, acct)
}

#[track_caller]
fn assert_param(r: &Response, param: &str) {
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], param, "param; body: {}", r.text);
}

async fn create(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.post("/v1/posts").key(key).json(body).send().await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

/// A draft to `accounts` with `text`; returns its id.
async fn draft(app: &TestApp, key: &str, accounts: &[&str], text: &str) -> String {
    let body = create(app, key, json!({"body": text, "account_ids": accounts})).await;
    assert_eq!(body["status"], "draft");
    body["id"].as_str().unwrap().to_owned()
}

/// `POST /v1/posts/{id}/{verb}` with an optional JSON body.
async fn act(app: &TestApp, key: &str, id: &str, verb: &str, body: Option<Value>) -> Response {
    let call = app.post(&format!("/v1/posts/{id}/{verb}")).key(key);
    match body {
        Some(b) => call.json(b).send().await,
        None => call.send().await,
    }
}

/// Like [`act`], asserting `200` and the post's new status.
async fn act_ok(
    app: &TestApp,
    key: &str,
    id: &str,
    verb: &str,
    body: Option<Value>,
    status: &str,
) -> Value {
    let r = act(app, key, id, verb, body).await;
    assert_eq!(r.status, 200, "{verb}: {}", r.text);
    assert_eq!(r.body["status"], status, "{verb}: {}", r.text);
    assert_eq!(r.body["id"], id);
    r.body
}

async fn get_post(app: &TestApp, key: &str, id: &str) -> Value {
    let r = app.get(&format!("/v1/posts/{id}")).key(key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

async fn status_of(app: &TestApp, key: &str, id: &str) -> String {
    get_post(app, key, id).await["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// What the sandbox account received, oldest first.
async fn timeline(app: &TestApp, key: &str, acct: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/v1/accounts/{acct}/timeline?limit=50"))
        .key(key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].as_array().unwrap().clone()
}

async fn faults(app: &TestApp, key: &str, acct: &str, body: Value) {
    let r = app
        .post(&format!("/v1/accounts/{acct}/faults"))
        .key(key)
        .json(body)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn patch_workspace(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.patch("/v1/workspace").key(key).json(body).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

async fn run(app: &TestApp) -> Vec<Processed> {
    app.publisher().run_due().await
}

/// Runs the worker, moving the clock to the next job's time, until no job is left.
async fn drain(app: &TestApp) -> Vec<Processed> {
    let mut all = Vec::new();
    for _ in 0..50 {
        all.extend(run(app).await);
        let next = app
            .jobs()
            .await
            .iter()
            .flatten()
            .map(|j| j.split('|').nth(3).unwrap().parse::<i64>().unwrap())
            .min();
        match next {
            Some(at) => app
                .clock
                .set(Timestamp::from_millisecond(at.max(app.clock.now_ms_value())).unwrap()),
            None => return all,
        }
    }
    panic!("the worker never settled: {all:?}");
}

/// How many posts of this app's workspace are in storage.
async fn post_count(app: &TestApp) -> usize {
    app.posts_in(&app.workspace.id).await.len()
}

/// The first `run_at` of the jobs of `post` (jobs as `id|post|account|run_at|locked`).
fn job_times(jobs: &[Option<String>], post: &str) -> Vec<i64> {
    jobs.iter()
        .flatten()
        .filter(|j| j.split('|').nth(1) == Some(post))
        .map(|j| j.split('|').nth(3).unwrap().parse().unwrap())
        .collect()
}

// ---- the seed example ----

async fn the_seed_example_creates_a_draft_with_a_pending_target_per_account() {
    let (app, key, acct) = world().await;
    let other = app.sandbox_account(&key, "second").await;
    let r = app
        .post("/v1/posts")
        .key(&key)
        .json(json!({"body": "Launch day is here.", "account_ids": [acct]}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let b = &r.body;
    let id = b["id"].as_str().unwrap();
    assert!(id.starts_with("post_"), "{id}");
    assert_eq!(b["object"], "post");
    assert_eq!(b["status"], "draft");
    assert_eq!(b["body"], "Launch day is here.");
    assert_eq!(b["thread"], json!([]));
    assert_eq!(b["account_ids"], json!([acct]));
    assert_eq!(b["media_ids"], json!([]));
    assert_eq!(b["overrides"], json!({}));
    assert_eq!(b["scheduled_at"], Value::Null);
    assert_eq!(b["published_at"], Value::Null);
    assert_eq!(b["livemode"], true);
    assert_eq!(b["created_at"], common::START);
    assert_eq!(b["updated_at"], common::START);
    let targets = b["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["account_id"], acct.as_str());
    assert_eq!(targets[0]["platform"], "sandbox");
    assert_eq!(targets[0]["status"], "pending");
    assert_eq!(targets[0]["external_id"], Value::Null);
    assert_eq!(targets[0]["url"], Value::Null);
    assert_eq!(targets[0]["attempts"], 0);
    assert_eq!(targets[0]["error"], Value::Null);

    // What was answered is what is stored, and a draft has no job.
    assert_eq!(get_post(&app, &key, id).await, r.body);
    let snap = app.posts_snapshot().await;
    assert_eq!(snap.posts.len(), 1);
    assert_eq!(snap.posts[0].id.as_str(), id);
    assert!(snap.jobs.is_empty());

    // Two accounts: two pending targets, in the order given.
    let two = create(
        &app,
        &key,
        json!({"body": "Launch day is here.", "account_ids": [other, acct]}),
    )
    .await;
    let accounts: Vec<&str> = two["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["status"], "pending");
            t["account_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(accounts, [other.as_str(), acct.as_str()]);
    assert_eq!(post_count(&app).await, 2);
}

// ---- legal transitions ----

async fn a_draft_is_scheduled_rescheduled_edited_cancelled_edited_and_deleted() {
    let (app, key, acct) = world().await;
    let id = draft(&app, &key, &[&acct], "Soon.").await;

    let t1 = "2026-11-22T12:00:00Z";
    let p = act_ok(
        &app,
        &key,
        &id,
        "schedule",
        Some(json!({ "scheduled_at": t1 })),
        "scheduled",
    )
    .await;
    assert_eq!(p["scheduled_at"], t1);
    assert_eq!(job_times(&app.jobs().await, &id), [ms(t1)]);

    let t2 = "2026-11-22T13:30:00Z";
    let p = act_ok(
        &app,
        &key,
        &id,
        "schedule",
        Some(json!({ "scheduled_at": t2 })),
        "scheduled",
    )
    .await;
    assert_eq!(p["scheduled_at"], t2);
    assert_eq!(
        job_times(&app.jobs().await, &id),
        [ms(t2)],
        "the job moved, not doubled"
    );

    // Edit while scheduled: still scheduled, still one job at the same time.
    let r = app
        .patch(&format!("/v1/posts/{id}"))
        .key(&key)
        .json(json!({"body": "Soon, edited."}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "scheduled");
    assert_eq!(r.body["body"], "Soon, edited.");
    assert_eq!(r.body["scheduled_at"], t2);
    assert_eq!(job_times(&app.jobs().await, &id), [ms(t2)]);

    // Cancel: back to draft, no time, no job.
    let p = act_ok(&app, &key, &id, "cancel", None, "draft").await;
    assert_eq!(p["scheduled_at"], Value::Null);
    assert!(app.jobs().await.is_empty());

    // Edit the draft.
    let r = app
        .patch(&format!("/v1/posts/{id}"))
        .key(&key)
        .json(json!({"body": "Draft again.", "thread": ["and more"]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "draft");
    assert_eq!(r.body["body"], "Draft again.");
    assert_eq!(r.body["thread"], json!(["and more"]));
    assert_eq!(get_post(&app, &key, &id).await["body"], "Draft again.");

    // Delete the draft.
    let r = app
        .delete(&format!("/v1/posts/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"id": id, "object": "post", "deleted": true}));
    app.get(&format!("/v1/posts/{id}"))
        .key(&key)
        .send()
        .await
        .assert_error(404, "not_found");
    assert_eq!(post_count(&app).await, 0);

    // Deleting a scheduled post unschedules it: its job goes too, nothing is published.
    let id = draft(&app, &key, &[&acct], "Never.").await;
    act_ok(
        &app,
        &key,
        &id,
        "schedule",
        Some(json!({ "scheduled_at": t1 })),
        "scheduled",
    )
    .await;
    assert_eq!(app.jobs().await.len(), 1);
    let r = app
        .delete(&format!("/v1/posts/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(app.jobs().await.is_empty());
    app.clock.set(ts(t2));
    assert_eq!(run(&app).await, []);
    assert!(timeline(&app, &key, &acct).await.is_empty());
}

async fn publish_now_goes_through_publishing_to_published() {
    let (app, key, acct) = world().await;
    let id = draft(&app, &key, &[&acct], "Now.").await;
    let p = act_ok(&app, &key, &id, "publish", None, "publishing").await;
    assert_eq!(p["targets"][0]["status"], "pending");
    assert_eq!(p["published_at"], Value::Null);
    assert_eq!(
        job_times(&app.jobs().await, &id),
        [app.clock.now_ms_value()]
    );
    // Until the worker runs it stays publishing.
    assert_eq!(status_of(&app, &key, &id).await, "publishing");

    app.clock.advance(Duration::from_secs(1));
    assert_eq!(run(&app).await, [Processed::Published]);
    let p = get_post(&app, &key, &id).await;
    assert_eq!(p["status"], "published");
    assert_eq!(p["published_at"], "2026-11-22T10:00:01Z");
    let t = &p["targets"][0];
    assert_eq!(t["status"], "published");
    assert_eq!(t["attempts"], 1);
    assert_eq!(t["error"], Value::Null);
    assert_eq!(t["published_at"], "2026-11-22T10:00:01Z");
    let ext = t["external_id"].as_str().unwrap();
    assert!(ext.starts_with("sbx_"), "{ext}");
    assert_eq!(
        t["url"],
        format!("https://sandbox.crier.invalid/@brand/{ext}")
    );
    assert!(app.jobs().await.is_empty(), "the job is done");

    let tl = timeline(&app, &key, &acct).await;
    assert_eq!(tl.len(), 1);
    assert_eq!(tl[0]["id"], ext);
    assert_eq!(tl[0]["body"], "Now.");
    assert_eq!(tl[0]["reply_to"], Value::Null);
    assert_eq!(tl[0]["idempotency_key"], format!("{id}:{acct}:0"));

    // Running again publishes nothing more.
    assert_eq!(run(&app).await, []);
    assert_eq!(timeline(&app, &key, &acct).await.len(), 1);

    // A scheduled post can be published now: its job moves to now.
    let id2 = draft(&app, &key, &[&acct], "Early.").await;
    act_ok(
        &app,
        &key,
        &id2,
        "schedule",
        Some(json!({"scheduled_at": "2026-12-01T00:00:00Z"})),
        "scheduled",
    )
    .await;
    let p = act_ok(&app, &key, &id2, "publish", None, "publishing").await;
    assert_eq!(p["scheduled_at"], Value::Null);
    assert_eq!(
        job_times(&app.jobs().await, &id2),
        [app.clock.now_ms_value()]
    );
    assert_eq!(run(&app).await, [Processed::Published]);
    assert_eq!(status_of(&app, &key, &id2).await, "published");

    // A published post can be deleted (the network keeps what it got).
    let r = app
        .delete(&format!("/v1/posts/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(post_count(&app).await, 1);
    assert_eq!(timeline(&app, &key, &acct).await.len(), 2);
}

async fn retry_publishes_again_to_the_accounts_that_failed_only() {
    let (app, key, good) = world().await;
    let flaky = app.sandbox_account(&key, "flaky").await;
    faults(
        &app,
        &key,
        &flaky,
        json!({"fail_next": 10, "kind": "error"}),
    )
    .await;
    let failed = draft(&app, &key, &[&flaky], "Fails first.").await;
    let partial = draft(&app, &key, &[&good, &flaky], "Half first.").await;
    act_ok(&app, &key, &failed, "publish", None, "publishing").await;
    act_ok(&app, &key, &partial, "publish", None, "publishing").await;
    let out = drain(&app).await;
    assert_eq!(
        out.iter().filter(|p| **p == Processed::Failed).count(),
        2,
        "{out:?}"
    );
    assert_eq!(
        out.iter().filter(|p| **p == Processed::Published).count(),
        1,
        "{out:?}"
    );

    let f = get_post(&app, &key, &failed).await;
    assert_eq!(f["status"], "failed");
    assert_eq!(f["published_at"], Value::Null);
    assert_eq!(f["targets"][0]["status"], "failed");
    assert_eq!(f["targets"][0]["error"]["code"], "network_error");
    let p = get_post(&app, &key, &partial).await;
    assert_eq!(p["status"], "partially_published");
    assert_eq!(p["targets"][0]["status"], "published");
    assert_eq!(p["targets"][1]["status"], "failed");
    let good_ext = p["targets"][0]["external_id"].clone();
    assert!(p["published_at"].is_string());
    assert!(app.jobs().await.is_empty());

    // The network recovers.
    faults(&app, &key, &flaky, json!({"fail_next": 0, "kind": "error"})).await;

    // failed → publishing: the failed target is pending again, its error cleared.
    let r = act_ok(&app, &key, &failed, "retry", None, "publishing").await;
    assert_eq!(r["targets"][0]["status"], "pending");
    assert_eq!(r["targets"][0]["error"], Value::Null);
    assert_eq!(app.jobs().await.len(), 1);
    assert_eq!(run(&app).await, [Processed::Published]);
    assert_eq!(status_of(&app, &key, &failed).await, "published");

    // partially_published → publishing: only the failed account gets a job.
    let r = act_ok(&app, &key, &partial, "retry", None, "publishing").await;
    assert_eq!(r["targets"][0]["status"], "published");
    assert_eq!(r["targets"][0]["external_id"], good_ext);
    assert_eq!(r["targets"][1]["status"], "pending");
    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].as_ref().unwrap().contains(&flaky));
    assert_eq!(run(&app).await, [Processed::Published]);
    let p = get_post(&app, &key, &partial).await;
    assert_eq!(p["status"], "published");
    assert_eq!(p["targets"][0]["external_id"], good_ext, "not republished");

    // The good account got "Half first." exactly once; the flaky one got each post once.
    let bodies = |tl: Vec<Value>| -> Vec<String> {
        tl.iter()
            .map(|p| p["body"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(bodies(timeline(&app, &key, &good).await), ["Half first."]);
    let mut flaky_got = bodies(timeline(&app, &key, &flaky).await);
    flaky_got.sort();
    assert_eq!(flaky_got, ["Fails first.", "Half first."]);
}

async fn a_retry_gets_a_fresh_attempt_budget() {
    let (app, key, acct) = world().await;
    faults(&app, &key, &acct, json!({"fail_next": 5, "kind": "error"})).await;
    let id = draft(&app, &key, &[&acct], "Persistent.").await;
    act_ok(&app, &key, &id, "publish", None, "publishing").await;
    drain(&app).await;
    assert_eq!(status_of(&app, &key, &id).await, "failed");

    // The network blips once more after the manual retry: the retry backs off and tries
    // again instead of giving up on the first error.
    faults(&app, &key, &acct, json!({"fail_next": 1, "kind": "error"})).await;
    act_ok(&app, &key, &id, "retry", None, "publishing").await;
    let out = run(&app).await;
    assert!(
        matches!(out.as_slice(), [Processed::RetryAt(_)]),
        "a retry starts a new round of attempts: {out:?}"
    );
    let out = drain(&app).await;
    assert_eq!(out, [Processed::Published]);
    let p = get_post(&app, &key, &id).await;
    assert_eq!(p["status"], "published");
    assert_eq!(timeline(&app, &key, &acct).await.len(), 1);
}

// ---- illegal transitions ----

async fn every_illegal_transition_is_409_and_changes_nothing() {
    let (app, key, good) = world().await;
    let flaky = app.sandbox_account(&key, "flaky").await;
    faults(
        &app,
        &key,
        &flaky,
        json!({"fail_next": 10, "kind": "error"}),
    )
    .await;

    // Posts in every status. First those the worker must finish.
    let failed = draft(&app, &key, &[&flaky], "failed").await;
    let partial = draft(&app, &key, &[&good, &flaky], "partial").await;
    let published = draft(&app, &key, &[&good], "published").await;
    for id in [&failed, &partial, &published] {
        act_ok(&app, &key, id, "publish", None, "publishing").await;
    }
    drain(&app).await;
    let future = "2026-12-24T18:00:00Z";
    let draft_id = draft(&app, &key, &[&good], "draft").await;
    let scheduled = draft(&app, &key, &[&good], "scheduled").await;
    act_ok(
        &app,
        &key,
        &scheduled,
        "schedule",
        Some(json!({ "scheduled_at": future })),
        "scheduled",
    )
    .await;
    patch_workspace(&app, &key, json!({"require_approval": true})).await;
    let pending = draft(&app, &key, &[&good], "pending").await;
    act_ok(
        &app,
        &key,
        &pending,
        "schedule",
        Some(json!({ "scheduled_at": future })),
        "pending_approval",
    )
    .await;
    patch_workspace(&app, &key, json!({"require_approval": false})).await;
    // Publishing, and kept there: the worker does not run again.
    let publishing = draft(&app, &key, &[&good], "publishing").await;
    act_ok(&app, &key, &publishing, "publish", None, "publishing").await;

    let posts = [
        ("draft", &draft_id),
        ("pending_approval", &pending),
        ("scheduled", &scheduled),
        ("publishing", &publishing),
        ("published", &published),
        ("partially_published", &partial),
        ("failed", &failed),
    ];
    for (status, id) in posts {
        assert_eq!(status_of(&app, &key, id).await, status);
    }

    // Everything the state machine allows (each is exercised by the tests above and below).
    let legal: &[(&str, &[&str])] = &[
        ("draft", &["edit", "schedule", "publish", "delete"]),
        (
            "pending_approval",
            &["edit", "schedule", "cancel", "approve", "reject", "delete"],
        ),
        (
            "scheduled",
            &["edit", "schedule", "publish", "cancel", "delete"],
        ),
        ("publishing", &[]),
        ("published", &["delete"]),
        ("partially_published", &["retry", "delete"]),
        ("failed", &["retry", "delete"]),
    ];
    let actions = [
        "edit", "schedule", "publish", "cancel", "approve", "reject", "retry", "delete",
    ];
    let mut refused = 0;
    for (status, id) in posts {
        let allowed = legal.iter().find(|(s, _)| *s == status).unwrap().1;
        for action in actions {
            if allowed.contains(&action) {
                continue;
            }
            let before = app.posts_snapshot().await;
            let path = format!("/v1/posts/{id}");
            let r = match action {
                "edit" => {
                    app.patch(&path)
                        .key(&key)
                        .json(json!({"body": "changed"}))
                        .send()
                        .await
                }
                "delete" => app.delete(&path).key(&key).send().await,
                "schedule" => {
                    act(
                        &app,
                        &key,
                        id,
                        "schedule",
                        Some(json!({"scheduled_at": "2026-12-31T10:00:00Z"})),
                    )
                    .await
                }
                "approve" => act(&app, &key, id, "approve", Some(json!({}))).await,
                "reject" => {
                    act(
                        &app,
                        &key,
                        id,
                        "approve",
                        Some(json!({"reject": true, "reason": "no"})),
                    )
                    .await
                }
                verb => act(&app, &key, id, verb, None).await,
            };
            r.assert_error(409, "conflict");
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(&status.replace('_', " ")),
                "{status} {action}: {message}"
            );
            assert_eq!(
                app.posts_snapshot().await,
                before,
                "{status} {action} changed storage"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 7 * 8 - 20);
    for (status, id) in posts {
        assert_eq!(status_of(&app, &key, id).await, status, "still {status}");
    }
}

// ---- scheduling ----

async fn scheduling_checks_its_time_and_keeps_it_in_utc() {
    let (app, key, acct) = world().await;
    let id = draft(&app, &key, &[&acct], "Later.").await;
    let before = app.posts_snapshot().await;
    for (body, param) in [
        (
            json!({"scheduled_at": "2026-11-22T09:59:59Z"}),
            "scheduled_at",
        ),
        (json!({"scheduled_at": common::START}), "scheduled_at"),
        (
            json!({"scheduled_at": "2020-01-01T00:00:00Z"}),
            "scheduled_at",
        ),
        (json!({"scheduled_at": "tomorrow"}), "scheduled_at"),
        (json!({"scheduled_at": 1_800_000_000}), "scheduled_at"),
        (
            json!({"scheduled_at": "2026-11-23T10:00:00Z", "slot": "next"}),
            "scheduled_at",
        ),
        (json!({}), "scheduled_at"),
        (json!({"slot": "tomorrow"}), "slot"),
        (json!({"slot": "next"}), "slot"),
        (
            json!({"scheduled_at": "2026-11-23T10:00:00Z", "when": "soon"}),
            "when",
        ),
    ] {
        let r = act(&app, &key, &id, "schedule", Some(body.clone())).await;
        assert_param(&r, param);
        assert_eq!(app.posts_snapshot().await, before, "{body}");
    }

    // Given with an offset, kept and answered in UTC.
    let p = act_ok(
        &app,
        &key,
        &id,
        "schedule",
        Some(json!({"scheduled_at": "2026-11-23T10:00:00+01:00"})),
        "scheduled",
    )
    .await;
    assert_eq!(p["scheduled_at"], "2026-11-23T09:00:00Z");
    let stored = app.posts_in(&app.workspace.id).await;
    assert_eq!(stored[0].scheduled_at, Some(ms("2026-11-23T09:00:00Z")));
    assert_eq!(
        job_times(&app.jobs().await, &id),
        [ms("2026-11-23T09:00:00Z")]
    );
}

async fn a_scheduled_post_publishes_only_when_its_time_comes() {
    let (app, key, acct) = world().await;
    let id = draft(&app, &key, &[&acct], "On time.").await;
    let at = "2026-11-22T15:00:00Z";
    act_ok(
        &app,
        &key,
        &id,
        "schedule",
        Some(json!({ "scheduled_at": at })),
        "scheduled",
    )
    .await;

    assert_eq!(run(&app).await, [], "not due yet");
    app.clock.set(ts("2026-11-22T14:59:59.999Z"));
    assert_eq!(run(&app).await, [], "one millisecond early");
    assert_eq!(status_of(&app, &key, &id).await, "scheduled");
    assert!(timeline(&app, &key, &acct).await.is_empty());

    app.clock.set(ts(at));
    assert_eq!(run(&app).await, [Processed::Published]);
    let p = get_post(&app, &key, &id).await;
    assert_eq!(p["status"], "published");
    assert_eq!(p["published_at"], at);
    let tl = timeline(&app, &key, &acct).await;
    assert_eq!(tl.len(), 1);
    assert_eq!(tl[0]["body"], "On time.");
    assert_eq!(tl[0]["created_at"], at);
    assert_eq!(tl[0]["id"], p["targets"][0]["external_id"]);
}

async fn next_slot_uses_the_workspace_time_zone_and_the_queue_lists_in_time_order() {
    let (app, key, acct) = world().await;
    let ws = patch_workspace(&app, &key, json!({"timezone": "Europe/Berlin"})).await;
    assert_eq!(ws["timezone"], "Europe/Berlin");

    // No slots yet.
    let first = draft(&app, &key, &[&acct], "first slot").await;
    let before = app.posts_snapshot().await;
    let r = act(
        &app,
        &key,
        &first,
        "schedule",
        Some(json!({"slot": "next"})),
    )
    .await;
    assert_param(&r, "slot");
    assert_eq!(app.posts_snapshot().await, before);

    let r = app
        .call(axum::http::Method::PUT, "/v1/queue/slots")
        .key(&key)
        .json(json!({"slots": [
            {"day": "wednesday", "time": "18:30"},
            {"day": "monday", "time": "09:00"},
        ]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["timezone"], "Europe/Berlin");
    // Now is Sunday 2026-11-22 11:00 in Berlin (CET, UTC+1): the next slot is Monday 09:00.
    assert_eq!(r.body["next_free"], "2026-11-23T08:00:00Z");

    // A post scheduled by hand, far out, before the queue fills.
    let late = draft(&app, &key, &[&acct], "by hand, late").await;
    act_ok(
        &app,
        &key,
        &late,
        "schedule",
        Some(json!({"scheduled_at": "2026-12-01T12:00:00Z"})),
        "scheduled",
    )
    .await;

    let p = act_ok(
        &app,
        &key,
        &first,
        "schedule",
        Some(json!({"slot": "next"})),
        "scheduled",
    )
    .await;
    assert_eq!(
        p["scheduled_at"], "2026-11-23T08:00:00Z",
        "Monday 09:00 CET"
    );
    let second = draft(&app, &key, &[&acct], "second slot").await;
    let p = act_ok(
        &app,
        &key,
        &second,
        "schedule",
        Some(json!({"slot": "next"})),
        "scheduled",
    )
    .await;
    assert_eq!(
        p["scheduled_at"], "2026-11-25T17:30:00Z",
        "Wednesday 18:30 CET: the following slot"
    );
    let third = draft(&app, &key, &[&acct], "third slot").await;
    let p = act_ok(
        &app,
        &key,
        &third,
        "schedule",
        Some(json!({"slot": "next"})),
        "scheduled",
    )
    .await;
    assert_eq!(p["scheduled_at"], "2026-11-30T08:00:00Z", "next Monday");

    // One more by hand, soonest of all.
    let soon = draft(&app, &key, &[&acct], "by hand, soon").await;
    act_ok(
        &app,
        &key,
        &soon,
        "schedule",
        Some(json!({"scheduled_at": "2026-11-22T12:00:00Z"})),
        "scheduled",
    )
    .await;
    // A draft is not in the queue.
    draft(&app, &key, &[&acct], "not queued").await;

    let r = app.get("/v1/queue").key(&key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let order: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            soon.as_str(),
            first.as_str(),
            second.as_str(),
            third.as_str(),
            late.as_str()
        ]
    );
    assert_eq!(r.body["has_more"], false);

    // Monday 09:00 Berlin comes: the two due posts go out, the rest wait.
    app.clock.set(ts("2026-11-23T08:00:00Z"));
    assert_eq!(
        run(&app).await,
        [Processed::Published, Processed::Published]
    );
    assert_eq!(status_of(&app, &key, &soon).await, "published");
    assert_eq!(status_of(&app, &key, &first).await, "published");
    assert_eq!(status_of(&app, &key, &second).await, "scheduled");
    let bodies: Vec<Value> = timeline(&app, &key, &acct)
        .await
        .iter()
        .map(|p| p["body"].clone())
        .collect();
    assert_eq!(bodies, [json!("by hand, soon"), json!("first slot")]);
}

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

// ---- approvals ----

async fn approvals_gate_scheduling_and_publishing() {
    let (app, admin, acct) = world().await;
    let ws = patch_workspace(&app, &admin, json!({"require_approval": true})).await;
    assert_eq!(ws["require_approval"], true);
    let writer = app
        .key_with(&[Scope::PostsRead, Scope::PostsWrite, Scope::PostsPublish])
        .await;
    let (approver, approver_row) = app
        .key(KeySpec {
            scopes: vec![Scope::PostsRead, Scope::PostsApprove],
            ..KeySpec::default()
        })
        .await;

    // Scheduling waits for approval: no job yet, but it is in the queue.
    let at = "2026-11-22T18:00:00Z";
    let p1 = draft(&app, &writer, &[&acct], "needs a yes").await;
    let p = act_ok(
        &app,
        &writer,
        &p1,
        "schedule",
        Some(json!({ "scheduled_at": at })),
        "pending_approval",
    )
    .await;
    assert_eq!(p["scheduled_at"], at);
    assert!(app.jobs().await.is_empty());
    let q = app.get("/v1/queue").key(&admin).send().await;
    assert_eq!(q.body["data"][0]["id"], p1.as_str());
    assert_eq!(q.body["data"][0]["status"], "pending_approval");

    // A pending post may still be edited.
    let r = app
        .patch(&format!("/v1/posts/{p1}"))
        .key(&writer)
        .json(json!({"body": "needs a yes, please"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "pending_approval");

    // Approving needs posts:approve.
    let before = app.posts_snapshot().await;
    let r = act(&app, &writer, &p1, "approve", Some(json!({}))).await;
    r.assert_error(403, "forbidden_scope");
    assert!(r.text.contains("posts:approve"), "{}", r.text);
    let r = act(
        &app,
        &writer,
        &p1,
        "approve",
        Some(json!({"reject": true, "reason": "x"})),
    )
    .await;
    r.assert_error(403, "forbidden_scope");
    assert_eq!(app.posts_snapshot().await, before);

    // Approved with a future time: scheduled, with its job.
    let p = act_ok(
        &app,
        &approver,
        &p1,
        "approve",
        Some(json!({})),
        "scheduled",
    )
    .await;
    assert_eq!(p["scheduled_at"], at);
    assert_eq!(p["review"]["decision"], "approved");
    assert_eq!(p["review"]["by"], approver_row.id.as_str());
    assert_eq!(job_times(&app.jobs().await, &p1), [ms(at)]);
    app.clock.set(ts(at));
    assert_eq!(run(&app).await, [Processed::Published]);
    assert_eq!(status_of(&app, &admin, &p1).await, "published");

    // Publish now waits too; approved, it goes out at once.
    let p2 = draft(&app, &writer, &[&acct], "now, if allowed").await;
    let p = act_ok(&app, &writer, &p2, "publish", None, "pending_approval").await;
    assert_eq!(p["scheduled_at"], Value::Null);
    assert!(app.jobs().await.is_empty());
    // In the queue it comes before anything with a time, on either backend.
    let p3 = draft(&app, &writer, &[&acct], "later, if allowed").await;
    let later = Some(json!({"scheduled_at": "2026-11-23T09:00:00Z"}));
    act_ok(&app, &writer, &p3, "schedule", later, "pending_approval").await;
    let q = app.get("/v1/queue").key(&admin).send().await;
    let ids: Vec<&str> = q.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [p2.as_str(), p3.as_str()], "{}", q.text);
    act_ok(&app, &writer, &p3, "cancel", None, "draft").await;
    act_ok(
        &app,
        &approver,
        &p2,
        "approve",
        Some(json!({})),
        "publishing",
    )
    .await;
    assert_eq!(run(&app).await, [Processed::Published]);
    assert_eq!(status_of(&app, &admin, &p2).await, "published");

    // A post whose time passed while it waited goes out at once when approved.
    let p3 = draft(&app, &writer, &[&acct], "late approval").await;
    act_ok(
        &app,
        &writer,
        &p3,
        "schedule",
        Some(json!({"scheduled_at": "2026-11-22T19:00:00Z"})),
        "pending_approval",
    )
    .await;
    app.clock.set(ts("2026-11-22T20:00:00Z"));
    act_ok(
        &app,
        &approver,
        &p3,
        "approve",
        Some(json!({})),
        "publishing",
    )
    .await;
    assert_eq!(run(&app).await, [Processed::Published]);

    // Rejected with a reason: back to draft, the review kept, nothing queued.
    let p4 = draft(&app, &writer, &[&acct], "off brand").await;
    act_ok(
        &app,
        &writer,
        &p4,
        "schedule",
        Some(json!({"scheduled_at": "2026-11-23T10:00:00Z"})),
        "pending_approval",
    )
    .await;
    let r = act(
        &app,
        &approver,
        &p4,
        "approve",
        Some(json!({"reject": true, "reason": "x".repeat(1001)})),
    )
    .await;
    assert_param(&r, "reason");
    let p = act_ok(
        &app,
        &approver,
        &p4,
        "approve",
        Some(json!({"reject": true, "reason": "Off brand."})),
        "draft",
    )
    .await;
    assert_eq!(p["review"]["decision"], "rejected");
    assert_eq!(p["review"]["reason"], "Off brand.");
    assert_eq!(p["review"]["by"], approver_row.id.as_str());
    assert_eq!(get_post(&app, &admin, &p4).await["review"], p["review"]);
    assert!(app.jobs().await.is_empty());
    assert_eq!(status_of(&app, &admin, &p4).await, "draft");

    // Cancelled while waiting: back to draft.
    let p5 = draft(&app, &writer, &[&acct], "never mind").await;
    act_ok(&app, &writer, &p5, "publish", None, "pending_approval").await;
    act_ok(&app, &writer, &p5, "cancel", None, "draft").await;
    assert!(app.jobs().await.is_empty());
    assert_eq!(timeline(&app, &admin, &acct).await.len(), 3);
}

// ---- batches ----

fn item(acct: &str, text: &str) -> Value {
    json!({"body": text, "account_ids": [acct]})
}

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
            "posts[1].media_ids".to_owned(),
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

// ---- plans, quotas and test mode ----

async fn the_free_plan_cannot_schedule_or_publish() {
    let app = TestApp::with_plan("free").await;
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "brand").await;
    let id = draft(&app, &key, &[&acct], "Free.").await;
    let before = app.posts_snapshot().await;
    for (verb, body) in [
        ("publish", None),
        (
            "schedule",
            Some(json!({"scheduled_at": "2026-11-23T10:00:00Z"})),
        ),
    ] {
        let r = act(&app, &key, &id, verb, body).await;
        r.assert_error(402, "payment_required");
        assert!(r.text.contains("paid plan"), "{}", r.text);
    }
    let r = app
        .post("/v1/batches")
        .key(&key)
        .json(json!({"posts": [{"body": "x", "account_ids": [acct],
                                 "scheduled_at": "2026-11-23T10:00:00Z"}]}))
        .send()
        .await;
    r.assert_error(402, "payment_required");
    assert_eq!(app.posts_snapshot().await, before);
    assert_eq!(status_of(&app, &key, &id).await, "draft");
}

async fn a_used_up_posts_quota_is_402_and_test_mode_does_not_count() {
    let mut config = ApiConfig::default();
    config.plans.get_mut("pro").unwrap().posts_per_month = Some(1);
    let app = TestApp::with_config(config, "pro").await;
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "brand").await;
    let (test_key, _) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await;
    let test_acct = app.sandbox_account(&test_key, "brand-test").await;

    // Test-mode publishing, before and after the quota is used up, never counts.
    let t1 = draft(&app, &test_key, &[&test_acct], "test one").await;
    act_ok(&app, &test_key, &t1, "publish", None, "publishing").await;
    assert_eq!(run(&app).await, [Processed::Published]);
    let period = crier_api::AppState::period_of(app.clock.now_ms_value());
    let used = |u: std::collections::HashMap<String, i64>| {
        u.get(crier_store::METRIC_POSTS_PUBLISHED)
            .copied()
            .unwrap_or(0)
    };
    let usage = app
        .store
        .workspace_usage(&app.workspace.id, &period)
        .await
        .unwrap();
    assert_eq!(used(usage.into_iter().collect()), 0);

    // A live post that fails for good uses nothing up.
    let p0 = draft(&app, &key, &[&acct], "live, failing").await;
    faults(
        &app,
        &key,
        &acct,
        json!({"fail_next": 100, "kind": "error"}),
    )
    .await;
    act_ok(&app, &key, &p0, "publish", None, "publishing").await;
    assert_eq!(drain(&app).await.last(), Some(&Processed::Failed));
    faults(&app, &key, &acct, json!({"fail_next": 0, "kind": "error"})).await;

    let p1 = draft(&app, &key, &[&acct], "live one").await;
    let p2 = draft(&app, &key, &[&acct], "live two").await;
    act_ok(&app, &key, &p1, "publish", None, "publishing").await;
    assert_eq!(run(&app).await, [Processed::Published]);
    // Now the quota is used up: a retry of the failed post would go past it.
    let before = app.posts_snapshot().await;
    act(&app, &key, &p0, "retry", None)
        .await
        .assert_error(402, "quota_exceeded");
    assert_eq!(app.posts_snapshot().await, before);

    let before = app.posts_snapshot().await;
    let r = act(&app, &key, &p2, "publish", None).await;
    r.assert_error(402, "quota_exceeded");
    let r = act(
        &app,
        &key,
        &p2,
        "schedule",
        Some(json!({"scheduled_at": "2026-11-23T10:00:00Z"})),
    )
    .await;
    r.assert_error(402, "quota_exceeded");
    // A batch cannot schedule past the quota either, and is refused whole.
    let r = app
        .post("/v1/batches")
        .key(&key)
        .json(json!({"posts": [
            item(&acct, "a draft is fine"),
            {"body": "scheduled", "account_ids": [acct], "scheduled_at": "2026-11-23T10:00:00Z"},
        ]}))
        .send()
        .await;
    r.assert_error(402, "quota_exceeded");
    assert_eq!(app.posts_snapshot().await, before);
    assert_eq!(status_of(&app, &key, &p2).await, "draft");
    // Drafts spend nothing.
    let r = app
        .post("/v1/batches")
        .key(&key)
        .json(json!({"posts": [item(&acct, "a draft is fine")]}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let t2 = draft(&app, &test_key, &[&test_acct], "test two").await;
    act_ok(&app, &test_key, &t2, "publish", None, "publishing").await;
    assert_eq!(run(&app).await, [Processed::Published]);

    let ws = app.get("/v1/workspace").key(&key).send().await;
    assert_eq!(ws.status, 200, "{}", ws.text);
    assert_eq!(ws.body["usage"]["posts_published"], 1, "{}", ws.text);
    assert_eq!(ws.body["plan"]["posts_per_month"], 1);
}

async fn scheduled_posts_hold_their_place_in_the_quota() {
    let mut config = ApiConfig::default();
    config.plans.get_mut("pro").unwrap().posts_per_month = Some(3);
    let app = TestApp::with_config(config, "pro").await;
    let key = app.admin_key().await;
    let a = app.sandbox_account(&key, "a").await;
    let b = app.sandbox_account(&key, "b").await;
    let at = |when: &str| Some(json!({ "scheduled_at": when }));
    // Now is 2026-11-22T10:00Z: the quota counts per UTC month.
    let nov = "2026-11-25T10:00:00Z";
    let dec = "2026-12-02T10:00:00Z";

    let p1 = draft(&app, &key, &[&a, &b], "two targets").await;
    act_ok(&app, &key, &p1, "schedule", at(nov), "scheduled").await;
    let p2 = draft(&app, &key, &[&a, &b], "two more").await;
    let before = app.posts_snapshot().await;
    let r = act(&app, &key, &p2, "schedule", at(nov)).await;
    r.assert_error(402, "quota_exceeded");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2026-11: 0 are published and 2 scheduled"),
        "{}",
        r.text
    );
    let r = act(&app, &key, &p2, "publish", None).await;
    r.assert_error(402, "quota_exceeded");
    assert_eq!(app.posts_snapshot().await, before, "nothing changed");

    // The third place is free; rescheduling p1 within the month does not count it twice.
    let p3 = draft(&app, &key, &[&a], "one target").await;
    act_ok(&app, &key, &p3, "schedule", at(nov), "scheduled").await;
    act_ok(
        &app,
        &key,
        &p1,
        "schedule",
        at("2026-11-28T10:00:00Z"),
        "scheduled",
    )
    .await;
    // Editing a scheduled post to more accounts needs their places too.
    let edit = |id: &str, accounts: Value| {
        app.patch(&format!("/v1/posts/{id}"))
            .key(&key)
            .json(json!({ "account_ids": accounts }))
            .send()
    };
    let before = app.posts_snapshot().await;
    edit(&p3, json!([a, b]))
        .await
        .assert_error(402, "quota_exceeded");
    assert_eq!(app.posts_snapshot().await, before, "nothing changed");
    let r = edit(&p1, json!([a])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = edit(&p3, json!([a, b])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // December has room of its own.
    act_ok(&app, &key, &p2, "schedule", at(dec), "scheduled").await;
    let r = app
        .post("/v1/batches")
        .key(&key)
        .json(json!({"posts": [
            {"body": "dec one", "account_ids": [a], "scheduled_at": dec},
            {"body": "dec two", "account_ids": [b], "scheduled_at": dec},
        ]}))
        .send()
        .await;
    r.assert_error(402, "quota_exceeded");
    let r = app
        .post("/v1/batches")
        .key(&key)
        .json(json!({"posts": [{"body": "dec one", "account_ids": [a], "scheduled_at": dec}]}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Cancelling gives the place back; publishing keeps it (published instead of scheduled).
    act_ok(&app, &key, &p3, "cancel", None, "draft").await;
    let p4 = draft(&app, &key, &[&a], "the freed place").await;
    act_ok(&app, &key, &p4, "publish", None, "publishing").await;
    assert_eq!(run(&app).await, [Processed::Published]);
    let r = act(&app, &key, &p3, "schedule", at(nov)).await;
    r.assert_error(402, "quota_exceeded");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 are published and 1 scheduled, so 2 more"),
        "{}",
        r.text
    );
}

async fn connecting_checks_the_handle_the_platform_and_the_plan() {
    let mut config = ApiConfig::default();
    config.plans.get_mut("pro").unwrap().connected_accounts = Some(2);
    let app = TestApp::with_config(config, "pro").await;
    let key = app.admin_key().await;
    let connect = |platform: &str, body: Value| {
        app.post(&format!("/v1/connect/{platform}"))
            .key(&key)
            .json(body)
            .send()
    };
    let accounts = || async {
        app.store
            .list_accounts(&app.workspace.id, None, 50, 0)
            .await
            .unwrap()
            .items
    };
    for handle in [
        json!(""),
        json!("   "),
        json!("x".repeat(51)),
        json!("a b"),
        json!("é"),
    ] {
        let r = connect("sandbox", json!({ "handle": handle })).await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["param"], "handle", "{}", r.text);
    }
    let r = connect("sandbox", json!({ "handle": 7 })).await;
    r.assert_error(400, "invalid_request");
    connect("myspace", json!({ "handle": "brand" }))
        .await
        .assert_error(404, "not_found");
    assert!(accounts().await.is_empty(), "nothing was connected");

    let first = app.sandbox_account(&key, "one").await;
    app.sandbox_account(&key, "two").await;
    let r = connect("sandbox", json!({ "handle": "three" })).await;
    r.assert_error(402, "quota_exceeded");
    assert_eq!(accounts().await.len(), 2);
    // A disconnected account frees its place.
    let r = app
        .delete(&format!("/v1/accounts/{first}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.sandbox_account(&key, "three").await;
}

async fn bad_faults_slots_and_filters_are_refused_and_change_nothing() {
    let (app, key, acct) = world().await;
    let faults_at = format!("/v1/accounts/{acct}/faults");
    let stored_faults = || app.raw_texts("SELECT account_id FROM sandbox_faults");
    for (body, param) in [
        (json!({"fail_next": 1001, "kind": "error"}), "fail_next"),
        (json!({"fail_next": -1, "kind": "error"}), "fail_next"),
        (json!({"fail_next": "3", "kind": "error"}), "fail_next"),
        (json!({"fail_next": 1, "kind": "bogus"}), "kind"),
        (
            json!({"fail_next": 1, "kind": "error", "retry_after_seconds": 86_401}),
            "retry_after_seconds",
        ),
        (
            json!({"fail_next": 1, "kind": "error", "colour": "red"}),
            "colour",
        ),
    ] {
        let r = app.post(&faults_at).key(&key).json(body).send().await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["param"], param, "{}", r.text);
    }
    let r = app
        .post(&faults_at)
        .key(&key)
        .raw("{not json")
        .header("content-type", "application/json")
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert!(stored_faults().await.is_empty(), "no fault was set");

    let put_slots = |body: Value| {
        app.call(axum::http::Method::PUT, "/v1/queue/slots")
            .key(&key)
            .json(body)
            .send()
    };
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"day": "monday", "time": "09:00"}))
        .collect();
    for (body, param) in [
        (
            json!({"slots": [{"day": "funday", "time": "09:00"}]}),
            "slots[0]",
        ),
        (
            json!({"slots": [{"day": "monday", "time": "09:00"}, {"day": "monday", "time": "25:00"}]}),
            "slots[1]",
        ),
        (
            json!({"slots": [{"day": "monday", "time": "9am"}]}),
            "slots[0]",
        ),
        (json!({ "slots": many }), "slots"),
        (json!({"slots": {}}), "slots"),
    ] {
        let r = put_slots(body).await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["param"], param, "{}", r.text);
    }
    let r = app.get("/v1/queue/slots").key(&key).send().await;
    assert_eq!(r.body["slots"], json!([]), "no slot was stored: {}", r.text);

    for (query, param) in [
        ("status=bogus", "status"),
        ("account_id=x", "account_id"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
    ] {
        let r = app
            .get(&format!("/v1/posts?{query}"))
            .key(&key)
            .send()
            .await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["param"], param, "{query}: {}", r.text);
    }
    for (query, param) in [
        ("from=2026-11-22T10:00:00Z&to=2026-11-01T00:00:00Z", "from"),
        ("to=soon", "to"),
    ] {
        let r = app
            .get(&format!("/v1/accounts/analytics?{query}"))
            .key(&key)
            .send()
            .await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["param"], param, "{query}: {}", r.text);
    }
}

async fn test_mode_keys_see_only_test_mode_posts_and_accounts() {
    let (app, live, live_acct) = world().await;
    let (test, _) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await;
    let test_acct = app.sandbox_account(&test, "brand-test").await;

    let accounts = app.get("/v1/accounts").key(&test).send().await;
    assert_eq!(accounts.status, 200, "{}", accounts.text);
    assert_eq!(accounts.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(accounts.body["data"][0]["id"], test_acct.as_str());
    assert_eq!(accounts.body["data"][0]["livemode"], false);
    let accounts = app.get("/v1/accounts").key(&live).send().await;
    assert_eq!(accounts.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(accounts.body["data"][0]["id"], live_acct.as_str());
    assert_eq!(accounts.body["data"][0]["livemode"], true);

    let test_post = create(
        &app,
        &test,
        json!({"body": "test", "account_ids": [test_acct]}),
    )
    .await;
    assert_eq!(test_post["livemode"], false);
    let test_id = test_post["id"].as_str().unwrap();
    let live_id = draft(&app, &live, &[&live_acct], "live").await;

    // Each mode's accounts are unknown to the other's posts.
    let before = app.posts_snapshot().await;
    let r = app
        .post("/v1/posts")
        .key(&test)
        .json(json!({"body": "x", "account_ids": [live_acct]}))
        .send()
        .await;
    assert_param(&r, "account_ids");
    let r = app
        .post("/v1/posts")
        .key(&live)
        .json(json!({"body": "x", "account_ids": [test_acct]}))
        .send()
        .await;
    assert_param(&r, "account_ids");

    // Each mode's posts and accounts do not exist for the other.
    for (key, post, acct) in [
        (&test, live_id.as_str(), live_acct.as_str()),
        (&live, test_id, test_acct.as_str()),
    ] {
        for r in [
            app.get(&format!("/v1/posts/{post}")).key(key).send().await,
            app.patch(&format!("/v1/posts/{post}"))
                .key(key)
                .json(json!({"body": "y"}))
                .send()
                .await,
            app.delete(&format!("/v1/posts/{post}"))
                .key(key)
                .send()
                .await,
            act(&app, key, post, "publish", None).await,
            app.get(&format!("/v1/accounts/{acct}/timeline"))
                .key(key)
                .send()
                .await,
            app.delete(&format!("/v1/accounts/{acct}"))
                .key(key)
                .send()
                .await,
        ] {
            r.assert_error(404, "not_found");
        }
    }
    assert_eq!(app.posts_snapshot().await, before);
    let listed = app.get("/v1/posts").key(&test).send().await;
    let ids: Vec<&Value> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(ids, [&json!(test_id)]);

    // Publishing in test mode reaches the sandbox but spends no quota.
    act_ok(&app, &test, test_id, "publish", None, "publishing").await;
    assert_eq!(run(&app).await, [Processed::Published]);
    assert_eq!(get_post(&app, &test, test_id).await["status"], "published");
    assert_eq!(timeline(&app, &test, &test_acct).await.len(), 1);
    let ws = app.get("/v1/workspace").key(&live).send().await;
    assert_eq!(ws.body["usage"]["posts_published"], 0, "{}", ws.text);
}

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
            "media_ids",
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

// ---- analytics ----

async fn analytics_show_the_sandbox_simulated_metrics() {
    use crier_networks::sandbox::simulated_metrics;
    let (app, key, a) = world().await;
    let b = app.sandbox_account(&key, "second").await;
    let p1 = draft(&app, &key, &[&a, &b], "to both").await;
    let p2 = draft(&app, &key, &[&a], "to a").await;

    // Before publishing: no published targets, nothing to show.
    let r = app
        .get(&format!("/v1/posts/{p1}/analytics"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"], json!([]));

    for id in [&p1, &p2] {
        act_ok(&app, &key, id, "publish", None, "publishing").await;
    }
    assert_eq!(run(&app).await.len(), 3);
    // Published, not yet collected: the targets show with zeros and no collection time.
    let r = app
        .get(&format!("/v1/posts/{p1}/analytics"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["data"][0]["collected_at"], Value::Null);
    assert_eq!(r.body["data"][0]["impressions"], 0);

    assert_eq!(app.publisher().collect_metrics().await.unwrap(), 3);
    // Collected again at once: nothing is stale.
    assert_eq!(app.publisher().collect_metrics().await.unwrap(), 0);

    let post = get_post(&app, &key, &p1).await;
    let r = app
        .get(&format!("/v1/posts/{p1}/analytics"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["post_id"], p1.as_str());
    assert_eq!(r.body["object"], "post_analytics");
    let data = r.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let mut expected = std::collections::BTreeMap::new();
    for (m, t) in data.iter().zip(post["targets"].as_array().unwrap()) {
        assert_eq!(m["account_id"], t["account_id"]);
        assert_eq!(m["external_id"], t["external_id"]);
        assert_eq!(m["url"], t["url"]);
        assert_eq!(m["platform"], "sandbox");
        assert_eq!(m["collected_at"], common::START);
        let want = simulated_metrics(t["external_id"].as_str().unwrap(), 0);
        assert!(want.impressions > 0);
        assert_eq!(m["likes"], want.likes);
        assert_eq!(m["reposts"], want.reposts);
        assert_eq!(m["replies"], want.replies);
        assert_eq!(m["impressions"], want.impressions);
        expected.insert(t["account_id"].as_str().unwrap().to_owned(), want);
    }
    let p2_ext = get_post(&app, &key, &p2).await["targets"][0]["external_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p2_metrics = simulated_metrics(&p2_ext, 0);

    // Per account, summed over the period's posts.
    app.clock.advance(Duration::from_secs(60));
    let r = app.get("/v1/accounts/analytics").key(&key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["object"], "account_analytics");
    let rows = r.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", r.text);
    let row = |acct: &str| rows.iter().find(|r| r["account_id"] == acct).unwrap();
    let ra = row(&a);
    assert_eq!(ra["posts"], 2);
    assert_eq!(ra["handle"], "brand");
    assert_eq!(ra["likes"], expected[&a].likes + p2_metrics.likes);
    assert_eq!(
        ra["impressions"],
        expected[&a].impressions + p2_metrics.impressions
    );
    assert_eq!(ra["reposts"], expected[&a].reposts + p2_metrics.reposts);
    assert_eq!(ra["replies"], expected[&a].replies + p2_metrics.replies);
    let rb = row(&b);
    assert_eq!(rb["posts"], 1);
    assert_eq!(rb["likes"], expected[&b].likes);
    assert_eq!(rb["impressions"], expected[&b].impressions);

    // A period before the posts shows nothing.
    let r = app
        .get("/v1/accounts/analytics?from=2026-11-01T00:00:00Z&to=2026-11-22T09:00:00Z")
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"], json!([]));

    // Two hours later the metrics have grown, deterministically.
    app.clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(app.publisher().collect_metrics().await.unwrap(), 3);
    let r = app
        .get(&format!("/v1/posts/{p2}/analytics"))
        .key(&key)
        .send()
        .await;
    let grown = simulated_metrics(&p2_ext, 2);
    assert!(grown.impressions > p2_metrics.impressions);
    assert_eq!(r.body["data"][0]["impressions"], grown.impressions);
    assert_eq!(r.body["data"][0]["likes"], grown.likes);

    // Both need analytics:read.
    let reader = app.key_with(&[Scope::PostsRead, Scope::AccountsRead]).await;
    app.get(&format!("/v1/posts/{p1}/analytics"))
        .key(&reader)
        .send()
        .await
        .assert_error(403, "forbidden_scope");
    app.get("/v1/accounts/analytics")
        .key(&reader)
        .send()
        .await
        .assert_error(403, "forbidden_scope");
    let analyst = app.key_with(&[Scope::AnalyticsRead]).await;
    let r = app
        .get(&format!("/v1/posts/{p1}/analytics"))
        .key(&analyst)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

// ---- the sandbox's faults ----

async fn a_rate_limit_pushes_the_next_run_past_retry_after() {
    let (app, key, acct) = world().await;
    faults(
        &app,
        &key,
        &acct,
        json!({"fail_next": 1, "kind": "rate_limit", "retry_after_seconds": 120}),
    )
    .await;
    let id = draft(&app, &key, &[&acct], "Patient.").await;
    act_ok(&app, &key, &id, "publish", None, "publishing").await;
    let now = app.clock.now_ms_value();
    let out = run(&app).await;
    let [Processed::RetryAt(at)] = out.as_slice() else {
        panic!("{out:?}");
    };
    assert!(*at - now >= 120_000, "next run {} ms later", at - now);
    assert_eq!(job_times(&app.jobs().await, &id), [*at]);

    let p = get_post(&app, &key, &id).await;
    assert_eq!(p["status"], "publishing");
    let t = &p["targets"][0];
    assert_eq!(t["status"], "pending");
    assert_eq!(t["error"]["code"], "rate_limited");
    assert_eq!(t["attempts"], 1);
    assert!(timeline(&app, &key, &acct).await.is_empty());

    // Not before its time.
    assert_eq!(run(&app).await, []);
    app.clock.set(Timestamp::from_millisecond(*at - 1).unwrap());
    assert_eq!(run(&app).await, []);
    app.clock.set(Timestamp::from_millisecond(*at).unwrap());
    assert_eq!(run(&app).await, [Processed::Published]);
    let p = get_post(&app, &key, &id).await;
    assert_eq!(p["status"], "published");
    assert_eq!(p["targets"][0]["error"], Value::Null);
    assert_eq!(p["targets"][0]["attempts"], 2);
    assert_eq!(timeline(&app, &key, &acct).await.len(), 1);
}

async fn a_lost_answer_is_reconciled_without_a_duplicate() {
    let (app, key, acct) = world().await;
    faults(
        &app,
        &key,
        &acct,
        json!({"fail_next": 1, "kind": "timeout"}),
    )
    .await;
    let id = draft(&app, &key, &[&acct], "Exactly once.").await;
    act_ok(&app, &key, &id, "publish", None, "publishing").await;
    let out = run(&app).await;
    let [Processed::RetryAt(at)] = out.as_slice() else {
        panic!("{out:?}");
    };
    // It landed; crier does not know yet.
    let tl = timeline(&app, &key, &acct).await;
    assert_eq!(tl.len(), 1);
    let p = get_post(&app, &key, &id).await;
    assert_eq!(p["status"], "publishing");
    assert_eq!(p["targets"][0]["status"], "pending");
    assert_eq!(p["targets"][0]["error"]["code"], "timeout");
    assert_eq!(p["targets"][0]["external_id"], Value::Null);

    app.clock.set(Timestamp::from_millisecond(*at).unwrap());
    assert_eq!(run(&app).await, [Processed::Published]);
    let after = timeline(&app, &key, &acct).await;
    assert_eq!(after.len(), 1, "exactly one copy: {after:?}");
    assert_eq!(after[0]["id"], tl[0]["id"]);
    let p = get_post(&app, &key, &id).await;
    assert_eq!(p["status"], "published");
    assert_eq!(p["targets"][0]["external_id"], tl[0]["id"]);
    assert_eq!(p["targets"][0]["attempts"], 1, "found, not sent again");
    assert_eq!(p["targets"][0]["error"], Value::Null);
    assert_eq!(drain(&app).await, []);
}

async fn after_max_attempts_the_target_fails_with_its_reason() {
    let (app, key, acct) = world().await;
    faults(&app, &key, &acct, json!({"fail_next": 5, "kind": "error"})).await;
    let id = draft(&app, &key, &[&acct], "Doomed.").await;
    act_ok(&app, &key, &id, "publish", None, "publishing").await;

    let mut delays = Vec::new();
    let mut out = Vec::new();
    for _ in 0..10 {
        let now = app.clock.now_ms_value();
        let step = run(&app).await;
        assert_eq!(step.len(), 1, "{step:?}");
        out.push(step[0].clone());
        match step[0] {
            Processed::RetryAt(at) => {
                delays.push(at - now);
                let p = get_post(&app, &key, &id).await;
                assert_eq!(p["status"], "publishing");
                assert_eq!(p["targets"][0]["status"], "pending");
                assert_eq!(p["targets"][0]["error"]["code"], "network_error");
                app.clock.set(Timestamp::from_millisecond(at).unwrap());
            }
            _ => break,
        }
    }
    assert_eq!(out.len(), 5, "{out:?}");
    assert_eq!(out[4], Processed::Failed);
    // Backoff from 10 s, doubling, with ±25% jitter.
    assert_eq!(delays.len(), 4);
    for (i, d) in delays.iter().enumerate() {
        let base = 10_000i64 << i;
        assert!(
            (base * 3 / 4..=base * 5 / 4).contains(d),
            "retry {i}: {d} ms"
        );
    }

    let p = get_post(&app, &key, &id).await;
    assert_eq!(p["status"], "failed");
    let t = &p["targets"][0];
    assert_eq!(t["status"], "failed");
    assert_eq!(t["attempts"], 5);
    assert_eq!(t["error"]["code"], "network_error");
    let message = t["error"]["message"].as_str().unwrap();
    assert!(message.contains("injected error"), "{message}");
    assert!(message.contains("5 attempts"), "{message}");
    assert!(app.jobs().await.is_empty());
    assert!(timeline(&app, &key, &acct).await.is_empty());
}

both!(
    tests: the_seed_example_creates_a_draft_with_a_pending_target_per_account,
    a_draft_is_scheduled_rescheduled_edited_cancelled_edited_and_deleted,
    publish_now_goes_through_publishing_to_published,
    retry_publishes_again_to_the_accounts_that_failed_only,
    a_retry_gets_a_fresh_attempt_budget,
    every_illegal_transition_is_409_and_changes_nothing,
    scheduling_checks_its_time_and_keeps_it_in_utc,
    a_scheduled_post_publishes_only_when_its_time_comes,
    next_slot_uses_the_workspace_time_zone_and_the_queue_lists_in_time_order,
    a_thread_publishes_as_a_reply_chain,
    overrides_give_one_account_other_text,
    length_rules_are_enforced_when_scheduling_or_publishing,
    approvals_gate_scheduling_and_publishing,
    a_batch_creates_drafts_all_or_nothing,
    scheduled_batch_items_need_posts_publish_and_go_out_when_due,
    replayed_creates_and_batches_create_nothing_twice,
    the_free_plan_cannot_schedule_or_publish,
    a_used_up_posts_quota_is_402_and_test_mode_does_not_count,
    scheduled_posts_hold_their_place_in_the_quota,
    connecting_checks_the_handle_the_platform_and_the_plan,
    bad_faults_slots_and_filters_are_refused_and_change_nothing,
    test_mode_keys_see_only_test_mode_posts_and_accounts,
    another_workspaces_posts_and_accounts_are_404_everywhere,
    bad_input_is_refused_and_changes_nothing,
    analytics_show_the_sandbox_simulated_metrics,
    a_rate_limit_pushes_the_next_run_past_retry_after,
    a_lost_answer_is_reconciled_without_a_duplicate,
    after_max_attempts_the_target_fails_with_its_reason,
);
