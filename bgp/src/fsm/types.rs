//! The FSM's vocabulary: states, RFC 4271 §8.1 events, connection ids, and the inputs a
//! runtime feeds in and the outputs it carries out.

use std::fmt;

use crate::negotiate::Negotiated;
use crate::wire::{DecodeError, Family, Message, Notification, RouteRefresh, Update};

/// RFC 4271 §8.2.2 session states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    /// The RFC name, as `bgplane peers` shows it.
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }

    /// How far a connection got: used to pick the state to report for a peer with two
    /// connections (collision) — the more advanced one.
    pub(crate) fn progress(self) -> u8 {
        match self {
            State::Idle => 0,
            State::Active => 1,
            State::Connect => 2,
            State::OpenSent => 3,
            State::OpenConfirm => 4,
            State::Established => 5,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// RFC 4271 §8.1 events, numbered as in the RFC. Carried by `Output::StateChange` so logs say
/// which event moved the session. Not modelled: 6/7 (DampPeerOscillations), 12 and 20
/// (DelayOpen), 14/15 (TCP connection validity: the runtime only hands over connections from
/// the configured peer address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// 1
    ManualStart,
    /// 2
    ManualStop,
    /// 3
    AutomaticStart,
    /// 4
    ManualStartWithPassiveTcpEstablishment,
    /// 5
    AutomaticStartWithPassiveTcpEstablishment,
    /// 8 (max-prefix and other local decisions to end an Established session)
    AutomaticStop,
    /// 9
    ConnectRetryTimerExpires,
    /// 10
    HoldTimerExpires,
    /// 11
    KeepaliveTimerExpires,
    /// 13 (the backoff delay before an automatic restart after a failure)
    IdleHoldTimerExpires,
    /// 16: our outbound connection completed
    TcpCrAcked,
    /// 17: an inbound connection from the peer was accepted
    TcpConnectionConfirmed,
    /// 18
    TcpConnectionFails,
    /// 19
    BgpOpen,
    /// 21
    BgpHeaderErr,
    /// 22
    BgpOpenMsgErr,
    /// 23
    OpenCollisionDump,
    /// 24: NOTIFICATION with OPEN error / Unsupported Version
    NotifMsgVerErr,
    /// 25
    NotifMsg,
    /// 26
    KeepAliveMsg,
    /// 27
    UpdateMsg,
    /// 28
    UpdateMsgErr,
    /// ROUTE-REFRESH received (RFC 2918; not an RFC 4271 event)
    RouteRefreshMsg,
    /// A message that is not allowed in the current state (RFC 6608 FSM error)
    UnexpectedMsg,
    /// The peer sent a new OPEN on a new connection while the old session was Established and
    /// had negotiated graceful restart (RFC 4724 §4.2): the old session is over.
    PeerRestarted,
}

impl Event {
    /// The RFC 4271 name.
    pub fn name(self) -> &'static str {
        match self {
            Event::ManualStart => "ManualStart",
            Event::ManualStop => "ManualStop",
            Event::AutomaticStart => "AutomaticStart",
            Event::ManualStartWithPassiveTcpEstablishment => {
                "ManualStart_with_PassiveTcpEstablishment"
            }
            Event::AutomaticStartWithPassiveTcpEstablishment => {
                "AutomaticStart_with_PassiveTcpEstablishment"
            }
            Event::AutomaticStop => "AutomaticStop",
            Event::ConnectRetryTimerExpires => "ConnectRetryTimer_Expires",
            Event::HoldTimerExpires => "HoldTimer_Expires",
            Event::KeepaliveTimerExpires => "KeepaliveTimer_Expires",
            Event::IdleHoldTimerExpires => "IdleHoldTimer_Expires",
            Event::TcpCrAcked => "Tcp_CR_Acked",
            Event::TcpConnectionConfirmed => "TcpConnectionConfirmed",
            Event::TcpConnectionFails => "TcpConnectionFails",
            Event::BgpOpen => "BGPOpen",
            Event::BgpHeaderErr => "BGPHeaderErr",
            Event::BgpOpenMsgErr => "BGPOpenMsgErr",
            Event::OpenCollisionDump => "OpenCollisionDump",
            Event::NotifMsgVerErr => "NotifMsgVerErr",
            Event::NotifMsg => "NotifMsg",
            Event::KeepAliveMsg => "KeepAliveMsg",
            Event::UpdateMsg => "UpdateMsg",
            Event::UpdateMsgErr => "UpdateMsgErr",
            Event::RouteRefreshMsg => "RouteRefreshMsg",
            Event::UnexpectedMsg => "UnexpectedMsg",
            Event::PeerRestarted => "PeerRestarted",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who opened a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// We connected to the peer (after `Output::Connect`).
    Outbound,
    /// The peer connected to us (the runtime accepted it).
    Inbound,
}

/// Names one TCP connection of a peer. Outbound ids are chosen by the FSM and handed out in
/// `Output::Connect`; inbound ids are chosen by the runtime (`ConnId::inbound(n)` with any
/// numbering unique per peer). The direction is part of the id, so the two never clash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub direction: Direction,
    pub seq: u64,
}

impl ConnId {
    pub fn inbound(seq: u64) -> ConnId {
        ConnId {
            direction: Direction::Inbound,
            seq,
        }
    }

    pub(crate) fn outbound(seq: u64) -> ConnId {
        ConnId {
            direction: Direction::Outbound,
            seq,
        }
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.direction {
            Direction::Outbound => write!(f, "out#{}", self.seq),
            Direction::Inbound => write!(f, "in#{}", self.seq),
        }
    }
}

/// Everything a runtime feeds into the FSM (timers excepted: `handle_timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// ManualStart (1), or ManualStart_with_PassiveTcpEstablishment (4) when the config is
    /// passive. Enables automatic restarts after failures until `Stop`.
    Start,
    /// ManualStop (2): end the session with a Cease NOTIFICATION (subcode default
    /// Administrative Shutdown, 6/2; the RFC 9003 message is attached for 6/2 and 6/4) and
    /// stay Idle until the next `Start`.
    Stop {
        subcode: Option<u8>,
        message: Option<String>,
    },
    /// Tcp_CR_Acked (16) for an outbound id from `Output::Connect`, or TcpConnectionConfirmed
    /// (17) for an inbound connection the runtime accepted from the peer's address.
    Connected(ConnId),
    /// TcpConnectionFails (18): an outbound attempt failed, or an open connection was closed
    /// or broke (read error, EOF, write error).
    Closed(ConnId),
    /// One decoded message from the connection: BGPOpen (19), NotifMsg (25) / NotifMsgVerErr
    /// (24), KeepAliveMsg (26), UpdateMsg (27), ROUTE-REFRESH.
    Message(ConnId, Message),
    /// The codec refused a message: BGPHeaderErr (21), BGPOpenMsgErr (22), UpdateMsgErr (28)
    /// by its code. The FSM sends the error's NOTIFICATION and closes.
    DecodeError(ConnId, DecodeError),
    /// AutomaticStop (8) asked by the RIB: the peer sent more prefixes of `family` than
    /// `limit`. Sends Cease / Maximum Number of Prefixes Reached (6/1) with data AFI (2),
    /// SAFI (1), limit (4) (RFC 4486 §4) and stays Idle until the next `Start`.
    MaxPrefixExceeded { family: Family, limit: u32 },
}

