//! The two-backend harness, after crier-store's conformance suite: a test written with
//! `both!(name, |db| async move { … })` becomes `name::sqlite` (a temp file) and
//! `name::postgres` (a fresh schema in the database named by `CRIER_TEST_DATABASE_URL`).
//! Without the variable the PostgreSQL side is skipped with a line on stderr, except in CI
//! (`CI=true`), where a missing database is a failure; when it is set, an unreachable database
//! fails the test.

use std::future::Future;

use crier_store::{Backend, Store};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tempfile::TempDir;

const DATABASE_URL_VAR: &str = "CRIER_TEST_DATABASE_URL";
/// Test schemas older than this are dropped when a new one is made.
const STALE_SCHEMA_SECS: u64 = 3600;

/// A migrated store, and the URL it was opened with (so a test can open a second one: another
/// node on the same database).
pub struct TestDb {
    pub store: Store,
    pub url: String,
}

impl TestDb {
    /// Another store (its own connections) on the same database.
    pub async fn connect_again(&self) -> Store {
        Store::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect a second store: {e}"))
    }
}

/// A migrated store on a fresh SQLite file; the file lives as long as the `TempDir`.
pub async fn sqlite_db() -> (TestDb, TempDir) {
    let dir = tempfile::tempdir().expect("create a temp dir");
    let url = format!("sqlite://{}", dir.path().join("crier.db").display());
    let store = connect_migrated(&url).await;
    assert_eq!(store.backend(), Backend::Sqlite);
    (TestDb { store, url }, dir)
}

/// A fresh schema in the test PostgreSQL database.
pub struct PgSchema {
    base: String,
    name: String,
    url: String,
}

impl PgSchema {
    /// Creates a uniquely named schema (`crier_t_<unix secs, hex>_<random hex>`, the naming
    /// crier-store's suite sweeps too), or `None` to skip.
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

    /// A migrated store in this schema.
    pub async fn db(&self) -> TestDb {
        let store = connect_migrated(&self.url).await;
        assert_eq!(store.backend(), Backend::Postgres);
        TestDb {
            store,
            url: self.url.clone(),
        }
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

/// `CRIER_TEST_DATABASE_URL`, or `None` to skip; panics in CI.
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

/// `base` with `options=-c search_path=<schema>`, so every connection starts in the schema.
fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

async fn connect_migrated(url: &str) -> Store {
    let store = Store::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to the test database: {e}"));
    store.migrate().await.expect("migrate a fresh database");
    store
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

/// `both!(name, |db| async move { … })` defines `name::sqlite` and `name::postgres`, each
/// running the body on a fresh, migrated database of that backend. The runtime has several
/// threads so that concurrent workers really run at once.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let (db, _dir) = common::sqlite_db().await;
                common::run(db, $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(schema) = common::PgSchema::create().await else {
                    return;
                };
                common::run(schema.db().await, $body).await;
                schema.drop().await;
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// For the webhook tests: raw reads of the database, and a local receiver
// ---------------------------------------------------------------------------------------------

impl TestDb {
    /// Runs a read-only query on a connection of its own and returns the first column of every
    /// row as an integer (for what the `Store` has no reader for, such as the job queue).
    #[allow(dead_code)]
    pub async fn query_i64(&self, sql: &'static str) -> Vec<i64> {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect for a raw query: {e}"));
        let out = sqlx::query_scalar::<_, i64>(sql)
            .fetch_all(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
        out
    }
}

/// One request a [`Receiver`] got.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

#[allow(dead_code)]
impl Received {
    /// A header's value as text (panics when it is missing).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .expect("a text header")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How a [`Receiver`] answers one request.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: std::time::Duration,
}

#[allow(dead_code)]
impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: std::time::Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Waits this long before answering.
    pub fn delay(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct ReceiverState {
    /// Scripted replies by path, used up in order; past them every request gets `200 ok`.
    replies: std::collections::HashMap<String, std::collections::VecDeque<Reply>>,
    received: Vec<Received>,
}

/// An HTTP server on a local address that records every request (any method, any path) and
/// answers what it was scripted to, per path.
#[allow(dead_code)]
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    state: std::sync::Arc<std::sync::Mutex<ReceiverState>>,
    task: tokio::task::JoinHandle<()>,
}

#[allow(dead_code)]
impl Receiver {
    /// A receiver on 127.0.0.1 and a free port.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> Self {
        use axum::body::Bytes;
        use axum::extract::State;
        use axum::http::{HeaderMap, Uri};
        type Shared = std::sync::Arc<std::sync::Mutex<ReceiverState>>;

        async fn handle(
            State(state): State<Shared>,
            uri: Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> axum::response::Response {
            let path = uri.path().to_owned();
            let reply = {
                let mut s = state.lock().unwrap();
                s.received.push(Received {
                    path: path.clone(),
                    headers,
                    body: body.to_vec(),
                });
                s.replies.get_mut(&path).and_then(|q| q.pop_front())
            };
            let reply = reply.unwrap_or_else(|| Reply::status(200).body("ok"));
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            let mut resp = axum::response::Response::builder().status(reply.status);
            for (n, v) in &reply.headers {
                resp = resp.header(n, v);
            }
            resp.body(axum::body::Body::from(reply.body)).unwrap()
        }

        let state: Shared = Default::default();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind a receiver on {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Replies for the next requests to `path`, in order (after them: `200 ok`).
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        self.state
            .lock()
            .unwrap()
            .replies
            .entry(path.to_owned())
            .or_default()
            .extend(replies);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// The requests to one path, in arrival order.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
