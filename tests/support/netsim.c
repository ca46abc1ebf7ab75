/* The simulation behind netsim.h: one scenario at a time (the hooks are process-wide). */
#include "netsim.h"
#include "rill_private.h"
#include "syshooks.h"
#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define FILL_CHUNK 512
#define RECV_KEEP 16

typedef struct sim_res {
    int used, family, delivered, cancelled;
    rill__resolve_cb cb;
    void *ud;
} sim_res;

typedef struct answer {
    int family;
    uint64_t at;
    int done;
} answer;

static struct {
    uint64_t now, start;
    netsim_addr addrs[NETSIM_MAX_ADDRS];
    int naddrs;
    netsim_sock socks[NETSIM_MAX_SOCKS];
    char received[NETSIM_MAX_SOCKS][RECV_KEEP];
    size_t nreceived[NETSIM_MAX_SOCKS];
    size_t nsocks;
    answer answers[2];
    int nanswers;
    sim_res res[4];
    int nres;
    int fail_socket, nsocket_calls;
} sim;

/* --------------------------------------------------------------- hooks */

static netsim_sock *find_open(int fd)
{
    size_t i;
    for (i = sim.nsocks; i-- > 0;)
        if (sim.socks[i].fd == fd && !sim.socks[i].closed)
            return &sim.socks[i];
    return NULL;
}

/* Drains the harness end: the library end turns writable (its send buffer empties). */
static void drain(int peer)
{
    char buf[FILL_CHUNK];
    while (read(peer, buf, sizeof buf) > 0)
        continue;
}

static int h_socket(int domain, int type, int protocol)
{
    int sv[2], flags = 0, one = 1;
    char filler[FILL_CHUNK];
    netsim_sock *s;

    (void)protocol;
    if (domain != AF_INET && domain != AF_INET6) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    if (sim.nsocket_calls++ == sim.fail_socket || sim.nsocks == NETSIM_MAX_SOCKS) {
        errno = EMFILE;
        return -1;
    }
#ifdef SOCK_NONBLOCK
    flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
#endif
    if (socketpair(AF_UNIX, SOCK_STREAM | flags, 0, sv) < 0)
        return -1;
    /* A small, full send buffer: not writable until the harness drains the peer. */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof one);
    memset(filler, 'f', sizeof filler);
    while (send(sv[0], filler, sizeof filler, MSG_DONTWAIT) > 0)
        continue;
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    fcntl(sv[1], F_SETFD, FD_CLOEXEC);
    s = &sim.socks[sim.nsocks++];
    memset(s, 0, sizeof *s);
    s->fd = sv[0];
    s->peer = sv[1];
    s->addr = -1;
    return sv[0];
}

static int addr_index(const struct sockaddr *sa)
{
    int port = sa->sa_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)sa)->sin6_port)
               : sa->sa_family == AF_INET ? ntohs(((const struct sockaddr_in *)sa)->sin_port) : -1;
    int i = port - NETSIM_BASE_PORT;
    return i >= 0 && i < sim.naddrs && sim.addrs[i].family == sa->sa_family ? i : -1;
}

static int h_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    netsim_sock *s = find_open(fd);
    const netsim_addr *a;
    int i = addr_index(sa);

    (void)len;
    if (s == NULL || i < 0 || s->addr >= 0) {
        errno = s == NULL ? EBADF : i < 0 ? ENETUNREACH : EISCONN;
        return -1;
    }
    a = &sim.addrs[i];
    s->addr = i;
    s->t_connect = sim.now;
    switch (a->outcome) {
    case NETSIM_IMM_OK:
        s->fired = 1;
        drain(s->peer);
        return 0;
    case NETSIM_IMM_REFUSE:
        s->fired = 1;
        errno = ECONNREFUSED;
        return -1;
    case NETSIM_OK:
    case NETSIM_REFUSE:
        s->pending = 1;
        s->t_event = sim.now + a->delay_ms;
        break;
    case NETSIM_HANG:
        break;
    }
    errno = EINPROGRESS;
    return -1;
}

