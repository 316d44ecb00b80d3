//! The outbound HTTP client for webhooks, feeds and calls to servers a user names (a Mastodon
//! instance, a PDS, a link card's page), with the SSRF guard: only `http` and
//! `https`; host names are resolved when the request is made (so DNS rebinding does not get
//! through) and private, loopback, link-local, CGNAT, multicast and cloud-metadata addresses
//! are refused, unless the operator allows private networks (self-hosted setups, tests on one
//! machine); redirects are not followed; proxies from the environment are not used. Even with
//! private networks allowed, link-local and cloud-metadata addresses ([`METADATA`]) stay
//! refused: what a LAN receiver or a local Mastodon needs is a private address, never the
//! cloud's instance credentials, which any user who can name a URL could otherwise read back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Blocks from the IANA special-purpose address registries (IPv4 and IPv6, checked against
/// both in November 2026) that are not globally reachable, plus deprecated ones that carry an
/// address of another kind. Globally reachable special-purpose blocks (AS112, AMT, the PCP and
/// TURN anycasts) are left public, except inside `2001::/23`, which is blocked whole (Teredo
/// there embeds a client's address, and no webhook receiver lives in it); NAT64 `64:ff9b::/96` and 6to4
/// `2002::/16` are judged by the IPv4 address they embed (see [`is_public`]), IPv4-mapped
/// `::ffff:0:0/96` as that IPv4 address.
const BLOCKED: &[&str] = &[
    // IPv4
    "0.0.0.0/8",       // "this network"
    "10.0.0.0/8",      // private
    "100.64.0.0/10",   // shared address space (CGNAT; also Alibaba's metadata 100.100.100.200)
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local (cloud metadata at 169.254.169.254)
    "172.16.0.0/12",   // private
    "192.0.0.0/24",    // IETF protocol assignments (DS-Lite, NAT64 discovery, ...)
    "192.0.2.0/24",    // TEST-NET-1
    "192.88.99.0/24",  // 6to4 relay anycast (deprecated, RFC 7526)
    "192.168.0.0/16",  // private
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // TEST-NET-2
    "203.0.113.0/24",  // TEST-NET-3
    "224.0.0.0/3",     // multicast 224/4, reserved 240/4, broadcast
    // IPv6
    "::/96",           // unspecified, loopback and IPv4-compatible (deprecated)
    "::ffff:0:0:0/96", // IPv4-translated (SIIT)
    "64:ff9b:1::/48",  // local-use IPv4/IPv6 translation
    "100::/64",        // discard-only
    "100:0:0:1::/64",  // dummy prefix
    "2001::/23",       // IETF protocol assignments: Teredo, benchmarking, ORCHID, ...
    "2001:db8::/32",   // documentation
    "3fff::/20",       // documentation
    "5f00::/16",       // segment routing (SRv6) SIDs
    "fc00::/7",        // unique local (AWS metadata at fd00:ec2::254)
    "fe80::/10",       // link-local
    "fec0::/10",       // site-local (deprecated)
    "ff00::/8",        // multicast
];

/// Blocks refused even when private networks are allowed: link-local (the metadata services
/// of AWS, GCP, Azure, DigitalOcean, Hetzner and Oracle at 169.254.169.254), AWS's IPv6
/// metadata address and Alibaba's.
pub const METADATA: &[&str] = &[
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
];

fn metadata() -> &'static [IpNet] {
    static NETS: std::sync::OnceLock<Vec<IpNet>> = std::sync::OnceLock::new();
    NETS.get_or_init(|| {
        METADATA
            .iter()
            .map(|b| b.parse().expect("valid block"))
            .collect()
    })
}

/// Whether `ip` may be called: a public address, or with `allow_private` any but link-local
/// and cloud metadata ([`METADATA`]).
pub fn may_call(ip: IpAddr, allow_private: bool) -> bool {
    if !allow_private {
        return is_public(ip);
    }
    let ip = crier_core::net::canonical(ip);
    if let IpAddr::V6(v6) = ip
        && let Some(v4) = embedded_v4(v6)
    {
        return may_call(IpAddr::V4(v4), true);
    }
    !metadata().iter().any(|b| b.contains(&ip))
}

