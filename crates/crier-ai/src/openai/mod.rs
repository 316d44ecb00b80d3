//! The OpenAI-compatible chat-completions and embeddings client: any server that speaks the
//! protocol (OpenAI, Ollama, vLLM, llama.cpp, LM Studio) at a base URL the operator configures.
//!
//! Error policy (every call goes through [`OpenAi::post`]): every failure is
//! [`AiError::Upstream`] with a message safe to show an API client: it never holds the API key,
//! the base URL or the upstream body, at most a short excerpt of the upstream error's own
//! message (with the key and anything that looks like one removed).
//! - A connection that cannot be made, no answer within `timeout`, `429` and `5xx` are retried
//!   up to `max_retries` times after a short backoff (or the server's `Retry-After`, when it asks
//!   for at most [`MAX_RETRY_AFTER`]; a longer wait gives up at once). The pauses together never
//!   exceed `timeout`, and each attempt (sending, waiting, reading the answer) is bounded by
//!   `timeout`.
//! - Any other status (`4xx`, a redirect, which is never followed) fails at once.
//! - A `2xx` answer is read up to a cap (the declared length is not trusted: the body is read
//!   chunk by chunk and reading stops at the cap); a body over the cap, cut off, or not the JSON
//!   the protocol defines fails at once.
//!
//! The base URL is operator configuration, so private and loopback addresses are allowed (no
//! SSRF guard); proxies from the environment are ignored and redirects are not followed, so a
//! request goes to the configured server and nowhere else.

mod embed;
mod prompt;

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{self, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{AiError, Context};

pub use embed::{MAX_DIMENSIONS, MAX_EMBED_BATCH};
pub use prompt::clean_answer;

/// The most of a chat answer we read.
pub const MAX_CHAT_BODY: usize = 1024 * 1024;
/// The most of an error answer we read (for its message).
const MAX_ERROR_BODY: usize = 16 * 1024;
/// The longest `Retry-After` we wait for; a server asking for more is not retried.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The first backoff pause; it doubles per retry (with jitter), up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The longest excerpt of an upstream error message a client may see.
const MAX_EXCERPT: usize = 200;

/// Where the model server is and how to talk to it. Deserialized from the operator's
/// configuration (`timeout_seconds` for [`OpenAiConfig::timeout`]); every field has a default
/// except `model`, which [`OpenAi::new`] requires.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The API's base, the part before `/chat/completions`: `http://127.0.0.1:8080/v1`
    /// (llama.cpp), `http://127.0.0.1:11434/v1` (Ollama), `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<String>,
    /// The bound on each attempt, and on all backoff pauses together.
    #[serde(rename = "timeout_seconds", deserialize_with = "seconds")]
    pub timeout: Duration,
    /// Retries after the first attempt (connection failures, timeouts, 429, 5xx only).
    pub max_retries: u32,
    /// The model for `/embeddings`; without one, [`crate::Embedder::embed`] answers
    /// [`AiError::NoModel`].
    pub embeddings_model: Option<String>,
    /// `max_tokens` of every chat completion.
    pub max_tokens: u32,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8080/v1".into(),
            model: String::new(),
            api_key: None,
            timeout: Duration::from_secs(30),
            max_retries: 2,
            embeddings_model: None,
            max_tokens: 512,
        }
    }
}

