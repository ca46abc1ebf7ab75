/* The run loop: cached time, due timers, the pending-callback queue, the wake-up
   pipe (other threads and signal handlers), and the alive/stop/teardown rules. */
#include "config.h"
#if defined(HAVE_PIPE2) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE 1   /* pipe2() and O_CLOEXEC (README "Portability") */
#endif
#include "rill_private.h"
#include "syshooks.h"

#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/time.h>

/* Rounds of the pending queue per iteration: callbacks that keep queueing
   callbacks get this many turns, then I/O is polled (with a zero timeout). */
#define PENDING_BUDGET 64

typedef struct soon {
    rill__task task;
    rill_loop *loop;
    void (*cb)(void *ud);
    void *ud;
} soon;

uint64_t rill__clock_ms(void)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    if (h != NULL && h->clock_ms != NULL)
        return h->clock_ms();
#if defined(HAVE_CLOCK_GETTIME) && defined(CLOCK_MONOTONIC)
    {
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
            return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    }
#endif
    {
        /* Fallback: wall-clock time, which can jump; only where no monotonic clock exists. */
        struct timeval tv;
        gettimeofday(&tv, NULL);
        return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
    }
}

void rill__update_time(rill_loop *loop) { loop->now = rill__clock_ms(); }
uint64_t rill_loop_now(const rill_loop *loop) { return loop->now; }
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
    rill__run_timers(loop);
    run_pending(loop);
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

static void wake_cb(rill__io *io, int revents)
{
    rill_loop *loop = rill__container_of(io, rill_loop, wake_io);
    unsigned char buf[256];

    (void)revents;
    /* The bytes only woke us: signals are marked apart (lib/signal.c). */
    for (;;)
        if (read(loop->wake_rd, buf, sizeof buf) <= 0)
            break;
    pthread_mutex_lock(&loop->ts_mu);
    rill__list_splice(&loop->pending, &loop->ts_queue);
    loop->npending += loop->nts;
    loop->nts = 0;
    pthread_mutex_unlock(&loop->ts_mu);
    rill__signal_dispatch(loop);
}

static int make_pipe(int fds[2])
{
#ifdef HAVE_PIPE2
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0)
        return 0;
    if (errno != ENOSYS)
        return -errno;
#endif
    if (pipe(fds) < 0)
        return -errno;
    if (rill__set_nonblock_cloexec(fds[0]) < 0 || rill__set_nonblock_cloexec(fds[1]) < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return -e;
    }
    return 0;
}

/* ------------------------------------------------------------------ loop */

/* NULL with *err: the backend is unknown (EINVAL) or not in this build (ENOSYS). */
static const rill__backend *pick_backend(int which, int *err)
{
    *err = ENOSYS;
    switch (which) {
    case RILL_BACKEND_AUTO:
#if defined(RILL_HAVE_EPOLL)
        return &rill__backend_epoll;
#elif defined(RILL_HAVE_POLL)
        return &rill__backend_poll;
#else
        return &rill__backend_select;
#endif
    case RILL_BACKEND_SELECT:
        return &rill__backend_select;
    case RILL_BACKEND_POLL:
#ifdef RILL_HAVE_POLL
        return &rill__backend_poll;
#else
        return NULL;
#endif
    case RILL_BACKEND_EPOLL:
#ifdef RILL_HAVE_EPOLL
        return &rill__backend_epoll;
#else
        return NULL;
#endif
    default:
        *err = EINVAL;
        return NULL;
    }
}

