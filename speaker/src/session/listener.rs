//! The passive side: one listening socket for all peers. A connection from a configured peer
//! address goes to that peer's task; any other is closed at once and logged. TCP MD5 keys are
//! installed on the listening socket per peer address, so the kernel checks signatures from
//! the first SYN.
//!
//! GTSM (RFC 5082) is checked from the first SYN too. `IP_MINTTL` on a listener applies to
//! every SYN it gets, whoever sends it, so it can only be set when every peer on the listener
//! uses GTSM (then it is the lowest of their minimums, and a far SYN is dropped unanswered);
//! a single-hop or multihop peer sharing the listener would be cut off by it. In every case
//! the peer's task checks the TTL of the SYN that opened an inbound connection
//! (`socket::syn_ttl`) against that peer's own minimum before reading from it, and the
//! accepted stream gets `IP_MINTTL` for everything after.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::driver::PeerCmd;
use super::{socket, PeerSpec};

/// Where inbound connections go: peer address -> its task.
pub type Dispatch = HashMap<IpAddr, mpsc::UnboundedSender<PeerCmd>>;

/// Bind `addr` for `peers`: their MD5 keys, and the GTSM floor when all of them use GTSM.
pub fn bind(addr: SocketAddr, peers: &[PeerSpec]) -> std::io::Result<TcpListener> {
    let listener = socket::listen(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("listen on {addr}: {e}")))?;
    for p in peers {
        if let Some(key) = &p.socket.md5_key {
            socket::set_md5(listener.as_raw_fd(), p.address, Some(key)).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("TCP MD5 key for {} on {addr}: {e}", p.address),
                )
            })?;
        }
    }
    if let Some(min) = gtsm_floor(peers) {
        socket::set_min_ttl(listener.as_raw_fd(), addr.is_ipv6(), min).map_err(|e| {
            std::io::Error::new(e.kind(), format!("GTSM minimum TTL {min} on {addr}: {e}"))
        })?;
        tracing::info!("every peer uses GTSM: {addr} drops SYNs with a TTL below {min}");
    }
    Ok(listener)
}

/// The minimum TTL the listener itself may enforce: the lowest GTSM minimum, when every peer
/// has one (no peers: none).
pub fn gtsm_floor(peers: &[PeerSpec]) -> Option<u8> {
    peers
        .iter()
        .map(|p| p.socket.min_ttl)
        .try_fold(None, |acc: Option<u8>, m| {
            m.map(|m| Some(acc.map_or(m, |a| a.min(m))))
        })
        .flatten()
}

/// Accept until the task is aborted.
pub fn spawn(listener: TcpListener, dispatch: Dispatch) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, from)) => {
                    let ip = socket::canonical(from.ip());
                    match dispatch.get(&ip) {
                        Some(tx) => {
                            if tx.send(PeerCmd::Inbound(stream)).is_err() {
                                tracing::debug!(%from, "peer task gone; connection closed");
                            }
                        }
                        None => {
                            tracing::warn!(%from, "connection from an address that is not a configured peer: closed");
                            drop(stream);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SocketOptions;

    fn spec(min_ttl: Option<u8>) -> PeerSpec {
        PeerSpec {
            id: 0,
            fsm: bgp::fsm::Config::new(65001, 65002, std::net::Ipv4Addr::new(10, 0, 0, 1)),
            address: IpAddr::from([127, 0, 0, 2]),
            port: 179,
            source: None,
            socket: SocketOptions {
                ttl: 255,
                min_ttl,
                md5_key: None,
            },
        }
    }

    #[test]
    fn gtsm_floor_only_when_every_peer_uses_gtsm_and_then_the_lowest() {
        assert_eq!(gtsm_floor(&[]), None);
        assert_eq!(gtsm_floor(&[spec(Some(255))]), Some(255));
        assert_eq!(gtsm_floor(&[spec(Some(255)), spec(Some(253))]), Some(253));
        assert_eq!(gtsm_floor(&[spec(Some(255)), spec(None)]), None);
        assert_eq!(gtsm_floor(&[spec(None), spec(Some(255))]), None);
    }
}
