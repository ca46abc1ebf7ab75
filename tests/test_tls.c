/* TLS: contexts, the handshake machine, the TLS transport under every read op,
   verification failures, close_notify and truncation, ALPN, client certificates,
   versions, extra info, and interop with the openssl command in both roles.

   The streams are plain sockets adopted with rill_connect_sock and put under TLS
   with rill__tls_start directly, so the suite does not depend on the connect and
   server machines. Certificates are made at run time (support/certs.c). */
#include "support/testutil.h"
#include "support/streams.h"
#include "support/certs.h"
#include "stream.h"
#include "tls.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define WOLFSSL_OPTIONS_IGNORE_SYS
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

const char *rill__tls_last_error(const rill_stream *s);

#define WAIT_MS 15000

/* ---------------------------------------------------------------- helpers */

typedef struct peer {
    rill_stream *s;
    int hs_done, hs_status;
    char reason[256];
} peer;

typedef struct reader {
    int done, status;
    size_t len;
    int at_eof;
} reader;

static int adopt(rill_loop *loop, int fd, peer *p)
{
    memset(p, 0, sizeof *p);
    p->s = test_adopt_try(loop, fd, NULL);
    return p->s != NULL ? 0 : -1;
}

/* A connected pair of plain streams over a socketpair, or TCP on loopback. */
static int pair_new_on(rill_loop *loop, peer *cli, peer *srv, int tcp)
{
    int sv[2];
    if (tcp ? test_tcp_pair(&sv[1], &sv[0], NULL) < 0 : socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return -1;
    if (adopt(loop, sv[0], cli) < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (adopt(loop, sv[1], srv) < 0) {
        close(sv[1]);
        return -1;
    }
    return 0;
}

static int pair_new(rill_loop *loop, peer *cli, peer *srv)
{
    return pair_new_on(loop, cli, srv, 0);
}

static void on_hs(rill_stream *s, int status, void *ud)
{
    peer *p = ud;
    const char *r = rill__tls_last_error(s);
    p->hs_status = status;
    p->hs_done = 1;
    snprintf(p->reason, sizeof p->reason, "%s", r != NULL ? r : "");
}

static int wait_both(rill_loop *loop, const int *a, const int *b, int ms)
{
    uint64_t end = test_now_ms() + (uint64_t)ms;
    while (!(*a && *b) && test_now_ms() < end)
        if (rill_loop_run_once(loop, 20) < 0)
            break;
    return *a && *b;
}

/* Runs both handshakes; 1 when both callbacks ran. */
static int handshake(rill_loop *loop, peer *cli, rill_tls *ctls, const char *host, peer *srv, rill_tls *stls)
{
    CU_ASSERT_EQUAL_FATAL(rill__tls_start(cli->s, ctls, 0, host, WAIT_MS, on_hs, cli), 0);
    CU_ASSERT_EQUAL_FATAL(rill__tls_start(srv->s, stls, 1, NULL, WAIT_MS, on_hs, srv), 0);
    return wait_both(loop, &cli->hs_done, &srv->hs_done, WAIT_MS);
}

static void drop(peer *p)
{
    if (p->s != NULL)
        rill_abort(p->s);
    p->s = NULL;
}

static rill_tls *client_ctx(const test_certs *c, int verify, const char *alpn)
{
    rill_tls_opts o;
    rill_tls *t;
    char err[256];
    memset(&o, 0, sizeof o);
    o.ca_file = c->ca;
    o.verify = verify;
    o.alpn = alpn;
    o.errbuf = err;
    o.errbuf_len = sizeof err;
    t = rill_tls_client_new(&o);
    if (t == NULL)
        fprintf(stderr, "client ctx: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

static rill_tls *server_ctx(const char *cert, const char *key, int verify, const char *ca, const char *alpn, int minv)
{
    rill_tls_opts o;
    rill_tls *t;
    char err[256];
    memset(&o, 0, sizeof o);
    o.cert_file = cert;
    o.key_file = key;
    o.verify = verify;
    o.ca_file = ca;
    o.alpn = alpn;
    o.min_version = minv;
    o.errbuf = err;
    o.errbuf_len = sizeof err;
    t = rill_tls_server_new(&o);
    if (t == NULL)
        fprintf(stderr, "server ctx: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

/* A TLS pair that completed its handshake (client verifies "localhost" against the test CA). */
typedef struct tls_pair {
    rill_loop *loop;
    rill_tls *ctls, *stls;
    peer cli, srv;
} tls_pair;

static int tls_pair_open_on(tls_pair *tp, const test_certs *c, int tcp)
{
    memset(tp, 0, sizeof *tp);
    tp->loop = test_loop_new(0);
    tp->ctls = client_ctx(c, 0, NULL);
    tp->stls = server_ctx(c->server, c->key, 0, NULL, NULL, 0);
    if (pair_new_on(tp->loop, &tp->cli, &tp->srv, tcp) < 0)
        return -1;
    if (!handshake(tp->loop, &tp->cli, tp->ctls, "localhost", &tp->srv, tp->stls))
        return -1;
    CU_ASSERT_EQUAL(tp->cli.hs_status, 0);
    CU_ASSERT_EQUAL(tp->srv.hs_status, 0);
    return tp->cli.hs_status == 0 && tp->srv.hs_status == 0 ? 0 : -1;
}

static int tls_pair_open(tls_pair *tp, const test_certs *c)
{
    return tls_pair_open_on(tp, c, 0);
}

static void tls_pair_finish(tls_pair *tp)
{
    drop(&tp->cli);
    drop(&tp->srv);
    test_loop_finish(tp->loop);
    rill_tls_free(tp->ctls);
    rill_tls_free(tp->stls);
}

/* ------------------------------------------------------------- contexts */

static void test_ctx_errors(void)
{
    const test_certs *c = test_certs_or_skip();
    rill_tls_opts o;
    rill_tls *t;
    char err[512];

    if (c == NULL)
        return;
    /* a missing CA file: the system's reason and the file's name */
    memset(&o, 0, sizeof o);
    o.ca_file = "/nonexistent/rill-ca.pem";
    o.errbuf = err;
    o.errbuf_len = sizeof err;
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_tls_client_new(&o));
    CU_ASSERT_EQUAL(errno, ENOENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/rill-ca.pem"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "ca_file"));

    /* a file that holds no certificate */
    o.ca_file = c->key;
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_tls_client_new(&o));
    CU_ASSERT_EQUAL(errno, -RILL_ECERT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, c->key));
    /* about the CA file, not about a peer's certificate */
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no CA certificate"));
    CU_ASSERT_PTR_NULL(strstr(err, "peer"));

    /* a cipher list wolfSSL refuses */
    memset(&o, 0, sizeof o);
    o.ca_file = c->ca;
    o.ciphers = "NO-SUCH-CIPHER:ALSO-NOT-ONE";
    o.errbuf = err;
    o.errbuf_len = sizeof err;
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_tls_client_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "NO-SUCH-CIPHER"));

    /* versions other than 0, 12, 13 */
    o.ciphers = NULL;
    o.min_version = 11;
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_tls_client_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);
    o.min_version = 0;

    /* verify: a client takes 0 or -1, a server 0 to 2 */
    o.verify = 1;
    CU_ASSERT_PTR_NULL(rill_tls_client_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);
    o.verify = 0;

    /* reserved slots */
    o.reserved[2] = &o;
    CU_ASSERT_PTR_NULL(rill_tls_client_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);
    o.reserved[2] = NULL;

    /* a server without its certificate; a key file that holds no key */
    CU_ASSERT_PTR_NULL(rill_tls_server_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);
    o.cert_file = c->server;
    o.key_file = c->ca;
    CU_ASSERT_PTR_NULL(rill_tls_server_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "key_file"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, c->ca));
    o.key_file = c->key;
    o.verify = 3;
    CU_ASSERT_PTR_NULL(rill_tls_server_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);
    o.verify = 0;
    o.alpn = "h2,,http/1.1";
    CU_ASSERT_PTR_NULL(rill_tls_server_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);
    o.alpn = "h2,http/1.1";
    t = rill_tls_server_new(&o);
    CU_ASSERT_PTR_NOT_NULL(t);
    CU_ASSERT_PTR_NOT_NULL(rill_tls_native(t));
    rill_tls_free(t);

    /* NULL options: asyncio's ssl=True, the system's CAs (or RILL_ECERT when there are none) */
    errno = 0;
    t = rill_tls_client_new(NULL);
    if (t == NULL)
        CU_ASSERT_EQUAL(errno, -RILL_ECERT);
    rill_tls_free(t);
    CU_ASSERT_PTR_NULL(rill_tls_native(NULL));
    rill_tls_free(NULL);
}

