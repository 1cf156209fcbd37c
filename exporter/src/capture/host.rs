//! Whether an alert is about this host: its `instance` label names this
//! exporter (this host's names and addresses, alone or with the listen port,
//! and the names given with `--capture.instance`), its `node`/`nodename` label
//! names this host (its host name, or a `--capture.instance` name without a
//! port: in a Kubernetes pod the host name is the pod's, the node's is given).
//!
//! Loopback names (`localhost`, `127.0.0.1`, `[::1]`, with or without the
//! port) name every host alike: they count as this host only for alerts sent
//! to this exporter's own webhook, never for alerts read from Alertmanager
//! (every exporter of a fleet polling it would take them), unless
//! `--capture.instance` names them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

/// This exporter's names.
#[derive(Debug, Clone)]
pub struct ThisHost {
    /// Values an `instance` label may take.
    instances: BTreeSet<String>,
    /// Loopback values: this host only for alerts sent to its own webhook.
    loopback: BTreeSet<String>,
    /// Host names a `node`/`nodename` label may take.
    hostnames: BTreeSet<String>,
}

impl ThisHost {
    /// This host's own names and the configured ones.
    pub fn new(configured: &[String], listen: SocketAddr) -> ThisHost {
        let mut hostnames = hostnames();
        let configured: Vec<String> = configured.iter().map(|n| n.to_ascii_lowercase()).collect();
        hostnames.extend(configured.iter().filter(|n| !n.contains(':')).cloned());
        let mut instances: BTreeSet<String> = hostnames.iter().cloned().collect();
        let mut loopback: BTreeSet<String> = ["localhost".to_owned(), "::1".to_owned()].into();
        for address in addresses(listen) {
            if address.is_loopback() { &mut loopback } else { &mut instances }.insert(address.to_string());
        }
        let port = listen.port();
        for names in [&mut instances, &mut loopback] {
            let bracketed: Vec<String> =
                names.iter().map(|n| if n.contains(':') { format!("[{n}]") } else { n.clone() }).collect();
            names.extend(bracketed.iter().map(|n| format!("{n}:{port}")));
        }
        instances.extend(configured);
        loopback.retain(|n| !instances.contains(n));
        ThisHost { instances, loopback, hostnames }
    }

    /// `Ok` when the labels name this host; `Err(why)` otherwise. An alert with
    /// none of `instance`, `node`, `nodename` names this host only when it came
    /// to this exporter's own webhook (`addressed`).
    pub fn check(&self, labels: &BTreeMap<String, String>, addressed: bool) -> Result<(), String> {
        let mut named = false;
        if let Some(instance) = labels.get("instance").filter(|v| !v.is_empty()) {
            named = true;
            let instance_lower = instance.to_ascii_lowercase();
            if self.loopback.contains(&instance_lower) && !addressed {
                return Err(format!(
                    "instance {instance:?} is a loopback name, which every host shares: it names this host only for \
                     alerts sent to this exporter's webhook, not for alerts read from Alertmanager \
                     (name it with --capture.instance to take it anyway)"
                ));
            }
            if !self.instances.contains(&instance_lower) && !self.loopback.contains(&instance_lower) {
                return Err(format!(
                    "instance {instance:?} is not this exporter (set --capture.instance to add a name)"
                ));
            }
        }
        for key in ["node", "nodename"] {
            if let Some(node) = labels.get(key).filter(|v| !v.is_empty()) {
                named = true;
                let short = node.split('.').next().unwrap_or(node).to_ascii_lowercase();
                if !self.hostnames.contains(&node.to_ascii_lowercase()) && !self.hostnames.contains(&short) {
                    return Err(format!("{key} {node:?} is not this host"));
                }
            }
        }
        if named || addressed { Ok(()) } else { Err("the alert names no instance, node or nodename".into()) }
    }

    /// The names, for the start-up log line.
    pub fn describe(&self) -> String {
        let loopback = self.loopback.iter().take(4).map(|n| format!("{n} (webhook only)"));
        self.instances.iter().take(12).cloned().chain(loopback).collect::<Vec<_>>().join(",")
    }
}

