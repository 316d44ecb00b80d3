//! The YouTube connector against its fake (`crier-fakes/src/youtube.rs`): Google's OAuth
//! quirks (offline consent, refresh tokens that are not rotated), the channel as the account,
//! the resumable upload in 256 KiB chunks following Google's `Range`, every exactly-once path
//! through the part's steps (a crash mid-upload, a lost last answer, a lost session answer, an
//! expired session), the project quota reset at midnight Pacific Time, the options and rules,
//! metrics, and the documented errors.

#[path = "support/hosted.rs"]
mod hosted;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use crier_core::Clock;
use crier_core::clock::ManualClock;
use crier_fakes::youtube::{CHUNK_UNIT, YouTubeFake};
use crier_fakes::{FakeNetwork, Fault, kit};
use crier_networks::hosted::HostedConfig;
use crier_networks::youtube::{self, Quota, YouTube, default_title};
use crier_networks::{
    Attachment, Authorize, MediaMeta, MemorySteps, Network, NetworkError, OAuthClient, Part,
    Session, Steps,
};
use crier_store::PostOverride;
use hosted::{Grant, options, part_with as part};
use sha2::Digest as _;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const UPLOAD: &str = "/upload/youtube/v3/videos";

type Rig = hosted::SignedIn<YouTubeFake, YouTube>;

impl hosted::Connector for YouTube {
    fn network(&self) -> &dyn Network {
        self
    }
}

fn client() -> OAuthClient {
    OAuthClient {
        client_id: "crier-client".into(),
        client_secret: Some("crier-secret".into()),
    }
}

fn connector(fake: &YouTubeFake, clock: &ManualClock, timeout: Duration) -> YouTube {
    YouTube::new(
        HostedConfig {
            base: Some(fake.base()),
            timeout,
            poll_interval: Duration::from_millis(20),
            poll_max: Duration::from_millis(500),
            ..Default::default()
        },
        Arc::new(clock.clone()),
    )
}

fn start_at() -> jiff::Timestamp {
    // 09:00 UTC in December: 01:00 Pacific Standard Time; the quota resets at 08:00 UTC.
    "2026-12-02T09:00:00Z".parse().unwrap()
}

impl Rig {
    async fn new() -> Self {
        Self::with(|yt| yt).await
    }

    /// A fake and a connected channel; `tune` adjusts the connector (chunk size, quota).
    async fn with(tune: impl FnOnce(YouTube) -> YouTube) -> Self {
        let rig = hosted::Rig::start_with(start_at(), YouTubeFake::start, |fake, clock| {
            tune(connector(fake, clock, Duration::from_millis(800)))
        })
        .await;
        let connected = connect(&rig.net).await.expect("connected");
        rig.signed_in("youtube", connected)
    }

    /// The `Content-Range` of every PUT to the upload session, in order.
    fn ranges(&self) -> Vec<String> {
        self.fake
            .faults()
            .seen()
            .into_iter()
            .filter(|s| s.method == "PUT" && s.path == UPLOAD)
            .map(|s| {
                s.headers
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }
}

async fn connect(yt: &YouTube) -> Result<crier_networks::Connected, NetworkError> {
    let verifier = "a-verifier-of-enough-length-for-pkce-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    Grant {
        redirect_uri: REDIRECT,
        ..Grant::new(client())
    }
    .pkce(Some(&challenge), Some(verifier))
    .connect(yt)
    .await
}

fn video(len: usize, w: u32, h: u32, duration_ms: u64) -> Attachment {
    let bytes = kit::mp4(len);
    Attachment {
        meta: MediaMeta {
            id: "med_1".into(),
            content_type: "video/mp4".into(),
            size: bytes.len() as u64,
            width: Some(w),
            height: Some(h),
            duration_ms: Some(duration_ms),
            alt_text: None,
            filename: "launch.mp4".into(),
        },
        bytes: bytes.into(),
        url: String::new(),
    }
}

fn vertical(len: usize) -> Vec<Attachment> {
    vec![video(len, 1080, 1920, 30_000)]
}

fn none() -> PostOverride {
    PostOverride::default()
}

// ---------------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connecting_asks_offline_consent_with_pkce_and_names_the_channel() {
    let r = Rig::new().await;
    let c = client();
    let url = r
        .net
        .authorize_url(&Authorize {
            client: &c,
            instance: None,
            redirect_uri: REDIRECT,
            state: "st",
            code_challenge: Some("ch"),
        })
        .unwrap();
    assert_eq!(url.path(), "/o/oauth2/v2/auth");
    let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["scope"],
        "https://www.googleapis.com/auth/youtube.upload https://www.googleapis.com/auth/youtube.readonly"
    );

    let channel = r.fake.channel("user-1").unwrap();
    assert_eq!(r.account.external_id, channel.id);
    assert!(channel.id.starts_with("UC"));
    assert_eq!(r.account.handle, "@user1", "the customUrl is the handle");
    assert!(
        r.creds().refresh_token.is_some(),
        "offline access gives a refresh token"
    );
    assert_eq!(
        r.creds().expires_at,
        Some(r.clock.now_ms() + 3_599_000),
        "Google's access tokens live 3599 s"
    );
    assert_eq!(
        r.creds().client.as_ref(),
        Some(&c),
        "the client is kept for refresh"
    );
    let connected = connect(&r.net).await.unwrap();
    assert_eq!(
        connected.profile_url.as_deref(),
        Some(format!("https://www.youtube.com/channel/{}", channel.id).as_str())
    );
    assert!(connected.avatar_url.is_some());
}

