//! A stateful fake of the X API v2, written from its reference (docs.x.com):
//!
//! - "OAuth 2.0 Authorization Code Flow with PKCE": `GET /i/oauth2/authorize`,
//!   `POST /2/oauth2/token` (client authenticated by HTTP Basic, PKCE S256 required, access
//!   tokens of 7200 s, rotating refresh tokens), `POST /2/oauth2/revoke` (`{"revoked": true}`);
//! - "GET /2/users/me" (`user.fields=profile_image_url,public_metrics`; `public_metrics` is
//!   `followers_count`, `following_count`, `tweet_count`, `listed_count`, `like_count`);
//! - "POST /2/tweets" (`text`, `media.media_ids`, `reply.in_reply_to_tweet_id`,
//!   `reply_settings`, `quote_tweet_id`; `201 {"data": {"id", "text",
//!   "edit_history_tweet_ids"}}`), enforcing 280 weighted characters (twitter-text v3, `400`),
//!   duplicate content by the same user within a day (`403`), media that exist, are the
//!   user's, finalized and processed (`400` "Your media IDs are invalid."), at most 4 of them
//!   and one video alone, and a reply target that exists (`403`);
//! - "GET /2/tweets/:id" (`public_metrics`; a missing post is `200` with `errors`);
//! - "GET /2/users/:id/tweets" (timeline: `start_time`, `max_results` 5–100,
//!   `pagination_token`, `tweet.fields`), rendering texts as X does: `&`, `<`, `>` escaped,
//!   links as `t.co` with `entities.urls`, a `t.co` media link appended to posts with media;
//! - "Media upload" v2: `POST /2/media/upload/initialize`, `/2/media/upload/{id}/append`
//!   (multipart `segment_index`, `media`; segments of at most 5 MB), `/2/media/upload/{id}/finalize`
//!   (`processing_info` for video and GIF), `GET /2/media/upload?command=STATUS&media_id=…`
//!   (`in_progress`, then `succeeded` on the second poll), `POST /2/media/metadata` (alt
//!   text of at most 1000 characters); sizes of 5 MB (images), 15 MB (GIF), 512 MB (video);
//! - "Rate limits": per endpoint and user in 15-minute windows, `x-rate-limit-limit`,
//!   `-remaining`, `-reset` (epoch seconds) on every answer, `429` past the limit;
//! - "Response codes and errors": problem JSON `{"title", "detail", "type", "status"}`.
//!
//! Not modelled: app-only bearer tokens, OAuth 1.0a, polls, long posts, deleting posts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use crier_core::Clock;
use crier_core::text::{self, Counting};
use crier_networks::Network;
use serde_json::{Value, json};

use crate::kit::{self, Fault, Faults, OAuthServer};
use crate::{FakeNetwork, FakePost, Features};

/// How long the same text by the same user is refused as duplicate content.
pub const DUPLICATE_WINDOW_SECS: i64 = 24 * 3600;
/// The rate-limit window of every endpoint.
pub const WINDOW_SECS: i64 = 15 * 60;
/// The largest `append` segment X takes.
pub const MAX_SEGMENT: usize = 5 * 1024 * 1024;
/// How long an upload stays valid.
pub const MEDIA_TTL_SECS: i64 = 86_400;

/// A media upload as the fake holds it.
#[derive(Debug, Clone)]
pub struct FakeMedia {
    pub id: String,
    pub owner: String,
    pub media_type: String,
    pub total_bytes: usize,
    pub segments: HashMap<usize, usize>,
    pub finalized: bool,
    /// `None`: no processing (images); else the STATUS polls left before `succeeded`.
    pub polls_left: Option<u32>,
    pub failed: bool,
    pub alt_text: Option<String>,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
struct Tweet {
    id: String,
    author: String,
    text: String,
    created_at: i64,
    reply_to: Option<String>,
    quote: Option<String>,
    media: Vec<String>,
    reply_settings: Option<String>,
    likes: u64,
}

#[derive(Debug, Clone)]
struct User {
    id: String,
    username: String,
    name: String,
}

#[derive(Default)]
struct State_ {
    users: HashMap<String, User>,
    tweets: Vec<Tweet>,
    media: HashMap<String, FakeMedia>,
    next_id: u64,
    limits: HashMap<&'static str, u32>,
    windows: HashMap<(&'static str, String), (i64, u32)>,
    fail_processing: bool,
    /// Every user's `public_metrics.followers_count`.
    followers: u64,
}

struct Inner {
    clock: Arc<dyn Clock>,
    oauth: OAuthServer,
    state: Mutex<State_>,
}

/// The fake X; see the module doc.
#[derive(Clone)]
pub struct XFake {
    inner: Arc<Inner>,
    faults: Faults,
    base: url::Url,
}

type Shared = Arc<Inner>;

/// Every endpoint with a rate limit, and its default per user and 15 minutes (X's documented
/// per-user limits, rounded).
const LIMITS: &[(&str, u32)] = &[
    ("POST /2/tweets", 100),
    ("GET /2/tweets/:id", 900),
    ("GET /2/users/:id/tweets", 900),
    ("GET /2/users/me", 75),
    ("media", 500),
];

fn problem(status: u16, title: &str, detail: &str, kind: &str) -> (StatusCode, Value) {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"title": title, "detail": detail, "type": kind, "status": status}),
    )
}

