/* The read side end to end: rill_read, rill_readline, rill_readexactly,
   rill_readuntil over socketpairs, pipes and TCP, against a port of asyncio's
   StreamReader rules (docs/semantics.md items 1-20), plus flow control, the cost of
   read chains over buffered data, cancellation, pause, timeouts and resets.

   Every call that starts an operation runs inside TEST_CALL(), and every
   callback checks it is not running inside one: no callback is ever synchronous. */
#include "support/testutil.h"
#include "support/streams.h"
#include "rill_private.h"
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

/* ----------------------------------------------------------- helpers */

static rill_stream *adopt(rill_loop *loop, int fd, size_t limit)
{
    rill_connect_opts o;
    memset(&o, 0, sizeof o);
    o.limit = limit;
    return test_adopt(loop, fd, &o);
}

/* A socketpair: one end becomes the stream, the other (*peer) is the test's. */
static rill_stream *sock_stream(rill_loop *loop, size_t limit, int *peer)
{
    int sv[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    *peer = sv[1];
    return adopt(loop, sv[0], limit);
}

/* A loopback TCP connection: the client end becomes the stream. */
static rill_stream *tcp_stream(rill_loop *loop, size_t limit, int *peer)
{
    int c;
    CU_ASSERT_EQUAL_FATAL(test_tcp_pair(peer, &c, NULL), 0);
    return adopt(loop, c, limit);
}

static void put(int fd, const void *p, size_t n)
{
    const char *q = p;
    while (n > 0) {
        ssize_t k = write(fd, q, n);
        CU_ASSERT_FATAL(k > 0);
        q += k;
        n -= (size_t)k;
    }
}

static void put_str(int fd, const char *s) { put(fd, s, strlen(s)); }

static void spin(rill_loop *loop, int iterations)
{
    while (iterations-- > 0)
        rill_loop_run_once(loop, 10);
}

static int run_until_buffered(rill_loop *loop, rill_stream *s, size_t n)
{
    uint64_t end = test_now_ms() + 5000;
    while (s->rbuf.len < n && test_now_ms() < end)
        rill_loop_run_once(loop, 10);
    return s->rbuf.len >= n;
}

static int run_until_eof_seen(rill_loop *loop, rill_stream *s)
{
    uint64_t end = test_now_ms() + 5000;
    while (!(s->flags & S_EOF) && test_now_ms() < end)
        rill_loop_run_once(loop, 10);
    return (s->flags & S_EOF) != 0;
}

static int run_until_count(rill_loop *loop, const int *count, int n, int ms)
{
    uint64_t end = test_now_ms() + (uint64_t)ms;
    while (*count < n && test_now_ms() < end)
        rill_loop_run_once(loop, 10);
    return *count >= n;
}

static int pending_bytes(int fd)
{
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) < 0)
        return -1;
    return n;
}

/* Records the last read callback. */
typedef struct {
    int calls;
    int status;
    size_t len;
    int data_null;
    int at_eof;
    size_t rbuf_after;       /* the stream's buffered bytes inside the callback */
    char data[256];
    const char *expect;      /* if set: the whole data must equal it */
    int mismatch;
    uint64_t when;
} rd;

static void rd_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    rd *r = ud;
    TEST_ASSERT_NOT_SYNC();
    r->calls++;
    r->status = status;
    r->len = len;
    r->data_null = data == NULL;
    memset(r->data, 0, sizeof r->data);
    if (data != NULL)
        memcpy(r->data, data, len < sizeof r->data - 1 ? len : sizeof r->data - 1);
    if (r->expect != NULL && (data == NULL || memcmp(data, r->expect, len) != 0))
        r->mismatch++;
    r->at_eof = rill_at_eof(s);
    r->rbuf_after = s->rbuf.len;
    r->when = test_now_ms();
}

static void finish_stream(rill_loop *loop, rill_stream *s, int peer)
{
    if (s != NULL)
        CU_ASSERT_EQUAL(rill_close(s, NULL, NULL), 0);
    if (peer >= 0)
        close(peer);
    test_loop_finish(loop);
}

/* A non-blocking writer driven by the loop: sends total bytes (of data, or of
   a repeating pattern), then half-closes (socket) or closes (pipe). */
typedef struct {
    int fd;
    int is_pipe;
    const char *data;
    size_t total, sent;
    int finished;
    int err;
    rill_watch *w;
    rill_stream *observe;    /* if set: the largest s->rbuf.len seen at each wake-up */
    size_t peak;
} pump;

static char pattern[65536];

static void pump_cb(rill_watch *w, int revents, void *ud)
{
    pump *p = ud;
    (void)revents;
    if (p->observe != NULL && p->observe->rbuf.len > p->peak)
        p->peak = p->observe->rbuf.len;
    while (p->sent < p->total) {
        size_t n = p->total - p->sent;
        const char *src = p->data != NULL ? p->data + p->sent : pattern + p->sent % sizeof pattern;
        ssize_t k;
        if (p->data == NULL && n > sizeof pattern - p->sent % sizeof pattern)
            n = sizeof pattern - p->sent % sizeof pattern;
        k = write(p->fd, src, n);
        if (k < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            p->err = errno;
            break;
        }
        p->sent += (size_t)k;
    }
    rill_watch_stop(w);
    p->w = NULL;
    p->finished = 1;
    if (p->is_pipe) {
        close(p->fd);
        p->fd = -1;
    } else {
        shutdown(p->fd, SHUT_WR);
    }
}

static void pump_start(pump *p, rill_loop *loop, int fd, int is_pipe, const char *data, size_t total)
{
    size_t i;
    for (i = 0; i < sizeof pattern; i++)
        pattern[i] = (char)('a' + i % 23);
    memset(p, 0, sizeof *p);
    p->fd = fd;
    p->is_pipe = is_pipe;
    p->data = data;
    p->total = total;
    test_nonblock(fd);
    p->w = rill_watch_fd(loop, fd, RILL_WRITABLE, pump_cb, p);
    CU_ASSERT_FATAL(p->w != NULL);
}

static void pump_stop(pump *p)
{
    if (p->w != NULL)
        rill_watch_stop(p->w);
    p->w = NULL;
}

/* ===================================================== the table test

   Every input x limit x op x chunking runs through rill and through a port of
   asyncio's StreamReader fed the same arrivals; the two result sequences
   (status, bytes, at_eof in the callback) must be equal. The "all at once"
   chunking is the model applied to the whole input.

   Across chunkings the sequences cannot be identical byte for byte, by
   asyncio's own rules: read(n) returns what has arrived so far, and a limit
   error's `consumed` (and what readline discards) is how much was buffered when
   the limit was crossed. Those details are folded (trace_normalize) and the
   rest must then be identical; the model is held to the same rule. */

enum { K_READ, K_READ_ALL, K_LINE, K_EXACT, K_UNTIL };

typedef struct {
    const char *name;
    int kind;
    size_t n;
    const char *sep;
    size_t seplen;
} op_spec;

static const op_spec table_ops[] = {
    { "read(1)", K_READ, 1, NULL, 0 },
    { "read(3)", K_READ, 3, NULL, 0 },
    { "read(100)", K_READ, 100, NULL, 0 },
    { "read(-1)", K_READ_ALL, 0, NULL, 0 },
    { "readline", K_LINE, 0, "\n", 1 },
    { "readexactly(1)", K_EXACT, 1, NULL, 0 },
    { "readexactly(5)", K_EXACT, 5, NULL, 0 },
    { "readuntil(\\n)", K_UNTIL, 0, "\n", 1 },
    { "readuntil(\\r\\n\\r\\n)", K_UNTIL, 0, "\r\n\r\n", 4 },
    { "readuntil(--boundary)", K_UNTIL, 0, "--boundary", 10 },   /* longer than the inline copy */
};
#define NOPS (sizeof table_ops / sizeof table_ops[0])

/* After the op under test ends (EOF or an error), one read(-1) collects what is
   left: no byte may be lost or handed out twice. */
static const op_spec drain_op = { "read(-1)", K_READ_ALL, 0, NULL, 0 };

typedef struct {
    const char *data;
    size_t len;
} input;

#define IN(s) { s, sizeof s - 1 }
static char gen_mixed[300], gen_long[100];
static const input table_inputs[] = {
    IN(""),
    IN("a"),
    IN("\n"),
    IN("hello\n"),
    IN("hello\nworld\n"),
    IN("no newline at all"),
    IN("1234567\n"),
    IN("12345678\n"),
    IN("12345678"),
    IN("1234567\n12345678\nabc\n"),
    IN("\r\n\r\n"),
    IN("GET / HTTP/1.0\r\nHost: x\r\n\r\nbody"),
    IN("\r\n\r\r\n\r\n\r\n"),
    IN("a\r\nb\r\n\r\nc\r\n\r\n"),
    IN("line1\nline2\n\nline4"),
    IN("\n\n\n"),
    IN("this line is longer than the limit by far\nshort\n"),
    IN("abc\r\n\r"),
    IN("a\0b\n\0\0\n"),
    IN("part1--boundarypart2--boundary--boundarytail"),
    IN("12345678\r\n\r\nx"),
    IN("--boundar--boundary\n"),
    { gen_mixed, sizeof gen_mixed },
    { gen_long, sizeof gen_long },
};
#define NINPUTS (sizeof table_inputs / sizeof table_inputs[0])

