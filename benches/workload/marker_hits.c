/* Calls the sampler's markers directly (the library preloaded, found with dlsym), so that a
 * capture's cost per marker hit is measured apart from any allocator: ROUNDS rounds of BATCH
 * alloc markers (distinct addresses, 64 bytes each) then BATCH free markers of the same
 * addresses (the probe's table stays small, as in a service that frees what it sampled). Prints
 * the thread's CPU nanoseconds per alloc hit and per free hit. Run under the gate library
 * (exporter/tests/helpers/gate.c) so a capture's window can open before main. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BATCH 1000

static double cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 100;
    void (*alloc_marker)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "memleak_sampler_alloc");
    void (*free_marker)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "memleak_sampler_free");
    if (!alloc_marker || !free_marker) {
        fprintf(stderr, "marker_hits: preload libmemleak_sampler.so\n");
        return 1;
    }
    double allocs = 0, frees = 0;
    for (long r = 0; r < rounds; r++) {
        double t0 = cpu_ns();
        for (uintptr_t i = 0; i < BATCH; i++)
            alloc_marker((void *)(0x100000 + 64 * i), 64);
        double t1 = cpu_ns();
        for (uintptr_t i = 0; i < BATCH; i++)
            free_marker((void *)(0x100000 + 64 * i));
        allocs += t1 - t0;
        frees += cpu_ns() - t1;
    }
    printf("%.0f %.0f\n", allocs / (rounds * BATCH), frees / (rounds * BATCH));
    fflush(stdout); /* before the gate holds the exit, which flushes only after it */
    return 0;
}
