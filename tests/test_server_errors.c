/* Server error paths: argument checks, allocation walks over new/bind/serve/close,
   getaddrinfo errors, an on_socket hook that closes the server or takes the shared
   port, given sockets misused, Unix path errors, and scripted accept storms through
   the accept/accept4 hooks of lib/syshooks.h (transient errors, ENOSYS, a refused
   descriptor, a pause that cannot arm its timer, memory running out at accept, in
   plain and in TLS servers). Every test checks that nothing leaks: rill_loop_free()
   returns 0, no rill allocation is left and no descriptor stays open. */
#include "support/testutil.h"
#include "support/streams.h"
#include "support/proc.h"
#include "support/certs.h"
#include "rill_private.h"
#include "stream.h"
#include "syshooks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* ------------------------------------------------------------ the server */

typedef struct ectx {
    rill_server *srv;
    int echo;                      /* on_client echoes; else it holds the stream */
    int clients;
    rill_stream *last;
    int last_fd_flags_ok;
    int errors, last_error, error_peer;
    int started, start_status;
    int closed, close_status;
    int sync_cb;                   /* a callback ran inside a TEST_CALL */
    int order[8], norder;          /* 1: start_serving callback, 2: close callback */
    uint64_t closed_at;
    int reenter;                   /* on_closed calls the API again */
    int re_close, re_abort, re_bind, re_start, re_forever, re_port;
    /* on_socket */
    int socket_calls, socket_v6;
    int close_in_hook;             /* close the server from on_socket */
    int block_v4;                  /* take the IPv4 port the first socket got: 1 once, 2 always */
    int blockers[16], nblockers;
    unsigned long fail_in_hook;    /* arm rill__alloc_fail_at after blocking */
} ectx;

static void e_hold_read(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    (void)s; (void)status; (void)data; (void)len; (void)ud;
}

static void e_on_client(rill_server *srv, rill_stream *s, void *ud)
{
    ectx *c = ud;
    int fl = fcntl(s->fd, F_GETFL), fdfl = fcntl(s->fd, F_GETFD);
    (void)srv;
    c->clients++;
    c->last = s;
    c->last_fd_flags_ok = fl >= 0 && (fl & O_NONBLOCK) && fdfl >= 0 && (fdfl & FD_CLOEXEC);
    rill_read(s, 65536, c->echo ? test_echo_read : e_hold_read, c);
}

static void e_on_error(rill_server *srv, int status, const struct sockaddr *peer, void *ud)
{
    ectx *c = ud;
    (void)srv;
    c->errors++;
    c->last_error = status;
    c->error_peer = peer != NULL;
}

static void e_on_started(rill_server *srv, int status, void *ud)
{
    ectx *c = ud;
    (void)srv;
    if (test_sync_check())
        c->sync_cb = 1;
    c->started++;
    c->start_status = status;
    if (c->norder < 8)
        c->order[c->norder++] = 1;
}

static void e_on_closed(rill_server *srv, int status, void *ud)
{
    ectx *c = ud;
    if (test_sync_check())
        c->sync_cb = 1;
    c->closed++;
    c->close_status = status;
    c->closed_at = test_now_ms();
    if (c->norder < 8)
        c->order[c->norder++] = 2;
    if (c->reenter) {
        c->re_close = rill_server_close(srv, e_on_closed, c);
        c->re_abort = rill_server_abort(srv, NULL, NULL);
        c->re_bind = rill_server_bind(srv);
        c->re_start = rill_server_start_serving(srv, e_on_started, c);
        c->re_forever = rill_server_serve_forever(srv, NULL, NULL);
        c->re_port = rill_server_port(srv);
    }
}

/* Closes srv and runs the loop until its callback ran (from the loop, once). */
static void e_close_wait(rill_loop *loop, rill_server *srv, ectx *c)
{
    int before = c->closed;
    CU_ASSERT_EQUAL(TEST_CALL(rill_server_close(srv, e_on_closed, c)), 0);
    {
        uint64_t end = test_now_ms() + 5000;
        while (c->closed == before && test_now_ms() < end)
            rill_loop_run_once(loop, 20);
    }
    CU_ASSERT_EQUAL(c->closed, before + 1);
    CU_ASSERT_FALSE(c->sync_cb);
}

/* ------------------------------------------------------------ leak checks */

typedef struct baseline {
    unsigned long live;
    int fds;
} baseline;

static rill_loop *begin(baseline *b)
{
    b->fds = test_proc_fds(0);
    b->live = rill__alloc_live();
    return test_loop_new(0);
}

static void finish(rill_loop *loop, const baseline *b)
{
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(rill__alloc_live(), b->live);
    CU_ASSERT_EQUAL(test_proc_fds(0), b->fds);
}

static int fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

/* ------------------------------------------------------------- clients */

static int connect_tcp_buf(const char *ip, int port, int rcvbuf)
{
    struct sockaddr_in in;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, ip, &in.sin_addr);
    if (connect(fd, (struct sockaddr *)&in, sizeof in) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int connect_tcp(int port)
{
    return connect_tcp_buf("127.0.0.1", port, 0);
}

/* A blocking round trip over fd: msg out, msg back; 1 when it came back whole. */
static int roundtrip(rill_loop *loop, int fd, const char *msg)
{
    size_t len = strlen(msg), got = 0;
    char buf[128];
    uint64_t end = test_now_ms() + 5000;

    if (fd < 0 || len > sizeof buf || write(fd, msg, len) != (ssize_t)len)
        return 0;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    while (got < len && test_now_ms() < end) {
        ssize_t n;
        rill_loop_run_once(loop, 20);
        n = read(fd, buf + got, len - got);
        if (n == 0)
            break;
        if (n > 0)
            got += (size_t)n;
    }
    return got == len && memcmp(buf, msg, len) == 0;
}

/* 1 when the server ended fd (EOF or reset) within the bound. */
static int peer_ended(rill_loop *loop, int fd)
{
    char buf[64];
    uint64_t end = test_now_ms() + 3000;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    while (test_now_ms() < end) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return 1;
        rill_loop_run_once(loop, 20);
    }
    return 0;
}

static int mk_tmpdir(char *dir, size_t dlen, char *path, size_t plen)
{
    snprintf(dir, dlen, "/tmp/rill-srverr-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, plen, "%s/s.sock", dir);
    return 0;
}

static int listening_socket(int *port)
{
    struct sockaddr_in in;
    socklen_t len = sizeof in;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&in, sizeof in) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&in, &len) < 0) {
        close(fd);
        return -1;
    }
    if (port != NULL)
        *port = ntohs(in.sin_port);
    return fd;
}

/* ------------------------------------------------------------ arguments */

