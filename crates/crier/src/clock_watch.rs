//! The clock watch of a node on PostgreSQL. Nodes compare their own clocks through what they
//! store: a lease runs until a time one node wrote and another reads against its own clock,
//! and a post falls due by the clock of the node that claims it. A node whose clock is far
//! off the others' could claim a job another node still holds (and send a post twice) or send
//! posts early. So a node starts only when its clock is within [`MAX_SKEW_MS`] of the
//! database server's (which all nodes share), checks again every [`EVERY`], claims no work
//! while it is off ([`Store::hold_claims`]: jobs, feeds, token refreshes; saying so in its log
//! and failing `/readyz`), and shows the offset in `crier_clock_offset_seconds`. On SQLite
//! there is one machine and one clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crier_core::Clock;
use crier_store::Store;
use tokio_util::sync::CancellationToken;

/// How far a node's clock may be from the database server's. Leases last a minute and are
/// renewed with two call timeouts to spare; due times are kept to the second.
pub const MAX_SKEW_MS: i64 = 5_000;
/// How often a running node checks.
pub const EVERY: Duration = Duration::from_secs(30);

/// Whether an offset (ms) is within [`MAX_SKEW_MS`]; if not, what to tell the operator.
pub fn verdict(offset_ms: i64) -> Result<(), String> {
    if offset_ms.abs() <= MAX_SKEW_MS {
        return Ok(());
    }
    let dir = if offset_ms > 0 { "behind" } else { "ahead of" };
    Err(format!(
        "this node's clock is {:.1} s {dir} the database server's (at most {} s allowed): \
         nodes compare clocks through leases and due times, so one that is off could send a \
         post twice or early. Keep every node's clock synchronised (chrony or \
         systemd-timesyncd) and start it again",
        offset_ms.unsigned_abs() as f64 / 1000.0,
        MAX_SKEW_MS / 1000
    ))
}

/// The offset of this node's clock against the database's, now (`None` on SQLite).
pub async fn offset(store: &Store, clock: &Arc<dyn Clock>) -> Result<Option<i64>, String> {
    store
        .clock_offset_ms(|| clock.now_ms())
        .await
        .map_err(|e| format!("could not read the database server's clock: {e}"))
}

/// The last offset measured, for `/metrics`.
#[derive(Debug, Default)]
pub struct ClockGauge(AtomicI64);

#[async_trait::async_trait]
impl crier_api::metrics::MetricsSource for ClockGauge {
    async fn render(&self) -> String {
        format!(
            "# HELP crier_clock_offset_seconds How far the database server's clock is ahead of \
             this node's (negative: behind); past {} s the node claims no new job.\n\
             # TYPE crier_clock_offset_seconds gauge\n\
             crier_clock_offset_seconds {}\n",
            MAX_SKEW_MS / 1000,
            self.0.load(Ordering::Relaxed) as f64 / 1000.0
        )
    }
}

/// Checks every [`EVERY`] until `cancel`: records the offset in `gauge`, and holds the
/// store's claims while it is past [`MAX_SKEW_MS`].
pub async fn run(
    store: Store,
    clock: Arc<dyn Clock>,
    gauge: Arc<ClockGauge>,
    cancel: CancellationToken,
) {
    let mut off = false;
    loop {
        match offset(&store, &clock).await {
            Ok(Some(ms)) => {
                gauge.0.store(ms, Ordering::Relaxed);
                match verdict(ms) {
                    Err(why) => {
                        tracing::error!(offset_ms = ms, "{why}; claiming no new job meanwhile");
                        off = true;
                    }
                    Ok(()) if off => {
                        tracing::warn!(offset_ms = ms, "the clock is back in step; claiming again");
                        off = false;
                    }
                    Ok(()) => {}
                }
                store.hold_claims(off);
            }
            Ok(None) => return,
            // The database is unreachable: nothing can be claimed anyway.
            Err(e) => tracing::warn!(error = %e, "clock check failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_past_five_seconds_either_way_is_refused() {
        assert!(verdict(0).is_ok());
        assert!(verdict(MAX_SKEW_MS).is_ok());
        assert!(verdict(-MAX_SKEW_MS).is_ok());
        let behind = verdict(MAX_SKEW_MS + 1).unwrap_err();
        assert!(behind.contains("5.0 s behind"), "{behind}");
        let ahead = verdict(-90_000).unwrap_err();
        assert!(ahead.contains("90.0 s ahead of"), "{ahead}");
    }
}
