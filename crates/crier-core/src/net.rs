//! Network restrictions on a key: which client addresses and which browser origins may use
//! it, and how the client address is found behind trusted proxies.

use std::net::IpAddr;

use ipnet::IpNet;

/// An address or a CIDR block. A bare address is a /32 (or /128) network.
pub fn parse_ip_rule(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<IpAddr>()
        .ok()
        .map(|ip| IpNet::from(canonical(ip)))
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are the IPv4 address they carry: a dual-stack
/// listener reports IPv4 clients that way, and a v4 allowlist must still match them.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The block a client is counted by (its budgets, its connections): an IPv4 address whole
/// (also as IPv4-mapped IPv6), an IPv6 address by its /64 (one host or home is handed a whole
/// /64, so its addresses are one client's, not 2^64 of their own).
pub fn client_block(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from_bits(
            v6.to_bits() & !u128::from(u64::MAX),
        )),
        v4 => v4,
    }
}

/// Whether `ip` is allowed by `rules`; an empty list allows every address.
pub fn ip_allowed(rules: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    rules.is_empty() || rules.iter().any(|net| net.contains(&ip))
}

/// Whether every network of `child` lies inside some network of `parent`, i.e. `child` is
/// no wider. An empty list means "anywhere", so only an empty parent contains an empty child.
pub fn ip_rules_within(child: &[IpNet], parent: &[IpNet]) -> bool {
    if parent.is_empty() {
        return true;
    }
    !child.is_empty() && child.iter().all(|c| parent.iter().any(|p| p.contains(c)))
}

/// The client address: the socket peer, unless the peer is a trusted proxy, in which case
/// `X-Forwarded-For` is read from the right, skipping trusted hops. A malformed entry stops
/// the walk at the last address we could trust to have been written by a trusted hop.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in header.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !is_trusted(&client) {
                    return client;
                }
            }
            Err(_) => return client,
        }
    }
    client
}

/// An allowed browser origin: `https://app.example.com`, `http://localhost:3000`, or a
/// wildcard over subdomains `https://*.example.com`. Stored normalised (lowercase, no
/// trailing slash, no default port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginRule {
    scheme: String,
    /// Host without the `*.` of a wildcard.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl OriginRule {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().trim_end_matches('/').to_ascii_lowercase();
        let (scheme, rest) = s.split_once("://")?;
        if scheme != "http" && scheme != "https" {
            return None;
        }
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return None;
        }
        let (host, port) = if rest.starts_with('[') {
            let end = rest.find(']')?;
            let port = match &rest[end + 1..] {
                "" => None,
                after => Some(after.strip_prefix(':')?.parse::<u16>().ok()?),
            };
            (rest[..=end].to_owned(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p.parse::<u16>().ok()?)),
                None => (rest.to_owned(), None),
            }
        };
        let default_port = if scheme == "https" { 443 } else { 80 };
        let port = port.filter(|p| *p != default_port);
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(h) => (true, h.to_owned()),
            None => (false, host),
        };
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
        if !valid_host {
            return None;
        }
        Some(Self {
            scheme: scheme.to_owned(),
            host,
            wildcard,
            port,
        })
    }

    /// Whether a request's `Origin` header value is allowed by this rule.
    pub fn matches(&self, origin: &str) -> bool {
        match OriginRule::parse(origin) {
            Some(o) if !o.wildcard => self.covers(&o),
            _ => false,
        }
    }

    /// Whether everything `other` allows, this rule allows too.
    pub fn covers(&self, other: &OriginRule) -> bool {
        if self.scheme != other.scheme || self.port != other.port {
            return false;
        }
        if !self.wildcard {
            return !other.wildcard && self.host == other.host;
        }
        if other.wildcard && other.host == self.host {
            return true;
        }
        // `*.example.com` covers `a.example.com` and `*.a.example.com`, not `example.com`.
        other.host.len() > self.host.len()
            && other.host.ends_with(&self.host)
            && other.host.as_bytes()[other.host.len() - self.host.len() - 1] == b'.'
    }
}

impl std::fmt::Display for OriginRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// Whether a request with this `Origin` header (or none) may use a key with these rules.
/// Requests without `Origin` are server-side code and are not restricted.
pub fn origin_allowed(rules: &[OriginRule], origin: Option<&str>) -> bool {
    match origin {
        None => true,
        Some(_) if rules.is_empty() => true,
        Some(o) => rules.iter().any(|r| r.matches(o)),
    }
}

