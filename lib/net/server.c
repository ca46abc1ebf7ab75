/* [net] The server machine (asyncio's StreamServer): bind -> serve -> close (wait, then abort).
 *
 *   NEW ---bind---> BOUND ---start_serving / serve_forever---> SERVING <----1 s----+
 *    \                                                          ^    \              |
 *     +------- start_serving / serve_forever (bind first) ------+     +--EMFILE--> PAUSED
 *
 *   NEW, BOUND, SERVING, PAUSED ---close / abort---> CLOSING ---last stream freed---> CLOSED
 *
 *   CLOSING: the listening sockets are closed at once; every tracked stream is closed
 *            (close: rill_close, then rill_abort after shutdown_timeout; abort: rill_abort).
 *   CLOSED:  the start_serving, close and serve_forever callbacks still due run; freed.
 *
 * Accepting (SERVING): each readiness event of a listening socket accepts up to
 * ACCEPT_BATCH connections, so one busy socket cannot starve the rest of the loop.
 * Every accepted descriptor becomes a stream the server tracks until the stream is
 * freed (the stream calls owner_gone), which is how close knows when it is done.
 * A TLS server keeps a stream on the handshaking list until its handshake ends, and
 * hands it to on_client only if it succeeded.
 *
 * Running out of descriptors (EMFILE and friends) leaves the pending connection in
 * the kernel's queue, so the listening socket stays readable: polling it would spin.
 * PAUSED stops polling it for a second (as asyncio does) while existing streams go on. */
#include "config.h"
#if (defined(HAVE_ACCEPT4) || defined(HAVE_SO_REUSEPORT)) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE 1   /* accept4(), SO_REUSEPORT: not POSIX (README "Portability") */
#endif
#include "stream.h"
#include "tls.h"
#include "syshooks.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <netdb.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>

#define ACCEPT_BATCH       64
#define RESUME_DELAY_MS    1000
#define DEFAULT_BACKLOG    100
#define DEFAULT_TIMEOUT_MS 60000
#define PORT_RETRIES       8      /* port 0 on several addresses: the shared port may be taken */
#define ACCEPTED_FLAGS     (AI_NUMERICHOST | AI_ADDRCONFIG | AI_V4MAPPED | AI_ALL | AI_PASSIVE)

#define SRV_STATES(X, LAST) \
    X(SRV, NEW) X(SRV, BOUND) X(SRV, SERVING) X(SRV, PAUSED) X(SRV, CLOSING) LAST(SRV, CLOSED)
typedef enum { SRV_STATES(RILL__STATE_ENUM, RILL__STATE_ENUM_LAST) } server_state;
static const char *const srv_names[] = { SRV_STATES(RILL__STATE_NAME, RILL__STATE_NAME) };

typedef struct lsock {
    rill__io io;
    rill_server *srv;
    int fd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
} lsock;

typedef struct srv_waiter {
    rill__list node;
    rill_server_cb cb;
    void *ud;
    int status;
} srv_waiter;

struct rill_server {
    rill_loop *loop;
    rill__handle h;
    unsigned long id;
    server_state state;

    /* what bind binds: an address, a path, or the given sockets */
    int family;
    char *host;                 /* NULL: every interface */
    int port;
    char *path;                 /* a Unix server */
    int *socks;                 /* given sockets, owned, until bind adopts them */
    size_t nsocks;
    rill_server_opts opts;      /* a copy; its pointers are not used */
    int backlog, shutdown_timeout_ms, handshake_timeout_ms;
    rill_client_cb on_client;
    void *ud;
    void *data;

    lsock *ls;                  /* listening sockets */
    size_t nls;
    int unix_bound;             /* our file is at path: removed on close if still ours */
    dev_t unix_dev;
    ino_t unix_ino;

    rill__list handshaking;     /* TLS streams not yet handed to on_client */
    rill__list streams;         /* streams handed to on_client */
    size_t nstreams;            /* both lists */
    unsigned long naccepted, nhandshake_failed;

    rill_timer resume_timer;    /* PAUSED -> SERVING */
    rill_timer shutdown_timer;  /* CLOSING: abort who is still closing */
    int aborting;
    int close_status;

    rill__list start_waiters;   /* start_serving callbacks, delivered by start_task */
    rill__task start_task;
    rill__list close_waiters;
    int forever;                /* serve_forever runs */
    rill_server_cb forever_cb;
    void *forever_ud;
    rill__task finish_task;     /* CLOSING -> CLOSED, then freed */
};

/* Every transition goes through here, and so does its trace. */
static void srv_to(rill_server *srv, server_state to, const char *detail)
{
    RILL__TRACE("server", srv->id, "server", srv_names[srv->state], srv_names[to], "%s",
                detail != NULL ? detail : "");
    srv->state = to;
}

