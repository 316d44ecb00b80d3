//! Per-key daily usage and the recent request log over HTTP: counts after successes, errors and
//! rate-limited calls, written only by the batched flush; `days` bounded; a request found by
//! its `X-Request-Id` with its route template and nothing of its query string; another
//! workspace's requests and keys, and other users' keys for a member, as `404`; nothing logged
//! for unauthenticated requests; entries older than 7 days purged. The dashboard's key page
//! (its chart) and its request look-up, as the API decides.

mod common;

use std::time::Duration;

use common::keys::{assert_param, assert_status, created};
use common::users::{PASSWORD, session, user};
use common::{KeySpec, Response, TestApp, both};
use crier_core::{Clock, Role, Scope};
use serde_json::{Value, json};

const DAY: Duration = Duration::from_secs(86_400);

fn day_of(t: jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .strftime("%Y-%m-%d")
        .to_string()
}

fn request_id(r: &Response) -> String {
    r.header("x-request-id").expect("X-Request-Id").to_owned()
}

async fn log_rows(app: &TestApp) -> Vec<Option<String>> {
    app.raw_texts(
        "SELECT request_id || '|' || workspace_id || '|' || key_id || '|' || method || '|' || path
            || '|' || status || '|' || COALESCE(error_code, '') FROM request_log ORDER BY at",
    )
    .await
}

async fn daily_rows(app: &TestApp) -> Vec<Option<String>> {
    app.raw_texts("SELECT key_id || '|' || day FROM key_usage_daily ORDER BY key_id, day")
        .await
}

fn usage_counts(r: &Response) -> Vec<(String, i64, i64, i64)> {
    r.body["days"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.text))
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_owned(),
                d["requests"].as_i64().unwrap(),
                d["errors"].as_i64().unwrap(),
                d["rate_limited"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn usage_counts_successes_errors_and_rate_limited_calls_per_day() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (tiny, tiny_row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            per_minute: Some(5),
            ..KeySpec::default()
        })
        .await;
    // 3 successes, 2 errors (a 404 and a 400), then 3 refused by the per-minute limit of 5.
    for _ in 0..3 {
        assert_status(&app.get("/v1/keys").key(&tiny).send().await, 200);
    }
    app.get("/v1/keys/key_nonsense")
        .key(&tiny)
        .send()
        .await
        .assert_error(404, "not_found");
    assert_param(
        &app.get("/v1/keys?limit=99").key(&tiny).send().await,
        "limit",
    );
    for _ in 0..3 {
        app.get("/v1/keys")
            .key(&tiny)
            .send()
            .await
            .assert_error(429, "rate_limited");
    }
    let path = format!("/v1/keys/{}/usage?days=3", tiny_row.id);
    let today = day_of(app.clock.now());
    let before = usage_counts(&app.get(&path).key(&admin).send().await);
    assert!(
        before.iter().all(|(_, r, e, l)| (r, e, l) == (&0, &0, &0)),
        "nothing is written before the flush: {before:?}"
    );

    app.state.flush_usage().await;
    let r = app.get(&path).key(&admin).send().await;
    assert_status(&r, 200);
    assert_eq!(r.body["object"], "key_usage");
    assert_eq!(r.body["key_id"], tiny_row.id.as_str());
    let days = usage_counts(&r);
    assert_eq!(days.len(), 3);
    assert_eq!(days[2], (today.clone(), 8, 2, 3), "{}", r.text);
    assert_eq!((days[0].1, days[1].1), (0, 0), "zeros filled: {days:?}");
    // `request_count` keeps counting only the requests the rate limit let through.
    assert_eq!(
        common::keys::stored(&app, &tiny_row.id).await.request_count,
        5
    );

    // The next day counts apart; the day before is kept.
    app.clock.advance(DAY);
    assert_status(&app.get("/v1/keys").key(&tiny).send().await, 200);
    app.state.flush_usage().await;
    let r = app
        .get(&format!("/v1/keys/{}/usage?days=2", tiny_row.id))
        .key(&admin)
        .send()
        .await;
    assert_eq!(
        usage_counts(&r),
        vec![(today, 8, 2, 3), (day_of(app.clock.now()), 1, 0, 0)]
    );
}

