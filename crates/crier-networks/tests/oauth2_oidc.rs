//! The generic OAuth 2.0 + PKCE client (`crier_networks::oauth2`) against a real authorization
//! server: oidc-provider (npm, panva; `CRIER_TEST_OIDC_URL`, started by
//! `scripts/peers/oidc.sh start`, configured in `scripts/peers/oidc/server.mjs`), which checks
//! client secrets and PKCE (S256, required).
//!
//! The user's part is played over plain HTTP on the server's own development login and consent
//! forms (cookies kept by hand); the redirect back is read from the `Location` header, never
//! followed. Then the client under test exchanges the code, refreshes and revokes, and what the
//! server thinks of each token is read back from its introspection endpoint (RFC 7662) and its
//! userinfo endpoint.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use crier_networks::oauth2::{ClientAuth, OAuth2, Tokens};
use crier_networks::{Authorize, Exchange, NetworkError, OAuthClient};
use serde_json::Value;
use sha2::Digest as _;

/// Registered for every client in `server.mjs`; nothing listens there (the redirect is read,
/// not followed).
const REDIRECT: &str = "http://127.0.0.1/callback";

/// The clients of `server.mjs` (`crier-post` is registered with client_secret_post; oidc-provider
/// takes either method from any of them).
const BASIC: (&str, &str) = ("crier", "crier-secret");
const POST: (&str, &str) = ("crier-post", "crier-post-secret");
/// A secret RFC 6749 §2.3.1's form-encoding changes (`:`, `+`, space, `%`, `&`, `=`; a client
/// secret is visible ASCII).
const ENCODED: (&str, &str) = ("crier-encoded", "se:cr+et /%&=");

/// The issuer, or `None` (the test then returns) when oidc-provider is not running; with
/// `CRIER_REQUIRE_PEERS=1` a missing server fails the test instead.
fn oidc_url() -> Option<String> {
    match std::env::var("CRIER_TEST_OIDC_URL") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_owned()),
        _ => {
            if std::env::var("CRIER_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
                panic!(
                    "CRIER_TEST_OIDC_URL is unset and CRIER_REQUIRE_PEERS=1 (scripts/peers/oidc.sh start starts oidc-provider)"
                );
            }
            eprintln!(
                "skipped: set CRIER_TEST_OIDC_URL (scripts/peers/oidc.sh start starts oidc-provider and writes target/peers/oidc.env)"
            );
            None
        }
    }
}

/// Never follows redirects: the flow below reads each one.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A POST of an `application/x-www-form-urlencoded` body (reqwest's `form` feature is off).
fn form_post(
    http: &reqwest::Client,
    url: url::Url,
    form: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    http.post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
}

