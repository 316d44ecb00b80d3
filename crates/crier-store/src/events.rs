//! Events: written in the same transaction as the change that caused them, together with one
//! delivery (and its job in the durable queue) per enabled endpoint that subscribes to the type.

use crier_core::ids::{DeliveryId, EventId, JobId};
use serde_json::Value;
use sqlx::{Any, Row};

use crate::Result;
use crate::model::JobKind;

/// The event types crier emits.
pub mod types {
    pub const POST_SCHEDULED: &str = "post.scheduled";
    pub const POST_PUBLISHED: &str = "post.published";
    pub const POST_FAILED: &str = "post.failed";
    pub const POST_APPROVAL_REQUESTED: &str = "post.approval_requested";
    pub const ACCOUNT_DISCONNECTED: &str = "account.disconnected";
    pub const MEDIA_READY: &str = "media.ready";
    pub const KEY_CREATED: &str = "key.created";
    pub const KEY_REVOKED: &str = "key.revoked";
    pub const KEY_EXPIRING: &str = "key.expiring";
    pub const FEED_ITEM_CREATED: &str = "feed.item_created";
    pub const WEBHOOK_DISABLED: &str = "webhook_endpoint.disabled";
    pub const AGENT_RUN_COMPLETED: &str = "agent.run_completed";
    pub const AGENT_RUN_FAILED: &str = "agent.run_failed";
    /// Sent by `POST /v1/webhooks/{id}/test` to that endpoint only.
    pub const WEBHOOK_TEST: &str = "webhook.test";

    pub const ALL: &[&str] = &[
        POST_SCHEDULED,
        POST_PUBLISHED,
        POST_FAILED,
        POST_APPROVAL_REQUESTED,
        ACCOUNT_DISCONNECTED,
        MEDIA_READY,
        KEY_CREATED,
        KEY_REVOKED,
        KEY_EXPIRING,
        FEED_ITEM_CREATED,
        WEBHOOK_DISABLED,
        AGENT_RUN_COMPLETED,
        AGENT_RUN_FAILED,
    ];
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub workspace_id: crier_core::ids::WorkspaceId,
    pub livemode: bool,
    pub kind: String,
    pub data: Value,
    pub created_at: i64,
}

impl Event {
    /// The body delivered to endpoints: `{"id","type","created_at","data"}`.
    pub fn body(&self) -> Value {
        serde_json::json!({
            "id": self.id.as_str(),
            "type": self.kind,
            "created_at": crier_core::clock::from_ms(self.created_at),
            "data": self.data,
        })
    }
}

/// Whether an endpoint's subscription list takes `kind` (`*` takes all).
pub fn subscribed(events: &[String], kind: &str) -> bool {
    events.iter().any(|e| e == "*" || e == kind)
}

pub(crate) fn event_from_row(r: &sqlx::any::AnyRow) -> Result<Event> {
    let data: String = r.try_get("data")?;
    Ok(Event {
        id: EventId::from_trusted(r.try_get("id")?),
        workspace_id: crier_core::ids::WorkspaceId::from_trusted(r.try_get("workspace_id")?),
        livemode: r.try_get::<i64, _>("livemode")? != 0,
        kind: r.try_get("type")?,
        data: serde_json::from_str(&data)
            .map_err(|e| crate::model::corrupt(format!("data: {e}")))?,
        created_at: r.try_get("created_at")?,
    })
}

/// Writes an event and a delivery for every enabled endpoint of the workspace (and mode)
/// subscribed to its type; with `only_endpoint`, for that endpoint alone (test events).
///
/// The fan-out happens here, inside the emitting transaction (a key creation, a post's
/// status change, ...), so its size is that transaction's size: it is bounded because a
/// workspace has at most `webhook_max_endpoints` endpoints per mode (16 by default, never more
/// than 100; `Store::insert_endpoint` enforces it), i.e. at most 100 deliveries and 100 jobs
/// per event.
pub(crate) async fn emit(
    tx: &mut sqlx::Transaction<'static, Any>,
    workspace: &str,
    livemode: bool,
    kind: &str,
    data: &Value,
    now: i64,
    only_endpoint: Option<&str>,
) -> Result<EventId> {
    let id = EventId::generate();
    let insert = "INSERT INTO events (id, workspace_id, livemode, type, data, created_at)
         VALUES ($4, $1, $2, $5, $6, $7)";
    let endpoints = "SELECT id, events FROM webhook_endpoints
         WHERE workspace_id = $1 AND livemode = $2 AND enabled = 1 AND ($3 IS NULL OR id = $3)";
    let query = |sql| {
        sqlx::query(sql)
            .bind(workspace)
            .bind(livemode as i64)
            .bind(only_endpoint)
            .bind(id.as_str())
            .bind(kind)
            .bind(data.to_string())
            .bind(now)
    };
    // The event and the endpoints it goes to: one round trip on PostgreSQL (a `WITH`), two
    // statements on SQLite.
    let endpoints = if crate::is_postgres(tx) {
        query(sqlx::AssertSqlSafe(format!(
            "WITH e AS ({insert}) {endpoints}"
        )))
        .fetch_all(&mut **tx)
        .await?
    } else {
        query(sqlx::AssertSqlSafe(insert.to_owned()))
            .execute(&mut **tx)
            .await?;
        query(sqlx::AssertSqlSafe(endpoints.to_owned()))
            .fetch_all(&mut **tx)
            .await?
    };
    for row in endpoints {
        let endpoint: String = row.try_get("id")?;
        let events: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("events")?)
            .map_err(|e| crate::model::corrupt(format!("events: {e}")))?;
        if only_endpoint.is_none() && !subscribed(&events, kind) {
            continue;
        }
        let delivery = DeliveryId::generate();
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, event_id, status,
                attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)",
        )
        .bind(delivery.as_str())
        .bind(workspace)
        .bind(&endpoint)
        .bind(id.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO jobs (id, kind, workspace_id, ref_id, run_at, locked_until, created_at)
             VALUES ($1, $2, $3, $4, $5, 0, $5)",
        )
        .bind(JobId::generate().as_str())
        .bind(JobKind::Webhook.as_str())
        .bind(workspace)
        .bind(delivery.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(id)
}