static void report_error(rill_server *srv, int status, const struct sockaddr *peer)
{
    if (srv->opts.on_error != NULL)
        srv->opts.on_error(srv, status, peer, srv->ud);
}

static srv_waiter *waiter_push(rill__list *list, rill_server_cb cb, void *ud)
{
    srv_waiter *w = rill__malloc(sizeof *w);
    if (w == NULL)
        return NULL;
    rill__list_init(&w->node);
    w->cb = cb;
    w->ud = ud;
    w->status = 0;
    rill__list_push_back(list, &w->node);
    return w;
}

/* Calls back every waiter of list, with its own status or the one given.
   Waiters added meanwhile wait for the next run. */
static void waiters_run(rill_server *srv, rill__list *list, int use_own, int status)
{
    rill__list batch;
    rill__list_init(&batch);
    rill__list_splice(&batch, list);
    while (!rill__list_empty(&batch)) {
        srv_waiter *w = rill__container_of(rill__list_pop_front(&batch), srv_waiter, node);
        rill_server_cb cb = w->cb;
        void *ud = w->ud;
        int st = use_own ? w->status : status;
        rill__free(w);
        cb(srv, st, ud);
    }
}

/* ------------------------------------------------------ listening sockets */

static void listen_ready(rill__io *io, int revents);

static int sock_port(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)a)->sin_port);
    if (a->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)a)->sin6_port);
    return -1;
}

static void set_port(struct sockaddr_storage *a, int port)
{
    if (a->ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)a)->sin_port = htons((uint16_t)port);
    else if (a->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)(void *)a)->sin6_port = htons((uint16_t)port);
}

/* Appends fd to ls, which the caller sized. */
static void add_listener(rill_server *srv, int fd)
{
    lsock *l = &srv->ls[srv->nls++];
    memset(l, 0, sizeof *l);
    l->srv = srv;
    l->fd = fd;
    l->addrlen = sizeof l->addr;
    if (getsockname(fd, (struct sockaddr *)&l->addr, &l->addrlen) < 0)
        l->addrlen = 0;
    rill__io_init(&l->io, fd, listen_ready);
}

/* Our socket file, if the path still names it: another server may have replaced it. */
static void unlink_own_file(rill_server *srv)
{
    struct stat st;
    if (!srv->unix_bound || srv->path == NULL)
        return;
    srv->unix_bound = 0;
    if (lstat(srv->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_dev == srv->unix_dev && st.st_ino == srv->unix_ino)
        unlink(srv->path);
}

static void drop_listeners(rill_server *srv)
{
    size_t i;
    for (i = 0; i < srv->nls; i++) {
        rill__io_stop(srv->loop, &srv->ls[i].io);
        close(srv->ls[i].fd);
    }
    rill__free(srv->ls);
    srv->ls = NULL;
    srv->nls = 0;
    unlink_own_file(srv);
}

/* A socket set up as asked, with the on_socket hook run, and bound. unavailable
   tells the caller the family itself is missing (IPv6 disabled), not that it failed. */
static int open_listener(rill_server *srv, const struct sockaddr *addr, socklen_t alen,
                         int *out, int *unavailable)
{
    int family = addr->sa_family, fd, rc, one = 1;

    *out = -1;
    *unavailable = 0;
#ifdef HAVE_SOCK_CLOEXEC
    fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 && errno == EINVAL)   /* a kernel older than the headers */
        fd = socket(family, SOCK_STREAM, 0);
#else
    fd = socket(family, SOCK_STREAM, 0);
#endif
    if (fd < 0) {
        rc = -errno;
        *unavailable = rc == -EAFNOSUPPORT || rc == -EPROTONOSUPPORT;
        return rc;
    }
    if ((rc = rill__set_nonblock_cloexec(fd)) < 0)
        goto fail;
    if (family != AF_UNIX) {
        if (srv->opts.reuse_address >= 0 &&
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
            goto fail_errno;
        if (srv->opts.reuse_port) {
#ifdef SO_REUSEPORT
            if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
                goto fail_errno;
#else
            rc = RILL_EINVAL;
            goto fail;
#endif
        }
        /* One socket per family, as asyncio: a dual-stack [::] would take the IPv4 port too. */
        if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
            goto fail_errno;
    }
    if (srv->opts.on_socket != NULL && (rc = srv->opts.on_socket(fd, family, srv->ud)) != 0) {
        rc = rc < 0 ? rc : RILL_EINVAL;
        goto fail;
    }
    if (srv->state != SRV_NEW) {
        rc = RILL_ECLOSED;   /* the hook closed the server */
        goto fail;
    }
    if (bind(fd, addr, alen) < 0) {
        rc = -errno;
        *unavailable = family == AF_INET6 && rc == -EADDRNOTAVAIL;
        goto fail;
    }
    *out = fd;
    return 0;
fail_errno:
    rc = -errno;
fail:
    close(fd);
    return rc;
}

typedef struct cand {
    struct sockaddr_storage addr;
    socklen_t len;
} cand;

static int gai_to_rill(int e)
{
    switch (e) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:   /* glibc: a numeric host of the other family has no address of this one */
#endif
        return RILL_ENOTFOUND;
    case EAI_MEMORY:
        return RILL_ENOMEM;
    case EAI_FAMILY:
    case EAI_BADFLAGS:
        return RILL_EINVAL;
    case EAI_SYSTEM:
        return errno ? -errno : RILL_EDNS;
    default:
        return RILL_EDNS;
    }
}

