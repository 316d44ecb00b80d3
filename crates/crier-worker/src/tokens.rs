//! The token refresher: renews network tokens before they expire (claimed per account, so two
//! nodes never refresh one at once), purges expired OAuth connection states, and seals again
//! with the current secret key what an older one sealed (network credentials and webhook
//! signing secrets), so that after a rotation the old key can go. The rules are
//! `crier_app::tokens` and `crier_app::webhook_secrets`; this is the loop that calls them.

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
    match crier_app::reseal::reseal_all(app).await {
        Ok(pass) if pass.sealed_again() > 0 => tracing::info!(
            accounts = pass.accounts.sealed_again,
            webhook_endpoints = pass.webhook_endpoints.sealed_again,
            oauth_clients = pass.oauth_clients.sealed_again,
            "sealed again with the current secret key"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e.message, "could not seal stored secrets again"),
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
