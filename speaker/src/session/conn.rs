//! One TCP connection's two tasks. The reader splits the stream into messages with
//! `wire::frame_len` and hands whole frames to the peer's driver (which decodes them: only it
//! knows the context of the next message). The writer sends control messages first and pulls
//! UPDATEs from the RIB in bounded chunks in between, so keepalives never starve.

use std::sync::Arc;
use std::time::Duration;

use bgp::fsm::ConnId;
use bgp::wire::{frame_len, Context, DecodeError, MAX_EXTENDED_LEN};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::{PeerId, RibHandle};

/// Largest amount of UPDATE bytes written between two looks at the control queue.
pub const BULK_CHUNK: usize = 64 * 1024;
/// How long a closing connection may take to flush what was queued before it is dropped.
pub const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// What a reader reports to its peer's driver.
#[derive(Debug)]
pub enum ReadEvent {
    /// Whole messages, in order (header included, not yet decoded).
    Frames(ConnId, Vec<Bytes>),
    /// The stream is out of sync: a bad header (BGPHeaderErr). Nothing more follows.
    Framing(ConnId, DecodeError),
    /// EOF or a read error. Nothing more follows.
    Closed(ConnId, Option<std::io::Error>),
}

/// Read `conn` until EOF, error, or until the driver drops the receiver.
pub async fn reader(conn: ConnId, mut rd: OwnedReadHalf, tx: mpsc::Sender<ReadEvent>) {
    let mut buf = BytesMut::with_capacity(BULK_CHUNK * 2);
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(BULK_CHUNK);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) => {
                let _ = tx.send(ReadEvent::Closed(conn, None)).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(ReadEvent::Closed(conn, Some(e))).await;
                return;
            }
        }
        let mut frames = Vec::new();
        let mut framing_error = None;
        loop {
            // The driver re-checks the length against the negotiated maximum when decoding.
            match frame_len(&buf, MAX_EXTENDED_LEN) {
                Ok(Some(n)) => frames.push(buf.split_to(n).freeze()),
                Ok(None) => break,
                Err(e) => {
                    framing_error = Some(e);
                    break;
                }
            }
        }
        if !frames.is_empty() && tx.send(ReadEvent::Frames(conn, frames)).await.is_err() {
            return;
        }
        if let Some(e) = framing_error {
            let _ = tx.send(ReadEvent::Framing(conn, e)).await;
            return;
        }
    }
}

/// Commands for a writer task.
pub enum WriteCmd {
    /// An encoded control message: written before any further UPDATE chunk.
    Send(Bytes),
    /// The session is Established: from now on pull UPDATEs for `peer` encoded with `cx`.
    StartBulk { peer: PeerId, cx: Context },
    /// Write what is queued, then close the connection.
    Close,
}

/// What a writer reports when it stops.
#[derive(Debug)]
pub struct WriteEnded {
    pub conn: ConnId,
    /// `None`: closed as asked (or the driver went away).
    pub error: Option<std::io::Error>,
}

/// Write control messages and RIB chunks to `wr` until `Close` or an error.
pub async fn writer(
    conn: ConnId,
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<WriteCmd>,
    rib: Arc<dyn RibHandle>,
    done: mpsc::UnboundedSender<WriteEnded>,
) {
    let error = write_loop(&mut wr, &mut rx, rib.as_ref()).await.err();
    if error.is_none() {
        let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, wr.shutdown()).await;
    }
    let _ = done.send(WriteEnded { conn, error });
}

async fn write_loop(
    wr: &mut OwnedWriteHalf,
    rx: &mut mpsc::UnboundedReceiver<WriteCmd>,
    rib: &dyn RibHandle,
) -> std::io::Result<()> {
    let mut bulk: Option<(PeerId, Context, Arc<tokio::sync::Notify>)> = None;
    let mut chunk = BytesMut::with_capacity(BULK_CHUNK + 4096);
    loop {
        // Control messages first, all of them.
        loop {
            match rx.try_recv() {
                Ok(WriteCmd::Send(b)) => wr.write_all(&b).await?,
                Ok(WriteCmd::StartBulk { peer, cx }) => {
                    bulk = Some((peer, cx, rib.waker(peer)));
                }
                Ok(WriteCmd::Close) => return flush_close(wr, rx).await,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return Ok(()),
            }
        }
        // Then one bounded chunk of UPDATEs.
        if let Some((peer, cx, _)) = &bulk {
            chunk.clear();
            rib.pull(*peer, cx, BULK_CHUNK, &mut chunk);
            if !chunk.is_empty() {
                wr.write_all(&chunk).await?;
                continue;
            }
        }
        let waker = bulk.as_ref().map(|(_, _, w)| w.clone());
        tokio::select! {
            biased;
            cmd = rx.recv() => match cmd {
                Some(WriteCmd::Send(b)) => wr.write_all(&b).await?,
                Some(WriteCmd::StartBulk { peer, cx }) => bulk = Some((peer, cx, rib.waker(peer))),
                Some(WriteCmd::Close) => return flush_close(wr, rx).await,
                None => return Ok(()),
            },
            _ = async { match &waker { Some(w) => w.notified().await, None => std::future::pending().await } } => {}
        }
    }
}

/// After `Close`: nothing more is queued behind it by the driver, but write any stragglers.
async fn flush_close(
    wr: &mut OwnedWriteHalf,
    rx: &mut mpsc::UnboundedReceiver<WriteCmd>,
) -> std::io::Result<()> {
    while let Ok(cmd) = rx.try_recv() {
        if let WriteCmd::Send(b) = cmd {
            tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, wr.write_all(&b))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "flush timed out")
                })??;
        }
    }
    wr.flush().await
}
