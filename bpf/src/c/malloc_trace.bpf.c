/* Allocation tracing of one process (capture kind `ebpf-malloc`): uprobes on
 * the entry points of its allocator record the requested size per thread,
 * uretprobes record the returned block by address with its user stack and
 * time, and free-like entries remove it. What is left at the end is what is
 * outstanding. The stack is taken at the return, where the frame pointer is
 * the caller's again: at the entry it would still skip the direct caller.
 * A caller that keeps no frame pointer (libstdc++'s operator new, strdup)
 * is skipped all the same, with its caller: so the first code words above
 * the stack pointer at the return (its frame, then the return address into
 * its caller) are kept with the stack, for user space to tell which is a
 * return address and put it back in the stack (see find_callers).
 * Each program is attached to all its entry points by one uprobe_multi link
 * (one RCU wait to detach them all); an entry's cookie says where its
 * arguments are (MALLOC_SHAPE_*). Only `target_tgid` is traced (the links
 * also name its pid). Sampling is done by user space attaching the allocation
 * probes for part of each second (a trap costs the same whether or not the
 * program does work). */
#include "memleak.h"

static long (*bpf_probe_read_user)(void *dst, __u32 size, const void *src) = (void *)112;

const volatile __u64 target_tgid = 0;

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 4096);
    __type(key, __u64);   /* pid_tgid of the calling thread */
    __type(value, struct malloc_pending);
} malloc_pending SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MALLOC_MAX_OUTSTANDING);
    __type(key, __u64); /* the block's address */
    __type(value, struct malloc_alloc);
} malloc_outstanding SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(max_entries, MALLOC_MAX_STACKS);
    __type(key, __u32);
    __type(value, __u64[MAX_STACK_DEPTH]);
} malloc_stacks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MALLOC_MAX_STACKS);
    __type(key, struct malloc_site_key);
    __type(value, struct malloc_site_totals);
} malloc_sites SEC(".maps");

/* Slot 0: the process's code (written once, before any probe is attached). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct malloc_code_ranges);
} malloc_code SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, MALLOC_COUNTERS);
    __type(key, __u32);
    __type(value, __u64);
} malloc_counters SEC(".maps");

/* Slot 0: non-zero once user space has ended the window. Detaching takes a
 * grace period per probe; meanwhile the maps must stay as they were at the end. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} malloc_frozen SEC(".maps");

/* The processes the target forked that still run its program (they have
 * neither exec'd nor exited), with bpf_ktime_get_ns() at the fork: see
 * process_forked. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MALLOC_MAX_CHILDREN);
    __type(key, __u32); /* the child's pid */
    __type(value, __u64);
} malloc_children SEC(".maps");

static __always_inline int traced(void)
{
    if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
        return 0;
    __u32 zero = 0;
    __u64 *frozen = bpf_map_lookup_elem(&malloc_frozen, &zero);
    return frozen && *frozen == 0;
}

static __always_inline void forget(__u64 address)
{
    if (address && bpf_map_delete_elem(&malloc_outstanding, &address) == 0)
        bump(&malloc_counters, MALLOC_FREES_MATCHED, 1);
}

static __always_inline int pending(__u64 size, __u64 out)
{
    __u64 thread = bpf_get_current_pid_tgid();
    struct malloc_pending call = {.size = size, .out = out};
    bump(&malloc_counters, MALLOC_ALLOC_CALLS, 1);
    bpf_map_update_elem(&malloc_pending, &thread, &call, BPF_ANY);
    return 0;
}

/* Whether `word` points into one of the sorted `code` ranges (a binary search). */
static __always_inline int in_code(const struct malloc_code_ranges *code, __u64 word)
{
    __u32 low = 0, high = code->count < MALLOC_MAX_CODE_RANGES ? code->count : MALLOC_MAX_CODE_RANGES;
    /* Most data words (small integers, stack addresses) lie outside all code: one test each. */
    if (high == 0 || word < code->start[0] || word >= code->end[(high - 1) & (MALLOC_MAX_CODE_RANGES - 1)])
        return 0;
    /* log2(MALLOC_MAX_CODE_RANGES) + 1 halvings end any search. */
    for (int step = 0; step < 7 && low < high; step++) {
        __u32 middle = (low + high) / 2;
        if (middle >= MALLOC_MAX_CODE_RANGES)
            return 0;
        if (word < code->start[middle])
            high = middle;
        else if (word >= code->end[middle])
            low = middle + 1;
        else
            return 1;
    }
    return 0;
}

/* The first MALLOC_CALLER_WORDS distinct words of the user stack from `sp`
 * up that point into code, into `callers`. Data (saved registers, heap
 * pointers, counters) is left out so that one call path makes one site, not
 * one per call; a word seen already is left out so that a function pointer
 * held twice takes one place. Which of them is a return address (the bytes
 * before it a call) is for user space to tell: reading code here would cost
 * every hit. */
static __always_inline void find_callers(__u64 sp, __u64 *callers)
{
    __u32 zero = 0;
    const struct malloc_code_ranges *code = bpf_map_lookup_elem(&malloc_code, &zero);
    __u64 words[MALLOC_STACK_WORDS];
    if (!code || bpf_probe_read_user(words, sizeof words, (const void *)sp) != 0)
        return;
    int found = 0;
    for (int i = 0; i < MALLOC_STACK_WORDS && found < MALLOC_CALLER_WORDS; i++) {
        if (!in_code(code, words[i]))
            continue;
        int seen = 0;
        for (int j = 0; j < MALLOC_CALLER_WORDS; j++)
            seen |= j < found && callers[j] == words[i];
        if (seen)
            continue;
        callers[found & (MALLOC_CALLER_WORDS - 1)] = words[i];
        found++;
    }
}

