/* [io] The select() backend, for systems without poll(). The sets are rebuilt from the
   registry each wait (select() overwrites them anyway); a descriptor at or above
   FD_SETSIZE is refused when it is added, never written past the set. */
#include "rill_private.h"

#include <string.h>
#ifdef HAVE_SYS_SELECT_H
#include <sys/select.h>
#endif

static int select_init(rill_loop *loop) { (void)loop; return 0; }
static void select_destroy(rill_loop *loop) { (void)loop; }

static int select_add(rill_loop *loop, size_t slot)
{
    if (loop->slots[slot].fd >= FD_SETSIZE || loop->slots[slot].fd < 0)
        return -EMFILE;
    return 0;
}

static void select_mod(rill_loop *loop, size_t slot) { (void)loop; (void)slot; }
static void select_del(rill_loop *loop, size_t slot) { (void)loop; (void)slot; }

static int select_wait(rill_loop *loop, int timeout_ms)
{
    fd_set rd, wr;
    struct timeval tv, *tvp = NULL;
    size_t n = loop->nslots, i;
    int maxfd = -1, rc;

    FD_ZERO(&rd);
    FD_ZERO(&wr);
    for (i = 0; i < n; i++) {
        const rill__slot *s = &loop->slots[i];
        if (s->io == NULL || s->events == 0)
            continue;
        /* An idle write pipe's hang-up shows as readability (POLLERR is in select's read set). */
        if (s->events & (RILL_READABLE | RILL__EV_HUP))
            FD_SET(s->fd, &rd);
        if (s->events & RILL_WRITABLE)
            FD_SET(s->fd, &wr);
        if (s->fd > maxfd)
            maxfd = s->fd;
    }
    if (timeout_ms >= 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
        tvp = &tv;
    }
    loop->npolls++;
    rc = select(maxfd + 1, &rd, &wr, NULL, tvp);
    if (rc < 0)
        return errno == EINTR ? 0 : -errno;
    rill__dispatch_begin(loop);
    for (i = 0; i < n && rc > 0; i++) {
        const rill__slot *s = &loop->slots[i];
        int r = 0;
        if (s->io == NULL || s->events == 0)
            continue;
        if (FD_ISSET(s->fd, &rd))
            r |= RILL__FIRED_IN;
        if (FD_ISSET(s->fd, &wr))
            r |= RILL__FIRED_OUT;
        if (r)
            rill__loop_dispatch(loop, i, r);
    }
    rill__dispatch_end(loop);
    return 0;
}

const rill__backend rill__backend_select = {
    "select", select_init, select_destroy, select_add, select_mod, select_del, select_wait
};
