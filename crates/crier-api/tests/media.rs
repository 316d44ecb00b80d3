//! Media over HTTP, end to end: upload URL, PUT to the signed URL (no API key), confirm with
//! the type sniffed from the bytes, read through a signed URL, alt text, delete, the quota, the
//! purge of uploads that never came, `media.ready`, and media in posts published to the
//! sandbox. Every test runs on SQLite and PostgreSQL (`both!`). The S3 path runs against
//! `s3s-fs` (`scripts/peers/s3.sh start`), which checks SigV4 signatures.

mod common;

use std::sync::Arc;

use axum::http::Method;
use common::both;
use common::media::{
    ORIGIN, app_with, confirm, fetch_bytes, jpeg, local_app, local_path, mp4, pending, png,
    put_local, quota_plan, ready, sha256_hex, upload_url, webm,
};
use common::posts::{act, assert_param, create, run, timeline};
use common::{KeySpec, TestApp};
use crier_core::{KeyMode, Scope};
use serde_json::{Value, json};

async fn setup() -> (TestApp, tempfile::TempDir, String) {
    let (app, dir) = local_app(None).await;
    let key = app.admin_key().await;
    (app, dir, key)
}

async fn get_media(app: &TestApp, key: &str, id: &str) -> common::Response {
    app.get(&format!("/v1/media/{id}")).key(key).send().await
}

async fn events_of(app: &TestApp) -> Vec<Option<String>> {
    app.raw_texts("SELECT type || '|' || data FROM events ORDER BY id")
        .await
}

// ---- the happy path ----

async fn images_and_videos_are_confirmed_from_their_bytes() {
    let (app, _dir, key) = setup().await;
    let cases: Vec<(&str, Vec<u8>, Value)> = vec![
        (
            "image/png",
            png(640, 480, 100),
            json!({"width": 640, "height": 480}),
        ),
        (
            "image/jpeg",
            jpeg(1024, 768),
            json!({"width": 1024, "height": 768}),
        ),
        ("video/mp4", mp4(2500), json!({"duration_ms": 2500})),
        (
            "video/quicktime",
            common::media::bmff(b"qt  ", 61_000, false),
            json!({"duration_ms": 61_000}),
        ),
        ("video/webm", webm(1234.0), json!({"duration_ms": 1234})),
    ];
    for (ty, bytes, expect) in &cases {
        let m = pending(&app, &key, ty, bytes.len()).await;
        assert_eq!(m["upload"]["method"], "PUT");
        assert!(
            m["upload"]["expires_at"]
                .as_str()
                .unwrap()
                .starts_with("2026-11-22T10:15:00")
        );
        let r = put_local(&app, &m, bytes).await;
        assert_eq!(r.status, 200, "{ty}: {}", r.text);
        let r = confirm(&app, &key, m["id"].as_str().unwrap()).await;
        assert_eq!(r.status, 200, "{ty}: {}", r.text);
        let b = &r.body;
        assert_eq!(b["status"], "ready", "{ty}");
        assert_eq!(b["content_type"], *ty);
        assert_eq!(b["size"], bytes.len());
        assert_eq!(b["sha256"], sha256_hex(bytes));
        for (k, v) in expect.as_object().unwrap() {
            assert_eq!(&b[k], v, "{ty}: {k}");
        }
        if ty.starts_with("image/") {
            assert!(b["duration_ms"].is_null());
        } else {
            assert!(b["width"].is_null());
        }
        // Confirming again answers it unchanged.
        let again = confirm(&app, &key, m["id"].as_str().unwrap()).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.body, r.body);
        // GET has a signed read URL that serves exactly the bytes.
        let g = get_media(&app, &key, m["id"].as_str().unwrap()).await;
        assert_eq!(g.status, 200);
        let url = g.body["url"].as_str().unwrap();
        assert!(url.starts_with(&format!("{ORIGIN}/v1/media/files/")));
        let (status, headers, body) = fetch_bytes(&app, &local_path(url)).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], *ty);
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(&body, bytes);
    }
    let list = app.get("/v1/media?limit=2").key(&key).send().await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(list.body["has_more"], true);
    assert_eq!(
        list.body["data"][0]["content_type"], "video/webm",
        "newest first"
    );
    assert!(
        list.body["data"][0].get("url").is_none(),
        "no read URLs in lists"
    );
    // media.ready, once per media, carrying the object.
    let events: Vec<String> = events_of(&app).await.into_iter().flatten().collect();
    let ready: Vec<&String> = events
        .iter()
        .filter(|e| e.starts_with("media.ready|"))
        .collect();
    assert_eq!(ready.len(), cases.len(), "{events:?}");
    let data: Value = serde_json::from_str(ready[0].split_once('|').unwrap().1).unwrap();
    assert_eq!(data["object"], "media");
    assert_eq!(data["status"], "ready");
    assert_eq!(data["width"], 640);
}

// ---- bad input ----

async fn upload_requests_are_bounded() {
    let (app, _dir, key) = setup().await;
    let ok = json!({"filename": "a.png", "content_type": "image/png", "size": 10});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    for (body, param) in [
        (with("filename", json!("")), "filename"),
        (with("filename", json!("   ")), "filename"),
        (with("filename", json!("x".repeat(256))), "filename"),
        (with("filename", json!("a/b.png")), "filename"),
        (with("filename", json!("a\u{0}.png")), "filename"),
        (with("content_type", json!("text/plain")), "content_type"),
        (with("content_type", json!("image/svg+xml")), "content_type"),
        (with("content_type", json!("IMAGE/PNG")), "content_type"),
        (with("size", json!(0)), "size"),
        (with("size", json!(512 * 1024 * 1024 + 1)), "size"),
        (with("size", json!(-1)), "size"),
        (with("alt_text", json!("é".repeat(1501))), "alt_text"),
    ] {
        let r = upload_url(&app, &key, body.clone()).await;
        assert_param(&r, param);
    }
    let r = upload_url(&app, &key, with("filename", json!("é".repeat(255)))).await;
    assert_eq!(r.status, 201, "255 characters, not bytes: {}", r.text);
    let r = upload_url(&app, &key, with("alt_text", json!("é".repeat(1500)))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["alt_text"], "é".repeat(1500));
    // Scopes: media:read cannot ask for upload URLs; media:write can.
    let reader = app.key_with(&[Scope::MediaRead]).await;
    upload_url(&app, &reader, ok.clone())
        .await
        .assert_error(403, "forbidden_scope");
}

