/* Faults: allocation failures walked over every allocation of a whole echo
   scenario (plain and TLS), and system call faults injected through the
   transports' test hooks (lib/core/syshooks.h): short writes, EINTR, EAGAIN storms,
   ECONNRESET in the middle of a read, a write and a TLS handshake; a peer that
   half-closes, a peer that closes without reading, and EMFILE on connect.

   Every run checks the callback contract (exactly once, never from inside the
   starting call), that the loop frees (rill_loop_free() == 0), that no rill
   allocation is left (rill__alloc_live) and that no descriptor is left. */
#include "support/testutil.h"
#include "support/proc.h"
#include "support/streams.h"
#include "support/certs.h"
#include "stream.h"
#include "syshooks.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

/* The byte at offset i of every test stream: a hash of i, so a lost, repeated
   or reordered byte shows. */
static unsigned char pat(size_t i)
{
    uint32_t x = (uint32_t)i * 2654435761u;
    x ^= x >> 15;
    x *= 2246822519u;
    x ^= x >> 13;
    return (unsigned char)x;
}

static uint32_t rng_next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Runs the loop until nothing is alive or ms pass; 1 if it became idle. */
static int run_idle(rill_loop *loop, int ms)
{
    uint64_t end = test_now_ms() + (uint64_t)ms;
    while (rill_loop_alive(loop)) {
        if (test_now_ms() >= end)
            return 0;
        if (rill_loop_run_once(loop, 20) < 0)
            return 0;
    }
    return 1;
}

/* A connected TCP pair over loopback: *a is the accepted end, *b the connecting
   one; bufsize > 0 fixes both ends' kernel buffers (no autotuning), so a peer
   that does not read stops a writer soon. */
static int tcp_pair_buf(int *a, int *b, int bufsize)
{
    test_tcp_bufs bufs;
    bufs.accepted_snd = bufs.accepted_rcv = bufs.connecting_snd = bufs.connecting_rcv = bufsize;
    return test_tcp_pair(a, b, &bufs);
}

/* Reads everything up to want bytes, checking each byte against pat(). */
typedef struct sink {
    size_t got, want;
    int bad, done, status, reads;
} sink;

static void sink_read(rill_stream *s, int status, const char *d, size_t len, void *ud)
{
    sink *k = ud;
    size_t i;
    k->reads++;
    if (status < 0 || len == 0) {
        k->status = status;
        k->done = 1;
        return;
    }
    for (i = 0; i < len && !k->bad; i++)
        if ((unsigned char)d[i] != pat(k->got + i))
            k->bad = 1;
    k->got += len;
    if (k->got >= k->want) {
        k->done = 1;
        return;
    }
    if ((k->status = rill_read(s, 65536, sink_read, k)) < 0)
        k->done = 1;
}

/* Writes want bytes of pat() in writes of random sizes, each waited for (write + drain). */
typedef struct source {
    size_t sent, want;
    uint32_t rng;
    int done, status, drains;
    char buf[65536];
} source;

static void source_next(rill_stream *s, int status, void *ud)
{
    source *o = ud;
    size_t n, i;
    int rc;
    o->drains++;
    if (status < 0) {
        o->status = status;
        o->done = 1;
        return;
    }
    if (o->sent >= o->want) {
        o->done = 1;
        return;
    }
    n = 1 + rng_next(&o->rng) % sizeof o->buf;
    if (n > o->want - o->sent)
        n = o->want - o->sent;
    for (i = 0; i < n; i++)
        o->buf[i] = (char)pat(o->sent + i);
    o->sent += n;
    if ((rc = rill_write(s, o->buf, n, source_next, o)) < 0) {
        o->status = rc;
        o->done = 1;
    }
}

typedef struct done_rec {
    int n, status;
} done_rec;

static void done_cb(rill_stream *s, int status, void *ud)
{
    done_rec *d = ud;
    (void)s;
    d->n++;
    d->status = status;
}

typedef struct read_rec {
    int n, status;
    size_t len;
    char data[256];
} read_rec;

static void read_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    read_rec *r = ud;
    (void)s;
    r->n++;
    r->status = status;
    r->len = len;
    if (data != NULL)
        memcpy(r->data, data, len < sizeof r->data ? len : sizeof r->data);
}

