//! Device login for the CLI over HTTP (RFC 8628), as a CLI, its user and an attacker use it:
//! `POST /v1/auth/device` and `/v1/auth/device/token`. The user's approval goes through the
//! application layer (`crier_app::devices`), as the dashboard's page will.

mod common;

use std::time::Duration;

use common::keys::{assert_message_mentions, assert_param, scope_set, set, ts};
use common::users::{PASSWORD, Redeeming, all_keys, count, login_from, remove_member_inside, user};
use common::{NowMs, Response, TestApp, both};
use crier_core::{ErrorCode, Role};
use crier_store::{Actor, DeviceLogin, User};
use serde_json::{Value, json};

const INTERVAL: Duration = Duration::from_secs(5);
const CONSONANTS: &str = "BCDFGHJKLMNPQRSTVWXZ";

/// A started login: what the CLI keeps and what it shows its user.
struct Started {
    device_code: String,
    user_code: String,
}

async fn start_from(app: &TestApp, ip: &str, body: Value) -> Response {
    app.post("/v1/auth/device")
        .from_ip(ip)
        .json(body)
        .send()
        .await
}

#[track_caller]
fn started(r: &Response) -> Started {
    assert_eq!(r.status, 200, "{}", r.text);
    Started {
        device_code: r.body["device_code"].as_str().unwrap().to_owned(),
        user_code: r.body["user_code"].as_str().unwrap().to_owned(),
    }
}

async fn start(app: &TestApp, scopes: &[&str]) -> Started {
    started(
        &start_from(
            app,
            "127.0.0.1",
            json!({"client_name": "crier CLI on laptop", "scopes": scopes}),
        )
        .await,
    )
}

async fn poll(app: &TestApp, device_code: &str) -> Response {
    app.post("/v1/auth/device/token")
        .json(json!({"device_code": device_code}))
        .send()
        .await
}

/// `user` approves (or denies) in their first workspace, as the dashboard will.
async fn decide(
    app: &TestApp,
    user: &User,
    user_code: &str,
    approve: bool,
) -> Result<DeviceLogin, crier_app::AppError> {
    let app_layer = app.state.app();
    let seat = app_layer.users().seat(&user.id, None).await.unwrap();
    app_layer
        .devices()
        .decide(&seat, &user.id, user_code, approve)
        .await
}

/// The stored status of every device login.
async fn statuses(app: &TestApp) -> Vec<Option<String>> {
    app.raw_texts("SELECT status FROM device_logins ORDER BY id")
        .await
}

