//! What every fake is built from: a server on 127.0.0.1, scripted faults, an OAuth 2.0
//! authorization server with the checks real ones make, and small valid media files.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use crier_core::Clock;
use sha2::Digest as _;

/// Serves `router` on a free port of 127.0.0.1 (for the rest of the test process); its base
/// URL, `http://127.0.0.1:PORT`.
pub async fn serve(router: Router) -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr: SocketAddr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}").parse().expect("a URL")
}

/// A scripted answer to the next `times` requests of `method` to `path` (exact, or a prefix
/// when it ends with `*`).
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: &'static str,
    pub path: String,
    /// The answer instead of the real one (ignored when `lose` is set).
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering (the request is not handled: a slow network).
    pub delay: Duration,
    /// Handle the request for real, then answer only after this long: the work is done but
    /// a client with a shorter timeout never hears of it (a lost answer).
    pub lose: Duration,
    pub times: u32,
}

impl Fault {
    /// Answers `status` with the JSON `body`.
    pub fn status(method: &'static str, path: &str, status: u16, body: serde_json::Value) -> Self {
        Self {
            method,
            path: path.into(),
            status,
            body: body.to_string(),
            headers: Vec::new(),
            delay: Duration::ZERO,
            lose: Duration::ZERO,
            times: 1,
        }
    }

    /// Does the work, then answers too late (after a minute).
    pub fn lose(method: &'static str, path: &str) -> Self {
        Self {
            lose: Duration::from_secs(60),
            ..Self::status(method, path, 200, serde_json::Value::Null)
        }
    }

    /// Answers nothing for a minute, without doing the work (a timeout).
    pub fn hang(method: &'static str, path: &str) -> Self {
        Self {
            delay: Duration::from_secs(60),
            status: 504,
            ..Self::status(method, path, 504, serde_json::Value::Null)
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && self.method.eq_ignore_ascii_case(method)
            && match self.path.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => self.path == path,
            }
    }
}

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
}

/// A fake's scripted faults and the log of what it was asked.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<FaultsInner>>);

#[derive(Debug, Default)]
struct FaultsInner {
    faults: Vec<Fault>,
    seen: Vec<Seen>,
}

/// The most requests a fake remembers (the oldest are dropped).
const MAX_SEEN: usize = 10_000;

impl Faults {
    pub fn push(&self, fault: Fault) {
        self.0.lock().expect("faults").faults.push(fault);
    }

    pub fn clear(&self) {
        self.0.lock().expect("faults").faults.clear();
    }

    /// Every request so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.0.lock().expect("faults").seen.clone()
    }

    /// How many requests of `method` to `path` (exact, or prefix with `*`) came.
    pub fn count(&self, method: &str, path: &str) -> usize {
        let probe = Fault::status("GET", path, 0, serde_json::Value::Null);
        self.seen()
            .iter()
            .filter(|s| s.method.eq_ignore_ascii_case(method) && probe.matches("GET", &s.path))
            .count()
    }

    fn take(&self, method: &str, path: &str, query: &str, headers: &HeaderMap) -> Option<Fault> {
        let mut i = self.0.lock().expect("faults");
        if i.seen.len() >= MAX_SEEN {
            i.seen.remove(0);
        }
        i.seen.push(Seen {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers: headers.clone(),
        });
        let n = i.faults.iter().position(|f| f.matches(method, path))?;
        i.faults[n].times -= 1;
        let f = i.faults[n].clone();
        if i.faults[n].times == 0 {
            i.faults.remove(n);
        }
        Some(f)
    }

    /// `router` with the faults played in front of every route.
    pub fn wrap(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), play))
    }
}

async fn play(State(faults): State<Faults>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let Some(f) = faults.take(&method, &path, &query, req.headers()) else {
        return next.run(req).await;
    };
    if !f.lose.is_zero() {
        let resp = next.run(req).await;
        tokio::time::sleep(f.lose).await;
        return resp;
    }
    tokio::time::sleep(f.delay).await;
    let mut resp = Response::builder()
        .status(f.status)
        .header("content-type", "application/json");
    for (k, v) in &f.headers {
        resp = resp.header(k.as_str(), v.as_str());
    }
    resp.body(axum::body::Body::from(f.body))
        .expect("a response")
}

