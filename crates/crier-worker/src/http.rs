//! The outbound HTTP client for webhooks and feeds, with the SSRF guard: only `http` and
//! `https`; host names are resolved when the request is made (so DNS rebinding does not get
//! through) and private, loopback, link-local, CGNAT, multicast and cloud-metadata addresses
//! are refused, unless the operator allows private networks (self-hosted setups, tests on one
//! machine); redirects are not followed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    let ip = crier_core::net::canonical(ip);
    const BLOCKED: &[&str] = &[
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/3",
        "::/128",
        "::1/128",
        "64:ff9b::/96",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    ];
    !BLOCKED
        .iter()
        .any(|b| b.parse::<IpNet>().expect("valid block").contains(&ip))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("only http and https URLs are accepted")]
    Scheme,
    #[error("the URL is not valid")]
    Invalid,
    #[error("the URL points to a private, loopback or link-local address")]
    Private,
}

/// Checks a URL's shape and, for an IP literal, its address (names are checked when resolved).
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, UrlError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| UrlError::Invalid)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    if url.len() > 2048 || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlError::Invalid);
    }
    let host = parsed.host().ok_or(UrlError::Invalid)?;
    let ip = match host {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(d) => {
            if !allow_private && (d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost"))
            {
                return Err(UrlError::Private);
            }
            None
        }
    };
    if let Some(ip) = ip
        && !allow_private
        && !is_public(ip)
    {
        return Err(UrlError::Private);
    }
    Ok(parsed)
}

/// Resolves names like the system does, then drops every non-public address.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (private networks are not allowed)"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The client webhooks and feeds use.
pub fn client(timeout: Duration, allow_private: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("crier/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(32);
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(GuardedResolver));
    }
    builder.build().expect("an HTTP client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_refused() {
        for url in [
            "http://10.0.0.1/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/",
            "http://127.0.0.1/",
            "http://192.168.1.1/",
            "http://[::ffff:10.0.0.1]/",
            "http://[fe80::1]/",
            "http://localhost:3000/",
            "http://100.64.1.1/",
        ] {
            assert_eq!(
                check_url(url, false).unwrap_err(),
                UrlError::Private,
                "{url}"
            );
            assert!(
                check_url(url, true).is_ok(),
                "{url} allowed when private networks are"
            );
        }
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert!(check_url("http://93.184.216.34/", false).is_ok());
        assert_eq!(
            check_url("ftp://example.com/", false).unwrap_err(),
            UrlError::Scheme
        );
        assert_eq!(
            check_url("file:///etc/passwd", false).unwrap_err(),
            UrlError::Scheme
        );
        assert_eq!(
            check_url("not a url", false).unwrap_err(),
            UrlError::Invalid
        );
        assert_eq!(
            check_url("https://user:pw@example.com/", false).unwrap_err(),
            UrlError::Invalid
        );
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_at_request_time() {
        // The client alone (no `check_url` first): the name goes through the resolver, which
        // finds only 127.0.0.1 / ::1 and refuses.
        let client = client(Duration::from_secs(2), false);
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        assert!(format!("{err:?}").contains("no public address"), "{err:?}");
    }
}
