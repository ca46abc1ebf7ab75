/* connect_errors: the error paths of the connect machine (lib/connect.c) and of the
   resolver (lib/resolve.c). Each test injects one failure (bad arguments, a syscall hook,
   an allocation failure, a hostile DNS answer from the loopback responder) and asserts
   the exact error the header promises, that the callback comes from the loop, and that
   nothing leaks. No test reaches the system's DNS: names go to tests/support/dns_responder.c
   or to the netsim resolver hook. */
#include "support/testutil.h"
#include "support/streams.h"
#include "support/proc.h"
#include "support/dns_responder.h"
#include "support/netsim.h"
#include "rill_private.h"
#include "resolve.h"
#include "syshooks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define T_AAAA 28

/* ---------------------------------------------------------------- helpers */

typedef struct conn {
    int calls, status, early;   /* early: the callback ran inside the call */
    rill_stream *s;
} conn;

static void on_conn(rill_stream *s, int status, void *ud)
{
    conn *c = ud;
    c->calls++;
    c->status = status;
    if (test_sync_check())
        c->early = 1;
    c->s = s;
    if (s != NULL)
        rill_abort(s);
}

/* A TCP listener on 127.0.0.1 (never accepting: the kernel completes connects in the backlog). */
static int listener(int *port)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    CU_ASSERT_FATAL(fd >= 0);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    CU_ASSERT_FATAL(listen(fd, 16) == 0);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* Starts a connect and runs the loop until its callback (bounded); returns rill_connect's rc. */
static int connect_run(rill_loop *loop, const char *host, int port, const rill_connect_opts *o, conn *c)
{
    int rc;
    memset(c, 0, sizeof *c);
    rc = TEST_CALL(rill_connect(loop, host, port, o, on_conn, c, NULL));
    if (rc == 0)
        CU_ASSERT_EQUAL(test_run_until(loop, &c->calls, 5000), 1);
    CU_ASSERT_EQUAL(c->early, 0);
    return rc;
}

static rill_loop *dns_loop_on(const char *servers, int backend)
{
    rill_loop_opts o;
    rill_loop *loop;

    memset(&o, 0, sizeof o);
    o.backend = backend;
    o.dns_servers = servers;
    o.dns_timeout_ms = 150;
    o.dns_tries = 1;
    loop = rill_loop_new(&o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    return loop;
}

static rill_loop *dns_loop(const char *servers)
{
    const char *b = getenv("RILL_TEST_BACKEND");
    return dns_loop_on(servers, b == NULL ? RILL_BACKEND_AUTO
                                : strcmp(b, "select") == 0 ? RILL_BACKEND_SELECT
                                : strcmp(b, "epoll") == 0 ? RILL_BACKEND_EPOLL : RILL_BACKEND_POLL);
}

/* A lookup through the internal API, holding a handle as the connect machine does. */
typedef struct lookup {
    int calls, status;
    size_t n;
    struct sockaddr_storage first;
    rill_loop *loop;
} lookup;

static void on_lookup(int status, int family, const struct sockaddr_storage *addrs, size_t n, void *ud)
{
    lookup *l = ud;
    (void)family;
    l->calls++;
    l->status = status;
    l->n = n;
    if (n > 0)
        l->first = addrs[0];
    rill__handle_unref(l->loop);
}

static int lookup_run(rill_loop *loop, const char *host, int family, int flags, lookup *l)
{
    rill__resolve_req *req = NULL;
    int rc;

    memset(l, 0, sizeof *l);
    l->loop = loop;
    rill__handle_ref(loop);
    rc = rill__resolve(loop, host, 80, family, flags, on_lookup, l, &req);
    if (rc < 0) {
        rill__handle_unref(loop);
        return rc;
    }
    CU_ASSERT_EQUAL(l->calls, 0);
    CU_ASSERT_EQUAL(test_run_until(loop, &l->calls, 5000), 1);
    return 0;
}

/* ------------------------------------------------------ argument validation */

static void never_cb(rill_stream *s, int status, void *ud)
{
    (void)s; (void)status;
    (*(int *)ud)++;
}

static void test_connect_bad_arguments(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    rill_connect_opts o;
    int calls = 0;
    char dummy;

    CU_ASSERT_EQUAL(rill_connect(loop, NULL, 80, NULL, never_cb, &calls, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", -1, NULL, never_cb, &calls, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 65536, NULL, never_cb, &calls, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_connect(NULL, "127.0.0.1", 80, NULL, never_cb, &calls, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, NULL, NULL, &calls, NULL), RILL_EINVAL);

    memset(&o, 0, sizeof o);
    o.family = AF_UNIX;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, &o, never_cb, &calls, NULL), RILL_EINVAL);
    o.family = 0;
    o.flags = AI_CANONNAME;   /* not one of the four the header allows */
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, &o, never_cb, &calls, NULL), RILL_EINVAL);
    o.flags = 0;
    o.reserved[1] = &dummy;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, &o, never_cb, &calls, NULL), RILL_EINVAL);
    o.reserved[1] = NULL;
    o.interleave = -1;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, &o, never_cb, &calls, NULL), RILL_EINVAL);
    o.interleave = 0;
    o.happy_eyeballs_delay_ms = -2;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, &o, never_cb, &calls, NULL), RILL_EINVAL);
    o.happy_eyeballs_delay_ms = 0;
    o.ssl_handshake_timeout_ms = -2;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, &o, never_cb, &calls, NULL), RILL_EINVAL);
    o.ssl_handshake_timeout_ms = 0;
    /* The local address must be numeric. */
    o.local_host = "not-an-address";
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, &o, never_cb, &calls, NULL), RILL_EINVAL);
    o.local_host = NULL;

    /* A literal of the other family has no address of the one asked for. */
    o.family = AF_INET6;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, &o, never_cb, &calls, NULL), RILL_ENOTFOUND);
    o.family = AF_INET;
    CU_ASSERT_EQUAL(rill_connect(loop, "::1", 80, &o, never_cb, &calls, NULL), RILL_ENOTFOUND);
    CU_ASSERT_EQUAL(rill_connect(loop, "::1%1", 80, &o, never_cb, &calls, NULL), RILL_ENOTFOUND);
    /* A local IPv4 address decides the family too. */
    o.family = 0;
    o.local_host = "127.0.0.1";
    CU_ASSERT_EQUAL(rill_connect(loop, "::1", 80, &o, never_cb, &calls, NULL), RILL_ENOTFOUND);

    rill_connect_cancel(NULL);   /* documented no-op */
    CU_ASSERT_EQUAL(rill__resolve_inflight(loop), 0);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(calls, 0);
}

