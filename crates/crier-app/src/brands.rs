//! The brand rules, for every caller: a brand is a named group of a workspace's accounts (of
//! one mode) with its own voice, in an order the workspace chooses.
//!
//! Rules kept here:
//! - `name`: trimmed, 1 to [`MAX_NAME`] characters as sent, one line; unique per workspace and
//!   mode (`409 conflict`).
//! - `account_ids`: at most [`MAX_BRAND_ACCOUNTS`], each once, each an account of the caller's
//!   workspace and mode (any status); an unknown id, another workspace's or mode's, or one
//!   beyond a limited key's reach is `400 invalid_request` with `param` `account_ids` and the
//!   same message. An account may be in several brands.
//! - The plan's `brands` per workspace and mode (`402 quota_exceeded`), and never more than
//!   [`MAX_BRANDS`] whatever the plan (`409 conflict`), so nothing grows without bound.
//! - Order: a new brand goes last; `reorder` names exactly the brands the caller reaches, each
//!   once, and they take the places they held between them in that order (for an unlimited
//!   caller: positions `0..n`). A delete moves the brands after it up.
//! - `persona`: the owner's voice ([`crate::personas::check_voice`]); create and update may set
//!   it (an update replaces it whole).
//! - Deleting a brand deletes its memberships and its voice; posts made from it keep their
//!   accounts and their `brand_id`; keys limited to it keep the id and reach nothing through it.
//! - A limited key ([`crate::reach`]) sees and changes only brands within its reach; what it
//!   writes stays within it: a brand it creates needs at least one account, and every account it
//!   gives a brand must be one it reaches.
//! - Posts may name a brand instead of accounts ([`Brands::accounts_for_post`]).

use std::collections::{BTreeMap, BTreeSet};

use crier_ai::Voice;
use crier_core::ErrorCode;
use crier_core::ids::{AccountId, BrandId};
use crier_store::{Brand, BrandChanges, Page, StoredVoice};

use crate::personas::{check_voice, into_stored};
use crate::posts::MAX_ACCOUNTS;
use crate::reach::Reach;
use crate::{App, AppError, AppResult, Caller};

pub const MAX_NAME: usize = 100;
pub const MAX_BRAND_ACCOUNTS: usize = 100;
/// Brands a workspace may have per mode whatever its plan says.
pub const MAX_BRANDS: u64 = 500;

/// A new brand as asked.
#[derive(Debug, Clone, Default)]
pub struct NewBrand {
    pub name: String,
    pub account_ids: Vec<String>,
    pub persona: Option<Voice>,
}

/// What an update changes; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct BrandEdit {
    pub name: Option<String>,
    pub account_ids: Option<Vec<String>>,
    pub persona: Option<Voice>,
}

/// The brand rules over one [`App`].
pub struct Brands<'a> {
    pub(crate) app: &'a App,
}

fn name(raw: &str) -> AppResult<String> {
    let t = raw.trim();
    if t.is_empty() || raw.chars().count() > MAX_NAME || t.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "name",
            format!("`name` must be 1 to {MAX_NAME} characters on one line."),
        ));
    }
    Ok(t.to_owned())
}

fn persona(v: Voice) -> AppResult<StoredVoice> {
    check_voice(v)
        .map(into_stored)
        .map_err(|e| e.within("persona."))
}

pub(crate) fn unknown_brand(param: &str, id: &str) -> AppError {
    let shown: String = id.chars().filter(|c| !c.is_control()).take(64).collect();
    AppError::invalid(param, format!("No such brand: '{shown}'."))
}