/// Why a connection (or an Established session) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We sent this NOTIFICATION (our stop, a hold-timer expiry, an error in what the peer sent).
    NotificationSent(Notification),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// TCP failed or closed without a NOTIFICATION.
    ConnectionClosed,
    /// The outbound attempt did not connect before the ConnectRetryTimer expired.
    ConnectTimeout,
    /// A new session from the same peer replaced this one (graceful restart, RFC 4724 §4.2).
    PeerRestarted,
    /// `Stop` before any BGP message was exchanged: closed without a NOTIFICATION.
    Stopped,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::NotificationSent(n) => write!(f, "sent {}", n.describe()),
            DownReason::NotificationReceived(n) => write!(f, "received {}", n.describe()),
            DownReason::ConnectionClosed => f.write_str("connection closed"),
            DownReason::ConnectTimeout => f.write_str("connect timed out"),
            DownReason::PeerRestarted => f.write_str("peer restarted (new connection)"),
            DownReason::Stopped => f.write_str("stopped"),
        }
    }
}

/// Everything the FSM asks of its runtime, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to the peer and report it with this id: `Input::Connected` on
    /// success, `Input::Closed` on failure.
    Connect(ConnId),
    /// Encode (with `encode_context`) and write this message on the connection.
    Send(ConnId, Message),
    /// Close the connection after writing everything sent so far (or abort a pending connect).
    /// Feed nothing more for this id; a later `Input::Closed` for it is ignored.
    Disconnect(ConnId),
    /// The session changed state because of `event`.
    StateChange {
        conn: Option<ConnId>,
        from: State,
        to: State,
        event: Event,
    },
    /// The session is Established with these parameters (decode / encode contexts, families,
    /// GR, ...). Decode every later message of `conn` with `negotiated.decode_context()`.
    Established(ConnId, Box<Negotiated>),
    /// UpdateMsg (27) in Established: for the RIB.
    UpdateReceived(ConnId, Update),
    /// The peer asks us to re-send our Adj-RIB-Out (or marks BoRR/EoRR), for a negotiated family.
    RouteRefreshReceived(ConnId, RouteRefresh),
    /// The Established session on `conn` ended: the RIB drops (or, with GR, marks stale) its
    /// routes.
    PeerDown(ConnId, DownReason),
    /// A connection that never reached Established ended (for logs and `last_error`).
    AttemptFailed(ConnId, DownReason),
}
