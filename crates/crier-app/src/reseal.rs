//! After a rotation of `secret_keys`: everything stored sealed with an older key is sealed
//! again with the current one, so the old key can be taken out. Network credentials
//! ([`crate::tokens::Tokens::reseal`]), webhook signing secrets ([`crate::webhook_secrets`])
//! and the secrets of clients registered on per-instance networks
//! ([`crate::connect::Connections::reseal_clients`]). `crier admin secret-keys reseal` runs
//! [`reseal_all`] once every node has the new key: a node that moved values on its own would
//! put them out of reach of the nodes not yet given it. [`check_keys`] keeps a node with too
//! few keys from starting.

use crate::{App, AppResult};

/// Stored values looked at per page.
pub const PAGE: u32 = 100;

/// What one pass sealed again, and what it found that this server's keys do not open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    pub sealed_again: usize,
    pub unopened: usize,
}

/// What sealing one stored value again came to.
pub(crate) enum One {
    SealedAgain,
    /// Changed meanwhile (rotated, refreshed, sealed again by another node): left to the
    /// change.
    Changed,
    /// Does not open with this server's keys: left as it is.
    Unopened,
}

/// Seals again what `find` lists after a cursor (from `start`), page after page of `page`
/// until one comes back short, each item with `one`; `cursor` is where the page after an item
/// starts. An item that does not open does not stop the others.
pub(crate) async fn paged<T, C, Found, Done>(
    page: u32,
    start: C,
    mut find: impl FnMut(C) -> Found,
    cursor: impl Fn(&T) -> C,
    mut one: impl FnMut(T) -> Done,
) -> AppResult<Resealed>
where
    Found: Future<Output = AppResult<Vec<T>>>,
    Done: Future<Output = AppResult<One>>,
{
    let mut after = start;
    let mut out = Resealed::default();
    loop {
        let found = find(after).await?;
        let Some(last) = found.last() else { break };
        after = cursor(last);
        let full = found.len() >= page as usize;
        for item in found {
            match one(item).await? {
                One::SealedAgain => out.sealed_again += 1,
                One::Changed => {}
                One::Unopened => out.unopened += 1,
            }
        }
        if !full {
            break;
        }
    }
    Ok(out)
}

/// One pass over each kind of sealed value (page by page of [`PAGE`]).
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

/// Checks that this server's keys open what is stored (the latest sealed network credentials
/// and webhook signing secret): a node started with other `secret_keys` than the others must
/// not start at all.
pub async fn check_keys(app: &App) -> Result<(), String> {
    app.tokens().check_keys().await?;
    let endpoint = app
        .store()
        .any_sealed_endpoint()
        .await
        .map_err(|e| e.to_string())?;
    match endpoint {
        Some(e) if crate::webhook_secrets::open(app.keyring(), &e.id, &e.secret).is_err() => {
            Err(format!(
                "secret_keys: the webhook signing secrets stored in the database do not open \
                 with this server's keys (key ids: {}). Give every node the same secret_keys \
                 (CRIER_SECRET_KEYS), including the keys values were sealed with.",
                app.keyring().key_ids().join(", ")
            ))
        }
        _ => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// 250 stored values by id, the first 120 of which do not open: every page is read, the
    /// ones that do not open do not stop the others, and nothing is read twice.
    #[tokio::test]
    async fn pages_go_past_what_does_not_open() {
        let items: Vec<u32> = (1..=250).collect();
        let seen = std::sync::Mutex::new(Vec::new());
        let out = paged(
            100,
            0,
            |after: u32| {
                let page: Vec<u32> = items
                    .iter()
                    .copied()
                    .filter(|i| *i > after)
                    .take(100)
                    .collect();
                async move { Ok(page) }
            },
            |i: &u32| *i,
            |i: u32| {
                seen.lock().unwrap().push(i);
                async move {
                    Ok(match i {
                        ..=120 => One::Unopened,
                        121..=200 => One::SealedAgain,
                        _ => One::Changed,
                    })
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(
            out,
            Resealed {
                sealed_again: 80,
                unopened: 120
            }
        );
        assert_eq!(*seen.lock().unwrap(), items);
    }
}
