//! A stateful fake of Facebook's Graph API for Pages (`/v21.0`), written from Meta's reference
//! (developers.facebook.com):
//! - Facebook Login, manual flow (`/dialog/oauth`, `/oauth/access_token`):
//!   /docs/facebook-login/guides/advanced/manual-flow
//! - Long-lived user tokens (`grant_type=fb_exchange_token`, about 60 days) and Page tokens
//!   that do not expire when listed with one: /docs/facebook-login/guides/access-tokens/get-long-lived
//! - `/me/accounts` (the Pages a person manages, each with its token, paginated):
//!   /docs/pages-api/overview, /docs/graph-api/reference/user/accounts
//! - `/{page-id}/feed` (`message`, `link`, `attached_media`): /docs/graph-api/reference/page/feed
//! - `/{page-id}/photos` (multipart `source` or `url`, `caption`, `published`; jpeg, bmp, png,
//!   gif, tiff up to 4 MB): /docs/graph-api/reference/page/photos
//! - `/{page-id}/videos` (multipart `source`, `description`; non-resumable to 1 GB):
//!   /docs/graph-api/reference/page/videos, /docs/video-api/guides/publishing
//! - `/{page-id}/published_posts` (`since`, `limit`, cursor paging): /docs/graph-api/reference/page/published_posts
//! - A post's `reactions` / `comments` summaries and `shares`: /docs/graph-api/reference/post
//! - A Page's fields (`id`, `name`, `username`, `link`, `category`, `followers_count`,
//!   `fan_count`; a field a Page does not have is code 100): /docs/graph-api/reference/page
//! - Error objects and codes (1, 2, 4, 32, 100, 190, 200, 368, 506): /docs/graph-api/guides/error-handling
//! - Usage headers (`X-App-Usage`, `X-Business-Use-Case-Usage` with
//!   `estimated_time_to_regain_access` in minutes): /docs/graph-api/overview/rate-limiting
//!
//! What it enforces: the app secret at both token calls; a code for a short-lived user token
//! (an hour), which `fb_exchange_token` turns into a long-lived one; Page tokens bound to a
//! Page and its user, which expire with a short-lived user token and never with a long-lived
//! one; only a Page's own token posts to it (else code 200); messages up to 63,206 characters;
//! `link` an http(s) URL; `attached_media` ids that exist, are this Page's, unpublished and not
//! yet used (at most 10); photo types sniffed from the bytes and at most 4 MB; videos an MP4 or
//! QuickTime container; the same text twice in a row refused as a duplicate (506); a user who
//! removed the app has no working token (190). Every answer carries `X-App-Usage`; at 100 % of
//! the quota ([`FacebookFake::set_usage`]) every call is throttled (code 4). A test may make
//! Graph slow to make posts ([`FacebookFake::set_creation_lag`]: not listed until then) and
//! fail create calls after doing their work ([`FacebookFake::fail_after_create`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use crier_core::Clock;
use crier_networks::{Network, OAuthClient};
use serde_json::{Value, json};

use crate::kit::{self, Fault, Faults, OAuthServer};
use crate::{FakeNetwork, FakePost, Features};

/// The Graph version the fake serves.
pub const VERSION: &str = "v21.0";
/// The app crier is configured with.
pub const APP_ID: &str = "crier-client";
pub const APP_SECRET: &str = "crier-secret";
/// The Page the default user's first account is.
pub const PAGE: &str = "1001";

const SHORT_TTL: i64 = 3600;
const LONG_TTL: i64 = 60 * 24 * 3600;
const MAX_MESSAGE: usize = 63_206;
const MAX_ATTACHED: usize = 10;
const MAX_PHOTO: usize = 4 * 1024 * 1024;
const MAX_VIDEO: usize = 1024 * 1024 * 1024;
/// How much of a request body the fake reads (photos to 4 MB must be refusable).
const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// A Page the fake knows.
#[derive(Debug, Clone)]
pub struct FakePage {
    pub id: String,
    pub name: String,
    pub username: Option<String>,
}

#[derive(Debug, Clone)]
struct PageToken {
    page: String,
    user: String,
    expires_at: Option<i64>,
}

#[derive(Debug, Clone)]
struct Photo {
    page: String,
    content_type: String,
    published: bool,
    attached: bool,
}

#[derive(Debug, Clone)]
struct Post {
    id: String,
    page: String,
    message: String,
    link: Option<String>,
    media: Vec<String>,
    created: i64,
    /// When Graph has finished making it (epoch s): from then on it is listed, and is the
    /// Page's latest post for the duplicate check ([`FacebookFake::set_creation_lag`]).
    shown: i64,
    reactions: u64,
    comments: u64,
    shares: u64,
}

