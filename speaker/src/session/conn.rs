//! One TCP connection's two tasks. The reader splits the stream into messages with
//! `wire::frame_len` and hands whole frames to the peer's driver (which decodes them: only it
//! knows the context of the next message). The writer sends control messages first and pulls
//! UPDATEs from the RIB in bounded chunks in between; a control message that arrives while a
//! chunk is being written goes out as soon as the UPDATE in progress is complete, and the
//! kernel holds at most `socket::NOTSENT_LOWAT` unsent bytes ahead of it, so keepalives never
//! starve behind a large send to a slow reader.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bgp::fsm::ConnId;
use bgp::wire::{frame_len, Context, DecodeError, MAX_EXTENDED_LEN};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::{PeerId, RibHandle};

/// Most UPDATE bytes pulled from the RIB at once.
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

/// UPDATE bytes pulled from the RIB (whole messages) and how far they are written. A
/// control message may only go out between two messages, so the writer tracks where the
/// message being written ends.
struct Pending {
    buf: BytesMut,
    /// Bytes of `buf` already written.
    off: usize,
    /// Start of the first message of `buf` not yet completely written (`buf.len()` when all
    /// are).
    msg_start: usize,
}

impl Pending {
    fn new() -> Pending {
        Pending {
            buf: BytesMut::with_capacity(BULK_CHUNK + 4096),
            off: 0,
            msg_start: 0,
        }
    }

    fn is_done(&self) -> bool {
        self.off >= self.buf.len()
    }

    /// Nothing of a message is half written: a control message may go now.
    fn at_boundary(&self) -> bool {
        self.off == self.msg_start
    }

    /// End of the message starting at `start` (from its header's length field; whatever is
    /// left when the header is short or wrong, so a bad length never splits a write).
    fn end_of(&self, start: usize) -> usize {
        let len = self
            .buf
            .get(start + 16..start + 18)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .filter(|&l| l >= bgp::wire::HEADER_LEN);
        match len {
            Some(l) => (start + l).min(self.buf.len()),
            None => self.buf.len(),
        }
    }

    /// End of the message being written.
    fn message_end(&self) -> usize {
        self.end_of(self.msg_start)
    }

    fn advance(&mut self, n: usize) {
        self.off += n;
        while self.msg_start < self.buf.len() && self.end_of(self.msg_start) <= self.off {
            self.msg_start = self.end_of(self.msg_start);
        }
    }

    fn refill(&mut self, pull: impl FnOnce(&mut BytesMut)) {
        self.buf.clear();
        self.off = 0;
        self.msg_start = 0;
        pull(&mut self.buf);
    }
}

type Bulk = Option<(PeerId, Context, Arc<tokio::sync::Notify>)>;

/// Queue one command; true when it is `Close`.
fn take(cmd: WriteCmd, ctrl: &mut VecDeque<Bytes>, bulk: &mut Bulk, rib: &dyn RibHandle) -> bool {
    match cmd {
        WriteCmd::Send(b) => ctrl.push_back(b),
        WriteCmd::StartBulk { peer, cx } => *bulk = Some((peer, cx, rib.waker(peer))),
        WriteCmd::Close => return true,
    }
    false
}

