//! `/v1/keys`: list, create, read, update, revoke and rotate the workspace's API keys.
//!
//! A test-mode key sees and manages only test-mode keys; a live key sees all of them. A key
//! limited to brands or accounts sees only keys within its reach (limited to brands it is
//! allowed and accounts it reaches: `crier_app::Reach::covers_key`). Another workspace's key,
//! or one this key may not see, is `404 not_found`.

use axum::Json;
use axum::extract::State;
use crier_core::KeyMode;
use crier_core::ids::KeyId;
use crier_store::views::{KeyUsageObject, UsageDay};
use crier_store::{AuditEntry, KeyRow};
use serde_json::json;

use crate::AppState;
use crate::auth::{Auth, Principal, need};
use crate::error::{ApiError, ApiResult, current_request_id};
use crate::extract::{ApiJson, ApiPath, Created, List, NoStore, Pagination, query_pairs};
use crate::keys::{self, CreateKey, KeyObject, MAX_OVERLAP_SECONDS, RotateKey, UpdateKey};

fn audit(
    p: &Principal,
    action: &str,
    target: &KeyId,
    details: serde_json::Value,
    now: i64,
) -> AuditEntry {
    AuditEntry::new(
        p.workspace_id(),
        p.actor(),
        action,
        target.as_str(),
        Some(&current_request_id()),
        details,
        now,
    )
}

/// For a member's session or a key bounded to a member: the keys the member made (members
/// see and manage only theirs); `None` for everyone else, who sees them all.
async fn members_keys(
    state: &AppState,
    p: &Principal,
) -> ApiResult<Option<std::collections::HashSet<String>>> {
    match p.member() {
        Some(user) => Ok(Some(
            state
                .store()
                .keys_made_by_user(p.workspace_id(), user)
                .await?,
        )),
        None => Ok(None),
    }
}

/// The key `id` if this principal may see it.
pub(crate) async fn visible_key(state: &AppState, p: &Principal, id: &str) -> ApiResult<KeyRow> {
    let not_found = || ApiError::not_found("API key", id);
    let id = KeyId::parse(id).ok_or_else(not_found)?;
    let key = state
        .store()
        .get_key(p.workspace_id(), &id)
        .await?
        .ok_or_else(not_found)?;
    match may_see(state, p, &key).await? {
        true => Ok(key),
        false => Err(not_found()),
    }
}

