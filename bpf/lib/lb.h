/* SPDX-License-Identifier: Apache-2.0 */
/* Service lookup and backend selection, shared by the tc (lb.c) and socket (sock.c) paths. */
#ifndef BGPLANE_LB_H
#define BGPLANE_LB_H

#include "common.h"
#include "lb_maps.h"

static __always_inline struct lb_svc_val *lb_svc_lookup(const union lb_addr *addr, __be16 port,
							 __u8 proto)
{
	struct lb_svc_key key = {};

	addr_copy(&key.addr, addr);
	key.port_be = port;
	key.proto = proto;
	return bpf_map_lookup_elem(&lb_svc_v3, &key);
}

static __always_inline struct lb_backend_val *lb_backend_lookup(__u32 backend_id)
{
	struct lb_backend_val *be;

	if (!backend_id)
		return NULL;
	be = bpf_map_lookup_elem(&lb_backend_v3, &backend_id);
	if (!be || !(be->flags & LB_BE_F_VALID))
		return NULL;
	return be;
}

/* The backend id in entry idx of lb_slot_v3 (0: none). */
static __always_inline __u32 lb_slot_get(__u32 idx)
{
	__u32 key = idx / LB_SLOTS_PER_ENTRY;
	struct lb_slots *s = bpf_map_lookup_elem(&lb_slot_v3, &key);

	return s ? s->backend_id[idx % LB_SLOTS_PER_ENTRY] : 0;
}

/* This CPU's counters of a service (NULL past the map's end). */
static __always_inline struct lb_svc_counters *lb_counters(const struct lb_svc_val *svc)
{
	__u32 svc_id = svc->svc_id;

	return bpf_map_lookup_elem(&lb_svc_ctr_v3, &svc_id);
}

/* A hash over the flow for Maglev (same flow, same backend, on every node). */
static __always_inline __u32 lb_flow_hash(const union lb_addr *saddr, const union lb_addr *daddr,
					  __be16 sport, __be16 dport, __u8 proto)
{
	__u32 h = 0x9e3779b9u ^ proto;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		h ^= saddr->w[i];
		h *= 0x85ebca6bu;
		h ^= h >> 13;
		h ^= daddr->w[i];
		h *= 0xc2b2ae35u;
		h ^= h >> 16;
	}
	h ^= ((__u32)sport << 16) | dport;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* Picks a backend for a new connection among the service's active backends: Maglev when the
 * service asks for it (hash != 0 is the flow hash), a random slot otherwise. 0: none. */
static __always_inline __u32 lb_select_backend(const struct lb_svc_val *svc, __u32 hash,
					       int use_maglev)
{
	if (svc->count == 0)
		return 0;
	if (use_maglev && (svc->flags & LB_SVC_F_MAGLEV) && svc->maglev_size) {
		__u32 id = lb_slot_get(svc->maglev_base + hash % svc->maglev_size);

		if (id)
			return id;
		/* No table (yet): fall through to the slots, never to nothing. */
	}
	return lb_slot_get(svc->slot_base + bpf_get_prandom_u32() % svc->count);
}

/* Session affinity: the backend this client used within the timeout, if it still exists and is
 * not terminating. 0: none. */
static __always_inline __u32 lb_affinity_get(const struct lb_svc_val *svc,
					     const struct lb_affinity_key *key, __u64 now)
{
	struct lb_affinity_val *val = bpf_map_lookup_elem(&lb_affinity_v3, key);
	struct lb_backend_val *be;

	if (!val)
		return 0;
	if (svc->affinity_timeout_s &&
	    now - val->last_used_ns > (__u64)svc->affinity_timeout_s * NSEC_PER_SEC)
		return 0;
	be = lb_backend_lookup(val->backend_id);
	if (!be || (be->flags & LB_BE_F_TERMINATING))
		return 0;
	val->last_used_ns = now;
	return val->backend_id;
}

static __always_inline void lb_affinity_put(const struct lb_affinity_key *key, __u32 backend_id,
					    __u64 now)
{
	struct lb_affinity_val val = {};

	val.last_used_ns = now;
	val.backend_id = backend_id;
	bpf_map_update_elem(&lb_affinity_v3, key, &val, BPF_ANY);
}

/* loadBalancerSourceRanges: 1 if the client may use the service. */
static __always_inline int lb_src_allowed(const struct lb_svc_val *svc,
					  const union lb_addr *client)
{
	struct lb_srcrange_key key = {};

	if (!(svc->flags & LB_SVC_F_SRC_RANGE))
		return 1;
	key.prefixlen = 32 + 128;
	key.svc_id = svc->svc_id;
	addr_copy(&key.addr, client);
	return bpf_map_lookup_elem(&lb_srcrange_v3, &key) != NULL;
}

#endif