static void test_connect_unix_and_sock_bad_arguments(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    rill_connect_opts o;
    char longpath[sizeof ((struct sockaddr_un *)0)->sun_path + 8];
    int calls = 0, p[2], fd;

    memset(longpath, 'x', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    memset(&o, 0, sizeof o);
    CU_ASSERT_EQUAL(rill_connect_unix(loop, NULL, NULL, never_cb, &calls, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_connect_unix(loop, longpath, NULL, never_cb, &calls, NULL), RILL_EINVAL);
    o.local_host = "127.0.0.1";   /* no local address for a unix socket */
    CU_ASSERT_EQUAL(rill_connect_unix(loop, "/tmp/x", &o, never_cb, &calls, NULL), RILL_EINVAL);
    o.local_host = NULL;
    CU_ASSERT_EQUAL(rill_connect_unix(loop, "/tmp/x", &o, NULL, &calls, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_connect_unix(NULL, "/tmp/x", &o, never_cb, &calls, NULL), RILL_EINVAL);

    /* rill_connect_sock: only a stream socket, and the descriptor must be open. */
    CU_ASSERT_EQUAL(rill_connect_sock(loop, -1, NULL, never_cb, &calls, NULL), RILL_EINVAL);
    CU_ASSERT_FATAL(pipe(p) == 0);
    CU_ASSERT_EQUAL(rill_connect_sock(loop, p[0], NULL, never_cb, &calls, NULL), RILL_EINVAL);
    close(p[0]);
    close(p[1]);
    CU_ASSERT_EQUAL(rill_connect_sock(loop, p[0], NULL, never_cb, &calls, NULL), -EBADF);
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(rill_connect_sock(loop, fd, NULL, never_cb, &calls, NULL), RILL_EINVAL);
    CU_ASSERT_NOT_EQUAL(fcntl(fd, F_GETFD), -1);   /* still the caller's */
    close(fd);

    test_loop_finish(loop);
    CU_ASSERT_EQUAL(calls, 0);
}

static void test_resolve_bad_arguments(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    rill__resolve_req *req = NULL;
    lookup l;

    memset(&l, 0, sizeof l);
    CU_ASSERT_EQUAL(rill__resolve(NULL, "a", 1, AF_INET, 0, on_lookup, &l, &req), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, NULL, 1, AF_INET, 0, on_lookup, &l, &req), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, "", 1, AF_INET, 0, on_lookup, &l, &req), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, "a", 1, AF_INET, 0, NULL, &l, &req), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, "a", 1, AF_INET, 0, on_lookup, &l, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, "a", -1, AF_INET, 0, on_lookup, &l, &req), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, "a", 65536, AF_INET, 0, on_lookup, &l, &req), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, "a", 1, AF_UNSPEC, 0, on_lookup, &l, &req), RILL_EINVAL);
    CU_ASSERT_PTR_NULL(req);
    rill__resolve_cancel(NULL);   /* no-op */
    CU_ASSERT_EQUAL(rill__resolve_inflight(loop), 0);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(l.calls, 0);
}

/* "" would leave c-ares without a server: RILL_EINVAL at once, before any query. */
static void test_empty_dns_servers(void)
{
    rill_loop *loop = dns_loop("");
    int calls = 0;

    CU_ASSERT_EQUAL(rill_connect(loop, "name.test", 80, NULL, never_cb, &calls, NULL), RILL_EINVAL);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(calls, 0);
}

/* Scoped IPv6 literals: an unknown scope is RILL_EINVAL from the loop, never a query. */
static void test_scoped_literals(void)
{
    static const char *const bad[] = { "::1%0", "::1%+5", "::1%5x", "::1%99999999999", "::1%no-such-if0" };
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop *loop;
    lookup l;
    size_t i;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    loop = dns_loop(dns_responder_addr(d));
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(lookup_run(loop, bad[i], AF_INET6, 0, &l), 0);
        CU_ASSERT_EQUAL(l.status, RILL_EINVAL);
        CU_ASSERT_EQUAL(l.n, 0);
    }
    CU_ASSERT_EQUAL(lookup_run(loop, "::1%1", AF_INET6, 0, &l), 0);
    CU_ASSERT_EQUAL(l.status, 0);
    CU_ASSERT_EQUAL(l.n, 1);
    CU_ASSERT_EQUAL(((struct sockaddr_in6 *)&l.first)->sin6_scope_id, 1u);
    if (if_nametoindex("lo") != 0) {   /* an interface name is a scope too */
        CU_ASSERT_EQUAL(lookup_run(loop, "::1%lo", AF_INET6, 0, &l), 0);
        CU_ASSERT_EQUAL(l.status, 0);
        CU_ASSERT_EQUAL(((struct sockaddr_in6 *)&l.first)->sin6_scope_id, if_nametoindex("lo"));
    }
    {
        /* Through the public API: the connect fails with the lookup's error. */
        conn c;
        CU_ASSERT_EQUAL(connect_run(loop, "::1%0", 80, NULL, &c), 0);
        CU_ASSERT_EQUAL(c.status, RILL_EINVAL);
    }
    CU_ASSERT_EQUAL(dns_responder_queries(d), 0);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* A name longer than any literal, with AI_NUMERICHOST: not found, and no query sent. */
