/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The maps (names, types, sizes) of layout version 3. Every map is pinned by name, so lb.o and
 * sock.o loaded into the same bpffs directory share them, and a restarted agent adopts them.
 * max_entries here are defaults; the loader may override them at load time.
 */
#ifndef BGPLANE_LB_MAPS_H
#define BGPLANE_LB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lb_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_svc_key);
	__type(value, struct lb_svc_val);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_svc_v3 SEC(".maps");

/* Slots and Maglev tables: 8M slots (32 MiB, preallocated). 100,000 services x 10 backends
 * take 1.6M slots (regions are powers of two), a 16381-entry Maglev table 16384. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_slots);
	__uint(max_entries, 524288);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_slot_v3 SEC(".maps");

/* Backends by id (48 MiB, preallocated): room for 1M backends while 1M others are replaced. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_backend_val);
	__uint(max_entries, 2097152);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_backend_v3 SEC(".maps");

/* Per-service counters, per CPU (4 MiB per CPU); a service id past max_entries is not
 * counted. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_svc_counters);
	__uint(max_entries, 131072);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_svc_ctr_v3 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_ct_key);
	__type(value, struct lb_ct_val);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_ct_v3 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_affinity_key);
	__type(value, struct lb_affinity_val);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_affinity_v3 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lb_srcrange_key);
	__type(value, __u8);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_srcrange_v3 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_sock_rev_key);
	__type(value, struct lb_sock_rev_val);
	__uint(max_entries, 131072);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_sock_rev_v3 SEC(".maps");

#endif
