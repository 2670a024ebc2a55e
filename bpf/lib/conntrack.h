/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LRU connection tracking of load-balanced flows (lb_ct_v3): a FWD and a REPLY entry per flow,
 * TCP state (FIN each way, RST) kept the same in both, lifetimes by state as Cilium's CT has
 * them, and the rule that keeps a direct connection from being reverse-NATed by a dead flow
 * that used the same tuple (see lb_abi.h).
 */
#ifndef BGPLANE_CONNTRACK_H
#define BGPLANE_CONNTRACK_H

#include "csum.h"
#include "lb_maps.h"

/* Lifetimes in seconds (load-time settings; Cilium 1.11's defaults). */
volatile const __u32 CT_LIFETIME_TCP = 21600; /* established TCP */
volatile const __u32 CT_LIFETIME_SYN = 60;    /* TCP that has seen only SYNs */
volatile const __u32 CT_LIFETIME_CLOSE = 10;  /* TCP after RST, or FIN both ways */
volatile const __u32 CT_LIFETIME_NONTCP = 60; /* UDP */

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

#define LB_CT_F_STATE (LB_CT_F_ESTABLISHED | LB_CT_F_FIN_FWD | LB_CT_F_FIN_REV | LB_CT_F_RST)

static __always_inline int ct_flags_closed(__u16 flags)
{
	return (flags & LB_CT_F_RST) ||
	       (flags & (LB_CT_F_FIN_FWD | LB_CT_F_FIN_REV)) == (LB_CT_F_FIN_FWD | LB_CT_F_FIN_REV);
}

/* A TCP SYN that opens a connection (not the SYN-ACK). */
static __always_inline int pkt_is_syn(const struct pkt *p)
{
	return p->proto == IPPROTO_TCP &&
	       (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
}

/* A TCP packet that changes the flow's close state. */
static __always_inline int pkt_is_fin_rst(const struct pkt *p)
{
	return p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST));
}

/* The state bits a packet seen in direction dir adds. */
static __always_inline __u16 ct_seen_flags(const struct pkt *p, __u8 dir)
{
	__u16 f = 0;

	if (p->proto != IPPROTO_TCP)
		return 0;
	if (!(p->tcp_flags & TCP_FLAG_SYN))
		f |= LB_CT_F_ESTABLISHED;
	if (p->tcp_flags & TCP_FLAG_RST)
		f |= LB_CT_F_RST;
	if (p->tcp_flags & TCP_FLAG_FIN)
		f |= dir == LB_CT_FWD ? LB_CT_F_FIN_FWD : LB_CT_F_FIN_REV;
	return f;
}

static __always_inline __u64 ct_lifetime_ns(__u16 flags, __u8 proto)
{
	__u32 s;

	if (proto != IPPROTO_TCP)
		s = CT_LIFETIME_NONTCP;
	else if (ct_flags_closed(flags))
		s = CT_LIFETIME_CLOSE;
	else if (flags & LB_CT_F_ESTABLISHED)
		s = CT_LIFETIME_TCP;
	else
		s = CT_LIFETIME_SYN;
	return (__u64)s * NSEC_PER_SEC;
}

static __always_inline void ct_key_from_pkt(struct lb_ct_key *key, const struct pkt *p, __u8 dir)
{
	addr_copy(&key->saddr, &p->saddr);
	addr_copy(&key->daddr, &p->daddr);
	key->sport_be = p->sport;
	key->dport_be = p->dport;
	key->proto = p->proto;
	key->dir = dir;
}

/* The entry under key, unless it expired (then it is deleted). */
static __always_inline struct lb_ct_val *ct_get(const struct lb_ct_key *key, __u64 now)
{
	struct lb_ct_val *val = bpf_map_lookup_elem(&lb_ct_v3, key);

	if (val && now > val->expires_ns) {
		bpf_map_delete_elem(&lb_ct_v3, key);
		return NULL;
	}
	return val;
}

