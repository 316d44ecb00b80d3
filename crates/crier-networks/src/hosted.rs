//! What the connectors of networks with one operator (X, LinkedIn, Facebook, Instagram,
//! Threads, YouTube, TikTok) share: their configuration, where their endpoints are, and the
//! plumbing of one HTTP call (a timeout, a capped answer, errors in our terms).
//!
//! Their hosts are fixed (`https://api.x.com`, `https://graph.facebook.com`, …). An operator
//! (or a test) may point a network at another base URL (`[network_base_urls] x = "…"`): every
//! host of that network is then that base, paths unchanged. This is how the test suites reach
//! the stateful fakes of `crier-fakes`, and how a self-hoster would put a recording proxy in
//! front of a network.

use std::sync::Arc;
use std::time::Duration;

use crier_core::Clock;

use crate::{NetworkError, Steps};

/// How a connector of a network of one operator talks to it.
#[derive(Debug, Clone)]
pub struct HostedConfig {
    /// Every host of the network replaced by this base URL (tests, proxies); `None`: the
    /// network's own hosts.
    pub base: Option<url::Url>,
    /// The timeout of each call.
    pub timeout: Duration,
    /// The pause between two polls of something the network is still processing (an upload,
    /// a container, a publish status).
    pub poll_interval: Duration,
    /// The longest time spent polling within one publish call; past it the part is retried
    /// later (its ids are kept in the part's steps, so the retry resumes).
    pub poll_max: Duration,
    /// How long after a create call, beyond its timeout, a look-up that misses the part still
    /// answers "cannot tell" (by default [`SETTLE`]; see [`Api::missed`]).
    pub settle: Duration,
}

impl Default for HostedConfig {
    fn default() -> Self {
        Self {
            base: None,
            timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(2),
            poll_max: Duration::from_secs(15),
            settle: SETTLE,
        }
    }
}

/// The HTTP side of a hosted connector.
#[derive(Clone)]
pub struct Api {
    pub network: &'static str,
    pub config: HostedConfig,
    pub http: reqwest::Client,
    pub clock: Arc<dyn Clock>,
}

/// The most we read of any answer of a hosted network.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

impl Api {
    pub fn new(network: &'static str, config: HostedConfig, clock: Arc<dyn Clock>) -> Self {
        // The network's own hosts are public; a base the operator set may be local (tests,
        // a proxy on the same machine), and is the operator's choice, not a user's.
        let http = crate::http::client(config.timeout, config.base.is_some());
        Self {
            network,
            config,
            http,
            clock,
        }
    }

    /// `real` (`https://api.x.com`) joined with `path`, or the configured base with `path`.
    pub fn url(&self, real: &str, path: &str) -> url::Url {
        let base = match &self.config.base {
            Some(b) => b.as_str().trim_end_matches('/').to_owned(),
            None => real.trim_end_matches('/').to_owned(),
        };
        url::Url::parse(&format!("{base}{path}")).expect("a network endpoint is a valid URL")
    }

    /// Sends a request: no answer in time is [`NetworkError::Timeout`], any other failure to
    /// get one [`NetworkError::Unavailable`].
    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, NetworkError> {
        req.send().await.map_err(|e| self.transport(e))
    }

    pub fn transport(&self, e: reqwest::Error) -> NetworkError {
        if e.is_timeout() {
            NetworkError::Timeout
        } else {
            // Without the URL: some of these APIs take the app secret and tokens in the query
            // (Meta's token exchanges), and this message is kept on the target and logged.
            let e = e.without_url();
            let mut message = format!("{}: could not be reached: {e}", self.network);
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            NetworkError::unavailable(message)
        }
    }

