/* [net] The connect machine: resolve -> Happy Eyeballs attempts -> (TLS handshake) -> stream.
 *
 *   RESOLVING --AAAA first--------------------------> ATTEMPTING --one connects--> [HANDSHAKE] --> DONE
 *   (rill_connect_sock: READY --from the loop--> DONE)
 *       \--A first--> RES_DELAY --AAAA or 50 ms------^     | \--all failed, nothing left--> FAILED
 *                                                          \--timeout_ms / cancel ---------> FAILED / CANCELLED
 *
 * RFC 8305: A and AAAA are asked in parallel; when A answers first we wait up to
 * 50 ms for AAAA (Resolution Delay); addresses are interleaved by family, IPv6
 * first; a new attempt starts every happy_eyeballs_delay_ms, or at once when the
 * running one fails; the first to connect wins and the others are closed.
 * Addresses that arrive while attempts run join the list. */
#include "tls.h"
#include "resolve.h"
#include "syshooks.h"

#include <fcntl.h>
#include <stdarg.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#define RESOLUTION_DELAY_MS 50
#define DEFAULT_ATTEMPT_DELAY_MS 250
#define MIN_ATTEMPT_DELAY_MS 10
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 60000
#define MAX_ADDRS 64          /* per family: a hostile DNS answer cannot make us open thousands */

#define CONN_STATES(X, LAST) \
    X(CONN, RESOLVING) X(CONN, RES_DELAY) X(CONN, ATTEMPTING) X(CONN, HANDSHAKE) X(CONN, READY) \
    X(CONN, DONE) X(CONN, FAILED) LAST(CONN, CANCELLED)
typedef enum { CONN_STATES(RILL__STATE_ENUM, RILL__STATE_ENUM_LAST) } conn_state;
static const char *const conn_names[] = { CONN_STATES(RILL__STATE_NAME, RILL__STATE_NAME) };

/* Each attempt is allocated on its own and linked into its request: its watcher is
   registered with the loop, so the attempt must never move while it runs. */
typedef struct attempt {
    rill__io io;
    rill__list node;              /* in req->attempts */
    struct rill_connect_req *req;
    struct sockaddr_storage addr;
    socklen_t addrlen;
} attempt;

typedef struct family_list {
    int family;
    struct sockaddr_storage addrs[MAX_ADDRS];
    size_t n, next;
    rill__resolve_req *res;    /* NULL when answered (or never asked) */
    int asked, err;
} family_list;

struct rill_connect_req {
    rill_loop *loop;
    rill__handle h;
    unsigned long id;
    conn_state state;
    rill_connect_cb cb;
    void *ud;

    /* options, copied */
    size_t limit;
    rill_tls *tls;
    char *hostname;               /* for TLS: SNI and verification */
    int attempt_delay_ms;         /* -1: sequential */
    int interleave;
    int hs_timeout_ms;
    int (*on_socket)(int fd, int family, void *ud);
    char *errbuf;                 /* the caller's, NULL: none; each failed attempt is noted in it */
    size_t errbuf_len, errbuf_used;
    struct sockaddr_storage local;
    socklen_t locallen;

    family_list fam[2];           /* [0] IPv6, [1] IPv4 */
    int cur;                      /* family the next address comes from */
    int run;                      /* addresses taken from it in a row */
    int first_round;

    rill__list attempts;          /* running attempts */
    size_t natt;
    int first_err;                /* the first attempt's error: what asyncio reports */
    size_t tried;

    rill_timer delay_timer;       /* resolution delay, then attempt delay */
    rill_timer total_timer;       /* timeout_ms */
    rill_stream *stream;
    int status;
    rill__task task;              /* delivers results known without I/O */
};

static void step(rill_connect_req *r);

static void conn_to(rill_connect_req *r, conn_state to, int status)
{
    RILL__TRACE("connect", r->id, "connect", conn_names[r->state], conn_names[to], "%s",
                status ? rill_err_name(status) : "");
    r->state = to;
}

static int terminal(const rill_connect_req *r)
{
    return r->state == CONN_DONE || r->state == CONN_FAILED || r->state == CONN_CANCELLED;
}

/* ----------------------------------------------------------- teardown */

/* Stops the attempt's watcher, closes its descriptor unless it was handed on
   (fd -1), and frees it: the one way an attempt ends. */
static void attempt_end(attempt *a)
{
    rill_connect_req *r = a->req;

    rill__io_stop(r->loop, &a->io);
    if (a->io.fd >= 0)
        rill__sys_close(a->io.fd);
    rill__list_unlink(&a->node);
    r->natt--;
    rill__free(a);
}