struct Inner {
    clock: Arc<dyn Clock>,
    /// Each user's Pages, in the order `/me/accounts` lists them.
    pages: HashMap<String, Vec<FakePage>>,
    /// Long-lived user tokens: user, expiry (s).
    long: HashMap<String, (String, i64)>,
    page_tokens: HashMap<String, PageToken>,
    /// (user token, page) → the Page token listed for it.
    issued: HashMap<(String, String), String>,
    photos: HashMap<String, Photo>,
    posts: Vec<Post>,
    next_id: u64,
    usage: u32,
    /// Every Page's `followers_count`; `None`: Pages that answer only `fan_count`.
    followers: Option<u64>,
    /// Every Page's `fan_count` (its likes).
    fans: u64,
    /// How long (s) a post takes to be made once its create call is accepted.
    lag: i64,
    /// The next create calls accepted and then answered 500 (code 2).
    fail_created: u32,
}

impl Inner {
    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// A post the create call made, shown after the creation lag; the answer instead of the
    /// post's when the call is to fail after the work ([`FacebookFake::fail_after_create`]).
    fn made(&mut self, mut post: Post) -> Option<Response> {
        post.shown = post.created + self.lag;
        self.posts.push(post);
        if self.fail_created == 0 {
            return None;
        }
        self.fail_created -= 1;
        Some(graph_error(
            500,
            2,
            None,
            "An unexpected error has occurred. Please retry your request later.",
        ))
    }
}

/// Who a token acts as.
#[derive(Debug, Clone)]
enum Actor {
    User {
        user: String,
        token: String,
        long: bool,
    },
    Page {
        page: String,
    },
}

#[derive(Clone)]
struct AppState {
    inner: Arc<Mutex<Inner>>,
    oauth: OAuthServer,
    base: Arc<Mutex<String>>,
}

/// The fake Graph API (see the module documentation).
pub struct FacebookFake {
    base: url::Url,
    faults: Faults,
    state: AppState,
}

/// A Graph error answer: `{"error": {message, type, code, error_subcode, fbtrace_id}}`.
fn graph_error(status: u16, code: i64, subcode: Option<i64>, message: &str) -> Response {
    let kind = if subcode == Some(33) {
        "GraphMethodException"
    } else {
        "OAuthException"
    };
    let mut error = json!({
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": kit::random(9),
    });
    if let Some(s) = subcode {
        error["error_subcode"] = json!(s);
    }
    if matches!(code, 1 | 2 | 4 | 17 | 32) {
        error["is_transient"] = json!(true);
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({ "error": error })),
    )
        .into_response()
}

fn invalid(message: &str) -> Response {
    graph_error(400, 100, None, message)
}

fn bad_token() -> Response {
    graph_error(
        400,
        190,
        Some(463),
        "Error validating access token: the session is invalid or has expired.",
    )
}

fn not_found(id: &str) -> Response {
    graph_error(
        400,
        100,
        Some(33),
        &format!(
            "Unsupported request. Object with ID '{id}' does not exist, cannot be loaded due to \
             missing permissions, or does not support this operation."
        ),
    )
}

/// `created_time` as Graph writes it: `2026-12-02T09:21:07+0000`.
pub fn graph_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+0000",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn usage_headers(percent: u32, regain_minutes: u64) -> Vec<(String, String)> {
    vec![
        (
            "x-app-usage".into(),
            json!({"call_count": percent, "total_cputime": percent / 2, "total_time": percent / 2})
                .to_string(),
        ),
        (
            "x-business-use-case-usage".into(),
            json!({ PAGE: [{
                "type": "pages",
                "call_count": percent,
                "total_cputime": percent / 2,
                "total_time": percent / 2,
                "estimated_time_to_regain_access": regain_minutes,
            }]})
            .to_string(),
        ),
    ]
}

/// Every answer says how much of the quota is used; at 100 % every call is throttled.
async fn usage_layer(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let percent = s.inner.lock().expect("facebook").usage;
    let mut resp = if percent >= 100 {
        graph_error(400, 4, None, "(#4) Application request limit reached")
    } else {
        next.run(req).await
    };
    let regain = u64::from(percent >= 100);
    for (k, v) in usage_headers(percent, regain) {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

fn bearer(headers: &HeaderMap, params: &HashMap<String, String>) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| params.get("access_token").cloned())
}

impl AppState {
    fn now(&self) -> i64 {
        let i = self.inner.lock().expect("facebook");
        kit::now_secs(i.clock.as_ref())
    }

