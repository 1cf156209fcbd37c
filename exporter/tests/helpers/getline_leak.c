/* A C program whose leak is allocated inside glibc, for the ebpf-malloc
 * capture test: getline's buffer is allocated by __getdelim, which keeps no
 * frame pointer and uses rbp as a plain register, and its frame holds
 * function pointers (fmemopen's) above the stack pointer before the return
 * into its caller. The leaking function is keep_line, which is what the top
 * site must name, not glibc's. Built with gcc -O1 -fno-omit-frame-pointer.
 * usage: getline_leak ITERATIONS SLEEP_US
 * Waits for a line on stdin, then runs ITERATIONS iterations of
 * handle_request(): keep_line() reads a line with getline from a memory
 * stream into a fresh buffer it keeps in a list nothing frees (its size is
 * what getline reports in its size argument); the stream is closed.
 * Sleeps SLEEP_US between iterations, prints "leaked BYTES OBJECTS" (its own
 * count) to an unbuffered stdout (a buffer stdio allocated at the first
 * printf would be one more block held), then waits for stdin to close (so it
 * is traced alive) and exits. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define KEPT 100000
char *lines[KEPT]; /* not static: GCC -O1 may delete stores into an array nothing reads */
unsigned long line_bytes, line_count;

__attribute__((noipa)) void keep_line(unsigned long i)
{
    static char text[] = "GET /index.html HTTP/1.1\n";
    FILE *stream = fmemopen(text, sizeof text - 1, "r");
    size_t size = 0;
    char *line = NULL;
    if (!stream)
        return;
    if (getline(&line, &size, stream) > 0) {
        lines[i % KEPT] = line;
        line_bytes += size;
        line_count++;
    } else {
        free(line);
    }
    fclose(stream);
}

__attribute__((noipa)) void handle_request(unsigned long i)
{
    keep_line(i);
}

int main(int argc, char **argv)
{
    unsigned long iterations = argc > 1 ? strtoul(argv[1], NULL, 10) : 100;
    unsigned long sleep_us = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    char line[64];
    setvbuf(stdout, NULL, _IONBF, 0);
    if (iterations > KEPT || !fgets(line, sizeof line, stdin))
        return 1;
    for (unsigned long i = 0; i < iterations; i++) {
        handle_request(i);
        usleep(sleep_us);
    }
    printf("leaked %lu %lu\n", line_bytes, line_count);
    while (fgets(line, sizeof line, stdin))
        ;
    return 0;
}