static unsigned long rng_state;
static unsigned long rng(void)
{
    rng_state = rng_state * 6364136223846793005ul + 1442695040888963407ul;
    return (rng_state >> 33) & 0x7fffffff;
}

static void gen_inputs(void)
{
    static const char *const pieces[] = { "\n", "\r\n", "\r\n\r\n", "--boundary", "x", "yz", "\0", "0123456789" };
    size_t i = 0;
    rng_state = 7;
    while (i < sizeof gen_mixed) {
        const char *p = pieces[rng() % 8];
        size_t n = *p ? strlen(p) : 1;
        if (n > sizeof gen_mixed - i)
            n = sizeof gen_mixed - i;
        memcpy(gen_mixed + i, p, n);
        i += n;
    }
    memset(gen_long, 'x', sizeof gen_long);
}

/* One recorded read result. */
typedef struct {
    int status;
    size_t len;
    size_t at;      /* offset of its bytes in the arena */
    int at_eof;
} res;

#define MAXR 1200
#define ARENA 8192
typedef struct {
    res r[MAXR];
    int n;
    char arena[ARENA];
    size_t used;
    int overflow;
} trace;

static int trace_add(trace *t, int status, const char *p, size_t len, int at_eof)
{
    if (t->n == MAXR || t->used + len > ARENA) {
        t->overflow = 1;
        return -1;
    }
    t->r[t->n].status = status;
    t->r[t->n].len = len;
    t->r[t->n].at = t->used;
    t->r[t->n].at_eof = at_eof;
    if (len > 0)
        memcpy(t->arena + t->used, p, len);
    t->used += len;
    return t->n++;
}

static int trace_eq(const trace *a, const trace *b)
{
    int i;
    if (a->overflow || b->overflow || a->n != b->n)
        return 0;
    for (i = 0; i < a->n; i++) {
        const res *x = &a->r[i], *y = &b->r[i];
        if (x->status != y->status || x->len != y->len || x->at_eof != y->at_eof ||
            memcmp(a->arena + x->at, b->arena + y->at, x->len) != 0)
            return 0;
    }
    return 1;
}

static void trace_print(const char *title, const trace *t)
{
    int i;
    size_t k;
    fprintf(stderr, "    %s (%d results%s):\n", title, t->n, t->overflow ? ", OVERFLOW" : "");
    for (i = 0; i < t->n && i < 40; i++) {
        fprintf(stderr, "      %s len=%lu eof=%d \"", t->r[i].status ? rill_err_name(t->r[i].status) : "ok",
                (unsigned long)t->r[i].len, t->r[i].at_eof);
        for (k = 0; k < t->r[i].len && k < 60; k++) {
            unsigned char c = (unsigned char)t->arena[t->r[i].at + k];
            if (c >= 32 && c < 127 && c != '\\')
                fputc(c, stderr);
            else
                fprintf(stderr, "\\x%02x", c);
        }
        fprintf(stderr, "%s\"\n", t->r[i].len > 60 ? "..." : "");
    }
}

/* Results asyncio's rules make depend on how the bytes arrived are folded away:
   read(n) returns what has arrived (adjacent reads are joined), and a limit
   error's length is how much was buffered when the limit was crossed (only
   the status is kept; what readline discarded is joined to the bytes read after). */
static void trace_normalize(const trace *in, const op_spec *op, trace *out)
{
    int i, last_merge = 0;
    char carry[ARENA];
    size_t ncarry = 0;

    memset(out, 0, sizeof *out);
    out->overflow = in->overflow;
    for (i = 0; i < in->n; i++) {
        const res *x = &in->r[i];
        const char *bytes = in->arena + x->at;
        if (x->status == RILL_ELIMIT) {
            if (op->kind == K_LINE) {
                memcpy(carry + ncarry, bytes, x->len);
                ncarry += x->len;
            }
            trace_add(out, RILL_ELIMIT, NULL, 0, 0);
            last_merge = 0;
            continue;
        }
        if (ncarry > 0) {
            memcpy(carry + ncarry, bytes, x->len);
            trace_add(out, x->status, carry, ncarry + x->len, x->at_eof);
            ncarry = 0;
            last_merge = 0;
            continue;
        }
        if (op->kind == K_READ && x->status == 0 && x->len > 0 && last_merge && out->n > 0) {
            res *y = &out->r[out->n - 1];
            if (out->used + x->len <= ARENA) {
                memcpy(out->arena + out->used, bytes, x->len);
                out->used += x->len;
                y->len += x->len;
                y->at_eof = x->at_eof;
            } else {
                out->overflow = 1;
            }
            continue;
        }
        trace_add(out, x->status, bytes, x->len, x->at_eof);
        last_merge = op->kind == K_READ && x->status == 0 && x->len > 0;
    }
}

/* ---- the reference: asyncio's StreamReader (3.8b), fed the same arrivals */

typedef struct {
    const op_spec *op;
    size_t limit;
    char buf[1024];
    size_t blen;
    int eof;
    int phase;          /* 0: the op under test, 1: the final read(-1), 2: done */
    long offset;        /* readuntil's search progress, per call as in asyncio */
    trace *t;
} model;

static int model_eval(model *m, const op_spec *op, int *status, size_t *give, size_t *consume)
{
    long blen = (long)m->blen;
    *status = 0;
    *give = *consume = 0;
    switch (op->kind) {
    case K_READ:
        if (blen == 0 && !m->eof)
            return 0;
        *give = *consume = m->blen < op->n ? m->blen : op->n;
        return 1;
    case K_READ_ALL:
        if (!m->eof)
            return 0;
        *give = *consume = m->blen;
        return 1;
    case K_EXACT:
        if (m->blen >= op->n) {
            *give = *consume = op->n;
            return 1;
        }
        if (!m->eof)
            return 0;
        *status = RILL_EINCOMPLETE;
        *give = *consume = m->blen;
        return 1;
    default: {
        long seplen = (long)op->seplen, isep = -1, i, consumed = -1;
        /* readuntil(): search from offset when seplen new bytes could be there */
        if (blen - m->offset >= seplen) {
            for (i = m->offset; i + seplen <= blen; i++)
                if (memcmp(m->buf + i, op->sep, (size_t)seplen) == 0) {
                    isep = i;
                    break;
                }
            if (isep < 0) {
                m->offset = blen + 1 - seplen;
                if (m->offset > (long)m->limit)
                    consumed = m->offset;          /* "Separator is not found, and chunk exceed the limit" */
            }
        }
        if (isep >= 0) {
            if (isep > (long)m->limit) {
                consumed = isep;                   /* "Separator is found, but chunk is longer than limit" */
            } else {
                *give = *consume = (size_t)(isep + seplen);
                return 1;
            }
        }
        if (consumed >= 0) {
            *status = RILL_ELIMIT;
            if (op->kind == K_UNTIL) {
                *give = (size_t)consumed;          /* nothing is removed */
            } else if (consumed < blen && m->buf[consumed] == '\n') {
                *give = *consume = (size_t)consumed + 1;   /* readline: del buffer[:consumed + seplen] */
            } else {
                *give = *consume = m->blen;        /* readline: buffer.clear() */
            }
            return 1;
        }
        if (!m->eof)
            return 0;
        /* IncompleteReadError(partial); readline returns the partial line instead */
        *status = op->kind == K_UNTIL ? RILL_EINCOMPLETE : 0;
        *give = *consume = m->blen;
        return 1;
    }
    }
}

static void model_step(model *m)
{
    int status, idx;
    size_t give, consume;
    while (m->phase < 2) {
        const op_spec *op = m->phase == 0 ? m->op : &drain_op;
        if (!model_eval(m, op, &status, &give, &consume))
            return;
        idx = trace_add(m->t, status, m->buf, give, 0);
        memmove(m->buf, m->buf + consume, m->blen - consume);
        m->blen -= consume;
        if (idx >= 0)
            m->t->r[idx].at_eof = m->eof && m->blen == 0;
        m->offset = 0;
        if (m->phase == 1)
            m->phase = 2;
        else if (status < 0 || give == 0)
            m->phase = 1;
    }
}

static void model_run(const op_spec *op, size_t limit, const input *in, const size_t *chunks, size_t nchunks, trace *t)
{
    model *m = calloc(1, sizeof *m);
    size_t i, pos = 0;
    CU_ASSERT_FATAL(m != NULL);
    m->op = op;
    m->limit = limit ? limit : RILL__DEFAULT_LIMIT;
    m->t = t;
    memset(t, 0, sizeof *t);
    model_step(m);
    for (i = 0; i < nchunks; i++) {
        memcpy(m->buf + m->blen, in->data + pos, chunks[i]);
        m->blen += chunks[i];
        pos += chunks[i];
        model_step(m);
    }
    m->eof = 1;
    model_step(m);
    free(m);
}

