//! crier as the OAuth 2.1 authorization server of its own API and MCP server (the MCP
//! authorization spec): an assistant discovers crier, registers itself (RFC 7591) or names
//! itself by a client metadata document URL, sends its user to approve (authorization code
//! with PKCE S256), and exchanges the code for a short-lived access token and a rotating
//! refresh token bound to this server (RFC 8707).
//!
//! The rules live here; the HTTP edge (`crier_api::routes::oauth_server`, the consent page in
//! the dashboard) renders them, and makes the grant's key with the key rules, bounded by the
//! approving user's role, as for device logins. What is kept and how it changes is
//! `crier_store::oauth_server`.
//!
//! Bounds: at most [`MAX_CLIENTS`] clients are kept and an unused one is forgotten after
//! [`CLIENT_UNUSED_MS`]; at most [`MAX_OPEN_CODES`] codes wait at once, each for
//! [`CODE_LIFETIME_MS`]; a grant keeps the last [`crier_store::KEPT_REFRESH_TOKENS`] used
//! refresh tokens. Every request field has a length limit.

use std::borrow::Cow;

use base64::Engine as _;
use crier_core::ids::{KeyId, UserId};
use crier_core::keys::{is_token, random_token};
use crier_core::{KeyDigest, ScopeSet};
use crier_store::{AppClient, AppCode, AppGrant, ClientKind, RefreshToken};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::users::Seat;
use crate::{App, AppError};

pub const CLIENT_PREFIX: &str = "oac_";
pub const CLIENT_SECRET_PREFIX: &str = "ocs_";
pub const CODE_PREFIX: &str = "oco_";
pub const REFRESH_PREFIX: &str = "ort_";

/// An authorization code lives a minute.
pub const CODE_LIFETIME_MS: i64 = 60_000;
/// An access token lives an hour.
pub const ACCESS_LIFETIME_MS: i64 = 3_600_000;
/// A grant ends when it was not refreshed for 30 days.
pub const GRANT_LIFETIME_MS: i64 = 30 * 86_400_000;
/// A client with no live grant that was not used for 30 days is forgotten.
pub const CLIENT_UNUSED_MS: i64 = 30 * 86_400_000;
/// A metadata document is read again when it is older than a day.
pub const METADATA_TTL_MS: i64 = 86_400_000;
/// Clients kept at most. At the cap, the oldest that never got a code makes room for a new
/// one (registered, or read from a metadata document): a loop of registrations or of made-up
/// documents evicts its own, and cannot refuse everyone else's apps.
pub const MAX_CLIENTS: i64 = 10_000;
pub const MAX_OPEN_CODES: i64 = 10_000;
/// Codes one person may have waiting at once.
pub const MAX_OPEN_CODES_PER_USER: i64 = 10;
pub const MAX_REDIRECT_URIS: usize = 10;
pub const MAX_URI: usize = 2000;
pub const MAX_CLIENT_NAME: usize = 100;
pub const MAX_STATE: usize = 1000;
/// The most of a client metadata document that is read.
pub const MAX_METADATA_BYTES: usize = 5 * 1024;

/// A refusal in the terms of RFC 6749 §5.2 (and RFC 7591 §3.2.2 for registration): `error`
/// is one of the registered codes, `description` says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: Cow<'static, str>,
    /// The HTTP status it answers with.
    pub status: u16,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        let status = match error {
            "invalid_client" => 401,
            "server_error" => 500,
            "temporarily_unavailable" => 503,
            _ => 400,
        };
        Self {
            error,
            description: description.into(),
            status,
        }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new("invalid_request", description)
    }

    fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new("invalid_grant", description)
    }
}

impl From<AppError> for OAuthError {
    fn from(e: AppError) -> Self {
        match e.code {
            crier_core::ErrorCode::InternalError => {
                tracing::error!(error = %e.message, "oauth server");
                Self::new(
                    "server_error",
                    "Something went wrong on our side; try again.",
                )
            }
            crier_core::ErrorCode::RateLimited => Self::new("temporarily_unavailable", e.message),
            _ => Self::invalid_request(e.message),
        }
    }
}

