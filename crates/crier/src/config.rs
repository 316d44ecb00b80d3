//! Configuration, in layers: defaults in code, then `crier.toml` (or `--config FILE`), then
//! `CRIER_*` environment variables, then command-line flags. Validated once at start; a bad
//! setting stops the start with a message that names it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crier_api::server::ServerConfig;
use crier_api::{ApiConfig, AuthConfig};
use crier_core::Plan;
use crier_worker::WorkerConfig;
use crier_worker::feeds::FeedConfig;
use crier_worker::webhooks::WebhookConfig;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Every setting, with its default. The README's configuration table mirrors this.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the API listens on.
    pub bind: String,
    /// How long a client has to send a request's head (and how long a kept-alive connection
    /// may wait for its next request).
    pub header_read_timeout_seconds: u64,
    /// Connections served at once; at the cap new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Connections one client address (an IPv4 address, an IPv6 /64) may hold at once; past
    /// it a new one is answered 429 and closed. Trusted proxies and loopback are not counted.
    pub max_connections_per_address: usize,
    /// A connection on which nothing was sent or received for this long is closed.
    pub idle_timeout_seconds: u64,
    /// On shutdown, how long requests in flight may take before their connections are closed.
    pub shutdown_grace_seconds: u64,
    /// The address people and clients reach this server at (device-login and invitation
    /// links point here; `https` makes the dashboard's session cookie `Secure`). Default:
    /// `http://{bind}`.
    pub public_url: Option<String>,
    /// How long a dashboard or API session lasts, in hours (1 to 720).
    pub session_hours: u64,
    /// Where the embedded database and local files live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: a SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// `redis://host:port[/db]`: rate limits shared by every node (one Lua script per request).
    /// Default: none, each node limits on its own (right for one node).
    pub redis_url: Option<String>,
    /// When Redis cannot answer a rate-limit decision: `local` (this node's own limits decide)
    /// or `closed` (the request is refused with `503`). Logged and counted either way.
    pub rate_limit_on_redis_error: String,
    /// `text` or `json`.
    pub log_format: String,
    /// A tracing filter such as `info` or `crier=debug,info`.
    pub log_level: String,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or CIDR blocks).
    pub trusted_proxies: StringList,
    /// Failed authentications one client address may make per minute.
    pub auth_failures_per_minute: u32,
    /// How long a verified key stays cached (changes invalidate it at once anyway).
    pub key_cache_ttl_seconds: u64,
    /// How often usage counters and `last_used_at` are written.
    pub usage_flush_seconds: u64,
    /// The plan of workspaces created without `--plan`.
    pub default_plan: String,
    /// Plans by name; merged over the shipped `free`, `pro` and `self-hosted`.
    pub plans: BTreeMap<String, Plan>,
    /// Whether webhook and feed URLs may point at private networks (env
    /// `CRIER_WEBHOOK_ALLOW_PRIVATE_NETWORKS`).
    pub webhook_allow_private_networks: bool,
    /// Webhook endpoints a workspace may have per mode, 1 to 100 (every event writes one
    /// delivery per endpoint in the transaction that emits it).
    pub webhook_max_endpoints: u32,
    /// Whether servers users name (Mastodon instances, PDS hosts, link-card pages) as well as
    /// webhook and feed URLs may be on loopback and private networks (self-hosting, tests).
    pub allow_private_networks: bool,
    /// The keys that seal network tokens at rest: `id=base64url(32 bytes)`, comma-separated,
    /// the current one first (older ones still open what they sealed). Default: the file
    /// `secret-keys` in `data_dir`, created with one new key on first start. Back it up.
    pub secret_keys: Option<String>,
    /// Redirect URIs OAuth connections may name (exact match).
    pub connect_redirect_uris: StringList,
    /// Where Bluesky accounts log in when the user names no `service` (a PDS or entryway).
    pub bluesky_default_service: String,
    /// OAuth clients the operator registered with networks of one server, by platform
    /// (`[oauth_clients.x] client_id = "…", client_secret = "…"`). Mastodon needs none: crier
    /// registers itself on each instance.
    pub oauth_clients: BTreeMap<String, OAuthClientConfig>,
    /// Every host of a network of one operator replaced by this base URL, by platform
    /// (`[network_base_urls] x = "http://127.0.0.1:9000"`): for a recording proxy in front of
    /// a network, and for the test suites' fakes. Paths stay as the network's API has them.
    pub network_base_urls: BTreeMap<String, String>,
    /// What `serve` runs: `all` (the API and the workers), `api` (the API only; never claims
    /// jobs) or `worker` (the workers, and only `/healthz`, `/readyz` and `/metrics` on `bind`).
    pub role: String,
    /// Whether `serve` applies pending migrations on start (one node, the default). Turn off on
    /// several nodes and run `crier migrate` once per release; a node then refuses to start
    /// until the schema is the one it knows.
    pub migrate_on_start: bool,
    /// Publish jobs one node works on at once (network calls are mostly waiting, so many).
    pub worker_concurrency: usize,
    /// Calls in flight at once per network on one node.
    pub publish_per_network: usize,
    /// Calls in flight at once per connected account on one node.
    pub publish_per_account: usize,
    /// How long a claimed job stays a node's; a crashed node's jobs return after it.
    pub worker_lease_seconds: u64,
    /// How long one call to a network may take (kept below the lease).
    pub network_timeout_seconds: u64,
    /// How long after a create call (beyond its timeout) a network of one operator may still
    /// be making the post: until then a look-up that misses it answers "cannot tell".
    pub network_settle_seconds: u64,
    /// How often an idle worker looks for due jobs, in milliseconds.
    pub worker_poll_ms: u64,
    /// Attempts per target before it fails for good.
    pub publish_max_attempts: u32,
    /// First retry delay; doubled for each further retry, with jitter.
    pub publish_backoff_seconds: u64,
    /// How often each network's trending list is fetched again.
    pub trends_refresh_seconds: u64,
    // ---- media ----
    /// Where media bytes live (`[media]` in the file, `CRIER_MEDIA_*` in the environment).
    #[serde(default)]
    pub media: MediaConfig,
    // ---- ai ----
    /// The model behind `rewrite` and `compose` (`[ai]` in the file, `CRIER_AI_*` in the
    /// environment); without `base_url` and `model` only the built-in engine answers.
    #[serde(default)]
    pub ai: AiConfig,
}

