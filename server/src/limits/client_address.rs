//! Who a request comes from: the peer's address, or, when the peer is a trusted
//! proxy (`--trusted-proxies`), the client it forwards for (`X-Forwarded-For`, else
//! `Forwarded`). Pure, unit-tested; headers from untrusted peers are ignored, since
//! anyone can write them.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The address to hold a request to account for.
pub(crate) fn client_address(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer.ip());
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // The chain as the proxies appended to it, nearest last: the first address from
    // the right that is not one of our proxies is the client. Left of it, anything
    // may be forged.
    let chain = forwarded_for(headers);
    chain
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(chain.first())
        .copied()
        .unwrap_or(peer)
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses `X-Forwarded-For` lists (all of its headers, in order), or else
/// the `for=` of `Forwarded`; entries that are not addresses are skipped.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let from_xff: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|entry| parse_node(entry.trim()))
        .collect();
    if !from_xff.is_empty() {
        return from_xff;
    }
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("for")
                .then(|| parse_node(value.trim().trim_matches('"')))
                .flatten()
        })
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`; not `unknown` or
/// obfuscated identifiers.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    let bracketed = text.strip_prefix('[')?.split(']').next()?;
    bracketed.parse().ok().map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn from(peer: &str, pairs: &[(&str, &str)], trusted: &[&str]) -> String {
        let trusted: Vec<IpNet> = trusted.iter().map(|net| net.parse().unwrap()).collect();
        client_address(peer.parse().unwrap(), &headers(pairs), &trusted).to_string()
    }

    #[test]
    fn untrusted_peers_are_themselves_whatever_they_claim() {
        let claim = [("x-forwarded-for", "6.6.6.6")];
        assert_eq!(from("1.2.3.4:5000", &claim, &[]), "1.2.3.4");
        assert_eq!(from("1.2.3.4:5000", &claim, &["10.0.0.0/8"]), "1.2.3.4");
        assert_eq!(from("[::ffff:1.2.3.4]:5000", &[], &[]), "1.2.3.4");
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let trusted = ["10.0.0.0/8", "fd00::/8"];
        // A client forging a first hop: the proxy appended the real one.
        let chain = [("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")];
        assert_eq!(from("10.0.0.1:443", &chain, &trusted), "203.0.113.7");
        // Several headers count as one list.
        let split = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.8"),
        ];
        assert_eq!(from("10.0.0.1:443", &split, &trusted), "203.0.113.8");
        // Only proxies in the chain: the first is as far as we can see.
        let internal = [("x-forwarded-for", "10.1.1.1, 10.0.0.2")];
        assert_eq!(from("10.0.0.1:443", &internal, &trusted), "10.1.1.1");
        // No header: the proxy itself.
        assert_eq!(from("10.0.0.1:443", &[], &trusted), "10.0.0.1");
        // Garbage entries are skipped.
        let garbage = [("x-forwarded-for", "unknown, 203.0.113.9, not-an-ip")];
        assert_eq!(from("10.0.0.1:443", &garbage, &trusted), "203.0.113.9");
    }

    #[test]
    fn the_forwarded_header_is_read_when_there_is_no_x_forwarded_for() {
        let trusted = ["10.0.0.0/8"];
        let forwarded = [(
            "forwarded",
            r#"for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711""#,
        )];
        assert_eq!(
            from("10.0.0.1:443", &forwarded, &trusted),
            "2001:db8:cafe::17"
        );
        let obfuscated = [("forwarded", "for=_hidden, for=192.0.2.61:8080")];
        assert_eq!(from("10.0.0.1:443", &obfuscated, &trusted), "192.0.2.61");
    }
}
