/* Run with the sampler preloaded in front of jemalloc: checks, through jemalloc's own per-thread
 * counters (mallctl "thread.allocated" / "thread.deallocated"), that every entry point reached
 * jemalloc, and prints the blocks: "malloc=PTR calloc=PTR ...". Exit status 2: jemalloc is not
 * loaded; 3 and up: the numbered call did not reach it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BIG ((size_t)1 << 20)
typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);
static mallctl_fn mallctl;

static uint64_t counter(const char *name) {
    uint64_t value = 0;
    size_t length = sizeof value;
    return mallctl(name, &value, &length, NULL, 0) == 0 ? value : 0;
}

static char line[512];
static int used;

/* `block` came from jemalloc if jemalloc's count of this thread's allocated bytes grew by at least `size`. */
static void check(int step, const char *name, void *block, size_t size, uint64_t before) {
    if (!block || counter("thread.allocated") - before < size) exit(step);
    used += snprintf(line + used, sizeof line - (size_t)used, "%s=%#lx ", name, (unsigned long)block);
}

int main(void) {
    mallctl = (mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
    if (!mallctl) return 2;
    uint64_t before = counter("thread.allocated");
    void *a = malloc(BIG);
    check(3, "malloc", a, BIG, before);
    before = counter("thread.allocated");
    void *b = calloc(4, BIG / 4);
    check(4, "calloc", b, BIG, before);
    before = counter("thread.allocated");
    void *c = realloc(a, 2 * BIG);
    check(5, "realloc", c, 2 * BIG, before);
    void *d = NULL;
    before = counter("thread.allocated");
    if (posix_memalign(&d, 4096, BIG) != 0) return 6;
    check(6, "posix_memalign", d, BIG, before);
    before = counter("thread.allocated");
    void *e = aligned_alloc(64, BIG);
    check(7, "aligned_alloc", e, BIG, before);
    before = counter("thread.allocated");
    void *f = memalign(256, BIG);
    check(8, "memalign", f, BIG, before);
    before = counter("thread.allocated");
    void *g = valloc(BIG);
    check(9, "valloc", g, BIG, before);
    if (malloc_usable_size(g) < BIG) return 10;
    uint64_t freed = counter("thread.deallocated");
    free(b), free(c), free(d), free(e), free(f), free(g);
    if (counter("thread.deallocated") - freed < 7 * BIG) return 11;
    line[used++] = '\n';
    return write(1, line, (size_t)used) == used ? 0 : 12;
}