static void test_long_name_numerichost(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop *loop;
    rill_connect_opts o;
    char host[80];
    conn c;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    loop = dns_loop(dns_responder_addr(d));
    memset(host, 'a', sizeof host - 1);
    host[sizeof host - 1] = '\0';
    memset(&o, 0, sizeof o);
    o.flags = AI_NUMERICHOST;
    CU_ASSERT_EQUAL(connect_run(loop, host, 80, &o, &c), 0);
    CU_ASSERT_EQUAL(c.status, RILL_ENOTFOUND);
    host[70] = '%';   /* a "scope" after 70 characters: still no literal */
    CU_ASSERT_EQUAL(connect_run(loop, host, 80, &o, &c), 0);
    CU_ASSERT_EQUAL(c.status, RILL_ENOTFOUND);
    CU_ASSERT_EQUAL(dns_responder_queries(d), 0);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* ------------------------------------------------------- connect failures */

/* A local address that cannot be had (the listener's own address and port): bind
   fails, the connect reports its errno. */
static void test_bind_fails(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    rill_connect_opts o;
    char eb[256];
    int port, lfd = listener(&port), fds0 = test_proc_fds(0);
    conn c;

    memset(&o, 0, sizeof o);
    o.local_host = "127.0.0.1";
    o.local_port = port;   /* held by the listener */
    o.errbuf = eb;
    o.errbuf_len = sizeof eb;
    CU_ASSERT_EQUAL(connect_run(loop, "127.0.0.1", port, &o, &c), 0);
    CU_ASSERT_EQUAL(c.calls, 1);
    CU_ASSERT_EQUAL(c.status, -EADDRINUSE);
    CU_ASSERT_PTR_NULL(c.s);
    CU_ASSERT_NOT_EQUAL(eb[0], '\0');
    CU_ASSERT_EQUAL(test_proc_fds(0), fds0);
    test_loop_finish(loop);
    close(lfd);
}

/* Twice cancelled before the loop ran: one callback, RILL_ECANCELED; the request
   pointer handed back is the one cancel takes. */
static void test_unix_cancel_twice(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    rill_connect_req *req = NULL;
    conn c;

    memset(&c, 0, sizeof c);
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect_unix(loop, "/nonexistent/rill.sock", NULL, on_conn, &c, &req)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(req);
    rill_connect_cancel(req);
    rill_connect_cancel(req);
    CU_ASSERT_EQUAL(c.calls, 0);
    test_run_until(loop, &c.calls, 2000);
    CU_ASSERT_EQUAL(c.calls, 1);
    CU_ASSERT_EQUAL(c.status, RILL_ECANCELED);
    CU_ASSERT_EQUAL(c.early, 0);
    test_loop_finish(loop);
}

/* socket() with SOCK_NONBLOCK|SOCK_CLOEXEC refused (EINVAL: an old kernel): the plain
   socket() and fcntl() fallback, and each of its failures. */
enum { FALLBACK_OK, FALLBACK_EMFILE, FALLBACK_BADFD };
static int fallback_mode, fallback_calls, fallback_plain;

static int h_socket(int domain, int type, int protocol)
{
    fallback_calls++;
    if (type != SOCK_STREAM) {
        errno = EINVAL;
        return -1;
    }
    fallback_plain++;
    if (fallback_mode == FALLBACK_EMFILE) {
        errno = EMFILE;
        return -1;
    }
    if (fallback_mode == FALLBACK_BADFD) {
        /* A descriptor number nothing has open: fcntl() fails on it with EBADF. */
        int fd = dup(0);
        close(fd);
        return fd;
    }
    return socket(domain, type, protocol);
}

static const rill__sys_hooks fallback_hooks = { .socket = h_socket };

static void test_socket_fallback(void)
{
    static const int want[] = { 0, -EMFILE, -EBADF };
    int mode;

    for (mode = FALLBACK_OK; mode <= FALLBACK_BADFD; mode++) {
        int fds0 = test_proc_fds(0), port, lfd = listener(&port);
        rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
        conn c;

        fallback_mode = mode;
        fallback_calls = fallback_plain = 0;
        rill__sys_hooks_set(&fallback_hooks);
        CU_ASSERT_EQUAL(connect_run(loop, "127.0.0.1", port, NULL, &c), 0);
        rill__sys_hooks_set(NULL);
#ifdef HAVE_SOCK_CLOEXEC
        CU_ASSERT_EQUAL(fallback_calls, 2);
#endif
        CU_ASSERT_EQUAL(fallback_plain, 1);
        CU_ASSERT_EQUAL(c.calls, 1);
        CU_ASSERT_EQUAL(c.status, want[mode]);
        CU_ASSERT_EQUAL(c.s != NULL, mode == FALLBACK_OK);
        test_loop_finish(loop);
        close(lfd);
        CU_ASSERT_EQUAL(test_proc_fds(0), fds0);
    }
}

/* getsockopt(SO_ERROR) itself failing when the attempt turns writable: its errno is the
   attempt's error (netsim: the connect is under way until virtual time says otherwise). */
static rill__sys_hooks layered;
static int (*netsim_getsockopt)(int, int, int, void *, socklen_t *);
static int getsockopt_failures;

static int h_getsockopt_fails(int fd, int level, int name, void *val, socklen_t *len)
{
    if (level == SOL_SOCKET && name == SO_ERROR) {
        getsockopt_failures++;
        errno = ENOBUFS;
        return -1;
    }
    return netsim_getsockopt(fd, level, name, val, len);
}

static void test_getsockopt_fails(void)
{
    rill_loop *loop;
    rill_connect_opts o;
    char eb[256];
    int done = 0;
    conn c;

    netsim_begin(1000);
    netsim_add_addr(AF_INET, NETSIM_OK, 20);
    netsim_answer(AF_INET, 0);
    layered = *rill__sys_hooks_cur;
    netsim_getsockopt = layered.getsockopt;
    layered.getsockopt = h_getsockopt_fails;
    rill__sys_hooks_set(&layered);
    getsockopt_failures = 0;
    loop = rill_loop_new(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    memset(&o, 0, sizeof o);
    memset(&c, 0, sizeof c);
    o.family = AF_INET;
    o.errbuf = eb;
    o.errbuf_len = sizeof eb;
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect(loop, "netsim.invalid", 443, &o, on_conn, &c, NULL)), 0);
    netsim_run(loop, &c.calls, 10000);
    CU_ASSERT_EQUAL(c.calls, 1);
    CU_ASSERT_EQUAL(c.status, -ENOBUFS);
    CU_ASSERT_EQUAL(getsockopt_failures, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb, "127.0.0.1"));
    netsim_run(loop, &done, 1000);
    CU_ASSERT_EQUAL(rill_loop_free(loop), 0);
    CU_ASSERT_EQUAL(netsim_leaked(), 0);
    netsim_end();
}

