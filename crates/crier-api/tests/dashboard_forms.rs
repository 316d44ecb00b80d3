//! The dashboard's forms over HTTP, as an attacker and an unlucky user would send them: no CSRF
//! token, another site's `Origin`, an oversized body, no session, another workspace's id, an
//! expired invitation, a member reaching past the role, an open redirect after sign-in. Each
//! asserts the answer and that nothing changed in storage.

mod common;

use common::users::{Browser, PASSWORD, cookie_of, count, form, sign_in, submit, user};
use common::{Response, TestApp, both};
use crier_core::Role;

async fn keys(app: &TestApp) -> usize {
    count(app, "SELECT id FROM api_keys").await
}

async fn a_form_without_the_sessions_csrf_token_changes_nothing() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Owner).await;
    let b = sign_in(&app, &ada.email).await;
    let fields = [("name", "bot"), ("preset", "reporting")];
    for csrf in [None, Some(""), Some("forged-token-of-the-right-length-000")] {
        let mut pairs = fields.to_vec();
        if let Some(c) = csrf {
            pairs.push(("_csrf", c));
        }
        let r = submit(&app, &b, "/app/keys", &pairs).await;
        assert_eq!(r.status, 403, "{csrf:?}: {}", r.text);
        assert!(r.text.contains("security token"), "{}", r.text);
    }
    assert_eq!(keys(&app).await, 0);
    // Another site's page, with the right token (say it leaked): refused too.
    let r = app
        .post("/app/keys")
        .header("cookie", &b.cookie)
        .header("origin", "https://evil.example")
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(form(&[
            ("name", "bot"),
            ("preset", "reporting"),
            ("_csrf", &b.csrf),
        ]))
        .send()
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(keys(&app).await, 0);
    // The same form, right: a key.
    let mut pairs = fields.to_vec();
    pairs.push(("_csrf", &b.csrf));
    let r = submit(&app, &b, "/app/keys", &pairs).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(keys(&app).await, 1);
}

async fn an_oversized_form_is_refused_unread() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Owner).await;
    let b = sign_in(&app, &ada.email).await;
    let huge = "x".repeat(70 * 1024);
    let r = submit(
        &app,
        &b,
        "/app/keys",
        &[("_csrf", &b.csrf), ("name", "bot"), ("description", &huge)],
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(keys(&app).await, 0);
}

async fn pages_without_a_session_send_to_sign_in_and_back_only_here() {
    let app = TestApp::new().await;
    let _ = user(&app, "ada@example.com", Role::Owner).await;
    let r = app.get("/app/keys").send().await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?next=%2Fapp%2Fkeys"));
    let r = app.post("/app/keys").send().await;
    assert_eq!(r.status, 303, "a form without a session changes nothing");
    assert_eq!(keys(&app).await, 0);
    // A made-up or ended session is no session.
    let r = app
        .get("/app/keys")
        .header(
            "cookie",
            "crier_session=sess_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await;
    assert_eq!(r.status, 303);
    // After sign-in, only a path of this server: never another site, never a broken header.
    for next in [
        "//evil.example/x",
        "https://evil.example",
        "/\\evil.example",
        "/app\n",
        "/app\r\nSet-Cookie: crier_session=x",
        "/app/posts?q=caf\u{e9}",
    ] {
        // A minute apart: an account may sign in 5 times a minute.
        app.clock.advance(std::time::Duration::from_secs(61));
        let r = app
            .post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .raw(form(&[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("next", next),
            ]))
            .send()
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert_eq!(r.header("location"), Some("/app"), "{next}");
    }
}

async fn another_workspace_does_not_exist_for_a_session() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Owner).await;
    let other = app.other_workspace("rivals").await;
    let b = sign_in(&app, &ada.email).await;
    let r = submit(
        &app,
        &b,
        "/app/workspace",
        &[("_csrf", &b.csrf), ("workspace", other.id.as_str())],
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(cookie_of(&r, "crier_ws").is_none());
    // A cookie naming it is ignored: the pages show the user's own workspace.
    let cookie = format!("{}; crier_ws={}", b.cookie, other.id);
    let page = app.get("/app/keys").header("cookie", &cookie).send().await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains(&app.workspace.name));
    assert!(!page.text.contains("rivals"));
}

