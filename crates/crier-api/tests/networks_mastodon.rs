//! Mastodon end to end through crier's API, against mastodon-mock (a stateful Mastodon API on
//! 127.0.0.1, started by `scripts/peers/mastodon.sh`; see README "Networks"): connect through
//! the OAuth flow (crier registers itself on the instance once), preflight with the instance's
//! own limits, publish a thread with per-account overrides through the publisher, read the
//! statuses back from the instance, disconnect and find the token revoked there.
//!
//! Skips without `CRIER_TEST_MASTODON_URL`, fails without it when `CRIER_REQUIRE_PEERS=1` (CI).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::mastodon::{REDIRECT, browser, mock_url};
use common::{TestApp, both};
use crier_api::ApiConfig;
use serde_json::{Value, json};

/// The app over `store` with the Mastodon connector.
fn compose(
    store: &crier_store::Store,
    clock: &crier_core::ManualClock,
    config: &ApiConfig,
) -> crier_app::App {
    common::mastodon::compose(store, clock, config, Duration::from_secs(10))
}

async fn app() -> (TestApp, String) {
    let app = TestApp::composed(ApiConfig::default(), "self-hosted", compose).await;
    let key = app.admin_key().await;
    (app, key)
}

/// The user approves crier in the instance's form, as `user`: the code it redirects with.
async fn approve(url: &str, user: &str, state: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["state"], state);
    assert_eq!(q["code_challenge_method"], "S256");
    let base = format!("{}://{}", url.scheme(), url.host_str().unwrap());
    let base = match url.port() {
        Some(p) => format!("{base}:{p}"),
        None => base,
    };
    let form = browser().get(url.clone()).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let approved = browser()
        .post(format!("{base}/oauth/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("username", user)
                .append_pair("redirect_uri", REDIRECT)
                .append_pair("client_id", &q["client_id"])
                .append_pair("scope", &q["scope"])
                .append_pair("state", &q["state"])
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 302);
    let location = url::Url::parse(approved.headers()["location"].to_str().unwrap()).unwrap();
    let back: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(back["state"], state, "the instance sends our state back");
    back["code"].clone()
}

