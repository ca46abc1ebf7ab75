/* Error paths of the loop core and its backends: argument checks with the codes
   the header documents, allocation walks over loop creation, callbacks, timers
   and slot growth, a full descriptor table (RLIMIT_NOFILE, bounded and
   restored), waits that fail or are interrupted on each backend, epoll_ctl
   refusals, stale readiness after a slot is reused during a dispatch, the
   wake-up pipe filled to the brim, signals owned by another loop, the
   allocator's own overflow checks, and the RILL_TRACE output.

   Every test checks that the loop frees (rill_loop_free() == 0) and that no
   rill allocation or descriptor is left behind. */
#include "support/testutil.h"
#include "support/proc.h"
#include "support/fdfault.h"
#include "rill_private.h"
#include "syshooks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const int all_backends[] = { RILL_BACKEND_EPOLL, RILL_BACKEND_POLL, RILL_BACKEND_SELECT };
#define NBACKENDS (sizeof all_backends / sizeof all_backends[0])

/* ---------------------------------------------------------------- helpers */

static int highest_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int hi = -1;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && atoi(e->d_name) > hi)
            hi = atoi(e->d_name);
    closedir(d);
    return hi;
}


static rill_loop *loop_on(int backend)
{
    return test_loop_new(backend);
}

static void count_cb(void *ud) { (*(int *)ud)++; }
static void nop_watch(rill_watch *w, int revents, void *ud) { (void)w; (void)revents; (void)ud; }
static void nop_sig(int signum, void *ud) { (void)signum; (void)ud; }

static void count_watch(rill_watch *w, int revents, void *ud)
{
    (void)w;
    (void)revents;
    (*(int *)ud)++;
}

/* Descriptor table filled up to a lowered RLIMIT_NOFILE, all but free_left
   slots taken by /dev/null; fd_table_restore() gives everything back. */
typedef struct {
    struct rlimit old;
    int fds[4096];
    int n;
} fd_table;

static int fd_table_fill(fd_table *t, int free_left)
{
    struct rlimit r;
    int hi = highest_fd(), fd;

    t->n = 0;
    if (hi < 0 || getrlimit(RLIMIT_NOFILE, &t->old) < 0)
        return -1;
    if (hi + 8 >= 4096)
        return -1;
    r = t->old;
    r.rlim_cur = (rlim_t)hi + 1 + 8;
    if (t->old.rlim_cur != RLIM_INFINITY && r.rlim_cur > t->old.rlim_cur)
        return -1;
    if (setrlimit(RLIMIT_NOFILE, &r) < 0)
        return -1;
    while (t->n < 4096 && (fd = open("/dev/null", O_RDONLY)) >= 0)
        t->fds[t->n++] = fd;
    while (free_left-- > 0 && t->n > 0)
        close(t->fds[--t->n]);
    return 0;
}

static void fd_table_restore(fd_table *t)
{
    while (t->n > 0)
        close(t->fds[--t->n]);
    setrlimit(RLIMIT_NOFILE, &t->old);
}

/* ------------------------------------------------------ argument checks */

static void test_loop_args(void)
{
    rill_loop_opts o;
    rill_loop *loop;
    int n = 0;

    CU_ASSERT_EQUAL(rill_loop_free(NULL), 0);
    memset(&o, 0, sizeof o);
    o.dns_timeout_ms = -1;
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_loop_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);
    o.dns_timeout_ms = 0;
    o.dns_tries = -1;
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_loop_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);

    loop = test_loop_new(RILL_BACKEND_AUTO);
    CU_ASSERT_EQUAL(rill_call_soon(NULL, count_cb, &n), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_call_soon(loop, NULL, &n), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_call_soon_threadsafe(NULL, count_cb, &n), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_call_soon_threadsafe(loop, NULL, &n), RILL_EINVAL);
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_call_later(NULL, 1, count_cb, &n));
    CU_ASSERT_EQUAL(errno, EINVAL);
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_call_later(loop, 1, NULL, &n));
    CU_ASSERT_EQUAL(errno, EINVAL);
    rill_timer_cancel(NULL);
    /* Nothing was queued by the refused calls: the loop is idle and frees. */
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    CU_ASSERT_EQUAL(rill_loop_free(loop), 0);
    CU_ASSERT_EQUAL(n, 0);
}

static void test_watch_args(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    rill_watch *w;
    int fds[2];

    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_watch_fd(NULL, fds[0], RILL_READABLE, nop_watch, NULL));
    CU_ASSERT_EQUAL(errno, EINVAL);
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_watch_fd(loop, -1, RILL_READABLE, nop_watch, NULL));
    CU_ASSERT_EQUAL(errno, EINVAL);
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_watch_fd(loop, fds[0], RILL_READABLE, NULL, NULL));
    CU_ASSERT_EQUAL(errno, EINVAL);
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_watch_fd(loop, fds[0], 4, nop_watch, NULL));
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);

    w = rill_watch_fd(loop, fds[0], RILL_READABLE, nop_watch, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_EQUAL(rill_watch_update(NULL, RILL_READABLE), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_watch_update(w, 8), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_watch_update(w, RILL_READABLE | RILL_WRITABLE), 0);
    rill_watch_stop(NULL);
    rill_watch_stop(w);
    close(fds[0]);
    close(fds[1]);
    test_loop_finish(loop);
}

