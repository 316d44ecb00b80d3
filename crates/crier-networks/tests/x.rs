//! The X connector against its fake (`crier-fakes/src/x.rs`): what is special to X — weighted
//! length and the limits in the rules, OAuth with PKCE and rotating refresh tokens, the
//! chunked v2 media upload with processing, alt text, the options, X's error shapes and
//! rate-limit headers, and the exactly-once paths through the part's steps (uploads reused
//! after a failed create, a lost create answer found by `lookup`, a retry's duplicate-content
//! refusal resolved to the post, the timeline's pages bounded).

#[path = "support/hosted.rs"]
mod hosted;

use std::time::Duration;

use crier_core::Clock;
use crier_fakes::FakeNetwork;
use crier_fakes::kit::{self, Fault};
use crier_fakes::x::XFake;
use crier_networks::x::RULES;
use crier_networks::{Attachment, MediaMeta, MemorySteps, NetworkError, Part, Session, Steps};
use crier_store::PostOverride;
use hosted::{Grant, Media, authorize, exchange, thread_part as part};
use serde_json::json;

/// How long after `sent_at` a look-up's miss is still "cannot tell".
const LAG: Duration = Duration::from_millis(crier_networks::x::lookup::LAG_MS as u64);

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

type Rig = hosted::SignedIn<XFake>;

impl Rig {
    async fn new() -> Self {
        let rig = hosted::Rig::start("2026-03-01T12:00:00Z".parse().unwrap(), XFake::start).await;
        let connected = Grant::new(rig.fake.client())
            .pkce(
                Some(CHALLENGE),
                Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            )
            .connect(rig.net.as_ref())
            .await
            .expect("connected");
        rig.signed_in("x", connected)
    }

    fn count(&self, method: &str, suffix: &str) -> usize {
        self.seen(method, |p| p.ends_with(suffix))
    }
}

fn attachment(bytes: Vec<u8>, content_type: &str, alt: Option<&str>) -> Attachment {
    hosted::attachment(bytes, content_type)
        .sized(64, 64)
        .lasting(content_type.starts_with("video/").then_some(10_000))
        .alt(alt)
}

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

fn rules_of(parts: &[&str], media: &[MediaMeta]) -> Vec<String> {
    let parts: Vec<String> = parts.iter().map(|s| (*s).to_owned()).collect();
    RULES
        .check(&parts, media)
        .into_iter()
        .map(|v| v.rule)
        .collect()
}

fn meta(content_type: &str, size: u64, duration_ms: Option<u64>) -> MediaMeta {
    attachment(vec![0], content_type, None)
        .meta
        .clone()
        .tap(|m| {
            m.size = size;
            m.duration_ms = duration_ms;
        })
}

