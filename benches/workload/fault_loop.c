/* A pure page-fault loop (the one of DESIGN.md): map 64 MiB, touch every page,
 * unmap, ROUNDS times. Prints nothing; time it from outside. Usage: fault_loop [ROUNDS] */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 40;
    long page = sysconf(_SC_PAGESIZE);
    size_t size = 64ul << 20;
    for (int r = 0; r < rounds; r++) {
        char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 1;
        for (size_t i = 0; i < size; i += (size_t)page) p[i] = 1;
        munmap(p, size);
    }
    return 0;
}
