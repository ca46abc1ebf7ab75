/* Loop and backend corner cases a review found unsafe: timer delays past the
   clock's end, signals while the wake-up pipe is full, a failed slot growth on
   poll, select's read set on an idle write-only socket, one descriptor watched
   twice, and an embedding program's huge timeout. */
#include "support/testutil.h"
#include "rill_private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

static void count_cb(void *ud) { (*(int *)ud)++; }

static const int all_backends[] = { RILL_BACKEND_POLL, RILL_BACKEND_SELECT, RILL_BACKEND_EPOLL };
#define NBACKENDS (sizeof all_backends / sizeof all_backends[0])

/* A delay past the end of the clock saturates: wrapping would fire it at once. */
static void test_huge_delay_never_fires(void)
{
    rill_loop *loop = test_loop_new(0);
    int fired = 0, k;
    rill_timer *t[3];

    t[0] = rill_call_later(loop, UINT64_MAX, count_cb, &fired);
    t[1] = rill_call_later(loop, UINT64_MAX - 5, count_cb, &fired);
    t[2] = rill_call_later(loop, UINT64_MAX / 2 + 1, count_cb, &fired);
    for (k = 0; k < 3; k++)
        CU_ASSERT_PTR_NOT_NULL(t[k]);
    for (k = 0; k < 5; k++)
        rill_loop_run_once(loop, 10);
    CU_ASSERT_EQUAL(fired, 0);
    for (k = 0; k < 3; k++)
        rill_timer_cancel(t[k]);
    test_loop_finish(loop);
}

static int signals_seen;
static void on_usr1(int signum, void *ud)
{
    (void)ud;
    if (signum == SIGUSR1)
        signals_seen++;
}

/* Enough thread-safe calls without an iteration fill the wake-up pipe; a signal
   that arrives then must still run its callback, once. */
static void test_signal_with_full_wake_pipe(void)
{
    rill_loop *loop = test_loop_new(0);
    int soon = 0, n = 0, until;
    unsigned char b = 0;

    signals_seen = 0;
    CU_ASSERT_EQUAL_FATAL(rill_signal_watch(loop, SIGUSR1, on_usr1, NULL), 0);
    while (write(loop->wake_wr, &b, 1) == 1)
        n++;
    CU_ASSERT_EQUAL_FATAL(errno, EAGAIN);
    CU_ASSERT(n > 0);
    CU_ASSERT_EQUAL(rill_call_soon_threadsafe(loop, count_cb, &soon), 0);
    raise(SIGUSR1);
    for (until = 0; until < 50 && signals_seen == 0; until++)
        rill_loop_run_once(loop, 20);
    CU_ASSERT_EQUAL(signals_seen, 1);
    CU_ASSERT_EQUAL(soon, 1);
    rill_loop_run_once(loop, 20);
    CU_ASSERT_EQUAL(signals_seen, 1);   /* once, not again */
    CU_ASSERT_EQUAL(rill_signal_unwatch(loop, SIGUSR1), 0);
    test_loop_finish(loop);
}

static void watch_cb(rill_watch *w, int revents, void *ud)
{
    (void)w;
    (void)revents;
    (*(int *)ud)++;
}

/* The poll backend's array must grow before the registry counts a new slot:
   after a failed growth the next poll() read past the array. */
static void test_poll_growth_failure(void)
{
    rill_loop *loop;
    rill_watch *w[80];
    int sv[80][2], i, n = 0, hits = 0, refused = 0;

    if (!test_have_backend(RILL_BACKEND_POLL))
        return;
    loop = test_loop_new(RILL_BACKEND_POLL);
    /* fill the first 64 slots (the wake pipe holds one) */
    for (i = 0; i < 80; i++) {
        CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
        w[n] = NULL;
        if (loop->nslots == loop->capslots && refused == 0) {
            unsigned long k;
            /* each allocation of the growth fails in turn: the registry's, then poll's */
            for (k = 1; k <= 8 && w[n] == NULL; k++) {
                rill__alloc_fail_at(k);
                w[n] = rill_watch_fd(loop, sv[i][0], RILL_WRITABLE, watch_cb, &hits);
                rill__alloc_fail_at(0);
                if (w[n] == NULL) {
                    refused++;
                    CU_ASSERT_EQUAL(errno, ENOMEM);
                    rill_loop_run_once(loop, 0);   /* polls every counted slot */
                }
            }
        } else {
            w[n] = rill_watch_fd(loop, sv[i][0], RILL_WRITABLE, watch_cb, &hits);
        }
        CU_ASSERT_PTR_NOT_NULL_FATAL(w[n]);
        n++;
    }
    CU_ASSERT(refused >= 4);   /* the watch, three registry arrays, poll's array */
    hits = 0;
    rill_loop_run_once(loop, 0);
    CU_ASSERT_EQUAL(hits, n);   /* every socket is writable: one event each */
    for (i = 0; i < n; i++)
        rill_watch_stop(w[i]);
    for (i = 0; i < 80; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    test_loop_finish(loop);
}

typedef struct {
    int done, status;
} drain_result;

static void on_drained(rill_stream *s, int status, void *ud)
{
    drain_result *d = ud;
    (void)s;
    d->done++;
    d->status = status;
}

/* One write-only socket stream; the peer sends a byte while the stream idles.
   Data is not a hang-up: the stream must still write. A real reset still ends it. */
static void run_write_only_peer_sends(rill_loop *loop, int embed_select)
{
    rill_stream *w = NULL;
    drain_result d;
    char buf[8];
    int sv[2], k, rc;

    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL_FATAL(rill_connect_write_pipe(loop, sv[0], 0, &w), 0);
    CU_ASSERT_EQUAL(write(sv[1], "x", 1), 1);
    for (k = 0; k < 5; k++) {
        if (embed_select) {
            fd_set rd, wr;
            struct timeval tv = { 0, 20000 };
            int maxfd = -1;
            FD_ZERO(&rd);
            FD_ZERO(&wr);
            CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
            select(maxfd + 1, &rd, &wr, NULL, &tv);
            rill_loop_after_select(loop, &rd, &wr);
        } else {
            rill_loop_run_once(loop, 20);
        }
    }
    memset(&d, 0, sizeof d);
    CU_ASSERT_EQUAL(rill_write(w, "hello", 5, on_drained, &d), 0);
    for (k = 0; k < 50 && d.done == 0; k++)
        rill_loop_run_once(loop, 20);
    CU_ASSERT_EQUAL(d.done, 1);
    CU_ASSERT_EQUAL(d.status, 0);
    CU_ASSERT_EQUAL(read(sv[1], buf, sizeof buf), 5);
    /* the peer goes away: the next write fails, nothing hangs */
    close(sv[1]);
    memset(&d, 0, sizeof d);
    rc = rill_write(w, "again", 5, on_drained, &d);
    for (k = 0; k < 50 && rc == 0 && d.done == 0; k++)
        rill_loop_run_once(loop, 20);
    CU_ASSERT(rc < 0 || (d.done == 1 && d.status < 0));
    rill_abort(w);
    test_loop_finish(loop);
}

static void test_write_only_socket_data_is_not_hangup(void)
{
    size_t i;
    for (i = 0; i < NBACKENDS; i++)
        if (test_have_backend(all_backends[i]))
            run_write_only_peer_sends(test_loop_new(all_backends[i]), 0);
    run_write_only_peer_sends(test_loop_new(RILL_BACKEND_SELECT), 1);
}

/* A write pipe whose reader goes away while it idles still fails at once on
   select, where "readable" is how that hang-up shows. */
static void test_idle_write_pipe_hangup_on_select(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_SELECT);
    rill_stream *w = NULL;
    int p[2], k;

    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    CU_ASSERT_EQUAL_FATAL(rill_connect_write_pipe(loop, p[1], 0, &w), 0);
    rill_loop_run_once(loop, 10);
    close(p[0]);
    for (k = 0; k < 20 && !rill_is_closing(w); k++)
        rill_loop_run_once(loop, 20);
    CU_ASSERT(rill_is_closing(w));
    rill_abort(w);
    test_loop_finish(loop);
}

