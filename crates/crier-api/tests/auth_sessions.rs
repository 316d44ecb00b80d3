//! Sessions over HTTP, as people and attackers use them: `POST /v1/auth/login` and `logout`,
//! a session as the bearer of every `/v1` route (in the workspace `Crier-Workspace` names,
//! within its user's role), the login throttle, and the refusals that must change nothing.
//!
//! Users are made through the application layer, as `crier admin user create` makes them.

mod common;

use std::time::Duration;

use common::keys::{HOUR, MINUTE, assert_message_mentions, assert_param, created, scope_set, ts};
use common::users::{
    PASSWORD, cookie_of, count, form, login_from, session, user, without_request_id,
};
use common::{START, TestApp, both};
use crier_core::{Role, Scope};
use crier_store::Actor;
use jiff::Timestamp;
use serde_json::json;

// ---- Logging in ----

async fn login_answers_a_session_that_works_as_a_bearer() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Member).await;
    let r = app
        .post("/v1/auth/login")
        .header("user-agent", "crier-cli/1.0")
        .json(json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("sess_"), "{token}");
    let start: Timestamp = START.parse().unwrap();
    assert_eq!(
        ts(&r.body["expires_at"]),
        start + 12 * HOUR,
        "12 hours by default"
    );
    assert_eq!(
        r.body["user"],
        json!({"id": ada.id.as_str(), "object": "user", "email": "ada@example.com",
               "name": "Ada Lovelace"})
    );
    assert!(
        !r.text.contains("argon2"),
        "no hash in the answer: {}",
        r.text
    );

    // The token is the bearer of the API, in the user's workspace.
    let r = app.get("/v1/workspace").key(&token).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], app.workspace.id.as_str());
    assert!(r.header("x-ratelimit-limit").is_some());
    let existing = app.admin_key().await;
    let r = app.get("/v1/keys").key(&token).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A member lists only the keys they made (none yet), never the secret of any.
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0, "{}", r.text);
    assert!(!r.text.contains(&existing));
    // As `X-API-Key` too, like any key.
    let r = app
        .get("/v1/workspace")
        .header("x-api-key", &token)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Only the token's digest is at rest; the session remembers who logged in from where.
    let rows = app
        .raw_texts(
            "SELECT digest || '|' || user_id || '|' || user_agent || '|' || ip FROM sessions",
        )
        .await;
    assert_eq!(rows.len(), 1);
    let row = rows[0].as_deref().unwrap();
    assert!(!row.contains(&token) && !row.contains(&token["sess_".len()..]));
    assert!(
        row.ends_with(&format!("|{}|crier-cli/1.0|127.0.0.1", ada.id)),
        "{row}"
    );
}

async fn wrong_password_and_unknown_email_are_answered_alike() {
    let app = TestApp::new().await;
    user(&app, "ada@example.com", Role::Member).await;
    let wrong = login_from(&app, "10.0.0.1", "ada@example.com", "not the password").await;
    wrong.assert_error(401, "unauthorized");
    let unknown = login_from(&app, "10.0.0.2", "nobody@example.com", "not the password").await;
    unknown.assert_error(401, "unauthorized");
    assert_ne!(
        wrong.body["error"]["request_id"],
        unknown.body["error"]["request_id"]
    );
    assert_eq!(without_request_id(&wrong), without_request_id(&unknown));
    assert_eq!(wrong.header("retry-after"), unknown.header("retry-after"));
    // An empty password and a too-long one are no different.
    for password in ["", &"x".repeat(300)] {
        let r = login_from(&app, "10.0.0.3", "ada@example.com", password).await;
        r.assert_error(401, "unauthorized");
        assert_eq!(without_request_id(&r), without_request_id(&wrong));
    }
    assert_eq!(count(&app, "SELECT id FROM sessions").await, 0);
}

async fn the_email_is_case_insensitive() {
    let app = TestApp::new().await;
    let ada = user(&app, "Ada.Lovelace@Example.com", Role::Member).await;
    for typed in [
        "ada.lovelace@example.com",
        "ADA.LOVELACE@EXAMPLE.COM",
        "Ada.Lovelace@Example.com",
    ] {
        let r = login_from(&app, "127.0.0.1", typed, PASSWORD).await;
        assert_eq!(r.status, 200, "{typed}: {}", r.text);
        assert_eq!(r.body["user"]["id"], ada.id.as_str());
        assert_eq!(
            r.body["user"]["email"], "Ada.Lovelace@Example.com",
            "shown as it was given"
        );
    }
    // The password is not.
    login_from(
        &app,
        "127.0.0.1",
        "ada.lovelace@example.com",
        &PASSWORD.to_uppercase(),
    )
    .await
    .assert_error(401, "unauthorized");
}