fn blocked() -> &'static [IpNet] {
    static NETS: std::sync::OnceLock<Vec<IpNet>> = std::sync::OnceLock::new();
    NETS.get_or_init(|| {
        BLOCKED
            .iter()
            .map(|b| b.parse().expect("valid block"))
            .collect()
    })
}

/// The IPv4 address an IPv6 address carries by a translation prefix that reaches it: NAT64
/// `64:ff9b::/96` (RFC 6052, the last 32 bits) and 6to4 `2002::/16` (RFC 3056, bits 16..48).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    let ip = crier_core::net::canonical(ip);
    if let IpAddr::V6(v6) = ip
        && let Some(v4) = embedded_v4(v6)
    {
        return is_public(IpAddr::V4(v4));
    }
    !blocked().iter().any(|b| b.contains(&ip))
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

/// The longest URL [`check_url`] takes, in characters (as the OpenAPI description's
/// `maxLength` counts, not bytes).
pub const MAX_URL_CHARS: usize = 2048;

/// Checks a URL's shape (at most [`MAX_URL_CHARS`] characters as given) and, for an IP
/// literal, its address (names are checked when resolved).
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, UrlError> {
    checked(url, allow_private, Some(MAX_URL_CHARS))
}

/// [`check_url`] for a URL that passed it and was stored as the parser writes it, before
/// crier calls it: the same checks but the length, which bounded the text as it was given.
/// Written out, a URL can be several times longer (a non-ASCII character is percent-encoded
/// to up to 12, a host becomes punycode), and nothing downstream needs a bound on that form.
pub fn check_stored_url(url: &str, allow_private: bool) -> Result<reqwest::Url, UrlError> {
    checked(url, allow_private, None)
}

fn checked(
    url: &str,
    allow_private: bool,
    max_chars: Option<usize>,
) -> Result<reqwest::Url, UrlError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| UrlError::Invalid)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    let too_long = max_chars.is_some_and(|max| url.chars().count() > max);
    if too_long || !parsed.username().is_empty() || parsed.password().is_some() {
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
        && !may_call(ip, allow_private)
    {
        return Err(UrlError::Private);
    }
    Ok(parsed)
}

