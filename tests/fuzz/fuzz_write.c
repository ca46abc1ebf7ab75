/* fuzz_write: the write side (rill_write, rill_writelines, rill_drain, rill_write_eof,
   rill_set_write_buffer_limits, rill_close, rill_abort, rill_wait_closed) against a
   peer socket that reads in sizes the input chooses, pauses, or goes away.

   Input: [flags][op...]
     flags  bits 0-1 how the loop runs (epoll, poll, select backend, or the program's
            own poll() through rill_loop_prepare_poll), bit 2 small socket buffers (most
            writes are buffered by rill), bit 3 abort instead of a graceful close at the
            end, bits 4-7 the first peer read size
     op     one opcode byte plus operands (see run_op)

   Properties, any violation aborts:
   - the peer receives exactly the bytes accepted (every write that returned 0), in
     order, then EOF when the stream was closed gracefully or half-closed; only a
     prefix when the stream was aborted or the peer went away;
   - every callback (write/writelines with a callback, drain, close, wait_closed) runs
     exactly once, never inside the call that started it; drains and write callbacks
     finish before the close callbacks, and those before the wait_closed callbacks;
   - statuses: 0 while nothing went wrong; RILL_ECANCELED only after an abort or a
     close timeout (the close callback then gets RILL_ETIMEDOUT); a connection error
     only after the peer went away;
   - return codes follow the write machine: writes after write_eof or close fail with
     RILL_ECLOSED, write_eof twice is fine, and so on (checked while the peer is there);
   - rill never holds more than it was given: buffered <= accepted - received.
   An op can make the n-th library allocation from then on fail (rill__alloc_fail_at):
   from then on RILL_ENOMEM is allowed as a return code and a status, and the peer may
   get only a prefix; exactly-once, ordering and no-crash/no-leak still hold. */
#include "fuzz_common.h"
#include "rill_private.h"
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define MAX_CBS 512
#define MAX_TOTAL (256u * 1024u)   /* bytes accepted per run at most: bounds the time */
#define RUN_MS 10000
#define PEER_BUF 65536

enum { CB_WRITE, CB_DRAIN, CB_CLOSE, CB_WAIT_CLOSED };

typedef struct cb_rec {
    struct state *st;
    int kind;
    int calls;
    int status;
    unsigned long order;     /* when it ran */
} cb_rec;

typedef struct state {
    rill_loop *loop;
    rill_stream *s;
    int conn_done, conn_status;
    int peer;                    /* the test's end; -1 once it went away */
    int peer_gone;               /* the peer closed its end: errors are allowed */
    int peer_paused;
    size_t peer_read;            /* read size */
    int peer_eof;                /* the peer read EOF */
    size_t accepted;             /* bytes of writes that returned 0 */
    size_t received;             /* bytes the peer read */
    uint64_t gen;                /* next byte of the pattern to write */
    int eof_asked;               /* rill_write_eof returned 0 */
    int closed;                  /* rill_close or rill_abort was called */
    int aborted;
    int close_timeout;           /* rill_set_close_timeout: the close may end as an abort */
    int allocfail;               /* a library allocation was made to fail: RILL_ENOMEM anywhere */
    size_t upper;                /* bytes that may reach the peer: accepted, and writes refused
                                    with RILL_ENOMEM (part of one may have gone out) */
    int usable;                  /* the stream may still be touched */
    int lost;                    /* a call reported the connection's error */
    cb_rec cbs[MAX_CBS];
    size_t ncbs;
    unsigned long order;
    unsigned char rbuf[PEER_BUF];
} state;

/* The byte stream written: position k holds pattern[k % PERIOD], a period prime to
   every buffer size, so a lost, repeated or reordered byte shows. The table holds one
   period and a peer read's worth more, so any slice up to PEER_BUF is contiguous. */
#define PERIOD 65521u
static uint8_t pattern[PERIOD + PEER_BUF];

