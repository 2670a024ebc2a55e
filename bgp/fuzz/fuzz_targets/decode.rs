//! Fuzz target: any bytes, under any negotiated context (first byte), through framing and
//! decode. `bgp::wire::selfcheck::check` panics if the decoder panics or if what decodes does
//! not round-trip; the same check replays kept crashes in `cargo test -p bgp`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bgp::wire::selfcheck::check(data);
});
