//! The RFC 4271 §8.2.2 state machine for one connection slot of a peer: what each event does
//! in each state. DelayOpen and DampPeerOscillations are not implemented; the IdleHoldTimer
//! carries the doubling restart delay instead.

use std::time::{Duration, Instant};

use super::config::Config;
use super::timers::{BackoffState, Timers};
use super::types::{ConnId, DownReason, Event, Input, Output, State};
use super::validate::check_open;
use crate::negotiate::{negotiate, our_open, Negotiated};
use crate::wire::error::{cease_sub, code, fsm_sub};
use crate::wire::{Context, DecodeError, Message, Notification, Open, RefreshSubtype};

/// Upper bound of timer events handled in one `handle_timeout` call, so a zero-length timer
/// (a misconfigured zero backoff) cannot spin forever.
const MAX_TIMER_EVENTS: usize = 16;

/// The FSM of one BGP connection slot. Driven by `handle` and `handle_timeout`; see the module
/// docs of `fsm` for the contract.
#[derive(Debug, Clone)]
pub struct Fsm {
    config: Config,
    state: State,
    /// The connection this FSM owns: a pending outbound attempt in Connect, the TCP connection
    /// from OpenSent on.
    conn: Option<ConnId>,
    /// Started and not stopped: failures lead to an automatic restart (after the backoff).
    admin_up: bool,
    /// PassiveTcpEstablishment in effect (the config's, or forced for a collision secondary).
    passive: bool,
    timers: Timers,
    backoff: BackoffState,
    next_outbound: u64,
    /// RFC 4271 ConnectRetryCounter: failed attempts since the last ManualStart/Established.
    connect_retry_counter: u32,
    /// The OPEN we sent on `conn`.
    sent_open: Option<Open>,
    /// From the peer's valid OPEN on (OpenConfirm, Established).
    negotiated: Option<Negotiated>,
    last_error: Option<DownReason>,
}

