/* SPDX-License-Identifier: Apache-2.0 */
/* Refusing a connection to a frontend without backends, as kube-proxy's REJECT does: a TCP
 * segment is answered with a reset (RFC 793, 3.4 "Reset Generation"), a UDP datagram with an
 * ICMP port unreachable, each built in place and sent back out of the device it came in on. */
#ifndef BGPLANE_REJECT_H
#define BGPLANE_REJECT_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include "csum.h"

/* A TCP header without bitfields (linux/tcp.h clashes with conntrack.h's TCP_FLAG_*). */
struct rst_tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff; /* data offset in its upper 4 bits */
	__u8 flags;
	__be16 window;
	__be16 check;
	__be16 urg_ptr;
};

#define RST_F_FIN 0x01
#define RST_F_SYN 0x02
#define RST_F_RST 0x04
#define RST_F_ACK 0x10

struct rst_pseudo4 {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 proto;
	__be16 len;
	struct rst_tcphdr tcp;
};

struct rst_pseudo6 {
	__u8 saddr[16];
	__u8 daddr[16];
	__be32 len;
	__u8 zero[3];
	__u8 proto;
	struct rst_tcphdr tcp;
};

static __always_inline __u16 csum_fold32(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* The reset's TCP header (zeroed by the caller; the checksum is left to it): ports swapped,
 * no options, <SEQ=SEG.ACK><CTL=RST> for a segment with ACK, else
 * <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. */
static __always_inline void rst_fill(struct rst_tcphdr *t, const struct pkt *p,
				     const struct rst_tcphdr *in, __u32 seg_len)
{
	t->source = p->dport;
	t->dest = p->sport;
	t->doff = 5 << 4;
	t->flags = RST_F_RST;
	if (in->flags & RST_F_ACK) {
		t->seq = in->ack_seq;
	} else {
		t->flags |= RST_F_ACK;
		t->ack_seq = bpf_htonl(bpf_ntohl(in->seq) + seg_len);
	}
}

/* Answers the TCP segment p with a reset: the reply swaps MACs, addresses and ports, carries
 * no payload and no options, and its checksums are computed from scratch. A segment with ACK
 * gets <SEQ=SEG.ACK><CTL=RST>; one without gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
 * (SYN and FIN count in SEG.LEN). A reset is never answered. Returns the tc verdict:
 * TC_ACT_REDIRECT when the reset goes out, TC_ACT_SHOT when the segment cannot be answered. */
static __always_inline int reject_tcp(struct __sk_buff *skb, const struct pkt *p)
{
	__u8 mac[2 * ETH_ALEN], swapped[2 * ETH_ALEN];
	struct rst_tcphdr in;
	__u32 seg_len, l3len, ifindex = skb->ifindex;
	__u16 ip_payload, doff;
	__s64 sum;
	int i;

	if (bpf_skb_load_bytes(skb, p->l4off, &in, sizeof(in)))
		return TC_ACT_SHOT;
	if (in.flags & RST_F_RST)
		return TC_ACT_SHOT;
	doff = (in.doff >> 4) * 4;
	if (doff < sizeof(in))
		return TC_ACT_SHOT;
	if (!p->v6) {
		__be16 tot;

		if (bpf_skb_load_bytes(skb, p->l3off + offsetof(struct iphdr, tot_len), &tot,
				       sizeof(tot)))
			return TC_ACT_SHOT;
		ip_payload = bpf_ntohs(tot) - (p->l4off - p->l3off);
		l3len = sizeof(struct iphdr);
	} else {
		__be16 plen;

		if (bpf_skb_load_bytes(skb, p->l3off + offsetof(struct ipv6hdr, payload_len), &plen,
				       sizeof(plen)))
			return TC_ACT_SHOT;
		ip_payload = bpf_ntohs(plen);
		l3len = sizeof(struct ipv6hdr);
	}
	if (ip_payload < doff)
		return TC_ACT_SHOT;
	seg_len = ip_payload - doff + !!(in.flags & RST_F_SYN) + !!(in.flags & RST_F_FIN);

	if (bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)))
		return TC_ACT_SHOT;
