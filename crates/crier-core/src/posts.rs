//! The post state machine: which actions each status allows, and how a publishing post's
//! status follows from its targets (one per account).
//!
//! ```text
//!            schedule                 due / publish            all targets done
//!   draft ─────────────► scheduled ──────────────► publishing ───────────────► published
//!     ▲  ◄──── cancel ────┘   │                        ▲   │                    partially_published
//!     │                       │ (require_approval)     │   └──────────────────► failed
//!     └── cancel / reject ── pending_approval ─approve─┘            │ retry (failed targets)
//!                                                              ◄─────┘
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostStatus {
    Draft,
    PendingApproval,
    Scheduled,
    Publishing,
    Published,
    PartiallyPublished,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    Pending,
    Publishing,
    Published,
    Failed,
}

/// What a client asks of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Edit,
    /// Schedule at a time (or the next queue slot).
    Schedule,
    PublishNow,
    Cancel,
    Approve,
    Reject,
    /// Publish again to the targets that failed.
    Retry,
    Delete,
}

/// Where an approved post goes: to its scheduled time, or straight to publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovedTo {
    Scheduled,
    Publishing,
}

impl PostStatus {
    pub const ALL: [PostStatus; 7] = [
        PostStatus::Draft,
        PostStatus::PendingApproval,
        PostStatus::Scheduled,
        PostStatus::Publishing,
        PostStatus::Published,
        PostStatus::PartiallyPublished,
        PostStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::PendingApproval => "pending_approval",
            Self::Scheduled => "scheduled",
            Self::Publishing => "publishing",
            Self::Published => "published",
            Self::PartiallyPublished => "partially_published",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The status after `action`, or `None` when this status forbids it (409 conflict).
    /// `require_approval` is the workspace setting; `approved_to` says where an approval leads.
    pub fn after(
        self,
        action: Action,
        require_approval: bool,
        approved_to: ApprovedTo,
    ) -> Option<PostStatus> {
        use PostStatus::*;
        let gate = |then: PostStatus| {
            if require_approval {
                PendingApproval
            } else {
                then
            }
        };
        match (action, self) {
            (Action::Edit, Draft | Scheduled | PendingApproval) => Some(self),
            (Action::Schedule, Draft | Scheduled) => Some(gate(Scheduled)),
            (Action::Schedule, PendingApproval) => Some(PendingApproval),
            (Action::PublishNow, Draft | Scheduled) => Some(gate(Publishing)),
            (Action::Cancel, Scheduled | PendingApproval) => Some(Draft),
            (Action::Approve, PendingApproval) => Some(match approved_to {
                ApprovedTo::Scheduled => Scheduled,
                ApprovedTo::Publishing => Publishing,
            }),
            (Action::Reject, PendingApproval) => Some(Draft),
            (Action::Retry, Failed | PartiallyPublished) => Some(Publishing),
            (Action::Delete, s) if s != Publishing => Some(s),
            _ => None,
        }
    }
}

impl TargetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Publishing => "publishing",
            Self::Published => "published",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Publishing,
            Self::Published,
            Self::Failed,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// A publishing post's status from its targets: still `publishing` while any target is
/// pending or publishing; then `published`, `failed`, or `partially_published`.
pub fn status_from_targets(targets: &[TargetStatus]) -> PostStatus {
    let open = targets
        .iter()
        .any(|t| matches!(t, TargetStatus::Pending | TargetStatus::Publishing));
    if open || targets.is_empty() {
        return PostStatus::Publishing;
    }
    let published = targets
        .iter()
        .filter(|t| **t == TargetStatus::Published)
        .count();
    match published {
        0 => PostStatus::Failed,
        n if n == targets.len() => PostStatus::Published,
        _ => PostStatus::PartiallyPublished,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use PostStatus::*;

    const ACTIONS: [Action; 8] = [
        Edit, Schedule, PublishNow, Cancel, Approve, Reject, Retry, Delete,
    ];

    /// Every legal transition; `None` in the third column means "with or without the approval
    /// rule". Every pair not listed must be refused.
    #[test]
    fn the_whole_transition_table() {
        let legal: &[(PostStatus, Action, Option<bool>, PostStatus)] = &[
            (Draft, Edit, None, Draft),
            (Scheduled, Edit, None, Scheduled),
            (PendingApproval, Edit, None, PendingApproval),
            (Draft, Schedule, Some(false), Scheduled),
            (Scheduled, Schedule, Some(false), Scheduled),
            (Draft, Schedule, Some(true), PendingApproval),
            (Scheduled, Schedule, Some(true), PendingApproval),
            (PendingApproval, Schedule, None, PendingApproval),
            (Draft, PublishNow, Some(false), Publishing),
            (Scheduled, PublishNow, Some(false), Publishing),
            (Draft, PublishNow, Some(true), PendingApproval),
            (Scheduled, PublishNow, Some(true), PendingApproval),
            (Scheduled, Cancel, None, Draft),
            (PendingApproval, Cancel, None, Draft),
            (PendingApproval, Approve, None, Scheduled),
            (PendingApproval, Reject, None, Draft),
            (Failed, Retry, None, Publishing),
            (PartiallyPublished, Retry, None, Publishing),
        ];
        let mut checked = 0;
        for status in PostStatus::ALL {
            for action in ACTIONS {
                for approval in [false, true] {
                    let got = status.after(action, approval, ApprovedTo::Scheduled);
                    let want = if action == Delete {
                        (status != Publishing).then_some(status)
                    } else {
                        legal
                            .iter()
                            .find(|(s, a, r, _)| {
                                *s == status && *a == action && r.is_none_or(|r| r == approval)
                            })
                            .map(|(_, _, _, to)| *to)
                    };
                    assert_eq!(got, want, "{status:?} {action:?} approval={approval}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 7 * 8 * 2);
        assert_eq!(
            PendingApproval.after(Approve, true, ApprovedTo::Publishing),
            Some(Publishing)
        );
    }

    #[test]
    fn post_status_follows_targets() {
        use TargetStatus as T;
        assert_eq!(
            status_from_targets(&[T::Published, T::Publishing]),
            Publishing
        );
        assert_eq!(status_from_targets(&[T::Published, T::Pending]), Publishing);
        assert_eq!(
            status_from_targets(&[T::Published, T::Published]),
            Published
        );
        assert_eq!(status_from_targets(&[T::Failed, T::Failed]), Failed);
        assert_eq!(
            status_from_targets(&[T::Published, T::Failed]),
            PartiallyPublished
        );
    }

    #[test]
    fn wire_names_round_trip() {
        for s in PostStatus::ALL {
            assert_eq!(PostStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
