/* Threads allocating concurrently through malloc, calloc, posix_memalign and aligned_alloc,
 * from a fixed set of sizes. Each thread frees 3 of every 4 blocks (half at once, half later
 * from a ring) and keeps the 4th; after joining, the main thread frees every other kept block
 * (a free from another thread than the allocating one). The rest is in use at exit.
 * Prints the ground truth, one line per size: "size=S allocated=N in_use=M", counted here, and
 * the sampler's counters when it is loaded: "sampled=N sampled_freed=N dropped=N mean_bytes=N missed_frees=N".
 * Usage: threads [THREADS=8 (at most 64)] [PER_THREAD=20000 (at most 50000)] */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIZES 7
static const size_t sizes[SIZES] = {16, 100, 700, 3000, 12000, 50000, 150000};
/* index into sizes for lcg % 16: small sizes are the most frequent, as in real programs */
static const int pick[16] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 4, 5, 6};

#define MAX_THREADS 64
#define MAX_COUNT 50000

struct worker {
    unsigned index, count;
    unsigned long allocated[SIZES];
    unsigned kept_count;
    void *kept[MAX_COUNT / 4 + 1];
    int kept_size[MAX_COUNT / 4 + 1];
};

/* static: the program's own bookkeeping allocates nothing */
static struct worker workers[MAX_THREADS];

static void *allocate(unsigned way, size_t size) {
    void *p = NULL;
    switch (way % 4) {
    case 0: return malloc(size);
    case 1: return calloc(size / 4, 4); /* every size is a multiple of 4 */
    case 2: return posix_memalign(&p, 64, size) == 0 ? p : NULL;
    default: return aligned_alloc(256, size);
    }
}

static void *work(void *arg) {
    struct worker *w = arg;
    unsigned long long lcg = 0x9e3779b97f4a7c15ull * (w->index + 1);
    void *ring[16] = {0};
    for (unsigned i = 0; i < w->count; i++) {
        lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
        int k = pick[(lcg >> 33) % 16];
        char *p = allocate((unsigned)(lcg >> 40), sizes[k]);
        if (!p) { write(2, "allocation failed\n", 18); exit(1); }
        memset(p, (int)i, 16);
        w->allocated[k]++;
        switch (i % 4) {
        case 0: free(p); break;
        case 1: free(ring[i % 16]); ring[i % 16] = p; break;
        case 2: free(p); break;
        default: w->kept[w->kept_count] = p; w->kept_size[w->kept_count++] = k;
        }
    }
    for (unsigned i = 0; i < 16; i++) free(ring[i]);
    return NULL;
}

int main(int argc, char **argv) {
    unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 8;
    unsigned count = argc > 2 ? (unsigned)atoi(argv[2]) : 20000;
    if (threads < 1 || threads > MAX_THREADS || count > MAX_COUNT) return 2;
    pthread_t ids[MAX_THREADS];
    for (unsigned t = 0; t < threads; t++) {
        workers[t].index = t;
        workers[t].count = count;
    }
    for (unsigned t = 0; t < threads; t++)
        if (pthread_create(&ids[t], NULL, work, &workers[t]) != 0) return 3;
    unsigned long allocated[SIZES] = {0}, in_use[SIZES] = {0};
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        for (int k = 0; k < SIZES; k++) allocated[k] += workers[t].allocated[k];
        for (unsigned i = 0; i < workers[t].kept_count; i++) {
            if (i % 2 == 0) free(workers[t].kept[i]);
            else in_use[workers[t].kept_size[i]]++;
        }
    }
    /* The sampler's exported counters (layout version 2; later versions only append), read
     * after the last allocation. */
    struct counters { uint64_t version, mean_bytes, sampled, sampled_freed, dropped, missed_frees; };
    const volatile struct counters *counters = dlsym(RTLD_DEFAULT, "memleak_sampler_stats");
    uint64_t sampled = 0, sampled_freed = 0, dropped = 0, mean_bytes = 0, missed_frees = 0;
    if (counters && counters->version >= 2) {
        sampled = counters->sampled;
        sampled_freed = counters->sampled_freed;
        dropped = counters->dropped;
        mean_bytes = counters->mean_bytes;
        missed_frees = counters->missed_frees;
    }
    /* snprintf into a stack buffer and write(2): no stdio buffer allocated behind our back */
    char line[128];
    for (int k = 0; k < SIZES; k++) {
        int n = snprintf(line, sizeof line, "size=%zu allocated=%lu in_use=%lu\n", sizes[k], allocated[k], in_use[k]);
        write(1, line, (size_t)n);
    }
    int n = snprintf(line, sizeof line, "sampled=%lu sampled_freed=%lu dropped=%lu mean_bytes=%lu missed_frees=%lu\n",
                     (unsigned long)sampled, (unsigned long)sampled_freed, (unsigned long)dropped,
                     (unsigned long)mean_bytes, (unsigned long)missed_frees);
    write(1, line, (size_t)n);
    return 0;
}
