/* [stream] The read machine: rill_read, rill_readline, rill_readexactly, rill_readuntil.
 *
 *   IDLE --start--> WAIT --buffer answers / EOF / error--> DELIVER --> IDLE
 *                    ^  \--needs more: poll for data (read timer armed)
 *                    \----- new bytes arrive
 *
 * A started read is answered from the loop, never inside the call that started
 * it. A read started from a read callback is answered by the same running step
 * (a loop, not recursion), so a chain of reads over buffered data costs no
 * system call and no poll. */
#include "stream.h"

#include <string.h>

#define READ_MIN   16384u      /* room made before each recv */
#define READ_MAX   65536u      /* most bytes taken per recv: bounds memory above 2 * limit */
#define READ_BURST 4           /* recvs per readiness event while each fills its room */

static const char *const read_state_names[] = { RILL__READ_STATES(RILL__STATE_NAME, RILL__STATE_NAME) };
static const char *const kind_names[] = { "read", "read", "readexactly", "readuntil", "readline" };

const char *rill__read_state_name(rill__read_state st) { return read_state_names[st]; }

/* Every transition of the read machine goes through here (and its trace). */
static void trace_read(const rill_stream *s, rill__read_state to, int status, size_t n)
{
    const char *from = read_state_names[s->rop.state];
    if (status < 0)
        rill__trace("stream", s->id, kind_names[s->rop.kind], from, read_state_names[to], "%s", rill_err_name(status));
    else if (to == READ_WAIT)
        rill__trace("stream", s->id, kind_names[s->rop.kind], from, read_state_names[to], "");
    else
        rill__trace("stream", s->id, kind_names[s->rop.kind], from, read_state_names[to], "%luB", (unsigned long)n);
}

static void read_to(rill_stream *s, rill__read_state to, int status, size_t n)
{
    if (rill__trace_on)
        trace_read(s, to, status, n);
    s->rop.state = to;
}

/* Decides whether the pending read can complete now: returns 1 with the status,
   the bytes handed to the callback and the bytes consumed; 0 when it needs more. */
static int evaluate(rill_stream *s, int *status, size_t *give, size_t *consume)
{
    rill__read_op *op = &s->rop;
    const char *p = rill__buf_head(&s->rbuf);
    size_t len = s->rbuf.len, pos = 0;
    int eof = (s->flags & S_EOF) != 0;

    *status = 0;
    *give = *consume = 0;
    if (op->forced) {
        *status = op->forced;
        return 1;
    }
    if (s->err) {           /* a stored error wins over buffered data (asyncio) */
        *status = s->err;
        return 1;
    }
    switch (op->kind) {
    case OP_READ:
        if (op->n == 0 || len > 0) {
            *give = *consume = len < op->n ? len : op->n;
            return 1;
        }
        return eof;
    case OP_READ_ALL:
        if (!eof)
            return 0;
        *give = *consume = len;
        return 1;
    case OP_READEXACTLY:
        if (len >= op->n) {
            *give = *consume = op->n;
            return 1;
        }
        if (!eof)
            return 0;
        *status = RILL_EINCOMPLETE;
        *give = *consume = len;
        return 1;
    case OP_READUNTIL:
    case OP_READLINE:
        switch (rill__scan_sep(p, len, op->sep, op->seplen, s->limit, &op->offset, &pos)) {
        case RILL__SCAN_FOUND:
            *give = *consume = pos + op->seplen;
            return 1;
        case RILL__SCAN_LIMIT:
            *status = RILL_ELIMIT;
            if (op->kind == OP_READUNTIL) {
                *give = pos;        /* asyncio's `consumed`; the bytes stay buffered */
            } else if (len - pos >= op->seplen && memcmp(p + pos, op->sep, op->seplen) == 0) {
                *give = *consume = pos + op->seplen;   /* readline drops that line */
            } else {
                *give = *consume = len;                /* ... or everything buffered */
            }
            return 1;
        default:
            if (!eof)
                return 0;
            /* readuntil: IncompleteReadError with the partial bytes; readline: the partial line */
            *status = op->kind == OP_READUNTIL ? RILL_EINCOMPLETE : 0;
            *give = *consume = len;
            return 1;
        }
    }
    return 0;
}

static void release_sep(rill__read_op *op)
{
    if (op->sep != NULL && op->sep != op->sep_inline)
        rill__free(op->sep);
    op->sep = NULL;
}

