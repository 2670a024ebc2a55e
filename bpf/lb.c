/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tc programs for the node's external devices (north-south load balancing):
 * - lb_ingress: LoadBalancer VIP / ExternalIP / NodePort traffic is DNATed to a backend with LRU
 *   connection tracking; backends on another node are also SNATed to the node address (port
 *   allocated in the CT table) and sent straight out (FIB lookup + redirect), so their replies
 *   come back to this node, where lb_ingress reverses both translations.
 * - lb_egress: replies of backends on this node get their frontend restored as the source.
 * Connection tracking (lib/conntrack.h) keeps TCP state and lifetimes per flow, and a direct
 * connection that reuses the tuple of a finished load-balanced flow is left alone.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>

#include "lib/common.h"
#include "lib/lb.h"
#include "lib/csum.h"
#include "lib/conntrack.h"
#include "lib/nat.h"
#include "lib/reject.h"

#define AF_INET 2
#define AF_INET6 10

/* Load-time settings (the loader overrides them). */
volatile const __be32 NODE_IP4 = 0;     /* SNAT source toward remote IPv4 backends */
volatile const __be32 NODE_IP6[4] = {}; /* SNAT source toward remote IPv6 backends */
volatile const __u16 SNAT_PORT_MIN = 33000;
volatile const __u16 SNAT_PORT_MAX = 60999;

static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	__be16 h_proto;
	__be16 ports[2];

	if (bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_proto), &h_proto, sizeof(h_proto)))
		return -1;
	p->l3off = sizeof(struct ethhdr);
	if (h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, p->l3off, &ip, sizeof(ip)))
			return -1;
		if (ip.ihl < 5 || (ip.frag_off & bpf_htons(0x3fff)))
			return -1; /* fragments are not load-balanced */
		p->proto = ip.protocol;
		p->v6 = 0;
		addr_set_v4(&p->saddr, ip.saddr);
		addr_set_v4(&p->daddr, ip.daddr);
		p->l4off = p->l3off + ip.ihl * 4;
	} else if (h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, p->l3off, &ip6, sizeof(ip6)))
			return -1;
		p->proto = ip6.nexthdr; /* extension headers are not load-balanced */
		p->v6 = 1;
		__builtin_memcpy(p->saddr.b, &ip6.saddr, 16);
		__builtin_memcpy(p->daddr.b, &ip6.daddr, 16);
		p->l4off = p->l3off + sizeof(ip6);
	} else {
		return -1;
	}
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return -1;
	if (bpf_skb_load_bytes(skb, p->l4off, ports, sizeof(ports)))
		return -1;
	p->sport = ports[0];
	p->dport = ports[1];
	if (p->proto == IPPROTO_TCP &&
	    bpf_skb_load_bytes(skb, p->l4off + 13, &p->tcp_flags, sizeof(p->tcp_flags)))
		return -1;
	return 0;
}

static __always_inline void node_addr(const struct pkt *p, union lb_addr *out)
{
	if (!p->v6) {
		addr_set_v4(out, NODE_IP4);
	} else {
		/* Word by word through the volatile: a memcpy would fold the compile-time zeros. */
		out->w[0] = NODE_IP6[0];
		out->w[1] = NODE_IP6[1];
		out->w[2] = NODE_IP6[2];
		out->w[3] = NODE_IP6[3];
	}
}

static __always_inline int addr_is_zero(const union lb_addr *a)
{
	return !(a->w[0] | a->w[1] | a->w[2] | a->w[3]);
}

/* Sends a translated packet straight out of the device the FIB says, resolving the neighbour
 * there; leaves it to the stack when the FIB has no answer. */
static __always_inline int fib_redirect(struct __sk_buff *skb, const struct pkt *p)
{
	struct bpf_fib_lookup fib = {};
	long ret;

	fib.ifindex = skb->ingress_ifindex ? skb->ingress_ifindex : skb->ifindex;
	fib.l4_protocol = p->proto;
	fib.sport = p->sport;
	fib.dport = p->dport;
	if (!p->v6) {
		fib.family = AF_INET;
		fib.ipv4_src = p->saddr.w[3];
		fib.ipv4_dst = p->daddr.w[3];
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, p->saddr.w, 16);
		__builtin_memcpy(fib.ipv6_dst, p->daddr.w, 16);
	}
	ret = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK;
	return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
}

/* Reverse NAT of a reply that matched a REPLY entry; the flow's state is brought up to date
 * in both of its entries first. */