static void test_signal_args(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    static const int bad[] = { 0, -1, 64, 1000, SIGKILL, SIGSTOP };
    size_t i;

    CU_ASSERT_EQUAL(rill_signal_watch(NULL, SIGUSR1, nop_sig, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_signal_watch(loop, SIGUSR1, NULL, NULL), RILL_EINVAL);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(rill_signal_watch(loop, bad[i], nop_sig, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_signal_unwatch(NULL, SIGUSR1), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_signal_unwatch(loop, 0), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_signal_unwatch(loop, -3), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_signal_unwatch(loop, 64), RILL_EINVAL);
    /* Not watched by this loop. */
    CU_ASSERT_EQUAL(rill_signal_unwatch(loop, SIGUSR2), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    test_loop_finish(loop);
}

/* glibc keeps signals 32 and 33 for its threads: sigaction refuses them, and
   rill passes that refusal on without taking a handle. */
static void test_signal_sigaction_refused(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    int sig = 32;

    if (SIGRTMIN <= sig) {
        CU_PASS("skipped: signal 32 is a usable signal on this system");
        test_loop_finish(loop);
        return;
    }
    CU_ASSERT_EQUAL(rill_signal_watch(loop, sig, nop_sig, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    /* The refused signal is not marked as watched. */
    CU_ASSERT_EQUAL(rill_signal_unwatch(loop, sig), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_signal_watch(loop, SIGUSR1, nop_sig, NULL), 0);
    CU_ASSERT_EQUAL(rill_signal_unwatch(loop, SIGUSR1), 0);
    test_loop_finish(loop);
}

/* ------------------------------------------------------ allocation walks */

static void test_alloc_walk_loop_new(void)
{
    size_t b;

    for (b = 0; b < NBACKENDS; b++) {
        rill_loop_opts o;
        unsigned long n, live0 = rill__alloc_live();
        int fds0 = test_proc_fds(0), failures = 0;

        if (!test_have_backend(all_backends[b]))
            continue;
        memset(&o, 0, sizeof o);
        o.backend = all_backends[b];
        o.dns_servers = "127.0.0.1:9";
        for (n = 1; n < 100; n++) {
            rill_loop *loop;
            rill__alloc_fail_at(n);
            errno = 0;
            loop = rill_loop_new(&o);
            rill__alloc_fail_at(0);
            if (loop != NULL) {
                CU_ASSERT_EQUAL(rill_loop_free(loop), 0);
                break;
            }
            failures++;
            CU_ASSERT_EQUAL(errno, ENOMEM);
            TEST_CHECK_LIVE(live0);
            CU_ASSERT_EQUAL(test_proc_fds(0), fds0);
        }
        /* dns_servers, scratch, backend data, slot arrays: each can fail. */
        CU_ASSERT(failures >= 4);
        CU_ASSERT(n < 100);
        TEST_CHECK_LIVE(live0);
        CU_ASSERT_EQUAL(test_proc_fds(0), fds0);
    }
}

static void on_timer(void *ud) { (*(int *)ud) += 100; }

static void test_alloc_walk_callbacks(void)
{
    unsigned long live0 = rill__alloc_live();
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    unsigned long live1 = rill__alloc_live();
    rill_watch *keep;
    int n = 0, rc, fds[2];
    rill_timer *t = NULL;
    unsigned long k;
    uint64_t end;

    /* A paused watch keeps the loop alive until the threadsafe call arrives:
       threadsafe callbacks alone do not keep a loop running. */
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    keep = rill_watch_fd(loop, fds[0], 0, nop_watch, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(keep);
    live1 = rill__alloc_live();
    rill__alloc_fail_at(1);
    rc = rill_call_soon(loop, count_cb, &n);
    rill__alloc_fail_at(0);
    CU_ASSERT_EQUAL(rc, RILL_ENOMEM);
    rill__alloc_fail_at(1);
    rc = rill_call_soon_threadsafe(loop, count_cb, &n);
    rill__alloc_fail_at(0);
    CU_ASSERT_EQUAL(rc, RILL_ENOMEM);
    TEST_CHECK_LIVE(live1);
    CU_ASSERT_EQUAL(loop->npending, 0);
    CU_ASSERT_EQUAL(loop->nts, 0);

    /* Only the timer's own allocation can fail: arming it takes no memory. */
    for (k = 1; k < 10 && t == NULL; k++) {
        rill__alloc_fail_at(k);
        errno = 0;
        t = rill_call_later(loop, 0, on_timer, &n);
        rill__alloc_fail_at(0);
        if (t == NULL) {
            CU_ASSERT_EQUAL(errno, ENOMEM);
            TEST_CHECK_LIVE(live1);
            CU_ASSERT_EQUAL(loop->nuser_timers, 0);
        }
    }
    CU_ASSERT_EQUAL(k, 3);   /* failed at 1, made at 2 (k counts one past) */
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(rill_call_soon(loop, count_cb, &n), 0);
    CU_ASSERT_EQUAL(rill_call_soon_threadsafe(loop, count_cb, &n), 0);
    CU_ASSERT_EQUAL(n, 0);   /* never from inside the call */
    end = test_now_ms() + 2000;
    while (n != 102 && test_now_ms() < end)
        rill_loop_run_once(loop, 20);
    CU_ASSERT_EQUAL(n, 102);   /* each refused call ran nothing, each accepted one once */
    rill_watch_stop(keep);
    close(fds[0]);
    close(fds[1]);
    test_loop_finish(loop);
    TEST_CHECK_LIVE(live0);
}

/* A watch that needs the registry to grow: every allocation of the growth
   (slots, free lists, the backend's mirror) fails in turn, cleanly, and the
   registry still works afterwards. */
static void test_alloc_walk_watch_growth(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    rill_watch *ws[200], *w = NULL;
    int dups[200], nw = 0, fds[2], hits = 0, failures = 0;
    unsigned long k, live0;

    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    while (loop->nslots < loop->capslots && nw < 199) {
        dups[nw] = dup(fds[1]);
        CU_ASSERT_FATAL(dups[nw] >= 0);
        ws[nw] = rill_watch_fd(loop, dups[nw], 0, nop_watch, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ws[nw]);
        nw++;
    }
    CU_ASSERT_EQUAL_FATAL(loop->nslots, loop->capslots);
    live0 = rill__alloc_live();
    for (k = 1; k < 20 && w == NULL; k++) {
        size_t nslots = loop->nslots;
        rill__alloc_fail_at(k);
        errno = 0;
        w = rill_watch_fd(loop, fds[0], RILL_READABLE, count_watch, &hits);
        rill__alloc_fail_at(0);
        if (w == NULL) {
            failures++;
            CU_ASSERT_EQUAL(errno, ENOMEM);
            CU_ASSERT_EQUAL(loop->nslots, nslots);
        }
    }
    CU_ASSERT(failures >= 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_EQUAL(write(fds[1], "x", 1), 1);
    CU_ASSERT(test_run_until(loop, &hits, 2000));
    rill_watch_stop(w);
    while (nw > 0) {
        nw--;
        rill_watch_stop(ws[nw]);
        close(dups[nw]);
    }
    (void)live0;
    close(fds[0]);
    close(fds[1]);
    test_loop_finish(loop);
}

/* ------------------------------------------------- a full descriptor table */

static void test_loop_new_emfile(void)
{
    size_t b;

    for (b = 0; b < NBACKENDS; b++) {
        rill_loop_opts o;
        int need = all_backends[b] == RILL_BACKEND_EPOLL ? 3 : 2, k;
        int fds0 = test_proc_fds(0);
        unsigned long live0 = rill__alloc_live();

        if (!test_have_backend(all_backends[b]))
            continue;
        memset(&o, 0, sizeof o);
        o.backend = all_backends[b];
        for (k = 0; k <= need; k++) {
            static fd_table t;
            rill_loop *loop;
            int e;
            CU_ASSERT_EQUAL_FATAL(fd_table_fill(&t, k), 0);
            errno = 0;
            loop = rill_loop_new(&o);
            e = errno;
            fd_table_restore(&t);
            if (k < need) {
                CU_ASSERT_PTR_NULL(loop);
                CU_ASSERT_EQUAL(e, EMFILE);
            } else {
                CU_ASSERT_PTR_NOT_NULL(loop);
            }
            if (loop != NULL)
                CU_ASSERT_EQUAL(rill_loop_free(loop), 0);
            CU_ASSERT_EQUAL(test_proc_fds(0), fds0);
            TEST_CHECK_LIVE(live0);
        }
    }
}

/* ------------------------------------------------ waits that fail */

/* epoll: the loop's epoll descriptor replaced behind its back by a pipe, so
   epoll_wait() fails with EINVAL; run_once and run pass the error on. */
static int find_epoll_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int found = -1;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char path[300], link[64];
        ssize_t n;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        n = readlink(path, link, sizeof link - 1);
        if (n > 0) {
            link[n] = '\0';
            if (strcmp(link, "anon_inode:[eventpoll]") == 0)
                found = atoi(e->d_name);
        }
    }
    closedir(d);
    return found;
}

static void test_epoll_wait_error(void)
{
    rill_loop *loop;
    rill_watch *w;
    int fds[2], epfd, saved, hits = 0;

    if (!test_have_backend(RILL_BACKEND_EPOLL))
        return;
    CU_ASSERT_EQUAL_FATAL(find_epoll_fd(), -1);   /* no other loop is alive */
    loop = loop_on(RILL_BACKEND_EPOLL);
    epfd = find_epoll_fd();
    CU_ASSERT_FATAL(epfd >= 0);
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    w = rill_watch_fd(loop, fds[0], RILL_READABLE, count_watch, &hits);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    saved = dup(epfd);
    CU_ASSERT_FATAL(saved >= 0);
    CU_ASSERT_EQUAL_FATAL(dup2(fds[1], epfd), epfd);
    CU_ASSERT_EQUAL(rill_loop_run_once(loop, 100), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_loop_run(loop), RILL_EINVAL);
    /* The same epoll instance back under its number: the watch still works. */
    CU_ASSERT_EQUAL_FATAL(dup2(saved, epfd), epfd);
    close(saved);
    CU_ASSERT_EQUAL(write(fds[1], "x", 1), 1);
    CU_ASSERT(test_run_until(loop, &hits, 2000));
    rill_watch_stop(w);
    close(fds[0]);
    close(fds[1]);
    test_loop_finish(loop);
}

/* poll: more slots than RLIMIT_NOFILE allows descriptors, so poll() fails
   with EINVAL. */
static void test_poll_wait_error(void)
{
    rill_loop *loop;
    rill_watch *ws[8];
    int fds[2], dups[8], i, rc1, rc2;
    struct rlimit old, low;

    if (!test_have_backend(RILL_BACKEND_POLL))
        return;
    loop = loop_on(RILL_BACKEND_POLL);
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    for (i = 0; i < 8; i++) {
        dups[i] = dup(fds[0]);
        ws[i] = rill_watch_fd(loop, dups[i], RILL_READABLE, nop_watch, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ws[i]);
    }
    CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)loop->nslots - 1;
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &low), 0);
    rc1 = rill_loop_run_once(loop, 100);
    rc2 = rill_loop_run(loop);
    setrlimit(RLIMIT_NOFILE, &old);
    CU_ASSERT_EQUAL(rc1, RILL_EINVAL);
    CU_ASSERT_EQUAL(rc2, RILL_EINVAL);
    /* Under the old limit the same loop waits again. */
    CU_ASSERT_EQUAL(rill_loop_run_once(loop, 0), 1);
    for (i = 0; i < 8; i++) {
        rill_watch_stop(ws[i]);
        close(dups[i]);
    }
    close(fds[0]);
    close(fds[1]);
    test_loop_finish(loop);
}

/* select: a watched descriptor closed behind the loop's back makes select()
   fail with EBADF. */
static void test_select_wait_error(void)
{
    rill_loop *loop;
    rill_watch *w;
    int fds[2];

    loop = loop_on(RILL_BACKEND_SELECT);
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    w = rill_watch_fd(loop, fds[0], RILL_READABLE, nop_watch, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    close(fds[0]);
    CU_ASSERT_EQUAL(rill_loop_run_once(loop, 100), -EBADF);
    CU_ASSERT_EQUAL(rill_loop_run(loop), -EBADF);
    rill_watch_stop(w);
    close(fds[1]);
    CU_ASSERT_EQUAL(rill_loop_run_once(loop, 0), 0);
    test_loop_finish(loop);
}

/* A signal while the loop waits: the wait returns EINTR, which is no error,
   and the signal's callback runs from the loop. */
typedef struct {
    pthread_t target;
    int delay_ms;
} kill_arg;

static void *kill_later(void *ud)
{
    kill_arg *a = ud;
    struct timespec ts;
    ts.tv_sec = 0;
    ts.tv_nsec = (long)a->delay_ms * 1000000L;
    nanosleep(&ts, NULL);
    pthread_kill(a->target, SIGUSR1);
    return NULL;
}

static void sig_count(int signum, void *ud)
{
    if (signum == SIGUSR1)
        (*(int *)ud)++;
}

static void test_wait_interrupted(void)
{
    size_t b;

    for (b = 0; b < NBACKENDS; b++) {
        rill_loop *loop;
        pthread_t th;
        kill_arg a;
        int got = 0, rc;
        uint64_t t0;
        sigset_t set, old;

        if (!test_have_backend(all_backends[b]))
            continue;
        loop = loop_on(all_backends[b]);
        CU_ASSERT_EQUAL_FATAL(rill_signal_watch(loop, SIGUSR1, sig_count, &got), 0);
        a.target = pthread_self();
        a.delay_ms = 100;
        /* Only this thread may take the signal. */
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        CU_ASSERT_EQUAL_FATAL(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, kill_later, &a), 0);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        t0 = test_now_ms();
        rc = rill_loop_run_once(loop, 5000);
        CU_ASSERT(rc >= 0);
        CU_ASSERT(test_now_ms() - t0 < 4000);
        CU_ASSERT(test_run_until(loop, &got, 2000));
        CU_ASSERT_EQUAL(got, 1);
        pthread_join(th, NULL);
        CU_ASSERT_EQUAL(rill_signal_unwatch(loop, SIGUSR1), 0);
        test_loop_finish(loop);
    }
}

/* --------------------------------------------------- backends refusing */

static int temp_file(void)
{
    char name[] = "/tmp/rill-loop-errors-XXXXXX";
    int fd = mkstemp(name);
    if (fd >= 0)
        unlink(name);
    return fd;
}

/* epoll refuses a regular file (EPERM) and a closed descriptor (EBADF); the
   refusal leaves nothing registered and no handle taken. */
static void test_epoll_refusals(void)
{
    rill_loop *loop;
    int f, fds[2], closed_fd;
    unsigned long live0;

    if (!test_have_backend(RILL_BACKEND_EPOLL))
        return;
    loop = loop_on(RILL_BACKEND_EPOLL);
    live0 = rill__alloc_live();
    f = temp_file();
    CU_ASSERT_FATAL(f >= 0);
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_watch_fd(loop, f, RILL_READABLE, nop_watch, NULL));
    CU_ASSERT_EQUAL(errno, EPERM);
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    closed_fd = fds[0];
    close(fds[0]);
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_watch_fd(loop, closed_fd, RILL_READABLE, nop_watch, NULL));
    CU_ASSERT_EQUAL(errno, EBADF);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    TEST_CHECK_LIVE(live0);
    close(fds[1]);
    close(f);
    test_loop_finish(loop);
}

