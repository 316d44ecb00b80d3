//! The Bluesky connector against the real PDS software (npm `@atproto/pds` with an in-memory
//! PLC), started on 127.0.0.1 by `scripts/peers/pds.sh start`, which writes
//! `CRIER_TEST_PDS_URL` to `target/peers/pds.env`. Every record crier writes is read back from
//! the PDS itself. Error paths the PDS cannot be made to produce (429, a hang, a 5xx) are
//! answered by local servers of the test.

#[path = "support/pds.rs"]
mod pds;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crier_core::accounts::AccountStatus;
use crier_core::ids::{AccountId, WorkspaceId};
use crier_networks::bluesky::{Bluesky, BlueskyConfig};
use crier_networks::{
    Attachment, Connected, Credentials, Login, MediaMeta, Network, NetworkError, Part, Session,
};
use crier_store::{Account, PostOverride};
use pds::{Action, Proxy, Response, TestAccount};
use serde_json::Value;

fn bluesky(allow_private: bool) -> Bluesky {
    Bluesky::new(
        BlueskyConfig {
            default_service: "https://bsky.social".into(),
            allow_private_networks: allow_private,
            timeout: Duration::from_secs(15),
        },
        Arc::new(crier_core::SystemClock),
    )
}

fn login_of(pds: &str, a: &TestAccount) -> Login {
    Login {
        identifier: a.handle.clone(),
        password: a.app_password.clone(),
        service: Some(pds.to_owned()),
    }
}

/// The account row as crier-app would keep it, acting through `service`.
fn account_row(c: &Connected, service: &str) -> Account {
    Account {
        id: AccountId::generate(),
        workspace_id: WorkspaceId::generate(),
        platform: "bluesky".into(),
        handle: c.handle.clone(),
        livemode: true,
        status: AccountStatus::Connected,
        created_at: 0,
        disconnected_at: None,
        external_id: c.external_id.clone(),
        service: Some(service.to_owned()),
        display_name: c.display_name.clone(),
        avatar_url: None,
        profile_url: None,
        credentials: None,
        token_expires_at: c.credentials.expires_at,
        refresh_at: None,
        updated_at: 0,
    }
}

/// A connected account on the PDS, reached at `service` (the PDS, or a proxy to it).
async fn connect(pds: &str, service: &str) -> (TestAccount, Connected, Account) {
    let a = pds::create_account(pds).await;
    let c = bluesky(true).login(&login_of(pds, &a)).await.unwrap();
    let row = account_row(&c, service);
    (a, c, row)
}

fn part<'a>(
    text: &'a str,
    thread: &'a [String],
    idem: &'a str,
    options: &'a PostOverride,
) -> Part<'a> {
    Part {
        text,
        media: &[],
        thread,
        options,
        idem_key: idem,
        steps: Box::leak(Box::<crier_networks::MemorySteps>::default()),
    }
}

/// A part to look up by its key alone (what these connectors look up by).
fn key_part(idem: &str) -> Part<'_> {
    Part {
        text: "",
        media: &[],
        thread: &[],
        options: Box::leak(Box::default()),
        idem_key: idem,
        steps: Box::leak(Box::<crier_networks::MemorySteps>::default()),
    }
}

fn no_options() -> PostOverride {
    PostOverride::default()
}

