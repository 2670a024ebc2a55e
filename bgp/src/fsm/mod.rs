//! The RFC 4271 §8 BGP finite state machine, sans-IO: no sockets, no clock, no runtime.
//! Time is an input (`Instant`s passed in), timers are deadlines the runtime polls, and
//! everything the FSM wants done comes out as `Output` values, in order.
//!
//! Two layers:
//! - [`Fsm`]: one connection slot with every RFC 4271 state (Idle, Connect, Active, OpenSent,
//!   OpenConfirm, Established) and event (RFC names on [`Event`]). Usable on its own when a
//!   peer never has two connections at once.
//! - [`crate::peer::Peer`]: what a runtime should drive. It owns up to two `Fsm`s (the main
//!   one and a second for an inbound connection that arrives while the main one has a
//!   connection) and resolves connection collisions (RFC 4271 §6.8) by BGP identifier. Same
//!   `Input`/`Output` types, same methods.
//!
//! # Driving it (the runtime's contract)
//! - `handle(now, input) -> Vec<Output>` for every event; `handle_timeout(now)` whenever
//!   `poll_timeout()` (the earliest running timer) has passed. After every call, re-read
//!   `poll_timeout()`: timers are not announced as outputs, the deadline simply moves.
//! - `Output::Connect(id)`: open a TCP connection to the peer; report `Input::Connected(id)`
//!   or `Input::Closed(id)`. Accepted inbound connections are reported as
//!   `Input::Connected(ConnId::inbound(n))` with the runtime's own numbering.
//! - Bytes read from a connection: split with `wire::frame_len`, then for each message in
//!   order decode with `peer.decode_context(id)` *asked again for every message* (it changes
//!   when OPENs have been exchanged) and feed `Input::Message(id, msg)` or
//!   `Input::DecodeError(id, err)`. Stop reading a connection once `Disconnect(id)` came out.
//! - `Output::Send(id, msg)`: encode with `peer.encode_context(id)` and write.
//!   `Output::Disconnect(id)`: flush what was sent (a NOTIFICATION usually precedes it), close.
//! - `Output::Established(id, negotiated)`, `UpdateReceived`, `RouteRefreshReceived`,
//!   `PeerDown(id, reason)` are for the RIB; `StateChange` and `AttemptFailed` for logs and
//!   the peers API.
//! - UPDATEs from the Adj-RIB-Out are written by the runtime directly (encode context from
//!   `Output::Established`). The keepalive timer runs on its own cadence regardless.
//! - Outbound connection ids come from the FSM; a connection it no longer owns is ignored, so
//!   late reports of abandoned attempts are harmless.
//!
//! Retry policy: failures do not hammer the peer. Each attempt that does not reach
//! Established doubles the retry delay (`Config::retry`, default 2 s up to 120 s, no jitter);
//! the delay is used as the IdleHoldTimer before an automatic restart and as the
//! ConnectRetryTimer (connect timeout / Active wait); it is back to the minimum on
//! Established. While waiting in Idle an inbound connection from the peer is accepted.
//!
//! ```
//! use std::time::Instant;
//! use bgp::fsm::{Config, Input, Output};
//! use bgp::peer::Peer;
//!
//! let mut peer = Peer::new(Config::new(65001, 65002, "10.99.0.1".parse().unwrap()));
//! let now = Instant::now();
//! let out = peer.handle(now, Input::Start);
//! let Output::Connect(conn) = out[0] else { panic!("{out:?}") };
//! // ... the runtime connects; on success:
//! let out = peer.handle(now, Input::Connected(conn));
//! assert!(matches!(&out[0], Output::Send(c, bgp::wire::Message::Open(_)) if *c == conn));
//! assert_eq!(peer.state(), bgp::fsm::State::OpenSent);
//! // the 4-minute OpenSent hold timer is now the next deadline:
//! assert_eq!(peer.poll_timeout(), Some(now + std::time::Duration::from_secs(240)));
//! ```

mod config;
mod machine;
mod timers;
mod types;
mod validate;

pub use config::{
    Backoff, Config, ConfigError, GracefulRestartConfig, DEFAULT_HOLD_TIME, OPEN_HOLD_TIME,
};
pub use machine::Fsm;
pub use types::{ConnId, Direction, DownReason, Event, Input, Output, State};
pub use validate::{check_open, OpenRefused};