/// Five wrong passwords a minute for one account: the sixth try is `429` even with the right
/// password (the attacker cannot tell a hit), from any address; other accounts are unaffected.
async fn failed_logins_throttle_the_account_and_only_it() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Member).await;
    let bob = user(&app, "bob@example.com", Role::Member).await;
    for i in 0..5 {
        login_from(
            &app,
            "10.0.0.1",
            "ada@example.com",
            &format!("guess number {i}"),
        )
        .await
        .assert_error(401, "unauthorized");
    }
    for ip in ["10.0.0.1", "192.0.2.7"] {
        let r = login_from(&app, ip, "ADA@example.com", PASSWORD).await;
        r.assert_error(429, "rate_limited");
        let retry: u64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        assert!(r.body.get("token").is_none());
    }
    assert_eq!(count(&app, "SELECT id FROM sessions").await, 0);

    // Another account, from another address, logs in.
    let r = login_from(&app, "10.0.0.2", &bob.email, PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // A minute later the account's budget has refilled.
    app.clock.advance(MINUTE);
    let r = login_from(&app, "10.0.0.1", &ada.email, PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Guesses sent at once must not outrun the account's budget (checked before the slow password
/// hash and counted after it, every guess in flight would pass).
async fn concurrent_guesses_cannot_exceed_the_account_budget() {
    let app = TestApp::new().await;
    user(&app, "ada@example.com", Role::Member).await;
    let ips: Vec<String> = (1..=12).map(|i| format!("10.0.1.{i}")).collect();
    let guesses = ips.iter().enumerate().map(|(i, ip)| {
        let app = &app;
        async move { login_from(app, ip, "ada@example.com", &format!("guess number {i}")).await }
    });
    let answers = futures::future::join_all(guesses).await;
    let checked = answers.iter().filter(|r| r.status == 401).count();
    for r in &answers {
        assert!(
            r.status == 401 || r.status == 429,
            "{} {}",
            r.status,
            r.text
        );
    }
    assert_eq!(
        checked, 5,
        "of 12 concurrent guesses, as many as the budget (5) are checked against the password"
    );
    login_from(&app, "10.0.2.1", "ada@example.com", PASSWORD)
        .await
        .assert_error(429, "rate_limited");
}

/// A dashboard sign-in from `ip` with `cookies` (may be empty).
async fn form_login(
    app: &TestApp,
    ip: &str,
    cookies: &str,
    email: &str,
    password: &str,
) -> common::Response {
    let mut req = app
        .post("/login")
        .from_ip(ip)
        .header("content-type", "application/x-www-form-urlencoded");
    if !cookies.is_empty() {
        req = req.header("cookie", cookies);
    }
    req.raw(form(&[
        ("email", email),
        ("password", password),
        ("next", "/app"),
    ]))
    .send()
    .await
}

/// Guesses from elsewhere spend the account's budget (50 a day), which used to lock its owner
/// out too; a browser that signed in to the account before has a budget of its own (OWASP's
/// device cookies), and its cookie opens for no other account.
async fn a_browser_that_signed_in_before_is_not_locked_out_by_guesses() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Member).await;
    let bob = user(&app, "bob@example.com", Role::Member).await;
    let r = form_login(&app, "198.51.100.1", "", &ada.email, PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let set = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("crier_browser="))
        .expect("a browser cookie")
        .to_owned();
    for part in [
        "Path=/login",
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=15552000",
    ] {
        assert!(set.contains(part), "{set}");
    }
    let laptop = cookie_of(&r, "crier_browser").unwrap();
    let r = form_login(&app, "198.51.100.2", "", &bob.email, PASSWORD).await;
    let bobs = cookie_of(&r, "crier_browser").unwrap();

    // The rest of the day's budget (the sign-in above spent one) in guesses, from 49
    // addresses, five a minute.
    app.clock.advance(MINUTE);
    for i in 0..49 {
        login_from(&app, &format!("10.9.0.{i}"), &ada.email, "a guess")
            .await
            .assert_error(401, "unauthorized");
        if i % 5 == 4 {
            app.clock.advance(MINUTE);
        }
    }
    let sessions = count(&app, "SELECT id FROM sessions").await;
    login_from(&app, "198.51.100.1", &ada.email, PASSWORD)
        .await
        .assert_error(429, "rate_limited");
    let r = form_login(&app, "198.51.100.1", "", &ada.email, PASSWORD).await;
    assert_eq!(r.status, 429, "an unknown browser: {}", r.text);
    assert!(r.text.contains("a browser that signed in"), "{}", r.text);
    for other in [
        bobs.as_str(),
        "crier_browser=v1.test.AAAA",
        "crier_browser=",
    ] {
        let r = form_login(&app, "198.51.100.1", other, &ada.email, PASSWORD).await;
        assert_eq!(r.status, 429, "{other}: {}", r.text);
    }
    assert_eq!(count(&app, "SELECT id FROM sessions").await, sessions);

    // The owner's browser signs in, and is given a new cookie.
    let cookies = format!("crier_session=old; {laptop}");
    let r = form_login(&app, "198.51.100.1", &cookies, &ada.email, PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(cookie_of(&r, "crier_session").is_some());
    let renewed = cookie_of(&r, "crier_browser").unwrap();
    assert_ne!(renewed, laptop);
    assert_eq!(count(&app, "SELECT id FROM sessions").await, sessions + 1);

    // A known browser's own budget: 5 a minute, whoever holds the cookie.
    for i in 0..5 {
        let r = form_login(
            &app,
            "10.9.1.1",
            &renewed,
            &ada.email,
            &format!("guess {i}"),
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let r = form_login(&app, "10.9.1.1", &renewed, &ada.email, PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.text);
    // The older cookie is a browser of its own, still known.
    let r = form_login(&app, "198.51.100.1", &laptop, &ada.email, PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(count(&app, "SELECT id FROM sessions").await, sessions + 2);
}

// ---- Logging out, expiry ----

async fn logout_ends_only_this_session_and_keys_cannot_log_out() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Admin).await;
    let laptop = session(&app, &ada).await;
    let phone = session(&app, &ada).await;
    assert_ne!(laptop, phone);

    let r = app.post("/v1/auth/logout").key(&laptop).send().await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    let r = app.get("/v1/workspace").key(&laptop).send().await;
    r.assert_error(401, "unauthorized");
    app.post("/v1/auth/logout")
        .key(&laptop)
        .send()
        .await
        .assert_error(401, "unauthorized");
    let r = app.get("/v1/workspace").key(&phone).send().await;
    assert_eq!(r.status, 200, "the other session stays open: {}", r.text);

    // An API key is revoked, not logged out, and stays valid.
    let key = app.admin_key().await;
    let r = app.post("/v1/auth/logout").key(&key).send().await;
    r.assert_error(403, "forbidden_scope");
    assert_message_mentions(&r, "DELETE /v1/keys");
    assert_eq!(app.get("/v1/workspace").key(&key).send().await.status, 200);
    // Without any credential it is a 401.
    app.post("/v1/auth/logout")
        .send()
        .await
        .assert_error(401, "unauthorized");
}

async fn a_session_expires_after_twelve_hours() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Member).await;
    let token = session(&app, &ada).await;
    app.clock.advance(12 * HOUR - Duration::from_secs(1));
    assert_eq!(
        app.get("/v1/workspace").key(&token).send().await.status,
        200
    );
    app.clock.advance(Duration::from_secs(1));
    let r = app.get("/v1/workspace").key(&token).send().await;
    r.assert_error(401, "unauthorized");
    assert_message_mentions(&r, "expired");
    app.post("/v1/auth/logout")
        .key(&token)
        .send()
        .await
        .assert_error(401, "unauthorized");
}

