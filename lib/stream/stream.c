/* [stream] The stream object: creation, and the readiness dispatch that hands each
   event to the side that waits for it (read.c, write.c) or to the transport's
   handshake. The stream's files, lowest first: interest.c (what the stream waits
   for) and waiter.c; read.c (the read machine); close.c (the close machine);
   write.c (the write machine); this file. Each calls only down that list. */
#include "stream.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#ifdef RILL_HAVE_POLL
#include <poll.h>
#endif
#include <netinet/in.h>
#include <netinet/tcp.h>

/* The read side reads if it waits for bytes; a failed read loses the connection. */
static void read_if_wanted(rill_stream *s)
{
    int rc;
    if (rill__stream_reading_wanted(s) && (rc = rill__read_ready(s)) < 0)
        rill__stream_lost(s, rc);
}

/* The transport decoded more than one recv handed out (TLS): read it without a poll. */
static void more_task_run(rill__task *t)
{
    rill_stream *s = rill__container_of(t, rill_stream, more_task);
    read_if_wanted(s);
    rill__stream_update_io(s);
}

int rill_stream_mode(const rill_stream *s) { return s->mode; }
void *rill_stream_get_data(const rill_stream *s) { return s->data; }
void rill_stream_set_data(rill_stream *s, void *data) { s->data = data; }
rill_loop *rill_stream_loop(const rill_stream *s) { return s->loop; }

/* ------------------------------------------------------------- creation */

/* select's "readable" on an idle write-only descriptor: a pipe's write end is
   readable only when its reader is gone, but a socket's peer may have sent data
   or EOF, which a peek tells apart without consuming. Where poll() exists, one
   with no events asks exactly what the poll and epoll backends hear, so a peer
   gone for good (a closed Unix socket: POLLHUP, its EOF is no mere half-close) is
   a hang-up on select too. -errno: hung up; 1: not a hang-up; 0: nothing after all. */
static int confirm_hangup(rill_stream *s)
{
    char c;
    ssize_t n;
#ifdef RILL_HAVE_POLL
    struct pollfd p;
#endif

    if (!(s->flags & S_IS_SOCKET))
        return -EPIPE;
#ifdef RILL_HAVE_POLL
    p.fd = s->fd;
    p.events = 0;
    p.revents = 0;
    if (poll(&p, 1, 0) > 0)
        return -EPIPE;
#endif
    n = recv(s->fd, &c, 1, MSG_PEEK);
    if (n >= 0)
        return 1;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
}

static void stream_io(rill__io *io, int revents)
{
    rill_stream *s = rill__container_of(io, rill_stream, io);

    if (s->io_hook != NULL) {
        s->io_hook(s, revents);
        return;
    }
    if ((revents & (RILL__EV_HUP | RILL__EV_HUP_HINT)) && s->mode == RILL_MODE_WRITE && s->wbuf.len == 0) {
        int err = revents & RILL__EV_HUP ? -EPIPE : confirm_hangup(s);
        if (err < 0)
            rill__stream_lost(s, err);   /* the reader went away */
        else if (err > 0) {
            s->flags |= S_HUP_DEAF;
            rill__stream_update_io(s);
        }
        return;
    }
    /* The callbacks run below start reads and writes, each of which would set the
       interest again: they leave it to the one update at the end. */
    s->flags |= S_IN_IO;
    if ((revents & s->wr_want) && rill__stream_writing_wanted(s))
        rill__write_ready(s);
    if (revents & s->rd_want)
        read_if_wanted(s);
    s->flags &= ~S_IN_IO;
    rill__stream_update_io(s);
}

rill_stream *rill__stream_new(rill_loop *loop, int fd, int mode, size_t limit,
                              const rill__transport *tr)
{
    rill_stream *s;
    int rc, one = 1;
    /* A refused descriptor goes back to the caller as it came. */
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);

    if ((s = rill__calloc(1, sizeof *s)) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    if ((rc = rill__set_nonblock_cloexec(fd)) < 0) {
        rill__free(s);
        errno = -rc;
        return NULL;
    }
    s->loop = loop;
    s->id = rill__next_id(loop);
    s->fd = fd;
    s->mode = mode;
    s->tr = tr;
    s->rd_want = RILL_READABLE;
    s->wr_want = RILL_WRITABLE;
    rill__read_init(s, limit);
    rill__write_init(s);
    rill__close_init(s);
    rill__task_init(&s->more_task, more_task_run);
    rill__list_init(&s->spare);
    rill__list_init(&s->owner_node);
    s->peerlen = sizeof s->peer;
    s->locallen = sizeof s->local;
    if (getsockname(fd, (struct sockaddr *)&s->local, &s->locallen) == 0) {
        s->flags |= S_IS_SOCKET;
        if (getpeername(fd, (struct sockaddr *)&s->peer, &s->peerlen) < 0)
            s->peerlen = 0;
        if (s->local.ss_family == AF_INET || s->local.ss_family == AF_INET6)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as asyncio */
#if !defined(HAVE_MSG_NOSIGNAL) && defined(HAVE_SO_NOSIGPIPE)
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    } else {
        s->peerlen = s->locallen = 0;
    }
    rill__io_init(&s->io, fd, stream_io);
    if ((rc = rill__io_start(loop, &s->io, rill__stream_wanted_events(s))) < 0) {
        /* No memory for the slot, or the backend refused the descriptor
           (select: at or above FD_SETSIZE, -EMFILE). */
        rill__free(s);
        if (fl >= 0)
            fcntl(fd, F_SETFL, fl);
        if (fdfl >= 0)
            fcntl(fd, F_SETFD, fdfl);
        errno = -rc;
        return NULL;
    }
    rill__handle_open(loop, &s->h, rill__stream_free_memory);
    RILL__TRACE("stream", s->id, "close", "NEW", "OPEN", "fd=%d %s", fd, tr->name);
    return s;
}
