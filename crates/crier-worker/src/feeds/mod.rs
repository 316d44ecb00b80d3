//! The feed poller: reads each due feed (RSS 2.0, Atom or JSON Feed) and turns the entries it
//! has not seen into posts, as drafts, queued at the workspace's next free slot, or published.
//!
//! The rules it keeps:
//! - **One poller per feed at a time.** A node claims due feeds by moving `next_poll_at` past a
//!   lease (see `Store::claim_feeds`); a node that dies mid-poll delays the feed by the lease.
//! - **Conditional GET.** The last document's `ETag` and `Last-Modified` go out as
//!   `If-None-Match` and `If-Modified-Since`; a `304` is a success with nothing new.
//! - **Bounded work.** The URL passes the SSRF guard (`http::check_url`, and the client's
//!   resolver re-checks every address it connects to); redirects are followed by hand, at
//!   most [`MAX_REDIRECTS`], each re-checked; the body is read up to `max_body_bytes`; at most
//!   [`MAX_ENTRIES`] entries of a document and [`MAX_POSTS_PER_POLL`] new posts per poll count.
//! - **No flood, nothing twice.** The first read of a feed (or of its new URL) posts only the
//!   entries dated after the feed was made, plus the `backfill` newest; everything else is
//!   recorded as seen. Later reads post every unseen entry not dated before the feed. An entry
//!   is the one seen before when its id or its link is (`Store::record_feed_success` commits
//!   the entries and their posts together, so an entry becomes at most one post).
//! - **Failures are data.** A failed poll (network, HTTP status, size, parse, no connected
//!   account) is recorded on the feed (`last_error`, `consecutive_failures`) and the next poll
//!   backs off exponentially from the poll interval, up to `max_backoff`. A storage failure
//!   records nothing: the feed's lease runs out and it comes back.
//! - **Text fits.** `{title}`, `{link}` and `{summary}` are rendered as plain text; when the
//!   result is too long for a target network, the summary and then the title are shortened at
//!   a word boundary (the link never). A text that still does not fit, or a queue without a
//!   free slot, makes a draft instead, for a person to fix.
//!
//! The rooms: `poller.rs` claims due feeds, runs the poll loop and builds the posts;
//! `fetch.rs` does the conditional GET through the SSRF-guarded client; `parse.rs` turns a
//! document into entries. The text helpers (HTML to text, clipping, templates) are pure and
//! live in `crier_core::text`.

mod fetch;
mod parse;
mod poller;

use std::time::Duration;

use crier_core::ids::{FeedId, PostId};

pub use poller::FeedPoller;

/// Redirects followed per poll.
pub const MAX_REDIRECTS: usize = 5;
/// Entries of one document considered (the newest).
pub const MAX_ENTRIES: usize = 500;
/// New posts one poll makes at most; older new entries beyond it are recorded, not posted.
pub const MAX_POSTS_PER_POLL: usize = 50;

#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Feeds polled at once by this node.
    pub concurrency: usize,
    /// How long a claimed feed is this node's (well over `fetch_timeout`).
    pub lease: Duration,
    /// How long one fetch (connect, redirects, headers and body) may take; keep it well under
    /// `lease`.
    pub fetch_timeout: Duration,
    /// Bodies larger than this are refused (recorded as the feed's error).
    pub max_body_bytes: usize,
    /// The longest pause between polls of a failing feed (never shorter than its interval).
    pub max_backoff: Duration,
    /// How often an idle poller looks for due feeds.
    pub poll: Duration,
    /// Whether feed URLs may point at private, loopback or link-local addresses.
    pub allow_private_networks: bool,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            concurrency: 8,
            lease: Duration::from_secs(120),
            fetch_timeout: Duration::from_secs(20),
            max_body_bytes: 5 * 1024 * 1024,
            max_backoff: Duration::from_secs(6 * 3600),
            poll: Duration::from_secs(5),
            allow_private_networks: false,
        }
    }
}

/// What became of one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// `304 Not Modified`: nothing new.
    NotModified,
    /// A document was read: the posts made, and how many new entries were only recorded.
    Read { posts: Vec<PostId>, skipped: usize },
    /// Recorded on the feed; polled again at `retry_at`.
    Failed { error: String, retry_at: i64 },
    /// The feed was deleted or its URL changed during the poll; nothing was written.
    Superseded,
    /// Storage failed; nothing was written and the feed comes back when its lease ends.
    Deferred(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollReport {
    pub feed_id: FeedId,
    pub polled: Polled,
}
