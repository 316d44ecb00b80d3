//! The error codes of the API contract, and the validation error the domain raises.
//!
//! Policy: every refusal the API gives has one of these codes; the HTTP layer maps each to its
//! status and to the one envelope. The domain never builds HTTP responses itself.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    PaymentRequired,
    QuotaExceeded,
    ForbiddenScope,
    IpNotAllowed,
    OriginNotAllowed,
    /// A signed URL (media upload or read) whose signature is wrong or which has expired.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    IdempotencyConflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    InternalError,
    UpstreamUnavailable,
    /// Device login (RFC 8628): the user has not decided yet.
    AuthorizationPending,
    /// Device login: polling faster than the interval.
    SlowDown,
    /// Device login: the device code expired or was used.
    ExpiredToken,
    /// Device login: the user denied it.
    AccessDenied,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 21] = [
        Self::InvalidRequest,
        Self::Unauthorized,
        Self::PaymentRequired,
        Self::QuotaExceeded,
        Self::ForbiddenScope,
        Self::IpNotAllowed,
        Self::OriginNotAllowed,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::IdempotencyConflict,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::RateLimited,
        Self::InternalError,
        Self::UpstreamUnavailable,
        Self::AuthorizationPending,
        Self::SlowDown,
        Self::ExpiredToken,
        Self::AccessDenied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::PaymentRequired => "payment_required",
            Self::QuotaExceeded => "quota_exceeded",
            Self::ForbiddenScope => "forbidden_scope",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::InternalError => "internal_error",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::AccessDenied => "access_denied",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest
            | Self::AuthorizationPending
            | Self::SlowDown
            | Self::ExpiredToken
            | Self::AccessDenied => 400,
            Self::Unauthorized => 401,
            Self::PaymentRequired | Self::QuotaExceeded => 402,
            Self::ForbiddenScope
            | Self::IpNotAllowed
            | Self::OriginNotAllowed
            | Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict | Self::IdempotencyConflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RateLimited => 429,
            Self::InternalError => 500,
            Self::UpstreamUnavailable => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One input field at fault: becomes `400 invalid_request` with `param`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct Invalid {
    pub param: String,
    pub message: String,
}

impl Invalid {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            param: param.into(),
            message: message.into(),
        }
    }
}

/// What a caught panic said, when it said it as text (`panic!("…")` gives a `&str` or a
/// `String`); the same words for every other payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic")
}
