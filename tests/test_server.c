/* Servers: bind, serve and close over IPv4, IPv6, both at once and Unix sockets;
   the close machine (flush then EOF, shutdown timeout, abort); serve_forever; many
   clients at once; the EMFILE back-off; the stale Unix socket rule; hooks and
   argument checks. Clients are sockets connected by hand (the kernel completes a
   loopback connect from the listen queue, before the server accepts), adopted
   with rill_connect_sock or read directly. */
#include "support/testutil.h"
#include "support/streams.h"
#include "support/certs.h"
#include "rill_private.h"
#include "syshooks.h"   /* loop->npolls: the EMFILE test proves the loop sleeps */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------ the server */

enum { MODE_ECHO, MODE_HOLD, MODE_LINE, MODE_CLOSE_IN_CB };

typedef struct srv_ctx {
    rill_loop *loop;
    int mode;
    int clients;
    rill_stream *last;
    int reads, read_status;       /* MODE_HOLD's pending read */
    int replied;                  /* MODE_LINE */
    int errors, last_error, error_peer;
    int started, start_status, start_sync, start_serving_seen;
    int closed, close_status, close_sync;
    int forever, forever_status, forever_sync;
    int order[8], norder;         /* 1: close callback, 2: serve_forever callback */
    uint64_t closed_at;
    int socket_calls, socket_family[4], socket_fd_ok, socket_fail;
} srv_ctx;

static void hold_read(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    srv_ctx *c = ud;
    (void)s; (void)data; (void)len;
    c->reads++;
    c->read_status = status;
}

static void line_reply(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    srv_ctx *c = ud;
    if (status == 0 && len > 0) {
        rill_write(s, "ok:", 3, NULL, NULL);
        rill_write(s, data, len, NULL, NULL);
        c->replied++;
    }
    rill_close(s, NULL, NULL);
}

static void on_closed(rill_server *srv, int status, void *ud)
{
    srv_ctx *c = ud;
    (void)srv;
    if (test_sync_check())
        c->close_sync = 1;
    c->closed++;
    c->close_status = status;
    c->closed_at = test_now_ms();
    if (c->norder < 8)
        c->order[c->norder++] = 1;
}

static void on_client(rill_server *srv, rill_stream *s, void *ud)
{
    srv_ctx *c = ud;
    c->clients++;
    c->last = s;
    CU_ASSERT_EQUAL(rill_stream_mode(s), RILL_MODE_READWRITE);
    switch (c->mode) {
    case MODE_ECHO:
        rill_read(s, 65536, test_echo_read, c);
        break;
    case MODE_HOLD:
        rill_read(s, 65536, hold_read, c);
        break;
    case MODE_LINE:
        rill_readline(s, line_reply, c);
        break;
    case MODE_CLOSE_IN_CB:
        rill_write(s, "bye\n", 4, NULL, NULL);
        CU_ASSERT_EQUAL(TEST_CALL(rill_server_close(srv, on_closed, c)), 0);
        CU_ASSERT_FALSE(rill_server_is_serving(srv));
        break;
    }
}

static void on_started(rill_server *srv, int status, void *ud)
{
    srv_ctx *c = ud;
    if (test_sync_check())
        c->start_sync = 1;
    c->started++;
    c->start_status = status;
    c->start_serving_seen = rill_server_is_serving(srv);
}

static void on_forever(rill_server *srv, int status, void *ud)
{
    srv_ctx *c = ud;
    (void)srv;
    if (test_sync_check())
        c->forever_sync = 1;
    c->forever++;
    c->forever_status = status;
    if (c->norder < 8)
        c->order[c->norder++] = 2;
}

static void on_error(rill_server *srv, int status, const struct sockaddr *peer, void *ud)
{
    srv_ctx *c = ud;
    (void)srv;
    c->errors++;
    c->last_error = status;
    c->error_peer = peer != NULL;
}

static rill_server *serve(rill_loop *loop, const char *host, int port, const rill_server_opts *o, srv_ctx *c)
{
    rill_server *srv = rill_server_new(loop, host, port, o, on_client, c);
    c->loop = loop;
    if (srv != NULL)
        CU_ASSERT_EQUAL(rill_server_start_serving(srv, NULL, NULL), 0);
    return srv;
}

static void close_and_wait(rill_loop *loop, rill_server *srv, srv_ctx *c)
{
    int before = c->closed;
    CU_ASSERT_EQUAL(TEST_CALL(rill_server_close(srv, on_closed, c)), 0);
    CU_ASSERT_FALSE(rill_server_is_bound(srv));
    CU_ASSERT_FALSE(rill_server_is_serving(srv));
    CU_ASSERT_EQUAL(rill_server_nsockets(srv), 0);
    {
        uint64_t end = test_now_ms() + 5000;
        while (c->closed == before && test_now_ms() < end)
            rill_loop_run_once(loop, 100);
    }
    CU_ASSERT_EQUAL(c->closed, before + 1);
    CU_ASSERT_FALSE(c->close_sync);
}

/* ----------------------------------------------------------- the clients */

static socklen_t fill_addr(struct sockaddr_storage *ss, int family, const char *ip, int port)
{
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons((unsigned short)port);
        inet_pton(AF_INET, ip, &in->sin_addr);
        return sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((unsigned short)port);
        inet_pton(AF_INET6, ip, &in6->sin6_addr);
        return sizeof *in6;
    }
}

