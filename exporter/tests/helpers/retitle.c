/* A process that sets its title as nginx, postgres and setproctitle do: it copies its
 * environment elsewhere and overwrites the original argv + environ area, so /proc/PID/environ
 * no longer shows what it started with. Then "ready" on stderr, and it leaks 1536 B from
 * leak_1536 every 10 ms until killed. Compiled at -O1: each malloc is kept (its pointer is
 * stored in a volatile global), which the test checks in the capture's samples.
 *
 * Before each leak the stack below main is scrubbed: usleep's callees leave their return
 * addresses there, in the slots the sampler's hook frames reuse without writing, and the
 * capture's search for the caller among the raw stack words would take such a stale one for
 * it (a known weakness of that search, not what these tests are about). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;
static void *volatile sink;

__attribute__((noinline)) static void scrub_stack(void)
{
    volatile char below[8192];
    for (unsigned i = 0; i < sizeof below; i++)
        below[i] = 0;
}

__attribute__((noinline)) void leak_1536(void)
{
    char *p = malloc(1536);
    if (p)
        memset(p, 1, 1536);
    sink = p;
}

int main(int argc, char **argv)
{
    char *start = argv[0];
    char *end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
    int n = 0;
    for (char **e = environ; *e; e++, n++)
        end = *e + strlen(*e) + 1;
    char **copy = malloc((n + 1) * sizeof *copy);
    if (!copy)
        return 1;
    for (int i = 0; i < n; i++)
        copy[i] = strdup(environ[i]);
    copy[n] = NULL;
    environ = copy;
    memset(start, 0, end - start);
    strcpy(start, "retitle: worker process");
    fputs("ready\n", stderr);
    for (;;) {
        scrub_stack();
        leak_1536();
        usleep(10000);
    }
}
