/* brk / mmap / munmap / mremap per cgroup, from the syscalls:sys_enter_* and
 * sys_exit_* tracepoints. The entry records the arguments per thread, the exit
 * accounts them if the call succeeded. Cost: while any syscall tracepoint is
 * enabled every syscall of every task takes the kernel's slow path (+25 % on a
 * syscall-heavy loop here), so this collector is opt-in.
 * Bounded: maps of fixed size; per-CPU counters let user space report entries
 * lost to a full map; exited processes are removed from the break map. */
#include "memleak.h"

#define MAX_CGROUPS 4096
#define MAX_THREADS_IN_CALL 16384
#define MAX_PROCESSES 65536
#define MAP_ANONYMOUS 0x20
#define MAX_ERRNO 4095
#define EEXIST 17

struct pending_call {
    __u64 len;   /* mmap, munmap: length; mremap: old length; brk: requested break */
    __u64 extra; /* mmap: flags; mremap: new length */
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, MAX_THREADS_IN_CALL);
    __type(key, __u64); /* pid_tgid of the thread inside the call */
    __type(value, struct pending_call);
} pending_calls SEC(".maps");

/* A plain hash, not an LRU: a process that does not fit is counted as dropped
 * instead of silently pushing another one out. Exited processes are removed. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_PROCESSES);
    __type(key, __u32);   /* tgid */
    __type(value, __u64); /* the program break last returned to it */
} program_breaks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, MAX_CGROUPS);
    __type(key, __u64); /* cgroup v2 id */
    __type(value, struct memory_syscall_stats);
} memory_syscall_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, SYSCALL_COUNTERS);
    __type(key, __u32);
    __type(value, __u64);
} memory_syscall_counters SEC(".maps");

/* Tracepoint records (see events/syscalls/sys_*_mmap/format). */
struct sys_enter_args {
    __u64 common;
    __u64 nr; /* int __syscall_nr, padded */
    __u64 args[6];
};

struct sys_exit_args {
    __u64 common;
    __u64 nr;
    __s64 ret;
};

static __always_inline struct memory_syscall_stats *stats_of_current(void)
{
    __u64 cgroup = bpf_get_current_cgroup_id();
    struct memory_syscall_stats *stats = bpf_map_lookup_elem(&memory_syscall_stats, &cgroup);
    if (stats)
        return stats;
    struct memory_syscall_stats zero = {};
    if (bpf_map_update_elem(&memory_syscall_stats, &cgroup, &zero, BPF_NOEXIST) == 0)
        bump(&memory_syscall_counters, SYSCALL_STATS_INSERTS, 1);
    return bpf_map_lookup_elem(&memory_syscall_stats, &cgroup);
}

static __always_inline void remember(__u64 len, __u64 extra)
{
    __u64 thread = bpf_get_current_pid_tgid();
    struct pending_call call = {.len = len, .extra = extra};
    bpf_map_update_elem(&pending_calls, &thread, &call, BPF_ANY);
}

/* The arguments recorded at entry, copied out and forgotten. */
static __always_inline int recall(struct pending_call *call)
{
    __u64 thread = bpf_get_current_pid_tgid();
    struct pending_call *found = bpf_map_lookup_elem(&pending_calls, &thread);
    if (!found) {
        bump(&memory_syscall_counters, SYSCALL_UNPAIRED_EXITS, 1);
        return 0;
    }
    *call = *found;
    bpf_map_delete_elem(&pending_calls, &thread);
    return 1;
}

static __always_inline int is_error(__s64 ret)
{
    return ret < 0 && ret >= -MAX_ERRNO;
}

/* At a syscall's exit: the arguments recorded at its entry and the caller's
 * cgroup totals; 0 when the entry was not seen. */
static __always_inline struct memory_syscall_stats *on_exit(struct pending_call *call)
{
    if (!recall(call))
        return 0;
    return stats_of_current();
}

/* Counts the call as failed or successful; returns whether it succeeded. */
static __always_inline int count_call(struct memory_syscall_stats *stats, __u32 syscall, int failed)
{
    if (syscall >= SYSCALLS)
        return 0;
    if (failed) {
        __sync_fetch_and_add(&stats->failed[syscall], 1);
        return 0;
    }
    __sync_fetch_and_add(&stats->calls[syscall], 1);
    return 1;
}

static __always_inline __u32 size_bucket(__u64 len)
{
    __u32 i;
    for (i = 0; i < SIZE_BUCKETS - 1; i++)
        if (len <= (4096ULL << i))
            break;
    return i;
}

