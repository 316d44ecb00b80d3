//! The Threads connector against its stateful fake (crier-fakes/src/threads.rs): what is
//! special to Threads. Connecting (short-lived → long-lived token that is its own refresh
//! token), the length as Threads counts it, media containers and their polling, carousels,
//! the publishing quota, Graph errors, and every exactly-once path through the part's steps.

#[path = "support/hosted.rs"]
mod hosted;

use std::time::Duration;

use crier_core::Clock;
use crier_fakes::threads::{ThreadsFake, USER_ID, USERNAME};
use crier_fakes::{FakeNetwork, kit};
use crier_networks::threads::{RULES, length};
use crier_networks::{Attachment, MemorySteps, NetworkError, Part, Session, Steps};
use crier_store::PostOverride;
use hosted::{Media, authorize, exchange, thread_part as part};

type Rig = hosted::SignedIn<ThreadsFake>;

async fn rig() -> Rig {
    let rig = hosted::Rig::start("2026-03-01T12:00:00Z".parse().unwrap(), ThreadsFake::start).await;
    let connected = rig.connect().await.expect("connected");
    rig.signed_in("threads", connected)
}

/// Serves `bytes` on 127.0.0.1 (as the media store's signed URLs do); `status` other than 200
/// makes the download fail.
async fn served(bytes: Vec<u8>, content_type: &str, status: u16) -> Attachment {
    hosted::served(
        hosted::attachment(bytes, content_type).alt(Some("grey")),
        status,
    )
    .await
}

async fn png() -> Attachment {
    served(kit::png(8, 8), "image/png", 200).await
}

async fn mp4() -> Attachment {
    served(kit::mp4(4096), "video/mp4", 200).await
}

fn publish_path() -> String {
    format!("/v1.0/{USER_ID}/threads_publish")
}

// ---------------------------------------------------------------------------------------------
// Connecting and tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connecting_keeps_a_long_lived_token_that_is_its_own_refresh_token() {
    let r = rig().await;
    assert_eq!(r.account.external_id, USER_ID);
    assert_eq!(r.account.handle, USERNAME);
    let c = &r.creds();
    assert_eq!(c.refresh_token.as_deref(), Some(c.access_token.as_str()));
    let sixty_days = 60 * 86_400 * 1000;
    assert_eq!(c.expires_at, Some(r.clock.now_ms() + sixty_days));
    assert_eq!(
        c.client.as_ref().map(|c| c.client_id.as_str()),
        Some("crier-client")
    );
    // The long-lived token outlives the short-lived one (an hour).
    r.clock.advance(Duration::from_secs(2 * 3600));
    let steps = MemorySteps::default();
    r.net
        .publish(r.session(), part("still mine", &[], &[], &steps))
        .await
        .expect("the long-lived token works after an hour");
}

#[tokio::test]
async fn the_authorization_url_asks_for_comma_separated_scopes_without_pkce() {
    let r = rig().await;
    let client = r.fake.client();
    let url = r.net.authorize_url(&authorize(&client, "s", None)).unwrap();
    assert_eq!(url.path(), "/oauth/authorize");
    let scope = url
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert!(scope.starts_with("threads_basic,threads_content_publish,threads_manage_insights"));
    assert!(!url.query_pairs().any(|(k, _)| k == "code_challenge"));
}