#pragma unroll
	for (i = 0; i < ETH_ALEN; i++) {
		swapped[i] = mac[ETH_ALEN + i];
		swapped[ETH_ALEN + i] = mac[i];
	}
	if (bpf_skb_change_tail(skb, p->l3off + l3len + sizeof(struct rst_tcphdr), 0))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0))
		return TC_ACT_SHOT;

	if (!p->v6) {
		struct rst_pseudo4 ph = {};
		struct iphdr ip = {};

		ip.version = 4;
		ip.ihl = 5;
		ip.tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct rst_tcphdr));
		ip.frag_off = bpf_htons(0x4000); /* DF */
		ip.ttl = 64;
		ip.protocol = IPPROTO_TCP;
		ip.saddr = p->daddr.w[3];
		ip.daddr = p->saddr.w[3];
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&ip, sizeof(ip), 0);
		if (sum < 0)
			return TC_ACT_SHOT;
		ip.check = csum_fold32(sum);

		ph.saddr = ip.saddr;
		ph.daddr = ip.daddr;
		ph.proto = IPPROTO_TCP;
		ph.len = bpf_htons(sizeof(struct rst_tcphdr));
		rst_fill(&ph.tcp, p, &in, seg_len);
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
		if (sum < 0)
			return TC_ACT_SHOT;
		ph.tcp.check = csum_fold32(sum);
		if (bpf_skb_store_bytes(skb, p->l3off, &ip, sizeof(ip), 0) ||
		    bpf_skb_store_bytes(skb, p->l3off + sizeof(ip), &ph.tcp, sizeof(ph.tcp), 0))
			return TC_ACT_SHOT;
	} else {
		struct rst_pseudo6 ph = {};
		struct ipv6hdr ip6 = {};

		ip6.version = 6;
		ip6.payload_len = bpf_htons(sizeof(struct rst_tcphdr));
		ip6.nexthdr = IPPROTO_TCP;
		ip6.hop_limit = 64;
		__builtin_memcpy(&ip6.saddr, p->daddr.b, 16);
		__builtin_memcpy(&ip6.daddr, p->saddr.b, 16);

		__builtin_memcpy(ph.saddr, p->daddr.b, 16);
		__builtin_memcpy(ph.daddr, p->saddr.b, 16);
		ph.len = bpf_htonl(sizeof(struct rst_tcphdr));
		ph.proto = IPPROTO_TCP;
		rst_fill(&ph.tcp, p, &in, seg_len);
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
		if (sum < 0)
			return TC_ACT_SHOT;
		ph.tcp.check = csum_fold32(sum);
		if (bpf_skb_store_bytes(skb, p->l3off, &ip6, sizeof(ip6), 0) ||
		    bpf_skb_store_bytes(skb, p->l3off + sizeof(ip6), &ph.tcp, sizeof(ph.tcp), 0))
			return TC_ACT_SHOT;
	}
	return bpf_redirect(ifindex, 0);
}

/* ICMPv4 destination unreachable, port unreachable (RFC 792); ICMPv6 destination
 * unreachable, port unreachable (RFC 4443, 3.1). */
#define REJ_ICMP4_UNREACH 3
#define REJ_ICMP4_PORT 3
#define REJ_ICMP6_UNREACH 1
#define REJ_ICMP6_PORT 4
#define REJ_PROTO_ICMP 1
#define REJ_PROTO_ICMP6 58
#define REJ_ICMP_HLEN 8
#define REJ_QUOTE4 (sizeof(struct iphdr) + 8)   /* the datagram's IP and UDP headers */
#define REJ_QUOTE6 (sizeof(struct ipv6hdr) + 8)

/* Answers the UDP datagram p with an ICMP port unreachable from the frontend's address,
 * quoting the datagram's IP header and its first 8 bytes, sent back out of the device it came
 * in on. Built in place with little stack (lb_ingress has almost none left): room for the new
 * IP and ICMP headers is opened after the MAC header (the quote moves into place), the rest
 * is cut off, and the ICMP checksum is summed over the packet itself. An IPv4 datagram with
 * IP options is dropped instead. Returns the tc verdict. */