// ---- ai ----
/// An OpenAI-compatible server: OpenAI, Ollama, vLLM, llama.cpp, LM Studio. Its `Debug`
/// hides the API key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AiConfig {
    /// The API's base URL, e.g. `http://127.0.0.1:11434/v1` (Ollama) or
    /// `https://api.openai.com/v1`.
    pub base_url: Option<String>,
    /// The chat model, e.g. `llama3.2` or `gpt-4o-mini`.
    pub model: Option<String>,
    /// Sent as a bearer token when set.
    pub api_key: Option<String>,
    /// The embeddings model for the knowledge base (same server); none: full-text search only.
    pub embeddings_model: Option<String>,
    /// How long one call may take.
    pub timeout_seconds: u64,
    /// Retries after a timeout, a 429 or a 5xx.
    pub max_retries: u32,
    /// The longest answer asked for, in tokens.
    pub max_tokens: u32,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            model: None,
            api_key: None,
            embeddings_model: None,
            timeout_seconds: 30,
            max_retries: 2,
            max_tokens: 512,
        }
    }
}

impl std::fmt::Debug for AiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("embeddings_model", &self.embeddings_model)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("max_retries", &self.max_retries)
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

impl AiConfig {
    /// The model client, when one is configured (`base_url` and `model` both set).
    pub fn open(&self) -> Result<Option<crier_ai::openai::OpenAi>, String> {
        let (base_url, model) = match (&self.base_url, &self.model) {
            (Some(b), Some(m)) => (b.clone(), m.clone()),
            (None, None) => return Ok(None),
            _ => return Err("ai: set both `base_url` and `model`, or neither".into()),
        };
        if !(1..=600).contains(&self.timeout_seconds) {
            return Err("ai.timeout_seconds: must be from 1 to 600".into());
        }
        if self.max_retries > 5 {
            return Err("ai.max_retries: must be at most 5".into());
        }
        crier_ai::openai::OpenAi::new(crier_ai::openai::OpenAiConfig {
            base_url,
            model,
            api_key: self.api_key.clone(),
            timeout: Duration::from_secs(self.timeout_seconds),
            max_retries: self.max_retries,
            embeddings_model: self.embeddings_model.clone(),
            max_tokens: self.max_tokens,
        })
        .map(Some)
        .map_err(|e| format!("ai: {e}"))
    }
}

// ---- media ----
/// Media storage: `local` (the data dir, behind URLs this server signs and serves) or `s3` (any
/// S3-compatible store, through presigned URLs; the bytes never pass through crier).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// `local` or `s3`.
    pub storage: String,
    /// The base URL clients reach this server at, for the local store's URLs (default
    /// `http://{bind}`; set it when clients come through a proxy or another name).
    pub public_url: Option<String>,
    /// The local store's URL signing secret, 32 characters or more (default: a random one
    /// kept in `{data_dir}/media-signing.key`, made on first start).
    pub signing_secret: Option<String>,
    /// The largest media object, in bytes.
    pub max_size_bytes: u64,
    /// How long an upload URL lives.
    pub upload_url_ttl_seconds: u64,
    /// How long a read URL lives.
    pub read_url_ttl_seconds: u64,
    /// Uploads a workspace may have waiting for confirmation.
    pub max_pending_uploads: i64,
    /// How often pending uploads whose URL expired over an hour ago are purged.
    pub purge_interval_seconds: u64,
    pub s3_endpoint: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_region: String,
    pub s3_access_key: Option<String>,
    pub s3_secret_key: Option<String>,
    /// `{endpoint}/{bucket}/{key}` URLs (true) or `{bucket}.{host}` (false).
    pub s3_path_style: bool,
    /// Prepended to every object key.
    pub s3_prefix: String,
}

