//! The sandbox network's own data: what was "posted" to each sandbox account (its timeline)
//! and the faults it was told to inject. Kept here, in crier's database, because the sandbox
//! is a network built into crier; its behaviour lives in crier-networks.
//!
//! Like most real networks it does NOT deduplicate: every publish call creates a post, so a
//! duplicate publish by crier would show in the timeline. It records the caller's idempotency
//! key with each post so crier can ask "did my call land?" after losing an answer.

use crier_core::ids::AccountId;
use sqlx::Row;

use crate::{Result, Store, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPost {
    pub external_id: String,
    pub account_id: AccountId,
    pub idem_key: String,
    pub body: String,
    pub reply_to: Option<String>,
    /// The media the entry carried.
    pub media_ids: Vec<String>,
    pub created_at: i64,
}

/// What an injected fault does to a call, stored as its [`FaultKind::as_str`] text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The call fails (a transient error, retried).
    Error,
    /// The post lands and the answer is lost.
    Timeout,
    /// The call is refused with a `Retry-After`.
    RateLimit,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::RateLimit => "rate_limit",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Error, Self::Timeout, Self::RateLimit]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A fault to inject into the next calls of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub retry_after_seconds: i64,
}

fn post_from_row(r: &sqlx::any::AnyRow) -> Result<SandboxPost> {
    Ok(SandboxPost {
        external_id: r.try_get("external_id")?,
        account_id: AccountId::from_trusted(r.try_get("account_id")?),
        idem_key: r.try_get("idem_key")?,
        body: r.try_get("body")?,
        reply_to: r.try_get("reply_to")?,
        media_ids: crate::model::json_text(r, "media_ids")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Adds `post` to its account's timeline, with the other entries written meanwhile (see
    /// `batch.rs`).
    pub async fn sandbox_insert(&self, post: &SandboxPost) -> Result<()> {
        self.sandbox_entries.run(post.clone()).await
    }

    /// The first post an account received with this idempotency key.
    pub async fn sandbox_lookup(
        &self,
        account: &AccountId,
        idem_key: &str,
    ) -> Result<Option<SandboxPost>> {
        let row = sqlx::query(
            "SELECT * FROM sandbox_posts WHERE account_id = $1 AND idem_key = $2
             ORDER BY created_at, external_id LIMIT 1",
        )
        .bind(account.as_str())
        .bind(idem_key)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(post_from_row).transpose()
    }

    pub async fn sandbox_get(
        &self,
        account: &AccountId,
        external_id: &str,
    ) -> Result<Option<SandboxPost>> {
        let row =
            sqlx::query("SELECT * FROM sandbox_posts WHERE account_id = $1 AND external_id = $2")
                .bind(account.as_str())
                .bind(external_id)
                .fetch_optional(&self.read)
                .await?;
        row.as_ref().map(post_from_row).transpose()
    }

    /// An account's timeline, oldest first.
    pub async fn sandbox_timeline(
        &self,
        account: &AccountId,
        limit: u32,
        offset: u32,
    ) -> Result<crate::Page<SandboxPost>> {
        let rows = sqlx::query(
            "SELECT * FROM sandbox_posts WHERE account_id = $1
             ORDER BY created_at, external_id LIMIT $2 OFFSET $3",
        )
        .bind(account.as_str())
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await?;
        let items = rows.iter().map(post_from_row).collect::<Result<Vec<_>>>()?;
        Ok(crate::Page::from_overfetch(items, limit))
    }

    pub async fn sandbox_set_fault(
        &self,
        account: &AccountId,
        fail_next: i64,
        fault: &Fault,
        latency_ms: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sandbox_faults (account_id, fail_next, kind, retry_after_seconds, latency_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (account_id) DO UPDATE SET fail_next = excluded.fail_next,
                kind = excluded.kind, retry_after_seconds = excluded.retry_after_seconds,
                latency_ms = excluded.latency_ms",
        )
        .bind(account.as_str())
        .bind(fail_next)
        .bind(fault.kind.as_str())
        .bind(fault.retry_after_seconds)
        .bind(latency_ms)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// What the account's next call meets: its simulated latency (ms), and one injected fault
    /// taken from those left, if any.
    pub async fn sandbox_take_fault(&self, account: &AccountId) -> Result<(i64, Option<Fault>)> {
        // Most calls have no fault armed: find that out with a read, not a write.
        let Some(row) =
            sqlx::query("SELECT fail_next, latency_ms FROM sandbox_faults WHERE account_id = $1")
                .bind(account.as_str())
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok((0, None));
        };
        let (armed, latency_ms): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if armed <= 0 {
            return Ok((latency_ms, None));
        }
        let row = sqlx::query(
            "UPDATE sandbox_faults SET fail_next = fail_next - 1
             WHERE account_id = $1 AND fail_next > 0
             RETURNING kind, retry_after_seconds",
        )
        .bind(account.as_str())
        .fetch_optional(&self.write)
        .await?;
        let fault = row
            .map(|r| -> Result<Fault> {
                let kind: String = r.try_get(0)?;
                Ok(Fault {
                    kind: FaultKind::parse(&kind)
                        .ok_or_else(|| crate::StoreError::Corrupt("sandbox_faults.kind".into()))?,
                    retry_after_seconds: r.try_get(1)?,
                })
            })
            .transpose()?;
        Ok((latency_ms, fault))
    }
}

/// Timeline entries, written in batches (`batch.rs`).
pub(crate) struct Entries;

impl crate::batch::Kind for Entries {
    type Item = SandboxPost;
    type Out = ();

    fn key(item: &SandboxPost) -> String {
        item.external_id.clone()
    }

    fn record<'t>(
        tx: &'t mut Tx,
        items: &'t [SandboxPost],
    ) -> futures::future::BoxFuture<'t, Result<Vec<()>>> {
        Box::pin(async move {
            let rows: Vec<_> = items
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "ext": p.external_id, "acc": p.account_id.as_str(), "idem": p.idem_key,
                        "body": p.body, "reply": p.reply_to, "at": p.created_at,
                        "media": crate::json(&p.media_ids),
                    })
                })
                .collect();
            let x = crate::recordset(
                crate::is_postgres(tx),
                &[
                    ("ext", "text"),
                    ("acc", "text"),
                    ("idem", "text"),
                    ("body", "text"),
                    ("reply", "text"),
                    ("at", "bigint"),
                    ("media", "text"),
                ],
            );
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO sandbox_posts (external_id, account_id, idem_key, body, reply_to,
                    created_at, media_ids)
                 SELECT ext, acc, idem, body, reply, at, media FROM {x} WHERE true"
            )))
            .bind(crate::json(&rows))
            .execute(&mut **tx)
            .await?;
            Ok(vec![(); items.len()])
        })
    }
}
