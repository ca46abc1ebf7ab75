/* Allocation wrappers: one place to count allocations and to make one fail,
   so tests can walk a failure over every allocation site. */
#include "rill_private.h"

#include <stdlib.h>
#include <string.h>

/* Test-only hook state; production code never sets it. */
static unsigned long alloc_count;
static unsigned long alloc_fail_at;
static unsigned long alloc_live;      /* made and not yet freed: tests find leaks with it */

static int should_fail(void)
{
    alloc_count++;
    return alloc_fail_at != 0 && alloc_count == alloc_fail_at;
}

unsigned long rill__alloc_fail_at(unsigned long n)
{
    unsigned long made = alloc_count;
    alloc_count = 0;
    alloc_fail_at = n;
    return made;
}

unsigned long rill__alloc_count(void) { return alloc_count; }
unsigned long rill__alloc_live(void) { return alloc_live; }

static void *counted(void *p)
{
    if (p != NULL)
        alloc_live++;
    return p;
}

void *rill__malloc(size_t n) { return should_fail() ? NULL : counted(malloc(n ? n : 1)); }
void *rill__calloc(size_t n, size_t size) { return should_fail() ? NULL : counted(calloc(n ? n : 1, size ? size : 1)); }

void *rill__realloc(void *p, size_t n)
{
    void *q;
    if (should_fail())
        return NULL;
    q = realloc(p, n ? n : 1);
    return p == NULL ? counted(q) : q;
}

void rill__free(void *p)
{
    if (p != NULL)
        alloc_live--;
    free(p);
}

char *rill__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = rill__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
