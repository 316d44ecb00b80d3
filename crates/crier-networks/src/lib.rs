//! Social networks behind one trait. Each declares its rules (how it counts length, its limits,
//! its media), how an account connects (at once, with credentials, or through OAuth), how it
//! publishes one part, finds a part by our idempotency key after a lost answer, refreshes and
//! revokes its tokens, and reads metrics.
//!
//! Verified how: the built-in `sandbox` network ([`sandbox`]) is exercised end to end by the
//! test suites; real networks get connectors here, each tested against the most real local
//! server we can run (see the README's Networks table).

pub mod bluesky;
pub mod facebook;
pub mod graph;
pub mod hosted;
pub mod http;
pub mod instagram;
pub mod linkedin;
pub mod mastodon;
pub mod oauth2;
pub mod rules;
pub mod sandbox;
pub mod threads;
pub mod tiktok;
pub mod x;
pub mod youtube;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crier_store::{Account, Metrics, PostOverride};

pub use crier_store::TrendScope;
pub use rules::{HashtagRules, MediaMeta, MediaRules, OptionKind, OptionRule, Rules, Violation};

/// Every platform this build has a connector for, as `{platform}` in paths names them.
pub const PLATFORMS: &[&str] = &[
    "sandbox",
    "bluesky",
    "mastodon",
    "x",
    "linkedin",
    "facebook",
    "instagram",
    "threads",
    "youtube",
    "tiktok",
];

/// The networks of one operator (fixed hosts, an OAuth client the operator registers): their
/// connectors take a [`hosted::HostedConfig`].
pub const HOSTED: &[&str] = &[
    "x",
    "linkedin",
    "facebook",
    "instagram",
    "threads",
    "youtube",
    "tiktok",
];

/// Each platform's documented rules, as its connector declares them (for the API docs).
pub fn documented_rules() -> Vec<&'static Rules> {
    vec![
        &sandbox::RULES,
        &bluesky::RULES,
        &mastodon::DEFAULT_RULES,
        &facebook::RULES,
        &instagram::RULES,
        &threads::RULES,
        &tiktok::RULES,
        &x::RULES,
        &linkedin::RULES,
        &youtube::RULES,
    ]
}

/// The connector of a network of one operator ([`HOSTED`]), by platform.
pub fn hosted_network(
    platform: &str,
    config: hosted::HostedConfig,
    clock: Arc<dyn crier_core::Clock>,
) -> Option<Arc<dyn Network>> {
    Some(match platform {
        "facebook" => Arc::new(facebook::Facebook::new(config, clock)),
        "instagram" => Arc::new(instagram::Instagram::new(config, clock)),
        "threads" => Arc::new(threads::Threads::new(config, clock)),
        "tiktok" => Arc::new(tiktok::TikTok::new(config, clock)),
        "x" => Arc::new(x::X::new(config, clock)),
        "linkedin" => Arc::new(linkedin::LinkedIn::new(config, clock)),
        "youtube" => Arc::new(youtube::YouTube::new(config, clock)),
        _ => return None,
    })
}

/// Each platform's per-account options, from its rules (for the API docs).
pub fn option_rules() -> Vec<(&'static str, Vec<OptionRule>)> {
    documented_rules()
        .into_iter()
        .map(|r| (r.platform, r.options.clone()))
        .collect()
}

/// One part as the network has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPart {
    pub external_id: String,
    pub url: String,
}

/// The longest error text kept from a network ([`NetworkError::text`]).
pub const MAX_ERROR_TEXT: usize = 1000;

/// Why a call to a network did not do what was asked. Each kind has a stable code, which is
/// what a failed target's `error.code` says; the network's own message is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// The network refused this content or request, and will refuse it again as it is.
    #[error("{message}")]
    Rejected { message: String },
    /// The network refused a media object (type, size, processing failed).
    #[error("{message}")]
    MediaRejected { message: String },
    /// The account's token or credentials are no longer accepted (after a refresh was tried).
    #[error("{message}")]
    Unauthorized { message: String },
    /// The network limits our rate; try after `retry_after` (its headers, when it sent them).
    #[error("rate limited by the network")]
    RateLimited { retry_after: Option<Duration> },
    /// The network failed or could not be reached; try again (after `retry_after` if it said).
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// No answer in time: the call may or may not have landed.
    #[error("the network did not answer in time")]
    Timeout,
}