/* Reads from a raw descriptor until n bytes or EOF/error or ms pass; returns bytes read. */
static size_t raw_read_all(int fd, char *buf, size_t n, int ms)
{
    uint64_t end = test_now_ms() + (uint64_t)ms;
    size_t got = 0;
    while (got < n && test_now_ms() < end) {
        struct pollfd p;
        ssize_t k;
        p.fd = fd;
        p.events = POLLIN;
        if (poll(&p, 1, 20) <= 0)
            continue;
        k = read(fd, buf + got, n - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got;
}

/* ========================================================= allocation walk */

/* The scenario: a loop, a server on 127.0.0.1:0 whose on_client echoes one line
   (readline -> write -> close), a client that connects (numeric host), writes a
   line and waits for it to drain, reads the echo and closes; then the server is
   closed and the loop run until idle. With allocation k failing, every failure
   must show as RILL_ENOMEM (a return, a status, errno) or a connection that
   fails or ends early; never a crash, a hang, a callback twice or missing, or
   anything left allocated. */
typedef struct walk {
    rill_loop *loop;
    rill_server *srv;
    rill_tls *stls, *ctls;
    int variant;          /* 0: a connect timeout; 1: read and close timeouts; 2: close timeouts */
    int bad, bad_status;  /* the first broken rule: its line, and the status seen */
    int enomem;           /* RILL_ENOMEM surfaced */
    int started, want_start;
    int connected, want_connect;
    int wrote, want_write;
    int echoed, want_echo, echo_ok;
    int cclosed, want_cclose;
    int sclosed, want_sclose, server_closing;
    int srv_clients, srv_reads, srv_reads_done, srv_errors, srv_closes, srv_closes_done;
} walk;

#define WALK_BAD(w, st) do { if (!(w)->bad) { (w)->bad = __LINE__; (w)->bad_status = (st); } } while (0)

static const char walk_line[] = "hello, rill\n";

/* Statuses a failed allocation may legitimately cause somewhere in the scenario. */
static void walk_status(walk *w, int st, int line)
{
    if (st == RILL_ENOMEM)
        w->enomem = 1;
    else if (st != 0 && st != RILL_ECANCELED && st != -ECONNRESET && st != -EPIPE &&
             st != RILL_ETLS && st != RILL_ECLOSED && !w->bad) {
        w->bad = line;
        w->bad_status = st;
    }
}

static void walk_srv_closed(rill_server *srv, int status, void *ud)
{
    walk *w = ud;
    (void)srv;
    if (test_sync_check())
        WALK_BAD(w, status);
    w->sclosed++;
    walk_status(w, status, __LINE__);
}

static void walk_close_server(walk *w)
{
    int rc;
    if (w->srv == NULL || w->server_closing)
        return;
    w->server_closing = 1;
    rc = TEST_CALL(rill_server_close(w->srv, walk_srv_closed, w));
    if (rc == 0) {
        w->want_sclose = 1;
        return;
    }
    walk_status(w, rc, __LINE__);
    /* Without a callback close needs no memory: it must work. */
    if (rill_server_close(w->srv, NULL, NULL) != 0)
        WALK_BAD(w, rc);
}

static void walk_client_closed(rill_stream *s, int status, void *ud)
{
    walk *w = ud;
    (void)s;
    if (test_sync_check())
        WALK_BAD(w, status);
    w->cclosed++;
    walk_status(w, status, __LINE__);
    walk_close_server(w);
}

static void walk_close_client(walk *w, rill_stream *s)
{
    int rc;
    rc = TEST_CALL(rill_close(s, walk_client_closed, w));
    if (rc == 0) {
        w->want_cclose = 1;
        return;
    }
    walk_status(w, rc, __LINE__);
    if (rill_close(s, NULL, NULL) != 0)
        WALK_BAD(w, rc);
    walk_close_server(w);
}

static void walk_echo(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    walk *w = ud;
    if (test_sync_check())
        WALK_BAD(w, status);
    w->echoed++;
    walk_status(w, status, __LINE__);
    if (status == 0 && len == sizeof walk_line - 1 && memcmp(data, walk_line, len) == 0)
        w->echo_ok = 1;
    walk_close_client(w, s);
}

static void walk_written(rill_stream *s, int status, void *ud)
{
    walk *w = ud;
    int rc;
    if (test_sync_check())
        WALK_BAD(w, status);
    w->wrote++;
    walk_status(w, status, __LINE__);
    if (status < 0) {
        walk_close_client(w, s);
        return;
    }
    if (w->variant == 1 && rill_set_read_timeout(s, 5000) != 0)
        WALK_BAD(w, 0);
    rc = TEST_CALL(rill_readline(s, walk_echo, w));
    if (rc == 0) {
        w->want_echo = 1;
        return;
    }
    walk_status(w, rc, __LINE__);
    walk_close_client(w, s);
}

static void walk_connected(rill_stream *s, int status, void *ud)
{
    walk *w = ud;
    int rc;
    if (test_sync_check())
        WALK_BAD(w, status);
    w->connected++;
    walk_status(w, status, __LINE__);
    if (status < 0) {
        if (s != NULL)
            WALK_BAD(w, status);
        walk_close_server(w);
        return;
    }
    if (w->variant > 0 && rill_set_close_timeout(s, 5000) != 0)
        WALK_BAD(w, 0);
    rc = TEST_CALL(rill_write(s, walk_line, sizeof walk_line - 1, walk_written, w));
    if (rc == 0) {
        w->want_write = 1;
        return;
    }
    walk_status(w, rc, __LINE__);
    walk_close_client(w, s);
}

static void walk_srv_stream_closed(rill_stream *s, int status, void *ud)
{
    walk *w = ud;
    (void)s;
    if (test_sync_check())
        WALK_BAD(w, status);
    w->srv_closes_done++;
    walk_status(w, status, __LINE__);
}

static void walk_srv_line(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    walk *w = ud;
    int rc;
    if (test_sync_check())
        WALK_BAD(w, status);
    w->srv_reads_done++;
    walk_status(w, status, __LINE__);
    if (status == 0 && len > 0 && (rc = rill_write(s, data, len, NULL, NULL)) < 0)
        walk_status(w, rc, __LINE__);
    rc = TEST_CALL(rill_close(s, walk_srv_stream_closed, w));
    if (rc == 0) {
        w->srv_closes++;
        return;
    }
    walk_status(w, rc, __LINE__);
    if (rill_close(s, NULL, NULL) != 0)
        WALK_BAD(w, 0);
}

static void walk_on_client(rill_server *srv, rill_stream *s, void *ud)
{
    walk *w = ud;
    int rc;
    (void)srv;
    if (test_sync_check())
        WALK_BAD(w, 0);
    w->srv_clients++;
    if (w->variant > 0 && rill_set_close_timeout(s, 5000) != 0)
        WALK_BAD(w, 0);
    if (w->variant == 1 && rill_set_read_timeout(s, 5000) != 0)
        WALK_BAD(w, 0);
    rc = TEST_CALL(rill_readline(s, walk_srv_line, w));
    if (rc == 0) {
        w->srv_reads++;
        return;
    }
    walk_status(w, rc, __LINE__);
    rill_close(s, NULL, NULL);
}

static void walk_srv_error(rill_server *srv, int status, const struct sockaddr *peer, void *ud)
{
    walk *w = ud;
    (void)srv; (void)peer;
    w->srv_errors++;
    walk_status(w, status, __LINE__);
}

static void walk_started(rill_server *srv, int status, void *ud)
{
    walk *w = ud;
    (void)srv;
    if (test_sync_check())
        WALK_BAD(w, status);
    w->started++;
    walk_status(w, status, __LINE__);
    if (status < 0)
        walk_close_server(w);
}

/* Runs the scenario once; 0 when every rule held, else the line of the first broken one. */
static int walk_run(walk *w, rill_tls *stls, rill_tls *ctls, int variant)
{
    rill_server_opts so;
    rill_connect_opts co;
    int rc, port, idle;

    memset(w, 0, sizeof *w);
    w->stls = stls;
    w->ctls = ctls;
    w->variant = variant;
    if ((w->loop = test_loop_try_new(RILL_BACKEND_AUTO)) == NULL) {
        if (errno != ENOMEM)
            WALK_BAD(w, -errno);
        w->enomem = 1;
        return w->bad;
    }
    memset(&so, 0, sizeof so);
    so.on_error = walk_srv_error;
    so.tls = stls;
    so.ssl_handshake_timeout_ms = 5000;
    so.shutdown_timeout_ms = 5000;
    if ((w->srv = rill_server_new(w->loop, "127.0.0.1", 0, &so, walk_on_client, w)) == NULL) {
        if (errno != ENOMEM)
            WALK_BAD(w, -errno);
        w->enomem = 1;
        goto finish;
    }
    rc = TEST_CALL(rill_server_start_serving(w->srv, walk_started, w));
    if (rc < 0) {
        walk_status(w, rc, __LINE__);
        walk_close_server(w);
        goto finish;
    }
    w->want_start = 1;
    /* A bind that failed is reported through the start callback (which closes). */
    if ((port = rill_server_port(w->srv)) <= 0)
        goto finish;
    memset(&co, 0, sizeof co);
    co.tls = ctls;
    co.timeout_ms = variant == 0 ? 5000 : 0;
    /* Sequential attempts arm no delay timer: the read or close timer is then the first timer. */
    co.happy_eyeballs_delay_ms = variant == 0 ? 0 : -1;
    co.ssl_handshake_timeout_ms = 5000;
    rc = TEST_CALL(rill_connect(w->loop, "127.0.0.1", port, &co, walk_connected, w, NULL));
    if (rc == 0) {
        w->want_connect = 1;
    } else {
        walk_status(w, rc, __LINE__);
        walk_close_server(w);
    }
finish:
    idle = run_idle(w->loop, 10000);
    if (!idle)
        WALK_BAD(w, 0);                      /* a hang */
    if (w->started != w->want_start || w->connected != w->want_connect || w->wrote != w->want_write ||
        w->echoed != w->want_echo || w->cclosed != w->want_cclose || w->sclosed != w->want_sclose ||
        w->srv_reads_done != w->srv_reads || w->srv_closes_done != w->srv_closes)
        WALK_BAD(w, 0);                      /* a callback missing or twice */
    if (!w->server_closing && w->srv != NULL)
        WALK_BAD(w, 0);
    if (idle && (rc = rill_loop_free(w->loop)) != 0)
        WALK_BAD(w, rc);
    return w->bad;
}

typedef struct walk_totals {
    unsigned long n, failed, enomem, echo_ok, other, unreached;
} walk_totals;

/* Counts the scenario's allocations, then fails each one in turn. */
static void walk_all(const char *name, rill_tls *stls, rill_tls *ctls, int variant, walk_totals *t)
{
    walk w;
    unsigned long n1, n2, k, made, live0;
    int fds0, fds, rc;

    memset(t, 0, sizeof *t);
    /* Twice without failure: the count must be stable, and nothing may stay allocated. */
    live0 = rill__alloc_live();
    fds0 = test_proc_fds(0);
    rill__alloc_fail_at(0);
    rc = walk_run(&w, stls, ctls, variant);
    n1 = rill__alloc_fail_at(0);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(w.echo_ok);
    rc = walk_run(&w, stls, ctls, variant);
    n2 = rill__alloc_fail_at(0);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(w.echo_ok);
    TEST_CHECK_LIVE(live0);
    CU_ASSERT_EQUAL(test_proc_fds(0), fds0);
    CU_ASSERT_TRUE(n1 > 10);
    /* A few more for allocations whose number varies with timing (a write sent at once or buffered). */
    t->n = n2 > n1 ? n2 : n1;
    for (k = 1; k <= t->n + 4; k++) {
        rill__alloc_fail_at(k);
        rc = walk_run(&w, stls, ctls, variant);
        made = rill__alloc_fail_at(0);
        if (made < k)
            t->unreached++;
        else if (w.enomem)
            t->enomem++;
        else if (w.echo_ok) {
            t->echo_ok++;
            if (getenv("RILL_WALK_VERBOSE") != NULL)
                fprintf(stderr, "\n%s walk: allocation %lu absorbed (the echo worked)\n", name, k);
        }
        else
            t->other++;
        fds = test_proc_fds(0);
        if (rc != 0 || rill__alloc_live() != live0 || fds != fds0) {
            t->failed++;
            fprintf(stderr, "\n%s walk: allocation %lu of %lu: rule at line %d broken (status %s), "
                    "%ld allocations left, %d descriptors left\n", name, k, t->n, rc,
                    rill_err_name(w.bad_status), (long)(rill__alloc_live() - live0), fds - fds0);
            live0 = rill__alloc_live();   /* one report per failure, not a cascade */
            fds0 = fds;
        }
    }
    CU_ASSERT_EQUAL(t->failed, 0);
    /* Past the end nothing fails and the echo works. */
    CU_ASSERT_TRUE(t->unreached >= 4);
    CU_ASSERT_TRUE(t->enomem > 0);
    /* A failure nobody heard of is a promise silently dropped (a timeout that will never fire). */
    CU_ASSERT_EQUAL(t->echo_ok, 0);
}

static void test_alloc_walk_plain(void)
{
    walk_totals t;
    walk_all("plain", NULL, NULL, 0, &t);
    printf("[%lu allocations: %lu ENOMEM, %lu absorbed, %lu ended the connection] ",
           t.n, t.enomem, t.echo_ok, t.other);
}

static void test_alloc_walk_timeouts(void)
{
    walk_totals t;
    int v;
    for (v = 1; v <= 2; v++) {
        walk_all(v == 1 ? "read+close timeouts" : "close timeouts", NULL, NULL, v, &t);
        printf("[%lu allocations: %lu ENOMEM, %lu absorbed, %lu ended the connection] ",
               t.n, t.enomem, t.echo_ok, t.other);
    }
}

static rill_tls *tls_pair(rill_tls **client)
{
    const test_certs *c = test_certs_or_skip();
    rill_tls_opts o;
    rill_tls *srv;

    *client = NULL;
    if (c == NULL)
        return NULL;
    memset(&o, 0, sizeof o);
    o.cert_file = c->server;
    o.key_file = c->key;
    srv = rill_tls_server_new(&o);
    CU_ASSERT_PTR_NOT_NULL(srv);
    memset(&o, 0, sizeof o);
    o.ca_file = c->ca;
    *client = rill_tls_client_new(&o);
    CU_ASSERT_PTR_NOT_NULL(*client);
    if (srv == NULL || *client == NULL) {
        rill_tls_free(srv);
        rill_tls_free(*client);
        *client = NULL;
        return NULL;
    }
    return srv;
}

static void test_alloc_walk_tls(void)
{
    walk_totals t;
    rill_tls *ctls, *stls = tls_pair(&ctls);
    if (stls == NULL)
        return;
    walk_all("TLS", stls, ctls, 0, &t);
    rill_tls_free(stls);
    rill_tls_free(ctls);
    printf("[%lu allocations: %lu ENOMEM, %lu absorbed, %lu ended the connection] ",
           t.n, t.enomem, t.echo_ok, t.other);
}

/* ============================================================ system hooks */

/* Faults apply to the descriptor fd, or to every socket whose local port is
   port (a server's accepted sockets); everything else gets the real call. */
static struct faults {
    int fd;
    int port;
    size_t short_write;          /* writes move at most this many bytes (0: off) */
    size_t short_after;          /* > 0: past this many bytes, short writes of 1..997 bytes */
    size_t written;
    uint32_t rng;
    int eintr;                   /* every other call fails with EINTR */
    long eagain_rd, eagain_wr;   /* the next n reads / writes fail with EAGAIN */
    int reset_rd, reset_wr;      /* the next read / write fails with ECONNRESET */
    unsigned long rd_calls, wr_calls, eintrs, eagains, resets, toggle;
} F;

static int targeted(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (fd == F.fd)
        return 1;
    if (F.port <= 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port) == F.port;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == F.port;
    return 0;
}

/* 1 with errno set when the call must fail now. */
static int inject(int is_read)
{
    long *storm = is_read ? &F.eagain_rd : &F.eagain_wr;
    int *reset = is_read ? &F.reset_rd : &F.reset_wr;
    if (is_read)
        F.rd_calls++;
    else
        F.wr_calls++;
    if (*reset) {
        *reset = 0;
        F.resets++;
        errno = ECONNRESET;
        return 1;
    }
    if (*storm > 0) {
        (*storm)--;
        F.eagains++;
        errno = EAGAIN;
        return 1;
    }
    if (F.eintr && (F.toggle++ & 1) == 0) {
        F.eintrs++;
        errno = EINTR;
        return 1;
    }
    return 0;
}

static size_t short_limit(void)
{
    if (F.short_after > 0 && F.written >= F.short_after)
        return 1 + rng_next(&F.rng) % 997;
    return F.short_write;
}

static ssize_t count_written(ssize_t n)
{
    if (n > 0)
        F.written += (size_t)n;
    return n;
}

static ssize_t h_read(int fd, void *buf, size_t len)
{
    if (targeted(fd) && inject(1))
        return -1;
    return read(fd, buf, len);
}

static ssize_t h_recv(int fd, void *buf, size_t len, int flags)
{
    if (targeted(fd) && inject(1))
        return -1;
    return recv(fd, buf, len, flags);
}

static ssize_t h_send(int fd, const void *buf, size_t len, int flags)
{
    if (!targeted(fd))
        return send(fd, buf, len, flags);
    if (inject(0))
        return -1;
    if (F.short_write > 0) {
        size_t lim = short_limit();
        if (len > lim)
            len = lim;
    }
    return count_written(send(fd, buf, len, flags));
}

/* A short write keeps only the first bytes of the first non-empty piece. */
static ssize_t h_sendmsg(int fd, const struct msghdr *m, int flags)
{
    struct msghdr one;
    struct iovec iov;
    size_t i;

    if (!targeted(fd))
        return sendmsg(fd, m, flags);
    if (inject(0))
        return -1;
    if (F.short_write == 0)
        return sendmsg(fd, m, flags);
    for (i = 0; i < (size_t)m->msg_iovlen && m->msg_iov[i].iov_len == 0; i++)
        ;
    if (i == (size_t)m->msg_iovlen)
        return sendmsg(fd, m, flags);
    iov.iov_base = m->msg_iov[i].iov_base;
    iov.iov_len = short_limit();
    if (iov.iov_len > m->msg_iov[i].iov_len)
        iov.iov_len = m->msg_iov[i].iov_len;
    one = *m;
    one.msg_iov = &iov;
    one.msg_iovlen = 1;
    return count_written(sendmsg(fd, &one, flags));
}

static ssize_t h_writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (!targeted(fd))
        return writev(fd, iov, iovcnt);
    if (inject(0))
        return -1;
    if (F.short_write > 0 && iovcnt > 0)
        return write(fd, iov[0].iov_base, iov[0].iov_len < F.short_write ? iov[0].iov_len : F.short_write);
    return writev(fd, iov, iovcnt);
}

static const rill__sys_hooks hooks = {
    .read = h_read, .recv = h_recv, .sendmsg = h_sendmsg, .send = h_send, .writev = h_writev
};

static void faults_on(void)
{
    memset(&F, 0, sizeof F);
    F.fd = -1;
    rill__sys_hooks_set(&hooks);
}

static void faults_off(void)
{
    rill__sys_hooks_set(NULL);
    memset(&F, 0, sizeof F);
    F.fd = -1;
}

/* A loop and two adopted streams over a TCP pair: w writes, r reads. */
typedef struct pair {
    rill_loop *loop;
    rill_stream *w, *r;
    unsigned long live0;
    int fds0;
} pair;

/* unix_socket: 1 a Unix socket pair, 0 TCP, -1 TCP with small fixed buffers. */
static int pair_open_how(pair *p, int unix_socket)
{
    int a, b, sv[2];
    memset(p, 0, sizeof *p);
    p->live0 = rill__alloc_live();
    p->fds0 = test_proc_fds(0);
    p->loop = test_loop_new(0);
    if (unix_socket > 0) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
            return -1;
        a = sv[0];
        b = sv[1];
    } else if (tcp_pair_buf(&a, &b, unix_socket < 0 ? 32768 : 0) < 0) {
        return -1;
    }
    p->w = test_adopt_try(p->loop, a, NULL);
    p->r = test_adopt_try(p->loop, b, NULL);
    return p->w != NULL && p->r != NULL ? 0 : -1;
}