#[tokio::test]
async fn a_google_account_without_a_channel_is_refused() {
    let r = Rig::new().await;
    r.fake.set_user("user-2", false);
    let err = connect(&r.net).await.expect_err("no channel, no account");
    assert_eq!(err.code(), "network_rejected", "{err:?}");
    assert!(err.to_string().contains("youtubeSignupRequired"), "{err}");
}

#[tokio::test]
async fn refresh_keeps_the_refresh_token_which_goes_on_working_and_revoke_ends_it() {
    let r = Rig::new().await;
    let session = r.session();
    let once = r.net.refresh(session).await.expect("a refresh");
    assert_ne!(once.access_token, r.creds().access_token);
    assert_eq!(
        once.refresh_token,
        r.creds().refresh_token,
        "Google does not rotate it"
    );
    let twice = r
        .net
        .refresh(Session {
            account: &r.account,
            credentials: &once,
        })
        .await
        .expect("the same refresh token works again");
    assert_eq!(twice.refresh_token, r.creds().refresh_token);
    assert_eq!(twice.client, once.client);

    r.net.revoke(session).await.expect("revoked");
    let err = r.net.refresh(session).await.expect_err("the grant is gone");
    assert_eq!(err.code(), "account_disconnected", "{err:?}");
    let steps = MemorySteps::default();
    let err = r
        .net
        .publish(
            Session {
                account: &r.account,
                credentials: &twice,
            },
            part("x", &vertical(10), &none(), &steps),
        )
        .await
        .expect_err("revoked tokens publish nothing");
    assert_eq!(err.code(), "account_disconnected");
}

// ---------------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_video_goes_up_in_256_kib_chunks_with_its_title_privacy_tags_and_category() {
    let r = Rig::with(|yt| yt.with_chunk_size(CHUNK_UNIT as usize)).await;
    let media = vertical(700_000);
    let total = media[0].bytes.len();
    let opts = options(serde_json::json!({
        "title": "Launch day", "privacy": "unlisted", "tags": ["crier", "launch day"],
        "made_for_kids": false, "category_id": "28"
    }));
    let steps = MemorySteps::default();
    let done = r
        .publish_with("Everything we shipped.\nMore below.", &media, &opts, &steps)
        .await
        .expect("published");
    assert_eq!(
        done.url,
        format!("https://www.youtube.com/watch?v={}", done.external_id)
    );
    let v = &r.fake.videos()[0];
    assert_eq!(v.id, done.external_id);
    assert_eq!(v.title, "Launch day");
    assert_eq!(v.description, "Everything we shipped.\nMore below.");
    assert_eq!(v.privacy, "unlisted");
    assert_eq!(v.tags, vec!["crier", "launch day"]);
    assert_eq!(v.category_id, "28");
    assert_eq!(v.size as usize, total);
    assert_eq!(v.upload_status, "uploaded");
    let unit = CHUNK_UNIT as usize;
    assert_eq!(
        r.ranges(),
        vec![
            format!("bytes 0-{}/{total}", unit - 1),
            format!("bytes {unit}-{}/{total}", 2 * unit - 1),
            format!("bytes {}-{}/{total}", 2 * unit, total - 1),
        ],
        "chunks are multiples of 256 KiB but the last"
    );
    let kept = steps.snapshot();
    assert!(kept["session"].contains("upload_id="), "{kept:?}");
    assert_eq!(kept["video"], done.external_id);
    assert!(kept.contains_key("sent_at"));
}

