//! Storage for crier on two backends, one behaviour: an embedded SQLite file for one machine,
//! PostgreSQL for several nodes.
//!
//! Both backends are served by one [`Store`] over sqlx's `Any` driver: the SQL is written in
//! the dialect both accept (`$N` placeholders, `RETURNING`, `ON CONFLICT`), ids and times are
//! TEXT and BIGINT epoch milliseconds, lists are JSON text. The few places the backends differ
//! (write serialisation, locks, change notifications) branch on [`Backend`] in one spot each.
//! Migrations live in one folder per backend, kept in step (a test checks their versions).
//!
//! Tenant scoping by construction: every method that reads or writes a workspace's data takes
//! the workspace id. The one exception is [`Store::key_by_digest`], the authentication look-up,
//! where the key itself is what names the workspace.

mod accounts;
mod agents;
mod attempts;
mod batch;
mod brands;
mod carousels;
mod clips;
mod connections;
mod devices;
mod events;
mod feeds;
mod finish;
mod group;
mod idempotency;
mod jobs;
mod kb;
mod keys;
mod media;
mod metrics;
mod migrate;
pub mod model;
mod notify;
mod oauth_server;
mod personas;
mod posts;
mod sandbox;
mod slots;
mod trending;
mod usage;
pub mod users;
pub mod views;
mod webhooks;
mod workspaces;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use agents::{
    Agent, AgentOutput, AgentRun, AgentSettings, AgentSources, RUNS_KEPT, RunInput, RunResult,
    RunStatus, RunTrigger,
};
pub use brands::{Brand, BrandChanges, StoredVoice};
pub use carousels::{Carousel, SlideText};
pub use clips::{ClipJob, ClipOutcome, ClipStatus, CutClip};
pub use connections::{ConnectState, RegisteredClient, StoredClient};
pub use devices::{DeviceLogin, DevicePoll, DeviceStatus};
pub use events::{Event, subscribed, types as event_types};
pub use feeds::{Feed, FeedMode, FeedPollSuccess, FeedSettings, NewFeedItem};
pub use idempotency::IdempotencyBegin;
pub use jobs::{AccountRoom, Claimed, MAX_ROOM_ACCOUNTS};
pub use kb::{KbDocument, KbFilter, KbInsert, KbKind, KbMatch, KbUsage, NewPassage};
pub use media::{ConfirmOutcome, DeleteOutcome, Media, MediaFacts, MediaStatus};
pub use migrate::{MIGRATIONS_POSTGRES, MIGRATIONS_SQLITE, Migration, SchemaStatus};
pub use model::*;
pub use notify::{KeyChange, KeyChanges, SAFETY_POLL_INTERVAL};
pub use oauth_server::{
    AppClient, AppCode, AppGrant, ClientKind, KEPT_REFRESH_TOKENS, NewGrant, Redeemed,
    RefreshToken, Refreshed,
};
pub use personas::MAX_PUBLISHED_TEXTS;
pub use posts::{TargetOutcome, Transition};
pub use sandbox::{Fault, FaultKind, SandboxPost};
pub use slots::QueuePlan;
pub use trending::{
    CachedTopic, DueTrendSource, MAX_TOPIC_CHARS, MAX_TOPICS_PER_SOURCE, PostText, TrendScope,
    TrendSource, TrendTopic,
};
pub use usage::{
    DAILY_USAGE_RETENTION_DAYS, METRIC_AI_CREDITS, METRIC_AI_CREDITS_TEST, METRIC_POSTS_PUBLISHED,
    METRIC_REQUESTS, PURGE_BATCH, REQUEST_LOG_RETENTION_MS, UsageBatch,
};
pub use users::{Invitation, InvitationRefusal, Member, Membership, Session, User};
pub use webhooks::{AttemptOutcome, Delivery, Endpoint, WebhookAttempt};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Config(String),
    /// A unique constraint refused the write (a name already taken, say).
    #[error("already exists: {0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A write grouped with others into one transaction (see `group.rs`) was not committed.
    #[error("{0}")]
    Batch(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// Reads, and on PostgreSQL writes too.
    read: AnyPool,
    /// On SQLite a pool of one connection: one writer at a time, so write transactions never
    /// fail with SQLITE_BUSY against each other inside this process.
    write: AnyPool,
    url: String,
    /// Where this process's next fair claim of each job kind starts among the workspaces
    /// with due jobs (`jobs.rs`): after the last one served, so past the cut each gets its
    /// turn.
    fair_cursor: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
    /// Set while this process must claim no work ([`Store::hold_claims`]).
    claims_held: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Told in this process, right after the commit, of every key a write changed (see
    /// [`Store::on_key_change`]).
    key_listeners: KeyListeners,
    /// The writers of targets' ends (`finish.rs`).
    finishing: batch::Batches<finish::Finishing>,
    /// The writers of calls' starts (`attempts.rs`).
    beginning: batch::Batches<attempts::Beginning>,
    /// The writers of the sandbox network's timelines (`sandbox.rs`).
    sandbox_entries: batch::Batches<sandbox::Entries>,
}

type KeyListener = Box<dyn Fn(&crier_core::KeyDigest) + Send + Sync>;

/// The listeners of [`Store::on_key_change`].
#[derive(Clone, Default)]
struct KeyListeners(std::sync::Arc<std::sync::RwLock<Vec<KeyListener>>>);

impl std::fmt::Debug for KeyListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyListeners")
    }
}

