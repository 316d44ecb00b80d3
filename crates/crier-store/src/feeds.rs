//! Feed automations and the entries seen per feed.
//!
//! The poller's rules, as storage keeps them:
//! - A node claims due feeds by moving `next_poll_at` forward by a lease in one statement
//!   (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writes), so two nodes never
//!   poll one feed at once, and a node that dies mid-poll only delays the feed by the lease.
//! - What a poll found commits in one transaction: the feed's new state, every entry seen and
//!   the posts (with their publish jobs) made from the new ones. An entry is recorded with
//!   `ON CONFLICT DO NOTHING` on (feed, entry id) and on (feed, link), and its post is written
//!   only if the entry's row was: whatever races, an entry becomes at most one post.
//! - A poll's result is written only if the feed still has the URL that was polled, so a
//!   change of URL during a poll cannot mix the old document into the new feed.

use std::collections::HashSet;

use crier_core::ids::{AccountId, FeedId, PostId, WorkspaceId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{Page, Post, corrupt, json_text};
use crate::posts::store_new_post;
use crate::{Result, Store};

/// What a feed does with a new entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedMode {
    /// A draft to edit and schedule by hand.
    Draft,
    /// Scheduled at the workspace's next free queue slot.
    Queue,
    /// Published at once.
    Publish,
}

impl FeedMode {
    pub const ALL: [FeedMode; 3] = [FeedMode::Draft, FeedMode::Queue, FeedMode::Publish];

