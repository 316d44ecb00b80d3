//! The outermost layer of every request: it gives the request its id, runs it inside that id's
//! task-local context and tracing span, turns a panic into the 500 envelope, stamps
//! `X-Request-Id` on whatever leaves, and records the request in the metrics. An
//! authenticated request (the auth layer names its caller in [`CALLER`]) is also counted in its
//! key's daily usage and the recent request log, in memory (see `auth/usage.rs`).

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
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
use crate::auth::cache::KeyRecord;
use crate::error::{ApiError, REQUEST_ID};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    /// The caller of the current request, once the auth layer has verified it (also when its
    /// rate limit then refuses the request): a slot [`request_context`] opens empty for each
    /// request and reads when the response is known. Filling it costs one `Arc` clone.
    static CALLER: Cell<Option<Arc<KeyRecord>>>;
}

/// Names the verified caller of the current request (a no-op outside [`request_context`]).
pub fn note_caller(key: &Arc<KeyRecord>) {
    let _ = CALLER.try_with(|c| c.set(Some(key.clone())));
}

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
    // The slot is read inside its scope, after the handler (or its panic) is done.
    let run = CALLER.scope(Cell::new(None), async move {
        let outcome = run.await;
        (outcome, CALLER.with(Cell::take))
    });
    let (outcome, caller) = REQUEST_ID
        .scope(id.clone(), run.instrument(span.clone()))
        .await;
    let mut resp = match outcome {
        Ok(resp) => resp,
        Err(panic) => {
            let what = crier_core::error::panic_message(&*panic);
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
    if let Some(key) = caller {
        let now = state.clock().now_ms();
        let entry = crier_store::RequestLogEntry {
            request_id: id,
            workspace_id: key.row.workspace_id.clone(),
            key_id: key.row.id.clone(),
            method: crate::metrics::method_label(&method).to_owned(),
            path: route.clone(),
            status: i64::from(status),
            error_code: resp
                .extensions()
                .get::<ErrorCode>()
                .map(|c| c.as_str().to_owned()),
            duration_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
            at: now,
        };
        let dropped = state.auth().usage.finish(&key, entry);
        state.metrics().request_log_dropped(dropped);
    }
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
    let route = matched_route(&req);
    with_route(next.run(req).await, route)
}

/// The route template `req` matched, for [`with_route`].
pub fn matched_route(req: &Request) -> Option<MatchedPath> {
    req.extensions().get::<MatchedPath>().cloned()
}

/// `resp` carrying `route` for the request log and metrics.
pub fn with_route(mut resp: Response, route: Option<MatchedPath>) -> Response {
    if let Some(route) = route {
        resp.extensions_mut().insert(route);
    }
    resp
}
