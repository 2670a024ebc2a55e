//! Two bgplane peers (`bgp::peer::Peer`) talking to each other through in-memory links with a
//! virtual clock: no sockets, no sleeping. Every message crosses the link as bytes
//! (`Message::encode` on one side, `frame_len` + `Message::decode` with the receiver's current
//! context on the other), so the codec is exercised too. Each run is bounded in steps: a
//! livelock fails the test instead of hanging it.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp::fsm::{Config, ConnId, Direction, DownReason, Event, GracefulRestartConfig, Input};
use bgp::fsm::{Output, State};
use bgp::peer::Peer;
use bgp::wire::{cap_code, frame_len, Family, Message, Notification, RouteRefresh};

const MAX_STEPS: usize = 20_000;

/// What happens when a side opens a TCP connection to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// The other side accepts it.
    Accept,
    /// Connection refused at once (RST).
    Refuse,
    /// SYNs vanish: nothing ever comes back.
    Blackhole,
}

struct Link {
    ends: [ConnId; 2],
    open: bool,
}

enum Delivery {
    Input(Input),
    Bytes(ConnId, Vec<u8>),
}

struct Sim {
    t0: Instant,
    now: Instant,
    peers: [Peer; 2],
    log: [Vec<(Duration, Output)>; 2],
    links: Vec<Link>,
    queue: VecDeque<(usize, Delivery)>,
    reach: [Reach; 2],
    /// Drop every byte delivered to this side (the other end went silent).
    deaf: [bool; 2],
    next_inbound: [u64; 2],
    steps: usize,
}

fn id(a: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, a)
}

/// A at 10.99.0.1 in AS 65001, B at 10.99.0.2 in AS 65002.
fn configs() -> (Config, Config) {
    (
        Config::new(65001, 65002, id(1)),
        Config::new(65002, 65001, id(2)),
    )
}