/* A descriptor closed and reopened under the same number is new to epoll: a
   change of events re-adds it, and its readiness is heard. */
static void test_epoll_reopened_fd(void)
{
    rill_loop *loop;
    rill_watch *w;
    int a[2], b[2], hits = 0, num;

    if (!test_have_backend(RILL_BACKEND_EPOLL))
        return;
    loop = loop_on(RILL_BACKEND_EPOLL);
    CU_ASSERT_EQUAL_FATAL(pipe(a), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(b), 0);
    num = a[0];
    w = rill_watch_fd(loop, num, RILL_READABLE, count_watch, &hits);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_EQUAL(rill_loop_run_once(loop, 0), 1);
    /* The old pipe's read end goes away (the kernel drops it from the set);
       another pipe's read end takes its number. */
    CU_ASSERT_EQUAL_FATAL(dup2(b[0], num), num);
    CU_ASSERT_EQUAL(rill_watch_update(w, RILL_READABLE | RILL_WRITABLE), 0);
    CU_ASSERT_EQUAL(rill_watch_update(w, RILL_READABLE), 0);
    CU_ASSERT_EQUAL(write(b[1], "x", 1), 1);
    CU_ASSERT(test_run_until(loop, &hits, 2000));
    rill_watch_stop(w);
    close(num);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    test_loop_finish(loop);
}

