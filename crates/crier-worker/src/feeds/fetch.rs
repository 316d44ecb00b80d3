//! Fetching a feed: a conditional GET (the last document's `ETag` and `Last-Modified` as
//! `If-None-Match` and `If-Modified-Since`) through the SSRF-guarded client, redirects followed
//! by hand (each target re-checked, at most [`MAX_REDIRECTS`]), the body read up to a cap.

use crier_store::Feed;
use reqwest::{StatusCode, header};

use super::{FeedConfig, MAX_REDIRECTS};
use crate::http::{BodyError, check_stored_url, describe, read_capped};

const MAX_VALIDATOR: usize = 512;
const ACCEPT: &str = "application/rss+xml, application/atom+xml, application/feed+json, \
    application/json;q=0.9, application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1";

/// What a fetch brought back.
pub(super) enum Fetched {
    NotModified,
    Document {
        body: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// The feed client: the SSRF-guarded HTTP client and the limits of one fetch.
#[derive(Clone)]
pub(super) struct Fetcher {
    client: reqwest::Client,
    allow_private_networks: bool,
    max_body_bytes: usize,
}

impl Fetcher {
    pub(super) fn new(config: &FeedConfig) -> Self {
        Self {
            client: crate::http::client(config.fetch_timeout, config.allow_private_networks),
            allow_private_networks: config.allow_private_networks,
            max_body_bytes: config.max_body_bytes,
        }
    }

    pub(super) async fn fetch(&self, feed: &Feed) -> Result<Fetched, String> {
        let allow = self.allow_private_networks;
        let mut url = check_stored_url(&feed.url, allow)
            .map_err(|e| format!("The feed's URL is refused: {e}."))?;
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self.client.get(url.clone()).header(header::ACCEPT, ACCEPT);
            if let Some(etag) = &feed.etag {
                req = req.header(header::IF_NONE_MATCH, etag.as_str());
            }
            if let Some(lm) = &feed.last_modified {
                req = req.header(header::IF_MODIFIED_SINCE, lm.as_str());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| format!("Could not fetch the feed: {}.", describe(&e)))?;
            let status = resp.status();
            if status == StatusCode::NOT_MODIFIED {
                return Ok(Fetched::NotModified);
            }
            if status.is_redirection() {
                let next = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|loc| url.join(loc).ok())
                    .ok_or_else(|| {
                        format!(
                            "The feed's server answered HTTP {} without a usable Location.",
                            status.as_u16()
                        )
                    })?;
                url = check_stored_url(next.as_str(), allow)
                    .map_err(|e| format!("The feed redirected to a refused URL: {e}."))?;
                continue;
            }
            if !status.is_success() {
                return Err(format!(
                    "The feed's server answered HTTP {}.",
                    status.as_u16()
                ));
            }
            let etag = validator(resp.headers(), header::ETAG);
            let last_modified = validator(resp.headers(), header::LAST_MODIFIED);
            let body = self.read_capped(resp).await?;
            return Ok(Fetched::Document {
                body,
                etag,
                last_modified,
            });
        }
        Err(format!(
            "The feed redirected more than {MAX_REDIRECTS} times."
        ))
    }

    /// The body, refused as soon as it is known to exceed the cap (declared or read).
    async fn read_capped(&self, resp: reqwest::Response) -> Result<Vec<u8>, String> {
        let cap = self.max_body_bytes;
        read_capped(resp, cap).await.map_err(|e| match e {
            BodyError::TooLarge => {
                let size = if cap.is_multiple_of(1024 * 1024) {
                    format!("{} MiB", cap / (1024 * 1024))
                } else if cap.is_multiple_of(1024) {
                    format!("{} KiB", cap / 1024)
                } else {
                    format!("{cap} bytes")
                };
                format!("The feed is larger than {size}, the most crier reads.")
            }
            BodyError::Read(why) => format!("Could not read the feed: {why}."),
        })
    }
}

/// A validator header worth sending back: present, printable, not absurdly long.
fn validator(headers: &header::HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_VALIDATOR)
        .map(str::to_owned)
}