fn invalid(parameter: &str, message: &str) -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        json!({
            "errors": [{"parameters": {parameter: []}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        }),
    )
}

fn unauthorized() -> (StatusCode, Value) {
    problem(401, "Unauthorized", "Unauthorized", "about:blank")
}

fn forbidden(detail: &str) -> (StatusCode, Value) {
    problem(403, "Forbidden", detail, "about:blank")
}

impl XFake {
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        let inner = Arc::new(Inner {
            oauth: OAuthServer::new(clock.clone(), 7200, true, true),
            clock,
            state: Mutex::new(State_ {
                next_id: 1_866_000_000_000_000_000,
                limits: LIMITS.iter().copied().collect(),
                ..State_::default()
            }),
        });
        let faults = Faults::default();
        let router = Router::new()
            .route("/i/oauth2/authorize", get(authorize))
            .route("/2/oauth2/token", post(token))
            .route("/2/oauth2/revoke", post(revoke))
            .route("/2/users/me", get(me))
            .route("/2/users/{id}/tweets", get(timeline))
            .route("/2/tweets", post(create))
            .route("/2/tweets/{id}", get(tweet))
            .route("/2/media/upload/initialize", post(initialize))
            .route("/2/media/upload/{id}/append", post(append))
            .route("/2/media/upload/{id}/finalize", post(finalize))
            .route("/2/media/upload", get(status))
            .route("/2/media/metadata", post(metadata))
            .layer(DefaultBodyLimit::max(MAX_SEGMENT + 64 * 1024))
            .with_state(inner.clone());
        let router = faults
            .wrap(router)
            .layer(axum::middleware::from_fn_with_state(
                inner.clone(),
                reset_at_answer,
            ));
        let base = kit::serve(router).await;
        Self {
            inner,
            faults,
            base,
        }
    }

    pub fn oauth(&self) -> &OAuthServer {
        &self.inner.oauth
    }

    /// Sets an endpoint's limit per 15 minutes (`POST /2/tweets`, `GET /2/tweets/:id`,
    /// `GET /2/users/:id/tweets`, `GET /2/users/me`, `media`).
    pub fn set_limit(&self, endpoint: &'static str, limit: u32) {
        self.inner.lock().limits.insert(endpoint, limit);
    }

    /// The next finalized video or GIF fails processing.
    pub fn fail_next_processing(&self) {
        self.inner.lock().fail_processing = true;
    }

    /// The uploads the fake holds.
    pub fn media(&self) -> Vec<FakeMedia> {
        self.inner.lock().media.values().cloned().collect()
    }

    /// The X user id of an OAuth user (`user-1`).
    pub fn user_id(&self, oauth_user: &str) -> String {
        self.inner.lock().user(oauth_user).id
    }

    /// Posts `text` as `oauth_user` directly (a post made at x.com); its id.
    pub fn post_as(&self, oauth_user: &str, text: &str) -> String {
        let now = self.inner.clock.now_ms();
        let mut st = self.inner.lock();
        let author = st.user(oauth_user).id;
        let id = st.next();
        st.tweets.push(Tweet {
            id: id.clone(),
            author,
            text: text.to_owned(),
            created_at: now,
            reply_to: None,
            quote: None,
            media: Vec::new(),
            reply_settings: None,
            likes: 0,
        });
        id
    }

    /// The `reply_settings` and `quote_tweet_id` a post was created with.
    pub fn settings_of(&self, id: &str) -> Option<(Option<String>, Option<String>)> {
        let st = self.inner.lock();
        st.tweets
            .iter()
            .find(|t| t.id == id)
            .map(|t| (t.reply_settings.clone(), t.quote.clone()))
    }

    /// The alt text each of a post's media carries.
    pub fn alt_texts_of(&self, id: &str) -> Vec<Option<String>> {
        let st = self.inner.lock();
        let Some(t) = st.tweets.iter().find(|t| t.id == id) else {
            return Vec::new();
        };
        t.media
            .iter()
            .map(|m| st.media.get(m).and_then(|m| m.alt_text.clone()))
            .collect()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State_> {
        self.state.lock().expect("x fake state")
    }

    fn now(&self) -> i64 {
        kit::now_secs(self.clock.as_ref())
    }

    /// The user a bearer token acts for, with its scopes.
    fn auth(&self, headers: &HeaderMap, scope: &str) -> Result<(User, String), Box<Response>> {
        let token = self
            .oauth
            .bearer(headers)
            .ok_or_else(|| Box::new(answer(unauthorized(), None)))?;
        if !token.scope.split(' ').any(|s| s == scope) {
            return Err(Box::new(answer(
                forbidden(&format!("Missing scope: {scope}")),
                None,
            )));
        }
        let user = self.lock().user(&token.user);
        Ok((user, token.user))
    }

    /// Counts a call of `endpoint` by `user`: its rate-limit headers, or the `429`.
    fn gate(&self, endpoint: &'static str, user: &str) -> Result<Rate, Box<Response>> {
        let now = self.now();
        let mut st = self.lock();
        let limit = st.limits.get(endpoint).copied().unwrap_or(100);
        let w = st
            .windows
            .entry((endpoint, user.to_owned()))
            .or_insert((now, 0));
        if now >= w.0 + WINDOW_SECS {
            *w = (now, 0);
        }
        let reset = w.0 + WINDOW_SECS;
        if w.1 >= limit {
            let rate = Rate {
                limit,
                remaining: 0,
                reset,
            };
            return Err(Box::new(answer(
                problem(429, "Too Many Requests", "Too Many Requests", "about:blank"),
                Some(rate),
            )));
        }
        w.1 += 1;
        Ok(Rate {
            limit,
            remaining: limit - w.1,
            reset,
        })
    }

    /// Authenticates and counts one call.
    fn enter(
        &self,
        headers: &HeaderMap,
        scope: &str,
        endpoint: &'static str,
    ) -> Result<(User, Rate), Box<Response>> {
        let (user, oauth_user) = self.auth(headers, scope)?;
        let rate = self.gate(endpoint, &oauth_user)?;
        Ok((user, rate))
    }
}

