/* SPDX-License-Identifier: Apache-2.0 */
/* Checksum-correct rewrites of L3 addresses and L4 ports in an skb. */
#ifndef BGPLANE_CSUM_H
#define BGPLANE_CSUM_H

#include <linux/pkt_cls.h>
#include "common.h"

#define IP4_CSUM_OFF 10
#define IP4_SADDR_OFF 12
#define IP4_DADDR_OFF 16
#define IP6_SADDR_OFF 8
#define IP6_DADDR_OFF 24
#define TCP_CSUM_OFF 16
#define UDP_CSUM_OFF 6

/* What lb.c parsed out of a packet: the 5-tuple and where things are. */
struct pkt {
	union lb_addr saddr;
	union lb_addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 v6;
	__u16 l3off;
	__u16 l4off;
	__u8 tcp_flags; /* TCP: the flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10) */
	__u8 pad;
};

static __always_inline __u32 l4_csum_off(const struct pkt *p)
{
	return p->l4off + (p->proto == IPPROTO_TCP ? TCP_CSUM_OFF : UDP_CSUM_OFF);
}

/* UDP over IPv4 may carry no checksum (0): leave it so. */
static __always_inline __u64 l4_csum_flags(const struct pkt *p)
{
	return (!p->v6 && p->proto == IPPROTO_UDP) ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Rewrites the source (is_src) or destination address, fixing the IPv4 header checksum and the
 * L4 checksum (its pseudo-header covers both addresses). Returns 0 or a negative error. */
static __always_inline int csum_rewrite_addr(struct __sk_buff *skb, const struct pkt *p,
					     int is_src, const union lb_addr *new_addr)
{
	const union lb_addr *old = is_src ? &p->saddr : &p->daddr;
	__u32 csum_off = l4_csum_off(p);
	int ret;

	if (!p->v6) {
		__be32 from = old->w[3], to = new_addr->w[3];
		__u32 off = p->l3off + (is_src ? IP4_SADDR_OFF : IP4_DADDR_OFF);

		ret = bpf_l4_csum_replace(skb, csum_off, from, to,
					  BPF_F_PSEUDO_HDR | sizeof(to) | l4_csum_flags(p));
		if (ret < 0)
			return ret;
		ret = bpf_l3_csum_replace(skb, p->l3off + IP4_CSUM_OFF, from, to, sizeof(to));
		if (ret < 0)
			return ret;
		return bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0);
	} else {
		__u32 off = p->l3off + (is_src ? IP6_SADDR_OFF : IP6_DADDR_OFF);
		union lb_addr from, to;
		__s64 diff;

		addr_copy(&from, old);
		addr_copy(&to, new_addr);
		diff = bpf_csum_diff(from.w, sizeof(from), to.w, sizeof(to), 0);
		if (diff < 0)
			return (int)diff;
		ret = bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR);
		if (ret < 0)
			return ret;
		return bpf_skb_store_bytes(skb, off, to.b, sizeof(to), 0);
	}
}

/* Rewrites the source (is_src) or destination port, fixing the L4 checksum. */
static __always_inline int csum_rewrite_port(struct __sk_buff *skb, const struct pkt *p,
					     int is_src, __be16 to)
{
	__be16 from = is_src ? p->sport : p->dport;
	int ret;

	if (from == to)
		return 0;
	ret = bpf_l4_csum_replace(skb, l4_csum_off(p), from, to, sizeof(to) | l4_csum_flags(p));
	if (ret < 0)
		return ret;
	return bpf_skb_store_bytes(skb, p->l4off + (is_src ? 0 : 2), &to, sizeof(to), 0);
}

#endif
