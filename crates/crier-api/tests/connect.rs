//! Connecting accounts over HTTP through OAuth: the `state` (single use, this workspace and mode,
//! ten minutes), PKCE S256, reconnecting the same network account, tokens sealed at rest and
//! never shown, refresh before expiry and a refused refresh, disconnect with revocation.
//!
//! The network is `oauthfake`, a stateful fake of an OAuth 2 authorization server with PKCE
//! (RFC 6749 §4.1, RFC 7636): it issues single-use codes bound to the challenge it was shown,
//! checks the verifier and the client at the token endpoint, rotates refresh tokens, and can be
//! told to refuse refreshes. Real networks' connectors have their own suites against real
//! servers (Bluesky) and mocks (Mastodon).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine;
use common::{TestApp, both};
use crier_api::ApiConfig;
use crier_core::Scope;
use crier_networks::{
    Authorize, ConnectKind, Connected, Credentials, Exchange, MediaRules, Network, NetworkError,
    OAuthClient, Part, PublishedPart, Rules, Session,
};
use crier_store::Metrics;
use serde_json::{Value, json};
use sha2::Digest;

const PLATFORM: &str = "oauthfake";
const REDIRECT: &str = "https://app.example.com/connected";
const HOUR_MS: i64 = 3_600_000;

#[derive(Default)]
struct FakeState {
    /// code → (challenge, client id, user)
    codes: HashMap<String, (String, String, String)>,
    /// refresh token → user
    refresh: HashMap<String, String>,
    issued: u64,
    refuse_refresh: bool,
    revoked: Vec<String>,
    published: Vec<(String, String)>,
}

struct OAuthFake {
    clock: Arc<dyn crier_core::Clock>,
    state: Mutex<FakeState>,
    rules: Rules,
}

impl OAuthFake {
    fn new(clock: Arc<dyn crier_core::Clock>) -> Self {
        Self {
            clock,
            state: Mutex::default(),
            rules: Rules {
                platform: PLATFORM,
                counting: crier_core::text::Counting::CodePoints,
                max_length: 280,
                threads: false,
                max_thread_parts: 1,
                media: MediaRules {
                    min_count: 0,
                    max_count: 0,
                    image_types: vec![],
                    max_image_bytes: 0,
                    max_image_side: 0,
                    video_types: vec![],
                    max_video_bytes: 0,
                    max_video_ms: 0,
                    max_videos: 0,
                    mix: false,
                    max_alt_text: 0,
                },
                options: Vec::new(),
                hashtags: crier_networks::HashtagRules {
                    max_count: 10,
                    recommended: 2,
                    max_length: 100,
                },
            },
        }
    }

    /// The user approves at `url`: the fake issues a code for the challenge in it.
    fn approve(&self, url: &str, user: &str) -> String {
        let url = url::Url::parse(url).unwrap();
        let q: BTreeMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["redirect_uri"], REDIRECT);
        let mut s = self.state.lock().unwrap();
        s.issued += 1;
        let code = format!("code-{}", s.issued);
        s.codes.insert(
            code.clone(),
            (
                q["code_challenge"].clone(),
                q["client_id"].clone(),
                user.into(),
            ),
        );
        code
    }

    fn tokens(&self, s: &mut FakeState, user: &str) -> Credentials {
        s.issued += 1;
        let refresh = format!("rt-{}", s.issued);
        s.refresh.insert(refresh.clone(), user.to_owned());
        Credentials {
            access_token: format!("at-{}-{user}", s.issued),
            refresh_token: Some(refresh),
            expires_at: Some(self.clock.now_ms() + 2 * HOUR_MS),
            ..Credentials::default()
        }
    }
}

#[async_trait::async_trait]
impl Network for OAuthFake {
    fn rules(&self) -> &Rules {
        &self.rules
    }

    fn connect_kind(&self) -> ConnectKind {
        ConnectKind::OAuth {
            pkce: true,
            per_instance: false,
        }
    }

    fn authorize_url(&self, a: &Authorize<'_>) -> Result<url::Url, NetworkError> {
        let mut url = url::Url::parse("https://oauth.fake.invalid/authorize").unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", &a.client.client_id)
            .append_pair("redirect_uri", a.redirect_uri)
            .append_pair("state", a.state)
            .append_pair("code_challenge", a.code_challenge.unwrap_or(""))
            .append_pair("code_challenge_method", "S256");
        Ok(url)
    }