impl State_ {
    fn next(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    fn user(&mut self, oauth_user: &str) -> User {
        let n = self.users.len() as u64;
        self.users
            .entry(oauth_user.to_owned())
            .or_insert_with(|| User {
                id: (2_244_994_945 + n).to_string(),
                username: oauth_user.replace('-', "_"),
                name: format!("Crier {oauth_user}"),
            })
            .clone()
    }
}

#[derive(Debug, Clone, Copy)]
struct Rate {
    limit: u32,
    remaining: u32,
    reset: i64,
}

fn answer((status, body): (StatusCode, Value), rate: Option<Rate>) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(r) = rate {
        let h = resp.headers_mut();
        for (k, v) in [
            ("x-rate-limit-limit", r.limit.to_string()),
            ("x-rate-limit-remaining", r.remaining.to_string()),
            ("x-rate-limit-reset", r.reset.to_string()),
        ] {
            if let Ok(v) = v.parse() {
                h.insert(k, v);
            }
        }
    }
    resp
}

/// A scripted `x-rate-limit-reset: +N` becomes N seconds after the answer is given, as a
/// real reset is counted from the window the answer falls in (the test's clock may move
/// between scripting the fault and the call).
async fn reset_at_answer(
    State(x): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut resp = next.run(req).await;
    let relative = resp
        .headers()
        .get("x-rate-limit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix('+'))
        .and_then(|v| v.parse::<i64>().ok());
    if let Some(n) = relative
        && let Ok(v) = (x.now() + n).to_string().parse()
    {
        resp.headers_mut().insert("x-rate-limit-reset", v);
    }
    resp
}

fn ok(status: u16, body: Value, rate: Rate) -> Response {
    answer(
        (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body),
        Some(rate),
    )
}

// ---------------------------------------------------------------------------------------------
// OAuth
// ---------------------------------------------------------------------------------------------

fn oauth_error(e: kit::OAuthError) -> Response {
    (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({"error": e.error, "error_description": e.description})),
    )
        .into_response()
}

async fn authorize(State(x): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    match x.oauth.authorize(&q, "client_id") {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(e) => oauth_error(e),
    }
}