#[tokio::test]
async fn login_reads_the_account_and_refuses_a_wrong_app_password() {
    let Some(url) = pds::pds_url() else { return };
    let a = pds::create_account(&url).await;
    pds::set_profile(&url, &a, "Ada Lovelace").await;
    let net = bluesky(true);
    let c = net.login(&login_of(&url, &a)).await.unwrap();
    assert_eq!(c.external_id, a.did);
    assert_eq!(c.handle, a.handle);
    assert_eq!(c.display_name.as_deref(), Some("Ada Lovelace"));
    // This PDS's createSession carries no DID document: the account lives where it logged in.
    assert_eq!(
        c.service, None,
        "a Bluesky account is its DID, wherever it is hosted"
    );
    assert_eq!(c.credentials.service.as_deref(), Some(url.as_str()));
    let creds = &c.credentials;
    assert!(creds.access_token.starts_with("ey") && creds.refresh_token.is_some());
    let now = crier_core::SystemClock.now_ms();
    let exp = creds.expires_at.expect("the access token's exp");
    assert!(exp > now && exp < now + 24 * 3_600_000, "{exp} vs {now}");
    assert_eq!(creds.login.as_ref().unwrap().identifier, a.handle);
    assert!(
        !format!("{creds:?}").contains(&a.app_password),
        "no secret in Debug"
    );

    // By email too.
    let by_email = Login {
        identifier: a.email.clone(),
        ..login_of(&url, &a)
    };
    assert_eq!(net.login(&by_email).await.unwrap().external_id, a.did);

    // A wrong app password, an unknown handle.
    for login in [
        Login {
            password: "wrong-wrong-wrong".into(),
            ..login_of(&url, &a)
        },
        Login {
            identifier: "nobody-here.test".into(),
            ..login_of(&url, &a)
        },
    ] {
        let err = net.login(&login).await.unwrap_err();
        assert!(matches!(err, NetworkError::Unauthorized { .. }), "{err:?}");
        assert_eq!(err.code(), "account_disconnected");
    }
}

use crier_core::Clock as _;

#[tokio::test]
async fn refresh_renews_and_falls_back_to_a_new_session() {
    let Some(url) = pds::pds_url() else { return };
    let (a, c, row) = connect(&url, &url).await;
    let net = bluesky(true);
    let s = Session {
        account: &row,
        credentials: &c.credentials,
    };
    let fresh = net.refresh(s).await.unwrap();
    assert_ne!(fresh.refresh_token, c.credentials.refresh_token, "rotated");
    assert!(fresh.expires_at.is_some());
    assert_eq!(fresh.login, c.credentials.login, "the login is kept");
    // The new access token publishes.
    let opts = no_options();
    let s = Session {
        account: &row,
        credentials: &fresh,
    };
    net.publish(s, part("after refresh", &[], &pds::unique("k"), &opts))
        .await
        .unwrap();

    // A refresh token the PDS no longer takes (revoked): a new session from the login.
    net.revoke(s).await.unwrap();
    let again = net.refresh(s).await.unwrap();
    assert_ne!(again.refresh_token, fresh.refresh_token);
    net.publish(
        Session {
            account: &row,
            credentials: &again,
        },
        part("after a new session", &[], &pds::unique("k"), &opts),
    )
    .await
    .unwrap();
    // Revoked and no login to fall back on: Unauthorized.
    let bare = Credentials {
        login: None,
        ..fresh.clone()
    };
    let err = net
        .refresh(Session {
            account: &row,
            credentials: &bare,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, NetworkError::Unauthorized { .. }), "{err:?}");
    // Revoked and a login that is refused: Unauthorized.
    let wrong = Credentials {
        login: Some(Login {
            password: "not-it-at-all".into(),
            ..login_of(&url, &a)
        }),
        ..fresh.clone()
    };
    let err = net
        .refresh(Session {
            account: &row,
            credentials: &wrong,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, NetworkError::Unauthorized { .. }), "{err:?}");
    // A garbage access token is refused when publishing.
    let garbage = Credentials {
        access_token: "not.a.jwt".into(),
        ..again.clone()
    };
    let err = net
        .publish(
            Session {
                account: &row,
                credentials: &garbage,
            },
            part("x", &[], &pds::unique("k"), &opts),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NetworkError::Unauthorized { .. }), "{err:?}");
}

