//! An API error shown where it belongs: next to the form field its `param` names (`url`,
//! `slots[2]`, `account_ids[0]` → `account_ids`), or above the form when it names none of the
//! form's fields.

use crate::error::ApiError;

#[derive(Default)]
pub struct Inline {
    /// The form field the error is about, if the form has it.
    field: Option<String>,
    message: Option<String>,
    /// The error's `param` as the API gave it (empty without one).
    pub param: String,
}

impl Inline {
    /// The error placed among `fields` (the names the form's fields go by).
    pub fn new(error: Option<&ApiError>, fields: &[&str]) -> Self {
        let Some(e) = error else {
            return Self::default();
        };
        let param = e.param.clone().unwrap_or_default();
        let base = param.split(['[', '.']).next().unwrap_or("");
        let field = [param.as_str(), base]
            .into_iter()
            .find(|p| !p.is_empty() && fields.contains(p))
            .map(str::to_owned);
        Self {
            field,
            message: Some(e.message.to_string()),
            param,
        }
    }

    /// The message, when the error is about `field`.
    pub fn on(&self, field: &str) -> Option<&str> {
        match &self.field {
            Some(f) if f == field => self.message.as_deref(),
            _ => None,
        }
    }

    /// The message, when it is about no field of the form.
    pub fn general(&self) -> Option<&str> {
        match self.field {
            None => self.message.as_deref(),
            Some(_) => None,
        }
    }
}
