/* Backend behaviour that must be the same on epoll, poll, select and embedding:
   hang-up detection of an idle write stream, slot growth under allocation
   failure, one watcher per descriptor, and far deadlines in embedding. */
#include "support/testutil.h"
#include "rill_private.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

static const int backends[] = { RILL_BACKEND_EPOLL, RILL_BACKEND_POLL, RILL_BACKEND_SELECT };
#define NBACKENDS (sizeof backends / sizeof backends[0])

/* One iteration through the program's own select() loop. */
static void embed_select_once(rill_loop *loop, int ms)
{
    fd_set rd, wr;
    struct timeval tv;
    int maxfd = -1, rc;
    tv.tv_sec = 0;
    tv.tv_usec = ms * 1000;
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    CU_ASSERT_EQUAL_FATAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
    rc = select(maxfd + 1, &rd, &wr, NULL, tv.tv_sec < 0 ? NULL : &tv);
    rill_loop_after_select(loop, rc < 0 ? NULL : &rd, rc < 0 ? NULL : &wr);
}

static void iterate(rill_loop *loop, int embed, int ms)
{
    if (embed)
        embed_select_once(loop, ms);
    else
        rill_loop_run_once(loop, ms);
}

typedef struct { int done; int status; } wr_result;

static void write_done(rill_stream *s, int status, void *ud)
{
    wr_result *r = ud;
    (void)s;
    r->done = 1;
    r->status = status;
}

static void drain_read(int fd, size_t n)
{
    char buf[64];
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf, sizeof buf < n - got ? sizeof buf : n - got);
        CU_ASSERT_FATAL(k > 0);
        got += (size_t)k;
    }
}

/* A loop of the backend with an idle write-only stream on sv[0]; NULL when this
   build lacks the backend (the test passes as skipped). */
static rill_loop *write_stream_loop(int backend, int sv[2], rill_stream **s)
{
    rill_loop *loop;

    if (!test_have_backend(backend))
        return NULL;
    loop = test_loop_new(backend);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL_FATAL(rill_connect_write_pipe(loop, sv[0], 0, s), 0);
    return loop;
}

/* A write-only stream on a socket whose peer sends a byte: the byte is not a hang-up,
   the stream stays usable, and the peer's later close is still heard. */
static void data_is_not_hangup(int backend, int embed)
{
    rill_stream *s = NULL;
    wr_result r = { 0, 0 };
    int sv[2], i;
    rill_loop *loop = write_stream_loop(backend, sv, &s);

    if (loop == NULL)
        return;
    CU_ASSERT_EQUAL_FATAL(write(sv[1], "x", 1), 1);
    for (i = 0; i < 5; i++)
        iterate(loop, embed, 10);
    CU_ASSERT_FALSE(rill_is_closing(s));
    CU_ASSERT_EQUAL(rill_write(s, "hello", 5, write_done, &r), 0);
    for (i = 0; i < 50 && !r.done; i++)
        iterate(loop, embed, 10);
    CU_ASSERT_EQUAL(r.status, 0);
    drain_read(sv[1], 5);
    /* The unread byte stays for nobody; a real hang-up after it still ends the
       stream at the latest with the next write. */
    close(sv[1]);
    r.done = 0;
    for (i = 0; i < 20; i++)
        iterate(loop, embed, 10);
    if (!rill_is_closing(s)) {
        int rc = rill_write(s, "y", 1, write_done, &r);
        for (i = 0; i < 50 && rc == 0 && !r.done; i++)
            iterate(loop, embed, 10);
        CU_ASSERT(rc < 0 || (r.done && r.status < 0));
    }
    rill_abort(s);
    test_loop_finish(loop);
}

/* With no data in between, a peer's close ends an idle write-only stream by itself. */
static void hangup_is_heard(int backend, int embed)
{
    rill_stream *s = NULL;
    int sv[2], i;
    rill_loop *loop = write_stream_loop(backend, sv, &s);

    if (loop == NULL)
        return;
    /* Without poll() select cannot tell this hang-up from EOF (rill_loop(3)
       NOTES): the next write hears it instead. */
    if (backend == RILL_BACKEND_SELECT && !test_have_backend(RILL_BACKEND_POLL)) {
        rill_abort(s);
        close(sv[1]);
        test_loop_finish(loop);
        return;
    }
    iterate(loop, embed, 0);
    close(sv[1]);
    for (i = 0; i < 50 && !rill_is_closing(s); i++)
        iterate(loop, embed, 10);
    CU_ASSERT_TRUE(rill_is_closing(s));
    rill_abort(s);
    test_loop_finish(loop);
}

static void test_select_data_not_hangup(void) { data_is_not_hangup(RILL_BACKEND_SELECT, 0); }
static void test_embed_select_data_not_hangup(void) { data_is_not_hangup(RILL_BACKEND_SELECT, 1); }
static void test_poll_data_not_hangup(void) { data_is_not_hangup(RILL_BACKEND_POLL, 0); }
static void test_epoll_data_not_hangup(void) { data_is_not_hangup(RILL_BACKEND_EPOLL, 0); }
static void test_select_hangup_heard(void) { hangup_is_heard(RILL_BACKEND_SELECT, 0); }
static void test_embed_select_hangup_heard(void) { hangup_is_heard(RILL_BACKEND_SELECT, 1); }
static void test_poll_hangup_heard(void) { hangup_is_heard(RILL_BACKEND_POLL, 0); }

static void nop_watch(rill_watch *w, int revents, void *ud)
{
    (void)w; (void)revents; (void)ud;
}

/* The registration that needs the slot array to grow fails: the loop's slot count
   must not count the slot, else poll() reads past its pollfd array (ASan). */