/// The writer proper. Control messages are written as soon as the message in progress is
/// complete: the UPDATE bytes are written with partial writes that stop at the end of the
/// current message whenever a control message waits, and the socket keeps at most
/// `socket::NOTSENT_LOWAT` unsent bytes (`TCP_NOTSENT_LOWAT`), so a KEEPALIVE is never
/// queued behind more than that plus one message, however slowly the peer reads.
async fn write_loop(
    wr: &mut OwnedWriteHalf,
    rx: &mut mpsc::UnboundedReceiver<WriteCmd>,
    rib: &dyn RibHandle,
) -> std::io::Result<()> {
    let mut bulk: Bulk = None;
    let mut ctrl: VecDeque<Bytes> = VecDeque::new();
    let mut out = Pending::new();
    loop {
        loop {
            match rx.try_recv() {
                Ok(cmd) => {
                    if take(cmd, &mut ctrl, &mut bulk, rib) {
                        return close(wr, rx, &mut out, ctrl).await;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return Ok(()),
            }
        }
        if !ctrl.is_empty() && out.at_boundary() {
            while let Some(b) = ctrl.pop_front() {
                wr.write_all(&b).await?;
            }
            continue;
        }
        if out.is_done() {
            // One bounded chunk of UPDATEs at a time.
            if let Some((peer, cx, _)) = &bulk {
                out.refill(|buf| rib.pull(*peer, cx, BULK_CHUNK, buf));
                if !out.is_done() {
                    continue;
                }
            }
            let waker = bulk.as_ref().map(|(_, _, w)| w.clone());
            tokio::select! {
                biased;
                cmd = rx.recv() => match cmd {
                    Some(cmd) => {
                        if take(cmd, &mut ctrl, &mut bulk, rib) {
                            return close(wr, rx, &mut out, ctrl).await;
                        }
                    }
                    None => return Ok(()),
                },
                _ = async { match &waker { Some(w) => w.notified().await, None => std::future::pending().await } } => {}
            }
            continue;
        }
        // Some of the chunk: only up to the end of this message when a control message waits.
        let end = if ctrl.is_empty() {
            out.buf.len()
        } else {
            out.message_end()
        };
        let ev = tokio::select! {
            biased;
            cmd = rx.recv() => Err(cmd),
            n = wr.write(&out.buf[out.off..end]) => Ok(n),
        };
        match ev {
            Err(Some(cmd)) => {
                if take(cmd, &mut ctrl, &mut bulk, rib) {
                    return close(wr, rx, &mut out, ctrl).await;
                }
            }
            Err(None) => return Ok(()),
            Ok(n) => match n? {
                0 => return Err(std::io::ErrorKind::WriteZero.into()),
                n => out.advance(n),
            },
        }
    }
}

/// After `Close` (nothing more is queued behind it by the driver): finish the message in
/// progress, then write the control messages (a NOTIFICATION) and any stragglers, within
/// `CLOSE_FLUSH_TIMEOUT`.
async fn close(
    wr: &mut OwnedWriteHalf,
    rx: &mut mpsc::UnboundedReceiver<WriteCmd>,
    out: &mut Pending,
    mut ctrl: VecDeque<Bytes>,
) -> std::io::Result<()> {
    let flush = async {
        if !out.at_boundary() {
            let end = out.message_end();
            wr.write_all(&out.buf[out.off..end]).await?;
        }
        while let Ok(cmd) = rx.try_recv() {
            if let WriteCmd::Send(b) = cmd {
                ctrl.push_back(b);
            }
        }
        for b in ctrl {
            wr.write_all(&b).await?;
        }
        wr.flush().await
    };
    tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, flush)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "flush timed out"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk of three messages (19, 23 and 30 bytes), junk in the bodies.
    fn chunk() -> Pending {
        let mut p = Pending::new();
        p.refill(|buf| {
            for len in [19u16, 23, 30] {
                let mut m = vec![0xa5u8; usize::from(len)];
                m[16..18].copy_from_slice(&len.to_be_bytes());
                buf.extend_from_slice(&m);
            }
        });
        p
    }

    #[test]
    fn pending_tracks_message_boundaries_across_partial_writes() {
        let mut p = chunk();
        assert!(p.at_boundary() && !p.is_done());
        assert_eq!(p.message_end(), 19);
        p.advance(5); // inside the first message
        assert!(!p.at_boundary());
        assert_eq!(p.message_end(), 19);
        p.advance(14); // exactly its end
        assert!(p.at_boundary());
        assert_eq!(p.message_end(), 42);
        p.advance(30); // past the second message, into the third
        assert!(!p.at_boundary());
        assert_eq!(p.message_end(), 72);
        p.advance(23);
        assert!(p.at_boundary() && p.is_done());
    }

    #[test]
    fn pending_treats_a_bad_length_as_the_rest_of_the_chunk() {
        let mut p = Pending::new();
        p.refill(|buf| buf.extend_from_slice(&[0u8; 40])); // length field 0
        assert_eq!(p.message_end(), 40);
        p.advance(10);
        assert!(!p.at_boundary());
        p.advance(30);
        assert!(p.at_boundary() && p.is_done());
    }
}
