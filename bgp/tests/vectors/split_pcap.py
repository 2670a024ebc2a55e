#!/usr/bin/env python3
"""Cut a pcap of BGP sessions (TCP port 179) into one .hex file per chosen BGP message.

    python3 split_pcap.py CAPTURE.pcap --out DIR      # write the vectors listed in RULES
    python3 split_pcap.py CAPTURE.pcap --list         # print every message, decoded

Standard library only. TCP streams are reassembled per direction from their SYN (segments are
placed by sequence number, retransmitted and overlapping bytes are dropped), so a message may
span segments and a segment may hold several messages. Each connection's two OPENs give the
context of every later message on it (4-octet AS, ADD-PATH, extended messages), which the
decoder here uses to describe the message in the file's `# what:` line.

The addresses -> speakers map (NODES) matches the topology that capture.sh builds.
"""

import argparse
import ipaddress
import os
import struct
import subprocess
import sys
import time

# ----------------------------------------------------------------------------- topology
# last octet / last group -> (speaker kind, node name)
NODES = {
    1: ("frr", "frr-rr"),
    2: ("frr", "frr-client"),
    3: ("bird", "bird"),
    4: ("exabgp", "exabgp"),
    14: ("exabgp", "exabgp-2octet"),
    5: ("gobgp", "gobgp"),
    6: ("bird", "bird2oct"),
    7: ("frr", "frr-as4"),
    8: ("frr", "frr-c1"),
    9: ("frr", "frr-c2"),
}


def node_of(addr):
    ip = ipaddress.ip_address(addr)
    if ip.version == 4 and ip in ipaddress.ip_network("10.99.200.0/24"):
        return NODES.get(int(ip) & 0xFF)
    if ip.version == 6 and ip in ipaddress.ip_network("fd00:99:200::/64"):
        return NODES.get(int(ip) & 0xFFFF)
    return None


def _version(cmd, prefix, default):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        for line in (out.stdout + out.stderr).splitlines():
            if prefix in line:
                return line.split(prefix, 1)[1].strip().split()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    return default


def daemon_versions():
    return {
        "frr": "FRR " + _version(["/usr/lib/frr/bgpd", "--version"], "bgpd version", "8.4.4"),
        "bird": "BIRD " + _version(["bird", "--version"], "BIRD version", "2.0.12"),
        "gobgp": "GoBGP " + _version(["gobgpd", "--version"], "gobgpd version", "3.10.0"),
        "exabgp": "ExaBGP " + _version(["exabgp", "--version"], "ExaBGP :", "4.2.21"),
    }


# ----------------------------------------------------------------------------- pcap + TCP
def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap file (magic {magic.hex()})")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", data[off : off + 16])
        off += 16
        yield sec + frac / (1e9 if nano else 1e6), linktype, data[off : off + incl]
        off += incl


def parse_tcp(linktype, frame):
    """-> (src, sport, dst, dport, seq, flags, payload) or None."""
    if linktype == 1:  # Ethernet
        etype = struct.unpack("!H", frame[12:14])[0]
        pkt = frame[14:]
        if etype == 0x8100:
            etype = struct.unpack("!H", frame[16:18])[0]
            pkt = frame[18:]
    elif linktype == 113:  # Linux cooked
        etype = struct.unpack("!H", frame[14:16])[0]
        pkt = frame[16:]
    else:
        return None
    if etype == 0x0800:
        ihl = (pkt[0] & 0x0F) * 4
        total = struct.unpack("!H", pkt[2:4])[0]
        if pkt[9] != 6:
            return None
        src, dst = str(ipaddress.IPv4Address(pkt[12:16])), str(ipaddress.IPv4Address(pkt[16:20]))
        seg = pkt[ihl:total]
    elif etype == 0x86DD:
        plen = struct.unpack("!H", pkt[4:6])[0]
        if pkt[6] != 6:
            return None
        src, dst = str(ipaddress.IPv6Address(pkt[8:24])), str(ipaddress.IPv6Address(pkt[24:40]))
        seg = pkt[40 : 40 + plen]
    else:
        return None
    sport, dport, seq, _ack, offflags = struct.unpack("!HHIIH", seg[:14])
    doff = (offflags >> 12) * 4
    return src, sport, dst, dport, seq, offflags & 0x3F, seg[doff:]


SYN, ACK = 0x02, 0x10


class Flow:
    def __init__(self, key, isn, conn):
        self.key, self.isn, self.conn = key, isn, conn
        self.segs = []  # (offset, ts, payload)

    def stream(self):
        """Contiguous bytes from the start, plus a per-byte-run timestamp list."""
        out = bytearray()
        stamps = []  # (start offset in out, ts)
        for off, ts, data in sorted(self.segs, key=lambda s: (s[0], s[1])):
            if off > len(out):
                break  # gap: bytes lost in capture, stop here
            new = data[len(out) - off :]
            if new:
                stamps.append((len(out), ts))
                out += new
        return bytes(out), stamps