fn facet_spans(record: &Value) -> Vec<(usize, usize, Value)> {
    record["value"]["facets"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|f| {
                    (
                        f["index"]["byteStart"].as_u64().unwrap() as usize,
                        f["index"]["byteEnd"].as_u64().unwrap() as usize,
                        f["features"][0].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn text_with_link_mention_and_tag_facets_at_byte_offsets() {
    let Some(url) = pds::pds_url() else { return };
    let (_, c, row) = connect(&url, &url).await;
    let bob = pds::create_account(&url).await;
    let net = bluesky(true);
    let text = format!(
        "Héllo 👋 @{} and @nobody-zz9.test, see https://example.com/a?b=1. #crier #日本",
        bob.handle
    );
    let opts = PostOverride {
        language: Some("fr".into()),
        ..PostOverride::default()
    };
    let published = net
        .publish(
            Session {
                account: &row,
                credentials: &c.credentials,
            },
            part(&text, &[], &pds::unique("k"), &opts),
        )
        .await
        .unwrap();
    assert!(
        published
            .external_id
            .starts_with(&format!("at://{}/app.bsky.feed.post/", c.external_id))
    );
    let rkey = published.external_id.rsplit('/').next().unwrap();
    assert_eq!(
        published.url,
        format!("https://bsky.app/profile/{}/post/{rkey}", c.external_id)
    );

    let record = pds::get_record(&url, &published.external_id).await;
    assert_eq!(record["value"]["text"], text);
    assert_eq!(record["value"]["langs"], serde_json::json!(["fr"]));
    let spans = facet_spans(&record);
    let got: Vec<(&str, &str)> = spans
        .iter()
        .map(|(s, e, f)| (&text[*s..*e], f["$type"].as_str().unwrap()))
        .collect();
    let mention = format!("@{}", bob.handle);
    assert_eq!(
        got,
        vec![
            (mention.as_str(), "app.bsky.richtext.facet#mention"),
            ("https://example.com/a?b=1", "app.bsky.richtext.facet#link"),
            ("#crier", "app.bsky.richtext.facet#tag"),
            ("#日本", "app.bsky.richtext.facet#tag"),
        ],
        "the unresolved @nobody-zz9.test stays text"
    );
    // Byte offsets, not characters: "Héllo 👋 " is 12 bytes (9 characters).
    assert_eq!(spans[0].0, 12);
    assert_eq!(spans[0].2["did"], bob.did);
    assert_eq!(spans[1].2["uri"], "https://example.com/a?b=1");
    assert_eq!(spans[2].2["tag"], "crier");
    assert_eq!(spans[3].2["tag"], "日本");
}

#[tokio::test]
async fn a_thread_replies_with_root_and_parent() {
    let Some(url) = pds::pds_url() else { return };
    let (_, c, row) = connect(&url, &url).await;
    let net = bluesky(true);
    let s = Session {
        account: &row,
        credentials: &c.credentials,
    };
    let opts = no_options();
    let base = pds::unique("post");
    let mut ids: Vec<String> = Vec::new();
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        let idem = format!("{base}:{i}");
        let p = net
            .publish(s, part(text, &ids, &idem, &opts))
            .await
            .unwrap();
        ids.push(p.external_id);
    }
    let r: Vec<Value> = futures_all(&url, &ids).await;
    assert!(r[0]["value"].get("reply").is_none());
    let reply = |i: usize, k: &str| r[i]["value"]["reply"][k].clone();
    assert_eq!(reply(1, "root")["uri"], ids[0]);
    assert_eq!(reply(1, "root")["cid"], r[0]["cid"]);
    assert_eq!(reply(1, "parent")["uri"], ids[0]);
    assert_eq!(reply(2, "root")["uri"], ids[0]);
    assert_eq!(reply(2, "root")["cid"], r[0]["cid"]);
    assert_eq!(reply(2, "parent")["uri"], ids[1]);
    assert_eq!(reply(2, "parent")["cid"], r[1]["cid"]);

    // A reply to a post that is not there is refused before anything is written.
    let gone = vec![format!(
        "at://{}/app.bsky.feed.post/2222222222222",
        c.external_id
    )];
    let err = net
        .publish(s, part("orphan", &gone, &pds::unique("k"), &opts))
        .await
        .unwrap_err();
    assert!(matches!(err, NetworkError::Rejected { .. }), "{err:?}");
    assert_eq!(pds::list_posts(&url, &c.external_id).await.len(), 3);
}

async fn futures_all(url: &str, ids: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for id in ids {
        out.push(pds::get_record(url, id).await);
    }
    out
}

fn image(bytes: Vec<u8>, content_type: &str, w: u32, h: u32, alt: &str) -> Attachment {
    Attachment {
        url: String::new(),
        meta: MediaMeta {
            id: "med_1".into(),
            content_type: content_type.into(),
            size: bytes.len() as u64,
            width: Some(w),
            height: Some(h),
            duration_ms: None,
            alt_text: Some(alt.into()),
            filename: "a.png".into(),
        },
        bytes: Bytes::from(bytes),
    }
}

#[tokio::test]
async fn an_image_with_alt_text_and_aspect_ratio() {
    let Some(url) = pds::pds_url() else { return };
    let (_, c, row) = connect(&url, &url).await;
    let net = bluesky(true);
    let s = Session {
        account: &row,
        credentials: &c.credentials,
    };
    let opts = no_options();
    let png = pds::png(30, 20);
    let media = [image(
        png.clone(),
        "image/png",
        30,
        20,
        "a gradient, blue-ish",
    )];
    let p = net
        .publish(
            s,
            Part {
                media: &media,
                ..part("look", &[], &pds::unique("k"), &opts)
            },
        )
        .await
        .unwrap();
    let record = pds::get_record(&url, &p.external_id).await;
    let embed = &record["value"]["embed"];
    assert_eq!(embed["$type"], "app.bsky.embed.images");
    let img = &embed["images"][0];
    assert_eq!(img["alt"], "a gradient, blue-ish");
    assert_eq!(
        img["aspectRatio"],
        serde_json::json!({"width": 30, "height": 20})
    );
    assert_eq!(img["image"]["mimeType"], "image/png");
    assert_eq!(img["image"]["size"], png.len());
    let cid = img["image"]["ref"]["$link"].as_str().expect("a blob ref");
    // The blob is the bytes we sent.
    let (status, blob) = pds::get_bytes(
        &url,
        "com.atproto.sync.getBlob",
        &[("did", c.external_id.as_str()), ("cid", cid)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(blob, png);

    // Refused before any upload: a video, an image over the lexicon's 1,000,000 bytes, five.
    let video = [Attachment {
        url: String::new(),
        meta: MediaMeta {
            content_type: "video/mp4".into(),
            ..media[0].meta.clone()
        },
        bytes: Bytes::from_static(b"\0\0\0\x18ftypmp42"),
    }];
    let big = [image(vec![0u8; 1_000_001], "image/png", 1, 1, "")];
    let five = vec![media[0].clone(); 5];
    for m in [&video[..], &big[..], &five[..]] {
        let err = net
            .publish(
                s,
                Part {
                    media: m,
                    ..part("x", &[], &pds::unique("k"), &opts)
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, NetworkError::MediaRejected { .. }), "{err:?}");
    }
    // Bytes that are not the image they claim to be (this PDS would store them as declared).
    let liar = [image(b"this is not a png".to_vec(), "image/png", 1, 1, "")];
    let jpeg_as_png = [image(pds::png(2, 2), "image/jpeg", 2, 2, "")];
    for m in [&liar[..], &jpeg_as_png[..]] {
        let err = net
            .publish(
                s,
                Part {
                    media: m,
                    ..part("x", &[], &pds::unique("k"), &opts)
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, NetworkError::MediaRejected { .. }), "{err:?}");
    }
    assert_eq!(pds::list_posts(&url, &c.external_id).await.len(), 1);
    // The rules say so first, with a rule id.
    let v = net
        .rules()
        .check(&["x".to_owned()], &[video[0].meta.clone()]);
    assert_eq!(v[0].rule, "bluesky.media.type", "{v:?}");
}

#[tokio::test]
async fn a_link_card_from_the_page_through_the_guarded_client() {
    let Some(url) = pds::pds_url() else { return };
    let (_, c, row) = connect(&url, &url).await;
    let net = bluesky(true);
    let s = Session {
        account: &row,
        credentials: &c.credentials,
    };
    let opts = no_options();
    let thumb = pds::png(8, 4);
    let page = r#"<html><head><title>fallback</title>
        <meta property="og:title" content="Launch &amp; party">
        <meta property="og:description" content="All about it">
        <meta property="og:image" content="/card.png">
        </head><body>hi</body></html>"#;
    let broken = r#"<html><head><meta property="og:title" content="No picture">
        <meta property="og:image" content="/missing.png"></head></html>"#;
    let site = pds::serve_static(vec![
        (
            "/page",
            Response::new(200, "text/html; charset=utf-8", page),
        ),
        ("/broken", Response::new(200, "text/html", broken)),
        ("/card.png", Response::new(200, "image/png", thumb.clone())),
        (
            "/huge",
            Response::new(200, "text/html", vec![b' '; 2 * 1024 * 1024]),
        ),
    ])
    .await;

    let link = format!("{site}/page");
    let p = net
        .publish(
            s,
            part(&format!("read {link}"), &[], &pds::unique("k"), &opts),
        )
        .await
        .unwrap();
    let r = pds::get_record(&url, &p.external_id).await;
    let ext = &r["value"]["embed"]["external"];
    assert_eq!(r["value"]["embed"]["$type"], "app.bsky.embed.external");
    assert_eq!(ext["uri"], link);
    assert_eq!(ext["title"], "Launch & party");
    assert_eq!(ext["description"], "All about it");
    assert_eq!(ext["thumb"]["mimeType"], "image/png");
    assert_eq!(ext["thumb"]["size"], thumb.len());

    // The image fails: a card without a thumb.
    let link = format!("{site}/broken");
    let p = net
        .publish(
            s,
            part(&format!("read {link}"), &[], &pds::unique("k"), &opts),
        )
        .await
        .unwrap();
    let r = pds::get_record(&url, &p.external_id).await;
    assert_eq!(r["value"]["embed"]["external"]["title"], "No picture");
    assert!(r["value"]["embed"]["external"].get("thumb").is_none());

    // A page that never answers: the card gives up after its own 5 s, the post goes without.
    let slow = pds::serve(Arc::new(|_req: pds::Request| {
        Box::pin(async { Action::Hang(Duration::from_secs(30)) })
    }))
    .await;
    let started = std::time::Instant::now();
    let p = net
        .publish(
            s,
            part(&format!("read {slow}/page"), &[], &pds::unique("k"), &opts),
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    let r = pds::get_record(&url, &p.external_id).await;
    assert!(r["value"].get("embed").is_none(), "{r}");

    // A page over the cap, or a 404: no card, the post still goes.
    for path in ["/huge", "/nothing"] {
        let p = net
            .publish(
                s,
                part(&format!("read {site}{path}"), &[], &pds::unique("k"), &opts),
            )
            .await
            .unwrap();
        let r = pds::get_record(&url, &p.external_id).await;
        assert!(r["value"].get("embed").is_none(), "{path}: {r}");
    }
}

#[tokio::test]
async fn a_retry_with_the_same_key_is_the_same_record() {
    let Some(url) = pds::pds_url() else { return };
    let (_, c, row) = connect(&url, &url).await;
    let net = bluesky(true);
    let s = Session {
        account: &row,
        credentials: &c.credentials,
    };
    let opts = no_options();
    let idem = pds::unique("k");
    assert_eq!(net.lookup(s, key_part(&idem)).await.unwrap(), None);
    let first = net
        .publish(s, part("once", &[], &idem, &opts))
        .await
        .unwrap();
    let second = net
        .publish(s, part("once", &[], &idem, &opts))
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(
        net.lookup(s, key_part(&idem)).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(pds::list_posts(&url, &c.external_id).await.len(), 1);
    // Another key is another record.
    let other = net
        .publish(s, part("once", &[], &pds::unique("k"), &opts))
        .await
        .unwrap();
    assert_ne!(other, first);
    assert_eq!(pds::list_posts(&url, &c.external_id).await.len(), 2);
    // Metrics need an AppView, which a lone PDS does not have.
    let err = net.metrics(s, &first.external_id).await.unwrap_err();
    assert!(matches!(err, NetworkError::Unavailable { .. }), "{err:?}");
    let err = net.metrics(s, "not-a-uri").await.unwrap_err();
    assert!(matches!(err, NetworkError::Rejected { .. }), "{err:?}");
}

#[tokio::test]
async fn a_lost_answer_is_found_and_never_posted_twice() {
    let Some(url) = pds::pds_url() else { return };
    let proxy = Proxy::start(&url).await;
    let (_, c, row) = connect(&url, &proxy.url).await;
    let net = bluesky(true);
    let s = Session {
        account: &row,
        credentials: &c.credentials,
    };
    let opts = no_options();

    // The createRecord answer is lost; the check that follows finds the record.
    proxy.lose(&["createRecord"]);
    let idem = pds::unique("k");
    let p = net
        .publish(s, part("lost once", &[], &idem, &opts))
        .await
        .unwrap();
    assert_eq!(proxy.count("createRecord"), 1);
    assert_eq!(
        pds::get_record(&url, &p.external_id).await["value"]["text"],
        "lost once"
    );
    assert_eq!(pds::list_posts(&url, &c.external_id).await.len(), 1);

    // The answer and the check are both lost: an error, the record is there all the same.
    proxy.lose(&["createRecord", "getRecord"]);
    let idem = pds::unique("k");
    let err = net
        .publish(s, part("lost twice", &[], &idem, &opts))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(pds::list_posts(&url, &c.external_id).await.len(), 2);
    let found = net
        .lookup(s, key_part(&idem))
        .await
        .unwrap()
        .expect("the record landed");
    // Publishing again: the PDS refuses the duplicate key (a 500), the check finds the record.
    let again = net
        .publish(s, part("lost twice", &[], &idem, &opts))
        .await
        .unwrap();
    assert_eq!(again, found);
    assert_eq!(proxy.count("createRecord"), 3);
    let posts = pds::list_posts(&url, &c.external_id).await;
    assert_eq!(posts.len(), 2, "one record per key: {posts:?}");
}

#[tokio::test]
async fn private_and_loopback_services_are_refused_without_the_setting() {
    // No PDS needed: the guard refuses before any traffic.
    let net = bluesky(false);
    for service in [
        "http://127.0.0.1:9",
        "http://localhost:9",
        "http://[::1]:9",
        "http://10.0.0.1",
        "ftp://example.com",
    ] {
        let err = net
            .login(&Login {
                identifier: "a.test".into(),
                password: "p".into(),
                service: Some(service.into()),
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, NetworkError::Rejected { .. }),
            "{service}: {err:?}"
        );
    }
    // A name that resolves to loopback gets through the URL check and is refused when resolved.
    let c = Connected {
        external_id: "did:plc:abc".into(),
        handle: "a.test".into(),
        display_name: None,
        avatar_url: None,
        profile_url: None,
        service: None,
        credentials: Credentials::default(),
    };
    let row = account_row(&c, "http://127.0.0.1:9");
    let creds = Credentials::default();
    let s = Session {
        account: &row,
        credentials: &creds,
    };
    let opts = no_options();
    let err = net
        .publish(s, part("x", &[], "k", &opts))
        .await
        .unwrap_err();
    assert!(matches!(err, NetworkError::Rejected { .. }), "{err:?}");
    let err = net.lookup(s, key_part("k")).await.unwrap_err();
    assert!(matches!(err, NetworkError::Rejected { .. }), "{err:?}");
}

/// The answers a PDS cannot be made to give: 429 with `ratelimit-reset`, 5xx, a hang, a body
/// over the cap; a local server plays the PDS.
#[tokio::test]
async fn rate_limits_outages_timeouts_and_huge_answers() {
    let reset = crier_core::SystemClock.now_ms() / 1000 + 40;
    let server = pds::serve(Arc::new(move |req: pds::Request| {
        Box::pin(async move {
            let path = req.target.split('?').next().unwrap_or("").to_owned();
            let auth = req.header("authorization").unwrap_or("").to_owned();
            match auth.as_str() {
                "Bearer limited" => Action::Answer(Response {
                    status: 429,
                    headers: vec![
                        ("content-type".into(), "application/json".into()),
                        ("ratelimit-reset".into(), reset.to_string()),
                    ],
                    body: br#"{"error":"RateLimitExceeded","message":"slow down"}"#.to_vec(),
                }),
                "Bearer down" => Action::Answer(Response::new(503, "text/html", "<h1>down</h1>")),
                "Bearer hang" => Action::Hang(Duration::from_secs(5)),
                "Bearer huge" => Action::Answer(Response::new(
                    200,
                    "application/json",
                    vec![b' '; 3 * 1024 * 1024],
                )),
                "Bearer expired" => Action::Answer(Response::new(
                    400,
                    "application/json",
                    r#"{"error":"ExpiredToken","message":"Token has expired"}"#,
                )),
                _ if path.ends_with("getRecord") => Action::Answer(Response::new(
                    400,
                    "application/json",
                    r#"{"error":"RecordNotFound","message":"Could not locate record"}"#,
                )),
                _ => Action::Answer(Response::new(
                    400,
                    "application/json",
                    r#"{"error":"InvalidRequest"}"#,
                )),
            }
        })
    }))
    .await;
    let net = Bluesky::new(
        BlueskyConfig {
            default_service: server.clone(),
            allow_private_networks: true,
            timeout: Duration::from_secs(1),
        },
        Arc::new(crier_core::SystemClock),
    );
    let c = Connected {
        external_id: "did:plc:abc".into(),
        handle: "a.test".into(),
        display_name: None,
        avatar_url: None,
        profile_url: None,
        service: None,
        credentials: Credentials::default(),
    };
    let row = account_row(&c, &server);
    let opts = no_options();
    let publish = |token: &'static str| {
        let creds = Credentials {
            access_token: token.into(),
            ..Credentials::default()
        };
        let net = &net;
        let row = &row;
        let opts = &opts;
        async move {
            net.publish(
                Session {
                    account: row,
                    credentials: &creds,
                },
                part("x", &[], "k", opts),
            )
            .await
            .unwrap_err()
        }
    };
    match publish("limited").await {
        NetworkError::RateLimited {
            retry_after: Some(d),
        } => assert!((35..=41).contains(&d.as_secs()), "{d:?}"),
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        publish("down").await,
        NetworkError::Unavailable { .. }
    ));
    assert_eq!(publish("hang").await, NetworkError::Timeout);
    assert!(matches!(
        publish("huge").await,
        NetworkError::Unavailable { .. }
    ));
    assert!(matches!(
        publish("expired").await,
        NetworkError::Unauthorized { .. }
    ));
    assert!(matches!(
        publish("other").await,
        NetworkError::Rejected { .. }
    ));
}

// ---- trending topics ----

/// A PDS without an AppView (the dev PDS has none) refuses AppView methods with 400 "No
/// service configured": the topics are unavailable, not the account refused.
#[tokio::test]
async fn trending_topics_through_a_pds_without_an_appview_are_unavailable() {
    let Some(url) = pds::pds_url() else { return };
    let (_, c, row) = connect(&url, &url).await;
    let err = bluesky(true)
        .trending(Session {
            account: &row,
            credentials: &c.credentials,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_unavailable", "{err:?}");
    assert!(err.to_string().contains("No service configured"), "{err}");
}

/// What the fake AppView (behind its PDS) saw of one request.
#[derive(Debug, Clone)]
struct Asked {
    target: String,
    auth: Option<String>,
    proxy: Option<String>,
}

/// A fake of `app.bsky.unspecced.getTrendingTopics` as the lexicon defines it, reached the
/// way a PDS proxies it: the access token must be one it issued (else 401
/// `AuthenticationRequired`, or 400 `ExpiredToken`), `limit` must be an integer from 1 to 25
/// (else 400 `InvalidRequest`), and the answer is `{"topics": [...], "suggested": [...]}` with
/// at most `limit` topics of `trendingTopic` (`topic` and `link` required). Special tokens
/// script what a lexicon cannot say: a rate limit, an AppView without a topics agent (501, as
/// the reference AppView answers), a hang.
async fn fake_appview(topics: Vec<Value>, asked: Arc<std::sync::Mutex<Vec<Asked>>>) -> String {
    let topics = Arc::new(topics);
    pds::serve(Arc::new(move |req: pds::Request| {
        let topics = topics.clone();
        let asked = asked.clone();
        Box::pin(async move {
            let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
            asked.lock().unwrap().push(Asked {
                target: req.target.clone(),
                auth: req.header("authorization").map(str::to_owned),
                proxy: req.header("atproto-proxy").map(str::to_owned),
            });
            let json = |status: u16, body: Value| {
                Action::Answer(Response::new(status, "application/json", body.to_string()))
            };
            if path != "/xrpc/app.bsky.unspecced.getTrendingTopics" || req.method != "GET" {
                return json(404, serde_json::json!({"error": "MethodNotImplemented"}));
            }
            match req.header("authorization").unwrap_or("") {
                "Bearer valid" => {}
                "Bearer expired" => {
                    return json(
                        400,
                        serde_json::json!({"error": "ExpiredToken", "message": "Token has expired"}),
                    );
                }
                "Bearer limited" => {
                    return Action::Answer(Response {
                        status: 429,
                        headers: vec![
                            ("content-type".into(), "application/json".into()),
                            ("retry-after".into(), "30".into()),
                        ],
                        body: br#"{"error":"RateLimitExceeded"}"#.to_vec(),
                    });
                }
                "Bearer no-agent" => {
                    return json(
                        501,
                        serde_json::json!({"error": "MethodNotImplemented", "message": "Topics agent not available"}),
                    );
                }
                "Bearer hang" => return Action::Hang(Duration::from_secs(5)),
                _ => {
                    return json(
                        401,
                        serde_json::json!({"error": "AuthenticationRequired", "message": "Authentication Required"}),
                    );
                }
            }
            let limit = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "limit")
                .map(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(Some(10));
            let Some(limit) = limit.filter(|l| (1..=25).contains(l)) else {
                return json(
                    400,
                    serde_json::json!({"error": "InvalidRequest", "message": "limit must be 1 to 25"}),
                );
            };
            let listed: Vec<Value> = topics.iter().take(limit).cloned().collect();
            json(
                200,
                serde_json::json!({"topics": listed,
                    "suggested": [{"topic": "Suggested Art", "link": "/profile/x/feed/art"}]}),
            )
        })
    }))
    .await
}

#[tokio::test]
async fn trending_topics_from_the_appview_ranked_and_bounded() {
    let mut topics = vec![
        serde_json::json!({"topic": "Super Bowl", "displayName": "Super Bowl", "link": "/profile/trending.bsky.app/feed/1"}),
        serde_json::json!({"topic": "#rustlang", "link": "/search?q=%23rustlang"}),
        serde_json::json!({"topic": "SUPER BOWL", "link": "/x"}),
        serde_json::json!({"topic": "z".repeat(101), "link": "/long"}),
    ];
    topics
        .extend((0..25).map(
            |i| serde_json::json!({"topic": format!("Topic {i}"), "link": format!("/t/{i}")}),
        ));
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let server = fake_appview(topics, asked.clone()).await;
    let net = Bluesky::new(
        BlueskyConfig {
            default_service: "https://bsky.social".into(),
            allow_private_networks: true,
            timeout: Duration::from_secs(1),
        },
        Arc::new(crier_core::SystemClock),
    );
    let c = Connected {
        external_id: "did:plc:abc".into(),
        handle: "a.test".into(),
        display_name: None,
        avatar_url: None,
        profile_url: None,
        service: None,
        credentials: Credentials::default(),
    };
    let row = account_row(&c, &server);
    let with = |token: &str| Credentials {
        access_token: token.into(),
        ..Credentials::default()
    };
    let valid = with("valid");
    let t = net
        .trending(Session {
            account: &row,
            credentials: &valid,
        })
        .await
        .unwrap();
    let got: Vec<(&str, f64)> = t.iter().map(|x| (x.topic.as_str(), x.score)).collect();
    // Asked for 20, got 20; a repeat and a topic over 100 characters are left out; the
    // suggestions are not trends; the score is the rank.
    assert_eq!(
        got[..4],
        [
            ("Super Bowl", 20.0),
            ("#rustlang", 19.0),
            ("Topic 0", 18.0),
            ("Topic 1", 17.0)
        ]
    );
    assert_eq!(t.len(), 18);
    assert!(t.iter().all(|x| !x.topic.contains("Suggested")));
    let first = asked.lock().unwrap()[0].clone();
    assert_eq!(
        first.target,
        "/xrpc/app.bsky.unspecced.getTrendingTopics?limit=20"
    );
    assert_eq!(first.auth.as_deref(), Some("Bearer valid"));
    assert_eq!(first.proxy, None, "the PDS's own AppView is used");

    let err = |token: &'static str| {
        let net = &net;
        let row = &row;
        async move {
            let creds = with(token);
            net.trending(Session {
                account: row,
                credentials: &creds,
            })
            .await
            .unwrap_err()
        }
    };
    assert!(matches!(
        err("expired").await,
        NetworkError::Unauthorized { .. }
    ));
    assert!(matches!(
        err("someone-else").await,
        NetworkError::Unauthorized { .. }
    ));
    assert_eq!(
        err("limited").await,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    let no_agent = err("no-agent").await;
    assert_eq!(no_agent.code(), "network_unavailable");
    assert!(no_agent.to_string().contains("Topics agent"), "{no_agent}");
    assert_eq!(err("hang").await, NetworkError::Timeout);
}