/* -------------------------------------------------------------- echo */

typedef struct echo {
    tls_pair *tp;
    char srv_got[4][64];
    int srv_status[4];
    size_t srv_all_len;
    int srv_at_eof;
    int srv_done;
    char cli_got[3][64];
    int cli_status[3];
    int cli_closed, cli_close_status;
} echo;

static void keep(char *dst, const char *data, size_t len)
{
    size_t n = len < 63 ? len : 63;
    if (data != NULL)
        memcpy(dst, data, n);
    dst[n] = '\0';
}

static void srv_all(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    echo *e = ud;
    e->srv_status[3] = status;
    keep(e->srv_got[3], data, len);
    e->srv_all_len = len;
    e->srv_at_eof = rill_at_eof(s);
    e->srv_done = 1;
}

static void srv_exact(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    echo *e = ud;
    e->srv_status[2] = status;
    keep(e->srv_got[2], data, len);
    rill_write(s, data, len, NULL, NULL);
    CU_ASSERT_EQUAL(rill_read(s, -1, srv_all, e), 0);
}

static void srv_until(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    echo *e = ud;
    e->srv_status[1] = status;
    keep(e->srv_got[1], data, len);
    rill_write(s, data, len, NULL, NULL);
    CU_ASSERT_EQUAL(rill_readexactly(s, 3, srv_exact, e), 0);
}

static void srv_line(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    echo *e = ud;
    e->srv_status[0] = status;
    keep(e->srv_got[0], data, len);
    rill_write(s, data, len, NULL, NULL);
    CU_ASSERT_EQUAL(rill_readuntil(s, ";", 1, srv_until, e), 0);
}

static void cli_closed(rill_stream *s, int status, void *ud)
{
    echo *e = ud;
    (void)s;
    e->cli_close_status = status;
    e->cli_closed = 1;
}

static void cli_exact(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    echo *e = ud;
    e->cli_status[2] = status;
    keep(e->cli_got[2], data, len);
    /* rill_close sends close_notify: the server's read(-1) ends with a clean EOF */
    CU_ASSERT_EQUAL(rill_close(s, cli_closed, e), 0);
    e->tp->cli.s = NULL;
}

static void cli_until(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    echo *e = ud;
    e->cli_status[1] = status;
    keep(e->cli_got[1], data, len);
    CU_ASSERT_EQUAL(rill_readexactly(s, 3, cli_exact, e), 0);
}

static void cli_line(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    echo *e = ud;
    e->cli_status[0] = status;
    keep(e->cli_got[0], data, len);
    CU_ASSERT_EQUAL(rill_readuntil(s, ";", 1, cli_until, e), 0);
}

static void test_echo_read_ops(void)
{
    const test_certs *c = test_certs_or_skip();
    static const char msg[] = "hello\nfoo;barXYZWtail";
    tls_pair tp;
    echo e;

    if (c == NULL)
        return;
    memset(&e, 0, sizeof e);
    e.tp = &tp;
    if (tls_pair_open(&tp, c) == 0) {
        CU_ASSERT_EQUAL(rill_readline(tp.srv.s, srv_line, &e), 0);
        CU_ASSERT_EQUAL(rill_write(tp.cli.s, msg, sizeof msg - 1, NULL, NULL), 0);
        CU_ASSERT_EQUAL(rill_readline(tp.cli.s, cli_line, &e), 0);
        wait_both(tp.loop, &e.srv_done, &e.cli_closed, WAIT_MS);
        CU_ASSERT_STRING_EQUAL(e.srv_got[0], "hello\n");
        CU_ASSERT_STRING_EQUAL(e.srv_got[1], "foo;");
        CU_ASSERT_STRING_EQUAL(e.srv_got[2], "bar");
        CU_ASSERT_STRING_EQUAL(e.srv_got[3], "XYZWtail");
        CU_ASSERT_EQUAL(e.srv_status[3], 0);
        CU_ASSERT_EQUAL(e.srv_all_len, 8);
        CU_ASSERT_EQUAL(e.srv_at_eof, 1);
        CU_ASSERT_STRING_EQUAL(e.cli_got[0], "hello\n");
        CU_ASSERT_STRING_EQUAL(e.cli_got[1], "foo;");
        CU_ASSERT_STRING_EQUAL(e.cli_got[2], "bar");
        CU_ASSERT_EQUAL(e.cli_status[0] | e.cli_status[1] | e.cli_status[2], 0);
        CU_ASSERT_EQUAL(e.cli_closed, 1);
        CU_ASSERT_EQUAL(e.cli_close_status, 0);
    }
    tls_pair_finish(&tp);
}

/* -------------------------------------------------------------- bulk */

#define BULK_BYTES (8u << 20)
#define BULK_CHUNK (256u << 10)
#define BULK_READ 7001u   /* odd: records end mid-read, bytes stay inside wolfSSL */

typedef struct bulk_side {
    rill_stream *s;
    uint32_t wseed, rseed;         /* generator states: what is written, what must arrive */
    size_t written, read;
    uint32_t mismatches;
    int wdone, rdone, err;
    char chunk[BULK_CHUNK];
} bulk_side;

static uint32_t xorshift(uint32_t *x)
{
    uint32_t v = *x;
    v ^= v << 13;
    v ^= v >> 17;
    v ^= v << 5;
    *x = v;
    return v;
}

static void bulk_write_more(rill_stream *s, int status, void *ud);

static void bulk_write_next(bulk_side *b)
{
    size_t n = BULK_BYTES - b->written, i;
    if (n > BULK_CHUNK)
        n = BULK_CHUNK;
    for (i = 0; i < n; i++)
        b->chunk[i] = (char)(xorshift(&b->wseed) >> 24);
    b->written += n;
    if (rill_write(b->s, b->chunk, n, bulk_write_more, b) != 0)
        b->err = 1;
}

static void bulk_write_more(rill_stream *s, int status, void *ud)
{
    bulk_side *b = ud;
    (void)s;
    if (status != 0) {
        b->err = 1;
        return;
    }
    if (b->written == BULK_BYTES)
        b->wdone = 1;
    else
        bulk_write_next(b);
}

static void bulk_read(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    bulk_side *b = ud;
    size_t i;
    if (status != 0) {
        b->err = 1;
        return;
    }
    for (i = 0; i < len; i++)
        if ((char)(xorshift(&b->rseed) >> 24) != data[i])
            b->mismatches++;
    b->read += len;
    if (b->read == BULK_BYTES) {
        b->rdone = 1;
        return;
    }
    i = BULK_BYTES - b->read;
    if (rill_readexactly(s, i < BULK_READ ? i : BULK_READ, bulk_read, b) != 0)
        b->err = 1;
}

/* Counts how often the stream found bytes waiting inside wolfSSL after a read. */
static rill__transport spy_tr;
static const rill__transport *spy_orig;
static unsigned long spy_hits;
static size_t spy_pending(const rill_stream *s)
{
    size_t n = spy_orig->pending(s);
    if (n > 0)
        spy_hits++;
    return n;
}

