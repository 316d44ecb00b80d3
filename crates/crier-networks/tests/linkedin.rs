//! The LinkedIn connector against its fake (`crier-fakes/src/linkedin.rs`): what is special
//! to LinkedIn. One approval connects the member and their pages; the `LinkedIn-Version` and
//! Rest.li headers go on every call; the commentary is escaped as `little`; images, multi-image,
//! multi-part video and documents; every URN kept before the next step, so a retry resumes;
//! a lost answer found by the author's recent posts, or by the duplicate refusal; each
//! documented error; the daily throttle's pause until midnight UTC; expiry, refresh, revoke.

#[path = "support/hosted.rs"]
mod hosted;

use std::time::Duration;

use crier_core::clock::from_ms;
use crier_fakes::linkedin::{LinkedInFake, OTHER_PAGE, PAGE};
use crier_fakes::{FakeNetwork, Fault, kit};
use crier_networks::linkedin;
use crier_networks::{
    Attachment, Connected, Credentials, MediaMeta, MemorySteps, NetworkError, Part,
};
use crier_store::{Account, PostOverride};
use hosted::{Media, account_from, authorize, exchange, session as s};

/// 2027-01-15T08:00:00Z.
const T0: i64 = 1_799_971_200_000 + 8 * 3600 * 1000;

type Rig = hosted::Rig<LinkedInFake>;

async fn rig() -> Rig {
    Rig::start(from_ms(T0), LinkedInFake::start).await
}

/// Connects through the fake's authorization server: every account of the approval.
async fn connect_all(r: &Rig) -> Vec<Connected> {
    let grant = r.grant().pkce(Some("ignored"), None);
    grant.connect_all(r.net.as_ref()).await.expect("connected")
}

fn options(visibility: Option<&str>) -> &'static PostOverride {
    let mut o = PostOverride::default();
    if let Some(v) = visibility {
        o.options.insert("visibility".into(), v.into());
    }
    Box::leak(Box::new(o))
}

fn part<'a>(
    text: &'a str,
    media: &'a [Attachment],
    key: &'a str,
    steps: &'a MemorySteps,
) -> Part<'a> {
    Part {
        idem_key: key,
        ..hosted::part(text, media, steps)
    }
}

fn attachment(bytes: Vec<u8>, ct: &str, w: u32, h: u32) -> Attachment {
    hosted::attachment(bytes, ct)
        .sized(w, h)
        .lasting(ct.starts_with("video/").then_some(12_000))
        .alt(Some("a grey square"))
        .named("deck.pdf")
}

/// How long after a create call a miss stays "cannot tell" with the suite's 2 s timeout.
fn settle() -> Duration {
    crier_networks::hosted::SETTLE + Duration::from_secs(2)
}

fn png() -> Attachment {
    attachment(kit::png(16, 16), "image/png", 16, 16)
}

/// The member and page sessions' accounts and credentials.
async fn connected(r: &Rig) -> (Account, Account, Credentials) {
    let all = connect_all(r).await;
    (
        account_from(&all[0], "linkedin"),
        account_from(&all[1], "linkedin"),
        all[0].credentials.clone(),
    )
}

#[test]
fn rules_count_3000_characters_and_refuse_threads_mixes_and_bad_visibility() {
    let r = &*linkedin::RULES;
    assert!(r.check(&["é".repeat(3000)], &[]).is_empty());
    let long = r.check(&["x".repeat(3001)], &[]);
    assert_eq!(long[0].rule, "linkedin.text.max_characters");
    let thread = r.check(&["one".into(), "two".into()], &[]);
    assert_eq!(thread[0].rule, "linkedin.thread.unsupported");
    let img = |id: &str| MediaMeta {
        id: id.into(),
        content_type: "image/png".into(),
        size: 10,
        width: Some(10),
        height: Some(10),
        duration_ms: None,
        alt_text: Some("a".repeat(4087)),
        filename: "a.png".into(),
    };
    let many: Vec<MediaMeta> = (0..21).map(|i| img(&format!("m{i}"))).collect();
    let rules: Vec<String> = r
        .check(&["hi".into()], &many)
        .into_iter()
        .map(|v| v.rule)
        .collect();
    assert!(
        rules.contains(&"linkedin.media.max_count".into()),
        "{rules:?}"
    );
    assert!(
        rules.contains(&"linkedin.media.max_alt_text".into()),
        "{rules:?}"
    );
    let mut video = img("v");
    video.content_type = "video/mp4".into();
    video.alt_text = None;
    let mixed: Vec<String> = r
        .check(&["hi".into()], &[img("a"), video])
        .into_iter()
        .map(|v| v.rule)
        .collect();
    assert!(mixed.contains(&"linkedin.media.mixed".into()), "{mixed:?}");
    let bad = serde_json::from_value(serde_json::json!({"visibility": "FRIENDS"})).unwrap();
    assert_eq!(r.check_options(&bad)[0].rule, "linkedin.options.visibility");
    let ok = serde_json::from_value(serde_json::json!({"visibility": "LOGGED_IN"})).unwrap();
    assert!(r.check_options(&ok).is_empty());
}

