//! Decode benchmark: a synthetic Internet-like table — 1,000,000 IPv4 and 200,000 IPv6
//! prefixes in ~220,000 UPDATEs with varied AS paths (1-10 ASes, 2- and 4-octet ASNs), MEDs,
//! communities and large communities, and a realistic prefix-length mix — encoded once, then
//! decoded message by message (`frame_len` + `Message::decode`), best of 5.
//!
//! Run: `cargo bench -p bgp --bench decode`. Prints prefixes/s, MB/s and seconds; it asserts
//! nothing about time (the target, ≤ 0.15 s for the table on one core, is read off the output).

use std::time::Instant;

use bgp::synth::{self, Spec};
use bgp::wire::{frame_len, Context, Message};

const V4_PREFIXES: usize = Spec::INTERNET_V4;
const V6_PREFIXES: usize = Spec::INTERNET_V6;
const RUNS: usize = 5;

/// The generator lives in `bgp::synth` (shared with the RIB bench and the ingest feeder).
fn table(cx: &Context) -> (Vec<u8>, usize, usize) {
    let t = synth::table(&Spec::internet(), cx).expect("encodes");
    let prefixes = t.prefixes();
    (t.bytes, t.updates, prefixes)
}

/// Decode the whole stream; returns (messages, prefixes) so nothing is optimised away.
fn decode_all(buf: &[u8], cx: &Context) -> (usize, usize) {
    let max = cx.max_message_len();
    let mut pos = 0;
    let mut messages = 0;
    let mut prefixes = 0;
    while pos < buf.len() {
        let n = match frame_len(&buf[pos..], max) {
            Ok(Some(n)) => n,
            other => panic!("framing failed at {pos}: {other:?}"),
        };
        match Message::decode(&buf[pos..pos + n], cx) {
            Ok(Message::Update(u)) => {
                assert!(u.errors.is_empty());
                prefixes += u.nlri.len();
                if let Some(m) = u.mp_reach() {
                    prefixes += m.nlri.prefixes().len();
                }
            }
            other => panic!("unexpected message at {pos}: {other:?}"),
        }
        messages += 1;
        pos += n;
    }
    (messages, prefixes)
}

fn main() {
    let cx = Context::modern();
    let t = Instant::now();
    let (buf, messages, prefixes) = table(&cx);
    let build = t.elapsed().as_secs_f64();
    println!(
        "table: {messages} UPDATEs, {prefixes} prefixes ({V4_PREFIXES} IPv4 + {V6_PREFIXES} IPv6), {:.1} MB; built and encoded in {build:.3} s",
        buf.len() as f64 / 1e6
    );
    let mut best = f64::INFINITY;
    for run in 1..=RUNS {
        let t = Instant::now();
        let (m, p) = decode_all(&buf, &cx);
        let s = t.elapsed().as_secs_f64();
        assert_eq!((m, p), (messages, prefixes));
        println!("run {run}: {s:.4} s");
        best = best.min(s);
    }
    println!(
        "decode best of {RUNS}: {best:.4} s  {:.2} M prefixes/s  {:.1} MB/s  {:.0} ns/UPDATE",
        prefixes as f64 / best / 1e6,
        buf.len() as f64 / best / 1e6,
        best * 1e9 / messages as f64
    );
}
