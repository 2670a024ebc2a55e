/* SPDX-License-Identifier: Apache-2.0 */
/* LRU connection tracking of load-balanced flows (lb_ct_v2). */
#ifndef BGPLANE_CONNTRACK_H
#define BGPLANE_CONNTRACK_H

#include "csum.h"
#include "lb_maps.h"

static __always_inline void ct_key_from_pkt(struct lb_ct_key *key, const struct pkt *p, __u8 dir)
{
	addr_copy(&key->saddr, &p->saddr);
	addr_copy(&key->daddr, &p->daddr);
	key->sport_be = p->sport;
	key->dport_be = p->dport;
	key->proto = p->proto;
	key->dir = dir;
}

static __always_inline struct lb_ct_val *ct_lookup(const struct pkt *p, __u8 dir)
{
	struct lb_ct_key key = {};
	struct lb_ct_val *val;

	ct_key_from_pkt(&key, p, dir);
	val = bpf_map_lookup_elem(&lb_ct_v2, &key);
	if (val)
		val->last_seen_ns = bpf_ktime_get_ns();
	return val;
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

#endif
