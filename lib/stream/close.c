/* [stream] The close machine: rill_close, rill_abort, rill_wait_closed, a connection
 * lost, and the stream's end.
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

#include <unistd.h>

static const char *const close_names[] = { RILL__CLOSE_STATES(RILL__STATE_NAME, RILL__STATE_NAME) };
const char *rill__close_state_name(rill__close_state st) { return close_names[st]; }

/* Every transition of the close machine goes through here (and its trace). */
static void close_to(rill_stream *s, rill__close_state to, int status)
{
    RILL__TRACE("stream", s->id, "close", close_names[s->cstate], close_names[to],
                "%s", status ? rill_err_name(status) : "");
    s->cstate = to;
}

static void stream_free(rill_stream *s)
{
    rill_loop *loop = s->loop;
    close_to(s, CLOSE_FREED, 0);
    if (s->owner_gone != NULL)
        s->owner_gone(s);
    /* The session outlives the descriptor: peer certificate and ALPN stay readable until here. */
    if (s->tr->destroy != NULL)
        s->tr->destroy(s);
    rill__read_free(s);
    rill__task_cancel(loop, &s->drain_task);
    rill__task_cancel(loop, &s->close_task);
    rill__task_cancel(loop, &s->more_task);
    rill__timer_stop(&s->close_timer);
    rill__buf_free(&s->wbuf);
    rill__waiters_free(&s->drains);
    rill__waiters_free(&s->closers);
    rill__waiters_free(&s->closed_waiters);
    rill__waiters_free(&s->spare);
    rill__handle_closed(loop, &s->h);
}

void rill__stream_free_memory(rill__handle *h)
{
    rill__free(rill__container_of(h, rill_stream, h));
}

static void close_task_run(rill__task *t)
{
    rill_stream *s = rill__container_of(t, rill_stream, close_task);
    int lost = (s->flags & S_LOST) != 0;

    /* The order callers rely on: the read, the drains, close, then wait_closed. */
    rill__read_finish(s, lost ? s->err : RILL_ECANCELED);
    rill__waiters_run(s, &s->drains, (s->flags & S_ABORTED) ? RILL_ECANCELED : s->close_status);
    rill__waiters_run(s, &s->closers, s->close_status);
    rill__waiters_run(s, &s->closed_waiters, lost ? s->err : 0);
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

void rill__close_advance(rill_stream *s)
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

int rill_close(rill_stream *s, rill_done_cb cb, void *ud)
{
    int rc;

    if (s == NULL)
        return RILL_EINVAL;
    if (cb != NULL && (rc = rill__waiter_add(s, &s->closers, cb, ud)) < 0)
        return rc;
    s->flags |= S_USER_CLOSED;
    if (s->cstate != CLOSE_OPEN) {
        if (s->cstate == CLOSE_CLOSED)
            rill__task_post(s->loop, &s->close_task);
        return 0;
    }
    rill__read_end_later(s, RILL_ECANCELED);
    close_to(s, CLOSE_FLUSHING, 0);
    if (s->close_timeout_ms > 0)
        rill__timer_start(&s->close_timer, (uint64_t)s->close_timeout_ms);
    rill__close_advance(s);
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
    if ((rc = rill__waiter_add(s, &s->closed_waiters, cb, ud)) < 0)
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

void rill__close_init(rill_stream *s)
{
    s->cstate = CLOSE_OPEN;
    rill__list_init(&s->closers);
    rill__list_init(&s->closed_waiters);
    rill__task_init(&s->close_task, close_task_run);
    rill__timer_init(&s->close_timer, s->loop, close_timeout_fired, s);
}
