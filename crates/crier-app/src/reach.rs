//! What a caller reaches: the one mechanism behind brand- and account-limited keys.
//!
//! A key may be limited to some brands (`allowed_brand_ids`) and some accounts
//! (`allowed_account_ids`); both empty means no limit. The caller carries the key's lists
//! ([`Restriction`]); [`App::reach`] resolves them at each request into a [`Reach`], so adding an
//! account to an allowed brand extends the key's reach at once (and removing it narrows it).
//! System actors (the publisher, the feed poller) are never limited.
//!
//! A limited caller reaches:
//! - accounts: those in `allowed_account_ids`, plus the accounts of the brands in
//!   `allowed_brand_ids`, as they are now;
//! - brands: those in `allowed_brand_ids`, plus every brand that has accounts and whose
//!   accounts are all within its reach (so a key limited to accounts sees the brands made of
//!   them, and a brand it creates from its accounts);
//! - posts (and their analytics, the queue): those whose every target is an account it
//!   reaches;
//! - feeds: those whose every account it reaches;
//! - keys: those limited to brands it is allowed and accounts it reaches (see
//!   [`Reach::covers_key`]).
//!
//! Everything else does not exist for it: `404 not_found`, and an id of it in a request body is
//! refused exactly as an unknown id is (`400 invalid_request`, same message), so a limited key
//! cannot learn what exists outside its reach. What would reach beyond it by nature (connecting
//! a new account, webhooks, which carry the whole workspace's events, the workspace's own
//! voice) is refused with `403 forbidden_scope` ([`crate::Caller::require_unrestricted`]).

use std::collections::BTreeSet;

use crier_core::ErrorCode;
use crier_core::ids::{AccountId, BrandId};
use crier_store::{Brand, Post, Store};

use crate::{App, AppError, AppResult, Caller, Tenant};

/// The most ids each of a key's `allowed_brand_ids` and `allowed_account_ids` may hold.
pub const MAX_ALLOWED: usize = 100;

/// A key's limits as it holds them (its stored lists, parsed). Both empty: no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restriction {
    pub brands: Vec<BrandId>,
    pub accounts: Vec<AccountId>,
}

impl Restriction {
    /// From a key's stored lists (ids crier checked before it stored them).
    pub fn from_stored(brands: &[String], accounts: &[String]) -> Self {
        Self {
            brands: brands.iter().cloned().map(BrandId::from_trusted).collect(),
            accounts: accounts
                .iter()
                .cloned()
                .map(AccountId::from_trusted)
                .collect(),
        }
    }

    pub fn is_limited(&self) -> bool {
        !self.brands.is_empty() || !self.accounts.is_empty()
    }
}

/// What a caller reaches now (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Everything of its workspace and mode.
    All,
    Only {
        /// The brands it is allowed (as listed on the key, existing or not).
        brands: BTreeSet<BrandId>,
        /// The accounts it reaches: its listed accounts and its brands' accounts now.
        accounts: BTreeSet<AccountId>,
    },
}

impl Reach {
    pub fn is_all(&self) -> bool {
        matches!(self, Reach::All)
    }

    pub fn account(&self, id: &AccountId) -> bool {
        match self {
            Reach::All => true,
            Reach::Only { accounts, .. } => accounts.contains(id),
        }
    }

    /// Whether every one of `ids` is within reach.
    pub fn accounts<'a>(&self, mut ids: impl Iterator<Item = &'a AccountId>) -> bool {
        ids.all(|id| self.account(id))
    }

    /// A post is within reach when every target's account is.
    pub fn post(&self, post: &Post) -> bool {
        self.accounts(post.targets.iter().map(|t| &t.account_id))
            && self.accounts(post.account_ids.iter())
    }

    /// A brand is within reach when it is allowed, or when it has accounts and all of them are.
    pub fn brand(&self, brand: &Brand) -> bool {
        match self {
            Reach::All => true,
            Reach::Only { brands, .. } => {
                brands.contains(&brand.id)
                    || (!brand.account_ids.is_empty() && self.accounts(brand.account_ids.iter()))
            }
        }
    }

    /// The accounts as a list for a storage filter (`None`: no filter).
    pub fn account_list(&self) -> Option<Vec<AccountId>> {
        match self {
            Reach::All => None,
            Reach::Only { accounts, .. } => Some(accounts.iter().cloned().collect()),
        }
    }

    /// The allowed brands and the accounts, as lists for a storage filter.
    pub fn lists(&self) -> Option<(Vec<BrandId>, Vec<AccountId>)> {
        match self {
            Reach::All => None,
            Reach::Only { brands, accounts } => Some((
                brands.iter().cloned().collect(),
                accounts.iter().cloned().collect(),
            )),
        }
    }

    /// Whether a key limited by `child` stays within this reach: it is limited (an unlimited
    /// key reaches everything), each of its brands is one this reach is allowed (not merely
    /// one it sees: a brand that later gains accounts must not carry the child beyond it), and
    /// each of its accounts is reached. Everything is within [`Reach::All`].
    pub fn covers_key(&self, child: &Restriction) -> bool {
        match self {
            Reach::All => true,
            Reach::Only { brands, accounts } => {
                child.is_limited()
                    && child.brands.iter().all(|b| brands.contains(b))
                    && child.accounts.iter().all(|a| accounts.contains(a))
            }
        }
    }
}