impl Default for MediaConfig {
    fn default() -> Self {
        use crier_app::media as m;
        Self {
            storage: "local".into(),
            public_url: None,
            signing_secret: None,
            max_size_bytes: m::DEFAULT_MAX_SIZE,
            upload_url_ttl_seconds: (m::DEFAULT_UPLOAD_TTL_MS / 1000) as u64,
            read_url_ttl_seconds: (m::DEFAULT_READ_TTL_MS / 1000) as u64,
            max_pending_uploads: m::DEFAULT_MAX_PENDING,
            purge_interval_seconds: 300,
            s3_endpoint: None,
            s3_bucket: None,
            s3_region: "us-east-1".into(),
            s3_access_key: None,
            s3_secret_key: None,
            s3_path_style: true,
            s3_prefix: String::new(),
        }
    }
}

/// Where the bytes go, validated; the binary opens it ([`MediaSetup::open`]).
#[derive(Debug, Clone)]
pub enum MediaStorageSetup {
    Local {
        dir: PathBuf,
        public_url: String,
        secret: Option<String>,
        secret_file: PathBuf,
    },
    S3(crier_media::s3::S3Config),
}

#[derive(Debug, Clone)]
pub struct MediaSetup {
    pub storage: MediaStorageSetup,
    pub max_size: u64,
    pub upload_ttl_ms: i64,
    pub read_ttl_ms: i64,
    pub max_pending: i64,
    pub purge_interval: Duration,
}

impl MediaSetup {
    /// Opens the store (reading or creating the local signing secret).
    pub fn open(&self) -> Result<crier_app::media::MediaSettings, String> {
        use std::sync::Arc;
        let storage = match &self.storage {
            MediaStorageSetup::Local {
                dir,
                public_url,
                secret,
                secret_file,
            } => {
                let secret = match secret {
                    Some(s) => s.as_bytes().to_vec(),
                    None => crier_media::local::LocalStore::load_or_create_secret(secret_file)
                        .map_err(|e| format!("media: {}: {e}", secret_file.display()))?,
                };
                let local = crier_media::local::LocalStore::open(dir, public_url, secret)
                    .map_err(|e| format!("media: {e}"))?;
                crier_media::Storage::Local(Arc::new(local))
            }
            MediaStorageSetup::S3(c) => {
                crier_media::Storage::S3(Arc::new(crier_media::s3::S3Store::new(c.clone())?))
            }
        };
        let mut m = crier_app::media::MediaSettings::new(storage);
        m.max_size = self.max_size;
        m.upload_ttl_ms = self.upload_ttl_ms;
        m.read_ttl_ms = self.read_ttl_ms;
        m.max_pending = self.max_pending;
        Ok(m)
    }
}

fn validate_media(
    c: &MediaConfig,
    bind: &SocketAddr,
    data_dir: &Path,
) -> Result<MediaSetup, String> {
    if c.max_size_bytes == 0 {
        return Err("media.max_size_bytes: must be at least 1".into());
    }
    let week = 7 * 24 * 3600;
    for (name, v) in [
        ("upload_url_ttl_seconds", c.upload_url_ttl_seconds),
        ("read_url_ttl_seconds", c.read_url_ttl_seconds),
    ] {
        if v == 0 || v > week {
            return Err(format!("media.{name}: must be from 1 to {week} (7 days)"));
        }
    }
    if !(1..=10_000).contains(&c.max_pending_uploads) {
        return Err("media.max_pending_uploads: must be from 1 to 10000".into());
    }
    if c.purge_interval_seconds == 0 {
        return Err("media.purge_interval_seconds: must be at least 1".into());
    }
    let storage = match c.storage.as_str() {
        "local" => {
            let public_url = c
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{bind}"));
            match url::Url::parse(&public_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return Err(format!(
                        "media.public_url: `{public_url}` is not an http(s) URL"
                    ));
                }
            }
            if let Some(s) = &c.signing_secret
                && s.len() < crier_media::local::MIN_SECRET
            {
                return Err(format!(
                    "media.signing_secret: must be at least {} characters",
                    crier_media::local::MIN_SECRET
                ));
            }
            MediaStorageSetup::Local {
                dir: data_dir.join("media"),
                public_url,
                secret: c.signing_secret.clone(),
                secret_file: data_dir.join("media-signing.key"),
            }
        }
        "s3" => {
            let need = |v: &Option<String>, name: &str| {
                v.clone()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| format!("media.{name}: required when media.storage is `s3`"))
            };
            let config = crier_media::s3::S3Config {
                endpoint: need(&c.s3_endpoint, "s3_endpoint")?,
                bucket: need(&c.s3_bucket, "s3_bucket")?,
                region: c.s3_region.clone(),
                access_key: need(&c.s3_access_key, "s3_access_key")?,
                secret_key: need(&c.s3_secret_key, "s3_secret_key")?,
                path_style: c.s3_path_style,
                prefix: c.s3_prefix.clone(),
            };
            // Checks the endpoint and bucket now, so a bad one stops the start.
            crier_media::s3::S3Store::new(config.clone())?;
            MediaStorageSetup::S3(config)
        }
        other => {
            return Err(format!("media.storage: `{other}` is not `local` or `s3`"));
        }
    };
    Ok(MediaSetup {
        storage,
        max_size: c.max_size_bytes,
        upload_ttl_ms: (c.upload_url_ttl_seconds * 1000) as i64,
        read_ttl_ms: (c.read_url_ttl_seconds * 1000) as i64,
        max_pending: c.max_pending_uploads,
        purge_interval: Duration::from_secs(c.purge_interval_seconds),
    })
}

