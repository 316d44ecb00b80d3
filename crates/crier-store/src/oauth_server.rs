//! OAuth 2.1 storage: clients, authorization codes, grants and their refresh tokens (see the
//! rules in `crier_app::oauth_server` and the migration `0019_oauth_server`).
//!
//! A grant's access token is the secret of an ordinary API key, marked with the grant's client
//! (`api_keys.app_client_id`), so authentication, scopes, rate limits, usage and revocation
//! on every node are the keys' own. A refresh replaces that key's secret (the old one stops
//! working on every node at once, through the key-change notification) and its refresh token,
//! in one transaction conditional on the refresh token being unused and the grant alive. Every
//! state change here is conditional on the state it expects: a code is redeemed once, a
//! refresh token used once, and a replay of either ends the grant it yielded.

use crier_core::ids::{KeyId, UserId, WorkspaceId};
use crier_core::{KeyDigest, Role, ScopeSet};
use sqlx::Row;

use crate::events::types;
use crate::keys::{emit_key_event, insert_audit, insert_key_tx};
use crate::model::{AuditEntry, KeyRow};
use crate::{Result, Store, StoreError, Tx, json};

/// Used refresh tokens kept per grant to recognise replays (older ones are forgotten).
pub const KEPT_REFRESH_TOKENS: i64 = 20;