impl Brands<'_> {
    fn now(&self) -> i64 {
        self.app.clock().now_ms()
    }

    /// The brand `id` if the caller reaches it; `404` otherwise.
    pub async fn get(&self, c: &Caller, id: &str) -> AppResult<Brand> {
        let reach = self.app.reach(c).await?;
        self.get_in(c, &reach, id)
            .await?
            .ok_or_else(|| AppError::not_found("brand", id))
    }

    async fn get_in(&self, c: &Caller, reach: &Reach, id: &str) -> AppResult<Option<Brand>> {
        let Some(id) = BrandId::parse(id) else {
            return Ok(None);
        };
        Ok(self
            .app
            .store()
            .get_brand(&c.tenant, &id)
            .await?
            .filter(|b| reach.brand(b)))
    }

    /// A page of the brands the caller reaches, in the workspace's order (not newest first).
    pub async fn list(&self, c: &Caller, limit: u32, offset: u32) -> AppResult<Page<Brand>> {
        let reach = self.app.reach(c).await?;
        let lists = reach.lists();
        let within = lists.as_ref().map(|(b, a)| (b.as_slice(), a.as_slice()));
        Ok(self
            .app
            .store()
            .list_brands(&c.tenant, within, limit, offset)
            .await?)
    }

    /// Every brand the caller reaches, in order (at most [`MAX_BRANDS`]).
    async fn all(&self, c: &Caller, reach: &Reach) -> AppResult<Vec<Brand>> {
        let lists = reach.lists();
        let within = lists.as_ref().map(|(b, a)| (b.as_slice(), a.as_slice()));
        let page = self
            .app
            .store()
            .list_brands(&c.tenant, within, MAX_BRANDS as u32 * 2, 0)
            .await?;
        Ok(page.items)
    }

    /// Checks a brand's accounts: at most [`MAX_BRAND_ACCOUNTS`], well-formed, each once,
    /// each of the caller's workspace and mode and within its reach.
    async fn accounts(
        &self,
        c: &Caller,
        reach: &Reach,
        ids: &[String],
    ) -> AppResult<Vec<AccountId>> {
        const PARAM: &str = "account_ids";
        if ids.len() > MAX_BRAND_ACCOUNTS {
            return Err(AppError::invalid(
                PARAM,
                format!("`{PARAM}` may hold at most {MAX_BRAND_ACCOUNTS} accounts."),
            ));
        }
        let unknown = |id: &str| {
            let shown: String = id.chars().filter(|c| !c.is_control()).take(64).collect();
            AppError::invalid(PARAM, format!("No such account: '{shown}'."))
        };
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(ids.len());
        for raw in ids {
            let id = AccountId::parse(raw).ok_or_else(|| unknown(raw))?;
            if !seen.insert(id.clone()) {
                return Err(AppError::invalid(PARAM, format!("`{id}` is listed twice.")));
            }
            if !reach.account(&id) {
                return Err(unknown(raw));
            }
            out.push(id);
        }
        let found: BTreeSet<AccountId> = self
            .app
            .store()
            .existing_accounts(&c.tenant, &out)
            .await?
            .into_iter()
            .collect();
        if let Some(missing) = out.iter().find(|a| !found.contains(*a)) {
            return Err(unknown(missing.as_str()));
        }
        Ok(out)
    }

    /// Creates a brand, last in the order.
    pub async fn create(&self, c: &Caller, req: NewBrand) -> AppResult<Brand> {
        let name = name(&req.name)?;
        let reach = self.app.reach(c).await?;
        let account_ids = self.accounts(c, &reach, &req.account_ids).await?;
        if !reach.is_all() && account_ids.is_empty() {
            return Err(AppError::invalid(
                "account_ids",
                "A key limited to some brands or accounts must give a new brand at least one \
                 of its accounts.",
            ));
        }
        let voice = req.persona.map(persona).transpose()?.unwrap_or_default();
        let max = c.plan.brands.map_or(MAX_BRANDS, |p| p.min(MAX_BRANDS));
        let now = self.now();
        let brand = Brand {
            id: BrandId::generate(),
            workspace_id: c.workspace().clone(),
            livemode: c.livemode(),
            name,
            position: 0,
            account_ids,
            voice,
            created_at: now,
            updated_at: now,
        };
        let stored = self
            .app
            .store()
            .create_brand(&brand, Some(max))
            .await
            .map_err(|e| name_taken(e, &brand.name))?;
        stored.ok_or_else(|| match c.plan.brands {
            Some(limit) if limit <= MAX_BRANDS => {
                let mode = if c.livemode() { "" } else { " test-mode" };
                AppError::new(
                    ErrorCode::QuotaExceeded,
                    format!("This workspace's plan allows {limit}{mode} brands."),
                )
            }
            _ => AppError::conflict(format!(
                "This workspace already has {MAX_BRANDS} brands in this mode, the most it may have."
            )),
        })
    }

    /// Changes a brand's name, accounts (replaced) or voice (replaced).
    pub async fn update(&self, c: &Caller, id: &str, req: BrandEdit) -> AppResult<Brand> {
        let reach = self.app.reach(c).await?;
        let brand = self
            .get_in(c, &reach, id)
            .await?
            .ok_or_else(|| AppError::not_found("brand", id))?;
        let changes = BrandChanges {
            name: req.name.as_deref().map(name).transpose()?,
            account_ids: match &req.account_ids {
                Some(ids) => Some(self.accounts(c, &reach, ids).await?),
                None => None,
            },
            voice: req.persona.map(persona).transpose()?,
        };
        let shown = changes.name.clone().unwrap_or_default();
        self.app
            .store()
            .update_brand(&c.tenant, &brand.id, &changes, self.now())
            .await
            .map_err(|e| name_taken(e, &shown))?
            .ok_or_else(|| AppError::not_found("brand", id))
    }

    /// Deletes a brand with its memberships and its voice.
    pub async fn delete(&self, c: &Caller, id: &str) -> AppResult<BrandId> {
        let brand = self.get(c, id).await?;
        if !self.app.store().delete_brand(&c.tenant, &brand.id).await? {
            return Err(AppError::not_found("brand", id));
        }
        Ok(brand.id)
    }

    /// Puts the brands the caller reaches in the order of `ids`, which names each of them
    /// exactly once; returns them in their new order.
    pub async fn reorder(&self, c: &Caller, ids: &[String]) -> AppResult<Vec<Brand>> {
        const PARAM: &str = "ids";
        if ids.len() > MAX_BRANDS as usize {
            return Err(AppError::invalid(
                PARAM,
                format!("`{PARAM}` may hold at most {MAX_BRANDS} ids."),
            ));
        }
        let reach = self.app.reach(c).await?;
        let brands = self.all(c, &reach).await?;
        let known: BTreeMap<&str, &Brand> = brands.iter().map(|b| (b.id.as_str(), b)).collect();
        let mut seen = BTreeSet::new();
        for raw in ids {
            if !known.contains_key(raw.as_str()) {
                return Err(unknown_brand(PARAM, raw));
            }
            if !seen.insert(raw.as_str()) {
                return Err(AppError::invalid(
                    PARAM,
                    format!("`{raw}` is listed twice."),
                ));
            }
        }
        if let Some(missing) = brands.iter().find(|b| !seen.contains(b.id.as_str())) {
            return Err(AppError::invalid(
                PARAM,
                format!(
                    "`{PARAM}` must name every brand exactly once; `{}` is missing.",
                    missing.id
                ),
            ));
        }
        // The places these brands hold between them (all of them: 0..n), in order.
        let slots: Vec<i64> = if reach.is_all() {
            (0..brands.len() as i64).collect()
        } else {
            let mut s: Vec<i64> = brands.iter().map(|b| b.position).collect();
            s.sort_unstable();
            s
        };
        let positions: Vec<(BrandId, i64)> = ids
            .iter()
            .zip(slots)
            .map(|(id, slot)| (BrandId::from_trusted(id.clone()), slot))
            .collect();
        if !self
            .app
            .store()
            .reorder_brands(&c.tenant, &positions, self.now())
            .await?
        {
            return Err(AppError::conflict(
                "A brand was deleted while this request ran; read the brands and try again.",
            ));
        }
        self.all(c, &reach).await
    }

    /// The brand a post names instead of accounts (`param`: where the id came from): the
    /// brand, and the ids of its connected accounts in its order. An unknown brand, another
    /// workspace's or mode's, or one beyond a limited key's reach is `400` (`param`, one
    /// message); so is a brand without connected accounts, or with more than a post may go to.
    pub async fn accounts_for_post(
        &self,
        c: &Caller,
        param: &str,
        id: &str,
    ) -> AppResult<(BrandId, Vec<String>)> {
        let reach = self.app.reach(c).await?;
        let brand = self
            .get_in(c, &reach, id)
            .await?
            .ok_or_else(|| unknown_brand(param, id))?;
        let mut connected = Vec::with_capacity(brand.account_ids.len());
        for a in &brand.account_ids {
            let account = self.app.store().get_account_in(&c.tenant, a).await?;
            if account.is_some_and(|a| a.status == crier_core::accounts::AccountStatus::Connected) {
                connected.push(a.to_string());
            }
        }
        if connected.is_empty() {
            return Err(AppError::invalid(
                param,
                format!("Brand '{}' has no connected accounts to post to.", brand.id),
            ));
        }
        if connected.len() > MAX_ACCOUNTS {
            return Err(AppError::invalid(
                param,
                format!(
                    "Brand '{}' has {} connected accounts; a post goes to at most {MAX_ACCOUNTS}.",
                    brand.id,
                    connected.len()
                ),
            ));
        }
        Ok((brand.id, connected))
    }
}

fn name_taken(e: crier_store::StoreError, name: &str) -> AppError {
    match e {
        crier_store::StoreError::Conflict(_) => AppError::conflict(format!(
            "A brand named '{name}' already exists in this mode."
        )),
        other => other.into(),
    }
}
