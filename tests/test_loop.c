/* The loop: timers, the pending queue, thread-safe wake-ups, watches, signals,
   run/stop/free rules, both backends. */
#include "support/testutil.h"
#include "rill_private.h"
#include "syshooks.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* ------------------------------------------------------------- recorders */

typedef struct {
    int order[64];
    int n;
    rill_loop *loop;
    rill_timer *victim;
} recorder;

typedef struct {
    recorder *r;
    int tag;
} rec_item;

static void record_tag(void *ud)
{
    rec_item *it = ud;
    if (it->r->n < 64)
        it->r->order[it->r->n++] = it->tag;
}

/* ----------------------------------------------------------------- timers */

static void test_timer_order(void)
{
    rill_loop *loop = test_loop_new(0);
    recorder r;
    rec_item it[6];
    /* delays: ties at 30 must fire in creation order 1, 2, 4 */
    static const uint64_t delay[6] = { 30, 30, 10, 30, 50, 0 };
    static const int expect[6] = { 5, 2, 0, 1, 3, 4 };
    int i;

    memset(&r, 0, sizeof r);
    for (i = 0; i < 6; i++) {
        it[i].r = &r;
        it[i].tag = i;
        CU_ASSERT_PTR_NOT_NULL(rill_call_later(loop, delay[i], record_tag, &it[i]));
    }
    CU_ASSERT_EQUAL(rill_loop_run(loop), 0);
    CU_ASSERT_EQUAL(r.n, 6);
    for (i = 0; i < 6; i++)
        CU_ASSERT_EQUAL(r.order[i], expect[i]);
    test_loop_finish(loop);
}

static void cancel_victim(void *ud)
{
    recorder *r = ud;
    r->order[r->n++] = 100;
    rill_timer_cancel(r->victim);
}

static void test_timer_cancel_from_timer(void)
{
    rill_loop *loop = test_loop_new(0);
    recorder r;
    rec_item victim_item;

    memset(&r, 0, sizeof r);
    victim_item.r = &r;
    victim_item.tag = 7;
    CU_ASSERT_PTR_NOT_NULL(rill_call_later(loop, 5, cancel_victim, &r));
    r.victim = rill_call_later(loop, 5, record_tag, &victim_item); /* same deadline, created later */
    CU_ASSERT_PTR_NOT_NULL(r.victim);
    CU_ASSERT_EQUAL(rill_loop_run(loop), 0);
    CU_ASSERT_EQUAL(r.n, 1);
    CU_ASSERT_EQUAL(r.order[0], 100);
    test_loop_finish(loop);
}

static void stamp_now(void *ud)
{
    *(uint64_t *)ud = test_now_ms();
}

static void test_timer_never_early(void)
{
    rill_loop *loop = test_loop_new(0);
    uint64_t start = test_now_ms(), fired = 0;

    CU_ASSERT_PTR_NOT_NULL(rill_call_later(loop, 60, stamp_now, &fired));
    CU_ASSERT_EQUAL(rill_loop_run(loop), 0);
    CU_ASSERT(fired >= start + 60);
    CU_ASSERT(fired < start + 5000);
    test_loop_finish(loop);
}

typedef struct {
    uint64_t deadline;
    int seq;
    uint64_t *last_deadline;
    int *last_seq;
    int *bad;
    int *count;
} heap_item;

static void heap_fire(void *ud)
{
    heap_item *h = ud;
    if (h->deadline < *h->last_deadline || (h->deadline == *h->last_deadline && h->seq < *h->last_seq))
        (*h->bad)++;
    *h->last_deadline = h->deadline;
    *h->last_seq = h->seq;
    (*h->count)++;
}

