/* [stream] The stream: readiness handling, the write side (write, drain, write_eof) and
 * the close machine.
 *
 *   OPEN --rill_close--> FLUSHING --buffer empty--> [NOTIFY: TLS close_notify] --> CLOSED --> FREED
 *     \--rill_abort / connection lost / close timeout ------------------------------^
 *
 * CLOSED means the descriptor is closed; the close task then delivers, in order,
 * the pending read (RILL_ECANCELED or the connection's error), the drains, the
 * close callbacks and the wait_closed callbacks, and frees the stream once the
 * user has closed it. Memory is only ever released there, from the loop, so no
 * callback can pull the stream out from under the code that called it. */
#include "stream.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#ifdef RILL_HAVE_POLL
#include <poll.h>
#endif
#include <netinet/in.h>
#include <netinet/tcp.h>

#define READ_MIN   16384u      /* room made before each recv */
#define READ_MAX   65536u      /* most bytes taken per recv: bounds memory above 2 * limit */
#define READ_BURST 4           /* recvs per readiness event while each fills its room */
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

static const char *const close_names[] = { RILL__CLOSE_STATES(RILL__STATE_NAME, RILL__STATE_NAME) };
static const char *const write_names[] = { RILL__WRITE_STATES(RILL__STATE_NAME, RILL__STATE_NAME) };
const char *rill__close_state_name(rill__close_state st) { return close_names[st]; }

static void close_to(rill_stream *s, rill__close_state to, int status)
{
    RILL__TRACE("stream", s->id, "close", close_names[s->cstate], close_names[to],
                "%s", status ? rill_err_name(status) : "");
    s->cstate = to;
}

static void write_to(rill_stream *s, rill__write_state to)
{
    RILL__TRACE("stream", s->id, "write", write_names[s->wstate], write_names[to], "%luB buffered",
                (unsigned long)s->wbuf.len);
    s->wstate = to;
}

static void finish_close(rill_stream *s, int status);
static void close_advance(rill_stream *s);

/* --------------------------------------------------------------- waiters */

/* A drain waiter's status is 1 once its condition has held (the buffer was at
   most high when it was asked, or has fallen to low since): it is answered even
   if a later write raises the buffer again before its task runs, as asyncio's
   completed future would be. */
static int waiter_add(rill_stream *s, rill__list *list, rill_done_cb cb, void *ud)
{
    rill__waiter *w;
    rill__list *n = rill__list_pop_front(&s->spare);

    if (n != NULL) {
        w = rill__container_of(n, rill__waiter, node);
    } else {
        if ((w = rill__malloc(sizeof *w)) == NULL)
            return RILL_ENOMEM;
        rill__list_init(&w->node);
    }
    w->cb = cb;
    w->ud = ud;
    w->status = 0;
    rill__list_push_back(list, &w->node);
    return 0;
}

/* Calls back every waiter of list with status; waiters added meanwhile wait. */
static void waiters_run(rill_stream *s, rill__list *list, int status)
{
    rill__list batch;
    rill__list_init(&batch);
    rill__list_splice(&batch, list);
    while (!rill__list_empty(&batch)) {
        rill__waiter *w = rill__container_of(rill__list_pop_front(&batch), rill__waiter, node);
        rill_done_cb cb = w->cb;
        void *ud = w->ud;
        rill__list_push_back(&s->spare, &w->node);
        if (cb != NULL)
            cb(s, status, ud);
    }
}

static void waiters_free(rill__list *list)
{
    while (!rill__list_empty(list))
        rill__free(rill__container_of(rill__list_pop_front(list), rill__waiter, node));
}

/* ------------------------------------------------------------- interest */

static int reading_wanted(const rill_stream *s)
{
    if (!(s->mode & RILL_MODE_READ) || s->cstate != CLOSE_OPEN || (s->flags & (S_EOF | S_USER_PAUSED)))
        return 0;
    return !(s->flags & S_FC_PAUSED) || rill__read_wants_more(s);
}

static int writing_wanted(const rill_stream *s)
{
    return s->wbuf.len > 0 || s->wstate == WRITE_EOF_PENDING || s->cstate == CLOSE_NOTIFY;
}

