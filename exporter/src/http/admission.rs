//! Admission of connections: a cap on the connections served at once, shared
//! fairly between client addresses so that a client holding many cannot lock
//! Prometheus out.
//!
//! When the table is full, a newcomer from address A:
//! 1. takes a slot from the address holding the most connections, when A holds
//!    fewer: that address's longest-idle connection, else its oldest busy one;
//! 2. otherwise (A holds the most) replaces A's own longest-idle connection;
//! 3. otherwise (every connection of A is mid-request) is refused.
//!
//! A connection is idle while it waits for a request's headers (just opened,
//! or kept alive after a response) and busy from the headers until the end of
//! the response. An address is an IPv4 address or an IPv6 /64 (the privacy
//! addresses of one host share it).
//!
//! Why fairness rather than a reserve for loopback or for listed scrapers: it
//! needs no configuration and protects a scraper at any address; a reserve by
//! address would do nothing when the attacker shares the scraper's address
//! (a local user against a loopback-only exporter), which step 2 covers: a
//! scrape's connection sends its request at once and is then busy, while the
//! connections an attacker holds open are idle and go first.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::Notify;

/// The unit of fairness: an IPv4 address, or the /64 prefix of an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer(IpAddr);

impl Peer {
    pub fn of(ip: IpAddr) -> Peer {
        match ip {
            IpAddr::V4(v4) => Peer(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Peer(IpAddr::V4(v4)),
                None => Peer(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX)))),
            },
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The connection table.
#[derive(Debug)]
pub struct Admission {
    cap: usize,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    slots: HashMap<u64, Slot>,
    per_peer: HashMap<Peer, usize>,
}

#[derive(Debug)]
struct Slot {
    peer: Peer,
    opened: Instant,
    /// Since when it waits for a request; `None` while a request is in progress.
    idle_since: Option<Instant>,
    evicted: Arc<Notify>,
}

/// What became of a newcomer.
#[derive(Debug)]
pub enum Decision {
    /// Served; when the table was full, `replaced` is whose connection it took.
    Admitted { ticket: Ticket, replaced: Option<Replaced> },
    /// Not served: every connection of its address is mid-request and it holds the most.
    Refused { held: usize },
}

/// The connection closed to make room.
#[derive(Debug, Clone, Copy)]
pub struct Replaced {
    pub peer: Peer,
    /// It was waiting for a request (rather than in the middle of one).
    pub was_idle: bool,
}

impl Admission {
    pub fn new(cap: usize) -> Arc<Admission> {
        Arc::new(Admission { cap: cap.max(1), table: Mutex::default() })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().slots.len()
    }

    /// Decides on a new connection from `ip`.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Decision {
        let peer = Peer::of(ip);
        let mut table = self.lock();
        let mut replaced = None;
        if table.slots.len() >= self.cap {
            let Some(victim) = table.victim(peer) else {
                return Decision::Refused { held: table.per_peer.get(&peer).copied().unwrap_or(0) };
            };
            replaced = table.evict(victim);
        }
        let id = table.next_id;
        table.next_id += 1;
        let evicted = Arc::new(Notify::new());
        let now = Instant::now();
        table.slots.insert(id, Slot { peer, opened: now, idle_since: Some(now), evicted: Arc::clone(&evicted) });
        *table.per_peer.entry(peer).or_default() += 1;
        Decision::Admitted { ticket: Ticket { admission: Arc::clone(self), id, evicted }, replaced }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    /// The connection a newcomer from `peer` replaces, if any (see the module's rules).
    fn victim(&self, peer: Peer) -> Option<u64> {
        let held = self.per_peer.get(&peer).copied().unwrap_or(0);
        let most = self.per_peer.values().copied().max().unwrap_or(0);
        if held < most {
            self.oldest(|slot| self.per_peer.get(&slot.peer) == Some(&most), true)
        } else {
            self.oldest(|slot| slot.peer == peer && slot.idle_since.is_some(), false)
        }
    }

    /// Among the slots `eligible` accepts, the longest idle one; with `busy_too`,
    /// the oldest busy one when none is idle.
    fn oldest(&self, eligible: impl Fn(&Slot) -> bool, busy_too: bool) -> Option<u64> {
        let candidates = self.slots.iter().filter(|(_, slot)| eligible(slot));
        let idle = candidates.clone().filter_map(|(id, s)| s.idle_since.map(|t| (t, *id))).min();
        match idle {
            Some((_, id)) => Some(id),
            None if busy_too => candidates.map(|(id, s)| (s.opened, *id)).min().map(|(_, id)| id),
            None => None,
        }
    }