/* One registration per descriptor on every backend: a second watch of the same
   descriptor is refused, and the first one keeps its events. */
static void test_same_fd_twice(void)
{
    size_t i;
    for (i = 0; i < NBACKENDS; i++) {
        rill_loop *loop;
        rill_watch *a, *b;
        int sv[2], hits_a = 0, hits_b = 0;

        if (!test_have_backend(all_backends[i]))
            continue;
        loop = test_loop_new(all_backends[i]);
        CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        a = rill_watch_fd(loop, sv[0], RILL_READABLE, watch_cb, &hits_a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        b = rill_watch_fd(loop, sv[0], RILL_WRITABLE, watch_cb, &hits_b);
        CU_ASSERT_PTR_NULL(b);
        CU_ASSERT_EQUAL(errno, EEXIST);
        CU_ASSERT_EQUAL(write(sv[1], "x", 1), 1);
        rill_loop_run_once(loop, 100);
        CU_ASSERT_EQUAL(hits_a, 1);
        CU_ASSERT_EQUAL(hits_b, 0);
        rill_watch_stop(a);
        if (b != NULL)
            rill_watch_stop(b);
        close(sv[0]);
        close(sv[1]);
        test_loop_finish(loop);
    }
}

/* The program's own timeout may be far longer than an int of milliseconds:
   it must not wrap into a short one that hides rill's own, sooner deadline. */
static void test_embed_huge_timeout(void)
{
    rill_loop *loop = test_loop_new(0);
    fd_set rd, wr;
    struct timeval tv;
    int maxfd = -1, fired = 0;
    rill_timer *t = rill_call_later(loop, 10000, count_cb, &fired);

    FD_ZERO(&rd);
    FD_ZERO(&wr);
    tv.tv_sec = (time_t)4294968;   /* about 50 days: times 1000 wraps an int to 704 */
    tv.tv_usec = 0;
    CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
    CU_ASSERT(tv.tv_sec <= 10 && tv.tv_sec >= 8);   /* rill's timer is the sooner */
    CU_ASSERT(tv.tv_usec >= 0 && tv.tv_usec < 1000000);
    rill_loop_after_select(loop, &rd, &wr);
    tv.tv_sec = 3;
    tv.tv_usec = 0;
    CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
    CU_ASSERT_EQUAL(tv.tv_sec, 3);   /* theirs is the sooner */
    rill_loop_after_select(loop, &rd, &wr);
    CU_ASSERT_EQUAL(fired, 0);
    rill_timer_cancel(t);
    test_loop_finish(loop);
}

int test_loop_safety_register(void)
{
    static const test_case cases[] = {
        { "a delay past the clock's end never fires", test_huge_delay_never_fires },
        { "a signal while the wake-up pipe is full runs once", test_signal_with_full_wake_pipe },
        { "poll: a failed array growth leaves no slot counted", test_poll_growth_failure },
        { "a peer's data is no hang-up of an idle write-only socket", test_write_only_socket_data_is_not_hangup },
        { "select: an idle write pipe hears its reader go", test_idle_write_pipe_hangup_on_select },
        { "one descriptor watched twice is refused on every backend", test_same_fd_twice },
        { "embedding: a huge program timeout does not wrap", test_embed_huge_timeout },
        { NULL, NULL }
    };
    return test_add_suite("loop_safety", cases);
}