impl Store {
    /// Opens `sqlite://path` (the file and its folder are created) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = AnyConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("database_url: {e}")))?;
            let pool = AnyPoolOptions::new()
                .max_connections(32)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            return Ok(Self {
                backend: Backend::Postgres,
                read: pool.clone(),
                finishing: batch::Batches::start(batch::Sink::Postgres(pool.clone())),
                beginning: batch::Batches::start(batch::Sink::Postgres(pool.clone())),
                sandbox_entries: batch::Batches::start(batch::Sink::Postgres(pool.clone())),
                write: pool,
                url: url.to_owned(),
                fair_cursor: Default::default(),
                claims_held: Default::default(),
                key_listeners: Default::default(),
            });
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                StoreError::Config(format!(
                    "database_url must start with sqlite:// or postgres://, got `{url}`"
                ))
            })?;
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::Config(
                "database_url: an in-memory SQLite database cannot be shared by the server's \
                 connections; give a file path"
                    .into(),
            ));
        }
        if let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let opts = AnyConnectOptions::from_str(&format!("sqlite://{path}?mode=rwc"))
            .map_err(|e| StoreError::Config(format!("database_url: {e}")))?;
        let sqlite_pool = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                        Ok(())
                    })
                })
        };
        let write = sqlite_pool(1).connect_with(opts.clone()).await?;
        let read = sqlite_pool(8).connect_with(opts).await?;
        let group = group::GroupCommit::start(write.clone());
        Ok(Self {
            backend: Backend::Sqlite,
            read,
            finishing: batch::Batches::start(batch::Sink::Sqlite(group.clone())),
            beginning: batch::Batches::start(batch::Sink::Sqlite(group.clone())),
            sandbox_entries: batch::Batches::start(batch::Sink::Sqlite(group)),
            write,
            url: url.to_owned(),
            fair_cursor: Default::default(),
            claims_held: Default::default(),
            key_listeners: Default::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Calls `f` with the digest of every key a write of this process changes (revoked,
    /// updated, rotated, an OAuth grant's secret replaced), right after it commits: how this
    /// node's authentication cache forgets it at once. Other processes learn of it through
    /// the key-change notification (`notify.rs`).
    pub fn on_key_change(&self, f: impl Fn(&crier_core::KeyDigest) + Send + Sync + 'static) {
        self.key_listeners
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(f));
    }

    /// Tells the listeners of [`Store::on_key_change`]; call after the commit.
    pub(crate) fn key_changed(&self, digest: &crier_core::KeyDigest) {
        for f in self
            .key_listeners
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            f(digest);
        }
    }

    /// What ends the sub-select of a claim so two nodes never take the same rows: `FOR UPDATE
    /// SKIP LOCKED` on PostgreSQL; nothing on SQLite, where write transactions are serialised.
    pub(crate) fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    /// What ends a read that must hold its rows until the transaction ends, against a
    /// concurrent change of them (a membership, a key's maker): `FOR SHARE` on PostgreSQL;
    /// nothing on SQLite, where a write transaction is the only writer.
    pub(crate) fn for_share(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "FOR SHARE",
            Backend::Sqlite => "",
        }
    }

    /// The strings of the JSON array `expr` (a JSON list column, or a `$N` bound to JSON text)
    /// as a table `alias` with one column, `value`. A list of any length (the accounts a key
    /// reaches) is so one bind, on both backends.
    pub(crate) fn json_rows(&self, expr: &str, alias: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("json_each({expr}) AS {alias}"),
            Backend::Postgres => {
                format!("jsonb_array_elements_text(CAST({expr} AS jsonb)) AS {alias}(value)")
            }
        }
    }

    /// The entries of the JSON object `expr` as a table `alias` with columns `key` and `value`
    /// (a number's `value` is text on PostgreSQL: cast it).
    pub(crate) fn json_map_rows(&self, expr: &str, alias: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("json_each({expr}) AS {alias}"),
            Backend::Postgres => {
                format!("jsonb_each_text(CAST({expr} AS jsonb)) AS {alias}(key, value)")
            }
        }
    }

    /// `(SELECT … )` of the strings of the JSON array `expr`, for `x IN …`.
    pub(crate) fn json_values(&self, expr: &str) -> String {
        format!("(SELECT jv.value FROM {})", self.json_rows(expr, "jv"))
    }

    /// `column` is one of the strings of the JSON array `expr` (a `$N` bound to JSON text): on
    /// PostgreSQL as `= ANY` of an array built once, which the planner answers with the
    /// column's index however it costs a scan (a sub-select's rows it may hash against a scan
    /// of the whole table); on SQLite as `IN` a sub-select.
    pub(crate) fn in_json_list(&self, column: &str, expr: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("{column} IN {}", self.json_values(expr)),
            Backend::Postgres => format!(
                "{column} = ANY (ARRAY(SELECT jsonb_array_elements_text(CAST({expr} AS jsonb))))"
            ),
        }
    }

    /// How far the database server's clock is ahead of `local` (epoch ms; negative: behind),
    /// measured against the middle of the shortest of three round trips (the first may open
    /// a connection). `None` on SQLite, which runs on this machine's clock. Nodes compare
    /// their own clocks through the leases and due times they store, so a node whose clock
    /// is far off the database's (and so the other nodes') must not claim work.
    pub async fn clock_offset_ms(&self, local: impl Fn() -> i64) -> Result<Option<i64>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut best: Option<(i64, i64)> = None;
        for _ in 0..3 {
            let before = local();
            let db: i64 = sqlx::query_scalar(
                "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)",
            )
            .fetch_one(&self.read)
            .await?;
            let after = local();
            let sample = (after - before, db - (before + (after - before) / 2));
            if best.is_none_or(|(trip, _)| sample.0 < trip) {
                best = Some(sample);
            }
        }
        Ok(best.map(|(_, offset)| offset))
    }

    /// Holds (or lets go again) every claim of work this process makes through this store
    /// (and its clones): publish and other jobs, feeds, token refreshes, trend sources. While
    /// held, a claim takes nothing and the work stays for other nodes; what is in hand goes
    /// on. For a node whose clock cannot be trusted against the others' (`crier serve`'s clock
    /// watch): claims are where one node's clock meets another's leases.
    pub fn hold_claims(&self, held: bool) {
        self.claims_held
            .store(held, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether claims are held ([`Store::hold_claims`]).
    pub fn claims_held(&self) -> bool {
        self.claims_held.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Readiness: can we run a query right now?
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// Opens a write transaction (serialised on SQLite).
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write.begin().await?,
        })
    }
}