#[tokio::test]
async fn the_title_defaults_to_the_first_line_and_shorts_get_a_shorts_link() {
    let r = Rig::new().await;
    let steps = MemorySteps::default();
    let done = r
        .publish_with(
            "\n  Behind the scenes #Shorts\nsecond line",
            &vertical(1000),
            &none(),
            &steps,
        )
        .await
        .unwrap();
    assert_eq!(
        done.url,
        format!("https://www.youtube.com/shorts/{}", done.external_id)
    );
    assert_eq!(r.fake.videos()[0].title, "Behind the scenes #Shorts");
    assert_eq!(r.fake.videos()[0].privacy, "public", "public by default");

    // Landscape or longer than three minutes: not a Short, whatever the tag says.
    let wide = vec![video(1000, 1920, 1080, 30_000)];
    let steps = MemorySteps::default();
    let done = r
        .publish_with("Wide #shorts", &wide, &none(), &steps)
        .await
        .unwrap();
    assert!(done.url.contains("/watch?v="), "{}", done.url);

    assert_eq!(
        default_title(&"é".repeat(150), "f.mp4").chars().count(),
        100
    );
    assert_eq!(default_title("  <b>bold</b> ", "f.mp4"), "bbold/b");
    assert_eq!(default_title("", "holiday.mov"), "holiday");
    assert_eq!(default_title(" \n ", ""), "Video");
}