static void stop_everything(rill_connect_req *r)
{
    size_t i;
    for (i = 0; i < 2; i++)
        if (r->fam[i].res != NULL) {
            rill__resolve_cancel(r->fam[i].res);
            r->fam[i].res = NULL;
        }
    while (!rill__list_empty(&r->attempts))
        attempt_end(rill__container_of(r->attempts.next, attempt, node));
    rill__timer_stop(&r->delay_timer);
    rill__timer_stop(&r->total_timer);
}

/* Every exit frees here, and stops first what the request registered: a timer
   left armed in freed memory would corrupt the loop's heap. */
static void req_free_memory(rill__handle *h)
{
    rill__free(rill__container_of(h, rill_connect_req, h));
}

static void req_free(rill_connect_req *r)
{
    stop_everything(r);
    rill__task_cancel(r->loop, &r->task);
    rill__free(r->hostname);
    if (r->tls != NULL)
        rill_tls_free(r->tls);
    rill__handle_closed(r->loop, &r->h);
}

/* Appends to the caller's errbuf; what does not fit is cut, the text stays terminated. */
static void note(rill_connect_req *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (r->errbuf == NULL || r->errbuf_used + 1 >= r->errbuf_len)
        return;
    va_start(ap, fmt);
    n = vsnprintf(r->errbuf + r->errbuf_used, r->errbuf_len - r->errbuf_used, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->errbuf_used += (size_t)n < r->errbuf_len - r->errbuf_used ? (size_t)n : r->errbuf_len - r->errbuf_used - 1;
}

/* The reason first (the TLS verdict while the stream still holds it, else the
   error's text), then the attempts noted so far. */
static void explain(rill_connect_req *r, int status)
{
    char attempts[512];
    const char *tls = r->stream != NULL ? rill__tls_last_error(r->stream) : NULL;

    if (r->errbuf == NULL)
        return;
    snprintf(attempts, sizeof attempts, "%s", r->errbuf_used > 0 ? r->errbuf : "");
    r->errbuf_used = 0;
    r->errbuf[0] = '\0';
    if (tls != NULL && *tls != '\0')
        note(r, "TLS: %s", tls);
    else
        note(r, "%s", rill_strerror(status));
    if (*attempts != '\0')
        note(r, " (attempts:%s)", attempts);
}

/* The one exit: the request is freed before the callback, so the callback may
   start another connect or free anything. */
static void complete(rill_connect_req *r, conn_state to, int status)
{
    rill_connect_cb cb = r->cb;
    void *ud = r->ud;
    rill_stream *s = status == 0 ? r->stream : NULL;

    if (status < 0)
        explain(r, status);
    if (status < 0 && r->stream != NULL)
        rill_abort(r->stream);
    conn_to(r, to, status);
    req_free(r);
    cb(s, status, ud);
}

static void task_run(rill__task *t)
{
    rill_connect_req *r = rill__container_of(t, rill_connect_req, task);
    if (r->state == CONN_CANCELLED)
        complete(r, CONN_CANCELLED, RILL_ECANCELED);
    else if (r->state == CONN_READY)
        complete(r, CONN_DONE, 0);
    else
        step(r);
}

/* ------------------------------------------------------------ winning */

static void handshake_done(rill_stream *s, int status, void *ud)
{
    rill_connect_req *r = ud;
    (void)s;
    complete(r, status == 0 ? CONN_DONE : CONN_FAILED, status);
}

static void won(rill_connect_req *r, attempt *a)
{
    int fd = a->io.fd;
    int rc;

    /* The winner's descriptor moves to the stream; every other attempt closes. */
    a->io.fd = -1;
    attempt_end(a);
    stop_everything(r);
    r->stream = rill__stream_new(r->loop, fd, RILL_MODE_READWRITE, r->limit, &rill__sock_transport);
    if (r->stream == NULL) {
        rc = -errno;
        rill__sys_close(fd);
        complete(r, CONN_FAILED, rc);
        return;
    }
    if (r->tls == NULL) {
        complete(r, CONN_DONE, 0);
        return;
    }
    conn_to(r, CONN_HANDSHAKE, 0);
    rc = rill__tls_start(r->stream, r->tls, 0, r->hostname, r->hs_timeout_ms, handshake_done, r);
    if (rc < 0)
        complete(r, CONN_FAILED, rc);
}

/* ----------------------------------------------------------- attempts */

static void attempt_failed(rill_connect_req *r, attempt *a, int err)
{
    char text[64];
    if ((rill__trace_on || r->errbuf != NULL) && rill_format_addr((struct sockaddr *)&a->addr, text, sizeof text) > 0) {
        RILL__TRACE("connect", r->id, "attempt", "CONNECTING", "FAILED", "%s %s", text, rill_err_name(err));
        note(r, " %s %s", text, rill_err_name(err));
    }
    attempt_end(a);
    if (r->first_err == 0)
        r->first_err = err;
    /* A failure starts the next attempt at once (RFC 8305 section 5). */
    rill__timer_stop(&r->delay_timer);
    step(r);
}

static void attempt_io(rill__io *io, int revents)
{
    attempt *a = rill__container_of(io, attempt, io);
    rill_connect_req *r = a->req;
    int err = 0;
    socklen_t len = sizeof err;

    (void)revents;
    if (rill__sys_getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0)
        won(r, a);
    else
        attempt_failed(r, a, -err);
}

/* Next address, interleaving families: `interleave` of the first family, then one each. */
static struct sockaddr_storage *next_addr(rill_connect_req *r)
{
    int k;
    for (k = 0; k < 2; k++) {
        family_list *f = &r->fam[r->cur];
        if (f->next < f->n) {
            struct sockaddr_storage *ss = &f->addrs[f->next++];
            if (++r->run >= (r->first_round ? r->interleave : 1)) {
                r->cur ^= 1;
                r->run = 0;
                r->first_round = 0;
            }
            return ss;
        }
        r->cur ^= 1;
        r->run = 0;
    }
    return NULL;
}

static socklen_t addr_len(const struct sockaddr_storage *ss)
{
    switch (ss->ss_family) {
    case AF_INET: return sizeof(struct sockaddr_in);
    case AF_INET6: return sizeof(struct sockaddr_in6);
    default: return sizeof(struct sockaddr_un);
    }
}

static int open_socket(int family)
{
    int fd;
#ifdef HAVE_SOCK_CLOEXEC
    fd = rill__sys_socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 || errno != EINVAL)
        return fd < 0 ? -errno : fd;
#endif
    if ((fd = rill__sys_socket(family, SOCK_STREAM, 0)) < 0)
        return -errno;
    if (rill__set_nonblock_cloexec(fd) < 0) {
        int e = errno;
        rill__sys_close(fd);
        return -e;
    }
    return fd;
}

