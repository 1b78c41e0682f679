//! Who a request came from: the TCP peer, or — only when the peer is a
//! trusted proxy — the client it forwarded, read from `X-Forwarded-For` or
//! RFC 7239 `Forwarded`.
//!
//! Knows nothing of limits: it only names the client that limits count.
//!
//! Each proxy appends the address it received from, so the header reads
//! left to right from the client to the last proxy, and only its right end is
//! written by someone we trust. We walk it from the right past our own
//! proxies and take the first address that is not one of them; anything left
//! of that was written by the client and may be forged.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use hyper::HeaderMap;
use hyper::header::{FORWARDED, HeaderName};
use ipnet::IpNet;
use parley_ports::domain::ClientAddress;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// One entry of `PARLEY_TRUSTED_PROXIES`: a CIDR block (`10.0.0.0/8`,
/// `fd00::/8`) or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRange(IpNet);

impl FromStr for ProxyRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self(IpNet::from(ip.to_canonical())));
        }
        text.parse::<IpNet>()
            .map(|net| Self(net.trunc()))
            .map_err(|_| format!("{text:?} is neither an IP address nor a CIDR block like 10.0.0.0/8 or fd00::/8"))
    }
}

impl std::fmt::Display for ProxyRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub(crate) fn new(ranges: &[ProxyRange]) -> Self {
        Self(ranges.iter().map(|range| range.0).collect())
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`: `peer` itself unless it is a trusted proxy.
    ///
    /// `X-Forwarded-For` is read when present, else `Forwarded`: a proxy that
    /// writes only `Forwarded` must drop an `X-Forwarded-For` its client sent.
    /// Reading stops at the first entry that is not an address (`unknown`, an
    /// obfuscated name, garbage): nothing left of it can be placed, so the
    /// client is the last trusted hop reached.
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddress {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return ClientAddress::new(peer);
        }
        if headers.contains_key(&X_FORWARDED_FOR) {
            self.walk(peer, entries(headers, &X_FORWARDED_FOR).map(node))
        } else {
            self.walk(peer, entries(headers, &FORWARDED).map(forwarded_for))
        }
    }

    /// Follows `hops` (rightmost first) from `peer` past trusted proxies.
    fn walk(&self, peer: IpAddr, hops: impl Iterator<Item = Option<IpAddr>>) -> ClientAddress {
        let mut client = peer;
        for hop in hops {
            match hop {
                Some(ip) if self.contains(ip) => client = ip,
                Some(ip) => return ClientAddress::new(ip),
                None => break,
            }
        }
        ClientAddress::new(client)
    }
}

/// A header's comma-separated entries across all its lines, rightmost first.
/// A line that is not text is one unreadable entry.
fn entries<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers.get_all(name).iter().rev().flat_map(|line| line.to_str().unwrap_or("\u{0}").rsplit(',').map(str::trim))
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.1;proto=http`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case("for").then_some(value.trim())
    })?;
    let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    node(value)
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`, or with a
/// port, `192.0.2.1:4711` and `[2001:db8::1]:4711` (brackets alone too).
fn node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    let bracketed = text.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<std::net::Ipv6Addr>().ok().map(|ip| IpAddr::V6(ip).to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(&list.iter().map(|s| s.parse().unwrap()).collect::<Vec<ProxyRange>>())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn client(trusted: &[&str], peer: &str, pairs: &[(&'static str, &str)]) -> String {
        proxies(trusted).client(peer.parse().unwrap(), &headers(pairs)).to_string()
    }

    #[test]
    fn an_untrusted_peers_headers_are_ignored() {
        assert_eq!(client(&[], "198.51.100.7", &[("x-forwarded-for", "203.0.113.1")]), "198.51.100.7");
        let forged = [("forwarded", "for=203.0.113.1")];
        assert_eq!(client(&["10.0.0.0/8"], "198.51.100.7", &forged), "198.51.100.7");
    }

    #[test]
    fn the_rightmost_address_that_is_not_a_trusted_proxy_is_the_client() {
        let chain = [("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2")];
        assert_eq!(client(&["10.0.0.0/8"], "10.0.0.1", &chain), "203.0.113.9", "1.1.1.1 may be forged");
        let lines = [("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "203.0.113.9,10.0.0.2")];
        assert_eq!(client(&["10.0.0.0/8"], "10.0.0.1", &lines), "203.0.113.9", "later lines are further right");
        let all_trusted = [("x-forwarded-for", "10.0.0.3, 10.0.0.2")];
        assert_eq!(client(&["10.0.0.0/8"], "10.0.0.1", &all_trusted), "10.0.0.3");
        assert_eq!(client(&["10.0.0.1"], "10.0.0.1", &[]), "10.0.0.1", "no header: the proxy itself");
    }

    #[test]
    fn forwarded_nodes_may_carry_ports_brackets_quotes_and_other_parameters() {
        let trusted = ["10.0.0.0/8", "fd00::/8"];
        let v6 = [("forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https, For=10.0.0.2;by=10.0.0.9"#)];
        assert_eq!(client(&trusted, "fd00::1", &v6), "2001:db8:cafe::17");
        let v4 = [("forwarded", "proto=http;for=192.0.2.60:8080")];
        assert_eq!(client(&trusted, "10.0.0.1", &v4), "192.0.2.60");
        let bare = [("forwarded", r#"for="[2001:db8::1]""#)];
        assert_eq!(client(&trusted, "10.0.0.1", &bare), "2001:db8::1");
        let mapped = [("x-forwarded-for", "::ffff:192.0.2.1")];
        assert_eq!(client(&trusted, "::ffff:10.0.0.1", &mapped), "192.0.2.1", "IPv4 behind a dual-stack socket");
    }

    #[test]
    fn reading_stops_at_an_entry_that_is_not_an_address() {
        let trusted = ["10.0.0.0/8"];
        for garbage in ["203.0.113.1, unknown", "203.0.113.1, , 10.0.0.2", "203.0.113.1, 999.1.1.1", "[::1"] {
            let found = client(&trusted, "10.0.0.1", &[("x-forwarded-for", garbage)]);
            assert!(found.starts_with("10.0.0."), "{garbage:?} gave {found}");
        }
        for garbage in ["for=_hidden, for=10.0.0.2", "for=203.0.113.1, proto=http", "for=\"[2001:db8::1\""] {
            let found = client(&trusted, "10.0.0.1", &[("forwarded", garbage)]);
            assert!(found.starts_with("10.0.0."), "{garbage:?} gave {found}");
        }
        let mut binary = HeaderMap::new();
        binary.insert(X_FORWARDED_FOR.clone(), HeaderValue::from_bytes(b"203.0.113.1\xff").unwrap());
        assert_eq!(proxies(&trusted).client("10.0.0.1".parse().unwrap(), &binary).to_string(), "10.0.0.1");
    }

    #[test]
    fn x_forwarded_for_wins_over_forwarded() {
        let both = [("forwarded", "for=198.51.100.1"), ("x-forwarded-for", "203.0.113.1")];
        assert_eq!(client(&["10.0.0.0/8"], "10.0.0.1", &both), "203.0.113.1");
    }

    #[test]
    fn proxy_ranges_are_cidr_blocks_or_single_addresses() {
        let trusted = proxies(&["10.1.0.0/16", "2001:db8::/32", "192.0.2.7", "::1"]);
        assert!(trusted.contains("10.1.255.3".parse().unwrap()));
        assert!(!trusted.contains("10.2.0.1".parse().unwrap()));
        assert!(trusted.contains("2001:db8:1::5".parse().unwrap()));
        assert!(trusted.contains("192.0.2.7".parse().unwrap()));
        assert!(trusted.contains("::ffff:192.0.2.7".parse().unwrap()));
        assert!(!trusted.contains("192.0.2.8".parse().unwrap()));
        assert!(trusted.contains("::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "example.com", "", "10.0.0.0/8/8"] {
            assert!(bad.parse::<ProxyRange>().is_err(), "{bad:?}");
        }
    }
}
