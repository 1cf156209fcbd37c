/* A leak next to a hot cache, for the staleness capture: LEAKS buffers of
 * LEAK_BYTES each, written once and never touched again (each malloc'd block
 * is an mmap of its own), and a CACHE_BYTES cache mapped apart (PROT_NONE
 * guard pages on both sides keep the kernel from merging it with the leaks'
 * anonymous mappings), read page
 * by page every millisecond. Prints "cache ADDR BYTES" and "leak ADDR BYTES"
 * lines, then "ready", and runs until killed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define LEAKS 16
#define LEAK_BYTES (1 << 20)
#define CACHE_BYTES (8 << 20)
#define PAGE 4096

int main(void)
{
    char *guarded = mmap(NULL, CACHE_BYTES + 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guarded == MAP_FAILED)
        return 1;
    char *cache = guarded + PAGE;
    if (mprotect(cache, CACHE_BYTES, PROT_READ | PROT_WRITE) != 0)
        return 1;
    memset(cache, 1, CACHE_BYTES);
    printf("cache %p %d\n", (void *)cache, CACHE_BYTES);
    for (int i = 0; i < LEAKS; i++) {
        char *leak = malloc(LEAK_BYTES);
        if (!leak)
            return 1;
        memset(leak, 2, LEAK_BYTES);
        printf("leak %p %d\n", (void *)leak, LEAK_BYTES);
    }
    printf("ready\n");
    fflush(stdout);
    volatile unsigned long sum = 0;
    for (;;) {
        for (size_t off = 0; off < CACHE_BYTES; off += PAGE)
            sum += cache[off];
        usleep(1000);
    }
}
