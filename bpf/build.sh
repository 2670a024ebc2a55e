#!/usr/bin/env bash
# Builds the eBPF objects in bpf/obj/ from the C sources with clang-19. The objects are committed
# so `cargo build` needs only the Rust toolchain (datapath/src/loader.rs include_bytes!s them).
# Also builds the test-only upgrade variant (-DLB_TEST_VARIANT: layout version 2 map names, a
# different lb.c program) into datapath/tests/kernel/obj/{lb,sock}_v2.o, committed likewise.
#   bash bpf/build.sh          rebuild bpf/obj/*.o and the test variant
#   bash bpf/build.sh --check  rebuild into a temporary directory and fail if the committed
#                              objects differ (CI runs this)
# The build is path-independent (debug info says ".", not the checkout's location), so the
# same sources give the same bytes on every machine with clang 19.
set -euo pipefail
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
OBJS=(lb sock)
VARIANT_DIR=../datapath/tests/kernel/obj

build() {
  local out=$1 vout=$2
  mkdir -p "$out" "$vout"
  for o in "${OBJS[@]}"; do
    for v in "" variant; do
      local dst="$out/$o.o" def=()
      if [ -n "$v" ]; then dst="$vout/${o}_v2.o"; def=(-DLB_TEST_VARIANT); fi
      "$CLANG" -O2 -g -target bpf -Wall -Werror "${def[@]}" \
        -I/usr/include/x86_64-linux-gnu -Iinclude \
        -fdebug-compilation-dir=. -fdebug-prefix-map="$PWD"=. \
        -c "$o.c" -o "$dst"
    done
  done
}

if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  build "$tmp/obj" "$tmp/variant"
  status=0
  for o in "${OBJS[@]}"; do
    for pair in "$tmp/obj/$o.o obj/$o.o bpf/$o.c" \
      "$tmp/variant/${o}_v2.o $VARIANT_DIR/${o}_v2.o bpf/$o.c(-DLB_TEST_VARIANT)"; do
      set -- $pair
      if ! cmp -s "$1" "$2"; then
        echo "bpf/build.sh --check: ${2#../} differs from a clang-19 rebuild of $3;" \
          "run bash bpf/build.sh and commit the objects" >&2
        status=1
      fi
    done
  done
  [ $status -eq 0 ] && echo "bpf/build.sh --check: committed objects match the sources"
  exit $status
fi
build obj "$VARIANT_DIR"
echo "bpf/build.sh: built ${OBJS[*]/%/.o} in bpf/obj/, ${OBJS[*]/%/_v2.o} in datapath/tests/kernel/obj/"