static int pair_open(pair *p) { return pair_open_how(p, 0); }

/* Closes what is open, frees the loop, checks nothing is left. */
static void pair_close(pair *p)
{
    if (p->w != NULL)
        rill_close(p->w, NULL, NULL);
    if (p->r != NULL)
        rill_close(p->r, NULL, NULL);
    test_loop_finish(p->loop);
    TEST_CHECK_LIVE(p->live0);
    CU_ASSERT_EQUAL(test_proc_fds(0), p->fds0);
}

/* --------------------------------------------------------- short writes */

#define MIB (1024u * 1024u)

static void test_short_writes(void)
{
    pair p;
    sink k;
    done_rec d;
    char *big = malloc(MIB);
    size_t i;
    uint64_t t0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    for (i = 0; i < MIB; i++)
        big[i] = (char)pat(i);
    /* A Unix socket: a byte per segment through TCP would take most of a minute. */
    CU_ASSERT_EQUAL_FATAL(pair_open_how(&p, 1), 0);
    memset(&k, 0, sizeof k);
    memset(&d, 0, sizeof d);
    k.want = MIB;
    faults_on();
    F.fd = rill_fileno(p.w);
    F.short_write = 1;                       /* every write moves one byte ... */
    /* ... for the first 64 KiB, then 1..997 bytes: a million loop iterations take
       over 10 s. RILL_FAULTS_FULL=1 sends the whole MiB a byte at a time. */
    F.short_after = getenv("RILL_FAULTS_FULL") != NULL ? 0 : 65536;
    F.rng = 99;
    t0 = test_now_ms();
    CU_ASSERT_EQUAL(rill_read(p.r, 65536, sink_read, &k), 0);
    CU_ASSERT_EQUAL(rill_write(p.w, big, MIB, done_cb, &d), 0);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(p.w), MIB - 1);   /* one byte went at once */
    test_run_until(p.loop, &k.done, 45000);
    test_run_until(p.loop, &d.n, 5000);
    CU_ASSERT_TRUE(k.done);
    CU_ASSERT_EQUAL(k.got, MIB);
    CU_ASSERT_FALSE(k.bad);                  /* complete and in order */
    CU_ASSERT_EQUAL(d.n, 1);
    CU_ASSERT_EQUAL(d.status, 0);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(p.w), 0);
    /* it really was short writes */
    CU_ASSERT_TRUE(F.wr_calls >= (F.short_after ? F.short_after + (MIB - F.short_after) / 500 : MIB));
    printf("[%lu short writes, %lu ms] ", F.wr_calls, (unsigned long)(test_now_ms() - t0));
    faults_off();
    pair_close(&p);
    free(big);
}

