//! A stateful fake of the Mastodon API on 127.0.0.1, for what mastodon-mock does not do: a
//! strict token endpoint (client secret, single-use codes, PKCE S256), media that stays in
//! processing (`202`, then `206` until ready), and scripted failures (any status with a
//! Mastodon error body `{"error": "…"}` and headers, a slow answer, an answer lost after the
//! status landed, an oversized body), and trending tags as an instance lists them
//! (`GET /api/v1/trends/tags`: public, `limit` default 10 and at most 20, `offset`; Tag entities
//! with a 7-day `history` of strings, newest day first). Shapes follow docs.joinmastodon.org.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use sha2::Digest;

/// A scripted answer for matching requests, `times` times.
#[derive(Clone)]
pub struct Fault {
    pub method: &'static str,
    pub path: String,
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    /// Wait this long before answering (the request is not handled).
    pub delay: Duration,
    /// Handle the request, then wait this long before answering (the answer is lost to a
    /// client with a shorter timeout, but the work is done).
    pub delay_after: Duration,
    pub times: u32,
}

impl Fault {
    pub fn status(method: &'static str, path: &str, status: u16, error: &str) -> Self {
        Self {
            method,
            path: path.into(),
            status,
            body: json!({ "error": error }).to_string(),
            headers: vec![],
            delay: Duration::ZERO,
            delay_after: Duration::ZERO,
            times: 1,
        }
    }
}

#[derive(Default)]
pub struct Inner {
    pub apps: HashMap<String, (String, String)>, // client_id -> (secret, redirect_uri)
    pub codes: HashMap<String, (String, Option<String>)>, // code -> (client_id, challenge)
    pub tokens: HashMap<String, String>,         // token -> client_id
    pub statuses: Vec<Value>,
    pub sources: HashMap<String, String>,
    pub idem: HashMap<String, String>,
    /// media id -> (polls still answering "processing"; None: never ready, description)
    pub media: HashMap<String, (Option<u32>, Option<String>)>,
    /// Polls answered "processing" for the next upload (None: forever).
    pub next_media_polls: Option<Option<u32>>,
    pub media_polls: u32,
    pub instance_hits: u32,
    pub instance: Value,
    /// The instance's trending tags, hottest first, as `/api/v1/trends/tags` serves them.
    pub trends: Vec<Value>,
    /// The query string of every trends request, and whether it carried a token.
    pub trends_asked: Vec<(String, bool)>,
    pub faults: Vec<Fault>,
    pub requests: Vec<(String, String, HeaderMap)>,
    next_id: u64,
}

#[derive(Clone, Default)]
pub struct Fake(pub Arc<Mutex<Inner>>);

pub const ACCOUNT_ID: &str = "109";

impl Fake {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap()
    }

    pub fn fault(&self, f: Fault) {
        self.lock().faults.push(f);
    }

    /// A token accepted for the fake's one account.
    pub fn token(&self) -> String {
        let t = "tok-valid".to_owned();
        self.lock().tokens.insert(t.clone(), "cid-preset".into());
        t
    }

    fn id(&self) -> String {
        let mut i = self.lock();
        i.next_id += 1;
        format!("{}", 110_000 + i.next_id)
    }

    pub async fn start() -> (Self, String) {
        let fake = Self::default();
        fake.lock().instance = json!({
            "domain": "fake.example",
            "configuration": {
                "statuses": {"max_characters": 777, "max_media_attachments": 2,
                             "characters_reserved_per_url": 23},
                "media_attachments": {"supported_mime_types": ["image/png", "video/mp4"],
                                      "image_size_limit": 1000, "video_size_limit": 2000,
                                      "image_matrix_limit": 1_000_000}
            }
        });
        let app = Router::new()
            .route("/api/v2/instance", get(instance))
            .route("/api/v1/apps", post(apps))
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/token", post(token))
            .route("/oauth/revoke", post(revoke))
            .route("/api/v1/accounts/verify_credentials", get(verify))
            .route("/api/v2/media", post(upload))
            .route("/api/v1/media/{id}", get(media))
            .route("/api/v1/statuses", post(create_status))
            .route("/api/v1/statuses/{id}", get(status))
            .route("/api/v1/statuses/{id}/source", get(source))
            .route("/api/v1/accounts/{id}/statuses", get(account_statuses))
            .route("/api/v1/trends/tags", get(trends_tags))
            .layer(axum::middleware::from_fn_with_state(fake.clone(), faults))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (fake, format!("http://{addr}"))
    }
}

