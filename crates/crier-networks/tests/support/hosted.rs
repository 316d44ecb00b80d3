//! What the hosted networks' suites share (x, linkedin, facebook, instagram, threads, youtube,
//! tiktok), each testing a connector against its stateful fake from `crier-fakes`: a rig of a
//! manual clock, the fake and the connector; connecting through the fake's OAuth (the URL, the
//! fake user's approval, the code exchanged); the account a `Connected` becomes and its
//! session; parts on `MemorySteps`; attachments, served on 127.0.0.1 where the network fetches
//! them by URL. Included by path: `#[path = "support/hosted.rs"] mod hosted;`.
#![allow(dead_code)]

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use crier_core::Clock;
use crier_core::accounts::AccountStatus;
use crier_core::clock::ManualClock;
use crier_core::ids::{AccountId, WorkspaceId};
use crier_fakes::{FakeNetwork, kit};
use crier_networks::{
    Attachment, Authorize, Connected, Credentials, Exchange, MediaMeta, MemorySteps, Network,
    NetworkError, OAuthClient, Part, PublishedPart, Session,
};
use crier_store::{Account, PostOverride};

/// The redirect URI the app registers with the networks.
pub const REDIRECT: &str = "https://app.example/connected";

/// The connector under test: the `Arc<dyn Network>` a fake hands out, or a concrete connector
/// (implement this for it in the suite) whose own methods the suite calls.
pub trait Connector {
    fn network(&self) -> &dyn Network;
}

impl Connector for Arc<dyn Network> {
    fn network(&self) -> &dyn Network {
        self.as_ref()
    }
}

/// A fake on a manual clock and a connector pointed at it.
pub struct Rig<F, N = Arc<dyn Network>> {
    pub clock: ManualClock,
    pub fake: F,
    pub net: N,
}

impl<F: FakeNetwork> Rig<F> {
    /// The fake `start` starts, at `at`, and the connector it hands out.
    pub async fn start<S: Future<Output = F>>(
        at: jiff::Timestamp,
        start: impl FnOnce(Arc<dyn Clock>) -> S,
    ) -> Self {
        Self::start_with(at, start, |fake, clock| {
            fake.connector(Arc::new(clock.clone()))
        })
        .await
    }
}

impl<F: FakeNetwork, N: Connector> Rig<F, N> {
    /// The fake `start` starts, at `at`, and the connector `net` makes for it.
    pub async fn start_with<S: Future<Output = F>>(
        at: jiff::Timestamp,
        start: impl FnOnce(Arc<dyn Clock>) -> S,
        net: impl FnOnce(&F, &ManualClock) -> N,
    ) -> Self {
        let clock = ManualClock::new(at);
        let fake = start(Arc::new(clock.clone())).await;
        let net = net(&fake, &clock);
        Self { clock, fake, net }
    }

    /// The grant the operator's OAuth client for this fake asks, without PKCE.
    pub fn grant(&self) -> Grant<'static> {
        Grant::new(self.fake.client())
    }

    /// Connects the account the fake's user approves.
    pub async fn connect(&self) -> Result<Connected, NetworkError> {
        self.grant().connect(self.net.network()).await
    }

    /// Connects every account of the fake user's approval (a member and their pages).
    pub async fn connect_all(&self) -> Result<Vec<Connected>, NetworkError> {
        self.grant().connect_all(self.net.network()).await
    }

    /// The requests of `method` the fake saw whose path `path` accepts.
    pub fn seen(&self, method: &str, path: impl Fn(&str) -> bool) -> usize {
        self.fake
            .faults()
            .seen()
            .iter()
            .filter(|s| s.method == method && path(&s.path))
            .count()
    }

    /// The rig with `connected` as its account.
    pub fn signed_in(self, platform: &str, connected: Connected) -> SignedIn<F, N> {
        SignedIn {
            account: account_from(&connected, platform),
            connected,
            rig: self,
        }
    }
}

/// A rig with one connected account; it derefs to the rig.
pub struct SignedIn<F, N = Arc<dyn Network>> {
    pub rig: Rig<F, N>,
    pub account: Account,
    pub connected: Connected,
}

