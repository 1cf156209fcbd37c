/* A C program whose leak goes through glibc's strdup, for the ebpf-malloc
 * capture test: strdup keeps no frame pointer and uses rbp as a plain
 * register (its length) when it calls malloc, so the kernel's frame-pointer
 * walk from malloc's return stops at strdup. Built with
 * gcc -O1 -fno-omit-frame-pointer.
 * usage: strdup_leak ITERATIONS SLEEP_US
 * Waits for a line on stdin, then runs ITERATIONS iterations of
 * handle_line(): remember_name() strdups a 39-character name (40 B with its
 * NUL) into a list nothing frees; parse_line() strdups one and frees it.
 * Sleeps SLEEP_US between iterations, prints "leaked BYTES OBJECTS" (its own
 * count), then waits for stdin to close (so it is traced alive) and exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NAMES 100000
static const char name[] = "a-session-name-of-thirty-nine-character";
char *remembered[NAMES]; /* not static: GCC -O1 deletes a strdup into an array nothing reads */
char *volatile g_sink;

__attribute__((noipa)) void remember_name(unsigned long i)
{
    remembered[i % NAMES] = strdup(name);
}

__attribute__((noipa)) void parse_line(void)
{
    char *copy = strdup(name);
    g_sink = copy;
    free(copy);
}

__attribute__((noipa)) void handle_line(unsigned long i)
{
    remember_name(i);
    parse_line();
}

int main(int argc, char **argv)
{
    unsigned long iterations = argc > 1 ? strtoul(argv[1], NULL, 10) : 100;
    unsigned long sleep_us = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    char line[64];
    if (iterations > NAMES || !fgets(line, sizeof line, stdin))
        return 1;
    for (unsigned long i = 0; i < iterations; i++) {
        handle_line(i);
        usleep(sleep_us);
    }
    printf("leaked %lu %lu\n", iterations * sizeof name, iterations);
    fflush(stdout);
    while (fgets(line, sizeof line, stdin))
        ;
    return 0;
}