// ---- Where and as whom a session acts ----

async fn crier_workspace_names_only_the_users_workspaces() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Member).await;
    let token = session(&app, &ada).await;
    let other = app.other_workspace("globex").await;
    let (_, other_key) = app
        .key_in(
            &other,
            common::KeySpec {
                scopes: vec![Scope::KeysRead],
                ..common::KeySpec::default()
            },
        )
        .await;

    let r = app
        .get("/v1/workspace")
        .key(&token)
        .header("crier-workspace", app.workspace.id.as_str())
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], app.workspace.id.as_str());

    let bogus = [
        other.id.as_str().to_owned(),
        "ws_0000000000000000000000".to_owned(),
        "ws_".to_owned(),
        "not a workspace".to_owned(),
        String::new(),
        app.workspace.id.as_str().to_uppercase(),
        "x".repeat(300),
    ];
    for ws in &bogus {
        for path in ["/v1/workspace", "/v1/keys"] {
            let r = app
                .get(path)
                .key(&token)
                .header("crier-workspace", ws)
                .send()
                .await;
            r.assert_error(404, "not_found");
            assert!(!r.text.contains("globex"), "{}", r.text);
        }
    }
    // A header value that is not text.
    let mut req = axum::http::Request::builder()
        .uri("/v1/workspace")
        .header("authorization", format!("Bearer {token}"))
        .header(
            "crier-workspace",
            axum::http::HeaderValue::from_bytes(b"ws_\xff").unwrap(),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    let resp = tower::ServiceExt::oneshot(app.router.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Without the header, the other workspace's things do not exist either.
    app.get(&format!("/v1/keys/{}", other_key.id))
        .key(&token)
        .send()
        .await
        .assert_error(404, "not_found");
}

/// Each workspace comes with its plan's quotas: one user cannot make them without end.
async fn a_user_owns_at_most_a_hundred_workspaces() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Member).await;
    let users = app.state.app().users();
    let max = crier_app::users::MAX_OWNED_WORKSPACES;
    for i in 0..max {
        users
            .create_workspace(&ada.id, &format!("Ada's {i}"))
            .await
            .unwrap();
    }
    let before = app.snapshot().await;
    let e = users
        .create_workspace(&ada.id, "one more")
        .await
        .expect_err("past the most one user may own");
    assert_eq!(e.code, crier_core::ErrorCode::InvalidRequest);
    assert!(e.message.contains("crier admin workspace create"), "{e:?}");
    assert_eq!(app.snapshot().await, before, "nothing made");
    // Another user is not held by Ada's.
    let bo = user(&app, "bo@example.com", Role::Member).await;
    users.create_workspace(&bo.id, "Bo's").await.unwrap();
}

