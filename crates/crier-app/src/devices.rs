//! Device login for the CLI (RFC 8628): the CLI asks for a login with its name and the scopes
//! it wants, shows the user a short code, and polls; the user approves in the dashboard, in a
//! workspace where their role holds those scopes; the CLI's next poll gets an API key (made by
//! the HTTP edge with the key rules, `crier_api::keys`).
//!
//! Codes: the device code is a 190-bit `dc_…` secret kept as its digest; the user code is 8
//! letters from 20 consonants (`WDJB-MJHT`, about 34 bits) that lives 15 minutes and is only
//! good together with a signed-in user's approval. Polling faster than the interval is
//! `slow_down` and widens it.

use crier_core::ids::UserId;
use crier_core::keys::{is_token, random_token};
use crier_core::{ErrorCode, KeyDigest, ScopeSet};
use crier_store::{DeviceLogin, DevicePoll, DeviceStatus, StoreError};

use crate::users::Seat;
use crate::{App, AppError, AppResult};

pub const DEVICE_PREFIX: &str = "dc_";
pub const LIFETIME_MS: i64 = 15 * 60 * 1000;
pub const INTERVAL_MS: i64 = 5_000;
pub const MAX_CLIENT_NAME: usize = 100;
/// Device logins waiting at once across the install; more are refused (`429`) until some
/// expire, so unauthenticated requests cannot grow the table without bound.
pub const MAX_OPEN: i64 = 10_000;
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// The RFC 8628 answers of the token endpoint, as error codes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    AccessDenied,
}

impl Pending {
    pub fn code(self) -> ErrorCode {
        match self {
            Self::AuthorizationPending => ErrorCode::AuthorizationPending,
            Self::SlowDown => ErrorCode::SlowDown,
            Self::ExpiredToken => ErrorCode::ExpiredToken,
            Self::AccessDenied => ErrorCode::AccessDenied,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::AuthorizationPending => {
                "The user has not approved this login yet; poll again after `interval` seconds."
            }
            Self::SlowDown => "Polling too fast: wait 5 seconds more between polls.",
            Self::ExpiredToken => "This device code has expired or was used; start again.",
            Self::AccessDenied => "The user denied this login.",
        }
    }
}

/// A user code in its canonical form (`WDJB-MJHT`) from what a person typed: case, spaces
/// and dashes do not matter. `None` when it cannot be one.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    if typed.len() > 32 {
        return None;
    }
    let letters: Vec<u8> = typed
        .bytes()
        .filter(|b| !matches!(b, b'-' | b' '))
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if letters.len() != 8 || !letters.iter().all(|b| USER_CODE_ALPHABET.contains(b)) {
        return None;
    }
    let s = String::from_utf8(letters).ok()?;
    Some(format!("{}-{}", &s[..4], &s[4..]))
}

fn new_user_code() -> String {
    let mut out = String::with_capacity(9);
    let mut buf = [0u8; 32];
    while out.len() < 9 {
        getrandom::fill(&mut buf).expect("the OS random number generator failed");
        for b in buf {
            // 240 = 12 × 20: rejection sampling keeps the letters uniform.
            if b < 240 && out.len() < 9 {
                if out.len() == 4 {
                    out.push('-');
                }
                out.push(USER_CODE_ALPHABET[(b % 20) as usize] as char);
            }
        }
    }
    out
}

pub struct Devices<'a> {
    pub(crate) app: &'a App,
}

