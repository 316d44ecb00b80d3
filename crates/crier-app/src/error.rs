//! The application layer's refusal: an error code of the contract, a message for people, and
//! the input field at fault. Adapters render it (the HTTP API as its envelope); the layer never
//! builds a response itself.

use std::borrow::Cow;

use crier_core::ErrorCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    pub param: Option<String>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            param: None,
        }
    }

    /// `400 invalid_request` about one field.
    pub fn invalid(param: impl Into<String>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            param: Some(param.into()),
            ..Self::new(ErrorCode::InvalidRequest, message)
        }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("No such {what}: '{id}'."))
    }

    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// A fault of ours; the adapter logs the message and answers without it.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InternalError, message.to_string())
    }

    /// The same error about a field of the object at `prefix` (`posts[3].`): its `param`, if
    /// it names one, is prefixed (an empty field name names the object itself).
    pub fn within(mut self, prefix: &str) -> Self {
        if let Some(param) = &self.param {
            self.param = Some(format!("{prefix}{param}").trim_end_matches('.').to_owned());
        }
        self
    }
}

impl From<crier_store::StoreError> for AppError {
    fn from(e: crier_store::StoreError) -> Self {
        match e {
            crier_store::StoreError::Conflict(what) => {
                Self::conflict(format!("{what} already exists."))
            }
            crier_store::StoreError::Database(sqlx::Error::PoolTimedOut) => Self::new(
                ErrorCode::UpstreamUnavailable,
                "Storage is unavailable; try again shortly.",
            ),
            other => Self::internal(other),
        }
    }
}

impl From<crier_core::Invalid> for AppError {
    fn from(e: crier_core::Invalid) -> Self {
        Self::invalid(e.param, e.message)
    }
}
