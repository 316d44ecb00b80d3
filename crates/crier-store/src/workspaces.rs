use crier_core::ids::WorkspaceId;

use crate::model::{Workspace, WorkspaceChanges, workspace_from_row};
use crate::{Result, Store, unique_to_conflict};

const COLUMNS: &str = "id, name, plan, timezone, require_approval, created_at, updated_at";

impl Store {
    pub async fn create_workspace(&self, name: &str, plan: &str, now: i64) -> Result<Workspace> {
        let ws = Workspace {
            id: WorkspaceId::generate(),
            name: name.to_owned(),
            plan: plan.to_owned(),
            timezone: "UTC".to_owned(),
            require_approval: false,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO workspaces (id, name, plan, timezone, require_approval, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(ws.id.as_str())
        .bind(&ws.name)
        .bind(&ws.plan)
        .bind(&ws.timezone)
        .bind(ws.require_approval as i64)
        .bind(now)
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(unique_to_conflict("a workspace with this name"))?;
        Ok(ws)
    }

    pub async fn get_workspace(&self, id: &WorkspaceId) -> Result<Option<Workspace>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM workspaces WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    /// Finds a workspace by its id or, failing that, its name (the admin CLI accepts both).
    pub async fn find_workspace(&self, id_or_name: &str) -> Result<Option<Workspace>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM workspaces WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1"
        )))
        .bind(id_or_name)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM workspaces ORDER BY id"
        )))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(workspace_from_row).collect()
    }

    pub async fn update_workspace(
        &self,
        id: &WorkspaceId,
        changes: &WorkspaceChanges,
        now: i64,
    ) -> Result<Option<Workspace>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE workspaces SET
                timezone = COALESCE($2, timezone),
                require_approval = COALESCE($3, require_approval),
                plan = COALESCE($4, plan),
                updated_at = $5
             WHERE id = $1
             RETURNING {COLUMNS}"
        )))
        .bind(id.as_str())
        .bind(changes.timezone.as_deref())
        .bind(changes.require_approval.map(i64::from))
        .bind(changes.plan.as_deref())
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(workspace_from_row).transpose()
    }
}
