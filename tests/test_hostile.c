/* Hostile peers: slowloris (1 000 connections, FD_SETSIZE - 64 on select, trickling a byte every
   100 ms while a normal client is served at normal speed); a peer that never
   reads while we write 100 MiB (memory bounded by the write buffer we chose,
   drain never completes falsely); an endless line without a newline (buffered
   bytes bounded, readline gets RILL_ELIMIT); a TLS peer that stalls in the
   middle of its ClientHello (the handshake times out, on_error hears it, the
   server goes on serving).

   Servers that must be measured or stressed apart from the test run in forked
   children, stopped through a pipe and, if that fails, killed by their PID.
   Every bound is generous: these tests catch unbounded behaviour, not speed. */
#include "support/testutil.h"
#include "support/streams.h"
#include "support/proc.h"
#include "support/certs.h"
#include "stream.h"
#include "syshooks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

/* AddressSanitizer's quarantine keeps freed memory resident: RSS says nothing then. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_MEANINGFUL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_MEANINGFUL 0
#endif
#endif
#ifndef RSS_MEANINGFUL
#define RSS_MEANINGFUL 1
#endif

static int connect_to(int port, int nonblock)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0)
        return -1;
    if (nonblock)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ========================================================== line echo child */

/* A rill line-echo server in a child: it writes its port to port_wr, serves
   until ctl_rd reports EOF (the parent closed its end), then closes gracefully. */
typedef struct echo_child {
    rill_loop *loop;
    rill_server *srv;
    rill_watch *ctl;
    int clients;
} echo_child;

static void ec_line(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    if (status < 0 || len == 0) {
        rill_close(s, NULL, NULL);
        return;
    }
    if (rill_write(s, data, len, NULL, NULL) < 0 || rill_readline(s, ec_line, ud) < 0)
        rill_close(s, NULL, NULL);
}

static void ec_client(rill_server *srv, rill_stream *s, void *ud)
{
    echo_child *e = ud;
    (void)srv;
    e->clients++;
    if (rill_readline(s, ec_line, e) < 0)
        rill_close(s, NULL, NULL);
}

static void ec_ctl(rill_watch *w, int revents, void *ud)
{
    echo_child *e = ud;
    (void)revents;
    rill_watch_stop(w);
    e->ctl = NULL;
    rill_server_close(e->srv, NULL, NULL);
}

static int echo_child_main(int port_wr, int ctl_rd)
{
    echo_child e;
    rill_server_opts o;
    int port;

    memset(&e, 0, sizeof e);
    memset(&o, 0, sizeof o);
    o.backlog = 1024;
    o.shutdown_timeout_ms = 2000;
    if ((e.loop = test_loop_try_new(RILL_BACKEND_AUTO)) == NULL)
        return 10;
    if ((e.srv = rill_server_new(e.loop, "127.0.0.1", 0, &o, ec_client, &e)) == NULL)
        return 11;
    if (rill_server_start_serving(e.srv, NULL, NULL) != 0)
        return 12;
    port = rill_server_port(e.srv);
    if (write(port_wr, &port, sizeof port) != (ssize_t)sizeof port)
        return 13;
    close(port_wr);
    if ((e.ctl = rill_watch_fd(e.loop, ctl_rd, RILL_READABLE, ec_ctl, &e)) == NULL)
        return 14;
    if (rill_loop_run(e.loop) != 0)
        return 15;
    if (rill_loop_free(e.loop) != 0)
        return 16;
    return 0;
}

/* Starts the child; *port gets its port, *ctl the descriptor whose closing stops it. */
static pid_t echo_child_start(int *port, int *ctl)
{
    int pp[2], cp[2];
    pid_t pid;

    *ctl = -1;
    if (pipe(pp) < 0)
        return -1;
    if (pipe(cp) < 0) {
        close(pp[0]);
        close(pp[1]);
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        close(pp[0]);
        close(cp[1]);
        alarm(60);
        _exit(echo_child_main(pp[1], cp[0]));
    }
    close(pp[1]);
    close(cp[0]);
    *ctl = cp[1];
    *port = -1;
    if (pid > 0) {
        struct pollfd p;
        p.fd = pp[0];
        p.events = POLLIN;
        if (poll(&p, 1, 5000) != 1 || read(pp[0], port, sizeof *port) != (ssize_t)sizeof *port)
            *port = -1;
    }
    close(pp[0]);
    return pid;
}

