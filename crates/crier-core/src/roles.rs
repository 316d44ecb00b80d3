//! The roles of a workspace's members, and what each may do.
//!
//! A session acts with its user's role's scopes (and a key made through a session can be no
//! wider than them, by the same no-escalation rule as keys made by keys). Owners and admins
//! hold every scope; members write content but cannot change the workspace, its accounts,
//! webhooks, automations, brands or knowledge, or approve posts. Only owners manage owners.

use serde::{Deserialize, Serialize};

use crate::{Scope, ScopeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Admin, Role::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }

    /// The scopes a session of this role acts with.
    pub fn scopes(self) -> ScopeSet {
        match self {
            Self::Owner | Self::Admin => ScopeSet::all(),
            Self::Member => {
                let mut set = ScopeSet::EMPTY;
                for s in [
                    Scope::PostsRead,
                    Scope::PostsWrite,
                    Scope::PostsDelete,
                    Scope::PostsPublish,
                    Scope::MediaRead,
                    Scope::MediaWrite,
                    Scope::AccountsRead,
                    Scope::AnalyticsRead,
                    Scope::QueueRead,
                    Scope::FeedsRead,
                    Scope::AiGenerate,
                    Scope::WebhooksRead,
                    Scope::BrandsRead,
                    Scope::KbRead,
                    Scope::AgentsRead,
                    Scope::CarouselsRead,
                    Scope::CarouselsWrite,
                    Scope::ClipsRead,
                    Scope::ClipsWrite,
                    Scope::KeysRead,
                    Scope::KeysWrite,
                ] {
                    set.insert(s);
                }
                set
            }
        }
    }

    /// Whether this role may invite, change or remove a member holding `other` (or give
    /// `other` to someone): owners manage everyone, admins everyone but owners, members nobody.
    pub fn manages(self, other: Role) -> bool {
        match self {
            Self::Owner => true,
            Self::Admin => other != Self::Owner,
            Self::Member => false,
        }
    }

    /// Whether this role sees the workspace's audit log and its members' keys.
    pub fn administers(self) -> bool {
        self >= Self::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_hold_less_than_admins_and_cannot_manage_anyone() {
        assert!(Role::Member.scopes().is_subset_of(Role::Admin.scopes()));
        assert!(!Role::Member.scopes().contains(Scope::WorkspaceWrite));
        assert!(!Role::Member.scopes().contains(Scope::PostsApprove));
        assert!(Role::Member.scopes().contains(Scope::KeysWrite));
        assert!(Role::ALL.iter().all(|r| !Role::Member.manages(*r)));
        assert!(!Role::Admin.manages(Role::Owner));
        assert!(Role::Owner.manages(Role::Owner));
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }
}