async fn an_expired_invitation_makes_no_user() {
    let app = TestApp::new().await;
    let _ = user(&app, "root@example.com", Role::Owner).await;
    let users = app.state.app().users();
    let owner = app
        .store
        .user_by_email("root@example.com")
        .await
        .unwrap()
        .unwrap();
    let seat = users.seat(&owner.id, None).await.unwrap();
    let (_, token) = users
        .invite(&seat, &owner.id, Role::Member, None)
        .await
        .unwrap();
    app.clock
        .advance(std::time::Duration::from_secs(7 * 86_400 + 1));
    let before = count(&app, "SELECT id FROM users").await;
    let r = app
        .post("/signup")
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(form(&[
            ("invite", &token),
            ("name", "Grace"),
            ("email", "grace@example.com"),
            ("password", PASSWORD),
        ]))
        .send()
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("not valid"), "{}", r.text);
    assert_eq!(count(&app, "SELECT id FROM users").await, before);
    // And sign-up without an invitation is closed once the install has a user.
    let r = app
        .post("/signup")
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(form(&[
            ("name", "Mallory"),
            ("email", "mallory@example.com"),
            ("password", PASSWORD),
        ]))
        .send()
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(count(&app, "SELECT id FROM users").await, before);
}

async fn a_members_pages_stop_at_the_role() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Member).await;
    let b = sign_in(&app, &ada.email).await;
    let invitations = count(&app, "SELECT id FROM invitations").await;
    let r = submit(
        &app,
        &b,
        "/app/members/invite",
        &[("_csrf", &b.csrf), ("role", "member")],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(count(&app, "SELECT id FROM invitations").await, invitations);
    let r = submit(
        &app,
        &b,
        "/app/keys",
        &[
            ("_csrf", &b.csrf),
            ("name", "wide"),
            ("preset", "custom"),
            ("scope", "workspace:write"),
        ],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(keys(&app).await, 0);
    // "All scopes" is what the role allows, not more.
    let r = submit(
        &app,
        &b,
        "/app/keys",
        &[("_csrf", &b.csrf), ("name", "all mine"), ("preset", "all")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let stored = app.raw_texts("SELECT scopes FROM api_keys").await;
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].as_deref().unwrap().contains("workspace:write"));
}

async fn only_owners_and_admins_rename_the_workspace() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Member).await;
    let root = user(&app, "root@example.com", Role::Admin).await;
    let name = || async {
        app.store
            .get_workspace(&app.workspace.id)
            .await
            .unwrap()
            .unwrap()
            .name
    };
    let b = sign_in(&app, &ada.email).await;
    let r = submit(
        &app,
        &b,
        "/app/workspace/rename",
        &[("_csrf", &b.csrf), ("name", "mine now")],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(name().await, app.workspace.name);
    let b = sign_in(&app, &root.email).await;
    let r = submit(
        &app,
        &b,
        "/app/workspace/rename",
        &[("_csrf", &b.csrf), ("name", "\u{7}")],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(name().await, app.workspace.name);
    let r = submit(
        &app,
        &b,
        "/app/workspace/rename",
        &[("_csrf", &b.csrf), ("name", " Acme Ltd ")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(name().await, "Acme Ltd");
}

async fn signing_out_ends_the_session() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Owner).await;
    let b = sign_in(&app, &ada.email).await;
    let r = submit(&app, &b, "/logout", &[("_csrf", &b.csrf)]).await;
    assert_eq!(r.status, 303);
    assert!(
        cookie_of(&r, "crier_session").is_some_and(|c| c == "crier_session="),
        "the cookie is cleared"
    );
    let r = app
        .get("/app/keys")
        .header("cookie", &b.cookie)
        .send()
        .await;
    assert_eq!(r.status, 303, "the old cookie no longer signs in");
}

/// A page script's JSON call: the session's cookie, and its CSRF token in `X-CSRF-Token` when
/// given.
async fn script(
    app: &TestApp,
    b: &Browser,
    path: &str,
    csrf: Option<&str>,
    body: &str,
) -> Response {
    let mut call = app
        .post(path)
        .header("cookie", &b.cookie)
        .header("content-type", "application/json");
    if let Some(c) = csrf {
        call = call.header("x-csrf-token", c);
    }
    call.raw(body.to_owned()).send().await
}

async fn media_rows(app: &TestApp) -> usize {
    count(app, "SELECT id FROM media").await
}

async fn the_composers_uploads_need_the_sessions_token_and_this_site() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Owner).await;
    let b = sign_in(&app, &ada.email).await;
    let good = r#"{"filename":"spring.png","content_type":"image/png","size":1024}"#;
    for csrf in [None, Some(""), Some("forged")] {
        let r = script(&app, &b, "/app/media/upload-url", csrf, good).await;
        r.assert_error(403, "forbidden_scope");
    }
    let r = app
        .post("/app/media/upload-url")
        .header("cookie", &b.cookie)
        .header("x-csrf-token", &b.csrf)
        .header("origin", "https://evil.example")
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/json")
        .raw(good)
        .send()
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    // Without a session: to sign in, nothing made.
    let r = app
        .post("/app/media/upload-url")
        .header("x-csrf-token", &b.csrf)
        .raw(good)
        .send()
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(media_rows(&app).await, 0);
    // Bad input gets the API's own errors, as JSON the script shows.
    let t = Some(b.csrf.as_str());
    script(&app, &b, "/app/media/upload-url", t, "{not json")
        .await
        .assert_error(400, "invalid_request");
    let r = script(
        &app,
        &b,
        "/app/media/upload-url",
        t,
        r#"{"filename":"a.exe","content_type":"application/x-msdownload","size":10}"#,
    )
    .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "content_type", "{}", r.text);
    let huge = format!(
        r#"{{"filename":"{}","content_type":"image/png","size":1}}"#,
        "x".repeat(70 * 1024)
    );
    assert_eq!(
        script(&app, &b, "/app/media/upload-url", t, &huge)
            .await
            .status,
        413
    );
    assert_eq!(media_rows(&app).await, 0);
    // Right: a pending upload and its signed URL; confirming before the bytes is refused.
    let r = script(&app, &b, "/app/media/upload-url", t, good).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["upload"]["method"], "PUT");
    let id = r.body["id"].as_str().unwrap();
    let r = script(&app, &b, &format!("/app/media/{id}/confirm"), t, "").await;
    r.assert_error(409, "conflict");
    script(
        &app,
        &b,
        "/app/media/med_0000000000000000000000/confirm",
        t,
        "",
    )
    .await
    .assert_error(404, "not_found");
    // Another workspace's upload does not exist here.
    let other = app.other_workspace("rivals").await;
    let (theirs, _) = app
        .key_in(
            &other,
            common::KeySpec {
                scopes: crier_core::Scope::ALL.to_vec(),
                ..Default::default()
            },
        )
        .await;
    let r = app
        .post("/v1/media/upload-url")
        .key(&theirs)
        .raw(good)
        .header("content-type", "application/json")
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let their_id = r.body["id"].as_str().unwrap();
    script(&app, &b, &format!("/app/media/{their_id}/confirm"), t, "")
        .await
        .assert_error(404, "not_found");
    assert_eq!(media_rows(&app).await, 2);
}

