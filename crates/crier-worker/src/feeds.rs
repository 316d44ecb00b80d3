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

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::runner::millis;
use crier_core::Clock;
use crier_core::clock::from_ms;
use crier_core::ids::{FeedId, PostId};
use crier_core::posts::PostStatus;
use crier_networks::Networks;
use crier_store::{Account, Feed, FeedMode, FeedPollSuccess, NewFeedItem, Post, QueuePlan, Store};
use reqwest::{StatusCode, header};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::http::check_url;

/// Redirects followed per poll.
pub const MAX_REDIRECTS: usize = 5;
/// Entries of one document considered (the newest).
pub const MAX_ENTRIES: usize = 500;
/// New posts one poll makes at most; older new entries beyond it are recorded, not posted.
pub const MAX_POSTS_PER_POLL: usize = 50;
const MAX_TITLE: usize = 300;
const MAX_SUMMARY: usize = 500;
const MAX_ERROR: usize = 500;
/// Entry ids longer than this are stored as their SHA-256.
const MAX_KEY: usize = 512;
const MAX_LINK: usize = 2048;
const MAX_VALIDATOR: usize = 512;
const ACCEPT: &str = "application/rss+xml, application/atom+xml, application/feed+json, \
    application/json;q=0.9, application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1";

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

#[derive(Clone)]
pub struct FeedPoller {
    store: Store,
    networks: Networks,
    clock: Arc<dyn Clock>,
    config: FeedConfig,
    client: reqwest::Client,
    /// Wakes this node's publisher when a feed made posts to publish now.
    publish_wake: Arc<Notify>,
}

enum Fetched {
    NotModified,
    Document {
        body: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// One entry of a document, reduced to what a post and deduplication need.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The entry's id (or, without one, its link or a digest of its text).
    key: String,
    link: Option<String>,
    title: String,
    summary: String,
    /// Published (or else updated) time, epoch ms.
    date: Option<i64>,
}

impl FeedPoller {
    pub fn new(
        store: Store,
        networks: Networks,
        clock: Arc<dyn Clock>,
        config: FeedConfig,
        publish_wake: Arc<Notify>,
    ) -> Self {
        let client = crate::http::client(config.fetch_timeout, config.allow_private_networks);
        Self {
            store,
            networks,
            clock,
            config,
            client,
            publish_wake,
        }
    }

    /// Runs until `cancel`: claims due feeds and polls them, `concurrency` at a time. On cancel
    /// it stops claiming and lets polls in hand finish.
    pub async fn run(self, cancel: CancellationToken) {
        let claimer = self.clone();
        let worker = self.clone();
        crate::runner::run(
            self.config.concurrency.max(1),
            self.config.poll,
            None,
            cancel,
            move |free| {
                let me = claimer.clone();
                async move {
                    let now = me.clock.now_ms();
                    match me
                        .store
                        .claim_feeds(now, millis(me.config.lease), free)
                        .await
                    {
                        Ok(feeds) => feeds,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not claim feeds");
                            Vec::new()
                        }
                    }
                }
            },
            move |feed| {
                let me = worker.clone();
                async move {
                    me.poll_feed(feed).await;
                }
            },
        )
        .await
    }