/* The addresses to bind: the wildcards of each family for host NULL, else the
   host's addresses without duplicates. *out is rill__malloc'd. */
static int candidates(rill_server *srv, cand **out, size_t *n)
{
    struct addrinfo hints, *res = NULL, *ai;
    cand *c;
    size_t k = 0, i, cap = 0;
    int e;

    *out = NULL;
    *n = 0;
    if (srv->host == NULL) {
        if ((c = rill__calloc(2, sizeof *c)) == NULL)
            return RILL_ENOMEM;
        if (srv->family != AF_INET) {
            struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)(void *)&c[k].addr;
            a6->sin6_family = AF_INET6;
            a6->sin6_addr = in6addr_any;
            c[k++].len = sizeof *a6;
        }
        if (srv->family != AF_INET6) {
            struct sockaddr_in *a4 = (struct sockaddr_in *)(void *)&c[k].addr;
            a4->sin_family = AF_INET;
            a4->sin_addr.s_addr = htonl(INADDR_ANY);
            c[k++].len = sizeof *a4;
        }
        *out = c;
        *n = k;
        return 0;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = srv->family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = srv->opts.flags | AI_PASSIVE;
    errno = 0;
    /* Synchronous by contract (rill_server_bind); a numeric host costs no lookup. */
    if ((e = getaddrinfo(srv->host, NULL, &hints, &res)) != 0)
        return gai_to_rill(e);
    for (ai = res; ai != NULL; ai = ai->ai_next)
        cap++;
    if ((c = rill__calloc(cap, sizeof *c)) == NULL) {
        freeaddrinfo(res);
        return RILL_ENOMEM;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof c[k].addr)
            continue;
        for (i = 0; i < k; i++)
            if (c[i].len == ai->ai_addrlen && memcmp(&c[i].addr, ai->ai_addr, ai->ai_addrlen) == 0)
                break;
        if (i < k)
            continue;
        memcpy(&c[k].addr, ai->ai_addr, ai->ai_addrlen);
        c[k++].len = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    if (k == 0) {
        rill__free(c);
        return RILL_ENOTFOUND;
    }
    *out = c;
    *n = k;
    return 0;
}

static int bind_inet(rill_server *srv)
{
    cand *c;
    size_t n, i;
    int rc, attempt, port, fd;

    if ((rc = candidates(srv, &c, &n)) < 0)
        return rc;
    if ((srv->ls = rill__calloc(n, sizeof *srv->ls)) == NULL) {
        rill__free(c);
        return RILL_ENOMEM;
    }
    for (attempt = 0; attempt < PORT_RETRIES; attempt++) {
        port = srv->port;
        rc = 0;
        for (i = 0; i < n; i++) {
            int unavailable;
            set_port(&c[i].addr, port);
            rc = open_listener(srv, (struct sockaddr *)&c[i].addr, c[i].len, &fd, &unavailable);
            if (rc < 0 && unavailable && srv->host == NULL && srv->family == AF_UNSPEC) {
                rc = 0;   /* no IPv6 here: the IPv4 wildcard alone will do */
                continue;
            }
            if (rc < 0)
                break;
            add_listener(srv, fd);
            /* Port 0: every family gets the port the first one got. */
            if (port == 0)
                port = sock_port(&srv->ls[srv->nls - 1].addr);
        }
        if (rc == -EADDRINUSE && srv->port == 0 && srv->nls > 0) {
            size_t keep_cap = n;
            drop_listeners(srv);
            if ((srv->ls = rill__calloc(keep_cap, sizeof *srv->ls)) == NULL) {
                rc = RILL_ENOMEM;
                break;
            }
            continue;
        }
        break;
    }
    rill__free(c);
    if (rc == 0 && srv->nls == 0)
        rc = -EADDRNOTAVAIL;
    return rc;
}