#[tokio::test]
async fn what_youtube_refuses_is_refused_before_any_call() {
    let r = Rig::new().await;
    let steps = MemorySteps::default();
    let err = r
        .publish_with("Text alone", &[], &none(), &steps)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected");
    let mut image = video(100, 10, 10, 0);
    image.meta.content_type = "image/png".into();
    let err = r
        .publish_with("A picture", &[image], &none(), &steps)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "media_rejected");
    let two = [vertical(10), vertical(10)].concat();
    assert_eq!(
        r.publish_with("x", &two, &none(), &steps)
            .await
            .unwrap_err()
            .code(),
        "media_rejected"
    );
    for (opts, text) in [
        (options(serde_json::json!({"title": "a <b> title"})), "ok"),
        (options(serde_json::json!({"title": "t".repeat(101)})), "ok"),
        (options(serde_json::json!({"privacy": "friends"})), "ok"),
        (
            options(serde_json::json!({"tags": ["x".repeat(250), "y".repeat(251)]})),
            "ok",
        ),
        (options(serde_json::json!({"category_id": "music"})), "ok"),
        (none(), "a description with <html>"),
        (none(), &*"d".repeat(5001)),
    ] {
        let err = r
            .publish_with(text, &vertical(10), &opts, &steps)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "network_rejected", "{opts:?} {err:?}");
    }
    let thread = ["root".to_owned()];
    let err = r
        .net
        .publish(
            r.session(),
            Part {
                thread: &thread,
                ..part("reply", &vertical(10), &none(), &steps)
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected");
    assert_eq!(r.fake.faults().count("POST", UPLOAD), 0, "nothing was sent");
    assert!(steps.snapshot().is_empty());
}

#[tokio::test]
async fn the_rules_name_youtubes_limits_and_options() {
    let r = Rig::new().await;
    let rules = r.net.rules();
    let meta = |ty: &str| MediaMeta {
        id: "m".into(),
        content_type: ty.into(),
        size: 10,
        width: Some(1080),
        height: Some(1920),
        duration_ms: Some(1000),
        alt_text: None,
        filename: "f".into(),
    };
    let ids = |v: Vec<crier_networks::Violation>| v.into_iter().map(|v| v.rule).collect::<Vec<_>>();
    assert!(rules.check(&["".into()], &[meta("video/mp4")]).is_empty());
    assert!(
        rules
            .check(&["x".into()], &[meta("video/quicktime")])
            .is_empty()
    );
    assert!(rules.check(&["x".into()], &[meta("video/webm")]).is_empty());
    assert_eq!(
        ids(rules.check(&["x".into()], &[meta("image/png")])),
        ["youtube.media.type"]
    );
    assert_eq!(
        ids(rules.check(&["x".into(), "y".into()], &[meta("video/mp4")])),
        ["youtube.thread.unsupported"]
    );
    let mut long = meta("video/mp4");
    long.duration_ms = Some(12 * 3600 * 1000 + 1);
    assert_eq!(
        ids(rules.check(&["x".into()], &[long])),
        ["youtube.media.max_video_duration"]
    );
    let opts: BTreeMap<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "title": "t".repeat(101), "privacy": "friends", "tags": vec!["a".repeat(100); 6],
        "made_for_kids": "no", "colour": 1
    }))
    .unwrap();
    assert_eq!(
        ids(rules.check_options(&opts)),
        [
            "youtube.options.unknown",
            "youtube.options.made_for_kids",
            "youtube.options.privacy",
            "youtube.options.tags",
            "youtube.options.title"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Exactly once
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_crash_mid_upload_resumes_the_same_session_from_googles_range() {
    let r = Rig::with(|yt| yt.with_chunk_size(CHUNK_UNIT as usize)).await;
    let media = vertical(700_000);
    let total = media[0].bytes.len();
    let unit = CHUNK_UNIT as usize;
    // The first chunk lands, its answer is lost: the attempt times out.
    r.fake.faults().push(Fault::lose("PUT", UPLOAD));
    let steps = MemorySteps::default();
    let err = r
        .publish_with("Resume me", &media, &none(), &steps)
        .await
        .unwrap_err();
    assert_eq!(err, NetworkError::Timeout);
    assert_eq!(r.fake.sessions(), vec![(unit as u64, total as u64)]);
    assert_eq!(
        r.lookup_with("Resume me", &media, &none(), &steps)
            .await
            .unwrap(),
        None,
        "no video yet"
    );
    let done = r
        .publish_with("Resume me", &media, &none(), &steps)
        .await
        .expect("resumed");
    assert_eq!(r.fake.videos().len(), 1);
    assert_eq!(r.fake.videos()[0].id, done.external_id);
    assert_eq!(
        r.fake.faults().count("POST", UPLOAD),
        1,
        "one session, never a second"
    );
    assert_eq!(
        r.ranges(),
        vec![
            format!("bytes 0-{}/{total}", unit - 1),
            format!("bytes */{total}"),
            format!("bytes */{total}"),
            format!("bytes {unit}-{}/{total}", 2 * unit - 1),
            format!("bytes {}-{}/{total}", 2 * unit, total - 1),
        ],
        "the status is asked, then only the missing bytes go"
    );
}

#[tokio::test]
async fn a_lost_last_answer_is_the_video_exactly_once() {
    let r = Rig::new().await;
    let media = vertical(300_000);
    r.fake.faults().push(Fault::lose("PUT", UPLOAD));
    let steps = MemorySteps::default();
    let err = r
        .publish_with("Lost", &media, &none(), &steps)
        .await
        .unwrap_err();
    assert_eq!(err, NetworkError::Timeout);
    let id = r.fake.videos()[0].id.clone();
    assert!(
        !steps.snapshot().contains_key("video"),
        "the answer never came"
    );
    let found = r
        .lookup_with("Lost", &media, &none(), &steps)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.external_id, id);
    let again = r
        .publish_with("Lost", &media, &none(), &steps)
        .await
        .unwrap();
    assert_eq!(again.external_id, id);
    assert_eq!(r.fake.videos().len(), 1, "exactly one video");
}

#[tokio::test]
async fn no_session_kept_means_nothing_was_sent() {
    let r = Rig::new().await;
    let media = vertical(1000);
    let steps = MemorySteps::default();
    assert_eq!(
        r.lookup_with("Fresh", &media, &none(), &steps)
            .await
            .unwrap(),
        None
    );
    assert!(r.fake.faults().seen().iter().all(|s| s.path != UPLOAD));
    // The session's answer is lost: Google has a session, but no byte was sent to it.
    r.fake.faults().push(Fault::lose("POST", UPLOAD));
    let err = r
        .publish_with("Fresh", &media, &none(), &steps)
        .await
        .unwrap_err();
    assert_eq!(err, NetworkError::Timeout);
    assert!(!steps.snapshot().contains_key("session"));
    assert_eq!(
        r.lookup_with("Fresh", &media, &none(), &steps)
            .await
            .unwrap(),
        None
    );
    r.publish_with("Fresh", &media, &none(), &steps)
        .await
        .expect("a new session");
    assert_eq!(r.fake.videos().len(), 1);
    assert_eq!(r.fake.sessions().len(), 2, "the first session stays empty");
}

#[tokio::test]
async fn an_expired_session_is_looked_up_in_the_uploads_playlist() {
    let r = Rig::new().await;
    let media = vertical(1000);
    r.fake.faults().push(Fault::lose("PUT", UPLOAD));
    let steps = MemorySteps::default();
    r.publish_with("Expired but done", &media, &none(), &steps)
        .await
        .unwrap_err();
    let id = r.fake.videos()[0].id.clone();
    r.fake.expire_sessions();
    let found = r
        .lookup_with("Expired but done", &media, &none(), &steps)
        .await
        .unwrap()
        .expect("found in the uploads playlist");
    assert_eq!(found.external_id, id);
    assert_eq!(r.fake.faults().count("GET", "/youtube/v3/playlistItems"), 1);

    // A session that expired before its last byte: no video; a new session publishes once.
    let r = Rig::with(|yt| yt.with_chunk_size(CHUNK_UNIT as usize)).await;
    let media = vertical(600_000);
    r.fake.faults().push(Fault::lose("PUT", UPLOAD));
    let steps = MemorySteps::default();
    r.publish_with("Expired early", &media, &none(), &steps)
        .await
        .unwrap_err();
    r.fake.expire_sessions();
    assert_eq!(
        r.lookup_with("Expired early", &media, &none(), &steps)
            .await
            .unwrap(),
        None
    );
    r.publish_with("Expired early", &media, &none(), &steps)
        .await
        .unwrap();
    assert_eq!(r.fake.videos().len(), 1);
    assert_eq!(r.fake.faults().count("POST", UPLOAD), 2);
}

#[tokio::test]
async fn an_uploads_page_that_does_not_reach_back_or_no_sent_at_is_cannot_tell() {
    let r = Rig::new().await;
    let media = vertical(1000);
    // Uploaded once, half an hour ago, with the same text.
    r.publish_with("Same words", &media, &none(), &MemorySteps::default())
        .await
        .unwrap();
    r.clock.advance(Duration::from_secs(1800));
    // An attempt whose bytes never arrived, and whose session then expired.
    r.fake.faults().push(Fault::hang("PUT", UPLOAD));
    let steps = MemorySteps::default();
    r.publish_with("Same words", &media, &none(), &steps)
        .await
        .unwrap_err();
    r.fake.expire_sessions();
    assert_eq!(r.fake.videos().len(), 1);

    // The latest 50 uploads are all newer than the attempt: older ones are unread.
    let now = jiff::Timestamp::from_millisecond(r.clock.now_ms()).unwrap();
    let items: Vec<serde_json::Value> = (0..50)
        .map(|i| {
            serde_json::json!({"snippet": {"publishedAt": now.to_string(),
                "title": format!("Other {i}"), "description": "",
                "resourceId": {"videoId": format!("other{i}")}}})
        })
        .collect();
    r.fake.faults().push(Fault::status(
        "GET",
        "/youtube/v3/playlistItems",
        200,
        serde_json::json!({"kind": "youtube#playlistItemListResponse", "items": items}),
    ));
    let err = r
        .lookup_with("Same words", &media, &none(), &steps)
        .await
        .expect_err("the page does not reach back to the attempt");
    assert_eq!(err.code(), "network_unavailable", "{err:?}");
    // The whole playlist read (one old upload): certainly not there.
    assert_eq!(
        r.lookup_with("Same words", &media, &none(), &steps)
            .await
            .unwrap(),
        None
    );

    // No send time kept: the old upload of the same text is not taken for this part.
    let bare = MemorySteps::default();
    for (k, v) in steps.snapshot() {
        if k != "sent_at" {
            bare.put(&k, &v).await.unwrap();
        }
    }
    let err = r
        .lookup_with("Same words", &media, &none(), &bare)
        .await
        .expect_err("no window to search");
    assert_eq!(err.code(), "network_unavailable", "{err:?}");
}

#[tokio::test]
async fn an_outage_mid_upload_is_unavailable_and_the_retry_resumes() {
    let r = Rig::with(|yt| yt.with_chunk_size(CHUNK_UNIT as usize)).await;
    let media = vertical(600_000);
    let body = serde_json::json!({"error": {"code": 503, "message": "Backend Error",
        "errors": [{"reason": "backendError", "domain": "global", "message": "Backend Error"}]}});
    r.fake
        .faults()
        .push(Fault::status("PUT", UPLOAD, 503, body).header("Retry-After", "7"));
    let steps = MemorySteps::default();
    let err = r
        .publish_with("Outage", &media, &none(), &steps)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        NetworkError::Unavailable {
            message: "youtube: 503 backendError: Backend Error".into(),
            retry_after: Some(Duration::from_secs(7)),
        }
    );
    r.publish_with("Outage", &media, &none(), &steps)
        .await
        .unwrap();
    assert_eq!(r.fake.videos().len(), 1);
    assert_eq!(r.fake.faults().count("POST", UPLOAD), 1);
}

