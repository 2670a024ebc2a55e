//! Fuzz target: any bytes, under any negotiated context, through framing and decode. It must
//! never panic, and whatever decodes must re-encode into something that decodes to the same
//! value (the codec's round-trip promise).
#![no_main]

use bgp::wire::{frame_len, Context, Family, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    // The first byte picks the context, so every layout is explored.
    let mut cx = Context {
        four_octet_as: flags & 1 != 0,
        extended_message: flags & 2 != 0,
        add_path: Vec::new(),
    };
    if flags & 4 != 0 {
        cx.add_path.push(Family::IPV4_UNICAST);
    }
    if flags & 8 != 0 {
        cx.add_path.push(Family::IPV6_UNICAST);
    }
    bgp_fuzz_check(&cx, stream);
});

/// The message without the RFC 7606 error reports: those describe the bytes that arrived
/// (what was discarded and why), and a re-encoding no longer carries the discarded parts, so
/// they may differ while the recovered content must not.
fn content(m: Message) -> Message {
    match m {
        Message::Update(mut u) => {
            u.errors.clear();
            Message::Update(u)
        }
        m => m,
    }
}

fn bgp_fuzz_check(cx: &Context, mut stream: &[u8]) {
    while let Ok(Some(n)) = frame_len(stream, cx.max_message_len()) {
        let (msg, rest) = stream.split_at(n);
        stream = rest;
        if let Ok(m) = Message::decode(msg, cx) {
            if let Ok(bytes) = m.to_bytes(cx) {
                let again = Message::decode(&bytes, cx).expect("re-encoded message must decode");
                assert_eq!(content(again), content(m), "decode(encode(x)) == x");
            }
        }
    }
}
