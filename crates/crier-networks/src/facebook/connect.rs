//! Facebook Login for Pages: the code becomes a short-lived user token (`/oauth/access_token`),
//! that becomes a long-lived one (`grant_type=fb_exchange_token`, about 60 days), and the
//! long-lived user token lists the Pages the person manages (`/me/accounts`), each with its
//! own Page token. Page tokens obtained from a long-lived user token have no expiry ("Get
//! Long-Lived Tokens", developers.facebook.com/docs/facebook-login/guides/access-tokens/
//! get-long-lived): each Page becomes one account whose credentials are its Page token alone.

use crate::oauth2::{ClientAuth, OAuth2};
use crate::{Connected, Credentials, Exchange, NetworkError, OAuthClient};

use super::Facebook;
use super::api::{List, VERSION, WWW};

/// What crier asks for: list the Pages, read their posts and engagement, and publish.
pub const SCOPES: [&str; 4] = [
    "pages_show_list",
    "pages_read_engagement",
    "pages_manage_posts",
    "pages_read_user_content",
];

/// The most `/me/accounts` pages read (of 100 Pages each) in one connection.
const MAX_ACCOUNT_PAGES: usize = 10;

/// One Page of `/me/accounts`.
#[derive(Debug, serde::Deserialize)]
struct PageEntry {
    id: String,
    #[serde(default)]
    name: Option<String>,
    /// Absent when the person cannot act on the Page (no task that allows posting).
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    picture: Option<Picture>,
}

#[derive(Debug, serde::Deserialize)]
struct Picture {
    #[serde(default)]
    data: Option<PictureData>,
}

#[derive(Debug, serde::Deserialize)]
struct PictureData {
    #[serde(default)]
    url: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct LongLived {
    access_token: String,
}

impl Facebook {
    /// Facebook Login's endpoints ("Manually Build a Login Flow",
    /// developers.facebook.com/docs/facebook-login/guides/advanced/manual-flow): the client
    /// secret goes in the body, scopes are comma-separated, no PKCE.
    pub(super) fn oauth(&self) -> OAuth2 {
        OAuth2 {
            network: super::PLATFORM,
            authorize: self.graph.api.url(WWW, &format!("/{VERSION}/dialog/oauth")),
            token: self.graph.url("/oauth/access_token"),
            revoke: None,
            scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            scope_separator: ",",
            client_auth: ClientAuth::Body,
            client_id_param: "client_id",
            extra_authorize: Vec::new(),
        }
    }

    /// The short-lived user token of a code, exchanged for a long-lived one.
    pub(super) async fn user_token(&self, e: &Exchange<'_>) -> Result<String, NetworkError> {
        let short = self.oauth().exchange(&self.graph.api.http, e).await?;
        let secret = e.client.client_secret.as_deref().ok_or_else(|| {
            NetworkError::rejected("facebook: the app secret is needed to connect Pages")
        })?;
        // POST rather than the documented GET: the same parameters, without the app secret
        // and the token in a URL (Graph takes either method).
        let form = [
            ("grant_type", "fb_exchange_token"),
            ("client_id", e.client.client_id.as_str()),
            ("client_secret", secret),
            ("fb_exchange_token", short.access_token.as_str()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let long: LongLived = self
            .graph
            .post_form(
                self.graph.url("/oauth/access_token"),
                &short.access_token,
                &form,
            )
            .await?;
        if long.access_token.is_empty() {
            return Err(NetworkError::unavailable(
                "facebook: the long-lived token exchange answered without a token",
            ));
        }
        Ok(long.access_token)
    }

    /// Every Page the user token can post to, one account each, in the order Facebook lists
    /// them (bounded: [`MAX_ACCOUNT_PAGES`] list pages).
    pub(super) async fn pages(
        &self,
        user_token: &str,
        client: &OAuthClient,
    ) -> Result<Vec<Connected>, NetworkError> {
        let mut url = self.graph.url("/me/accounts");
        url.query_pairs_mut()
            .append_pair("fields", "id,name,access_token,username,link,picture{url}")
            .append_pair("limit", "100");
        let mut out = Vec::new();
        for _ in 0..MAX_ACCOUNT_PAGES {
            let list: List<PageEntry> = self.graph.get(url, user_token).await?;
            out.extend(list.data.iter().filter_map(|p| connected(p, client)));
            match list.next().and_then(|n| self.graph.next_page(n)) {
                Some(next) => url = next,
                None => break,
            }
        }
        if out.is_empty() {
            return Err(NetworkError::rejected(
                "facebook: no Facebook Page to publish to; the person manages no Page, or did \
                 not grant crier any",
            ));
        }
        Ok(out)
    }
}

fn connected(p: &PageEntry, client: &OAuthClient) -> Option<Connected> {
    let token = p.access_token.as_deref().filter(|t| !t.is_empty())?;
    super::api::id_segment(&p.id).ok()?;
    Some(Connected {
        external_id: p.id.clone(),
        handle: p.username.clone().unwrap_or_else(|| p.id.clone()),
        display_name: p.name.clone(),
        avatar_url: p
            .picture
            .as_ref()
            .and_then(|x| x.data.as_ref())
            .and_then(|d| d.url.clone()),
        profile_url: Some(p.link.clone().unwrap_or_else(|| format!("{WWW}/{}", p.id))),
        service: None,
        credentials: Credentials {
            access_token: token.to_owned(),
            refresh_token: None,
            // A Page token from a long-lived user token does not expire.
            expires_at: None,
            client: Some(client.clone()),
            login: None,
            service: None,
        },
    })
}
