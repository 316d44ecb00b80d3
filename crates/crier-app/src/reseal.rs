//! After a rotation of `secret_keys`: everything stored sealed with an older key is sealed
//! again with the current one, so the old key can be taken out. Network credentials
//! ([`crate::tokens::Tokens::reseal`]), webhook signing secrets ([`crate::webhook_secrets`])
//! and the secrets of clients registered on per-instance networks
//! ([`crate::connect::Connections::reseal_clients`]). Worker nodes run [`reseal_all`] with the
//! token refresher; `crier admin secret-keys reseal` runs it until nothing is left.

use crate::{App, AppResult};

/// Stored values looked at per page.
pub const PAGE: u32 = 100;

/// What one pass sealed again, and what it found that this server's keys do not open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    pub sealed_again: usize,
    pub unopened: usize,
}

/// One pass over each kind of sealed value (at most ten pages of [`PAGE`] each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub accounts: Resealed,
    pub webhook_endpoints: Resealed,
    pub oauth_clients: Resealed,
}

impl Pass {
    pub fn sealed_again(&self) -> usize {
        self.accounts.sealed_again
            + self.webhook_endpoints.sealed_again
            + self.oauth_clients.sealed_again
    }

    pub fn unopened(&self) -> usize {
        self.accounts.unopened + self.webhook_endpoints.unopened + self.oauth_clients.unopened
    }
}

/// Seals again what an older key sealed, one pass of each kind. What does not open is left
/// as it is (and logged): it needs the key it was sealed with.
pub async fn reseal_all(app: &App) -> AppResult<Pass> {
    let pass = Pass {
        accounts: app.tokens().reseal(PAGE).await?,
        webhook_endpoints: crate::webhook_secrets::reseal(app).await?,
        oauth_clients: app.connections().reseal_clients(PAGE).await?,
    };
    if pass.unopened() > 0 {
        tracing::warn!(
            accounts = pass.accounts.unopened,
            webhook_endpoints = pass.webhook_endpoints.unopened,
            oauth_clients = pass.oauth_clients.unopened,
            "stored secrets that this server's secret_keys do not open were left as they are; \
             give every node the keys they were sealed with"
        );
    }
    Ok(pass)
}
