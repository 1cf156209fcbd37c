/* Faults in two regions for the page-fault region test: waits for one byte on
 * stdin, moves the program break up and touches N pages of the brk heap, maps N
 * anonymous pages and touches them, writes one byte to stdout, and stays alive
 * (so its maps can be read) until stdin closes. */
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long pages = argc > 1 ? atol(argv[1]) : 1000;
    long page = sysconf(_SC_PAGESIZE);
    char go;
    if (read(0, &go, 1) != 1) return 2;
    long start = syscall(SYS_brk, 0L);
    long heap_start = (start + page - 1) / page * page;
    if (syscall(SYS_brk, heap_start + pages * page) != heap_start + pages * page) return 3;
    for (long i = 0; i < pages; i++) ((char *)heap_start)[i * page] = 1;
    char *anon = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (anon == MAP_FAILED) return 4;
    for (long i = 0; i < pages; i++) anon[i * page] = 1;
    if (write(1, "d", 1) != 1) return 5;
    while (read(0, &go, 1) > 0) {
    }
    return 0;
}
