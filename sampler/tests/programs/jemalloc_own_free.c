/* Frees sampled blocks behind the sampler's back, with jemalloc's own dallocx: ROUNDS blocks of
 * SIZE bytes from malloc, each given back with dallocx, so jemalloc hands the same few addresses
 * out again and again. Prints the ground truth and the sampler's counters over the loop:
 * "blocks=N addresses=K sampled=A sampled_freed=F missed_frees=X dropped=D".
 * Exit status 2: jemalloc (dallocx) or the sampler is not loaded; 3: more than 4096 addresses. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ROUNDS 20000
#define SIZE 4096
#define MAX_ADDRESSES 4096

struct counters { uint64_t version, mean_bytes, sampled, sampled_freed, dropped, missed_frees; };

static void *addresses[MAX_ADDRESSES];
static int distinct;

static int note(void *p) {
    for (int i = 0; i < distinct; i++)
        if (addresses[i] == p) return 0;
    if (distinct == MAX_ADDRESSES) return -1;
    addresses[distinct++] = p;
    return 0;
}

int main(void) {
    void (*dallocx)(void *, int) = (void (*)(void *, int))dlsym(RTLD_DEFAULT, "dallocx");
    const volatile struct counters *c = dlsym(RTLD_DEFAULT, "memleak_sampler_stats");
    if (!dallocx || !c || c->version < 2) return 2;
    struct counters before = *c;
    for (int i = 0; i < ROUNDS; i++) {
        void *p = malloc(SIZE);
        if (!p || note(p) != 0) return 3;
        dallocx(p, 0);
    }
    struct counters after = *c;
    char line[256];
    int n = snprintf(line, sizeof line, "blocks=%d addresses=%d sampled=%lu sampled_freed=%lu missed_frees=%lu dropped=%lu\n",
                     ROUNDS, distinct, (unsigned long)(after.sampled - before.sampled),
                     (unsigned long)(after.sampled_freed - before.sampled_freed),
                     (unsigned long)(after.missed_frees - before.missed_frees),
                     (unsigned long)(after.dropped - before.dropped));
    return write(1, line, (size_t)n) == n ? 0 : 1;
}