async fn days_are_bounded_and_every_day_is_present() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (_, row) = app
        .key(KeySpec {
            scopes: vec![Scope::PostsRead],
            ..KeySpec::default()
        })
        .await;
    let base = format!("/v1/keys/{}/usage", row.id);
    app.state.flush_usage().await;
    let before = (
        app.snapshot().await,
        daily_rows(&app).await,
        log_rows(&app).await,
    );
    for bad in ["0", "91", "abc", "-1", "1.5", ""] {
        let r = app
            .get(&format!("{base}?days={bad}"))
            .key(&admin)
            .send()
            .await;
        assert_param(&r, "days");
    }
    assert_eq!(
        (
            app.snapshot().await,
            daily_rows(&app).await,
            log_rows(&app).await
        ),
        before,
        "refused reads write nothing"
    );
    let today = app.clock.now();
    for (query, n) in [("", 30), ("?days=1", 1), ("?days=90", 90)] {
        let r = app.get(&format!("{base}{query}")).key(&admin).send().await;
        assert_status(&r, 200);
        let days = usage_counts(&r);
        assert_eq!(days.len(), n, "{query}");
        assert_eq!(days.last().unwrap().0, day_of(today), "{query}: ends today");
        let first = today
            .checked_sub(jiff::SignedDuration::from_hours(24 * (n as i64 - 1)))
            .unwrap();
        assert_eq!(days[0].0, day_of(first), "{query}: oldest first");
        assert!(
            days.windows(2).all(|w| w[0].0 < w[1].0),
            "{query}: in order"
        );
        assert!(days.iter().all(|d| (d.1, d.2, d.3) == (0, 0, 0)));
    }
    // Another workspace's key, an unknown key and a malformed id: 404 alike.
    let other = app.other_workspace("globex").await;
    let (_, theirs) = app
        .key_in(
            &other,
            KeySpec {
                scopes: vec![Scope::PostsRead],
                ..KeySpec::default()
            },
        )
        .await;
    for id in [theirs.id.as_str(), "key_0000000000000000000000", "nonsense"] {
        app.get(&format!("/v1/keys/{id}/usage"))
            .key(&admin)
            .send()
            .await
            .assert_error(404, "not_found");
    }
}

async fn a_request_is_found_by_its_id_after_the_flush_with_its_route_template() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let secret = "sk_live_doNotStoreThisQueryValue0000000";
    let r = app
        .get(&format!("/v1/keys/{}", row.id))
        .key(&key)
        .send()
        .await;
    assert_status(&r, 200);
    let ok_id = request_id(&r);
    // A query string (here refused: the route takes none) is logged without it.
    app.get(&format!("/v1/keys/{}?token={secret}&x=1", row.id))
        .key(&key)
        .send()
        .await
        .assert_error(400, "invalid_request");
    let r = app.get("/v1/keys/key_nonsense").key(&key).send().await;
    r.assert_error(404, "not_found");
    let failed_id = request_id(&r);

    // Not yet written: the log is flushed every few seconds.
    app.get(&format!("/v1/requests/{ok_id}"))
        .key(&admin)
        .send()
        .await
        .assert_error(404, "not_found");

    app.clock.advance(Duration::from_secs(1));
    app.state.flush_usage().await;
    let r = app
        .get(&format!("/v1/requests/{ok_id}"))
        .key(&admin)
        .send()
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["object"], "request");
    assert_eq!(r.body["id"], ok_id.as_str());
    assert_eq!(r.body["key_id"], row.id.as_str());
    assert_eq!(r.body["method"], "GET");
    assert_eq!(
        r.body["path"], "/v1/keys/{id}",
        "the template, not the raw path"
    );
    assert_eq!(r.body["status"], 200);
    assert_eq!(r.body["error_code"], Value::Null);
    assert!(r.body["duration_ms"].as_i64().unwrap() >= 0);
    assert!(r.body["created_at"].is_string());

    let r = app
        .get(&format!("/v1/requests/{failed_id}"))
        .key(&admin)
        .send()
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["status"], 404);
    assert_eq!(r.body["error_code"], "not_found");
    assert_eq!(r.body["path"], "/v1/keys/{id}");

    // Nothing of the query string, nor the raw path's id, is at rest.
    let rows = log_rows(&app).await;
    assert!(rows.len() >= 3, "{rows:?}");
    for row_text in rows.iter().flatten() {
        assert!(!row_text.contains(secret), "{row_text}");
        assert!(!row_text.contains("token="), "{row_text}");
        assert!(!row_text.contains("key_nonsense"), "{row_text}");
    }

    // A key with keys:read can look up its own requests; one without it cannot.
    assert_status(
        &app.get(&format!("/v1/requests/{ok_id}"))
            .key(&key)
            .send()
            .await,
        200,
    );
    let posts_only = app.key_with(&[Scope::PostsRead]).await;
    app.get(&format!("/v1/requests/{ok_id}"))
        .key(&posts_only)
        .send()
        .await
        .assert_error(403, "forbidden_scope");

    // Unknown and malformed ids: the same 404 as any other.
    for id in ["req_0000000000000000000000", "nonsense", "key_nonsense"] {
        let r = app
            .get(&format!("/v1/requests/{id}"))
            .key(&admin)
            .send()
            .await;
        r.assert_error(404, "not_found");
        assert_eq!(
            r.body["error"]["message"],
            format!("No such request: '{id}'.")
        );
    }
}

