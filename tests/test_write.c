/* The write side: trying the descriptor first and buffering the rest, writelines,
   drain and the watermarks, write_eof, the modes of pipes, and connection loss
   (sockets reset by the peer, pipes whose reader went away, and never a SIGPIPE). */
#include "support/testutil.h"
#include "support/streams.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define HIGH 65536u   /* the documented default watermarks */
#define LOW  16384u

/* ------------------------------------------------------------ recording */

enum { EV_READ = 1, EV_DRAIN, EV_CLOSE, EV_WAITC };

static char rdata[1024];
static size_t rlen;

/* The log's size is the write buffer size (done callbacks) or the bytes (reads);
   its tick the peer's tick count. */
static void log_reset(void)
{
    test_log_reset();
    rlen = 0;
}

static void done_cb(rill_stream *s, int status, void *ud)
{
    int k = (int)(intptr_t)ud;
    TEST_ASSERT_NOT_SYNC();
    CU_ASSERT_PTR_NOT_NULL(s);
    test_log_add(k / 100, k % 100, status, s != NULL ? rill_get_write_buffer_size(s) : 0);
}

static void read_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    (void)s;
    TEST_ASSERT_NOT_SYNC();
    if (len > 0 && rlen + len <= sizeof rdata) {
        memcpy(rdata + rlen, data, len);
        rlen += len;
    }
    test_log_add(EV_READ, (int)(intptr_t)ud % 100, status, len);
}

/* ------------------------------------------------------------ data */

static uint64_t rng_state;

static void fill_random(unsigned char *p, size_t n, uint64_t seed)
{
    size_t i;
    rng_state = seed | 1;
    for (i = 0; i < n; i++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        p[i] = (unsigned char)(rng_state >> 24);
    }
}


/* ------------------------------------------------------------ descriptors */

/* A connected loopback TCP pair built by hand; the buffers are set before the
   connection exists so the window follows them. */
static void tcp_pair(int *mine, int *peer, int sndbuf, int rcvbuf)
{
    test_tcp_bufs b = { 0, 0, 0, 0 };
    b.accepted_rcv = rcvbuf;
    b.connecting_snd = sndbuf;
    CU_ASSERT_EQUAL_FATAL(test_tcp_pair(peer, mine, &b), 0);
    test_nonblock(*peer);
}

/* Reads everything the peer has now, without the loop; returns the count. */
static size_t read_now(int fd, unsigned char *into, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, into + got, cap - got > 65536 ? 65536 : cap - got);
        if (n <= 0 || got + (size_t)n >= cap) {
            if (n > 0)
                got += (size_t)n;
            return got;
        }
        got += (size_t)n;
    }
}

static void close_stream(rill_loop *loop, rill_stream *s)
{
    (void)loop;
    CU_ASSERT_EQUAL(rill_close(s, NULL, NULL), 0);
}

/* ================================================================ writing */

/* rill_write tries the socket first and buffers only what it did not take;
   with bytes already buffered it never jumps ahead of them. */
static void test_write_try_then_buffer(void)
{
    rill_loop *loop = test_loop_new(0);
    const size_t N = 256 * 1024, M = 3000;
    unsigned char *data = malloc(N + M), *got = calloc(1, N + M);
    struct iovec iov[3];
    unsigned char hello[5];
    size_t b, taken;
    int sv[2];
    rill_stream *s;
    test_sink k;

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    fill_random(data, N + M, 1);
    test_unix_pair(SOCK_STREAM, sv, 4096);
    s = test_adopt(loop, sv[0], NULL);

    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), 0);
    CU_ASSERT_EQUAL(rill_write(s, "hello", 5, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), 0);   /* all taken at once */
    CU_ASSERT_EQUAL(read_now(sv[1], hello, sizeof hello), 5);
    CU_ASSERT_EQUAL(memcmp(hello, "hello", 5), 0);

    CU_ASSERT_EQUAL(rill_write(s, data, N, NULL, NULL), 0);
    b = rill_get_write_buffer_size(s);
    CU_ASSERT(b > 0 && b < N);
    /* The socket holds exactly what the buffer does not (a unix socket's bytes
       sit in the peer's queue at once, nothing in flight). */
    taken = read_now(sv[1], got, N + M);
    CU_ASSERT_EQUAL(taken, N - b);

    /* The socket has room again, but buffered bytes go first: all of it is buffered. */
    iov[0].iov_base = data + N;
    iov[0].iov_len = 1000;
    iov[1].iov_base = data + N + 1000;
    iov[1].iov_len = 0;
    iov[2].iov_base = data + N + 1000;
    iov[2].iov_len = M - 1000;
    CU_ASSERT_EQUAL(rill_writelines(s, iov, 3, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), b + M);

    CU_ASSERT_EQUAL(rill_writelines(s, NULL, 1, NULL, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_writelines(s, iov, -1, NULL, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_write(s, NULL, 5, NULL, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_write(s, NULL, 0, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), b + M);

    test_sink_init(&k, loop, sv[1]);
    k.keep = got;
    k.keepcap = N + M;
    k.total = taken;
    test_sink_watch(&k);
    TEST_RUN_UNTIL(loop, k.total >= N + M, 5000);
    CU_ASSERT_EQUAL(k.total, N + M);
    CU_ASSERT_EQUAL(memcmp(got, data, N + M), 0);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), 0);

    test_sink_stop(&k);
    close_stream(loop, s);
    test_loop_finish(loop);
    close(sv[1]);
    free(data);
    free(got);
}

/* writelines gathers its lines into one writev: over a SOCK_SEQPACKET pair every
   send is one record, so one record holding every line proves a single call. */
