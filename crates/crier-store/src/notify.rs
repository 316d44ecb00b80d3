//! Key-change notifications across processes, so a revoked or narrowed key stops working on
//! every node at once, not at its cache expiry.
//!
//! Every transaction that changes a key bumps the `key_changes` counter in `crier_state`, and on
//! PostgreSQL also sends `NOTIFY crier_key_changes` with the key's digest, which goes out exactly
//! when the change commits. Subscribers get [`KeyChange::Key`] from PostgreSQL within
//! milliseconds; on SQLite (one machine: the server and `crier admin` in another process) the
//! subscriber polls the counter, a one-row read, and reports [`KeyChange::All`] when it moved.

use std::time::Duration;

use crier_core::KeyDigest;
use sqlx::postgres::PgListener;
use sqlx::{Any, Row};

use crate::{Backend, Result, Store};

pub const CHANNEL: &str = "crier_key_changes";
/// How often a SQLite subscriber looks at the counter.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

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
    Poll { store: Store, seen: i64 },
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
            Inner::Poll { store, seen } => loop {
                tokio::time::sleep(POLL_INTERVAL).await;
                let now = store.key_change_counter().await?;
                if now != *seen {
                    *seen = now;
                    return Ok(KeyChange::All);
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
        sqlx::query("UPDATE crier_state SET value = value + 1 WHERE name = 'key_changes'")
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

    /// Subscribes to key changes made by any process on this database.
    pub async fn key_changes(&self) -> Result<KeyChanges> {
        Ok(KeyChanges(match self.backend {
            Backend::Postgres => {
                let mut listener = PgListener::connect(&self.url).await?;
                listener.listen(CHANNEL).await?;
                Inner::Listen(Box::new(listener))
            }
            Backend::Sqlite => Inner::Poll {
                store: self.clone(),
                seen: self.key_change_counter().await?,
            },
        }))
    }
}
