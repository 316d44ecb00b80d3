//! Connected social accounts of a workspace, each of one mode (`livemode`).
//!
//! An account's status moves only `connected` → `disconnected` (or `expired`); a disconnect
//! is conditional on the account still being connected, and its `account.disconnected` event
//! commits with it. Each mode counts its own connected accounts against the plan's limit.

use std::collections::HashMap;

use crier_core::Tenant;
use crier_core::accounts::AccountStatus;
use crier_core::ids::{AccountId, WorkspaceId};

use crate::events::{emit, types};
use crate::model::*;
use crate::views::AccountObject;
use crate::{Result, Store};

impl Store {
    /// Connects a network account: a new row, or, when the workspace already has this network
    /// account in this mode (same platform, service and external id), that row updated and
    /// connected again, keeping its id. Returns the row as stored.
    pub async fn connect_account(&self, a: &Account) -> Result<Account> {
        let row = sqlx::query(
            "INSERT INTO accounts (id, workspace_id, platform, handle, livemode, status,
                created_at, disconnected_at, external_id, service, display_name, avatar_url,
                profile_url, credentials, token_expires_at, refresh_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (workspace_id, livemode, platform, service, external_id) DO UPDATE SET
                handle = excluded.handle, status = excluded.status, disconnected_at = NULL,
                display_name = excluded.display_name, avatar_url = excluded.avatar_url,
                profile_url = excluded.profile_url, credentials = excluded.credentials,
                token_expires_at = excluded.token_expires_at, refresh_at = excluded.refresh_at,
                updated_at = excluded.updated_at
             RETURNING *",
        )
        .bind(a.id.as_str())
        .bind(a.workspace_id.as_str())
        .bind(&a.platform)
        .bind(&a.handle)
        .bind(a.livemode as i64)
        .bind(a.status.as_str())
        .bind(a.created_at)
        .bind(a.disconnected_at)
        .bind(&a.external_id)
        .bind(a.service.as_deref().unwrap_or(""))
        .bind(&a.display_name)
        .bind(&a.avatar_url)
        .bind(&a.profile_url)
        .bind(&a.credentials)
        .bind(a.token_expires_at)
        .bind(a.refresh_at)
        .bind(a.updated_at)
        .fetch_one(&self.write)
        .await?;
        account_from_row(&row)
    }

