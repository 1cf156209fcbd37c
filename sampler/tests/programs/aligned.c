/* The aligned entry points over good and bad alignments and sizes: prints, for each call, what
 * came back (status or null, errno, whether the block is aligned and large enough), nothing that
 * differs between runs. The same program with and without the sampler must print the same. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char out[1 << 16];
static size_t used;

static void report(const char *what, size_t align, size_t size, void *p, int status, int error) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t expected = strcmp(what, "valloc") == 0 || strcmp(what, "pvalloc") == 0 ? page : align;
    /* Only a power of two is an alignment; for other values allocators differ (glibc rounds up). */
    int power = expected && (expected & (expected - 1)) == 0;
    int aligned = p && power ? (uintptr_t)p % expected == 0 : -1;
    int roomy = p && malloc_usable_size(p) >= size;
    used += (size_t)snprintf(out + used, sizeof out - used, "%s(%#zx, %#zx): %s status=%d errno=%d aligned=%d roomy=%d\n",
                             what, align, size, p ? "block" : "null", status, p ? 0 : error, aligned, roomy);
    if (p) memset(p, 0xa5, size < 4096 ? size : 4096);
    free(p);
}

int main(void) {
    static const size_t aligns[] = {0, 1, 2, 3, 4, 8, 12, 16, 24, 32, 48, 64, 100, 128, 4096, 65536, 1 << 20,
                                    SIZE_MAX / 2 + 1, SIZE_MAX};
    static const size_t sizes[] = {0, 1, 100, 5000, 1 << 20, SIZE_MAX - 100, SIZE_MAX};
    for (size_t i = 0; i < sizeof aligns / sizeof *aligns; i++) {
        for (size_t j = 0; j < sizeof sizes / sizeof *sizes; j++) {
            size_t align = aligns[i], size = sizes[j];
            void *p = NULL;
            errno = 0;
            int status = posix_memalign(&p, align, size);
            report("posix_memalign", align, size, status == 0 ? p : NULL, status, status);
            errno = 0;
            p = aligned_alloc(align, size);
            report("aligned_alloc", align, size, p, 0, errno);
            errno = 0;
            p = memalign(align, size);
            report("memalign", align, size, p, 0, errno);
        }
    }
    for (size_t j = 0; j < sizeof sizes / sizeof *sizes; j++) {
        errno = 0;
        void *p = valloc(sizes[j]);
        report("valloc", 0, sizes[j], p, 0, errno);
        errno = 0;
        p = pvalloc(sizes[j]);
        report("pvalloc", 0, sizes[j], p, 0, errno);
    }
    used += (size_t)snprintf(out + used, sizeof out - used, "malloc_usable_size(NULL)=%zu\n", malloc_usable_size(NULL));
    write(1, out, used);
    return 0;
}
