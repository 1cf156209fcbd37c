/* Two hostile cases for the sampler capture, one per mode; run with the gate library
 * (gate.c) so the capture's window opens before main:
 *
 *   fork CHILD_GATE  the parent keeps KEPT blocks of PARENT_BYTES (parent_keeps), then forks
 *                    without exec and prints "forked PID" on stderr. The child waits for a byte
 *                    on the FIFO CHILD_GATE (so a capture of its own can open first), frees its
 *                    copies of the parent's blocks (child_frees_inherited: the same addresses,
 *                    in its own address space), keeps KEPT blocks of CHILD_BYTES (child_keeps),
 *                    and waits to be killed (it dies with its parent). The parent prints "done"
 *                    once the child has done all that.
 *   realloc          keeps KEPT blocks malloc'd at GROW_FROM bytes then grown by realloc to
 *                    GROW_TO (grow: most move), and KEPT blocks malloc'd at SHRINK_FROM bytes
 *                    then shrunk to SHRINK_TO (shrink: glibc shrinks in place, same address),
 *                    then prints "done".
 *
 * Every block stays reachable through a global array, so the compiler keeps each call
 * (check with objdump -d: the calls to malloc, realloc and free are in the named functions). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEPT 64
#define PARENT_BYTES 3000
#define CHILD_BYTES 7000
#define GROW_FROM 1000
#define GROW_TO 50000
#define SHRINK_FROM 4000
#define SHRINK_TO 100

void *parent_blocks[KEPT];
void *child_blocks[KEPT];
void *grown[KEPT];
void *shrunk[KEPT];

__attribute__((noinline)) void parent_keeps(void)
{
    for (int i = 0; i < KEPT; i++) {
        parent_blocks[i] = malloc(PARENT_BYTES);
        memset(parent_blocks[i], 1, PARENT_BYTES);
    }
}

__attribute__((noinline)) void child_frees_inherited(void)
{
    for (int i = 0; i < KEPT; i++) {
        free(parent_blocks[i]);
        parent_blocks[i] = NULL;
    }
}

__attribute__((noinline)) void child_keeps(void)
{
    for (int i = 0; i < KEPT; i++) {
        child_blocks[i] = malloc(CHILD_BYTES);
        memset(child_blocks[i], 2, CHILD_BYTES);
    }
}

__attribute__((noinline)) void *first_size(size_t bytes)
{
    void *block = malloc(bytes);
    memset(block, 3, bytes);
    return block;
}

__attribute__((noinline)) void grow(void)
{
    for (int i = 0; i < KEPT; i++)
        grown[i] = realloc(grown[i], GROW_TO);
}

__attribute__((noinline)) void shrink(void)
{
    for (int i = 0; i < KEPT; i++)
        shrunk[i] = realloc(shrunk[i], SHRINK_TO);
}

static void say(const char *line)
{
    (void)!write(2, line, strlen(line));
}

static int forking(const char *child_gate)
{
    int done[2];
    if (pipe(done) != 0)
        return 1;
    parent_keeps();
    pid_t child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(done[0]);
        char go;
        int gate = open(child_gate, O_RDONLY);
        if (gate < 0 || read(gate, &go, 1) != 1)
            _exit(1);
        child_frees_inherited();
        child_keeps();
        (void)!write(done[1], "x", 1);
        for (;;)
            pause();
    }
    close(done[1]);
    char line[64];
    snprintf(line, sizeof line, "forked %d\n", (int)child);
    say(line);
    char x;
    if (read(done[0], &x, 1) != 1)
        return 1;
    say("done\n");
    return 0;
}

static int reallocating(void)
{
    for (int i = 0; i < KEPT; i++) {
        grown[i] = first_size(GROW_FROM);
        shrunk[i] = first_size(SHRINK_FROM);
    }
    grow();
    shrink();
    for (int i = 0; i < KEPT; i++)
        if (!grown[i] || !shrunk[i])
            return 1;
    say("done\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "fork") == 0)
        return forking(argv[2]);
    if (argc == 2 && strcmp(argv[1], "realloc") == 0)
        return reallocating();
    say("usage: fork_realloc fork CHILD_GATE | realloc\n");
    return 2;
}
