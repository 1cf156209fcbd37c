/* tcleak: leaks on demand in a known function, under gperftools' heap profiler
 * (LD_PRELOAD=libtcmalloc.so.4 HEAPPROFILE=PREFIX HEAPPROFILESIGNAL=12), for the
 * capture test. Each line "N" on stdin leaks N blocks of 4096 bytes in
 * leak_block and answers "leaked N" on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile keep[1 << 16];
static unsigned kept;

__attribute__((noinline)) void leak_block(void) {
    char *p = malloc(4096);
    memset(p, 1, 4096);
    keep[kept++ % (1 << 16)] = p;
}

int main(void) {
    char line[64];
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("ready\n");
    while (fgets(line, sizeof line, stdin)) {
        int n = atoi(line);
        for (int i = 0; i < n; i++) leak_block();
        printf("leaked %d\n", n);
    }
    return 0;
}