impl<F, N> Deref for SignedIn<F, N> {
    type Target = Rig<F, N>;

    fn deref(&self) -> &Rig<F, N> {
        &self.rig
    }
}

impl<F: FakeNetwork, N: Connector> SignedIn<F, N> {
    pub fn creds(&self) -> &Credentials {
        &self.connected.credentials
    }

    pub fn session(&self) -> Session<'_> {
        session(&self.account, &self.connected.credentials)
    }

    pub async fn publish(&self, part: Part<'_>) -> Result<PublishedPart, NetworkError> {
        self.net.network().publish(self.session(), part).await
    }

    pub async fn lookup(&self, part: Part<'_>) -> Result<Option<PublishedPart>, NetworkError> {
        self.net.network().lookup(self.session(), part).await
    }

    /// Publishes a lone part of `text` and `media` with `options`.
    pub async fn publish_with(
        &self,
        text: &str,
        media: &[Attachment],
        options: &PostOverride,
        steps: &MemorySteps,
    ) -> Result<PublishedPart, NetworkError> {
        self.publish(part_with(text, media, options, steps)).await
    }

    /// Looks up a lone part of `text` and `media` with `options`.
    pub async fn lookup_with(
        &self,
        text: &str,
        media: &[Attachment],
        options: &PostOverride,
        steps: &MemorySteps,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        self.lookup(part_with(text, media, options, steps)).await
    }
}

/// The authorization URL's request, to [`REDIRECT`].
pub fn authorize<'a>(
    client: &'a OAuthClient,
    state: &'a str,
    code_challenge: Option<&'a str>,
) -> Authorize<'a> {
    Authorize {
        client,
        instance: None,
        redirect_uri: REDIRECT,
        state,
        code_challenge,
    }
}

/// The code's exchange, from [`REDIRECT`].
pub fn exchange<'a>(
    client: &'a OAuthClient,
    code: &'a str,
    code_verifier: Option<&'a str>,
) -> Exchange<'a> {
    Exchange {
        client,
        instance: None,
        redirect_uri: REDIRECT,
        code,
        code_verifier,
    }
}

/// One OAuth grant through a fake: the authorization URL, the fake user's approval, the code
/// exchanged.
pub struct Grant<'a> {
    pub client: OAuthClient,
    pub redirect_uri: &'a str,
    pub code_challenge: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
}

impl<'a> Grant<'a> {
    /// To [`REDIRECT`], without PKCE.
    pub fn new(client: OAuthClient) -> Self {
        Self {
            client,
            redirect_uri: REDIRECT,
            code_challenge: None,
            code_verifier: None,
        }
    }

    pub fn pkce(self, code_challenge: Option<&'a str>, code_verifier: Option<&'a str>) -> Self {
        Self {
            code_challenge,
            code_verifier,
            ..self
        }
    }

    /// The code the fake user's approval gives (the state comes back as sent).
    pub async fn code(&self, net: &dyn Network) -> Result<String, NetworkError> {
        let url = net.authorize_url(&Authorize {
            redirect_uri: self.redirect_uri,
            ..authorize(&self.client, "st", self.code_challenge)
        })?;
        let (code, state) = kit::approve(&url).await;
        assert_eq!(state, "st");
        Ok(code)
    }

    fn exchange<'b>(&'b self, code: &'b str) -> Exchange<'b> {
        Exchange {
            redirect_uri: self.redirect_uri,
            ..exchange(&self.client, code, self.code_verifier)
        }
    }

    pub async fn connect(&self, net: &dyn Network) -> Result<Connected, NetworkError> {
        let code = self.code(net).await?;
        net.exchange_code(&self.exchange(&code)).await
    }

    pub async fn connect_all(&self, net: &dyn Network) -> Result<Vec<Connected>, NetworkError> {
        let code = self.code(net).await?;
        net.exchange_code_all(&self.exchange(&code)).await
    }
}