static int bind_unix(rill_server *srv)
{
    struct sockaddr_un sun;
    struct stat st;
    size_t len = strlen(srv->path);
    int rc, fd, unavailable;

    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, srv->path, len);
    /* A socket file left by a server that died is stale; any other file is not ours. */
    if (lstat(srv->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EADDRINUSE;
        if (unlink(srv->path) < 0 && errno != ENOENT)
            return -errno;
    }
    if ((srv->ls = rill__calloc(1, sizeof *srv->ls)) == NULL)
        return RILL_ENOMEM;
    rc = open_listener(srv, (struct sockaddr *)&sun,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1), &fd, &unavailable);
    if (rc < 0)
        return rc;
    add_listener(srv, fd);
    if (lstat(srv->path, &st) == 0) {
        srv->unix_bound = 1;
        srv->unix_dev = st.st_dev;
        srv->unix_ino = st.st_ino;
    }
    return 0;
}

/* The given sockets become the listening sockets; they stay the server's either way. */
static int bind_given(rill_server *srv)
{
    size_t i;
    int rc;

    for (i = 0; i < srv->nsocks; i++)
        if ((rc = rill__set_nonblock_cloexec(srv->socks[i])) < 0)
            return rc;
    if ((srv->ls = rill__calloc(srv->nsocks, sizeof *srv->ls)) == NULL)
        return RILL_ENOMEM;
    for (i = 0; i < srv->nsocks; i++)
        add_listener(srv, srv->socks[i]);
    rill__free(srv->socks);
    srv->socks = NULL;
    srv->nsocks = 0;
    return 0;
}

static int do_bind(rill_server *srv)
{
    char detail[160];
    int rc;

    if (srv->state != SRV_NEW)
        return 0;
    if (srv->socks != NULL)
        rc = bind_given(srv);
    else if (srv->path != NULL)
        rc = bind_unix(srv);
    else
        rc = bind_inet(srv);
    if (rc < 0) {
        /* Never half bound: a failed bind leaves nothing behind (given sockets stay owned). */
        drop_listeners(srv);
        RILL__TRACE("server", srv->id, "server", srv_names[srv->state], srv_names[srv->state],
                    "bind %s", rill_err_name(rc));
        return rc;
    }
    detail[0] = '\0';
    if (srv->nls > 0 && srv->ls[0].addrlen > 0)
        rill_format_addr((struct sockaddr *)&srv->ls[0].addr, detail, sizeof detail);
    srv_to(srv, SRV_BOUND, detail);
    return 0;
}

/* Polls every listening socket; on failure none is polled. */
static int watch_listeners(rill_server *srv)
{
    size_t i;
    int rc;

    for (i = 0; i < srv->nls; i++)
        if ((rc = rill__io_start(srv->loop, &srv->ls[i].io, RILL_READABLE)) < 0) {
            while (i-- > 0)
                rill__io_stop(srv->loop, &srv->ls[i].io);
            return rc;
        }
    return 0;
}

static void unwatch_listeners(rill_server *srv)
{
    size_t i;
    for (i = 0; i < srv->nls; i++)
        rill__io_stop(srv->loop, &srv->ls[i].io);
}

/* NEW/BOUND -> SERVING: bind if needed, listen (as asyncio, only now: a bound server
   that does not serve refuses connections), poll. */
static int start_listening(rill_server *srv)
{
    char detail[32];
    size_t i;
    int rc;

    if (srv->state == SRV_SERVING || srv->state == SRV_PAUSED)
        return 0;
    if ((rc = do_bind(srv)) < 0)
        return rc;
    for (i = 0; i < srv->nls; i++)
        if (listen(srv->ls[i].fd, srv->backlog) < 0)
            return -errno;
    if ((rc = watch_listeners(srv)) < 0)
        return rc;
    snprintf(detail, sizeof detail, "sockets=%lu", (unsigned long)srv->nls);
    srv_to(srv, SRV_SERVING, detail);
    return 0;
}

/* ------------------------------------------------------------- accepting */

static void pause_accepting(rill_server *srv, int status, const struct sockaddr *peer)
{
    if (srv->state != SRV_SERVING)
        return;
    unwatch_listeners(srv);
    rill__timer_start(&srv->resume_timer, RESUME_DELAY_MS);
    srv_to(srv, SRV_PAUSED, rill_err_name(status));
    report_error(srv, status, peer);
}

static void resume_fired(void *ud)
{
    rill_server *srv = ud;
    int rc;

    if (srv->state != SRV_PAUSED)
        return;
    if ((rc = watch_listeners(srv)) < 0) {
        rill__timer_start(&srv->resume_timer, RESUME_DELAY_MS);
        report_error(srv, rc, NULL);
        return;
    }
    srv_to(srv, SRV_SERVING, "resume");
}

