//! Extractors that refuse bad input with the envelope: JSON bodies (size, media type, syntax,
//! types, unknown fields, with `param` naming the field), path parameters and pagination.
//! Handlers use these, never axum's own `Path`, `Query` or `Json` extractors, whose rejections
//! are bare text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use crier_core::ErrorCode;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// The contract's limit on JSON request bodies.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn payload_too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        "The request body is larger than 1 MiB.",
    )
}

/// How much of an oversized body is read and thrown away before the 413 is sent, and for how
/// long at most. Simple clients (Python's `urllib`, `requests`) write the whole body before
/// they read anything; a server that answers and closes while they are still writing makes
/// them report a broken pipe instead of the 413. Reading on, within these bounds, lets them see
/// the answer; a body bigger than the limit plus this is refused at once.
pub const DRAIN_BYTES: u64 = 4 * 1024 * 1024;
pub const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads a whole body up to [`MAX_BODY_BYTES`]; a declared or actual excess is a 413.
pub async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = req.into_body().into_data_stream();
    if let Some(n) = declared.filter(|n| *n > MAX_BODY_BYTES as u64) {
        if n <= MAX_BODY_BYTES as u64 + DRAIN_BYTES {
            drain(&mut body, DRAIN_BYTES, DRAIN_TIME).await;
        }
        return Err(payload_too_large());
    }
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if buf.len() + chunk.len() > MAX_BODY_BYTES {
            drain(&mut body, DRAIN_BYTES, DRAIN_TIME).await;
            return Err(payload_too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// The answer to a request body that could not be read: too slow
/// ([`crate::server::BodyTooSlow`]), or broken off.
pub fn unreadable(e: axum::Error) -> ApiError {
    let inner = e.into_inner();
    let message = match inner.downcast_ref::<crate::server::BodyTooSlow>() {
        Some(slow) => format!("The request failed: {slow}; send it again."),
        None => "The request body could not be read to its end.".into(),
    };
    ApiError::new(ErrorCode::InvalidRequest, message)
}

/// Reads and discards what is left of a body, up to `max_bytes` and for `max_time` at most
/// (here [`DRAIN_BYTES`] and [`DRAIN_TIME`]; the server's for a body a handler left unread).
pub(crate) async fn drain(
    body: &mut axum::body::BodyDataStream,
    max_bytes: u64,
    max_time: std::time::Duration,
) {
    let deadline = tokio::time::Instant::now() + max_time;
    let mut read = 0u64;
    while read < max_bytes {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => read += chunk.len() as u64,
            _ => return,
        }
    }
}

/// A JSON body. An empty body (no bytes) reads as `{}`, so endpoints whose fields are all
/// optional accept a bare POST, and endpoints with required fields name the missing one.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_body(req).await?;
        // Only no bytes at all: a body of whitespace is not a JSON text, so it is invalid
        // JSON like any other (schemathesis sent ` ` to PATCH /v1/keys/{id} and got a 200).
        if body.is_empty() {
            return parse_json(b"{}").map(ApiJson);
        }
        let is_json = content_type.as_deref().is_some_and(|ct| {
            let essence = ct.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json")
                || (essence.len() > 5 && essence.to_ascii_lowercase().ends_with("+json"))
        });
        if !is_json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "Send the request body as JSON with `Content-Type: application/json`.",
            ));
        }
        parse_json(&body).map(ApiJson)
    }
}

/// JSON's four whitespace bytes (RFC 8259 §2). `u8::is_ascii_whitespace` also takes form
/// feed, which JSON does not: a body of `\x0c` is invalid JSON, not an empty body.
fn is_json_whitespace(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Whole-number floats (`60.0`, `1e3`) written as the integers they are: JSON has one number
/// type, and JSON Schema (so the OpenAPI description) calls `60.0` an integer, but serde would
/// refuse it for an integer field. Fractions and numbers out of the integer range stay as they
/// are (and are refused where an integer is expected). One pass over the bytes, a copy only
/// when something changes; strings are left alone.
fn integral_floats(bytes: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let (mut i, mut copied) = (0, 0);
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b != b'-' && !b.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        {
            i += 1;
        }
        let token = &bytes[start..i];
        if !token.iter().any(|c| matches!(c, b'.' | b'e' | b'E')) {
            continue;
        }
        let Some(f) = std::str::from_utf8(token)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
        else {
            continue;
        };
        let integer = if f.fract() != 0.0 || !f.is_finite() {
            None
        } else if (0.0..u64::MAX as f64).contains(&f) {
            Some((f as u64).to_string())
        } else if (i64::MIN as f64..0.0).contains(&f) {
            Some((f as i64).to_string())
        } else {
            None
        };
        if let Some(integer) = integer {
            let buf = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
            buf.extend_from_slice(&bytes[copied..start]);
            buf.extend_from_slice(integer.as_bytes());
            copied = i;
        }
    }
    match out {
        Some(mut buf) => {
            buf.extend_from_slice(&bytes[copied..]);
            Cow::Owned(buf)
        }
        None => Cow::Borrowed(bytes),
    }
}

