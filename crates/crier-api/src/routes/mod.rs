//! The router: public operations, the authenticated `/v1` API, the OpenAPI description and
//! its interactive docs, wrapped in the layers every request passes (see ARCHITECTURE.md).

pub mod accounts;
pub mod agents;
pub mod ai;
pub mod auth;
pub mod brands;
pub mod carousels;
pub mod clips;
pub mod feeds;
pub mod kb;
pub mod keys;
pub mod me;
pub mod media;
pub mod oauth_server;
pub mod ops;
pub mod posts;
pub mod queue;
pub mod requests;
pub mod trending;
pub mod webhooks;
pub mod workspace;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use crier_core::ErrorCode;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::AppState;
use crate::context::{record_route, request_context};
use crate::error::ApiError;
use crate::openapi::ApiDoc;

fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(auth::login))
        .routes(routes!(auth::device))
        .routes(routes!(auth::device_token))
        .routes(routes!(oauth_server::protected_resource))
        .routes(routes!(oauth_server::protected_resource_mcp))
        .routes(routes!(oauth_server::metadata))
        .routes(routes!(oauth_server::register))
        .routes(routes!(oauth_server::token))
        .routes(routes!(oauth_server::revoke))
}

/// Every route that needs a key. Each handler names its scope with `Auth<need::…>`.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::get, keys::update, keys::revoke))
        .routes(routes!(keys::rotate))
        .routes(routes!(keys::usage))
        .routes(routes!(requests::get))
        .routes(routes!(workspace::get, workspace::update))
        .routes(routes!(me::get))
        .routes(routes!(posts::list, posts::create))
        .routes(routes!(posts::get, posts::update, posts::delete))
        .routes(routes!(posts::schedule))
        .routes(routes!(posts::publish))
        .routes(routes!(posts::retry))
        .routes(routes!(posts::cancel))
        .routes(routes!(posts::approve))
        .routes(routes!(posts::analytics))
        .routes(routes!(posts::batch))
        .routes(routes!(posts::validate))
        .routes(routes!(accounts::list))
        .routes(routes!(accounts::analytics))
        .routes(routes!(accounts::connect_start, accounts::connect))
        .routes(routes!(accounts::disconnect))
        .routes(routes!(accounts::timeline))
        .routes(routes!(accounts::faults))
        .routes(routes!(queue::get_slots, queue::put_slots))
        .routes(routes!(queue::list))
        .routes(routes!(agents::list, agents::create))
        .routes(routes!(agents::get, agents::update, agents::delete))
        .routes(routes!(agents::runs, agents::run_now))
        .routes(routes!(agents::run))
        .routes(routes!(carousels::list, carousels::create))
        .routes(routes!(
            carousels::get,
            carousels::update,
            carousels::delete
        ))
        .routes(routes!(carousels::regenerate))
        .routes(routes!(carousels::png))
        .routes(routes!(carousels::pdf))
        .routes(routes!(carousels::export))
        .routes(routes!(clips::list, clips::create))
        .routes(routes!(clips::get))
        .routes(routes!(clips::cancel))
        .routes(routes!(feeds::list, feeds::create))
        .routes(routes!(feeds::get, feeds::update, feeds::delete))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::rotate))
        .routes(routes!(webhooks::test))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(media::list))
        .routes(routes!(media::upload_url))
        .routes(routes!(media::import))
        .routes(routes!(media::get, media::update, media::delete))
        .routes(routes!(media::confirm))
        .routes(routes!(brands::list, brands::create))
        .routes(routes!(brands::get, brands::update, brands::delete))
        .routes(routes!(brands::reorder))
        .routes(routes!(kb::list, kb::create))
        .routes(routes!(kb::get, kb::delete))
        .routes(routes!(kb::search))
        .routes(routes!(trending::list))
        .routes(routes!(ai::rewrite))
        .routes(routes!(ai::compose))
        .routes(routes!(ai::hashtags))
        .routes(routes!(ai::thread))
        .routes(routes!(ai::ideas))
        .routes(routes!(ai::optimise))
        .routes(routes!(ai::usage))
        .routes(routes!(ai::get_persona, ai::put_persona))
        .routes(routes!(auth::logout))
}

/// The OpenAPI description with every route in it, as served at `/v1/openapi.json`.
pub fn openapi() -> serde_json::Value {
    crate::openapi::refine(
        OpenApiRouter::with_openapi(ApiDoc::openapi())
            .merge(public_routes())
            .merge(api_routes())
            .routes(routes!(crate::mcp::post))
            .into_openapi(),
    )
}

/// The one layer of every `/v1` route that needs a key: authentication and rate limits
/// ([`crate::auth::admit`]), then idempotency, then the route; the matched route goes back
/// with the answer for the request log and metrics. One layer rather than three: each layer
/// costs every request a clone of the route's service and a boxed future.
async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = crate::context::matched_route(&req);
    let resp = match crate::auth::admit(&state, req).await {
        Ok((req, headers)) => crate::auth::with_headers(
            match known_query(&req) {
                Ok(()) => crate::idempotency::idempotency(state, req, next).await,
                Err(e) => e.into_response(),
            },
            headers,
        ),
        Err(refused) => refused,
    };
    crate::context::with_route(resp, route)
}

type QueryParams = HashMap<String, Vec<(Method, Vec<String>)>>;