// ---------------------------------------------------------------------------------------------
// Quota, errors, metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn uploads_past_the_days_quota_wait_for_midnight_pacific() {
    let r = Rig::with(|yt| yt.with_quota(Quota::LEGACY)).await;
    r.fake.set_quota(Quota::LEGACY);
    for i in 0..6 {
        let steps = MemorySteps::default();
        r.publish_with(&format!("Video {i}"), &vertical(100), &none(), &steps)
            .await
            .expect("six uploads of 1,600 units fit in 10,000");
    }
    assert_eq!(
        r.net.quota_spent("crier-client"),
        (9_601, 6),
        "6 × 1,600 and the channel read"
    );
    assert_eq!(r.fake.quota_spent(), (9_601, 6));
    let steps = MemorySteps::default();
    let err = r
        .publish_with("Seventh", &vertical(100), &none(), &steps)
        .await
        .unwrap_err();
    // 09:00 UTC on 2 December is 01:00 PST: the next midnight Pacific is 23 hours away.
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(23 * 3600))
        }
    );
    assert_eq!(
        r.fake.faults().count("POST", UPLOAD),
        6,
        "refused locally: nothing sent"
    );
    assert!(steps.snapshot().is_empty());

    r.clock.set("2026-12-03T08:00:00Z".parse().unwrap());
    let fresh = r.net.refresh(r.session()).await.unwrap();
    r.net
        .publish(
            Session {
                account: &r.account,
                credentials: &fresh,
            },
            part("Seventh", &vertical(100), &none(), &steps),
        )
        .await
        .expect("a new quota day");
}

