//! The token refresher: renews network tokens before they expire (claimed per account, so two
//! nodes never refresh one at once) and purges expired OAuth connection states. The rules are
//! `crier_app::tokens`; this is the loop that calls them.

use std::time::Duration;

use crier_app::App;
use tokio_util::sync::CancellationToken;

/// Accounts renewed per round.
const BATCH: u32 = 50;

/// Renews what is due and purges expired states once; returns how many accounts were handled.
pub async fn refresh_once(app: &App) -> usize {
    let mut handled = 0;
    // Bounded: a backlog is worked off over several rounds.
    for _ in 0..10 {
        match app.tokens().refresh_due(BATCH).await {
            Ok(done) if done.is_empty() => break,
            Ok(done) => handled += done.len(),
            Err(e) => {
                tracing::warn!(error = %e.message, "token refresh round failed");
                break;
            }
        }
    }
    if let Err(e) = app.store().purge_connect_states(app.clock().now_ms()).await {
        tracing::warn!(error = %e, "could not purge expired connection states");
    }
    handled
}

/// Runs [`refresh_once`] every `every` until `cancel`.
pub async fn run(app: App, every: Duration, cancel: CancellationToken) {
    loop {
        refresh_once(&app).await;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