/// Rotates key `id` with the key `by` (an hour's overlap); the replacement's secret.
async fn rotate(app: &TestApp, id: &str, by: &str) -> String {
    let r = app
        .post(&format!("/v1/keys/{id}/rotate"))
        .key(by)
        .json(json!({"overlap_seconds": 3600}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["key"].as_str().unwrap().to_owned()
}

// ---- Starting and polling ----

async fn start_answers_codes_per_the_contract() {
    let app = TestApp::new().await;
    let r = start_from(
        &app,
        "127.0.0.1",
        json!({"client_name": "crier CLI on laptop", "scopes": ["posts:read", "posts:write"]}),
    )
    .await;
    let s = started(&r);
    let code = &s.user_code;
    assert_eq!(code.len(), 9, "{code}");
    assert!(
        code.char_indices().all(|(i, c)| if i == 4 {
            c == '-'
        } else {
            CONSONANTS.contains(c)
        }),
        "{code}"
    );
    assert!(s.device_code.starts_with("dc_"), "{}", s.device_code);
    let uri = r.body["verification_uri"].as_str().unwrap();
    assert!(uri.ends_with("/device"), "{uri}");
    let complete = r.body["verification_uri_complete"].as_str().unwrap();
    assert!(
        complete.starts_with(uri) && complete.ends_with(code.as_str()),
        "{complete}"
    );
    assert_eq!(r.body["interval"], 5);
    assert_eq!(r.body["expires_in"], 900);

    // Only the device code's digest is at rest; the user code is stored as shown.
    let rows = app
        .raw_texts(
            "SELECT device_digest || '|' || user_code || '|' || client_name || '|' || scopes
               || '|' || status FROM device_logins",
        )
        .await;
    assert_eq!(rows.len(), 1);
    let row = rows[0].as_deref().unwrap();
    assert!(!row.contains(&s.device_code[3..]), "{row}");
    assert!(
        row.ends_with(&format!(
            "|{code}|crier CLI on laptop|posts:read posts:write|pending"
        )) || row.ends_with(&format!(
            "|{code}|crier CLI on laptop|posts:write posts:read|pending"
        )),
        "{row}"
    );

    // Two logins never share a code.
    let other = start(&app, &["posts:read"]).await;
    assert_ne!(other.user_code, s.user_code);
    assert_ne!(other.device_code, s.device_code);
}

async fn polling_before_a_decision_is_pending_and_too_fast_is_slow_down() {
    let app = TestApp::new().await;
    let s = start(&app, &["posts:read"]).await;
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "authorization_pending");
    // At once again: too fast, and the interval grows by 5 s (RFC 8628 §3.5).
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "slow_down");
    app.clock.advance(INTERVAL);
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "slow_down");
    // Two `slow_down`s made the interval 15 s: 10 s later is still too soon (now 20 s).
    app.clock.advance(2 * INTERVAL);
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "slow_down");
    app.clock.advance(4 * INTERVAL);
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "authorization_pending");
    // A client that keeps to its (widened, now 20 s) interval keeps getting
    // `authorization_pending`.
    for _ in 0..3 {
        app.clock.advance(4 * INTERVAL);
        poll(&app, &s.device_code)
            .await
            .assert_error(400, "authorization_pending");
    }
    assert_eq!(all_keys(&app).await, Vec::<Option<String>>::new());
    assert_eq!(statuses(&app).await, vec![Some("pending".to_owned())]);
}

// ---- Deciding ----

async fn an_approved_login_yields_its_key_once() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Admin).await;
    // `media:upload` is an alias of `media:write`.
    let s = start(&app, &["keys:read", "posts:read", "media:upload"]).await;
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "authorization_pending");
    // The dashboard forgives case, spaces and a missing dash in what the user types.
    let typed = s.user_code.to_lowercase().replace('-', " ");
    let login = decide(&app, &ada, &typed, true).await.unwrap();
    assert_eq!(login.user_code, s.user_code);

    app.clock.advance(INTERVAL);
    let before = all_keys(&app).await;
    let r = poll(&app, &s.device_code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let key_id = r.body["key_id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk_live_"), "{key}");
    assert!(key_id.starts_with("key_"), "{key_id}");
    assert_eq!(r.body["workspace_id"], app.workspace.id.as_str());
    let expires = ts(&r.body["expires_at"]);
    assert_eq!(
        expires.as_millisecond(),
        app.clock.now_ms_value() + 90 * 86_400_000,
        "90 days"
    );
    let after = all_keys(&app).await;
    assert_eq!(after.len(), before.len() + 1);

    // The key works, with exactly the scopes asked for.
    let r = app
        .get(&format!("/v1/keys/{key_id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        scope_set(&r.body["scopes"]),
        set(&["keys:read", "posts:read", "media:write"])
    );
    assert_eq!(r.body["name"], "crier CLI on laptop");
    assert_eq!(r.body["mode"], "live");
    assert_eq!(r.body["expires_at"], json!(expires.to_string()));
    assert_eq!(app.get("/v1/posts").key(&key).send().await.status, 200);
    app.post("/v1/posts")
        .key(&key)
        .json(json!({"text": "hello"}))
        .send()
        .await
        .assert_error(403, "forbidden_scope");
    app.patch("/v1/workspace")
        .key(&key)
        .json(json!({"timezone": "Europe/Paris"}))
        .send()
        .await
        .assert_error(403, "forbidden_scope");
    // Recorded as made by the approving user.
    let audit = app
        .store
        .list_audit(&app.workspace.id, Some(&key_id))
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, "key.created");
    assert_eq!(audit[0].actor, Actor::User(ada.id.clone()));

    // Once: the code is spent, and the key was not made twice.
    for _ in 0..2 {
        app.clock.advance(INTERVAL);
        poll(&app, &s.device_code)
            .await
            .assert_error(400, "expired_token");
    }
    assert_eq!(all_keys(&app).await, after);
    assert_eq!(statuses(&app).await, vec![Some("redeemed".to_owned())]);
    // Nor can the user code be decided again.
    let e = decide(&app, &ada, &s.user_code, true).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
}