/* The entry of every allocation function; its cookie is its MALLOC_SHAPE_*. */
SEC("uprobe")
int alloc_enter(struct pt_regs *ctx)
{
    if (!traced())
        return 0;
    switch (bpf_get_attach_cookie(ctx)) {
    case MALLOC_SHAPE_CALLOC:
        return pending(ctx->di * ctx->si, 0);
    case MALLOC_SHAPE_REALLOC:
        forget(ctx->di);
        return pending(ctx->si, 0);
    case MALLOC_SHAPE_SIZE_SECOND:
        return pending(ctx->si, 0);
    case MALLOC_SHAPE_POSIX_MEMALIGN:
        return pending(ctx->dx, ctx->di);
    default:
        return pending(ctx->di, 0);
    }
}

/* The return of every allocation function. */
SEC("uretprobe")
int alloc_return(struct pt_regs *ctx)
{
    if (!traced())
        return 0;
    __u64 thread = bpf_get_current_pid_tgid();
    struct malloc_pending *call = bpf_map_lookup_elem(&malloc_pending, &thread);
    if (!call)
        return 0;
    __u64 address = ctx->ax;
    struct malloc_alloc alloc = {.size = call->size, .time_ns = bpf_ktime_get_ns()};
    if (call->out) {
        /* posix_memalign returns 0 and writes the block, or an error and nothing. */
        void *out = (void *)call->out;
        address = 0;
        if (ctx->ax == 0 && bpf_probe_read_user(&address, sizeof address, out) != 0)
            address = 0;
    }
    bpf_map_delete_elem(&malloc_pending, &thread);
    bump(&malloc_counters, MALLOC_ALLOC_RETURNS, 1);
    if (!address)
        return 0;
    long stack = bpf_get_stackid(ctx, &malloc_stacks, BPF_F_USER_STACK);
    if (stack < 0)
        bump(&malloc_counters, MALLOC_STACK_LOST, 1);
    alloc.site.stack_id = (__s32)stack;
    find_callers(ctx->sp, alloc.site.callers);
    if (bpf_map_update_elem(&malloc_outstanding, &address, &alloc, BPF_ANY) != 0)
        bump(&malloc_counters, MALLOC_OUTSTANDING_FULL, 1);
    struct malloc_site_totals *totals = bpf_map_lookup_elem(&malloc_sites, &alloc.site);
    if (totals) {
        __sync_fetch_and_add(&totals->bytes, alloc.size);
        __sync_fetch_and_add(&totals->count, 1);
    } else {
        struct malloc_site_totals first = {.bytes = alloc.size, .count = 1};
        if (bpf_map_update_elem(&malloc_sites, &alloc.site, &first, BPF_NOEXIST) != 0)
            bump(&malloc_counters, MALLOC_SITES_FULL, 1);
    }
    return 0;
}

/* free(ptr), operator delete(ptr), jemalloc's sdallocx(ptr, size, flags) and dallocx(ptr, flags). */
SEC("uprobe")
int free_enter(struct pt_regs *ctx)
{
    if (!traced())
        return 0;
    /* Only here: realloc's frees come with the allocation probes, and the free
     * count measures the activity that goes on whether those are attached or not. */
    bump(&malloc_counters, MALLOC_FREE_CALLS, 1);
    forget(ctx->di);
    return 0;
}

/* task_newtask's record (this kernel's format file). */
struct task_newtask_args {
    __u64 common;
    int pid;
    char comm[16];
    __u64 clone_flags;
    short oom_score_adj;
};

#define CLONE_VFORK 0x00004000
#define CLONE_THREAD 0x00010000

/* The target made a process (not a thread): a fork copies the probed pages,
 * breakpoints included, and the kernel never removes a uprobe_multi link's
 * breakpoint from a process its pid filter rejects (the handler returns 0):
 * the child traps on every allocator call until the links go, unless it
 * execs (a new program, no breakpoints) or exits first. User space ends the
 * window when a child outlives a tick here. A vfork child borrows the
 * target's memory only until it execs or exits, while the target waits: not
 * counted. */
SEC("tracepoint/task/task_newtask")
int process_forked(struct task_newtask_args *ctx)
{
    if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
        return 0;
    if (ctx->clone_flags & (CLONE_THREAD | CLONE_VFORK))
        return 0;
    __u32 child = (__u32)ctx->pid;
    __u64 now = bpf_ktime_get_ns();
    bump(&malloc_counters, MALLOC_FORKS, 1);
    if (bpf_map_update_elem(&malloc_children, &child, &now, BPF_ANY) != 0)
        bump(&malloc_counters, MALLOC_CHILDREN_FULL, 1);
    return 0;
}

/* A child that exec'd runs another program: no breakpoints left. The target
 * itself: its blocks went with its old image, and the probes would go on in
 * the new one, whose stacks the old image's maps do not name. The maps freeze
 * as they were at the exec; user space ends the window at its next tick. */
SEC("tracepoint/sched/sched_process_exec")
int child_exec(void *ctx)
{
    __u32 process = bpf_get_current_pid_tgid() >> 32;
    if (process == target_tgid) {
        __u32 zero = 0;
        __u64 *frozen = bpf_map_lookup_elem(&malloc_frozen, &zero);
        if (frozen)
            *frozen = 1;
        bump(&malloc_counters, MALLOC_EXECS, 1);
        return 0;
    }
    bpf_map_delete_elem(&malloc_children, &process);
    return 0;
}

/* A child whose last thread exited. */
SEC("tracepoint/sched/sched_process_exit")
int child_exit(struct process_exit_args *ctx)
{
    if (!ctx->group_dead)
        return 0;
    __u32 process = bpf_get_current_pid_tgid() >> 32;
    bpf_map_delete_elem(&malloc_children, &process);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
