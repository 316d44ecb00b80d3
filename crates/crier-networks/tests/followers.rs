//! Follower counts at the connector, for the seven networks of one operator, each against its
//! fake (`crier-fakes`): every account one approval connects (LinkedIn's member and page,
//! both Facebook Pages), the call each connector makes (X's `public_metrics`, LinkedIn's
//! `networkSizes`, YouTube's `channels.list`, …), what the network leaves out (a member's
//! count, a hidden subscriber count, a Page with only `fan_count`, a TikTok token without
//! `user.info.stats`), and the errors: a revoked token is `account_disconnected`, a failing
//! network `network_unavailable`, a throttle `network_rate_limited`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use crier_core::clock::ManualClock;
use crier_core::ids::WorkspaceId;
use crier_fakes::{FakeNetwork, Fault, kit};
use crier_networks::{
    Authorize, ConnectKind, Credentials, Exchange, Network, NetworkError, Session,
};
use crier_store::Account;
use serde_json::json;
use sha2::Digest as _;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "a-verifier-of-enough-length-for-pkce-0123456789";

/// A fake, its connector, and every account one approval connected (the user's own first).
struct Rig<F> {
    fake: F,
    net: Arc<dyn Network>,
    accounts: Vec<(Account, Credentials)>,
}

fn clock() -> ManualClock {
    ManualClock::new("2026-12-02T09:00:00Z".parse().expect("a time"))
}

impl<F: FakeNetwork> Rig<F> {
    async fn new<Fut>(start: impl FnOnce(Arc<dyn crier_core::Clock>) -> Fut) -> Self
    where
        Fut: std::future::Future<Output = F>,
    {
        let clock: Arc<dyn crier_core::Clock> = Arc::new(clock());
        let fake = start(clock.clone()).await;
        let net = fake.connector(clock);
        let accounts = connect(&fake, net.as_ref()).await;
        Self {
            fake,
            net,
            accounts,
        }
    }

    async fn followers(&self, i: usize) -> Result<Option<u64>, NetworkError> {
        let (account, credentials) = &self.accounts[i];
        self.net
            .followers(Session {
                account,
                credentials,
            })
            .await
    }

    fn external_id(&self, i: usize) -> &str {
        &self.accounts[i].0.external_id
    }

    /// The requests the fake saw to `path` (exact), with their query strings.
    fn queries(&self, method: &str, path: &str) -> Vec<String> {
        self.fake
            .faults()
            .seen()
            .into_iter()
            .filter(|s| s.method.eq_ignore_ascii_case(method) && s.path == path)
            .map(|s| s.query)
            .collect()
    }

    /// A failing network (503) is `network_unavailable`, a throttle (429 with the network's
    /// body) `network_rate_limited`, and once the user revoked crier's access, the account is
    /// `account_disconnected`.
    async fn maps_errors(&self, i: usize, method: &'static str, path: &str, throttle: Fault) {
        self.fake
            .faults()
            .push(Fault::status(method, path, 503, json!({})));
        let err = self.followers(i).await.expect_err("a 503");
        assert_eq!(err.code(), "network_unavailable", "{err:?}");
        assert!(err.is_transient());

        self.fake.faults().push(throttle);
        let err = self.followers(i).await.expect_err("a throttle");
        assert_eq!(err.code(), "network_rate_limited", "{err:?}");

        self.fake.revoke_access();
        let err = self.followers(i).await.expect_err("a revoked token");
        assert_eq!(err.code(), "account_disconnected", "{err:?}");
        assert!(matches!(err, NetworkError::Unauthorized { .. }));
    }
}

