//! `Idempotency-Key` on every POST: the first response for a key (per API key) is stored for 24
//! hours; a retry with the same key and request gets it back with `Idempotent-Replayed: true`;
//! the same key with another request gets `409 idempotency_conflict`, as does a retry while the
//! first is still running.
//!
//! What is stored: responses of requests that ran (2xx and 4xx other than 401, 402, 403 and
//! 429, which are refusals before anything ran, so a retry after fixing them runs afresh). A
//! 5xx releases the key. Stored responses are encrypted with ChaCha20-Poly1305 under a key
//! derived from the API key that made the request and the idempotency key: only a request that
//! presents the same secret can read them, so a response that carries a secret (a new API key)
//! is never at rest in the clear, and a database dump reveals none.
//!
//! A replay answers only a caller the route would let in now. Authentication (revoked,
//! expired, IP, origin, rate limit) runs before this layer; the route's scope (and the plan's
//! paid-scope check) is checked here, before anything is claimed or replayed, from the scope
//! the route declares (see [`RouteScopes`]): a key that lost the scope gets the route's
//! `403 forbidden_scope`, not the stored response (which may carry a new key's secret). Scopes
//! the handler checks beyond its route's (`posts:publish` for a batch that schedules) are
//! recorded while it runs, kept beside the response, and required again before a replay.
//!
//! A request that ran is never run again for its key, and never answered with a 500 because
//! its response could not be kept: if storing fails (or the response is over [`MAX_STORED`]),
//! the caller still gets the handler's response, and the key is kept as "ran, not recorded",
//! so a retry gets `409 idempotency_conflict` saying so.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use crier_core::{ErrorCode, Scope, ScopeSet};
use crier_store::IdempotencyBegin;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::AppState;
use crate::auth::{PresentedKey, Principal};
use crate::error::ApiError;
use crate::extract::read_body;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";
const TTL_MS: i64 = 24 * 3600 * 1000;
/// A running request holds its key this long; past it (its server died) a retry takes over.
const LOCK_MS: i64 = 60 * 1000;
/// The largest response kept for replay. Our handlers' responses are bounded by the input
/// limits, and the largest is a batch (`POST /v1/batches`): 100 posts that echo their request
/// (at most 1 MiB of JSON; a text is never longer in a response than in its request) plus, per
/// post, about 400 bytes of fields and, per target (at most 20 accounts), about 200 bytes:
/// 1 MiB + 100 × (400 + 20 × 200) B ≈ 1.42 MiB, which the idempotency tests send. Four MiB
/// leaves room; a larger response is still answered, and kept as "ran, not recorded".
pub const MAX_STORED: usize = 4 * 1024 * 1024;

fn conflict(message: impl Into<Cow<'static, str>>) -> ApiError {
    ApiError::new(ErrorCode::IdempotencyConflict, message)
}

/// The scope each `POST` route needs, by its path template: `None` for any valid key. Read
/// once from the OpenAPI description the router is built from, whose `security` for every
/// operation the authorization matrix test checks against what the handler's
/// `Auth<need::…>` extractor enforces, so this is the route's own declaration.
#[derive(Debug)]
pub struct RouteScopes(HashMap<String, Option<Scope>>);

impl RouteScopes {
    /// From an OpenAPI document (as JSON): every `POST` operation with a `security`
    /// requirement. Panics on a scope name that is not a [`Scope`] (a bug in an annotation).
    pub fn from_openapi(doc: &serde_json::Value) -> Self {
        let mut map = HashMap::new();
        let paths = doc["paths"].as_object().into_iter().flatten();
        for (path, item) in paths {
            let Some(security) = item["post"]["security"].as_array() else {
                continue;
            };
            let scope = security
                .iter()
                .find_map(|req| req.get("bearer"))
                .and_then(|names| names.as_array())
                .and_then(|names| names.first())
                .and_then(|name| name.as_str())
                .map(|name| {
                    *Scope::ALL
                        .iter()
                        .find(|s| s.as_str() == name)
                        .unwrap_or_else(|| panic!("POST {path} declares an unknown scope {name}"))
                });
            map.insert(path.clone(), scope);
        }
        Self(map)
    }

    /// The scope `POST path` needs (`Some(None)`: any key), or `None` when the route declares
    /// nothing.
    pub fn post(&self, path: &str) -> Option<Option<Scope>> {
        self.0.get(path).copied()
    }

    /// The table of this crate's router.
    pub fn of_router() -> &'static Self {
        static TABLE: LazyLock<RouteScopes> = LazyLock::new(|| {
            let doc = serde_json::to_value(crate::routes::openapi()).expect("OpenAPI as JSON");
            RouteScopes::from_openapi(&doc)
        });
        &TABLE
    }
}