    /// Claims and polls every feed due now, one after another (each claimed just before its
    /// poll, so none waits out its lease in a queue). For tests and tools that drive the poller
    /// deterministically with an injected clock.
    pub async fn poll_due(&self) -> Vec<PollReport> {
        let mut out = Vec::new();
        loop {
            let now = self.clock.now_ms();
            let feeds = match self
                .store
                .claim_feeds(now, millis(self.config.lease), 1)
                .await
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim feeds");
                    break;
                }
            };
            if feeds.is_empty() {
                break;
            }
            for feed in feeds {
                out.push(self.poll_feed(feed).await);
            }
        }
        out
    }

    /// Polls one claimed feed and records the outcome; never panics on a server's or
    /// storage's failure.
    pub async fn poll_feed(&self, feed: Feed) -> PollReport {
        let polled = match self.try_poll(&feed).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(feed = %feed.id, error = %e, "feed poll failed on storage; it will come back");
                Polled::Deferred(e.to_string())
            }
        };
        PollReport {
            feed_id: feed.id,
            polled,
        }
    }

    async fn try_poll(&self, feed: &Feed) -> crier_store::Result<Polled> {
        let now = self.clock.now_ms();
        let accounts = self.accounts(feed).await?;
        if accounts.is_empty() {
            return self
                .fail(
                    feed,
                    "None of the feed's accounts is connected.".into(),
                    now,
                )
                .await;
        }
        // One deadline for the whole fetch (redirects and body included), well inside the lease.
        let fetched = match tokio::time::timeout(self.config.fetch_timeout, self.fetch(feed)).await
        {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return self.fail(feed, e, now).await,
            Err(_) => {
                let secs = self.config.fetch_timeout.as_secs_f64();
                let error = format!("The feed did not answer in full within {secs} s.");
                return self.fail(feed, error, now).await;
            }
        };
        let (validators, entries) = match fetched {
            Fetched::NotModified => (None, Vec::new()),
            Fetched::Document {
                body,
                etag,
                last_modified,
            } => {
                let base = feed.url.clone();
                // Parsing several MiB of XML is CPU work: keep it off the async threads.
                match tokio::task::spawn_blocking(move || parse_entries(&body, &base)).await {
                    Ok(Ok(entries)) => (Some((etag, last_modified)), entries),
                    Ok(Err(e)) => return self.fail(feed, e, now).await,
                    Err(e) => {
                        return self
                            .fail(feed, format!("The feed could not be parsed: {e}."), now)
                            .await;
                    }
                }
            }
        };
        let read = validators.is_some();
        let items = if read {
            self.new_items(feed, &accounts, entries, now).await?
        } else {
            Vec::new()
        };
        let skipped = items.iter().filter(|i| i.post.is_none()).count();
        let publish_now = items.iter().any(|i| {
            i.post
                .as_ref()
                .is_some_and(|p| p.status == PostStatus::Publishing)
        });
        let success = FeedPollSuccess {
            now,
            next_poll_at: now + feed.poll_interval_seconds.max(1) * 1000,
            validators,
            items,
        };
        let Some(posts) = self
            .store
            .record_feed_success(feed, &feed.url, &success)
            .await?
        else {
            return Ok(Polled::Superseded);
        };
        if publish_now && !posts.is_empty() {
            self.publish_wake.notify_waiters();
        }
        if !posts.is_empty() {
            tracing::info!(feed = %feed.id, posts = posts.len(), "feed made posts");
        }
        Ok(if read {
            Polled::Read { posts, skipped }
        } else {
            Polled::NotModified
        })
    }

    /// Records a failed poll and when to try again.
    async fn fail(&self, feed: &Feed, error: String, now: i64) -> crier_store::Result<Polled> {
        let failures = feed.consecutive_failures + 1;
        let retry_at = now + self.backoff_ms(feed.poll_interval_seconds, failures);
        let error = clip(&error, MAX_ERROR);
        if !self
            .store
            .record_feed_failure(feed, &feed.url, &error, failures, now, retry_at)
            .await?
        {
            return Ok(Polled::Superseded);
        }
        tracing::info!(feed = %feed.id, failures, error = %error, "feed poll failed");
        Ok(Polled::Failed { error, retry_at })
    }

    /// The pause after `failures` failures in a row: the interval doubled per failure, at most
    /// `max_backoff` (or the interval, if that is longer).
    pub fn backoff_ms(&self, interval_seconds: i64, failures: i64) -> i64 {
        let interval = interval_seconds.max(1) * 1000;
        let cap = millis(self.config.max_backoff).max(interval);
        interval
            .saturating_mul(1i64 << failures.clamp(0, 30))
            .min(cap)
    }

    /// The feed's accounts that can still take posts: connected, and of the feed's mode.
    async fn accounts(&self, feed: &Feed) -> crier_store::Result<Vec<Account>> {
        let mut out = Vec::with_capacity(feed.account_ids.len());
        for id in &feed.account_ids {
            if let Some(a) = self.store.get_account(&feed.workspace_id, id).await?
                && a.status == crier_core::accounts::AccountStatus::Connected
                && a.livemode == feed.livemode
            {
                out.push(a);
            }
        }
        Ok(out)
    }

    async fn fetch(&self, feed: &Feed) -> Result<Fetched, String> {
        let allow = self.config.allow_private_networks;
        let mut url =
            check_url(&feed.url, allow).map_err(|e| format!("The feed's URL is refused: {e}."))?;
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self.client.get(url.clone()).header(header::ACCEPT, ACCEPT);
            if let Some(etag) = &feed.etag {
                req = req.header(header::IF_NONE_MATCH, etag.as_str());
            }
            if let Some(lm) = &feed.last_modified {
                req = req.header(header::IF_MODIFIED_SINCE, lm.as_str());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| format!("Could not fetch the feed: {}.", describe(&e)))?;
            let status = resp.status();
            if status == StatusCode::NOT_MODIFIED {
                return Ok(Fetched::NotModified);
            }
            if status.is_redirection() {
                let next = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|loc| url.join(loc).ok())
                    .ok_or_else(|| {
                        format!(
                            "The feed's server answered HTTP {} without a usable Location.",
                            status.as_u16()
                        )
                    })?;
                url = check_url(next.as_str(), allow)
                    .map_err(|e| format!("The feed redirected to a refused URL: {e}."))?;
                continue;
            }
            if !status.is_success() {
                return Err(format!(
                    "The feed's server answered HTTP {}.",
                    status.as_u16()
                ));
            }
            let etag = validator(resp.headers(), header::ETAG);
            let last_modified = validator(resp.headers(), header::LAST_MODIFIED);
            let body = self.read_capped(resp).await?;
            return Ok(Fetched::Document {
                body,
                etag,
                last_modified,
            });
        }
        Err(format!(
            "The feed redirected more than {MAX_REDIRECTS} times."
        ))
    }

    /// The body, refused as soon as it is known to exceed the cap (declared or read).
    async fn read_capped(&self, mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
        let cap = self.config.max_body_bytes;
        let too_big = || {
            let size = if cap.is_multiple_of(1024 * 1024) {
                format!("{} MiB", cap / (1024 * 1024))
            } else if cap.is_multiple_of(1024) {
                format!("{} KiB", cap / 1024)
            } else {
                format!("{cap} bytes")
            };
            format!("The feed is larger than {size}, the most crier reads.")
        };
        if resp.content_length().is_some_and(|n| n > cap as u64) {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("Could not read the feed: {}.", describe(&e)))?
        {
            if body.len() + chunk.len() > cap {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The entries of this read not seen before, oldest first, each with its post if it gets
    /// one.
    async fn new_items(
        &self,
        feed: &Feed,
        accounts: &[Account],
        entries: Vec<Entry>,
        now: i64,
    ) -> crier_store::Result<Vec<NewFeedItem>> {
        let keys: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
        let links: Vec<String> = entries.iter().filter_map(|e| e.link.clone()).collect();
        let (seen_ids, seen_links) = self
            .store
            .seen_feed_entries(&feed.workspace_id, &feed.id, &keys, &links)
            .await?;
        // Newest first, as `parse_entries` orders them.
        let unseen: Vec<Entry> = entries
            .into_iter()
            .filter(|e| {
                !seen_ids.contains(&e.key)
                    && !e.link.as_ref().is_some_and(|l| seen_links.contains(l))
            })
            .collect();
        let first_read = feed.seeded_at.is_none();
        let older = |e: &Entry| e.date.is_some_and(|d| d < feed.baseline_at);
        let mut wanted = 0;
        let decisions: Vec<bool> = unseen
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let post = if first_read {
                    (i as i64) < feed.backfill || (e.date.is_some() && !older(e))
                } else {
                    !older(e)
                };
                let post = post && wanted < MAX_POSTS_PER_POLL;
                wanted += post as usize;
                post
            })
            .collect();

        let mut plan = Plan::default();
        if wanted > 0 && feed.mode != FeedMode::Draft {
            let ws = self.store.get_workspace(&feed.workspace_id).await?;
            plan.approval = ws.as_ref().is_some_and(|w| w.require_approval);
            if feed.mode == FeedMode::Queue
                && let Some(ws) = &ws
            {
                plan.queue = self.store.queue_plan(ws, feed.livemode, now).await?;
            }
        }

        let mut items = Vec::with_capacity(unseen.len());
        // Oldest first: queue slots and post ids follow the feed's order.
        for (entry, post_it) in unseen.into_iter().zip(decisions).rev() {
            let post = if post_it {
                self.build_post(feed, accounts, &entry, now, &mut plan)
            } else {
                None
            };
            let title = clip(&entry.title, MAX_TITLE);
            items.push(NewFeedItem {
                entry_id: entry.key,
                link: entry.link,
                title: (!title.is_empty()).then_some(title),
                published_at: entry.date,
                post,
            });
        }
        Ok(items)
    }

    fn build_post(
        &self,
        feed: &Feed,
        accounts: &[Account],
        entry: &Entry,
        now: i64,
        plan: &mut Plan,
    ) -> Option<Post> {
        let fits = |text: &str| {
            let parts = [text.to_owned()];
            accounts.iter().all(|a| {
                self.networks
                    .get(&a.platform)
                    .is_none_or(|n| n.rules().check(&parts, 0).is_ok())
            })
        };
        let (body, fit) = render_fitting(
            &feed.template,
            &entry.title,
            entry.link.as_deref().unwrap_or(""),
            &entry.summary,
            fits,
        );
        if body.is_empty() {
            return None;
        }
        let waiting = if plan.approval {
            PostStatus::PendingApproval
        } else {
            PostStatus::Scheduled
        };
        let (status, scheduled_at) = match feed.mode {
            _ if !fit => {
                tracing::warn!(feed = %feed.id, entry = %entry.key, "the entry's text does not fit its networks; saved as a draft");
                (PostStatus::Draft, None)
            }
            FeedMode::Draft => (PostStatus::Draft, None),
            FeedMode::Publish if plan.approval => (PostStatus::PendingApproval, None),
            FeedMode::Publish => (PostStatus::Publishing, None),
            FeedMode::Queue => {
                match plan.queue.next_free(from_ms(now)) {
                    Some(at) => {
                        // Taken by this poll's later entries' reckoning too.
                        plan.queue.taken.push(at.as_millisecond());
                        (waiting, Some(at.as_millisecond()))
                    }
                    None => {
                        tracing::warn!(feed = %feed.id, "no free queue slot; the entry is saved as a draft");
                        (PostStatus::Draft, None)
                    }
                }
            }
        };
        Some(Post {
            status,
            scheduled_at,
            ..Post::draft(&feed.workspace_id, feed.livemode, accounts, body, now)
        })
    }
}

