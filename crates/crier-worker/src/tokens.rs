//! The token refresher: renews network tokens before they expire (claimed per account, so two
//! nodes never refresh one at once), purges expired OAuth connection states, forgets webhook
//! endpoints' previous signing secrets once their overlap ends, and seals the ones an earlier
//! version kept as shown. The rules are
//! `crier_app::tokens` and `crier_app::webhook_secrets`; this is the loop that calls them.
//! (Sealing stored secrets again after a key rotation is the operator's step, `crier admin
//! secret-keys reseal`, once every node has the new key: a worker doing it on its own would
//! move them out of reach of the nodes not yet restarted.)

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
    if let Err(e) = crier_app::webhook_secrets::forget_ended(app).await {
        tracing::warn!(error = %e.message, "could not forget ended webhook secrets");
    }
    match crier_app::webhook_secrets::seal_plain(app).await {
        Ok(r) if r.sealed_again > 0 => {
            tracing::info!(
                endpoints = r.sealed_again,
                "webhook secrets kept as shown sealed"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e.message, "could not seal webhook secrets"),
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
