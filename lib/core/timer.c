/* [core] Timers on a binary min-heap ordered by (deadline, creation sequence), so equal
   deadlines fire in the order the timers were created. */
#include "rill_private.h"

static int timer_before(const rill_timer *a, const rill_timer *b)
{
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline;
    return a->seq < b->seq;
}

static void heap_set(rill_loop *loop, size_t i, rill_timer *t)
{
    loop->heap[i] = t;
    t->heap_idx = i;
}

static void sift_up(rill_loop *loop, size_t i)
{
    rill_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(t, loop->heap[parent]))
            break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void sift_down(rill_loop *loop, size_t i)
{
    rill_timer *t = loop->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= loop->nheap)
            break;
        if (child + 1 < loop->nheap && timer_before(loop->heap[child + 1], loop->heap[child]))
            child++;
        if (!timer_before(loop->heap[child], t))
            break;
        heap_set(loop, i, loop->heap[child]);
        i = child;
    }
    heap_set(loop, i, t);
}

void rill__timer_init(rill_timer *t, rill_loop *loop, void (*cb)(void *ud), void *ud)
{
    t->loop = loop;
    t->deadline = 0;
    t->seq = 0;
    t->heap_idx = RILL__NO_SLOT;
    t->cb = cb;
    t->ud = ud;
    t->owned = 0;
}

int rill__timer_start(rill_timer *t, uint64_t delay_ms)
{
    rill_loop *loop = t->loop;

    if (rill__timer_armed(t))
        rill__timer_stop(t);
    if (loop->nheap == loop->capheap) {
        size_t cap = loop->capheap ? loop->capheap * 2 : 16;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, sizeof *h is right */
        rill_timer **h = rill__realloc(loop->heap, cap * sizeof *h);
        if (h == NULL)
            return RILL_ENOMEM;
        loop->heap = h;
        loop->capheap = cap;
    }
    /* The clock is read now, not the cached iteration time: a timer never fires early.
       A delay past the end of the clock saturates: wrapping would fire it at once. */
    t->deadline = rill__clock_ms();
    t->deadline = delay_ms > UINT64_MAX - t->deadline ? UINT64_MAX : t->deadline + delay_ms;
    t->seq = loop->timer_seq++;
    loop->heap[loop->nheap] = t;
    t->heap_idx = loop->nheap++;
    sift_up(loop, t->heap_idx);
    return 0;
}

void rill__timer_stop(rill_timer *t)
{
    rill_loop *loop = t->loop;
    size_t i = t->heap_idx;

    if (i == RILL__NO_SLOT)
        return;
    t->heap_idx = RILL__NO_SLOT;
    loop->nheap--;
    if (i == loop->nheap)
        return;
    heap_set(loop, i, loop->heap[loop->nheap]);
    if (i > 0 && timer_before(loop->heap[i], loop->heap[(i - 1) / 2]))
        sift_up(loop, i);
    else
        sift_down(loop, i);
}

/* Fires due timers. Timers armed while this runs wait for the next round, so a
   timer that re-arms itself with delay 0 cannot keep the loop here. */
void rill__run_timers(rill_loop *loop)
{
    uint64_t seq_limit = loop->timer_seq;

    while (loop->nheap > 0) {
        rill_timer *t = loop->heap[0];
        void (*cb)(void *) = t->cb;
        void *ud = t->ud;

        if (t->deadline > loop->now || t->seq >= seq_limit)
            break;
        rill__timer_stop(t);
        if (t->owned) {
            /* A user timer's handle ends when its callback starts. */
            loop->nuser_timers--;
            rill__free(t);
        }
        cb(ud);
    }
}

int rill__timer_timeout(const rill_loop *loop)
{
    uint64_t d;
    if (loop->nheap == 0)
        return -1;
    d = loop->heap[0]->deadline;
    if (d <= loop->now)
        return 0;
    d -= loop->now;
    return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

rill_timer *rill_call_later(rill_loop *loop, uint64_t delay_ms, void (*cb)(void *ud), void *ud)
{
    rill_timer *t;
    int rc;

    if (loop == NULL || cb == NULL) {
        errno = EINVAL;
        return NULL;
    }
    t = rill__malloc(sizeof *t);
    if (t == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    rill__timer_init(t, loop, cb, ud);
    t->owned = 1;
    rc = rill__timer_start(t, delay_ms);
    if (rc < 0) {
        rill__free(t);
        errno = -rc;
        return NULL;
    }
    loop->nuser_timers++;
    return t;
}

void rill_timer_cancel(rill_timer *t)
{
    if (t == NULL)
        return;
    rill__timer_stop(t);
    if (t->owned) {
        t->loop->nuser_timers--;
        rill__free(t);
    }
}