/* ---- the same through rill */

typedef struct {
    rill_stream *s;
    int wfd;            /* the test's writing end */
    int rfd;            /* the stream's descriptor: FIONREAD says whether rill took a chunk */
    int is_pipe;
    const input *in;
    const size_t *chunks;
    size_t nchunks, ci, pos;
    rill_watch *w;
    const op_spec *op;
    int phase;
    int done;
    int start_err;
    int bad_data;
    trace *t;
} table_run;

static void table_cb(rill_stream *s, int status, const char *data, size_t len, void *ud);

static int table_start(table_run *r)
{
    const op_spec *op = r->phase == 0 ? r->op : &drain_op;
    switch (op->kind) {
    case K_READ:
        return TEST_CALL(rill_read(r->s, (ssize_t)op->n, table_cb, r));
    case K_READ_ALL:
        return TEST_CALL(rill_read(r->s, -1, table_cb, r));
    case K_LINE:
        return TEST_CALL(rill_readline(r->s, table_cb, r));
    case K_EXACT:
        return TEST_CALL(rill_readexactly(r->s, op->n, table_cb, r));
    default:
        return TEST_CALL(rill_readuntil(r->s, op->sep, op->seplen, table_cb, r));
    }
}

static void table_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    table_run *r = ud;
    static char copy[ARENA];
    int rc;

    TEST_ASSERT_NOT_SYNC();
    if (len > 0 && data == NULL)
        r->bad_data++;
    if (status < 0 && status != RILL_EINCOMPLETE && status != RILL_ELIMIT && (data != NULL || len != 0))
        r->bad_data++;
    if (len > sizeof copy) {
        r->bad_data++;
        r->done = 1;
        return;
    }
    trace_add(r->t, status, data, len, rill_at_eof(s));
    if (r->phase == 1) {
        r->done = 1;
        return;
    }
    if (len > 0)
        memcpy(copy, data, len);
    if (status < 0 || len == 0)
        r->phase = 1;
    if ((rc = table_start(r)) < 0) {
        r->start_err = rc;
        r->done = 1;
    }
    /* The bytes stay valid until the callback returns, a new read started or not. */
    if (len > 0 && memcmp(copy, data, len) != 0)
        r->bad_data++;
}

/* One chunk per wake-up, and only once rill has taken the previous one: every
   chunk is a separate arrival, as in the model. */
static void table_feed(rill_watch *w, int revents, void *ud)
{
    table_run *r = ud;
    (void)revents;
    if (pending_bytes(r->rfd) != 0)
        return;
    if (r->ci < r->nchunks) {
        put(r->wfd, r->in->data + r->pos, r->chunks[r->ci]);
        r->pos += r->chunks[r->ci++];
        return;
    }
    rill_watch_stop(w);
    r->w = NULL;
    if (r->is_pipe) {
        close(r->wfd);
        r->wfd = -1;
    } else {
        shutdown(r->wfd, SHUT_WR);
    }
}

static int table_one(int is_pipe, const input *in, size_t limit, const op_spec *op,
                     const size_t *chunks, size_t nchunks, trace *t)
{
    rill_loop *loop = test_loop_new(0);
    table_run r;
    int ok;

    memset(&r, 0, sizeof r);
    memset(t, 0, sizeof *t);
    r.t = t;
    r.in = in;
    r.op = op;
    r.chunks = chunks;
    r.nchunks = nchunks;
    r.is_pipe = is_pipe;
    if (is_pipe) {
        int p[2];
        CU_ASSERT_FATAL(pipe(p) == 0);
        CU_ASSERT_FATAL(rill_connect_read_pipe(loop, p[0], limit, &r.s) == 0);
        r.rfd = p[0];
        r.wfd = p[1];
    } else {
        r.s = sock_stream(loop, limit, &r.wfd);
        r.rfd = r.s->fd;
    }
    CU_ASSERT_EQUAL(table_start(&r), 0);
    r.w = rill_watch_fd(loop, r.wfd, RILL_WRITABLE, table_feed, &r);
    CU_ASSERT_FATAL(r.w != NULL);
    test_run_until_every(loop, &r.done, 5000, 5);
    ok = r.done && r.start_err == 0 && r.bad_data == 0;
    if (!ok)
        fprintf(stderr, "\n    run did not finish cleanly: done=%d start_err=%s bad_data=%d\n",
                r.done, rill_err_name(r.start_err), r.bad_data);
    if (r.w != NULL)
        rill_watch_stop(r.w);
    finish_stream(loop, r.s, r.wfd);
    return ok;
}

enum { CH_ALL, CH_BYTES, CH_RANDOM, NCHUNKINGS };
static const char *const chunking_names[] = { "all at once", "byte by byte", "random chunks" };

static size_t make_chunks(int kind, size_t len, unsigned long seed, size_t *chunks)
{
    size_t n = 0, left = len;
    rng_state = seed;
    while (left > 0) {
        size_t c = kind == CH_ALL ? left : kind == CH_BYTES ? 1 : 1 + rng() % 7;
        if (c > left)
            c = left;
        chunks[n++] = c;
        left -= c;
    }
    return n;
}

static void table_test(int is_pipe)
{
    static const size_t limits[] = { 7, 0 };
    size_t (*chunks)[1024] = calloc(NCHUNKINGS, sizeof *chunks);
    size_t nch[NCHUNKINGS];
    trace *got = calloc(NCHUNKINGS, sizeof *got), *want = calloc(1, sizeof *want);
    trace *norm_a = calloc(1, sizeof *norm_a), *norm_b = calloc(1, sizeof *norm_b);
    size_t ii, li, oi;
    int c, runs = 0, bad_model = 0, bad_cross = 0, bad_model_cross = 0, unclean = 0, identical = 0;

    CU_ASSERT_FATAL(chunks && got && want && norm_a && norm_b);
    gen_inputs();
    for (ii = 0; ii < NINPUTS; ii++) {
        const input *in = &table_inputs[ii];
        for (c = 0; c < NCHUNKINGS; c++)
            nch[c] = make_chunks(c, in->len, 1000 + ii, chunks[c]);
        for (li = 0; li < sizeof limits / sizeof limits[0]; li++) {
            for (oi = 0; oi < NOPS; oi++) {
                const op_spec *op = &table_ops[oi];
                int same_raw = 1;
                for (c = 0; c < NCHUNKINGS; c++) {
                    runs++;
                    if (!table_one(is_pipe, in, limits[li], op, chunks[c], nch[c], &got[c]))
                        unclean++;
                    model_run(op, limits[li], in, chunks[c], nch[c], want);
                    if (!trace_eq(&got[c], want)) {
                        bad_model++;
                        fprintf(stderr, "\n    MISMATCH input #%lu limit %lu %s %s:\n", (unsigned long)ii,
                                (unsigned long)limits[li], op->name, chunking_names[c]);
                        trace_print("rill", &got[c]);
                        trace_print("asyncio model", want);
                    }
                    if (c == CH_ALL)
                        continue;
                    same_raw &= trace_eq(&got[c], &got[CH_ALL]);
                    /* Across chunkings: identical once arrival-dependent details are folded. */
                    trace_normalize(&got[c], op, norm_a);
                    trace_normalize(&got[CH_ALL], op, norm_b);
                    if (!trace_eq(norm_a, norm_b)) {
                        bad_cross++;
                        fprintf(stderr, "\n    CHUNKING CHANGES RESULT input #%lu limit %lu %s %s:\n",
                                (unsigned long)ii, (unsigned long)limits[li], op->name, chunking_names[c]);
                        trace_print("normalized", norm_a);
                        trace_print("normalized, all at once", norm_b);
                    }
                    /* The model itself obeys the same rule (it is not fitted to rill). */
                    trace_normalize(want, op, norm_a);
                    {
                        trace *w0 = calloc(1, sizeof *w0);
                        model_run(op, limits[li], in, chunks[CH_ALL], nch[CH_ALL], w0);
                        trace_normalize(w0, op, norm_b);
                        if (!trace_eq(norm_a, norm_b))
                            bad_model_cross++;
                        free(w0);
                    }
                }
                identical += same_raw;
            }
        }
    }
    fprintf(stderr, "\n    %d runs over %s; %d input/op pairs give identical raw results in every chunking ",
            runs, is_pipe ? "pipes" : "socketpairs", identical);
    CU_ASSERT(runs >= 20 * (int)NOPS * NCHUNKINGS);
    CU_ASSERT_EQUAL(unclean, 0);
    CU_ASSERT_EQUAL(bad_model, 0);
    CU_ASSERT_EQUAL(bad_cross, 0);
    CU_ASSERT_EQUAL(bad_model_cross, 0);
    /* Framing reads below the limit must not depend on chunking at all. */
    CU_ASSERT(identical > (int)(NINPUTS * 2 * NOPS) / 2);
    free(chunks);
    free(got);
    free(want);
    free(norm_a);
    free(norm_b);
}

