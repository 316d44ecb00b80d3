//! The Mastodon connector against mastodon-mock (a stateful Mastodon, `CRIER_TEST_MASTODON_URL`,
//! started by `scripts/peers/mastodon.sh start`) for the happy paths, and against a fake of our
//! own (`mastodon_fake`) for what the mock does not do: a strict token endpoint, refusals, rate
//! limits, outages, media still processing, slow and oversized answers, a lost answer.

mod mastodon_fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crier_core::clock::{ManualClock, SystemClock};
use crier_core::ids::WorkspaceId;
use crier_networks::mastodon::{DEFAULT_RULES, Mastodon, MastodonConfig};
use crier_networks::{
    Attachment, Authorize, Connected, Credentials, Exchange, MediaMeta, Network, NetworkError,
    OAuthClient, Part, Session,
};
use crier_store::{Account, PostOverride};
use mastodon_fake::{ACCOUNT_ID, Fake, Fault};
use serde_json::Value;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn mock_url() -> Option<String> {
    match std::env::var("CRIER_TEST_MASTODON_URL") {
        Ok(u) if !u.is_empty() => Some(u.trim_end_matches('/').to_owned()),
        _ => {
            if std::env::var("CRIER_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!(
                    "CRIER_TEST_MASTODON_URL is not set and CRIER_REQUIRE_PEERS=1 (scripts/peers/mastodon.sh start starts mastodon-mock)"
                );
            }
            eprintln!(
                "skipped: set CRIER_TEST_MASTODON_URL (scripts/peers/mastodon.sh start starts mastodon-mock)"
            );
            None
        }
    }
}

fn config(timeout: Duration) -> MastodonConfig {
    MastodonConfig {
        allow_private_networks: true,
        timeout,
        client_name: "crier tests".into(),
        website: Some("https://crier.example".into()),
        media_poll_interval: Duration::from_millis(20),
        media_poll_max: Duration::from_millis(400),
    }
}

fn mastodon() -> Mastodon {
    Mastodon::new(config(Duration::from_secs(10)), Arc::new(SystemClock))
}

fn account(service: &str, external_id: &str, handle: &str) -> Account {
    let mut a = Account::new(
        &WorkspaceId::generate(),
        true,
        "mastodon",
        handle,
        external_id,
        0,
    );
    a.service = Some(service.to_owned());
    a
}

fn creds(token: &str) -> Credentials {
    Credentials {
        access_token: token.into(),
        ..Credentials::default()
    }
}

fn part<'a>(text: &'a str, idem: &'a str, options: &'a PostOverride) -> Part<'a> {
    Part {
        text,
        media: &[],
        thread: &[],
        options,
        idem_key: idem,
        steps: steps_for(idem),
    }
}

/// The steps of the part keyed `idem`: the same for every attempt at it, as the publisher
/// keeps them in the store.
fn steps_for(idem: &str) -> &'static crier_networks::MemorySteps {
    static ALL: std::sync::LazyLock<
        std::sync::Mutex<std::collections::HashMap<String, &'static crier_networks::MemorySteps>>,
    > = std::sync::LazyLock::new(Default::default);
    ALL.lock()
        .unwrap()
        .entry(idem.to_owned())
        .or_insert_with(|| Box::leak(Box::default()))
}

/// The part keyed `idem` with `text`, to look up.
fn key_part<'a>(text: &'a str, idem: &'a str) -> Part<'a> {
    Part {
        text,
        media: &[],
        thread: &[],
        options: Box::leak(Box::default()),
        idem_key: idem,
        steps: steps_for(idem),
    }
}