/// Resolves names like the system does, then drops every address that may not be called
/// ([`may_call`]).
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map(|found| found.filter(|a| may_call(a.ip(), allow_private)).collect())
                .unwrap_or_default();
            if addrs.is_empty() {
                // The same words whether the name does not exist or resolves only to refused
                // addresses: which internal names exist is not for users to learn.
                return Err(format!(
                    "{host} resolves to no address crier may call (private networks are \
                     refused unless the operator allows them)"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The client webhooks, feeds and connectors use. With the guard on it ignores `HTTP_PROXY`,
/// `HTTPS_PROXY` and `ALL_PROXY`: through a proxy the proxy resolves host names, so the guard
/// would never see them. With private networks allowed (the guard off) the environment's
/// proxies apply, so an operator (or the API fuzzer, which must not reach the internet) can
/// route every outbound call through one.
pub fn client(timeout: Duration, allow_private: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("crier/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(32);
    if allow_private {
        // Through a proxy, the proxy resolves names; without one, link-local and metadata
        // addresses are still dropped.
        builder = builder.dns_resolver(Arc::new(GuardedResolver {
            allow_private: true,
        }));
    } else {
        builder = builder.no_proxy().dns_resolver(Arc::new(GuardedResolver {
            allow_private: false,
        }));
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
            "http://[::1]:8080/",
            "http://127.0.0.1/",
            "http://192.168.1.1/",
            "http://[::ffff:10.0.0.1]/",
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
        // Link-local and cloud metadata stay refused with private networks allowed, in every
        // form an address takes.
        for url in [
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "http://169.254.0.1/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/latest/meta-data",
            "http://100.100.100.200/latest/meta-data",
            "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::]/",
        ] {
            for allow in [false, true] {
                assert_eq!(
                    check_url(url, allow).unwrap_err(),
                    UrlError::Private,
                    "{url} with private networks allowed: {allow}"
                );
            }
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

    /// The bound is on characters, as the OpenAPI description's `maxLength` counts: 2048 `é`
    /// are 4096 bytes and pass; written out, percent-encoded, they are 12,288 characters,
    /// which a check before a call to a stored URL still passes.
    #[test]
    fn the_length_is_counted_in_characters() {
        let base = "https://hooks.example.com/";
        for n in [700, MAX_URL_CHARS - base.len()] {
            let url = format!("{base}{}", "é".repeat(n));
            assert!(url.len() > url.chars().count());
            let parsed = check_url(&url, false).unwrap_or_else(|e| panic!("{n} é: {e}"));
            assert_eq!(parsed.as_str().len(), base.len() + 6 * n);
            assert!(
                check_stored_url(parsed.as_str(), false).is_ok(),
                "{n} é, stored"
            );
        }
        let over = format!("{base}{}", "é".repeat(MAX_URL_CHARS - base.len() + 1));
        assert_eq!(check_url(&over, false).unwrap_err(), UrlError::Invalid);
        let over = format!("{base}{}", "a".repeat(MAX_URL_CHARS - base.len() + 1));
        assert_eq!(check_url(&over, false).unwrap_err(), UrlError::Invalid);
        // Everything but the length holds for a stored URL too.
        assert_eq!(
            check_stored_url("http://10.0.0.1/hook", false).unwrap_err(),
            UrlError::Private
        );
        assert_eq!(
            check_stored_url("ftp://example.com/", false).unwrap_err(),
            UrlError::Scheme
        );
        assert_eq!(
            check_stored_url("https://user:pw@example.com/", false).unwrap_err(),
            UrlError::Invalid
        );
    }

    /// Every special-purpose block of the IANA registries that is not globally reachable (and
    /// the deprecated ones that embed other addresses): an address at its start, one inside
    /// and one at its end is refused, and so is an IPv4 address carried in IPv6.
    #[test]
    fn every_special_purpose_range_is_refused() {
        let blocked: &[(&str, &[&str])] = &[
            (
                "0.0.0.0/8 this network",
                &["0.0.0.0", "0.1.2.3", "0.255.255.255"],
            ),
            (
                "10.0.0.0/8 private",
                &["10.0.0.0", "10.1.2.3", "10.255.255.255"],
            ),
            (
                "100.64.0.0/10 CGNAT",
                &["100.64.0.0", "100.100.100.200", "100.127.255.255"],
            ),
            (
                "127.0.0.0/8 loopback",
                &["127.0.0.0", "127.0.0.1", "127.255.255.255"],
            ),
            (
                "169.254.0.0/16 link-local",
                &["169.254.0.0", "169.254.169.254", "169.254.255.255"],
            ),
            (
                "172.16.0.0/12 private",
                &["172.16.0.0", "172.20.1.1", "172.31.255.255"],
            ),
            (
                "192.0.0.0/24 IETF protocol assignments",
                &["192.0.0.0", "192.0.0.170", "192.0.0.255"],
            ),
            (
                "192.0.2.0/24 TEST-NET-1",
                &["192.0.2.0", "192.0.2.1", "192.0.2.255"],
            ),
            (
                "192.88.99.0/24 6to4 relay anycast",
                &["192.88.99.0", "192.88.99.1", "192.88.99.255"],
            ),
            (
                "192.168.0.0/16 private",
                &["192.168.0.0", "192.168.1.1", "192.168.255.255"],
            ),
            (
                "198.18.0.0/15 benchmarking",
                &["198.18.0.0", "198.19.1.1", "198.19.255.255"],
            ),
            (
                "198.51.100.0/24 TEST-NET-2",
                &["198.51.100.0", "198.51.100.7", "198.51.100.255"],
            ),
            (
                "203.0.113.0/24 TEST-NET-3",
                &["203.0.113.0", "203.0.113.9", "203.0.113.255"],
            ),
            (
                "224.0.0.0/4 multicast",
                &["224.0.0.0", "232.1.2.3", "239.255.255.255"],
            ),
            (
                "240.0.0.0/4 reserved, broadcast",
                &["240.0.0.0", "250.1.2.3", "255.255.255.255"],
            ),
            ("::/128 unspecified", &["::"]),
            ("::1/128 loopback", &["::1"]),
            (
                "::/96 IPv4-compatible",
                &["::2", "::10.0.0.1", "::8.8.8.8", "::ffff:ffff"],
            ),
            (
                "::ffff:0:0/96 IPv4-mapped",
                &[
                    "::ffff:10.0.0.1",
                    "::ffff:127.0.0.1",
                    "::ffff:169.254.169.254",
                ],
            ),
            (
                "::ffff:0:0:0/96 IPv4-translated",
                &["::ffff:0:0:0", "::ffff:0:8.8.8.8", "::ffff:0:ffff:ffff"],
            ),
            (
                "64:ff9b::/96 NAT64 of a private IPv4",
                &[
                    "64:ff9b::10.0.0.1",
                    "64:ff9b::127.0.0.1",
                    "64:ff9b::169.254.169.254",
                    "64:ff9b::",
                ],
            ),
            (
                "64:ff9b:1::/48 local-use NAT64",
                &[
                    "64:ff9b:1::",
                    "64:ff9b:1::8.8.8.8",
                    "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
                ],
            ),
            (
                "100::/64 discard-only",
                &["100::", "100::1", "100::ffff:ffff:ffff:ffff"],
            ),
            (
                "100:0:0:1::/64 dummy prefix",
                &[
                    "100:0:0:1::",
                    "100:0:0:1::1",
                    "100:0:0:1:ffff:ffff:ffff:ffff",
                ],
            ),
            (
                "2001::/23 IETF protocol assignments (Teredo, benchmarking, ORCHID)",
                &[
                    "2001::",
                    "2001:0:4136:e378::1",
                    "2001:2::1",
                    "2001:10::1",
                    "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
                ],
            ),
            (
                "2001:db8::/32 documentation",
                &[
                    "2001:db8::",
                    "2001:db8::1",
                    "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
                ],
            ),
            (
                "2002::/16 6to4 of a private IPv4",
                &[
                    "2002:a00:1::1",
                    "2002:7f00:1::",
                    "2002:a9fe:a9fe::1",
                    "2002::",
                ],
            ),
            (
                "3fff::/20 documentation",
                &[
                    "3fff::",
                    "3fff:1::1",
                    "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
                ],
            ),
            (
                "5f00::/16 SRv6 SIDs",
                &[
                    "5f00::",
                    "5f00:1::1",
                    "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                ],
            ),
            (
                "fc00::/7 unique local",
                &[
                    "fc00::",
                    "fd00:ec2::254",
                    "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                ],
            ),
            (
                "fe80::/10 link-local",
                &[
                    "fe80::",
                    "fe80::1",
                    "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                ],
            ),
            (
                "fec0::/10 site-local",
                &[
                    "fec0::",
                    "fec0::1",
                    "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                ],
            ),
            (
                "ff00::/8 multicast",
                &[
                    "ff00::",
                    "ff02::1",
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                ],
            ),
        ];
        for (range, addrs) in blocked {
            for a in *addrs {
                let ip: IpAddr = a.parse().unwrap_or_else(|_| panic!("{a}"));
                assert!(!is_public(ip), "{a} ({range}) must be refused");
                let url = match ip {
                    IpAddr::V4(_) => format!("http://{a}/"),
                    IpAddr::V6(_) => format!("http://[{a}]/"),
                };
                assert_eq!(check_url(&url, false), Err(UrlError::Private), "{url}");
            }
        }
        // Public addresses, including ones next to the blocks and public IPv4 carried by
        // NAT64 and 6to4, are fine.
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.88.98.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "64:ff9b::8.8.8.8",
            "64:ff9b::5db8:d822",
            "2002:808:808::1",
            "2001:200::1",
            "2001:db9::1",
            "3fff:1000::1",
            "2003::1",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            assert!(is_public(ip), "{a} is public");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_at_request_time() {
        // The client alone (no `check_url` first): the name goes through the resolver, which
        // finds only 127.0.0.1 / ::1 and refuses.
        let client = client(Duration::from_secs(2), false);
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        let refused = format!("{err:?}");
        assert!(refused.contains("no address crier may call"), "{err:?}");
    }
}

/// Why a body could not be read whole.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the cap (declared or read): reading stopped there.
    TooLarge,
    /// The connection failed while reading; the innermost cause (see [`describe`]).
    Read(String),
}

/// A response's body, refused as soon as it is known to exceed `cap` bytes (a declared
/// `Content-Length` is not trusted to be small; the bytes read are counted).
pub async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Read(describe(&e)))?
    {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The innermost cause of a client error (`connection refused`, the SSRF guard's refusal),
/// fit to show the user whose URL it was.
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "the server did not answer in time".into();
    }
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg = s.to_string();
        source = s.source();
    }
    msg
}