static void test_getters_and_options(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server_opts o;
    rill_server *srv;
    ectx c;
    char buf[64], dir[64], path[96];
    int fd, pfd[2];

    memset(&c, 0, sizeof c);
    CU_ASSERT_EQUAL(rill_server_port(NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_server_socket(NULL, 0), RILL_EINVAL);
    strcpy(buf, "x");
    CU_ASSERT_EQUAL(rill_server_sockname(NULL, 0, buf, sizeof buf), RILL_EINVAL);
    CU_ASSERT_STRING_EQUAL(buf, "");
    CU_ASSERT_EQUAL(rill_server_sockname(NULL, 0, NULL, 0), RILL_EINVAL);
    strcpy(buf, "x");
    CU_ASSERT_EQUAL(rill_server_sockname(NULL, 0, buf, 0), RILL_EINVAL);
    CU_ASSERT_STRING_EQUAL(buf, "x");   /* no room: untouched */
    CU_ASSERT_PTR_NULL(rill_server_get_data(NULL));
    rill_server_set_data(NULL, &c);     /* harmless */
    CU_ASSERT_PTR_NULL(rill_server_loop(NULL));

    srv = rill_server_new(loop, "127.0.0.1", 0, NULL, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_PTR_EQUAL(rill_server_loop(srv), loop);
    rill_server_set_data(srv, &c);
    CU_ASSERT_PTR_EQUAL(rill_server_get_data(srv), &c);
    CU_ASSERT_EQUAL(rill_server_port(srv), RILL_EINVAL);      /* not bound yet */
    CU_ASSERT_EQUAL(rill_server_socket(srv, 0), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_server_bind(srv), 0);
    CU_ASSERT_EQUAL(rill_server_bind(srv), 0);                /* bound already: nothing to do */
    CU_ASSERT(rill_server_socket(srv, 0) >= 0);
    CU_ASSERT_EQUAL(rill_server_socket(srv, 1), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_server_sockname(srv, 1, buf, sizeof buf), RILL_EINVAL);
    CU_ASSERT(rill_server_port(srv) > 0);
    e_close_wait(loop, srv, &c);

    /* out-of-range options, one at a time */
#define EXPECT_NULL(call, err) do { errno = 0; CU_ASSERT_PTR_NULL(call); CU_ASSERT_EQUAL(errno, err); } while (0)
    memset(&o, 0, sizeof o);
    o.reuse_address = -2;
    EXPECT_NULL(rill_server_new(loop, "127.0.0.1", 0, &o, e_on_client, &c), EINVAL);
    o.reuse_address = 2;
    EXPECT_NULL(rill_server_new(loop, "127.0.0.1", 0, &o, e_on_client, &c), EINVAL);
    o.reuse_address = 0;
    o.reuse_port = -1;
    EXPECT_NULL(rill_server_new(loop, "127.0.0.1", 0, &o, e_on_client, &c), EINVAL);
    o.reuse_port = 2;
    EXPECT_NULL(rill_server_new(loop, "127.0.0.1", 0, &o, e_on_client, &c), EINVAL);
    o.reuse_port = 0;
    o.ssl_handshake_timeout_ms = -2;
    EXPECT_NULL(rill_server_new(loop, "127.0.0.1", 0, &o, e_on_client, &c), EINVAL);
    o.ssl_handshake_timeout_ms = 0;
    o.family = 99;
    EXPECT_NULL(rill_server_new(loop, "127.0.0.1", 0, &o, e_on_client, &c), EINVAL);
    o.family = AF_INET;
    EXPECT_NULL(rill_unix_server_new(loop, "/tmp/rill-never-bound", &o, e_on_client, &c), EINVAL);
    o.family = 0;
    o.flags = AI_CANONNAME;
    EXPECT_NULL(rill_unix_server_new(loop, "/tmp/rill-never-bound", &o, e_on_client, &c), EINVAL);
    o.flags = 0;
    /* given sockets: a negative one, a closed one, a pipe */
    fd = -1;
    o.socks = &fd;
    o.nsocks = 1;
    EXPECT_NULL(rill_server_new(loop, NULL, 0, &o, e_on_client, &c), EINVAL);
    CU_ASSERT_FATAL(pipe(pfd) == 0);
    fd = pfd[0];
    EXPECT_NULL(rill_server_new(loop, NULL, 0, &o, e_on_client, &c), ENOTSOCK);
    CU_ASSERT_TRUE(fd_open(pfd[0]));     /* refused: still the caller's */
    close(pfd[0]);
    close(pfd[1]);
    EXPECT_NULL(rill_server_new(loop, NULL, 0, &o, e_on_client, &c), EBADF);
    /* a Unix server takes a path or sockets, not both */
    fd = listening_socket(NULL);
    CU_ASSERT_FATAL(fd >= 0);
    EXPECT_NULL(rill_unix_server_new(loop, "/tmp/rill-never-bound", &o, e_on_client, &c), EINVAL);
    close(fd);
#undef EXPECT_NULL

    /* family AF_UNIX is a Unix server's own; a Unix server has no port */
    CU_ASSERT_FATAL(mk_tmpdir(dir, sizeof dir, path, sizeof path) == 0);
    memset(&o, 0, sizeof o);
    o.family = AF_UNIX;
    o.ssl_handshake_timeout_ms = -1;
    srv = rill_unix_server_new(loop, path, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_bind(srv), 0);
    CU_ASSERT_EQUAL(rill_server_port(srv), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_server_sockname(srv, 0, buf, sizeof buf), (int)strlen(path));
    CU_ASSERT_STRING_EQUAL(buf, path);
    e_close_wait(loop, srv, &c);
    rmdir(dir);
    finish(loop, &b);
}

/* A Unix listening socket given to rill_unix_server_new: served, its name from the socket. */
static void test_given_unix_socket(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server_opts o;
    rill_server *srv;
    struct sockaddr_un sun;
    ectx c;
    char dir[64], path[96], buf[128];
    int lfd, cfd;

    memset(&c, 0, sizeof c);
    c.echo = 1;
    CU_ASSERT_FATAL(mk_tmpdir(dir, sizeof dir, path, sizeof path) == 0);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(lfd >= 0);
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    CU_ASSERT_FATAL(bind(lfd, (struct sockaddr *)&sun, sizeof sun) == 0);
    memset(&o, 0, sizeof o);
    o.socks = &lfd;
    o.nsocks = 1;
    srv = rill_unix_server_new(loop, NULL, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_start_serving(srv, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_server_sockname(srv, 0, buf, sizeof buf), (int)strlen(path));
    CU_ASSERT_STRING_EQUAL(buf, path);
    cfd = socket(AF_UNIX, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(cfd >= 0);
    CU_ASSERT_FATAL(connect(cfd, (struct sockaddr *)&sun, sizeof sun) == 0);
    CU_ASSERT(roundtrip(loop, cfd, "given unix\n"));
    close(cfd);
    e_close_wait(loop, srv, &c);
    CU_ASSERT_FALSE(fd_open(lfd));   /* the server owned it */
    unlink(path);                     /* not the server's file: it did not bind it */
    rmdir(dir);
    finish(loop, &b);
}

/* ------------------------------------------------------- allocation walks */

enum { W_INET_ANY, W_INET_HOST, W_UNIX, W_GIVEN, W_COUNT };

/* One rill_server_new + bind with the n-th allocation failing; 1 when nothing failed. */
static int new_bind_step(rill_loop *loop, int kind, unsigned long n, const char *path)
{
    rill_server_opts o;
    rill_server *srv;
    ectx c;
    unsigned long made;
    int lfd = -1, rc;

    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    if (kind == W_GIVEN) {
        lfd = listening_socket(NULL);
        CU_ASSERT_FATAL(lfd >= 0);
        o.socks = &lfd;
        o.nsocks = 1;
    }
    rill__alloc_fail_at(n);
    errno = 0;
    srv = kind == W_UNIX ? rill_unix_server_new(loop, path, &o, e_on_client, &c)
        : rill_server_new(loop, kind == W_INET_HOST ? "127.0.0.1" : NULL, 0, &o, e_on_client, &c);
    if (srv == NULL) {
        made = rill__alloc_fail_at(0);
        CU_ASSERT_EQUAL(errno, ENOMEM);
        CU_ASSERT(made >= n);
        if (lfd >= 0) {
            CU_ASSERT_TRUE(fd_open(lfd));   /* refused: the caller's still */
            close(lfd);
        }
        return 0;
    }
    rc = rill_server_bind(srv);
    made = rill__alloc_fail_at(0);
    if (rc < 0) {
        CU_ASSERT_EQUAL(rc, RILL_ENOMEM);
        CU_ASSERT_FALSE(rill_server_is_bound(srv));
        CU_ASSERT_EQUAL(rill_server_nsockets(srv), 0);
    } else {
        CU_ASSERT_TRUE(rill_server_is_bound(srv));
        CU_ASSERT(made < n);
    }
    e_close_wait(loop, srv, &c);
    if (lfd >= 0)
        CU_ASSERT_FALSE(fd_open(lfd));   /* accepted: the server's, closed with it */
    return made < n;
}

static void test_alloc_walk_new_bind(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    char dir[64], path[96];
    unsigned long n;
    int kind, done;

    CU_ASSERT_FATAL(mk_tmpdir(dir, sizeof dir, path, sizeof path) == 0);
    for (kind = 0; kind < W_COUNT; kind++) {
        done = 0;
        for (n = 1; n < 64 && !done; n++)
            done = new_bind_step(loop, kind, n, path);
        CU_ASSERT_TRUE(done);
        CU_ASSERT(n > 2);   /* the walk did fail something */
    }
    rmdir(dir);
    finish(loop, &b);
}

/* The waiters of start_serving and close are allocated first: out of memory,
   nothing happens and nothing calls back. */
static void test_alloc_fail_waiters(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server *srv;
    ectx c;
    int dummy = 0, fd;

    memset(&c, 0, sizeof c);
    c.echo = 1;
    srv = rill_server_new(loop, "127.0.0.1", 0, NULL, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    rill__alloc_fail_at(1);
    CU_ASSERT_EQUAL(rill_server_start_serving(srv, e_on_started, &c), RILL_ENOMEM);
    rill__alloc_fail_at(0);
    CU_ASSERT_FALSE(rill_server_is_serving(srv));
    CU_ASSERT_FALSE(rill_server_is_bound(srv));
    CU_ASSERT_EQUAL(TEST_CALL(rill_server_start_serving(srv, e_on_started, &c)), 0);
    CU_ASSERT(test_run_until(loop, &c.started, 2000));
    CU_ASSERT_EQUAL(c.started, 1);
    CU_ASSERT_EQUAL(c.start_status, 0);
    CU_ASSERT_FALSE(c.sync_cb);
    rill__alloc_fail_at(1);
    CU_ASSERT_EQUAL(rill_server_close(srv, e_on_closed, &c), RILL_ENOMEM);
    rill__alloc_fail_at(0);
    CU_ASSERT_TRUE(rill_server_is_serving(srv));
    fd = connect_tcp(rill_server_port(srv));
    CU_ASSERT(roundtrip(loop, fd, "still up\n"));
    close(fd);
    test_run_until(loop, &dummy, 50);
    CU_ASSERT_EQUAL(c.closed, 0);
    e_close_wait(loop, srv, &c);
    finish(loop, &b);
}

/* --------------------------------------------------------- getaddrinfo */

static int bind_host(rill_loop *loop, const char *host, int family, int flags)
{
    rill_server_opts o;
    rill_server *srv;
    ectx c;
    int rc;

    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.family = family;
    o.flags = flags;
    srv = rill_server_new(loop, host, 0, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    rc = rill_server_bind(srv);
    if (rc < 0)
        CU_ASSERT_FALSE(rill_server_is_bound(srv));
    e_close_wait(loop, srv, &c);
    return rc;
}

/* A numeric host that is no address, or an address of the other family: RILL_ENOTFOUND,
   as rill_connect says for the same host (never the system's DNS: AI_NUMERICHOST). */
static void test_host_not_found(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server *srv;
    ectx c;
    rill_server_opts o;

    CU_ASSERT_EQUAL(bind_host(loop, "nope.invalid", AF_UNSPEC, AI_NUMERICHOST), RILL_ENOTFOUND);
    CU_ASSERT_EQUAL(bind_host(loop, "127.0.0.1.5", AF_INET, AI_NUMERICHOST), RILL_ENOTFOUND);
    CU_ASSERT_EQUAL(bind_host(loop, "::1", AF_INET, AI_NUMERICHOST), RILL_ENOTFOUND);
    CU_ASSERT_EQUAL(bind_host(loop, "127.0.0.1", AF_INET6, AI_NUMERICHOST), RILL_ENOTFOUND);

    /* the error reaches start_serving's callback, from the loop; serve_forever returns it */
    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.flags = AI_NUMERICHOST;
    srv = rill_server_new(loop, "nope.invalid", 0, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_serve_forever(srv, e_on_closed, &c), RILL_ENOTFOUND);
    CU_ASSERT_EQUAL(TEST_CALL(rill_server_start_serving(srv, e_on_started, &c)), 0);
    CU_ASSERT(test_run_until(loop, &c.started, 2000));
    CU_ASSERT_EQUAL(c.start_status, RILL_ENOTFOUND);
    CU_ASSERT_FALSE(c.sync_cb);
    CU_ASSERT_FALSE(rill_server_is_serving(srv));
    e_close_wait(loop, srv, &c);
    CU_ASSERT_EQUAL(c.closed, 1);   /* serve_forever's callback never ran */
    finish(loop, &b);
}

/* ------------------------------------------------------ on_socket hooks */

static int hook_close(int fd, int family, void *ud)
{
    ectx *c = ud;
    (void)fd;
    c->socket_calls++;
    if (family == AF_INET && c->close_in_hook)
        CU_ASSERT_EQUAL(rill_server_close(c->srv, e_on_closed, c), 0);
    return 0;
}

/* on_socket closes the server in the middle of bind: bind fails with RILL_ECLOSED,
   the socket already bound is closed, and the server still closes cleanly. */
static void test_on_socket_closes_server(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server_opts o;
    ectx c;

    memset(&o, 0, sizeof o);
    o.on_socket = hook_close;
    /* host NULL: [::] is bound first, then the IPv4 socket's hook closes */
    memset(&c, 0, sizeof c);
    c.close_in_hook = 1;
    c.srv = rill_server_new(loop, NULL, 0, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.srv);
    CU_ASSERT_EQUAL(rill_server_bind(c.srv), RILL_ECLOSED);
    CU_ASSERT_FALSE(rill_server_is_bound(c.srv));
    CU_ASSERT_EQUAL(rill_server_bind(c.srv), RILL_ECLOSED);
    CU_ASSERT(test_run_until(loop, &c.closed, 2000));
    CU_ASSERT_EQUAL(c.closed, 1);
    CU_ASSERT_EQUAL(c.close_status, 0);

    /* through start_serving: its callback gets the error, before the close's */
    memset(&c, 0, sizeof c);
    c.close_in_hook = 1;
    c.reenter = 1;
    c.srv = rill_server_new(loop, "127.0.0.1", 0, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.srv);
    CU_ASSERT_EQUAL(TEST_CALL(rill_server_start_serving(c.srv, e_on_started, &c)), 0);
    CU_ASSERT(test_run_until(loop, &c.closed, 2000));
    CU_ASSERT_FALSE(c.sync_cb);
    CU_ASSERT_EQUAL(c.started, 1);
    CU_ASSERT_EQUAL(c.start_status, RILL_ECLOSED);
    CU_ASSERT_EQUAL(c.norder, 2);
    CU_ASSERT_EQUAL(c.order[0], 1);
    CU_ASSERT_EQUAL(c.order[1], 2);
    /* a closed server, from its own close callback: everything says RILL_ECLOSED */
    CU_ASSERT_EQUAL(c.re_close, RILL_ECLOSED);
    CU_ASSERT_EQUAL(c.re_abort, RILL_ECLOSED);
    CU_ASSERT_EQUAL(c.re_bind, RILL_ECLOSED);
    CU_ASSERT_EQUAL(c.re_start, RILL_ECLOSED);
    CU_ASSERT_EQUAL(c.re_forever, RILL_ECLOSED);
    CU_ASSERT_EQUAL(c.re_port, RILL_EINVAL);
    CU_ASSERT_EQUAL(c.closed, 1);
    CU_ASSERT_EQUAL(c.started, 1);
    finish(loop, &b);
}

static int hook_block(int fd, int family, void *ud)
{
    ectx *c = ud;
    struct sockaddr_in in;
    int port, bfd, one = 1;
    (void)fd;
    c->socket_calls++;
    if (family == AF_INET6)
        c->socket_v6++;
    if (family != AF_INET || c->block_v4 == 0 || (port = rill_server_port(c->srv)) <= 0 || c->nblockers >= 16)
        return 0;
    /* Someone takes the IPv4 side of the port [::] just got (no SO_REUSEADDR: ours fails). */
    bfd = socket(AF_INET, SOCK_STREAM, 0);
    if (bfd < 0)
        return 0;
    /* listening with SO_REUSEADDR: a TIME_WAIT on the port cannot stop it, and it stops ours */
    setsockopt(bfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_port = htons((unsigned short)port);
    if (bind(bfd, (struct sockaddr *)&in, sizeof in) < 0 || listen(bfd, 1) < 0) {
        close(bfd);
        return 0;
    }
    c->blockers[c->nblockers++] = bfd;
    if (c->block_v4 == 1)
        c->block_v4 = 0;
    if (c->fail_in_hook)
        rill__alloc_fail_at(c->fail_in_hook);
    return 0;
}

static void drop_blockers(ectx *c)
{
    int i;
    for (i = 0; i < c->nblockers; i++)
        close(c->blockers[i]);
    c->nblockers = 0;
}

/* Port 0 on every interface: when the port [::] got is taken for IPv4, bind starts
   over on a new port (PORT_RETRIES times), and never leaves half a server. */
static void test_port_zero_taken_retries(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server_opts o;
    ectx c;
    int rc;

    memset(&o, 0, sizeof o);
    o.on_socket = hook_block;
    /* taken once: a second attempt binds both families on a fresh port */
    memset(&c, 0, sizeof c);
    c.block_v4 = 1;
    c.srv = rill_server_new(loop, NULL, 0, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.srv);
    rc = rill_server_bind(c.srv);
    if (c.socket_v6 == 0) {
        CU_PASS("skipped: no IPv6 on this host");
        drop_blockers(&c);
        e_close_wait(loop, c.srv, &c);
        finish(loop, &b);
        return;
    }
    /* another process may take a port too: each attempt costs two hook calls */
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(c.nblockers, 1);
    CU_ASSERT(c.socket_calls >= 4 && c.socket_calls % 2 == 0);
    CU_ASSERT_EQUAL(rill_server_nsockets(c.srv), 2);
    CU_ASSERT(rill_server_port(c.srv) > 0);
    drop_blockers(&c);
    e_close_wait(loop, c.srv, &c);

    /* taken every time: -EADDRINUSE after every retry, nothing bound */
    memset(&c, 0, sizeof c);
    c.block_v4 = 2;
    c.srv = rill_server_new(loop, NULL, 0, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.srv);
    CU_ASSERT_EQUAL(rill_server_bind(c.srv), -EADDRINUSE);
    CU_ASSERT_EQUAL(c.socket_calls, 16);
    CU_ASSERT(c.nblockers >= 1 && c.nblockers <= 8);
    CU_ASSERT_FALSE(rill_server_is_bound(c.srv));
    drop_blockers(&c);
    e_close_wait(loop, c.srv, &c);

    /* and no memory for the next attempt: RILL_ENOMEM, nothing bound */
    memset(&c, 0, sizeof c);
    c.block_v4 = 1;
    c.fail_in_hook = 1;
    c.srv = rill_server_new(loop, NULL, 0, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.srv);
    CU_ASSERT_EQUAL(rill_server_bind(c.srv), RILL_ENOMEM);
    CU_ASSERT(rill__alloc_fail_at(0) >= 1);
    CU_ASSERT_EQUAL(c.socket_calls, 2);
    CU_ASSERT_FALSE(rill_server_is_bound(c.srv));
    drop_blockers(&c);
    CU_ASSERT_EQUAL(rill_server_bind(c.srv), 0);   /* nothing was left behind */
    CU_ASSERT_EQUAL(rill_server_nsockets(c.srv), 2);
    e_close_wait(loop, c.srv, &c);
    finish(loop, &b);
}

/* ------------------------------------------------------ given sockets */

static void test_given_sockets_misused(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server_opts o;
    rill_server *srv;
    ectx c;
    char buf[64];
    int lfd, cfd, port, pfd[2];

    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.socks = &lfd;
    o.nsocks = 1;

    /* never bound: the server still owns the socket and closes it */
    lfd = listening_socket(NULL);
    CU_ASSERT_FATAL(lfd >= 0);
    srv = rill_server_new(loop, NULL, 0, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    e_close_wait(loop, srv, &c);
    CU_ASSERT_FALSE(fd_open(lfd));

    /* a connected stream socket is no listening socket: listen fails, -EINVAL */
    lfd = listening_socket(&port);
    CU_ASSERT_FATAL(lfd >= 0);
    cfd = connect_tcp(port);
    CU_ASSERT_FATAL(cfd >= 0);
    {
        int afd = accept(lfd, NULL, NULL);
        CU_ASSERT_FATAL(afd >= 0);
        close(lfd);
        lfd = afd;
    }
    srv = rill_server_new(loop, NULL, 0, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_start_serving(srv, NULL, NULL), -EINVAL);
    CU_ASSERT_FALSE(rill_server_is_serving(srv));
    e_close_wait(loop, srv, &c);
    CU_ASSERT_FALSE(fd_open(lfd));
    close(cfd);

    /* closed by the user after new: bind says -EBADF, the close is still clean */
    lfd = listening_socket(NULL);
    CU_ASSERT_FATAL(lfd >= 0);
    srv = rill_server_new(loop, NULL, 0, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    close(lfd);
    CU_ASSERT_EQUAL(rill_server_bind(srv), -EBADF);
    CU_ASSERT_FALSE(rill_server_is_bound(srv));
    CU_ASSERT_EQUAL(rill_server_start_serving(srv, NULL, NULL), -EBADF);
    e_close_wait(loop, srv, &c);

    /* replaced by a pipe: no address to read, listen says -ENOTSOCK */
    lfd = listening_socket(NULL);
    CU_ASSERT_FATAL(lfd >= 0);
    srv = rill_server_new(loop, NULL, 0, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_FATAL(pipe(pfd) == 0);
    CU_ASSERT_FATAL(dup2(pfd[0], lfd) == lfd);
    close(pfd[0]);
    CU_ASSERT_EQUAL(rill_server_bind(srv), 0);
    CU_ASSERT_EQUAL(rill_server_nsockets(srv), 1);
    CU_ASSERT_EQUAL(rill_server_sockname(srv, 0, buf, sizeof buf), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_server_port(srv), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_server_start_serving(srv, NULL, NULL), -ENOTSOCK);
    e_close_wait(loop, srv, &c);
    CU_ASSERT_FALSE(fd_open(lfd));
    close(pfd[1]);
    finish(loop, &b);
}

/* --------------------------------------------------------------- Unix */

static void test_unix_path_errors(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server *srv;
    ectx c;
    char dir[64], path[96], other[112];
    struct sockaddr_un sun;
    struct stat st;
    int fd;

    memset(&c, 0, sizeof c);
    CU_ASSERT_FATAL(mk_tmpdir(dir, sizeof dir, path, sizeof path) == 0);

    /* a directory that does not exist */
    snprintf(other, sizeof other, "%s/no/such.sock", dir);
    srv = rill_unix_server_new(loop, other, NULL, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_bind(srv), -ENOENT);
    CU_ASSERT_FALSE(rill_server_is_bound(srv));
    e_close_wait(loop, srv, &c);

    /* a regular file: serve_forever returns the error, its callback never runs */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    memset(&c, 0, sizeof c);
    srv = rill_unix_server_new(loop, path, NULL, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_serve_forever(srv, e_on_closed, &c), -EADDRINUSE);
    e_close_wait(loop, srv, &c);
    CU_ASSERT_EQUAL(c.closed, 1);
    unlink(path);

    /* a stale socket we may not remove: the unlink error, and the file stays */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sun, sizeof sun) == 0);
    close(fd);
    memset(&c, 0, sizeof c);
    srv = rill_unix_server_new(loop, path, NULL, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    {
        uid_t euid = geteuid();
        int rc;
        /* root ignores permissions: drop to nobody for the call (real uid 0 takes it back) */
        CU_ASSERT_FATAL(chmod(dir, euid == 0 ? 0755 : 0500) == 0);
        if (euid == 0)
            CU_ASSERT_FATAL(seteuid(65534) == 0);
        rc = rill_server_bind(srv);
        if (euid == 0)
            CU_ASSERT_FATAL(seteuid(0) == 0);
        chmod(dir, 0700);
        CU_ASSERT_EQUAL(rc, -EACCES);
    }
    CU_ASSERT_FALSE(rill_server_is_bound(srv));
    CU_ASSERT_EQUAL(lstat(path, &st), 0);
    e_close_wait(loop, srv, &c);

    /* bound, then another socket takes the path: the close leaves that one alone */
    memset(&c, 0, sizeof c);
    srv = rill_unix_server_new(loop, path, NULL, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_bind(srv), 0);   /* the stale file removed this time */
    CU_ASSERT_EQUAL(unlink(path), 0);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sun, sizeof sun) == 0);
    e_close_wait(loop, srv, &c);
    CU_ASSERT_EQUAL(lstat(path, &st), 0);
    CU_ASSERT(S_ISSOCK(st.st_mode));
    close(fd);
    unlink(path);

    /* bound, then a regular file takes the path: the close leaves it too */
    memset(&c, 0, sizeof c);
    srv = rill_unix_server_new(loop, path, NULL, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_bind(srv), 0);
    CU_ASSERT_EQUAL(unlink(path), 0);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);   /* and a regular file in its place */
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    e_close_wait(loop, srv, &c);
    CU_ASSERT_EQUAL(lstat(path, &st), 0);
    unlink(path);
    rmdir(dir);
    finish(loop, &b);
}

/* ------------------------------------------------------- accept storms */

enum { A_PASS = 0, A_ZEROLEN = -1, A_BADFD = -2, A_BADFD_NOPEER = -3, A_ARM = -4, A_EMFILE_ARM = -5 };

static struct storm {
    rill_loop *loop;
    int script[200], n, pos;
    int calls, plain_calls;
    unsigned long polls[200];
    uint64_t at[200];
    int enosys;
    unsigned long arm_n;
    int armed, settled;
    unsigned long made;
} st;

static void storm_reset(rill_loop *loop)
{
    memset(&st, 0, sizeof st);
    st.loop = loop;
}

static int bad_fd(void)
{
    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0)
        close(fd);
    return fd;
}

static int real_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int r = accept(fd, addr, len);
    if (r >= 0 && (flags & SOCK_NONBLOCK))
        fcntl(r, F_SETFL, fcntl(r, F_GETFL) | O_NONBLOCK);
    if (r >= 0 && (flags & SOCK_CLOEXEC))
        fcntl(r, F_SETFD, FD_CLOEXEC);
    return r;
}

static int storm_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int ent = A_PASS, r;

    if (st.calls < 200) {
        st.polls[st.calls] = st.loop->npolls;
        st.at[st.calls] = test_now_ms();
    }
    st.calls++;
    if (st.armed) {   /* the armed accept's serve_client has returned */
        st.made = rill__alloc_fail_at(0);
        st.armed = 0;
        st.settled = 1;
    }
    if (st.enosys) {
        errno = ENOSYS;
        return -1;
    }
    if (st.pos < st.n)
        ent = st.script[st.pos++];
    if (ent > 0) {
        errno = ent;
        return -1;
    }
    if (ent == A_EMFILE_ARM) {
        rill__alloc_fail_at(1);
        st.armed = 1;
        errno = EMFILE;
        return -1;
    }
    if (ent == A_BADFD || ent == A_BADFD_NOPEER) {
        struct sockaddr_in in;
        memset(&in, 0, sizeof in);
        in.sin_family = AF_INET;
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        memcpy(addr, &in, sizeof in);
        *len = ent == A_BADFD ? (socklen_t)sizeof in : 0;
        return bad_fd();
    }
    r = real_accept(fd, addr, len, flags);
    if (r >= 0 && ent == A_ZEROLEN)
        *len = 0;
    if (r >= 0 && ent == A_ARM) {
        rill__alloc_fail_at(st.arm_n);
        st.armed = 1;
    }
    return r;
}

static int storm_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    st.plain_calls++;
#ifndef HAVE_ACCEPT4
    /* Built without accept4, the server's only accept: it follows the script. */
    if (!st.enosys)
        return storm_accept4(fd, addr, len, 0);
#endif
    return accept(fd, addr, len);   /* no flags: the stream must set them */
}

static rill__sys_hooks storm_hooks;

static void storm_install(void)
{
    memset(&storm_hooks, 0, sizeof storm_hooks);
    storm_hooks.accept = storm_accept;
    storm_hooks.accept4 = storm_accept4;
    rill__sys_hooks_set(&storm_hooks);
}

static rill_server *storm_server(rill_loop *loop, ectx *c, const rill_server_opts *given)
{
    rill_server_opts o;
    rill_server *srv;

    if (given != NULL)
        o = *given;
    else
        memset(&o, 0, sizeof o);
    o.on_error = e_on_error;
    srv = rill_server_new(loop, "127.0.0.1", 0, &o, e_on_client, c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL_FATAL(rill_server_start_serving(srv, NULL, NULL), 0);
    c->srv = srv;
    return srv;
}

static int run_until_count(rill_loop *loop, const int *v, int want, int ms)
{
    uint64_t end = test_now_ms() + (uint64_t)ms;
    while (*v < want && test_now_ms() < end)
        rill_loop_run_once(loop, 20);
    return *v >= want;
}

/* Connections that went away before accept are skipped silently; EAGAIN ends the
   batch; a peer without an address is served too. */
static void test_accept_storm_transient(void)
{
    static const int errs[] = {
        EINTR, ECONNABORTED, EPROTO, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, EHOSTUNREACH,
        EOPNOTSUPP, ENETUNREACH,
#ifdef ENONET
        ENONET,
#endif
    };
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server *srv;
    ectx c;
    int fds[3], i, port;

    memset(&c, 0, sizeof c);
    c.echo = 1;
    srv = storm_server(loop, &c, NULL);
    port = rill_server_port(srv);
    storm_reset(loop);
    for (i = 0; i < (int)(sizeof errs / sizeof errs[0]); i++)
        st.script[st.n++] = errs[i];
    st.script[st.n++] = A_PASS;
    st.script[st.n++] = EINTR;
    st.script[st.n++] = A_ZEROLEN;
    st.script[st.n++] = EAGAIN;
    for (i = 0; i < 3; i++) {
        fds[i] = connect_tcp(port);
        CU_ASSERT_FATAL(fds[i] >= 0);
    }
    storm_install();
    CU_ASSERT(run_until_count(loop, &c.clients, 3, 3000));
    rill__sys_hooks_set(NULL);
    CU_ASSERT_EQUAL(st.pos, st.n);
    CU_ASSERT_EQUAL(c.errors, 0);
    CU_ASSERT_EQUAL(c.clients, 3);
    CU_ASSERT_TRUE(c.last_fd_flags_ok);
    for (i = 0; i < 3; i++) {
        CU_ASSERT(roundtrip(loop, fds[i], "storm\n"));
        close(fds[i]);
    }
    CU_ASSERT_TRUE(rill_server_is_serving(srv));
    e_close_wait(loop, srv, &c);
    finish(loop, &b);
}

/* One readiness event accepts at most 64 connections: a storm of EINTR gives the
   loop a turn after each batch. */
static void test_accept_storm_batches(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server *srv;
    ectx c;
    int fd, i;

    memset(&c, 0, sizeof c);
    c.echo = 1;
    srv = storm_server(loop, &c, NULL);
    storm_reset(loop);
    for (i = 0; i < 150; i++)
        st.script[st.n++] = EINTR;
    fd = connect_tcp(rill_server_port(srv));
    CU_ASSERT_FATAL(fd >= 0);
    storm_install();
    CU_ASSERT(run_until_count(loop, &c.clients, 1, 3000));
    rill__sys_hooks_set(NULL);
    CU_ASSERT_EQUAL(c.errors, 0);
    CU_ASSERT(st.calls >= 151);
    CU_ASSERT_EQUAL(st.polls[63], st.polls[0]);
    CU_ASSERT(st.polls[64] > st.polls[63]);
    CU_ASSERT_EQUAL(st.polls[127], st.polls[64]);
    CU_ASSERT(st.polls[128] > st.polls[127]);
    CU_ASSERT(roundtrip(loop, fd, "after the storm\n"));
    close(fd);
    e_close_wait(loop, srv, &c);
    finish(loop, &b);
}

/* accept4 missing at run time (ENOSYS): plain accept, and the stream sets the flags. */
static void test_accept4_enosys_falls_back(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server *srv;
    ectx c;
    int fd;

    memset(&c, 0, sizeof c);
    c.echo = 1;
    srv = storm_server(loop, &c, NULL);
    storm_reset(loop);
    st.enosys = 1;
    fd = connect_tcp(rill_server_port(srv));
    CU_ASSERT_FATAL(fd >= 0);
    storm_install();
    CU_ASSERT(run_until_count(loop, &c.clients, 1, 3000));
    CU_ASSERT(roundtrip(loop, fd, "plain accept\n"));
    rill__sys_hooks_set(NULL);
#ifdef HAVE_ACCEPT4
    CU_ASSERT(st.calls >= 1);
#endif
    CU_ASSERT(st.plain_calls >= 1);
    CU_ASSERT_EQUAL(c.errors, 0);
    CU_ASSERT_TRUE(c.last_fd_flags_ok);
    close(fd);
    e_close_wait(loop, srv, &c);
    finish(loop, &b);
}

/* A descriptor the stream refuses (not EMFILE): reported with its peer, or none,
   and the batch goes on at once, no pause. */
static void test_accept_refused_descriptor(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server *srv;
    ectx c;
    int fd;

    memset(&c, 0, sizeof c);
    c.echo = 1;
    srv = storm_server(loop, &c, NULL);
    storm_reset(loop);
    st.script[st.n++] = A_BADFD;
    st.script[st.n++] = A_BADFD_NOPEER;
    st.script[st.n++] = A_PASS;
    fd = connect_tcp(rill_server_port(srv));
    CU_ASSERT_FATAL(fd >= 0);
    storm_install();
    CU_ASSERT(run_until_count(loop, &c.clients, 1, 3000));
    rill__sys_hooks_set(NULL);
    CU_ASSERT_EQUAL(c.errors, 2);
    CU_ASSERT_EQUAL(c.last_error, -EBADF);
    CU_ASSERT_FALSE(c.error_peer);
    CU_ASSERT_EQUAL(st.polls[2], st.polls[0]);   /* the same batch */
    CU_ASSERT(roundtrip(loop, fd, "next one\n"));
    close(fd);
    e_close_wait(loop, srv, &c);
    finish(loop, &b);
}

/* ENOBUFS pauses for a second; start_serving while paused is a no-op that succeeds. */
static void test_accept_enobufs_pauses(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server *srv;
    ectx c;
    int fd;

    memset(&c, 0, sizeof c);
    c.echo = 1;
    srv = storm_server(loop, &c, NULL);
    storm_reset(loop);
    st.script[st.n++] = ENOBUFS;
    fd = connect_tcp(rill_server_port(srv));
    CU_ASSERT_FATAL(fd >= 0);
    storm_install();
    CU_ASSERT(run_until_count(loop, &c.errors, 1, 3000));
    CU_ASSERT_EQUAL(c.last_error, -ENOBUFS);
    CU_ASSERT_FALSE(c.error_peer);
    CU_ASSERT_TRUE(rill_server_is_serving(srv));   /* paused counts as serving */
    CU_ASSERT_EQUAL(rill_server_start_serving(srv, e_on_started, &c), 0);
    CU_ASSERT(run_until_count(loop, &c.clients, 1, 3000));
    rill__sys_hooks_set(NULL);
    CU_ASSERT_EQUAL(c.started, 1);
    CU_ASSERT_EQUAL(c.start_status, 0);
    CU_ASSERT(st.calls >= 2);
    CU_ASSERT(st.at[1] - st.at[0] >= 900);   /* it waited instead of spinning */
    CU_ASSERT(roundtrip(loop, fd, "resumed\n"));
    close(fd);
    e_close_wait(loop, srv, &c);
    finish(loop, &b);
}

/* No memory for the accepted stream: the connection is dropped (its peer sees the
   end), RILL_ENOMEM goes to on_error with the peer, and accepting pauses. */
static void test_accept_no_memory_pauses(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server *srv;
    ectx c;
    int fd, fd2;

    memset(&c, 0, sizeof c);
    c.echo = 1;
    srv = storm_server(loop, &c, NULL);
    storm_reset(loop);
    st.script[st.n++] = A_ARM;
    st.arm_n = 1;
    fd = connect_tcp(rill_server_port(srv));
    CU_ASSERT_FATAL(fd >= 0);
    storm_install();
    CU_ASSERT(run_until_count(loop, &c.errors, 1, 3000));
    CU_ASSERT_EQUAL(c.last_error, RILL_ENOMEM);
    CU_ASSERT_TRUE(c.error_peer);
    CU_ASSERT_EQUAL(c.clients, 0);
    CU_ASSERT(peer_ended(loop, fd));
    close(fd);
    fd2 = connect_tcp(rill_server_port(srv));
    CU_ASSERT_FATAL(fd2 >= 0);
    CU_ASSERT(run_until_count(loop, &c.clients, 1, 3000));
    rill__sys_hooks_set(NULL);
    CU_ASSERT(st.at[1] - st.at[0] >= 900);
    CU_ASSERT(roundtrip(loop, fd2, "after the pause\n"));
    close(fd2);
    e_close_wait(loop, srv, &c);
    finish(loop, &b);
}

/* --------------------------------------------------- start and close faults */

static void idle_io(rill__io *io, int revents) { (void)io; (void)revents; }

/* Polling the listening sockets fails part way (the slot table cannot grow for the
   second one): start_serving returns RILL_ENOMEM with none polled, and works later. */
static void test_watch_fails_on_start(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server *srv;
    rill__io ios[200];
    ectx c;
    int fds[200][2], nio = 0, i, rc = -1, failed = 0, fd;
    unsigned long n;

    memset(&c, 0, sizeof c);
    c.echo = 1;
    srv = rill_server_new(loop, NULL, 0, NULL, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL_FATAL(rill_server_bind(srv), 0);
    /* exactly one slot left before the table must grow */
    while (nio < 200 && !(loop->nfree == 0 && loop->nslots + 1 == loop->capslots) && pipe(fds[nio]) == 0) {
        rill__io_init(&ios[nio], fds[nio][0], idle_io);
        CU_ASSERT_EQUAL(rill__io_start(loop, &ios[nio], RILL_READABLE), 0);
        nio++;
    }
    CU_ASSERT(loop->nfree == 0 && loop->nslots + 1 == loop->capslots);
    for (n = 1; n < 16; n++) {
        rill__alloc_fail_at(n);
        rc = rill_server_start_serving(srv, NULL, NULL);
        rill__alloc_fail_at(0);
        if (rc == 0)
            break;
        failed++;
        CU_ASSERT_EQUAL(rc, RILL_ENOMEM);
        CU_ASSERT_FALSE(rill_server_is_serving(srv));
        CU_ASSERT_TRUE(rill_server_is_bound(srv));
    }
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(failed >= 1);
    CU_ASSERT_TRUE(rill_server_is_serving(srv));
    for (i = 0; i < nio; i++) {
        rill__io_stop(loop, &ios[i]);
        close(fds[i][0]);
        close(fds[i][1]);
    }
    fd = connect_tcp(rill_server_port(srv));
    CU_ASSERT(roundtrip(loop, fd, "watched at last\n"));
    close(fd);
    e_close_wait(loop, srv, &c);
    finish(loop, &b);
}

static char *pattern(size_t n)
{
    char *p = malloc(n);
    size_t i;
    if (p != NULL)
        for (i = 0; i < n; i++)
            p[i] = (char)('a' + i % 26);
    return p;
}

/* Close after abort, and abort twice: each callback runs once, status 0. */
static void test_close_after_abort(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server *srv;
    ectx c, c2, c3;
    int fd;

    memset(&c, 0, sizeof c);
    memset(&c2, 0, sizeof c2);
    memset(&c3, 0, sizeof c3);
    srv = storm_server(loop, &c, NULL);
    fd = connect_tcp(rill_server_port(srv));
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(run_until_count(loop, &c.clients, 1, 2000));
    CU_ASSERT_EQUAL(rill_server_abort(srv, e_on_closed, &c), 0);
    CU_ASSERT_EQUAL(rill_server_abort(srv, e_on_closed, &c2), 0);
    CU_ASSERT_EQUAL(rill_server_close(srv, e_on_closed, &c3), 0);
    CU_ASSERT(run_until_count(loop, &c3.closed, 1, 3000));
    CU_ASSERT_EQUAL(c.closed, 1);
    CU_ASSERT_EQUAL(c2.closed, 1);
    CU_ASSERT_EQUAL(c3.closed, 1);
    CU_ASSERT_EQUAL(c.close_status, 0);
    CU_ASSERT_EQUAL(c3.close_status, 0);
    CU_ASSERT(peer_ended(loop, fd));
    close(fd);
    finish(loop, &b);
}


/* ------------------------------------------------------ more bind errors */

/* Runs bind on a fresh server and closes it; returns bind's status. */
static int bind_opts(rill_loop *loop, const char *host, int port, const rill_server_opts *o, size_t *nsocks)
{
    rill_server *srv;
    ectx c;
    int rc;

    memset(&c, 0, sizeof c);
    srv = rill_server_new(loop, host, port, o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    rc = rill_server_bind(srv);
    if (nsocks != NULL)
        *nsocks = rill_server_nsockets(srv);
    if (rc < 0)
        CU_ASSERT_FALSE(rill_server_is_bound(srv));
    e_close_wait(loop, srv, &c);
    return rc;
}

/* Addresses this host does not have, one family of the wildcards, SO_REUSEADDR off,
   and a fixed port whose IPv4 side is taken: each binds or fails as a whole. */
static void test_bind_address_errors(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server_opts o;
    struct sockaddr_in in;
    socklen_t len = sizeof in;
    size_t n;
    int bfd, port;

    memset(&o, 0, sizeof o);
    o.flags = AI_NUMERICHOST;
    o.flags = 0;
    o.family = AF_INET;
    CU_ASSERT_EQUAL(bind_opts(loop, NULL, 0, &o, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    o.family = AF_INET6;
    CU_ASSERT_EQUAL(bind_opts(loop, NULL, 0, &o, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    o.family = AF_UNSPEC;
    o.reuse_address = -1;
    CU_ASSERT_EQUAL(bind_opts(loop, "127.0.0.1", 0, &o, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    o.reuse_address = 0;

    /* someone holds 0.0.0.0:port: [::]:port binds, the IPv4 socket cannot, nothing stays */
    bfd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(bfd >= 0);
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    CU_ASSERT_FATAL(bind(bfd, (struct sockaddr *)&in, sizeof in) == 0);
    CU_ASSERT_FATAL(getsockname(bfd, (struct sockaddr *)&in, &len) == 0);
    port = ntohs(in.sin_port);
    CU_ASSERT_EQUAL(bind_opts(loop, NULL, port, &o, &n), -EADDRINUSE);
    CU_ASSERT_EQUAL(n, 0);
    close(bfd);
    finish(loop, &b);
}

/* No descriptor left (RLIMIT_NOFILE lowered to the next free number, then restored):
   bind says -EMFILE and leaves nothing open. */
static void test_bind_emfile(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    struct rlimit saved;
    char dir[64], path[96];
    rill_server *tcp, *un;
    ectx c1, c2;
    int rc_tcp, rc_un;

    memset(&c1, 0, sizeof c1);
    memset(&c2, 0, sizeof c2);
    CU_ASSERT_FATAL(mk_tmpdir(dir, sizeof dir, path, sizeof path) == 0);
    tcp = rill_server_new(loop, "127.0.0.1", 0, NULL, e_on_client, &c1);
    un = rill_unix_server_new(loop, path, NULL, e_on_client, &c2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tcp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(un);
    CU_ASSERT_FATAL(test_fds_exhaust(&saved) == 0);
    rc_tcp = rill_server_bind(tcp);
    rc_un = rill_server_bind(un);
    CU_ASSERT_FATAL(test_fds_restore(&saved) == 0);
    CU_ASSERT_EQUAL(rc_tcp, -EMFILE);
    CU_ASSERT_EQUAL(rc_un, -EMFILE);
    CU_ASSERT_FALSE(rill_server_is_bound(tcp));
    CU_ASSERT_FALSE(rill_server_is_bound(un));
    CU_ASSERT_EQUAL(rill_server_bind(tcp), 0);   /* descriptors again: it binds */
    e_close_wait(loop, tcp, &c1);
    e_close_wait(loop, un, &c2);
    rmdir(dir);
    finish(loop, &b);
}

/* serve_forever without a callback; a close with two clients finishes after the last. */
static void test_forever_without_callback(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server *srv;
    ectx c;
    int fd1, fd2;

    memset(&c, 0, sizeof c);
    c.echo = 1;
    srv = rill_server_new(loop, "127.0.0.1", 0, NULL, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_serve_forever(srv, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_server_serve_forever(srv, NULL, NULL), RILL_EBUSY);
    fd1 = connect_tcp(rill_server_port(srv));
    fd2 = connect_tcp(rill_server_port(srv));
    CU_ASSERT_FATAL(fd1 >= 0 && fd2 >= 0);
    CU_ASSERT(roundtrip(loop, fd1, "one\n"));
    CU_ASSERT(roundtrip(loop, fd2, "two\n"));
    CU_ASSERT_EQUAL(c.clients, 2);
    e_close_wait(loop, srv, &c);
    CU_ASSERT_EQUAL(c.close_status, 0);
    CU_ASSERT(peer_ended(loop, fd1));
    CU_ASSERT(peer_ended(loop, fd2));
    close(fd1);
    close(fd2);
    finish(loop, &b);
}

/* Without on_error an accept error is only dropped: the server goes on. */
static void test_accept_error_without_on_error(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server *srv;
    ectx c;
    int fd;

    memset(&c, 0, sizeof c);
    c.echo = 1;
    srv = rill_server_new(loop, "127.0.0.1", 0, NULL, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL_FATAL(rill_server_start_serving(srv, NULL, NULL), 0);
    storm_reset(loop);
    st.script[st.n++] = A_BADFD;
    fd = connect_tcp(rill_server_port(srv));
    CU_ASSERT_FATAL(fd >= 0);
    storm_install();
    CU_ASSERT(run_until_count(loop, &c.clients, 1, 3000));
    rill__sys_hooks_set(NULL);
    CU_ASSERT_EQUAL(st.pos, 1);
    CU_ASSERT_EQUAL(c.errors, 0);
    CU_ASSERT(roundtrip(loop, fd, "quietly\n"));
    close(fd);
    e_close_wait(loop, srv, &c);
    finish(loop, &b);
}

/* A descriptor the select backend cannot watch (past FD_SETSIZE) pauses accepting
   as EMFILE does; the other backends serve it. */
static int high_fd;
static int highfd_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int r = real_accept(fd, addr, len, flags), h;
    if (r < 0 || high_fd)
        return r;
    h = dup2(r, FD_SETSIZE + 8);
    if (h < 0)
        return r;
    close(r);
    high_fd = h;
    return h;
}
static int highfd_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return highfd_accept4(fd, addr, len, 0);
}

static void test_descriptor_past_fd_setsize(void)
{
    static rill__sys_hooks hooks;
    baseline b;
    rill_loop *loop;
    rill_server *srv;
    struct rlimit saved, rl;
    ectx c;
    int fd, is_select;

    CU_ASSERT_FATAL(getrlimit(RLIMIT_NOFILE, &saved) == 0);
    rl = saved;
    if (rl.rlim_cur < FD_SETSIZE + 16 && (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= FD_SETSIZE + 16))
        rl.rlim_cur = FD_SETSIZE + 16;
    if (rl.rlim_cur < FD_SETSIZE + 16 || setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        CU_PASS("skipped: RLIMIT_NOFILE cannot reach past FD_SETSIZE");
        return;
    }
    loop = begin(&b);
    is_select = loop->backend == &rill__backend_select;
    memset(&c, 0, sizeof c);
    c.echo = 1;
    srv = storm_server(loop, &c, NULL);
    memset(&hooks, 0, sizeof hooks);
    hooks.accept4 = highfd_accept4;
    hooks.accept = highfd_accept;
    high_fd = 0;
    fd = connect_tcp(rill_server_port(srv));
    CU_ASSERT_FATAL(fd >= 0);
    rill__sys_hooks_set(&hooks);
    if (is_select) {
        CU_ASSERT(run_until_count(loop, &c.errors, 1, 3000));
        CU_ASSERT_EQUAL(c.last_error, -EMFILE);
        CU_ASSERT_EQUAL(c.clients, 0);
        CU_ASSERT(peer_ended(loop, fd));
        close(fd);
        fd = connect_tcp(rill_server_port(srv));   /* accepted after the pause, low */
    }
    CU_ASSERT(run_until_count(loop, &c.clients, 1, 3000));
    rill__sys_hooks_set(NULL);
    CU_ASSERT(roundtrip(loop, fd, "high or low\n"));
    CU_ASSERT_FALSE(fd_open(FD_SETSIZE + 8) && is_select);
    close(fd);
    e_close_wait(loop, srv, &c);
    finish(loop, &b);
    setrlimit(RLIMIT_NOFILE, &saved);
}

/* RILL_TRACE: a server's transitions and its failures, one line each. */
static void test_trace_lines(void)
{
    baseline b;
    rill_loop *loop = begin(&b);
    rill_server_opts o;
    rill_server *srv;
    ectx c;
    static char text[1 << 16];
    char tpl[] = "/tmp/rill-srvtrace-XXXXXX";
    int tfd, saved_err, was = rill__trace_on, lfd, fd;
    ssize_t n;

    tfd = mkstemp(tpl);
    CU_ASSERT_FATAL(tfd >= 0);
    unlink(tpl);
    fflush(stderr);
    saved_err = dup(2);
    CU_ASSERT_FATAL(saved_err >= 0);
    dup2(tfd, 2);
    rill__trace_on = 1;

    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.flags = AI_NUMERICHOST;
    CU_ASSERT_EQUAL(bind_opts(loop, "nope.invalid", 0, &o, NULL), RILL_ENOTFOUND);
    lfd = listening_socket(NULL);
    o.flags = 0;
    o.socks = &lfd;
    o.nsocks = 1;
    srv = rill_server_new(loop, NULL, 0, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    e_close_wait(loop, srv, &c);
    memset(&o, 0, sizeof o);
    o.shutdown_timeout_ms = 100;
    srv = rill_server_new(loop, "127.0.0.1", 0, &o, e_on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_start_serving(srv, NULL, NULL), 0);
    fd = connect_tcp_buf("127.0.0.1", rill_server_port(srv), 4096);
    CU_ASSERT(run_until_count(loop, &c.clients, 1, 2000));
    if (c.last != NULL) {
        char *big = pattern(8u << 20);
        if (big != NULL)
            rill_write(c.last, big, 8u << 20, NULL, NULL);
        free(big);
    }
    e_close_wait(loop, srv, &c);
    close(fd);

    fflush(stderr);
    dup2(saved_err, 2);
    close(saved_err);
    rill__trace_on = was;
    n = pread(tfd, text, sizeof text - 1, 0);
    close(tfd);
    CU_ASSERT_FATAL(n > 0);
    text[n] = '\0';
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "server NEW -> NEW bind RILL_ENOTFOUND"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "1 given sockets"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "127.0.0.1 port 0"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "server NEW -> BOUND 127.0.0.1:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "server BOUND -> SERVING sockets=1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "shutdown timeout: aborting 1 streams"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "-> CLOSED ETIMEDOUT"));
    finish(loop, &b);
}

/* ------------------------------------------------------------------- TLS */

static rill_tls *server_tls(void)
{
    const test_certs *ct = test_certs_or_skip();
    rill_tls_opts o;
    rill_tls *t;

    if (ct == NULL)
        return NULL;
    memset(&o, 0, sizeof o);
    o.cert_file = ct->server;
    o.key_file = ct->key;
    t = rill_tls_server_new(&o);
    CU_ASSERT_PTR_NOT_NULL(t);
    return t;
}

/* The n-th allocation after accept fails, n = 1.. until one does not: each failure
   is reported once as RILL_ENOMEM (a pause when the stream itself could not be made,
   a failed handshake when TLS could not start), the peer is dropped, nothing leaks. */
static void test_tls_accept_alloc_walk(void)
{
    baseline b;
    rill_loop *loop;
    rill_server *srv;
    rill_server_opts o;
    rill_tls *stls;
    ectx c;
    unsigned long n;
    int fd = -1, done = 0, port;

    loop = begin(&b);   /* first: the context's memory is counted, and freed with the server */
    if ((stls = server_tls()) == NULL) {
        finish(loop, &b);
        return;
    }
    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.tls = stls;
    srv = storm_server(loop, &c, &o);
    rill_tls_free(stls);
    port = rill_server_port(srv);
    storm_reset(loop);
    storm_install();
    for (n = 1; n < 32 && !done; n++) {
        int e0 = c.errors;
        uint64_t end = test_now_ms() + 4000;
        st.pos = st.n = 0;
        st.script[st.n++] = A_ARM;
        st.arm_n = n;
        st.settled = 0;
        fd = connect_tcp(port);   /* and says nothing: its handshake waits */
        CU_ASSERT_FATAL(fd >= 0);
        while (c.errors == e0 && !st.settled && test_now_ms() < end)
            rill_loop_run_once(loop, 20);
        if (st.settled && st.made < n) {
            CU_ASSERT_EQUAL(c.errors, e0);
            done = 1;
            break;
        }
        CU_ASSERT_EQUAL(c.errors, e0 + 1);
        CU_ASSERT_EQUAL(c.last_error, RILL_ENOMEM);
        CU_ASSERT_TRUE(c.error_peer);
        CU_ASSERT(peer_ended(loop, fd));
        close(fd);
        fd = -1;
    }
    rill__sys_hooks_set(NULL);
    rill__alloc_fail_at(0);
    CU_ASSERT_TRUE(done);
    CU_ASSERT(n > 2);
    CU_ASSERT_EQUAL(c.clients, 0);
    /* the handshake still waiting is aborted by the close: no handshake failure */
    e_close_wait(loop, srv, &c);
    CU_ASSERT_EQUAL(c.clients, 0);
    if (fd >= 0) {
        CU_ASSERT(peer_ended(loop, fd));
        close(fd);
    }
    finish(loop, &b);
}

int test_server_errors_register(void)
{
    static const test_case cases[] = {
        { "getters and options out of range", test_getters_and_options },
        { "a given Unix listening socket", test_given_unix_socket },
        { "allocation walk over new and bind (any, host, Unix, given)", test_alloc_walk_new_bind },
        { "start_serving/close out of memory: nothing happens", test_alloc_fail_waiters },
        { "numeric host not found or of the other family: RILL_ENOTFOUND", test_host_not_found },
        { "on_socket closes the server during bind", test_on_socket_closes_server },
        { "port 0: the shared port taken, bind retries", test_port_zero_taken_retries },
        { "given sockets misused: never bound, connected, closed, replaced", test_given_sockets_misused },
        { "Unix path errors: no directory, regular file, unlink denied, replaced", test_unix_path_errors },
        { "accept storm: transient errors skipped, EAGAIN ends the batch", test_accept_storm_transient },
        { "accept storm: 64 per readiness event", test_accept_storm_batches },
        { "accept4 ENOSYS: plain accept", test_accept4_enosys_falls_back },
        { "accept: a refused descriptor is reported, no pause", test_accept_refused_descriptor },
        { "accept ENOBUFS: pause; start_serving while paused", test_accept_enobufs_pauses },
        { "accept: no memory for the stream pauses", test_accept_no_memory_pauses },
        { "start_serving: polling fails part way", test_watch_fails_on_start },
        { "abort twice then close: every callback once", test_close_after_abort },
        { "bind: addresses not here, one family, SO_REUSEADDR off, IPv4 side taken", test_bind_address_errors },
        { "bind: no descriptor left (RLIMIT_NOFILE)", test_bind_emfile },
        { "serve_forever without a callback; close after two clients", test_forever_without_callback },
        { "accept error without on_error", test_accept_error_without_on_error },
        { "accept: a descriptor past FD_SETSIZE", test_descriptor_past_fd_setsize },
        { "RILL_TRACE lines of a server", test_trace_lines },
        { "TLS: allocation walk after accept", test_tls_accept_alloc_walk },
        { NULL, NULL }
    };
    return test_add_suite("server_errors", cases);
}
