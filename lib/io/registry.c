/* [io] The registry of watched descriptors. Each active rill__io owns one slot; the
   backends mirror the slots. A slot freed while events are being dispatched is
   not reused until the dispatch ends, so a stale readiness result can never
   reach a new owner of the slot. */
#include "rill_private.h"

static int grow_slots(rill_loop *loop)
{
    size_t cap = loop->capslots ? loop->capslots * 2 : 64;
    rill__slot *s;
    size_t *f, *d;

    s = rill__realloc(loop->slots, cap * sizeof *s);
    if (s == NULL)
        return RILL_ENOMEM;
    loop->slots = s;
    /* The free lists can hold every slot, so releasing one never allocates. */
    f = rill__realloc(loop->free_slots, cap * sizeof *f);
    if (f == NULL)
        return RILL_ENOMEM;
    loop->free_slots = f;
    d = rill__realloc(loop->dead_slots, cap * sizeof *d);
    if (d == NULL)
        return RILL_ENOMEM;
    loop->dead_slots = d;
    loop->capslots = cap;
    return 0;
}

static int fd_watched(const rill_loop *loop, int fd)
{
    size_t i;
    for (i = 0; i < loop->nslots; i++)
        if (loop->slots[i].io != NULL && loop->slots[i].fd == fd)
            return 1;
    return 0;
}

void rill__io_init(rill__io *io, int fd, rill__io_cb cb)
{
    io->fd = fd;
    io->events = 0;
    io->slot = RILL__NO_SLOT;
    io->gen = 0;
    io->cb = cb;
}

int rill__io_start(rill_loop *loop, rill__io *io, int events)
{
    size_t slot;
    rill__slot *s;
    int rc;

    if (rill__io_active(io)) {
        if (io->events != events) {
            io->events = events;
            loop->slots[io->slot].events = events;
            loop->backend->mod(loop, io->slot);
        }
        return 0;
    }
    /* One registration per descriptor, on every backend: epoll keeps one entry
       per descriptor, and a second would take the first one's events. */
    if (fd_watched(loop, io->fd))
        return -EEXIST;
    if (loop->nfree > 0) {
        slot = loop->free_slots[--loop->nfree];
    } else {
        if (loop->nslots == loop->capslots && (rc = grow_slots(loop)) < 0)
            return rc;
        slot = loop->nslots++;
    }
    s = &loop->slots[slot];
    s->io = io;
    s->fd = io->fd;
    s->events = events;
    s->gen = ++loop->io_gen;
    io->events = events;
    io->gen = s->gen;
    io->slot = slot;
    rc = loop->backend->add(loop, slot);
    if (rc < 0) {
        s->io = NULL;
        s->fd = -1;
        s->events = 0;
        io->slot = RILL__NO_SLOT;
        /* A slot new to the registry goes back whole: the backend may have no
           room for it (poll's array did not grow), so it must not be counted. */
        if (slot == loop->nslots - 1)
            loop->nslots--;
        else
            loop->free_slots[loop->nfree++] = slot;
    }
    return rc;
}

void rill__io_stop(rill_loop *loop, rill__io *io)
{
    size_t slot = io->slot;
    rill__slot *s;

    if (slot == RILL__NO_SLOT)
        return;
    loop->backend->del(loop, slot);
    s = &loop->slots[slot];
    s->io = NULL;
    s->fd = -1;
    s->events = 0;
    io->slot = RILL__NO_SLOT;
    if (loop->dispatching)
        loop->dead_slots[loop->ndead++] = slot;
    else
        loop->free_slots[loop->nfree++] = slot;
}

void rill__dispatch_begin(rill_loop *loop)
{
    loop->dispatching = 1;
    loop->wait_gen = loop->io_gen;
}

void rill__dispatch_end(rill_loop *loop)
{
    loop->dispatching = 0;
    while (loop->ndead > 0)
        loop->free_slots[loop->nfree++] = loop->dead_slots[--loop->ndead];
}

/* The one translation of what a backend saw into what an io hears. */
static int revents_of(int facts, int watched)
{
    /* A hang-up or error is readiness of whatever is watched: the next read or
       write then meets the error. */
    if (facts & RILL__FIRED_HUP)
        return RILL_READABLE | RILL_WRITABLE | RILL__EV_HUP;
    /* select puts a hang-up-only watch in its read set, where data or EOF look the
       same as a hang-up: only a hint, which the owner checks. */
    if ((facts & RILL__FIRED_IN) && !(watched & RILL_READABLE))
        return (facts & RILL__FIRED_OUT) | (watched & RILL__EV_HUP ? RILL__EV_HUP_HINT : 0);
    return facts;   /* RILL__FIRED_IN and _OUT are RILL_READABLE and RILL_WRITABLE */
}

void rill__loop_dispatch(rill_loop *loop, size_t slot, int facts)
{
    rill__slot *s = &loop->slots[slot];
    rill__io *io = s->io;
    int revents;

    /* Registered after the wait started: the readiness is not about this io. */
    if (io == NULL || s->gen > loop->wait_gen)
        return;
    revents = revents_of(facts, s->events) & (s->events | RILL__EV_HUP_HINT);
    if (revents)
        io->cb(io, revents);
}
