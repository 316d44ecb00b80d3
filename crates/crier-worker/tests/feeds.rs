//! The feed poller end to end on both backends: a local HTTP server (axum on 127.0.0.1) serves
//! RSS, Atom and JSON Feed documents that the tests change between polls, with ETag and
//! Last-Modified, errors, redirects, malformed and oversized bodies; a `ManualClock` walks
//! through poll intervals and backoff. Posts are read back through the Store, and publishing
//! goes through the real publisher to the sandbox network, whose timeline shows any double
//! post. `cargo test -p crier-worker --test feeds postgres` runs one side; see `common`.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use crier_core::clock::from_ms;
use crier_core::posts::{PostStatus, TargetStatus};
use crier_core::{Clock, ManualClock};
use crier_networks::Networks;
use crier_networks::sandbox::Sandbox;
use crier_store::{
    Account, Feed, FeedMode, FeedPollSuccess, FeedSettings, NewFeedItem, Post, PostFilter, Store,
    WorkspaceChanges,
};
use crier_worker::feeds::{FeedConfig, FeedPoller, MAX_POSTS_PER_POLL, PollReport, Polled};
use crier_worker::{Processed, Publisher, WorkerConfig};

use common::{TestDb, both};
use crier_testdb::T0;

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const INTERVAL_S: i64 = 900;
const INTERVAL: i64 = INTERVAL_S * SECOND;
const MAX_BODY: usize = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// The feed server
// ---------------------------------------------------------------------------------------------

/// What the server answers on `/feed` (and `/other`).
#[derive(Debug, Clone)]
struct Doc {
    status: u16,
    body: Vec<u8>,
    content_type: &'static str,
    etag: Option<String>,
    last_modified: Option<String>,
    /// Sent in chunks without a Content-Length.
    chunked: bool,
}

impl Doc {
    fn ok(body: Vec<u8>, content_type: &'static str) -> Self {
        Self {
            status: 200,
            body,
            content_type,
            etag: None,
            last_modified: None,
            chunked: false,
        }
    }

    fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::ok(b"oops".to_vec(), "text/plain")
        }
    }

    fn etag(mut self, etag: &str) -> Self {
        self.etag = Some(etag.into());
        self
    }

    fn last_modified(mut self, lm: &str) -> Self {
        self.last_modified = Some(lm.into());
        self
    }
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    path: String,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
}

#[derive(Debug)]
struct Served {
    doc: Doc,
    other: Doc,
    seen: Vec<Seen>,
}

struct FeedServer {
    addr: SocketAddr,
    state: Arc<Mutex<Served>>,
}

async fn answer(state: &Mutex<Served>, path: &str, headers: &HeaderMap) -> Response {
    let header =
        |name: header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let doc = {
        let mut s = state.lock().unwrap();
        s.seen.push(Seen {
            path: path.to_owned(),
            if_none_match: header(header::IF_NONE_MATCH),
            if_modified_since: header(header::IF_MODIFIED_SINCE),
        });
        if path == "/other" {
            s.other.clone()
        } else {
            s.doc.clone()
        }
    };
    // If-None-Match wins over If-Modified-Since (RFC 9110, 13.2.2).
    let unchanged = match (
        header(header::IF_NONE_MATCH),
        header(header::IF_MODIFIED_SINCE),
    ) {
        (Some(inm), _) => doc.etag.as_deref() == Some(inm.as_str()),
        (None, Some(ims)) => doc.last_modified.as_deref() == Some(ims.as_str()),
        (None, None) => false,
    };
    if doc.status == 200 && unchanged {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut resp = if doc.chunked {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            doc.body.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
        Response::new(Body::from_stream(futures::stream::iter(chunks)))
    } else {
        Response::new(Body::from(doc.body.clone()))
    };
    *resp.status_mut() = StatusCode::from_u16(doc.status).unwrap();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, doc.content_type.parse().unwrap());
    if let Some(e) = &doc.etag {
        h.insert(header::ETAG, e.parse().unwrap());
    }
    if let Some(lm) = &doc.last_modified {
        h.insert(header::LAST_MODIFIED, lm.parse().unwrap());
    }
    resp
}

fn redirect(to: &str) -> Response {
    let mut resp = StatusCode::MOVED_PERMANENTLY.into_response();
    resp.headers_mut()
        .insert(header::LOCATION, to.parse().unwrap());
    resp
}

