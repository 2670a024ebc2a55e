#!/usr/bin/env bash
# The bgplane lab: builds the agent, starts FRR, BIRD, GoBGP and ExaBGP in their own network
# namespaces, each peering with one `bgplane agent` (eBGP, bgplane AS 4200000001), shows
# `bgplane peers` and the routes on every side, then tears everything down.
#
#   sudo bash scripts/lab.sh            # print the state once everything is up, then exit
#   sudo bash scripts/lab.sh --keep     # stay up until Enter (or Ctrl-C), then tear down
#
# Topology (a /30 per router, all in 10.99.240.0/24; FRR also over IPv6):
#   agent 10.99.240.1  <-> frr    10.99.240.2   AS 65001  bgplane active (+ IPv6 fd00:99:f0:1::/64)
#   agent 10.99.240.5  <-> bird   10.99.240.6   AS 65002  bgplane passive (BIRD connects)
#   agent 10.99.240.9  <-> gobgp  10.99.240.10  AS 65003  bgplane active
#   agent 10.99.240.13 <-> exabgp 10.99.240.14  AS 65005  bgplane passive (ExaBGP connects out)
# bgplane originates 198.51.100.0/24 and 2001:db8:100::/48; router N announces 203.0.113.(16N)/28,
# which bgplane passes on to the others.
set -euo pipefail

KEEP=0
for a in "$@"; do
  case "$a" in
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "lab.sh: unknown argument $a (use --keep)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "lab.sh: needs root (network namespaces): sudo bash scripts/lab.sh" >&2; exit 1; }
for b in /usr/lib/frr/bgpd vtysh bird birdc gobgpd gobgp exabgp ip; do
  command -v "$b" >/dev/null || [ -x "$b" ] || { echo "lab.sh: $b missing: run scripts/install-deps.sh" >&2; exit 1; }
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
echo "== building bgplane"
(cd "$ROOT" && cargo build -q -p speaker --bin bgplane)
BGPLANE="${CARGO_TARGET_DIR:-$ROOT/target}/debug/bgplane"

ID="bl-lab$$"
DIR="$(mktemp -d /tmp/bgplane-lab.XXXXXX)"
PIDS=()
NSS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 1
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$DIR"
  echo "== lab removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ns() { ip netns add "$ID-$1"; NSS+=("$ID-$1"); ip -n "$ID-$1" link set lo up; }
in_ns() { local n="$1"; shift; ip netns exec "$ID-$n" "$@"; }
link() { # link ROUTER INDEX
  local r="$1" i="$2" a=$((4 * ($2 - 1) + 1))
  ip link add "v$i" netns "$ID-agent" type veth peer name eth0 netns "$ID-$r"
  ip -n "$ID-agent" addr add "10.99.240.$a/30" dev "v$i"
  ip -n "$ID-$r" addr add "10.99.240.$((a + 1))/30" dev eth0
  ip -n "$ID-agent" addr add "fd00:99:f0:$i::1/64" dev "v$i" nodad
  ip -n "$ID-$r" addr add "fd00:99:f0:$i::2/64" dev eth0 nodad
  ip -n "$ID-agent" link set "v$i" up
  ip -n "$ID-$r" link set eth0 up
}
bg() { # bg NODE LOGFILE CMD... : start in the background, remember the PID
  local n="$1" log="$2"; shift 2
  ip netns exec "$ID-$n" setsid "$@" >"$log" 2>&1 &
  PIDS+=("$!")
}

echo "== namespaces ($ID-*) in $DIR"
ns agent
i=0
for r in frr bird gobgp exabgp; do i=$((i + 1)); ns "$r"; link "$r" "$i"; done
AGENT_AS=4200000001

# --- bgplane agent (MetalLB-format config) ---
cat >"$DIR/bgplane.yaml" <<EOF
peers:
- {my-asn: $AGENT_AS, peer-asn: 65001, peer-address: 10.99.240.2, source-address: 10.99.240.1, router-id: 10.99.240.1, hold-time: 9s}
- {my-asn: $AGENT_AS, peer-asn: 65001, peer-address: "fd00:99:f0:1::2", source-address: "fd00:99:f0:1::1", router-id: 10.99.240.1, hold-time: 9s}
- {my-asn: $AGENT_AS, peer-asn: 65002, peer-address: 10.99.240.6, source-address: 10.99.240.5, router-id: 10.99.240.1, hold-time: 9s, passive: true}
- {my-asn: $AGENT_AS, peer-asn: 65003, peer-address: 10.99.240.10, source-address: 10.99.240.9, router-id: 10.99.240.1, hold-time: 9s}
- {my-asn: $AGENT_AS, peer-asn: 65005, peer-address: 10.99.240.14, source-address: 10.99.240.13, router-id: 10.99.240.1, hold-time: 9s, passive: true}
listen-port: 179
EOF
SOCK="$DIR/bgplane.sock"
bg agent "$DIR/bgplane.log" "$BGPLANE" agent --config "$DIR/bgplane.yaml" --socket "$SOCK" \
  --originate 198.51.100.0/24 --originate 2001:db8:100::/48 --connect-retry 1