static void test_table_socketpair(void) { table_test(0); }
static void test_table_pipe(void) { table_test(1); }

/* =================================================== individual rules */

static void test_readuntil_split_separator(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 0, &peer);
    rd r;

    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readuntil(s, "\r\n\r\n", 4, rd_cb, &r)), 0);
    put_str(peer, "GET / HTTP/1.1\r");
    CU_ASSERT(run_until_buffered(loop, s, 15));
    put_str(peer, "\n\r");
    CU_ASSERT(run_until_buffered(loop, s, 17));
    spin(loop, 2);
    CU_ASSERT_EQUAL(r.calls, 0);          /* "\r\n\r" is not the separator */
    put_str(peer, "\nbody");
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.len, 18);
    CU_ASSERT_STRING_EQUAL(r.data, "GET / HTTP/1.1\r\n\r\n");
    CU_ASSERT_EQUAL(r.rbuf_after, 4);     /* "body" stays */
    finish_stream(loop, s, peer);
}

/* readuntil over the limit: RILL_ELIMIT, len = asyncio's consumed, nothing removed. */
static void check_readuntil_limit(const char *input, const char *sep, size_t expect_len)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s;
    rd r, r2;
    size_t n = strlen(input);

    memset(&r, 0, sizeof r);
    memset(&r2, 0, sizeof r2);
    s = sock_stream(loop, 7, &peer);
    put_str(peer, input);
    CU_ASSERT(run_until_buffered(loop, s, n));
    CU_ASSERT_EQUAL(TEST_CALL(rill_readuntil(s, sep, strlen(sep), rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_ELIMIT);
    CU_ASSERT_EQUAL(r.len, expect_len);
    CU_ASSERT(memcmp(r.data, input, expect_len) == 0);
    CU_ASSERT_EQUAL(r.rbuf_after, n);     /* the data stays buffered */
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 100, rd_cb, &r2)), 0);
    CU_ASSERT(run_until_count(loop, &r2.calls, 1, 5000));
    CU_ASSERT_EQUAL(r2.status, 0);
    CU_ASSERT_EQUAL(r2.len, n);
    CU_ASSERT_STRING_EQUAL(r2.data, input);
    finish_stream(loop, s, peer);
}

static void test_readuntil_limit(void)
{
    /* not found: consumed = buflen + 1 - seplen */
    check_readuntil_limit("abcdefghijkl", "\r\n\r\n", 9);
    check_readuntil_limit("abcdefghij", "\n", 10);
    /* found beyond the limit: consumed = the separator's offset */
    check_readuntil_limit("12345678\r\n\r\n", "\r\n\r\n", 8);
    check_readuntil_limit("12345678\nabc", "\n", 8);
}

static void test_readline_limit(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 7, &peer);
    rd r;

    CU_ASSERT_EQUAL(rill_stream_get_limit(s), 7);
    /* 1234567\n fits: the limit counts the bytes before the separator. */
    memset(&r, 0, sizeof r);
    put_str(peer, "1234567\n");
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_STRING_EQUAL(r.data, "1234567\n");

    /* 12345678\n with the next line buffered: that line is dropped through its \n. */
    memset(&r, 0, sizeof r);
    put_str(peer, "12345678\nnext\n");
    CU_ASSERT(run_until_buffered(loop, s, 14));
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_ELIMIT);
    CU_ASSERT_EQUAL(r.len, 9);            /* the bytes discarded */
    CU_ASSERT_STRING_EQUAL(r.data, "12345678\n");
    CU_ASSERT_EQUAL(r.rbuf_after, 5);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_STRING_EQUAL(r.data, "next\n");

    /* 12345678 with no \n: the whole buffer is cleared. */
    memset(&r, 0, sizeof r);
    put_str(peer, "12345678");
    CU_ASSERT(run_until_buffered(loop, s, 8));
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_ELIMIT);
    CU_ASSERT_EQUAL(r.len, 8);
    CU_ASSERT_STRING_EQUAL(r.data, "12345678");
    CU_ASSERT_EQUAL(r.rbuf_after, 0);
    CU_ASSERT_EQUAL(s->rbuf.len, 0);
    /* ... and what arrives later starts a new line */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    put_str(peer, "9\n");
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_STRING_EQUAL(r.data, "9\n");

    /* The line grows past the limit while the read waits. */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    put_str(peer, "1234");
    CU_ASSERT(run_until_buffered(loop, s, 4));
    spin(loop, 2);
    CU_ASSERT_EQUAL(r.calls, 0);
    put_str(peer, "5678");
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_ELIMIT);
    CU_ASSERT_EQUAL(r.len, 8);
    CU_ASSERT_EQUAL(r.rbuf_after, 0);
    finish_stream(loop, s, peer);
}

static void test_readexactly_incomplete(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 0, &peer);
    rd r;

    memset(&r, 0, sizeof r);
    r.expect = "0123456789abcdefgh";
    CU_ASSERT_EQUAL(TEST_CALL(rill_readexactly(s, 36, rd_cb, &r)), 0);
    put_str(peer, "0123456789");
    CU_ASSERT(run_until_buffered(loop, s, 10));
    put_str(peer, "abcdefgh");
    CU_ASSERT(run_until_buffered(loop, s, 18));
    CU_ASSERT_EQUAL(r.calls, 0);
    shutdown(peer, SHUT_WR);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_EINCOMPLETE);   /* "18 bytes read on a total of 36 expected bytes" */
    CU_ASSERT_EQUAL(r.len, 18);
    CU_ASSERT_EQUAL(r.mismatch, 0);
    CU_ASSERT_EQUAL(r.at_eof, 1);
    CU_ASSERT_EQUAL(r.rbuf_after, 0);
    /* At EOF with nothing left: incomplete with no bytes; read(n) returns empty. */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readexactly(s, 1, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_EINCOMPLETE);
    CU_ASSERT_EQUAL(r.len, 0);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 5, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.len, 0);
    finish_stream(loop, s, peer);
}

static void test_readuntil_eof_incomplete(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 0, &peer);
    rd r;

    memset(&r, 0, sizeof r);
    put_str(peer, "abc\r\n\r");
    shutdown(peer, SHUT_WR);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readuntil(s, "\r\n\r\n", 4, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_EINCOMPLETE);
    CU_ASSERT_EQUAL(r.len, 6);
    CU_ASSERT_STRING_EQUAL(r.data, "abc\r\n\r");
    CU_ASSERT_EQUAL(r.rbuf_after, 0);     /* the buffer is cleared */
    CU_ASSERT_EQUAL(r.at_eof, 1);
    finish_stream(loop, s, peer);
}

/* read(-1) and readexactly are not capped by the limit (items 5 and 6). */
static void check_uncapped(int is_pipe)
{
    enum { TOTAL = 1 << 20 };
    rill_loop *loop = test_loop_new(0);
    char *data = malloc(TOTAL);
    int wfd = -1, i;
    rill_stream *s;
    pump p;
    rd r;

    CU_ASSERT_FATAL(data != NULL);
    for (i = 0; i < TOTAL; i++)
        data[i] = (char)(i * 7 % 251);
    if (is_pipe) {
        int fds[2];
        CU_ASSERT_FATAL(pipe(fds) == 0);
        CU_ASSERT_FATAL(rill_connect_read_pipe(loop, fds[0], 1, &s) == 0);
        wfd = fds[1];
    } else {
        s = sock_stream(loop, 1, &wfd);
    }
    CU_ASSERT_EQUAL(rill_stream_get_limit(s), 1);
    /* readexactly far above 2 * limit */
    memset(&r, 0, sizeof r);
    r.expect = data;
    pump_start(&p, loop, wfd, is_pipe, data, TOTAL);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readexactly(s, 300000, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 10000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.len, 300000);
    CU_ASSERT_EQUAL(r.mismatch, 0);
    /* read(-1) with limit 1: everything up to EOF */
    memset(&r, 0, sizeof r);
    r.expect = data + 300000;
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, -1, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 10000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.len, TOTAL - 300000);
    CU_ASSERT_EQUAL(r.mismatch, 0);
    CU_ASSERT_EQUAL(r.at_eof, 1);
    CU_ASSERT(p.finished);
    pump_stop(&p);
    finish_stream(loop, s, is_pipe ? p.fd : wfd);
    free(data);
}

static void test_read_all_tiny_limit(void)
{
    check_uncapped(0);
    check_uncapped(1);
}