static __always_inline int rev_nat(struct __sk_buff *skb, struct pkt *p, struct lb_ct_val *rev,
				   int ingress, __u64 now)
{
	union lb_addr vip, client;
	__be16 vip_port = rev->vip_port_be, client_port = rev->nat_port_be;
	int snat = rev->flags & LB_CT_F_SNAT;

	if (snat && !ingress)
		return TC_ACT_OK; /* SNATed replies come in, never go out, through here */
	ct_touch(rev, p, LB_CT_REPLY, now);
	if (pkt_is_fin_rst(p)) {
		struct lb_ct_key fkey = {};

		ct_fwd_key_of_reply(&fkey, p, rev);
		ct_mark(&fkey, ct_seen_flags(p, LB_CT_REPLY), p->proto, now);
	}
	addr_copy(&vip, &rev->vip_addr);
	addr_copy(&client, &rev->nat_addr);
	if (snat) {
		if (nat_rewrite(skb, p, 0, &client, client_port) < 0)
			return TC_ACT_SHOT;
		addr_copy(&p->daddr, &client);
		p->dport = client_port;
	}
	if (nat_rewrite(skb, p, 1, &vip, vip_port) < 0)
		return TC_ACT_SHOT;
	addr_copy(&p->saddr, &vip);
	p->sport = vip_port;
	return snat ? fib_redirect(skb, p) : TC_ACT_OK;
}

static __always_inline int lb_forward(struct __sk_buff *skb, struct pkt *p,
				      const struct lb_svc_val *svc, struct lb_svc_counters *ctr)
{
	struct lb_ct_val fv = {}, rv = {};
	struct lb_ct_key key = {};
	struct lb_backend_val *be = NULL;
	struct lb_ct_val *fwd;
	union lb_addr be_addr;
	__be16 be_port;
	__u32 svc_id = svc->svc_id, backend_id = 0;
	__u64 now = bpf_ktime_get_ns();

	fwd = ct_lookup(p, LB_CT_FWD, now);
	/* A SYN on a closed flow opens a new one (Cilium's CT_REOPENED): selected afresh. */
	if (fwd && fwd->svc_id == svc_id && !(pkt_is_syn(p) && ct_flags_closed(fwd->flags))) {
		be = lb_backend_lookup(fwd->backend_id);
		if (be) {
			backend_id = fwd->backend_id;
			ct_touch(fwd, p, LB_CT_FWD, now);
			fv = *fwd;
		}
		/* A deleted backend's flow is reselected below, never blackholed. */
	}
	if (be) {
		struct lb_ct_val *rev;

		/* The flow's REPLY entry: told about FIN/RST; put back if it went (LRU eviction,
		 * or a direct datagram took the tuple) while the flow lives. */
		if (fv.flags & LB_CT_F_SNAT)
			ct_reply_key(&key, &be->addr, be->port_be, &fv.nat_addr, fv.nat_port_be,
				     p->proto);
		else
			ct_reply_key(&key, &be->addr, be->port_be, &p->saddr, p->sport, p->proto);
		rev = bpf_map_lookup_elem(&lb_ct_v3, &key);
		if (rev && pkt_is_fin_rst(p)) {
			ct_mark(&key, ct_seen_flags(p, LB_CT_FWD), p->proto, now);
		} else if (!rev && !ct_flags_closed(fv.flags)) {
			rv = fv;
			addr_copy(&rv.vip_addr, &p->daddr);
			rv.vip_port_be = p->dport;
			if (fv.flags & LB_CT_F_SNAT) {
				addr_copy(&rv.nat_addr, &p->saddr);
				rv.nat_port_be = p->sport;
			} else {
				__builtin_memset(&rv.nat_addr, 0, sizeof(rv.nat_addr));
				rv.nat_port_be = 0;
			}
			bpf_map_update_elem(&lb_ct_v3, &key, &rv, BPF_NOEXIST);
		}
	} else {
		struct lb_affinity_key akey = {};

		if (svc->flags & LB_SVC_F_AFFINITY) {
			addr_copy(&akey.client, &p->saddr);
			akey.svc_id = svc_id;
			akey.by = LB_AFF_CLIENT_IP;
			backend_id = lb_affinity_get(svc, &akey, now);
		}
		if (!backend_id)
			backend_id = lb_select_backend(
				svc, lb_flow_hash(&p->saddr, &p->daddr, p->sport, p->dport, p->proto),
				1);
		be = lb_backend_lookup(backend_id);
		if (!be) {
			if (ctr)
				ctr->dropped++;
			/* No backend: DROP when the plan says so (policy Local with only remote
			 * endpoints), else refuse as kube-proxy's REJECT does: a TCP reset sent
			 * back from here (the stack would route a VIP that is no node address,
			 * maybe into a blackhole or a loop), an ICMP port unreachable for UDP. */
			if (svc->flags & LB_SVC_F_DROP_EMPTY)
				return TC_ACT_SHOT;
			if (p->proto == IPPROTO_TCP)
				return reject_tcp(skb, p);
			return reject_udp(skb, p);
		}
		if (addr_is_v4(&be->addr) == p->v6)
			return TC_ACT_SHOT; /* no NAT46/64 */
		if (svc->flags & LB_SVC_F_AFFINITY)
			lb_affinity_put(&akey, backend_id, now);
		if (ctr)
			ctr->connections++;

		fv.backend_id = backend_id;
		fv.svc_id = svc_id;
		fv.flags = ct_seen_flags(p, LB_CT_FWD);
		fv.last_seen_ns = now;
		fv.expires_ns = now + ct_lifetime_ns(fv.flags, p->proto);
		rv = fv;
		addr_copy(&rv.vip_addr, &p->daddr);
		rv.vip_port_be = p->dport;
		node_addr(p, &fv.nat_addr);
		if (!(be->flags & LB_BE_F_LOCAL) && !addr_is_zero(&fv.nat_addr)) {
			__be16 port;

			rv.flags |= LB_CT_F_SNAT;
			addr_copy(&rv.nat_addr, &p->saddr);
			rv.nat_port_be = p->sport;
			port = nat_alloc_port(&be->addr, be->port_be, &fv.nat_addr, p->proto, &rv,
					      SNAT_PORT_MIN, SNAT_PORT_MAX);
			if (!port)
				return TC_ACT_SHOT; /* SNAT ports exhausted */
			fv.flags |= LB_CT_F_SNAT;
			fv.nat_port_be = port;
		} else {
			__builtin_memset(&fv.nat_addr, 0, sizeof(fv.nat_addr));
			ct_reply_key(&key, &be->addr, be->port_be, &p->saddr, p->sport, p->proto);
			bpf_map_update_elem(&lb_ct_v3, &key, &rv, BPF_ANY);
		}
		__builtin_memset(&key, 0, sizeof(key));
		ct_key_from_pkt(&key, p, LB_CT_FWD);
		bpf_map_update_elem(&lb_ct_v3, &key, &fv, BPF_ANY);
	}

	addr_copy(&be_addr, &be->addr);
	be_port = be->port_be;
	if (nat_rewrite(skb, p, 0, &be_addr, be_port) < 0)
		return TC_ACT_SHOT;
	addr_copy(&p->daddr, &be_addr);
	p->dport = be_port;
	if (!(fv.flags & LB_CT_F_SNAT))
		return TC_ACT_OK;
	if (nat_rewrite(skb, p, 1, &fv.nat_addr, fv.nat_port_be) < 0)
		return TC_ACT_SHOT;
	addr_copy(&p->saddr, &fv.nat_addr);
	p->sport = fv.nat_port_be;
	return fib_redirect(skb, p);
}

