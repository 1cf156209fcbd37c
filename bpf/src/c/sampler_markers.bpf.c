/* Uprobes on the cooperative sampler's two markers (sampler/ crate):
 *  - memleak_sampler_alloc(ptr, size): a byte-sampled allocation; kept in
 *    `outstanding` under (tgid, ptr) with its size, time, the kernel's
 *    frame-pointer walk of the user stack and the first STACK_WORDS words
 *    above the stack pointer (user space finds there the return address into
 *    the allocation's caller, which the walk misses when the sampler's own
 *    frames have no frame pointer: rbp still holds the caller's frame then);
 *  - memleak_sampler_free(ptr): the free of a sampled block; forgotten.
 * Attached only for a capture window and only to the target's processes (the
 * perf event's pid), so nothing runs outside a capture. */
#include "memleak.h"

#define MAX_OUTSTANDING 16384
/* 1 KiB: the sampler's frames between the marker and the hooked call are ~100 bytes
 * in a release build, ~400 in a debug one. */
#define STACK_WORDS 128
#define BPF_F_NO_PREALLOC 1

static long (*bpf_probe_read_user)(void *dst, __u32 size, const void *src) = (void *)112;
static __u64 (*bpf_ktime_get_boot_ns)(void) = (void *)125;

/* ---- shared with Rust (src/sampler_markers/mod.rs) ---- */
struct sampled_key {
    __u64 tgid;
    __u64 ptr;
};

struct sampled_block {
    __u64 size;
    __u64 boot_ns;     /* CLOCK_BOOTTIME of the allocation */
    __s32 stack_bytes; /* bytes of `stack` filled, or a negative errno */
    __s32 words_bytes; /* bytes of `words` read, or a negative errno */
    __u64 stack[MAX_STACK_DEPTH];
    __u64 words[STACK_WORDS];
};

#define SAMPLED_ALLOCS 0   /* alloc marker hits */
#define SAMPLED_FREES 1    /* free marker hits */
#define FREES_MATCHED 2    /* frees of a block allocated in the window */
#define TABLE_FULL 3       /* allocations not kept: `outstanding` was full */
#define SAMPLER_COUNTERS 4
/* ---- end of shared ---- */

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_OUTSTANDING);
    __uint(map_flags, BPF_F_NO_PREALLOC); /* 1.3 KiB an entry, taken only as blocks are kept */
    __type(key, struct sampled_key);
    __type(value, struct sampled_block);
} outstanding SEC(".maps");

/* The block being built (larger than the 512-byte BPF stack). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct sampled_block);
} scratch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, SAMPLER_COUNTERS);
    __type(key, __u32);
    __type(value, __u64);
} sampler_counters SEC(".maps");

/* struct pt_regs on x86_64, as a uprobe program's context. */
struct user_regs {
    __u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

SEC("uprobe")
int sampler_alloc(struct user_regs *ctx)
{
    __u32 zero = 0;
    bump(&sampler_counters, SAMPLED_ALLOCS, 1);
    struct sampled_block *block = bpf_map_lookup_elem(&scratch, &zero);
    if (!block)
        return 0;
    struct sampled_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .ptr = ctx->di };
    block->size = ctx->si;
    block->boot_ns = bpf_ktime_get_boot_ns();
    block->stack_bytes = bpf_get_stack(ctx, block->stack, sizeof block->stack, BPF_F_USER_STACK);
    long read = bpf_probe_read_user(block->words, sizeof block->words, (const void *)ctx->sp);
    block->words_bytes = read < 0 ? read : (__s32)sizeof block->words;
    if (bpf_map_update_elem(&outstanding, &key, block, BPF_ANY) != 0)
        bump(&sampler_counters, TABLE_FULL, 1);
    return 0;
}

SEC("uprobe")
int sampler_free(struct user_regs *ctx)
{
    bump(&sampler_counters, SAMPLED_FREES, 1);
    struct sampled_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .ptr = ctx->di };
    if (bpf_map_delete_elem(&outstanding, &key) == 0)
        bump(&sampler_counters, FREES_MATCHED, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
