/* asyncio's connect_read_pipe / connect_write_pipe: a pipe end becomes a stream. */
#include "stream.h"

static int adopt_pipe(rill_loop *loop, int fd, size_t limit, int mode, rill_stream **out)
{
    rill_stream *s;
    if (loop == NULL || fd < 0 || out == NULL)
        return RILL_EINVAL;
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
