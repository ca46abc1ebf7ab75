/* [embed] Running rill inside a program's own select() or poll() loop. prepare_* records
   which (slot, generation, fd) it handed out; after_* dispatches only those, so a
   descriptor closed and reused in between is never dispatched. */
#include "rill_private.h"

#include <limits.h>
#include <string.h>
#ifdef RILL_HAVE_POLL
#include <poll.h>
#endif

static int record(rill_loop *loop, size_t n)
{
    if (n > loop->capemb) {
        void *p = rill__realloc(loop->emb, n * sizeof *loop->emb);
        if (p == NULL)
            return RILL_ENOMEM;
        loop->emb = p;
        loop->capemb = n;
    }
    return 0;
}

/* Milliseconds until rill needs control again; -1: no deadline. */
static int embed_timeout(rill_loop *loop)
{
    rill__update_time(loop);
    return rill__next_timeout(loop);
}

static int lower_ms(int mine, int theirs)
{
    if (theirs < 0)
        return mine;
    if (mine < 0)
        return theirs;
    return mine < theirs ? mine : theirs;
}

/* The program's timeout in ms, saturated: a long one (a day's worth of seconds
   times 1000 does not fit an int) must not wrap into a short or negative one. */
static int timeval_ms(const struct timeval *tv)
{
    long usec_ms = tv->tv_usec > 0 ? (long)(tv->tv_usec / 1000) : 0;

    if (tv->tv_sec < 0)
        return -1;
    if (tv->tv_sec >= (INT_MAX - 1000) / 1000)
        return INT_MAX;
    return (int)((long)tv->tv_sec * 1000 + usec_ms);
}

static size_t count_watched(const rill_loop *loop)
{
    size_t i, n = 0;
    for (i = 0; i < loop->nslots; i++)
        if (loop->slots[i].io != NULL && loop->slots[i].events != 0)
            n++;
    return n;
}

int rill_loop_prepare_select(rill_loop *loop, fd_set *rd, fd_set *wr, int *maxfd, struct timeval *tv)
{
    size_t i, k = 0;
    int theirs, mine, t, rc;

    if (loop == NULL || rd == NULL || wr == NULL || maxfd == NULL || tv == NULL)
        return RILL_EINVAL;
    for (i = 0; i < loop->nslots; i++)
        if (loop->slots[i].io != NULL && loop->slots[i].fd >= FD_SETSIZE)
            return -EMFILE;
    if ((rc = record(loop, count_watched(loop))) < 0)
        return rc;
    for (i = 0; i < loop->nslots; i++) {
        const rill__slot *s = &loop->slots[i];
        if (s->io == NULL || s->events == 0)
            continue;
        if (s->events & (RILL_READABLE | RILL__EV_HUP))
            FD_SET(s->fd, rd);
        if (s->events & RILL_WRITABLE)
            FD_SET(s->fd, wr);
        if (s->fd > *maxfd)
            *maxfd = s->fd;
        loop->emb[k].slot = i;
        loop->emb[k].gen = s->gen;
        loop->emb[k].fd = s->fd;
        k++;
    }
    loop->nemb = k;
    theirs = timeval_ms(tv);
    mine = embed_timeout(loop);
    t = lower_ms(mine, theirs);
    /* A saturated program timeout may still be longer than rill's saturated one. */
    if (t != theirs || (theirs == INT_MAX && mine >= 0)) {
        if (t < 0) {
            tv->tv_sec = -1;
            tv->tv_usec = 0;
        } else {
            tv->tv_sec = t / 1000;
            tv->tv_usec = (t % 1000) * 1000;
        }
    }
    return 0;
}

/* Dispatches recorded entry i if its slot still holds the same registration. */
static void dispatch_recorded(rill_loop *loop, size_t i, int facts)
{
    const rill__slot *s = &loop->slots[loop->emb[i].slot];
    if (s->io != NULL && s->gen == loop->emb[i].gen && s->fd == loop->emb[i].fd)
        rill__loop_dispatch(loop, loop->emb[i].slot, facts);
}

static void after(rill_loop *loop)
{
    rill__update_time(loop);
    rill__run_ready(loop);
    loop->nemb = 0;
    loop->in_callback--;
}

void rill_loop_after_select(rill_loop *loop, const fd_set *rd, const fd_set *wr)
{
    size_t i;

    loop->in_callback++;
    if (rd != NULL || wr != NULL) {
        rill__dispatch_begin(loop);
        for (i = 0; i < loop->nemb; i++) {
            int fd = loop->emb[i].fd, r = 0;
            if (rd != NULL && FD_ISSET(fd, rd))
                r |= RILL__FIRED_IN;
            if (wr != NULL && FD_ISSET(fd, wr))
                r |= RILL__FIRED_OUT;
            if (r)
                dispatch_recorded(loop, i, r);
        }
        rill__dispatch_end(loop);
    }
    after(loop);
}

#ifdef RILL_HAVE_POLL
int rill_loop_prepare_poll(rill_loop *loop, struct pollfd *fds, size_t cap, size_t *n, int *timeout_ms)
{
    size_t i, k = 0, need;
    int rc;

    if (loop == NULL || n == NULL || timeout_ms == NULL || (fds == NULL && cap > 0))
        return RILL_EINVAL;
    need = count_watched(loop);
    *n = need;
    if (cap < need)
        return RILL_ENOBUFS;
    if ((rc = record(loop, need)) < 0)
        return rc;
    for (i = 0; i < loop->nslots && k < need; i++) {   /* never past the need <= cap entries */
        const rill__slot *s = &loop->slots[i];
        if (s->io == NULL || s->events == 0)
            continue;
        fds[k].fd = s->fd;
        fds[k].events = (short)(((s->events & RILL_READABLE) ? POLLIN : 0) |
                                ((s->events & RILL_WRITABLE) ? POLLOUT : 0));
        fds[k].revents = 0;
        loop->emb[k].slot = i;
        loop->emb[k].gen = s->gen;
        loop->emb[k].fd = s->fd;
        k++;
    }
    loop->nemb = k;
    *timeout_ms = lower_ms(embed_timeout(loop), *timeout_ms);
    return 0;
}

void rill_loop_after_poll(rill_loop *loop, const struct pollfd *fds, size_t n)
{
    size_t i;

    loop->in_callback++;
    if (fds != NULL) {
        if (n > loop->nemb)
            n = loop->nemb;
        rill__dispatch_begin(loop);
        for (i = 0; i < n; i++) {
            if (fds[i].revents == 0 || fds[i].fd != loop->emb[i].fd)
                continue;
            dispatch_recorded(loop, i, rill__poll_facts(fds[i].revents));
        }
        rill__dispatch_end(loop);
    }
    after(loop);
}
#else
int rill_loop_prepare_poll(rill_loop *loop, struct pollfd *fds, size_t cap, size_t *n, int *timeout_ms)
{
    (void)loop; (void)fds; (void)cap; (void)n; (void)timeout_ms;
    return -ENOSYS;
}

void rill_loop_after_poll(rill_loop *loop, const struct pollfd *fds, size_t n)
{
    (void)fds; (void)n;
    loop->in_callback++;
    after(loop);
}
#endif
