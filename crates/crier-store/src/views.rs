//! The objects the API shows (and webhook events carry), rendered from stored rows in one
//! place so an event's `data` is exactly what `GET` returns.

use std::collections::BTreeMap;

use crier_core::clock::from_ms;
use crier_core::{KeyMode, SecretKey};
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::model::{Account, KeyRow, Post, PostOverride, RequestLogEntry};

/// A key's requests per UTC day, every day of the range present (zeros where it made none),
/// oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyUsageObject {
    #[schema(example = "key_usage")]
    pub object: &'static str,
    pub key_id: String,
    pub days: Vec<UsageDay>,
}

/// One UTC day of a key's usage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageDay {
    #[schema(value_type = String, format = Date, example = "2026-11-22")]
    pub date: String,
    /// Every request made with the key that day, including the failed and rate-limited ones.
    pub requests: i64,
    /// Requests answered with a status of 400 or above, 429 excepted.
    pub errors: i64,
    /// Requests refused by the key's rate limit (429).
    pub rate_limited: i64,
}

/// One authenticated request from the recent request log (kept 7 days).
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestObject {
    #[schema(example = "req_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "request")]
    pub object: &'static str,
    /// The key that made it (for a session, the session's stand-in `key_…` id).
    pub key_id: String,
    #[schema(example = "GET")]
    pub method: String,
    /// The route template, never the raw path or its query string.
    #[schema(example = "/v1/keys/{id}")]
    pub path: String,
    pub status: i64,
    /// The error envelope's `code`, when it failed.
    pub error_code: Option<String>,
    pub duration_ms: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl RequestObject {
    pub fn from_entry(e: &RequestLogEntry) -> Self {
        Self {
            id: e.request_id.clone(),
            object: "request",
            key_id: e.key_id.to_string(),
            method: e.method.clone(),
            path: e.path.clone(),
            status: e.status,
            error_code: e.error_code.clone(),
            duration_ms: e.duration_ms,
            created_at: from_ms(e.at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimitObject {
    pub per_minute: u32,
    pub per_day: u32,
}

/// An API key as the API shows it. Only create and rotate responses carry `key`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyObject {
    #[schema(example = "key_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "api_key")]
    pub object: &'static str,
    pub name: String,
    pub description: String,
    #[schema(example = "sk_live_4fQz")]
    pub prefix: String,
    #[schema(example = "live")]
    pub mode: &'static str,
    pub livemode: bool,
    pub scopes: Vec<&'static str>,
    pub rate_limit: RateLimitObject,
    pub allowed_ips: Vec<String>,
    pub allowed_origins: Vec<String>,
    /// The brands this key is limited to (with `allowed_account_ids`; both empty: no limit).
    /// A limited key reaches these brands' accounts (as they are at each request) and the
    /// accounts in `allowed_account_ids`; everything else is `404` for it.
    pub allowed_brand_ids: Vec<String>,
    pub allowed_account_ids: Vec<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    /// The key that replaced this one by rotation.
    pub replaced_by: Option<String>,
    /// The secret: shown once, in the create and rotate responses only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl KeyObject {
    pub fn from_row(row: &KeyRow, secret: Option<&SecretKey>) -> Self {
        Self {
            id: row.id.to_string(),
            object: "api_key",
            name: row.name.clone(),
            description: row.description.clone(),
            prefix: row.prefix.clone(),
            mode: row.mode.as_str(),
            livemode: row.mode == KeyMode::Live,
            scopes: row.scopes.names(),
            rate_limit: RateLimitObject {
                per_minute: row.per_minute,
                per_day: row.per_day,
            },
            allowed_ips: row.allowed_ips.clone(),
            allowed_origins: row.allowed_origins.clone(),
            allowed_brand_ids: row.allowed_brand_ids.clone(),
            allowed_account_ids: row.allowed_account_ids.clone(),
            expires_at: row.expires_at.map(from_ms),
            last_used_at: row.last_used_at.map(from_ms),
            created_at: from_ms(row.created_at),
            revoked_at: row.revoked_at.map(from_ms),
            replaced_by: row.replaced_by.as_ref().map(ToString::to_string),
            key: secret.map(|s| s.expose().to_owned()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountObject {
    #[schema(example = "acct_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "account")]
    pub object: &'static str,
    #[schema(example = "sandbox")]
    pub platform: String,
    pub handle: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub profile_url: Option<String>,
    /// The network's id of the account (a DID for Bluesky, the instance's account id for
    /// Mastodon, the handle for the sandbox).
    pub external_id: String,
    /// The account's server (a Mastodon instance, a PDS), for networks of many servers.
    pub service: Option<String>,
    pub livemode: bool,
    /// `connected`, `expired` (the network no longer accepts its token: reconnect it) or
    /// `disconnected`.
    pub status: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disconnected_at: Option<Timestamp>,
}

impl From<&Account> for AccountObject {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id.to_string(),
            object: "account",
            platform: a.platform.clone(),
            handle: a.handle.clone(),
            display_name: a.display_name.clone(),
            avatar_url: a.avatar_url.clone(),
            profile_url: a.profile_url.clone(),
            external_id: a.external_id.clone(),
            service: a.service.clone(),
            livemode: a.livemode,
            status: a.status.as_str().to_owned(),
            created_at: from_ms(a.created_at),
            disconnected_at: a.disconnected_at.map(from_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TargetErrorObject {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TargetObject {
    pub account_id: String,
    #[schema(example = "sandbox")]
    pub platform: String,
    /// `pending`, `publishing`, `published` or `failed`.
    pub status: &'static str,
    pub external_id: Option<String>,
    /// The post on the network: an absolute `http` or `https` URL, or `null` (not published,
    /// or the network answered none crier shows as a link).
    pub url: Option<String>,
    pub attempts: i64,
    pub error: Option<TargetErrorObject>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub published_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PostObject {
    #[schema(example = "post_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "post")]
    pub object: &'static str,
    /// `draft`, `pending_approval`, `scheduled`, `publishing`, `published`,
    /// `partially_published` or `failed`.
    #[schema(example = "draft")]
    pub status: &'static str,
    pub body: String,
    pub thread: Vec<String>,
    pub account_ids: Vec<String>,
    /// The brand the post named instead of `account_ids` (its accounts then), if it did.
    pub brand_id: Option<String>,
    pub media_ids: Vec<String>,
    #[schema(value_type = Object)]
    pub overrides: BTreeMap<String, PostOverride>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub published_at: Option<Timestamp>,
    pub livemode: bool,
    /// The last approval decision, if any.
    #[schema(value_type = Option<Object>)]
    pub review: Option<serde_json::Value>,
    pub targets: Vec<TargetObject>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<&Post> for PostObject {
    fn from(p: &Post) -> Self {
        Self {
            id: p.id.to_string(),
            object: "post",
            status: p.status.as_str(),
            body: p.body.clone(),
            thread: p.thread.clone(),
            account_ids: p.account_ids.iter().map(ToString::to_string).collect(),
            brand_id: p.brand_id.as_ref().map(ToString::to_string),
            media_ids: p.media_ids.clone(),
            overrides: p.overrides.clone(),
            scheduled_at: p.scheduled_at.map(from_ms),
            published_at: p.published_at.map(from_ms),
            livemode: p.livemode,
            review: p.review.clone(),
            targets: p
                .targets
                .iter()
                .map(|t| TargetObject {
                    account_id: t.account_id.to_string(),
                    platform: t.platform.clone(),
                    status: t.status.as_str(),
                    external_id: t.external_id.clone(),
                    url: t.url.clone(),
                    attempts: t.attempts,
                    error: t.error.as_ref().map(|e| TargetErrorObject {
                        code: e.code.clone(),
                        message: e.message.clone(),
                    }),
                    published_at: t.published_at.map(from_ms),
                })
                .collect(),
            created_at: from_ms(p.created_at),
            updated_at: from_ms(p.updated_at),
        }
    }
}

/// A media object as the API shows it (and `media.ready` carries). `url` (a short-lived signed
/// URL to read the bytes) is set by `GET` on a ready object only; `upload` by the upload-URL
/// response only.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaObject {
    #[schema(example = "med_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "media")]
    pub object: &'static str,
    /// `pending` until the upload is confirmed, then `ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    #[schema(example = "launch.png")]
    pub filename: String,
    /// As sniffed from the bytes once ready; the declared type while pending.
    #[schema(example = "image/png")]
    pub content_type: String,
    /// Bytes: declared while pending, actual once ready.
    #[schema(example = 48213)]
    pub size: u64,
    /// Hex SHA-256 of the bytes (ready only).
    pub sha256: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
    pub alt_text: Option<String>,
    pub livemode: bool,
    /// A signed URL that reads the bytes, valid for a short time (`GET` of a ready object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadObject>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ready_at: Option<Timestamp>,
}

/// How to send the bytes: `PUT url` with `headers`, without an API key, before `expires_at`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadObject {
    #[schema(example = "PUT")]
    pub method: &'static str,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

impl From<&crate::media::Media> for MediaObject {
    fn from(m: &crate::media::Media) -> Self {
        Self {
            id: m.id.to_string(),
            object: "media",
            status: m.status.as_str(),
            filename: m.filename.clone(),
            content_type: m
                .content_type
                .clone()
                .unwrap_or_else(|| m.declared_type.clone()),
            size: m.size,
            sha256: m.sha256.clone(),
            width: m.width,
            height: m.height,
            duration_ms: m.duration_ms,
            alt_text: m.alt_text.clone(),
            livemode: m.livemode,
            url: None,
            upload: None,
            created_at: from_ms(m.created_at),
            ready_at: m.ready_at.map(from_ms),
        }
    }
}

/// An agent, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentObject {
    #[schema(example = "agt_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "agent")]
    pub object: &'static str,
    #[schema(example = "Weekly tips")]
    pub name: String,
    /// The brand whose voice, knowledge and best posts it uses.
    pub brand_id: Option<String>,
    /// The accounts its posts go to.
    pub account_ids: Vec<String>,
    pub instructions: String,
    pub sources: AgentSourcesObject,
    /// Five-field cron schedule in the workspace's time zone; `null`: runs only when asked.
    #[schema(example = "0 9 * * mon-fri")]
    pub schedule: Option<String>,
    /// `draft`, `pending_approval` or `queue`.
    #[schema(example = "draft")]
    pub output: &'static str,
    /// The most posts one run makes.
    pub max_posts: i64,
    /// The most AI credits one run spends.
    pub max_credits: i64,
    pub enabled: bool,
    /// The next due time; `null` without a schedule or while disabled.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_run_at: Option<Timestamp>,
    pub livemode: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// What an agent draws on.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentSourcesObject {
    /// The knowledge base (the brand's and the workspace's).
    pub knowledge: bool,
    /// Trending topics.
    pub trending: bool,
    /// The best published posts of the brand (or the workspace).
    pub best_posts: bool,
    /// Feeds whose entries since the last run are subjects.
    pub feed_ids: Vec<String>,
}

impl From<&crate::Agent> for AgentObject {
    fn from(a: &crate::Agent) -> Self {
        let s = &a.settings;
        Self {
            id: a.id.to_string(),
            object: "agent",
            name: s.name.clone(),
            brand_id: s.brand_id.as_ref().map(ToString::to_string),
            account_ids: s.account_ids.iter().map(ToString::to_string).collect(),
            instructions: s.instructions.clone(),
            sources: AgentSourcesObject {
                knowledge: s.sources.knowledge,
                trending: s.sources.trending,
                best_posts: s.sources.best_posts,
                feed_ids: s.sources.feed_ids.iter().map(ToString::to_string).collect(),
            },
            schedule: s.schedule.clone(),
            output: s.output.as_str(),
            max_posts: s.max_posts,
            max_credits: s.max_credits,
            enabled: s.enabled,
            next_run_at: a.next_run_at.map(from_ms),
            last_run_at: a.last_run_at.map(from_ms),
            livemode: a.livemode,
            created_at: from_ms(a.created_at),
            updated_at: from_ms(a.updated_at),
        }
    }
}

/// One run of an agent: what it drew on, what it asked, what it made and spent.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentRunObject {
    #[schema(example = "arun_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "agent_run")]
    pub object: &'static str,
    pub agent_id: String,
    /// `schedule` or `manual`.
    #[schema(example = "schedule")]
    pub trigger: &'static str,
    /// The due time it ran for (or when it was asked for).
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_for: Timestamp,
    /// `queued`, `running`, `completed` or `failed`.
    #[schema(example = "completed")]
    pub status: &'static str,
    /// How many times it started (more than 1 after a worker was lost mid-run).
    pub attempts: i64,
    /// `model` or `builtin` (no model configured: the built-in engine wrote from ideas).
    pub engine: Option<String>,
    /// What it drew on: `{"source": "feed" | "trending" | "best_post" | "instructions", …}`.
    #[schema(value_type = Vec<Object>)]
    pub inputs: Vec<serde_json::Value>,
    /// What it asked the engine.
    pub prompts: Vec<String>,
    pub post_ids: Vec<String>,
    /// What a person should know: the engine used, a budget reached, posts kept as drafts.
    pub notes: Vec<String>,
    pub credits: i64,
    pub error: Option<AgentRunError>,
    pub livemode: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

/// Why a run failed: an error code of the envelope and a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentRunError {
    #[schema(example = "quota_exceeded")]
    pub code: String,
    pub message: String,
}

impl From<&crate::AgentRun> for AgentRunObject {
    fn from(r: &crate::AgentRun) -> Self {
        Self {
            id: r.id.to_string(),
            object: "agent_run",
            agent_id: r.agent_id.to_string(),
            trigger: r.trigger.as_str(),
            scheduled_for: from_ms(r.scheduled_for),
            status: r.status.as_str(),
            attempts: r.attempts,
            engine: r.engine.clone(),
            inputs: r.inputs.clone(),
            prompts: r.prompts.clone(),
            post_ids: r.post_ids.iter().map(ToString::to_string).collect(),
            notes: r.notes.clone(),
            credits: r.credits,
            error: r.error.as_ref().map(|(code, message)| AgentRunError {
                code: code.clone(),
                message: message.clone(),
            }),
            livemode: r.livemode,
            created_at: from_ms(r.created_at),
            started_at: r.started_at.map(from_ms),
            finished_at: r.finished_at.map(from_ms),
        }
    }
}
