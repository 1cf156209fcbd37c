/* realloc and friends on blocks large enough to be sampled always (MiB sizes against a mean of a
 * few KiB), checking the C semantics as it goes (exit status names the failed check), and
 * printing every pointer: "p=PTR q=PTR ...". */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BIG ((size_t)1 << 20)
/* volatile: the compiler must not see (and reject, or fold) the impossible sizes */
static volatile size_t half_max = SIZE_MAX / 2, nearly_max = SIZE_MAX - 4096, two_62 = (size_t)1 << 62;

static char line[1024];
static int length;
static void show(const char *name, void *p) {
    length += snprintf(line + length, sizeof line - (size_t)length, "%s=%#lx ", name, (unsigned long)p);
}

int main(void) {
    char *p = malloc(BIG);
    if (!p) return 1;
    memset(p, 7, BIG);
    show("p", p);
    char *q = realloc(p, 2 * BIG); /* grows: the block may move */
    if (!q || q[BIG - 1] != 7) return 2;
    show("q", q);
    char *r = realloc(q, BIG / 2); /* shrinks */
    if (!r || r[BIG / 2 - 1] != 7) return 3;
    show("r", r);
    char *s = realloc(NULL, BIG); /* malloc */
    if (!s) return 4;
    show("s", s);
    errno = 0;
    char *t = realloc(r, 0); /* glibc frees and returns NULL */
    show("t", t);
    char *u = malloc(16);
    if (!u) return 5;
    strcpy(u, "fifteen chars..");
    show("u", u);
    char *v = realloc(u, BIG); /* a small block (seldom sampled) becomes a big one */
    if (!v || strcmp(v, "fifteen chars..") != 0) return 6;
    show("v", v);
    char *w = reallocarray(v, 2, BIG);
    if (!w || strcmp(w, "fifteen chars..") != 0) return 7;
    show("w", w);
    errno = 0;
    if (reallocarray(w, half_max, 4) != NULL || errno != ENOMEM) return 8; /* overflows */
    errno = 0;
    if (realloc(w, nearly_max) != NULL || errno != ENOMEM) return 9; /* fails: w stays */
    if (strcmp(w, "fifteen chars..") != 0 || malloc_usable_size(w) < 2 * BIG) return 10;
    errno = 0;
    if (calloc(half_max, 4) != NULL || errno != ENOMEM) return 11; /* overflows */
    errno = 0;
    if (calloc(two_62, two_62) != NULL || errno != ENOMEM) return 12;
    char *z = calloc(4, BIG / 4);
    if (!z) return 13;
    for (size_t i = 0; i < BIG; i++)
        if (z[i]) return 14;
    show("z", z);
    free(s);
    free(w);
    free(z);
    free(NULL);
    line[length++] = '\n';
    write(1, line, (size_t)length);
    return 0;
}
