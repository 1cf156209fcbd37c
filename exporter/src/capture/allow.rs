//! The pprof allowlist (`--capture.pprof.allow`, `--capture.pprof.path`):
//! which hosts, ports and paths a pull may reach. Host and port are matched
//! apart; `*` matches within one DNS label or one IPv4 octet, never across a
//! dot or into the port (`10.0.0.*:6060` does not admit
//! `10.0.0.1.evil.invalid:6060`). An address pattern is checked against the
//! address actually connected to, so a name cannot resolve its way in. The
//! path comes from the alert: only known heap-profile paths are pulled.

use super::http::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Paths pulled whatever the configuration: Go's net/http/pprof heap endpoints.
pub const PPROF_PATHS: &[&str] = &["/debug/pprof/heap", "/debug/pprof/allocs"];
/// Query keys a pull may carry (`gc=1` runs a GC first), each with a number.
const QUERY_KEYS: &[&str] = &["gc", "debug", "seconds"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// DNS labels, each a glob with `*` inside the label.
    Name(Vec<String>),
    /// Four octets, `None` for `*`.
    V4([Option<u8>; 4]),
    V6(Ipv6Addr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    host: Host,
    /// `None` for `*`.
    port: Option<u16>,
}

/// Allowed hosts, ports and paths of pprof pulls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    patterns: Vec<Pattern>,
    paths: Vec<String>,
}

impl Allowlist {
    /// `patterns`: `HOST:PORT` (`127.0.0.1:*`, `10.0.0.*:6060`, `*.svc.cluster.local:6060`, `[::1]:6060`);
    /// `paths`: heap-profile paths pulled besides `PPROF_PATHS`.
    pub fn new(patterns: &[String], paths: &[String]) -> Result<Allowlist, String> {
        let patterns = patterns.iter().map(|p| pattern(p)).collect::<Result<Vec<_>, _>>()?;
        for path in paths {
            if !path.starts_with('/') || path.contains(['?', '#', ' ']) || path.split('/').any(|c| c == "..") {
                return Err(format!("{path:?} is not a plain URL path (e.g. /debug/pprof/heap)"));
            }
        }
        Ok(Allowlist { patterns, paths: paths.to_vec() })
    }

    /// Whether `url` may be pulled: its host and port match a pattern (an
    /// address pattern admits a name only if the name resolves into it), its
    /// path is a known profile path and its query only known keys.
    pub fn allows(&self, url: &Url) -> Result<(), String> {
        self.allows_path(&url.target)?;
        let literal: Option<IpAddr> = url.host.parse().ok();
        let resolved: Vec<IpAddr> = match literal {
            Some(ip) => vec![ip],
            None if self.patterns.iter().any(|p| !matches!(p.host, Host::Name(_))) => {
                std::net::ToSocketAddrs::to_socket_addrs(&(url.host.as_str(), url.port))
                    .map(|a| a.map(|a| a.ip()).collect())
                    .unwrap_or_default()
            }
            None => Vec::new(),
        };
        let admitted = self.patterns.iter().any(|p| {
            p.port.is_none_or(|port| port == url.port)
                && match &p.host {
                    Host::Name(labels) => literal.is_none() && name_matches(labels, &url.host),
                    _ => resolved.iter().any(|ip| address_matches(&p.host, *ip)),
                }
        });
        if admitted { Ok(()) } else { Err(format!("{} is not allowed by --capture.pprof.allow", url.authority())) }
    }

    /// Whether a pull of `url` may use the connection to `address` (the check
    /// of an address pattern is on what was connected to, not on what a name said).
    pub fn allows_address(&self, url: &Url, address: SocketAddr) -> bool {
        let literal = url.host.parse::<IpAddr>().is_ok();
        self.patterns.iter().any(|p| {
            p.port.is_none_or(|port| port == address.port())
                && match &p.host {
                    Host::Name(labels) => !literal && name_matches(labels, &url.host),
                    _ => address_matches(&p.host, address.ip()),
                }
        })
    }

    fn allows_path(&self, target: &str) -> Result<(), String> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let known = PPROF_PATHS.contains(&path) || self.paths.iter().any(|p| p == path);
        if !known {
            return Err(format!(
                "path {path:?} is not a heap-profile path ({}, or one given with --capture.pprof.path)",
                PPROF_PATHS.join(", ")
            ));
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !QUERY_KEYS.contains(&key) || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("query {pair:?} is not allowed (only {} with a number)", QUERY_KEYS.join(", ")));
            }
        }
        Ok(())
    }

    /// This list and the operator's own `url` (a `--capture.target` mapping): its host, port and path.
    pub fn with(&self, url: &Url) -> Allowlist {
        let mut out = self.clone();
        if let Ok(p) = pattern(&url.authority()) {
            out.patterns.push(p);
        }
        out.paths.push(url.target.split('?').next().unwrap_or("/").to_owned());
        out
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

fn pattern(text: &str) -> Result<Pattern, String> {
    let bad =
        || format!("{text:?} is not a HOST:PORT pattern (e.g. 127.0.0.1:6060, 10.0.0.*:6060, *.svc:*, [::1]:6060)");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port = match port {
        "*" => None,
        p => Some(p.parse::<u16>().map_err(|_| bad())?),
    };
    let host = host.to_ascii_lowercase();
    let host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Host::V6(v6.parse().map_err(|_| format!("{text:?}: an IPv6 pattern is one address, without *"))?)
    } else if let Some(octets) = v4_pattern(&host) {
        Host::V4(octets)
    } else {
        let labels: Vec<String> = host.split('.').map(str::to_owned).collect();
        let plain =
            |l: &String| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*');
        if !labels.iter().all(plain) {
            return Err(bad());
        }
        Host::Name(labels)
    };
    Ok(Pattern { host, port })
}

