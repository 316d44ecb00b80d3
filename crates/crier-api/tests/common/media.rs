//! Helpers of the media suite (`tests/media.rs`): apps with a chosen media store, files built
//! in code (PNG, JPEG, MP4, QuickTime, WebM) and the upload → PUT → confirm steps.

use std::sync::Arc;

use axum::http::Method;
use crier_api::ApiConfig;
use crier_app::media::MediaSettings;
use crier_core::Plan;
use crier_media::Storage;
use crier_media::local::LocalStore;
use serde_json::{Value, json};
use sha2::Digest;

use super::{Response, TestApp, compose};

/// The origin the local store's URLs carry in these tests.
pub const ORIGIN: &str = "http://crier.test";

/// A plan like self-hosted with a media quota of `bytes`.
pub fn quota_plan(bytes: u64) -> Plan {
    let mut p = Plan::defaults()["self-hosted"].clone();
    p.media_storage_bytes = Some(bytes);
    p
}

/// An app whose workspace is on `plan` (added to the default plans as `custom`, if given),
/// with the media settings `settings` makes from the app's clock.
pub async fn app_with(plan: Option<Plan>, settings: impl FnOnce() -> MediaSettings) -> TestApp {
    let mut config = ApiConfig {
        allow_private_networks: true,
        ..ApiConfig::default()
    };
    let plan_name = match plan {
        Some(p) => {
            config.plans.insert("custom".into(), p);
            "custom"
        }
        None => "self-hosted",
    };
    TestApp::composed(config, plan_name, |store, clock, config| {
        // Like the operator's `allow_private_networks` above: imports may fetch from loopback.
        compose(store, clock, config)
            .with_media(settings())
            .with_fetch(crier_app::fetch::FetchSettings::new(
                true,
                std::time::Duration::from_secs(2),
            ))
    })
    .await
}

/// A local store in `dir` with a fixed secret.
pub fn local_settings(dir: &std::path::Path) -> MediaSettings {
    let local = LocalStore::open(dir, ORIGIN, vec![42; 32]).unwrap();
    MediaSettings::new(Storage::Local(Arc::new(local)))
}

/// An app with a local media store in a temporary folder (kept alive by the returned guard).
pub async fn local_app(plan: Option<Plan>) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("media");
    let app = app_with(plan, || local_settings(&path)).await;
    (app, dir)
}

pub fn sha256_hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut c = kind.to_vec();
    c.extend_from_slice(data);
    out.extend_from_slice(&c);
    out.extend_from_slice(&crc32(&c).to_be_bytes());
}

/// A PNG of `w`×`h` with `padding` bytes in an ancillary chunk.
pub fn png(w: u32, h: u32, padding: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    if padding > 0 {
        png_chunk(&mut out, b"zzZz", &vec![7u8; padding]);
    }
    png_chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A baseline JPEG header of `w`×`h`.
pub fn jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    out.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
    out.extend_from_slice(b"JFIF\0");
    out.extend_from_slice(&[1, 1, 0, 0, 1, 0, 1, 0, 0]);
    out.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 8]);
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

fn bmff_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

/// An ISO BMFF file with brand `brand` (`isom`: MP4, `qt  `: QuickTime) lasting
/// `duration_ms`, its `moov` after `mdat` when `moov_last` (as cameras write them).
pub fn bmff(brand: &[u8; 4], duration_ms: u32, moov_last: bool) -> Vec<u8> {
    let mut ftyp = brand.to_vec();
    ftyp.extend_from_slice(&0x200u32.to_be_bytes());
    ftyp.extend_from_slice(brand);
    let mut mvhd = vec![0u8; 100];
    mvhd[12..16].copy_from_slice(&1000u32.to_be_bytes());
    mvhd[16..20].copy_from_slice(&duration_ms.to_be_bytes());
    let moov = bmff_box(b"moov", &bmff_box(b"mvhd", &mvhd));
    let mdat = bmff_box(b"mdat", &[0u8; 64]);
    let mut out = bmff_box(b"ftyp", &ftyp);
    if moov_last {
        out.extend(mdat);
        out.extend(moov);
    } else {
        out.extend(moov);
        out.extend(mdat);
    }
    out
}