static void test_writelines_one_writev(void)
{
    rill_loop *loop = test_loop_new(0);
    struct iovec iov[100];
    char lines[100], rec[256];
    unsigned char got[128];
    int sv[2], i;
    ssize_t n;
    rill_stream *s;
    test_sink k;

    test_unix_pair(SOCK_SEQPACKET, sv, 0);
    s = test_adopt(loop, sv[0], NULL);

    iov[0].iov_base = (void *)"abc";
    iov[0].iov_len = 3;
    iov[1].iov_base = (void *)"def";
    iov[1].iov_len = 3;
    iov[2].iov_base = (void *)"";
    iov[2].iov_len = 0;
    iov[3].iov_base = (void *)"ghi\n";
    iov[3].iov_len = 4;
    CU_ASSERT_EQUAL(rill_writelines(s, iov, 4, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), 0);
    n = recv(sv[1], rec, sizeof rec, 0);
    CU_ASSERT_EQUAL(n, 10);
    CU_ASSERT_EQUAL(memcmp(rec, "abcdefghi\n", 10), 0);
    CU_ASSERT_EQUAL(recv(sv[1], rec, sizeof rec, 0), -1);   /* no second record */

    /* Many lines: whatever the batching, the bytes arrive complete and in order. */
    for (i = 0; i < 100; i++) {
        lines[i] = (char)('!' + i % 90);
        iov[i].iov_base = &lines[i];
        iov[i].iov_len = 1;
    }
    CU_ASSERT_EQUAL(rill_writelines(s, iov, 100, done_cb, TEST_TAG(EV_DRAIN, 1)), 0);
    test_sink_init(&k, loop, sv[1]);
    k.keep = got;
    k.keepcap = sizeof got;
    test_sink_watch(&k);
    log_reset();
    TEST_RUN_UNTIL(loop, k.total >= 100 && test_log_count(EV_DRAIN) == 1, 3000);
    CU_ASSERT_EQUAL(k.total, 100);
    CU_ASSERT_EQUAL(memcmp(got, lines, 100), 0);
    CU_ASSERT_EQUAL(test_log_get(EV_DRAIN, 1)->status, 0);

    test_sink_stop(&k);
    close_stream(loop, s);
    test_loop_finish(loop);
    close(sv[1]);
}

/* 4 MiB written in uneven pieces, then a graceful close: the slow peer gets every
   byte in order, then EOF. The caller's memory is scrubbed and freed at once:
   rill must have copied what it buffered. */
static void test_write_4mib_then_close_slow_peer(int backend)
{
    rill_loop *loop = test_loop_new(backend);
    const size_t N = 4u << 20;
    unsigned char *data = malloc(N);
    uint64_t want;
    size_t off = 0, piece = 1;
    int sv[2];
    rill_stream *s;
    test_sink k;

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    fill_random(data, N, 42);
    want = test_fnv(TEST_FNV_INIT, data, N);
    test_unix_pair(SOCK_STREAM, sv, 16384);
    s = test_adopt(loop, sv[0], NULL);
    log_reset();
    while (off < N) {
        size_t len = piece < N - off ? piece : N - off;
        CU_ASSERT_EQUAL(rill_write(s, data + off, len, NULL, NULL), 0);
        off += len;
        piece = piece * 7 + 4093;
        if (piece > 300000)
            piece %= 300000;
    }
    memset(data, 0, N);
    free(data);
    CU_ASSERT(rill_get_write_buffer_size(s) > 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, done_cb, TEST_TAG(EV_CLOSE, 1))), 0);
    CU_ASSERT_EQUAL(rill_is_closing(s), 1);

    test_sink_init(&k, loop, sv[1]);
    test_sink_paced(&k, 4096, 8, 1);
    TEST_RUN_UNTIL(loop, k.eof && test_log_count(EV_CLOSE) == 1, 30000);
    CU_ASSERT_EQUAL(k.err, 0);
    CU_ASSERT_EQUAL(k.eof, 1);
    CU_ASSERT_EQUAL(k.total, N);
    CU_ASSERT_EQUAL(k.hash, want);
    CU_ASSERT_EQUAL(test_log_count(EV_CLOSE), 1);
    CU_ASSERT_EQUAL(test_log_get(EV_CLOSE, 1)->status, 0);

    test_sink_stop(&k);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(test_log_count(EV_CLOSE), 1);   /* exactly once */
    close(sv[1]);
}

static void test_write_4mib_poll(void)
{
    if (test_have_backend(RILL_BACKEND_POLL))
        test_write_4mib_then_close_slow_peer(RILL_BACKEND_POLL);
}
static void test_write_4mib_select(void) { test_write_4mib_then_close_slow_peer(RILL_BACKEND_SELECT); }

/* Below the high watermark a drain (or a write's callback) completes from the
   loop in the next iteration, never inside the call. */
static void test_drain_at_once_below_high(void)
{
    rill_loop *loop = test_loop_new(0);
    unsigned char got[4];
    int sv[2];
    rill_stream *s;

    test_unix_pair(SOCK_STREAM, sv, 0);
    s = test_adopt(loop, sv[0], NULL);
    log_reset();
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 1))), 0);   /* empty buffer */
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, "x", 1, NULL, NULL)), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 2))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, "y", 1, done_cb, TEST_TAG(EV_DRAIN, 3))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, NULL, NULL)), RILL_EINVAL);
    CU_ASSERT_EQUAL(test_log.n, 0);
    rill_loop_run_once(loop, 0);
    CU_ASSERT_EQUAL(test_log_count(EV_DRAIN), 3);
    CU_ASSERT_EQUAL(test_log_index(EV_DRAIN, 1), 0);
    CU_ASSERT_EQUAL(test_log_index(EV_DRAIN, 2), 1);
    CU_ASSERT_EQUAL(test_log_index(EV_DRAIN, 3), 2);
    CU_ASSERT_EQUAL(test_log_get(EV_DRAIN, 1)->status, 0);
    CU_ASSERT_EQUAL(test_log_get(EV_DRAIN, 2)->status, 0);
    CU_ASSERT_EQUAL(test_log_get(EV_DRAIN, 3)->status, 0);
    CU_ASSERT_EQUAL(read_now(sv[1], got, sizeof got), 2);
    CU_ASSERT_EQUAL(memcmp(got, "xy", 2), 0);

    close_stream(loop, s);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(test_log_count(EV_DRAIN), 3);
    close(sv[1]);
}

/* Above the high watermark drains wait for the low one, all of them released
   together, a write's callback among them; a slow peer shows the buffer passing
   between low and high with the drains still waiting. */
static rill_stream *wm_stream;
static int wm_between;   /* a tick saw low < size <= high with no drain released */

static void wm_tick(test_sink *k)
{
    size_t w = rill_get_write_buffer_size(wm_stream);
    (void)k;
    if (test_log_count(EV_DRAIN) == 0 && w > LOW && w <= HIGH)
        wm_between = 1;
}

