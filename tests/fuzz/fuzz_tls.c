/* fuzz_tls: random and mutated TLS records sent to a rill TLS server and to a rill TLS
   client over a socketpair; the handshake must end with an error status.

   Input: [flags][4 chunk sizes][bytes sent to rill]
     flags  bits 0-1 how the loop runs (epoll, poll, select backend, or the program's
            own poll() through rill_loop_prepare_poll); bit 2: rill is the client (adopted
            with rill_connect_sock and opts.tls), else the server (rill__tls_start on an
            adopted stream); bit 3: the other context (server: ALPN and a required
            client certificate; client: no verification, ALPN and a client
            certificate); bit 4: the peer closes its end at the end (else it only
            shuts down writing); bit 5: bytes are fed to the plain stream before TLS
            starts (the server: they reach wolfSSL through the stream's buffer);
            bit 6: no EOF at all, a 3 ms handshake timeout ends the handshake;
            bit 7: the (1 + last chunk size % 32)-th library allocation from the start
            fails (RILL_ENOMEM is then allowed, as a return code or a status)
   The bytes go out one chunk per loop iteration; whatever rill sends is read and
   dropped. The certificates are made once per process by tests/support/certs.c (the
   openssl command, a temporary directory removed at exit): no key is in the tree.

   FUZZ_TLS_RECORD=DIR in the environment makes the target write seeds instead: real
   handshakes between a rill client and a rill server (TLS 1.3, and TLS 1.2 pinned on the
   server) through a relay; each side's first flight becomes an input for the other side
   (gen_seeds.py --fuzz-tls runs it).

   Properties: the handshake ends (bounded time) with one callback, never synchronous,
   with an error (RILL_ETLS, RILL_ECERT, RILL_ETIMEDOUT, or the socket's -errno); the
   stream is aborted and freed; rill_loop_free() returns 0 and the library holds no
   allocation it did not hold before (rill__alloc_live). */
#include "fuzz_common.h"
#include "rill_private.h"
#include "stream.h"
#include "tls.h"
#include "../support/certs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

/* Keeps options.h from redefining _FORTIFY_SOURCE behind the build's back (as lib/stream/tls.c). */
#define WOLFSSL_OPTIONS_IGNORE_SYS
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#define RUN_MS 10000
#define HS_TIMEOUT_MS 5000     /* an EOF ends every handshake long before */

static rill_tls *server_ctx[2], *client_ctx[2];

typedef struct state {
    rill_loop *loop;
    int client;                /* rill is the client */
    rill_stream *plain;        /* the adopted stream of the server case */
    int conn_done, conn_status;
    int hs_calls, hs_status;
    int ended;                 /* the handshake's callback ran */
    int allocfail;
} state;

static void on_handshake(rill_stream *s, int status, void *ud)
{
    state *st = ud;
    FZ_CALLBACK();
    FZ_CHECK(s == st->plain);
    st->hs_calls++;
    st->hs_status = status;
    st->ended = 1;
    if (status < 0)
        rill_abort(s);           /* as the contract says: after an error the caller aborts */
    else
        rill_close(s, NULL, NULL);
}

static void on_conn(rill_stream *s, int status, void *ud)
{
    state *st = ud;
    FZ_CALLBACK();
    st->conn_done = 1;
    st->conn_status = status;
    if (!st->client) {
        if (status == RILL_ENOMEM && st->allocfail) {
            st->hs_calls++;      /* nothing to start TLS on: the run ends here */
            st->hs_status = status;
            st->ended = 1;
            return;
        }
        FZ_CHECK(status == 0 && s != NULL);
        st->plain = s;           /* the server case: a plain stream, TLS starts later */
    } else {
        /* The client case: the connect machine ran the handshake. */
        st->hs_calls++;
        st->hs_status = status;
        st->ended = 1;
        if (s != NULL)
            rill_close(s, NULL, NULL);
    }
}

static rill_tls *make_ctx(int server, int variant, const test_certs *c)
{
    rill_tls_opts o;
    char err[256];
    rill_tls *t;

    memset(&o, 0, sizeof o);
    o.errbuf = err;
    o.errbuf_len = sizeof err;
    o.ca_file = c->ca;
    if (server) {
        o.cert_file = c->server;
        o.key_file = c->key;
        if (variant) {
            o.verify = 2;
            o.alpn = "h2,http/1.1";
        }
    } else if (variant) {
        o.verify = -1;
        o.alpn = "http/1.1,h2";
        o.cert_file = c->client;
        o.key_file = c->key;
    }
    t = server ? rill_tls_server_new(&o) : rill_tls_client_new(&o);
    if (t == NULL)
        fprintf(stderr, "fuzz_tls: context: %s\n", err);
    FZ_CHECK(t != NULL);
    return t;
}

/* ------------------------------------------------------------ seed recording */

typedef struct recorder {
    int v12;                   /* pin the server to TLS 1.2 */
    int done, ok;
    unsigned char c2s[65536], s2c[65536];
    size_t nc2s, ns2c;
    size_t c2s_first, s2c_first;   /* each side's first flight; 0 until known */
    rill_stream *cs, *ss;
} recorder;

