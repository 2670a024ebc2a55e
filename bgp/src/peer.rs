//! One configured peer as the runtime sees it: up to two connection FSMs (the main one, and a
//! second for an inbound connection that arrives while the main one has a connection) and the
//! RFC 4271 §6.8 connection collision detection between them. Inputs and outputs are the
//! FSM's, tagged by `ConnId`; see the `fsm` module docs for how a runtime drives it.
//!
//! Collision rule (RFC 4271 §6.8, RFC 6286 §2.3): when a valid OPEN arrives on one
//! connection while the other is in OpenSent or OpenConfirm, the connection initiated by the
//! speaker with the higher BGP identifier is kept (equal identifiers: the higher AS number);
//! the other gets Cease / Connection Collision Resolution (6/7). Both ends apply the same rule,
//! so they close the same TCP connection. Against an Established session the new connection
//! loses, except when the session negotiated graceful restart: then the new OPEN means the
//! peer restarted (RFC 4724 §4.2), the old session ends (PeerDown / PeerRestarted) and the new
//! one continues.

use std::time::Instant;

use crate::fsm::{check_open, Config, ConnId, Direction, DownReason, Fsm, Input, Output, State};
use crate::negotiate::{our_open, Negotiated};
use crate::wire::{Context, Message, Open};

/// A configured peer. Start it with `Input::Start`.
#[derive(Debug, Clone)]
pub struct Peer {
    main: Fsm,
    second: Option<Fsm>,
}

impl Peer {
    pub fn new(config: Config) -> Peer {
        Peer {
            main: Fsm::new(config),
            second: None,
        }
    }

    /// The peer's state: that of its most advanced connection.
    pub fn state(&self) -> State {
        self.fsms()
            .map(Fsm::state)
            .max_by_key(|s| s.progress())
            .unwrap_or(State::Idle)
    }

    /// Connections the peer holds now, with their states.
    pub fn connections(&self) -> Vec<(ConnId, State)> {
        self.fsms()
            .filter_map(|f| f.conn().map(|c| (c, f.state())))
            .collect()
    }

    /// The Established session, if any.
    pub fn established(&self) -> Option<(ConnId, &Negotiated)> {
        self.fsms()
            .find_map(|f| match (f.state(), f.conn(), f.negotiated()) {
                (State::Established, Some(c), Some(n)) => Some((c, n)),
                _ => None,
            })
    }

    pub fn config(&self) -> &Config {
        self.main.config()
    }

    /// New config for the next connections (see `Fsm::set_config`).
    pub fn set_config(&mut self, config: Config) {
        if let Some(s) = &mut self.second {
            s.set_config(config.clone());
        }
        self.main.set_config(config);
    }

    /// Why the last connection or session ended.
    pub fn last_error(&self) -> Option<&DownReason> {
        self.main.last_error()
    }

    /// RFC 4271 ConnectRetryCounter of the main connection.
    pub fn connect_retry_counter(&self) -> u32 {
        self.main.connect_retry_counter()
    }

    /// Context to decode the next message read from `conn` (ask before each message).
    pub fn decode_context(&self, conn: ConnId) -> Context {
        self.fsm_for(conn)
            .map(Fsm::decode_context)
            .unwrap_or_default()
    }