    async fn exchange_code(&self, e: &Exchange<'_>) -> Result<Connected, NetworkError> {
        let mut s = self.state.lock().unwrap();
        let Some((challenge, client, user)) = s.codes.remove(e.code) else {
            return Err(NetworkError::Unauthorized {
                message: "invalid_grant: unknown or used code".into(),
            });
        };
        let verifier = e.code_verifier.unwrap_or("");
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        if computed != challenge || client != e.client.client_id || e.redirect_uri != REDIRECT {
            return Err(NetworkError::Unauthorized {
                message: "invalid_grant: PKCE verification failed".into(),
            });
        }
        if e.client.client_secret.as_deref() != Some("fake-secret") {
            return Err(NetworkError::Unauthorized {
                message: "invalid_client".into(),
            });
        }
        let credentials = self.tokens(&mut s, &user);
        Ok(Connected {
            external_id: format!("uid-{user}"),
            handle: user.clone(),
            display_name: Some(format!("{user} (display)")),
            avatar_url: None,
            profile_url: Some(format!("https://oauth.fake.invalid/{user}")),
            service: None,
            credentials,
        })
    }

    async fn refresh(&self, session: Session<'_>) -> Result<Credentials, NetworkError> {
        let mut s = self.state.lock().unwrap();
        let token = session
            .credentials
            .refresh_token
            .clone()
            .unwrap_or_default();
        let user = s.refresh.remove(&token);
        match user {
            Some(user) if !s.refuse_refresh => Ok(self.tokens(&mut s, &user)),
            _ => Err(NetworkError::Unauthorized {
                message: "invalid_grant: refresh token revoked".into(),
            }),
        }
    }

    async fn revoke(&self, session: Session<'_>) -> Result<(), NetworkError> {
        let mut s = self.state.lock().unwrap();
        s.revoked.push(session.credentials.access_token.clone());
        Ok(())
    }

    async fn publish(&self, s: Session<'_>, part: Part<'_>) -> Result<PublishedPart, NetworkError> {
        let mut st = self.state.lock().unwrap();
        st.published
            .push((s.credentials.access_token.clone(), part.text.to_owned()));
        Ok(PublishedPart {
            external_id: format!("p{}", st.published.len()),
            url: format!("https://oauth.fake.invalid/p/{}", st.published.len()),
        })
    }

    async fn lookup(
        &self,
        _s: Session<'_>,
        _part: crier_networks::Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        Ok(None)
    }

    async fn metrics(&self, _s: Session<'_>, _id: &str) -> Result<Metrics, NetworkError> {
        Ok(Metrics::default())
    }
}

struct World {
    app: TestApp,
    fake: Arc<OAuthFake>,
    key: String,
}

async fn world() -> World {
    world_on("self-hosted").await
}

async fn world_on(plan: &str) -> World {
    let mut fake = None;
    let app = TestApp::composed(ApiConfig::default(), plan, |store, clock, config| {
        let f = Arc::new(OAuthFake::new(Arc::new(clock.clone())));
        fake = Some(f.clone());
        common::compose_with(store, clock, config, vec![f]).with_connect(crier_app::ConnectConfig {
            redirect_uris: vec![REDIRECT.into()],
            clients: [(
                PLATFORM.to_owned(),
                OAuthClient {
                    client_id: "crier-client".into(),
                    client_secret: Some("fake-secret".into()),
                },
            )]
            .into(),
            allow_private_networks: false,
        })
    })
    .await;
    let key = app.admin_key().await;
    World {
        app,
        fake: fake.unwrap(),
        key,
    }
}

fn start_path() -> String {
    format!(
        "/v1/connect/{PLATFORM}?redirect_uri={}",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    )
}

impl World {
    async fn start_with(&self, key: &str) -> Value {
        let r = self.app.get(&start_path()).key(key).send().await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }

    async fn start(&self) -> Value {
        self.start_with(&self.key).await
    }

    async fn finish_with(&self, key: &str, code: &str, state: &str) -> common::Response {
        self.app
            .post(&format!("/v1/connect/{PLATFORM}"))
            .key(key)
            .json(json!({"code": code, "state": state}))
            .send()
            .await
    }

    /// Starts, approves as `user`, finishes: the account.
    async fn connect(&self, user: &str) -> Value {
        let started = self.start().await;
        let code = self.fake.approve(started["url"].as_str().unwrap(), user);
        let r = self
            .finish_with(&self.key, &code, started["state"].as_str().unwrap())
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }

