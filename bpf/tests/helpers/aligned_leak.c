/* Leaks through the aligned allocation family, for the ebpf-malloc tests.
 * usage: aligned_leak ITERATIONS SLEEP_US
 * Each iteration (then a sleep of SLEEP_US) leaks one block from each of
 * leak_posix_memalign (posix_memalign, 64-aligned, 1,000 B),
 * leak_aligned_alloc (aligned_alloc, 4,096-aligned, 8,192 B), leak_memalign
 * (memalign, 256-aligned, 3,000 B), leak_valloc (valloc, 5,000 B) and
 * leak_small_memalign (memalign, 16-aligned, 700 B: glibc hands it to
 * malloc), and churn_aligned allocates and frees one block of each kind.
 * Prints "done" at the end. Built with frame pointers. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *volatile g_sink;

__attribute__((noinline)) void leak_posix_memalign(void)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, 1000) == 0)
        g_sink = p;
}

__attribute__((noinline)) void leak_aligned_alloc(void)
{
    g_sink = aligned_alloc(4096, 8192);
}

__attribute__((noinline)) void leak_memalign(void)
{
    g_sink = memalign(256, 3000);
}

__attribute__((noinline)) void leak_valloc(void)
{
    g_sink = valloc(5000);
}

__attribute__((noinline)) void leak_small_memalign(void)
{
    g_sink = memalign(16, 700);
}

__attribute__((noinline)) void churn_aligned(void)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, 1100) == 0)
        free(p);
    free(aligned_alloc(4096, 4096));
    free(memalign(256, 3100));
    free(valloc(5100));
}

int main(int argc, char **argv)
{
    unsigned long iterations = argc > 1 ? strtoul(argv[1], NULL, 10) : 100;
    unsigned long sleep_us = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
    for (unsigned long i = 0; i < iterations; i++) {
        leak_posix_memalign();
        leak_aligned_alloc();
        leak_memalign();
        leak_valloc();
        leak_small_memalign();
        churn_aligned();
        usleep(sleep_us);
    }
    printf("done\n");
    return 0;
}
