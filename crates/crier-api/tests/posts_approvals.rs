//! Posts over HTTP, approvals: what needs approving gates scheduling and publishing.
//!
//! The publishing worker never runs on its own here: `run_due` drives it, with the manual
//! clock, so every step is deterministic; the helpers are in `common/posts.rs`.

mod common;

use common::posts::{
    act, act_ok, assert_param, draft, get_post, job_times, ms, patch_workspace, run, status_of,
    timeline, ts, world,
};
use common::{KeySpec, both};
use crier_core::Scope;
use crier_worker::Processed;
use serde_json::{Value, json};

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

both!(
    tests: approvals_gate_scheduling_and_publishing,
);