#[tokio::test]
async fn one_approval_connects_the_member_then_each_administered_page() {
    let r = rig().await;
    let client = r.fake.client();
    let url = r
        .net
        .authorize_url(&authorize(&client, "st", Some("c")))
        .unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(
        q["scope"],
        "openid profile w_member_social r_organization_social w_organization_social rw_organization_admin"
    );
    assert!(
        !q.contains_key("code_challenge"),
        "no PKCE for a confidential client"
    );
    assert!(url.path().ends_with("/oauth/v2/authorization"));

    let all = connect_all(&r).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0].external_id, "urn:li:person:user-1");
    assert_eq!(all[0].display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(all[1].external_id, format!("urn:li:organization:{PAGE}"));
    assert_eq!(all[1].handle, "crier-test-co");
    assert_eq!(all[1].display_name.as_deref(), Some("Crier Test Co"));
    assert_eq!(
        all[1].profile_url.as_deref(),
        Some("https://www.linkedin.com/company/crier-test-co/")
    );
    let c = &all[0].credentials;
    assert_eq!(
        c, &all[1].credentials,
        "one token for the member and their pages"
    );
    assert_eq!(c.expires_at, Some(T0 + 5_184_000 * 1000), "60 days");
    assert!(c.refresh_token.is_some());
    assert_eq!(
        c.client.as_ref().map(|c| c.client_id.as_str()),
        Some("crier-client")
    );
    assert!(
        !all.iter()
            .any(|a| a.external_id.ends_with(&OTHER_PAGE.to_string()))
    );

    // exchange_code answers the member alone.
    let (code, _) = kit::approve(&url).await;
    let one = r
        .net
        .exchange_code(&exchange(&client, &code, None))
        .await
        .unwrap();
    assert_eq!(one.external_id, "urn:li:person:user-1");
    // A used code is refused as the grant it is.
    let again = r
        .net
        .exchange_code(&exchange(&client, &code, None))
        .await
        .unwrap_err();
    assert_eq!(again.code(), "account_disconnected", "{again:?}");
}

#[tokio::test]
async fn every_rest_call_names_the_version_and_the_fake_refuses_one_without() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    let steps = MemorySteps::default();
    r.net
        .publish(s(&member, &creds), part("hello", &[png()], "k", &steps))
        .await
        .unwrap();
    let rest: Vec<_> = r
        .fake
        .faults()
        .seen()
        .into_iter()
        .filter(|x| x.path.starts_with("/rest/"))
        .collect();
    assert!(rest.len() >= 4, "{rest:?}");
    for x in &rest {
        assert_eq!(
            x.headers.get("linkedin-version").unwrap(),
            linkedin::call::VERSION,
            "{}",
            x.path
        );
        assert_eq!(
            x.headers.get("x-restli-protocol-version").unwrap(),
            "2.0.0",
            "{}",
            x.path
        );
    }
    let http = reqwest::Client::new();
    let url = format!(
        "{}rest/posts?q=author&author=urn%3Ali%3Aperson%3Auser-1",
        r.fake.base()
    );
    let missing = http
        .get(&url)
        .bearer_auth(&creds.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 426);
    let body: serde_json::Value = serde_json::from_slice(&missing.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], "VERSION_MISSING");
    let old = http
        .get(&url)
        .bearer_auth(&creds.access_token)
        .header("LinkedIn-Version", "202001")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status().as_u16(), 426);
}

