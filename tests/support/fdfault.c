/* Failing each fcntl of a call in turn (fdfault.h). */
#include "fdfault.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static int calls, fail_at;

static int failing_fcntl(int fd, int cmd, int arg)
{
    if (++calls == fail_at) {
        errno = EMFILE;
        return -1;
    }
    return fcntl(fd, cmd, arg);
}

int test_fcntl_walk(const rill__sys_hooks *base, int low, int (*attempt)(void *ctx), void *ctx)
{
    static rill__sys_hooks hooks;
    int saved0 = dup(0), saved1 = dup(1), fds0 = test_proc_fds(0), k, rc = -1, failures = 0;

    if (base != NULL)
        hooks = *base;
    else
        memset(&hooks, 0, sizeof hooks);
    hooks.fcntl = failing_fcntl;
    for (k = 1; k <= 100 && rc != 0 && failures >= 0; k++) {
        calls = 0;
        fail_at = k;
        if (low) {
            close(0);
            close(1);
        }
        rill__sys_hooks_set(&hooks);
        rc = attempt(ctx);
        rill__sys_hooks_set(NULL);
        if (low) {
            dup2(saved0, 0);
            dup2(saved1, 1);
        }
        if (rc == 0)
            break;
        failures = rc == -EMFILE && test_proc_fds(0) == fds0 ? failures + 1 : -1;
    }
    close(saved0);
    close(saved1);
    return rc == 0 ? failures : -1;
}