/// An OAuth client's credentials at a network.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClientConfig {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for OAuthClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClientConfig")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A list given as a TOML array or, from the environment, as a comma-separated string.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StringList {
    List(Vec<String>),
    Csv(String),
}

impl StringList {
    fn items(&self) -> Vec<String> {
        match self {
            Self::List(v) => v.clone(),
            Self::Csv(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            header_read_timeout_seconds: 10,
            max_connections: 1024,
            max_connections_per_address: crier_api::server::MAX_CONNECTIONS_PER_ADDRESS,
            idle_timeout_seconds: 60,
            shutdown_grace_seconds: 30,
            public_url: None,
            session_hours: 12,
            data_dir: PathBuf::from("./crier-data"),
            database_url: None,
            redis_url: None,
            rate_limit_on_redis_error: "local".into(),
            log_format: "text".into(),
            log_level: "info".into(),
            trusted_proxies: StringList::List(Vec::new()),
            auth_failures_per_minute: 30,
            key_cache_ttl_seconds: 300,
            usage_flush_seconds: 5,
            default_plan: "self-hosted".into(),
            plans: Plan::defaults(),
            webhook_allow_private_networks: false,
            webhook_max_endpoints: crier_api::routes::webhooks::DEFAULT_MAX_ENDPOINTS,
            allow_private_networks: false,
            secret_keys: None,
            connect_redirect_uris: StringList::List(Vec::new()),
            bluesky_default_service: "https://bsky.social".into(),
            oauth_clients: BTreeMap::new(),
            network_base_urls: BTreeMap::new(),
            role: "all".into(),
            migrate_on_start: true,
            worker_concurrency: 1024,
            publish_per_network: 1024,
            publish_per_account: 4,
            worker_lease_seconds: 60,
            network_timeout_seconds: 15,
            network_settle_seconds: 300,
            worker_poll_ms: 200,
            publish_max_attempts: 5,
            publish_backoff_seconds: 5,
            trends_refresh_seconds: 1800,
            media: MediaConfig::default(),
            ai: AiConfig::default(),
        }
    }
}

/// Settings given as flags; `None` leaves the lower layers' value.
#[derive(Debug, Default, Serialize)]
pub struct Flags {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

const ENV_KEYS: &[&str] = &[
    "bind",
    "public_url",
    "session_hours",
    "header_read_timeout_seconds",
    "max_connections",
    "max_connections_per_address",
    "idle_timeout_seconds",
    "shutdown_grace_seconds",
    "data_dir",
    "database_url",
    "redis_url",
    "rate_limit_on_redis_error",
    "log_format",
    "log_level",
    "trusted_proxies",
    "auth_failures_per_minute",
    "key_cache_ttl_seconds",
    "usage_flush_seconds",
    "default_plan",
    "webhook_allow_private_networks",
    "webhook_max_endpoints",
    "allow_private_networks",
    "secret_keys",
    "connect_redirect_uris",
    "bluesky_default_service",
    "role",
    "migrate_on_start",
    "worker_concurrency",
    "publish_per_network",
    "publish_per_account",
    "worker_lease_seconds",
    "network_timeout_seconds",
    "network_settle_seconds",
    "worker_poll_ms",
    "publish_max_attempts",
    "publish_backoff_seconds",
    "trends_refresh_seconds",
];

/// The validated configuration a process runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    /// How long sessions last.
    pub session_ttl: Duration,
    pub server: ServerConfig,
    pub database_url: String,
    pub log_json: bool,
    pub log_level: String,
    pub default_plan: String,
    pub api: ApiConfig,
    pub role: Role,
    pub migrate_on_start: bool,
    /// `None` when this node runs no workers.
    pub workers: Option<Workers>,
    /// Where the keys that seal secrets at rest come from.
    pub secrets: SecretKeys,
    pub connect: crier_app::ConnectConfig,
    pub allow_private_networks: bool,
    /// How long one call to a network may take.
    pub network_timeout: Duration,
    /// See `network_settle_seconds`.
    pub network_settle: Duration,
    pub bluesky_default_service: String,
    /// Base URLs replacing networks' hosts, by platform (see `network_base_urls`).
    pub network_bases: BTreeMap<String, url::Url>,
    // ---- media ----
    pub media: MediaSetup,
    // ---- ai ----
    pub ai: AiConfig,
}

/// Where the keyring comes from.
#[derive(Debug, Clone)]
pub enum SecretKeys {
    /// `secret_keys` as given.
    Given(crier_app::Keyring),
    /// A file in the data dir, created on first start.
    File(PathBuf),
}

/// What a `serve` node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    All,
    Api,
    Worker,
}

