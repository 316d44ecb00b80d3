//! The Instagram connector against its fake (`crier-fakes/src/instagram.rs`): what is special
//! to Instagram — the login's short- and long-lived tokens, media only by URL and JPEG only,
//! the caption's limits, carousels, container polling, the 24-hour publishing limit, the first
//! comment, and every exactly-once path through the part's steps (a crash before publishing, a
//! lost publish answer, an expired or failed container, a lookup that cannot tell).

#[path = "support/hosted.rs"]
mod hosted;

use std::time::Duration;

use crier_core::Clock;
use crier_fakes::instagram::{InstagramFake, USER, USERNAME};
use crier_fakes::{FakeNetwork, kit};
use crier_networks::instagram::{self, QUOTA_PAUSE, RULES};
use crier_networks::{Attachment, MediaMeta, MemorySteps, NetworkError, Part, Steps};
use crier_store::PostOverride;
use hosted::{Media, authorize, exchange, part};

/// A 1×1 grey baseline JPEG: SOI, a quantisation table of ones, a frame of one component,
/// one-code DC and AC Huffman tables, a scan whose single block is "DC 0, end of block", EOI.
fn jpeg() -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8];
    b.extend([0xFF, 0xDB, 0x00, 0x43, 0x00]);
    b.extend([1u8; 64]);
    b.extend([
        0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00,
    ]);
    for class in [0x00u8, 0x10] {
        b.extend([0xFF, 0xC4, 0x00, 0x14, class, 0x01]);
        b.extend([0u8; 15]);
        b.push(0x00);
    }
    b.extend([
        0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00, 0x3F, 0xFF, 0xD9,
    ]);
    b
}

type Rig = hosted::SignedIn<InstagramFake>;

impl Rig {
    async fn new() -> Self {
        let rig = hosted::Rig::start(
            crier_core::clock::from_ms(1_796_200_200_000),
            InstagramFake::start,
        )
        .await;
        let connected = rig.connect().await.expect("connected");
        rig.signed_in(instagram::PLATFORM, connected)
    }

    /// Requests of `method` to paths starting with `prefix`.
    fn calls(&self, method: &str, prefix: &str) -> usize {
        self.seen(method, |p| p.starts_with(prefix))
    }

    fn publish_path(&self) -> String {
        self.fake.publish_call().1
    }
}

/// `bytes` served on 127.0.0.1 as the media store's signed URL serves them.
async fn attachment(bytes: Vec<u8>, content_type: &str, duration_ms: Option<u64>) -> Attachment {
    let a = hosted::attachment(bytes, content_type)
        .sized(1, 1)
        .lasting(duration_ms)
        .alt(Some("a grey dot"));
    hosted::served(a, 200).await
}

async fn image() -> Attachment {
    attachment(jpeg(), "image/jpeg", None).await
}

async fn video() -> Attachment {
    attachment(kit::mp4(64 * 1024), "video/mp4", Some(12_000)).await
}

fn with_options(options: serde_json::Value) -> &'static PostOverride {
    Box::leak(Box::new(hosted::options(options)))
}

// ---------------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_trades_the_code_for_a_long_lived_token_that_refreshes_itself() {
    let r = Rig::new().await;
    let c = &r.connected;
    assert_eq!(c.external_id, USER, "the professional account's id");
    assert_eq!(c.handle, USERNAME);
    assert_eq!(
        c.profile_url.as_deref(),
        Some("https://www.instagram.com/crier.studio/")
    );
    let creds = &c.credentials;
    assert_eq!(
        creds.refresh_token.as_deref(),
        Some(creds.access_token.as_str()),
        "the long-lived token is what refreshes, so the app schedules its refresh"
    );
    let sixty_days = 60 * 24 * 3600 * 1000;
    assert_eq!(creds.expires_at, Some(r.clock.now_ms() + sixty_days));
    assert_eq!(
        creds.client.as_ref().map(|c| c.client_id.as_str()),
        Some("crier-client")
    );
    // Never the short-lived token: it would stop working within the hour.
    r.clock.advance(Duration::from_secs(2 * 3600));
    let steps = MemorySteps::default();
    let media = [image().await];
    r.publish(part("Still connected", &media, &steps))
        .await
        .expect("the long-lived token works after the short one expired");
    let fresh = r.net.refresh(r.session()).await.expect("a refresh");
    assert_ne!(fresh.access_token, creds.access_token);
    assert_eq!(
        fresh.refresh_token.as_deref(),
        Some(fresh.access_token.as_str())
    );
    assert_eq!(fresh.expires_at, Some(r.clock.now_ms() + sixty_days));
    assert_eq!(
        fresh.client, creds.client,
        "the client stays for the next refresh"
    );
}