impl Devices<'_> {
    /// Refuses a start's bad input; its trimmed name and its scopes.
    fn checked<'n>(client_name: &'n str, scopes: &[String]) -> AppResult<(&'n str, ScopeSet)> {
        let name = client_name.trim();
        // The length is of what was sent (as the OpenAPI `maxLength` says), before trimming.
        if name.is_empty()
            || client_name.chars().count() > MAX_CLIENT_NAME
            || name.chars().any(char::is_control)
        {
            return Err(AppError::invalid(
                "client_name",
                format!("`client_name` must be 1 to {MAX_CLIENT_NAME} characters on one line."),
            ));
        }
        if scopes.is_empty() || scopes.len() > 64 {
            return Err(AppError::invalid("scopes", "Ask for 1 to 64 scopes."));
        }
        let scopes = ScopeSet::parse_list(scopes.iter().map(String::as_str))
            .map_err(|bad| AppError::invalid("scopes", format!("Unknown scope `{bad}`.")))?;
        Ok((name, scopes))
    }

    /// Refuses what [`Self::start`] would refuse before storing anything (so a caller can
    /// spend a budget on good starts only).
    pub fn check(client_name: &str, scopes: &[String]) -> AppResult<()> {
        Self::checked(client_name, scopes).map(|_| ())
    }

    /// Starts a device login; returns the device code (for the CLI only) and the login.
    pub async fn start(
        &self,
        client_name: &str,
        scopes: &[String],
    ) -> AppResult<(String, DeviceLogin)> {
        let (name, scopes) = Self::checked(client_name, scopes)?;
        let store = self.app.store();
        let now = self.app.clock().now_ms();
        if store.count_open_device_logins(now).await? >= MAX_OPEN {
            return Err(AppError::new(
                ErrorCode::RateLimited,
                "Too many device logins are waiting; try again in a few minutes.",
            ));
        }
        let code = random_token(DEVICE_PREFIX);
        for _ in 0..5 {
            let login = DeviceLogin {
                id: crier_core::ids::DeviceLoginId::generate(),
                user_code: new_user_code(),
                client_name: name.to_owned(),
                scopes,
                status: DeviceStatus::Pending,
                user_id: None,
                workspace_id: None,
                key_id: None,
                created_at: now,
                expires_at: now + LIFETIME_MS,
                interval_ms: INTERVAL_MS,
                polled_at: None,
                decided_at: None,
            };
            match store
                .insert_device_login(&login, &KeyDigest::of(&code))
                .await
            {
                Ok(()) => return Ok((code, login)),
                // A user code already in use: draw another.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::internal("no free user code after 5 draws"))
    }

    /// The login a person's code names, while it waits for a decision.
    pub async fn waiting(&self, user_code: &str) -> AppResult<DeviceLogin> {
        let invalid = || {
            AppError::invalid(
                "user_code",
                "No login is waiting for this code: check it, or start again on your device.",
            )
        };
        let code = normalize_user_code(user_code).ok_or_else(invalid)?;
        let login = self
            .app
            .store()
            .device_by_user_code(&code)
            .await?
            .ok_or_else(invalid)?;
        if login.status != DeviceStatus::Pending || login.expires_at <= self.app.clock().now_ms() {
            return Err(invalid());
        }
        Ok(login)
    }

    /// Approves (in the seat's workspace, as `user`) or denies the login waiting for
    /// `user_code`. Approving needs a role that holds every scope asked for.
    pub async fn decide(
        &self,
        seat: &Seat,
        user: &UserId,
        user_code: &str,
        approve: bool,
    ) -> AppResult<DeviceLogin> {
        let login = self.waiting(user_code).await?;
        if approve && !login.scopes.is_subset_of(seat.role.scopes()) {
            let missing = login
                .scopes
                .difference(seat.role.scopes())
                .names()
                .join(", ");
            return Err(AppError::new(
                ErrorCode::ForbiddenScope,
                format!(
                    "Your role in this workspace ({}) cannot grant {missing}; pick another \
                     workspace or ask an admin.",
                    seat.role.as_str()
                ),
            ));
        }
        let decision = approve.then_some((user, &seat.workspace.id));
        if !self
            .app
            .store()
            .decide_device(&login.id, decision, self.app.clock().now_ms())
            .await?
        {
            return Err(AppError::conflict(
                "This login was decided meanwhile, or has expired.",
            ));
        }
        Ok(login)
    }

    /// A poll of the token endpoint: the approved login (for the edge to redeem), or why not.
    pub async fn poll(&self, device_code: &str) -> AppResult<Result<DeviceLogin, Pending>> {
        if !is_token(device_code, DEVICE_PREFIX) {
            return Ok(Err(Pending::ExpiredToken));
        }
        let now = self.app.clock().now_ms();
        let found = self
            .app
            .store()
            .poll_device(&KeyDigest::of(device_code), now)
            .await?;
        Ok(match found {
            DevicePoll::Unknown => Err(Pending::ExpiredToken),
            DevicePoll::TooSoon => Err(Pending::SlowDown),
            DevicePoll::Found(login) => match login.status {
                DeviceStatus::Denied => Err(Pending::AccessDenied),
                DeviceStatus::Redeemed => Err(Pending::ExpiredToken),
                _ if login.expires_at <= now => Err(Pending::ExpiredToken),
                DeviceStatus::Pending => Err(Pending::AuthorizationPending),
                DeviceStatus::Approved => Ok(*login),
            },
        })
    }
}

impl App {
    /// Device logins for the CLI.
    pub fn devices(&self) -> Devices<'_> {
        Devices { app: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_two_groups_of_four_consonants_and_typing_is_forgiving() {
        for _ in 0..200 {
            let c = new_user_code();
            assert_eq!(c.len(), 9);
            assert_eq!(normalize_user_code(&c).as_deref(), Some(c.as_str()));
            let typed = c.to_lowercase().replace('-', " ");
            assert_eq!(normalize_user_code(&typed).as_deref(), Some(c.as_str()));
        }
        assert_eq!(
            normalize_user_code("WDJB-MJHA"),
            None,
            "A is not in the alphabet"
        );
        assert_eq!(normalize_user_code("WDJB-MJH"), None);
        assert_eq!(normalize_user_code(&"B".repeat(40)), None);
    }
}
