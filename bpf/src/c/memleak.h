/* The few definitions our BPF programs need, written here instead of taken
 * from kernel headers (none are installed on these machines). Structures shared
 * with Rust are mirrored in src/shared.rs with size assertions. */
#ifndef MEMLEAK_BPF_H
#define MEMLEAK_BPF_H

typedef unsigned long long __u64;
typedef long long __s64;
typedef unsigned int __u32;
typedef int __s32;

#define SEC(name) __attribute__((section(name), used))
#define __always_inline inline __attribute__((always_inline))
/* BTF-defined maps (clang -g turns these into BTF the loader reads). */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name

/* Map types and flags from include/uapi/linux/bpf.h. */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_STACK_TRACE 7
#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_MAP_TYPE_RINGBUF 27
#define BPF_ANY 0
#define BPF_NOEXIST 1
#define BPF_F_USER_STACK (1ULL << 8)

/* Helper ids from include/uapi/linux/bpf.h. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static long (*bpf_get_stackid)(void *ctx, void *map, __u64 flags) = (void *)27;
static long (*bpf_get_stack)(void *ctx, void *buf, __u32 size, __u64 flags) = (void *)67;
static __u64 (*bpf_get_current_cgroup_id)(void) = (void *)80;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)132;
static __u64 (*bpf_get_attach_cookie)(void *ctx) = (void *)174;

/* struct bpf_perf_event_data on x86_64: the user registers, then these. */
struct bpf_perf_event_data {
    __u64 regs[21];
    __u64 sample_period;
    __u64 addr;
};

/* Adds `n` to slot `index` of a per-CPU array of counters. */
static __always_inline void bump(void *counters, __u32 index, __u64 n)
{
    __u64 *slot = bpf_map_lookup_elem(counters, &index);
    if (slot)
        *slot += n;
}

