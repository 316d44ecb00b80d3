//! The Facebook Pages connector against its Graph fake (`crier-fakes/src/facebook.rs`): what is
//! special to Facebook — Login for Pages (short → long-lived token, one account per Page,
//! paging, no Page, a wrong app secret), Page tokens that outlive the user token, photos kept
//! in the part's steps and reused after a failure, the `link` option, the look-up's answers,
//! metrics, the usage headers' slow-down and throttles.

#[path = "support/hosted.rs"]
mod hosted;

use std::time::{Duration, Instant};

use crier_core::Clock;
use crier_fakes::FakeNetwork;
use crier_fakes::facebook::{FacebookFake, FakePage, PAGE, VERSION};
use crier_fakes::kit::{self, Fault};
use crier_networks::facebook::RULES;
use crier_networks::{Attachment, Connected, MemorySteps, NetworkError, Part, Session, Steps};
use crier_store::{Account, PostOverride};
use hosted::{Media, account_from, authorize, exchange, part_with as part};

type Rig = hosted::Rig<FacebookFake>;

async fn rig() -> Rig {
    Rig::start(
        jiff::Timestamp::from_second(1_796_203_267).unwrap(),
        FacebookFake::start,
    )
    .await
}

impl Rig {
    async fn page(&self) -> (Account, Connected) {
        let c = self.connect_all().await.expect("connected").remove(0);
        (account(&c), c)
    }
}

fn account(c: &Connected) -> Account {
    account_from(c, "facebook")
}

fn session<'a>(a: &'a Account, c: &'a Connected) -> Session<'a> {
    hosted::session(a, &c.credentials)
}

fn png(i: usize, side: u32) -> Attachment {
    hosted::attachment(kit::png(side, side), "image/png")
        .id(&format!("med_{i}"))
        .sized(side, side)
        .named(&format!("p{i}.png"))
}

fn mp4() -> Attachment {
    hosted::attachment(kit::mp4(4096), "video/mp4")
        .id("med_v")
        .lasting(Some(1000))
        .named("v.mp4")
}

fn no_options() -> PostOverride {
    PostOverride::default()
}

fn feed_path() -> String {
    format!("/{VERSION}/{PAGE}/feed")
}

/// How long after a create call a miss stays "cannot tell" with the suite's 2 s timeout.
fn settle() -> Duration {
    crier_networks::hosted::SETTLE + Duration::from_secs(2)
}

#[tokio::test]
async fn login_gives_one_account_per_page_with_a_page_token_that_does_not_expire() {
    let r = rig().await;
    let client = r.fake.client();
    let url = r
        .net
        .authorize_url(&authorize(&client, "st", None))
        .unwrap();
    assert!(url.path().ends_with("/v21.0/dialog/oauth"), "{url}");
    let scope = url
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        scope.as_deref(),
        Some("pages_show_list,pages_read_engagement,pages_manage_posts,pages_read_user_content")
    );
    assert!(!url.query_pairs().any(|(k, _)| k == "code_challenge"));

    let pages = r.connect_all().await.expect("connected");
    assert_eq!(
        pages
            .iter()
            .map(|p| p.external_id.as_str())
            .collect::<Vec<_>>(),
        [PAGE, "1002"]
    );
    assert_eq!(pages[0].handle, "criertest");
    assert_eq!(
        pages[1].handle, "1002",
        "a Page without a username is its id"
    );
    assert_eq!(pages[0].display_name.as_deref(), Some("Crier Test Page"));
    for p in &pages {
        assert_eq!(p.credentials.expires_at, None);
        assert_eq!(p.credentials.refresh_token, None);
        assert_eq!(
            p.credentials.client.as_ref().map(|c| c.client_id.as_str()),
            Some("crier-client")
        );
    }
    assert_ne!(
        pages[0].credentials.access_token,
        pages[1].credentials.access_token
    );
    // The short-lived token was exchanged for a long-lived one (with the app secret).
    let exchanges = r
        .fake
        .faults()
        .seen()
        .iter()
        .filter(|s| s.path == format!("/{VERSION}/oauth/access_token"))
        .count();
    assert_eq!(exchanges, 2, "the code, then fb_exchange_token");

    // Thirty days on (the short-lived user token long dead), the Page token still publishes.
    r.clock.advance(Duration::from_secs(30 * 24 * 3600));
    let a = account(&pages[0]);
    let steps = MemorySteps::default();
    let o = no_options();
    let done = r
        .net
        .publish(
            session(&a, &pages[0]),
            part("a month later", &[], &o, &steps),
        )
        .await
        .expect("a Page token from a long-lived user token does not expire");
    assert!(done.external_id.starts_with("1001_"), "{done:?}");
    assert_eq!(
        done.url,
        format!("https://www.facebook.com/{}", done.external_id)
    );
    // And refresh only checks it.
    let same = r
        .net
        .refresh(session(&a, &pages[0]))
        .await
        .expect("still good");
    assert_eq!(same, pages[0].credentials);
}