static void stream_gone(rill_stream *s)
{
    rill_server *srv = s->owner;
    rill__list_unlink(&s->owner_node);
    s->owner = NULL;
    s->owner_gone = NULL;
    srv->nstreams--;
    if (srv->state == SRV_CLOSING && srv->nstreams == 0)
        rill__task_post(srv->loop, &srv->finish_task);
}

static void track(rill_server *srv, rill_stream *s, rill__list *list)
{
    s->owner = srv;
    s->owner_gone = stream_gone;
    rill__list_push_back(list, &s->owner_node);
    srv->nstreams++;
}

static void handshake_failed(rill_server *srv, rill_stream *s, int status)
{
    struct sockaddr_storage peer;
    int have_peer = s->peerlen > 0;

    if (have_peer)
        memcpy(&peer, &s->peer, sizeof peer);
    srv->nhandshake_failed++;
    RILL__TRACE("server", srv->id, "server", srv_names[srv->state], srv_names[srv->state],
                "stream#%lu handshake %s (%lu failed)", s->id, rill_err_name(status),
                srv->nhandshake_failed);
    rill_abort(s);   /* tracked until freed */
    report_error(srv, status, have_peer ? (struct sockaddr *)&peer : NULL);
}

static void handshake_done(rill_stream *s, int status, void *ud)
{
    rill_server *srv = ud;

    if (status < 0) {
        handshake_failed(srv, s, status);
        return;
    }
    if (srv->state != SRV_SERVING && srv->state != SRV_PAUSED) {
        rill_abort(s);   /* closing aborts handshakes, so this is only a safety net */
        return;
    }
    rill__list_unlink(&s->owner_node);
    rill__list_push_back(&srv->streams, &s->owner_node);
    srv->on_client(srv, s, srv->ud);
}

static void serve_client(rill_server *srv, int fd, const struct sockaddr *peer)
{
    rill_stream *s;
    int rc;

    s = rill__stream_new(srv->loop, fd, RILL_MODE_READWRITE, srv->opts.limit, &rill__sock_transport);
    if (s == NULL) {
        rc = -errno;
        close(fd);
        /* The select backend refuses descriptors past FD_SETSIZE: as good as EMFILE. */
        if (rc == -EMFILE || rc == -ENFILE || rc == RILL_ENOMEM)
            pause_accepting(srv, rc, peer);
        else
            report_error(srv, rc, peer);
        return;
    }
    srv->naccepted++;
    if (srv->opts.tls == NULL) {
        track(srv, s, &srv->streams);
        srv->on_client(srv, s, srv->ud);
        return;
    }
    track(srv, s, &srv->handshaking);
    rc = rill__tls_start(s, srv->opts.tls, 1, NULL, srv->handshake_timeout_ms, handshake_done, srv);
    if (rc < 0)
        handshake_failed(srv, s, rc);
}