/* interleave = 2: two IPv6 addresses first, then one of each family (RFC 8305 section 4,
   "First Address Family Count"). Every address hangs, so each attempt delay starts the
   next one and the order of connect() calls is the whole answer. */
static void test_interleave_count(void)
{
    static const int want[] = { 0, 1, 3, 2, 4, 5 };
    rill_loop *loop;
    rill_connect_opts o;
    int i, done = 0;
    conn c;

    netsim_begin(1000);
    for (i = 0; i < 3; i++)
        netsim_add_addr(AF_INET6, NETSIM_HANG, 0);
    for (i = 0; i < 3; i++)
        netsim_add_addr(AF_INET, NETSIM_HANG, 0);
    netsim_answer(AF_INET6, 0);
    netsim_answer(AF_INET, 0);
    loop = rill_loop_new(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    memset(&o, 0, sizeof o);
    memset(&c, 0, sizeof c);
    o.interleave = 2;
    o.happy_eyeballs_delay_ms = 20;
    o.timeout_ms = 500;
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect(loop, "netsim.invalid", 443, &o, on_conn, &c, NULL)), 0);
    netsim_run(loop, &c.calls, 10000);
    CU_ASSERT_EQUAL(c.calls, 1);
    CU_ASSERT_EQUAL(c.status, RILL_ETIMEDOUT);
    CU_ASSERT_EQUAL_FATAL(netsim_nsocks(), 6);
    for (i = 0; i < 6; i++)
        CU_ASSERT_EQUAL(netsim_sock_at((size_t)i)->addr, want[i]);
    netsim_run(loop, &done, 1000);
    CU_ASSERT_EQUAL(rill_loop_free(loop), 0);
    CU_ASSERT_EQUAL(netsim_leaked(), 0);
    netsim_end();
}

/* connect() interrupted by a signal (EINTR) is simply called again. */
static int eintr_calls;

static int h_connect_eintr(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (eintr_calls++ == 0) {
        errno = EINTR;
        return -1;
    }
    return connect(fd, sa, len);
}

static const rill__sys_hooks eintr_hooks = { .connect = h_connect_eintr };

static void test_connect_eintr(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    int port, lfd = listener(&port);
    conn c;

    eintr_calls = 0;
    rill__sys_hooks_set(&eintr_hooks);
    CU_ASSERT_EQUAL(connect_run(loop, "127.0.0.1", port, NULL, &c), 0);
    rill__sys_hooks_set(NULL);
    CU_ASSERT_EQUAL(eintr_calls, 2);
    CU_ASSERT_EQUAL(c.status, 0);
    test_loop_finish(loop);
    close(lfd);
}

/* local_port alone: the wildcard address with that port; the peer sees it. */
static void test_local_port_only(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    rill_connect_opts o;
    struct sockaddr_in peer, tmp;
    socklen_t len = sizeof tmp;
    int port, lfd = listener(&port), t, afd, k;
    conn c;

    memset(&o, 0, sizeof o);
    o.family = AF_INET;
    /* A free port: the kernel's choice, released (another process may take it in
       between: then another one). */
    for (k = 0; k < 5; k++) {
        t = socket(AF_INET, SOCK_STREAM, 0);
        memset(&tmp, 0, sizeof tmp);
        tmp.sin_family = AF_INET;
        tmp.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof tmp;
        CU_ASSERT_FATAL(bind(t, (struct sockaddr *)&tmp, sizeof tmp) == 0);
        CU_ASSERT_FATAL(getsockname(t, (struct sockaddr *)&tmp, &len) == 0);
        close(t);
        o.local_port = ntohs(tmp.sin_port);
        CU_ASSERT_EQUAL(connect_run(loop, "127.0.0.1", port, &o, &c), 0);
        if (c.status != -EADDRINUSE)
            break;
    }
    CU_ASSERT_EQUAL(c.status, 0);
    len = sizeof peer;
    afd = accept(lfd, (struct sockaddr *)&peer, &len);
    CU_ASSERT_FATAL(afd >= 0);
    CU_ASSERT_EQUAL(ntohs(peer.sin_port), o.local_port);
    close(afd);
    test_loop_finish(loop);
    close(lfd);
}