static void test_timer_heap_stress(void)
{
    rill_loop *loop = test_loop_new(0);
    enum { N = 500 };
    heap_item *items = calloc(N, sizeof *items);
    rill_timer *t[N];
    uint64_t last_deadline = 0;
    int last_seq = -1, bad = 0, count = 0, i, cancelled = 0;

    srand(42);
    for (i = 0; i < N; i++) {
        items[i].deadline = (uint64_t)(rand() % 40);
        items[i].seq = i;
        items[i].last_deadline = &last_deadline;
        items[i].last_seq = &last_seq;
        items[i].bad = &bad;
        items[i].count = &count;
        t[i] = rill_call_later(loop, items[i].deadline, heap_fire, &items[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t[i]);
        items[i].deadline = t[i]->deadline; /* absolute: the order the heap must keep */
    }
    for (i = 0; i < N; i += 7) {
        rill_timer_cancel(t[i]);
        cancelled++;
    }
    CU_ASSERT_EQUAL(rill_loop_run(loop), 0);
    CU_ASSERT_EQUAL(count, N - cancelled);
    CU_ASSERT_EQUAL(bad, 0);
    free(items);
    test_loop_finish(loop);
}

/* ----------------------------------------------------------- call_soon */

typedef struct {
    recorder *r;
    int depth;
} chain;

static void test_call_soon_fifo_not_sync(void)
{
    rill_loop *loop = test_loop_new(0);
    recorder r;
    rec_item it[10];
    int i;

    memset(&r, 0, sizeof r);
    for (i = 0; i < 10; i++) {
        it[i].r = &r;
        it[i].tag = i;
        CU_ASSERT_EQUAL(rill_call_soon(loop, record_tag, &it[i]), 0);
    }
    CU_ASSERT_EQUAL(r.n, 0); /* never synchronous */
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 1);
    CU_ASSERT_EQUAL(rill_loop_run(loop), 0);
    CU_ASSERT_EQUAL(r.n, 10);
    for (i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(r.order[i], i);
    CU_ASSERT_EQUAL(rill_call_soon(loop, NULL, NULL), RILL_EINVAL);
    test_loop_finish(loop);
}

typedef struct {
    rill_loop *loop;
    int depth;
    unsigned long polls_at_start;
    unsigned long polls_at_end;
} requeue;

static void requeue_cb(void *ud)
{
    requeue *q = ud;
    if (q->depth++ < 10)
        rill_call_soon(q->loop, requeue_cb, q);
    else
        q->polls_at_end = q->loop->npolls;
}

static void test_queued_from_callback_runs_before_poll(void)
{
    rill_loop *loop = test_loop_new(0);
    requeue q;
    /* keep the loop alive with a far timer so a poll would block */
    rill_timer *t = rill_call_later(loop, 100000, stamp_now, NULL);

    memset(&q, 0, sizeof q);
    q.loop = loop;
    q.polls_at_start = loop->npolls;
    CU_ASSERT_EQUAL(rill_call_soon(loop, requeue_cb, &q), 0);
    CU_ASSERT_EQUAL(rill_loop_run_once(loop, 0), 1);
    CU_ASSERT_EQUAL(q.depth, 11);
    CU_ASSERT_EQUAL(q.polls_at_end, q.polls_at_start);
    rill_timer_cancel(t);
    test_loop_finish(loop);
}

typedef struct {
    rill_loop *loop;
    unsigned long runs;
    int stop;
    int fd;
} forever;

static void forever_cb(void *ud)
{
    forever *f = ud;
    f->runs++;
    if (!f->stop)
        rill_call_soon(f->loop, forever_cb, f);
}

static void watch_stop_forever(rill_watch *w, int revents, void *ud)
{
    forever *f = ud;
    char c;
    (void)revents;
    CU_ASSERT_EQUAL(read(f->fd, &c, 1), 1);
    f->stop = 1;
    rill_watch_stop(w);
}

static void test_requeue_forever_does_not_starve_io(void)
{
    rill_loop *loop = test_loop_new(0);
    forever f;
    int sv[2];
    rill_watch *w;

    memset(&f, 0, sizeof f);
    f.loop = loop;
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL(write(sv[1], "x", 1), 1);
    f.fd = sv[0];
    w = rill_watch_fd(loop, sv[0], RILL_READABLE, watch_stop_forever, &f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_EQUAL(rill_call_soon(loop, forever_cb, &f), 0);
    CU_ASSERT_EQUAL(test_run_until(loop, &f.stop, 5000), 1);
    CU_ASSERT(f.runs < 100000);
    test_loop_finish(loop);
    close(sv[0]);
    close(sv[1]);
}

/* ------------------------------------------------------------ threads */

typedef struct {
    rill_loop *loop;
    int called;
    uint64_t sent_at, got_at;
} ts_ctx;

static void ts_cb(void *ud)
{
    ts_ctx *c = ud;
    c->got_at = test_now_ms();
    c->called++;
}

static void *ts_thread(void *ud)
{
    ts_ctx *c = ud;
    usleep(100000);
    c->sent_at = test_now_ms();
    rill_call_soon_threadsafe(c->loop, ts_cb, c);
    return NULL;
}

static void test_threadsafe_wakes_blocked_loop(void)
{
    rill_loop *loop = test_loop_new(0);
    rill_timer *keep = rill_call_later(loop, 60000, stamp_now, NULL);
    ts_ctx c;
    pthread_t th;

    memset(&c, 0, sizeof c);
    c.loop = loop;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, ts_thread, &c), 0);
    /* Blocks in poll() (the only deadline is a minute away) until the thread wakes it. */
    rill_loop_run_once(loop, -1);
    if (!c.called)
        rill_loop_run_once(loop, 2000);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(c.called, 1);
    CU_ASSERT(c.got_at >= c.sent_at && c.got_at - c.sent_at < 100);
    rill_timer_cancel(keep);
    test_loop_finish(loop);
}

