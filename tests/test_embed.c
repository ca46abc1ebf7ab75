/* Embedding: rill driven by the program's own select() or poll() loop. */
#include "support/testutil.h"
#include "rill_private.h"

#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

void test_socketpair_exchange(rill_loop *loop, int (*drive)(rill_loop *loop, const int *flag));

/* A program's own select() loop that never calls rill_loop_run. */
static int drive_select(rill_loop *loop, const int *flag)
{
    uint64_t end = test_now_ms() + 5000;
    while (!*flag && test_now_ms() < end) {
        fd_set rd, wr;
        struct timeval tv = { 1, 0 };
        int maxfd = -1, rc;
        FD_ZERO(&rd);
        FD_ZERO(&wr);
        if (rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv) < 0)
            return 0;
        rc = select(maxfd + 1, &rd, &wr, NULL, tv.tv_sec < 0 ? NULL : &tv);
        if (rc < 0)
            rill_loop_after_select(loop, NULL, NULL);
        else
            rill_loop_after_select(loop, &rd, &wr);
    }
    return *flag;
}

static int drive_poll(rill_loop *loop, const int *flag)
{
    uint64_t end = test_now_ms() + 5000;
    while (!*flag && test_now_ms() < end) {
        struct pollfd fds[16];
        size_t n = 0;
        int timeout = 1000, rc;
        if (rill_loop_prepare_poll(loop, fds, 16, &n, &timeout) < 0)
            return 0;
        rc = poll(fds, (nfds_t)n, timeout);
        if (rc < 0)
            rill_loop_after_poll(loop, NULL, 0);
        else
            rill_loop_after_poll(loop, fds, n);
    }
    return *flag;
}

static void test_exchange_in_select_loop(void)
{
    rill_loop *loop = test_loop_new(0);
    test_socketpair_exchange(loop, drive_select);
    test_loop_finish(loop);
}

static void run_exchange_in_poll_loop(void)
{
    rill_loop *loop = test_loop_new(0);
    test_socketpair_exchange(loop, drive_poll);
    test_loop_finish(loop);
}

static void test_exchange_in_poll_loop(void)
{
    if (test_have_backend(RILL_BACKEND_POLL))
        run_exchange_in_poll_loop();
}

typedef struct { int calls; } cnt;
static void count_watch(rill_watch *w, int revents, void *ud) { (void)w; (void)revents; ((cnt *)ud)->calls++; }
static void count_cb(void *ud) { ((cnt *)ud)->calls++; }

static void test_after_select_null_dispatches_nothing(void)
{
    rill_loop *loop = test_loop_new(0);
    int sv[2], maxfd = -1;
    fd_set rd, wr;
    struct timeval tv = { -1, 0 };
    cnt io, soon;
    rill_watch *w;

    memset(&io, 0, sizeof io);
    memset(&soon, 0, sizeof soon);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    w = rill_watch_fd(loop, sv[0], RILL_WRITABLE, count_watch, &io);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_EQUAL(rill_call_soon(loop, count_cb, &soon), 0);
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
    CU_ASSERT(FD_ISSET(sv[0], &wr));
    CU_ASSERT(maxfd >= sv[0]);
    CU_ASSERT_EQUAL(tv.tv_sec, 0); /* a queued callback: no waiting */
    CU_ASSERT_EQUAL(tv.tv_usec, 0);
    /* as after select() failed with EINTR: the sets are undefined and must not be read */
    rill_loop_after_select(loop, NULL, NULL);
    CU_ASSERT_EQUAL(io.calls, 0);
    CU_ASSERT_EQUAL(soon.calls, 1); /* queued callbacks still run */
    rill_watch_stop(w);
    close(sv[0]);
    close(sv[1]);
    test_loop_finish(loop);
}

static void test_reused_descriptor_not_dispatched(void)
{
    rill_loop *loop = test_loop_new(0);
    int a[2], b[2], fd, maxfd = -1;
    fd_set rd, wr;
    struct timeval tv = { -1, 0 };
    cnt first, second;
    rill_watch *w1, *w2;

    memset(&first, 0, sizeof first);
    memset(&second, 0, sizeof second);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    w1 = rill_watch_fd(loop, a[0], RILL_READABLE, count_watch, &first);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w1);
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
    CU_ASSERT(FD_ISSET(a[0], &rd));
    /* between prepare and after: the watched descriptor closes and its number is reused */
    fd = a[0];
    rill_watch_stop(w1);
    close(a[0]);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    if (b[0] != fd) {
        CU_ASSERT_EQUAL_FATAL(dup2(b[0], fd), fd);
        close(b[0]);
        b[0] = fd;
    }
    CU_ASSERT_EQUAL(write(b[1], "x", 1), 1);
    w2 = rill_watch_fd(loop, b[0], RILL_READABLE, count_watch, &second);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w2);
    /* the program's select() said the old descriptor was readable */
    FD_ZERO(&rd);
    FD_SET(fd, &rd);
    rill_loop_after_select(loop, &rd, &wr);
    CU_ASSERT_EQUAL(first.calls, 0);
    CU_ASSERT_EQUAL(second.calls, 0);
    rill_watch_stop(w2);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    test_loop_finish(loop);
}