impl NetworkError {
    /// The stable code of a target's error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => "network_rejected",
            Self::MediaRejected { .. } => "media_rejected",
            Self::Unauthorized { .. } => "account_disconnected",
            Self::RateLimited { .. } => "network_rate_limited",
            Self::Unavailable { .. } | Self::Timeout => "network_unavailable",
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Unavailable { .. } | Self::Timeout
        )
    }

    /// The error as crier records it (an attempt's or a target's `error`): the network's own
    /// words, with control characters (a NUL, which PostgreSQL cannot store in text, escape
    /// sequences, line breaks) as spaces, and at most [`MAX_ERROR_TEXT`] characters, however
    /// much a network sent.
    pub fn text(&self) -> String {
        crier_core::text::clip_line(&self.to_string(), MAX_ERROR_TEXT)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn rejected(message: impl Into<String>) -> Self {
        Self::Rejected {
            message: message.into(),
        }
    }
}

/// An account's secrets at the network, as the connector needs them. Sealed at rest (crier-app
/// encrypts them with the row id as associated data); never in a response, a log or a webhook:
/// `Debug` shows none of it.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token stops working (epoch ms), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The OAuth client the token was issued to (per-instance networks), for refresh and revoke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<OAuthClient>,
    /// What the user logged in with on credential networks (Bluesky: identifier and app
    /// password), to start a new session when the refresh token itself has expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<Login>,
    /// The server these tokens are for, when the account's identity does not name it: a
    /// Bluesky account is its DID wherever it is hosted, and its PDS may move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An OAuth client: configured by the operator, or registered by crier on an instance.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OAuthClient {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Credentials a user gives for a credential network.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Login {
    pub identifier: String,
    pub password: String,
    /// The server to log in at (a PDS); `None` for the network's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("identifier", &self.identifier)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// A connected network account: who it is and how to act as it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// The network's id of the account (a DID, an instance's account id).
    pub external_id: String,
    pub handle: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub profile_url: Option<String>,
    /// The server the account lives on (a Mastodon instance, a PDS), as a base URL; `None` for
    /// networks with one server.
    pub service: Option<String>,
    pub credentials: Credentials,
}

/// How an account of a network is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectKind {
    /// At once, from a handle (the sandbox).
    Instant,
    /// With credentials the user gives ([`Network::login`]).
    Credentials,
    /// Through an OAuth 2 authorization code flow.
    OAuth {
        /// PKCE (S256) is sent and checked.
        pkce: bool,
        /// The network is many servers (Mastodon): the user names one, and crier registers
        /// itself there as a client ([`Network::register_client`]).
        per_instance: bool,
    },
}

/// Everything an authorization URL is built from.
#[derive(Debug, Clone)]
pub struct Authorize<'a> {
    pub client: &'a OAuthClient,
    /// The server's base URL (per-instance networks).
    pub instance: Option<&'a url::Url>,
    pub redirect_uri: &'a str,
    pub state: &'a str,
    /// `BASE64URL(SHA256(verifier))`, when the network takes PKCE.
    pub code_challenge: Option<&'a str>,
}

/// Everything a code exchange takes.
#[derive(Debug, Clone)]
pub struct Exchange<'a> {
    pub client: &'a OAuthClient,
    pub instance: Option<&'a url::Url>,
    pub redirect_uri: &'a str,
    pub code: &'a str,
    pub code_verifier: Option<&'a str>,
}

/// An account to act as: its row and its opened credentials.
#[derive(Debug, Clone, Copy)]
pub struct Session<'a> {
    pub account: &'a Account,
    pub credentials: &'a Credentials,
}

/// A media object to attach, with its bytes.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub meta: MediaMeta,
    pub bytes: bytes::Bytes,
    /// A signed URL the network can fetch the same bytes from while the post is being
    /// published (networks that pull media by URL: Instagram, Threads, TikTok's
    /// `PULL_FROM_URL`). Empty when the media store has no public URL.
    pub url: String,
}

/// What a connector keeps between the steps of publishing one part, so a retry after a crash
/// or a lost answer resumes instead of starting again: upload ids, container ids, the time a
/// call went out. Durable (the publisher keeps them in the store, per part), written before
/// the next step is taken. Keys are short names (at most 64 bytes), values at most 4 KiB;
/// a part keeps at most 64 of them.
#[async_trait::async_trait]
pub trait Steps: Send + Sync {
    async fn get(&self, name: &str) -> Result<Option<String>, NetworkError>;
    async fn put(&self, name: &str, value: &str) -> Result<(), NetworkError>;
}