/* ---------------------------------------------------------- run / stop */

static void stop_cb(void *ud)
{
    rill_loop_stop(ud);
}

static void test_stop_from_callback(void)
{
    rill_loop *loop = test_loop_new(0);
    rill_timer *keep = rill_call_later(loop, 60000, stamp_now, NULL);

    CU_ASSERT_EQUAL(rill_call_soon(loop, stop_cb, loop), 0);
    CU_ASSERT_EQUAL(rill_loop_run(loop), 1);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 1);
    rill_timer_cancel(keep);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    CU_ASSERT_EQUAL(rill_loop_run(loop), 0);
    test_loop_finish(loop);
}

static void test_run_returns_when_idle(void)
{
    rill_loop *loop = test_loop_new(0);
    uint64_t start = test_now_ms();
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    CU_ASSERT_EQUAL(rill_loop_run(loop), 0);
    CU_ASSERT_EQUAL(rill_loop_run_once(loop, -1), 0);
    CU_ASSERT(test_now_ms() - start < 1000);
    test_loop_finish(loop);
}

typedef struct {
    rill_loop *loop;
    int run_rc, once_rc, free_rc, called;
} reentry;

static void reentry_cb(void *ud)
{
    reentry *r = ud;
    r->run_rc = rill_loop_run(r->loop);
    r->once_rc = rill_loop_run_once(r->loop, 0);
    r->free_rc = rill_loop_free(r->loop);
    r->called = 1;
}

static void test_run_free_from_callback_busy(void)
{
    rill_loop *loop = test_loop_new(0);
    reentry r;
    memset(&r, 0, sizeof r);
    r.loop = loop;
    CU_ASSERT_EQUAL(rill_call_soon(loop, reentry_cb, &r), 0);
    CU_ASSERT_EQUAL(rill_loop_run(loop), 0);
    CU_ASSERT_EQUAL(r.called, 1);
    CU_ASSERT_EQUAL(r.run_rc, RILL_EBUSY);
    CU_ASSERT_EQUAL(r.once_rc, RILL_EBUSY);
    CU_ASSERT_EQUAL(r.free_rc, RILL_EBUSY);
    test_loop_finish(loop);
}

static void nop_cb(void *ud) { (void)ud; }
static void nop_watch(rill_watch *w, int revents, void *ud) { (void)w; (void)revents; (void)ud; }

static void test_free_busy_while_alive(void)
{
    rill_loop *loop = test_loop_new(0);
    rill_timer *t;
    rill_watch *w;
    int sv[2];

    t = rill_call_later(loop, 1000, nop_cb, NULL);
    CU_ASSERT_EQUAL(rill_loop_free(loop), RILL_EBUSY);
    rill_timer_cancel(t);
    CU_ASSERT_EQUAL(rill_call_soon(loop, nop_cb, NULL), 0);
    CU_ASSERT_EQUAL(rill_loop_free(loop), RILL_EBUSY);
    CU_ASSERT_EQUAL(rill_loop_run(loop), 0);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    w = rill_watch_fd(loop, sv[0], 0, nop_watch, NULL);
    CU_ASSERT_PTR_NOT_NULL(w);
    CU_ASSERT_EQUAL(rill_loop_free(loop), RILL_EBUSY);
    rill_watch_stop(w);
    close(sv[0]);
    close(sv[1]);
    test_loop_finish(loop);
}

