/* Scaffolding shared by the stream suites (see streams.h). */
#include "streams.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* ------------------------------------------------------- never synchronous */

int test_calling;
int test_sync_seen;
int test_call_rc;

int test_sync_check(void)
{
    if (test_calling == 0)
        return 0;
    test_sync_seen++;
    return 1;
}

void test_sync_reset(void)
{
    test_calling = 0;
    test_sync_seen = 0;
}

/* ------------------------------------------------------- counting callbacks */

test_event_log test_log;

void test_log_reset(void) { memset(&test_log, 0, sizeof test_log); }

void test_log_add(int kind, int tag, int status, size_t size)
{
    if (test_log.n < (int)(sizeof test_log.e / sizeof test_log.e[0])) {
        test_event *e = &test_log.e[test_log.n++];
        e->kind = kind;
        e->tag = tag;
        e->status = status;
        e->size = size;
        e->when = test_log.tick;
    }
}

int test_log_count(int kind)
{
    int i, c = 0;
    for (i = 0; i < test_log.n; i++)
        c += test_log.e[i].kind == kind;
    return c;
}

int test_log_index(int kind, int tag)
{
    int i;
    for (i = 0; i < test_log.n; i++)
        if (test_log.e[i].kind == kind && test_log.e[i].tag == tag)
            return i;
    return -1;
}

const test_event *test_log_get(int kind, int tag)
{
    static const test_event none = { 0, 0, 1, 0, 0 };
    int i = test_log_index(kind, tag);
    return i < 0 ? &none : &test_log.e[i];
}

int test_log_status(int kind, int tag) { return test_log_get(kind, tag)->status; }

/* ------------------------------------------------------- descriptors */

void test_nonblock(int fd)
{
    CU_ASSERT_EQUAL(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

void test_set_buf(int fd, int opt, int bytes)
{
    CU_ASSERT_EQUAL(setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes), 0);
}

void test_unix_pair(int type, int sv[2], int sndbuf)
{
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, type, 0, sv), 0);
    test_nonblock(sv[1]);
    if (sndbuf > 0)
        test_set_buf(sv[0], SO_SNDBUF, sndbuf);
}