fn error(status: u16, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

async fn faults(State(fake): State<Fake>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let fault = {
        let mut i = fake.lock();
        i.requests
            .push((method.clone(), path.clone(), req.headers().clone()));
        let found = i
            .faults
            .iter()
            .position(|f| f.method == method && f.path == path && f.times > 0);
        found.map(|n| {
            i.faults[n].times -= 1;
            i.faults[n].clone()
        })
    };
    let Some(f) = fault else {
        return next.run(req).await;
    };
    if !f.delay_after.is_zero() {
        let resp = next.run(req).await;
        tokio::time::sleep(f.delay_after).await;
        return resp;
    }
    tokio::time::sleep(f.delay).await;
    let mut resp = Response::builder().status(f.status);
    resp = resp.header("content-type", "application/json");
    for (k, v) in &f.headers {
        resp = resp.header(*k, v);
    }
    resp.body(axum::body::Body::from(f.body)).unwrap()
}

/// The refusal of a request without a valid token, if it has none.
fn bearer(fake: &Fake, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if fake.lock().tokens.contains_key(token) {
        None
    } else {
        Some(error(401, "The access token is invalid"))
    }
}

async fn instance(State(fake): State<Fake>) -> Response {
    let mut i = fake.lock();
    i.instance_hits += 1;
    axum::Json(i.instance.clone()).into_response()
}

async fn apps(State(fake): State<Fake>, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    if form.get("client_name").is_none_or(|n| n.is_empty()) {
        return error(422, "Validation failed: Application name can't be blank");
    }
    if form.get("scopes").map(String::as_str) != Some("read write") {
        return error(422, "Validation failed: Scopes are not what crier asks for");
    }
    let id = format!("cid-{}", fake.id());
    let secret = format!("secret-{}", fake.id());
    let redirect = form.get("redirect_uris").cloned().unwrap_or_default();
    fake.lock()
        .apps
        .insert(id.clone(), (secret.clone(), redirect.clone()));
    axum::Json(
        json!({"id": "1", "name": form["client_name"], "redirect_uri": redirect,
                      "client_id": id, "client_secret": secret}),
    )
    .into_response()
}

/// Approves at once (no form) and redirects with a single-use code bound to the challenge.
async fn authorize(State(fake): State<Fake>, Query(q): Query<HashMap<String, String>>) -> Response {
    let client = q.get("client_id").cloned().unwrap_or_default();
    let Some((_, redirect)) = fake.lock().apps.get(&client).cloned() else {
        return error(401, "invalid_client");
    };
    if q.get("redirect_uri") != Some(&redirect)
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return error(400, "invalid_request");
    }
    let code = format!("code-{}", fake.id());
    fake.lock()
        .codes
        .insert(code.clone(), (client, q.get("code_challenge").cloned()));
    let state = q.get("state").cloned().unwrap_or_default();
    let mut to = url::Url::parse(&redirect).unwrap();
    to.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    Response::builder()
        .status(302)
        .header("location", to.as_str())
        .body(axum::body::Body::empty())
        .unwrap()
}

async fn token(State(fake): State<Fake>, body: String) -> Response {
    let f: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let mut i = fake.lock();
    let Some((secret, redirect)) = i.apps.get(&get("client_id")).cloned() else {
        return oauth_error(401, "invalid_client", "Client authentication failed.");
    };
    if secret != get("client_secret") {
        return oauth_error(
            401,
            "invalid_client",
            "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
        );
    }
    match get("grant_type").as_str() {
        "authorization_code" => {
            let Some((client, challenge)) = i.codes.remove(&get("code")) else {
                return oauth_error(
                    400,
                    "invalid_grant",
                    "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
                );
            };
            let verifier = get("code_verifier");
            let derived = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()));
            if client != get("client_id")
                || redirect != get("redirect_uri")
                || challenge != Some(derived)
            {
                return oauth_error(
                    400,
                    "invalid_grant",
                    "The provided authorization grant is invalid (PKCE verification failed).",
                );
            }
            let token = format!("tok-{}", i.tokens.len() + 1000);
            i.tokens.insert(token.clone(), client);
            axum::Json(
                json!({"access_token": token, "token_type": "Bearer", "scope": "read write",
                              "created_at": 1, "expires_in": 3600, "refresh_token": "refresh-1"}),
            )
            .into_response()
        }
        "refresh_token" => {
            if get("refresh_token") != "refresh-1" {
                return oauth_error(400, "invalid_grant", "The refresh token is invalid.");
            }
            i.tokens.insert("tok-refreshed".into(), get("client_id"));
            axum::Json(
                json!({"access_token": "tok-refreshed", "token_type": "Bearer",
                              "scope": "read write", "created_at": 1, "expires_in": 7200}),
            )
            .into_response()
        }
        _ => oauth_error(
            400,
            "unsupported_grant_type",
            "The authorization grant type is not supported.",
        ),
    }
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn revoke(State(fake): State<Fake>, body: String) -> Response {
    let f: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    if let Some(t) = f.get("token") {
        fake.lock().tokens.remove(t);
    }
    axum::Json(json!({})).into_response()
}