static void test_drain_waits_for_low(void)
{
    rill_loop *loop = test_loop_new(0);
    const size_t N = 256 * 1024;
    unsigned char *data = malloc(N);
    int sv[2], i;
    rill_stream *s;
    test_sink k;

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    fill_random(data, N, 3);
    test_unix_pair(SOCK_STREAM, sv, 4096);
    s = test_adopt(loop, sv[0], NULL);
    log_reset();
    CU_ASSERT_EQUAL(rill_write(s, data, N, NULL, NULL), 0);
    CU_ASSERT(rill_get_write_buffer_size(s) > HIGH);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 2))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, "tail", 4, done_cb, TEST_TAG(EV_DRAIN, 3))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 4))), 0);

    /* The peer does not read: nothing may complete. */
    TEST_RUN_UNTIL(loop, 0, 100);
    CU_ASSERT_EQUAL(test_log.n, 0);

    wm_stream = s;
    wm_between = 0;
    test_sink_init(&k, loop, sv[1]);
    k.on_tick = wm_tick;
    test_sink_paced(&k, 1024, 1, 1);
    TEST_RUN_UNTIL(loop, test_log_count(EV_DRAIN) == 4, 10000);
    CU_ASSERT_EQUAL(test_log_count(EV_DRAIN), 4);
    CU_ASSERT_EQUAL(wm_between, 1);
    for (i = 1; i <= 4; i++) {
        const test_event *e = test_log_get(EV_DRAIN, i);
        CU_ASSERT_EQUAL(e->status, 0);
        CU_ASSERT(e->size <= LOW);
        CU_ASSERT_EQUAL(e->when, test_log_get(EV_DRAIN, 1)->when);   /* released together */
        CU_ASSERT_EQUAL(test_log_index(EV_DRAIN, i), i - 1);         /* in the order they came */
    }

    test_sink_stop(&k);
    test_sink_watch(&k);
    TEST_RUN_UNTIL(loop, k.total >= N + 4, 5000);
    CU_ASSERT_EQUAL(k.total, N + 4);
    test_sink_stop(&k);
    close_stream(loop, s);
    test_loop_finish(loop);
    close(sv[1]);
    free(data);
}

/* A drain asked below the high watermark is answered even when a write made
   right after it (before the loop runs) takes the buffer above high; a drain
   asked after that write waits. */
static void test_drain_answered_stays_answered(void)
{
    rill_loop *loop = test_loop_new(0);
    const size_t N = 256 * 1024;
    unsigned char *data = calloc(1, N);
    int sv[2];
    rill_stream *s;
    test_sink k;

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    test_unix_pair(SOCK_STREAM, sv, 4096);
    s = test_adopt(loop, sv[0], NULL);
    log_reset();
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, "a", 1, done_cb, TEST_TAG(EV_DRAIN, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 2))), 0);
    CU_ASSERT_EQUAL(rill_write(s, data, N, NULL, NULL), 0);
    CU_ASSERT(rill_get_write_buffer_size(s) > HIGH);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 3))), 0);
    rill_loop_run_once(loop, 0);
    CU_ASSERT_EQUAL(test_log_status(EV_DRAIN, 1), 0);
    CU_ASSERT_EQUAL(test_log_status(EV_DRAIN, 2), 0);
    CU_ASSERT_EQUAL(test_log_count(EV_DRAIN), 2);
    test_sink_init(&k, loop, sv[1]);
    test_sink_watch(&k);
    TEST_RUN_UNTIL(loop, test_log_count(EV_DRAIN) == 3 && k.total >= N + 1, 5000);
    CU_ASSERT_EQUAL(test_log_get(EV_DRAIN, 3)->status, 0);
    CU_ASSERT_EQUAL(k.total, N + 1);
    test_sink_stop(&k);
    close_stream(loop, s);
    test_loop_finish(loop);
    close(sv[1]);
    free(data);
}

/* set_write_buffer_limits: low > high is refused; (0, 0) makes a drain wait for
   an empty buffer; other limits move both thresholds. */
static void test_write_buffer_limits(void)
{
    static const size_t lim[2][2] = { { 0, 0 }, { 4096, 1024 } };
    const size_t N = 64 * 1024;
    unsigned char *data = malloc(N);
    int round;

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    fill_random(data, N, 9);
    for (round = 0; round < 2; round++) {
        rill_loop *loop = test_loop_new(0);
        int sv[2];
        rill_stream *s;
        test_sink k;

        test_unix_pair(SOCK_STREAM, sv, 4096);
        s = test_adopt(loop, sv[0], NULL);
        log_reset();
        CU_ASSERT_EQUAL(rill_set_write_buffer_limits(s, 10, 20), RILL_EINVAL);
        CU_ASSERT_EQUAL(rill_set_write_buffer_limits(NULL, 20, 10), RILL_EINVAL);
        CU_ASSERT_EQUAL(rill_set_write_buffer_limits(s, lim[round][0], lim[round][1]), 0);

        /* Nothing buffered: at once, even with a zero high watermark. */
        CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, "z", 1, done_cb, TEST_TAG(EV_DRAIN, 1))), 0);
        CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), 0);
        rill_loop_run_once(loop, 0);
        CU_ASSERT_EQUAL(test_log_get(EV_DRAIN, 1)->status, 0);

        CU_ASSERT_EQUAL(rill_write(s, data, N, NULL, NULL), 0);
        CU_ASSERT(rill_get_write_buffer_size(s) > lim[round][0]);
        CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 2))), 0);
        TEST_RUN_UNTIL(loop, 0, 50);
        CU_ASSERT_EQUAL(test_log_count(EV_DRAIN), 1);

        test_sink_init(&k, loop, sv[1]);
        test_sink_paced(&k, 512, 1, 1);
        TEST_RUN_UNTIL(loop, test_log_count(EV_DRAIN) == 2, 10000);
        CU_ASSERT_EQUAL(test_log_get(EV_DRAIN, 2)->status, 0);
        CU_ASSERT(test_log_get(EV_DRAIN, 2)->size <= lim[round][1]);
        test_sink_stop(&k);
        test_sink_watch(&k);
        TEST_RUN_UNTIL(loop, k.total >= N + 1, 5000);
        CU_ASSERT_EQUAL(k.total, N + 1);
        test_sink_stop(&k);
        close_stream(loop, s);
        test_loop_finish(loop);
        close(sv[1]);
    }
    free(data);
}

/* ================================================= the write buffer maximum */

#define WMAX 16384u

/* A stream over a unix pair whose socket takes little (4 KiB), so writes buffer. */
static rill_stream *small_socket_stream(rill_loop *loop, int sv[2])
{
    test_unix_pair(SOCK_STREAM, sv, 4096);
    return test_adopt(loop, sv[0], NULL);
}

/* Writes len bytes of data from *at; on success *at advances. */
static int write_from(rill_stream *s, const unsigned char *data, size_t *at, size_t len)
{
    int rc = rill_write(s, data + *at, len, NULL, NULL);
    if (rc == 0)
        *at += len;
    return rc;
}

/* Over the maximum a write fails with RILL_ENOBUFS and queues nothing, even when
   the socket had room for part of it; the buffer never holds more than the
   maximum; the stream stays usable, and once the peer reads, writes go on with
   every accepted byte delivered once, in order. */