rill_loop *rill_loop_new(const rill_loop_opts *opts)
{
    rill_loop_opts defaults;
    rill_loop *loop;
    int fds[2], rc;

    rill__trace_init();
    if (opts == NULL) {
        memset(&defaults, 0, sizeof defaults);
        opts = &defaults;
    }
    if (rill__check_reserved(opts->reserved) < 0 || opts->dns_timeout_ms < 0 || opts->dns_tries < 0) {
        errno = EINVAL;
        return NULL;
    }
    if (pick_backend(opts->backend, &rc) == NULL) {
        errno = rc;
        return NULL;
    }
    loop = rill__calloc(1, sizeof *loop);
    if (loop == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    rill__debug_loop_add(loop);
    loop->backend = pick_backend(opts->backend, &rc);
    loop->wake_rd = loop->wake_wr = -1;
    rill__io_init(&loop->wake_io, -1, wake_cb);   /* not watched: a failure below has nothing to stop */
    rill__list_init(&loop->pending);
    rill__list_init(&loop->ts_queue);
    loop->dns_timeout_ms = opts->dns_timeout_ms;
    loop->dns_tries = opts->dns_tries;
    if (pthread_mutex_init(&loop->ts_mu, NULL) != 0) {
        rill__free(loop);
        errno = ENOMEM;
        return NULL;
    }
    rc = RILL_ENOMEM;
    if (opts->dns_servers != NULL && (loop->dns_servers = rill__strdup(opts->dns_servers)) == NULL)
        goto fail;
    if ((loop->scratch = rill__malloc(RILL__SCRATCH_SIZE)) == NULL)
        goto fail;
    if ((rc = loop->backend->init(loop)) < 0)
        goto fail;
    if ((rc = make_pipe(fds)) < 0)
        goto fail;
    loop->wake_rd = fds[0];
    loop->wake_wr = fds[1];
    rill__io_init(&loop->wake_io, loop->wake_rd, wake_cb);
    if ((rc = rill__io_start(loop, &loop->wake_io, RILL_READABLE)) < 0)
        goto fail;
    rill__update_time(loop);
    loop->stats_id = rill__next_id(loop);
    RILL__TRACE("loop", loop->stats_id, "loop", "NEW", "READY", "backend=%s", loop->backend->name);
    return loop;
fail:
    loop->nhandles = 0;
    rill_loop_free(loop);
    errno = -rc;
    return NULL;
}

int rill_loop_alive(const rill_loop *loop)
{
    return loop->nhandles > 0 || loop->nuser_timers > 0 || loop->npending > 0;
}

/* One iteration: due work, one wait, then what the wait made ready. */
static int iterate(rill_loop *loop, int timeout_ms)
{
    int t, rc;

    rill__update_time(loop);
    rill__run_ready(loop);
    if (!loop->stop_flag && rill_loop_alive(loop)) {
        t = rill__next_timeout(loop);
        if (timeout_ms >= 0 && (t < 0 || timeout_ms < t))
            t = timeout_ms;
        rc = loop->backend->wait(loop, t);
        if (rc < 0)
            return rc;
        rill__update_time(loop);
        rill__run_ready(loop);
    }
    return 0;
}

int rill_loop_run_once(rill_loop *loop, int timeout_ms)
{
    int rc;
    if (loop->in_callback)
        return RILL_EBUSY;
    loop->in_callback++;
    rc = iterate(loop, timeout_ms);
    loop->in_callback--;
    if (rc < 0)
        return rc;
    return rill_loop_alive(loop) ? 1 : 0;
}

int rill_loop_run(rill_loop *loop)
{
    int rc = 0;
    if (loop->in_callback)
        return RILL_EBUSY;
    loop->in_callback++;
    while (!loop->stop_flag && rill_loop_alive(loop))
        if ((rc = iterate(loop, -1)) < 0)
            break;
    loop->in_callback--;
    if (rc < 0)
        return rc;
    if (loop->stop_flag) {
        loop->stop_flag = 0;
        return 1;
    }
    return 0;
}

void rill_loop_stop(rill_loop *loop) { loop->stop_flag = 1; }

int rill_loop_free(rill_loop *loop)
{
    if (loop == NULL)
        return 0;
    if (loop->in_callback || rill_loop_alive(loop))
        return RILL_EBUSY;
    rill__resolver_destroy(loop);
    rill__io_stop(loop, &loop->wake_io);
    /* What is still registered now would outlive its registry. */
    rill__debug_check_range(loop, sizeof *loop);
    rill__debug_loop_remove(loop);
    if (loop->wake_rd >= 0)
        close(loop->wake_rd);
    if (loop->wake_wr >= 0)
        close(loop->wake_wr);
    /* Threadsafe callbacks that arrived after the last iteration are dropped with the loop. */
    while (!rill__list_empty(&loop->ts_queue))
        rill__free(rill__container_of(rill__list_pop_front(&loop->ts_queue), soon, task.node));
    loop->backend->destroy(loop);
    pthread_mutex_destroy(&loop->ts_mu);
    rill__free(loop->slots);
    rill__free(loop->free_slots);
    rill__free(loop->dead_slots);
    rill__free(loop->heap);
    rill__free(loop->emb);
    rill__free(loop->scratch);
    rill__free(loop->dns_servers);
    RILL__TRACE("loop", loop->stats_id, "loop", "READY", "FREED", "");
    rill__free(loop);
    return 0;
}
