/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cgroup v2 socket hooks (east-west load balancing): connect() and sendmsg() to a service
 * frontend are rewritten to a backend once per connect (TCP, connected UDP) or once per socket
 * (unconnected UDP, remembered in lb_affinity_v3 by socket cookie); recvmsg() and getpeername()
 * translate the backend back, so applications only ever see the address they dialled.
 */
#include <linux/bpf.h>
#include <linux/errno.h>

#include "lib/common.h"
#include "lib/lb.h"

#define SYS_REJECT 0
#define SYS_PROCEED 1

static __always_inline void sock_rev_put(void *ctx, const union lb_addr *backend,
					 __be16 backend_port, const union lb_addr *vip,
					 __be16 vip_port)
{
	struct lb_sock_rev_key key = {};
	struct lb_sock_rev_val val = {};

	key.cookie = bpf_get_socket_cookie(ctx);
	addr_copy(&key.addr, backend);
	key.port_be = backend_port;
	addr_copy(&val.addr, vip);
	val.port_be = vip_port;
	bpf_map_update_elem(&lb_sock_rev_v3, &key, &val, BPF_ANY);
}

/* Translates the frontend in addr and port to a backend in place. Returns 1 translated, 0 not a
 * service, -1 a service without backends. */
static __always_inline int sock_xlate(struct bpf_sock_addr *ctx, union lb_addr *addr,
				      __be16 *port, int per_socket)
{
	struct lb_affinity_key akey = {};
	struct lb_svc_counters *ctr;
	struct lb_backend_val *be;
	struct lb_svc_val *svc;
	__u32 backend_id = 0;
	int reused = 0;
	__u64 now;
	__u8 proto = ctx->protocol;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 0;
	svc = lb_svc_lookup(addr, *port, proto);
	if (!svc)
		return 0;
	now = bpf_ktime_get_ns();
	akey.svc_id = svc->svc_id;
	if (per_socket) {
		__u64 cookie = bpf_get_socket_cookie(ctx);

		__builtin_memcpy(akey.client.b, &cookie, sizeof(cookie));
		akey.by = LB_AFF_SOCKET;
		backend_id = lb_affinity_get(svc, &akey, now);
		reused = backend_id != 0; /* this socket's earlier datagrams counted already */
	}
	if (!backend_id && (svc->flags & LB_SVC_F_AFFINITY)) {
		struct lb_affinity_key nkey = {};
		__u64 cookie = bpf_get_netns_cookie(ctx);

		__builtin_memcpy(nkey.client.b, &cookie, sizeof(cookie));
		nkey.svc_id = svc->svc_id;
		nkey.by = LB_AFF_NETNS;
		backend_id = lb_affinity_get(svc, &nkey, now);
		if (!backend_id) {
			backend_id = lb_select_backend(svc, 0, 0);
			if (backend_id)
				lb_affinity_put(&nkey, backend_id, now);
		}
	}
	if (!backend_id)
		backend_id = lb_select_backend(svc, 0, 0);
	be = lb_backend_lookup(backend_id);
	ctr = lb_counters(svc);
	if (!be) {
		if (ctr)
			ctr->dropped++;
		return -1;
	}
	if (per_socket)
		lb_affinity_put(&akey, backend_id, now);
	if (ctr && !reused)
		ctr->connections++;
	sock_rev_put(ctx, &be->addr, be->port_be, addr, *port);
	addr_copy(addr, &be->addr);
	*port = be->port_be;
	return 1;
}

static __always_inline int sock4_fwd(struct bpf_sock_addr *ctx, int per_socket)
{
	union lb_addr addr;
	__be16 port = (__be16)ctx->user_port;
	int ret;

	addr_set_v4(&addr, ctx->user_ip4);
	ret = sock_xlate(ctx, &addr, &port, per_socket);
	if (ret < 0) {
		bpf_set_retval(-ECONNREFUSED);
		return SYS_REJECT;
	}
	if (ret > 0) {
		if (!addr_is_v4(&addr))
			return SYS_REJECT; /* an IPv6 backend behind an IPv4 frontend */
		ctx->user_ip4 = addr.w[3];
		ctx->user_port = (__u32)port;
	}
	return SYS_PROCEED;
}

static __always_inline int sock6_fwd(struct bpf_sock_addr *ctx, int per_socket)
{
	union lb_addr addr;
	__be16 port = (__be16)ctx->user_port;
	int ret;

	addr.w[0] = ctx->user_ip6[0];
	addr.w[1] = ctx->user_ip6[1];
	addr.w[2] = ctx->user_ip6[2];
	addr.w[3] = ctx->user_ip6[3];
	ret = sock_xlate(ctx, &addr, &port, per_socket);
	if (ret < 0) {
		bpf_set_retval(-ECONNREFUSED);
		return SYS_REJECT;
	}
	if (ret > 0) {
		ctx->user_ip6[0] = addr.w[0];
		ctx->user_ip6[1] = addr.w[1];
		ctx->user_ip6[2] = addr.w[2];
		ctx->user_ip6[3] = addr.w[3];
		ctx->user_port = (__u32)port;
	}
	return SYS_PROCEED;
}

/* Backend -> frontend for recvmsg / getpeername. */
static __always_inline struct lb_sock_rev_val *sock_rev(struct bpf_sock_addr *ctx,
							const union lb_addr *addr)
{
	struct lb_sock_rev_key key = {};

	key.cookie = bpf_get_socket_cookie(ctx);
	addr_copy(&key.addr, addr);
	key.port_be = (__be16)ctx->user_port;
	return bpf_map_lookup_elem(&lb_sock_rev_v3, &key);
}

static __always_inline int sock4_rev(struct bpf_sock_addr *ctx)
{
	struct lb_sock_rev_val *rev;
	union lb_addr addr;

	addr_set_v4(&addr, ctx->user_ip4);
	rev = sock_rev(ctx, &addr);
	if (rev && addr_is_v4(&rev->addr)) {
		ctx->user_ip4 = rev->addr.w[3];
		ctx->user_port = (__u32)rev->port_be;
	}
	return SYS_PROCEED;
}

static __always_inline int sock6_rev(struct bpf_sock_addr *ctx)
{
	struct lb_sock_rev_val *rev;
	union lb_addr addr;

	addr.w[0] = ctx->user_ip6[0];
	addr.w[1] = ctx->user_ip6[1];
	addr.w[2] = ctx->user_ip6[2];
	addr.w[3] = ctx->user_ip6[3];
	rev = sock_rev(ctx, &addr);
	if (rev) {
		ctx->user_ip6[0] = rev->addr.w[0];
		ctx->user_ip6[1] = rev->addr.w[1];
		ctx->user_ip6[2] = rev->addr.w[2];
		ctx->user_ip6[3] = rev->addr.w[3];
		ctx->user_port = (__u32)rev->port_be;
	}
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return sock4_fwd(ctx, 0);
}

SEC("cgroup/connect6")
int sock_connect6(struct bpf_sock_addr *ctx)
{
	return sock6_fwd(ctx, 0);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock4_fwd(ctx, 1);
}

SEC("cgroup/sendmsg6")
int sock_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sock6_fwd(ctx, 1);
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock4_rev(ctx);
}

SEC("cgroup/recvmsg6")
int sock_recvmsg6(struct bpf_sock_addr *ctx)
{
	return sock6_rev(ctx);
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock4_rev(ctx);
}

SEC("cgroup/getpeername6")
int sock_getpeername6(struct bpf_sock_addr *ctx)
{
	return sock6_rev(ctx);
}

char LICENSE[] SEC("license") = "GPL";