def reassemble(path):
    flows = {}  # 4-tuple -> current Flow
    conns = []  # list of [flow_a, flow_b]
    for ts, lt, frame in read_pcap(path):
        p = parse_tcp(lt, frame)
        if p is None:
            continue
        src, sport, dst, dport, seq, flags, payload = p
        key = (src, sport, dst, dport)
        rkey = (dst, dport, src, sport)
        if flags & SYN:
            cur = flows.get(key)
            if cur is not None and cur.isn == (seq + 1) & 0xFFFFFFFF:
                continue  # retransmitted SYN
            if flags & ACK and rkey in flows:
                conn = flows[rkey].conn
            else:
                conn = len(conns)
                conns.append([])
            flow = Flow(key, (seq + 1) & 0xFFFFFFFF, conn)
            flows[key] = flow
            conns[conn].append(flow)
            continue
        flow = flows.get(key)
        if flow is None or not payload:
            continue
        flow.segs.append(((seq - flow.isn) & 0xFFFFFFFF, ts, payload))
    return conns


def split_messages(stream, stamps):
    msgs = []
    off = 0
    si = 0
    while off + 19 <= len(stream):
        length = struct.unpack("!H", stream[off + 16 : off + 18])[0]
        if stream[off : off + 16] != b"\xff" * 16 or length < 19:
            break  # lost framing; nothing after this is trustworthy
        if off + length > len(stream):
            break
        while si + 1 < len(stamps) and stamps[si + 1][0] <= off:
            si += 1
        msgs.append((stamps[si][1] if stamps else 0.0, stream[off : off + length]))
        off += length
    return msgs, len(stream) - off


# ----------------------------------------------------------------------------- decoding
AFI = {1: "ipv4", 2: "ipv6"}
SAFI = {1: "unicast", 2: "multicast", 4: "labeled-unicast", 128: "vpn"}
MSG_TYPE = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}
CAP = {
    1: "MP",
    2: "ROUTE-REFRESH",
    5: "EXTENDED-NEXTHOP",
    6: "EXTENDED-MESSAGE",
    64: "GRACEFUL-RESTART",
    65: "AS4",
    69: "ADD-PATH",
    70: "ENHANCED-ROUTE-REFRESH",
    71: "LONG-LIVED-GR",
    73: "FQDN",
    128: "ROUTE-REFRESH-OLD-CISCO",
}
ATTR = {
    1: "ORIGIN",
    2: "AS_PATH",
    3: "NEXT_HOP",
    4: "MULTI_EXIT_DISC",
    5: "LOCAL_PREF",
    6: "ATOMIC_AGGREGATE",
    7: "AGGREGATOR",
    8: "COMMUNITIES",
    9: "ORIGINATOR_ID",
    10: "CLUSTER_LIST",
    14: "MP_REACH_NLRI",
    15: "MP_UNREACH_NLRI",
    16: "EXTENDED_COMMUNITIES",
    17: "AS4_PATH",
    18: "AS4_AGGREGATOR",
    32: "LARGE_COMMUNITY",
}
NOTIF = {
    1: ("Message Header Error", {1: "Connection Not Synchronized", 2: "Bad Message Length", 3: "Bad Message Type"}),
    2: (
        "OPEN Message Error",
        {1: "Unsupported Version Number", 2: "Bad Peer AS", 3: "Bad BGP Identifier",
         4: "Unsupported Optional Parameter", 6: "Unacceptable Hold Time", 7: "Unsupported Capability"},
    ),
    3: ("UPDATE Message Error", {}),
    4: ("Hold Timer Expired", {}),
    5: ("Finite State Machine Error", {}),
    6: (
        "Cease",
        {1: "Maximum Number of Prefixes Reached", 2: "Administrative Shutdown", 3: "Peer De-configured",
         4: "Administrative Reset", 5: "Connection Rejected", 6: "Other Configuration Change",
         7: "Connection Collision Resolution", 8: "Out of Resources", 9: "Hard Reset"},
    ),
}
WELL_KNOWN_COMM = {0xFFFFFF01: "no-export", 0xFFFFFF02: "no-advertise", 0xFFFFFF03: "no-export-subconfed",
                   0xFFFF0006: "llgr-stale", 0xFFFF0007: "no-llgr", 0xFFFF0000: "graceful-shutdown"}


def afisafi(afi, safi):
    return f"{AFI.get(afi, f'afi{afi}')}-{SAFI.get(safi, f'safi{safi}')}"


