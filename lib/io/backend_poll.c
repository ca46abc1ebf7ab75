/* [io] The poll() backend: one pollfd per registry slot, kept between iterations and
   updated in place, so an iteration costs one poll() and no rebuilding. */
#include "rill_private.h"

#ifdef RILL_HAVE_POLL
#include <poll.h>

typedef struct {
    struct pollfd *pfd;
    size_t cap;
} poll_data;

int rill__poll_facts(short re)
{
    int r = 0;
    if (re & POLLIN)
        r |= RILL__FIRED_IN;
    if (re & POLLOUT)
        r |= RILL__FIRED_OUT;
    if (re & (POLLHUP | POLLERR | POLLNVAL))
        r |= RILL__FIRED_HUP;
    return r;
}

static short to_poll(int events)
{
    short e = 0;
    if (events & RILL_READABLE)
        e |= POLLIN;
    if (events & RILL_WRITABLE)
        e |= POLLOUT;
    return e; /* RILL__EV_HUP alone: events 0, POLLHUP/POLLERR still reported */
}

static void fill(rill_loop *loop, size_t slot)
{
    poll_data *pd = loop->bdata;
    const rill__slot *s = &loop->slots[slot];
    /* A paused io (no events) must not report POLLHUP either: fd -1 hides it. */
    pd->pfd[slot].fd = s->events ? s->fd : -1;
    pd->pfd[slot].events = to_poll(s->events);
    pd->pfd[slot].revents = 0;
}

static int poll_init(rill_loop *loop)
{
    poll_data *pd = rill__calloc(1, sizeof *pd);
    if (pd == NULL)
        return RILL_ENOMEM;
    loop->bdata = pd;
    return 0;
}

static void poll_destroy(rill_loop *loop)
{
    poll_data *pd = loop->bdata;
    if (pd == NULL)
        return;
    rill__free(pd->pfd);
    rill__free(pd);
    loop->bdata = NULL;
}

static int poll_add(rill_loop *loop, size_t slot)
{
    poll_data *pd = loop->bdata;
    if (slot >= pd->cap) {
        size_t cap = loop->capslots, i;
        struct pollfd *p = rill__realloc(pd->pfd, cap * sizeof *p);
        if (p == NULL)
            return RILL_ENOMEM;
        for (i = pd->cap; i < cap; i++) {
            p[i].fd = -1;
            p[i].events = p[i].revents = 0;
        }
        pd->pfd = p;
        pd->cap = cap;
    }
    fill(loop, slot);
    return 0;
}

static void poll_mod(rill_loop *loop, size_t slot) { fill(loop, slot); }

static void poll_del(rill_loop *loop, size_t slot)
{
    poll_data *pd = loop->bdata;
    pd->pfd[slot].fd = -1;
    pd->pfd[slot].events = 0;
    pd->pfd[slot].revents = 0;
}

static int poll_wait(rill_loop *loop, int timeout_ms)
{
    poll_data *pd = loop->bdata;
    size_t n = loop->nslots, i;
    int rc;

    loop->npolls++;
    rc = poll(pd->pfd, (nfds_t)n, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : -errno;
    rill__dispatch_begin(loop);
    for (i = 0; i < n && rc > 0; i++) {
        short re = pd->pfd[i].revents;
        if (re == 0)
            continue;
        rc--;
        pd->pfd[i].revents = 0;
        rill__loop_dispatch(loop, i, rill__poll_facts(re));
    }
    rill__dispatch_end(loop);
    return 0;
}

const rill__backend rill__backend_poll = {
    "poll", poll_init, poll_destroy, poll_add, poll_mod, poll_del, poll_wait
};
#endif
