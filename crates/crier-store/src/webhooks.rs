//! Webhook endpoints, deliveries and their attempts.

use crier_core::ids::{DeliveryId, JobId, WebhookId, WorkspaceId};
use sqlx::Row;

use crate::events::{Event, emit, event_from_row, types};
use crate::model::{JobKind, Page, corrupt};
use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: WebhookId,
    pub workspace_id: WorkspaceId,
    pub livemode: bool,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// The signing secret as stored: sealed with the server's secret keys
    /// (`crier_app::webhook_secrets`), or `whsec_…` as kept before secrets were sealed; never
    /// shown after creation or rotation.
    pub secret: String,
    /// The secret before the last rotation (stored the same way), signed with too until
    /// `previous_secret_until`, and forgotten after it.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
    /// Since when every delivery has failed (cleared by a success).
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Endpoint {
    /// The secrets to sign with at `now`: the current one, and the previous one while its
    /// overlap lasts.
    pub fn signing_secrets(&self, now: i64) -> Vec<&str> {
        let mut out = vec![self.secret.as_str()];
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && until > now
        {
            out.push(prev);
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub workspace_id: WorkspaceId,
    pub endpoint_id: WebhookId,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    pub attempt: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub response_excerpt: Option<String>,
    pub created_at: i64,
}

/// What one delivery attempt ended in, and what follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    /// Try again at this time.
    Retry(i64),
    /// No more tries; the delivery failed.
    GiveUp,
    /// The endpoint said 410 Gone (or failed for too long): disable it, with this reason.
    Disable(String),
}

fn endpoint_from_row(r: &sqlx::any::AnyRow) -> Result<Endpoint> {
    let events: String = r.try_get("events")?;
    Ok(Endpoint {
        id: WebhookId::from_trusted(r.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(r.try_get("workspace_id")?),
        livemode: r.try_get::<i64, _>("livemode")? != 0,
        url: r.try_get("url")?,
        description: r.try_get("description")?,
        events: serde_json::from_str(&events).map_err(|e| corrupt(format!("events: {e}")))?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: r.try_get("disabled_reason")?,
        secret: r.try_get("secret")?,
        previous_secret: r.try_get("previous_secret")?,
        previous_secret_until: r.try_get("previous_secret_until")?,
        failing_since: r.try_get("failing_since")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn delivery_from_row(r: &sqlx::any::AnyRow) -> Result<Delivery> {
    Ok(Delivery {
        id: DeliveryId::from_trusted(r.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(r.try_get("workspace_id")?),
        endpoint_id: WebhookId::from_trusted(r.try_get("endpoint_id")?),
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("type")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const DELIVERY_COLUMNS: &str = "d.id, d.workspace_id, d.endpoint_id, d.event_id, e.type, d.status, \
    d.attempts, d.last_status, d.last_error, d.created_at, d.updated_at";

/// The attempts a delivery keeps, its latest (its automatic retries are 9 at most; the rest
/// room for redeliveries by hand).
pub const ATTEMPTS_KEPT: i64 = 25;

impl Store {
    /// Stores a new endpoint unless the workspace already has `max_per_mode` endpoints of its
    /// mode; returns whether it was stored. The cap bounds the fan-out of every event (one
    /// delivery and one job per endpoint, written inside the emitting transaction), so the
    /// count and the insert share a transaction that two requests cannot interleave: SQLite
    /// serialises write transactions, and PostgreSQL locks the workspace's row first.
    pub async fn insert_endpoint(&self, e: &Endpoint, max_per_mode: u32) -> Result<bool> {
        let mut tx = self.begin().await?;
        if self.backend == crate::Backend::Postgres {
            sqlx::query("SELECT id FROM workspaces WHERE id = $1 FOR UPDATE")
                .bind(e.workspace_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        }
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_endpoints WHERE workspace_id = $1 AND livemode = $2",
        )
        .bind(e.workspace_id.as_str())
        .bind(e.livemode as i64)
        .fetch_one(&mut *tx)
        .await?;
        if count >= i64::from(max_per_mode) {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, workspace_id, livemode, url, description, events,
                enabled, disabled_reason, secret, previous_secret, previous_secret_until,
                failing_since, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(e.id.as_str())
        .bind(e.workspace_id.as_str())
        .bind(e.livemode as i64)
        .bind(&e.url)
        .bind(&e.description)
        .bind(serde_json::to_string(&e.events).expect("a list"))
        .bind(e.enabled as i64)
        .bind(e.disabled_reason.as_deref())
        .bind(&e.secret)
        .bind(e.previous_secret.as_deref())
        .bind(e.previous_secret_until)
        .bind(e.failing_since)
        .bind(e.created_at)
        .bind(e.updated_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn get_endpoint(&self, ws: &WorkspaceId, id: &WebhookId) -> Result<Option<Endpoint>> {
        let row =
            sqlx::query("SELECT * FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2")
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(&self.read)
                .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    pub async fn list_endpoints(
        &self,
        ws: &WorkspaceId,
        livemode: bool,
        limit: u32,
        offset: u32,
    ) -> Result<Page<Endpoint>> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_endpoints WHERE workspace_id = $1 AND livemode = $2
             ORDER BY id DESC LIMIT $3 OFFSET $4",
        )
        .bind(ws.as_str())
        .bind(livemode as i64)
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await?;
        let items = rows
            .iter()
            .map(endpoint_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit))
    }

    /// Writes an endpoint's settings (not its secrets: [`Store::rotate_endpoint_secret`]).
    pub async fn update_endpoint(&self, e: &Endpoint) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE webhook_endpoints SET url = $3, description = $4, events = $5, enabled = $6,
                disabled_reason = $7, failing_since = $8, updated_at = $9
             WHERE workspace_id = $1 AND id = $2",
        )
        .bind(e.workspace_id.as_str())
        .bind(e.id.as_str())
        .bind(&e.url)
        .bind(&e.description)
        .bind(serde_json::to_string(&e.events).expect("a list"))
        .bind(e.enabled as i64)
        .bind(e.disabled_reason.as_deref())
        .bind(e.failing_since)
        .bind(e.updated_at)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Makes `secret` (as stored) the endpoint's signing secret, and the one it had the
    /// previous, signed with too until `previous_until`; in one statement, so two rotations
    /// at once each keep what was current when they ran, and an edit of the settings cannot
    /// put an older secret back. Returns the endpoint as now stored (`None`: no such endpoint).
    pub async fn rotate_endpoint_secret(
        &self,
        ws: &WorkspaceId,
        id: &WebhookId,
        secret: &str,
        previous_until: i64,
        now: i64,
    ) -> Result<Option<Endpoint>> {
        let row = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, secret = $3,
                previous_secret_until = $4, updated_at = $5
             WHERE workspace_id = $1 AND id = $2 RETURNING *",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(secret)
        .bind(previous_until)
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    /// Up to `limit` endpoints, by id after `after`, with a secret (current or previous) not
    /// stored with `current_prefix` (sealed with an older key, or kept before secrets were
    /// sealed).
    pub async fn endpoints_sealed_otherwise(
        &self,
        current_prefix: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<Endpoint>> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_endpoints WHERE id > $3
               AND (SUBSTR(secret, 1, CAST($1 AS INTEGER)) <> $2
                    OR SUBSTR(previous_secret, 1, CAST($1 AS INTEGER)) <> $2)
             ORDER BY id LIMIT $4",
        )
        .bind(current_prefix.len() as i64)
        .bind(current_prefix)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    /// The endpoint whose secret was sealed last (not one kept as shown), if any.
    pub async fn any_sealed_endpoint(&self) -> Result<Option<Endpoint>> {
        let row = sqlx::query(
            "SELECT * FROM webhook_endpoints WHERE SUBSTR(secret, 1, 6) <> 'whsec_'
             ORDER BY updated_at DESC LIMIT 1",
        )
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    /// Up to `limit` endpoints, by id after `after`, with a secret (current or previous) stored
    /// as shown (`whsec_…`, kept before secrets were sealed).
    pub async fn endpoints_stored_plain(&self, after: &str, limit: u32) -> Result<Vec<Endpoint>> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_endpoints WHERE id > $1
               AND (SUBSTR(secret, 1, 6) = 'whsec_' OR SUBSTR(previous_secret, 1, 6) = 'whsec_')
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    /// Replaces an endpoint's stored secrets with the same ones sealed again, if they are
    /// still `old` (current, previous).
    pub async fn reseal_endpoint(
        &self,
        id: &WebhookId,
        old: (&str, Option<&str>),
        new: (&str, Option<&str>),
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE webhook_endpoints SET secret = $4, previous_secret = $5
             WHERE id = $1 AND secret = $2
               AND (previous_secret = $3 OR (previous_secret IS NULL AND $3 IS NULL))",
        )
        .bind(id.as_str())
        .bind(old.0)
        .bind(old.1)
        .bind(new.0)
        .bind(new.1)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Forgets previous secrets whose overlap ended by `now` (they sign nothing any more).
    pub async fn forget_previous_secrets(&self, now: i64) -> Result<u64> {
        let n = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = NULL, previous_secret_until = NULL
             WHERE previous_secret IS NOT NULL AND previous_secret_until <= $1",
        )
        .bind(now)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(n)
    }

    /// Deletes an endpoint with its pending delivery jobs (its delivery log goes too).
    pub async fn delete_endpoint(&self, ws: &WorkspaceId, id: &WebhookId) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2")
            .bind(ws.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 1 {
            sqlx::query(
                "DELETE FROM jobs WHERE kind = $1 AND ref_id IN
                    (SELECT id FROM webhook_deliveries WHERE endpoint_id = $2)",
            )
            .bind(JobKind::Webhook.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
            for table in ["webhook_attempts", "webhook_deliveries"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE endpoint_id = $1"
                )))
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Sends a `webhook.test` event to one endpoint.
    pub async fn send_test_event(&self, e: &Endpoint, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let data = serde_json::json!({"endpoint_id": e.id.as_str(), "message": "A test event from crier."});
        emit(
            &mut tx,
            e.workspace_id.as_str(),
            e.livemode,
            types::WEBHOOK_TEST,
            &data,
            now,
            Some(e.id.as_str()),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes an event for a change made outside any other transaction (e.g. a feed item).
    pub async fn emit_event(
        &self,
        ws: &WorkspaceId,
        livemode: bool,
        kind: &str,
        data: &serde_json::Value,
        now: i64,
    ) -> Result<crier_core::ids::EventId> {
        let mut tx = self.begin().await?;
        let id = emit(&mut tx, ws.as_str(), livemode, kind, data, now, None).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A delivery with its endpoint and event, for the worker.
    pub async fn delivery_context(
        &self,
        delivery: &DeliveryId,
    ) -> Result<Option<(Delivery, Option<Endpoint>, Event)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.id = $1"
        )))
        .bind(delivery.as_str())
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let d = delivery_from_row(&row)?;
        let event = sqlx::query("SELECT * FROM events WHERE id = $1")
            .bind(&d.event_id)
            .fetch_one(&self.read)
            .await?;
        let event = event_from_row(&event)?;
        let endpoint = self.get_endpoint(&d.workspace_id, &d.endpoint_id).await?;
        Ok(Some((d, endpoint, event)))
    }

    /// Records one attempt and its consequence, in one transaction: the delivery's state, the
    /// job (rescheduled or deleted) and the endpoint's health (failing since, disabled).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_delivery_attempt(
        &self,
        job: &JobId,
        d: &Delivery,
        attempt: &WebhookAttempt,
        outcome: &AttemptOutcome,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (id, delivery_id, endpoint_id, attempt, status, error,
                latency_ms, response_excerpt, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(crier_core::ids::new_id("wha"))
        .bind(d.id.as_str())
        .bind(d.endpoint_id.as_str())
        .bind(attempt.attempt)
        .bind(attempt.status)
        .bind(attempt.error.as_deref())
        .bind(attempt.latency_ms)
        .bind(attempt.response_excerpt.as_deref())
        .bind(attempt.created_at)
        .execute(&mut *tx)
        .await?;
        // A delivery keeps its latest attempts only: redelivering by hand again and again
        // cannot grow its record (or its listing) without bound.
        sqlx::query("DELETE FROM webhook_attempts WHERE delivery_id = $1 AND attempt <= $2")
            .bind(d.id.as_str())
            .bind(attempt.attempt - ATTEMPTS_KEPT)
            .execute(&mut *tx)
            .await?;
        let status = match outcome {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Retry(_) => "pending",
            AttemptOutcome::GiveUp | AttemptOutcome::Disable(_) => "failed",
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, attempts = $3, last_status = $4,
                last_error = $5, updated_at = $6 WHERE id = $1",
        )
        .bind(d.id.as_str())
        .bind(status)
        .bind(attempt.attempt)
        .bind(attempt.status)
        .bind(attempt.error.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        match outcome {
            AttemptOutcome::Retry(at) => {
                sqlx::query("UPDATE jobs SET run_at = $2, locked_until = 0 WHERE id = $1")
                    .bind(job.as_str())
                    .bind(*at)
                    .execute(&mut *tx)
                    .await?;
            }
            _ => {
                sqlx::query("DELETE FROM jobs WHERE id = $1")
                    .bind(job.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let health = match outcome {
            AttemptOutcome::Succeeded => "failing_since = NULL",
            AttemptOutcome::Disable(_) => {
                "enabled = 0, disabled_reason = $3, failing_since = COALESCE(failing_since, $2)"
            }
            _ => "failing_since = COALESCE(failing_since, $2)",
        };
        let reason = match outcome {
            AttemptOutcome::Disable(r) => Some(r.as_str()),
            _ => None,
        };
        let disabled = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE webhook_endpoints SET {health}, updated_at = $2
             WHERE id = $1 AND ($3 IS NULL OR enabled = 1) RETURNING *"
        )))
        .bind(d.endpoint_id.as_str())
        .bind(now)
        .bind(reason)
        .fetch_optional(&mut *tx)
        .await?;
        if let (AttemptOutcome::Disable(reason), Some(row)) = (outcome, disabled) {
            let e = endpoint_from_row(&row)?;
            let data = serde_json::json!({
                "id": e.id.as_str(), "object": "webhook_endpoint", "url": e.url,
                "enabled": false, "disabled_reason": reason,
            });
            emit(
                &mut tx,
                e.workspace_id.as_str(),
                e.livemode,
                types::WEBHOOK_DISABLED,
                &data,
                now,
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Closes a delivery whose endpoint is gone or disabled.
    pub async fn abandon_delivery(
        &self,
        job: &JobId,
        d: &DeliveryId,
        reason: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = $2, updated_at = $3
             WHERE id = $1",
        )
        .bind(d.as_str())
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(job.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An endpoint's deliveries, newest first, each with its attempts.
    pub async fn list_deliveries(
        &self,
        ws: &WorkspaceId,
        endpoint: &WebhookId,
        limit: u32,
        offset: u32,
    ) -> Result<Page<(Delivery, Vec<WebhookAttempt>)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.workspace_id = $1 AND d.endpoint_id = $2 ORDER BY d.id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(ws.as_str())
        .bind(endpoint.as_str())
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await?;
        let deliveries = rows
            .iter()
            .map(delivery_from_row)
            .collect::<Result<Vec<_>>>()?;
        // Attempts only for the deliveries on the page, not for the one fetched past it.
        let page = Page::from_overfetch(deliveries, limit);
        let mut out = Vec::with_capacity(page.items.len());
        for d in page.items {
            let attempts = sqlx::query(
                "SELECT attempt, status, error, latency_ms, response_excerpt, created_at
                 FROM (SELECT * FROM webhook_attempts WHERE delivery_id = $1
                       ORDER BY attempt DESC LIMIT $2) AS latest ORDER BY attempt",
            )
            .bind(d.id.as_str())
            .bind(ATTEMPTS_KEPT)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|a| {
                Ok(WebhookAttempt {
                    attempt: a.try_get(0)?,
                    status: a.try_get(1)?,
                    error: a.try_get(2)?,
                    latency_ms: a.try_get(3)?,
                    response_excerpt: a.try_get(4)?,
                    created_at: a.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
            out.push((d, attempts));
        }
        Ok(Page {
            items: out,
            has_more: page.has_more,
        })
    }

    /// Sends a delivery again now (by hand), keeping its event and so its `webhook-id`.
    pub async fn redeliver(
        &self,
        ws: &WorkspaceId,
        endpoint: &WebhookId,
        d: &DeliveryId,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', updated_at = $4
             WHERE workspace_id = $1 AND endpoint_id = $2 AND id = $3 AND status <> 'pending'",
        )
        .bind(ws.as_str())
        .bind(endpoint.as_str())
        .bind(d.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            sqlx::query(
                "INSERT INTO jobs (id, kind, workspace_id, ref_id, run_at, locked_until, created_at)
                 VALUES ($1, $2, $3, $4, $5, 0, $5)",
            )
            .bind(JobId::generate().as_str())
            .bind(JobKind::Webhook.as_str())
            .bind(ws.as_str())
            .bind(d.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }
}
