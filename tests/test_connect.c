/* rill_connect: resolution through a loopback DNS responder, Happy Eyeballs,
   timeouts, cancellation, unix sockets. No query ever reaches the system's DNS. */
#include "support/testutil.h"
#include "support/streams.h"
#include "support/dns_responder.h"
#include "rill_private.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct {
    int done;
    int status;
    rill_stream *s;
    int sync_call;
    uint64_t at;
    int on_socket_calls;
    int on_socket_fail;
} conn_result;

static void on_connect(rill_stream *s, int status, void *ud)
{
    conn_result *r = ud;
    if (test_sync_check())
        r->sync_call = 1;
    r->done++;
    r->status = status;
    r->s = s;
    r->at = test_now_ms();
}

static int count_sockets(int fd, int family, void *ud)
{
    conn_result *r = ud;
    (void)fd;
    (void)family;
    r->on_socket_calls++;
    return r->on_socket_fail;
}

static rill_loop *dns_loop(dns_responder *d)
{
    rill_loop_opts o;
    rill_loop *loop;
    memset(&o, 0, sizeof o);
    o.dns_servers = dns_responder_addr(d);
    o.dns_timeout_ms = 300;
    o.dns_tries = 1;
    loop = rill_loop_new(&o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    return loop;
}

/* A listener on addr:port (port 0: any); returns the fd, *port gets the bound port. */
static int listen_on(int family, const char *addr, int *port, int backlog)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(family, SOCK_STREAM, 0), one = 1;
    memset(&ss, 0, sizeof ss);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons((unsigned short)*port);
        inet_pton(AF_INET, addr, &in->sin_addr);
        len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((unsigned short)*port);
        inet_pton(AF_INET6, addr, &in6->sin6_addr);
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        len = sizeof *in6;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0) {
        close(fd);
        return -1;
    }
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* A black hole: a listener whose accept queue is full, so new connects hang
   (the kernel drops their SYNs). fillers[] keep the queue full. */
typedef struct {
    int lfd;
    int fillers[8];
    int nfill;
} black_hole;

static int black_hole_open(black_hole *b, int family, const char *addr, int port)
{
    int i, p = port;
    memset(b, 0, sizeof *b);
    b->lfd = listen_on(family, addr, &p, 0);
    if (b->lfd < 0)
        return -1;
    for (i = 0; i < 8; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = socket(family, SOCK_STREAM, 0);
        getsockname(b->lfd, (struct sockaddr *)&ss, &len);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        connect(fd, (struct sockaddr *)&ss, len);
        b->fillers[b->nfill++] = fd;
    }
    usleep(50000); /* let the handshakes that fit complete */
    return p;
}

static void black_hole_close(black_hole *b)
{
    int i;
    for (i = 0; i < b->nfill; i++)
        close(b->fillers[i]);
    if (b->lfd >= 0)
        close(b->lfd);
}

static void close_stream(rill_stream *s)
{
    if (s != NULL)
        rill_abort(s);
}

/* ------------------------------------------------------------------ tests */