async fn connect(app: &TestApp, key: &str, base: &str, user: &str) -> Value {
    let path = format!(
        "/v1/connect/mastodon?redirect_uri={}&instance={}",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(base.as_bytes()).collect::<String>()
    );
    let r = app.get(&path).key(key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["method"], "oauth");
    let state = r.body["state"].as_str().unwrap().to_owned();
    let code = approve(r.body["url"].as_str().unwrap(), user, &state).await;
    let r = app
        .post("/v1/connect/mastodon")
        .key(key)
        .json(json!({"code": code, "state": state}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn status(base: &str, token: &str, id: &str) -> Value {
    let r = browser()
        .get(format!("{base}/api/v1/statuses/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

async fn connect_preflight_publish_and_disconnect() {
    let Some(base) = mock_url() else { return };
    let (app, key) = app().await;
    let a = connect(&app, &key, &base, "ada").await;
    assert!(a["handle"].as_str().unwrap().starts_with("ada@"), "{a}");
    assert_eq!(a["service"], base.as_str());
    assert_eq!(a["display_name"], "Ada Lovelace");
    // Once per instance and redirect URI: a second connection reuses the registration.
    let again = connect(&app, &key, &base, "ada").await;
    assert_eq!(
        again["id"], a["id"],
        "the same Mastodon account: the same id"
    );
    assert_eq!(
        app.raw_texts("SELECT client_id FROM oauth_clients")
            .await
            .len(),
        1
    );
    let id = a["id"].as_str().unwrap().to_owned();

    // Preflight with the instance's own limits: every problem at once, nothing saved.
    let long = "x".repeat(600);
    let r = app
        .post("/v1/posts/validate")
        .key(&key)
        .json(json!({"body": long, "thread": ["fine", long], "account_ids": [id]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["valid"], false);
    let rules: Vec<(&str, &str)> = r.body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["rule"].as_str().unwrap(), p["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rules,
        vec![
            ("mastodon.text.max_characters", "body"),
            ("mastodon.text.max_characters", "thread[1]")
        ],
        "{}",
        r.text
    );
    assert_eq!(common::posts::post_count(&app).await, 0);

    // A thread with this account's overrides, published by the publisher.
    let post = common::posts::create(
        &app,
        &key,
        json!({
            "body": "Launch day: https://example.com/launch #crier",
            "thread": ["And a reply."],
            "account_ids": [id],
            "overrides": {&id: {"visibility": "unlisted", "spoiler_text": "launch", "language": "de"}},
        }),
    )
    .await;
    let pid = post["id"].as_str().unwrap();
    let r = common::posts::act(&app, &key, pid, "publish", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    common::posts::run(&app).await;
    let p = common::posts::get_post(&app, &key, pid).await;
    assert_eq!(p["status"], "published", "{p}");
    let t = &p["targets"][0];
    assert!(t["url"].as_str().unwrap().contains("/@ada/"), "{t}");

    // Read back from the instance, with the account's token.
    let account = app
        .store
        .get_account(
            &app.workspace.id,
            &crier_core::ids::AccountId::parse(&id).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let creds = app
        .state
        .app()
        .tokens()
        .open(&account)
        .unwrap()
        .expect("credentials");
    let root = status(
        &base,
        &creds.access_token,
        t["external_id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(root["visibility"], "unlisted");
    assert_eq!(root["spoiler_text"], "launch");
    assert_eq!(root["language"], "de");
    assert!(root["content"].as_str().unwrap().contains("Launch day"));
    let attempts = app
        .raw_texts("SELECT external_id FROM publish_attempts WHERE part = 1")
        .await;
    let reply_id = attempts[0].clone().expect("the reply's id");
    let reply = status(&base, &creds.access_token, &reply_id).await;
    assert_eq!(reply["in_reply_to_id"], root["id"]);

    // Disconnect: the token is revoked at the instance.
    let r = app
        .delete(&format!("/v1/accounts/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let after = browser()
        .get(format!("{base}/api/v1/accounts/verify_credentials"))
        .bearer_auth(&creds.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401, "revoked at the instance");
}

/// After the operator rotates `secret_keys`, the client crier registered on the instance is
/// sealed again with the new key, so the old one can go.
async fn a_key_rotation_seals_the_registered_client_again() {
    let Some(base) = mock_url() else { return };
    let (app, key) = app().await;
    connect(&app, &key, &base, "ada").await;
    let sealed = app
        .raw_texts("SELECT client_secret FROM oauth_clients")
        .await;
    assert!(
        sealed[0].as_deref().unwrap().starts_with("v1.test."),
        "{sealed:?}"
    );
    let old = app.state.app().keyring().clone();
    let k2 = crier_app::Keyring::generate_spec("k2");
    let node = || compose(&app.store, &app.clock, &ApiConfig::default());
    let rotated = node().with_keyring(crier_app::Keyring::parse(&k2).unwrap().with_older(&old));
    let pass = crier_app::reseal::reseal_all(&rotated).await.unwrap();
    assert_eq!(pass.oauth_clients.sealed_again, 1, "{pass:?}");
    assert_eq!(pass.accounts.sealed_again, 1, "{pass:?}");
    assert_eq!(pass.unopened(), 0);
    assert_eq!(
        crier_app::reseal::reseal_all(&rotated)
            .await
            .unwrap()
            .sealed_again(),
        0
    );
    // The new key alone opens the client: the old one can go.
    let alone = node().with_keyring(crier_app::Keyring::parse(&k2).unwrap());
    let instance = url::Url::parse(&base).unwrap();
    let client = alone
        .connections()
        .registered_client("mastodon", instance.as_str(), REDIRECT)
        .await
        .unwrap()
        .expect("registered");
    assert!(client.client_secret.is_some());
    assert!(
        app.state
            .app()
            .connections()
            .registered_client("mastodon", instance.as_str(), REDIRECT)
            .await
            .is_err(),
        "the old key alone no longer opens it"
    );
}

both!(
    tests: connect_preflight_publish_and_disconnect,
    a_key_rotation_seals_the_registered_client_again,
);