/* Short writes of every size through the TLS transport (send under wolfSSL):
   wolfSSL must offer the rest of a record again, never lose or repeat it. */
static void test_short_writes_tls(void)
{
    pair p;
    sink k;
    source o;
    rill_tls *ctls, *stls = tls_pair(&ctls);
    rill_stream *w = NULL, *r = NULL;
    int a, b;
    test_adopted ar;
    done_rec hs;
    rill_connect_opts co;

    if (stls == NULL)
        return;
    memset(&p, 0, sizeof p);
    p.live0 = rill__alloc_live();
    p.fds0 = test_proc_fds(0);
    p.loop = test_loop_new(0);
    CU_ASSERT_EQUAL_FATAL(test_tcp_pair(&a, &b, NULL), 0);
    memset(&hs, 0, sizeof hs);
    memset(&ar, 0, sizeof ar);
    faults_on();
    F.fd = a;
    F.short_write = 7;
    /* the writer is the TLS server, the reader the client; the handshake goes through the hooks too */
    memset(&co, 0, sizeof co);
    co.tls = ctls;
    co.server_hostname = "localhost";
    CU_ASSERT_EQUAL(rill_connect_sock(p.loop, b, &co, test_adopt_cb, &ar, NULL), 0);
    w = test_adopt_try(p.loop, a, NULL);
    CU_ASSERT_PTR_NOT_NULL(w);
    if (w != NULL)
        CU_ASSERT_EQUAL(rill__tls_start(w, stls, 1, NULL, 5000, done_cb, &hs), 0);
    test_run_until(p.loop, &ar.calls, 10000);
    test_run_until(p.loop, &hs.n, 5000);
    CU_ASSERT_EQUAL(ar.status, 0);
    CU_ASSERT_EQUAL(hs.n, 1);
    CU_ASSERT_EQUAL(hs.status, 0);
    r = ar.s;
    if (w != NULL && r != NULL && ar.status == 0) {
        memset(&k, 0, sizeof k);
        memset(&o, 0, sizeof o);
        k.want = o.want = MIB;
        o.rng = 12345;
        CU_ASSERT_EQUAL(rill_read(r, 65536, sink_read, &k), 0);
        source_next(w, 0, &o);
        test_run_until(p.loop, &k.done, 30000);
        test_run_until(p.loop, &o.done, 5000);
        CU_ASSERT_EQUAL(k.got, MIB);
        CU_ASSERT_FALSE(k.bad);
        CU_ASSERT_EQUAL(o.status, 0);
        CU_ASSERT_TRUE(F.wr_calls > MIB / 7 / 2);
    }
    faults_off();
    p.w = w;
    p.r = r;
    pair_close(&p);
    rill_tls_free(stls);
    rill_tls_free(ctls);
}

