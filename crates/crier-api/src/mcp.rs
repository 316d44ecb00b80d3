//! `POST /mcp`: the MCP server (crier-mcp) over streamable HTTP, stateless, so any node of a
//! cluster answers any request and nothing is kept between them.
//!
//! - The route sits behind the normal API-key auth (any valid key; the key only ever in a
//!   header), so a request without one is the `401` envelope before MCP sees it.
//! - Each tool call is sent through the `/v1` router itself ([`InProcess`]) with the caller's
//!   credentials and client address: it passes auth, scopes, rate limits and restrictions
//!   exactly as over HTTP, and lands in the key's request log with its own request id.
//! - Before rmcp: the `Host` must be loopback or the host of `public_url` (against DNS
//!   rebinding: a page in a browser cannot make a local crier answer it under its own name),
//!   and the body is at most 1 MiB (`413`). `GET` and `DELETE`, which a stateless server has
//!   no use for, answer `405`. Whatever rmcp refuses at the HTTP level comes back as the
//!   envelope too; JSON-RPC errors stay JSON-RPC.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use crier_client::{ApiRequest, ApiResponse, ClientError};
use crier_core::ErrorCode;
use crier_mcp::{Api, CrierMcp};
use http_body_util::BodyExt;
use rmcp::model::Extensions;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::extract::{MAX_BODY_BYTES, read_body};

/// The headers of the MCP request a tool's request carries on: the credential (either
/// form), the session's workspace, and what the key's restrictions and the request log read.
const FORWARDED: [&str; 6] = [
    "authorization",
    "x-api-key",
    crate::auth::WORKSPACE_HEADER,
    "origin",
    "x-forwarded-for",
    "user-agent",
];

/// The most of a tool's answer that is read (a page of posts is far less).
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// The `/v1` router, called in process as the MCP request's caller.
#[derive(Clone)]
pub struct InProcess {
    router: Router,
}

impl Api for InProcess {
    /// The scopes the auth layer verified for this very MCP request (no `GET /v1/me`, which
    /// would cost the key a request of its rate limit per tool call).
    fn known_scopes(&self, ext: &Extensions) -> Option<Vec<String>> {
        let parts = ext.get::<axum::http::request::Parts>()?;
        let principal = parts.extensions.get::<crate::auth::Principal>()?;
        Some(
            principal
                .scopes()
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        )
    }

    async fn call(&self, ext: &Extensions, req: ApiRequest) -> Result<ApiResponse, ClientError> {
        let usage = |m: &str| ClientError::Usage(m.to_owned());
        let parts = ext
            .get::<axum::http::request::Parts>()
            .ok_or_else(|| usage("an MCP request without its HTTP request"))?;
        let mut builder = axum::http::Request::builder()
            .method(req.method.as_str())
            .uri(&req.path)
            .header(header::ACCEPT, "application/json");
        for name in FORWARDED {
            for v in parts.headers.get_all(name) {
                builder = builder.header(name, v);
            }
        }
        if let Some(k) = &req.idempotency_key {
            builder = builder.header("idempotency-key", k);
        }
        let body = match &req.body {
            Some(b) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(b).map_err(|e| usage(&e.to_string()))?)
            }
            None => Body::empty(),
        };
        let mut request = builder.body(body).map_err(|e| usage(&e.to_string()))?;
        if let Some(ci) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            request.extensions_mut().insert(*ci);
        }
        let protocol = |reason: String| ClientError::Protocol {
            url: req.path.clone(),
            reason,
        };
        let resp = self
            .router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| protocol(e.to_string()))?;
        let status = resp.status().as_u16();
        let request_id = resp
            .headers()
            .get(crate::context::REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(resp.into_body(), MAX_ANSWER)
            .await
            .map_err(|e| protocol(e.to_string()))?;
        crier_client::read_answer(status, request_id, &bytes, &req.path)
    }
}

/// What the `/mcp` handler needs.
pub struct McpHttp {
    service: StreamableHttpService<CrierMcp<InProcess>, NeverSessionManager>,
    /// `host` or `host:port` of `public_url`, lowercased.
    public_host: Option<String>,
}

