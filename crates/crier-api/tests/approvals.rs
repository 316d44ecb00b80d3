//! Approvals cannot be bypassed: in a workspace that requires approval, what goes out is what
//! an approver approved. An edit of an approved, scheduled post sends it back to
//! `pending_approval` (its job is withdrawn, `post.approval_requested` is emitted, the old
//! approval is cleared), and only a new approval schedules it again.
mod common;

use common::{KeySpec, TestApp, both};
use crier_core::Scope;
use serde_json::{Value, json};

async fn send(app: &TestApp, key: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let call = match method {
        "POST" => app.post(path),
        "PATCH" => app.patch(path),
        _ => app.get(path),
    }
    .key(key);
    let r = match body {
        Some(b) => call.json(b).send().await,
        None => call.send().await,
    };
    assert_eq!(r.status, 200, "{method} {path}: {}", r.text);
    r.body
}

/// The types of every event emitted, oldest first.
async fn events(app: &TestApp) -> Vec<String> {
    app.raw_texts("SELECT type FROM events ORDER BY id")
        .await
        .into_iter()
        .map(Option::unwrap)
        .collect()
}

/// The texts the sandbox account received, oldest first.
async fn sent(app: &TestApp, key: &str, acct: &str) -> Vec<String> {
    let r = app
        .get(&format!("/v1/accounts/{acct}/timeline?limit=50"))
        .key(key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["body"].as_str().unwrap().to_owned())
        .collect()
}

both!(
    editing_an_approved_post_sends_it_back_for_approval,
    |_db| async move {
        let app = TestApp::new().await;
        let admin = app.admin_key().await;
        let acct = app.sandbox_account(&admin, "brand").await;
        send(
            &app,
            &admin,
            "PATCH",
            "/v1/workspace",
            Some(json!({"require_approval": true})),
        )
        .await;
        let writer = app
            .key_with(&[Scope::PostsRead, Scope::PostsWrite, Scope::PostsPublish])
            .await;
        let (approver, _) = app
            .key(KeySpec {
                scopes: vec![Scope::PostsRead, Scope::PostsApprove],
                ..KeySpec::default()
            })
            .await;

        let r = app
            .post("/v1/posts")
            .key(&writer)
            .json(json!({"body": "approved text", "account_ids": [acct]}))
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let at = "2026-11-22T18:00:00Z";
        let p = send(
            &app,
            &writer,
            "POST",
            &format!("/v1/posts/{id}/schedule"),
            Some(json!({ "scheduled_at": at })),
        )
        .await;
        assert_eq!(p["status"], "pending_approval");
        let p = send(
            &app,
            &approver,
            "POST",
            &format!("/v1/posts/{id}/approve"),
            Some(json!({})),
        )
        .await;
        assert_eq!(p["status"], "scheduled");
        assert_eq!(app.jobs().await.len(), 1, "approved: its job");

        // A writer (no posts:approve) edits the approved post: it waits for approval again.
        let events_before = events(&app).await;
        let p = send(
            &app,
            &writer,
            "PATCH",
            &format!("/v1/posts/{id}"),
            Some(json!({"body": "unapproved text"})),
        )
        .await;
        assert_eq!(p["status"], "pending_approval", "{p}");
        assert_eq!(p["body"], "unapproved text");
        assert_eq!(p["scheduled_at"], at, "it keeps its time");
        assert!(app.jobs().await.is_empty(), "its job is withdrawn");
        let events = events(&app).await;
        assert_eq!(
            events[events_before.len()..],
            ["post.approval_requested".to_owned()],
            "one new event"
        );

        // Its time comes: nothing goes out.
        app.clock
            .set(at.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_secs(1));
        assert!(app.publisher().run_due().await.is_empty());
        assert!(sent(&app, &admin, &acct).await.is_empty(), "nothing sent");

        // Approved again (the time has passed: it goes out now), with the edited text.
        let p = send(
            &app,
            &approver,
            "POST",
            &format!("/v1/posts/{id}/approve"),
            Some(json!({})),
        )
        .await;
        assert_eq!(p["status"], "publishing");
        app.publisher().run_due().await;
        assert_eq!(sent(&app, &admin, &acct).await, vec!["unapproved text"]);
    }
);

both!(
    without_approval_an_edit_keeps_a_post_scheduled,
    |_db| async move {
        let app = TestApp::new().await;
        let admin = app.admin_key().await;
        let acct = app.sandbox_account(&admin, "brand").await;
        let r = app
            .post("/v1/posts")
            .key(&admin)
            .json(json!({"body": "first", "account_ids": [acct]}))
            .send()
            .await;
        let id = r.body["id"].as_str().unwrap().to_owned();
        let at = "2026-11-22T18:00:00Z";
        send(
            &app,
            &admin,
            "POST",
            &format!("/v1/posts/{id}/schedule"),
            Some(json!({ "scheduled_at": at })),
        )
        .await;
        let p = send(
            &app,
            &admin,
            "PATCH",
            &format!("/v1/posts/{id}"),
            Some(json!({"body": "second"})),
        )
        .await;
        assert_eq!(p["status"], "scheduled");
        assert_eq!(app.jobs().await.len(), 1, "one job, at its time");
        app.clock.set(at.parse().unwrap());
        app.publisher().run_due().await;
        assert_eq!(sent(&app, &admin, &acct).await, vec!["second"]);
    }
);

both!(
    editing_a_scheduled_post_needs_posts_publish,
    |_db| async move {
        // Editing a scheduled post changes what goes out: a key that may only write drafts
        // must not be able to publish that way (posts:publish is also a paid scope).
        let app = TestApp::new().await;
        let admin = app.admin_key().await;
        let acct = app.sandbox_account(&admin, "brand").await;
        let writer = app.key_with(&[Scope::PostsRead, Scope::PostsWrite]).await;
        let r = app
            .post("/v1/posts")
            .key(&writer)
            .json(json!({"body": "draft", "account_ids": [acct]}))
            .send()
            .await;
        let id = r.body["id"].as_str().unwrap().to_owned();
        // A draft: fine.
        send(
            &app,
            &writer,
            "PATCH",
            &format!("/v1/posts/{id}"),
            Some(json!({"body": "draft, edited"})),
        )
        .await;
        send(
            &app,
            &admin,
            "POST",
            &format!("/v1/posts/{id}/schedule"),
            Some(json!({"scheduled_at": "2026-11-22T18:00:00Z"})),
        )
        .await;
        let before = app.posts_snapshot().await;
        let r = app
            .patch(&format!("/v1/posts/{id}"))
            .key(&writer)
            .json(json!({"body": "sneaked in"}))
            .send()
            .await;
        r.assert_error(403, "forbidden_scope");
        assert!(r.text.contains("posts:publish"), "{}", r.text);
        assert_eq!(app.posts_snapshot().await, before, "nothing changed");

        // Where approval is required the edit only withdraws the post for review: allowed.
        send(
            &app,
            &admin,
            "PATCH",
            "/v1/workspace",
            Some(json!({"require_approval": true})),
        )
        .await;
        let p = send(
            &app,
            &writer,
            "PATCH",
            &format!("/v1/posts/{id}"),
            Some(json!({"body": "for review"})),
        )
        .await;
        assert_eq!(p["status"], "pending_approval");
    }
);