impl Role {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Self::All),
            "api" => Ok(Self::Api),
            "worker" => Ok(Self::Worker),
            other => Err(format!("role: `{other}` must be `all`, `api` or `worker`")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Api => "api",
            Self::Worker => "worker",
        }
    }

    pub fn serves_api(self) -> bool {
        self != Self::Worker
    }

    pub fn runs_workers(self) -> bool {
        self != Self::Api
    }
}

/// The settings of the workers `crier serve` runs.
#[derive(Debug, Clone)]
pub struct Workers {
    pub publisher: WorkerConfig,
    pub webhooks: WebhookConfig,
    pub feeds: FeedConfig,
    pub agents: crier_worker::agents::AgentConfig,
    pub clips: crier_worker::clips::ClipConfig,
    pub trends: crier_worker::trending::RefreshConfig,
}

pub fn load(config_file: Option<&Path>, flags: Flags) -> Result<Settings, String> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    match config_file {
        Some(path) => {
            if !path.exists() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            figment = figment.merge(Toml::file(path));
        }
        None => figment = figment.merge(Toml::file("crier.toml")),
    }
    let figment = figment
        .merge(Env::prefixed("CRIER_").only(ENV_KEYS))
        // ---- media ----
        .merge(Env::prefixed("CRIER_MEDIA_").map(|k| format!("media.{k}").into()))
        // ---- ai ----
        .merge(Env::prefixed("CRIER_AI_").map(|k| format!("ai.{k}").into()))
        .merge(Serialized::globals(flags));
    let config: Config = figment
        .extract()
        .map_err(|e| format!("configuration: {e}"))?;
    validate(config)
}

