/* A mallocbench-style load for benches/sampler_overhead.sh: N malloc/free pairs (default
 * 2,000,000) of mixed sizes (70 % 16-256 B, 25 % 256 B-4 KiB, 5 % 4-32 KiB) over a pool of 4,096
 * live blocks picked at random, each block's first bytes written. Single-threaded, no I/O.
 * Usage: mallocbench [PAIRS] */
#include <stdlib.h>
#include <string.h>

#define SLOTS 4096

static void *slots[SLOTS];
static volatile unsigned char sink; /* keeps the writes and reads */

int main(int argc, char **argv) {
    unsigned long pairs = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
    unsigned long long lcg = 88172645463325252ull;
    for (unsigned long i = 0; i < pairs; i++) {
        lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(lcg >> 33);
        unsigned band = r % 100;
        size_t size = band < 70 ? 16 + (r >> 8) % 241 : band < 95 ? 256 + (r >> 8) % 3841 : 4096 + (r >> 8) % 28673;
        unsigned slot = (r >> 20) % SLOTS;
        free(slots[slot]);
        char *p = malloc(size);
        if (!p) return 1;
        memset(p, (int)i, 16);
        sink = (unsigned char)p[15];
        slots[slot] = p;
    }
    for (unsigned i = 0; i < SLOTS; i++) free(slots[i]);
    return 0;
}
