//! A workspace's weekly queue slots, one set per mode, and finding the next free one.
//!
//! Each mode has its own queue: its own slots, and only its own posts take its times.

use crier_core::ids::WorkspaceId;
use crier_core::queue::{HORIZON_WEEKS, Slot, next_free};
use sqlx::Row;

use crate::model::*;
use crate::{Result, Store};

/// A workspace's queue as finding a free slot sees it: its time zone (UTC when it names none
/// known), its weekly slots, and the times already taken within the horizon.
#[derive(Debug, Clone)]
pub struct QueuePlan {
    pub tz: jiff::tz::TimeZone,
    pub slots: Vec<Slot>,
    pub taken: Vec<i64>,
}

impl QueuePlan {
    /// The first free slot after `after`, within [`HORIZON_WEEKS`].
    pub fn next_free(&self, after: jiff::Timestamp) -> Option<jiff::Timestamp> {
        next_free(&self.slots, &self.tz, after, &self.taken, HORIZON_WEEKS)
    }
}

impl Store {
    /// Replaces the workspace's weekly slots of one mode: (ISO weekday 1–7, minute of the day).
    /// The other mode's slots are left as they are.
    pub async fn set_slots(
        &self,
        ws: &WorkspaceId,
        livemode: bool,
        slots: &[(i64, i64)],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM queue_slots WHERE workspace_id = $1 AND livemode = $2")
            .bind(ws.as_str())
            .bind(livemode as i64)
            .execute(&mut *tx)
            .await?;
        for (day, minute) in slots {
            sqlx::query(
                "INSERT INTO queue_slots (workspace_id, livemode, weekday, minute_of_day)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(ws.as_str())
            .bind(livemode as i64)
            .bind(*day)
            .bind(*minute)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The workspace's weekly slots of one mode, in week order.
    pub async fn slots(&self, ws: &WorkspaceId, livemode: bool) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT weekday, minute_of_day FROM queue_slots WHERE workspace_id = $1
               AND livemode = $2
             ORDER BY weekday, minute_of_day",
        )
        .bind(ws.as_str())
        .bind(livemode as i64)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// What finding a free queue slot in `workspace` needs, from `now` on, in one mode: that
    /// mode's slots and the times that mode's posts take (each mode has its own queue).
    pub async fn queue_plan(
        &self,
        workspace: &Workspace,
        livemode: bool,
        now: i64,
    ) -> Result<QueuePlan> {
        let slots = self
            .slots(&workspace.id, livemode)
            .await?
            .into_iter()
            .map(|(weekday, minute)| Slot { weekday, minute })
            .collect();
        // One week past the horizon: a slot in its last week may be taken at its far end.
        let horizon = now + (HORIZON_WEEKS + 1) * 7 * 86_400_000;
        Ok(QueuePlan {
            tz: jiff::tz::TimeZone::get(&workspace.timezone).unwrap_or(jiff::tz::TimeZone::UTC),
            slots,
            taken: self
                .scheduled_times(&workspace.id, livemode, now, horizon)
                .await?,
        })
    }

    /// Scheduled times of a workspace's posts of one mode in `[from, to)`, for finding a free
    /// queue slot.
    pub async fn scheduled_times(
        &self,
        ws: &WorkspaceId,
        livemode: bool,
        from: i64,
        to: i64,
    ) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT scheduled_at FROM posts WHERE workspace_id = $1 AND livemode = $2
               AND scheduled_at >= $3 AND scheduled_at < $4
               AND status IN ('scheduled', 'pending_approval')
             ORDER BY scheduled_at",
        )
        .bind(ws.as_str())
        .bind(livemode as i64)
        .bind(from)
        .bind(to)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}