/// The kernel's host name and its first label.
fn hostnames() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let name = name.trim().to_ascii_lowercase();
        if !name.is_empty() {
            out.insert(name.split('.').next().unwrap_or(&name).to_owned());
            out.insert(name);
        }
    }
    out
}

/// The addresses an alert may know this exporter by: the listen address when
/// it is a specific one, else every local address of this network namespace.
fn addresses(listen: SocketAddr) -> Vec<IpAddr> {
    if !listen.ip().is_unspecified() {
        return vec![listen.ip()];
    }
    let mut out = Vec::new();
    // fib_trie lists each local IPv4 address before a `/32 host LOCAL` line.
    if let Ok(text) = std::fs::read_to_string("/proc/self/net/fib_trie") {
        let mut last: Option<IpAddr> = None;
        for line in text.lines().take(100_000) {
            let t = line.trim_start_matches([' ', '|', '+', '-', '`']);
            if let Ok(ip) = t.trim().parse::<std::net::Ipv4Addr>() {
                last = Some(IpAddr::V4(ip));
            } else if t.contains("/32 host LOCAL")
                && let Some(ip) = last
                && !out.contains(&ip)
            {
                out.push(ip);
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string("/proc/self/net/if_inet6") {
        for line in text.lines().take(10_000) {
            let Some(hex) = line.split_whitespace().next().filter(|h| h.len() == 32) else { continue };
            if let Ok(v) = u128::from_str_radix(hex, 16) {
                out.push(IpAddr::V6(std::net::Ipv6Addr::from(v)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn configured_names_are_added() {
        let host = ThisHost::new(&["node-a:9487".into(), "node-a".into()], "0.0.0.0:9487".parse().unwrap());
        assert!(host.check(&labels(&[("instance", "node-a:9487")]), false).is_ok());
        assert!(host.check(&labels(&[("node", "node-a")]), false).is_ok(), "a name without a port names the node");
        assert!(host.check(&labels(&[("instance", "127.0.0.1:9487")]), true).is_ok(), "loopback via the webhook");
        assert!(host.check(&labels(&[("instance", "node-b:9487")]), true).unwrap_err().contains("node-b"));
        assert!(host.check(&labels(&[]), true).is_ok(), "sent to our own webhook");
        assert!(host.check(&labels(&[]), false).is_err(), "a polled alert must name us");
        let name = hostnames().into_iter().next().unwrap_or_default();
        assert!(host.check(&labels(&[("nodename", &name)]), false).is_ok());
        assert!(host.check(&labels(&[("node", "surely-not-this-host")]), false).is_err());
    }

    #[test]
    fn default_names_are_the_hosts_own() {
        let host = ThisHost::new(&[], "127.0.0.1:9487".parse().unwrap());
        for ok in ["127.0.0.1:9487", "localhost:9487", "127.0.0.1", "[::1]:9487", "LOCALHOST"] {
            assert!(host.check(&labels(&[("instance", ok)]), true).is_ok(), "{ok} sent to our webhook");
            let polled = host.check(&labels(&[("instance", ok)]), false).unwrap_err();
            assert!(polled.contains("loopback"), "{ok} read from Alertmanager names every host: {polled}");
        }
        assert!(host.check(&labels(&[("instance", "127.0.0.1:9488")]), true).is_err());
        let any = ThisHost::new(&[], "0.0.0.0:9487".parse().unwrap());
        assert!(any.check(&labels(&[("instance", "127.0.0.1:9487")]), false).is_err(), "loopback, polled");
        assert!(any.check(&labels(&[("instance", "127.0.0.1:9487")]), true).is_ok(), "loopback, our webhook");
        let named = ThisHost::new(&["localhost:9487".into()], "0.0.0.0:9487".parse().unwrap());
        assert!(named.check(&labels(&[("instance", "localhost:9487")]), false).is_ok(), "named explicitly");
    }
}
