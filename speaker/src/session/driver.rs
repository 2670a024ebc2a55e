//! The per-peer task: owns one `bgp::peer::Peer` and carries out what it asks — connects,
//! sends, disconnects, timers — and feeds it what happens: connections, decoded messages,
//! closes. Sessions going up or down and received routes go to the RIB; the peer's
//! `PeerStatus` is kept current for the API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bgp::fsm::{ConnId, DownReason, Input, Output, State};
use bgp::peer::Peer;
use bgp::wire::{Message, Update};
use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::conn::{self, ReadEvent, WriteCmd, WriteEnded, CLOSE_FLUSH_TIMEOUT};
use super::socket;
use super::{PeerSpec, PeerStatus, RibHandle, SessionInfo};

/// Frames a reader may queue before it waits for the driver (backpressure on the peer).
const READ_QUEUE: usize = 16;

/// Commands to a peer's task.
pub enum PeerCmd {
    /// An inbound connection from the peer's address (already checked by the listener).
    Inbound(TcpStream),
    /// ManualStop with Cease / Administrative Shutdown; the reply comes once the
    /// NOTIFICATION is written (or the flush timed out). The task then ends.
    Shutdown {
        message: String,
        done: oneshot::Sender<()>,
    },
}

/// The agent's handle on a running peer task.
pub struct PeerHandle {
    pub spec: PeerSpec,
    pub status: Arc<RwLock<PeerStatus>>,
    pub cmd: mpsc::UnboundedSender<PeerCmd>,
    pub task: JoinHandle<()>,
}

