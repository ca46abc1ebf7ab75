/* The one handle lifecycle (lib/core/handle.c): a handle closed inside an iteration
   keeps its memory until the iteration ends, whatever kind it is; one closed outside
   any iteration is freed at once. Counted with the allocator's live count. */
#include "support/testutil.h"
#include "rill_private.h"

#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static struct {
    unsigned long live_before, live_after;   /* around the close, inside the callback */
    int calls;
    rill_watch *w;
} lc;

static void stop_in_callback(rill_watch *w, int revents, void *ud)
{
    (void)revents;
    (void)ud;
    lc.calls++;
    lc.live_before = rill__alloc_live();
    rill_watch_stop(w);
    lc.live_after = rill__alloc_live();
}

/* A watch stopped in its own callback is still allocated when the call returns, and
   freed once the iteration is over. */
static void test_watch_closed_in_callback(void)
{
    rill_loop *loop = test_loop_new(0);
    int p[2];
    unsigned long base;

    memset(&lc, 0, sizeof lc);
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
    base = rill__alloc_live();
    lc.w = rill_watch_fd(loop, p[0], RILL_READABLE, stop_in_callback, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lc.w);
    CU_ASSERT(rill__alloc_live() > base);
    rill_loop_run_once(loop, 1000);
    CU_ASSERT_EQUAL(lc.calls, 1);
    CU_ASSERT_EQUAL(lc.live_after, lc.live_before);   /* not freed under the dispatch */
    CU_ASSERT_EQUAL(rill__alloc_live(), base);         /* freed by the iteration's end */
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    close(p[0]);
    close(p[1]);
    test_loop_finish(loop);
}

/* Outside any iteration nothing is dispatching: stop and cancel free at once. */
static void noop_watch(rill_watch *w, int revents, void *ud) { (void)w; (void)revents; (void)ud; }
static void noop(void *ud) { (void)ud; }

static void test_closed_outside_iteration(void)
{
    rill_loop *loop = test_loop_new(0);
    rill_watch *w;
    rill_timer *t;
    int p[2];
    unsigned long base;

    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    base = rill__alloc_live();
    w = rill_watch_fd(loop, p[0], RILL_READABLE, noop_watch, NULL);
    t = rill_call_later(loop, 60000, noop, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 1);
    rill_watch_stop(w);
    rill_timer_cancel(t);
    CU_ASSERT_EQUAL(rill__alloc_live(), base);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    close(p[0]);
    close(p[1]);
    test_loop_finish(loop);
}

/* A user timer's handle ends when its callback starts: it no longer keeps the loop
   alive there, and its memory goes with the iteration. */
static rill_loop *timer_loop;
static void timer_fired(void *ud)
{
    (void)ud;
    lc.calls++;
    lc.live_before = rill__alloc_live();
    lc.live_after = (unsigned long)rill_loop_alive(timer_loop);
}

static void test_timer_closed_when_fired(void)
{
    rill_loop *loop = test_loop_new(0);
    unsigned long base;

    memset(&lc, 0, sizeof lc);
    timer_loop = loop;
    base = rill__alloc_live();
    CU_ASSERT_PTR_NOT_NULL_FATAL(rill_call_later(loop, 0, timer_fired, NULL));
    rill_loop_run_once(loop, 1000);
    CU_ASSERT_EQUAL(lc.calls, 1);
    CU_ASSERT(lc.live_before > base);      /* still allocated while its callback runs */
    CU_ASSERT_EQUAL(lc.live_after, 0);     /* but no longer counted */
    CU_ASSERT_EQUAL(rill__alloc_live(), base);
    test_loop_finish(loop);
}

/* A stream's last callback (wait_closed) runs with the stream's memory in place, and
   so does what it queues; the stream is gone when the iteration that ran them is over. */
static void after_last(void *ud)
{
    (void)ud;
    lc.live_after = rill__alloc_live();   /* the call_soon's own memory is gone by now */
}

static void last_cb(rill_stream *s, int status, void *ud)
{
    (void)status;
    (void)ud;
    lc.calls++;
    CU_ASSERT_EQUAL(rill_call_soon(rill_stream_loop(s), after_last, NULL), 0);
    lc.live_before = rill__alloc_live();
}

static void test_stream_freed_at_iteration_end(void)
{
    rill_loop *loop = test_loop_new(0);
    rill_stream *s;
    int p[2];
    unsigned long base;
    uint64_t end;

    memset(&lc, 0, sizeof lc);
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    base = rill__alloc_live();
    CU_ASSERT_EQUAL_FATAL(rill_connect_read_pipe(loop, p[0], 0, &s), 0);
    CU_ASSERT_EQUAL(rill_wait_closed(s, last_cb, NULL), 0);
    CU_ASSERT_EQUAL(rill_close(s, NULL, NULL), 0);
    end = test_now_ms() + 3000;
    while (lc.calls == 0 && test_now_ms() < end)
        rill_loop_run_once(loop, 20);
    CU_ASSERT_EQUAL_FATAL(lc.calls, 1);
    /* A callback queued by the last one runs in the same iteration: what the stream
       held is released by then, but its own block is still there. */
    CU_ASSERT_EQUAL(lc.live_after, base + 1);
    CU_ASSERT(lc.live_before > base);
    CU_ASSERT_EQUAL(rill__alloc_live(), base);
    close(p[1]);
    test_loop_finish(loop);
}

/* A connect request completes into its callback (here: refused) with its memory in
   place, and is freed with the iteration. */
static void connect_done(rill_stream *s, int status, void *ud)
{
    (void)s;
    (void)ud;
    lc.calls++;
    lc.live_after = (unsigned long)-status;
    lc.live_before = rill__alloc_live();
}

static void test_connect_freed_at_iteration_end(void)
{
    rill_loop *loop;
    struct sockaddr_in in;
    socklen_t len = sizeof in;
    unsigned long base;
    int port, fd;
    uint64_t end;

    memset(&lc, 0, sizeof lc);
    /* A port that was just free: bound, read, closed. */
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&in, sizeof in), 0);
    CU_ASSERT_EQUAL_FATAL(getsockname(fd, (struct sockaddr *)&in, &len), 0);
    port = ntohs(in.sin_port);
    close(fd);
    loop = test_loop_new(0);
    base = rill__alloc_live();
    CU_ASSERT_EQUAL_FATAL(rill_connect(loop, "127.0.0.1", port, NULL, connect_done, NULL, NULL), 0);
    end = test_now_ms() + 3000;
    while (lc.calls == 0 && test_now_ms() < end)
        rill_loop_run_once(loop, 20);
    CU_ASSERT_EQUAL_FATAL(lc.calls, 1);
    CU_ASSERT_EQUAL(lc.live_after, ECONNREFUSED);
    CU_ASSERT(lc.live_before > base);
    CU_ASSERT_EQUAL(rill__alloc_live(), base);
    test_loop_finish(loop);
}

int test_lifecycle_register(void)
{
    static const test_case cases[] = {
        { "a watch stopped in its callback is freed at the iteration's end", test_watch_closed_in_callback },
        { "closed outside any iteration: freed at once", test_closed_outside_iteration },
        { "a user timer's handle ends as its callback starts", test_timer_closed_when_fired },
        { "a stream's memory outlives its last callback's iteration only", test_stream_freed_at_iteration_end },
        { "a connect request's memory outlives its callback's iteration only", test_connect_freed_at_iteration_end },
        { NULL, NULL }
    };
    return test_add_suite("lifecycle", cases);
}
