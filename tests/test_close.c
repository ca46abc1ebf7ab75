/* The close machine (graceful close, abort, wait_closed, the close timeout,
   closing from inside every kind of callback), extra info, and adopting a
   socket with rill_connect_sock. */
#include "support/testutil.h"
#include "support/streams.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#define HIGH 65536u

/* ------------------------------------------------------------ recording */

enum { EV_READ = 1, EV_DRAIN, EV_CLOSE, EV_WAITC };

static void done_cb(rill_stream *s, int status, void *ud)
{
    int k = (int)(intptr_t)ud;
    TEST_ASSERT_NOT_SYNC();
    CU_ASSERT_PTR_NOT_NULL(s);
    test_log_add(k / 100, k % 100, status, 0);
}

static void read_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    (void)s;
    (void)data;
    (void)len;
    TEST_ASSERT_NOT_SYNC();
    test_log_add(EV_READ, (int)(intptr_t)ud % 100, status, 0);
}

static char big[1u << 20];

/* ================================================================ closing */

/* A graceful close sends every buffered byte, then the peer reads EOF; the
   close callback runs exactly once, after that. */
static void test_close_flushes_then_eof(void)
{
    rill_loop *loop = test_loop_new(0);
    const size_t N = 512 * 1024;
    int sv[2];
    rill_stream *s;
    test_sink k;

    test_unix_pair(SOCK_STREAM, sv, 4096);
    s = test_adopt(loop, sv[0], NULL);
    test_log_reset();
    CU_ASSERT_EQUAL(rill_write(s, big, N, NULL, NULL), 0);
    CU_ASSERT(rill_get_write_buffer_size(s) > 0);
    CU_ASSERT_EQUAL(rill_is_closing(s), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, done_cb, TEST_TAG(EV_CLOSE, 1))), 0);
    CU_ASSERT_EQUAL(rill_is_closing(s), 1);
    CU_ASSERT_EQUAL(test_log.n, 0);
    test_sink_start(&k, loop, sv[1], 8192);
    TEST_RUN_UNTIL(loop, k.eof && test_log_count(EV_CLOSE) == 1, 10000);
    CU_ASSERT_EQUAL(k.err, 0);
    CU_ASSERT_EQUAL(k.total, N);
    CU_ASSERT_EQUAL(k.eof, 1);
    CU_ASSERT_EQUAL(test_log_status(EV_CLOSE, 1), 0);
    test_sink_stop(&k);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(test_log.n, 1);
    close(sv[1]);
}

/* rill_close finishes a pending read with RILL_ECANCELED first, then the close
   callbacks, then every wait_closed callback (one added from the close
   callback included); each exactly once. */
static rill_stream *wc_stream;

static void close_cb_adds_waiter(rill_stream *s, int status, void *ud)
{
    done_cb(s, status, ud);
    CU_ASSERT_EQUAL(rill_is_closing(s), 1);   /* still valid inside its last callbacks */
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, done_cb, TEST_TAG(EV_WAITC, 9))), 0);
}

static void test_close_order_and_waiters(void)
{
    rill_loop *loop = test_loop_new(0);
    int sv[2], i;
    rill_stream *s;

    test_unix_pair(SOCK_STREAM, sv, 0);
    s = wc_stream = test_adopt(loop, sv[0], NULL);
    test_log_reset();
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, read_cb, TEST_TAG(EV_READ, 1))), 0);
    for (i = 1; i <= 3; i++)
        CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, done_cb, TEST_TAG(EV_WAITC, i))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, NULL, NULL)), RILL_EINVAL);
    TEST_RUN_UNTIL(loop, 0, 20);
    CU_ASSERT_EQUAL(test_log.n, 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, close_cb_adds_waiter, TEST_TAG(EV_CLOSE, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, done_cb, TEST_TAG(EV_CLOSE, 2))), 0);   /* a second closer */
    CU_ASSERT_EQUAL(test_log.n, 0);
    TEST_RUN_UNTIL(loop, test_log_count(EV_WAITC) == 4, 3000);
    CU_ASSERT_EQUAL(test_log.n, 7);
    CU_ASSERT_EQUAL(test_log_index(EV_READ, 1), 0);
    CU_ASSERT_EQUAL(test_log_status(EV_READ, 1), RILL_ECANCELED);
    CU_ASSERT_EQUAL(test_log_index(EV_CLOSE, 1), 1);
    CU_ASSERT_EQUAL(test_log_index(EV_CLOSE, 2), 2);
    CU_ASSERT_EQUAL(test_log_status(EV_CLOSE, 1), 0);
    CU_ASSERT_EQUAL(test_log_status(EV_CLOSE, 2), 0);
    for (i = 1; i <= 3; i++) {
        CU_ASSERT_EQUAL(test_log_index(EV_WAITC, i), 2 + i);
        CU_ASSERT_EQUAL(test_log_status(EV_WAITC, i), 0);
    }
    CU_ASSERT_EQUAL(test_log_status(EV_WAITC, 9), 0);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(test_log.n, 7);
    close(sv[1]);
}

/* Unread data (in rill's buffer and still in the socket) does not hold up a
   close: wait_closed and the close callback complete. */
