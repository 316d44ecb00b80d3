//! The feed rules: what becomes of the posts a feed's new entries make. The poller reads the
//! feed and renders each entry's text; this module decides each post's status and time, the
//! same way the API decides a post's (approval, the queue, the posts-per-month quota):
//!
//! - a `draft` feed makes drafts;
//! - a `publish` feed's posts go out now (`publishing`), or wait for approval when the
//!   workspace requires it;
//! - a `queue` feed's posts take the next free slots of the feed's mode's queue, in the feed's
//!   order (`scheduled`, or `pending_approval` with the slot's time);
//! - a post that cannot go out as the feed asks becomes a draft, for a person to fix, with a
//!   warning logged: its text does not fit a target network, the queue has no free slot, the
//!   workspace's plan is not configured, or a live post would go past the plan's posts per
//!   month ([`crate::quota::check`], as for every API call; test-mode posts never count). The
//!   posts of one poll count against each other too.

use crier_core::clock::from_ms;
use crier_core::posts::PostStatus;
use crier_core::{ErrorCode, Scope};
use crier_store::{Feed, FeedMode, Post};

use crate::quota::{self, Due};
use crate::{App, AppResult, Caller, Tenant};

/// A post a feed entry makes, as the poller built it: a draft of the feed's workspace and mode.
#[derive(Debug, Clone)]
pub struct EntryPost {
    pub post: Post,
    /// Whether its text fits every target network's rules.
    pub fits: bool,
}

/// The feed rules over one [`App`].
pub struct Feeds<'a> {
    pub(crate) app: &'a App,
}

impl Feeds<'_> {
    /// The posts of one poll of `feed` with their status and time, in the order given (the
    /// feed's, oldest first: queue slots follow it). Nothing is stored; the poller records the
    /// posts with the feed's state in one transaction.
    pub async fn place(
        &self,
        feed: &Feed,
        posts: Vec<EntryPost>,
        now: i64,
    ) -> AppResult<Vec<Post>> {
        let drafts = |posts: Vec<EntryPost>| posts.into_iter().map(|p| p.post).collect();
        if feed.mode == FeedMode::Draft || posts.is_empty() {
            return Ok(drafts(posts));
        }
        let store = self.app.store();
        let Some(ws) = store.get_workspace(&feed.workspace_id).await? else {
            return Ok(drafts(posts));
        };
        let Some(plan) = self.app.plan(&ws.plan) else {
            // The API refuses this workspace's requests too; nothing goes out until an
            // operator configures its plan.
            tracing::warn!(feed = %feed.id, plan = %ws.plan, "the workspace's plan is not configured; the feed's posts are saved as drafts");
            return Ok(drafts(posts));
        };
        let caller = Caller::system(
            Tenant {
                workspace: feed.workspace_id.clone(),
                livemode: feed.livemode,
            },
            plan,
            // What a feed acts with: its mode says whether it also publishes, and the key
            // that set it to `queue` or `publish` held `posts:publish`.
            [Scope::PostsWrite, Scope::PostsPublish]
                .into_iter()
                .collect(),
            feed.id.to_string(),
        );
        let mut queue = match feed.mode {
            FeedMode::Queue => Some(store.queue_plan(&ws, feed.livemode, now).await?),
            _ => None,
        };
        let waiting = if ws.require_approval {
            PostStatus::PendingApproval
        } else {
            PostStatus::Scheduled
        };

        let mut out: Vec<Post> = Vec::with_capacity(posts.len());
        // The posts of this poll that go out (index in `out`, when): not stored yet, so the
        // quota counts them here.
        let mut going: Vec<(usize, i64)> = Vec::new();
        for EntryPost { post, fits } in posts {
            if !fits {
                tracing::warn!(feed = %feed.id, post = %post.id, "the entry's text does not fit its networks; saved as a draft");
                out.push(post);
                continue;
            }
            let (status, scheduled_at) = match &queue {
                None if ws.require_approval => (PostStatus::PendingApproval, None),
                None => (PostStatus::Publishing, None),
                Some(queue) => match queue.next_free(from_ms(now)) {
                    Some(at) => (waiting, Some(at.as_millisecond())),
                    None => {
                        tracing::warn!(feed = %feed.id, post = %post.id, "no free queue slot; the entry is saved as a draft");
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
                        // Taken for this poll's later entries too.
                        queue.taken.push(at);
                    }
                    going.push((out.len(), at));
                    out.push(candidate);
                }
                Err(e) if e.code == ErrorCode::QuotaExceeded => {
                    tracing::warn!(feed = %feed.id, post = %post.id, reason = %e.message, "the plan's posts per month are used up; the entry is saved as a draft");
                    out.push(post);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