SEC("tracepoint/syscalls/sys_enter_mmap")
int enter_mmap(struct sys_enter_args *ctx)
{
    remember(ctx->args[1], ctx->args[3]);
    return 0;
}

SEC("tracepoint/syscalls/sys_exit_mmap")
int exit_mmap(struct sys_exit_args *ctx)
{
    struct pending_call call;
    struct memory_syscall_stats *stats = on_exit(&call);
    if (!stats || !count_call(stats, SYSCALL_MMAP, is_error(ctx->ret)))
        return 0;
    if (call.extra & MAP_ANONYMOUS)
        __sync_fetch_and_add(&stats->mapped_anon, call.len);
    else
        __sync_fetch_and_add(&stats->mapped_file, call.len);
    __u32 bucket = size_bucket(call.len);
    if (bucket < SIZE_BUCKETS)
        __sync_fetch_and_add(&stats->mmap_sizes[bucket], 1);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_munmap")
int enter_munmap(struct sys_enter_args *ctx)
{
    remember(ctx->args[1], 0);
    return 0;
}

SEC("tracepoint/syscalls/sys_exit_munmap")
int exit_munmap(struct sys_exit_args *ctx)
{
    struct pending_call call;
    struct memory_syscall_stats *stats = on_exit(&call);
    if (!stats || !count_call(stats, SYSCALL_MUNMAP, ctx->ret != 0))
        return 0;
    __sync_fetch_and_add(&stats->unmapped, call.len);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_brk")
int enter_brk(struct sys_enter_args *ctx)
{
    remember(ctx->args[0], 0);
    return 0;
}

/* brk returns the new break, or the old one when it refuses to move: a call
 * that asked for a break (not 0) and got another one failed. Growth is the
 * difference from the break last seen for the process; its first call only
 * sets that baseline. */
SEC("tracepoint/syscalls/sys_exit_brk")
int exit_brk(struct sys_exit_args *ctx)
{
    struct pending_call call;
    struct memory_syscall_stats *stats = on_exit(&call);
    __u64 now = (__u64)ctx->ret;
    if (!stats || !count_call(stats, SYSCALL_BRK, call.len != 0 && call.len != now))
        return 0;
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    __u64 *last = bpf_map_lookup_elem(&program_breaks, &tgid);
    if (!last) {
        long err = bpf_map_update_elem(&program_breaks, &tgid, &now, BPF_NOEXIST);
        if (err == 0)
            bump(&memory_syscall_counters, SYSCALL_BREAK_INSERTS, 1);
        else if (err != -EEXIST)
            bump(&memory_syscall_counters, SYSCALL_BREAKS_FULL, 1);
        return 0;
    }
    if (now > *last)
        __sync_fetch_and_add(&stats->brk_grown, now - *last);
    else
        __sync_fetch_and_add(&stats->brk_shrunk, *last - now);
    *last = now;
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_mremap")
int enter_mremap(struct sys_enter_args *ctx)
{
    remember(ctx->args[1], ctx->args[2]);
    return 0;
}

SEC("tracepoint/syscalls/sys_exit_mremap")
int exit_mremap(struct sys_exit_args *ctx)
{
    struct pending_call call;
    struct memory_syscall_stats *stats = on_exit(&call);
    if (!stats || !count_call(stats, SYSCALL_MREMAP, is_error(ctx->ret)))
        return 0;
    if (call.extra > call.len)
        __sync_fetch_and_add(&stats->mremap_grown, call.extra - call.len);
    else
        __sync_fetch_and_add(&stats->mremap_shrunk, call.len - call.extra);
    return 0;
}

/* Removes the current process's break, counting the removal. */
static __always_inline void forget_break(void)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (bpf_map_delete_elem(&program_breaks, &tgid) == 0)
        bump(&memory_syscall_counters, SYSCALL_BREAK_DELETES, 1);
}

/* The last thread of a process is gone: forget its break. */
SEC("tracepoint/sched/sched_process_exit")
int process_exit(struct process_exit_args *ctx)
{
    if (ctx->group_dead)
        forget_break();
    return 0;
}

/* exec replaced the program: its break is elsewhere now (ASLR), so the next
 * brk call sets a new baseline instead of counting the jump as growth. */
SEC("tracepoint/sched/sched_process_exec")
int process_exec(void *ctx)
{
    forget_break();
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