static void test_close_with_unread_data(void)
{
    rill_loop *loop = test_loop_new(0);
    int sv[2];
    rill_stream *s;
    ssize_t n;

    test_unix_pair(SOCK_STREAM, sv, 0);
    s = test_adopt(loop, sv[0], NULL);
    test_log_reset();
    n = write(sv[1], big, 4096);
    CU_ASSERT_EQUAL(n, 4096);
    TEST_RUN_UNTIL(loop, 0, 30);   /* read into rill's buffer, no read asked */
    CU_ASSERT_EQUAL(rill_pause_reading(s), 0);
    n = write(sv[1], big, 4096);
    CU_ASSERT_EQUAL(n, 4096);
    TEST_RUN_UNTIL(loop, 0, 30);   /* left in the socket */
    CU_ASSERT_EQUAL(rill_at_eof(s), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, done_cb, TEST_TAG(EV_WAITC, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, done_cb, TEST_TAG(EV_CLOSE, 1))), 0);
    TEST_RUN_UNTIL(loop, test_log_count(EV_WAITC) == 1, 3000);
    CU_ASSERT_EQUAL(test_log_status(EV_CLOSE, 1), 0);
    CU_ASSERT_EQUAL(test_log_status(EV_WAITC, 1), 0);
    test_loop_finish(loop);
    close(sv[1]);
}

/* Drains pending at a graceful close get 0 once the data is out, before the
   close callback. */
static void test_close_graceful_drains_get_zero(void)
{
    rill_loop *loop = test_loop_new(0);
    const size_t N = 512 * 1024;
    int sv[2];
    rill_stream *s;
    test_sink k;

    test_unix_pair(SOCK_STREAM, sv, 4096);
    s = test_adopt(loop, sv[0], NULL);
    test_log_reset();
    CU_ASSERT_EQUAL(rill_write(s, big, N, NULL, NULL), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, "x", 1, done_cb, TEST_TAG(EV_DRAIN, 2))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, done_cb, TEST_TAG(EV_CLOSE, 1))), 0);
    test_sink_start(&k, loop, sv[1], 16384);
    TEST_RUN_UNTIL(loop, test_log_count(EV_CLOSE) == 1 && k.eof, 10000);
    CU_ASSERT_EQUAL(k.total, N + 1);
    CU_ASSERT_EQUAL(test_log_status(EV_DRAIN, 1), 0);
    CU_ASSERT_EQUAL(test_log_status(EV_DRAIN, 2), 0);
    CU_ASSERT_EQUAL(test_log_status(EV_CLOSE, 1), 0);
    CU_ASSERT(test_log_index(EV_DRAIN, 2) >= 0 && test_log_index(EV_DRAIN, 2) < test_log_index(EV_CLOSE, 1));
    test_sink_stop(&k);
    test_loop_finish(loop);
    close(sv[1]);
}

/* rill_abort drops the buffered bytes (the peer gets only what the socket had
   taken, then EOF) and answers read, drains, closers, then wait_closed —
   from the loop, never inside rill_abort. */
static void test_abort_drops_and_orders(void)
{
    rill_loop *loop = test_loop_new(0);
    const size_t N = sizeof big;
    size_t buffered;
    int sv[2];
    rill_stream *s;
    test_sink k;

    test_unix_pair(SOCK_STREAM, sv, 4096);
    s = test_adopt(loop, sv[0], NULL);
    test_log_reset();
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 10, read_cb, TEST_TAG(EV_READ, 1))), 0);
    CU_ASSERT_EQUAL(rill_write(s, big, N, NULL, NULL), 0);
    buffered = rill_get_write_buffer_size(s);
    CU_ASSERT(buffered > HIGH);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 2))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, done_cb, TEST_TAG(EV_WAITC, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, done_cb, TEST_TAG(EV_WAITC, 2))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, done_cb, TEST_TAG(EV_CLOSE, 1))), 0);   /* graceful, stuck */
    TEST_RUN_UNTIL(loop, 0, 30);
    CU_ASSERT_EQUAL(test_log_count(EV_CLOSE), 0);
    CU_ASSERT_EQUAL(test_log_count(EV_READ), 1);   /* the close already cancelled the read */
    buffered = rill_get_write_buffer_size(s);
    TEST_CALLV(rill_abort(s));
    CU_ASSERT_EQUAL(test_log_count(EV_DRAIN), 0);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), 0);
    TEST_RUN_UNTIL(loop, test_log_count(EV_WAITC) == 2, 3000);
    CU_ASSERT_EQUAL(test_log.n, 6);
    CU_ASSERT_EQUAL(test_log_index(EV_READ, 1), 0);
    CU_ASSERT_EQUAL(test_log_status(EV_READ, 1), RILL_ECANCELED);
    CU_ASSERT_EQUAL(test_log_index(EV_DRAIN, 1), 1);
    CU_ASSERT_EQUAL(test_log_index(EV_DRAIN, 2), 2);
    CU_ASSERT_EQUAL(test_log_index(EV_CLOSE, 1), 3);
    CU_ASSERT_EQUAL(test_log_index(EV_WAITC, 1), 4);
    CU_ASSERT_EQUAL(test_log_index(EV_WAITC, 2), 5);
    CU_ASSERT_EQUAL(test_log_status(EV_DRAIN, 1), RILL_ECANCELED);
    CU_ASSERT_EQUAL(test_log_status(EV_DRAIN, 2), RILL_ECANCELED);
    CU_ASSERT_EQUAL(test_log_status(EV_CLOSE, 1), RILL_ECANCELED);
    CU_ASSERT_EQUAL(test_log_status(EV_WAITC, 1), 0);
    CU_ASSERT_EQUAL(test_log_status(EV_WAITC, 2), 0);

    test_sink_start(&k, loop, sv[1], 0);
    TEST_RUN_UNTIL(loop, k.eof || k.err, 3000);
    CU_ASSERT_EQUAL(k.eof, 1);
    CU_ASSERT_EQUAL(k.total, N - buffered);   /* exactly what the socket had taken */
    test_sink_stop(&k);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(test_log.n, 6);
    close(sv[1]);
}

