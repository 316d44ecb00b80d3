//! crier as an OAuth 2.1 authorization server for its own API and MCP server, as the MCP
//! authorization spec asks of a protected MCP server: discovery (RFC 9728 protected resource
//! metadata, RFC 8414 server metadata), dynamic client registration (RFC 7591), the token
//! endpoint (authorization code with PKCE, rotating refresh tokens) and revocation (RFC 7009).
//! The person's approval is the dashboard's consent page (`dashboard::oauth`).
//!
//! The rules are `crier_app::oauth_server`. This edge makes a grant's key with the key rules
//! (`crate::keys::new_key`), bounded by the approving user's role, as for device logins; the
//! access token is that key's secret, so every other route authenticates it as a key.
//!
//! These endpoints answer in OAuth's own error format (`{"error","error_description"}`,
//! RFC 6749 §5.2), which OAuth clients parse, rather than the API's envelope: a documented
//! departure. A registration spends one unit of the client address's budget of failed
//! authentications, like a sign-up; a token or revocation request only when it fails, like a
//! bad key (`429` past the budget).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use crier_app::oauth_server::{
    self as rules, ACCESS_LIFETIME_MS, ClientMetadata, GRANT_LIFETIME_MS, OAuthError, OAuthServer,
};
use crier_core::{KeyDigest, KeyMode, SecretKey};
use crier_store::{AuditEntry, NewGrant, Redeemed, Refreshed};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::ClientIp;
use crate::auth::cache::KeyRecord;
use crate::error::current_request_id;
use crate::extract::read_body;
use crate::keys::CreateKey;

/// The most of a registration, token or revocation request that is read.
const MAX_FORM_BYTES: usize = 16 * 1024;

fn base(state: &AppState) -> String {
    state.config().public_url.trim_end_matches('/').to_owned()
}

/// An OAuth error response (RFC 6749 §5.2), never cached.
pub fn oauth_error(e: OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = (
        status,
        Json(json!({"error": e.error, "error_description": e.description})),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if e.error == "invalid_client" {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"crier\""),
        );
    }
    resp
}

fn no_store(body: Value, status: StatusCode) -> Response {
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn too_many() -> Response {
    let mut resp = oauth_error(OAuthError::new(
        "temporarily_unavailable",
        "Too many requests from this address; wait a minute.",
    ));
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    resp
}

/// How a request spends the address's budget of failed authentications: a registration
/// always (it stores a client), a token or revocation request only when it fails (a client
/// refreshing for many people from one address is not held back), like an API key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spend {
    Always,
    OnFailure,
}

/// The `429` when the address is over its budget; otherwise spends a unit for `Always`.
#[allow(clippy::result_large_err)] // the refusal is the response the handler returns at once
fn take_turn(state: &AppState, ip: Option<std::net::IpAddr>, spend: Spend) -> Result<(), Response> {
    let now = state.clock().now_ms();
    let ok = match spend {
        Spend::Always => state.auth().take_address(ip, now),
        Spend::OnFailure => !state.auth().address_throttled(ip, now),
    };
    if ok { Ok(()) } else { Err(too_many()) }
}

/// A failed token or revocation request: its error, spending a unit of the address's budget
/// (`429` instead when that was the last).
fn failed(state: &AppState, ip: Option<std::net::IpAddr>, e: OAuthError) -> Response {
    if e.status >= 500 || state.auth().take_address(ip, state.clock().now_ms()) {
        return oauth_error(e);
    }
    too_many()
}

/// What every request of these endpoints passes first: the address's budget, then a body of
/// at most [`MAX_FORM_BYTES`]. Its headers and body, or the refusal.
async fn admitted(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    req: Request,
    spend: Spend,
) -> Result<(HeaderMap, Bytes), Response> {
    take_turn(state, ip, spend)?;
    let headers = req.headers().clone();
    let bytes = small_body(req).await?;
    Ok((headers, bytes))
}

async fn small_body(req: Request) -> Result<Bytes, Response> {
    let bytes = read_body(req).await.map_err(IntoResponse::into_response)?;
    if bytes.len() > MAX_FORM_BYTES {
        return Err(oauth_error(OAuthError::invalid_request(format!(
            "The request body is larger than {} KiB.",
            MAX_FORM_BYTES / 1024
        ))));
    }
    Ok(bytes)
}

/// The parameters these endpoints read; others are ignored.
const PARAMETERS: [&str; 11] = [
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "client_id",
    "client_secret",
    "refresh_token",
    "resource",
    "scope",
    "token",
    "token_type_hint",
];

