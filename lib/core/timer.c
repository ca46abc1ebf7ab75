/* [core] Timers on a binary min-heap ordered by (deadline, creation sequence), so equal
   deadlines fire in the order the timers were created. The heap is intrusive: each
   timer holds its own parent and child links, so arming one never allocates and
   rill__timer_start cannot fail; a timer is found again by its links, not an index.
   Position k (1-based, in breadth-first order) is reached from the root by the bits
   of k below its highest one: 0 goes left, 1 goes right. */
#include "rill_private.h"

static int timer_before(const rill_timer *a, const rill_timer *b)
{
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline;
    return a->seq < b->seq;
}

/* The link that holds position k (1-based) and the timer above it. */
static rill_timer **heap_slot(rill_loop *loop, size_t k, rill_timer **parent)
{
    rill_timer **link = &loop->timer_min;
    size_t bit = 1;

    while (bit <= k / 2)
        bit <<= 1;
    *parent = NULL;
    for (bit >>= 1; bit > 0; bit >>= 1) {
        *parent = *link;
        link = (k & bit) ? &(*link)->heap_right : &(*link)->heap_left;
    }
    return link;
}

static void relink_children(rill_timer *t)
{
    if (t->heap_left != NULL)
        t->heap_left->heap_parent = t;
    if (t->heap_right != NULL)
        t->heap_right->heap_parent = t;
}

/* The link of the timer's parent (or the root) that points at t. */
static rill_timer **link_to(rill_loop *loop, const rill_timer *t)
{
    rill_timer *p = t->heap_parent;
    if (p == NULL)
        return &loop->timer_min;
    return p->heap_left == t ? &p->heap_left : &p->heap_right;
}

/* Exchanges child with its parent p: child takes p's place and p goes below it. */
static void swap_with_parent(rill_loop *loop, rill_timer *p, rill_timer *child)
{
    rill_timer *left = child->heap_left, *right = child->heap_right;
    rill_timer **up = link_to(loop, p);

    child->heap_parent = p->heap_parent;
    if (p->heap_left == child) {
        child->heap_left = p;
        child->heap_right = p->heap_right;
    } else {
        child->heap_right = p;
        child->heap_left = p->heap_left;
    }
    *up = child;
    p->heap_left = left;
    p->heap_right = right;
    relink_children(p);
    relink_children(child);
}

static void sift_up(rill_loop *loop, rill_timer *t)
{
    while (t->heap_parent != NULL && timer_before(t, t->heap_parent))
        swap_with_parent(loop, t->heap_parent, t);
}

static void sift_down(rill_loop *loop, rill_timer *t)
{
    for (;;) {
        rill_timer *least = t;
        if (t->heap_left != NULL && timer_before(t->heap_left, least))
            least = t->heap_left;
        if (t->heap_right != NULL && timer_before(t->heap_right, least))
            least = t->heap_right;
        if (least == t)
            return;
        swap_with_parent(loop, t, least);
    }
}

void rill__timer_init(rill_timer *t, rill_loop *loop, void (*cb)(void *ud), void *ud)
{
    t->loop = loop;
    t->deadline = 0;
    t->seq = 0;
    t->heap_parent = t->heap_left = t->heap_right = NULL;
    t->armed = 0;
    t->cb = cb;
    t->ud = ud;
    t->owned = 0;
}

void rill__timer_start(rill_timer *t, uint64_t delay_ms)
{
    rill_loop *loop = t->loop;
    rill_timer **link, *parent;

    rill__timer_stop(t);
    /* The clock is read now, not the cached iteration time: a timer never fires early.
       A delay past the end of the clock saturates: wrapping would fire it at once. */
    t->deadline = rill__clock_ms();
    t->deadline = delay_ms > UINT64_MAX - t->deadline ? UINT64_MAX : t->deadline + delay_ms;
    t->seq = loop->timer_seq++;
    link = heap_slot(loop, ++loop->ntimers, &parent);
    t->heap_parent = parent;
    t->heap_left = t->heap_right = NULL;
    t->armed = 1;
    *link = t;
    sift_up(loop, t);
}

void rill__timer_unlink(rill_timer *t)
{
    rill_loop *loop = t->loop;
    rill_timer **link, *parent, *last;

    t->armed = 0;
    /* The last position's timer fills the hole, then moves to where it belongs. */
    link = heap_slot(loop, loop->ntimers--, &parent);
    last = *link;
    *link = NULL;
    if (last != t) {
        last->heap_parent = t->heap_parent;
        last->heap_left = t->heap_left;
        last->heap_right = t->heap_right;
        *link_to(loop, t) = last;
        relink_children(last);
        sift_down(loop, last);
        sift_up(loop, last);
    }
    t->heap_parent = t->heap_left = t->heap_right = NULL;
}

/* rill_call_later's timers are handles: their memory goes with the iteration. */
typedef struct user_timer {
    rill_timer t;
    rill__handle h;
} user_timer;

static void user_timer_free(rill__handle *h)
{
    rill__free(rill__container_of(h, user_timer, h));
}

static void user_timer_closed(rill_timer *t)
{
    t->loop->nuser_timers--;
    rill__handle_closed(t->loop, &rill__container_of(t, user_timer, t)->h);
}

/* Fires due timers. Timers armed while this runs wait for the next round, so a
   timer that re-arms itself with delay 0 cannot keep the loop here. */
void rill__run_timers(rill_loop *loop)
{
    uint64_t seq_limit = loop->timer_seq;

    while (loop->timer_min != NULL) {
        rill_timer *t = loop->timer_min;
        void (*cb)(void *) = t->cb;
        void *ud = t->ud;

        if (t->deadline > loop->now || t->seq >= seq_limit)
            break;
        rill__timer_stop(t);
        if (t->owned)
            user_timer_closed(t);   /* a user timer's handle ends when its callback starts */
        cb(ud);
    }
}

int rill__timer_timeout(const rill_loop *loop)
{
    uint64_t d;
    if (loop->timer_min == NULL)
        return -1;
    d = loop->timer_min->deadline;
    if (d <= loop->now)
        return 0;
    d -= loop->now;
    return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

rill_timer *rill_call_later(rill_loop *loop, uint64_t delay_ms, void (*cb)(void *ud), void *ud)
{
    user_timer *u;

    if (loop == NULL || cb == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if ((u = rill__malloc(sizeof *u)) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    rill__timer_init(&u->t, loop, cb, ud);
    u->t.owned = 1;
    rill__timer_start(&u->t, delay_ms);
    rill__handle_open(loop, &u->h, user_timer_free);
    loop->nuser_timers++;
    return &u->t;
}

void rill_timer_cancel(rill_timer *t)
{
    if (t == NULL)
        return;
    rill__timer_stop(t);
    if (t->owned)
        user_timer_closed(t);
}
