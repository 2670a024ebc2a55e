/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The map ABI shared by bpf/{lb,sock}.c and datapath/src/maps.rs (which mirrors every struct
 * here with size and offset asserts). Layout version 3: every map name ends in _v3, so a loader
 * of a later layout never adopts (or reads) a pin written with this one. (v3: connection
 * tracking entries carry TCP state and an expiry.)
 *
 * Conventions:
 * - Addresses are 16 bytes, network byte order; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d),
 *   so one set of maps serves both families and a v6 socket dialling ::ffff:VIP hits the same
 *   service as a v4 socket dialling VIP.
 * - Fields ending in _be are network byte order; every other integer is host byte order.
 * - Padding is explicit and always written as zero (hash keys compare every byte).
 */
#ifndef BGPLANE_LB_ABI_H
#define BGPLANE_LB_ABI_H

#include <linux/types.h>

#ifdef LB_TEST_VARIANT
/* Test only (datapath/tests/kernel/obj/{lb,sock}_v2.o, built by bpf/build.sh): a stand-in for
 * the previous release, to test upgrades. Same structs, layout version 2 map names, and lb.c
 * carries one inert extra branch so its program tag differs too. */
#define LB_LAYOUT_VERSION 2
#define lb_svc_v3 lb_svc_v2
#define lb_slot_v3 lb_slot_v2
#define lb_backend_v3 lb_backend_v2
#define lb_svc_ctr_v3 lb_svc_ctr_v2
#define lb_ct_v3 lb_ct_v2
#define lb_affinity_v3 lb_affinity_v2
#define lb_srcrange_v3 lb_srcrange_v2
#define lb_sock_rev_v3 lb_sock_rev_v2
#else
#define LB_LAYOUT_VERSION 3
#endif

union lb_addr {
	__u8 b[16];
	__be32 w[4];
};

/* ---- services: lb_svc_v3 (hash) ------------------------------------------------------- */

struct lb_svc_key {
	union lb_addr addr;
	__be16 port_be;
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad;
};

/* lb_svc_val.kind */
#define LB_KIND_CLUSTER_IP 1
#define LB_KIND_NODE_PORT 2
#define LB_KIND_LOAD_BALANCER 3
#define LB_KIND_EXTERNAL_IP 4

/* lb_svc_val.flags */
#define LB_SVC_F_MAGLEV (1 << 0)     /* tc selects via the Maglev table at maglev_base */
#define LB_SVC_F_AFFINITY (1 << 1)   /* ClientIP affinity, affinity_timeout_s */
#define LB_SVC_F_SRC_RANGE (1 << 2)  /* only clients in lb_srcrange_v3 */
#define LB_SVC_F_DROP_EMPTY (1 << 3) /* no active backend: drop (kube-proxy DROP), not refuse */

struct lb_svc_val {
	__u32 svc_id;             /* 32-bit service id; also the reverse-NAT and counter index */
	__u32 count;              /* active backends: lb_slot_v3[slot_base .. slot_base+count) */
	__u32 slot_base;
	__u32 affinity_timeout_s;
	__u32 maglev_base;        /* Maglev table: lb_slot_v3[maglev_base .. +maglev_size) */
	__u32 maglev_size;        /* entries in this service's Maglev table (a prime) */
	__u16 flags;
	__u8 kind;
	__u8 pad;
};

/* ---- backend slots and Maglev tables: lb_slot_v3 (array, BPF_F_MMAPABLE) --------------- */
/* Seen from user space, one flat array of __u32 backend ids: slot i is backend_id[i % 16] of
 * element i / 16 (array elements are 8-byte strided, so a bare __u32 value would waste half
 * the memory; 16 ids make one 64-byte element). User space allocates regions of this array
 * (power-of-two sized blocks) and writes them through mmap. Make-before-break: a changed
 * service's backends (and Maglev table) are written into a fresh region that nothing points
 * at, then lb_svc_val flips to it in one map update, and the old region is reused only after
 * every program that could still read it has finished. */
#define LB_SLOTS_PER_ENTRY 16

struct lb_slots {
	__u32 backend_id[LB_SLOTS_PER_ENTRY];
};

/* ---- backends: lb_backend_v3 (array, BPF_F_MMAPABLE, key: __u32 backend id) -------------- */
/* An id whose entry lacks LB_BE_F_VALID is no backend (deleted, or never used). User space
 * writes entries in place: a new backend completely before anything refers to its id, a
 * changed one only in its flags byte. */

#define LB_BE_F_LOCAL (1 << 0)       /* on this node: no SNAT toward it */
#define LB_BE_F_TERMINATING (1 << 1) /* active in no service: affinity must not pick it */
#define LB_BE_F_VALID (1 << 2)       /* the entry is a backend */

struct lb_backend_val {
	union lb_addr addr;
	__be16 port_be;
	__u8 flags;
	__u8 pad;
	__u32 pad2; /* array elements are 8-byte strided: spelled out so mmap sees 24 bytes */
};

/* ---- per-service counters: lb_svc_ctr_v3 (per-CPU array, key: __u32 svc id) ------------- */
/* tc (lb.c) counts every packet it load-balances toward a frontend; the socket hooks (sock.c)
 * see no packets and count connections (connect(), or a new per-socket UDP selection) only. */
struct lb_svc_counters {
	__u64 packets;     /* tc: packets to the frontend (new and established flows) */
	__u64 bytes;       /* tc: their bytes (skb->len) */
	__u64 connections; /* new backend selections (tc: new flows; sockets: connects) */
	__u64 dropped;     /* no backend, or the client is outside loadBalancerSourceRanges */
};

