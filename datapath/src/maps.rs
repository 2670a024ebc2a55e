//! `#[repr(C)]` mirrors of `bpf/include/lb_abi.h` (layout version 3), checked field by field
//! against the C layout with const asserts, and a thin typed handle over a pinned map's fd.
//!
//! Conventions (as in the C header): addresses are 16 bytes in network byte order with IPv4
//! stored IPv4-mapped; fields ending in `_be` are network byte order; padding is explicit and
//! always zero, because hash keys compare every byte.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv6Addr};

/// The layout version every map name carries (`_v3`).
pub const LAYOUT_VERSION: u32 = 3;

/// Map names (and pin file names) of layout version 3.
pub mod names {
    pub const SVC: &str = "lb_svc_v3";
    pub const SLOT: &str = "lb_slot_v3";
    pub const BACKEND: &str = "lb_backend_v3";
    pub const COUNTERS: &str = "lb_svc_ctr_v3";
    pub const CT: &str = "lb_ct_v3";
    pub const AFFINITY: &str = "lb_affinity_v3";
    pub const SRCRANGE: &str = "lb_srcrange_v3";
    pub const SOCK_REV: &str = "lb_sock_rev_v3";
    /// Every map of this layout, in the order the writer opens them.
    pub const ALL: [&str; 8] = [
        SVC, SLOT, BACKEND, COUNTERS, CT, AFFINITY, SRCRANGE, SOCK_REV,
    ];
}

/// `union lb_addr`: 16 bytes, IPv4 as `::ffff:a.b.c.d`.
#[repr(C, align(4))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LbAddr(pub [u8; 16]);

impl LbAddr {
    pub fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => LbAddr(v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => LbAddr(v6.octets()),
        }
    }

    /// The address, IPv4-mapped ones as IPv4.
    pub fn to_ip(self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }
}

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

pub const KIND_CLUSTER_IP: u8 = 1;
pub const KIND_NODE_PORT: u8 = 2;
pub const KIND_LOAD_BALANCER: u8 = 3;
pub const KIND_EXTERNAL_IP: u8 = 4;

pub const SVC_F_MAGLEV: u16 = 1 << 0;
pub const SVC_F_AFFINITY: u16 = 1 << 1;
pub const SVC_F_SRC_RANGE: u16 = 1 << 2;
pub const SVC_F_DROP_EMPTY: u16 = 1 << 3;

/// `LB_SLOTS_PER_ENTRY`: backend ids per element of `lb_slot_v3`.
pub const SLOTS_PER_ENTRY: usize = 16;

pub const BE_F_LOCAL: u8 = 1 << 0;
pub const BE_F_TERMINATING: u8 = 1 << 1;
pub const BE_F_VALID: u8 = 1 << 2;

pub const CT_FWD: u8 = 0;
pub const CT_REPLY: u8 = 1;
pub const CT_F_SNAT: u16 = 1 << 0;
pub const CT_F_ESTABLISHED: u16 = 1 << 1;
pub const CT_F_FIN_FWD: u16 = 1 << 2;
pub const CT_F_FIN_REV: u16 = 1 << 3;
pub const CT_F_RST: u16 = 1 << 4;

pub const AFF_CLIENT_IP: u8 = 0;
pub const AFF_NETNS: u8 = 1;
pub const AFF_SOCKET: u8 = 2;

/// `struct lb_svc_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SvcKey {
    pub addr: LbAddr,
    pub port_be: u16,
    pub proto: u8,
    pub pad: u8,
}

/// `struct lb_svc_val`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SvcVal {
    pub svc_id: u32,
    pub count: u32,
    pub slot_base: u32,
    pub affinity_timeout_s: u32,
    pub maglev_base: u32,
    pub maglev_size: u32,
    pub flags: u16,
    pub kind: u8,
    pub pad: u8,
}

/// `struct lb_slots`: one element of `lb_slot_v3` (user space sees the array as flat `u32`s).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Slots {
    pub backend_id: [u32; SLOTS_PER_ENTRY],
}

