/* [net] c-ares on the rill loop.

   One channel per loop, created at the first lookup that needs it. c-ares tells us which
   sockets to watch through ARES_OPT_SOCK_STATE_CB (never ares_fds, which breaks above
   FD_SETSIZE and does not report new sockets) and when it must be woken for its timeouts
   (ares_timeout, honoured with one internal timer). Neither the watchers nor the timer
   count as handles: the connect request that owns a lookup keeps the loop alive.

   c-ares callbacks never reach the owner directly: addrinfo_cb parks the result in the
   request and queues a task. So a result is always delivered from the loop (also when
   c-ares answers synchronously inside ares_getaddrinfo: hosts file, allocation failure),
   c-ares is never re-entered from an owner's callback, and nothing c-ares still uses is
   freed under it. The task runs in the same loop iteration as the I/O that produced the
   answer, so this costs no extra poll. */
#include "rill_private.h"
#include "resolve.h"
#include "error.h"
#include "syshooks.h"

#include <ares.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* ------------------------------------------------------------- the channel */

/* One watched c-ares socket. c-ares rarely has more than one or two open. */
typedef struct sock_watch {
    rill__io io;
    struct rill__resolver *res;
    struct sock_watch *next;
} sock_watch;

struct rill__resolver {
    rill_loop *loop;
    ares_channel channel;
    rill_timer timer;       /* armed from ares_timeout() after every c-ares call */
    sock_watch *socks;
    size_t inflight;        /* requests c-ares holds */
};

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_status;

static void ares_init_once(void) { ares_init_status = ares_library_init(ARES_LIB_INIT_ALL); }

static void rearm(struct rill__resolver *res);

static void process_timeouts(struct rill__resolver *res)
{
    ares_process_fd(res->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm(res);
}

static void timer_cb(void *ud) { process_timeouts(ud); }

/* Call after every c-ares call that may have changed its next deadline. */
static void rearm(struct rill__resolver *res)
{
    struct timeval tv;
    uint64_t ms;

    if (ares_timeout(res->channel, NULL, &tv) == NULL) {
        rill__timer_stop(&res->timer);
        return;
    }
    /* Rounded up: waking a little early would find nothing due and spin once more. */
    ms = (uint64_t)tv.tv_sec * 1000u + ((uint64_t)tv.tv_usec + 999u) / 1000u;
    rill__timer_start(&res->timer, ms);
}

static void sock_io_cb(rill__io *io, int revents)
{
    sock_watch *w = rill__container_of(io, sock_watch, io);
    struct rill__resolver *res = w->res;
    ares_socket_t fd = io->fd;

    /* w may be freed inside ares_process_fd (c-ares closing this socket): not used after. */
    ares_process_fd(res->channel, (revents & RILL_READABLE) ? fd : ARES_SOCKET_BAD,
                    (revents & RILL_WRITABLE) ? fd : ARES_SOCKET_BAD);
    rearm(res);
}

static void sock_unwatch(struct rill__resolver *res, sock_watch **link)
{
    sock_watch *w = *link;
    rill__io_stop(res->loop, &w->io);
    *link = w->next;
    rill__free(w);
}

/* c-ares: watch fd for these events; none means it is about to close fd. The watcher goes
   now, while the descriptor number is still this socket's (it may be reused right after). */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct rill__resolver *res = data;
    int events = (readable ? RILL_READABLE : 0) | (writable ? RILL_WRITABLE : 0);
    sock_watch **link, *w;

    for (link = &res->socks; *link != NULL && (*link)->io.fd != fd; link = &(*link)->next)
        ;
    if (events == 0) {
        if (*link != NULL)
            sock_unwatch(res, link);
        return;
    }
    if ((w = *link) == NULL) {
        /* No memory: the socket goes unwatched and its query ends by timeout (RILL_EDNS). */
        if ((w = rill__malloc(sizeof *w)) == NULL)
            return;
        rill__io_init(&w->io, fd, sock_io_cb);
        w->res = res;
        w->next = NULL;
        *link = w;
    }
    if (rill__io_start(res->loop, &w->io, events) < 0)
        sock_unwatch(res, link);
}

static void resolver_destroy(rill_loop *loop);

