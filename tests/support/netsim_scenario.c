/* The model: what RFC 8305 (and rill's documented Happy Eyeballs) promises, checked after
   each scenario from what the harness saw. */
#include "netsim_scenario.h"
#include "netsim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define START_MS 1000000u
#define RUN_LIMIT_MS 600000u

typedef struct run {
    rill_loop *loop;
    rill_connect_req *req;
    rill_timer *cancel_timer;
    int done, calls, status, cancelled, action, cancel_on_socket, nsocket;
    int winner;                    /* index into netsim's sockets, -1 none */
    uint64_t t_cb;
    char *why;
    size_t cap;
} run;

static void fail(run *r, const char *fmt, ...)
{
    va_list ap;
    if (r->why[0] != '\0')
        return;   /* the first broken rule is the one to read */
    va_start(ap, fmt);
    vsnprintf(r->why, r->cap, fmt, ap);
    va_end(ap);
}

static int sock_index(const netsim_sock *s)
{
    size_t i;
    for (i = 0; i < netsim_nsocks(); i++)
        if (netsim_sock_at(i) == s)
            return (int)i;
    return -1;
}

static int success_outcome(const netsim_sock *s)
{
    const netsim_addr *a = netsim_addr_at(s->addr);
    return a != NULL && (a->outcome == NETSIM_OK || a->outcome == NETSIM_IMM_OK);
}

static uint64_t outcome_time(const netsim_sock *s)
{
    const netsim_addr *a = netsim_addr_at(s->addr);
    return a->outcome == NETSIM_IMM_OK || a->outcome == NETSIM_IMM_REFUSE ? s->t_connect : s->t_event;
}

static void on_connect(rill_stream *s, int status, void *ud)
{
    run *r = ud;
    size_t i;

    r->calls++;
    r->done = 1;
    r->status = status;
    r->t_cb = netsim_now();
    r->req = NULL;
    if (r->cancel_timer != NULL) {
        rill_timer_cancel(r->cancel_timer);
        r->cancel_timer = NULL;
    }
    if (status == 0) {
        const netsim_sock *w = netsim_find(rill_fileno(s));
        if (w == NULL || w->addr < 0 || !success_outcome(w) || !w->fired) {
            fail(r, "the stream's descriptor %d is no connected attempt", rill_fileno(s));
            rill_abort(s);
            return;
        }
        r->winner = sock_index(w);
    }
    for (i = 0; i < netsim_nsocks(); i++)
        if ((int)i != r->winner && !netsim_sock_at(i)->closed)
            fail(r, "at the callback, losing attempt %lu (fd %d) is still open", (unsigned long)i,
                 netsim_sock_at(i)->fd);
    if (status != 0)
        return;
    if (r->action > 0 && rill_write(s, "sim", 3, NULL, NULL) != 0)
        fail(r, "rill_write on the returned stream failed");
    if (r->action == 2)
        rill_close(s, NULL, NULL);
    else
        rill_abort(s);
}

static void cancel_fired(void *ud)
{
    run *r = ud;
    r->cancel_timer = NULL;
    if (!r->done && r->req != NULL) {
        r->cancelled = 1;
        rill_connect_cancel(r->req);
    }
}

static int on_socket(int fd, int family, void *ud)
{
    run *r = ud;
    (void)fd;
    (void)family;
    if (r->nsocket++ == r->cancel_on_socket && !r->done && r->req != NULL) {
        r->cancelled = 1;
        rill_connect_cancel(r->req);
    }
    return 0;
}

/* The order RFC 8305 section 4 asks for: IPv6 first, then one of each family in turn. */
static int expected_order(int *order)
{
    int v6[NETSIM_MAX_ADDRS], v4[NETSIM_MAX_ADDRS], n6 = 0, n4 = 0, i, j = 0, k = 0, n = 0;
    for (i = 0; i < netsim_naddrs(); i++) {
        if (netsim_addr_at(i)->family == AF_INET6)
            v6[n6++] = i;
        else
            v4[n4++] = i;
    }
    while (j < n6 || k < n4) {
        if (j < n6)
            order[n++] = v6[j++];
        if (k < n4)
            order[n++] = v4[k++];
    }
    return n;
}