/* The owner closed a watched descriptor without stopping the watch (a misuse:
   stop comes first). An update then fails inside epoll (EBADF, or EPERM once
   a regular file took the number): rill_watch_update has no error for it, but
   the other watches keep working and the loop still frees. */
static void test_epoll_update_after_close(void)
{
    rill_loop *loop;
    rill_watch *gone, *reg, *ok;
    int a[2], b[2], c[2], f, hits = 0;

    if (!test_have_backend(RILL_BACKEND_EPOLL))
        return;
    loop = loop_on(RILL_BACKEND_EPOLL);
    CU_ASSERT_EQUAL_FATAL(pipe(a), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(b), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(c), 0);
    gone = rill_watch_fd(loop, a[0], RILL_READABLE, nop_watch, NULL);
    reg = rill_watch_fd(loop, b[0], RILL_READABLE, nop_watch, NULL);
    ok = rill_watch_fd(loop, c[0], RILL_READABLE, count_watch, &hits);
    CU_ASSERT_PTR_NOT_NULL_FATAL(gone);
    CU_ASSERT_PTR_NOT_NULL_FATAL(reg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
    close(a[0]);
    f = temp_file();
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT_EQUAL_FATAL(dup2(f, b[0]), b[0]);   /* b's number is now a regular file */
    close(f);
    CU_ASSERT_EQUAL(rill_watch_update(gone, RILL_WRITABLE), 0);
    CU_ASSERT_EQUAL(rill_watch_update(reg, RILL_WRITABLE), 0);
    CU_ASSERT_EQUAL(write(c[1], "c", 1), 1);
    CU_ASSERT(test_run_until(loop, &hits, 2000));
    rill_watch_stop(gone);
    rill_watch_stop(reg);
    rill_watch_stop(ok);
    close(a[1]); close(b[0]); close(b[1]); close(c[0]); close(c[1]);
    test_loop_finish(loop);
}

/* A failed add on a slot taken from the free list gives the slot back to the
   list: the next watch reuses it and works. epoll refuses a regular file,
   select a descriptor at FD_SETSIZE; poll refuses neither. */
static void test_failed_add_returns_reused_slot(void)
{
    size_t b;

    for (b = 0; b < NBACKENDS; b++) {
        rill_loop *loop;
        rill_watch *x, *y, *z;
        int p[2], q[2], r[2], bad = -1, want, hits = 0;
        size_t slot, nslots;
        struct rlimit old, hi;
        int raised = 0;

        if (all_backends[b] == RILL_BACKEND_POLL || !test_have_backend(all_backends[b]))
            continue;
        if (all_backends[b] == RILL_BACKEND_EPOLL) {
            bad = temp_file();
            want = EPERM;
        } else {
            int f = temp_file();
            CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &old), 0);
            if (old.rlim_max != RLIM_INFINITY && old.rlim_max <= FD_SETSIZE) {
                close(f);
                CU_PASS("skipped: RLIMIT_NOFILE's hard limit is at most FD_SETSIZE");
                continue;
            }
            if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur <= FD_SETSIZE) {
                hi = old;
                hi.rlim_cur = FD_SETSIZE + 1;
                CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &hi), 0);
                raised = 1;
            }
            bad = dup2(f, FD_SETSIZE);
            close(f);
            want = EMFILE;
        }
        CU_ASSERT_FATAL(bad >= 0);
        loop = loop_on(all_backends[b]);
        CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
        CU_ASSERT_EQUAL_FATAL(pipe(q), 0);
        CU_ASSERT_EQUAL_FATAL(pipe(r), 0);
        x = rill_watch_fd(loop, p[0], RILL_READABLE, nop_watch, NULL);
        y = rill_watch_fd(loop, q[0], RILL_READABLE, nop_watch, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x);
        CU_ASSERT_PTR_NOT_NULL_FATAL(y);
        slot = ((rill__io *)x)->slot;   /* the io is the watch's first member */
        rill_watch_stop(x);
        nslots = loop->nslots;
        errno = 0;
        CU_ASSERT_PTR_NULL(rill_watch_fd(loop, bad, RILL_READABLE, nop_watch, NULL));
        CU_ASSERT_EQUAL(errno, want);
        CU_ASSERT_EQUAL(loop->nslots, nslots);
        z = rill_watch_fd(loop, r[0], RILL_READABLE, count_watch, &hits);
        CU_ASSERT_PTR_NOT_NULL_FATAL(z);
        CU_ASSERT_EQUAL(((rill__io *)z)->slot, slot);
        CU_ASSERT_EQUAL(write(r[1], "z", 1), 1);
        CU_ASSERT(test_run_until(loop, &hits, 2000));
        rill_watch_stop(y);
        rill_watch_stop(z);
        close(bad);
        if (raised)
            setrlimit(RLIMIT_NOFILE, &old);
        close(p[0]); close(p[1]); close(q[0]); close(q[1]); close(r[0]); close(r[1]);
        test_loop_finish(loop);
    }
}