static int resolver_get(rill_loop *loop, struct rill__resolver **out)
{
    struct rill__resolver *res = loop->resolver;
    struct ares_options o;
    int mask = ARES_OPT_SOCK_STATE_CB, rc;

    if (res != NULL) {
        *out = res;
        return 0;
    }
    pthread_once(&ares_once, ares_init_once);
    if (ares_init_status != ARES_SUCCESS)
        return ares_init_status == ARES_ENOMEM ? RILL_ENOMEM : RILL_EDNS;
    /* "" would leave c-ares with no server at all: not a server list. */
    if (loop->dns_servers != NULL && loop->dns_servers[0] == '\0')
        return RILL_EINVAL;
    if ((res = rill__calloc(1, sizeof *res)) == NULL)
        return RILL_ENOMEM;
    res->loop = loop;
    memset(&o, 0, sizeof o);
    o.sock_state_cb = sock_state_cb;
    o.sock_state_cb_data = res;
    if (loop->dns_timeout_ms > 0) {
        o.timeout = loop->dns_timeout_ms;
        mask |= ARES_OPT_TIMEOUTMS;
    }
    if (loop->dns_tries > 0) {
        o.tries = loop->dns_tries;
        mask |= ARES_OPT_TRIES;
    }
    if ((rc = ares_init_options(&res->channel, &o, mask)) != ARES_SUCCESS) {
        rill__free(res);
        return rc == ARES_ENOMEM ? RILL_ENOMEM : RILL_EDNS;
    }
    if (loop->dns_servers != NULL &&
        (rc = ares_set_servers_ports_csv(res->channel, loop->dns_servers)) != ARES_SUCCESS) {
        ares_destroy(res->channel);
        rill__free(res);
        return rc == ARES_ENOMEM ? RILL_ENOMEM : RILL_EINVAL;
    }
    rill__timer_init(&res->timer, loop, timer_cb, res);
    loop->resolver = res;
    loop->resolver_free = resolver_destroy;
    *out = res;
    return 0;
}

/* Frees the channel: rill_loop_free calls it through loop->resolver_free, set only
   with the channel. Queries still inside c-ares (only cancelled ones can be) are
   freed without calling back. */
static void resolver_destroy(rill_loop *loop)
{
    struct rill__resolver *res = loop->resolver;

    /* c-ares calls back every query it still holds with ARES_EDESTRUCTION (addrinfo_cb frees
       them) and reports its sockets closing (sock_state_cb drops the watchers). */
    ares_destroy(res->channel);
    while (res->socks != NULL)   /* any socket c-ares did not report */
        sock_unwatch(res, &res->socks);
    rill__timer_stop(&res->timer);
    loop->resolver = NULL;
    rill__free(res);
}

size_t rill__resolve_inflight(const rill_loop *loop)
{
    return loop->resolver != NULL ? loop->resolver->inflight : 0;
}

/* ---------------------------------------------------------------- requests */

#define RES_STATES(X, LAST) X(RES, QUERY) X(RES, DONE) LAST(RES, CANCELLED)
enum res_state { RES_STATES(RILL__STATE_ENUM, RILL__STATE_ENUM_LAST) };
static const char *const res_state_names[] = { RES_STATES(RILL__STATE_NAME, RILL__STATE_NAME) };

struct rill__resolve_req {
    rill__task task;                 /* delivers the parked result from the loop */
    rill_loop *loop;
    unsigned long id;
    enum res_state state;
    int family, port;
    int in_ares;                     /* c-ares holds it: only addrinfo_cb may free it */
    int starting;                    /* inside ares_getaddrinfo */
    int sync;                        /* c-ares answered inside ares_getaddrinfo (for the trace) */
    int status;                      /* the parked result */
    struct sockaddr_storage *addrs;
    size_t n;
    struct sockaddr_storage one;     /* a numeric host's address: no second allocation */
    rill__resolve_cb cb;
    void *ud;
    char host[];                     /* for the trace */
};

static const char *family_name(int family) { return family == AF_INET6 ? "AAAA" : "A"; }

/* Every state change goes through here, so RILL_TRACE shows each one. */
static void set_state(rill__resolve_req *r, enum res_state to)
{
    const char *from = res_state_names[r->state], *name = res_state_names[to];

    if (to == RES_DONE && r->status == 0)
        RILL__TRACE("resolve", r->id, "resolve", from, name, "%s %s %lu addrs%s", r->host,
                    family_name(r->family), (unsigned long)r->n, r->sync ? " (sync)" : "");
    else if (to == RES_DONE)
        RILL__TRACE("resolve", r->id, "resolve", from, name, "%s %s %s", r->host,
                    family_name(r->family), rill_err_name(r->status));
    else
        RILL__TRACE("resolve", r->id, "resolve", from, name, "%s %s", r->host, family_name(r->family));
    r->state = to;
}