async fn a_user_in_two_workspaces_acts_with_the_role_of_each() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Member).await;
    app.clock.advance(Duration::from_secs(1));
    let own = app
        .state
        .app()
        .users()
        .create_workspace(&ada.id, "Ada's own")
        .await
        .unwrap();
    let token = session(&app, &ada).await;
    let patch = json!({"timezone": "Europe/Paris"});

    // By default: the first workspace, as a member.
    let r = app.get("/v1/workspace").key(&token).send().await;
    assert_eq!(r.body["id"], app.workspace.id.as_str(), "{}", r.text);
    app.patch("/v1/workspace")
        .key(&token)
        .json(patch.clone())
        .send()
        .await
        .assert_error(403, "forbidden_scope");
    // In the workspace the user owns: everything.
    let r = app
        .patch("/v1/workspace")
        .key(&token)
        .header("crier-workspace", own.id.as_str())
        .json(patch.clone())
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], own.id.as_str());
    assert_eq!(r.body["timezone"], "Europe/Paris");
    let first = app
        .store
        .get_workspace(&app.workspace.id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(first.timezone, "Europe/Paris", "only the named one changed");
}

async fn a_members_session_acts_within_the_members_role() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Member).await;
    let token = session(&app, &ada).await;
    let before = app.snapshot().await;

    let r = app
        .patch("/v1/workspace")
        .key(&token)
        .json(json!({"timezone": "Europe/Paris", "require_approval": false}))
        .send()
        .await;
    r.assert_error(403, "forbidden_scope");
    assert_message_mentions(&r, "workspace:write");
    for scopes in [
        json!(["workspace:write"]),
        json!(["posts:read", "posts:approve"]),
        json!(["accounts:write"]),
        json!(["keys:write", "webhooks:write"]),
    ] {
        let r = app
            .post("/v1/keys")
            .key(&token)
            .json(json!({"name": "escalate", "scopes": scopes}))
            .send()
            .await;
        r.assert_error(403, "forbidden_scope");
    }
    assert_eq!(app.snapshot().await, before, "a refusal stores nothing");

    // Within the role: a key, made and recorded as the user's.
    let r = app
        .post("/v1/keys")
        .key(&token)
        .json(json!({"name": "ada's reader", "scopes": ["posts:read"]}))
        .send()
        .await;
    let (id, secret) = created(&r);
    assert_eq!(
        scope_set(&r.body["scopes"]),
        common::keys::set(&["posts:read"])
    );
    let audit = app
        .store
        .list_audit(&app.workspace.id, Some(&id))
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, "key.created");
    assert_eq!(audit[0].actor, Actor::User(ada.id.clone()));
    let row = common::keys::stored(&app, &common::keys::key_id(&r)).await;
    assert_eq!(row.created_by, None, "no stored key made it");
    assert_eq!(app.get("/v1/posts").key(&secret).send().await.status, 200);
    app.get("/v1/keys")
        .key(&secret)
        .send()
        .await
        .assert_error(403, "forbidden_scope");

    // Nor can a member take over a wider key that exists: for a member it does not exist (not
    // to change, to rotate, which would hand out its secret, or to revoke).
    let (admins, admins_row) = app
        .key(common::KeySpec {
            scopes: vec![Scope::WorkspaceWrite, Scope::PostsRead],
            ..common::KeySpec::default()
        })
        .await;
    let before = app.snapshot().await;
    let path = format!("/v1/keys/{}", admins_row.id);
    app.patch(&path)
        .key(&token)
        .json(json!({"scopes": ["posts:read"]}))
        .send()
        .await
        .assert_error(404, "not_found");
    app.post(&format!("{path}/rotate"))
        .key(&token)
        .send()
        .await
        .assert_error(404, "not_found");
    app.delete(&path)
        .key(&token)
        .send()
        .await
        .assert_error(404, "not_found");
    assert_eq!(app.snapshot().await, before);
    assert_eq!(
        app.get("/v1/workspace").key(&admins).send().await.status,
        200
    );
}