static int wanted_events(const rill_stream *s)
{
    int ev = 0;
    if (reading_wanted(s))
        ev |= s->rd_want;
    if (writing_wanted(s))
        ev |= s->wr_want;
    /* An idle write pipe still hears its reader go away. */
    if (ev == 0 && s->mode == RILL_MODE_WRITE && !(s->flags & S_HUP_DEAF))
        ev = RILL__EV_HUP;
    return ev;
}

void rill__stream_update_io(rill_stream *s)
{
    if (s->cstate == CLOSE_CLOSED || s->cstate == CLOSE_FREED || s->fd < 0) {
        rill__io_stop(s->loop, &s->io);
        return;
    }
    if (s->io_hook != NULL || (s->flags & S_IN_IO))
        return;   /* the handshake sets its own interest; stream_io sets it when it ends */
    /* Bytes the transport already decoded will not make the descriptor readable again. */
    if (reading_wanted(s) && s->tr->pending != NULL && s->tr->pending(s) > 0)
        rill__task_post(s->loop, &s->more_task);
    /* An open stream's io stays registered from creation to close: this only
       changes its events, which cannot fail. */
    rill__io_start(s->loop, &s->io, wanted_events(s));
}

/* -------------------------------------------------------------- reading */

static void read_burst(rill_stream *s, int scratch)
{
    int burst;

    for (burst = 0; burst < READ_BURST; burst++) {
        size_t avail, want;
        ssize_t n;
        char *p;

        /* The loop's scratch buffer cannot grow: bytes left in it end the burst. */
        if (scratch && s->rbuf.len > 0)
            break;
        /* An empty buffer gets a full read's room: bulk transfers need fewer calls. */
        if ((p = rill__buf_space(&s->rbuf, s->rbuf.len == 0 ? READ_MAX : READ_MIN, &avail)) == NULL) {
            rill__stream_lost(s, RILL_ENOMEM);
            return;
        }
        want = avail < READ_MAX ? avail : READ_MAX;
        n = s->tr->recv(s, p, want);
        if (n == -EAGAIN)
            break;
        if (n < 0) {
            rill__stream_lost(s, (int)n);
            return;
        }
        if (n == 0) {
            s->flags |= S_EOF;
        } else {
            rill__buf_commit(&s->rbuf, (size_t)n);
            rill__timer_stop(&s->read_timer);   /* a new byte: the read timeout starts over */
            if (s->rbuf.len > 2 * s->limit)
                s->flags |= S_FC_PAUSED;
        }
        rill__read_step(s);
        /* A recv that filled its room suggests more is waiting: take it before polling again. */
        if (n == 0 || (size_t)n < want || !reading_wanted(s))
            break;
    }
}

static void do_read(rill_stream *s)
{
    rill_loop *loop = s->loop;
    /* A stream without a buffer of its own reads into the loop's scratch buffer:
       when the callbacks consume everything (a ping-pong, an idle connection's
       rare message) the stream never holds read memory at all. */
    int scratch = s->rbuf.cap == 0;

    if (scratch) {
        s->rbuf.data = loop->scratch;
        s->rbuf.cap = RILL__SCRATCH_SIZE;
        s->rbuf.start = s->rbuf.len = 0;
    }
    read_burst(s, scratch);
    if (scratch) {
        /* Keep what the callbacks left, in memory of the stream's own. */
        const char *rest = rill__buf_head(&s->rbuf);
        size_t len = s->rbuf.len;
        rill__buf_init(&s->rbuf);
        if (len > 0 && rill__buf_append(&s->rbuf, rest, len) < 0)
            rill__stream_lost(s, RILL_ENOMEM);
    }
    /* Bytes the transport already decoded will not make the socket readable again. */
    if (s->tr->pending != NULL && s->tr->pending(s) > 0 && reading_wanted(s))
        rill__task_post(s->loop, &s->more_task);
}

static void more_task_run(rill__task *t)
{
    rill_stream *s = rill__container_of(t, rill_stream, more_task);
    if (reading_wanted(s))
        do_read(s);
    rill__stream_update_io(s);
}

/* -------------------------------------------------------------- writing */

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
    waiters_run(s, &batch, 0);
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

