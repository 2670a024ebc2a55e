//! The CLI's side of the API: one blocking GET over the unix socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::http;
use super::types::ErrorJson;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the bgplane agent at {path}: {source} (is `bgplane agent` running? --socket sets the path)")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the agent at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the agent answered something that is not HTTP: {0}")]
    Protocol(String),
    #[error("the agent refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the agent's answer is not the expected JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// GET `path_and_query` and decode the JSON body as `T`.
pub fn get<T: serde::de::DeserializeOwned>(
    socket: &Path,
    path_and_query: &str,
) -> Result<T, ClientError> {
    let mut s = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.to_path_buf(),
        source,
    })?;
    let io = |source| ClientError::Io {
        path: socket.to_path_buf(),
        source,
    };
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    let req =
        format!("GET {path_and_query} HTTP/1.1\r\nHost: bgplane\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(io)?;
    let (status, body) = http::parse_response(&raw).map_err(ClientError::Protocol)?;
    if status != 200 {
        let message = serde_json::from_slice::<ErrorJson>(body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
        return Err(ClientError::Refused { status, message });
    }
    Ok(serde_json::from_slice(body)?)
}

/// Build `/v1/routes/KIND?peer=..&family=..`.
pub fn routes_path(kind: &str, peer: Option<&str>, family: Option<&str>) -> String {
    let mut q = Vec::new();
    if let Some(p) = peer {
        q.push(format!("peer={}", http::percent_encode(p)));
    }
    if let Some(f) = family {
        q.push(format!("family={}", http::percent_encode(f)));
    }
    if q.is_empty() {
        format!("/v1/routes/{kind}")
    } else {
        format!("/v1/routes/{kind}?{}", q.join("&"))
    }
}