    async fn accounts(&self) -> Vec<Option<String>> {
        self.app
            .raw_texts("SELECT id FROM accounts ORDER BY id")
            .await
    }
}

// ---- the happy path, and what is stored ----

async fn an_oauth_connection_stores_sealed_tokens_and_shows_none() {
    let w = world().await;
    let started = w.start().await;
    assert_eq!(started["method"], "oauth");
    let state = started["state"].as_str().unwrap();
    assert!(state.len() >= 40, "a state with enough entropy: {state}");
    let expires: jiff::Timestamp = started["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        expires.as_millisecond() - crier_core::Clock::now_ms(&w.app.clock),
        10 * 60 * 1000
    );
    let url = url::Url::parse(started["url"].as_str().unwrap()).unwrap();
    let q: BTreeMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["state"], state);
    assert_eq!(q["client_id"], "crier-client");
    assert_eq!(q["code_challenge"].len(), 43, "S256: 32 bytes, base64url");

    let code = w.fake.approve(url.as_str(), "ada");
    let r = w.finish_with(&w.key, &code, state).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let a = &r.body;
    assert_eq!(a["platform"], PLATFORM);
    assert_eq!(a["handle"], "ada");
    assert_eq!(a["display_name"], "ada (display)");
    assert_eq!(a["external_id"], "uid-ada");
    assert_eq!(a["status"], "connected");
    assert!(
        !r.text.contains("at-2-ada") && !r.text.contains("rt-2"),
        "{}",
        r.text
    );

    // At rest: sealed, not the token.
    let sealed = w
        .app
        .raw_texts("SELECT credentials FROM accounts WHERE platform = 'oauthfake'")
        .await;
    let sealed = sealed[0].clone().expect("credentials stored");
    assert!(sealed.starts_with("v1.test."), "{sealed}");
    assert!(
        !sealed.contains("at-2-ada") && !sealed.contains("rt-2"),
        "{sealed}"
    );
    // The connection's state row is gone, and the stored verifier was sealed too.
    assert!(
        w.app
            .raw_texts("SELECT state_hash FROM connect_states")
            .await
            .is_empty()
    );

    let list = w.app.get("/v1/accounts").key(&w.key).send().await;
    assert!(!list.text.contains("at-2-ada"), "{}", list.text);
    assert_eq!(list.body["data"][0]["id"], a["id"]);
}

// ---- state: unknown, reused, expired, foreign, other mode ----

async fn a_state_is_single_use_bound_and_short_lived() {
    let w = world().await;
    let before = w.accounts().await;

    // Unknown.
    let r = w.finish_with(&w.key, "code-x", "not-a-state").await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "state");

    // Reused: the first finish wins, the second is refused.
    let started = w.start().await;
    let state = started["state"].as_str().unwrap().to_owned();
    let code = w.fake.approve(started["url"].as_str().unwrap(), "ada");
    assert_eq!(w.finish_with(&w.key, &code, &state).await.status, 201);
    let code2 = w.fake.approve(started["url"].as_str().unwrap(), "ada");
    let r = w.finish_with(&w.key, &code2, &state).await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "state");

    // Expired: ten minutes and a second later.
    let started = w.start().await;
    let code = w.fake.approve(started["url"].as_str().unwrap(), "bob");
    w.app.clock.advance(std::time::Duration::from_secs(601));
    let r = w
        .finish_with(&w.key, &code, started["state"].as_str().unwrap())
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "state");

    // Foreign: another workspace's key cannot use it, and trying does not spend it.
    let started = w.start().await;
    let state = started["state"].as_str().unwrap().to_owned();
    let code = w.fake.approve(started["url"].as_str().unwrap(), "cy");
    let other = w.app.other_workspace("rival").await;
    let (other_key, _) = w
        .app
        .key_in(
            &other,
            common::KeySpec {
                scopes: Scope::ALL.to_vec(),
                ..common::KeySpec::default()
            },
        )
        .await;
    let r = w.finish_with(&other_key, &code, &state).await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "state");
    // A test-mode key of the same workspace: test mode connects only the sandbox.
    let (test_key, _) = w
        .app
        .key(common::KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(crier_core::KeyMode::Test),
            ..common::KeySpec::default()
        })
        .await;
    let r = w.finish_with(&test_key, &code, &state).await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "platform");
    let r = w.app.get(&start_path()).key(&test_key).send().await;
    r.assert_error(400, "invalid_request");
    // The owner still can.
    let r = w.finish_with(&w.key, &code, &state).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(w.accounts().await.len(), before.len() + 2, "ada and cy");
}

