//! Socket plumbing for BGP connections: the listening socket, outbound connects with a bound
//! source address, and the per-socket options a BGP session needs — TCP MD5 signatures
//! (RFC 2385, `TCP_MD5SIG`), the outgoing TTL / hop limit (eBGP single-hop 1, multihop N) and
//! GTSM's minimum incoming TTL (RFC 5082, `IP_MINTTL` / `IPV6_MINHOPCOUNT`). Only this file
//! calls `setsockopt`.

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
        let min = libc::c_int::from(min);
        if v6 {
            setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &min)?;
            let _ = setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &min);
        } else {
            setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &min)?;
        }
    }
    Ok(())
}

/// Options for an accepted (or connected) stream.
pub fn apply_stream(stream: &TcpStream, opts: &SocketOptions) -> io::Result<()> {
    let v6 = stream.local_addr()?.is_ipv6();
    set_ttl(stream.as_raw_fd(), v6, opts.ttl, opts.min_ttl)?;
    stream.set_nodelay(true)
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
    let stream = socket.connect(peer).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A listening socket on `addr` (`[::]` is dual-stack), with SO_REUSEADDR.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    socket.set_reuseaddr(true)?;
    if addr.is_ipv6() {
        let off: libc::c_int = 0;
        setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            &off,
        )?;
    }
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