/// The parameters of a form body (`application/x-www-form-urlencoded`); one sent twice is a
/// malformed request (RFC 6749 §3.2), any other field is ignored.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(bytes: &[u8]) -> Result<Self, OAuthError> {
        let mut fields: Vec<(String, String)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(bytes) {
            if !PARAMETERS.contains(&&*k) {
                continue;
            }
            if k.contains('\0') || v.contains('\0') {
                return Err(OAuthError::invalid_request(format!(
                    "`{k}` contains the NUL character."
                )));
            }
            if fields.iter().any(|(j, _)| *j == k) {
                return Err(OAuthError::invalid_request(format!(
                    "`{k}` is sent more than once."
                )));
            }
            fields.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self(fields))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// The client's credentials: `Authorization: Basic` (RFC 6749 §2.3.1: id and secret
/// form-urlencoded, then base64) or `client_id`/`client_secret` in the body; not both.
fn client_credentials(
    headers: &HeaderMap,
    form: &Form,
) -> Result<(Option<String>, Option<String>), OAuthError> {
    let bad = || OAuthError::new("invalid_client", "Malformed client credentials.");
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| bad())?;
            let Some((scheme, b64)) = v.split_once(' ') else {
                return Err(bad());
            };
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(bad());
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| bad())?;
            let raw = String::from_utf8(raw).map_err(|_| bad())?;
            let (id, secret) = raw.split_once(':').ok_or_else(bad)?;
            // `application/x-www-form-urlencoded` of one value: the form parser decodes it.
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("v={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .ok_or_else(bad)
            };
            Some((decode(id)?, decode(secret)?))
        }
    };
    match basic {
        Some(_) if form.get("client_secret").is_some() => Err(OAuthError::invalid_request(
            "Send the client's credentials one way: Basic or the body.",
        )),
        Some((id, secret)) => {
            if form.get("client_id").is_some_and(|b| b != id) {
                return Err(bad());
            }
            Ok((Some(id), Some(secret)))
        }
        None => Ok((
            form.get("client_id").map(str::to_owned),
            form.get("client_secret").map(str::to_owned),
        )),
    }
}

/// Every scope a token may hold.
fn all_scopes() -> Vec<&'static str> {
    crier_core::ScopeSet::all().names()
}

fn protected_resource_of(state: &AppState, resource: String) -> Json<Value> {
    Json(json!({
        "resource": resource,
        "authorization_servers": [rules::issuer(&base(state))],
        "scopes_supported": all_scopes(),
        "bearer_methods_supported": ["header"],
        "resource_name": "crier",
        "resource_documentation": format!("{}/docs", base(state)),
    }))
}

/// Protected resource metadata (RFC 9728) of the API.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource", tag = "oauth",
    security(()),
    responses((status = 200, description = "RFC 9728 metadata", body = Object)))]
pub async fn protected_resource(State(state): State<AppState>) -> Json<Value> {
    let [api, _] = rules::resources(&base(&state));
    protected_resource_of(&state, api)
}

/// Protected resource metadata (RFC 9728) of the MCP server at `/mcp`.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource/mcp", tag = "oauth",
    security(()),
    responses((status = 200, description = "RFC 9728 metadata", body = Object)))]
pub async fn protected_resource_mcp(State(state): State<AppState>) -> Json<Value> {
    let [_, mcp] = rules::resources(&base(&state));
    protected_resource_of(&state, mcp)
}

/// Authorization server metadata (RFC 8414).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    security(()),
    responses((status = 200, description = "RFC 8414 metadata", body = Object)))]
