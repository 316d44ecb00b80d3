//! The TikTok connector against its fake (crier-fakes/src/tiktok.rs): what is special to
//! TikTok — Login Kit's `client_key` and comma scopes without PKCE, creator info deciding the
//! privacy level and refusing what it does not allow, the caption counted in UTF-16, chunked
//! uploads by the Media Transfer Guide's rules, `PULL_FROM_URL`, status polling, the kept
//! `publish_id` as the reconciliation handle, the documented errors and the rate-limit
//! fallbacks (TikTok sends no reset).

#[path = "support/hosted.rs"]
mod hosted;

use std::sync::Arc;
use std::time::Duration;

use crier_fakes::tiktok::{Creator, TikTokFake, USER, USERNAME};
use crier_fakes::{FakeNetwork, Fault, kit};
use crier_networks::tiktok::{self, DAILY_CAP_RETRY, RATE_WINDOW};
use crier_networks::{Attachment, MemorySteps, NetworkError, Session, Steps};
use crier_store::PostOverride;
use hosted::{Grant, Media, authorize, options, part_with as part};

const INIT: &str = "/v2/post/publish/video/init/";

type Rig = hosted::SignedIn<TikTokFake>;

impl Rig {
    async fn new() -> Self {
        let rig =
            hosted::Rig::start("2026-12-02T09:00:00Z".parse().unwrap(), TikTokFake::start).await;
        let connected = rig.connect().await.expect("connected");
        rig.signed_in("tiktok", connected)
    }

    fn inits(&self) -> usize {
        self.fake.faults().count("POST", INIT)
    }
}

/// Serves `bytes` on 127.0.0.1 as the media store's signed URL would.
async fn video_of(bytes: Vec<u8>, duration_ms: u64) -> Attachment {
    let a = hosted::attachment(bytes, "video/mp4")
        .sized(1080, 1920)
        .lasting(Some(duration_ms))
        .named("v.mp4");
    hosted::served(a, 200).await
}

async fn small_video() -> Vec<Attachment> {
    vec![video_of(kit::mp4(300 * 1024), 12_000).await]
}

fn creator(f: impl FnOnce(&mut Creator)) -> Creator {
    let mut c = Creator::default();
    f(&mut c);
    c
}

// ---------------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_kit_takes_client_key_and_comma_scopes_without_pkce() {
    let r = Rig::new().await;
    let client = r.fake.client();
    let url = r
        .net
        .authorize_url(&authorize(&client, "st", None))
        .unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(url.path(), "/v2/auth/authorize/");
    assert_eq!(
        q.get("client_key").map(String::as_str),
        Some("crier-client")
    );
    assert!(!q.contains_key("client_id"));
    assert_eq!(
        q.get("scope").map(String::as_str),
        Some("user.info.basic,video.publish,video.list,user.info.stats")
    );
    assert!(!q.contains_key("code_challenge"), "web Login Kit: no PKCE");
    assert_eq!(
        r.net.connect_kind(),
        crier_networks::ConnectKind::OAuth {
            pkce: false,
            per_instance: false
        }
    );

    // The account: open_id, the creator's username as the handle, 24 h tokens, the client kept.
    assert_eq!(r.account.external_id, USER);
    assert_eq!(r.account.handle, USERNAME);
    assert_eq!(
        r.account.profile_url.as_deref(),
        Some("https://www.tiktok.com/@crier.test")
    );
    let now = crier_core::Clock::now_ms(&r.clock);
    assert_eq!(r.creds().expires_at, Some(now + 86_400_000));
    assert!(r.creds().refresh_token.is_some());
    assert_eq!(
        r.creds().client.as_ref().map(|c| c.client_id.as_str()),
        Some("crier-client")
    );
    // username needs user.info.profile, which crier does not ask for: it was not requested.
    let info = r
        .fake
        .faults()
        .seen()
        .into_iter()
        .find(|s| s.path == "/v2/user/info/")
        .expect("user info read");
    assert!(!info.query.contains("username"), "{}", info.query);
}

