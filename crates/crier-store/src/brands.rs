//! Brands: named groups of a workspace's accounts, each of one mode, ordered by `position`; an
//! account may be in several. The owner's part of each brand's voice is a `personas` row (see
//! `personas.rs`), shown with the brand.
//!
//! Invariants kept here:
//! - A brand, its memberships and its persona row are written in one transaction and deleted
//!   in one; after a delete the brands behind it move up, so positions stay `0..n`.
//! - A new brand goes last. The plan's bound on brands (per workspace and mode) is counted in
//!   the transaction that inserts, after locking the workspace's row on PostgreSQL (SQLite
//!   serialises writers), so two creates cannot both take the last place.
//! - Names are unique per workspace and mode (a unique index; a clash is
//!   [`crate::StoreError::Conflict`]).
//! - Every read and write names the tenant (workspace and mode); a brand of the other mode or
//!   another workspace does not exist for it.

use std::collections::BTreeMap;

use crier_core::Tenant;
use crier_core::ids::{AccountId, BrandId, WorkspaceId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{Page, corrupt};
use crate::{Result, Store, Tx, json, unique_to_conflict};

/// The owner's part of a voice, as stored (crier-app checks it and converts it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredVoice {
    pub description: Option<String>,
    pub tone: Option<String>,
    pub words_to_use: Vec<String>,
    pub words_to_avoid: Vec<String>,
}

/// A brand with its accounts (in the order they were given) and its owner's voice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brand {
    pub id: BrandId,
    pub workspace_id: WorkspaceId,
    pub livemode: bool,
    pub name: String,
    pub position: i64,
    pub account_ids: Vec<AccountId>,
    pub voice: StoredVoice,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What an update changes; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct BrandChanges {
    pub name: Option<String>,
    pub account_ids: Option<Vec<AccountId>>,
    pub voice: Option<StoredVoice>,
}

const BRAND_READ: &str = "b.id, b.workspace_id, b.livemode, b.name, b.position, b.created_at, \
    b.updated_at, v.description, v.tone, v.words_to_use, v.words_to_avoid";
const BRAND_FROM: &str = "brands b LEFT JOIN personas v ON v.workspace_id = b.workspace_id \
    AND v.livemode = b.livemode AND v.brand_id = b.id";

fn words(row: &AnyRow, col: &str) -> Result<Vec<String>> {
    match row.try_get::<Option<String>, _>(col)? {
        Some(text) => serde_json::from_str(&text).map_err(|e| corrupt(format!("{col}: {e}"))),
        None => Ok(Vec::new()),
    }
}

pub(crate) fn voice_from_row(row: &AnyRow) -> Result<StoredVoice> {
    Ok(StoredVoice {
        description: row.try_get("description")?,
        tone: row.try_get("tone")?,
        words_to_use: words(row, "words_to_use")?,
        words_to_avoid: words(row, "words_to_avoid")?,
    })
}

