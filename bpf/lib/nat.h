/* SPDX-License-Identifier: Apache-2.0 */
/* DNAT / SNAT / reverse NAT of a parsed packet, and SNAT port allocation. */
#ifndef BGPLANE_NAT_H
#define BGPLANE_NAT_H

#include "csum.h"
#include "conntrack.h"

static __always_inline int nat_rewrite(struct __sk_buff *skb, const struct pkt *p, int is_src,
				       const union lb_addr *addr, __be16 port)
{
	int ret = 0;

	if (!addr_eq(is_src ? &p->saddr : &p->daddr, addr)) {
		ret = csum_rewrite_addr(skb, p, is_src, addr);
		if (ret < 0)
			return ret;
	}
	return csum_rewrite_port(skb, p, is_src, port);
}

/* Allocates a node port for SNAT toward a backend: the REPLY entry (backend -> node:port) is
 * created with BPF_NOEXIST, so two flows never share one. Returns the port or 0. */
static __always_inline __be16 nat_alloc_port(const union lb_addr *backend, __be16 backend_port,
					     const union lb_addr *node, __u8 proto,
					     const struct lb_ct_val *reply, __u16 min, __u16 max)
{
	struct lb_ct_key key = {};
	__u32 span = (__u32)max - min + 1;
	int i;

	addr_copy(&key.saddr, backend);
	addr_copy(&key.daddr, node);
	key.sport_be = backend_port;
	key.proto = proto;
	key.dir = LB_CT_REPLY;
#pragma unroll
	for (i = 0; i < 16; i++) {
		__u16 port = min + (bpf_get_prandom_u32() % span);

		key.dport_be = bpf_htons(port);
		if (bpf_map_update_elem(&lb_ct_v3, &key, reply, BPF_NOEXIST) == 0)
			return key.dport_be;
	}
	return 0;
}

#endif