#[tokio::test]
async fn exchange_code_is_the_first_page_and_no_page_is_a_refusal() {
    let r = rig().await;
    r.fake.set_pages("user-1", Vec::new());
    let err = r.connect_all().await.expect_err("no Page");
    assert_eq!(err.code(), "network_rejected");
    assert!(err.to_string().contains("no Facebook Page"), "{err}");

    r.fake.set_pages(
        "user-1",
        vec![FakePage {
            id: "42".into(),
            name: "Only".into(),
            username: None,
        }],
    );
    let client = r.fake.client();
    let url = r.net.authorize_url(&authorize(&client, "s", None)).unwrap();
    let (code, _) = kit::approve(&url).await;
    let one = r
        .net
        .exchange_code(&exchange(&client, &code, None))
        .await
        .expect("one Page");
    assert_eq!(one.external_id, "42");
}

#[tokio::test]
async fn many_pages_are_read_across_list_pages() {
    let r = rig().await;
    let pages: Vec<FakePage> = (0..230)
        .map(|i| FakePage {
            id: format!("{}", 7000 + i),
            name: format!("Page {i}"),
            username: None,
        })
        .collect();
    r.fake.set_pages("user-1", pages);
    let got = r.connect_all().await.expect("connected");
    assert_eq!(got.len(), 230);
    assert_eq!(got[229].external_id, "7229");
    assert_eq!(
        r.fake
            .faults()
            .count("GET", &format!("/{VERSION}/me/accounts")),
        3
    );
}

#[tokio::test]
async fn a_wrong_app_secret_connects_nothing() {
    let r = rig().await;
    let mut client = r.fake.client();
    client.client_secret = Some("wrong".into());
    let url = r.net.authorize_url(&authorize(&client, "s", None)).unwrap();
    let (code, _) = kit::approve(&url).await;
    let err = r
        .net
        .exchange_code_all(&exchange(&client, &code, None))
        .await
        .expect_err("the app secret is checked");
    assert_eq!(err.code(), "network_rejected", "{err:?}");
}

#[tokio::test]
async fn a_text_post_takes_a_link_preview_from_the_link_option() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let steps = MemorySteps::default();
    let mut o = no_options();
    o.options.insert(
        "link".into(),
        serde_json::json!("https://crier.example/launch"),
    );
    let done = r
        .net
        .publish(session(&a, &c), part("Read this", &[], &o, &steps))
        .await
        .expect("published");
    assert_eq!(
        r.fake.link_of(&done.external_id).as_deref(),
        Some("https://crier.example/launch")
    );
    assert!(steps.snapshot().contains_key("sent_at"));

    let mut bad = no_options();
    bad.options
        .insert("link".into(), serde_json::json!("javascript:alert(1)"));
    let before = r.fake.faults().seen().len();
    let err = r
        .net
        .publish(
            session(&a, &c),
            part("x", &[], &bad, &MemorySteps::default()),
        )
        .await
        .expect_err("not a link");
    assert_eq!(err.code(), "network_rejected");
    assert_eq!(
        r.fake.faults().seen().len(),
        before,
        "refused before any call"
    );
    let v = RULES.check_options(&bad.options);
    assert!(
        v.is_empty(),
        "any text fits the rule; the connector checks the URL: {v:?}"
    );
    let long = serde_json::json!(format!("https://x.example/{}", "a".repeat(2048)));
    let v = RULES.check_options(&[("link".to_owned(), long)].into_iter().collect());
    assert_eq!(v[0].rule, "facebook.options.link");
}

