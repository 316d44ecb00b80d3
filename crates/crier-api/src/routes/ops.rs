//! Liveness, readiness and metrics: no key needed, nothing secret exposed.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use crier_core::ErrorCode;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = serde_json::Value)))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: storage answers a query, and this node's clock is in step with the database
/// server's (on PostgreSQL).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = serde_json::Value),
        (status = 503, description = "Storage unreachable, or this node's clock off the database's", body = crate::error::ErrorEnvelope),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.store().claims_held() {
        return ApiError::new(
            ErrorCode::UpstreamUnavailable,
            "This node's clock is off the database server's; it claims no work until it is \
             back in step (see its log and crier_clock_offset_seconds).",
        )
        .into_response();
    }
    match state.store().ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::new(ErrorCode::UpstreamUnavailable, "Storage is unreachable.").into_response()
        }
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render()
            + &limiter_metrics(&state.auth().limiter)
            + &state.extra_metrics().await,
    )
        .into_response()
}

/// The rate limiter's own series: which one decides, and the decisions the shared one could not
/// make (each then decided by the configured fallback).
fn limiter_metrics(limiter: &crate::auth::ratelimit::RateLimiter) -> String {
    format!(
        "# HELP crier_rate_limit_backend Which limiter decides (1 for the one in use).\n\
         # TYPE crier_rate_limit_backend gauge\n\
         crier_rate_limit_backend{{kind=\"{}\"}} 1\n\
         # HELP crier_rate_limit_backend_errors_total Decisions the shared limiter (Redis) \
         could not make; the fallback decided them.\n\
         # TYPE crier_rate_limit_backend_errors_total counter\n\
         crier_rate_limit_backend_errors_total {}\n\
         # HELP crier_rate_limit_redis_calls_total Decisions sent to Redis (a busy key's \
         requests share one: tokens taken ahead).\n\
         # TYPE crier_rate_limit_redis_calls_total counter\n\
         crier_rate_limit_redis_calls_total {}\n\
         # HELP crier_rate_limit_redis_scripts_total Script calls to Redis (round trips): \
         decisions asked while one is under way share the next.\n\
         # TYPE crier_rate_limit_redis_scripts_total counter\n\
         crier_rate_limit_redis_scripts_total {}\n",
        limiter.kind(),
        limiter.backend_errors(),
        limiter.redis_decisions(),
        limiter.redis_scripts()
    )
}