pub async fn metadata(State(state): State<AppState>) -> Json<Value> {
    let b = base(&state);
    let methods = ["none", "client_secret_basic", "client_secret_post"];
    Json(json!({
        "issuer": rules::issuer(&b),
        "authorization_endpoint": format!("{b}/oauth/authorize"),
        "token_endpoint": format!("{b}/oauth/token"),
        "registration_endpoint": format!("{b}/oauth/register"),
        "revocation_endpoint": format!("{b}/oauth/revoke"),
        "scopes_supported": all_scopes(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "code_challenge_methods_supported": ["S256"],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
        "service_documentation": format!("{b}/docs"),
    }))
}

/// A registration request (RFC 7591 §2) as documented; other fields are accepted and ignored.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the schema of the body `register` reads as `ClientMetadata`
pub struct ClientRegistration {
    #[schema(schema_with = crate::openapi::fields::redirect_uris)]
    redirect_uris: Vec<String>,
    #[schema(schema_with = crate::openapi::fields::oauth_client_name)]
    client_name: Option<String>,
    #[schema(schema_with = crate::openapi::fields::token_endpoint_auth_method)]
    token_endpoint_auth_method: Option<String>,
    #[schema(schema_with = crate::openapi::fields::grant_types)]
    grant_types: Option<Vec<String>>,
    #[schema(schema_with = crate::openapi::fields::response_types)]
    response_types: Option<Vec<String>>,
}

/// Register a client (RFC 7591): `redirect_uris` (1 to 10: https, loopback http on any port,
/// or a reverse-domain private scheme), `client_name` (at most 100 characters),
/// `token_endpoint_auth_method` (`none`, or `client_secret_basic` by default, or
/// `client_secret_post`: a `client_secret` is issued, shown once). At most 10,000 clients are
/// kept; one unused for 30 days without a live grant is forgotten.
#[utoipa::path(post, path = "/oauth/register", tag = "oauth",
    security(()),
    request_body(content = ClientRegistration, description = "RFC 7591 client metadata", content_type = "application/json"),
    responses(
        (status = 201, description = "The client (RFC 7591 §3.2.1)", body = Object),
        (status = "4XX", description = "`invalid_redirect_uri` or `invalid_client_metadata` (400), too many requests from this address (429), a body over 16 KiB (400) or 1 MiB (413)", body = Object),
        (status = 503, description = "`temporarily_unavailable`: 10,000 clients are kept and none can make room", body = Object),
    ))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Response {
    let (_, bytes) = match admitted(&state, ip, req, Spend::Always).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let meta: ClientMetadata = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            return oauth_error(OAuthError::new(
                "invalid_client_metadata",
                format!("The body is not valid client metadata JSON: {e}."),
            ));
        }
    };
    let oauth = state.app().oauth_server();
    let (client, secret) = match oauth.registration(&meta) {
        Ok(r) => r,
        Err(e) => return oauth_error(e),
    };
    // A client is a row that waits for its person's consent: the address's starts bound how
    // fast it can turn the capped table over (`auth::start_windows`).
    if !state.auth().take_start(ip, state.clock().now_ms()) {
        let mut resp = too_many();
        let after = state.auth().start_retry_after();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(after));
        return resp;
    }
    match oauth.register(&client).await {
        Ok(()) => {
            let mut body = json!({
                "client_id": client.id,
                "client_id_issued_at": client.created_at / 1000,
                "client_name": client.name,
                "redirect_uris": client.redirect_uris,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": client.auth_method,
            });
            if let Some(s) = secret {
                body["client_secret"] = json!(s);
                body["client_secret_expires_at"] = json!(0);
            }
            no_store(body, StatusCode::CREATED)
        }
        Err(e) => oauth_error(e),
    }
}

/// The token endpoint: `grant_type=authorization_code` (`code`, `redirect_uri`,
/// `code_verifier`, optional `resource`) or `grant_type=refresh_token` (`refresh_token`). The
/// access token lives an hour; the refresh token is replaced at each use, and a used one
/// presented again revokes the whole grant.
#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    security(()),
    request_body(content = Object, description = "RFC 6749 token request", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "`access_token`, `token_type`, `expires_in`, `refresh_token`, `scope`", body = Object),
        (status = "4XX", description = "`invalid_request`, `invalid_grant`, `invalid_target`, `unsupported_grant_type` (400), `invalid_client` (401), too many failed requests from this address (429)", body = Object),
    ))]
pub async fn token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Response {
    let (form, client) = match client_request(&state, ip, req).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match exchange(&state, &form, &client).await {
        Ok(body) => no_store(body, StatusCode::OK),
        Err(e) => failed(&state, ip, e),
    }
}

/// What a token or revocation request passes first (see [`admitted`]), then its form and its
/// client, authenticated; a failure spends the address's budget like any failed request.
async fn client_request(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    req: Request,
) -> Result<(Form, crier_store::AppClient), Response> {
    let (headers, bytes) = admitted(state, ip, req, Spend::OnFailure).await?;
    let authenticated = async {
        let form = Form::parse(&bytes)?;
        let (id, secret) = client_credentials(&headers, &form)?;
        let client = state
            .app()
            .oauth_server()
            .authenticate_client(id.as_deref(), secret.as_deref())
            .await?;
        Ok::<_, OAuthError>((form, client))
    };
    authenticated.await.map_err(|e| failed(state, ip, e))
}