/// The `/mcp` routes over `v1`, the authenticated API router with its layers and state.
pub fn routes(v1: Router, public_url: &str) -> Router<crate::AppState> {
    let api = Arc::new(InProcess { router: v1 });
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_sse_keep_alive(None);
    // The Host check is ours (below), with the envelope; rmcp's would only repeat it.
    config = config.disable_allowed_hosts();
    let service = StreamableHttpService::new(
        move || Ok(CrierMcp::new(api.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    let public_host = url::Url::parse(public_url).ok().and_then(|u| {
        let host = u.host_str()?.to_ascii_lowercase();
        Some(match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        })
    });
    let state = Arc::new(McpHttp {
        service,
        public_host,
    });
    Router::new()
        .route(
            "/mcp",
            axum::routing::post(post)
                .get(not_allowed)
                .delete(not_allowed),
        )
        .layer(Extension(state))
}

/// Whether `host` (the `Host` header) names this server: loopback, or `public_url`'s host.
fn host_allowed(host: &str, public_host: Option<&str>) -> bool {
    let host = host.to_ascii_lowercase();
    if Some(host.as_str()) == public_host {
        return true;
    }
    // Without a port, `public_url`'s host matches on any port only if it had none itself.
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h),
    };
    if public_host == Some(name) {
        return true;
    }
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

/// The MCP endpoint (streamable HTTP, stateless): one JSON-RPC message per request, answered
/// with JSON. Any valid API key, in `Authorization: Bearer` or `X-API-Key`; the tools it
/// lists follow the key's scopes.
#[utoipa::path(post, path = "/mcp", tag = "mcp",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The JSON-RPC response", content_type = "application/json", body = Object),
        (status = 202, description = "A notification, accepted"),
        (status = "4XX", description = "Refused", body = crate::error::ErrorEnvelope),
    ))]
pub async fn post(Extension(mcp): Extension<Arc<McpHttp>>, req: Request) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if !host.is_some_and(|h| host_allowed(&h, mcp.public_host.as_deref())) {
        return ApiError::new(
            ErrorCode::Forbidden,
            "This Host is not this server's: MCP answers only on loopback and the configured public_url (a guard against DNS rebinding).",
        )
        .into_response();
    }
    let (parts, body) = req.into_parts();
    let bytes = match read_body(Request::from_parts(parts.clone(), body)).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // Malformed JSON is `invalid_request`, as everywhere in the API (rmcp would say 415).
    if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
        return ApiError::new(
            ErrorCode::InvalidRequest,
            "The body is not JSON: an MCP request is one JSON-RPC message.",
        )
        .into_response();
    }
    let req = Request::from_parts(parts, Body::from(bytes));
    let resp = match mcp.service.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = resp.into_parts();
    if parts.status.is_client_error() || parts.status.is_server_error() {
        return envelope_of(parts.status, body).await;
    }
    Response::from_parts(parts, Body::new(body))
}

/// An HTTP-level refusal of rmcp (a missing `Accept`, a bad content type, a malformed
/// message) as the envelope, like every error of the server; MCP clients treat an HTTP error
/// status as the failure of the message whatever its body.
async fn envelope_of<B>(status: StatusCode, body: B) -> Response
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send,
    B::Error: std::fmt::Display,
{
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => bytes::Bytes::from(e.to_string()),
    };
    // A JSON-RPC error (a malformed message) is told by its message.
    let detail: String = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v["error"]["message"].is_string() => v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        _ => String::from_utf8_lossy(&bytes).chars().take(300).collect(),
    };
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        s if s.is_server_error() => ErrorCode::InternalError,
        _ => ErrorCode::InvalidRequest,
    };
    let message = match status {
        StatusCode::NOT_ACCEPTABLE => format!(
            "An MCP request must accept application/json and text/event-stream (Accept header). {detail}"
        ),
        _ => format!("The MCP request was refused: {detail}"),
    };
    ApiError::new(code, message).into_response()
}

/// `GET` and `DELETE /mcp`: a stateless server keeps no stream to resume and no session to
/// end.
async fn not_allowed(method: Method) -> Response {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("MCP here is stateless: {method} /mcp is not used; send each message with POST."),
    )
    .with_header(header::ALLOW, HeaderValue::from_static("POST"))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn hosts_are_loopback_or_the_public_url() {
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8080",
            "127.0.0.1",
        ] {
            assert!(host_allowed(ok, Some("crier.example")), "{ok}");
        }
        assert!(host_allowed("crier.example", Some("crier.example")));
        assert!(host_allowed("crier.example:443", Some("crier.example")));
        assert!(host_allowed(
            "crier.example:8443",
            Some("crier.example:8443")
        ));
        assert!(!host_allowed(
            "crier.example:9000",
            Some("crier.example:8443")
        ));
        for bad in [
            "evil.example",
            "127.0.0.2:80",
            "crier.example.evil",
            "[::2]:1",
            "",
        ] {
            assert!(!host_allowed(bad, Some("crier.example")), "{bad}");
        }
    }
}
