//! The OAuth 2.0 authorization code flow (RFC 6749) with PKCE (RFC 7636, S256), refresh
//! (§6) and revocation (RFC 7009), as the networks of one server use it: X, LinkedIn,
//! Threads, YouTube (Google), TikTok, Facebook and Instagram. Each connector describes its
//! endpoints and quirks in an [`OAuth2`] and calls these; what is left network-specific
//! (long-lived token exchanges, page tokens) stays in the connector.
//!
//! Verified against a real authorization server: `oidc-provider` (npm, run by
//! `scripts/peers/oidc.sh`), which checks client secrets and PKCE (`tests/oauth2_oidc.rs`).

use std::time::Duration;

use crate::{Authorize, Credentials, Exchange, NetworkError, OAuthClient};

/// How the client proves itself at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:client_secret)` (RFC 6749 §2.3.1; X, oidc-provider
    /// by default).
    Basic,
    /// `client_id` and `client_secret` in the form body (Google, LinkedIn, Meta, TikTok).
    Body,
}

/// One network's OAuth 2.0 endpoints and manners.
#[derive(Debug, Clone)]
pub struct OAuth2 {
    /// The network's name in messages (`x: …`).
    pub network: &'static str,
    pub authorize: url::Url,
    pub token: url::Url,
    pub revoke: Option<url::Url>,
    pub scopes: Vec<String>,
    /// What joins the scopes (`" "` by the RFC; `","` for TikTok and Meta).
    pub scope_separator: &'static str,
    pub client_auth: ClientAuth,
    /// The name of the client id parameter (`client_id`; TikTok's is `client_key`).
    pub client_id_param: &'static str,
    /// More parameters of the authorization URL (`access_type=offline`, `prompt=consent`).
    pub extra_authorize: Vec<(&'static str, &'static str)>,
}

/// A token endpoint's answer (RFC 6749 §5.1), with what networks add kept in `extra`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Tokens {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Seconds; some networks send it as a string.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Tokens {
    /// Credentials for an account from these tokens at `now` (epoch ms); `previous_refresh`
    /// stays when the server did not rotate the refresh token.
    pub fn credentials(&self, now: i64, previous_refresh: Option<&str>) -> Credentials {
        Credentials {
            access_token: self.access_token.clone(),
            refresh_token: self
                .refresh_token
                .clone()
                .or_else(|| previous_refresh.map(str::to_owned)),
            expires_at: self
                .expires_in
                .filter(|s| *s > 0)
                .map(|s| now.saturating_add(s.saturating_mul(1000))),
            ..Credentials::default()
        }
    }
}

fn lenient_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::Deserialize;
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// The most we read of a token endpoint's answer.
const MAX_BODY: usize = 64 * 1024;