static void test_run_once_reports_work(void)
{
    rill_loop *loop = test_loop_new(0);
    rill_timer *t = rill_call_later(loop, 30, nop_cb, NULL);
    CU_ASSERT_PTR_NOT_NULL(t);
    CU_ASSERT_EQUAL(rill_loop_run_once(loop, 0), 1);
    CU_ASSERT_EQUAL(rill_loop_run_once(loop, 5000), 0); /* the timer fires during this wait */
    test_loop_finish(loop);
}

static void test_loop_new_checks_options(void)
{
    rill_loop_opts o;
    int dummy;
    memset(&o, 0, sizeof o);
    o.reserved[2] = &dummy;
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_loop_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);
    memset(&o, 0, sizeof o);
    o.backend = 99;
    CU_ASSERT_PTR_NULL(rill_loop_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_PTR_NULL(rill_call_later(NULL, 1, nop_cb, NULL));
    CU_ASSERT_EQUAL(errno, EINVAL);
}

static void test_version(void)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", RILL_VERSION_MAJOR, RILL_VERSION_MINOR, RILL_VERSION_PATCH);
    CU_ASSERT_STRING_EQUAL(rill_version(), want);
}

static void test_now_cached_and_monotonic(void)
{
    rill_loop *loop = test_loop_new(0);
    uint64_t a = rill_loop_now(loop), b;
    usleep(20000);
    CU_ASSERT_EQUAL(rill_loop_now(loop), a); /* cached until the next iteration */
    rill_loop_run_once(loop, 0);
    b = rill_loop_now(loop);
    CU_ASSERT(b >= a + 20);
    test_loop_finish(loop);
}

/* ------------------------------------------------------------ watches */

typedef struct {
    int calls;
    int last;
    int stop_in_cb;
} watch_ctx;

static void count_watch(rill_watch *w, int revents, void *ud)
{
    watch_ctx *c = ud;
    c->calls++;
    c->last = revents;
    if (c->stop_in_cb)
        rill_watch_stop(w);
}