impl FeedServer {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(Served {
            doc: Doc::status(404),
            other: Doc::status(404),
            seen: Vec::new(),
        }));
        let app = Router::new()
            .route(
                "/feed",
                get(
                    |State(s): State<Arc<Mutex<Served>>>, h: HeaderMap| async move {
                        answer(&s, "/feed", &h).await
                    },
                ),
            )
            .route(
                "/other",
                get(
                    |State(s): State<Arc<Mutex<Served>>>, h: HeaderMap| async move {
                        answer(&s, "/other", &h).await
                    },
                ),
            )
            .route("/moved", get(|| async { redirect("/feed") }))
            .route("/loop", get(|| async { redirect("/loop") }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "too late"
                }),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn serve(&self, doc: Doc) {
        self.state.lock().unwrap().doc = doc;
    }

    fn serve_other(&self, doc: Doc) {
        self.state.lock().unwrap().other = doc;
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------------

/// One entry of a test document.
#[derive(Debug, Clone)]
struct Item {
    id: String,
    title: String,
    link: String,
    date: Option<i64>,
    summary: String,
}

fn item(id: &str, title: &str, date: Option<i64>) -> Item {
    Item {
        id: id.into(),
        title: title.into(),
        link: format!("https://blog.test/{id}"),
        date,
        summary: String::new(),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn rfc2822(ms: i64) -> String {
    from_ms(ms)
        .strftime("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

fn rss(items: &[Item]) -> Doc {
    let mut s = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>
        <title>Test blog</title><link>https://blog.test/</link><description>d</description>"#,
    );
    for i in items {
        s.push_str(&format!(
            "<item><guid isPermaLink=\"false\">{}</guid><title>{}</title><link>{}</link>",
            esc(&i.id),
            esc(&i.title),
            esc(&i.link)
        ));
        if let Some(d) = i.date {
            s.push_str(&format!("<pubDate>{}</pubDate>", rfc2822(d)));
        }
        if !i.summary.is_empty() {
            s.push_str(&format!("<description>{}</description>", esc(&i.summary)));
        }
        s.push_str("</item>");
    }
    s.push_str("</channel></rss>");
    Doc::ok(s.into_bytes(), "application/rss+xml")
}

fn atom(items: &[Item]) -> Doc {
    let mut s = String::from(
        r#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">
        <title>Test blog</title><id>urn:test:blog</id><updated>2027-01-15T08:00:00Z</updated>"#,
    );
    for i in items {
        let date = from_ms(i.date.expect("Atom entries have a date"));
        s.push_str(&format!(
            "<entry><id>{}</id><title type=\"text\">{}</title>\
             <link rel=\"alternate\" href=\"{}\"/><link rel=\"enclosure\" href=\"https://cdn.test/x.mp3\"/>\
             <published>{date}</published><updated>{date}</updated>\
             <summary type=\"html\">{}</summary></entry>",
            esc(&i.id),
            esc(&i.title),
            esc(&i.link),
            esc(&i.summary)
        ));
    }
    s.push_str("</feed>");
    Doc::ok(s.into_bytes(), "application/atom+xml")
}

fn json_feed(items: &[Item]) -> Doc {
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|i| {
            let mut v = serde_json::json!({
                "id": i.id, "title": i.title, "url": i.link, "content_html": i.summary,
            });
            if let Some(d) = i.date {
                v["date_published"] = from_ms(d).to_string().into();
            }
            v
        })
        .collect();
    let doc = serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Test blog",
        "home_page_url": "https://blog.test/",
        "items": items,
    });
    Doc::ok(doc.to_string().into_bytes(), "application/feed+json")
}

// ---------------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------------

fn config(allow_private_networks: bool) -> FeedConfig {
    FeedConfig {
        allow_private_networks,
        max_body_bytes: MAX_BODY,
        fetch_timeout: Duration::from_secs(5),
        ..FeedConfig::default()
    }
}

/// A poller over the application layer, on the shipped plans with the `free` plan's quota at
/// `posts_per_month` (`None`: no quota).
fn poller_with_quota(
    store: &Store,
    clock: &ManualClock,
    config: FeedConfig,
    posts_per_month: Option<u64>,
) -> FeedPoller {
    let clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let networks = Networks::default().with(Arc::new(Sandbox::new(store.clone(), clock.clone())));
    FeedPoller::new(
        common::app_on(store, clock, networks, posts_per_month),
        config,
    )
}

fn poller_on(store: &Store, clock: &ManualClock, config: FeedConfig) -> FeedPoller {
    poller_with_quota(store, clock, config, None)
}

/// [`crier_testdb::World`] with its account `ada`, a feed poller and a feed server.
struct World {
    base: crier_testdb::World,
    account: Account,
    poller: FeedPoller,
    server: FeedServer,
}

impl std::ops::Deref for World {
    type Target = crier_testdb::World;

    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl World {
    async fn new(db: &TestDb) -> Self {
        let base = crier_testdb::World::new(db).await;
        let account = base.account("ada", false).await;
        let poller = poller_on(&base.store, &base.clock, config(true));
        Self {
            base,
            account,
            poller,
            server: FeedServer::start().await,
        }
    }

    fn settings(&self, path: &str) -> FeedSettings {
        FeedSettings {
            url: self.server.url(path),
            account_ids: vec![self.account.id.clone()],
            template: "{title} {link}".into(),
            mode: FeedMode::Draft,
            poll_interval_seconds: INTERVAL_S,
            backfill: 0,
            enabled: true,
        }
    }

    /// A feed made now.
    async fn feed_with(&self, s: FeedSettings) -> Feed {
        let feed = Feed::new(&self.ws, false, s, self.now());
        self.store.insert_feed(&feed).await.unwrap();
        feed
    }

    async fn feed(&self) -> Feed {
        self.feed_with(self.settings("/feed")).await
    }

    async fn reload(&self, feed: &Feed) -> Feed {
        self.store
            .get_feed(&self.ws, &feed.id)
            .await
            .unwrap()
            .expect("the feed exists")
    }

    /// Every post of the workspace, oldest first.
    async fn posts(&self) -> Vec<Post> {
        let page = self
            .store
            .list_posts(&self.ws, &PostFilter::default(), 50, 0)
            .await
            .unwrap();
        assert!(!page.has_more);
        let mut posts = page.items;
        posts.reverse();
        posts
    }

    async fn all_posts(&self) -> Vec<Post> {
        let mut out = Vec::new();
        loop {
            let page = self
                .store
                .list_posts(&self.ws, &PostFilter::default(), 50, out.len() as u32)
                .await
                .unwrap();
            out.extend(page.items);
            if !page.has_more {
                return out;
            }
        }
    }

    async fn bodies(&self) -> Vec<String> {
        self.posts().await.into_iter().map(|p| p.body).collect()
    }

    /// Polls what is due and returns the one report.
    async fn poll_one(&self) -> Polled {
        let mut reports = self.poller.poll_due().await;
        assert_eq!(reports.len(), 1, "expected one feed polled: {reports:?}");
        reports.remove(0).polled
    }
}

fn posted(p: &Polled) -> (usize, usize) {
    match p {
        Polled::Read { posts, skipped } => (posts.len(), *skipped),
        other => panic!("expected a read, got {other:?}"),
    }
}

fn failed(p: &Polled) -> (String, i64) {
    match p {
        Polled::Failed { error, retry_at } => (error.clone(), *retry_at),
        other => panic!("expected a failure, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading feeds
// ---------------------------------------------------------------------------------------------

both!(
    rss_first_read_posts_only_entries_newer_than_the_feed,
    |db| async move {
        let w = World::new(&db).await;
        let old = item("a", "Alpha", Some(T0 - 2 * DAY));
        let older = item("b", "Beta", Some(T0 - HOUR));
        let fresh = item("c", "Gamma & co", Some(T0 + 10 * MINUTE));
        w.server
            .serve(rss(&[fresh.clone(), older.clone(), old.clone()]));
        let feed = w.feed().await;

        w.set(T0 + 15 * MINUTE);
        assert_eq!(posted(&w.poll_one().await), (1, 2));
        let posts = w.posts().await;
        assert_eq!(posts.len(), 1);
        let p = &posts[0];
        assert_eq!(p.body, "Gamma & co https://blog.test/c");
        assert_eq!(p.status, PostStatus::Draft);
        assert_eq!(p.scheduled_at, None);
        assert!(!p.livemode);
        assert_eq!(p.account_ids, vec![w.account.id.clone()]);
        assert_eq!(p.targets.len(), 1);
        assert_eq!(p.targets[0].status, TargetStatus::Pending);
        assert_eq!(p.created_at, T0 + 15 * MINUTE);

        let f = w.reload(&feed).await;
        assert_eq!(f.last_polled_at, Some(T0 + 15 * MINUTE));
        assert_eq!(f.next_poll_at, T0 + 15 * MINUTE + INTERVAL);
        assert_eq!(f.seeded_at, Some(T0 + 15 * MINUTE));
        assert_eq!(f.consecutive_failures, 0);
        assert_eq!(f.last_error, None);

        // Not due again before the interval.
        assert_eq!(w.poller.poll_due().await, vec![]);
        assert_eq!(w.server.seen().len(), 1);

        // The document changes: a new entry on top, an undated one, and an unseen one dated
        // before the feed (an old post that reappears). Only the first two are posted.
        let newer = item("d", "Delta", Some(T0 + 20 * MINUTE));
        let undated = item("u", "Undated", None);
        let ancient = item("z", "Ancient", Some(T0 - 30 * DAY));
        w.server.serve(rss(&[
            newer.clone(),
            undated,
            fresh.clone(),
            older.clone(),
            old.clone(),
            ancient,
        ]));
        w.set(f.next_poll_at);
        assert_eq!(posted(&w.poll_one().await), (2, 1));
        assert_eq!(
            w.bodies().await,
            vec![
                "Gamma & co https://blog.test/c",
                // Undated entries keep the document's order (newest first), so the undated one
                // counts as older than Delta and is posted before it.
                "Undated https://blog.test/u",
                "Delta https://blog.test/d",
            ]
        );

        // The same document again: nothing new.
        w.set(w.now() + INTERVAL);
        assert_eq!(posted(&w.poll_one().await), (0, 0));
        assert_eq!(w.posts().await.len(), 3);
        assert_eq!(w.server.seen().len(), 3);
    }
);

both!(
    backfill_posts_the_newest_entries_on_the_first_read_only,
    |db| async move {
        let w = World::new(&db).await;
        let items: Vec<Item> = (1..=4)
            .rev()
            .map(|n| item(&format!("e{n}"), &format!("Entry {n}"), Some(T0 - n * HOUR)))
            .collect();
        w.server.serve(rss(&items));
        let feed = w
            .feed_with(FeedSettings {
                backfill: 2,
                ..w.settings("/feed")
            })
            .await;
        // e1 is the newest (an hour before the feed), e4 the oldest.
        assert_eq!(posted(&w.poll_one().await), (2, 2));
        assert_eq!(
            w.bodies().await,
            vec![
                "Entry 2 https://blog.test/e2",
                "Entry 1 https://blog.test/e1"
            ],
            "the two newest, oldest of them first"
        );
        // Backfill is for the first read: a later read with an older unseen entry posts nothing.
        let mut more = items.clone();
        more.push(item("e9", "Entry 9", Some(T0 - 9 * HOUR)));
        w.server.serve(rss(&more));
        w.set(w.reload(&feed).await.next_poll_at);
        assert_eq!(posted(&w.poll_one().await), (0, 1));
        assert_eq!(w.posts().await.len(), 2);
    }
);

both!(atom_and_json_feed_documents_are_read, |db| async move {
    let w = World::new(&db).await;
    let mut one = item("urn:test:1", "Atom one", Some(T0 + MINUTE));
    one.summary = "<p>Hello &amp; <b>good</b>bye</p><script>evil()</script>".into();
    let mut two = item("urn:test:2", "Atom two", Some(T0 + 2 * MINUTE));
    two.summary = "<p>Second</p>".into();
    w.server.serve(atom(&[two.clone(), one.clone()]));
    let feed = w
        .feed_with(FeedSettings {
            template: "{title}: {summary} {link}".into(),
            ..w.settings("/feed")
        })
        .await;
    w.set(T0 + 5 * MINUTE);
    assert_eq!(posted(&w.poll_one().await), (2, 0));
    assert_eq!(
        w.bodies().await,
        vec![
            "Atom one: Hello & goodbye https://blog.test/urn:test:1",
            "Atom two: Second https://blog.test/urn:test:2",
        ],
        "the alternate link, not the enclosure; HTML summaries as plain text"
    );
    // An edited entry (same id, new title) is not new; a new one is.
    let mut edited = one.clone();
    edited.title = "Atom one, edited".into();
    let three = item("urn:test:3", "Atom three", Some(T0 + 20 * MINUTE));
    w.server.serve(atom(&[three, two, edited]));
    w.set(w.reload(&feed).await.next_poll_at);
    assert_eq!(posted(&w.poll_one().await), (1, 0));
    assert_eq!(
        w.bodies().await.last().unwrap(),
        "Atom three:  https://blog.test/urn:test:3"
    );

    // JSON Feed, on a second feed.
    let mut j1 = item("j1", "Json one", Some(T0 + 30 * MINUTE));
    j1.summary = "<p>From JSON</p>".into();
    w.server.serve_other(json_feed(&[j1]));
    let json = w
        .feed_with(FeedSettings {
            template: "{title} — {summary} {link}".into(),
            ..w.settings("/other")
        })
        .await;
    w.set(T0 + 31 * MINUTE);
    let reports = w.poller.poll_due().await;
    assert_eq!(
        reports
            .iter()
            .map(|r| (&r.feed_id, posted(&r.polled)))
            .collect::<Vec<_>>(),
        vec![(&json.id, (1, 0))]
    );
    assert_eq!(
        w.bodies().await.last().unwrap(),
        "Json one — From JSON https://blog.test/j1"
    );
});

both!(
    conditional_get_sends_the_validators_and_takes_304,
    |db| async move {
        let w = World::new(&db).await;
        let lm = "Fri, 15 Jan 2027 08:00:00 GMT";
        w.server.serve(
            rss(&[item("a", "A", Some(T0 + MINUTE))])
                .etag("\"v1\"")
                .last_modified(lm),
        );
        let feed = w.feed().await;
        w.set(T0 + 2 * MINUTE);
        assert_eq!(posted(&w.poll_one().await), (1, 0));
        let f = w.reload(&feed).await;
        assert_eq!(f.etag.as_deref(), Some("\"v1\""));
        assert_eq!(f.last_modified.as_deref(), Some(lm));

        w.set(f.next_poll_at);
        assert_eq!(w.poll_one().await, Polled::NotModified);
        let seen = w.server.seen();
        assert_eq!(
            seen[0].if_none_match, None,
            "nothing to validate on the first read"
        );
        assert_eq!(seen[1].if_none_match.as_deref(), Some("\"v1\""));
        assert_eq!(seen[1].if_modified_since.as_deref(), Some(lm));
        let f = w.reload(&feed).await;
        assert_eq!(f.last_polled_at, Some(w.now()));
        assert_eq!(f.next_poll_at, w.now() + INTERVAL);
        assert_eq!(
            f.etag.as_deref(),
            Some("\"v1\""),
            "a 304 keeps the validators"
        );
        assert_eq!(w.posts().await.len(), 1);

        // A new version: read, new validators, the new entry posted.
        w.server.serve(
            rss(&[
                item("b", "B", Some(T0 + 20 * MINUTE)),
                item("a", "A", Some(T0 + MINUTE)),
            ])
            .etag("\"v2\""),
        );
        w.set(f.next_poll_at);
        assert_eq!(posted(&w.poll_one().await), (1, 0));
        let f = w.reload(&feed).await;
        assert_eq!(f.etag.as_deref(), Some("\"v2\""));
        assert_eq!(f.last_modified, None);
        assert_eq!(
            w.bodies().await,
            vec!["A https://blog.test/a", "B https://blog.test/b"]
        );

        // The server drops its ETag for a Last-Modified: read once (If-None-Match "v2" no longer
        // matches), then validated with If-Modified-Since alone.
        w.server.serve(
            rss(&[
                item("b", "B", Some(T0 + 20 * MINUTE)),
                item("a", "A", Some(T0 + MINUTE)),
            ])
            .last_modified(lm),
        );
        w.set(f.next_poll_at);
        assert_eq!(posted(&w.poll_one().await), (0, 0));
        let f = w.reload(&feed).await;
        assert_eq!(f.etag, None);
        assert_eq!(f.last_modified.as_deref(), Some(lm));
        w.set(f.next_poll_at);
        assert_eq!(w.poll_one().await, Polled::NotModified);
        let last = w.server.seen().pop().unwrap();
        assert_eq!(last.if_none_match, None);
        assert_eq!(last.if_modified_since.as_deref(), Some(lm));
        assert_eq!(w.posts().await.len(), 2);
    }
);

both!(failing_feeds_record_errors_and_back_off, |db| async move {
    let w = World::new(&db).await;
    w.server.serve(Doc::status(500));
    let feed = w.feed().await;
    let mut expected_pause = 2 * INTERVAL;
    for failures in 1..=7 {
        let (error, retry_at) = failed(&w.poll_one().await);
        assert!(error.contains("HTTP 500"), "{error}");
        assert_eq!(retry_at, w.now() + expected_pause, "failure {failures}");
        let f = w.reload(&feed).await;
        assert_eq!(f.consecutive_failures, failures);
        assert_eq!(f.last_error.as_deref(), Some(error.as_str()));
        assert_eq!(f.last_polled_at, Some(w.now()));
        assert_eq!(f.next_poll_at, retry_at);
        // Not polled before its time.
        w.set(retry_at - 1);
        assert_eq!(w.poller.poll_due().await, vec![]);
        w.set(retry_at);
        expected_pause = (expected_pause * 2).min(6 * HOUR);
    }
    assert_eq!(expected_pause, 6 * HOUR, "the backoff reached its cap");
    assert_eq!(w.server.seen().len(), 7);
    assert!(w.posts().await.is_empty());

    // Recovery clears the error; entries dated after the feed are posted once.
    w.server.serve(rss(&[item("a", "Back", Some(T0 + MINUTE))]));
    assert_eq!(posted(&w.poll_one().await), (1, 0));
    let f = w.reload(&feed).await;
    assert_eq!(f.consecutive_failures, 0);
    assert_eq!(f.last_error, None);
    assert_eq!(f.next_poll_at, w.now() + INTERVAL);
    // A failing feed with a long interval is never polled more often than its interval.
    let slow = w
        .feed_with(FeedSettings {
            poll_interval_seconds: 86_400,
            ..w.settings("/other")
        })
        .await;
    let (_, retry_at) = failed(&w.poll_one().await);
    assert_eq!(retry_at, w.now() + 86_400 * SECOND);
    assert_eq!(w.reload(&slow).await.consecutive_failures, 1);
});

both!(
    malformed_and_oversized_documents_are_errors,
    |db| async move {
        let w = World::new(&db).await;
        let feed = w.feed().await;
        let good = rss(&[item("a", "Finally", Some(T0 + MINUTE))]);
        let huge = {
            let filler = "x".repeat(MAX_BODY);
            let mut s = String::from_utf8(good.body.clone()).unwrap();
            s = s.replace(
                "<description>d</description>",
                &format!("<description>{filler}</description>"),
            );
            s.into_bytes()
        };
        assert!(huge.len() > MAX_BODY);
        let cases: Vec<(Doc, &str)> = vec![
            (
                Doc::ok(
                    b"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><item><title>Cut"
                        .to_vec(),
                    "application/rss+xml",
                ),
                "not a valid RSS, Atom or JSON feed",
            ),
            (
                Doc::ok(
                    b"<rss version=\"2.0\"><channel><item></rss>".to_vec(),
                    "application/rss+xml",
                ),
                "not a valid RSS, Atom or JSON feed",
            ),
            (
                Doc::ok(b"just some text".to_vec(), "text/plain"),
                "not a valid RSS, Atom or JSON feed",
            ),
            (
                Doc::ok(
                    b"<!doctype html><html><body>Hi</body></html>".to_vec(),
                    "text/html",
                ),
                "not a valid RSS, Atom or JSON feed",
            ),
            (
                Doc::ok(b"{\"not\":\"a feed\"".to_vec(), "application/json"),
                "not a valid RSS, Atom or JSON feed",
            ),
            (
                Doc::ok(b"{\"items\":42}".to_vec(), "application/json"),
                "not a valid RSS, Atom or JSON feed",
            ),
            // The parser's error quotes the document, NUL and all (PostgreSQL cannot store it).
            (
                Doc::ok(
                    b"{\"version\":\"x\\u0000\",\"title\":\"t\",\"items\":[]}".to_vec(),
                    "application/json",
                ),
                "not a valid RSS, Atom or JSON feed",
            ),
            (
                Doc::ok(Vec::new(), "application/rss+xml"),
                "not a valid RSS, Atom or JSON feed",
            ),
            (
                Doc::ok(huge.clone(), "application/rss+xml"),
                "larger than 256 KiB",
            ),
            (
                Doc {
                    chunked: true,
                    ..Doc::ok(huge, "application/rss+xml")
                },
                "larger than",
            ),
            (Doc::status(404), "HTTP 404"),
        ];
        for (n, (doc, expected)) in cases.into_iter().enumerate() {
            w.server.serve(doc);
            let (error, retry_at) = failed(&w.poll_one().await);
            assert!(error.contains(expected), "case {n}: {error}");
            assert!(!error.contains(char::is_control), "case {n}: {error:?}");
            let f = w.reload(&feed).await;
            assert_eq!(f.consecutive_failures, n as i64 + 1);
            assert_eq!(
                f.seeded_at, None,
                "a failed read does not count as the first read"
            );
            assert!(w.posts().await.is_empty(), "case {n} posted");
            w.set(retry_at);
        }
        w.server.serve(good);
        assert_eq!(posted(&w.poll_one().await), (1, 0));
        assert_eq!(w.bodies().await, vec!["Finally https://blog.test/a"]);
    }
);

both!(a_flood_of_new_entries_is_capped_per_poll, |db| async move {
    let w = World::new(&db).await;
    let items: Vec<Item> = (0..120)
        .map(|n| {
            item(
                &format!("n{n:03}"),
                &format!("New {n:03}"),
                Some(T0 + (n + 1) * SECOND),
            )
        })
        .collect();
    w.server.serve(rss(&items));
    let feed = w.feed().await;
    w.set(T0 + HOUR);
    assert_eq!(
        posted(&w.poll_one().await),
        (MAX_POSTS_PER_POLL, 120 - MAX_POSTS_PER_POLL)
    );
    let posts = w.all_posts().await;
    assert_eq!(posts.len(), MAX_POSTS_PER_POLL);
    assert!(
        posts.iter().all(|p| p.body.as_str() >= "New 070"),
        "the newest are posted"
    );
    w.set(w.reload(&feed).await.next_poll_at);
    assert_eq!(posted(&w.poll_one().await), (0, 0));
    assert_eq!(w.all_posts().await.len(), MAX_POSTS_PER_POLL);
});

// ---------------------------------------------------------------------------------------------
// Nothing twice
// ---------------------------------------------------------------------------------------------

both!(
    entries_are_deduplicated_by_id_and_by_link,
    |db| async move {
        let w = World::new(&db).await;
        let x = item("x1", "First", Some(T0 + MINUTE));
        w.server.serve(rss(std::slice::from_ref(&x)));
        let feed = w.feed().await;
        w.set(T0 + 2 * MINUTE);
        assert_eq!(posted(&w.poll_one().await), (1, 0));
        let cases = [
            // The same link under a new id.
            Item {
                id: "x1-renamed".into(),
                ..x.clone()
            },
            // The same id under a new link.
            Item {
                link: "https://blog.test/moved".into(),
                ..x.clone()
            },
        ];
        for (n, case) in cases.into_iter().enumerate() {
            w.server.serve(rss(&[case]));
            w.set(w.reload(&feed).await.next_poll_at);
            assert_eq!(posted(&w.poll_one().await), (0, 0), "case {n}");
        }
        w.server
            .serve(rss(&[item("x2", "Second", Some(T0 + HOUR)), x]));
        w.set(w.reload(&feed).await.next_poll_at);
        assert_eq!(posted(&w.poll_one().await), (1, 0));
        assert_eq!(
            w.bodies().await,
            vec!["First https://blog.test/x1", "Second https://blog.test/x2"]
        );
    }
);

both!(two_nodes_never_post_an_entry_twice, |db| async move {
    let w = World::new(&db).await;
    let other_store = db.connect_again().await;
    let other = poller_on(&other_store, &w.clock, config(true));
    let entries: Vec<Item> = (0..5)
        .map(|n| {
            item(
                &format!("k{n}"),
                &format!("K{n}"),
                Some(T0 + (n + 1) * MINUTE),
            )
        })
        .collect();
    w.server.serve(rss(&entries));
    let feed = w.feed().await;
    w.set(T0 + HOUR);

    // Both nodes look for due feeds at once: one claims it.
    let (a, b) = tokio::join!(w.poller.poll_due(), other.poll_due());
    let reports: Vec<PollReport> = a.into_iter().chain(b).collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(posted(&reports[0].polled), (5, 0));
    assert_eq!(w.server.seen().len(), 1);

    // Both poll the same feed at once (a lease ran out mid-poll): every entry is still
    // posted once, and neither poll fails.
    let mut more = entries.clone();
    more.extend((5..10).map(|n| {
        item(
            &format!("k{n}"),
            &format!("K{n}"),
            Some(T0 + (n + 1) * MINUTE),
        )
    }));
    w.server.serve(rss(&more));
    let f = w.reload(&feed).await;
    let (a, b) = tokio::join!(w.poller.poll_feed(f.clone()), other.poll_feed(f));
    let made = posted(&a.polled).0 + posted(&b.polled).0;
    assert_eq!(made, 5, "{a:?} {b:?}");
    let mut bodies = w
        .all_posts()
        .await
        .into_iter()
        .map(|p| p.body)
        .collect::<Vec<_>>();
    bodies.sort();
    let mut expected: Vec<String> = (0..10)
        .map(|n| format!("K{n} https://blog.test/k{n}"))
        .collect();
    expected.sort();
    assert_eq!(bodies, expected);
    other_store.close().await;
});

// ---------------------------------------------------------------------------------------------
// Modes
// ---------------------------------------------------------------------------------------------

both!(
    publish_mode_publishes_once_through_the_publisher,
    |db| async move {
        let w = World::new(&db).await;
        w.server
            .serve(rss(&[item("p1", "Ship it", Some(T0 + MINUTE))]));
        let feed = w
            .feed_with(FeedSettings {
                mode: FeedMode::Publish,
                ..w.settings("/feed")
            })
            .await;
        w.set(T0 + 2 * MINUTE);
        assert_eq!(posted(&w.poll_one().await), (1, 0));
        let post = w.posts().await.remove(0);
        assert_eq!(post.status, PostStatus::Publishing);
        assert_eq!(
            w.store.next_job_at().await.unwrap(),
            Some(w.now()),
            "due now"
        );

        let clock: Arc<dyn Clock> = Arc::new(w.clock.clone());
        let sandbox = Arc::new(Sandbox::new(w.store.clone(), clock.clone()));
        let app = common::app_on(&w.store, clock, Networks::default().with(sandbox), None);
        let publisher = Publisher::new(app, WorkerConfig::default());
        assert_eq!(publisher.run_due().await, vec![Processed::Published]);
        let timeline = w
            .store
            .sandbox_timeline(&w.account.id, 50, 0)
            .await
            .unwrap()
            .items;
        assert_eq!(timeline.len(), 1);
        assert_eq!(timeline[0].body, "Ship it https://blog.test/p1");
        let post = w.store.get_post(&w.ws, &post.id).await.unwrap().unwrap();
        assert_eq!(post.status, PostStatus::Published);

        // Later polls of the same document publish nothing more.
        for _ in 0..2 {
            w.set(w.reload(&feed).await.next_poll_at);
            assert_eq!(posted(&w.poll_one().await), (0, 0));
            assert_eq!(publisher.run_due().await, vec![]);
        }
        assert_eq!(
            w.store
                .sandbox_timeline(&w.account.id, 50, 0)
                .await
                .unwrap()
                .items
                .len(),
            1
        );

        // With approval required, a published entry waits for it, with no job.
        w.store
            .update_workspace(
                &w.ws,
                &WorkspaceChanges {
                    require_approval: Some(true),
                    ..WorkspaceChanges::default()
                },
                w.now(),
            )
            .await
            .unwrap();
        w.server
            .serve(rss(&[item("p2", "Needs a nod", Some(w.now()))]));
        w.set(w.reload(&feed).await.next_poll_at);
        assert_eq!(posted(&w.poll_one().await), (1, 0));
        let waiting = w.posts().await.pop().unwrap();
        assert_eq!(waiting.body, "Needs a nod https://blog.test/p2");
        assert_eq!(waiting.status, PostStatus::PendingApproval);
        assert_eq!(waiting.scheduled_at, None);
        assert_eq!(w.store.next_job_at().await.unwrap(), None);
    }
);

both!(queue_mode_takes_the_next_free_slots, |db| async move {
    let w = World::new(&db).await;
    // Mondays and Wednesdays at 09:00 UTC; T0 is Friday 2027-01-15.
    w.store
        .set_slots(&w.ws, false, &[(1, 540), (3, 540)])
        .await
        .unwrap();
    w.server.serve(rss(&[
        item("q2", "Second", Some(T0 + 2 * MINUTE)),
        item("q1", "First", Some(T0 + MINUTE)),
    ]));
    w.feed_with(FeedSettings {
        mode: FeedMode::Queue,
        ..w.settings("/feed")
    })
    .await;
    w.set(T0 + 3 * MINUTE);
    assert_eq!(posted(&w.poll_one().await), (2, 0));
    let posts = w.posts().await;
    let monday: i64 = "2027-01-18T09:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let wednesday: i64 = "2027-01-20T09:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    assert_eq!(
        posts
            .iter()
            .map(|p| (p.body.as_str(), p.status, p.scheduled_at))
            .collect::<Vec<_>>(),
        vec![
            (
                "First https://blog.test/q1",
                PostStatus::Scheduled,
                Some(monday)
            ),
            (
                "Second https://blog.test/q2",
                PostStatus::Scheduled,
                Some(wednesday)
            ),
        ]
    );
    assert_eq!(w.store.next_job_at().await.unwrap(), Some(monday));
});

both!(
    a_test_mode_feed_queues_into_its_own_modes_slots,
    |db| async move {
        // The world's feed and account are test-mode ones. Live mode queues on Mondays only,
        // and a live post already takes the next Monday; test mode queues on Mondays and
        // Wednesdays, and nothing of its own takes them.
        let w = World::new(&db).await;
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        let monday = at("2027-01-18T09:00:00Z");
        let wednesday = at("2027-01-20T09:00:00Z");
        w.store.set_slots(&w.ws, true, &[(1, 540)]).await.unwrap();
        w.store
            .set_slots(&w.ws, false, &[(1, 540), (3, 540)])
            .await
            .unwrap();
        let id = crier_core::ids::AccountId::generate();
        let live_account = Account {
            external_id: id.to_string(),
            id,
            handle: "live".into(),
            livemode: true,
            ..w.account.clone()
        };
        let live_account = w.store.connect_account(&live_account).await.unwrap();
        let live_post = Post {
            status: PostStatus::Scheduled,
            scheduled_at: Some(monday),
            ..Post::draft(&w.ws, true, &[&live_account], "live".into(), T0)
        };
        w.store
            .insert_posts(std::slice::from_ref(&live_post))
            .await
            .unwrap();

        w.server.serve(rss(&[
            item("m2", "Second", Some(T0 + 2 * MINUTE)),
            item("m1", "First", Some(T0 + MINUTE)),
        ]));
        w.feed_with(FeedSettings {
            mode: FeedMode::Queue,
            ..w.settings("/feed")
        })
        .await;
        w.set(T0 + 3 * MINUTE);
        assert_eq!(posted(&w.poll_one().await), (2, 0));
        let queued: Vec<_> = w
            .posts()
            .await
            .into_iter()
            .filter(|p| p.id != live_post.id)
            .map(|p| (p.livemode, p.body, p.status, p.scheduled_at))
            .collect();
        assert_eq!(
            queued,
            vec![
                (
                    false,
                    "First https://blog.test/m1".to_owned(),
                    PostStatus::Scheduled,
                    Some(monday)
                ),
                (
                    false,
                    "Second https://blog.test/m2".to_owned(),
                    PostStatus::Scheduled,
                    Some(wednesday)
                ),
            ]
        );
        // The live slots and the live post are as they were.
        assert_eq!(w.store.slots(&w.ws, true).await.unwrap(), [(1, 540)]);
        let stored = w.store.get_post(&w.ws, &live_post.id).await.unwrap();
        assert_eq!(stored.unwrap().scheduled_at, Some(monday));
    }
);

/// A queue-mode feed of `livemode` whose workspace's plan allows one post a month; two polls
/// (the first uses the month's one post, the second brings two more entries). Returns the
/// world, its posts oldest first, and the post ids of every job in storage.
async fn queue_feed_past_the_quota(db: &TestDb, livemode: bool) -> (World, Vec<Post>, Vec<String>) {
    let mut w = World::new(db).await;
    w.poller = poller_with_quota(&w.store, &w.clock, config(true), Some(1));
    let id = crier_core::ids::AccountId::generate();
    let account = Account {
        external_id: id.to_string(),
        id,
        livemode,
        ..w.account.clone()
    };
    let account = w.store.connect_account(&account).await.unwrap();
    // Mondays and Wednesdays at 09:00 UTC, in the feed's mode; T0 is Friday 2027-01-15.
    w.store
        .set_slots(&w.ws, livemode, &[(1, 540), (3, 540)])
        .await
        .unwrap();
    let feed = Feed::new(
        &w.ws,
        livemode,
        FeedSettings {
            mode: FeedMode::Queue,
            account_ids: vec![account.id.clone()],
            ..w.settings("/feed")
        },
        w.now(),
    );
    w.store.insert_feed(&feed).await.unwrap();

    w.server
        .serve(rss(&[item("u1", "First", Some(T0 + MINUTE))]));
    w.set(T0 + 2 * MINUTE);
    assert_eq!(posted(&w.poll_one().await), (1, 0));
    w.server.serve(rss(&[
        item("u3", "Third", Some(T0 + 4 * MINUTE)),
        item("u2", "Second", Some(T0 + 3 * MINUTE)),
        item("u1", "First", Some(T0 + MINUTE)),
    ]));
    w.set(w.reload(&feed).await.next_poll_at);
    assert_eq!(
        posted(&w.poll_one().await),
        (2, 0),
        "each entry still makes a post"
    );
    let posts = w.posts().await;
    // Every job in storage, whenever due.
    let jobs = w
        .store
        .claim_jobs(T0 + 365 * DAY, MINUTE, 100)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|j| j.post_id.map(|p| p.to_string()))
        .collect();
    (w, posts, jobs)
}

both!(
    a_live_queue_feed_past_the_monthly_quota_makes_drafts,
    |db| async move {
        let (_w, posts, jobs) = queue_feed_past_the_quota(&db, true).await;
        let monday: i64 = "2027-01-18T09:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        assert_eq!(
            posts
                .iter()
                .map(|p| (p.body.as_str(), p.status, p.scheduled_at))
                .collect::<Vec<_>>(),
            vec![
                (
                    "First https://blog.test/u1",
                    PostStatus::Scheduled,
                    Some(monday)
                ),
                ("Second https://blog.test/u2", PostStatus::Draft, None),
                ("Third https://blog.test/u3", PostStatus::Draft, None),
            ]
        );
        assert_eq!(jobs, vec![posts[0].id.to_string()], "no job for the drafts");
    }
);

both!(
    a_test_mode_queue_feed_is_not_limited_by_the_quota,
    |db| async move {
        let (_w, posts, jobs) = queue_feed_past_the_quota(&db, false).await;
        assert!(
            posts.iter().all(|p| p.status == PostStatus::Scheduled),
            "{posts:?}"
        );
        let mut ids: Vec<String> = posts.iter().map(|p| p.id.to_string()).collect();
        let mut jobs = jobs;
        ids.sort();
        jobs.sort();
        assert_eq!(jobs, ids, "one job per post");
    }
);

both!(
    queue_mode_without_slots_and_text_that_cannot_fit_make_drafts,
    |db| async move {
        let w = World::new(&db).await;
        w.server
            .serve(rss(&[item("d1", "No slot", Some(T0 + MINUTE))]));
        w.feed_with(FeedSettings {
            mode: FeedMode::Queue,
            ..w.settings("/feed")
        })
        .await;
        // A fixed text longer than the sandbox's 300 characters cannot be shortened to fit.
        w.server
            .serve_other(rss(&[item("d2", "Too long", Some(T0 + MINUTE))]));
        w.feed_with(FeedSettings {
            mode: FeedMode::Publish,
            template: format!("{} {{link}}", "x".repeat(320)),
            ..w.settings("/other")
        })
        .await;
        w.set(T0 + 2 * MINUTE);
        let reports = w.poller.poll_due().await;
        assert_eq!(reports.len(), 2);
        for r in &reports {
            assert_eq!(posted(&r.polled), (1, 0));
        }
        let posts = w.posts().await;
        assert_eq!(posts.len(), 2);
        assert!(
            posts
                .iter()
                .all(|p| p.status == PostStatus::Draft && p.scheduled_at.is_none())
        );
        assert_eq!(w.store.next_job_at().await.unwrap(), None);
    }
);

both!(long_text_is_shortened_to_fit_the_network, |db| async move {
    let w = World::new(&db).await;
    let mut long = item("l1", "A title", Some(T0 + MINUTE));
    long.summary = format!("<p>{}</p>", "word ".repeat(400));
    w.server.serve(rss(&[long]));
    w.feed_with(FeedSettings {
        mode: FeedMode::Publish,
        template: "{title}\n\n{summary}\n\n{link}".into(),
        ..w.settings("/feed")
    })
    .await;
    w.set(T0 + 2 * MINUTE);
    assert_eq!(posted(&w.poll_one().await), (1, 0));
    let post = w.posts().await.remove(0);
    assert_eq!(
        post.status,
        PostStatus::Publishing,
        "it fits, so it goes out"
    );
    assert!(
        post.body.chars().count() <= 300,
        "{}",
        post.body.chars().count()
    );
    assert!(
        post.body.starts_with("A title\n\nword word"),
        "{}",
        post.body
    );
    assert!(
        post.body.ends_with("…\n\nhttps://blog.test/l1"),
        "{}",
        post.body
    );
    assert!(
        post.body.chars().count() > 250,
        "no more is cut than needed"
    );
});

// ---------------------------------------------------------------------------------------------
// Guards
// ---------------------------------------------------------------------------------------------

both!(
    a_feed_without_connected_accounts_fails_without_fetching,
    |db| async move {
        let w = World::new(&db).await;
        w.server.serve(rss(&[item("a", "A", Some(T0 + MINUTE))]));
        let feed = w.feed().await;
        w.store
            .disconnect_account(&w.ws, &w.account.id, T0)
            .await
            .unwrap();
        let (error, _) = failed(&w.poll_one().await);
        assert!(error.contains("accounts is connected"), "{error}");
        assert_eq!(w.reload(&feed).await.consecutive_failures, 1);
        assert!(w.server.seen().is_empty());
        assert!(w.posts().await.is_empty());
    }
);

both!(
    private_addresses_are_refused_unless_allowed,
    |db| async move {
        let w = World::new(&db).await;
        w.server.serve(rss(&[item("a", "A", Some(T0 + MINUTE))]));
        let feed = w.feed().await;
        let guarded = poller_on(&w.store, &w.clock, config(false));
        let reports = guarded.poll_due().await;
        assert_eq!(reports.len(), 1);
        let (error, _) = failed(&reports[0].polled);
        assert!(error.contains("private, loopback or link-local"), "{error}");
        assert!(w.server.seen().is_empty(), "no request left");
        assert_eq!(
            w.reload(&feed).await.last_error.as_deref(),
            Some(error.as_str())
        );
        // So is `localhost` by name (names that resolve to private addresses are refused by the
        // client's resolver; see `http.rs`).
        let named = w
            .feed_with(FeedSettings {
                url: format!("http://localhost:{}/feed", w.server.addr.port()),
                ..w.settings("/feed")
            })
            .await;
        let reports = guarded.poll_due().await;
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].feed_id, named.id);
        let (error, _) = failed(&reports[0].polled);
        assert!(error.contains("private, loopback or link-local"), "{error}");
        assert!(w.server.seen().is_empty());
        // The same feed polls fine where the operator allows private networks.
        w.set(
            w.reload(&feed)
                .await
                .next_poll_at
                .max(w.reload(&named).await.next_poll_at),
        );
        w.set(w.now() + MINUTE);
        let reports = w.poller.poll_due().await;
        assert_eq!(reports.len(), 2);
        assert!(
            reports
                .iter()
                .all(|r| matches!(r.polled, Polled::Read { .. })),
            "{reports:?}"
        );
    }
);

both!(redirects_are_followed_a_few_times, |db| async move {
    let w = World::new(&db).await;
    w.server
        .serve(rss(&[item("r", "Moved", Some(T0 + MINUTE))]));
    w.feed_with(w.settings("/moved")).await;
    w.set(T0 + 2 * MINUTE);
    assert_eq!(posted(&w.poll_one().await), (1, 0));
    assert_eq!(
        w.server
            .seen()
            .iter()
            .map(|s| s.path.as_str())
            .collect::<Vec<_>>(),
        vec!["/feed"]
    );
    let looping = w.feed_with(w.settings("/loop")).await;
    let (error, _) = failed(&w.poll_one().await);
    assert!(error.contains("redirected more than"), "{error}");
    assert_eq!(w.reload(&looping).await.consecutive_failures, 1);
});

both!(disabled_deleted_and_moved_feeds, |db| async move {
    let w = World::new(&db).await;
    w.server.serve(rss(&[item("a", "A", Some(T0 + MINUTE))]));
    let feed = w.feed().await;
    let off = FeedSettings {
        enabled: false,
        ..feed.settings()
    };
    w.store
        .update_feed(&w.ws, &feed.id, &off, T0)
        .await
        .unwrap()
        .unwrap();
    w.set(T0 + DAY);
    assert_eq!(
        w.poller.poll_due().await,
        vec![],
        "a disabled feed is not polled"
    );
    assert!(w.server.seen().is_empty());
    // Turned on again: due at once.
    let on = w
        .store
        .update_feed(&w.ws, &feed.id, &feed.settings(), w.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on.next_poll_at, w.now());
    assert_eq!(posted(&w.poll_one().await), (1, 0));

    // A new URL starts over: its first read posts only what is newer than the change.
    w.server.serve_other(rss(&[
        item("o2", "Other new", Some(w.now() + MINUTE)),
        item("o1", "Other old", Some(w.now() - MINUTE)),
    ]));
    let moved = w
        .store
        .update_feed(
            &w.ws,
            &feed.id,
            &FeedSettings {
                url: w.server.url("/other"),
                ..feed.settings()
            },
            w.now(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.seeded_at, None);
    assert_eq!(moved.etag, None);
    assert_eq!(moved.baseline_at, w.now());
    w.set(w.now() + 2 * MINUTE);
    assert_eq!(posted(&w.poll_one().await), (1, 1));
    assert_eq!(
        w.bodies().await,
        vec!["A https://blog.test/a", "Other new https://blog.test/o2"]
    );

    // Deleted: gone for the poller; its posts stay.
    assert!(w.store.delete_feed(&w.ws, &feed.id).await.unwrap());
    assert!(!w.store.delete_feed(&w.ws, &feed.id).await.unwrap());
    w.set(w.now() + DAY);
    assert_eq!(w.poller.poll_due().await, vec![]);
    assert_eq!(w.posts().await.len(), 2);
    // Another workspace cannot see or touch it.
    let other = w
        .store
        .create_workspace("other", "free", T0)
        .await
        .unwrap()
        .id;
    let f2 = w.feed().await;
    assert_eq!(w.store.get_feed(&other, &f2.id).await.unwrap(), None);
    assert_eq!(
        w.store
            .update_feed(&other, &f2.id, &f2.settings(), w.now())
            .await
            .unwrap(),
        None
    );
    assert!(!w.store.delete_feed(&other, &f2.id).await.unwrap());
    assert_eq!(w.store.get_feed(&w.ws, &f2.id).await.unwrap(), Some(f2));
});

both!(recording_an_entry_twice_makes_one_post, |db| async move {
    // What two polls racing on one feed come down to, without relying on timing: the second
    // record of an entry (by id or by link) makes no post, and a record for a URL the feed no
    // longer has writes nothing.
    let w = World::new(&db).await;
    w.server.serve(rss(&[
        item("k1", "K1", Some(T0 + 2 * MINUTE)),
        item("k0", "K0", Some(T0 + MINUTE)),
    ]));
    let feed = w.feed().await;
    w.set(T0 + HOUR);
    assert_eq!(posted(&w.poll_one().await), (2, 0));
    let f = w.reload(&feed).await;
    let model = w.posts().await.remove(0);
    let entry = |id: &str, link: Option<&str>| {
        let mut post = model.clone();
        post.id = crier_core::ids::PostId::generate();
        for t in &mut post.targets {
            t.post_id = post.id.clone();
        }
        post.body = format!("again {id}");
        NewFeedItem {
            entry_id: id.into(),
            link: link.map(Into::into),
            title: None,
            published_at: None,
            post: Some(post),
        }
    };
    let success = FeedPollSuccess {
        now: w.now(),
        next_poll_at: w.now() + INTERVAL,
        validators: None,
        items: vec![
            entry("k0", None),
            entry("renamed", Some("https://blog.test/k1")),
            entry("k9", Some("https://blog.test/k9")),
        ],
    };
    let created = w
        .store
        .record_feed_success(&f, &f.url, &success)
        .await
        .unwrap()
        .expect("the feed is there");
    let fresh = success.items[2].post.as_ref().unwrap().id.clone();
    assert_eq!(created, vec![fresh]);
    assert_eq!(
        w.bodies().await,
        vec![
            "K0 https://blog.test/k0",
            "K1 https://blog.test/k1",
            "again k9"
        ]
    );

    let elsewhere = FeedSettings {
        url: w.server.url("/other"),
        ..f.settings()
    };
    w.store
        .update_feed(&w.ws, &f.id, &elsewhere, w.now())
        .await
        .unwrap()
        .unwrap();
    let late = FeedPollSuccess {
        items: vec![entry("k10", None)],
        ..success
    };
    assert_eq!(
        w.store
            .record_feed_success(&f, &f.url, &late)
            .await
            .unwrap(),
        None,
        "a poll of the old URL writes nothing"
    );
    assert!(
        !w.store
            .record_feed_failure(&f, &f.url, "late", 1, w.now(), w.now())
            .await
            .unwrap()
    );
    let now = w.reload(&feed).await;
    assert_eq!(now.last_error, None);
    assert_eq!(now.consecutive_failures, 0);
    assert_eq!(w.posts().await.len(), 3);
});

both!(
    a_server_that_does_not_answer_in_time_is_an_error,
    |db| async move {
        let w = World::new(&db).await;
        let feed = w.feed_with(w.settings("/slow")).await;
        let impatient = poller_on(
            &w.store,
            &w.clock,
            FeedConfig {
                fetch_timeout: Duration::from_millis(300),
                ..config(true)
            },
        );
        let started = std::time::Instant::now();
        let reports = impatient.poll_due().await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(reports.len(), 1);
        let (error, _) = failed(&reports[0].polled);
        assert!(error.contains("did not answer"), "{error}");
        assert_eq!(w.reload(&feed).await.consecutive_failures, 1);
    }
);

both!(
    one_workspaces_many_feeds_do_not_keep_anothers_waiting,
    |db| async move {
        // Twenty feeds of one workspace due first, then one of another workspace.
        let w = World::new(&db).await;
        let mut ours = Vec::new();
        for i in 0..20 {
            ours.push(w.feed_with(w.settings(&format!("/feed{i}"))).await);
        }
        w.set(w.now() + 1000);
        let other = w
            .store
            .create_workspace("globex", "free", T0)
            .await
            .unwrap()
            .id;
        let theirs = Feed::new(&other, false, w.settings("/theirs"), w.now());
        w.store.insert_feed(&theirs).await.unwrap();
        // Made at the same instant, ours fall due together: in id order.
        ours.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        let due = w.now() + 3600 * 1000;
        // A claim takes one feed per workspace, the longest due first.
        let claimed = w.store.claim_feeds(due, MINUTE, 8, &[]).await.unwrap();
        let mut ids: Vec<&str> = claimed.iter().map(|f| f.id.as_str()).collect();
        ids.sort();
        let mut expected = vec![ours[0].id.as_str(), theirs.id.as_str()];
        expected.sort();
        assert_eq!(ids, expected);
        // A workspace the caller polls enough of takes none.
        let busy = vec![w.ws.as_str().to_owned()];
        let claimed = w.store.claim_feeds(due, MINUTE, 8, &busy).await.unwrap();
        assert!(claimed.is_empty(), "{claimed:?}");
        let claimed = w.store.claim_feeds(due, MINUTE, 8, &[]).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, ours[1].id, "the next longest due");
    }
);
