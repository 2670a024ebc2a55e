#!/usr/bin/env bash
# The test command from the README: installs what the tests need, builds, and runs every test in
# the workspace (unit, property, codec vectors, and the network-namespace interop tests, which
# need root). Run as root on a fresh machine: `sudo bash scripts/test.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: the interop and datapath tests create network namespaces; run as root" >&2
  exit 1
fi
bash scripts/install-deps.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