static void pattern_init(void)
{
    uint64_t k;
    for (k = 0; k < sizeof pattern; k++) {
        uint64_t i = k % PERIOD;
        pattern[k] = (uint8_t)((i * 2654435761u) >> 13 ^ (i >> 9));
    }
}

static const uint8_t *pattern_at(uint64_t k) { return pattern + k % PERIOD; }

static void fill(uint8_t *dst, uint64_t from, size_t n)
{
    while (n > 0) {
        size_t k = n < PEER_BUF ? n : PEER_BUF;
        memcpy(dst, pattern_at(from), k);
        dst += k;
        from += k;
        n -= k;
    }
}

static void on_done(rill_stream *s, int status, void *ud)
{
    cb_rec *r = ud;
    state *st = r->st;
    FZ_CALLBACK();
    FZ_CHECK(s == st->s);
    FZ_CHECK(r->calls == 0);     /* exactly once */
    r->calls++;
    r->status = status;
    r->order = ++st->order;
    if (fz_verbose)
        fprintf(stderr, "  cb %ld kind %d status %d\n", (long)(r - st->cbs), r->kind, status);
    switch (r->kind) {
    case CB_WRITE:
    case CB_DRAIN:
        /* 0, or: cancelled by an abort, the connection's error, a close's timeout */
        if (status != 0)
            FZ_CHECK((status == RILL_ECANCELED && (st->aborted || st->close_timeout || st->allocfail)) ||
                     (status == RILL_ENOMEM && st->allocfail) || (st->peer_gone && status < 0));
        break;
    case CB_CLOSE:   /* a close overtaken by an abort reports RILL_ECANCELED, by its timeout RILL_ETIMEDOUT */
        if (status != 0)
            FZ_CHECK((status == RILL_ECANCELED && st->aborted) || (status == RILL_ETIMEDOUT && st->close_timeout) ||
                     (status == RILL_ENOMEM && st->allocfail) || (st->peer_gone && status < 0));
        break;
    case CB_WAIT_CLOSED:
        if (status != 0)
            FZ_CHECK((status == RILL_ENOMEM && st->allocfail) || (st->peer_gone && status < 0));
        break;
    }
}

static cb_rec *new_cb(state *st, int kind)
{
    cb_rec *r;
    if (st->ncbs == MAX_CBS)
        return NULL;
    r = &st->cbs[st->ncbs++];
    memset(r, 0, sizeof *r);
    r->st = st;
    r->kind = kind;
    return r;
}

/* A call that may fail: which failures are allowed. */
static void check_rc(state *st, int rc, int expect)
{
    if (rc == expect)
        return;
    if (rc == RILL_ENOMEM && st->allocfail) {
        st->lost = 1;
        return;
    }
    /* After the peer went away any call may report the connection's error. */
    FZ_CHECK(st->peer_gone && rc < 0);
    st->lost = 1;
}

static int write_expect(const state *st)
{
    return st->closed || st->eof_asked ? RILL_ECLOSED : 0;
}

static void do_write(state *st, size_t len, int with_cb)
{
    uint8_t *buf = malloc(len ? len : 1);
    cb_rec *r = with_cb ? new_cb(st, CB_WRITE) : NULL;
    int rc;

    FZ_CHECK(buf != NULL);
    fill(buf, st->gen, len);
    if (with_cb && r == NULL)
        with_cb = 0;
    rc = FZ_CALL(rill_write(st->s, buf, len, with_cb ? on_done : NULL, r));
    free(buf);
    check_rc(st, rc, write_expect(st));
    /* RILL_ENOMEM from a write that had started sending loses the stream; one refused
       before sending (no room for its callback) leaves it as it was. */
    if (rc == 0 || (rc == RILL_ENOMEM && (st->s->flags & S_LOST))) {
        st->upper += len;
        st->gen += len;
    }
    if (rc == 0)
        st->accepted += len;
    else if (r != NULL)
        st->ncbs--;              /* refused: its callback never runs */
}

