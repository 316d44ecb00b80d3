//! Accounts' network credentials: opened only where a connector needs them, and renewed before
//! they expire. A refresh is claimed (one node at a time per account, refresh tokens are often
//! single-use), the new credentials stored only if the account still holds the ones they
//! replace; a refusal marks the account `expired` and emits `account.disconnected`, after which
//! its targets fail with `account_disconnected` instead of being retried blindly.

use crier_networks::{Credentials, NetworkError, Session};
use crier_store::Account;

use crate::connect::{REFRESH_MARGIN_MS, account_aad};
use crate::reseal::{self, One, Resealed};
use crate::{App, AppError, AppResult};

/// How long a claimed refresh is this node's (well above the 30 s a refresh call may take); a
/// refresh that fails for a passing reason is tried again after it.
pub const REFRESH_LEASE_MS: i64 = 2 * 60 * 1000;

/// What became of one account's refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    Renewed,
    /// The network refused: the account is now `expired`.
    Expired,
    /// A passing failure; tried again after the lease.
    Later(String),
    /// The account changed meanwhile (disconnected, reconnected): nothing to do.
    Skipped,
}

pub struct Tokens<'a> {
    pub(crate) app: &'a App,
}

impl Tokens<'_> {
    /// The account's credentials in the clear (`None`: it has none, as sandbox accounts).
    /// For a network whose OAuth client the operator configures, the client is the configured
    /// one, not the copy kept when the account connected: after the operator rotates a leaked
    /// secret, refresh and revoke use the new one.
    pub fn open(&self, account: &Account) -> AppResult<Option<Credentials>> {
        let Some(sealed) = &account.credentials else {
            return Ok(None);
        };
        let mut credentials: Credentials = self
            .app
            .keyring()
            .open_json(sealed, &account_aad(account))
            .map_err(|e| AppError::internal(format!("account {}: {e}", account.id)))?;
        if let Some(client) = self.app.connect_config().clients.get(&account.platform) {
            credentials.client = Some(client.clone());
        }
        Ok(Some(credentials))
    }

    /// Checks that this server's keys open the credentials stored (the latest sealed ones):
    /// a node started with other `secret_keys` than the others must not start at all.
    pub async fn check_keys(&self) -> Result<(), String> {
        let account = self
            .app
            .store()
            .any_sealed_account()
            .await
            .map_err(|e| e.to_string())?;
        match account.map(|a| self.open(&a)) {
            Some(Err(_)) => Err(format!(
                "secret_keys: the credentials stored in the database do not open with this \
                 server's keys (key ids: {}). Give every node the same secret_keys \
                 (CRIER_SECRET_KEYS), including the keys values were sealed with.",
                self.app.keyring().key_ids().join(", ")
            )),
            _ => Ok(()),
        }
    }

    /// Seals again, with the current key, the credentials of accounts sealed with an older one
    /// (after a rotation: tokens that are never refreshed must move too, before the old key can
    /// go), page by page of `page` accounts by id. Those this server cannot open
    /// are left, and do not stop the others.
    pub async fn reseal(&self, page: u32) -> AppResult<Resealed> {
        let keyring = self.app.keyring();
        let store = self.app.store();
        let prefix = &keyring.current_prefix();
        reseal::paged(
            page,
            String::new(),
            |after: String| async move {
                Ok(store
                    .accounts_sealed_otherwise(prefix, &after, page)
                    .await?)
            },
            |a: &Account| a.id.to_string(),
            |account: Account| async move {
                // As sealed, byte for byte (not what `open` adds from the configuration).
                let aad = account_aad(&account);
                let Some((sealed, Ok(new))) = account
                    .credentials
                    .as_ref()
                    .map(|sealed| (sealed, keyring.seal_again(sealed, &aad)))
                else {
                    return Ok(One::Unopened);
                };
                let done = store.reseal_account(&account.id, sealed, &new).await?;
                Ok(if done { One::SealedAgain } else { One::Changed })
            },
        )
        .await
    }

    /// Renews the tokens of up to `limit` accounts whose refresh is due; returns what became
    /// of each.
    /// One account is claimed at a time, so a claim never outlives its lease while it waits
    /// behind others.
    pub async fn refresh_due(&self, limit: u32) -> AppResult<Vec<(Account, Refreshed)>> {
        let mut out = Vec::new();
        for _ in 0..limit {
            let now = self.app.clock().now_ms();
            let claimed = self
                .app
                .store()
                .claim_refreshes(now, REFRESH_LEASE_MS, 1)
                .await?;
            let Some(account) = claimed.into_iter().next() else {
                break;
            };
            let r = match self.refresh(&account).await {
                Ok(r) => r,
                // Storage failed for this one; it comes back after its lease.
                Err(e) => Refreshed::Later(e.message.into_owned()),
            };
            out.push((account, r));
        }
        Ok(out)
    }

    /// Renews one claimed account's token.
    pub async fn refresh(&self, account: &Account) -> AppResult<Refreshed> {
        let Some(network) = self.app.networks().get(&account.platform).cloned() else {
            return Ok(Refreshed::Skipped);
        };
        let Some(old_sealed) = account.credentials.clone() else {
            return Ok(Refreshed::Skipped);
        };
        let creds = match self.open(account) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(Refreshed::Skipped),
            // Sealed with a key this server does not have: the operator's configuration, not
            // the user's account, is wrong (`secret_keys` differs between nodes, or a key was
            // dropped too early). Never expire accounts for it; say so loudly.
            Err(e) => {
                tracing::error!(account = %account.id, error = %e.message, "credentials do not open with this server's secret_keys; check that every node has the same keys");
                return Ok(Refreshed::Later(e.message.into_owned()));
            }
        };
        let session = Session {
            account,
            credentials: &creds,
        };
        let result =
            tokio::time::timeout(std::time::Duration::from_secs(30), network.refresh(session))
                .await
                .unwrap_or(Err(NetworkError::Timeout));
        match result {
            Ok(fresh) => {
                let now = self.app.clock().now_ms();
                let sealed = self.app.keyring().seal_json(&fresh, &account_aad(account));
                let refresh_at = fresh
                    .expires_at
                    .map(|at| (at - REFRESH_MARGIN_MS).max(now + REFRESH_LEASE_MS));
                let stored = self
                    .app
                    .store()
                    .store_refreshed(
                        &account.id,
                        &old_sealed,
                        &sealed,
                        fresh.expires_at,
                        refresh_at,
                        now,
                    )
                    .await?;
                Ok(if stored {
                    Refreshed::Renewed
                } else {
                    Refreshed::Skipped
                })
            }
            // Only the network's explicit refusal of the grant expires the account; anything
            // else (a proxy's error page, a server moving) is tried again after the lease.
            Err(NetworkError::Unauthorized { .. }) => self.expire(account, &old_sealed).await,
            Err(e) => {
                tracing::warn!(account = %account.id, error = %e, "token refresh failed; it will be tried again");
                Ok(Refreshed::Later(e.to_string()))
            }
        }
    }

    async fn expire(&self, account: &Account, sealed: &str) -> AppResult<Refreshed> {
        let now = self.app.clock().now_ms();
        let done = self
            .app
            .store()
            .expire_account(&account.id, Some(sealed), now)
            .await?;
        Ok(if done.is_some() {
            tracing::info!(account = %account.id, "the network refused the account's token: expired");
            Refreshed::Expired
        } else {
            Refreshed::Skipped
        })
    }
}