#[tokio::test]
async fn several_photos_are_kept_in_the_steps_and_reused_after_a_failed_feed_call() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let media: Vec<Attachment> = (0..3).map(|i| png(i, 16)).collect();
    let steps = MemorySteps::default();
    let o = no_options();
    r.fake
        .faults()
        .push(Fault::status("POST", &feed_path(), 500, serde_json::json!({"error": {"message": "An unknown error occurred", "code": 1, "type": "OAuthException"}})));
    let err = r
        .net
        .publish(session(&a, &c), part("Three photos", &media, &o, &steps))
        .await
        .expect_err("the feed call failed");
    assert_eq!(err.code(), "network_unavailable");
    let kept = steps.snapshot();
    for i in 0..3 {
        assert!(kept.contains_key(&format!("photo.{i}")), "{kept:?}");
    }
    assert_eq!(r.fake.loose_photos(PAGE), 3);
    // Nothing was created: once Graph has had time to finish the call, the look-up says so,
    // and the retry reuses the photos.
    r.clock.advance(settle());
    assert_eq!(
        r.net
            .lookup(session(&a, &c), part("Three photos", &media, &o, &steps))
            .await
            .unwrap(),
        None
    );
    let uploads = r
        .fake
        .faults()
        .count("POST", &format!("/{VERSION}/{PAGE}/photos"));
    let done = r
        .net
        .publish(session(&a, &c), part("Three photos", &media, &o, &steps))
        .await
        .expect("published on the retry");
    assert_eq!(
        r.fake
            .faults()
            .count("POST", &format!("/{VERSION}/{PAGE}/photos")),
        uploads,
        "no photo uploaded again"
    );
    assert_eq!(r.fake.loose_photos(PAGE), 0);
    let posts = r.fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].id, done.external_id);
    assert_eq!(posts[0].media, vec!["image/png"; 3]);
}

#[tokio::test]
async fn photos_of_another_page_cannot_be_attached() {
    let r = rig().await;
    let pages = r.connect_all().await.unwrap();
    let (a1, a2) = (account(&pages[0]), account(&pages[1]));
    let media: Vec<Attachment> = (0..2).map(|i| png(i, 8)).collect();
    let steps = MemorySteps::default();
    let o = no_options();
    // Upload to the second Page, then try to use its photo ids on the first.
    r.fake.faults().push(Fault::status(
        "POST",
        &format!("/{VERSION}/1002/feed"),
        500,
        serde_json::json!({"error": {"code": 2, "message": "retry"}}),
    ));
    r.net
        .publish(session(&a2, &pages[1]), part("two", &media, &o, &steps))
        .await
        .expect_err("feed failed");
    let err = r
        .net
        .publish(session(&a1, &pages[0]), part("two", &media, &o, &steps))
        .await
        .expect_err("another Page's photos");
    assert_eq!(err.code(), "network_rejected", "{err:?}");
    assert!(err.to_string().contains("(code 100)"), "{err}");
}

#[tokio::test]
async fn one_photo_and_one_video_are_single_calls() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let o = no_options();
    let photo = [png(0, 8)];
    let done = r
        .net
        .publish(
            session(&a, &c),
            part("One photo", &photo, &o, &MemorySteps::default()),
        )
        .await
        .expect("a photo post");
    let video = [mp4()];
    let v = r
        .net
        .publish(
            session(&a, &c),
            part("A video", &video, &o, &MemorySteps::default()),
        )
        .await
        .expect("a video post");
    let posts = r.fake.posts();
    assert_eq!(posts[0].id, done.external_id);
    assert_eq!(posts[0].text, "One photo");
    assert_eq!(posts[1].id, v.external_id);
    assert_eq!(posts[1].media, vec!["video/mp4"]);
    assert_eq!(
        r.fake
            .faults()
            .count("POST", &format!("/{VERSION}/{PAGE}/feed")),
        0
    );
}