// ---- PKCE and the network's refusals ----

async fn the_pkce_verifier_and_the_code_are_checked() {
    let w = world().await;
    // A code issued for another connection's challenge: the verifier does not match.
    let first = w.start().await;
    let second = w.start().await;
    let code_for_first = w.fake.approve(first["url"].as_str().unwrap(), "ada");
    let r = w
        .finish_with(&w.key, &code_for_first, second["state"].as_str().unwrap())
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "code");
    assert!(
        r.text.contains("PKCE"),
        "the network's message is kept: {}",
        r.text
    );
    assert!(w.accounts().await.is_empty());
}

// ---- bad input ----

async fn bad_connect_input_is_refused_and_changes_nothing() {
    let w = world().await;
    // No redirect URI, a redirect URI the operator did not allow.
    let r = w
        .app
        .get(&format!("/v1/connect/{PLATFORM}"))
        .key(&w.key)
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "redirect_uri");
    let r = w
        .app
        .get(&format!(
            "/v1/connect/{PLATFORM}?redirect_uri=https%3A%2F%2Fevil.example%2Fsteal"
        ))
        .key(&w.key)
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "redirect_uri");
    // Not a URL, or too long, even where the platform does not use it.
    for query in [
        "redirect_uri=null".to_owned(),
        format!("redirect_uri=https://a.example/{}", "x".repeat(2048)),
        "instance=null".to_owned(),
    ] {
        let r = w
            .app
            .get(&format!("/v1/connect/sandbox?{query}"))
            .key(&w.key)
            .send()
            .await;
        r.assert_error(400, "invalid_request");
    }
    // A parameter given twice.
    let r = w
        .app
        .get(&format!("{}&redirect_uri=x", start_path()))
        .key(&w.key)
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "redirect_uri");
    // Unknown platform.
    w.app
        .get("/v1/connect/myspace")
        .key(&w.key)
        .send()
        .await
        .assert_error(404, "not_found");
    let started = w.start().await;
    let state = started["state"].as_str().unwrap();
    for (body, param) in [
        (json!({"state": state}), "code"),
        (json!({"code": "c"}), "state"),
        (json!({"code": "x".repeat(2049), "state": state}), "code"),
        (json!({"code": "", "state": state}), "code"),
    ] {
        let r = w
            .app
            .post(&format!("/v1/connect/{PLATFORM}"))
            .key(&w.key)
            .json(body)
            .send()
            .await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["param"], param, "{}", r.text);
    }
    for body in [
        json!({"code": "c", "state": state, "extra": 1}),
        json!({"code": 5, "state": state}),
    ] {
        w.app
            .post(&format!("/v1/connect/{PLATFORM}"))
            .key(&w.key)
            .json(body)
            .send()
            .await
            .assert_error(400, "invalid_request");
    }
    // A key without accounts:write.
    let reader = w.app.key_with(&[Scope::AccountsRead]).await;
    w.app
        .get(&start_path())
        .key(&reader)
        .send()
        .await
        .assert_error(403, "forbidden_scope");
    assert!(w.accounts().await.is_empty());
    // Refused input spent nothing: the state still finishes.
    let code = w.fake.approve(started["url"].as_str().unwrap(), "ada");
    assert_eq!(w.finish_with(&w.key, &code, state).await.status, 201);
}

async fn open_connections_per_workspace_are_bounded() {
    let w = world().await;
    for _ in 0..crier_app::connect::MAX_OPEN_STATES {
        w.start().await;
    }
    let r = w.app.get(&start_path()).key(&w.key).send().await;
    r.assert_error(409, "conflict");
    // Expired ones make room again.
    w.app.clock.advance(std::time::Duration::from_secs(601));
    w.start().await;
}

// ---- reconnect, disconnect, revoke ----

