#!/usr/bin/env bash
# Bounded fuzzing of the BGP message decoder (libFuzzer + AddressSanitizer via cargo-fuzz on the
# stable toolchain). Usage: bash scripts/fuzz.sh [SECONDS]   (default 60)
# A crash leaves its input in bgp/fuzz/artifacts/decode/; copy it into
# bgp/tests/fuzz-regressions/ so `cargo test` keeps checking it.
set -euo pipefail
cd "$(dirname "$0")/../bgp"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p fuzz/corpus/decode
cp -n tests/fuzz-regressions/* fuzz/corpus/decode/ 2>/dev/null || true
RUSTC_BOOTSTRAP=1 cargo fuzz run decode -- -max_total_time="$secs"
