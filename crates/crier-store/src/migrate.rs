//! A small migration runner: numbered SQL files per backend, applied in order, each in its own
//! transaction, recorded in `crier_migrations`. Several nodes starting at once are serialised
//! (an advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite).

use sqlx::{Executor, Row};

use crate::{Backend, Result, Store};

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migrations {
    ($dir:literal: $($version:literal $name:literal),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../migrations/", $dir, "/", $name, ".sql")),
        }),*]
    };
}

pub const MIGRATIONS_SQLITE: &[Migration] = migrations!("sqlite":
    1 "0001_foundation",
    2 "0002_publishing",
    3 "0003_webhooks",
    4 "0004_feeds",
    5 "0005_key_changes",
    6 "0006_post_version",
    7 "0007_test_mode_slots",
    8 "0008_connections",
    9 "0009_media",
    10 "0010_hosted_networks",
    11 "0011_brands",
    12 "0012_knowledge",
    13 "0013_trending",
    14 "0014_users",
    15 "0015_request_log",
    16 "0016_analytics_index",
    17 "0017_sandbox_latency",
    18 "0018_jobs_fair",
    19 "0019_oauth_server",
    20 "0020_agents",
    21 "0021_carousels",
    22 "0022_clips",
    23 "0023_usage_shards",
    24 "0024_post_lists",
    25 "0025_key_users",
    26 "0026_key_users_backfill",
    27 "0027_key_members",
);
pub const MIGRATIONS_POSTGRES: &[Migration] = migrations!("postgres":
    1 "0001_foundation",
    2 "0002_publishing",
    3 "0003_webhooks",
    4 "0004_feeds",
    5 "0005_key_changes",
    6 "0006_post_version",
    7 "0007_test_mode_slots",
    8 "0008_connections",
    9 "0009_media",
    10 "0010_hosted_networks",
    11 "0011_brands",
    12 "0012_knowledge",
    13 "0013_trending",
    14 "0014_users",
    15 "0015_request_log",
    16 "0016_analytics_index",
    17 "0017_sandbox_latency",
    18 "0018_jobs_fair",
    19 "0019_oauth_server",
    20 "0020_agents",
    21 "0021_carousels",
    22 "0022_clips",
    23 "0023_usage_shards",
    24 "0024_post_lists",
    25 "0025_key_users",
    26 "0026_key_users_backfill",
    27 "0027_key_members",
);

/// An arbitrary constant naming crier's migration lock on PostgreSQL.
const PG_MIGRATION_LOCK: i64 = 0x6372_6965_725f_6d69;

impl Store {
    fn migrations(&self) -> &'static [Migration] {
        match self.backend {
            Backend::Sqlite => MIGRATIONS_SQLITE,
            Backend::Postgres => MIGRATIONS_POSTGRES,
        }
    }

    /// Applies every migration not yet applied; returns the versions it applied.
    pub async fn migrate(&self) -> Result<Vec<i64>> {
        let mut conn = self.write.acquire().await?;
        // Lock before creating the bookkeeping table: PostgreSQL's CREATE TABLE IF NOT EXISTS
        // is not safe against itself, and two nodes starting on an empty database would race.
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(PG_MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        let result = self.apply_pending(&mut conn).await;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(PG_MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    async fn apply_pending(&self, conn: &mut sqlx::AnyConnection) -> Result<Vec<i64>> {
        use sqlx::Connection;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS crier_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await?;
        let mut applied = Vec::new();
        for m in self.migrations() {
            let mut tx = match self.backend {
                Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await?,
                Backend::Postgres => conn.begin().await?,
            };
            let done = sqlx::query("SELECT version FROM crier_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if done {
                continue;
            }
            tx.execute(sqlx::raw_sql(m.sql)).await?;
            sqlx::query(
                "INSERT INTO crier_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(jiff::Timestamp::now().as_millisecond())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
            applied.push(m.version);
        }
        Ok(applied)
    }

    /// How the database's schema compares with the migrations this build knows.
    pub async fn schema_status(&self) -> Result<SchemaStatus> {
        let known: Vec<i64> = self.migrations().iter().map(|m| m.version).collect();
        let exists = match self.backend {
            Backend::Sqlite => sqlx::query(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'crier_migrations'",
            ),
            Backend::Postgres => sqlx::query(
                "SELECT 1 FROM information_schema.tables WHERE table_name = 'crier_migrations' \
                 AND table_schema = current_schema()",
            ),
        }
        .fetch_optional(&self.read)
        .await?
        .is_some();
        let applied = match exists {
            true => self.applied_migrations().await?,
            false => Vec::new(),
        };
        Ok(SchemaStatus {
            known_latest: known.last().copied().unwrap_or(0),
            pending: known
                .iter()
                .filter(|v| !applied.contains(v))
                .copied()
                .collect(),
            unknown: applied
                .iter()
                .filter(|v| !known.contains(v))
                .copied()
                .collect(),
        })
    }

    /// Versions recorded as applied, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT version FROM crier_migrations ORDER BY version")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<i64, _>(0).map_err(Into::into))
            .collect()
    }
}

/// The schema against this build's migrations ([`Store::schema_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The newest migration this build knows.
    pub known_latest: i64,
    /// Known migrations not applied yet.
    pub pending: Vec<i64>,
    /// Applied migrations this build does not know (a newer release applied them).
    pub unknown: Vec<i64>,
}
