//! Fetching a document's URL: through the SSRF-guarded client (`crier_networks::http`), only
//! `http`/`https`, redirects followed by hand (each target checked again, at most
//! [`MAX_REDIRECTS`]), the body read up to the cap (declared or actual), within the client's
//! timeout, and only pages of a type crier can read (HTML, plain text, Markdown).
//!
//! Every failure is the caller's URL at fault: `400 invalid_request` with `param` `url` and a
//! message that says what happened (refused, unreachable, timed out, HTTP status, too large,
//! wrong type). A server a user names is their input, not a backend of crier's, so it is never
//! `503 upstream_unavailable` (which would tell clients to retry the same request and alert
//! operators about someone else's server).

use crier_networks::http::{self, BodyError, UrlError, check_url, describe};
use reqwest::header;

use super::KbSettings;
use crate::{AppError, AppResult};

pub const MAX_REDIRECTS: usize = 5;
pub const MAX_URL: usize = 2048;
const ACCEPT: &str = "text/html, application/xhtml+xml, text/markdown, text/plain;q=0.9";

/// What a page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Text,
    Markdown,
}

/// A fetched page.
#[derive(Debug, Clone)]
pub struct Page {
    /// The URL as asked for (normalised), not where redirects ended.
    pub url: String,
    pub format: Format,
    pub body: String,
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

/// The page at `raw`.
pub async fn fetch(settings: &KbSettings, raw: &str) -> AppResult<Page> {
    let allow = settings.allow_private_networks;
    let asked = check(raw, allow)?;
    let mut url = asked.clone();
    for _ in 0..=MAX_REDIRECTS {
        let resp = settings
            .client()
            .get(url.clone())
            .header(header::ACCEPT, ACCEPT)
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
            url = check_url(next.as_str(), allow)
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
        let (format, charset) = format_of(&content_type).ok_or_else(|| {
            let shown = if content_type.is_empty() {
                "no Content-Type".to_owned()
            } else {
                format!("`{}`", content_type.chars().take(100).collect::<String>())
            };
            bad(format!(
                "The page at `url` has {shown}; crier reads text/html, text/plain and \
                 text/markdown pages."
            ))
        })?;
        let bytes = read_capped(resp, settings.max_fetch_bytes).await?;
        let encoding = charset
            .and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes()))
            .unwrap_or(encoding_rs::UTF_8);
        let (body, _, _) = encoding.decode(&bytes);
        return Ok(Page {
            url: asked.to_string(),
            format,
            body: body.into_owned(),
        });
    }
    Err(bad(format!(
        "`url` redirected more than {MAX_REDIRECTS} times."
    )))
}

/// The format and charset a `Content-Type` names, if crier reads it.
fn format_of(content_type: &str) -> Option<(Format, Option<String>)> {
    let mut parts = content_type.split(';');
    let essence = parts.next()?.trim().to_ascii_lowercase();
    let format = match essence.as_str() {
        "text/html" | "application/xhtml+xml" => Format::Html,
        "text/plain" => Format::Text,
        "text/markdown" | "text/x-markdown" => Format::Markdown,
        _ => return None,
    };
    let charset = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_owned())
    });
    Some((format, charset))
}

/// The body, refused as soon as it is known to exceed `cap` bytes (declared or read).
async fn read_capped(resp: reqwest::Response, cap: usize) -> AppResult<Vec<u8>> {
    http::read_capped(resp, cap).await.map_err(|e| match e {
        BodyError::TooLarge => bad(format!(
            "The page at `url` is larger than {} KiB, the most crier reads.",
            cap / 1024
        )),
        BodyError::Read(why) => bad(format!("Could not read the page at `url`: {why}.")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            format_of("text/html; charset=ISO-8859-1"),
            Some((Format::Html, Some("ISO-8859-1".into())))
        );
        assert_eq!(format_of("TEXT/PLAIN"), Some((Format::Text, None)));
        assert_eq!(
            format_of("text/markdown;charset=\"utf-8\""),
            Some((Format::Markdown, Some("utf-8".into())))
        );
        assert_eq!(format_of("application/pdf"), None);
        assert_eq!(format_of(""), None);
    }
}