static void test_bulk_8mib(void)
{
    const test_certs *c = test_certs_or_skip();
    tls_pair tp;
    bulk_side *a, *b;
    uint64_t end;

    if (c == NULL)
        return;
    a = calloc(1, sizeof *a);
    b = calloc(1, sizeof *b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    if (tls_pair_open(&tp, c) == 0) {
        spy_orig = tp.srv.s->tr;
        spy_tr = *spy_orig;
        spy_tr.pending = spy_pending;
        spy_hits = 0;
        tp.srv.s->tr = &spy_tr;
        tp.cli.s->tr = &spy_tr;
        a->s = tp.cli.s;
        b->s = tp.srv.s;
        a->wseed = b->rseed = 0x12345678u;   /* client -> server */
        b->wseed = a->rseed = 0x9abcdef1u;   /* server -> client */
        bulk_write_next(a);
        bulk_write_next(b);
        CU_ASSERT_EQUAL(rill_readexactly(a->s, BULK_READ, bulk_read, a), 0);
        CU_ASSERT_EQUAL(rill_readexactly(b->s, BULK_READ, bulk_read, b), 0);
        end = test_now_ms() + 45000;
        while (!(a->rdone && b->rdone && a->wdone && b->wdone) && !a->err && !b->err && test_now_ms() < end)
            rill_loop_run_once(tp.loop, 50);
        CU_ASSERT_EQUAL(a->err, 0);
        CU_ASSERT_EQUAL(b->err, 0);
        CU_ASSERT_EQUAL(a->read, BULK_BYTES);
        CU_ASSERT_EQUAL(b->read, BULK_BYTES);
        CU_ASSERT_EQUAL(a->mismatches, 0);
        CU_ASSERT_EQUAL(b->mismatches, 0);
        CU_ASSERT_EQUAL(a->wdone && b->wdone, 1);
        /* the stream's buffer always holds a whole record: nothing is left behind in wolfSSL */
        CU_ASSERT_EQUAL(spy_hits, 0);
        tp.srv.s->tr = spy_orig;
        tp.cli.s->tr = spy_orig;
    }
    tls_pair_finish(&tp);
    free(a);
    free(b);
}

/* Bytes decrypted but not yet handed out are reported by pending() and come
   without the socket becoming readable again. */
static void test_pending_bytes(void)
{
    const test_certs *c = test_certs_or_skip();
    tls_pair tp;
    char data[1000], buf[2000];
    struct pollfd pfd;
    ssize_t n;
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; i < sizeof data; i++)
        data[i] = (char)('a' + i % 26);
    if (tls_pair_open(&tp, c) == 0) {
        CU_ASSERT_EQUAL(rill_pause_reading(tp.cli.s), 0);
        CU_ASSERT_EQUAL(rill_write(tp.srv.s, data, sizeof data, NULL, NULL), 0);
        pfd.fd = rill_fileno(tp.cli.s);
        pfd.events = POLLIN;
        CU_ASSERT_EQUAL(poll(&pfd, 1, 5000), 1);
        n = tp.cli.s->tr->recv(tp.cli.s, buf, 10);
        CU_ASSERT_EQUAL(n, 10);
        CU_ASSERT_EQUAL(tp.cli.s->tr->pending(tp.cli.s), 990);
        /* the socket is drained: what is left sits in wolfSSL */
        CU_ASSERT_EQUAL(poll(&pfd, 1, 0), 0);
        n = tp.cli.s->tr->recv(tp.cli.s, buf + 10, sizeof buf - 10);
        CU_ASSERT_EQUAL(n, 990);
        CU_ASSERT_EQUAL(memcmp(buf, data, sizeof data), 0);
        CU_ASSERT_EQUAL(tp.cli.s->tr->pending(tp.cli.s), 0);
        n = tp.cli.s->tr->recv(tp.cli.s, buf, sizeof buf);
        CU_ASSERT_EQUAL(n, -EAGAIN);
        CU_ASSERT_EQUAL(tp.cli.s->rd_want, RILL_READABLE);
    }
    tls_pair_finish(&tp);
}

static void exact_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    reader *r = ud;
    (void)s;
    r->status = status;
    r->len = len;
    r->at_eof = data != NULL && len == 1000 && data[0] == 'a' && data[999] == 'a' + 999 % 26;
    r->done = 1;
}

/* The stream side of the same path: a read that took part of a record (as do_read
   does with a small buffer) leaves the rest in wolfSSL; the stream's more_task hands
   it out although the socket never becomes readable again. */
static void test_pending_via_stream(void)
{
    const test_certs *c = test_certs_or_skip();
    tls_pair tp;
    char data[1000];
    struct pollfd pfd;
    size_t i, avail;
    char *p;
    ssize_t n;
    reader r;

    if (c == NULL)
        return;
    for (i = 0; i < sizeof data; i++)
        data[i] = (char)('a' + i % 26);
    memset(&r, 0, sizeof r);
    if (tls_pair_open(&tp, c) == 0) {
        rill_stream *s = tp.cli.s;
        CU_ASSERT_EQUAL(rill_pause_reading(s), 0);
        CU_ASSERT_EQUAL(rill_write(tp.srv.s, data, sizeof data, NULL, NULL), 0);
        pfd.fd = rill_fileno(s);
        pfd.events = POLLIN;
        CU_ASSERT_EQUAL(poll(&pfd, 1, 5000), 1);
        p = rill__buf_space(&s->rbuf, 16, &avail);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        n = s->tr->recv(s, p, 10);
        CU_ASSERT_EQUAL_FATAL(n, 10);
        rill__buf_commit(&s->rbuf, 10);
        CU_ASSERT_EQUAL(s->tr->pending(s), 990);
        CU_ASSERT_EQUAL(rill_resume_reading(s), 0);
        rill__task_post(s->loop, &s->more_task);   /* what do_read does after such a read */
        CU_ASSERT_EQUAL(rill_readexactly(s, 1000, exact_cb, &r), 0);
        test_run_until(tp.loop, &r.done, 5000);
        CU_ASSERT_EQUAL(r.status, 0);
        CU_ASSERT_EQUAL(r.len, 1000);
        CU_ASSERT_EQUAL(r.at_eof, 1);
    }
    tls_pair_finish(&tp);
}

/* ------------------------------------------------------- verification */

/* Client (verifying against the test CA, or not) against a server with cert. */
static void verify_case(const test_certs *c, const char *cert, const char *host, int verify,
                        int *cli_status, char *reason, size_t reasonlen)
{
    rill_loop *loop = test_loop_new(0);
    rill_tls *ctls = client_ctx(c, verify, NULL);
    rill_tls *stls = server_ctx(cert, c->key, 0, NULL, NULL, 0);
    peer cli, srv;

    *cli_status = 1;
    if (pair_new(loop, &cli, &srv) == 0 && handshake(loop, &cli, ctls, host, &srv, stls)) {
        *cli_status = cli.hs_status;
        snprintf(reason, reasonlen, "%s", cli.reason);
        if (getenv("RILL_TEST_VERBOSE") != NULL)
            fprintf(stderr, "[%s as %s: %s %s / server %s %s]\n", cert, host, rill_err_name(cli.hs_status),
                    cli.reason, rill_err_name(srv.hs_status), srv.reason);
        if (cli.hs_status != 0)
            CU_ASSERT(srv.hs_status < 0);   /* the client's alert ends the server's handshake */
    }
    drop(&cli);
    drop(&srv);
    test_loop_finish(loop);
    rill_tls_free(ctls);
    rill_tls_free(stls);
}

