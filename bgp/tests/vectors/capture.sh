#!/usr/bin/env bash
# Capture real BGP sessions between FRR 8.4, BIRD 2.0, GoBGP 3 and ExaBGP 4.2 in network
# namespaces, tcpdump the shared segment to a pcap, then cut the pcap into .hex vectors.
#
#   sudo bash bgp/tests/vectors/capture.sh [PCAP_OUT]
#
# Default PCAP_OUT is capture.pcap beside this script, and then the .hex vectors here are
# replaced by the new capture's. With another PCAP_OUT the vectors go to vectors/ beside it.
#
# Needs root and the Debian packages frr bird2 gobgpd exabgp tcpdump iproute2.
# Everything lives in namespaces named bv<PID>-*, on 10.99.200.0/24 and fd00:99:200::/64.
# Only the processes this script starts are stopped (by PID), in a trap that also runs on
# failure. KEEP_WORK=1 keeps the daemons' configs and logs; DEBUG=1 prints frr-rr's summary.
#
# Topology: one bridge in a hub namespace (tcpdump runs there), one namespace per speaker:
#   .1  frr-rr      FRR  AS65001  route reflector, zebra (for link-local next hops)
#   .2  frr-client  FRR  AS65001  RR client; also a wrong remote-as toward BIRD (OPEN error)
#   .3  bird        BIRD AS65003  eBGP to frr-rr (v4 + v6 sessions), communities on export
#   .4  exabgp      ExaBGP AS65001 iBGP to frr-rr, a route with every attribute kind
#   .14 exabgp      ExaBGP AS65014 2-octet-only (asn4 disable) eBGP to frr-rr (same process)
#   .5  gobgp       GoBGP AS65005 eBGP to frr-rr (v4 + v6), ADD-PATH send
#   .6  bird2oct    BIRD AS65006  2-octet-only (enable as4 off), hold time 3
#   ::7 frr-as4     FRR  AS4200000001 eBGP over IPv6 to frr-rr with extended next hop
#   .8  frr-c1      FRR  AS65081 in confederation 65080, eBGP (as 65080) to frr-rr
#   .9  frr-c2      FRR  AS65082 in confederation 65080, confederation peer of frr-c1
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PCAP_OUT="${1:-$HERE/capture.pcap}"
P="bv$$"                       # unique prefix for namespaces and links
HUB="$P-hub"
WORK="$(mktemp -d /tmp/bgp-vectors.XXXXXX)"
chmod 755 "$WORK"
PIDS=()                        # every process we started, stopped by PID in cleanup
NSS=()

