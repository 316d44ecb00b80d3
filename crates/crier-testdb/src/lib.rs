//! Test databases on both backends, for every crier test suite that touches storage.
//!
//! A test written with `both!(name, |db| async move { … })` becomes `name::sqlite` (a fresh
//! file) and `name::postgres` (a fresh schema in the database named by
//! `CRIER_TEST_DATABASE_URL`); `cargo test postgres` runs one side. Plain `async fn` tests
//! listed in `both!(tests: name_a, name_b, …)` take no argument: whatever they build with
//! [`TestDb::fresh`] lands on the backend of the variant that runs (the API suites use this,
//! so their `TestApp` needs no parameter).
//!
//! Without `CRIER_TEST_DATABASE_URL` the PostgreSQL side is skipped with a line on stderr,
//! except in CI (`CI=true`), where a missing database is a failure. When the variable is set,
//! an unreachable database fails the test: a skipped suite must never look like a green one.

use std::future::Future;
use std::path::{Path, PathBuf};

pub use crier_store::Backend;
use crier_store::{MIGRATIONS_POSTGRES, MIGRATIONS_SQLITE, Store};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tempfile::TempDir;

mod world;
pub use world::{T0, World};

pub const DATABASE_URL_VAR: &str = "CRIER_TEST_DATABASE_URL";
/// Test schemas older than this are dropped when a new one is made (see [`PgSchema::create`]).
const STALE_SCHEMA_SECS: u64 = 3600;

tokio::task_local! {
    static BACKEND: Backend;
}

/// Runs `test` with [`TestDb::fresh`] answering databases of `backend`.
pub async fn on_backend<F: Future>(backend: Backend, test: F) -> F::Output {
    BACKEND.scope(backend, test).await
}

/// The backend of the running `both!` variant (`None` outside one).
pub fn current_backend() -> Option<Backend> {
    BACKEND.try_with(|b| *b).ok()
}

/// A migrated store on a database of its own, and the URL it was opened with (so a test can
/// open a second store, another node on the same database, or run a raw query). A PostgreSQL
/// schema is dropped when the `TestDb` is dropped, unless the test failed (then it is kept for
/// a look, until a run more than an hour later sweeps it).
pub struct TestDb {
    pub store: Store,
    pub url: String,
    dir: Option<TempDir>,
    schema: Option<PgSchema>,
}

impl TestDb {
    /// A database of the backend the running `both!` variant is for (SQLite outside one).
    /// `None` means the PostgreSQL variant is skipped (see the crate docs).
    pub async fn fresh() -> Option<Self> {
        match BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite) {
            Backend::Sqlite => Some(Self::sqlite().await),
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// A migrated store on a fresh SQLite file in a temporary directory.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let url = format!("sqlite://{}", dir.path().join("crier.db").display());
        let store = connect_migrated(&url).await;
        assert_eq!(store.backend(), Backend::Sqlite);
        Self {
            store,
            url,
            dir: Some(dir),
            schema: None,
        }
    }

    /// A migrated store in a fresh schema of the test PostgreSQL database, or `None` to skip.
    pub async fn postgres() -> Option<Self> {
        let schema = PgSchema::create().await?;
        let store = connect_migrated(&schema.url).await;
        assert_eq!(store.backend(), Backend::Postgres);
        Some(Self {
            store,
            url: schema.url.clone(),
            dir: None,
            schema: Some(schema),
        })
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// The SQLite file, for tests that look at what is at rest (`None` on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("crier.db"))
    }

    /// A directory that lives as long as this database (a temporary one on PostgreSQL too).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(TempDir::path)
    }

    /// Another store (its own connections) on the same database.
    pub async fn connect_again(&self) -> Store {
        Store::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect a second store: {e}"))
    }

    /// Runs a read-only query on a connection of its own and returns the first column of every
    /// row as an integer (for what the `Store` has no reader for, such as the job queue).
    pub async fn query_i64(&self, sql: &'static str) -> Vec<i64> {
        self.query(sql).await
    }

    /// [`TestDb::query_i64`] for a text column (NULL as `None`).
    pub async fn query_texts(&self, sql: &'static str) -> Vec<Option<String>> {
        self.query(sql).await
    }

    /// Runs statements (DDL such as a trigger that injects a storage fault) on a connection of
    /// its own, bypassing the store.
    pub async fn execute(&self, sql: &'static str) {
        execute(&self.url, sql).await
    }

    async fn query<T>(&self, sql: &'static str) -> Vec<T>
    where
        T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
        (T,): for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect for a raw query: {e}"));
        let out = sqlx::query_scalar::<_, T>(sql)
            .fetch_all(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
        out
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else {
            return;
        };
        if std::thread::panicking() {
            return;
        }
        // Drop may run inside a runtime, which cannot block on another future: a thread of
        // its own does the dropping.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(schema.drop());
        })
        .join();
    }
}

/// Runs one test body and closes the store after it.
pub async fn run<F, Fut>(db: TestDb, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = db.store.clone();
    body(db).await;
    store.close().await;
}

/// Whether PostgreSQL variants run here (see the crate docs; panics in CI without a database).
pub fn postgres_configured() -> bool {
    pg_base_url().is_some()
}

