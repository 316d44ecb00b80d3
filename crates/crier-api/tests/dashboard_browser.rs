//! The dashboard in a real browser (headless Chromium through playwright-core,
//! `scripts/peers/browser.sh`; scenarios in `tests/browser/dashboard_*.mjs`), on a server on
//! 127.0.0.1: the developer's first journey (sign up, a key shown once, the "Try it" console,
//! revoke, 401), posting (a too-long text refused by the counter and the server's preflight,
//! then published; a failed network retried from the post's page), and approving the CLI's device login. Screenshots in
//! `target/screenshots/<test>/`.
//!
//! Every scenario runs on SQLite and on PostgreSQL. Skips without `CRIER_TEST_PLAYWRIGHT`, fails without it when `CRIER_REQUIRE_PEERS=1` (CI).

mod common;

use common::browser::{browser, listen, serve, serve_at};
use common::{NowMs, TestApp, both};
use serde_json::json;

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";

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

async fn compose_a_post_too_long_then_publish_it_with_an_image() {
    let Some(browser) = browser() else { return };
    // The media store signs upload URLs with the server's own address, as in production.
    let listener = listen().await;
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let url = listener.url.clone();
    let app = common::media::app_with(None, || {
        let local = crier_media::local::LocalStore::open(&media, &url, vec![7; 32]).unwrap();
        crier_app::media::MediaSettings::new(crier_media::Storage::Local(std::sync::Arc::new(
            local,
        )))
    })
    .await;
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
    // An image big enough for the upload to report progress on its way.
    let image = dir.path().join("spring.png");
    let bytes = common::media::png(640, 480, 2 * 1024 * 1024);
    std::fs::write(&image, &bytes).unwrap();
    let server = serve_at(listener, &app);
    let out = browser
        .run(
            "dashboard_posts",
            "dashboard_posts.mjs",
            &server.url,
            &[
                ("CRIER_TEST_EMAIL", EMAIL),
                ("CRIER_TEST_PASSWORD", PASSWORD),
                ("CRIER_TEST_HANDLE", "springshop"),
                ("CRIER_TEST_IMAGE", image.to_str().unwrap()),
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
    assert_eq!(r["upload"]["state"], "ready", "{r:#}");
    assert_eq!(r["upload"]["progress"], 100, "{r:#}");
    assert!(r["upload"]["attached"].as_bool().unwrap(), "{r:#}");
    assert_eq!(r["status"], "publishing", "{r:#}");
    common::posts::drain(&app).await;
    let id = r["post_id"].as_str().unwrap();
    let key = app.admin_key().await;
    let post = common::posts::get_post(&app, &key, id).await;
    assert_eq!(post["status"], "published", "{post:#}");
    // The image the browser uploaded, byte for byte, is the post's.
    let media_id = r["upload"]["media_id"].as_str().unwrap();
    assert_eq!(post["media_ids"], json!([media_id]), "{post:#}");
    let m = app
        .get(&format!("/v1/media/{media_id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(m.status, 200, "{}", m.text);
    assert_eq!(m.body["status"], "ready");
    assert_eq!(m.body["size"], bytes.len());
    assert_eq!(m.body["sha256"], common::media::sha256_hex(&bytes));
}

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

async fn retry_a_failed_network_from_the_posts_page() {
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
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "springshop").await;
    // The network refuses every attempt the publisher makes, then recovers.
    common::posts::faults(&app, &key, &acct, json!({"fail_next": 50, "kind": "error"})).await;
    let id = common::posts::draft(&app, &key, &[&acct], "Spring is here.").await;
    common::posts::act_ok(&app, &key, &id, "publish", None, "publishing").await;
    common::posts::drain(&app).await;
    assert_eq!(common::posts::status_of(&app, &key, &id).await, "failed");
    common::posts::faults(&app, &key, &acct, json!({"fail_next": 0, "kind": "error"})).await;
    let server = serve(&app).await;
    let out = browser
        .run(
            "dashboard_retry",
            "dashboard_posts.mjs",
            &server.url,
            &[
                ("CRIER_TEST_EMAIL", EMAIL),
                ("CRIER_TEST_PASSWORD", PASSWORD),
                ("CRIER_TEST_POST", &id),
            ],
        )
        .await;
    out.assert_clean();
    let r = &out.result;
    assert_eq!(r["before"], "failed", "{r:#}");
    assert!(!r["error"].as_str().unwrap().is_empty(), "{r:#}");
    assert_ne!(r["after"], "failed", "{r:#}");
    common::posts::drain(&app).await;
    assert_eq!(common::posts::status_of(&app, &key, &id).await, "published");
    // Every attempt is on record: the failed ones and the one that published.
    let post = common::posts::get_post(&app, &key, &id).await;
    assert!(
        post["targets"][0]["attempts"].as_i64().unwrap() >= 2,
        "{post:#}"
    );
}

/// The pages a phone user opens, in the order the nav shows them.
const PHONE_PAGES: &[&str] = &[
    "/app/posts",
    "/app/posts/calendar",
    "/app/posts/new",
    "/app/queue",
    "/app/analytics",
    "/app/feeds",
    "/app/keys",
    "/app/accounts",
    "/app/webhooks",
    "/app/members",
    "/app/try",
    "/app/account",
];

async fn every_main_page_fits_a_phone_and_labels_its_fields() {
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
    // Some of everything, so the pages show tables and not only their empty states.
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "springshop").await;
    let id = common::posts::draft(
        &app,
        &key,
        &[&acct],
        "Spring is here, and so is our new collection of rain jackets.",
    )
    .await;
    common::posts::act_ok(&app, &key, &id, "publish", None, "publishing").await;
    common::posts::drain(&app).await;
    let later = app.clock.now_ms_value() + 86_400_000;
    let id = common::posts::draft(&app, &key, &[&acct], "Tomorrow: the summer preview.").await;
    let at = jiff::Timestamp::from_millisecond(later)
        .unwrap()
        .to_string();
    common::posts::act_ok(
        &app,
        &key,
        &id,
        "schedule",
        Some(json!({"scheduled_at": at})),
        "scheduled",
    )
    .await;
    // A key with a day of use, and a request to look up.
    let (bot, row) = app
        .key(common::KeySpec {
            scopes: vec![crier_core::Scope::PostsRead],
            ..Default::default()
        })
        .await;
    let call = app.get("/v1/posts").key(&bot).send().await;
    let request_id = call.header("x-request-id").unwrap().to_owned();
    app.state.flush_usage().await;
    let mut paths: Vec<String> = PHONE_PAGES.iter().map(|p| p.to_string()).collect();
    paths.push(format!("/app/keys/{}", row.id));
    paths.push(format!("/app/requests?id={request_id}"));
    let r = app
        .post("/v1/feeds")
        .key(&key)
        .json(json!({"url": "https://blog.example.com/feed.xml", "account_ids": [acct]}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .call(axum::http::Method::PUT, "/v1/queue/slots")
        .key(&key)
        .json(json!({"slots": [{"day": "monday", "time": "09:30"}, {"day": "friday", "time": "17:00"}]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let server = serve(&app).await;
    let out = browser
        .run(
            "dashboard_phone",
            "dashboard_phone.mjs",
            &server.url,
            &[
                ("CRIER_TEST_EMAIL", EMAIL),
                ("CRIER_TEST_PASSWORD", PASSWORD),
                ("CRIER_TEST_PAGES", &paths.join(" ")),
            ],
        )
        .await;
    out.assert_clean();
    let pages = out.result["pages"].as_array().unwrap();
    assert_eq!(pages.len(), paths.len());
    let wrong: Vec<&serde_json::Value> = pages
        .iter()
        .filter(|p| {
            p["status"] != 200
                || p["page_width"].as_i64() > p["viewport"].as_i64()
                || p["overflowing"] != json!([])
                || p["unlabelled"] != json!([])
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "pages that do not fit a phone: {wrong:#?}"
    );
}

both!(
    tests: every_main_page_fits_a_phone_and_labels_its_fields, sign_up_make_a_key_see_it_once_use_it_and_revoke_it,
    compose_a_post_too_long_then_publish_it_with_an_image,
    retry_a_failed_network_from_the_posts_page,
    approve_the_clis_device_login,
);