static void set_buf_quiet(int fd, int opt, int bytes)
{
    if (bytes > 0)
        (void)setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

int test_tcp_pair(int *accepted, int *connecting, const test_tcp_bufs *bufs)
{
    static const test_tcp_bufs none = { 0, 0, 0, 0 };
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    int l, c, s;

    if (bufs == NULL)
        bufs = &none;
    *accepted = *connecting = -1;
    if ((l = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        return -1;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    set_buf_quiet(l, SO_SNDBUF, bufs->accepted_snd);   /* the accepted socket inherits them */
    set_buf_quiet(l, SO_RCVBUF, bufs->accepted_rcv);
    if (bind(l, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(l, 4) < 0 ||
        getsockname(l, (struct sockaddr *)&sin, &len) < 0 ||
        (c = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
        close(l);
        return -1;
    }
    set_buf_quiet(c, SO_SNDBUF, bufs->connecting_snd);
    set_buf_quiet(c, SO_RCVBUF, bufs->connecting_rcv);
    /* loopback: the connect completes at once, from the backlog */
    if (connect(c, (struct sockaddr *)&sin, sizeof sin) < 0 || (s = accept(l, NULL, NULL)) < 0) {
        close(c);
        close(l);
        return -1;
    }
    close(l);
    *accepted = s;
    *connecting = c;
    return 0;
}

/* ------------------------------------------------------- adopting */

void test_adopt_cb(rill_stream *s, int status, void *ud)
{
    test_adopted *a = ud;
    TEST_ASSERT_NOT_SYNC();
    a->s = s;
    a->status = status;
    a->calls++;
}

rill_stream *test_adopt_try(rill_loop *loop, int fd, const rill_connect_opts *o)
{
    test_adopted a;
    uint64_t end;
    memset(&a, 0, sizeof a);
    if (TEST_CALL(rill_connect_sock(loop, fd, o, test_adopt_cb, &a, NULL)) != 0)
        return NULL;
    CU_ASSERT_EQUAL(a.calls, 0);
    /* The adoption completes from the next iteration's queue: no need to sleep in poll. */
    end = test_now_ms() + 5000;
    while (a.calls == 0 && test_now_ms() < end)
        rill_loop_run_once(loop, 0);
    CU_ASSERT(a.calls <= 1);
    return a.calls == 1 && a.status == 0 ? a.s : NULL;
}

rill_stream *test_adopt(rill_loop *loop, int fd, const rill_connect_opts *o)
{
    rill_stream *s = test_adopt_try(loop, fd, o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

/* ------------------------------------------------------- the peer */

uint64_t test_fnv(uint64_t h, const unsigned char *p, size_t n)
{
    while (n-- > 0)
        h = (h ^ *p++) * 1099511628211ull;
    return h;
}

static void sink_take(test_sink *k, size_t chunk, int calls)
{
    unsigned char buf[65536];
    while (calls-- > 0 && !k->eof && !k->err) {
        ssize_t n = read(k->fd, buf, chunk < sizeof buf ? chunk : sizeof buf);
        if (n > 0) {
            if (k->keep != NULL && k->total < k->keepcap) {
                size_t c = k->keepcap - k->total < (size_t)n ? k->keepcap - k->total : (size_t)n;
                memcpy(k->keep + k->total, buf, c);
            }
            k->hash = test_fnv(k->hash, buf, (size_t)n);
            k->total += (size_t)n;
        } else if (n == 0) {
            k->eof = 1;
        } else if (errno != EINTR) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                k->err = -errno;
            break;
        }
    }
}

static void sink_watch_cb(rill_watch *w, int revents, void *ud)
{
    test_sink *k = ud;
    (void)revents;
    sink_take(k, 65536, 16);
    if (k->eof || k->err) {
        rill_watch_stop(w);
        k->w = NULL;
    }
}

static void sink_tick(void *ud)
{
    test_sink *k = ud;
    k->t = NULL;
    test_log.tick++;
    sink_take(k, k->chunk, k->per_tick);
    if (k->on_tick != NULL)
        k->on_tick(k);
    if (!k->eof && !k->err)
        k->t = rill_call_later(k->loop, (uint64_t)k->tick_ms, sink_tick, k);
}

void test_sink_init(test_sink *k, rill_loop *loop, int fd)
{
    memset(k, 0, sizeof *k);
    k->loop = loop;
    k->fd = fd;
    k->hash = TEST_FNV_INIT;
}

void test_sink_watch(test_sink *k)
{
    k->w = rill_watch_fd(k->loop, k->fd, RILL_READABLE, sink_watch_cb, k);
    CU_ASSERT_PTR_NOT_NULL(k->w);
}

void test_sink_paced(test_sink *k, size_t chunk, int per_tick, int tick_ms)
{
    k->chunk = chunk;
    k->per_tick = per_tick;
    k->tick_ms = tick_ms;
    k->t = rill_call_later(k->loop, (uint64_t)tick_ms, sink_tick, k);
    CU_ASSERT_PTR_NOT_NULL(k->t);
}

void test_sink_stop(test_sink *k)
{
    if (k->w != NULL)
        rill_watch_stop(k->w);
    if (k->t != NULL)
        rill_timer_cancel(k->t);
    k->w = NULL;
    k->t = NULL;
}

void test_sink_start(test_sink *k, rill_loop *loop, int fd, size_t paced_chunk)
{
    test_sink_init(k, loop, fd);
    if (paced_chunk > 0)
        test_sink_paced(k, paced_chunk, 1, 1);
    else
        test_sink_watch(k);
}

/* ------------------------------------------------------- echo servers */

void test_echo_read(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    if (status < 0 || len == 0) {
        rill_close(s, NULL, NULL);
        return;
    }
    if (rill_write(s, data, len, NULL, NULL) < 0 || rill_read(s, 65536, test_echo_read, ud) < 0)
        rill_close(s, NULL, NULL);
}

static void echo_one_line(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    (void)ud;
    if (status == 0 && len > 0)
        rill_write(s, data, len, NULL, NULL);
    rill_close(s, NULL, NULL);
}

void test_srv_echo_line(rill_server *srv, rill_stream *s, void *ud)
{
    test_srv_rec *t = ud;
    (void)srv;
    t->clients++;
    if (rill_readline(s, echo_one_line, t) < 0)
        rill_close(s, NULL, NULL);
}

void test_srv_on_error(rill_server *srv, int status, const struct sockaddr *peer, void *ud)
{
    test_srv_rec *t = ud;
    (void)srv;
    t->errors++;
    t->last_error = status;
    t->had_peer = peer != NULL;
    t->error_at = test_now_ms();
}