    pub fn as_str(self) -> &'static str {
        match self {
            FeedMode::Draft => "draft",
            FeedMode::Queue => "queue",
            FeedMode::Publish => "publish",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A feed automation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub id: FeedId,
    pub workspace_id: WorkspaceId,
    pub livemode: bool,
    pub url: String,
    pub account_ids: Vec<AccountId>,
    /// Text with `{title}`, `{link}` and `{summary}` placeholders.
    pub template: String,
    pub mode: FeedMode,
    pub poll_interval_seconds: i64,
    /// How many of the newest entries the first read posts even though they are older than
    /// the feed.
    pub backfill: i64,
    pub enabled: bool,
    /// Validators of the last document read, for a conditional GET.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub last_polled_at: Option<i64>,
    /// When the feed is due; while a node polls it, the end of that node's lease.
    pub next_poll_at: i64,
    pub consecutive_failures: i64,
    pub last_error: Option<String>,
    /// When the current URL was first read successfully; `None` before.
    pub seeded_at: Option<i64>,
    /// Entries older than this are not posted (except the first read's backfill): the feed's
    /// creation, or the last change of its URL.
    pub baseline_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a client may set on a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSettings {
    pub url: String,
    pub account_ids: Vec<AccountId>,
    pub template: String,
    pub mode: FeedMode,
    pub poll_interval_seconds: i64,
    pub backfill: i64,
    pub enabled: bool,
}

impl Feed {
    /// A new feed, due at once.
    pub fn new(ws: &WorkspaceId, livemode: bool, s: FeedSettings, now: i64) -> Self {
        Self {
            id: FeedId::generate(),
            workspace_id: ws.clone(),
            livemode,
            url: s.url,
            account_ids: s.account_ids,
            template: s.template,
            mode: s.mode,
            poll_interval_seconds: s.poll_interval_seconds,
            backfill: s.backfill,
            enabled: s.enabled,
            etag: None,
            last_modified: None,
            last_polled_at: None,
            next_poll_at: now,
            consecutive_failures: 0,
            last_error: None,
            seeded_at: None,
            baseline_at: now,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn settings(&self) -> FeedSettings {
        FeedSettings {
            url: self.url.clone(),
            account_ids: self.account_ids.clone(),
            template: self.template.clone(),
            mode: self.mode,
            poll_interval_seconds: self.poll_interval_seconds,
            backfill: self.backfill,
            enabled: self.enabled,
        }
    }
}

/// One entry a poll saw for the first time, and the post made from it (`None`: recorded as
/// seen but not posted, e.g. older than the feed).
#[derive(Debug, Clone)]
pub struct NewFeedItem {
    pub entry_id: String,
    pub link: Option<String>,
    pub title: Option<String>,
    pub published_at: Option<i64>,
    pub post: Option<Post>,
}

/// What a successful poll writes.
#[derive(Debug, Clone)]
pub struct FeedPollSuccess {
    pub now: i64,
    pub next_poll_at: i64,
    /// `Some((etag, last_modified))` when a document was read (not on a 304): the validators
    /// to send next time.
    pub validators: Option<(Option<String>, Option<String>)>,
    pub items: Vec<NewFeedItem>,
}

const FEED_COLUMNS: &str = "id, workspace_id, livemode, url, account_ids, template, mode, \
    poll_interval_seconds, backfill, enabled, etag, last_modified, last_polled_at, next_poll_at, \
    consecutive_failures, last_error, seeded_at, baseline_at, created_at, updated_at";

/// Bind parameters per statement stay far below both backends' limits.
const SEEN_CHUNK: usize = 200;

fn feed_from_row(row: &AnyRow) -> Result<Feed> {
    let mode: String = row.try_get("mode")?;
    let accounts: Vec<String> = json_text(row, "account_ids")?;
    Ok(Feed {
        id: FeedId::from_trusted(row.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(row.try_get("workspace_id")?),
        livemode: row.try_get::<i64, _>("livemode")? != 0,
        url: row.try_get("url")?,
        account_ids: accounts.into_iter().map(AccountId::from_trusted).collect(),
        template: row.try_get("template")?,
        mode: FeedMode::parse(&mode).ok_or_else(|| corrupt("feeds.mode"))?,
        poll_interval_seconds: row.try_get("poll_interval_seconds")?,
        backfill: row.try_get("backfill")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        etag: row.try_get("etag")?,
        last_modified: row.try_get("last_modified")?,
        last_polled_at: row.try_get("last_polled_at")?,
        next_poll_at: row.try_get("next_poll_at")?,
        consecutive_failures: row.try_get("consecutive_failures")?,
        last_error: row.try_get("last_error")?,
        seeded_at: row.try_get("seeded_at")?,
        baseline_at: row.try_get("baseline_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn account_list(ids: &[AccountId]) -> String {
    serde_json::to_string(&ids.iter().map(AccountId::as_str).collect::<Vec<_>>())
        .expect("serialisable")
}

impl Store {
    pub async fn insert_feed(&self, f: &Feed) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO feeds ({FEED_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        )))
        .bind(f.id.as_str())
        .bind(f.workspace_id.as_str())
        .bind(f.livemode as i64)
        .bind(&f.url)
        .bind(account_list(&f.account_ids))
        .bind(&f.template)
        .bind(f.mode.as_str())
        .bind(f.poll_interval_seconds)
        .bind(f.backfill)
        .bind(f.enabled as i64)
        .bind(f.etag.as_deref())
        .bind(f.last_modified.as_deref())
        .bind(f.last_polled_at)
        .bind(f.next_poll_at)
        .bind(f.consecutive_failures)
        .bind(f.last_error.as_deref())
        .bind(f.seeded_at)
        .bind(f.baseline_at)
        .bind(f.created_at)
        .bind(f.updated_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn get_feed(&self, ws: &WorkspaceId, id: &FeedId) -> Result<Option<Feed>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FEED_COLUMNS} FROM feeds WHERE workspace_id = $1 AND id = $2"
        )))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(feed_from_row).transpose()
    }

    /// Feeds of a workspace, newest first; `livemode` narrows to one mode.
    pub async fn list_feeds(
        &self,
        ws: &WorkspaceId,
        livemode: Option<bool>,
        limit: u32,
        offset: u32,
    ) -> Result<Page<Feed>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FEED_COLUMNS} FROM feeds WHERE workspace_id = $1
               AND ($2 IS NULL OR livemode = $2)
             ORDER BY id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(ws.as_str())
        .bind(livemode.map(i64::from))
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await?;
        let items = rows.iter().map(feed_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit))
    }