async fn the_calendar_draws_a_month_in_the_workspaces_time_zone() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Owner).await;
    let key = app.admin_key().await;
    common::posts::patch_workspace(
        &app,
        &key,
        serde_json::json!({"timezone": "America/New_York"}),
    )
    .await;
    let acct = app.sandbox_account(&key, "springshop").await;
    // 03:00 UTC on the 10th is the evening of the 9th in New York.
    let id = common::posts::draft(&app, &key, &[&acct], "Late-night launch").await;
    common::posts::act_ok(
        &app,
        &key,
        &id,
        "schedule",
        Some(serde_json::json!({"scheduled_at": "2026-12-10T03:00:00Z"})),
        "scheduled",
    )
    .await;
    // Another workspace's post on the same day is not drawn.
    let other = app.other_workspace("rivals").await;
    let (theirs, _) = app
        .key_in(
            &other,
            common::KeySpec {
                scopes: crier_core::Scope::ALL.to_vec(),
                ..Default::default()
            },
        )
        .await;
    let their_acct = app.sandbox_account(&theirs, "rival").await;
    let their_id = common::posts::draft(&app, &theirs, &[&their_acct], "Their launch").await;
    common::posts::act_ok(
        &app,
        &theirs,
        &their_id,
        "schedule",
        Some(serde_json::json!({"scheduled_at": "2026-12-10T03:00:00Z"})),
        "scheduled",
    )
    .await;
    let b = sign_in(&app, &ada.email).await;
    let page = app
        .get("/app/posts/calendar?month=2026-12")
        .header("cookie", &b.cookie)
        .send()
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("December 2026"));
    let day = page
        .text
        .split("data-date=\"2026-12-09\"")
        .nth(1)
        .unwrap()
        .split("</td>")
        .next()
        .unwrap();
    assert!(
        day.contains(&format!("/app/posts/{id}")) && day.contains("22:00"),
        "{day}"
    );
    assert!(!page.text.contains(&their_id));
    // The grid runs Monday to Sunday: 30 November to 3 January.
    assert!(page.text.contains("data-date=\"2026-11-30\""));
    assert!(page.text.contains("data-date=\"2027-01-03\""));
    assert!(!page.text.contains("data-date=\"2026-11-29\""));
    // Bad months are a clear error, not a guess.
    for bad in ["2026-13", "1999-01", "abc", "2026-1", "20261-01"] {
        let r = app
            .get(&format!("/app/posts/calendar?month={bad}"))
            .header("cookie", &b.cookie)
            .send()
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.text.contains("YYYY-MM"), "{bad}");
    }
}