static void test_read_zero(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 0, &peer);
    rd r;

    /* Nothing buffered and no EOF: still completes at once. */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 0, rd_cb, &r)), 0);
    CU_ASSERT_EQUAL(r.calls, 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.len, 0);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readexactly(s, 0, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.len, 0);
    /* With bytes buffered: they are left alone. */
    put_str(peer, "abc");
    CU_ASSERT(run_until_buffered(loop, s, 3));
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 0, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.len, 0);
    CU_ASSERT_EQUAL(r.rbuf_after, 3);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readexactly(s, 0, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.len, 0);
    CU_ASSERT_EQUAL(r.rbuf_after, 3);
    /* read(5) over "abc": what is there, at most n (items 2, 3) */
    put_str(peer, "defgh");
    CU_ASSERT(run_until_buffered(loop, s, 8));
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 5, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_STRING_EQUAL(r.data, "abcde");
    CU_ASSERT_EQUAL(r.rbuf_after, 3);
    finish_stream(loop, s, peer);
}

static void test_bad_arguments(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 0, &peer);
    rd r;

    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readuntil(s, "", 0, rd_cb, &r)), RILL_EINVAL);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readuntil(s, "x", 0, rd_cb, &r)), RILL_EINVAL);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readuntil(s, NULL, 0, rd_cb, &r)), RILL_EINVAL);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, -2, rd_cb, &r)), RILL_EINVAL);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 1, NULL, &r)), RILL_EINVAL);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, NULL, &r)), RILL_EINVAL);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(NULL, rd_cb, &r)), RILL_EINVAL);
    /* a separator too long for the inline copy needs memory */
    rill__alloc_fail_at(1);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readuntil(s, "--boundary", 10, rd_cb, &r)), RILL_ENOMEM);
    rill__alloc_fail_at(0);
    /* A failed start leaves no read pending: the next one is accepted. */
    put_str(peer, "ok\n");
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    spin(loop, 2);
    CU_ASSERT_EQUAL(r.calls, 1);          /* the refused calls never call back */
    CU_ASSERT_STRING_EQUAL(r.data, "ok\n");
    finish_stream(loop, s, peer);
}

typedef struct {
    int calls;
    int second_rc;
} busy_in_cb;

static void busy_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    busy_in_cb *b = ud;
    static rd sink;
    (void)status; (void)data; (void)len;
    TEST_ASSERT_NOT_SYNC();
    b->calls++;
    if (b->calls == 1) {
        /* one read may be started here; a second one is refused */
        CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, busy_cb, b)), 0);
        b->second_rc = TEST_CALL(rill_read(s, 1, rd_cb, &sink));
    }
}

static void test_concurrent_busy(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 0, &peer);
    rd first, other;
    busy_in_cb b;

    memset(&first, 0, sizeof first);
    memset(&other, 0, sizeof other);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &first)), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &other)), RILL_EBUSY);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 1, rd_cb, &other)), RILL_EBUSY);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, -1, rd_cb, &other)), RILL_EBUSY);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 0, rd_cb, &other)), RILL_EBUSY);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readexactly(s, 1, rd_cb, &other)), RILL_EBUSY);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readuntil(s, "\r\n", 2, rd_cb, &other)), RILL_EBUSY);
    spin(loop, 2);
    /* still refused once the first is waiting in the loop */
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &other)), RILL_EBUSY);
    CU_ASSERT_EQUAL(first.calls, 0);
    put_str(peer, "x\n");
    CU_ASSERT(run_until_count(loop, &first.calls, 1, 5000));
    spin(loop, 2);
    CU_ASSERT_EQUAL(first.calls, 1);
    CU_ASSERT_STRING_EQUAL(first.data, "x\n");
    CU_ASSERT_EQUAL(other.calls, 0);
    /* inside a callback */
    memset(&b, 0, sizeof b);
    put_str(peer, "a\nb\n");
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, busy_cb, &b)), 0);
    CU_ASSERT(run_until_count(loop, &b.calls, 2, 5000));
    CU_ASSERT_EQUAL(b.second_rc, RILL_EBUSY);
    finish_stream(loop, s, peer);
}

static void test_readline_eof_partial_then_empty(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer, i;
    rill_stream *s = sock_stream(loop, 0, &peer);
    rd r;

    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    put_str(peer, "ab");
    CU_ASSERT(run_until_buffered(loop, s, 2));
    put_str(peer, "c");
    CU_ASSERT(run_until_buffered(loop, s, 3));
    shutdown(peer, SHUT_WR);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, 0);          /* a partial line is success */
    CU_ASSERT_STRING_EQUAL(r.data, "abc");
    CU_ASSERT_EQUAL(r.at_eof, 1);
    for (i = 0; i < 3; i++) {
        memset(&r, 0, sizeof r);
        CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
        CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
        CU_ASSERT_EQUAL(r.status, 0);
        CU_ASSERT_EQUAL(r.len, 0);
        CU_ASSERT_EQUAL(r.at_eof, 1);
    }
    finish_stream(loop, s, peer);
}

static void test_at_eof(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 0, &peer);
    rd r;

    CU_ASSERT_EQUAL(rill_at_eof(s), 0);
    /* buffer empty but no EOF yet */
    memset(&r, 0, sizeof r);
    put_str(peer, "ab\n");
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.rbuf_after, 0);
    CU_ASSERT_EQUAL(r.at_eof, 0);
    /* EOF seen, bytes still buffered */
    put_str(peer, "abc\ndef");
    shutdown(peer, SHUT_WR);
    CU_ASSERT(run_until_eof_seen(loop, s));
    CU_ASSERT_EQUAL(s->rbuf.len, 7);
    CU_ASSERT_EQUAL(rill_at_eof(s), 0);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_STRING_EQUAL(r.data, "abc\n");
    CU_ASSERT_EQUAL(r.at_eof, 0);
    /* the last bytes are consumed before the callback runs */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_STRING_EQUAL(r.data, "def");
    CU_ASSERT_EQUAL(r.at_eof, 1);
    CU_ASSERT_EQUAL(rill_at_eof(s), 1);
    finish_stream(loop, s, peer);
}

typedef struct {
    rd first, second;
} cancel_chain;

static void cancel_then_read_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    cancel_chain *c = ud;
    rd_cb(s, status, data, len, &c->first);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 10, rd_cb, &c->second)), 0);
}

static void test_read_cancel(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 0, &peer);
    rd r;
    cancel_chain cc;

    CU_ASSERT_EQUAL(rill_read_cancel(s), 0);     /* nothing pending: nothing happens */
    put_str(peer, "abc");
    CU_ASSERT(run_until_buffered(loop, s, 3));
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    spin(loop, 3);
    CU_ASSERT_EQUAL(r.calls, 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read_cancel(s)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    spin(loop, 2);
    CU_ASSERT_EQUAL(r.calls, 1);
    CU_ASSERT_EQUAL(r.status, RILL_ECANCELED);
    CU_ASSERT_EQUAL(r.len, 0);
    CU_ASSERT_EQUAL(r.data_null, 1);
    CU_ASSERT_EQUAL(r.rbuf_after, 3);    /* buffered data stays */
    /* cancelled before it was ever evaluated, although the buffer could answer */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 10, rd_cb, &r)), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read_cancel(s)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_ECANCELED);
    CU_ASSERT_EQUAL(s->rbuf.len, 3);
    /* a read started from the cancel callback works */
    memset(&cc, 0, sizeof cc);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readexactly(s, 100, cancel_then_read_cb, &cc)), 0);
    spin(loop, 2);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read_cancel(s)), 0);
    CU_ASSERT(run_until_count(loop, &cc.second.calls, 1, 5000));
    CU_ASSERT_EQUAL(cc.first.status, RILL_ECANCELED);
    CU_ASSERT_EQUAL(cc.second.status, 0);
    CU_ASSERT_STRING_EQUAL(cc.second.data, "abc");
    finish_stream(loop, s, peer);
}

static void test_pause_resume(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 0, &peer);
    rd r;

    /* bytes already buffered still answer reads while paused */
    put_str(peer, "a\nb\n");
    CU_ASSERT(run_until_buffered(loop, s, 4));
    CU_ASSERT_EQUAL(rill_pause_reading(s), 0);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_STRING_EQUAL(r.data, "a\n");
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_STRING_EQUAL(r.data, "b\n");
    /* the descriptor is not read while paused: the pending read waits */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    put_str(peer, "hi\n");
    spin(loop, 10);
    CU_ASSERT_EQUAL(r.calls, 0);
    CU_ASSERT_EQUAL(s->rbuf.len, 0);
    CU_ASSERT_EQUAL(pending_bytes(s->fd), 3);
    CU_ASSERT_EQUAL(rill_pause_reading(s), 0);   /* twice is harmless */
    CU_ASSERT_EQUAL(rill_resume_reading(s), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_STRING_EQUAL(r.data, "hi\n");
    CU_ASSERT_EQUAL(rill_resume_reading(s), 0);  /* so is resuming twice */
    /* paused with no read pending: nothing is buffered meanwhile */
    CU_ASSERT_EQUAL(rill_pause_reading(s), 0);
    put_str(peer, "later\n");
    spin(loop, 5);
    CU_ASSERT_EQUAL(s->rbuf.len, 0);
    CU_ASSERT_EQUAL(rill_resume_reading(s), 0);
    CU_ASSERT(run_until_buffered(loop, s, 6));
    finish_stream(loop, s, peer);
}