static void test_watch_update_pause_and_stop_in_cb(void)
{
    rill_loop *loop = test_loop_new(0);
    watch_ctx c;
    int sv[2];
    rill_watch *w;

    memset(&c, 0, sizeof c);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    w = rill_watch_fd(loop, sv[0], RILL_WRITABLE, count_watch, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    rill_loop_run_once(loop, 1000);
    CU_ASSERT_EQUAL(c.calls, 1);
    CU_ASSERT_EQUAL(c.last, RILL_WRITABLE);
    CU_ASSERT_EQUAL(rill_watch_update(w, 0), 0);
    rill_loop_run_once(loop, 50);
    CU_ASSERT_EQUAL(c.calls, 1); /* paused */
    CU_ASSERT_EQUAL(rill_watch_update(w, 8), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_watch_update(w, RILL_READABLE), 0);
    c.stop_in_cb = 1;
    CU_ASSERT_EQUAL(write(sv[1], "ab", 2), 2);
    rill_loop_run_once(loop, 1000);
    CU_ASSERT_EQUAL(c.calls, 2);
    CU_ASSERT_EQUAL(c.last, RILL_READABLE);
    rill_loop_run_once(loop, 50);
    CU_ASSERT_EQUAL(c.calls, 2); /* stopped inside its callback: never again */
    close(sv[0]);
    close(sv[1]);
    test_loop_finish(loop);
}

/* A watch stopped by an earlier callback of the same dispatch is not called. */
typedef struct {
    rill_watch *other;
    int other_calls;
    int first_calls;
} pair_ctx;

static void stop_other(rill_watch *w, int revents, void *ud)
{
    pair_ctx *p = ud;
    (void)revents;
    p->first_calls++;
    rill_watch_stop(p->other);
    p->other = NULL;
    rill_watch_stop(w);
}

static void other_cb(rill_watch *w, int revents, void *ud)
{
    pair_ctx *p = ud;
    (void)revents;
    p->other_calls++;
    rill_watch_stop(w);
    p->other = NULL;
}

static void run_removed_during_dispatch(int backend)
{
    rill_loop *loop = test_loop_new(backend);
    int a[2], b[2];
    pair_ctx p;
    rill_watch *first;

    memset(&p, 0, sizeof p);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    /* both writable at once; whichever is dispatched first stops the other */
    first = rill_watch_fd(loop, a[0], RILL_WRITABLE, stop_other, &p);
    p.other = rill_watch_fd(loop, b[0], RILL_WRITABLE, other_cb, &p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(first);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p.other);
    rill_loop_run_once(loop, 1000);
    CU_ASSERT_EQUAL(p.first_calls + p.other_calls, 1 + (p.other_calls ? 0 : 0));
    CU_ASSERT_EQUAL(p.first_calls, 1);
    CU_ASSERT_EQUAL(p.other_calls, 0);
    if (p.other)
        rill_watch_stop(p.other);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    test_loop_finish(loop);
}

static void test_removed_during_dispatch_poll(void)
{
    if (test_have_backend(RILL_BACKEND_POLL))
        run_removed_during_dispatch(RILL_BACKEND_POLL);
}
static void test_removed_during_dispatch_select(void) { run_removed_during_dispatch(RILL_BACKEND_SELECT); }

static void test_select_refuses_fd_setsize(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_SELECT);
    struct rlimit rl, old;
    int big, sv[2];
    rill_watch *w;

    CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &old), 0);
    rl = old;
    if (rl.rlim_cur <= FD_SETSIZE) {
        rl.rlim_cur = FD_SETSIZE + 16;
        CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    big = dup2(sv[0], FD_SETSIZE);
    CU_ASSERT_EQUAL_FATAL(big, FD_SETSIZE);
    errno = 0;
    w = rill_watch_fd(loop, big, RILL_READABLE, nop_watch, NULL);
    CU_ASSERT_PTR_NULL(w);
    CU_ASSERT_EQUAL(errno, EMFILE);
    w = rill_watch_fd(loop, sv[0], RILL_READABLE, nop_watch, NULL);
    CU_ASSERT_PTR_NOT_NULL(w);
    rill_watch_stop(w);
    close(big);
    close(sv[0]);
    close(sv[1]);
    setrlimit(RLIMIT_NOFILE, &old);
    test_loop_finish(loop);
}

/* ------------------------------------------------------------ signals */

typedef struct {
    int calls;
    int signum;
    int in_handler_context;
} sig_ctx;

static void sig_cb(int signum, void *ud)
{
    sig_ctx *c = ud;
    c->calls++;
    c->signum = signum;
}

static void test_signal_runs_from_loop(void)
{
    rill_loop *loop = test_loop_new(0);
    sig_ctx c;
    struct sigaction before, after;

    memset(&c, 0, sizeof c);
    sigaction(SIGUSR1, NULL, &before);
    CU_ASSERT_EQUAL(rill_signal_watch(loop, SIGUSR1, sig_cb, &c), 0);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 1);
    raise(SIGUSR1);
    CU_ASSERT_EQUAL(c.calls, 0); /* not from the handler */
    CU_ASSERT_EQUAL(test_run_until(loop, &c.calls, 2000), 1);
    CU_ASSERT_EQUAL(c.signum, SIGUSR1);
    CU_ASSERT_EQUAL(rill_signal_unwatch(loop, SIGUSR1), 0);
    sigaction(SIGUSR1, NULL, &after);
    CU_ASSERT(after.sa_handler == before.sa_handler);
    CU_ASSERT_EQUAL(rill_signal_unwatch(loop, SIGUSR1), RILL_EINVAL);
    test_loop_finish(loop);
}

static void test_signal_other_loop_busy(void)
{
    rill_loop *a = test_loop_new(0), *b = test_loop_new(0);
    sig_ctx c;
    memset(&c, 0, sizeof c);
    CU_ASSERT_EQUAL(rill_signal_watch(a, SIGUSR2, sig_cb, &c), 0);
    CU_ASSERT_EQUAL(rill_signal_watch(a, SIGUSR2, sig_cb, &c), 0); /* same loop: replaces */
    CU_ASSERT_EQUAL(rill_signal_watch(b, SIGUSR2, sig_cb, &c), RILL_EBUSY);
    CU_ASSERT_EQUAL(rill_signal_watch(a, SIGKILL, sig_cb, &c), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_loop_free(a), RILL_EBUSY);
    CU_ASSERT_EQUAL(rill_signal_unwatch(a, SIGUSR2), 0);
    test_loop_finish(a);
    test_loop_finish(b);
}

