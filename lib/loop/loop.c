/* [loop] The run loop: picks a backend, owns the wake-up pipe (other threads and
   signal handlers), runs iterations (due work, one wait, what the wait made ready),
   and the alive/stop/teardown rules. Above io: it drives the backends. */
#include "config.h"
#include "rill_private.h"

#include <string.h>
#include <unistd.h>

static void wake_cb(rill__io *io, int revents)
{
    rill_loop *loop = rill__container_of(io, rill_loop, wake_io);
    unsigned char buf[256];

    (void)revents;
    /* The bytes only woke us: signals are marked apart (lib/core/signal.c). */
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
    rill__list_init(&loop->closing);
    rill__list_init(&loop->ts_queue);
    rill__list_init(&loop->procs);
    loop->chld_slot = -1;
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
    if ((rc = rill__pipe_open(fds, 0)) < 0)
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

/* One wait, then what it made ready. */
static int wait_and_run(rill_loop *loop, int timeout_ms)
{
    int t = rill__next_timeout(loop), rc;

    if (timeout_ms >= 0 && (t < 0 || timeout_ms < t))
        t = timeout_ms;
    if ((rc = loop->backend->wait(loop, t)) < 0)
        return rc;
    rill__update_time(loop);
    rill__run_ready(loop);
    return 0;
}

/* Work already due, then one wait unless stopped or idle. */
static int iterate(rill_loop *loop, int timeout_ms)
{
    rill__update_time(loop);
    rill__run_ready(loop);
    if (!loop->stop_flag && rill_loop_alive(loop))
        return wait_and_run(loop, timeout_ms);
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
    /* What one wait made ready is run right after it, so the next iteration starts
       with the wait: no second look at the clock and the queues in between. */
    rill__update_time(loop);
    rill__run_ready(loop);
    while (!loop->stop_flag && rill_loop_alive(loop))
        if ((rc = wait_and_run(loop, -1)) < 0)
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
    if (loop->resolver_free != NULL)
        loop->resolver_free(loop);
    rill__io_stop(loop, &loop->wake_io);
    /* What is still registered now would outlive its registry. */
    rill__debug_check_range(loop, sizeof *loop);
    rill__debug_loop_remove(loop);
    if (loop->wake_rd >= 0)
        close(loop->wake_rd);
    if (loop->wake_wr >= 0)
        close(loop->wake_wr);
    rill__tasks_drop_threadsafe(loop);
    loop->backend->destroy(loop);
    pthread_mutex_destroy(&loop->ts_mu);
    rill__free(loop->slots);
    rill__free(loop->free_slots);
    rill__free(loop->dead_slots);
    rill__free(loop->emb);
    rill__free(loop->scratch);
    rill__free(loop->dns_servers);
    RILL__TRACE("loop", loop->stats_id, "loop", "READY", "FREED", "");
    rill__free(loop);
    return 0;
}