pub fn mp4(duration_ms: u32) -> Vec<u8> {
    bmff(b"isom", duration_ms, true)
}

/// A WebM file whose `Info/Duration` is `duration_ms` (TimecodeScale 1 ms).
pub fn webm(duration_ms: f32) -> Vec<u8> {
    let mut out = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F];
    // EBMLVersion, EBMLReadVersion, MaxIDLength, MaxSizeLength, DocType "webm", versions.
    out.extend_from_slice(&[0x42, 0x86, 0x81, 0x01, 0x42, 0xF7, 0x81, 0x01]);
    out.extend_from_slice(&[0x42, 0xF2, 0x81, 0x04, 0x42, 0xF3, 0x81, 0x08]);
    out.extend_from_slice(&[0x42, 0x82, 0x84]);
    out.extend_from_slice(b"webm");
    out.extend_from_slice(&[0x42, 0x87, 0x81, 0x02, 0x42, 0x85, 0x81, 0x02]);
    // Segment of unknown size, then Info with TimecodeScale and Duration.
    out.extend_from_slice(&[
        0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    let mut info = vec![0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40];
    info.extend_from_slice(&[0x44, 0x89, 0x84]);
    info.extend_from_slice(&duration_ms.to_be_bytes());
    out.extend_from_slice(&[0x15, 0x49, 0xA9, 0x66, 0x80 | info.len() as u8]);
    out.extend(info);
    // A Cluster's start, for shape.
    out.extend_from_slice(&[0x1F, 0x43, 0xB6, 0x75, 0x81, 0xE7]);
    out
}

/// The path and query of a URL on the test origin, to send through the router.
pub fn local_path(url: &str) -> String {
    url.strip_prefix(ORIGIN)
        .unwrap_or_else(|| panic!("{url} is not on {ORIGIN}"))
        .to_owned()
}

pub async fn upload_url(app: &TestApp, key: &str, body: Value) -> Response {
    app.post("/v1/media/upload-url")
        .key(key)
        .json(body)
        .send()
        .await
}

/// Asks for an upload URL for `bytes` declared as `content_type`; returns the media object.
pub async fn pending(app: &TestApp, key: &str, content_type: &str, size: usize) -> Value {
    let r = upload_url(
        app,
        key,
        json!({"filename": "file.bin", "content_type": content_type, "size": size}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "pending");
    r.body
}

/// PUTs `bytes` to the media's local upload URL (no API key).
pub async fn put_local(app: &TestApp, media: &Value, bytes: &[u8]) -> Response {
    let url = media["upload"]["url"].as_str().unwrap();
    app.call(Method::PUT, &local_path(url))
        .header(
            "content-type",
            media["upload"]["headers"]["Content-Type"].as_str().unwrap(),
        )
        .raw(bytes.to_vec())
        .send()
        .await
}

pub async fn confirm(app: &TestApp, key: &str, id: &str) -> Response {
    app.post(&format!("/v1/media/{id}/confirm"))
        .key(key)
        .send()
        .await
}

/// Upload URL, PUT and confirm on the local store; returns the ready media object.
pub async fn ready(app: &TestApp, key: &str, content_type: &str, bytes: &[u8]) -> Value {
    let m = pending(app, key, content_type, bytes.len()).await;
    let r = put_local(app, &m, bytes).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = confirm(app, key, m["id"].as_str().unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "ready");
    r.body
}

/// `GET path` through the router (no key), with the body as bytes.
pub async fn fetch_bytes(app: &TestApp, path: &str) -> (u16, axum::http::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder()
        .uri(path)
        .body(axum::body::Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}