async fn a_denied_login_is_access_denied() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Owner).await;
    let s = start(&app, &["posts:read"]).await;
    decide(&app, &ada, &s.user_code, false).await.unwrap();
    for _ in 0..2 {
        poll(&app, &s.device_code)
            .await
            .assert_error(400, "access_denied");
        app.clock.advance(INTERVAL);
    }
    // A denial is final: approving afterwards does nothing.
    let e = decide(&app, &ada, &s.user_code, true).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "access_denied");
    assert!(all_keys(&app).await.is_empty());
    assert_eq!(statuses(&app).await, vec![Some("denied".to_owned())]);
}

async fn a_login_expires_after_fifteen_minutes() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Admin).await;

    // Never decided.
    let s = start(&app, &["posts:read"]).await;
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "authorization_pending");
    app.clock.advance(Duration::from_secs(15 * 60));
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "expired_token");
    let e = decide(&app, &ada, &s.user_code, true).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    app.clock.advance(INTERVAL);
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "expired_token");

    // Approved in time, but not collected in time.
    let s = start(&app, &["posts:read"]).await;
    app.clock.advance(Duration::from_secs(14 * 60 + 50));
    decide(&app, &ada, &s.user_code, true).await.unwrap();
    app.clock.advance(Duration::from_secs(10));
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "expired_token");
    assert!(all_keys(&app).await.is_empty());
}

async fn a_member_cannot_approve_scopes_beyond_the_role() {
    let app = TestApp::new().await;
    let member = user(&app, "ada@example.com", Role::Member).await;
    let admin = user(&app, "bob@example.com", Role::Admin).await;
    let s = start(&app, &["posts:read", "workspace:write"]).await;
    let e = decide(&app, &member, &s.user_code, true).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ForbiddenScope);
    assert_eq!(e.code.http_status(), 403);
    assert!(e.message.contains("workspace:write"), "{}", e.message);
    // Still waiting, for someone who may grant it.
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "authorization_pending");
    assert_eq!(statuses(&app).await, vec![Some("pending".to_owned())]);
    assert!(all_keys(&app).await.is_empty());

    decide(&app, &admin, &s.user_code, true).await.unwrap();
    app.clock.advance(INTERVAL);
    let r = poll(&app, &s.device_code).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // What the member's role holds, the member may grant.
    let s = start(&app, &["posts:read", "posts:write"]).await;
    decide(&app, &member, &s.user_code, true).await.unwrap();
    let r = poll(&app, &s.device_code).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The approver's role bounds the key when it is made, not only when it is approved: an admin
/// who approved `workspace:write` and was made a member before the CLI's next poll yields no
/// key with it.
async fn a_role_lowered_after_approval_yields_no_wider_key() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Admin).await;
    let s = start(&app, &["posts:read", "workspace:write"]).await;
    decide(&app, &ada, &s.user_code, true).await.unwrap();
    assert!(
        app.store
            .change_role(
                &app.workspace.id,
                &ada.id,
                (Role::Admin, Role::Member),
                false,
                0
            )
            .await
            .unwrap()
    );
    let r = poll(&app, &s.device_code).await;
    r.assert_error(400, "access_denied");
    assert_message_mentions(&r, "no longer grant");
    assert!(all_keys(&app).await.is_empty());
    app.clock.advance(INTERVAL);
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "access_denied");
    assert!(all_keys(&app).await.is_empty());
}

