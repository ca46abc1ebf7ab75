/* [stream] The write side: rill_write, rill_writelines, rill_drain, rill_write_eof and
 * the write machine, which is flow control and the half-close.
 *
 *   FLOWING --buffer above high--> PAUSED --buffer at or below low--> FLOWING
 *      \--rill_write_eof--> EOF_PENDING --buffer flushed, shutdown--> EOF_SENT
 *
 * A write sends what the descriptor takes at once and buffers the rest; the
 * buffer drains on writability (rill__write_ready). A drain is answered from the
 * loop, once the buffer is at most high when asked or has fallen to low since. */
#include "stream.h"

#include <limits.h>

#define HIGH_WATER 65536u
#define LOW_WATER  16384u
/* Most lines one writev takes; the rest is buffered and sent as the socket drains. */
#if defined(IOV_MAX) && IOV_MAX < 1024
#define WRITE_IOV_MAX IOV_MAX
#elif defined(IOV_MAX)
#define WRITE_IOV_MAX 1024
#else
#define WRITE_IOV_MAX 16   /* _XOPEN_IOV_MAX, the least POSIX allows */
#endif

static const char *const write_names[] = { RILL__WRITE_STATES(RILL__STATE_NAME, RILL__STATE_NAME) };

/* Every transition of the write machine goes through here (and its trace). */
static void write_to(rill_stream *s, rill__write_state to)
{
    RILL__TRACE("stream", s->id, "write", write_names[s->wstate], write_names[to], "%luB buffered",
                (unsigned long)s->wbuf.len);
    s->wstate = to;
}

static void drain_task_run(rill__task *t)
{
    rill_stream *s = rill__container_of(t, rill_stream, drain_task);
    rill__list batch, *n, *next;

    if (s->cstate == CLOSE_CLOSED)
        return;   /* the close task answers the drains */
    rill__list_init(&batch);
    for (n = s->drains.next; n != &s->drains; n = next) {
        next = n->next;
        if (rill__container_of(n, rill__waiter, node)->status) {
            rill__list_unlink(n);
            rill__list_push_back(&batch, n);
        }
    }
    rill__waiters_run(s, &batch, 0);
}

/* Every waiting drain may complete: they are answered together, from the loop. */
static void drains_release(rill_stream *s)
{
    rill__list *n;
    if (rill__list_empty(&s->drains))
        return;
    for (n = s->drains.next; n != &s->drains; n = n->next)
        rill__container_of(n, rill__waiter, node)->status = 1;
    rill__task_post(s->loop, &s->drain_task);
}

static int drains_wait(const rill_stream *s)
{
    return s->wstate == WRITE_PAUSED || s->wstate == WRITE_EOF_PENDING;
}

/* The write machine's step: flow control after the buffer changed. */
static void write_step(rill_stream *s)
{
    switch (s->wstate) {
    case WRITE_FLOWING:
        if (s->wbuf.len > s->high)
            write_to(s, WRITE_PAUSED);
        break;
    case WRITE_PAUSED:
        if (s->wbuf.len <= s->low) {
            write_to(s, WRITE_FLOWING);
            drains_release(s);
        }
        break;
    case WRITE_EOF_PENDING:
    case WRITE_EOF_SENT:
        break;
    }
}

void rill__write_ready(rill_stream *s)
{
    ssize_t n;
    int rc;

    if (s->wbuf.len > 0) {
        struct iovec iov;
        iov.iov_base = (void *)rill__buf_head(&s->wbuf);
        iov.iov_len = s->wbuf.len;
        n = s->tr->send(s, &iov, 1);
        if (n == -EAGAIN)
            return;
        if (n < 0) {
            rill__stream_lost(s, (int)n);
            return;
        }
        rill__buf_consume(&s->wbuf, (size_t)n);
        write_step(s);
    }
    if (s->wbuf.len > 0)
        return;
    rill__buf_trim(&s->wbuf, HIGH_WATER);
    if (s->wstate == WRITE_EOF_PENDING) {
        write_to(s, WRITE_EOF_SENT);
        if ((rc = s->tr->shutdown_write(s)) < 0) {
            rill__stream_lost(s, rc);
            return;
        }
        drains_release(s);
    }
    if (s->cstate == CLOSE_FLUSHING || s->cstate == CLOSE_NOTIFY)
        rill__close_advance(s);
}

static int write_check(const rill_stream *s)
{
    if (s == NULL)
        return RILL_EINVAL;
    if (!(s->mode & RILL_MODE_WRITE))
        return RILL_EMODE;
    if (s->flags & S_LOST)
        return s->err;
    if (s->cstate != CLOSE_OPEN || s->wstate == WRITE_EOF_PENDING || s->wstate == WRITE_EOF_SENT)
        return RILL_ECLOSED;
    return 0;
}

/* RILL_ENOBUFS when the write could take the buffer above the maximum. Judged
   before anything is sent, as if the descriptor took nothing: the socket cannot
   give back what it took, so a refused write must not have started. Counting
   down the room never overflows, however the lengths add up. */
