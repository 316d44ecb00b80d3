//! `/v1/auth`: sessions for the dashboard and the CLI (`login`, `logout`) and the CLI's device
//! login (RFC 8628: `device`, `device/token`). The rules are `crier_app::users` and
//! `crier_app::devices`; the key a device login yields is made by the key rules
//! ([`crate::keys::new_key`]) with the approving user's role as the bound.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use crier_app::users::ActiveSession;
use crier_core::clock::from_ms;
use crier_core::{ErrorCode, KeyMode};
use crier_store::AuditEntry;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::cache::KeyRecord;
use crate::auth::{Auth, ClientIp, need};
use crate::error::{ApiError, ApiResult, current_request_id};
use crate::extract::{ApiJson, NoStore};
use crate::keys::CreateKey;

/// How long a key made by a device login lives.
pub const DEVICE_KEY_DAYS: i64 = 90;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[schema(max_length = 254, example = "ada@example.com")]
    pub email: String,
    #[schema(max_length = 256)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserObject {
    #[schema(example = "usr_0357oADotsEV6BN5U2ircX")]
    pub id: String,
    #[schema(example = "user")]
    pub object: &'static str,
    pub email: String,
    pub name: String,
}

impl From<&crier_store::User> for UserObject {
    fn from(u: &crier_store::User) -> Self {
        Self {
            id: u.id.to_string(),
            object: "user",
            email: u.email.clone(),
            name: u.name.clone(),
        }
    }
}

/// A new session: its token is shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionObject {
    #[schema(example = "session")]
    pub object: &'static str,
    /// Send as `Authorization: Bearer sess_…`; shown only here.
    pub token: String,
    pub expires_at: Timestamp,
    pub user: UserObject,
}

/// Sign in with an email and password: a session token for API clients (the dashboard keeps
/// its session in a cookie instead). Wrong email or password: `401`. Every attempt spends one
/// of the account's (5 a minute, 50 a day) and one of the address's failed authentications;
/// past either: `429` with `Retry-After`, even with the right password. (In the dashboard, a
/// browser that signed in to the account before spends a budget of its own instead of the
/// account's, so guesses from elsewhere cannot lock its owner out.)
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = Login,
    security(()),
    responses(
        (status = 200, description = "A session", body = SessionObject),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<Login>,
) -> ApiResult<NoStore<Json<SessionObject>>> {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let s = sign_in(&state, ip, &req.email, &req.password, agent, None).await?;
    Ok(NoStore(Json(SessionObject {
        object: "session",
        token: s.token,
        expires_at: from_ms(s.session.expires_at),
        user: UserObject::from(&s.user),
    })))
}

/// Checks a login within the throttle (per address, and per account or per browser that
/// signed in to it before: `browser`, its cookie) and opens a session: the one path of the API
/// and the dashboard.
pub async fn sign_in(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    email: &str,
    password: &str,
    user_agent: &str,
    browser: Option<&str>,
) -> ApiResult<crier_app::users::NewSession> {
    let auth = state.auth();
    let keyring = state.app().keyring();
    let now = state.clock().now_ms();
    let account = auth.account_key(email);
    let known = browser.and_then(|c| crate::auth::browsers::open(keyring, c, email, now));
    if !auth.take_login(ip, account, known, now) {
        state.metrics().auth_failure("throttled");
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "Too many failed sign-ins for this account or from this address; wait a minute, or \
             sign in from a browser that signed in to this account before.",
        )
        .with_header(header::RETRY_AFTER, header::HeaderValue::from_static("60")));
    }
    let users = state.app().users();
    let user = match users.check_login(email, password).await {
        Ok(u) => u,
        Err(e) => {
            if e.code == ErrorCode::Unauthorized {
                state.metrics().auth_failure("login");
            }
            return Err(e.into());
        }
    };
    let shown_ip = ip.map(|i| i.to_string()).unwrap_or_default();
    Ok(users.start_session(user, user_agent, &shown_ip).await?)
}