static void feed_byte(void *ud)
{
    int *fd = ud;
    put_str(*fd, "x");
}

static void test_read_timeout(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer, i;
    rill_stream *s = sock_stream(loop, 0, &peer);
    uint64_t t0;
    rd r;

    CU_ASSERT_EQUAL(rill_set_read_timeout(s, 100), 0);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    spin(loop, 1);
    t0 = test_now_ms();
    put_str(peer, "abc");
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_ETIMEDOUT);
    CU_ASSERT_EQUAL(r.data_null, 1);
    CU_ASSERT_EQUAL(r.len, 0);
    CU_ASSERT_EQUAL(r.rbuf_after, 3);     /* buffered bytes intact */
    CU_ASSERT(r.when >= t0 + 100);        /* counted from the last byte */
    CU_ASSERT(r.when < t0 + 3000);
    CU_ASSERT_EQUAL(rill_is_closing(s), 0);
    /* still usable */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    put_str(peer, "\n");
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_STRING_EQUAL(r.data, "abc\n");
    /* every new byte starts the wait over: 8 bytes 60 ms apart outlast a 300 ms timeout */
    CU_ASSERT_EQUAL(rill_set_read_timeout(s, 300), 0);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    for (i = 1; i <= 8; i++)
        CU_ASSERT_PTR_NOT_NULL(rill_call_later(loop, (uint64_t)(60 * i), feed_byte, &peer));
    CU_ASSERT(run_until_buffered(loop, s, 8));
    CU_ASSERT_EQUAL(r.calls, 0);
    put_str(peer, "\n");
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_STRING_EQUAL(r.data, "xxxxxxxx\n");
    /* set while a read already waits: it applies to that read */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(rill_set_read_timeout(s, 0), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    spin(loop, 2);
    t0 = test_now_ms();
    CU_ASSERT_EQUAL(rill_set_read_timeout(s, 80), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_ETIMEDOUT);
    CU_ASSERT(r.when >= t0 + 80);
    /* <= 0 turns it off, also for a read already waiting */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(rill_set_read_timeout(s, 50), 0);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(rill_set_read_timeout(s, 0), 0);
    spin(loop, 20);
    CU_ASSERT_EQUAL(r.calls, 0);
    CU_ASSERT_EQUAL(rill_read_cancel(s), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_ECANCELED);
    finish_stream(loop, s, peer);
}

/* Arming a read timeout needs no memory (the timer heap is intrusive): with the
   next allocation failing, the setter succeeds and the timeout still fires, both when
   it is set while a read waits and when the read step arms it. */
static void test_read_timeout_enomem(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 0, &peer);
    rd r;

    put_str(peer, "abc");
    CU_ASSERT(run_until_buffered(loop, s, 3));
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    spin(loop, 1);
    rill__alloc_fail_at(1);
    CU_ASSERT_EQUAL(rill_set_read_timeout(s, 20), 0);
    rill__alloc_fail_at(0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_ETIMEDOUT);
    CU_ASSERT_EQUAL(r.rbuf_after, 3);
    /* the read step arming it */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    rill__alloc_fail_at(1);
    rill_loop_run_once(loop, 0);
    rill__alloc_fail_at(0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_ETIMEDOUT);
    CU_ASSERT_EQUAL(r.rbuf_after, 3);
    finish_stream(loop, s, peer);
}

static void test_write_only_pipe_refuses_reads(void)
{
    rill_loop *loop = test_loop_new(0);
    rill_stream *ws = NULL, *rs = NULL;
    int p[2], q[2];
    rd r;

    memset(&r, 0, sizeof r);
    CU_ASSERT_FATAL(pipe(p) == 0 && pipe(q) == 0);
    CU_ASSERT_FATAL(rill_connect_write_pipe(loop, p[1], 0, &ws) == 0);
    CU_ASSERT_EQUAL(rill_stream_mode(ws), RILL_MODE_WRITE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(ws, 10, rd_cb, &r)), RILL_EMODE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(ws, -1, rd_cb, &r)), RILL_EMODE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(ws, rd_cb, &r)), RILL_EMODE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readexactly(ws, 1, rd_cb, &r)), RILL_EMODE);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readuntil(ws, "x", 1, rd_cb, &r)), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_pause_reading(ws), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_resume_reading(ws), RILL_EMODE);
    /* and the other way round (item 29) */
    CU_ASSERT_FATAL(rill_connect_read_pipe(loop, q[0], 0, &rs) == 0);
    CU_ASSERT_EQUAL(rill_stream_mode(rs), RILL_MODE_READ);
    CU_ASSERT_EQUAL(rill_write(rs, "x", 1, NULL, NULL), RILL_EMODE);
    spin(loop, 2);
    CU_ASSERT_EQUAL(r.calls, 0);
    CU_ASSERT_EQUAL(rill_close(ws, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_close(rs, NULL, NULL), 0);
    close(p[0]);
    close(q[1]);
    test_loop_finish(loop);
}

typedef struct {
    int order;
    int read_at, close_at, waited_at;
    rd r;
} close_order;

static void order_read_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    close_order *o = ud;
    rd_cb(s, status, data, len, &o->r);
    o->read_at = ++o->order;
}

static void order_close_cb(rill_stream *s, int status, void *ud)
{
    close_order *o = ud;
    (void)s; (void)status;
    TEST_ASSERT_NOT_SYNC();
    o->close_at = ++o->order;
}

static void order_waited_cb(rill_stream *s, int status, void *ud)
{
    close_order *o = ud;
    (void)s; (void)status;
    TEST_ASSERT_NOT_SYNC();
    o->waited_at = ++o->order;
}

static void test_close_cancels_read(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer, abort_it;
    rill_stream *s;
    close_order o;
    rd r;

    for (abort_it = 0; abort_it < 2; abort_it++) {
        s = sock_stream(loop, 0, &peer);
        memset(&o, 0, sizeof o);
        memset(&r, 0, sizeof r);
        put_str(peer, "buffered");
        CU_ASSERT(run_until_buffered(loop, s, 8));
        CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, order_read_cb, &o)), 0);
        spin(loop, 1);
        CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, order_waited_cb, &o)), 0);
        if (abort_it) {
            TEST_CALLV(rill_abort(s));
            o.close_at = ++o.order;       /* abort has no callback: keep the numbering */
        } else {
            CU_ASSERT_EQUAL(TEST_CALL(rill_close(s, order_close_cb, &o)), 0);
        }
        /* closing: new reads are refused */
        CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), RILL_ECLOSED);
        CU_ASSERT(run_until_count(loop, &o.order, 3, 5000));
        CU_ASSERT_EQUAL(o.r.status, RILL_ECANCELED);
        CU_ASSERT_EQUAL(o.r.data_null, 1);
        if (abort_it) {
            CU_ASSERT_EQUAL(o.close_at, 1);
            CU_ASSERT_EQUAL(o.read_at, 2);
        } else {
            CU_ASSERT_EQUAL(o.read_at, 1);  /* the read, then close, then wait_closed */
            CU_ASSERT_EQUAL(o.close_at, 2);
        }
        CU_ASSERT_EQUAL(o.waited_at, 3);
        CU_ASSERT_EQUAL(r.calls, 0);
        close(peer);
    }
    test_loop_finish(loop);
}

typedef struct {
    int calls, same, refused, waited;
} abort_in_cb;

static void abort_waited_cb(rill_stream *s, int status, void *ud)
{
    abort_in_cb *x = ud;
    (void)s; (void)status;
    TEST_ASSERT_NOT_SYNC();
    x->waited++;
}

static void abort_read_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    abort_in_cb *x = ud;
    char copy[16];
    TEST_ASSERT_NOT_SYNC();
    x->calls++;
    CU_ASSERT_EQUAL(status, 0);
    CU_ASSERT_FATAL(len == 6 && data != NULL);
    memcpy(copy, data, len);
    TEST_CALLV(rill_abort(s));
    CU_ASSERT_EQUAL(TEST_CALL(rill_wait_closed(s, abort_waited_cb, x)), 0);
    /* the handle and the bytes outlive the abort until this callback returns */
    x->same = memcmp(copy, data, len) == 0 && rill_is_closing(s);
    x->refused = TEST_CALL(rill_readline(s, abort_read_cb, x)) == RILL_ECLOSED;
}

static void test_abort_from_read_callback(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 0, &peer);
    abort_in_cb x;

    memset(&x, 0, sizeof x);
    put_str(peer, "hello\nmore\n");
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, abort_read_cb, &x)), 0);
    CU_ASSERT(run_until_count(loop, &x.waited, 1, 5000));
    spin(loop, 2);
    CU_ASSERT_EQUAL(x.calls, 1);
    CU_ASSERT_EQUAL(x.same, 1);
    CU_ASSERT_EQUAL(x.refused, 1);
    CU_ASSERT_EQUAL(x.waited, 1);
    close(peer);
    test_loop_finish(loop);
}

static void close_now(void *ud)
{
    CU_ASSERT_EQUAL(rill_close(ud, NULL, NULL), 0);
}

