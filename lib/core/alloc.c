/* [core] Allocation wrappers: one place to count allocations and to make one fail,
   so tests can walk a failure over every allocation site, and (debug builds, or
   once a test turns it on) to check that a freed block holds no registered
   watcher and no armed timer. */
#include "config.h"
#include "rill_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Counters are touched from every thread that calls rill_call_soon_threadsafe:
   __atomic builtins where configure found them, a mutex otherwise (C99 has no
   atomics of its own). */
#ifdef HAVE_ATOMIC_BUILTINS
#define CNT_ADD(v, d) __atomic_add_fetch(&(v), (d), __ATOMIC_RELAXED)
#define CNT_GET(v) __atomic_load_n(&(v), __ATOMIC_RELAXED)
#define CNT_SET(v, x) __atomic_store_n(&(v), (x), __ATOMIC_RELAXED)
#define CNT_SWAP(v, x) __atomic_exchange_n(&(v), (x), __ATOMIC_RELAXED)
#else
static pthread_mutex_t cnt_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long cnt_op(unsigned long *v, unsigned long d, int set)
{
    unsigned long old;
    pthread_mutex_lock(&cnt_mu);
    old = *v;
    *v = set ? d : old + d;
    pthread_mutex_unlock(&cnt_mu);
    return set ? old : old + d;
}
#define CNT_ADD(v, d) cnt_op(&(v), (unsigned long)(d), 0)
#define CNT_GET(v) cnt_op(&(v), 0, 0)
#define CNT_SET(v, x) ((void)cnt_op(&(v), (x), 1))
#define CNT_SWAP(v, x) cnt_op(&(v), (x), 1)
#endif

/* Test-only hook state; production code never sets it. */
static unsigned long alloc_count;
static unsigned long alloc_fail_at;
static unsigned long alloc_live;      /* made and not yet freed: tests find leaks with it */

static int should_fail(void)
{
    unsigned long n = CNT_ADD(alloc_count, 1);
    unsigned long at = CNT_GET(alloc_fail_at);
    return at != 0 && n == at;
}

unsigned long rill__alloc_fail_at(unsigned long n)
{
    unsigned long made = CNT_SWAP(alloc_count, 0);
    CNT_SET(alloc_fail_at, n);
    return made;
}

unsigned long rill__alloc_count(void) { return CNT_GET(alloc_count); }
unsigned long rill__alloc_live(void) { return CNT_GET(alloc_live); }

/* ------------------------------------------------ the freed-while-registered check */

/* Every block starts with its size, so a free knows the range it gives back. */
typedef union {
    size_t size;
    /* cppcheck-suppress unusedStructMember */
    long double ld;     /* the header keeps the strictest alignment of malloc's blocks */
    /* cppcheck-suppress unusedStructMember */
    void *p;
} header;

#ifdef RILL_DEBUG
static int check_on = 1;
#else
static int check_on;
#endif
static unsigned long violations;
static int abort_on_violation = 1;
static pthread_mutex_t loops_mu = PTHREAD_MUTEX_INITIALIZER;
static rill__list live_loops = { &live_loops, &live_loops };

void rill__debug_set(int on, int abort_on)
{
    check_on = on;
    abort_on_violation = abort_on;
}

unsigned long rill__debug_violations(void) { return CNT_GET(violations); }

void rill__debug_loop_add(rill_loop *loop)
{
    pthread_mutex_lock(&loops_mu);
    rill__list_push_back(&live_loops, &loop->debug_node);
    pthread_mutex_unlock(&loops_mu);
}

void rill__debug_loop_remove(rill_loop *loop)
{
    pthread_mutex_lock(&loops_mu);
    if (rill__list_linked(&loop->debug_node))
        rill__list_unlink(&loop->debug_node);
    pthread_mutex_unlock(&loops_mu);
}

static int inside(const void *obj, const char *lo, size_t n)
{
    const char *o = obj;
    return o >= lo && o < lo + n;
}

static void violation(const char *what, const void *obj, const void *block, size_t n)
{
    CNT_ADD(violations, 1);
    fprintf(stderr, "rill: freeing %zu bytes at %p that hold %s at %p\n", n, block, what, obj);
    if (abort_on_violation)
        abort();
}

/* Every armed timer under t (the heap's depth is log2 of its size). */
static void check_timers(const rill_timer *t, const void *block, size_t n)
{
    if (t == NULL)
        return;
    if (inside(t, block, n))
        violation("an armed timer", t, block, n);
    check_timers(t->heap_left, block, n);
    check_timers(t->heap_right, block, n);
}

/* O(watchers + timers) of every live loop: debug builds and tests only. */
void rill__debug_check_range(const void *block, size_t n)
{
    rill__list *it;
    size_t i;

    if (!check_on || block == NULL)
        return;
    pthread_mutex_lock(&loops_mu);
    for (it = live_loops.next; it != &live_loops; it = it->next) {
        rill_loop *loop = rill__container_of(it, rill_loop, debug_node);
        for (i = 0; i < loop->nslots; i++)
            if (loop->slots[i].io != NULL && inside(loop->slots[i].io, block, n))
                violation("a registered watcher", loop->slots[i].io, block, n);
        check_timers(loop->timer_min, block, n);
    }
    pthread_mutex_unlock(&loops_mu);
}

/* ------------------------------------------------------------ the wrappers */

static void *counted(header *h, size_t n)
{
    if (h == NULL)
        return NULL;
    CNT_ADD(alloc_live, 1);
    h->size = n;
    return h + 1;
}

void *rill__malloc(size_t n)
{
    if (should_fail() || n > (size_t)-1 - sizeof(header))
        return NULL;
    return counted(malloc(sizeof(header) + n), n);
}

void *rill__calloc(size_t n, size_t size)
{
    void *p;
    if (size != 0 && n > ((size_t)-1 - sizeof(header)) / size) {
        (void)should_fail();
        return NULL;
    }
    if ((p = rill__malloc(n * size)) != NULL)
        memset(p, 0, n * size);
    return p;
}

void *rill__realloc(void *p, size_t n)
{
    header *h, *q;
    if (p == NULL)
        return rill__malloc(n);
    if (should_fail() || n > (size_t)-1 - sizeof(header))
        return NULL;
    h = (header *)p - 1;
    /* A block that moves must not hold what the loop points to. */
    rill__debug_check_range(p, h->size);
    if ((q = realloc(h, sizeof(header) + n)) == NULL)
        return NULL;
    q->size = n;
    return q + 1;
}

void rill__free(void *p)
{
    header *h;
    if (p == NULL)
        return;
    h = (header *)p - 1;
    rill__debug_check_range(p, h->size);
    CNT_ADD(alloc_live, (unsigned long)-1);
    free(h);
}

char *rill__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = rill__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
