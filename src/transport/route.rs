//! Whether a connection's network path still exists: its local address still assigned and a
//! route to its peer. A laptop moving from Wi-Fi to Ethernet loses the address its
//! connections use; nothing on the wire says so (no RST, no ICMP reaches a socket whose
//! address is gone), so without this check the connection only dies by write timeout.
//!
//! The check binds and connects a UDP socket, which sends nothing: binding fails when the
//! address is no longer assigned, connecting fails when no route leads to the peer.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};

/// Why a path is gone, if it is.
pub(crate) fn gone(local: SocketAddr, peer: SocketAddr) -> Option<&'static str> {
    if local.ip().is_loopback() || local.ip().is_unspecified() {
        return None;
    }
    let probe = match UdpSocket::bind(SocketAddr::new(local.ip(), 0)) {
        Ok(probe) => probe,
        Err(e) if e.kind() == ErrorKind::AddrNotAvailable => {
            return Some("its local address is gone (network changed)")
        }
        // Out of descriptors and the like say nothing about the path.
        Err(_) => return None,
    };
    match probe.connect(peer) {
        Err(e) if e.kind() == ErrorKind::NetworkUnreachable => {
            Some("no route to the server any more (network changed)")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_this_machine_does_not_have_is_gone() {
        // TEST-NET-1 (RFC 5737) is never assigned to a real interface.
        let local = SocketAddr::from(([192, 0, 2, 77], 40000));
        let peer = SocketAddr::from(([192, 0, 2, 1], 1935));
        assert!(gone(local, peer).is_some());
    }

    #[test]
    fn loopback_paths_never_go() {
        let local = SocketAddr::from(([127, 0, 0, 1], 40000));
        assert_eq!(gone(local, SocketAddr::from(([127, 0, 0, 1], 1935))), None);
    }
}