static void test_verify_failures(void)
{
    const test_certs *c = test_certs_or_skip();
    char r_unknown[256] = "", r_name[256] = "", r_expired[256] = "", r_ip[256] = "";
    int st;

    if (c == NULL)
        return;
    verify_case(c, c->unknown_ca, "localhost", 0, &st, r_unknown, sizeof r_unknown);
    CU_ASSERT_EQUAL(st, RILL_ECERT);
    CU_ASSERT_PTR_NOT_NULL(strstr(r_unknown, "unknown issuer"));
    verify_case(c, c->wrong_name, "localhost", 0, &st, r_name, sizeof r_name);
    CU_ASSERT_EQUAL(st, RILL_ECERT);
    CU_ASSERT_PTR_NOT_NULL(strstr(r_name, "host name mismatch"));
    verify_case(c, c->expired, "localhost", 0, &st, r_expired, sizeof r_expired);
    CU_ASSERT_EQUAL(st, RILL_ECERT);
    CU_ASSERT_PTR_NOT_NULL(strstr(r_expired, "expired"));
    /* a numeric host is checked against the certificate's IP addresses */
    verify_case(c, c->server, "127.0.0.9", 0, &st, r_ip, sizeof r_ip);
    CU_ASSERT_EQUAL(st, RILL_ECERT);
    CU_ASSERT_PTR_NOT_NULL(strstr(r_ip, "IP address mismatch"));
    CU_ASSERT(strcmp(r_unknown, r_name) != 0 && strcmp(r_name, r_expired) != 0 && strcmp(r_unknown, r_expired) != 0);
}

/* ------------------------------------------------ why a connect failed */

typedef struct connect_result {
    int done, status;
} connect_result;

static void on_connected(rill_stream *s, int status, void *ud)
{
    connect_result *cr = ud;
    if (s != NULL)
        rill_abort(s);
    cr->status = status;
    cr->done = 1;
}

static void on_tls_client(rill_server *srv, rill_stream *s, void *ud)
{
    (void)srv;
    (void)ud;
    rill_abort(s);
}

static void on_server_closed(rill_server *srv, int status, void *ud)
{
    (void)srv;
    (void)status;
    *(int *)ud = 1;
}

/* rill_connect to a TLS server on 127.0.0.1 presenting cert (port: that server's;
   0: a port nobody listens on); the status, and errbuf as the program sees it. */
