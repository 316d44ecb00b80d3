//! The API reference at `/docs` in a real browser (headless Chromium through playwright-core,
//! `scripts/peers/browser.sh`; the scenario is `tests/browser/docs.mjs`): served by the binary
//! alone, it loads `/v1/openapi.json`, renders the title and the operations, opens one, logs no
//! error and asks nothing of any host but the server. Screenshots: `target/screenshots/
//! the_api_reference_renders_from_the_server_alone/`.
//!
//! Skips without `CRIER_TEST_PLAYWRIGHT`, fails without it when `CRIER_REQUIRE_PEERS=1` (CI).

mod common;

use common::TestApp;
use common::browser::{browser, serve};
use serde_json::Value;

#[tokio::test]
async fn the_api_reference_renders_from_the_server_alone() {
    let Some(browser) = browser() else { return };
    let app = TestApp::new().await;
    let server = serve(&app).await;
    let out = browser
        .run(
            "the_api_reference_renders_from_the_server_alone",
            "docs.mjs",
            &server.url,
            &[],
        )
        .await;
    out.assert_clean();
    let r = &out.result;
    assert_eq!(r["status"], 200, "{r:#}");
    assert_eq!(r["spec_status"], 200, "{r:#}");
    assert!(
        r["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("{}/docs", server.url))),
        "{r:#}"
    );
    assert!(
        r["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("crier API")),
        "{r:#}"
    );
    let operations = r["operations"].as_array().unwrap();
    let has = |method: &str, path: &str| {
        operations
            .iter()
            .any(|o| o["method"] == method && o["path"] == path)
    };
    assert!(has("GET", "/v1/posts"), "{r:#}");
    assert!(has("POST", "/v1/posts"), "{r:#}");
    // Every operation of the served description is on the page.
    let doc = serde_json::to_value(crier_api::routes::openapi()).unwrap();
    let described: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .count()
        })
        .sum();
    assert_eq!(operations.len(), described, "{r:#}");
    let parameters: Vec<&str> = r["list_posts_parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        parameters.iter().any(|p| p.starts_with("limit")),
        "{parameters:?}"
    );
    assert_eq!(out.screenshots.len(), 2, "{:?}", out.screenshots);
    for shot in &out.screenshots {
        let png = std::fs::read(shot).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{}", shot.display());
    }
}