static void deliver(rill_stream *s, int status, size_t give, size_t consume)
{
    rill_read_cb cb = s->rop.cb;
    void *ud = s->rop.ud;
    const char *data = rill__buf_head(&s->rbuf);

    rill__task_cancel(s->loop, &s->read_task);
    rill__timer_stop(&s->read_timer);
    release_sep(&s->rop);
    s->rop.forced = 0;
    read_to(s, READ_DELIVER, status, give);
    rill__buf_consume(&s->rbuf, consume);
    if ((s->flags & S_FC_PAUSED) && s->rbuf.len <= s->limit)
        s->flags &= ~S_FC_PAUSED;
    read_to(s, READ_IDLE, status, give);
    /* data stays valid until cb returns: consumed bytes are not moved before the next read */
    cb(s, status, give > 0 ? data : NULL, give, ud);
}

void rill__read_step(rill_stream *s)
{
    int status;
    size_t give, consume;

    if (s->flags & S_IN_READ_STEP)
        return;   /* a callback started a read: the loop below answers it */
    s->flags |= S_IN_READ_STEP;
    while (s->rop.state == READ_WAIT && (s->cstate == CLOSE_OPEN || s->rop.forced || (s->flags & S_LOST))) {
        if (!evaluate(s, &status, &give, &consume)) {
            if (s->read_timeout_ms > 0 && !rill__timer_armed(&s->read_timer))
                rill__timer_start(&s->read_timer, (uint64_t)s->read_timeout_ms);
            break;
        }
        deliver(s, status, give, consume);
    }
    s->flags &= ~S_IN_READ_STEP;
    if (s->rbuf.len == 0)
        rill__buf_trim(&s->rbuf, 4 * RILL__DEFAULT_LIMIT);
    rill__stream_update_io(s);
}

static void read_task_run(rill__task *t)
{
    rill__read_step(rill__container_of(t, rill_stream, read_task));
}

/* Ends a pending read now with status (timeout, close, abort). */
void rill__read_finish(rill_stream *s, int status)
{
    if (s->rop.state != READ_WAIT)
        return;
    /* The first reason stands: a close's RILL_ECANCELED, still queued, is not
       turned into RILL_ETIMEDOUT by a read timer due in the same round. */
    if (s->rop.forced == 0)
        s->rop.forced = status;
    rill__read_step(s);
}

/* ------------------------------------------------------- readiness */

static int read_burst(rill_stream *s, int scratch)
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
        if ((p = rill__buf_space(&s->rbuf, s->rbuf.len == 0 ? READ_MAX : READ_MIN, &avail)) == NULL)
            return RILL_ENOMEM;
        want = avail < READ_MAX ? avail : READ_MAX;
        n = s->tr->recv(s, p, want);
        if (n == -EAGAIN)
            break;
        if (n < 0)
            return (int)n;
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
        if (n == 0 || (size_t)n < want || !rill__stream_reading_wanted(s))
            break;
    }
    return 0;
}

/* The descriptor is readable (or the transport holds decoded bytes): reads a burst
   and steps the machine after each recv. Returns 0, or the error that loses the
   connection, which the caller reports: the close machine sits above this file. */
int rill__read_ready(rill_stream *s)
{
    rill_loop *loop = s->loop;
    /* A stream without a buffer of its own reads into the loop's scratch buffer:
       when the callbacks consume everything (a ping-pong, an idle connection's
       rare message) the stream never holds read memory at all. */
    int scratch = s->rbuf.cap == 0, rc;

    if (scratch) {
        s->rbuf.data = loop->scratch;
        s->rbuf.cap = RILL__SCRATCH_SIZE;
        s->rbuf.start = s->rbuf.len = 0;
    }
    rc = read_burst(s, scratch);
    if (scratch) {
        /* Keep what the callbacks left, in memory of the stream's own. */
        const char *rest = rill__buf_head(&s->rbuf);
        size_t len = s->rbuf.len;
        rill__buf_init(&s->rbuf);
        if (len > 0 && rill__buf_append(&s->rbuf, rest, len) < 0 && rc == 0)
            rc = RILL_ENOMEM;
    }
    /* Bytes the transport already decoded will not make the socket readable again. */
    if (rc == 0 && s->tr->pending != NULL && s->tr->pending(s) > 0 && rill__stream_reading_wanted(s))
        rill__task_post(s->loop, &s->more_task);
    return rc;
}

/* ---------------------------------------------------------- starting */

