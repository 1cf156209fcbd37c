/* Page-fault attribution, two ways in:
 *  - page_fault_sample: a perf_event program on the `page-faults` software
 *    event with a sampling period, run once per PERIOD faults (always-on: ~2 %
 *    on a pure fault loop);
 *  - page_fault_user: the exceptions:page_fault_user tracepoint, run on every
 *    user fault (exact counts, +13 % or more on a fault loop: short windows).
 * Both count per cgroup v2 id, and every REGION_EVERY-th run pushes the
 * faulting address to a ring buffer for user space to attribute to a memory
 * region (heap, anonymous mapping, file, stack) from /proc/TGID/maps, with
 * the user stack that faulted, copied into the record (a frame-pointer walk:
 * deep only in programs built with frame pointers). */
#include "memleak.h"

#define MAX_CGROUPS 4096

/* Runs between two region samples; 1 in sampled mode (every run is already a
 * sample), the period in every-fault mode. Set by the loader. */
const volatile __u64 region_every = 1;

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, MAX_CGROUPS);
    __type(key, __u64);   /* cgroup v2 id (the directory's inode number) */
    __type(value, __u64); /* program runs */
} page_fault_samples SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4 << 20); /* 4 MiB: ~14,000 samples of 288 bytes (+8 of header) */
} fault_addresses SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64); /* runs left before the next region sample */
} region_countdown SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, FAULT_COUNTERS);
    __type(key, __u32);
    __type(value, __u64);
} page_fault_counters SEC(".maps");

static __always_inline void count_fault(void *ctx, __u64 addr, __u64 weight)
{
    __u64 cgroup = bpf_get_current_cgroup_id();
    __u64 *runs = bpf_map_lookup_elem(&page_fault_samples, &cgroup);
    if (runs) {
        __sync_fetch_and_add(runs, 1);
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&page_fault_samples, &cgroup, &one, BPF_NOEXIST);
    }

    __u32 zero = 0;
    __u64 *left = bpf_map_lookup_elem(&region_countdown, &zero);
    if (!left)
        return;
    if (*left > 1) {
        *left -= 1;
        return;
    }
    *left = region_every;
    struct fault_sample *sample = bpf_ringbuf_reserve(&fault_addresses, sizeof(*sample), 0);
    if (!sample) {
        bump(&page_fault_counters, FAULT_RING_FULL, 1);
        return;
    }
    sample->cgroup = cgroup;
    sample->addr = addr;
    sample->tgid = bpf_get_current_pid_tgid() >> 32;
    sample->weight = weight * region_every;
    sample->stack_bytes = bpf_get_stack(ctx, sample->stack, sizeof(sample->stack), BPF_F_USER_STACK);
    sample->pad = 0;
    bpf_ringbuf_submit(sample, 0);
}

SEC("perf_event")
int page_fault_sample(struct bpf_perf_event_data *ctx)
{
    count_fault(ctx, ctx->addr, ctx->sample_period);
    return 0;
}

/* The tracepoint's record (see events/exceptions/page_fault_user/format). */
struct page_fault_user_args {
    __u64 common;
    __u64 address;
    __u64 ip;
    __u64 error_code;
};

SEC("tracepoint/exceptions/page_fault_user")
int page_fault_user(struct page_fault_user_args *ctx)
{
    count_fault(ctx, ctx->address, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