/* A close that cannot flush is aborted after the close timeout: drains get
   RILL_ECANCELED, the close callback RILL_ETIMEDOUT, wait_closed 0 — never
   before the timeout. */
static void test_close_timeout(void)
{
    rill_loop *loop = test_loop_new(0);
    uint64_t t0, elapsed = 0;
    int sv[2];
    rill_stream *s;

    test_unix_pair(SOCK_STREAM, sv, 4096);
    s = test_adopt(loop, sv[0], NULL);
    test_log_reset();
    CU_ASSERT_EQUAL(rill_write(s, big, sizeof big, NULL, NULL), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 2))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, done_cb, TEST_TAG(EV_WAITC, 1))), 0);
    CU_ASSERT_EQUAL(rill_set_close_timeout(NULL, 100), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_set_close_timeout(s, 100), 0);
    t0 = test_now_ms();
    CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, done_cb, TEST_TAG(EV_CLOSE, 1))), 0);
    while (test_log_count(EV_CLOSE) == 0 && test_now_ms() - t0 < 3000)
        rill_loop_run_once(loop, 10);
    elapsed = test_now_ms() - t0;
    CU_ASSERT(elapsed >= 100);
    CU_ASSERT(elapsed < 2000);
    CU_ASSERT_EQUAL(test_log_status(EV_CLOSE, 1), RILL_ETIMEDOUT);
    CU_ASSERT_EQUAL(test_log_status(EV_DRAIN, 1), RILL_ECANCELED);
    CU_ASSERT_EQUAL(test_log_status(EV_DRAIN, 2), RILL_ECANCELED);
    CU_ASSERT_EQUAL(test_log_index(EV_DRAIN, 2), 1);
    CU_ASSERT_EQUAL(test_log_index(EV_CLOSE, 1), 2);
    TEST_RUN_UNTIL(loop, test_log_count(EV_WAITC) == 1, 1000);
    CU_ASSERT_EQUAL(test_log_status(EV_WAITC, 1), 0);
    CU_ASSERT_EQUAL(test_log_index(EV_WAITC, 1), 3);
    test_loop_finish(loop);
    close(sv[1]);
}

/* A timeout set while the close is already flushing counts from then. */
static void test_close_timeout_set_while_closing(void)
{
    rill_loop *loop = test_loop_new(0);
    uint64_t t0;
    int sv[2];
    rill_stream *s;

    test_unix_pair(SOCK_STREAM, sv, 4096);
    s = test_adopt(loop, sv[0], NULL);
    test_log_reset();
    CU_ASSERT_EQUAL(rill_write(s, big, sizeof big, NULL, NULL), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, done_cb, TEST_TAG(EV_CLOSE, 1))), 0);
    TEST_RUN_UNTIL(loop, 0, 30);
    CU_ASSERT_EQUAL(test_log.n, 0);
    t0 = test_now_ms();
    CU_ASSERT_EQUAL(rill_set_close_timeout(s, 50), 0);
    TEST_RUN_UNTIL(loop, test_log_count(EV_CLOSE) == 1, 3000);
    CU_ASSERT(test_now_ms() - t0 >= 50);
    CU_ASSERT_EQUAL(test_log_status(EV_CLOSE, 1), RILL_ETIMEDOUT);
    test_loop_finish(loop);
    close(sv[1]);
}

/* A close timeout that a quick close never reaches: 0, and no timer lingers. */
static void test_close_timeout_not_reached(void)
{
    rill_loop *loop = test_loop_new(0);
    int sv[2];
    rill_stream *s;
    test_sink k;

    test_unix_pair(SOCK_STREAM, sv, 4096);
    s = test_adopt(loop, sv[0], NULL);
    test_log_reset();
    CU_ASSERT_EQUAL(rill_set_close_timeout(s, 5000), 0);
    CU_ASSERT_EQUAL(rill_write(s, big, 256 * 1024, NULL, NULL), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, done_cb, TEST_TAG(EV_CLOSE, 1))), 0);
    test_sink_start(&k, loop, sv[1], 0);
    TEST_RUN_UNTIL(loop, test_log_count(EV_CLOSE) == 1 && k.eof, 3000);
    CU_ASSERT_EQUAL(test_log_status(EV_CLOSE, 1), 0);
    CU_ASSERT_EQUAL(k.total, 256 * 1024);
    test_sink_stop(&k);
    TEST_RUN_UNTIL(loop, !rill_loop_alive(loop), 1000);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);   /* the stream and its timer are gone */
    test_loop_finish(loop);
    close(sv[1]);
}

