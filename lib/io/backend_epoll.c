/* [io] The epoll backend (Linux), chosen by configure where it exists. Unlike poll()
   its cost does not grow with idle descriptors. Interest is only changed when it
   changes, so a steady ping-pong costs no epoll_ctl; an io with no events is
   taken out of the set, because epoll reports hang-ups even with no events asked
   and a level-triggered hang-up would wake every wait. */
#include "rill_private.h"

#ifdef RILL_HAVE_EPOLL
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 256

typedef struct {
    int epfd;
    unsigned char *in_set;          /* per slot: registered with the kernel */
    size_t cap;
    struct epoll_event events[MAX_EVENTS];
} epoll_data;

static int epoll_init(rill_loop *loop)
{
    epoll_data *ed = rill__calloc(1, sizeof *ed);
    if (ed == NULL)
        return RILL_ENOMEM;
    ed->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ed->epfd < 0) {
        int e = errno;
        rill__free(ed);
        return -e;
    }
    loop->bdata = ed;
    return 0;
}

static void epoll_destroy(rill_loop *loop)
{
    epoll_data *ed = loop->bdata;
    if (ed == NULL)
        return;
    close(ed->epfd);
    rill__free(ed->in_set);
    rill__free(ed);
    loop->bdata = NULL;
}

/* Brings the kernel's set in line with the slot's events. */
static int sync_slot(rill_loop *loop, size_t slot)
{
    epoll_data *ed = loop->bdata;
    const rill__slot *s = &loop->slots[slot];
    struct epoll_event ev;
    int op;

    if (s->events == 0) {
        if (ed->in_set[slot]) {
            epoll_ctl(ed->epfd, EPOLL_CTL_DEL, s->fd, &ev);
            ed->in_set[slot] = 0;
        }
        return 0;
    }
    ev.events = ((s->events & RILL_READABLE) ? EPOLLIN : 0u) | ((s->events & RILL_WRITABLE) ? EPOLLOUT : 0u);
    ev.data.u64 = slot;
    op = ed->in_set[slot] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(ed->epfd, op, s->fd, &ev) < 0) {
        /* A descriptor closed and reopened under the same number is new to the kernel. */
        if (op == EPOLL_CTL_MOD && errno == ENOENT)
            op = EPOLL_CTL_ADD;
        else   /* EEXIST too: turning it into MOD would take another slot's registration */
            return -errno;
        if (epoll_ctl(ed->epfd, op, s->fd, &ev) < 0)
            return -errno;
    }
    ed->in_set[slot] = 1;
    return 0;
}

static int epoll_add(rill_loop *loop, size_t slot)
{
    epoll_data *ed = loop->bdata;
    if (slot >= ed->cap) {
        size_t cap = loop->capslots, i;
        unsigned char *p = rill__realloc(ed->in_set, cap);
        if (p == NULL)
            return RILL_ENOMEM;
        for (i = ed->cap; i < cap; i++)
            p[i] = 0;
        ed->in_set = p;
        ed->cap = cap;
    }
    return sync_slot(loop, slot);
}

static void epoll_mod(rill_loop *loop, size_t slot)
{
    sync_slot(loop, slot);
}

static void epoll_del(rill_loop *loop, size_t slot)
{
    epoll_data *ed = loop->bdata;
    struct epoll_event ev;
    if (ed->in_set[slot]) {
        /* Called before the owner closes the descriptor, so the kernel still knows it. */
        epoll_ctl(ed->epfd, EPOLL_CTL_DEL, loop->slots[slot].fd, &ev);
        ed->in_set[slot] = 0;
    }
}

static int epoll_wait_dispatch(rill_loop *loop, int timeout_ms)
{
    epoll_data *ed = loop->bdata;
    int n, i;

    loop->npolls++;
    n = epoll_wait(ed->epfd, ed->events, MAX_EVENTS, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    rill__dispatch_begin(loop);
    for (i = 0; i < n; i++) {
        uint32_t re = ed->events[i].events;
        size_t slot = (size_t)ed->events[i].data.u64;
        int r = 0;
        if (re & EPOLLIN)
            r |= RILL__FIRED_IN;
        if (re & EPOLLOUT)
            r |= RILL__FIRED_OUT;
        if (re & (EPOLLHUP | EPOLLERR))
            r |= RILL__FIRED_HUP;
        if (slot < loop->nslots)
            rill__loop_dispatch(loop, slot, r);
    }
    rill__dispatch_end(loop);
    return 0;
}

const rill__backend rill__backend_epoll = {
    "epoll", epoll_init, epoll_destroy, epoll_add, epoll_mod, epoll_del, epoll_wait_dispatch
};
#endif