#[tokio::test]
async fn the_authorization_url_asks_instagram_login_scopes_comma_separated_without_pkce() {
    let r = Rig::new().await;
    let client = r.fake.client();
    let url = r.net.authorize_url(&authorize(&client, "s", None)).unwrap();
    assert_eq!(url.path(), "/oauth/authorize");
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(
        q["scope"],
        "instagram_business_basic,instagram_business_content_publish,instagram_business_manage_comments"
    );
    assert!(!q.contains_key("code_challenge"));
    assert_eq!(
        r.net.connect_kind(),
        crier_networks::ConnectKind::OAuth {
            pkce: false,
            per_instance: false
        }
    );
}

#[tokio::test]
async fn a_used_code_and_a_revoked_token_are_refused() {
    let r = Rig::new().await;
    let client = r.fake.client();
    let err = r
        .net
        .exchange_code(&exchange(&client, "not-a-code", None))
        .await
        .expect_err("an unknown code");
    assert!(matches!(err, NetworkError::Rejected { .. }), "{err:?}");
    r.fake.revoke_access();
    let err = r.net.refresh(r.session()).await.expect_err("revoked");
    assert_eq!(err.code(), "account_disconnected", "{err:?}");
    let steps = MemorySteps::default();
    let media = [image().await];
    let err = r
        .publish(part("Nobody home", &media, &steps))
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), "account_disconnected", "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Rules and refusals before any call
// ---------------------------------------------------------------------------------------------

fn meta(ty: &str, size: u64, duration_ms: Option<u64>) -> MediaMeta {
    MediaMeta {
        id: "m".into(),
        content_type: ty.into(),
        size,
        width: Some(1080),
        height: Some(1080),
        duration_ms,
        alt_text: None,
        filename: "f".into(),
    }
}

#[test]
fn the_rules_say_instagram_limits() {
    let rules_of = |parts: &[&str], media: &[MediaMeta]| -> Vec<String> {
        let parts: Vec<String> = parts.iter().map(|p| (*p).to_owned()).collect();
        RULES
            .check(&parts, media)
            .into_iter()
            .map(|v| v.rule)
            .collect()
    };
    let jpeg = meta("image/jpeg", 1000, None);
    assert!(rules_of(&[&"é".repeat(2200)], std::slice::from_ref(&jpeg)).is_empty());
    assert_eq!(
        rules_of(&[&"é".repeat(2201)], std::slice::from_ref(&jpeg)),
        vec!["instagram.text.max_characters"]
    );
    assert_eq!(
        rules_of(&["a", "b"], std::slice::from_ref(&jpeg)),
        vec!["instagram.thread.unsupported"]
    );
    assert_eq!(
        rules_of(&["png"], &[meta("image/png", 1000, None)]),
        vec!["instagram.media.type"],
        "JPEG is the only image format"
    );
    assert_eq!(
        rules_of(&["big"], &[meta("image/jpeg", 8 * 1024 * 1024 + 1, None)]),
        vec!["instagram.media.max_image_bytes"]
    );
    assert_eq!(
        rules_of(
            &["long"],
            &[meta("video/mp4", 1000, Some(15 * 60 * 1000 + 1))]
        ),
        vec!["instagram.media.max_video_duration"]
    );
    let eleven: Vec<MediaMeta> = (0..11).map(|_| jpeg.clone()).collect();
    assert_eq!(
        rules_of(&["many"], &eleven),
        vec!["instagram.media.max_count"]
    );
    let mixed = [jpeg.clone(), meta("video/quicktime", 1000, Some(5000))];
    assert!(rules_of(&["mixed carousel"], &mixed).is_empty());
    let opts = |v: serde_json::Value| -> Vec<String> {
        RULES
            .check_options(&serde_json::from_value(v).unwrap())
            .into_iter()
            .map(|v| v.rule)
            .collect()
    };
    assert!(opts(serde_json::json!({"first_comment": "#tags", "share_to_feed": false})).is_empty());
    assert_eq!(
        opts(serde_json::json!({"first_comment": "x".repeat(2201)})),
        vec!["instagram.options.first_comment"]
    );
}