/// What scheduling the posts of one poll needs from the workspace.
struct Plan {
    approval: bool,
    /// Its queue, with the slots this poll's earlier posts took.
    queue: QueuePlan,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            approval: false,
            queue: QueuePlan {
                tz: jiff::tz::TimeZone::UTC,
                slots: Vec::new(),
                taken: Vec::new(),
            },
        }
    }
}

/// The innermost cause of a client error (`connection refused`, the SSRF guard's refusal).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "the server did not answer in time".into();
    }
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg = s.to_string();
        source = s.source();
    }
    msg
}

/// A validator header worth sending back: present, printable, not absurdly long.
fn validator(headers: &header::HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_VALIDATOR)
        .map(str::to_owned)
}

/// Parses a document into its entries, newest first (by date when every entry has one,
/// otherwise in the document's order, which feeds keep newest first), without duplicates, at
/// most [`MAX_ENTRIES`].
fn parse_entries(body: &[u8], base_url: &str) -> Result<Vec<Entry>, String> {
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(base_url))
        // No made-up ids (feed-rs falls back to a random UUID): an entry without an id is
        // keyed below by its link or its text, the same on every read.
        .id_generator(|_, _, _| String::new())
        .build();
    let doc = parser.parse(body).map_err(|e| {
        format!(
            "The document is not a valid RSS, Atom or JSON feed: {}.",
            clip(&e.to_string(), 300)
        )
    })?;
    let mut entries = Vec::with_capacity(doc.entries.len().min(MAX_ENTRIES));
    let mut keys = HashSet::new();
    let mut links = HashSet::new();
    for e in &doc.entries {
        let link = pick_link(&e.links);
        let title = e.title.as_ref().map(text_of).unwrap_or_default();
        let summary = e
            .summary
            .as_ref()
            .map(text_of)
            .filter(|s| !s.is_empty())
            .or_else(|| e.content.as_ref().and_then(content_text))
            .unwrap_or_default();
        let id = e.id.trim();
        let key = if !id.is_empty() {
            bounded_key(id)
        } else if let Some(link) = &link {
            bounded_key(link)
        } else if !title.is_empty() || !summary.is_empty() {
            format!("sha256:{}", sha256_hex(&format!("{title}\n{summary}")))
        } else {
            continue;
        };
        if !keys.insert(key.clone()) || link.as_ref().is_some_and(|l| !links.insert(l.clone())) {
            continue;
        }
        entries.push(Entry {
            key,
            link,
            title,
            summary,
            date: e.published.or(e.updated).map(|d| d.timestamp_millis()),
        });
    }
    if entries.iter().all(|e| e.date.is_some()) {
        entries.sort_by_key(|e| std::cmp::Reverse(e.date));
    }
    entries.truncate(MAX_ENTRIES);
    Ok(entries)
}