    /// A response's body, at most [`MAX_BODY`] bytes; more is `Unavailable`.
    pub async fn body(&self, mut resp: reqwest::Response) -> Result<Vec<u8>, NetworkError> {
        let too_large = || {
            NetworkError::unavailable(format!(
                "{}: the answer is larger than {MAX_BODY} bytes",
                self.network
            ))
        };
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(e))? {
            if out.len() + chunk.len() > MAX_BODY {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// A JSON answer's body as `T`; a body that is not is `Unavailable` (the network sent
    /// something it does not send).
    pub fn parse<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, NetworkError> {
        serde_json::from_slice(bytes).map_err(|e| {
            NetworkError::unavailable(format!(
                "{}: an answer that is not what the network sends: {e}",
                self.network
            ))
        })
    }

    /// The pause until `reset` (epoch seconds), from the clock's now; capped at a day.
    pub fn until_epoch_seconds(&self, reset: i64) -> Duration {
        let ms = reset
            .saturating_mul(1000)
            .saturating_sub(self.clock.now_ms())
            .clamp(0, 24 * 3600 * 1000);
        Duration::from_millis(ms as u64)
    }

    /// `Retry-After` as delta seconds, capped at a day.
    pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
        headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(24 * 3600)))
    }

    /// Waits `d` (polling something the network is processing).
    pub async fn pause(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// The step of a part that keeps when its first create call went out (epoch ms): a look-up
/// reads the account's posts since then.
pub const SENT_AT: &str = "sent_at";
/// The step that keeps when each later create call went out (epoch ms): see [`Api::missed`].
pub const LAST_SENT_AT: &str = "last_sent_at";
/// How long after a create call went out, beyond the call's own timeout, the network may still
/// be making the post it asked for, or not list it yet. These networks document no figure: a
/// call that timed out or was answered 5xx may still have landed, and the network's lists are
/// not read back at once. A few minutes, well above any call's timeout and a list's lag.
pub const SETTLE: Duration = Duration::from_secs(5 * 60);

impl Api {
    /// Keeps when a create call goes out, just before it does (nothing else comes between):
    /// `sent_at` for the part's first (`first`), `last_sent_at` for every later one, so that a
    /// look-up's window starts at the first and its "not published" waits for the latest.
    pub async fn sending(&self, steps: &dyn Steps, first: bool) -> Result<(), NetworkError> {
        let name = if first { SENT_AT } else { LAST_SENT_AT };
        steps.put(name, &self.clock.now_ms().to_string()).await
    }

    /// How long a look-up that did not find a part waits after its latest create call
    /// before it says "not published": the configured settle ([`SETTLE`] by default) past
    /// the call's timeout.
    pub fn settle(&self) -> Duration {
        self.config.settle + self.config.timeout
    }

    /// A look-up read every post since the part's first create call without finding it:
    /// `Ok(None)` ("certainly not published") only once `settle` has passed since its latest
    /// create call (`last_sent_at`, else `sent_at`). Before, that call (a timeout, a 5xx, a
    /// crash mid-call) may still be making the post, and a retry that took the miss for
    /// certain would post a second one: "cannot tell yet" ([`NetworkError::Unavailable`]),
    /// with the time left as its `retry_after`, so the publisher looks again once it has passed.
    pub async fn missed(
        &self,
        steps: &dyn Steps,
        settle: Duration,
    ) -> Result<Option<crate::PublishedPart>, NetworkError> {
        let mut latest = None;
        for name in [SENT_AT, LAST_SENT_AT] {
            if let Some(at) = steps.get(name).await?.and_then(|v| v.parse::<i64>().ok()) {
                latest = latest.max(Some(at));
            }
        }
        let Some(latest) = latest else {
            return Ok(None);
        };
        let settle_ms = i64::try_from(settle.as_millis()).unwrap_or(i64::MAX);
        let wait = latest.saturating_add(settle_ms) - self.clock.now_ms();
        if wait > 0 {
            return Err(NetworkError::Unavailable {
                message: format!(
                    "{}: the part is not among the account's posts yet, and its latest call went \
                     out {} s ago; the network may still be making it, so this cannot be told \
                     until {} s after that call",
                    self.network,
                    (settle_ms - wait) / 1000,
                    settle.as_secs()
                ),
                retry_after: Some(Duration::from_millis(wait.min(settle_ms) as u64)),
            });
        }
        Ok(None)
    }
}

/// The text of a network's message, cut to 500 characters.
pub fn short(s: &str) -> String {
    s.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_call_never_repeats_its_url() {
        let api = Api::new(
            "net",
            HostedConfig {
                base: Some("http://127.0.0.1:9".parse().unwrap()),
                timeout: Duration::from_secs(2),
                ..HostedConfig::default()
            },
            Arc::new(crier_core::SystemClock),
        );
        let url = api.url(
            "https://net.example",
            "/access_token?client_secret=s3cret&access_token=t0ken",
        );
        let err = api.send(api.http.get(url)).await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("net: could not be reached"),
            "{message}"
        );
        assert!(
            !message.contains("s3cret") && !message.contains("t0ken"),
            "{message}"
        );
    }
}
