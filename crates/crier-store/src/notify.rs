//! Key-change notifications across processes, so a revoked or narrowed key stops working on
//! every node at once, not at its cache expiry.
//!
//! Every transaction that changes a key bumps the `key_changes` counter in `crier_state` and
//! records the key's digest in the `key_changes` table under the counter's new value; on
//! PostgreSQL it also sends `NOTIFY crier_key_changes` with the digest, which goes out exactly
//! when the change commits. Subscribers get [`KeyChange::Key`] from PostgreSQL within
//! milliseconds; on SQLite (one machine: the server and `crier admin` in another process) the
//! subscriber polls the counter, a one-row read, and when it moved reads the digests recorded
//! since and reports each as [`KeyChange::Key`]. Only when it cannot account for every bump
//! (it fell more than [`KEPT_CHANGES`] behind) does it report [`KeyChange::All`].
//!
//! A notification can be lost where the counter cannot: a listener whose connection died
//! without a reset waits for ever, and changes made while a broken feed reconnects are never
//! sent to it. So a PostgreSQL node also follows the counter ([`Store::key_changes_polled`],
//! every [`SAFETY_POLL_INTERVAL`]): what its listener missed reaches it within a second. A
//! change that both report is dropped from the cache twice, which costs a refill.

use std::collections::VecDeque;
use std::time::Duration;

use crier_core::KeyDigest;
use sqlx::postgres::PgListener;
use sqlx::{Any, Row};

use crate::{Backend, Result, Store};

pub const CHANNEL: &str = "crier_key_changes";
/// How often a SQLite subscriber looks at the counter.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often a PostgreSQL node looks at the counter besides listening.
pub const SAFETY_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How many recorded changes are kept for polling subscribers.
pub const KEPT_CHANGES: i64 = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// The key with this digest changed (revoked, updated, rotated).
    Key(KeyDigest),
    /// Some key changed, or messages may have been missed: drop everything cached.
    All,
}

pub struct KeyChanges(Inner);

enum Inner {
    Listen(Box<PgListener>),
    Poll {
        store: Store,
        seen: i64,
        /// Changes read but not yet handed out.
        pending: VecDeque<KeyDigest>,
        every: Duration,
    },
}

impl KeyChanges {
    /// Waits for the next change. A lost PostgreSQL connection is re-established by the
    /// listener and reported as [`KeyChange::All`] for the gap.
    pub async fn next(&mut self) -> Result<KeyChange> {
        match &mut self.0 {
            Inner::Listen(listener) => match listener.try_recv().await? {
                Some(n) => Ok(KeyDigest::from_hex(n.payload())
                    .map(KeyChange::Key)
                    .unwrap_or(KeyChange::All)),
                None => Ok(KeyChange::All),
            },
            Inner::Poll {
                store,
                seen,
                pending,
                every,
            } => loop {
                if let Some(d) = pending.pop_front() {
                    return Ok(KeyChange::Key(d));
                }
                tokio::time::sleep(*every).await;
                let now = store.key_change_counter().await?;
                if now == *seen {
                    continue;
                }
                let from = std::mem::replace(seen, now);
                if now < from || now - from > KEPT_CHANGES {
                    return Ok(KeyChange::All);
                }
                // Every bump from `from` to `now` must have its digest, in order; a bump
                // without one (a process of an older version) means we cannot tell which key.
                let changed = store.key_changes_between(from, now).await?;
                let complete = changed.len() as i64 == now - from
                    && changed
                        .iter()
                        .zip(from + 1..)
                        .all(|((seq, _), n)| *seq == n);
                let digests: Option<Vec<KeyDigest>> = changed
                    .iter()
                    .map(|(_, hex)| KeyDigest::from_hex(hex))
                    .collect();
                match digests {
                    Some(d) if complete => pending.extend(d),
                    _ => return Ok(KeyChange::All),
                }
            },
        }
    }
}

impl Store {
    pub(crate) async fn notify_key_change(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        digest: &KeyDigest,
    ) -> Result<()> {
        let seq: i64 = sqlx::query(
            "UPDATE crier_state SET value = value + 1 WHERE name = 'key_changes' RETURNING value",
        )
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        sqlx::query("INSERT INTO key_changes (seq, digest) VALUES ($1, $2)")
            .bind(seq)
            .bind(digest.to_hex())
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM key_changes WHERE seq <= $1")
            .bind(seq - KEPT_CHANGES)
            .execute(&mut **tx)
            .await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(digest.to_hex())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn key_change_counter(&self) -> Result<i64> {
        Ok(
            sqlx::query("SELECT value FROM crier_state WHERE name = 'key_changes'")
                .fetch_one(&self.read)
                .await?
                .try_get(0)?,
        )
    }

    /// The changes recorded with counter values in `(after, upto]`, in order.
    async fn key_changes_between(&self, after: i64, upto: i64) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT seq, digest FROM key_changes WHERE seq > $1 AND seq <= $2 ORDER BY seq",
        )
        .bind(after)
        .bind(upto)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Subscribes to key changes made by any process on this database.
    pub async fn key_changes(&self) -> Result<KeyChanges> {
        Ok(KeyChanges(match self.backend {
            Backend::Postgres => {
                let mut listener = PgListener::connect(&self.url).await?;
                listener.listen(CHANNEL).await?;
                Inner::Listen(Box::new(listener))
            }
            Backend::Sqlite => return self.key_changes_polled(POLL_INTERVAL).await,
        }))
    }

    /// Subscribes to key changes by following the counter, looked at `every` so long, on
    /// either database (see the module's documentation).
    pub async fn key_changes_polled(&self, every: Duration) -> Result<KeyChanges> {
        Ok(KeyChanges(Inner::Poll {
            store: self.clone(),
            seen: self.key_change_counter().await?,
            pending: VecDeque::new(),
            every,
        }))
    }
}