async fn unknown_and_garbage_device_codes_are_expired_token() {
    let app = TestApp::new().await;
    let s = start(&app, &["posts:read"]).await;
    let mut flipped = s.device_code.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'a' { 'b' } else { 'a' });
    let garbage = [
        format!("dc_{}", "A".repeat(32)),
        flipped,
        s.device_code.to_uppercase(),
        s.user_code.clone(),
        "garbage".to_owned(),
        String::new(),
        "dc_".to_owned(),
        format!("dc_{}", "A".repeat(10_000)),
        "dc_' OR 1=1 --".to_owned(),
    ];
    for code in &garbage {
        poll(&app, code).await.assert_error(400, "expired_token");
    }
    // None of that touched the real login: its first poll is not "too soon".
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "authorization_pending");

    // Not a device code at all.
    let token = |body: &str| {
        app.post("/v1/auth/device/token")
            .header("content-type", "application/json")
            .raw(body.to_owned())
    };
    assert_param(&token("{}").send().await, "device_code");
    assert_param(&token(r#"{"device_code": 42}"#).send().await, "device_code");
    assert_param(
        &token(&json!({"device_code": s.device_code, "grant_type": "x"}).to_string())
            .send()
            .await,
        "grant_type",
    );
    token("{\"device_code\":")
        .send()
        .await
        .assert_error(400, "invalid_request");
    assert!(all_keys(&app).await.is_empty());
}

async fn bad_scopes_or_client_name_are_refused_with_param() {
    let app = TestApp::new().await;
    let many: Vec<&str> = vec!["posts:read"; 65];
    let cases = [
        (json!({"client_name": "cli", "scopes": []}), "scopes"),
        (json!({"client_name": "cli", "scopes": ["nope"]}), "scopes"),
        (
            json!({"client_name": "cli", "scopes": ["posts:read", "posts:rea"]}),
            "scopes",
        ),
        (json!({"client_name": "cli", "scopes": [""]}), "scopes"),
        (json!({"client_name": "cli", "scopes": many}), "scopes"),
        (
            json!({"client_name": "cli", "scopes": "posts:read"}),
            "scopes",
        ),
        (json!({"client_name": "cli"}), "scopes"),
        (
            json!({"client_name": "", "scopes": ["posts:read"]}),
            "client_name",
        ),
        (
            json!({"client_name": "   ", "scopes": ["posts:read"]}),
            "client_name",
        ),
        (
            json!({"client_name": "x".repeat(101), "scopes": ["posts:read"]}),
            "client_name",
        ),
        (
            json!({"client_name": "cli\nrm -rf", "scopes": ["posts:read"]}),
            "client_name",
        ),
        (
            json!({"client_name": "cli\u{0}", "scopes": ["posts:read"]}),
            "client_name",
        ),
        (
            json!({"client_name": null, "scopes": ["posts:read"]}),
            "client_name",
        ),
        (json!({"scopes": ["posts:read"]}), "client_name"),
        (
            json!({"client_name": "cli", "scopes": ["posts:read"], "workspace_id": "ws_x"}),
            "workspace_id",
        ),
    ];
    for (body, param) in cases {
        let r = start_from(&app, "127.0.0.1", body.clone()).await;
        assert_eq!(r.status, 400, "{body} -> {}", r.text);
        assert_param(&r, param);
    }
    let r = start_from(
        &app,
        "127.0.0.1",
        json!({"client_name": "cli", "scopes": ["nope"]}),
    )
    .await;
    assert_message_mentions(&r, "Unknown scope `nope`");
    assert_eq!(count(&app, "SELECT id FROM device_logins").await, 0);

    // Exactly at the limits is fine.
    let r = start_from(
        &app,
        "127.0.0.1",
        json!({"client_name": "é".repeat(100), "scopes": vec!["posts:read"; 64]}),
    )
    .await;
    started(&r);
}

// ---- Attacks ----

/// Twenty polls of one approved login at once (a CLI retrying, or someone who stole the device
/// code racing it) yield one key.
async fn concurrent_polls_of_an_approved_login_yield_one_key() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Admin).await;
    let s = start(&app, &["posts:read"]).await;
    decide(&app, &ada, &s.user_code, true).await.unwrap();
    let polls = (0..20).map(|_| poll(&app, &s.device_code));
    let answers = futures::future::join_all(polls).await;
    let keys: Vec<&Response> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        keys.len(),
        1,
        "{:?}",
        answers.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for r in answers.iter().filter(|r| r.status != 200) {
        let code = r.body["error"]["code"].as_str().unwrap();
        assert!(matches!(code, "slow_down" | "expired_token"), "{}", r.text);
        r.assert_error(400, code);
    }
    let stored = all_keys(&app).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        stored[0]
            .as_deref()
            .unwrap()
            .starts_with(keys[0].body["key_id"].as_str().unwrap())
    );
    let created = app
        .store
        .list_audit(&app.workspace.id, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action == "key.created")
        .count();
    assert_eq!(created, 1);
    app.clock.advance(Duration::from_secs(120));
    poll(&app, &s.device_code)
        .await
        .assert_error(400, "expired_token");
}

