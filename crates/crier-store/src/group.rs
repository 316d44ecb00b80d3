//! Group commit for SQLite's one writer.
//!
//! SQLite lets one transaction write at a time, so under a publishing burst the writer's
//! connection passes from task to task, and every small transaction pays its own `BEGIN`,
//! `COMMIT`, hand-over and WAL write. A unit ([`UnitFn`]) is one such transaction's statements
//! (on SQLite, each batch of `batch.rs`): units go to one committer task that runs every unit
//! waiting (up to [`MAX_UNITS`]) in one transaction, each inside a savepoint of its own, commits
//! once, and only then answers each caller. A unit that fails is rolled back to its savepoint
//! alone; the others are unaffected. If the batch itself fails (the commit, or a savepoint),
//! every caller in it gets the error and nothing of the batch is written, exactly as if each
//! transaction had failed on its own.
//!
//! So a unit sees and does exactly what its own transaction would: SQLite serialises write
//! transactions anyway, and a savepoint's reads see the batch's earlier units as a later
//! transaction would see them committed.

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError, Tx};

/// Units one transaction of the committer holds at most.
pub const MAX_UNITS: usize = 128;
/// Units waiting for the committer at most; past it callers wait for room.
const QUEUE: usize = 4096;

/// A unit's statements, run in a transaction they may share with others.
pub(crate) type UnitFn<T> = Box<dyn for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T>> + Send>;

/// The committer's handle (SQLite only).
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Box<dyn Pending>>,
}