    /// Who the request's token acts as: a Page token, a long-lived or a short-lived user token.
    fn actor(
        &self,
        headers: &HeaderMap,
        params: &HashMap<String, String>,
    ) -> Result<Actor, Box<Response>> {
        let token = bearer(headers, params).ok_or_else(|| {
            Box::new(graph_error(
                400,
                2500,
                None,
                "An active access token must be used to query information about the current user.",
            ))
        })?;
        let now = self.now();
        let i = self.inner.lock().expect("facebook");
        if let Some(t) = i.page_tokens.get(&token) {
            return match t.expires_at {
                Some(at) if at <= now => Err(Box::new(bad_token())),
                _ => Ok(Actor::Page {
                    page: t.page.clone(),
                }),
            };
        }
        if let Some((user, at)) = i.long.get(&token) {
            return if *at > now {
                Ok(Actor::User {
                    user: user.clone(),
                    token,
                    long: true,
                })
            } else {
                Err(Box::new(bad_token()))
            };
        }
        drop(i);
        match self.oauth.token_info(&token) {
            Some(t) => Ok(Actor::User {
                user: t.user,
                token,
                long: false,
            }),
            None => Err(Box::new(bad_token())),
        }
    }

    /// The Page a request acts on with a token that must be that Page's.
    fn page_actor(
        &self,
        headers: &HeaderMap,
        params: &HashMap<String, String>,
        page: &str,
    ) -> Result<(), Box<Response>> {
        let exists = self
            .inner
            .lock()
            .expect("facebook")
            .pages
            .values()
            .flatten()
            .any(|p| p.id == page);
        if !exists {
            return Err(Box::new(not_found(page)));
        }
        match self.actor(headers, params)? {
            Actor::Page { page: p } if p == page => Ok(()),
            _ => Err(Box::new(graph_error(
                403,
                200,
                None,
                "(#200) If posting to a page, requires both pages_read_engagement and \
                 pages_manage_posts as an admin with sufficient administrative permission",
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------------------------

async fn dialog(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    match s.oauth.authorize(&q, "client_id") {
        Ok(url) => (StatusCode::FOUND, [("location", url.to_string())]).into_response(),
        Err(e) => graph_error(e.status, 100, None, &e.description),
    }
}

async fn access_token(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let mut params = q;
    params.extend(kit::form(&body));
    if params.get("grant_type").map(String::as_str) == Some("fb_exchange_token") {
        return exchange_long(&s, &params);
    }
    // Facebook's code exchange takes no grant_type; the kit's server wants one.
    params
        .entry("grant_type".into())
        .or_insert_with(|| "authorization_code".into());
    match s.oauth.token(&headers, &params, "client_id") {
        Ok(t) => axum::Json(json!({
            "access_token": t.access_token,
            "token_type": "bearer",
            "expires_in": t.expires_in,
        }))
        .into_response(),
        Err(e) if e.error == "invalid_client" => {
            graph_error(400, 1, None, "Error validating client secret.")
        }
        Err(e) => graph_error(
            400,
            100,
            Some(36009),
            &format!(
                "Invalid verification code format or used code: {}",
                e.description
            ),
        ),
    }
}

fn exchange_long(s: &AppState, p: &HashMap<String, String>) -> Response {
    let f = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if f("client_id") != APP_ID {
        return graph_error(
            400,
            101,
            None,
            "Error validating application. Invalid application ID.",
        );
    }
    if f("client_secret") != APP_SECRET {
        return graph_error(400, 1, None, "Error validating client secret.");
    }
    let now = s.now();
    let short = f("fb_exchange_token");
    let user = match s.oauth.token_info(short) {
        Some(t) => t.user,
        None => {
            let i = s.inner.lock().expect("facebook");
            match i.long.get(short) {
                Some((u, at)) if *at > now => u.clone(),
                _ => return bad_token(),
            }
        }
    };
    let token = kit::random(32);
    s.inner
        .lock()
        .expect("facebook")
        .long
        .insert(token.clone(), (user, now + LONG_TTL));
    axum::Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": LONG_TTL,
    }))
    .into_response()
}

async fn accounts(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (user, token, long) = match s.actor(&headers, &q) {
        Ok(Actor::User { user, token, long }) => (user, token, long),
        Ok(Actor::Page { .. }) => {
            return graph_error(
                400,
                100,
                None,
                "(#100) Tried accessing nonexisting field (accounts) on node type (Page)",
            );
        }
        Err(r) => return *r,
    };
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(25)
        .clamp(1, 100);
    let after: usize = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let now = s.now();
    let user_expiry = if long {
        None
    } else {
        s.oauth.token_info(&token).map(|t| t.expires_at)
    };
    let base = s.base.lock().expect("base").clone();
    let mut i = s.inner.lock().expect("facebook");
    let pages = i.pages.get(&user).cloned().unwrap_or_default();
    let mut data = Vec::new();
    for p in pages.iter().skip(after).take(limit) {
        let key = (token.clone(), p.id.clone());
        let page_token = match i.issued.get(&key) {
            Some(t) => t.clone(),
            None => {
                let t = kit::random(32);
                i.issued.insert(key, t.clone());
                i.page_tokens.insert(
                    t.clone(),
                    PageToken {
                        page: p.id.clone(),
                        user: user.clone(),
                        // With a long-lived user token, a Page token never expires.
                        expires_at: user_expiry.or((!long).then_some(now + SHORT_TTL)),
                    },
                );
                t
            }
        };
        let mut entry = json!({
            "id": p.id,
            "name": p.name,
            "access_token": page_token,
            "category": "Software",
            "tasks": ["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT", "MANAGE"],
            "link": format!("https://www.facebook.com/{}", p.id),
            "picture": {"data": {"url": format!("https://scontent.example/{}.jpg", p.id), "is_silhouette": false}},
        });
        if let Some(u) = &p.username {
            entry["username"] = json!(u);
        }
        data.push(entry);
    }
    let end = after + data.len();
    let mut paging = json!({"cursors": {"before": after.to_string(), "after": end.to_string()}});
    if end < pages.len() {
        paging["next"] = json!(format!(
            "{base}{VERSION}/me/accounts?limit={limit}&after={end}"
        ));
    }
    axum::Json(json!({ "data": data, "paging": paging })).into_response()
}

async fn me(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match s.actor(&headers, &q) {
        Ok(Actor::Page { page }) => axum::Json(json!({ "id": page })).into_response(),
        Ok(Actor::User { user, .. }) => axum::Json(json!({ "id": user })).into_response(),
        Err(r) => *r,
    }
}

/// `DELETE /me/permissions` with a user token: the user removes the app.
async fn permissions(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match s.actor(&headers, &q) {
        Ok(Actor::User { user, .. }) => {
            revoke_user(&s, &user);
            axum::Json(json!({ "success": true })).into_response()
        }
        Ok(Actor::Page { .. }) => graph_error(
            400,
            100,
            None,
            "(#100) Tried accessing nonexisting field (permissions) on node type (Page)",
        ),
        Err(r) => *r,
    }
}

fn revoke_user(s: &AppState, user: &str) {
    s.oauth.revoke_user(user);
    let mut i = s.inner.lock().expect("facebook");
    i.long.retain(|_, (u, _)| u != user);
    i.page_tokens.retain(|_, t| t.user != user);
    let tokens: std::collections::HashSet<String> = i.page_tokens.keys().cloned().collect();
    i.issued.retain(|_, t| tokens.contains(t));
}

// ---------------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------------

async fn edge_post(
    State(s): State<AppState>,
    Path((page, edge)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (mut params, files) = if content_type.starts_with("multipart/form-data") {
        match multipart(&content_type, &body) {
            Some(parts) => split_parts(parts),
            None => return invalid("(#100) The multipart body could not be read"),
        }
    } else {
        (kit::form(&body), HashMap::new())
    };
    for (k, v) in q {
        params.entry(k).or_insert(v);
    }
    if let Err(r) = s.page_actor(&headers, &params, &page) {
        return *r;
    }
    match edge.as_str() {
        "feed" => feed(&s, &page, &params),
        "photos" => photos(&s, &page, &params, files.get("source")).await,
        "videos" => videos(&s, &page, &params, files.get("source")),
        _ => graph_error(400, 100, None, &format!("(#100) Unknown edge {edge}")),
    }
}

fn feed(s: &AppState, page: &str, p: &HashMap<String, String>) -> Response {
    let message = p.get("message").cloned().unwrap_or_default();
    if message.chars().count() > MAX_MESSAGE {
        return invalid("(#100) The message is too long");
    }
    let link = match p.get("link").filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => match url::Url::parse(l) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && l.len() <= 2048 => Some(l.clone()),
            _ => return invalid("(#100) The link is not a valid URL"),
        },
    };
    let mut attached = Vec::new();
    for n in 0.. {
        let Some(v) = p.get(&format!("attached_media[{n}]")) else {
            break;
        };
        let id = serde_json::from_str::<Value>(v).ok().and_then(|v| {
            v.get("media_fbid")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        match id {
            Some(id) => attached.push(id),
            None => {
                return invalid(&format!(
                    "(#100) param attached_media[{n}] must be an object with media_fbid"
                ));
            }
        }
    }
    if attached.len() > MAX_ATTACHED {
        return invalid("(#100) Too many attached_media");
    }
    if message.trim().is_empty() && link.is_none() && attached.is_empty() {
        return invalid("(#100) Missing message or attachment");
    }
    let now = s.now();
    let mut i = s.inner.lock().expect("facebook");
    let mut media = Vec::new();
    for (n, id) in attached.iter().enumerate() {
        match i.photos.get(id) {
            Some(ph) if ph.page == page && !ph.published && !ph.attached => {
                media.push(ph.content_type.clone());
            }
            _ => {
                return invalid(&format!(
                    "(#100) attached_media[{n}]: {id} is not an unpublished photo of this Page"
                ));
            }
        }
    }
    if media.is_empty() {
        let last = i
            .posts
            .iter()
            .rev()
            .find(|x| x.page == page && x.shown <= now);
        if last.is_some_and(|x| x.media.is_empty() && x.message == message && x.link == link) {
            return graph_error(400, 506, None, "Duplicate status message");
        }
    }
    for id in &attached {
        if let Some(ph) = i.photos.get_mut(id) {
            ph.attached = true;
        }
    }
    let id = format!("{page}_{}", i.id());
    let post = Post {
        id: id.clone(),
        page: page.to_owned(),
        message,
        link,
        media,
        created: now,
        shown: now,
        reactions: 0,
        comments: 0,
        shares: 0,
    };
    if let Some(failed) = i.made(post) {
        return failed;
    }
    axum::Json(json!({ "id": id })).into_response()
}

fn sniff_image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if b.starts_with(b"BM") {
        Some("image/bmp")
    } else if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        Some("image/tiff")
    } else {
        None
    }
}

/// The bytes of a photo given by `url` (Graph fetches it).
async fn fetch(url: &str) -> Option<Vec<u8>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let resp = http.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let b = resp.bytes().await.ok()?;
    Some(b.to_vec())
}

async fn photos(
    s: &AppState,
    page: &str,
    p: &HashMap<String, String>,
    source: Option<&FilePart>,
) -> Response {
    let bytes = match (source, p.get("url")) {
        (Some(f), _) => f.data.clone(),
        (None, Some(url)) => match fetch(url).await {
            Some(b) => b,
            None => return graph_error(400, 324, None, "(#324) Missing or invalid image file"),
        },
        (None, None) => return graph_error(400, 324, None, "(#324) Requires upload file"),
    };
    if bytes.len() > MAX_PHOTO {
        return invalid("(#100) The photo is larger than 4 MB");
    }
    let Some(ct) = sniff_image(&bytes) else {
        return graph_error(400, 324, None, "(#324) Missing or invalid image file");
    };
    let caption = p.get("caption").cloned().unwrap_or_default();
    if caption.chars().count() > MAX_MESSAGE {
        return invalid("(#100) The caption is too long");
    }
    let published = p.get("published").is_none_or(|v| v != "false");
    let now = s.now();
    let mut i = s.inner.lock().expect("facebook");
    let photo = i.id();
    i.photos.insert(
        photo.clone(),
        Photo {
            page: page.to_owned(),
            content_type: ct.to_owned(),
            published,
            attached: false,
        },
    );
    if !published {
        return axum::Json(json!({ "id": photo })).into_response();
    }
    let post = format!("{page}_{}", i.id());
    let made = Post {
        id: post.clone(),
        page: page.to_owned(),
        message: caption,
        link: None,
        media: vec![ct.to_owned()],
        created: now,
        shown: now,
        reactions: 0,
        comments: 0,
        shares: 0,
    };
    if let Some(failed) = i.made(made) {
        return failed;
    }
    axum::Json(json!({ "id": photo, "post_id": post })).into_response()
}

fn videos(
    s: &AppState,
    page: &str,
    p: &HashMap<String, String>,
    source: Option<&FilePart>,
) -> Response {
    let Some(f) = source else {
        return graph_error(400, 100, None, "(#100) No file was uploaded (source)");
    };
    if f.data.len() > MAX_VIDEO {
        return graph_error(400, 382, None, "(#382) The video file is too large");
    }
    let ct = match f.data.get(4..12) {
        Some(b) if b.starts_with(b"ftyp") && &b[4..8] == b"qt  " => "video/quicktime",
        Some(b) if b.starts_with(b"ftyp") => "video/mp4",
        _ => {
            return graph_error(
                400,
                352,
                None,
                "(#352) Sorry, the video file you selected is in a format that we don't support.",
            );
        }
    };
    let description = p.get("description").cloned().unwrap_or_default();
    if description.chars().count() > MAX_MESSAGE {
        return invalid("(#100) The description is too long");
    }
    let now = s.now();
    let mut i = s.inner.lock().expect("facebook");
    let video = i.id();
    let post = Post {
        id: format!("{page}_{video}"),
        page: page.to_owned(),
        message: description,
        link: None,
        media: vec![ct.to_owned()],
        created: now,
        shown: now,
        reactions: 0,
        comments: 0,
        shares: 0,
    };
    if let Some(failed) = i.made(post) {
        return failed;
    }
    axum::Json(json!({ "id": video })).into_response()
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

async fn edge_get(
    State(s): State<AppState>,
    Path((page, edge)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !matches!(edge.as_str(), "published_posts" | "feed") {
        return graph_error(400, 100, None, &format!("(#100) Unknown edge {edge}"));
    }
    if let Err(r) = s.page_actor(&headers, &q, &page) {
        return *r;
    }
    let since: i64 = q.get("since").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(25)
        .clamp(1, 100);
    let after: usize = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let base = s.base.lock().expect("base").clone();
    let now = s.now();
    let i = s.inner.lock().expect("facebook");
    // A post Graph is still making is not listed yet.
    let all: Vec<&Post> = i
        .posts
        .iter()
        .rev()
        .filter(|p| p.page == page && p.created >= since && p.shown <= now)
        .collect();
    let data: Vec<Value> = all
        .iter()
        .skip(after)
        .take(limit)
        .map(|p| {
            let mut v = json!({"id": p.id, "created_time": graph_time(p.created)});
            if !p.message.is_empty() {
                v["message"] = json!(p.message);
            }
            v
        })
        .collect();
    let end = after + data.len();
    let mut paging = json!({"cursors": {"before": after.to_string(), "after": end.to_string()}});
    if end < all.len() {
        let fields = q.get("fields").cloned().unwrap_or_default();
        let mut next = url::Url::parse(&format!("{base}{VERSION}/{page}/{edge}")).expect("a URL");
        next.query_pairs_mut()
            .append_pair("fields", &fields)
            .append_pair("since", &since.to_string())
            .append_pair("limit", &limit.to_string())
            .append_pair("after", &end.to_string());
        paging["next"] = json!(next.to_string());
    }
    axum::Json(json!({ "data": data, "paging": paging })).into_response()
}

async fn node(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let actor = match s.actor(&headers, &q) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let i = s.inner.lock().expect("facebook");
    if let Some(page) = i.pages.values().flatten().find(|p| p.id == id) {
        return page_node(&i, page, q.get("fields").map(String::as_str));
    }
    let Some(p) = i.posts.iter().find(|p| p.id == id) else {
        return not_found(&id);
    };
    if let Actor::Page { page } = &actor
        && page != &p.page
    {
        return not_found(&id);
    }
    let mut v = json!({
        "id": p.id,
        "created_time": graph_time(p.created),
        "reactions": {"data": [], "summary": {"total_count": p.reactions, "viewer_reaction": "NONE"}},
        "comments": {"data": [], "summary": {"order": "ranked", "total_count": p.comments, "can_comment": true}},
    });
    if !p.message.is_empty() {
        v["message"] = json!(p.message);
    }
    // Graph leaves `shares` out of a post nobody shared.
    if p.shares > 0 {
        v["shares"] = json!({"count": p.shares});
    }
    axum::Json(v).into_response()
}

/// `GET /{page-id}?fields=…`: the Page's requested fields (`id` and `name` by default).
fn page_node(i: &Inner, page: &FakePage, fields: Option<&str>) -> Response {
    let mut v = json!({ "id": page.id });
    for f in fields.unwrap_or("id,name").split(',').map(str::trim) {
        match f {
            "" | "id" => {}
            "name" => v["name"] = json!(page.name),
            "username" => {
                if let Some(u) = &page.username {
                    v["username"] = json!(u);
                }
            }
            "link" => v["link"] = json!(format!("https://www.facebook.com/{}", page.id)),
            "category" => v["category"] = json!("Software"),
            "followers_count" => {
                if let Some(n) = i.followers {
                    v["followers_count"] = json!(n);
                }
            }
            "fan_count" => v["fan_count"] = json!(i.fans),
            other => {
                return graph_error(
                    400,
                    100,
                    None,
                    &format!(
                        "(#100) Tried accessing nonexisting field ({other}) on node type (Page)"
                    ),
                );
            }
        }
    }
    axum::Json(v).into_response()
}

// ---------------------------------------------------------------------------------------------
// Multipart
// ---------------------------------------------------------------------------------------------

/// One part of a multipart body.
#[derive(Debug, Clone)]
struct FilePart {
    name: String,
    filename: Option<String>,
    data: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// A `multipart/form-data` body's parts (RFC 7578), or `None` when it is not one.
fn multipart(content_type: &str, body: &[u8]) -> Option<Vec<FilePart>> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut at = find(body, delim.as_bytes(), 0)? + delim.len();
    loop {
        if body.get(at..at + 2)? == b"--" {
            return Some(out);
        }
        let start = at + 2; // CRLF after the delimiter
        let head_end = find(body, b"\r\n\r\n", start)?;
        let head = std::str::from_utf8(body.get(start..head_end)?).ok()?;
        let next = find(body, format!("\r\n{delim}").as_bytes(), head_end + 4)?;
        let data = body.get(head_end + 4..next)?.to_vec();
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
        let param = |k: &str| {
            disposition.split(';').find_map(|p| {
                p.trim()
                    .strip_prefix(&format!("{k}="))
                    .map(|v| v.trim_matches('"').to_owned())
            })
        };
        out.push(FilePart {
            name: param("name")?,
            filename: param("filename"),
            data,
        });
        at = next + 2 + delim.len();
        if out.len() > 100 {
            return None;
        }
    }
}

/// Text fields and files of a multipart body.
fn split_parts(parts: Vec<FilePart>) -> (HashMap<String, String>, HashMap<String, FilePart>) {
    let mut fields = HashMap::new();
    let mut files = HashMap::new();
    for p in parts {
        if p.filename.is_some() {
            files.insert(p.name.clone(), p);
        } else {
            fields.insert(
                p.name.clone(),
                String::from_utf8_lossy(&p.data).into_owned(),
            );
        }
    }
    (fields, files)
}

// ---------------------------------------------------------------------------------------------
// The fake
// ---------------------------------------------------------------------------------------------

impl FacebookFake {
    /// Every Page answers `fan_count` (`n` likes) but no `followers_count`, as Pages that
    /// have not moved to the new Pages experience do.
    pub fn set_fans_only(&self, n: u64) {
        let mut i = self.state.inner.lock().expect("facebook");
        i.followers = None;
        i.fans = n;
    }

    /// A fake on `clock` whose user `user-1` manages two Pages (`1001`, then `1002`).
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        let oauth = OAuthServer::new(clock.clone(), SHORT_TTL, false, false);
        let pages = HashMap::from([(
            "user-1".to_owned(),
            vec![
                FakePage {
                    id: PAGE.into(),
                    name: "Crier Test Page".into(),
                    username: Some("criertest".into()),
                },
                FakePage {
                    id: "1002".into(),
                    name: "Second Page".into(),
                    username: None,
                },
            ],
        )]);
        let state = AppState {
            inner: Arc::new(Mutex::new(Inner {
                clock,
                pages,
                long: HashMap::new(),
                page_tokens: HashMap::new(),
                issued: HashMap::new(),
                photos: HashMap::new(),
                posts: Vec::new(),
                next_id: 5_000_000,
                usage: 1,
                followers: Some(0),
                fans: 0,
                lag: 0,
                fail_created: 0,
            })),
            oauth,
            base: Arc::new(Mutex::new(String::new())),
        };
        let faults = Faults::default();
        let v = |p: &str| format!("/{VERSION}{p}");
        let router = Router::new()
            .route(&v("/dialog/oauth"), get(dialog))
            .route(
                &v("/oauth/access_token"),
                get(access_token).post(access_token),
            )
            .route(&v("/me/accounts"), get(accounts))
            .route(&v("/me/permissions"), axum::routing::delete(permissions))
            .route(&v("/me"), get(me))
            .route(&v("/{id}"), get(node))
            .route(&v("/{page}/{edge}"), get(edge_get).post(edge_post))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                usage_layer,
            ))
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(state.clone());
        let base = kit::serve(faults.wrap(router)).await;
        *state.base.lock().expect("base") = base.to_string();
        Self {
            base,
            faults,
            state,
        }
    }

