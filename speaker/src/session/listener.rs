//! The passive side: one listening socket for all peers. A connection from a configured peer
//! address goes to that peer's task; any other is closed at once and logged. TCP MD5 keys are
//! installed on the listening socket per peer address, so the kernel checks signatures from
//! the first SYN.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::driver::PeerCmd;
use super::socket;

/// Where inbound connections go: peer address -> its task.
pub type Dispatch = HashMap<IpAddr, mpsc::UnboundedSender<PeerCmd>>;

/// Bind `addr`, install the MD5 keys `(peer address, key)`.
pub fn bind(addr: SocketAddr, md5: &[(IpAddr, Vec<u8>)]) -> std::io::Result<TcpListener> {
    let listener = socket::listen(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("listen on {addr}: {e}")))?;
    for (peer, key) in md5 {
        socket::set_md5(listener.as_raw_fd(), *peer, Some(key)).map_err(|e| {
            std::io::Error::new(e.kind(), format!("TCP MD5 key for {peer} on {addr}: {e}"))
        })?;
    }
    Ok(listener)
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
