//! What the Bluesky suites share (crier-networks' and crier-worker's, which includes this file
//! by path): the PDS from `scripts/peers/pds.sh`, accounts made on it, records read back with
//! plain XRPC, a loopback proxy that can lose answers, a static page server and a real PNG.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The PDS's URL, or `None` (the test then returns) when it is not running; with
/// `CRIER_REQUIRE_PEERS=1` a missing PDS fails the test instead.
pub fn pds_url() -> Option<String> {
    match std::env::var("CRIER_TEST_PDS_URL") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_owned()),
        _ => {
            if std::env::var("CRIER_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
                panic!(
                    "CRIER_TEST_PDS_URL is unset and CRIER_REQUIRE_PEERS=1 (scripts/peers/pds.sh start starts the PDS)"
                );
            }
            eprintln!(
                "skipped: set CRIER_TEST_PDS_URL (scripts/peers/pds.sh start starts it and writes target/peers/pds.env)"
            );
            None
        }
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A name no other test run used (the PDS keeps its accounts until it stops).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mix =
        (nanos ^ (u64::from(std::process::id()) << 20) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_mul(0xff51_afd7_ed55_8ccd);
    format!("{prefix}{:08x}", mix >> 32)
}

#[derive(Debug, Clone)]
pub struct TestAccount {
    pub did: String,
    pub handle: String,
    pub email: String,
    pub password: String,
    pub app_password: String,
    pub access_jwt: String,
}