class Open:
    def __init__(self, body):
        self.version, self.my_as, self.hold, bgpid = struct.unpack("!BHHI", body[:9])
        self.bgp_id = str(ipaddress.IPv4Address(bgpid))
        self.extended_params = False
        optlen = body[9]
        p = body[10:]
        if optlen == 255 and len(p) >= 3 and p[0] == 255:  # RFC 9072
            self.extended_params = True
            optlen = struct.unpack("!H", p[1:3])[0]
            p, hdr = p[3 : 3 + optlen], 3
        else:
            p, hdr = p[:optlen], 2
        self.caps = []  # (code, value bytes)
        self.params = []  # (param type, count)
        i = 0
        while i < len(p):
            ptype = p[i]
            plen = struct.unpack("!H", p[i + 1 : i + 3])[0] if hdr == 3 else p[i + 1]
            val = p[i + hdr : i + hdr + plen]
            i += hdr + plen
            n = 0
            if ptype == 2:
                j = 0
                while j + 2 <= len(val):
                    code, clen = val[j], val[j + 1]
                    self.caps.append((code, val[j + 2 : j + 2 + clen]))
                    j += 2 + clen
                    n += 1
            self.params.append((ptype, n))
        self.as4 = None
        self.addpath = {}  # (afi,safi) -> send/receive bits
        self.extmsg = False
        for code, v in self.caps:
            if code == 65:
                self.as4 = struct.unpack("!I", v)[0]
            elif code == 69:
                for k in range(0, len(v) - 3, 4):
                    afi, safi, sr = struct.unpack("!HBB", v[k : k + 4])
                    self.addpath[(afi, safi)] = sr
            elif code == 6:
                self.extmsg = True

    @property
    def asn(self):
        return self.as4 if self.as4 is not None else self.my_as

    def describe(self):
        parts = [f"version {self.version}, my AS {self.my_as}, hold {self.hold}, id {self.bgp_id}"]
        if self.extended_params:
            parts.append("RFC 9072 extended optional parameters length")
        parts.append(f"{len(self.params)} optional parameter(s)")
        caps = [describe_cap(c, v) for c, v in self.caps]
        return "OPEN " + ", ".join(parts) + "; capabilities: " + "; ".join(caps)


def describe_cap(code, v):
    name = CAP.get(code, f"unknown-{code}")
    if code == 1:
        afi, _r, safi = struct.unpack("!HBB", v)
        return f"{name}({code}) {afisafi(afi, safi)}"
    if code == 65:
        return f"{name}({code}) {struct.unpack('!I', v)[0]}"
    if code == 64:
        w = struct.unpack("!H", v[:2])[0]
        flags = []
        if w & 0x8000:
            flags.append("R")
        if w & 0x4000:
            flags.append("N")
        afs = []
        for k in range(2, len(v) - 3, 4):
            afi, safi, f = struct.unpack("!HBB", v[k : k + 4])
            afs.append(afisafi(afi, safi) + (" F" if f & 0x80 else " no-F"))
        return f"{name}({code}) flags [{' '.join(flags)}] time {w & 0x0FFF}s afis [{', '.join(afs)}]"
    if code == 69:
        sr = {1: "receive", 2: "send", 3: "send/receive"}
        afs = []
        for k in range(0, len(v) - 3, 4):
            afi, safi, b = struct.unpack("!HBB", v[k : k + 4])
            afs.append(f"{afisafi(afi, safi)} {sr.get(b, b)}")
        return f"{name}({code}) " + ", ".join(afs)
    if code == 71:
        afs = []
        for k in range(0, len(v) - 6, 7):
            afi, safi, f = struct.unpack("!HBB", v[k : k + 4])
            stale = int.from_bytes(v[k + 4 : k + 7], "big")
            afs.append(f"{afisafi(afi, safi)}{' F' if f & 0x80 else ''} stale {stale}s")
        return f"{name}({code}) " + (", ".join(afs) if afs else "empty")
    if code == 73:
        hl = v[0]
        host = v[1 : 1 + hl].decode(errors="replace")
        dl = v[1 + hl] if len(v) > 1 + hl else 0
        dom = v[2 + hl : 2 + hl + dl].decode(errors="replace")
        return f"{name}({code}) host '{host}' domain '{dom}'"
    if code == 5:
        ts = []
        for k in range(0, len(v) - 5, 6):
            afi, safi, nh = struct.unpack("!HHH", v[k : k + 6])
            ts.append(f"{afisafi(afi, safi)} nh {AFI.get(nh, nh)}")
        return f"{name}({code}) " + ", ".join(ts)
    if v:
        return f"{name}({code}) len {len(v)} 0x{v.hex()}"
    return f"{name}({code})"


def prefixes(data, afi, addpath):
    out = []
    i = 0
    while i < len(data):
        pid = None
        if addpath:
            pid = struct.unpack("!I", data[i : i + 4])[0]
            i += 4
        plen = data[i]
        nb = (plen + 7) // 8
        raw = data[i + 1 : i + 1 + nb]
        i += 1 + nb
        full = raw + bytes((4 if afi == 1 else 16) - nb)
        addr = ipaddress.ip_address(full)
        s = f"{addr}/{plen}"
        out.append(s if pid is None else f"{s} path-id {pid}")
    return out


def aspath(v, width):
    segs = []
    i = 0
    while i < len(v):
        t, n = v[i], v[i + 1]
        asns = [int.from_bytes(v[i + 2 + k * width : i + 2 + (k + 1) * width], "big") for k in range(n)]
        i += 2 + n * width
        s = " ".join(map(str, asns))
        segs.append({1: "{%s}", 2: "%s", 3: "(%s)", 4: "[%s]"}.get(t, "?%s") % s)
    return "[" + " ".join(segs) + "]"