#[tokio::test]
async fn what_instagram_would_refuse_is_refused_before_any_call() {
    let r = Rig::new().await;
    let before = r.fake.faults().seen().len();
    let steps = MemorySteps::default();
    let err = r
        .publish(part("Text alone", &[], &steps))
        .await
        .expect_err("no media");
    assert!(
        matches!(&err, NetworkError::Rejected { message } if message.contains("instagram.media.required")),
        "{err:?}"
    );
    let media = [image().await];
    let tags: String = (0..31).map(|i| format!("#tag{i} ")).collect();
    let err = r
        .publish(part(&tags, &media, &steps))
        .await
        .expect_err("31 hashtags");
    assert!(
        matches!(&err, NetworkError::Rejected { message } if message.contains("31 hashtags")),
        "{err:?}"
    );
    let long = "x".repeat(2201);
    let err = r
        .publish(part(&long, &media, &steps))
        .await
        .expect_err("2201 characters");
    assert_eq!(err.code(), "network_rejected");
    let png = [attachment(kit::png(4, 4), "image/png", None).await];
    let err = r.publish(part("png", &png, &steps)).await.expect_err("PNG");
    assert_eq!(err.code(), "media_rejected", "{err:?}");
    let short = [attachment(kit::mp4(1024), "video/mp4", Some(2_000)).await];
    let err = r
        .publish(part("2 s", &short, &steps))
        .await
        .expect_err("a 2 s reel");
    assert_eq!(err.code(), "media_rejected", "{err:?}");
    let mut unhosted = image().await;
    unhosted.url = String::new();
    let err = r
        .publish(part("no URL", std::slice::from_ref(&unhosted), &steps))
        .await
        .expect_err("media without a public URL");
    assert_eq!(err.code(), "media_rejected", "{err:?}");
    let thread = ["1".to_owned()];
    let err = r
        .publish(Part {
            thread: &thread,
            ..part("a reply", &media, &steps)
        })
        .await
        .expect_err("no threads");
    assert_eq!(err.code(), "network_rejected");
    assert_eq!(r.fake.faults().seen().len(), before, "nothing was sent");
    assert!(steps.snapshot().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_jpeg_publishes_with_its_alt_text_and_the_first_comment() {
    let r = Rig::new().await;
    let steps = MemorySteps::default();
    let media = [image().await];
    let done = r
        .publish(Part {
            options: with_options(serde_json::json!({"first_comment": "#crier #launch"})),
            ..part("Launch day", &media, &steps)
        })
        .await
        .expect("published");
    assert!(
        done.url.starts_with("https://www.instagram.com/p/"),
        "{done:?}"
    );
    let posts = r.fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].id, done.external_id);
    assert_eq!(posts[0].text, "Launch day");
    assert_eq!(posts[0].media, vec!["image/jpeg".to_owned()]);
    assert_eq!(
        r.fake.media_type(&done.external_id).as_deref(),
        Some("IMAGE")
    );
    assert_eq!(
        r.fake.alt_text(&done.external_id).as_deref(),
        Some("a grey dot")
    );
    assert_eq!(r.fake.comments(&done.external_id), vec!["#crier #launch"]);
    let kept = steps.snapshot();
    for k in ["container", "sent_at", "media_id", "comment"] {
        assert!(kept.contains_key(k), "{k} kept: {kept:?}");
    }
    assert_eq!(kept["media_id"], done.external_id);
    // The container was polled while the fake processed it, and checked against the quota.
    assert!(r.calls("GET", &format!("/v21.0/{}", kept["container"])) >= 2);
    assert_eq!(
        r.calls("GET", &format!("/v21.0/{USER}/content_publishing_limit")),
        1
    );
    let m = r.net.metrics(r.session(), &done.external_id).await.unwrap();
    assert_eq!((m.likes, m.replies), (0, 1), "the first comment counts");
    r.fake.like(&done.external_id, 12);
    assert_eq!(
        r.net
            .metrics(r.session(), &done.external_id)
            .await
            .unwrap()
            .likes,
        12
    );
}

