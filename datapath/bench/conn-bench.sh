#!/usr/bin/env bash
# New TCP connections/s through the node: no LB vs kube-proxy-style iptables vs bgplane (lb.c),
# for 1, 1,000, 10,000 and 30,000 services. A benchmark, not a test: CI does not run it.
# Needs root. Installs ab (apache2-utils) and nginx if they are missing, builds the example in
# release mode and runs it; arguments go to the example (see its --help), e.g.
#   datapath/bench/conn-bench.sh --services 1,1000 --rounds 5
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
  echo "conn-bench: needs root (network namespaces, BPF, iptables)" >&2
  exit 2
fi
missing=()
command -v ab >/dev/null || missing+=(apache2-utils)
command -v nginx >/dev/null || missing+=(nginx)
command -v iptables-legacy-restore >/dev/null || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
  echo "conn-bench: installing ${missing[*]} (apt-get install -y --no-install-recommends)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
  # The nginx package may try to start its service; the benchmark starts its own.
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target-datapath}"
cargo build --release -p datapath --example conn_bench >&2
exec "$CARGO_TARGET_DIR/release/examples/conn_bench" "$@"
