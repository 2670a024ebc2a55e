#!/usr/bin/env bash
# Builds the eBPF objects in bpf/obj/ from the C sources with clang-19. The objects are committed
# so `cargo build` needs only the Rust toolchain (datapath/src/loader.rs include_bytes!s them).
#   bash bpf/build.sh          rebuild bpf/obj/*.o
#   bash bpf/build.sh --check  rebuild into a temporary directory and fail if the committed
#                              objects differ (CI runs this)
# The build is path-independent (debug info says ".", not the checkout's location), so the
# same sources give the same bytes on every machine with clang 19.
set -euo pipefail
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
OBJS=(lb sock)

build() {
  local out=$1
  mkdir -p "$out"
  for o in "${OBJS[@]}"; do
    "$CLANG" -O2 -g -target bpf -Wall -Werror \
      -I/usr/include/x86_64-linux-gnu -Iinclude \
      -fdebug-compilation-dir=. -fdebug-prefix-map="$PWD"=. \
      -c "$o.c" -o "$out/$o.o"
  done
}

if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  build "$tmp"
  status=0
  for o in "${OBJS[@]}"; do
    if ! cmp -s "$tmp/$o.o" "obj/$o.o"; then
      echo "bpf/build.sh --check: bpf/obj/$o.o differs from a clang-19 rebuild of bpf/$o.c;" \
        "run bash bpf/build.sh and commit bpf/obj/" >&2
      status=1
    fi
  done
  [ $status -eq 0 ] && echo "bpf/build.sh --check: committed objects match the sources"
  exit $status
fi
build obj
echo "bpf/build.sh: built ${OBJS[*]/%/.o} in bpf/obj/"