impl Sim {
    fn new(a: Config, b: Config) -> Sim {
        let t0 = Instant::now();
        Sim {
            t0,
            now: t0,
            peers: [Peer::new(a), Peer::new(b)],
            log: [Vec::new(), Vec::new()],
            links: Vec::new(),
            queue: VecDeque::new(),
            reach: [Reach::Accept; 2],
            deaf: [false; 2],
            next_inbound: [0; 2],
            steps: 0,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    fn feed(&mut self, side: usize, input: Input) {
        let out = self.peers[side].handle(self.now, input);
        self.process(side, out);
    }

    fn start_both(&mut self) {
        self.feed(0, Input::Start);
        self.feed(1, Input::Start);
    }

    fn link_of(&mut self, side: usize, conn: ConnId) -> Option<&mut Link> {
        // The newest link: a restarted peer numbers its connections from 0 again.
        self.links.iter_mut().rev().find(|l| l.ends[side] == conn)
    }

    fn process(&mut self, side: usize, outputs: Vec<Output>) {
        let other = 1 - side;
        for o in outputs {
            self.log[side].push((self.elapsed(), o.clone()));
            match o {
                Output::Connect(c) => match self.reach[side] {
                    Reach::Accept => {
                        let inbound = ConnId::inbound(self.next_inbound[other]);
                        self.next_inbound[other] += 1;
                        let mut ends = [c, c];
                        ends[other] = inbound;
                        self.links.push(Link { ends, open: true });
                        self.queue
                            .push_back((side, Delivery::Input(Input::Connected(c))));
                        self.queue
                            .push_back((other, Delivery::Input(Input::Connected(inbound))));
                    }
                    Reach::Refuse => {
                        self.queue
                            .push_back((side, Delivery::Input(Input::Closed(c))));
                    }
                    Reach::Blackhole => {}
                },
                Output::Send(c, msg) => {
                    let cx = self.peers[side].encode_context(c);
                    let bytes = msg.to_bytes(&cx).expect("encode").to_vec();
                    if let Some(link) = self.link_of(side, c) {
                        if link.open {
                            let to = link.ends[other];
                            self.queue.push_back((other, Delivery::Bytes(to, bytes)));
                        }
                    }
                }
                Output::Disconnect(c) => {
                    if let Some(link) = self.link_of(side, c) {
                        if link.open {
                            link.open = false;
                            let to = link.ends[other];
                            self.queue
                                .push_back((other, Delivery::Input(Input::Closed(to))));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn deliver(&mut self, side: usize, d: Delivery) {
        match d {
            Delivery::Input(i) => self.feed(side, i),
            Delivery::Bytes(c, bytes) => {
                if self.deaf[side] {
                    return;
                }
                let cx = self.peers[side].decode_context(c);
                let input = match frame_len(&bytes, cx.max_message_len()) {
                    Ok(Some(n)) => {
                        assert_eq!(n, bytes.len(), "one message per delivery");
                        match Message::decode(&bytes, &cx) {
                            Ok(m) => Input::Message(c, m),
                            Err(e) => Input::DecodeError(c, e),
                        }
                    }
                    Ok(None) => panic!("short message on the link: {bytes:?}"),
                    Err(e) => Input::DecodeError(c, e),
                };
                self.feed(side, input);
            }
        }
    }

    /// Run until `done`, or until virtual time passes `limit` (then report `done` once more).
    fn run_until(&mut self, limit: Duration, done: impl Fn(&Sim) -> bool) -> bool {
        loop {
            self.steps += 1;
            assert!(self.steps < MAX_STEPS, "livelock: {} steps", self.steps);
            if done(self) {
                return true;
            }
            if let Some((side, d)) = self.queue.pop_front() {
                self.deliver(side, d);
                continue;
            }
            let next = self.peers.iter().filter_map(Peer::poll_timeout).min();
            match next {
                Some(t) if t - self.t0 <= limit => {
                    self.now = self.now.max(t);
                    for side in 0..2 {
                        let out = self.peers[side].handle_timeout(self.now);
                        self.process(side, out);
                    }
                }
                _ => return done(self),
            }
        }
    }

    /// Run for `d` more virtual time, processing everything that happens.
    fn run_for(&mut self, d: Duration) {
        let limit = self.elapsed() + d;
        self.run_until(limit, |_| false);
        self.now = self.now.max(self.t0 + limit);
    }

    fn both_established(&self) -> bool {
        self.peers.iter().all(|p| p.state() == State::Established) && self.queue.is_empty()
    }

    fn establish(&mut self) {
        self.start_both();
        assert!(
            self.run_until(Duration::from_secs(10), Sim::both_established),
            "not Established: A {} B {}\nA: {:#?}",
            self.peers[0].state(),
            self.peers[1].state(),
            self.log[0]
        );
    }

    /// The side's outputs, one per line (OPENs abbreviated), for failure messages.
    fn dump(&self, side: usize) -> String {
        let mut s = String::new();
        for (t, o) in &self.log[side] {
            let line = match o {
                Output::Send(c, Message::Open(_)) => format!("Send({c}, OPEN)"),
                Output::Established(c, _) => format!("Established({c})"),
                Output::StateChange {
                    conn,
                    from,
                    to,
                    event,
                } => format!("{conn:?} {from} -> {to} ({event})"),
                o => format!("{o:?}"),
            };
            s.push_str(&format!("{t:?} {line}\n"));
        }
        s
    }

    fn sent(&self, side: usize) -> Vec<(Duration, ConnId, Message)> {
        self.log[side]
            .iter()
            .filter_map(|(t, o)| match o {
                Output::Send(c, m) => Some((*t, *c, m.clone())),
                _ => None,
            })
            .collect()
    }

    fn notifications_sent(&self, side: usize) -> Vec<Notification> {
        self.sent(side)
            .into_iter()
            .filter_map(|(_, _, m)| match m {
                Message::Notification(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    fn notifications_received(&self, side: usize) -> Vec<Notification> {
        self.log[side]
            .iter()
            .filter_map(|(_, o)| match o {
                Output::PeerDown(_, DownReason::NotificationReceived(n))
                | Output::AttemptFailed(_, DownReason::NotificationReceived(n)) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    fn keepalive_times(&self, side: usize) -> Vec<Duration> {
        self.sent(side)
            .into_iter()
            .filter(|(_, _, m)| *m == Message::Keepalive)
            .map(|(t, _, _)| t)
            .collect()
    }

    fn connect_times(&self, side: usize) -> Vec<Duration> {
        self.log[side]
            .iter()
            .filter_map(|(t, o)| matches!(o, Output::Connect(_)).then_some(*t))
            .collect()
    }

    fn established_outputs(&self, side: usize) -> Vec<(ConnId, bgp::negotiate::Negotiated)> {
        self.log[side]
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Established(c, n) => Some((*c, (**n).clone())),
                _ => None,
            })
            .collect()
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// An UPDATE value as the codec produces it (End-of-RIB for IPv4 unicast: no withdrawn
/// routes, no attributes), treated as opaque by the FSM.
fn end_of_rib() -> Message {
    let mut raw = vec![0xff; 16];
    raw.extend_from_slice(&[0, 23, 2, 0, 0, 0, 0]);
    Message::decode(&raw, &bgp::wire::Context::default()).expect("decode End-of-RIB")
}

// ---- establishment and negotiation ----

#[test]
fn active_and_passive_reach_established_with_negotiated_parameters() {
    let (mut a, mut b) = configs();
    a.hold_time = 60;
    a.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    a.extended_message = true;
    a.add_path_receive = vec![Family::IPV4_UNICAST];
    a.graceful_restart = Some(GracefulRestartConfig {
        restart_time: 120,
        restarting: false,
        forwarding_preserved: false,
    });
    b.passive = true;
    b.hold_time = 90;
    b.families = vec![
        Family::IPV6_UNICAST,
        Family::IPV4_UNICAST,
        Family::new(1, 2),
    ];
    b.extended_message = true;
    b.enhanced_route_refresh = false;
    b.add_path_send = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    b.graceful_restart = Some(GracefulRestartConfig {
        restart_time: 300,
        restarting: true,
        forwarding_preserved: true,
    });
    let mut sim = Sim::new(a, b);
    sim.establish();
    assert_eq!(
        sim.connect_times(1),
        Vec::<Duration>::new(),
        "passive B never connects"
    );

    let (ca, na) = sim.established_outputs(0).pop().expect("A Established");
    let (cb, nb) = sim.established_outputs(1).pop().expect("B Established");
    assert_eq!(ca.direction, Direction::Outbound);
    assert_eq!(cb.direction, Direction::Inbound);
    for n in [&na, &nb] {
        assert_eq!(n.hold_time, 60, "min of 60 and 90");
        assert_eq!(n.keepalive, Some(secs(20)));
        assert_eq!(n.families, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
        assert!(n.four_octet_as && n.extended_message && n.route_refresh);
        assert!(!n.enhanced_route_refresh, "B did not advertise it");
        assert!(!n.is_ibgp());
    }
    assert_eq!((na.peer_as, na.peer_id), (65002, id(2)));
    assert_eq!((nb.peer_as, nb.peer_id), (65001, id(1)));
    // ADD-PATH: B sends path ids for IPv4 only (A receives only IPv4).
    assert_eq!(na.add_path_receive, vec![Family::IPV4_UNICAST]);
    assert!(na.add_path_send.is_empty());
    assert_eq!(nb.add_path_send, vec![Family::IPV4_UNICAST]);
    assert_eq!(na.decode_context().add_path, vec![Family::IPV4_UNICAST]);
    assert_eq!(nb.encode_context().add_path, vec![Family::IPV4_UNICAST]);
    assert!(na.encode_context().add_path.is_empty());
    assert_eq!(na.decode_context().max_message_len(), 65535);
    // Graceful restart as seen by A (helper for B): B's restart time, R and F bits.
    let gr = na.peer_graceful_restart.expect("both advertised GR");
    assert_eq!(gr.restart_time, 300);
    assert!(gr.restart_state);
    assert_eq!(
        gr.families,
        vec![(Family::IPV4_UNICAST, true), (Family::IPV6_UNICAST, true)]
    );
    let gr_b = nb.peer_graceful_restart.expect("both advertised GR");
    assert_eq!((gr_b.restart_time, gr_b.restart_state), (120, false));
    assert!(
        gr_b.families.iter().all(|(_, f)| !f),
        "A preserved no forwarding"
    );
    assert_eq!(sim.peers[0].established().map(|(c, _)| c), Some(ca));
}

#[test]
fn ibgp_and_4_octet_as_are_negotiated() {
    let a = Config::new(4_200_000_001, 4_200_000_001, id(1));
    let b = Config::new(4_200_000_001, 4_200_000_001, id(2));
    let mut sim = Sim::new(a, b);
    sim.establish();
    let (_, n) = sim.established_outputs(0).pop().expect("Established");
    assert!(n.is_ibgp());
    assert_eq!(n.peer_as, 4_200_000_001);
    assert!(n.four_octet_as && n.decode_context().four_octet_as);
    assert!(n.enhanced_route_refresh);
    assert_eq!(n.peer_graceful_restart, None, "nobody advertised GR");
}

// ---- timers ----

#[test]
fn keepalives_every_third_of_the_hold_time() {
    let (mut a, mut b) = configs();
    a.hold_time = 9;
    b.hold_time = 30;
    let mut sim = Sim::new(a, b);
    sim.establish();
    let up = sim.elapsed();
    sim.run_for(secs(31));
    let after: Vec<Duration> = sim
        .keepalive_times(0)
        .into_iter()
        .filter(|t| *t > up)
        .collect();
    assert_eq!(after.len(), 10, "{after:?}");
    for w in after.windows(2) {
        assert_eq!(w[1] - w[0], secs(3), "{after:?}");
    }
    assert!(
        sim.both_established(),
        "hold never expired while keepalives flowed"
    );
}

#[test]
fn configured_keepalive_is_used_but_never_above_a_third_of_hold() {
    for (configured, expected) in [(1, secs(1)), (10, secs(3))] {
        let (mut a, mut b) = configs();
        a.hold_time = 9;
        a.keepalive = Some(configured);
        b.hold_time = 9;
        let mut sim = Sim::new(a, b);
        sim.establish();
        let (_, n) = sim.established_outputs(0).pop().expect("up");
        assert_eq!(n.keepalive, Some(expected), "configured {configured}");
        let up = sim.elapsed();
        sim.run_for(secs(12));
        let t: Vec<Duration> = sim
            .keepalive_times(0)
            .into_iter()
            .filter(|t| *t > up)
            .collect();
        assert!(t.len() >= 3, "{t:?}");
        assert!(t.windows(2).all(|w| w[1] - w[0] == expected), "{t:?}");
    }
}

#[test]
fn hold_time_zero_means_no_keepalives_and_no_hold_timer() {
    let (mut a, b) = configs();
    a.hold_time = 0;
    let mut sim = Sim::new(a, b);
    sim.establish();
    let (_, n) = sim.established_outputs(1).pop().expect("up");
    assert_eq!((n.hold_time, n.keepalive), (0, None));
    let before = [sim.keepalive_times(0).len(), sim.keepalive_times(1).len()];
    assert_eq!(before, [1, 1], "only the KEEPALIVE that confirms the OPEN");
    assert_eq!(sim.peers[0].poll_timeout(), None, "no timer at all");
    assert_eq!(sim.peers[1].poll_timeout(), None);
    sim.deaf = [true, true];
    sim.run_for(secs(3600));
    assert_eq!(sim.keepalive_times(0).len(), 1);
    assert_eq!(sim.keepalive_times(1).len(), 1);
    assert!(sim.peers.iter().all(|p| p.state() == State::Established));
}

#[test]
fn hold_timer_expiry_sends_4_0_and_goes_idle() {
    let (mut a, mut b) = configs();
    a.hold_time = 30;
    b.hold_time = 30;
    let mut sim = Sim::new(a, b);
    sim.establish();
    let up = sim.elapsed();
    sim.deaf[0] = true; // A hears nothing from B any more
    let done = sim.run_until(secs(60), |s| s.peers[0].state() != State::Established);
    assert!(done);
    assert_eq!(
        sim.elapsed() - up,
        secs(30),
        "exactly the negotiated hold time"
    );
    // (A may also have sent a 6/7 while the two connections collided at the start.)
    let n: Vec<Notification> = sim
        .notifications_sent(0)
        .into_iter()
        .filter(|n| n.code != 6)
        .collect();
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!((n[0].code, n[0].subcode), (4, 0));
    assert_eq!(sim.peers[0].state(), State::Idle);
    assert!(sim.log[0].iter().any(|(_, o)| matches!(
        o,
        Output::PeerDown(_, DownReason::NotificationSent(n)) if n.code == 4
    )));
    assert!(sim.log[0].iter().any(|(_, o)| matches!(
        o,
        Output::StateChange {
            from: State::Established,
            to: State::Idle,
            event: Event::HoldTimerExpires,
            ..
        }
    )));
}

#[test]
fn open_sent_waits_four_minutes_for_the_peers_open() {
    let (a, b) = configs();
    let mut sim = Sim::new(a, b);
    sim.deaf = [true, true]; // neither OPEN arrives
    sim.feed(0, Input::Start);
    sim.feed(1, Input::Start);
    let t = sim.run_until(secs(600), |s| !s.notifications_sent(0).is_empty());
    assert!(t);
    let (at, _, m) = sim
        .sent(0)
        .into_iter()
        .find(|(_, _, m)| matches!(m, Message::Notification(_)))
        .expect("notification");
    assert_eq!(at, secs(240));
    assert!(matches!(m, Message::Notification(n) if n.code == 4));
}

// ---- connect retry ----

#[test]
fn connect_retry_backoff_doubles_and_caps_when_refused() {
    let (a, b) = configs();
    let mut sim = Sim::new(a, b);
    sim.reach[0] = Reach::Refuse;
    sim.feed(0, Input::Start);
    sim.run_for(secs(1000));
    let t = sim.connect_times(0);
    let gaps: Vec<u64> = t.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(
        &gaps[..9],
        &[2, 4, 8, 16, 32, 64, 120, 120, 120],
        "{gaps:?}"
    );
    assert!(gaps.iter().all(|g| *g <= 120));
    assert!(sim.peers[0].connect_retry_counter() >= 9);
}

#[test]
fn connect_retry_backoff_doubles_when_syns_vanish_and_resets_on_established() {
    let (mut a, b) = configs();
    a.retry = bgp::fsm::Backoff {
        min: secs(1),
        max: secs(10),
    };
    let mut sim = Sim::new(a, b);
    sim.reach = [Reach::Blackhole, Reach::Blackhole];
    sim.feed(0, Input::Start);
    sim.feed(1, Input::Start);
    sim.run_for(secs(40));
    let t = sim.connect_times(0);
    let gaps: Vec<u64> = t.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(&gaps[..5], &[1, 2, 4, 8, 10], "{gaps:?}");
    assert!(sim.log[0]
        .iter()
        .any(|(_, o)| matches!(o, Output::AttemptFailed(_, DownReason::ConnectTimeout))));
    // The network heals: the next attempt gets through and the backoff starts over.
    sim.reach = [Reach::Accept, Reach::Accept];
    assert!(sim.run_until(secs(100), Sim::both_established));
    sim.links.iter_mut().for_each(|l| {
        l.open = false;
    });
    let (conn, _) = sim.peers[0].established().expect("up");
    let cut = sim.elapsed();
    sim.feed(0, Input::Closed(conn));
    sim.reach = [Reach::Refuse, Reach::Refuse];
    sim.run_for(secs(5));
    let after: Vec<Duration> = sim
        .connect_times(0)
        .into_iter()
        .filter(|t| *t > cut)
        .collect();
    assert_eq!(
        after.first().map(|t| *t - cut),
        Some(secs(1)),
        "{after:?}\n{}",
        sim.dump(0)
    );
}

// ---- OPEN validation ----

/// A (with `a`) against B (with `b`): the NOTIFICATION A sends.
fn open_refused(a: Config, mut b: Config) -> (Notification, Sim) {
    b.passive = true; // one connection: no collision in the way
    let mut sim = Sim::new(a, b);
    sim.start_both();
    sim.run_until(secs(1), |s| {
        !s.notifications_sent(0).is_empty() && s.queue.is_empty()
    });
    let n = sim.notifications_sent(0);
    assert!(
        !n.is_empty(),
        "A sent no NOTIFICATION; A log {:#?}",
        sim.log[0]
    );
    assert_eq!(sim.peers[0].state(), State::Idle);
    (n[0].clone(), sim)
}

#[test]
fn bad_peer_as_is_2_2() {
    let (a, mut b) = configs();
    b.local_as = 65003;
    let (n, sim) = open_refused(a, b);
    assert_eq!(
        (n.code, n.subcode, &n.data[..]),
        (2, 2, &65003u16.to_be_bytes()[..])
    );
    assert_eq!(sim.notifications_received(1), vec![n], "B got it");
    assert!(
        matches!(sim.peers[0].last_error(), Some(DownReason::NotificationSent(x)) if x.subcode == 2)
    );
}

#[test]
fn peer_as_uses_capability_65() {
    // 4-octet AS: the 2-octet field is AS_TRANS; only capability 65 can match.
    let a = Config::new(65001, 4_200_000_002, id(1));
    let b = Config::new(4_200_000_003, 65001, id(2));
    let (n, _) = open_refused(a.clone(), b);
    assert_eq!((n.code, n.subcode), (2, 2));
    assert_eq!(&n.data[..], &4_200_000_003u32.to_be_bytes());
    let b = Config::new(4_200_000_002, 65001, id(2));
    let mut sim = Sim::new(a, b);
    sim.establish();
}

#[test]
fn bad_bgp_identifier_is_2_3() {
    let (a, mut b) = configs();
    b.router_id = Ipv4Addr::UNSPECIFIED;
    let (n, _) = open_refused(a, b);
    assert_eq!((n.code, n.subcode), (2, 3));
    // iBGP with our own identifier (RFC 6286) ...
    let a = Config::new(65001, 65001, id(1));
    let b = Config::new(65001, 65001, id(1));
    let (n, _) = open_refused(a, b);
    assert_eq!((n.code, n.subcode), (2, 3));
    // ... but eBGP with the same identifier is fine.
    let a = Config::new(65001, 65002, id(1));
    let b = Config::new(65002, 65001, id(1));
    Sim::new(a, b).establish();
}

#[test]
fn unacceptable_hold_time_is_2_6() {
    for hold in [1, 2] {
        let (a, mut b) = configs();
        b.hold_time = hold;
        let (n, _) = open_refused(a, b);
        assert_eq!((n.code, n.subcode), (2, 6), "hold {hold}");
    }
}

#[test]
fn missing_required_capability_is_2_7_with_the_capability_as_data() {
    let (mut a, mut b) = configs();
    a.extended_message = true;
    a.required_capabilities = vec![cap_code::EXTENDED_MESSAGE];
    b.extended_message = false;
    let (n, _) = open_refused(a, b);
    assert_eq!((n.code, n.subcode), (2, 7));
    assert_eq!(&n.data[..], &[cap_code::EXTENDED_MESSAGE, 0]);
}

#[test]
fn no_common_family_is_2_7() {
    let (a, mut b) = configs();
    b.families = vec![Family::IPV6_UNICAST];
    let (n, _) = open_refused(a, b);
    assert_eq!((n.code, n.subcode), (2, 7));
    assert_eq!(
        &n.data[..],
        &[1, 4, 0, 1, 0, 1],
        "our MP capability: IPv4 unicast"
    );
}

// ---- collisions ----

fn collision(a_id: u8, b_id: u8) {
    let (mut a, mut b) = configs();
    a.router_id = id(a_id);
    b.router_id = id(b_id);
    let mut sim = Sim::new(a, b);
    sim.establish();
    sim.run_for(secs(5));
    assert!(sim.both_established());
    // Exactly one session on each side, on the same TCP connection.
    for side in 0..2 {
        let ups = sim.established_outputs(side);
        assert_eq!(ups.len(), 1, "side {side}: {ups:?}");
        assert_eq!(
            sim.peers[side].connections().len(),
            1,
            "one connection left"
        );
    }
    let (ca, _) = sim.established_outputs(0)[0];
    let (cb, _) = sim.established_outputs(1)[0];
    let link = sim.links.iter().find(|l| l.ends[0] == ca).expect("link");
    assert_eq!(link.ends[1], cb, "both ends kept the same connection");
    assert!(link.open);
    // It is the connection the higher identifier opened.
    let higher_is_a = a_id > b_id;
    let expected_a_dir = if higher_is_a {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    assert_eq!(ca.direction, expected_a_dir);
    // Both connections existed (a real collision), the other got 6/7.
    assert_eq!(sim.links.len(), 2, "both sides connected");
    let dumps: usize = (0..2)
        .map(|s| {
            sim.notifications_sent(s)
                .iter()
                .filter(|n| (n.code, n.subcode) == (6, 7))
                .count()
        })
        .sum();
    assert!(dumps >= 1, "a Cease 6/7 closed the other connection");
    assert!(sim
        .log
        .iter()
        .flatten()
        .all(|(_, o)| !matches!(o, Output::PeerDown(..))));
}

#[test]
fn collision_keeps_the_connection_of_the_higher_router_id() {
    collision(1, 2);
    collision(2, 1);
}

#[test]
fn new_connection_against_established_session_gets_6_7() {
    let (a, b) = configs();
    let mut sim = Sim::new(a, b);
    sim.establish();
    // B opens another connection (no GR): A must keep the Established one.
    let extra = ConnId::inbound(100);
    sim.feed(0, Input::Connected(extra));
    let open = bgp::negotiate::our_open(sim.peers[1].config());
    sim.feed(0, Input::Message(extra, Message::Open(open)));
    assert_eq!(sim.peers[0].state(), State::Established);
    let dump = sim.log[0]
        .iter()
        .rev()
        .find_map(|(_, o)| match o {
            Output::Send(c, Message::Notification(n)) => Some((*c, n.clone())),
            _ => None,
        })
        .expect("6/7");
    assert_eq!(dump.0, extra);
    assert_eq!((dump.1.code, dump.1.subcode), (6, 7));
    assert_eq!(sim.peers[0].connections().len(), 1);
}

#[test]
fn graceful_restart_peer_reconnecting_replaces_the_old_session() {
    let (mut a, mut b) = configs();
    let gr = GracefulRestartConfig {
        restart_time: 120,
        restarting: false,
        forwarding_preserved: true,
    };
    a.graceful_restart = Some(gr.clone());
    b.graceful_restart = Some(gr);
    let mut sim = Sim::new(a, b.clone());
    sim.establish();
    let (old, _) = sim.peers[0].established().expect("up");
    // B restarts (its process died without A noticing): a fresh B connects with R set.
    let mut b2 = b;
    if let Some(g) = &mut b2.graceful_restart {
        g.restarting = true;
    }
    for l in &mut sim.links {
        l.open = false;
    }
    sim.peers[1] = Peer::new(b2);
    sim.feed(1, Input::Start);
    let ok = sim.run_until(secs(10), |s| {
        s.established_outputs(0).len() == 2 && s.both_established()
    });
    assert!(ok, "A:\n{}\nB:\n{}", sim.dump(0), sim.dump(1));
    assert!(sim.log[0]
        .iter()
        .any(|(_, o)| *o == Output::PeerDown(old, DownReason::PeerRestarted)));
    let (_, n) = sim.established_outputs(0).pop().expect("new session");
    assert!(n.peer_graceful_restart.expect("gr").restart_state);
    assert_eq!(sim.peers[0].connections().len(), 1);
}

// ---- stops and errors ----

#[test]
fn manual_stop_sends_cease_6_2_with_the_message_and_stays_down() {
    let (a, b) = configs();
    let mut sim = Sim::new(a, b);
    sim.establish();
    sim.feed(
        0,
        Input::Stop {
            subcode: None,
            message: Some("maintenance window".into()),
        },
    );
    sim.run_for(secs(600));
    let got = sim.notifications_received(1);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].code, got[0].subcode), (6, 2));
    assert_eq!(got[0].shutdown_communication(), Some("maintenance window"));
    assert_eq!(sim.peers[0].state(), State::Idle);
    assert_eq!(
        sim.connect_times(0).len(),
        1,
        "A does not come back by itself"
    );
    // B retries (it was not stopped) but A, stopped, refuses.
    assert!(sim.connect_times(1).len() > 1);
    assert_ne!(sim.peers[1].state(), State::Established);
    // Start again: up.
    sim.feed(0, Input::Start);
    assert!(sim.run_until(sim.elapsed() + secs(10), Sim::both_established));
}

#[test]
fn max_prefix_sends_cease_1_with_family_and_limit() {
    let (a, b) = configs();
    let mut sim = Sim::new(a, b);
    sim.establish();
    sim.feed(
        0,
        Input::MaxPrefixExceeded {
            family: Family::IPV4_UNICAST,
            limit: 100,
        },
    );
    sim.run_for(secs(300));
    let got = sim.notifications_received(1);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].code, got[0].subcode), (6, 1));
    assert_eq!(&got[0].data[..], &[0, 1, 1, 0, 0, 0, 100]);
    assert_eq!(sim.peers[0].state(), State::Idle);
    assert_eq!(
        sim.connect_times(0).len(),
        1,
        "no automatic restart after max-prefix"
    );
}

/// Drive A alone up to `state`, with B's OPEN fed by hand; returns A's connection.
fn a_in(state: State) -> (Peer, ConnId, Instant) {
    let (a, b) = configs();
    let now = Instant::now();
    let mut peer = Peer::new(a);
    let out = peer.handle(now, Input::Start);
    let Some(Output::Connect(c)) = out.first().cloned() else {
        panic!("{out:?}")
    };
    peer.handle(now, Input::Connected(c));
    if state >= State::OpenConfirm {
        let open = bgp::negotiate::our_open(&b);
        let bytes = Message::Open(open)
            .to_bytes(&peer.decode_context(c))
            .expect("enc");
        let m = Message::decode(&bytes, &peer.decode_context(c)).expect("dec");
        peer.handle(now, Input::Message(c, m));
    }
    if state >= State::Established {
        peer.handle(now, Input::Message(c, Message::Keepalive));
    }
    assert_eq!(peer.state(), state);
    (peer, c, now)
}

fn sent_notification(out: &[Output]) -> Option<(u8, u8)> {
    out.iter().find_map(|o| match o {
        Output::Send(_, Message::Notification(n)) => Some((n.code, n.subcode)),
        _ => None,
    })
}

#[test]
fn unexpected_messages_are_fsm_errors_with_rfc_6608_subcodes() {
    let cases = [
        (State::OpenSent, end_of_rib(), (5, 1)),
        (State::OpenSent, Message::Keepalive, (5, 1)),
        (State::OpenConfirm, end_of_rib(), (5, 2)),
        (
            State::OpenConfirm,
            Message::RouteRefresh(RouteRefresh::request(Family::IPV4_UNICAST)),
            (5, 2),
        ),
        (
            State::Established,
            Message::Open(bgp::negotiate::our_open(&configs().1)),
            (5, 3),
        ),
    ];
    for (state, msg, want) in cases {
        let (mut peer, c, now) = a_in(state);
        let out = peer.handle(now, Input::Message(c, msg.clone()));
        assert_eq!(sent_notification(&out), Some(want), "{msg:?} in {state}");
        assert!(out.contains(&Output::Disconnect(c)));
        assert_eq!(peer.state(), State::Idle);
    }
}

#[test]
fn established_passes_updates_and_route_refresh_up() {
    let (mut peer, c, now) = a_in(State::Established);
    let update = end_of_rib();
    let Message::Update(u) = update.clone() else {
        unreachable!()
    };
    let out = peer.handle(now, Input::Message(c, update));
    assert_eq!(out, vec![Output::UpdateReceived(c, u)]);
    let rr = RouteRefresh::request(Family::IPV4_UNICAST);
    let out = peer.handle(now, Input::Message(c, Message::RouteRefresh(rr)));
    assert_eq!(out, vec![Output::RouteRefreshReceived(c, rr)]);
    // RFC 2918 §4: a family that was not negotiated is ignored.
    let rr6 = RouteRefresh::request(Family::IPV6_UNICAST);
    let out = peer.handle(now, Input::Message(c, Message::RouteRefresh(rr6)));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(peer.state(), State::Established);
}

#[test]
fn decode_errors_send_their_notification_and_go_idle() {
    let (mut peer, c, now) = a_in(State::Established);
    let mut bytes = Message::Keepalive
        .to_bytes(&peer.decode_context(c))
        .expect("enc")
        .to_vec();
    bytes[3] = 0; // broken marker
    let err = Message::decode(&bytes, &peer.decode_context(c)).expect_err("bad marker");
    let want = (err.code, err.subcode);
    assert_eq!(want.0, 1, "a header error");
    let out = peer.handle(now, Input::DecodeError(c, err));
    assert_eq!(sent_notification(&out), Some(want));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::StateChange {
            to: State::Idle,
            event: Event::BgpHeaderErr,
            ..
        }
    )));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::PeerDown(x, _) if *x == c)));
    // An OPEN that does not decode (version 3) in OpenSent: 2/1 with "4" as data.
    let (mut peer, c, now) = a_in(State::OpenSent);
    let mut bytes = Message::Open(bgp::negotiate::our_open(&configs().1))
        .to_bytes(&peer.decode_context(c))
        .expect("enc")
        .to_vec();
    bytes[19] = 3;
    let err = Message::decode(&bytes, &peer.decode_context(c)).expect_err("v3");
    let out = peer.handle(now, Input::DecodeError(c, err));
    let n = out
        .iter()
        .find_map(|o| match o {
            Output::Send(_, Message::Notification(n)) => Some(n.clone()),
            _ => None,
        })
        .expect("notification");
    assert_eq!((n.code, n.subcode, &n.data[..]), (2, 1, &[0u8, 4][..]));
    assert_eq!(peer.state(), State::Idle);
}

#[test]
fn corrupted_bytes_on_the_link_end_the_session_on_both_sides() {
    let (a, b) = configs();
    let mut sim = Sim::new(a, b);
    sim.establish();
    let (ca, _) = sim.peers[0].established().expect("up");
    let to_b = sim
        .links
        .iter()
        .find(|l| l.ends[0] == ca)
        .expect("link")
        .ends[1];
    let mut junk = Message::Keepalive
        .to_bytes(&bgp::wire::Context::default())
        .expect("enc")
        .to_vec();
    junk[18] = 9; // unknown message type
    sim.queue.push_back((1, Delivery::Bytes(to_b, junk)));
    sim.run_until(sim.elapsed() + secs(1), |s| {
        s.peers.iter().all(|p| p.state() != State::Established)
    });
    let sent = sim
        .notifications_sent(1)
        .pop()
        .expect("B sent a NOTIFICATION");
    assert_eq!(
        (sent.code, sent.subcode, &sent.data[..]),
        (1, 3, &[9u8][..])
    );
    assert_eq!(sim.notifications_received(0).pop(), Some(sent));
}

// ---- one FSM alone: connection ownership and administrative edges ----

#[test]
fn a_stopped_fsm_refuses_inbound_and_a_connecting_one_takes_it_over_its_attempt() {
    use bgp::fsm::Fsm;
    let (a, _) = configs();
    let now = Instant::now();
    let mut fsm = Fsm::new(a);
    let inbound = ConnId::inbound(7);
    assert_eq!(
        fsm.handle(now, Input::Connected(inbound)),
        vec![Output::Disconnect(inbound)],
        "Idle and stopped: refused"
    );
    let out = fsm.handle(now, Input::Start);
    let Some(Output::Connect(pending)) = out.first().cloned() else {
        panic!("{out:?}")
    };
    assert_eq!(fsm.state(), State::Connect);
    let out = fsm.handle(now, Input::Connected(inbound));
    assert_eq!(out[0], Output::Disconnect(pending));
    assert!(matches!(&out[1], Output::Send(c, Message::Open(_)) if *c == inbound));
    assert_eq!((fsm.state(), fsm.conn()), (State::OpenSent, Some(inbound)));
    // The abandoned attempt's late result is ignored; a third connection is refused.
    assert!(fsm
        .handle(now, Input::Connected(pending))
        .contains(&Output::Disconnect(pending)));
    assert!(fsm.handle(now, Input::Closed(pending)).is_empty());
    let third = ConnId::inbound(8);
    assert_eq!(
        fsm.handle(now, Input::Connected(third)),
        vec![Output::Disconnect(third)]
    );
    assert_eq!((fsm.state(), fsm.conn()), (State::OpenSent, Some(inbound)));
}

#[test]
fn a_passive_peer_waits_in_active_without_timers() {
    let (_, mut b) = configs();
    b.passive = true;
    let now = Instant::now();
    let mut peer = Peer::new(b);
    let out = peer.handle(now, Input::Start);
    assert_eq!(
        out,
        vec![Output::StateChange {
            conn: None,
            from: State::Idle,
            to: State::Active,
            event: Event::ManualStartWithPassiveTcpEstablishment
        }]
    );
    assert_eq!(
        peer.poll_timeout(),
        None,
        "nothing to do until the peer connects"
    );
    // Its connection failing before OPEN brings it back to Active, still without connecting.
    let c = ConnId::inbound(0);
    peer.handle(now, Input::Connected(c));
    assert_eq!(peer.state(), State::OpenSent);
    let out = peer.handle(now, Input::Closed(c));
    assert!(
        out.iter().all(|o| !matches!(o, Output::Connect(_))),
        "{out:?}"
    );
    assert_eq!(peer.state(), State::Active);
    assert_eq!(peer.poll_timeout(), None);
}

#[test]
fn stop_variants_pick_their_cease_subcode_and_data() {
    // (subcode, message) -> (subcode sent, data)
    type Case = (Option<u8>, Option<&'static str>, u8, &'static [u8]);
    let cases: [Case; 4] = [
        (None, None, 2, b""),
        (Some(4), Some("reset"), 4, b"\x05reset"),
        (Some(3), Some("ignored: 6/3 carries no text"), 3, b""),
        (None, Some(""), 2, b"\x00"),
    ];
    for (subcode, message, want_sub, want_data) in cases {
        let (mut peer, c, now) = a_in(State::Established);
        let out = peer.handle(
            now,
            Input::Stop {
                subcode,
                message: message.map(String::from),
            },
        );
        let n = out
            .iter()
            .find_map(|o| match o {
                Output::Send(x, Message::Notification(n)) if *x == c => Some(n.clone()),
                _ => None,
            })
            .expect("a NOTIFICATION");
        assert_eq!((n.code, n.subcode, &n.data[..]), (6, want_sub, want_data));
        assert!(out.contains(&Output::PeerDown(c, DownReason::NotificationSent(n))));
        assert_eq!(peer.state(), State::Idle);
        assert_eq!(peer.poll_timeout(), None, "no restart after a stop");
    }
    // Stopped while still connecting: the attempt is dropped, no NOTIFICATION.
    let (a, _) = configs();
    let now = Instant::now();
    let mut peer = Peer::new(a);
    let Some(Output::Connect(c)) = peer.handle(now, Input::Start).first().cloned() else {
        panic!("no connect")
    };
    let out = peer.handle(
        now,
        Input::Stop {
            subcode: None,
            message: None,
        },
    );
    assert_eq!(out[0], Output::Disconnect(c));
    assert!(out.iter().all(|o| !matches!(o, Output::Send(..))));
    assert_eq!((peer.state(), peer.poll_timeout()), (State::Idle, None));
}

#[test]
fn max_prefix_takes_down_a_second_connection_too() {
    let (mut peer, c, now) = a_in(State::Established);
    let second = ConnId::inbound(5);
    let out = peer.handle(now, Input::Connected(second));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Send(x, Message::Open(_)) if *x == second)));
    assert_eq!(peer.connections().len(), 2);
    let out = peer.handle(
        now,
        Input::MaxPrefixExceeded {
            family: Family::IPV4_UNICAST,
            limit: 10,
        },
    );
    for conn in [c, second] {
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Send(x, Message::Notification(n)) if *x == conn && (n.code, n.subcode) == (6, 1)
        )), "{conn}: {out:?}");
        assert!(out.contains(&Output::Disconnect(conn)));
    }
    assert_eq!(peer.state(), State::Idle);
    assert!(peer.connections().is_empty());
    assert_eq!(peer.poll_timeout(), None, "stays down");
}