    /// The Pages `user` manages from now on, in `/me/accounts` order.
    pub fn set_pages(&self, user: &str, pages: Vec<FakePage>) {
        self.state
            .inner
            .lock()
            .expect("facebook")
            .pages
            .insert(user.to_owned(), pages);
    }

    /// The user who approves at the login dialog from now on.
    pub fn set_user(&self, user: &str) {
        self.state.oauth.set_user(user);
    }

    /// How much of its quota the app has used, in percent (100: every call is throttled).
    pub fn set_usage(&self, percent: u32) {
        self.state.inner.lock().expect("facebook").usage = percent;
    }

    /// Graph takes `lag` to make a post once its create call is accepted: until then the post
    /// is not listed (`published_posts`) nor taken as the Page's latest for the duplicate
    /// check, though it will appear. Graph documents no figure; this is the case a look-up
    /// soon after a call that timed out or was answered 5xx must not take for "not published".
    pub fn set_creation_lag(&self, lag: Duration) {
        self.state.inner.lock().expect("facebook").lag = lag.as_secs() as i64;
    }

    /// The next `n` create calls (feed, published photo, video) make their post, then answer
    /// 500 (code 2, "An unexpected error has occurred"): a failure that landed anyway.
    pub fn fail_after_create(&self, n: u32) {
        self.state.inner.lock().expect("facebook").fail_created = n;
    }