async fn reconnecting_updates_the_same_account_and_disconnect_revokes() {
    let w = world().await;
    let first = w.connect("ada").await;
    let again = w.connect("ada").await;
    assert_eq!(
        first["id"], again["id"],
        "the same network account: the same id"
    );
    assert_eq!(w.accounts().await.len(), 1);
    let other = w.connect("bob").await;
    assert_ne!(other["id"], first["id"]);

    let id = first["id"].as_str().unwrap();
    let r = w
        .app
        .delete(&format!("/v1/accounts/{id}"))
        .key(&w.key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "disconnected");
    let revoked = w.fake.state.lock().unwrap().revoked.clone();
    assert_eq!(revoked.len(), 1);
    assert!(revoked[0].ends_with("-ada"), "{revoked:?}");
    let creds = w
        .app
        .raw_texts("SELECT credentials FROM accounts WHERE handle = 'ada'")
        .await;
    assert_eq!(creds, vec![None], "a disconnected account keeps no token");
    let events = w
        .app
        .raw_texts("SELECT type FROM events WHERE type = 'account.disconnected'")
        .await;
    assert_eq!(events.len(), 1);

    // Connecting it again brings the same row back.
    let back = w.connect("ada").await;
    assert_eq!(back["id"], first["id"]);
    assert_eq!(back["status"], "connected");
    assert_eq!(back["disconnected_at"], Value::Null);
}

async fn the_plan_limit_counts_new_accounts_not_reconnects() {
    let w = world_on("free").await;
    let limit = crier_core::Plan::defaults()["free"]
        .connected_accounts
        .unwrap();
    for i in 0..limit {
        w.connect(&format!("user{i}")).await;
    }
    // A reconnect of one of them is fine at the limit.
    w.connect("user0").await;
    let started = w.start().await;
    let code = w.fake.approve(started["url"].as_str().unwrap(), "newbie");
    let r = w
        .finish_with(&w.key, &code, started["state"].as_str().unwrap())
        .await;
    r.assert_error(402, "quota_exceeded");
    assert_eq!(w.accounts().await.len() as u64, limit);
}

// ---- tokens: refreshed before they expire; a refusal expires the account ----