/* Opens, prepares and binds a socket for ss; the descriptor or an error. */
static int attempt_socket(rill_connect_req *r, const struct sockaddr_storage *ss)
{
    int fd, rc;

    if ((fd = open_socket(ss->ss_family)) < 0)
        return fd;
    if (r->on_socket != NULL && (rc = r->on_socket(fd, ss->ss_family, r->ud)) != 0) {
        rill__sys_close(fd);
        return rc < 0 ? rc : RILL_EINVAL;
    }
    /* on_socket may cancel the connect: nothing more may start then. */
    if (r->state != CONN_ATTEMPTING) {
        rill__sys_close(fd);
        return RILL_ECANCELED;
    }
    if (r->locallen > 0 && bind(fd, (struct sockaddr *)&r->local, r->locallen) < 0) {
        rc = -errno;
        rill__sys_close(fd);
        return rc;
    }
    return fd;
}

/* Starts one attempt; returns 1 if one started or won, 0 if none could. */
static int start_attempt(rill_connect_req *r)
{
    struct sockaddr_storage *ss;
    attempt *a;
    int fd, rc;

    while (r->state == CONN_ATTEMPTING && (ss = next_addr(r)) != NULL) {
        socklen_t len = addr_len(ss);
        r->tried++;
        if ((fd = attempt_socket(r, ss)) < 0) {
            rc = fd;
            goto failed_now;
        }
        if ((a = rill__malloc(sizeof *a)) == NULL) {
            rill__sys_close(fd);
            rc = RILL_ENOMEM;
            goto failed_now;
        }
        a->req = r;
        a->addr = *ss;
        a->addrlen = len;
        rill__io_init(&a->io, fd, attempt_io);
        rill__list_push_back(&r->attempts, &a->node);
        r->natt++;
        do
            rc = rill__sys_connect(fd, (struct sockaddr *)ss, len);
        while (rc < 0 && errno == EINTR);
        if (rc == 0) {
            won(r, a);
            return 1;
        }
        /* Only EINPROGRESS means "under way": EAGAIN is a full backlog on a unix
           socket (or no free local port), and the socket is not connecting. */
        if (errno != EINPROGRESS) {
            rc = -errno;
            attempt_end(a);
            goto failed_now;
        }
        if ((rc = rill__io_start(r->loop, &a->io, RILL_WRITABLE)) < 0) {
            attempt_end(a);
            goto failed_now;
        }
        if (r->attempt_delay_ms >= 0)
            rill__timer_start(&r->delay_timer, (uint64_t)r->attempt_delay_ms);
        RILL__TRACE("connect", r->id, "attempt", "NEW", "CONNECTING", "fd=%d family=%s", fd,
                    ss->ss_family == AF_INET6 ? "IPv6" : ss->ss_family == AF_INET ? "IPv4" : "unix");
        return 1;
failed_now:
        RILL__TRACE("connect", r->id, "attempt", "NEW", "FAILED", "%s", rill_err_name(rc));
        if (r->first_err == 0)
            r->first_err = rc;
    }
    return 0;
}