/// How the suites' connectors reach a fake at `base`: short timeouts and fast polls.
pub fn test_config(base: url::Url) -> crier_networks::hosted::HostedConfig {
    crier_networks::hosted::HostedConfig {
        base: Some(base),
        timeout: Duration::from_secs(2),
        poll_interval: Duration::from_millis(20),
        poll_max: Duration::from_millis(1500),
        ..Default::default()
    }
}

/// The OAuth client every [`OAuthServer`] registers (`crier-client`, `crier-secret`).
pub fn client() -> crier_networks::OAuthClient {
    crier_networks::OAuthClient {
        client_id: "crier-client".into(),
        client_secret: Some("crier-secret".into()),
    }
}

/// A random token of `n` bytes, base64url.
pub fn random(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("random bytes");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Seconds since the epoch on `clock`. A fake runs on the test's clock (a manual one in the
/// worker suites), so token lifetimes and rate-limit resets move when the test moves time.
pub fn now_secs(clock: &dyn Clock) -> i64 {
    clock.now_ms().div_euclid(1000)
}

// ---------------------------------------------------------------------------------------------
// OAuth 2.0
// ---------------------------------------------------------------------------------------------

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: String,
    pub redirect_uris: Vec<String>,
}

#[derive(Debug, Clone)]
struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    user: String,
    scope: String,
    expires_at: i64,
}

/// An access token the server issued.
#[derive(Debug, Clone)]
pub struct Token {
    pub user: String,
    pub client_id: String,
    pub scope: String,
    pub expires_at: i64,
}

/// Why a token request failed (RFC 6749 §5.2): the HTTP status and the `error` code; each
/// fake renders it in its network's error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

fn oauth_error(status: u16, error: &'static str, description: &str) -> OAuthError {
    OAuthError {
        status,
        error,
        description: description.to_owned(),
    }
}

/// Tokens a grant issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    pub scope: String,
    pub user: String,
}

/// An OAuth 2.0 authorization server as networks run it: registered clients with exact
/// redirect URIs, single-use codes that expire after ten minutes, PKCE S256 checked when the
/// authorization carried a challenge (and required when `require_pkce`), client secrets
/// checked (Basic or in the body), expiring access tokens, rotating refresh tokens, revocation.
#[derive(Clone)]
pub struct OAuthServer(Arc<Mutex<OAuthInner>>);

struct OAuthInner {
    clock: Arc<dyn Clock>,
    clients: HashMap<String, Client>,
    codes: HashMap<String, Code>,
    tokens: HashMap<String, Token>,
    refresh: HashMap<String, Token>,
    access_ttl: i64,
    refresh_tokens: bool,
    require_pkce: bool,
    /// The user who approves at the authorization endpoint.
    user: String,
}

impl OAuthServer {
    /// A server on `clock` whose access tokens live `access_ttl` seconds, issuing refresh tokens when
    /// `refresh_tokens`, with one client (`client_id`, `client_secret`) for any redirect URI
    /// under `http://127.0.0.1` or `https://` that a test names.
    pub fn new(
        clock: Arc<dyn Clock>,
        access_ttl: i64,
        refresh_tokens: bool,
        require_pkce: bool,
    ) -> Self {
        let server = Self(Arc::new(Mutex::new(OAuthInner {
            clock,
            clients: HashMap::new(),
            codes: HashMap::new(),
            tokens: HashMap::new(),
            refresh: HashMap::new(),
            access_ttl,
            refresh_tokens,
            require_pkce,
            user: "user-1".into(),
        })));
        server.register(Client {
            id: "crier-client".into(),
            secret: "crier-secret".into(),
            redirect_uris: Vec::new(),
        });
        server
    }

    pub fn register(&self, c: Client) {
        self.0
            .lock()
            .expect("oauth")
            .clients
            .insert(c.id.clone(), c);
    }

    /// The user who approves from now on.
    pub fn set_user(&self, user: &str) {
        self.0.lock().expect("oauth").user = user.to_owned();
    }

