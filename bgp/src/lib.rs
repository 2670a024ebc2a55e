//! bgplane's BGP-4 protocol core, sans-IO: it owns the wire codec (`wire`), and later the
//! RFC 4271 FSM and the RIB. It never touches sockets, clocks or an async runtime; the `speaker`
//! crate drives it.

pub mod fsm;
pub mod negotiate;
pub mod peer;
pub mod rib;
#[cfg(feature = "synth")]
pub mod synth;
pub mod wire;
