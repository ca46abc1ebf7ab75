/* [core] One lifecycle for every handle the user holds (stream, server, connect
 * request, watch, timer, child process):
 *
 *   OPEN --its close has run its course: nothing registered, last callback started--> CLOSED --> FREED
 *
 * rill__handle_closed stops the handle counting towards the loop's life at once
 * and puts its memory on the loop's closing list; rill__handles_free_closed
 * releases it at one point of each iteration, after the timers and the pending
 * callbacks ran (rill__run_ready). So no dispatch that is still walking the
 * registry, the timer heap or a batch of callbacks can meet freed memory, however
 * a callback closed what was being dispatched. Outside any iteration nothing is
 * dispatching: the memory goes at once. A call that fails before it hands out a
 * handle frees what it made itself; there is no handle yet. */
#include "rill_private.h"

void rill__handle_open(rill_loop *loop, rill__handle *h, void (*free_fn)(rill__handle *h))
{
    rill__list_init(&h->closing);
    h->free_fn = free_fn;
    loop->nhandles++;
}

void rill__handle_closed(rill_loop *loop, rill__handle *h)
{
    loop->nhandles--;
    if (loop->in_callback == 0) {
        h->free_fn(h);
        return;
    }
    rill__list_push_back(&loop->closing, &h->closing);
}

void rill__handles_free_closed(rill_loop *loop)
{
    while (!rill__list_empty(&loop->closing)) {
        rill__handle *h = rill__container_of(rill__list_pop_front(&loop->closing), rill__handle, closing);
        h->free_fn(h);
    }
}