static int connect_why(const test_certs *c, const char *cert, char *errbuf, size_t len)
{
    rill_loop *loop = test_loop_new(0);
    rill_tls *ctls = client_ctx(c, 0, NULL);
    rill_tls *stls = cert != NULL ? server_ctx(cert, c->key, 0, NULL, NULL, 0) : NULL;
    rill_server_opts so;
    rill_connect_opts co;
    rill_server *srv = NULL;
    connect_result cr;
    int port = 1, closed = 0;   /* port 1: nothing listens there on loopback */

    memset(&so, 0, sizeof so);
    memset(&co, 0, sizeof co);
    memset(&cr, 0, sizeof cr);
    so.tls = stls;
    if (stls != NULL) {
        srv = rill_server_new(loop, "127.0.0.1", 0, &so, on_tls_client, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
        CU_ASSERT_EQUAL(rill_server_start_serving(srv, NULL, NULL), 0);
        port = rill_server_port(srv);
    }
    co.tls = ctls;
    co.server_hostname = "localhost";
    co.flags = AI_NUMERICHOST;
    co.errbuf = errbuf;
    co.errbuf_len = len;
    cr.status = 1;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", port, &co, on_connected, &cr, NULL), 0);
    test_run_until(loop, &cr.done, WAIT_MS);
    CU_ASSERT_EQUAL(cr.done, 1);
    if (getenv("RILL_TEST_VERBOSE") != NULL)
        fprintf(stderr, "[connect to %s: %s: %s]\n", cert != NULL ? cert : "nobody", rill_err_name(cr.status), errbuf);
    if (srv != NULL) {
        CU_ASSERT_EQUAL(rill_server_close(srv, on_server_closed, &closed), 0);
        test_run_until(loop, &closed, WAIT_MS);
    }
    test_loop_finish(loop);
    rill_tls_free(ctls);
    if (stls != NULL)
        rill_tls_free(stls);
    return cr.status;
}

static void test_connect_errbuf(void)
{
    const test_certs *c = test_certs_or_skip();
    char unknown[256], name[256], expired[256], refused[256];

    if (c == NULL)
        return;
    memset(unknown, 'x', sizeof unknown);   /* a stale text must not survive */
    unknown[sizeof unknown - 1] = '\0';
    CU_ASSERT_EQUAL(connect_why(c, c->unknown_ca, unknown, sizeof unknown), RILL_ECERT);
    CU_ASSERT_PTR_NOT_NULL(strstr(unknown, "unknown issuer"));
    CU_ASSERT_EQUAL(connect_why(c, c->wrong_name, name, sizeof name), RILL_ECERT);
    CU_ASSERT_PTR_NOT_NULL(strstr(name, "host name mismatch"));
    CU_ASSERT_EQUAL(connect_why(c, c->expired, expired, sizeof expired), RILL_ECERT);
    CU_ASSERT_PTR_NOT_NULL(strstr(expired, "expired"));
    /* without TLS in the way: each attempt's address and error */
    CU_ASSERT_EQUAL(connect_why(c, NULL, refused, sizeof refused), -ECONNREFUSED);
    CU_ASSERT_PTR_NOT_NULL(strstr(refused, "127.0.0.1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(refused, "ECONNREFUSED"));
    /* a buffer of one byte holds the terminator only */
    CU_ASSERT_EQUAL(connect_why(c, c->wrong_name, name, 1), RILL_ECERT);
    CU_ASSERT_STRING_EQUAL(name, "");
}

static void test_verify_success_cases(void)
{
    const test_certs *c = test_certs_or_skip();
    char r[256];
    int st;

    if (c == NULL)
        return;
    verify_case(c, c->server, "127.0.0.1", 0, &st, r, sizeof r);
    CU_ASSERT_EQUAL(st, 0);
    verify_case(c, c->server, "::1", 0, &st, r, sizeof r);
    CU_ASSERT_EQUAL(st, 0);
    /* a zone index names the link: the address is still checked, no SNI is sent */
    verify_case(c, c->server, "::1%lo", 0, &st, r, sizeof r);
    CU_ASSERT_EQUAL(st, 0);
    verify_case(c, c->server, "::2%lo", 0, &st, r, sizeof r);
    CU_ASSERT_EQUAL(st, RILL_ECERT);
    /* verify = -1 is the only way off: an unknown CA, a wrong name and an expired certificate pass */
    verify_case(c, c->unknown_ca, "localhost", -1, &st, r, sizeof r);
    CU_ASSERT_EQUAL(st, 0);
    verify_case(c, c->expired, "elsewhere.example", -1, &st, r, sizeof r);
    CU_ASSERT_EQUAL(st, 0);
    /* ca_path: a directory with the CA among keys, requests and other files */
    {
        rill_loop *loop = test_loop_new(0);
        rill_tls_opts o;
        rill_tls *ctls, *stls = server_ctx(c->server, c->key, 0, NULL, NULL, 0);
        char err[256] = "";
        peer cli, srv;
        memset(&o, 0, sizeof o);
        o.ca_path = c->dir;
        o.errbuf = err;
        o.errbuf_len = sizeof err;
        ctls = rill_tls_client_new(&o);
        if (ctls == NULL)
            fprintf(stderr, "ca_path: %s\n", err);
        CU_ASSERT_PTR_NOT_NULL(ctls);
        if (ctls != NULL && pair_new(loop, &cli, &srv) == 0) {
            CU_ASSERT(handshake(loop, &cli, ctls, "localhost", &srv, stls));
            CU_ASSERT_EQUAL(cli.hs_status, 0);
            drop(&cli);
            drop(&srv);
        }
        test_loop_finish(loop);
        rill_tls_free(ctls);
        rill_tls_free(stls);
    }
}

/* ------------------------------------------------ handshake failure modes */

static void test_handshake_timeout(void)
{
    const test_certs *c = test_certs_or_skip();
    rill_loop *loop;
    rill_tls *ctls;
    peer cli;
    int sv[2];
    uint64_t t0, dt;

    if (c == NULL)
        return;
    loop = test_loop_new(0);
    ctls = client_ctx(c, 0, NULL);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL_FATAL(adopt(loop, sv[0], &cli), 0);
    t0 = test_now_ms();
    CU_ASSERT_EQUAL(rill__tls_start(cli.s, ctls, 0, "localhost", 300, on_hs, &cli), 0);
    CU_ASSERT_EQUAL(cli.hs_done, 0);   /* never from inside the call */
    test_run_until(loop, &cli.hs_done, 5000);
    dt = test_now_ms() - t0;
    CU_ASSERT_EQUAL(cli.hs_status, RILL_ETIMEDOUT);
    CU_ASSERT(dt >= 250 && dt < 4000);
    drop(&cli);
    close(sv[1]);
    test_loop_finish(loop);
    rill_tls_free(ctls);
}

static void test_plaintext_peer(void)
{
    const test_certs *c = test_certs_or_skip();
    static const char junk[] = "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: not-tls\r\n\r\n";
    rill_loop *loop;
    rill_tls *stls;
    peer srv;
    int sv[2];

    if (c == NULL)
        return;
    loop = test_loop_new(0);
    stls = server_ctx(c->server, c->key, 0, NULL, NULL, 0);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL_FATAL(adopt(loop, sv[1], &srv), 0);
    CU_ASSERT_EQUAL(rill__tls_start(srv.s, stls, 1, NULL, 3000, on_hs, &srv), 0);
    CU_ASSERT_EQUAL(write(sv[0], junk, sizeof junk - 1), (ssize_t)(sizeof junk - 1));
    test_run_until(loop, &srv.hs_done, 5000);
    CU_ASSERT_EQUAL(srv.hs_status, RILL_ETLS);
    CU_ASSERT(srv.reason[0] != '\0');
    drop(&srv);
    close(sv[0]);
    test_loop_finish(loop);
    rill_tls_free(stls);
}

static void on_closed_flag(rill_stream *s, int status, void *ud)
{
    (void)s;
    *(int *)ud = status == 0 ? 1 : status;
}

/* Aborting during the handshake: the callback never runs, nothing leaks. */
static void test_abort_during_handshake(void)
{
    const test_certs *c = test_certs_or_skip();
    rill_loop *loop;
    rill_tls *ctls;
    peer cli, other, third;
    int sv[2], closed = 0;

    if (c == NULL)
        return;
    loop = test_loop_new(0);
    ctls = client_ctx(c, 0, NULL);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL_FATAL(adopt(loop, sv[0], &cli), 0);
    /* argument checks: a verifying client needs a name; one TLS layer per stream */
    CU_ASSERT_EQUAL(rill__tls_start(cli.s, ctls, 0, NULL, 0, on_hs, &cli), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__tls_start(cli.s, ctls, 1, NULL, 0, on_hs, &cli), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__tls_start(cli.s, ctls, 0, "localhost", 5000, on_hs, &cli), 0);
    CU_ASSERT_EQUAL(rill__tls_start(cli.s, ctls, 0, "localhost", 5000, on_hs, &cli), RILL_EMODE);
    rill_abort(cli.s);            /* before the first step ran */
    cli.s = NULL;
    close(sv[1]);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL(adopt(loop, sv[0], &other), 0);
    CU_ASSERT_EQUAL(rill__tls_start(other.s, ctls, 0, "localhost", 5000, on_hs, &other), 0);
    rill_loop_run_once(loop, 50);  /* the ClientHello goes out; the silent peer never answers */
    CU_ASSERT_EQUAL(other.hs_done, 0);
    rill_abort(other.s);
    other.s = NULL;
    close(sv[1]);
    /* a graceful close during the handshake: no close_notify to send, no callback */
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL(adopt(loop, sv[0], &third), 0);
    CU_ASSERT_EQUAL(rill__tls_start(third.s, ctls, 0, "localhost", 5000, on_hs, &third), 0);
    rill_loop_run_once(loop, 50);
    CU_ASSERT_EQUAL(rill_close(third.s, on_closed_flag, &closed), 0);
    third.s = NULL;
    test_run_until(loop, &closed, WAIT_MS);
    CU_ASSERT_EQUAL(closed, 1);
    test_loop_finish(loop);
    close(sv[1]);
    CU_ASSERT_EQUAL(third.hs_done, 0);
    CU_ASSERT_EQUAL(cli.hs_done, 0);
    CU_ASSERT_EQUAL(other.hs_done, 0);
    rill_tls_free(ctls);
}

/* ------------------------------------------------------------- closing */

static void read_all_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    reader *r = ud;
    (void)data;
    r->status = status;
    r->len = len;
    r->at_eof = rill_at_eof(s);
    r->done = 1;
}

static void test_close_notify_from_server(void)
{
    const test_certs *c = test_certs_or_skip();
    tls_pair tp;
    reader r;

    if (c == NULL)
        return;
    memset(&r, 0, sizeof r);
    if (tls_pair_open(&tp, c) == 0) {
        CU_ASSERT_EQUAL(rill_write(tp.srv.s, "bye", 3, NULL, NULL), 0);
        CU_ASSERT_EQUAL(rill_close(tp.srv.s, NULL, NULL), 0);
        tp.srv.s = NULL;
        CU_ASSERT_EQUAL(rill_read(tp.cli.s, -1, read_all_cb, &r), 0);
        test_run_until(tp.loop, &r.done, WAIT_MS);
        CU_ASSERT_EQUAL(r.status, 0);
        CU_ASSERT_EQUAL(r.len, 3);
        CU_ASSERT_EQUAL(r.at_eof, 1);
    }
    tls_pair_finish(&tp);
}

static void test_truncation(void)
{
    const test_certs *c = test_certs_or_skip();
    tls_pair tp;
    reader r, r2;
    const char *why;

    if (c == NULL)
        return;
    memset(&r, 0, sizeof r);
    memset(&r2, 0, sizeof r2);
    if (tls_pair_open(&tp, c) == 0) {
        /* The client reads first, so no unread byte (a TLS 1.3 session ticket) turns
           its close into a reset: the server must see a bare EOF. */
        CU_ASSERT_EQUAL(rill_write(tp.srv.s, "x", 1, NULL, NULL), 0);
        CU_ASSERT_EQUAL(rill_readexactly(tp.cli.s, 1, read_all_cb, &r2), 0);
        test_run_until(tp.loop, &r2.done, WAIT_MS);
        CU_ASSERT_EQUAL(r2.status, 0);
        CU_ASSERT_EQUAL(rill_read(tp.srv.s, -1, read_all_cb, &r), 0);
        rill_abort(tp.cli.s);         /* the descriptor closes without close_notify */
        tp.cli.s = NULL;
        test_run_until(tp.loop, &r.done, WAIT_MS);
        CU_ASSERT_EQUAL(r.status, RILL_ETLS);
        why = rill__tls_last_error(tp.srv.s);
        /* the transport is gone once the stream was lost; the reason was in the trace */
        if (why != NULL)
            CU_ASSERT_PTR_NOT_NULL(strstr(why, "close_notify"));
    }
    tls_pair_finish(&tp);
}

/* A reset after data is a truncated stream, never a clean end: only close_notify is EOF. */
static void test_reset_after_data(void)
{
    const test_certs *c = test_certs_or_skip();
    tls_pair tp;
    reader r, r2;
    struct linger lg;

    if (c == NULL)
        return;
    memset(&r, 0, sizeof r);
    memset(&r2, 0, sizeof r2);
    lg.l_onoff = 1;
    lg.l_linger = 0;
    if (tls_pair_open_on(&tp, c, 1) == 0) {
        CU_ASSERT_EQUAL(rill_write(tp.srv.s, "data", 4, NULL, NULL), 0);
        CU_ASSERT_EQUAL(rill_readexactly(tp.cli.s, 4, read_all_cb, &r2), 0);
        test_run_until(tp.loop, &r2.done, WAIT_MS);
        CU_ASSERT_EQUAL(r2.status, 0);
        CU_ASSERT_EQUAL(rill_read(tp.cli.s, -1, read_all_cb, &r), 0);
        /* linger 0: the close sends RST, no close_notify and no FIN */
        CU_ASSERT_EQUAL(setsockopt(rill_fileno(tp.srv.s), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        rill_abort(tp.srv.s);
        tp.srv.s = NULL;
        test_run_until(tp.loop, &r.done, WAIT_MS);
        CU_ASSERT_EQUAL(r.done, 1);
        CU_ASSERT_EQUAL(r.status, -ECONNRESET);
        CU_ASSERT_EQUAL(r.at_eof, 0);
    }
    tls_pair_finish(&tp);
}

static void test_write_eof_mode(void)
{
    const test_certs *c = test_certs_or_skip();
    tls_pair tp;

    if (c == NULL)
        return;
    if (tls_pair_open(&tp, c) == 0) {
        CU_ASSERT_EQUAL(rill_can_write_eof(tp.cli.s), 0);
        CU_ASSERT_EQUAL(rill_write_eof(tp.cli.s), RILL_EMODE);
        CU_ASSERT_EQUAL(rill_can_write_eof(tp.srv.s), 0);
    }
    tls_pair_finish(&tp);
}

/* --------------------------------------------------------------- ALPN */

static void test_alpn(void)
{
    const test_certs *c = test_certs_or_skip();
    rill_loop *loop;
    rill_tls *ctls, *stls, *plain_c;
    peer cli, srv, cli2, srv2;
    char buf[64];

    if (c == NULL)
        return;
    loop = test_loop_new(0);
    ctls = client_ctx(c, 0, "h2,http/1.1");
    plain_c = client_ctx(c, 0, NULL);
    stls = server_ctx(c->server, c->key, 0, NULL, "http/1.1,spdy/3", 0);
    CU_ASSERT_EQUAL_FATAL(pair_new(loop, &cli, &srv), 0);
    if (handshake(loop, &cli, ctls, "localhost", &srv, stls) && cli.hs_status == 0 && srv.hs_status == 0) {
        CU_ASSERT_PTR_NOT_NULL(rill_tls_alpn(cli.s));
        if (rill_tls_alpn(cli.s) != NULL)
            CU_ASSERT_STRING_EQUAL(rill_tls_alpn(cli.s), "http/1.1");
        CU_ASSERT_PTR_NOT_NULL(rill_tls_alpn(srv.s));
        if (rill_tls_alpn(srv.s) != NULL)
            CU_ASSERT_STRING_EQUAL(rill_tls_alpn(srv.s), "http/1.1");
        CU_ASSERT_EQUAL(rill_get_extra_info(cli.s, "alpn", buf, sizeof buf), 8);
        CU_ASSERT_STRING_EQUAL(buf, "http/1.1");
    } else {
        CU_FAIL("ALPN handshake failed");
    }
    /* no ALPN offered: none negotiated */
    CU_ASSERT_EQUAL_FATAL(pair_new(loop, &cli2, &srv2), 0);
    if (handshake(loop, &cli2, plain_c, "localhost", &srv2, stls) && cli2.hs_status == 0) {
        CU_ASSERT_PTR_NULL(rill_tls_alpn(cli2.s));
        CU_ASSERT_EQUAL(rill_get_extra_info(cli2.s, "alpn", buf, sizeof buf), -ENOENT);
        CU_ASSERT_EQUAL(rill_get_extra_info(srv2.s, "alpn", buf, sizeof buf), -ENOENT);
    } else {
        CU_FAIL("handshake without ALPN failed");
    }
    drop(&cli);
    drop(&srv);
    drop(&cli2);
    drop(&srv2);
    test_loop_finish(loop);
    rill_tls_free(ctls);
    rill_tls_free(plain_c);
    rill_tls_free(stls);
}

/* ------------------------------------------------- client certificates */

static void test_client_cert_required(void)
{
    const test_certs *c = test_certs_or_skip();
    rill_loop *loop;
    rill_tls *stls, *request, *anon, *withcert;
    rill_tls_opts o;
    peer cli, srv;
    reader r;
    char buf[1024];

    if (c == NULL)
        return;
    loop = test_loop_new(0);
    stls = server_ctx(c->server, c->key, 2, c->ca, NULL, 0);
    request = server_ctx(c->server, c->key, 1, c->ca, NULL, 0);
    anon = client_ctx(c, 0, NULL);
    memset(&o, 0, sizeof o);
    o.ca_file = c->ca;
    o.cert_file = c->client;
    o.key_file = c->key;
    withcert = rill_tls_client_new(&o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(withcert);

    /* no certificate: the server refuses (TLS 1.3 clients may finish first and learn it on read) */
    CU_ASSERT_EQUAL_FATAL(pair_new(loop, &cli, &srv), 0);
    CU_ASSERT_FATAL(handshake(loop, &cli, anon, "localhost", &srv, stls));
    CU_ASSERT_EQUAL(srv.hs_status, RILL_ECERT);
    CU_ASSERT_PTR_NOT_NULL(strstr(srv.reason, "no certificate"));
    if (cli.hs_status == 0) {
        memset(&r, 0, sizeof r);
        drop(&srv);
        CU_ASSERT_EQUAL(rill_read(cli.s, -1, read_all_cb, &r), 0);
        test_run_until(loop, &r.done, WAIT_MS);
        CU_ASSERT(r.status < 0);
    } else {
        CU_ASSERT(cli.hs_status < 0);
    }
    drop(&cli);
    drop(&srv);

    /* a certificate from the server's CA: accepted, and visible to the server */
    CU_ASSERT_EQUAL_FATAL(pair_new(loop, &cli, &srv), 0);
    CU_ASSERT_FATAL(handshake(loop, &cli, withcert, "localhost", &srv, stls));
    CU_ASSERT_EQUAL(cli.hs_status, 0);
    CU_ASSERT_EQUAL(srv.hs_status, 0);
    if (srv.hs_status == 0) {
        CU_ASSERT(rill_get_extra_info(srv.s, "peercert", buf, sizeof buf) > 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "rill test client"));
    }
    drop(&cli);
    drop(&srv);

    /* verify = 1 only asks: a client without a certificate gets in */
    CU_ASSERT_EQUAL_FATAL(pair_new(loop, &cli, &srv), 0);
    CU_ASSERT_FATAL(handshake(loop, &cli, anon, "localhost", &srv, request));
    CU_ASSERT_EQUAL(cli.hs_status, 0);
    CU_ASSERT_EQUAL(srv.hs_status, 0);
    if (srv.hs_status == 0)
        CU_ASSERT_EQUAL(rill_get_extra_info(srv.s, "peercert", buf, sizeof buf), -ENOENT);
    drop(&cli);
    drop(&srv);
    test_loop_finish(loop);
    rill_tls_free(stls);
    rill_tls_free(request);
    rill_tls_free(anon);
    rill_tls_free(withcert);
}

/* ------------------------------------------------------------ versions */

static void version_case(const test_certs *c, int server_min, int client_max12, int *cs, int *ss, char *cipher,
                         size_t len)
{
    rill_loop *loop = test_loop_new(0);
    rill_tls *ctls = client_ctx(c, 0, NULL);
    rill_tls *stls = server_ctx(c->server, c->key, 0, NULL, NULL, server_min);
    peer cli, srv;

    if (client_max12)
        CU_ASSERT_EQUAL(wolfSSL_CTX_set_max_proto_version(rill_tls_native(ctls), TLS1_2_VERSION), WOLFSSL_SUCCESS);
    *cs = *ss = 1;
    cipher[0] = '\0';
    if (pair_new(loop, &cli, &srv) == 0 && handshake(loop, &cli, ctls, "localhost", &srv, stls)) {
        *cs = cli.hs_status;
        *ss = srv.hs_status;
        if (cli.hs_status == 0)
            rill_get_extra_info(cli.s, "cipher", cipher, len);
    }
    drop(&cli);
    drop(&srv);
    test_loop_finish(loop);
    rill_tls_free(ctls);
    rill_tls_free(stls);
}

static void test_versions(void)
{
    const test_certs *c = test_certs_or_skip();
    char cipher[256];
    int cs, ss;

    if (c == NULL)
        return;
    version_case(c, 0, 0, &cs, &ss, cipher, sizeof cipher);   /* default: TLS 1.3 preferred */
    CU_ASSERT_EQUAL(cs, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(cipher, "TLSv1.3"));
    version_case(c, RILL_TLS_1_3, 0, &cs, &ss, cipher, sizeof cipher);
    CU_ASSERT_EQUAL(cs, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(cipher, "TLSv1.3"));
    version_case(c, RILL_TLS_1_2, 1, &cs, &ss, cipher, sizeof cipher);
    CU_ASSERT_EQUAL(cs, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(cipher, "TLSv1.2"));
    /* a TLS 1.3-only server and a client capped at 1.2 have nothing in common */
    version_case(c, RILL_TLS_1_3, 1, &cs, &ss, cipher, sizeof cipher);
    CU_ASSERT(cs < 0 && cs != 1);
    CU_ASSERT(ss < 0 && ss != 1);
}

/* ---------------------------------------------------------- extra info */

/* "NAME VERSION BITS": the secret bits the cipher's name promises. */
static int cipher_bits_match(const char *text)
{
    const char *sp = strrchr(text, ' ');
    int bits = sp != NULL ? atoi(sp + 1) : 0;
    int want = strstr(text, "AES_128") != NULL || strstr(text, "AES128") != NULL ? 128
             : strstr(text, "AES_256") != NULL || strstr(text, "AES256") != NULL
               || strstr(text, "CHACHA20") != NULL ? 256 : -1;
    if (getenv("RILL_TEST_VERBOSE") != NULL)
        fprintf(stderr, "[cipher %s]\n", text);
    return want > 0 && bits == want;
}

static void test_extra_info(void)
{
    const test_certs *c = test_certs_or_skip();
    tls_pair tp;
    peer p1, p2;
    char buf[2048], tiny[4];
    const unsigned char *der;
    size_t len;

    if (c == NULL)
        return;
    if (tls_pair_open(&tp, c) == 0) {
        CU_ASSERT(rill_get_extra_info(tp.cli.s, "peercert", buf, sizeof buf) > 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "CN=localhost"));
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "rill test CA"));
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "notAfter="));
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "DNS:localhost"));
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "IP:127.0.0.1"));
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "IP:::1"));
        CU_ASSERT(rill_get_extra_info(tp.cli.s, "cipher", buf, sizeof buf) > 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "TLSv1."));
        CU_ASSERT(rill_get_extra_info(tp.srv.s, "cipher", buf, sizeof buf) > 0);
        CU_ASSERT(cipher_bits_match(buf));
        CU_ASSERT(rill_get_extra_info(tp.cli.s, "cipher", buf, sizeof buf) > 0);
        CU_ASSERT(cipher_bits_match(buf));
        CU_ASSERT_EQUAL(rill_get_extra_info(tp.cli.s, "compression", buf, sizeof buf), -ENOENT);
        CU_ASSERT_EQUAL(rill_get_extra_info(tp.cli.s, "cipher", tiny, sizeof tiny), RILL_ENOBUFS);
        CU_ASSERT_STRING_EQUAL(tiny, "");
        /* the server asked for no client certificate */
        CU_ASSERT_EQUAL(rill_get_extra_info(tp.srv.s, "peercert", buf, sizeof buf), -ENOENT);
        CU_ASSERT_EQUAL(rill_tls_peer_cert_der(tp.srv.s, &der, &len), -ENOENT);
        CU_ASSERT_EQUAL(rill_tls_peer_cert_der(tp.cli.s, &der, &len), 0);
        CU_ASSERT(len > 100 && der[0] == 0x30);   /* a DER SEQUENCE */
        CU_ASSERT_PTR_NOT_NULL(rill_tls_object(tp.cli.s));
        CU_ASSERT(rill_get_extra_info(tp.cli.s, "peername", buf, sizeof buf) >= 0);
    }
    /* a plain stream has none of it */
    CU_ASSERT_EQUAL_FATAL(pair_new(tp.loop, &p1, &p2), 0);
    CU_ASSERT_EQUAL(rill_get_extra_info(p1.s, "peercert", buf, sizeof buf), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_get_extra_info(p1.s, "cipher", buf, sizeof buf), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_get_extra_info(p1.s, "compression", buf, sizeof buf), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_get_extra_info(p1.s, "alpn", buf, sizeof buf), RILL_EMODE);
    CU_ASSERT_EQUAL(rill_tls_peer_cert_der(p1.s, &der, &len), RILL_EMODE);
    CU_ASSERT_PTR_NULL(rill_tls_object(p1.s));
    CU_ASSERT_PTR_NULL(rill_tls_alpn(p1.s));
    CU_ASSERT_EQUAL(rill_can_write_eof(p1.s), 1);
    drop(&p1);
    drop(&p2);
    tls_pair_finish(&tp);
}

