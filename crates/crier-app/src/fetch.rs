//! Fetching a URL a user names (a knowledge-base page, an image to import): through the
//! SSRF-guarded client (`crier_networks::http`), only `http`/`https`, redirects followed by hand
//! (each target checked again, at most [`MAX_REDIRECTS`]), the body read up to a cap (declared
//! or actual), within the operator's timeout.
//!
//! Every failure is the caller's URL at fault: `400 invalid_request` with `param` `url` and a
//! message that says what happened (refused, unreachable, timed out, HTTP status, too large).
//! A server a user names is their input, not a backend of crier's, so it is never
//! `503 upstream_unavailable` (which would tell clients to retry the same request and alert
//! operators about someone else's server).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crier_networks::http::{self, BodyError, UrlError, check_stored_url, check_url, describe};
use reqwest::header;

use crate::{AppError, AppResult};

pub const MAX_REDIRECTS: usize = 5;
pub const MAX_URL: usize = 2048;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// How URLs users name are fetched: the operator's settings and the client built from them.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Whether URLs may point at loopback and private networks (self-hosted setups, tests).
    pub allow_private_networks: bool,
    /// The whole fetch, connecting included.
    pub timeout: Duration,
    /// Built on first use, from the settings above.
    client: Arc<OnceLock<reqwest::Client>>,
}

impl FetchSettings {
    pub fn new(allow_private_networks: bool, timeout: Duration) -> Self {
        Self {
            allow_private_networks,
            timeout,
            client: Arc::default(),
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.client
            .get_or_init(|| http::client(self.timeout, self.allow_private_networks))
    }
}

impl Default for FetchSettings {
    /// Public addresses only, a 15-second timeout.
    fn default() -> Self {
        Self::new(false, DEFAULT_TIMEOUT)
    }
}

/// What a fetch answered.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL as asked for (normalised), not where redirects ended.
    pub url: reqwest::Url,
    /// Where redirects ended.
    pub final_url: reqwest::Url,
    /// The answer's `Content-Type`, as sent (empty when none).
    pub content_type: String,
    pub body: Vec<u8>,
}

fn bad(message: impl Into<String>) -> AppError {
    AppError::invalid("url", message.into())
}

/// The URL's shape and, for an IP literal or `localhost`, its address.
pub fn check(raw: &str, allow_private: bool) -> AppResult<reqwest::Url> {
    if raw.chars().count() > MAX_URL {
        return Err(bad(format!("`url` must be at most {MAX_URL} characters.")));
    }
    check_url(raw.trim(), allow_private).map_err(|e| match e {
        UrlError::Scheme => bad("`url` must be an http or https URL."),
        UrlError::Invalid => bad("`url` is not a valid URL (no credentials in it)."),
        UrlError::Private => bad(format!("`url` is refused: {e}.")),
    })
}

/// `GET raw` with `Accept: accept`; `accepts` decides from the `Content-Type` whether the body
/// is worth reading (its refusal message is the error), and the body may be at most `cap`
/// bytes. `what` names the thing in messages ("page", "file"). The whole fetch, redirects
/// included, takes at most the settings' timeout: each call alone is bounded by it too, so a
/// server answering each of five redirects just before the timeout would otherwise hold a
/// fetch (and the caller's slot) six times as long.
pub async fn get(
    settings: &FetchSettings,
    raw: &str,
    accept: &str,
    cap: usize,
    what: &str,
    accepts: impl Fn(&str) -> Result<(), String>,
) -> AppResult<Fetched> {
    let whole = following(settings, raw, accept, cap, what, accepts);
    tokio::time::timeout(settings.timeout, whole)
        .await
        .unwrap_or_else(|_| {
            Err(bad(format!(
                "The server at `url` did not answer in time (a fetch, redirects included, may \
                 take {} seconds).",
                settings.timeout.as_secs_f64()
            )))
        })
}

/// [`get`] without its bound on the whole.
async fn following(
    settings: &FetchSettings,
    raw: &str,
    accept: &str,
    cap: usize,
    what: &str,
    accepts: impl Fn(&str) -> Result<(), String>,
) -> AppResult<Fetched> {
    let allow = settings.allow_private_networks;
    let asked = check(raw, allow)?;
    let mut url = asked.clone();
    for _ in 0..=MAX_REDIRECTS {
        let resp = settings
            .client()
            .get(url.clone())
            .header(header::ACCEPT, accept)
            .send()
            .await
            .map_err(|e| bad(format!("Could not fetch `url`: {}.", describe(&e))))?;
        let status = resp.status();
        if status.is_redirection() {
            let next = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|loc| url.join(loc).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "The server at `url` answered HTTP {} without a usable Location.",
                        status.as_u16()
                    ))
                })?;
            url = check_stored_url(next.as_str(), allow)
                .map_err(|e| bad(format!("`url` redirected to a URL that is refused: {e}.")))?;
            continue;
        }
        if !status.is_success() {
            return Err(bad(format!(
                "The server at `url` answered HTTP {}.",
                status.as_u16()
            )));
        }
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        accepts(&content_type).map_err(bad)?;
        let body = http::read_capped(resp, cap).await.map_err(|e| match e {
            BodyError::TooLarge => bad(format!(
                "The {what} at `url` is larger than {} KiB, the most crier reads.",
                cap / 1024
            )),
            BodyError::Read(why) => bad(format!("Could not read the {what} at `url`: {why}.")),
        })?;
        return Ok(Fetched {
            url: asked,
            final_url: url,
            content_type,
            body,
        });
    }
    Err(bad(format!(
        "`url` redirected more than {MAX_REDIRECTS} times."
    )))
}
