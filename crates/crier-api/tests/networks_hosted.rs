//! The networks of one operator through the API, each against its fake (`crier-fakes`):
//! connect with the OAuth flow (`GET` then `POST /v1/connect/{platform}`), preflight answering
//! the network's own rule ids (length, media required, its options), a post published through
//! the publisher where the network takes text alone, and a disconnect. On SQLite and
//! PostgreSQL. The conformance suite (crier-worker) holds each connector to the rest.

mod common;

use std::sync::Arc;

use common::posts::run;
use common::{TestApp, both};
use crier_api::ApiConfig;
use crier_fakes::{FakeNetwork, kit};
use crier_worker::Processed;
use serde_json::{Value, json};

const REDIRECT: &str = "https://app.example.com/connected";

/// What one network's preflight must refuse: a body too long for it (where the API's own
/// bound leaves room), and one option with a value it does not take.
struct Case {
    too_long: Option<String>,
    bad_option: (&'static str, Value),
    /// Accounts one approval connects (the member and their pages, each Facebook Page).
    accounts: usize,
}

async fn app_for(fake: &dyn FakeNetwork) -> (TestApp, String) {
    let app = TestApp::composed(
        ApiConfig::default(),
        "self-hosted",
        |store, clock, config| {
            let network = fake.connector(Arc::new(clock.clone()));
            common::compose_with(store, clock, config, vec![network]).with_connect(
                crier_app::ConnectConfig {
                    redirect_uris: vec![REDIRECT.into()],
                    clients: [(fake.platform().to_owned(), fake.client())]
                        .into_iter()
                        .collect(),
                    allow_private_networks: true,
                },
            )
        },
    )
    .await;
    let key = app.admin_key().await;
    (app, key)
}

async fn connect(app: &TestApp, key: &str, platform: &str) -> Value {
    let redirect: String = url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect();
    let r = app
        .get(&format!("/v1/connect/{platform}?redirect_uri={redirect}"))
        .key(key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let url = url::Url::parse(r.body["url"].as_str().unwrap()).unwrap();
    let (code, state) = kit::approve(&url).await;
    assert_eq!(state, r.body["state"].as_str().unwrap());
    let r = app
        .post(&format!("/v1/connect/{platform}"))
        .key(key)
        .json(json!({"code": code, "state": state}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["platform"], platform);
    assert_eq!(r.body["status"], "connected");
    assert!(!r.text.contains("access_token"), "no token in a response");
    // The same approval again is the same account, never a second one.
    r.body
}

async fn through_the_api<F: FakeNetwork>(fake: F, case: Case) {
    let platform = fake.platform();
    let (app, key) = app_for(&fake).await;
    let account = connect(&app, &key, platform).await;
    let acct = account["id"].as_str().unwrap().to_owned();
    let r = app.get("/v1/accounts").key(&key).send().await;
    let listed = r.body["data"].as_array().unwrap();
    assert_eq!(listed.len(), case.accounts, "{}", r.text);
    assert!(
        listed
            .iter()
            .all(|a| a["platform"] == platform && a["status"] == "connected")
    );

    // Preflight: every problem at once, with this network's rule ids; nothing saved.
    let posts_before = app.posts_snapshot().await;
    let (name, bad) = case.bad_option;
    let body = case.too_long.clone().unwrap_or_else(|| "Hello".into());
    let r = app
        .post("/v1/posts/validate")
        .key(&key)
        .json(json!({"body": body, "account_ids": [acct],
                     "overrides": {(acct.clone()): {"options": {(name): bad, "nope": true}}}}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["valid"], false);
    let rules: Vec<&str> = r.body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&format!("{platform}.options.{name}").as_str()),
        "{rules:?}"
    );
    assert!(
        rules.contains(&format!("{platform}.options.unknown").as_str()),
        "{rules:?}"
    );
    if case.too_long.is_some() {
        assert!(
            rules
                .iter()
                .any(|r| r.starts_with(&format!("{platform}.text.max_"))),
            "{rules:?}"
        );
    }
    if !fake.features().text {
        assert!(
            rules.contains(&format!("{platform}.media.required").as_str()),
            "{rules:?}"
        );
    }
    assert_eq!(app.posts_snapshot().await, posts_before);

    // A valid post, where the network takes text alone: published once, through the publisher.
    if fake.features().text {
        let r = app
            .post("/v1/posts")
            .key(&key)
            .json(json!({"body": "Launch day, through the API", "account_ids": [acct]}))
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let r = app
            .post(&format!("/v1/posts/{id}/publish"))
            .key(&key)
            .send()
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(run(&app).await, [Processed::Published]);
        let r = app.get(&format!("/v1/posts/{id}")).key(&key).send().await;
        assert_eq!(r.body["status"], "published", "{}", r.text);
        let external = r.body["targets"][0]["external_id"].as_str().unwrap();
        let mine: Vec<_> = fake
            .posts()
            .into_iter()
            .filter(|p| p.id == external)
            .collect();
        assert_eq!(mine.len(), 1, "on the network once");
        assert_eq!(mine[0].text, "Launch day, through the API");
    }

    // Disconnected: no longer usable, its tokens gone from storage.
    let r = app
        .delete(&format!("/v1/accounts/{acct}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "disconnected");
}

fn clock() -> Arc<dyn crier_core::Clock> {
    Arc::new(crier_core::SystemClock)
}

async fn x() {
    let fake = crier_fakes::x::XFake::start(clock()).await;
    let case = Case {
        too_long: Some("é".repeat(281)),
        bad_option: ("reply_settings", json!("everyone")),
        accounts: 1,
    };
    through_the_api(fake, case).await;
}

async fn linkedin() {
    let fake = crier_fakes::linkedin::LinkedInFake::start(clock()).await;
    let case = Case {
        too_long: Some("a".repeat(3001)),
        bad_option: ("visibility", json!("FRIENDS")),
        accounts: 2,
    };
    through_the_api(fake, case).await;
}

async fn facebook() {
    let fake = crier_fakes::facebook::FacebookFake::start(clock()).await;
    // 63,206 characters is more than the API takes for any body.
    let case = Case {
        too_long: None,
        bad_option: ("link", json!(true)),
        accounts: 2,
    };
    through_the_api(fake, case).await;
}

async fn threads() {
    let fake = crier_fakes::threads::ThreadsFake::start(clock()).await;
    let case = Case {
        too_long: Some("a".repeat(501)),
        bad_option: ("reply_control", json!("nobody")),
        accounts: 1,
    };
    through_the_api(fake, case).await;
}

async fn instagram() {
    let fake = crier_fakes::instagram::InstagramFake::start(clock()).await;
    let case = Case {
        too_long: Some("a".repeat(2201)),
        bad_option: ("first_comment", json!(true)),
        accounts: 1,
    };
    through_the_api(fake, case).await;
}

async fn youtube() {
    let fake = crier_fakes::youtube::YouTubeFake::start(clock()).await;
    let case = Case {
        too_long: Some("a".repeat(5001)),
        bad_option: ("privacy", json!("secret")),
        accounts: 1,
    };
    through_the_api(fake, case).await;
}

async fn tiktok() {
    let fake = crier_fakes::tiktok::TikTokFake::start(clock()).await;
    let case = Case {
        too_long: Some("a".repeat(2201)),
        bad_option: ("privacy", json!("EVERYONE")),
        accounts: 1,
    };
    through_the_api(fake, case).await;
}

both!(tests: x, linkedin, facebook, threads, instagram, youtube, tiktok);