/* ------------------------------------------------------------------ EINTR */

static void test_eintr_every_other_call(void)
{
    pair p;
    sink k1, k2;
    source o1, o2;

    CU_ASSERT_EQUAL_FATAL(pair_open(&p), 0);
    memset(&k1, 0, sizeof k1);
    memset(&k2, 0, sizeof k2);
    memset(&o1, 0, sizeof o1);
    memset(&o2, 0, sizeof o2);
    k1.want = k2.want = o1.want = o2.want = MIB;
    o1.rng = 1;
    o2.rng = 2;
    faults_on();
    F.fd = rill_fileno(p.w);
    F.eintr = 1;
    /* Both directions at once through the faulty descriptor: reads and writes. */
    CU_ASSERT_EQUAL(rill_read(p.r, 65536, sink_read, &k1), 0);
    CU_ASSERT_EQUAL(rill_read(p.w, 65536, sink_read, &k2), 0);
    source_next(p.w, 0, &o1);
    source_next(p.r, 0, &o2);
    {
        uint64_t end = test_now_ms() + 20000;
        while (!(k1.done && k2.done && o1.done && o2.done) && test_now_ms() < end)
            rill_loop_run_once(p.loop, 20);
    }
    CU_ASSERT_EQUAL(k1.got, MIB);
    CU_ASSERT_EQUAL(k2.got, MIB);
    CU_ASSERT_FALSE(k1.bad);
    CU_ASSERT_FALSE(k2.bad);
    CU_ASSERT_EQUAL(o1.status, 0);
    CU_ASSERT_EQUAL(o2.status, 0);
    CU_ASSERT_TRUE(F.eintrs > 10);
    CU_ASSERT_TRUE(F.rd_calls > 10);
    CU_ASSERT_TRUE(F.wr_calls > 10);
    faults_off();
    pair_close(&p);
}

/* ---------------------------------------------------------- EAGAIN storms */

/* EAGAIN 1000 times in a row although the socket is readable (then writable):
   every wakeup must lead to a call (the loop waits on the real readiness
   only), the data must arrive whole, and once done the loop must sleep. */