/* An errbuf of 8 bytes: the reason is cut there and stays terminated. */
static void test_errbuf_truncated(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    rill_connect_opts o;
    char eb[8 + 4];
    int port, lfd = listener(&port);
    conn c;

    memset(eb, 'Z', sizeof eb);
    memset(&o, 0, sizeof o);
    o.local_host = "127.0.0.1";
    o.local_port = port;   /* held by the listener */
    o.errbuf = eb;
    o.errbuf_len = 8;
    CU_ASSERT_EQUAL(connect_run(loop, "127.0.0.1", port, &o, &c), 0);
    CU_ASSERT_EQUAL(c.status, -EADDRINUSE);
    CU_ASSERT_EQUAL(strlen(eb), 7);
    CU_ASSERT_EQUAL(strncmp(eb, rill_strerror(-EADDRINUSE), 7), 0);
    CU_ASSERT_EQUAL(eb[8], 'Z');   /* nothing written past errbuf_len */
    test_loop_finish(loop);
    close(lfd);
}

/* Only AAAA answers (no records), A times out: the DNS failure is what the connect
   reports (RILL_EDNS), not "not found". */
static void test_a_timeout_aaaa_nodata(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop *loop;
    conn c;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(dns_responder_set_delay(d, "slowa.test", 1, 3000), 0);
    loop = dns_loop(dns_responder_addr(d));
    CU_ASSERT_EQUAL(connect_run(loop, "slowa.test", 80, NULL, &c), 0);
    CU_ASSERT_EQUAL(c.calls, 1);
    CU_ASSERT_EQUAL(c.status, RILL_EDNS);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* The only IPv4 address fails at once while AAAA is still on its way: the connect waits
   for AAAA instead of failing, and its address wins. */
static void test_ipv4_fails_before_aaaa(void)
{
    rill_loop *loop;
    rill_connect_opts o;
    int done = 0;
    conn c;

    netsim_begin(1000);
    netsim_add_addr(AF_INET, NETSIM_IMM_REFUSE, 0);
    netsim_add_addr(AF_INET6, NETSIM_OK, 5);
    netsim_answer(AF_INET, 0);
    netsim_answer(AF_INET6, 300);
    loop = rill_loop_new(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    memset(&o, 0, sizeof o);
    memset(&c, 0, sizeof c);
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect(loop, "netsim.invalid", 443, &o, on_conn, &c, NULL)), 0);
    netsim_run(loop, &c.calls, 10000);
    CU_ASSERT_EQUAL(c.calls, 1);
    CU_ASSERT_EQUAL(c.status, 0);
    CU_ASSERT_EQUAL_FATAL(netsim_nsocks(), 2);
    CU_ASSERT_EQUAL(netsim_sock_at(0)->addr, 0);
    CU_ASSERT_EQUAL(netsim_sock_at(1)->addr, 1);
    CU_ASSERT(netsim_now() >= 1300);
    netsim_run(loop, &done, 1000);
    CU_ASSERT_EQUAL(rill_loop_free(loop), 0);
    CU_ASSERT_EQUAL(netsim_leaked(), 0);
    netsim_end();
}

/* Descriptors below FD_SETSIZE all taken: the select backend refuses the next socket
   (-EMFILE from its add). The connect's attempt socket and c-ares's UDP socket both
   land there. The soft RLIMIT_NOFILE is raised only as far as needed, and restored. */
typedef struct fill {
    int fds[FD_SETSIZE];
    int n;
    struct rlimit old;
    int raised;
} fill;

static int fill_below_setsize(fill *f)
{
    int fd;

    f->n = 0;
    f->raised = 0;
    if (getrlimit(RLIMIT_NOFILE, &f->old) != 0)
        return -1;
    if (f->old.rlim_cur < FD_SETSIZE + 64) {
        struct rlimit r = f->old;
        if (r.rlim_max < FD_SETSIZE + 64)
            return -1;
        r.rlim_cur = FD_SETSIZE + 64;
        if (setrlimit(RLIMIT_NOFILE, &r) != 0)
            return -1;
        f->raised = 1;
    }
    /* dup() takes the lowest free number: at FD_SETSIZE - 1 every one below is taken. */
    while ((fd = dup(0)) >= 0) {
        if (fd >= FD_SETSIZE) {
            close(fd);
            break;
        }
        f->fds[f->n++] = fd;
        if (fd == FD_SETSIZE - 1)
            return 0;
    }
    return -1;
}

static void unfill(fill *f)
{
    while (f->n > 0)
        close(f->fds[--f->n]);
    if (f->raised)
        setrlimit(RLIMIT_NOFILE, &f->old);
}