/* --------------------------------------- threads and the debug free check */

#define TS_THREADS 4
#define TS_CALLS 2000

typedef struct {
    rill_loop *loop;
    int ran;
    int done;
} ts_many;

static void ts_count(void *ud)
{
    ts_many *m = ud;
    if (++m->ran == TS_THREADS * TS_CALLS)
        m->done = 1;
}

static void *ts_sender(void *ud)
{
    ts_many *m = ud;
    int i;
    for (i = 0; i < TS_CALLS; i++)
        while (rill_call_soon_threadsafe(m->loop, ts_count, m) != 0)
            usleep(1000);
    return NULL;
}

/* Threads allocate while the loop frees: the allocation counters stay exact
   (run under ThreadSanitizer by tools/check-tsan.sh). */
static void test_threadsafe_from_many_threads(void)
{
    ts_many m;
    pthread_t th[TS_THREADS];
    rill_timer *keep;
    unsigned long live = rill__alloc_live();
    int i;

    memset(&m, 0, sizeof m);
    m.loop = test_loop_new(0);
    keep = rill_call_later(m.loop, 60000, nop_cb, NULL);   /* the loop waits instead of idling out */
    for (i = 0; i < TS_THREADS; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, ts_sender, &m), 0);
    CU_ASSERT_EQUAL(test_run_until(m.loop, &m.done, 20000), 1);
    for (i = 0; i < TS_THREADS; i++)
        pthread_join(th[i], NULL);
    CU_ASSERT_EQUAL(m.ran, TS_THREADS * TS_CALLS);
    rill_timer_cancel(keep);
    test_loop_finish(m.loop);
    CU_ASSERT_EQUAL(rill__alloc_live(), live);
}

/* The intrusive timer heap against a model: timers armed, re-armed and stopped in a
   random order (seeded, so a failure replays) fire in (deadline, arming order), each
   exactly once, and the heap is empty at the end. The clock is a test's, so deadlines
   are exact. */
#define MODEL_TIMERS 300
static uint64_t model_clock;
static uint64_t model_clock_ms(void) { return model_clock; }
typedef struct { rill_timer t; int id, fired; uint64_t deadline, seq; } model_timer;
static model_timer model_timers[MODEL_TIMERS];
static int model_order[MODEL_TIMERS], model_nfired;
static void model_fire(void *ud)
{
    model_timer *it = ud;
    it->fired++;
    model_order[model_nfired++] = it->id;
}

static int model_before(const model_timer *a, const model_timer *b)
{
    return a->deadline != b->deadline ? a->deadline < b->deadline : a->seq < b->seq;
}

static void test_timer_heap_model(void)
{
    static const rill__sys_hooks hooks = { .clock_ms = model_clock_ms };
    rill_loop *loop = test_loop_new(0);
    unsigned seed, round, i, j;
    uint64_t seq = 0;

    rill__sys_hooks_set(&hooks);
    for (seed = 1; seed <= 20; seed++) {
        unsigned x = seed * 2654435761u;
        int armed = 0, bad = 0;
        model_clock = 1000;
        for (i = 0; i < MODEL_TIMERS; i++) {
            model_timers[i].id = (int)i;
            model_timers[i].fired = 0;
            model_timers[i].seq = UINT64_MAX;   /* not armed */
            rill__timer_init(&model_timers[i].t, loop, model_fire, &model_timers[i]);
        }
        for (round = 0; round < 3 * MODEL_TIMERS; round++) {
            model_timer *it;
            x = x * 1103515245u + 12345u;
            it = &model_timers[(x >> 8) % MODEL_TIMERS];
            if (((x >> 4) & 3) == 0) {
                rill__timer_stop(&it->t);
                it->seq = UINT64_MAX;
            } else {
                /* few distinct deadlines, so ties are common */
                uint64_t delay = (x >> 20) % 16;
                rill__timer_start(&it->t, delay);
                it->deadline = model_clock + delay;
                it->seq = seq++;
            }
        }
        for (i = 0; i < MODEL_TIMERS; i++)
            armed += model_timers[i].seq != UINT64_MAX;
        model_nfired = 0;
        model_clock += 100;
        rill__update_time(loop);
        rill__run_timers(loop);
        CU_ASSERT_EQUAL(model_nfired, armed);
        CU_ASSERT_PTR_NULL(loop->timer_min);
        CU_ASSERT_EQUAL(loop->ntimers, 0);
        for (i = 0; i < MODEL_TIMERS; i++)
            CU_ASSERT_EQUAL(model_timers[i].fired, model_timers[i].seq != UINT64_MAX ? 1 : 0);
        for (j = 1; j < (unsigned)model_nfired; j++)
            if (!model_before(&model_timers[model_order[j - 1]], &model_timers[model_order[j]]))
                bad++;
        if (bad)
            fprintf(stderr, "timer heap: seed %u fired %d timers out of order\n", seed, bad);
        CU_ASSERT_EQUAL(bad, 0);
    }
    rill__sys_hooks_set(NULL);
    test_loop_finish(loop);
}