/// The one visibility rule for a key of this principal's workspace (and so for its usage and
/// its requests): a test-mode key sees only test-mode keys, a member's session (or a key
/// bounded to a member) only the keys the member made, a key limited to brands or accounts
/// only keys within its reach.
async fn may_see(state: &AppState, p: &Principal, key: &KeyRow) -> ApiResult<bool> {
    if p.mode() == KeyMode::Test && key.mode == KeyMode::Live {
        return Ok(false);
    }
    if members_keys(state, p)
        .await?
        .is_some_and(|mine| !mine.contains(key.id.as_str()))
    {
        return Ok(false);
    }
    let caller = p.caller();
    if caller.is_limited() {
        let child =
            crier_app::Restriction::from_stored(&key.allowed_brand_ids, &key.allowed_account_ids);
        if !state.app().reach(&caller).await?.covers_key(&child) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether this principal may see what `key` did (a request log entry of its workspace): as
/// [`may_see`] for a stored key. A session's requests carry its principal's made-up id, no
/// stored key's: the session itself sees them, and so does whoever sees every key of the
/// workspace (a live key or an owner's or admin's session, not limited to brands or accounts).
pub(crate) async fn may_see_requests_of(
    state: &AppState,
    p: &Principal,
    key: &KeyId,
) -> ApiResult<bool> {
    match state.store().get_key(p.workspace_id(), key).await? {
        Some(row) => may_see(state, p, &row).await,
        None => Ok(key == p.key_id()
            || (p.mode() == KeyMode::Live && p.member().is_none() && !p.caller().is_limited())),
    }
}

fn plan_of(p: &Principal) -> &crier_core::Plan {
    p.plan()
}

/// List the workspace's API keys, newest first (never their secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(Pagination),
    security(("bearer" = ["keys:read"]), ("api_key" = ["keys:read"])),
    responses(
        (status = 200, description = "A page of keys", body = inline(List<KeyObject>)),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::KeysRead>,
    page: Pagination,
) -> ApiResult<Json<List<KeyObject>>> {
    let mode = (p.mode() == KeyMode::Test).then_some(KeyMode::Test);
    let mine = members_keys(&state, &p).await?;
    let reach = state.app().reach(&p.caller()).await?;
    // A member sees the keys they made; a limited key the keys within its reach; a member's
    // limited key both, filtered together so that every page is whole.
    let mine: Option<Vec<&str>> = mine
        .as_ref()
        .map(|m| m.iter().map(String::as_str).collect());
    let lists = reach.lists();
    let within = lists
        .as_ref()
        .map(|(brands, accounts)| (brands.as_slice(), accounts.as_slice()));
    let keys = state
        .store()
        .list_keys_visible(
            p.workspace_id(),
            mode,
            mine.as_deref(),
            within,
            page.limit,
            page.offset,
        )
        .await?;
    Ok(Json(List::of(&keys, |k| KeyObject::from_row(k, None))))
}

/// Create a key. The secret is in this response only.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKey,
    security(("bearer" = ["keys:write"]), ("api_key" = ["keys:write"])),
    responses(
        (status = 201, description = "The new key, with its secret in `key`", body = KeyObject),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::KeysWrite>,
    ApiJson(req): ApiJson<CreateKey>,
) -> ApiResult<NoStore<Created<KeyObject>>> {
    let now = state.clock().now_ms();
    let (mut row, secret) = keys::new_key(p.workspace_id(), req, plan_of(&p), Some(&p.key), now)?;
    let reach = state.app().reach(&p.caller()).await?;
    keys::check_reach(state.store(), &mut row, &[], None, Some(&reach)).await?;
    let details =
        json!({"name": row.name, "scopes": row.scopes.names(), "mode": row.mode.as_str()});
    state
        .store()
        .insert_key(&row, &audit(&p, "key.created", &row.id, details, now))
        .await?;
    Ok(NoStore(Created(KeyObject::from_row(&row, Some(&secret)))))
}

/// Read one key.
#[utoipa::path(get, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    security(("bearer" = ["keys:read"]), ("api_key" = ["keys:read"])),
    responses(
        (status = 200, description = "The key", body = KeyObject),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::KeysRead>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<KeyObject>> {
    let key = visible_key(&state, &p, &id).await?;
    Ok(Json(KeyObject::from_row(&key, None)))
}

/// Update a key's name, description, scopes, limits, restrictions or expiry. Takes effect on
/// the next request, on every node. A revoked key, or one replaced by a rotation, cannot
/// change (`409 conflict`); a replaced key can still be revoked.
#[utoipa::path(patch, path = "/v1/keys/{id}", tag = "keys", request_body = UpdateKey,
    params(("id" = String, Path, description = "The key's id")),
    security(("bearer" = ["keys:write"]), ("api_key" = ["keys:write"])),
    responses(
        (status = 200, description = "The updated key", body = KeyObject),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::KeysWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateKey>,
) -> ApiResult<Json<KeyObject>> {
    let existing = visible_key(&state, &p, &id).await?;
    let now = state.clock().now_ms();
    // The request first: a malformed one is `400` on a key in any state.
    let (mut row, changed) = keys::updated_key(&existing, req, plan_of(&p), &p.key, now)?;
    if existing.revoked_at.is_some() {
        return Err(ApiError::conflict(
            "This key is revoked and can no longer change.",
        ));
    }
    // A rotated-out key lives only until the overlap its rotation set; a new `expires_at`
    // (or any other edit) would revive it beside its replacement. It may still be revoked.
    if let Some(new) = &existing.replaced_by {
        return Err(replaced(new));
    }
    keys::ensure_within(&p.key, &existing, "change")?;
    let reach = state.app().reach(&p.caller()).await?;
    keys::check_reach(
        state.store(),
        &mut row,
        &changed,
        Some(&existing),
        Some(&reach),
    )
    .await?;
    let stored = state
        .store()
        .update_key(
            &row,
            &audit(&p, "key.updated", &row.id, json!({"changed": changed}), now),
        )
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                "This key was revoked or replaced by a rotation meanwhile and can no longer change.",
            )
        })?;
    Ok(Json(KeyObject::from_row(&stored, None)))
}

fn replaced(by: &KeyId) -> ApiError {
    ApiError::conflict(format!(
        "This key was replaced by {by} in a rotation and can no longer change; it ends when \
         its overlap does (revoke it to end it sooner). Change {by} instead."
    ))
}