#[tokio::test]
async fn media_facebook_refuses_are_refused_before_any_call() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let o = no_options();
    let before = r.fake.faults().seen().len();
    let mixed = [png(0, 8), mp4()];
    let eleven: Vec<Attachment> = (0..11).map(|i| png(i, 4)).collect();
    for media in [&mixed[..], &eleven[..]] {
        let err = r
            .net
            .publish(
                session(&a, &c),
                part("m", media, &o, &MemorySteps::default()),
            )
            .await
            .expect_err("refused");
        assert_eq!(err.code(), "media_rejected", "{err:?}");
    }
    assert_eq!(r.fake.faults().seen().len(), before);
    // A photo over 4 MB is refused by Facebook itself (and by the rules first).
    let big = [png(0, 1200)];
    assert!(big[0].meta.size > 4 * 1024 * 1024);
    assert!(
        !RULES
            .check(&["x".into()], &[big[0].meta.clone()])
            .is_empty()
    );
    let err = r
        .net
        .publish(
            session(&a, &c),
            part("big", &big, &o, &MemorySteps::default()),
        )
        .await
        .expect_err("too large");
    assert_eq!(err.code(), "media_rejected", "{err:?}");
    assert!(r.fake.posts().is_empty());
}

#[tokio::test]
async fn lookup_finds_a_post_whose_answer_was_lost_and_is_none_only_when_certain() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let o = no_options();
    let steps = MemorySteps::default();
    // Never sent: certainly not published, and no call is made to say so.
    let before = r.fake.faults().seen().len();
    assert_eq!(
        r.net
            .lookup(session(&a, &c), part("Lost", &[], &o, &steps))
            .await
            .unwrap(),
        None
    );
    assert_eq!(r.fake.faults().seen().len(), before);

    r.fake.faults().push(Fault::lose("POST", &feed_path()));
    let err = r
        .net
        .publish(session(&a, &c), part("Lost", &[], &o, &steps))
        .await
        .expect_err("the answer is lost");
    assert_eq!(err, NetworkError::Timeout);
    let found = r
        .net
        .lookup(session(&a, &c), part("Lost", &[], &o, &steps))
        .await
        .unwrap()
        .expect("found by text within the window");
    assert_eq!(found.external_id, r.fake.posts()[0].id);
    // Another text sent at the same time is not it (once Graph has had time to make it).
    r.clock.advance(settle());
    assert_eq!(
        r.net
            .lookup(session(&a, &c), part("Other", &[], &o, &steps))
            .await
            .unwrap(),
        None
    );
    // When the Page's posts cannot be listed, the answer is an error, never "not published".
    r.fake.faults().push(Fault::status(
        "GET",
        &format!("/{VERSION}/{PAGE}/published_posts"),
        500,
        serde_json::json!({"error": {"code": 2, "message": "Service temporarily unavailable"}}),
    ));
    let err = r
        .net
        .lookup(session(&a, &c), part("Lost", &[], &o, &steps))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), "network_unavailable");
}