fn brand_from_row(row: &AnyRow) -> Result<Brand> {
    Ok(Brand {
        id: BrandId::from_trusted(row.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(row.try_get("workspace_id")?),
        livemode: row.try_get::<i64, _>("livemode")? != 0,
        name: row.try_get("name")?,
        position: row.try_get("position")?,
        account_ids: Vec::new(),
        voice: voice_from_row(row)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Writes the owner's part of a voice (`brand` `''`: the workspace's own), keeping whatever
/// else the row holds.
pub(crate) async fn upsert_voice(
    tx: &mut Tx,
    tenant: &Tenant,
    brand: &str,
    v: &StoredVoice,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO personas (workspace_id, livemode, brand_id, description, tone, words_to_use,
            words_to_avoid, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (workspace_id, livemode, brand_id) DO UPDATE SET
            description = excluded.description, tone = excluded.tone,
            words_to_use = excluded.words_to_use, words_to_avoid = excluded.words_to_avoid,
            updated_at = excluded.updated_at",
    )
    .bind(tenant.workspace.as_str())
    .bind(tenant.livemode as i64)
    .bind(brand)
    .bind(v.description.as_deref())
    .bind(v.tone.as_deref())
    .bind(json(&v.words_to_use))
    .bind(json(&v.words_to_avoid))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_members(tx: &mut Tx, brand: &BrandId, accounts: &[AccountId]) -> Result<()> {
    for (i, a) in accounts.iter().enumerate() {
        sqlx::query(
            "INSERT INTO brand_accounts (brand_id, account_id, position) VALUES ($1, $2, $3)",
        )
        .bind(brand.as_str())
        .bind(a.as_str())
        .bind(i as i64)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

const NAME_TAKEN: &str = "a brand with this name";

impl Store {
    /// Stores a new brand last in its tenant's order, with its accounts and (when it is not
    /// empty) its voice, unless the tenant already has `max` brands (`None`: no bound). Returns
    /// the brand as stored (its position set), or `None` when it did not fit.
    pub async fn create_brand(&self, b: &Brand, max: Option<u64>) -> Result<Option<Brand>> {
        let mut tx = self.begin().await?;
        if self.backend == crate::Backend::Postgres {
            sqlx::query("SELECT id FROM workspaces WHERE id = $1 FOR UPDATE")
                .bind(b.workspace_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        }
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(MAX(position) + 1, 0) AS BIGINT)
             FROM brands WHERE workspace_id = $1 AND livemode = $2",
        )
        .bind(b.workspace_id.as_str())
        .bind(b.livemode as i64)
        .fetch_one(&mut *tx)
        .await?;
        let (count, next): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if max.is_some_and(|m| count.max(0) as u64 >= m) {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO brands (id, workspace_id, livemode, name, position, created_at,
                updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(b.id.as_str())
        .bind(b.workspace_id.as_str())
        .bind(b.livemode as i64)
        .bind(&b.name)
        .bind(next)
        .bind(b.created_at)
        .bind(b.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(unique_to_conflict(NAME_TAKEN))?;
        insert_members(&mut tx, &b.id, &b.account_ids).await?;
        if b.voice != StoredVoice::default() {
            let tenant = Tenant {
                workspace: b.workspace_id.clone(),
                livemode: b.livemode,
            };
            upsert_voice(&mut tx, &tenant, b.id.as_str(), &b.voice, b.created_at).await?;
        }
        tx.commit().await?;
        Ok(Some(Brand {
            position: next,
            ..b.clone()
        }))
    }

    /// The brand `id` of `tenant`, with its accounts and voice.
    pub async fn get_brand(&self, tenant: &Tenant, id: &BrandId) -> Result<Option<Brand>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BRAND_READ} FROM {BRAND_FROM}
             WHERE b.workspace_id = $1 AND b.livemode = $2 AND b.id = $3"
        )))
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut brands = vec![brand_from_row(&row)?];
        self.fill_members(&mut brands).await?;
        Ok(brands.pop())
    }

    /// A page of `tenant`'s brands in their order (`position`, then id). `within` narrows to
    /// the brands a limited key reaches: those it names, and those with accounts that are all
    /// among the accounts it reaches.
    pub async fn list_brands(
        &self,
        tenant: &Tenant,
        within: Option<(&[BrandId], &[AccountId])>,
        limit: u32,
        offset: u32,
    ) -> Result<Page<Brand>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BRAND_READ} FROM {BRAND_FROM}
             WHERE b.workspace_id = $1 AND b.livemode = $2
               AND ($3 IS NULL OR b.id IN {brands}
                    OR (EXISTS (SELECT 1 FROM brand_accounts x WHERE x.brand_id = b.id)
                        AND NOT EXISTS (SELECT 1 FROM brand_accounts x WHERE x.brand_id = b.id
                                          AND x.account_id NOT IN {accounts})))
             ORDER BY b.position, b.id LIMIT $5 OFFSET $6",
            brands = self.json_values("$3"),
            accounts = self.json_values("$4"),
        )))
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(within.map(|(b, _)| json(&b)))
        .bind(within.map(|(_, a)| json(&a)))
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await?;
        let brands = rows
            .iter()
            .map(brand_from_row)
            .collect::<Result<Vec<_>>>()?;
        let mut page = Page::from_overfetch(brands, limit);
        self.fill_members(&mut page.items).await?;
        Ok(page)
    }

    /// Reads the accounts of `brands` (one query for all).
    async fn fill_members(&self, brands: &mut [Brand]) -> Result<()> {
        if brands.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = brands.iter().map(|b| b.id.as_str()).collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT brand_id, account_id FROM brand_accounts WHERE brand_id IN {}
             ORDER BY brand_id, position",
            self.json_values("$1")
        )))
        .bind(json(&ids))
        .fetch_all(&self.read)
        .await?;
        let mut members: BTreeMap<String, Vec<AccountId>> = BTreeMap::new();
        for r in rows {
            members
                .entry(r.try_get(0)?)
                .or_default()
                .push(AccountId::from_trusted(r.try_get(1)?));
        }
        for b in brands {
            b.account_ids = members.remove(b.id.as_str()).unwrap_or_default();
        }
        Ok(())
    }

    /// Changes a brand: its name, its accounts (replaced, in the order given), its voice.
    /// Returns the brand as it now is, or `None` when `tenant` has no such brand.
    pub async fn update_brand(
        &self,
        tenant: &Tenant,
        id: &BrandId,
        changes: &BrandChanges,
        now: i64,
    ) -> Result<Option<Brand>> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE brands SET name = COALESCE($4, name), updated_at = $5
             WHERE workspace_id = $1 AND livemode = $2 AND id = $3",
        )
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(id.as_str())
        .bind(changes.name.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(unique_to_conflict(NAME_TAKEN))?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        if let Some(accounts) = &changes.account_ids {
            sqlx::query("DELETE FROM brand_accounts WHERE brand_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            insert_members(&mut tx, id, accounts).await?;
        }
        if let Some(v) = &changes.voice {
            upsert_voice(&mut tx, tenant, id.as_str(), v, now).await?;
        }
        tx.commit().await?;
        self.get_brand(tenant, id).await
    }

    /// Deletes a brand with its memberships and its persona row; the brands after it move up
    /// one place. `false` when `tenant` has no such brand.
    pub async fn delete_brand(&self, tenant: &Tenant, id: &BrandId) -> Result<bool> {
        let mut tx = self.begin().await?;
        let position: Option<i64> = sqlx::query_scalar(
            "DELETE FROM brands WHERE workspace_id = $1 AND livemode = $2 AND id = $3
             RETURNING position",
        )
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(position) = position else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM brand_accounts WHERE brand_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM personas WHERE workspace_id = $1 AND livemode = $2 AND brand_id = $3",
        )
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE brands SET position = position - 1
             WHERE workspace_id = $1 AND livemode = $2 AND position > $3",
        )
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(position)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Gives each brand its new position, all or nothing: `false` (nothing written) when one
    /// of them is no longer there. A brand whose position changes is updated at `now`.
    pub async fn reorder_brands(
        &self,
        tenant: &Tenant,
        positions: &[(BrandId, i64)],
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        for (id, position) in positions {
            let n = sqlx::query(
                "UPDATE brands SET position = $4,
                    updated_at = CASE WHEN position = $4 THEN updated_at ELSE $5 END
                 WHERE workspace_id = $1 AND livemode = $2 AND id = $3",
            )
            .bind(tenant.workspace.as_str())
            .bind(tenant.livemode as i64)
            .bind(id.as_str())
            .bind(*position)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The accounts of the brands `brands` of `tenant` (each once, in no particular order):
    /// what a key limited to those brands reaches through them. Brands that are gone add none.
    pub async fn brand_accounts(
        &self,
        tenant: &Tenant,
        brands: &[BrandId],
    ) -> Result<Vec<AccountId>> {
        if brands.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT ba.account_id FROM brand_accounts ba
             JOIN brands b ON b.id = ba.brand_id
             WHERE b.workspace_id = $1 AND b.livemode = $2 AND b.id IN {}",
            self.json_values("$3")
        )))
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(json(&brands))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(AccountId::from_trusted).collect())
    }

    /// Which of `ids` are brands of `tenant`.
    pub async fn existing_brands(&self, tenant: &Tenant, ids: &[BrandId]) -> Result<Vec<BrandId>> {
        self.existing(tenant, "brands", ids)
            .await
            .map(|v| v.into_iter().map(BrandId::from_trusted).collect())
    }

    /// Which of `ids` are accounts of `tenant` (in any status).
    pub async fn existing_accounts(
        &self,
        tenant: &Tenant,
        ids: &[AccountId],
    ) -> Result<Vec<AccountId>> {
        self.existing(tenant, "accounts", ids)
            .await
            .map(|v| v.into_iter().map(AccountId::from_trusted).collect())
    }

    async fn existing<T: AsRef<str>>(
        &self,
        tenant: &Tenant,
        table: &'static str,
        ids: &[T],
    ) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
        let found = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM {table} WHERE workspace_id = $1 AND livemode = $2 AND id IN {}",
            self.json_values("$3")
        )))
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(json(&ids))
        .fetch_all(&self.read)
        .await?;
        if found.len() > ids.len() {
            return Err(corrupt(format!("{table}: duplicate ids")));
        }
        Ok(found)
    }
}