/// Revoke a key at once, on every node. Revoking a revoked key returns it unchanged.
///
/// Revoking another key needs `keys:write`. Any valid key may revoke **itself**, whatever its
/// scopes (how `crier logout` ends the key its device login made): giving up one's own access
/// widens nothing.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    security(("bearer" = ["keys:write"]), ("api_key" = ["keys:write"])),
    responses(
        (status = 200, description = "The revoked key", body = KeyObject),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AnyKey>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<KeyObject>> {
    if KeyId::parse(&id).as_ref() != Some(p.key_id()) {
        p.require(crier_core::Scope::KeysWrite)?;
    }
    let existing = visible_key(&state, &p, &id).await?;
    if existing.id != *p.key_id() {
        keys::ensure_within(&p.key, &existing, "revoke")?;
    }
    let now = state.clock().now_ms();
    let stored = state
        .store()
        .revoke_key(
            p.workspace_id(),
            &existing.id,
            now,
            &audit(&p, "key.revoked", &existing.id, json!({}), now),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("API key", &id))?;
    Ok(Json(KeyObject::from_row(&stored, None)))
}

/// Rotate a key: a new key (new id and secret, same name, scopes, limits, restrictions and
/// expiry) replaces it; the old one keeps working for `overlap_seconds` (default 0).
#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "keys", request_body = RotateKey,
    params(("id" = String, Path, description = "The key's id")),
    security(("bearer" = ["keys:write"]), ("api_key" = ["keys:write"])),
    responses(
        (status = 201, description = "The new key, with its secret in `key`", body = KeyObject),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn rotate(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::KeysWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RotateKey>,
) -> ApiResult<NoStore<Created<KeyObject>>> {
    let overlap = req.overlap_seconds.unwrap_or(0);
    if overlap > MAX_OVERLAP_SECONDS {
        return Err(ApiError::invalid(
            "overlap_seconds",
            "`overlap_seconds` must be from 0 to 604800 (7 days).",
        ));
    }
    let old = visible_key(&state, &p, &id).await?;
    if old.revoked_at.is_some() || old.replaced_by.is_some() {
        return Err(ApiError::conflict(
            "This key is revoked or was already rotated; rotate its replacement instead.",
        ));
    }
    keys::ensure_within(&p.key, &old, "rotate")?;
    let now = state.clock().now_ms();
    let secret = crier_core::SecretKey::generate(old.mode);
    let new = KeyRow {
        id: KeyId::generate(),
        prefix: secret.display_prefix().to_owned(),
        digest: secret.digest(),
        last_used_at: None,
        request_count: 0,
        created_at: now,
        updated_at: now,
        revoked_at: None,
        replaced_by: None,
        created_by: p.maker_key(),
        ..old.clone()
    };
    let old_expires = (now + i64::from(overlap) * 1000).min(old.expires_at.unwrap_or(i64::MAX));
    let details = json!({"replaced_by": new.id.as_str(), "overlap_seconds": overlap});
    state
        .store()
        .rotate_key(
            &old.id,
            &new,
            old_expires,
            &audit(&p, "key.rotated", &old.id, details, now),
        )
        .await?
        .ok_or_else(|| ApiError::conflict("This key is revoked or was already rotated."))?;
    Ok(NoStore(Created(KeyObject::from_row(&new, Some(&secret)))))
}

/// Days `GET /v1/keys/{id}/usage` shows when `days` is not given.
pub const DEFAULT_USAGE_DAYS: u32 = 30;
/// Days `GET /v1/keys/{id}/usage` shows at most (daily counts are kept this long).
pub const MAX_USAGE_DAYS: u32 = 90;

/// `days` (1 to 90, default 30) from the query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// How many days to show, ending today (UTC): 1 to 90 (default 30).
    #[param(required = false, minimum = 1, maximum = 90, default = 30)]
    pub days: u32,
}

impl UsageQuery {
    pub fn from_query(query: Option<&str>) -> Result<Self, ApiError> {
        let mut days = DEFAULT_USAGE_DAYS;
        for (name, value) in query_pairs(query) {
            if name == "days" {
                days = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_USAGE_DAYS).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid("days", "`days` must be a whole number from 1 to 90.")
                    })?;
            }
        }
        Ok(Self { days })
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for UsageQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Self::from_query(parts.uri.query())
    }
}

/// A key's requests per UTC day over the last `days` days (today included), oldest first,
/// every day present (zeros where it made none): all requests, those that failed (400 and
/// above, 429 excepted) and those its rate limit refused (429). Counts reach storage every few
/// seconds, so the last seconds' requests may not show yet. Sessions are not keys and have no
/// usage here.
#[utoipa::path(get, path = "/v1/keys/{id}/usage", tag = "keys",
    params(("id" = String, Path, description = "The key's id"), UsageQuery),
    security(("bearer" = ["keys:read"]), ("api_key" = ["keys:read"])),
    responses(
        (status = 200, description = "The key's daily usage", body = KeyUsageObject),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn usage(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::KeysRead>,
    ApiPath(id): ApiPath<String>,
    query: UsageQuery,
) -> ApiResult<Json<KeyUsageObject>> {
    let key = visible_key(&state, &p, &id).await?;
    let today = crier_core::clock::from_ms(state.clock().now_ms())
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let first = today
        .checked_sub(jiff::Span::new().days(i64::from(query.days) - 1))
        .map_err(ApiError::internal)?;
    let day = |d: jiff::civil::Date| d.strftime("%Y-%m-%d").to_string();
    let stored = state
        .store()
        .key_usage_days(p.workspace_id(), &key.id, &day(first), &day(today))
        .await?;
    let mut stored = stored.into_iter().peekable();
    let mut days = Vec::with_capacity(query.days as usize);
    for date in first
        .series(jiff::Span::new().days(1))
        .take(query.days as usize)
    {
        let date = day(date);
        let mut shown = UsageDay {
            date,
            requests: 0,
            errors: 0,
            rate_limited: 0,
        };
        while let Some(d) = stored.next_if(|d| d.day <= shown.date) {
            if d.day == shown.date {
                shown.requests = d.requests;
                shown.errors = d.errors;
                shown.rate_limited = d.rate_limited;
            }
        }
        days.push(shown);
    }
    Ok(Json(KeyUsageObject {
        object: "key_usage",
        key_id: key.id.to_string(),
        days,
    }))
}
