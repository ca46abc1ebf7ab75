/* [stream] Waiters: the callbacks a drain, a close or a wait_closed leaves on a
   stream's lists, answered together from the loop. Answered waiters go to the
   stream's spare list, so steady writing with drains allocates nothing. */
#include "stream.h"

/* A drain waiter's status is 1 once its condition has held (the buffer was at
   most high when it was asked, or has fallen to low since): it is answered even
   if a later write raises the buffer again before its task runs, as asyncio's
   completed future would be. */
int rill__waiter_add(rill_stream *s, rill__list *list, rill_done_cb cb, void *ud)
{
    rill__waiter *w;
    rill__list *n = rill__list_pop_front(&s->spare);

    if (n != NULL) {
        w = rill__container_of(n, rill__waiter, node);
    } else {
        if ((w = rill__malloc(sizeof *w)) == NULL)
            return RILL_ENOMEM;
        rill__list_init(&w->node);
    }
    w->cb = cb;
    w->ud = ud;
    w->status = 0;
    rill__list_push_back(list, &w->node);
    return 0;
}

/* Takes back the waiter just added to list: the call that added it failed. */
void rill__waiter_withdraw_last(rill_stream *s, rill__list *list)
{
    rill__list *last = list->prev;
    rill__list_unlink(last);
    rill__list_push_back(&s->spare, last);
}

/* Calls back every waiter of list with status; waiters added meanwhile wait. */
void rill__waiters_run(rill_stream *s, rill__list *list, int status)
{
    rill__list batch;
    rill__list_init(&batch);
    rill__list_splice(&batch, list);
    while (!rill__list_empty(&batch)) {
        rill__waiter *w = rill__container_of(rill__list_pop_front(&batch), rill__waiter, node);
        rill_done_cb cb = w->cb;
        void *ud = w->ud;
        rill__list_push_back(&s->spare, &w->node);
        if (cb != NULL)
            cb(s, status, ud);
    }
}

void rill__waiters_free(rill__list *list)
{
    while (!rill__list_empty(list))
        rill__free(rill__container_of(rill__list_pop_front(list), rill__waiter, node));
}