/// The most steps one part keeps, and the longest name and value.
pub const MAX_STEPS: usize = 64;
pub const MAX_STEP_NAME: usize = 64;
pub const MAX_STEP_VALUE: usize = 4096;

/// Whether a step may be kept: the bounds every [`Steps`] enforces.
pub fn check_step(name: &str, value: &str) -> Result<(), NetworkError> {
    if name.is_empty() || name.len() > MAX_STEP_NAME || value.len() > MAX_STEP_VALUE {
        return Err(NetworkError::rejected(format!(
            "a publishing step `{name}` is over its bounds ({MAX_STEP_NAME}-byte name, \
             {MAX_STEP_VALUE}-byte value)"
        )));
    }
    Ok(())
}

/// Steps kept in memory: for tests and callers without a store.
#[derive(Debug, Default)]
pub struct MemorySteps(std::sync::Mutex<BTreeMap<String, String>>);

impl MemorySteps {
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.0.lock().expect("steps").clone()
    }
}

#[async_trait::async_trait]
impl Steps for MemorySteps {
    async fn get(&self, name: &str) -> Result<Option<String>, NetworkError> {
        Ok(self.0.lock().expect("steps").get(name).cloned())
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), NetworkError> {
        check_step(name, value)?;
        let mut m = self.0.lock().expect("steps");
        if m.len() >= MAX_STEPS && !m.contains_key(name) {
            return Err(NetworkError::rejected(
                "too many publishing steps for one part",
            ));
        }
        m.insert(name.to_owned(), value.to_owned());
        Ok(())
    }
}

/// One part of a post to publish.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    pub text: &'a str,
    /// The post's media: on the first part only.
    pub media: &'a [Attachment],
    /// The ids of the parts published before this one, the thread's root first: a part with
    /// any is a reply to the last.
    pub thread: &'a [String],
    /// The account's overrides (visibility, spoiler text, language where the network has them).
    pub options: &'a PostOverride,
    /// Identifies this part for [`Network::lookup`] (and as the network's idempotency key where
    /// it has one): the same for every attempt at the part.
    pub idem_key: &'a str,
    /// What earlier attempts at this part kept (upload and container ids); see [`Steps`].
    pub steps: &'a dyn Steps,
}

impl std::fmt::Debug for dyn Steps + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Steps")
    }
}

/// A topic a network says is trending, as its connector read it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendingTopic {
    /// As people write it: a hashtag with its `#` (Mastodon), a phrase (Bluesky).
    pub topic: String,
    /// Higher is hotter; comparable within one list only.
    pub score: f64,
}

/// The most topics a connector answers for one list.
pub const MAX_TRENDS: usize = crier_store::MAX_TOPICS_PER_SOURCE;
/// The longest topic a connector answers, in characters.
pub const MAX_TREND_CHARS: usize = crier_store::MAX_TOPIC_CHARS;

/// A topic as a network named it, fit to keep: trimmed, with no control characters, 1 to
/// [`MAX_TREND_CHARS`] characters. `None` otherwise: a topic cut short would be another topic,
/// so a longer one is left out rather than shortened.
pub fn trend_topic(raw: &str) -> Option<String> {
    let t = raw.trim();
    let fits =
        !t.is_empty() && t.chars().count() <= MAX_TREND_CHARS && !t.chars().any(char::is_control);
    fits.then(|| t.to_owned())
}

fn unsupported(what: &str) -> NetworkError {
    NetworkError::rejected(format!("this network does not support {what}"))
}

#[async_trait::async_trait]
pub trait Network: Send + Sync {
    /// The network's rules for accounts in general (its documented defaults).
    fn rules(&self) -> &Rules;

    /// The rules for this account: networks of many servers (Mastodon) answer their server's
    /// own limits. The default is [`Network::rules`].
    async fn rules_for(&self, _account: &Account) -> Rules {
        self.rules().clone()
    }

    fn connect_kind(&self) -> ConnectKind;

    /// Registers crier as an OAuth client on `instance` with `redirect_uri` (per-instance
    /// networks; the caller remembers the answer).
    async fn register_client(
        &self,
        _instance: &url::Url,
        _redirect_uri: &str,
    ) -> Result<OAuthClient, NetworkError> {
        Err(unsupported("client registration"))
    }

    /// The URL the user approves crier at (OAuth networks).
    fn authorize_url(&self, _a: &Authorize<'_>) -> Result<url::Url, NetworkError> {
        Err(unsupported("OAuth"))
    }

