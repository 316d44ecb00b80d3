//! Carousels over HTTP on both backends: made from a text (Markdown headings start slides) and
//! from a URL, refined (edit, reorder, template, size, call to action), rendered to PNG and PDF,
//! exported as media and posted as a multi-image post; a prompt or a regeneration without a
//! model (503, nothing spent); text that does not fit (reported, export refused); bad input
//! (status, code, `param`, nothing stored); other workspaces and test mode; idempotent creation.
//! (The scope checks come from the authorization matrix; the rendering itself is tested in
//! `crates/crier-render/tests/slides.rs`.)
mod common;

use common::{Response, TestApp, both};
use crier_core::Scope;
use serde_json::{Value, json};

const ARTICLE: &str = "# Five ways to never post twice\n\n\
    A field guide to exactly-once publishing for people who schedule a lot.\n\n\
    ## Ask before you retry\n\n\
    After a crash, look the post up by its idempotency key first. Only when the network has \
    nothing, send it again.\n\n\
    ## Record every attempt\n\n\
    Write the attempt before the call and its result right after. A lost result is unknown, \
    never failed.\n\n\
    ## Condition every change\n\n\
    A status changes only from the status it was read in. Cancel and publish cannot both win.";

async fn world() -> (TestApp, String) {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    (app, key)
}

#[track_caller]
fn assert_param(r: &Response, param: &str) {
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], param, "param; body: {}", r.text);
}

async fn create(app: &TestApp, key: &str, body: Value) -> Response {
    app.post("/v1/carousels").key(key).json(body).send().await
}