/// A NUL (`%00`) in any form field is refused before the form is read, as in JSON bodies:
/// PostgreSQL cannot store it, and a webhook's description or a login's email with one
/// answered 500 there.
async fn a_nul_in_any_form_field_is_refused_and_changes_nothing() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Owner).await;
    let r = app
        .post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(form(&[
            ("email", "ada\u{0}@example.com"),
            ("password", PASSWORD),
        ]))
        .send()
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("NUL"), "{}", r.text);
    assert!(cookie_of(&r, "crier_session").is_none());
    let b = sign_in(&app, &ada.email).await;
    let r = submit(
        &app,
        &b,
        "/app/webhooks",
        &[
            ("_csrf", &b.csrf),
            ("url", "https://example.com/hook"),
            ("event", "post.published"),
            ("description", "a\u{0}b"),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    for livemode in [true, false] {
        let hooks = app
            .store
            .list_endpoints(&app.workspace.id, livemode, 100, 0)
            .await
            .unwrap();
        assert!(hooks.items.is_empty(), "nothing stored");
    }
}

/// Served over https, the dashboard's cookies are `Secure` and carry the prefixes browsers
/// hold them to (`__Host-`, `__Secure-` for the one of a single path), and a cookie without
/// the prefix (which a sibling subdomain or plain http could have planted) is not read.
async fn over_https_the_cookies_are_prefixed_and_only_prefixed_ones_are_read() {
    let config = crier_api::ApiConfig {
        public_url: "https://crier.example.com".into(),
        ..Default::default()
    };
    let app = TestApp::with_config(config, "self-hosted").await;
    let ada = user(&app, "ada@example.com", Role::Admin).await;
    let r = app
        .post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(form(&[("email", &ada.email), ("password", PASSWORD)]))
        .send()
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let set: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let session = set
        .iter()
        .find(|c| c.starts_with("__Host-crier_session="))
        .unwrap_or_else(|| panic!("{set:?}"));
    assert!(
        session.contains("; Path=/;") && session.ends_with("; Secure"),
        "{session}"
    );
    let browser = set
        .iter()
        .find(|c| c.starts_with("__Secure-crier_browser="))
        .unwrap_or_else(|| panic!("{set:?}"));
    assert!(
        browser.contains("; Path=/login;") && browser.ends_with("; Secure"),
        "{browser}"
    );
    assert!(!set.iter().any(|c| c.starts_with("crier_")), "{set:?}");

    let prefixed = cookie_of(&r, "__Host-crier_session").unwrap();
    let token = prefixed.split_once('=').unwrap().1;
    let r = app
        .get("/app/keys")
        .header("cookie", &prefixed)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .get("/app/keys")
        .header("cookie", &format!("crier_session={token}"))
        .send()
        .await;
    assert_eq!(r.status, 303, "an unprefixed cookie is not read");
    assert!(r.header("location").unwrap().starts_with("/login"));
}

both!(
    tests: over_https_the_cookies_are_prefixed_and_only_prefixed_ones_are_read,
    a_nul_in_any_form_field_is_refused_and_changes_nothing,
    the_composers_uploads_need_the_sessions_token_and_this_site,
    the_calendar_draws_a_month_in_the_workspaces_time_zone, a_form_without_the_sessions_csrf_token_changes_nothing,
    an_oversized_form_is_refused_unread,
    pages_without_a_session_send_to_sign_in_and_back_only_here,
    another_workspace_does_not_exist_for_a_session,
    an_expired_invitation_makes_no_user,
    a_members_pages_stop_at_the_role,
    signing_out_ends_the_session,
    only_owners_and_admins_rename_the_workspace,
);
