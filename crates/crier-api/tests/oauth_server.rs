//! crier as an OAuth 2.1 authorization server (issue 16), over HTTP on both backends: discovery
//! from an unauthenticated `/mcp` call, registration, the consent page, the code exchange with
//! PKCE, refresh rotation and its replay, revocation (RFC 7009, Settings, leaving the
//! workspace), and every refusal the issue lists: wrong verifier, reused code, redirect
//! mismatch, another resource, expired code and token, wrong client secret, a metadata URL on a
//! private address. Each refusal asserts the OAuth error and what storage holds after it.
//! Also the limits of sessions and grants (per user, per grant, kept across a refresh).
//!
//! The official Python SDK's client runs the same flow against the real binary in
//! `crates/crier/tests/mcp.rs`.

mod common;

use common::users::{
    Browser, Redeeming, count, form, remove_member_inside, session, sign_in, submit, user,
};
use common::{Response, TestApp, both};
use crier_core::Role;
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:33418/callback";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const BASE: &str = "http://127.0.0.1:8080";

async fn at_the_client_cap_the_oldest_unused_client_makes_room() {
    let app = TestApp::new().await;
    // 10,000 clients registered a moment ago that never got a code (a registration loop).
    app.raw_execute(
        "INSERT INTO app_clients (id, kind, name, redirect_uris, auth_method, secret_digest,
            created_at, used_at, fetched_at)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
         SELECT 'cli_filler' || i, 'registered', 'filler', '[\"http://127.0.0.1/cb\"]', 'none',
            NULL, 4000000000000 + i, 4000000000000 + i, NULL FROM n",
    )
    .await;
    assert_eq!(count(&app, "SELECT id FROM app_clients").await, 10_000);
    // A new app still registers; the oldest filler made room.
    public_client(&app).await;
    assert_eq!(count(&app, "SELECT id FROM app_clients").await, 10_000);
    let gone = app
        .raw_texts("SELECT id FROM app_clients WHERE id = 'cli_filler1'")
        .await;
    assert!(gone.is_empty(), "{gone:?}");
    let kept = app
        .raw_texts("SELECT id FROM app_clients WHERE id = 'cli_filler2'")
        .await;
    assert_eq!(kept.len(), 1);
    assert!(
        !app.raw_texts("SELECT id FROM app_clients WHERE id = 'cli_filler10000'")
            .await
            .is_empty()
    );
}

async fn register(app: &TestApp, body: Value) -> Response {
    app.post("/oauth/register").json(body).send().await
}

