//! Where a request or connection came from, as far as Parley can tell: the
//! TCP peer, or the client a trusted proxy forwarded. Per-client limits count
//! by [`ClientAddress::key`], so one IPv6 host cannot pass for 2^64 clients.
//!
//! Knows nothing of sockets or headers: the inbound adapters decide the address.

use std::net::{IpAddr, Ipv6Addr};

/// A client's network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    pub fn new(ip: IpAddr) -> Self {
        // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        Self(ip.to_canonical())
    }

    pub fn ip(self) -> IpAddr {
        self.0
    }

    /// The unit per-client limits count in: an IPv4 address, or an IPv6 /64
    /// (what one subscriber is usually given, so every address in it is theirs).
    pub fn key(self) -> IpAddr {
        match self.0 {
            IpAddr::V4(_) => self.0,
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !0u128 << 64)),
        }
    }
}

impl std::fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let a = ClientAddress::new("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientAddress::new("2001:db8:1:2:bbbb::9".parse().unwrap());
        let other = ClientAddress::new("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), other.key());
        assert_eq!(a.key(), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let mapped = ClientAddress::new("::ffff:127.0.0.2".parse().unwrap());
        assert_eq!(mapped.key(), "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(mapped.to_string(), "127.0.0.2");
    }
}