#[tokio::test]
async fn a_user_who_unticks_video_publish_is_not_connected() {
    let clock: Arc<dyn crier_core::Clock> = Arc::new(crier_core::SystemClock);
    let fake = TikTokFake::start(clock.clone()).await;
    fake.grant_only("user.info.basic,video.list");
    let err = Grant::new(fake.client())
        .connect(fake.connector(clock).as_ref())
        .await
        .expect_err("no video.publish");
    assert!(
        matches!(&err, NetworkError::Rejected { message } if message.contains("video.publish")),
        "{err:?}"
    );
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token_and_revoke_ends_the_grant() {
    let r = Rig::new().await;
    let fresh = r.net.refresh(r.session()).await.expect("refreshed");
    assert_ne!(fresh.access_token, r.creds().access_token);
    assert_ne!(fresh.refresh_token, r.creds().refresh_token, "rotated");
    assert!(
        fresh.client.is_some(),
        "the client stays for the next refresh"
    );
    // The old refresh token is spent.
    let err = r.net.refresh(r.session()).await.expect_err("spent");
    assert_eq!(err.code(), "account_disconnected", "{err:?}");

    let s = Session {
        account: &r.account,
        credentials: &fresh,
    };
    r.net.revoke(s).await.expect("revoked");
    let steps = MemorySteps::default();
    let err = r
        .net
        .publish(
            s,
            part("x", &small_video().await, &PostOverride::default(), &steps),
        )
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), "account_disconnected", "{err:?}");
}

#[tokio::test]
async fn an_expired_access_token_is_unauthorized_until_refreshed() {
    let r = Rig::new().await;
    r.clock.advance(Duration::from_secs(86_401));
    let steps = MemorySteps::default();
    let media = small_video().await;
    let err = r
        .publish_with("late", &media, &PostOverride::default(), &steps)
        .await
        .expect_err("expired");
    assert_eq!(err.code(), "account_disconnected");
    let fresh = r
        .net
        .refresh(r.session())
        .await
        .expect("the refresh token lives 365 d");
    let s = Session {
        account: &r.account,
        credentials: &fresh,
    };
    r.net
        .publish(s, part("late", &media, &PostOverride::default(), &steps))
        .await
        .expect("published with the fresh token");
}

// ---------------------------------------------------------------------------------------------
// What may be posted
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn text_alone_and_images_are_refused_before_any_call() {
    let r = Rig::new().await;
    let steps = MemorySteps::default();
    let err = r
        .publish_with("just words", &[], &PostOverride::default(), &steps)
        .await
        .expect_err("text alone");
    assert_eq!(err.code(), "network_rejected");
    let mut png = small_video().await;
    png[0].meta.content_type = "image/png".into();
    let err = r
        .publish_with("a photo", &png, &PostOverride::default(), &steps)
        .await
        .expect_err("photo");
    assert_eq!(err.code(), "media_rejected");
    assert_eq!(r.inits(), 0);
    assert!(r.fake.posts().is_empty());
    let rules = r.net.rules();
    assert!(
        rules
            .check(&["a".into(), "b".into()], &[])
            .iter()
            .any(|v| v.rule == "tiktok.thread.unsupported")
    );
}

#[tokio::test]
async fn the_caption_is_counted_in_utf16_units() {
    let r = Rig::new().await;
    let media = small_video().await;
    // 1101 emoji: 1101 code points (within the rules), 2202 UTF-16 units (over TikTok's 2200).
    let caption = "😀".repeat(1101);
    assert!(
        r.net
            .rules()
            .check(std::slice::from_ref(&caption), &[media[0].meta.clone()])
            .is_empty()
    );
    let steps = MemorySteps::default();
    let err = r
        .publish_with(&caption, &media, &PostOverride::default(), &steps)
        .await
        .expect_err("too long for TikTok");
    assert!(
        matches!(&err, NetworkError::Rejected { message } if message.contains("2202 UTF-16")),
        "{err:?}"
    );
    assert_eq!(r.inits(), 0);
    let fits = "😀".repeat(1100);
    r.publish_with(
        &fits,
        &media,
        &PostOverride::default(),
        &MemorySteps::default(),
    )
    .await
    .expect("2200 units fit");
}