static int resolving(const rill_connect_req *r)
{
    return r->fam[0].res != NULL || r->fam[1].res != NULL;
}

/* The step function: decides what happens next from the state and the facts. */
static void step(rill_connect_req *r)
{
    switch (r->state) {
    case CONN_RESOLVING:
        if (r->fam[0].n > 0) {                       /* IPv6 answered with addresses */
            r->cur = 0;
            conn_to(r, CONN_ATTEMPTING, 0);
        } else if (r->fam[1].n > 0) {
            /* A first: give AAAA 50 ms. */
            if (r->fam[0].res != NULL) {
                rill__timer_start(&r->delay_timer, RESOLUTION_DELAY_MS);
                conn_to(r, CONN_RES_DELAY, 0);
                return;
            }
            r->cur = 1;
            conn_to(r, CONN_ATTEMPTING, 0);
        } else if (!resolving(r)) {
            int err = r->fam[0].err == RILL_EDNS || r->fam[1].err == RILL_EDNS ? RILL_EDNS
                      : r->fam[1].asked ? r->fam[1].err : r->fam[0].err;
            complete(r, CONN_FAILED, err ? err : RILL_ENOTFOUND);
            return;
        } else {
            return;
        }
        step(r);
        return;
    case CONN_RES_DELAY:
        if (r->fam[0].res != NULL && rill__timer_armed(&r->delay_timer))
            return;
        rill__timer_stop(&r->delay_timer);
        r->cur = r->fam[0].n > 0 ? 0 : 1;
        conn_to(r, CONN_ATTEMPTING, 0);
        step(r);
        return;
    case CONN_ATTEMPTING:
        /* Start one unless one is running and its delay has not passed. */
        if (r->natt > 0 && (r->attempt_delay_ms < 0 || rill__timer_armed(&r->delay_timer)))
            return;
        if (start_attempt(r) || r->state != CONN_ATTEMPTING)
            return;
        if (r->natt == 0 && !resolving(r))
            complete(r, CONN_FAILED, r->first_err ? r->first_err : RILL_ENOTFOUND);
        return;
    default:
        return;
    }
}

static void delay_fired(void *ud)
{
    rill_connect_req *r = ud;
    RILL__TRACE("connect", r->id, "timer", conn_names[r->state], "EXPIRED",
                r->state == CONN_RES_DELAY ? "resolution delay" : "attempt delay");
    step(r);
}

static void total_fired(void *ud)
{
    complete(ud, CONN_FAILED, RILL_ETIMEDOUT);
}

static void resolved(int status, int family, const struct sockaddr_storage *addrs, size_t n, void *ud)
{
    rill_connect_req *r = ud;
    family_list *f = &r->fam[family == AF_INET6 ? 0 : 1];
    size_t i;

    f->res = NULL;
    f->err = status;
    for (i = 0; i < n && f->n < MAX_ADDRS; i++)
        f->addrs[f->n++] = addrs[i];
    RILL__TRACE("connect", r->id, "resolve", family == AF_INET6 ? "AAAA" : "A", "ANSWERED", "%s %lu addrs",
                status ? rill_err_name(status) : "ok", (unsigned long)n);
    step(r);
}

/* ---------------------------------------------------------- creation */