#[tokio::test]
async fn googles_quota_refusal_waits_for_the_reset_and_stops_sending() {
    // Another process spent the project's quota: Google's answer is what tells.
    let r = Rig::new().await;
    r.fake.set_quota(Quota {
        daily_units: 10_000,
        insert_units: 0,
        daily_inserts: Some(1),
    });
    let steps = MemorySteps::default();
    r.publish_with("One", &vertical(100), &none(), &steps)
        .await
        .unwrap();
    let steps = MemorySteps::default();
    let err = r
        .publish_with("Two", &vertical(100), &none(), &steps)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(23 * 3600))
        }
    );
    let err = r
        .publish_with("Three", &vertical(100), &none(), &steps)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rate_limited");
    assert_eq!(
        r.fake.faults().count("POST", UPLOAD),
        2,
        "the third is refused locally"
    );
}

#[tokio::test]
async fn documented_refusals_map_to_our_codes() {
    let r = Rig::new().await;
    let steps = MemorySteps::default();
    // The fake refuses a category that does not exist (invalidCategoryId).
    let err = r
        .publish_with(
            "x",
            &vertical(100),
            &options(serde_json::json!({"category_id": "99"})),
            &steps,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected");
    assert!(err.to_string().contains("invalidCategoryId"), "{err}");
    // Bytes that are no video: the upload completes, YouTube fails it.
    let mut junk = vertical(100);
    junk[0].bytes = bytes::Bytes::from_static(b"this is not a video at all, only text bytes");
    let steps = MemorySteps::default();
    let err = r
        .publish_with("junk", &junk, &none(), &steps)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "media_rejected", "{err:?}");
    // A 429 with Retry-After.
    r.fake.faults().push(r.fake.rate_limited(120));
    let steps = MemorySteps::default();
    let err = r
        .publish_with("slow down", &vertical(100), &none(), &steps)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(120))
        }
    );
    // The channel's own upload limit: a day.
    for (fault, code) in r.fake.documented_errors() {
        r.fake.faults().clear();
        r.fake.faults().push(fault.clone());
        let steps = MemorySteps::default();
        let err = r
            .publish_with("e", &vertical(100), &none(), &steps)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{fault:?}");
        if fault.body.contains("uploadLimitExceeded") {
            assert_eq!(
                err,
                NetworkError::RateLimited {
                    retry_after: Some(Duration::from_secs(24 * 3600))
                }
            );
        }
    }
}