async fn another_workspaces_requests_do_not_exist() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let other = app.other_workspace("globex").await;
    let (theirs, _) = app
        .key_in(
            &other,
            KeySpec {
                scopes: vec![Scope::KeysRead],
                ..KeySpec::default()
            },
        )
        .await;
    let r = app.get("/v1/keys").key(&theirs).send().await;
    assert_status(&r, 200);
    let id = request_id(&r);
    app.state.flush_usage().await;
    assert_status(
        &app.get(&format!("/v1/requests/{id}"))
            .key(&theirs)
            .send()
            .await,
        200,
    );
    let r = app
        .get(&format!("/v1/requests/{id}"))
        .key(&admin)
        .send()
        .await;
    r.assert_error(404, "not_found");
    assert_eq!(
        r.body["error"]["message"],
        format!("No such request: '{id}'."),
        "the same answer as an unknown id"
    );
}

async fn a_member_sees_only_the_usage_and_requests_of_the_members_keys() {
    let app = TestApp::new().await;
    let admin = user(&app, "root@example.com", Role::Admin).await;
    let member = user(&app, "ada@example.com", Role::Member).await;
    let admin_session = session(&app, &admin).await;
    let member_session = session(&app, &member).await;
    let r = app
        .post("/v1/keys")
        .key(&admin_session)
        .json(json!({"name": "production", "scopes": ["keys:read"]}))
        .send()
        .await;
    let (admins_id, admins_key) = created(&r);
    let r = app
        .post("/v1/keys")
        .key(&member_session)
        .json(json!({"name": "mine", "scopes": ["keys:read"]}))
        .send()
        .await;
    let (mine_id, mine_key) = created(&r);

    let by_admins_key = request_id(&app.get("/v1/keys").key(&admins_key).send().await);
    let by_mine = request_id(&app.get("/v1/keys").key(&mine_key).send().await);
    let by_admin_session = request_id(&app.get("/v1/keys").key(&admin_session).send().await);
    let by_member_session = request_id(&app.get("/v1/keys").key(&member_session).send().await);
    app.state.flush_usage().await;

    let get = |path: String, token: &str| {
        let token = token.to_owned();
        let app = &app;
        async move { app.get(&path).key(&token).send().await }
    };
    // The member: their own key and session, nothing else.
    for (path, status) in [
        (format!("/v1/keys/{admins_id}/usage"), 404),
        (format!("/v1/requests/{by_admins_key}"), 404),
        (format!("/v1/requests/{by_admin_session}"), 404),
        (format!("/v1/keys/{mine_id}/usage"), 200),
        (format!("/v1/requests/{by_mine}"), 200),
        (format!("/v1/requests/{by_member_session}"), 200),
    ] {
        let r = get(path.clone(), &member_session).await;
        assert_eq!(r.status.as_u16(), status, "member: {path}: {}", r.text);
        if status == 404 {
            r.assert_error(404, "not_found");
        }
    }
    // The admin sees every key's and every session's requests.
    for path in [
        format!("/v1/keys/{mine_id}/usage"),
        format!("/v1/requests/{by_mine}"),
        format!("/v1/requests/{by_member_session}"),
        format!("/v1/requests/{by_admins_key}"),
    ] {
        assert_status(&get(path, &admin_session).await, 200);
    }
    // A session's requests are logged, but a session is not a key: no daily usage rows.
    let r = get(format!("/v1/requests/{by_member_session}"), &admin_session).await;
    assert_eq!(r.body["path"], "/v1/keys");
    let daily = daily_rows(&app).await;
    let keys_with_usage: std::collections::BTreeSet<String> = daily
        .iter()
        .flatten()
        .map(|r| r.split('|').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys_with_usage,
        [admins_id.clone(), mine_id.clone()].into_iter().collect(),
        "{daily:?}"
    );
}