static int new_req(rill_loop *loop, const rill_connect_opts *o, rill_connect_cb cb, void *ud,
                   rill_connect_req **out)
{
    rill_connect_req *r;

    if (loop == NULL || cb == NULL)
        return RILL_EINVAL;
    if (o != NULL && (o->reserved[0] != NULL || o->reserved[1] != NULL || o->interleave < 0 ||
                      o->happy_eyeballs_delay_ms < -1 || o->ssl_handshake_timeout_ms < -1))
        return RILL_EINVAL;
    if ((r = rill__calloc(1, sizeof *r)) == NULL)
        return RILL_ENOMEM;
    r->loop = loop;
    r->id = rill__next_id(loop);
    r->cb = cb;
    r->ud = ud;
    r->attempt_delay_ms = DEFAULT_ATTEMPT_DELAY_MS;
    r->interleave = 1;
    r->hs_timeout_ms = DEFAULT_HANDSHAKE_TIMEOUT_MS;
    r->first_round = 1;
    r->fam[0].family = AF_INET6;
    r->fam[1].family = AF_INET;
    rill__timer_init(&r->delay_timer, loop, delay_fired, r);
    rill__timer_init(&r->total_timer, loop, total_fired, r);
    rill__task_init(&r->task, task_run);
    rill__list_init(&r->attempts);
    rill__handle_open(loop, &r->h, req_free_memory);
    if (o != NULL) {
        r->limit = o->limit;
        r->on_socket = o->on_socket;
        r->errbuf = o->errbuf_len > 0 ? o->errbuf : NULL;
        r->errbuf_len = o->errbuf_len;
        if (r->errbuf != NULL)
            r->errbuf[0] = '\0';
        if (o->happy_eyeballs_delay_ms != 0)
            r->attempt_delay_ms = o->happy_eyeballs_delay_ms;
        /* RFC 8305 section 5: the delay MUST NOT be less than 10 ms. */
        if (r->attempt_delay_ms >= 0 && r->attempt_delay_ms < MIN_ATTEMPT_DELAY_MS)
            r->attempt_delay_ms = MIN_ATTEMPT_DELAY_MS;
        if (o->interleave > 0)
            r->interleave = o->interleave;
        if (o->ssl_handshake_timeout_ms != 0)
            r->hs_timeout_ms = o->ssl_handshake_timeout_ms;
        if (o->tls != NULL) {
            r->tls = o->tls;
            rill__tls_ref(r->tls);
        }
        if (o->server_hostname != NULL && (r->hostname = rill__strdup(o->server_hostname)) == NULL) {
            req_free(r);
            return RILL_ENOMEM;
        }
        if (o->timeout_ms > 0)
            rill__timer_start(&r->total_timer, (uint64_t)o->timeout_ms);
    }
    *out = r;
    return 0;
}