    /// The authorization endpoint, approving at once as the current user: where to send the
    /// browser (`redirect_uri?code=…&state=…`), or the error.
    pub fn authorize(
        &self,
        query: &HashMap<String, String>,
        client_id_param: &str,
    ) -> Result<url::Url, OAuthError> {
        let q = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
        if q("response_type") != "code" {
            return Err(oauth_error(
                400,
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
        let mut i = self.0.lock().expect("oauth");
        let client = i
            .clients
            .get(q(client_id_param))
            .cloned()
            .ok_or_else(|| oauth_error(400, "invalid_client", "unknown client"))?;
        let redirect = q("redirect_uri");
        if redirect.is_empty()
            || (!client.redirect_uris.is_empty()
                && !client.redirect_uris.iter().any(|r| r == redirect))
        {
            return Err(oauth_error(
                400,
                "invalid_request",
                "redirect_uri is not registered",
            ));
        }
        let challenge = match (q("code_challenge"), q("code_challenge_method")) {
            ("", _) if i.require_pkce => {
                return Err(oauth_error(
                    400,
                    "invalid_request",
                    "code_challenge is required",
                ));
            }
            ("", _) => None,
            (c, "S256") => Some(c.to_owned()),
            _ => {
                return Err(oauth_error(
                    400,
                    "invalid_request",
                    "only S256 is supported",
                ));
            }
        };
        let code = random(24);
        let user = i.user.clone();
        let expires_at = now_secs(i.clock.as_ref()) + 600;
        i.codes.insert(
            code.clone(),
            Code {
                client_id: client.id,
                redirect_uri: redirect.to_owned(),
                challenge,
                user,
                scope: q("scope").to_owned(),
                expires_at,
            },
        );
        let mut url = url::Url::parse(redirect)
            .map_err(|_| oauth_error(400, "invalid_request", "redirect_uri is not a URL"))?;
        url.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", q("state"));
        Ok(url)
    }

    /// The client a token request authenticates as: HTTP Basic, or id and secret in the form.
    fn client(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
        id_param: &str,
    ) -> Result<Client, OAuthError> {
        let basic = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                let (id, secret) = s.split_once(':')?;
                let dec = |x: &str| {
                    url::form_urlencoded::parse(format!("a={x}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                };
                Some((dec(id)?, dec(secret)?))
            });
        let (id, secret) = match basic {
            Some(pair) => pair,
            None => (
                form.get(id_param).cloned().unwrap_or_default(),
                form.get("client_secret").cloned().unwrap_or_default(),
            ),
        };
        let i = self.0.lock().expect("oauth");
        match i.clients.get(&id) {
            Some(c) if c.secret == secret => Ok(c.clone()),
            _ => Err(oauth_error(
                401,
                "invalid_client",
                "client authentication failed",
            )),
        }
    }

    /// The token endpoint (`grant_type` `authorization_code` or `refresh_token`).
    pub fn token(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
        id_param: &str,
    ) -> Result<Issued, OAuthError> {
        let client = self.client(headers, form, id_param)?;
        let f = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        let mut i = self.0.lock().expect("oauth");
        let (user, scope) = match f("grant_type") {
            "authorization_code" => {
                let code = i.codes.remove(f("code")).ok_or_else(|| {
                    oauth_error(400, "invalid_grant", "the code is unknown or used")
                })?;
                if code.expires_at < now_secs(i.clock.as_ref()) || code.client_id != client.id {
                    return Err(oauth_error(
                        400,
                        "invalid_grant",
                        "the code is expired or not this client's",
                    ));
                }
                if code.redirect_uri != f("redirect_uri") {
                    return Err(oauth_error(
                        400,
                        "invalid_grant",
                        "redirect_uri does not match",
                    ));
                }
                if let Some(challenge) = &code.challenge {
                    let verifier = f("code_verifier");
                    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(sha2::Sha256::digest(verifier.as_bytes()));
                    if verifier.is_empty() || &computed != challenge {
                        return Err(oauth_error(
                            400,
                            "invalid_grant",
                            "code_verifier does not match",
                        ));
                    }
                }
                (code.user, code.scope)
            }
            "refresh_token" => {
                let old = i.refresh.remove(f("refresh_token")).ok_or_else(|| {
                    oauth_error(400, "invalid_grant", "the refresh token is invalid")
                })?;
                if old.client_id != client.id {
                    return Err(oauth_error(
                        400,
                        "invalid_grant",
                        "not this client's refresh token",
                    ));
                }
                (old.user, old.scope)
            }
            _ => {
                return Err(oauth_error(
                    400,
                    "unsupported_grant_type",
                    "unsupported grant_type",
                ));
            }
        };
        Ok(i.issue(&user, &client.id, &scope))
    }

    /// Tokens for `user` issued directly (tests that start connected).
    pub fn issue(&self, user: &str, scope: &str) -> Issued {
        self.0
            .lock()
            .expect("oauth")
            .issue(user, "crier-client", scope)
    }

    /// The user a bearer token acts for; `None` when it is unknown, revoked or expired.
    pub fn bearer(&self, headers: &HeaderMap) -> Option<Token> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))?;
        self.token_info(token)
    }

    pub fn token_info(&self, token: &str) -> Option<Token> {
        let i = self.0.lock().expect("oauth");
        let now = now_secs(i.clock.as_ref());
        i.tokens.get(token).filter(|t| t.expires_at > now).cloned()
    }

    /// Revokes a token (access or refresh) and, with it, the grant's other tokens.
    pub fn revoke(&self, token: &str) {
        let mut i = self.0.lock().expect("oauth");
        let user = i
            .tokens
            .get(token)
            .or_else(|| i.refresh.get(token))
            .map(|t| (t.user.clone(), t.client_id.clone()));
        if let Some((user, client)) = user {
            i.tokens
                .retain(|_, t| !(t.user == user && t.client_id == client));
            i.refresh
                .retain(|_, t| !(t.user == user && t.client_id == client));
        }
    }

    /// The user removed the app: every token of `user` stops working.
    pub fn revoke_user(&self, user: &str) {
        let mut i = self.0.lock().expect("oauth");
        i.tokens.retain(|_, t| t.user != user);
        i.refresh.retain(|_, t| t.user != user);
    }

    /// Every access token of `user` expires now (refresh tokens stay).
    pub fn expire_access(&self, user: &str) {
        let mut i = self.0.lock().expect("oauth");
        for t in i.tokens.values_mut().filter(|t| t.user == user) {
            t.expires_at = 0;
        }
    }
}

impl OAuthInner {
    fn issue(&mut self, user: &str, client_id: &str, scope: &str) -> Issued {
        let token = Token {
            user: user.to_owned(),
            client_id: client_id.to_owned(),
            scope: scope.to_owned(),
            expires_at: now_secs(self.clock.as_ref()) + self.access_ttl,
        };
        let access = random(24);
        self.tokens.insert(access.clone(), token.clone());
        let refresh = self.refresh_tokens.then(|| {
            let r = random(24);
            self.refresh.insert(r.clone(), token);
            r
        });
        Issued {
            access_token: access,
            refresh_token: refresh,
            expires_in: self.access_ttl,
            scope: scope.to_owned(),
            user: user.to_owned(),
        }
    }
}

/// Parses a form body.
pub fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Follows an authorization URL the way a user who approves would: the fake answers with a
/// redirect to `redirect_uri?code=…&state=…`; the code and state.
pub async fn approve(authorize_url: &url::Url) -> (String, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let resp = http
        .get(authorize_url.clone())
        .send()
        .await
        .expect("the authorization endpoint answers");
    let location = resp
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no redirect from {authorize_url}: {}", resp.status()))
        .to_str()
        .expect("a location")
        .to_owned();
    let url = url::Url::parse(&location).expect("a redirect URL");
    let get = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no {k} in {location}"))
    };
    (get("code"), get("state"))
}

// ---------------------------------------------------------------------------------------------
// Media
// ---------------------------------------------------------------------------------------------

/// A real PNG of `w`×`h` grey pixels (stored deflate blocks).
pub fn png(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    }
    let mut raw = Vec::new();
    for _ in 0..h {
        raw.push(0u8);
        raw.extend(std::iter::repeat_n(0x80u8, (w * 3) as usize));
    }
    // zlib: header, stored blocks of at most 65535 bytes, adler32.
    let mut z = vec![0x78, 0x01];
    let mut chunks = raw.chunks(65_535).peekable();
    while let Some(c) = chunks.next() {
        z.push(u8::from(chunks.peek().is_none()));
        z.extend_from_slice(&(c.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(c.len() as u16)).to_le_bytes());
        z.extend_from_slice(c);
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

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The first bytes of an MP4 (`ftyp` box) followed by `len` filler bytes: enough for the
/// fakes, which check the container type, not the frames.
pub fn mp4(len: usize) -> Vec<u8> {
    let mut out = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    out.resize(out.len() + len, 0);
    out
}