static void do_write(rill_stream *s)
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
        close_advance(s);
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
    if ((rc = waiter_add(s, &s->drains, cb, ud)) < 0)
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
    if (cb != NULL && (rc = waiter_add(s, &s->drains, cb, ud)) < 0)
        return rc;
    if ((rc = write_iov(s, iov, iovcnt)) < 0) {
        if (cb != NULL) {   /* an error return means no callback: withdraw the waiter */
            rill__list *last = s->drains.prev;
            rill__list_unlink(last);
            rill__list_push_back(&s->spare, last);
        }
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
        do_write(s);
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

/* --------------------------------------------------------------- closing */

static void stream_free(rill_stream *s)
{
    rill_loop *loop = s->loop;
    close_to(s, CLOSE_FREED, 0);
    if (s->owner_gone != NULL)
        s->owner_gone(s);
    /* The session outlives the descriptor: peer certificate and ALPN stay readable until here. */
    if (s->tr->destroy != NULL)
        s->tr->destroy(s);
    rill__task_cancel(loop, &s->read_task);
    rill__task_cancel(loop, &s->drain_task);
    rill__task_cancel(loop, &s->close_task);
    rill__task_cancel(loop, &s->more_task);
    rill__timer_stop(&s->read_timer);
    rill__timer_stop(&s->close_timer);
    if (s->rop.sep != NULL && s->rop.sep != s->rop.sep_inline)
        rill__free(s->rop.sep);
    rill__buf_free(&s->rbuf);
    rill__buf_free(&s->wbuf);
    waiters_free(&s->drains);
    waiters_free(&s->closers);
    waiters_free(&s->closed_waiters);
    waiters_free(&s->spare);
    rill__free(s);
    rill__handle_unref(loop);
}

static void close_task_run(rill__task *t)
{
    rill_stream *s = rill__container_of(t, rill_stream, close_task);
    int lost = (s->flags & S_LOST) != 0;

    /* The order callers rely on: the read, the drains, close, then wait_closed. */
    rill__read_finish(s, lost ? s->err : RILL_ECANCELED);
    waiters_run(s, &s->drains, (s->flags & S_ABORTED) ? RILL_ECANCELED : s->close_status);
    waiters_run(s, &s->closers, s->close_status);
    waiters_run(s, &s->closed_waiters, lost ? s->err : 0);
    if (!(s->flags & S_USER_CLOSED))
        return;   /* lost, not closed: the handle stays valid until the user closes it */
    if (s->rop.state == READ_IDLE && rill__list_empty(&s->drains) &&
        rill__list_empty(&s->closers) && rill__list_empty(&s->closed_waiters))
        stream_free(s);
    else
        rill__task_post(s->loop, &s->close_task);   /* callbacks added more: next round */
}

/* The descriptor closes now; callbacks follow from the loop. */
static void finish_close(rill_stream *s, int status)
{
    if (s->cstate == CLOSE_CLOSED)
        return;
    rill__timer_stop(&s->close_timer);
    rill__timer_stop(&s->read_timer);
    rill__io_stop(s->loop, &s->io);
    if (s->tr->closing != NULL)
        s->tr->closing(s);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->close_status = status;
    close_to(s, CLOSE_CLOSED, status);
    rill__task_post(s->loop, &s->close_task);
}

static void close_advance(rill_stream *s)
{
    int rc;

    if (s->cstate == CLOSE_FLUSHING) {
        if (s->wbuf.len > 0)
            return;
        if (s->tr->close_notify == NULL) {
            finish_close(s, 0);
            return;
        }
        close_to(s, CLOSE_NOTIFY, 0);
    }
    if (s->cstate == CLOSE_NOTIFY) {
        rc = s->tr->close_notify(s);
        if (rc == -EAGAIN) {
            rill__stream_update_io(s);
            return;
        }
        finish_close(s, rc < 0 ? rc : 0);
    }
}

void rill__stream_lost(rill_stream *s, int err)
{
    if (s->cstate == CLOSE_CLOSED || s->cstate == CLOSE_FREED)
        return;
    s->err = err;
    s->flags |= S_LOST;
    rill__buf_free(&s->wbuf);
    finish_close(s, err);
}

static void close_timeout_fired(void *ud)
{
    rill_stream *s = ud;
    s->flags |= S_ABORTED;
    rill__buf_free(&s->wbuf);
    finish_close(s, RILL_ETIMEDOUT);
}

static void read_timeout_fired(void *ud)
{
    rill__read_finish(ud, RILL_ETIMEDOUT);
}

int rill_close(rill_stream *s, rill_done_cb cb, void *ud)
{
    int rc;

    if (s == NULL)
        return RILL_EINVAL;
    if (cb != NULL && (rc = waiter_add(s, &s->closers, cb, ud)) < 0)
        return rc;
    s->flags |= S_USER_CLOSED;
    if (s->cstate != CLOSE_OPEN) {
        if (s->cstate == CLOSE_CLOSED)
            rill__task_post(s->loop, &s->close_task);
        return 0;
    }
    if (s->rop.state == READ_WAIT) {
        s->rop.forced = RILL_ECANCELED;
        rill__task_post(s->loop, &s->read_task);
    }
    close_to(s, CLOSE_FLUSHING, 0);
    if (s->close_timeout_ms > 0)
        rill__timer_start(&s->close_timer, (uint64_t)s->close_timeout_ms);
    close_advance(s);
    rill__stream_update_io(s);
    return 0;
}

void rill_abort(rill_stream *s)
{
    if (s == NULL)
        return;
    s->flags |= S_USER_CLOSED;
    if (s->cstate == CLOSE_CLOSED) {
        rill__task_post(s->loop, &s->close_task);
        return;
    }
    s->flags |= S_ABORTED;
    rill__buf_free(&s->wbuf);
    finish_close(s, RILL_ECANCELED);
}

int rill_wait_closed(rill_stream *s, rill_done_cb cb, void *ud)
{
    int rc;
    if (s == NULL || cb == NULL)
        return RILL_EINVAL;
    if ((rc = waiter_add(s, &s->closed_waiters, cb, ud)) < 0)
        return rc;
    if (s->cstate == CLOSE_CLOSED)
        rill__task_post(s->loop, &s->close_task);
    return 0;
}

int rill_set_close_timeout(rill_stream *s, int ms)
{
    if (s == NULL)
        return RILL_EINVAL;
    s->close_timeout_ms = ms > 0 ? ms : 0;
    /* Set while a close is already flushing: the new timeout counts from now. */
    if (s->cstate == CLOSE_FLUSHING || s->cstate == CLOSE_NOTIFY) {
        if (s->close_timeout_ms == 0)
            rill__timer_stop(&s->close_timer);
        else
            rill__timer_start(&s->close_timer, (uint64_t)s->close_timeout_ms);
    }
    return 0;
}

int rill_is_closing(const rill_stream *s) { return s->cstate != CLOSE_OPEN; }
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
    if ((revents & s->wr_want) && writing_wanted(s))
        do_write(s);
    if ((revents & s->rd_want) && reading_wanted(s))
        do_read(s);
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
    s->limit = limit ? limit : RILL__DEFAULT_LIMIT;
    s->high = HIGH_WATER;
    s->low = LOW_WATER;
    rill__buf_init(&s->rbuf);
    rill__buf_init(&s->wbuf);
    rill__task_init(&s->read_task, rill__read_task_run);
    rill__task_init(&s->drain_task, drain_task_run);
    rill__task_init(&s->close_task, close_task_run);
    rill__task_init(&s->more_task, more_task_run);
    rill__timer_init(&s->read_timer, loop, read_timeout_fired, s);
    rill__timer_init(&s->close_timer, loop, close_timeout_fired, s);
    rill__list_init(&s->drains);
    rill__list_init(&s->spare);
    rill__list_init(&s->closers);
    rill__list_init(&s->closed_waiters);
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
    s->cstate = CLOSE_OPEN;
    if ((rc = rill__io_start(loop, &s->io, wanted_events(s))) < 0) {
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
    rill__handle_ref(loop);
    RILL__TRACE("stream", s->id, "close", "NEW", "OPEN", "fd=%d %s", fd, tr->name);
    return s;
}
