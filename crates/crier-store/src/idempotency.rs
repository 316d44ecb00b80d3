//! Idempotency records: the first response to an `Idempotency-Key` (per API key), kept for 24
//! hours. The response is stored as the API layer hands it over (encrypted there, so a
//! response that carries a secret is never at rest in the clear).

use crier_core::ids::KeyId;
use sqlx::Row;

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// This request owns the key now and must finish or release it.
    Started,
    /// Another request with this key is running.
    InProgress,
    /// The key was used with a different request.
    Mismatch,
    /// The stored response of the first request.
    Done { status: u16, response: String },
    /// The first request ran and answered `status`, but its response could not be stored; it
    /// must not run again.
    Unrecorded { status: u16 },
}

impl Store {
    /// Claims `(api_key, idem_key)` for a request with `fingerprint`. An expired record, or a
    /// running one whose lock ran out (its server died) for the same request, is taken over.
    #[allow(clippy::too_many_arguments)]
    pub async fn idempotency_begin(
        &self,
        api_key: &KeyId,
        idem_key: &str,
        fingerprint: &str,
        now: i64,
        lock_until: i64,
        expires_at: i64,
    ) -> Result<IdempotencyBegin> {
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (api_key_id, idem_key, fingerprint, state, status,
                response, locked_until, created_at, expires_at)
             VALUES ($1, $2, $3, 'running', NULL, NULL, $4, $5, $6)
             ON CONFLICT (api_key_id, idem_key) DO UPDATE SET
                fingerprint = excluded.fingerprint, state = 'running', status = NULL,
                response = NULL, locked_until = excluded.locked_until,
                created_at = excluded.created_at, expires_at = excluded.expires_at
             WHERE idempotency_keys.expires_at <= $5
                OR (idempotency_keys.state = 'running' AND idempotency_keys.locked_until <= $5
                    AND idempotency_keys.fingerprint = excluded.fingerprint)",
        )
        .bind(api_key.as_str())
        .bind(idem_key)
        .bind(fingerprint)
        .bind(lock_until)
        .bind(now)
        .bind(expires_at)
        .execute(&self.write)
        .await?
        .rows_affected();
        if claimed == 1 {
            return Ok(IdempotencyBegin::Started);
        }
        let row = sqlx::query(
            "SELECT fingerprint, state, status, response FROM idempotency_keys
             WHERE api_key_id = $1 AND idem_key = $2",
        )
        .bind(api_key.as_str())
        .bind(idem_key)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else {
            // Purged between our two statements: nothing stands in the way now.
            return Box::pin(self.idempotency_begin(
                api_key,
                idem_key,
                fingerprint,
                now,
                lock_until,
                expires_at,
            ))
            .await;
        };
        let stored: String = row.try_get("fingerprint")?;
        if stored != fingerprint {
            return Ok(IdempotencyBegin::Mismatch);
        }
        let state: String = row.try_get("state")?;
        if state != "done" {
            return Ok(IdempotencyBegin::InProgress);
        }
        let status: Option<i64> = row.try_get("status")?;
        let response: Option<String> = row.try_get("response")?;
        let status = status.and_then(|s| u16::try_from(s).ok()).unwrap_or(500);
        match response {
            Some(response) => Ok(IdempotencyBegin::Done { status, response }),
            None => Ok(IdempotencyBegin::Unrecorded { status }),
        }
    }

    /// Stores the response of a request that owns its key.
    pub async fn idempotency_finish(
        &self,
        api_key: &KeyId,
        idem_key: &str,
        status: u16,
        response: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', status = $3, response = $4
             WHERE api_key_id = $1 AND idem_key = $2 AND state = 'running'",
        )
        .bind(api_key.as_str())
        .bind(idem_key)
        .bind(i64::from(status))
        .bind(response)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Marks a key whose request ran (and answered `status`) as done without its response,
    /// when the response could not be stored: a retry is told so instead of running again.
    pub async fn idempotency_finish_unrecorded(
        &self,
        api_key: &KeyId,
        idem_key: &str,
        status: u16,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', status = $3, response = NULL
             WHERE api_key_id = $1 AND idem_key = $2 AND state = 'running'",
        )
        .bind(api_key.as_str())
        .bind(idem_key)
        .bind(i64::from(status))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Gives a key back without a stored response (the request was refused before it ran, or
    /// failed on our side), so a retry runs afresh.
    pub async fn idempotency_release(&self, api_key: &KeyId, idem_key: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE api_key_id = $1 AND idem_key = $2
             AND state = 'running'",
        )
        .bind(api_key.as_str())
        .bind(idem_key)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Deletes records past their 24 hours; returns how many.
    pub async fn purge_idempotency(&self, now: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
                .bind(now)
                .execute(&self.write)
                .await?
                .rows_affected(),
        )
    }
}