async fn token(State(x): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form = kit::form(&body);
    match x.oauth.token(&headers, &form, "client_id") {
        Ok(t) => {
            let mut body = json!({
                "token_type": "bearer",
                "expires_in": t.expires_in,
                "access_token": t.access_token,
                "scope": t.scope,
            });
            if let Some(r) = t.refresh_token {
                body["refresh_token"] = r.into();
            }
            axum::Json(body).into_response()
        }
        Err(e) => oauth_error(e),
    }
}

async fn revoke(State(x): State<Shared>, body: Bytes) -> Response {
    let form = kit::form(&body);
    match form.get("token").filter(|t| !t.is_empty()) {
        Some(t) => {
            x.oauth.revoke(t);
            axum::Json(json!({"revoked": true})).into_response()
        }
        None => oauth_error(kit::OAuthError {
            status: 400,
            error: "invalid_request",
            description: "Missing required parameter [token].".into(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Users and posts
// ---------------------------------------------------------------------------------------------

async fn me(
    State(x): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (user, rate) = match x.enter(&headers, "users.read", "GET /2/users/me") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let mut data = json!({
        "id": user.id,
        "name": user.name,
        "username": user.username,
        "profile_image_url": format!("https://pbs.twimg.com/profile_images/{}/a_normal.jpg", user.id),
    });
    let fields = q.get("user.fields").map(String::as_str).unwrap_or("");
    if fields.split(',').any(|f| f.trim() == "public_metrics") {
        let st = x.lock();
        let tweets = st.tweets.iter().filter(|t| t.author == user.id).count();
        data["public_metrics"] = json!({
            "followers_count": st.followers,
            "following_count": 0,
            "tweet_count": tweets,
            "listed_count": 0,
            "like_count": 0,
        });
    }
    ok(200, json!({ "data": data }), rate)
}

fn media_ok(st: &State_, owner: &str, ids: &[String], now: i64) -> Result<(), &'static str> {
    if ids.is_empty() || ids.len() > 4 {
        return Err("Your media IDs are invalid.");
    }
    let mut videos = 0;
    for id in ids {
        let Some(m) = st.media.get(id) else {
            return Err("Your media IDs are invalid.");
        };
        let processed = m.polls_left.is_none() || m.polls_left == Some(0);
        if m.owner != owner || !m.finalized || m.failed || !processed || m.expires_at < now {
            return Err("Your media IDs are invalid.");
        }
        if m.media_type.starts_with("video/") || m.media_type == "image/gif" {
            videos += 1;
        }
    }
    if videos > 0 && ids.len() > 1 {
        return Err("Your media IDs are invalid.");
    }
    Ok(())
}

async fn create(State(x): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (user, rate) = match x.enter(&headers, "tweet.write", "POST /2/tweets") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let refuse = |e: (StatusCode, Value)| answer(e, Some(rate));
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return refuse(invalid("body", "The request body is not valid JSON."));
    };
    let text = req
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let media: Vec<String> = req
        .pointer("/media/media_ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let reply_to = req
        .pointer("/reply/in_reply_to_tweet_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let quote = req
        .get("quote_tweet_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let reply_settings = req
        .get("reply_settings")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if text.is_empty() && media.is_empty() {
        return refuse(invalid("text", "You must specify either text or media."));
    }
    if text::length(&text, Counting::Weighted) > 280 {
        return refuse(invalid("text", "The text of your Tweet is too long."));
    }
    if let Some(r) = &reply_settings
        && !["following", "mentionedUsers", "subscribers", "verified"].contains(&r.as_str())
    {
        return refuse(invalid(
            "reply_settings",
            "reply_settings is not one of the allowed values.",
        ));
    }
    let now_ms = x.clock.now_ms();
    let now = x.now();
    let mut st = x.lock();
    if !media.is_empty()
        && let Err(m) = media_ok(&st, &user.id, &media, now)
    {
        return refuse(invalid("media.media_ids", m));
    }
    let exists = |id: &str| st.tweets.iter().any(|t| t.id == id);
    if let Some(r) = &reply_to
        && !exists(r)
    {
        return refuse(forbidden(
            "You attempted to reply to a Tweet that is deleted or not visible to you.",
        ));
    }
    if let Some(q) = &quote
        && !exists(q)
    {
        return refuse(forbidden(
            "You attempted to quote a Tweet that is deleted or not visible to you.",
        ));
    }
    let duplicate = !text.is_empty()
        && st.tweets.iter().any(|t| {
            t.author == user.id
                && t.text == text
                && t.created_at >= now_ms - DUPLICATE_WINDOW_SECS * 1000
        });
    if duplicate {
        return refuse(forbidden(
            "You are not allowed to create a Tweet with duplicate content.",
        ));
    }
    let id = st.next();
    st.tweets.push(Tweet {
        id: id.clone(),
        author: user.id,
        text: text.clone(),
        created_at: now_ms,
        reply_to,
        quote,
        media,
        reply_settings,
        likes: 0,
    });
    ok(
        201,
        json!({"data": {"id": id, "text": text, "edit_history_tweet_ids": [id]}}),
        rate,
    )
}

/// A tweet as X renders it: text escaped, links shortened, the media link appended.
fn render(t: &Tweet, st: &State_, fields: &[&str], created: String) -> Value {
    let mut text = String::new();
    let mut urls = Vec::new();
    let words: Vec<&str> = t.text.split(' ').collect();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        if w.starts_with("https://") || w.starts_with("http://") {
            let short = format!("https://t.co/{:010x}", hash(w));
            let start = text.chars().count();
            text.push_str(&short);
            urls.push(json!({"start": start, "end": start + 23, "url": short, "expanded_url": w, "display_url": w.split("//").nth(1).unwrap_or(w)}));
        } else {
            text.push_str(
                &w.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;"),
            );
        }
    }
    if let Some(first) = t.media.first() {
        let short = format!("https://t.co/{:010x}", hash(first));
        if !text.is_empty() {
            text.push(' ');
        }
        let start = text.chars().count();
        text.push_str(&short);
        let author = st
            .users
            .values()
            .find(|u| u.id == t.author)
            .map(|u| u.username.clone())
            .unwrap_or_default();
        urls.push(json!({"start": start, "end": start + 23, "url": short,
            "expanded_url": format!("https://x.com/{author}/status/{}/photo/1", t.id),
            "display_url": "pic.x.com/abc", "media_key": format!("3_{first}")}));
    }
    let mut v = json!({"id": t.id, "text": text, "edit_history_tweet_ids": [t.id]});
    if fields.contains(&"created_at") {
        v["created_at"] = created.into();
    }
    if fields.contains(&"attachments") && !t.media.is_empty() {
        let keys: Vec<String> = t
            .media
            .iter()
            .map(|m| {
                let video = st
                    .media
                    .get(m)
                    .is_some_and(|m| m.media_type.starts_with("video/"));
                format!("{}_{m}", if video { 7 } else { 3 })
            })
            .collect();
        v["attachments"] = json!({ "media_keys": keys });
    }
    if fields.contains(&"entities") && !urls.is_empty() {
        v["entities"] = json!({ "urls": urls });
    }
    if fields.contains(&"referenced_tweets") {
        let mut refs = Vec::new();
        if let Some(r) = &t.reply_to {
            refs.push(json!({"type": "replied_to", "id": r}));
        }
        if let Some(q) = &t.quote {
            refs.push(json!({"type": "quoted", "id": q}));
        }
        if !refs.is_empty() {
            v["referenced_tweets"] = refs.into();
        }
    }
    if fields.contains(&"in_reply_to_user_id")
        && let Some(r) = &t.reply_to
        && let Some(p) = st.tweets.iter().find(|p| &p.id == r)
    {
        v["in_reply_to_user_id"] = p.author.clone().into();
    }
    if fields.contains(&"public_metrics") {
        v["public_metrics"] = json!({
            "retweet_count": 0, "reply_count": st.tweets.iter().filter(|p| p.reply_to.as_deref() == Some(&t.id)).count(),
            "like_count": t.likes, "quote_count": 0, "bookmark_count": 0, "impression_count": t.likes * 10,
        });
    }
    v
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) & 0xff_ffff_ffff
}

fn fields(q: &HashMap<String, String>) -> Vec<&str> {
    q.get("tweet.fields")
        .map(|f| f.split(',').collect())
        .unwrap_or_default()
}

async fn tweet(
    State(x): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (_, rate) = match x.enter(&headers, "tweet.read", "GET /2/tweets/:id") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let st = x.lock();
    match st.tweets.iter().find(|t| t.id == id) {
        Some(t) => {
            let created = created_at(&x, t.created_at);
            ok(
                200,
                json!({"data": render(t, &st, &fields(&q), created)}),
                rate,
            )
        }
        None => ok(
            200,
            json!({"errors": [{
                "value": id, "detail": format!("Could not find tweet with id: [{id}]."),
                "title": "Not Found Error", "resource_type": "tweet", "parameter": "id",
                "resource_id": id, "type": "https://api.twitter.com/2/problems/resource-not-found",
            }]}),
            rate,
        ),
    }
}

/// `ms` in RFC 3339, as the clock's own timestamp type writes it (X's `created_at`).
fn created_at(x: &Inner, ms: i64) -> String {
    let now = x.clock.now();
    let delta = ms - now.as_millisecond();
    let span = Duration::from_millis(delta.unsigned_abs());
    let t = if delta >= 0 {
        now.checked_add(span)
    } else {
        now.checked_sub(span)
    };
    t.map(|t| t.to_string()).unwrap_or_default()
}

/// The epoch ms of an RFC 3339 time, parsed as the clock's timestamp type parses it.
fn parse_time(clock: &dyn Clock, s: &str) -> Option<i64> {
    fn like<T: std::str::FromStr>(_: &T, s: &str) -> Option<T> {
        s.parse().ok()
    }
    like(&clock.now(), s).map(|t| t.as_millisecond())
}

async fn timeline(
    State(x): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (_, rate) = match x.enter(&headers, "tweet.read", "GET /2/users/:id/tweets") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let refuse = |e| answer(e, Some(rate));
    let max: usize = match q.get("max_results").map(|m| m.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if (5..=100).contains(&n) => n,
        _ => {
            return refuse(invalid(
                "max_results",
                "The `max_results` query parameter value is not between 5 and 100",
            ));
        }
    };
    let since = match q.get("start_time") {
        None => i64::MIN,
        Some(s) => match parse_time(x.clock.as_ref(), s) {
            Some(ms) => ms,
            None => return refuse(invalid("start_time", "Invalid start_time")),
        },
    };
    let offset: usize = match q.get("pagination_token") {
        None => 0,
        Some(t) => match t.strip_prefix('p').and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return refuse(invalid("pagination_token", "Invalid pagination_token")),
        },
    };
    let st = x.lock();
    if !st.users.values().any(|u| u.id == id) {
        return ok(
            200,
            json!({"errors": [{"value": id, "detail": format!("Could not find user with id: [{id}]."), "title": "Not Found Error", "type": "https://api.twitter.com/2/problems/resource-not-found"}]}),
            rate,
        );
    }
    let mine: Vec<&Tweet> = st
        .tweets
        .iter()
        .rev()
        .filter(|t| t.author == id && t.created_at >= since)
        .collect();
    let page: Vec<Value> = mine
        .iter()
        .skip(offset)
        .take(max)
        .map(|t| render(t, &st, &fields(&q), created_at(&x, t.created_at)))
        .collect();
    let mut meta = json!({"result_count": page.len()});
    if let (Some(first), Some(last)) = (page.first(), page.last()) {
        meta["newest_id"] = first["id"].clone();
        meta["oldest_id"] = last["id"].clone();
    }
    if offset + max < mine.len() {
        meta["next_token"] = format!("p{}", offset + max).into();
    }
    let mut body = json!({"meta": meta});
    if !page.is_empty() {
        body["data"] = page.into();
    }
    ok(200, body, rate)
}

// ---------------------------------------------------------------------------------------------
// Media
// ---------------------------------------------------------------------------------------------

fn max_bytes(media_type: &str) -> Option<usize> {
    match media_type {
        "image/jpeg" | "image/png" | "image/webp" | "image/bmp" => Some(5 * 1024 * 1024),
        "image/gif" => Some(15 * 1024 * 1024),
        "video/mp4" | "video/quicktime" | "video/webm" => Some(512 * 1024 * 1024),
        _ => None,
    }
}

async fn initialize(State(x): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (user, rate) = match x.enter(&headers, "media.write", "media") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let refuse = |e| answer(e, Some(rate));
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return refuse(invalid("body", "The request body is not valid JSON."));
    };
    let media_type = req.get("media_type").and_then(Value::as_str).unwrap_or("");
    let total = req.get("total_bytes").and_then(Value::as_u64).unwrap_or(0) as usize;
    let category = req
        .get("media_category")
        .and_then(Value::as_str)
        .unwrap_or("tweet_image");
    let Some(max) = max_bytes(media_type) else {
        return refuse(invalid("media_type", "Unsupported media_type."));
    };
    if !["tweet_image", "tweet_gif", "tweet_video", "amplify_video"].contains(&category) {
        return refuse(invalid("media_category", "Unsupported media_category."));
    }
    if total == 0 || total > max {
        return refuse(invalid(
            "total_bytes",
            "File size exceeds the limit for this media type.",
        ));
    }
    let now = x.now();
    let mut st = x.lock();
    let id = st.next();
    st.media.insert(
        id.clone(),
        FakeMedia {
            id: id.clone(),
            owner: user.id,
            media_type: media_type.to_owned(),
            total_bytes: total,
            segments: HashMap::new(),
            finalized: false,
            polls_left: None,
            failed: false,
            alt_text: None,
            expires_at: now + MEDIA_TTL_SECS,
        },
    );
    ok(
        200,
        json!({"data": {"id": id, "media_key": format!("7_{id}"), "expires_after_secs": MEDIA_TTL_SECS}}),
        rate,
    )
}

/// The fields of a `multipart/form-data` body, by name.
fn multipart(headers: &HeaderMap, body: &[u8]) -> Option<HashMap<String, Vec<u8>>> {
    let ct = headers.get("content-type")?.to_str().ok()?;
    let boundary = ct
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?;
    let delim = format!("--{}", boundary.trim_matches('"')).into_bytes();
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut out = HashMap::new();
    let mut rest = &body[find(body, &delim)? + delim.len()..];
    let mut next_delim = b"\r\n".to_vec();
    next_delim.extend_from_slice(&delim);
    while !rest.starts_with(b"--") {
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        let name = head
            .split(';')
            .find_map(|p| p.trim().strip_prefix("name="))?
            .split("\r\n")
            .next()?
            .trim_matches('"')
            .to_owned();
        let data = &rest[head_end + 4..];
        let end = find(data, &next_delim)?;
        out.insert(name, data[..end].to_vec());
        rest = &data[end + next_delim.len()..];
    }
    Some(out)
}

fn own_media<'a>(st: &'a mut State_, id: &str, owner: &str) -> Option<&'a mut FakeMedia> {
    st.media.get_mut(id).filter(|m| m.owner == owner)
}