static void do_writelines(state *st, fz_in *in, int n, int with_cb)
{
    struct iovec iov[8];
    uint8_t *buf;
    size_t lens[8], total = 0, off = 0;
    cb_rec *r = with_cb ? new_cb(st, CB_WRITE) : NULL;
    int i, rc;

    for (i = 0; i < n; i++) {
        uint8_t b = fz_u8(in);
        lens[i] = b < 200 ? b : (size_t)(b - 199) * 300;
        total += lens[i];
    }
    buf = malloc(total ? total : 1);
    FZ_CHECK(buf != NULL);
    fill(buf, st->gen, total);
    for (i = 0; i < n; i++) {
        iov[i].iov_base = buf + off;
        iov[i].iov_len = lens[i];
        off += lens[i];
    }
    if (with_cb && r == NULL)
        with_cb = 0;
    rc = FZ_CALL(rill_writelines(st->s, iov, n, with_cb ? on_done : NULL, r));
    free(buf);
    check_rc(st, rc, write_expect(st));
    if (rc == 0 || (rc == RILL_ENOMEM && (st->s->flags & S_LOST))) {
        st->upper += total;
        st->gen += total;
    }
    if (rc == 0)
        st->accepted += total;
    else if (r != NULL)
        st->ncbs--;
}

static void peer_read(state *st, size_t want)
{
    ssize_t n;
    if (st->peer < 0 || st->peer_eof)
        return;
    if (want > sizeof st->rbuf)
        want = sizeof st->rbuf;
    n = read(st->peer, st->rbuf, want);
    if (n < 0) {
        FZ_CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
        return;
    }
    if (n == 0) {
        st->peer_eof = 1;
        return;
    }
    /* In order, nothing lost or repeated (n <= PEER_BUF: one contiguous slice). */
    FZ_CHECK(memcmp(st->rbuf, pattern_at(st->received), (size_t)n) == 0);
    st->received += (size_t)n;
    FZ_CHECK(st->received <= st->upper);
}

static void iterate(state *st)
{
    if (!st->peer_paused)
        peer_read(st, st->peer_read);
    FZ_CHECK(fz_run_once(st->loop, 0) >= 0);
    if (st->closed)
        st->usable = 0;          /* the loop ran after close/abort: the stream may be freed */
    if (st->usable && !st->peer_gone)
        FZ_CHECK(st->received <= st->upper && rill_get_write_buffer_size(st->s) <= st->upper - st->received);
}

static size_t read_size(uint8_t b)
{
    return b == 0 ? 1 : b < 128 ? b : (size_t)(b - 127) * 512;
}