/* A graceful close still flushing, and the read's timeout due in the same timer
   round right after it: the read still ends with the close's RILL_ECANCELED. */
static void test_close_beats_read_timeout(void)
{
    enum { BIG = 4 << 20 };
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 0, &peer);
    char *big = calloc(1, BIG);
    struct timespec ts;
    rd r;

    CU_ASSERT_FATAL(big != NULL);
    memset(&r, 0, sizeof r);
    /* more than the socket takes: the close has to wait for the peer (FLUSHING) */
    CU_ASSERT_EQUAL(rill_write(s, big, BIG, NULL, NULL), 0);
    CU_ASSERT(rill_get_write_buffer_size(s) > 0);
    CU_ASSERT_EQUAL(rill_set_read_timeout(s, 50), 0);
    /* created before the read's timer is armed: on equal deadlines it fires first */
    CU_ASSERT_PTR_NOT_NULL(rill_call_later(loop, 50, close_now, s));
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, rd_cb, &r)), 0);
    rill_loop_run_once(loop, 0);
    CU_ASSERT(rill__timer_armed(&s->read_timer));
    CU_ASSERT_EQUAL(r.calls, 0);
    /* both deadlines pass before the loop looks again */
    ts.tv_sec = 0;
    ts.tv_nsec = 150 * 1000000L;
    nanosleep(&ts, NULL);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_ECANCELED);
    CU_ASSERT_EQUAL(rill_is_closing(s), 1);
    rill_abort(s);   /* the peer never reads: give up the flush */
    close(peer);
    test_loop_finish(loop);
    free(big);
}

typedef struct {
    rill_loop *loop;
    rill_stream *s;
    unsigned long polls_at_start, polls_at_end;
    int lines, done;
} same_iter;

static void same_iter_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    same_iter *x = ud;
    (void)data;
    TEST_ASSERT_NOT_SYNC();
    CU_ASSERT_EQUAL(status, 0);
    CU_ASSERT_EQUAL(len, 2);
    if (++x->lines < 3) {
        CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, same_iter_cb, x)), 0);
        return;
    }
    x->polls_at_end = x->loop->npolls;
    x->done = 1;
}

static void start_from_timer(void *ud)
{
    same_iter *x = ud;
    x->polls_at_start = x->loop->npolls;
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(x->s, same_iter_cb, x)), 0);
}

/* Buffered data is cheap: a read the buffer answers completes in the iteration
   that started it, before that iteration's poll. */
static void test_buffered_answer_same_iteration(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    same_iter x;

    memset(&x, 0, sizeof x);
    x.loop = loop;
    x.s = sock_stream(loop, 0, &peer);
    put_str(peer, "a\nb\nc\n");
    CU_ASSERT(run_until_buffered(loop, x.s, 6));
    CU_ASSERT_PTR_NOT_NULL(rill_call_later(loop, 0, start_from_timer, &x));
    CU_ASSERT(test_run_until_every(loop, &x.done, 5000, 5));
    CU_ASSERT_EQUAL(x.lines, 3);
    CU_ASSERT_EQUAL(x.polls_at_end, x.polls_at_start);
    finish_stream(loop, x.s, peer);
}

/* ======================================================= flow control */

typedef struct {
    rill_loop *loop;
    size_t limit, peak, total;
    int elimits, done, bad;
} fc_reader;

static void fc_line_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    fc_reader *f = ud;
    TEST_ASSERT_NOT_SYNC();
    /* readline's limit error hands over the whole buffer it discarded */
    if (len + s->rbuf.len > f->peak)
        f->peak = len + s->rbuf.len;
    if (status == RILL_ELIMIT) {
        f->elimits++;
        if (len <= f->limit || data == NULL || data[0] != pattern[f->total % sizeof pattern])
            f->bad++;
    } else if (status != 0) {
        f->bad++;
        f->done = 1;
        return;
    } else if (len == 0) {
        f->done = 1;
        return;
    }
    f->total += len;
    if (TEST_CALL(rill_readline(s, fc_line_cb, f)) != 0) {
        f->bad++;
        f->done = 1;
    }
}

/* 10 MiB without a newline against a waiting readline: limit errors, bounded memory. */
static void test_flow_control_readline_flood(void)
{
    enum { TOTAL = 10 << 20 };
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, 0, &peer);
    size_t bound = 2 * RILL__DEFAULT_LIMIT + 65536;
    uint64_t end = test_now_ms() + 30000;
    fc_reader f;
    pump p;

    memset(&f, 0, sizeof f);
    f.limit = rill_stream_get_limit(s);
    CU_ASSERT_EQUAL(f.limit, RILL__DEFAULT_LIMIT);
    pump_start(&p, loop, peer, 0, NULL, TOTAL);
    p.observe = s;
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, fc_line_cb, &f)), 0);
    while (!f.done && test_now_ms() < end) {
        rill_loop_run_once(loop, 100);
        if (s->rbuf.len > f.peak)
            f.peak = s->rbuf.len;
    }
    CU_ASSERT_EQUAL(f.done, 1);
    CU_ASSERT_EQUAL(f.bad, 0);
    CU_ASSERT(f.elimits >= (int)(TOTAL / bound));
    CU_ASSERT_EQUAL(f.total, (size_t)TOTAL);   /* every byte discarded or returned once */
    CU_ASSERT(f.peak <= bound);
    CU_ASSERT(p.peak <= bound);
    CU_ASSERT_EQUAL(p.err, 0);
    pump_stop(&p);
    finish_stream(loop, s, peer);
}

/* No read pending: reading stops above 2 * limit and resumes at limit or below. */
static void check_fc_no_read(size_t limit)
{
    rill_loop *loop = test_loop_new(0);
    int peer, i;
    rill_stream *s = sock_stream(loop, limit, &peer);
    size_t bound = 2 * limit + 65536, len;
    uint64_t end;
    pump p;
    rd r;

    pump_start(&p, loop, peer, 0, NULL, (size_t)64 << 20);
    for (end = test_now_ms() + 5000; s->rbuf.len <= 2 * limit && test_now_ms() < end;) {
        rill_loop_run_once(loop, 10);
        CU_ASSERT(s->rbuf.len <= bound);
    }
    CU_ASSERT_FATAL(s->rbuf.len > 2 * limit);
    /* stopped: bytes wait in the socket, the buffer does not grow */
    len = s->rbuf.len;
    for (i = 0; i < 10; i++) {
        rill_loop_run_once(loop, 10);
        CU_ASSERT_EQUAL(s->rbuf.len, len);
    }
    CU_ASSERT(pending_bytes(s->fd) > 0);
    CU_ASSERT_EQUAL(s->io.events & RILL_READABLE, 0);
    /* down to limit + 1: still stopped */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, (ssize_t)(len - limit - 1), rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.len, len - limit - 1);
    CU_ASSERT_EQUAL(r.rbuf_after, limit + 1);
    for (i = 0; i < 10; i++) {
        rill_loop_run_once(loop, 10);
        CU_ASSERT_EQUAL(s->rbuf.len, limit + 1);
    }
    /* down to limit: reading resumes, and stops again above 2 * limit */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 1, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.rbuf_after, limit);
    for (end = test_now_ms() + 5000; s->rbuf.len <= 2 * limit && test_now_ms() < end;) {
        rill_loop_run_once(loop, 10);
        CU_ASSERT(s->rbuf.len <= bound);
    }
    CU_ASSERT(s->rbuf.len > 2 * limit);
    CU_ASSERT(s->rbuf.len <= bound);
    pump_stop(&p);
    finish_stream(loop, s, peer);
}

static void test_flow_control_no_read(void)
{
    check_fc_no_read(RILL__DEFAULT_LIMIT);
    check_fc_no_read(1000);
}

/* ============================================ read chains cost no poll */

enum { CHAIN_N = 100000 };

typedef struct {
    int count, done, bad;
    char line[16];
} chain;

static void chain_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    chain *c = ud;
    int n;
    TEST_ASSERT_NOT_SYNC();
    n = snprintf(c->line, sizeof c->line, "%d\n", c->count);
    if (status != 0 || len != (size_t)n || memcmp(data, c->line, len) != 0) {
        c->bad++;
        c->done = 1;
        return;
    }
    if (++c->count == CHAIN_N) {
        c->done = 1;
        rill_close(s, NULL, NULL);       /* ends the chain without waiting in poll */
        return;
    }
    if (TEST_CALL(rill_readline(s, chain_cb, c)) != 0) {
        c->bad++;
        c->done = 1;
    }
}

static char *chain_lines(size_t *total)
{
    char *buf = malloc((size_t)CHAIN_N * 8);
    size_t n = 0;
    int i;
    CU_ASSERT_FATAL(buf != NULL);
    for (i = 0; i < CHAIN_N; i++)
        n += (size_t)sprintf(buf + n, "%d\n", i);
    *total = n;
    return buf;
}