static void req_free(rill__resolve_req *r)
{
    if (r->addrs != &r->one)
        rill__free(r->addrs);
    rill__free(r);
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static void deliver(rill__task *t)
{
    rill__resolve_req *r = rill__container_of(t, rill__resolve_req, task);

    /* DONE before the call: a cancel from inside the callback is then a no-op. */
    set_state(r, RES_DONE);
    if (r->status == 0)
        r->cb(0, r->family, r->addrs, r->n, r->ud);
    else
        r->cb(r->status, r->family, NULL, 0, r->ud);
    req_free(r);
}

static int node_usable(const struct ares_addrinfo_node *nd, int family)
{
    size_t need = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    return nd->ai_family == family && nd->ai_addr != NULL &&
           (size_t)nd->ai_addrlen >= need && (size_t)nd->ai_addrlen <= sizeof(struct sockaddr_storage);
}

/* Copies the addresses of r's family, in c-ares's order; 0 or the error to report. */
static int copy_addrs(rill__resolve_req *r, const struct ares_addrinfo *ai)
{
    const struct ares_addrinfo_node *nd;
    size_t n = 0;

    for (nd = ai != NULL ? ai->nodes : NULL; nd != NULL; nd = nd->ai_next)
        n += node_usable(nd, r->family);
    if (n == 0)
        return RILL_ENOTFOUND;
    if ((r->addrs = rill__calloc(n, sizeof *r->addrs)) == NULL)
        return RILL_ENOMEM;
    for (nd = ai->nodes; nd != NULL; nd = nd->ai_next) {
        if (!node_usable(nd, r->family))
            continue;
        memcpy(&r->addrs[r->n], nd->ai_addr, (size_t)nd->ai_addrlen);
        set_port(&r->addrs[r->n], r->port);
        r->n++;
    }
    return 0;
}

static void addrinfo_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    rill__resolve_req *r = arg;

    (void)timeouts;
    r->in_ares = 0;
    r->loop->resolver->inflight--;
    if (r->state == RES_CANCELLED || status == ARES_EDESTRUCTION) {
        /* Nobody wants the answer (cancelled, or the loop is being freed). c-ares is done
           with r and nothing else refers to it, so it goes now: no callback of ours runs. */
        if (ai != NULL)
            ares_freeaddrinfo(ai);
        req_free(r);
        return;
    }
    r->sync = r->starting;
    r->status = status == ARES_SUCCESS ? copy_addrs(r, ai) : rill__err_from_ares(status);
    if (ai != NULL)
        ares_freeaddrinfo(ai);
    rill__task_post(r->loop, &r->task);
}

/* An IPv6 literal, with an optional "%scope" (interface name or number). 1: parsed into
   sin6; 0: not an IPv6 literal; -1: a literal with an unknown scope. */
static int parse_v6(const char *host, struct sockaddr_in6 *sin6)
{
    char buf[64];
    const char *pct = strchr(host, '%');
    size_t len = pct != NULL ? (size_t)(pct - host) : strlen(host);
    unsigned long long scope;   /* wider than a scope id on every platform: range-checked */
    char *end;

    if (len >= sizeof buf)
        return 0;
    memcpy(buf, host, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1)
        return 0;
    sin6->sin6_family = AF_INET6;
    if (pct == NULL)
        return 1;
    if ((scope = if_nametoindex(pct + 1)) == 0) {
        /* A number: digits only (strtoull alone would take " +5"). */
        scope = strtoull(pct + 1, &end, 10);
        if (pct[1] < '0' || pct[1] > '9' || *end != '\0' || scope == 0 || scope > 0xffffffffULL)
            return -1;
    }
    sin6->sin6_scope_id = (uint32_t)scope;
    return 1;
}

/* Address literals are answered here, without c-ares (which would consult the hosts file,
   or even send a query for a scoped IPv6 literal). 1: r->status (and r->one) set; 0: a name. */
static int numeric_lookup(rill__resolve_req *r, int ares_flags)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&r->one;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r->one;
    struct in_addr a4;
    int v6;

    if (inet_pton(AF_INET, r->host, &a4) == 1) {
        if (r->family == AF_INET) {
            sin->sin_family = AF_INET;
            sin->sin_addr = a4;
        } else if (ares_flags & ARES_AI_V4MAPPED) {
            sin6->sin6_family = AF_INET6;
            sin6->sin6_addr.s6_addr[10] = 0xff;
            sin6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(&sin6->sin6_addr.s6_addr[12], &a4, 4);
        } else {
            r->status = RILL_ENOTFOUND;
            return 1;
        }
    } else if ((v6 = parse_v6(r->host, sin6)) != 0) {
        if (v6 < 0 || r->family != AF_INET6) {
            r->status = v6 < 0 ? RILL_EINVAL : RILL_ENOTFOUND;
            return 1;
        }
    } else {
        return 0;
    }
    set_port(&r->one, r->port);
    r->addrs = &r->one;
    r->n = 1;
    r->status = 0;
    return 1;
}