/// Resolves `restriction` for `tenant` now.
pub async fn resolve(
    store: &Store,
    tenant: &Tenant,
    restriction: &Restriction,
) -> AppResult<Reach> {
    if !restriction.is_limited() {
        return Ok(Reach::All);
    }
    let mut accounts: BTreeSet<AccountId> = restriction.accounts.iter().cloned().collect();
    accounts.extend(store.brand_accounts(tenant, &restriction.brands).await?);
    Ok(Reach::Only {
        brands: restriction.brands.iter().cloned().collect(),
        accounts,
    })
}

impl App {
    /// What `c` reaches now: [`Reach::All`] for an unlimited caller (no storage read), else
    /// its key's accounts and its brands' accounts as they are at this moment.
    pub async fn reach(&self, c: &Caller) -> AppResult<Reach> {
        resolve(self.store(), &c.tenant, &c.restriction).await
    }
}

/// Checks the `allowed_brand_ids` and `allowed_account_ids` a key is to have, for a key of
/// `tenant` (its workspace and mode). A list given (`Some`) replaces the one in `current` and
/// must hold at most [`MAX_ALLOWED`] well-formed ids, each once, each a brand or an account of
/// that workspace and mode (`400 invalid_request`, `param` naming the list). With `actor` (the
/// reach of the key that acts; `None` for the operator) the result must stay within it
/// ([`Reach::covers_key`]): ids beyond it are refused exactly as unknown ids are, and a limited
/// actor cannot make a key without limits (`403 forbidden_scope`). Returns the limits as they
/// are to be stored.
pub async fn check_restriction(
    store: &Store,
    tenant: &Tenant,
    brands: Option<&[String]>,
    accounts: Option<&[String]>,
    current: &Restriction,
    actor: Option<&Reach>,
) -> AppResult<Restriction> {
    let mut r = current.clone();
    if let Some(list) = brands {
        r.brands = ids("allowed_brand_ids", "brand", list, BrandId::parse)?;
    }
    if let Some(list) = accounts {
        r.accounts = ids("allowed_account_ids", "account", list, AccountId::parse)?;
    }
    if let Some(Reach::Only { brands, accounts }) = actor {
        if !r.is_limited() {
            return Err(AppError::new(
                ErrorCode::ForbiddenScope,
                "This key is limited to some brands or accounts; it cannot make a key without \
                 such limits (give `allowed_brand_ids` or `allowed_account_ids`).",
            ));
        }
        if let Some(b) = r.brands.iter().find(|b| !brands.contains(*b)) {
            return Err(unknown("allowed_brand_ids", "brand", b.as_str()));
        }
        if let Some(a) = r.accounts.iter().find(|a| !accounts.contains(*a)) {
            return Err(unknown("allowed_account_ids", "account", a.as_str()));
        }
    }
    if brands.is_some() {
        let found: BTreeSet<BrandId> = store
            .existing_brands(tenant, &r.brands)
            .await?
            .into_iter()
            .collect();
        if let Some(b) = r.brands.iter().find(|b| !found.contains(*b)) {
            return Err(unknown("allowed_brand_ids", "brand", b.as_str()));
        }
    }
    if accounts.is_some() {
        let found: BTreeSet<AccountId> = store
            .existing_accounts(tenant, &r.accounts)
            .await?
            .into_iter()
            .collect();
        if let Some(a) = r.accounts.iter().find(|a| !found.contains(*a)) {
            return Err(unknown("allowed_account_ids", "account", a.as_str()));
        }
    }
    Ok(r)
}

/// The checks of [`check_restriction`] that need no storage: each list given holds at most
/// [`MAX_ALLOWED`] well-formed ids, each once (`400 invalid_request`, `param` naming the list).
/// For a caller that must refuse a malformed request before it looks at the state of the key
/// the request would change.
pub fn check_lists(brands: Option<&[String]>, accounts: Option<&[String]>) -> AppResult<()> {
    if let Some(list) = brands {
        ids("allowed_brand_ids", "brand", list, BrandId::parse)?;
    }
    if let Some(list) = accounts {
        ids("allowed_account_ids", "account", list, AccountId::parse)?;
    }
    Ok(())
}

fn unknown(param: &str, what: &str, id: &str) -> AppError {
    AppError::invalid(param, format!("No such {what}: '{id}'."))
}

/// A list of ids: at most [`MAX_ALLOWED`], well-formed, each once.
fn ids<T: Ord + Clone + AsRef<str>>(
    param: &str,
    what: &str,
    list: &[String],
    parse: impl Fn(&str) -> Option<T>,
) -> AppResult<Vec<T>> {
    if list.len() > MAX_ALLOWED {
        return Err(AppError::invalid(
            param,
            format!("`{param}` may hold at most {MAX_ALLOWED} ids."),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for raw in list {
        let id = parse(raw).ok_or_else(|| {
            let shown: String = raw.chars().filter(|c| !c.is_control()).take(64).collect();
            unknown(param, what, &shown)
        })?;
        if !seen.insert(id.clone()) {
            return Err(AppError::invalid(
                param,
                format!("`{}` is listed twice.", id.as_ref()),
            ));
        }
        out.push(id);
    }
    Ok(out)
}