impl PeerHandle {
    /// A copy of the current status.
    pub fn status(&self) -> PeerStatus {
        match self.status.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Start the task of one peer (it sends ManualStart at once).
pub fn spawn_peer(spec: PeerSpec, rib: Arc<dyn RibHandle>) -> PeerHandle {
    let status = Arc::new(RwLock::new(PeerStatus::new(&spec)));
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let driver = Driver::new(spec.clone(), rib, status.clone());
    let task = tokio::spawn(driver.run(cmd_rx));
    PeerHandle {
        spec,
        status,
        cmd: cmd_tx,
        task,
    }
}

struct Conn {
    write: mpsc::UnboundedSender<WriteCmd>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    local: SocketAddr,
    remote: SocketAddr,
}

enum ConnectResult {
    Ok(ConnId, TcpStream),
    Failed(ConnId, std::io::Error),
}

struct Driver {
    spec: PeerSpec,
    peer: Peer,
    rib: Arc<dyn RibHandle>,
    status: Arc<RwLock<PeerStatus>>,
    conns: HashMap<ConnId, Conn>,
    pending: HashMap<ConnId, JoinHandle<()>>,
    next_inbound: u64,
    read_tx: mpsc::Sender<ReadEvent>,
    read_rx: mpsc::Receiver<ReadEvent>,
    connect_tx: mpsc::UnboundedSender<ConnectResult>,
    connect_rx: mpsc::UnboundedReceiver<ConnectResult>,
    write_done_tx: mpsc::UnboundedSender<WriteEnded>,
    write_done_rx: mpsc::UnboundedReceiver<WriteEnded>,
    /// Writers of connections being closed, to wait for at shutdown.
    closing: Vec<JoinHandle<()>>,
    /// The last socket-level error, to explain a bare "connection closed".
    last_io_error: Option<String>,
    out: Vec<Output>,
}

impl Driver {
    fn new(spec: PeerSpec, rib: Arc<dyn RibHandle>, status: Arc<RwLock<PeerStatus>>) -> Driver {
        let (read_tx, read_rx) = mpsc::channel(READ_QUEUE);
        let (connect_tx, connect_rx) = mpsc::unbounded_channel();
        let (write_done_tx, write_done_rx) = mpsc::unbounded_channel();
        Driver {
            peer: Peer::new(spec.fsm.clone()),
            spec,
            rib,
            status,
            conns: HashMap::new(),
            pending: HashMap::new(),
            next_inbound: 1,
            read_tx,
            read_rx,
            connect_tx,
            connect_rx,
            write_done_tx,
            write_done_rx,
            closing: Vec::new(),
            last_io_error: None,
            out: Vec::new(),
        }
    }

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<PeerCmd>) {
        tracing::info!(peer = %self.spec.address, "starting peer (AS{} -> AS{})",
            self.spec.fsm.local_as, self.spec.fsm.peer_as);
        self.input(Input::Start);
        loop {
            let deadline = self.peer.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(PeerCmd::Inbound(stream)) => self.inbound(stream),
                    Some(PeerCmd::Shutdown { message, done }) => {
                        self.shutdown(message).await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.shutdown("bgplane agent stopped".into()).await;
                        return;
                    }
                },
                Some(ev) = self.read_rx.recv() => self.read_event(ev),
                Some(res) = self.connect_rx.recv() => self.connect_result(res),
                Some(ended) = self.write_done_rx.recv() => self.write_ended(ended),
                _ = sleep_until(deadline) => {
                    let now = Instant::now();
                    let mut out = std::mem::take(&mut self.out);
                    self.peer.handle_timeout_into(now, &mut out);
                    self.carry_out(out);
                }
            }
        }
    }

    fn input(&mut self, input: Input) {
        let mut out = std::mem::take(&mut self.out);
        self.peer.handle_into(Instant::now(), input, &mut out);
        self.carry_out(out);
    }

    fn inbound(&mut self, stream: TcpStream) {
        let id = ConnId::inbound(self.next_inbound);
        self.next_inbound += 1;
        if let Some(min) = self.spec.socket.min_ttl {
            // RFC 5082: a segment below the minimum is dropped, the SYN included. The listener
            // cannot filter for us when it also serves non-GTSM peers, so check the TTL the
            // SYN arrived with before anything is read from the connection.
            let rejected = match socket::syn_ttl(&stream) {
                Ok(ttl) if ttl >= min => None,
                Ok(ttl) => Some(format!(
                    "GTSM: inbound connection from {} arrived with TTL {ttl}, below the minimum {min}: closed",
                    self.spec.address
                )),
                Err(e) => Some(format!(
                    "GTSM: cannot read the TTL of the inbound SYN from {} ({e}): closed",
                    self.spec.address
                )),
            };
            if let Some(text) = rejected {
                tracing::warn!(peer = %self.spec.address, conn = %id, "{text}");
                self.with_status(|s| s.last_error = Some(text));
                return;
            }
        }
        if let Err(e) = socket::apply_stream(&stream, &self.spec.socket) {
            tracing::warn!(peer = %self.spec.address, "socket options on inbound connection: {e}");
            return;
        }
        tracing::debug!(peer = %self.spec.address, conn = %id, "inbound connection");
        if self.attach(id, stream) {
            self.input(Input::Connected(id));
        }
    }

    /// Spawn the reader and writer of a new connection.
    fn attach(&mut self, id: ConnId, stream: TcpStream) -> bool {
        let (Ok(local), Ok(remote)) = (stream.local_addr(), stream.peer_addr()) else {
            return false;
        };
        let (rd, wr) = stream.into_split();
        let (wtx, wrx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(conn::reader(id, rd, self.read_tx.clone()));
        let writer = tokio::spawn(conn::writer(
            id,
            wr,
            wrx,
            self.rib.clone(),
            self.write_done_tx.clone(),
        ));
        self.conns.insert(
            id,
            Conn {
                write: wtx,
                reader,
                writer,
                local,
                remote,
            },
        );
        true
    }

    fn connect_result(&mut self, res: ConnectResult) {
        match res {
            ConnectResult::Ok(id, stream) => {
                if self.pending.remove(&id).is_none() {
                    return; // abandoned attempt
                }
                tracing::debug!(peer = %self.spec.address, conn = %id, "connected");
                if self.attach(id, stream) {
                    self.input(Input::Connected(id));
                } else {
                    self.input(Input::Closed(id));
                }
            }
            ConnectResult::Failed(id, e) => {
                if self.pending.remove(&id).is_none() {
                    return;
                }
                tracing::debug!(peer = %self.spec.address, conn = %id, "connect failed: {e}");
                self.last_io_error = Some(format!("connect to {}: {e}", self.spec.remote()));
                self.input(Input::Closed(id));
            }
        }
    }

    fn read_event(&mut self, ev: ReadEvent) {
        match ev {
            ReadEvent::Frames(id, frames) => {
                for frame in frames {
                    if !self.conns.contains_key(&id) {
                        return; // disconnected meanwhile: stop reading it
                    }
                    self.frame(id, frame);
                }
            }
            ReadEvent::Framing(id, e) => {
                if self.conns.contains_key(&id) {
                    tracing::warn!(peer = %self.spec.address, conn = %id, "bad message header: {e}");
                    self.input(Input::DecodeError(id, e));
                }
            }
            ReadEvent::Closed(id, e) => {
                if self.conns.contains_key(&id) {
                    if let Some(e) = e {
                        self.last_io_error = Some(format!("read: {e}"));
                    }
                    self.drop_conn(id);
                    self.input(Input::Closed(id));
                }
            }
        }
    }

    fn frame(&mut self, id: ConnId, frame: Bytes) {
        let cx = self.peer.decode_context(id);
        match Message::decode(&frame, &cx) {
            Ok(msg) => {
                if let Message::Notification(n) = &msg {
                    tracing::warn!(peer = %self.spec.address, "received NOTIFICATION: {}", n.describe());
                }
                self.input(Input::Message(id, msg));
            }
            Err(e) => {
                tracing::warn!(peer = %self.spec.address, conn = %id, "decode error: {e}");
                self.input(Input::DecodeError(id, e));
            }
        }
    }

    fn write_ended(&mut self, ended: WriteEnded) {
        if let Some(e) = ended.error {
            if self.conns.contains_key(&ended.conn) {
                self.last_io_error = Some(format!("write: {e}"));
                self.drop_conn(ended.conn);
                self.input(Input::Closed(ended.conn));
            }
        }
    }

    fn drop_conn(&mut self, id: ConnId) {
        self.closing.retain(|h| !h.is_finished());
        if let Some(c) = self.conns.remove(&id) {
            c.reader.abort();
            let _ = c.write.send(WriteCmd::Close);
            self.closing.push(abort_after(c.writer));
        }
    }

    /// Carry out FSM outputs (and whatever the RIB's answers add), then refresh the status.
    fn carry_out(&mut self, mut out: Vec<Output>) {
        let mut i = 0;
        while i < out.len() {
            let o = std::mem::replace(&mut out[i], Output::Disconnect(ConnId::inbound(0)));
            i += 1;
            match o {
                Output::Connect(id) => self.connect(id),
                Output::Send(id, msg) => self.send(id, &msg),
                Output::Disconnect(id) => {
                    if let Some(p) = self.pending.remove(&id) {
                        p.abort();
                    }
                    self.drop_conn(id);
                }
                Output::StateChange {
                    conn,
                    from,
                    to,
                    event,
                } => {
                    tracing::info!(peer = %self.spec.address, conn = ?conn.map(|c| c.to_string()),
                        "{from} -> {to} ({event})");
                }
                Output::Established(id, neg) => {
                    let Some(c) = self.conns.get(&id) else {
                        continue;
                    };
                    let info = SessionInfo {
                        negotiated: (*neg).clone(),
                        local: c.local,
                        remote: c.remote,
                    };
                    tracing::info!(peer = %self.spec.address, "Established: peer id {}, hold {} s, families {:?}",
                        neg.peer_id, neg.hold_time, neg.families);
                    self.rib.peer_up(self.spec.id, &info);
                    // RFC 4724 restart bit: only the first session after the agent started
                    // says "I restarted"; later reconnects do not.
                    let mut cfg = self.peer.config().clone();
                    if let Some(gr) = cfg.graceful_restart.as_mut().filter(|g| g.restarting) {
                        gr.restarting = false;
                        self.peer.set_config(cfg);
                    }
                    let _ = c.write.send(WriteCmd::StartBulk {
                        peer: self.spec.id,
                        cx: neg.encode_context(),
                    });
                    self.with_status(|s| {
                        s.established_at = Some(Instant::now());
                        s.peer_id = Some(neg.peer_id);
                        s.hold_time = Some(neg.hold_time);
                        s.families = neg.families.clone();
                        s.local = Some(info.local);
                        s.last_error = s.last_down.clone();
                    });
                }
                Output::UpdateReceived(_, update) => self.update(update, &mut out),
                Output::RouteRefreshReceived(_, rr) => {
                    tracing::info!(peer = %self.spec.address, "route refresh for {} ({:?})", rr.family, rr.subtype);
                    self.rib.route_refresh(self.spec.id, &rr);
                }
                Output::PeerDown(id, reason) => {
                    tracing::warn!(peer = %self.spec.address, conn = %id, "session down: {reason}");
                    self.rib.peer_down(self.spec.id, &reason);
                    let text = self.explain(&reason);
                    self.with_status(|s| {
                        s.established_at = None;
                        s.peer_id = None;
                        s.hold_time = None;
                        s.local = None;
                        s.flaps += 1;
                        s.last_error = Some(text.clone());
                        s.last_down = Some(text);
                    });
                }
                Output::AttemptFailed(id, reason) => {
                    tracing::info!(peer = %self.spec.address, conn = %id, "attempt failed: {reason}");
                    let text = self.explain(&reason);
                    self.with_status(|s| s.last_error = Some(text));
                }
            }
        }
        out.clear();
        self.out = out;
        let state = self.peer.state();
        self.with_status(|s| s.state = state);
    }

    /// The FSM's reason, with the socket error behind a bare close or timeout.
    fn explain(&self, reason: &DownReason) -> String {
        match (reason, &self.last_io_error) {
            (DownReason::ConnectionClosed | DownReason::ConnectTimeout, Some(io)) => {
                format!("{reason} ({io})")
            }
            _ => reason.to_string(),
        }
    }

    fn update(&mut self, update: Update, out: &mut Vec<Output>) {
        if let Err(max) = self.rib.update(self.spec.id, update) {
            tracing::warn!(peer = %self.spec.address,
                "more than {} prefixes of {}: Cease / Maximum Number of Prefixes Reached",
                max.limit, max.family);
            self.peer.handle_into(
                Instant::now(),
                Input::MaxPrefixExceeded {
                    family: max.family,
                    limit: max.limit,
                },
                out,
            );
        }
    }

    fn connect(&mut self, id: ConnId) {
        let remote = self.spec.remote();
        let source = self.spec.source;
        let opts = self.spec.socket.clone();
        let tx = self.connect_tx.clone();
        let task = tokio::spawn(async move {
            let res = match socket::connect(remote, source, &opts).await {
                Ok(s) => ConnectResult::Ok(id, s),
                Err(e) => ConnectResult::Failed(id, e),
            };
            let _ = tx.send(res);
        });
        self.pending.insert(id, task);
    }

    fn send(&mut self, id: ConnId, msg: &Message) {
        let Some(c) = self.conns.get(&id) else { return };
        let cx = self.peer.encode_context(id);
        let mut buf = BytesMut::new();
        match msg.encode(&cx, &mut buf) {
            Ok(()) => {
                if let Message::Notification(n) = msg {
                    tracing::warn!(peer = %self.spec.address, "sending NOTIFICATION: {}", n.describe());
                }
                let _ = c.write.send(WriteCmd::Send(buf.freeze()));
            }
            Err(e) => tracing::error!(peer = %self.spec.address, "cannot encode {msg:?}: {e}"),
        }
    }

    fn with_status(&self, f: impl FnOnce(&mut PeerStatus)) {
        let mut guard = match self.status.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard);
    }

    /// ManualStop (Cease / Administrative Shutdown), then wait for the writers to flush.
    async fn shutdown(&mut self, message: String) {
        let was_established = self.peer.state() == State::Established;
        self.input(Input::Stop {
            subcode: None,
            message: Some(message),
        });
        for (_, p) in self.pending.drain() {
            p.abort();
        }
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.drop_conn(id);
        }
        for w in self.closing.drain(..) {
            let _ = w.await;
        }
        tracing::info!(peer = %self.spec.address, was_established, "peer stopped");
    }
}

/// The writer of a closing connection gets `CLOSE_FLUSH_TIMEOUT` to finish, then is aborted.
fn abort_after(writer: JoinHandle<()>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let abort = writer.abort_handle();
        if tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, writer)
            .await
            .is_err()
        {
            abort.abort();
        }
    })
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