/// A public client (PKCE only) with the loopback redirect; its id.
async fn public_client(app: &TestApp) -> String {
    let r = register(
        app,
        json!({"client_name": "Test assistant", "redirect_uris": [REDIRECT],
               "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body.get("client_secret").is_none(), "{}", r.text);
    r.body["client_id"].as_str().unwrap().to_owned()
}

/// The authorization request's parameters for `client`, with `extra` replacing or adding.
fn request(client: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("state", "st-123"),
        ("scope", "posts:read posts:write"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("resource", "http://127.0.0.1:8080/mcp"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        p.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            p.push((k.to_string(), v.to_string()));
        }
    }
    p
}

fn query(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn authorize_page(
    app: &TestApp,
    b: Option<&Browser>,
    pairs: &[(String, String)],
) -> Response {
    let mut call = app.get(&format!("/oauth/authorize?{}", query(pairs)));
    if let Some(b) = b {
        call = call.header("cookie", &b.cookie);
    }
    call.send().await
}

/// Posts the consent form: `decision` approve or deny, in `ws`, granting `scopes`.
async fn answer(
    app: &TestApp,
    b: &Browser,
    pairs: &[(String, String)],
    ws: &str,
    scopes: &[&str],
    decision: &str,
) -> Response {
    let mut fields: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    fields.push(("_csrf", &b.csrf));
    fields.push(("workspace", ws));
    fields.push(("decision", decision));
    for s in scopes {
        fields.push(("grant_scope", s));
    }
    submit(app, b, "/oauth/authorize", &fields).await
}

/// The query of a redirect back to the client.
fn redirected(r: &Response) -> Vec<(String, String)> {
    assert_eq!(r.status, 303, "{}", r.text);
    let loc = r.header("location").expect("a Location");
    assert!(loc.starts_with(REDIRECT), "{loc}");
    url::Url::parse(loc)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The code of the request `pairs`, approved by `b` in the app's workspace with `scopes`.
async fn approved(
    app: &TestApp,
    b: &Browser,
    pairs: &[(String, String)],
    scopes: &[&str],
) -> String {
    let r = answer(app, b, pairs, app.workspace.id.as_str(), scopes, "approve").await;
    param(&redirected(&r), "code").expect("a code").to_owned()
}

/// A code for `client`, approved by `b` in the app's workspace with `scopes`.
async fn code_for(app: &TestApp, b: &Browser, client: &str, scopes: &[&str]) -> String {
    let pairs = request(client, &[]);
    let r = answer(app, b, &pairs, app.workspace.id.as_str(), scopes, "approve").await;
    let q = redirected(&r);
    assert_eq!(param(&q, "state"), Some("st-123"));
    assert_eq!(param(&q, "iss"), Some("http://127.0.0.1:8080/"));
    param(&q, "code").expect("a code").to_owned()
}

async fn token(app: &TestApp, pairs: &[(&str, &str)]) -> Response {
    app.post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(form(pairs))
        .send()
        .await
}

async fn exchange(app: &TestApp, client: &str, code: &str) -> Response {
    token(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("resource", "http://127.0.0.1:8080/mcp"),
        ],
    )
    .await
}

async fn refresh(app: &TestApp, client: &str, refresh_token: &str) -> Response {
    token(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

#[track_caller]
fn oauth_refused(r: &Response, status: u16, error: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.body["error"], error, "{}", r.text);
    assert!(
        r.body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{}",
        r.text
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

async fn me(app: &TestApp, access: &str) -> Response {
    app.get("/v1/me").key(access).send().await
}

async fn grants(app: &TestApp) -> usize {
    count(
        app,
        "SELECT key_id FROM app_grants WHERE revoked_at IS NULL",
    )
    .await
}

async fn owner(app: &TestApp) -> Browser {
    let ada = user(app, "ada@example.com", Role::Owner).await;
    sign_in(app, &ada.email).await
}

async fn discovery_starts_from_an_unauthenticated_mcp_call() {
    let app = TestApp::new().await;
    let r = app
        .post("/mcp")
        .header("host", "127.0.0.1:8080")
        .json(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}))
        .send()
        .await;
    r.assert_error(401, "unauthorized");
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            "Bearer resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\""
        )
    );
    // Any route of the API says where to look too.
    let r = app.get("/v1/me").send().await;
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            "Bearer resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource\""
        )
    );

    let prm = app
        .get("/.well-known/oauth-protected-resource/mcp")
        .send()
        .await;
    assert_eq!(prm.status, 200);
    assert_eq!(prm.body["resource"], "http://127.0.0.1:8080/mcp");
    assert_eq!(
        prm.body["authorization_servers"],
        json!(["http://127.0.0.1:8080/"])
    );
    assert!(
        prm.body["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("posts:write"))
    );
    let api = app
        .get("/.well-known/oauth-protected-resource")
        .send()
        .await;
    assert_eq!(api.body["resource"], BASE);

    let m = app
        .get("/.well-known/oauth-authorization-server")
        .send()
        .await;
    assert_eq!(m.status, 200);
    assert_eq!(m.body["issuer"], "http://127.0.0.1:8080/");
    assert_eq!(
        m.body["authorization_endpoint"],
        "http://127.0.0.1:8080/oauth/authorize"
    );
    assert_eq!(
        m.body["token_endpoint"],
        "http://127.0.0.1:8080/oauth/token"
    );
    assert_eq!(
        m.body["registration_endpoint"],
        "http://127.0.0.1:8080/oauth/register"
    );
    assert_eq!(m.body["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m.body["client_id_metadata_document_supported"], true);
    assert_eq!(
        m.body["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
}

async fn sign_in_exchange_refresh_and_a_replay_that_ends_the_grant() {
    let app = TestApp::new().await;
    let b = owner(&app).await;
    let client = public_client(&app).await;

    // Signed out, the page first sends the browser to itself once (for its SameSite cookie),
    // then to the sign-in page, and back here after.
    let pairs = request(&client, &[]);
    let r = authorize_page(&app, None, &pairs).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("crier_hop=1"), "{}", r.text);
    let mut hopped = pairs.clone();
    hopped.push(("crier_hop".into(), "1".into()));
    let r = authorize_page(&app, None, &hopped).await;
    assert_eq!(r.status, 303);
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("/login?next=%2Foauth%2Fauthorize%3F"),
        "{:?}",
        r.header("location")
    );

    // Signed in: the consent page names the app and the redirect, ticks the agent preset's
    // scopes among those asked for, and is never framed.
    let page = authorize_page(&app, Some(&b), &pairs).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Test assistant"));
    assert!(page.text.contains("http://127.0.0.1:33418"));
    assert!(page.text.contains("value=\"posts:read\" checked"));
    assert!(page.text.contains("value=\"posts:write\" checked"));
    assert!(!page.text.contains("value=\"posts:publish\""));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    // Its form's answer redirects to the client, so it may post to another site; the sign-in
    // page's may not.
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'self' https: http:;"), "{csp}");
    let login = app.get("/login").send().await;
    let csp = login.header("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'self';"), "{csp}");

    let code = code_for(&app, &b, &client, &["posts:read", "posts:write"]).await;
    assert_eq!(grants(&app).await, 0, "no grant before the exchange");
    let t = exchange(&app, &client, &code).await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.header("cache-control"), Some("no-store"));
    assert_eq!(t.body["token_type"], "Bearer");
    assert_eq!(t.body["expires_in"], 3600);
    assert_eq!(t.body["scope"], "posts:read posts:write");
    let access = t.body["access_token"].as_str().unwrap().to_owned();
    let refresh_1 = t.body["refresh_token"].as_str().unwrap().to_owned();
    assert!(refresh_1.starts_with("ort_"));
    assert_eq!(grants(&app).await, 1);

    // The token is a key of the workspace, with the granted scopes only.
    let r = me(&app, &access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post("/v1/posts")
        .key(&access)
        .json(json!({"body": "hello"}))
        .send()
        .await;
    assert_ne!(r.status, 403, "posts:write was granted: {}", r.text);
    let r = app.get("/v1/keys").key(&access).send().await;
    r.assert_error(403, "forbidden_scope");
    // The key list does not show it: it is managed as a grant.
    let admin = app.admin_key().await;
    let keys = app.get("/v1/keys").key(&admin).send().await;
    assert_eq!(keys.status, 200);
    assert!(
        !keys.text.contains("Test assistant"),
        "the grant's key is not in the key list: {}",
        keys.text
    );
    // Settings shows it under Connected apps.
    let settings = app
        .get("/app/keys")
        .header("cookie", &b.cookie)
        .send()
        .await;
    assert!(
        settings.text.contains("data-app-id=\"key_"),
        "{}",
        settings.text
    );

    // A refresh replaces both tokens; the old access token stops at once.
    let r = refresh(&app, &client, &refresh_1).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access_2 = r.body["access_token"].as_str().unwrap().to_owned();
    let refresh_2 = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(access_2, access);
    assert_ne!(refresh_2, refresh_1);
    me(&app, &access).await.assert_error(401, "unauthorized");
    assert_eq!(me(&app, &access_2).await.status, 200);

    // The first refresh token again: a replay. The whole grant ends.
    let r = refresh(&app, &client, &refresh_1).await;
    oauth_refused(&r, 400, "invalid_grant");
    me(&app, &access_2).await.assert_error(401, "unauthorized");
    oauth_refused(
        &refresh(&app, &client, &refresh_2).await,
        400,
        "invalid_grant",
    );
    assert_eq!(grants(&app).await, 0);
}

async fn refusals_of_the_code_exchange_leave_no_grant() {
    let app = TestApp::new().await;
    let b = owner(&app).await;
    let client = public_client(&app).await;
    let other = public_client(&app).await;

    // A wrong verifier, another client, another redirect, another resource: refused, and the
    // code still good for the right request (none of them used it up).
    let code = code_for(&app, &b, &client, &["posts:read"]).await;
    let wrong =
        |verifier: &'static str, client: String, redirect: &'static str, resource: &'static str| {
            vec![
                ("grant_type", "authorization_code".to_owned()),
                ("client_id", client),
                ("code", code.clone()),
                ("redirect_uri", redirect.to_owned()),
                ("code_verifier", verifier.to_owned()),
                ("resource", resource.to_owned()),
            ]
        };
    let mcp = "http://127.0.0.1:8080/mcp";
    for (fields, status, error) in [
        (
            wrong("x".repeat(43).leak(), client.clone(), REDIRECT, mcp),
            400,
            "invalid_grant",
        ),
        (
            wrong(VERIFIER, other.clone(), REDIRECT, mcp),
            400,
            "invalid_grant",
        ),
        (
            wrong(
                VERIFIER,
                client.clone(),
                "http://127.0.0.1:33418/other",
                mcp,
            ),
            400,
            "invalid_grant",
        ),
        (
            wrong(
                VERIFIER,
                client.clone(),
                REDIRECT,
                "https://other.example/mcp",
            ),
            400,
            "invalid_target",
        ),
        (
            wrong(
                VERIFIER,
                "oac_nosuchclient0000000000000000000".into(),
                REDIRECT,
                mcp,
            ),
            401,
            "invalid_client",
        ),
    ] {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = token(&app, &pairs).await;
        oauth_refused(&r, status, error);
        assert_eq!(grants(&app).await, 0, "{error}");
    }
    let t = exchange(&app, &client, &code).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let access = t.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(grants(&app).await, 1);

    // The code again: refused, and the grant it yielded ends (it may have been stolen).
    oauth_refused(&exchange(&app, &client, &code).await, 400, "invalid_grant");
    me(&app, &access).await.assert_error(401, "unauthorized");
    assert_eq!(grants(&app).await, 0);

    // A code lives a minute.
    let code = code_for(&app, &b, &client, &["posts:read"]).await;
    app.clock.advance(std::time::Duration::from_secs(61));
    oauth_refused(&exchange(&app, &client, &code).await, 400, "invalid_grant");
    assert_eq!(grants(&app).await, 0);

    // An access token lives an hour; its refresh token still works after.
    let code = code_for(&app, &b, &client, &["posts:read"]).await;
    let t = exchange(&app, &client, &code).await;
    let access = t.body["access_token"].as_str().unwrap().to_owned();
    app.clock.advance(std::time::Duration::from_secs(3601));
    let r = me(&app, &access).await;
    r.assert_error(401, "unauthorized");
    assert!(r.text.contains("expired"), "{}", r.text);
    let r = refresh(&app, &client, t.body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Garbage and missing fields.
    oauth_refused(
        &token(&app, &[("grant_type", "password")]).await,
        401,
        "invalid_client",
    );
    let r = token(&app, &[("client_id", &client), ("grant_type", "password")]).await;
    oauth_refused(&r, 400, "unsupported_grant_type");
    let r = token(&app, &[("client_id", &client)]).await;
    oauth_refused(&r, 400, "invalid_request");
    let r = token(
        &app,
        &[
            ("client_id", &client),
            ("client_id", &other),
            ("grant_type", "x"),
        ],
    )
    .await;
    oauth_refused(&r, 400, "invalid_request");
    let r = app
        .post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(vec![b'a'; 20 * 1024])
        .send()
        .await;
    oauth_refused(&r, 400, "invalid_request");
}

async fn confidential_clients_prove_their_secret() {
    let app = TestApp::new().await;
    let b = owner(&app).await;
    let r = register(
        &app,
        json!({"client_name": "Server app", "redirect_uris": [REDIRECT]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["token_endpoint_auth_method"], "client_secret_basic");
    let client = r.body["client_id"].as_str().unwrap().to_owned();
    let secret = r.body["client_secret"].as_str().unwrap().to_owned();
    let code = code_for(&app, &b, &client, &["posts:read"]).await;
    let base = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    // No secret, a wrong one, in the body or in Basic: invalid_client.
    let mut no_secret = base.to_vec();
    no_secret.push(("client_id", &client));
    oauth_refused(&token(&app, &no_secret).await, 401, "invalid_client");
    let mut wrong = no_secret.clone();
    wrong.push(("client_secret", "ocs_wrongwrongwrongwrongwrongwrong00"));
    oauth_refused(&token(&app, &wrong).await, 401, "invalid_client");
    use base64::Engine as _;
    let basic = |id: &str, s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{s}"))
        )
    };
    let r = app
        .post("/oauth/token")
        .header("authorization", &basic(&client, "ocs_nope"))
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(form(&base))
        .send()
        .await;
    oauth_refused(&r, 401, "invalid_client");
    assert_eq!(grants(&app).await, 0);
    // The right secret in Basic.
    let r = app
        .post("/oauth/token")
        .header("authorization", &basic(&client, &secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(form(&base))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(grants(&app).await, 1);

    // RFC 7009: the client revokes its refresh token; the grant ends.
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let rt = r.body["refresh_token"].as_str().unwrap().to_owned();
    let r = app
        .post("/oauth/revoke")
        .header("authorization", &basic(&client, &secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(form(&[("token", &rt)]))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    me(&app, &access).await.assert_error(401, "unauthorized");
    assert_eq!(grants(&app).await, 0);
}

async fn bad_authorization_requests_are_shown_or_sent_back() {
    let app = TestApp::new().await;
    let b = owner(&app).await;
    let client = public_client(&app).await;

    // Not to be trusted with a redirect: shown here (400), never sent anywhere.
    for pairs in [
        request("oac_nosuchclient0000000000000000000", &[]),
        request(
            &client,
            &[("redirect_uri", "http://127.0.0.1:33418/elsewhere")],
        ),
        request(
            &client,
            &[("redirect_uri", "https://evil.example/callback")],
        ),
        request(&client, &[("client_id", "")]),
        // A client id PostgreSQL could not even look up (it answered 500).
        request(&client, &[("client_id", "https://app.example/c\u{0}")]),
    ] {
        let r = authorize_page(&app, Some(&b), &pairs).await;
        assert_eq!(r.status, 400, "{pairs:?}: {}", r.text);
        assert!(r.header("location").is_none());
    }
    // An authorization request longer than 8 KiB is refused whole.
    let long = request(&client, &[("state", &"s".repeat(9 * 1024))]);
    let r = authorize_page(&app, Some(&b), &long).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.header("location").is_none());
    // A loopback redirect matches on any port (RFC 8252 §7.3).
    let r = authorize_page(
        &app,
        Some(&b),
        &request(
            &client,
            &[("redirect_uri", "http://127.0.0.1:5555/callback")],
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The rest is shown here too: before the person answers, crier redirects nowhere (anyone
    // may register a client, so that would make it an open redirector).
    for (extra, error) in [
        (vec![("code_challenge", "")], "PKCE"),
        (vec![("code_challenge_method", "plain")], "PKCE"),
        (vec![("code_challenge", "short")], "PKCE"),
        (vec![("response_type", "token")], "response_type=code"),
        (
            vec![("resource", "https://other.example/mcp")],
            "only issues tokens for itself",
        ),
    ] {
        let r = authorize_page(&app, Some(&b), &request(&client, &extra)).await;
        assert_eq!(r.status, 400, "{extra:?}: {}", r.text);
        assert!(r.header("location").is_none(), "{extra:?}");
        assert!(r.text.contains(error), "{extra:?}: {}", r.text);
    }
    // A request that left `redirect_uri` out (the client registered one): the exchange may
    // leave it out too.
    let pairs = request(&client, &[("redirect_uri", "")]);
    let code = approved(&app, &b, &pairs, &["posts:read"]).await;
    let t = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", &code),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.text);

    // Denied: back with access_denied, no code.
    let pairs = request(&client, &[]);
    let r = answer(
        &app,
        &b,
        &pairs,
        app.workspace.id.as_str(),
        &["posts:read"],
        "deny",
    )
    .await;
    let q = redirected(&r);
    assert_eq!(param(&q, "error"), Some("access_denied"));
    assert!(param(&q, "code").is_none());

    // The form without the session's CSRF token, or another workspace: no code.
    let mut fields: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    fields.extend([
        ("workspace", app.workspace.id.as_str()),
        ("decision", "approve"),
        ("grant_scope", "posts:read"),
    ]);
    let r = submit(&app, &b, "/oauth/authorize", &fields).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let other = app.other_workspace("elsewhere").await;
    let r = answer(
        &app,
        &b,
        &pairs,
        other.id.as_str(),
        &["posts:read"],
        "approve",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // A scope that was not asked for cannot be granted.
    let r = answer(
        &app,
        &b,
        &pairs,
        app.workspace.id.as_str(),
        &["keys:write"],
        "approve",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Only the one approved above.
    assert_eq!(count(&app, "SELECT digest FROM app_codes").await, 1);
}

async fn a_member_cannot_grant_past_the_role() {
    let app = TestApp::new().await;
    let bob = user(&app, "bob@example.com", Role::Member).await;
    let b = sign_in(&app, &bob.email).await;
    let client = public_client(&app).await;
    let pairs = request(&client, &[("scope", "workspace:write posts:read")]);
    let r = answer(
        &app,
        &b,
        &pairs,
        app.workspace.id.as_str(),
        &["workspace:write"],
        "approve",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.text.contains("cannot grant workspace:write"),
        "{}",
        r.text
    );
    assert_eq!(count(&app, "SELECT digest FROM app_codes").await, 0);
}

async fn registration_is_checked_and_bounded() {
    let app = TestApp::new().await;
    let many: Vec<String> = (0..11).map(|i| format!("http://127.0.0.1:1/{i}")).collect();
    for (body, error) in [
        (json!({"redirect_uris": many}), "invalid_redirect_uri"),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (json!({}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "client_name": "x".repeat(101)}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": "not a list"}),
            "invalid_client_metadata",
        ),
        // NUL, which PostgreSQL cannot store (the URL parser would have encoded it).
        (
            json!({"redirect_uris": ["https://app.example/cb\u{0}"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "client_name": "a\u{0}"}),
            "invalid_client_metadata",
        ),
    ] {
        let r = register(&app, body.clone()).await;
        oauth_refused(&r, 400, error);
    }
    let r = app
        .post("/oauth/register")
        .header("content-type", "application/json")
        .raw("{not json")
        .send()
        .await;
    oauth_refused(&r, 400, "invalid_client_metadata");
    assert_eq!(count(&app, "SELECT id FROM app_clients").await, 0);

    // Each registration spends the address's budget of unauthenticated work (30 a minute
    // here) and one of its starts (10 in 15 minutes): past them, 429, and nothing stored.
    let mut stored = 0;
    let mut refused = 0;
    for _ in 0..40 {
        let r = app
            .post("/oauth/register")
            .from_ip("203.0.113.9")
            .json(json!({"redirect_uris": [REDIRECT]}))
            .send()
            .await;
        match r.status.as_u16() {
            201 => stored += 1,
            429 => {
                refused += 1;
                assert!(r.header("retry-after").is_some());
            }
            s => panic!("{s}: {}", r.text),
        }
    }
    // Ten clients in 15 minutes (the address's starts, shared with device logins).
    assert_eq!((stored, refused), (10, 30));
    assert_eq!(count(&app, "SELECT id FROM app_clients").await, stored);
    // Registrations nobody used are forgotten a day later; a used one stays.
    let b = owner(&app).await;
    let used = public_client(&app).await;
    let _ = code_for(&app, &b, &used, &["posts:read"]).await;
    app.clock.advance(std::time::Duration::from_secs(86_401));
    app.state.app().oauth_server().purge().await.unwrap();
    assert_eq!(
        app.raw_texts("SELECT id FROM app_clients").await,
        vec![Some(used)]
    );
}

/// The lists and the name are bounded as the OpenAPI description says: `grant_types` at most
/// 2, `response_types` at most 1 (repeats count), `client_name` at most 100 characters as
/// sent, blank or not; within them a registration is taken, and a blank name is the default.
async fn registration_is_bounded_as_described() {
    let app = TestApp::new().await;
    for body in [
        json!({"redirect_uris": [REDIRECT],
               "grant_types": ["authorization_code", "refresh_token", "refresh_token"]}),
        json!({"redirect_uris": [REDIRECT], "response_types": ["code", "code"]}),
        json!({"redirect_uris": [REDIRECT], "client_name": " ".repeat(101)}),
        json!({"redirect_uris": [REDIRECT], "client_name": format!("{}Name", " ".repeat(97))}),
    ] {
        let r = register(&app, body.clone()).await;
        oauth_refused(&r, 400, "invalid_client_metadata");
    }
    assert_eq!(count(&app, "SELECT id FROM app_clients").await, 0);
    for (body, name) in [
        (
            json!({"redirect_uris": [REDIRECT],
                   "grant_types": ["authorization_code", "authorization_code"],
                   "response_types": ["code"]}),
            "127.0.0.1",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "client_name": " ".repeat(100)}),
            "127.0.0.1",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "client_name": format!(" {} ", "n".repeat(98))}),
            &"n".repeat(98),
        ),
    ] {
        let r = register(&app, body.clone()).await;
        assert_eq!(r.status, 201, "{body}: {}", r.text);
        assert_eq!(r.body["client_name"], name, "{body}");
    }
    assert_eq!(count(&app, "SELECT id FROM app_clients").await, 3);
}

/// A token request spends the address's budget only when it fails: a client refreshing for
/// many people from one address is not held back, one guessing codes is.
/// NUL in a token or revocation request, or in a client id however it is sent, is refused
/// as the OAuth error it is, never a 500 (PostgreSQL cannot look it up).
async fn nul_in_token_requests_is_refused() {
    use base64::Engine as _;
    let app = TestApp::new().await;
    let client = public_client(&app).await;
    for pairs in [
        vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", "https://a.example/c\u{0}"),
        ],
        vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", "x\u{0}"),
            ("client_id", client.as_str()),
        ],
    ] {
        let r = token(&app, &pairs).await;
        oauth_refused(&r, 400, "invalid_request");
        assert!(r.text.contains("NUL"), "{}", r.text);
    }
    let r = app
        .post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            &format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("https://a.example/c\u{0}:s")
            ),
        )
        .raw(form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
        ]))
        .send()
        .await;
    assert!(
        matches!(r.status.as_u16(), 400 | 401),
        "{}: {}",
        r.status,
        r.text
    );
    assert_eq!(r.body["error"], "invalid_client", "{}", r.text);
}

async fn only_failed_token_requests_spend_the_address_budget() {
    let app = TestApp::new().await;
    let b = owner(&app).await;
    let client = public_client(&app).await;
    let code = code_for(&app, &b, &client, &["posts:read"]).await;
    let mut rt = exchange(&app, &client, &code).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..40 {
        let r = app
            .post("/oauth/token")
            .from_ip("198.51.100.7")
            .header("content-type", "application/x-www-form-urlencoded")
            .raw(form(&[
                ("grant_type", "refresh_token"),
                ("client_id", &client),
                ("refresh_token", &rt),
            ]))
            .send()
            .await;
        assert_eq!(r.status, 200, "refresh {i}: {}", r.text);
        rt = r.body["refresh_token"].as_str().unwrap().to_owned();
    }
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let r = app
            .post("/oauth/token")
            .from_ip("198.51.100.8")
            .header("content-type", "application/x-www-form-urlencoded")
            .raw(form(&[
                ("grant_type", "authorization_code"),
                ("client_id", &client),
                ("code", "oco_guessguessguessguessguessguess00"),
                ("code_verifier", VERIFIER),
            ]))
            .send()
            .await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses[0], 400);
    assert_eq!(*statuses.last().unwrap(), 429, "{statuses:?}");
}

/// An admin lowered to member: the apps they allowed end at once (an admin's scopes are not
/// all a member's). A grant holding keys:write made a key, which made another and rotated
/// itself: revoking the grant ends every one of them.
async fn a_lower_role_and_a_revoked_grant_end_what_the_app_made() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Owner).await;
    let eve = user(&app, "eve@example.com", Role::Admin).await;
    let a = sign_in(&app, &ada.email).await;
    let e = sign_in(&app, &eve.email).await;
    let client = public_client(&app).await;
    let pairs = request(&client, &[("scope", "keys:write keys:read posts:read")]);
    let all = ["keys:write", "keys:read", "posts:read"];
    let code = approved(&app, &a, &pairs, &all).await;
    let adas = exchange(&app, &client, &code).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let made = app
        .post("/v1/keys")
        .key(&adas)
        .json(json!({"name": "made by the app", "scopes": ["keys:write", "posts:read"]}))
        .send()
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let made_key = made.body["key"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, &made_key).await.status, 200);
    // What the app's key makes in turn: a key of its own, and its own replacement (the key it
    // replaces keeps working for the overlap).
    let grandchild = app
        .post("/v1/keys")
        .key(&made_key)
        .json(json!({"name": "made by the app's key", "scopes": ["posts:read"]}))
        .send()
        .await;
    assert_eq!(grandchild.status, 201, "{}", grandchild.text);
    let grandchild_id = grandchild.body["id"].as_str().unwrap().to_owned();
    let grandchild = grandchild.body["key"].as_str().unwrap().to_owned();
    let made_id = made.body["id"].as_str().unwrap();
    let rotated = app
        .post(&format!("/v1/keys/{made_id}/rotate"))
        .key(&made_key)
        .json(json!({"overlap_seconds": 3600}))
        .send()
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let rotated_id = rotated.body["id"].as_str().unwrap().to_owned();
    let rotated = rotated.body["key"].as_str().unwrap().to_owned();
    for k in [&made_key, &grandchild, &rotated] {
        assert_eq!(me(&app, k).await.status, 200);
    }
    let code = approved(&app, &e, &pairs, &all).await;
    let eves = exchange(&app, &client, &code).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Ada revokes her app in Settings: the key it made stops too.
    let adas_grant = app
        .raw_texts(
            "SELECT g.key_id FROM app_grants g JOIN users u ON u.id = g.user_id
             WHERE u.email = 'ada@example.com'",
        )
        .await[0]
        .clone()
        .unwrap();
    let path = format!("/app/apps/{adas_grant}/revoke");
    let r = submit(&app, &a, &path, &[("_csrf", &a.csrf)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    me(&app, &adas).await.assert_error(401, "unauthorized");
    for k in [&made_key, &grandchild, &rotated] {
        me(&app, k).await.assert_error(401, "unauthorized");
    }
    // Each one's end is announced to the workspace's webhooks, as a key revoked by hand is.
    let announced: Vec<String> = app
        .raw_texts("SELECT data FROM events WHERE type = 'key.revoked'")
        .await
        .into_iter()
        .flatten()
        .map(|d| serde_json::from_str::<serde_json::Value>(&d).unwrap()["id"].to_string())
        .collect();
    for id in [&adas_grant, made_id, &grandchild_id, &rotated_id] {
        assert!(
            announced.contains(&format!("\"{id}\"")),
            "{id} in {announced:?}"
        );
    }

    // Eve becomes a member: her app's grant ends at once.
    assert_eq!(me(&app, &eves).await.status, 200);
    let seat = app.state.app().users().seat(&ada.id, None).await.unwrap();
    app.state
        .app()
        .users()
        .change_role(&seat, &eve.id, Role::Member)
        .await
        .unwrap();
    me(&app, &eves).await.assert_error(401, "unauthorized");
    assert_eq!(grants(&app).await, 0);
}

async fn a_client_metadata_url_on_a_private_address_is_refused() {
    let app = TestApp::new().await;
    let b = owner(&app).await;
    for url in [
        "https://127.0.0.1/client.json",
        "https://10.1.2.3/client.json",
        "https://[::1]/client.json",
        "http://app.example/client.json",
    ] {
        let r = authorize_page(&app, Some(&b), &request(url, &[])).await;
        assert_eq!(r.status, 400, "{url}: {}", r.text);
        assert!(r.header("location").is_none());
    }
    assert_eq!(count(&app, "SELECT id FROM app_clients").await, 0);
}

/// A member removed while their app's code is being exchanged: the exchange checked them
/// before the removal committed, and the removal revoked their grants before the exchange
/// stored its own. The grant must not be stored (it would act for someone who is no longer a
/// member, and nothing would revoke it). The race is made certain by a trigger that removes
/// the member when the code is marked used, inside the exchange's own transaction.
async fn a_member_removed_during_the_exchange_gets_no_grant() {
    let app = TestApp::new().await;
    owner(&app).await;
    let bob = user(&app, "bob@example.com", Role::Member).await;
    let b = sign_in(&app, &bob.email).await;
    let client = public_client(&app).await;
    let code = code_for(&app, &b, &client, &["posts:read"]).await;
    let keys_before = count(&app, "SELECT id FROM api_keys").await;
    remove_member_inside(&app, Redeeming::AppCode).await;
    let r = exchange(&app, &client, &code).await;
    oauth_refused(&r, 400, "invalid_grant");
    assert!(r.text.contains("can no longer grant"), "{}", r.text);
    assert_eq!(grants(&app).await, 0);
    assert_eq!(count(&app, "SELECT id FROM api_keys").await, keys_before);
}

async fn settings_and_leaving_the_workspace_end_grants() {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", Role::Owner).await;
    let bob = user(&app, "bob@example.com", Role::Member).await;
    let a = sign_in(&app, &ada.email).await;
    let b = sign_in(&app, &bob.email).await;
    let client = public_client(&app).await;
    let ada_code = code_for(&app, &a, &client, &["posts:read"]).await;
    let ada_token = exchange(&app, &client, &ada_code).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_code = code_for(&app, &b, &client, &["posts:read"]).await;
    let bob_token = exchange(&app, &client, &bob_code).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(grants(&app).await, 2);
    let app_id = |page: &str| {
        page.split("data-app-id=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    // A member sees and revokes only their own; an owner sees both.
    let bobs_page = app
        .get("/app/keys")
        .header("cookie", &b.cookie)
        .send()
        .await;
    let bobs = app_id(&bobs_page.text);
    assert_eq!(bobs.len(), 1, "{}", bobs_page.text);
    let adas = app_id(
        &app.get("/app/keys")
            .header("cookie", &a.cookie)
            .send()
            .await
            .text,
    );
    assert_eq!(adas.len(), 2);
    let adas_own = adas.iter().find(|id| **id != bobs[0]).unwrap().clone();
    let r = submit(
        &app,
        &b,
        &format!("/app/apps/{adas_own}/revoke"),
        &[("_csrf", &b.csrf)],
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);
    // Made-up and malformed ids are not found either.
    for id in ["key_0000000000000000000000", "not-an-id"] {
        let r = submit(
            &app,
            &a,
            &format!("/app/apps/{id}/revoke"),
            &[("_csrf", &a.csrf)],
        )
        .await;
        assert_eq!(r.status, 404, "{id}: {}", r.text);
    }
    assert_eq!(grants(&app).await, 2);
    assert_eq!(me(&app, &ada_token).await.status, 200);
    // Revoked in Settings: refused at once.
    let r = submit(
        &app,
        &a,
        &format!("/app/apps/{adas_own}/revoke"),
        &[("_csrf", &a.csrf)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    me(&app, &ada_token).await.assert_error(401, "unauthorized");
    // Bob leaves the workspace: the app he allowed stops too.
    assert_eq!(me(&app, &bob_token).await.status, 200);
    let seat = app.state.app().users().seat(&ada.id, None).await.unwrap();
    app.state
        .app()
        .users()
        .remove_member(&seat, &ada.id, &bob.id)
        .await
        .unwrap();
    me(&app, &bob_token).await.assert_error(401, "unauthorized");
    assert_eq!(grants(&app).await, 0);
}

/// Sessions and grants have windows like keys: a user's sessions share one (300 a minute
/// within the plan's 600 here; the dashboard's own pages take nothing from it), another user
/// has their own, and a grant keeps its windows across a refresh.
async fn sessions_and_grants_are_limited_like_keys() {
    let app = TestApp::with_plan("pro").await;
    let ada = user(&app, "ada@example.com", Role::Owner).await;
    let grace = user(&app, "grace@example.com", Role::Member).await;
    let b = sign_in(&app, &ada.email).await;
    for _ in 0..20 {
        let page = app
            .get("/app/keys")
            .header("cookie", &b.cookie)
            .send()
            .await;
        assert_eq!(page.status, 200);
    }
    let one = session(&app, &ada).await;
    let two = session(&app, &ada).await;
    let r = me(&app, &one).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-ratelimit-limit"), Some("300"));
    assert_eq!(
        r.header("x-ratelimit-remaining"),
        Some("299"),
        "the dashboard's pages took nothing"
    );
    for i in 1..300 {
        let s = if i % 2 == 0 { &one } else { &two };
        assert_eq!(me(&app, s).await.status, 200, "request {i}");
    }
    let r = me(&app, &two).await;
    r.assert_error(429, "rate_limited");
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert!(r.header("retry-after").is_some());
    assert!(r.text.contains("Your sessions together"), "{}", r.text);
    // Another person in the workspace is not held by Ada's window.
    let theirs = session(&app, &grace).await;
    assert_eq!(me(&app, &theirs).await.status, 200);

    // A grant: its key's window (60 a minute by default), kept across a refresh.
    app.clock.advance(std::time::Duration::from_secs(120));
    let client = public_client(&app).await;
    let code = code_for(&app, &b, &client, &["posts:read"]).await;
    let t = exchange(&app, &client, &code).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let access = t.body["access_token"].as_str().unwrap();
    for i in 0..30 {
        assert_eq!(me(&app, access).await.status, 200, "request {i}");
    }
    let r = refresh(&app, &client, t.body["refresh_token"].as_str().unwrap()).await;
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let r = me(&app, &access).await;
    assert_eq!(r.header("x-ratelimit-limit"), Some("60"), "{}", r.text);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("29"), "{}", r.text);
}

both!(
    tests: nul_in_token_requests_is_refused,
    at_the_client_cap_the_oldest_unused_client_makes_room,
    discovery_starts_from_an_unauthenticated_mcp_call,
    sign_in_exchange_refresh_and_a_replay_that_ends_the_grant,
    refusals_of_the_code_exchange_leave_no_grant,
    confidential_clients_prove_their_secret,
    bad_authorization_requests_are_shown_or_sent_back,
    a_member_cannot_grant_past_the_role,
    registration_is_checked_and_bounded,
    registration_is_bounded_as_described,
    a_client_metadata_url_on_a_private_address_is_refused,
    settings_and_leaving_the_workspace_end_grants,
    sessions_and_grants_are_limited_like_keys,
    only_failed_token_requests_spend_the_address_budget,
    a_lower_role_and_a_revoked_grant_end_what_the_app_made,
    a_member_removed_during_the_exchange_gets_no_grant,
);