async fn exchange(
    state: &AppState,
    form: &Form,
    client: &crier_store::AppClient,
) -> Result<Value, OAuthError> {
    let server = state.app().oauth_server();
    let b = base(state);
    match form.get("grant_type") {
        Some("authorization_code") => {
            let checked = server
                .check_code(
                    &b,
                    client,
                    form.get("code"),
                    form.get("redirect_uri"),
                    form.get("code_verifier"),
                    form.get("resource"),
                )
                .await?;
            new_grant(state, client, checked).await
        }
        Some("refresh_token") => {
            let checked = server
                .check_refresh(&b, client, form.get("refresh_token"), form.get("resource"))
                .await?;
            refresh(state, checked).await
        }
        Some(other) => Err(OAuthError::new(
            "unsupported_grant_type",
            format!("`{other}` is not supported (authorization_code, refresh_token)."),
        )),
        None => Err(OAuthError::invalid_request("`grant_type` is missing.")),
    }
}

/// The refusal of a grant whose approving user left the workspace or changed role.
fn no_longer_granted() -> OAuthError {
    OAuthError::new(
        "invalid_grant",
        "The person who approved this can no longer grant it (they left the workspace or their \
         role changed); sign in again.",
    )
}

/// The approving user's seat, if their role still holds every scope of the grant.
async fn still_granted(
    state: &AppState,
    user: &crier_core::ids::UserId,
    ws: &crier_core::ids::WorkspaceId,
    scopes: crier_core::ScopeSet,
) -> Result<crier_app::users::Seat, OAuthError> {
    let seat = state
        .app()
        .users()
        .seat(user, Some(ws.as_str()))
        .await
        .map_err(|e| match e.code {
            crier_core::ErrorCode::NotFound | crier_core::ErrorCode::ForbiddenScope => {
                no_longer_granted()
            }
            _ => e.into(),
        })?;
    if !scopes.is_subset_of(seat.role.scopes()) {
        return Err(no_longer_granted());
    }
    Ok(seat)
}

fn token_body(access: &SecretKey, refresh: &str, scopes: crier_core::ScopeSet) -> Value {
    json!({
        "access_token": access.expose(),
        "token_type": "Bearer",
        "expires_in": ACCESS_LIFETIME_MS / 1000,
        "refresh_token": refresh,
        "scope": scopes.names().join(" "),
    })
}

async fn new_grant(
    state: &AppState,
    client: &crier_store::AppClient,
    checked: rules::CodeGrant,
) -> Result<Value, OAuthError> {
    let code = &checked.code;
    let seat = still_granted(state, &code.user_id, &code.workspace_id, code.scopes).await?;
    let plan = state.plan(&seat.workspace.plan).ok_or_else(|| {
        OAuthError::from(crier_app::AppError::internal(
            "the workspace's plan is not configured",
        ))
    })?;
    let now = state.clock().now_ms();
    let grantor = KeyRecord::for_user(
        &code.user_id,
        crier_core::ids::KeyId::generate(),
        &seat.workspace,
        seat.role,
        plan.clone(),
        now,
    );
    let expires = Timestamp::from_millisecond(now + ACCESS_LIFETIME_MS)
        .map_err(|e| OAuthError::from(crier_app::AppError::internal(e)))?;
    let request = CreateKey {
        name: Some(client.name.clone()),
        description: Some(format!(
            "Access granted to {} by {} (OAuth)",
            client.name, code.user_id
        )),
        scopes: code.scopes.names().into_iter().map(str::to_owned).collect(),
        mode: Some(KeyMode::Live),
        expires_at: Some(Some(expires)),
        ..CreateKey::default()
    };
    let (row, secret) =
        crate::keys::new_key(&seat.workspace.id, request, &plan, Some(&grantor), now)
            .map_err(|e| OAuthError::new("invalid_grant", e.message.to_string()))?;
    let (refresh, refresh_digest) = OAuthServer::new_refresh_token();
    let audit = AuditEntry::new(
        &seat.workspace.id,
        crier_store::Actor::User(code.user_id.clone()),
        "key.created",
        row.id.as_str(),
        Some(&current_request_id()),
        json!({"oauth_client": client.id, "client_name": client.name}),
        now,
    );
    let grant = NewGrant {
        key: &row,
        client_id: &client.id,
        user_id: &code.user_id,
        role: seat.role,
        resource: &code.resource,
        expires_at: now + GRANT_LIFETIME_MS,
        refresh_digest,
    };
    match state
        .store()
        .redeem_app_code(&checked.digest, &grant, &audit, now)
        .await?
    {
        Redeemed::Granted => {}
        // Removed, or another role, since `still_granted` looked.
        Redeemed::NoLongerGranted => return Err(no_longer_granted()),
        // Another exchange of the same code won the race: a second use, like any other.
        Redeemed::CodeTaken => {
            return Err(replayed_code(state, &checked.digest).await?);
        }
    }
    Ok(token_body(&secret, &refresh, code.scopes))
}

