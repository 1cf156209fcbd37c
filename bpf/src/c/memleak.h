/* The few definitions our BPF programs need, written here instead of taken
 * from kernel headers (none are installed on these machines). Structures shared
 * with Rust are mirrored in src/shared.rs with size assertions. */
#ifndef MEMLEAK_BPF_H
#define MEMLEAK_BPF_H

typedef unsigned long long __u64;
typedef unsigned int __u32;

#define SEC(name) __attribute__((section(name), used))
/* BTF-defined maps (clang -g turns these into BTF the loader reads). */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name

#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_NOEXIST 1

/* Helper ids from include/uapi/linux/bpf.h. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static __u64 (*bpf_get_current_cgroup_id)(void) = (void *)80;

/* struct bpf_perf_event_data on x86_64: the user registers, then these. */
struct bpf_perf_event_data {
    __u64 regs[21];
    __u64 sample_period;
    __u64 addr;
};

#endif