    /// Trades an authorization code for tokens and reads the account (OAuth networks).
    async fn exchange_code(&self, _e: &Exchange<'_>) -> Result<Connected, NetworkError> {
        Err(unsupported("OAuth"))
    }

    /// Every account one approval connects, the user's own first: a member and each page
    /// they administer (LinkedIn), or each Facebook Page. The default is the one account of
    /// [`Network::exchange_code`]; networks that override this answer its first there too.
    async fn exchange_code_all(&self, e: &Exchange<'_>) -> Result<Vec<Connected>, NetworkError> {
        Ok(vec![self.exchange_code(e).await?])
    }

    /// Starts a session with the user's credentials (credential networks). Credentials the
    /// network refuses are [`NetworkError::Unauthorized`].
    async fn login(&self, _login: &Login) -> Result<Connected, NetworkError> {
        Err(unsupported("credentials"))
    }

    /// Fresh credentials before the access token expires. A refusal is
    /// [`NetworkError::Unauthorized`]: the account is then `expired`.
    async fn refresh(&self, _s: Session<'_>) -> Result<Credentials, NetworkError> {
        Err(unsupported("token refresh"))
    }

    /// Revokes the account's token at the network, where it can (best effort on disconnect).
    async fn revoke(&self, _s: Session<'_>) -> Result<(), NetworkError> {
        Ok(())
    }

    /// Publishes one part.
    async fn publish(&self, s: Session<'_>, part: Part<'_>) -> Result<PublishedPart, NetworkError>;

    /// Finds `part` if an earlier attempt published it (by the network's idempotency key, the
    /// ids kept in `part.steps`, or the account's recent posts by text and time), before the
    /// part is tried again.
    async fn lookup(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError>;

    async fn metrics(&self, s: Session<'_>, external_id: &str) -> Result<Metrics, NetworkError>;

    /// How many follow the account (subscribers, page followers), where the network says;
    /// `None` where it does not.
    async fn followers(&self, _s: Session<'_>) -> Result<Option<u64>, NetworkError> {
        Ok(None)
    }

    /// Whether the network publishes trending topics, and which accounts share one list:
    /// [`TrendScope::Server`] when every account of a server sees the same list (one read
    /// serves them all), [`TrendScope::Account`] when the network ranks it for the viewer.
    /// `None` (the default): the network publishes none.
    fn trend_scope(&self) -> Option<TrendScope> {
        None
    }

    /// The network's trending topics as `s` sees them, hottest first: at most [`MAX_TRENDS`],
    /// each passed through [`trend_topic`], no two the same. Bounded like every call (the
    /// timeout, a capped answer). Networks without trends answer none.
    async fn trending(&self, _s: Session<'_>) -> Result<Vec<TrendingTopic>, NetworkError> {
        Ok(Vec::new())
    }
}

/// The networks this process knows, by platform name.
#[derive(Clone, Default)]
pub struct Networks(BTreeMap<&'static str, Arc<dyn Network>>);

impl Networks {
    pub fn with(mut self, network: Arc<dyn Network>) -> Self {
        self.0.insert(network.rules().platform, network);
        self
    }

    pub fn get(&self, platform: &str) -> Option<&Arc<dyn Network>> {
        self.0.get(platform)
    }

    pub fn platforms(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.keys().copied()
    }
}

#[cfg(test)]
mod platform_tests {
    use super::*;

    /// `PLATFORMS` (config and the API's `{platform}`), `HOSTED`, the connectors the binary
    /// composes and the rules the API docs list never drift apart.
    #[test]
    fn every_platform_has_a_connector_and_documented_rules() {
        let clock: Arc<dyn crier_core::Clock> = Arc::new(crier_core::SystemClock);
        let documented: Vec<&str> = documented_rules().iter().map(|r| r.platform).collect();
        for p in PLATFORMS {
            assert!(documented.contains(p), "{p} has no documented rules");
        }
        assert_eq!(documented.len(), PLATFORMS.len());
        for p in HOSTED {
            assert!(PLATFORMS.contains(p), "{p} is hosted but not a platform");
            let n = hosted_network(p, hosted::HostedConfig::default(), clock.clone())
                .unwrap_or_else(|| panic!("{p} has no connector"));
            assert_eq!(n.rules().platform, *p);
        }
        assert!(hosted_network("sandbox", hosted::HostedConfig::default(), clock).is_none());
    }
}