#[tokio::test]
async fn a_used_code_and_a_wrong_secret_are_refused() {
    let r = rig().await;
    let mut client = r.fake.client();
    let url = r.net.authorize_url(&authorize(&client, "s", None)).unwrap();
    let (code, _) = kit::approve(&url).await;
    client.client_secret = Some("wrong".into());
    let err = r
        .net
        .exchange_code(&exchange(&client, &code, None))
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn a_refresh_gives_a_new_sixty_day_token_and_a_revoked_one_is_unauthorized() {
    let r = rig().await;
    r.clock.advance(Duration::from_secs(30 * 86_400));
    let fresh = r.net.refresh(r.session()).await.expect("refreshed");
    assert_ne!(fresh.access_token, r.creds().access_token);
    assert_eq!(
        fresh.refresh_token.as_deref(),
        Some(fresh.access_token.as_str())
    );
    assert_eq!(
        fresh.expires_at,
        Some(r.clock.now_ms() + 60 * 86_400 * 1000)
    );
    assert!(
        fresh.client.is_some(),
        "the client stays for the next refresh"
    );
    r.fake.revoke_access();
    let s = Session {
        account: &r.account,
        credentials: &fresh,
    };
    let err = r.net.refresh(s).await.unwrap_err();
    assert!(matches!(err, NetworkError::Unauthorized { .. }), "{err:?}");
    let steps = MemorySteps::default();
    let err = r
        .net
        .publish(s, part("gone", &[], &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "account_disconnected");
}

#[tokio::test]
async fn an_expired_long_lived_token_cannot_be_refreshed() {
    let r = rig().await;
    r.clock.advance(Duration::from_secs(61 * 86_400));
    let err = r.net.refresh(r.session()).await.unwrap_err();
    assert!(matches!(err, NetworkError::Unauthorized { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Length, media, options
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn emoji_count_their_utf8_bytes_and_an_over_long_text_is_refused_before_sending() {
    let r = rig().await;
    let ascii = "a".repeat(500);
    assert!(RULES.check(std::slice::from_ref(&ascii), &[]).is_empty());
    assert!(!RULES.check(&["a".repeat(501)], &[]).is_empty());
    let steps = MemorySteps::default();
    r.net
        .publish(r.session(), part(&ascii, &[], &[], &steps))
        .await
        .expect("500 characters publish");
    // 130 emoji are 130 code points (within the rules' count) but 520 as Threads counts.
    let party = "🎉".repeat(130);
    assert_eq!(length(&party), 520);
    let before = r.fake.containers_created();
    let steps = MemorySteps::default();
    let err = r
        .net
        .publish(r.session(), part(&party, &[], &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected", "{err:?}");
    assert_eq!(r.fake.containers_created(), before, "nothing was sent");
}

#[tokio::test]
async fn the_fake_refuses_an_over_long_text_with_a_graph_error() {
    let r = rig().await;
    let resp = reqwest::Client::new()
        .post(format!("{}v1.0/{USER_ID}/threads", r.fake.base()))
        .bearer_auth(&r.creds().access_token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("media_type", "TEXT")
                .append_pair("text", &"🎉".repeat(126))
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], 100, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("500"));
}

#[tokio::test]
async fn a_video_is_polled_until_finished_and_fetched_by_url() {
    let r = rig().await;
    r.fake.set_processing_polls(0, 5);
    let media = vec![mp4().await];
    let steps = MemorySteps::default();
    let done = r
        .net
        .publish(r.session(), part("a clip", &media, &[], &steps))
        .await
        .expect("published");
    let posts = r.fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].media, vec!["video/mp4".to_owned()]);
    assert!(
        done.url
            .starts_with(&format!("https://www.threads.net/@{USERNAME}/post/"))
    );
    let polls = r
        .fake
        .faults()
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.query.contains("status"))
        .count();
    assert!(polls >= 5, "the container was polled: {polls}");
}

#[tokio::test]
async fn a_container_still_processing_after_poll_max_resumes_with_the_same_container() {
    let r = rig().await;
    r.fake.set_processing_polls(0, 70);
    let media = vec![mp4().await];
    let steps = MemorySteps::default();
    let err = r
        .net
        .publish(r.session(), part("slow", &media, &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_unavailable", "{err:?}");
    let kept = steps.snapshot()["container"].clone();
    assert_eq!(
        r.fake.container_status(&kept).as_deref(),
        Some("IN_PROGRESS")
    );
    assert!(
        r.net
            .lookup(r.session(), part("slow", &media, &[], &steps))
            .await
            .unwrap()
            .is_none()
    );
    r.net
        .publish(r.session(), part("slow", &media, &[], &steps))
        .await
        .expect("the retry waits for the same container");
    assert_eq!(r.fake.containers_created(), 1);
    assert_eq!(r.fake.posts().len(), 1);
    assert_eq!(r.fake.container_status(&kept).as_deref(), Some("PUBLISHED"));
}

#[tokio::test]
async fn a_video_that_cannot_be_downloaded_is_media_rejected() {
    let r = rig().await;
    let media = vec![served(kit::mp4(64), "video/mp4", 404).await];
    let steps = MemorySteps::default();
    let err = r
        .net
        .publish(r.session(), part("404", &media, &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "media_rejected", "{err:?}");
    assert!(
        err.to_string().contains("FAILED_DOWNLOADING_VIDEO"),
        "{err}"
    );
    let media = vec![served(b"not an image".to_vec(), "image/png", 200).await];
    let err = r
        .net
        .publish(
            r.session(),
            part("bad", &media, &[], &MemorySteps::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "media_rejected", "{err:?}");
    assert!(r.fake.posts().is_empty());
}

#[tokio::test]
async fn several_media_make_a_carousel_whose_items_are_kept() {
    let r = rig().await;
    let media = vec![png().await, png().await, mp4().await];
    let steps = MemorySteps::default();
    let done = r
        .net
        .publish(r.session(), part("three", &media, &[], &steps))
        .await
        .expect("a carousel");
    let posts = r.fake.posts();
    let p = posts.iter().find(|p| p.id == done.external_id).unwrap();
    assert_eq!(p.media, vec!["image/png", "image/png", "video/mp4"]);
    let kept = steps.snapshot();
    for k in [
        "child.0",
        "child.1",
        "child.2",
        "container",
        "sent_at",
        "media_id",
    ] {
        assert!(kept.contains_key(k), "{k} kept: {kept:?}");
    }
    assert_eq!(r.fake.containers_created(), 4);
}

#[tokio::test]
async fn a_carousel_retry_reuses_its_finished_items() {
    let r = rig().await;
    let media = vec![png().await, png().await];
    let steps = MemorySteps::default();
    r.fake.faults().push(kit::Fault::status(
        "POST",
        &publish_path(),
        500,
        serde_json::json!({"error": {"message": "x", "code": 2}}),
    ));
    let err = r
        .net
        .publish(r.session(), part("two", &media, &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_unavailable");
    r.net
        .publish(r.session(), part("two", &media, &[], &steps))
        .await
        .expect("published on retry");
    assert_eq!(
        r.fake.containers_created(),
        3,
        "two items and one carousel, once"
    );
    assert_eq!(r.fake.posts().len(), 1);
}

#[tokio::test]
async fn reply_control_is_sent() {
    let r = rig().await;
    let mut options = PostOverride::default();
    options
        .options
        .insert("reply_control".into(), serde_json::json!("mentioned_only"));
    assert!(RULES.check_options(&options.options).is_empty());
    let mut bad = options.options.clone();
    bad.insert("reply_control".into(), serde_json::json!("nobody"));
    assert_eq!(
        RULES.check_options(&bad)[0].rule,
        "threads.options.reply_control"
    );
    let steps = MemorySteps::default();
    let done = r
        .net
        .publish(
            r.session(),
            Part {
                options: &options,
                ..part("quiet", &[], &[], &steps)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        r.fake.reply_control(&done.external_id).as_deref(),
        Some("mentioned_only")
    );
}

// ---------------------------------------------------------------------------------------------
// Threads of posts, quota, errors, metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_thread_replies_to_the_part_before_and_an_unknown_parent_is_refused() {
    let r = rig().await;
    let s1 = MemorySteps::default();
    let root = r
        .net
        .publish(r.session(), part("1/2", &[], &[], &s1))
        .await
        .unwrap();
    let thread = vec![root.external_id.clone()];
    let s2 = MemorySteps::default();
    let reply = r
        .net
        .publish(r.session(), part("2/2", &[], &thread, &s2))
        .await
        .unwrap();
    let posts = r.fake.posts();
    let p = posts.iter().find(|p| p.id == reply.external_id).unwrap();
    assert_eq!(p.reply_to.as_deref(), Some(root.external_id.as_str()));
    let ghost = vec!["999".to_owned()];
    let err = r
        .net
        .publish(
            r.session(),
            part("lost", &[], &ghost, &MemorySteps::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected", "{err:?}");
}

#[tokio::test]
async fn at_the_publishing_quota_nothing_is_created_and_the_pause_is_an_hour() {
    let r = rig().await;
    r.fake.preload_posts(250, false);
    let steps = MemorySteps::default();
    let err = r
        .net
        .publish(r.session(), part("one too many", &[], &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(3600))
        }
    );
    assert_eq!(r.fake.containers_created(), 0);
    // The window moves: a day later there is room again.
    r.clock.advance(Duration::from_secs(86_401));
    r.net
        .publish(r.session(), part("one too many", &[], &[], &steps))
        .await
        .expect("room again");
}

#[tokio::test]
async fn replies_have_their_own_quota() {
    let r = rig().await;
    let s1 = MemorySteps::default();
    let root = r
        .net
        .publish(r.session(), part("root", &[], &[], &s1))
        .await
        .unwrap();
    r.fake.preload_posts(1000, true);
    let thread = vec![root.external_id];
    let err = r
        .net
        .publish(
            r.session(),
            part("reply", &[], &thread, &MemorySteps::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rate_limited");
    r.net
        .publish(
            r.session(),
            part("a new post", &[], &[], &MemorySteps::default()),
        )
        .await
        .expect("posts are not replies");
}

#[tokio::test]
async fn graph_errors_of_container_creation_map_to_our_codes() {
    let r = rig().await;
    let create = format!("/v1.0/{USER_ID}/threads");
    let cases = [
        (401, 190, "account_disconnected"),
        (400, 100, "network_rejected"),
        (400, 4, "network_rate_limited"),
        (500, 2, "network_unavailable"),
    ];
    for (status, code, ours) in cases {
        r.fake.faults().push(kit::Fault::status(
            "POST",
            &create,
            status,
            serde_json::json!({"error": {"message": "m", "type": "OAuthException", "code": code}}),
        ));
        let err = r
            .net
            .publish(r.session(), part("e", &[], &[], &MemorySteps::default()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ours, "{code}: {err:?}");
    }
    // A refused image container is the media's refusal.
    r.fake.faults().push(kit::Fault::status(
        "POST",
        &create,
        400,
        serde_json::json!({"error": {"message": "bad image", "code": 100}}),
    ));
    let media = vec![png().await];
    let err = r
        .net
        .publish(r.session(), part("e", &media, &[], &MemorySteps::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "media_rejected");
}

#[tokio::test]
async fn metrics_read_the_insights() {
    let r = rig().await;
    let s1 = MemorySteps::default();
    let root = r
        .net
        .publish(r.session(), part("count", &[], &[], &s1))
        .await
        .unwrap();
    let thread = vec![root.external_id.clone()];
    r.net
        .publish(
            r.session(),
            part("reply", &[], &thread, &MemorySteps::default()),
        )
        .await
        .unwrap();
    r.fake.like(&root.external_id, 3);
    let m = r.net.metrics(r.session(), &root.external_id).await.unwrap();
    assert_eq!(
        (m.likes, m.replies, m.impressions, m.reposts),
        (3, 1, 30, 0)
    );
}

#[tokio::test]
async fn ids_that_are_not_digits_never_make_a_path() {
    let r = rig().await;
    let before = r.fake.faults().seen().len();
    let err = r.net.metrics(r.session(), "..").await.unwrap_err();
    assert_eq!(err.code(), "network_rejected", "{err:?}");
    // A kept container id that is not one: its status is never asked for.
    let steps = MemorySteps::default();
    steps.put("container", "..").await.unwrap();
    let err = r
        .net
        .lookup(r.session(), part("x", &[], &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected", "{err:?}");
    assert_eq!(r.fake.faults().seen().len(), before, "nothing sent");
}

// ---------------------------------------------------------------------------------------------
// Exactly once
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_crash_before_publish_resumes_with_the_same_container() {
    let r = rig().await;
    r.fake.faults().push(kit::Fault::status(
        "POST",
        &publish_path(),
        500,
        serde_json::json!({"error": {"message": "down", "code": 2}}),
    ));
    let steps = MemorySteps::default();
    let err = r
        .net
        .publish(r.session(), part("again", &[], &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_unavailable");
    let kept = steps.snapshot()["container"].clone();
    assert_eq!(r.fake.container_status(&kept).as_deref(), Some("FINISHED"));
    assert!(
        r.net
            .lookup(r.session(), part("again", &[], &[], &steps))
            .await
            .unwrap()
            .is_none(),
        "a FINISHED container was certainly not published"
    );
    r.net
        .publish(r.session(), part("again", &[], &[], &steps))
        .await
        .unwrap();
    assert_eq!(
        r.fake.containers_created(),
        1,
        "the kept container was published"
    );
    assert_eq!(r.fake.posts().len(), 1);
}

#[tokio::test]
async fn sent_at_keeps_the_first_attempts_time() {
    let r = rig().await;
    r.fake.faults().push(kit::Fault::status(
        "POST",
        &publish_path(),
        500,
        serde_json::json!({"error": {"message": "down", "code": 2}}),
    ));
    let steps = MemorySteps::default();
    r.net
        .publish(r.session(), part("first", &[], &[], &steps))
        .await
        .unwrap_err();
    let first = steps.snapshot()["sent_at"].clone();
    r.clock.advance(Duration::from_secs(3600));
    r.net
        .publish(r.session(), part("first", &[], &[], &steps))
        .await
        .unwrap();
    assert_eq!(
        steps.snapshot()["sent_at"],
        first,
        "a later look-up's window starts at the first attempt"
    );
}

#[tokio::test]
async fn a_lost_publish_answer_is_found_by_lookup_and_by_publish() {
    let r = rig().await;
    r.fake
        .faults()
        .push(kit::Fault::lose("POST", &publish_path()));
    let steps = MemorySteps::default();
    let err = r
        .net
        .publish(r.session(), part("lost", &[], &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(err, NetworkError::Timeout);
    let posts = r.fake.posts();
    assert_eq!(posts.len(), 1, "the work was done");
    let found = r
        .net
        .lookup(r.session(), part("lost", &[], &[], &steps))
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.external_id, posts[0].id);
    assert!(found.url.starts_with("https://www.threads.net/@"));
    // Publishing again (a caller that skipped the look-up) finds it too: never a second post.
    let again = r
        .net
        .publish(r.session(), part("lost", &[], &[], &steps))
        .await
        .unwrap();
    assert_eq!(again.external_id, posts[0].id);
    assert_eq!(r.fake.posts().len(), 1);
}

#[tokio::test]
async fn a_lost_reply_is_found_among_the_accounts_replies() {
    let r = rig().await;
    let root = r
        .net
        .publish(r.session(), part("root", &[], &[], &MemorySteps::default()))
        .await
        .unwrap();
    // Another reply with the same text to another post must not be taken for it.
    let other = r
        .net
        .publish(
            r.session(),
            part("other", &[], &[], &MemorySteps::default()),
        )
        .await
        .unwrap();
    r.net
        .publish(
            r.session(),
            part("same", &[], &[other.external_id], &MemorySteps::default()),
        )
        .await
        .unwrap();
    let thread = vec![root.external_id.clone()];
    r.fake
        .faults()
        .push(kit::Fault::lose("POST", &publish_path()));
    let steps = MemorySteps::default();
    assert_eq!(
        r.net
            .publish(r.session(), part("same", &[], &thread, &steps))
            .await
            .unwrap_err(),
        NetworkError::Timeout
    );
    let found = r
        .net
        .lookup(r.session(), part("same", &[], &thread, &steps))
        .await
        .unwrap()
        .expect("found");
    let posts = r.fake.posts();
    let p = posts.iter().find(|p| p.id == found.external_id).unwrap();
    assert_eq!(p.reply_to.as_deref(), Some(root.external_id.as_str()));
}

#[tokio::test]
async fn a_lost_container_answer_is_certainly_not_published() {
    let r = rig().await;
    r.fake.faults().push(kit::Fault::lose(
        "POST",
        &format!("/v1.0/{USER_ID}/threads"),
    ));
    let steps = MemorySteps::default();
    let err = r
        .net
        .publish(r.session(), part("orphan", &[], &[], &steps))
        .await
        .unwrap_err();
    assert_eq!(err, NetworkError::Timeout);
    assert!(
        r.net
            .lookup(r.session(), part("orphan", &[], &[], &steps))
            .await
            .unwrap()
            .is_none()
    );
    r.net
        .publish(r.session(), part("orphan", &[], &[], &steps))
        .await
        .unwrap();
    assert_eq!(
        r.fake.posts().len(),
        1,
        "the orphan container was never published"
    );
}

#[tokio::test]
async fn a_refused_container_status_is_an_error_not_a_gone_container() {
    let r = rig().await;
    r.fake.faults().push(kit::Fault::status(
        "POST",
        &publish_path(),
        500,
        serde_json::json!({"error": {"message": "down", "code": 2}}),
    ));
    let steps = MemorySteps::default();
    r.net
        .publish(r.session(), part("kept", &[], &[], &steps))
        .await
        .unwrap_err();
    let kept = steps.snapshot()["container"].clone();
    // A refusal that is not "object does not exist" says nothing about the container.
    r.fake.faults().push(kit::Fault::status(
        "GET",
        &format!("/v1.0/{kept}"),
        400,
        serde_json::json!({"error": {"message": "(#3) Application does not have the capability to make this API call.", "type": "OAuthException", "code": 3}}),
    ));
    let err = r
        .net
        .publish(r.session(), part("kept", &[], &[], &steps))
        .await
        .expect_err("the refusal is answered");
    assert_eq!(err.code(), "network_rejected", "{err:?}");
    assert_eq!(r.fake.containers_created(), 1, "no new container");
    assert_eq!(steps.snapshot()["container"], kept);
    // The container really gone (code 100, subcode 33): a new one.
    r.fake.faults().push(kit::Fault::status(
        "GET",
        &format!("/v1.0/{kept}"),
        400,
        serde_json::json!({"error": {"message": "Unsupported get request. Object with ID does not exist", "type": "GraphMethodException", "code": 100, "error_subcode": 33}}),
    ));
    r.net
        .publish(r.session(), part("kept", &[], &[], &steps))
        .await
        .expect("a new container");
    assert_eq!(r.fake.containers_created(), 2);
}

#[tokio::test]
async fn a_failed_or_expired_kept_container_is_replaced() {
    let r = rig().await;
    let err_body = serde_json::json!({"error": {"message": "down", "code": 2}});
    // ERROR: a new container.
    r.fake.faults().push(kit::Fault::status(
        "POST",
        &publish_path(),
        500,
        err_body.clone(),
    ));
    let steps = MemorySteps::default();
    r.net
        .publish(r.session(), part("x", &[], &[], &steps))
        .await
        .unwrap_err();
    let first = steps.snapshot()["container"].clone();
    r.fake.fail_container(&first, "UNKNOWN");
    r.net
        .publish(r.session(), part("x", &[], &[], &steps))
        .await
        .unwrap();
    assert_ne!(steps.snapshot()["container"], first);
    assert_eq!(r.fake.containers_created(), 2);
    // EXPIRED (24 hours unpublished): a new container.
    r.fake
        .faults()
        .push(kit::Fault::status("POST", &publish_path(), 500, err_body));
    let steps = MemorySteps::default();
    r.net
        .publish(r.session(), part("y", &[], &[], &steps))
        .await
        .unwrap_err();
    let kept = steps.snapshot()["container"].clone();
    r.clock.advance(Duration::from_secs(25 * 3600));
    assert_eq!(r.fake.container_status(&kept).as_deref(), Some("EXPIRED"));
    assert!(
        r.net
            .lookup(r.session(), part("y", &[], &[], &steps))
            .await
            .unwrap()
            .is_none()
    );
    r.net
        .publish(r.session(), part("y", &[], &[], &steps))
        .await
        .unwrap();
    assert_eq!(r.fake.containers_created(), 4);
    assert_eq!(r.fake.posts().len(), 2);
}