/* ------------------------------------------- closing from inside callbacks */

enum { IN_READ, IN_DRAIN, IN_CLOSE, IN_WAITC };
enum { DO_CLOSE, DO_ABORT };

static struct {
    int where, what, fired;
} re;

/* The callback under test: it closes or aborts the stream whose callback runs.
   The close it starts gets its own callback (tag 2), which must come once. */
static void re_act(rill_stream *s)
{
    re.fired++;
    if (re.what == DO_CLOSE) {
        CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, done_cb, TEST_TAG(EV_CLOSE, 2))), 0);
    } else {
        TEST_CALLV(rill_abort(s));
    }
    /* The handle outlives the call: the callback may still look at it. */
    CU_ASSERT_EQUAL(rill_is_closing(s), 1);
}

static void re_read_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    read_cb(s, status, data, len, ud);
    re_act(s);
}

static void re_done_cb(rill_stream *s, int status, void *ud)
{
    done_cb(s, status, ud);
    re_act(s);
}

static void reentrant(int where, int what)
{
    rill_loop *loop = test_loop_new(0);
    int sv[2];
    rill_stream *s;

    test_unix_pair(SOCK_STREAM, sv, 0);
    s = test_adopt(loop, sv[0], NULL);
    test_log_reset();
    memset(&re, 0, sizeof re);
    re.where = where;
    re.what = what;
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, done_cb, TEST_TAG(EV_WAITC, 1))), 0);
    switch (where) {
    case IN_READ:
        CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 100, re_read_cb, TEST_TAG(EV_READ, 1))), 0);
        CU_ASSERT_EQUAL(write(sv[1], "hi", 2), 2);
        break;
    case IN_DRAIN:
        CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, "hi", 2, re_done_cb, TEST_TAG(EV_DRAIN, 1))), 0);
        CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 2))), 0);
        break;
    case IN_CLOSE:
        CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, re_done_cb, TEST_TAG(EV_CLOSE, 1))), 0);
        break;
    case IN_WAITC:
        CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, re_done_cb, TEST_TAG(EV_WAITC, 2))), 0);
        CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, NULL, NULL)), 0);
        break;
    }
    TEST_RUN_UNTIL(loop, re.fired && test_log_count(EV_WAITC) >= 1 &&
                    (what == DO_ABORT || test_log_count(EV_CLOSE) >= (where == IN_CLOSE ? 2 : 1)), 3000);
    CU_ASSERT_EQUAL(re.fired, 1);
    if (what == DO_CLOSE) {
        CU_ASSERT_EQUAL(test_log_count(EV_CLOSE), where == IN_CLOSE ? 2 : 1);
    }
    if (where == IN_DRAIN) {   /* a drain released with the first one */
        CU_ASSERT_EQUAL(test_log_status(EV_DRAIN, 2), 0);
    }
    test_loop_finish(loop);
    /* Nothing more after the end: every callback exactly once. */
    CU_ASSERT_EQUAL(re.fired, 1);
    CU_ASSERT_EQUAL(test_log_count(EV_WAITC), where == IN_WAITC ? 2 : 1);
    CU_ASSERT(test_log_count(EV_CLOSE) <= 2);
    close(sv[1]);
}

static void test_close_in_read_cb(void) { reentrant(IN_READ, DO_CLOSE); }
static void test_abort_in_read_cb(void) { reentrant(IN_READ, DO_ABORT); }
static void test_close_in_drain_cb(void) { reentrant(IN_DRAIN, DO_CLOSE); }
static void test_abort_in_drain_cb(void) { reentrant(IN_DRAIN, DO_ABORT); }
static void test_close_in_close_cb(void) { reentrant(IN_CLOSE, DO_CLOSE); }
static void test_abort_in_close_cb(void) { reentrant(IN_CLOSE, DO_ABORT); }
static void test_close_in_wait_closed_cb(void) { reentrant(IN_WAITC, DO_CLOSE); }
static void test_abort_in_wait_closed_cb(void) { reentrant(IN_WAITC, DO_ABORT); }

/* A stream lost to its peer stays the user's: it keeps the loop alive until it
   is closed, and closing it from the wait_closed callback that reported the loss
   frees it. */
static void lost_close_in_waitc(rill_stream *s, int status, void *ud)
{
    done_cb(s, status, ud);
    CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, done_cb, TEST_TAG(EV_CLOSE, 1))), 0);
}

static void test_lost_then_closed_from_wait_closed(void)
{
    rill_loop *loop = test_loop_new(0);
    int sv[2];
    rill_stream *s;

    test_unix_pair(SOCK_STREAM, sv, 4096);
    s = test_adopt(loop, sv[0], NULL);
    test_log_reset();
    CU_ASSERT_EQUAL(rill_write(s, big, sizeof big, NULL, NULL), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, lost_close_in_waitc, TEST_TAG(EV_WAITC, 1))), 0);
    close(sv[1]);
    TEST_RUN_UNTIL(loop, test_log_count(EV_CLOSE) == 1, 3000);
    CU_ASSERT(test_log_status(EV_WAITC, 1) == -EPIPE || test_log_status(EV_WAITC, 1) == -ECONNRESET);
    CU_ASSERT_EQUAL(test_log_count(EV_CLOSE), 1);
    test_loop_finish(loop);
}

