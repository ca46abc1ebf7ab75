/* The main of a fuzz target built without libFuzzer (configure without --enable-fuzz):
   runs LLVMFuzzerTestOneInput once on every file named on the command line, and on
   every regular file of a named directory (in name order, so a run is reproducible).
   A failed property aborts inside the target, which names itself on stderr; the
   replay prints each file's name first, so the failing input is the last one shown
   (FUZZ_VERBOSE=1 also prints passing files).

   Exit status: 0 when every input ran, 1 on a usage or I/O error, 77 (automake's
   "skipped") when there was no input file at all. */
#include "fuzz_common.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REPLAY_MAX (1u << 20)   /* seed files are small; a larger file is a mistake */

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* One byte more than allowed tells an oversized file apart. */
    if ((buf = malloc(REPLAY_MAX + 1)) == NULL) {
        fclose(f);
        fprintf(stderr, "replay: out of memory\n");
        return -1;
    }
    n = fread(buf, 1, REPLAY_MAX + 1, f);
    if (ferror(f) || n > REPLAY_MAX) {
        fprintf(stderr, "replay: %s: %s\n", path, ferror(f) ? "read error" : "larger than 1 MiB");
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    /* The name first: when a property fails, the last name shown is the input. On a
       terminal each name overwrites the previous one. */
    if (fz_verbose || !isatty(2))
        fprintf(stderr, "replay: %s (%lu bytes)\n", path, (unsigned long)n);
    else
        fprintf(stderr, "replay: %s\033[K\r", path);
    /* An exact-size copy: a read past the input's end is caught by ASan/valgrind. */
    {
        uint8_t *exact = malloc(n ? n : 1);
        if (exact == NULL) {
            free(buf);
            return -1;
        }
        memcpy(exact, buf, n);
        free(buf);
        LLVMFuzzerTestOneInput(exact, n);
        free(exact);
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file in dir, sorted by name; returns the count or -1. */
static long run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0, i;
    long ran = 0;

    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        char *path;
        struct stat st;
        size_t len;
        if (e->d_name[0] == '.')
            continue;
        len = strlen(dir) + strlen(e->d_name) + 2;
        if ((path = malloc(len)) == NULL)
            break;
        snprintf(path, len, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            char **p = realloc(names, (cap ? cap * 2 : 64) * sizeof *p);
            if (p == NULL) {
                free(path);
                break;
            }
            names = p;
            cap = cap ? cap * 2 : 64;
        }
        names[n++] = path;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof *names, by_name);
    for (i = 0; i < n; i++) {
        if (ran >= 0 && run_file(names[i]) == 0)
            ran++;
        else
            ran = -1;
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv)
{
    long total = 0;
    int i;

    fz_init();
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...  (runs the fuzz target once on each input)\n", argv[0]);
        return 1;
    }
    LLVMFuzzerInitialize(&argc, &argv);
    for (i = 1; i < argc; i++) {
        struct stat st;
        long k;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if (S_ISDIR(st.st_mode))
            k = run_dir(argv[i]);
        else
            k = run_file(argv[i]) == 0 ? 1 : -1;
        if (k < 0)
            return 1;
        total += k;
    }
    fprintf(stderr, "\n%s: %ld inputs replayed, all passed\n", argv[0], total);
    return total > 0 ? 0 : 77;
}