fn bounded_key(s: &str) -> String {
    if s.len() <= MAX_KEY {
        s.to_owned()
    } else {
        format!("sha256:{}", sha256_hex(s))
    }
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The entry's web page: the first plain or `alternate` link, else the first; only http(s).
fn pick_link(links: &[feed_rs::model::Link]) -> Option<String> {
    let link = links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or(links.first())?;
    let href = link.href.trim();
    let parsed = reqwest::Url::parse(href).ok()?;
    (matches!(parsed.scheme(), "http" | "https") && href.len() <= MAX_LINK).then(|| href.to_owned())
}

fn text_of(t: &feed_rs::model::Text) -> String {
    if t.content_type.as_str().contains("html") {
        html_to_text(&t.content)
    } else {
        collapse_ws(&t.content)
    }
}

fn content_text(c: &feed_rs::model::Content) -> Option<String> {
    let body = c.body.as_deref()?;
    let ty = c.content_type.as_str();
    let text = if ty.contains("html") {
        html_to_text(body)
    } else if ty.starts_with("text/") {
        collapse_ws(body)
    } else {
        return None;
    };
    (!text.is_empty()).then_some(text)
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Elements whose boundaries do not separate words.
const INLINE: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "i", "kbd", "mark", "q",
    "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr",
];

/// HTML to one line of plain text: tags dropped (block boundaries become spaces), scripts,
/// styles and comments removed, character references decoded, whitespace collapsed.
fn html_to_text(html: &str) -> String {
    // ASCII lowercasing keeps every byte offset, so one lowercased copy serves every look-up
    // (lowercasing the rest of the document at each tag made hostile feeds quadratic).
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len());
    let mut at = 0;
    // Once a `<` has no `>` after it, none of the later ones has either.
    let mut gt_ahead = true;
    while let Some(lt) = html[at..].find('<').map(|i| at + i) {
        out.push_str(&html[at..lt]);
        let tag = &lower[lt..];
        let skip_to = |end: &str| tag.find(end).map_or(html.len(), |i| lt + i + end.len());
        at = if tag.starts_with("<!--") {
            out.push(' ');
            skip_to("-->")
        } else if tag.starts_with("<script") {
            out.push(' ');
            skip_to("</script>")
        } else if tag.starts_with("<style") {
            out.push(' ');
            skip_to("</style>")
        } else if let Some(gt) = gt_ahead.then(|| tag.find('>')).flatten() {
            let name: String = tag[1..gt]
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if !INLINE.contains(&name.as_str()) {
                out.push(' ');
            }
            lt + gt + 1
        } else {
            // A lone `<` is text.
            gt_ahead = false;
            out.push('<');
            lt + 1
        };
    }
    out.push_str(&html[at..]);
    collapse_ws(&decode_entities(&out))
}

fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let decoded = tail.get(1..tail.len().min(12)).and_then(|t| {
            let end = t.find(';')?;
            let name = &t[..end];
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                "nbsp" => ' ',
                "hellip" => '…',
                "mdash" => '—',
                "ndash" => '–',
                "lsquo" => '‘',
                "rsquo" => '’',
                "ldquo" => '“',
                "rdquo" => '”',
                _ => {
                    let code = if let Some(hex) =
                        name.strip_prefix("#x").or_else(|| name.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()?
                    } else {
                        name.strip_prefix('#')?.parse().ok()?
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, end + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// At most `max` characters, cut at a word boundary when one is near, ending in `…`.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    if max <= 1 {
        return String::new();
    }
    let cut: String = s.chars().take(max - 1).collect();
    let at_boundary = s.chars().nth(max - 1).is_some_and(char::is_whitespace);
    let cut = match cut.rfind(char::is_whitespace) {
        Some(i) if !at_boundary && i >= cut.len() * 2 / 3 => &cut[..i],
        _ => &cut[..],
    };
    let cut = cut.trim_end_matches(|c: char| c.is_whitespace() || ",;:-–—".contains(c));
    if cut.is_empty() {
        String::new()
    } else {
        format!("{cut}…")
    }
}

fn clip(s: &str, max: usize) -> String {
    truncate(s.trim(), max)
}

/// The template with `{title}`, `{link}` and `{summary}` replaced (once, left to right, so a
/// value that contains a placeholder stays as it is), trimmed.
pub fn render(template: &str, title: &str, link: &str, summary: &str) -> String {
    let mut out = String::with_capacity(template.len() + title.len() + link.len() + summary.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (value, len) = [("{title}", title), ("{link}", link), ("{summary}", summary)]
            .into_iter()
            .find(|(p, _)| tail.starts_with(p))
            .map(|(p, v)| (v, p.len()))
            .unwrap_or(("{", 1));
        out.push_str(value);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out.trim().to_owned()
}

/// Renders the template so that `fits` accepts it, shortening the summary first and then the
/// title. Returns the text and whether it fits.
fn render_fitting(
    template: &str,
    title: &str,
    link: &str,
    summary: &str,
    fits: impl Fn(&str) -> bool,
) -> (String, bool) {
    let title = truncate(title, MAX_TITLE);
    let summary = truncate(summary, MAX_SUMMARY);
    let full = render(template, &title, link, &summary);
    if fits(&full) {
        return (full, true);
    }
    if template.contains("{summary}")
        && let Some(text) = largest_fitting(summary.chars().count(), &fits, |n| {
            render(template, &title, link, &truncate(&summary, n))
        })
    {
        return (text, true);
    }
    if template.contains("{title}")
        && let Some(text) = largest_fitting(title.chars().count(), &fits, |n| {
            render(template, &truncate(&title, n), link, "")
        })
    {
        return (text, true);
    }
    (full, false)
}

/// The text `build(n)` for the largest `n` in `0..=max` that fits, if even `build(0)` does.
fn largest_fitting(
    max: usize,
    fits: impl Fn(&str) -> bool,
    build: impl Fn(usize) -> String,
) -> Option<String> {
    let first = build(0);
    if !fits(&first) {
        return None;
    }
    let last = build(max);
    if fits(&last) {
        return Some(last);
    }
    let (mut lo, mut hi) = (0, max);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(&build(mid)) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(build(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_plain_text() {
        assert_eq!(
            html_to_text(
                "<p>Hello <b>wor</b>ld &amp; <a href=\"x\">friends</a></p><p>Next&#8230; &#x2014; done</p>"
            ),
            "Hello world & friends Next… — done"
        );
        assert_eq!(
            html_to_text("a<script>alert('<p>')</script>b<!-- <c> -->c<style>p{}</style>"),
            "a b c"
        );
        assert_eq!(html_to_text("1 < 2 &bogus; &"), "1 < 2 &bogus; &");
        assert_eq!(html_to_text("a < b <!-- c"), "a < b");
    }

    /// Hostile summaries: every shape here once took time quadratic in the document's size
    /// (the rest of the document lowercased or searched again at each `<`); 200,000 of each
    /// would not finish in any test run.
    #[test]
    fn hostile_html_is_read_in_one_pass() {
        let n = 200_000;
        // Byte 16 of each tag falls inside an `é`.
        let accented = "<p>éx".repeat(n);
        assert_eq!(
            html_to_text(&accented)
                .chars()
                .filter(|c| *c == 'é')
                .count(),
            n
        );
        let comments = "<!---->x".repeat(n);
        assert_eq!(html_to_text(&comments).matches('x').count(), n);
        let scripts = "<SCRIPT></script>x".repeat(n);
        assert_eq!(html_to_text(&scripts).matches('x').count(), n);
        let lone = "<".repeat(n);
        assert_eq!(html_to_text(&lone), lone);
        assert_eq!(
            decode_entities("&lt;b&gt; &quot;x&quot; &#39;y&#39;"),
            "<b> \"x\" 'y'"
        );
    }

    #[test]
    fn truncation_cuts_at_words() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(
            truncate("The quick brown fox jumps over the lazy dog", 20),
            "The quick brown fox…"
        );
        assert_eq!(truncate("abcdefghij", 5), "abcd…");
        assert_eq!(truncate("abc", 1), "");
        assert!(truncate(&"é".repeat(100), 10).chars().count() <= 10);
    }

    #[test]
    fn templates_render_once_and_fit() {
        assert_eq!(
            render("{title} {link} {x} {", "A {link}", "https://e.x/1", "s"),
            "A {link} https://e.x/1 {x} {"
        );
        let fits = |t: &str| t.chars().count() <= 40;
        let (text, ok) = render_fitting(
            "{title}: {summary} {link}",
            "Title",
            "https://e.x/a",
            "one two three four five six seven eight nine ten",
            fits,
        );
        assert!(ok);
        assert!(text.chars().count() <= 40, "{text}");
        assert!(text.starts_with("Title: one two"), "{text}");
        assert!(text.ends_with("… https://e.x/a"), "{text}");
        // Without room for any summary, the title shrinks; the link stays whole.
        let fits = |t: &str| t.chars().count() <= 24;
        let (text, ok) = render_fitting(
            "{title} {summary} {link}",
            "A rather long title here",
            "https://e.x/a",
            "summary",
            fits,
        );
        assert!(ok, "{text}");
        assert!(text.ends_with("https://e.x/a"), "{text}");
        assert!(text.chars().count() <= 24, "{text}");
        // A template whose fixed text is too long cannot fit.
        let (_, ok) = render_fitting(&"x".repeat(50), "t", "l", "s", |t: &str| t.len() <= 10);
        assert!(!ok);
    }

    #[test]
    fn entries_without_ids_get_stable_keys() {
        let rss = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
            <item><title>Linked</title><link>https://e.x/a</link></item>
            <item><title>Only text</title><description>words</description></item>
            <item><title>Linked again</title><link>https://e.x/a</link></item>
            </channel></rss>"#;
        let a = parse_entries(rss, "https://e.x/feed").unwrap();
        let b = parse_entries(rss, "https://e.x/feed").unwrap();
        assert_eq!(a, b, "the same document gives the same keys");
        assert_eq!(
            a.len(),
            2,
            "the second entry with the same link is dropped: {a:?}"
        );
        assert_eq!(a[0].key, "https://e.x/a");
        assert!(a[1].key.starts_with("sha256:"));
        assert_eq!(a[1].link, None);
    }
}