/// The refusal of a code used a second time, after ending what its first use made.
async fn replayed_code(state: &AppState, digest: &KeyDigest) -> Result<OAuthError, OAuthError> {
    if let Some(key) = state.store().app_code(digest).await?.and_then(|c| c.key_id) {
        state
            .app()
            .oauth_server()
            .end_replayed(&key, "authorization code")
            .await?;
    }
    Ok(OAuthError::new(
        "invalid_grant",
        "The code is invalid, expired or used.",
    ))
}

async fn refresh(state: &AppState, checked: rules::RefreshGrant) -> Result<Value, OAuthError> {
    let grant = &checked.grant;
    let now = state.clock().now_ms();
    if let Err(e) = still_granted(state, &grant.user_id, &grant.workspace_id, grant.scopes).await {
        if e.error == "invalid_grant" {
            // It can never be refreshed again: end it now rather than at its expiry.
            state
                .store()
                .revoke_app_grant(None, &grant.key_id, now, None)
                .await?;
        }
        return Err(e);
    }
    let secret = SecretKey::generate(KeyMode::Live);
    let (next, next_digest) = OAuthServer::new_refresh_token();
    let refreshed = state
        .store()
        .refresh_app_grant(
            &checked.digest,
            &secret.digest(),
            secret.display_prefix(),
            &next_digest,
            now + ACCESS_LIFETIME_MS,
            now + GRANT_LIFETIME_MS,
            now,
        )
        .await?;
    match refreshed {
        Refreshed::Rotated(row) => Ok(token_body(&secret, &next, row.scopes)),
        Refreshed::Replayed(_) => Err(OAuthError::new(
            "invalid_grant",
            "This refresh token was used before: the grant is revoked. Sign in again.",
        )),
        Refreshed::Unknown => Err(OAuthError::new(
            "invalid_grant",
            "The refresh token is invalid or expired.",
        )),
    }
}

/// Revoke a token (RFC 7009): a refresh token or an access token ends its whole grant on
/// every node at once. Answers `200` whether or not the token was known.
#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    security(()),
    request_body(content = Object, description = "`token`, optional `token_type_hint`", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or unknown", body = Object),
        (status = "4XX", description = "`invalid_request` (400), `invalid_client` (401), too many failed requests from this address (429)", body = Object),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Response {
    let (form, client) = match client_request(&state, ip, req).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match revoke_token(&state, &form, &client).await {
        Ok(()) => no_store(json!({}), StatusCode::OK),
        Err(e) => failed(&state, ip, e),
    }
}

async fn revoke_token(
    state: &AppState,
    form: &Form,
    client: &crier_store::AppClient,
) -> Result<(), OAuthError> {
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("`token` is missing."))?;
    let store = state.store();
    let digest = KeyDigest::of(token);
    let key = match store.app_refresh_token(&digest).await? {
        Some(t) => Some(t.key_id),
        None if crier_core::keys::check_format(token).is_ok() => {
            store.key_by_digest(&digest).await?.map(|k| k.key.id)
        }
        None => None,
    };
    let Some(key) = key else { return Ok(()) };
    // Only the client's own grants: another client's token is treated as unknown.
    if let Some(grant) = store.app_grant(&key).await?
        && grant.client_id == client.id
    {
        store
            .revoke_app_grant(None, &key, state.clock().now_ms(), None)
            .await?;
    }
    Ok(())
}

/// The `WWW-Authenticate` of a `401` on `path`: where to find how to get a token (RFC 9728
/// §5.1), as MCP clients need to start signing in.
pub fn challenge(public_url: &str, path: &str) -> HeaderValue {
    let b = public_url.trim_end_matches('/');
    let suffix = if path == "/mcp" || path.starts_with("/mcp/") {
        "/mcp"
    } else {
        ""
    };
    HeaderValue::try_from(format!(
        "Bearer resource_metadata=\"{b}/.well-known/oauth-protected-resource{suffix}\""
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}