/// Starting device logins is unauthenticated and stores a row that waits 15 minutes: an
/// address may start 10 in 15 minutes (a third of its budget of failed authentications a
/// minute), others are unaffected.
async fn starting_device_logins_is_limited_per_address() {
    let app = TestApp::new().await;
    user(&app, "ada@example.com", Role::Member).await;
    let body = json!({"client_name": "cli", "scopes": ["posts:read"]});
    for _ in 0..10 {
        started(&start_from(&app, "198.51.100.1", body.clone()).await);
    }
    let r = start_from(&app, "198.51.100.1", body.clone()).await;
    r.assert_error(429, "rate_limited");
    assert_eq!(r.header("retry-after"), Some("90"));
    assert_eq!(count(&app, "SELECT id FROM device_logins").await, 10);
    started(&start_from(&app, "198.51.100.2", body.clone()).await);
    // A minute later the address's budget of failed authentications is whole again, but not
    // its device logins: one more every 90 s.
    app.clock.advance(Duration::from_secs(60));
    start_from(&app, "198.51.100.1", body.clone())
        .await
        .assert_error(429, "rate_limited");
    app.clock.advance(Duration::from_secs(31));
    started(&start_from(&app, "198.51.100.1", body.clone()).await);
    // The two budgets are spent together: 30 refused starts in a minute spend the address's
    // failed authentications, shared with sign-ins.
    app.clock.advance(Duration::from_secs(60));
    for _ in 0..30 {
        let _ = start_from(&app, "198.51.100.1", body.clone()).await;
    }
    login_from(&app, "198.51.100.1", "ada@example.com", PASSWORD)
        .await
        .assert_error(429, "rate_limited");
}

/// Starts sent at once must not outrun the address's budget either (checked before the
/// start's storage round-trips and counted after them, every start in flight would pass).
async fn concurrent_starts_cannot_exceed_the_address_budget() {
    let app = TestApp::new().await;
    let body = json!({"client_name": "cli", "scopes": ["posts:read"]});
    let starts = (0..40).map(|_| start_from(&app, "198.51.100.1", body.clone()));
    let answers = futures::future::join_all(starts).await;
    for r in answers.iter().filter(|r| r.status != 200) {
        r.assert_error(429, "rate_limited");
    }
    let ok = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 10, "40 starts at once from one address");
    assert_eq!(count(&app, "SELECT id FROM device_logins").await, 10);
    // Another address is unaffected.
    started(&start_from(&app, "198.51.100.3", body).await);
}