static void test_write_buffer_max_all_or_nothing(void)
{
    rill_loop *loop = test_loop_new(0);
    const size_t N = 256 * 1024;
    unsigned char *data = malloc(N), *got = calloc(1, N), probe[16];
    size_t at = 0, b, room;
    struct iovec iov[2];
    int sv[2], i, rc = 0;
    rill_stream *s;
    test_sink k;

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    fill_random(data, N, 11);
    s = small_socket_stream(loop, sv);
    log_reset();
    CU_ASSERT_EQUAL(rill_set_write_buffer_max(s, WMAX), 0);

    /* Larger than the maximum: refused whole, though the socket is empty. */
    CU_ASSERT_EQUAL(TEST_CALL(write_from(s, data, &at, WMAX + 1)), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, data, WMAX + 1, done_cb, TEST_TAG(EV_DRAIN, 1))), RILL_ENOBUFS);
    iov[0].iov_base = data;
    iov[0].iov_len = WMAX / 2 + 1;
    iov[1].iov_base = data + WMAX / 2 + 1;
    iov[1].iov_len = WMAX / 2;
    CU_ASSERT_EQUAL(TEST_CALL(rill_writelines(s, iov, 2, done_cb, TEST_TAG(EV_DRAIN, 2))), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), 0);
    CU_ASSERT_EQUAL(read_now(sv[1], probe, sizeof probe), 0);   /* not one byte sent */
    CU_ASSERT_EQUAL(rill_is_closing(s), 0);

    /* Exactly the maximum is allowed: the lines go out as one. */
    iov[1].iov_len = WMAX / 2 - 1;
    CU_ASSERT_EQUAL(rill_writelines(s, iov, 2, NULL, NULL), 0);
    at = WMAX;
    /* Fill until refused: the buffer never passes the maximum, and a refused
       write leaves it as it was. */
    for (i = 0; i < 100 && (rc = write_from(s, data, &at, 1000)) == 0; i++)
        CU_ASSERT(rill_get_write_buffer_size(s) <= WMAX);
    CU_ASSERT_EQUAL(rc, RILL_ENOBUFS);
    b = rill_get_write_buffer_size(s);
    CU_ASSERT(b > WMAX - 1000 && b <= WMAX);
    room = WMAX - b;
    CU_ASSERT_EQUAL(write_from(s, data, &at, room + 1), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), b);
    CU_ASSERT_EQUAL(write_from(s, data, &at, room), 0);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), WMAX);
    CU_ASSERT_EQUAL(write_from(s, data, &at, 1), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(rill_write(s, data, 0, NULL, NULL), 0);   /* nothing to add always fits */
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), WMAX);
    CU_ASSERT_EQUAL(rill_is_closing(s), 0);

    /* The peer reads: the stream takes writes again, and its drains work. */
    test_sink_init(&k, loop, sv[1]);
    k.keep = got;
    k.keepcap = N;
    test_sink_watch(&k);
    TEST_RUN_UNTIL(loop, k.total >= at, 5000);
    CU_ASSERT_EQUAL(k.total, at);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, data + at, 1000, done_cb, TEST_TAG(EV_DRAIN, 3))), 0);
    at += 1000;
    TEST_RUN_UNTIL(loop, k.total >= at && test_log_count(EV_DRAIN) == 1, 5000);
    CU_ASSERT_EQUAL(k.total, at);
    CU_ASSERT_EQUAL(memcmp(got, data, at), 0);
    CU_ASSERT_EQUAL(test_log_count(EV_DRAIN), 1);   /* the refused writes never called back */
    CU_ASSERT_EQUAL(test_log_get(EV_DRAIN, 3)->status, 0);

    test_sink_stop(&k);
    close_stream(loop, s);
    test_loop_finish(loop);
    close(sv[1]);
    free(data);
    free(got);
}

/* The setter: RILL_EINVAL without a stream, RILL_EMODE on a read-only one; 0 is
   unlimited again; a maximum below what is already buffered keeps those bytes
   and refuses more until the peer has read; lengths whose sum wraps around are
   refused, not added. */
