/* fork without exec while another thread allocates. The parent allocates a (1 MiB, freed at
 * the end) and b (2 MiB, never freed by the parent); a thread churns small blocks through the
 * fork. The child frees b, leaks c (3 MiB), allocates and frees d (4 MiB), and churns from a
 * thread of its own. Prints "child=PID b=PTR c=PTR d=PTR" (child) and "a=PTR b=PTR" (parent). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1 << 20)
static volatile int stop;

static void *churn(void *arg) {
    unsigned seed = (unsigned)(size_t)arg;
    while (!stop) {
        char *p = malloc(100 + rand_r(&seed) % 5000);
        if (!p) _exit(10);
        p[0] = 1;
        free(p);
    }
    return NULL;
}

static void say(const char *format, unsigned long x, unsigned long y, unsigned long z) {
    char line[160];
    int n = snprintf(line, sizeof line, format, x, y, z);
    write(1, line, (size_t)n);
}

int main(void) {
    char *a = malloc(MIB), *b = malloc(2 * MIB);
    if (!a || !b) return 1;
    memset(a, 'a', MIB);
    memset(b, 'b', 2 * MIB);
    pthread_t thread;
    if (pthread_create(&thread, NULL, churn, (void *)1) != 0) return 2;
    usleep(20000);
    pid_t child = fork();
    if (child < 0) return 3;
    if (child == 0) {
        /* Only this thread exists here; the parent's churner was mid-loop when it forked. */
        if (b[2 * MIB - 1] != 'b') _exit(11);
        unsigned long b_address = (unsigned long)b;
        free(b);
        char *c = malloc(3 * MIB), *d = malloc(4 * MIB);
        if (!c || !d) _exit(12);
        memset(c, 'c', 3 * MIB);
        memset(d, 'd', 4 * MIB);
        unsigned long d_address = (unsigned long)d;
        free(d);
        pthread_t own;
        if (pthread_create(&own, NULL, churn, (void *)2) != 0) _exit(13);
        usleep(20000);
        stop = 1;
        pthread_join(own, NULL);
        char line[64];
        int n = snprintf(line, sizeof line, "child=%d ", (int)getpid());
        write(1, line, (size_t)n);
        say("b=%#lx c=%#lx d=%#lx\n", b_address, (unsigned long)c, d_address);
        exit(0);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 4;
    stop = 1;
    pthread_join(thread, NULL);
    say("a=%#lx b=%#lx\n", (unsigned long)a, (unsigned long)b, 0);
    free(a);
    return 0;
}