static int is_failure(const netsim_sock *s)
{
    const netsim_addr *a = netsim_addr_at(s->addr);
    return a != NULL && s->fired && (a->outcome == NETSIM_REFUSE || a->outcome == NETSIM_IMM_REFUSE);
}

static void check_attempts(run *r, int delay)
{
    const netsim_sock *st[NETSIM_MAX_SOCKS];
    int order[NETSIM_MAX_ADDRS], n = expected_order(order), m = 0, i, k;
    size_t j;

    for (j = 0; j < netsim_nsocks(); j++)
        if (netsim_sock_at(j)->addr >= 0)
            st[m++] = netsim_sock_at(j);
    for (i = 0; i < m; i++) {
        if (i >= n || st[i]->addr != order[i]) {
            fail(r, "attempt %d went to address %d, expected %d (families interleaved, IPv6 first)",
                 i, st[i]->addr, i < n ? order[i] : -1);
            return;
        }
        if (st[i]->t_connect > r->t_cb)
            fail(r, "attempt %d started after the callback", i);
        if (i > 0) {
            uint64_t gap = st[i]->t_connect - st[i - 1]->t_connect;
            int failed_then = 0;
            for (k = 0; k < i; k++)
                if (is_failure(st[k]) && outcome_time(st[k]) == st[i]->t_connect)
                    failed_then = 1;
            if (gap > (uint64_t)delay || (gap < (uint64_t)delay && !failed_then))
                fail(r, "attempt %d started %lu ms after the previous (delay %d, no failure then)", i,
                     (unsigned long)gap, delay);
        }
        /* A failure starts the next address at once, while addresses remain. */
        if (is_failure(st[i]) && outcome_time(st[i]) < r->t_cb) {
            uint64_t f = outcome_time(st[i]);
            int started_by = 0, at_f = 0;
            for (k = 0; k < m; k++) {
                started_by += st[k]->t_connect <= f;
                at_f |= k > i && st[k]->t_connect == f;
            }
            if (!at_f && started_by < n)
                fail(r, "attempt %d failed at +%lu ms and no next attempt started then", i,
                     (unsigned long)(f - START_MS));
        }
    }
    if (m < n && m > 0 && r->t_cb > st[m - 1]->t_connect + (uint64_t)delay)
        fail(r, "only %d of %d addresses tried though the connect ran past the attempt delay", m, n);
    if (r->status != 0 && !r->cancelled && r->status != RILL_ETIMEDOUT &&
        (m != n || r->status != -ECONNREFUSED))
        fail(r, "failed with %s after %d of %d attempts", rill_err_name(r->status), m, n);
}

static void check_result(run *r, int timeout)
{
    if (r->calls != 1) {
        fail(r, "%d callbacks", r->calls);
        return;
    }
    if (r->cancelled && r->status != RILL_ECANCELED)
        fail(r, "cancelled, yet the callback reported %s", rill_err_name(r->status));
    if (r->status == RILL_ETIMEDOUT && r->t_cb != START_MS + (uint64_t)timeout)
        fail(r, "timed out at +%lu ms, timeout %d", (unsigned long)(r->t_cb - START_MS), timeout);
    if (r->winner >= 0) {
        const netsim_sock *w = netsim_sock_at((size_t)r->winner);
        size_t j;
        for (j = 0; j < netsim_nsocks(); j++) {
            const netsim_sock *o = netsim_sock_at(j);
            if ((int)j != r->winner && o->addr >= 0 && success_outcome(o) && o->fired &&
                outcome_time(o) < outcome_time(w))
                fail(r, "attempt %lu connected first, attempt %d won", (unsigned long)j, r->winner);
        }
    }
}

