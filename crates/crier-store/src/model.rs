//! Rows as the rest of crier sees them: typed ids, scope sets and epoch-millisecond times.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use crier_core::accounts::AccountStatus;
use crier_core::ids::{
    AccountId, AttemptId, AuditId, BrandId, JobId, KeyId, PostId, UserId, WorkspaceId,
};
use crier_core::posts::{PostStatus, TargetStatus};
use crier_core::{KeyDigest, KeyMode, ScopeSet};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub plan: String,
    pub timezone: String,
    pub require_approval: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The settings `PATCH /v1/workspace` and the operator may change; `None` leaves a field.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceChanges {
    pub timezone: Option<String>,
    pub require_approval: Option<bool>,
    pub plan: Option<String>,
}

/// An API key as stored: never the secret, only its SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: KeyId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub description: String,
    pub prefix: String,
    pub digest: KeyDigest,
    pub mode: KeyMode,
    pub scopes: ScopeSet,
    pub per_minute: u32,
    pub per_day: u32,
    /// Normalised CIDR strings.
    pub allowed_ips: Vec<String>,
    /// Normalised origin rules.
    pub allowed_origins: Vec<String>,
    /// The brands (`brd_…`) this key is limited to; with `allowed_account_ids` empty too, none.
    pub allowed_brand_ids: Vec<String>,
    /// The accounts (`acct_…`) this key is limited to, besides its brands' accounts.
    pub allowed_account_ids: Vec<String>,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub request_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub revoked_at: Option<i64>,
    pub replaced_by: Option<KeyId>,
    pub created_by: Option<KeyId>,
    /// The member (not an owner or admin) this key is bounded to: made by a member's session,
    /// device login or app, by such a key, or replacing one. It sees and manages only the keys
    /// bounded to the same member, as the member's session does. Fixed when the key is made.
    pub member_id: Option<UserId>,
}

/// Who did something, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An API key, through the HTTP API.
    Key(KeyId),
    /// An operator, through `crier admin`.
    Cli,
    /// A user, through the dashboard or a session.
    User(UserId),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: AuditId,
    pub workspace_id: WorkspaceId,
    pub actor: Actor,
    /// `key.created`, `key.updated`, `key.rotated`, `key.revoked`.
    pub action: String,
    pub target_id: String,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
    pub created_at: i64,
}

impl AuditEntry {
    pub fn new(
        workspace_id: &WorkspaceId,
        actor: Actor,
        action: &str,
        target_id: &str,
        request_id: Option<&str>,
        details: serde_json::Value,
        now: i64,
    ) -> Self {
        Self {
            id: AuditId::generate(),
            workspace_id: workspace_id.clone(),
            actor,
            action: action.to_owned(),
            target_id: target_id.to_owned(),
            request_id: request_id.map(str::to_owned),
            details,
            created_at: now,
        }
    }
}

/// Requests made with one key since the last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub key_id: KeyId,
    pub workspace_id: WorkspaceId,
    pub last_used_at: i64,
    pub requests: i64,
}

/// Requests made with one key on one UTC day since the last flush: all of them, those that
/// failed (status 400 or above, 429 excepted) and those refused by its rate limit (429).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyUsage {
    pub key_id: KeyId,
    pub workspace_id: WorkspaceId,
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub requests: i64,
    pub errors: i64,
    pub rate_limited: i64,
}

/// One authenticated request as the recent request log keeps it: no body, no query string, no
/// header; the route template, not the raw path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLogEntry {
    /// `req_…`, as in the response's `X-Request-Id`.
    pub request_id: String,
    pub workspace_id: WorkspaceId,
    /// The key, or for a session the made-up `key_…` id of its principal.
    pub key_id: KeyId,
    pub method: String,
    /// The route template (`/v1/keys/{id}`).
    pub path: String,
    pub status: i64,
    pub error_code: Option<String>,
    pub duration_ms: i64,
    /// Epoch ms, when the response left.
    pub at: i64,
}

/// One page of a list, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows.
    pub(crate) fn from_overfetch(mut items: Vec<T>, limit: u32) -> Self {
        let has_more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Self { items, has_more }
    }
}

pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