/// The access decision the route would make, made before a claim or a replay.
fn check_route_scope(req: &Request, principal: &Principal) -> Result<(), ApiError> {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    match path.and_then(|p| RouteScopes::of_router().post(p)) {
        Some(Some(scope)) => principal.require(scope),
        Some(None) => Ok(()),
        // Fail closed: a route without a declared scope is a bug (a test walks them all).
        None => Err(ApiError::internal(format!(
            "POST {} declares no scope for the idempotency layer",
            path.unwrap_or("(unmatched)")
        ))),
    }
}

/// A stored response is `<scopes the handler required>|<sealed body>`; records from before
/// the scopes were kept are the sealed body alone (base64, never a `|`).
fn split_stored(stored: &str) -> (Option<&str>, &str) {
    match stored.split_once('|') {
        Some((required, sealed)) => (Some(required), sealed),
        None => (None, stored),
    }
}

/// The associated data a response is sealed with: it binds the response to the API key, the
/// idempotency key and the scopes kept beside it (so those cannot be edited at rest).
fn aad(key_id: &crier_core::ids::KeyId, idem_key: &str, required: Option<&str>) -> String {
    match required {
        Some(r) => format!("{key_id}\0{idem_key}\0{r}"),
        None => format!("{key_id}\0{idem_key}"),
    }
}

fn validate(value: &HeaderValue) -> Result<String, ApiError> {
    let s = value.to_str().unwrap_or("");
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "`Idempotency-Key` must be 1 to 255 printable ASCII characters.",
        ));
    }
    Ok(s.to_owned())
}

fn cipher(secret: &PresentedKey, idem_key: &str) -> ChaCha20Poly1305 {
    let mut h = Sha256::new();
    h.update(b"crier idempotency v1\0");
    h.update(secret.0.expose().as_bytes());
    h.update(b"\0");
    h.update(idem_key.as_bytes());
    let key: [u8; 32] = h.finalize().into();
    ChaCha20Poly1305::new(&Key::from(key))
}

fn seal(cipher: &ChaCha20Poly1305, aad: &[u8], body: &[u8]) -> Option<String> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).ok()?;
    let ct = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: body, aad })
        .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Some(STANDARD.encode(out))
}

fn open(cipher: &ChaCha20Poly1305, aad: &[u8], stored: &str) -> Option<Vec<u8>> {
    let raw = STANDARD.decode(stored).ok()?;
    if raw.len() < 12 {
        return None;
    }
    let (nonce, ct) = raw.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .ok()
}

fn storable(status: StatusCode) -> bool {
    (status.is_success() || status.is_client_error())
        && !matches!(status.as_u16(), 401 | 402 | 403 | 429)
}

/// Whether the idempotency layer acts on a request: a POST carrying [`HEADER`]. The auth layer
/// keeps the presented key (which seals the stored response) for these requests only.
pub fn applies(method: &axum::http::Method, headers: &axum::http::HeaderMap) -> bool {
    method == axum::http::Method::POST && headers.contains_key(HEADER)
}