/// Whether `child` allows no origin that `parent` refuses.
pub fn origin_rules_within(child: &[OriginRule], parent: &[OriginRule]) -> bool {
    if parent.is_empty() {
        return true;
    }
    !child.is_empty() && child.iter().all(|c| parent.iter().any(|p| p.covers(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| parse_ip_rule(s).unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_cidr_matching() {
        let rules = nets(&["10.0.0.0/8", "192.168.1.7"]);
        assert!(ip_allowed(&rules, ip("10.200.3.4")));
        assert!(ip_allowed(&rules, ip("192.168.1.7")));
        assert!(!ip_allowed(&rules, ip("192.168.1.8")));
        assert!(!ip_allowed(&rules, ip("11.0.0.1")));
        // An IPv4 client seen through a dual-stack socket.
        assert!(ip_allowed(&rules, ip("::ffff:10.1.2.3")));
        assert!(ip_allowed(&[], ip("8.8.8.8")));
    }

    #[test]
    fn ipv6_cidr_matching() {
        let rules = nets(&["2001:db8::/32", "::1"]);
        assert!(ip_allowed(&rules, ip("2001:db8:ffff::1")));
        assert!(ip_allowed(&rules, ip("::1")));
        assert!(!ip_allowed(&rules, ip("2001:db9::1")));
        assert!(!ip_allowed(&rules, ip("10.0.0.1")));
    }

    #[test]
    fn ip_rule_parsing() {
        assert_eq!(
            parse_ip_rule("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_ip_rule(" 1.2.3.4 ").unwrap().to_string(),
            "1.2.3.4/32"
        );
        assert_eq!(
            parse_ip_rule("::ffff:1.2.3.4").unwrap().to_string(),
            "1.2.3.4/32"
        );
        for bad in [
            "",
            "1.2.3",
            "10.0.0.0/33",
            "example.com",
            "1.2.3.4/",
            "::/129",
        ] {
            assert!(parse_ip_rule(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn narrower_ip_rules_are_within() {
        let parent = nets(&["10.0.0.0/8"]);
        assert!(ip_rules_within(
            &nets(&["10.1.0.0/16", "10.2.3.4"]),
            &parent
        ));
        assert!(!ip_rules_within(&nets(&["10.0.0.0/7"]), &parent));
        assert!(
            !ip_rules_within(&[], &parent),
            "anywhere is wider than 10/8"
        );
        assert!(ip_rules_within(&[], &[]));
        assert!(ip_rules_within(&parent, &[]));
    }

    #[test]
    fn forwarded_for_is_read_from_the_right_past_trusted_hops() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        assert_eq!(
            client_ip(peer, Some("6.6.6.6, 1.2.3.4, 10.0.0.9"), &trusted),
            ip("1.2.3.4"),
            "the spoofable left part is ignored"
        );
        assert_eq!(client_ip(peer, None, &trusted), peer);
        assert_eq!(client_ip(peer, Some("10.0.0.5"), &trusted), ip("10.0.0.5"));
        assert_eq!(
            client_ip(peer, Some("junk, 10.0.0.7"), &trusted),
            ip("10.0.0.7")
        );
        // An untrusted peer's header is never read.
        assert_eq!(
            client_ip(ip("5.5.5.5"), Some("1.1.1.1"), &trusted),
            ip("5.5.5.5")
        );
        assert_eq!(
            client_ip(ip("5.5.5.5"), Some("1.1.1.1"), &[]),
            ip("5.5.5.5")
        );
    }

    #[test]
    fn origin_rules() {
        let rules: Vec<_> = [
            "https://app.example.com",
            "http://localhost:3000",
            "https://*.acme.io",
        ]
        .iter()
        .map(|s| OriginRule::parse(s).unwrap())
        .collect();
        assert!(origin_allowed(&rules, None));
        assert!(origin_allowed(&rules, Some("https://app.example.com")));
        assert!(origin_allowed(&rules, Some("https://APP.example.com:443")));
        assert!(origin_allowed(&rules, Some("http://localhost:3000")));
        assert!(origin_allowed(&rules, Some("https://x.acme.io")));
        assert!(origin_allowed(&rules, Some("https://a.b.acme.io")));
        assert!(!origin_allowed(&rules, Some("https://acme.io")));
        assert!(!origin_allowed(&rules, Some("https://evilacme.io")));
        assert!(!origin_allowed(&rules, Some("http://app.example.com")));
        assert!(!origin_allowed(&rules, Some("http://localhost:3001")));
        assert!(!origin_allowed(&rules, Some("null")));
        assert!(origin_allowed(&[], Some("https://anything.test")));
    }

    #[test]
    fn origin_rule_parsing_and_display() {
        assert_eq!(
            OriginRule::parse("HTTPS://App.Example.com/")
                .unwrap()
                .to_string(),
            "https://app.example.com"
        );
        assert_eq!(
            OriginRule::parse("http://localhost:80")
                .unwrap()
                .to_string(),
            "http://localhost"
        );
        assert_eq!(
            OriginRule::parse("http://[::1]:8080").unwrap().to_string(),
            "http://[::1]:8080"
        );
        assert!(OriginRule::parse("http://[::1]").is_some());
        for bad in [
            "",
            "example.com",
            "ftp://x.com",
            "https://x.com/path",
            "https://",
            "https://a b",
        ] {
            assert!(OriginRule::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn narrower_origin_rules_are_within() {
        let p = |s: &str| OriginRule::parse(s).unwrap();
        let parent = vec![p("https://*.acme.io")];
        assert!(origin_rules_within(&[p("https://a.acme.io")], &parent));
        assert!(origin_rules_within(&[p("https://*.a.acme.io")], &parent));
        assert!(
            origin_rules_within(&parent, &parent),
            "a wildcard covers itself"
        );
        assert!(!origin_rules_within(&[p("https://acme.io")], &parent));
        assert!(!origin_rules_within(&[], &parent));
        assert!(origin_rules_within(&[], &[]));
    }
}
