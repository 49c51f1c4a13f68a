//! The per-peer cap: how many connections each peer has open, so that one
//! peer (a client that opens sockets and sends nothing, say) cannot take
//! every place of a server.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use crate::mutex::Mutex;

/// The open connections of each peer, up to a cap.
pub(super) struct Peers {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted for its peer; dropping it stops counting it.
pub(super) struct Counted {
    peers: Arc<Peers>,
    key: IpAddr,
}

impl Peers {
    pub(super) fn new(cap: usize) -> Arc<Peers> {
        Arc::new(Peers {
            cap,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The cap.
    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// Counts a connection from `peer`, or `None` when it has as many
    /// open as the cap allows already.
    pub(super) fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Counted> {
        let key = key(peer);
        let mut open = self.open.lock();
        let count = open.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Counted {
            peers: Arc::clone(self),
            key,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            // Only peers with connections open take room.
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What a peer is counted by: an IPv4 address (also one mapped into IPv6)
/// as it is; an IPv6 address by its /64 network, since one host usually
/// has a whole /64 to pick addresses from.
fn key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_past_the_cap_is_refused_until_one_of_its_connections_ends() {
        let peers = Peers::new(2);
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let first = peers.admit(one).unwrap();
        let _second = peers.admit(one).unwrap();
        assert!(peers.admit(one).is_none());
        assert!(
            peers.admit(other).is_some(),
            "another peer has its own count"
        );
        drop(first);
        assert!(peers.admit(one).is_some());
    }

    #[test]
    fn ipv6_peers_count_by_their_64_network_and_mapped_ipv4_as_ipv4() {
        let peers = Peers::new(1);
        let six = peers.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert!(peers.admit("2001:db8::2".parse().unwrap()).is_none());
        assert!(peers.admit("2001:db8:0:1::1".parse().unwrap()).is_some());
        let four = peers.admit("192.0.2.7".parse().unwrap()).unwrap();
        assert!(peers.admit("::ffff:192.0.2.7".parse().unwrap()).is_none());
        drop(six);
        assert_eq!(peers.open.lock().len(), 1, "an emptied peer is forgotten");
        drop(four);
    }
}