static int accept_fd(int lfd, struct sockaddr_storage *peer, socklen_t *plen)
{
    int fd;
#ifdef HAVE_ACCEPT4
    fd = rill__sys_accept4(lfd, (struct sockaddr *)peer, plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
        return fd;
    if (errno != ENOSYS)
        return -errno;
#endif
    fd = rill__sys_accept(lfd, (struct sockaddr *)peer, plen);
    return fd >= 0 ? fd : -errno;   /* rill__stream_new sets O_NONBLOCK and FD_CLOEXEC */
}

/* Errors of one connection that went away before we took it: the next may be fine. */
static int transient(int err)
{
    switch (-err) {
    case EINTR: case ECONNABORTED: case EPROTO:
    case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case EHOSTUNREACH:
    case EOPNOTSUPP: case ENETUNREACH:
#ifdef ENONET
    case ENONET:
#endif
        return 1;
    default:
        return 0;
    }
}

static void listen_ready(rill__io *io, int revents)
{
    lsock *l = rill__container_of(io, lsock, io);
    rill_server *srv = l->srv;
    int lfd = l->fd, i, fd;

    (void)revents;
    /* Callbacks may close the server (freeing l): after each, only srv is touched. */
    for (i = 0; i < ACCEPT_BATCH && srv->state == SRV_SERVING; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;

        memset(&peer, 0, sizeof peer);
        fd = accept_fd(lfd, &peer, &plen);
        if (fd == -EAGAIN || fd == -EWOULDBLOCK)
            break;
        if (fd < 0 && transient(fd))
            continue;
        if (fd < 0) {
            /* EMFILE, ENFILE, ENOBUFS, ENOMEM, or worse: either way, never spin. */
            pause_accepting(srv, fd, NULL);
            break;
        }
        serve_client(srv, fd, plen > 0 ? (struct sockaddr *)&peer : NULL);
    }
}

/* --------------------------------------------------------------- closing */

static void server_free_memory(rill__handle *h)
{
    rill__free(rill__container_of(h, rill_server, h));
}

static void server_free(rill_server *srv)
{
    rill_loop *loop = srv->loop;
    size_t i;

    rill__task_cancel(loop, &srv->start_task);
    rill__task_cancel(loop, &srv->finish_task);
    rill__timer_stop(&srv->resume_timer);
    rill__timer_stop(&srv->shutdown_timer);
    drop_listeners(srv);
    for (i = 0; i < srv->nsocks; i++)
        close(srv->socks[i]);
    rill__free(srv->socks);
    rill__free(srv->host);
    rill__free(srv->path);
    if (srv->opts.tls != NULL)
        rill_tls_free(srv->opts.tls);   /* our reference; streams hold their own */
    rill__handle_closed(loop, &srv->h);
}

static void finish_run(rill__task *t)
{
    rill_server *srv = rill__container_of(t, rill_server, finish_task);
    rill_server_cb cb;

    rill__timer_stop(&srv->shutdown_timer);
    srv_to(srv, SRV_CLOSED, srv->close_status ? rill_err_name(srv->close_status) : "");
    /* start_serving callbacks still queued come first: each fires once, before the close. */
    rill__task_cancel(srv->loop, &srv->start_task);
    waiters_run(srv, &srv->start_waiters, 1, 0);
    waiters_run(srv, &srv->close_waiters, 0, srv->close_status);
    if (srv->forever) {
        srv->forever = 0;
        if ((cb = srv->forever_cb) != NULL)
            cb(srv, srv->close_status, srv->forever_ud);
    }
    server_free(srv);
}

static void start_run(rill__task *t)
{
    rill_server *srv = rill__container_of(t, rill_server, start_task);
    waiters_run(srv, &srv->start_waiters, 1, 0);
}

/* rill_abort and rill_close never call back nor free synchronously, so the lists
   stay intact while we walk them. */
static void close_streams(rill__list *list, int abort)
{
    rill__list *n, *next;
    for (n = list->next; n != list; n = next) {
        rill_stream *s = rill__container_of(n, rill_stream, owner_node);
        next = n->next;
        if (abort)
            rill_abort(s);
        else
            rill_close(s, NULL, NULL);
    }
}

static void shutdown_fired(void *ud)
{
    rill_server *srv = ud;
    RILL__TRACE("server", srv->id, "server", srv_names[srv->state], srv_names[srv->state],
                "shutdown timeout: aborting %lu streams", (unsigned long)srv->nstreams);
    srv->close_status = RILL_ETIMEDOUT;
    srv->aborting = 1;
    close_streams(&srv->streams, 1);
}

static int begin_close(rill_server *srv, int abort, rill_server_cb cb, void *ud)
{
    char detail[80];

    if (srv == NULL)
        return RILL_EINVAL;
    if (srv->state == SRV_CLOSED)
        return RILL_ECLOSED;
    if (cb != NULL && waiter_push(&srv->close_waiters, cb, ud) == NULL)
        return RILL_ENOMEM;
    if (srv->state != SRV_CLOSING) {
        rill__timer_stop(&srv->resume_timer);
        drop_listeners(srv);
        snprintf(detail, sizeof detail, "%s streams=%lu accepted=%lu", abort ? "abort" : "close",
                 (unsigned long)srv->nstreams, srv->naccepted);
        srv_to(srv, SRV_CLOSING, detail);
        /* A handshake in progress has nothing to flush. */
        close_streams(&srv->handshaking, 1);
        if (!abort && srv->nstreams > 0 && srv->shutdown_timeout_ms >= 0)
            rill__timer_start(&srv->shutdown_timer, (uint64_t)srv->shutdown_timeout_ms);
        close_streams(&srv->streams, abort);
        srv->aborting = abort;
    } else if (abort && !srv->aborting) {
        /* abort after close: stop waiting for the graceful closes */
        rill__timer_stop(&srv->shutdown_timer);
        close_streams(&srv->streams, 1);
        srv->aborting = 1;
    }
    if (srv->nstreams == 0)
        rill__task_post(srv->loop, &srv->finish_task);
    return 0;
}

int rill_server_close(rill_server *srv, rill_server_cb cb, void *ud) { return begin_close(srv, 0, cb, ud); }
int rill_server_abort(rill_server *srv, rill_server_cb cb, void *ud) { return begin_close(srv, 1, cb, ud); }

/* ------------------------------------------------------------ public API */

static int check_opts(const rill_server_opts *o, int is_unix)
{
    if (rill__check_reserved(o->reserved) < 0)
        return RILL_EINVAL;
    if (o->flags & ~ACCEPTED_FLAGS)
        return RILL_EINVAL;
    if (is_unix ? (o->family != AF_UNSPEC && o->family != AF_UNIX)
                : (o->family != AF_UNSPEC && o->family != AF_INET && o->family != AF_INET6))
        return RILL_EINVAL;
    if (o->backlog < 0 || o->reuse_address < -1 || o->reuse_address > 1 || o->reuse_port < 0 ||
        o->reuse_port > 1 || o->ssl_handshake_timeout_ms < -1 || o->shutdown_timeout_ms < -1)
        return RILL_EINVAL;
    if (o->nsocks > 0 && o->socks == NULL)
        return RILL_EINVAL;
    return 0;
}

/* Given sockets must be stream sockets; they become the server's only on success. */
static int copy_socks(rill_server *srv, const int *socks, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        int type = 0;
        socklen_t len = sizeof type;
        if (socks[i] < 0)
            return RILL_EINVAL;
        if (getsockopt(socks[i], SOL_SOCKET, SO_TYPE, &type, &len) < 0)
            return -errno;
        if (type != SOCK_STREAM)
            return RILL_EINVAL;
    }
    if ((srv->socks = rill__malloc(n * sizeof *srv->socks)) == NULL)
        return RILL_ENOMEM;
    memcpy(srv->socks, socks, n * sizeof *srv->socks);
    srv->nsocks = n;
    return 0;
}

