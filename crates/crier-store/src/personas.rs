//! The owner's part of each voice (`personas`: the workspace's own, brand `''`, and each
//! brand's), and what persona learning reads: the texts a tenant published.
//!
//! A brand's persona row is written with the brand (create, update) or here, only while the
//! brand exists (the check and the write are one statement), and deleted with the brand.

use crier_core::Tenant;
use crier_core::ids::{AccountId, BrandId};

use crate::brands::{StoredVoice, upsert_voice, voice_from_row};
use crate::{Result, Store, json};

/// How many texts [`Store::published_texts`] returns at most, whatever is asked.
pub const MAX_PUBLISHED_TEXTS: i64 = 1000;

impl Store {
    /// The owner's voice of `tenant` (`brand` `None`: the workspace's own), if one was set.
    pub async fn get_voice(
        &self,
        tenant: &Tenant,
        brand: Option<&BrandId>,
    ) -> Result<Option<StoredVoice>> {
        let row = sqlx::query(
            "SELECT description, tone, words_to_use, words_to_avoid FROM personas
             WHERE workspace_id = $1 AND livemode = $2 AND brand_id = $3",
        )
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(brand.map(BrandId::as_str).unwrap_or(""))
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(voice_from_row).transpose()
    }

    /// Sets the owner's voice of `tenant` (`brand` `None`: the workspace's own). For a brand,
    /// only while it exists: `false` (nothing written) when `tenant` has no such brand.
    pub async fn set_voice(
        &self,
        tenant: &Tenant,
        brand: Option<&BrandId>,
        voice: &StoredVoice,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        if let Some(brand) = brand {
            // Locks the brand's row (PostgreSQL; SQLite serialises writers), so a delete that
            // commits first leaves no persona behind, and one that comes after removes it.
            let n = sqlx::query(
                "UPDATE brands SET updated_at = $4
                 WHERE workspace_id = $1 AND livemode = $2 AND id = $3",
            )
            .bind(tenant.workspace.as_str())
            .bind(tenant.livemode as i64)
            .bind(brand.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Ok(false);
            }
        }
        let key = brand.map(BrandId::as_str).unwrap_or("");
        upsert_voice(&mut tx, tenant, key, voice, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The bodies of `tenant`'s newest published or partially published posts, newest first,
    /// at most `limit` (and at most [`MAX_PUBLISHED_TEXTS`]). With `accounts`, only posts that
    /// went out on one of them (a published target there): what a brand's voice is learned
    /// from.
    pub async fn published_texts(
        &self,
        tenant: &Tenant,
        accounts: Option<&[AccountId]>,
        limit: i64,
    ) -> Result<Vec<String>> {
        let limit = limit.clamp(0, MAX_PUBLISHED_TEXTS);
        if limit == 0 || accounts.is_some_and(<[AccountId]>::is_empty) {
            return Ok(Vec::new());
        }
        let texts = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT body FROM posts p
             WHERE workspace_id = $1 AND livemode = $2
               AND status IN ('published', 'partially_published')
               AND ($3 IS NULL OR EXISTS (SELECT 1 FROM post_targets t
                     WHERE t.post_id = p.id AND t.status = 'published'
                       AND t.account_id IN {}))
             ORDER BY COALESCE(published_at, updated_at) DESC, id DESC LIMIT $4",
            self.json_values("$3")
        )))
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(accounts.map(|a| json(&a)))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(texts)
    }
}