/* ----------------------------------------------------- context lifetime */

static void line_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    reader *r = ud;
    (void)s;
    r->status = status;
    r->len = len;
    r->at_eof = data != NULL && len == 5 && memcmp(data, "ping\n", 5) == 0;
    r->done = 1;
}

static void test_ctx_outlives_free(void)
{
    const test_certs *c = test_certs_or_skip();
    rill_loop *loop;
    rill_tls *ctls, *stls;
    peer cli, srv;
    reader r;

    if (c == NULL)
        return;
    loop = test_loop_new(0);
    ctls = client_ctx(c, 0, NULL);
    stls = server_ctx(c->server, c->key, 0, NULL, NULL, 0);
    CU_ASSERT_EQUAL_FATAL(pair_new(loop, &cli, &srv), 0);
    CU_ASSERT_EQUAL(rill__tls_start(cli.s, ctls, 0, "localhost", WAIT_MS, on_hs, &cli), 0);
    CU_ASSERT_EQUAL(rill__tls_start(srv.s, stls, 1, NULL, WAIT_MS, on_hs, &srv), 0);
    /* the user's references go; the streams' keep the contexts alive */
    rill_tls_free(ctls);
    rill_tls_free(stls);
    /* written during the handshake: buffered, sent once it is done */
    CU_ASSERT_EQUAL(rill_write(cli.s, "ping\n", 5, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(cli.s), 5);
    CU_ASSERT(wait_both(loop, &cli.hs_done, &srv.hs_done, WAIT_MS));
    CU_ASSERT_EQUAL(cli.hs_status, 0);
    CU_ASSERT_EQUAL(srv.hs_status, 0);
    memset(&r, 0, sizeof r);
    if (cli.hs_status == 0 && srv.hs_status == 0) {
        CU_ASSERT_EQUAL(rill_readline(srv.s, line_cb, &r), 0);
        test_run_until(loop, &r.done, WAIT_MS);
        CU_ASSERT_EQUAL(r.status, 0);
        CU_ASSERT_EQUAL(r.at_eof, 1);
    }
    drop(&cli);
    drop(&srv);
    test_loop_finish(loop);
}

/* ------------------------------------------------------------- interop */

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Starts openssl with argv; stdin/stdout become pipes when asked. */
static pid_t spawn_openssl(char *const argv[], int *in_w, int *out_r)
{
    int pin[2] = { -1, -1 }, pout[2] = { -1, -1 };
    pid_t pid;

    if ((in_w != NULL && pipe(pin) < 0) || (out_r != NULL && pipe(pout) < 0))
        return -1;
    pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(in_w != NULL ? pin[0] : null, 0);
        dup2(out_r != NULL ? pout[1] : null, 1);
        dup2(null, 2);
        execvp("openssl", argv);
        _exit(127);
    }
    if (in_w != NULL) {
        close(pin[0]);
        *in_w = pin[1];
    }
    if (out_r != NULL) {
        close(pout[1]);
        *out_r = pout[0];
    }
    return pid;
}