pub(crate) fn json_list(row: &AnyRow, col: &str) -> Result<Vec<String>> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| corrupt(format!("{col}: {e}")))
}

pub(crate) fn workspace_from_row(row: &AnyRow) -> Result<Workspace> {
    Ok(Workspace {
        id: WorkspaceId::from_trusted(row.try_get("id")?),
        name: row.try_get("name")?,
        plan: row.try_get("plan")?,
        timezone: row.try_get("timezone")?,
        require_approval: row.try_get::<i64, _>("require_approval")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) fn key_from_row(row: &AnyRow) -> Result<KeyRow> {
    let digest: String = row.try_get("digest")?;
    let mode: String = row.try_get("mode")?;
    let scopes: String = row.try_get("scopes")?;
    Ok(KeyRow {
        id: KeyId::from_trusted(row.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(row.try_get("workspace_id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        prefix: row.try_get("prefix")?,
        digest: KeyDigest::from_hex(&digest).ok_or_else(|| corrupt("api_keys.digest"))?,
        mode: KeyMode::parse(&mode).ok_or_else(|| corrupt("api_keys.mode"))?,
        scopes: ScopeSet::from_storage(&scopes),
        per_minute: u32::try_from(row.try_get::<i64, _>("per_minute")?)
            .map_err(|_| corrupt("api_keys.per_minute"))?,
        per_day: u32::try_from(row.try_get::<i64, _>("per_day")?)
            .map_err(|_| corrupt("api_keys.per_day"))?,
        allowed_ips: json_list(row, "allowed_ips")?,
        allowed_origins: json_list(row, "allowed_origins")?,
        allowed_brand_ids: json_list(row, "allowed_brand_ids")?,
        allowed_account_ids: json_list(row, "allowed_account_ids")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        request_count: row.try_get("request_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revoked_at: row.try_get("revoked_at")?,
        replaced_by: row
            .try_get::<Option<String>, _>("replaced_by")?
            .map(KeyId::from_trusted),
        created_by: row
            .try_get::<Option<String>, _>("created_by")?
            .map(KeyId::from_trusted),
        member_id: row
            .try_get::<Option<String>, _>("member_id")?
            .map(UserId::from_trusted),
    })
}

pub(crate) fn audit_from_row(row: &AnyRow) -> Result<AuditEntry> {
    let actor: String = row.try_get("actor")?;
    let actor_key: Option<String> = row.try_get("actor_key_id")?;
    let details: String = row.try_get("details")?;
    Ok(AuditEntry {
        id: AuditId::from_trusted(row.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(row.try_get("workspace_id")?),
        actor: match (actor.as_str(), actor_key) {
            ("key", Some(k)) => Actor::Key(KeyId::from_trusted(k)),
            ("cli", _) => Actor::Cli,
            ("user", _) => Actor::User(UserId::from_trusted(
                row.try_get::<Option<String>, _>("actor_user_id")?
                    .ok_or_else(|| corrupt("audit_log.actor_user_id"))?,
            )),
            _ => return Err(corrupt("audit_log.actor")),
        },
        action: row.try_get("action")?,
        target_id: row.try_get("target_id")?,
        request_id: row.try_get("request_id")?,
        details: serde_json::from_str(&details).map_err(|e| corrupt(format!("details: {e}")))?,
        created_at: row.try_get("created_at")?,
    })
}

/// A connected social account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub workspace_id: WorkspaceId,
    pub platform: String,
    pub handle: String,
    pub livemode: bool,
    pub status: AccountStatus,
    pub created_at: i64,
    pub disconnected_at: Option<i64>,
    /// The network's id of the account (a DID, an instance's account id; the sandbox: the
    /// handle). With `platform` and `service` it names the network account.
    pub external_id: String,
    /// The account's server (a Mastodon instance, a PDS) as a base URL; `None` for networks of
    /// one server.
    pub service: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub profile_url: Option<String>,
    /// The network credentials, sealed by crier-app (never shown, never logged).
    pub credentials: Option<String>,
    pub token_expires_at: Option<i64>,
    /// When the refresher next renews the token; `None`: never.
    pub refresh_at: Option<i64>,
    pub updated_at: i64,
}

impl Account {
    /// A connected account of `platform` known by `external_id`, without credentials (the
    /// sandbox's, or a test's).
    pub fn new(
        workspace: &WorkspaceId,
        livemode: bool,
        platform: &str,
        handle: &str,
        external_id: &str,
        now: i64,
    ) -> Self {
        Self {
            id: AccountId::generate(),
            workspace_id: workspace.clone(),
            platform: platform.to_owned(),
            handle: handle.to_owned(),
            livemode,
            status: AccountStatus::Connected,
            created_at: now,
            disconnected_at: None,
            external_id: external_id.to_owned(),
            service: None,
            display_name: None,
            avatar_url: None,
            profile_url: None,
            credentials: None,
            token_expires_at: None,
            refresh_at: None,
            updated_at: now,
        }
    }
}

/// What one account gets instead of the post's own text. A field it does not know is refused
/// (a misspelt `bodyy` would otherwise be dropped without a word).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Vec<String>>,
    /// Who sees it, where the network has that (Mastodon: `public`, `unlisted`, `private`,
    /// `direct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    /// A content warning shown before the text (Mastodon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spoiler_text: Option<String>,
    /// The text's language, ISO 639-1 (Mastodon, Bluesky `langs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Network-specific options (YouTube `title` and `privacy`, TikTok `privacy` and
    /// `allow_comments`, Instagram `first_comment`, LinkedIn `visibility`), checked against
    /// the account's network's option rules.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub code: String,
    pub message: String,
}

/// One account a post goes to, with its own outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub post_id: PostId,
    pub account_id: AccountId,
    pub platform: String,
    pub position: i64,
    pub status: TargetStatus,
    pub external_id: Option<String>,
    pub url: Option<String>,
    /// External ids of the thread parts published so far, in order.
    pub part_ids: Vec<String>,
    pub attempts: i64,
    pub error: Option<TargetError>,
    pub published_at: Option<i64>,
}

impl Target {
    /// The targets of post `post`: one per account, in order, all pending.
    pub fn pending_for<A: Borrow<Account>>(post: &PostId, accounts: &[A]) -> Vec<Self> {
        accounts
            .iter()
            .map(Borrow::borrow)
            .enumerate()
            .map(|(i, a)| Self {
                post_id: post.clone(),
                account_id: a.id.clone(),
                platform: a.platform.clone(),
                position: i as i64,
                status: TargetStatus::Pending,
                external_id: None,
                url: None,
                part_ids: Vec::new(),
                attempts: 0,
                error: None,
                published_at: None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub id: PostId,
    pub workspace_id: WorkspaceId,
    pub livemode: bool,
    pub status: PostStatus,
    pub body: String,
    pub thread: Vec<String>,
    pub account_ids: Vec<AccountId>,
    /// The brand the accounts were taken from, when the post named one instead of accounts.
    pub brand_id: Option<BrandId>,
    pub media_ids: Vec<String>,
    pub overrides: BTreeMap<String, PostOverride>,
    pub scheduled_at: Option<i64>,
    pub published_at: Option<i64>,
    /// The last review decision (`{"rejected":true,"reason":…}`), if any.
    pub review: Option<serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Bumped by every change of the post; a change decided on a read names the version it
    /// read ([`crate::Transition::version`]).
    pub version: i64,
    pub targets: Vec<Target>,
}

impl Post {
    /// A new draft with `body`, created at `now`, going to `accounts` in order: one pending
    /// target each. Callers set what else differs (status, thread, schedule) by struct update.
    pub fn draft<A: Borrow<Account>>(
        workspace_id: &WorkspaceId,
        livemode: bool,
        accounts: &[A],
        body: String,
        now: i64,
    ) -> Self {
        let id = PostId::generate();
        Self {
            targets: Target::pending_for(&id, accounts),
            account_ids: accounts.iter().map(|a| a.borrow().id.clone()).collect(),
            brand_id: None,
            id,
            workspace_id: workspace_id.clone(),
            livemode,
            status: PostStatus::Draft,
            body,
            thread: Vec::new(),
            media_ids: Vec::new(),
            overrides: BTreeMap::new(),
            scheduled_at: None,
            published_at: None,
            review: None,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// The text parts that go to `account`: its override, or the post's body and thread.
    pub fn parts_for(&self, account: &AccountId) -> Vec<String> {
        let o = self.overrides.get(account.as_str());
        let body = o
            .and_then(|o| o.body.clone())
            .unwrap_or_else(|| self.body.clone());
        let thread = o
            .and_then(|o| o.thread.clone())
            .unwrap_or_else(|| self.thread.clone());
        std::iter::once(body).chain(thread).collect()
    }
}

/// What a job does, and which worker claims it. Stored as its [`JobKind::as_str`] text in
/// `jobs.kind`; a claim names one kind, so a worker only ever sees its own jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Publish one target of a post (`post_id`, `account_id`).
    Publish,
    /// Deliver one webhook delivery (`ref_id`).
    Webhook,
    /// Run one agent run (`ref_id`).
    AgentRun,
    /// Run one clip job (`ref_id`).
    Clip,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Publish => "publish",
            JobKind::Webhook => "webhook",
            JobKind::AgentRun => "agent_run",
            JobKind::Clip => "clip",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "publish" => Some(JobKind::Publish),
            "webhook" => Some(JobKind::Webhook),
            "agent_run" => Some(JobKind::AgentRun),
            "clip" => Some(JobKind::Clip),
            _ => None,
        }
    }
}

/// A job in the durable queue, as claimed by a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub workspace_id: WorkspaceId,
    pub post_id: Option<PostId>,
    pub account_id: Option<AccountId>,
    pub run_at: i64,
    pub locked_until: i64,
}

/// How a recorded call to a network went, stored as its [`PublishAttemptOutcome::as_str`]
/// text in `publish_attempts.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublishAttemptOutcome {
    /// `in_flight`: recorded before the call goes out.
    InFlight,
    Published,
    Failed,
    /// The call's result was lost: a timeout or a crash.
    Unknown,
    /// Asking the network whether an earlier call landed failed.
    LookupFailed,
    /// The network refused the call (or the look-up) as too many (a 429, or a network's own
    /// code for it) and asked for time. It does not use up the retry budget (the target gives
    /// up a day after its first try, see the publisher). Like any call on record, it may
    /// still have landed in part (a multi-step upload): the next try looks it up first.
    RateLimited,
    /// No call but a marker (part -1): a client's retry of a failed target started a new
    /// round of attempts there.
    Retry,
}

impl PublishAttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InFlight => "in_flight",
            Self::Published => "published",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::LookupFailed => "lookup_failed",
            Self::RateLimited => "rate_limited",
            Self::Retry => "retry",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::InFlight,
            Self::Published,
            Self::Failed,
            Self::Unknown,
            Self::LookupFailed,
            Self::RateLimited,
            Self::Retry,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One recorded call to a network (or a `retry` marker), with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: AttemptId,
    pub post_id: PostId,
    pub account_id: AccountId,
    pub part: i64,
    pub idem_key: String,
    pub outcome: PublishAttemptOutcome,
    pub error: Option<String>,
    pub external_id: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// Filters of `GET /v1/posts`.
#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    pub status: Option<PostStatus>,
    pub account_id: Option<AccountId>,
    /// Scheduled (or, once published, published) at or after this time.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub livemode: Option<bool>,
    /// Only posts whose every target is one of these accounts (what a limited key reaches).
    pub within: Option<Vec<AccountId>>,
}

/// Metrics of one published target, as last collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Metrics {
    pub likes: i64,
    pub reposts: i64,
    pub replies: i64,
    pub impressions: i64,
}

pub(crate) fn json_text<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| corrupt(format!("{col}: {e}")))
}

