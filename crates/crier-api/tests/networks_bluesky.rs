//! Bluesky end to end through crier's API, against a real PDS (`@atproto/pds` with an in-memory
//! PLC, started by `scripts/peers/pds.sh`; see README "Networks"): connect with an app password
//! (a wrong one is `400` on `app_password`), reconnect keeps the id, preflight names Bluesky's
//! rules, a post with a link, a mention and a hashtag and a thread reply published by the
//! publisher and read back from the PDS with its facets, and a refused refresh expiring the
//! account.
//!
//! Skips without `CRIER_TEST_PDS_URL`, fails without it when `CRIER_REQUIRE_PEERS=1` (CI).

mod common;

#[path = "../../crier-networks/tests/support/pds.rs"]
mod pds;

use std::sync::Arc;
use std::time::Duration;

use common::{TestApp, both};
use crier_api::ApiConfig;
use serde_json::json;

async fn app(service: &str) -> (TestApp, String) {
    app_with_media(service, None).await
}

/// With `media_dir`, media live in a local store there.
async fn app_with_media(service: &str, media_dir: Option<&std::path::Path>) -> (TestApp, String) {
    let service = service.to_owned();
    let app = TestApp::composed(
        ApiConfig::default(),
        "self-hosted",
        |store, clock, config| {
            let bluesky = crier_networks::bluesky::Bluesky::new(
                crier_networks::bluesky::BlueskyConfig {
                    default_service: service,
                    allow_private_networks: true,
                    timeout: Duration::from_secs(10),
                },
                Arc::new(clock.clone()),
            );
            let app = common::compose_with(store, clock, config, vec![Arc::new(bluesky)])
                .with_connect(crier_app::ConnectConfig {
                    allow_private_networks: true,
                    ..Default::default()
                });
            match media_dir {
                Some(dir) => app.with_media(common::media::local_settings(dir)),
                None => app,
            }
        },
    )
    .await;
    let key = app.admin_key().await;
    (app, key)
}