impl OAuth2 {
    /// The URL the user approves at: `response_type=code`, the client, the redirect URI, the
    /// scopes, `state` and the PKCE challenge (S256) when given.
    pub fn authorize_url(&self, a: &Authorize<'_>) -> url::Url {
        let mut url = self.authorize.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair(self.client_id_param, &a.client.client_id)
                .append_pair("redirect_uri", a.redirect_uri)
                .append_pair("state", a.state);
            if !self.scopes.is_empty() {
                q.append_pair("scope", &self.scopes.join(self.scope_separator));
            }
            if let Some(challenge) = a.code_challenge {
                q.append_pair("code_challenge", challenge)
                    .append_pair("code_challenge_method", "S256");
            }
            for (k, v) in &self.extra_authorize {
                q.append_pair(k, v);
            }
        }
        url
    }

    /// Trades an authorization code for tokens.
    pub async fn exchange(
        &self,
        http: &reqwest::Client,
        e: &Exchange<'_>,
    ) -> Result<Tokens, NetworkError> {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", e.code.to_owned()),
            ("redirect_uri", e.redirect_uri.to_owned()),
        ];
        if let Some(v) = e.code_verifier {
            form.push(("code_verifier", v.to_owned()));
        }
        self.token_call(http, e.client, form).await
    }

    /// Fresh tokens from a refresh token. A refusal (`invalid_grant`: revoked, expired) is
    /// [`NetworkError::Unauthorized`].
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        client: &OAuthClient,
        refresh_token: &str,
    ) -> Result<Tokens, NetworkError> {
        let form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.to_owned()),
        ];
        self.token_call(http, client, form).await
    }

    /// Revokes a token (RFC 7009), when the network has a revocation endpoint. A token the
    /// server no longer knows is answered 200 (revoked as far as anyone is concerned); a
    /// refusal is an error, which disconnecting reports and goes on past.
    pub async fn revoke(
        &self,
        http: &reqwest::Client,
        client: &OAuthClient,
        token: &str,
    ) -> Result<(), NetworkError> {
        let Some(url) = &self.revoke else {
            return Ok(());
        };
        let form = vec![("token", token.to_owned())];
        let resp = self
            .authenticated(http.post(url.clone()), client, form)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        // RFC 7009 §2.2: an invalid or already revoked token is answered 200 too; a 400 is a
        // request the server refused (another client's token), so nothing was revoked.
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self.error_of(resp).await)
    }

    fn authenticated(
        &self,
        req: reqwest::RequestBuilder,
        client: &OAuthClient,
        mut form: Vec<(&'static str, String)>,
    ) -> reqwest::RequestBuilder {
        let req = match (self.client_auth, &client.client_secret) {
            (ClientAuth::Basic, Some(secret)) => {
                use base64::Engine as _;
                // RFC 6749 §2.3.1: both parts form-urlencoded before they are joined.
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let pair = format!("{}:{}", enc(&client.client_id), enc(secret));
                req.header(
                    reqwest::header::AUTHORIZATION,
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    ),
                )
            }
            (ClientAuth::Body, Some(secret)) => {
                form.push(("client_secret", secret.clone()));
                req
            }
            (_, None) => req,
        };
        // A public client (no secret) names itself in the body in any case.
        if self.client_auth == ClientAuth::Body || client.client_secret.is_none() {
            form.push((self.client_id_param, client.client_id.clone()));
        }
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &form {
            body.append_pair(k, v);
        }
        req.header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body.finish())
    }

    async fn token_call(
        &self,
        http: &reqwest::Client,
        client: &OAuthClient,
        form: Vec<(&'static str, String)>,
    ) -> Result<Tokens, NetworkError> {
        let resp = self
            .authenticated(http.post(self.token.clone()), client, form)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        if !resp.status().is_success() {
            return Err(self.error_of(resp).await);
        }
        let bytes = read_capped(resp, MAX_BODY)
            .await
            .map_err(|e| self.transport(e))?;
        let tokens: Tokens = serde_json::from_slice(&bytes).map_err(|e| {
            NetworkError::unavailable(format!(
                "{}: the token endpoint's answer is not a token response: {e}",
                self.network
            ))
        })?;
        if tokens.access_token.is_empty() {
            return Err(NetworkError::unavailable(format!(
                "{}: the token endpoint answered without an access token",
                self.network
            )));
        }
        Ok(tokens)
    }

    fn transport(&self, e: reqwest::Error) -> NetworkError {
        if e.is_timeout() {
            NetworkError::Timeout
        } else {
            let e = e.without_url();
            NetworkError::unavailable(format!(
                "{}: the authorization server could not be reached: {e}",
                self.network
            ))
        }
    }

    /// RFC 6749 §5.2: `invalid_grant`, `invalid_client` and `unauthorized_client` mean the
    /// grant or the client is refused (an account to connect again); `429` is a rate limit;
    /// other `4xx` a refusal; `5xx` the server's failure.
    async fn error_of(&self, resp: reqwest::Response) -> NetworkError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(24 * 3600)));
        let body = read_capped(resp, MAX_BODY).await.unwrap_or_default();
        #[derive(serde::Deserialize, Default)]
        struct OAuthError {
            #[serde(default)]
            error: Option<serde_json::Value>,
            #[serde(default)]
            error_description: Option<String>,
        }
        let parsed: OAuthError = serde_json::from_slice(&body).unwrap_or_default();
        let code = match &parsed.error {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let detail: String = parsed
            .error_description
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        let message = format!("{}: token endpoint {status} {code} {detail}", self.network)
            .trim_end()
            .to_owned();
        match (status, code.as_str()) {
            (429, _) => NetworkError::RateLimited { retry_after },
            (_, "invalid_grant" | "invalid_client" | "unauthorized_client") | (401, _) => {
                NetworkError::Unauthorized { message }
            }
            (400..=499, _) => NetworkError::Rejected { message },
            _ => NetworkError::Unavailable {
                message,
                retry_after,
            },
        }
    }
}

/// A response's body, at most `max` bytes (checked on the declared length, then while
/// reading).
pub async fn read_capped(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Ok(out);
    }
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > max {
            return Ok(Vec::new());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth() -> OAuth2 {
        OAuth2 {
            network: "net",
            authorize: "https://net.example/oauth/authorize?x=1".parse().unwrap(),
            token: "https://api.net.example/oauth/token".parse().unwrap(),
            revoke: None,
            scopes: vec!["read".into(), "write".into()],
            scope_separator: " ",
            client_auth: ClientAuth::Basic,
            client_id_param: "client_id",
            extra_authorize: vec![("access_type", "offline")],
        }
    }

    #[test]
    fn the_authorization_url_carries_the_client_the_state_and_the_challenge() {
        let client = OAuthClient {
            client_id: "cid".into(),
            client_secret: Some("s".into()),
        };
        let url = oauth().authorize_url(&Authorize {
            client: &client,
            instance: None,
            redirect_uri: "https://app.example/cb?a=b",
            state: "st&ate",
            code_challenge: Some("ch"),
        });
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("x"), Some("1"), "the endpoint's own query stays");
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("client_id"), Some("cid"));
        assert_eq!(get("redirect_uri"), Some("https://app.example/cb?a=b"));
        assert_eq!(get("state"), Some("st&ate"));
        assert_eq!(get("scope"), Some("read write"));
        assert_eq!(get("code_challenge"), Some("ch"));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("access_type"), Some("offline"));
    }

    #[test]
    fn tokens_become_credentials_and_keep_an_unrotated_refresh_token() {
        let t: Tokens = serde_json::from_str(
            r#"{"access_token":"a","expires_in":"7200","token_type":"bearer","open_id":"u1"}"#,
        )
        .unwrap();
        assert_eq!(t.extra["open_id"], "u1");
        let c = t.credentials(1_000, Some("old-refresh"));
        assert_eq!(c.access_token, "a");
        assert_eq!(c.refresh_token.as_deref(), Some("old-refresh"));
        assert_eq!(c.expires_at, Some(1_000 + 7_200_000));
    }
}