/* struct pt_regs on x86_64, what uprobes see: arguments in di, si, dx; the result in ax. */
struct pt_regs {
    __u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

/* ---- shared with Rust (src/shared.rs) ---- */

/* Frames kept of a user stack (frame-pointer walk by the kernel), innermost first. */
#define MAX_STACK_DEPTH 32

/* One page fault chosen for attribution: pushed to a ring buffer with its user
 * stack, classified in user space against /proc/TGID/maps. The stack travels in
 * the record (not in a stack map, whose hash buckets collide and lose stacks). */
struct fault_sample {
    __u64 cgroup;      /* cgroup v2 id of the faulting task */
    __u64 addr;        /* the faulting address */
    __u32 tgid;        /* the faulting process */
    __u32 weight;      /* faults this sample stands for */
    __s32 stack_bytes; /* bytes of `stack` filled, or a negative errno */
    __u32 pad;
    __u64 stack[MAX_STACK_DEPTH];
};

/* Slots of the page-fault program's per-CPU counters. */
#define FAULT_RING_FULL 0 /* samples lost because the ring buffer was full */
#define FAULT_COUNTERS 1

#define SYSCALL_MMAP 0
#define SYSCALL_MUNMAP 1
#define SYSCALL_BRK 2
#define SYSCALL_MREMAP 3
#define SYSCALLS 4
/* mmap sizes: bucket i holds lengths <= 4 KiB << i; the last one the rest. */
#define SIZE_BUCKETS 24

/* What one cgroup's tasks did with brk/mmap/munmap/mremap. */
struct memory_syscall_stats {
    __u64 calls[SYSCALLS];  /* successful calls */
    __u64 failed[SYSCALLS]; /* calls that returned an error */
    __u64 mapped_anon;      /* bytes of successful anonymous mmaps */
    __u64 mapped_file;      /* bytes of successful file mmaps */
    __u64 unmapped;         /* bytes of successful munmaps */
    __u64 brk_grown;        /* bytes the program break moved up */
    __u64 brk_shrunk;       /* bytes it moved down */
    __u64 mremap_grown;
    __u64 mremap_shrunk;
    __u64 mmap_sizes[SIZE_BUCKETS];
};

/* Slots of the syscall programs' per-CPU counters. */
#define SYSCALL_STATS_INSERTS 0  /* cgroups added to the stats LRU (inserts - entries = evicted) */
#define SYSCALL_BREAKS_FULL 1    /* processes not tracked: the break map was full */
#define SYSCALL_UNPAIRED_EXITS 2 /* syscall exits whose entry was not seen */
#define SYSCALL_BREAK_INSERTS 3  /* processes added to the break map */
#define SYSCALL_BREAK_DELETES 4  /* processes removed from it (exit, exec): inserts - deletes = entries */
#define SYSCALL_COUNTERS 5

/* Allocations still outstanding, by address (malloc_trace.bpf.c). */
#define MALLOC_MAX_OUTSTANDING 262144
/* Distinct user stacks kept (a stack-trace map: a colliding stack is lost, counted). */
#define MALLOC_MAX_STACKS 16384

/* Words of the user stack read at an allocation's return, from its stack pointer up. */
#define MALLOC_STACK_WORDS 16
/* Of them, the first distinct ones that point into the process's code, kept:
 * the return address into a caller the frame-pointer walk skips is among them,
 * after function pointers a wrapper's frame may hold (glibc's getdelim keeps
 * two of fmemopen's there, and the return into its caller is the 12th word). */
#define MALLOC_CALLER_WORDS 4
/* Executable ranges of the process's files that tell code words from data. */
#define MALLOC_MAX_CODE_RANGES 64

/* The process's file-backed code, sorted, written by user space before the probes go in. */
struct malloc_code_ranges {
    __u64 count;
    __u64 start[MALLOC_MAX_CODE_RANGES];
    __u64 end[MALLOC_MAX_CODE_RANGES]; /* exclusive */
};

/* A user stack: the kernel's frame-pointer walk and the code words above the stack pointer. */
struct malloc_site_key {
    __s32 stack_id; /* in malloc_stacks, or a negative errno (no stack) */
    __u32 pad;
    __u64 callers[MALLOC_CALLER_WORDS]; /* 0 where fewer were found */
};

/* One outstanding allocation. */
struct malloc_alloc {
    __u64 size;
    __u64 time_ns; /* bpf_ktime_get_ns() when it returned */
    struct malloc_site_key site;
};

/* What one site (struct malloc_site_key) allocated during the capture (freed or not). */
struct malloc_site_totals {
    __u64 bytes;
    __u64 count;
};

/* Slots of the malloc programs' per-CPU counters. */
#define MALLOC_ALLOC_CALLS 0       /* allocation entries seen (malloc, calloc, realloc, ...) */
#define MALLOC_ALLOC_RETURNS 1     /* allocation returns seen */
#define MALLOC_FREE_CALLS 2        /* free entries seen (including free(NULL) and unknown addresses) */
#define MALLOC_FREES_MATCHED 3     /* frees of an outstanding allocation */
#define MALLOC_OUTSTANDING_FULL 4  /* allocations not recorded: the outstanding map was full */
#define MALLOC_STACK_LOST 5        /* allocations recorded without a stack (collision, no frame) */
#define MALLOC_SITES_FULL 6        /* allocations not added to per-stack totals: that map was full */
#define MALLOC_FORKS 7             /* processes the target forked (each inherits the breakpoints) */
#define MALLOC_CHILDREN_FULL 8     /* forked processes not followed: malloc_children was full */
#define MALLOC_EXECS 9             /* the target exec'd: the maps froze then */
#define MALLOC_COUNTERS 10
/* Forked processes followed until they exec or exit (malloc_trace.bpf.c). */
#define MALLOC_MAX_CHILDREN 256

/* Where an allocation entry finds its arguments: the cookie of its probe. */
#define MALLOC_SHAPE_SIZE_FIRST 0     /* malloc(size), mallocx(size, flags), valloc(size), pvalloc(size) */
#define MALLOC_SHAPE_CALLOC 1         /* calloc(count, size) */
#define MALLOC_SHAPE_REALLOC 2        /* realloc(ptr, size), rallocx(ptr, size, flags) */
#define MALLOC_SHAPE_SIZE_SECOND 3    /* aligned_alloc(alignment, size), memalign(alignment, size) */
#define MALLOC_SHAPE_POSIX_MEMALIGN 4 /* posix_memalign(&ptr, alignment, size): the block is written to ptr */

/* sched_process_exit's record (tracefs events/sched/sched_process_exit/format): comm[16], pid,
 * prio, group_dead (the process's last thread). */
struct process_exit_args {
    __u64 common;
    char comm[16];
    int pid;
    int prio;
    unsigned char group_dead;
};

/* An allocation between its entry and its return. */
struct malloc_pending {
    __u64 size;
    __u64 out; /* posix_memalign's result pointer, or 0: the block is the return value */
};

#endif
