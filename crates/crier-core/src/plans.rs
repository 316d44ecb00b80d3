//! Plans: operator configuration of request ceilings, quotas and which paid scopes a
//! workspace may use. `None` in a quota means "no quota".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ErrorCode;
use crate::scopes::{Scope, ScopeSet};

/// Hard upper bounds for any key's limits, whatever the plan says, so that a typo in the
/// configuration cannot turn rate limiting off by overflow.
pub const MAX_PER_MINUTE: u32 = 1_000_000;
pub const MAX_PER_DAY: u32 = 1_000_000_000;
/// A new key's limits when none are asked for (the contract's defaults).
pub const DEFAULT_PER_MINUTE: u32 = 60;
pub const DEFAULT_PER_DAY: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    #[serde(default)]
    pub name: String,
    /// Ceiling for any key's per-minute limit.
    pub per_minute: u32,
    /// Ceiling for any key's per-day limit.
    pub per_day: u32,
    #[serde(default)]
    pub ai_credits_per_month: Option<u64>,
    #[serde(default)]
    pub posts_per_month: Option<u64>,
    #[serde(default)]
    pub connected_accounts: Option<u64>,
    #[serde(default)]
    pub media_storage_bytes: Option<u64>,
    /// Brands per workspace (and mode).
    #[serde(default)]
    pub brands: Option<u64>,
    /// Knowledge-base documents per workspace (and mode).
    #[serde(default)]
    pub kb_documents: Option<u64>,
    /// Characters of text the knowledge base holds per workspace (and mode).
    #[serde(default)]
    pub kb_chars: Option<u64>,
    /// The largest video a clip job takes, in bytes.
    #[serde(default)]
    pub clip_max_bytes: Option<u64>,
    /// The longest video a clip job takes, in seconds.
    #[serde(default)]
    pub clip_max_seconds: Option<u64>,
    /// The paid scopes this plan includes; the others answer `402 payment_required`.
    #[serde(default)]
    pub paid_scopes: ScopeSet,
}

impl Plan {
    /// Whether this plan lets a key use `scope` (unpaid scopes are always included).
    pub fn includes(&self, scope: Scope) -> bool {
        !scope.is_paid() || self.paid_scopes.contains(scope)
    }

    /// The access decision for a key holding `held` on this plan: it must hold `scope`
    /// (`403 forbidden_scope`), and the plan must include it when it is a paid scope
    /// (`402 payment_required`). One decision for the HTTP edge and the application layer.
    pub fn allows(&self, held: ScopeSet, scope: Scope) -> Result<(), (ErrorCode, String)> {
        if !held.contains(scope) {
            return Err((
                ErrorCode::ForbiddenScope,
                format!("This key cannot {} (needs {scope}).", scope.action()),
            ));
        }
        if !self.includes(scope) {
            return Err((
                ErrorCode::PaymentRequired,
                format!(
                    "To {} this workspace needs a paid plan (it is on `{}`).",
                    scope.action(),
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// The contract's shipped plans: `free`, `pro` and `self-hosted`.
    pub fn defaults() -> BTreeMap<String, Plan> {
        let all_paid: ScopeSet = Scope::ALL.iter().copied().filter(|s| s.is_paid()).collect();
        let plans = [
            Plan {
                name: "free".into(),
                per_minute: 60,
                per_day: 10_000,
                ai_credits_per_month: Some(0),
                posts_per_month: Some(100),
                connected_accounts: Some(3),
                media_storage_bytes: Some(0),
                brands: Some(1),
                kb_documents: Some(10),
                kb_chars: Some(200_000),
                clip_max_bytes: None,
                clip_max_seconds: None,
                paid_scopes: ScopeSet::EMPTY,
            },
            Plan {
                name: "pro".into(),
                per_minute: 600,
                per_day: 100_000,
                ai_credits_per_month: Some(10_000),
                posts_per_month: Some(10_000),
                connected_accounts: Some(50),
                media_storage_bytes: Some(50 * 1024 * 1024 * 1024),
                brands: Some(50),
                kb_documents: Some(1_000),
                kb_chars: Some(50_000_000),
                clip_max_bytes: Some(500 * 1024 * 1024),
                clip_max_seconds: Some(20 * 60),
                paid_scopes: all_paid,
            },
            Plan {
                name: "self-hosted".into(),
                per_minute: MAX_PER_MINUTE,
                per_day: MAX_PER_DAY,
                ai_credits_per_month: None,
                posts_per_month: None,
                connected_accounts: None,
                media_storage_bytes: None,
                brands: None,
                kb_documents: None,
                kb_chars: None,
                clip_max_bytes: None,
                clip_max_seconds: None,
                paid_scopes: all_paid,
            },
        ];
        plans.into_iter().map(|p| (p.name.clone(), p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_plans_match_the_contract() {
        let plans = Plan::defaults();
        let free = &plans["free"];
        assert_eq!((free.per_minute, free.per_day), (60, 10_000));
        assert!(!free.includes(Scope::PostsPublish));
        assert!(free.includes(Scope::PostsWrite));
        let pro = &plans["pro"];
        assert_eq!((pro.per_minute, pro.per_day), (600, 100_000));
        assert!(pro.includes(Scope::AiGenerate));
        let sh = &plans["self-hosted"];
        assert!(sh.posts_per_month.is_none() && sh.includes(Scope::MediaWrite));
    }
}
