//! Socket plumbing for BGP connections: the listening socket, outbound connects with a bound
//! source address, and the per-socket options a BGP session needs — TCP MD5 signatures
//! (RFC 2385, `TCP_MD5SIG`), the outgoing TTL / hop limit (eBGP single-hop 1, multihop N) and
//! GTSM's minimum incoming TTL (RFC 5082, `IP_MINTTL` / `IPV6_MINHOPCOUNT`). Only this file
//! calls `setsockopt`.
//!
//! GTSM on the passive side: the kernel answers a SYN from the listening socket, before any
//! peer's options can be set on the connection, so the listener sends with TTL 255 (or a GTSM
//! peer, which drops anything below 255, never sees our SYN-ACK) and saves every SYN's headers
//! (`TCP_SAVE_SYN`): [`syn_ttl`] reads the TTL the connection's first segment arrived with,
//! which the peer's task checks against its GTSM minimum before it reads a byte. When every
//! peer on a listener uses GTSM the listener also carries the lowest of their minimums
//! ([`set_min_ttl`]), so the kernel drops a far SYN without even answering it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// What the kernel should enforce on a peer's connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketOptions {
    /// TTL (IPv4) / hop limit (IPv6) of what we send.
    pub ttl: u8,
    /// GTSM: drop segments arriving with a TTL below this.
    pub min_ttl: Option<u8>,
    /// TCP MD5 key (RFC 2385), at most 80 bytes.
    pub md5_key: Option<Vec<u8>>,
}

/// Linux `TCP_MD5SIG_MAXKEYLEN`.
pub const MD5_MAX_KEY_LEN: usize = 80;

/// `TCP_NOTSENT_LOWAT` of every BGP connection: the kernel takes more bytes only while fewer
/// than this are queued unsent. Without it a slow reader lets the send buffer autotune to
/// megabytes of UPDATEs (on loopback a 1 MB backlog left a peer 6.7 s without a KEEPALIVE
/// at hold time 3 s); with it a KEEPALIVE waits behind at most this much plus one message.
/// Data in flight is not limited, so throughput on a fast path is not.
pub const NOTSENT_LOWAT: u32 = 16 * 1024;

/// Linux `struct tcp_md5sig` (include/uapi/linux/tcp.h).
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MD5_MAX_KEY_LEN],
}

const _: () = assert!(std::mem::size_of::<TcpMd5Sig>() == 216);

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live, initialised T of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the socket behind `fd` is IPv6 (then IPv4 peers are reached as v4-mapped).
fn socket_is_v6(fd: RawFd) -> io::Result<bool> {
    // SAFETY: sockaddr_storage is plain old data; getsockname writes at most `len` bytes.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(libc::c_int::from(ss.ss_family) == libc::AF_INET6)
}

/// Install (or, with `key == None`, remove) the TCP MD5 key for connections with `peer` on the
/// socket `fd`: a listening socket (one key per peer address) or a socket about to connect.
pub fn set_md5(fd: RawFd, peer: IpAddr, key: Option<&[u8]>) -> io::Result<()> {
    let key = key.unwrap_or(&[]);
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP MD5 key is {} bytes; at most {MD5_MAX_KEY_LEN} are allowed",
                key.len()
            ),
        ));
    }
    // SAFETY: all-zero is a valid TcpMd5Sig (plain integers and byte arrays).
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    let v6_socket = socket_is_v6(fd)?;
    let target = match peer {
        IpAddr::V4(a) if v6_socket => IpAddr::V6(a.to_ipv6_mapped()),
        other => other,
    };
    // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in / sockaddr_in6.
    unsafe {
        match target {
            IpAddr::V6(a6) => {
                let sin6 =
                    (&mut sig.addr as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                (*sin6).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*sin6).sin6_addr.s6_addr = a6.octets();
            }
            IpAddr::V4(a4) => {
                let sin =
                    (&mut sig.addr as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sin).sin_addr.s_addr = u32::from_ne_bytes(a4.octets());
            }
        }
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig)
}

/// Outgoing TTL / hop limit and the GTSM minimum on `fd` (whose family is `v6`).
pub fn set_ttl(fd: RawFd, v6: bool, ttl: u8, min_ttl: Option<u8>) -> io::Result<()> {
    let ttl = libc::c_int::from(ttl);
    if v6 {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &ttl)?;
        // A dual-stack socket talking to an IPv4 peer uses the IPv4 options too.
        let _ = setsockopt(fd, libc::IPPROTO_IP, libc::IP_TTL, &ttl);
    } else {
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_TTL, &ttl)?;
    }
    if let Some(min) = min_ttl {
        set_min_ttl(fd, v6, min)?;
    }
    Ok(())
}

/// GTSM: the kernel drops every segment for `fd` (a listener: every SYN) that arrives with a
/// TTL / hop limit below `min` (`IP_MINTTL`; `IPV6_MINHOPCOUNT` and, for IPv4-mapped
/// traffic, `IP_MINTTL` on an IPv6 socket).
pub fn set_min_ttl(fd: RawFd, v6: bool, min: u8) -> io::Result<()> {
    let min = libc::c_int::from(min);
    if v6 {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &min)?;
        let _ = setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &min);
    } else {
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &min)?;
    }
    Ok(())
}