async fn tokens_are_refreshed_before_expiry_and_a_refusal_expires_the_account() {
    let w = world().await;
    let a = w.connect("ada").await;
    let id = a["id"].as_str().unwrap().to_owned();
    let app = w.app.state.app().clone();
    let sealed_before = w.app.raw_texts("SELECT credentials FROM accounts").await;

    // Not due yet: an hour before expiry nothing happens.
    w.app.clock.advance(std::time::Duration::from_secs(3600));
    assert_eq!(crier_worker::tokens::refresh_once(&app).await, 0);
    // Ten minutes before expiry (two hours), it is renewed.
    w.app.clock.advance(std::time::Duration::from_secs(50 * 60));
    assert_eq!(crier_worker::tokens::refresh_once(&app).await, 1);
    let sealed_after = w.app.raw_texts("SELECT credentials FROM accounts").await;
    assert_ne!(sealed_before, sealed_after, "new tokens sealed");
    // The rotated refresh token was used: the fake forgot the first one.
    assert!(!w.fake.state.lock().unwrap().refresh.contains_key("rt-2"));

    // A post published now uses the new access token.
    let post = common::posts::create(
        &w.app,
        &w.key,
        json!({"body": "hello", "account_ids": [id]}),
    )
    .await;
    let pid = post["id"].as_str().unwrap();
    let r = common::posts::act(&w.app, &w.key, pid, "publish", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    common::posts::run(&w.app).await;
    let published = w.fake.state.lock().unwrap().published.clone();
    assert_eq!(published.len(), 1);
    assert!(published[0].0.starts_with("at-3"), "{published:?}");

    // The network refuses the next refresh: the account expires, with its event, and a
    // post scheduled to it fails with `account_disconnected` instead of being retried.
    w.fake.state.lock().unwrap().refuse_refresh = true;
    w.app
        .clock
        .advance(std::time::Duration::from_secs(2 * 3600));
    assert_eq!(crier_worker::tokens::refresh_once(&app).await, 1);
    let r = w.app.get("/v1/accounts").key(&w.key).send().await;
    assert_eq!(r.body["data"][0]["status"], "expired", "{}", r.text);
    let events = w
        .app
        .raw_texts("SELECT type FROM events WHERE type = 'account.disconnected'")
        .await;
    assert_eq!(events.len(), 1);
    // A second refresh round does nothing more.
    assert_eq!(crier_worker::tokens::refresh_once(&app).await, 0);
    // Posting to it: refused at scheduling (the account is not connected).
    let r = w
        .app
        .post("/v1/posts")
        .key(&w.key)
        .json(json!({"body": "later", "account_ids": [id]}))
        .send()
        .await;
    r.assert_error(400, "invalid_request");
}

async fn an_expired_account_fails_its_scheduled_targets_with_account_disconnected() {
    let w = world().await;
    let a = w.connect("ada").await;
    let id = a["id"].as_str().unwrap().to_owned();
    let app = w.app.state.app().clone();
    let post = common::posts::create(
        &w.app,
        &w.key,
        json!({"body": "tomorrow", "account_ids": [id]}),
    )
    .await;
    let pid = post["id"].as_str().unwrap();
    let at =
        (crier_core::Clock::now(&w.app.clock) + jiff::SignedDuration::from_hours(3)).to_string();
    let r = common::posts::act(
        &w.app,
        &w.key,
        pid,
        "schedule",
        Some(json!({ "scheduled_at": at })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    w.fake.state.lock().unwrap().refuse_refresh = true;
    w.app
        .clock
        .advance(std::time::Duration::from_secs(2 * 3600));
    assert_eq!(crier_worker::tokens::refresh_once(&app).await, 1);
    w.app.clock.advance(std::time::Duration::from_secs(3600));
    common::posts::run(&w.app).await;
    let p = common::posts::get_post(&w.app, &w.key, pid).await;
    assert_eq!(p["status"], "failed", "{p}");
    assert_eq!(p["targets"][0]["error"]["code"], "account_disconnected");
    assert!(w.fake.state.lock().unwrap().published.is_empty());
}

async fn credentials_that_do_not_open_never_expire_the_account() {
    let w = world().await;
    w.connect("ada").await;
    // As if another node (with other secret_keys) had sealed them.
    w.app
        .raw_execute("UPDATE accounts SET credentials = 'v1.othernode.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'")
        .await;
    let app = w.app.state.app().clone();
    w.app
        .clock
        .advance(std::time::Duration::from_secs(2 * 3600));
    assert_eq!(crier_worker::tokens::refresh_once(&app).await, 1);
    let r = w.app.get("/v1/accounts").key(&w.key).send().await;
    assert_eq!(r.body["data"][0]["status"], "connected", "{}", r.text);
    assert!(
        w.app
            .raw_texts("SELECT type FROM events WHERE type = 'account.disconnected'")
            .await
            .is_empty()
    );
    // And a server whose keys do not open them refuses to start.
    assert!(app.tokens().check_keys().await.is_err());
}

async fn a_key_rotation_reseals_stored_credentials() {
    let w = world().await;
    w.connect("ada").await;
    let before = w.app.raw_texts("SELECT credentials FROM accounts").await;
    assert!(before[0].as_deref().unwrap().starts_with("v1.test."));
    // The operator puts a new key first and keeps the old one after it.
    let old = w.app.state.app().keyring().clone();
    let new_spec = crier_app::Keyring::generate_spec("k2");
    let rotated = crier_app::Keyring::parse(&new_spec)
        .unwrap()
        .with_older(&old);
    let app = common::compose_with(
        &w.app.store,
        &w.app.clock,
        &ApiConfig::default(),
        vec![w.fake.clone()],
    )
    .with_keyring(rotated);
    app.tokens()
        .check_keys()
        .await
        .expect("the old key still opens");
    // A second account, first by id, whose credentials no key here opens (sealed by a key the
    // operator lost): it is left, and does not stop the others, even a page of one at a time.
    w.connect("bob").await;
    w.app
        .raw_execute(
            "UPDATE accounts SET credentials = 'v1.gone.AAAA'
             WHERE id = (SELECT MIN(id) FROM accounts)",
        )
        .await;
    let pass = app.tokens().reseal(1).await.unwrap();
    assert_eq!((pass.sealed_again, pass.unopened), (1, 1));
    let pass = crier_app::reseal::reseal_all(&app).await.unwrap();
    assert_eq!(pass.sealed_again(), 0, "done once");
    assert_eq!(pass.unopened(), 1);
    let after = w
        .app
        .raw_texts("SELECT credentials FROM accounts ORDER BY id")
        .await;
    assert_eq!(after[0].as_deref(), Some("v1.gone.AAAA"));
    assert!(
        after[1].as_deref().unwrap().starts_with("v1.k2."),
        "{after:?}"
    );
    w.app
        .raw_execute("DELETE FROM accounts WHERE credentials = 'v1.gone.AAAA'")
        .await;
    // Now the old key can go: the new one alone opens them.
    let only_new = common::compose_with(
        &w.app.store,
        &w.app.clock,
        &ApiConfig::default(),
        vec![w.fake.clone()],
    )
    .with_keyring(crier_app::Keyring::parse(&new_spec).unwrap());
    only_new.tokens().check_keys().await.expect("resealed");
}

async fn a_claimed_refresh_is_not_claimed_twice_even_when_asked_early() {
    let w = world().await;
    let a = w.connect("ada").await;
    let store = w.app.store.clone();
    let now = crier_core::Clock::now_ms(&w.app.clock) + 2 * HOUR_MS;
    let claimed = store.claim_refreshes(now, 120_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // A publisher's 401 asks for a renewal now: the claim in progress still holds.
    let id = crier_core::ids::AccountId::parse(a["id"].as_str().unwrap()).unwrap();
    store.refresh_soon(&id, now).await.unwrap();
    assert!(
        store
            .claim_refreshes(now + 1, 120_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // After the lease it comes back.
    assert_eq!(
        store
            .claim_refreshes(now + 120_001, 120_000, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Credentials sealed with the client the account connected with open with the client the
/// operator configures now: a rotated app secret is the one refresh and revoke use.
async fn the_configured_client_replaces_the_one_kept_at_connect() {
    let w = world().await;
    let started = w.start().await;
    let state = started["state"].as_str().unwrap();
    let code = w.fake.approve(started["url"].as_str().unwrap(), "ada");
    let r = w.finish_with(&w.key, &code, state).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = crier_core::ids::AccountId::parse(r.body["id"].as_str().unwrap()).unwrap();
    let app = w.app.state.app();
    let mut account = w
        .app
        .store
        .get_account(&w.app.workspace.id, &id)
        .await
        .unwrap()
        .unwrap();
    // As if sealed when the operator's secret was another one.
    let mut old = app.tokens().open(&account).unwrap().unwrap();
    old.client = Some(OAuthClient {
        client_id: "crier-client".into(),
        client_secret: Some("leaked-secret".into()),
    });
    account.credentials = Some(
        app.keyring()
            .seal_json(&old, &crier_app::connect::account_aad(&account)),
    );
    let opened = app.tokens().open(&account).unwrap().unwrap();
    let client = opened.client.expect("a client");
    assert_eq!(client.client_secret.as_deref(), Some("fake-secret"));
    assert_eq!(opened.access_token, old.access_token, "the rest as sealed");
}

/// A network (or a server a user named) answering an account id crier cannot keep, with a NUL
/// in it (PostgreSQL cannot store one), is refused as the network's fault, not a 500, and
/// nothing is stored.
async fn an_account_id_that_cannot_be_kept_is_refused() {
    let w = world().await;
    let started = w.start().await;
    let state = started["state"].as_str().unwrap();
    let code = w.fake.approve(started["url"].as_str().unwrap(), "a\u{0}b");
    let r = w.finish_with(&w.key, &code, state).await;
    r.assert_error(503, "upstream_unavailable");
    assert!(r.text.contains("cannot keep"), "{}", r.text);
    let r = w.app.get("/v1/accounts").key(&w.key).send().await;
    assert_eq!(r.body["data"], json!([]), "{}", r.text);
}

both!(
    tests: an_account_id_that_cannot_be_kept_is_refused,
    an_oauth_connection_stores_sealed_tokens_and_shows_none,
    the_configured_client_replaces_the_one_kept_at_connect,
    credentials_that_do_not_open_never_expire_the_account,
    a_key_rotation_reseals_stored_credentials,
    a_claimed_refresh_is_not_claimed_twice_even_when_asked_early,
    a_state_is_single_use_bound_and_short_lived,
    the_pkce_verifier_and_the_code_are_checked,
    bad_connect_input_is_refused_and_changes_nothing,
    open_connections_per_workspace_are_bounded,
    reconnecting_updates_the_same_account_and_disconnect_revokes,
    the_plan_limit_counts_new_accounts_not_reconnects,
    tokens_are_refreshed_before_expiry_and_a_refusal_expires_the_account,
    an_expired_account_fails_its_scheduled_targets_with_account_disconnected,
);