/* One line round trip on a blocking-free socket; returns its time in ms, or -1. */
static long roundtrip(int fd, const char *line, int timeout_ms)
{
    char buf[256];
    size_t len = strlen(line), got = 0;
    uint64_t t0 = test_now_ms(), end = t0 + (uint64_t)timeout_ms;

    if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len)
        return -1;
    while (got < len) {
        struct pollfd p;
        ssize_t n;
        uint64_t now = test_now_ms();
        if (now >= end)
            return -1;
        p.fd = fd;
        p.events = POLLIN;
        if (poll(&p, 1, (int)(end - now)) != 1)
            continue;
        n = recv(fd, buf + got, sizeof buf - got, MSG_DONTWAIT);
        if (n < 0 && errno == EAGAIN)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    if (got != len || memcmp(buf, line, len) != 0)
        return -1;
    return (long)(test_now_ms() - t0);
}

/* ============================================================== slowloris */

#define SLOW_MS 3000

/* The child's loop (test_loop_new) watches with select when told to, or when the
   build has no poll: then FD_SETSIZE bounds how many clients it can hold. */
static int child_uses_select(void)
{
    const char *b = getenv("RILL_TEST_BACKEND");
    rill_loop_opts o;
    rill_loop *l;

    if (b != NULL && strcmp(b, "select") == 0)
        return 1;
    memset(&o, 0, sizeof o);
    o.backend = RILL_BACKEND_POLL;
    o.dns_servers = "127.0.0.1:9";
    if ((l = rill_loop_new(&o)) == NULL)
        return 1;
    rill_loop_free(l);
    return 0;
}