trait Tap: Sized {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
impl Tap for MediaMeta {}

#[test]
fn length_is_weighted_as_twitter_text_counts_it() {
    assert!(rules_of(&[&"a".repeat(280)], &[]).is_empty());
    assert_eq!(
        rules_of(&[&"a".repeat(281)], &[]),
        vec!["x.text.max_weighted_length"]
    );
    // CJK weighs 2: 140 fit, 141 do not.
    assert!(rules_of(&[&"日".repeat(140)], &[]).is_empty());
    assert_eq!(
        rules_of(&[&"日".repeat(141)], &[]),
        vec!["x.text.max_weighted_length"]
    );
    // A link is 23 whatever its length.
    let long_link = format!(
        "{} https://example.com/{}",
        "a".repeat(256),
        "p".repeat(200)
    );
    assert!(rules_of(&[&long_link], &[]).is_empty());
}

#[test]
fn threads_and_media_have_x_limits() {
    let parts: Vec<&str> = vec!["p"; 26];
    assert_eq!(rules_of(&parts, &[]), vec!["x.thread.max_parts"]);
    assert!(rules_of(&vec!["p"; 25], &[]).is_empty());
    let img = meta("image/png", 1000, None);
    assert_eq!(
        rules_of(&["t"], &vec![img.clone(); 5]),
        vec!["x.media.max_count"]
    );
    assert!(rules_of(&["t"], &vec![img.clone(); 4]).is_empty());
    let video = meta("video/mp4", 1000, Some(10_000));
    assert_eq!(
        rules_of(&["t"], &[img.clone(), video.clone()]),
        vec!["x.media.mixed"]
    );
    assert_eq!(
        rules_of(&["t"], &[meta("video/mp4", 1000, Some(140_001))]),
        vec!["x.media.max_video_duration"]
    );
    assert_eq!(
        rules_of(&["t"], &[meta("image/png", 5_000_001, None)]),
        vec!["x.media.max_image_bytes"]
    );
    let opts = serde_json::from_value(
        json!({"reply_settings": "everyone", "quote_tweet_id": "1".repeat(20)}),
    )
    .unwrap();
    let got: Vec<String> = RULES
        .check_options(&opts)
        .into_iter()
        .map(|v| v.rule)
        .collect();
    assert_eq!(
        got,
        vec!["x.options.quote_tweet_id", "x.options.reply_settings"]
    );
    let fine = serde_json::from_value(
        json!({"reply_settings": "mentionedUsers", "quote_tweet_id": "1866000000000000001"}),
    )
    .unwrap();
    assert!(RULES.check_options(&fine).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connecting_takes_pkce_and_reads_the_user() {
    let r = Rig::new().await;
    let c = &r.connected;
    assert_eq!(c.handle, "user_1");
    assert_eq!(c.external_id, r.fake.user_id("user-1"));
    assert_eq!(c.profile_url.as_deref(), Some("https://x.com/user_1"));
    assert!(
        c.avatar_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://pbs.twimg.com/"))
    );
    let creds = &c.credentials;
    assert!(
        creds.refresh_token.is_some(),
        "offline.access gives a refresh token"
    );
    assert_eq!(
        creds.client.as_ref().map(|c| c.client_id.as_str()),
        Some("crier-client")
    );
    let now = r.clock.now_ms();
    assert_eq!(creds.expires_at, Some(now + 7_200_000), "two hours");
    // The authorization request: X's scopes, S256, and the token call with HTTP Basic.
    let seen = r.fake.faults().seen();
    let auth = seen
        .iter()
        .find(|s| s.path == "/i/oauth2/authorize")
        .unwrap();
    let q: Vec<(String, String)> = url::form_urlencoded::parse(auth.query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(
        get("scope"),
        Some("tweet.read tweet.write users.read offline.access media.write")
    );
    assert_eq!(get("code_challenge_method"), Some("S256"));
    let token = seen.iter().find(|s| s.path == "/2/oauth2/token").unwrap();
    assert!(
        token.headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    // Without PKCE the connector refuses to build the URL (X requires it).
    let client = r.fake.client();
    let err = r
        .net
        .authorize_url(&authorize(&client, "s", None))
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected");
}

#[tokio::test]
async fn a_wrong_verifier_is_refused() {
    let r = hosted::Rig::start("2026-03-01T12:00:00Z".parse().unwrap(), XFake::start).await;
    let client = r.fake.client();
    let url = r
        .net
        .authorize_url(&authorize(&client, "st", Some(CHALLENGE)))
        .unwrap();
    let (code, _) = kit::approve(&url).await;
    let err = r
        .net
        .exchange_code(&exchange(
            &client,
            &code,
            Some("not-the-verifier-not-the-verifier-not-the-verifier"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "account_disconnected", "{err:?}");
}

#[tokio::test]
async fn refresh_rotates_and_an_expired_token_is_unauthorized() {
    let r = Rig::new().await;
    r.clock.advance(Duration::from_secs(7201));
    let steps = MemorySteps::default();
    let err = r.publish(part("late", &[], &[], &steps)).await.unwrap_err();
    assert_eq!(err.code(), "account_disconnected", "{err:?}");
    let fresh = r.net.refresh(r.session()).await.expect("a refresh");
    assert_ne!(
        fresh.refresh_token, r.connected.credentials.refresh_token,
        "rotated"
    );
    assert!(
        fresh.client.is_some(),
        "the client stays for the next refresh"
    );
    // The old refresh token is spent.
    let again = r.net.refresh(r.session()).await.unwrap_err();
    assert_eq!(again.code(), "account_disconnected");
    let s = Session {
        account: &r.account,
        credentials: &fresh,
    };
    r.net
        .publish(s, part("on time", &[], &[], &MemorySteps::default()))
        .await
        .expect("the fresh token publishes");
    // Revoked: nothing works any more.
    r.net.revoke(s).await.expect("revoked");
    let err = r
        .net
        .publish(s, part("gone", &[], &[], &MemorySteps::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "account_disconnected");
}

// ---------------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_thread_replies_and_options_go_on_the_first_part() {
    let r = Rig::new().await;
    let quoted = r.fake.post_as("user-1", "quote me");
    let options: PostOverride = serde_json::from_value(json!({"options": {
        "reply_settings": "mentionedUsers", "quote_tweet_id": quoted}}))
    .unwrap();
    let steps = MemorySteps::default();
    let first = r
        .publish(Part {
            options: &options,
            ..part("first", &[], &[], &steps)
        })
        .await
        .unwrap();
    assert_eq!(
        first.url,
        format!("https://x.com/user_1/status/{}", first.external_id)
    );
    let thread = vec![first.external_id.clone()];
    let steps2 = MemorySteps::default();
    let second = r
        .publish(Part {
            options: &options,
            ..part("second", &[], &thread, &steps2)
        })
        .await
        .unwrap();
    assert_eq!(
        r.fake.settings_of(&first.external_id),
        Some((Some("mentionedUsers".into()), Some(quoted)))
    );
    assert_eq!(r.fake.settings_of(&second.external_id), Some((None, None)));
    let posts = r.fake.posts();
    let p = posts.iter().find(|p| p.id == second.external_id).unwrap();
    assert_eq!(p.reply_to.as_deref(), Some(first.external_id.as_str()));
    // A reply to a post that does not exist is X's 403.
    let gone = vec!["1".to_owned()];
    let err = r
        .publish(part("orphan", &[], &gone, &MemorySteps::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected", "{err:?}");
    assert!(err.to_string().contains("deleted or not visible"), "{err}");
}

#[tokio::test]
async fn the_fake_counts_length_as_x_does() {
    let r = Rig::new().await;
    let err = r
        .publish(part(&"日".repeat(141), &[], &[], &MemorySteps::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected");
    assert!(err.to_string().contains("400"), "{err}");
    r.publish(part(&"日".repeat(140), &[], &[], &MemorySteps::default()))
        .await
        .expect("140 CJK characters weigh 280");
}

#[tokio::test]
async fn video_is_uploaded_in_segments_and_processed() {
    let r = Rig::new().await;
    let video = attachment(kit::mp4(2 * 1024 * 1024 + 512 * 1024), "video/mp4", None);
    let steps = MemorySteps::default();
    let done = r
        .publish(part("a video", std::slice::from_ref(&video), &[], &steps))
        .await
        .unwrap();
    assert_eq!(r.count("POST", "/append"), 3, "1 MiB segments");
    assert!(
        r.count("GET", "/2/media/upload") >= 2,
        "polled until processed"
    );
    let posts = r.fake.posts();
    assert_eq!(posts[0].id, done.external_id);
    assert_eq!(posts[0].media, vec!["video/mp4".to_owned()]);
    let kept = steps.snapshot();
    assert_eq!(kept.get("media.0.state").map(String::as_str), Some("ready"));
    assert!(kept.contains_key("sent_at"));
}

#[tokio::test]
async fn images_carry_their_alt_text() {
    let r = Rig::new().await;
    let media = vec![
        attachment(kit::png(8, 8), "image/png", Some("a grey square")),
        attachment(kit::png(9, 9), "image/png", None),
    ];
    let done = r
        .publish(part("two pictures", &media, &[], &MemorySteps::default()))
        .await
        .unwrap();
    assert_eq!(
        r.fake.alt_texts_of(&done.external_id),
        vec![Some("a grey square".to_owned()), None]
    );
    assert_eq!(
        r.count("GET", "/2/media/upload"),
        0,
        "images need no processing"
    );
}

#[tokio::test]
async fn failed_processing_is_a_media_refusal() {
    let r = Rig::new().await;
    r.fake.fail_next_processing();
    let video = attachment(kit::mp4(1000), "video/mp4", None);
    let err = r
        .publish(part(
            "broken",
            std::slice::from_ref(&video),
            &[],
            &MemorySteps::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "media_rejected", "{err:?}");
    assert!(
        err.to_string().contains("Unsupported video format"),
        "{err}"
    );
    assert!(r.fake.posts().is_empty());
}

#[tokio::test]
async fn media_refused_at_initialize_is_a_media_refusal() {
    let r = Rig::new().await;
    let big = attachment(vec![0u8; 5 * 1024 * 1024 + 1], "image/png", None);
    let err = r
        .publish(part(
            "big",
            std::slice::from_ref(&big),
            &[],
            &MemorySteps::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "media_rejected", "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Exactly once
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_retry_reuses_the_uploaded_media() {
    let r = Rig::new().await;
    let video = attachment(kit::mp4(4000), "video/mp4", None);
    let steps = MemorySteps::default();
    r.fake.faults().push(Fault::status(
        "POST",
        "/2/tweets",
        503,
        json!({"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank", "status": 503}),
    ));
    let err = r
        .publish(part("again", std::slice::from_ref(&video), &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_unavailable");
    let kept = steps.get("media.0").await.unwrap().unwrap();
    let done = r
        .publish(part("again", std::slice::from_ref(&video), &[], &steps))
        .await
        .unwrap();
    assert_eq!(
        r.count("POST", "/2/media/upload/initialize"),
        1,
        "uploaded once"
    );
    let posts = r.fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].id, done.external_id);
    assert_eq!(r.fake.media().iter().filter(|m| m.id == kept).count(), 1);
    // An upload about to expire is not reused.
    let steps2 = MemorySteps::default();
    steps2.put("media.0", &kept).await.unwrap();
    steps2.put("media.0.of", &video.meta.id).await.unwrap();
    steps2.put("media.0.state", "ready").await.unwrap();
    steps2
        .put("media.0.expires", &(r.clock.now_ms() + 60_000).to_string())
        .await
        .unwrap();
    r.publish(part(
        "fresh upload",
        std::slice::from_ref(&video),
        &[],
        &steps2,
    ))
    .await
    .unwrap();
    assert_eq!(r.count("POST", "/2/media/upload/initialize"), 2);
}

#[tokio::test]
async fn a_crash_after_finalize_resumes_polling_the_same_upload() {
    let r = Rig::new().await;
    let video = attachment(kit::mp4(4000), "video/mp4", None);
    let steps = MemorySteps::default();
    // The status polls fail: the publish ends with the upload finalized, not processed.
    r.fake.faults().push(
        Fault::status(
            "GET",
            "/2/media/upload",
            503,
            json!({"title": "Service Unavailable", "status": 503}),
        )
        .times(1),
    );
    let err = r
        .publish(part("resume", std::slice::from_ref(&video), &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_unavailable");
    assert_eq!(
        steps.get("media.0.state").await.unwrap().as_deref(),
        Some("finalized")
    );
    r.publish(part("resume", std::slice::from_ref(&video), &[], &steps))
        .await
        .unwrap();
    assert_eq!(
        r.count("POST", "/2/media/upload/initialize"),
        1,
        "the same upload"
    );
    assert_eq!(r.fake.posts().len(), 1);
}

#[tokio::test]
async fn a_lost_answer_is_found_by_lookup_and_a_retry_resolves_the_duplicate() {
    let r = Rig::new().await;
    // Text X renders back differently: escaped, its link as t.co, a media link appended.
    let text = "Fish & chips <3 https://example.com/menu?a=1";
    let media = vec![attachment(kit::png(8, 8), "image/png", None)];
    let steps = MemorySteps::default();
    let p = part(text, &media, &[], &steps);
    // Nothing sent yet: certainly not published, and X is not even asked.
    assert_eq!(r.net.lookup(r.session(), p).await.unwrap(), None);
    let asked = r.fake.faults().seen().len();
    assert_eq!(r.net.lookup(r.session(), p).await.unwrap(), None);
    assert_eq!(r.fake.faults().seen().len(), asked);

    r.fake.faults().push(Fault::lose("POST", "/2/tweets"));
    let err = r.publish(p).await.unwrap_err();
    assert_eq!(err, NetworkError::Timeout);
    let posts = r.fake.posts();
    assert_eq!(posts.len(), 1, "it landed");
    r.clock.advance(Duration::from_secs(30));
    let found = r
        .net
        .lookup(r.session(), p)
        .await
        .unwrap()
        .expect("found by lookup");
    assert_eq!(found.external_id, posts[0].id);
    // Publishing again anyway: X refuses the duplicate, the connector answers the post.
    let again = r.publish(p).await.expect("the duplicate is the post");
    assert_eq!(again.external_id, posts[0].id);
    assert_eq!(r.fake.posts().len(), 1);
}

#[tokio::test]
async fn a_duplicate_of_the_users_own_post_is_a_refusal() {
    let r = Rig::new().await;
    r.fake.post_as("user-1", "Said it before");
    r.clock.advance(Duration::from_secs(3600));
    let steps = MemorySteps::default();
    let err = r
        .publish(part("Said it before", &[], &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected", "{err:?}");
    assert!(err.to_string().contains("duplicate content"), "{err}");
    // A retry of ours that X calls a duplicate but the timeline does not show yet: try later.
    let err = r
        .publish(part("Said it before", &[], &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_unavailable", "{err:?}");
}

#[tokio::test]
async fn lookup_matches_the_reply_target_and_the_time_window() {
    let r = Rig::new().await;
    let root = r.fake.post_as("user-1", "root");
    let thread = vec![root.clone()];
    let steps = MemorySteps::default();
    steps
        .put("sent_at", &r.clock.now_ms().to_string())
        .await
        .unwrap();
    // Same text, but not a reply to our root.
    r.fake.post_as("user-1", "the reply");
    let p = part("the reply", &[], &thread, &steps);
    r.clock.advance(LAG);
    assert_eq!(r.net.lookup(r.session(), p).await.unwrap(), None);
    // Long before the send time: outside the window.
    let old = MemorySteps::default();
    let later = r.clock.now_ms() + 3_600_000 - LAG.as_millis() as i64;
    old.put("sent_at", &later.to_string()).await.unwrap();
    r.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        r.net
            .lookup(r.session(), part("root", &[], &[], &old))
            .await
            .unwrap(),
        None
    );
    let seen = r.fake.faults().seen();
    let q = &seen
        .iter()
        .rev()
        .find(|s| s.path.ends_with("/tweets"))
        .unwrap()
        .query;
    assert!(
        q.contains("start_time=2026-03-01T12%3A55%3A00Z"),
        "sent_at minus 5 minutes: {q}"
    );
}

#[tokio::test]
async fn a_miss_is_cannot_tell_until_15_minutes_after_sent_at() {
    let r = Rig::new().await;
    // Text: X's duplicate-content refusal guards a retry, so a full read's miss is a miss.
    let steps = MemorySteps::default();
    let p = part("Not landed", &[], &[], &steps);
    r.fake.faults().push(Fault::hang("POST", "/2/tweets"));
    assert_eq!(r.publish(p).await.unwrap_err(), NetworkError::Timeout);
    assert!(r.fake.posts().is_empty());
    assert_eq!(r.net.lookup(r.session(), p).await.unwrap(), None);
    // Media alone: no such guard, and X's timeline lags: a miss soon after the send proves
    // nothing.
    let steps = MemorySteps::default();
    let media = [attachment(kit::png(8, 8), "image/png", None)];
    let p = part("", &media, &[], &steps);
    r.fake.faults().push(Fault::hang("POST", "/2/tweets"));
    assert_eq!(r.publish(p).await.unwrap_err(), NetworkError::Timeout);
    assert!(r.fake.posts().is_empty());
    let err = r.net.lookup(r.session(), p).await.unwrap_err();
    assert!(
        matches!(err, NetworkError::Unavailable { retry_after: Some(d), .. } if d == LAG),
        "{err:?}"
    );
    r.clock.advance(LAG - Duration::from_secs(1));
    let err = r.net.lookup(r.session(), p).await.unwrap_err();
    assert_eq!(err.code(), "network_unavailable", "{err:?}");
    r.clock.advance(Duration::from_secs(1));
    assert_eq!(r.net.lookup(r.session(), p).await.unwrap(), None);
}

#[tokio::test]
async fn lookup_reads_pages_and_says_when_it_cannot_tell() {
    let r = Rig::new().await;
    let steps = MemorySteps::default();
    steps
        .put("sent_at", &r.clock.now_ms().to_string())
        .await
        .unwrap();
    let ours = r.fake.post_as("user-1", "ours");
    for i in 0..150 {
        r.fake.post_as("user-1", &format!("later {i}"));
    }
    let found = r
        .net
        .lookup(r.session(), part("ours", &[], &[], &steps))
        .await
        .unwrap()
        .expect("found on the second page");
    assert_eq!(found.external_id, ours);
    for i in 0..400 {
        r.fake.post_as("user-1", &format!("more {i}"));
    }
    let err = r
        .net
        .lookup(r.session(), part("not there", &[], &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        "network_unavailable",
        "never None when unsure: {err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Rate limits, errors, metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rate_limits_come_from_the_headers() {
    let r = Rig::new().await;
    r.fake.set_limit("POST /2/tweets", 1);
    r.publish(part("one", &[], &[], &MemorySteps::default()))
        .await
        .unwrap();
    r.clock.advance(Duration::from_secs(100));
    let err = r
        .publish(part("two", &[], &[], &MemorySteps::default()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(800))
        }
    );
    // The 24-hour user cap of the create call, when it is the exhausted one.
    let reset = kit::now_secs(&r.clock) + 20_000;
    r.fake.faults().push(
        Fault::status(
            "POST",
            "/2/tweets",
            429,
            json!({"title": "Too Many Requests", "status": 429}),
        )
        .header("x-rate-limit-remaining", "5")
        .header("x-rate-limit-reset", (reset - 19_000).to_string())
        .header("x-user-limit-24hour-remaining", "0")
        .header("x-user-limit-24hour-reset", reset.to_string()),
    );
    let err = r
        .publish(part("three", &[], &[], &MemorySteps::default()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(20_000))
        }
    );
    // After the window, posting works again.
    r.clock.advance(Duration::from_secs(800));
    r.publish(part("four", &[], &[], &MemorySteps::default()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_scope_and_a_missing_post_are_refusals() {
    let r = Rig::new().await;
    let issued = r.fake.oauth().issue("user-1", "tweet.read users.read");
    let creds = crier_networks::Credentials {
        access_token: issued.access_token,
        ..Default::default()
    };
    let s = Session {
        account: &r.account,
        credentials: &creds,
    };
    let err = r
        .net
        .publish(s, part("no scope", &[], &[], &MemorySteps::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected", "{err:?}");
    let err = r.net.metrics(r.session(), "42").await.unwrap_err();
    assert_eq!(err.code(), "network_rejected");
    assert!(err.to_string().contains("Could not find tweet"), "{err}");
}

#[tokio::test]
async fn metrics_are_public_metrics() {
    let r = Rig::new().await;
    let done = r
        .publish(part("count", &[], &[], &MemorySteps::default()))
        .await
        .unwrap();
    let thread = vec![done.external_id.clone()];
    r.publish(part("a reply", &[], &thread, &MemorySteps::default()))
        .await
        .unwrap();
    r.fake.like(&done.external_id, 3);
    let m = r.net.metrics(r.session(), &done.external_id).await.unwrap();
    assert_eq!((m.likes, m.replies, m.impressions), (3, 1, 30));
}

#[tokio::test]
async fn ids_that_are_not_digits_never_make_a_path() {
    let r = Rig::new().await;
    let before = r.fake.faults().seen().len();
    let err = r.net.metrics(r.session(), "..").await.unwrap_err();
    assert_eq!(err.code(), "network_rejected", "{err:?}");
    let err = r
        .net
        .metrics(r.session(), "1/../../2/users/me")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected", "{err:?}");
    // An account whose stored id is not an X id: its timeline is never asked for.
    let mut odd = r.account.clone();
    odd.external_id = "..".into();
    let steps = MemorySteps::default();
    steps
        .put("sent_at", &r.clock.now_ms().to_string())
        .await
        .unwrap();
    let err = r
        .net
        .lookup(
            hosted::session(&odd, r.creds()),
            part("x", &[], &[], &steps),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected", "{err:?}");
    assert_eq!(r.fake.faults().seen().len(), before, "nothing sent");
    // A create answer whose id is not one is not taken for the post.
    r.fake.faults().push(Fault::status(
        "POST",
        "/2/tweets",
        201,
        json!({"data": {"id": "..", "text": "x"}}),
    ));
    let err = r
        .publish(part("x", &[], &[], &MemorySteps::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_unavailable", "{err:?}");
}

#[tokio::test]
async fn posts_of_media_alone_are_told_apart_by_their_media() {
    let r = Rig::new().await;
    let a = vec![attachment(kit::png(8, 8), "image/png", None)];
    let steps_a = MemorySteps::default();
    let done = r.publish(part("", &a, &[], &steps_a)).await.unwrap();
    let found = r
        .net
        .lookup(r.session(), part("", &a, &[], &steps_a))
        .await
        .unwrap()
        .expect("found by its media");
    assert_eq!(found.external_id, done.external_id);
    // Another part of media alone, sent but not landed (its upload is not on any post).
    let b = vec![attachment(kit::png(9, 9), "image/png", None)];
    let steps_b = MemorySteps::default();
    steps_b.put("media.0", "1866000000000999999").await.unwrap();
    steps_b
        .put("sent_at", &r.clock.now_ms().to_string())
        .await
        .unwrap();
    r.clock.advance(LAG);
    assert_eq!(
        r.net
            .lookup(r.session(), part("", &b, &[], &steps_b))
            .await
            .unwrap(),
        None
    );
}
