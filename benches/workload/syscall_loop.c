/* A syscall-heavy loop (the one of DESIGN.md): 2,000,000 getppid calls and
 * 100,000 mmap/munmap pairs of 64 KiB (never touched, so no page faults).
 * Prints nothing; time it from outside. Usage: syscall_loop [SCALE=1] */
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long scale = argc > 1 ? atol(argv[1]) : 1;
    for (long i = 0; i < 2000000 * scale; i++) syscall(SYS_getppid);
    for (long i = 0; i < 100000 * scale; i++) {
        void *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 1;
        munmap(p, 65536);
    }
    return 0;
}
