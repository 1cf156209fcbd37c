/* A quiet target that leaks a burst on demand, for the ebpf-malloc full-mode
 * test. usage: malloc_burst BLOCKS
 * Allocates and frees one 100 B block every 10 ms. On each line read from
 * stdin, burst_leak() allocates BLOCKS blocks of 4096 B at once and keeps
 * them, then it prints "burst BLOCKS". It exits when stdin closes. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define BLOCK 4096

static void *volatile g_sink;

__attribute__((noinline)) static void burst_leak(long blocks)
{
    for (long i = 0; i < blocks; i++)
        g_sink = malloc(BLOCK);
}

int main(int argc, char **argv)
{
    long blocks = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    char line[64];
    for (;;) {
        ssize_t got = read(0, line, sizeof line);
        if (got == 0)
            return 0;
        if (got > 0) {
            burst_leak(blocks);
            printf("burst %ld\n", blocks);
            fflush(stdout);
        }
        void *block = malloc(100);
        g_sink = block;
        free(block);
        usleep(10000);
    }
}
