//! Writes of the publishing hot path, many at once.
//!
//! Under a publishing burst a worker begins and ends hundreds of targets a second, and what
//! each write costs is its statements' round trips, not their work: on PostgreSQL a trip over
//! the network stack, on SQLite a hand-over to its one writer's thread, which every write of
//! the node waits behind. So a [`Batches`] queue gathers the requests of one kind that arrive
//! while a batch is being written, and writes them all in the next one with a few statements
//! that take every request's values as one JSON bind (a lone request is a batch of one:
//! nothing waits for a timer). The kinds are a call's start (`attempts.rs`), a target's end
//! (`finish.rs`) and the sandbox network's timeline entry (`sandbox.rs`).
//!
//! On PostgreSQL a batch is a transaction of its own, whose row locks wait at most
//! [`LOCK_TIMEOUT`] and whose statements find their rows by key; on SQLite it is one unit of the
//! group commit (`group.rs`). A batch that a value of one request made the database refuse (a
//! constraint, a character it cannot store) wrote nothing and is written again one request at a
//! time, so one bad request costs the others nothing; any other failure (the connection, a
//! lock held too long, the commit) is every request's error, as after its own failed
//! transaction, without paying it again per request. Two requests with the same key (a job, a
//! target) never share a batch: the second waits for the writer's next one.

use std::collections::HashSet;

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::AnyPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::group::{GroupCommit, UnitFn};
use crate::{Result, StoreError, Tx};

/// Requests one batch holds at most.
const MAX_BATCH: usize = 256;
/// Requests waiting for a batch at most; past it callers wait for room.
const QUEUE: usize = 4096;
/// Batches of one kind written at once (on PostgreSQL each on its own connection).
const WRITERS: usize = 2;
/// How long a batch waits for a row lock (a post another transaction is changing) before it
/// fails and its requests are written one at a time: a batch holds the locks of all its posts,
/// so one stuck lock holder must not hold them all for long.
const LOCK_TIMEOUT: &str = "5s";

/// Where batches are written.
#[derive(Debug, Clone)]
pub(crate) enum Sink {
    /// PostgreSQL: a transaction of its own on a connection of the pool.
    Postgres(AnyPool),
    /// SQLite: a unit of its one writer's group commit.
    Sqlite(GroupCommit),
}

/// A kind of request written in batches.
pub(crate) trait Kind: Send + Sync + 'static {
    type Item: Clone + Send + Sync + 'static;
    type Out: Send + 'static;
    /// What two requests of one batch must not share (a job, a target).
    fn key(item: &Self::Item) -> String;
    /// The statements of one batch, in `tx`: each request's answer, in order.
    fn record<'t>(tx: &'t mut Tx, items: &'t [Self::Item])
    -> BoxFuture<'t, Result<Vec<Self::Out>>>;
}

type Request<K> = (<K as Kind>::Item, oneshot::Sender<Result<<K as Kind>::Out>>);

/// The handle of one kind's batch writers.
pub(crate) struct Batches<K: Kind> {
    queue: mpsc::Sender<Request<K>>,
}

impl<K: Kind> Clone for Batches<K> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<K: Kind> std::fmt::Debug for Batches<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batches")
    }
}

impl<K: Kind> Batches<K> {
    /// Starts the writers over `sink`. They end when every handle is dropped.
    pub(crate) fn start(sink: Sink) -> Self {
        let (queue, rx) = mpsc::channel::<Request<K>>(QUEUE);
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for _ in 0..WRITERS {
            let (sink, rx) = (sink.clone(), rx.clone());
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(MAX_BATCH);
                loop {
                    if rx.lock().await.recv_many(&mut batch, MAX_BATCH).await == 0 {
                        break;
                    }
                    // A panic is that batch's failure (its callers' replies are dropped: an
                    // error), not the writer's end.
                    let batch = std::mem::take(&mut batch);
                    let wrote = std::panic::AssertUnwindSafe(write::<K>(&sink, batch))
                        .catch_unwind()
                        .await;
                    if wrote.is_err() {
                        tracing::error!("writing a batch panicked");
                    }
                }
            });
        }
        Self { queue }
    }

    /// Writes `item` in the next batch and answers once that batch is committed (or failed).
    pub(crate) async fn run(&self, item: K::Item) -> Result<K::Out> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Batch("the batch writer has stopped".into());
        self.queue
            .send((item, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Why a batch was not written.
enum Failed {
    /// Before its commit: nothing of it was written.
    Before(StoreError),
    /// At its commit: it may have been written.
    Commit(StoreError),
}

/// Writes `batch` and answers each caller.
async fn write<K: Kind>(sink: &Sink, batch: Vec<Request<K>>) {
    let mut keys = HashSet::new();
    let (mut rest, mut later): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .partition(|(item, _)| keys.insert(K::key(item)));
    while !rest.is_empty() {
        let (items, replies): (Vec<K::Item>, Vec<_>) = rest.into_iter().unzip();
        // Shared with the SQLite committer's unit, and kept for a retry one at a time.
        let items = std::sync::Arc::new(items);
        match run_batch::<K>(sink, items.clone()).await {
            Ok(outs) => {
                for (reply, out) in replies.into_iter().zip(outs) {
                    let _ = reply.send(Ok(out));
                }
            }
            Err(Failed::Before(e)) if items.len() > 1 && refused_a_value(&e) => {
                tracing::warn!(error = %e, requests = items.len(), "a batch failed; writing its requests one at a time");
                for (item, reply) in items.iter().zip(replies) {
                    let one = match run_batch::<K>(sink, vec![item.clone()].into()).await {
                        Ok(mut out) => out
                            .pop()
                            .ok_or_else(|| StoreError::Batch("the write gave no answer".into())),
                        Err(Failed::Before(e) | Failed::Commit(e)) => Err(e),
                    };
                    let _ = reply.send(one);
                }
            }
            Err(Failed::Before(e) | Failed::Commit(e)) => {
                // A lone request, a failure that is not one request's, or a commit that may
                // have committed: each caller gets the error (the first as it came, the others
                // as its text).
                let message = e.to_string();
                let mut replies = replies.into_iter();
                if let Some(first) = replies.next() {
                    let _ = first.send(Err(e));
                }
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Batch(message.clone())));
                }
            }
        }
        keys.clear();
        (rest, later) = later
            .into_iter()
            .partition(|(item, _)| keys.insert(K::key(item)));
    }
}