int netsim_scenario(const netsim_choices *c, char *why, size_t cap)
{
    static const netsim_outcome outcomes[10] = {
        NETSIM_OK, NETSIM_OK, NETSIM_REFUSE, NETSIM_REFUSE, NETSIM_REFUSE,
        NETSIM_HANG, NETSIM_HANG, NETSIM_IMM_OK, NETSIM_IMM_REFUSE, NETSIM_IMM_REFUSE
    };
    rill_connect_opts o;
    run r;
    int naddrs, i, rc, delay, timeout, cancel_at, never = 0;
    char got[8];

    memset(&r, 0, sizeof r);
    r.why = why;
    r.cap = cap;
    r.winner = -1;
    why[0] = '\0';
    netsim_begin(START_MS);
    naddrs = 1 + (int)c->next(c->ctx, NETSIM_MAX_ADDRS);
    for (i = 0; i < naddrs; i++) {
        int family = c->next(c->ctx, 2) ? AF_INET6 : AF_INET;
        netsim_add_addr(family, outcomes[c->next(c->ctx, 10)], 1 + c->next(c->ctx, 400));
    }
    delay = 10 + (int)c->next(c->ctx, 291);
    timeout = 300 + (int)c->next(c->ctx, 5000);
    if (c->strict) {
        /* A first, AAAA in the same instant (inside the resolution delay): both lists are
           known before the first attempt, so the whole order is RFC 8305's interleaving. */
        netsim_answer(AF_INET, 0);
        netsim_answer(AF_INET6, 0);
    } else {
        netsim_answer(AF_INET6, c->next(c->ctx, 120));
        netsim_answer(AF_INET, c->next(c->ctx, 120));
        netsim_fail_socket(c->next(c->ctx, 4) == 0 ? (int)c->next(c->ctx, (unsigned)naddrs) : -1);
    }
    cancel_at = c->next(c->ctx, 4) == 0 ? (int)c->next(c->ctx, 2000) : -1;
    r.cancel_on_socket = c->next(c->ctx, 16) == 0 ? (int)c->next(c->ctx, (unsigned)naddrs) : -1;
    r.action = (int)c->next(c->ctx, 3);

    if ((r.loop = rill_loop_new(NULL)) == NULL) {
        netsim_end();
        snprintf(why, cap, "rill_loop_new failed");
        return -1;
    }
    memset(&o, 0, sizeof o);
    o.happy_eyeballs_delay_ms = delay;
    o.timeout_ms = timeout;
    o.on_socket = on_socket;
    if (cancel_at >= 0)
        r.cancel_timer = rill_call_later(r.loop, (uint64_t)cancel_at, cancel_fired, &r);
    rc = rill_connect(r.loop, "netsim.invalid", 443, &o, on_connect, &r, &r.req);
    if (rc != 0)
        fail(&r, "rill_connect: %s", rill_err_name(rc));
    else if (netsim_run(r.loop, &r.done, RUN_LIMIT_MS) < 0 || !r.done)
        fail(&r, "no callback: the loop ran out of things to do");
    /* Let a graceful close and the cancel timer finish. */
    if (r.cancel_timer != NULL)
        rill_timer_cancel(r.cancel_timer);
    r.cancel_timer = NULL;
    netsim_run(r.loop, &never, RUN_LIMIT_MS);
    if (rc == 0) {
        check_result(&r, timeout);
        if (c->strict)
            check_attempts(&r, delay);
    }
    if ((rc = rill_loop_free(r.loop)) != 0)
        fail(&r, "rill_loop_free: %s", rill_err_name(rc));
    if ((i = netsim_leaked()) != 0)
        fail(&r, "%d descriptors leaked", i);
    if (r.winner >= 0 && r.action > 0 &&
        (netsim_received((size_t)r.winner, got, sizeof got) != 3 || memcmp(got, "sim", 3) != 0))
        fail(&r, "the winner's peer did not receive what the stream wrote");
    netsim_end();
    return why[0] == '\0' ? 0 : -1;
}