    /// Context to encode a message for `conn`.
    pub fn encode_context(&self, conn: ConnId) -> Context {
        self.fsm_for(conn)
            .map(Fsm::encode_context)
            .unwrap_or_default()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.fsms().filter_map(Fsm::poll_timeout).min()
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

    pub fn handle_timeout_into(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.main.handle_timeout_into(now, out);
        if let Some(s) = &mut self.second {
            s.handle_timeout_into(now, out);
        }
        self.tidy(out);
    }

    pub fn handle_into(&mut self, now: Instant, input: Input, out: &mut Vec<Output>) {
        match input {
            Input::Start => self.main.handle_into(now, Input::Start, out),
            Input::Stop { subcode, message } => {
                if let Some(s) = &mut self.second {
                    let stop = Input::Stop {
                        subcode,
                        message: message.clone(),
                    };
                    s.handle_into(now, stop, out);
                }
                self.main
                    .handle_into(now, Input::Stop { subcode, message }, out);
            }
            Input::MaxPrefixExceeded { .. } => {
                // The whole peer goes down and stays down, including a second connection
                // that would otherwise take over.
                if let Some(s) = &mut self.second {
                    s.handle_into(now, input.clone(), out);
                }
                self.main.handle_into(now, input, out);
            }
            Input::Connected(conn) => self.on_connected(now, conn, out),
            Input::Message(conn, Message::Open(open)) => self.on_open(now, conn, open, out),
            Input::Closed(conn) | Input::Message(conn, _) | Input::DecodeError(conn, _) => {
                if let Some(f) = self.fsm_for_mut(conn) {
                    f.handle_into(now, input, out);
                }
            }
        }
        self.tidy(out);
    }

    fn on_connected(&mut self, now: Instant, conn: ConnId, out: &mut Vec<Output>) {
        let main_busy = self.main.conn().is_some_and(|c| c != conn);
        if conn.direction == Direction::Inbound && main_busy {
            if self.second.is_none() {
                let cfg = self.main.config().clone();
                self.second = Some(Fsm::accept_secondary(cfg, now, conn, out));
            } else {
                // Already two connections: a third is refused.
                out.push(Output::Disconnect(conn));
            }
            return;
        }
        // The main FSM accepts it, or refuses it when stopped.
        self.main.handle_into(now, Input::Connected(conn), out);
    }

    /// BGPOpen (19) on `conn`: collision detection against the other connection first.
    fn on_open(&mut self, now: Instant, conn: ConnId, open: Open, out: &mut Vec<Output>) {
        let Some(this_is_main) = self.which(conn) else {
            return;
        };
        let other_state = if this_is_main {
            self.second.as_ref().map(Fsm::state)
        } else {
            Some(self.main.state())
        };
        let config = self.main.config().clone();
        // An OPEN that will be refused anyway (bad AS, ...) takes no part in collisions.
        let valid = check_open(&config, &our_open(&config), &open).is_ok();
        let this_state = self.fsm_for(conn).map(Fsm::state);
        if valid && this_state == Some(State::OpenSent) {
            match other_state {
                Some(State::OpenSent | State::OpenConfirm) => {
                    let other_conn = self.other(this_is_main).and_then(Fsm::conn);
                    if keep_new(&config, &open, conn, other_conn) {
                        if let Some(o) = self.other_mut(this_is_main) {
                            o.collision_dump(now, out);
                        }
                    } else {
                        if let Some(t) = self.fsm_for_mut(conn) {
                            t.collision_dump(now, out);
                        }
                        return;
                    }
                }
                Some(State::Established) => {
                    let gr = self
                        .other(this_is_main)
                        .and_then(Fsm::negotiated)
                        .is_some_and(|n| n.peer_graceful_restart.is_some());
                    if gr {
                        if let Some(o) = self.other_mut(this_is_main) {
                            o.replaced_by_restart(now, out);
                        }
                    } else {
                        if let Some(t) = self.fsm_for_mut(conn) {
                            t.collision_dump(now, out);
                        }
                        return;
                    }
                }
                _ => {}
            }
        }
        if let Some(t) = self.fsm_for_mut(conn) {
            t.handle_into(now, Input::Message(conn, Message::Open(open)), out);
        }
    }

    /// Keep one FSM in the main slot: drop a finished second one, promote the second when the
    /// main one lost its connection, abandon a pending attempt once the other is Established.
    fn tidy(&mut self, out: &mut Vec<Output>) {
        if self
            .second
            .as_ref()
            .is_some_and(|s| s.state() == State::Idle)
        {
            self.second = None;
        }
        let Some(second) = &self.second else { return };
        if second.is_established() && self.main.state() == State::Connect {
            self.main.abandon_attempt(out);
        }
        if self.main.conn().is_none() {
            if let Some(mut second) = self.second.take() {
                second.promote(&self.main);
                self.main = second;
            }
        }
    }

    fn fsms(&self) -> impl Iterator<Item = &Fsm> {
        std::iter::once(&self.main).chain(self.second.as_ref())
    }

    /// `Some(true)` if `conn` belongs to the main FSM, `Some(false)` to the second.
    fn which(&self, conn: ConnId) -> Option<bool> {
        if self.main.conn() == Some(conn) {
            Some(true)
        } else if self.second.as_ref().and_then(Fsm::conn) == Some(conn) {
            Some(false)
        } else {
            None
        }
    }

    fn fsm_for(&self, conn: ConnId) -> Option<&Fsm> {
        match self.which(conn)? {
            true => Some(&self.main),
            false => self.second.as_ref(),
        }
    }

    fn fsm_for_mut(&mut self, conn: ConnId) -> Option<&mut Fsm> {
        match self.which(conn)? {
            true => Some(&mut self.main),
            false => self.second.as_mut(),
        }
    }

    fn other(&self, this_is_main: bool) -> Option<&Fsm> {
        if this_is_main {
            self.second.as_ref()
        } else {
            Some(&self.main)
        }
    }

    fn other_mut(&mut self, this_is_main: bool) -> Option<&mut Fsm> {
        if this_is_main {
            self.second.as_mut()
        } else {
            Some(&mut self.main)
        }
    }
}

/// Whether the connection `new` (whose OPEN just arrived) survives a collision with `old`.
/// RFC 4271 §6.8: keep the connection initiated by the higher BGP identifier; RFC 6286 §2.3:
/// equal identifiers, the higher AS. Two connections in the same direction: the newer wins
/// (the older one is stale, e.g. from before the peer restarted).
fn keep_new(config: &Config, open: &Open, new: ConnId, old: Option<ConnId>) -> bool {
    if old.is_some_and(|o| o.direction == new.direction) {
        return true;
    }
    let local = (u32::from(config.router_id), config.local_as);
    let remote = (u32::from(open.bgp_id), open.asn());
    let keep_direction = if local > remote {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    new.direction == keep_direction
}