static void nop_io(rill__io *io, int revents) { (void)io; (void)revents; }

/* In a child: frees a block holding a registered watcher (what = 0) or an armed
   timer (what = 1). The check must abort before free() gives the memory back. */
static int child_frees_registered(int what)
{
    pid_t pid = fork();
    int status = 0;

    if (pid == 0) {
        rill_loop *loop = rill_loop_new(NULL);
        int fds[2];
        rill__io *io = rill__malloc(sizeof *io);
        rill_timer *t = rill__malloc(sizeof *t);
        if (loop == NULL || io == NULL || t == NULL || pipe(fds) < 0)
            _exit(3);
        rill__io_init(io, fds[0], nop_io);
        rill__timer_init(t, loop, nop_cb, NULL);
        if (rill__io_start(loop, io, RILL_READABLE) < 0)
            _exit(3);
        rill__timer_start(t, 60000);
        rill__debug_set(1, 1);
        rill__free(what == 0 ? (void *)io : (void *)t);
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFSIGNALED(status) ? WTERMSIG(status) : 100 + WEXITSTATUS(status);
}

static void test_debug_check_catches_registered_free(void)
{
    rill_loop *loop = test_loop_new(0);
    rill__io *io = rill__malloc(sizeof *io);
    unsigned long before = rill__debug_violations();
    int fds[2];

    CU_ASSERT_EQUAL(child_frees_registered(0), SIGABRT);
    CU_ASSERT_EQUAL(child_frees_registered(1), SIGABRT);
    /* The same block freed after its watcher stopped is no violation. */
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    rill__io_init(io, fds[0], nop_io);
    CU_ASSERT_EQUAL(rill__io_start(loop, io, RILL_READABLE), 0);
    rill__debug_set(1, 0);
    rill__debug_check_range(io, sizeof *io);
    CU_ASSERT_EQUAL(rill__debug_violations(), before + 1);
    rill__io_stop(loop, io);
    rill__free(io);
    rill__debug_set(1, 1);
    CU_ASSERT_EQUAL(rill__debug_violations(), before + 1);
    close(fds[0]);
    close(fds[1]);
    test_loop_finish(loop);
}

/* --------------------------------------------- socketpair on each backend */

typedef struct {
    int fd;
    rill_watch *rw, *ww;
    char got[64];
    size_t ngot;
    const char *msg;
    size_t sent;
    int done;
} rw_ctx;

static void rw_readable(rill_watch *w, int revents, void *ud)
{
    rw_ctx *c = ud;
    ssize_t n;
    (void)revents;
    n = read(c->fd, c->got + c->ngot, sizeof c->got - c->ngot);
    if (n > 0)
        c->ngot += (size_t)n;
    if (c->ngot >= strlen(c->msg)) {
        c->done = 1;
        rill_watch_stop(w);
        c->rw = NULL;
    }
}

static void rw_writable(rill_watch *w, int revents, void *ud)
{
    rw_ctx *c = ud;
    ssize_t n;
    (void)revents;
    n = write(c->fd, c->msg + c->sent, 1); /* one byte per readiness: many iterations */
    if (n > 0)
        c->sent += (size_t)n;
    if (c->sent == strlen(c->msg)) {
        rill_watch_stop(w);
        c->ww = NULL;
    }
}

void test_socketpair_exchange(rill_loop *loop, int (*drive)(rill_loop *loop, const int *flag));
void test_socketpair_exchange(rill_loop *loop, int (*drive)(rill_loop *loop, const int *flag))
{
    int sv[2];
    rw_ctx r, w;

    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    memset(&r, 0, sizeof r);
    memset(&w, 0, sizeof w);
    r.fd = sv[0];
    w.fd = sv[1];
    r.msg = w.msg = "hello through the loop";
    r.rw = rill_watch_fd(loop, sv[0], RILL_READABLE, rw_readable, &r);
    w.ww = rill_watch_fd(loop, sv[1], RILL_WRITABLE, rw_writable, &w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.rw);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w.ww);
    CU_ASSERT_EQUAL(drive(loop, &r.done), 1);
    CU_ASSERT_EQUAL(r.ngot, strlen(r.msg));
    CU_ASSERT_NSTRING_EQUAL(r.got, r.msg, strlen(r.msg));
    if (r.rw)
        rill_watch_stop(r.rw);
    if (w.ww)
        rill_watch_stop(w.ww);
    close(sv[0]);
    close(sv[1]);
}