#[tokio::test]
async fn commentary_is_little_text_with_mentions_and_hashtags_kept() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    let steps = MemorySteps::default();
    let text =
        "Shipped (finally) with @[Crier Test Co](urn:li:organization:2414183) #rust *wow* a_b";
    let done = r
        .net
        .publish(s(&member, &creds), part(text, &[], "k", &steps))
        .await
        .unwrap();
    assert!(done.external_id.starts_with("urn:li:share:"));
    assert_eq!(
        done.url,
        format!("https://www.linkedin.com/feed/update/{}/", done.external_id)
    );
    assert_eq!(
        r.fake.commentary(&done.external_id).unwrap(),
        "Shipped \\(finally\\) with @[Crier Test Co](urn:li:organization:2414183) #rust \\*wow\\* a\\_b"
    );
    assert_eq!(r.fake.posts()[0].text, text);
    let (_, visibility) = r.fake.post_json(&done.external_id).unwrap();
    assert_eq!(visibility, "PUBLIC");
    // Longer than 3000 characters is refused before anything is sent.
    let long = "x".repeat(3001);
    let e = r
        .net
        .publish(
            s(&member, &creds),
            part(&long, &[], "k2", &MemorySteps::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "network_rejected");
    // No threads.
    let parent = [done.external_id.clone()];
    let reply = Part {
        thread: &parent,
        ..part("reply", &[], "k3", &steps)
    };
    assert_eq!(
        r.net
            .publish(s(&member, &creds), reply)
            .await
            .unwrap_err()
            .code(),
        "network_rejected"
    );
}

#[tokio::test]
async fn a_page_posts_as_itself_and_visibility_is_the_accounts_option() {
    let r = rig().await;
    let (member, page, creds) = connected(&r).await;
    let steps = MemorySteps::default();
    let p = Part {
        options: options(Some("LOGGED_IN")),
        ..part("From the page", &[], "k", &steps)
    };
    let done = r.net.publish(s(&page, &creds), p).await.unwrap();
    let post = r
        .fake
        .posts()
        .into_iter()
        .find(|p| p.id == done.external_id)
        .unwrap();
    assert_eq!(post.author, format!("urn:li:organization:{PAGE}"));
    assert_eq!(r.fake.post_json(&done.external_id).unwrap().1, "LOGGED_IN");
    // CONNECTIONS is for members: a page's is refused; a member's goes.
    let steps2 = MemorySteps::default();
    let conn = Part {
        options: options(Some("CONNECTIONS")),
        ..part("Connections only", &[], "k2", &steps2)
    };
    assert_eq!(
        r.net
            .publish(s(&page, &creds), conn)
            .await
            .unwrap_err()
            .code(),
        "network_rejected"
    );
    let steps3 = MemorySteps::default();
    let conn = Part {
        options: options(Some("CONNECTIONS")),
        ..part("Connections only", &[], "k3", &steps3)
    };
    r.net.publish(s(&member, &creds), conn).await.unwrap();
    // A page the member no longer administers: the token cannot post as it.
    r.fake.remove_admin(PAGE);
    let e = r
        .net
        .publish(
            s(&page, &creds),
            part("No longer mine", &[], "k4", &MemorySteps::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "account_disconnected", "{e:?}");
}

#[tokio::test]
async fn images_go_up_as_multi_image_and_a_retry_reuses_the_kept_urns() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    let media = vec![png(), png(), png()];
    let steps = MemorySteps::default();
    // The post call fails after the images are up.
    r.fake.faults().push(Fault::status(
        "POST",
        "/rest/posts",
        500,
        serde_json::json!({"status": 500, "message": "Internal Server Error"}),
    ));
    let e = r
        .net
        .publish(s(&member, &creds), part("Three", &media, "k", &steps))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "network_unavailable");
    let kept = steps.snapshot();
    for i in 0..3 {
        assert!(kept[&format!("img{i}")].starts_with("urn:li:image:"));
        assert_eq!(kept[&format!("img{i}.up")], kept[&format!("img{i}")]);
    }
    assert_eq!(r.fake.assets(), 3);
    let done = r
        .net
        .publish(s(&member, &creds), part("Three", &media, "k", &steps))
        .await
        .unwrap();
    assert_eq!(r.fake.assets(), 3, "no image uploaded twice");
    let (content, _) = r.fake.post_json(&done.external_id).unwrap();
    let images = content.unwrap()["multiImage"]["images"]
        .as_array()
        .unwrap()
        .clone();
    let ids: Vec<&str> = images.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec![
            kept["img0"].as_str(),
            kept["img1"].as_str(),
            kept["img2"].as_str()
        ]
    );
    assert_eq!(images[0]["altText"], "a grey square");
    assert_eq!(r.fake.posts()[0].media, vec!["image/png"; 3]);
}