def ext_comm(c):
    t, st = c[0], c[1]
    if t in (0x00, 0x40) and st in (2, 3):
        return f"{'rt' if st == 2 else 'soo'}:{struct.unpack('!H', c[2:4])[0]}:{struct.unpack('!I', c[4:8])[0]}"
    if t in (0x02, 0x42) and st in (2, 3):
        return f"{'rt' if st == 2 else 'soo'}:{struct.unpack('!I', c[2:6])[0]}:{struct.unpack('!H', c[6:8])[0]}"
    if t in (0x01, 0x41) and st in (2, 3):
        return f"{'rt' if st == 2 else 'soo'}:{ipaddress.IPv4Address(c[2:6])}:{struct.unpack('!H', c[6:8])[0]}"
    return "0x" + c.hex()


def describe_update(body, ctx):
    wlen = struct.unpack("!H", body[:2])[0]
    withdrawn = body[2 : 2 + wlen]
    alen = struct.unpack("!H", body[2 + wlen : 4 + wlen])[0]
    attrs = body[4 + wlen : 4 + wlen + alen]
    nlri = body[4 + wlen + alen :]
    width = 4 if ctx["as4"] else 2
    ap = ctx["addpath_rx"]
    info = {"attr_codes": [], "withdrawn": [], "nlri": [], "mp_reach": None, "mp_unreach": None, "flags": {}}
    parts = []
    if withdrawn:
        info["withdrawn"] = prefixes(withdrawn, 1, (1, 1) in ap)
        parts.append("withdrawn " + " ".join(info["withdrawn"]))
    i = 0
    apart = []
    while i < len(attrs):
        flags, code = attrs[i], attrs[i + 1]
        if flags & 0x10:
            ln = struct.unpack("!H", attrs[i + 2 : i + 4])[0]
            v = attrs[i + 4 : i + 4 + ln]
            i += 4 + ln
        else:
            ln = attrs[i + 2]
            v = attrs[i + 3 : i + 3 + ln]
            i += 3 + ln
        info["attr_codes"].append(code)
        info["flags"][code] = flags
        name = ATTR.get(code, f"UNKNOWN({code})")
        fl = []
        if flags & 0x80:
            fl.append("optional")
        fl.append("transitive" if flags & 0x40 else "non-transitive")
        if flags & 0x20:
            fl.append("partial")
        if flags & 0x10:
            fl.append("extended-length")
        if code == 1:
            val = {0: "IGP", 1: "EGP", 2: "INCOMPLETE"}.get(v[0], v[0])
        elif code == 2:
            val = aspath(v, width)
        elif code == 17:
            val = aspath(v, 4)
        elif code in (3, 9):
            val = str(ipaddress.IPv4Address(v))
        elif code in (4, 5):
            val = str(struct.unpack("!I", v)[0])
        elif code == 6:
            val = ""
        elif code in (7, 18):
            w = 4 if (code == 18 or len(v) == 8) else 2
            val = f"{int.from_bytes(v[:w], 'big')} {ipaddress.IPv4Address(v[w:w + 4])}"
        elif code == 8:
            cs = []
            for k in range(0, len(v), 4):
                c = struct.unpack("!I", v[k : k + 4])[0]
                cs.append(WELL_KNOWN_COMM.get(c, f"{c >> 16}:{c & 0xFFFF}"))
            val = " ".join(cs)
        elif code == 10:
            val = " ".join(str(ipaddress.IPv4Address(v[k : k + 4])) for k in range(0, len(v), 4))
        elif code == 16:
            val = " ".join(ext_comm(v[k : k + 8]) for k in range(0, len(v), 8))
        elif code == 32:
            val = " ".join(":".join(str(x) for x in struct.unpack("!III", v[k : k + 12])) for k in range(0, len(v), 12))
        elif code == 14:
            afi, safi, nhl = struct.unpack("!HBB", v[:4])
            nh = v[4 : 4 + nhl]
            if nhl in (16, 32):
                nhs = [str(ipaddress.IPv6Address(nh[k : k + 16])) for k in range(0, nhl, 16)]
            elif nhl == 4:
                nhs = [str(ipaddress.IPv4Address(nh))]
            else:
                nhs = ["0x" + nh.hex()]
            pf = prefixes(v[5 + nhl :], afi, (afi, safi) in ap)
            info["mp_reach"] = {"afi": afi, "safi": safi, "nhlen": nhl, "nh": nhs, "nlri": pf}
            val = f"{afisafi(afi, safi)} next-hop {' + '.join(nhs)} (len {nhl}) nlri {' '.join(pf) or 'none'}"
        elif code == 15:
            afi, safi = struct.unpack("!HB", v[:3])
            pf = prefixes(v[3:], afi, (afi, safi) in ap)
            info["mp_unreach"] = {"afi": afi, "safi": safi, "nlri": pf}
            val = f"{afisafi(afi, safi)} withdrawn {' '.join(pf) or 'none (End-of-RIB)'}"
        else:
            val = f"len {ln} 0x{v.hex()}"
        apart.append(f"{name}[{' '.join(fl)}]" + (f" {val}" if val else ""))
    if apart:
        parts.append("attributes: " + "; ".join(apart))
    if nlri:
        info["nlri"] = prefixes(nlri, 1, (1, 1) in ap)
        parts.append("nlri " + " ".join(info["nlri"]))
    if not withdrawn and not attrs and not nlri:
        info["eor"] = (1, 1)
        return "UPDATE End-of-RIB ipv4-unicast (empty UPDATE)", info
    if not withdrawn and not nlri and info["attr_codes"] == [15] and not info["mp_unreach"]["nlri"]:
        m = info["mp_unreach"]
        info["eor"] = (m["afi"], m["safi"])
        return f"UPDATE End-of-RIB {afisafi(m['afi'], m['safi'])} (MP_UNREACH_NLRI with no NLRI)", info
    return "UPDATE " + "; ".join(parts), info


