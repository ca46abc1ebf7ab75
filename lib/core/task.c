/* [core] Work the loop runs later: the pending-callback queue and its per-iteration
   budget, call_soon and call_soon_threadsafe (queued under a mutex, then a byte on
   the wake-up pipe), handle counts and object ids. */
#include "rill_private.h"

#include <unistd.h>

/* Rounds of the pending queue per iteration: callbacks that keep queueing
   callbacks get this many turns, then I/O is polled (with a zero timeout). */
#define PENDING_BUDGET 64

typedef struct soon {
    rill__task task;
    rill_loop *loop;
    void (*cb)(void *ud);
    void *ud;
} soon;

unsigned long rill__next_id(rill_loop *loop) { return ++loop->next_id; }
void rill__handle_ref(rill_loop *loop) { loop->nhandles++; }
void rill__handle_unref(rill_loop *loop) { loop->nhandles--; }

/* ------------------------------------------------------------------ tasks */

void rill__task_init(rill__task *t, void (*run)(rill__task *t))
{
    rill__list_init(&t->node);
    t->run = run;
}

int rill__task_queued(const rill__task *t) { return rill__list_linked(&t->node); }

void rill__task_post(rill_loop *loop, rill__task *t)
{
    if (rill__task_queued(t))
        return;
    rill__list_push_back(&loop->pending, &t->node);
    loop->npending++;
}

void rill__task_cancel(rill_loop *loop, rill__task *t)
{
    if (!rill__task_queued(t))
        return;
    rill__list_unlink(&t->node);
    loop->npending--;
}

static void run_pending(rill_loop *loop)
{
    int rounds;
    rill__list batch;

    loop->budget_exhausted = 0;
    for (rounds = 0; !rill__list_empty(&loop->pending); rounds++) {
        if (rounds == PENDING_BUDGET) {
            loop->budget_exhausted = 1;
            return;
        }
        /* One round is what was queued when it began; what it queues is the next round. */
        rill__list_init(&batch);
        rill__list_splice(&batch, &loop->pending);
        while (!rill__list_empty(&batch)) {
            rill__task *t = rill__container_of(rill__list_pop_front(&batch), rill__task, node);
            loop->npending--;
            t->run(t);
        }
    }
}

void rill__run_ready(rill_loop *loop)
{
    if (loop->timer_min != NULL && loop->timer_min->deadline <= loop->now)
        rill__run_timers(loop);
    run_pending(loop);
    /* The one point of the iteration where closed handles' memory goes. */
    if (!rill__list_empty(&loop->closing))
        rill__handles_free_closed(loop);
}

int rill__next_timeout(rill_loop *loop)
{
    if (loop->npending > 0 || loop->stop_flag)
        return 0;
    return rill__timer_timeout(loop);
}

static void soon_run(rill__task *t)
{
    soon *s = rill__container_of(t, soon, task);
    void (*cb)(void *) = s->cb;
    void *ud = s->ud;
    rill__free(s);
    cb(ud);
}

static soon *soon_new(rill_loop *loop, void (*cb)(void *ud), void *ud)
{
    soon *s = rill__malloc(sizeof *s);
    if (s == NULL)
        return NULL;
    rill__task_init(&s->task, soon_run);
    s->loop = loop;
    s->cb = cb;
    s->ud = ud;
    return s;
}

int rill_call_soon(rill_loop *loop, void (*cb)(void *ud), void *ud)
{
    soon *s;
    if (loop == NULL || cb == NULL)
        return RILL_EINVAL;
    if ((s = soon_new(loop, cb, ud)) == NULL)
        return RILL_ENOMEM;
    rill__task_post(loop, &s->task);
    return 0;
}

/* ----------------------------------------------------- wake-up pipe */

/* Byte 0 wakes the loop; bytes 1..63 are signal numbers written by signal handlers
   (for traces with strace: the loop reads them only as a wake-up). */
void rill__wake(int fd, unsigned char what)
{
    ssize_t n;
    int saved = errno;
    do
        n = write(fd, &what, 1);
    while (n < 0 && errno == EINTR);
    /* EAGAIN: the pipe is full, so a wake-up is already pending. */
    errno = saved;
}

int rill_call_soon_threadsafe(rill_loop *loop, void (*cb)(void *ud), void *ud)
{
    soon *s;
    if (loop == NULL || cb == NULL)
        return RILL_EINVAL;
    if ((s = soon_new(loop, cb, ud)) == NULL)
        return RILL_ENOMEM;
    pthread_mutex_lock(&loop->ts_mu);
    rill__list_push_back(&loop->ts_queue, &s->task.node);
    loop->nts++;
    pthread_mutex_unlock(&loop->ts_mu);
    rill__wake(loop->wake_wr, 0);
    return 0;
}

/* Threadsafe callbacks that arrived after the last iteration are dropped with the loop. */
void rill__tasks_drop_threadsafe(rill_loop *loop)
{
    while (!rill__list_empty(&loop->ts_queue))
        rill__free(rill__container_of(rill__list_pop_front(&loop->ts_queue), soon, task.node));
}