impl From<crier_store::StoreError> for OAuthError {
    fn from(e: crier_store::StoreError) -> Self {
        AppError::from(e).into()
    }
}

pub type OAuthResult<T> = Result<T, OAuthError>;

/// A registration request (RFC 7591 §2): the fields crier reads; others are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientMetadata {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
}

/// The resources this server's tokens are for: the API (`base`) and its MCP endpoint.
pub fn resources(base: &str) -> [String; 2] {
    let base = base.trim_end_matches('/');
    [base.to_owned(), format!("{base}/mcp")]
}

/// The issuer identifier: the public URL, with a `/` when it has no path (RFC 8414 compares
/// issuers as strings, and clients render an origin with its slash).
pub fn issuer(base: &str) -> String {
    let base = base.trim_end_matches('/');
    match url::Url::parse(base) {
        Ok(u) if u.path() == "/" || u.path().is_empty() => format!("{base}/"),
        _ => base.to_owned(),
    }
}

/// The resource a request names, checked (RFC 8707): one of [`resources`] (a trailing slash
/// does not matter); none named is the whole API.
pub fn check_resource(base: &str, given: Option<&str>) -> OAuthResult<String> {
    let all = resources(base);
    match given.map(|r| r.trim_end_matches('/')) {
        None | Some("") => Ok(all[0].clone()),
        Some(r) => all
            .iter()
            .find(|a| a.as_str() == r)
            .cloned()
            .ok_or_else(|| {
                OAuthError::new(
                    "invalid_target",
                    format!(
                        "This server only issues tokens for itself ({} or {}).",
                        all[0], all[1]
                    ),
                )
            }),
    }
}

/// Whether a redirect URI may be registered: absolute, no fragment, `https`, or `http` on a
/// loopback address (native apps, RFC 8252 §7.3), or a private-use scheme with a dot
/// (`com.example.app:/cb`, RFC 8252 §7.1).
fn check_redirect_shape(raw: &str) -> Result<url::Url, String> {
    if raw.len() > MAX_URI {
        return Err(format!(
            "A redirect URI may be at most {MAX_URI} characters."
        ));
    }
    // The URL parser would encode or drop them, but the URI is kept (and compared) as sent.
    if raw.contains(char::is_control) {
        return Err("A redirect URI may not contain control characters.".to_owned());
    }
    let u = url::Url::parse(raw).map_err(|_| format!("`{raw}` is not an absolute URI."))?;
    if u.fragment().is_some() {
        return Err(format!("`{raw}` has a fragment; redirect URIs may not."));
    }
    match u.scheme() {
        "https" => Ok(u),
        "http" if is_loopback(&u) => Ok(u),
        "http" => Err(format!(
            "`{raw}` is plain http: only loopback redirects (127.0.0.1, [::1], localhost) may \
             use http."
        )),
        s if s.contains('.') => Ok(u),
        _ => Err(format!(
            "`{raw}` has a scheme crier does not redirect to (https, loopback http, or a \
             reverse-domain private scheme)."
        )),
    }
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether `given` is one of `registered`: exactly, except that a loopback redirect matches on
/// any port (RFC 8252 §7.3: native apps listen on a port of the moment).
pub fn redirect_matches(registered: &[String], given: &str) -> bool {
    if registered.iter().any(|r| r == given) {
        return true;
    }
    let Ok(g) = url::Url::parse(given) else {
        return false;
    };
    if g.scheme() != "http" || !is_loopback(&g) {
        return false;
    }
    registered.iter().any(|r| {
        url::Url::parse(r).is_ok_and(|mut r| {
            r.scheme() == "http"
                && is_loopback(&r)
                && r.host() == g.host()
                && r.set_port(g.port()).is_ok()
                && r == g
        })
    })
}

/// The `code_challenge` of `verifier` (S256, RFC 7636 §4.2), if the verifier has its shape.
pub fn s256(verifier: &str) -> Option<String> {
    let ok = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    ok.then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier)))
}