#[test]
fn collision_resolution_is_not_reported_as_last_error() {
    let (a, b) = configs();
    let mut sim = Sim::new(a, b);
    sim.establish();
    for side in 0..2 {
        assert_eq!(sim.peers[side].last_error(), None, "side {side}");
    }
}

#[test]
fn config_validation_names_what_cannot_work() {
    use bgp::fsm::ConfigError;
    let (a, _) = configs();
    assert_eq!(a.validate(), Ok(()));
    let mut c = a.clone();
    c.hold_time = 2;
    assert_eq!(c.validate(), Err(ConfigError::HoldTime(2)));
    let mut c = a.clone();
    c.families.clear();
    assert_eq!(c.validate(), Err(ConfigError::NoFamilies));
    let mut c = a.clone();
    c.router_id = Ipv4Addr::UNSPECIFIED;
    assert_eq!(c.validate(), Err(ConfigError::RouterId));
    let mut c = a.clone();
    c.graceful_restart = Some(GracefulRestartConfig {
        restart_time: 5000,
        restarting: false,
        forwarding_preserved: false,
    });
    assert_eq!(c.validate(), Err(ConfigError::RestartTime(5000)));
    let mut c = a;
    c.retry.min = Duration::ZERO;
    assert!(matches!(c.validate(), Err(ConfigError::Backoff(_))));
}

#[test]
fn while_waiting_out_the_backoff_an_inbound_connection_is_accepted() {
    let (a, _) = configs();
    let mut sim = Sim::new(a, configs().1);
    sim.reach[0] = Reach::Refuse;
    sim.feed(0, Input::Start);
    sim.run_until(secs(1), |s| s.queue.is_empty());
    assert_eq!(sim.peers[0].state(), State::Idle);
    assert!(sim.peers[0].poll_timeout().is_some(), "restart pending");
    let c = ConnId::inbound(0);
    let out = sim.peers[0].handle(sim.now, Input::Connected(c));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Send(x, Message::Open(_)) if *x == c)));
    assert_eq!(sim.peers[0].state(), State::OpenSent);
}
