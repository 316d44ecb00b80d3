//! `/v1/webhooks`: endpoints (the secret is shown once, at creation and at rotation), their
//! delivery log, test events and redelivery. URLs must be `http`/`https` and must not point at
//! private, loopback or link-local addresses (checked here by resolving the name, and again at
//! every delivery) unless the operator allows private networks. A key limited to brands or
//! accounts cannot use them: their events cover every account (`403 forbidden_scope`).

use axum::Json;
use axum::extract::State;
use crier_app::webhook_secrets;
use crier_core::ErrorCode;
use crier_core::clock::from_ms;
use crier_core::ids::{DeliveryId, WebhookId};
use crier_store::{Delivery, Endpoint, WebhookAttempt, event_types};
use crier_worker::http::{UrlError, check_url, is_public};
use crier_worker::webhooks::new_secret;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, Principal, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Created, List, NoStore, Pagination};

/// Webhooks carry the events of the whole workspace and mode, every account's: a key limited
/// to some brands or accounts has none of them (`403 forbidden_scope`, see `crier_app::reach`).
fn whole_workspace(p: &Principal) -> ApiResult<()> {
    Ok(p.caller()
        .require_unrestricted("use webhooks, which carry the whole workspace's events")?)
}

pub const MAX_EVENTS: usize = 20;
/// Endpoints a workspace may have per mode unless the operator sets otherwise (as Stripe).
pub const DEFAULT_MAX_ENDPOINTS: u32 = 16;
/// The most an operator may allow: every event writes one delivery and one job per endpoint
/// inside the transaction that emits it, so this bounds that transaction.
pub const MAX_ENDPOINTS_CEILING: u32 = 100;
pub const MAX_OVERLAP_SECONDS: u32 = 7 * 24 * 3600;

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointObject {
    #[schema(example = "whep_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "webhook_endpoint")]
    pub object: &'static str,
    pub url: String,
    pub description: String,
    /// Event types, or `["*"]` for all.
    pub events: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub livemode: bool,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// `whsec_…`: only in the create and rotate responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl EndpointObject {
    /// `secret`: the signing secret just made, shown this once.
    fn new(e: &Endpoint, secret: Option<String>) -> Self {
        Self {
            id: e.id.to_string(),
            object: "webhook_endpoint",
            url: e.url.clone(),
            description: e.description.clone(),
            events: e.events.clone(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            livemode: e.livemode,
            failing_since: e.failing_since.map(from_ms),
            created_at: from_ms(e.created_at),
            updated_at: from_ms(e.updated_at),
            secret,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    #[schema(schema_with = crate::openapi::fields::webhook_url)]
    pub url: String,
    /// Event types to receive (`*` for all), 1 to 20.
    #[schema(schema_with = crate::openapi::fields::events)]
    pub events: Vec<String>,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    #[schema(schema_with = crate::openapi::fields::webhook_url_optional)]
    pub url: Option<String>,
    #[schema(schema_with = crate::openapi::fields::events_optional)]
    pub events: Option<Vec<String>>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// Re-enable a disabled endpoint, or pause one.
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long deliveries are also signed with the old secret, 0 (default) to 604800.
    #[schema(minimum = 0, maximum = 604800)]
    pub overlap_seconds: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptObject {
    pub attempt: i64,
    /// The HTTP status the endpoint answered, if it answered.
    pub status: Option<i64>,
    pub error: Option<String>,
    pub latency_ms: i64,
    /// The first KiB of the response.
    pub response_excerpt: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryObject {
    pub id: String,
    #[schema(example = "webhook_delivery")]
    pub object: &'static str,
    /// The event id, sent as `webhook-id`.
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Its attempts, oldest first: the latest 25 (each redelivery adds one).
    pub attempts: Vec<AttemptObject>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl DeliveryObject {
    fn new(d: &Delivery, attempts: &[WebhookAttempt]) -> Self {
        Self {
            id: d.id.to_string(),
            object: "webhook_delivery",
            event_id: d.event_id.clone(),
            event_type: d.event_type.clone(),
            status: d.status.clone(),
            attempts: attempts
                .iter()
                .map(|a| AttemptObject {
                    attempt: a.attempt,
                    status: a.status,
                    error: a.error.clone(),
                    latency_ms: a.latency_ms,
                    response_excerpt: a.response_excerpt.clone(),
                    created_at: from_ms(a.created_at),
                })
                .collect(),
            created_at: from_ms(d.created_at),
        }
    }
}

/// Checks a URL's scheme and shape, and that its host resolves to public addresses only
/// (unless private networks are allowed).
async fn check_endpoint_url(state: &AppState, url: &str) -> ApiResult<String> {
    let allow = state.config().allow_private_networks;
    let parsed = check_url(url, allow).map_err(|e| {
        let msg = match e {
            UrlError::Scheme => "`url` must be an http or https URL.".to_owned(),
            UrlError::Invalid => "`url` is not a valid URL.".to_owned(),
            UrlError::Private => format!("`url` points to a private address ({e})."),
        };
        ApiError::invalid("url", msg)
    })?;
    if !allow && let Some(host) = parsed.host_str().filter(|h| !h.starts_with('[')) {
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs: Vec<_> = tokio::net::lookup_host((host, port))
            .await
            .map(|a| a.collect())
            .unwrap_or_default();
        if addrs
            .iter()
            .any(|a: &std::net::SocketAddr| !is_public(a.ip()))
        {
            return Err(ApiError::invalid(
                "url",
                format!("`url` resolves to a private, loopback or link-local address ({host})."),
            ));
        }
    }
    Ok(parsed.to_string())
}

fn check_events(events: &[String]) -> ApiResult<Vec<String>> {
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(ApiError::invalid(
            "events",
            format!("`events` must list 1 to {MAX_EVENTS} event types."),
        ));
    }
    for e in events {
        if e != "*" && !event_types::ALL.contains(&e.as_str()) {
            return Err(ApiError::invalid(
                "events",
                format!("Unknown event type `{e}`."),
            ));
        }
    }
    let mut out = events.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

fn description(d: &str) -> ApiResult<String> {
    if d.chars().count() > 500 {
        return Err(ApiError::invalid(
            "description",
            "`description` must be at most 500 characters.",
        ));
    }
    Ok(d.trim().to_owned())
}

async fn visible_endpoint(state: &AppState, p: &Principal, id: &str) -> ApiResult<Endpoint> {
    let not_found = || ApiError::not_found("webhook endpoint", id);
    let id = WebhookId::parse(id).ok_or_else(not_found)?;
    state
        .store()
        .get_endpoint(p.workspace_id(), &id)
        .await?
        .filter(|e| e.livemode == p.livemode())
        .ok_or_else(not_found)
}

/// Webhook endpoints of this key's mode, newest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(Pagination),
    security(("bearer" = ["webhooks:read"]), ("api_key" = ["webhooks:read"])),
    responses((status = 200, body = inline(List<EndpointObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::WebhooksRead>,
    page: Pagination,
) -> ApiResult<Json<List<EndpointObject>>> {
    whole_workspace(&p)?;
    let items = state
        .store()
        .list_endpoints(p.workspace_id(), p.livemode(), page.limit, page.offset)
        .await?;
    Ok(Json(List::of(&items, |e| EndpointObject::new(e, None))))
}

/// Create an endpoint; the response carries its signing secret, shown this once.
///
/// A workspace has at most 16 endpoints per mode (live and test count separately; the
/// operator may set `webhook_max_endpoints` from 1 to 100). Creating one more answers
/// `409 conflict` and stores nothing; delete an endpoint first, or subscribe an
/// existing one to more events.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateEndpoint,
    security(("bearer" = ["webhooks:write"]), ("api_key" = ["webhooks:write"])),
    responses((status = 201, body = EndpointObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::WebhooksWrite>,
    ApiJson(req): ApiJson<CreateEndpoint>,
) -> ApiResult<NoStore<Created<EndpointObject>>> {
    whole_workspace(&p)?;
    let url = check_endpoint_url(&state, &req.url).await?;
    let events = check_events(&req.events)?;
    let description = description(&req.description)?;
    let now = state.clock().now_ms();
    let id = WebhookId::generate();
    let secret = new_secret();
    let e = Endpoint {
        secret: webhook_secrets::seal(state.app().keyring(), &id, &secret),
        id,
        workspace_id: p.workspace_id().clone(),
        livemode: p.livemode(),
        url,
        description,
        events,
        enabled: true,
        disabled_reason: None,
        previous_secret: None,
        previous_secret_until: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    let max = state.config().max_webhook_endpoints;
    if !state.store().insert_endpoint(&e, max).await? {
        let mode = if p.livemode() { "live" } else { "test" };
        // The request is well-formed; the workspace's state refuses it (as at the feeds cap).
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "This workspace already has {max} {mode}-mode webhook endpoints, the most it \
                 may have. Delete one, or subscribe an existing endpoint to more events."
            ),
        ));
    }
    Ok(NoStore(Created(EndpointObject::new(&e, Some(secret)))))
}

/// One endpoint (never its secret).
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    security(("bearer" = ["webhooks:read"]), ("api_key" = ["webhooks:read"])),
    responses((status = 200, body = EndpointObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::WebhooksRead>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<EndpointObject>> {
    whole_workspace(&p)?;
    Ok(Json(EndpointObject::new(
        &visible_endpoint(&state, &p, &id).await?,
        None,
    )))
}

/// Change an endpoint's URL, events, description, or enable/disable it.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", request_body = UpdateEndpoint,
    params(("id" = String, Path)),
    security(("bearer" = ["webhooks:write"]), ("api_key" = ["webhooks:write"])),
    responses((status = 200, body = EndpointObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::WebhooksWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateEndpoint>,
) -> ApiResult<Json<EndpointObject>> {
    whole_workspace(&p)?;
    let mut e = visible_endpoint(&state, &p, &id).await?;
    if let Some(url) = req.url {
        e.url = check_endpoint_url(&state, &url).await?;
    }
    if let Some(events) = req.events {
        e.events = check_events(&events)?;
    }
    if let Some(d) = req.description {
        e.description = description(&d)?;
    }
    if let Some(enabled) = req.enabled {
        if enabled && !e.enabled {
            e.disabled_reason = None;
            e.failing_since = None;
        }
        if !enabled && e.enabled {
            e.disabled_reason = Some("disabled through the API".into());
        }
        e.enabled = enabled;
    }
    e.updated_at = state.clock().now_ms();
    if !state.store().update_endpoint(&e).await? {
        return Err(ApiError::not_found("webhook endpoint", &id));
    }
    Ok(Json(EndpointObject::new(&e, None)))
}

/// Delete an endpoint; deliveries not yet made are dropped.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    security(("bearer" = ["webhooks:write"]), ("api_key" = ["webhooks:write"])),
    responses((status = 200, body = crate::routes::posts::Deleted), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::WebhooksWrite>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<crate::routes::posts::Deleted>> {
    whole_workspace(&p)?;
    let e = visible_endpoint(&state, &p, &id).await?;
    if !state
        .store()
        .delete_endpoint(p.workspace_id(), &e.id)
        .await?
    {
        return Err(ApiError::not_found("webhook endpoint", &id));
    }
    Ok(Json(crate::routes::posts::Deleted {
        id: e.id.to_string(),
        object: "webhook_endpoint",
        deleted: true,
    }))
}

/// A new signing secret (shown once). For `overlap_seconds` deliveries carry signatures with
/// both the old and the new secret, so receivers can switch without dropping any.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate", tag = "webhooks", request_body = RotateSecret,
    params(("id" = String, Path)),
    security(("bearer" = ["webhooks:write"]), ("api_key" = ["webhooks:write"])),
    responses((status = 200, body = EndpointObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn rotate(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::WebhooksWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RotateSecret>,
) -> ApiResult<NoStore<Json<EndpointObject>>> {
    whole_workspace(&p)?;
    let overlap = req.overlap_seconds.unwrap_or(0);
    if overlap > MAX_OVERLAP_SECONDS {
        return Err(ApiError::invalid(
            "overlap_seconds",
            "`overlap_seconds` must be from 0 to 604800 (7 days).",
        ));
    }
    let e = visible_endpoint(&state, &p, &id).await?;
    let now = state.clock().now_ms();
    let secret = new_secret();
    let sealed = webhook_secrets::seal(state.app().keyring(), &e.id, &secret);
    let until = now + i64::from(overlap) * 1000;
    let Some(e) = state
        .store()
        .rotate_endpoint_secret(p.workspace_id(), &e.id, &sealed, until, now)
        .await?
    else {
        // Deleted meanwhile: the new secret was never stored.
        return Err(ApiError::not_found("webhook endpoint", &id));
    };
    Ok(NoStore(Json(EndpointObject::new(&e, Some(secret)))))
}

/// Send a `webhook.test` event to this endpoint.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path)),
    security(("bearer" = ["webhooks:write"]), ("api_key" = ["webhooks:write"])),
    responses((status = 202, body = EndpointObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn test(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::WebhooksWrite>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(axum::http::StatusCode, Json<EndpointObject>)> {
    whole_workspace(&p)?;
    let e = visible_endpoint(&state, &p, &id).await?;
    if !e.enabled {
        return Err(ApiError::conflict(
            "This endpoint is disabled; enable it first.",
        ));
    }
    state
        .store()
        .send_test_event(&e, state.clock().now_ms())
        .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(EndpointObject::new(&e, None)),
    ))
}

/// The endpoint's deliveries, newest first, each with every attempt.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), Pagination),
    security(("bearer" = ["webhooks:read"]), ("api_key" = ["webhooks:read"])),
    responses((status = 200, body = inline(List<DeliveryObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn deliveries(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::WebhooksRead>,
    ApiPath(id): ApiPath<String>,
    page: Pagination,
) -> ApiResult<Json<List<DeliveryObject>>> {
    whole_workspace(&p)?;
    let e = visible_endpoint(&state, &p, &id).await?;
    let items = state
        .store()
        .list_deliveries(p.workspace_id(), &e.id, page.limit, page.offset)
        .await?;
    Ok(Json(List::of(&items, |(d, a)| DeliveryObject::new(d, a))))
}

/// Deliver an event again now, with the same `webhook-id`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = String, Path), ("delivery_id" = String, Path)),
    security(("bearer" = ["webhooks:write"]), ("api_key" = ["webhooks:write"])),
    responses((status = 202, body = EndpointObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn redeliver(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::WebhooksWrite>,
    ApiPath((id, delivery_id)): ApiPath<(String, String)>,
) -> ApiResult<(axum::http::StatusCode, Json<EndpointObject>)> {
    whole_workspace(&p)?;
    let e = visible_endpoint(&state, &p, &id).await?;
    let not_found = || ApiError::not_found("delivery", &delivery_id);
    let d = DeliveryId::parse(&delivery_id).ok_or_else(not_found)?;
    if !state
        .store()
        .redeliver(p.workspace_id(), &e.id, &d, state.clock().now_ms())
        .await?
    {
        // Nothing was redelivered: a delivery of this endpoint still on its way, or no such
        // delivery of this endpoint at all.
        let ours = state
            .store()
            .delivery_context(&d)
            .await?
            .is_some_and(|(d, ..)| d.workspace_id == *p.workspace_id() && d.endpoint_id == e.id);
        if !ours {
            return Err(not_found());
        }
        return Err(ApiError::conflict(
            "This delivery is still on its way; redeliver it once it has succeeded or failed.",
        ));
    }
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(EndpointObject::new(&e, None)),
    ))
}