#[tokio::test]
async fn creator_info_decides_privacy_duration_and_interactions() {
    let r = Rig::new().await;
    let media = small_video().await;

    // A privacy level the creator is not offered.
    r.fake.set_creator(
        USER,
        creator(|c| {
            c.privacy_level_options = vec!["FOLLOWER_OF_CREATOR".into(), "SELF_ONLY".into()]
        }),
    );
    let err = r
        .publish_with(
            "p",
            &media,
            &options(serde_json::json!({"privacy": "PUBLIC_TO_EVERYONE"})),
            &MemorySteps::default(),
        )
        .await
        .expect_err("not offered");
    assert!(
        matches!(&err, NetworkError::Rejected { message } if message.contains("FOLLOWER_OF_CREATOR, SELF_ONLY")),
        "{err:?}"
    );
    // Longer than this creator may post.
    r.fake
        .set_creator(USER, creator(|c| c.max_video_post_duration_sec = 10));
    let err = r
        .publish_with(
            "d",
            &media,
            &PostOverride::default(),
            &MemorySteps::default(),
        )
        .await
        .expect_err("12 s > 10 s");
    assert!(
        matches!(&err, NetworkError::Rejected { message } if message.contains("up to 10 s")),
        "{err:?}"
    );
    // Comments the creator has turned off cannot be asked for.
    r.fake
        .set_creator(USER, creator(|c| c.comment_disabled = true));
    let err = r
        .publish_with(
            "c",
            &media,
            &options(serde_json::json!({"allow_comments": true})),
            &MemorySteps::default(),
        )
        .await
        .expect_err("comments off");
    assert_eq!(err.code(), "network_rejected");
    assert_eq!(r.inits(), 0, "all refused before video/init");

    // Left unsaid, they follow the creator: comments off, the most public level offered.
    r.publish_with(
        "ok",
        &media,
        &options(serde_json::json!({"allow_duet": false})),
        &MemorySteps::default(),
    )
    .await
    .expect("published");
    let p = r.fake.publishes().pop().unwrap();
    assert!(p.disable_comment);
    assert_eq!(p.privacy, "PUBLIC_TO_EVERYONE");
    let init = r
        .fake
        .faults()
        .seen()
        .into_iter()
        .filter(|s| s.path == INIT)
        .count();
    assert_eq!(init, 1);
}

#[tokio::test]
async fn a_private_post_has_no_public_id_and_is_known_by_its_publish_id() {
    let r = Rig::new().await;
    let media = small_video().await;
    let steps = MemorySteps::default();
    let done = r
        .publish_with(
            "only me",
            &media,
            &options(serde_json::json!({"privacy": "SELF_ONLY"})),
            &steps,
        )
        .await
        .expect("published");
    assert!(done.external_id.starts_with("v_pub_file~"), "{done:?}");
    assert_eq!(done.url, "https://www.tiktok.com/@crier.test");
    assert_eq!(r.fake.posts()[0].id, done.external_id);
    let err = r
        .net
        .metrics(r.session(), &done.external_id)
        .await
        .expect_err("no metrics without a public id");
    assert_eq!(err.code(), "network_rejected");
    let found = r
        .lookup_with("only me", &media, &PostOverride::default(), &steps)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.external_id, done.external_id);
}

// ---------------------------------------------------------------------------------------------
// Uploads
// ---------------------------------------------------------------------------------------------