static int h_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    netsim_sock *s = find_open(fd);
    if (s == NULL || level != SOL_SOCKET || name != SO_ERROR)
        return getsockopt(fd, level, name, val, len);
    if (*len < (socklen_t)sizeof(int)) {
        errno = EINVAL;
        return -1;
    }
    /* As the kernel does: reading the pending error clears it. */
    memcpy(val, &s->so_error, sizeof(int));
    *len = sizeof(int);
    s->so_error = 0;
    return 0;
}

static int h_close(int fd)
{
    netsim_sock *s = find_open(fd);
    if (s != NULL)
        s->closed = 1;
    return close(fd);
}

static uint64_t h_clock(void) { return sim.now; }

static int h_resolve(const char *host, int port, int family, rill__resolve_cb cb, void *ud,
                     struct rill__resolve_req **out)
{
    sim_res *r;
    (void)host;
    (void)port;
    if (sim.nres == (int)(sizeof sim.res / sizeof sim.res[0]))
        return RILL_ENOMEM;
    r = &sim.res[sim.nres++];
    memset(r, 0, sizeof *r);
    r->used = 1;
    r->family = family;
    r->cb = cb;
    r->ud = ud;
    *out = (struct rill__resolve_req *)(void *)r;
    return 0;
}

static void h_resolve_cancel(struct rill__resolve_req *req)
{
    sim_res *r = (sim_res *)(void *)req;
    if (r != NULL && !r->delivered)
        r->cancelled = 1;
}

static const rill__sys_hooks hooks = {
    .socket = h_socket, .connect = h_connect, .getsockopt = h_getsockopt, .close = h_close,
    .clock_ms = h_clock, .resolve = h_resolve, .resolve_cancel = h_resolve_cancel
};

/* ------------------------------------------------------------ scenario */

void netsim_begin(uint64_t start_ms)
{
    memset(&sim, 0, sizeof sim);
    sim.now = sim.start = start_ms;
    sim.fail_socket = -1;
    rill__sys_hooks_set(&hooks);
}

void netsim_end(void)
{
    size_t i;
    rill__sys_hooks_set(NULL);
    for (i = 0; i < sim.nsocks; i++)
        if (sim.socks[i].peer >= 0) {
            close(sim.socks[i].peer);
            sim.socks[i].peer = -1;
        }
}

int netsim_add_addr(int family, netsim_outcome outcome, uint64_t delay_ms)
{
    netsim_addr *a;
    if (sim.naddrs == NETSIM_MAX_ADDRS)
        return -1;
    a = &sim.addrs[sim.naddrs];
    a->family = family;
    a->outcome = outcome;
    a->delay_ms = delay_ms;
    return sim.naddrs++;
}

void netsim_answer(int family, uint64_t at_ms)
{
    if (sim.nanswers < 2) {
        sim.answers[sim.nanswers].family = family;
        sim.answers[sim.nanswers].at = sim.start + at_ms;
        sim.nanswers++;
    }
}

void netsim_fail_socket(int nth) { sim.fail_socket = nth; }
uint64_t netsim_now(void) { return sim.now; }
size_t netsim_nsocks(void) { return sim.nsocks; }
const netsim_sock *netsim_sock_at(size_t i) { return i < sim.nsocks ? &sim.socks[i] : NULL; }
const netsim_addr *netsim_addr_at(int i) { return i >= 0 && i < sim.naddrs ? &sim.addrs[i] : NULL; }
int netsim_naddrs(void) { return sim.naddrs; }
const netsim_sock *netsim_find(int fd) { return find_open(fd); }

/* The answer time of a family: scripted, else at once. */
static uint64_t answer_at(int family, const answer **which)
{
    int i;
    for (i = 0; i < sim.nanswers; i++)
        if (sim.answers[i].family == family) {
            *which = &sim.answers[i];
            return sim.answers[i].at;
        }
    *which = NULL;
    return sim.now;
}

