//! What becomes of the posts an automation makes (a feed's entries, an agent's run): each
//! post's status and time, decided the same way the API decides a post's (approval, the queue,
//! the posts-per-month quota):
//!
//! - [`Placement::Draft`] makes drafts;
//! - [`Placement::Approval`] makes posts waiting for a person's approval (approved, they go out
//!   at once);
//! - [`Placement::Publish`] sends them now (`publishing`), or to approval when the workspace
//!   requires it;
//! - [`Placement::Queue`] gives them the next free slots of the mode's queue, in the order
//!   given (`scheduled`, or `pending_approval` with the slot's time);
//! - a post that cannot go out as asked becomes a draft, for a person to fix, with a warning
//!   logged: its text does not fit a target network, the queue has no free slot, the
//!   workspace's plan is not configured, or a live post would go past the plan's posts per
//!   month ([`crate::quota::check`], as for every API call; test-mode posts never count). The
//!   posts of one batch count against each other too.

use crier_core::clock::from_ms;
use crier_core::posts::PostStatus;
use crier_core::{ErrorCode, Scope};
use crier_store::Post;

use crate::quota::{self, Due};
use crate::{App, AppResult, Caller, Tenant};

/// Where an automation's posts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Draft,
    Approval,
    Publish,
    Queue,
}

/// A post an automation made, as a draft of its workspace and mode.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub post: Post,
    /// Whether its text fits every target network's rules.
    pub fits: bool,
}

/// The posts with their status and time, in the order given; nothing is stored. `source`
/// names the automation in logs (a feed or agent id).
pub async fn place(
    app: &App,
    tenant: &Tenant,
    mode: Placement,
    posts: Vec<Candidate>,
    source: &str,
    now: i64,
) -> AppResult<Vec<Post>> {
    let drafts = |posts: Vec<Candidate>| posts.into_iter().map(|p| p.post).collect();
    if mode == Placement::Draft || posts.is_empty() {
        return Ok(drafts(posts));
    }
    let store = app.store();
    let Some(ws) = store.get_workspace(&tenant.workspace).await? else {
        return Ok(drafts(posts));
    };
    let Some(plan) = app.plan(&ws.plan) else {
        // The API refuses this workspace's requests too; nothing goes out until an operator
        // configures its plan.
        tracing::warn!(%source, plan = %ws.plan, "the workspace's plan is not configured; the posts are saved as drafts");
        return Ok(drafts(posts));
    };
    let caller = Caller::system(
        tenant.clone(),
        plan,
        // What an automation acts with: its mode says whether it also publishes, and the key
        // that set it to publish or queue held `posts:publish`.
        [Scope::PostsWrite, Scope::PostsPublish]
            .into_iter()
            .collect(),
        source.to_owned(),
    );
    let mut queue = match mode {
        Placement::Queue => Some(store.queue_plan(&ws, tenant.livemode, now).await?),
        _ => None,
    };
    let waiting = if ws.require_approval {
        PostStatus::PendingApproval
    } else {
        PostStatus::Scheduled
    };

    let mut out: Vec<Post> = Vec::with_capacity(posts.len());
    // The posts of this batch that go out (index in `out`, when): not stored yet, so the quota
    // counts them here.
    let mut going: Vec<(usize, i64)> = Vec::new();
    for Candidate { post, fits } in posts {
        if !fits {
            tracing::warn!(%source, post = %post.id, "the text does not fit its networks; saved as a draft");
            out.push(post);
            continue;
        }
        let (status, scheduled_at) = match &queue {
            None if mode == Placement::Approval || ws.require_approval => {
                (PostStatus::PendingApproval, None)
            }
            None => (PostStatus::Publishing, None),
            Some(queue) => match queue.next_free(from_ms(now)) {
                Some(at) => (waiting, Some(at.as_millisecond())),
                None => {
                    tracing::warn!(%source, post = %post.id, "no free queue slot; saved as a draft");
                    out.push(post);
                    continue;
                }
            },
        };
        let candidate = Post {
            status,
            scheduled_at,
            ..post.clone()
        };
        let at = scheduled_at.unwrap_or(now);
        let due: Vec<Due> = going
            .iter()
            .map(|&(i, at)| Due {
                stored: None,
                post: &out[i],
                at,
            })
            .chain([Due {
                stored: None,
                post: &candidate,
                at,
            }])
            .collect();
        match quota::check(store, &caller, &due, now).await {
            Ok(()) => {
                if let (Some(queue), Some(at)) = (&mut queue, scheduled_at) {
                    // Taken for this batch's later posts too.
                    queue.taken.push(at);
                }
                going.push((out.len(), at));
                out.push(candidate);
            }
            Err(e) if e.code == ErrorCode::QuotaExceeded => {
                tracing::warn!(%source, post = %post.id, reason = %e.message, "the plan's posts per month are used up; saved as a draft");
                out.push(post);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