static int drive_run(rill_loop *loop, const int *flag)
{
    return test_run_until(loop, flag, 5000);
}

static void run_socketpair_poll(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_POLL);
    test_socketpair_exchange(loop, drive_run);
    test_loop_finish(loop);
}

static void test_socketpair_poll(void)
{
    if (test_have_backend(RILL_BACKEND_POLL))
        run_socketpair_poll();
}

static void test_socketpair_select(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_SELECT);
    test_socketpair_exchange(loop, drive_run);
    test_loop_finish(loop);
}

int test_loop_register(void)
{
    static const test_case cases[] = {
        { "timers fire in deadline order, ties in creation order", test_timer_order },
        { "timer heap: random arms, re-arms and stops against a model", test_timer_heap_model },
        { "cancel a timer from another timer's callback", test_timer_cancel_from_timer },
        { "a timer never fires early", test_timer_never_early },
        { "500 timers with cancellations fire in order", test_timer_heap_stress },
        { "call_soon is FIFO and never synchronous", test_call_soon_fifo_not_sync },
        { "callbacks queued by callbacks run before the next poll", test_queued_from_callback_runs_before_poll },
        { "a self-requeueing callback does not starve a ready descriptor", test_requeue_forever_does_not_starve_io },
        { "call_soon_threadsafe wakes a blocked loop within 100 ms", test_threadsafe_wakes_blocked_loop },
        { "rill_loop_stop from a callback", test_stop_from_callback },
        { "rill_loop_run returns 0 when nothing is active", test_run_returns_when_idle },
        { "run, run_once and free from a callback give RILL_EBUSY", test_run_free_from_callback_busy },
        { "rill_loop_free refuses while something lives", test_free_busy_while_alive },
        { "run_once reports whether work remains", test_run_once_reports_work },
        { "rill_loop_new checks its options", test_loop_new_checks_options },
        { "rill_version matches the macros", test_version },
        { "rill_loop_now is cached per iteration and monotonic", test_now_cached_and_monotonic },
        { "watch update pauses; stop inside its callback", test_watch_update_pause_and_stop_in_cb },
        { "poll: a watch removed during dispatch is not dispatched", test_removed_during_dispatch_poll },
        { "select: a watch removed during dispatch is not dispatched", test_removed_during_dispatch_select },
        { "select backend refuses a descriptor at FD_SETSIZE", test_select_refuses_fd_setsize },
        { "a signal runs its callback from the loop", test_signal_runs_from_loop },
        { "a signal watched by another loop is busy", test_signal_other_loop_busy },
        { "4 threads x 2000 call_soon_threadsafe while the loop runs", test_threadsafe_from_many_threads },
        { "debug check: freeing a registered watcher or armed timer aborts", test_debug_check_catches_registered_free },
        { "socketpair exchange on the poll backend", test_socketpair_poll },
        { "socketpair exchange on the select backend", test_socketpair_select },
        { NULL, NULL }
    };
    return test_add_suite("loop", cases);
}