async fn pending_uploads_per_workspace_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let app = app_with(None, || {
        let mut s = common::media::local_settings(&path);
        s.max_pending = 2;
        s
    })
    .await;
    let key = app.admin_key().await;
    let first = pending(&app, &key, "image/png", 10).await;
    pending(&app, &key, "image/png", 10).await;
    let r = upload_url(
        &app,
        &key,
        json!({"filename": "c.png", "content_type": "image/png", "size": 10}),
    )
    .await;
    r.assert_error(409, "conflict");
    // A confirmed upload frees its place.
    let bytes = png(1, 1, 0);
    let _ = first;
    let a = pending_after_confirm(&app, &key).await;
    assert_eq!(a["status"], "pending");
    let _ = bytes;
}

/// Frees a place by confirming the oldest pending upload's replacement: deletes one pending
/// upload (delete works on pending media too), then asks again.
async fn pending_after_confirm(app: &TestApp, key: &str) -> Value {
    let list = app.get("/v1/media").key(key).send().await;
    let id = list.body["data"][0]["id"].as_str().unwrap().to_owned();
    let d = app.delete(&format!("/v1/media/{id}")).key(key).send().await;
    assert_eq!(d.status, 200, "{}", d.text);
    pending(app, key, "image/png", 10).await
}

async fn a_declared_type_the_bytes_do_not_have_is_refused() {
    let (app, _dir, key) = setup().await;
    // JPEG bytes declared as PNG.
    let bytes = jpeg(10, 10);
    let m = pending(&app, &key, "image/png", bytes.len()).await;
    assert_eq!(put_local(&app, &m, &bytes).await.status, 200);
    let id = m["id"].as_str().unwrap();
    let r = confirm(&app, &key, id).await;
    assert_param(&r, "content_type");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("image/jpeg")
    );
    // Still pending: the right bytes can be sent again while the URL lives.
    let good = png(3, 4, 0);
    let m2 = pending(&app, &key, "image/png", good.len()).await;
    // Text declared as a video is not a type crier takes.
    let text = b"hello, this is not a video at all".to_vec();
    let m3 = pending(&app, &key, "video/mp4", text.len()).await;
    assert_eq!(put_local(&app, &m3, &text).await.status, 200);
    assert_param(
        &confirm(&app, &key, m3["id"].as_str().unwrap()).await,
        "content_type",
    );
    // An MP4 with no movie header has no duration: refused, not guessed.
    let mut no_moov = mp4(1000);
    no_moov.truncate(no_moov.len() - 116);
    let m4 = pending(&app, &key, "video/mp4", no_moov.len()).await;
    assert_eq!(put_local(&app, &m4, &no_moov).await.status, 200);
    let r = confirm(&app, &key, m4["id"].as_str().unwrap()).await;
    assert_param(&r, "content_type");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duration")
    );
    // The first one, fixed by a new PUT of the right bytes, confirms.
    let fixed = png(5, 6, 0);
    let m5 = pending(&app, &key, "image/png", fixed.len()).await;
    assert_eq!(put_local(&app, &m5, &fixed).await.status, 200);
    assert_eq!(
        confirm(&app, &key, m5["id"].as_str().unwrap()).await.status,
        200
    );
    let g = get_media(&app, &key, id).await;
    assert_eq!(g.body["status"], "pending");
    assert!(g.body.get("url").is_none(), "no read URL for pending media");
    let _ = m2;
}

async fn truncated_and_missing_uploads_are_a_size_mismatch() {
    let (app, _dir, key) = setup().await;
    let bytes = png(8, 8, 200);
    let m = pending(&app, &key, "image/png", bytes.len()).await;
    let id = m["id"].as_str().unwrap();
    // Nothing sent yet: the media's state forbids a confirm.
    confirm(&app, &key, id).await.assert_error(409, "conflict");
    // Half sent.
    assert_eq!(
        put_local(&app, &m, &bytes[..bytes.len() / 2]).await.status,
        200
    );
    let r = confirm(&app, &key, id).await;
    assert_param(&r, "size");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("declared")
    );
    // The whole file, sent again to the same URL, replaces it.
    assert_eq!(put_local(&app, &m, &bytes).await.status, 200);
    assert_eq!(confirm(&app, &key, id).await.status, 200);
    // Once ready, the URL cannot change the bytes.
    put_local(&app, &m, &bytes)
        .await
        .assert_error(409, "conflict");
}