static rill_server *server_new(rill_loop *loop, const char *host, int port, const char *path,
                               const rill_server_opts *opts, rill_client_cb on_client, void *ud)
{
    rill_server_opts defaults;
    rill_server *srv;
    int rc, is_unix = path != NULL || port < 0;

    if (opts == NULL) {
        memset(&defaults, 0, sizeof defaults);
        opts = &defaults;
    }
    if (loop == NULL || on_client == NULL || check_opts(opts, is_unix) < 0) {
        errno = EINVAL;
        return NULL;
    }
    if (opts->nsocks > 0 ? (host != NULL || port > 0 || path != NULL)
                         : (is_unix ? (path == NULL || *path == '\0') : (port < 0 || port > 65535))) {
        errno = EINVAL;   /* an address and sockets at once, or neither */
        return NULL;
    }
    if (path != NULL && strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    if ((srv = rill__calloc(1, sizeof *srv)) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    rc = RILL_ENOMEM;
    if ((host != NULL && (srv->host = rill__strdup(host)) == NULL) ||
        (path != NULL && (srv->path = rill__strdup(path)) == NULL))
        goto fail;
    if (opts->nsocks > 0 && (rc = copy_socks(srv, opts->socks, opts->nsocks)) < 0)
        goto fail;
    srv->loop = loop;
    srv->id = rill__next_id(loop);
    srv->state = SRV_NEW;
    srv->opts = *opts;
    srv->opts.socks = NULL;
    srv->opts.nsocks = 0;
    srv->family = is_unix ? AF_UNIX : opts->family;
    srv->port = port < 0 ? 0 : port;
    srv->backlog = opts->backlog ? opts->backlog : DEFAULT_BACKLOG;
    srv->shutdown_timeout_ms = opts->shutdown_timeout_ms ? opts->shutdown_timeout_ms : DEFAULT_TIMEOUT_MS;
    srv->handshake_timeout_ms = opts->ssl_handshake_timeout_ms == 0 ? DEFAULT_TIMEOUT_MS
                              : opts->ssl_handshake_timeout_ms < 0 ? 0 : opts->ssl_handshake_timeout_ms;
    srv->on_client = on_client;
    srv->ud = ud;
    /* The user may free the context once the server exists, as with connect. */
    if (srv->opts.tls != NULL)
        rill__tls_ref(srv->opts.tls);
    rill__list_init(&srv->handshaking);
    rill__list_init(&srv->streams);
    rill__list_init(&srv->start_waiters);
    rill__list_init(&srv->close_waiters);
    rill__task_init(&srv->start_task, start_run);
    rill__task_init(&srv->finish_task, finish_run);
    rill__timer_init(&srv->resume_timer, loop, resume_fired, srv);
    rill__timer_init(&srv->shutdown_timer, loop, shutdown_fired, srv);
    rill__handle_open(loop, &srv->h, server_free_memory);
    if (opts->nsocks > 0)
        RILL__TRACE("server", srv->id, "server", "-", srv_names[SRV_NEW], "%lu given sockets",
                    (unsigned long)opts->nsocks);
    else if (path != NULL)
        RILL__TRACE("server", srv->id, "server", "-", srv_names[SRV_NEW], "unix %s", path);
    else
        RILL__TRACE("server", srv->id, "server", "-", srv_names[SRV_NEW], "%s port %d",
                    host != NULL ? host : "*", port);
    return srv;
fail:
    rill__free(srv->socks);
    rill__free(srv->host);
    rill__free(srv->path);
    rill__free(srv);
    errno = -rc;
    return NULL;
}

rill_server *rill_server_new(rill_loop *loop, const char *host, int port,
                             const rill_server_opts *opts, rill_client_cb on_client, void *ud)
{
    if (port < 0) {   /* server_new reads a negative port as "Unix" */
        errno = EINVAL;
        return NULL;
    }
    return server_new(loop, host, port, NULL, opts, on_client, ud);
}

rill_server *rill_unix_server_new(rill_loop *loop, const char *path, const rill_server_opts *opts,
                                  rill_client_cb on_client, void *ud)
{
    return server_new(loop, NULL, -1, path, opts, on_client, ud);
}

int rill_server_bind(rill_server *srv)
{
    if (srv == NULL)
        return RILL_EINVAL;
    if (srv->state == SRV_CLOSING || srv->state == SRV_CLOSED)
        return RILL_ECLOSED;
    return do_bind(srv);
}

/* With cb, a bind error reaches the callback (rill_server(3)); without one, the return value. */
int rill_server_start_serving(rill_server *srv, rill_server_cb cb, void *ud)
{
    srv_waiter *w = NULL;
    int rc;

    if (srv == NULL)
        return RILL_EINVAL;
    if (srv->state == SRV_CLOSING || srv->state == SRV_CLOSED)
        return RILL_ECLOSED;
    /* The waiter first: once listening, running out of memory must not lose the callback. */
    if (cb != NULL && (w = waiter_push(&srv->start_waiters, cb, ud)) == NULL)
        return RILL_ENOMEM;
    rc = start_listening(srv);
    if (w == NULL)
        return rc;
    /* The bind error, if any, goes to the callback, from the loop. */
    w->status = rc;
    rill__task_post(srv->loop, &srv->start_task);
    return 0;
}

/* on_closed reports the close, so a server that could not bind returns the error:
   nothing runs that could ever be closed. */
int rill_server_serve_forever(rill_server *srv, rill_server_cb on_closed, void *ud)
{
    int rc;

    if (srv == NULL)
        return RILL_EINVAL;
    if (srv->forever)
        return RILL_EBUSY;
    if (srv->state == SRV_CLOSING || srv->state == SRV_CLOSED)
        return RILL_ECLOSED;
    if ((rc = start_listening(srv)) < 0)
        return rc;
    srv->forever = 1;
    srv->forever_cb = on_closed;
    srv->forever_ud = ud;
    return 0;
}

int rill_server_is_bound(const rill_server *srv)
{
    return srv != NULL && srv->nls > 0;
}

int rill_server_is_serving(const rill_server *srv)
{
    return srv != NULL && (srv->state == SRV_SERVING || srv->state == SRV_PAUSED);
}

size_t rill_server_nsockets(const rill_server *srv)
{
    return srv != NULL ? srv->nls : 0;
}

int rill_server_socket(const rill_server *srv, size_t i)
{
    if (srv == NULL || i >= srv->nls)
        return RILL_EINVAL;
    return srv->ls[i].fd;
}

int rill_server_sockname(const rill_server *srv, size_t i, char *buf, size_t buflen)
{
    if (srv == NULL || i >= srv->nls) {
        if (buf != NULL && buflen > 0)
            buf[0] = '\0';
        return RILL_EINVAL;
    }
    if (srv->ls[i].addr.ss_family == AF_UNIX && srv->path != NULL)
        return rill__put_text(buf, buflen, srv->path);
    return rill_format_addr((const struct sockaddr *)&srv->ls[i].addr, buf, buflen);
}

int rill_server_port(const rill_server *srv)
{
    size_t i;
    if (srv == NULL)
        return RILL_EINVAL;
    for (i = 0; i < srv->nls; i++)
        if (sock_port(&srv->ls[i].addr) >= 0)
            return sock_port(&srv->ls[i].addr);
    return RILL_EINVAL;   /* not bound, or not an IP server */
}

void *rill_server_get_data(const rill_server *srv) { return srv != NULL ? srv->data : NULL; }
void rill_server_set_data(rill_server *srv, void *data) { if (srv != NULL) srv->data = data; }
rill_loop *rill_server_loop(const rill_server *srv) { return srv != NULL ? srv->loop : NULL; }
