//! Posts over HTTP, scheduling: times checked and kept in UTC, due posts going out, the
//! queue, its slots and the workspace time zone.
//!
//! The publishing worker never runs on its own here: `run_due` drives it, with the manual
//! clock, so every step is deterministic; the helpers are in `common/posts.rs`.

mod common;

use common::both;
use common::posts::{
    act, act_ok, assert_param, draft, get_post, job_times, ms, patch_workspace, run, status_of,
    timeline, ts, world,
};
use crier_worker::Processed;
use serde_json::{Value, json};

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

both!(
    tests: scheduling_checks_its_time_and_keeps_it_in_utc,
    a_scheduled_post_publishes_only_when_its_time_comes,
    next_slot_uses_the_workspace_time_zone_and_the_queue_lists_in_time_order,
);