#[tokio::test]
async fn metrics_are_likes_comments_and_views() {
    let r = Rig::new().await;
    let steps = MemorySteps::default();
    let done = r
        .publish_with("Count", &vertical(100), &none(), &steps)
        .await
        .unwrap();
    r.fake.like(&done.external_id, 5);
    let m = r.net.metrics(r.session(), &done.external_id).await.unwrap();
    assert_eq!((m.likes, m.replies, m.impressions, m.reposts), (5, 0, 0, 0));
    let err = r.net.metrics(r.session(), "nope").await.unwrap_err();
    assert_eq!(err.code(), "network_rejected");
}

// ---------------------------------------------------------------------------------------------
// The fake itself: Google's Range semantics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_fake_keeps_whole_256_kib_units_of_a_chunk_that_does_not_end_the_file() {
    let r = Rig::new().await;
    let http = reqwest::Client::new();
    let total = 700_000u64;
    let mut url = r.fake.base();
    url.set_path(UPLOAD);
    url.set_query(Some("uploadType=resumable&part=snippet,status"));
    let resp = http
        .post(url)
        .bearer_auth(&r.creds().access_token)
        .header("X-Upload-Content-Length", total.to_string())
        .header("X-Upload-Content-Type", "video/mp4")
        .header("content-type", "application/json; charset=UTF-8")
        .body(
            serde_json::json!({"snippet": {"title": "t"}, "status": {"privacyStatus": "private"}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["location"].to_str().unwrap().to_owned();
    let put = |range: String, body: Vec<u8>| {
        http.put(&session)
            .header("Content-Range", range)
            .body(body)
            .send()
    };
    let resp = put(format!("bytes */{total}"), vec![]).await.unwrap();
    assert_eq!(resp.status(), 308);
    assert!(resp.headers().get("range").is_none(), "nothing held yet");
    let bytes = kit::mp4(total as usize - 24);
    let resp = put(format!("bytes 0-299999/{total}"), bytes[..300_000].to_vec())
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(
        resp.headers()["range"],
        "bytes=0-262143",
        "one whole unit kept"
    );
    let resp = put(
        format!("bytes 262144-{}/{total}", total - 1),
        bytes[262_144..].to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    let resp = put(format!("bytes */{total}"), vec![]).await.unwrap();
    assert_eq!(resp.status(), 200, "a finished session answers its video");
    let again: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(again["id"], v["id"]);
    assert_eq!(r.fake.videos().len(), 1);
    let resp = put(format!("bytes 5-9/{total}"), vec![0; 4]).await.unwrap();
    assert_eq!(resp.status(), 200, "the video, not a second one");
    assert_eq!(r.fake.videos().len(), 1);
    // A week later the session is gone.
    r.clock.set("2026-12-10T09:00:00Z".parse().unwrap());
    assert_eq!(
        put(format!("bytes */{total}"), vec![])
            .await
            .unwrap()
            .status(),
        404
    );
    let _ = youtube::PLATFORM;
}
