/* [io] asyncio's add_reader/add_writer: a descriptor the program owns, watched by the loop. */
#include "rill_private.h"

struct rill_watch {
    rill__io io;
    rill__handle h;
    rill_loop *loop;
    void (*cb)(rill_watch *w, int revents, void *ud);
    void *ud;
};

static void watch_ready(rill__io *io, int revents)
{
    rill_watch *w = rill__container_of(io, rill_watch, io);
    /* The callback may stop the watch: its memory stays until the iteration ends. */
    w->cb(w, revents & (RILL_READABLE | RILL_WRITABLE), w->ud);
}

static void watch_free(rill__handle *h)
{
    rill__free(rill__container_of(h, rill_watch, h));
}

static int valid_events(int events)
{
    return (events & ~(RILL_READABLE | RILL_WRITABLE)) == 0;
}

rill_watch *rill_watch_fd(rill_loop *loop, int fd, int events,
                          void (*cb)(rill_watch *w, int revents, void *ud), void *ud)
{
    rill_watch *w;
    int rc;

    if (loop == NULL || fd < 0 || cb == NULL || !valid_events(events)) {
        errno = EINVAL;
        return NULL;
    }
    if ((w = rill__malloc(sizeof *w)) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    w->loop = loop;
    w->cb = cb;
    w->ud = ud;
    rill__io_init(&w->io, fd, watch_ready);
    if ((rc = rill__io_start(loop, &w->io, events)) < 0) {
        rill__free(w);
        errno = -rc;
        return NULL;
    }
    rill__handle_open(loop, &w->h, watch_free);
    return w;
}

int rill_watch_update(rill_watch *w, int events)
{
    if (w == NULL || !valid_events(events))
        return RILL_EINVAL;
    return rill__io_start(w->loop, &w->io, events);
}

void rill_watch_stop(rill_watch *w)
{
    if (w == NULL)
        return;
    rill__io_stop(w->loop, &w->io);
    rill__handle_closed(w->loop, &w->h);
}
