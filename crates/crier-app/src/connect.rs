//! Connecting network accounts, for every caller: the OAuth code flow (a single-use `state`
//! bound to the workspace and mode, ten minutes to live, PKCE S256 where the network takes it,
//! clients registered per instance and remembered), credential logins (Bluesky), and the
//! sandbox's instant connect. Every way ends in [`Connections::save`]: a reconnect of the same
//! network account updates its row (same id), a new one counts against the plan, and the
//! credentials are sealed before the store sees them.
//!
//! Servers a user names (a Mastodon instance, a PDS) pass the SSRF guard unless the operator
//! allows private networks.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use crier_core::ErrorCode;
use crier_core::accounts::AccountStatus;
use crier_core::ids::AccountId;
use crier_networks::http::{UrlError, check_url};
use crier_networks::{
    Authorize, ConnectKind, Connected, Exchange, Login, Network, NetworkError, OAuthClient,
};
use crier_store::{Account, ConnectState, RegisteredClient, StoredClient};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::reseal::{self, One, Resealed};
use crate::{App, AppError, AppResult, Caller};

/// How long a started connection may be finished.
pub const STATE_TTL_MS: i64 = 10 * 60 * 1000;
/// Started connections one workspace may have open per mode.
pub const MAX_OPEN_STATES: i64 = 50;
/// Tokens are renewed this long before they expire.
pub const REFRESH_MARGIN_MS: i64 = 10 * 60 * 1000;
pub const MAX_URI: usize = 2048;
pub const MAX_CODE: usize = 2048;
pub const MAX_IDENTIFIER: usize = 253;
pub const MAX_PASSWORD: usize = 256;

/// The operator's connection settings.
#[derive(Debug, Clone, Default)]
pub struct ConnectConfig {
    /// The redirect URIs a client may name (exact match). Empty: OAuth connections cannot be
    /// started.
    pub redirect_uris: Vec<String>,
    /// OAuth clients the operator registered with networks of one server, by platform.
    pub clients: BTreeMap<String, OAuthClient>,
    /// Whether servers a user names may be on loopback and private networks.
    pub allow_private_networks: bool,
}

/// A started OAuth connection, as the client gets it.
#[derive(Debug, Clone)]
pub struct Started {
    pub url: String,
    pub state: String,
    pub expires_at: Timestamp,
}

/// What `POST /v1/connect/{platform}` carries.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    pub handle: Option<String>,
    pub code: Option<String>,
    pub state: Option<String>,
    pub identifier: Option<String>,
    pub app_password: Option<String>,
    pub service: Option<String>,
}

/// The connection rules over one [`App`].
pub struct Connections<'a> {
    pub(crate) app: &'a App,
}

/// The associated data an account's sealed credentials are bound to: its network identity,
/// which never changes for the row (a reconnect finds the row by it).
pub fn account_aad(a: &Account) -> String {
    format!(
        "account\0{}\0{}\0{}\0{}\0{}",
        a.workspace_id,
        a.livemode,
        a.platform,
        a.service.as_deref().unwrap_or(""),
        a.external_id
    )
}

fn random_token() -> String {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("the OS random number generator failed");
    B64.encode(raw)
}