/// Device logins can be started without signing in, so expired ones are purged (an hour after
/// they expire), with the sessions that ended a month ago; open ones stay.
async fn expired_device_logins_and_old_sessions_are_purged() {
    let app = TestApp::new().await;
    for _ in 0..3 {
        let r = app
            .post("/v1/auth/device")
            .json(json!({"client_name": "crier CLI", "scopes": ["posts:read"]}))
            .send()
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let ada = user(&app, "ada@example.com", Role::Member).await;
    let token = common::users::session(&app, &ada).await;
    let r = app.post("/v1/auth/logout").key(&token).send().await;
    assert_eq!(r.status, 204, "{}", r.text);
    let users = app.state.app().users();
    assert_eq!(users.purge().await.unwrap(), 0, "nothing is old yet");
    assert_eq!(count(&app, "SELECT id FROM device_logins").await, 3);
    // 15 minutes of life, then an hour on record.
    app.clock.advance(Duration::from_secs(15 * 60 + 3600 + 1));
    assert_eq!(users.purge().await.unwrap(), 3);
    assert_eq!(count(&app, "SELECT id FROM device_logins").await, 0);
    assert_eq!(
        count(&app, "SELECT id FROM sessions").await,
        1,
        "kept a month"
    );
    app.clock.advance(Duration::from_secs(30 * 86_400));
    assert_eq!(users.purge().await.unwrap(), 1);
    assert_eq!(count(&app, "SELECT id FROM sessions").await, 0);
}

/// A device's key (`crier login` on someone's laptop) acts for its user: it ends, with what it
/// made, when they leave the workspace or their role is lowered, as the apps they allowed do.
/// The workspace's own keys stay, and so does a device key whose user keeps their role or
/// gains one.
async fn a_device_key_ends_with_its_users_membership() {
    let app = TestApp::new().await;
    let owner = user(&app, "owner@example.com", Role::Owner).await;
    let ada = user(&app, "ada@example.com", Role::Admin).await;
    let bob = user(&app, "bob@example.com", Role::Admin).await;
    let cli = |who: User| {
        let app = &app;
        async move {
            let s = start(app, &["keys:write", "keys:read", "posts:read"]).await;
            let app_layer = app.state.app();
            let seat = app_layer.users().seat(&who.id, None).await.unwrap();
            app_layer
                .devices()
                .decide(&seat, &who.id, &s.user_code, true)
                .await
                .unwrap();
            app.clock.advance(INTERVAL);
            let r = poll(app, &s.device_code).await;
            assert_eq!(r.status, 200, "{}", r.text);
            (
                r.body["key"].as_str().unwrap().to_owned(),
                r.body["key_id"].as_str().unwrap().to_owned(),
            )
        }
    };
    let works = |key: String| {
        let app = &app;
        async move { app.get("/v1/me").key(&key).send().await.status }
    };
    let (adas, _) = cli(ada.clone()).await;
    let (bobs, bobs_id) = cli(bob.clone()).await;
    let workspace_key = app.admin_key().await;
    // What Ada's CLI makes, and what that makes in turn.
    let made = app
        .post("/v1/keys")
        .key(&adas)
        .json(json!({"name": "deploys", "scopes": ["keys:write", "posts:read"]}))
        .send()
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let made = made.body["key"].as_str().unwrap().to_owned();
    let grandchild = app
        .post("/v1/keys")
        .key(&made)
        .json(json!({"name": "reads", "scopes": ["posts:read"]}))
        .send()
        .await;
    assert_eq!(grandchild.status, 201, "{}", grandchild.text);
    let grandchild = grandchild.body["key"].as_str().unwrap().to_owned();
    // The grandchild rotated by an admin: its replacement is made by the admin's key, and
    // only `replaced_by` ties it to Ada's line.
    let grandchild_id = app.get("/v1/me").key(&grandchild).send().await.body["key"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = rotate(&app, &grandchild_id, &workspace_key).await;
    // A workspace key Ada's CLI rotated is still the workspace's: its replacement stays.
    let w = app
        .post("/v1/keys")
        .key(&workspace_key)
        .json(json!({
            "name": "the shop",
            "scopes": ["posts:read"],
            // Within the CLI key's 90 days: a key cannot rotate one that outlives it.
            "expires_at": jiff::Timestamp::from_millisecond(
                app.clock.now_ms_value() + 30 * 86_400_000
            )
            .unwrap()
            .to_string(),
        }))
        .send()
        .await;
    assert_eq!(w.status, 201, "{}", w.text);
    let shop = rotate(&app, w.body["id"].as_str().unwrap(), &adas).await;
    for k in [
        &adas,
        &made,
        &grandchild,
        &rotated,
        &bobs,
        &workspace_key,
        &shop,
    ] {
        assert_eq!(works(k.clone()).await, 200);
    }

    let users = app.state.app().users();
    let seat = users.seat(&owner.id, None).await.unwrap();
    // A role that loses nothing leaves the key alone.
    users
        .change_role(&seat, &bob.id, Role::Owner)
        .await
        .unwrap();
    assert_eq!(works(bobs.clone()).await, 200);
    let live = count(&app, "SELECT id FROM api_keys WHERE revoked_at IS NULL").await;
    users
        .remove_member(&seat, &owner.id, &ada.id)
        .await
        .unwrap();
    for k in [&adas, &made, &grandchild, &rotated] {
        app.get("/v1/me")
            .key(k)
            .send()
            .await
            .assert_error(401, "unauthorized");
    }
    assert_eq!(
        count(&app, "SELECT id FROM api_keys WHERE revoked_at IS NULL").await,
        live - 4
    );
    assert_eq!(works(bobs.clone()).await, 200, "another member's device");
    assert_eq!(
        works(shop.clone()).await,
        200,
        "a workspace key Ada rotated"
    );
    assert_eq!(
        works(workspace_key.clone()).await,
        200,
        "the workspace's own key"
    );

    // Bob's key rotated by an admin is still Bob's: the replacement acts for him too.
    let replacement = rotate(&app, &bobs_id, &workspace_key).await;
    assert_eq!(works(replacement.clone()).await, 200);
    // Bob, lowered from owner to member, can no longer have granted `keys:write`.
    users
        .change_role(&seat, &bob.id, Role::Member)
        .await
        .unwrap();
    for k in [&bobs, &replacement] {
        app.get("/v1/me")
            .key(k)
            .send()
            .await
            .assert_error(401, "unauthorized");
    }
    assert_eq!(works(workspace_key.clone()).await, 200);
}

/// A member removed between the token endpoint's check of their role and its write of the key
/// gets no key: the write checks the membership in its own transaction (a trigger removes the
/// member inside it here, when the login is marked redeemed).
async fn a_member_removed_during_the_device_exchange_gets_no_key() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Admin).await;
    let s = start(&app, &["posts:read"]).await;
    decide(&app, &ada, &s.user_code, true).await.unwrap();
    let keys_before = all_keys(&app).await;
    remove_member_inside(&app, Redeeming::DeviceLogin).await;
    app.clock.advance(INTERVAL);
    let r = poll(&app, &s.device_code).await;
    r.assert_error(400, "access_denied");
    assert_message_mentions(&r, "no longer grant");
    assert_eq!(all_keys(&app).await, keys_before);
    // Nothing was redeemed: the login is still approved, and its next poll finds the user gone.
    assert_eq!(statuses(&app).await, vec![Some("approved".to_owned())]);
}

