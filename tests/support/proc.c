/* Descriptor counts and memory figures read from /proc, for leak checks. */
#include "proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void proc_path(char *buf, size_t cap, pid_t pid, const char *what)
{
    if (pid == 0)
        snprintf(buf, cap, "/proc/self/%s", what);
    else
        snprintf(buf, cap, "/proc/%ld/%s", (long)pid, what);
}

int test_proc_fds(pid_t pid)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    int n = 0;
    proc_path(path, sizeof path, pid, "fd");
    if ((d = opendir(path)) == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return pid == 0 ? n - 1 : n;   /* our own listing holds the directory open */
}

long test_proc_status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t n = strlen(field);
    long v = -1;
    FILE *f;
    proc_path(path, sizeof path, pid, "status");
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

int test_fds_exhaust(struct rlimit *saved)
{
    struct rlimit rl;
    int next = open("/dev/null", O_RDONLY);
    if (next < 0 || close(next) < 0 || getrlimit(RLIMIT_NOFILE, saved) < 0)
        return -1;
    rl = *saved;
    rl.rlim_cur = (rlim_t)next;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

int test_fds_restore(const struct rlimit *saved)
{
    return setrlimit(RLIMIT_NOFILE, saved);
}
