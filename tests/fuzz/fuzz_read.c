/* fuzz_read: the read machines (rill_read, rill_read(-1), rill_readline,
   rill_readexactly, rill_readuntil) against a reference model of asyncio's
   StreamReader (docs/semantics.md 1-20), and the pure scanner rill__scan_sep
   against a naive search.

   Input: [flags][limit][clen][clen control bytes][payload]
     flags  bits 0-1 how the loop runs (epoll, poll, select backend, or the program's
            own poll() through rill_loop_prepare_poll), bit 2 start each read from the
            previous read's callback (else from the driver, between iterations),
            bits 4-5 the scanner check's separator length - 1, bits 3 and 6 both set:
            the payload goes through TLS (a rill TLS client writes each chunk, the
            stream under test is a rill TLS server; its close_notify is the EOF)
     limit  index into limits[] (the stream's limit)
     control  the reads, one opcode byte each plus operands, then chunk sizes
   The payload goes through a socketpair, one chunk per loop iteration (at most
   MAX_CHUNKS, then the rest), then EOF; the reads run one after another, a final
   read(-1) takes what is left.

   The model works on the whole payload at once, and decides what asyncio would answer.
   Where asyncio's answer depends on how the bytes arrived (read(n) returns what is
   buffered; a limit overrun is noticed as soon as enough is buffered) the model checks
   the answer against the stream's buffer as it is when the callback runs: every byte
   still buffered must be the payload's next bytes, in order. Any mismatch aborts. */
#include "fuzz_common.h"
#include "rill_private.h"
#include "stream.h"
#include "buf.h"
#include "tls.h"
#include "../support/certs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#define MAX_OPS 48
#define MAX_SPLITS 32
#define MAX_CHUNKS 128
#define RUN_MS 10000      /* a read machine that does not finish within this hangs */

static const size_t limits[16] = { 1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 64, 100, 1000, 4096, 65536, 0 };

enum { K_READ, K_READ_ALL, K_READLINE, K_READEXACTLY, K_READUNTIL };

typedef struct op {
    int kind;
    size_t n;            /* read(n), readexactly(n) */
    uint8_t sep[12];
    size_t seplen;
    int cancel;          /* cancelled right after it started: RILL_ECANCELED, nothing consumed */
    int pause;           /* reading paused for this many iterations after the start */
} op;

typedef struct state {
    rill_loop *loop;
    rill_stream *s;
    int conn_done, conn_status;
    const uint8_t *payload;
    size_t total;
    size_t fed;          /* bytes written to the peer */
    size_t pos;          /* the model: bytes consumed so far */
    size_t limit_cache;  /* the stream's limit */
    op ops[MAX_OPS + 1];
    size_t nops, next, cur;
    int pending;         /* an op was started and has not been answered */
    int from_cb;
    int calls;           /* read callbacks, to catch a double call */
    unsigned long iter, resume_at;
    int paused;
    int close_calls, close_status;
    /* TLS mode */
    rill_stream *client;       /* the writer: a rill TLS client */
    int cli_done, cli_status, hs_done, hs_status;
} state;

/* TLS mode's contexts, made at the first TLS input: 1 ready, -1 no certificates. */
static rill_tls *tls_server, *tls_client;
static int tls_ready;

static int tls_setup(void)
{
    const test_certs *c;
    rill_tls_opts o;

    if (tls_ready != 0)
        return tls_ready > 0;
    tls_ready = -1;
    if ((c = test_certs_get(NULL)) == NULL)
        return 0;               /* no openssl command: TLS inputs run in the clear */
    memset(&o, 0, sizeof o);
    o.cert_file = c->server;
    o.key_file = c->key;
    tls_server = rill_tls_server_new(&o);
    memset(&o, 0, sizeof o);
    o.verify = -1;
    tls_client = rill_tls_client_new(&o);
    FZ_CHECK(tls_server != NULL && tls_client != NULL);
    tls_ready = 1;
    return 1;
}

/* ------------------------------------------------------------- the model */

