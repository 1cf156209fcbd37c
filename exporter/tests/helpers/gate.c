/* A preloaded library that holds its process at the start (before main) and at
 * the exit (after main) until the test says go: one byte, or the end of file,
 * on the FIFO named by MEMLEAK_TEST_GATE, at each. So a capture can cover a
 * whole run of a fixture program and read it while it still lives. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static int gate = -1;

static void wait_for_go(void)
{
    char go;
    if (gate >= 0)
        (void)!read(gate, &go, 1);
}

__attribute__((constructor)) static void hold_at_start(void)
{
    const char *path = getenv("MEMLEAK_TEST_GATE");
    if (path)
        gate = open(path, O_RDONLY);
    wait_for_go();
}

__attribute__((destructor)) static void hold_at_exit(void)
{
    wait_for_go();
}
