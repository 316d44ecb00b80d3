//! The outermost layer of every request: it gives the request its id, runs it inside that id's
//! task-local context and tracing span, turns a panic into the 500 envelope, stamps
//! `X-Request-Id` on whatever leaves, and records the request in the metrics.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crier_core::ErrorCode;
use crier_core::ids::RequestId;
use futures::FutureExt;
use tracing::Instrument;

use crate::AppState;
use crate::error::{ApiError, REQUEST_ID};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub async fn request_context(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = RequestId::generate().to_string();
    let method = req.method().clone();
    // The method as a bounded label: an extension method may be kilobytes long.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = crate::metrics::method_label(&method),
        path = %req.uri().path()
    );

    let run = AssertUnwindSafe(next.run(req)).catch_unwind();
    let outcome = REQUEST_ID
        .scope(id.clone(), run.instrument(span.clone()))
        .await;
    let mut resp = match outcome {
        Ok(resp) => resp,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic".into());
            REQUEST_ID.sync_scope(id.clone(), || {
                span.in_scope(|| ApiError::internal(format!("handler panicked: {what}")))
                    .into_response()
            })
        }
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let status = resp.status().as_u16();
    // The route template, not the raw path, so ids do not explode the metric's cardinality.
    let route = resp
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| {
            if resp.extensions().get::<ErrorCode>() == Some(&ErrorCode::NotFound) {
                "unmatched".to_owned()
            } else {
                "other".to_owned()
            }
        });
    let elapsed = started.elapsed();
    state
        .metrics()
        .observe_request(&method, &route, status, elapsed);
    span.in_scope(|| {
        tracing::info!(
            status,
            route = %route,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request finished"
        )
    });
    resp
}

/// Runs inside the router, after matching: hands the matched route template to
/// [`request_context`] through the response.
pub async fn record_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(route) = route {
        resp.extensions_mut().insert(route);
    }
    resp
}