def describe(msg, ctx):
    mtype = msg[18]
    body = msg[19:]
    info = {"type": MSG_TYPE.get(mtype, str(mtype))}
    if mtype == 1:
        o = Open(body)
        info["open"] = o
        return o.describe(), info
    if mtype == 2:
        d, extra = describe_update(body, ctx)
        info.update(extra)
        return d, info
    if mtype == 3:
        code, sub = body[0], body[1]
        data = body[2:]
        cname, subs = NOTIF.get(code, (f"code {code}", {}))
        sname = subs.get(sub, f"subcode {sub}") if sub else "unspecific"
        info["code"], info["subcode"], info["data"] = code, sub, data
        s = f"NOTIFICATION {cname} ({code}) / {sname} ({sub})"
        if code == 6 and sub in (2, 4) and data:
            n = data[0]
            text = data[1 : 1 + n].decode(errors="replace")
            info["text"] = text
            s += f", RFC 9003 shutdown communication ({n} octets): \"{text}\""
            if len(data) > 1 + n:
                s += f", then {len(data) - 1 - n} more octets"
        elif data:
            s += f", data {len(data)} octets 0x{data.hex()}"
        else:
            s += ", no data"
        return s, info
    if mtype == 4:
        return "KEEPALIVE", info
    if mtype == 5:
        afi, sub, safi = struct.unpack("!HBB", body[:4])
        info["subtype"] = sub
        sname = {0: "normal route refresh request", 1: "BoRR (beginning of route refresh, RFC 7313)",
                 2: "EoRR (end of route refresh, RFC 7313)"}.get(sub, f"subtype {sub}")
        return f"ROUTE-REFRESH {afisafi(afi, safi)} {sname}", info
    return f"message type {mtype}", info


# ----------------------------------------------------------------------------- collection
class Msg:
    pass


def collect(path):
    out = []
    for conn_id, flows in enumerate(reassemble(path)):
        per_dir = {}
        for fl in flows:
            stream, stamps = fl.stream()
            per_dir[fl.key], rest = split_messages(stream, stamps)
            if rest:
                print(f"warning: {fl.key} conn {conn_id}: {rest} trailing bytes do not form a whole BGP message",
                      file=sys.stderr)
        opens = {}
        for key, msgs in per_dir.items():
            if msgs and msgs[0][1][18] == 1:
                opens[key] = Open(msgs[0][1][19:])
        for key, msgs in per_dir.items():
            rkey = (key[2], key[3], key[0], key[1])
            so, ro = opens.get(key), opens.get(rkey)
            ctx = {"as4": False, "addpath_rx": set(), "extmsg": False, "complete": so is not None and ro is not None}
            if so and ro:
                ctx["as4"] = so.as4 is not None and ro.as4 is not None
                ctx["extmsg"] = so.extmsg and ro.extmsg
                ctx["addpath_rx"] = {
                    af for af, bits in ro.addpath.items() if bits & 1 and so.addpath.get(af, 0) & 2
                }
            for idx, (ts, raw) in enumerate(msgs):
                m = Msg()
                m.conn, m.idx, m.ts, m.raw, m.ctx = conn_id, idx, ts, raw, ctx
                m.src, m.dst = key[0], key[2]
                m.snode, m.rnode = node_of(key[0]), node_of(key[2])
                m.sopen, m.ropen = so, ro
                try:
                    m.desc, m.info = describe(raw, ctx)
                except (IndexError, struct.error, ValueError) as e:
                    m.desc, m.info = f"undecodable ({e})", {"type": "?"}
                out.append(m)
    out.sort(key=lambda m: (m.ts, m.conn, m.idx))
    return out


# ----------------------------------------------------------------------------- rules
def T(m):
    return m.info["type"]


def has(m, *codes):
    return T(m) == "UPDATE" and all(c in m.info["attr_codes"] for c in codes)


def mp(m, afi):
    r = m.info.get("mp_reach") if T(m) == "UPDATE" else None
    return r is not None and r["afi"] == afi and r["nlri"]


def cap_codes(m):
    return {c for c, _ in m.info["open"].caps} if T(m) == "OPEN" else set()