/* A watch with no events is registered but hears nothing, even when ready. */
static void test_watch_no_events(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    rill_watch *w;
    int fds[2], hits = 0;

    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    CU_ASSERT_EQUAL(write(fds[1], "x", 1), 1);
    w = rill_watch_fd(loop, fds[0], 0, count_watch, &hits);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_EQUAL(rill_loop_run_once(loop, 50), 1);
    CU_ASSERT_EQUAL(hits, 0);
    CU_ASSERT_EQUAL(rill_watch_update(w, RILL_READABLE), 0);
    CU_ASSERT(test_run_until(loop, &hits, 2000));
    rill_watch_stop(w);
    close(fds[0]);
    close(fds[1]);
    test_loop_finish(loop);
}

/* ---------------------------------------- stale readiness during a dispatch */

typedef struct {
    rill_loop *loop;
    rill_watch *b, *c;
    int bnum, cw, a_hits, b_hits, c_hits, pause_only;
} dispatch_ctx;

static void b_cb(rill_watch *w, int revents, void *ud)
{
    (void)w;
    (void)revents;
    ((dispatch_ctx *)ud)->b_hits++;
}

static void c_cb(rill_watch *w, int revents, void *ud)
{
    dispatch_ctx *d = ud;
    char buf[8];
    (void)w;
    (void)revents;
    /* Readiness without data would be the old descriptor's result leaking through. */
    if (read(d->bnum, buf, sizeof buf) > 0)
        d->c_hits++;
    else
        d->c_hits = 100;
}

/* Both a and b are ready. a's callback either pauses b, or stops b and watches
   a new, empty pipe under b's number in a slot that was free before the wait.
   Neither b nor the new watch may hear b's old readiness. */
static void a_cb(rill_watch *w, int revents, void *ud)
{
    dispatch_ctx *d = ud;
    int c[2];
    (void)revents;
    d->a_hits++;
    rill_watch_update(w, 0);
    if (d->pause_only) {
        rill_watch_update(d->b, 0);
        return;
    }
    rill_watch_stop(d->b);
    d->b = NULL;
    if (pipe(c) < 0)
        return;
    /* Non-blocking: a stale readiness must not hang the test in read(). */
    if (dup2(c[0], d->bnum) == d->bnum && fcntl(d->bnum, F_SETFL, O_NONBLOCK) == 0)
        d->c = rill_watch_fd(d->loop, d->bnum, RILL_READABLE, c_cb, d);
    close(c[0]);
    d->cw = c[1];   /* kept open: a hang-up would be readiness of its own */
}