static int parse_local(rill_connect_req *r, const rill_connect_opts *o)
{
    struct addrinfo hints, *ai = NULL;
    char port[16];

    if (o == NULL || (o->local_host == NULL && o->local_port == 0))
        return 0;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    hints.ai_family = o->family;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", o->local_port);
    /* Numeric only: getaddrinfo must not block on DNS here. */
    if (getaddrinfo(o->local_host, port, &hints, &ai) != 0 || ai == NULL)
        return RILL_EINVAL;
    memcpy(&r->local, ai->ai_addr, ai->ai_addrlen);
    r->locallen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static int numeric_family(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    char tmp[64];
    const char *pct = strchr(host, '%');
    if (inet_pton(AF_INET, host, buf) == 1)
        return AF_INET;
    if (pct != NULL && (size_t)(pct - host) < sizeof tmp) {
        memcpy(tmp, host, (size_t)(pct - host));
        tmp[pct - host] = '\0';
        host = tmp;
    }
    return inet_pton(AF_INET6, host, buf) == 1 ? AF_INET6 : 0;
}

int rill_connect(rill_loop *loop, const char *host, int port, const rill_connect_opts *opts,
                 rill_connect_cb cb, void *ud, rill_connect_req **req)
{
    rill_connect_req *r;
    int rc, ares_flags = 0, family = opts ? opts->family : AF_UNSPEC, numeric, i;

    if (host == NULL || port < 0 || port > 65535)
        return RILL_EINVAL;
    if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
        return RILL_EINVAL;
    if (opts != NULL && (rc = rill__ai_flags_to_ares(opts->flags, &ares_flags)) < 0)
        return rc;
    if ((rc = new_req(loop, opts, cb, ud, &r)) < 0)
        return rc;
    if ((rc = parse_local(r, opts)) < 0)
        goto fail;
    if (r->locallen > 0)
        family = r->local.ss_family;   /* a local address decides the family */
    numeric = numeric_family(host);
    if (numeric != 0) {
        if (family != AF_UNSPEC && family != numeric) {
            rc = RILL_ENOTFOUND;
            goto fail;
        }
        family = numeric;
    } else if (r->hostname == NULL && (r->hostname = rill__strdup(host)) == NULL) {
        rc = RILL_ENOMEM;
        goto fail;
    }
    if (numeric != 0 && r->hostname == NULL && (r->hostname = rill__strdup(host)) == NULL) {
        rc = RILL_ENOMEM;
        goto fail;
    }
    /* AAAA first, so that when both answer in the same round IPv6 leads. */
    for (i = 0; i < 2; i++) {
        family_list *f = &r->fam[i];
        if (family != AF_UNSPEC && family != f->family)
            continue;
        f->asked = 1;
        if ((rc = rill__resolve(loop, host, port, f->family, ares_flags, resolved, r, &f->res)) < 0)
            goto fail;
    }
    RILL__TRACE("connect", r->id, "connect", "NEW", "RESOLVING", "%s port %d", host, port);
    if (req != NULL)
        *req = r;
    return 0;
fail:
    req_free(r);
    return rc;
}

int rill_connect_unix(rill_loop *loop, const char *path, const rill_connect_opts *opts,
                      rill_connect_cb cb, void *ud, rill_connect_req **req)
{
    rill_connect_req *r;
    struct sockaddr_un *un;
    int rc;

    if (path == NULL || strlen(path) >= sizeof un->sun_path || (opts != NULL && opts->local_host != NULL))
        return RILL_EINVAL;
    if ((rc = new_req(loop, opts, cb, ud, &r)) < 0)
        return rc;
    un = (struct sockaddr_un *)&r->fam[1].addrs[0];
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, path);
    r->fam[1].n = 1;
    r->cur = 1;
    conn_to(r, CONN_ATTEMPTING, 0);
    rill__task_post(loop, &r->task);   /* attempts start from the loop */
    if (req != NULL)
        *req = r;
    return 0;
}

int rill_connect_sock(rill_loop *loop, int fd, const rill_connect_opts *opts,
                      rill_connect_cb cb, void *ud, rill_connect_req **req)
{
    rill_connect_req *r;
    int rc, type, fl, fdfl;
    socklen_t tl = sizeof type;

    if (fd < 0)
        return RILL_EINVAL;
    /* Only a stream socket can become a stream (SEQPACKET keeps record boundaries but is ordered too). */
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
        return errno == ENOTSOCK ? RILL_EINVAL : -errno;
    if (type != SOCK_STREAM && type != SOCK_SEQPACKET)
        return RILL_EINVAL;
    if ((rc = new_req(loop, opts, cb, ud, &r)) < 0)
        return rc;
    /* The descriptor goes back to the caller as it came: rill owns it only on success. */
    fl = fcntl(fd, F_GETFL);
    fdfl = fcntl(fd, F_GETFD);
    r->stream = rill__stream_new(loop, fd, RILL_MODE_READWRITE, r->limit, &rill__sock_transport);
    if (r->stream == NULL) {
        rc = -errno;
        req_free(r);
        return rc;
    }
    if (r->tls != NULL) {
        conn_to(r, CONN_HANDSHAKE, 0);
        if ((rc = rill__tls_start(r->stream, r->tls, 0, r->hostname, r->hs_timeout_ms, handshake_done, r)) < 0) {
            r->stream->fd = -1;
            rill_abort(r->stream);
            r->stream = NULL;
            if (fl >= 0)
                fcntl(fd, F_SETFL, fl);
            if (fdfl >= 0)
                fcntl(fd, F_SETFD, fdfl);
            req_free(r);
            return rc;
        }
    } else {
        conn_to(r, CONN_READY, 0);   /* delivered from the loop; still cancellable */
        rill__task_post(loop, &r->task);
    }
    if (req != NULL)
        *req = r;
    return 0;
}

void rill_connect_cancel(rill_connect_req *r)
{
    if (r == NULL || terminal(r))
        return;
    stop_everything(r);
    if (r->stream != NULL) {
        rill_abort(r->stream);   /* a handshake in progress never calls back after this */
        r->stream = NULL;
    }
    conn_to(r, CONN_CANCELLED, RILL_ECANCELED);
    rill__task_post(r->loop, &r->task);
}