static void test_write_buffer_max_setter(void)
{
    rill_loop *loop = test_loop_new(0);
    const size_t N = 1u << 20;
    unsigned char *data = malloc(N);
    struct iovec iov[2];
    int sv[2], p[2];
    rill_stream *s, *r = NULL, *w = NULL;
    size_t b;
    test_sink k;

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    fill_random(data, N, 12);
    CU_ASSERT_EQUAL(rill_set_write_buffer_max(NULL, 1), RILL_EINVAL);
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    CU_ASSERT_EQUAL_FATAL(rill_connect_read_pipe(loop, p[0], 0, &r), 0);
    CU_ASSERT_EQUAL_FATAL(rill_connect_write_pipe(loop, p[1], 0, &w), 0);
    CU_ASSERT_EQUAL(rill_set_write_buffer_max(r, 1), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_set_write_buffer_max(w, 1), 0);
    CU_ASSERT_EQUAL(rill_write(w, "xy", 2, NULL, NULL), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(rill_write(w, "x", 1, NULL, NULL), 0);

    s = small_socket_stream(loop, sv);
    CU_ASSERT_EQUAL(rill_set_write_buffer_max(s, 100), 0);
    CU_ASSERT_EQUAL(rill_write(s, data, N, NULL, NULL), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(rill_set_write_buffer_max(s, 0), 0);
    CU_ASSERT_EQUAL(rill_write(s, data, N, NULL, NULL), 0);   /* unlimited: buffered */
    b = rill_get_write_buffer_size(s);
    CU_ASSERT(b > N / 2);

    CU_ASSERT_EQUAL(rill_set_write_buffer_max(s, b / 2), 0);
    CU_ASSERT_EQUAL(rill_write(s, "z", 1, NULL, NULL), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(rill_write(s, "z", 0, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), b);
    CU_ASSERT_EQUAL(rill_is_closing(s), 0);

    CU_ASSERT_EQUAL(rill_set_write_buffer_max(s, (size_t)-1), 0);
    iov[0].iov_base = data;
    iov[0].iov_len = (size_t)-1 - b;
    iov[1].iov_base = data;
    iov[1].iov_len = 2;
    CU_ASSERT_EQUAL(rill_writelines(s, iov, 2, NULL, NULL), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(s), b);

    CU_ASSERT_EQUAL(rill_set_write_buffer_max(s, b / 2), 0);
    test_sink_init(&k, loop, sv[1]);
    test_sink_watch(&k);
    TEST_RUN_UNTIL(loop, k.total >= N, 5000);
    CU_ASSERT_EQUAL(k.total, N);
    CU_ASSERT_EQUAL(rill_write(s, "z", 1, NULL, NULL), 0);
    TEST_RUN_UNTIL(loop, k.total >= N + 1, 3000);
    CU_ASSERT_EQUAL(k.total, N + 1);

    test_sink_stop(&k);
    close_stream(loop, s);
    close_stream(loop, r);
    close_stream(loop, w);
    test_loop_finish(loop);
    close(sv[1]);
    free(data);
}

/* write_eof half-closes after the buffered bytes: the peer reads them all, then
   EOF, answers and closes; the stream still reads the answer, then EOF. */
static void write_eof_then_reply(int tcp)
{
    rill_loop *loop = test_loop_new(0);
    const size_t N = 300 * 1024;
    unsigned char *data = malloc(N), *got = malloc(N);
    int mine, peer, sv[2];
    rill_stream *s;
    test_sink k;

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    fill_random(data, N, 5);
    if (tcp) {
        tcp_pair(&mine, &peer, 8192, 8192);
    } else {
        test_unix_pair(SOCK_STREAM, sv, 4096);
        mine = sv[0];
        peer = sv[1];
    }
    s = test_adopt(loop, mine, NULL);
    log_reset();
    CU_ASSERT_EQUAL(rill_can_write_eof(s), 1);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, -1, read_cb, TEST_TAG(EV_READ, 1))), 0);
    CU_ASSERT_EQUAL(rill_write(s, data, N, NULL, NULL), 0);
    CU_ASSERT(rill_get_write_buffer_size(s) > 0);   /* the EOF must wait for these */
    CU_ASSERT_EQUAL(rill_write_eof(s), 0);
    CU_ASSERT_EQUAL(rill_write(s, "x", 1, NULL, NULL), RILL_ECLOSED);
    CU_ASSERT_EQUAL(rill_write(s, "x", 1, done_cb, TEST_TAG(EV_DRAIN, 9)), RILL_ECLOSED);
    CU_ASSERT_EQUAL(rill_writelines(s, NULL, 0, NULL, NULL), RILL_ECLOSED);
    CU_ASSERT_EQUAL(rill_is_closing(s), 0);   /* half-closed is not closing */

    test_sink_init(&k, loop, peer);
    k.keep = got;
    k.keepcap = N;
    test_sink_watch(&k);
    TEST_RUN_UNTIL(loop, k.eof || k.err, 10000);
    CU_ASSERT_EQUAL(k.eof, 1);
    CU_ASSERT_EQUAL(k.total, N);
    CU_ASSERT_EQUAL(memcmp(got, data, N), 0);
    CU_ASSERT_EQUAL(test_log_count(EV_READ), 0);   /* the peer has not answered yet */

    CU_ASSERT_EQUAL(write(peer, "the answer\n", 11), 11);
    close(peer);
    TEST_RUN_UNTIL(loop, test_log_count(EV_READ) == 1, 3000);
    CU_ASSERT_EQUAL(test_log_get(EV_READ, 1)->status, 0);
    CU_ASSERT_EQUAL(rlen, 11);
    CU_ASSERT_EQUAL(memcmp(rdata, "the answer\n", 11), 0);
    CU_ASSERT_EQUAL(rill_at_eof(s), 1);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 10, read_cb, TEST_TAG(EV_READ, 2))), 0);
    TEST_RUN_UNTIL(loop, test_log_count(EV_READ) == 2, 3000);
    CU_ASSERT_EQUAL(test_log_get(EV_READ, 2)->status, 0);
    CU_ASSERT_EQUAL(test_log_get(EV_READ, 2)->size, 0);

    test_sink_stop(&k);
    close_stream(loop, s);
    test_loop_finish(loop);
    free(data);
    free(got);
}

static void test_write_eof_unix(void) { write_eof_then_reply(0); }
static void test_write_eof_tcp(void) { write_eof_then_reply(1); }

/* Pipes: a read pipe refuses writes, a write pipe refuses reads, neither can
   write_eof (it is closing); a line still goes through. */
