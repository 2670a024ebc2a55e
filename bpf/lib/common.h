/* SPDX-License-Identifier: Apache-2.0 */
#ifndef BGPLANE_COMMON_H
#define BGPLANE_COMMON_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb_abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define NSEC_PER_SEC 1000000000ULL

static __always_inline void addr_set_v4(union lb_addr *a, __be32 v4)
{
	a->w[0] = 0;
	a->w[1] = 0;
	a->w[2] = bpf_htonl(0x0000ffff);
	a->w[3] = v4;
}

static __always_inline int addr_is_v4(const union lb_addr *a)
{
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == bpf_htonl(0x0000ffff);
}

static __always_inline int addr_eq(const union lb_addr *a, const union lb_addr *b)
{
	return a->w[0] == b->w[0] && a->w[1] == b->w[1] && a->w[2] == b->w[2] &&
	       a->w[3] == b->w[3];
}

static __always_inline void addr_copy(union lb_addr *dst, const union lb_addr *src)
{
	dst->w[0] = src->w[0];
	dst->w[1] = src->w[1];
	dst->w[2] = src->w[2];
	dst->w[3] = src->w[3];
}

#endif