/// Never prints the key.
impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("embeddings_model", &self.embeddings_model)
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = f64::deserialize(d)?;
    if !(s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT.as_secs_f64()) {
        return Err(serde::de::Error::custom(format!(
            "timeout_seconds must be more than 0 and at most {}",
            MAX_TIMEOUT.as_secs()
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

/// Bounds on the configuration.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_RETRIES: u32 = 10;
const MAX_MAX_TOKENS: u32 = 32_768;
const MAX_NAME: usize = 256;

/// Who says a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of a chat completion request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// The client. Cheap to share (`Arc` it); one connection pool.
#[derive(Clone)]
pub struct OpenAi {
    config: OpenAiConfig,
    /// `base_url` without its trailing `/`.
    base: String,
    /// `Bearer …`, marked sensitive.
    auth: Option<HeaderValue>,
    http: reqwest::Client,
}

impl std::fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAi")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn invalid(param: &'static str, message: impl Into<String>) -> AiError {
    AiError::Invalid {
        param,
        message: message.into(),
    }
}

fn upstream(message: impl Into<String>) -> AiError {
    AiError::Upstream(message.into())
}

/// The model answered, but with nothing usable: the work was done.
fn declined(message: impl Into<String>) -> AiError {
    AiError::Declined(message.into())
}

impl OpenAi {
    /// Checks the configuration (an `http`/`https` base URL without credentials, query or
    /// fragment; a model; bounded timeout, retries and `max_tokens`) and builds the client.
    /// A bad setting is [`AiError::Invalid`] naming it.
    pub fn new(config: OpenAiConfig) -> Result<Self, AiError> {
        let url = reqwest::Url::parse(config.base_url.trim())
            .map_err(|_| invalid("base_url", "base_url is not a valid URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("base_url", "base_url must be an http or https URL"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("base_url", "base_url has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "base_url",
                "base_url must not hold credentials (set api_key instead)",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "base_url",
                "base_url must not have a query or a fragment",
            ));
        }
        if config.base_url.len() > 2048 {
            return Err(invalid("base_url", "base_url is longer than 2048 bytes"));
        }
        let name_ok = |s: &str| {
            !s.trim().is_empty() && s.len() <= MAX_NAME && !s.chars().any(char::is_control)
        };
        if !name_ok(&config.model) {
            return Err(invalid(
                "model",
                format!(
                    "model must name the model to use (1 to {MAX_NAME} bytes, no control characters)"
                ),
            ));
        }
        if let Some(m) = &config.embeddings_model
            && !name_ok(m)
        {
            return Err(invalid(
                "embeddings_model",
                format!("embeddings_model must be 1 to {MAX_NAME} bytes, no control characters"),
            ));
        }
        if config.timeout.is_zero() || config.timeout > MAX_TIMEOUT {
            return Err(invalid(
                "timeout",
                format!(
                    "timeout must be more than 0 and at most {} seconds",
                    MAX_TIMEOUT.as_secs()
                ),
            ));
        }
        if config.max_retries > MAX_RETRIES {
            return Err(invalid(
                "max_retries",
                format!("max_retries must be at most {MAX_RETRIES}"),
            ));
        }
        if config.max_tokens == 0 || config.max_tokens > MAX_MAX_TOKENS {
            return Err(invalid(
                "max_tokens",
                format!("max_tokens must be 1 to {MAX_MAX_TOKENS}"),
            ));
        }
        let auth = match &config.api_key {
            None => None,
            Some(k) if k.is_empty() => None,
            Some(k) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {k}")).map_err(|_| {
                    invalid("api_key", "api_key must be printable ASCII without spaces")
                })?;
                if k.chars().any(|c| c.is_whitespace()) {
                    return Err(invalid(
                        "api_key",
                        "api_key must be printable ASCII without spaces",
                    ));
                }
                v.set_sensitive(true);
                Some(v)
            }
        };
        let http = reqwest::Client::builder()
            // Operator configuration: reach exactly this server, never through a proxy from the
            // environment, and never somewhere a redirect points.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("crier/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(8)
            .build()
            .map_err(|_| upstream("the HTTP client for the model server could not be built"))?;
        let base = url.as_str().trim_end_matches('/').to_owned();
        Ok(Self {
            config,
            base,
            auth,
            http,
        })
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    /// Whether an embeddings model is configured ([`crate::Embedder::embed`] works).
    pub fn has_embeddings(&self) -> bool {
        self.config.embeddings_model.is_some()
    }

    /// One chat completion (`temperature` 0, `max_tokens` from the configuration): the first
    /// choice's text, as the model wrote it. An answer cut by `max_tokens`
    /// (`finish_reason: "length"`) is accepted; an empty one, a refusal, or one stopped by a
    /// content filter or for a tool call is [`AiError::Upstream`].
    pub async fn chat(&self, messages: &[Message]) -> Result<String, AiError> {
        #[derive(Serialize)]
        struct Request<'a> {
            model: &'a str,
            messages: &'a [Message],
            temperature: f32,
            max_tokens: u32,
            stream: bool,
        }
        let body = serde_json::to_vec(&Request {
            model: &self.config.model,
            messages,
            temperature: 0.0,
            max_tokens: self.config.max_tokens,
            stream: false,
        })
        .map_err(|_| upstream("the request to the model server could not be encoded"))?;
        let bytes = self.post("chat/completions", body, MAX_CHAT_BODY).await?;
        parse_chat(&bytes)
    }

    /// Rewrites `text` in `tone`, in the brand voice, for `cx.rules`' network. The answer is
    /// cleaned ([`clean_answer`]) but not fitted to the network's limit (the caller fits it).
    pub async fn rewrite(
        &self,
        cx: Context<'_>,
        text: &str,
        tone: &str,
    ) -> Result<String, AiError> {
        let answer = self.chat(&prompt::rewrite(cx, text, tone)).await?;
        cleaned(&answer)
    }

    /// Writes a post from `prompt` (what the post is about), in the brand voice, for
    /// `cx.rules`' network. Cleaned, not fitted (see [`OpenAi::rewrite`]).
    pub async fn compose(&self, cx: Context<'_>, prompt: &str) -> Result<String, AiError> {
        let answer = self.chat(&prompt::compose(cx, prompt)).await?;
        cleaned(&answer)
    }

    /// POSTs a JSON body to `{base}/{path}` under the retry policy (see the module's policy)
    /// and returns the `2xx` answer's body, read up to `cap` bytes.
    async fn post(&self, path: &str, body: Vec<u8>, cap: usize) -> Result<Vec<u8>, AiError> {
        let url = format!("{}/{path}", self.base);
        let budget = self.config.timeout;
        let mut paused = Duration::ZERO;
        let mut retry = 0;
        loop {
            let outcome = tokio::time::timeout(budget, self.attempt(&url, &body, cap))
                .await
                .unwrap_or_else(|_| Outcome::Retry {
                    error: upstream(format!(
                        "the model server did not answer within {}",
                        human(budget)
                    )),
                    after: None,
                });
            let (error, after) = match outcome {
                Outcome::Done(bytes) => return Ok(bytes),
                Outcome::Fail(e) => return Err(e),
                Outcome::Retry { error, after } => (error, after),
            };
            if retry >= self.config.max_retries {
                return Err(error);
            }
            let pause = match after {
                Some(d) if d > MAX_RETRY_AFTER => return Err(error),
                Some(d) => d,
                None => backoff(retry),
            };
            if paused + pause > budget {
                return Err(error);
            }
            tracing::debug!(retry, ?pause, %error, "model server: retrying");
            tokio::time::sleep(pause).await;
            paused += pause;
            retry += 1;
        }
    }

    async fn attempt(&self, url: &str, body: &[u8], cap: usize) -> Outcome {
        let mut req = self
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(body.to_vec());
        if let Some(auth) = &self.auth {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return Outcome::Retry {
                    error: upstream("the model server could not be reached"),
                    after: None,
                };
            }
            Err(e) if e.is_timeout() => {
                return Outcome::Retry {
                    error: upstream(format!(
                        "the model server did not answer within {}",
                        human(self.config.timeout)
                    )),
                    after: None,
                };
            }
            Err(_) => {
                return Outcome::Fail(upstream(
                    "the connection to the model server failed before it answered",
                ));
            }
        };
        let status = resp.status();
        if status.is_success() {
            return match read_capped(resp, cap).await {
                Ok(bytes) => Outcome::Done(bytes),
                Err(Cut::TooLarge) => Outcome::Fail(upstream(format!(
                    "the model server's answer is larger than {} bytes",
                    cap
                ))),
                Err(Cut::Broken) => {
                    Outcome::Fail(upstream("the model server's answer was cut off"))
                }
            };
        }
        let after = retry_after(resp.headers());
        let excerpt = match read_capped_prefix(resp, MAX_ERROR_BODY).await {
            Some(bytes) => error_excerpt(&bytes, self.config.api_key.as_deref()),
            None => None,
        };
        let with = |what: String| match &excerpt {
            Some(x) => format!("{what}: {x}"),
            None => what,
        };
        let code = status.as_u16();
        match status {
            StatusCode::TOO_MANY_REQUESTS => Outcome::Retry {
                error: upstream(with(
                    "the model server is limiting our rate (429); try again later".into(),
                )),
                after,
            },
            s if s.is_server_error() => Outcome::Retry {
                error: upstream(with(format!("the model server failed ({code})"))),
                after,
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Outcome::Fail(upstream(format!(
                "the model server refused our credentials ({code}); check the configured API key"
            ))),
            s if s.is_redirection() => Outcome::Fail(upstream(format!(
                "the model server answered with a redirect ({code}), which is not followed; check the configured base URL"
            ))),
            _ => Outcome::Fail(upstream(with(format!(
                "the model server refused the request ({code})"
            )))),
        }
    }
}