static void test_pipe_modes(void)
{
    rill_loop *loop = test_loop_new(0);
    struct iovec iov;
    int p[2];
    rill_stream *r = NULL, *w = NULL;

    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    CU_ASSERT_EQUAL_FATAL(rill_connect_read_pipe(loop, p[0], 0, &r), 0);
    CU_ASSERT_EQUAL_FATAL(rill_connect_write_pipe(loop, p[1], 0, &w), 0);
    CU_ASSERT_TRUE(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    CU_ASSERT_TRUE(fcntl(p[1], F_GETFL) & O_NONBLOCK);
    CU_ASSERT_EQUAL(rill_stream_mode(r), RILL_MODE_READ);
    CU_ASSERT_EQUAL(rill_stream_mode(w), RILL_MODE_WRITE);
    CU_ASSERT_EQUAL(rill_stream_get_limit(r), 65536);
    CU_ASSERT_EQUAL(rill_can_write_eof(r), 0);
    CU_ASSERT_EQUAL(rill_can_write_eof(w), 0);
    CU_ASSERT_EQUAL(rill_write_eof(w), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_write_eof(r), RILL_EMODE);

    iov.iov_base = (void *)"x";
    iov.iov_len = 1;
    log_reset();
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(r, "x", 1, NULL, NULL)), RILL_EMODE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(r, "x", 1, done_cb, TEST_TAG(EV_DRAIN, 8))), RILL_EMODE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_writelines(r, &iov, 1, NULL, NULL)), RILL_EMODE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(r, done_cb, TEST_TAG(EV_DRAIN, 9))), RILL_EMODE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(w, 1, read_cb, TEST_TAG(EV_READ, 8))), RILL_EMODE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(w, read_cb, TEST_TAG(EV_READ, 8))), RILL_EMODE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readexactly(w, 1, read_cb, TEST_TAG(EV_READ, 8))), RILL_EMODE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readuntil(w, "\n", 1, read_cb, TEST_TAG(EV_READ, 8))), RILL_EMODE);

    CU_ASSERT_EQUAL(TEST_CALL(rill_write(w, "ping\n", 5, done_cb, TEST_TAG(EV_DRAIN, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(r, read_cb, TEST_TAG(EV_READ, 1))), 0);
    TEST_RUN_UNTIL(loop, test_log_count(EV_READ) == 1 && test_log_count(EV_DRAIN) == 1, 3000);
    CU_ASSERT_EQUAL(test_log_get(EV_READ, 1)->status, 0);
    CU_ASSERT_EQUAL(rlen, 5);
    CU_ASSERT_EQUAL(memcmp(rdata, "ping\n", 5), 0);
    CU_ASSERT_EQUAL(test_log_get(EV_DRAIN, 1)->status, 0);

    /* Closing the write pipe is its EOF. */
    CU_ASSERT_EQUAL(TEST_CALL(rill_close(w, done_cb, TEST_TAG(EV_CLOSE, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(r, 10, read_cb, TEST_TAG(EV_READ, 2))), 0);
    TEST_RUN_UNTIL(loop, test_log_count(EV_READ) == 2 && test_log_count(EV_CLOSE) == 1, 3000);
    CU_ASSERT_EQUAL(test_log_get(EV_READ, 2)->status, 0);
    CU_ASSERT_EQUAL(test_log_get(EV_READ, 2)->size, 0);
    CU_ASSERT_EQUAL(test_log_get(EV_CLOSE, 1)->status, 0);
    CU_ASSERT_EQUAL(test_log_count(EV_DRAIN), 1);   /* the refused calls never called back */

    close_stream(loop, r);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(test_log_count(EV_READ), 2);
}

/* Pipe streams take pipes (and sockets, character devices) opened the right way
   round; anything else is refused and left to the caller. */
static void test_pipe_refuses_wrong_descriptors(void)
{
    rill_loop *loop = test_loop_new(0);
    char path[64];
    int p[2], f;
    rill_stream *s = NULL;

    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    CU_ASSERT_EQUAL(rill_connect_write_pipe(loop, p[0], 0, &s), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_connect_read_pipe(loop, p[1], 0, &s), RILL_EINVAL);
    CU_ASSERT_FALSE(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    snprintf(path, sizeof path, "/tmp/rill-test-write-%ld", (long)getpid());
    f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(f >= 0);
    unlink(path);
    CU_ASSERT_EQUAL(rill_connect_read_pipe(loop, f, 0, &s), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_connect_write_pipe(loop, f, 0, &s), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_connect_read_pipe(loop, p[0], 0, NULL), RILL_EINVAL);
    CU_ASSERT_PTR_NULL(s);
    test_loop_finish(loop);
    close(f);
    close(p[0]);
    close(p[1]);
}

/* After rill_close or rill_abort every write-side call fails with RILL_ECLOSED. */
static void test_writes_after_close(void)
{
    rill_loop *loop = test_loop_new(0);
    struct iovec iov;
    int sv[2], tv[2];
    rill_stream *s, *t;

    test_unix_pair(SOCK_STREAM, sv, 0);
    test_unix_pair(SOCK_STREAM, tv, 0);
    s = test_adopt(loop, sv[0], NULL);
    t = test_adopt(loop, tv[0], NULL);
    iov.iov_base = (void *)"x";
    iov.iov_len = 1;
    log_reset();
    CU_ASSERT_EQUAL(rill_is_closing(s), 0);
    CU_ASSERT_EQUAL(rill_close(s, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_is_closing(s), 1);
    rill_abort(t);
    CU_ASSERT_EQUAL(rill_is_closing(t), 1);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, "x", 1, NULL, NULL)), RILL_ECLOSED);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, "x", 1, done_cb, TEST_TAG(EV_DRAIN, 1))), RILL_ECLOSED);
    CU_ASSERT_EQUAL(TEST_CALL(rill_writelines(s, &iov, 1, NULL, NULL)), RILL_ECLOSED);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 2))), RILL_ECLOSED);
    CU_ASSERT_EQUAL(rill_write_eof(s), RILL_ECLOSED);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(t, "x", 1, done_cb, TEST_TAG(EV_DRAIN, 3))), RILL_ECLOSED);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(t, done_cb, TEST_TAG(EV_DRAIN, 4))), RILL_ECLOSED);
    CU_ASSERT_EQUAL(rill_write_eof(t), RILL_ECLOSED);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(test_log.n, 0);
    close(sv[1]);
    close(tv[1]);
}

/* ======================================================== connection loss */

static int is_loss(int st) { return st == -EPIPE || st == -ECONNRESET; }

/* The peer goes away while drains wait: the pending read, every drain and
   wait_closed get the connection's error, in that order; later writes fail at
   once with it; the handle stays valid (and keeps the loop alive) until closed. */
static void lost_while_draining(int tcp, int linger0)
{
    rill_loop *loop = test_loop_new(0);
    const size_t N = 1u << 20;
    unsigned char *data = malloc(N);
    int mine, peer, sv[2], err, pending;
    struct iovec iov;
    rill_stream *s;

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    memset(data, 'q', N);
    if (tcp) {
        tcp_pair(&mine, &peer, 8192, 8192);
    } else {
        test_unix_pair(SOCK_STREAM, sv, 4096);
        mine = sv[0];
        peer = sv[1];
    }
    s = test_adopt(loop, mine, NULL);
    rill_stream_set_data(s, &pending);
    log_reset();
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 100, read_cb, TEST_TAG(EV_READ, 1))), 0);
    CU_ASSERT_EQUAL(rill_write(s, data, N, NULL, NULL), 0);
    CU_ASSERT(rill_get_write_buffer_size(s) > HIGH);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, "more", 4, done_cb, TEST_TAG(EV_DRAIN, 2))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, done_cb, TEST_TAG(EV_WAITC, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, done_cb, TEST_TAG(EV_WAITC, 2))), 0);
    TEST_RUN_UNTIL(loop, 0, 30);
    CU_ASSERT_EQUAL(test_log.n, 0);

    if (linger0) {
        struct linger lgr;
        lgr.l_onoff = 1;
        lgr.l_linger = 0;
        CU_ASSERT_EQUAL(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lgr, sizeof lgr), 0);
    }
    close(peer);   /* unread bytes in its queue: a reset either way */
    TEST_RUN_UNTIL(loop, test_log_count(EV_WAITC) == 2, 5000);
    CU_ASSERT_EQUAL_FATAL(test_log_count(EV_WAITC), 2);
    err = test_log_get(EV_WAITC, 1)->status;
    CU_ASSERT(is_loss(err));
    CU_ASSERT_EQUAL(test_log_get(EV_WAITC, 2)->status, err);
    CU_ASSERT_EQUAL(test_log_get(EV_READ, 1)->status, err);
    CU_ASSERT_EQUAL(test_log_get(EV_DRAIN, 1)->status, err);
    CU_ASSERT_EQUAL(test_log_get(EV_DRAIN, 2)->status, err);
    CU_ASSERT_EQUAL(test_log_index(EV_READ, 1), 0);
    CU_ASSERT_EQUAL(test_log_index(EV_DRAIN, 1), 1);
    CU_ASSERT_EQUAL(test_log_index(EV_DRAIN, 2), 2);
    CU_ASSERT_EQUAL(test_log_index(EV_WAITC, 1), 3);
    CU_ASSERT_EQUAL(test_log_index(EV_WAITC, 2), 4);

    /* Writes fail at once with the error; nothing calls back. */
    iov.iov_base = (void *)"x";
    iov.iov_len = 1;
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, "x", 1, NULL, NULL)), err);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(s, "x", 1, done_cb, TEST_TAG(EV_DRAIN, 3))), err);
    CU_ASSERT_EQUAL(TEST_CALL(rill_writelines(s, &iov, 1, NULL, NULL)), err);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, done_cb, TEST_TAG(EV_DRAIN, 4))), err);
    CU_ASSERT_EQUAL(rill_write_eof(s), err);
    /* The handle is still the user's: valid, and counted by the loop. */
    TEST_RUN_UNTIL(loop, 0, 30);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 1);
    CU_ASSERT_EQUAL(rill_loop_free(loop), RILL_EBUSY);
    CU_ASSERT_EQUAL(rill_is_closing(s), 1);
    CU_ASSERT_PTR_EQUAL(rill_stream_get_data(s), &pending);
    CU_ASSERT_PTR_EQUAL(rill_stream_loop(s), loop);
    CU_ASSERT_EQUAL(test_log.n, 5);
    /* A late wait_closed still hears the error. */
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, done_cb, TEST_TAG(EV_WAITC, 3))), 0);
    TEST_RUN_UNTIL(loop, test_log_count(EV_WAITC) == 3, 2000);
    CU_ASSERT_EQUAL(test_log_get(EV_WAITC, 3)->status, err);

    CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, done_cb, TEST_TAG(EV_CLOSE, 1))), 0);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(test_log_count(EV_CLOSE), 1);
    CU_ASSERT(test_log_get(EV_CLOSE, 1)->status <= 0);
    CU_ASSERT_EQUAL(test_log_count(EV_DRAIN), 2);
    free(data);
}