    /// Photos uploaded to `page` that no post uses yet.
    pub fn loose_photos(&self, page: &str) -> usize {
        self.state
            .inner
            .lock()
            .expect("facebook")
            .photos
            .values()
            .filter(|p| p.page == page && !p.published && !p.attached)
            .count()
    }

    /// The link preview of a post.
    pub fn link_of(&self, post: &str) -> Option<String> {
        let i = self.state.inner.lock().expect("facebook");
        i.posts
            .iter()
            .find(|p| p.id == post)
            .and_then(|p| p.link.clone())
    }

    /// Comments and shares of a post (reactions: [`FakeNetwork::like`]).
    pub fn engage(&self, post: &str, comments: u64, shares: u64) {
        let mut i = self.state.inner.lock().expect("facebook");
        if let Some(p) = i.posts.iter_mut().find(|p| p.id == post) {
            p.comments = comments;
            p.shares = shares;
        }
    }

    fn graph_fault(status: u16, code: i64, subcode: Option<i64>, message: &str) -> Fault {
        let mut error = json!({"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"});
        if let Some(s) = subcode {
            error["error_subcode"] = json!(s);
        }
        Fault::status(
            "POST",
            &format!("/{VERSION}/{PAGE}/feed"),
            status,
            json!({ "error": error }),
        )
    }
}