/// A real PNG: `w`×`h` RGB pixels, zlib with stored (uncompressed) deflate blocks.
fn png(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0); // filter: none
        for x in 0..w {
            raw.extend_from_slice(&[(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 128]);
        }
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        z.extend_from_slice(&(b.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(b.len() as u16)).to_le_bytes());
        z.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn image(alt: &str) -> Attachment {
    let bytes = png(16, 8);
    Attachment {
        url: String::new(),
        meta: MediaMeta {
            id: "med_1".into(),
            content_type: "image/png".into(),
            size: bytes.len() as u64,
            width: Some(16),
            height: Some(8),
            duration_ms: None,
            alt_text: Some(alt.into()),
            filename: "chart.png".into(),
        },
        bytes: bytes.into(),
    }
}

/// A plain client for what a browser or a test reads directly (no redirects followed).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get_json(url: &str, token: &str) -> Value {
    let resp = browser().get(url).bearer_auth(token).send().await.unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

/// The whole OAuth dance against mastodon-mock, approving as `user` in its form.
async fn connect(m: &Mastodon, base: &str, user: &str) -> Connected {
    let instance: url::Url = base.parse().unwrap();
    let client = m.register_client(&instance, REDIRECT).await.unwrap();
    assert!(!client.client_id.is_empty());
    assert!(client.client_secret.is_some());
    let url = m
        .authorize_url(&Authorize {
            client: &client,
            instance: Some(&instance),
            redirect_uri: REDIRECT,
            state: "state-123",
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        })
        .unwrap();
    assert!(
        url.as_str()
            .starts_with(&format!("{base}/oauth/authorize?"))
    );
    let form = browser().get(url.clone()).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains(&format!("@{user}")));
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    let approved = browser()
        .post(format!("{base}/oauth/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("username", user)
                .append_pair("redirect_uri", REDIRECT)
                .append_pair("client_id", &q["client_id"])
                .append_pair("scope", &q["scope"])
                .append_pair("state", &q["state"])
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 302);
    let location: url::Url = approved.headers()["location"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(location.as_str().starts_with(REDIRECT));
    let back: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(back["state"], "state-123");
    m.exchange_code(&Exchange {
        client: &client,
        instance: Some(&instance),
        redirect_uri: REDIRECT,
        code: &back["code"],
        code_verifier: Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
    })
    .await
    .unwrap()
}

fn session_account(c: &Connected) -> Account {
    account(c.service.as_deref().unwrap(), &c.external_id, &c.handle)
}

#[tokio::test]
async fn mock_connect_publish_thread_media_overrides_idempotency_metrics_revoke() {
    let Some(base) = mock_url() else { return };
    let m = mastodon();
    let c = connect(&m, &base, "ada").await;
    assert!(c.handle.starts_with("ada@"), "{}", c.handle);
    assert_eq!(c.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(c.service.as_deref(), Some(base.as_str()));
    assert!(c.profile_url.as_deref().unwrap().ends_with("/@ada"));
    assert!(c.avatar_url.is_some());
    assert!(!c.credentials.access_token.is_empty());
    assert!(c.credentials.client.is_some(), "kept for revoke");
    let me = get_json(
        &format!("{base}/api/v1/accounts/verify_credentials"),
        &c.credentials.access_token,
    )
    .await;
    assert_eq!(me["id"], c.external_id.as_str());

    let acct = session_account(&c);
    let s = Session {
        account: &acct,
        credentials: &c.credentials,
    };
    let token = c.credentials.access_token.as_str();
    let none = PostOverride::default();
    let run = uuid_like();

    // Text.
    let root = m
        .publish(
            s,
            part(
                &format!("Hello from crier {run}"),
                &format!("{run}:0"),
                &none,
            ),
        )
        .await
        .unwrap();
    assert!(root.url.contains(&root.external_id), "{}", root.url);
    let st = get_json(
        &format!("{base}/api/v1/statuses/{}", root.external_id),
        token,
    )
    .await;
    assert!(st["content"].as_str().unwrap().contains("Hello from crier"));
    assert_eq!(st["account"]["id"], c.external_id.as_str());

    // A thread: the second part replies to the first.
    let thread = vec![root.external_id.clone()];
    let reply = m
        .publish(
            s,
            Part {
                thread: &thread,
                ..part("and a reply", &format!("{run}:1"), &none)
            },
        )
        .await
        .unwrap();
    let st = get_json(
        &format!("{base}/api/v1/statuses/{}", reply.external_id),
        token,
    )
    .await;
    assert_eq!(st["in_reply_to_id"], root.external_id.as_str());

    // An image with its description.
    let media = [image("A bar chart of engine output")];
    let with_image = m
        .publish(
            s,
            Part {
                media: &media,
                ..part("with a chart", &format!("{run}:img"), &none)
            },
        )
        .await
        .unwrap();
    let st = get_json(
        &format!("{base}/api/v1/statuses/{}", with_image.external_id),
        token,
    )
    .await;
    let attached = st["media_attachments"].as_array().unwrap();
    assert_eq!(attached.len(), 1, "{st}");
    assert_eq!(attached[0]["description"], "A bar chart of engine output");
    assert_eq!(attached[0]["type"], "image");
    let bytes = browser()
        .get(attached[0]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        bytes.as_ref(),
        media[0].bytes.as_ref(),
        "the instance has our PNG"
    );

    // The account's overrides.
    let overrides = PostOverride {
        visibility: Some("unlisted".into()),
        spoiler_text: Some("engines".into()),
        language: Some("fr".into()),
        ..PostOverride::default()
    };
    let o = m
        .publish(s, part("Bonjour", &format!("{run}:o"), &overrides))
        .await
        .unwrap();
    let st = get_json(&format!("{base}/api/v1/statuses/{}", o.external_id), token).await;
    assert_eq!(st["visibility"], "unlisted");
    assert_eq!(st["spoiler_text"], "engines");
    assert_eq!(st["language"], "fr");

    // The same Idempotency-Key twice is one status.
    let key = format!("{run}:idem");
    let text = format!("only once {run}");
    let first = m.publish(s, part(&text, &key, &none)).await.unwrap();
    let again = m.publish(s, part(&text, &key, &none)).await.unwrap();
    assert_eq!(first, again);
    let mine = get_json(
        &format!("{base}/api/v1/accounts/{}/statuses?limit=40", c.external_id),
        token,
    )
    .await;
    let once = mine
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["content"].as_str().unwrap_or("").contains(&text))
        .count();
    assert_eq!(once, 1);
    // Found again by its key.
    assert_eq!(
        m.lookup(s, key_part(&text, &key)).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        m.lookup(s, key_part(&text, &format!("{run}:never")))
            .await
            .unwrap(),
        None
    );

    // Metrics: grace favourites and boosts the root.
    let grace = connect(&m, &base, "grace").await;
    for action in ["favourite", "reblog"] {
        let r = browser()
            .post(format!(
                "{base}/api/v1/statuses/{}/{action}",
                root.external_id
            ))
            .bearer_auth(&grace.credentials.access_token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{action}: {}", r.status());
    }
    let metrics = m.metrics(s, &root.external_id).await.unwrap();
    assert_eq!((metrics.likes, metrics.reposts, metrics.replies), (1, 1, 1));

    // Revoke: the token stops working.
    m.revoke(s).await.unwrap();
    let after = browser()
        .get(format!("{base}/api/v1/accounts/verify_credentials"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    let err = m
        .publish(s, part("after revoke", &format!("{run}:r"), &none))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "account_disconnected", "{err:?}");
}

#[tokio::test]
async fn mock_instance_limits_are_the_rules() {
    let Some(base) = mock_url() else { return };
    let m = mastodon();
    let rules = m.rules_for(&account(&base, "1", "ada")).await;
    let doc = get_json(&format!("{base}/api/v2/instance"), "").await;
    let conf = &doc["configuration"];
    assert_eq!(
        rules.max_length as u64,
        conf["statuses"]["max_characters"].as_u64().unwrap()
    );
    assert_eq!(
        rules.media.max_count as u64,
        conf["statuses"]["max_media_attachments"].as_u64().unwrap()
    );
    let ma = &conf["media_attachments"];
    assert_eq!(
        rules.media.max_image_bytes,
        ma["image_size_limit"].as_u64().unwrap()
    );
    assert_eq!(
        rules.media.max_video_bytes,
        ma["video_size_limit"].as_u64().unwrap()
    );
    let side = (ma["image_matrix_limit"].as_u64().unwrap() as f64).sqrt() as u32;
    assert_eq!(rules.media.max_image_side, side);
    // The mock's own values differ from Mastodon's defaults, so this is read, not defaulted.
    assert_ne!(
        rules.media.max_image_bytes,
        DEFAULT_RULES.media.max_image_bytes
    );
    assert!(rules.media.image_types.contains(&"image/png".to_owned()));
    assert_eq!(rules.media.video_types, vec!["video/mp4".to_owned()]);
    assert_eq!(rules.platform, "mastodon");
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

// ---- against the fake ----

async fn fake() -> (Fake, String, Account, Credentials) {
    let (fake, base) = Fake::start().await;
    let token = fake.token();
    let acct = account(&base, ACCOUNT_ID, "hopper@fake.example");
    (fake, base, acct, creds(&token))
}

async fn publish_err(m: &Mastodon, acct: &Account, c: &Credentials, text: &str) -> NetworkError {
    let none = PostOverride::default();
    m.publish(
        Session {
            account: acct,
            credentials: c,
        },
        part(text, &format!("k-{text}"), &none),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn fake_oauth_token_endpoint_refusals_and_refresh() {
    let (fake, base, _, _) = fake().await;
    let m = mastodon();
    let instance: url::Url = base.parse().unwrap();
    // The instance refuses a registration (here: a blank app name): rejected, message kept.
    let unnamed = Mastodon::new(
        MastodonConfig {
            client_name: String::new(),
            ..config(Duration::from_secs(5))
        },
        Arc::new(SystemClock),
    );
    let err = unnamed
        .register_client(&instance, REDIRECT)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected");
    assert!(err.to_string().contains("name can't be blank"), "{err}");
    let client = m.register_client(&instance, REDIRECT).await.unwrap();
    // Without an instance or a PKCE challenge there is no authorization URL.
    let no_instance = m.authorize_url(&Authorize {
        client: &client,
        instance: None,
        redirect_uri: REDIRECT,
        state: "s",
        code_challenge: Some("c"),
    });
    assert_eq!(no_instance.unwrap_err().code(), "network_rejected");
    let no_pkce = m.authorize_url(&Authorize {
        client: &client,
        instance: Some(&instance),
        redirect_uri: REDIRECT,
        state: "s",
        code_challenge: None,
    });
    assert_eq!(no_pkce.unwrap_err().code(), "network_rejected");
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let code = || async {
        let url = m
            .authorize_url(&Authorize {
                client: &client,
                instance: Some(&instance),
                redirect_uri: REDIRECT,
                state: "s1",
                code_challenge: Some(challenge),
            })
            .unwrap();
        let resp = browser().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 302);
        let to: url::Url = resp.headers()["location"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        to.query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    };
    let exchange = |code: String, client: OAuthClient, verifier: &'static str| {
        let m = &m;
        let instance = instance.clone();
        async move {
            m.exchange_code(&Exchange {
                client: &client,
                instance: Some(&instance),
                redirect_uri: REDIRECT,
                code: &code,
                code_verifier: Some(verifier),
            })
            .await
        }
    };
    // A wrong PKCE verifier.
    let err = exchange(code().await, client.clone(), "wrong-verifier")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected");
    assert!(err.to_string().contains("PKCE"), "{err}");
    // A wrong client secret.
    let forged = OAuthClient {
        client_id: client.client_id.clone(),
        client_secret: Some("not-the-secret".into()),
    };
    let err = exchange(code().await, forged, verifier).await.unwrap_err();
    assert_eq!(err.code(), "network_rejected");
    assert!(
        err.to_string().contains("Client authentication failed"),
        "{err}"
    );
    // The right one, once.
    let c = code().await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let connected = exchange(c.clone(), client.clone(), verifier).await.unwrap();
    assert_eq!(connected.external_id, ACCOUNT_ID);
    assert_eq!(
        connected.handle, "hopper@fake.example",
        "the instance's domain"
    );
    assert_eq!(connected.display_name.as_deref(), Some("Grace Hopper"));
    assert_eq!(connected.service.as_deref(), Some(base.as_str()));
    let creds = &connected.credentials;
    assert_eq!(creds.refresh_token.as_deref(), Some("refresh-1"));
    let expires = creds.expires_at.unwrap();
    assert!(
        (before + 3_600_000..before + 3_700_000).contains(&expires),
        "{expires}"
    );
    assert_eq!(creds.client.as_ref(), Some(&client));
    // The code again: refused.
    let err = exchange(c, client.clone(), verifier).await.unwrap_err();
    assert_eq!(err.code(), "network_rejected");
    assert!(
        err.to_string().contains("authorization grant is invalid"),
        "{err}"
    );

    // Refresh keeps the refresh token the instance did not replace.
    let acct = account(&base, ACCOUNT_ID, &connected.handle);
    let s = Session {
        account: &acct,
        credentials: creds,
    };
    let fresh = m.refresh(s).await.unwrap();
    assert_eq!(fresh.access_token, "tok-refreshed");
    assert_eq!(fresh.refresh_token.as_deref(), Some("refresh-1"));
    assert!(fresh.expires_at.unwrap() > expires);
    // A refused refresh token is a disconnected account.
    let mut bad = creds.clone();
    bad.refresh_token = Some("stale".into());
    let err = m
        .refresh(Session {
            account: &acct,
            credentials: &bad,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "account_disconnected");
    // No refresh token: nothing to refresh with.
    let mut none = creds.clone();
    none.refresh_token = None;
    assert!(
        m.refresh(Session {
            account: &acct,
            credentials: &none,
        })
        .await
        .is_err()
    );
    // Revoke removes the token at the instance.
    assert!(fake.lock().tokens.contains_key(&creds.access_token));
    m.revoke(s).await.unwrap();
    assert!(!fake.lock().tokens.contains_key(&creds.access_token));
}

#[tokio::test]
async fn fake_refusals_keep_the_instances_message() {
    let (fake, base, acct, c) = fake().await;
    let m = mastodon();
    // 401: the token is no longer accepted.
    let err = publish_err(&m, &acct, &creds("revoked"), "a").await;
    assert!(matches!(err, NetworkError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("The access token is invalid"));
    // 403 for the action: rejected; 403 for the login: disconnected.
    fake.fault(Fault::status(
        "POST",
        "/api/v1/statuses",
        403,
        "This action is not allowed",
    ));
    let err = publish_err(&m, &acct, &c, "b").await;
    assert_eq!(err.code(), "network_rejected");
    assert!(err.to_string().contains("This action is not allowed"));
    fake.fault(Fault::status(
        "POST",
        "/api/v1/statuses",
        403,
        "Your login is currently disabled",
    ));
    let err = publish_err(&m, &acct, &c, "c").await;
    assert_eq!(err.code(), "account_disconnected");
    // 422 from the instance itself (blank text), message kept.
    let err = publish_err(&m, &acct, &c, " ").await;
    assert_eq!(err.code(), "network_rejected");
    assert!(err.to_string().contains("Text can't be blank"), "{err}");
    // Replying to a status that is not there: 404.
    let none = PostOverride::default();
    let thread = vec!["999999".to_owned()];
    let err = m
        .publish(
            Session {
                account: &acct,
                credentials: &c,
            },
            Part {
                thread: &thread,
                ..part("orphan", "k-orphan", &none)
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_rejected");
    assert!(err.to_string().contains("Record not found"));
    // 422 on the media endpoint is about the media.
    let mut gif = image("x");
    gif.meta.content_type = "image/gif".into();
    let err = m
        .publish(
            Session {
                account: &acct,
                credentials: &c,
            },
            Part {
                media: &[gif],
                ..part("gif", "k-gif", &none)
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "media_rejected", "{err:?}");
    assert!(
        err.to_string().contains("image/gif is not supported"),
        "{err}"
    );
    assert!(!err.is_transient());
    // Nothing was published by any of these.
    assert!(fake.lock().statuses.is_empty());
    let _ = base;
}

#[tokio::test]
async fn fake_rate_limits_and_outages_carry_their_pause() {
    let (fake, base, acct, c) = fake().await;
    let clock = ManualClock::new("2026-12-02T06:00:00Z".parse().unwrap());
    let m = Mastodon::new(config(Duration::from_secs(5)), Arc::new(clock.clone()));
    let mut f = Fault::status("POST", "/api/v1/statuses", 429, "Too many requests");
    f.headers = vec![("retry-after", "42".into())];
    fake.fault(f);
    let err = publish_err(&m, &acct, &c, "a").await;
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(42))
        }
    );
    assert_eq!(err.code(), "network_rate_limited");
    // Mastodon's own headers: the reset time, against our clock.
    let mut f = Fault::status("POST", "/api/v1/statuses", 429, "Too many requests");
    f.headers = vec![
        ("x-ratelimit-limit", "300".into()),
        ("x-ratelimit-remaining", "0".into()),
        ("x-ratelimit-reset", "2026-12-02T06:04:10.000Z".into()),
    ];
    fake.fault(f);
    let err = publish_err(&m, &acct, &c, "b").await;
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(250))
        }
    );
    // An HTTP date.
    let mut f = Fault::status("POST", "/api/v1/statuses", 429, "Too many requests");
    f.headers = vec![("retry-after", "Wed, 02 Dec 2026 06:00:30 GMT".into())];
    fake.fault(f);
    let err = publish_err(&m, &acct, &c, "b2").await;
    assert_eq!(
        err,
        NetworkError::RateLimited {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    // 503 with Retry-After, and a bare 500 with an HTML page.
    let mut f = Fault::status("POST", "/api/v1/statuses", 503, "Service Unavailable");
    f.headers = vec![("retry-after", "5".into())];
    fake.fault(f);
    let err = publish_err(&m, &acct, &c, "c").await;
    assert_eq!(
        err,
        NetworkError::Unavailable {
            message: "mastodon: 503 Service Unavailable".into(),
            retry_after: Some(Duration::from_secs(5))
        }
    );
    let mut f = Fault::status("POST", "/api/v1/statuses", 500, "");
    f.body = "<html>oops</html>".into();
    fake.fault(f);
    let err = publish_err(&m, &acct, &c, "d").await;
    assert_eq!(err.code(), "network_unavailable");
    assert!(err.is_transient());
    // Nobody listening.
    let gone = account("http://127.0.0.1:9", ACCOUNT_ID, "x");
    let err = publish_err(&m, &gone, &c, "e").await;
    assert!(matches!(err, NetworkError::Unavailable { .. }), "{err:?}");
    assert!(fake.lock().statuses.is_empty());
    let _ = base;
}

#[tokio::test]
async fn fake_media_still_processing_is_polled_until_ready() {
    let (fake, _, acct, c) = fake().await;
    let m = mastodon();
    fake.lock().next_media_polls = Some(Some(3));
    let none = PostOverride::default();
    let media = [image("a chart")];
    let p = m
        .publish(
            Session {
                account: &acct,
                credentials: &c,
            },
            Part {
                media: &media,
                ..part("with media", "k-media", &none)
            },
        )
        .await
        .unwrap();
    let i = fake.lock();
    assert_eq!(i.media_polls, 4, "three 206 answers, then the 200");
    let st = i
        .statuses
        .iter()
        .find(|s| s["id"] == p.external_id.as_str())
        .unwrap();
    assert_eq!(st["media_attachments"].as_array().unwrap().len(), 1);
    let media_id = st["media_attachments"][0]["id"].as_str().unwrap();
    assert_eq!(
        i.media[media_id].1.as_deref(),
        Some("a chart"),
        "alt text as description"
    );
    // The status was posted with the part's idempotency key.
    let post = i
        .requests
        .iter()
        .find(|(m, p, _)| m == "POST" && p == "/api/v1/statuses")
        .unwrap();
    assert_eq!(post.2["idempotency-key"], "k-media");
}

#[tokio::test]
async fn fake_media_that_never_finishes_is_unavailable_and_posts_nothing() {
    let (fake, _, acct, c) = fake().await;
    let m = mastodon();
    fake.lock().next_media_polls = Some(None);
    let none = PostOverride::default();
    let media = [image("x")];
    let started = Instant::now();
    let err = m
        .publish(
            Session {
                account: &acct,
                credentials: &c,
            },
            Part {
                media: &media,
                ..part("never", "k-never", &none)
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NetworkError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("still being processed"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "bounded");
    let i = fake.lock();
    assert!(
        i.media_polls >= 2 && i.media_polls <= 20,
        "{}",
        i.media_polls
    );
    assert!(i.statuses.is_empty());
}

#[tokio::test]
async fn fake_slow_server_is_a_timeout_and_a_lost_answer_is_found_by_lookup() {
    let (fake, _, acct, c) = fake().await;
    let m = Mastodon::new(config(Duration::from_millis(500)), Arc::new(SystemClock));
    let s = Session {
        account: &acct,
        credentials: &c,
    };
    let none = PostOverride::default();
    // Slow before doing anything.
    let mut f = Fault::status("POST", "/api/v1/statuses", 200, "");
    f.delay = Duration::from_secs(3);
    fake.fault(f);
    let started = Instant::now();
    let err = m
        .publish(s, part("slow", "k-slow", &none))
        .await
        .unwrap_err();
    assert_eq!(err, NetworkError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        m.lookup(s, key_part("slow", "k-slow")).await.unwrap(),
        None,
        "it did not land"
    );

    // Lands, then the answer is lost.
    let decoy = m.publish(s, part("decoy", "k-decoy", &none)).await.unwrap();
    let mut f = Fault::status("POST", "/api/v1/statuses", 200, "");
    f.delay_after = Duration::from_secs(3);
    fake.fault(f);
    let err = m
        .publish(s, part("landed", "k-landed", &none))
        .await
        .unwrap_err();
    assert_eq!(err, NetworkError::Timeout);
    let landed = fake
        .lock()
        .statuses
        .iter()
        .find(|st| st["content"] == "<p>landed</p>")
        .map(|st| st["id"].as_str().unwrap().to_owned())
        .expect("the status landed");
    let found = m
        .lookup(s, key_part("landed", "k-landed"))
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.external_id, landed);
    assert!(found.url.ends_with(&landed));
    // Unknown keys find nothing.
    assert_eq!(
        m.lookup(s, key_part("landed", "k-unknown")).await.unwrap(),
        None
    );

    // Behind a page of newer statuses (replies elsewhere, not look-alikes), found on the next.
    let parent = [decoy.external_id.clone()];
    for i in 0..45 {
        let (text, key) = (format!("reply {i}"), format!("k-reply-{i}"));
        let reply = Part {
            thread: &parent,
            ..part(&text, &key, &none)
        };
        m.publish(s, reply).await.unwrap();
    }
    let again = m
        .lookup(s, key_part("landed", "k-landed"))
        .await
        .unwrap()
        .expect("found on the second page");
    assert_eq!(again.external_id, landed);
    // Behind more look-alikes (statuses since it was sent) than a look-up reads: it cannot
    // tell, and says so rather than "not published", which would post it twice.
    for i in 0..21 {
        m.publish(
            s,
            part(&format!("other {i}"), &format!("k-other-{i}"), &none),
        )
        .await
        .unwrap();
    }
    let err = m
        .lookup(s, key_part("landed", "k-landed"))
        .await
        .unwrap_err();
    assert!(matches!(err, NetworkError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn fake_oversized_answers_are_refused() {
    let (fake, _, acct, c) = fake().await;
    let m = mastodon();
    let s = Session {
        account: &acct,
        credentials: &c,
    };
    let none = PostOverride::default();
    let p = m
        .publish(s, part("counted", "k-count", &none))
        .await
        .unwrap();
    let metrics = m.metrics(s, &p.external_id).await.unwrap();
    assert_eq!((metrics.likes, metrics.reposts, metrics.replies), (3, 2, 1));
    let path = format!("/api/v1/statuses/{}", p.external_id);
    let mut f = Fault::status("GET", &path, 200, "");
    f.body = format!(
        r#"{{"id":"1","padding":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    fake.fault(f);
    let err = m.metrics(s, &p.external_id).await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    assert_eq!(err.code(), "network_unavailable");
    // An error body that large still gives the status's meaning.
    let mut f = Fault::status("GET", &path, 422, "");
    f.body = "x".repeat(2 * 1024 * 1024);
    fake.fault(f);
    let err = m.metrics(s, &p.external_id).await.unwrap_err();
    assert_eq!(err.code(), "network_rejected");
}

#[tokio::test]
async fn fake_instance_limits_are_cached_bounded_and_defaulted() {
    let (fake, base, acct, _) = fake().await;
    let clock = ManualClock::new("2026-12-02T06:00:00Z".parse().unwrap());
    let m = Mastodon::new(config(Duration::from_secs(1)), Arc::new(clock.clone()));
    let rules = m.rules_for(&acct).await;
    assert_eq!(rules.max_length, 777);
    assert_eq!(rules.media.max_count, 2);
    assert_eq!(rules.media.image_types, vec!["image/png"]);
    assert_eq!(rules.media.max_image_bytes, 1000);
    assert_eq!(rules.media.max_image_side, 1000);
    // Cached...
    assert_eq!(m.rules_for(&acct).await, rules);
    assert_eq!(fake.lock().instance_hits, 1);
    // ...until the TTL passes.
    fake.lock().instance["configuration"]["statuses"]["max_characters"] = 1000.into();
    clock.advance(Duration::from_secs(3601));
    assert_eq!(m.rules_for(&acct).await.max_length, 1000);
    assert_eq!(fake.lock().instance_hits, 2);
    // A slow instance: the defaults, within the bounded wait, and not asked again at once.
    clock.advance(Duration::from_secs(3601));
    let mut f = Fault::status("GET", "/api/v2/instance", 200, "");
    f.delay = Duration::from_secs(10);
    fake.fault(f);
    let started = Instant::now();
    assert_eq!(m.rules_for(&acct).await, *DEFAULT_RULES);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(m.rules_for(&acct).await, *DEFAULT_RULES);
    assert_eq!(
        fake.lock().instance_hits,
        2,
        "the failure is cached briefly"
    );
    // An instance that answers garbage, after the short TTL: defaults again.
    clock.advance(Duration::from_secs(61));
    let mut f = Fault::status("GET", "/api/v2/instance", 200, "");
    f.body = "not json".into();
    fake.fault(f);
    assert_eq!(m.rules_for(&acct).await, *DEFAULT_RULES);
    // No instance at all.
    let mut lone = acct.clone();
    lone.service = None;
    assert_eq!(m.rules_for(&lone).await, *DEFAULT_RULES);
    assert_eq!(*m.rules(), *DEFAULT_RULES);
    let _ = base;
}

#[tokio::test]
async fn loopback_instances_are_refused_without_private_networks() {
    let (fake, base, acct, c) = fake().await;
    let m = Mastodon::new(
        MastodonConfig {
            allow_private_networks: false,
            ..config(Duration::from_secs(2))
        },
        Arc::new(SystemClock),
    );
    let instance: url::Url = base.parse().unwrap();
    let err = m.register_client(&instance, REDIRECT).await.unwrap_err();
    assert_eq!(err.code(), "network_rejected");
    assert!(err.to_string().contains("private"), "{err}");
    let err = publish_err(&m, &acct, &c, "x").await;
    assert_eq!(err.code(), "network_rejected");
    let s = Session {
        account: &acct,
        credentials: &c,
    };
    assert!(m.metrics(s, "1").await.is_err());
    assert!(m.revoke(s).await.is_err());
    assert_eq!(m.rules_for(&acct).await, *DEFAULT_RULES);
    // `localhost` by name is refused too.
    let named = account(&base.replace("127.0.0.1", "localhost"), ACCOUNT_ID, "x");
    let err = publish_err(&m, &named, &c, "y").await;
    assert_eq!(err.code(), "network_rejected");
    assert!(
        fake.lock().requests.is_empty(),
        "nothing reached the instance"
    );
}

// ---- trending tags ----

/// mastodon-mock derives its trending tags from the statuses it holds (uses counted today):
/// a tag only this test uses shows up with exactly its uses.
#[tokio::test]
async fn mock_trending_tags_are_the_instances_own() {
    let Some(base) = mock_url() else { return };
    let m = mastodon();
    let c = connect(&m, &base, "grace").await;
    let acct = session_account(&c);
    let s = Session {
        account: &acct,
        credentials: &c.credentials,
    };
    let tag = format!("trend{}", uuid_like());
    let none = PostOverride::default();
    for i in 0..12 {
        m.publish(
            s,
            part(
                &format!("Post {i} on #{tag}"),
                &format!("k-{tag}-{i}"),
                &none,
            ),
        )
        .await
        .unwrap();
    }
    let t = m.trending(s).await.unwrap();
    assert!(t.len() <= crier_networks::MAX_TRENDS, "{t:?}");
    assert!(
        t.iter()
            .all(|x| x.topic.starts_with('#') && x.topic.chars().count() <= 100),
        "{t:?}"
    );
    let mine = t
        .iter()
        .find(|x| x.topic == format!("#{tag}"))
        .unwrap_or_else(|| panic!("#{tag} trends: {t:?}"));
    assert_eq!(mine.score, 12.0);
    // The instance's order is kept: nothing above the tag is used less.
    let at = t.iter().position(|x| x.topic == mine.topic).unwrap();
    assert!(t[..at].iter().all(|x| x.score >= 12.0), "{t:?}");
}

#[tokio::test]
async fn fake_trending_tags_scores_bounds_and_failures() {
    let (fake, _, acct, c) = fake().await;
    let today = 1_796_169_600;
    {
        let mut i = fake.lock();
        i.trends = vec![
            mastodon_fake::tag("rust", today, &[3, 4, 50]),
            mastodon_fake::tag("Hola", today, &[13, 9]),
            serde_json::json!({"name": "two words", "history": []}),
            mastodon_fake::tag("RUST", today, &[1]),
        ];
        i.trends
            .extend((0..30).map(|n| mastodon_fake::tag(&format!("t{n}"), today, &[1, 1])));
    }
    let m = mastodon();
    let s = Session {
        account: &acct,
        credentials: &c,
    };
    let t = m.trending(s).await.unwrap();
    let got: Vec<(&str, f64)> = t.iter().map(|x| (x.topic.as_str(), x.score)).collect();
    // The two newest days' uses; a name that is not one word and a repeat are left out; the
    // instance answers 20 at most, 18 of them usable.
    assert_eq!(got[..3], [("#rust", 7.0), ("#Hola", 22.0), ("#t0", 2.0)]);
    assert_eq!(t.len(), 18);
    // Public: asked for the most the instance gives, without the account's token.
    assert_eq!(
        fake.lock().trends_asked,
        vec![("limit=20".to_owned(), false)]
    );

    let path = "/api/v1/trends/tags";
    fake.fault(Fault::status("GET", path, 503, "down for maintenance"));
    let err = m.trending(s).await.unwrap_err();
    assert_eq!(err.code(), "network_unavailable");
    assert!(err.to_string().contains("down for maintenance"), "{err}");

    let mut huge = Fault::status("GET", path, 200, "");
    huge.body = format!(
        r#"[{{"name":"x","pad":"{}"}}]"#,
        "x".repeat(2 * 1024 * 1024)
    );
    fake.fault(huge);
    let err = m.trending(s).await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");

    let mut not_a_list = Fault::status("GET", path, 200, "");
    not_a_list.body = r#"{"tags":[]}"#.into();
    fake.fault(not_a_list);
    assert_eq!(
        m.trending(s).await.unwrap_err().code(),
        "network_unavailable"
    );

    let mut slow = Fault::status("GET", path, 200, "[]");
    slow.delay = Duration::from_secs(3);
    fake.fault(slow);
    let quick = Mastodon::new(config(Duration::from_millis(500)), Arc::new(SystemClock));
    assert_eq!(quick.trending(s).await.unwrap_err(), NetworkError::Timeout);

    // And the list again once the instance is well.
    assert_eq!(m.trending(s).await.unwrap().len(), 18);
}