static void test_eagain_storm(void)
{
    pair p;
    sink k;
    done_rec d;
    static char buf[256 * 1024];
    size_t i;
    unsigned long polls, calls, eagains;
    uint64_t t0;
    int n, raw;

    CU_ASSERT_EQUAL_FATAL(pair_open(&p), 0);
    for (i = 0; i < sizeof buf; i++)
        buf[i] = (char)pat(i);
    /* --- read side: the peer's bytes wait in the socket while reads say EAGAIN */
    memset(&k, 0, sizeof k);
    k.want = 65536;
    raw = rill_fileno(p.w);
    faults_on();
    F.fd = rill_fileno(p.r);
    F.eagain_rd = 1000;
    CU_ASSERT_EQUAL(rill_read(p.r, 65536, sink_read, &k), 0);
    rill_loop_run_once(p.loop, 0);
    polls = p.loop->npolls;
    CU_ASSERT_EQUAL(rill_write(p.w, buf, 65536, NULL, NULL), 0);
    test_run_until(p.loop, &k.done, 20000);
    CU_ASSERT_EQUAL(k.got, 65536);
    CU_ASSERT_FALSE(k.bad);
    CU_ASSERT_EQUAL(F.eagains, 1000);
    CU_ASSERT_EQUAL(F.eagain_rd, 0);
    /* one wakeup per injected EAGAIN at most, plus a few for the real reads */
    CU_ASSERT_TRUE(p.loop->npolls - polls <= F.rd_calls + 10);
    CU_ASSERT_TRUE(p.loop->npolls - polls <= 1000 + 30);
    calls = F.rd_calls;

    /* --- idle: a pending read and nothing to read must sleep */
    memset(&k, 0, sizeof k);
    k.want = 1;
    CU_ASSERT_EQUAL(rill_read(p.r, 65536, sink_read, &k), 0);
    rill_loop_run_once(p.loop, 0);
    polls = p.loop->npolls;
    t0 = test_now_ms();
    rill_loop_run_once(p.loop, 150);
    rill_loop_run_once(p.loop, 150);
    CU_ASSERT_TRUE(p.loop->npolls - polls <= 2);
    CU_ASSERT_TRUE(test_now_ms() - t0 >= 250);
    CU_ASSERT_EQUAL(F.rd_calls, calls);     /* no read without readiness */
    CU_ASSERT_FALSE(k.done);
    CU_ASSERT_EQUAL(rill_read_cancel(p.r), 0);
    test_run_until(p.loop, &k.done, 2000);
    CU_ASSERT_EQUAL(k.status, RILL_ECANCELED);

    /* --- write side: the socket is writable but sendmsg says EAGAIN */
    F.fd = raw;
    F.eagain_wr = 1000;
    eagains = F.eagains;
    memset(&k, 0, sizeof k);
    memset(&d, 0, sizeof d);
    k.want = sizeof buf;
    CU_ASSERT_EQUAL(rill_read(p.r, 65536, sink_read, &k), 0);
    rill_loop_run_once(p.loop, 0);
    polls = p.loop->npolls;
    CU_ASSERT_EQUAL(rill_write(p.w, buf, sizeof buf, done_cb, &d), 0);
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(p.w), sizeof buf);   /* the first try said EAGAIN */
    test_run_until(p.loop, &k.done, 20000);
    test_run_until(p.loop, &d.n, 5000);
    CU_ASSERT_EQUAL(k.got, sizeof buf);
    CU_ASSERT_FALSE(k.bad);
    CU_ASSERT_EQUAL(d.n, 1);
    CU_ASSERT_EQUAL(d.status, 0);
    CU_ASSERT_EQUAL(F.eagains - eagains, 1000);
    CU_ASSERT_TRUE(p.loop->npolls - polls <= 1000 + 60);
    /* and a drained writer no longer waits for writability */
    polls = p.loop->npolls;
    n = (int)F.wr_calls;
    rill_loop_run_once(p.loop, 100);
    CU_ASSERT_TRUE(p.loop->npolls - polls <= 1);
    CU_ASSERT_EQUAL((int)F.wr_calls, n);
    faults_off();
    pair_close(&p);
}

/* ------------------------------------------------------------- ECONNRESET */

static void test_reset_mid_read(void)
{
    pair p;
    read_rec r;
    done_rec wc, cl;

    CU_ASSERT_EQUAL_FATAL(pair_open(&p), 0);
    memset(&r, 0, sizeof r);
    memset(&wc, 0, sizeof wc);
    memset(&cl, 0, sizeof cl);
    faults_on();
    F.fd = rill_fileno(p.r);
    F.reset_rd = 1;
    CU_ASSERT_EQUAL(rill_readline(p.r, read_cb, &r), 0);
    CU_ASSERT_EQUAL(rill_wait_closed(p.r, done_cb, &wc), 0);
    CU_ASSERT_EQUAL(rill_write(p.w, "half a li", 9, NULL, NULL), 0);
    test_run_until(p.loop, &wc.n, 5000);
    CU_ASSERT_EQUAL(F.resets, 1);
    CU_ASSERT_EQUAL(r.n, 1);
    CU_ASSERT_EQUAL(r.status, -ECONNRESET);      /* the pending read gets it */
    CU_ASSERT_EQUAL(wc.n, 1);
    CU_ASSERT_EQUAL(wc.status, -ECONNRESET);     /* and so does wait_closed */
    CU_ASSERT_TRUE(rill_is_closing(p.r));
    CU_ASSERT_EQUAL(rill_write(p.r, "x", 1, NULL, NULL), -ECONNRESET);
    CU_ASSERT_EQUAL(rill_close(p.r, done_cb, &cl), 0);
    test_run_until(p.loop, &cl.n, 2000);
    CU_ASSERT_EQUAL(cl.n, 1);
    p.r = NULL;
    faults_off();
    pair_close(&p);
}

static void test_reset_mid_write(void)
{
    pair p;
    read_rec r;
    done_rec dr, wc;
    static char buf[4 * 1024 * 1024];
    char tmp[65536];

    CU_ASSERT_EQUAL_FATAL(pair_open_how(&p, -1), 0);
    memset(&r, 0, sizeof r);
    memset(&dr, 0, sizeof dr);
    memset(&wc, 0, sizeof wc);
    memset(buf, 'w', sizeof buf);
    /* The reader stops reading: the writer's buffer fills and its drain waits. */
    CU_ASSERT_EQUAL(rill_pause_reading(p.r), 0);
    CU_ASSERT_EQUAL(rill_readline(p.w, read_cb, &r), 0);
    CU_ASSERT_EQUAL(rill_wait_closed(p.w, done_cb, &wc), 0);
    CU_ASSERT_EQUAL(rill_write(p.w, buf, sizeof buf, done_cb, &dr), 0);
    rill_loop_run_once(p.loop, 50);
    CU_ASSERT_TRUE(rill_get_write_buffer_size(p.w) > 0);
    CU_ASSERT_EQUAL(dr.n, 0);
    faults_on();
    F.fd = rill_fileno(p.w);
    F.reset_wr = 1;
    /* Room in the socket again: the next send meets the reset. */
    {
        int fd = rill_fileno(p.r);
        uint64_t end = test_now_ms() + 5000;
        while (F.resets == 0 && test_now_ms() < end) {
            ssize_t n = read(fd, tmp, sizeof tmp);
            (void)n;
            rill_loop_run_once(p.loop, 10);
        }
    }
    test_run_until(p.loop, &wc.n, 5000);
    CU_ASSERT_EQUAL(F.resets, 1);
    CU_ASSERT_EQUAL(dr.n, 1);
    CU_ASSERT_EQUAL(dr.status, -ECONNRESET);     /* the drain gets it */
    CU_ASSERT_EQUAL(r.n, 1);
    CU_ASSERT_EQUAL(r.status, -ECONNRESET);      /* and the pending read */
    CU_ASSERT_EQUAL(wc.status, -ECONNRESET);     /* and wait_closed */
    CU_ASSERT_EQUAL(rill_get_write_buffer_size(p.w), 0);
    CU_ASSERT_EQUAL(rill_drain(p.w, done_cb, &dr), -ECONNRESET);
    faults_off();
    pair_close(&p);
}

