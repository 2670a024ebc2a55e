//! The API server: accepts on a unix socket, answers each GET from an [`ApiSource`].

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bgp::wire::Family;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::http::{self, MAX_HEAD};
use super::types::{parse_family, ErrorJson, PeerJson, RouteJson, ServicesJson};

/// Which side of a peering's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Adj-RIB-In: what the peer sent us.
    Received,
    /// Adj-RIB-Out: what we sent the peer.
    Advertised,
}

/// A routes query: every peer / family when `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteQuery {
    pub kind: RouteKind,
    pub peer: Option<IpAddr>,
    pub family: Option<Family>,
}

/// The 404 of `GET /v1/services` when the agent runs without the service load balancer.
pub const DATAPATH_OFF: &str = "the service load balancer is off (start the agent with --datapath)";

/// What the API shows; implemented by the agent.
pub trait ApiSource: Send + Sync + 'static {
    fn peers(&self) -> Vec<PeerJson>;
    /// `Err` (404) when `query.peer` is not a configured peer.
    fn routes(&self, query: &RouteQuery) -> Result<Vec<RouteJson>, String>;
    /// `Err` (404) when the agent runs without the service load balancer.
    fn services(&self) -> Result<ServicesJson, String> {
        Err(DATAPATH_OFF.into())
    }
}

/// Bind `path` (replacing a stale socket file, creating the directory) and serve until the
/// task is aborted.
pub fn serve(path: &Path, source: Arc<dyn ApiSource>) -> std::io::Result<JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let source = source.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, source.as_ref()).await {
                            tracing::debug!("API connection: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("API accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

async fn handle(mut stream: UnixStream, source: &dyn ApiSource) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if head.len() > MAX_HEAD {
                return Ok(false);
            }
        }
    };
    let complete = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or(Ok(false))?;
    let (status, body) = if complete {
        answer(&head, source)
    } else {
        error(400, "incomplete or oversized request head")
    };
    stream.write_all(&http::response(status, &body)).await?;
    stream.shutdown().await
}

fn error(status: u16, msg: impl Into<String>) -> (u16, Vec<u8>) {
    let body = serde_json::to_vec(&ErrorJson { error: msg.into() }).unwrap_or_default();
    (status, body)
}

fn json<T: serde::Serialize>(v: &T) -> (u16, Vec<u8>) {
    match serde_json::to_vec_pretty(v) {
        Ok(b) => (200, b),
        Err(e) => error(500, format!("cannot serialise the answer: {e}")),
    }
}

/// Route one request (pure: easy to test).
pub fn answer(head: &[u8], source: &dyn ApiSource) -> (u16, Vec<u8>) {
    let req = match http::parse_request(head) {
        Ok(r) => r,
        Err(e) => return error(400, e),
    };
    if req.method != "GET" {
        return error(405, format!("{} is not supported; only GET", req.method));
    }
    let kind = match req.path.as_str() {
        "/v1/peers" => return json(&source.peers()),
        "/v1/services" => {
            return match source.services() {
                Ok(s) => json(&s),
                Err(e) => error(404, e),
            }
        }
        "/v1/routes/received" => RouteKind::Received,
        "/v1/routes/advertised" => RouteKind::Advertised,
        other => return error(404, format!("no such path {other:?}")),
    };
    let peer = match req.query.get("peer").filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => match p.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => return error(400, format!("peer={p:?} is not an IP address")),
        },
    };
    let family = match req.query.get("family").filter(|f| !f.is_empty()) {
        None => None,
        Some(f) => match parse_family(f) {
            Some(f) => Some(f),
            None => return error(400, format!("family={f:?}: expected ipv4 or ipv6")),
        },
    };
    for k in req.query.keys() {
        if k != "peer" && k != "family" {
            return error(400, format!("unknown query parameter {k:?} (peer, family)"));
        }
    }
    match source.routes(&RouteQuery { kind, peer, family }) {
        Ok(routes) => json(&routes),
        Err(e) => error(404, e),
    }
}