static void rec_hs(rill_stream *s, int status, void *ud)
{
    recorder *r = ud;
    FZ_CHECK(status == 0);
    r->ss = s;
    r->done++;
}

static void rec_server(rill_stream *s, int status, void *ud)
{
    recorder *r = ud;
    FZ_CHECK(status == 0);
    FZ_CHECK(rill__tls_start(s, server_ctx[0], 1, NULL, HS_TIMEOUT_MS, rec_hs, r) == 0);
    if (r->v12)
        FZ_CHECK(wolfSSL_set_max_proto_version((WOLFSSL *)rill_tls_object(s), TLS1_2_VERSION) == WOLFSSL_SUCCESS);
}

static void rec_client(rill_stream *s, int status, void *ud)
{
    recorder *r = ud;
    FZ_CHECK(status == 0);
    r->cs = s;
    r->done++;
}

/* Moves what arrived on from to to, appending it to log. */
static void relay(int from, int to, unsigned char *log, size_t *n)
{
    ssize_t k;
    while ((k = read(from, log + *n, 65536 - *n)) > 0) {
        FZ_CHECK(write(to, log + *n, (size_t)k) == k);
        *n += (size_t)k;
        FZ_CHECK(*n < 65536);
    }
}

static void save(const char *dir, const char *name, uint8_t flags, const unsigned char *p, size_t n)
{
    char path[1024];
    uint8_t head[5] = { 0, 0, 0, 0, 0 };
    FILE *f;
    head[0] = flags;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    FZ_CHECK(f != NULL);
    FZ_CHECK(fwrite(head, 1, sizeof head, f) == sizeof head && fwrite(p, 1, n, f) == n);
    FZ_CHECK(fclose(f) == 0);
}

static void record_seeds(const char *dir)
{
    static recorder r;
    int v;
    for (v = 0; v < 2; v++) {
        rill_loop *loop = fz_loop_new(0, NULL, 0);
        rill_connect_opts o;
        int a[2], b[2];
        uint64_t end = fz_now_ms() + RUN_MS;
        char name[64];
        const char *ver = v ? "tls12" : "tls13";

        memset(&r, 0, sizeof r);
        r.v12 = v;
        FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, b) == 0);
        FZ_CHECK(fcntl(a[1], F_SETFL, O_NONBLOCK) == 0 && fcntl(b[1], F_SETFL, O_NONBLOCK) == 0);
        memset(&o, 0, sizeof o);
        o.tls = client_ctx[0];
        o.server_hostname = "localhost";
        FZ_CHECK(rill_connect_sock(loop, a[0], &o, rec_client, &r, NULL) == 0);
        FZ_CHECK(rill_connect_sock(loop, b[0], NULL, rec_server, &r, NULL) == 0);
        while (r.done < 2) {
            FZ_CHECK(fz_now_ms() < end);
            relay(a[1], b[1], r.c2s, &r.nc2s);
            if (r.ns2c > 0 && r.c2s_first == 0)
                r.c2s_first = r.nc2s > 0 ? r.nc2s : 1;
            relay(b[1], a[1], r.s2c, &r.ns2c);
            if (r.ns2c > 0 && r.c2s_first == 0)
                r.c2s_first = r.nc2s;
            if (r.c2s_first > 0 && r.nc2s > r.c2s_first && r.s2c_first == 0)
                r.s2c_first = r.ns2c;
            FZ_CHECK(fz_run_once(loop, 1) >= 0);
        }
        if (r.s2c_first == 0)
            r.s2c_first = r.ns2c;
        rill_close(r.cs, NULL, NULL);
        rill_close(r.ss, NULL, NULL);
        fz_finish(loop, RUN_MS);
        close(a[1]);
        close(b[1]);
        /* To the server: the client's first flight, then its whole side of the handshake. */
        snprintf(name, sizeof name, "rec-clienthello-%s", ver);
        save(dir, name, 0x00, r.c2s, r.c2s_first);
        snprintf(name, sizeof name, "rec-client-transcript-%s", ver);
        save(dir, name, 0x10, r.c2s, r.nc2s);
        /* To the client: the server's first flight, verified and not. */
        snprintf(name, sizeof name, "rec-serverflight-%s-verify", ver);
        save(dir, name, 0x04, r.s2c, r.s2c_first);
        snprintf(name, sizeof name, "rec-serverflight-%s-noverify", ver);
        save(dir, name, 0x04 | 0x08, r.s2c, r.s2c_first);
        fprintf(stderr, "fuzz_tls: %s: client flight %lu bytes (%lu in all), server flight %lu bytes\n", ver,
                (unsigned long)r.c2s_first, (unsigned long)r.nc2s, (unsigned long)r.s2c_first);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *why = NULL;
    const test_certs *c;
    int i;

    (void)argc;
    (void)argv;
    fz_init();
    c = test_certs_get(&why);
    if (c == NULL) {
        fprintf(stderr, "fuzz_tls: no test certificates: %s\n", why != NULL ? why : "?");
        exit(77);   /* automake's "skipped": the openssl command is missing */
    }
    for (i = 0; i < 2; i++) {
        server_ctx[i] = make_ctx(1, i, c);
        client_ctx[i] = make_ctx(0, i, c);
    }
    if (getenv("FUZZ_TLS_RECORD") != NULL) {
        record_seeds(getenv("FUZZ_TLS_RECORD"));
        exit(0);
    }
    return 0;
}

