//! Connecting accounts through OAuth: the started connections (`state`s, single-use, bound to
//! a workspace and mode, short-lived, stored as hashes) and the OAuth clients crier registered
//! on a network's servers (once per server and redirect URI).

use crier_core::Tenant;
use sqlx::Row;

use crate::{Result, Store};

/// A started OAuth connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectState {
    /// SHA-256 of the `state`, hex.
    pub state_hash: String,
    pub tenant: Tenant,
    pub platform: String,
    pub redirect_uri: String,
    /// The server's base URL for per-instance networks, '' otherwise.
    pub instance: String,
    /// The PKCE verifier, sealed by crier-app.
    pub code_verifier: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An OAuth client crier registered on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredClient {
    pub client_id: String,
    /// Sealed by crier-app.
    pub client_secret: Option<String>,
}

/// A registered client with where it is registered: (platform, instance, redirect URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    pub at: (String, String, String),
    pub client: StoredClient,
}

impl Store {
    /// Stores a started connection, unless the workspace already has `max_open` unexpired
    /// ones in this mode (`false`). Expired ones of the workspace are deleted first.
    pub async fn insert_connect_state(&self, s: &ConnectState, max_open: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM connect_states WHERE workspace_id = $1 AND expires_at <= $2")
            .bind(s.tenant.workspace.as_str())
            .bind(s.created_at)
            .execute(&mut *tx)
            .await?;
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM connect_states WHERE workspace_id = $1 AND livemode = $2",
        )
        .bind(s.tenant.workspace.as_str())
        .bind(s.tenant.livemode as i64)
        .fetch_one(&mut *tx)
        .await?;
        if open >= max_open {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO connect_states (state_hash, workspace_id, livemode, platform,
                redirect_uri, instance, code_verifier, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&s.state_hash)
        .bind(s.tenant.workspace.as_str())
        .bind(s.tenant.livemode as i64)
        .bind(&s.platform)
        .bind(&s.redirect_uri)
        .bind(&s.instance)
        .bind(&s.code_verifier)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The tenant's unexpired connections in progress.
    pub async fn count_connect_states(&self, tenant: &Tenant, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM connect_states WHERE workspace_id = $1 AND livemode = $2
               AND expires_at > $3",
        )
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(now)
        .fetch_one(&self.read)
        .await?)
    }

    /// Takes (deletes and returns) the started connection with this state hash, if it is the
    /// tenant's, for `platform`, and unexpired at `now`. Single use: of two concurrent takes
    /// one gets it. Another workspace's or mode's state is left alone (and not found).
    pub async fn take_connect_state(
        &self,
        tenant: &Tenant,
        platform: &str,
        state_hash: &str,
        now: i64,
    ) -> Result<Option<ConnectState>> {
        let row = sqlx::query(
            "DELETE FROM connect_states WHERE state_hash = $1 AND workspace_id = $2
               AND livemode = $3 AND platform = $4 AND expires_at > $5 RETURNING *",
        )
        .bind(state_hash)
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(platform)
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(ConnectState {
            state_hash: row.try_get("state_hash")?,
            tenant: tenant.clone(),
            platform: row.try_get("platform")?,
            redirect_uri: row.try_get("redirect_uri")?,
            instance: row.try_get("instance")?,
            code_verifier: row.try_get("code_verifier")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    /// Deletes started connections that expired before `now`; returns how many.
    pub async fn purge_connect_states(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM connect_states WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn get_oauth_client(
        &self,
        platform: &str,
        instance: &str,
        redirect_uri: &str,
    ) -> Result<Option<StoredClient>> {
        let row = sqlx::query(
            "SELECT client_id, client_secret FROM oauth_clients
             WHERE platform = $1 AND instance = $2 AND redirect_uri = $3",
        )
        .bind(platform)
        .bind(instance)
        .bind(redirect_uri)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(StoredClient {
                client_id: r.try_get("client_id")?,
                client_secret: r.try_get("client_secret")?,
            })
        })
        .transpose()
    }

    /// Up to `limit` registered clients whose secret was sealed with another key than the one
    /// whose sealed values start with `current_prefix`, by (platform, instance, redirect URI)
    /// after `after`.
    pub async fn clients_sealed_otherwise(
        &self,
        current_prefix: &str,
        after: &(String, String, String),
        limit: u32,
    ) -> Result<Vec<RegisteredClient>> {
        let rows = sqlx::query(
            "SELECT platform, instance, redirect_uri, client_id, client_secret FROM oauth_clients
             WHERE client_secret IS NOT NULL
               AND SUBSTR(client_secret, 1, CAST($1 AS INTEGER)) <> $2
               AND (platform > $3 OR (platform = $3 AND (instance > $4
                    OR (instance = $4 AND redirect_uri > $5))))
             ORDER BY platform, instance, redirect_uri LIMIT $6",
        )
        .bind(current_prefix.len() as i64)
        .bind(current_prefix)
        .bind(&after.0)
        .bind(&after.1)
        .bind(&after.2)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RegisteredClient {
                    at: (
                        r.try_get("platform")?,
                        r.try_get("instance")?,
                        r.try_get("redirect_uri")?,
                    ),
                    client: StoredClient {
                        client_id: r.try_get("client_id")?,
                        client_secret: r.try_get("client_secret")?,
                    },
                })
            })
            .collect()
    }

    /// Replaces a registered client's sealed secret (re-sealed with the current key), if it is
    /// still `old`.
    pub async fn reseal_oauth_client(
        &self,
        platform: &str,
        instance: &str,
        redirect_uri: &str,
        old: &str,
        new: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE oauth_clients SET client_secret = $5
             WHERE platform = $1 AND instance = $2 AND redirect_uri = $3 AND client_secret = $4",
        )
        .bind(platform)
        .bind(instance)
        .bind(redirect_uri)
        .bind(old)
        .bind(new)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Remembers a registered client; if another request registered one for the same server and
    /// redirect URI first, that one is kept and returned.
    pub async fn put_oauth_client(
        &self,
        platform: &str,
        instance: &str,
        redirect_uri: &str,
        client: &StoredClient,
        now: i64,
    ) -> Result<StoredClient> {
        sqlx::query(
            "INSERT INTO oauth_clients (platform, instance, redirect_uri, client_id,
                client_secret, created_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (platform, instance, redirect_uri) DO NOTHING",
        )
        .bind(platform)
        .bind(instance)
        .bind(redirect_uri)
        .bind(&client.client_id)
        .bind(&client.client_secret)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(self
            .get_oauth_client(platform, instance, redirect_uri)
            .await?
            .unwrap_or_else(|| client.clone()))
    }
}
