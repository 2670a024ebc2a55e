//! Restarts with a different program: a pinned link running another build (here: other
//! load-time settings) is switched in place; a pinned link running an older release with another
//! map layout (obj/{lb,sock}_v2.o, bpf/lb.c built with -DLB_TEST_VARIANT: `_v2` maps, another
//! program tag) is switched after the new maps are programmed, connection tracking carried over,
//! and the old pins removed. New connections are polled throughout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use datapath::bpf_sys::{self, ProgInfo, TypedMap};
use datapath::loader::{Datapath, LoadConfig, Objects, TC_EGRESS, TC_INGRESS};
use datapath::maps::{CtKey, CtVal, LbAddr, CT_FWD};
use datapath::plan::{FrontendKind, Protocol};
use datapath::writer::{Maps, Writer};

use crate::env::*;
use crate::netns::*;

static LB_V2: &[u8] = include_bytes!("obj/lb_v2.o");
static SOCK_V2: &[u8] = include_bytes!("obj/sock_v2.o");

/// What the pinned link `links/<name>` runs now.
fn linked_prog(bpffs: &std::path::Path, name: &str) -> ProgInfo {
    let l = bpf_sys::obj_get(&bpffs.join("links").join(name)).expect("open link pin");
    let li = bpf_sys::link_info(&l).expect("link info");
    let p = bpf_sys::prog_fd_by_id(li.prog_id).expect("prog by id");
    bpf_sys::prog_info(&p).expect("prog info")
}

fn map_names(p: &ProgInfo) -> Vec<String> {
    let mut v: Vec<String> = p
        .map_ids
        .iter()
        .map(|&id| bpf_sys::map_name(&bpf_sys::map_fd_by_id(id).expect("map by id")).expect("name"))
        .filter(|n| !n.contains('.'))
        .collect();
    v.sort();
    v
}

/// New connections to `to` from the client namespace, one after another until stopped.
struct Poller {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
    handle: Option<JoinHandle<()>>,
}