/* First occurrence of sep in p[0..n), or (size_t)-1. */
static size_t naive_find(const uint8_t *p, size_t n, const uint8_t *sep, size_t k)
{
    size_t j;
    if (k == 0 || n < k)
        return (size_t)-1;
    for (j = 0; j + k <= n; j++)
        if (memcmp(p + j, sep, k) == 0)
            return j;
    return (size_t)-1;
}

#define NONE ((size_t)-1)

static void check_answer(state *st, int status, const char *data, size_t len)
{
    const op *o = &st->ops[st->cur];
    const uint8_t *R = st->payload + st->pos;
    size_t M = st->total - st->pos, L = st->limit_cache, i;
    rill_stream *s = st->s;

    if (fz_verbose)
        fprintf(stderr, "  op %lu kind %d n %lu seplen %lu cancel %d: status %d len %lu (pos %lu of %lu, buffered %lu)\n",
                (unsigned long)st->cur, o->kind, (unsigned long)o->n, (unsigned long)o->seplen, o->cancel,
                status, (unsigned long)len, (unsigned long)st->pos, (unsigned long)st->total,
                (unsigned long)s->rbuf.len);
    FZ_CHECK(len == 0 || data != NULL);
    if (status != 0 && status != RILL_EINCOMPLETE && status != RILL_ELIMIT)
        FZ_CHECK(data == NULL && len == 0);
    if (len > 0)
        FZ_CHECK(len <= M && memcmp(data, R, len) == 0);   /* always the payload's next bytes */
    if (o->cancel) {
        FZ_CHECK(status == RILL_ECANCELED);
        return;
    }
    switch (o->kind) {
    case K_READ:
        FZ_CHECK(status == 0);
        if (o->n == 0 || M == 0) {
            FZ_CHECK(len == 0);           /* read(0); read(n) at EOF */
            break;
        }
        /* At least one byte, at most n, and all of what was buffered when fewer. */
        FZ_CHECK(len >= 1 && len <= o->n);
        FZ_CHECK(len == o->n || s->rbuf.len == 0);
        st->pos += len;
        break;
    case K_READ_ALL:
        FZ_CHECK(status == 0 && len == M);
        st->pos += len;
        break;
    case K_READEXACTLY:
        if (o->n <= M) {
            FZ_CHECK(status == 0 && len == o->n);
        } else {
            FZ_CHECK(status == RILL_EINCOMPLETE && len == M);
        }
        st->pos += len;
        break;
    case K_READLINE:
        i = naive_find(R, M, (const uint8_t *)"\n", 1);
        if (i != NONE && i <= L) {
            FZ_CHECK(status == 0 && len == i + 1);
        } else if (i != NONE || M > L) {
            /* Over the limit: that line is dropped through its '\n' when the '\n' was
               buffered, otherwise the whole buffer (at least limit + 1 bytes). */
            FZ_CHECK(status == RILL_ELIMIT);
            if (!(i != NONE && len == i + 1)) {
                FZ_CHECK(len >= L + 1 && len <= (i != NONE ? i : M));
                FZ_CHECK(s->rbuf.len == 0);
            }
        } else {
            FZ_CHECK(status == 0 && len == M);   /* the partial line at EOF (maybe empty) */
        }
        st->pos += len;
        break;
    case K_READUNTIL:
        i = naive_find(R, M, o->sep, o->seplen);
        if (i != NONE && i <= L) {
            FZ_CHECK(status == 0 && len == i + o->seplen);
            st->pos += len;
        } else if (i != NONE || (M >= o->seplen && M + 1 - o->seplen > L)) {
            /* RILL_ELIMIT: nothing consumed, len is asyncio's `consumed`: the separator's
               offset, or buffered + 1 - seplen when it was not (fully) buffered yet. */
            FZ_CHECK(status == RILL_ELIMIT);
            FZ_CHECK(len >= L + 1 && len <= (i != NONE ? i : M + 1 - o->seplen));
            FZ_CHECK(len == i || len == s->rbuf.len + 1 - o->seplen);
            FZ_CHECK(s->rbuf.len >= len);
        } else {
            FZ_CHECK(status == RILL_EINCOMPLETE && len == M);
            st->pos += len;
        }
        break;
    default:
        FZ_CHECK(0);
    }
}