static void test_slot_growth_failure(void)
{
    size_t b;
    for (b = 0; b < NBACKENDS; b++) {
        rill_loop *loop;
        rill_watch *w[80];
        int fds[80], sv[2];
        size_t i, n = 0, before;
        unsigned long k;

        if (!test_have_backend(backends[b]))
            continue;
        loop = test_loop_new(backends[b]);
        CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        while (loop->capslots == 0 || loop->nslots < loop->capslots) {
            CU_ASSERT_FATAL(n < 80);
            fds[n] = dup(sv[0]);
            w[n] = rill_watch_fd(loop, fds[n], RILL_READABLE, nop_watch, NULL);
            CU_ASSERT_FATAL(w[n] != NULL);
            n++;
        }
        before = loop->nslots;
        for (k = 1; k < 10; k++) {
            int fd = dup(sv[0]);
            rill_watch *x;
            rill__alloc_fail_at(k);
            x = rill_watch_fd(loop, fd, RILL_READABLE, nop_watch, NULL);
            rill__alloc_fail_at(0);
            if (x != NULL) {
                rill_watch_stop(x);
                close(fd);
                break;
            }
            CU_ASSERT_EQUAL(loop->nslots, before);
            close(fd);
            CU_ASSERT(rill_loop_run_once(loop, 0) >= 0);
        }
        CU_ASSERT(k > 1 && k < 10);
        for (i = 0; i < n; i++) {
            rill_watch_stop(w[i]);
            close(fds[i]);
        }
        close(sv[0]);
        close(sv[1]);
        test_loop_finish(loop);
    }
}

typedef struct { int calls; } watch_count;

static void count_watch(rill_watch *w, int revents, void *ud)
{
    (void)w; (void)revents;
    ((watch_count *)ud)->calls++;
}

/* One watcher per descriptor on every backend: a second is refused with
   RILL_EEXIST and the first keeps its events. */
static void test_same_fd_twice(void)
{
    size_t b;
    for (b = 0; b < NBACKENDS; b++) {
        rill_loop *loop;
        rill_watch *w1, *w2, *w3;
        rill_stream *s = NULL;
        watch_count c1 = { 0 }, c2 = { 0 };
        int sv[2], i;

        if (!test_have_backend(backends[b]))
            continue;
        loop = test_loop_new(backends[b]);
        CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        w1 = rill_watch_fd(loop, sv[0], RILL_READABLE, count_watch, &c1);
        CU_ASSERT_FATAL(w1 != NULL);
        errno = 0;
        w2 = rill_watch_fd(loop, sv[0], RILL_READABLE, count_watch, &c2);
        CU_ASSERT_PTR_NULL(w2);
        CU_ASSERT_EQUAL(-errno, RILL_EEXIST);
        CU_ASSERT_EQUAL(rill_connect_write_pipe(loop, sv[0], 0, &s), RILL_EEXIST);
        CU_ASSERT_EQUAL(write(sv[1], "x", 1), 1);
        for (i = 0; i < 20 && c1.calls == 0; i++)
            rill_loop_run_once(loop, 10);
        CU_ASSERT(c1.calls > 0);
        CU_ASSERT_EQUAL(c2.calls, 0);
        if (w2 != NULL)
            rill_watch_stop(w2);
        rill_watch_stop(w1);
        /* Stopped, the descriptor can be watched again. */
        w3 = rill_watch_fd(loop, sv[0], RILL_READABLE, count_watch, &c2);
        CU_ASSERT_PTR_NOT_NULL(w3);
        if (w3 != NULL)
            rill_watch_stop(w3);
        close(sv[0]);
        close(sv[1]);
        test_loop_finish(loop);
    }
}

static void never(void *ud) { (void)ud; }

/* A far timer and a far deadline of the program: the timeout handed back is the
   nearer one, positive, never an overflowed value. */
static void test_embed_far_timeout(void)
{
    rill_loop *loop = test_loop_new(0);
    rill_timer *t = rill_call_later(loop, (uint64_t)1 << 40, never, NULL);
    fd_set rd, wr;
    struct timeval tv;
    int maxfd = -1;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    tv.tv_sec = -1;
    tv.tv_usec = 0;
    CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
    CU_ASSERT(tv.tv_sec >= 2000000 && tv.tv_usec >= 0 && tv.tv_usec < 1000000);
    /* The program's own deadline, far beyond what an int of milliseconds holds. */
    tv.tv_sec = (time_t)(sizeof(time_t) > 4 ? ((time_t)1 << 50) : INT_MAX);
    tv.tv_usec = 0;
    CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
    CU_ASSERT(tv.tv_sec >= 2000000 && tv.tv_sec <= 2147484 && tv.tv_usec >= 0);
    /* Just past an int of milliseconds: must not wrap to a short wait. */
    tv.tv_sec = 4294968;
    tv.tv_usec = 0;
    CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
    CU_ASSERT(tv.tv_sec >= 2000000);
    rill_loop_after_select(loop, NULL, NULL);
    rill_timer_cancel(t);
    test_loop_finish(loop);
}

int test_backends_register(void)
{
    static const test_case cases[] = {
        { "select_data_not_hangup", test_select_data_not_hangup },
        { "embed_select_data_not_hangup", test_embed_select_data_not_hangup },
        { "poll_data_not_hangup", test_poll_data_not_hangup },
        { "epoll_data_not_hangup", test_epoll_data_not_hangup },
        { "select_hangup_heard", test_select_hangup_heard },
        { "embed_select_hangup_heard", test_embed_select_hangup_heard },
        { "poll_hangup_heard", test_poll_hangup_heard },
        { "slot_growth_failure", test_slot_growth_failure },
        { "same_fd_twice", test_same_fd_twice },
        { "embed_far_timeout", test_embed_far_timeout },
        { NULL, NULL }
    };
    return test_add_suite("backends", cases);
}