#[tokio::test]
async fn a_failed_first_comment_does_not_fail_the_post_and_is_not_tried_again() {
    let r = Rig::new().await;
    // Media ids start 179…, the account's own paths 178…: only the comment call matches.
    r.fake.faults().push(kit::Fault::status(
        "POST",
        "/v21.0/179*",
        500,
        serde_json::json!({"error": {"message": "An unknown error occurred", "code": 1}}),
    ));
    let steps = MemorySteps::default();
    let media = [image().await];
    let p = Part {
        options: with_options(serde_json::json!({"first_comment": "hello"})),
        ..part("Comment fails", &media, &steps)
    };
    let done = r.publish(p).await.expect("the post stands");
    assert!(r.fake.comments(&done.external_id).is_empty());
    assert_eq!(steps.snapshot()["comment"], "failed");
    let again = r.lookup(p).await.unwrap().expect("found by its kept id");
    assert_eq!(again, done);
    assert_eq!(r.calls("POST", "/v21.0/179"), 1, "tried once");
}

#[tokio::test]
async fn a_carousel_is_children_then_a_carousel_container() {
    let r = Rig::new().await;
    let steps = MemorySteps::default();
    let media = [image().await, video().await, image().await];
    let done = r
        .publish(part("Three of a kind", &media, &steps))
        .await
        .expect("a carousel");
    let posts = r.fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].media,
        vec!["image/jpeg", "video/mp4", "image/jpeg"],
        "in order"
    );
    assert_eq!(
        r.fake.media_type(&done.external_id).as_deref(),
        Some("CAROUSEL_ALBUM")
    );
    let kept = steps.snapshot();
    for k in ["child.0", "child.1", "child.2", "container"] {
        assert!(kept.contains_key(k), "{k}: {kept:?}");
    }
    assert_eq!(r.fake.containers_made(), 4);
}

