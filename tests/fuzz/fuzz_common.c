/* Helpers shared by the fuzz targets; see fuzz_common.h. */
#include "fuzz_common.h"
#include "rill_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>

int fz_calling;
int fz_rc;
int fz_verbose;

void fz_init(void)
{
    const char *v = getenv("FUZZ_VERBOSE");
    fz_verbose = v != NULL && *v != '\0' && *v != '0';
    /* SIGPIPE stays at its default on purpose: rill must never raise it (it sends with
       MSG_NOSIGNAL), and one that did would kill the run, which is a finding. */
}

uint8_t fz_u8(fz_in *in)
{
    uint8_t b;
    if (in->n == 0)
        return 0;
    b = in->p[0];
    in->p++;
    in->n--;
    return b;
}

uint16_t fz_u16(fz_in *in)
{
    uint16_t hi = fz_u8(in);
    return (uint16_t)(hi << 8 | fz_u8(in));
}

const uint8_t *fz_bytes(fz_in *in, size_t n, size_t *got)
{
    const uint8_t *p = in->p;
    if (n > in->n)
        n = in->n;
    in->p += n;
    in->n -= n;
    *got = n;
    return p;
}

void fz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "FUZZ CHECK FAILED %s:%d: %s\n", file, line, what);
    fflush(stderr);
    abort();
}

uint64_t fz_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int fz_allocfail;

void fz_alloc_fail_at(unsigned long n)
{
    fz_allocfail = n != 0;
    rill__alloc_fail_at(n);
}

static int embedded;   /* the current loop runs inside our own poll() */

rill_loop *fz_loop_new(unsigned b, const char *dns, int dns_timeout_ms)
{
    static const int backends[4] = { RILL_BACKEND_EPOLL, RILL_BACKEND_POLL, RILL_BACKEND_SELECT,
                                     RILL_BACKEND_POLL };
    rill_loop_opts o;
    rill_loop *loop;

    memset(&o, 0, sizeof o);
    embedded = b % 4 == 3;
    o.backend = backends[b % 4];
    /* Never the system's DNS server: an unused loopback port unless told otherwise. */
    o.dns_servers = dns != NULL ? dns : "127.0.0.1:9";
    o.dns_timeout_ms = dns_timeout_ms > 0 ? dns_timeout_ms : 50;
    o.dns_tries = 1;
    loop = rill_loop_new(&o);
    if (loop == NULL && errno == ENOSYS) {   /* a build without epoll */
        o.backend = RILL_BACKEND_POLL;
        loop = rill_loop_new(&o);
    }
    FZ_CHECK(loop != NULL);
    return loop;
}

int fz_run_once(rill_loop *loop, int timeout_ms)
{
    struct pollfd fds[64];
    size_t n = 0;
    int t = timeout_ms, rc;

    if (!embedded)
        return rill_loop_run_once(loop, timeout_ms);
    /* A program's own poll loop: rill's descriptors, rill's deadline, then rill's dispatch. */
    rc = rill_loop_prepare_poll(loop, fds, sizeof fds / sizeof fds[0], &n, &t);
    if (rc == RILL_ENOMEM && fz_allocfail) {
        /* The loop's record of the descriptors could not grow: a program waits a
           little and asks again; timers and queued work still run. */
        n = 0;
        t = t < 1 ? t : 1;
    } else {
        FZ_CHECK(rc == 0);   /* the targets never hold 64 descriptors */
    }
    rc = poll(fds, (nfds_t)n, t);
    if (rc < 0)
        rill_loop_after_poll(loop, NULL, 0);
    else
        rill_loop_after_poll(loop, fds, n);
    return rill_loop_alive(loop);
}

/* Most waits end at once (a socketpair, a queued completion): a few iterations
   without sleeping first, then 1 ms waits, so a run neither sleeps for nothing nor
   spins on a core while a timer or another thread has to act. */
static int wait_ms(unsigned long spins) { return spins < 64 ? 0 : 1; }

void fz_run_until(rill_loop *loop, const int *flag, int ms)
{
    uint64_t end = fz_now_ms() + (uint64_t)ms;
    unsigned long spins = 0;
    while (!*flag) {
        FZ_CHECK(fz_now_ms() < end);        /* a hang */
        if (fz_run_once(loop, wait_ms(spins++)) == 0 && !*flag)
            break;                          /* nothing alive: the flag can no longer change */
    }
}

void fz_finish(rill_loop *loop, int ms)
{
    uint64_t end = fz_now_ms() + (uint64_t)ms;
    unsigned long spins = 0;
    while (rill_loop_alive(loop)) {
        FZ_CHECK(fz_now_ms() < end);        /* something never finished: a hang */
        FZ_CHECK(fz_run_once(loop, wait_ms(spins++)) >= 0);
    }
    FZ_CHECK(rill_loop_free(loop) == 0);
}