/// `struct lb_backend_val` (key: `u32` backend id).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BackendVal {
    pub addr: LbAddr,
    pub port_be: u16,
    pub flags: u8,
    pub pad: u8,
    pub pad2: u32,
}

/// `struct lb_svc_counters`: one CPU's counters of one service (key: `u32` service id).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SvcCounters {
    pub packets: u64,
    pub bytes: u64,
    pub connections: u64,
    pub dropped: u64,
}

impl SvcCounters {
    /// Adds another CPU's counters.
    pub fn add(&mut self, o: &SvcCounters) {
        self.packets = self.packets.wrapping_add(o.packets);
        self.bytes = self.bytes.wrapping_add(o.bytes);
        self.connections = self.connections.wrapping_add(o.connections);
        self.dropped = self.dropped.wrapping_add(o.dropped);
    }
}

/// `struct lb_ct_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtKey {
    pub saddr: LbAddr,
    pub daddr: LbAddr,
    pub sport_be: u16,
    pub dport_be: u16,
    pub proto: u8,
    pub dir: u8,
    pub pad: [u8; 2],
}

/// `struct lb_ct_val`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CtVal {
    pub vip_addr: LbAddr,
    pub nat_addr: LbAddr,
    pub vip_port_be: u16,
    pub nat_port_be: u16,
    pub backend_id: u32,
    pub svc_id: u32,
    pub flags: u16,
    pub pad: [u8; 2],
    pub last_seen_ns: u64,
    /// `bpf_ktime_get_ns()` after which the entry is no entry.
    pub expires_ns: u64,
}

/// `struct lb_affinity_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AffinityKey {
    pub client: LbAddr,
    pub svc_id: u32,
    pub by: u8,
    pub pad: [u8; 3],
}

/// `struct lb_affinity_val`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AffinityVal {
    pub last_used_ns: u64,
    pub backend_id: u32,
    pub pad: u32,
}

/// `struct lb_srcrange_key` (LPM trie key; value: one `u8`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SrcRangeKey {
    pub prefixlen: u32,
    pub svc_id: u32,
    pub addr: LbAddr,
}

/// `struct lb_sock_rev_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SockRevKey {
    pub cookie: u64,
    pub addr: LbAddr,
    pub port_be: u16,
    pub pad: [u8; 6],
}

/// `struct lb_sock_rev_val`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockRevVal {
    pub addr: LbAddr,
    pub port_be: u16,
    pub pad: [u8; 2],
}

/// Plain old data: `#[repr(C)]`, every bit pattern valid, no implicit padding (the asserts
/// below prove the last point by summing field sizes).
///
/// # Safety
/// Implement only for such types.
pub unsafe trait Pod: Copy + Default + 'static {}

macro_rules! pod {
    ($($t:ty),* $(,)?) => {
        $(
            unsafe impl Pod for $t {}
            // SAFETY: the same property aya asks for.
            unsafe impl aya::Pod for $t {}
        )*
    };
}
pod!(
    LbAddr,
    SvcKey,
    SvcVal,
    Slots,
    BackendVal,
    SvcCounters,
    CtKey,
    CtVal,
    AffinityKey,
    AffinityVal,
    SrcRangeKey,
    SockRevKey,
    SockRevVal
);
unsafe impl Pod for u32 {}
unsafe impl Pod for u8 {}

