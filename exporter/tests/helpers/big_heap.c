/* A process with a large heap and busy threads, for the reachability pause:
 * allocates argv[1] MiB (written, so resident), starts 4 threads that malloc
 * and free without pause (allocating while a capture starts and ends), prints
 * "ready" and runs until killed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *churn(void *arg)
{
    (void)arg;
    for (unsigned i = 0;; i++) {
        /* Volatile: a compiler may delete a malloc and free pair whose block is
         * never seen (GCC at -O1 made this loop an empty spin); the threads must
         * really call the allocator. */
        char *volatile p = malloc(64 + (i % 4096));
        if (p)
            p[0] = (char)i;
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
    char *heap = malloc(mib << 20);
    if (!heap)
        return 1;
    memset(heap, 1, mib << 20);
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&threads[i], NULL, churn, NULL) != 0)
            return 1;
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
