/* Two threads: the second loops vfork() of a child that sleeps 3 s before _exit, so at almost
 * any moment it waits in vfork, where a ptrace interrupt does not stop it until the child is
 * gone; the main thread says "ready" on stderr, then leaks 1000 B from leak_1000 every 10 ms.
 * Compiled at -O1: each malloc is kept (its pointer is stored in a volatile global). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *volatile sink;

__attribute__((noinline)) void leak_1000(void)
{
    char *p = malloc(1000);
    if (p)
        memset(p, 1, 1000);
    sink = p;
}

static void *vforker(void *unused)
{
    (void)unused;
    for (;;) {
        pid_t child = vfork();
        if (child == 0) {
            struct timespec three = {3, 0};
            nanosleep(&three, NULL);
            _exit(0);
        }
        waitpid(child, NULL, 0);
    }
    return NULL;
}

int main(void)
{
    pthread_t thread;
    if (pthread_create(&thread, NULL, vforker, NULL) != 0)
        return 1;
    fputs("ready\n", stderr);
    for (;;) {
        leak_1000();
        usleep(10000);
    }
}
