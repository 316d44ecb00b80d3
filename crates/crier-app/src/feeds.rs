//! The feed rules: what becomes of the posts a feed's new entries make. The poller reads the
//! feed and renders each entry's text; the feed's mode names a [`Placement`] (`draft`,
//! `queue`, `publish`), which decides each post's status and time as it does for agents.

use crier_store::{Feed, FeedMode, Post};

use crate::placement::{Candidate, Placement, place};
use crate::{App, AppResult, Tenant};

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
        let mode = match feed.mode {
            FeedMode::Draft => Placement::Draft,
            FeedMode::Queue => Placement::Queue,
            FeedMode::Publish => Placement::Publish,
        };
        let tenant = Tenant {
            workspace: feed.workspace_id.clone(),
            livemode: feed.livemode,
        };
        let posts = posts
            .into_iter()
            .map(|p| Candidate {
                post: p.post,
                fits: p.fits,
            })
            .collect();
        place(self.app, &tenant, mode, posts, feed.id.as_str(), now).await
    }
}