/// How a client identified itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Dynamic client registration (RFC 7591): an `occ_…` id.
    Registered,
    /// A client ID metadata document: the id is the document's URL.
    Metadata,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Metadata => "metadata",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppClient {
    pub id: String,
    pub kind: ClientKind,
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_post` or `client_secret_basic`.
    pub auth_method: String,
    pub secret_digest: Option<KeyDigest>,
    pub created_at: i64,
    pub used_at: i64,
    /// When its metadata document was last read (metadata clients).
    pub fetched_at: Option<i64>,
}

/// An authorization code as stored (by digest).
#[derive(Debug, Clone)]
pub struct AppCode {
    pub client_id: String,
    pub user_id: UserId,
    pub workspace_id: WorkspaceId,
    pub scopes: ScopeSet,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The grant it was exchanged for.
    pub key_id: Option<KeyId>,
}

/// A grant, with what the settings page shows of its client and key.
#[derive(Debug, Clone)]
pub struct AppGrant {
    pub key_id: KeyId,
    pub workspace_id: WorkspaceId,
    pub client_id: String,
    pub client_name: String,
    pub user_id: UserId,
    pub resource: String,
    pub scopes: ScopeSet,
    pub created_at: i64,
    pub refreshed_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A grant about to be made from a redeemed code.
#[derive(Debug, Clone)]
pub struct NewGrant<'a> {
    pub key: &'a KeyRow,
    pub client_id: &'a str,
    pub user_id: &'a UserId,
    /// The role of the user in the key's workspace that the grant's scopes were checked
    /// against: the grant is recorded only while it is still theirs.
    pub role: Role,
    pub resource: &'a str,
    pub expires_at: i64,
    pub refresh_digest: KeyDigest,
}

/// What redeeming an authorization code (or a device login) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeemed {
    /// The grant (or the device's key) and what goes with it are stored.
    Granted,
    /// The code is used, expired or unknown (another exchange of it won): nothing stored.
    CodeTaken,
    /// The user who approved it is no longer a member of the workspace with the role the
    /// grant was checked against: nothing stored.
    NoLongerGranted,
}

/// What a refresh found.
#[derive(Debug)]
pub enum Refreshed {
    /// The key now carries the new secret; the new refresh token is live.
    Rotated(Box<KeyRow>),
    /// The token was used before: a replay. The grant is now revoked.
    Replayed(KeyId),
    /// No such token, or its grant is revoked or has run out.
    Unknown,
}

/// A refresh token as stored.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub key_id: KeyId,
    pub used_at: Option<i64>,
}

const GRANT_COLUMNS: &str = "g.key_id, g.workspace_id, g.client_id, g.user_id, g.resource, \
    g.created_at, g.refreshed_at, g.expires_at, g.revoked_at, k.scopes, k.last_used_at, \
    COALESCE(c.name, g.client_id) AS client_name";
const GRANT_FROM: &str = "app_grants g JOIN api_keys k ON k.id = g.key_id \
    LEFT JOIN app_clients c ON c.id = g.client_id";

fn client_from_row(r: &sqlx::any::AnyRow) -> Result<AppClient> {
    let kind: String = r.try_get("kind")?;
    let uris: String = r.try_get("redirect_uris")?;
    let secret: Option<String> = r.try_get("secret_digest")?;
    Ok(AppClient {
        id: r.try_get("id")?,
        kind: match kind.as_str() {
            "metadata" => ClientKind::Metadata,
            _ => ClientKind::Registered,
        },
        name: r.try_get("name")?,
        redirect_uris: serde_json::from_str(&uris)
            .map_err(|e| StoreError::Corrupt(format!("app_clients.redirect_uris: {e}")))?,
        auth_method: r.try_get("auth_method")?,
        secret_digest: secret
            .map(|s| {
                KeyDigest::from_hex(&s)
                    .ok_or_else(|| StoreError::Corrupt("app_clients.secret_digest".into()))
            })
            .transpose()?,
        created_at: r.try_get("created_at")?,
        used_at: r.try_get("used_at")?,
        fetched_at: r.try_get("fetched_at")?,
    })
}

fn scopes_of(stored: &str) -> ScopeSet {
    ScopeSet::from_storage(stored)
}

fn grant_from_row(r: &sqlx::any::AnyRow) -> Result<AppGrant> {
    let key: String = r.try_get("key_id")?;
    let ws: String = r.try_get("workspace_id")?;
    let user: String = r.try_get("user_id")?;
    let scopes: String = r.try_get("scopes")?;
    Ok(AppGrant {
        key_id: KeyId::from_trusted(key),
        workspace_id: WorkspaceId::from_trusted(ws),
        client_id: r.try_get("client_id")?,
        client_name: r.try_get("client_name")?,
        user_id: UserId::from_trusted(user),
        resource: r.try_get("resource")?,
        scopes: scopes_of(&scopes),
        created_at: r.try_get("created_at")?,
        refreshed_at: r.try_get("refreshed_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

impl Store {
    /// Stores a new client, or (a metadata document read again) replaces what was kept of it.
    pub async fn put_app_client(&self, c: &AppClient) -> Result<()> {
        sqlx::query(
            "INSERT INTO app_clients (id, kind, name, redirect_uris, auth_method, secret_digest,
                created_at, used_at, fetched_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                redirect_uris = excluded.redirect_uris, fetched_at = excluded.fetched_at",
        )
        .bind(&c.id)
        .bind(c.kind.as_str())
        .bind(&c.name)
        .bind(json(&c.redirect_uris))
        .bind(&c.auth_method)
        .bind(c.secret_digest.map(|d| d.to_hex()))
        .bind(c.created_at)
        .bind(c.used_at)
        .bind(c.fetched_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn app_client(&self, id: &str) -> Result<Option<AppClient>> {
        let row = sqlx::query("SELECT * FROM app_clients WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    /// How many clients are kept (registrations are bounded by it).
    pub async fn count_app_clients(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM app_clients")
            .fetch_one(&self.read)
            .await?)
    }

    /// Codes issued and not yet expired: across the install, and of `user`.
    pub async fn count_open_app_codes(&self, user: &UserId, now: i64) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN user_id = $2 THEN 1 ELSE 0 END), 0) AS mine
             FROM app_codes WHERE expires_at > $1",
        )
        .bind(now)
        .bind(user.as_str())
        .fetch_one(&self.read)
        .await?;
        Ok((row.try_get("n")?, row.try_get("mine")?))
    }

    /// Forgets registered clients that never got a code and were registered before `before`
    /// (registrations nobody used: the bulk of what an attacker registering in a loop leaves).
    pub async fn purge_unused_app_clients(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM app_clients WHERE kind = 'registered' AND created_at < $1
               AND NOT EXISTS (SELECT 1 FROM app_codes c WHERE c.client_id = app_clients.id)
               AND NOT EXISTS (SELECT 1 FROM app_grants g WHERE g.client_id = app_clients.id)",
        )
        .bind(before)
        .execute(&self.write)
        .await?
        .rows_affected())
    }

    /// Forgets the oldest client, of either kind, that has no code and no grant (registered or
    /// read, never used): what makes room at the cap. Returns whether one went.
    pub async fn make_room_for_app_client(&self) -> Result<bool> {
        let gone = sqlx::query(
            "DELETE FROM app_clients WHERE id IN (
                SELECT id FROM app_clients a
                 WHERE NOT EXISTS (SELECT 1 FROM app_codes c WHERE c.client_id = a.id)
                   AND NOT EXISTS (SELECT 1 FROM app_grants g WHERE g.client_id = a.id)
                 ORDER BY created_at, id LIMIT 1)",
        )
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(gone > 0)
    }

    /// Stores an authorization code (by digest) and marks its client used.
    pub async fn insert_app_code(&self, digest: &KeyDigest, c: &AppCode) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO app_codes (digest, client_id, user_id, workspace_id, scopes,
                redirect_uri, code_challenge, resource, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(digest.to_hex())
        .bind(&c.client_id)
        .bind(c.user_id.as_str())
        .bind(c.workspace_id.as_str())
        .bind(c.scopes.to_storage())
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(&c.resource)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&mut *tx)
        .await?;
        touch_client(&mut tx, &c.client_id, c.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The code with this digest, whatever its state.
    pub async fn app_code(&self, digest: &KeyDigest) -> Result<Option<AppCode>> {
        let row = sqlx::query("SELECT * FROM app_codes WHERE digest = $1")
            .bind(digest.to_hex())
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| {
            let user: String = r.try_get("user_id")?;
            let ws: String = r.try_get("workspace_id")?;
            let scopes: String = r.try_get("scopes")?;
            let key: Option<String> = r.try_get("key_id")?;
            Ok(AppCode {
                client_id: r.try_get("client_id")?,
                user_id: UserId::from_trusted(user),
                workspace_id: WorkspaceId::from_trusted(ws),
                scopes: scopes_of(&scopes),
                redirect_uri: r.try_get("redirect_uri")?,
                code_challenge: r.try_get("code_challenge")?,
                resource: r.try_get("resource")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                used_at: r.try_get("used_at")?,
                key_id: key.map(KeyId::from_trusted),
            })
        })
        .transpose()
    }

    /// Redeems the code with `digest` for a new grant: marks the code used (only if it is
    /// unused and unexpired), stores the grant's key, the grant, its refresh token and the
    /// audit entry, in one transaction. `false`, and nothing written, when the code was used
    /// or ran out meanwhile.
    pub async fn redeem_app_code(
        &self,
        digest: &KeyDigest,
        grant: &NewGrant<'_>,
        audit: &AuditEntry,
        now: i64,
    ) -> Result<Redeemed> {
        let key = grant.key;
        let mut tx = self.begin().await?;
        let won = sqlx::query(
            "UPDATE app_codes SET used_at = $2, key_id = $3
             WHERE digest = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(digest.to_hex())
        .bind(now)
        .bind(key.id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !won {
            tx.rollback().await?;
            return Ok(Redeemed::CodeTaken);
        }
        // The grant acts for its user, so it is recorded only while they are a member with the
        // role it was checked against (`still_member_tx`).
        if !crate::users::still_member_tx(
            self,
            &mut tx,
            &key.workspace_id,
            grant.user_id,
            grant.role,
        )
        .await?
        {
            tx.rollback().await?;
            return Ok(Redeemed::NoLongerGranted);
        }
        insert_key_tx(&mut tx, key).await?;
        sqlx::query("UPDATE api_keys SET app_client_id = $2 WHERE id = $1")
            .bind(key.id.as_str())
            .bind(grant.client_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO app_grants (key_id, workspace_id, client_id, user_id, resource,
                created_at, refreshed_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
        )
        .bind(key.id.as_str())
        .bind(key.workspace_id.as_str())
        .bind(grant.client_id)
        .bind(grant.user_id.as_str())
        .bind(grant.resource)
        .bind(now)
        .bind(grant.expires_at)
        .execute(&mut *tx)
        .await?;
        insert_refresh(&mut tx, &grant.refresh_digest, &key.id, now).await?;
        touch_client(&mut tx, grant.client_id, now).await?;
        insert_audit(&mut tx, audit).await?;
        emit_key_event(&mut tx, key, types::KEY_CREATED).await?;
        tx.commit().await?;
        Ok(Redeemed::Granted)
    }

    /// The refresh token with this digest, whatever its state.
    pub async fn app_refresh_token(&self, digest: &KeyDigest) -> Result<Option<RefreshToken>> {
        let row = sqlx::query("SELECT key_id, used_at FROM app_refresh_tokens WHERE digest = $1")
            .bind(digest.to_hex())
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| {
            let key: String = r.try_get("key_id")?;
            Ok(RefreshToken {
                key_id: KeyId::from_trusted(key),
                used_at: r.try_get("used_at")?,
            })
        })
        .transpose()
    }

    /// A grant by its key, whatever its state.
    pub async fn app_grant(&self, key: &KeyId) -> Result<Option<AppGrant>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM {GRANT_FROM} WHERE g.key_id = $1"
        )))
        .bind(key.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(grant_from_row).transpose()
    }

    /// The live grants of a workspace (of one user when `user` is given), newest first.
    pub async fn list_app_grants(
        &self,
        ws: &WorkspaceId,
        user: Option<&UserId>,
        now: i64,
    ) -> Result<Vec<AppGrant>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM {GRANT_FROM}
             WHERE g.workspace_id = $1 AND ($2 IS NULL OR g.user_id = $2)
               AND g.revoked_at IS NULL AND g.expires_at > $3
             ORDER BY g.key_id DESC LIMIT 1000"
        )))
        .bind(ws.as_str())
        .bind(user.map(UserId::as_str))
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// A refresh: uses the refresh token with `digest` (only if unused), and if its grant is
    /// alive gives the grant's key the new secret (`new_digest`, `new_prefix`) until
    /// `access_expires_at`, extends the grant to `grant_expires_at` and stores the next
    /// refresh token, in one transaction. A token used before is a replay: the grant is
    /// revoked (in its own transaction, which commits) and [`Refreshed::Replayed`] returned.
    #[allow(clippy::too_many_arguments)]
    pub async fn refresh_app_grant(
        &self,
        digest: &KeyDigest,
        new_digest: &KeyDigest,
        new_prefix: &str,
        next_refresh: &KeyDigest,
        access_expires_at: i64,
        grant_expires_at: i64,
        now: i64,
    ) -> Result<Refreshed> {
        let mut tx = self.begin().await?;
        let key: Option<String> = sqlx::query_scalar(
            "UPDATE app_refresh_tokens SET used_at = $2
             WHERE digest = $1 AND used_at IS NULL RETURNING key_id",
        )
        .bind(digest.to_hex())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(key) = key else {
            tx.rollback().await?;
            return Ok(match self.app_refresh_token(digest).await? {
                Some(t) => {
                    self.revoke_app_grant(None, &t.key_id, now, None).await?;
                    Refreshed::Replayed(t.key_id)
                }
                None => Refreshed::Unknown,
            });
        };
        let alive = sqlx::query(
            "UPDATE app_grants SET refreshed_at = $2, expires_at = $3
             WHERE key_id = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(&key)
        .bind(now)
        .bind(grant_expires_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let old: Option<String> = match alive {
            true => {
                sqlx::query_scalar(
                    "SELECT digest FROM api_keys WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?
            }
            false => None,
        };
        let Some(old) = old.and_then(|h| KeyDigest::from_hex(&h)) else {
            tx.rollback().await?;
            return Ok(Refreshed::Unknown);
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE api_keys SET digest = $2, prefix = $3, expires_at = $4, updated_at = $5
             WHERE id = $1 AND revoked_at IS NULL RETURNING {}",
            crate::keys::COLUMNS
        )))
        .bind(&key)
        .bind(new_digest.to_hex())
        .bind(new_prefix)
        .bind(access_expires_at)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let key_id = KeyId::from_trusted(key);
        insert_refresh(&mut tx, next_refresh, &key_id, now).await?;
        // The last few used tokens stay, to recognise their replay; older ones go.
        sqlx::query(
            "DELETE FROM app_refresh_tokens WHERE key_id = $1 AND used_at IS NOT NULL
               AND digest NOT IN (SELECT digest FROM app_refresh_tokens WHERE key_id = $1
                                  ORDER BY created_at DESC LIMIT $2)",
        )
        .bind(key_id.as_str())
        .bind(KEPT_REFRESH_TOKENS)
        .execute(&mut *tx)
        .await?;
        self.notify_key_change(&mut tx, &old).await?;
        tx.commit().await?;
        self.key_changed(&old);
        Ok(Refreshed::Rotated(Box::new(crate::model::key_from_row(
            &row,
        )?)))
    }

    /// Revokes a grant (in `ws` when given): the grant, its key (refused on every node at
    /// once) and its refresh tokens. `false` when there was no live grant.
    pub async fn revoke_app_grant(
        &self,
        ws: Option<&WorkspaceId>,
        key: &KeyId,
        now: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let Some(digests) = revoke_grant_tx(self, &mut tx, ws, key, now).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        if let Some(a) = audit {
            insert_audit(&mut tx, a).await?;
        }
        notify_all(self, &mut tx, &digests).await?;
        tx.commit().await?;
        for d in &digests {
            self.key_changed(d);
        }
        Ok(true)
    }

    /// Forgets what no longer matters: codes a day past their expiry, refresh tokens of ended
    /// grants, registrations a day old that never got a code, and clients unused since
    /// `unused_before` with no live grant. Returns how many
    /// rows went.
    pub async fn purge_oauth_server(&self, now: i64, unused_before: i64) -> Result<u64> {
        let codes = sqlx::query("DELETE FROM app_codes WHERE expires_at < $1")
            .bind(now - 86_400_000)
            .execute(&self.write)
            .await?
            .rows_affected();
        let tokens = sqlx::query(
            "DELETE FROM app_refresh_tokens WHERE key_id IN (
                SELECT key_id FROM app_grants WHERE revoked_at IS NOT NULL OR expires_at <= $1)",
        )
        .bind(now)
        .execute(&self.write)
        .await?
        .rows_affected();
        let never_used = self.purge_unused_app_clients(now - 86_400_000).await?;
        let clients = sqlx::query(
            "DELETE FROM app_clients WHERE used_at < $1 AND NOT EXISTS (
                SELECT 1 FROM app_grants g WHERE g.client_id = app_clients.id
                  AND g.revoked_at IS NULL AND g.expires_at > $2)",
        )
        .bind(unused_before)
        .bind(now)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(codes + tokens + never_used + clients)
    }
}

async fn touch_client(tx: &mut Tx, id: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE app_clients SET used_at = $2 WHERE id = $1 AND used_at < $2")
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_refresh(tx: &mut Tx, digest: &KeyDigest, key: &KeyId, now: i64) -> Result<()> {
    sqlx::query("INSERT INTO app_refresh_tokens (digest, key_id, created_at) VALUES ($1, $2, $3)")
        .bind(digest.to_hex())
        .bind(key.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Revokes a live grant in `tx`: `None` when there was none; else the digests of the keys it
/// revoked (the grant's, and those the app made with it), whose changes the caller records
/// ([`notify_all`]).
async fn revoke_grant_tx(
    store: &Store,
    tx: &mut Tx,
    ws: Option<&WorkspaceId>,
    key: &KeyId,
    now: i64,
) -> Result<Option<Vec<KeyDigest>>> {
    let done = sqlx::query(
        "UPDATE app_grants SET revoked_at = $3
         WHERE key_id = $1 AND ($2 IS NULL OR workspace_id = $2) AND revoked_at IS NULL",
    )
    .bind(key.as_str())
    .bind(ws.map(WorkspaceId::as_str))
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if !done {
        return Ok(None);
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE api_keys SET revoked_at = $2, updated_at = $2
         WHERE id = $1 AND revoked_at IS NULL RETURNING {}",
        crate::keys::COLUMNS
    )))
    .bind(key.as_str())
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    let mut digests = Vec::new();
    if let Some(row) = row {
        let stored = crate::model::key_from_row(&row)?;
        emit_key_event(tx, &stored, types::KEY_REVOKED).await?;
        digests.push(stored.digest);
    }
    sqlx::query("DELETE FROM app_refresh_tokens WHERE key_id = $1")
        .bind(key.as_str())
        .execute(&mut **tx)
        .await?;
    // Keys the app made with the grant (it held keys:write) end with it.
    digests.extend(revoke_descendants_tx(store, tx, &[key.as_str()], now).await?);
    Ok(Some(digests))
}

/// Ends, within `tx`, what acts for `user` in `ws` in person, when they leave it or their
/// role is lowered (in the transaction that changes their membership, so the two cannot part):
/// every live grant they made, and every key of theirs (`api_keys.user_id`: a device login's),
/// each with its line of descent. Returns the digests of the keys it revoked.
pub(crate) async fn revoke_member_access_tx(
    store: &Store,
    tx: &mut Tx,
    ws: &WorkspaceId,
    user: &UserId,
    now: i64,
) -> Result<Vec<KeyDigest>> {
    let grants: Vec<String> = sqlx::query_scalar(
        "SELECT key_id FROM app_grants
         WHERE workspace_id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(ws.as_str())
    .bind(user.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let mut digests = Vec::new();
    for key in grants {
        if let Some(d) =
            revoke_grant_tx(store, tx, Some(ws), &KeyId::from_trusted(key), now).await?
        {
            digests.extend(d);
        }
    }
    let revoke_theirs = format!(
        "UPDATE api_keys SET revoked_at = $3, updated_at = $3
         WHERE workspace_id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING {}",
        crate::keys::COLUMNS
    );
    // Twice: a rotation of one of their keys that committed while the first waited for its
    // row made a replacement the first statement did not see; the second does.
    for _ in 0..2 {
        let rows = sqlx::query(sqlx::AssertSqlSafe(revoke_theirs.clone()))
            .bind(ws.as_str())
            .bind(user.as_str())
            .bind(now)
            .fetch_all(&mut **tx)
            .await?;
        for row in &rows {
            let stored = crate::model::key_from_row(row)?;
            emit_key_event(tx, &stored, types::KEY_REVOKED).await?;
            digests.push(stored.digest);
        }
    }
    // What their keys made ends too, as with a grant; from their keys revoked earlier (by
    // hand, or at an earlier removal) as well.
    let theirs: Vec<String> =
        sqlx::query_scalar("SELECT id FROM api_keys WHERE workspace_id = $1 AND user_id = $2")
            .bind(ws.as_str())
            .bind(user.as_str())
            .fetch_all(&mut **tx)
            .await?;
    let theirs: Vec<&str> = theirs.iter().map(String::as_str).collect();
    digests.extend(revoke_descendants_tx(store, tx, &theirs, now).await?);
    notify_all(store, tx, &digests).await?;
    Ok(digests)
}

/// Records each key change of a transaction, last: the change counter is one row every key
/// change takes, so taking it after the transaction's key rows keeps the order of locks the
/// same as a single key's revocation (its row, then the counter), and two cannot deadlock.
async fn notify_all(store: &Store, tx: &mut Tx, digests: &[KeyDigest]) -> Result<()> {
    for d in digests {
        store.notify_key_change(tx, d).await?;
    }
    Ok(())
}

/// Revokes every key made from one of `roots` or replacing one (the roots' own revocation is
/// the caller's): a key with `keys:write` makes keys, and the replacement of a key in the
/// line (`replaced_by`, whoever rotated it) is in the line; a replacement is not in the line
/// of the key that rotated it (an admin's CLI rotating the workspace's key does not make the
/// new one theirs). The whole line of descent, through keys already revoked too. Passes are
/// repeated until one revokes nothing: a pass sees the keys committed when it began, and one
/// made meanwhile under a key it then revoked (its maker's check waited for that) is found by
/// the next. Emits `key.revoked` for each key it revokes and returns their digests; the caller records the changes
/// ([`notify_all`]).
async fn revoke_descendants_tx(
    store: &Store,
    tx: &mut Tx,
    roots: &[&str],
    now: i64,
) -> Result<Vec<KeyDigest>> {
    let mut digests = Vec::new();
    if roots.is_empty() {
        return Ok(digests);
    }
    let sql = format!(
        "WITH RECURSIVE made(id) AS (
             SELECT id FROM api_keys WHERE {}
             UNION
             SELECT k.id FROM made m JOIN api_keys p ON p.id = m.id
             JOIN api_keys k ON k.id = p.replaced_by
                 OR (k.created_by = m.id AND NOT EXISTS (
                     SELECT 1 FROM api_keys o WHERE o.replaced_by = k.id))
         )
         UPDATE api_keys SET revoked_at = $2, updated_at = $2
         WHERE id IN (SELECT id FROM made) AND revoked_at IS NULL
         RETURNING {}",
        store.in_json_list("id", "$1"),
        crate::keys::COLUMNS
    );
    let roots = serde_json::to_string(roots).expect("strings serialise");
    loop {
        let made = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(&roots)
            .bind(now)
            .fetch_all(&mut **tx)
            .await?;
        if made.is_empty() {
            return Ok(digests);
        }
        // Each one's end is announced, as a key revoked by hand is.
        for row in &made {
            let stored = crate::model::key_from_row(row)?;
            emit_key_event(tx, &stored, types::KEY_REVOKED).await?;
            digests.push(stored.digest);
        }
    }
}