static void run_dispatch_case(int backend, int pause_only)
{
    dispatch_ctx d;
    rill_watch *a, *spare;
    int pa[2], pb[2], ps[2], i;

    memset(&d, 0, sizeof d);
    d.pause_only = pause_only;
    d.cw = -1;
    d.loop = loop_on(backend);
    CU_ASSERT_EQUAL_FATAL(pipe(pa), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(pb), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(ps), 0);
    d.bnum = pb[0];
    a = rill_watch_fd(d.loop, pa[0], RILL_READABLE, a_cb, &d);
    d.b = rill_watch_fd(d.loop, pb[0], RILL_READABLE, b_cb, &d);
    spare = rill_watch_fd(d.loop, ps[0], RILL_READABLE, nop_watch, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d.b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(spare);
    rill_watch_stop(spare);   /* its slot, after b's, is free before the wait */
    CU_ASSERT_EQUAL(write(pa[1], "a", 1), 1);
    CU_ASSERT_EQUAL(write(pb[1], "b", 1), 1);
    CU_ASSERT(test_run_until(d.loop, &d.a_hits, 2000));
    for (i = 0; i < 3; i++)
        rill_loop_run_once(d.loop, 10);
    CU_ASSERT_EQUAL(d.b_hits, 0);
    CU_ASSERT_EQUAL(d.c_hits, 0);
    if (pause_only) {
        /* Asked again, b hears its data. */
        CU_ASSERT_EQUAL(rill_watch_update(d.b, RILL_READABLE), 0);
        CU_ASSERT(test_run_until(d.loop, &d.b_hits, 2000));
        rill_watch_stop(d.b);
    } else {
        CU_ASSERT_PTR_NOT_NULL_FATAL(d.c);
        /* The new watch hears its own data. */
        CU_ASSERT_EQUAL(write(d.cw, "c", 1), 1);
        CU_ASSERT(test_run_until(d.loop, &d.c_hits, 2000));
        CU_ASSERT_EQUAL(d.c_hits, 1);
        rill_watch_stop(d.c);
        close(d.cw);
    }
    rill_watch_stop(a);
    close(pa[0]); close(pa[1]); close(pb[0]); close(pb[1]); close(ps[0]); close(ps[1]);
    test_loop_finish(d.loop);
}

static void test_stale_readiness_after_reuse(void)
{
    size_t b;
    for (b = 0; b < NBACKENDS; b++)
        if (test_have_backend(all_backends[b]))
            run_dispatch_case(all_backends[b], 0);
}

static void test_paused_during_dispatch(void)
{
    size_t b;
    for (b = 0; b < NBACKENDS; b++)
        if (test_have_backend(all_backends[b]))
            run_dispatch_case(all_backends[b], 1);
}

/* ------------------------------------------------ the wake-up pipe */

static void on_usr1(int signum, void *ud)
{
    (void)signum;
    (*(int *)ud)++;
}

/* Threadsafe callbacks past the wake-up pipe's capacity: the writes that find
   it full are dropped, yet every callback runs once, and so does a signal
   that arrives while it is full. */
static void test_wake_pipe_full(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    int ran = 0, sig = 0, queued = 0, bytes = 0, prev = -1, full = 0;
    uint64_t end;

    CU_ASSERT_EQUAL_FATAL(rill_signal_watch(loop, SIGUSR1, on_usr1, &sig), 0);
    while (queued < (1 << 21)) {
        CU_ASSERT_EQUAL_FATAL(rill_call_soon_threadsafe(loop, count_cb, &ran), 0);
        queued++;
        CU_ASSERT_EQUAL_FATAL(ioctl(loop->wake_rd, FIONREAD, &bytes), 0);
        if (bytes == prev && ++full == 4)
            break;
        prev = bytes;
    }
    CU_ASSERT_EQUAL(full, 4);
    raise(SIGUSR1);
    CU_ASSERT_EQUAL(ioctl(loop->wake_rd, FIONREAD, &bytes), 0);
    CU_ASSERT_EQUAL(bytes, prev);   /* the handler's byte did not fit either */
    CU_ASSERT_EQUAL(ran, 0);
    CU_ASSERT_EQUAL(sig, 0);
    end = test_now_ms() + 5000;
    while ((ran < queued || sig == 0) && test_now_ms() < end)
        rill_loop_run_once(loop, 20);
    CU_ASSERT_EQUAL(ran, queued);
    CU_ASSERT_EQUAL(sig, 1);
    CU_ASSERT_EQUAL(rill_signal_unwatch(loop, SIGUSR1), 0);
    test_loop_finish(loop);
}

/* Threadsafe callbacks that never reached an iteration are dropped, and freed,
   with the loop. */
static void test_free_drops_threadsafe(void)
{
    unsigned long live0 = rill__alloc_live();
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    int ran = 0;

    CU_ASSERT_EQUAL(rill_call_soon_threadsafe(loop, count_cb, &ran), 0);
    CU_ASSERT_EQUAL(rill_call_soon_threadsafe(loop, count_cb, &ran), 0);
    CU_ASSERT_EQUAL(rill_loop_free(loop), 0);
    CU_ASSERT_EQUAL(ran, 0);
    TEST_CHECK_LIVE(live0);
}

/* A signal watched by loop A is dispatched by A only: loop B, woken while A's
   signal is pending, leaves it alone. */
static void test_signal_other_loop_leaves_it(void)
{
    rill_loop *a = test_loop_new(RILL_BACKEND_AUTO);
    rill_loop *b = test_loop_new(RILL_BACKEND_AUTO);
    rill_watch *keep;
    int sig = 0, woke = 0, fds[2];

    /* b needs a handle to wait at all: a paused watch. */
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    keep = rill_watch_fd(b, fds[0], 0, nop_watch, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(keep);
    CU_ASSERT_EQUAL_FATAL(rill_signal_watch(a, SIGUSR1, on_usr1, &sig), 0);
    raise(SIGUSR1);
    CU_ASSERT_EQUAL(rill_call_soon_threadsafe(b, count_cb, &woke), 0);
    CU_ASSERT(test_run_until(b, &woke, 2000));
    CU_ASSERT_EQUAL(sig, 0);
    CU_ASSERT(test_run_until(a, &sig, 2000));
    CU_ASSERT_EQUAL(sig, 1);
    CU_ASSERT_EQUAL(rill_signal_unwatch(a, SIGUSR1), 0);
    rill_watch_stop(keep);
    close(fds[0]);
    close(fds[1]);
    test_loop_finish(a);
    test_loop_finish(b);
}

/* ------------------------------------------------- timers and helpers */

static void test_cancel_internal_timer(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    rill_timer t;
    int n = 0;

    rill__timer_init(&t, loop, count_cb, &n);
    rill__timer_start(&t, 10);
    CU_ASSERT_EQUAL(rill__timer_armed(&t), 1);
    /* Not a user handle: cancelled, not freed, and no user timer count taken. */
    rill_timer_cancel(&t);
    CU_ASSERT_EQUAL(rill__timer_armed(&t), 0);
    CU_ASSERT_EQUAL(loop->nuser_timers, 0);
    CU_ASSERT_EQUAL(rill_loop_run_once(loop, 30), 0);
    CU_ASSERT_EQUAL(n, 0);
    test_loop_finish(loop);
}

static void test_set_nonblock_cloexec(void)
{
    int fds[2], fd;

    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    CU_ASSERT_EQUAL(rill__set_nonblock_cloexec(fds[0]), 0);
    CU_ASSERT(fcntl(fds[0], F_GETFL) & O_NONBLOCK);
    CU_ASSERT(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
    /* Already set: nothing to change, still 0. */
    CU_ASSERT_EQUAL(rill__set_nonblock_cloexec(fds[0]), 0);
    fd = fds[1];
    close(fds[1]);
    CU_ASSERT_EQUAL(rill__set_nonblock_cloexec(fd), -EBADF);
    close(fds[0]);
}

/* Each fcntl of lib/io/fd.c fails in turn (tests/support/fdfault.c), and the pipe itself. */
static int refusing_pipe(int fds[2])
{
    (void)fds;
    errno = ENFILE;
    return -1;
}
static int plain_pipe(int fds[2]) { return pipe(fds); }

typedef struct pipe_try {
    int fds[2], above_stdio;
} pipe_try;

static int try_pipe_open(void *ctx)
{
    pipe_try *t = ctx;
    return rill__pipe_open(t->fds, t->above_stdio);
}
static int try_set_blocking(void *ctx) { return rill__fd_set_blocking(((pipe_try *)ctx)->fds[0]); }
static int try_set_cloexec(void *ctx) { return rill__fd_set_cloexec(((pipe_try *)ctx)->fds[0]); }

/* A plain pipe (no pipe2 behind the hook), so every flag must be set. With 0 and 1
   closed, pipe() hands those out: above_stdio moves both ends up (F_DUPFD, then the
   flags the copy lost). Every failure leaves nothing open. */
static int pipe_open_walk(int above_stdio, int low)
{
    static const rill__sys_hooks hooks = { .pipe = plain_pipe };
    int fds0 = test_proc_fds(0), n;
    pipe_try t;

    t.above_stdio = above_stdio;
    n = test_fcntl_walk(&hooks, low, try_pipe_open, &t);
    CU_ASSERT_FATAL(n >= 0);
    CU_ASSERT(!above_stdio || (t.fds[0] >= 3 && t.fds[1] >= 3));
    CU_ASSERT(fcntl(t.fds[0], F_GETFL) & O_NONBLOCK);
    CU_ASSERT(fcntl(t.fds[1], F_GETFD) & FD_CLOEXEC);
    close(t.fds[0]);
    close(t.fds[1]);
    CU_ASSERT_EQUAL(test_proc_fds(0), fds0);
    return n;
}

static void test_fd_helper_failures(void)
{
    static const rill__sys_hooks no_pipe = { .pipe = refusing_pipe };
    rill_loop_opts o;
    pipe_try t;
    int fd;

    /* 2 flags per end to set; moved up, 1 more (the copy) per end. */
    CU_ASSERT_EQUAL(pipe_open_walk(0, 0), 8);
    CU_ASSERT_EQUAL(pipe_open_walk(1, 1), 10);
    /* The loop's wake-up pipe: rill_loop_new fails with the pipe's errno. */
    memset(&o, 0, sizeof o);
    rill__sys_hooks_set(&no_pipe);
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_loop_new(&o));
    CU_ASSERT_EQUAL(errno, ENFILE);
    rill__sys_hooks_set(NULL);
    /* The single helpers: F_GETFL and F_SETFL; F_GETFD and F_SETFD. */
    CU_ASSERT_EQUAL_FATAL(pipe(t.fds), 0);
    fd = t.fds[0];
    CU_ASSERT_EQUAL(rill__fd_move_high(&fd), 0);
    CU_ASSERT_EQUAL(fd, t.fds[0]);   /* already above 2: left as it is */
    CU_ASSERT_EQUAL(test_fcntl_walk(NULL, 0, try_set_blocking, &t), 2);
    CU_ASSERT_FALSE(fcntl(t.fds[0], F_GETFL) & O_NONBLOCK);
    CU_ASSERT_EQUAL(test_fcntl_walk(NULL, 0, try_set_cloexec, &t), 2);
    CU_ASSERT(fcntl(t.fds[0], F_GETFD) & FD_CLOEXEC);
    close(t.fds[0]);
    close(t.fds[1]);
}

/* A stopped loop asks an embedding program not to wait. */
static void test_embed_timeout_when_stopped(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    fd_set rd, wr;
    struct timeval tv;
    int maxfd = -1;

    FD_ZERO(&rd);
    FD_ZERO(&wr);
    tv.tv_sec = -1;   /* the program has no deadline */
    tv.tv_usec = 0;
    CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
    CU_ASSERT_EQUAL(tv.tv_sec, -1);   /* idle: none from rill either */
    rill_loop_stop(loop);
    tv.tv_sec = -1;
    tv.tv_usec = 0;
    CU_ASSERT_EQUAL(rill_loop_prepare_select(loop, &rd, &wr, &maxfd, &tv), 0);
    CU_ASSERT_EQUAL(tv.tv_sec, 0);
    CU_ASSERT_EQUAL(tv.tv_usec, 0);
    CU_ASSERT_EQUAL(rill_loop_run(loop), 1);   /* the stop is taken, once */
    CU_ASSERT_EQUAL(rill_loop_run(loop), 0);
    test_loop_finish(loop);
}

/* ------------------------------------------------- the allocator itself */

static void test_allocator_limits(void)
{
    unsigned long live0 = rill__alloc_live(), c0;
    size_t huge = (size_t)-1;
    void *p, *q;

    rill__alloc_fail_at(0);
    c0 = rill__alloc_count();
    p = rill__malloc(8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(rill__alloc_count(), c0 + 1);
    /* Sizes whose header would overflow: refused before malloc, still counted,
       so an allocation walk meets them too. */
    CU_ASSERT_PTR_NULL(rill__malloc(huge));
    CU_ASSERT_PTR_NULL(rill__calloc(huge / 2, 4));
    CU_ASSERT_EQUAL(rill__alloc_count(), c0 + 3);
    CU_ASSERT_PTR_NULL(rill__realloc(p, huge));
    q = rill__calloc(7, 0);   /* zero-sized elements cannot overflow */
    CU_ASSERT_PTR_NOT_NULL(q);
    rill__free(q);
#if !defined(__SANITIZE_ADDRESS__)
    /* Sizes malloc itself refuses (sanitizers abort on them instead). */
    CU_ASSERT_PTR_NULL(rill__malloc(huge - 64));
    CU_ASSERT_PTR_NULL(rill__realloc(p, huge - 64));
#endif
    /* A failed realloc leaves the block as it was. */
    p = rill__realloc(p, 16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    rill__free(p);
    TEST_CHECK_LIVE(live0);
}

/* The freed-while-registered check, not aborting: a block holding an armed
   timer is one violation, counted; a NULL block or a check turned off is none. */
static void test_debug_check_armed_timer(void)
{
    rill_loop *loop = test_loop_new(RILL_BACKEND_AUTO);
    rill_timer *t = rill__malloc(sizeof *t);
    unsigned long v0 = rill__debug_violations();
    int n = 0, saved, devnull;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    rill__timer_init(t, loop, count_cb, &n);
    rill__timer_start(t, 60000);
    /* The report goes to stderr: keep the test output clean. */
    fflush(stderr);
    saved = dup(2);
    devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    rill__debug_set(1, 0);
    rill__debug_check_range(t, sizeof *t);
    rill__debug_check_range(NULL, 64);
    rill__debug_set(0, 0);
    rill__debug_check_range(t, sizeof *t);
    rill__debug_set(1, 1);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(devnull);
    CU_ASSERT_EQUAL(rill__debug_violations(), v0 + 1);
    rill__timer_stop(t);
    rill__free(t);
    /* Taken off the registry twice (here, then by rill_loop_free): harmless. */
    rill__debug_loop_remove(loop);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(n, 0);
}

/* ------------------------------------------------------------ RILL_TRACE */

/* Tracing on (what RILL_TRACE=1 sets): a loop's life is two lines on stderr. */
static void test_trace_lines(void)
{
    int was = rill__trace_on, saved;
    FILE *tmp = tmpfile();
    char out[1024], want_new[128], want_freed[128];
    size_t n;
    rill_loop *loop;

    CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
    fflush(stderr);
    saved = dup(2);
    CU_ASSERT_FATAL(saved >= 0);
    dup2(fileno(tmp), 2);
    rill__trace_on = 1;
    loop = rill_loop_new(NULL);
    if (loop != NULL) {
        snprintf(want_new, sizeof want_new, "loop#%lu loop NEW -> READY backend=%s\n",
                 loop->stats_id, loop->backend->name);
        snprintf(want_freed, sizeof want_freed, "loop#%lu loop READY -> FREED\n", loop->stats_id);
        CU_ASSERT_EQUAL(rill_loop_free(loop), 0);
    }
    rill__trace("probe", 7, "m", "A", "B", NULL);   /* no detail at all */
    rill__trace_on = was;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    rewind(tmp);
    n = fread(out, 1, sizeof out - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want_new));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want_freed));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "probe#7 m A -> B\n"));
    /* The new line comes first, and nothing else was printed. */
    CU_ASSERT_EQUAL(strlen(out), strlen(want_new) + strlen(want_freed) + strlen("probe#7 m A -> B\n"));
    CU_ASSERT(strstr(out, want_new) < strstr(out, want_freed));
}