impl GroupCommit {
    /// Starts the committer over `write` (the pool of SQLite's one writer connection). It ends
    /// when every handle is dropped.
    pub(crate) fn start(write: AnyPool) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(committer(write, rx));
        Self { queue }
    }

    /// Runs `f` in the next batch and answers once the batch is committed (or failed).
    pub(crate) async fn run<T: Send + 'static>(&self, f: UnitFn<T>) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let unit = Box::new(Typed {
            f: Some(f),
            out: None,
            reply,
        });
        if self.queue.send(unit).await.is_err() {
            return Err(StoreError::Batch("the writer has stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Batch("the writer has stopped".into())))
    }
}

/// A unit with its caller, type-erased for the queue.
trait Pending: Send {
    /// Runs the unit's statements in `tx`: `true` when its writes stand.
    fn run<'t>(&'t mut self, tx: &'t mut Tx) -> BoxFuture<'t, bool>;
    /// Answers the caller: the unit's result if the batch committed, else the batch's error.
    fn answer(self: Box<Self>, batch: std::result::Result<(), &str>);
}

impl std::fmt::Debug for dyn Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

struct Typed<T> {
    f: Option<UnitFn<T>>,
    out: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send + 'static> Pending for Typed<T> {
    fn run<'t>(&'t mut self, tx: &'t mut Tx) -> BoxFuture<'t, bool> {
        Box::pin(async move {
            let Some(f) = self.f.take() else {
                return false;
            };
            // A panicking unit is that unit's failure, not the committer's end.
            let ran = std::panic::AssertUnwindSafe(async move { f(tx).await })
                .catch_unwind()
                .await;
            let (keep, out) = match ran {
                Ok(Ok(t)) => (true, Ok(t)),
                Ok(Err(e)) => (false, Err(e)),
                Err(_) => (false, Err(StoreError::Batch("a write panicked".into()))),
            };
            self.out = Some(out);
            keep
        })
    }

    fn answer(self: Box<Self>, batch: std::result::Result<(), &str>) {
        let out = match batch {
            Ok(()) => self
                .out
                .unwrap_or_else(|| Err(StoreError::Batch("the write did not run".into()))),
            Err(e) => Err(StoreError::Batch(e.to_owned())),
        };
        let _ = self.reply.send(out);
    }
}

async fn committer(write: AnyPool, mut rx: mpsc::Receiver<Box<dyn Pending>>) {
    let mut batch: Vec<Box<dyn Pending>> = Vec::with_capacity(MAX_UNITS);
    while rx.recv_many(&mut batch, MAX_UNITS).await > 0 {
        let done = run_batch(&write, &mut batch).await;
        if let Err(e) = &done {
            tracing::warn!(error = %e, units = batch.len(), "a group commit failed; its writes are refused");
        }
        for unit in batch.drain(..) {
            unit.answer(done.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

/// One transaction over `batch`, a savepoint per unit. A unit's savepoint is released and the
/// next one's taken in one statement (each is a hand-over to the writer's thread); the commit
/// releases the last.
async fn run_batch(
    write: &AnyPool,
    batch: &mut [Box<dyn Pending>],
) -> std::result::Result<(), String> {
    let failed = |e: sqlx::Error| format!("the grouped write failed: {e}");
    let mut tx = write.begin_with("BEGIN IMMEDIATE").await.map_err(failed)?;
    let mut next = "SAVEPOINT unit";
    let mut undo = false;
    for unit in batch.iter_mut() {
        sqlx::query(next).execute(&mut *tx).await.map_err(failed)?;
        undo = !unit.run(&mut tx).await;
        next = if undo {
            "ROLLBACK TO unit; RELEASE unit; SAVEPOINT unit"
        } else {
            "RELEASE unit; SAVEPOINT unit"
        };
    }
    if undo {
        sqlx::query("ROLLBACK TO unit")
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A one-connection pool over a fresh SQLite file in `dir` holding the table `table`
    /// (its `CREATE TABLE` statement); the batch writer's tests use it too.
    pub(crate) async fn sqlite_with(dir: &tempfile::TempDir, table: &'static str) -> AnyPool {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        sqlx::query(table).execute(&pool).await.unwrap();
        pool
    }

    /// A committer over a fresh SQLite file with one table, and its pool.
    async fn committer_on(dir: &tempfile::TempDir) -> (GroupCommit, AnyPool) {
        let pool = sqlite_with(dir, "CREATE TABLE t (x INTEGER PRIMARY KEY)").await;
        (GroupCommit::start(pool.clone()), pool)
    }

    fn insert(x: i64, then: u8) -> UnitFn<i64> {
        Box::new(move |tx: &mut Tx| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (x) VALUES ($1)")
                    .bind(x)
                    .execute(&mut **tx)
                    .await?;
                match then {
                    0 => Ok(x),
                    1 => {
                        // A statement that fails after the unit wrote.
                        sqlx::query("INSERT INTO nowhere VALUES (1)")
                            .execute(&mut **tx)
                            .await?;
                        Ok(x)
                    }
                    _ => panic!("a unit that panics"),
                }
            })
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_unit_stands_or_falls_alone_within_a_shared_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (group, pool) = committer_on(&dir).await;
        // 400 units at once (several batches of up to MAX_UNITS): a third each kept, failing
        // on a statement after writing, and panicking.
        let mut tasks = tokio::task::JoinSet::new();
        for x in 1..=400i64 {
            let group = group.clone();
            tasks.spawn(async move { (x, group.run(insert(x, (x % 3) as u8)).await) });
        }
        while let Some(done) = tasks.join_next().await {
            let (x, out) = done.unwrap();
            match x % 3 {
                0 => assert_eq!(out.unwrap(), x),
                _ => assert!(out.is_err(), "unit {x} must fail"),
            }
        }
        let kept: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(kept, (1..=133).map(|i| i * 3).collect::<Vec<_>>());
        // A unit that conflicts with a committed row fails alone; the committer goes on.
        assert!(group.run(insert(3, 0)).await.is_err());
        assert_eq!(group.run(insert(1000, 0)).await.unwrap(), 1000);
    }

    #[tokio::test]
    async fn a_failed_batch_answers_every_unit_with_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let (group, pool) = committer_on(&dir).await;
        // Nothing can begin a transaction on a closed pool: the unit is refused, not lost.
        pool.close().await;
        let err = group.run(insert(1, 0)).await.unwrap_err();
        assert!(matches!(err, StoreError::Batch(_)), "{err}");
    }
}