#[tokio::test]
async fn an_image_initialized_but_not_uploaded_is_initialized_again() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    let media = vec![png()];
    let steps = MemorySteps::default();
    r.fake.faults().push(Fault::status(
        "PUT",
        "/dms-uploads/*",
        503,
        serde_json::Value::Null,
    ));
    let e = r
        .net
        .publish(s(&member, &creds), part("One", &media, "k", &steps))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "network_unavailable");
    let first = steps.snapshot()["img0"].clone();
    assert!(!steps.snapshot().contains_key("img0.up"));
    let done = r
        .net
        .publish(s(&member, &creds), part("One", &media, "k", &steps))
        .await
        .unwrap();
    assert_ne!(steps.snapshot()["img0"], first);
    let (content, _) = r.fake.post_json(&done.external_id).unwrap();
    assert_eq!(
        content.unwrap()["media"]["id"],
        steps.snapshot()["img0"].as_str()
    );
}

#[tokio::test]
async fn an_upload_url_off_linkedins_hosts_gets_no_token() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    // Another server: whatever reaches it is counted.
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    let other = kit::serve(axum::Router::new().fallback(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { axum::http::StatusCode::OK }
    }))
    .await;
    r.fake.faults().push(Fault::status(
        "POST",
        "/rest/images",
        200,
        serde_json::json!({"value": {
            "uploadUrl": format!("{other}dms-uploads/elsewhere"),
            "uploadUrlExpiresAt": 0,
            "image": "urn:li:image:D4E10AQelsewhere",
        }}),
    ));
    let media = vec![png()];
    let e = r
        .net
        .publish(
            s(&member, &creds),
            part("One", &media, "k", &MemorySteps::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "network_unavailable", "{e:?}");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing sent there"
    );
    assert!(r.fake.posts().is_empty());
}

#[tokio::test]
async fn media_linkedin_would_refuse_is_refused_first_or_mapped() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    let big = attachment(kit::png(4, 4), "image/png", 8000, 4520);
    let e = r
        .net
        .publish(
            s(&member, &creds),
            part("big", &[big], "k", &MemorySteps::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "media_rejected", "{e:?}");
    let mix = [png(), attachment(kit::mp4(10), "video/mp4", 10, 10)];
    let e = r
        .net
        .publish(
            s(&member, &creds),
            part("mix", &mix, "k", &MemorySteps::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "media_rejected");
    assert_eq!(r.fake.assets(), 0, "nothing uploaded for refused media");
    // Bytes that are no image: LinkedIn fails processing and refuses the post's content.
    let fake_png = attachment(b"not an image at all".to_vec(), "image/png", 4, 4);
    let e = r
        .net
        .publish(
            s(&member, &creds),
            part("broken", &[fake_png], "k", &MemorySteps::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "media_rejected", "{e:?}");
    assert!(r.fake.posts().is_empty());
}

#[tokio::test]
async fn a_video_goes_up_in_parts_is_finalized_processed_and_resumed() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    let video = attachment(kit::mp4(9 * 1024 * 1024), "video/mp4", 1080, 1920);
    let media = vec![video];
    let steps = MemorySteps::default();
    r.fake.faults().push(Fault::status(
        "POST",
        "/rest/posts",
        503,
        serde_json::json!({"status": 503, "message": "Service Unavailable"}),
    ));
    let e = r
        .net
        .publish(s(&member, &creds), part("Video", &media, "k", &steps))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "network_unavailable");
    assert_eq!(
        r.fake.faults().count("PUT", "/dms-uploads/video/*"),
        3,
        "three 4 MiB parts"
    );
    assert_eq!(
        r.fake.faults().count("POST", "/rest/videos"),
        2,
        "initialize and finalize"
    );
    let urn = steps.snapshot()["vid"].clone();
    assert_eq!(steps.snapshot()["vid.up"], urn);
    let done = r
        .net
        .publish(s(&member, &creds), part("Video", &media, "k", &steps))
        .await
        .unwrap();
    assert_eq!(
        r.fake.faults().count("PUT", "/dms-uploads/video/*"),
        3,
        "not uploaded again"
    );
    assert!(done.external_id.starts_with("urn:li:ugcPost:"));
    assert_eq!(
        r.fake.post_json(&done.external_id).unwrap().0.unwrap()["media"]["id"],
        urn.as_str()
    );
    assert_eq!(r.fake.posts()[0].media, vec!["video/mp4"]);
}

