/* A child for tests/test_process.c, doing what /bin/sh cannot say portably.
   usage: proc_helper closeout   close stdout, then wait for stdin's EOF; exit 0
          proc_helper eof        read stdin to EOF; print "eof N" (bytes read); exit 0
          proc_helper fds        print how many descriptors above 2 are open; exit 0
          proc_helper both N     write N lines to stdout and N to stderr, interleaved */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long drain_stdin(void)
{
    char buf[65536];
    long total = 0;
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0)
        total += n;
    return total;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (strcmp(argv[1], "closeout") == 0) {
        close(1);
        drain_stdin();
        return 0;
    }
    if (strcmp(argv[1], "eof") == 0) {
        long n = drain_stdin();
        printf("eof %ld\n", n);
        return 0;
    }
    if (strcmp(argv[1], "fds") == 0) {
        /* Each descriptor in /proc/self/fd, or the first 1024 probed with dup2's absence. */
        DIR *d = opendir("/proc/self/fd");
        int n = 0;
        struct dirent *e;
        if (d == NULL)
            return 3;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.' && atoi(e->d_name) > 2 && atoi(e->d_name) != dirfd(d))
                n++;
        closedir(d);
        printf("fds %d\n", n);
        return 0;
    }
    if (strcmp(argv[1], "both") == 0 && argc > 2) {
        int i, n = atoi(argv[2]);
        for (i = 0; i < n; i++) {
            printf("out %d\n", i);
            fprintf(stderr, "err %d\n", i);
        }
        return 0;
    }
    return 2;
}