/// The TTL (IPv4) or hop limit (IPv6) of the SYN that opened `stream`, from the headers its
/// listener saved (`TCP_SAVE_SYN`, set by [`listen`]). Readable once per connection.
pub fn syn_ttl(stream: &TcpStream) -> io::Result<u8> {
    let mut buf = [0u8; 512];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `buf` and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_SAVED_SYN,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let headers = buf.get(..len as usize).unwrap_or(&[]);
    saved_syn_ttl(headers).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "no IP header in the saved SYN ({} bytes{})",
                headers.len(),
                if headers.is_empty() {
                    ": the listener did not save it"
                } else {
                    ""
                }
            ),
        )
    })
}

/// The TTL / hop limit in saved SYN headers, which start at the IP header.
fn saved_syn_ttl(headers: &[u8]) -> Option<u8> {
    match headers.first()? >> 4 {
        4 => headers.get(8).copied(),
        6 => headers.get(7).copied(),
        _ => None,
    }
}

/// Options for an accepted (or connected) stream.
pub fn apply_stream(stream: &TcpStream, opts: &SocketOptions) -> io::Result<()> {
    let v6 = stream.local_addr()?.is_ipv6();
    set_ttl(stream.as_raw_fd(), v6, opts.ttl, opts.min_ttl)?;
    set_notsent_lowat(stream.as_raw_fd())?;
    stream.set_nodelay(true)
}

fn set_notsent_lowat(fd: RawFd) -> io::Result<()> {
    let lowat = NOTSENT_LOWAT as libc::c_int;
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, &lowat)
        .map_err(|e| io::Error::new(e.kind(), format!("TCP_NOTSENT_LOWAT: {e}")))
}

/// Connect to `peer` from `source` (if set) with `opts` in force before the SYN leaves.
pub async fn connect(
    peer: SocketAddr,
    source: Option<IpAddr>,
    opts: &SocketOptions,
) -> io::Result<TcpStream> {
    let socket = if peer.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    let fd = socket.as_raw_fd();
    if let Some(src) = source {
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(|e| io::Error::new(e.kind(), format!("bind source address {src}: {e}")))?;
    }
    if let Some(key) = &opts.md5_key {
        set_md5(fd, peer.ip(), Some(key))
            .map_err(|e| io::Error::new(e.kind(), format!("TCP MD5 for {}: {e}", peer.ip())))?;
    }
    set_ttl(fd, peer.is_ipv6(), opts.ttl, opts.min_ttl)?;
    set_notsent_lowat(fd)?;
    let stream = socket.connect(peer).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A listening socket on `addr` (`[::]` is dual-stack), with SO_REUSEADDR, TTL / hop limit
/// 255 for its SYN-ACKs and the SYN headers of every connection saved for [`syn_ttl`].
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    let fd = socket.as_raw_fd();
    socket.set_reuseaddr(true)?;
    if addr.is_ipv6() {
        let off: libc::c_int = 0;
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &off)?;
    }
    // The SYN-ACK leaves before the connection is ours to configure: 255 reaches every peer
    // (a GTSM peer drops less); each accepted stream then gets its peer's TTL.
    set_ttl(fd, addr.is_ipv6(), 255, None)?;
    let on: libc::c_int = 1;
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_SAVE_SYN, &on)?;
    socket.bind(addr)?;
    socket.listen(64)
}

/// An address as the peer table knows it: IPv4-mapped IPv6 (from a dual-stack listener)
/// becomes IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_syn_ttl_reads_ipv4_ttl_and_ipv6_hop_limit() {
        // IPv4 header: version/IHL 0x45, TTL at offset 8.
        let mut v4 = [0u8; 40];
        v4[0] = 0x45;
        v4[8] = 254;
        assert_eq!(saved_syn_ttl(&v4), Some(254));
        // IPv6 header: version 6 in the top nibble, hop limit at offset 7.
        let mut v6 = [0u8; 60];
        v6[0] = 0x60;
        v6[7] = 1;
        assert_eq!(saved_syn_ttl(&v6), Some(1));
        assert_eq!(saved_syn_ttl(&[]), None);
        assert_eq!(saved_syn_ttl(&[0x45, 0, 0]), None);
        assert_eq!(saved_syn_ttl(&[0x20; 40]), None);
    }

    /// On loopback a SYN arrives with the sender's TTL: the listener saved it, and the
    /// accepted stream reports it once.
    #[tokio::test]
    async fn listener_saves_the_syn_ttl_of_each_connection() {
        for (bind, ttl) in [("127.0.0.1:0", 77u8), ("[::1]:0", 200u8)] {
            let addr: SocketAddr = bind.parse().unwrap();
            let Ok(l) = listen(addr) else {
                eprintln!("SKIPPED for {bind}: cannot listen there");
                continue;
            };
            let to = l.local_addr().unwrap();
            let opts = SocketOptions {
                ttl,
                min_ttl: None,
                md5_key: None,
            };
            let (client, accepted) = tokio::join!(connect(to, None, &opts), l.accept());
            let _client = client.unwrap();
            let (stream, _) = accepted.unwrap();
            assert_eq!(syn_ttl(&stream).unwrap(), ttl, "{bind}");
            // The kernel hands the saved headers out once.
            assert!(syn_ttl(&stream).is_err());
        }
    }
}
