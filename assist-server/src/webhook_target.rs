//! Where a webhook may point. Deliveries carry customer text, so by default a
//! webhook URL must be HTTPS and every address its host resolves to must be
//! public: loopback, private (RFC 1918, unique-local), link-local (cloud
//! metadata), carrier-grade NAT, unspecified, multicast and broadcast ranges
//! are refused — at registration and again at delivery, where the HTTP
//! client's resolver drops such addresses so a DNS answer that changed since
//! registration cannot point a delivery inside. An operator allows plain
//! HTTP or internal receivers with `webhook_allow_http` and
//! `webhook_allow_private_targets`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::config::AlertsConfig;

/// What the operator allows.
#[derive(Debug, Clone, Copy, Default)]
pub struct TargetPolicy {
    pub allow_http: bool,
    pub allow_private: bool,
}

impl TargetPolicy {
    pub fn from_config(config: &AlertsConfig) -> TargetPolicy {
        TargetPolicy {
            allow_http: config.webhook_allow_http,
            allow_private: config.webhook_allow_private_targets,
        }
    }
}

/// Why a webhook URL is refused.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("url `{0}` is not a URL")]
    NotUrl(String),
    #[error(
        "url `{0}` must be an https URL with a host (plain http only if the operator sets webhook_allow_http)"
    )]
    Scheme(String),
    #[error("put no credentials in the URL; verify deliveries with the signature instead")]
    Credentials,
    #[error("the host `{0}` does not resolve")]
    Unresolvable(String),
    #[error(
        "`{host}` is {addr}, an internal address; webhooks go to public addresses unless the operator sets webhook_allow_private_targets"
    )]
    Internal { host: String, addr: IpAddr },
}

/// Whether `ip` belongs to a range a webhook may not reach by default.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                // 100.64.0.0/10, carrier-grade NAT.
                || (a == 100 && (b & 0xc0) == 64)
                // 198.18.0.0/15, benchmarking networks inside an operator.
                || (a == 198 && (b & 0xfe) == 18)
                // 240.0.0.0/4, reserved.
                || a >= 240
                // 192.0.0.0/24, protocol assignments.
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| embedded_v4(v6)) {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                v6.is_loopback()
                    || local_nat64(v6)
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
            }
        },
    }
}

/// The IPv4 address the well-known NAT64 prefix (64:ff9b::/96) or the
/// deprecated IPv4-compatible form (::a.b.c.d) carries: a translator would
/// deliver there, so it is judged as that address.
fn embedded_v4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let tail = std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
    let compatible = s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified();
    (nat64 || compatible).then_some(tail)
}

/// 64:ff9b:1::/48, the local-use NAT64 prefix: translators inside a network.
fn local_nat64(v6: std::net::Ipv6Addr) -> bool {
    let s = v6.segments();
    s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1
}

/// Parse `raw` and check what can be checked without DNS: the scheme, no
/// credentials, and an IP-literal host.
pub fn check_url(raw: &str, policy: TargetPolicy) -> Result<reqwest::Url, TargetError> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|_| TargetError::NotUrl(raw.to_string()))?;
    let scheme_ok = url.scheme() == "https" || (policy.allow_http && url.scheme() == "http");
    if !scheme_ok || url.host_str().is_none() {
        return Err(TargetError::Scheme(url.to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    if !policy.allow_private {
        let host = url.host_str().unwrap_or_default();
        let literal = host.trim_matches(['[', ']']).parse::<IpAddr>().ok();
        if let Some(addr) = literal.filter(|ip| is_internal(*ip)) {
            return Err(TargetError::Internal {
                host: url.host_str().unwrap_or_default().to_string(),
                addr,
            });
        }
    }
    Ok(url)
}

/// [`check_url`], then resolve the host and check every address.
pub async fn check_target(raw: &str, policy: TargetPolicy) -> Result<reqwest::Url, TargetError> {
    let url = check_url(raw, policy)?;
    if policy.allow_private {
        return Ok(url);
    }
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|_| TargetError::Unresolvable(host.clone()))?
        .collect();
    if addrs.is_empty() {
        return Err(TargetError::Unresolvable(host));
    }
    if let Some(a) = addrs.iter().find(|a| is_internal(a.ip())) {
        return Err(TargetError::Internal { host, addr: a.ip() });
    }
    Ok(url)
}

/// The delivery client's resolver: the system's answer without internal
/// addresses (an error when nothing is left).
#[derive(Debug, Clone, Copy)]
pub struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(resolve_public(name.as_str().to_string()))
    }
}

async fn resolve_public(
    host: String,
) -> Result<reqwest::dns::Addrs, Box<dyn std::error::Error + Send + Sync>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
        .await?
        .filter(|a| !is_internal(a.ip()))
        .collect();
    if addrs.is_empty() {
        return Err(format!("`{host}` resolves to no public address").into());
    }
    Ok(Box::new(addrs.into_iter()))
}

/// Install the policy on a delivery client.
pub fn guard_client(
    builder: reqwest::ClientBuilder,
    policy: TargetPolicy,
) -> reqwest::ClientBuilder {
    if policy.allow_private {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnlyResolver))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "198.18.0.1",
            "198.19.255.1",
            "240.0.0.1",
            "255.255.255.254",
            "192.0.0.8",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::c0a8:101",
            "::127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "203.0.113.7",
            "2001:4860:4860::8888",
            "100.128.0.1",
            "198.20.0.1",
            "64:ff9b::808:808",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
