/* A target that execs itself within the trace window, for the ebpf-malloc
 * exec test. usage: malloc_exec [after]
 * Without an argument: waits for a line on stdin, leaks BLOCKS blocks of
 * BLOCK_SIZE bytes in leak_before_exec(), prints "leaked BYTES OBJECTS" and
 * execs itself with "after". With "after" (the new image): leaks as many in
 * leak_after_exec(), one every 10 ms, then sleeps until stdin closes. The
 * blocks are kept in a global array so the compiler keeps the calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCKS 100
#define BLOCK_SIZE 48

void *kept[BLOCKS];

__attribute__((noinline)) void leak_before_exec(void)
{
    for (int i = 0; i < BLOCKS; i++)
        kept[i] = malloc(BLOCK_SIZE);
}

__attribute__((noinline)) void leak_after_exec(void)
{
    for (int i = 0; i < BLOCKS; i++) {
        kept[i] = malloc(BLOCK_SIZE);
        usleep(10000);
    }
}

int main(int argc, char **argv)
{
    char line[64];
    if (argc > 1 && strcmp(argv[1], "after") == 0) {
        leak_after_exec();
        while (fgets(line, sizeof line, stdin))
            ;
        return 0;
    }
    if (!fgets(line, sizeof line, stdin))
        return 1;
    leak_before_exec();
    printf("leaked %d %d\n", BLOCKS * BLOCK_SIZE, BLOCKS);
    fflush(stdout);
    execl("/proc/self/exe", argv[0], "after", (char *)NULL);
    perror("execl");
    return 1;
}