/// `both!(name, |db| async move { … })` defines `name::sqlite` and `name::postgres`, each
/// running the body on a fresh, migrated [`TestDb`] of that backend. `both!(tests: a, b, c)` turns
/// the plain `async fn a()` (and `b`, `c`) into `a::sqlite` and `a::postgres`, each running the
/// function with [`TestDb::fresh`] answering that backend. The runtime has several threads so
/// that concurrent workers really run at once.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $crate::run($crate::TestDb::sqlite().await, $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(db) = $crate::TestDb::postgres().await else {
                    return;
                };
                $crate::run(db, $body).await;
            }
        }
    };
    (tests: $($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::on_backend($crate::Backend::Sqlite, super::$test()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if !$crate::postgres_configured() {
                        return;
                    }
                    $crate::on_backend($crate::Backend::Postgres, super::$test()).await;
                }
            }
        )+
    };
}

/// A fresh schema in the test PostgreSQL database.
pub struct PgSchema {
    /// `CRIER_TEST_DATABASE_URL`.
    pub base: String,
    pub name: String,
    /// `base` with the schema as `search_path`.
    pub url: String,
}

impl PgSchema {
    /// Creates a uniquely named schema, or returns `None` to skip (see [`pg_base_url`]).
    /// Panics when the variable is set but the database cannot be reached.
    ///
    /// Schemas are named `crier_t_<unix seconds, hex>_<random hex>`. A test drops its schema
    /// when it passes; a failed one keeps it for a look, until a run more than an hour later
    /// sweeps it. The sweep is best effort and spares anything a running suite may still use.
    pub async fn create() -> Option<Self> {
        let base = pg_base_url()?;
        let mut admin = PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("{DATABASE_URL_VAR} is set but cannot be reached: {e}"));
        let now = unix_secs();
        let existing: Vec<String> = sqlx::query_scalar(
            r"SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'crier\_t\_%'",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap_or_default();
        for name in existing {
            let created = name
                .split('_')
                .nth(2)
                .and_then(|s| u64::from_str_radix(s, 16).ok());
            if created.is_some_and(|c| c + STALE_SCHEMA_SECS < now) {
                drop_schema(&mut admin, &name).await;
            }
        }
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).expect("OS randomness");
        let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("crier_t_{now:x}_{random}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create schema {name}: {e}"));
        admin.close().await.ok();
        let url = with_search_path(&base, &name);
        Some(Self { base, name, url })
    }

    pub async fn drop(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.base).await {
            drop_schema(&mut admin, &self.name).await;
            admin.close().await.ok();
        }
    }
}

async fn drop_schema(admin: &mut PgConnection, name: &str) {
    let sql = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(admin).await;
}

/// `CRIER_TEST_DATABASE_URL`, or `None` to skip; panics in CI, where skipping would hide the
/// PostgreSQL half of the suite.
fn pg_base_url() -> Option<String> {
    match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{DATABASE_URL_VAR} must be set in CI")
        }
        _ => {
            eprintln!("skipping the PostgreSQL variant: {DATABASE_URL_VAR} is not set");
            None
        }
    }
}

/// `base` with `options=-c search_path=<schema>`, which sqlx's PgConnectOptions sends as the
/// startup `options`, so every connection of every pool made from it starts in the schema.
pub fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// Connects and migrates a fresh database, checking that the first `migrate` applies every
/// migration of the backend.
pub async fn connect_migrated(url: &str) -> Store {
    let store = Store::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to the test database: {e}"));
    let applied = store.migrate().await.expect("migrate a fresh database");
    let all: Vec<i64> = match store.backend() {
        Backend::Sqlite => MIGRATIONS_SQLITE,
        Backend::Postgres => MIGRATIONS_POSTGRES,
    }
    .iter()
    .map(|m| m.version)
    .collect();
    assert_eq!(applied, all, "a fresh database gets every migration");
    store
}

/// Runs statements on the database at `url` on a connection of its own, bypassing any store
/// (a fault to inject, a row only another release would write).
pub async fn execute(url: &str, sql: &'static str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect for a raw statement: {e}"));
    sqlx::raw_sql(sql)
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
}

/// The variable naming the Redis server tests of shared rate limits use.
pub const REDIS_URL_VAR: &str = "CRIER_TEST_REDIS_URL";

/// `CRIER_TEST_REDIS_URL`, or `None` to skip; panics in CI, where skipping would hide the
/// shared-limits half of the suite.
pub fn redis_url() -> Option<String> {
    match std::env::var(REDIS_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{REDIS_URL_VAR} must be set in CI")
        }
        _ => {
            eprintln!("skipping: {REDIS_URL_VAR} is not set");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_joins_the_url_query() {
        assert_eq!(
            with_search_path("postgres://u@h:5432/db", "s1"),
            "postgres://u@h:5432/db?options=-c%20search_path%3Ds1"
        );
        assert_eq!(
            with_search_path("postgres://u@h/db?sslmode=disable", "s1"),
            "postgres://u@h/db?sslmode=disable&options=-c%20search_path%3Ds1"
        );
    }
}