#[tokio::test]
async fn a_videos_miss_is_cannot_tell_until_15_minutes_after_sent_at() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let o = no_options();
    let video = [mp4()];
    let steps = MemorySteps::default();
    r.fake
        .faults()
        .push(Fault::hang("POST", &format!("/{VERSION}/{PAGE}/videos")));
    let err = r
        .net
        .publish(session(&a, &c), part("A video", &video, &o, &steps))
        .await
        .expect_err("no answer");
    assert_eq!(err, NetworkError::Timeout);
    // A video is listed only once processed: a miss soon after the send proves nothing.
    let err = r
        .net
        .lookup(session(&a, &c), part("A video", &video, &o, &steps))
        .await
        .expect_err("cannot tell yet");
    assert_eq!(err.code(), "network_unavailable", "{err:?}");
    r.clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(
        r.net
            .lookup(session(&a, &c), part("A video", &video, &o, &steps))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_miss_soon_after_the_latest_create_call_is_cannot_tell_for_every_shape() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let o = no_options();
    // Graph makes the post and answers 500; it lists the post only two minutes later.
    r.fake.set_creation_lag(Duration::from_secs(120));
    r.fake.fail_after_create(1);
    let steps = MemorySteps::default();
    let err = r
        .net
        .publish(session(&a, &c), part("Made late", &[], &o, &steps))
        .await
        .expect_err("a 500");
    assert_eq!(err.code(), "network_unavailable");
    let sent_at = steps.snapshot()["sent_at"].clone();
    // Not listed yet: a text post's miss proves nothing until Graph has had time.
    r.clock.advance(Duration::from_secs(30));
    let err = r
        .net
        .lookup(session(&a, &c), part("Made late", &[], &o, &steps))
        .await
        .expect_err("cannot tell yet");
    let NetworkError::Unavailable { retry_after, .. } = &err else {
        panic!("cannot tell: {err:?}")
    };
    assert_eq!(*retry_after, Some(settle() - Duration::from_secs(30)));
    // Looked up again when it says: the post is there, and nothing was posted twice.
    r.clock.advance(retry_after.unwrap());
    let found = r
        .net
        .lookup(session(&a, &c), part("Made late", &[], &o, &steps))
        .await
        .unwrap()
        .expect("found once listed");
    assert_eq!(r.fake.posts().len(), 1);
    assert_eq!(found.external_id, r.fake.posts()[0].id);

    // A photo post whose call failed and did not land: "cannot tell" until the window after
    // its latest call (`last_sent_at`, not the first's `sent_at`) has passed.
    let photo = [png(9, 16)];
    let steps = MemorySteps::default();
    let photos = format!("/{VERSION}/{PAGE}/photos");
    let refused = serde_json::json!({"error": {"message": "An unknown error occurred", "code": 1}});
    r.fake
        .faults()
        .push(Fault::status("POST", &photos, 500, refused).times(2));
    for _ in 0..2 {
        r.net
            .publish(session(&a, &c), part("A photo", &photo, &o, &steps))
            .await
            .expect_err("a 500");
        r.clock.advance(Duration::from_secs(60));
    }
    let kept = steps.snapshot();
    let at = |name: &str| kept[name].parse::<i64>().unwrap();
    assert_eq!(
        at("last_sent_at") - at("sent_at"),
        60_000,
        "each call's time: {kept:?}"
    );
    assert!(at("sent_at") > sent_at.parse::<i64>().unwrap());
    r.clock.advance(settle() - Duration::from_secs(90));
    let err = r
        .net
        .lookup(session(&a, &c), part("A photo", &photo, &o, &steps))
        .await
        .expect_err("the latest call went out less than the window ago");
    assert_eq!(err.code(), "network_unavailable", "{err:?}");
    r.clock.advance(Duration::from_secs(30));
    assert_eq!(
        r.net
            .lookup(session(&a, &c), part("A photo", &photo, &o, &steps))
            .await
            .unwrap(),
        None,
        "certain once the window after the latest call has passed"
    );
}

#[tokio::test]
async fn a_next_page_that_cannot_be_followed_is_cannot_tell() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let o = no_options();
    let steps = MemorySteps::default();
    steps
        .put("sent_at", &r.clock.now_ms().to_string())
        .await
        .unwrap();
    r.fake.faults().push(Fault::status(
        "GET",
        &format!("/{VERSION}/{PAGE}/published_posts"),
        200,
        serde_json::json!({
            "data": [],
            "paging": {"next": "https://elsewhere.example/posts?after=abc"},
        }),
    ));
    let err = r
        .net
        .lookup(session(&a, &c), part("Unread", &[], &o, &steps))
        .await
        .expect_err("pages left unread");
    assert_eq!(err.code(), "network_unavailable", "{err:?}");
}

#[tokio::test]
async fn lookup_ignores_posts_from_before_the_attempt() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let o = no_options();
    r.net
        .publish(
            session(&a, &c),
            part("Same words", &[], &o, &MemorySteps::default()),
        )
        .await
        .unwrap();
    r.clock.advance(Duration::from_secs(3600));
    let steps = MemorySteps::default();
    steps
        .put("sent_at", &r.clock.now_ms().to_string())
        .await
        .unwrap();
    r.clock.advance(settle());
    assert_eq!(
        r.net
            .lookup(session(&a, &c), part("Same words", &[], &o, &steps))
            .await
            .unwrap(),
        None,
        "an hour-old post with the same words is another post"
    );
}