async fn xrpc_post(url: &str, nsid: &str, body: Value, token: Option<&str>) -> Value {
    let mut req = http()
        .post(format!("{url}/xrpc/{nsid}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{nsid}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// A new account with a `.test` handle and an app password.
pub async fn create_account(pds: &str) -> TestAccount {
    let handle = format!("{}.test", unique("u"));
    let email = format!("{}@example.com", handle.trim_end_matches(".test"));
    let password = unique("pw-");
    let created = xrpc_post(
        pds,
        "com.atproto.server.createAccount",
        json!({"handle": handle, "email": email, "password": password}),
        None,
    )
    .await;
    let access = created["accessJwt"].as_str().unwrap().to_owned();
    let app = xrpc_post(
        pds,
        "com.atproto.server.createAppPassword",
        json!({"name": "crier"}),
        Some(&access),
    )
    .await;
    TestAccount {
        did: created["did"].as_str().unwrap().to_owned(),
        handle,
        email,
        password,
        app_password: app["password"].as_str().unwrap().to_owned(),
        access_jwt: access,
    }
}

/// Writes the account's `app.bsky.actor.profile/self`.
pub async fn set_profile(pds: &str, a: &TestAccount, display_name: &str) {
    xrpc_post(
        pds,
        "com.atproto.repo.putRecord",
        json!({"repo": a.did, "collection": "app.bsky.actor.profile", "rkey": "self",
               "record": {"$type": "app.bsky.actor.profile", "displayName": display_name}}),
        Some(&a.access_jwt),
    )
    .await;
}

/// `GET {pds}/xrpc/{nsid}?{params}`: the status and the raw body.
pub async fn get_bytes(pds: &str, nsid: &str, params: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let mut url = url::Url::parse(&format!("{pds}/xrpc/{nsid}")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    let resp = http().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

pub async fn get_json(pds: &str, nsid: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let (status, body) = get_bytes(pds, nsid, params).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A record by its `at://` URI, as `getRecord` answers it (`uri`, `cid`, `value`).
pub async fn get_record(pds: &str, uri: &str) -> Value {
    let rest = uri.strip_prefix("at://").unwrap();
    let mut it = rest.split('/');
    let (repo, collection, rkey) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let (status, v) = get_json(
        pds,
        "com.atproto.repo.getRecord",
        &[("repo", repo), ("collection", collection), ("rkey", rkey)],
    )
    .await;
    assert_eq!(status, 200, "getRecord {uri}: {v}");
    v
}

/// Every post in the account's repository.
pub async fn list_posts(pds: &str, did: &str) -> Vec<Value> {
    let (status, v) = get_json(
        pds,
        "com.atproto.repo.listRecords",
        &[
            ("repo", did),
            ("collection", "app.bsky.feed.post"),
            ("limit", "100"),
        ],
    )
    .await;
    assert_eq!(status, 200, "listRecords: {v}");
    v["records"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 server on 127.0.0.1 (one request per connection, `Connection: close`)
// ---------------------------------------------------------------------------------------------

pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_request(sock: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    assert!(len <= 16 * 1024 * 1024, "test server: body too large");
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }
}

async fn write_response(sock: &mut TcpStream, r: &Response) {
    let mut out = format!("HTTP/1.1 {} X\r\n", r.status);
    for (k, v) in &r.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        r.body.len()
    ));
    let _ = sock.write_all(out.as_bytes()).await;
    let _ = sock.write_all(&r.body).await;
    let _ = sock.shutdown().await;
}

/// What a handler does with a request: answer it, or close the connection without a word.
pub enum Action {
    Answer(Response),
    Drop,
    /// Keep the connection open and say nothing for this long.
    Hang(Duration),
}

type Handler = Arc<
    dyn Fn(Request) -> std::pin::Pin<Box<dyn std::future::Future<Output = Action> + Send>>
        + Send
        + Sync,
>;

/// Serves `handler` on a free 127.0.0.1 port; returns the base URL.
pub async fn serve(handler: Handler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let Some(req) = read_request(&mut sock).await else {
                    return;
                };
                match handler(req).await {
                    Action::Answer(r) => write_response(&mut sock, &r).await,
                    Action::Drop => drop(sock),
                    Action::Hang(d) => {
                        tokio::time::sleep(d).await;
                        drop(sock)
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// Fixed answers by path (`GET` only; anything else is 404).
pub async fn serve_static(routes: Vec<(&'static str, Response)>) -> String {
    let routes: Arc<Vec<(&'static str, Response)>> = Arc::new(routes);
    serve(Arc::new(move |req: Request| {
        let routes = routes.clone();
        Box::pin(async move {
            let path = req.target.split('?').next().unwrap_or("").to_owned();
            match routes.iter().find(|(p, _)| *p == path) {
                Some((_, r)) => Action::Answer(Response {
                    status: r.status,
                    headers: r.headers.clone(),
                    body: r.body.clone(),
                }),
                None => Action::Answer(Response::new(404, "text/plain", "not found")),
            }
        })
    }))
    .await
}

/// A proxy to the PDS that forwards every request and can lose answers: each entry of
/// [`Proxy::lose`] names a path fragment; the next request whose path has it reaches the PDS,
/// and then its answer is dropped (the connection closes without a word).
#[derive(Clone)]
pub struct Proxy {
    pub url: String,
    lose: Arc<Mutex<VecDeque<String>>>,
    /// The path of every request seen, in order.
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub async fn start(target: &str) -> Self {
        let lose: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let target = target.to_owned();
        let (lose2, seen2) = (lose.clone(), seen.clone());
        let url = serve(Arc::new(move |req: Request| {
            let (lose, seen, target) = (lose2.clone(), seen2.clone(), target.clone());
            Box::pin(async move {
                let path = req.target.split('?').next().unwrap_or("").to_owned();
                seen.lock().unwrap().push(path.clone());
                let drop_answer = {
                    let mut q = lose.lock().unwrap();
                    let hit = q.front().is_some_and(|f| path.contains(f.as_str()));
                    if hit {
                        q.pop_front();
                    }
                    hit
                };
                let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
                let mut fwd = http().request(method, format!("{target}{}", req.target));
                for name in ["authorization", "content-type"] {
                    if let Some(v) = req.header(name) {
                        fwd = fwd.header(name, v);
                    }
                }
                let resp = match fwd.body(req.body).send().await {
                    Ok(r) => r,
                    Err(_) => {
                        return Action::Answer(Response::new(502, "text/plain", "bad gateway"));
                    }
                };
                let status = resp.status().as_u16();
                let mut headers = Vec::new();
                for name in ["content-type", "ratelimit-reset", "retry-after"] {
                    if let Some(v) = resp.headers().get(name).and_then(|v| v.to_str().ok()) {
                        headers.push((name.to_owned(), v.to_owned()));
                    }
                }
                let body = resp.bytes().await.unwrap_or_default().to_vec();
                if drop_answer {
                    return Action::Drop;
                }
                Action::Answer(Response {
                    status,
                    headers,
                    body,
                })
            })
        }))
        .await;
        Self { url, lose, seen }
    }

    /// Loses the answers of the next requests whose paths contain these, in this order.
    pub fn lose(&self, paths: &[&str]) {
        self.lose
            .lock()
            .unwrap()
            .extend(paths.iter().map(|p| (*p).to_owned()));
    }

    pub fn count(&self, fragment: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.contains(fragment))
            .count()
    }
}

// ---------------------------------------------------------------------------------------------
// A real PNG (stored deflate blocks; valid for any decoder)
// ---------------------------------------------------------------------------------------------

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut c = kind.to_vec();
    c.extend_from_slice(data);
    out.extend_from_slice(&c);
    out.extend_from_slice(&crc32(&c).to_be_bytes());
}

/// An RGB PNG of `w`×`h` pixels with a gradient.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0); // filter: none
        for x in 0..w {
            raw.extend_from_slice(&[(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 128]);
        }
    }
    // zlib: header, stored blocks of at most 65535 bytes, Adler-32.
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        let len = b.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for x in &raw {
        a = (a + u32::from(*x)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}
