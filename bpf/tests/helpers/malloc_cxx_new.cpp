/* A C++ program whose leak goes through operator new, for the ebpf-malloc
 * tests. usage: malloc_cxx_new ITERATIONS SLEEP_US
 * Waits for a line on stdin, then runs ITERATIONS iterations: each news a
 * 200 B Request in churn_request() and deletes it, and news one more in
 * leak_request() that it never deletes; sleeps SLEEP_US between iterations;
 * prints "leaked BYTES OBJECTS" and exits.
 * Built three ways: plain (libstdc++'s operator new, which calls malloc),
 * -DARENA_NEW (operator new and delete replaced by a bump arena that never
 * calls malloc or free), -DMALLOC_NEW (replaced by ones that call malloc and
 * free themselves). Build with -O0: a new-expression whose object is deleted
 * unused may otherwise be elided. */
#include <cstdio>
#include <cstdlib>
#include <new>
#include <unistd.h>

struct Request {
    char body[200];
};

#if defined(ARENA_NEW)
static char arena[64 << 20];
static size_t used;

void *operator new(size_t size)
{
    size = (size + 15) & ~size_t(15);
    if (used + size > sizeof arena)
        throw std::bad_alloc();
    void *block = arena + used;
    used += size;
    return block;
}
void operator delete(void *) noexcept {}
void operator delete(void *, size_t) noexcept {}
#elif defined(MALLOC_NEW)
void *operator new(size_t size)
{
    void *block = malloc(size);
    if (!block)
        throw std::bad_alloc();
    return block;
}
void operator delete(void *block) noexcept { free(block); }
void operator delete(void *block, size_t) noexcept { free(block); }
#endif

Request *volatile g_sink;

extern "C" __attribute__((noinline)) Request *leak_request() { return new Request; }

extern "C" __attribute__((noinline)) void churn_request()
{
    Request *request = new Request;
    g_sink = request;
    delete request;
}

int main(int argc, char **argv)
{
    unsigned long iterations = argc > 1 ? strtoul(argv[1], nullptr, 10) : 100;
    unsigned long sleep_us = argc > 2 ? strtoul(argv[2], nullptr, 10) : 1000;
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    for (unsigned long i = 0; i < iterations; i++) {
        churn_request();
        g_sink = leak_request();
        usleep(sleep_us);
    }
    printf("leaked %lu %lu\n", iterations * sizeof(Request), iterations);
    return 0;
}
