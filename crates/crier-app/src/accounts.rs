//! The account rules, for every caller: which accounts a caller sees (its workspace and mode),
//! connecting one (a handle's shape, a known platform, the plan's `connected_accounts` per
//! mode), disconnecting, and the sandbox's test controls (its timeline, fault injection).

use crier_core::ErrorCode;
use crier_core::ids::AccountId;
use crier_networks::sandbox::PLATFORM as SANDBOX;
use crier_networks::{Connected, Credentials, Session};
use crier_store::{Account, Fault, FaultKind, Page};

use crate::{App, AppError, AppResult, Caller};

pub const MAX_HANDLE: usize = 50;
pub const MAX_FAIL_NEXT: u32 = 1000;
pub const MAX_RETRY_AFTER_SECONDS: u32 = 86_400;
/// The longest simulated latency of a sandbox account's calls.
pub const MAX_LATENCY_MS: u32 = 10_000;

/// The account rules over one [`App`].
pub struct Accounts<'a> {
    pub(crate) app: &'a App,
}

impl Accounts<'_> {
    /// The account `id` of the caller's workspace and mode, within its reach; `404`
    /// otherwise.
    pub async fn get(&self, c: &Caller, id: &str) -> AppResult<Account> {
        let not_found = || AppError::not_found("account", id);
        let id = AccountId::parse(id).ok_or_else(not_found)?;
        if c.is_limited() && !self.app.reach(c).await?.account(&id) {
            return Err(not_found());
        }
        self.app
            .store()
            .get_account_in(&c.tenant, &id)
            .await?
            .ok_or_else(not_found)
    }

    /// A page of the caller's accounts (of its mode, within its reach), newest first.
    pub async fn list(&self, c: &Caller, limit: u32, offset: u32) -> AppResult<Page<Account>> {
        let within = self.app.reach(c).await?.account_list();
        Ok(self
            .app
            .store()
            .list_accounts_in(&c.tenant, within.as_deref(), limit, offset)
            .await?)
    }

    /// `404` unless crier has a connector for `platform`.
    pub fn known_platform(&self, platform: &str) -> AppResult<()> {
        if self.app.networks().get(platform).is_none() {
            return Err(AppError::not_found("platform", platform));
        }
        Ok(())
    }

    /// Connects a sandbox account with `handle` in the caller's mode, at once (the sandbox has
    /// no OAuth). The same handle again is the same account.
    pub async fn connect(&self, c: &Caller, platform: &str, handle: &str) -> AppResult<Account> {
        self.known_platform(platform)?;
        let handle = handle.trim();
        let valid = !handle.is_empty()
            && handle.len() <= MAX_HANDLE
            && handle
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(AppError::invalid(
                "handle",
                format!("`handle` must be 1 to {MAX_HANDLE} letters, digits, `_`, `.` or `-`."),
            ));
        }
        let connected = Connected {
            external_id: handle.to_owned(),
            handle: handle.to_owned(),
            display_name: None,
            avatar_url: None,
            profile_url: Some(format!("https://sandbox.crier.invalid/@{handle}")),
            service: None,
            credentials: Credentials::default(),
        };
        self.app.connections().save(c, platform, connected).await
    }

    /// `402 quota_exceeded` when the caller's mode already has the plan's connected accounts.
    /// Each mode has the plan's room to itself: test-mode accounts never use up the live quota,
    /// and test mode is bounded too (it must not grow rows without limit).
    pub async fn check_room(&self, c: &Caller) -> AppResult<()> {
        if let Some(limit) = c.plan.connected_accounts {
            let count = self
                .app
                .store()
                .count_connected_accounts(c.workspace(), c.livemode())
                .await?
                .max(0) as u64;
            if count >= limit {
                let mode = if c.livemode() { "" } else { " test-mode" };
                return Err(AppError::new(
                    ErrorCode::QuotaExceeded,
                    format!("This workspace's plan allows {limit} connected{mode} accounts."),
                ));
            }
        }
        Ok(())
    }

    /// Disconnects an account: its credentials are dropped, `account.disconnected` is emitted,
    /// its pending targets fail with `account_disconnected` when they fall due, and its token is
    /// revoked at the network where the network can (best effort, after the disconnect stands).
    pub async fn disconnect(&self, c: &Caller, id: &str) -> AppResult<Account> {
        let account = self.get(c, id).await?;
        let credentials = self.app.tokens().open(&account).ok().flatten();
        let done = self
            .app
            .store()
            .disconnect_account(c.workspace(), &account.id, self.app.clock().now_ms())
            .await?
            .ok_or_else(|| AppError::not_found("account", id))?;
        if let (Some(creds), Some(network)) =
            (credentials, self.app.networks().get(&account.platform))
        {
            let session = Session {
                account: &account,
                credentials: &creds,
            };
            let revoke = network.revoke(session);
            match tokio::time::timeout(std::time::Duration::from_secs(10), revoke).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(account = %account.id, error = %e, "could not revoke the token at the network");
                }
                Err(_) => {
                    tracing::warn!(account = %account.id, "revoking the token at the network timed out");
                }
            }
        }
        Ok(done)
    }

    /// The sandbox account `id` (only sandbox accounts have a timeline and faults).
    pub async fn sandbox(&self, c: &Caller, id: &str) -> AppResult<Account> {
        let account = self.get(c, id).await?;
        if account.platform != SANDBOX {
            return Err(AppError::invalid(
                "id",
                "Only sandbox accounts have a timeline and fault injection.",
            ));
        }
        Ok(account)
    }

    /// Makes a sandbox account's next `fail_next` calls fail as `kind` says (0 clears).
    pub async fn set_faults(
        &self,
        account: &Account,
        fail_next: u32,
        kind: &str,
        retry_after_seconds: u32,
        latency_ms: u32,
    ) -> AppResult<()> {
        if latency_ms > MAX_LATENCY_MS {
            return Err(AppError::invalid(
                "latency_ms",
                format!("`latency_ms` must be from 0 to {MAX_LATENCY_MS}."),
            ));
        }
        if fail_next > MAX_FAIL_NEXT {
            return Err(AppError::invalid(
                "fail_next",
                format!("`fail_next` must be from 0 to {MAX_FAIL_NEXT}."),
            ));
        }
        let Some(kind) = FaultKind::parse(kind) else {
            return Err(AppError::invalid(
                "kind",
                "`kind` must be `error`, `timeout` or `rate_limit`.",
            ));
        };
        if retry_after_seconds > MAX_RETRY_AFTER_SECONDS {
            return Err(AppError::invalid(
                "retry_after_seconds",
                format!("`retry_after_seconds` must be from 0 to {MAX_RETRY_AFTER_SECONDS}."),
            ));
        }
        let fault = Fault {
            kind,
            retry_after_seconds: i64::from(retry_after_seconds),
        };
        self.app
            .store()
            .sandbox_set_fault(
                &account.id,
                i64::from(fail_next),
                &fault,
                i64::from(latency_ms),
            )
            .await?;
        Ok(())
    }
}