static void test_lost_tcp_linger0(void) { lost_while_draining(1, 1); }
static void test_lost_tcp_unread(void) { lost_while_draining(1, 0); }
static void test_lost_unix_unread(void) { lost_while_draining(0, 0); }

/* The asyncio idiom `while True: write(chunk); await drain()` against a peer
   that reads a little and then goes away ends with the connection's error
   instead of waiting forever (bpo-25441, bpo-36801). */
static struct {
    unsigned char chunk[32768];
    int rounds, status, ended;
} wl;

static void wl_drained(rill_stream *s, int status, void *ud)
{
    int rc;
    (void)ud;
    TEST_ASSERT_NOT_SYNC();
    if (status < 0) {
        wl.status = status;
        wl.ended = 1;
        return;
    }
    wl.rounds++;
    rc = TEST_CALL(rill_write(s, wl.chunk, sizeof wl.chunk, wl_drained, NULL));
    if (rc < 0) {   /* the loss was found by this very write: no callback comes */
        wl.status = rc;
        wl.ended = 1;
    }
}

static void test_write_drain_loop_peer_gone(void)
{
    rill_loop *loop = test_loop_new(0);
    int sv[2];
    rill_stream *s;
    test_sink k;

    memset(&wl, 0, sizeof wl);
    test_unix_pair(SOCK_STREAM, sv, 4096);
    s = test_adopt(loop, sv[0], NULL);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(s, wl_drained, NULL)), 0);
    test_sink_init(&k, loop, sv[1]);
    test_sink_watch(&k);
    TEST_RUN_UNTIL(loop, k.total >= 1000000, 5000);
    CU_ASSERT(wl.rounds >= 30);
    CU_ASSERT_EQUAL(wl.ended, 0);
    test_sink_stop(&k);
    close(sv[1]);
    TEST_RUN_UNTIL(loop, wl.ended, 3000);
    CU_ASSERT_EQUAL(wl.ended, 1);
    CU_ASSERT(is_loss(wl.status));
    close_stream(loop, s);
    test_loop_finish(loop);
}

/* SIGPIPE's disposition, the thread's mask and the pending set, to compare. */
typedef struct {
    struct sigaction sa;
    sigset_t mask;
} sigstate;

static void sig_snapshot(sigstate *st)
{
    CU_ASSERT_EQUAL(sigaction(SIGPIPE, NULL, &st->sa), 0);
    CU_ASSERT_EQUAL(pthread_sigmask(SIG_BLOCK, NULL, &st->mask), 0);
}

static void sig_unchanged(const sigstate *before)
{
    sigstate now;
    sigset_t pend;
    int sig;

    sig_snapshot(&now);
    CU_ASSERT(now.sa.sa_handler == before->sa.sa_handler);
    CU_ASSERT(now.sa.sa_handler == SIG_DFL);   /* run_tests keeps it so: a SIGPIPE kills */
    for (sig = 1; sig < 32; sig++)
        CU_ASSERT_EQUAL(sigismember(&now.mask, sig), sigismember(&before->mask, sig));
    CU_ASSERT_EQUAL(sigpending(&pend), 0);
    CU_ASSERT_EQUAL(sigismember(&pend, SIGPIPE), 0);
}

/* An idle write pipe is watched for its reader going away: wait_closed hears
   -EPIPE without any write, and later writes fail at once with it. */
static void lost_pipe_idle(int backend)
{
    rill_loop *loop = test_loop_new(backend);
    int p[2];
    rill_stream *w = NULL;

    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    CU_ASSERT_EQUAL_FATAL(rill_connect_write_pipe(loop, p[1], 0, &w), 0);
    log_reset();
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(w, done_cb, TEST_TAG(EV_WAITC, 1))), 0);
    TEST_RUN_UNTIL(loop, 0, 30);
    CU_ASSERT_EQUAL(test_log.n, 0);
    close(p[0]);
    TEST_RUN_UNTIL(loop, test_log_count(EV_WAITC) == 1, 3000);
    CU_ASSERT_EQUAL(test_log_get(EV_WAITC, 1)->status, -EPIPE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(w, "x", 1, NULL, NULL)), -EPIPE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(w, done_cb, TEST_TAG(EV_DRAIN, 1))), -EPIPE);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 1);
    close_stream(loop, w);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(test_log.n, 1);
}

static void test_lost_pipe_idle_poll(void)
{
    if (test_have_backend(RILL_BACKEND_POLL))
        lost_pipe_idle(RILL_BACKEND_POLL);
}
static void test_lost_pipe_idle_select(void) { lost_pipe_idle(RILL_BACKEND_SELECT); }

/* Drains waiting on a full pipe fail with -EPIPE when the reader goes away; the
   write that hits EPIPE raises no SIGPIPE and leaves the signal state alone. */