enum Outcome {
    Done(Vec<u8>),
    Retry {
        error: AiError,
        after: Option<Duration>,
    },
    Fail(AiError),
}

fn cleaned(answer: &str) -> Result<String, AiError> {
    let text = clean_answer(answer);
    if text.trim().is_empty() {
        return Err(declined("the model answered with an empty text"));
    }
    Ok(text)
}

/// `1.5 s`, `30 s`.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// The pause before retry number `retry + 1`: 200 ms doubling, capped at 2 s, with up to 50 %
/// jitter added.
fn backoff(retry: u32) -> Duration {
    let base = BASE_BACKOFF
        .saturating_mul(1u32 << retry.min(16))
        .min(MAX_BACKOFF);
    let jitter = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % (base.as_millis() as u64 / 2 + 1);
    base + Duration::from_millis(jitter)
}

/// `Retry-After` in delta seconds (an HTTP date is ignored: the default backoff applies).
fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

enum Cut {
    TooLarge,
    Broken,
}

/// A body read chunk by chunk, stopping as soon as it passes `cap` (a declared length above it
/// is refused before reading; a smaller one is not trusted).
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, Cut> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(Cut::TooLarge);
    }
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > cap {
                    return Err(Cut::TooLarge);
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(_) => return Err(Cut::Broken),
        }
    }
}