    /// Feeds of `tenant` whose accounts are all among `within`, newest first.
    pub async fn list_feeds_within(
        &self,
        tenant: &crier_core::Tenant,
        within: &[AccountId],
        limit: u32,
        offset: u32,
    ) -> Result<Page<Feed>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FEED_COLUMNS} FROM feeds f WHERE workspace_id = $1 AND livemode = $2
               AND NOT EXISTS (SELECT 1 FROM {accounts} WHERE fa.value NOT IN {within})
             ORDER BY id DESC LIMIT $3 OFFSET $4",
            accounts = self.json_rows("f.account_ids", "fa"),
            within = self.json_values("$5"),
        )))
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .bind(crate::json(&within))
        .fetch_all(&self.read)
        .await?;
        let items = rows.iter().map(feed_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit))
    }

    /// How many feeds a workspace has (both modes).
    pub async fn count_feeds(&self, ws: &WorkspaceId) -> Result<i64> {
        let row = sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM feeds WHERE workspace_id = $1")
            .bind(ws.as_str())
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Replaces a feed's settings. A new URL starts over: no validators, not seeded, entries
    /// must be newer than now, due at once, failures forgotten. Turning a disabled feed on
    /// makes it due at once with its failures forgotten. `None` when there is no such feed.
    pub async fn update_feed(
        &self,
        ws: &WorkspaceId,
        id: &FeedId,
        s: &FeedSettings,
        now: i64,
    ) -> Result<Option<Feed>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE feeds SET
                etag = CASE WHEN url <> $3 THEN NULL ELSE etag END,
                last_modified = CASE WHEN url <> $3 THEN NULL ELSE last_modified END,
                seeded_at = CASE WHEN url <> $3 THEN NULL ELSE seeded_at END,
                baseline_at = CASE WHEN url <> $3 THEN $10 ELSE baseline_at END,
                last_error = CASE WHEN url <> $3 THEN NULL ELSE last_error END,
                next_poll_at = CASE WHEN url <> $3 OR (enabled = 0 AND $9 = 1) THEN $10
                    ELSE next_poll_at END,
                consecutive_failures = CASE WHEN url <> $3 OR (enabled = 0 AND $9 = 1) THEN 0
                    ELSE consecutive_failures END,
                url = $3, account_ids = $4, template = $5, mode = $6,
                poll_interval_seconds = $7, backfill = $8, enabled = $9, updated_at = $10
             WHERE workspace_id = $1 AND id = $2 RETURNING {FEED_COLUMNS}"
        )))
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(&s.url)
        .bind(account_list(&s.account_ids))
        .bind(&s.template)
        .bind(s.mode.as_str())
        .bind(s.poll_interval_seconds)
        .bind(s.backfill)
        .bind(s.enabled as i64)
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(feed_from_row).transpose()
    }

    /// Deletes a feed and its record of entries (the posts it made stay). `false` when there
    /// is no such feed.
    pub async fn delete_feed(&self, ws: &WorkspaceId, id: &FeedId) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM feeds WHERE workspace_id = $1 AND id = $2")
            .bind(ws.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM feed_items WHERE workspace_id = $1 AND feed_id = $2")
            .bind(ws.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    // ---- the poller ----

    /// Claims up to `limit` enabled feeds due at `now` for `lease_ms`: their `next_poll_at`
    /// moves to the lease's end, so no other node takes them meanwhile. At most one feed of a
    /// workspace per claim, and none of the workspaces in `busy` (those the caller polls
    /// enough of already), the longest due first: one workspace's hundred feeds on a slow
    /// server cannot take every poll slot. The rows come back as they were before the claim,
    /// except `next_poll_at`.
    pub async fn claim_feeds(
        &self,
        now: i64,
        lease_ms: i64,
        limit: u32,
        busy: &[String],
    ) -> Result<Vec<Feed>> {
        if self.claims_held() {
            return Ok(Vec::new());
        }
        let lock = self.skip_locked();
        let not_busy = self.in_json_list("workspace_id", "$4");
        // The scan is bounded (a few times `limit`), so a claim's cost does not grow with the
        // number of due feeds.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE feeds SET next_poll_at = $1 WHERE id IN (
                SELECT id FROM (
                    SELECT id, next_poll_at, ROW_NUMBER() OVER (
                        PARTITION BY workspace_id ORDER BY next_poll_at, id) AS n
                    FROM (SELECT id, workspace_id, next_poll_at FROM feeds
                          WHERE enabled = 1 AND next_poll_at <= $2 AND NOT ({not_busy})
                          ORDER BY next_poll_at LIMIT $5 {lock}) AS due
                ) AS ranked
                WHERE n = 1 ORDER BY next_poll_at LIMIT $3)
             RETURNING {FEED_COLUMNS}"
        )))
        .bind(now + lease_ms)
        .bind(now)
        .bind(i64::from(limit))
        .bind(serde_json::to_string(busy).expect("strings serialise"))
        .bind(i64::from(limit.saturating_mul(16)).max(64))
        .fetch_all(&self.write)
        .await?;
        let mut feeds = rows.iter().map(feed_from_row).collect::<Result<Vec<_>>>()?;
        feeds.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(feeds)
    }

    /// Which of these entry ids and links the feed has already seen.
    pub async fn seen_feed_entries(
        &self,
        ws: &WorkspaceId,
        feed: &FeedId,
        entry_ids: &[String],
        links: &[String],
    ) -> Result<(HashSet<String>, HashSet<String>)> {
        let mut seen_ids = HashSet::new();
        let mut seen_links = HashSet::new();
        for (column, values, out) in [
            ("entry_id", entry_ids, &mut seen_ids),
            ("link", links, &mut seen_links),
        ] {
            for chunk in values.chunks(SEEN_CHUNK) {
                let placeholders = (0..chunk.len())
                    .map(|i| format!("${}", i + 3))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT {column} FROM feed_items WHERE workspace_id = $1 AND feed_id = $2
                       AND {column} IN ({placeholders})"
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(ws.as_str())
                    .bind(feed.as_str());
                for v in chunk {
                    q = q.bind(v.as_str());
                }
                for row in q.fetch_all(&self.read).await? {
                    out.insert(row.try_get::<String, _>(0)?);
                }
            }
        }
        Ok((seen_ids, seen_links))
    }

    /// Records a successful poll of `polled_url`: the feed's state, the entries it saw for the
    /// first time and their posts (with publish jobs for scheduled and publishing ones), in one
    /// transaction.
    /// Returns the posts actually created (an entry another poll recorded first is skipped), or
    /// `None` when the feed is gone or its URL changed meanwhile (nothing is written).
    pub async fn record_feed_success(
        &self,
        feed: &Feed,
        polled_url: &str,
        s: &FeedPollSuccess,
    ) -> Result<Option<Vec<PostId>>> {
        let mut tx = self.begin().await?;
        let (write_validators, etag, last_modified) = match &s.validators {
            Some((e, l)) => (1i64, e.clone(), l.clone()),
            None => (0, None, None),
        };
        let n = sqlx::query(
            "UPDATE feeds SET last_polled_at = $3, next_poll_at = $4, consecutive_failures = 0,
                last_error = NULL,
                etag = CASE WHEN $5 = 1 THEN $6 ELSE etag END,
                last_modified = CASE WHEN $5 = 1 THEN $7 ELSE last_modified END,
                seeded_at = CASE WHEN $5 = 1 THEN COALESCE(seeded_at, $3) ELSE seeded_at END
             WHERE workspace_id = $1 AND id = $2 AND url = $8",
        )
        .bind(feed.workspace_id.as_str())
        .bind(feed.id.as_str())
        .bind(s.now)
        .bind(s.next_poll_at)
        .bind(write_validators)
        .bind(etag)
        .bind(last_modified)
        .bind(polled_url)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        let mut created = Vec::new();
        for item in &s.items {
            let inserted = sqlx::query(
                "INSERT INTO feed_items (feed_id, entry_id, workspace_id, link, title,
                    published_at, post_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT DO NOTHING",
            )
            .bind(feed.id.as_str())
            .bind(&item.entry_id)
            .bind(feed.workspace_id.as_str())
            .bind(item.link.as_deref())
            .bind(item.title.as_deref())
            .bind(item.published_at)
            .bind(item.post.as_ref().map(|p| p.id.as_str()))
            .bind(s.now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let Some(post) = item.post.as_ref().filter(|_| inserted == 1) else {
                continue;
            };
            store_new_post(&mut tx, post).await?;
            let data = serde_json::json!({
                "feed_id": feed.id.as_str(),
                "entry_id": item.entry_id,
                "link": item.link,
                "title": item.title,
                "post": crate::views::PostObject::from(post),
            });
            crate::events::emit(
                &mut tx,
                feed.workspace_id.as_str(),
                feed.livemode,
                crate::events::types::FEED_ITEM_CREATED,
                &data,
                s.now,
                None,
            )
            .await?;
            created.push(post.id.clone());
        }
        tx.commit().await?;
        Ok(Some(created))
    }

    /// Records a failed poll of `polled_url` (unless the URL changed meanwhile): the error,
    /// the count of failures in a row, and when to try again.
    pub async fn record_feed_failure(
        &self,
        feed: &Feed,
        polled_url: &str,
        error: &str,
        failures: i64,
        now: i64,
        next_poll_at: i64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE feeds SET last_polled_at = $3, next_poll_at = $4, consecutive_failures = $5,
                last_error = $6
             WHERE workspace_id = $1 AND id = $2 AND url = $7",
        )
        .bind(feed.workspace_id.as_str())
        .bind(feed.id.as_str())
        .bind(now)
        .bind(next_poll_at)
        .bind(failures)
        .bind(error)
        .bind(polled_url)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}