async fn unauthenticated_requests_are_not_logged() {
    let app = TestApp::new().await;
    let (key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_ips: Some(vec!["10.0.0.0/8".into()]),
            ..KeySpec::default()
        })
        .await;
    app.get("/v1/keys")
        .send()
        .await
        .assert_error(401, "unauthorized");
    app.get("/v1/keys")
        .key("sk_live_notAKeyAtAll")
        .send()
        .await
        .assert_error(401, "unauthorized");
    app.get("/v1/keys")
        .key("sess_0000000000000000000000000000000000000000")
        .send()
        .await
        .assert_error(401, "unauthorized");
    app.get("/v1/no-such-route")
        .send()
        .await
        .assert_error(404, "not_found");
    assert_status(&app.get("/healthz").send().await, 200);
    app.post("/v1/auth/login")
        .json(json!({"email": "nobody@example.com", "password": PASSWORD}))
        .send()
        .await
        .assert_error(401, "unauthorized");
    // A real key from an address it may not be used from is refused before it authenticates.
    app.get("/v1/keys")
        .key(&key)
        .from_ip("192.0.2.1")
        .send()
        .await
        .assert_error(403, "ip_not_allowed");
    assert_eq!(app.state.auth().usage.pending_log(), 0);
    app.state.flush_usage().await;
    assert_eq!(log_rows(&app).await, Vec::<Option<String>>::new());
    assert_eq!(daily_rows(&app).await, Vec::<Option<String>>::new());
}

async fn entries_older_than_seven_days_are_purged() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let old = request_id(&app.get("/v1/keys").key(&admin).send().await);
    app.state.flush_usage().await;
    app.clock.advance(6 * DAY);
    let recent = request_id(&app.get("/v1/keys").key(&admin).send().await);
    app.state.flush_usage().await;
    app.state.purge_activity().await.unwrap();
    for id in [&old, &recent] {
        assert_status(
            &app.get(&format!("/v1/requests/{id}"))
                .key(&admin)
                .send()
                .await,
            200,
        );
    }
    app.clock.advance(DAY + Duration::from_secs(1));
    assert_eq!(app.state.purge_activity().await.unwrap(), 1);
    app.get(&format!("/v1/requests/{old}"))
        .key(&admin)
        .send()
        .await
        .assert_error(404, "not_found");
    assert_status(
        &app.get(&format!("/v1/requests/{recent}"))
            .key(&admin)
            .send()
            .await,
        200,
    );
    // Daily counts are kept 90 days.
    let days = daily_rows(&app).await.len();
    assert!(days >= 2, "{days}");
    app.clock.advance(100 * DAY);
    app.state.purge_activity().await.unwrap();
    assert_eq!(daily_rows(&app).await, Vec::<Option<String>>::new());
}

// ---- The dashboard: a key's page and the request look-up ----

fn cookie_of(r: &Response, name: &str) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// The session cookie of `email` (who has [`PASSWORD`]), signed in through the dashboard.
async fn sign_in(app: &TestApp, email: &str) -> String {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("email", email),
            ("password", PASSWORD),
            ("next", "/app/keys"),
        ])
        .finish();
    let r = app
        .post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(body)
        .send()
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    cookie_of(&r, "crier_session").expect("a session cookie")
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> Response {
    app.get(path).header("cookie", cookie).send().await
}