/// One transaction over `items` (distinct keys): each one's answer.
async fn run_batch<K: Kind>(
    sink: &Sink,
    items: std::sync::Arc<Vec<K::Item>>,
) -> std::result::Result<Vec<K::Out>, Failed> {
    let pool = match sink {
        Sink::Postgres(pool) => pool,
        Sink::Sqlite(group) => {
            let unit: UnitFn<_> =
                Box::new(move |tx: &mut Tx| Box::pin(async move { record::<K>(tx, &items).await }));
            // A unit's own failure was rolled back alone; the group's (its commit) may not be.
            return group.run(unit).await.map_err(|e| match e {
                StoreError::Batch(_) => Failed::Commit(e),
                e => Failed::Before(e),
            });
        }
    };
    let before = |e: sqlx::Error| Failed::Before(e.into());
    // Every statement of a batch finds its rows by key. Left to its costs (a disk read for
    // each index probe), the planner answers a batch's few hundred keys with scans of whole
    // tables once they hold some thousands of rows (8.7 ms against 1.5 ms for a finishing
    // batch's targets on 10,000 of them, EXPLAIN ANALYZE), so scans are ruled out for the
    // batch's transaction.
    let begin =
        format!("BEGIN; SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL enable_seqscan = off");
    let mut tx: Tx = pool
        .begin_with(sqlx::AssertSqlSafe(begin))
        .await
        .map_err(before)?;
    let outs = record::<K>(&mut tx, &items).await.map_err(Failed::Before)?;
    tx.commit().await.map_err(|e| Failed::Commit(e.into()))?;
    Ok(outs)
}

/// [`Kind::record`], refused unless it answered every request.
async fn record<K: Kind>(tx: &mut Tx, items: &[K::Item]) -> Result<Vec<K::Out>> {
    let outs = K::record(tx, items).await?;
    if outs.len() != items.len() {
        return Err(StoreError::Batch(
            "a batch gave the wrong number of answers".into(),
        ));
    }
    Ok(outs)
}

/// Whether `e` is the database refusing a value (a constraint, a character it cannot store,
/// a number out of range), which one request of a batch may have caused alone.
fn refused_a_value(e: &StoreError) -> bool {
    let StoreError::Database(sqlx::Error::Database(db)) = e else {
        return false;
    };
    use sqlx::error::ErrorKind;
    matches!(
        db.kind(),
        ErrorKind::UniqueViolation
            | ErrorKind::ForeignKeyViolation
            | ErrorKind::NotNullViolation
            | ErrorKind::CheckViolation
    ) || db.code().is_some_and(|c| c.starts_with("22"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers into a table that refuses negative ones (a value one request may carry).
    struct Numbers;

    impl Kind for Numbers {
        type Item = i64;
        type Out = i64;

        fn key(item: &i64) -> String {
            item.to_string()
        }

        fn record<'t>(tx: &'t mut Tx, items: &'t [i64]) -> BoxFuture<'t, Result<Vec<i64>>> {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (x) SELECT value FROM json_each($1)")
                    .bind(crate::json(&items))
                    .execute(&mut **tx)
                    .await?;
                Ok(items.to_vec())
            })
        }
    }

    async fn numbers(dir: &tempfile::TempDir) -> (Batches<Numbers>, sqlx::AnyPool) {
        let pool = crate::group::tests::sqlite_with(
            dir,
            "CREATE TABLE t (x INTEGER PRIMARY KEY CHECK (x > 0))",
        )
        .await;
        let group = GroupCommit::start(pool.clone());
        (Batches::start(Sink::Sqlite(group)), pool)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_value_costs_only_its_own_request() {
        let dir = tempfile::tempdir().unwrap();
        let (batches, pool) = numbers(&dir).await;
        // 300 requests at once, every tenth refused by the table's check.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 1..=300i64 {
            let (batches, x) = (batches.clone(), if i % 10 == 0 { -i } else { i });
            tasks.spawn(async move { (x, batches.run(x).await) });
        }
        while let Some(done) = tasks.join_next().await {
            let (x, out) = done.unwrap();
            if x < 0 {
                assert!(out.is_err(), "{x} is refused");
            } else {
                assert_eq!(out.unwrap(), x);
            }
        }
        let kept: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(kept, (1..=300).filter(|i| i % 10 != 0).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_failure_that_is_no_requests_answers_each_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let (batches, pool) = numbers(&dir).await;
        // Nothing can begin a transaction on a closed pool: refused, not lost or retried.
        pool.close().await;
        let (a, b) = tokio::join!(batches.run(1), batches.run(2));
        assert!(a.is_err() && b.is_err());
    }
}