log() { printf '[capture %s] %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
    local rc=$?
    set +e
    # pid files of daemonising daemons, read again in case they were written late
    for f in "$WORK"/*/*.pid; do
        [ -s "$f" ] && PIDS+=("$(cat "$f")")
    done
    for pid in "${PIDS[@]}"; do
        kill -CONT "$pid" 2>/dev/null
        kill -TERM "$pid" 2>/dev/null
    done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.3
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    if [ "${KEEP_WORK:-0}" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { echo "capture.sh must run as root" >&2; exit 1; }
for b in /usr/lib/frr/bgpd /usr/lib/frr/zebra bird birdc gobgpd gobgp exabgp tcpdump ip; do
    command -v "$b" >/dev/null || { echo "missing $b (apt-get install frr bird2 gobgpd exabgp tcpdump iproute2)" >&2; exit 1; }
done

# ---------------------------------------------------------------- network
ip netns add "$HUB"; NSS+=("$HUB")
ip -n "$HUB" link set lo up
ip -n "$HUB" link add br0 type bridge stp_state 0 forward_delay 0
ip -n "$HUB" link set br0 up

# node NAME IDX V4... (v4 addresses as last octets, v6 gets fd00:99:200::IDX)
node() {
    local name=$1 idx=$2; shift 2
    local ns="$P-$name"
    ip netns add "$ns"; NSS+=("$ns")
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
    ip -n "$HUB" link add "$P-$idx" type veth peer name eth0 netns "$ns"
    ip -n "$HUB" link set "$P-$idx" master br0 up
    for o in "$@"; do ip -n "$ns" addr add "10.99.200.$o/24" dev eth0; done
    ip -n "$ns" addr add "fd00:99:200::$idx/64" dev eth0 nodad
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    mkdir -p "$WORK/$name"
}
node frr-rr 1 1
node frr-client 2 2
node bird 3 3
node exabgp 4 4 14
node gobgp 5 5
node bird2oct 6 6
node frr-as4 7 7
node frr-c1 8 8
node frr-c2 9 9

PCAP="$WORK/capture.pcap"
ip netns exec "$HUB" tcpdump -i br0 -s 0 -U -Z root -w "$PCAP" 'tcp port 179' 2>"$WORK/tcpdump.log" &
PIDS+=($!)
TCPDUMP_PID=$!
for _ in $(seq 50); do [ -s "$PCAP" ] && break; sleep 0.1; done

# ---------------------------------------------------------------- FRR
frr_start() {   # frr_start NAME  (config in $WORK/NAME/bgpd.conf)
    local name=$1 d="$WORK/$1" ns="$P-$1"
    chown frr:frr "$d"
    printf 'hostname %s\n' "$name" >"$d/zebra.conf"
    chown frr:frr "$d/zebra.conf"
    ip netns exec "$ns" /usr/lib/frr/zebra -d -u frr -g frr -f "$d/zebra.conf" -z "$d/zserv.api" \
        -i "$d/zebra.pid" --vty_socket "$d" --log "file:$d/zebra.log"
    for _ in $(seq 50); do [ -S "$d/zserv.api" ] && break; sleep 0.1; done
    ip netns exec "$ns" /usr/lib/frr/bgpd -d -S -n -z "$d/zserv.api" -f "$d/bgpd.conf" \
        -i "$d/bgpd.pid" --vty_socket "$d" --log "file:$d/bgpd.log"
}
vty() { local name=$1; shift; ip netns exec "$P-$name" vtysh --vty_socket "$WORK/$name" "$@"; }

cat >"$WORK/frr-rr/bgpd.conf" <<'EOF'
hostname frr-rr
domainname lab.example
router bgp 65001
 bgp router-id 10.99.200.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 bgp graceful-restart
 bgp long-lived-graceful-restart stale-time 30
 timers bgp 3 9
 neighbor 10.99.200.2 remote-as 65001
 neighbor fd00:99:200::2 remote-as 65001
 neighbor 10.99.200.3 remote-as 65003
 neighbor fd00:99:200::3 remote-as 65003
 neighbor 10.99.200.4 remote-as 65001
 neighbor 10.99.200.4 passive
 neighbor 10.99.200.14 remote-as 65014
 neighbor 10.99.200.14 passive
 neighbor 10.99.200.5 remote-as 65005
 neighbor fd00:99:200::5 remote-as 65005
 neighbor 10.99.200.6 remote-as 65006
 neighbor fd00:99:200::7 remote-as 4200000001
 neighbor fd00:99:200::7 capability extended-nexthop
 neighbor 10.99.200.8 remote-as 65080
 address-family ipv4 unicast
  network 10.99.201.0/24
  neighbor 10.99.200.8 activate
  aggregate-address 192.0.2.0/24 as-set
  neighbor 10.99.200.2 activate
  neighbor 10.99.200.2 route-reflector-client
  neighbor 10.99.200.2 next-hop-self force
  neighbor 10.99.200.2 addpath-tx-all-paths
  neighbor 10.99.200.3 activate
  neighbor 10.99.200.4 activate
  neighbor 10.99.200.4 next-hop-self
  neighbor 10.99.200.14 activate
  neighbor 10.99.200.5 activate
  neighbor 10.99.200.6 activate
  neighbor fd00:99:200::7 activate
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:1::/48
  neighbor fd00:99:200::2 activate
  neighbor fd00:99:200::2 route-reflector-client
  neighbor fd00:99:200::2 next-hop-self force
  neighbor fd00:99:200::2 addpath-tx-all-paths
  neighbor fd00:99:200::3 activate
  neighbor fd00:99:200::5 activate
  neighbor fd00:99:200::7 activate
 exit-address-family
EOF

cat >"$WORK/frr-client/bgpd.conf" <<'EOF'
hostname frr-client
router bgp 65001
 bgp router-id 10.99.200.2
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp graceful-restart
 bgp graceful-restart preserve-fw-state
 timers bgp 3 9
 neighbor 10.99.200.1 remote-as 65001
 neighbor fd00:99:200::1 remote-as 65001
 neighbor 10.99.200.3 remote-as 65003
 neighbor 10.99.200.3 timers connect 2
 neighbor 10.99.200.3 extended-optional-parameters
 address-family ipv4 unicast
  neighbor 10.99.200.1 activate
  neighbor 10.99.200.3 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor fd00:99:200::1 activate
 exit-address-family
EOF

cat >"$WORK/frr-as4/bgpd.conf" <<'EOF'
hostname frr-as4
router bgp 4200000001
 bgp router-id 10.99.200.7
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 timers bgp 3 9
 neighbor fd00:99:200::1 remote-as 65001
 neighbor fd00:99:200::1 capability extended-nexthop
 neighbor 10.99.200.3 remote-as 65333
 neighbor 10.99.200.3 timers connect 2
 address-family ipv4 unicast
  neighbor 10.99.200.3 activate
  network 198.51.100.0/25
  network 198.51.100.128/25
  network 203.0.113.128/25
  aggregate-address 198.51.100.0/24 summary-only
  neighbor fd00:99:200::1 activate
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:7::/48
  neighbor fd00:99:200::1 activate
 exit-address-family
EOF

# confederation 65080 = member ASes 65081 (frr-c1, peers with frr-rr) and 65082 (frr-c2)
cat >"$WORK/frr-c1/bgpd.conf" <<'EOF'
hostname frr-c1
router bgp 65081
 bgp router-id 10.99.200.8
 bgp confederation identifier 65080
 bgp confederation peers 65082
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 timers bgp 3 9
 neighbor 10.99.200.1 remote-as 65001
 neighbor 10.99.200.9 remote-as 65082
 address-family ipv4 unicast
  network 192.0.2.128/25
  neighbor 10.99.200.1 activate
  neighbor 10.99.200.9 activate
 exit-address-family
EOF
cat >"$WORK/frr-c2/bgpd.conf" <<'EOF'
hostname frr-c2
router bgp 65082
 bgp router-id 10.99.200.9
 bgp confederation identifier 65080
 bgp confederation peers 65081
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 timers bgp 3 9
 neighbor 10.99.200.8 remote-as 65081
 address-family ipv4 unicast
  network 192.0.2.192/26
  neighbor 10.99.200.8 activate
 exit-address-family
EOF

# ---------------------------------------------------------------- BIRD
cat >"$WORK/bird/bird.conf" <<EOF
log "$WORK/bird/bird.log" all;
router id 10.99.200.3;
protocol device { scan time 2; }
protocol static s4 {
  ipv4;
  route 203.0.113.0/24 unreachable;
  route 192.0.2.0/26 unreachable;
}
protocol static s6 {
  ipv6;
  route 2001:db8:3::/48 unreachable;
  route 2001:db8:3:100::/56 unreachable;
}
filter out4 {
  bgp_med = 30;
  bgp_community.add((65003,300));
  bgp_ext_community.add((rt, 65003, 30));
  bgp_large_community.add((65003, 3, 4));
  accept;
}
protocol bgp rr4 {
  local 10.99.200.3 as 65003;
  neighbor 10.99.200.1 as 65001;
  hold time 9; connect retry time 2;
  graceful restart on;
  ipv4 { import all; export filter out4; };
}
protocol bgp rr6 {
  local fd00:99:200::3 as 65003;
  neighbor fd00:99:200::1 as 65001;
  hold time 9; connect retry time 2;
  ipv6 { import all; export all; };
}
protocol bgp badas {
  local 10.99.200.3 as 65003;
  neighbor 10.99.200.2 as 65099;
  hold time 9; connect retry time 2;
  ipv4 { import none; export none; };
}
protocol bgp badas7 {
  local 10.99.200.3 as 65003;
  neighbor 10.99.200.7 as 4200000001;
  hold time 9; connect retry time 2;
  ipv4 { import none; export none; };
}
EOF

cat >"$WORK/bird2oct/bird.conf" <<EOF
log "$WORK/bird2oct/bird.log" all;
router id 10.99.200.6;
protocol device { scan time 2; }
protocol static s4 {
  ipv4;
  route 203.0.113.64/26 unreachable;
}
protocol bgp rr4 {
  local 10.99.200.6 as 65006;
  neighbor 10.99.200.1 as 65001;
  enable as4 off;
  hold time 3; keepalive time 1; connect retry time 2;
  ipv4 { import all; export all; };
}
EOF

# ---------------------------------------------------------------- GoBGP
gobgp_nbr() {  # gobgp_nbr ADDR FAMILY
cat <<EOF
[[neighbors]]
  [neighbors.config]
    neighbor-address = "$1"
    peer-as = 65001
  [neighbors.timers.config]
    connect-retry = 2
    hold-time = 9
    keepalive-interval = 3
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "$2"
    [neighbors.afi-safis.add-paths.config]
      send-max = 8
      receive = true
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
EOF
}
{
    printf '[global.config]\n  as = 65005\n  router-id = "10.99.200.5"\n  port = 179\n\n'
    gobgp_nbr 10.99.200.1 ipv4-unicast
    gobgp_nbr fd00:99:200::1 ipv6-unicast
} >"$WORK/gobgp/gobgp.toml"

# ---------------------------------------------------------------- ExaBGP
ALL_ATTRS='origin igp as-path [ 65010 65011 65012 ( 65020 65021 ) ] med 100 local-preference 200 atomic-aggregate aggregator ( 65012:10.99.200.4 ) community [ 65001:100 65001:200 65535:7 ] extended-community [ target:65001:100 origin:65001:7 ] large-community [ 65001:1:2 65001:3:4 ] attribute [ 0xfa 0xc0 0x0102030405 ]'
# 1100 communities (4400 octets): an UPDATE over 4096 octets, legal only with extended messages
BIG_COMMS="$(for i in $(seq 1 1100); do printf '65001:%d ' "$i"; done)"
cat >"$WORK/exabgp/exabgp.conf" <<EOF
neighbor 10.99.200.1 {
  router-id 10.99.200.4;
  local-address 10.99.200.4;
  local-as 65001;
  peer-as 65001;
  hold-time 9;
  group-updates true;
  family { ipv4 unicast; }
  capability { route-refresh; graceful-restart 120; }
  static {
    route 10.0.0.0/8 next-hop 10.99.200.4 $ALL_ATTRS;
    route 172.16.0.0/12 next-hop 10.99.200.4 $ALL_ATTRS;
    route 198.18.0.0/15 next-hop 10.99.200.4 $ALL_ATTRS;
    route 192.168.0.0/16 next-hop 10.99.200.4 $ALL_ATTRS;
    route 192.168.77.0/24 next-hop 10.99.200.4 $ALL_ATTRS;
    route 192.168.78.200/30 next-hop 10.99.200.4 $ALL_ATTRS;
    route 192.168.79.9/32 next-hop 10.99.200.4 $ALL_ATTRS;
    route 192.168.100.0/24 next-hop 10.99.200.4 community [ no-export $BIG_COMMS ];
  }
}
neighbor 10.99.200.1 {
  router-id 10.99.200.14;
  local-address 10.99.200.14;
  local-as 65014;
  peer-as 65001;
  hold-time 9;
  family { ipv4 unicast; }
  capability { asn4 disable; }
  static {
    route 10.14.0.0/16 next-hop 10.99.200.14 origin egp as-path [ 65014 4200000002 ] atomic-aggregate aggregator ( 4200000002:10.99.200.14 );
  }
}
EOF

# ---------------------------------------------------------------- start
log "starting daemons in $P-*"
frr_start frr-rr
frr_start frr-client
frr_start frr-as4
frr_start frr-c1
frr_start frr-c2
for b in bird bird2oct; do
    ip netns exec "$P-$b" bird -c "$WORK/$b/bird.conf" -s "$WORK/$b/bird.ctl" -P "$WORK/$b/bird.pid"
done
ip netns exec "$P-gobgp" gobgpd -f "$WORK/gobgp/gobgp.toml" -p --api-hosts "unix://$WORK/gobgp/api.sock" \
    --pprof-disable >"$WORK/gobgp/gobgpd.log" 2>&1 &
PIDS+=($!)
ip netns exec "$P-exabgp" env exabgp.daemon.user=root exabgp.daemon.daemonize=false \
    exabgp.log.destination="$WORK/exabgp/exa.log" exabgp.tcp.connections=0 \
    exabgp --root "$WORK/exabgp" "$WORK/exabgp/exabgp.conf" >"$WORK/exabgp/stdout.log" 2>&1 &
PIDS+=($!)
for f in "$WORK"/*/*.pid; do for _ in $(seq 30); do [ -s "$f" ] && break; sleep 0.1; done; PIDS+=("$(cat "$f")"); done

gob() { ip netns exec "$P-gobgp" gobgp --target "unix://$WORK/gobgp/api.sock" "$@"; }
for _ in $(seq 50); do gob neighbor >/dev/null 2>&1 && break; sleep 0.2; done
gob global rib -a ipv4 add 203.0.113.0/24 identifier 1 origin igp med 50 community 65005:1
gob global rib -a ipv4 add 203.0.113.0/24 identifier 2 origin incomplete med 60 community 65005:2
gob global rib -a ipv4 add 192.0.2.64/26 identifier 1
gob global rib -a ipv6 add 2001:db8:3::/48 identifier 1 med 70
gob global rib -a ipv6 add 2001:db8:5::/48 identifier 1

log "waiting for sessions"
for i in $(seq 60); do
    n=$(vty frr-rr -c 'show bgp neighbors json' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(1 for v in d.values() if isinstance(v,dict) and v.get("bgpState")=="Established"))')
    [ "$n" -ge 11 ] && break
    sleep 1
done
log "frr-rr has $n established sessions after ${i}s"
sleep 6   # updates, EoR

# ---------------------------------------------------------------- actions
log "route refresh: frr-client -> frr-rr (enhanced), frr-rr -> bird"
vty frr-client -c 'clear bgp ipv4 unicast 10.99.200.1 soft in'
vty frr-rr -c 'clear bgp ipv4 unicast 10.99.200.3 soft in'
sleep 3
log "withdrawals"
gob global rib -a ipv4 del 192.0.2.64/26 identifier 1
gob global rib -a ipv6 del 2001:db8:5::/48 identifier 1
ip netns exec "$P-bird" birdc -s "$WORK/bird/bird.ctl" disable s6 >/dev/null
sleep 3
log "notifications"
gob neighbor 10.99.200.1 reset
vty frr-rr -c 'configure terminal' -c 'router bgp 65001' \
    -c 'neighbor fd00:99:200::5 shutdown message bgplane vector capture: planned maintenance'
ip netns exec "$P-bird" birdc -s "$WORK/bird/bird.ctl" 'disable rr6 "bird going down for maintenance"' >/dev/null
vty frr-rr -c 'configure terminal' -c 'router bgp 65001' -c 'no neighbor 10.99.200.14'
sleep 2
log "hold timer: stopping bird2oct"
kill -STOP "$(cat "$WORK/bird2oct/bird.pid")"
sleep 6
kill -CONT "$(cat "$WORK/bird2oct/bird.pid")"
sleep 1

[ "${DEBUG:-0}" = 1 ] && { vty frr-rr -c 'show bgp summary' >&2 || true; }
kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID" 2>/dev/null || true
log "pcap: $(stat -c %s "$PCAP") bytes"
cp "$PCAP" "$PCAP_OUT"
# write into a fresh directory first, so a failed split leaves the checked-in vectors alone
mkdir "$WORK/vectors"
python3 "$HERE/split_pcap.py" "$PCAP" --out "$WORK/vectors"
if [ "$(realpath "$(dirname "$PCAP_OUT")")" = "$HERE" ]; then
    rm -f "$HERE"/*.hex
    cp "$WORK"/vectors/*.hex "$HERE"/
    log "vectors written to $HERE"
else
    mkdir -p "$(dirname "$PCAP_OUT")/vectors"
    cp "$WORK"/vectors/*.hex "$(dirname "$PCAP_OUT")/vectors/"
    log "vectors written to $(dirname "$PCAP_OUT")/vectors (pcap not in $HERE, checked-in vectors untouched)"
fi