fn sha256_hex(s: &str) -> String {
    hex_lower(&Sha256::digest(s.as_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// A network's error while connecting, as the API says it: refusals name `param`, outages
/// are `503`.
fn connect_error(e: NetworkError, param: &str) -> AppError {
    match e {
        NetworkError::Unauthorized { message }
        | NetworkError::Rejected { message }
        | NetworkError::MediaRejected { message } => {
            AppError::invalid(param, format!("The network refused: {message}"))
        }
        e @ (NetworkError::RateLimited { .. }
        | NetworkError::Unavailable { .. }
        | NetworkError::Timeout) => AppError::new(
            ErrorCode::UpstreamUnavailable,
            format!("The network could not be reached: {e}"),
        ),
    }
}

/// Whether an identifier a network (or a server a user named) answered can be stored and
/// matched as it is: not empty, and [`crier_core::text::is_storable`] within [`MAX_URI`].
fn keepable(id: &str) -> bool {
    !id.is_empty() && crier_core::text::is_storable(id, MAX_URI)
}

fn unkeepable() -> AppError {
    AppError::new(
        ErrorCode::UpstreamUnavailable,
        "The network answered with an account or client id crier cannot keep (empty, too long \
         or with control characters).",
    )
}

/// `s` without control characters, cut to `max` characters; `None` if nothing is left.
fn clean_text(s: &str, max: usize) -> Option<String> {
    let cleaned: String = s.chars().filter(|c| !c.is_control()).take(max).collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_owned())
}

/// An absolute http(s) URL of at most [`MAX_URI`] bytes (no `javascript:` or `data:` links).
fn web_url(s: &str) -> Option<String> {
    let url = url::Url::parse(s).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host().is_some() && s.len() <= MAX_URI)
        .then(|| url.to_string())
}

fn too_many_open() -> AppError {
    AppError::new(
        ErrorCode::Conflict,
        format!(
            "This workspace has {MAX_OPEN_STATES} connections in progress; finish them or wait \
             ten minutes for them to expire."
        ),
    )
}

/// Accounts one approval may connect (a member's pages).
pub const MAX_ACCOUNTS_PER_APPROVAL: usize = 50;

/// A required text field, trimmed unless `verbatim` (a password's spaces are its own).
fn required<'s>(
    value: &'s Option<String>,
    name: &str,
    max: usize,
    verbatim: bool,
) -> AppResult<&'s str> {
    let raw = value.as_deref().unwrap_or("");
    let v = if verbatim { raw } else { raw.trim() };
    if v.trim().is_empty() {
        return Err(AppError::invalid(name, format!("`{name}` is required.")));
    }
    if v.len() > max {
        return Err(AppError::invalid(
            name,
            format!("`{name}` must be at most {max} bytes."),
        ));
    }
    Ok(v)
}

/// What a registered client's secret is sealed bound to.
fn client_aad(platform: &str, instance: &str, redirect_uri: &str, client_id: &str) -> String {
    format!("oauth_client\0{platform}\0{instance}\0{redirect_uri}\0{client_id}")
}