/* ----------------------------------------------- ECONNRESET in a TLS handshake */

static int learn_fd(int fd, int family, void *ud)
{
    (void)family; (void)ud;
    F.fd = fd;
    return 0;
}

/* A TLS echo round trip; 1 on success. */
static int tls_roundtrip(rill_loop *loop, int port, rill_tls *ctls)
{
    rill_connect_opts co;
    test_adopted c;
    read_rec r;
    done_rec cl;

    memset(&co, 0, sizeof co);
    memset(&c, 0, sizeof c);
    memset(&r, 0, sizeof r);
    memset(&cl, 0, sizeof cl);
    co.tls = ctls;
    co.timeout_ms = 5000;
    if (rill_connect(loop, "127.0.0.1", port, &co, test_adopt_cb, &c, NULL) != 0 ||
        !test_run_until(loop, &c.calls, 6000) || c.status != 0)
        return 0;
    rill_write(c.s, "ping\n", 5, NULL, NULL);
    rill_readline(c.s, read_cb, &r);
    test_run_until(loop, &r.n, 5000);
    rill_close(c.s, done_cb, &cl);
    test_run_until(loop, &cl.n, 5000);
    return r.status == 0 && r.len == 5 && memcmp(r.data, "ping\n", 5) == 0;
}

static void test_reset_mid_tls_handshake(void)
{
    unsigned long live0 = rill__alloc_live();
    rill_tls *ctls, *stls = tls_pair(&ctls);
    rill_loop *loop;
    rill_server *srv;
    rill_server_opts so;
    rill_connect_opts co;
    test_srv_rec t;
    test_adopted c;
    int port, fds0;

    if (stls == NULL)
        return;
    fds0 = test_proc_fds(0);
    loop = test_loop_new(0);
    memset(&so, 0, sizeof so);
    memset(&t, 0, sizeof t);
    so.tls = stls;
    so.on_error = test_srv_on_error;
    srv = rill_server_new(loop, "127.0.0.1", 0, &so, test_srv_echo_line, &t);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL_FATAL(rill_server_start_serving(srv, NULL, NULL), 0);
    port = rill_server_port(srv);

    /* 1. The client's socket is reset while it waits for the ServerHello. */
    faults_on();
    memset(&co, 0, sizeof co);
    memset(&c, 0, sizeof c);
    co.tls = ctls;
    co.on_socket = learn_fd;
    F.reset_rd = 1;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", port, &co, test_adopt_cb, &c, NULL), 0);
    test_run_until(loop, &c.calls, 5000);
    CU_ASSERT_EQUAL(c.calls, 1);
    CU_ASSERT_EQUAL(c.status, -ECONNRESET);
    CU_ASSERT_PTR_NULL(c.s);
    CU_ASSERT_EQUAL(F.resets, 1);
    /* the server hears its half-done handshake end */
    test_run_until(loop, &t.errors, 5000);
    CU_ASSERT_EQUAL(t.errors, 1);
    CU_ASSERT_EQUAL(t.clients, 0);

    /* 2. The server's accepted socket is reset mid-handshake (its recv). */
    F.fd = -1;
    F.port = port;
    F.reset_rd = 1;
    memset(&c, 0, sizeof c);
    co.on_socket = NULL;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", port, &co, test_adopt_cb, &c, NULL), 0);
    test_run_until(loop, &c.calls, 5000);
    CU_ASSERT_EQUAL(c.calls, 1);
    CU_ASSERT_TRUE(c.status < 0);            /* the server dropped it */
    test_run_until(loop, &t.errors, 2000);
    {
        int two = 0;
        uint64_t end = test_now_ms() + 3000;
        while (t.errors < 2 && test_now_ms() < end)
            test_run_until(loop, &two, 20);
    }
    CU_ASSERT_EQUAL(t.errors, 2);
    CU_ASSERT_EQUAL(t.last_error, -ECONNRESET);
    CU_ASSERT_TRUE(t.had_peer);
    CU_ASSERT_EQUAL(F.resets, 2);
    faults_off();

    /* 3. The server still serves. */
    CU_ASSERT_TRUE(tls_roundtrip(loop, port, ctls));
    CU_ASSERT_EQUAL(t.clients, 1);
    rill_server_close(srv, NULL, NULL);
    test_loop_finish(loop);
    rill_tls_free(stls);
    rill_tls_free(ctls);
    TEST_CHECK_LIVE(live0);
    CU_ASSERT_EQUAL(test_proc_fds(0), fds0);
}

/* ---------------------------------------------------------------- peers */