int rill__resolve(rill_loop *loop, const char *host, int port, int family, int ares_flags,
                  rill__resolve_cb cb, void *ud, rill__resolve_req **out)
{
    struct ares_addrinfo_hints hints;
    struct rill__resolver *res;
    rill__resolve_req *r;
    size_t hostlen;
    int rc;

    if (loop == NULL || host == NULL || *host == '\0' || cb == NULL || out == NULL ||
        port < 0 || port > 65535 || (family != AF_INET && family != AF_INET6))
        return RILL_EINVAL;
    if (rill__sys_hooks_cur != NULL && rill__sys_hooks_cur->resolve != NULL)
        return rill__sys_hooks_cur->resolve(host, port, family, cb, ud, out);
    hostlen = strlen(host);
    if ((r = rill__calloc(1, sizeof *r + hostlen + 1)) == NULL)
        return RILL_ENOMEM;
    rill__task_init(&r->task, deliver);
    r->loop = loop;
    r->state = RES_QUERY;
    r->family = family;
    r->port = port;
    r->cb = cb;
    r->ud = ud;
    memcpy(r->host, host, hostlen + 1);

    if (numeric_lookup(r, ares_flags) || (ares_flags & ARES_AI_NUMERICHOST)) {
        if (r->n == 0 && r->status == 0)
            r->status = RILL_ENOTFOUND;   /* AI_NUMERICHOST and not a literal */
        r->id = rill__next_id(loop);
        RILL__TRACE("resolve", r->id, "resolve", "NEW", "QUERY", "%s %s NUMERIC (no query sent: a numeric address or AI_NUMERICHOST)", host,
                    family_name(family));
        rill__task_post(loop, &r->task);
        *out = r;
        return 0;
    }
    if ((rc = resolver_get(loop, &res)) < 0) {
        rill__free(r);
        return rc;
    }
    r->id = rill__next_id(loop);
    RILL__TRACE("resolve", r->id, "resolve", "NEW", "QUERY", "%s %s", host, family_name(family));
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    /* NOSORT: to sort (RFC 6724) c-ares connect()s a UDP socket to every address; the
       connect machine orders addresses itself. */
    hints.ai_flags = ares_flags | ARES_AI_NOSORT;
    r->in_ares = 1;
    res->inflight++;
    /* c-ares may call addrinfo_cb before this returns; it only parks the result then. */
    r->starting = 1;
    ares_getaddrinfo(res->channel, host, NULL, &hints, addrinfo_cb, r);
    r->starting = 0;
    rearm(res);
    *out = r;
    return 0;
}

void rill__resolve_cancel(rill__resolve_req *r)
{
    if (rill__sys_hooks_cur != NULL && rill__sys_hooks_cur->resolve_cancel != NULL) {
        rill__sys_hooks_cur->resolve_cancel(r);
        return;
    }
    /* DONE: inside its own callback, which frees it afterwards. */
    if (r == NULL || r->state != RES_QUERY)
        return;
    set_state(r, RES_CANCELLED);
    /* Still inside c-ares: addrinfo_cb frees it. ares_cancel is not used: it would end
       every query of the channel. */
    if (r->in_ares)
        return;
    rill__task_cancel(r->loop, &r->task);
    req_free(r);
}

int rill__ai_flags_to_ares(int flags, int *ares_flags)
{
    static const struct { int sys, ares; } map[] = {
        { AI_NUMERICHOST, ARES_AI_NUMERICHOST },
        { AI_ADDRCONFIG, ARES_AI_ADDRCONFIG },
        { AI_V4MAPPED, ARES_AI_V4MAPPED },
        { AI_ALL, ARES_AI_ALL },
    };
    size_t i;
    int out = 0;

    if (ares_flags == NULL)
        return RILL_EINVAL;
    for (i = 0; i < sizeof map / sizeof map[0]; i++)
        if (flags & map[i].sys) {
            out |= map[i].ares;
            flags &= ~map[i].sys;
        }
    if (flags != 0)
        return RILL_EINVAL;
    *ares_flags = out;
    return 0;
}
