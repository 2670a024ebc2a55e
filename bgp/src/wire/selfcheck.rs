//! The fuzz target's check, shared by `bgp/fuzz` (feature `fuzzing`) and this crate's tests,
//! which replay every input the fuzzer ever crashed on (bgp/tests/fuzz-regressions/) plus a
//! deterministic mutation sweep, so CI runs the same check without cargo-fuzz.
//!
//! Input layout: the first byte picks the context (bit 0 four-octet AS, bit 1 extended
//! message, bit 2 ADD-PATH IPv4 unicast, bit 3 ADD-PATH IPv6 unicast), the rest is a byte
//! stream of BGP messages. The check panics on purpose when the codec breaks a promise.

use super::{frame_len, Context, Family, Message};

/// The context the first input byte selects.
pub fn context(flags: u8) -> Context {
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
    cx
}

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

/// Frame and decode the stream; whatever decodes must re-encode into bytes that decode to the
/// same content. Never panics unless the codec is wrong. Returns how many messages decoded.
pub fn check(data: &[u8]) -> usize {
    let Some((&flags, mut stream)) = data.split_first() else {
        return 0;
    };
    let cx = context(flags);
    let mut decoded = 0;
    while let Ok(Some(n)) = frame_len(stream, cx.max_message_len()) {
        let (msg, rest) = stream.split_at(n);
        stream = rest;
        if let Ok(m) = Message::decode(msg, &cx) {
            decoded += 1;
            if let Ok(bytes) = m.to_bytes(&cx) {
                let again = Message::decode(&bytes, &cx).expect("re-encoded message decodes");
                assert_eq!(
                    content(again),
                    content(m),
                    "decode(encode(x)) == x for {data:02x?}"
                );
            }
        }
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_regressions_decode_cleanly() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("regression dir") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let data = std::fs::read(&path).expect("read regression");
            check(&data);
            n += 1;
        }
        println!("{n} fuzz regressions checked");
    }

    /// Deterministic xorshift so the sweep is the same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic() {
        // Start from valid messages and flip bytes: random bytes alone rarely pass the marker.
        let cx = Context::modern();
        let seeds: Vec<Vec<u8>> = vec![
            Message::Keepalive
                .to_bytes(&cx)
                .expect("keepalive")
                .to_vec(),
            Message::Notification(crate::wire::Notification::cease_with_message(2, "bye"))
                .to_bytes(&cx)
                .expect("notification")
                .to_vec(),
            Message::RouteRefresh(crate::wire::RouteRefresh::request(Family::IPV6_UNICAST))
                .to_bytes(&cx)
                .expect("refresh")
                .to_vec(),
            Message::Open(crate::wire::Open::new(
                65001,
                90,
                std::net::Ipv4Addr::new(10, 99, 0, 1),
                vec![
                    crate::wire::Capability::Multiprotocol(Family::IPV4_UNICAST),
                    crate::wire::Capability::FourOctetAs(65001),
                ],
            ))
            .to_bytes(&cx)
            .expect("open")
            .to_vec(),
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut decoded = 0;
        for round in 0..20_000 {
            let seed = &seeds[round % seeds.len()];
            let mut m = seed.clone();
            for _ in 0..(1 + rng.next() % 4) {
                let i = 16 + (rng.next() as usize) % (m.len() - 16);
                m[i] = rng.next() as u8;
            }
            let mut data = vec![(rng.next() % 16) as u8];
            data.extend_from_slice(&m);
            decoded += check(&data);
        }
        // Most mutations leave a decodable message; if none decoded the sweep tested nothing.
        assert!(decoded > 1_000, "only {decoded} mutated messages decoded");
    }
}