/// A JSON body (reqwest's `json` feature is off).
async fn json_of(resp: reqwest::Response) -> Value {
    let body = resp.bytes().await.unwrap();
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

/// A value no other call in this run used.
fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = N.fetch_add(1, Ordering::Relaxed);
    let digest = sha2::Sha256::digest(format!("{nanos}/{}/{n}", std::process::id()));
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// A PKCE verifier (43 characters of the unreserved set) and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = unique("");
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The endpoints from the issuer's discovery document.
struct Server {
    authorize: url::Url,
    token: url::Url,
    revoke: url::Url,
    introspect: url::Url,
    userinfo: url::Url,
}

async fn discover(issuer: &str) -> Server {
    let resp = http()
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let d = json_of(resp).await;
    assert_eq!(d["issuer"], issuer);
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let url = |k: &str| -> url::Url {
        d[k].as_str()
            .unwrap_or_else(|| panic!("discovery has no {k}: {d}"))
            .parse()
            .unwrap()
    };
    Server {
        authorize: url("authorization_endpoint"),
        token: url("token_endpoint"),
        revoke: url("revocation_endpoint"),
        introspect: url("introspection_endpoint"),
        userinfo: url("userinfo_endpoint"),
    }
}

fn oauth(s: &Server, client_auth: ClientAuth) -> OAuth2 {
    OAuth2 {
        network: "oidc",
        authorize: s.authorize.clone(),
        token: s.token.clone(),
        revoke: Some(s.revoke.clone()),
        scopes: vec!["openid".into()],
        scope_separator: " ",
        client_auth,
        client_id_param: "client_id",
        extra_authorize: vec![],
    }
}

fn client((id, secret): (&str, &str)) -> OAuthClient {
    OAuthClient {
        client_id: id.into(),
        client_secret: Some(secret.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// The user's part: the authorization endpoint, the login and consent forms, by hand
// ---------------------------------------------------------------------------------------------

/// Cookies by name (the flow is sequential, so a later cookie of the same name replaces an
/// earlier one whatever its path); a cleared cookie (empty value) is dropped.
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn take(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all(reqwest::header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.0.remove(name.trim());
            } else {
                self.0.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The `action` of the page's form and the value of its hidden `prompt` input.
fn form_of(html: &str) -> (String, String) {
    let attr = |after: &str, name: &str| -> String {
        let start = html
            .find(after)
            .unwrap_or_else(|| panic!("no {after} in {html}"));
        let rest = &html[start..];
        let at = rest.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let end = rest[at..].find('"').unwrap();
        rest[at..at + end]
            .replace("&#x2F;", "/")
            .replace("&#47;", "/")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    (attr("<form", "action"), attr("name=\"prompt\"", "value"))
}

/// Where the authorization server sent the user back: the redirect URI's query.
struct Callback(Vec<(String, String)>);

impl Callback {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

/// Plays the user at `url` (an authorization URL): follows the server's redirects, signs in as
/// `login` on the login form and approves on the consent form, until the server redirects to
/// [`REDIRECT`]; returns that redirect's query (`code`, `state`, `iss`, or `error`).
async fn user_approves(url: url::Url, login: &str) -> Callback {
    let http = http();
    let mut jar = Jar::default();
    let mut req = http.get(url.clone());
    let mut at = url;
    for _ in 0..12 {
        let resp = req
            .header(reqwest::header::COOKIE, jar.header())
            .send()
            .await
            .unwrap();
        jar.take(&resp);
        let status = resp.status();
        if status.is_redirection() {
            let location = resp.headers()[reqwest::header::LOCATION].to_str().unwrap();
            let next = at.join(location).unwrap();
            if next.as_str().starts_with(REDIRECT) {
                assert_eq!(
                    format!("{}://{}{}", next.scheme(), next.authority(), next.path()),
                    REDIRECT
                );
                return Callback(next.query_pairs().into_owned().collect());
            }
            req = http.get(next.clone());
            at = next;
            continue;
        }
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "{at}: {body}");
        let (action, prompt) = form_of(&body);
        let form: Vec<(&str, &str)> = match prompt.as_str() {
            "login" => vec![
                ("prompt", "login"),
                ("login", login),
                ("password", "any password"),
            ],
            "consent" => vec![("prompt", "consent")],
            other => panic!("an unknown prompt {other}: {body}"),
        };
        let next = at.join(&action).unwrap();
        req = form_post(&http, next.clone(), &form);
        at = next;
    }
    panic!("no redirect to {REDIRECT} after 12 steps");
}

/// A fresh authorization code for `client` with the PKCE challenge of `challenge`, approved
/// by `login`.
async fn code_for(o: &OAuth2, client: &OAuthClient, challenge: &str, login: &str) -> String {
    let state = unique("st-");
    let url = o.authorize_url(&Authorize {
        client,
        instance: None,
        redirect_uri: REDIRECT,
        state: &state,
        code_challenge: Some(challenge),
    });
    let cb = user_approves(url, login).await;
    assert_eq!(cb.get("error"), None, "{:?}", cb.0);
    assert_eq!(cb.get("state"), Some(state.as_str()));
    cb.get("code").expect("a code").to_owned()
}

fn exchange<'a>(client: &'a OAuthClient, code: &'a str, verifier: Option<&'a str>) -> Exchange<'a> {
    Exchange {
        client,
        instance: None,
        redirect_uri: REDIRECT,
        code,
        code_verifier: verifier,
    }
}

// ---------------------------------------------------------------------------------------------
// What the server thinks of a token
// ---------------------------------------------------------------------------------------------

/// RFC 7662 introspection by a client that authenticates with client_secret_basic (`crier`;
/// oidc-provider's default policy lets a confidential client introspect any client's tokens):
/// whether the token is active, and the answer.
async fn introspect(s: &Server, (id, secret): (&str, &str), token: &str) -> (bool, Value) {
    let resp = form_post(&http(), s.introspect.clone(), &[("token", token)])
        .basic_auth(id, Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v = json_of(resp).await;
    (v["active"] == Value::Bool(true), v)
}

/// The userinfo endpoint's status with this access token.
async fn userinfo(s: &Server, access: &str) -> (u16, Value) {
    let resp = http()
        .get(s.userinfo.clone())
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[track_caller]
fn assert_unauthorized<T: std::fmt::Debug>(r: Result<T, NetworkError>, status: u16, code: &str) {
    match r {
        Err(NetworkError::Unauthorized { message }) => {
            assert!(
                message.starts_with(&format!("oidc: token endpoint {status} {code}")),
                "{message}"
            );
        }
        other => panic!("expected Unauthorized ({status} {code}), got {other:?}"),
    }
}

fn assert_fresh_tokens(t: &Tokens) {
    assert!(!t.access_token.is_empty());
    assert!(t.refresh_token.as_deref().is_some_and(|r| !r.is_empty()));
    assert_eq!(t.expires_in, Some(300), "server.mjs: ttl.AccessToken");
    assert_eq!(t.scope.as_deref(), Some("openid"));
    assert_eq!(t.extra["token_type"], "Bearer");
    assert!(t.extra["id_token"].is_string(), "openid: an ID token too");
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

/// The whole life of a grant with `client_secret_basic`: exchange, refresh, revoke.
#[tokio::test]
async fn basic_auth_exchanges_refreshes_and_revokes() {
    let Some(issuer) = oidc_url() else { return };
    let s = discover(&issuer).await;
    let o = oauth(&s, ClientAuth::Basic);
    let c = client(BASIC);
    let http = http();
    let login = unique("user-");
    let (verifier, challenge) = pkce();

    let code = code_for(&o, &c, &challenge, &login).await;
    let tokens = o
        .exchange(&http, &exchange(&c, &code, Some(&verifier)))
        .await
        .unwrap();
    assert_fresh_tokens(&tokens);
    let creds = tokens.credentials(1_000, None);
    assert_eq!(creds.expires_at, Some(1_000 + 300_000));
    let (active, v) = introspect(&s, BASIC, &tokens.access_token).await;
    assert!(active, "{v}");
    assert_eq!(v["client_id"], "crier");
    assert_eq!(v["sub"], login.as_str());
    assert_eq!(v["token_type"], "Bearer");
    let (status, v) = userinfo(&s, &tokens.access_token).await;
    assert_eq!((status, &v["sub"]), (200, &Value::from(login.as_str())));

    // Refresh: a new access token for the same account.
    let refresh = tokens.refresh_token.clone().unwrap();
    let refreshed = o.refresh(&http, &c, &refresh).await.unwrap();
    assert_ne!(refreshed.access_token, tokens.access_token);
    assert_eq!(refreshed.expires_in, Some(300));
    let (active, v) = introspect(&s, BASIC, &refreshed.access_token).await;
    assert!(active, "{v}");
    assert_eq!(v["sub"], login.as_str());
    // oidc-provider rotates a confidential client's refresh token only late in its life.
    let refresh = refreshed
        .credentials(0, Some(&refresh))
        .refresh_token
        .unwrap();

    // Revoking the access token: oidc-provider also revokes the rest of the grant's tokens
    // (RFC 7009 §2.1 lets it), so the refresh token is refused after it.
    o.revoke(&http, &c, &refreshed.access_token).await.unwrap();
    let (active, v) = introspect(&s, BASIC, &refreshed.access_token).await;
    assert!(!active, "a revoked access token: {v}");
    assert_eq!(userinfo(&s, &refreshed.access_token).await.0, 401);
    assert!(!introspect(&s, BASIC, &refresh).await.0);
    assert_unauthorized(o.refresh(&http, &c, &refresh).await, 400, "invalid_grant");

    // Revoking the refresh token of a new grant: refresh is refused and the access tokens of
    // the grant are dead (RFC 7009 §2.1).
    let (verifier, challenge) = pkce();
    let code = code_for(&o, &c, &challenge, &login).await;
    let tokens = o
        .exchange(&http, &exchange(&c, &code, Some(&verifier)))
        .await
        .unwrap();
    assert_fresh_tokens(&tokens);
    let refresh = tokens.refresh_token.clone().unwrap();
    assert!(introspect(&s, BASIC, &tokens.access_token).await.0);
    o.revoke(&http, &c, &refresh).await.unwrap();
    assert!(!introspect(&s, BASIC, &refresh).await.0);
    assert_unauthorized(o.refresh(&http, &c, &refresh).await, 400, "invalid_grant");
    assert!(!introspect(&s, BASIC, &tokens.access_token).await.0);
    assert_eq!(userinfo(&s, &tokens.access_token).await.0, 401);

    // A token the server no longer knows is revoked as far as we are concerned (RFC 7009 §2.2).
    o.revoke(&http, &c, &refresh).await.unwrap();
    o.revoke(&http, &c, "never-issued").await.unwrap();
}

/// The same with `client_secret_post` (`ClientAuth::Body`).
#[tokio::test]
async fn body_auth_exchanges_refreshes_and_revokes() {
    let Some(issuer) = oidc_url() else { return };
    let s = discover(&issuer).await;
    let o = oauth(&s, ClientAuth::Body);
    let c = client(POST);
    let http = http();
    let login = unique("user-");
    let (verifier, challenge) = pkce();

    let code = code_for(&o, &c, &challenge, &login).await;
    let tokens = o
        .exchange(&http, &exchange(&c, &code, Some(&verifier)))
        .await
        .unwrap();
    assert_fresh_tokens(&tokens);
    let (active, v) = introspect(&s, BASIC, &tokens.access_token).await;
    assert!(active, "{v}");
    assert_eq!(v["client_id"], "crier-post");

    let refreshed = o
        .refresh(&http, &c, tokens.refresh_token.as_deref().unwrap())
        .await
        .unwrap();
    assert!(introspect(&s, BASIC, &refreshed.access_token).await.0);
    o.revoke(&http, &c, &refreshed.access_token).await.unwrap();
    assert!(!introspect(&s, BASIC, &refreshed.access_token).await.0);
    assert_eq!(userinfo(&s, &refreshed.access_token).await.0, 401);
}

/// `Basic` form-encodes the id and the secret before joining them (RFC 6749 §2.3.1), as the
/// server decodes them.
#[tokio::test]
async fn basic_auth_encodes_a_secret_with_reserved_characters() {
    let Some(issuer) = oidc_url() else { return };
    let s = discover(&issuer).await;
    let o = oauth(&s, ClientAuth::Basic);
    let c = client(ENCODED);
    let (verifier, challenge) = pkce();
    let code = code_for(&o, &c, &challenge, &unique("user-")).await;
    let tokens = o
        .exchange(&http(), &exchange(&c, &code, Some(&verifier)))
        .await
        .unwrap();
    assert_fresh_tokens(&tokens);
    o.revoke(&http(), &c, &tokens.access_token).await.unwrap();
    assert!(!introspect(&s, BASIC, &tokens.access_token).await.0);
}

/// A wrong secret is `invalid_client` (401) with either method, at the token and the
/// revocation endpoints; the code survives it (the client is checked first).
#[tokio::test]
async fn a_wrong_client_secret_is_unauthorized() {
    let Some(issuer) = oidc_url() else { return };
    let s = discover(&issuer).await;
    let http = http();
    for (auth, good) in [(ClientAuth::Basic, BASIC), (ClientAuth::Body, POST)] {
        let o = oauth(&s, auth);
        let c = client(good);
        let wrong = client((good.0, "not-the-secret"));
        let (verifier, challenge) = pkce();
        let code = code_for(&o, &c, &challenge, &unique("user-")).await;
        assert_unauthorized(
            o.exchange(&http, &exchange(&wrong, &code, Some(&verifier)))
                .await,
            401,
            "invalid_client",
        );
        let tokens = o
            .exchange(&http, &exchange(&c, &code, Some(&verifier)))
            .await
            .unwrap();
        let refresh = tokens.refresh_token.clone().unwrap();
        assert_unauthorized(
            o.refresh(&http, &wrong, &refresh).await,
            401,
            "invalid_client",
        );
        assert_unauthorized(
            o.revoke(&http, &wrong, &tokens.access_token).await,
            401,
            "invalid_client",
        );
        assert!(
            introspect(&s, BASIC, &tokens.access_token).await.0,
            "a refused revocation revokes nothing"
        );
        o.refresh(&http, &c, &refresh).await.unwrap();
    }
}

/// PKCE: a wrong verifier and no verifier are `invalid_grant`; an authorization request
/// without a challenge is refused before any code is issued.
#[tokio::test]
async fn pkce_is_checked() {
    let Some(issuer) = oidc_url() else { return };
    let s = discover(&issuer).await;
    let http = http();
    for (auth, creds) in [(ClientAuth::Basic, BASIC), (ClientAuth::Body, POST)] {
        let o = oauth(&s, auth);
        let c = client(creds);
        let (verifier, challenge) = pkce();
        let code = code_for(&o, &c, &challenge, &unique("user-")).await;
        let (other, _) = pkce();
        assert_unauthorized(
            o.exchange(&http, &exchange(&c, &code, Some(&other))).await,
            400,
            "invalid_grant",
        );
        assert_unauthorized(
            o.exchange(&http, &exchange(&c, &code, None)).await,
            400,
            "invalid_grant",
        );
        // Not a verifier at all (RFC 7636 §4.1: 43 to 128 unreserved characters): a malformed
        // request, not a refused grant.
        match o.exchange(&http, &exchange(&c, &code, Some("short"))).await {
            Err(NetworkError::Rejected { message }) => assert!(
                message.starts_with("oidc: token endpoint 400 invalid_request"),
                "{message}"
            ),
            other => panic!("expected Rejected (400 invalid_request), got {other:?}"),
        }
        // The right one still works: a refused exchange does not spend the code.
        o.exchange(&http, &exchange(&c, &code, Some(&verifier)))
            .await
            .unwrap();

        let state = unique("st-");
        let url = o.authorize_url(&Authorize {
            client: &c,
            instance: None,
            redirect_uri: REDIRECT,
            state: &state,
            code_challenge: None,
        });
        assert!(
            !url.query_pairs()
                .any(|(k, _)| k.starts_with("code_challenge"))
        );
        let cb = user_approves(url, &unique("user-")).await;
        assert_eq!(cb.get("error"), Some("invalid_request"), "{:?}", cb.0);
        assert_eq!(cb.get("code"), None);
        assert_eq!(cb.get("state"), Some(state.as_str()));
    }
}

/// A code works once; the second exchange is `invalid_grant`, and the server revokes what
/// the first one issued (RFC 6749 §4.1.2).
#[tokio::test]
async fn a_code_used_twice_is_refused() {
    let Some(issuer) = oidc_url() else { return };
    let s = discover(&issuer).await;
    let http = http();
    for (auth, creds) in [(ClientAuth::Basic, BASIC), (ClientAuth::Body, POST)] {
        let o = oauth(&s, auth);
        let c = client(creds);
        let (verifier, challenge) = pkce();
        let code = code_for(&o, &c, &challenge, &unique("user-")).await;
        let first = o
            .exchange(&http, &exchange(&c, &code, Some(&verifier)))
            .await
            .unwrap();
        assert!(introspect(&s, BASIC, &first.access_token).await.0);
        assert_unauthorized(
            o.exchange(&http, &exchange(&c, &code, Some(&verifier)))
                .await,
            400,
            "invalid_grant",
        );
        assert!(!introspect(&s, BASIC, &first.access_token).await.0);
        assert_unauthorized(
            o.refresh(&http, &c, first.refresh_token.as_deref().unwrap())
                .await,
            400,
            "invalid_grant",
        );
    }
}

/// A code or a refresh token is bound to its client and its redirect URI.
#[tokio::test]
async fn codes_and_refresh_tokens_are_bound_to_their_client() {
    let Some(issuer) = oidc_url() else { return };
    let s = discover(&issuer).await;
    let http = http();
    let (basic, post) = (oauth(&s, ClientAuth::Basic), oauth(&s, ClientAuth::Body));
    let (c, other) = (client(BASIC), client(POST));
    let (verifier, challenge) = pkce();
    let code = code_for(&basic, &c, &challenge, &unique("user-")).await;
    assert_unauthorized(
        post.exchange(&http, &exchange(&other, &code, Some(&verifier)))
            .await,
        400,
        "invalid_grant",
    );
    let mut wrong_redirect = exchange(&c, &code, Some(&verifier));
    wrong_redirect.redirect_uri = "http://127.0.0.1/elsewhere";
    assert_unauthorized(
        basic.exchange(&http, &wrong_redirect).await,
        400,
        "invalid_grant",
    );
    let tokens = basic
        .exchange(&http, &exchange(&c, &code, Some(&verifier)))
        .await
        .unwrap();
    assert_unauthorized(
        post.refresh(&http, &other, tokens.refresh_token.as_deref().unwrap())
            .await,
        400,
        "invalid_grant",
    );
    assert_unauthorized(
        basic.refresh(&http, &c, "never-issued").await,
        400,
        "invalid_grant",
    );
}