#[test]
fn chunks_follow_the_media_transfer_guide() {
    const MIB: u64 = 1024 * 1024;
    assert_eq!(tiktok::chunking(1).unwrap(), (1, 1), "under 5 MB: whole");
    assert_eq!(tiktok::chunking(64 * MIB).unwrap(), (64 * MIB, 1));
    assert_eq!(tiktok::chunking(64 * MIB + 1).unwrap(), (16 * MIB, 4));
    // 4 GB: 256 chunks, the last one 16 MiB.
    assert_eq!(tiktok::chunking(4096 * MIB).unwrap(), (16 * MIB, 256));
    // The final chunk takes the trailing bytes: below 32 MiB, well under 128 MB.
    let (c, n) = tiktok::chunking(100 * MIB + 123).unwrap();
    assert_eq!((c, n), (16 * MIB, 6));
    assert!(100 * MIB + 123 - (n - 1) * c < 32 * MIB);
    assert!(tiktok::chunking(0).is_err());
}

#[tokio::test]
async fn a_large_video_goes_in_ordered_chunks_with_content_range() {
    let r = Rig::new().await;
    let size = 70 * 1024 * 1024 + 5;
    let media = vec![video_of(kit::mp4(size - 24), 30_000).await];
    let done = r
        .publish_with(
            "big",
            &media,
            &PostOverride::default(),
            &MemorySteps::default(),
        )
        .await
        .expect("published");
    let ranges: Vec<String> = r
        .fake
        .faults()
        .seen()
        .into_iter()
        .filter(|s| s.path == "/upload/")
        .map(|s| s.headers["content-range"].to_str().unwrap().to_owned())
        .collect();
    let total = size;
    let c = 16 * 1024 * 1024;
    assert_eq!(
        ranges,
        vec![
            format!("bytes 0-{}/{total}", c - 1),
            format!("bytes {c}-{}/{total}", 2 * c - 1),
            format!("bytes {}-{}/{total}", 2 * c, 3 * c - 1),
            format!("bytes {}-{}/{total}", 3 * c, total - 1),
        ]
    );
    assert_eq!(r.fake.posts()[0].id, done.external_id);
    assert!(
        done.url
            .ends_with(&format!("/@crier.test/video/{}", done.external_id))
    );
}