#[tokio::test]
async fn a_pdf_goes_up_as_a_document_with_a_title() {
    let r = rig().await;
    let (_, page, creds) = connected(&r).await;
    let pdf = attachment(b"%PDF-1.7\n1 0 obj\n".to_vec(), "application/pdf", 0, 0);
    let steps = MemorySteps::default();
    let done = r
        .net
        .publish(s(&page, &creds), part("Our deck", &[pdf], "k", &steps))
        .await
        .unwrap();
    let content = r.fake.post_json(&done.external_id).unwrap().0.unwrap();
    assert!(
        content["media"]["id"]
            .as_str()
            .unwrap()
            .starts_with("urn:li:document:")
    );
    assert_eq!(content["media"]["title"], "deck.pdf");
    assert_eq!(steps.snapshot()["doc.up"], steps.snapshot()["doc"]);
}

#[tokio::test]
async fn sent_at_is_the_first_attempts_so_a_later_lookup_still_finds_it() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    let steps = MemorySteps::default();
    r.fake.faults().push(Fault::lose("POST", "/rest/posts"));
    let e = r
        .net
        .publish(s(&member, &creds), part("Sent first", &[], "k", &steps))
        .await
        .unwrap_err();
    assert_eq!(e, NetworkError::Timeout);
    let first = steps.snapshot()["sent_at"].clone();
    // An hour later a second attempt fails before LinkedIn does anything.
    r.clock.advance(Duration::from_secs(3600));
    r.fake.faults().push(Fault::status(
        "POST",
        "/rest/posts",
        500,
        serde_json::json!({"status": 500, "message": "Internal Server Error"}),
    ));
    let e = r
        .net
        .publish(s(&member, &creds), part("Sent first", &[], "k", &steps))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "network_unavailable");
    assert_eq!(steps.snapshot()["sent_at"], first, "the first attempt's");
    let found = r
        .net
        .lookup(s(&member, &creds), part("Sent first", &[], "k", &steps))
        .await
        .unwrap()
        .expect("the first attempt's post, inside the window");
    assert_eq!(r.fake.posts().len(), 1);
    assert_eq!(found.external_id, r.fake.posts()[0].id);
}