async fn append(
    State(x): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (user, rate) = match x.enter(&headers, "media.write", "media") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let refuse = |e| answer(e, Some(rate));
    let Some(form) = multipart(&headers, &body) else {
        return refuse(invalid("media", "The request is not multipart/form-data."));
    };
    let index = form
        .get("segment_index")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n < 1000);
    let (Some(index), Some(media)) = (index, form.get("media")) else {
        return refuse(invalid(
            "segment_index",
            "segment_index (0-999) and media are required.",
        ));
    };
    if media.is_empty() || media.len() > MAX_SEGMENT {
        return refuse(invalid("media", "A segment must be 1 byte to 5 MB."));
    }
    let mut st = x.lock();
    let Some(m) = own_media(&mut st, &id, &user.id).filter(|m| !m.finalized) else {
        return refuse(invalid("id", "The media id is not an upload in progress."));
    };
    m.segments.insert(index, media.len());
    ok(200, json!({"data": {"expires_at": m.expires_at}}), rate)
}

async fn finalize(State(x): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let (user, rate) = match x.enter(&headers, "media.write", "media") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let refuse = |e| answer(e, Some(rate));
    let mut st = x.lock();
    let fail = st.fail_processing;
    let Some(m) = own_media(&mut st, &id, &user.id) else {
        return refuse(invalid("id", "The media id is unknown."));
    };
    if m.finalized {
        return refuse(invalid("id", "The upload is already finalized."));
    }
    let contiguous = (0..m.segments.len()).all(|i| m.segments.contains_key(&i));
    let sum: usize = m.segments.values().sum();
    if !contiguous || sum != m.total_bytes {
        return refuse(invalid("id", "The segments do not add up to total_bytes."));
    }
    m.finalized = true;
    let processed = m.media_type.starts_with("video/") || m.media_type == "image/gif";
    let mut data = json!({"id": id, "media_key": format!("7_{id}"), "size": m.total_bytes, "expires_after_secs": MEDIA_TTL_SECS});
    if processed {
        m.polls_left = Some(2);
        m.failed = fail;
        data["processing_info"] = json!({"state": "pending", "check_after_secs": 1});
    }
    if processed && fail {
        st.fail_processing = false;
    }
    ok(200, json!({ "data": data }), rate)
}