/// The account of `platform` that `c` is, as the API would store it (without credentials).
pub fn account_from(c: &Connected, platform: &str) -> Account {
    Account {
        id: AccountId::generate(),
        workspace_id: WorkspaceId::generate(),
        platform: platform.into(),
        handle: c.handle.clone(),
        livemode: true,
        status: AccountStatus::Connected,
        created_at: 0,
        disconnected_at: None,
        external_id: c.external_id.clone(),
        service: c.service.clone(),
        display_name: c.display_name.clone(),
        avatar_url: c.avatar_url.clone(),
        profile_url: c.profile_url.clone(),
        credentials: None,
        token_expires_at: c.credentials.expires_at,
        refresh_at: None,
        updated_at: 0,
    }
}

pub fn session<'a>(account: &'a Account, credentials: &'a Credentials) -> Session<'a> {
    Session {
        account,
        credentials,
    }
}

/// No per-network options.
pub fn no_options() -> &'static PostOverride {
    Box::leak(Box::default())
}

/// The per-network options `v` (a JSON object).
pub fn options(v: serde_json::Value) -> PostOverride {
    PostOverride {
        options: serde_json::from_value(v).expect("options"),
        ..PostOverride::default()
    }
}

/// A lone part: no thread, no options.
pub fn part<'a>(text: &'a str, media: &'a [Attachment], steps: &'a MemorySteps) -> Part<'a> {
    Part {
        text,
        media,
        thread: &[],
        options: no_options(),
        idem_key: "k",
        steps,
    }
}

/// A part following the thread's earlier parts' post ids.
pub fn thread_part<'a>(
    text: &'a str,
    media: &'a [Attachment],
    thread: &'a [String],
    steps: &'a MemorySteps,
) -> Part<'a> {
    Part {
        thread,
        ..part(text, media, steps)
    }
}

/// A lone part with `options`.
pub fn part_with<'a>(
    text: &'a str,
    media: &'a [Attachment],
    options: &'a PostOverride,
    steps: &'a MemorySteps,
) -> Part<'a> {
    Part {
        options,
        ..part(text, media, steps)
    }
}

/// `bytes` of `content_type` as an attachment the connector uploads (no URL): a random id,
/// its size, no dimensions, duration or alt text, named `f`; the [`Media`] methods set those.
pub fn attachment(bytes: Vec<u8>, content_type: &str) -> Attachment {
    Attachment {
        meta: MediaMeta {
            id: format!("med_{}", kit::random(6)),
            content_type: content_type.into(),
            size: bytes.len() as u64,
            width: None,
            height: None,
            duration_ms: None,
            alt_text: None,
            filename: "f".into(),
        },
        bytes: bytes.into(),
        url: String::new(),
    }
}

/// `a`'s bytes served on 127.0.0.1 as the media store's signed URL serves them (with `a`'s
/// content type), at `…/media/file?sig=abc`; a `status` other than 200 fails the download.
pub async fn served(mut a: Attachment, status: u16) -> Attachment {
    let body = a.bytes.clone();
    let content_type = a.meta.content_type.clone();
    let router = axum::Router::new().route(
        "/media/file",
        axum::routing::get(move || {
            let body = body.clone();
            let content_type = content_type.clone();
            async move {
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [(axum::http::header::CONTENT_TYPE, content_type)],
                    body,
                )
            }
        }),
    );
    let base = kit::serve(router).await;
    a.url = format!("{base}media/file?sig=abc");
    a
}

/// Setting an attachment's metadata.
pub trait Media: Sized {
    fn meta_mut(&mut self) -> &mut MediaMeta;

    fn id(mut self, id: &str) -> Self {
        self.meta_mut().id = id.into();
        self
    }

    fn sized(mut self, width: u32, height: u32) -> Self {
        let m = self.meta_mut();
        m.width = Some(width);
        m.height = Some(height);
        self
    }

    fn lasting(mut self, duration_ms: Option<u64>) -> Self {
        self.meta_mut().duration_ms = duration_ms;
        self
    }

    fn alt(mut self, alt_text: Option<&str>) -> Self {
        self.meta_mut().alt_text = alt_text.map(str::to_owned);
        self
    }

    fn named(mut self, filename: &str) -> Self {
        self.meta_mut().filename = filename.into();
        self
    }
}

impl Media for Attachment {
    fn meta_mut(&mut self) -> &mut MediaMeta {
        &mut self.meta
    }
}