static size_t chunk_size(uint8_t b, size_t left)
{
    size_t n = b == 0 ? left : b < 200 ? b : (size_t)(b - 199) * 256;
    return n < left ? n : left;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static state st;
    static char sink[65536];
    fz_in in;
    uint8_t flags, chunks[4];
    const uint8_t *payload;
    size_t total, fed = 0, ci = 0, got;
    int sv[2], fl, client, variant, eof_sent = 0, started = 0, rc;
    unsigned long live, iter = 0;
    uint64_t end;
    rill_connect_opts o;

    in.p = data;
    in.n = size;
    flags = fz_u8(&in);
    payload = fz_bytes(&in, 4, &got);
    memset(chunks, 0, sizeof chunks);
    memcpy(chunks, payload, got);
    payload = in.p;
    total = in.n;
    client = (flags & 4) != 0;
    variant = (flags >> 3) & 1;

    memset(&st, 0, sizeof st);
    st.client = client;
    live = rill__alloc_live();
    FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    fl = fcntl(sv[1], F_GETFL);
    FZ_CHECK(fl >= 0 && fcntl(sv[1], F_SETFL, fl | O_NONBLOCK) == 0);
    st.loop = fz_loop_new(flags & 3, NULL, 0);
    memset(&o, 0, sizeof o);
    o.ssl_handshake_timeout_ms = (flags & 0x40) ? 3 : HS_TIMEOUT_MS;
    if (client) {
        o.tls = client_ctx[variant];
        o.server_hostname = "localhost";
        started = 1;
    }
    if (flags & 0x80) {
        fz_alloc_fail_at(1 + chunks[3] % 32u);
        st.allocfail = 1;
    }
    rc = FZ_CALL(rill_connect_sock(st.loop, sv[0], &o, on_conn, &st, NULL));
    if (rc != 0) {
        FZ_CHECK(rc == RILL_ENOMEM && st.allocfail);
        close(sv[0]);            /* refused: the descriptor is still ours */
        st.ended = 1;
        st.hs_calls = 1;
        st.hs_status = rc;
    }

    end = fz_now_ms() + RUN_MS;
    while (!st.ended) {
        FZ_CHECK(fz_now_ms() < end);   /* a handshake that never ends */
        /* The server side starts TLS once the stream is there (and, with bit 5, once
           the first bytes have been fed to the plain stream). */
        if (!started && st.plain != NULL && (!(flags & 0x20) || fed > 0 || total == 0)) {
            rc = FZ_CALL(rill__tls_start(st.plain, server_ctx[variant], 1, NULL,
                                         o.ssl_handshake_timeout_ms, on_handshake, &st));
            started = 1;
            if (rc != 0) {
                /* RILL_ENOMEM, or RILL_ECLOSED: the plain stream was lost reading the
                   first bytes for want of memory. */
                FZ_CHECK((rc == RILL_ENOMEM || rc == RILL_ECLOSED) && st.allocfail);
                rill_abort(st.plain);
                st.ended = 1;
                st.hs_calls = 1;
                st.hs_status = rc;
                break;
            }
        }
        if (st.plain != NULL || client) {
            if (fed < total) {
                ssize_t n = write(sv[1], payload + fed, chunk_size(chunks[ci++ % 4], total - fed));
                FZ_CHECK(n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)));
                if (n > 0)
                    fed += (size_t)n;
            } else if (!eof_sent && started && !(flags & 0x40)) {
                if (flags & 0x10) {
                    close(sv[1]);
                    sv[1] = -1;
                } else {
                    FZ_CHECK(shutdown(sv[1], SHUT_WR) == 0);
                }
                eof_sent = 1;
            }
        }
        if (sv[1] >= 0)
            while (read(sv[1], sink, sizeof sink) > 0)
                ;                  /* what rill sends: dropped */
        FZ_CHECK(fz_run_once(st.loop, iter++ < 64 ? 0 : 1) >= 0);
    }
    if (fz_verbose)
        fprintf(stderr, "  %s: status %d %s\n", client ? "client" : "server", st.hs_status,
                rill_err_name(st.hs_status));
    FZ_CHECK(st.hs_calls == 1);
    /* Bytes from the input never make a handshake succeed. */
    FZ_CHECK(st.hs_status == RILL_ETLS || st.hs_status == RILL_ECERT || st.hs_status == RILL_ETIMEDOUT ||
             st.hs_status == -ECONNRESET || st.hs_status == -EPIPE ||
             ((st.hs_status == RILL_ENOMEM || st.hs_status == RILL_ECLOSED) && st.allocfail));
    fz_finish(st.loop, RUN_MS);
    fz_alloc_fail_at(0);
    if (sv[1] >= 0)
        close(sv[1]);
    FZ_CHECK(rill__alloc_live() == live);
    return 0;
}