static void reap(pid_t pid)
{
    int st;
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
}

static int connect_retry(int port, int ms)
{
    uint64_t end = test_now_ms() + (uint64_t)ms;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    while (test_now_ms() < end) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            return fd;
        close(fd);
        usleep(20000);
    }
    return -1;
}

typedef struct line_reader {
    int done, status;
    char text[128];
} line_reader;

static void interop_line(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    line_reader *l = ud;
    (void)s;
    l->status = status;
    keep(l->text, data, len);
    l->done = 1;
}

static void test_interop_s_server(void)
{
    const test_certs *c;
    char portarg[32];
    rill_loop *loop;
    rill_tls *ctls;
    peer cli;
    line_reader l;
    pid_t pid;
    int port, fd;

    if (!test_have_openssl()) {
        CU_PASS("skipped: the openssl command is not installed");
        return;
    }
    if ((c = test_certs_or_skip()) == NULL)
        return;
    port = free_port();
    CU_ASSERT_FATAL(port > 0);
    snprintf(portarg, sizeof portarg, "127.0.0.1:%d", port);
    {
        char *argv[] = { "openssl", "s_server", "-accept", portarg, "-cert", (char *)c->server,
                         "-key", (char *)c->key, "-naccept", "1", "-rev", "-quiet", NULL };
        pid = spawn_openssl(argv, NULL, NULL);
    }
    CU_ASSERT_FATAL(pid > 0);
    fd = connect_retry(port, 5000);
    CU_ASSERT(fd >= 0);
    if (fd < 0) {
        reap(pid);
        return;
    }
    loop = test_loop_new(0);
    ctls = client_ctx(c, 0, NULL);
    memset(&l, 0, sizeof l);
    if (adopt(loop, fd, &cli) == 0) {
        CU_ASSERT_EQUAL(rill__tls_start(cli.s, ctls, 0, "localhost", WAIT_MS, on_hs, &cli), 0);
        test_run_until(loop, &cli.hs_done, WAIT_MS);
        CU_ASSERT_EQUAL(cli.hs_status, 0);
        if (cli.hs_status == 0) {
            CU_ASSERT_EQUAL(rill_write(cli.s, "hello rill\n", 11, NULL, NULL), 0);
            CU_ASSERT_EQUAL(rill_readline(cli.s, interop_line, &l), 0);
            test_run_until(loop, &l.done, WAIT_MS);
            CU_ASSERT_EQUAL(l.status, 0);
            CU_ASSERT_STRING_EQUAL(l.text, "llir olleh\n");
        }
    } else {
        close(fd);
    }
    drop(&cli);
    test_loop_finish(loop);
    rill_tls_free(ctls);
    reap(pid);
}

