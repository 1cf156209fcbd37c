/* A workload for benches/ingest_speed.sh: N allocations from 64 distinct call
 * stacks (recursion depth 0..15 times 4 sites), a ring of 1,000 live blocks
 * (older ones freed), and 1 block in 100 leaked. Produces large Massif and
 * heaptrack files quickly. Usage: churn N */
#include <stdlib.h>
#include <string.h>

static void *ring[1000];
static void *leaked[1 << 16];
static unsigned leaked_count;

__attribute__((noinline)) static void *site_a(size_t n) { return malloc(n); }
__attribute__((noinline)) static void *site_b(size_t n) { return malloc(n + 16); }
__attribute__((noinline)) static void *site_c(size_t n) { return calloc(1, n + 32); }
__attribute__((noinline)) static void *site_d(size_t n) { return malloc(n * 2); }

__attribute__((noinline)) static void *descend(int depth, unsigned i) {
    if (depth > 0) return descend(depth - 1, i);
    size_t n = 32 + (i * 2654435761u) % 4096;
    switch (i % 4) {
    case 0: return site_a(n);
    case 1: return site_b(n);
    case 2: return site_c(n);
    default: return site_d(n);
    }
}

int main(int argc, char **argv) {
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 100000;
    for (unsigned i = 0; i < n; i++) {
        void *p = descend((int)(i % 16), i);
        memset(p, 1, 16);
        if (i % 100 == 0 && leaked_count < (1u << 16)) {
            leaked[leaked_count++] = p;
            continue;
        }
        free(ring[i % 1000]);
        ring[i % 1000] = p;
    }
    return 0;
}