static void deliver(sim_res *r)
{
    struct sockaddr_storage ss[NETSIM_MAX_ADDRS];
    size_t n = 0;
    int i;

    memset(ss, 0, sizeof ss);
    for (i = 0; i < sim.naddrs; i++) {
        uint16_t port = htons((uint16_t)(NETSIM_BASE_PORT + i));
        if (sim.addrs[i].family != r->family)
            continue;
        if (r->family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss[n++];
            s6->sin6_family = AF_INET6;
            s6->sin6_addr = in6addr_loopback;
            s6->sin6_port = port;
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss[n++];
            s4->sin_family = AF_INET;
            s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            s4->sin_port = port;
        }
    }
    r->delivered = 1;
    r->cb(n > 0 ? 0 : RILL_ENOTFOUND, r->family, ss, n, r->ud);
}

/* Fires what is due now, in script order; returns 1 if anything fired. */
static int fire_due(void)
{
    int fired = 0, i, k;
    size_t j;

    /* Answers: unscripted families at once, then the scripted ones in script order. */
    for (k = -1; k < sim.nanswers; k++)
        for (i = 0; i < sim.nres; i++) {
            sim_res *r = &sim.res[i];
            const answer *a;
            uint64_t at = answer_at(r->family, &a);
            if (r->delivered || r->cancelled || at > sim.now || a != (k < 0 ? NULL : &sim.answers[k]))
                continue;
            deliver(r);
            fired = 1;
        }
    for (j = 0; j < sim.nsocks; j++) {
        netsim_sock *s = &sim.socks[j];
        if (!s->pending || s->t_event > sim.now)
            continue;
        s->pending = 0;
        s->fired = 1;
        if (s->closed)
            continue;
        s->so_error = sim.addrs[s->addr].outcome == NETSIM_REFUSE ? ECONNREFUSED : 0;
        drain(s->peer);
        fired = 1;
    }
    return fired;
}

/* The next virtual instant at which the script does something; UINT64_MAX: never. */
static uint64_t next_event(void)
{
    uint64_t t = UINT64_MAX;
    size_t j;
    int i;
    for (i = 0; i < sim.nres; i++) {
        const answer *a;
        uint64_t at = answer_at(sim.res[i].family, &a);
        if (!sim.res[i].delivered && !sim.res[i].cancelled && at < t)
            t = at;
    }
    for (j = 0; j < sim.nsocks; j++)
        if (sim.socks[j].pending && !sim.socks[j].closed && sim.socks[j].t_event < t)
            t = sim.socks[j].t_event;
    return t;
}

int netsim_run(rill_loop *loop, const int *done, uint64_t limit_ms)
{
    uint64_t end = sim.now + limit_ms;

    for (;;) {
        uint64_t next;
        int tt;

        fire_due();
        if (rill_loop_run_once(loop, 0) < 0)
            return -1;
        if (*done || !rill_loop_alive(loop))
            return 0;
        if (loop->npending > 0)
            continue;
        /* Nothing pending: jump to the next script event or timer deadline. */
        next = next_event();
        tt = rill__timer_timeout(loop);
        if (tt >= 0 && loop->now + (uint64_t)tt < next)
            next = loop->now + (uint64_t)tt;
        if (next == UINT64_MAX)
            return -1;
        if (next > end)
            return 0;
        if (next > sim.now)
            sim.now = next;
    }
}

int netsim_leaked(void)
{
    int leaked = 0;
    size_t i;
    for (i = 0; i < sim.nsocks; i++) {
        netsim_sock *s = &sim.socks[i];
        char buf[FILL_CHUNK];
        ssize_t n;
        if (s->peer < 0)
            continue;
        /* The filler of a socket never drained comes first; whatever follows it, the library wrote. */
        while ((n = read(s->peer, buf, sizeof buf)) > 0) {
            ssize_t k = 0;
            if (!s->fired || sim.addrs[s->addr < 0 ? 0 : s->addr].outcome == NETSIM_HANG)
                continue;
            while (k < n && sim.nreceived[i] < RECV_KEEP)
                sim.received[i][sim.nreceived[i]++] = buf[k++];
        }
        if (n < 0)
            leaked++;
        close(s->peer);
        s->peer = -1;
    }
    return leaked;
}

size_t netsim_received(size_t i, char *buf, size_t cap)
{
    size_t n = i < sim.nsocks ? sim.nreceived[i] : 0;
    if (n > cap)
        n = cap;
    memcpy(buf, sim.received[i], n);
    return n;
}