/// Whether a JSON text writes NUL in a string: only a `\u0000` escape can (a raw control byte
/// is invalid JSON), and inside a string every backslash starts an escape, so skipping the
/// byte after each backslash finds exactly those escapes. No text field takes NUL (PostgreSQL
/// cannot store it in text at all), so every JSON body is checked here, once, for all.
fn has_nul_escape(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes[i + 1..].starts_with(b"u0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Where a JSON body writes NUL in a string or key (see [`has_nul_escape`]): the field's path
/// as `param` names it, or `.` when the body is not JSON a tree can hold (it is refused then
/// too, rather than let a NUL through).
pub fn nul_in_json(bytes: &[u8]) -> Option<String> {
    if !has_nul_escape(bytes) {
        return None;
    }
    Some(
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|value| nul_path(&value, String::new()))
            .unwrap_or_else(|| ".".to_owned()),
    )
}

/// The path (as `param` names fields: `overrides.acct_1.body`, `thread[2]`) of the first key
/// or string with a NUL in `value`.
fn nul_path(value: &serde_json::Value, at: String) -> Option<String> {
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => {
            Some(if at.is_empty() { ".".to_owned() } else { at })
        }
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, format!("{at}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(k))
            } else {
                nul_path(v, join(k))
            }
        }),
        _ => None,
    }
}

/// Parses a JSON object body, naming the field at fault in `param`. Streams straight into `T`
/// (no intermediate tree; a repeated key is refused).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every endpoint takes an object; serde would also read a struct from an array.
    let first = bytes.iter().find(|b| !is_json_whitespace(b));
    if first.is_some_and(|b| *b != b'{') {
        if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "The request body is not valid JSON.",
            ));
        }
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "The request body must be a JSON object.",
        ));
    }
    if let Some(param) = nul_in_json(bytes) {
        return Err(ApiError::invalid(
            param.clone(),
            format!("`{param}` contains the NUL character (`\\u0000`), which no field takes."),
        ));
    }
    let bytes = integral_floats(bytes);
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(
                ErrorCode::InvalidRequest,
                format!("The request body is not valid JSON: {message}."),
            );
        }
        // The path of an unknown field already ends with that field (the key was read before
        // it was refused); a missing field is reported at the object that should hold it.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let unknown = message.starts_with("unknown field `");
        let param = match (path.as_str(), missing) {
            (".", Some(f)) => f.to_owned(),
            (p, Some(f)) => format!("{p}.{f}"),
            (".", None) if unknown => message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next())
                .unwrap_or(".")
                .to_owned(),
            (p, None) => p.to_owned(),
        };
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        if param.is_empty() || param == "." {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("Invalid request body: {message}."),
            )
        } else {
            ApiError::invalid(
                param.clone(),
                format!("Invalid value for `{param}`: {message}."),
            )
        }
    })
}

/// Path parameters, like axum's `Path`, refused with the envelope: a parameter that is not
/// UTF-8 or does not parse as its type is a 400 naming it in `param`.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::{ErrorKind, Path};
        use axum::extract::rejection::PathRejection;
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let key = match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::ParseErrorAtKey { key, .. } => Some(key.clone()),
                    ErrorKind::DeserializeError { key, .. } => Some(key.clone()),
                    _ => None,
                };
                Err(match key {
                    Some(key) => ApiError::invalid(
                        key.clone(),
                        format!("The path parameter `{key}` is not valid."),
                    ),
                    None => {
                        ApiError::new(ErrorCode::InvalidRequest, "The request path is not valid.")
                    }
                })
            }
            // The route and the extractor disagree: a fault of ours.
            Err(e) => Err(ApiError::internal(e)),
        }
    }
}

/// `limit` (default 20, at most 50) and `offset` (default 0) from the query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// How many items to return, 1 to 50 (default 20).
    #[param(required = false, minimum = 1, maximum = 50, default = 20)]
    pub limit: u32,
    /// How many items to skip, 0 to 1000000 (default 0).
    #[param(required = false, minimum = 0, maximum = 1000000, default = 0)]
    pub offset: u32,
}

pub const MAX_LIMIT: u32 = 50;
pub const MAX_OFFSET: u32 = 1_000_000;

impl Pagination {
    pub fn from_query(query: Option<&str>) -> Result<Self, ApiError> {
        let mut page = Pagination {
            limit: 20,
            offset: 0,
        };
        for (name, value) in query_pairs(query) {
            match name.as_str() {
                "limit" => {
                    page.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "limit",
                                "`limit` must be a whole number from 1 to 50.",
                            )
                        })?
                }
                "offset" => {
                    page.offset =
                        value
                            .parse()
                            .ok()
                            .filter(|n| *n <= MAX_OFFSET)
                            .ok_or_else(|| {
                                ApiError::invalid(
                                    "offset",
                                    "`offset` must be a whole number from 0 to 1000000.",
                                )
                            })?
                }
                _ => {}
            }
        }
        Ok(page)
    }
}

