//! Connected social accounts of a workspace, each of one mode (`livemode`).
//!
//! An account's status moves only `connected` → `disconnected` (or `expired`); a disconnect
//! is conditional on the account still being connected, and its `account.disconnected` event
//! commits with it. Each mode counts its own connected accounts against the plan's limit.

use crier_core::Tenant;
use crier_core::ids::{AccountId, WorkspaceId};

use crate::events::{emit, types};
use crate::model::*;
use crate::views::AccountObject;
use crate::{Result, Store};

impl Store {
    pub async fn insert_account(&self, a: &Account) -> Result<()> {
        sqlx::query(
            "INSERT INTO accounts (id, workspace_id, platform, handle, livemode, status,
                created_at, disconnected_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(a.id.as_str())
        .bind(a.workspace_id.as_str())
        .bind(&a.platform)
        .bind(&a.handle)
        .bind(a.livemode as i64)
        .bind(a.status.as_str())
        .bind(a.created_at)
        .bind(a.disconnected_at)
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

    pub async fn disconnect_account(
        &self,
        ws: &WorkspaceId,
        id: &AccountId,
        now: i64,
    ) -> Result<Option<Account>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE accounts SET status = 'disconnected', disconnected_at = $3
             WHERE workspace_id = $1 AND id = $2 AND status = 'connected' RETURNING *",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            drop(tx);
            return self.get_account(ws, id).await;
        };
        let account = account_from_row(&row)?;
        let data = serde_json::to_value(AccountObject::from(&account)).expect("an account object");
        emit(
            &mut tx,
            ws.as_str(),
            account.livemode,
            types::ACCOUNT_DISCONNECTED,
            &data,
            now,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(account))
    }
}