async fn a_body_larger_than_declared_is_413_and_leaves_nothing() {
    let (app, dir, key) = setup().await;
    let bytes = png(8, 8, 100_000);
    let m = pending(&app, &key, "image/png", bytes.len() - 1).await;
    let id = m["id"].as_str().unwrap();
    // Streamed without a length: cut at the cap.
    put_local(&app, &m, &bytes)
        .await
        .assert_error(413, "payload_too_large");
    // With an honest Content-Length: refused before reading.
    let url = m["upload"]["url"].as_str().unwrap();
    app.call(Method::PUT, &local_path(url))
        .header("content-length", &bytes.len().to_string())
        .raw(bytes.clone())
        .send()
        .await
        .assert_error(413, "payload_too_large");
    // Nothing was kept: still nothing to confirm.
    confirm(&app, &key, id).await.assert_error(409, "conflict");
    let files: Vec<_> = std::fs::read_dir(dir.path().join("media"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "no partial files: {files:?}");
}

/// A PUT to `url` whose body arrives as the test sends it; its answer once the sender drops.
#[allow(clippy::type_complexity)]
fn sending(
    app: &TestApp,
    url: &str,
) -> (
    futures::channel::mpsc::UnboundedSender<Result<Vec<u8>, std::io::Error>>,
    tokio::task::JoinHandle<Result<axum::response::Response, std::convert::Infallible>>,
) {
    use tower::ServiceExt;
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let mut req = axum::http::Request::builder()
        .method(Method::PUT)
        .uri(url)
        .body(axum::body::Body::from_stream(rx))
        .unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    (tx, tokio::spawn(app.router.clone().oneshot(req)))
}

async fn one_body_at_a_time_and_none_after_a_confirm() {
    let (app, _dir, key) = setup().await;
    let bytes = png(8, 8, 1000);
    let m = pending(&app, &key, "image/png", bytes.len()).await;
    let id = m["id"].as_str().unwrap().to_owned();
    let url = local_path(m["upload"]["url"].as_str().unwrap());
    // A PUT whose body arrives as the test sends it.
    let (tx, slow) = sending(&app, &url);
    tx.unbounded_send(Ok(bytes[..100].to_vec())).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // A second PUT meanwhile is refused, and writes nothing.
    put_local(&app, &m, &bytes)
        .await
        .assert_error(409, "conflict");
    let r = confirm(&app, &key, &id).await;
    r.assert_error(409, "conflict");
    assert!(r.text.contains("still being sent"), "{}", r.text);
    // The first ends; then a PUT again is fine, and confirms.
    tx.unbounded_send(Ok(bytes[100..].to_vec())).unwrap();
    drop(tx);
    let first = slow.await.unwrap().unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(put_local(&app, &m, &bytes).await.status, 200);
    // No confirm while a PUT is sending; once confirmed, no PUT replaces the bytes.
    let (tx, again) = sending(&app, &url);
    tx.unbounded_send(Ok(bytes[..100].to_vec())).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    confirm(&app, &key, &id).await.assert_error(409, "conflict");
    tx.unbounded_send(Ok(bytes[100..].to_vec())).unwrap();
    drop(tx);
    assert_eq!(again.await.unwrap().unwrap().status(), 200);
    let c = confirm(&app, &key, &id).await;
    assert_eq!(c.status, 200, "{}", c.text);
    put_local(&app, &m, &png(8, 8, 1001)[..bytes.len()])
        .await
        .assert_error(409, "conflict");
    let got = get_media(&app, &key, &id).await;
    let read = local_path(got.body["url"].as_str().unwrap());
    assert_eq!(app.get(&read).send().await.bytes, bytes);
}

async fn tampered_and_expired_urls_are_403() {
    let (app, _dir, key) = setup().await;
    let bytes = png(2, 2, 0);
    let m = pending(&app, &key, "image/png", bytes.len()).await;
    let other = pending(&app, &key, "image/png", bytes.len()).await;
    let url = local_path(m["upload"]["url"].as_str().unwrap());
    let id = m["id"].as_str().unwrap();
    let other_id = other["id"].as_str().unwrap();
    let sig_at = url.find("signature=").unwrap() + "signature=".len();
    let mut flipped = url.clone().into_bytes();
    flipped[sig_at] = if flipped[sig_at] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let exp: i64 = url
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for bad in [
        flipped,
        url.replace(id, other_id),
        url.replace(
            &format!("expires={exp}"),
            &format!("expires={}", exp + 3_600_000),
        ),
        url.split('&').next().unwrap().to_owned(),
        url.split('?').next().unwrap().to_owned(),
        url.replace("signature=", "signature=zz"),
        url.replace("/uploads/", "/uploads/x").replace("x", ""),
    ] {
        if bad == url {
            continue;
        }
        let r = app.call(Method::PUT, &bad).raw(bytes.clone()).send().await;
        r.assert_error(403, "forbidden");
    }
    // The upload URL does not read, and a read URL does not upload.
    let as_get = url.replace("/uploads/", "/files/");
    app.get(&as_get).send().await.assert_error(403, "forbidden");
    // Expired: 15 minutes later.
    app.clock.advance(std::time::Duration::from_secs(15 * 60));
    let r = app.call(Method::PUT, &url).raw(bytes.clone()).send().await;
    r.assert_error(403, "forbidden");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    // A read URL expires too, and is bound to its media.
    let ready_one = ready(&app, &key, "image/png", &bytes).await;
    let g = get_media(&app, &key, ready_one["id"].as_str().unwrap()).await;
    let read = local_path(g.body["url"].as_str().unwrap());
    assert_eq!(app.get(&read).send().await.status, 200);
    app.call(Method::PUT, &read.replace("/files/", "/uploads/"))
        .raw(bytes.clone())
        .send()
        .await
        .assert_error(403, "forbidden");
    app.clock.advance(std::time::Duration::from_secs(15 * 60));
    app.get(&read).send().await.assert_error(403, "forbidden");
    // None of this needed or took an API key; a key does not open a bad URL either.
    app.call(Method::PUT, &url)
        .key(&key)
        .raw(bytes.clone())
        .send()
        .await
        .assert_error(403, "forbidden");
}

async fn the_plans_media_storage_is_a_quota() {
    let (app, _dir) = local_app(Some(quota_plan(1000))).await;
    let key = app.admin_key().await;
    let body =
        |size: usize| json!({"filename": "q.png", "content_type": "image/png", "size": size});
    // The declared size alone cannot fit: refused at once.
    upload_url(&app, &key, body(1001))
        .await
        .assert_error(402, "quota_exceeded");
    // Two uploads that each fit, but not together: the second confirm is refused.
    let a = png(1, 1, 600 - png(1, 1, 0).len() - 12);
    assert_eq!(a.len(), 600);
    let ma = pending(&app, &key, "image/png", 600).await;
    let mb = pending(&app, &key, "image/png", 600).await;
    assert_eq!(put_local(&app, &ma, &a).await.status, 200);
    assert_eq!(put_local(&app, &mb, &a).await.status, 200);
    assert_eq!(
        confirm(&app, &key, ma["id"].as_str().unwrap()).await.status,
        200
    );
    let r = confirm(&app, &key, mb["id"].as_str().unwrap()).await;
    r.assert_error(402, "quota_exceeded");
    assert_eq!(
        get_media(&app, &key, mb["id"].as_str().unwrap()).await.body["status"],
        "pending"
    );
    upload_url(&app, &key, body(401))
        .await
        .assert_error(402, "quota_exceeded");
    // Deleting frees the bytes.
    let d = app
        .delete(&format!("/v1/media/{}", ma["id"].as_str().unwrap()))
        .key(&key)
        .send()
        .await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(
        confirm(&app, &key, mb["id"].as_str().unwrap()).await.status,
        200
    );
    // Two confirms racing for the last bytes: exactly one fits.
    let (mc, md) = (
        pending(&app, &key, "image/png", 400).await,
        pending(&app, &key, "image/png", 400).await,
    );
    let b400 = png(1, 1, 400 - png(1, 1, 0).len() - 12);
    assert_eq!(put_local(&app, &mc, &b400).await.status, 200);
    assert_eq!(put_local(&app, &md, &b400).await.status, 200);
    let (rc, rd) = tokio::join!(
        confirm(&app, &key, mc["id"].as_str().unwrap()),
        confirm(&app, &key, md["id"].as_str().unwrap())
    );
    let mut statuses = [rc.status.as_u16(), rd.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 402], "{} / {}", rc.text, rd.text);
    // Test mode has its own allowance: live media do not count against it, nor it against
    // the plan.
    let (test_key, _) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await;
    let t = ready(&app, &test_key, "image/png", &a).await;
    assert_eq!(t["livemode"], false);
    // The live plan's 1000 bytes do not bound test mode (1 GiB of its own).
    let r = upload_url(&app, &test_key, body(5000)).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn other_workspaces_and_modes_do_not_see_media() {
    let (app, _dir, key) = setup().await;
    let m = ready(&app, &key, "image/png", &png(4, 4, 0)).await;
    let id = m["id"].as_str().unwrap();
    let other_ws = app.other_workspace("rival").await;
    let (other_key, _) = app
        .key_in(
            &other_ws,
            KeySpec {
                scopes: Scope::ALL.to_vec(),
                ..KeySpec::default()
            },
        )
        .await;
    let (test_key, _) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await;
    for k in [&other_key, &test_key] {
        get_media(&app, k, id).await.assert_error(404, "not_found");
        confirm(&app, k, id).await.assert_error(404, "not_found");
        app.patch(&format!("/v1/media/{id}"))
            .key(k)
            .json(json!({"alt_text": "x"}))
            .send()
            .await
            .assert_error(404, "not_found");
        app.delete(&format!("/v1/media/{id}"))
            .key(k)
            .send()
            .await
            .assert_error(404, "not_found");
        let list = app.get("/v1/media").key(k).send().await;
        assert_eq!(list.body["data"], json!([]));
        // Nor may their posts name it.
        let acct = app.sandbox_account(k, "other").await;
        let r = app
            .post("/v1/posts")
            .key(k)
            .json(json!({"body": "hi", "account_ids": [acct], "media_ids": [id]}))
            .send()
            .await;
        assert_param(&r, "media_ids[0]");
    }
    get_media(&app, &key, "med_nope")
        .await
        .assert_error(404, "not_found");
    assert_eq!(get_media(&app, &key, id).await.status, 200);
}

async fn alt_text_is_set_bounded_and_cleared() {
    let (app, _dir, key) = setup().await;
    let m = ready(&app, &key, "image/png", &png(4, 4, 0)).await;
    let path = format!("/v1/media/{}", m["id"].as_str().unwrap());
    let r = app
        .patch(&path)
        .key(&key)
        .json(json!({"alt_text": "A 🦀."}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["alt_text"], "A 🦀.");
    assert_param(
        &app.patch(&path)
            .key(&key)
            .json(json!({"alt_text": "a".repeat(1501)}))
            .send()
            .await,
        "alt_text",
    );
    assert_param(
        &app.patch(&path)
            .key(&key)
            .json(json!({"alt_text": 5}))
            .send()
            .await,
        "alt_text",
    );
    assert_eq!(
        get_media(&app, &key, m["id"].as_str().unwrap()).await.body["alt_text"],
        "A 🦀."
    );
    let r = app
        .patch(&path)
        .key(&key)
        .json(json!({"alt_text": null}))
        .send()
        .await;
    assert!(r.body["alt_text"].is_null());
}

// ---- media in posts ----

async fn media_go_out_with_a_post_to_the_sandbox() {
    let (app, _dir, key) = setup().await;
    let acct = app.sandbox_account(&key, "brand").await;
    let img = ready(&app, &key, "image/png", &png(100, 100, 0)).await;
    let img_id = img["id"].as_str().unwrap();
    let post = create(
        &app,
        &key,
        json!({"body": "Look.", "account_ids": [acct], "media_ids": [img_id]}),
    )
    .await;
    assert_eq!(post["media_ids"], json!([img_id]));
    let pid = post["id"].as_str().unwrap();
    let r = act(&app, &key, pid, "publish", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    run(&app).await;
    let tl = timeline(&app, &key, &acct).await;
    assert_eq!(tl.len(), 1, "{tl:?}");
    assert_eq!(tl[0]["media_ids"], json!([img_id]));
    // A video longer than the sandbox takes is refused at schedule time, naming the rule.
    let long = ready(&app, &key, "video/mp4", &mp4(200_000)).await;
    let long_post = create(
        &app,
        &key,
        json!({"body": "Long.", "account_ids": [acct], "media_ids": [long["id"]]}),
    )
    .await;
    let r = act(
        &app,
        &key,
        long_post["id"].as_str().unwrap(),
        "schedule",
        Some(json!({"scheduled_at": "2026-11-23T10:00:00Z"})),
    )
    .await;
    r.assert_error(400, "invalid_request");
    assert!(
        r.text.contains("sandbox.media.max_video_duration"),
        "{}",
        r.text
    );
    // An image over the sandbox's 5 MiB.
    let big = ready(&app, &key, "image/png", &png(10, 10, 5 * 1024 * 1024 + 1)).await;
    let big_post = create(
        &app,
        &key,
        json!({"body": "Big.", "account_ids": [acct], "media_ids": [big["id"]]}),
    )
    .await;
    let r = act(
        &app,
        &key,
        big_post["id"].as_str().unwrap(),
        "publish",
        None,
    )
    .await;
    r.assert_error(400, "invalid_request");
    assert!(
        r.text.contains("sandbox.media.max_image_bytes"),
        "{}",
        r.text
    );
    // Pending media, unknown ids, duplicates and more than ten are refused at creation.
    let p = pending(&app, &key, "image/png", 10).await;
    for (ids, param) in [
        (json!([p["id"]]), "media_ids[0]"),
        (
            json!([img_id, "med_0000000000000000000000"]),
            "media_ids[1]",
        ),
        (json!([img_id, img_id]), "media_ids[1]"),
        (json!(vec![img_id; 11]), "media_ids"),
    ] {
        let r = app
            .post("/v1/posts")
            .key(&key)
            .json(json!({"body": "x", "account_ids": [acct], "media_ids": ids}))
            .send()
            .await;
        assert_param(&r, param);
    }
}

async fn media_used_by_a_scheduled_post_cannot_be_deleted() {
    let (app, dir, key) = setup().await;
    let acct = app.sandbox_account(&key, "brand").await;
    let img = ready(&app, &key, "image/png", &png(10, 10, 0)).await;
    let mid = img["id"].as_str().unwrap();
    let post = create(
        &app,
        &key,
        json!({"body": "Soon.", "account_ids": [acct], "media_ids": [mid]}),
    )
    .await;
    let pid = post["id"].as_str().unwrap();
    let at = json!({"scheduled_at": "2026-11-23T10:00:00Z"});
    assert_eq!(
        act(&app, &key, pid, "schedule", Some(at.clone()))
            .await
            .status,
        200
    );
    let path = format!("/v1/media/{mid}");
    app.delete(&path)
        .key(&key)
        .send()
        .await
        .assert_error(409, "conflict");
    assert_eq!(get_media(&app, &key, mid).await.status, 200);
    // Back to draft: deletable, bytes gone, and the post can no longer be scheduled with it.
    assert_eq!(act(&app, &key, pid, "cancel", None).await.status, 200);
    let d = app.delete(&path).key(&key).send().await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.body["deleted"], true);
    assert!(
        !dir.path().join("media").join(mid).exists(),
        "bytes deleted"
    );
    get_media(&app, &key, mid)
        .await
        .assert_error(404, "not_found");
    app.delete(&path)
        .key(&key)
        .send()
        .await
        .assert_error(404, "not_found");
    assert_param(
        &act(&app, &key, pid, "schedule", Some(at)).await,
        "media_ids[0]",
    );

    // A delete that wins a race with a schedule (simulated: the row goes after the post was
    // scheduled) cannot get the media published: the publisher finds it gone.
    let img2 = ready(&app, &key, "image/png", &png(10, 10, 0)).await;
    let m2 = img2["id"].as_str().unwrap();
    let p2 = create(
        &app,
        &key,
        json!({"body": "Race.", "account_ids": [acct], "media_ids": [m2]}),
    )
    .await;
    assert_eq!(
        act(&app, &key, p2["id"].as_str().unwrap(), "publish", None)
            .await
            .status,
        200
    );
    app.raw_execute("DELETE FROM media").await;
    run(&app).await;
    let got = app
        .get(&format!("/v1/posts/{}", p2["id"].as_str().unwrap()))
        .key(&key)
        .send()
        .await;
    assert_eq!(got.body["targets"][0]["status"], "failed", "{}", got.text);
    assert_eq!(got.body["targets"][0]["error"]["code"], "media_rejected");
    assert!(timeline(&app, &key, &acct).await.is_empty());
}

async fn bytes_changed_after_confirm_are_never_published() {
    let (app, dir, key) = setup().await;
    let acct = app.sandbox_account(&key, "brand").await;
    let img = ready(&app, &key, "image/png", &png(10, 10, 0)).await;
    let mid = img["id"].as_str().unwrap();
    // Someone with access to the store swaps the bytes (same length).
    let path = dir.path().join("media").join(mid);
    let mut b = std::fs::read(&path).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0xFF;
    std::fs::write(&path, b).unwrap();
    let p = create(
        &app,
        &key,
        json!({"body": "Swap.", "account_ids": [acct], "media_ids": [mid]}),
    )
    .await;
    assert_eq!(
        act(&app, &key, p["id"].as_str().unwrap(), "publish", None)
            .await
            .status,
        200
    );
    run(&app).await;
    let got = app
        .get(&format!("/v1/posts/{}", p["id"].as_str().unwrap()))
        .key(&key)
        .send()
        .await;
    assert_eq!(
        got.body["targets"][0]["error"]["code"], "media_rejected",
        "{}",
        got.text
    );
    assert!(timeline(&app, &key, &acct).await.is_empty());
}

// ---- cleanup ----

async fn uploads_never_confirmed_are_purged() {
    let (app, dir, key) = setup().await;
    let bytes = png(2, 2, 0);
    let stale = pending(&app, &key, "image/png", bytes.len()).await;
    assert_eq!(put_local(&app, &stale, &bytes).await.status, 200);
    let never_sent = pending(&app, &key, "image/png", 10).await;
    let done = ready(&app, &key, "image/png", &bytes).await;
    let media = app.state.app().media();
    let now = || crier_core::Clock::now_ms(&app.clock);
    // Expired, but less than an hour ago: kept.
    app.clock
        .advance(std::time::Duration::from_secs(15 * 60 + 30 * 60));
    assert_eq!(media.purge_expired_uploads(now()).await.unwrap(), 0);
    let fresh = pending(&app, &key, "image/png", 10).await;
    app.clock.advance(std::time::Duration::from_secs(31 * 60));
    assert_eq!(media.purge_expired_uploads(now()).await.unwrap(), 2);
    for gone in [&stale, &never_sent] {
        get_media(&app, &key, gone["id"].as_str().unwrap())
            .await
            .assert_error(404, "not_found");
    }
    assert!(
        !dir.path()
            .join("media")
            .join(stale["id"].as_str().unwrap())
            .exists()
    );
    for kept in [&done, &fresh] {
        assert_eq!(
            get_media(&app, &key, kept["id"].as_str().unwrap())
                .await
                .status,
            200
        );
    }
    assert!(
        dir.path()
            .join("media")
            .join(done["id"].as_str().unwrap())
            .exists()
    );
    assert_eq!(media.purge_expired_uploads(now()).await.unwrap(), 0);
}

both!(
    tests: images_and_videos_are_confirmed_from_their_bytes,
    one_body_at_a_time_and_none_after_a_confirm,
    upload_requests_are_bounded,
    pending_uploads_per_workspace_are_bounded,
    a_declared_type_the_bytes_do_not_have_is_refused,
    truncated_and_missing_uploads_are_a_size_mismatch,
    a_body_larger_than_declared_is_413_and_leaves_nothing,
    tampered_and_expired_urls_are_403,
    the_plans_media_storage_is_a_quota,
    other_workspaces_and_modes_do_not_see_media,
    alt_text_is_set_bounded_and_cleared,
    media_go_out_with_a_post_to_the_sandbox,
    media_used_by_a_scheduled_post_cannot_be_deleted,
    bytes_changed_after_confirm_are_never_published,
    uploads_never_confirmed_are_purged,
    media_is_imported_from_a_url_by_its_bytes,
    a_workspace_has_at_most_two_imports_under_way,
    imports_that_cannot_be_fetched_or_kept_leave_nothing,
    import_requests_are_checked,
);

// ---- import from a URL ----

/// A site on loopback serving what imports fetch: a PNG (under a percent-encoded name), a
/// PNG without a name in its path, an HTML page, a 404, a redirect to a private address and
/// a body larger than the configured cap.
async fn import_site(png_bytes: Vec<u8>) -> String {
    use axum::response::IntoResponse;
    use axum::routing::get;
    let png_a = png_bytes.clone();
    let site = axum::Router::new()
        .route(
            "/img/launch%20day.png",
            get(move || {
                let b = png_a.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "image/png")], b) }
            }),
        )
        .route(
            "/render",
            get(move || {
                let b = png_bytes.clone();
                // A wrong Content-Type: the type comes from the bytes.
                async move { ([(axum::http::header::CONTENT_TYPE, "text/plain")], b) }
            }),
        )
        .route(
            "/page.html",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "text/html")],
                    "<p>hi</p>",
                )
            }),
        )
        .route(
            "/gone.png",
            get(|| async { axum::http::StatusCode::NOT_FOUND.into_response() }),
        )
        .route(
            "/slow.png",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
                (
                    [(axum::http::header::CONTENT_TYPE, "image/png")],
                    png(8, 8, 0),
                )
            }),
        )
        .route(
            "/to-metadata",
            get(|| async {
                axum::response::Redirect::temporary("http://169.254.169.254/latest/meta-data")
                    .into_response()
            }),
        )
        .route(
            "/big.png",
            get(|| async {
                let mut b = png(8, 8, 0);
                b.resize(200_000, 0);
                ([(axum::http::header::CONTENT_TYPE, "image/png")], b)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, site).await.unwrap() });
    base
}