static void check_chain(size_t limit, int prebuffer, unsigned long max_polls)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = sock_stream(loop, limit, &peer);
    size_t total;
    char *lines = chain_lines(&total);
    unsigned long polls;
    pump p;
    chain c;

    memset(&c, 0, sizeof c);
    pump_start(&p, loop, peer, 0, lines, total);
    if (prebuffer) {
        CU_ASSERT_FATAL(run_until_buffered(loop, s, total));
        CU_ASSERT(p.finished);
    }
    polls = loop->npolls;
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, chain_cb, &c)), 0);
    test_run_until_every(loop, &c.done, 30000, 5);
    polls = loop->npolls - polls;
    /* s is gone: the last callback closed it */
    fprintf(stderr, "(%s, limit %lu: %lu polls) ", prebuffer ? "all buffered" : "fed meanwhile",
            (unsigned long)(limit ? limit : RILL__DEFAULT_LIMIT), polls);
    CU_ASSERT_EQUAL(c.bad, 0);
    CU_ASSERT_EQUAL(c.count, CHAIN_N);
    CU_ASSERT(polls < max_polls);
    pump_stop(&p);
    close(peer);
    test_loop_finish(loop);
    free(lines);
}

static void test_readline_chain_no_polls(void)
{
    check_chain(0, 0, 100);
    /* Everything already buffered: the whole chain runs inside one read step. */
    check_chain((size_t)1 << 20, 1, 3);
}

/* ============================================================ resets */

typedef struct {
    rd first, second;
} reset_pair;

static void reset_first_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    reset_pair *p = ud;
    rd_cb(s, status, data, len, &p->first);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readexactly(s, 5, rd_cb, &p->second)), 0);
}

static void hard_close(int fd)
{
    struct linger lg;
    lg.l_onoff = 1;
    lg.l_linger = 0;
    CU_ASSERT(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(fd);
}

static void test_reset_while_reading(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = tcp_stream(loop, 0, &peer);
    reset_pair rp;
    rd r;

    memset(&rp, 0, sizeof rp);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readline(s, reset_first_cb, &rp)), 0);
    spin(loop, 2);
    hard_close(peer);
    CU_ASSERT(run_until_count(loop, &rp.second.calls, 1, 5000));
    CU_ASSERT_EQUAL(rp.first.status, -ECONNRESET);
    CU_ASSERT_EQUAL(rp.first.data_null, 1);
    CU_ASSERT_EQUAL(rp.first.len, 0);
    /* the next read, started from the callback, reports it too */
    CU_ASSERT_EQUAL(rp.second.status, -ECONNRESET);
    /* and so does one started later */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 10, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, -ECONNRESET);
    CU_ASSERT_EQUAL(r.data_null, 1);
    CU_ASSERT_EQUAL(rill_at_eof(s), 0);
    finish_stream(loop, s, -1);
}

/* Item 7: a stored error wins over bytes still buffered. */
static void test_reset_beats_buffered_data(void)
{
    rill_loop *loop = test_loop_new(0);
    int peer;
    rill_stream *s = tcp_stream(loop, 0, &peer);
    uint64_t end;
    rd r;

    put_str(peer, "abc");
    CU_ASSERT(run_until_buffered(loop, s, 3));
    hard_close(peer);
    for (end = test_now_ms() + 5000; !(s->flags & S_LOST) && test_now_ms() < end;)
        rill_loop_run_once(loop, 10);
    CU_ASSERT_FATAL(s->flags & S_LOST);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_readexactly(s, 3, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, -ECONNRESET);
    CU_ASSERT_EQUAL(r.data_null, 1);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_read(s, 0, rd_cb, &r)), 0);
    CU_ASSERT(run_until_count(loop, &r.calls, 1, 5000));
    CU_ASSERT_EQUAL(r.status, -ECONNRESET);
    finish_stream(loop, s, -1);
}

/* ------------------------------------------ steady state: no allocation */

typedef struct {
    int line;       /* readline, else read(65536) */
    int echoed;
    int ended;
} echo_state;

static int echo_next(rill_stream *s, echo_state *e);

static void echo_back(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    echo_state *e = ud;
    if (status < 0 || len == 0) {
        e->ended = 1;
        return;
    }
    CU_ASSERT(rill_write(s, data, len, NULL, NULL) == 0);
    e->echoed++;
    CU_ASSERT(echo_next(s, e) == 0);
}

static int echo_next(rill_stream *s, echo_state *e)
{
    return e->line ? rill_readline(s, echo_back, e) : rill_read(s, 65536, echo_back, e);
}

/* An echo in steady state (one message read, written and answered at a time)
   must not allocate: the allocation counter of lib/core/alloc.c stays at 0 over
   1000 round trips once 100 have warmed the stream up. */
static void steady_state_echo(int line)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    echo_state e;
    char msg[64], back[64];
    unsigned long made = 1;
    int peer, i;
    rill_stream *s = tcp_stream(loop, 0, &peer);

    memset(&e, 0, sizeof e);
    e.line = line;
    memset(msg, 'm', sizeof msg);
    msg[sizeof msg - 1] = '\n';
    CU_ASSERT_FATAL(echo_next(s, &e) == 0);
    for (i = 0; i < 1100 && !e.ended; i++) {
        size_t got = 0;
        if (i == 100)
            rill__alloc_fail_at(0);            /* counts from 0 again, fails nothing */
        put(peer, msg, sizeof msg);
        CU_ASSERT_FATAL(run_until_count(loop, &e.echoed, i + 1, 5000));
        while (got < sizeof back) {
            ssize_t k = read(peer, back + got, sizeof back - got);
            CU_ASSERT_FATAL(k > 0);
            got += (size_t)k;
        }
        CU_ASSERT_FATAL(memcmp(back, msg, sizeof msg) == 0);
    }
    made = rill__alloc_fail_at(0);
    printf("[%s: %d round trips, %lu allocations in the last 1000] ", line ? "readline" : "read",
           e.echoed, made);
    CU_ASSERT_EQUAL(e.echoed, 1100);
    CU_ASSERT_EQUAL(made, 0);
    rill_close(s, NULL, NULL);
    close(peer);
    test_loop_finish(loop);
}

static void test_steady_state_read(void) { steady_state_echo(0); }
static void test_steady_state_readline(void) { steady_state_echo(1); }

static const test_case cases[] = {
    { "table: inputs x ops x chunkings vs asyncio model (socketpair)", test_table_socketpair },
    { "table: inputs x ops x chunkings vs asyncio model (pipe)", test_table_pipe },
    { "readuntil finds \\r\\n\\r\\n split across arrivals", test_readuntil_split_separator },
    { "readuntil over the limit: RILL_ELIMIT, consumed, data stays", test_readuntil_limit },
    { "readline with limit 7: fits, discards through \\n, clears", test_readline_limit },
    { "readexactly at early EOF: RILL_EINCOMPLETE with the partial bytes", test_readexactly_incomplete },
    { "readuntil at EOF: RILL_EINCOMPLETE, buffer cleared", test_readuntil_eof_incomplete },
    { "read(-1) and readexactly are not capped by a tiny limit", test_read_all_tiny_limit },
    { "read(0) and readexactly(0) complete empty, buffer untouched", test_read_zero },
    { "bad arguments fail at once and never call back", test_bad_arguments },
    { "a second read while one is pending: RILL_EBUSY", test_concurrent_busy },
    { "readline at EOF: partial line, then empty", test_readline_eof_partial_then_empty },
    { "at_eof only with EOF seen and the buffer empty", test_at_eof },
    { "read_cancel: RILL_ECANCELED, buffered data stays", test_read_cancel },
    { "pause/resume: pending reads wait, buffered data answers", test_pause_resume },
    { "read timeout: RILL_ETIMEDOUT, stream usable, bytes intact", test_read_timeout },
    { "a read timeout is armed even when memory runs out", test_read_timeout_enomem },
    { "write-only pipe refuses reads (RILL_EMODE)", test_write_only_pipe_refuses_reads },
    { "close/abort finish a pending read with RILL_ECANCELED first", test_close_cancels_read },
    { "close while a read's timeout is due: RILL_ECANCELED wins", test_close_beats_read_timeout },
    { "a read callback may abort its own stream", test_abort_from_read_callback },
    { "a buffered answer completes before the iteration's poll", test_buffered_answer_same_iteration },
    { "flow control: 10 MiB without newline, readline bounded", test_flow_control_readline_flood },
    { "flow control: no read pending stops above 2*limit, resumes at limit", test_flow_control_no_read },
    { "100000 chained readlines cost fewer than 100 polls", test_readline_chain_no_polls },
    { "peer reset while reading: -ECONNRESET, and again after", test_reset_while_reading },
    { "a stored reset wins over buffered data", test_reset_beats_buffered_data },
    { "echo in steady state: no allocation per message (read)", test_steady_state_read },
    { "echo in steady state: no allocation per message (readline)", test_steady_state_readline },
    { NULL, NULL }
};

int test_read_register(void)
{
    return test_add_suite("read", cases);
}