/// Members "manage their own keys" (README, Roles; `Role::administers`: only owners and admins
/// see the workspace's audit log and its members' keys). So a member's session neither lists
/// nor reads, changes, rotates (which would hand it a fresh secret of the key) or revokes a key
/// someone else made, even one within the member's own scopes.
async fn a_members_session_sees_and_manages_only_the_members_keys() {
    let app = TestApp::new().await;
    let admin = user(&app, "root@example.com", Role::Admin).await;
    let member = user(&app, "ada@example.com", Role::Member).await;
    let admin_token = session(&app, &admin).await;
    let (admins_id, admins_key) = make_key(
        &app,
        &admin_token,
        json!({"name": "production", "scopes": ["posts:read", "posts:write"]}),
    )
    .await;
    let (_, cli_row) = app
        .key(common::KeySpec {
            scopes: vec![Scope::PostsRead],
            ..common::KeySpec::default()
        })
        .await;
    let token = session(&app, &member).await;
    let (mine, _) = make_key(
        &app,
        &token,
        json!({"name": "mine", "scopes": ["posts:read"]}),
    )
    .await;
    // What the member makes is theirs as well, and so bounded as their session is: a key with
    // `keys:write` the member made, and a key that key made in turn (before, either saw every
    // key of the workspace, and could rotate the admin's to take its secret).
    let (tool, tool_key) = make_key(
        &app,
        &token,
        json!({"name": "member's tool", "scopes": ["keys:read", "keys:write", "posts:read"]}),
    )
    .await;
    let (made, made_key) = make_key(
        &app,
        &tool_key,
        json!({"name": "made by the tool", "scopes": ["keys:read", "keys:write"]}),
    )
    .await;
    let mut theirs = vec![mine.as_str(), tool.as_str(), made.as_str()];
    theirs.sort_unstable();
    // Keys of the admin's newer than the member's: a member's pages are of their keys alone.
    for name in ["later", "latest"] {
        make_key(
            &app,
            &admin_token,
            json!({"name": name, "scopes": ["posts:read"]}),
        )
        .await;
    }

    let before = app.snapshot().await;
    for actor in [&token, &tool_key, &made_key] {
        let mut seen = Vec::new();
        for id in [admins_id.as_str(), cli_row.id.as_str()] {
            let path = format!("/v1/keys/{id}");
            seen.push(("GET", id.to_owned(), app.get(&path).key(actor).send().await));
            seen.push((
                "PATCH",
                id.to_owned(),
                app.patch(&path)
                    .key(actor)
                    .json(json!({"name": "taken over"}))
                    .send()
                    .await,
            ));
            seen.push((
                "POST rotate",
                id.to_owned(),
                app.post(&format!("{path}/rotate")).key(actor).send().await,
            ));
            seen.push((
                "DELETE",
                id.to_owned(),
                app.delete(&path).key(actor).send().await,
            ));
        }
        let list = app.get("/v1/keys").key(actor).send().await;
        let mut listed: Vec<&str> = list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap())
            .collect();
        listed.sort_unstable();
        let answered: Vec<String> = seen
            .iter()
            .map(|(verb, id, r)| format!("{verb} {id} -> {}", r.status))
            .collect();
        assert!(
            seen.iter().all(|(.., r)| r.status == 404),
            "a member's session must not reach others' keys: {answered:#?}"
        );
        for (.., r) in &seen {
            r.assert_error(404, "not_found");
        }
        assert_eq!(listed, theirs, "a member lists only their own keys");
        let mut paged = Vec::new();
        for offset in [0, 2] {
            let r = app
                .get(&format!("/v1/keys?limit=2&offset={offset}"))
                .key(actor)
                .send()
                .await;
            assert_eq!(r.body["has_more"], offset == 0, "{}", r.text);
            for k in r.body["data"].as_array().unwrap() {
                paged.push(k["id"].as_str().unwrap().to_owned());
            }
        }
        paged.sort_unstable();
        assert_eq!(paged, theirs, "pages of the member's keys alone");
    }
    assert_eq!(app.snapshot().await, before, "nothing changed");
    assert_eq!(
        app.get("/v1/posts").key(&admins_key).send().await.status,
        200
    );

    // The member's own key, the member manages.
    let r = app
        .post(&format!("/v1/keys/{mine}/rotate"))
        .key(&token)
        .send()
        .await;
    created(&r);
}