    /// The most recently changed account holding credentials, if any (to check at start that
    /// this server's keys open what is stored).
    pub async fn any_sealed_account(&self) -> Result<Option<Account>> {
        let row = sqlx::query(
            "SELECT * FROM accounts WHERE credentials IS NOT NULL
             ORDER BY updated_at DESC LIMIT 1",
        )
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// Accounts whose credentials were sealed with another key than the one whose sealed values
    /// start with `current_prefix` (after a key rotation), by id after `after`, at most `limit`.
    pub async fn accounts_sealed_otherwise(
        &self,
        current_prefix: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<Account>> {
        let rows = sqlx::query(
            "SELECT * FROM accounts WHERE credentials IS NOT NULL AND id > $3
               AND SUBSTR(credentials, 1, CAST($1 AS INTEGER)) <> $2 ORDER BY id LIMIT $4",
        )
        .bind(current_prefix.len() as i64)
        .bind(current_prefix)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(account_from_row).collect()
    }

    /// Replaces an account's sealed credentials with the same ones sealed again, if they are
    /// still `old`.
    pub async fn reseal_account(&self, id: &AccountId, old: &str, new: &str) -> Result<bool> {
        let done =
            sqlx::query("UPDATE accounts SET credentials = $3 WHERE id = $1 AND credentials = $2")
                .bind(id.as_str())
                .bind(old)
                .bind(new)
                .execute(&self.write)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The workspace's account for one network account in one mode, if it has it.
    pub async fn find_account(
        &self,
        tenant: &Tenant,
        platform: &str,
        service: Option<&str>,
        external_id: &str,
    ) -> Result<Option<Account>> {
        let row = sqlx::query(
            "SELECT * FROM accounts WHERE workspace_id = $1 AND livemode = $2 AND platform = $3
               AND service = $4 AND external_id = $5",
        )
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(platform)
        .bind(service.unwrap_or(""))
        .bind(external_id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// Claims up to `limit` connected accounts whose token refresh is due (`refresh_at <= now`)
    /// and not claimed by another node, for `lease_ms`: a refresh that dies comes back after
    /// the lease, and two nodes never refresh one account at once.
    pub async fn claim_refreshes(
        &self,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Account>> {
        if self.claims_held() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "UPDATE accounts SET refresh_leased_until = $2
             WHERE id IN (SELECT id FROM accounts WHERE status = 'connected'
                            AND refresh_at IS NOT NULL AND refresh_at <= $1
                            AND (refresh_leased_until IS NULL OR refresh_leased_until <= $1)
                          ORDER BY refresh_at LIMIT $3)
               AND status = 'connected' AND refresh_at <= $1
               AND (refresh_leased_until IS NULL OR refresh_leased_until <= $1)
             RETURNING *",
        )
        .bind(now)
        .bind(now + lease_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.write)
        .await?;
        rows.iter().map(account_from_row).collect()
    }

    /// Stores refreshed credentials, if the account is still connected and still holds the
    /// credentials they replace (a disconnect or reconnect since the claim wins).
    pub async fn store_refreshed(
        &self,
        id: &AccountId,
        old_credentials: &str,
        credentials: &str,
        token_expires_at: Option<i64>,
        refresh_at: Option<i64>,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE accounts SET credentials = $3, token_expires_at = $4, refresh_at = $5,
                updated_at = $6, refresh_leased_until = NULL
             WHERE id = $1 AND credentials = $2 AND status = 'connected'",
        )
        .bind(id.as_str())
        .bind(old_credentials)
        .bind(credentials)
        .bind(token_expires_at)
        .bind(refresh_at)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Asks the refresher to renew the account's token now (the network refused it early); a
    /// claim in progress still holds.
    pub async fn refresh_soon(&self, id: &AccountId, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET refresh_at = $2
             WHERE id = $1 AND status = 'connected' AND refresh_at IS NOT NULL AND refresh_at > $2",
        )
        .bind(id.as_str())
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn get_account(&self, ws: &WorkspaceId, id: &AccountId) -> Result<Option<Account>> {
        let row = sqlx::query("SELECT * FROM accounts WHERE workspace_id = $1 AND id = $2")
            .bind(ws.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// The accounts `ids` of any workspace, in one query however many there are (a worker's
    /// claim reads them at once). An account that does not exist is not in the map; the caller
    /// checks the workspace.
    pub async fn get_accounts(&self, ids: &[AccountId]) -> Result<HashMap<AccountId, Account>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = crate::json(&ids.iter().map(AccountId::as_str).collect::<Vec<_>>());
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM accounts WHERE {}",
            self.in_json_list("id", "$1")
        )))
        .bind(ids.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| account_from_row(r).map(|a| (a.id.clone(), a)))
            .collect()
    }

    /// The account `id` of `tenant`'s workspace and mode (`None` in the other mode).
    pub async fn get_account_in(&self, tenant: &Tenant, id: &AccountId) -> Result<Option<Account>> {
        let row = sqlx::query(
            "SELECT * FROM accounts WHERE workspace_id = $1 AND id = $2 AND livemode = $3",
        )
        .bind(tenant.workspace.as_str())
        .bind(id.as_str())
        .bind(tenant.livemode as i64)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// How many of a workspace's accounts of one mode are connected (each mode has its own
    /// room under the plan's limit: test-mode accounts never use up the live one).
    pub async fn count_connected_accounts(&self, ws: &WorkspaceId, livemode: bool) -> Result<i64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM accounts WHERE workspace_id = $1 AND livemode = $2
               AND status = 'connected'",
        )
        .bind(ws.as_str())
        .bind(livemode as i64)
        .fetch_one(&self.read)
        .await?;
        Ok(n)
    }

    /// Accounts of a workspace, newest first; `livemode` narrows to one mode.
    pub async fn list_accounts(
        &self,
        ws: &WorkspaceId,
        livemode: Option<bool>,
        limit: u32,
        offset: u32,
    ) -> Result<Page<Account>> {
        let rows = sqlx::query(
            "SELECT * FROM accounts WHERE workspace_id = $1 AND ($2 IS NULL OR livemode = $2)
             ORDER BY id DESC LIMIT $3 OFFSET $4",
        )
        .bind(ws.as_str())
        .bind(livemode.map(i64::from))
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await?;
        let items = rows
            .iter()
            .map(account_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit))
    }

    /// Accounts of `tenant` among `within` (all of them with `None`), newest first.
    pub async fn list_accounts_in(
        &self,
        tenant: &Tenant,
        within: Option<&[AccountId]>,
        limit: u32,
        offset: u32,
    ) -> Result<Page<Account>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM accounts WHERE workspace_id = $1 AND livemode = $2
               AND ($5 IS NULL OR id IN {})
             ORDER BY id DESC LIMIT $3 OFFSET $4",
            self.json_values("$5")
        )))
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .bind(within.map(|w| crate::json(&w)))
        .fetch_all(&self.read)
        .await?;
        let items = rows
            .iter()
            .map(account_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit))
    }

    /// Disconnects an account (by the workspace): conditional on it being connected or expired;
    /// its credentials are dropped with it. `account.disconnected` commits with the change.
    pub async fn disconnect_account(
        &self,
        ws: &WorkspaceId,
        id: &AccountId,
        now: i64,
    ) -> Result<Option<Account>> {
        self.end_account(ws, id, AccountStatus::Disconnected, now)
            .await
    }

    /// Marks an account `expired` (the network refused its token and a refresh): conditional on
    /// it being connected with the credentials `credentials` (a reconnect since wins). Emits
    /// `account.disconnected`. `None` when nothing changed.
    pub async fn expire_account(
        &self,
        id: &AccountId,
        credentials: Option<&str>,
        now: i64,
    ) -> Result<Option<Account>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE accounts SET status = 'expired', refresh_at = NULL, updated_at = $2
             WHERE id = $1 AND status = 'connected'
               AND (credentials = $3 OR (credentials IS NULL AND $3 IS NULL)) RETURNING *",
        )
        .bind(id.as_str())
        .bind(now)
        .bind(credentials)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let account = account_from_row(&row)?;
        emit_disconnected(&mut tx, &account, now).await?;
        tx.commit().await?;
        Ok(Some(account))
    }

    async fn end_account(
        &self,
        ws: &WorkspaceId,
        id: &AccountId,
        status: AccountStatus,
        now: i64,
    ) -> Result<Option<Account>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE accounts SET status = $3, disconnected_at = $4, credentials = NULL,
                token_expires_at = NULL, refresh_at = NULL, updated_at = $4
             WHERE workspace_id = $1 AND id = $2 AND status IN ('connected', 'expired')
             RETURNING *",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(status.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            drop(tx);
            return self.get_account(ws, id).await;
        };
        let account = account_from_row(&row)?;
        emit_disconnected(&mut tx, &account, now).await?;
        tx.commit().await?;
        Ok(Some(account))
    }
}

async fn emit_disconnected(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    account: &Account,
    now: i64,
) -> Result<()> {
    let data = serde_json::to_value(AccountObject::from(account)).expect("an account object");
    emit(
        tx,
        account.workspace_id.as_str(),
        account.livemode,
        types::ACCOUNT_DISCONNECTED,
        &data,
        now,
        None,
    )
    .await
    .map(|_| ())
}
