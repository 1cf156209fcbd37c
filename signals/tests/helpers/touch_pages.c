/* Waits for one byte on stdin (so the test can move it into a cgroup first),
 * then maps N fresh anonymous pages and writes one byte to each: exactly N
 * minor page faults, plus the few the C runtime takes on the way out. With a
 * second argument `stay`, it then writes one byte to stdout and waits for
 * stdin to close before exiting. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long pages = argc > 1 ? atol(argv[1]) : 1000;
    long page = sysconf(_SC_PAGESIZE);
    char go;
    if (read(0, &go, 1) != 1) return 2;
    char *p = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 3;
    for (long i = 0; i < pages; i++) p[i * page] = 1;
    if (argc > 2 && strcmp(argv[2], "stay") == 0) {
        if (write(1, "d", 1) != 1) return 4;
        while (read(0, &go, 1) > 0) {
        }
    }
    return 0;
}