SEC("classifier")
int lb_ingress(struct __sk_buff *skb)
{
	struct lb_svc_counters *ctr;
	struct lb_svc_val *svc;
	struct lb_ct_val *rev;
	struct pkt p = {};
	__u64 now;

#ifdef LB_TEST_VARIANT
	if (skb->mark == 0x7e57)
		return TC_ACT_OK;
#endif
	if (parse(skb, &p) < 0)
		return TC_ACT_OK;
	now = bpf_ktime_get_ns();
	rev = ct_lookup(&p, LB_CT_REPLY, now);
	if (rev)
		return rev_nat(skb, &p, rev, 1, now);
	svc = lb_svc_lookup(&p.daddr, p.dport, p.proto);
	if (!svc || svc->kind == LB_KIND_CLUSTER_IP) {
		/* Not load-balanced here (ClusterIP is the socket hooks' job). */
		ct_direct(&p, 1, now);
		return TC_ACT_OK;
	}
	ctr = lb_counters(svc);
	if (ctr) {
		ctr->packets++;
		ctr->bytes += skb->len;
	}
	if (!lb_src_allowed(svc, &p.saddr)) {
		if (ctr)
			ctr->dropped++;
		return TC_ACT_SHOT;
	}
	return lb_forward(skb, &p, svc, ctr);
}

SEC("classifier")
int lb_egress(struct __sk_buff *skb)
{
	struct lb_ct_val *rev;
	struct pkt p = {};
	__u64 now;

	if (parse(skb, &p) < 0)
		return TC_ACT_OK;
	now = bpf_ktime_get_ns();
	rev = ct_lookup(&p, LB_CT_REPLY, now);
	if (rev)
		return rev_nat(skb, &p, rev, 0, now);
	/* Forwarded packets pass here after lb_ingress translated them, so only a SYN (which a
	 * live flow's entry survives) is taken as a direct connection, not a datagram. */
	ct_direct(&p, 0, now);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