pub(crate) fn account_from_row(row: &AnyRow) -> Result<Account> {
    let status: String = row.try_get("status")?;
    Ok(Account {
        id: AccountId::from_trusted(row.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(row.try_get("workspace_id")?),
        platform: row.try_get("platform")?,
        handle: row.try_get("handle")?,
        livemode: row.try_get::<i64, _>("livemode")? != 0,
        status: AccountStatus::parse(&status).ok_or_else(|| corrupt("accounts.status"))?,
        created_at: row.try_get("created_at")?,
        disconnected_at: row.try_get("disconnected_at")?,
        external_id: row.try_get("external_id")?,
        service: Some(row.try_get::<String, _>("service")?).filter(|s| !s.is_empty()),
        display_name: row.try_get("display_name")?,
        avatar_url: row.try_get("avatar_url")?,
        profile_url: row.try_get("profile_url")?,
        credentials: row.try_get("credentials")?,
        token_expires_at: row.try_get("token_expires_at")?,
        refresh_at: row.try_get("refresh_at")?,
        updated_at: row
            .try_get::<Option<i64>, _>("updated_at")?
            .unwrap_or_default(),
    })
}

pub(crate) fn target_from_row(row: &AnyRow) -> Result<Target> {
    let status: String = row.try_get("status")?;
    let code: Option<String> = row.try_get("error_code")?;
    let message: Option<String> = row.try_get("error_message")?;
    Ok(Target {
        post_id: PostId::from_trusted(row.try_get("post_id")?),
        account_id: AccountId::from_trusted(row.try_get("account_id")?),
        platform: row.try_get("platform")?,
        position: row.try_get("position")?,
        status: TargetStatus::parse(&status).ok_or_else(|| corrupt("post_targets.status"))?,
        external_id: row.try_get("external_id")?,
        url: row.try_get("url")?,
        part_ids: json_text(row, "part_ids")?,
        attempts: row.try_get("attempts")?,
        error: code.map(|code| TargetError {
            code,
            message: message.unwrap_or_default(),
        }),
        published_at: row.try_get("published_at")?,
    })
}

pub(crate) fn post_from_row(row: &AnyRow) -> Result<Post> {
    let status: String = row.try_get("status")?;
    let review: Option<String> = row.try_get("review")?;
    let account_ids: Vec<String> = json_text(row, "account_ids")?;
    Ok(Post {
        id: PostId::from_trusted(row.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(row.try_get("workspace_id")?),
        livemode: row.try_get::<i64, _>("livemode")? != 0,
        status: PostStatus::parse(&status).ok_or_else(|| corrupt("posts.status"))?,
        body: row.try_get("body")?,
        thread: json_text(row, "thread")?,
        account_ids: account_ids
            .into_iter()
            .map(AccountId::from_trusted)
            .collect(),
        brand_id: row
            .try_get::<Option<String>, _>("brand_id")?
            .map(BrandId::from_trusted),
        media_ids: json_text(row, "media_ids")?,
        overrides: json_text(row, "overrides")?,
        scheduled_at: row.try_get("scheduled_at")?,
        published_at: row.try_get("published_at")?,
        review: review
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| corrupt(format!("review: {e}")))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
        targets: Vec::new(),
    })
}

pub(crate) fn job_from_row(row: &AnyRow) -> Result<Job> {
    let kind: String = row.try_get("kind")?;
    Ok(Job {
        id: JobId::from_trusted(row.try_get("id")?),
        kind: JobKind::parse(&kind).ok_or_else(|| corrupt("jobs.kind"))?,
        workspace_id: WorkspaceId::from_trusted(row.try_get("workspace_id")?),
        post_id: row
            .try_get::<Option<String>, _>("post_id")?
            .map(PostId::from_trusted),
        account_id: row
            .try_get::<Option<String>, _>("account_id")?
            .map(AccountId::from_trusted),
        run_at: row.try_get("run_at")?,
        locked_until: row.try_get("locked_until")?,
    })
}

pub(crate) fn attempt_from_row(row: &AnyRow) -> Result<Attempt> {
    let outcome: String = row.try_get("outcome")?;
    Ok(Attempt {
        id: AttemptId::from_trusted(row.try_get("id")?),
        post_id: PostId::from_trusted(row.try_get("post_id")?),
        account_id: AccountId::from_trusted(row.try_get("account_id")?),
        part: row.try_get("part")?,
        idem_key: row.try_get("idem_key")?,
        outcome: PublishAttemptOutcome::parse(&outcome)
            .ok_or_else(|| corrupt("publish_attempts.outcome"))?,
        error: row.try_get("error")?,
        external_id: row.try_get("external_id")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}