/// The query parameters of each documented operation, by route template and method, read
/// from the OpenAPI description once: what the description lists is what the server takes.
static QUERY_PARAMS: OnceLock<QueryParams> = OnceLock::new();

/// [`QUERY_PARAMS`] from the description the router serves.
fn query_params(doc: &serde_json::Value) -> QueryParams {
    let mut table = QueryParams::new();
    let paths = doc["paths"].as_object().into_iter().flatten();
    for (path, item) in paths.filter(|(path, _)| path.starts_with("/v1/")) {
        for (method, op) in item.as_object().into_iter().flatten() {
            let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                continue;
            };
            let names = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            table.entry(path.clone()).or_default().push((method, names));
        }
    }
    table
}

/// Query parameters a request may carry at most (an operation documents six at most).
pub const MAX_QUERY_PARAMETERS: usize = 100;

/// Refuses a query parameter the matched operation does not document (`400 invalid_request`,
/// `param` naming it), as Stripe does: ignored, a misspelt `limt=5` or `brand=…` would answer
/// as if it were not there, and the caller would never learn why. The API's own operations
/// only (`/v1/…`): requests without a query string, routes outside the description (the
/// dashboard), the probes (`/healthz`, `/readyz`, `/metrics`, which monitors may call with a
/// cache-busting parameter) and OAuth's endpoints (RFC 6749 §3.2: unrecognized parameters are
/// ignored) are not looked at. The names are read one by one, and no more than
/// [`MAX_QUERY_PARAMETERS`] of them, so a long query string costs little.
fn known_query(req: &Request) -> Result<(), ApiError> {
    let Some(query) = req.uri().query() else {
        return Ok(());
    };
    let Some(route) = req.extensions().get::<axum::extract::MatchedPath>() else {
        return Ok(());
    };
    let Some(takes) = QUERY_PARAMS
        .get()
        .and_then(|table| table.get(route.as_str()))
        .and_then(|ops| ops.iter().find(|(m, _)| m == req.method()))
        .map(|(_, names)| names)
    else {
        return Ok(());
    };
    let pairs = query.split('&').filter(|p| !p.is_empty());
    for (i, pair) in pairs.enumerate() {
        if i == MAX_QUERY_PARAMETERS {
            return Err(ApiError::new(
                crier_core::ErrorCode::InvalidRequest,
                format!("A request may carry at most {MAX_QUERY_PARAMETERS} query parameters."),
            ));
        }
        let raw = pair.split_once('=').map_or(pair, |(name, _)| name);
        if takes.iter().any(|t| t == raw) {
            continue;
        }
        let name = crate::extract::percent_decode(raw);
        if takes.contains(&name) {
            continue;
        }
        let shown: String = name.chars().take(100).collect();
        let message = if takes.is_empty() {
            format!("Unknown query parameter `{shown}`: this operation takes none.")
        } else {
            let list: Vec<String> = takes.iter().map(|n| format!("`{n}`")).collect();
            format!(
                "Unknown query parameter `{shown}`: this operation takes {}.",
                list.join(", ")
            )
        };
        return Err(ApiError::invalid(shown, message));
    }
    Ok(())
}

/// [`known_query`] as a layer, for the routes that take no key.
async fn refuse_unknown_query(req: Request, next: Next) -> Response {
    match known_query(&req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

pub fn router(state: AppState) -> Router {
    let doc = openapi();
    QUERY_PARAMS.get_or_init(|| query_params(&doc));
    let (authenticated, _) = api_routes()
        .route_layer(from_fn_with_state(state.clone(), gate))
        .split_for_parts();
    // The `/v1` API as `/mcp`'s tools call it, in process: the same routes and layers, so a
    // tool call is authenticated, limited and logged as its own request.
    let v1 = Router::new()
        .merge(authenticated.clone())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), request_context))
        .with_state(state.clone());
    let mcp = crate::mcp::routes(v1, &state.config().public_url)
        .route_layer(from_fn_with_state(state.clone(), crate::auth::authenticate));
    let (public, _) = public_routes()
        .route_layer(from_fn(refuse_unknown_query))
        .split_for_parts();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::PUT,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static(crate::auth::WORKSPACE_HEADER),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
            header::RETRY_AFTER,
            HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(Duration::from_secs(600));
    // Routes without a key record their route in a layer of their own; the routes above do
    // it in theirs.
    Router::new()
        .merge(public)
        .merge(media::signed_routes())
        .merge(crate::dashboard::routes())
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/v1/openapi.json", doc))
        .route_layer(from_fn(record_route))
        .merge(authenticated)
        .merge(mcp)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(cors)
        .layer(from_fn_with_state(state.clone(), request_context))
        .with_state(state)
}

async fn not_found() -> Response {
    ApiError::new(
        ErrorCode::NotFound,
        "No such route. See /v1/openapi.json for the API's routes.",
    )
    .into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "This route does not accept this method.",
    )
    .into_response()
}

/// What a worker-only node (`crier serve --role worker`) serves: liveness, readiness and its
/// metrics, nothing of the API.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(ops::healthz))
        .route("/readyz", axum::routing::get(ops::readyz))
        .route("/metrics", axum::routing::get(ops::metrics))
        .fallback(not_found)
        .layer(from_fn_with_state(state.clone(), request_context))
        .with_state(state)
}