/// An app with a local store whose largest object is `max_size`, fetching from loopback only
/// when `allow_private`, on `plan`.
async fn import_app(
    plan: Option<crier_core::Plan>,
    allow_private: bool,
    max_size: u64,
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("media");
    let mut config = crier_api::ApiConfig::default();
    let plan_name = match plan {
        Some(p) => {
            config.plans.insert("custom".into(), p);
            "custom"
        }
        None => "self-hosted",
    };
    let app = TestApp::composed(config, plan_name, move |store, clock, config| {
        let mut settings = common::media::local_settings(&path);
        settings.max_size = max_size;
        common::compose(store, clock, config)
            .with_media(settings)
            .with_fetch(crier_app::fetch::FetchSettings::new(
                allow_private,
                std::time::Duration::from_secs(2),
            ))
    })
    .await;
    (app, dir)
}

async fn import(app: &TestApp, key: &str, body: Value) -> common::Response {
    app.post("/v1/media/import")
        .key(key)
        .json(body)
        .send()
        .await
}

/// Every media row and every file in the store, to assert that a refused import left nothing.
async fn media_rows(app: &TestApp) -> Vec<Option<String>> {
    app.raw_texts("SELECT id || '|' || status FROM media ORDER BY id")
        .await
}

fn files_in(dir: &tempfile::TempDir) -> usize {
    std::fs::read_dir(dir.path().join("media"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// One workspace has at most two imports under way on a node (a slow server it names cannot
/// hold every slot): a third at once is `429` and stores nothing, while another workspace's
/// import goes ahead; once one finishes, the workspace imports again.
async fn a_workspace_has_at_most_two_imports_under_way() {
    let (app, _dir) = import_app(None, true, 100_000).await;
    let key = app.admin_key().await;
    let other = app.other_workspace("other").await;
    let (other_key, _) = app
        .key_in(
            &other,
            KeySpec {
                scopes: vec![Scope::MediaWrite, Scope::MediaRead],
                ..Default::default()
            },
        )
        .await;
    let base = import_site(png(8, 8, 0)).await;
    let slow = json!({"url": format!("{base}/slow.png")});
    let ours = (0..3).map(|_| import(&app, &key, slow.clone()));
    let (ours, theirs) = tokio::join!(
        futures::future::join_all(ours),
        import(&app, &other_key, slow.clone())
    );
    let statuses: Vec<u16> = ours.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        2,
        "{statuses:?}"
    );
    let refused = ours.iter().find(|r| r.status != 201).unwrap();
    refused.assert_error(429, "rate_limited");
    assert!(
        refused.text.contains("2 imports under way"),
        "{}",
        refused.text
    );
    assert_eq!(theirs.status, 201, "another workspace: {}", theirs.text);
    assert_eq!(
        media_rows(&app).await.len(),
        3,
        "the refused import stored nothing"
    );
    let r = import(&app, &key, slow).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn media_is_imported_from_a_url_by_its_bytes() {
    let (app, dir) = import_app(None, true, 100_000).await;
    let key = app.admin_key().await;
    let bytes = png(320, 200, 500);
    let base = import_site(bytes.clone()).await;
    let r = import(
        &app,
        &key,
        json!({"url": format!("{base}/img/launch%20day.png"), "alt_text": "Launch"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let m = &r.body;
    assert_eq!(m["status"], "ready");
    assert_eq!(m["content_type"], "image/png");
    assert_eq!(m["filename"], "launch day.png");
    assert_eq!(m["alt_text"], "Launch");
    assert_eq!(m["size"], bytes.len());
    assert_eq!(m["sha256"], sha256_hex(&bytes));
    assert_eq!(
        (m["width"].clone(), m["height"].clone()),
        (json!(320), json!(200))
    );
    assert!(m.get("upload").is_none_or(Value::is_null), "{m}");
    // The bytes are what the site served, readable through the signed URL.
    let id = m["id"].as_str().unwrap();
    let got = get_media(&app, &key, id).await;
    let (status, _, read) = fetch_bytes(&app, &local_path(got.body["url"].as_str().unwrap())).await;
    assert_eq!((status, read), (200, bytes.clone()));
    assert!(
        events_of(&app)
            .await
            .iter()
            .flatten()
            .any(|e| e.starts_with("media.ready|") && e.contains(id)),
        "media.ready emitted"
    );
    // A name is derived from the type when the path has none; the served Content-Type is not
    // trusted, the bytes are.
    let r = import(&app, &key, json!({"url": format!("{base}/render")})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["filename"], "import.png");
    assert_eq!(r.body["content_type"], "image/png");
    // Imported media go out with a post like uploaded ones.
    let acct = app.sandbox_account(&key, "brand").await;
    let p = create(
        &app,
        &key,
        json!({"body": "imported", "account_ids": [acct], "media_ids": [id]}),
    )
    .await;
    let r = act(&app, &key, p["id"].as_str().unwrap(), "publish", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    run(&app).await;
    let tl = timeline(&app, &key, &acct).await;
    assert_eq!(tl[0]["media_ids"], json!([id]));
    assert_eq!(files_in(&dir), 2);
}

async fn imports_that_cannot_be_fetched_or_kept_leave_nothing() {
    let (app, dir) = import_app(Some(quota_plan(1000)), false, 100_000).await;
    let key = app.admin_key().await;
    // Larger than the plan's 1000 bytes of storage, smaller than the 100,000-byte cap.
    let base = import_site(png(16, 16, 1200)).await;
    let before = media_rows(&app).await;
    // Loopback refused by the SSRF guard (the operator did not allow private networks).
    let r = import(
        &app,
        &key,
        json!({"url": format!("{base}/img/launch%20day.png")}),
    )
    .await;
    assert_param(&r, "url");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{}",
        r.text
    );
    for url in [
        "ftp://example.com/a.png".to_owned(),
        "not a url".to_owned(),
        "http://user:pw@example.com/a.png".to_owned(),
        format!("http://example.com/{}", "a".repeat(2100)),
        "http://10.0.0.1/a.png".to_owned(),
        "http://[::1]/a.png".to_owned(),
    ] {
        assert_param(&import(&app, &key, json!({"url": url})).await, "url");
    }
    assert_eq!(media_rows(&app).await, before);

    // With private networks allowed (a self-hosted box), what the site answers decides.
    let (app, dir2) = import_app(Some(quota_plan(1000)), true, 100_000).await;
    let key = app.admin_key().await;
    let before = media_rows(&app).await;
    for (path, says) in [
        ("/gone.png", "HTTP 404"),
        ("/page.html", "not a type crier accepts"),
        ("/big.png", "larger than"),
        // The PNG fits the cap but not the plan's 1000 bytes of storage.
        ("/img/launch%20day.png", ""),
    ] {
        let r = import(&app, &key, json!({"url": format!("{base}{path}")})).await;
        if says.is_empty() {
            r.assert_error(402, "quota_exceeded");
        } else {
            assert_param(&r, "url");
            assert!(
                r.body["error"]["message"].as_str().unwrap().contains(says),
                "{path}: {}",
                r.text
            );
        }
    }
    // A redirect to a private address is checked again and refused... unless private
    // networks are allowed, when the metadata address simply does not answer here: either
    // way a 400 on `url`.
    assert_param(
        &import(&app, &key, json!({"url": format!("{base}/to-metadata")})).await,
        "url",
    );
    assert_eq!(media_rows(&app).await, before, "nothing stored");
    assert_eq!(files_in(&dir2), 0, "no bytes left behind");
    assert_eq!(files_in(&dir), 0);
}

async fn import_requests_are_checked() {
    let (app, _dir) = import_app(None, true, 100_000).await;
    let key = app.admin_key().await;
    let base = import_site(png(4, 4, 0)).await;
    let url = format!("{base}/render");
    let before = media_rows(&app).await;
    for (body, param) in [
        (json!({}), "url"),
        (json!({"url": 5}), "url"),
        (json!({"url": url, "filename": "a/b.png"}), "filename"),
        (json!({"url": url, "filename": ""}), "filename"),
        (
            json!({"url": url, "alt_text": "x".repeat(1501)}),
            "alt_text",
        ),
        (json!({"url": url, "size": 10}), "size"),
    ] {
        let r = import(&app, &key, body.clone()).await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["param"], param, "{body}: {}", r.text);
    }
    let r = app
        .post("/v1/media/import")
        .key(&key)
        .header("content-type", "application/json")
        .raw("{\"url\":")
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    // Without media:write.
    let reader = app.key_with(&[Scope::MediaRead]).await;
    import(&app, &reader, json!({"url": url}))
        .await
        .assert_error(403, "forbidden_scope");
    import(&app, "sk_live_nope", json!({"url": url}))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(media_rows(&app).await, before);
}

// ---- S3 (s3s-fs) ----

struct S3Env {
    endpoint: String,
    bucket: String,
    region: String,
    access_key: String,
    secret_key: String,
}

fn s3_env() -> Option<S3Env> {
    let get = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    match get("CRIER_TEST_S3_ENDPOINT") {
        Some(endpoint) => Some(S3Env {
            endpoint,
            bucket: get("CRIER_TEST_S3_BUCKET").expect("CRIER_TEST_S3_BUCKET"),
            region: get("CRIER_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            access_key: get("CRIER_TEST_S3_ACCESS_KEY").expect("CRIER_TEST_S3_ACCESS_KEY"),
            secret_key: get("CRIER_TEST_S3_SECRET_KEY").expect("CRIER_TEST_S3_SECRET_KEY"),
        }),
        None if std::env::var("CRIER_REQUIRE_PEERS").as_deref() == Ok("1") => {
            panic!(
                "CRIER_REQUIRE_PEERS=1 but CRIER_TEST_S3_ENDPOINT is unset (scripts/peers/s3.sh start writes target/peers/s3.env)"
            )
        }
        None => {
            eprintln!(
                "skipped: set CRIER_TEST_S3_ENDPOINT etc. (scripts/peers/s3.sh start writes them to target/peers/s3.env)"
            );
            None
        }
    }
}

async fn the_s3_path_uses_presigned_urls_that_s3s_fs_checks() {
    let Some(env) = s3_env() else { return };
    // The test clock must be near real time: s3s-fs checks X-Amz-Date against its own.
    let app = app_with(None, || {
        let store = crier_media::s3::S3Store::new(crier_media::s3::S3Config {
            endpoint: env.endpoint.clone(),
            bucket: env.bucket.clone(),
            region: env.region.clone(),
            access_key: env.access_key.clone(),
            secret_key: env.secret_key.clone(),
            path_style: true,
            prefix: String::new(),
        })
        .unwrap();
        crier_app::media::MediaSettings::new(crier_media::Storage::S3(Arc::new(store)))
    })
    .await;
    app.clock.set(jiff::Timestamp::now());
    let key = app.admin_key().await;
    let http = reqwest::Client::new();
    let bytes = png(320, 200, 1000);
    let m = pending(&app, &key, "image/png", bytes.len()).await;
    let url = m["upload"]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&env.endpoint), "{url}");
    assert!(url.contains("X-Amz-Signature="));
    let put = |url: String, body: Vec<u8>, ct: &'static str| {
        let http = http.clone();
        async move {
            http.put(url)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Tampered URLs are refused by the store itself.
    let sig_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut flipped = url.clone().into_bytes();
    flipped[sig_at] = if flipped[sig_at] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        put(
            String::from_utf8(flipped).unwrap(),
            bytes.clone(),
            "image/png"
        )
        .await,
        403
    );
    let other = pending(&app, &key, "image/png", bytes.len()).await;
    let swapped = url.replace(m["id"].as_str().unwrap(), other["id"].as_str().unwrap());
    assert_eq!(put(swapped, bytes.clone(), "image/png").await, 403);
    // The signed headers hold: another type or length is refused.
    assert_eq!(put(url.clone(), bytes.clone(), "image/gif").await, 403);
    assert_ne!(
        put(url.clone(), bytes[..10].to_vec(), "image/png").await,
        200
    );
    // Confirm before any bytes: the media's state forbids it.
    confirm(&app, &key, m["id"].as_str().unwrap())
        .await
        .assert_error(409, "conflict");
    // The real upload.
    assert_eq!(put(url.clone(), bytes.clone(), "image/png").await, 200);
    let r = confirm(&app, &key, m["id"].as_str().unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["content_type"], "image/png");
    assert_eq!(r.body["width"], 320);
    assert_eq!(r.body["height"], 200);
    assert_eq!(r.body["sha256"], sha256_hex(&bytes));
    // Read back through the presigned GET.
    let g = get_media(&app, &key, m["id"].as_str().unwrap()).await;
    let read = g.body["url"].as_str().unwrap();
    assert!(read.starts_with(&env.endpoint));
    let got = http.get(read).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), bytes);
    let bad_read = read.replace("X-Amz-Expires=", "X-Amz-Expires=9");
    assert_eq!(http.get(bad_read).send().await.unwrap().status(), 403);
    // A video whose movie header is at the end: found by ranged reads.
    let video = mp4(4321);
    let v = pending(&app, &key, "video/mp4", video.len()).await;
    assert_eq!(
        put(
            v["upload"]["url"].as_str().unwrap().to_owned(),
            video.clone(),
            "video/mp4"
        )
        .await,
        200
    );
    let r = confirm(&app, &key, v["id"].as_str().unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["duration_ms"], 4321);
    // Publishing reads the bytes back from the store.
    let acct = app.sandbox_account(&key, "brand").await;
    let mid = m["id"].as_str().unwrap();
    let p = create(
        &app,
        &key,
        json!({"body": "From S3.", "account_ids": [acct], "media_ids": [mid]}),
    )
    .await;
    assert_eq!(
        act(&app, &key, p["id"].as_str().unwrap(), "publish", None)
            .await
            .status,
        200
    );
    run(&app).await;
    assert_eq!(
        timeline(&app, &key, &acct).await[0]["media_ids"],
        json!([mid])
    );
    // Delete removes the object from the store.
    let d = app
        .delete(&format!("/v1/media/{}", v["id"].as_str().unwrap()))
        .key(&key)
        .send()
        .await;
    assert_eq!(d.status, 200);
    let storage = app.state.app().media_settings().storage.clone();
    assert_eq!(storage.size(v["id"].as_str().unwrap()).await.unwrap(), None);
    assert_eq!(storage.size(mid).await.unwrap(), Some(bytes.len() as u64));
    // An import is written to S3 by crier itself (a signed PUT s3s-fs checks).
    let site_bytes = png(64, 48, 300);
    let base = import_site(site_bytes.clone()).await;
    let r = import(
        &app,
        &key,
        json!({"url": format!("{base}/img/launch%20day.png")}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let imported = r.body["id"].as_str().unwrap();
    assert_eq!(r.body["sha256"], sha256_hex(&site_bytes));
    assert_eq!(
        storage.read_all(imported, 1 << 20).await.unwrap().to_vec(),
        site_bytes
    );
    // The local routes do not exist with S3 configured.
    app.call(
        Method::PUT,
        &format!("/v1/media/uploads/{mid}?expires=1&signature=00"),
    )
    .send()
    .await
    .assert_error(404, "not_found");
}

both!(tests: the_s3_path_uses_presigned_urls_that_s3s_fs_checks);
