//! The agent's local REST/JSON API on a unix socket (default [`DEFAULT_SOCKET`]), served by a
//! deliberately tiny HTTP/1.1 implementation (one GET per connection, `Connection: close`),
//! and the blocking client the CLI uses.
//!
//! - `GET /v1/peers` -> `[PeerJson]`
//! - `GET /v1/routes/received?peer=ADDR&family=ipv4|ipv6` -> `[RouteJson]`
//! - `GET /v1/routes/advertised?peer=ADDR&family=ipv4|ipv6` -> `[RouteJson]`
//! - `GET /v1/services` -> `ServicesJson` (404 when the agent runs without `--datapath`)
//!
//! Errors are `{"error": "..."}` with status 400 (bad query), 404 (unknown path or peer) or
//! 405 (not GET).

mod client;
mod http;
mod server;
pub mod types;

pub use client::{get, routes_path, ClientError};
pub use server::{serve, ApiSource, RouteKind, RouteQuery, DATAPATH_OFF};
pub use types::{
    ApplyJson, BackendJson, CountersJson, Counts, DatapathErrorJson, DatapathJson, ErrorJson,
    FrontendJson, PeerJson, RouteJson, ServiceJson, ServicesJson,
};

/// Where the agent listens and the CLI connects unless `--socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/bgplane/bgplane.sock";