typedef struct pipe_text {
    char buf[4096];
    size_t len;
    int found, eof;
} pipe_text;

typedef struct child_watch {
    int fd;
    pipe_text t;
    rill_watch *w;
} child_watch;

static void on_child_readable(rill_watch *w, int revents, void *ud)
{
    child_watch *cw = ud;
    ssize_t n;
    (void)revents;
    n = read(cw->fd, cw->t.buf + cw->t.len, sizeof cw->t.buf - 1 - cw->t.len);
    if (n > 0) {
        cw->t.len += (size_t)n;
        cw->t.buf[cw->t.len] = '\0';
        if (strstr(cw->t.buf, "pong ping\n") != NULL)
            cw->t.found = 1;
    }
    if (n == 0 || cw->t.len + 1 >= sizeof cw->t.buf) {
        cw->t.eof = 1;
        rill_watch_stop(w);
        cw->w = NULL;
    }
}

static void srv_ping(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    line_reader *l = ud;
    char reply[160];
    l->status = status;
    keep(l->text, data, len);
    l->done = 1;
    if (status == 0) {
        snprintf(reply, sizeof reply, "pong %s", l->text);
        rill_write(s, reply, strlen(reply), NULL, NULL);
    }
}

static void test_interop_s_client(void)
{
    const test_certs *c;
    char portarg[32];
    rill_loop *loop;
    rill_tls *stls;
    peer srv;
    line_reader l;
    child_watch cw;
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    struct pollfd pfd;
    pid_t pid;
    int lfd, fd, in_w = -1, out_r = -1, one = 1;

    if (!test_have_openssl()) {
        CU_PASS("skipped: the openssl command is not installed");
        return;
    }
    if ((c = test_certs_or_skip()) == NULL)
        return;
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(lfd >= 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 4) == 0);
    CU_ASSERT_FATAL(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
    snprintf(portarg, sizeof portarg, "127.0.0.1:%d", ntohs(a.sin_port));
    {
        char *argv[] = { "openssl", "s_client", "-connect", portarg, "-CAfile", (char *)c->ca,
                         "-verify_return_error", "-servername", "localhost", "-quiet", NULL };
        pid = spawn_openssl(argv, &in_w, &out_r);
    }
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL(write(in_w, "ping\n", 5), 5);
    pfd.fd = lfd;
    pfd.events = POLLIN;
    fd = poll(&pfd, 1, 10000) == 1 ? accept(lfd, NULL, NULL) : -1;
    close(lfd);
    CU_ASSERT(fd >= 0);
    if (fd < 0) {
        reap(pid);
        close(in_w);
        close(out_r);
        return;
    }
    loop = test_loop_new(0);
    stls = server_ctx(c->server, c->key, 0, NULL, NULL, 0);
    memset(&l, 0, sizeof l);
    memset(&cw, 0, sizeof cw);
    cw.fd = out_r;
    cw.w = rill_watch_fd(loop, out_r, RILL_READABLE, on_child_readable, &cw);
    CU_ASSERT_PTR_NOT_NULL(cw.w);
    if (adopt(loop, fd, &srv) == 0) {
        CU_ASSERT_EQUAL(rill__tls_start(srv.s, stls, 1, NULL, WAIT_MS, on_hs, &srv), 0);
        test_run_until(loop, &srv.hs_done, WAIT_MS);
        CU_ASSERT_EQUAL(srv.hs_status, 0);
        if (srv.hs_status == 0) {
            CU_ASSERT_EQUAL(rill_readline(srv.s, srv_ping, &l), 0);
            test_run_until(loop, &l.done, WAIT_MS);
            CU_ASSERT_STRING_EQUAL(l.text, "ping\n");
            test_run_until(loop, &cw.t.found, WAIT_MS);
            CU_ASSERT_EQUAL(cw.t.found, 1);
            /* close_notify: s_client sees a clean end and exits */
            CU_ASSERT_EQUAL(rill_close(srv.s, NULL, NULL), 0);
            srv.s = NULL;
            test_run_until(loop, &cw.t.eof, WAIT_MS);
            CU_ASSERT_EQUAL(cw.t.eof, 1);
        }
    } else {
        close(fd);
    }
    drop(&srv);
    if (cw.w != NULL)
        rill_watch_stop(cw.w);
    test_loop_finish(loop);
    rill_tls_free(stls);
    close(in_w);
    close(out_r);
    reap(pid);
}

int test_tls_register(void)
{
    static const test_case cases[] = {
        { "ctx_errors", test_ctx_errors },
        { "echo_read_ops", test_echo_read_ops },
        { "bulk_8mib", test_bulk_8mib },
        { "pending_bytes", test_pending_bytes },
        { "pending_via_stream", test_pending_via_stream },
        { "verify_failures", test_verify_failures },
        { "connect_errbuf", test_connect_errbuf },
        { "verify_success_cases", test_verify_success_cases },
        { "handshake_timeout", test_handshake_timeout },
        { "plaintext_peer", test_plaintext_peer },
        { "abort_during_handshake", test_abort_during_handshake },
        { "close_notify_from_server", test_close_notify_from_server },
        { "truncation", test_truncation },
        { "reset_after_data", test_reset_after_data },
        { "write_eof_mode", test_write_eof_mode },
        { "alpn", test_alpn },
        { "client_cert_required", test_client_cert_required },
        { "versions", test_versions },
        { "extra_info", test_extra_info },
        { "ctx_outlives_free", test_ctx_outlives_free },
        { "interop_s_server", test_interop_s_server },
        { "interop_s_client", test_interop_s_client },
        { NULL, NULL }
    };
    return test_add_suite("tls", cases);
}