async fn status(
    State(x): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (user, rate) = match x.enter(&headers, "media.write", "media") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let refuse = |e| answer(e, Some(rate));
    if q.get("command").map(String::as_str) != Some("STATUS") {
        return refuse(invalid("command", "command must be STATUS."));
    }
    let id = q.get("media_id").cloned().unwrap_or_default();
    let mut st = x.lock();
    let Some(m) = own_media(&mut st, &id, &user.id).filter(|m| m.finalized) else {
        return refuse(invalid("media_id", "The media id is unknown."));
    };
    let mut data = json!({"id": id, "media_key": format!("7_{id}")});
    match m.polls_left {
        None => {}
        Some(n) if n > 1 => {
            m.polls_left = Some(n - 1);
            data["processing_info"] =
                json!({"state": "in_progress", "check_after_secs": 1, "progress_percent": 50});
        }
        Some(_) if m.failed => {
            m.polls_left = Some(0);
            data["processing_info"] = json!({"state": "failed", "progress_percent": 100,
                "error": {"code": 1, "name": "InvalidMedia", "message": "Unsupported video format"}});
        }
        Some(_) => {
            m.polls_left = Some(0);
            data["processing_info"] = json!({"state": "succeeded", "progress_percent": 100});
        }
    }
    ok(200, json!({ "data": data }), rate)
}