/// An event for [`emit_many`].
pub(crate) struct NewEvent<'a> {
    pub workspace: &'a str,
    pub livemode: bool,
    pub kind: &'a str,
    pub data: Value,
    pub created_at: i64,
}

/// [`emit`] for many events at once: each is written with a delivery (and its job) for every
/// enabled endpoint of its workspace and mode subscribed to its type, in two statements (four
/// on SQLite) however many there are. Bounded as [`emit`] is: at most 100 endpoints per
/// workspace and mode.
pub(crate) async fn emit_many(
    tx: &mut sqlx::Transaction<'static, Any>,
    events: &[NewEvent<'_>],
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let rows: Vec<(EventId, &NewEvent)> = events.iter().map(|e| (EventId::generate(), e)).collect();
    let json = serde_json::Value::Array(
        rows.iter()
            .map(|(id, e)| {
                serde_json::json!({"id": id.as_str(), "ws": e.workspace, "lm": e.livemode as i64,
                    "kind": e.kind, "data": e.data.to_string(), "at": e.created_at})
            })
            .collect(),
    )
    .to_string();
    let pg = crate::is_postgres(tx);
    let x = crate::with_recordset(
        pg,
        &[
            ("id", "text"),
            ("ws", "text"),
            ("lm", "bigint"),
            ("kind", "text"),
            ("data", "text"),
            ("at", "bigint"),
        ],
    );
    let insert = "INSERT INTO events (id, workspace_id, livemode, type, data, created_at)
        SELECT id, ws, lm, kind, data, at FROM x WHERE true ORDER BY id";
    let endpoints = "SELECT id, workspace_id, livemode, events FROM webhook_endpoints
         WHERE enabled = 1 AND (workspace_id, livemode) IN (SELECT ws, lm FROM x)";
    // The events and the endpoints they go to: one round trip on PostgreSQL (a `WITH`), two
    // statements on SQLite.
    if !pg {
        sqlx::query(sqlx::AssertSqlSafe(format!("{x} {insert}")))
            .bind(&json)
            .execute(&mut **tx)
            .await?;
    }
    let endpoints = sqlx::query(sqlx::AssertSqlSafe(if pg {
        format!("{x}, e AS ({insert}) {endpoints}")
    } else {
        format!("{x} {endpoints}")
    }))
    .bind(&json)
    .fetch_all(&mut **tx)
    .await?;
    let mut deliveries = Vec::new();
    for row in endpoints {
        let endpoint: String = row.try_get("id")?;
        let ws: String = row.try_get("workspace_id")?;
        let live = row.try_get::<i64, _>("livemode")? != 0;
        let subscribed_to: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("events")?)
            .map_err(|e| crate::model::corrupt(format!("events: {e}")))?;
        for (id, e) in &rows {
            if e.workspace == ws && e.livemode == live && subscribed(&subscribed_to, e.kind) {
                deliveries.push(serde_json::json!({
                    "d": DeliveryId::generate().as_str(), "j": JobId::generate().as_str(),
                    "ws": ws, "ep": endpoint, "ev": id.as_str(), "at": e.created_at,
                }));
            }
        }
    }
    if deliveries.is_empty() {
        return Ok(());
    }
    let x = crate::with_recordset(
        pg,
        &[
            ("d", "text"),
            ("j", "text"),
            ("ws", "text"),
            ("ep", "text"),
            ("ev", "text"),
            ("at", "bigint"),
        ],
    );
    let deliveries = serde_json::Value::Array(deliveries).to_string();
    let delivery = "INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, event_id,
            status, attempts, created_at, updated_at)
        SELECT d, ws, ep, ev, 'pending', 0, at, at FROM x";
    let job = format!(
        "INSERT INTO jobs (id, kind, workspace_id, ref_id, run_at, locked_until, created_at)
         SELECT j, '{}', ws, d, at, 0, at FROM x",
        JobKind::Webhook.as_str()
    );
    let statements = if pg {
        vec![format!("{x}, d AS ({delivery}) {job}")]
    } else {
        vec![format!("{x} {delivery}"), format!("{x} {job}")]
    };
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&deliveries)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
