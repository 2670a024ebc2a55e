//! Prefixes: the withdrawn-routes and NLRI fields (RFC 4271 §4.3) and the prefix lists inside
//! MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760 §5), each prefix preceded by a 4-octet path
//! identifier when ADD-PATH was negotiated for the family in this direction (RFC 7911 §3).
//!
//! Trailing bits: RFC 4271 §4.3 says the bits after the prefix length up to the octet boundary
//! are "irrelevant". They are therefore not an error: the decoder clears them (a prefix is
//! always its network address, as `IpNet::trunc` gives) and the encoder writes them as zero.
//!
//! Syntax errors (RFC 7606 §5.3): a prefix length above 32/128, or a prefix that overruns the
//! field. What they cost (session reset or AFI/SAFI disable) is decided by the caller, which
//! knows which field it is parsing.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// One prefix with its optional ADD-PATH path identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri {
    pub prefix: IpNet,
    /// Present exactly when ADD-PATH is negotiated for the family in this direction. When
    /// encoding under such a context, `None` is written as path id 0; otherwise it is ignored.
    pub path_id: Option<u32>,
}

impl Nlri {
    /// A prefix without path id; host bits are cleared.
    pub fn new(prefix: impl Into<IpNet>) -> Nlri {
        Nlri {
            prefix: prefix.into().trunc(),
            path_id: None,
        }
    }

    /// A prefix with an ADD-PATH path id; host bits are cleared.
    pub fn with_path_id(prefix: impl Into<IpNet>, path_id: u32) -> Nlri {
        Nlri {
            prefix: prefix.into().trunc(),
            path_id: Some(path_id),
        }
    }

    /// Encoded size in bytes under the given ADD-PATH setting.
    pub fn encoded_len(&self, add_path: bool) -> usize {
        usize::from(add_path) * 4 + 1 + usize::from(self.prefix.prefix_len()).div_ceil(8)
    }
}

/// A syntax error in a prefix list; `at` is the offset from the start of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NlriError {
    pub at: usize,
    pub reason: String,
}

/// Decode a whole prefix list of one address family (`v6` false: IPv4).
///
/// Two passes: the first validates and counts, so the result is allocated once with its exact
/// size (allocation is bounded by the input: at most one `Nlri` per input byte).
pub(crate) fn decode_prefixes(
    buf: &[u8],
    v6: bool,
    add_path: bool,
) -> Result<Vec<Nlri>, NlriError> {
    // Monomorphised per family and ADD-PATH setting: the per-prefix loop has no branches on
    // either.
    match (v6, add_path) {
        (false, false) => decode_list::<false, false>(buf),
        (false, true) => decode_list::<false, true>(buf),
        (true, false) => decode_list::<true, false>(buf),
        (true, true) => decode_list::<true, true>(buf),
    }
}

fn decode_list<const V6: bool, const ADD_PATH: bool>(buf: &[u8]) -> Result<Vec<Nlri>, NlriError> {
    let (v6, add_path) = (V6, ADD_PATH);
    let max_bits: u8 = if v6 { 128 } else { 32 };
    let id_len = if add_path { 4 } else { 0 };
    let mut count = 0usize;
    let mut pos = 0usize;
    while pos < buf.len() {
        let len_at = pos + id_len;
        let Some(&bits) = buf.get(len_at) else {
            return Err(NlriError {
                at: pos,
                reason: format!(
                    "{} bytes left, too few for a path id and prefix length",
                    buf.len() - pos
                ),
            });
        };
        if bits > max_bits {
            return Err(NlriError {
                at: len_at,
                reason: format!("prefix length {bits} exceeds {max_bits}"),
            });
        }
        let end = len_at + 1 + usize::from(bits).div_ceil(8);
        if end > buf.len() {
            return Err(NlriError {
                at: len_at,
                reason: format!(
                    "prefix of length {bits} needs {} bytes, {} left",
                    end - len_at - 1,
                    buf.len() - len_at - 1
                ),
            });
        }
        pos = end;
        count += 1;
    }
    let mut out = Vec::with_capacity(count);
    let mut rest = buf;
    // The first pass proved every entry is whole; the `else` arms below are unreachable but
    // keep this loop free of panicking indexing.
    while !rest.is_empty() {
        let path_id = if add_path {
            let Some((id, r)) = rest.split_first_chunk::<4>() else {
                break;
            };
            rest = r;
            Some(u32::from_be_bytes(*id))
        } else {
            None
        };
        let Some((&bits, r)) = rest.split_first() else {
            break;
        };
        if bits > max_bits {
            break;
        }
        let n = usize::from(bits).div_ceil(8);
        let Some((bytes, r)) = r.split_at_checked(n) else {
            break;
        };
        rest = r;
        let prefix = if v6 {
            let mut o = [0u8; 16];
            o[..n].copy_from_slice(bytes);
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            let addr = Ipv6Addr::from(u128::from_be_bytes(o) & mask);
            match Ipv6Net::new(addr, bits) {
                Ok(p) => IpNet::V6(p),
                Err(_) => break,
            }
        } else {
            let mut o = [0u8; 4];
            o[..n].copy_from_slice(bytes);
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            let addr = Ipv4Addr::from(u32::from_be_bytes(o) & mask);
            match Ipv4Net::new(addr, bits) {
                Ok(p) => IpNet::V4(p),
                Err(_) => break,
            }
        };
        out.push(Nlri { prefix, path_id });
    }
    Ok(out)
}

/// Encode a prefix list. Each prefix is written in its own family's layout: keeping IPv4
/// prefixes in IPv4 fields is the caller's part.
pub(crate) fn encode_prefixes(list: &[Nlri], add_path: bool, out: &mut BytesMut) {
    for n in list {
        if add_path {
            out.put_u32(n.path_id.unwrap_or(0));
        }
        let bits = n.prefix.prefix_len();
        let len = usize::from(bits).div_ceil(8);
        out.put_u8(bits);
        match n.prefix {
            IpNet::V4(p) => out.put_slice(&p.network().octets()[..len]),
            IpNet::V6(p) => out.put_slice(&p.network().octets()[..len]),
        }
    }
}