#[tokio::test]
async fn a_lost_answer_is_found_by_the_authors_recent_posts() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    let steps = MemorySteps::default();
    // Nothing sent yet: certainly not published.
    assert_eq!(
        r.net
            .lookup(s(&member, &creds), part("Lost (once)", &[], "k", &steps))
            .await
            .unwrap(),
        None
    );
    r.fake.faults().push(Fault::lose("POST", "/rest/posts"));
    let e = r
        .net
        .publish(s(&member, &creds), part("Lost (once)", &[], "k", &steps))
        .await
        .unwrap_err();
    assert_eq!(e, NetworkError::Timeout);
    assert!(steps.snapshot().contains_key("sent_at"));
    let found = r
        .net
        .lookup(s(&member, &creds), part("Lost (once)", &[], "k", &steps))
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.external_id, r.fake.posts()[0].id);
    // A part sent but not there: the list goes back far enough to be sure.
    let other = MemorySteps::default();
    r.fake.faults().push(Fault::status(
        "POST",
        "/rest/posts",
        504,
        serde_json::Value::Null,
    ));
    r.net
        .publish(s(&member, &creds), part("Never landed", &[], "k2", &other))
        .await
        .unwrap_err();
    // Not at once: LinkedIn may still be making it.
    let e = r
        .net
        .lookup(s(&member, &creds), part("Never landed", &[], "k2", &other))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "network_unavailable", "cannot tell yet: {e:?}");
    r.clock.advance(settle());
    assert_eq!(
        r.net
            .lookup(s(&member, &creds), part("Never landed", &[], "k2", &other))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_miss_soon_after_the_latest_create_call_is_cannot_tell() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    // LinkedIn makes the post and answers 500; it lists the post two minutes later.
    r.fake.set_creation_lag(Duration::from_secs(120));
    r.fake.fail_after_create(1);
    let steps = MemorySteps::default();
    let e = r
        .net
        .publish(s(&member, &creds), part("Made late", &[], "k", &steps))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "network_unavailable");
    r.clock.advance(Duration::from_secs(30));
    let e = r
        .net
        .lookup(s(&member, &creds), part("Made late", &[], "k", &steps))
        .await
        .unwrap_err();
    let NetworkError::Unavailable { retry_after, .. } = &e else {
        panic!("cannot tell: {e:?}")
    };
    assert_eq!(*retry_after, Some(settle() - Duration::from_secs(30)));
    r.clock.advance(retry_after.unwrap());
    let found = r
        .net
        .lookup(s(&member, &creds), part("Made late", &[], "k", &steps))
        .await
        .unwrap()
        .expect("found once listed");
    assert_eq!(r.fake.posts().len(), 1);
    assert_eq!(found.external_id, r.fake.posts()[0].id);

    // The window runs from the latest call (`last_sent_at`), not the first (`sent_at`).
    let steps = MemorySteps::default();
    let refused = serde_json::json!({"status": 500, "message": "Internal Server Error"});
    r.fake
        .faults()
        .push(Fault::status("POST", "/rest/posts", 500, refused).times(2));
    for _ in 0..2 {
        r.net
            .publish(s(&member, &creds), part("Never made", &[], "k2", &steps))
            .await
            .unwrap_err();
        r.clock.advance(Duration::from_secs(60));
    }
    let kept = steps.snapshot();
    let at = |name: &str| kept[name].parse::<i64>().unwrap();
    assert_eq!(at("last_sent_at") - at("sent_at"), 60_000, "{kept:?}");
    r.clock.advance(settle() - Duration::from_secs(90));
    let e = r
        .net
        .lookup(s(&member, &creds), part("Never made", &[], "k2", &steps))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "network_unavailable", "{e:?}");
    r.clock.advance(Duration::from_secs(30));
    assert_eq!(
        r.net
            .lookup(s(&member, &creds), part("Never made", &[], "k2", &steps))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_lookup_that_cannot_see_back_far_enough_says_so() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    let steps = MemorySteps::default();
    r.fake.faults().push(Fault::status(
        "POST",
        "/rest/posts",
        504,
        serde_json::Value::Null,
    ));
    r.net
        .publish(s(&member, &creds), part("Buried", &[], "k", &steps))
        .await
        .unwrap_err();
    // 50 newer posts: the look-up reads on (a page of 50 at a time) and is sure.
    for i in 0..500 {
        if i == 50 {
            r.clock.advance(settle());
            assert_eq!(
                r.net
                    .lookup(s(&member, &creds), part("Buried", &[], "k", &steps))
                    .await
                    .unwrap(),
                None,
                "read past the first page: certainly not there"
            );
        }
        let st = MemorySteps::default();
        r.clock.advance(Duration::from_millis(100));
        r.net
            .publish(
                s(&member, &creds),
                part(&format!("post {i}"), &[], "x", &st),
            )
            .await
            .unwrap();
    }
    let e = r
        .net
        .lookup(s(&member, &creds), part("Buried", &[], "k", &steps))
        .await
        .unwrap_err();
    // 500 newer posts: past what a look-up reads, so it cannot tell.
    assert_eq!(e.code(), "network_unavailable", "cannot tell: {e:?}");
}

#[tokio::test]
async fn a_duplicate_refusal_is_ours_only_after_an_earlier_attempt_sent_it() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    let steps = MemorySteps::default();
    r.fake.faults().push(Fault::lose("POST", "/rest/posts"));
    r.net
        .publish(s(&member, &creds), part("Say it once", &[], "k", &steps))
        .await
        .unwrap_err();
    // The retry publishes again (without a lookup): LinkedIn names the post it repeats.
    let again = r
        .net
        .publish(s(&member, &creds), part("Say it once", &[], "k", &steps))
        .await
        .unwrap();
    let posts = r.fake.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(again.external_id, posts[0].id);
    // Another part with the same text, never sent before: LinkedIn's refusal stands.
    let e = r
        .net
        .publish(
            s(&member, &creds),
            part("Say it once", &[], "other", &MemorySteps::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "network_rejected");
}