fn account_json(base: &str) -> Value {
    json!({"id": ACCOUNT_ID, "username": "hopper", "acct": "hopper", "display_name": "Grace Hopper",
           "avatar": format!("{base}/avatars/hopper.png"), "url": format!("{base}/@hopper")})
}

async fn verify(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    if let Some(e) = bearer(&fake, &headers) {
        return e;
    }
    axum::Json(account_json("https://fake.example")).into_response()
}

async fn upload(State(fake): State<Fake>, headers: HeaderMap, mut mp: Multipart) -> Response {
    if let Some(e) = bearer(&fake, &headers) {
        return e;
    }
    let (mut file, mut description) = (None, None);
    while let Ok(Some(field)) = mp.next_field().await {
        match field.name() {
            Some("file") => {
                let ty = field.content_type().unwrap_or("").to_owned();
                file = Some((ty, field.bytes().await.unwrap_or_default()));
            }
            Some("description") => description = field.text().await.ok(),
            _ => {}
        }
    }
    let Some((ty, bytes)) = file else {
        return error(422, "Validation failed: File can't be blank");
    };
    if ty != "image/png" {
        return error(
            422,
            &format!("Validation failed: File content type {ty} is not supported"),
        );
    }
    if bytes.is_empty() {
        return error(422, "Validation failed: File is empty");
    }
    let id = fake.id();
    let polls = fake.lock().next_media_polls.take().unwrap_or(Some(0));
    fake.lock()
        .media
        .insert(id.clone(), (polls, description.clone()));
    if polls == Some(0) {
        axum::Json(
            json!({"id": id, "type": "image", "url": format!("https://fake.example/m/{id}.png"),
                          "description": description}),
        )
        .into_response()
    } else {
        (
            StatusCode::ACCEPTED,
            axum::Json(json!({"id": id, "type": "image", "url": null,
                                                  "description": description})),
        )
            .into_response()
    }
}

async fn media(State(fake): State<Fake>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(e) = bearer(&fake, &headers) {
        return e;
    }
    let mut i = fake.lock();
    i.media_polls += 1;
    let Some((polls, description)) = i.media.get_mut(&id) else {
        return error(404, "Record not found");
    };
    let description = description.clone();
    match polls {
        Some(0) => axum::Json(json!({"id": id, "type": "image",
                                     "url": format!("https://fake.example/m/{id}.png"),
                                     "description": description}))
        .into_response(),
        Some(n) => {
            *n -= 1;
            (
                StatusCode::PARTIAL_CONTENT,
                axum::Json(json!({"id": id, "url": null})),
            )
                .into_response()
        }
        None => (
            StatusCode::PARTIAL_CONTENT,
            axum::Json(json!({"id": id, "url": null})),
        )
            .into_response(),
    }
}