# (file stem, sender node, receiver node or None, predicate). First match in capture order wins.
RULES = [
    ("frr-open", "frr-rr", "frr-client", lambda m: T(m) == "OPEN" and m.src == "10.99.200.1"),
    ("frr-open-llgr-extended-nexthop", "frr-rr", "frr-as4", lambda m: T(m) == "OPEN" and {5, 71} <= cap_codes(m)),
    ("frr-open-gr-forwarding-bits", "frr-client", "frr-rr", lambda m: T(m) == "OPEN" and m.src == "10.99.200.2"),
    ("frr-open-extended-optional-params", "frr-client", "bird", lambda m: T(m) == "OPEN" and m.info["open"].extended_params),
    ("frr-open-as4-as-trans", "frr-as4", "frr-rr", lambda m: T(m) == "OPEN"),
    ("bird-open", "bird", "frr-rr", lambda m: T(m) == "OPEN" and m.src == "10.99.200.3"),
    ("bird-open-2octet", "bird2oct", "frr-rr", lambda m: T(m) == "OPEN"),
    ("gobgp-open", "gobgp", "frr-rr", lambda m: T(m) == "OPEN" and m.src == "10.99.200.5"),
    ("gobgp-open-ipv6", "gobgp", "frr-rr", lambda m: T(m) == "OPEN" and ":" in m.src),
    ("exabgp-open", "exabgp", "frr-rr", lambda m: T(m) == "OPEN"),
    ("exabgp-open-2octet", "exabgp-2octet", "frr-rr", lambda m: T(m) == "OPEN"),
    ("frr-keepalive", "frr-rr", "bird", lambda m: T(m) == "KEEPALIVE"),
    ("bird-keepalive", "bird", "frr-rr", lambda m: T(m) == "KEEPALIVE"),
    ("gobgp-keepalive", "gobgp", "frr-rr", lambda m: T(m) == "KEEPALIVE"),
    ("exabgp-keepalive", "exabgp", "frr-rr", lambda m: T(m) == "KEEPALIVE"),
    # UPDATEs
    ("exabgp-update-all-attributes", "exabgp", "frr-rr", lambda m: has(m, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 250)),
    ("exabgp-update-as4path-2octet", "exabgp-2octet", "frr-rr", lambda m: has(m, 17)),
    ("frr-update-reflected-originator-cluster", "frr-rr", "frr-client",
     lambda m: has(m, 9, 10) and m.info["nlri"] and len(m.info["nlri"]) > 1),
    ("frr-update-as-set-aggregate", "frr-rr", None,
     lambda m: T(m) == "UPDATE" and any(p.startswith("192.0.2.0/24") for p in m.info["nlri"]) and has(m, 7)
     and m.rnode[1] in ("bird", "gobgp")),
    ("frr-update-as4-path", "frr-rr", "bird", lambda m: has(m, 2) and any(p.startswith("198.51.100.0/24") for p in m.info["nlri"])),
    ("frr-update-as4path-as4aggregator-to-2octet", "frr-rr", "bird2oct",
     lambda m: has(m, 17, 18) and "198.51.100.0/24" in m.info["nlri"]),
    ("frr-update-as4-merged-from-2octet", "frr-rr", "exabgp", lambda m: "10.14.0.0/16" in m.info.get("nlri", [])),
    ("frr-update-as4path-reencoded-to-2octet", "frr-rr", "bird2oct",
     lambda m: has(m, 17, 18) and "10.14.0.0/16" in m.info["nlri"]),
    ("frr-update-ipv4-addpath", "frr-rr", "frr-client",
     lambda m: T(m) == "UPDATE" and any(p.startswith("203.0.113.0/24 path-id") for p in m.info["nlri"])),
    ("frr-update-ipv4-addpath-second-path", "frr-rr", "frr-client",
     lambda m: T(m) == "UPDATE" and any(p.startswith("203.0.113.0/24 path-id") for p in m.info["nlri"])
     and "AS_PATH[transitive extended-length] [65005]" in m.desc),
    ("frr-update-ipv6-addpath", "frr-rr", "frr-client",
     lambda m: mp(m, 2) and m.info["mp_reach"]["nhlen"] == 16 and len(m.info["mp_reach"]["nlri"]) > 1),
    ("frr-update-ipv6-addpath-link-local", "frr-rr", "frr-client",
     lambda m: mp(m, 2) and m.info["mp_reach"]["nhlen"] == 32),
    ("frr-update-ipv6-nexthop-link-local", "frr-rr", "bird", lambda m: mp(m, 2) and m.info["mp_reach"]["nhlen"] == 32),
    ("frr-update-extended-nexthop-ipv4", "frr-as4", "frr-rr", lambda m: mp(m, 1)),
    ("frr-update-ipv6-link-local-as4", "frr-as4", "frr-rr", lambda m: mp(m, 2)),
    ("frr-update-ipv4-withdraw", "frr-rr", None, lambda m: T(m) == "UPDATE" and m.info["withdrawn"]),
    ("frr-update-ipv6-mp-unreach", "frr-rr", None, lambda m: T(m) == "UPDATE" and m.info.get("mp_unreach") and m.info["mp_unreach"]["nlri"]),
    ("frr-update-eor-ipv4", "frr-rr", None, lambda m: T(m) == "UPDATE" and m.info.get("eor") == (1, 1)),
    ("frr-update-eor-ipv6", "frr-rr", None, lambda m: T(m) == "UPDATE" and m.info.get("eor") == (2, 1)),
    ("bird-update-ipv4-communities", "bird", "frr-rr", lambda m: has(m, 4, 8, 16, 32) and len(m.info["nlri"]) > 1),
    ("bird-update-ipv6-mp-reach", "bird", "frr-rr", lambda m: mp(m, 2)),
    ("bird-update-ipv6-mp-unreach", "bird", "frr-rr", lambda m: T(m) == "UPDATE" and m.info.get("mp_unreach") and m.info["mp_unreach"]["nlri"]),
    ("bird-update-eor-ipv4", "bird", "frr-rr", lambda m: T(m) == "UPDATE" and m.info.get("eor") == (1, 1)),
    ("bird-update-2octet", "bird2oct", "frr-rr", lambda m: has(m, 2) and m.info["nlri"]),
    ("gobgp-update-addpath", "gobgp", "frr-rr",
     lambda m: T(m) == "UPDATE" and any("path-id" in p for p in m.info["nlri"])),
    ("gobgp-update-ipv6-addpath", "gobgp", "frr-rr", lambda m: mp(m, 2)),
    ("gobgp-update-ipv4-withdraw-addpath", "gobgp", "frr-rr", lambda m: T(m) == "UPDATE" and m.info["withdrawn"]),
    ("gobgp-update-ipv6-mp-unreach-addpath", "gobgp", "frr-rr",
     lambda m: T(m) == "UPDATE" and m.info.get("mp_unreach") and m.info["mp_unreach"]["nlri"]),
    ("gobgp-update-eor-ipv4", "gobgp", "frr-rr", lambda m: T(m) == "UPDATE" and m.info.get("eor") == (1, 1)),
    ("gobgp-update-eor-ipv6", "gobgp", "frr-rr", lambda m: T(m) == "UPDATE" and m.info.get("eor") == (2, 1)),
    ("frr-update-unknown-attr-partial", "frr-rr", "bird", lambda m: has(m, 250) and m.info["flags"][250] & 0x20),
    ("exabgp-update-extended-message", "exabgp", "frr-rr", lambda m: T(m) == "UPDATE" and len(m.raw) > 4096),
    ("frr-update-extended-message-reflected", "frr-rr", "frr-client", lambda m: T(m) == "UPDATE" and len(m.raw) > 4096),
    ("frr-update-confed-sequence", "frr-c1", "frr-c2", lambda m: has(m, 2) and "(" in m.desc and "65001" in m.desc),
    ("frr-update-confed-local", "frr-c2", "frr-c1", lambda m: has(m, 2) and "192.0.2.192/26" in m.info["nlri"]),
    ("frr-update-from-confederation", "frr-c1", "frr-rr", lambda m: has(m, 2) and "192.0.2.192/26" in m.info["nlri"]),
    ("exabgp-update-eor-ipv4", "exabgp", "frr-rr", lambda m: T(m) == "UPDATE" and m.info.get("eor") == (1, 1)),
    # ROUTE-REFRESH
    ("frr-route-refresh", "frr-client", "frr-rr", lambda m: T(m) == "ROUTE-REFRESH" and m.info["subtype"] == 0),
    ("frr-route-refresh-borr", "frr-rr", "frr-client", lambda m: T(m) == "ROUTE-REFRESH" and m.info["subtype"] == 1),
    ("frr-route-refresh-eorr", "frr-rr", "frr-client", lambda m: T(m) == "ROUTE-REFRESH" and m.info["subtype"] == 2),
    ("bird-route-refresh-borr", "bird", "frr-rr", lambda m: T(m) == "ROUTE-REFRESH" and m.info["subtype"] == 1),
    ("bird-route-refresh-eorr", "bird", "frr-rr", lambda m: T(m) == "ROUTE-REFRESH" and m.info["subtype"] == 2),
    # NOTIFICATION
    ("frr-notification-shutdown-message", "frr-rr", "gobgp", lambda m: T(m) == "NOTIFICATION" and m.info.get("text")),
    ("frr-notification-peer-deconfigured", "frr-rr", "exabgp-2octet", lambda m: T(m) == "NOTIFICATION" and m.info["code"] == 6),
    ("frr-notification-bad-peer-as", "frr-as4", "bird", lambda m: T(m) == "NOTIFICATION" and (m.info["code"], m.info["subcode"]) == (2, 2)),
    ("frr-notification-open-error-unspecific", "frr-client", "bird", lambda m: T(m) == "NOTIFICATION" and (m.info["code"], m.info["subcode"]) == (2, 0)),
    ("bird-notification-bad-peer-as", "bird", "frr-client", lambda m: T(m) == "NOTIFICATION" and (m.info["code"], m.info["subcode"]) == (2, 2)),
    ("frr-notification-hold-timer-expired", "frr-rr", "bird2oct", lambda m: T(m) == "NOTIFICATION" and m.info["code"] == 4),
    ("gobgp-notification-admin-reset", "gobgp", "frr-rr", lambda m: T(m) == "NOTIFICATION" and m.info["code"] == 6),
    ("bird-notification-shutdown-message", "bird", "frr-rr", lambda m: T(m) == "NOTIFICATION" and m.info.get("text")),
]