#[tokio::test]
async fn throttles_pause_until_the_reset_named_or_midnight_utc() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    r.fake.faults().push(r.fake.rate_limited_daily());
    let e = r
        .net
        .publish(
            s(&member, &creds),
            part("Later", &[], "k", &MemorySteps::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(16 * 3600 + 60))
        }
    );
    r.fake.faults().push(r.fake.rate_limited(600));
    let e = r
        .net
        .publish(
            s(&member, &creds),
            part("Later", &[], "k", &MemorySteps::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(600))
        }
    );
}

#[tokio::test]
async fn each_documented_error_maps_to_its_code() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    for (i, (fault, code)) in r.fake.documented_errors().into_iter().enumerate() {
        let described = format!("{fault:?}");
        r.fake.faults().clear();
        r.fake.faults().push(fault);
        let key = format!("e{i}");
        let e = r
            .net
            .publish(
                s(&member, &creds),
                part("err", &[], &key, &MemorySteps::default()),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{described} → {e:?}");
    }
}

#[tokio::test]
async fn tokens_expire_after_60_days_refresh_and_revoke_leaves_the_shared_token() {
    let r = rig().await;
    let (member, page, creds) = connected(&r).await;
    r.clock.advance(Duration::from_secs(5_184_000 + 1));
    let e = r
        .net
        .publish(
            s(&member, &creds),
            part("Stale", &[], "k", &MemorySteps::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "account_disconnected");
    let fresh = r.net.refresh(s(&member, &creds)).await.unwrap();
    assert_ne!(fresh.access_token, creds.access_token);
    assert!(fresh.client.is_some() && fresh.refresh_token.is_some());
    let done = r
        .net
        .publish(
            s(&member, &fresh),
            part("Fresh", &[], "k2", &MemorySteps::default()),
        )
        .await
        .unwrap();
    r.fake.like(&done.external_id, 3);
    let m = r
        .net
        .metrics(s(&member, &fresh), &done.external_id)
        .await
        .unwrap();
    assert_eq!(m.likes, 3);
    // The member and the page share the token: disconnecting either revokes nothing, so the
    // other keeps publishing.
    r.net.revoke(s(&page, &fresh)).await.unwrap();
    r.net
        .publish(
            s(&member, &fresh),
            part("Still here", &[], "k3", &MemorySteps::default()),
        )
        .await
        .unwrap();
    r.net.revoke(s(&member, &fresh)).await.unwrap();
    r.net
        .publish(
            s(&page, &fresh),
            part("The page too", &[], "k4", &MemorySteps::default()),
        )
        .await
        .unwrap();
    assert_eq!(
        r.seen("POST", |p| p == "/oauth/v2/revoke"),
        0,
        "nothing revoked at LinkedIn"
    );
    // Without a refresh token the account must connect again.
    let bare = Credentials {
        refresh_token: None,
        ..fresh
    };
    assert_eq!(
        r.net.refresh(s(&member, &bare)).await.unwrap_err().code(),
        "account_disconnected"
    );
}

#[tokio::test]
async fn a_refused_listing_is_cannot_tell_not_a_disconnected_account() {
    let r = rig().await;
    let (member, _, creds) = connected(&r).await;
    let steps = MemorySteps::default();
    r.fake.faults().push(Fault::lose("POST", "/rest/posts"));
    r.net
        .publish(s(&member, &creds), part("Hidden", &[], "k", &steps))
        .await
        .unwrap_err();
    r.fake.faults().push(Fault::status(
        "GET",
        "/rest/posts",
        403,
        serde_json::json!({"status": 403, "serviceErrorCode": 100, "code": "ACCESS_DENIED",
            "message": "Not enough permissions to access: partnerApiPostsExternal.FINDER-author.20251101"}),
    ));
    let e = r
        .net
        .lookup(s(&member, &creds), part("Hidden", &[], "k", &steps))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "network_unavailable", "{e:?}");
    // An expired token while looking is the token's problem, as anywhere.
    r.clock.advance(Duration::from_secs(5_184_000 + 1));
    let e = r
        .net
        .lookup(s(&member, &creds), part("Hidden", &[], "k", &steps))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "account_disconnected", "{e:?}");
}
