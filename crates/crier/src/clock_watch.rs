//! The clock watch of a node on PostgreSQL. Nodes compare their own clocks through what they
//! store: a lease runs until a time one node wrote and another reads against its own clock,
//! and a post falls due by the clock of the node that claims it. A node whose clock is far
//! off the others' could claim a job another node still holds (and send a post twice) or send
//! posts early. So a node starts only when its clock is within [`limit_ms`] of the
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

/// How far a node's clock may be from the database server's at most; less with a short
/// network timeout ([`limit_ms`]). Due times are kept to the second.
pub const MAX_SKEW_MS: i64 = 5_000;

/// The limit for a node whose network calls time out after `call_timeout`: a call starts only
/// with a lease that outlasts it by at least one timeout, so two nodes off in opposite
/// directions (each by up to the limit) must stay within that margin of each other.
pub fn limit_ms(call_timeout: Duration) -> i64 {
    MAX_SKEW_MS.min(call_timeout.as_millis() as i64 / 2)
}
/// How often a running node checks.
pub const EVERY: Duration = Duration::from_secs(30);

/// Whether an offset (ms) is within `limit_ms`; if not, what to tell the operator.
pub fn verdict(offset_ms: i64, limit_ms: i64) -> Result<(), String> {
    if offset_ms.abs() <= limit_ms {
        return Ok(());
    }
    let dir = if offset_ms > 0 { "behind" } else { "ahead of" };
    Err(format!(
        "this node's clock is {:.1} s {dir} the database server's (at most {:.1} s allowed): \
         nodes compare clocks through leases and due times, so one that is off could send a \
         post twice or early. Keep every node's clock synchronised (chrony or \
         systemd-timesyncd) and start it again",
        offset_ms.unsigned_abs() as f64 / 1000.0,
        limit_ms as f64 / 1000.0
    ))
}

/// The offset of this node's clock against the database's, now (`None` on SQLite).
pub async fn offset(store: &Store, clock: &Arc<dyn Clock>) -> Result<Option<i64>, String> {
    store
        .clock_offset_ms(|| clock.now_ms())
        .await
        .map_err(|e| format!("could not read the database server's clock: {e}"))
}

/// The last offset measured, and the limit, for `/metrics`.
#[derive(Debug)]
pub struct ClockGauge {
    offset_ms: AtomicI64,
    limit_ms: i64,
}

impl ClockGauge {
    pub fn new(limit_ms: i64) -> Self {
        Self {
            offset_ms: AtomicI64::new(0),
            limit_ms,
        }
    }
}

#[async_trait::async_trait]
impl crier_api::metrics::MetricsSource for ClockGauge {
    async fn render(&self) -> String {
        format!(
            "# HELP crier_clock_offset_seconds How far the database server's clock is ahead of \
             this node's (negative: behind); past crier_clock_offset_limit_seconds the node \
             claims no work.\n\
             # TYPE crier_clock_offset_seconds gauge\n\
             crier_clock_offset_seconds {}\n\
             # HELP crier_clock_offset_limit_seconds How far this node's clock may be off.\n\
             # TYPE crier_clock_offset_limit_seconds gauge\n\
             crier_clock_offset_limit_seconds {}\n",
            self.offset_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            self.limit_ms as f64 / 1000.0
        )
    }
}

/// Checks every [`EVERY`] until `cancel`: records the offset in `gauge`, and holds the
/// store's claims while it is past the gauge's limit.
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
                gauge.offset_ms.store(ms, Ordering::Relaxed);
                match verdict(ms, gauge.limit_ms) {
                    Err(why) => {
                        tracing::error!(offset_ms = ms, "{why}; claiming no work meanwhile");
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
    fn an_offset_past_the_limit_either_way_is_refused() {
        let limit = limit_ms(Duration::from_secs(15));
        assert_eq!(limit, MAX_SKEW_MS);
        assert!(verdict(0, limit).is_ok());
        assert!(verdict(limit, limit).is_ok());
        assert!(verdict(-limit, limit).is_ok());
        let behind = verdict(limit + 1, limit).unwrap_err();
        assert!(behind.contains("5.0 s behind"), "{behind}");
        let ahead = verdict(-90_000, limit).unwrap_err();
        assert!(ahead.contains("90.0 s ahead of"), "{ahead}");
    }

    #[test]
    fn a_short_network_timeout_narrows_the_limit() {
        // Calls of 4 s start with at least 4 s of lease to spare: two nodes 2 s off either
        // way are 4 s apart at most.
        let limit = limit_ms(Duration::from_secs(4));
        assert_eq!(limit, 2_000);
        assert!(verdict(2_500, limit).unwrap_err().contains("at most 2.0 s"));
    }
}