#[tokio::test]
async fn bytes_that_are_not_a_video_fail_and_are_forgotten() {
    let r = Rig::new().await;
    let mut media = small_video().await;
    media[0].bytes = bytes::Bytes::from(vec![7u8; 1000]);
    let steps = MemorySteps::default();
    let err = r
        .publish_with("junk", &media, &PostOverride::default(), &steps)
        .await
        .expect_err("file_format_check_failed");
    assert!(
        matches!(&err, NetworkError::MediaRejected { message } if message.contains("file_format_check_failed")),
        "{err:?}"
    );
    assert_eq!(steps.get("publish_id").await.unwrap().as_deref(), Some(""));
    assert_eq!(
        r.lookup_with("junk", &media, &PostOverride::default(), &steps)
            .await
            .unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// Exactly once
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_upload_cut_short_resumes_into_the_same_publish_id() {
    let r = Rig::new().await;
    let media = small_video().await;
    let steps = MemorySteps::default();
    r.fake.faults().push(Fault::status(
        "PUT",
        "/upload/",
        503,
        serde_json::Value::Null,
    ));
    let err = r
        .publish_with("resume me", &media, &PostOverride::default(), &steps)
        .await
        .expect_err("the upload failed");
    assert_eq!(err.code(), "network_unavailable");
    let kept = steps.snapshot();
    assert!(kept["publish_id"].starts_with("v_pub_file~"), "{kept:?}");
    assert!(
        kept["upload_url"].contains("/upload/"),
        "kept before the upload"
    );
    assert!(kept.contains_key("sent_at"));
    // TikTok is waiting for our bytes: not published, and publishing again resumes.
    assert_eq!(
        r.lookup_with("resume me", &media, &PostOverride::default(), &steps)
            .await
            .unwrap(),
        None
    );
    let done = r
        .publish_with("resume me", &media, &PostOverride::default(), &steps)
        .await
        .expect("resumed");
    assert_eq!(r.inits(), 1, "never initialised again");
    assert_eq!(r.fake.posts().len(), 1);
    assert_eq!(r.fake.posts()[0].id, done.external_id);
}

#[tokio::test]
async fn a_lost_last_chunk_answer_is_not_sent_again() {
    let r = Rig::new().await;
    let media = small_video().await;
    let steps = MemorySteps::default();
    r.fake.faults().push(Fault::lose("PUT", "/upload/"));
    let err = r
        .publish_with("lost", &media, &PostOverride::default(), &steps)
        .await
        .expect_err("no answer");
    assert_eq!(err, NetworkError::Timeout);
    let done = r
        .publish_with("lost", &media, &PostOverride::default(), &steps)
        .await
        .expect("resumed: TikTok had every byte");
    assert_eq!(
        r.fake.faults().count("PUT", "/upload/"),
        1,
        "the chunk went once"
    );
    assert_eq!(r.inits(), 1);
    assert_eq!(r.fake.posts()[0].id, done.external_id);
}

#[tokio::test]
async fn sent_at_keeps_the_first_attempts_time() {
    let r = Rig::new().await;
    let media = small_video().await;
    let steps = MemorySteps::default();
    r.fake.faults().push(Fault::hang("POST", INIT));
    let err = r
        .publish_with("twice", &media, &PostOverride::default(), &steps)
        .await
        .expect_err("timeout");
    assert_eq!(err, NetworkError::Timeout);
    let first = steps.snapshot()["sent_at"].clone();
    r.clock.advance(Duration::from_secs(3600));
    r.publish_with("twice", &media, &PostOverride::default(), &steps)
        .await
        .expect("published on the retry");
    assert_eq!(
        steps.snapshot()["sent_at"],
        first,
        "a later look-up's window starts at the first attempt"
    );
}

#[tokio::test]
async fn still_processing_is_an_error_for_lookup_and_the_retry_resumes_polling() {
    let r = Rig::new().await;
    r.fake.set_processing_polls(10_000);
    let media = small_video().await;
    let steps = MemorySteps::default();
    let err = r
        .publish_with("slow", &media, &PostOverride::default(), &steps)
        .await
        .expect_err("still processing after poll_max");
    assert!(matches!(err, NetworkError::Unavailable { .. }), "{err:?}");
    let err = r
        .lookup_with("slow", &media, &PostOverride::default(), &steps)
        .await
        .expect_err("cannot tell yet: never None");
    assert!(err.is_transient(), "{err:?}");
    r.fake.finish_processing();
    let found = r
        .lookup_with("slow", &media, &PostOverride::default(), &steps)
        .await
        .unwrap()
        .expect("published now");
    assert_eq!(r.inits(), 1);
    assert_eq!(r.fake.posts()[0].id, found.external_id);
    // And a publish call after it answers the same post, without a new init.
    let again = r
        .publish_with("slow", &media, &PostOverride::default(), &steps)
        .await
        .unwrap();
    assert_eq!(again.external_id, found.external_id);
    assert_eq!(r.inits(), 1);
}

#[tokio::test]
async fn a_failed_publish_found_by_lookup_is_cleared_for_a_fresh_init() {
    let r = Rig::new().await;
    let media = small_video().await;
    let mut junk = media.clone();
    junk[0].bytes = bytes::Bytes::from(vec![1u8; 500]);
    let _ = r
        .publish_with(
            "x",
            &junk,
            &PostOverride::default(),
            &MemorySteps::default(),
        )
        .await;
    let failed = r.fake.publishes().pop().unwrap();
    assert_eq!(failed.status, "FAILED");
    // An attempt that kept this publish id and crashed before hearing it failed.
    let steps = MemorySteps::default();
    steps.put("publish_id", &failed.id).await.unwrap();
    steps.put("uploaded", "1").await.unwrap();
    assert_eq!(
        r.lookup_with("x", &media, &PostOverride::default(), &steps)
            .await
            .unwrap(),
        None
    );
    assert_eq!(steps.get("publish_id").await.unwrap().as_deref(), Some(""));
    r.publish_with("x", &media, &PostOverride::default(), &steps)
        .await
        .expect("a fresh init");
    assert_eq!(r.inits(), 2);
}

#[tokio::test]
async fn nothing_kept_means_nothing_was_initialised() {
    let r = Rig::new().await;
    let media = small_video().await;
    r.fake.faults().push(Fault::hang("POST", INIT));
    let steps = MemorySteps::default();
    let err = r
        .publish_with("hang", &media, &PostOverride::default(), &steps)
        .await
        .expect_err("timeout");
    assert_eq!(err, NetworkError::Timeout);
    assert_eq!(
        r.lookup_with("hang", &media, &PostOverride::default(), &steps)
            .await
            .unwrap(),
        None,
        "a FILE_UPLOAD init without our bytes can never become a post"
    );
}

// ---------------------------------------------------------------------------------------------
// PULL_FROM_URL
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn pull_from_url_needs_a_verified_prefix_and_is_really_fetched() {
    let r = Rig::new().await;
    let media = small_video().await;
    let pull = options(serde_json::json!({"source": "pull"}));
    let err = r
        .publish_with("pulled", &media, &pull, &MemorySteps::default())
        .await
        .expect_err("unverified");
    assert_eq!(err.code(), "media_rejected", "{err:?}");

    let prefix = media[0].url.split("/media/").next().unwrap().to_owned();
    r.fake.verify_url_prefix(&prefix);
    let done = r
        .publish_with("pulled", &media, &pull, &MemorySteps::default())
        .await
        .expect("pulled and published");
    let p = r.fake.publishes().pop().unwrap();
    assert!(p.pull && p.id.starts_with("v_pub_url~"));
    assert_eq!(
        p.video_size,
        media[0].bytes.len() as u64,
        "the fake fetched it"
    );
    assert_eq!(r.fake.posts()[0].id, done.external_id);

    // A URL that does not answer fails at TikTok (video_pull_failed).
    let mut gone = media.clone();
    gone[0].url = format!("{prefix}/media/missing");
    let err = r
        .publish_with("gone", &gone, &pull, &MemorySteps::default())
        .await
        .expect_err("pull failed");
    assert!(
        matches!(&err, NetworkError::MediaRejected { message } if message.contains("video_pull_failed")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_lost_pull_init_answer_is_found_in_the_accounts_videos() {
    let r = Rig::new().await;
    r.fake.set_processing_polls(0);
    let media = small_video().await;
    let prefix = media[0].url.split("/media/").next().unwrap().to_owned();
    r.fake.verify_url_prefix(&prefix);
    let pull = options(serde_json::json!({"source": "pull"}));
    let steps = MemorySteps::default();
    r.fake.faults().push(Fault::lose("POST", INIT));
    let err = r
        .publish_with("pulled once", &media, &pull, &steps)
        .await
        .expect_err("answer lost");
    assert_eq!(err, NetworkError::Timeout);
    assert_eq!(steps.get("publish_id").await.unwrap(), None);
    let found = r
        .lookup_with("pulled once", &media, &pull, &steps)
        .await
        .unwrap()
        .expect("found by caption since sent_at");
    assert_eq!(r.fake.posts().len(), 1);
    assert_eq!(r.fake.posts()[0].id, found.external_id);
}

#[tokio::test]
async fn a_lost_pull_init_answer_not_yet_listed_is_an_error_never_none() {
    let r = Rig::new().await;
    let media = small_video().await;
    let prefix = media[0].url.split("/media/").next().unwrap().to_owned();
    r.fake.verify_url_prefix(&prefix);
    // Private: the video list (public, processed videos only) never shows it.
    let pull = options(serde_json::json!({"source": "pull", "privacy": "SELF_ONLY"}));
    let steps = MemorySteps::default();
    r.fake.faults().push(Fault::lose("POST", INIT));
    let err = r
        .publish_with("pulled privately", &media, &pull, &steps)
        .await
        .expect_err("answer lost");
    assert_eq!(err, NetworkError::Timeout);
    assert_eq!(r.fake.publishes().len(), 1, "the init landed");
    let err = r
        .lookup_with("pulled privately", &media, &pull, &steps)
        .await
        .expect_err("a miss in the list cannot prove it was not posted");
    assert!(matches!(err, NetworkError::Unavailable { .. }), "{err:?}");
    assert_eq!(r.inits(), 1, "never initialised again");
}

#[tokio::test]
async fn a_refused_pull_init_is_not_looked_for() {
    let r = Rig::new().await;
    let media = small_video().await;
    let prefix = media[0].url.split("/media/").next().unwrap().to_owned();
    r.fake.verify_url_prefix(&prefix);
    let pull = options(serde_json::json!({"source": "pull"}));
    let steps = MemorySteps::default();
    r.fake.faults().push(Fault::status(
        "POST",
        INIT,
        429,
        serde_json::json!({"error": {"code": "rate_limit_exceeded", "message": "slow down", "log_id": "l"}}),
    ));
    let err = r
        .publish_with("refused", &media, &pull, &steps)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), "network_rate_limited", "{err:?}");
    assert_eq!(
        r.lookup_with("refused", &media, &pull, &steps)
            .await
            .unwrap(),
        None,
        "TikTok refused the init: nothing can have been posted"
    );
}

// ---------------------------------------------------------------------------------------------
// Limits and errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn six_inits_a_minute_then_a_minute_to_wait() {
    let r = Rig::new().await;
    let media = small_video().await;
    for n in 0..6 {
        r.publish_with(
            &format!("n{n}"),
            &media,
            &PostOverride::default(),
            &MemorySteps::default(),
        )
        .await
        .expect("within the limit");
    }
    let err = r
        .publish_with(
            "n6",
            &media,
            &PostOverride::default(),
            &MemorySteps::default(),
        )
        .await
        .expect_err("the seventh in a minute");
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(RATE_WINDOW)
        },
        "no reset header: the sliding minute is the fallback"
    );
    r.clock.advance(RATE_WINDOW + Duration::from_secs(1));
    r.publish_with(
        "n6",
        &media,
        &PostOverride::default(),
        &MemorySteps::default(),
    )
    .await
    .expect("a minute later");
}