async fn connect_publish_and_read_back() {
    let Some(pds_url) = pds::pds_url() else {
        return;
    };
    let (app, key) = app(&pds_url).await;
    let ada = pds::create_account(&pds_url).await;
    pds::set_profile(&pds_url, &ada, "Ada on Bluesky").await;
    let bob = pds::create_account(&pds_url).await;

    let r = app.get("/v1/connect/bluesky").key(&key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["method"], "credentials");

    // Refused credentials: 400 on app_password, nothing stored.
    let r = app
        .post("/v1/connect/bluesky")
        .key(&key)
        .json(json!({"identifier": ada.handle, "app_password": "wrong-wrong-wrong-wrong"}))
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "app_password");
    assert!(app.raw_texts("SELECT id FROM accounts").await.is_empty());
    // A field of another way of connecting is refused, not ignored.
    let r = app
        .post("/v1/connect/bluesky")
        .key(&key)
        .json(json!({"identifier": ada.handle, "app_password": ada.app_password, "code": "x"}))
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "code");

    let connect = || async {
        let r = app
            .post("/v1/connect/bluesky")
            .key(&key)
            .json(
                json!({"identifier": ada.handle, "app_password": ada.app_password,
                         "service": pds_url}),
            )
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    };
    let a = connect().await;
    assert_eq!(a["external_id"], ada.did.as_str());
    assert_eq!(a["handle"], ada.handle.as_str());
    assert_eq!(a["display_name"], "Ada on Bluesky");
    assert!(!a.to_string().contains(&ada.app_password));
    let again = connect().await;
    assert_eq!(again["id"], a["id"], "reconnecting keeps the id");
    let sealed = app.raw_texts("SELECT credentials FROM accounts").await;
    assert_eq!(sealed.len(), 1);
    let sealed = sealed[0].clone().unwrap();
    assert!(
        !sealed.contains(&ada.app_password) && !sealed.contains("eyJ"),
        "no password or JWT in the clear at rest"
    );
    let id = a["id"].as_str().unwrap().to_owned();

    // Preflight: Bluesky's own rules, by id.
    let r = app
        .post("/v1/posts/validate")
        .key(&key)
        .json(json!({"body": "é".repeat(301), "account_ids": [id]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["problems"][0]["rule"], "bluesky.text.max_graphemes");

    // Published by the publisher, read back from the PDS.
    let text = format!(
        "Launch with @{} today https://example.com/launch #crier",
        bob.handle
    );
    let post = common::posts::create(
        &app,
        &key,
        json!({"body": text, "thread": ["and a reply"], "account_ids": [id],
               "overrides": {&id: {"language": "en"}}}),
    )
    .await;
    let pid = post["id"].as_str().unwrap();
    let r = common::posts::act(&app, &key, pid, "publish", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    common::posts::run(&app).await;
    let p = common::posts::get_post(&app, &key, pid).await;
    assert_eq!(p["status"], "published", "{p}");
    let uri = p["targets"][0]["external_id"].as_str().unwrap().to_owned();
    assert!(uri.starts_with(&format!("at://{}/app.bsky.feed.post/", ada.did)));
    let record = pds::get_record(&pds_url, &uri).await;
    let value = &record["value"];
    assert_eq!(value["text"], text.as_str());
    assert_eq!(value["langs"], json!(["en"]));
    let kinds: Vec<&str> = value["facets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["features"][0]["$type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "app.bsky.richtext.facet#mention",
            "app.bsky.richtext.facet#link",
            "app.bsky.richtext.facet#tag"
        ]
    );
    let mention = &value["facets"][0];
    assert_eq!(mention["features"][0]["did"], bob.did.as_str());
    let start = mention["index"]["byteStart"].as_u64().unwrap() as usize;
    let end = mention["index"]["byteEnd"].as_u64().unwrap() as usize;
    assert_eq!(
        &text.as_bytes()[start..end],
        format!("@{}", bob.handle).as_bytes()
    );
    let posts = pds::list_posts(&pds_url, &ada.did).await;
    assert_eq!(posts.len(), 2, "the post and its reply, once each");
    let reply = posts
        .iter()
        .find(|r| r["value"]["text"] == "and a reply")
        .expect("the reply");
    assert_eq!(reply["value"]["reply"]["root"]["uri"], uri.as_str());
    assert_eq!(reply["value"]["reply"]["parent"]["uri"], uri.as_str());
}

/// An image uploaded through crier's media API, with alt text, and a link card, both published
/// through the API and read back from the PDS.
async fn an_image_with_alt_text_and_a_link_card_through_the_api() {
    let Some(pds_url) = pds::pds_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (app, key) = app_with_media(&pds_url, Some(&dir.path().join("media"))).await;
    let ada = pds::create_account(&pds_url).await;
    let r = app
        .post("/v1/connect/bluesky")
        .key(&key)
        .json(
            json!({"identifier": ada.handle, "app_password": ada.app_password,
                     "service": pds_url}),
        )
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();

    let png = common::media::png(64, 32, 0);
    let media = common::media::ready(&app, &key, "image/png", &png).await;
    let mid = media["id"].as_str().unwrap().to_owned();
    let r = app
        .patch(&format!("/v1/media/{mid}"))
        .key(&key)
        .json(json!({"alt_text": "A chart going up"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let page = r#"<html><head><meta property="og:title" content="Our launch">
        <meta property="og:description" content="Everything new"></head></html>"#;
    let site = pds::serve_static(vec![(
        "/launch",
        pds::Response::new(200, "text/html", page),
    )])
    .await;
    let with_image = common::posts::create(
        &app,
        &key,
        json!({"body": "Look at this", "account_ids": [id], "media_ids": [mid]}),
    )
    .await;
    let with_card = common::posts::create(
        &app,
        &key,
        json!({"body": format!("Read {site}/launch"), "account_ids": [id]}),
    )
    .await;
    for p in [&with_image, &with_card] {
        let r = common::posts::act(&app, &key, p["id"].as_str().unwrap(), "publish", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    common::posts::run(&app).await;
    let image_post = common::posts::get_post(&app, &key, with_image["id"].as_str().unwrap()).await;
    assert_eq!(image_post["status"], "published", "{image_post}");
    let record = pds::get_record(
        &pds_url,
        image_post["targets"][0]["external_id"].as_str().unwrap(),
    )
    .await;
    let embed = &record["value"]["embed"];
    assert_eq!(embed["$type"], "app.bsky.embed.images");
    assert_eq!(embed["images"][0]["alt"], "A chart going up");
    assert_eq!(
        embed["images"][0]["aspectRatio"],
        json!({"width": 64, "height": 32})
    );
    assert_eq!(embed["images"][0]["image"]["size"], png.len());
    let card_post = common::posts::get_post(&app, &key, with_card["id"].as_str().unwrap()).await;
    assert_eq!(card_post["status"], "published", "{card_post}");
    let record = pds::get_record(
        &pds_url,
        card_post["targets"][0]["external_id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(record["value"]["embed"]["$type"], "app.bsky.embed.external");
    assert_eq!(record["value"]["embed"]["external"]["title"], "Our launch");
}

both!(
    tests: connect_publish_and_read_back,
    an_image_with_alt_text_and_a_link_card_through_the_api,
);
