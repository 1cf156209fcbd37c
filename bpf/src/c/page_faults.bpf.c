/* Sampled page-fault attribution: attached to the `page-faults` software perf
 * event with a sampling period, it runs once per PERIOD faults and counts the
 * sample against the cgroup (v2 id) of the faulting task. Estimated faults =
 * samples × period. Bounded: an LRU map of MAX_CGROUPS entries; evictions are
 * visible as a drop in the number of entries, not as wrong counts. */
#include "memleak.h"

#define MAX_CGROUPS 4096

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, MAX_CGROUPS);
    __type(key, __u64);   /* cgroup v2 id (the directory's inode number) */
    __type(value, __u64); /* samples */
} page_fault_samples SEC(".maps");

SEC("perf_event")
int page_fault_sample(struct bpf_perf_event_data *ctx)
{
    __u64 cgroup = bpf_get_current_cgroup_id();
    __u64 *samples = bpf_map_lookup_elem(&page_fault_samples, &cgroup);
    if (samples) {
        __sync_fetch_and_add(samples, 1);
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&page_fault_samples, &cgroup, &one, BPF_NOEXIST);
    }
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
