//! Posts over HTTP, their life: the seed example, every legal transition of the state
//! machine and every illegal one (409, storage unchanged).
//!
//! The publishing worker never runs on its own here: `run_due` drives it, with the manual
//! clock, so every step is deterministic; the helpers are in `common/posts.rs`.

mod common;

use std::time::Duration;

use common::posts::{
    act, act_ok, create, draft, drain, faults, get_post, job_times, ms, patch_workspace,
    post_count, run, status_of, timeline, ts, world,
};
use common::{NowMs, both};
use crier_worker::Processed;
use serde_json::{Value, json};

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
    assert_eq!(f["targets"][0]["error"]["code"], "network_unavailable");
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

both!(
    tests: the_seed_example_creates_a_draft_with_a_pending_target_per_account,
    a_draft_is_scheduled_rescheduled_edited_cancelled_edited_and_deleted,
    publish_now_goes_through_publishing_to_published,
    retry_publishes_again_to_the_accounts_that_failed_only,
    a_retry_gets_a_fresh_attempt_budget,
    every_illegal_transition_is_409_and_changes_nothing,
);
