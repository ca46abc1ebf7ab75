/* [stream] asyncio's connect_read_pipe / connect_write_pipe: a pipe end becomes a stream. */
#include "stream.h"

#include <fcntl.h>
#include <sys/stat.h>

/* As asyncio: pipes, sockets and character devices only. A regular file is
   always "ready", so polling it would spin; an end opened the wrong way round
   could never move a byte. */
static int check_pipe_fd(int fd, int mode)
{
    struct stat st;
    int acc;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode) && !S_ISCHR(st.st_mode))
        return RILL_EINVAL;
    if ((acc = fcntl(fd, F_GETFL)) < 0)
        return -errno;
    acc &= O_ACCMODE;
    if (acc != O_RDWR && acc != (mode == RILL_MODE_READ ? O_RDONLY : O_WRONLY))
        return RILL_EINVAL;
    return 0;
}

static int adopt_pipe(rill_loop *loop, int fd, size_t limit, int mode, rill_stream **out)
{
    rill_stream *s;
    int rc;

    if (loop == NULL || fd < 0 || out == NULL)
        return RILL_EINVAL;
    if ((rc = check_pipe_fd(fd, mode)) < 0)
        return rc;
    if ((s = rill__stream_new(loop, fd, mode, limit, &rill__pipe_transport)) == NULL)
        return -errno;
    *out = s;
    return 0;
}

int rill_connect_read_pipe(rill_loop *loop, int fd, size_t limit, rill_stream **out)
{
    return adopt_pipe(loop, fd, limit, RILL_MODE_READ, out);
}

int rill_connect_write_pipe(rill_loop *loop, int fd, size_t limit, rill_stream **out)
{
    return adopt_pipe(loop, fd, limit, RILL_MODE_WRITE, out);
}