/* The peer half-closes: we read its EOF, and can still write to it. */
static void test_peer_half_close(void)
{
    unsigned long live0 = rill__alloc_live();
    rill_loop *loop = test_loop_new(0);
    rill_stream *s;
    read_rec r1, r2;
    done_rec d, cl;
    char buf[64];
    int a, b;

    CU_ASSERT_EQUAL_FATAL(test_tcp_pair(&a, &b, NULL), 0);
    s = test_adopt_try(loop, a, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    memset(&d, 0, sizeof d);
    memset(&cl, 0, sizeof cl);
    CU_ASSERT_EQUAL(write(b, "question\n", 9), 9);
    CU_ASSERT_EQUAL(shutdown(b, SHUT_WR), 0);
    CU_ASSERT_EQUAL(rill_readline(s, read_cb, &r1), 0);
    test_run_until(loop, &r1.n, 5000);
    CU_ASSERT_EQUAL(r1.status, 0);
    CU_ASSERT_EQUAL(r1.len, 9);
    CU_ASSERT_EQUAL(rill_readline(s, read_cb, &r2), 0);
    test_run_until(loop, &r2.n, 5000);
    CU_ASSERT_EQUAL(r2.status, 0);
    CU_ASSERT_EQUAL(r2.len, 0);                  /* EOF */
    CU_ASSERT_TRUE(rill_at_eof(s));
    CU_ASSERT_FALSE(rill_is_closing(s));
    CU_ASSERT_EQUAL(rill_write(s, "answer\n", 7, done_cb, &d), 0);
    test_run_until(loop, &d.n, 5000);
    CU_ASSERT_EQUAL(d.status, 0);
    CU_ASSERT_EQUAL(raw_read_all(b, buf, 7, 3000), 7);
    CU_ASSERT_EQUAL(memcmp(buf, "answer\n", 7), 0);
    CU_ASSERT_EQUAL(rill_close(s, done_cb, &cl), 0);
    test_run_until(loop, &cl.n, 5000);
    CU_ASSERT_EQUAL(cl.status, 0);
    CU_ASSERT_EQUAL(raw_read_all(b, buf, sizeof buf, 2000), 0);   /* and then our EOF */
    close(b);
    test_loop_finish(loop);
    TEST_CHECK_LIVE(live0);
}

/* The peer closes without reading what we sent: its kernel answers our next
   segments with RST, and the drain fails with -EPIPE or -ECONNRESET. */
static void test_peer_closes_without_reading(void)
{
    unsigned long live0 = rill__alloc_live();
    rill_loop *loop = test_loop_new(0);
    rill_stream *s;
    done_rec d, wc, cl;
    static char buf[4 * 1024 * 1024];
    int a, b, rc;

    CU_ASSERT_EQUAL_FATAL(tcp_pair_buf(&a, &b, 32768), 0);
    s = test_adopt_try(loop, a, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    memset(&d, 0, sizeof d);
    memset(&wc, 0, sizeof wc);
    memset(&cl, 0, sizeof cl);
    memset(buf, 'z', sizeof buf);
    CU_ASSERT_EQUAL(rill_wait_closed(s, done_cb, &wc), 0);
    CU_ASSERT_EQUAL(rill_write(s, buf, sizeof buf, done_cb, &d), 0);
    rill_loop_run_once(loop, 50);
    CU_ASSERT_TRUE(rill_get_write_buffer_size(s) > 0);
    close(b);                                    /* unread data in its buffer: RST */
    test_run_until(loop, &d.n, 5000);
    CU_ASSERT_EQUAL(d.n, 1);
    CU_ASSERT_TRUE(d.status == -EPIPE || d.status == -ECONNRESET);
    test_run_until(loop, &wc.n, 2000);
    CU_ASSERT_EQUAL(wc.status, d.status);
    rc = rill_write(s, "more", 4, NULL, NULL);
    CU_ASSERT_EQUAL(rc, d.status);               /* later writes fail at once */
    CU_ASSERT_EQUAL(rill_close(s, done_cb, &cl), 0);
    test_run_until(loop, &cl.n, 2000);
    CU_ASSERT_EQUAL(cl.n, 1);
    test_loop_finish(loop);
    TEST_CHECK_LIVE(live0);
}

/* -------------------------------------------------------- EMFILE on connect */

/* In a child (it lowers RLIMIT_NOFILE): 0, or the step that failed. */
static int emfile_connect_child(void)
{
    rill_loop *loop;
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    struct rlimit rl, saved;
    test_adopted c;
    int l, fillers[512], nfill = 0, i, fds_before, port;
    unsigned long live0 = rill__alloc_live();

    if ((loop = test_loop_try_new(RILL_BACKEND_AUTO)) == NULL)
        return 10;
    if ((l = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        return 11;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(l, 8) < 0 ||
        getsockname(l, (struct sockaddr *)&sin, &len) < 0)
        return 12;
    port = ntohs(sin.sin_port);
    if (getrlimit(RLIMIT_NOFILE, &saved) < 0)
        return 13;
    rl = saved;
    rl.rlim_cur = (rlim_t)test_proc_fds(0) + 64;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 14;
    while (nfill < 512) {
        int fd = dup(0);
        if (fd < 0)
            break;
        fillers[nfill++] = fd;
    }
    if (nfill == 512 || errno != EMFILE)
        return 15;
    /* test_proc_fds needs a descriptor of its own: make room for it, and count with it */
    close(fillers[--nfill]);
    fds_before = test_proc_fds(0);
    memset(&c, 0, sizeof c);
    if (rill_connect(loop, "127.0.0.1", port, NULL, test_adopt_cb, &c, NULL) != 0)
        return 16;
    /* take the spare descriptor back: the connect finds none */
    if ((fillers[nfill] = dup(0)) < 0)
        return 17;
    nfill++;
    if (!test_run_until(loop, &c.calls, 3000))
        return 18;
    if (c.calls != 1 || c.status != -EMFILE || c.s != NULL)
        return 19;
    close(fillers[--nfill]);
    if (test_proc_fds(0) != fds_before)
        return 20;   /* nothing leaked */
    /* descriptors freed: it works again */
    for (i = 0; i < nfill; i++)
        close(fillers[i]);
    setrlimit(RLIMIT_NOFILE, &saved);
    memset(&c, 0, sizeof c);
    if (rill_connect(loop, "127.0.0.1", port, NULL, test_adopt_cb, &c, NULL) != 0)
        return 21;
    if (!test_run_until(loop, &c.calls, 3000) || c.status != 0 || c.s == NULL)
        return 22;
    rill_close(c.s, NULL, NULL);
    close(l);
    if (!run_idle(loop, 3000))
        return 23;
    if (rill_loop_free(loop) != 0)
        return 24;
    if (rill__alloc_live() != live0)
        return 25;
    return 0;
}

static void test_emfile_on_connect(void)
{
    test_in_child("emfile connect", emfile_connect_child, 15000);
}

/* ---------------------------------------------------------------- suite */

int test_faults_register(void)
{
    static const test_case cases[] = {
        { "allocation walk: echo scenario", test_alloc_walk_plain },
        { "allocation walk: read and close timeouts", test_alloc_walk_timeouts },
        { "allocation walk: TLS echo scenario", test_alloc_walk_tls },
        { "short writes: 1 MiB, a byte at a time", test_short_writes },
        { "short writes under TLS", test_short_writes_tls },
        { "EINTR on every other read and write", test_eintr_every_other_call },
        { "EAGAIN storms: no spin", test_eagain_storm },
        { "ECONNRESET mid-read", test_reset_mid_read },
        { "ECONNRESET mid-write", test_reset_mid_write },
        { "ECONNRESET mid-TLS-handshake", test_reset_mid_tls_handshake },
        { "peer half-closes", test_peer_half_close },
        { "peer closes without reading", test_peer_closes_without_reading },
        { "EMFILE on connect", test_emfile_on_connect },
        { NULL, NULL }
    };
    return test_add_suite("faults", cases);
}