impl Connections<'_> {
    /// Seals again, with the current key, the secrets of registered clients (per-instance
    /// networks) sealed with an older one, page by page of `page` by where they are
    /// registered.
    pub async fn reseal_clients(&self, page: u32) -> AppResult<Resealed> {
        let keyring = self.app.keyring();
        let store = self.app.store();
        let prefix = &keyring.current_prefix();
        reseal::paged(
            page,
            (String::new(), String::new(), String::new()),
            |after: (String, String, String)| async move {
                Ok(store.clients_sealed_otherwise(prefix, &after, page).await?)
            },
            |r: &RegisteredClient| r.at.clone(),
            |r: RegisteredClient| async move {
                let (platform, instance, redirect_uri) = &r.at;
                let aad = client_aad(platform, instance, redirect_uri, &r.client.client_id);
                let Some((old, Ok(new))) = r
                    .client
                    .client_secret
                    .as_ref()
                    .map(|old| (old, keyring.seal_again(old, &aad)))
                else {
                    return Ok(One::Unopened);
                };
                let done = store
                    .reseal_oauth_client(platform, instance, redirect_uri, old, &new)
                    .await?;
                Ok(if done { One::SealedAgain } else { One::Changed })
            },
        )
        .await
    }

    /// The client crier registered for `redirect_uri` on a per-instance network's `instance`,
    /// its secret opened (`None`: none registered yet).
    pub async fn registered_client(
        &self,
        platform: &str,
        instance: &str,
        redirect_uri: &str,
    ) -> AppResult<Option<OAuthClient>> {
        let store = self.app.store();
        let Some(found) = store
            .get_oauth_client(platform, instance, redirect_uri)
            .await?
        else {
            return Ok(None);
        };
        self.open_client(platform, instance, redirect_uri, found)
            .map(Some)
    }

    /// A registered client as stored, its secret opened.
    fn open_client(
        &self,
        platform: &str,
        instance: &str,
        redirect_uri: &str,
        stored: StoredClient,
    ) -> AppResult<OAuthClient> {
        let aad = client_aad(platform, instance, redirect_uri, &stored.client_id);
        let client_secret = match &stored.client_secret {
            Some(sealed) => Some(
                String::from_utf8(self.app.keyring().open(sealed, &aad).map_err(|e| {
                    AppError::internal(format!("a registered client's secret: {e}"))
                })?)
                .map_err(|_| AppError::internal("a registered client's secret"))?,
            ),
            None => None,
        };
        Ok(OAuthClient {
            client_id: stored.client_id,
            client_secret,
        })
    }

    /// The network's connector; test-mode keys connect only sandbox accounts (test mode never
    /// reaches a real network).
    fn network(&self, c: &Caller, platform: &str) -> AppResult<&std::sync::Arc<dyn Network>> {
        let network = self
            .app
            .networks()
            .get(platform)
            .ok_or_else(|| AppError::not_found("platform", platform))?;
        // A new account would be beyond a limited key's reach the moment it exists.
        c.require_unrestricted("connect accounts")?;
        if !c.livemode() && network.connect_kind() != ConnectKind::Instant {
            return Err(AppError::invalid(
                "platform",
                "Test-mode keys connect only sandbox accounts; use a live key for real networks.",
            ));
        }
        Ok(network)
    }

    /// The base URL of a server a user names (`https://host[:port]`), through the SSRF guard.
    pub fn server_url(&self, param: &str, raw: &str) -> AppResult<url::Url> {
        if raw.chars().count() > MAX_URI {
            return Err(AppError::invalid(
                param,
                format!("`{param}` must be at most {MAX_URI} characters."),
            ));
        }
        let allow = self.app.connect_config().allow_private_networks;
        let url = check_url(raw.trim(), allow).map_err(|e| {
            let why = match e {
                UrlError::Private => {
                    "points at a private or loopback address, which this server does not call"
                }
                _ => "must be an http(s) URL without credentials",
            };
            AppError::invalid(param, format!("`{param}` {why}."))
        })?;
        if url.scheme() != "https" && !allow {
            return Err(AppError::invalid(
                param,
                format!("`{param}` must be https."),
            ));
        }
        let mut base = url.clone();
        base.set_path("");
        base.set_query(None);
        base.set_fragment(None);
        Ok(base)
    }

    /// Starts an OAuth connection: the URL to send the user to and the `state` to finish with.
    pub async fn start(
        &self,
        c: &Caller,
        platform: &str,
        redirect_uri: Option<&str>,
        instance: Option<&str>,
    ) -> AppResult<Option<Started>> {
        let network = self.network(c, platform)?;
        let ConnectKind::OAuth { pkce, per_instance } = network.connect_kind() else {
            return Ok(None);
        };
        let redirect_uri = redirect_uri.map(str::trim).unwrap_or("");
        if redirect_uri.is_empty() {
            return Err(AppError::invalid(
                "redirect_uri",
                "`redirect_uri` is required: where the network sends the user back.",
            ));
        }
        if !self
            .app
            .connect_config()
            .redirect_uris
            .iter()
            .any(|u| u == redirect_uri)
        {
            return Err(AppError::invalid(
                "redirect_uri",
                "`redirect_uri` is not one of this server's allowed redirect URIs \
                 (the operator lists them in `connect_redirect_uris`).",
            ));
        }
        let instance = if per_instance {
            let raw = instance.unwrap_or("");
            if raw.trim().is_empty() {
                return Err(AppError::invalid(
                    "instance",
                    format!("`instance` is required for {platform}: the server's base URL."),
                ));
            }
            Some(self.server_url("instance", raw)?)
        } else {
            None
        };
        let now = self.app.clock().now_ms();
        // Before any call to the network (a registration is one): a workspace at its cap of
        // connections in progress starts no more.
        if self
            .app
            .store()
            .count_connect_states(&c.tenant, now)
            .await?
            >= MAX_OPEN_STATES
        {
            return Err(too_many_open());
        }
        let client = self
            .client(platform, &**network, instance.as_ref(), redirect_uri, true)
            .await?;
        let state = random_token();
        let verifier = pkce.then(random_token);
        let stored = ConnectState {
            state_hash: sha256_hex(&state),
            tenant: c.tenant.clone(),
            platform: platform.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            instance: instance
                .as_ref()
                .map(url::Url::to_string)
                .unwrap_or_default(),
            code_verifier: None,
            created_at: now,
            expires_at: now + STATE_TTL_MS,
        };
        let stored = ConnectState {
            code_verifier: verifier
                .as_ref()
                .map(|v| self.app.keyring().seal(v.as_bytes(), &stored.state_hash)),
            ..stored
        };
        let challenge = verifier.as_deref().map(pkce_challenge);
        let url = network
            .authorize_url(&Authorize {
                client: &client,
                instance: instance.as_ref(),
                redirect_uri,
                state: &state,
                code_challenge: challenge.as_deref(),
            })
            .map_err(|e| connect_error(e, "platform"))?;
        if !self
            .app
            .store()
            .insert_connect_state(&stored, MAX_OPEN_STATES)
            .await?
        {
            return Err(too_many_open());
        }
        Ok(Some(Started {
            url: url.to_string(),
            state,
            expires_at: crier_core::clock::from_ms(stored.expires_at),
        }))
    }

    /// The OAuth client for a platform (and instance): the operator's, or, for per-instance
    /// networks, the one crier registered there (registering it first when `register`).
    async fn client(
        &self,
        platform: &str,
        network: &dyn Network,
        instance: Option<&url::Url>,
        redirect_uri: &str,
        register: bool,
    ) -> AppResult<OAuthClient> {
        let Some(instance) = instance else {
            return self
                .app
                .connect_config()
                .clients
                .get(platform)
                .cloned()
                .ok_or_else(|| {
                    AppError::invalid(
                        "platform",
                        format!(
                            "{platform} is not configured on this server (the operator sets its \
                             client id and secret)."
                        ),
                    )
                });
        };
        let keyring = self.app.keyring();
        let aad = |id: &str| client_aad(platform, instance.as_str(), redirect_uri, id);
        let store = self.app.store();
        let key = instance.as_str();
        if let Some(client) = self.registered_client(platform, key, redirect_uri).await? {
            return Ok(client);
        }
        if !register {
            return Err(AppError::invalid(
                "state",
                "The connection's client registration is gone; start again.",
            ));
        }
        let client = network
            .register_client(instance, redirect_uri)
            .await
            .map_err(|e| connect_error(e, "instance"))?;
        if !keepable(&client.client_id) {
            return Err(unkeepable());
        }
        let sealed = StoredClient {
            client_id: client.client_id.clone(),
            client_secret: client
                .client_secret
                .as_ref()
                .map(|s| keyring.seal(s.as_bytes(), &aad(&client.client_id))),
        };
        let kept = store
            .put_oauth_client(
                platform,
                key,
                redirect_uri,
                &sealed,
                self.app.clock().now_ms(),
            )
            .await?;
        self.open_client(platform, key, redirect_uri, kept)
    }

    /// Finishes connecting: an OAuth `code` and `state`, credentials, or a sandbox handle, as
    /// the network connects.
    pub async fn finish(&self, c: &Caller, platform: &str, req: Finish) -> AppResult<Account> {
        let network = self.network(c, platform)?.clone();
        let kind = network.connect_kind();
        // Fields of another way of connecting are refused, not ignored: a client that sends
        // `code` to a credential network has misunderstood something.
        let oauth = matches!(kind, ConnectKind::OAuth { .. });
        let credentials = kind == ConnectKind::Credentials;
        let given = [
            ("handle", req.handle.is_some(), kind == ConnectKind::Instant),
            ("identifier", req.identifier.is_some(), credentials),
            ("app_password", req.app_password.is_some(), credentials),
            ("service", req.service.is_some(), credentials),
            ("code", req.code.is_some(), oauth),
            ("state", req.state.is_some(), oauth),
        ];
        for (field, present, fits) in given {
            if present && !fits {
                return Err(AppError::invalid(
                    field,
                    format!("`{field}` does not apply to connecting a {platform} account."),
                ));
            }
        }
        match kind {
            ConnectKind::Instant => {
                let handle = req.handle.clone().unwrap_or_default();
                self.app.accounts().connect(c, platform, &handle).await
            }
            ConnectKind::Credentials => {
                let identifier = required(&req.identifier, "identifier", MAX_IDENTIFIER, false)?;
                let password = required(&req.app_password, "app_password", MAX_PASSWORD, true)?;
                let service = match req.service.as_deref().map(str::trim) {
                    Some(s) if !s.is_empty() => {
                        let mut url = self.server_url("service", s)?.to_string();
                        while url.ends_with('/') {
                            url.pop();
                        }
                        Some(url)
                    }
                    _ => None,
                };
                let login = Login {
                    identifier: identifier.to_owned(),
                    password: password.to_owned(),
                    service,
                };
                let connected = network
                    .login(&login)
                    .await
                    .map_err(|e| connect_error(e, "app_password"))?;
                self.save(c, platform, connected).await
            }
            ConnectKind::OAuth { .. } => {
                let code = required(&req.code, "code", MAX_CODE, false)?;
                let state = required(&req.state, "state", MAX_CODE, false)?;
                let now = self.app.clock().now_ms();
                let hash = sha256_hex(state);
                let Some(started) = self
                    .app
                    .store()
                    .take_connect_state(&c.tenant, platform, &hash, now)
                    .await?
                else {
                    return Err(AppError::invalid(
                        "state",
                        "`state` is unknown, expired, already used, or not this workspace's: \
                         start again with GET /v1/connect/{platform}.",
                    ));
                };
                let verifier = match &started.code_verifier {
                    Some(sealed) => Some(
                        String::from_utf8(
                            self.app
                                .keyring()
                                .open(sealed, &started.state_hash)
                                .map_err(|e| AppError::internal(format!("a PKCE verifier: {e}")))?,
                        )
                        .map_err(|_| AppError::internal("a PKCE verifier"))?,
                    ),
                    None => None,
                };
                let instance =
                    if started.instance.is_empty() {
                        None
                    } else {
                        Some(url::Url::parse(&started.instance).map_err(|_| {
                            AppError::internal("a started connection's instance URL")
                        })?)
                    };
                let client = self
                    .client(
                        platform,
                        &*network,
                        instance.as_ref(),
                        &started.redirect_uri,
                        false,
                    )
                    .await?;
                let connected = network
                    .exchange_code_all(&Exchange {
                        client: &client,
                        instance: instance.as_ref(),
                        redirect_uri: &started.redirect_uri,
                        code,
                        code_verifier: verifier.as_deref(),
                    })
                    .await
                    .map_err(|e| connect_error(e, "code"))?;
                let mut connected = connected.into_iter().take(MAX_ACCOUNTS_PER_APPROVAL);
                let first = connected.next().ok_or_else(|| {
                    AppError::invalid("code", "The network connected no account.")
                })?;
                let account = self.save(c, platform, first).await?;
                // The pages that came with it, while the plan has room: one the plan cannot
                // take stops the rest (the user connects them after upgrading).
                for more in connected {
                    if let Err(e) = self.save(c, platform, more).await {
                        tracing::info!(platform, error = %e.message, "connect: an account beyond the first was not saved");
                        break;
                    }
                }
                Ok(account)
            }
        }
    }

    /// Stores a connected network account for the caller: the existing row of this network
    /// account (same id, connected again) or a new one within the plan's limit. Credentials
    /// are sealed, bound to the account's network identity.
    pub async fn save(&self, c: &Caller, platform: &str, n: Connected) -> AppResult<Account> {
        c.require_unrestricted("connect accounts")?;
        if !keepable(&n.external_id) || n.service.as_deref().is_some_and(|s| !keepable(s)) {
            return Err(unkeepable());
        }
        let store = self.app.store();
        let existing = store
            .find_account(&c.tenant, platform, n.service.as_deref(), &n.external_id)
            .await?;
        let counts = existing
            .as_ref()
            .is_none_or(|a| a.status != AccountStatus::Connected);
        if counts {
            self.app.accounts().check_room(c).await?;
        }
        let now = self.app.clock().now_ms();
        // What a network (or a server a user named) says of the account is shown in responses,
        // dashboards and webhooks: only http(s) links, bounded texts without controls.
        let n = Connected {
            handle: clean_text(&n.handle, 253).unwrap_or_else(|| n.external_id.clone()),
            display_name: n.display_name.as_deref().and_then(|d| clean_text(d, 200)),
            avatar_url: n.avatar_url.as_deref().and_then(web_url),
            profile_url: n.profile_url.as_deref().and_then(web_url),
            ..n
        };
        let mut account = Account {
            id: existing.map_or_else(AccountId::generate, |a| a.id),
            workspace_id: c.workspace().clone(),
            platform: platform.to_owned(),
            handle: n.handle,
            livemode: c.livemode(),
            status: AccountStatus::Connected,
            created_at: now,
            disconnected_at: None,
            external_id: n.external_id,
            service: n.service,
            display_name: n.display_name,
            avatar_url: n.avatar_url,
            profile_url: n.profile_url,
            credentials: None,
            token_expires_at: n.credentials.expires_at,
            refresh_at: None,
            updated_at: now,
        };
        let renewable = n.credentials.refresh_token.is_some() || n.credentials.login.is_some();
        account.refresh_at = n
            .credentials
            .expires_at
            .filter(|_| renewable)
            .map(|at| (at - REFRESH_MARGIN_MS).max(now));
        account.credentials = Some(
            self.app
                .keyring()
                .seal_json(&n.credentials, &account_aad(&account)),
        );
        Ok(store.connect_account(&account).await?)
    }
}