#[tokio::test]
async fn a_single_video_is_a_reel_and_a_fetch_failure_is_a_media_refusal() {
    let r = Rig::new().await;
    let steps = MemorySteps::default();
    let media = [video().await];
    let done = r
        .publish(Part {
            options: with_options(serde_json::json!({"share_to_feed": true})),
            ..part("A reel", &media, &steps)
        })
        .await
        .expect("a reel");
    assert_eq!(
        r.fake.media_type(&done.external_id).as_deref(),
        Some("REELS")
    );
    let seen = r.fake.faults().seen();
    assert!(
        seen.iter()
            .any(|s| s.method == "POST" && s.path.ends_with("/media")),
        "a container was made"
    );
    // The URL answers 404: Instagram cannot fetch the media.
    let mut gone = image().await;
    gone.url = gone.url.replace("/media/file", "/media/gone");
    let steps = MemorySteps::default();
    let err = r
        .publish(part("Gone", std::slice::from_ref(&gone), &steps))
        .await
        .expect_err("unfetchable");
    assert!(
        matches!(&err, NetworkError::MediaRejected { message } if message.contains("9004")),
        "{err:?}"
    );
    // Bytes that are not JPEG behind a URL said to be one: the fake sniffs them.
    let lying = attachment(kit::png(2, 2), "image/jpeg", None).await;
    let err = r
        .publish(part("Not JPEG", std::slice::from_ref(&lying), &steps))
        .await
        .expect_err("PNG bytes");
    assert_eq!(err.code(), "media_rejected", "{err:?}");
    assert_eq!(r.fake.posts().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Exactly once
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_container_still_processing_is_resumed_not_made_again() {
    let r = Rig::new().await;
    r.fake.set_processing_polls(100_000);
    let steps = MemorySteps::default();
    let media = [video().await];
    let started = std::time::Instant::now();
    let err = r
        .publish(part("Slow reel", &media, &steps))
        .await
        .expect_err("still processing");
    assert!(
        matches!(&err, NetworkError::Unavailable { message, .. } if message.contains("still processing")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "polling is bounded by poll_max"
    );
    let container = steps.snapshot()["container"].clone();
    assert!(!steps.snapshot().contains_key("sent_at"));
    assert_eq!(
        r.lookup(part("Slow reel", &media, &steps)).await.unwrap(),
        None
    );
    r.fake.finish_processing(&container);
    let done = r
        .publish(part("Slow reel", &media, &steps))
        .await
        .expect("resumed");
    assert_eq!(
        r.fake.containers_made(),
        1,
        "the kept container was published"
    );
    assert_eq!(r.fake.posts().len(), 1);
    assert_eq!(r.fake.posts()[0].id, done.external_id);
}

#[tokio::test]
async fn a_crash_before_publishing_resumes_with_the_same_container() {
    let r = Rig::new().await;
    // The publish call never answers (and is not done): as if we crashed just before it.
    r.fake
        .faults()
        .push(kit::Fault::hang("POST", &r.publish_path()));
    let steps = MemorySteps::default();
    let media = [image().await];
    let err = r
        .publish(part("Crash", &media, &steps))
        .await
        .expect_err("no answer");
    assert_eq!(err, NetworkError::Timeout);
    assert!(r.fake.posts().is_empty());
    assert_eq!(
        r.lookup(part("Crash", &media, &steps)).await.unwrap(),
        None,
        "a finished, unpublished container: certainly not published"
    );
    let done = r
        .publish(part("Crash", &media, &steps))
        .await
        .expect("resumed");
    assert_eq!(r.fake.containers_made(), 1);
    assert_eq!(r.fake.posts().len(), 1);
    assert_eq!(r.fake.posts()[0].id, done.external_id);
}

#[tokio::test]
async fn sent_at_keeps_the_first_attempts_time() {
    let r = Rig::new().await;
    r.fake
        .faults()
        .push(kit::Fault::hang("POST", &r.publish_path()));
    let steps = MemorySteps::default();
    let media = [image().await];
    r.publish(part("First", &media, &steps))
        .await
        .expect_err("no answer");
    let first = steps.snapshot()["sent_at"].clone();
    r.clock.advance(Duration::from_secs(3600));
    r.publish(part("First", &media, &steps))
        .await
        .expect("resumed");
    assert_eq!(
        steps.snapshot()["sent_at"],
        first,
        "a later look-up's window starts at the first attempt"
    );
}

#[tokio::test]
async fn a_lost_publish_answer_is_found_by_lookup_and_by_a_retry() {
    let r = Rig::new().await;
    // Two parts whose publish answers are lost: one found by lookup, one by publish itself.
    for (text, by_lookup) in [("Lost, looked up", true), ("Lost, retried", false)] {
        r.fake
            .faults()
            .push(kit::Fault::lose("POST", &r.publish_path()));
        let steps = MemorySteps::default();
        let media = [image().await];
        let err = r
            .publish(part(text, &media, &steps))
            .await
            .expect_err("the answer is lost");
        assert_eq!(err, NetworkError::Timeout);
        assert!(!steps.snapshot().contains_key("media_id"));
        let found = if by_lookup {
            r.lookup(part(text, &media, &steps))
                .await
                .expect("a look-up")
                .expect("the container says PUBLISHED: its media is found")
        } else {
            r.publish(part(text, &media, &steps)).await.expect("found")
        };
        let post = r
            .fake
            .posts()
            .into_iter()
            .find(|p| p.text == text)
            .expect("published");
        assert_eq!(found.external_id, post.id);
        assert_eq!(steps.snapshot()["media_id"], post.id);
        let again = r.publish(part(text, &media, &steps)).await.unwrap();
        assert_eq!(again, found);
    }
    assert_eq!(r.fake.posts().len(), 2, "exactly one post each");
    assert_eq!(r.calls("POST", &r.publish_path()), 2, "published once each");
}

#[tokio::test]
async fn a_published_container_whose_media_cannot_be_found_is_an_error_not_none() {
    let r = Rig::new().await;
    r.fake
        .faults()
        .push(kit::Fault::lose("POST", &r.publish_path()));
    let steps = MemorySteps::default();
    let media = [image().await];
    r.publish(part("Caption A", &media, &steps))
        .await
        .expect_err("lost");
    // The same steps with another text: the container is PUBLISHED, no media matches.
    let err = r
        .lookup(part("Caption B", &media, &steps))
        .await
        .expect_err("cannot tell");
    assert!(err.is_transient(), "{err:?}");
    // An older post with the same caption, before this part's `sent_at`, is not it.
    let steps2 = MemorySteps::default();
    steps2
        .put("container", &steps.snapshot()["container"])
        .await
        .unwrap();
    steps2
        .put("sent_at", &(r.clock.now_ms() + 3_600_000).to_string())
        .await
        .unwrap();
    r.lookup(part("Caption A", &media, &steps2))
        .await
        .expect_err("too old to be this part's");
    assert_eq!(
        r.lookup(part("Caption A", &[], &MemorySteps::default()))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn an_expired_or_failed_container_is_replaced() {
    let r = Rig::new().await;
    for (text, expire) in [("Expired", true), ("Failed", false)] {
        r.fake
            .faults()
            .push(kit::Fault::hang("POST", &r.publish_path()));
        let steps = MemorySteps::default();
        let media = [image().await];
        r.publish(part(text, &media, &steps))
            .await
            .expect_err("no answer");
        let first = steps.snapshot()["container"].clone();
        if expire {
            r.fake.expire_container(&first);
        } else {
            r.fake.fail_container(&first);
        }
        assert_eq!(r.lookup(part(text, &media, &steps)).await.unwrap(), None);
        r.publish(part(text, &media, &steps))
            .await
            .expect("a new container");
        assert_ne!(steps.snapshot()["container"], first);
    }
    assert_eq!(r.fake.containers_made(), 4);
    assert_eq!(r.fake.posts().len(), 2);
}

#[tokio::test]
async fn a_carousel_resumes_from_its_kept_children() {
    let r = Rig::new().await;
    let steps = MemorySteps::default();
    let media = [image().await, image().await];
    // The children are still processing when the call's polling ends: both are kept.
    r.fake.set_processing_polls(100_000);
    let err = r
        .publish(part("Pair", &media, &steps))
        .await
        .expect_err("children still processing");
    assert_eq!(err.code(), "network_unavailable");
    assert_eq!(r.fake.containers_made(), 2);
    let kept = steps.snapshot();
    assert!(!kept.contains_key("container"), "{kept:?}");
    r.fake.set_processing_polls(1);
    r.fake.finish_processing(&kept["child.0"]);
    r.fake.finish_processing(&kept["child.1"]);
    r.publish(part("Pair", &media, &steps))
        .await
        .expect("published");
    assert_eq!(steps.snapshot()["child.0"], kept["child.0"], "reused");
    let made = r.fake.containers_made();
    assert_eq!(made, 3);
    // Crash after the carousel: its children are not made again.
    r.fake
        .faults()
        .push(kit::Fault::hang("POST", &r.publish_path()));
    let steps = MemorySteps::default();
    r.publish(part("Pair 2", &media, &steps))
        .await
        .expect_err("no answer");
    r.publish(part("Pair 2", &media, &steps))
        .await
        .expect("resumed");
    assert_eq!(r.fake.containers_made(), made + 3);
    assert_eq!(r.fake.posts().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_24_hour_publishing_limit_is_checked_before_any_container() {
    let r = Rig::new().await;
    r.fake.set_quota(1);
    let media = [image().await];
    r.publish(part("One", &media, &MemorySteps::default()))
        .await
        .expect("the first");
    let made = r.fake.containers_made();
    let steps = MemorySteps::default();
    let err = r
        .publish(part("Two", &media, &steps))
        .await
        .expect_err("at the limit");
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(QUOTA_PAUSE)
        }
    );
    assert_eq!(
        r.fake.containers_made(),
        made,
        "no container made at the limit"
    );
    // A day later the window has moved.
    r.clock.advance(Duration::from_secs(24 * 3600 + 1));
    r.publish(part("Two", &media, &steps))
        .await
        .expect("a day later");
}

#[tokio::test]
async fn a_throttle_waits_for_the_time_the_usage_header_says() {
    let r = Rig::new().await;
    r.fake.faults().push(r.fake.rate_limited(600));
    let steps = MemorySteps::default();
    let media = [image().await];
    let err = r
        .publish(part("Patience", &media, &steps))
        .await
        .expect_err("throttled");
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(600))
        }
    );
    let done = r
        .publish(part("Patience", &media, &steps))
        .await
        .expect("later");
    assert_eq!(
        r.fake.containers_made(),
        1,
        "the kept container is published"
    );
    assert_eq!(r.fake.posts()[0].id, done.external_id);
}

#[tokio::test]
async fn each_documented_error_maps_to_our_code() {
    let r = Rig::new().await;
    for (i, (fault, code)) in r.fake.documented_errors().into_iter().enumerate() {
        let described = format!("{fault:?}");
        r.fake.faults().clear();
        r.fake.faults().push(fault);
        let steps = MemorySteps::default();
        let media = [image().await];
        let text = format!("error {i}");
        let err = r
            .publish(part(&text, &media, &steps))
            .await
            .expect_err(&described);
        assert_eq!(err.code(), code, "{described} → {err:?}");
    }
}
