/* Helpers shared by the suites: suite registration, bounded loop runs, the
   per-test watchdog. */
#include "testutil.h"
#include "certs.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

int test_add_suite(const char *name, const test_case *cases)
{
    CU_pSuite s = CU_add_suite(name, NULL, NULL);
    if (s == NULL)
        return -1;
    for (; cases->name != NULL; cases++)
        if (CU_add_test(s, cases->name, cases->fn) == NULL)
            return -1;
    return 0;
}

/* The library's own clock: a build without a monotonic clock falls back to
   gettimeofday, and bounds measured on another clock would round apart. */
uint64_t rill__clock_ms(void);
unsigned long rill__alloc_live(void);
uint64_t test_now_ms(void)
{
    return rill__clock_ms();
}

int test_run_until_every(rill_loop *loop, const int *flag, int ms, int slice_ms)
{
    uint64_t end = test_now_ms() + (uint64_t)ms;
    while (!*flag) {
        uint64_t now = test_now_ms();
        if (now >= end)
            break;
        if (rill_loop_run_once(loop, end - now < (uint64_t)slice_ms ? (int)(end - now) : slice_ms) < 0)
            break;
    }
    return *flag;
}

int test_run_until(rill_loop *loop, const int *flag, int ms)
{
    /* Short slices: run_once may wait its whole timeout after a callback set the flag. */
    return test_run_until_every(loop, flag, ms, 20);
}

rill_loop *test_loop_try_new(int backend)
{
    rill_loop_opts o;
    memset(&o, 0, sizeof o);
    if (backend == RILL_BACKEND_AUTO && getenv("RILL_TEST_BACKEND") != NULL)
    {
        const char *b = getenv("RILL_TEST_BACKEND");
        backend = strcmp(b, "select") == 0 ? RILL_BACKEND_SELECT
                : strcmp(b, "epoll") == 0 ? RILL_BACKEND_EPOLL : RILL_BACKEND_POLL;
    }
    o.backend = backend;
    /* No test may reach the system's DNS server: an unused loopback port. */
    o.dns_servers = "127.0.0.1:9";
    o.dns_timeout_ms = 200;
    o.dns_tries = 1;
    return rill_loop_new(&o);
}

rill_loop *test_loop_new(int backend)
{
    rill_loop *loop = test_loop_try_new(backend);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    return loop;
}

int test_have_backend(int backend)
{
    rill_loop_opts o;
    rill_loop *loop;
    memset(&o, 0, sizeof o);
    o.backend = backend;
    if ((loop = rill_loop_new(&o)) == NULL && errno == ENOSYS) {
        CU_PASS("skipped: this build has no such backend (configure --without-poll)");
        return 0;
    }
    if (loop != NULL)
        rill_loop_free(loop);
    return 1;
}

void test_loop_finish(rill_loop *loop)
{
    uint64_t end = test_now_ms() + 5000;
    int rc;
    if (loop == NULL)
        return;
    while (rill_loop_alive(loop) && test_now_ms() < end)
        rill_loop_run_once(loop, 50);
    rc = rill_loop_free(loop);
    CU_ASSERT_EQUAL(rc, 0);
}

void test_check_live(unsigned long live0, int line)
{
    long left = (long)(rill__alloc_live() - live0);
    if (left != 0)
        fprintf(stderr, "\nline %d: %ld rill allocations left\n", line, left);
    CU_ASSERT_EQUAL(left, 0);
}

const test_certs *test_certs_or_skip(void)
{
    const char *why = NULL;
    const test_certs *c = test_certs_get(&why);
    if (c == NULL) {
        if (!test_have_openssl()) {
            CU_PASS("skipped: the openssl command is not installed");
        } else {
            CU_FAIL(why != NULL ? why : "certificate generation failed");
        }
    }
    return c;
}

int test_reap(pid_t pid, int ms)
{
    uint64_t end = test_now_ms() + (uint64_t)ms;
    int st = 0;
    while (test_now_ms() < end) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        usleep(5000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

void test_in_child(const char *name, int (*fn)(void), int ms)
{
    pid_t pid;
    int rc;

    fflush(NULL);
    pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        alarm((unsigned)(ms / 1000 + 5));
        _exit(fn());
    }
    rc = test_reap(pid, ms + 10000);
    if (rc != 0)
        fprintf(stderr, "\n%s: child failed at step %d\n", name, rc);
    CU_ASSERT_EQUAL(rc, 0);
}
