//! The posts-per-month quota, decided here for every caller from the one plan source.
//!
//! Live targets count (one post to three accounts is three), in the UTC month they are due.
//! A request that schedules, publishes, approves, retries or edits posts is refused when that
//! month's published targets, plus those already scheduled, publishing or awaiting approval for
//! it, plus the new ones, exceed the plan ([`check`]). Two requests at the same moment can each
//! see the last place free, and plans change, so the publisher asks again before a target's
//! first call ([`published_out`]). Test-mode posts never count.

use std::collections::BTreeMap;

use crier_core::ErrorCode;
use crier_core::Plan;
use crier_core::clock::Month;
use crier_core::ids::WorkspaceId;
use crier_core::posts::{PostStatus, TargetStatus};
use crier_store::{Post, Store};

use crate::{AppError, AppResult, Caller};

/// A post a request wants to publish.
pub struct Due<'a> {
    /// The post as stored before this request (`None`: a new one), whose place may be held.
    pub stored: Option<&'a Post>,
    /// The post as it will be, whose unpublished targets need a place.
    pub post: &'a Post,
    /// When it goes out: its schedule, or now.
    pub at: i64,
}

impl<'a> Due<'a> {
    /// A stored post going out at `at` as it is.
    pub fn stored(post: &'a Post, at: i64) -> Self {
        Self {
            stored: Some(post),
            post,
            at,
        }
    }
}

/// `402 quota_exceeded` when live posts would go past the plan's posts per month. A post that
/// already holds its place (rescheduled, approved, edited) gives it up first, so it is not
/// counted twice.
pub async fn check(store: &Store, caller: &Caller, due: &[Due<'_>], now: i64) -> AppResult<()> {
    let Some(limit) = caller.plan.posts_per_month else {
        return Ok(());
    };
    let this_month = Month::of(now);
    // month -> (the stored posts that may hold a place in it, the targets the posts add)
    let mut months: BTreeMap<String, (Month, Vec<&Post>, u64)> = BTreeMap::new();
    for d in due.iter().filter(|d| d.post.livemode) {
        let month = Month::of(d.at.max(now));
        let adding = d
            .post
            .targets
            .iter()
            .filter(|t| t.status != TargetStatus::Published)
            .count() as u64;
        let entry = months
            .entry(month.period.clone())
            .or_insert_with(|| (month, Vec::new(), 0));
        entry.1.extend(d.stored);
        entry.2 += adding;
    }
    for (month, stored, adding) in months.into_values() {
        // Overdue posts from earlier months go out now: they count in this month.
        let from = if month == this_month {
            i64::MIN
        } else {
            month.start
        };
        // Reserved first: a target that publishes between the two reads is then counted
        // twice (refusing one too many), never missed.
        let mut reserved = store
            .reserved_targets(caller.workspace(), from, month.end)
            .await?
            .max(0) as u64;
        let used = published_in(store, caller.workspace(), &month).await?;
        for post in stored {
            let holds_place = matches!(
                post.status,
                PostStatus::Scheduled | PostStatus::Publishing | PostStatus::PendingApproval
            ) && (from..month.end).contains(&post.scheduled_at.unwrap_or(0));
            if holds_place {
                let held = post
                    .targets
                    .iter()
                    .filter(|t| {
                        matches!(t.status, TargetStatus::Pending | TargetStatus::Publishing)
                    })
                    .count() as u64;
                reserved = reserved.saturating_sub(held);
            }
        }
        if used + reserved + adding > limit {
            return Err(AppError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "This workspace's plan allows {limit} posts in {}: {used} are published and \
                     {reserved} scheduled, so {adding} more do not fit.",
                    month.period
                ),
            ));
        }
    }
    Ok(())
}

/// Why workspace `ws` on `plan` may not publish one more live post in the month of `now`, if
/// it may not (the publisher's check before a target's first call).
pub async fn published_out(
    store: &Store,
    ws: &WorkspaceId,
    plan: &Plan,
    now: i64,
) -> crier_store::Result<Option<String>> {
    let Some(limit) = plan.posts_per_month else {
        return Ok(None);
    };
    let month = Month::of(now);
    let used = published_in(store, ws, &month).await?;
    Ok((used >= limit).then(|| {
        format!(
            "This workspace has published {used} of the {limit} posts its plan allows in {}.",
            month.period
        )
    }))
}

async fn published_in(store: &Store, ws: &WorkspaceId, month: &Month) -> crier_store::Result<u64> {
    Ok(store
        .workspace_usage(ws, &month.period)
        .await?
        .get(crier_store::METRIC_POSTS_PUBLISHED)
        .copied()
        .unwrap_or(0)
        .max(0) as u64)
}