static void test_numeric_ipv4_no_dns(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop *loop;
    conn_result r;
    int port = 0, lfd;
    char text[64];

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    loop = dns_loop(d);
    lfd = listen_on(AF_INET, "127.0.0.1", &port, 16);
    CU_ASSERT_FATAL(lfd >= 0);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect(loop, "127.0.0.1", port, NULL, on_connect, &r, NULL)), 0);
    CU_ASSERT_EQUAL(r.done, 0);
    CU_ASSERT(test_run_until(loop, &r.done, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.sync_call, 0);
    CU_ASSERT_PTR_NOT_NULL(r.s);
    if (r.s != NULL) {
        CU_ASSERT(rill_get_extra_info(r.s, "peername", text, sizeof text) > 0);
        CU_ASSERT_EQUAL(strncmp(text, "127.0.0.1:", 10), 0);
        CU_ASSERT_EQUAL(atoi(text + 10), port);
    }
    CU_ASSERT_EQUAL(dns_responder_queries(d), 0);
    close_stream(r.s);
    close(lfd);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_refused(void)
{
    rill_loop *loop = test_loop_new(0);
    conn_result r;
    int port = 0, lfd = listen_on(AF_INET, "127.0.0.1", &port, 1);

    close(lfd); /* the port is now closed */
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", port, NULL, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(loop, &r.done, 5000));
    CU_ASSERT_EQUAL(r.status, -ECONNREFUSED);
    CU_ASSERT_PTR_NULL(r.s);
    test_loop_finish(loop);
}

static void test_black_hole_timeout(void)
{
    rill_loop *loop = test_loop_new(0);
    black_hole b;
    conn_result r;
    rill_connect_opts o;
    uint64_t start;
    int port = black_hole_open(&b, AF_INET, "127.0.0.1", 0);

    CU_ASSERT_FATAL(port > 0);
    memset(&r, 0, sizeof r);
    memset(&o, 0, sizeof o);
    o.timeout_ms = 300;
    start = test_now_ms();
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", port, &o, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(loop, &r.done, 10000));
    CU_ASSERT_EQUAL(r.status, RILL_ETIMEDOUT);
    CU_ASSERT(r.at - start >= 290 && r.at - start < 5000);
    black_hole_close(&b);
    test_loop_finish(loop);
}

/* AAAA -> [::1] black hole, A -> 127.0.0.1 live, same port. */
typedef struct {
    dns_responder *d;
    rill_loop *loop;
    black_hole b;
    int lfd, port;
} he_setup;

static int he_open(he_setup *h, const char *name)
{
    int tries;
    memset(h, 0, sizeof *h);
    h->b.lfd = -1;
    h->lfd = -1;
    for (tries = 0; tries < 20; tries++) {
        h->port = 0;
        h->lfd = listen_on(AF_INET, "127.0.0.1", &h->port, 16);
        if (h->lfd >= 0 && black_hole_open(&h->b, AF_INET6, "::1", h->port) == h->port)
            break;
        if (h->lfd >= 0)
            close(h->lfd);
        h->lfd = -1;
    }
    if (h->lfd < 0)
        return -1;
    h->d = dns_responder_start(AF_INET);
    if (h->d == NULL)
        return -1;
    dns_responder_add(h->d, name, 28, "::1", 0);
    dns_responder_add(h->d, name, 1, "127.0.0.1", 0);
    h->loop = dns_loop(h->d);
    return 0;
}

static void he_close(he_setup *h)
{
    black_hole_close(&h->b);
    close(h->lfd);
    test_loop_finish(h->loop);
    dns_responder_stop(h->d);
}

static void test_happy_eyeballs_falls_back_to_ipv4(void)
{
    he_setup h;
    conn_result r;
    rill_connect_opts o;
    uint64_t start;
    char text[64];

    CU_ASSERT_EQUAL_FATAL(he_open(&h, "he.test"), 0);
    memset(&r, 0, sizeof r);
    memset(&o, 0, sizeof o);
    o.on_socket = count_sockets;
    start = test_now_ms();
    CU_ASSERT_EQUAL(rill_connect(h.loop, "he.test", h.port, &o, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(h.loop, &r.done, 10000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT(r.at - start >= 150 && r.at - start <= 1500);
    CU_ASSERT_EQUAL(r.on_socket_calls, 2); /* IPv6 first, then IPv4 */
    if (r.s != NULL) {
        CU_ASSERT(rill_get_extra_info(r.s, "peername", text, sizeof text) > 0);
        CU_ASSERT_EQUAL(strncmp(text, "127.0.0.1:", 10), 0);
    }
    CU_ASSERT(dns_responder_queries_for(h.d, "he.test") >= 2); /* A and AAAA went to the responder */
    close_stream(r.s);
    he_close(&h);
}

static void test_sequential_times_out(void)
{
    he_setup h;
    conn_result r;
    rill_connect_opts o;

    CU_ASSERT_EQUAL_FATAL(he_open(&h, "seq.test"), 0);
    memset(&r, 0, sizeof r);
    memset(&o, 0, sizeof o);
    o.happy_eyeballs_delay_ms = -1;
    o.timeout_ms = 700;
    CU_ASSERT_EQUAL(rill_connect(h.loop, "seq.test", h.port, &o, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(h.loop, &r.done, 10000));
    CU_ASSERT_EQUAL(r.status, RILL_ETIMEDOUT); /* stuck on the IPv6 black hole */
    he_close(&h);
}

static void test_first_addresses_refuse(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop *loop;
    conn_result r;
    int port = 0, lfd = listen_on(AF_INET, "127.0.0.1", &port, 16);
    uint64_t start;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_FATAL(lfd >= 0);
    /* nothing listens on 127.0.0.2/3 at that port: refused at once */
    dns_responder_add(d, "many.test", 1, "127.0.0.2", 0);
    dns_responder_add(d, "many.test", 1, "127.0.0.3", 0);
    dns_responder_add(d, "many.test", 1, "127.0.0.1", 0);
    loop = dns_loop(d);
    memset(&r, 0, sizeof r);
    start = test_now_ms();
    CU_ASSERT_EQUAL(rill_connect(loop, "many.test", port, NULL, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(loop, &r.done, 10000));
    CU_ASSERT_EQUAL(r.status, 0);
    /* failures start the next attempt at once: no 250 ms delays, only the 50 ms resolution delay */
    CU_ASSERT(r.at - start < 240);
    close_stream(r.s);
    close(lfd);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* Eight addresses, all a black hole at first: the attempts pile up side by
   side, each watched by the loop. Then the black hole's queue is drained, the
   kernel's SYN retry lets the early attempts connect, and one of the first
   ones wins. Attempts must not move while watched: an attempts array that grew
   by realloc handed the loop freed memory exactly here. */
static void test_many_running_attempts(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop *loop;
    rill_connect_opts o;
    black_hole b;
    conn_result r;
    int i, port, fd;
    uint64_t until;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    port = black_hole_open(&b, AF_INET, "127.0.0.1", 0);
    CU_ASSERT_FATAL(port > 0);
    for (i = 0; i < 8; i++)
        dns_responder_add(d, "crowd.test", 1, "127.0.0.1", 0);
    loop = dns_loop(d);
    memset(&o, 0, sizeof o);
    o.family = AF_INET;
    o.happy_eyeballs_delay_ms = 10;
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(rill_connect(loop, "crowd.test", port, &o, on_connect, &r, NULL), 0);
    until = test_now_ms() + 400;
    while (test_now_ms() < until && r.done == 0)
        rill_loop_run_once(loop, 20);
    CU_ASSERT_EQUAL_FATAL(r.done, 0);   /* all eight hang */
    /* The fillers go, so that the attempts' SYN retries find room. */
    for (i = 0; i < b.nfill; i++)
        close(b.fillers[i]);
    b.nfill = 0;
    fcntl(b.lfd, F_SETFL, O_NONBLOCK);
    until = test_now_ms() + 10000;
    while (test_now_ms() < until && r.done == 0) {
        while ((fd = accept(b.lfd, NULL, NULL)) >= 0)
            close(fd);
        rill_loop_run_once(loop, 20);
    }
    CU_ASSERT_EQUAL(r.done, 1);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_PTR_NOT_NULL(r.s);
    if (r.s != NULL)
        CU_ASSERT_EQUAL(rill_write(r.s, "x", 1, NULL, NULL), 0);
    rill_loop_run_once(loop, 10);
    close_stream(r.s);
    black_hole_close(&b);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* RFC 8305 section 5: a connection-attempt delay below 10 ms is raised to 10 ms. */
typedef struct {
    conn_result r;          /* first: on_connect sees it */
    uint64_t at[4];
    int n;
} timed_result;

static int time_socket(int fd, int family, void *ud)
{
    timed_result *t = ud;
    (void)fd;
    (void)family;
    if (t->n < 4)
        t->at[t->n++] = test_now_ms();
    return 0;
}

static void test_attempt_delay_floor(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop *loop;
    rill_connect_opts o;
    black_hole b;
    timed_result t;
    rill_connect_req *req = NULL;
    int port;
    uint64_t until;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    port = black_hole_open(&b, AF_INET, "127.0.0.1", 0);
    CU_ASSERT_FATAL(port > 0);
    dns_responder_add(d, "floor.test", 1, "127.0.0.1", 0);
    dns_responder_add(d, "floor.test", 1, "127.0.0.1", 0);
    loop = dns_loop(d);
    memset(&o, 0, sizeof o);
    o.family = AF_INET;
    o.happy_eyeballs_delay_ms = 1;
    o.on_socket = time_socket;
    memset(&t, 0, sizeof t);
    CU_ASSERT_EQUAL(rill_connect(loop, "floor.test", port, &o, on_connect, &t, &req), 0);
    until = test_now_ms() + 3000;
    while (t.n < 2 && test_now_ms() < until)
        rill_loop_run_once(loop, 5);
    CU_ASSERT_EQUAL_FATAL(t.n, 2);
    CU_ASSERT(t.at[1] - t.at[0] >= 10);   /* timers never fire early */
    rill_connect_cancel(req);
    CU_ASSERT(test_run_until(loop, &t.r.done, 2000));
    CU_ASSERT_EQUAL(t.r.status, RILL_ECANCELED);
    black_hole_close(&b);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* A answers, AAAA is slow: the resolution-delay timer starts (arming a timer needs
   no memory), so under an allocation failure anywhere a connect that succeeds never
   waits in RES_DELAY for AAAA's 3 s timeout. */
static void test_resolution_delay_timer_fails(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop_opts lo;
    rill_loop *loop;
    unsigned long k;
    int port = 0, lfd = listen_on(AF_INET, "127.0.0.1", &port, 16), slow = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_FATAL(lfd >= 0);
    dns_responder_add(d, "slow6.test", 1, "127.0.0.1", 0);
    dns_responder_set_delay(d, "slow6.test", 28, 5000);
    memset(&lo, 0, sizeof lo);
    lo.dns_servers = dns_responder_addr(d);
    lo.dns_timeout_ms = 3000;
    lo.dns_tries = 1;
    for (k = 1; k <= 6; k++) {
        conn_result r;
        uint64_t start;

        loop = rill_loop_new(&lo);
        CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
        memset(&r, 0, sizeof r);
        CU_ASSERT_EQUAL_FATAL(rill_connect(loop, "slow6.test", port, NULL, on_connect, &r, NULL), 0);
        start = test_now_ms();
        rill__alloc_fail_at(k);
        CU_ASSERT(test_run_until(loop, &r.done, 10000));
        rill__alloc_fail_at(0);
        /* a failure elsewhere (the A query, the socket) may rightly wait for AAAA;
           a connect that succeeds must not have waited for it */
        if (r.status == 0 && test_now_ms() - start > 2000)
            slow++;
        CU_ASSERT(r.status == 0 || r.status == RILL_ENOMEM || r.status == RILL_EDNS);
        if (r.s != NULL)
            rill_abort(r.s);
        test_loop_finish(loop);
    }
    CU_ASSERT_EQUAL(slow, 0);
    close(lfd);
    dns_responder_stop(d);
}

static void test_all_refuse_reports_first_error(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop *loop;
    conn_result r;
    int port = 0, lfd = listen_on(AF_INET, "127.0.0.1", &port, 1);

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    close(lfd);
    dns_responder_add(d, "none.test", 1, "127.0.0.2", 0);
    dns_responder_add(d, "none.test", 1, "127.0.0.1", 0);
    loop = dns_loop(d);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(rill_connect(loop, "none.test", port, NULL, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(loop, &r.done, 10000));
    CU_ASSERT_EQUAL(r.status, -ECONNREFUSED);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* AAAA answers after A: within the 50 ms resolution delay IPv6 still goes first;
   well after it, IPv4 has already won. */
static void run_resolution_delay(int aaaa_delay_ms, const char *want_prefix)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop *loop;
    conn_result r;
    int port = 0, l4 = -1, l6 = -1, tries;
    char text[64];

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    for (tries = 0; tries < 20 && l6 < 0; tries++) {
        port = 0;
        l4 = listen_on(AF_INET, "127.0.0.1", &port, 16);
        l6 = listen_on(AF_INET6, "::1", &port, 16);
        if (l6 < 0)
            close(l4);
    }
    CU_ASSERT_FATAL(l6 >= 0);
    dns_responder_add(d, "late6.test", 1, "127.0.0.1", 0);
    dns_responder_add(d, "late6.test", 28, "::1", aaaa_delay_ms);
    loop = dns_loop(d);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(rill_connect(loop, "late6.test", port, NULL, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(loop, &r.done, 10000));
    CU_ASSERT_EQUAL(r.status, 0);
    if (r.s != NULL) {
        CU_ASSERT(rill_get_extra_info(r.s, "peername", text, sizeof text) > 0);
        CU_ASSERT_EQUAL(strncmp(text, want_prefix, strlen(want_prefix)), 0);
    }
    close_stream(r.s);
    close(l4);
    close(l6);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_resolution_delay_prefers_late_ipv6(void) { run_resolution_delay(10, "[::1]:"); }
static void test_resolution_delay_expires(void) { run_resolution_delay(400, "127.0.0.1:"); }

static void test_cancel_during_resolution(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop *loop;
    conn_result r;
    rill_connect_req *req = NULL;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    dns_responder_set_behaviour(d, "slow.test", DNS_DROP);
    loop = dns_loop(d);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(rill_connect(loop, "slow.test", 80, NULL, on_connect, &r, &req), 0);
    rill_loop_run_once(loop, 20);
    CU_ASSERT_EQUAL(r.done, 0);
    rill_connect_cancel(req);
    CU_ASSERT_EQUAL(r.done, 0); /* from the loop */
    CU_ASSERT(test_run_until(loop, &r.done, 2000));
    CU_ASSERT_EQUAL(r.status, RILL_ECANCELED);
    CU_ASSERT_PTR_NULL(r.s);
    rill_loop_run_once(loop, 50);
    CU_ASSERT_EQUAL(r.done, 1); /* no late callback */
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_cancel_during_attempts(void)
{
    rill_loop *loop = test_loop_new(0);
    black_hole b;
    conn_result r;
    rill_connect_req *req = NULL;
    int port = black_hole_open(&b, AF_INET, "127.0.0.1", 0);

    CU_ASSERT_FATAL(port > 0);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", port, NULL, on_connect, &r, &req), 0);
    rill_loop_run_once(loop, 50);
    rill_loop_run_once(loop, 50);
    CU_ASSERT_EQUAL(r.done, 0);
    rill_connect_cancel(req);
    CU_ASSERT(test_run_until(loop, &r.done, 2000));
    CU_ASSERT_EQUAL(r.status, RILL_ECANCELED);
    rill_loop_run_once(loop, 50);
    CU_ASSERT_EQUAL(r.done, 1);
    black_hole_close(&b);
    test_loop_finish(loop);
}

static void test_dns_failures(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    rill_loop *loop;
    conn_result r;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    dns_responder_set_behaviour(d, "nx.test", DNS_NXDOMAIN);
    dns_responder_set_behaviour(d, "broken.test", DNS_SERVFAIL);
    dns_responder_add(d, "v6only.test", 28, "::1", 0);
    loop = dns_loop(d);

    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(rill_connect(loop, "nx.test", 80, NULL, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(loop, &r.done, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_ENOTFOUND);

    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(rill_connect(loop, "broken.test", 80, NULL, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(loop, &r.done, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_EDNS);

    {
        rill_connect_opts o;
        memset(&o, 0, sizeof o);
        o.family = AF_INET;
        memset(&r, 0, sizeof r);
        CU_ASSERT_EQUAL(rill_connect(loop, "v6only.test", 80, &o, on_connect, &r, NULL), 0);
        CU_ASSERT(test_run_until(loop, &r.done, 5000));
        CU_ASSERT_EQUAL(r.status, RILL_ENOTFOUND);
    }
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_on_socket_failure(void)
{
    rill_loop *loop = test_loop_new(0);
    conn_result r;
    rill_connect_opts o;
    int port = 0, lfd = listen_on(AF_INET, "127.0.0.1", &port, 16);

    memset(&r, 0, sizeof r);
    memset(&o, 0, sizeof o);
    o.on_socket = count_sockets;
    r.on_socket_fail = -EPERM;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", port, &o, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(loop, &r.done, 5000));
    CU_ASSERT_EQUAL(r.status, -EPERM);
    CU_ASSERT_EQUAL(r.on_socket_calls, 1);

    memset(&r, 0, sizeof r);
    r.on_socket_fail = 1; /* positive: RILL_EINVAL */
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", port, &o, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(loop, &r.done, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_EINVAL);
    close(lfd);
    test_loop_finish(loop);
}

static void test_local_address(void)
{
    rill_loop *loop = test_loop_new(0);
    conn_result r;
    rill_connect_opts o;
    int port = 0, lport = 0, lfd = listen_on(AF_INET, "127.0.0.1", &port, 16);
    int probe = listen_on(AF_INET, "127.0.0.1", &lport, 1);
    char text[64];

    close(probe); /* a free local port */
    memset(&r, 0, sizeof r);
    memset(&o, 0, sizeof o);
    o.local_host = "127.0.0.1";
    o.local_port = lport;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", port, &o, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(loop, &r.done, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    if (r.s != NULL) {
        snprintf(text, sizeof text, "127.0.0.1:%d", lport);
        {
            char got[64];
            CU_ASSERT(rill_get_extra_info(r.s, "sockname", got, sizeof got) > 0);
            CU_ASSERT_STRING_EQUAL(got, text);
        }
    }
    close_stream(r.s);
    close(lfd);
    test_loop_finish(loop);
}

static void test_bad_arguments(void)
{
    rill_loop *loop = test_loop_new(0);
    conn_result r;
    rill_connect_opts o;
    int dummy;

    memset(&o, 0, sizeof o);
    o.flags = 0x40000000;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, &o, on_connect, &r, NULL), RILL_EINVAL);
    memset(&o, 0, sizeof o);
    o.reserved[0] = &dummy;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, &o, on_connect, &r, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_connect(loop, NULL, 80, NULL, on_connect, &r, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 70000, NULL, on_connect, &r, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, NULL, NULL, &r, NULL), RILL_EINVAL);
    memset(&o, 0, sizeof o);
    o.family = 12345;
    CU_ASSERT_EQUAL(rill_connect(loop, "127.0.0.1", 80, &o, on_connect, &r, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0); /* nothing leaked into the loop */
    test_loop_finish(loop);
}

static void test_unix(void)
{
    rill_loop *loop = test_loop_new(0);
    conn_result r;
    struct sockaddr_un un;
    char path[64];
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(path, sizeof path, "/tmp/rill-test-%d.sock", (int)getpid());
    unlink(path);
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, path);
    CU_ASSERT_EQUAL_FATAL(bind(lfd, (struct sockaddr *)&un, sizeof un), 0);
    CU_ASSERT_EQUAL_FATAL(listen(lfd, 4), 0);
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(TEST_CALL(rill_connect_unix(loop, path, NULL, on_connect, &r, NULL)), 0);
    CU_ASSERT(test_run_until(loop, &r.done, 5000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.sync_call, 0);
    close_stream(r.s);
    close(lfd);
    unlink(path);

    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(rill_connect_unix(loop, path, NULL, on_connect, &r, NULL), 0);
    CU_ASSERT(test_run_until(loop, &r.done, 5000));
    CU_ASSERT_EQUAL(r.status, -ENOENT);
    test_loop_finish(loop);
}

int test_connect_register(void)
{
    static const test_case cases[] = {
        { "numeric IPv4 connects without any DNS query", test_numeric_ipv4_no_dns },
        { "a closed port gives -ECONNREFUSED", test_refused },
        { "a black hole with timeout_ms gives RILL_ETIMEDOUT", test_black_hole_timeout },
        { "Happy Eyeballs: IPv6 black hole, IPv4 wins after the delay", test_happy_eyeballs_falls_back_to_ipv4 },
        { "sequential attempts (delay -1) time out on the black hole", test_sequential_times_out },
        { "several A records, the first ones refuse", test_first_addresses_refuse },
        { "eight hanging attempts, an early one wins: attempts never move while watched", test_many_running_attempts },
        { "a Happy Eyeballs delay below 10 ms is raised to 10 ms", test_attempt_delay_floor },
        { "an allocation failure never makes a connect wait for a slow AAAA", test_resolution_delay_timer_fails },
        { "every address refuses: the first attempt's error", test_all_refuse_reports_first_error },
        { "AAAA within the resolution delay goes first", test_resolution_delay_prefers_late_ipv6 },
        { "AAAA after the resolution delay: IPv4 starts", test_resolution_delay_expires },
        { "cancel during resolution", test_cancel_during_resolution },
        { "cancel during attempts", test_cancel_during_attempts },
        { "NXDOMAIN, SERVFAIL and a missing family", test_dns_failures },
        { "a failing on_socket fails the attempt with its error", test_on_socket_failure },
        { "local_host/local_port bind the attempt", test_local_address },
        { "bad arguments are refused without side effects", test_bad_arguments },
        { "unix sockets: connect and ENOENT", test_unix },
        { NULL, NULL }
    };
    return test_add_suite("connect", cases);
}