async fn create_status(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
    if let Some(e) = bearer(&fake, &headers) {
        return e;
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let one = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let media_ids: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n == "media_ids[]")
        .map(|(_, v)| v.clone())
        .collect();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(k) = &key
        && let Some(id) = fake.lock().idem.get(k).cloned()
    {
        let i = fake.lock();
        let st = i.statuses.iter().find(|s| s["id"] == id.as_str()).cloned();
        return axum::Json(st.unwrap()).into_response();
    }
    let text = one("status").unwrap_or_default();
    if text.trim().is_empty() && media_ids.is_empty() {
        return error(422, "Validation failed: Text can't be blank");
    }
    for m in &media_ids {
        match fake.lock().media.get(m) {
            Some((Some(0), _)) => {}
            Some(_) => {
                return error(
                    422,
                    "Cannot attach files that have not finished processing. Try again in a moment!",
                );
            }
            None => return error(422, "Validation failed: Media attachments is invalid"),
        }
    }
    let reply = one("in_reply_to_id");
    if let Some(r) = &reply
        && !fake.lock().statuses.iter().any(|s| s["id"] == r.as_str())
    {
        return error(404, "Record not found");
    }
    let id = fake.id();
    let now = jiff::Timestamp::now().to_string();
    let st = json!({
        "id": id, "created_at": now, "in_reply_to_id": reply,
        "url": format!("https://fake.example/@hopper/{id}"), "uri": format!("https://fake.example/users/hopper/statuses/{id}"),
        "content": format!("<p>{}</p>", text), "visibility": one("visibility").unwrap_or("public".into()),
        "spoiler_text": one("spoiler_text").unwrap_or_default(), "language": one("language"),
        "media_attachments": media_ids.iter().map(|m| json!({"id": m})).collect::<Vec<_>>(),
        "favourites_count": 3, "reblogs_count": 2, "replies_count": 1,
        "account": account_json("https://fake.example"),
    });
    let mut i = fake.lock();
    i.statuses.push(st.clone());
    i.sources.insert(id.clone(), text);
    if let Some(k) = key {
        i.idem.insert(k, id);
    }
    axum::Json(st).into_response()
}

async fn status(State(fake): State<Fake>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(e) = bearer(&fake, &headers) {
        return e;
    }
    let i = fake.lock();
    match i.statuses.iter().find(|s| s["id"] == id.as_str()) {
        Some(s) => axum::Json(s.clone()).into_response(),
        None => error(404, "Record not found"),
    }
}

async fn source(State(fake): State<Fake>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(e) = bearer(&fake, &headers) {
        return e;
    }
    let i = fake.lock();
    match i.sources.get(&id) {
        Some(t) => axum::Json(json!({"id": id, "text": t, "spoiler_text": ""})).into_response(),
        None => error(404, "Record not found"),
    }
}

/// As Mastodon answers: newest first, `limit` (default 20, at most 40) statuses older than
/// `max_id` when given.
async fn account_statuses(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(e) = bearer(&fake, &headers) {
        return e;
    }
    if id != ACCOUNT_ID {
        return error(404, "Record not found");
    }
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 40);
    let max_id = q.get("max_id").and_then(|m| m.parse::<u64>().ok());
    let i = fake.lock();
    let newest_first: Vec<Value> = i
        .statuses
        .iter()
        .rev()
        .filter(|st| {
            let id: u64 = st["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
            max_id.is_none_or(|m| id < m)
        })
        .take(limit)
        .cloned()
        .collect();
    axum::Json(newest_first).into_response()
}

/// A Tag entity with a 7-day history ending `today` (UNIX seconds of the day's start), newest
/// day first; `uses[0]` is today's.
pub fn tag(name: &str, today: u64, uses: &[u64]) -> Value {
    let history: Vec<Value> = (0..7)
        .map(|i| {
            let n = uses.get(i).copied().unwrap_or(0);
            json!({"day": (today - i as u64 * 86_400).to_string(), "uses": n.to_string(),
                   "accounts": n.min(1).to_string()})
        })
        .collect();
    json!({"id": "1", "name": name, "url": format!("https://fake.example/tags/{name}"),
           "history": history, "following": false})
}

/// Public, as documented: a token is neither needed nor refused.
async fn trends_tags(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    req: axum::http::Uri,
) -> Response {
    let mut i = fake.lock();
    i.trends_asked.push((
        req.query().unwrap_or("").to_owned(),
        headers.contains_key("authorization"),
    ));
    let number = |k: &str, default: usize| -> Option<usize> {
        match q.get(k) {
            None => Some(default),
            Some(v) => v.parse().ok(),
        }
    };
    let (Some(limit), Some(offset)) = (number("limit", 10), number("offset", 0)) else {
        return error(400, "limit and offset must be integers");
    };
    let page: Vec<Value> = i
        .trends
        .iter()
        .skip(offset)
        .take(limit.clamp(1, 20))
        .cloned()
        .collect();
    axum::Json(page).into_response()
}