def context_line(m):
    c = m.ctx
    ap = ",".join(afisafi(*af) for af in sorted(c["addpath_rx"])) or "none"
    return f"# context: as4={'yes' if c['as4'] else 'no'} addpath-rx={ap} extmsg={'yes' if c['extmsg'] else 'no'}"


def source_line(m, versions):
    sk, sn = m.snode
    rk, rn = m.rnode
    sas = m.sopen.asn if m.sopen else "?"
    ras = m.ropen.asn if m.ropen else "?"
    kind = "iBGP" if sas == ras else "eBGP"
    date = time.strftime("%Y-%m-%d", time.gmtime(m.ts))
    return (f"# source: {versions[sk]} -> {versions[rk]}, {kind}, "
            f"AS{sas} -> AS{ras}, captured with tcpdump in a network namespace on {date}\n"
            f"# nodes: {sn} {m.src} -> {rn} {m.dst} (topology in capture.sh), TCP connection {m.conn}")


def write_vector(path, m, versions):
    hexs = m.raw.hex()
    lines = [source_line(m, versions), f"# what: {m.desc}", context_line(m)]
    if not m.ctx["complete"]:
        lines.append("# note: context from the OPENs of this connection; one OPEN was not in the capture")
    body = [hexs[i : i + 64] for i in range(0, len(hexs), 64)]
    with open(path, "w") as f:
        f.write("\n".join(lines + body) + "\n")