static void test_prepare_select_timeouts(void)
{
    rill_loop *loop = test_loop_new(0);
    fd_set rd, wr;
    struct timeval tv;
    int maxfd = -1;
    rill_timer *t;

    FD_ZERO(&rd);
    FD_ZERO(&wr);
    tv.tv_sec = -1;
    tv.tv_usec = 0;
    CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
    CU_ASSERT(tv.tv_sec < 0); /* nothing due: no deadline */
    CU_ASSERT(maxfd >= 0);    /* rill's own wake-up descriptor */
    t = rill_call_later(loop, 1500, count_cb, NULL);
    tv.tv_sec = 10;
    tv.tv_usec = 0;
    CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
    CU_ASSERT(tv.tv_sec == 1 || (tv.tv_sec == 0 && tv.tv_usec > 0));
    tv.tv_sec = 0;
    tv.tv_usec = 100000;
    CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
    CU_ASSERT_EQUAL(tv.tv_sec, 0); /* the program's shorter timeout stays */
    CU_ASSERT_EQUAL(tv.tv_usec, 100000);
    CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, NULL), RILL_EINVAL);
    rill_timer_cancel(t);
    rill_loop_after_select(loop, NULL, NULL);
    test_loop_finish(loop);
}

static void run_prepare_poll_enobufs(void)
{
    rill_loop *loop = test_loop_new(0);
    struct pollfd fds[4];
    size_t n = 99;
    int timeout = -1, sv[2];
    rill_watch *w;

    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    w = rill_watch_fd(loop, sv[0], RILL_READABLE, count_watch, NULL);
    CU_ASSERT_EQUAL(rill_loop_prepare_poll(loop, fds, 1, &n, &timeout), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(n, 2); /* the wake-up pipe and the watch */
    CU_ASSERT_EQUAL(rill_loop_prepare_poll(loop, fds, 4, &n, &timeout), 0);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(timeout, -1);
    rill_loop_after_poll(loop, NULL, 0);
    rill_watch_stop(w);
    close(sv[0]);
    close(sv[1]);
    test_loop_finish(loop);
}

static void test_prepare_poll_enobufs(void)
{
    if (test_have_backend(RILL_BACKEND_POLL))
        run_prepare_poll_enobufs();
}

typedef struct { rill_loop *loop; int fired; } tick;
static void tick_cb(void *ud) { ((tick *)ud)->fired = 1; }

static void run_timer_in_embedded_loop(void)
{
    rill_loop *loop = test_loop_new(0);
    tick t;
    memset(&t, 0, sizeof t);
    CU_ASSERT_PTR_NOT_NULL(rill_call_later(loop, 30, tick_cb, &t));
    CU_ASSERT_EQUAL(drive_poll(loop, &t.fired), 1);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    test_loop_finish(loop);
}

static void test_timer_in_embedded_loop(void)
{
    if (test_have_backend(RILL_BACKEND_POLL))
        run_timer_in_embedded_loop();
}

int test_embed_register(void)
{
    static const test_case cases[] = {
        { "socketpair exchange inside a plain select() loop", test_exchange_in_select_loop },
        { "socketpair exchange inside a plain poll() loop", test_exchange_in_poll_loop },
        { "after_select(NULL, NULL) dispatches no descriptor", test_after_select_null_dispatches_nothing },
        { "a descriptor reused between prepare and after is not dispatched", test_reused_descriptor_not_dispatched },
        { "prepare_select lowers the timeout to rill's deadline only", test_prepare_select_timeouts },
        { "prepare_poll reports RILL_ENOBUFS with the needed count", test_prepare_poll_enobufs },
        { "a timer fires inside a plain poll() loop", test_timer_in_embedded_loop },
        { NULL, NULL }
    };
    return test_add_suite("embed", cases);
}
