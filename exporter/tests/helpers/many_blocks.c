/* Keeps argv[1] blocks of 64 B live from keep_many, then says "done" on stderr. Run with the
 * sampler at mean 1 byte, every block is sampled: past the sampler's own table of live sampled
 * pointers (65,536 slots in hashed buckets) it drops samples, which it counts. Compiled at -O1:
 * the blocks are stored in an array kept in a volatile global, so every malloc stays. */
#include <stdio.h>
#include <stdlib.h>

static void **volatile sink;

__attribute__((noinline)) void **keep_many(long n)
{
    void **kept = malloc(n * sizeof *kept);
    if (!kept)
        return NULL;
    for (long i = 0; i < n; i++)
        kept[i] = malloc(64);
    return kept;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    sink = keep_many(n);
    fputs(sink ? "done\n" : "out of memory\n", stderr);
    return 0;
}
