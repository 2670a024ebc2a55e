#!/usr/bin/env bash
# Installs every Debian package bgplane's tests and lab need (see README). Idempotent: skips apt
# when everything is already there. Needs root.
set -euo pipefail
pkgs=(frr bird2 gobgpd exabgp clang-19 llvm-19 libbpf-dev bpftool iproute2 iptables tcpdump
      iputils-ping python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