/* What is still buffered is the payload's next bytes; EOF is only seen at the end. */
static void check_buffer(state *st)
{
    rill_stream *s = st->s;
    FZ_CHECK(st->pos + s->rbuf.len <= st->fed);
    FZ_CHECK(s->rbuf.len == 0 || memcmp(rill__buf_head(&s->rbuf), st->payload + st->pos, s->rbuf.len) == 0);
    if (rill_at_eof(s))
        FZ_CHECK(st->pos == st->total && st->fed == st->total);
}

/* ------------------------------------------------------------ the driver */

static void start_next(state *st);

static void never_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    (void)s; (void)status; (void)data; (void)len; (void)ud;
    FZ_CHECK(0);   /* a read refused with RILL_EBUSY must never call back */
}

static void on_read(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    state *st = ud;
    FZ_CALLBACK();
    FZ_CHECK(s == st->s && st->pending);
    st->pending = 0;
    st->calls++;
    check_answer(st, status, data, len);
    check_buffer(st);
    if (st->from_cb)
        start_next(st);
}

static void start_next(state *st)
{
    const op *o;
    rill_stream *s = st->s;
    int rc = 0;

    if (st->next >= st->nops)
        return;
    st->cur = st->next++;
    o = &st->ops[st->cur];
    switch (o->kind) {
    case K_READ: rc = FZ_CALL(rill_read(s, (ssize_t)o->n, on_read, st)); break;
    case K_READ_ALL: rc = FZ_CALL(rill_read(s, -1, on_read, st)); break;
    case K_READLINE: rc = FZ_CALL(rill_readline(s, on_read, st)); break;
    case K_READEXACTLY: rc = FZ_CALL(rill_readexactly(s, o->n, on_read, st)); break;
    case K_READUNTIL: rc = FZ_CALL(rill_readuntil(s, o->sep, o->seplen, on_read, st)); break;
    }
    FZ_CHECK(rc == 0);
    st->pending = 1;
    /* One read at a time (SEMANTICS 19); an empty separator is an argument error (14). */
    FZ_CHECK(FZ_CALL(rill_read(s, 1, never_cb, NULL)) == RILL_EBUSY);
    FZ_CHECK(FZ_CALL(rill_readuntil(s, "", 0, never_cb, NULL)) == RILL_EINVAL);
    if (o->cancel)
        FZ_CHECK(FZ_CALL(rill_read_cancel(s)) == 0);
    if (o->pause > 0 && !st->paused) {
        FZ_CHECK(rill_pause_reading(s) == 0);
        st->paused = 1;
        st->resume_at = st->iter + (unsigned long)o->pause;
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

static void on_handshake(rill_stream *s, int status, void *ud)
{
    state *st = ud;
    (void)s;
    FZ_CALLBACK();
    st->hs_done = 1;
    st->hs_status = status;
}

static void on_client(rill_stream *s, int status, void *ud)
{
    state *st = ud;
    FZ_CALLBACK();
    st->cli_done = 1;
    st->cli_status = status;
    st->client = s;
}

static void on_close(rill_stream *s, int status, void *ud)
{
    state *st = ud;
    (void)s;
    FZ_CALLBACK();
    st->close_calls++;
    st->close_status = status;
}

/* Reads the ops from the control bytes; returns how many control bytes they used. */
static size_t parse_ops(state *st, const uint8_t *ctrl, size_t clen)
{
    fz_in in;
    in.p = ctrl;
    in.n = clen;
    st->nops = 0;
    while (fz_left(&in) > 0 && st->nops < MAX_OPS) {
        uint8_t b = fz_u8(&in), v;
        op *o = &st->ops[st->nops++];
        memset(o, 0, sizeof *o);
        switch (b & 7) {
        case 0: case 5:
            o->kind = K_READ;
            v = fz_u8(&in);
            o->n = v < 200 ? v : v == 255 ? (size_t)1 << 20 : (size_t)(v - 199) * 97;
            break;
        case 1:
            o->kind = K_READ_ALL;
            break;
        case 2: case 6:
            o->kind = K_READLINE;
            break;
        case 3:
            o->kind = K_READEXACTLY;
            o->n = fz_u16(&in) % 5000;
            break;
        case 4: case 7: {
            size_t got;
            const uint8_t *p;
            o->kind = K_READUNTIL;
            /* 1-4 bytes, and now and then 9-12: longer than the inline copy */
            o->seplen = 1 + ((b >> 3) & 3) + ((b & 0x80) && (b & 0x40) ? 8 : 0);
            p = fz_bytes(&in, o->seplen, &got);
            memcpy(o->sep, p, got);
            memset(o->sep + got, '\n', o->seplen - got);
            break;
        }
        }
        /* The opcode's high bits (when not taken by the separator length): cancel or pause. */
        if ((b & 7) != 4 && (b & 7) != 7) {
            o->cancel = (b & 0xf0) == 0xf0;
            o->pause = (b & 0xe0) == 0x60 ? 1 + ((b >> 3) & 3) * 3 : 0;
        }
    }
    /* Whatever is left at the end: the model must agree on that too. */
    memset(&st->ops[st->nops], 0, sizeof st->ops[0]);
    st->ops[st->nops++].kind = K_READ_ALL;
    return clen - fz_left(&in);
}

static size_t chunk_size(uint8_t b, size_t left)
{
    size_t n;
    if (b == 0)
        return left;
    n = b < 128 ? b : (size_t)(b - 127) * 64;
    return n < left ? n : left;
}

/* ------------------------------------------------------- the pure scanner */

/* rill__scan_sep called on growing prefixes of p (each in a buffer of exactly its size,
   so a read past the end is caught by ASan), resuming at its offset, against a naive
   search of the same prefix. */
static void check_scanner(const uint8_t *p, size_t n, const uint8_t *sep, size_t seplen, size_t limit,
                          const uint8_t *splits, size_t nsplits)
{
    size_t offset = 0, l = 0, k;
    for (k = 0; k <= nsplits && k <= MAX_SPLITS; k++) {
        size_t pos = 12345, i, expect_pos = 0;
        int r, expect;
        char *copy;

        l = (k == nsplits || k == MAX_SPLITS) ? n : l + chunk_size(splits[k], n - l);
        copy = malloc(l ? l : 1);
        FZ_CHECK(copy != NULL);
        memcpy(copy, p, l);
        r = rill__scan_sep(copy, l, (const char *)sep, seplen, limit, &offset, &pos);
        free(copy);
        i = naive_find(p, l, sep, seplen);
        if (i != NONE) {
            expect = i <= limit ? RILL__SCAN_FOUND : RILL__SCAN_LIMIT;
            expect_pos = i;
        } else if (l >= seplen && l + 1 - seplen > limit) {
            expect = RILL__SCAN_LIMIT;
            expect_pos = l + 1 - seplen;
        } else {
            expect = RILL__SCAN_MORE;
        }
        FZ_CHECK(r == expect);
        if (r != RILL__SCAN_MORE) {
            FZ_CHECK(pos == expect_pos);
            break;
        }
        FZ_CHECK(offset <= l);   /* never claims to have searched bytes it was not given */
        if (l == n)
            break;
    }
}

/* ------------------------------------------------------------- the target */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static state st;
    fz_in in;
    uint8_t flags, li;
    size_t clen, used, nchunks, ci = 0, scan_seplen;
    const uint8_t *ctrl, *chunks;
    rill_connect_opts o;
    int sv[2], eof_sent = 0, fl, tls;
    uint64_t end;

    in.p = data;
    in.n = size;
    flags = fz_u8(&in);
    li = fz_u8(&in);
    clen = fz_u8(&in);
    ctrl = fz_bytes(&in, clen, &clen);

    memset(&st, 0, sizeof st);
    st.payload = in.p;
    st.total = in.n;
    st.from_cb = (flags & 4) != 0;
    used = parse_ops(&st, ctrl, clen);
    chunks = ctrl + used;
    nchunks = clen - used;

    /* The scanner alone, on the payload, with a separator from the control bytes. */
    scan_seplen = 1 + ((flags >> 4) & 3);
    {
        uint8_t sep[4] = { '\n', '\n', '\n', '\n' };
        memcpy(sep, ctrl, clen < scan_seplen ? clen : scan_seplen);
        check_scanner(st.payload, st.total, sep, scan_seplen, limits[li & 15] ? limits[li & 15] : 65536,
                      chunks, nchunks);
        check_scanner(st.payload, st.total, sep, scan_seplen, (size_t)-1, chunks, nchunks);
    }

    FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    fl = fcntl(sv[1], F_GETFL);
    FZ_CHECK(fl >= 0 && fcntl(sv[1], F_SETFL, fl | O_NONBLOCK) == 0);
    st.loop = fz_loop_new(flags & 3, NULL, 0);
    memset(&o, 0, sizeof o);
    o.limit = limits[li & 15];
    FZ_CHECK(FZ_CALL(rill_connect_sock(st.loop, sv[0], &o, on_conn, &st, NULL)) == 0);
    fz_run_until(st.loop, &st.conn_done, RUN_MS);
    FZ_CHECK(st.conn_status == 0 && st.s != NULL);
    st.limit_cache = rill_stream_get_limit(st.s);
    FZ_CHECK(st.limit_cache == (o.limit ? o.limit : 65536));
    tls = (flags & 0x48) == 0x48 && tls_setup();
    if (tls) {
        /* The stream under test becomes a TLS server; the peer's end a rill TLS client. */
        rill_connect_opts co;
        memset(&co, 0, sizeof co);
        co.tls = tls_client;
        FZ_CHECK(FZ_CALL(rill__tls_start(st.s, tls_server, 1, NULL, RUN_MS, on_handshake, &st)) == 0);
        FZ_CHECK(FZ_CALL(rill_connect_sock(st.loop, sv[1], &co, on_client, &st, NULL)) == 0);
        fz_run_until(st.loop, &st.hs_done, RUN_MS);
        fz_run_until(st.loop, &st.cli_done, RUN_MS);
        FZ_CHECK(st.hs_status == 0 && st.cli_status == 0 && st.client != NULL);
    }

    end = fz_now_ms() + RUN_MS;
    while (st.pending || st.next < st.nops) {
        FZ_CHECK(fz_now_ms() < end);   /* a read that never completes */
        if (!st.pending)
            start_next(&st);
        if (st.paused && st.iter >= st.resume_at) {
            FZ_CHECK(rill_resume_reading(st.s) == 0);
            st.paused = 0;
        }
        if (st.fed < st.total) {
            /* At most MAX_CHUNKS chunks, then the rest at once: bounds a run's iterations. */
            size_t want = nchunks > 0 && ci < MAX_CHUNKS ? chunk_size(chunks[ci++ % nchunks], st.total - st.fed)
                                                         : st.total - st.fed;
            if (tls) {
                /* One rill_write, one or more TLS records. */
                FZ_CHECK(FZ_CALL(rill_write(st.client, st.payload + st.fed, want, NULL, NULL)) == 0);
                st.fed += want;
            } else {
                ssize_t n = write(sv[1], st.payload + st.fed, want);
                FZ_CHECK(n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)));
                if (n > 0)
                    st.fed += (size_t)n;
            }
        } else if (!eof_sent) {
            if (tls)
                FZ_CHECK(FZ_CALL(rill_close(st.client, NULL, NULL)) == 0);   /* close_notify */
            else
                FZ_CHECK(shutdown(sv[1], SHUT_WR) == 0);
            eof_sent = 1;
        }
        FZ_CHECK(fz_run_once(st.loop, 0) >= 0);   /* socketpair bytes are there at once */
        st.iter++;
        if (!st.pending)
            check_buffer(&st);
    }
    FZ_CHECK(st.calls == (int)st.nops);
    FZ_CHECK(st.pos == st.total);   /* the final read(-1) took the rest */
    FZ_CHECK(rill_at_eof(st.s));
    FZ_CHECK(FZ_CALL(rill_close(st.s, on_close, &st)) == 0);
    fz_finish(st.loop, RUN_MS);
    FZ_CHECK(st.close_calls == 1 && st.close_status == 0);
    if (!tls)
        close(sv[1]);           /* in TLS mode the client stream owned it */
    return 0;
}