/// At most the first `cap` bytes of a body (for an error's message); `None` if it cannot be
/// read.
async fn read_capped_prefix(mut resp: reqwest::Response, cap: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while out.len() < cap {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(cap - out.len());
                out.extend_from_slice(&chunk[..take]);
            }
            Ok(None) => break,
            Err(_) => return None,
        }
    }
    Some(out)
}

/// The upstream error's own message, when its body is one of the usual shapes
/// (`{"error":{"message":…}}` from OpenAI, vLLM and llama.cpp, `{"error":"…"}` from Ollama,
/// `{"message":…}`, `{"detail":"…"}`): control characters removed, the configured key and
/// anything that looks like an API key redacted, cut to [`MAX_EXCERPT`] characters. Never the
/// raw body.
fn error_excerpt(body: &[u8], key: Option<&str>) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = v
        .pointer("/error/message")
        .and_then(|m| m.as_str())
        .or_else(|| v.get("error").and_then(|m| m.as_str()))
        .or_else(|| v.get("message").and_then(|m| m.as_str()))
        .or_else(|| v.get("detail").and_then(|m| m.as_str()))?;
    let mut text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if let Some(k) = key.filter(|k| !k.is_empty()) {
        text = text.replace(k, "[redacted]");
    }
    let text = text
        .split(' ')
        .map(|w| if looks_like_key(w) { "[redacted]" } else { w })
        .collect::<Vec<_>>()
        .join(" ");
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut out: String = text.chars().take(MAX_EXCERPT).collect();
    if text.chars().count() > MAX_EXCERPT {
        out.push('…');
    }
    Some(out)
}