# --- FRR ---
mkdir -p "$DIR/frr"
cat >"$DIR/frr/bgpd.conf" <<EOF
hostname lab-frr
log file $DIR/frr/bgpd.log
router bgp 65001
 bgp router-id 10.99.240.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 neighbor 10.99.240.1 remote-as $AGENT_AS
 neighbor 10.99.240.1 timers 3 9
 neighbor 10.99.240.1 passive
 neighbor fd00:99:f0:1::1 remote-as $AGENT_AS
 neighbor fd00:99:f0:1::1 timers 3 9
 neighbor fd00:99:f0:1::1 update-source fd00:99:f0:1::2
 address-family ipv4 unicast
  network 203.0.113.16/28
  neighbor 10.99.240.1 activate
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:201::/48
  neighbor fd00:99:f0:1::1 activate
 exit-address-family
EOF
bg frr "$DIR/frr/out" /usr/lib/frr/bgpd -Z -n -S -P 0 -f "$DIR/frr/bgpd.conf" -i "$DIR/frr/bgpd.pid" --vty_socket "$DIR/frr"

# --- BIRD ---
mkdir -p "$DIR/bird"
cat >"$DIR/bird/bird.conf" <<EOF
router id 10.99.240.6;
protocol device { }
protocol static { ipv4; route 203.0.113.32/28 unreachable; }
protocol bgp bgplane {
  local 10.99.240.6 as 65002;
  neighbor 10.99.240.5 as $AGENT_AS;
  hold time 9; keepalive time 3; connect retry time 2;
  ipv4 { import all; export all; };
}
EOF
bg bird "$DIR/bird/out" bird -f -c "$DIR/bird/bird.conf" -s "$DIR/bird/bird.ctl" -P "$DIR/bird/bird.pid"

# --- GoBGP ---
mkdir -p "$DIR/gobgp"
cat >"$DIR/gobgp/gobgpd.toml" <<EOF
[global.config]
  as = 65003
  router-id = "10.99.240.10"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.99.240.9"
    peer-as = $AGENT_AS
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
    connect-retry = 2
  [neighbors.transport.config]
    passive-mode = true
EOF
GAPI="unix://$DIR/gobgp/api.sock"
bg gobgp "$DIR/gobgp/out" gobgpd -f "$DIR/gobgp/gobgpd.toml" -p --pprof-disable --api-hosts "$GAPI"

# --- ExaBGP (connects out only) ---
mkdir -p "$DIR/exabgp"
cat >"$DIR/exabgp/exabgp.conf" <<EOF
neighbor 10.99.240.13 {
    router-id 10.99.240.14;
    local-address 10.99.240.14;
    local-as 65005;
    peer-as $AGENT_AS;
    hold-time 9;
    family { ipv4 unicast; }
    static { route 203.0.113.64/28 next-hop 10.99.240.14; }
}
EOF
ip netns exec "$ID-exabgp" env exabgp.daemon.user=root exabgp.daemon.daemonize=false \
  exabgp.log.destination="$DIR/exabgp/exabgp.log" setsid exabgp --root "$DIR/exabgp" "$DIR/exabgp/exabgp.conf" \
  >"$DIR/exabgp/out" 2>&1 &
PIDS+=("$!")

# GoBGP's prefix goes in through its API once it answers.
for _ in $(seq 50); do gobgp --target "$GAPI" global >/dev/null 2>&1 && break; sleep 0.2; done
gobgp --target "$GAPI" global rib add 203.0.113.48/28 -a ipv4 >/dev/null

echo "== waiting for all five sessions to be Established (up to 40 s)"
up=0
for _ in $(seq 80); do
  n=$("$BGPLANE" peers -o json --socket "$SOCK" 2>/dev/null | grep -c '"state": "Established"' || true)
  [ "$n" = 5 ] && { up=1; break; }
  sleep 0.5
done
sleep 2 # let the routes settle

echo; echo "== bgplane peers"
"$BGPLANE" peers --socket "$SOCK" || true
echo; echo "== bgplane routes received"
"$BGPLANE" routes received --socket "$SOCK" || true
echo; echo "== bgplane routes advertised --peer 10.99.240.2"
"$BGPLANE" routes advertised --peer 10.99.240.2 --socket "$SOCK" || true
echo; echo "== FRR: show bgp ipv4 unicast / ipv6 unicast"
in_ns frr vtysh --vty_socket "$DIR/frr" -c 'show bgp ipv4 unicast' -c 'show bgp ipv6 unicast' || true
echo; echo "== BIRD: show route"
in_ns bird birdc -s "$DIR/bird/bird.ctl" show route || true
echo; echo "== GoBGP: global rib"
gobgp --target "$GAPI" global rib || true
echo; echo "== ExaBGP log (last lines)"
tail -n 5 "$DIR/exabgp/exabgp.log" 2>/dev/null || true

if [ "$up" != 1 ]; then
  echo; echo "lab.sh: not every session came up; bgplane log:" >&2
  tail -n 40 "$DIR/bgplane.log" >&2
  exit 1
fi
if [ "$KEEP" = 1 ]; then
  echo; echo "== lab is up: BGPLANE=$BGPLANE SOCK=$SOCK; press Enter (or Ctrl-C) to tear it down"
  read -r _ || true
fi