#[async_trait::async_trait]
impl FakeNetwork for FacebookFake {
    fn platform(&self) -> &'static str {
        "facebook"
    }

    fn base(&self) -> url::Url {
        self.base.clone()
    }

    fn connector(&self, clock: Arc<dyn Clock>) -> Arc<dyn Network> {
        Arc::new(crier_networks::facebook::Facebook::new(
            crate::kit::test_config(self.base()),
            clock,
        ))
    }

    fn client(&self) -> OAuthClient {
        OAuthClient {
            client_id: APP_ID.into(),
            client_secret: Some(APP_SECRET.into()),
        }
    }

    fn features(&self) -> Features {
        Features {
            text: true,
            threads: false,
            images: true,
            video: true,
        }
    }

    fn posts(&self) -> Vec<FakePost> {
        let i = self.state.inner.lock().expect("facebook");
        i.posts
            .iter()
            .map(|p| FakePost {
                id: p.id.clone(),
                author: p.page.clone(),
                text: p.message.clone(),
                reply_to: None,
                media: p.media.clone(),
            })
            .collect()
    }

    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn publish_call(&self) -> (&'static str, String) {
        ("POST", format!("/{VERSION}/{PAGE}/feed"))
    }

    /// A Page-level throttle (code 32) whose `X-Business-Use-Case-Usage` says when access
    /// comes back, in minutes (rounded up).
    fn rate_limited(&self, reset_secs: u64) -> Fault {
        let minutes = reset_secs.div_ceil(60);
        let mut f = Self::graph_fault(400, 32, None, "(#32) Page request limit reached");
        for (k, v) in usage_headers(100, minutes) {
            f = f.header(&k, v);
        }
        f
    }

    fn documented_errors(&self) -> Vec<(Fault, &'static str)> {
        vec![
            (
                Self::graph_fault(
                    400,
                    190,
                    Some(460),
                    "Error validating access token: The session has been invalidated because the user changed their password.",
                ),
                "account_disconnected",
            ),
            (
                Self::graph_fault(
                    403,
                    200,
                    None,
                    "(#200) The user hasn't authorized the application to perform this action",
                ),
                "account_disconnected",
            ),
            (
                Self::graph_fault(400, 100, None, "(#100) Invalid parameter"),
                "network_rejected",
            ),
            (
                Self::graph_fault(
                    400,
                    368,
                    Some(1_390_008),
                    "It looks like you were misusing this feature by going too fast. You've been temporarily blocked from using it.",
                ),
                "network_rejected",
            ),
            (
                Self::graph_fault(400, 506, None, "Duplicate status message"),
                "network_rejected",
            ),
            (
                Self::graph_fault(400, 4, None, "(#4) Application request limit reached"),
                "network_rate_limited",
            ),
            (
                Self::graph_fault(400, 32, None, "(#32) Page request limit reached"),
                "network_rate_limited",
            ),
            (
                Self::graph_fault(
                    503,
                    2,
                    None,
                    "An unexpected error has occurred. Please retry your request later.",
                ),
                "network_unavailable",
            ),
            (
                Self::graph_fault(500, 1, None, "An unknown error occurred"),
                "network_unavailable",
            ),
        ]
    }

    fn revoke_access(&self) {
        let users: Vec<String> = self
            .state
            .inner
            .lock()
            .expect("facebook")
            .pages
            .keys()
            .cloned()
            .collect();
        for u in users {
            revoke_user(&self.state, &u);
        }
    }

    fn set_followers(&self, n: u64) {
        let mut i = self.state.inner.lock().expect("facebook");
        i.followers = Some(n);
        i.fans = n;
    }

    fn like(&self, id: &str, n: u64) {
        let mut i = self.state.inner.lock().expect("facebook");
        if let Some(p) = i.posts.iter_mut().find(|p| p.id == id) {
            p.reactions = n;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn graph_times_are_utc_with_an_offset() {
        assert_eq!(super::graph_time(0), "1970-01-01T00:00:00+0000");
        assert_eq!(super::graph_time(1_796_203_267), "2026-12-02T09:21:07+0000");
    }

    #[test]
    fn multipart_bodies_split_into_fields_and_files() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nhi\r\n--b\r\nContent-Disposition: form-data; name=\"source\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--b--\r\n";
        let parts = super::multipart("multipart/form-data; boundary=b", body).unwrap();
        let (fields, files) = super::split_parts(parts);
        assert_eq!(fields["caption"], "hi");
        assert_eq!(files["source"].data, b"\x89PNG");
    }
}
