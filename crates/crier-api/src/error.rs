//! The one error type of the API and its envelope.
//!
//! Policy: every refusal leaves as `{"error":{"code","message","request_id"[,"param"]}}` with
//! the status of its code, from every layer: extractors, handlers, the auth layer, the router's
//! 404/405 and the panic catcher. Unexpected errors are logged with the request id and answered
//! as a generic 500 that leaks nothing. The request id comes from the request's task-local
//! context, so whoever builds the error need not carry it around.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crier_core::{ErrorCode, Invalid};
use serde::Serialize;
use utoipa::ToSchema;

tokio::task_local! {
    /// The id of the request this task is serving.
    pub static REQUEST_ID: String;
}

/// The current request's id, or an empty string outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    pub param: Option<String>,
    /// Extra headers, e.g. `Retry-After` on a 429 or `Allow` on a 405.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            param: None,
            headers: Vec::new(),
        }
    }

    pub fn invalid(param: impl Into<String>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            param: Some(param.into()),
            ..Self::new(ErrorCode::InvalidRequest, message)
        }
    }

    /// The same error about a field of the object at `prefix` (`posts[3].`): its `param`, if
    /// it names one, is prefixed (an empty field name names the object itself).
    pub fn within(mut self, prefix: &str) -> Self {
        if let Some(param) = &self.param {
            self.param = Some(format!("{prefix}{param}").trim_end_matches('.').to_owned());
        }
        self
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("No such {what}: '{id}'."))
    }

    pub fn unauthorized(message: &'static str) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// A fault of ours: logged in full with the request id, answered without details.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            ErrorCode::InternalError,
            "The server failed to handle this request. It has been logged; quote the request id \
             when reporting it.",
        )
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Self::invalid(e.param, e.message)
    }
}

/// The application layer's refusals keep their code, message and field; its faults are logged
/// and answered as the generic 500.
impl From<crier_app::AppError> for ApiError {
    fn from(e: crier_app::AppError) -> Self {
        match e.code {
            ErrorCode::InternalError => Self::internal(e.message),
            code => Self {
                param: e.param,
                ..Self::new(code, e.message)
            },
        }
    }
}

impl From<crier_store::StoreError> for ApiError {
    fn from(e: crier_store::StoreError) -> Self {
        match e {
            crier_store::StoreError::Conflict(what) => {
                Self::conflict(format!("{what} already exists."))
            }
            crier_store::StoreError::Database(sqlx::Error::PoolTimedOut) => {
                tracing::error!("storage pool timed out");
                Self::new(
                    ErrorCode::UpstreamUnavailable,
                    "Storage is unavailable; try again shortly.",
                )
            }
            other => Self::internal(other),
        }
    }
}

/// The envelope, as documented in the OpenAPI description.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `forbidden_scope`.
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
    /// The request id, also in the `X-Request-Id` header and the server's logs.
    pub request_id: String,
    /// The input field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code.as_str(),
                message: self.message.into_owned(),
                request_id: current_request_id(),
                param: self.param,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            resp.headers_mut().append(name, value);
        }
        resp.extensions_mut().insert(self.code);
        resp
    }
}