/// Makes a key with `credential` (a session or a key) from `body`; its id and secret.
async fn make_key(app: &TestApp, credential: &str, body: serde_json::Value) -> (String, String) {
    let r = app.post("/v1/keys").key(credential).json(body).send().await;
    created(&r)
}

/// Keys made before keys knew their member (migration 0027): a member's session-made key, its
/// replacement and a key it made are found bounded to the member; an admin's are not.
async fn members_keys_made_before_keys_knew_their_member_are_found() {
    let app = TestApp::new().await;
    let admin = user(&app, "root@example.com", Role::Admin).await;
    let member = user(&app, "ada@example.com", Role::Member).await;
    let admin_token = session(&app, &admin).await;
    let (admins_id, _) = make_key(
        &app,
        &admin_token,
        json!({"name": "production", "scopes": ["posts:read"]}),
    )
    .await;
    let token = session(&app, &member).await;
    let (tool, tool_key) = make_key(
        &app,
        &token,
        json!({"name": "tool", "scopes": ["keys:read", "keys:write", "posts:read"]}),
    )
    .await;
    make_key(
        &app,
        &tool_key,
        json!({"name": "made", "scopes": ["posts:read"]}),
    )
    .await;
    let r = app
        .post(&format!("/v1/keys/{tool}/rotate"))
        .key(&token)
        .json(json!({"overlap_seconds": 3600}))
        .send()
        .await;
    let (_, replacement) = created(&r);
    // A member who left: the key their session made stays (a workspace key), bounded to them.
    let owner = user(&app, "owner@example.com", Role::Owner).await;
    let cy = user(&app, "cy@example.com", Role::Member).await;
    let cys_token = session(&app, &cy).await;
    let (_, cys_key) = make_key(
        &app,
        &cys_token,
        json!({"name": "cy's", "scopes": ["keys:read", "posts:read"]}),
    )
    .await;
    let users = app.state.app().users();
    let seat = users.seat(&owner.id, None).await.unwrap();
    users.remove_member(&seat, &owner.id, &cy.id).await.unwrap();
    app.raw_execute("UPDATE api_keys SET member_id = NULL")
        .await;
    let backfill = match app.backend() {
        crier_store::Backend::Sqlite => {
            include_str!("../../crier-store/migrations/sqlite/0027_key_members.sql")
        }
        crier_store::Backend::Postgres => {
            include_str!("../../crier-store/migrations/postgres/0027_key_members.sql")
        }
    };
    // The column and its index exist already: only the backfill runs again, twice.
    let backfill = backfill
        .split_once("CREATE INDEX api_keys_by_member")
        .and_then(|(_, rest)| rest.split_once(';'))
        .map(|(_, rest)| rest)
        .unwrap();
    let backfill: &'static str = Box::leak(backfill.to_owned().into_boxed_str());
    app.raw_execute(backfill).await;
    app.raw_execute(backfill).await;
    let mut bounded = app
        .raw_texts("SELECT member_id FROM api_keys ORDER BY id")
        .await;
    bounded.sort();
    let adas = Some(member.id.as_str().to_owned());
    let cys = Some(cy.id.as_str().to_owned());
    let mut expected = vec![None, adas.clone(), adas.clone(), adas, cys];
    expected.sort();
    assert_eq!(bounded, expected, "the admin's key is bound to no member");
    app.get(&format!("/v1/keys/{admins_id}"))
        .key(&cys_key)
        .send()
        .await
        .assert_error(404, "not_found");
    // And the replacement, bounded again, does not reach the admin's key.
    app.get(&format!("/v1/keys/{admins_id}"))
        .key(&replacement)
        .send()
        .await
        .assert_error(404, "not_found");
}