/// Through the network's OAuth flow, as crier-app does it.
async fn connect<F: FakeNetwork>(fake: &F, net: &dyn Network) -> Vec<(Account, Credentials)> {
    let client = fake.client();
    let pkce = matches!(net.connect_kind(), ConnectKind::OAuth { pkce: true, .. });
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(VERIFIER.as_bytes()));
    let url = net
        .authorize_url(&Authorize {
            client: &client,
            instance: None,
            redirect_uri: REDIRECT,
            state: "st",
            code_challenge: pkce.then_some(challenge.as_str()),
        })
        .expect("an authorization URL");
    let (code, state) = kit::approve(&url).await;
    assert_eq!(state, "st");
    let connected = net
        .exchange_code_all(&Exchange {
            client: &client,
            instance: None,
            redirect_uri: REDIRECT,
            code: &code,
            code_verifier: pkce.then_some(VERIFIER),
        })
        .await
        .expect("connected");
    assert!(!connected.is_empty());
    let ws = WorkspaceId::generate();
    connected
        .into_iter()
        .map(|c| {
            let account = Account::new(&ws, true, fake.platform(), &c.handle, &c.external_id, 0);
            (account, c.credentials)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// X
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn x_reads_public_metrics_followers_count() {
    let r = Rig::new(crier_fakes::x::XFake::start).await;
    r.fake.set_followers(1234);
    assert_eq!(r.followers(0).await, Ok(Some(1234)));
    r.fake.set_followers(0);
    assert_eq!(r.followers(0).await, Ok(Some(0)), "zero is a count");
    let q = r.queries("GET", "/2/users/me");
    assert!(
        q.last()
            .is_some_and(|q| q.contains("user.fields=public_metrics")),
        "{q:?}"
    );
    let throttle = Fault::status(
        "GET",
        "/2/users/me",
        429,
        json!({"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}),
    )
    .header("x-rate-limit-remaining", "0")
    .header("x-rate-limit-reset", "+600");
    r.maps_errors(0, "GET", "/2/users/me", throttle).await;
}

// ---------------------------------------------------------------------------------------------
// LinkedIn
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn linkedin_reads_a_pages_network_size_and_no_members_count() {
    let r = Rig::new(crier_fakes::linkedin::LinkedInFake::start).await;
    assert_eq!(r.accounts.len(), 2, "the member and their page");
    assert!(r.external_id(0).starts_with("urn:li:person:"));
    let page = format!("urn:li:organization:{}", crier_fakes::linkedin::PAGE);
    assert_eq!(r.external_id(1), page);
    r.fake.set_followers(1234);

    // The member: no documented follower count with crier's scopes; nothing is called.
    assert_eq!(r.followers(0).await, Ok(None));
    let calls = |r: &Rig<crier_fakes::linkedin::LinkedInFake>| {
        r.fake
            .faults()
            .seen()
            .into_iter()
            .filter(|s| s.path.starts_with("/rest/networkSizes/"))
            .count()
    };
    assert_eq!(calls(&r), 0, "no call for a member");

    // The page: networkSizes of its URN, encoded as one path segment.
    assert_eq!(r.followers(1).await, Ok(Some(1234)));
    let path = "/rest/networkSizes/urn%3Ali%3Aorganization%3A2414183";
    let q = r.queries("GET", path);
    assert_eq!(q, vec!["edgeType=COMPANY_FOLLOWED_BY_MEMBER".to_owned()]);
    r.fake.set_followers(98_765);
    assert_eq!(r.followers(1).await, Ok(Some(98_765)));

    let throttle = Fault::status(
        "GET",
        path,
        429,
        json!({"status": 429, "message": "Resource level throttle APPLICATION DAY limit for calls to this resource is reached."}),
    );
    r.maps_errors(1, "GET", path, throttle).await;
}

#[tokio::test]
async fn linkedin_fake_refuses_other_edges_and_members() {
    // The fake keeps to the reference: only the organization edge, only organizations.
    let clock: Arc<dyn crier_core::Clock> = Arc::new(clock());
    let fake = crier_fakes::linkedin::LinkedInFake::start(clock).await;
    let token = fake.issue().access_token;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!(
            "{}{}",
            fake.base().as_str().trim_end_matches('/'),
            path
        ))
        .bearer_auth(&token)
        .header("LinkedIn-Version", "202601")
        .header("X-Restli-Protocol-Version", "2.0.0")
        .send()
    };
    let member =
        get("/rest/networkSizes/urn%3Ali%3Aperson%3Auser-1?edgeType=COMPANY_FOLLOWED_BY_MEMBER")
            .await
            .unwrap();
    assert_eq!(member.status(), 400);
    let edge = get("/rest/networkSizes/urn%3Ali%3Aorganization%3A2414183?edgeType=CONNECTIONS")
        .await
        .unwrap();
    assert_eq!(edge.status(), 400);
    let unknown =
        get("/rest/networkSizes/urn%3Ali%3Aorganization%3A1?edgeType=COMPANY_FOLLOWED_BY_MEMBER")
            .await
            .unwrap();
    assert_eq!(unknown.status(), 404);
    let ok = get(
        "/rest/networkSizes/urn%3Ali%3Aorganization%3A2414183?edgeType=COMPANY_FOLLOWED_BY_MEMBER",
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&ok.bytes().await.unwrap()).unwrap();
    assert_eq!(body, json!({"firstDegreeSize": 0}));
}

// ---------------------------------------------------------------------------------------------
// Facebook
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn facebook_reads_each_pages_followers_count_or_fan_count() {
    let r = Rig::new(crier_fakes::facebook::FacebookFake::start).await;
    assert_eq!(r.accounts.len(), 2, "both Pages");
    r.fake.set_followers(1234);
    assert_eq!(r.followers(0).await, Ok(Some(1234)));
    assert_eq!(r.followers(1).await, Ok(Some(1234)));
    let path = format!("/{}/{}", crier_fakes::facebook::VERSION, r.external_id(0));
    let q = r.queries("GET", &path);
    assert!(
        q.last()
            .is_some_and(|q| q.contains("fields=followers_count%2Cfan_count")),
        "{q:?}"
    );
    // A Page that answers only its likes.
    r.fake.set_fans_only(77);
    assert_eq!(r.followers(0).await, Ok(Some(77)));

    let throttle = Fault::status(
        "GET",
        &path,
        400,
        json!({"error": {"message": "(#4) Application request limit reached", "type": "OAuthException", "code": 4, "is_transient": true, "fbtrace_id": "AbC"}}),
    );
    r.maps_errors(0, "GET", &path, throttle).await;
}

// ---------------------------------------------------------------------------------------------
// Instagram
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn instagram_reads_the_accounts_followers_count() {
    let r = Rig::new(crier_fakes::instagram::InstagramFake::start).await;
    r.fake.set_followers(1234);
    assert_eq!(r.followers(0).await, Ok(Some(1234)));
    let path = format!("/{}/me", crier_networks::instagram::VERSION);
    let q = r.queries("GET", &path);
    assert_eq!(q.last().map(String::as_str), Some("fields=followers_count"));
    r.fake.set_followers(98_765);
    assert_eq!(r.followers(0).await, Ok(Some(98_765)));

    let throttle = Fault::status(
        "GET",
        &path,
        400,
        json!({"error": {"message": "Application request limit reached", "type": "OAuthException", "code": 4, "is_transient": true, "fbtrace_id": "AbC"}}),
    );
    r.maps_errors(0, "GET", &path, throttle).await;
}

// ---------------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn threads_reads_followers_count_from_user_insights() {
    let r = Rig::new(crier_fakes::threads::ThreadsFake::start).await;
    r.fake.set_followers(1234);
    assert_eq!(r.followers(0).await, Ok(Some(1234)));
    let path = format!("/v1.0/{}/threads_insights", crier_fakes::threads::USER_ID);
    let q = r.queries("GET", &path);
    assert_eq!(q.last().map(String::as_str), Some("metric=followers_count"));
    r.fake.set_followers(98_765);
    assert_eq!(r.followers(0).await, Ok(Some(98_765)));

    let throttle = Fault::status(
        "GET",
        &path,
        400,
        json!({"error": {"message": "Application request limit reached", "type": "OAuthException", "code": 4, "is_transient": true, "fbtrace_id": "AbC"}}),
    );
    r.maps_errors(0, "GET", &path, throttle).await;
}

// ---------------------------------------------------------------------------------------------
// YouTube
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn youtube_reads_subscribers_as_rounded_and_none_when_hidden() {
    let clock = clock();
    let fake = crier_fakes::youtube::YouTubeFake::start(Arc::new(clock.clone())).await;
    // The concrete connector, to read its quota counter.
    let yt = crier_networks::youtube::YouTube::new(
        crier_networks::hosted::HostedConfig {
            base: Some(fake.base()),
            timeout: Duration::from_secs(2),
            poll_interval: Duration::from_millis(20),
            poll_max: Duration::from_millis(500),
            ..Default::default()
        },
        Arc::new(clock.clone()),
    );
    let accounts = connect(&fake, &yt).await;
    let (account, credentials) = &accounts[0];
    let session = Session {
        account,
        credentials,
    };
    let (units, _) = yt.quota_spent("crier-client");

    fake.set_followers(1234);
    assert_eq!(yt.followers(session).await, Ok(Some(1230)), "3 figures");
    assert_eq!(fake.followers_read_as(1234), Some(1230));
    fake.set_followers(999);
    assert_eq!(yt.followers(session).await, Ok(Some(999)));
    fake.set_followers(1_234_567);
    assert_eq!(yt.followers(session).await, Ok(Some(1_230_000)));
    assert_eq!(
        yt.quota_spent("crier-client").0,
        units + 3,
        "each reading is one list call: one unit"
    );
    let q: Vec<String> = fake
        .faults()
        .seen()
        .into_iter()
        .filter(|s| s.path == "/youtube/v3/channels")
        .map(|s| s.query)
        .collect();
    assert_eq!(
        q.last().map(String::as_str),
        Some("part=statistics&mine=true")
    );

    fake.hide_subscriber_count(true);
    assert_eq!(yt.followers(session).await, Ok(None), "hidden: no count");
    fake.hide_subscriber_count(false);
    assert_eq!(yt.followers(session).await, Ok(Some(1_230_000)));

    // Errors, as the connector's other calls map them.
    fake.faults().push(Fault::status(
        "GET",
        "/youtube/v3/channels",
        503,
        json!({"error": {"code": 503, "message": "The service is currently unavailable.", "errors": [{"message": "The service is currently unavailable.", "domain": "global", "reason": "backendError"}], "status": "UNAVAILABLE"}}),
    ));
    let err = yt.followers(session).await.expect_err("a 503");
    assert_eq!(err.code(), "network_unavailable", "{err:?}");
    fake.faults().push(Fault::status(
        "GET",
        "/youtube/v3/channels",
        403,
        json!({"error": {"code": 403, "message": "The request cannot be completed because you have exceeded your quota.", "errors": [{"message": "The request cannot be completed because you have exceeded your quota.", "domain": "youtube.quota", "reason": "quotaExceeded"}]}}),
    ));
    let err = yt.followers(session).await.expect_err("the quota");
    assert_eq!(err.code(), "network_rate_limited", "{err:?}");
    fake.revoke_access();
    let err = yt.followers(session).await.expect_err("revoked");
    assert_eq!(err.code(), "account_disconnected", "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// TikTok
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tiktok_reads_follower_count_with_user_info_stats() {
    assert!(crier_networks::tiktok::SCOPES.contains(&"user.info.stats"));
    let r = Rig::new(crier_fakes::tiktok::TikTokFake::start).await;
    r.fake.set_followers(1234);
    assert_eq!(r.followers(0).await, Ok(Some(1234)));
    let q = r.queries("GET", "/v2/user/info/");
    assert_eq!(q.last().map(String::as_str), Some("fields=follower_count"));
    r.fake.set_followers(98_765);
    assert_eq!(r.followers(0).await, Ok(Some(98_765)));

    let throttle = Fault::status(
        "GET",
        "/v2/user/info/",
        429,
        crier_fakes::tiktok::error_body("rate_limit_exceeded", "The API rate limit was exceeded."),
    );
    r.maps_errors(0, "GET", "/v2/user/info/", throttle).await;
}

#[tokio::test]
async fn tiktok_without_the_stats_scope_has_no_count_and_stays_connected() {
    let clock: Arc<dyn crier_core::Clock> = Arc::new(clock());
    let fake = crier_fakes::tiktok::TikTokFake::start(clock.clone()).await;
    // The user unticks the stats at the consent screen (or connected before crier asked).
    fake.grant_only("user.info.basic,video.publish,video.list");
    fake.set_followers(1234);
    let net = fake.connector(clock);
    let accounts = connect(&fake, net.as_ref()).await;
    let (account, credentials) = &accounts[0];
    let session = Session {
        account,
        credentials,
    };
    // TikTok refused the field (`scope_not_authorized`): no count, and not a disconnection.
    assert_eq!(net.followers(session).await, Ok(None));
    let refused = fake
        .faults()
        .seen()
        .into_iter()
        .filter(|s| s.path == "/v2/user/info/")
        .count();
    assert!(
        refused >= 2,
        "the connection and the reading called user info"
    );
    // A token that no longer works at all still is a disconnection.
    fake.revoke_access();
    let err = net.followers(session).await.expect_err("revoked");
    assert_eq!(err.code(), "account_disconnected", "{err:?}");
}
