//! Rows as the rest of crier sees them: typed ids, scope sets and epoch-millisecond times.

use crier_core::ids::{AuditId, KeyId, WorkspaceId};
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
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub request_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub revoked_at: Option<i64>,
    pub replaced_by: Option<KeyId>,
    pub created_by: Option<KeyId>,
}

/// Who did something, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An API key, through the HTTP API.
    Key(KeyId),
    /// An operator, through `crier admin`.
    Cli,
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
            _ => return Err(corrupt("audit_log.actor")),
        },
        action: row.try_get("action")?,
        target_id: row.try_get("target_id")?,
        request_id: row.try_get("request_id")?,
        details: serde_json::from_str(&details).map_err(|e| corrupt(format!("details: {e}")))?,
        created_at: row.try_get("created_at")?,
    })
}
