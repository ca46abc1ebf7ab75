/* [io] Descriptor helpers shared by every file that creates descriptors: flags, pipes,
   and keeping a child's future stdio slots free. Their pipe and fcntl calls go
   through the hooks (lib/core/syshooks.h), so a test can fail each one. */
#include "config.h"
#if defined(HAVE_PIPE2) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE 1   /* pipe2() and O_CLOEXEC (README "Portability") */
#endif
#include "rill_private.h"
#include "syshooks.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int rill__set_nonblock_cloexec(int fd)
{
    int fl = rill__sys_fcntl(fd, F_GETFL, 0);
    if (fl < 0 || (!(fl & O_NONBLOCK) && rill__sys_fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return -errno;
    return rill__fd_set_cloexec(fd);
}

int rill__fd_set_cloexec(int fd)
{
    int fl = rill__sys_fcntl(fd, F_GETFD, 0);
    if (fl < 0 || (!(fl & FD_CLOEXEC) && rill__sys_fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0))
        return -errno;
    return 0;
}

int rill__fd_set_blocking(int fd)
{
    int fl = rill__sys_fcntl(fd, F_GETFL, 0);
    if (fl < 0 || rill__sys_fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* The copy does not keep FD_CLOEXEC (F_DUPFD_CLOEXEC is POSIX.1-2008): callers set it. */
int rill__fd_move_high(int *fd)
{
    int nfd;
    if (*fd >= 3)
        return 0;
    if ((nfd = rill__sys_fcntl(*fd, F_DUPFD, 3)) < 0)
        return -errno;
    close(*fd);
    *fd = nfd;
    return 0;
}

static int open_pipe(int fds[2])
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    if (h != NULL && h->pipe != NULL)
        return h->pipe(fds);
#ifdef HAVE_PIPE2
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0)
        return 0;
    if (errno != ENOSYS)   /* ENOSYS: a kernel older than its libc; the portable way below */
        return -1;
#endif
    return pipe(fds);
}

int rill__pipe_open(int fds[2], int above_stdio)
{
    int i, rc = 0;
    if (open_pipe(fds) < 0)
        return -errno;
    for (i = 0; i < 2 && rc == 0; i++) {
        if (above_stdio)
            rc = rill__fd_move_high(&fds[i]);
        if (rc == 0)
            rc = rill__set_nonblock_cloexec(fds[i]);
    }
    if (rc < 0) {
        close(fds[0]);
        close(fds[1]);
    }
    return rc;
}

int rill__check_reserved(void *const reserved[4])
{
    int i;
    for (i = 0; i < 4; i++)
        if (reserved[i] != NULL)
            return RILL_EINVAL;
    return 0;
}

const char *rill_version(void)
{
    return PACKAGE_VERSION;
}