    fn evict(&mut self, id: u64) -> Option<Replaced> {
        let slot = self.remove(id)?;
        slot.evicted.notify_one();
        Some(Replaced { peer: slot.peer, was_idle: slot.idle_since.is_some() })
    }

    fn remove(&mut self, id: u64) -> Option<Slot> {
        let slot = self.slots.remove(&id)?;
        if let Some(count) = self.per_peer.get_mut(&slot.peer) {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(&slot.peer);
            }
        }
        Some(slot)
    }
}

/// A connection's place in the table, given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    evicted: Arc<Notify>,
}

impl Ticket {
    /// Completes when the connection has been chosen to make room for another.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }

    /// Marks the connection busy until the guard is dropped (at the end of the response).
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.set_idle(None);
        Busy(Arc::clone(self))
    }

    fn set_idle(&self, since: Option<Instant>) {
        if let Some(slot) = self.admission.lock().slots.get_mut(&self.id) {
            slot.idle_since = since;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.lock().remove(self.id);
    }
}

/// A request in progress on a connection.
#[derive(Debug)]
pub struct Busy(Arc<Ticket>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set_idle(Some(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn admitted(d: Decision) -> (Arc<Ticket>, Option<Replaced>) {
        match d {
            Decision::Admitted { ticket, replaced } => (Arc::new(ticket), replaced),
            Decision::Refused { held } => panic!("refused (holding {held})"),
        }
    }

    #[test]
    fn a_newcomer_takes_the_slot_of_the_address_holding_the_most() {
        let admission = Admission::new(4);
        let attacker: Vec<_> = (0..4).map(|_| admitted(admission.admit(ip("10.0.0.66"))).0).collect();
        let (scraper, replaced) = admitted(admission.admit(ip("10.0.0.1")));
        let replaced = replaced.expect("the table was full");
        assert_eq!((replaced.peer, replaced.was_idle), (Peer::of(ip("10.0.0.66")), true));
        assert_eq!(admission.open(), 4);
        // The first (longest idle) of the attacker's connections went.
        assert!(!admission.lock().slots.contains_key(&attacker[0].id));
        assert!(attacker[1..].iter().all(|t| admission.lock().slots.contains_key(&t.id)));
        // The attacker's next one replaces its own longest-idle connection, never the scraper's.
        let _busy = scraper.busy();
        let mut held = attacker;
        for _ in 0..10 {
            let (ticket, replaced) = admitted(admission.admit(ip("10.0.0.66")));
            assert_eq!(replaced.map(|r| r.peer), Some(Peer::of(ip("10.0.0.66"))));
            held.push(ticket);
        }
        assert!(admission.lock().slots.contains_key(&scraper.id));
    }

    #[test]
    fn on_one_address_idle_connections_give_way_and_busy_ones_are_kept() {
        let admission = Admission::new(2);
        let (first, _) = admitted(admission.admit(ip("127.0.0.1")));
        let (second, _) = admitted(admission.admit(ip("127.0.0.1")));
        let _b1 = first.busy();
        let (third, replaced) = admitted(admission.admit(ip("127.0.0.1")));
        assert!(replaced.is_some_and(|r| r.was_idle), "the idle one gives way");
        assert!(!admission.lock().slots.contains_key(&second.id));
        // Now both are busy: a newcomer from the same address is refused.
        let _b3 = third.busy();
        assert!(matches!(admission.admit(ip("127.0.0.1")), Decision::Refused { held: 2 }));
        // Another address still gets in, replacing the oldest busy connection of the heaviest.
        let (_other, replaced) = admitted(admission.admit(ip("192.0.2.1")));
        assert!(replaced.is_some_and(|r| !r.was_idle));
        assert!(!admission.lock().slots.contains_key(&first.id));
    }

    #[test]
    fn tickets_give_their_slot_back_and_ipv6_hosts_count_as_one() {
        let admission = Admission::new(8);
        let a = admitted(admission.admit(ip("2001:db8::1"))).0;
        let b = admitted(admission.admit(ip("2001:db8::ffff:1"))).0;
        let c = admitted(admission.admit(ip("::ffff:192.0.2.7"))).0;
        let table = admission.lock();
        assert_eq!(table.per_peer.get(&Peer::of(ip("2001:db8::2"))), Some(&2));
        assert_eq!(table.per_peer.get(&Peer::of(ip("192.0.2.7"))), Some(&1));
        drop(table);
        assert_eq!(Peer::of(ip("2001:db8::1")).to_string(), "2001:db8::/64");
        drop((a, b, c));
        assert_eq!(admission.open(), 0);
        assert!(admission.lock().per_peer.is_empty());
    }
}