async fn create_ok(app: &TestApp, key: &str, body: Value) -> Value {
    let r = create(app, key, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn count(app: &TestApp) -> usize {
    app.raw_texts("SELECT id FROM carousels").await.len()
}

/// The width and height a PNG's header declares.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

async fn a_carousel_from_text_to_a_post() {
    let (app, key) = world().await;
    let c = create_ok(
        &app,
        &key,
        json!({"text": ARTICLE, "call_to_action": "Follow for more"}),
    )
    .await;
    let id = c["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("car_"), "{id}");
    assert_eq!(c["object"], "carousel");
    assert_eq!(c["title"], "Five ways to never post twice");
    assert_eq!(c["template"], "light");
    assert_eq!(c["size"], "square");
    assert_eq!(c["source"]["type"], "text");
    assert_eq!(c["fits"], true);
    assert_eq!(c["version"], 1);
    let slides = c["slides"].as_array().unwrap();
    let kinds: Vec<&str> = slides.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["title", "content", "content", "content", "closing"]);
    let headings: Vec<&str> = slides
        .iter()
        .map(|s| s["heading"].as_str().unwrap())
        .collect();
    assert_eq!(
        headings,
        [
            "Five ways to never post twice",
            "Ask before you retry",
            "Record every attempt",
            "Condition every change",
            "Found this useful?"
        ]
    );
    assert_eq!(
        slides[0]["body"],
        "A field guide to exactly-once publishing for people who schedule a lot.",
        "the paragraph after the title is its subtitle"
    );
    assert_eq!(
        slides[1]["body"],
        "After a crash, look the post up by its idempotency key first. Only when the network \
         has nothing, send it again."
    );
    assert_eq!(slides[4]["body"], "Follow for more");
    assert_eq!(slides[2]["number"], 3);
    assert!(
        slides
            .iter()
            .all(|s| s["fits"] == true && s["problem"].is_null())
    );
    let r = app
        .get(&format!("/v1/carousels/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.body, c);
    let r = app.get("/v1/carousels").key(&key).send().await;
    assert_eq!(r.body["data"], json!([c]));

    // Refine: reorder and edit the slides, another template, portrait.
    let mut new_slides: Vec<Value> = slides
        .iter()
        .map(|s| json!({"heading": s["heading"], "body": s["body"]}))
        .collect();
    new_slides.swap(1, 2);
    new_slides[1]["body"] = json!("Edited by hand 😀 with emoji.");
    new_slides.remove(3);
    let r = app
        .patch(&format!("/v1/carousels/{id}"))
        .key(&key)
        .json(json!({"slides": new_slides, "template": "dark", "size": "portrait"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = r.body;
    assert_eq!(c["version"], 2);
    assert_eq!(c["template"], "dark");
    assert_eq!(c["slides"].as_array().unwrap().len(), 4);
    assert_eq!(c["slides"][1]["heading"], "Record every attempt");
    assert_eq!(c["slides"][2]["heading"], "Ask before you retry");
    assert_eq!(c["slides"][1]["body"], "Edited by hand 😀 with emoji.");
    assert_eq!(c["slides"][3]["kind"], "closing");

    // Rendered: a slide as PNG, the whole as PDF.
    let r = app
        .get(&format!("/v1/carousels/{id}/slides/2/png"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/png"));
    let png = r.raw_body();
    assert_eq!(png_size(&png), (1080, 1350));
    let r = app
        .get(&format!("/v1/carousels/{id}/pdf"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert!(r.raw_body().starts_with(b"%PDF-"));
    for bad in ["0", "6", "x", "99999999999999999999"] {
        let r = app
            .get(&format!("/v1/carousels/{id}/slides/{bad}/png"))
            .key(&key)
            .send()
            .await;
        r.assert_error(404, "not_found");
    }

    // Exported: one PNG media object per slide, then posted as a multi-image post.
    let r = app
        .post(&format!("/v1/carousels/{id}/export"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let media: Vec<String> = r.body["media_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(media.len(), 4);
    for (i, m) in media.iter().enumerate() {
        let r = app.get(&format!("/v1/media/{m}")).key(&key).send().await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["status"], "ready");
        assert_eq!(r.body["content_type"], "image/png");
        assert_eq!(r.body["width"], 1080);
        assert_eq!(r.body["height"], 1350);
        let alt = r.body["alt_text"].as_str().unwrap();
        assert!(alt.starts_with(&format!("Slide {} of 4", i + 1)), "{alt}");
    }
    let acct = app.sandbox_account(&key, "brand").await;
    let r = app
        .post("/v1/posts")
        .key(&key)
        .json(
            json!({"body": "Five ways to never post twice", "account_ids": [acct],
                     "media_ids": &media[..4]}),
        )
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["media_ids"], json!(media[..4]));

    // A change of the slides forgets the export.
    let r = app
        .patch(&format!("/v1/carousels/{id}"))
        .key(&key)
        .json(json!({"call_to_action": "Share it"}))
        .send()
        .await;
    assert_eq!(r.body["media_ids"], json!([]), "{}", r.text);
    assert_eq!(r.body["slides"][3]["body"], "Share it");

    let r = app
        .delete(&format!("/v1/carousels/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(
        r.body,
        json!({"id": id, "object": "carousel", "deleted": true})
    );
    assert_eq!(count(&app).await, 0);
    // The media it exported stay.
    let r = app
        .get(&format!("/v1/media/{}", media[0]))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200);
}

async fn text_that_does_not_fit_is_reported_and_not_exported() {
    let (app, key) = world().await;
    let c = create_ok(&app, &key, json!({"text": ARTICLE, "slides": 3})).await;
    assert_eq!(
        c["slides"].as_array().unwrap().len(),
        3,
        "title, one content, closing"
    );
    let id = c["id"].as_str().unwrap();
    // 600 characters, the most a slide's body takes, is more than a title slide has room for.
    let long = "word ".repeat(119) + "word";
    let r = app
        .patch(&format!("/v1/carousels/{id}"))
        .key(&key)
        .json(json!({"slides": [
            {"heading": "Title", "body": long},
            {"heading": "Fine", "body": "A short body."},
            {"heading": "Bye", "body": "Follow"}
        ]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["fits"], false);
    assert_eq!(r.body["slides"][0]["fits"], false);
    assert_eq!(r.body["slides"][1]["fits"], true);
    let problem = r.body["slides"][0]["problem"].as_str().unwrap();
    assert!(problem.contains("shorten it"), "{problem}");
    // That is the carousel's state, not a fault of the request (which has no body): 409,
    // naming the slide and what does not fit.
    let r = app
        .post(&format!("/v1/carousels/{id}/export"))
        .key(&key)
        .send()
        .await;
    r.assert_error(409, "conflict");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Slide 1 does not fit"), "{message}");
    assert!(message.contains(problem), "{message}");
    assert_eq!(r.body["error"]["param"], Value::Null, "{}", r.text);
    assert!(
        app.raw_texts("SELECT id FROM media").await.is_empty(),
        "nothing exported"
    );
    // It still renders what fits, so a person can see it.
    let r = app
        .get(&format!("/v1/carousels/{id}/slides/1/png"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200);
}

async fn a_prompt_or_a_regeneration_needs_a_model() {
    let (app, key) = world().await;
    let r = create(&app, &key, json!({"prompt": "Tips for small shops"})).await;
    r.assert_error(503, "upstream_unavailable");
    assert_eq!(count(&app).await, 0);
    let c = create_ok(&app, &key, json!({"text": ARTICLE})).await;
    let id = c["id"].as_str().unwrap();
    let r = app
        .post(&format!("/v1/carousels/{id}/slides/2/regenerate"))
        .key(&key)
        .send()
        .await;
    r.assert_error(503, "upstream_unavailable");
    let r = app
        .get(&format!("/v1/carousels/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.body, c, "unchanged");
    let usage = app.get("/v1/ai/usage").key(&key).send().await;
    assert_eq!(
        usage.body["credits_used"], 0,
        "nothing spent: {}",
        usage.text
    );
}

async fn bad_input_names_the_field_and_stores_nothing() {
    let (app, key) = world().await;
    for (body, param) in [
        (json!({}), "text"),
        (json!({"text": "a", "url": "https://example.com/"}), "text"),
        (json!({"text": ""}), "text"),
        (json!({"text": "   "}), "text"),
        (json!({"text": "x".repeat(20_001)}), "text"),
        (json!({"prompt": "x".repeat(4_001)}), "prompt"),
        (json!({"url": "ftp://example.com/"}), "url"),
        (json!({"url": "http://127.0.0.1/secret"}), "url"),
        (json!({"text": "a", "template": "neon"}), "template"),
        (json!({"text": "a", "size": "huge"}), "size"),
        (json!({"text": "a", "slides": 2}), "slides"),
        (json!({"text": "a", "slides": 11}), "slides"),
        (json!({"text": "a", "title": ""}), "title"),
        (
            json!({"text": "a", "call_to_action": "c".repeat(151)}),
            "call_to_action",
        ),
        (json!({"text": "a", "brand_id": "brd_nope"}), "brand_id"),
        (json!({"text": 5}), "text"),
        (json!({"text": "a", "extra": 1}), "extra"),
    ] {
        let r = create(&app, &key, body.clone()).await;
        assert_param(&r, param);
    }
    let r = app
        .post("/v1/carousels")
        .key(&key)
        .header("content-type", "application/json")
        .raw("{\"text\":")
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(count(&app).await, 0, "nothing stored");

    let c = create_ok(&app, &key, json!({"text": ARTICLE})).await;
    let id = c["id"].as_str().unwrap();
    let slide = json!({"heading": "h", "body": "b"});
    for (body, param) in [
        (json!({"slides": [slide, slide]}), "slides"),
        (json!({"slides": vec![slide.clone(); 11]}), "slides"),
        (
            json!({"slides": [slide, {"heading": "", "body": ""}, slide]}),
            "slides[1]",
        ),
        (
            json!({"slides": [slide, {"heading": "h".repeat(151)}, slide]}),
            "slides[1].heading",
        ),
        (
            json!({"slides": [slide, slide, {"body": "b".repeat(601)}]}),
            "slides[2].body",
        ),
        (json!({"template": "neon"}), "template"),
        (
            json!({"slides": [slide, slide, {"heading": 1}]}),
            "slides[2].heading",
        ),
    ] {
        let r = app
            .patch(&format!("/v1/carousels/{id}"))
            .key(&key)
            .json(body)
            .send()
            .await;
        assert_param(&r, param);
    }
    let r = app
        .get(&format!("/v1/carousels/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.body, c, "unchanged");
    // Export needs media:write too.
    let writer = app
        .key_with(&[Scope::CarouselsWrite, Scope::CarouselsRead])
        .await;
    let r = app
        .post(&format!("/v1/carousels/{id}/export"))
        .key(&writer)
        .send()
        .await;
    r.assert_error(403, "forbidden_scope");
    for path in [
        "/v1/carousels/car_0Q2X3hS8dK7vT1bLmN4pRz".to_owned(),
        "/v1/carousels/nope".to_owned(),
        "/v1/carousels/car_0Q2X3hS8dK7vT1bLmN4pRz/pdf".to_owned(),
    ] {
        let r = app.get(&path).key(&key).send().await;
        r.assert_error(404, "not_found");
    }
}

async fn another_workspaces_and_the_other_modes_carousels_do_not_exist() {
    let (app, key) = world().await;
    let c = create_ok(&app, &key, json!({"text": ARTICLE})).await;
    let id = c["id"].as_str().unwrap();
    let [other_key, test_key] = app.outsider_keys().await;
    for k in [&other_key, &test_key] {
        for (method, path) in [
            ("GET", format!("/v1/carousels/{id}")),
            ("PATCH", format!("/v1/carousels/{id}")),
            ("DELETE", format!("/v1/carousels/{id}")),
            ("GET", format!("/v1/carousels/{id}/pdf")),
            ("GET", format!("/v1/carousels/{id}/slides/1/png")),
            ("POST", format!("/v1/carousels/{id}/export")),
            ("POST", format!("/v1/carousels/{id}/slides/1/regenerate")),
        ] {
            let r = app
                .call(method.parse().unwrap(), &path)
                .key(k)
                .json(json!({}))
                .send()
                .await;
            r.assert_error(404, "not_found");
        }
        let r = app.get("/v1/carousels").key(k).send().await;
        assert_eq!(r.body["data"], json!([]), "{}", r.text);
    }
    assert_eq!(count(&app).await, 1);
    let r = app
        .get(&format!("/v1/carousels/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.body, c);
}

async fn creation_is_idempotent() {
    let (app, key) = world().await;
    let send = || {
        app.post("/v1/carousels")
            .key(&key)
            .header("idempotency-key", "car-1")
            .json(json!({"text": ARTICLE}))
            .send()
    };
    let first = send().await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = send().await;
    assert_eq!(again.body, first.body);
    assert_eq!(count(&app).await, 1);
}

both!(
    tests: a_carousel_from_text_to_a_post,
    text_that_does_not_fit_is_reported_and_not_exported,
    a_prompt_or_a_regeneration_needs_a_model,
    bad_input_names_the_field_and_stores_nothing,
    another_workspaces_and_the_other_modes_carousels_do_not_exist,
    creation_is_idempotent,
);