/// Runs `req` (authenticated) through `next` under its `Idempotency-Key`, if it has one (see
/// the module documentation); part of the `/v1` routes' one layer (`routes::gate`).
pub async fn idempotency(state: AppState, req: Request, next: Next) -> Response {
    if !applies(req.method(), req.headers()) {
        return next.run(req).await;
    }
    let Some(value) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let idem_key = match validate(value) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let (Some(principal), Some(secret)) = (
        req.extensions().get::<Principal>().cloned(),
        req.extensions().get::<PresentedKey>().cloned(),
    ) else {
        // No key: unauthenticated, or a session (its token is not a key that can seal).
        return next.run(req).await;
    };
    if let Err(e) = check_route_scope(&req, &principal) {
        return e.into_response();
    }
    let (parts, body) = req.into_parts();
    let bytes = match read_body(Request::from_parts(parts.clone(), body)).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let fingerprint = {
        let mut h = Sha256::new();
        h.update(parts.method.as_str().as_bytes());
        h.update(b" ");
        h.update(
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("")
                .as_bytes(),
        );
        h.update(b"\n");
        h.update(&bytes);
        hex::encode(h.finalize())
    };
    let key_id = principal.key_id().clone();
    let cipher = cipher(&secret, &idem_key);
    let now = state.clock().now_ms();
    let begin = state
        .store()
        .idempotency_begin(
            &key_id,
            &idem_key,
            &fingerprint,
            now,
            now + LOCK_MS,
            now + TTL_MS,
        )
        .await;
    match begin {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(IdempotencyBegin::Mismatch) => {
            return conflict(
                "This Idempotency-Key was already used with a different request; use a new key.",
            )
            .into_response();
        }
        Ok(IdempotencyBegin::InProgress) => {
            return conflict(
                "A request with this Idempotency-Key is still running; retry when it has finished.",
            )
            .into_response();
        }
        Ok(IdempotencyBegin::Done { status, response }) => {
            let (required, sealed) = split_stored(&response);
            // What the handler required beyond its route (say `posts:publish` for a batch
            // that schedules), required again of the caller as it is now.
            for scope in ScopeSet::from_storage(required.unwrap_or("")).iter() {
                if let Err(e) = principal.require(scope) {
                    return e.into_response();
                }
            }
            let aad = aad(&key_id, &idem_key, required);
            let Some(body) = open(&cipher, aad.as_bytes(), sealed) else {
                return ApiError::internal("stored idempotent response does not decrypt")
                    .into_response();
            };
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp.headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            // A replay may show a secret again (a new key's): kept by no cache.
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return resp;
        }
        Ok(IdempotencyBegin::Unrecorded { status }) => {
            return conflict(format!(
                "A request with this Idempotency-Key already ran (it answered {status}), but its \
                 response could not be kept for replay; it will not run again. Check its outcome \
                 (for example by listing what it creates), or send a new request with a new key."
            ))
            .into_response();
        }
        Ok(IdempotencyBegin::Started) => {}
    }
    // From here the request runs and its response is recorded in a task of its own: a
    // client that hangs up (or a connection closed at shutdown) drops the connection's
    // future, and must not cancel a request between its commit and its record, which would
    // leave the key `running` and let a retry after the lock run it twice.
    let request_id = crate::error::current_request_id();
    let run = async move {
        let recording = principal.recording();
        let mut parts = parts;
        parts.extensions.insert(recording.clone());
        let resp = next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
        let status = resp.status();
        if !storable(status) {
            if let Err(e) = state.store().idempotency_release(&key_id, &idem_key).await {
                tracing::warn!(error = %e, "could not release an idempotency key");
            }
            return resp;
        }
        let (resp_parts, resp_body) = resp.into_parts();
        // Our handlers' bodies are whole in memory already (bounded by the input limits, see
        // MAX_STORED), so this copies them and cannot fail; only a streaming body could.
        let body = match axum::body::to_bytes(resp_body, usize::MAX).await {
            Ok(b) => b,
            Err(e) => {
                keep_as_unrecorded(&state, &key_id, &idem_key, status).await;
                return ApiError::internal(format!("response body: {e}")).into_response();
            }
        };
        let stored = if body.len() > MAX_STORED {
            Err(format!(
                "a response of {} bytes is over the {MAX_STORED} kept",
                body.len()
            ))
        } else {
            let required = recording.required().to_storage();
            let aad = aad(&key_id, &idem_key, Some(&required));
            match seal(&cipher, aad.as_bytes(), &body) {
                Some(sealed) => state
                    .store()
                    .idempotency_finish(
                        &key_id,
                        &idem_key,
                        status.as_u16(),
                        &format!("{required}|{sealed}"),
                    )
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("encryption failed".to_owned()),
            }
        };
        if let Err(e) = stored {
            // The request ran and may have committed: answer what it answered, and keep the key
            // so that a retry is told, rather than running it a second time.
            tracing::error!(error = %e, "could not store an idempotent response");
            keep_as_unrecorded(&state, &key_id, &idem_key, status).await;
        }
        Response::from_parts(resp_parts, Body::from(body))
    };
    let task = crate::error::REQUEST_ID.scope(request_id, run.instrument(tracing::Span::current()));
    match tokio::spawn(task).await {
        Ok(resp) => resp,
        // The request context's catcher answers a panic with the 500 envelope, as before.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => ApiError::internal(format!("request task: {e}")).into_response(),
    }
}

/// Marks the key as "ran, not recorded". If even that fails (storage is down), the record
/// stays `running` and a retry after its lock ([`LOCK_MS`]) runs the request again, as after
/// a crash.
async fn keep_as_unrecorded(
    state: &AppState,
    key_id: &crier_core::ids::KeyId,
    idem_key: &str,
    status: StatusCode,
) {
    if let Err(e) = state
        .store()
        .idempotency_finish_unrecorded(key_id, idem_key, status.as_u16())
        .await
    {
        tracing::error!(error = %e, "could not mark an idempotency key as ran");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every authenticated POST route declares its scope, so the layer never fails closed on
    /// a real route, and the table agrees with the routes' annotations.
    #[test]
    fn every_post_route_declares_its_scope() {
        let doc = serde_json::to_value(crate::routes::openapi()).unwrap();
        let table = RouteScopes::of_router();
        let mut posts = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            if !path.starts_with("/v1/") || item.get("post").is_none() {
                continue;
            }
            posts += 1;
            assert!(table.post(path).is_some(), "POST {path} declares no scope");
        }
        assert!(posts >= 10, "{posts} POST routes");
        assert_eq!(table.post("/v1/keys"), Some(Some(Scope::KeysWrite)));
        assert_eq!(
            table.post("/v1/keys/{id}/rotate"),
            Some(Some(Scope::KeysWrite))
        );
        assert_eq!(table.post("/v1/batches"), Some(Some(Scope::PostsWrite)));
        assert_eq!(
            table.post("/v1/posts/{id}/publish"),
            Some(Some(Scope::PostsPublish))
        );
        assert_eq!(table.post("/v1/nope"), None);
    }
}
