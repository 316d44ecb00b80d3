//! The dashboard in a real browser (headless Chromium through playwright-core,
//! `scripts/peers/browser.sh`; scenarios in `tests/browser/dashboard_*.mjs`), on a server on
//! 127.0.0.1: the developer's first journey (sign up, a key shown once, the "Try it" console,
//! revoke, 401), posting (a too-long text refused by the counter and the server's preflight,
//! then published), and approving the CLI's device login. Screenshots in
//! `target/screenshots/<test>/`.
//!
//! Skips without `CRIER_TEST_PLAYWRIGHT`, fails without it when `CRIER_REQUIRE_PEERS=1` (CI).

mod common;

use common::TestApp;
use common::browser::{browser, serve};
use serde_json::json;

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn sign_up_make_a_key_see_it_once_use_it_and_revoke_it() {
    let Some(browser) = browser() else { return };
    let app = TestApp::new().await;
    let server = serve(&app).await;
    let out = browser
        .run(
            "dashboard_keys",
            "dashboard_keys.mjs",
            &server.url,
            &[
                ("CRIER_TEST_EMAIL", EMAIL),
                ("CRIER_TEST_PASSWORD", PASSWORD),
            ],
        )
        .await;
    let r = &out.result;
    // The revoked key's 401 is logged by the browser as a failed resource: the one expected
    // console error.
    assert!(
        out.offsite_requests.is_empty(),
        "{:#?}",
        out.offsite_requests
    );
    assert!(out.page_errors.is_empty(), "{:#?}", out.page_errors);
    assert!(
        out.console_errors
            .iter()
            .all(|e| e["text"].as_str().is_some_and(|t| t.contains("401"))),
        "{:#?}",
        out.console_errors
    );
    assert_eq!(
        r["landed"], "/signup",
        "a new install asks for its first user: {r:#}"
    );
    let key = r["key"].as_str().unwrap();
    assert!(key.starts_with("sk_live_") && key.len() == 44, "{r:#}");
    assert!(
        r["warning"]
            .as_str()
            .unwrap()
            .contains("not be shown again")
    );
    assert_eq!(r["listed"]["scopes"], "posts:read accounts:read", "{r:#}");
    assert_eq!(r["listed"]["status"], "active");
    assert_eq!(r["shown_again"], false, "shown once");
    assert!(
        r["before"]["status"].as_str().unwrap().starts_with("200"),
        "{r:#}"
    );
    assert!(
        r["before"]["output"].as_str().unwrap().contains("\"data\""),
        "{r:#}"
    );
    assert_eq!(r["revoked_status"], "revoked");
    assert!(
        r["after"]["status"].as_str().unwrap().starts_with("401"),
        "{r:#}"
    );
    assert!(
        r["after"]["output"].as_str().unwrap().contains("revoked"),
        "{r:#}"
    );
    // The key went only to this server, as the Authorization header, and was kept nowhere.
    let sent = r["sent"].as_array().unwrap();
    assert_eq!(sent.len(), 2, "{r:#}");
    for s in sent {
        assert!(s["url"].as_str().unwrap().starts_with(&server.url), "{s}");
        assert_eq!(s["authorization"], format!("Bearer {key}"));
    }
    assert_eq!(r["key_in_storage"], false);
    let session = r["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "crier_session")
        .unwrap();
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    // Over HTTP too: the key is refused, and the audit log names the user.
    let call = app.get("/v1/posts").key(key).send().await;
    call.assert_error(401, "unauthorized");
    let user = app.store.user_by_email(EMAIL).await.unwrap().unwrap();
    let ws = &app.store.memberships(&user.id).await.unwrap()[0].workspace;
    let audit = app.store.list_audit(&ws.id, None).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "key.revoked"
                && a.actor == crier_store::Actor::User(user.id.clone())),
        "{audit:#?}"
    );
}

#[tokio::test]
async fn compose_a_post_too_long_then_publish_it() {
    let Some(browser) = browser() else { return };
    let app = TestApp::new().await;
    app.state
        .app()
        .users()
        .create(
            EMAIL,
            "Ada",
            PASSWORD,
            Some((&app.workspace.id, crier_core::Role::Owner)),
        )
        .await
        .unwrap();
    let server = serve(&app).await;
    let out = browser
        .run(
            "dashboard_posts",
            "dashboard_posts.mjs",
            &server.url,
            &[
                ("CRIER_TEST_EMAIL", EMAIL),
                ("CRIER_TEST_PASSWORD", PASSWORD),
                ("CRIER_TEST_HANDLE", "springshop"),
            ],
        )
        .await;
    out.assert_clean();
    let r = &out.result;
    assert_eq!(r["account_status"], "connected", "{r:#}");
    assert_eq!(r["over_counter"]["over"], true, "{r:#}");
    assert!(
        r["over_counter"]["text"]
            .as_str()
            .unwrap()
            .ends_with("/ 300"),
        "{r:#}"
    );
    assert_eq!(
        r["preflight"]["rules"], "sandbox.text.max_graphemes",
        "{r:#}"
    );
    assert_eq!(r["fit_counter"], "sandbox: 30 / 300", "{r:#}");
    assert_eq!(r["status"], "publishing", "{r:#}");
    common::posts::drain(&app).await;
    let id = r["post_id"].as_str().unwrap();
    let key = app.admin_key().await;
    assert_eq!(common::posts::status_of(&app, &key, id).await, "published");
}

#[tokio::test]
async fn approve_the_clis_device_login() {
    let Some(browser) = browser() else { return };
    let app = TestApp::new().await;
    app.state
        .app()
        .users()
        .create(
            EMAIL,
            "Ada",
            PASSWORD,
            Some((&app.workspace.id, crier_core::Role::Admin)),
        )
        .await
        .unwrap();
    let server = serve(&app).await;
    let start = app
        .post("/v1/auth/device")
        .json(
            json!({"client_name": "crier CLI on laptop", "scopes": ["posts:read", "posts:write"]}),
        )
        .send()
        .await;
    assert_eq!(start.status, 200, "{}", start.text);
    let code = start.body["user_code"].as_str().unwrap();
    let device_code = start.body["device_code"].as_str().unwrap();
    let verification = format!("{}/device", server.url);
    let out = browser
        .run(
            "dashboard_device",
            "dashboard_device.mjs",
            &server.url,
            &[
                ("CRIER_TEST_EMAIL", EMAIL),
                ("CRIER_TEST_PASSWORD", PASSWORD),
                ("CRIER_TEST_USER_CODE", code),
                ("CRIER_TEST_VERIFICATION_URI", &verification),
            ],
        )
        .await;
    out.assert_clean();
    let r = &out.result;
    assert_eq!(r["client"], "crier CLI on laptop", "{r:#}");
    assert_eq!(r["code"], code, "{r:#}");
    assert_eq!(r["scopes"], json!(["posts:read", "posts:write"]), "{r:#}");
    assert!(r["done"].as_str().unwrap().starts_with("Approved"), "{r:#}");
    let token = app
        .post("/v1/auth/device/token")
        .json(json!({"device_code": device_code}))
        .send()
        .await;
    assert_eq!(token.status, 200, "{}", token.text);
    let key = token.body["key"].as_str().unwrap();
    assert_eq!(app.get("/v1/posts").key(key).send().await.status, 200);
}