static void test_select_refuses_high_descriptors(void)
{
    dns_responder *d;
    rill_loop *loop, *dloop;
    int port, lfd, fds0 = test_proc_fds(0);
    fill *f;
    lookup l;
    conn c;

    if (!test_have_backend(RILL_BACKEND_SELECT))
        return;
    f = calloc(1, sizeof *f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    d = dns_responder_start(AF_INET);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(dns_responder_add(d, "high.test", 1, "127.0.0.1", 0), 0);
    lfd = listener(&port);
    loop = test_loop_new(RILL_BACKEND_SELECT);
    dloop = dns_loop_on(dns_responder_addr(d), RILL_BACKEND_SELECT);
    if (fill_below_setsize(f) != 0) {
        /* RLIMIT_NOFILE's hard limit is below FD_SETSIZE here: nothing to test. */
        unfill(f);
        free(f);
        test_loop_finish(loop);
        test_loop_finish(dloop);
        close(lfd);
        dns_responder_stop(d);
        return;
    }

    CU_ASSERT_EQUAL(connect_run(loop, "127.0.0.1", port, NULL, &c), 0);
    CU_ASSERT_EQUAL(c.calls, 1);
    CU_ASSERT_EQUAL(c.status, -EMFILE);
    /* c-ares's socket goes unwatched: its query ends by the resolver's timeout. */
    CU_ASSERT_EQUAL(lookup_run(dloop, "high.test", AF_INET, 0, &l), 0);
    CU_ASSERT_EQUAL(l.calls, 1);
    CU_ASSERT_EQUAL(l.status, RILL_EDNS);
    CU_ASSERT(dns_responder_queries(d) >= 1);

    unfill(f);
    free(f);
    test_loop_finish(loop);
    test_loop_finish(dloop);
    close(lfd);
    dns_responder_stop(d);
    CU_ASSERT_EQUAL(test_proc_fds(0), fds0);
}

/* ------------------------------------------------------- allocation walks */

/* Fails each allocation of one connect in turn (the loop itself is made before arming):
   every run ends with exactly one error code from `ok`, or rill_connect's RILL_ENOMEM,
   and leaves no allocation and no descriptor behind. */
static void walk(const char *servers, const char *host, int port, const int *ok, size_t nok)
{
    unsigned long k, made, live0 = rill__alloc_live();
    int fds0 = test_proc_fds(0), enomem = 0, success = 0;

    for (k = 1; k < 200; k++) {
        rill_loop *loop = servers != NULL ? dns_loop(servers) : test_loop_new(RILL_BACKEND_AUTO);
        int rc, fine = 0;
        size_t i;
        conn c;

        rill__alloc_fail_at(k);
        rc = connect_run(loop, host, port, NULL, &c);
        made = rill__alloc_fail_at(0);
        if (rc != 0) {
            CU_ASSERT_EQUAL(rc, RILL_ENOMEM);
            CU_ASSERT_EQUAL(c.calls, 0);
            enomem++;
        } else {
            CU_ASSERT_EQUAL(c.calls, 1);
            for (i = 0; i < nok; i++)
                fine |= c.status == ok[i];
            CU_ASSERT_TRUE(fine);
            if (!fine)
                fprintf(stderr, "\nwalk %s: allocation %lu: status %s\n", host, k, rill_err_name(c.status));
            enomem += c.status == RILL_ENOMEM;
            success += c.status == 0;
        }
        test_loop_finish(loop);
        CU_ASSERT_EQUAL(rill__alloc_live(), live0);
        CU_ASSERT_EQUAL(test_proc_fds(0), fds0);
        if (made < k)
            break;   /* the connect made fewer than k allocations: every one was failed */
    }
    CU_ASSERT_TRUE(k < 200);
    CU_ASSERT_TRUE(enomem > 0);
    CU_ASSERT_TRUE(success > 0);
}

static void test_alloc_walk_numeric(void)
{
    static const int ok[] = { 0, RILL_ENOMEM };
    int port, lfd = listener(&port);
    walk(NULL, "127.0.0.1", port, ok, 2);
    close(lfd);
}

/* A name through c-ares: the watcher of its socket, the resolver's timer and the
   connect's own allocations. A watcher that could not be made leaves the query to its
   timeout, RILL_EDNS. */
static void test_alloc_walk_name(void)
{
    static const int ok[] = { 0, RILL_ENOMEM, RILL_EDNS };
    dns_responder *d = dns_responder_start(AF_INET);
    int port, lfd = listener(&port);

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(dns_responder_add(d, "walk.test", 1, "127.0.0.1", 0), 0);
    walk(dns_responder_addr(d), "walk.test", port, ok, 3);
    close(lfd);
    dns_responder_stop(d);
}

/* ------------------------------------------------------ hostile DNS answers */

static size_t put_rr(unsigned char *p, int type)
{
    static const unsigned char v4[4] = { 127, 0, 0, 1 };
    static const unsigned char v6[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
    size_t len = type == T_AAAA ? 16 : 4;
    p[0] = 0xc0; p[1] = 0x0c;                  /* the question's name */
    p[2] = 0; p[3] = (unsigned char)type;
    p[4] = 0; p[5] = 1;                        /* IN */
    p[6] = 0; p[7] = 0; p[8] = 0; p[9] = 60;   /* TTL */
    p[10] = 0; p[11] = (unsigned char)len;
    memcpy(p + 12, type == T_AAAA ? v6 : v4, len);
    return 12 + len;
}

/* An AAAA reply carrying `types` records: what c-ares parses as the answer. */
static void set_aaaa_reply(dns_responder *d, const int *types, size_t n)
{
    unsigned char pkt[256];
    size_t len = 12, i;

    memset(pkt, 0, 12);
    pkt[2] = 0x81; pkt[3] = 0x80;              /* response, RD, RA, NOERROR */
    pkt[5] = 1;                                /* one question (echoed) */
    pkt[7] = (unsigned char)n;
    for (i = 0; i < n; i++)
        len += put_rr(pkt + len, types[i]);
    CU_ASSERT_EQUAL(dns_responder_set_raw(d, T_AAAA, pkt, len, DNS_RAW_ECHO_QUESTION), 0);
}

/* Records of the wrong family in an AAAA answer are not IPv6 addresses: alone they are
   RILL_ENOTFOUND, next to a real AAAA record they are skipped. */
static void test_wrong_family_records(void)
{
    static const int only_a[] = { 1 }, mixed[] = { 1, T_AAAA, 1 };
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop *loop;
    lookup l;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    loop = dns_loop(dns_responder_addr(d));
    set_aaaa_reply(d, only_a, 1);
    CU_ASSERT_EQUAL(lookup_run(loop, "odd.test", AF_INET6, 0, &l), 0);
    CU_ASSERT_EQUAL(l.status, RILL_ENOTFOUND);
    CU_ASSERT_EQUAL(l.n, 0);
    set_aaaa_reply(d, mixed, 3);
    CU_ASSERT_EQUAL(lookup_run(loop, "odd2.test", AF_INET6, 0, &l), 0);
    CU_ASSERT_EQUAL(l.status, 0);
    CU_ASSERT_EQUAL(l.n, 1);
    CU_ASSERT_EQUAL(l.first.ss_family, AF_INET6);
    CU_ASSERT_EQUAL(ntohs(((struct sockaddr_in6 *)&l.first)->sin6_port), 80);
    CU_ASSERT(dns_responder_queries(d) >= 2);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* A truncated UDP answer (TC) sends c-ares to TCP on the same server: its socket is
   watched for writing while it connects and sends. The TCP server here accepts (in the
   kernel's backlog) and never answers, so the query ends by its timeout; what reached
   it is the length-prefixed query. */
/* A TCP listener on the responder's port (the UDP port's twin may be taken by some other
   connection: then another responder, another port). */
static int tcp_twin(dns_responder **out)
{
    int k;

    for (k = 0; k < 20; k++) {
        dns_responder *d = dns_responder_start(AF_INET);
        struct sockaddr_in sin;
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        CU_ASSERT_FATAL(fd >= 0);
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sin.sin_port = htons((uint16_t)dns_responder_port(d));
        if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 && listen(fd, 4) == 0) {
            *out = d;
            return fd;
        }
        close(fd);
        dns_responder_stop(d);
    }
    return -1;
}

static void test_truncated_answer_goes_tcp(void)
{
    unsigned char tc[12] = { 0, 0, 0x83, 0x80, 0, 1, 0, 0, 0, 0, 0, 0 };   /* QR TC RD RA */
    dns_responder *d = NULL;
    unsigned char got[64];
    rill_loop *loop;
    int tfd = tcp_twin(&d), afd, i;
    ssize_t n = -1;
    lookup l;

    CU_ASSERT_FATAL(tfd >= 0);
    CU_ASSERT_EQUAL(dns_responder_set_raw(d, 1, tc, sizeof tc, DNS_RAW_ECHO_QUESTION), 0);
    loop = dns_loop(dns_responder_addr(d));
    CU_ASSERT_EQUAL(lookup_run(loop, "big.test", AF_INET, 0, &l), 0);
    CU_ASSERT_EQUAL(l.calls, 1);
    CU_ASSERT_EQUAL(l.status, RILL_EDNS);
    afd = accept(tfd, NULL, NULL);
    CU_ASSERT_FATAL(afd >= 0);
    for (i = 0; i < 100 && n <= 0; i++) {
        n = recv(afd, got, sizeof got, MSG_DONTWAIT);
        if (n <= 0)
            usleep(2000);
    }
    /* Two length bytes, then the query: header and the question for big.test. */
    CU_ASSERT(n > 14);
    if (n > 14)
        CU_ASSERT_EQUAL((got[0] << 8 | got[1]), (int)n - 2);
    close(afd);
    close(tfd);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* A lookup nobody cancelled, still in c-ares when the loop is freed: c-ares ends it with
   ARES_EDESTRUCTION and the request goes without a callback. */
static void test_free_loop_with_query_inflight(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill__resolve_req *req = NULL;
    rill_loop *loop;
    lookup l;
    int i;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(dns_responder_set_behaviour(d, "drop.test", DNS_DROP), 0);
    loop = dns_loop(dns_responder_addr(d));
    memset(&l, 0, sizeof l);
    l.loop = loop;
    CU_ASSERT_EQUAL(rill__resolve(loop, "drop.test", 80, AF_INET, 0, on_lookup, &l, &req), 0);
    for (i = 0; i < 400 && dns_responder_queries(d) == 0; i++)
        usleep(5000);
    CU_ASSERT_EQUAL(dns_responder_queries(d), 1);
    CU_ASSERT_EQUAL(rill__resolve_inflight(loop), 1);
    CU_ASSERT_EQUAL(rill_loop_free(loop), 0);
    CU_ASSERT_EQUAL(l.calls, 0);
    dns_responder_stop(d);
}

/* Hooks installed without a resolver of their own: the real resolver and its cancel. */
static const rill__sys_hooks socket_only_hooks = { .socket = socket };

static void test_cancel_with_other_hooks(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop *loop;
    rill_connect_req *req = NULL;
    conn c;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(dns_responder_set_behaviour(d, "slow.test", DNS_DROP), 0);
    loop = dns_loop(dns_responder_addr(d));
    rill__sys_hooks_set(&socket_only_hooks);
    memset(&c, 0, sizeof c);
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect(loop, "slow.test", 80, NULL, on_conn, &c, &req)), 0);
    CU_ASSERT_EQUAL(rill__resolve_inflight(loop), 2);
    rill_connect_cancel(req);
    test_run_until(loop, &c.calls, 2000);
    rill__sys_hooks_set(NULL);
    CU_ASSERT_EQUAL(c.calls, 1);
    CU_ASSERT_EQUAL(c.status, RILL_ECANCELED);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* ------------------------------------------------------------------ tracing */

/* RILL_TRACE's lines for the resolver and the connect machine (each state change, with
   its reason), captured from stderr. */
static int trace_fd = -1, saved_stderr = -1, trace_was;
static FILE *trace_file;

static void trace_begin(void)
{
    fflush(stderr);
    trace_file = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(trace_file);
    trace_fd = fileno(trace_file);
    saved_stderr = dup(2);
    CU_ASSERT_FATAL(saved_stderr >= 0);
    dup2(trace_fd, 2);
    trace_was = rill__trace_on;
    rill__trace_on = 1;
}

/* Stops capturing; returns what was traced (static, NUL-terminated). */
static const char *trace_end(void)
{
    static char text[16384];
    size_t n;

    rill__trace_on = trace_was;
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    rewind(trace_file);
    n = fread(text, 1, sizeof text - 1, trace_file);
    text[n] = '\0';
    fclose(trace_file);
    return text;
}

static void test_trace_resolver(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill__resolve_req *req = NULL;
    rill_loop *loop;
    const char *t;
    lookup l, lc;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(dns_responder_add(d, "both.test", 1, "127.0.0.1", 0), 0);
    CU_ASSERT_EQUAL(dns_responder_add(d, "both.test", T_AAAA, "::1", 0), 0);
    CU_ASSERT_EQUAL(dns_responder_set_behaviour(d, "drop.test", DNS_DROP), 0);
    loop = dns_loop(dns_responder_addr(d));
    trace_begin();
    CU_ASSERT_EQUAL(lookup_run(loop, "both.test", AF_INET, 0, &l), 0);
    CU_ASSERT_EQUAL(l.status, 0);
    CU_ASSERT_EQUAL(lookup_run(loop, "both.test", AF_INET6, 0, &l), 0);
    CU_ASSERT_EQUAL(l.status, 0);
    CU_ASSERT_EQUAL(lookup_run(loop, "none.test", AF_INET6, 0, &l), 0);
    CU_ASSERT_EQUAL(l.status, RILL_ENOTFOUND);
    memset(&lc, 0, sizeof lc);
    lc.loop = loop;
    CU_ASSERT_EQUAL(rill__resolve(loop, "drop.test", 80, AF_INET, 0, on_lookup, &lc, &req), 0);
    rill__resolve_cancel(req);
    t = trace_end();
    CU_ASSERT_EQUAL(lc.calls, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "resolve QUERY -> DONE both.test A 1 addrs"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "resolve QUERY -> DONE both.test AAAA 1 addrs"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "resolve QUERY -> DONE none.test AAAA RILL_ENOTFOUND"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "resolve QUERY -> CANCELLED drop.test A"));
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* The connect machine's trace: the resolution delay and the attempt delay expiring, a
   failed attempt, the winner (netsim: A answers first, AAAA only after the delay). */
static void test_trace_connect(void)
{
    rill_loop *loop;
    rill_connect_opts o;
    const char *t;
    int done = 0;
    conn c;

    netsim_begin(1000);
    netsim_add_addr(AF_INET, NETSIM_REFUSE, 5);
    netsim_add_addr(AF_INET, NETSIM_HANG, 0);
    netsim_add_addr(AF_INET, NETSIM_OK, 5);
    netsim_answer(AF_INET, 0);
    netsim_answer(AF_INET6, 2000);
    loop = rill_loop_new(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    memset(&o, 0, sizeof o);
    memset(&c, 0, sizeof c);
    o.happy_eyeballs_delay_ms = 100;
    trace_begin();
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect(loop, "netsim.invalid", 443, &o, on_conn, &c, NULL)), 0);
    netsim_run(loop, &c.calls, 10000);
    t = trace_end();
    CU_ASSERT_EQUAL(c.calls, 1);
    CU_ASSERT_EQUAL(c.status, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "timer RES_DELAY -> EXPIRED resolution delay"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "timer ATTEMPTING -> EXPIRED attempt delay"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "attempt CONNECTING -> FAILED 127.0.0.1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "family=IPv4"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "resolve A -> ANSWERED ok 3 addrs"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "connect ATTEMPTING -> DONE"));
    netsim_run(loop, &done, 3000);
    CU_ASSERT_EQUAL(rill_loop_free(loop), 0);
    CU_ASSERT_EQUAL(netsim_leaked(), 0);
    netsim_end();
}

/* An attempt that cannot start, traced: the failure names its errno. */
static void test_trace_attempts(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    rill_connect_opts o;
    const char *t;
    int port, lfd = listener(&port);
    conn c;

    memset(&o, 0, sizeof o);
    o.local_host = "127.0.0.1";
    o.local_port = port;   /* held by the listener */
    trace_begin();
    CU_ASSERT_EQUAL(connect_run(loop, "127.0.0.1", port, &o, &c), 0);
    t = trace_end();
    CU_ASSERT_EQUAL(c.status, -EADDRINUSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "attempt NEW -> FAILED EADDRINUSE"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "connect ATTEMPTING -> FAILED EADDRINUSE"));
    test_loop_finish(loop);
    close(lfd);
}

int test_connect_errors_register(void)
{
    static const test_case cases[] = {
        { "connect: bad arguments", test_connect_bad_arguments },
        { "connect_unix/connect_sock: bad arguments", test_connect_unix_and_sock_bad_arguments },
        { "resolve: bad arguments", test_resolve_bad_arguments },
        { "dns_servers \"\" is RILL_EINVAL", test_empty_dns_servers },
        { "scoped IPv6 literals", test_scoped_literals },
        { "long name with AI_NUMERICHOST", test_long_name_numerichost },
        { "bind to a foreign local address", test_bind_fails },
        { "unix connect cancelled twice", test_unix_cancel_twice },
        { "socket() without SOCK_NONBLOCK: fallback", test_socket_fallback },
        { "getsockopt(SO_ERROR) fails", test_getsockopt_fails },
        { "interleave = 2", test_interleave_count },
        { "connect() EINTR is retried", test_connect_eintr },
        { "local_port alone", test_local_port_only },
        { "errbuf cut at errbuf_len", test_errbuf_truncated },
        { "A times out, AAAA has no data: RILL_EDNS", test_a_timeout_aaaa_nodata },
        { "IPv4 fails before AAAA answers", test_ipv4_fails_before_aaaa },
        { "select: descriptors above FD_SETSIZE", test_select_refuses_high_descriptors },
        { "allocation walk: numeric host", test_alloc_walk_numeric },
        { "allocation walk: name via c-ares", test_alloc_walk_name },
        { "AAAA answer with A records", test_wrong_family_records },
        { "truncated answer: c-ares goes to TCP", test_truncated_answer_goes_tcp },
        { "loop freed with a query in flight", test_free_loop_with_query_inflight },
        { "cancel with hooks but no resolver hook", test_cancel_with_other_hooks },
        { "trace: resolver states", test_trace_resolver },
        { "trace: connect delays and attempts", test_trace_connect },
        { "trace: an attempt that cannot start", test_trace_attempts },
        { NULL, NULL }
    };
    return test_add_suite("connect_errors", cases);
}