static void run_op(state *st, fz_in *in)
{
    uint8_t b = fz_u8(in), v;
    cb_rec *r;
    int rc, i, n;

    if (!st->usable) {
        /* Only the peer and the loop are left to drive. */
        if ((b & 15) == 7)
            for (n = fz_u8(in) % 16, i = 0; i <= n; i++)
                iterate(st);
        return;
    }
    switch (b & 15) {
    case 0:   /* write, no callback */
    case 1:   /* write with a callback: an awaited write */
        v = fz_u8(in);
        if (st->accepted < MAX_TOTAL)
            do_write(st, v < 128 ? v : (size_t)(v - 127) * ((b >> 4) + 1) * 64, (b & 15) == 1);
        break;
    case 2:   /* writelines of 1-8 lines, with a callback when bit 7 */
        if (st->accepted < MAX_TOTAL)
            do_writelines(st, in, 1 + ((b >> 4) & 7), (b & 0x80) != 0);
        break;
    case 3:   /* drain */
        if ((r = new_cb(st, CB_DRAIN)) == NULL)
            break;
        rc = FZ_CALL(rill_drain(st->s, on_done, r));
        check_rc(st, rc, st->closed ? RILL_ECLOSED : 0);
        if (rc != 0)
            st->ncbs--;
        break;
    case 4:   /* write_eof */
        rc = FZ_CALL(rill_write_eof(st->s));
        check_rc(st, rc, st->closed ? RILL_ECLOSED : 0);
        if (rc == 0)
            st->eof_asked = 1;
        break;
    case 5:   /* graceful close, with a callback unless bit 4 */
        r = (b & 0x10) ? NULL : new_cb(st, CB_CLOSE);
        rc = FZ_CALL(rill_close(st->s, r != NULL ? on_done : NULL, r));
        if (rc == RILL_ENOMEM && st->allocfail && r != NULL) {
            st->ncbs--;          /* no room for the callback: refused, nothing done */
            break;
        }
        FZ_CHECK(rc == 0);
        st->closed = 1;
        break;
    case 6:   /* abort (rarely: most runs should flush), or make an allocation fail */
        if (b & 0x10) {
            FZ_CALL_VOID(rill_abort(st->s));
            st->closed = st->aborted = 1;
        } else if ((b & 0xe0) == 0x20 && !st->allocfail) {
            fz_alloc_fail_at(1 + ((b >> 3) & 1) + fz_u8(in) % 8);
            st->allocfail = 1;
        }
        break;
    case 7:   /* run the loop 1-16 iterations */
        for (n = fz_u8(in) % 16, i = 0; i <= n; i++)
            iterate(st);
        break;
    case 8:   /* the peer stops or resumes reading */
        st->peer_paused = !st->peer_paused;
        break;
    case 9:   /* the peer's read size */
        st->peer_read = read_size(fz_u8(in));
        break;
    case 10:  /* the peer goes away (rarely) */
        if ((b & 0xf0) == 0xa0 && st->peer >= 0) {
            close(st->peer);
            st->peer = -1;
            st->peer_gone = 1;
        }
        break;
    case 11: { /* watermarks: low <= high accepted, low > high refused */
        size_t high = (size_t)fz_u8(in) * 97, low = (size_t)fz_u8(in) * 61;
        rc = FZ_CALL(rill_set_write_buffer_limits(st->s, high, low));
        FZ_CHECK(rc == (low > high ? RILL_EINVAL : 0));
        break;
    }
    case 12:  /* an empty write */
        do_write(st, 0, (b & 0x10) != 0);
        break;
    case 13:  /* wait_closed */
        if ((r = new_cb(st, CB_WAIT_CLOSED)) == NULL)
            break;
        rc = FZ_CALL(rill_wait_closed(st->s, on_done, r));
        if (rc == RILL_ENOMEM && st->allocfail)
            st->ncbs--;
        else
            FZ_CHECK(rc == 0);
        break;
    case 14:  /* queries; with bit 4 a close timeout of 1-8 ms */
        if (b & 0x10) {
            rc = rill_set_close_timeout(st->s, 1 + (b >> 5));
            if (fz_verbose)
                fprintf(stderr, "  set_close_timeout: %d\n", rc);
            /* Setting it while a close flushes starts its first timer: that needs memory. */
            FZ_CHECK(rc == 0 || (rc == RILL_ENOMEM && st->allocfail && st->closed));
            if (rc == 0)
                st->close_timeout = 1;
        }
        FZ_CHECK(rill_can_write_eof(st->s) == 1);
        if (!st->peer_gone && !st->allocfail)   /* a lost connection is closing too */
            FZ_CHECK(rill_is_closing(st->s) == st->closed);
        break;
    default:  /* a larger write */
        v = fz_u8(in);
        if (st->accepted < MAX_TOTAL)
            do_write(st, (size_t)v * 256 + fz_u8(in), b & 0x10);
        break;
    }
}