/* ---- connection tracking: lb_ct_v3 (LRU hash) ------------------------------------------ */
/* Two entries per load-balanced flow, one per direction, as Cilium's CT has them: FWD as the
 * client's packets arrive (client -> frontend), REPLY as the backend's answers arrive (backend
 * -> client, or -> node SNAT address). Each carries the flow's TCP state (FIN seen from either
 * side, RST) and an expiry; an expired entry is no entry. A direct connection (one that is not
 * load-balanced here) whose SYN reuses the tuple of a closed or expired flow removes that
 * flow's REPLY entry, so its answers are not reverse-NATed to the frontend; a UDP datagram
 * sent straight to a backend does the same (the last sender owns the tuple: the FWD entry
 * puts the REPLY entry back on the load-balanced flow's next datagram). */

#define LB_CT_FWD 0   /* client -> frontend, as received */
#define LB_CT_REPLY 1 /* backend -> client (or node SNAT address), as received */

struct lb_ct_key {
	union lb_addr saddr;
	union lb_addr daddr;
	__be16 sport_be;
	__be16 dport_be;
	__u8 proto;
	__u8 dir;
	__u8 pad[2];
};

#define LB_CT_F_SNAT (1 << 0)        /* the flow is source-NATed to the node address */
#define LB_CT_F_ESTABLISHED (1 << 1) /* TCP: a packet without SYN was seen */
#define LB_CT_F_FIN_FWD (1 << 2)     /* TCP: the client sent FIN */
#define LB_CT_F_FIN_REV (1 << 3)     /* TCP: the backend sent FIN */
#define LB_CT_F_RST (1 << 4)         /* TCP: either side sent RST */
/* Closed: RST, or FIN both ways. Both entries of a flow carry the same state bits. */

/*
 * FWD entries: backend_id/svc_id chosen; if SNAT, nat_addr/nat_port_be is the node address and
 * port used toward the backend.
 * REPLY entries: vip_addr/vip_port_be is the frontend restored as source; if SNAT,
 * nat_addr/nat_port_be is the client restored as destination.
 * expires_ns (bpf_ktime_get_ns): last_seen_ns plus the lifetime of the flow's state (Cilium's
 * defaults: TCP established 6 h, SYN only 60 s, closed 10 s, UDP 60 s; load-time settings).
 */
struct lb_ct_val {
	union lb_addr vip_addr;
	union lb_addr nat_addr;
	__be16 vip_port_be;
	__be16 nat_port_be;
	__u32 backend_id;
	__u32 svc_id;
	__u16 flags;
	__u8 pad[2];
	__u64 last_seen_ns;
	__u64 expires_ns;
};

/* ---- session affinity: lb_affinity_v3 (LRU hash) --------------------------------------- */

#define LB_AFF_CLIENT_IP 0  /* client: the client address (tc) */
#define LB_AFF_NETNS 1      /* client.w[0..1]: netns cookie (socket LB ClientIP affinity) */
#define LB_AFF_SOCKET 2     /* client.w[0..1]: socket cookie (unconnected UDP, per socket) */

struct lb_affinity_key {
	union lb_addr client;
	__u32 svc_id;
	__u8 by;
	__u8 pad[3];
};

struct lb_affinity_val {
	__u64 last_used_ns;
	__u32 backend_id;
	__u32 pad;
};

/* ---- loadBalancerSourceRanges: lb_srcrange_v3 (LPM trie) -------------------------------- */
/* prefixlen counts svc_id's 32 bits plus the address prefix (IPv4: 96 + len). The svc_id is
 * always fully inside the prefix, so its byte order does not matter to the match. */
struct lb_srcrange_key {
	__u32 prefixlen;
	__u32 svc_id;
	union lb_addr addr;
};

/* ---- socket LB reverse translation: lb_sock_rev_v3 (LRU hash) --------------------------- */

struct lb_sock_rev_key {
	__u64 cookie;
	union lb_addr addr; /* backend */
	__be16 port_be;
	__u8 pad[6];
};

struct lb_sock_rev_val {
	union lb_addr addr; /* frontend */
	__be16 port_be;
	__u8 pad[2];
};

_Static_assert(sizeof(union lb_addr) == 16, "lb_addr");
_Static_assert(sizeof(struct lb_svc_key) == 20, "lb_svc_key");
_Static_assert(sizeof(struct lb_svc_val) == 28, "lb_svc_val");
_Static_assert(sizeof(struct lb_slots) == 64, "lb_slots");
_Static_assert(sizeof(struct lb_backend_val) == 24, "lb_backend_val");
_Static_assert(sizeof(struct lb_svc_counters) == 32, "lb_svc_counters");
_Static_assert(sizeof(struct lb_ct_key) == 40, "lb_ct_key");
_Static_assert(sizeof(struct lb_ct_val) == 64, "lb_ct_val");
_Static_assert(sizeof(struct lb_affinity_key) == 24, "lb_affinity_key");
_Static_assert(sizeof(struct lb_affinity_val) == 16, "lb_affinity_val");
_Static_assert(sizeof(struct lb_srcrange_key) == 24, "lb_srcrange_key");
_Static_assert(sizeof(struct lb_sock_rev_key) == 32, "lb_sock_rev_key");
_Static_assert(sizeof(struct lb_sock_rev_val) == 20, "lb_sock_rev_val");

#endif