static void lost_pipe_draining(int backend)
{
    rill_loop *loop = test_loop_new(backend);
    const size_t N = 1u << 20;
    unsigned char *data = calloc(1, N);
    sigstate before;
    int p[2];
    rill_stream *w = NULL;

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    sig_snapshot(&before);
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    CU_ASSERT_EQUAL_FATAL(rill_connect_write_pipe(loop, p[1], 0, &w), 0);
    log_reset();
    CU_ASSERT_EQUAL(rill_write(w, data, N, NULL, NULL), 0);
    CU_ASSERT(rill_get_write_buffer_size(w) > HIGH);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(w, done_cb, TEST_TAG(EV_DRAIN, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_drain(w, done_cb, TEST_TAG(EV_DRAIN, 2))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(w, done_cb, TEST_TAG(EV_WAITC, 1))), 0);
    TEST_RUN_UNTIL(loop, 0, 30);
    CU_ASSERT_EQUAL(test_log.n, 0);
    close(p[0]);
    TEST_RUN_UNTIL(loop, test_log_count(EV_WAITC) == 1, 3000);
    CU_ASSERT_EQUAL(test_log_get(EV_DRAIN, 1)->status, -EPIPE);
    CU_ASSERT_EQUAL(test_log_get(EV_DRAIN, 2)->status, -EPIPE);
    CU_ASSERT_EQUAL(test_log_get(EV_WAITC, 1)->status, -EPIPE);
    CU_ASSERT_EQUAL(test_log_index(EV_WAITC, 1), 2);
    sig_unchanged(&before);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(w, "x", 1, NULL, NULL)), -EPIPE);
    close_stream(loop, w);
    test_loop_finish(loop);
    free(data);
}

static void test_lost_pipe_draining_poll(void)
{
    if (test_have_backend(RILL_BACKEND_POLL))
        lost_pipe_draining(RILL_BACKEND_POLL);
}
static void test_lost_pipe_draining_select(void) { lost_pipe_draining(RILL_BACKEND_SELECT); }

/* The reader is gone before the write: the write itself meets EPIPE and
   returns it; no signal escapes, none is left pending, the mask is restored. */
static void test_pipe_write_epipe_at_once(void)
{
    rill_loop *loop = test_loop_new(0);
    sigstate before;
    int p[2];
    rill_stream *w = NULL;

    sig_snapshot(&before);
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    CU_ASSERT_EQUAL_FATAL(rill_connect_write_pipe(loop, p[1], 0, &w), 0);
    close(p[0]);
    log_reset();
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(w, done_cb, TEST_TAG(EV_WAITC, 1))), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(w, "boom", 4, done_cb, TEST_TAG(EV_DRAIN, 1))), -EPIPE);
    sig_unchanged(&before);
    CU_ASSERT_EQUAL(TEST_CALL(rill_write(w, "boom", 4, NULL, NULL)), -EPIPE);
    TEST_RUN_UNTIL(loop, test_log_count(EV_WAITC) == 1, 3000);
    CU_ASSERT_EQUAL(test_log_get(EV_WAITC, 1)->status, -EPIPE);
    close_stream(loop, w);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(test_log_count(EV_DRAIN), 0);
}

/* A SIGPIPE the program already had pending (and blocked) is the program's:
   rill's own EPIPE neither consumes it nor unblocks it. */
static void test_pipe_write_keeps_pending_sigpipe(void)
{
    rill_loop *loop = test_loop_new(0);
    sigset_t block, old, pend;
    struct timespec zero = { 0, 0 };
    int p[2];
    rill_stream *w = NULL;

    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    CU_ASSERT_EQUAL_FATAL(pthread_sigmask(SIG_BLOCK, &block, &old), 0);
    CU_ASSERT_EQUAL(raise(SIGPIPE), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    CU_ASSERT_EQUAL_FATAL(rill_connect_write_pipe(loop, p[1], 0, &w), 0);
    close(p[0]);
    CU_ASSERT_EQUAL(rill_write(w, "boom", 4, NULL, NULL), -EPIPE);
    CU_ASSERT_EQUAL(sigpending(&pend), 0);
    CU_ASSERT_EQUAL(sigismember(&pend, SIGPIPE), 1);
    CU_ASSERT_EQUAL(pthread_sigmask(SIG_BLOCK, NULL, &pend), 0);
    CU_ASSERT_EQUAL(sigismember(&pend, SIGPIPE), 1);
    CU_ASSERT_EQUAL(sigtimedwait(&block, NULL, &zero), SIGPIPE);
    CU_ASSERT_EQUAL(sigtimedwait(&block, NULL, &zero), -1);   /* exactly one */
    CU_ASSERT_EQUAL(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    close_stream(loop, w);
    test_loop_finish(loop);
}

int test_write_register(void)
{
    static const test_case cases[] = {
        { "write tries the socket, buffers only the rest, never jumps the buffer", test_write_try_then_buffer },
        { "writelines sends its lines with one writev", test_writelines_one_writev },
        { "4 MiB then close reach a slow peer complete and in order (poll)", test_write_4mib_poll },
        { "4 MiB then close reach a slow peer complete and in order (select)", test_write_4mib_select },
        { "drain and write callbacks complete next iteration below high", test_drain_at_once_below_high },
        { "drains above high wait for low and are released together", test_drain_waits_for_low },
        { "a drain answered below high stays answered after a big write", test_drain_answered_stays_answered },
        { "set_write_buffer_limits: EINVAL, (0,0) waits for empty, custom low", test_write_buffer_limits },
        { "write buffer max: over it ENOBUFS, nothing queued, usable after the peer reads", test_write_buffer_max_all_or_nothing },
        { "write buffer max: EINVAL, EMODE, 0 unlimited, lowered below the buffer, no wrap", test_write_buffer_max_setter },
        { "write_eof then read the answer (unix)", test_write_eof_unix },
        { "write_eof then read the answer (tcp)", test_write_eof_tcp },
        { "pipes: modes, EMODE both ways, no write_eof", test_pipe_modes },
        { "pipe streams refuse files and ends opened the wrong way", test_pipe_refuses_wrong_descriptors },
        { "writes after close and abort fail with ECLOSED", test_writes_after_close },
        { "lost: tcp peer resets (SO_LINGER 0) while drains wait", test_lost_tcp_linger0 },
        { "lost: tcp peer closes with unread data while drains wait", test_lost_tcp_unread },
        { "lost: unix peer closes with unread data while drains wait", test_lost_unix_unread },
        { "a write/drain loop ends with the error when the peer goes", test_write_drain_loop_peer_gone },
        { "lost: idle write pipe hears its reader exit (poll)", test_lost_pipe_idle_poll },
        { "lost: idle write pipe hears its reader exit (select)", test_lost_pipe_idle_select },
        { "lost: drains on a full pipe fail with EPIPE, no SIGPIPE (poll)", test_lost_pipe_draining_poll },
        { "lost: drains on a full pipe fail with EPIPE, no SIGPIPE (select)", test_lost_pipe_draining_select },
        { "pipe write meeting EPIPE at once: error, signal state untouched", test_pipe_write_epipe_at_once },
        { "a SIGPIPE already pending stays pending and blocked", test_pipe_write_keeps_pending_sigpipe },
        { NULL, NULL }
    };
    return test_add_suite("write", cases);
}