static int start(rill_stream *s, rill__read_kind kind, size_t n, const void *sep, size_t seplen,
                 rill_read_cb cb, void *ud)
{
    rill__read_op *op;

    if (s == NULL || cb == NULL)
        return RILL_EINVAL;
    if (!(s->mode & RILL_MODE_READ))
        return RILL_EMODE;
    /* After a connection loss the next read still reports the error (asyncio). */
    if (s->cstate != CLOSE_OPEN && !((s->flags & S_LOST) && !(s->flags & S_USER_CLOSED)))
        return RILL_ECLOSED;
    op = &s->rop;
    if (op->state != READ_IDLE)
        return RILL_EBUSY;
    op->sep = NULL;
    if (seplen > 0) {
        op->sep = seplen <= sizeof op->sep_inline ? op->sep_inline : rill__malloc(seplen);
        if (op->sep == NULL)
            return RILL_ENOMEM;
        memcpy(op->sep, sep, seplen);
    }
    op->kind = kind;
    op->n = n;
    op->seplen = seplen;
    op->offset = 0;
    op->forced = 0;
    op->cb = cb;
    op->ud = ud;
    read_to(s, READ_WAIT, 0, 0);
    /* Answered from the loop; when a read step is running (we are inside its
       callback) that step answers it without a trip through the queue. */
    if (!(s->flags & S_IN_READ_STEP))
        rill__task_post(s->loop, &s->read_task);
    return 0;
}

int rill_read(rill_stream *s, ssize_t n, rill_read_cb cb, void *ud)
{
    if (n < -1)
        return RILL_EINVAL;
    return start(s, n == -1 ? OP_READ_ALL : OP_READ, n == -1 ? 0 : (size_t)n, NULL, 0, cb, ud);
}

int rill_readline(rill_stream *s, rill_read_cb cb, void *ud)
{
    return start(s, OP_READLINE, 0, "\n", 1, cb, ud);
}

int rill_readexactly(rill_stream *s, size_t n, rill_read_cb cb, void *ud)
{
    return start(s, OP_READEXACTLY, n, NULL, 0, cb, ud);
}

int rill_readuntil(rill_stream *s, const void *sep, size_t seplen, rill_read_cb cb, void *ud)
{
    if (sep == NULL || seplen == 0)
        return RILL_EINVAL;
    return start(s, OP_READUNTIL, 0, sep, seplen, cb, ud);
}

/* Ends a pending read with status from the loop (a cancel, a close). */
void rill__read_end_later(rill_stream *s, int status)
{
    if (s->rop.state != READ_WAIT)
        return;
    if (s->rop.forced == 0)
        s->rop.forced = status;
    rill__task_post(s->loop, &s->read_task);
}

int rill_read_cancel(rill_stream *s)
{
    if (s == NULL)
        return RILL_EINVAL;
    rill__read_end_later(s, RILL_ECANCELED);
    return 0;
}

int rill_at_eof(const rill_stream *s)
{
    return (s->flags & S_EOF) && s->rbuf.len == 0;
}

static int set_paused(rill_stream *s, int paused)
{
    if (s == NULL)
        return RILL_EINVAL;
    if (!(s->mode & RILL_MODE_READ))
        return RILL_EMODE;
    if (paused)
        s->flags |= S_USER_PAUSED;
    else
        s->flags &= ~S_USER_PAUSED;
    rill__stream_update_io(s);
    return 0;
}

int rill_pause_reading(rill_stream *s) { return set_paused(s, 1); }
int rill_resume_reading(rill_stream *s) { return set_paused(s, 0); }
size_t rill_stream_get_limit(const rill_stream *s) { return s->limit; }

int rill_set_read_timeout(rill_stream *s, int ms)
{
    if (s == NULL)
        return RILL_EINVAL;
    s->read_timeout_ms = ms > 0 ? ms : 0;
    rill__timer_stop(&s->read_timer);
    /* A closing stream's pending read is being answered by the close. */
    if (s->read_timeout_ms > 0 && s->rop.state == READ_WAIT && s->cstate == CLOSE_OPEN)
        rill__timer_start(&s->read_timer, (uint64_t)s->read_timeout_ms);
    return 0;
}

static void read_timeout_fired(void *ud)
{
    rill__read_finish(ud, RILL_ETIMEDOUT);
}

void rill__read_init(rill_stream *s, size_t limit)
{
    s->limit = limit ? limit : RILL__DEFAULT_LIMIT;
    rill__buf_init(&s->rbuf);
    rill__task_init(&s->read_task, read_task_run);
    rill__timer_init(&s->read_timer, s->loop, read_timeout_fired, s);
}

void rill__read_free(rill_stream *s)
{
    rill__task_cancel(s->loop, &s->read_task);
    rill__timer_stop(&s->read_timer);
    release_sep(&s->rop);
    rill__buf_free(&s->rbuf);
}
