//! The network-namespace lab harness: real routers (FRR, BIRD, GoBGP, ExaBGP) in namespaces
//! that a test creates and always removes.
//!
//! A test makes a [`Lab`] (the guard: names, address block, cleanup), adds [`Node`]s
//! (namespaces), connects them with [`Lab::link`] or a shared [`Segment`], starts routers from a
//! [`RouterConfig`] ([`Frr`], [`Bird`], [`GoBgp`], [`ExaBgp`]) or any program as a [`Process`]
//! (tcpdump), runs `bgplane agent` through [`Bgplane`] (a [`BgplaneConfig`] -> its YAML), and
//! inspects them through [`BgpRouter`] and the bgplane CLI. See README.md.

pub mod bgp;
pub mod bgplane;
pub mod bird;
pub mod exabgp;
pub mod frr;
pub mod gobgp;
pub mod lab;
pub mod process;
pub mod wait;

pub use bgp::{
    AddPath, Announce, BgpRouter, Community, Family, LargeCommunity, Neighbor, Origin, PeerInfo,
    Route, RouterConfig, SessionState,
};
pub use bgplane::{Bgplane, BgplaneConfig, BgplanePeer, Rib, Ttl};
pub use bird::Bird;
pub use exabgp::ExaBgp;
pub use frr::Frr;
pub use gobgp::GoBgp;
pub use lab::{find_binary, missing_capabilities, AddrFamily, Iface, Lab, Link, Node, Segment};
pub use process::Process;
pub use wait::{holds_for, wait_for, wait_until, Check};