async fn metadata(State(x): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (user, rate) = match x.enter(&headers, "media.write", "media") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let refuse = |e| answer(e, Some(rate));
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return refuse(invalid("body", "The request body is not valid JSON."));
    };
    let id = req
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let alt = req
        .pointer("/metadata/alt_text/text")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if alt.as_ref().is_some_and(|a| a.chars().count() > 1000) {
        return refuse(invalid(
            "metadata.alt_text.text",
            "Alt text must be at most 1000 characters.",
        ));
    }
    let mut st = x.lock();
    let Some(m) = own_media(&mut st, &id, &user.id) else {
        return refuse(invalid("id", "The media id is unknown."));
    };
    m.alt_text = alt.clone();
    ok(
        200,
        json!({"data": {"id": id, "associated_metadata": {"alt_text": {"text": alt}}}}),
        rate,
    )
}

// ---------------------------------------------------------------------------------------------
// What the conformance suite drives
// ---------------------------------------------------------------------------------------------

#[async_trait::async_trait]
impl FakeNetwork for XFake {
    fn platform(&self) -> &'static str {
        crier_networks::x::PLATFORM
    }

    fn base(&self) -> url::Url {
        self.base.clone()
    }

    fn connector(&self, clock: Arc<dyn Clock>) -> Arc<dyn Network> {
        Arc::new(crier_networks::x::X::new(
            crate::kit::test_config(self.base()),
            clock,
        ))
    }

    fn features(&self) -> Features {
        Features {
            text: true,
            threads: true,
            images: true,
            video: true,
        }
    }

    fn posts(&self) -> Vec<FakePost> {
        let st = self.inner.lock();
        st.tweets
            .iter()
            .map(|t| FakePost {
                id: t.id.clone(),
                author: t.author.clone(),
                text: t.text.clone(),
                reply_to: t.reply_to.clone(),
                media: t
                    .media
                    .iter()
                    .filter_map(|m| st.media.get(m).map(|m| m.media_type.clone()))
                    .collect(),
            })
            .collect()
    }

    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn publish_call(&self) -> (&'static str, String) {
        ("POST", "/2/tweets".into())
    }

    fn rate_limited(&self, reset_secs: u64) -> Fault {
        Fault::status(
            "POST",
            "/2/tweets",
            429,
            json!({"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}),
        )
        .header("x-rate-limit-limit", "100")
        .header("x-rate-limit-remaining", "0")
        .header("x-rate-limit-reset", format!("+{reset_secs}"))
    }

    fn documented_errors(&self) -> Vec<(Fault, &'static str)> {
        let p = |status: u16, body: Value| Fault::status("POST", "/2/tweets", status, body);
        let (_, unauth) = unauthorized();
        let (_, dup) = forbidden("You are not allowed to create a Tweet with duplicate content.");
        let (_, not_permitted) = forbidden("You are not permitted to perform this action.");
        let (_, bad) = invalid("text", "The text of your Tweet is too long.");
        vec![
            (p(401, unauth), "account_disconnected"),
            (p(403, not_permitted), "network_rejected"),
            // Duplicate content when no attempt of ours was sent: the user posted it before.
            (p(403, dup), "network_rejected"),
            (p(400, bad), "network_rejected"),
            (self.rate_limited(60), "network_rate_limited"),
            (
                p(
                    503,
                    json!({"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank", "status": 503}),
                ),
                "network_unavailable",
            ),
            (
                p(
                    500,
                    json!({"errors": [{"message": "Internal error", "code": 131}]}),
                ),
                "network_unavailable",
            ),
            (
                p(
                    429,
                    json!({"errors": [{"message": "Rate limit exceeded", "code": 88}]}),
                ),
                "network_rate_limited",
            ),
        ]
    }

    fn revoke_access(&self) {
        self.inner.oauth.revoke_user("user-1");
    }

    fn set_followers(&self, n: u64) {
        self.inner.lock().followers = n;
    }

    fn like(&self, id: &str, n: u64) {
        let mut st = self.inner.lock();
        if let Some(t) = st.tweets.iter_mut().find(|t| t.id == id) {
            t.likes = n;
        }
    }
}