/// `size_of` and `offset_of` of every mirror, as `bpf/include/lb_abi.h` has them (the C side
/// `_Static_assert`s the same sizes).
macro_rules! layout {
    ($t:ty, $size:expr, { $($field:ident : $off:expr),* $(,)? }) => {
        const _: () = assert!(size_of::<$t>() == $size);
        $( const _: () = assert!(offset_of!($t, $field) == $off); )*
    };
}
layout!(LbAddr, 16, {});
layout!(SvcKey, 20, { addr: 0, port_be: 16, proto: 18, pad: 19 });
layout!(SvcVal, 28, {
    svc_id: 0, count: 4, slot_base: 8, affinity_timeout_s: 12, maglev_base: 16,
    maglev_size: 20, flags: 24, kind: 26, pad: 27,
});
layout!(Slots, 64, { backend_id: 0 });
layout!(BackendVal, 24, { addr: 0, port_be: 16, flags: 18, pad: 19, pad2: 20 });
layout!(SvcCounters, 32, { packets: 0, bytes: 8, connections: 16, dropped: 24 });
layout!(CtKey, 40, { saddr: 0, daddr: 16, sport_be: 32, dport_be: 34, proto: 36, dir: 37, pad: 38 });
layout!(CtVal, 64, {
    vip_addr: 0, nat_addr: 16, vip_port_be: 32, nat_port_be: 34, backend_id: 36, svc_id: 40,
    flags: 44, pad: 46, last_seen_ns: 48, expires_ns: 56,
});
layout!(AffinityKey, 24, { client: 0, svc_id: 16, by: 20, pad: 21 });
layout!(AffinityVal, 16, { last_used_ns: 0, backend_id: 8, pad: 12 });
layout!(SrcRangeKey, 24, { prefixlen: 0, svc_id: 4, addr: 8 });
layout!(SockRevKey, 32, { cookie: 0, addr: 8, port_be: 24, pad: 26 });
layout!(SockRevVal, 20, { addr: 0, port_be: 16, pad: 18 });

pub(crate) fn as_bytes<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: T is Pod (no padding, no pointers), so its bytes are initialised.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

pub(crate) fn slice_as_bytes<T: Pod>(v: &[T]) -> &[u8] {
    // SAFETY: as above, for a contiguous slice.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lb_addr_maps_ipv4_and_round_trips() {
        let v4: IpAddr = "10.99.1.2".parse().unwrap();
        let a = LbAddr::from_ip(v4);
        assert_eq!(&a.0[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(&a.0[12..], &[10, 99, 1, 2]);
        assert_eq!(a.to_ip(), v4);
        let v6: IpAddr = "fd00:99::1".parse().unwrap();
        assert_eq!(LbAddr::from_ip(v6).to_ip(), v6);
    }

    #[test]
    fn layout_matches_the_c_abi_header() {
        // The C header's _Static_assert sizes, read from the header itself, so a change on one
        // side without the other fails here and not in the kernel.
        let header = include_str!("../../bpf/include/lb_abi.h");
        let sizes = [
            ("union lb_addr", size_of::<LbAddr>()),
            ("struct lb_svc_key", size_of::<SvcKey>()),
            ("struct lb_svc_val", size_of::<SvcVal>()),
            ("struct lb_slots", size_of::<Slots>()),
            ("struct lb_backend_val", size_of::<BackendVal>()),
            ("struct lb_svc_counters", size_of::<SvcCounters>()),
            ("struct lb_ct_key", size_of::<CtKey>()),
            ("struct lb_ct_val", size_of::<CtVal>()),
            ("struct lb_affinity_key", size_of::<AffinityKey>()),
            ("struct lb_affinity_val", size_of::<AffinityVal>()),
            ("struct lb_srcrange_key", size_of::<SrcRangeKey>()),
            ("struct lb_sock_rev_key", size_of::<SockRevKey>()),
            ("struct lb_sock_rev_val", size_of::<SockRevVal>()),
        ];
        for (name, size) in sizes {
            let needle = format!("_Static_assert(sizeof({name}) == {size},");
            assert!(header.contains(&needle), "lb_abi.h lacks `{needle}`");
        }
        assert!(header.contains(&format!("#define LB_LAYOUT_VERSION {LAYOUT_VERSION}\n")));
        assert!(header.contains(&format!("#define LB_SLOTS_PER_ENTRY {SLOTS_PER_ENTRY}\n")));
        for name in names::ALL {
            assert!(name.ends_with(&format!("_v{LAYOUT_VERSION}")));
            assert!(
                name.len() < 16,
                "{name}: kernel map names hold 15 characters"
            );
        }
    }
}