fn validate(c: Config) -> Result<Settings, String> {
    let bind: SocketAddr = c.bind.parse().map_err(|_| {
        format!(
            "bind: `{}` is not an address and port such as 127.0.0.1:8080",
            c.bind
        )
    })?;
    let log_json = match c.log_format.as_str() {
        "text" => false,
        "json" => true,
        other => return Err(format!("log_format: `{other}` is not `text` or `json`")),
    };
    tracing_subscriber::EnvFilter::try_new(&c.log_level)
        .map_err(|e| format!("log_level: `{}`: {e}", c.log_level))?;
    let trusted_proxies = c
        .trusted_proxies
        .items()
        .iter()
        .map(|s| {
            crier_core::net::parse_ip_rule(s)
                .ok_or_else(|| format!("trusted_proxies: `{s}` is not an address or CIDR block"))
        })
        .collect::<Result<Vec<IpNet>, _>>()?;
    if c.header_read_timeout_seconds == 0 || c.idle_timeout_seconds == 0 {
        return Err(
            "header_read_timeout_seconds and idle_timeout_seconds: must be at least 1".into(),
        );
    }
    if c.max_connections == 0 {
        return Err("max_connections: must be at least 1".into());
    }
    if c.max_connections_per_address == 0 {
        return Err("max_connections_per_address: must be at least 1".into());
    }
    if c.auth_failures_per_minute == 0 {
        return Err("auth_failures_per_minute: must be at least 1".into());
    }
    if c.usage_flush_seconds == 0 || c.key_cache_ttl_seconds == 0 {
        return Err("usage_flush_seconds and key_cache_ttl_seconds: must be at least 1".into());
    }
    for (name, plan) in &c.plans {
        if plan.per_minute == 0 || plan.per_day == 0 {
            return Err(format!(
                "plans.{name}: per_minute and per_day must be at least 1"
            ));
        }
        if plan.per_minute > crier_core::plans::MAX_PER_MINUTE
            || plan.per_day > crier_core::plans::MAX_PER_DAY
        {
            return Err(format!(
                "plans.{name}: per_minute is at most {} and per_day at most {}",
                crier_core::plans::MAX_PER_MINUTE,
                crier_core::plans::MAX_PER_DAY
            ));
        }
    }
    if !c.plans.contains_key(&c.default_plan) {
        return Err(format!(
            "default_plan: no plan named `{}` (plans: {})",
            c.default_plan,
            c.plans.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let ceiling = crier_api::routes::webhooks::MAX_ENDPOINTS_CEILING;
    if c.webhook_max_endpoints == 0 || c.webhook_max_endpoints > ceiling {
        return Err(format!(
            "webhook_max_endpoints: must be from 1 to {ceiling} (every event writes one delivery \
             per endpoint inside the transaction that emits it)"
        ));
    }
    if c.publish_per_network == 0 || c.publish_per_account == 0 {
        return Err("publish_per_network and publish_per_account: must be at least 1".into());
    }
    if c.worker_concurrency == 0 || c.worker_poll_ms == 0 || c.publish_max_attempts == 0 {
        return Err(
            "worker_concurrency, worker_poll_ms and publish_max_attempts: must be at least 1"
                .into(),
        );
    }
    if c.network_settle_seconds > 3600 {
        return Err("network_settle_seconds: must be at most 3600".into());
    }
    if c.network_timeout_seconds == 0 || c.network_timeout_seconds * 2 > c.worker_lease_seconds {
        return Err(format!(
            "network_timeout_seconds: must be at least 1 and at most half of \
             worker_lease_seconds ({}), so a job is never worked on twice",
            c.worker_lease_seconds
        ));
    }
    if !(60..=86_400).contains(&c.trends_refresh_seconds) {
        return Err("trends_refresh_seconds: must be from 60 to 86400".into());
    }
    // The webhook switch opens webhooks and feeds only: every other fetcher (knowledge pages,
    // media imports, OAuth metadata, the networks' servers) reads back what it fetches, so it
    // follows the general switch alone.
    let allow_private = c.allow_private_networks;
    let hooks_private = c.allow_private_networks || c.webhook_allow_private_networks;
    let secrets = match c.secret_keys.as_deref().map(str::trim) {
        Some(spec) if !spec.is_empty() => SecretKeys::Given(
            crier_app::Keyring::parse(spec).map_err(|e| format!("secret_keys: {e}"))?,
        ),
        _ => SecretKeys::File(c.data_dir.join("secret-keys")),
    };
    url::Url::parse(&c.bluesky_default_service)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            format!(
                "bluesky_default_service: `{}` is not an http(s) URL",
                c.bluesky_default_service
            )
        })?;
    let mut redirect_uris = Vec::new();
    for uri in c.connect_redirect_uris.items() {
        let parsed = url::Url::parse(&uri)
            .map_err(|_| format!("connect_redirect_uris: `{uri}` is not an absolute URL"))?;
        if parsed.fragment().is_some() {
            return Err(format!(
                "connect_redirect_uris: `{uri}` must not have a fragment (RFC 6749 §3.1.2)"
            ));
        }
        redirect_uris.push(uri);
    }
    let mut clients = BTreeMap::new();
    for (platform, client) in c.oauth_clients {
        if !crier_networks::PLATFORMS.contains(&platform.as_str()) {
            return Err(format!(
                "oauth_clients.{platform}: no such network (networks: {})",
                crier_networks::PLATFORMS.join(", ")
            ));
        }
        if client.client_id.trim().is_empty() {
            return Err(format!(
                "oauth_clients.{platform}.client_id: must not be empty"
            ));
        }
        clients.insert(
            platform,
            crier_networks::OAuthClient {
                client_id: client.client_id,
                client_secret: client.client_secret,
            },
        );
    }
    let mut network_bases = BTreeMap::new();
    for (platform, base) in c.network_base_urls {
        if !crier_networks::HOSTED.contains(&platform.as_str()) {
            return Err(format!(
                "network_base_urls.{platform}: not a network of one operator (those are: {})",
                crier_networks::HOSTED.join(", ")
            ));
        }
        let url = url::Url::parse(&base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                format!("network_base_urls.{platform}: `{base}` is not an http(s) URL")
            })?;
        network_bases.insert(platform, url);
    }
    let connect = crier_app::ConnectConfig {
        redirect_uris,
        clients,
        allow_private_networks: allow_private,
    };
    let role = Role::parse(&c.role)?;
    let workers = role.runs_workers().then(|| Workers {
        publisher: WorkerConfig {
            concurrency: c.worker_concurrency,
            lease: Duration::from_secs(c.worker_lease_seconds),
            call_timeout: Duration::from_secs(c.network_timeout_seconds),
            poll: Duration::from_millis(c.worker_poll_ms),
            max_attempts: i64::from(c.publish_max_attempts),
            backoff: Duration::from_secs(c.publish_backoff_seconds),
            per_network: c.publish_per_network,
            per_account: c.publish_per_account,
            ..WorkerConfig::default()
        },
        webhooks: WebhookConfig {
            allow_private_networks: hooks_private,
            ..WebhookConfig::default()
        },
        feeds: FeedConfig {
            allow_private_networks: hooks_private,
            ..FeedConfig::default()
        },
        agents: crier_worker::agents::AgentConfig::default(),
        clips: crier_worker::clips::ClipConfig::default(),
        trends: crier_worker::trending::RefreshConfig {
            every: Duration::from_secs(c.trends_refresh_seconds),
            call_timeout: Duration::from_secs(c.network_timeout_seconds),
            ..Default::default()
        },
    });
    // ---- media ----
    let media = validate_media(&c.media, &bind, &c.data_dir)?;
    // Checked now, so a bad `[ai]` section stops the start, not the first call.
    c.ai.open()?;
    let database_url = match c.database_url {
        Some(url) if url.starts_with("sqlite:") || url.starts_with("postgres") => url,
        Some(url) => {
            return Err(format!(
                "database_url: `{url}` must start with sqlite:// or postgres://"
            ));
        }
        None => format!("sqlite://{}", c.data_dir.join("crier.db").display()),
    };
    let shared_limits = match &c.redis_url {
        None => None,
        Some(url) => {
            crier_api::auth::SharedLimits::check_url(url)?;
            let on_error = match c.rate_limit_on_redis_error.as_str() {
                "local" => crier_api::auth::OnRedisError::Local,
                "closed" => crier_api::auth::OnRedisError::Closed,
                other => {
                    return Err(format!(
                        "rate_limit_on_redis_error: `{other}` must be `local` or `closed`"
                    ));
                }
            };
            Some(crier_api::auth::SharedLimits {
                redis_url: url.clone(),
                on_error,
            })
        }
    };
    let public_url = c
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bind}"));
    match url::Url::parse(&public_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => return Err(format!("public_url: `{public_url}` is not an http(s) URL")),
    }
    if !(1..=720).contains(&c.session_hours) {
        return Err("session_hours: must be from 1 to 720".into());
    }
    Ok(Settings {
        bind,
        session_ttl: Duration::from_secs(c.session_hours * 3600),
        server: ServerConfig {
            header_read_timeout: Duration::from_secs(c.header_read_timeout_seconds),
            max_connections: c.max_connections,
            max_connections_per_address: c.max_connections_per_address,
            uncapped_peers: crier_api::server::loopback()
                .into_iter()
                .chain(trusted_proxies.iter().copied())
                .collect(),
            idle_timeout: Duration::from_secs(c.idle_timeout_seconds),
            shutdown_grace: Duration::from_secs(c.shutdown_grace_seconds),
            ..ServerConfig::default()
        },
        database_url,
        log_json,
        log_level: c.log_level,
        default_plan: c.default_plan,
        role,
        migrate_on_start: c.migrate_on_start,
        workers,
        media,
        ai: c.ai,
        api: ApiConfig {
            auth: AuthConfig {
                trusted_proxies,
                failures_per_minute: c.auth_failures_per_minute,
                cache_ttl: Duration::from_secs(c.key_cache_ttl_seconds),
                unknown_key_ttl: Duration::from_secs(30),
                shared_limits,
            },
            plans: c.plans,
            usage_flush_interval: Duration::from_secs(c.usage_flush_seconds),
            allow_private_networks: hooks_private,
            max_webhook_endpoints: c.webhook_max_endpoints,
            public_url,
        },
        secrets,
        connect,
        allow_private_networks: allow_private,
        network_timeout: Duration::from_secs(c.network_timeout_seconds),
        network_settle: Duration::from_secs(c.network_settle_seconds),
        bluesky_default_service: c.bluesky_default_service,
        network_bases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = validate(Config::default()).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert!(s.database_url.starts_with("sqlite://"));
        assert_eq!(s.default_plan, "self-hosted");
    }

    #[test]
    fn bad_settings_are_named() {
        type Change = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|c| c.bind = "nope".into()), "bind"),
            (Box::new(|c| c.log_format = "xml".into()), "log_format"),
            (
                Box::new(|c| c.trusted_proxies = StringList::Csv("10.0.0.0/8, bad".into())),
                "trusted_proxies",
            ),
            (Box::new(|c| c.default_plan = "gold".into()), "default_plan"),
            (Box::new(|c| c.max_connections = 0), "max_connections"),
            (
                Box::new(|c| c.trends_refresh_seconds = 59),
                "trends_refresh_seconds",
            ),
            (
                Box::new(|c| c.header_read_timeout_seconds = 0),
                "header_read_timeout_seconds",
            ),
            (
                Box::new(|c| c.database_url = Some("mysql://x".into())),
                "database_url",
            ),
            (
                Box::new(|c| c.plans.get_mut("free").unwrap().per_minute = 0),
                "plans.free",
            ),
            (
                Box::new(|c| c.webhook_max_endpoints = 101),
                "webhook_max_endpoints",
            ),
            (
                Box::new(|c| c.webhook_max_endpoints = 0),
                "webhook_max_endpoints",
            ),
        ];
        for (change, name) in cases {
            let mut c = Config::default();
            change(&mut c);
            let err = validate(c).unwrap_err();
            assert!(err.starts_with(name), "{err} should name {name}");
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("crier.toml", "bind = \"127.0.0.1:9000\"\nlog_level = \"warn\"\n[plans.free]\nper_minute = 5\nper_day = 50\n")?;
            jail.set_env("CRIER_LOG_LEVEL", "debug");
            jail.set_env("CRIER_TRUSTED_PROXIES", "10.0.0.0/8,::1");
            jail.set_env("CRIER_TEST_DATABASE_URL", "ignored");
            jail.set_env("CRIER_HEADER_READ_TIMEOUT_SECONDS", "3");
            jail.set_env("CRIER_MAX_CONNECTIONS", "50");
            let s = load(None, Flags::default()).unwrap();
            assert_eq!(s.bind.to_string(), "127.0.0.1:9000", "file over default");
            assert_eq!(s.log_level, "debug", "env over file");
            assert_eq!(s.server.header_read_timeout, Duration::from_secs(3));
            assert_eq!(s.server.max_connections, 50);
            assert_eq!(s.server.shutdown_grace, Duration::from_secs(30));
            assert_eq!(s.api.auth.trusted_proxies.len(), 2);
            assert_eq!(s.api.plans["free"].per_minute, 5);
            assert_eq!(s.api.plans["pro"].per_minute, 600, "shipped plans remain");
            assert_eq!(s.api.max_webhook_endpoints, 16, "the default");
            // The server's limits per address: loopback and the trusted proxies uncounted.
            assert_eq!(s.server.max_connections_per_address, 128);
            assert_eq!(s.server.uncapped_peers.len(), 4);
            jail.set_env("CRIER_MAX_CONNECTIONS_PER_ADDRESS", "8");
            let s = load(None, Flags::default()).unwrap();
            assert_eq!(s.server.max_connections_per_address, 8);
            // The webhook switch opens webhooks and feeds, nothing else.
            assert!(!s.api.allow_private_networks && !s.allow_private_networks);
            jail.set_env("CRIER_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true");
            let s = load(None, Flags::default()).unwrap();
            assert!(s.api.allow_private_networks, "webhook and feed URLs");
            let w = s.workers.as_ref().unwrap();
            assert!(w.webhooks.allow_private_networks && w.feeds.allow_private_networks);
            assert!(!s.allow_private_networks, "the fetchers and the networks");
            assert!(!s.connect.allow_private_networks);
            jail.set_env("CRIER_ALLOW_PRIVATE_NETWORKS", "true");
            let s = load(None, Flags::default()).unwrap();
            assert!(s.allow_private_networks && s.connect.allow_private_networks);
            jail.set_env("CRIER_WEBHOOK_MAX_ENDPOINTS", "100");
            assert_eq!(
                load(None, Flags::default())
                    .unwrap()
                    .api
                    .max_webhook_endpoints,
                100
            );
            let s = load(
                None,
                Flags {
                    bind: Some("127.0.0.1:9100".into()),
                    ..Flags::default()
                },
            )
            .unwrap();
            assert_eq!(s.bind.to_string(), "127.0.0.1:9100", "flag over all");
            jail.set_env("CRIER_BIND", "garbage");
            assert!(
                load(None, Flags::default())
                    .unwrap_err()
                    .starts_with("bind")
            );
            Ok(())
        });
    }

    // ---- media ----
    #[test]
    fn media_settings_are_validated() {
        let s = validate(Config::default()).unwrap();
        match &s.media.storage {
            MediaStorageSetup::Local {
                public_url, dir, ..
            } => {
                assert_eq!(public_url, "http://127.0.0.1:8080");
                assert!(dir.ends_with("media"));
            }
            other => panic!("{other:?}"),
        }
        let with = |f: &dyn Fn(&mut MediaConfig)| {
            let mut c = Config::default();
            f(&mut c.media);
            validate(c)
        };
        for (f, name) in [
            (
                &(|m: &mut MediaConfig| m.storage = "ftp".into()) as &dyn Fn(&mut MediaConfig),
                "media.storage",
            ),
            (
                &|m: &mut MediaConfig| m.max_size_bytes = 0,
                "media.max_size_bytes",
            ),
            (
                &|m: &mut MediaConfig| m.upload_url_ttl_seconds = 0,
                "media.upload_url_ttl_seconds",
            ),
            (
                &|m: &mut MediaConfig| m.read_url_ttl_seconds = 8 * 86_400,
                "media.read_url_ttl_seconds",
            ),
            (
                &|m: &mut MediaConfig| m.max_pending_uploads = 0,
                "media.max_pending_uploads",
            ),
            (
                &|m: &mut MediaConfig| m.signing_secret = Some("short".into()),
                "media.signing_secret",
            ),
            (
                &|m: &mut MediaConfig| m.public_url = Some("ftp://x".into()),
                "media.public_url",
            ),
            (
                &|m: &mut MediaConfig| m.storage = "s3".into(),
                "media.s3_endpoint",
            ),
            (
                &|m: &mut MediaConfig| {
                    m.storage = "s3".into();
                    m.s3_endpoint = Some("http://127.0.0.1:9000".into());
                    m.s3_bucket = Some("Bad_Bucket".into());
                    m.s3_access_key = Some("a".into());
                    m.s3_secret_key = Some("b".into());
                },
                "bucket",
            ),
        ] {
            let e = with(f).unwrap_err();
            assert!(e.contains(name), "{name}: {e}");
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn media_settings_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CRIER_MEDIA_STORAGE", "s3");
            jail.set_env("CRIER_MEDIA_S3_ENDPOINT", "http://127.0.0.1:9000");
            jail.set_env("CRIER_MEDIA_S3_BUCKET", "media");
            jail.set_env("CRIER_MEDIA_S3_ACCESS_KEY", "ak");
            jail.set_env("CRIER_MEDIA_S3_SECRET_KEY", "sk");
            jail.set_env("CRIER_MEDIA_MAX_SIZE_BYTES", "1000");
            let s = load(None, Flags::default()).unwrap();
            assert_eq!(s.media.max_size, 1000);
            match &s.media.storage {
                MediaStorageSetup::S3(c) => {
                    assert_eq!(c.bucket, "media");
                    assert_eq!(c.secret_key, "sk");
                }
                other => panic!("{other:?}"),
            }
            Ok(())
        });
    }
}