impl Poller {
    fn start(client: &str, to: SocketAddr) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, o, f, e, c) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            errors.clone(),
            client.to_string(),
        );
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match connect(&c, to) {
                    Ok((_, g)) if g.starts_with("be") => {
                        o.fetch_add(1, Ordering::SeqCst);
                    }
                    r => {
                        f.fetch_add(1, Ordering::SeqCst);
                        e.lock().unwrap().push(format!("{:?}", r.map(|x| x.1)));
                    }
                }
            }
        });
        Poller {
            stop,
            ok,
            failed,
            errors,
            handle: Some(handle),
        }
    }

    /// Stops and returns (ok, failed, errors).
    fn finish(mut self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let errors = self.errors.lock().unwrap().clone();
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            errors,
        )
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn wait_for_polls(p: &Poller, n: usize) {
    let start = p.ok.load(Ordering::SeqCst);
    // A failed connect takes up to its 3 s timeout; the finish() asserts report failures.
    for _ in 0..1000 {
        if p.ok.load(Ordering::SeqCst) >= start + n {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the poller made no progress");
}

#[test]
fn a_restart_with_other_settings_switches_the_pinned_links_in_place() {
    let lab = Lab::new(5, "repl", 2);
    let bpffs = lab.bpffs();
    let mut a = LoadConfig::new(&bpffs);
    a.ct_lifetimes.tcp = 7200;
    let load = |cfg: LoadConfig| lab.load_info(cfg, false);
    let (st, a_prog) = load(a.clone());
    assert_eq!((st.attached, st.adopted, st.replaced), (2, 0, 0));
    let mut w = lab.writer();
    let vip = lab.frontend(100, false);
    let p = plan(
        "repl",
        FrontendKind::LoadBalancer,
        &vip,
        80,
        Protocol::Tcp,
        lab.backends_of(false, true),
    );
    w.apply(std::slice::from_ref(&p)).expect("apply");
    let (mut long, _) = connect(&lab.client, sa(&vip, 80)).expect("long-lived");
    assert_eq!(linked_prog(&bpffs, "tc-eth0-ingress").id, a_prog.id);

    // The same program and settings: adopted, nothing reloaded onto the link.
    let (st, _) = load(a.clone());
    assert_eq!(
        (st.attached, st.adopted, st.replaced, st.staged),
        (0, 2, 0, 0),
        "{st:?}"
    );
    assert_eq!(
        linked_prog(&bpffs, "tc-eth0-ingress").id,
        a_prog.id,
        "an identical restart replaced the program"
    );

    // Other settings (the default TCP lifetime): the same code, so the same tag, but another
    // program; switched in place while connections are being made.
    let poll = Poller::start(&lab.client, sa(&vip, 80));
    wait_for_polls(&poll, 3);
    let (st, b_prog) = load(LoadConfig::new(&bpffs));
    wait_for_polls(&poll, 3);
    let (ok, failed, errors) = poll.finish();
    assert_eq!(
        (st.attached, st.adopted, st.replaced, st.staged),
        (0, 0, 2, 0),
        "{st:?}"
    );
    assert_eq!(b_prog.tag, a_prog.tag);
    for (pin, name) in [
        ("tc-eth0-ingress", TC_INGRESS),
        ("tc-eth0-egress", TC_EGRESS),
    ] {
        let now = linked_prog(&bpffs, pin);
        assert_ne!(now.id, a_prog.id, "{pin} still runs the old program");
        assert_eq!(now.name, name.chars().take(15).collect::<String>());
    }
    assert_eq!(linked_prog(&bpffs, "tc-eth0-ingress").id, b_prog.id);
    assert_eq!(
        failed, 0,
        "{ok} new connections, {failed} failed during the switch: {errors:?}"
    );
    assert_eq!(
        ping(&mut long, "after-switch").expect("long-lived connection broke"),
        "after-switch"
    );
}

fn fwd_backend(m: &TypedMap<CtKey, CtVal>, client: &str, sport: u16) -> Option<u32> {
    let c = LbAddr::from_ip(client.parse().unwrap());
    m.entries()
        .expect("ct entries")
        .into_iter()
        .find(|(k, _)| k.dir == CT_FWD && k.saddr == c && u16::from_be(k.sport_be) == sport)
        .map(|(_, v)| v.backend_id)
}

#[test]
fn an_upgrade_to_a_new_map_layout_carries_a_long_lived_connection_and_removes_the_old_pins() {
    let lab = Lab::new(6, "upg", 2);
    let bpffs = lab.bpffs();
    let vip = lab.frontend(100, false);
    let client_ip = format!("10.99.{}.2", lab.base);

    // The old release: v2 objects, v2 maps, programmed by a writer of that layout. A service
    // written and kept first makes the old backend ids differ from the ones the new writer picks.
    let mut old_cfg = LoadConfig::new(&bpffs);
    old_cfg.objects = Some(Objects {
        lb: LB_V2.to_vec(),
        sock: SOCK_V2.to_vec(),
    });
    let (st, old_prog) = lab.load_info(old_cfg, false);
    assert_eq!(st.attached, 2);
    assert!(
        map_names(&old_prog).iter().all(|n| n.ends_with("_v2")),
        "{:?}",
        map_names(&old_prog)
    );
    let dummy = plan(
        "dummy",
        FrontendKind::LoadBalancer,
        &lab.frontend(101, false),
        80,
        Protocol::Tcp,
        (50..53)
            .map(|h| be(&format!("10.99.{}.{h}", lab.base + 8), PORT, true))
            .collect(),
    );
    let mut p = plan(
        "upg",
        FrontendKind::LoadBalancer,
        &vip,
        80,
        Protocol::Tcp,
        lab.backends_of(false, true),
    );
    {
        let mut w = Writer::adopt(
            Maps::open_layout(&bpffs, 2).expect("v2 maps"),
            writer_cfg(vec![lab.node_ip(false).parse().unwrap()]),
        )
        .expect("v2 writer");
        w.apply(std::slice::from_ref(&dummy)).expect("apply dummy");
        w.apply(&[dummy.clone(), p.clone()]).expect("apply v2");
    }
    let (mut long, name) = connect(&lab.client, sa(&vip, 80)).expect("long-lived");
    assert_eq!(ping(&mut long, "before").expect("echo"), "before");
    let sport = long.local_addr().unwrap().port();
    let old_ct: TypedMap<CtKey, CtVal> =
        TypedMap::open_pinned(&bpffs.join("lb_ct_v2"), "lb_ct_v2").expect("old ct");
    let old_be = fwd_backend(&old_ct, &client_ip, sport).expect("the flow in the v2 CT");
    drop(old_ct);
    let (chosen, other) = lab.greeted_by(&name);

    // The new release starts while connections are being made: its maps are programmed (the
    // long-lived connection's backend now terminating, a new service on port 81) before the
    // links switch.
    let poll = Poller::start(&lab.client, sa(&vip, 80));
    wait_for_polls(&poll, 3);
    p.active.retain(|b| *b != chosen);
    p.terminating = vec![chosen.clone()];
    let p81 = plan(
        "new",
        FrontendKind::LoadBalancer,
        &vip,
        81,
        Protocol::Tcp,
        lab.backends_of(false, true),
    );
    let plans = vec![p.clone(), p81];
    let b2 = bpffs.clone();
    let node_ip = lab.node_ip(false);
    let (st, staged_prog, up, new_prog) = in_netns(Some(&lab.node), move || {
        let mut dp = Datapath::load(&LoadConfig::new(&b2)).expect("load v3");
        let st = dp.attach_tc("eth0").expect("attach v3");
        // Staged: the old program still runs until the new maps are full.
        let staged_prog = linked_prog(&b2, "tc-eth0-ingress");
        let cfg = writer_cfg(vec![node_ip.parse().unwrap()]);
        let mut w = Writer::open(&b2, cfg).expect("v3 writer");
        w.apply(&plans).expect("apply v3");
        let up = dp.finish_upgrade().expect("finish upgrade");
        (
            st,
            staged_prog,
            up,
            dp.program_info(TC_INGRESS).expect("info"),
        )
    });
    wait_for_polls(&poll, 3);
    let (ok, failed, errors) = poll.finish();
    eprintln!("upgrade: {ok} new connections during the upgrade, {failed} failed; {up:?}");

    assert_eq!(
        (st.attached, st.adopted, st.replaced, st.staged),
        (0, 0, 0, 2),
        "{st:?}"
    );
    assert_eq!(
        staged_prog.id, old_prog.id,
        "the link switched before the new maps were programmed"
    );
    assert_ne!(new_prog.tag, old_prog.tag);
    for pin in ["tc-eth0-ingress", "tc-eth0-egress"] {
        let now = linked_prog(&bpffs, pin);
        if pin == "tc-eth0-ingress" {
            assert_eq!(now.tag, new_prog.tag, "{pin} does not run the new program");
        }
        let maps = map_names(&now);
        assert!(maps.iter().all(|n| n.ends_with("_v3")), "{pin}: {maps:?}");
    }
    assert_eq!(up.links_updated, 2, "{up:?}");
    assert!(up.ct_migrated >= 2, "{up:?}");
    let mut left: Vec<String> = std::fs::read_dir(&bpffs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("_v2"))
        .collect();
    left.sort();
    assert!(left.is_empty(), "old pins left: {left:?} ({up:?})");
    assert_eq!(up.pins_removed.len(), 8, "{up:?}");

    // The established flow kept its (now terminating) backend: its entry was carried over with
    // the backend's new id.
    let new_ct: TypedMap<CtKey, CtVal> =
        TypedMap::open_pinned(&bpffs.join("lb_ct_v3"), "lb_ct_v3").expect("new ct");
    let new_be = fwd_backend(&new_ct, &client_ip, sport).expect("the flow in the v3 CT");
    assert_ne!(
        new_be, old_be,
        "the test meant the backend ids to differ across layouts"
    );
    assert_eq!(
        ping(&mut long, "after-upgrade").expect("long-lived connection broke"),
        "after-upgrade"
    );
    assert_eq!(
        failed, 0,
        "{ok} new connections, {failed} failed during the upgrade: {errors:?}"
    );
    // The new state is what serves now.
    for _ in 0..8 {
        assert_eq!(
            greeting(&lab.client, sa(&vip, 80)),
            other,
            "a new connection hit the terminating backend"
        );
    }
    let g = greeting(&lab.client, sa(&vip, 81));
    assert!(g == "be1" || g == "be2", "{g}");
    assert_eq!(
        ping(&mut long, "still").expect("long-lived connection broke"),
        "still"
    );
}
