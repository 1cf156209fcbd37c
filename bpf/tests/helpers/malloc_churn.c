/* A malloc-heavy program with a known leak, for the ebpf-malloc tests and
 * benchmark. usage: malloc_churn ITERATIONS [LEAK_EVERY]
 * Waits for a line on stdin, then runs ITERATIONS iterations: each
 * allocates a block of a mixed size (16 B to 4 KiB) and frees the one
 * allocated 64 iterations before (a steady working set of 64 blocks, the
 * "cache"); every LEAK_EVERY-th iteration (1000) leak_slowly() also
 * allocates 512 B that it never frees. Then prints
 * "leaked BYTES BLOCKS cpu_ns NS sys_ns NS" (its CPU time during the loop,
 * and the system part of it, where uprobe traps are charged) and waits
 * for stdin to close. With SLEEP_US, it sleeps that long every 100
 * iterations (a paced, service-like load). Built with frame pointers. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define WORKING_SET 64
#define LEAK_SIZE 512

static void *volatile g_sink;

__attribute__((noinline)) void *leak_slowly(void)
{
    return malloc(LEAK_SIZE);
}

__attribute__((noinline)) void *steady_cache_fill(size_t size)
{
    return malloc(size);
}

static long long sys_ns(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (long long)u.ru_stime.tv_sec * 1000000000LL + (long long)u.ru_stime.tv_usec * 1000LL;
}

static long long cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
    unsigned long iterations = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    unsigned long leak_every = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    unsigned long sleep_us = argc > 3 ? strtoul(argv[3], NULL, 10) : 0;
    void *ring[WORKING_SET] = {0};
    char line[64];
    unsigned long leaked = 0;
    if (!fgets(line, sizeof line, stdin))
        return 1;
    long long start = cpu_ns(), start_sys = sys_ns();
    for (unsigned long i = 0; i < iterations; i++) {
        unsigned slot = i % WORKING_SET;
        free(ring[slot]);
        unsigned mixed = (unsigned)i * 2654435761u; /* Knuth's multiplicative hash: sizes spread evenly */
        ring[slot] = steady_cache_fill(16 + (mixed >> 16) % 4080);
        if (leak_every && i % leak_every == leak_every - 1) {
            g_sink = leak_slowly();
            leaked++;
        }
        if (sleep_us && i % 100 == 99)
            usleep(sleep_us);
    }
    long long spent = cpu_ns() - start, spent_sys = sys_ns() - start_sys;
    printf("leaked %lu %lu cpu_ns %lld sys_ns %lld\n", leaked * LEAK_SIZE, leaked, spent, spent_sys);
    fflush(stdout);
    while (fgets(line, sizeof line, stdin))
        ;
    return 0;
}
