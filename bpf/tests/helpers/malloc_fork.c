/* A quiet target that forks a malloc-heavy child on demand, for the
 * ebpf-malloc fork test. usage: malloc_fork
 * Allocates and frees one block every 10 ms. On each line read from stdin it
 * forks a child and prints "forked PID"; on a line starting with 'e' the
 * child execs "sleep 2" at once, otherwise it runs malloc/free pairs for
 * SLICES slices of SLICE_MS each, then prints "child PID slices N N ... cpu_us
 * C C ..." (the pairs of each slice, and the CPU time the child had in it: on
 * a loaded host it may get little of a slice, so pairs per CPU second are what
 * tell a trapped loop from a free one) and exits. The parent exits when stdin closes. The
 * sink keeps the compiler from removing the pairs. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SLICES 30
#define SLICE_MS 100

static void *volatile g_sink;

static long long clock_ns(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

__attribute__((noinline)) static void churn(void)
{
    long counts[SLICES];
    long long cpu_us[SLICES];
    long long start = now_ns();
    for (int slice = 0; slice < SLICES; slice++) {
        long long end = start + (long long)(slice + 1) * SLICE_MS * 1000000LL;
        long long cpu_start = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
        long n = 0;
        while (now_ns() < end) {
            void *block = malloc(64);
            g_sink = block;
            free(block);
            n++;
        }
        counts[slice] = n;
        cpu_us[slice] = (clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu_start) / 1000;
    }
    printf("child %d slices", (int)getpid());
    for (int slice = 0; slice < SLICES; slice++)
        printf(" %ld", counts[slice]);
    printf(" cpu_us");
    for (int slice = 0; slice < SLICES; slice++)
        printf(" %lld", cpu_us[slice]);
    printf("\n");
    fflush(stdout);
}

int main(void)
{
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    char line[64];
    for (;;) {
        ssize_t got = read(0, line, sizeof line);
        if (got == 0)
            return 0;
        if (got > 0) {
            pid_t child = fork();
            if (child == 0 && line[0] == 'e') {
                execl("/bin/sleep", "sleep", "2", (char *)NULL);
                _exit(127);
            }
            if (child == 0) {
                churn();
                _exit(0);
            }
            printf("forked %d\n", (int)child);
            fflush(stdout);
        }
        void *block = malloc(100);
        g_sink = block;
        free(block);
        usleep(10000);
    }
}