/* RILL_TRACE is read once per process, so each value is tried in a fresh
   run_tests that runs only the loop_errors_trace suite below. */
static int run_trace_child(const char *value, int expect)
{
    pid_t pid = fork();
    int status = 0;

    if (pid == 0) {
        char e[2] = { (char)('0' + expect), '\0' };
        int devnull = open("/dev/null", O_WRONLY);
        if (value != NULL)
            setenv("RILL_TRACE", value, 1);
        else
            unsetenv("RILL_TRACE");
        setenv("RILL_TEST_TRACE_EXPECT", e, 1);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl("/proc/self/exe", "run_tests", "loop_errors_trace", (char *)NULL);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_trace_env_values(void)
{
    CU_ASSERT_EQUAL(run_trace_child(NULL, 0), 0);
    CU_ASSERT_EQUAL(run_trace_child("", 0), 0);
    CU_ASSERT_EQUAL(run_trace_child("0", 0), 0);
    CU_ASSERT_EQUAL(run_trace_child("1", 1), 0);
    CU_ASSERT_EQUAL(run_trace_child("yes", 1), 0);
    /* The child really checks: a wrong expectation fails it. */
    CU_ASSERT_EQUAL(run_trace_child("1", 0), 1);
}

/* Runs in the child above; in a normal run there is nothing to check. */
static void test_trace_env_child(void)
{
    const char *want = getenv("RILL_TEST_TRACE_EXPECT");
    rill_loop *loop;

    if (want == NULL) {
        CU_PASS("only meaningful in the child of the RILL_TRACE values test");
        return;
    }
    loop = rill_loop_new(NULL);   /* reads RILL_TRACE */
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    CU_ASSERT_EQUAL(rill__trace_on, atoi(want));
    CU_ASSERT_EQUAL(rill_loop_free(loop), 0);
}

int test_loop_errors_register(void)
{
    static const test_case cases[] = {
        { "loop, callback and timer arguments", test_loop_args },
        { "watch arguments", test_watch_args },
        { "signal arguments", test_signal_args },
        { "signal sigaction refuses", test_signal_sigaction_refused },
        { "allocation walk: rill_loop_new on each backend", test_alloc_walk_loop_new },
        { "allocation walk: call_soon, threadsafe, call_later", test_alloc_walk_callbacks },
        { "allocation walk: a watch that grows the registry", test_alloc_walk_watch_growth },
        { "rill_loop_new with a full descriptor table", test_loop_new_emfile },
        { "epoll_wait fails: run_once and run report it", test_epoll_wait_error },
        { "poll fails: run_once and run report it", test_poll_wait_error },
        { "select fails on a closed descriptor", test_select_wait_error },
        { "a signal interrupts the wait on each backend", test_wait_interrupted },
        { "epoll refuses a regular file and a closed descriptor", test_epoll_refusals },
        { "epoll: a closed and reopened descriptor is re-added", test_epoll_reopened_fd },
        { "epoll: an update after the owner closed the descriptor", test_epoll_update_after_close },
        { "a failed add gives a reused slot back", test_failed_add_returns_reused_slot },
        { "a watch with no events hears nothing", test_watch_no_events },
        { "stale readiness after a slot reuse in a dispatch", test_stale_readiness_after_reuse },
        { "a watch paused during a dispatch hears nothing", test_paused_during_dispatch },
        { "wake-up pipe full: callbacks and a signal still run", test_wake_pipe_full },
        { "threadsafe callbacks dropped with the loop", test_free_drops_threadsafe },
        { "a signal is dispatched by its own loop only", test_signal_other_loop_leaves_it },
        { "cancel of an internal timer", test_cancel_internal_timer },
        { "set_nonblock_cloexec", test_set_nonblock_cloexec },
        { "descriptor helpers: each fcntl and the pipe fail in turn", test_fd_helper_failures },
        { "embedding: a stopped loop asks for no wait", test_embed_timeout_when_stopped },
        { "allocator size limits", test_allocator_limits },
        { "debug check: armed timer, off, NULL", test_debug_check_armed_timer },
        { "RILL_TRACE transition lines", test_trace_lines },
        { "RILL_TRACE values, each in a fresh process", test_trace_env_values },
        { NULL, NULL }
    };
    static const test_case child_cases[] = {
        { "RILL_TRACE read at the first loop", test_trace_env_child },
        { NULL, NULL }
    };
    if (test_add_suite("loop_errors", cases) != 0)
        return -1;
    return test_add_suite("loop_errors_trace", child_cases);
}