/* ============================================================= extra info */

static void check_no_tls(rill_stream *s)
{
    static const char *const names[] = { "peercert", "cipher", "compression", "alpn" };
    char buf[64];
    size_t i;
    const unsigned char *der = NULL;
    size_t derlen = 0;

    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        CU_ASSERT_EQUAL(rill_get_extra_info(s, names[i], buf, sizeof buf), RILL_EMODE);
    CU_ASSERT_PTR_NULL(rill_tls_object(s));
    CU_ASSERT_PTR_NULL(rill_tls_alpn(s));
    CU_ASSERT_EQUAL(rill_tls_peer_cert_der(s, &der, &derlen), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_get_extra_info(s, "no-such-name", buf, sizeof buf), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_get_extra_info(s, NULL, buf, sizeof buf), RILL_EINVAL);
}

/* TCP over 127.0.0.1: names as text and as structures, the descriptor, TCP_NODELAY. */
static void test_extra_tcp(void)
{
    rill_loop *loop = test_loop_new(0);
    struct sockaddr_in a, got;
    struct sockaddr_storage ss;
    socklen_t len = sizeof a, glen;
    char buf[64], want[64], small[8];
    int l, c, p, one = 0, n;
    socklen_t olen = sizeof one;
    rill_stream *s;

    l = socket(AF_INET, SOCK_STREAM, 0);
    c = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(l >= 0 && c >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL_FATAL(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CU_ASSERT_EQUAL_FATAL(listen(l, 4), 0);
    CU_ASSERT_EQUAL_FATAL(getsockname(l, (struct sockaddr *)&a, &len), 0);
    CU_ASSERT_EQUAL_FATAL(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    p = accept(l, NULL, NULL);
    CU_ASSERT_FATAL(p >= 0);
    close(l);
    s = test_adopt(loop, c, NULL);

    CU_ASSERT_EQUAL(getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, &olen), 0);
    CU_ASSERT(one != 0);
    CU_ASSERT_EQUAL(rill_fileno(s), c);
    CU_ASSERT_EQUAL(rill_stream_mode(s), RILL_MODE_READWRITE);

    snprintf(want, sizeof want, "127.0.0.1:%d", ntohs(a.sin_port));
    n = rill_get_extra_info(s, "peername", buf, sizeof buf);
    CU_ASSERT_EQUAL(n, (int)strlen(want));
    CU_ASSERT_STRING_EQUAL(buf, want);
    glen = sizeof got;
    CU_ASSERT_EQUAL(getsockname(c, (struct sockaddr *)&got, &glen), 0);
    snprintf(want, sizeof want, "127.0.0.1:%d", ntohs(got.sin_port));
    n = rill_get_extra_info(s, "sockname", buf, sizeof buf);
    CU_ASSERT_EQUAL(n, (int)strlen(want));
    CU_ASSERT_STRING_EQUAL(buf, want);
    snprintf(want, sizeof want, "%d", c);
    CU_ASSERT_EQUAL(rill_get_extra_info(s, "socket", buf, sizeof buf), (int)strlen(want));
    CU_ASSERT_STRING_EQUAL(buf, want);
    CU_ASSERT_EQUAL(rill_get_extra_info(s, "pipe", buf, sizeof buf), RILL_EMODE);

    /* Too small: RILL_ENOBUFS and an empty string, up to and including the NUL. */
    memset(small, 'x', sizeof small);
    CU_ASSERT_EQUAL(rill_get_extra_info(s, "peername", small, sizeof small), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(small[0], '\0');
    snprintf(want, sizeof want, "127.0.0.1:%d", ntohs(a.sin_port));
    n = (int)strlen(want);
    CU_ASSERT_EQUAL(rill_get_extra_info(s, "peername", buf, (size_t)n), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(rill_get_extra_info(s, "peername", buf, (size_t)n + 1), n);

    len = sizeof ss;
    CU_ASSERT_EQUAL(rill_peername(s, (struct sockaddr *)&ss, &len), 0);
    CU_ASSERT_EQUAL(len, sizeof(struct sockaddr_in));
    CU_ASSERT_EQUAL(((struct sockaddr_in *)&ss)->sin_port, a.sin_port);
    CU_ASSERT_EQUAL(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    len = sizeof ss;
    CU_ASSERT_EQUAL(rill_sockname(s, (struct sockaddr *)&ss, &len), 0);
    CU_ASSERT_EQUAL(((struct sockaddr_in *)&ss)->sin_port, got.sin_port);
    CU_ASSERT_EQUAL(rill_peername(s, NULL, &len), RILL_EINVAL);
    len = 4;   /* too small: the size it takes comes back */
    CU_ASSERT_EQUAL(rill_peername(s, (struct sockaddr *)&ss, &len), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(len, sizeof(struct sockaddr_in));
    check_no_tls(s);

    CU_ASSERT_EQUAL(rill_close(s, NULL, NULL), 0);
    test_loop_finish(loop);
    close(p);
}

/* A named unix socket: the accepted side's sockname and the connecting side's
   peername are the path; the unnamed ends are "". */
static void test_extra_unix_path(void)
{
    rill_loop *loop = test_loop_new(0);
    struct sockaddr_un a;
    char buf[sizeof a.sun_path + 8];
    int l, c, p;
    rill_stream *cs, *ps;

    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "/tmp/rill-test-close-%ld.sock", (long)getpid());
    unlink(a.sun_path);
    l = socket(AF_UNIX, SOCK_STREAM, 0);
    c = socket(AF_UNIX, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(l >= 0 && c >= 0);
    CU_ASSERT_EQUAL_FATAL(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CU_ASSERT_EQUAL_FATAL(listen(l, 4), 0);
    CU_ASSERT_EQUAL_FATAL(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    p = accept(l, NULL, NULL);
    CU_ASSERT_FATAL(p >= 0);
    close(l);
    unlink(a.sun_path);
    cs = test_adopt(loop, c, NULL);
    ps = test_adopt(loop, p, NULL);

    CU_ASSERT_EQUAL(rill_get_extra_info(cs, "peername", buf, sizeof buf), (int)strlen(a.sun_path));
    CU_ASSERT_STRING_EQUAL(buf, a.sun_path);
    CU_ASSERT_EQUAL(rill_get_extra_info(ps, "sockname", buf, sizeof buf), (int)strlen(a.sun_path));
    CU_ASSERT_STRING_EQUAL(buf, a.sun_path);
    CU_ASSERT_EQUAL(rill_get_extra_info(cs, "sockname", buf, sizeof buf), 0);
    CU_ASSERT_STRING_EQUAL(buf, "");
    CU_ASSERT_EQUAL(rill_can_write_eof(cs), 1);
    check_no_tls(cs);

    CU_ASSERT_EQUAL(rill_close(cs, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_close(ps, NULL, NULL), 0);
    test_loop_finish(loop);
}

/* A pipe has "pipe" (the descriptor), no socket names. */
static void test_extra_pipe(void)
{
    rill_loop *loop = test_loop_new(0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char buf[32], want[32];
    int p[2];
    rill_stream *r = NULL, *w = NULL;

    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    CU_ASSERT_EQUAL_FATAL(rill_connect_read_pipe(loop, p[0], 100, &r), 0);
    CU_ASSERT_EQUAL_FATAL(rill_connect_write_pipe(loop, p[1], 0, &w), 0);
    CU_ASSERT_EQUAL(rill_stream_get_limit(r), 100);
    CU_ASSERT_EQUAL(rill_fileno(r), p[0]);
    CU_ASSERT_EQUAL(rill_fileno(w), p[1]);
    snprintf(want, sizeof want, "%d", p[1]);
    CU_ASSERT_EQUAL(rill_get_extra_info(w, "pipe", buf, sizeof buf), (int)strlen(want));
    CU_ASSERT_STRING_EQUAL(buf, want);
    CU_ASSERT_EQUAL(rill_get_extra_info(w, "socket", buf, sizeof buf), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_get_extra_info(r, "socket", buf, sizeof buf), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_get_extra_info(r, "peername", buf, sizeof buf), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_get_extra_info(r, "sockname", buf, sizeof buf), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_peername(r, (struct sockaddr *)&ss, &len), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_sockname(w, (struct sockaddr *)&ss, &len), RILL_EMODE);
    check_no_tls(r);
    CU_ASSERT_EQUAL(rill_connect_read_pipe(loop, -1, 0, &r), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_connect_write_pipe(NULL, p[1], 0, &w), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_close(r, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_close(w, NULL, NULL), 0);
    test_loop_finish(loop);
}

static void test_format_addr(void)
{
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    struct sockaddr_un un;
    struct sockaddr sa;
    char buf[128], small[9];

    memset(&in4, 0, sizeof in4);
    in4.sin_family = AF_INET;
    in4.sin_port = htons(8888);
    CU_ASSERT_EQUAL(inet_pton(AF_INET, "127.0.0.1", &in4.sin_addr), 1);
    CU_ASSERT_EQUAL(rill_format_addr((struct sockaddr *)&in4, buf, sizeof buf), 14);
    CU_ASSERT_STRING_EQUAL(buf, "127.0.0.1:8888");
    /* Exactly full (no room for the NUL) is too small. */
    CU_ASSERT_EQUAL(rill_format_addr((struct sockaddr *)&in4, buf, 14), RILL_ENOBUFS);
    CU_ASSERT_STRING_EQUAL(buf, "");
    CU_ASSERT_EQUAL(rill_format_addr((struct sockaddr *)&in4, buf, 15), 14);

    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(443);
    in6.sin6_addr = in6addr_loopback;
    CU_ASSERT_EQUAL(rill_format_addr((struct sockaddr *)&in6, buf, sizeof buf), 9);
    CU_ASSERT_STRING_EQUAL(buf, "[::1]:443");
    CU_ASSERT_EQUAL(inet_pton(AF_INET6, "2001:db8::42", &in6.sin6_addr), 1);
    in6.sin6_port = htons(65535);
    CU_ASSERT_EQUAL(rill_format_addr((struct sockaddr *)&in6, buf, sizeof buf), 20);
    CU_ASSERT_STRING_EQUAL(buf, "[2001:db8::42]:65535");
    memset(small, 'x', sizeof small);
    CU_ASSERT_EQUAL(rill_format_addr((struct sockaddr *)&in6, small, sizeof small), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(small[0], '\0');

    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, "/run/rill/app.sock");
    CU_ASSERT_EQUAL(rill_format_addr((struct sockaddr *)&un, buf, sizeof buf), 18);
    CU_ASSERT_STRING_EQUAL(buf, "/run/rill/app.sock");
    /* A path filling sun_path without a NUL stays within it. */
    memset(un.sun_path, 'p', sizeof un.sun_path);
    CU_ASSERT_EQUAL(rill_format_addr((struct sockaddr *)&un, buf, sizeof buf), (int)sizeof un.sun_path);

    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_UNSPEC;
    CU_ASSERT_EQUAL(rill_format_addr(&sa, buf, sizeof buf), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_format_addr(NULL, buf, sizeof buf), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_format_addr((struct sockaddr *)&in4, NULL, 0), RILL_ENOBUFS);
}

/* A socketpair: the descriptor in every form, modes, user data, the loop. */
static void test_extra_socketpair_and_data(void)
{
    rill_loop *loop = test_loop_new(0);
    char buf[32], want[32];
    int sv[2], tag = 7;
    rill_stream *s;

    test_unix_pair(SOCK_STREAM, sv, 0);
    s = test_adopt(loop, sv[0], NULL);
    snprintf(want, sizeof want, "%d", sv[0]);
    CU_ASSERT_EQUAL(rill_fileno(s), sv[0]);
    CU_ASSERT_EQUAL(rill_get_extra_info(s, "socket", buf, sizeof buf), (int)strlen(want));
    CU_ASSERT_STRING_EQUAL(buf, want);
    CU_ASSERT_EQUAL(rill_get_extra_info(s, "socket", buf, strlen(want)), RILL_ENOBUFS);
    CU_ASSERT_STRING_EQUAL(buf, "");
    CU_ASSERT_EQUAL(rill_get_extra_info(s, "pipe", buf, sizeof buf), RILL_EMODE);
    CU_ASSERT(rill_get_extra_info(s, "peername", buf, sizeof buf) >= 0);   /* unnamed: "" */
    CU_ASSERT_EQUAL(rill_stream_mode(s), RILL_MODE_READWRITE);
    CU_ASSERT_PTR_EQUAL(rill_stream_loop(s), loop);
    CU_ASSERT_PTR_NULL(rill_stream_get_data(s));
    rill_stream_set_data(s, &tag);
    CU_ASSERT_PTR_EQUAL(rill_stream_get_data(s), &tag);
    CU_ASSERT_EQUAL(rill_stream_get_limit(s), 65536);
    check_no_tls(s);
    CU_ASSERT_EQUAL(rill_close(s, NULL, NULL), 0);
    test_loop_finish(loop);
    close(sv[1]);
}

/* ======================================================= rill_connect_sock */

static void test_connect_sock_adopts(void)
{
    rill_loop *loop = test_loop_new(0);
    rill_connect_opts o;
    test_adopted a;
    char c;
    int sv[2];

    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_FALSE(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    memset(&o, 0, sizeof o);
    o.limit = 1000;
    memset(&a, 0, sizeof a);
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect_sock(loop, sv[0], &o, test_adopt_cb, &a, NULL)), 0);
    CU_ASSERT_EQUAL(a.calls, 0);   /* from the loop, not from the call */
    CU_ASSERT_TRUE(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    CU_ASSERT_TRUE(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
    TEST_RUN_UNTIL(loop, a.calls > 0, 2000);
    CU_ASSERT_EQUAL_FATAL(a.calls, 1);
    CU_ASSERT_EQUAL(a.status, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a.s);
    CU_ASSERT_EQUAL(rill_stream_get_limit(a.s), 1000);
    CU_ASSERT_EQUAL(rill_close(a.s, NULL, NULL), 0);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(a.calls, 1);
    CU_ASSERT_EQUAL(read(sv[1], &c, 1), 0);   /* rill owned and closed it */
    close(sv[1]);
}

/* Cancelled before its callback: RILL_ECANCELED with no stream, the descriptor
   (rill's since the call returned 0) closed, nothing left on the loop. */
static void test_connect_sock_cancel(void)
{
    rill_loop *loop = test_loop_new(0);
    rill_connect_req *req = NULL;
    test_adopted a;
    char c;
    int sv[2];

    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    memset(&a, 0, sizeof a);
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect_sock(loop, sv[0], NULL, test_adopt_cb, &a, &req)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(req);
    TEST_CALLV(rill_connect_cancel(req));
    CU_ASSERT_EQUAL(a.calls, 0);
    TEST_RUN_UNTIL(loop, a.calls > 0, 2000);
    CU_ASSERT_EQUAL(a.calls, 1);
    CU_ASSERT_EQUAL(a.status, RILL_ECANCELED);
    CU_ASSERT_PTR_NULL(a.s);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(a.calls, 1);
    CU_ASSERT_EQUAL(read(sv[1], &c, 1), 0);
    close(sv[1]);
}

/* Refused arguments: an error, no callback, the descriptor left as it was. */
static void test_connect_sock_refused(void)
{
    rill_loop *loop = test_loop_new(0);
    rill_connect_opts o;
    test_adopted a;
    int sv[2];

    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    memset(&a, 0, sizeof a);
    memset(&o, 0, sizeof o);
    o.reserved[1] = &a;
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect_sock(loop, sv[0], &o, test_adopt_cb, &a, NULL)), RILL_EINVAL);
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect_sock(loop, -1, NULL, test_adopt_cb, &a, NULL)), RILL_EINVAL);
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect_sock(loop, sv[0], NULL, NULL, &a, NULL)), RILL_EINVAL);
    CU_ASSERT_FALSE(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    TEST_RUN_UNTIL(loop, 0, 20);
    CU_ASSERT_EQUAL(a.calls, 0);
    test_loop_finish(loop);
    close(sv[0]);
    close(sv[1]);
}

/* A descriptor the backend refuses (select: at FD_SETSIZE) fails the call with
   -EMFILE and comes back untouched: still blocking, no FD_CLOEXEC, still open. */
static void test_refused_descriptor_left_alone(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_SELECT);
    struct rlimit rl, old;
    test_adopted a;
    rill_stream *w = NULL;
    int big, bigp, sv[2], p[2];

    CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &old), 0);
    rl = old;
    if (rl.rlim_cur <= FD_SETSIZE + 1) {
        rl.rlim_cur = FD_SETSIZE + 16;
        if (rl.rlim_max < rl.rlim_cur) {
            test_loop_finish(loop);
            return;   /* cannot raise the limit here: nothing to prove */
        }
        CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    big = dup2(sv[0], FD_SETSIZE);
    bigp = dup2(p[1], FD_SETSIZE + 1);
    CU_ASSERT_FATAL(big == FD_SETSIZE && bigp == FD_SETSIZE + 1);
    memset(&a, 0, sizeof a);
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect_sock(loop, big, NULL, test_adopt_cb, &a, NULL)), -EMFILE);
    CU_ASSERT_EQUAL(rill_connect_write_pipe(loop, bigp, 0, &w), -EMFILE);
    CU_ASSERT_PTR_NULL(w);
    CU_ASSERT_FALSE(fcntl(big, F_GETFL) & O_NONBLOCK);
    CU_ASSERT_FALSE(fcntl(big, F_GETFD) & FD_CLOEXEC);
    CU_ASSERT_FALSE(fcntl(bigp, F_GETFL) & O_NONBLOCK);
    CU_ASSERT_EQUAL(write(big, "k", 1), 1);   /* still open, still the caller's */
    TEST_RUN_UNTIL(loop, 0, 20);
    CU_ASSERT_EQUAL(a.calls, 0);
    close(big);
    close(bigp);
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
    setrlimit(RLIMIT_NOFILE, &old);
    test_loop_finish(loop);
}

int test_close_register(void)
{
    static const test_case cases[] = {
        { "close flushes everything, then the peer reads EOF; callback once", test_close_flushes_then_eof },
        { "close: read ECANCELED, closers, then every wait_closed", test_close_order_and_waiters },
        { "close and wait_closed complete with unread data left", test_close_with_unread_data },
        { "close: pending drains get 0 before the close callback", test_close_graceful_drains_get_zero },
        { "abort drops buffered data; read, drains, close, wait_closed", test_abort_drops_and_orders },
        { "close timeout aborts a stuck close: ETIMEDOUT, drains ECANCELED", test_close_timeout },
        { "close timeout set while the close flushes", test_close_timeout_set_while_closing },
        { "close timeout not reached: 0 and nothing lingers", test_close_timeout_not_reached },
        { "close inside a read callback", test_close_in_read_cb },
        { "abort inside a read callback", test_abort_in_read_cb },
        { "close inside a drain callback", test_close_in_drain_cb },
        { "abort inside a drain callback", test_abort_in_drain_cb },
        { "close again inside a close callback", test_close_in_close_cb },
        { "abort inside a close callback", test_abort_in_close_cb },
        { "close inside a wait_closed callback", test_close_in_wait_closed_cb },
        { "abort inside a wait_closed callback", test_abort_in_wait_closed_cb },
        { "a lost stream closed from its wait_closed callback", test_lost_then_closed_from_wait_closed },
        { "extra info over TCP: names, socket, ENOBUFS, TCP_NODELAY", test_extra_tcp },
        { "extra info over a named unix socket", test_extra_unix_path },
        { "extra info of pipes", test_extra_pipe },
        { "rill_format_addr: IPv4, IPv6, unix, ENOBUFS, EINVAL", test_format_addr },
        { "socketpair: socket, mode, data, loop, limit", test_extra_socketpair_and_data },
        { "connect_sock adopts: non-blocking, callback from the loop", test_connect_sock_adopts },
        { "connect_sock cancelled before its callback", test_connect_sock_cancel },
        { "connect_sock refuses bad arguments without touching the fd", test_connect_sock_refused },
        { "a descriptor the backend refuses comes back untouched", test_refused_descriptor_left_alone },
        { NULL, NULL }
    };
    return test_add_suite("close", cases);
}