#[tokio::test]
async fn the_same_text_twice_in_a_row_is_refused_as_a_duplicate() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let o = no_options();
    r.net
        .publish(
            session(&a, &c),
            part("Twice", &[], &o, &MemorySteps::default()),
        )
        .await
        .unwrap();
    let err = r
        .net
        .publish(
            session(&a, &c),
            part("Twice", &[], &o, &MemorySteps::default()),
        )
        .await
        .expect_err("506");
    assert_eq!(err.code(), "network_rejected");
    assert!(err.to_string().contains("code 506"), "{err}");
}

#[tokio::test]
async fn metrics_are_reactions_comments_and_shares() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let o = no_options();
    let done = r
        .net
        .publish(
            session(&a, &c),
            part("Count", &[], &o, &MemorySteps::default()),
        )
        .await
        .unwrap();
    let m = r
        .net
        .metrics(session(&a, &c), &done.external_id)
        .await
        .unwrap();
    assert_eq!(
        (m.likes, m.replies, m.reposts),
        (0, 0, 0),
        "no shares field at all"
    );
    r.fake.like(&done.external_id, 12);
    r.fake.engage(&done.external_id, 3, 2);
    let m = r
        .net
        .metrics(session(&a, &c), &done.external_id)
        .await
        .unwrap();
    assert_eq!(
        (m.likes, m.replies, m.reposts, m.impressions),
        (12, 3, 2, 0)
    );
    let err = r
        .net
        .metrics(session(&a, &c), "../me")
        .await
        .expect_err("not an id");
    assert_eq!(err.code(), "network_rejected");
}

#[tokio::test]
async fn high_usage_slows_the_next_call_and_a_full_quota_is_a_throttle() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let o = no_options();
    r.fake.set_usage(84);
    r.net
        .publish(
            session(&a, &c),
            part("one", &[], &o, &MemorySteps::default()),
        )
        .await
        .unwrap();
    let t = Instant::now();
    r.net
        .publish(
            session(&a, &c),
            part("two", &[], &o, &MemorySteps::default()),
        )
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "84 % waits a second: {:?}",
        t.elapsed()
    );
    r.fake.set_usage(20);
    r.net
        .publish(
            session(&a, &c),
            part("three", &[], &o, &MemorySteps::default()),
        )
        .await
        .unwrap();
    let t = Instant::now();
    r.net
        .publish(
            session(&a, &c),
            part("four", &[], &o, &MemorySteps::default()),
        )
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "low usage does not wait"
    );

    r.fake.set_usage(100);
    let err = r
        .net
        .publish(
            session(&a, &c),
            part("five", &[], &o, &MemorySteps::default()),
        )
        .await
        .expect_err("throttled");
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(60))
        }
    );
}

#[tokio::test]
async fn a_page_throttle_waits_for_the_reset_minutes() {
    let r = rig().await;
    let (a, c) = r.page().await;
    r.fake.faults().push(r.fake.rate_limited(150));
    let err = r
        .net
        .publish(
            session(&a, &c),
            part("wait", &[], &no_options(), &MemorySteps::default()),
        )
        .await
        .expect_err("throttled");
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(180))
        },
        "150 s is 3 minutes as Graph counts"
    );
}

#[tokio::test]
async fn revoke_calls_nothing_and_a_removed_app_is_unauthorized() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let before = r.fake.faults().seen().len();
    r.net.revoke(session(&a, &c)).await.expect("nothing to do");
    assert_eq!(r.fake.faults().seen().len(), before);
    r.fake.revoke_access();
    let err = r.net.refresh(session(&a, &c)).await.expect_err("revoked");
    assert_eq!(err.code(), "account_disconnected");
    let err = r
        .net
        .publish(
            session(&a, &c),
            part("gone", &[], &no_options(), &MemorySteps::default()),
        )
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), "account_disconnected");
}

#[tokio::test]
async fn threads_are_refused() {
    let r = rig().await;
    let (a, c) = r.page().await;
    let thread = ["1001_1".to_owned()];
    let steps = MemorySteps::default();
    let o = no_options();
    let p = Part {
        thread: &thread,
        ..part("a reply", &[], &o, &steps)
    };
    let err = r
        .net
        .publish(session(&a, &c), p)
        .await
        .expect_err("no threads");
    assert_eq!(err.code(), "network_rejected");
    assert!(!RULES.threads);
}