/* A blocking connect; rcvbuf > 0 shrinks the receive window first. -1 on failure. */
static int connect_tcp_buf(int family, const char *ip, int port, int rcvbuf)
{
    struct sockaddr_storage ss;
    socklen_t len = fill_addr(&ss, family, ip, port);
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int connect_tcp(int family, const char *ip, int port)
{
    return connect_tcp_buf(family, ip, port, 0);
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sun;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

typedef struct client {
    int done, ok;
    rill_stream *s;
    const char *msg;
    size_t len;
    int keep;             /* leave the stream open after the round trip */
} client;

static void client_read(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    client *c = ud;
    c->ok = status == 0 && len == c->len && memcmp(data, c->msg, len) == 0;
    if (!c->keep) {
        rill_close(s, NULL, NULL);
        c->s = NULL;
    }
    c->done = 1;
}

static int client_send(client *c)
{
    if (rill_write(c->s, c->msg, c->len, NULL, NULL) < 0 || rill_readexactly(c->s, c->len, client_read, c) < 0) {
        rill_abort(c->s);
        c->s = NULL;
        c->done = 1;
        return -1;
    }
    return 0;
}

static void client_connected(rill_stream *s, int status, void *ud)
{
    client *c = ud;
    if (status < 0) {
        c->done = 1;
        return;
    }
    c->s = s;
    client_send(c);
}

/* Runs until c is done; on a timeout aborts its stream and waits for the cancelled
   read, so no callback can reach c after the caller's frame is gone. */
static int client_wait(rill_loop *loop, client *c)
{
    if (!test_run_until(loop, &c->done, 5000) && c->s != NULL) {
        rill_abort(c->s);
        c->s = NULL;
        test_run_until(loop, &c->done, 2000);
    }
    return c->done && c->ok;
}

/* Adopts fd (a connected socket, under TLS when co says so), sends msg and expects it back. */
static int echo_roundtrip_opts(rill_loop *loop, int fd, const char *msg, const rill_connect_opts *co, client *c)
{
    memset(c, 0, sizeof *c);
    c->msg = msg;
    c->len = strlen(msg);
    c->keep = 1;
    if (fd < 0)
        return 0;
    if (rill_connect_sock(loop, fd, co, client_connected, c, NULL) != 0) {
        close(fd);
        return 0;
    }
    return client_wait(loop, c);
}

static int echo_roundtrip_keep(rill_loop *loop, int fd, const char *msg, client *c)
{
    return echo_roundtrip_opts(loop, fd, msg, NULL, c);
}

static int echo_roundtrip_tls(rill_loop *loop, int fd, const char *msg, const rill_connect_opts *co)
{
    client c;
    int ok = echo_roundtrip_opts(loop, fd, msg, co, &c);
    if (c.s != NULL)
        rill_close(c.s, NULL, NULL);
    return ok;
}

static int echo_roundtrip(rill_loop *loop, int fd, const char *msg)
{
    return echo_roundtrip_tls(loop, fd, msg, NULL);
}

/* A round trip over a stream echo_roundtrip_keep left open. */
static int stream_roundtrip(rill_loop *loop, client *c, const char *msg)
{
    if (c->s == NULL)
        return 0;
    c->done = c->ok = 0;
    c->msg = msg;
    c->len = strlen(msg);
    if (client_send(c) < 0)
        return 0;
    return client_wait(loop, c);
}

/* Everything fd sends until EOF (blocking, bounded by a receive timeout). */
static size_t read_all(int fd, char *buf, size_t cap, int *eof)
{
    struct timeval tv = { 5, 0 };
    size_t got = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    *eof = 0;
    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n == 0) {
            *eof = 1;
            break;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    return got;
}

static int mk_tmpdir(char *dir, size_t dlen, char *path, size_t plen)
{
    snprintf(dir, dlen, "/tmp/rill-srv-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, plen, "%s/s.sock", dir);
    return 0;
}

/* ------------------------------------------------------------ arguments */

static void test_reserved_slot(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server_opts o;
    int slot;

    memset(&c, 0, sizeof c);
    for (slot = 0; slot < 4; slot++) {
        memset(&o, 0, sizeof o);
        o.reserved[slot] = &c;
        errno = 0;
        CU_ASSERT_PTR_NULL(rill_server_new(loop, "127.0.0.1", 0, &o, on_client, &c));
        CU_ASSERT_EQUAL(errno, EINVAL);
        errno = 0;
        CU_ASSERT_PTR_NULL(rill_unix_server_new(loop, "/tmp/rill-never-bound", &o, on_client, &c));
        CU_ASSERT_EQUAL(errno, EINVAL);
    }
    test_loop_finish(loop);
}

static void test_bad_flags(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server_opts o;
    rill_server *srv;

    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.flags = AI_CANONNAME;
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_server_new(loop, "127.0.0.1", 0, &o, on_client, &c));
    CU_ASSERT_EQUAL(errno, EINVAL);
    o.flags = AI_NUMERICHOST | 0x40000;
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_server_new(loop, "127.0.0.1", 0, &o, on_client, &c));
    CU_ASSERT_EQUAL(errno, EINVAL);
    /* the accepted set */
    o.flags = AI_NUMERICHOST | AI_ADDRCONFIG | AI_V4MAPPED | AI_ALL | AI_PASSIVE;
    srv = rill_server_new(loop, "127.0.0.1", 0, &o, on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_bind(srv), 0);
    close_and_wait(loop, srv, &c);
    test_loop_finish(loop);
}

static void test_bad_arguments(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server_opts o;
    char longpath[300];
    int lfd, one = 1;

    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
#define EXPECT_NULL(call, err) do { errno = 0; CU_ASSERT_PTR_NULL(call); CU_ASSERT_EQUAL(errno, err); } while (0)
    EXPECT_NULL(rill_server_new(NULL, "127.0.0.1", 0, NULL, on_client, &c), EINVAL);
    EXPECT_NULL(rill_server_new(loop, "127.0.0.1", 0, NULL, NULL, &c), EINVAL);
    EXPECT_NULL(rill_server_new(loop, "127.0.0.1", -1, NULL, on_client, &c), EINVAL);
    EXPECT_NULL(rill_server_new(loop, "127.0.0.1", 65536, NULL, on_client, &c), EINVAL);
    o.family = AF_UNIX;
    EXPECT_NULL(rill_server_new(loop, "127.0.0.1", 0, &o, on_client, &c), EINVAL);
    o.family = 0;
    o.backlog = -1;
    EXPECT_NULL(rill_server_new(loop, "127.0.0.1", 0, &o, on_client, &c), EINVAL);
    o.backlog = 0;
    o.shutdown_timeout_ms = -2;
    EXPECT_NULL(rill_server_new(loop, "127.0.0.1", 0, &o, on_client, &c), EINVAL);
    o.shutdown_timeout_ms = 0;
    o.nsocks = 1;
    EXPECT_NULL(rill_server_new(loop, NULL, 0, &o, on_client, &c), EINVAL);
    o.nsocks = 0;
    EXPECT_NULL(rill_unix_server_new(loop, NULL, NULL, on_client, &c), EINVAL);
    EXPECT_NULL(rill_unix_server_new(loop, "", NULL, on_client, &c), EINVAL);
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    EXPECT_NULL(rill_unix_server_new(loop, longpath, NULL, on_client, &c), ENAMETOOLONG);

    /* sockets and an address at once: refused, and the socket stays the caller's */
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(lfd >= 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    o.socks = &lfd;
    o.nsocks = 1;
    EXPECT_NULL(rill_server_new(loop, "127.0.0.1", 0, &o, on_client, &c), EINVAL);
    EXPECT_NULL(rill_server_new(loop, NULL, 8080, &o, on_client, &c), EINVAL);
    CU_ASSERT_NOT_EQUAL(fcntl(lfd, F_GETFD), -1);
    close(lfd);
    /* a datagram socket is no listening socket */
    lfd = socket(AF_INET, SOCK_DGRAM, 0);
    CU_ASSERT_FATAL(lfd >= 0);
    EXPECT_NULL(rill_server_new(loop, NULL, 0, &o, on_client, &c), EINVAL);
    CU_ASSERT_NOT_EQUAL(fcntl(lfd, F_GETFD), -1);
    close(lfd);
#undef EXPECT_NULL

    CU_ASSERT_EQUAL(rill_server_bind(NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_server_start_serving(NULL, NULL, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_server_serve_forever(NULL, NULL, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_server_close(NULL, NULL, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_server_abort(NULL, NULL, NULL), RILL_EINVAL);
    CU_ASSERT_FALSE(rill_server_is_bound(NULL));
    CU_ASSERT_FALSE(rill_server_is_serving(NULL));
    CU_ASSERT_EQUAL(rill_server_nsockets(NULL), 0);
    test_loop_finish(loop);
}

/* ------------------------------------------------------------ echo paths */

static void test_echo_ipv4(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    int port;

    memset(&c, 0, sizeof c);
    srv = serve(loop, "127.0.0.1", 0, NULL, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    port = rill_server_port(srv);
    CU_ASSERT(port > 0);
    CU_ASSERT(echo_roundtrip(loop, connect_tcp(AF_INET, "127.0.0.1", port), "hello over IPv4\n"));
    CU_ASSERT(echo_roundtrip(loop, connect_tcp(AF_INET, "127.0.0.1", port), "and again\n"));
    CU_ASSERT_EQUAL(c.clients, 2);
    close_and_wait(loop, srv, &c);
    CU_ASSERT_EQUAL(c.close_status, 0);
    test_loop_finish(loop);
}

static void test_echo_ipv6(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    char name[64];
    int port;

    memset(&c, 0, sizeof c);
    srv = serve(loop, "::1", 0, NULL, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    port = rill_server_port(srv);
    CU_ASSERT(port > 0);
    CU_ASSERT_EQUAL(rill_server_nsockets(srv), 1);
    CU_ASSERT(rill_server_sockname(srv, 0, name, sizeof name) > 0);
    CU_ASSERT_EQUAL(strncmp(name, "[::1]:", 6), 0);
    CU_ASSERT(echo_roundtrip(loop, connect_tcp(AF_INET6, "::1", port), "hello over IPv6\n"));
    CU_ASSERT_EQUAL(c.clients, 1);
    close_and_wait(loop, srv, &c);
    test_loop_finish(loop);
}

/* host NULL: [::] (IPv6 only) and 0.0.0.0 on one port, even when the port is 0. */
static void test_echo_dual_stack(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    char name[64], want[64];
    int port;

    memset(&c, 0, sizeof c);
    srv = serve(loop, NULL, 0, NULL, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    port = rill_server_port(srv);
    CU_ASSERT(port > 0);
    CU_ASSERT_EQUAL(rill_server_nsockets(srv), 2);
    snprintf(want, sizeof want, "[::]:%d", port);
    CU_ASSERT(rill_server_sockname(srv, 0, name, sizeof name) > 0);
    CU_ASSERT_STRING_EQUAL(name, want);
    snprintf(want, sizeof want, "0.0.0.0:%d", port);
    CU_ASSERT(rill_server_sockname(srv, 1, name, sizeof name) > 0);
    CU_ASSERT_STRING_EQUAL(name, want);
    CU_ASSERT(echo_roundtrip(loop, connect_tcp(AF_INET, "127.0.0.1", port), "to the IPv4 socket\n"));
    CU_ASSERT(echo_roundtrip(loop, connect_tcp(AF_INET6, "::1", port), "to the IPv6 socket\n"));
    CU_ASSERT_EQUAL(c.clients, 2);
    close_and_wait(loop, srv, &c);
    test_loop_finish(loop);
}

static void test_echo_unix(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    char dir[64], path[96], name[128];
    struct stat st;

    memset(&c, 0, sizeof c);
    CU_ASSERT_FATAL(mk_tmpdir(dir, sizeof dir, path, sizeof path) == 0);
    c.loop = loop;
    srv = rill_unix_server_new(loop, path, NULL, on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(lstat(path, &st), -1);   /* nothing bound before bind */
    CU_ASSERT_EQUAL(rill_server_start_serving(srv, NULL, NULL), 0);
    CU_ASSERT_EQUAL(lstat(path, &st), 0);
    CU_ASSERT(S_ISSOCK(st.st_mode));
    CU_ASSERT_EQUAL(rill_server_sockname(srv, 0, name, sizeof name), (int)strlen(path));
    CU_ASSERT_STRING_EQUAL(name, path);
    CU_ASSERT_EQUAL(rill_server_port(srv), RILL_EINVAL);
    CU_ASSERT(echo_roundtrip(loop, connect_unix(path), "hello over a Unix socket\n"));
    CU_ASSERT_EQUAL(c.clients, 1);
    close_and_wait(loop, srv, &c);
    /* its own file goes with it */
    CU_ASSERT_EQUAL(lstat(path, &st), -1);
    CU_ASSERT_EQUAL(errno, ENOENT);
    rmdir(dir);
    test_loop_finish(loop);
}

/* ------------------------------------------------------- state and names */

static void test_state_transitions(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    int port, fd;

    memset(&c, 0, sizeof c);
    srv = rill_server_new(loop, "127.0.0.1", 0, NULL, on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_PTR_EQUAL(rill_server_loop(srv), loop);
    CU_ASSERT_PTR_NULL(rill_server_get_data(srv));
    rill_server_set_data(srv, &c);
    CU_ASSERT_PTR_EQUAL(rill_server_get_data(srv), &c);
    /* NEW: nothing bound */
    CU_ASSERT_FALSE(rill_server_is_bound(srv));
    CU_ASSERT_FALSE(rill_server_is_serving(srv));
    CU_ASSERT_EQUAL(rill_server_nsockets(srv), 0);
    CU_ASSERT_EQUAL(rill_server_socket(srv, 0), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_server_port(srv), RILL_EINVAL);
    /* BOUND: a socket, no listening yet (as asyncio: connects are refused) */
    CU_ASSERT_EQUAL(rill_server_bind(srv), 0);
    CU_ASSERT_TRUE(rill_server_is_bound(srv));
    CU_ASSERT_FALSE(rill_server_is_serving(srv));
    CU_ASSERT_EQUAL(rill_server_nsockets(srv), 1);
    CU_ASSERT(rill_server_socket(srv, 0) >= 0);
    CU_ASSERT_EQUAL(rill_server_socket(srv, 1), RILL_EINVAL);
    port = rill_server_port(srv);
    CU_ASSERT(port > 0);
    CU_ASSERT_EQUAL(rill_server_bind(srv), 0);   /* idempotent */
    CU_ASSERT_EQUAL(rill_server_port(srv), port);
    fd = connect_tcp(AF_INET, "127.0.0.1", port);
    CU_ASSERT_EQUAL(fd, -1);
    if (fd >= 0)
        close(fd);
    /* SERVING */
    CU_ASSERT_EQUAL(rill_server_start_serving(srv, NULL, NULL), 0);
    CU_ASSERT_TRUE(rill_server_is_bound(srv));
    CU_ASSERT_TRUE(rill_server_is_serving(srv));
    CU_ASSERT_EQUAL(rill_server_nsockets(srv), 1);
    CU_ASSERT(echo_roundtrip(loop, connect_tcp(AF_INET, "127.0.0.1", port), "serving\n"));
    /* CLOSING: false/false/0 at once, new connects refused at once */
    close_and_wait(loop, srv, &c);
    CU_ASSERT_EQUAL(c.close_status, 0);
    fd = connect_tcp(AF_INET, "127.0.0.1", port);
    CU_ASSERT_EQUAL(fd, -1);
    if (fd >= 0)
        close(fd);
    test_loop_finish(loop);
}

static void test_closed_server_refuses(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;

    memset(&c, 0, sizeof c);
    srv = serve(loop, "127.0.0.1", 0, NULL, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_close(srv, on_closed, &c), 0);
    /* until the close callback the handle is valid, and says it is closed */
    CU_ASSERT_EQUAL(rill_server_bind(srv), RILL_ECLOSED);
    CU_ASSERT_EQUAL(rill_server_start_serving(srv, on_started, &c), RILL_ECLOSED);
    CU_ASSERT_EQUAL(rill_server_serve_forever(srv, on_forever, &c), RILL_ECLOSED);
    CU_ASSERT_EQUAL(rill_server_close(srv, NULL, NULL), 0);   /* a second close is harmless */
    CU_ASSERT(test_run_until(loop, &c.closed, 5000));
    CU_ASSERT_EQUAL(c.closed, 1);
    CU_ASSERT_EQUAL(c.started, 0);
    CU_ASSERT_EQUAL(c.forever, 0);
    test_loop_finish(loop);
}

static void test_never_started_must_be_closed(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;

    memset(&c, 0, sizeof c);
    srv = rill_server_new(loop, "127.0.0.1", 0, NULL, on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_TRUE(rill_loop_alive(loop));
    CU_ASSERT_EQUAL(rill_loop_free(loop), RILL_EBUSY);
    close_and_wait(loop, srv, &c);
    CU_ASSERT_EQUAL(c.close_status, 0);
    test_loop_finish(loop);
}

static void test_start_serving_callback(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c, c2;
    rill_server *srv, *srv2;
    int port;

    memset(&c, 0, sizeof c);
    srv = rill_server_new(loop, "127.0.0.1", 0, NULL, on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(TEST_CALL(rill_server_start_serving(srv, on_started, &c)), 0);
    CU_ASSERT_EQUAL(c.started, 0);   /* from the loop, never from inside the call */
    CU_ASSERT(test_run_until(loop, &c.started, 2000));
    CU_ASSERT_FALSE(c.start_sync);
    CU_ASSERT_EQUAL(c.start_status, 0);
    CU_ASSERT_TRUE(c.start_serving_seen);
    port = rill_server_port(srv);
    /* already serving: still one callback, from the loop */
    CU_ASSERT_EQUAL(TEST_CALL(rill_server_start_serving(srv, on_started, &c)), 0);
    CU_ASSERT_EQUAL(c.started, 1);
    test_run_until(loop, &c.closed, 100);
    CU_ASSERT_EQUAL(c.started, 2);
    CU_ASSERT_FALSE(c.start_sync);

    /* the port is taken: the callback gets the bind error, from the loop */
    memset(&c2, 0, sizeof c2);
    srv2 = rill_server_new(loop, "127.0.0.1", port, NULL, on_client, &c2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv2);
    CU_ASSERT_EQUAL(TEST_CALL(rill_server_start_serving(srv2, on_started, &c2)), 0);
    CU_ASSERT_EQUAL(c2.started, 0);
    CU_ASSERT(test_run_until(loop, &c2.started, 2000));
    CU_ASSERT_FALSE(c2.start_sync);
    CU_ASSERT_EQUAL(c2.start_status, -EADDRINUSE);
    CU_ASSERT_FALSE(rill_server_is_bound(srv2));
    CU_ASSERT_FALSE(rill_server_is_serving(srv2));
    CU_ASSERT_EQUAL(rill_server_bind(srv2), -EADDRINUSE);
    close_and_wait(loop, srv2, &c2);
    close_and_wait(loop, srv, &c);
    test_loop_finish(loop);
}

static void test_port_zero_and_sockname(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    char name[64], want[64], tiny[8];
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    int port;

    memset(&c, 0, sizeof c);
    srv = serve(loop, "127.0.0.1", 0, NULL, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    port = rill_server_port(srv);
    CU_ASSERT(port > 0 && port < 65536);
    /* the port the kernel picked is the one the socket has */
    CU_ASSERT_EQUAL(getsockname(rill_server_socket(srv, 0), (struct sockaddr *)&sin, &len), 0);
    CU_ASSERT_EQUAL(ntohs(sin.sin_port), port);
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    CU_ASSERT_EQUAL(rill_server_sockname(srv, 0, name, sizeof name), (int)strlen(want));
    CU_ASSERT_STRING_EQUAL(name, want);
    memset(tiny, 'x', sizeof tiny);
    CU_ASSERT_EQUAL(rill_server_sockname(srv, 0, tiny, sizeof tiny), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(tiny[0], '\0');
    CU_ASSERT_EQUAL(rill_server_sockname(srv, 1, name, sizeof name), RILL_EINVAL);
    CU_ASSERT(echo_roundtrip(loop, connect_tcp(AF_INET, "127.0.0.1", port), "port 0\n"));
    close_and_wait(loop, srv, &c);
    test_loop_finish(loop);
}

/* ----------------------------------------------------------------- close */

#define PATTERN(i) ((char)(((i) * 7u + (i) / 65536u) & 0xff))

typedef struct sink {
    int fd;
    size_t got;
    int eof, err, bad;
    rill_watch *w;
} sink;

static void sink_ready(rill_watch *w, int revents, void *ud)
{
    sink *k = ud;
    char buf[65536];
    ssize_t n, i;

    (void)revents;
    for (;;) {
        n = read(k->fd, buf, sizeof buf);
        if (n > 0) {
            for (i = 0; i < n; i++)
                if (buf[i] != PATTERN(k->got + (size_t)i))
                    k->bad = 1;
            k->got += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            k->eof = 1;
        else
            k->err = errno;
        break;
    }
    rill_watch_stop(w);
    k->w = NULL;
}

static char *pattern_buf(size_t n)
{
    char *p = malloc(n);
    size_t i;
    if (p != NULL)
        for (i = 0; i < n; i++)
            p[i] = PATTERN(i);
    return p;
}

/* A client that reads gets everything the server's stream had buffered, then EOF;
   meanwhile the listening socket is already gone. */
static void test_close_flushes_then_eof(void)
{
    enum { BIG = 4 << 20 };
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    sink k;
    char *big = pattern_buf(BIG);
    int port, fd, both = 0;
    uint64_t end;

    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    memset(&c, 0, sizeof c);
    memset(&k, 0, sizeof k);
    c.mode = MODE_HOLD;
    srv = serve(loop, "127.0.0.1", 0, NULL, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    port = rill_server_port(srv);
    k.fd = connect_tcp_buf(AF_INET, "127.0.0.1", port, 16384);
    CU_ASSERT_FATAL(k.fd >= 0);
    CU_ASSERT(test_run_until(loop, &c.clients, 2000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.last);
    CU_ASSERT_EQUAL(rill_write(c.last, big, BIG, NULL, NULL), 0);
    CU_ASSERT(rill_get_write_buffer_size(c.last) > 0);   /* the client has not read yet */
    CU_ASSERT_EQUAL(rill_server_close(srv, on_closed, &c), 0);
    CU_ASSERT_FALSE(rill_server_is_bound(srv));
    fd = connect_tcp(AF_INET, "127.0.0.1", port);
    CU_ASSERT_EQUAL(fd, -1);
    if (fd >= 0)
        close(fd);
    fcntl(k.fd, F_SETFL, fcntl(k.fd, F_GETFL) | O_NONBLOCK);
    k.w = rill_watch_fd(loop, k.fd, RILL_READABLE, sink_ready, &k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k.w);
    end = test_now_ms() + 10000;
    while (!both && test_now_ms() < end) {
        rill_loop_run_once(loop, 100);
        both = c.closed && k.w == NULL;
    }
    CU_ASSERT_TRUE(both);
    CU_ASSERT_EQUAL(c.reads, 1);
    CU_ASSERT_EQUAL(c.read_status, RILL_ECANCELED);   /* the pending read ended with the close */
    CU_ASSERT_EQUAL(k.got, (size_t)BIG);
    CU_ASSERT_FALSE(k.bad);
    CU_ASSERT_TRUE(k.eof);
    CU_ASSERT_EQUAL(k.err, 0);
    CU_ASSERT_EQUAL(c.closed, 1);
    CU_ASSERT_EQUAL(c.close_status, 0);
    if (k.w != NULL)
        rill_watch_stop(k.w);
    close(k.fd);
    free(big);
    test_loop_finish(loop);
}

/* Sets up a server stream with more buffered than a client that never reads can take. */
static int stuck_client(rill_loop *loop, rill_server *srv, srv_ctx *c, char **big, size_t n)
{
    int fd = connect_tcp_buf(AF_INET, "127.0.0.1", rill_server_port(srv), 4096);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(test_run_until(loop, &c->clients, 2000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(c->last);
    *big = pattern_buf(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(*big);
    CU_ASSERT_EQUAL(rill_write(c->last, *big, n, NULL, NULL), 0);
    CU_ASSERT(rill_get_write_buffer_size(c->last) > 0);
    return fd;
}

static void test_close_timeout_aborts(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    rill_server_opts o;
    char *big;
    int fd;
    uint64_t t0, took;

    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    c.mode = MODE_HOLD;
    o.shutdown_timeout_ms = 300;
    srv = serve(loop, "127.0.0.1", 0, &o, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    fd = stuck_client(loop, srv, &c, &big, 16u << 20);
    t0 = test_now_ms();
    CU_ASSERT_EQUAL(rill_server_close(srv, on_closed, &c), 0);
    CU_ASSERT(test_run_until(loop, &c.closed, 5000));
    took = c.closed_at - t0;
    CU_ASSERT(took >= 250);
    CU_ASSERT(took < 4000);
    CU_ASSERT_EQUAL(c.close_status, RILL_ETIMEDOUT);
    CU_ASSERT_EQUAL(c.read_status, RILL_ECANCELED);
    close(fd);
    free(big);
    test_loop_finish(loop);
}

static void test_abort(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    char *big;
    int fd;
    uint64_t t0;

    memset(&c, 0, sizeof c);
    c.mode = MODE_HOLD;
    srv = serve(loop, "127.0.0.1", 0, NULL, &c);   /* the 60 s shutdown timeout never matters */
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    fd = stuck_client(loop, srv, &c, &big, 16u << 20);
    t0 = test_now_ms();
    CU_ASSERT_EQUAL(TEST_CALL(rill_server_abort(srv, on_closed, &c)), 0);
    CU_ASSERT_FALSE(rill_server_is_serving(srv));
    CU_ASSERT_FALSE(rill_server_is_bound(srv));
    CU_ASSERT_EQUAL(rill_server_nsockets(srv), 0);
    CU_ASSERT(test_run_until(loop, &c.closed, 5000));
    CU_ASSERT_FALSE(c.close_sync);
    CU_ASSERT(c.closed_at - t0 < 2000);
    CU_ASSERT_EQUAL(c.close_status, 0);
    CU_ASSERT_EQUAL(c.read_status, RILL_ECANCELED);
    close(fd);
    free(big);
    test_loop_finish(loop);
}

/* No shutdown timeout: a close waits for ever, until an abort ends it. */
static void test_abort_after_close(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c, c2;
    rill_server *srv;
    rill_server_opts o;
    char *big;
    int fd;

    memset(&c, 0, sizeof c);
    memset(&c2, 0, sizeof c2);
    memset(&o, 0, sizeof o);
    c.mode = MODE_HOLD;
    o.shutdown_timeout_ms = -1;
    srv = serve(loop, "127.0.0.1", 0, &o, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    fd = stuck_client(loop, srv, &c, &big, 16u << 20);
    CU_ASSERT_EQUAL(rill_server_close(srv, on_closed, &c), 0);
    test_run_until(loop, &c.closed, 400);
    CU_ASSERT_EQUAL_FATAL(c.closed, 0);   /* else srv is gone */
    CU_ASSERT_EQUAL(rill_server_abort(srv, on_closed, &c2), 0);
    CU_ASSERT(test_run_until(loop, &c2.closed, 3000));
    CU_ASSERT_EQUAL(c.closed, 1);   /* both callbacks, the close's first */
    CU_ASSERT_EQUAL(c2.closed, 1);
    CU_ASSERT(c.closed_at <= c2.closed_at);
    close(fd);
    free(big);
    test_loop_finish(loop);
}

/* on_client may close the server: the new stream is closed with it, gracefully. */
static void test_close_from_on_client(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    char buf[64];
    int fd, eof;
    size_t n;

    memset(&c, 0, sizeof c);
    c.mode = MODE_CLOSE_IN_CB;
    srv = serve(loop, "127.0.0.1", 0, NULL, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    fd = connect_tcp(AF_INET, "127.0.0.1", rill_server_port(srv));
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(test_run_until(loop, &c.closed, 3000));
    CU_ASSERT_EQUAL(c.clients, 1);
    CU_ASSERT_EQUAL(c.closed, 1);
    CU_ASSERT_FALSE(c.close_sync);
    n = read_all(fd, buf, sizeof buf, &eof);
    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT_EQUAL(memcmp(buf, "bye\n", 4), 0);
    CU_ASSERT_TRUE(eof);
    close(fd);
    test_loop_finish(loop);
}

/* --------------------------------------------------------- serve_forever */

typedef struct later {
    srv_ctx *c;
    rill_server *srv;
} later;

static void close_server_later(void *ud)
{
    later *l = ud;
    CU_ASSERT_EQUAL(rill_server_close(l->srv, on_closed, l->c), 0);
}

static void test_serve_forever(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    later l;

    memset(&c, 0, sizeof c);
    srv = rill_server_new(loop, "127.0.0.1", 0, NULL, on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(TEST_CALL(rill_server_serve_forever(srv, on_forever, &c)), 0);   /* binds and serves */
    CU_ASSERT_EQUAL(TEST_CALL(rill_server_serve_forever(srv, on_forever, &c)), RILL_EBUSY);
    CU_ASSERT_TRUE(rill_server_is_serving(srv));
    CU_ASSERT(echo_roundtrip(loop, connect_tcp(AF_INET, "127.0.0.1", rill_server_port(srv)), "forever\n"));
    test_run_until(loop, &c.forever, 100);
    CU_ASSERT_EQUAL(c.forever, 0);   /* runs until the server is closed */
    l.c = &c;
    l.srv = srv;
    CU_ASSERT_PTR_NOT_NULL(rill_call_later(loop, 20, close_server_later, &l));
    CU_ASSERT(test_run_until(loop, &c.forever, 3000));
    CU_ASSERT_EQUAL(c.forever, 1);
    CU_ASSERT_EQUAL(c.forever_status, 0);
    CU_ASSERT_FALSE(c.forever_sync);
    CU_ASSERT_EQUAL(c.closed, 1);
    CU_ASSERT_EQUAL(c.norder, 2);
    CU_ASSERT_EQUAL(c.order[0], 1);   /* the close callback, then serve_forever's */
    CU_ASSERT_EQUAL(c.order[1], 2);
    test_loop_finish(loop);
}

/* ------------------------------------------------------------------ load */

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void test_many_clients(void)
{
    enum { N = 500 };
    rill_loop *loop;
    srv_ctx c;
    rill_server *srv;
    rill_server_opts o;
    static int fds[N];
    char msg[32], buf[64];
    int port, i, good = 0, connected = 0, eof;
    size_t n;

    raise_nofile(4096);
    loop = test_loop_new(0);
    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    c.mode = MODE_LINE;
    o.backlog = 1024;   /* every connect completes from the listen queue before the first accept */
    srv = serve(loop, "127.0.0.1", 0, &o, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    port = rill_server_port(srv);
    for (i = 0; i < N; i++) {
        fds[i] = connect_tcp(AF_INET, "127.0.0.1", port);
        if (fds[i] < 0)
            continue;
        connected++;
        n = (size_t)snprintf(msg, sizeof msg, "c%d\n", i);
        if (write(fds[i], msg, n) != (ssize_t)n) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    CU_ASSERT_EQUAL(connected, N);
    {
        uint64_t end = test_now_ms() + 20000;
        while (c.replied < connected && test_now_ms() < end)
            rill_loop_run_once(loop, 100);
    }
    CU_ASSERT_EQUAL(c.clients, N);
    CU_ASSERT_EQUAL(c.replied, N);
    for (i = 0; i < N; i++) {
        if (fds[i] < 0)
            continue;
        n = read_all(fds[i], buf, sizeof buf - 1, &eof);
        buf[n] = '\0';
        snprintf(msg, sizeof msg, "ok:c%d\n", i);
        if (eof && strcmp(buf, msg) == 0)
            good++;
        close(fds[i]);
    }
    CU_ASSERT_EQUAL(good, N);
    close_and_wait(loop, srv, &c);
    test_loop_finish(loop);
}

/* ------------------------------------------------ a re-arm that fails */

static int accept_emfile_once;

static int accept4_emfile(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    if (accept_emfile_once) {
        accept_emfile_once = 0;
        errno = EMFILE;
        return -1;
    }
    fd = accept(fd, addr, len);
    if (fd >= 0 && (flags & SOCK_NONBLOCK))
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (fd >= 0 && (flags & SOCK_CLOEXEC))
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

static int accept_emfile(int fd, struct sockaddr *addr, socklen_t *len)
{
    return accept4_emfile(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

static void idle_io(rill__io *io, int revents) { (void)io; (void)revents; }

/* After an accept pause the re-arm fails (the slot table cannot grow): the server
   reports it through on_error, tries again after the pause, and serves again. */
static void test_failed_rearm_reported_and_retried(void)
{
    static rill__sys_hooks hooks;
    rill_loop *loop = test_loop_new(0);
    rill_server_opts o;
    rill_server *srv;
    srv_ctx c;
    rill__io ios[64];
    int fds[64][2], nio = 0, fd, i;

    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.on_error = on_error;
    c.mode = MODE_ECHO;
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv = rill_server_new(loop, "127.0.0.1", 0, &o, on_client, &c));
    CU_ASSERT_EQUAL_FATAL(rill_server_start_serving(srv, NULL, NULL), 0);
    hooks.accept = accept_emfile;
    hooks.accept4 = accept4_emfile;
    accept_emfile_once = 1;
    rill__sys_hooks_set(&hooks);
    fd = connect_tcp(AF_INET, "127.0.0.1", rill_server_port(srv));
    CU_ASSERT_EQUAL(test_run_until(loop, &c.errors, 2000), 1);
    CU_ASSERT_EQUAL(c.last_error, -EMFILE);
    /* Paused: fill the slot table so the re-arm needs to grow it, and make that fail. */
    while (nio < 64 && (loop->nfree > 0 || loop->nslots < loop->capslots) && pipe(fds[nio]) == 0) {
        rill__io_init(&ios[nio], fds[nio][0], idle_io);
        CU_ASSERT_EQUAL(rill__io_start(loop, &ios[nio], RILL_READABLE), 0);
        nio++;
    }
    CU_ASSERT(loop->nfree == 0 && loop->nslots == loop->capslots);
    rill__alloc_fail_at(1);
    {
        uint64_t end = test_now_ms() + 3000;
        while (c.errors < 2 && test_now_ms() < end)
            rill_loop_run_once(loop, 100);
    }
    rill__alloc_fail_at(0);
    CU_ASSERT_EQUAL(c.errors, 2);
    CU_ASSERT_EQUAL(c.last_error, RILL_ENOMEM);
    CU_ASSERT_EQUAL(c.clients, 0);
    for (i = 0; i < nio; i++) {
        rill__io_stop(loop, &ios[i]);
        close(fds[i][0]);
        close(fds[i][1]);
    }
    /* The next try re-arms and the waiting client is accepted. */
    {
        uint64_t end = test_now_ms() + 3000;
        while (c.clients < 1 && test_now_ms() < end)
            rill_loop_run_once(loop, 100);
    }
    rill__sys_hooks_set(NULL);
    CU_ASSERT_EQUAL(c.clients, 1);
    CU_ASSERT(rill_server_is_serving(srv));
    close(fd);
    CU_ASSERT_EQUAL(rill_server_close(srv, on_closed, &c), 0);
    CU_ASSERT_EQUAL(test_run_until(loop, &c.closed, 5000), 1);
    test_loop_finish(loop);
}

/* ---------------------------------------------------------------- EMFILE */

/* Runs in a child (it lowers RLIMIT_NOFILE): 0 on success, else the failed step. */
static int emfile_child(void)
{
    rill_loop_opts lo;
    rill_loop *loop;
    rill_server *srv;
    rill_server_opts o;
    srv_ctx c;
    client a, b;
    struct rlimit rl, saved;
    int fillers[256], nfill = 0, port, fd_b, i, dummy = 0;
    unsigned long polls;
    uint64_t t_error;

    memset(&lo, 0, sizeof lo);
    lo.dns_servers = "127.0.0.1:9";
    if ((loop = rill_loop_new(&lo)) == NULL)
        return 10;
    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.on_error = on_error;
    if ((srv = rill_server_new(loop, "127.0.0.1", 0, &o, on_client, &c)) == NULL)
        return 11;
    if (rill_server_start_serving(srv, NULL, NULL) != 0)
        return 12;
    port = rill_server_port(srv);
    /* A: an established client, kept open */
    if (!echo_roundtrip_keep(loop, connect_tcp(AF_INET, "127.0.0.1", port), "first\n", &a))
        return 13;
    /* B: waits in the listen queue */
    if ((fd_b = connect_tcp(AF_INET, "127.0.0.1", port)) < 0)
        return 14;
    /* no descriptor left for accept */
    if (getrlimit(RLIMIT_NOFILE, &saved) < 0)
        return 15;
    rl = saved;
    rl.rlim_cur = 200;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 16;
    while (nfill < 256) {
        int fd = dup(0);
        if (fd < 0)
            break;
        fillers[nfill++] = fd;
    }
    if (nfill == 256 || errno != EMFILE)
        return 17;

    if (!test_run_until(loop, &c.errors, 2000))
        return 18;
    t_error = test_now_ms();
    if (c.last_error != -EMFILE || c.error_peer || c.clients != 1)
        return 19;
    if (!rill_server_is_serving(srv))
        return 20;
    /* the existing connection is still served */
    polls = loop->npolls;
    if (!stream_roundtrip(loop, &a, "still here\n"))
        return 21;
    /* and the loop sleeps instead of spinning on the readable listening socket */
    test_run_until(loop, &dummy, 300);
    if (loop->npolls - polls > 50)
        return 22;
    if (c.errors != 1)
        return 23;

    for (i = 0; i < nfill; i++)
        close(fillers[i]);
    setrlimit(RLIMIT_NOFILE, &saved);
    /* after the pause B is accepted */
    {
        uint64_t end = test_now_ms() + 3000;
        while (c.clients < 2 && test_now_ms() < end)
            rill_loop_run_once(loop, 100);
    }
    if (c.clients != 2)
        return 24;
    if (test_now_ms() - t_error < 600)
        return 25;   /* it did not wait: it would have spun */
    if (!echo_roundtrip(loop, fd_b, "second\n"))
        return 26;
    if (!echo_roundtrip(loop, connect_tcp(AF_INET, "127.0.0.1", port), "third\n"))
        return 27;
    rill_close(a.s, NULL, NULL);
    if (rill_server_close(srv, on_closed, &c) != 0 || !test_run_until(loop, &c.closed, 5000))
        return 28;
    {
        uint64_t end = test_now_ms() + 3000;
        while (rill_loop_alive(loop) && test_now_ms() < end)
            rill_loop_run_once(loop, 50);
    }
    if (rill_loop_free(loop) != 0)
        return 29;
    (void)b;
    return 0;
}

static void test_emfile_pauses_accepting(void)
{
    test_in_child("emfile", emfile_child, 25000);
}

/* ------------------------------------------------------------ Unix files */

static void test_unix_stale_socket_removed(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    char dir[64], path[96];
    struct sockaddr_un sun;
    struct stat st;
    int fd;

    memset(&c, 0, sizeof c);
    CU_ASSERT_FATAL(mk_tmpdir(dir, sizeof dir, path, sizeof path) == 0);
    /* a server that died left its socket file behind */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sun, sizeof sun) == 0);
    close(fd);
    CU_ASSERT_EQUAL(lstat(path, &st), 0);
    CU_ASSERT(S_ISSOCK(st.st_mode));

    c.loop = loop;
    srv = rill_unix_server_new(loop, path, NULL, on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_bind(srv), 0);
    CU_ASSERT_EQUAL(rill_server_start_serving(srv, NULL, NULL), 0);
    CU_ASSERT(echo_roundtrip(loop, connect_unix(path), "over the stale path\n"));
    close_and_wait(loop, srv, &c);
    CU_ASSERT_EQUAL(lstat(path, &st), -1);
    rmdir(dir);
    test_loop_finish(loop);
}

static void test_unix_regular_file_refused(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    char dir[64], path[96], buf[16];
    struct stat st;
    int fd;

    memset(&c, 0, sizeof c);
    CU_ASSERT_FATAL(mk_tmpdir(dir, sizeof dir, path, sizeof path) == 0);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, "keep", 4), 4);
    close(fd);

    srv = rill_unix_server_new(loop, path, NULL, on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_bind(srv), -EADDRINUSE);
    CU_ASSERT_FALSE(rill_server_is_bound(srv));
    CU_ASSERT_EQUAL(rill_server_nsockets(srv), 0);
    close_and_wait(loop, srv, &c);
    /* left intact, even by the close */
    CU_ASSERT_EQUAL(lstat(path, &st), 0);
    CU_ASSERT(S_ISREG(st.st_mode));
    fd = open(path, O_RDONLY);
    CU_ASSERT(fd >= 0);
    if (fd >= 0) {
        CU_ASSERT_EQUAL(read(fd, buf, sizeof buf), 4);
        CU_ASSERT_EQUAL(memcmp(buf, "keep", 4), 0);
        close(fd);
    }
    unlink(path);
    rmdir(dir);
    test_loop_finish(loop);
}

/* ------------------------------------------------- hooks, given sockets */

static int on_socket(int fd, int family, void *ud)
{
    srv_ctx *c = ud;
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    if (c->socket_calls < 4)
        c->socket_family[c->socket_calls] = family;
    c->socket_calls++;
    c->socket_fd_ok = fl >= 0 && (fl & O_NONBLOCK) && fdfl >= 0 && (fdfl & FD_CLOEXEC);
    return c->socket_fail;
}

static void test_on_socket_hook(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    rill_server_opts o;

    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.on_socket = on_socket;
    /* once per listening socket, before bind, with the server's ud */
    srv = rill_server_new(loop, NULL, 0, &o, on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_bind(srv), 0);
    CU_ASSERT_EQUAL((size_t)c.socket_calls, rill_server_nsockets(srv));
    CU_ASSERT_EQUAL(c.socket_calls, 2);
    CU_ASSERT_EQUAL(c.socket_family[0], AF_INET6);
    CU_ASSERT_EQUAL(c.socket_family[1], AF_INET);
    CU_ASSERT_TRUE(c.socket_fd_ok);
    close_and_wait(loop, srv, &c);

    /* a failing hook fails bind: with its value when negative, else RILL_EINVAL */
    memset(&c, 0, sizeof c);
    c.socket_fail = -EPERM;
    srv = rill_server_new(loop, "127.0.0.1", 0, &o, on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(rill_server_bind(srv), -EPERM);
    CU_ASSERT_FALSE(rill_server_is_bound(srv));
    CU_ASSERT_EQUAL(rill_server_nsockets(srv), 0);
    c.socket_fail = 1;
    CU_ASSERT_EQUAL(rill_server_bind(srv), RILL_EINVAL);
    c.socket_fail = 0;
    CU_ASSERT_EQUAL(rill_server_bind(srv), 0);   /* nothing was left half bound */
    CU_ASSERT_EQUAL(c.socket_calls, 3);
    close_and_wait(loop, srv, &c);
    test_loop_finish(loop);
}

static void test_given_sockets(void)
{
    rill_loop *loop = test_loop_new(0);
    srv_ctx c;
    rill_server *srv;
    rill_server_opts o;
    struct sockaddr_storage ss;
    socklen_t len = fill_addr(&ss, AF_INET, "127.0.0.1", 0);
    int lfd, port;

    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(lfd >= 0);
    CU_ASSERT_FATAL(bind(lfd, (struct sockaddr *)&ss, len) == 0);
    CU_ASSERT_FATAL(listen(lfd, 16) == 0);
    len = sizeof ss;
    getsockname(lfd, (struct sockaddr *)&ss, &len);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    o.socks = &lfd;
    o.nsocks = 1;
    srv = rill_server_new(loop, NULL, 0, &o, on_client, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    lfd = -1;   /* the server copied the array */
    CU_ASSERT_FALSE(rill_server_is_bound(srv));
    CU_ASSERT_EQUAL(rill_server_start_serving(srv, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_server_nsockets(srv), 1);
    lfd = rill_server_socket(srv, 0);
    CU_ASSERT_EQUAL(rill_server_port(srv), port);
    CU_ASSERT(fcntl(lfd, F_GETFL) & O_NONBLOCK);
    CU_ASSERT(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
    CU_ASSERT(echo_roundtrip(loop, connect_tcp(AF_INET, "127.0.0.1", port), "given socket\n"));
    close_and_wait(loop, srv, &c);
    /* the server owned it: closed now */
    errno = 0;
    CU_ASSERT_EQUAL(fcntl(lfd, F_GETFD), -1);
    CU_ASSERT_EQUAL(errno, EBADF);
    test_loop_finish(loop);
}

static void test_reuse_port(void)
{
#ifdef SO_REUSEPORT
    rill_loop *loop = test_loop_new(0);
    srv_ctx c1, c2, c3;
    rill_server *s1, *s2, *s3;
    rill_server_opts o;
    int port;

    memset(&c1, 0, sizeof c1);
    memset(&c2, 0, sizeof c2);
    memset(&c3, 0, sizeof c3);
    memset(&o, 0, sizeof o);
    o.reuse_port = 1;
    s1 = serve(loop, "127.0.0.1", 0, &o, &c1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s1);
    port = rill_server_port(s1);
    s2 = serve(loop, "127.0.0.1", port, &o, &c2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s2);
    CU_ASSERT_TRUE(rill_server_is_serving(s2));
    CU_ASSERT_EQUAL(rill_server_port(s2), port);
    o.reuse_port = 0;
    s3 = rill_server_new(loop, "127.0.0.1", port, &o, on_client, &c3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s3);
    CU_ASSERT_EQUAL(rill_server_bind(s3), -EADDRINUSE);
    close_and_wait(loop, s3, &c3);
    close_and_wait(loop, s2, &c2);
    close_and_wait(loop, s1, &c1);
    test_loop_finish(loop);
#endif
}

/* ------------------------------------------------------------------- TLS */

/* A server context (the test certificate for localhost) and a client context
   trusting its CA; 0, or -1 when the openssl command is missing (skipped) or
   something failed (asserted). */
static int tls_contexts(rill_tls **stls, rill_tls **ctls)
{
    const test_certs *ct = test_certs_or_skip();
    rill_tls_opts o;

    *stls = *ctls = NULL;
    if (ct == NULL)
        return -1;
    memset(&o, 0, sizeof o);
    o.cert_file = ct->server;
    o.key_file = ct->key;
    *stls = rill_tls_server_new(&o);
    memset(&o, 0, sizeof o);
    o.ca_file = ct->ca;
    *ctls = rill_tls_client_new(&o);
    CU_ASSERT_PTR_NOT_NULL(*stls);
    CU_ASSERT_PTR_NOT_NULL(*ctls);
    if (*stls == NULL || *ctls == NULL) {
        rill_tls_free(*stls);
        rill_tls_free(*ctls);
        return -1;
    }
    return 0;
}

static void tls_client_opts(rill_connect_opts *co, rill_tls *ctls)
{
    memset(co, 0, sizeof *co);
    co->tls = ctls;
    co->server_hostname = "localhost";
}

static void test_tls_echo(void)
{
    rill_loop *loop;
    srv_ctx c;
    rill_server *srv;
    rill_server_opts o;
    rill_connect_opts co;
    rill_tls *stls, *ctls;
    int port;

    if (tls_contexts(&stls, &ctls) < 0)
        return;
    loop = test_loop_new(0);
    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.tls = stls;
    o.on_error = on_error;
    srv = serve(loop, "127.0.0.1", 0, &o, &c);
    rill_tls_free(stls);   /* the server holds its own reference */
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    port = rill_server_port(srv);
    tls_client_opts(&co, ctls);
    CU_ASSERT(echo_roundtrip_tls(loop, connect_tcp(AF_INET, "127.0.0.1", port), "hello over TLS\n", &co));
    CU_ASSERT(echo_roundtrip_tls(loop, connect_tcp(AF_INET, "127.0.0.1", port), "and again\n", &co));
    CU_ASSERT_EQUAL(c.clients, 2);
    CU_ASSERT_EQUAL(c.errors, 0);
    close_and_wait(loop, srv, &c);
    rill_tls_free(ctls);
    test_loop_finish(loop);
}

/* A peer that speaks plain text: on_error with its address, no on_client, and the
   server goes on serving. */
static void test_tls_handshake_failure(void)
{
    static const char junk[] = "GET / HTTP/1.0\r\n\r\n";
    rill_loop *loop;
    srv_ctx c;
    rill_server *srv;
    rill_server_opts o;
    rill_connect_opts co;
    rill_tls *stls, *ctls;
    char buf[256];
    int port, fd, eof;

    if (tls_contexts(&stls, &ctls) < 0)
        return;
    loop = test_loop_new(0);
    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.tls = stls;
    o.on_error = on_error;
    srv = serve(loop, "127.0.0.1", 0, &o, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    port = rill_server_port(srv);
    fd = connect_tcp(AF_INET, "127.0.0.1", port);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, junk, sizeof junk - 1), (ssize_t)(sizeof junk - 1));
    CU_ASSERT(test_run_until(loop, &c.errors, 5000));
    CU_ASSERT_EQUAL(c.errors, 1);
    CU_ASSERT_EQUAL(c.last_error, RILL_ETLS);
    CU_ASSERT_TRUE(c.error_peer);
    CU_ASSERT_EQUAL(c.clients, 0);
    read_all(fd, buf, sizeof buf, &eof);   /* the failed stream was aborted: EOF or a reset */
    close(fd);
    CU_ASSERT_TRUE(rill_server_is_serving(srv));
    tls_client_opts(&co, ctls);
    CU_ASSERT(echo_roundtrip_tls(loop, connect_tcp(AF_INET, "127.0.0.1", port), "still serving\n", &co));
    CU_ASSERT_EQUAL(c.clients, 1);
    close_and_wait(loop, srv, &c);
    rill_tls_free(stls);
    rill_tls_free(ctls);
    test_loop_finish(loop);
}

static void test_tls_handshake_timeout(void)
{
    rill_loop *loop;
    srv_ctx c;
    rill_server *srv;
    rill_server_opts o;
    rill_tls *stls, *ctls;
    int fd;
    uint64_t t0, took;

    if (tls_contexts(&stls, &ctls) < 0)
        return;
    loop = test_loop_new(0);
    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.tls = stls;
    o.on_error = on_error;
    o.ssl_handshake_timeout_ms = 200;
    srv = serve(loop, "127.0.0.1", 0, &o, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    t0 = test_now_ms();
    fd = connect_tcp(AF_INET, "127.0.0.1", rill_server_port(srv));   /* and says nothing */
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(test_run_until(loop, &c.errors, 5000));
    took = test_now_ms() - t0;
    CU_ASSERT_EQUAL(c.last_error, RILL_ETIMEDOUT);
    CU_ASSERT(took >= 150);
    CU_ASSERT(took < 4000);
    CU_ASSERT_EQUAL(c.clients, 0);
    close(fd);
    close_and_wait(loop, srv, &c);
    rill_tls_free(stls);
    rill_tls_free(ctls);
    test_loop_finish(loop);
}

/* A handshake in progress has nothing to flush: close aborts it at once, and it
   is no handshake failure. */
static void test_tls_close_during_handshake(void)
{
    rill_loop *loop;
    srv_ctx c;
    rill_server *srv;
    rill_server_opts o;
    rill_tls *stls, *ctls;
    int fd, dummy = 0;
    uint64_t t0;

    if (tls_contexts(&stls, &ctls) < 0)
        return;
    loop = test_loop_new(0);
    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.tls = stls;
    o.on_error = on_error;
    srv = serve(loop, "127.0.0.1", 0, &o, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    fd = connect_tcp(AF_INET, "127.0.0.1", rill_server_port(srv));
    CU_ASSERT_FATAL(fd >= 0);
    test_run_until(loop, &dummy, 200);   /* accepted, handshake waiting for the client */
    t0 = test_now_ms();
    CU_ASSERT_EQUAL(rill_server_close(srv, on_closed, &c), 0);
    CU_ASSERT(test_run_until(loop, &c.closed, 3000));
    CU_ASSERT(c.closed_at - t0 < 2000);
    CU_ASSERT_EQUAL(c.clients, 0);
    CU_ASSERT_EQUAL(c.errors, 0);
    close(fd);
    rill_tls_free(stls);
    rill_tls_free(ctls);
    test_loop_finish(loop);
}

int test_server_register(void)
{
    static const test_case cases[] = {
        { "reserved slot non-zero: NULL, EINVAL", test_reserved_slot },
        { "flags outside the accepted set: NULL, EINVAL", test_bad_flags },
        { "bad arguments", test_bad_arguments },
        { "echo over IPv4", test_echo_ipv4 },
        { "echo over IPv6", test_echo_ipv6 },
        { "host NULL: IPv6 and IPv4 on one port", test_echo_dual_stack },
        { "echo over a Unix socket, its file removed on close", test_echo_unix },
        { "is_bound/is_serving/nsockets across bind, serve, close", test_state_transitions },
        { "a closing server refuses bind/serve, a second close is harmless", test_closed_server_refuses },
        { "a server never started keeps the loop until closed", test_never_started_must_be_closed },
        { "start_serving calls back from the loop, with the bind error too", test_start_serving_callback },
        { "port 0: the picked port and the sockname text", test_port_zero_and_sockname },
        { "close: a reading client gets all buffered data, then EOF", test_close_flushes_then_eof },
        { "close: a client that never reads is aborted after shutdown_timeout", test_close_timeout_aborts },
        { "abort: every stream at once", test_abort },
        { "abort ends a close that waits for ever", test_abort_after_close },
        { "on_client may close the server", test_close_from_on_client },
        { "serve_forever: RILL_EBUSY twice, its callback after the close", test_serve_forever },
        { "500 clients at once", test_many_clients },
        { "EMFILE: pause, keep serving, resume", test_emfile_pauses_accepting },
        { "a failed re-arm after an accept pause is reported and retried", test_failed_rearm_reported_and_retried },
        { "Unix: a stale socket file is replaced", test_unix_stale_socket_removed },
        { "Unix: a regular file is refused and left intact", test_unix_regular_file_refused },
        { "on_socket: per listening socket; a failing hook fails bind", test_on_socket_hook },
        { "socks: serving given listening sockets", test_given_sockets },
        { "reuse_port", test_reuse_port },
        { "TLS: echo after the handshake", test_tls_echo },
        { "TLS: a failed handshake goes to on_error, serving goes on", test_tls_handshake_failure },
        { "TLS: ssl_handshake_timeout", test_tls_handshake_timeout },
        { "TLS: close aborts a handshake in progress", test_tls_close_during_handshake },
        { NULL, NULL }
    };
    return test_add_suite("server", cases);
}