/// `sk-…`-like words and long opaque tokens of letters and digits: the shapes providers echo
/// (OpenAI's "Incorrect API key provided: sk-ab***cd").
fn looks_like_key(word: &str) -> bool {
    let w = word.trim_matches(|c: char| !c.is_alphanumeric());
    let lower = w.to_ascii_lowercase();
    ["sk-", "sk_", "key-", "rk-", "pk-"]
        .iter()
        .any(|p| lower.starts_with(p))
        || (w.len() >= 32
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && w.chars().any(|c| c.is_ascii_digit())
            && w.chars().any(|c| c.is_ascii_alphabetic()))
}

/// `choices[0].message.content` of a chat completion, checked.
fn parse_chat(bytes: &[u8]) -> Result<String, AiError> {
    #[derive(Deserialize)]
    struct Response {
        choices: Vec<Choice>,
    }
    #[derive(Deserialize)]
    struct Choice {
        message: Out,
        #[serde(default)]
        finish_reason: Option<String>,
    }
    #[derive(Deserialize)]
    struct Out {
        #[serde(default)]
        content: Option<String>,
        #[serde(default)]
        refusal: Option<String>,
    }
    let resp: Response = serde_json::from_slice(bytes).map_err(|_| {
        upstream("the model server's answer is not a chat completion (malformed JSON)")
    })?;
    let choice = resp
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| upstream("the model server's answer has no choices"))?;
    if choice
        .message
        .refusal
        .as_deref()
        .is_some_and(|r| !r.trim().is_empty())
    {
        return Err(declined("the model declined to write this text"));
    }
    match choice.finish_reason.as_deref() {
        Some("content_filter") => {
            return Err(declined(
                "the model server's content filter stopped the answer",
            ));
        }
        Some("tool_calls" | "function_call") => {
            return Err(declined(
                "the model answered with a tool call instead of a text",
            ));
        }
        _ => {}
    }
    let content = choice
        .message
        .content
        .ok_or_else(|| declined("the model's answer has no text"))?
        // No text crier keeps takes NUL (PostgreSQL cannot store it).
        .replace('\0', "");
    if content.trim().is_empty() {
        return Err(declined("the model answered with an empty text"));
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OpenAiConfig {
        OpenAiConfig {
            model: "m".into(),
            ..OpenAiConfig::default()
        }
    }

    #[test]
    fn the_configuration_is_checked() {
        assert!(OpenAi::new(config()).is_ok());
        for (base, why) in [
            ("ftp://example.com/v1", "scheme"),
            ("file:///etc/passwd", "scheme"),
            ("not a url", "parse"),
            ("http://user:pw@example.com/v1", "credentials"),
            ("http://example.com/v1?x=1", "query"),
            ("http://example.com/v1#f", "fragment"),
        ] {
            let err = OpenAi::new(OpenAiConfig {
                base_url: base.into(),
                ..config()
            })
            .unwrap_err();
            assert!(
                matches!(
                    err,
                    AiError::Invalid {
                        param: "base_url",
                        ..
                    }
                ),
                "{base} ({why}): {err:?}"
            );
        }
        // Private and loopback addresses are the operator's choice.
        for base in [
            "http://10.0.0.5:11434/v1",
            "http://localhost:8080/v1/",
            "https://[::1]/v1",
        ] {
            assert!(
                OpenAi::new(OpenAiConfig {
                    base_url: base.into(),
                    ..config()
                })
                .is_ok()
            );
        }
        let bad = |c: OpenAiConfig| match OpenAi::new(c) {
            Err(AiError::Invalid { param, .. }) => param,
            other => panic!("{other:?}"),
        };
        assert_eq!(bad(OpenAiConfig::default()), "model");
        assert_eq!(
            bad(OpenAiConfig {
                timeout: Duration::ZERO,
                ..config()
            }),
            "timeout"
        );
        assert_eq!(
            bad(OpenAiConfig {
                max_retries: 11,
                ..config()
            }),
            "max_retries"
        );
        assert_eq!(
            bad(OpenAiConfig {
                max_tokens: 0,
                ..config()
            }),
            "max_tokens"
        );
        assert_eq!(
            bad(OpenAiConfig {
                api_key: Some("a b".into()),
                ..config()
            }),
            "api_key"
        );
        assert_eq!(
            bad(OpenAiConfig {
                api_key: Some("a\nb".into()),
                ..config()
            }),
            "api_key"
        );
        assert_eq!(
            bad(OpenAiConfig {
                embeddings_model: Some(" ".into()),
                ..config()
            }),
            "embeddings_model"
        );
    }

    #[test]
    fn the_configuration_deserializes_with_defaults_and_never_prints_the_key() {
        let c: OpenAiConfig = serde_json::from_str(
            r#"{"base_url":"http://127.0.0.1:11434/v1","model":"llama3","api_key":"sk-secret-1","timeout_seconds":2.5}"#,
        )
        .unwrap();
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.max_retries, 2);
        assert_eq!(c.max_tokens, 512);
        assert_eq!(c.embeddings_model, None);
        assert!(!format!("{c:?}").contains("sk-secret-1"));
        let client = OpenAi::new(c).unwrap();
        assert!(!format!("{client:?}").contains("sk-secret-1"));
        let d: OpenAiConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(d.timeout, Duration::from_secs(30));
        for bad in [
            r#"{"timeout_seconds":0}"#,
            r#"{"timeout_seconds":-1}"#,
            r#"{"timeout_seconds":601}"#,
            r#"{"unknown":1}"#,
        ] {
            assert!(serde_json::from_str::<OpenAiConfig>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_excerpts_are_short_and_hold_no_key() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-ab***cd. See https://x","type":"invalid_request_error"}}"#;
        let x = error_excerpt(body, None).unwrap();
        assert!(!x.contains("sk-ab"), "{x}");
        assert!(
            x.starts_with("Incorrect API key provided: [redacted]"),
            "{x}"
        );
        let body = br#"{"error":"model 'x' not found, key mysecret1234"}"#;
        let x = error_excerpt(body, Some("mysecret1234")).unwrap();
        assert_eq!(x, "model 'x' not found, key [redacted]");
        let long = format!(r#"{{"message":"{}"}}"#, "a".repeat(5000));
        let x = error_excerpt(long.as_bytes(), None).unwrap();
        assert_eq!(x.chars().count(), MAX_EXCERPT + 1);
        assert_eq!(error_excerpt(b"<html>secret page</html>", None), None);
        assert_eq!(
            error_excerpt(br#"{"detail":"line\u0000two\nthree"}"#, None).unwrap(),
            "line two three"
        );
    }

    #[test]
    fn retry_after_and_backoff_are_bounded() {
        let mut h = header::HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
        for retry in 0..40 {
            let b = backoff(retry);
            assert!(
                b >= BASE_BACKOFF && b <= MAX_BACKOFF * 3 / 2,
                "{retry}: {b:?}"
            );
        }
    }

    #[test]
    fn chat_answers_are_parsed_strictly() {
        let ok = |s: &str| parse_chat(s.as_bytes());
        assert_eq!(
            ok(r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"extra":1}"#).unwrap(),
            "hi"
        );
        assert_eq!(
            ok(r#"{"choices":[{"message":{"content":"cut"},"finish_reason":"length"}]}"#).unwrap(),
            "cut"
        );
        assert_eq!(
            ok(r#"{"choices":[{"message":{"content":"n\u0000ul\n"},"finish_reason":"stop"}]}"#)
                .unwrap(),
            "nul\n"
        );
        // Answered, but nothing usable: charged (the model did the work).
        for declined in [
            r#"{"choices":[{"message":{"content":"  \n"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"message":{"content":null},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"message":{"content":null,"refusal":"no"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"message":{"content":"x"},"finish_reason":"content_filter"}]}"#,
            r#"{"choices":[{"message":{"content":null},"finish_reason":"tool_calls"}]}"#,
        ] {
            assert!(
                matches!(ok(declined), Err(AiError::Declined(_))),
                "{declined}"
            );
        }
        for bad in [
            r#"{"choices":[]}"#,
            r#"{"choices":[{"message":{"content":5}}]}"#,
            r#"{"object":"chat.completion"}"#,
            r#"{"choices":[{"message":{"content":"x"}}"#,
            "",
        ] {
            assert!(matches!(ok(bad), Err(AiError::Upstream(_))), "{bad}");
        }
    }
}