async fn an_admins_session_can_create_a_key_with_every_scope() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Admin).await;
    let token = session(&app, &ada).await;
    let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    let r = app
        .post("/v1/keys")
        .key(&token)
        .json(json!({"name": "everything", "scopes": all}))
        .send()
        .await;
    let (id, secret) = created(&r);
    assert_eq!(scope_set(&r.body["scopes"]), common::keys::set(&all));
    let audit = app
        .store
        .list_audit(&app.workspace.id, Some(&id))
        .await
        .unwrap();
    assert_eq!(audit[0].actor, Actor::User(ada.id.clone()));
    let r = app
        .patch("/v1/workspace")
        .key(&secret)
        .json(json!({"timezone": "Europe/Paris"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch("/v1/workspace")
        .key(&token)
        .json(json!({"timezone": "Asia/Tokyo"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A session reads its user's role on every request: a role lowered (or a member removed)
/// holds at once, not at the session's next login.
async fn a_lowered_role_holds_on_the_next_request() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Admin).await;
    let token = session(&app, &ada).await;
    let patch = json!({"timezone": "Europe/Paris"});
    let r = app
        .patch("/v1/workspace")
        .key(&token)
        .json(patch.clone())
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
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
    app.patch("/v1/workspace")
        .key(&token)
        .json(patch)
        .send()
        .await
        .assert_error(403, "forbidden_scope");
    app.post("/v1/keys")
        .key(&token)
        .json(json!({"scopes": ["workspace:write"]}))
        .send()
        .await
        .assert_error(403, "forbidden_scope");
}

// ---- Bad input and made-up tokens ----

async fn login_refuses_bad_bodies_with_the_envelope() {
    let app = TestApp::new().await;
    user(&app, "ada@example.com", Role::Member).await;
    let post = || app.post("/v1/auth/login");
    let json_body = |body: &str| {
        post()
            .header("content-type", "application/json")
            .raw(body.to_owned())
    };

    json_body(r#"{"email": "ada@example.com", "password": "#)
        .send()
        .await
        .assert_error(400, "invalid_request");
    json_body(r#"["ada@example.com", "x"]"#)
        .send()
        .await
        .assert_error(400, "invalid_request");
    let r = json_body(
        &json!({"email": "ada@example.com", "password": PASSWORD, "remember_me": true}).to_string(),
    )
    .send()
    .await;
    assert_param(&r, "remember_me");
    let r = json_body(r#"{"email": "ada@example.com"}"#).send().await;
    assert_param(&r, "password");
    let r = post().send().await;
    assert_param(&r, "email");
    let r = json_body(r#"{"email": ["ada@example.com"], "password": "x"}"#)
        .send()
        .await;
    assert_param(&r, "email");
    let r = json_body(&format!(
        r#"{{"email": "ada@example.com", "email": "bob@example.com", "password": "{PASSWORD}"}}"#
    ))
    .send()
    .await;
    r.assert_error(400, "invalid_request");
    post()
        .header("content-type", "text/plain")
        .raw(json!({"email": "ada@example.com", "password": PASSWORD}).to_string())
        .send()
        .await
        .assert_error(415, "unsupported_media_type");

    // Over 1 MiB: refused before it is parsed, whatever it holds.
    let huge = format!(
        r#"{{"email": "ada@example.com", "password": "{}"}}"#,
        "a".repeat(1024 * 1024)
    );
    json_body(&huge)
        .send()
        .await
        .assert_error(413, "payload_too_large");

    // None of it opened a session, nor throttled the account.
    assert_eq!(count(&app, "SELECT id FROM sessions").await, 0);
    let r = login_from(&app, "127.0.0.1", "ada@example.com", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn made_up_session_tokens_are_refused() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Admin).await;
    let real = session(&app, &ada).await;
    let fakes = [
        // The right shape, never issued.
        format!("sess_{}", "A".repeat(32)),
        // A real token with its last character changed.
        format!(
            "{}{}",
            &real[..real.len() - 1],
            if real.ends_with('a') { 'b' } else { 'a' }
        ),
        "sess_".to_owned(),
        "sess_short".to_owned(),
        format!("{real}x"),
        format!("sess_{}", "!".repeat(32)),
    ];
    for fake in &fakes {
        for ws in [None, Some(app.workspace.id.as_str())] {
            let mut call = app.get("/v1/workspace").key(fake).from_ip("10.0.0.9");
            if let Some(ws) = ws {
                call = call.header("crier-workspace", ws);
            }
            call.send().await.assert_error(401, "unauthorized");
        }
    }
    app.post("/v1/auth/logout")
        .key(&fakes[0])
        .send()
        .await
        .assert_error(401, "unauthorized");
    // The real one still works.
    assert_eq!(app.get("/v1/workspace").key(&real).send().await.status, 200);
}

/// Made-up tokens count against their address like made-up keys (`429` past the limit), but a
/// real session from that address still gets in.
async fn an_address_guessing_tokens_is_throttled_but_real_sessions_pass() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Member).await;
    let real = session(&app, &ada).await;
    let mut throttled = None;
    for i in 0..40 {
        let fake = format!("sess_{:0>32}", i);
        let r = app
            .get("/v1/workspace")
            .key(&fake)
            .from_ip("203.0.113.5")
            .send()
            .await;
        if r.status == 429 {
            r.assert_error(429, "rate_limited");
            assert!(r.header("retry-after").is_some());
            throttled = Some(i);
            break;
        }
        r.assert_error(401, "unauthorized");
    }
    assert!(throttled.is_some(), "40 made-up tokens from one address");
    let r = app
        .get("/v1/workspace")
        .key(&real)
        .from_ip("203.0.113.5")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Logging in from there waits, though: the address has used its budget.
    login_from(&app, "203.0.113.5", "ada@example.com", PASSWORD)
        .await
        .assert_error(429, "rate_limited");
}

both!(
    tests: login_answers_a_session_that_works_as_a_bearer,
    wrong_password_and_unknown_email_are_answered_alike,
    the_email_is_case_insensitive,
    failed_logins_throttle_the_account_and_only_it,
    concurrent_guesses_cannot_exceed_the_account_budget,
    a_browser_that_signed_in_before_is_not_locked_out_by_guesses,
    logout_ends_only_this_session_and_keys_cannot_log_out,
    a_session_expires_after_twelve_hours,
    crier_workspace_names_only_the_users_workspaces,
    a_user_in_two_workspaces_acts_with_the_role_of_each,
    a_user_owns_at_most_a_hundred_workspaces,
    a_members_session_acts_within_the_members_role,
    a_members_session_sees_and_manages_only_the_members_keys,
    members_keys_made_before_keys_knew_their_member_are_found,
    an_admins_session_can_create_a_key_with_every_scope,
    a_lowered_role_holds_on_the_next_request,
    login_refuses_bad_bodies_with_the_envelope,
    made_up_session_tokens_are_refused,
    an_address_guessing_tokens_is_throttled_but_real_sessions_pass,
);