static __always_inline struct lb_ct_val *ct_lookup(const struct pkt *p, __u8 dir, __u64 now)
{
	struct lb_ct_key key = {};

	ct_key_from_pkt(&key, p, dir);
	return ct_get(&key, now);
}

/* A packet of the flow was seen in direction dir: its state bits, last seen, expiry. */
static __always_inline void ct_touch(struct lb_ct_val *val, const struct pkt *p, __u8 dir,
				     __u64 now)
{
	__u16 flags = val->flags | ct_seen_flags(p, dir);

	val->flags = flags;
	val->last_seen_ns = now;
	val->expires_ns = now + ct_lifetime_ns(flags, p->proto);
}

/* Brings the other entry of a flow up to date with the state bits of a packet seen on this one
 * (FIN, RST): it may only expire sooner. */
static __always_inline void ct_mark(const struct lb_ct_key *key, __u16 flags, __u8 proto,
				    __u64 now)
{
	struct lb_ct_val *val = bpf_map_lookup_elem(&lb_ct_v3, key);
	__u64 exp;

	if (!val)
		return;
	val->flags |= flags;
	exp = now + ct_lifetime_ns(val->flags, proto);
	if (exp < val->expires_ns)
		val->expires_ns = exp;
}

/* The REPLY key of a flow as the backend's answer will look: backend -> peer. */
static __always_inline void ct_reply_key(struct lb_ct_key *key, const union lb_addr *backend,
					 __be16 backend_port, const union lb_addr *peer,
					 __be16 peer_port, __u8 proto)
{
	addr_copy(&key->saddr, backend);
	addr_copy(&key->daddr, peer);
	key->sport_be = backend_port;
	key->dport_be = peer_port;
	key->proto = proto;
	key->dir = LB_CT_REPLY;
}

/* The FWD key of the flow a REPLY entry belongs to, from a reply packet p (before reverse NAT):
 * client -> frontend. */
static __always_inline void ct_fwd_key_of_reply(struct lb_ct_key *key, const struct pkt *p,
						const struct lb_ct_val *rev)
{
	if (rev->flags & LB_CT_F_SNAT) {
		addr_copy(&key->saddr, &rev->nat_addr);
		key->sport_be = rev->nat_port_be;
	} else {
		addr_copy(&key->saddr, &p->daddr);
		key->sport_be = p->dport;
	}
	addr_copy(&key->daddr, &rev->vip_addr);
	key->dport_be = rev->vip_port_be;
	key->proto = p->proto;
	key->dir = LB_CT_FWD;
}

/*
 * A packet that is not load-balanced here, seen before any translation (lb_ingress, or
 * lb_egress for the node's own connections): when its reversed tuple has a REPLY entry, a
 * direct connection reuses the tuple of a load-balanced flow to the same backend (a socket-LB
 * client, or one dialling the backend's address, that got the same source port). The entry
 * goes, so the backend's answers are not rewritten to the frontend:
 * - TCP: on the connection's SYN, when that flow is closed or expired (a live flow keeps its
 *   entry: the backend, which has that connection, could not accept the SYN anyway);
 * - UDP (udp: the caller sees packets before any DNAT): on any datagram; the load-balanced
 *   flow's next datagram puts the entry back.
 */
static __always_inline void ct_direct(const struct pkt *p, int udp, __u64 now)
{
	struct lb_ct_key key = {};
	struct lb_ct_val *rev;

	if (p->proto == IPPROTO_TCP) {
		if (!pkt_is_syn(p))
			return;
	} else if (!udp) {
		return;
	}
	ct_reply_key(&key, &p->daddr, p->dport, &p->saddr, p->sport, p->proto);
	rev = bpf_map_lookup_elem(&lb_ct_v3, &key);
	if (!rev)
		return;
	if (p->proto == IPPROTO_TCP && !ct_flags_closed(rev->flags) && now <= rev->expires_ns)
		return;
	bpf_map_delete_elem(&lb_ct_v3, &key);
}

#endif