/// `10.0.*.1` → its octets; `None` when the text is not four octets or `*`.
fn v4_pattern(host: &str) -> Option<[Option<u8>; 4]> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut out = [None; 4];
    for (slot, part) in out.iter_mut().zip(parts) {
        *slot = match part {
            "*" => None,
            p if p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
            _ => return None,
        };
    }
    Some(out)
}

fn address_matches(host: &Host, ip: IpAddr) -> bool {
    match (host, ip) {
        (Host::V4(octets), IpAddr::V4(ip)) => octets.iter().zip(ip.octets()).all(|(p, o)| p.is_none_or(|p| p == o)),
        (Host::V4(_), IpAddr::V6(ip)) => ip.to_ipv4_mapped().is_some_and(|v4| address_matches(host, IpAddr::V4(v4))),
        (Host::V6(want), IpAddr::V6(ip)) => *want == ip,
        (Host::V6(want), IpAddr::V4(ip)) => want.to_ipv4_mapped() == Some(Ipv4Addr::from(ip.octets())),
        (Host::Name(_), _) => false,
    }
}

fn name_matches(labels: &[String], host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == labels.len() && labels.iter().zip(parts).all(|(l, p)| glob(l.as_bytes(), p.as_bytes()))
}

/// `*` matches any run within one label (iterative, no backtracking blow-up).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(patterns: &[&str]) -> Allowlist {
        Allowlist::new(&patterns.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>(), &["/custom/heap".into()]).unwrap()
    }

    fn allows(list: &Allowlist, url: &str) -> bool {
        list.allows(&Url::parse(url).unwrap()).is_ok()
    }

    #[test]
    fn a_star_stays_inside_one_label_or_octet() {
        let l = list(&["10.0.0.*:6060", "*.svc:6060", "127.0.0.1:*", "[::1]:6060"]);
        assert!(allows(&l, "http://10.0.0.7:6060/debug/pprof/heap"));
        assert!(allows(&l, "http://a.svc:6060/debug/pprof/heap?gc=1"));
        assert!(allows(&l, "http://127.0.0.1:1234/debug/pprof/allocs"));
        assert!(allows(&l, "http://[::1]:6060/custom/heap"));
        for bad in [
            "http://10.0.0.1.evil.invalid:6060/debug/pprof/heap",
            "http://10.0.0.7:6061/debug/pprof/heap",
            "http://a.b.svc:6060/debug/pprof/heap",
            "http://svc:6060/debug/pprof/heap",
            "http://127.0.0.2:6060/debug/pprof/heap",
            "http://169.254.169.254/debug/pprof/heap",
        ] {
            assert!(!allows(&l, bad), "{bad}");
        }
        // A name that resolves into an address pattern is admitted only by what it resolves to.
        assert!(allows(&l, "http://localhost:1234/debug/pprof/heap"));
        let url = Url::parse("http://localhost:1234/debug/pprof/heap").unwrap();
        assert!(l.allows_address(&url, "127.0.0.1:1234".parse().unwrap()));
        assert!(!l.allows_address(&url, "10.9.9.9:1234".parse().unwrap()));
        assert!(Allowlist::new(&["[::*]:1".into()], &[]).is_err());
        assert!(Allowlist::new(&["nohost".into()], &[]).is_err());
        assert!(Allowlist::default().is_empty());
    }

    #[test]
    fn only_heap_profile_paths_and_queries_are_pulled() {
        let l = list(&["127.0.0.1:*"]);
        for bad in [
            "http://127.0.0.1:1/debug/pprof/cmdline",
            "http://127.0.0.1:1/debug/pprof/heap/../../admin",
            "http://127.0.0.1:1/admin?x=1",
            "http://127.0.0.1:1/debug/pprof/heap?gc=1&drop=all",
            "http://127.0.0.1:1/debug/pprof/heap?seconds=",
        ] {
            assert!(!allows(&l, bad), "{bad}");
        }
        assert!(allows(&l, "http://127.0.0.1:1/debug/pprof/heap?gc=1&debug=0"));
        assert!(Allowlist::new(&[], &["../x".into()]).is_err());
    }
}