static int max_check(const rill_stream *s, const struct iovec *iov, int iovcnt)
{
    size_t room;
    int i;

    if (s->wmax == 0)
        return 0;
    room = s->wbuf.len < s->wmax ? s->wmax - s->wbuf.len : 0;
    for (i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > room)
            return RILL_ENOBUFS;
        room -= iov[i].iov_len;
    }
    return 0;
}

/* Sends what the descriptor takes now and buffers the rest. */
static int write_iov(rill_stream *s, const struct iovec *iov, int iovcnt)
{
    size_t skip = 0, total = 0;
    int i, rc;

    for (i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    /* Nothing to send makes no system call (an empty send is a record on a
       SOCK_SEQPACKET socket). */
    if (s->wbuf.len == 0 && total > 0) {
        ssize_t n = s->tr->send(s, iov, iovcnt < WRITE_IOV_MAX ? iovcnt : WRITE_IOV_MAX);
        if (n < 0 && n != -EAGAIN) {
            rill__stream_lost(s, (int)n);
            return (int)n;
        }
        if (n > 0)
            skip = (size_t)n;
    }
    for (i = 0; i < iovcnt; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        rc = rill__buf_append(&s->wbuf, (const char *)iov[i].iov_base + skip, len - skip);
        skip = 0;
        if (rc < 0) {
            /* Part of the data may be on the wire already: the stream cannot go on. */
            rill__stream_lost(s, rc);
            return rc;
        }
    }
    write_step(s);
    rill__stream_update_io(s);
    return 0;
}

int rill_drain(rill_stream *s, rill_done_cb cb, void *ud)
{
    int rc;
    if (s == NULL || cb == NULL)
        return RILL_EINVAL;
    if (!(s->mode & RILL_MODE_WRITE))
        return RILL_EMODE;
    if (s->flags & S_LOST)
        return s->err;
    if (s->cstate != CLOSE_OPEN)
        return RILL_ECLOSED;
    if ((rc = rill__waiter_add(s, &s->drains, cb, ud)) < 0)
        return rc;
    if (!drains_wait(s))
        drains_release(s);
    return 0;
}

int rill_writelines(rill_stream *s, const struct iovec *iov, int iovcnt, rill_done_cb cb, void *ud)
{
    int rc = write_check(s);
    if (rc < 0)
        return rc;
    if (iovcnt < 0 || (iov == NULL && iovcnt > 0))
        return RILL_EINVAL;
    if ((rc = max_check(s, iov, iovcnt)) < 0)
        return rc;
    /* The drain waiter is made first, so a failed allocation loses no written byte. */
    if (cb != NULL && (rc = rill__waiter_add(s, &s->drains, cb, ud)) < 0)
        return rc;
    if ((rc = write_iov(s, iov, iovcnt)) < 0) {
        if (cb != NULL)   /* an error return means no callback: withdraw the waiter */
            rill__waiter_withdraw_last(s, &s->drains);
        return rc;
    }
    if (cb != NULL && !drains_wait(s))
        drains_release(s);
    return 0;
}

int rill_write(rill_stream *s, const void *data, size_t len, rill_done_cb cb, void *ud)
{
    struct iovec iov;
    if (data == NULL && len > 0)
        return RILL_EINVAL;
    iov.iov_base = (void *)data;
    iov.iov_len = len;
    return rill_writelines(s, &iov, 1, cb, ud);
}

int rill_write_eof(rill_stream *s)
{
    int rc = write_check(s);
    if (rc == RILL_ECLOSED && s->cstate == CLOSE_OPEN &&
        (s->wstate == WRITE_EOF_PENDING || s->wstate == WRITE_EOF_SENT))
        return 0;   /* already asked */
    if (rc < 0)
        return rc;
    if (s->tr->shutdown_write == NULL)
        return RILL_EMODE;
    write_to(s, WRITE_EOF_PENDING);
    if (s->wbuf.len == 0)
        rill__write_ready(s);
    rill__stream_update_io(s);
    return 0;
}

int rill_can_write_eof(const rill_stream *s)
{
    return s != NULL && (s->mode & RILL_MODE_WRITE) && s->tr->shutdown_write != NULL;
}

int rill_set_write_buffer_limits(rill_stream *s, size_t high, size_t low)
{
    if (s == NULL || low > high)
        return RILL_EINVAL;
    s->high = high;
    s->low = low;
    write_step(s);
    write_step(s);   /* FLOWING may pause and, with the new low, resume at once */
    return 0;
}

int rill_set_write_buffer_max(rill_stream *s, size_t bytes)
{
    if (s == NULL)
        return RILL_EINVAL;
    if (!(s->mode & RILL_MODE_WRITE))
        return RILL_EMODE;
    s->wmax = bytes;
    return 0;
}

size_t rill_get_write_buffer_size(const rill_stream *s) { return s->wbuf.len; }

void rill__write_init(rill_stream *s)
{
    s->wstate = WRITE_FLOWING;
    s->high = HIGH_WATER;
    s->low = LOW_WATER;
    rill__buf_init(&s->wbuf);
    rill__list_init(&s->drains);
    rill__task_init(&s->drain_task, drain_task_run);
}