static __always_inline int reject_udp(struct __sk_buff *skb, const struct pkt *p)
{
	__u32 ifindex = skb->ifindex, icmp_off, len;
	__u8 mac[2 * ETH_ALEN];
	__be32 icmp[2];
	void *data, *data_end;
	__s64 sum;

	if (p->l3off != ETH_HLEN)
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)))
		return TC_ACT_SHOT;
	if (!p->v6) {
		struct iphdr ip = {};

		if (p->l4off != ETH_HLEN + sizeof(struct iphdr) || skb->len < ETH_HLEN + REJ_QUOTE4)
			return TC_ACT_SHOT; /* IP options are not quoted: dropped */
		icmp_off = ETH_HLEN + sizeof(ip);
		len = icmp_off + REJ_ICMP_HLEN + REJ_QUOTE4;
		if (bpf_skb_adjust_room(skb, sizeof(ip) + REJ_ICMP_HLEN, BPF_ADJ_ROOM_MAC, 0) ||
		    bpf_skb_change_tail(skb, len, 0))
			return TC_ACT_SHOT;
		ip.version = 4;
		ip.ihl = 5;
		ip.tot_len = bpf_htons(len - ETH_HLEN);
		ip.ttl = 64;
		ip.protocol = REJ_PROTO_ICMP;
		ip.saddr = p->daddr.w[3];
		ip.daddr = p->saddr.w[3];
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&ip, sizeof(ip), 0);
		if (sum < 0)
			return TC_ACT_SHOT;
		ip.check = csum_fold32(sum);
		if (bpf_skb_store_bytes(skb, ETH_HLEN, &ip, sizeof(ip), 0))
			return TC_ACT_SHOT;
		icmp[0] = bpf_htonl((REJ_ICMP4_UNREACH << 24) | (REJ_ICMP4_PORT << 16));
	} else {
		__be32 w[2];

		if (skb->len < ETH_HLEN + REJ_QUOTE6)
			return TC_ACT_SHOT;
		icmp_off = ETH_HLEN + sizeof(struct ipv6hdr);
		len = icmp_off + REJ_ICMP_HLEN + REJ_QUOTE6;
		if (bpf_skb_adjust_room(skb, sizeof(struct ipv6hdr) + REJ_ICMP_HLEN,
					BPF_ADJ_ROOM_MAC, 0) ||
		    bpf_skb_change_tail(skb, len, 0))
			return TC_ACT_SHOT;
		w[0] = bpf_htonl(0x60000000);
		w[1] = bpf_htonl(((len - icmp_off) << 16) | (REJ_PROTO_ICMP6 << 8) | 64);
		if (bpf_skb_store_bytes(skb, ETH_HLEN, w, sizeof(w), 0) ||
		    bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct ipv6hdr, saddr), p->daddr.b,
					16, 0) ||
		    bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct ipv6hdr, daddr), p->saddr.b,
					16, 0))
			return TC_ACT_SHOT;
		icmp[0] = bpf_htonl((REJ_ICMP6_UNREACH << 24) | (REJ_ICMP6_PORT << 16));
	}
	icmp[1] = 0;
	if (bpf_skb_store_bytes(skb, 0, mac + ETH_ALEN, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, mac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, icmp_off, icmp, sizeof(icmp), 0))
		return TC_ACT_SHOT;
	if (bpf_skb_pull_data(skb, len))
		return TC_ACT_SHOT;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (!p->v6) {
		if (data + ETH_HLEN + sizeof(struct iphdr) + REJ_ICMP_HLEN + REJ_QUOTE4 > data_end)
			return TC_ACT_SHOT;
		sum = bpf_csum_diff(NULL, 0, data + ETH_HLEN + sizeof(struct iphdr),
				    REJ_ICMP_HLEN + REJ_QUOTE4, 0);
	} else {
		__be32 ph[2];

		if (data + ETH_HLEN + sizeof(struct ipv6hdr) + REJ_ICMP_HLEN + REJ_QUOTE6 > data_end)
			return TC_ACT_SHOT;
		/* Pseudo-header (RFC 8200, 8.1): addresses, upper-layer length, next header. */
		ph[0] = bpf_htonl(REJ_ICMP_HLEN + REJ_QUOTE6);
		ph[1] = bpf_htonl(REJ_PROTO_ICMP6);
		sum = bpf_csum_diff(NULL, 0, ph, sizeof(ph), 0);
		if (sum < 0)
			return TC_ACT_SHOT;
		sum = bpf_csum_diff(NULL, 0, data + ETH_HLEN + offsetof(struct ipv6hdr, saddr), 32,
				    (__u32)sum);
		if (sum < 0)
			return TC_ACT_SHOT;
		sum = bpf_csum_diff(NULL, 0, data + ETH_HLEN + sizeof(struct ipv6hdr),
				    REJ_ICMP_HLEN + REJ_QUOTE6, (__u32)sum);
	}
	if (sum < 0)
		return TC_ACT_SHOT;
	{
		__u16 check = csum_fold32(sum);

		if (bpf_skb_store_bytes(skb, icmp_off + 2, &check, sizeof(check), 0))
			return TC_ACT_SHOT;
	}
	return bpf_redirect(ifindex, 0);
}

#endif
