//! Crafted Ethernet/IPv4/IPv6/TCP/UDP packets, and a parser that checks every checksum by
//! recomputing it from scratch.

use std::net::IpAddr;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// The ones'-complement sum of `data` as 16-bit big-endian words (an odd tail padded with 0),
/// added to `acc`.
pub fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        acc += w as u32;
    }
    acc
}

/// Folds a sum from `sum16` to 16 bits and complements it: 0 for a region whose checksum is
/// right.
pub fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    let mut acc = 0;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum16(&s.octets(), acc);
            acc = sum16(&d.octets(), acc);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            acc = sum16(&s.octets(), acc);
            acc = sum16(&d.octets(), acc);
        }
        _ => panic!("mixed families"),
    }
    acc + proto as u32 + len as u32
}

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// Builds eth + IP + TCP (SYN) or UDP with correct checksums.
pub fn build(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
    payload: &[u8],
) -> Vec<u8> {
    build_flags(src, dst, sport, dport, proto, SYN, payload)
}

/// Builds eth + IP + TCP with these TCP flags (ignored for UDP), correct checksums.
pub fn build_flags(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
    tcp_flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    let csum_at;
    if proto == TCP {
        l4.extend_from_slice(&0x01020304u32.to_be_bytes()); // seq
        l4.extend_from_slice(&0u32.to_be_bytes()); // ack
        l4.extend_from_slice(&[0x50, tcp_flags]); // data offset 5
        l4.extend_from_slice(&65535u16.to_be_bytes());
        csum_at = 16;
        l4.extend_from_slice(&[0, 0, 0, 0]); // csum, urg
    } else {
        l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        csum_at = 6;
        l4.extend_from_slice(&[0, 0]);
    }
    l4.extend_from_slice(payload);
    let c = fold(sum16(&l4, pseudo(src, dst, proto, l4.len())));
    let c = if proto == UDP && c == 0 { 0xffff } else { c };
    l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());

    let mut p = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            ip.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let c = fold(sum16(&ip, 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            p.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&0x86ddu16.to_be_bytes());
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            p.extend_from_slice(&[proto, 64]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    p.extend_from_slice(&l4);
    p
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

/// Parses a packet `build` made (after the program rewrote it) and asserts that the IPv4
/// header checksum and the TCP/UDP checksum are right for the packet as it now is.
pub fn parse_checked(p: &[u8]) -> Parsed {
    let ethertype = u16::from_be_bytes([p[12], p[13]]);
    let (src, dst, proto, l4): (IpAddr, IpAddr, u8, &[u8]) = if ethertype == 0x0800 {
        let ip = &p[14..34];
        assert_eq!(
            fold(sum16(ip, 0)),
            0,
            "IPv4 header checksum is wrong: {ip:02x?}"
        );
        let len = u16::from_be_bytes([ip[2], ip[3]]) as usize;
        let s: [u8; 4] = ip[12..16].try_into().unwrap();
        let d: [u8; 4] = ip[16..20].try_into().unwrap();
        (s.into(), d.into(), ip[9], &p[34..14 + len])
    } else {
        assert_eq!(ethertype, 0x86dd);
        let ip = &p[14..54];
        let len = u16::from_be_bytes([ip[4], ip[5]]) as usize;
        let s: [u8; 16] = ip[8..24].try_into().unwrap();
        let d: [u8; 16] = ip[24..40].try_into().unwrap();
        (s.into(), d.into(), ip[6], &p[54..54 + len])
    };
    let csum_at = if proto == TCP { 16 } else { 6 };
    let stored = u16::from_be_bytes([l4[csum_at], l4[csum_at + 1]]);
    if !(proto == UDP && stored == 0 && src.is_ipv4()) {
        assert_eq!(
            fold(sum16(l4, pseudo(src, dst, proto, l4.len()))),
            0,
            "L4 checksum {stored:#06x} is wrong for {src}:{} -> {dst}:{}",
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]])
        );
    }
    Parsed {
        src,
        dst,
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dport: u16::from_be_bytes([l4[2], l4[3]]),
    }
}