async fn the_dashboard_shows_a_keys_usage_chart_and_looks_up_requests() {
    let app = TestApp::new().await;
    let owner = user(&app, "root@example.com", Role::Owner).await;
    let member = user(&app, "ada@example.com", Role::Member).await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let ok = request_id(&app.get("/v1/keys").key(&key).send().await);
    app.get("/v1/keys/key_nonsense").key(&key).send().await;
    let other = app.other_workspace("globex").await;
    let (theirs, their_row) = app
        .key_in(
            &other,
            KeySpec {
                scopes: vec![Scope::KeysRead],
                ..KeySpec::default()
            },
        )
        .await;
    let their_request = request_id(&app.get("/v1/keys").key(&theirs).send().await);
    app.state.flush_usage().await;
    let cookie = sign_in(&app, &owner.email).await;

    // The list links to each key's page.
    let list = page(&app, &cookie, "/app/keys").await;
    assert_eq!(list.status, 200);
    assert!(
        list.text
            .contains(&format!("href=\"/app/keys/{}\"", row.id))
    );
    assert!(
        list.text.contains("action=\"/app/requests\""),
        "the look-up form"
    );

    let r = page(&app, &cookie, &format!("/app/keys/{}", row.id)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let today = day_of(app.clock.now());
    for needle in [
        "<svg class=\"usage-chart\" viewBox=\"0 0 360.0 136.0\" width=\"100%\"",
        &format!("<title>{today}: 2 requests, 1 error, 0 rate-limited</title>"),
        "class=\"bar-ok\"",
        "class=\"bar-error\"",
        "Rate-limited (429)",
        "In the last 30 days: 2 requests, 1 error, 0 rate-limited.",
        &format!("<th scope=\"row\">{today}</th><td>2</td><td>1</td><td>0</td>"),
    ] {
        assert!(r.text.contains(needle), "{needle} in\n{}", r.text);
    }
    assert_eq!(r.text.matches("<title>").count(), 30 + 1, "a title per bar");
    assert!(
        !r.text.contains("style="),
        "the CSP blocks style attributes"
    );

    // Another workspace's key: the 404 page.
    let r = page(&app, &cookie, &format!("/app/keys/{}", their_row.id)).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.text.contains("data-code=\"not_found\""));

    // The look-up: found, not (yet) found, another workspace's.
    let r = page(&app, &cookie, &format!("/app/requests?id={ok}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains(&format!("data-request-id=\"{ok}\"")));
    assert!(r.text.contains("<code>GET /v1/keys</code>"), "{}", r.text);
    for id in [
        their_request.as_str(),
        "req_0000000000000000000000",
        "nonsense",
    ] {
        let r = page(&app, &cookie, &format!("/app/requests?id={id}")).await;
        assert_eq!(r.status, 404, "{id}: {}", r.text);
        assert!(r.text.contains("every few seconds"), "{}", r.text);
        assert!(!r.text.contains("data-request-id"), "{id}");
    }
    assert_eq!(page(&app, &cookie, "/app/requests").await.status, 200);

    // A member sees neither the key nor its requests.
    let members = sign_in(&app, &member.email).await;
    let r = page(&app, &members, &format!("/app/keys/{}", row.id)).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = page(&app, &members, &format!("/app/requests?id={ok}")).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(!r.text.contains("data-request-id"));
    // Signed out: the sign-in page, nothing else.
    let r = app.get(&format!("/app/keys/{}", row.id)).send().await;
    assert_ne!(r.status, 200);
    assert!(!r.text.contains("usage-chart"));
}

both!(
    tests: usage_counts_successes_errors_and_rate_limited_calls_per_day,
    days_are_bounded_and_every_day_is_present,
    a_request_is_found_by_its_id_after_the_flush_with_its_route_template,
    another_workspaces_requests_do_not_exist,
    a_member_sees_only_the_usage_and_requests_of_the_members_keys,
    unauthenticated_requests_are_not_logged,
    entries_older_than_seven_days_are_purged,
    the_dashboard_shows_a_keys_usage_chart_and_looks_up_requests,
);