static void test_slowloris(void)
{
    struct rlimit rl, saved;
    int nslow = 1000, *slow, port = -1, ctl = -1, normal, i, open_slow = 0, trips = 0, failed_trips = 0;
    long worst = 0, rtt;
    uint64_t start, next_tick;
    unsigned long bytes = 0;
    pid_t pid;
    char line[64];

    /* Room for the trickling sockets here and in the child (which inherits the limit). */
    if (getrlimit(RLIMIT_NOFILE, &saved) < 0)
        memset(&saved, 0, sizeof saved);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nslow + 64)
        nslow = rl.rlim_cur > 264 ? (int)rl.rlim_cur - 64 : 200;
    /* The select backend cannot watch descriptors at or above FD_SETSIZE. */
    if (child_uses_select() && nslow + 64 > FD_SETSIZE)
        nslow = FD_SETSIZE - 64;
    pid = echo_child_start(&port, &ctl);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_TRUE(port > 0);
    slow = calloc((size_t)nslow, sizeof *slow);
    CU_ASSERT_PTR_NOT_NULL(slow);
    if (port > 0 && slow != NULL) {
        for (i = 0; i < nslow; i++)
            if ((slow[i] = connect_to(port, 1)) >= 0)
                open_slow++;
        CU_ASSERT_EQUAL(open_slow, nslow);
        normal = connect_to(port, 0);
        CU_ASSERT_TRUE(normal >= 0);
        start = next_tick = test_now_ms();
        while (normal >= 0 && test_now_ms() - start < SLOW_MS) {
            if (test_now_ms() >= next_tick) {
                /* every slow client sends one more byte of a line that never ends */
                for (i = 0; i < nslow; i++)
                    if (slow[i] >= 0 && send(slow[i], "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                        bytes++;
                next_tick += 100;
            }
            snprintf(line, sizeof line, "normal client, trip %d\n", trips);
            rtt = roundtrip(normal, line, 2000);
            trips++;
            if (rtt < 0 || rtt >= 200)
                failed_trips++;
            if (rtt > worst || rtt < 0)
                worst = rtt < 0 ? 99999 : rtt;
            usleep(10000);
        }
        printf("[%d slow connections, %lu bytes trickled, %d round trips, worst %ld ms] ",
               nslow, bytes, trips, worst);
        CU_ASSERT_TRUE(trips >= 50);
        CU_ASSERT_EQUAL(failed_trips, 0);
        CU_ASSERT_TRUE(bytes >= (unsigned long)nslow * (SLOW_MS / 100) * 8 / 10);
        /* a new client after all that is still served */
        {
            int late = connect_to(port, 0);
            CU_ASSERT_TRUE(late >= 0 && roundtrip(late, "late\n", 2000) >= 0);
            if (late >= 0)
                close(late);
        }
        if (normal >= 0)
            close(normal);
        for (i = 0; i < nslow; i++)
            if (slow[i] >= 0)
                close(slow[i]);
    }
    free(slow);
    close(ctl);
    CU_ASSERT_EQUAL(test_reap(pid, 10000), 0);
    if (saved.rlim_cur > 0)
        setrlimit(RLIMIT_NOFILE, &saved);   /* the suites after this one get the usual limit */
}

/* ===================================================== a peer that never reads */

#define BIG_TOTAL (100u * 1024u * 1024u)
#define BIG_CHUNK (64u * 1024u)
#define BIG_HIGH  (256u * 1024u)
#define BIG_LOW   (64u * 1024u)

typedef struct big {
    rill_loop *loop;
    rill_stream *s;
    char chunk[BIG_CHUNK];
    size_t written;
    size_t max_wbuf, max_wcap;
    int drains, false_drains, status, done;
    int paused;             /* the last write left more than high buffered */
    long rss0, rss_max;
    rill_timer *probe;
    int peer;
    rill_watch *peer_watch;
    size_t peer_got;
    int bad_byte;
} big;

static void big_sample(big *b)
{
    long rss = test_proc_status_kib(0, "VmRSS");
    if (rss > b->rss_max)
        b->rss_max = rss;
    if (b->s != NULL) {
        if (rill_get_write_buffer_size(b->s) > b->max_wbuf)
            b->max_wbuf = rill_get_write_buffer_size(b->s);
        if (b->s->wbuf.cap > b->max_wcap)
            b->max_wcap = b->s->wbuf.cap;
    }
}

static void big_next(rill_stream *s, int status, void *ud);

static void big_write(big *b)
{
    int rc;
    size_t i, n = BIG_CHUNK;
    if (b->written >= BIG_TOTAL) {
        b->done = 1;
        return;
    }
    for (i = 0; i < n; i++)
        b->chunk[i] = (char)((b->written + i) % 251);
    b->written += n;
    if ((rc = rill_write(b->s, b->chunk, n, big_next, b)) < 0) {
        b->status = rc;
        b->done = 1;
    }
    b->paused = rill_get_write_buffer_size(b->s) > BIG_HIGH;
    big_sample(b);
}

/* The write's callback is a drain started after it (asyncio): at once while the
   buffer is at most high, else only once it has fallen to low. */
static void big_next(rill_stream *s, int status, void *ud)
{
    big *b = ud;
    b->drains++;
    if (status < 0) {
        b->status = status;
        b->done = 1;
        return;
    }
    if (rill_get_write_buffer_size(s) > (b->paused ? BIG_LOW : BIG_HIGH))
        b->false_drains++;
    big_write(b);
}

static void big_client(rill_server *srv, rill_stream *s, void *ud)
{
    big *b = ud;
    (void)srv;
    b->s = s;
    rill_set_write_buffer_limits(s, BIG_HIGH, BIG_LOW);
    big_write(b);
}

static void big_probe(void *ud)
{
    big *b = ud;
    big_sample(b);
    b->probe = rill_call_later(b->loop, 20, big_probe, b);
}

/* Phase 2: the peer reads (and checks) everything. */
static void big_peer_read(rill_watch *w, int revents, void *ud)
{
    big *b = ud;
    static char buf[256 * 1024];
    ssize_t n, i;
    (void)w; (void)revents;
    n = read(b->peer, buf, sizeof buf);
    for (i = 0; i < n; i++)
        if ((unsigned char)buf[i] != (b->peer_got + (size_t)i) % 251)
            b->bad_byte = 1;
    if (n > 0)
        b->peer_got += (size_t)n;
}

static int never_reads_child(void)
{
    big *b = calloc(1, sizeof *b);
    rill_server *srv;
    size_t stalled_at;
    int drains_at, dummy = 0;
    uint64_t end;

    if (b == NULL)
        return 9;
    if ((b->loop = test_loop_try_new(RILL_BACKEND_AUTO)) == NULL)
        return 10;
    if ((srv = rill_server_new(b->loop, "127.0.0.1", 0, NULL, big_client, b)) == NULL ||
        rill_server_start_serving(srv, NULL, NULL) != 0)
        return 11;
    b->rss0 = b->rss_max = test_proc_status_kib(0, "VmRSS");
    if ((b->peer = connect_to(rill_server_port(srv), 1)) < 0)
        return 12;
    b->probe = rill_call_later(b->loop, 20, big_probe, b);
    /* Phase 1: the peer never reads. The writer fills the kernel's buffers, then its own
       up to high, and there it stops: drain does not complete, memory does not grow. */
    test_run_until(b->loop, &dummy, 1500);
    stalled_at = b->written;
    drains_at = b->drains;
    test_run_until(b->loop, &dummy, 1000);
    printf("[never read: stalled after %lu KiB, %lu KiB buffered (cap %lu KiB), RSS +%ld KiB] ",
           (unsigned long)(stalled_at / 1024), (unsigned long)(b->max_wbuf / 1024),
           (unsigned long)(b->max_wcap / 1024), b->rss_max - b->rss0);
    if (b->s == NULL)
        return 13;
    if (b->done || b->written >= BIG_TOTAL)
        return 14;
    if (b->written != stalled_at || b->drains != drains_at)
        return 15;   /* a drain completed while the peer read nothing */
    if (b->false_drains != 0)
        return 16;
    if (b->max_wbuf > BIG_HIGH + BIG_CHUNK)
        return 17;   /* the buffer went past the limits the user chose */
    if (b->max_wcap > 2 * (BIG_HIGH + BIG_CHUNK))
        return 18;
    if (RSS_MEANINGFUL && b->rss_max - b->rss0 > 16 * 1024)
        return 19;   /* memory grew past what the buffers explain */
    /* Phase 2: the peer starts reading; all 100 MiB arrive, memory still bounded. */
    if ((b->peer_watch = rill_watch_fd(b->loop, b->peer, RILL_READABLE, big_peer_read, b)) == NULL)
        return 20;
    end = test_now_ms() + 60000;
    while (b->peer_got < BIG_TOTAL && b->status == 0 && test_now_ms() < end)
        rill_loop_run_once(b->loop, 20);
    printf("[then read: %lu MiB, %d drains, RSS +%ld KiB] ", (unsigned long)(b->peer_got >> 20),
           b->drains, b->rss_max - b->rss0);
    if (b->peer_got != BIG_TOTAL || b->bad_byte || b->status != 0)
        return 21;
    if (b->false_drains != 0 || b->max_wbuf > BIG_HIGH + BIG_CHUNK)
        return 22;
    if (RSS_MEANINGFUL && b->rss_max - b->rss0 > 16 * 1024)
        return 23;
    rill_watch_stop(b->peer_watch);
    rill_timer_cancel(b->probe);
    close(b->peer);
    rill_close(b->s, NULL, NULL);
    rill_server_close(srv, NULL, NULL);
    end = test_now_ms() + 5000;
    while (rill_loop_alive(b->loop) && test_now_ms() < end)
        rill_loop_run_once(b->loop, 20);
    if (rill_loop_free(b->loop) != 0)
        return 24;
    free(b);
    return 0;
}

static void test_never_reads(void)
{
    test_in_child("never reads", never_reads_child, 70000);
}

/* ================================================ an endless line, no newline */

#define LINE_LIMIT (16u * 1024u)

typedef struct endless {
    rill_stream *s;
    int fd;                 /* the server stream's descriptor */
    int reread;             /* read again after RILL_ELIMIT */
    int limits, others, first_status;
    size_t first_len, peak;
} endless;

static endless *E;

/* Sees every read of the server's socket: the bytes buffered right after it. */
static ssize_t peek_read(int fd, void *buf, size_t len)
{
    ssize_t n = read(fd, buf, len);
    if (E != NULL && E->s != NULL && fd == E->fd && n > 0) {
        size_t held = (size_t)((char *)buf + n - rill__buf_head(&E->s->rbuf));
        if (held > E->peak)
            E->peak = held;
    }
    return n;
}

static const rill__sys_hooks peek_hooks = { .read = peek_read };

static void endless_line(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    endless *e = ud;
    (void)data;
    if (e->limits + e->others == 0) {
        e->first_status = status;
        e->first_len = len;
    }
    if (status == RILL_ELIMIT)
        e->limits++;
    else
        e->others++;
    if (status == RILL_ELIMIT && e->reread && rill_readline(s, endless_line, e) < 0)
        e->others++;
}

static void endless_client(rill_server *srv, rill_stream *s, void *ud)
{
    endless *e = ud;
    (void)srv;
    e->s = s;
    e->fd = rill_fileno(s);
    rill_readline(s, endless_line, e);
}

static void run_endless(int reread)
{
    rill_loop *loop = test_loop_new(0);
    rill_server *srv;
    rill_server_opts o;
    endless e;
    static char junk[65536];
    int fd, dummy = 0;
    size_t sent = 0;
    uint64_t end;

    memset(&e, 0, sizeof e);
    memset(&o, 0, sizeof o);
    memset(junk, 'x', sizeof junk);
    e.reread = reread;
    o.limit = LINE_LIMIT;
    srv = rill_server_new(loop, "127.0.0.1", 0, &o, endless_client, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL_FATAL(rill_server_start_serving(srv, NULL, NULL), 0);
    E = &e;
    rill__sys_hooks_set(&peek_hooks);
    fd = connect_to(rill_server_port(srv), 1);
    CU_ASSERT_TRUE(fd >= 0);
    /* 1.5 s of a line that never ends, as fast as the server takes it (at most 64 MiB) */
    end = test_now_ms() + 1500;
    while (fd >= 0 && test_now_ms() < end && sent < 64u * 1024u * 1024u) {
        ssize_t n = send(fd, junk, sizeof junk, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            sent += (size_t)n;
        else if (n < 0 && errno != EAGAIN)
            break;
        rill_loop_run_once(loop, n > 0 ? 0 : 5);
    }
    test_run_until(loop, &dummy, 100);
    rill__sys_hooks_set(NULL);
    E = NULL;
    printf("[%s: %lu KiB sent, %d x RILL_ELIMIT, peak %lu KiB buffered] ", reread ? "reading on" : "one read",
           (unsigned long)(sent / 1024), e.limits, (unsigned long)(e.peak / 1024));
    CU_ASSERT_EQUAL(e.first_status, RILL_ELIMIT);
    CU_ASSERT_TRUE(e.first_len > LINE_LIMIT);
    CU_ASSERT_EQUAL(e.others, 0);
    CU_ASSERT_TRUE(e.peak > 0);
    CU_ASSERT_TRUE(e.peak <= 2 * LINE_LIMIT + 65536);
    if (e.s != NULL)
        CU_ASSERT_TRUE(e.s->rbuf.cap <= 2 * (2 * LINE_LIMIT + 65536));
    if (reread) {
        CU_ASSERT_TRUE(e.limits > 10);                /* it kept reading, and discarding */
        CU_ASSERT_TRUE(sent > 20 * LINE_LIMIT);
    } else {
        CU_ASSERT_EQUAL(e.limits, 1);
        CU_ASSERT_TRUE(sent < 16u * 1024u * 1024u);   /* the sender was stopped */
    }
    if (fd >= 0)
        close(fd);
    if (e.s != NULL)
        rill_close(e.s, NULL, NULL);
    rill_server_close(srv, NULL, NULL);
    test_loop_finish(loop);
}

static void test_endless_line(void)
{
    run_endless(1);
    run_endless(0);
}

/* ============================================= a TLS peer that stalls mid-handshake */

typedef struct line_rec {
    int n, status;
    size_t len;
} line_rec;

static void line_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    line_rec *r = ud;
    (void)s; (void)data;
    r->n++;
    r->status = status;
    r->len = len;
}

static int tls_echo_once(rill_loop *loop, int port, rill_tls *ctls)
{
    rill_connect_opts co;
    test_adopted c;
    line_rec r;

    memset(&co, 0, sizeof co);
    memset(&c, 0, sizeof c);
    memset(&r, 0, sizeof r);
    co.tls = ctls;
    co.timeout_ms = 5000;
    if (rill_connect(loop, "127.0.0.1", port, &co, test_adopt_cb, &c, NULL) != 0 ||
        !test_run_until(loop, &c.calls, 6000) || c.status != 0)
        return 0;
    rill_write(c.s, "hi\n", 3, NULL, NULL);
    rill_readline(c.s, line_cb, &r);
    test_run_until(loop, &r.n, 5000);
    rill_close(c.s, NULL, NULL);
    return r.n == 1 && r.status == 0 && r.len == 3;
}

static void test_tls_stalled_handshake(void)
{
    const test_certs *ct = test_certs_or_skip();
    rill_tls_opts to;
    rill_tls *stls, *ctls;
    rill_loop *loop;
    rill_server *srv;
    rill_server_opts so;
    test_srv_rec t;
    /* A TLS record header announcing 512 bytes of ClientHello, and its first bytes only. */
    static const unsigned char partial[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x5a };
    char buf[64];
    int fd, port;
    uint64_t t0;

    if (ct == NULL)
        return;
    memset(&to, 0, sizeof to);
    to.cert_file = ct->server;
    to.key_file = ct->key;
    stls = rill_tls_server_new(&to);
    memset(&to, 0, sizeof to);
    to.ca_file = ct->ca;
    ctls = rill_tls_client_new(&to);
    CU_ASSERT_FATAL(stls != NULL && ctls != NULL);
    loop = test_loop_new(0);
    memset(&so, 0, sizeof so);
    memset(&t, 0, sizeof t);
    so.tls = stls;
    so.on_error = test_srv_on_error;
    so.ssl_handshake_timeout_ms = 400;
    srv = rill_server_new(loop, "127.0.0.1", 0, &so, test_srv_echo_line, &t);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL_FATAL(rill_server_start_serving(srv, NULL, NULL), 0);
    port = rill_server_port(srv);
    fd = connect_to(port, 1);
    CU_ASSERT_TRUE(fd >= 0);
    t0 = test_now_ms();
    CU_ASSERT_EQUAL(send(fd, partial, sizeof partial, MSG_NOSIGNAL), (ssize_t)sizeof partial);
    /* while it stalls, others are served */
    CU_ASSERT_TRUE(tls_echo_once(loop, port, ctls));
    CU_ASSERT_EQUAL(t.errors, 0);
    test_run_until(loop, &t.errors, 5000);
    CU_ASSERT_EQUAL(t.errors, 1);
    CU_ASSERT_EQUAL(t.last_error, RILL_ETIMEDOUT);
    CU_ASSERT_TRUE(t.had_peer);
    CU_ASSERT_TRUE(t.error_at - t0 >= 350);     /* not before the timeout */
    CU_ASSERT_TRUE(t.error_at - t0 < 3000);
    /* the stalled peer was dropped */
    {
        struct pollfd p;
        ssize_t n = -1;
        p.fd = fd;
        p.events = POLLIN;
        if (poll(&p, 1, 2000) == 1)
            n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        CU_ASSERT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET));
    }
    close(fd);
    /* and the server still serves */
    CU_ASSERT_TRUE(tls_echo_once(loop, port, ctls));
    CU_ASSERT_EQUAL(t.clients, 2);
    rill_server_close(srv, NULL, NULL);
    test_loop_finish(loop);
    rill_tls_free(stls);
    rill_tls_free(ctls);
}

/* ---------------------------------------------------------------- suite */

int test_hostile_register(void)
{
    static const test_case cases[] = {
        { "slowloris: trickling clients, normal client served", test_slowloris },
        { "a peer that never reads: 100 MiB, bounded memory", test_never_reads },
        { "an endless line: bounded buffer, RILL_ELIMIT", test_endless_line },
        { "a TLS peer stalled mid-handshake times out", test_tls_stalled_handshake },
        { NULL, NULL }
    };
    return test_add_suite("hostile", cases);
}
