//! The SSRF guard: sink URLs must be `http`/`https` and must not point at loopback,
//! private, link-local, unique-local, CGNAT, multicast, unspecified or cloud-metadata
//! addresses (IPv4-mapped IPv6 included), unless the sink sets `allow_private = true`.
//!
//! The check runs twice: on the URL at config load ([`check_url`]), and at connect time in
//! [`GuardedResolver`], the DNS resolver of the HTTP client, so a name that later resolves
//! to a private address (DNS rebinding) is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// Why a URL or an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    /// Only `http` and `https` are allowed.
    #[error("scheme {0:?} is not allowed; use http or https")]
    Scheme(String),
    /// The URL has no host.
    #[error("the URL has no host")]
    NoHost,
    /// The address is in a refused range.
    #[error("{addr} is a {range} address; refused (set allow_private = true to allow it)")]
    Refused {
        /// The address.
        addr: IpAddr,
        /// Which range it is in.
        range: &'static str,
    },
    /// The name resolved to nothing usable.
    #[error("{0} resolved to no address")]
    NoAddress(String),
}

/// The refused range `ip` falls in, or `None` when it is a public address.
pub fn refused_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_v4(v4);
            }
            refused_v6(v6)
        }
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() || a == 0 {
        "unspecified"
    } else if ip.is_private() {
        "private"
    } else if ip == Ipv4Addr::new(169, 254, 169, 254) {
        "cloud metadata"
    } else if ip.is_link_local() {
        "link-local"
    } else if a == 100 && (64..128).contains(&b) {
        "CGNAT (shared)"
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        "multicast or reserved"
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        "IETF protocol assignment"
    } else {
        return None;
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if (seg[0] & 0xfe00) == 0xfc00 {
        // fd00:ec2::254 (AWS IMDS over IPv6) is in here too.
        "unique-local"
    } else if (seg[0] & 0xffc0) == 0xfe80 {
        "link-local"
    } else if ip.is_multicast() {
        "multicast or reserved"
    } else if seg[0] == 0 && seg[1] == 0 && seg[2] == 0 && seg[3] == 0 && seg[4] == 0 && seg[5] == 0
    {
        // IPv4-compatible (deprecated) ::a.b.c.d
        return refused_v4(Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        ))
        .or(Some("IPv4-compatible"));
    } else if seg[0] == 0x64 && seg[1] == 0xff9b {
        // NAT64 well-known prefix: check the embedded IPv4 address.
        return refused_v4(Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        ));
    } else {
        return None;
    })
}

/// Checks an address (`Ok` when allowed).
///
/// # Errors
/// [`SsrfError::Refused`] when `ip` is in a refused range and `allow_private` is false.
pub fn check_ip(ip: IpAddr, allow_private: bool) -> Result<(), SsrfError> {
    match refused_range(ip) {
        Some(range) if !allow_private => Err(SsrfError::Refused { addr: ip, range }),
        _ => Ok(()),
    }
}

/// Checks a sink URL without resolving it: the scheme, and the host when it is an IP
/// literal (names are checked when they are resolved, by [`GuardedResolver`]). `localhost`
/// names are refused outright.
///
/// # Errors
/// [`SsrfError`] when the URL is refused.
pub fn check_url(url: &Url, allow_private: bool) -> Result<(), SsrfError> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(SsrfError::Scheme(other.to_owned())),
    }
    match url.host() {
        None => Err(SsrfError::NoHost),
        Some(Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip), allow_private),
        Some(Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip), allow_private),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !allow_private && (name == "localhost" || name.ends_with(".localhost")) {
                Err(SsrfError::Refused {
                    addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    range: "loopback",
                })
            } else {
                Ok(())
            }
        }
    }
}

/// Keeps the allowed addresses of a resolution; an error when none is left.
///
/// # Errors
/// The first refusal when every address is refused; [`SsrfError::NoAddress`] when there
/// was none.
pub fn filter_addrs(
    name: &str,
    addrs: impl IntoIterator<Item = SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, SsrfError> {
    let mut allowed = Vec::new();
    let mut first_refusal = None;
    for addr in addrs {
        match check_ip(addr.ip(), allow_private) {
            Ok(()) => allowed.push(addr),
            Err(e) => {
                first_refusal.get_or_insert(e);
            }
        }
    }
    if allowed.is_empty() {
        return Err(first_refusal.unwrap_or_else(|| SsrfError::NoAddress(name.to_owned())));
    }
    // A name resolving to both public and private addresses is a rebinding trick; refuse it.
    if let Some(e) = first_refusal {
        return Err(e);
    }
    Ok(allowed)
}

/// A DNS resolver for reqwest that refuses names resolving to refused addresses, so the
/// check holds at connect time (DNS rebinding cannot bypass it).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    allow_private: bool,
}

impl GuardedResolver {
    /// A resolver refusing private addresses unless `allow_private`.
    pub fn new(allow_private: bool) -> Arc<Self> {
        Arc::new(Self { allow_private })
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = filter_addrs(&host, addrs, allow_private)?;
            let iter: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(iter)
        })
    }
}