/// A write transaction, as [`Store::begin`] opens it.
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Whether `tx` runs on PostgreSQL, whose writable `WITH` lets a unit do in one round trip
/// what SQLite does in several statements (SQLite's statements run in-process and cost no
/// round trip).
pub(crate) fn is_postgres(tx: &Tx) -> bool {
    tx.backend_name() == "PostgreSQL"
}

/// The objects of the JSON array bound to `$1` as a table `x` with the columns `cols` (each a
/// name and its PostgreSQL type): how a statement takes many rows' values in one bind.
pub(crate) fn recordset(pg: bool, cols: &[(&str, &str)]) -> String {
    if pg {
        let cols: Vec<String> = cols.iter().map(|(n, t)| format!("{n} {t}")).collect();
        format!(
            "jsonb_to_recordset(CAST($1 AS jsonb)) AS x({})",
            cols.join(", ")
        )
    } else {
        let cols: Vec<String> = cols
            .iter()
            .map(|(n, _)| format!("json_extract(value, '$.{n}') AS {n}"))
            .collect();
        format!("(SELECT {} FROM json_each($1)) AS x", cols.join(", "))
    }
}

/// [`recordset`] as a statement's `WITH x AS (…)`, which its later parts name as `x`.
pub(crate) fn with_recordset(pg: bool, cols: &[(&str, &str)]) -> String {
    format!("WITH x AS (SELECT * FROM {})", recordset(pg, cols))
}

/// A value as the JSON text the list and object columns hold.
pub(crate) fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("serialisable")
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
fn unique_to_conflict(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(what.to_owned())
        }
        _ => StoreError::Database(e),
    }
}