/// End this session. API keys are revoked instead (`DELETE /v1/keys/{id}`): with a key this is
/// `403 forbidden_scope`.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "The session has ended"),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    Auth(_caller, ..): Auth<need::AnyKey>,
    session: Option<Extension<ActiveSession>>,
) -> ApiResult<StatusCode> {
    let Some(Extension(s)) = session else {
        return Err(ApiError::new(
            ErrorCode::ForbiddenScope,
            "Logout ends a session; an API key is revoked instead (DELETE /v1/keys/{id}).",
        ));
    };
    state.app().users().end_session(&s.session.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceStart {
    /// The device or program asking, shown to the user (`crier CLI on laptop`).
    #[schema(schema_with = crate::openapi::fields::client_name)]
    pub client_name: String,
    /// The scopes the key should hold (aliases accepted); the approving user's role must
    /// hold them all.
    #[schema(schema_with = crate::openapi::fields::scopes)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceCode {
    /// Secret: the device polls `/v1/auth/device/token` with it.
    pub device_code: String,
    /// What the user checks and enters at `verification_uri`.
    #[schema(example = "WDJB-MJHT")]
    pub user_code: String,
    pub verification_uri: String,
    /// `verification_uri` with the code filled in.
    pub verification_uri_complete: String,
    /// Seconds until both codes expire.
    pub expires_in: i64,
    /// Seconds to wait between polls.
    pub interval: i64,
}

/// Start a device login for the CLI. Unauthenticated; each start spends one of the address's
/// failed authentications, and an address may start 10 in 15 minutes (`429` past either);
/// at most 10,000 wait across the install.
#[utoipa::path(post, path = "/v1/auth/device", tag = "auth", request_body = DeviceStart,
    security(()),
    responses(
        (status = 200, description = "Codes to show the user and to poll with", body = DeviceCode),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn device(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<DeviceStart>,
) -> ApiResult<Json<DeviceCode>> {
    let auth = state.auth();
    let now = state.clock().now_ms();
    // Each start spends a unit of the address's failed-authentication budget (starting device
    // logins is as cheap for an attacker as guessing keys, so it shares their budget), and
    // each good one a device login of the address's.
    let refused = |message: &'static str, after: u32| {
        ApiError::new(ErrorCode::RateLimited, message)
            .with_header(header::RETRY_AFTER, header::HeaderValue::from(after))
    };
    if !auth.take_address(ip, now) {
        return Err(refused(
            "Too many requests from this address; wait a minute.",
            60,
        ));
    }
    if crier_app::devices::Devices::check(&req.client_name, &req.scopes).is_ok()
        && !auth.take_start(ip, now)
    {
        return Err(refused(
            "Too many device logins from this address; wait a few minutes.",
            auth.start_retry_after(),
        ));
    }
    let (code, login) = state
        .app()
        .devices()
        .start(&req.client_name, &req.scopes)
        .await?;
    let base = state.config().public_url.trim_end_matches('/').to_owned();
    Ok(Json(DeviceCode {
        device_code: code,
        user_code: login.user_code.clone(),
        verification_uri: format!("{base}/device"),
        verification_uri_complete: format!("{base}/device?code={}", login.user_code),
        expires_in: (login.expires_at - now) / 1000,
        interval: login.interval_ms / 1000,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceToken {
    #[schema(max_length = 64)]
    pub device_code: String,
}

/// The key a device login yields, once.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceKey {
    /// The API key (shown only here).
    pub key: String,
    pub key_id: String,
    pub workspace_id: String,
    /// When the key expires (90 days).
    pub expires_at: Timestamp,
}

/// Poll a device login: `400` with `authorization_pending`, `slow_down`, `expired_token` or
/// `access_denied` (RFC 8628) until the user approves; then, once, the API key.
#[utoipa::path(post, path = "/v1/auth/device/token", tag = "auth", request_body = DeviceToken,
    security(()),
    responses(
        (status = 200, description = "The key", body = DeviceKey),
        (status = "4XX", description = "Not yet, or never", body = crate::error::ErrorEnvelope),
    ))]
pub async fn device_token(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DeviceToken>,
) -> ApiResult<NoStore<Json<DeviceKey>>> {
    let app = state.app();
    let pending = |p: crier_app::devices::Pending| ApiError::new(p.code(), p.message());
    let login = app
        .devices()
        .poll(&req.device_code)
        .await?
        .map_err(pending)?;
    let expired = || pending(crier_app::devices::Pending::ExpiredToken);
    let (Some(user), Some(ws)) = (&login.user_id, &login.workspace_id) else {
        return Err(expired());
    };
    // The approver's role now bounds the key: a role lowered since the approval so that it no
    // longer holds every scope asked for voids the approval. That is `access_denied`, one of
    // the answers a polling device knows (RFC 8628), not the key rules' `403`.
    let seat = app
        .users()
        .seat(user, Some(ws.as_str()))
        .await
        .map_err(|e| match e.code {
            // The approver left the workspace since: the login can no longer yield a key.
            ErrorCode::NotFound | ErrorCode::ForbiddenScope => expired(),
            _ => e.into(),
        })?;
    if !login.scopes.is_subset_of(seat.role.scopes()) {
        return Err(no_longer_granted());
    }
    let plan = state
        .plan(&seat.workspace.plan)
        .ok_or_else(|| ApiError::internal("the workspace's plan is not configured"))?;
    let now = state.clock().now_ms();
    let grant = KeyRecord::for_user(
        user,
        crier_core::ids::KeyId::generate(),
        &seat.workspace,
        seat.role,
        plan.clone(),
        now,
    );
    let expires = Timestamp::from_millisecond(now + DEVICE_KEY_DAYS * 86_400_000)
        .map_err(ApiError::internal)?;
    let request = CreateKey {
        name: Some(login.client_name.clone()),
        description: Some(format!("Device login approved by {user}")),
        scopes: login
            .scopes
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        mode: Some(KeyMode::Live),
        expires_at: Some(Some(expires)),
        ..CreateKey::default()
    };
    let (row, secret) =
        crate::keys::new_key(&seat.workspace.id, request, &plan, Some(&grant), now)?;
    let audit = AuditEntry::new(
        &seat.workspace.id,
        crier_store::Actor::User(user.clone()),
        "key.created",
        row.id.as_str(),
        Some(&current_request_id()),
        json!({"device_login": login.id.as_str(), "client_name": login.client_name}),
        now,
    );
    match state
        .store()
        .redeem_device(&login.id, &row, (user, seat.role), &audit, now)
        .await?
    {
        crier_store::Redeemed::Granted => {}
        crier_store::Redeemed::CodeTaken => return Err(expired()),
        // The approver left or changed role between the check above and the key's write.
        crier_store::Redeemed::NoLongerGranted => return Err(no_longer_granted()),
    }
    Ok(NoStore(Json(DeviceKey {
        key: secret.expose().to_owned(),
        key_id: row.id.to_string(),
        workspace_id: seat.workspace.id.to_string(),
        expires_at: expires,
    })))
}

fn no_longer_granted() -> ApiError {
    ApiError::new(
        ErrorCode::AccessDenied,
        "The user who approved this login can no longer grant all of its scopes; start again.",
    )
}
