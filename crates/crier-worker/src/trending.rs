//! The trending refresher: keeps the networks' trending lists cached (the rules are
//! `crier_app::trending`; this is the loop that calls them). Each source is fetched once per
//! [`RefreshConfig::every`]; the loop looks for due sources a few times per period, so a
//! source waits at most a sixth of a period (and 5 minutes) past its due time.

use std::time::Duration;

use crier_app::App;
use tokio_util::sync::CancellationToken;

pub use crier_app::trending::{RefreshConfig, Refreshed};

/// Refreshes the sources that are due and purges unused ones, once. A source that fails is
/// logged by the rules and kept; a storage failure is logged here.
pub async fn refresh_once(app: &App, config: &RefreshConfig) -> Option<Refreshed> {
    match app.trending().refresh_due(config).await {
        Ok(done) => {
            if done != Refreshed::default() {
                tracing::info!(
                    fetched = done.fetched,
                    failed = done.failed,
                    purged = done.purged,
                    "trending topics refreshed"
                );
            }
            Some(done)
        }
        Err(e) => {
            tracing::warn!(error = %e.message, "trending refresh failed");
            None
        }
    }
}

/// How often the loop looks for due sources.
fn tick(every: Duration) -> Duration {
    (every / 6).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

/// Runs [`refresh_once`] until `cancel`.
pub async fn run(app: App, config: RefreshConfig, cancel: CancellationToken) {
    let tick = tick(config.every);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = refresh_once(&app, &config) => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_looks_a_few_times_per_period() {
        assert_eq!(tick(Duration::from_secs(1800)), Duration::from_secs(300));
        assert_eq!(tick(Duration::from_secs(600)), Duration::from_secs(100));
        assert_eq!(tick(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(tick(Duration::from_secs(86_400)), Duration::from_secs(300));
    }
}