/// Device keys made before keys knew their user (migration 0026): found through the device
/// logins on record or, once those are purged, the audit log, and followed to their
/// replacements; then they end with the membership like any other.
async fn device_keys_made_before_keys_knew_their_user_are_found() {
    let app = TestApp::new().await;
    let owner = user(&app, "owner@example.com", Role::Owner).await;
    let ada = user(&app, "ada@example.com", Role::Admin).await;
    let s = start(&app, &["keys:read", "posts:read"]).await;
    decide(&app, &ada, &s.user_code, true).await.unwrap();
    app.clock.advance(INTERVAL);
    let r = poll(&app, &s.device_code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (device, device_id) = (
        r.body["key"].as_str().unwrap().to_owned(),
        r.body["key_id"].as_str().unwrap().to_owned(),
    );
    let workspace_key = app.admin_key().await;
    let replacement = rotate(&app, &device_id, &workspace_key).await;
    // As an install before the column: no key knows its user, and the logins are purged.
    app.raw_execute("UPDATE api_keys SET user_id = NULL").await;
    app.raw_execute("DELETE FROM device_logins").await;
    let backfill = match app.backend() {
        crier_store::Backend::Sqlite => {
            include_str!("../../crier-store/migrations/sqlite/0026_key_users_backfill.sql")
        }
        crier_store::Backend::Postgres => {
            include_str!("../../crier-store/migrations/postgres/0026_key_users_backfill.sql")
        }
    };
    app.raw_execute(backfill).await;
    app.raw_execute(backfill).await;
    let mut owners = app.raw_texts("SELECT user_id FROM api_keys").await;
    owners.sort();
    let adas = Some(ada.id.as_str().to_owned());
    assert_eq!(
        owners,
        vec![None, adas.clone(), adas],
        "the workspace key has none"
    );

    let users = app.state.app().users();
    let seat = users.seat(&owner.id, None).await.unwrap();
    users
        .remove_member(&seat, &owner.id, &ada.id)
        .await
        .unwrap();
    for k in [&device, &replacement] {
        app.get("/v1/me")
            .key(k)
            .send()
            .await
            .assert_error(401, "unauthorized");
    }
    let r = app.get("/v1/me").key(&workspace_key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Leaving and what acts for the member end together: when the revocation cannot be written,
/// the member is not removed either (and a second try does both), so a failure between the
/// two cannot leave a live key of someone no longer there to remove.
async fn a_removal_and_its_revocations_are_one_transaction() {
    let app = TestApp::new().await;
    let owner = user(&app, "owner@example.com", Role::Owner).await;
    let ada = user(&app, "ada@example.com", Role::Admin).await;
    let s = start(&app, &["posts:read"]).await;
    decide(&app, &ada, &s.user_code, true).await.unwrap();
    app.clock.advance(INTERVAL);
    let r = poll(&app, &s.device_code).await;
    let key = r.body["key"].as_str().unwrap().to_owned();
    match app.backend() {
        crier_store::Backend::Postgres => {
            app.raw_execute(
                "CREATE FUNCTION no_revoke() RETURNS trigger AS $$
                 BEGIN RAISE EXCEPTION 'revocations are failing'; END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER no_revoke BEFORE UPDATE ON api_keys
                     FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL)
                     EXECUTE FUNCTION no_revoke();",
            )
            .await
        }
        crier_store::Backend::Sqlite => {
            app.raw_execute(
                "CREATE TRIGGER no_revoke BEFORE UPDATE ON api_keys
                 WHEN NEW.revoked_at IS NOT NULL BEGIN
                     SELECT RAISE(ABORT, 'revocations are failing');
                 END;",
            )
            .await
        }
    }
    let users = app.state.app().users();
    let seat = users.seat(&owner.id, None).await.unwrap();
    assert!(
        users
            .remove_member(&seat, &owner.id, &ada.id)
            .await
            .is_err()
    );
    assert!(users.seat(&ada.id, None).await.is_ok(), "still a member");
    let r = app.get("/v1/me").key(&key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.raw_execute(match app.backend() {
        crier_store::Backend::Postgres => "DROP TRIGGER no_revoke ON api_keys",
        crier_store::Backend::Sqlite => "DROP TRIGGER no_revoke",
    })
    .await;
    users
        .remove_member(&seat, &owner.id, &ada.id)
        .await
        .unwrap();
    assert!(users.seat(&ada.id, None).await.is_err());
    app.get("/v1/me")
        .key(&key)
        .send()
        .await
        .assert_error(401, "unauthorized");
}

both!(
    tests: start_answers_codes_per_the_contract,
    polling_before_a_decision_is_pending_and_too_fast_is_slow_down,
    an_approved_login_yields_its_key_once,
    a_denied_login_is_access_denied,
    a_login_expires_after_fifteen_minutes,
    a_member_cannot_approve_scopes_beyond_the_role,
    a_role_lowered_after_approval_yields_no_wider_key,
    unknown_and_garbage_device_codes_are_expired_token,
    bad_scopes_or_client_name_are_refused_with_param,
    concurrent_polls_of_an_approved_login_yield_one_key,
    starting_device_logins_is_limited_per_address,
    concurrent_starts_cannot_exceed_the_address_budget,
    expired_device_logins_and_old_sessions_are_purged,
    a_device_key_ends_with_its_users_membership,
    a_member_removed_during_the_device_exchange_gets_no_key,
    device_keys_made_before_keys_knew_their_user_are_found,
    a_removal_and_its_revocations_are_one_transaction,
);