/// Decoded `name=value` pairs of a query string.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(n), percent_decode(v))
        })
        .collect()
}

/// A query string's component decoded (`+` as a space, `%XX` as its byte, lossy UTF-8).
pub(crate) fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl<S: Send + Sync> FromRequestParts<S> for Pagination {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Pagination::from_query(parts.uri.query())
    }
}

/// A list in the contract's shape: `{"data":[…],"has_more":bool}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    pub has_more: bool,
}

impl<T> List<T> {
    /// A page of stored rows, each shown as `show` makes it.
    pub fn of<'a, U>(page: &'a crier_store::Page<U>, show: impl FnMut(&'a U) -> T) -> Self {
        Self {
            data: page.items.iter().map(show).collect(),
            has_more: page.has_more,
        }
    }
}

/// A created object: `201` with the object as the body.
pub struct Created<T>(pub T);

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, axum::Json(self.0)).into_response()
    }
}

/// An answer that shows a secret once (a new key, a session, a signing secret): with
/// `Cache-Control: no-store`, so no cache or browser history keeps it.
pub struct NoStore<R>(pub R);

impl<R: IntoResponse> IntoResponse for NoStore<R> {
    fn into_response(self) -> Response {
        let mut resp = self.0.into_response();
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        limits: Limits,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limits {
        per_minute: u32,
    }

    fn param_of(json: &str) -> Option<String> {
        parse_json::<Body>(json.as_bytes()).unwrap_err().param
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            param_of(r#"{"name":1,"limits":{"per_minute":1}}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            param_of(r#"{"name":"a","limits":{"per_minute":"x"}}"#).as_deref(),
            Some("limits.per_minute")
        );
        assert_eq!(
            param_of(r#"{"name":"a","limits":{"per_minute":-1}}"#).as_deref(),
            Some("limits.per_minute")
        );
        assert_eq!(
            param_of(r#"{"limits":{"per_minute":1}}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            param_of(r#"{"name":"a","limits":{"per_minute":1},"x":2}"#).as_deref(),
            Some("x")
        );
        assert_eq!(
            param_of(r#"{"name":"a","limits":{"per_minute":1,"y":2}}"#).as_deref(),
            Some("limits.y")
        );
        assert_eq!(
            param_of(r#"{"name":"a","limits":{}}"#).as_deref(),
            Some("limits.per_minute")
        );
        assert_eq!(param_of(r#"{"name":"#), None);
        assert_eq!(param_of("[1,2]"), None);
    }

    #[test]
    fn pagination_bounds() {
        assert_eq!(
            Pagination::from_query(None).unwrap(),
            Pagination {
                limit: 20,
                offset: 0
            }
        );
        assert_eq!(
            Pagination::from_query(Some("limit=50&offset=3")).unwrap(),
            Pagination {
                limit: 50,
                offset: 3
            }
        );
        for bad in [
            "limit=51",
            "limit=0",
            "limit=abc",
            "offset=-1",
            "limit=",
            "offset=1e3",
        ] {
            let err = Pagination::from_query(Some(bad)).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{bad}");
            assert!(err.param.is_some());
        }
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            query_pairs(Some("a=b%20c&d+e=%zz&f")),
            vec![
                ("a".into(), "b c".into()),
                ("d e".into(), "%zz".into()),
                ("f".into(), "".into())
            ]
        );
    }
}

#[cfg(test)]
mod float_tests {
    use super::integral_floats;

    fn rewrite(s: &str) -> String {
        String::from_utf8(integral_floats(s.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn whole_number_floats_become_integers_outside_strings() {
        assert_eq!(
            rewrite(r#"{"a":30.0,"b":1e3,"c":-2.000}"#),
            r#"{"a":30,"b":1000,"c":-2}"#
        );
        assert_eq!(rewrite(r#"{"a":[1.0, 2.5, 7]}"#), r#"{"a":[1, 2.5, 7]}"#);
        // Strings, escaped quotes included, are text.
        assert_eq!(
            rewrite(r#"{"a":"1.0 \"2.0\" 3e1"}"#),
            r#"{"a":"1.0 \"2.0\" 3e1"}"#
        );
        // Out of the integer range, fractions and plain integers: unchanged (and borrowed).
        for same in [
            r#"{"a":1e300}"#,
            r#"{"a":-1e19}"#,
            r#"{"a":0.5}"#,
            r#"{"a":42}"#,
        ] {
            assert_eq!(rewrite(same), same);
            assert!(matches!(
                integral_floats(same.as_bytes()),
                std::borrow::Cow::Borrowed(_)
            ));
        }
    }
}