impl Fsm {
    /// A stopped FSM (Idle): nothing happens until `Input::Start` (or an inbound connection,
    /// which an Idle FSM refuses while stopped).
    pub fn new(config: Config) -> Fsm {
        let backoff = BackoffState::new(config.retry);
        Fsm {
            passive: config.passive,
            config,
            state: State::Idle,
            conn: None,
            admin_up: false,
            timers: Timers::default(),
            backoff,
            next_outbound: 0,
            connect_retry_counter: 0,
            sent_open: None,
            negotiated: None,
            last_error: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The connection this FSM owns now, if any.
    pub fn conn(&self) -> Option<ConnId> {
        self.conn
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replace the config. Takes effect for the next connection (the next OPEN we send);
    /// a running session keeps what it negotiated. Used e.g. to clear the GR restart bit.
    pub fn set_config(&mut self, config: Config) {
        self.backoff.set_bounds(config.retry);
        if !self.passive || self.config.passive {
            self.passive = config.passive;
        }
        self.config = config;
    }

    /// What the session negotiated, from OpenConfirm on.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Whether the session is Established and wants our routes (true only in Established).
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Context to decode the next message from `conn`. Ask for it before decoding each
    /// message: it changes when the session reaches OpenConfirm.
    pub fn decode_context(&self) -> Context {
        self.negotiated
            .as_ref()
            .map(Negotiated::decode_context)
            .unwrap_or_default()
    }

    /// Context to encode a message for `conn`.
    pub fn encode_context(&self) -> Context {
        self.negotiated
            .as_ref()
            .map(Negotiated::encode_context)
            .unwrap_or_default()
    }

    /// RFC 4271 ConnectRetryCounter.
    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    /// Why the last connection or session ended.
    pub fn last_error(&self) -> Option<&DownReason> {
        self.last_error.as_ref()
    }

    /// The delay the next retry after a failure will use.
    pub fn next_retry_delay(&self) -> Duration {
        self.backoff.peek()
    }

    /// When `handle_timeout` must be called next; `None` = no timer running.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest()
    }

    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.handle_into(now, input, &mut out);
        out
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        self.handle_timeout_into(now, &mut out);
        out
    }

    /// Like `handle`, appending to the caller's buffer.
    pub fn handle_into(&mut self, now: Instant, input: Input, out: &mut Vec<Output>) {
        match input {
            Input::Start => self.manual_start(now, out),
            Input::Stop { subcode, message } => self.manual_stop(now, subcode, message, out),
            Input::Connected(conn) => self.on_connected(now, conn, out),
            Input::Closed(conn) => self.on_closed(now, conn, out),
            Input::Message(conn, msg) => {
                if self.owns_connected(conn) {
                    self.on_message(now, msg, out);
                }
            }
            Input::DecodeError(conn, err) => {
                if self.owns_connected(conn) {
                    self.on_decode_error(now, err, out);
                }
            }
            Input::MaxPrefixExceeded { family, limit } => {
                if self.state >= State::OpenSent {
                    let mut data = Vec::with_capacity(7);
                    data.extend_from_slice(&family.afi.0.to_be_bytes());
                    data.push(family.safi.0);
                    data.extend_from_slice(&limit.to_be_bytes());
                    let n = Notification::new(code::CEASE, cease_sub::MAX_PREFIXES, data);
                    // AutomaticStop (8): no automatic restart; the operator restarts it.
                    self.admin_up = false;
                    self.notify_and_close(now, Event::AutomaticStop, n, false, out);
                }
            }
        }
    }

    /// Like `handle_timeout`, appending to the caller's buffer.
    pub fn handle_timeout_into(&mut self, now: Instant, out: &mut Vec<Output>) {
        for _ in 0..MAX_TIMER_EVENTS {
            let Some(event) = self.timers.take_expired(now) else {
                return;
            };
            self.on_timer(now, event, out);
        }
    }

    // ---- administrative events ----

    /// ManualStart (1) / ManualStart_with_PassiveTcpEstablishment (4).
    fn manual_start(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.admin_up = true;
        if self.state != State::Idle {
            return; // RFC 4271: ignored in every other state.
        }
        self.backoff.reset();
        self.connect_retry_counter = 0;
        let event = if self.passive {
            Event::ManualStartWithPassiveTcpEstablishment
        } else {
            Event::ManualStart
        };
        self.start(now, event, out);
    }

    /// From Idle: Connect (initiate TCP) or, passive, Active (wait for the peer).
    fn start(&mut self, now: Instant, event: Event, out: &mut Vec<Output>) {
        self.timers.idle_hold = None;
        if self.passive {
            self.set_state(State::Active, event, out);
        } else {
            self.begin_connect(now, out);
            self.set_state(State::Connect, event, out);
        }
    }

    fn begin_connect(&mut self, now: Instant, out: &mut Vec<Output>) {
        let id = ConnId::outbound(self.next_outbound);
        self.next_outbound += 1;
        self.conn = Some(id);
        out.push(Output::Connect(id));
        self.timers.connect_retry = Some(now + self.backoff.peek());
    }

    /// ManualStop (2).
    fn manual_stop(
        &mut self,
        now: Instant,
        subcode: Option<u8>,
        message: Option<String>,
        out: &mut Vec<Output>,
    ) {
        self.admin_up = false;
        self.timers.idle_hold = None;
        self.connect_retry_counter = 0;
        match self.state {
            State::Idle => {}
            State::Connect | State::Active => {
                self.close(
                    now,
                    Event::ManualStop,
                    DownReason::Stopped,
                    true,
                    false,
                    out,
                );
            }
            State::OpenSent | State::OpenConfirm | State::Established => {
                let sub = subcode.unwrap_or(cease_sub::ADMINISTRATIVE_SHUTDOWN);
                let n = match (sub, message) {
                    (
                        cease_sub::ADMINISTRATIVE_SHUTDOWN | cease_sub::ADMINISTRATIVE_RESET,
                        Some(m),
                    ) => Notification::cease_with_message(sub, &m),
                    _ => Notification::new(code::CEASE, sub, Vec::new()),
                };
                self.notify_and_close(now, Event::ManualStop, n, false, out);
            }
        }
    }

    // ---- TCP events ----

    fn on_connected(&mut self, now: Instant, conn: ConnId, out: &mut Vec<Output>) {
        use super::types::Direction::*;
        match (self.state, conn.direction) {
            (State::Connect, Outbound) if self.conn == Some(conn) => {
                self.accept(now, conn, Event::TcpCrAcked, out);
            }
            (State::Connect, Inbound) => {
                // TcpConnectionConfirmed (17) while our own attempt is pending: one slot holds
                // one connection, so the pending attempt gives way. (`Peer` instead keeps both
                // and resolves the collision by BGP identifier.)
                if let Some(pending) = self.conn.take() {
                    out.push(Output::Disconnect(pending));
                }
                self.accept(now, conn, Event::TcpConnectionConfirmed, out);
            }
            (State::Active, Inbound) => {
                self.accept(now, conn, Event::TcpConnectionConfirmed, out);
            }
            (State::Idle, Inbound) if self.admin_up => {
                // Idle while waiting out the restart delay: the peer is not hammered by us,
                // and a connection it makes is welcome (the delay is for our retries).
                self.set_state(
                    State::Active,
                    Event::AutomaticStartWithPassiveTcpEstablishment,
                    out,
                );
                self.timers.idle_hold = None;
                self.accept(now, conn, Event::TcpConnectionConfirmed, out);
            }
            _ if self.conn == Some(conn) => {} // duplicate report
            _ => {
                // Idle and stopped (RFC: refuse), a stale outbound attempt, or a second
                // connection while this slot already has one.
                out.push(Output::Disconnect(conn));
            }
        }
    }

    /// Tcp_CR_Acked (16) / TcpConnectionConfirmed (17): send OPEN, large hold timer, OpenSent.
    fn accept(&mut self, now: Instant, conn: ConnId, event: Event, out: &mut Vec<Output>) {
        self.conn = Some(conn);
        self.timers.connect_retry = None;
        let open = our_open(&self.config);
        out.push(Output::Send(conn, Message::Open(open.clone())));
        self.sent_open = Some(open);
        self.timers.hold = Some(now + self.config.open_hold_time);
        self.set_state(State::OpenSent, event, out);
    }

    /// TcpConnectionFails (18).
    fn on_closed(&mut self, now: Instant, conn: ConnId, out: &mut Vec<Output>) {
        if self.conn != Some(conn) {
            return; // a connection we already let go of
        }
        match self.state {
            State::Idle | State::Active => {
                self.conn = None;
            }
            State::OpenSent if self.admin_up => {
                // RFC 4271 OpenSent + Event 18: close, restart the ConnectRetryTimer, keep
                // listening, go to Active.
                out.push(Output::AttemptFailed(conn, DownReason::ConnectionClosed));
                self.last_error = Some(DownReason::ConnectionClosed);
                self.connect_retry_counter += 1;
                self.reset_session();
                if !self.passive {
                    self.timers.connect_retry = Some(now + self.backoff.next());
                }
                self.set_state(State::Active, Event::TcpConnectionFails, out);
                self.conn = None;
            }
            _ => {
                self.close(
                    now,
                    Event::TcpConnectionFails,
                    DownReason::ConnectionClosed,
                    false,
                    true,
                    out,
                );
            }
        }
    }

    fn owns_connected(&self, conn: ConnId) -> bool {
        self.conn == Some(conn) && self.state >= State::OpenSent
    }

    // ---- message events ----

    fn on_message(&mut self, now: Instant, msg: Message, out: &mut Vec<Output>) {
        if let Message::Notification(n) = msg {
            // NotifMsgVerErr (24) / NotifMsg (25), in any state: the connection is over.
            let event = if n.code == code::OPEN_MESSAGE && n.subcode == 1 {
                Event::NotifMsgVerErr
            } else {
                Event::NotifMsg
            };
            self.close(
                now,
                event,
                DownReason::NotificationReceived(n),
                false,
                true,
                out,
            );
            return;
        }
        match (self.state, msg) {
            (State::OpenSent, Message::Open(open)) => self.on_open(now, open, out),
            (State::OpenSent, _) => self.fsm_error(now, fsm_sub::UNEXPECTED_IN_OPENSENT, out),
            (State::OpenConfirm, Message::Keepalive) => {
                // KeepAliveMsg (26): the session is up.
                self.restart_hold(now);
                self.backoff.reset();
                self.connect_retry_counter = 0;
                self.set_state(State::Established, Event::KeepAliveMsg, out);
                if let (Some(conn), Some(neg)) = (self.conn, &self.negotiated) {
                    out.push(Output::Established(conn, Box::new(neg.clone())));
                }
            }
            (State::OpenConfirm, _) => self.fsm_error(now, fsm_sub::UNEXPECTED_IN_OPENCONFIRM, out),
            (State::Established, Message::Keepalive) => self.restart_hold(now),
            (State::Established, Message::Update(u)) => {
                // UpdateMsg (27).
                self.restart_hold(now);
                if let Some(conn) = self.conn {
                    out.push(Output::UpdateReceived(conn, u));
                }
            }
            (State::Established, Message::RouteRefresh(rr)) => {
                self.restart_hold(now);
                let Some(neg) = &self.negotiated else { return };
                // RFC 2918 §4: ignore a family we did not negotiate; RFC 7313 §5: ignore
                // unknown subtypes, and BoRR/EoRR unless enhanced refresh was negotiated.
                let wanted = neg.families.contains(&rr.family)
                    && match rr.subtype {
                        RefreshSubtype::Normal => true,
                        RefreshSubtype::BoRR | RefreshSubtype::EoRR => neg.enhanced_route_refresh,
                        RefreshSubtype::Reserved(_) => false,
                    };
                if let (true, Some(conn)) = (wanted, self.conn) {
                    out.push(Output::RouteRefreshReceived(conn, rr));
                }
            }
            (State::Established, _) => self.fsm_error(now, fsm_sub::UNEXPECTED_IN_ESTABLISHED, out),
            _ => {} // Idle/Connect/Active own no connected socket: unreachable via owns_connected.
        }
    }

    /// BGPOpen (19) in OpenSent: check, negotiate, KEEPALIVE, OpenConfirm — or BGPOpenMsgErr.
    fn on_open(&mut self, now: Instant, open: Open, out: &mut Vec<Output>) {
        let ours = self
            .sent_open
            .clone()
            .unwrap_or_else(|| our_open(&self.config));
        if let Err(refused) = check_open(&self.config, &ours, &open) {
            self.notify_and_close(now, Event::BgpOpenMsgErr, refused.notification, true, out);
            return;
        }
        let neg = negotiate(&ours, &open, self.config.keepalive);
        if let Some(conn) = self.conn {
            out.push(Output::Send(conn, Message::Keepalive));
        }
        self.timers.hold =
            (neg.hold_time != 0).then(|| now + Duration::from_secs(u64::from(neg.hold_time)));
        self.timers.keepalive = neg.keepalive.map(|k| now + k);
        self.negotiated = Some(neg);
        self.set_state(State::OpenConfirm, Event::BgpOpen, out);
    }

    /// BGPHeaderErr (21) / BGPOpenMsgErr (22) / UpdateMsgErr (28): the codec's NOTIFICATION.
    fn on_decode_error(&mut self, now: Instant, err: DecodeError, out: &mut Vec<Output>) {
        let event = match err.code {
            code::OPEN_MESSAGE => Event::BgpOpenMsgErr,
            code::UPDATE_MESSAGE => Event::UpdateMsgErr,
            _ => Event::BgpHeaderErr,
        };
        self.notify_and_close(now, event, err.notification(), true, out);
    }

    /// RFC 6608: a message not allowed in this state.
    fn fsm_error(&mut self, now: Instant, subcode: u8, out: &mut Vec<Output>) {
        let n = Notification::new(code::FSM, subcode, Vec::new());
        self.notify_and_close(now, Event::UnexpectedMsg, n, true, out);
    }

    fn restart_hold(&mut self, now: Instant) {
        if let Some(neg) = &self.negotiated {
            if neg.hold_time != 0 {
                self.timers.hold = Some(now + Duration::from_secs(u64::from(neg.hold_time)));
            }
        }
    }

    // ---- timer events ----

    fn on_timer(&mut self, now: Instant, event: Event, out: &mut Vec<Output>) {
        match (event, self.state) {
            (
                Event::HoldTimerExpires,
                State::OpenSent | State::OpenConfirm | State::Established,
            ) => {
                let n = Notification::new(code::HOLD_TIMER_EXPIRED, 0, Vec::new());
                self.notify_and_close(now, event, n, true, out);
            }
            (Event::KeepaliveTimerExpires, State::OpenConfirm | State::Established) => {
                if let Some(conn) = self.conn {
                    out.push(Output::Send(conn, Message::Keepalive));
                }
                self.timers.keepalive = self
                    .negotiated
                    .as_ref()
                    .and_then(|n| n.keepalive)
                    .map(|k| now + k);
            }
            (Event::ConnectRetryTimerExpires, State::Connect) => {
                // Drop the attempt, try again with a doubled timeout.
                if let Some(pending) = self.conn.take() {
                    out.push(Output::Disconnect(pending));
                    out.push(Output::AttemptFailed(pending, DownReason::ConnectTimeout));
                }
                self.last_error = Some(DownReason::ConnectTimeout);
                self.connect_retry_counter += 1;
                self.backoff.next();
                self.begin_connect(now, out);
            }
            (Event::ConnectRetryTimerExpires, State::Active) if !self.passive => {
                self.begin_connect(now, out);
                self.set_state(State::Connect, event, out);
            }
            (Event::IdleHoldTimerExpires, State::Idle) if self.admin_up => {
                let start = if self.passive {
                    Event::AutomaticStartWithPassiveTcpEstablishment
                } else {
                    Event::AutomaticStart
                };
                self.start(now, start, out);
            }
            _ => {} // a timer left over from another state: nothing to do
        }
    }

    // ---- leaving a connection ----

    /// Send `n` on the connection, then close it (Idle).
    fn notify_and_close(
        &mut self,
        now: Instant,
        event: Event,
        n: Notification,
        restart: bool,
        out: &mut Vec<Output>,
    ) {
        if let Some(conn) = self.conn {
            out.push(Output::Send(conn, Message::Notification(n.clone())));
        }
        self.close(
            now,
            event,
            DownReason::NotificationSent(n),
            true,
            restart,
            out,
        );
    }

    /// Release the connection and go Idle. `disconnect`: ask the runtime to close it (false
    /// when it told us it is closed). `restart`: arm the IdleHoldTimer for an automatic restart
    /// (only while admin up).
    fn close(
        &mut self,
        now: Instant,
        event: Event,
        reason: DownReason,
        disconnect: bool,
        restart: bool,
        out: &mut Vec<Output>,
    ) {
        if let Some(conn) = self.conn {
            if disconnect {
                out.push(Output::Disconnect(conn));
            }
            if self.state == State::Established {
                out.push(Output::PeerDown(conn, reason.clone()));
            } else {
                out.push(Output::AttemptFailed(conn, reason.clone()));
            }
        }
        if event != Event::ManualStop {
            self.connect_retry_counter += 1;
        }
        self.last_error = Some(reason);
        self.reset_session();
        self.set_state(State::Idle, event, out);
        self.conn = None;
        if restart && self.admin_up {
            self.timers.idle_hold = Some(now + self.backoff.next());
        }
    }

    fn reset_session(&mut self) {
        self.timers.clear_session();
        self.negotiated = None;
        self.sent_open = None;
    }

    fn set_state(&mut self, to: State, event: Event, out: &mut Vec<Output>) {
        if self.state != to {
            out.push(Output::StateChange {
                conn: self.conn,
                from: self.state,
                to,
                event,
            });
            self.state = to;
        }
    }

    // ---- for `Peer` (collision handling, RFC 4271 §6.8) ----

    /// A slot for an inbound connection that arrived while the main slot had one: passive,
    /// never restarting on its own (unless promoted), straight to OpenSent.
    pub(crate) fn accept_secondary(
        config: Config,
        now: Instant,
        conn: ConnId,
        out: &mut Vec<Output>,
    ) -> Fsm {
        let mut fsm = Fsm::new(config);
        fsm.passive = true;
        fsm.set_state(
            State::Active,
            Event::AutomaticStartWithPassiveTcpEstablishment,
            out,
        );
        fsm.accept(now, conn, Event::TcpConnectionConfirmed, out);
        fsm
    }

    /// OpenCollisionDump (23): Cease / Connection Collision Resolution (6/7), Idle.
    pub(crate) fn collision_dump(&mut self, now: Instant, out: &mut Vec<Output>) {
        let n = Notification::new(
            code::CEASE,
            cease_sub::CONNECTION_COLLISION_RESOLUTION,
            Vec::new(),
        );
        // Resolving a collision is routine, not an error worth showing as `last_error`.
        let last_error = self.last_error.take();
        self.notify_and_close(now, Event::OpenCollisionDump, n, true, out);
        self.last_error = last_error;
    }

    /// The peer restarted (RFC 4724 §4.2: a new OPEN while this session was Established with
    /// GR): this session ends without a NOTIFICATION; the new connection takes over.
    pub(crate) fn replaced_by_restart(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.close(
            now,
            Event::PeerRestarted,
            DownReason::PeerRestarted,
            true,
            false,
            out,
        );
    }

    /// Drop a pending outbound attempt silently (another connection got Established).
    pub(crate) fn abandon_attempt(&mut self, out: &mut Vec<Output>) {
        if let Some(conn) = self.conn.take() {
            out.push(Output::Disconnect(conn));
        }
        self.reset_session();
        self.timers.idle_hold = None;
        self.state = State::Idle;
    }

    /// Take over the main slot from `old`: its admin state, backoff and outbound numbering.
    pub(crate) fn promote(&mut self, old: &Fsm) {
        self.admin_up = old.admin_up;
        self.passive = old.config.passive;
        if !self.is_established() {
            // (An Established session has just reset the backoff; keep that.)
            self.backoff = old.backoff.clone();
            self.connect_retry_counter = old.connect_retry_counter;
        }
        self.next_outbound = self.next_outbound.max(old.next_outbound);
        if self.last_error.is_none() {
            self.last_error = old.last_error.clone();
        }
    }
}