#[tokio::test]
async fn the_daily_cap_waits_an_hour() {
    let r = Rig::new().await;
    r.fake.set_daily_cap(1);
    let media = small_video().await;
    r.publish_with(
        "one",
        &media,
        &PostOverride::default(),
        &MemorySteps::default(),
    )
    .await
    .unwrap();
    let err = r
        .publish_with(
            "two",
            &media,
            &PostOverride::default(),
            &MemorySteps::default(),
        )
        .await
        .expect_err("daily cap");
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(DAILY_CAP_RETRY)
        }
    );
}

#[tokio::test]
async fn the_fakes_documented_errors_each_map_to_our_code() {
    let r = Rig::new().await;
    let media = small_video().await;
    for (fault, code) in r.fake.documented_errors() {
        let what = format!("{fault:?}");
        r.fake.faults().clear();
        r.fake.faults().push(fault);
        let err = r
            .publish_with(
                "e",
                &media,
                &PostOverride::default(),
                &MemorySteps::default(),
            )
            .await
            .expect_err(&what);
        assert_eq!(err.code(), code, "{what} → {err:?}");
        if code == "network_rate_limited" {
            assert!(
                matches!(
                    err,
                    NetworkError::RateLimited {
                        retry_after: Some(_)
                    }
                ),
                "a fallback pause: {err:?}"
            );
        }
    }
}

#[tokio::test]
async fn metrics_are_the_videos_counts() {
    let r = Rig::new().await;
    let media = small_video().await;
    let done = r
        .publish_with(
            "count",
            &media,
            &PostOverride::default(),
            &MemorySteps::default(),
        )
        .await
        .unwrap();
    r.fake.like(&done.external_id, 3);
    let m = r.net.metrics(r.session(), &done.external_id).await.unwrap();
    assert_eq!((m.likes, m.replies, m.reposts, m.impressions), (3, 0, 0, 0));
    let err = r
        .net
        .metrics(r.session(), "7000000000000000001")
        .await
        .expect_err("not this account's video");
    assert_eq!(err.code(), "network_rejected");
}
