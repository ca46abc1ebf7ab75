/* [core] Intrusive doubly linked list with a sentinel head: O(1) insert and unlink,
   so a queued item can be withdrawn without searching. */
#ifndef RILL_QUEUE_H
#define RILL_QUEUE_H

#include <stddef.h>

typedef struct rill__list {
    struct rill__list *prev, *next;
} rill__list;

#define rill__container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void rill__list_init(rill__list *h) { h->prev = h->next = h; }
static inline int rill__list_empty(const rill__list *h) { return h->next == h; }
/* A node that is in no list points at itself (after init or unlink). */
static inline int rill__list_linked(const rill__list *n) { return n->next != n && n->next != NULL; }

static inline void rill__list_push_back(rill__list *h, rill__list *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void rill__list_unlink(rill__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

static inline rill__list *rill__list_pop_front(rill__list *h)
{
    rill__list *n;
    if (rill__list_empty(h))
        return NULL;
    n = h->next;
    rill__list_unlink(n);
    return n;
}

/* Moves every node of from to the end of to; from becomes empty. */
static inline void rill__list_splice(rill__list *to, rill__list *from)
{
    if (rill__list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    rill__list_init(from);
}

#endif