def self_test():
    """Reassembly check on a synthetic pcap: one message split over two segments, two messages
    in one segment, a retransmitted overlapping segment and out-of-order arrival."""
    import tempfile

    def frame(src, dst, sport, dport, seq, flags, payload):
        tcp = struct.pack("!HHIIHHHH", sport, dport, seq, 0, (5 << 12) | flags, 65535, 0, 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
        return b"\x00" * 12 + b"\x08\x00" + ip + tcp

    ka = b"\xff" * 16 + b"\x00\x13\x04"
    op = b"\xff" * 16 + struct.pack("!HBBHHIB", 29, 1, 4, 65001, 9, 0x0A63C801, 0)
    stream = op + ka + ka
    a, b = "10.99.200.1", "10.99.200.2"
    isn = 1000
    frames = [frame(a, b, 40000, 179, isn, SYN, b""), frame(b, a, 179, 40000, 5000, SYN | ACK, b"")]
    segs = [(0, 10), (25, 48), (10, 30), (48, len(stream))]  # out of order, overlap at 25..30
    for s, e in segs:
        frames.append(frame(a, b, 40000, 179, isn + 1 + s, ACK, stream[s:e]))
    with tempfile.NamedTemporaryFile(suffix=".pcap", delete=False) as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000, i, len(fr), len(fr)) + fr)
        path = f.name
    try:
        msgs = [m for m in collect(path) if m.src == a]
    finally:
        os.unlink(path)
    got = [m.raw for m in msgs]
    if got != [op, ka, ka]:
        print(f"self-test FAILED: got {[g.hex() for g in got]}", file=sys.stderr)
        return 1
    print("self-test ok: 3 messages reassembled from 4 out-of-order, overlapping segments")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pcap", nargs="?")
    ap.add_argument("--self-test", action="store_true", help="check TCP reassembly on a synthetic pcap")
    ap.add_argument("--out", help="directory to write <name>.hex vectors into")
    ap.add_argument("--list", action="store_true", help="print every message decoded")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.pcap:
        ap.error("a pcap file is needed")
    msgs = collect(args.pcap)
    if args.list or not args.out:
        for m in msgs:
            sn = m.snode[1] if m.snode else m.src
            rn = m.rnode[1] if m.rnode else m.dst
            print(f"{m.ts:.3f} c{m.conn} {sn} -> {rn} [{len(m.raw)}] {m.desc}")
        if not args.out:
            return 0
    versions = daemon_versions()
    missing = []
    for stem, sender, receiver, pred in RULES:
        hit = None
        for m in msgs:
            if not m.snode or m.snode[1] != sender or not m.rnode:
                continue
            if receiver is not None and m.rnode[1] != receiver:
                continue
            try:
                ok = pred(m)
            except (KeyError, TypeError, IndexError):
                ok = False
            if ok:
                hit = m
                break
        if hit is None:
            missing.append(stem)
            continue
        write_vector(os.path.join(args.out, stem + ".hex"), hit, versions)
        print(f"{stem}.hex: {hit.desc[:110]}")
    if missing:
        print("not found in this capture: " + ", ".join(missing), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