/// The scopes a request names (space-separated). Names crier does not know (`openid`,
/// `offline_access`, another server's) are left out: the token's `scope` says what was granted
/// (RFC 6749 §3.3).
pub fn requested_scopes(scope: Option<&str>) -> ScopeSet {
    let mut set = ScopeSet::EMPTY;
    for name in scope.unwrap_or("").split_ascii_whitespace().take(64) {
        if let Ok(s) = ScopeSet::parse_list([name]) {
            set = set.union(s);
        }
    }
    set
}

/// A checked authorization request: what the consent page shows and the approval uses.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub client: AppClient,
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` (then the code exchange must name it too).
    pub redirect_given: bool,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scopes: ScopeSet,
    pub resource: String,
}

/// The query of `GET /oauth/authorize` (and the fields of its form).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeQuery {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    pub scope: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub resource: Option<String>,
}

/// A code checked for exchange: its digest (to redeem it) and what it carries.
#[derive(Debug)]
pub struct CodeGrant {
    pub digest: KeyDigest,
    pub code: AppCode,
}

/// A refresh token checked for use: its digest and the grant's key.
#[derive(Debug)]
pub struct RefreshGrant {
    pub digest: KeyDigest,
    pub grant: crier_store::AppGrant,
}

/// The rules (see the module).
pub struct OAuthServer<'a> {
    pub(crate) app: &'a App,
}

impl App {
    pub fn oauth_server(&self) -> OAuthServer<'_> {
        OAuthServer { app: self }
    }
}

fn one_line(field: &str, value: &str, max: usize) -> OAuthResult<String> {
    let v = value.trim();
    if value.chars().count() > max || v.chars().any(char::is_control) {
        return Err(OAuthError::new(
            "invalid_client_metadata",
            format!("`{field}` must be at most {max} characters on one line."),
        ));
    }
    Ok(v.to_owned())
}

/// The checked redirect URIs of a registration or a metadata document.
fn redirect_list(uris: Option<&Vec<String>>) -> OAuthResult<Vec<String>> {
    let uris = uris.filter(|u| !u.is_empty()).ok_or_else(|| {
        OAuthError::new(
            "invalid_redirect_uri",
            "`redirect_uris` must list at least one URI.",
        )
    })?;
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::new(
            "invalid_redirect_uri",
            format!("`redirect_uris` may list at most {MAX_REDIRECT_URIS} URIs."),
        ));
    }
    uris.iter()
        .map(|u| {
            check_redirect_shape(u)
                .map(|_| u.clone())
                .map_err(|m| OAuthError::new("invalid_redirect_uri", m))
        })
        .collect()
}

/// The display name of a client that gave none: the host of its first redirect.
fn default_name(uris: &[String]) -> String {
    uris.first()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "Unnamed app".into())
}

impl OAuthServer<'_> {
    fn now(&self) -> i64 {
        self.app.clock().now_ms()
    }

    /// A client as `m` registers it (RFC 7591), checked but not kept yet: the client and, for
    /// a confidential one, its secret (shown once; only its digest is kept). [`Self::register`]
    /// keeps it.
    pub fn registration(&self, m: &ClientMetadata) -> OAuthResult<(AppClient, Option<String>)> {
        let redirect_uris = redirect_list(m.redirect_uris.as_ref())?;
        let method = m
            .token_endpoint_auth_method
            .as_deref()
            .unwrap_or("client_secret_basic");
        if !matches!(
            method,
            "none" | "client_secret_basic" | "client_secret_post"
        ) {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "`token_endpoint_auth_method` must be none, client_secret_basic or \
                 client_secret_post.",
            ));
        }
        // As the OpenAPI description bounds them: each type at most once is 2 and 1.
        if m.grant_types.as_ref().is_some_and(|g| g.len() > 2) {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "`grant_types` may list at most 2 types (authorization_code, refresh_token).",
            ));
        }
        if m.response_types.as_ref().is_some_and(|r| r.len() > 1) {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "`response_types` may list at most 1 type (code).",
            ));
        }
        for g in m.grant_types.iter().flatten() {
            if !matches!(g.as_str(), "authorization_code" | "refresh_token") {
                return Err(OAuthError::new(
                    "invalid_client_metadata",
                    format!(
                        "Grant type `{g}` is not supported (authorization_code, refresh_token)."
                    ),
                ));
            }
        }
        if m.response_types.iter().flatten().any(|r| r != "code") {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "Only the `code` response type is supported.",
            ));
        }
        // The bound is on the name as sent (the description's maxLength), blank or not; a
        // blank one then falls back to the default.
        let name = match m.client_name.as_deref() {
            Some(n) => Some(one_line("client_name", n, MAX_CLIENT_NAME)?),
            None => None,
        }
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| default_name(&redirect_uris));
        let now = self.now();
        let secret = (method != "none").then(|| random_token(CLIENT_SECRET_PREFIX));
        let client = AppClient {
            id: random_token(CLIENT_PREFIX),
            kind: ClientKind::Registered,
            name,
            redirect_uris,
            auth_method: method.to_owned(),
            secret_digest: secret.as_deref().map(KeyDigest::of),
            created_at: now,
            used_at: now,
            fetched_at: None,
        };
        Ok((client, secret))
    }

    /// Keeps a client [`Self::registration`] made, making room at [`MAX_CLIENTS`].
    pub async fn register(&self, client: &AppClient) -> OAuthResult<()> {
        self.room_for_client().await?;
        self.app.store().put_app_client(client).await?;
        Ok(())
    }

    /// The client `id` names: a registered one, or the one whose metadata document is at the
    /// URL `id` (read through the SSRF guard, kept a day; `fetch` false: only as kept, for the
    /// token and revocation endpoints, which never make crier fetch anything).
    pub async fn client(&self, id: &str, fetch: bool) -> OAuthResult<AppClient> {
        let unknown = || OAuthError::new("invalid_client", "No such client; register first.");
        // A NUL could not even be looked up on PostgreSQL.
        if !crier_core::text::is_storable(id, MAX_URI) {
            return Err(unknown());
        }
        let store = self.app.store();
        if is_token(id, CLIENT_PREFIX) {
            return store.app_client(id).await?.ok_or_else(unknown);
        }
        if !id.starts_with("https://") && !id.starts_with("http://") {
            return Err(unknown());
        }
        let kept = store.app_client(id).await?;
        if !fetch {
            return kept.ok_or_else(unknown);
        }
        let now = self.now();
        if let Some(c) = &kept
            && c.fetched_at.is_some_and(|t| now - t < METADATA_TTL_MS)
        {
            return Ok(c.clone());
        }
        let client = self.read_metadata(id, now).await?;
        if kept.is_none() {
            self.room_for_client().await?;
        }
        store.put_app_client(&client).await?;
        Ok(client)
    }

    /// Room for one more client: at [`MAX_CLIENTS`], the oldest never used goes; refused only
    /// when every client kept has a code or a grant.
    async fn room_for_client(&self) -> OAuthResult<()> {
        let store = self.app.store();
        if store.count_app_clients().await? < MAX_CLIENTS {
            return Ok(());
        }
        if !store.make_room_for_app_client().await? {
            return Err(OAuthError::new(
                "temporarily_unavailable",
                "Too many apps are known to this server; try again later.",
            ));
        }
        Ok(())
    }

    /// Reads and checks a client ID metadata document.
    async fn read_metadata(&self, url: &str, now: i64) -> OAuthResult<AppClient> {
        let refuse = |m: String| OAuthError::new("invalid_client", m);
        let settings = self.app.fetch_settings();
        let parsed =
            url::Url::parse(url).map_err(|_| refuse("The client_id is not a URL.".into()))?;
        // https only, unless the operator allows private networks (a machine of its own,
        // tests): a document over plain http could be anyone's.
        if parsed.scheme() != "https" && !settings.allow_private_networks {
            return Err(refuse("A client_id URL must be https.".into()));
        }
        if parsed.path() == "/" || parsed.fragment().is_some() {
            return Err(refuse(
                "A client_id URL must have a path and no fragment.".into(),
            ));
        }
        let fetched = crate::fetch::get(
            settings,
            url,
            "application/json",
            MAX_METADATA_BYTES,
            "client metadata document",
            |ct| match ct.is_empty() || ct.contains("json") {
                true => Ok(()),
                false => Err(format!("The client metadata document is {ct}, not JSON.")),
            },
        )
        .await
        .map_err(|e| refuse(format!("The client metadata document: {}", e.message)))?;
        // Followed redirects would let a document elsewhere speak for this URL.
        if fetched.final_url.as_str() != fetched.url.as_str() {
            return Err(refuse(
                "The client metadata document must be served at its URL, not redirected.".into(),
            ));
        }
        let doc: ClientMetadata = serde_json::from_slice(&fetched.body)
            .map_err(|e| refuse(format!("The client metadata document is not valid: {e}.")))?;
        if doc.client_id.as_deref() != Some(url) {
            return Err(refuse(
                "The client metadata document's `client_id` is not its own URL.".into(),
            ));
        }
        if doc
            .token_endpoint_auth_method
            .as_deref()
            .is_some_and(|m| m != "none")
        {
            return Err(refuse(
                "A client named by a metadata document authenticates with `none` (PKCE).".into(),
            ));
        }
        let redirect_uris =
            redirect_list(doc.redirect_uris.as_ref()).map_err(|e| refuse(e.description.into()))?;
        let name = match doc.client_name.as_deref() {
            Some(n) if !n.trim().is_empty() => one_line("client_name", n, MAX_CLIENT_NAME)
                .map_err(|e| refuse(e.description.into()))?,
            _ => parsed.host_str().unwrap_or("Unnamed app").to_owned(),
        };
        Ok(AppClient {
            id: url.to_owned(),
            kind: ClientKind::Metadata,
            name,
            redirect_uris,
            auth_method: "none".into(),
            secret_digest: None,
            created_at: now,
            used_at: now,
            fetched_at: Some(now),
        })
    }

    /// The client of a token request, authenticated as it registered: its secret in the body
    /// or in `Authorization: Basic`, or none for a public client.
    pub async fn authenticate_client(
        &self,
        id: Option<&str>,
        secret: Option<&str>,
    ) -> OAuthResult<AppClient> {
        // No client named at all is a failed client authentication (RFC 6749 §5.2).
        let id = id.ok_or_else(|| {
            OAuthError::new("invalid_client", "Name the client: `client_id` or Basic.")
        })?;
        let client = self.client(id, false).await?;
        let bad = || OAuthError::new("invalid_client", "Client authentication failed.");
        match (&client.secret_digest, secret) {
            (None, None) => Ok(client),
            (Some(d), Some(s)) if is_token(s, CLIENT_SECRET_PREFIX) && KeyDigest::of(s) == *d => {
                Ok(client)
            }
            _ => Err(bad()),
        }
    }

    /// Checks an authorization request (`GET /oauth/authorize`) against its client. Every
    /// refusal is shown to the person on crier's page, none is sent to the redirect: before
    /// the person answers, a redirect to an address a client registered (anyone may register)
    /// would make crier an open redirector (RFC 9700 §4.11.2).
    pub async fn authorization(
        &self,
        base: &str,
        q: &AuthorizeQuery,
    ) -> OAuthResult<Authorization> {
        let client_id = q
            .client_id
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("`client_id` is missing."))?;
        let client = self.client(client_id, true).await?;
        let redirect_uri = match q.redirect_uri.as_deref() {
            Some(r) if redirect_matches(&client.redirect_uris, r) => r.to_owned(),
            Some(_) => {
                return Err(OAuthError::invalid_request(
                    "`redirect_uri` is not one this client registered.",
                ));
            }
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => {
                return Err(OAuthError::invalid_request(
                    "`redirect_uri` is missing, and this client registered several.",
                ));
            }
        };
        let state = q.state.clone();
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
            return Err(OAuthError::invalid_request(format!(
                "`state` may be at most {MAX_STATE} characters."
            )));
        }
        if q.response_type.as_deref() != Some("code") {
            return Err(OAuthError::new(
                "unsupported_response_type",
                "Only `response_type=code` is supported.",
            ));
        }
        let challenge = q.code_challenge.as_deref().unwrap_or("");
        let challenge_ok = challenge.len() == 43
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        if q.code_challenge_method.as_deref() != Some("S256") || !challenge_ok {
            return Err(OAuthError::invalid_request(
                "PKCE is required: send `code_challenge` (S256 of your verifier, base64url) and \
                 `code_challenge_method=S256`.",
            ));
        }
        let resource = check_resource(base, q.resource.as_deref())?;
        Ok(Authorization {
            client,
            redirect_uri,
            redirect_given: q.redirect_uri.is_some(),
            state,
            code_challenge: challenge.to_owned(),
            scopes: requested_scopes(q.scope.as_deref()),
            resource,
        })
    }

    /// Issues the code for an approved request: `scopes`, granted by `user` in the seat's
    /// workspace, must be within the seat's role.
    pub async fn approve(
        &self,
        auth: &Authorization,
        user: &UserId,
        seat: &Seat,
        scopes: ScopeSet,
    ) -> OAuthResult<String> {
        if scopes.is_empty() {
            return Err(OAuthError::invalid_request("Pick at least one permission."));
        }
        if !scopes.is_subset_of(seat.role.scopes()) {
            return Err(OAuthError::new(
                "access_denied",
                format!(
                    "Your role in this workspace ({}) cannot grant {}.",
                    seat.role.as_str(),
                    scopes.difference(seat.role.scopes()).names().join(", ")
                ),
            ));
        }
        let store = self.app.store();
        let now = self.now();
        let (open, mine) = store.count_open_app_codes(user, now).await?;
        if open >= MAX_OPEN_CODES || mine >= MAX_OPEN_CODES_PER_USER {
            return Err(OAuthError::new(
                "temporarily_unavailable",
                "Too many authorizations are waiting; try again in a minute.",
            ));
        }
        let code = random_token(CODE_PREFIX);
        let row = AppCode {
            client_id: auth.client.id.clone(),
            user_id: user.clone(),
            workspace_id: seat.workspace.id.clone(),
            scopes,
            // Empty when the request left it out: the exchange then need not name it.
            redirect_uri: match auth.redirect_given {
                true => auth.redirect_uri.clone(),
                false => String::new(),
            },
            code_challenge: auth.code_challenge.clone(),
            resource: auth.resource.clone(),
            created_at: now,
            expires_at: now + CODE_LIFETIME_MS,
            used_at: None,
            key_id: None,
        };
        store.insert_app_code(&KeyDigest::of(&code), &row).await?;
        Ok(code)
    }

    /// Checks a code exchange (`grant_type=authorization_code`): the code is this client's,
    /// unused and unexpired, for this redirect and resource, and the verifier matches its
    /// challenge. A code presented again ends the grant it yielded (RFC 9700 §4.10).
    pub async fn check_code(
        &self,
        base: &str,
        client: &AppClient,
        code: Option<&str>,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        resource: Option<&str>,
    ) -> OAuthResult<CodeGrant> {
        let code = code.ok_or_else(|| OAuthError::invalid_request("`code` is missing."))?;
        let invalid = || OAuthError::invalid_grant("The code is invalid, expired or used.");
        if !is_token(code, CODE_PREFIX) {
            return Err(invalid());
        }
        let digest = KeyDigest::of(code);
        let now = self.now();
        let found = self
            .app
            .store()
            .app_code(&digest)
            .await?
            .ok_or_else(invalid)?;
        if found.client_id != client.id {
            return Err(invalid());
        }
        if found.used_at.is_some() {
            if let Some(key) = &found.key_id {
                self.end_replayed(key, "authorization code").await?;
            }
            return Err(invalid());
        }
        if found.expires_at <= now {
            return Err(invalid());
        }
        let redirect_ok = match (found.redirect_uri.as_str(), redirect_uri) {
            // Not named in the request: absent here, or the client's own.
            ("", None) => true,
            ("", Some(r)) => redirect_matches(&client.redirect_uris, r),
            (asked, given) => given == Some(asked),
        };
        if !redirect_ok {
            return Err(OAuthError::invalid_grant(
                "`redirect_uri` is not the one of the authorization request.",
            ));
        }
        let verifier =
            verifier.ok_or_else(|| OAuthError::invalid_request("`code_verifier` is missing."))?;
        if s256(verifier).as_deref() != Some(found.code_challenge.as_str()) {
            return Err(OAuthError::invalid_grant(
                "`code_verifier` does not match the code challenge.",
            ));
        }
        if resource.is_some() && check_resource(base, resource)? != found.resource {
            return Err(OAuthError::new(
                "invalid_target",
                "`resource` is not the one of the authorization request.",
            ));
        }
        Ok(CodeGrant {
            digest,
            code: found,
        })
    }

    /// Checks a refresh (`grant_type=refresh_token`): the token is this client's and its
    /// grant alive. A used token presented again ends the grant (replay).
    pub async fn check_refresh(
        &self,
        base: &str,
        client: &AppClient,
        token: Option<&str>,
        resource: Option<&str>,
    ) -> OAuthResult<RefreshGrant> {
        let token =
            token.ok_or_else(|| OAuthError::invalid_request("`refresh_token` is missing."))?;
        let invalid = || OAuthError::invalid_grant("The refresh token is invalid or expired.");
        if !is_token(token, REFRESH_PREFIX) {
            return Err(invalid());
        }
        let digest = KeyDigest::of(token);
        let store = self.app.store();
        let Some(RefreshToken { key_id, used_at }) = store.app_refresh_token(&digest).await? else {
            return Err(invalid());
        };
        let grant = store.app_grant(&key_id).await?.ok_or_else(invalid)?;
        if grant.client_id != client.id {
            return Err(invalid());
        }
        if used_at.is_some() {
            self.end_replayed(&key_id, "refresh token").await?;
            return Err(OAuthError::invalid_grant(
                "This refresh token was used before: the grant is revoked. Sign in again.",
            ));
        }
        if grant.revoked_at.is_some() || grant.expires_at <= self.now() {
            return Err(invalid());
        }
        if resource.is_some() && check_resource(base, resource)? != grant.resource {
            return Err(OAuthError::new(
                "invalid_target",
                "`resource` is not the one this grant is for.",
            ));
        }
        Ok(RefreshGrant { digest, grant })
    }

    /// Ends the grant a replayed code or refresh token yielded (it may have leaked).
    pub async fn end_replayed(&self, key: &KeyId, what: &str) -> OAuthResult<()> {
        let now = self.now();
        if self
            .app
            .store()
            .revoke_app_grant(None, key, now, None)
            .await?
        {
            tracing::warn!(grant = %key, "an OAuth {what} was replayed: the grant is revoked");
        }
        Ok(())
    }

    /// The live grants of the seat's workspace that `user` may see: all of them for an owner
    /// or admin, their own for a member.
    pub async fn grants(&self, seat: &Seat, user: &UserId) -> crate::AppResult<Vec<AppGrant>> {
        let only = (!seat.role.administers()).then_some(user);
        Ok(self
            .app
            .store()
            .list_app_grants(&seat.workspace.id, only, self.now())
            .await?)
    }

    /// Revokes a grant of the seat's workspace (`user`'s own, or any for an owner or admin):
    /// its access token is refused on every node at once, its refresh token ends.
    pub async fn revoke_grant(&self, seat: &Seat, user: &UserId, id: &str) -> crate::AppResult<()> {
        let not_found = || AppError::not_found("connected app", id);
        let key = KeyId::parse(id).ok_or_else(not_found)?;
        let store = self.app.store();
        let grant = store
            .app_grant(&key)
            .await?
            .filter(|g| g.workspace_id == seat.workspace.id)
            .filter(|g| seat.role.administers() || &g.user_id == user)
            .ok_or_else(not_found)?;
        let now = self.now();
        let audit = crier_store::AuditEntry::new(
            &seat.workspace.id,
            crier_store::Actor::User(user.clone()),
            "key.revoked",
            key.as_str(),
            None,
            serde_json::json!({"oauth_client": grant.client_id, "client_name": grant.client_name}),
            now,
        );
        store
            .revoke_app_grant(Some(&seat.workspace.id), &key, now, Some(&audit))
            .await?;
        Ok(())
    }

    /// A fresh refresh token and its digest.
    pub fn new_refresh_token() -> (String, KeyDigest) {
        let t = random_token(REFRESH_PREFIX);
        let d = KeyDigest::of(&t);
        (t, d)
    }

    /// Forgets expired codes, refresh tokens of ended grants and unused clients.
    pub async fn purge(&self) -> OAuthResult<u64> {
        let now = self.now();
        Ok(self
            .app
            .store()
            .purge_oauth_server(now, now - CLIENT_UNUSED_MS)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_on_any_port_and_others_exactly() {
        let reg = vec![
            "http://127.0.0.1:33418/callback".to_owned(),
            "https://app.example/cb".to_owned(),
        ];
        assert!(redirect_matches(&reg, "http://127.0.0.1:33418/callback"));
        assert!(redirect_matches(&reg, "http://127.0.0.1:5000/callback"));
        assert!(!redirect_matches(&reg, "http://127.0.0.1:5000/other"));
        assert!(!redirect_matches(&reg, "http://localhost:5000/callback"));
        assert!(redirect_matches(&reg, "https://app.example/cb"));
        assert!(!redirect_matches(&reg, "https://app.example/cb?x=1"));
        assert!(!redirect_matches(&reg, "https://app.example:444/cb"));
        assert!(!redirect_matches(&reg, "https://evil.example/cb"));
    }

    #[test]
    fn redirect_shapes() {
        assert!(check_redirect_shape("https://a.example/cb").is_ok());
        assert!(check_redirect_shape("http://[::1]:8/cb").is_ok());
        assert!(check_redirect_shape("com.example.app:/cb").is_ok());
        assert!(check_redirect_shape("http://a.example/cb").is_err());
        assert!(check_redirect_shape("https://a.example/cb#x").is_err());
        assert!(check_redirect_shape("javascript:alert(1)").is_err());
        assert!(check_redirect_shape("/relative").is_err());
    }

    #[test]
    fn s256_is_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").as_deref(),
            Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        );
        assert_eq!(s256("short"), None);
        assert_eq!(s256(&"a".repeat(129)), None);
    }

    #[test]
    fn resources_are_this_server_only() {
        let base = "http://127.0.0.1:8080";
        assert_eq!(check_resource(base, None).unwrap(), base);
        assert_eq!(
            check_resource(base, Some("http://127.0.0.1:8080/mcp/")).unwrap(),
            "http://127.0.0.1:8080/mcp"
        );
        assert_eq!(
            check_resource(base, Some("https://other.example/mcp"))
                .unwrap_err()
                .error,
            "invalid_target"
        );
        assert_eq!(issuer(base), "http://127.0.0.1:8080/");
        assert_eq!(
            issuer("https://x.example/crier/"),
            "https://x.example/crier"
        );
    }

    #[test]
    fn unknown_scopes_are_left_out() {
        let s = requested_scopes(Some("posts:read offline_access openid posts:write"));
        assert_eq!(s.names(), vec!["posts:read", "posts:write"]);
        assert!(requested_scopes(None).is_empty());
    }
}