static void on_conn(rill_stream *s, int status, void *ud)
{
    state *st = ud;
    FZ_CALLBACK();
    st->conn_done = 1;
    st->conn_status = status;
    st->s = s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    pattern_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static state st;
    fz_in in;
    uint8_t flags;
    int sv[2], fl, small;
    size_t i;
    uint64_t end;
    unsigned long last_drain = 0, first_close = 0, last_close = 0, first_wait = 0, live;

    in.p = data;
    in.n = size;
    flags = fz_u8(&in);
    small = (flags & 4) != 0;
    memset(&st, 0, sizeof st);
    st.peer_read = read_size((uint8_t)((flags >> 4) * 17));
    live = rill__alloc_live();

    FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    if (small) {
        int sz = 4096;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    }
    fl = fcntl(sv[1], F_GETFL);
    FZ_CHECK(fl >= 0 && fcntl(sv[1], F_SETFL, fl | O_NONBLOCK) == 0);
    st.peer = sv[1];
    st.loop = fz_loop_new(flags & 3, NULL, 0);
    FZ_CHECK(FZ_CALL(rill_connect_sock(st.loop, sv[0], NULL, on_conn, &st, NULL)) == 0);
    fz_run_until(st.loop, &st.conn_done, RUN_MS);
    FZ_CHECK(st.conn_status == 0 && st.s != NULL);
    st.usable = 1;

    while (fz_left(&in) > 0)
        run_op(&st, &in);

    /* The end: close (or abort) unless done, then the peer reads everything. */
    if (st.usable && !st.closed) {
        if (flags & 8) {
            FZ_CALL_VOID(rill_abort(st.s));
            st.aborted = 1;
        } else {
            cb_rec *r = new_cb(&st, CB_CLOSE);
            int rc = FZ_CALL(rill_close(st.s, r != NULL ? on_done : NULL, r));
            if (rc == RILL_ENOMEM && st.allocfail && r != NULL) {
                st.ncbs--;       /* without a callback a close needs no memory */
                rc = FZ_CALL(rill_close(st.s, NULL, NULL));
            }
            FZ_CHECK(rc == 0);
        }
        st.closed = 1;
    }
    st.peer_paused = 0;
    if (st.peer_read < 4096)
        st.peer_read = 4096;
    end = fz_now_ms() + RUN_MS;
    while (rill_loop_alive(st.loop) || (st.peer >= 0 && !st.peer_eof)) {
        FZ_CHECK(fz_now_ms() < end);   /* a close or a flush that never ends */
        iterate(&st);
        if (!rill_loop_alive(st.loop) && st.peer >= 0 && !st.peer_eof)
            peer_read(&st, sizeof st.rbuf);
    }
    FZ_CHECK(rill_loop_free(st.loop) == 0);
    fz_alloc_fail_at(0);
    FZ_CHECK(rill__alloc_live() == live);

    /* Everything accepted arrived unless the stream was aborted (or its close timed out)
       or the peer left, or an allocation failed. */
    if (!st.aborted && !st.close_timeout && !st.peer_gone && !st.allocfail)
        FZ_CHECK(st.received == st.accepted && st.peer_eof);
    for (i = 0; i < st.ncbs; i++) {
        cb_rec *r = &st.cbs[i];
        FZ_CHECK(r->calls == 1);
        if (r->kind == CB_WRITE || r->kind == CB_DRAIN) {
            if (r->order > last_drain)
                last_drain = r->order;
        } else if (r->kind == CB_CLOSE) {
            if (first_close == 0 || r->order < first_close)
                first_close = r->order;
            if (r->order > last_close)
                last_close = r->order;
        } else if (first_wait == 0 || r->order < first_wait) {
            first_wait = r->order;
        }
    }
    /* The close machine's order: drains, then close callbacks, then wait_closed
       (those registered before the close; a wait_closed before any close may finish
       first only when the connection was lost). */
    if (first_close != 0)
        FZ_CHECK(last_drain < first_close);
    if (first_wait != 0 && last_close != 0 && !st.peer_gone && !st.allocfail)
        FZ_CHECK(last_close < first_wait);
    if (st.peer >= 0)
        close(st.peer);
    return 0;
}
