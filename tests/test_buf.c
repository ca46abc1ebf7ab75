/* The byte buffer and the separator scanner: pure functions, tested without
   sockets. The scanner is checked against a naive port of asyncio's readuntil
   loop, and behind guard pages to prove which bytes it may touch. */
#include "support/testutil.h"
#include "rill_private.h"
#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

/* ------------------------------------------------------------ scanner */

static int scan(const char *p, size_t len, const char *sep, size_t limit, size_t *offset, size_t *pos)
{
    return rill__scan_sep(p, len, sep, strlen(sep), limit, offset, pos);
}

static void test_scan_found(void)
{
    size_t off = 0, pos = 99;
    CU_ASSERT_EQUAL(scan("abc\ndef\n", 8, "\n", 100, &off, &pos), RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, 3);              /* the first separator, not the last */
    off = 0;
    CU_ASSERT_EQUAL(scan("\n", 1, "\n", 100, &off, &pos), RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, 0);
    off = 0;
    CU_ASSERT_EQUAL(scan("GET / HTTP/1.0\r\nA: b\r\n\r\nbody", 28, "\r\n\r\n", 100, &off, &pos), RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, 20);
    /* A first byte that repeats must not hide the match starting one later. */
    off = 0;
    CU_ASSERT_EQUAL(scan("\r\r\n\r\n", 5, "\r\n\r\n", 100, &off, &pos), RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, 1);
    off = 0;
    CU_ASSERT_EQUAL(scan("aaab", 4, "aab", 100, &off, &pos), RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, 1);
    /* Separator bytes embedded among NULs. */
    off = 0;
    CU_ASSERT_EQUAL(rill__scan_sep("\0\0x\0y", 5, "\0y", 2, 100, &off, &pos), RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, 3);
}

static void test_scan_more(void)
{
    size_t off = 0, pos = 77;
    CU_ASSERT_EQUAL(scan("abc", 3, "\n", 100, &off, &pos), RILL__SCAN_MORE);
    CU_ASSERT_EQUAL(off, 3);
    CU_ASSERT_EQUAL(pos, 77);             /* untouched unless found or limit */
    off = 0;
    CU_ASSERT_EQUAL(scan("abc\r\n\r", 6, "\r\n\r\n", 100, &off, &pos), RILL__SCAN_MORE);
    /* Only the last seplen - 1 bytes can still begin a separator. */
    CU_ASSERT_EQUAL(off, 3);
    off = 0;
    CU_ASSERT_EQUAL(scan("", 0, "\n", 100, &off, &pos), RILL__SCAN_MORE);
    CU_ASSERT_EQUAL(off, 0);
}

static void test_scan_seplen_over_len(void)
{
    size_t off = 0, pos = 5;
    /* asyncio does not even check the limit before seplen bytes are there. */
    CU_ASSERT_EQUAL(scan("ab", 2, "\r\n\r\n", 0, &off, &pos), RILL__SCAN_MORE);
    CU_ASSERT_EQUAL(off, 0);
    CU_ASSERT_EQUAL(scan("ab\r", 3, "\r\n\r\n", 0, &off, &pos), RILL__SCAN_MORE);
    CU_ASSERT_EQUAL(off, 0);
    CU_ASSERT_EQUAL(scan("", 0, "\r\n\r\n", 0, &off, &pos), RILL__SCAN_MORE);
    CU_ASSERT_EQUAL(off, 0);
    CU_ASSERT_EQUAL(pos, 5);
    /* Exactly seplen bytes: scanned, and the limit applies. */
    CU_ASSERT_EQUAL(scan("abcd", 4, "\r\n\r\n", 0, &off, &pos), RILL__SCAN_LIMIT);
    CU_ASSERT_EQUAL(pos, 1);
}

static void test_scan_limit_not_found(void)
{
    size_t off = 0, pos = 0;
    /* consumed = len + 1 - seplen, an error only once it exceeds the limit */
    CU_ASSERT_EQUAL(scan("1234567", 7, "\n", 7, &off, &pos), RILL__SCAN_MORE);
    CU_ASSERT_EQUAL(off, 7);
    CU_ASSERT_EQUAL(scan("12345678", 8, "\n", 7, &off, &pos), RILL__SCAN_LIMIT);
    CU_ASSERT_EQUAL(pos, 8);
    off = 0;
    CU_ASSERT_EQUAL(scan("abcdefghij", 10, "\n", 7, &off, &pos), RILL__SCAN_LIMIT);
    CU_ASSERT_EQUAL(pos, 10);
    off = 0;
    CU_ASSERT_EQUAL(scan("abcdefghij", 10, "\r\n\r\n", 7, &off, &pos), RILL__SCAN_MORE);
    CU_ASSERT_EQUAL(off, 7);
    off = 0;
    CU_ASSERT_EQUAL(scan("abcdefghijk", 11, "\r\n\r\n", 7, &off, &pos), RILL__SCAN_LIMIT);
    CU_ASSERT_EQUAL(pos, 8);
    off = 0;
    CU_ASSERT_EQUAL(scan("abcdefghijkl", 12, "\r\n\r\n", 7, &off, &pos), RILL__SCAN_LIMIT);
    CU_ASSERT_EQUAL(pos, 9);
    /* A partial separator at the end does not save it. */
    off = 0;
    CU_ASSERT_EQUAL(scan("abcdefghi\r\n\r", 12, "\r\n\r\n", 7, &off, &pos), RILL__SCAN_LIMIT);
    CU_ASSERT_EQUAL(pos, 9);
}

static void test_scan_limit_found_beyond(void)
{
    size_t off = 0, pos = 0;
    CU_ASSERT_EQUAL(scan("1234567\n", 8, "\n", 7, &off, &pos), RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, 7);
    off = 0;
    CU_ASSERT_EQUAL(scan("12345678\n", 9, "\n", 7, &off, &pos), RILL__SCAN_LIMIT);
    CU_ASSERT_EQUAL(pos, 8);              /* consumed = the separator's offset */
    off = 0;
    CU_ASSERT_EQUAL(scan("1234567\r\n\r\n", 11, "\r\n\r\n", 7, &off, &pos), RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, 7);
    off = 0;
    CU_ASSERT_EQUAL(scan("12345678\r\n\r\n", 12, "\r\n\r\n", 7, &off, &pos), RILL__SCAN_LIMIT);
    CU_ASSERT_EQUAL(pos, 8);
    off = 0;
    CU_ASSERT_EQUAL(scan("\n", 1, "\n", 0, &off, &pos), RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, 0);
    off = 0;
    CU_ASSERT_EQUAL(scan("a\n", 2, "\n", 0, &off, &pos), RILL__SCAN_LIMIT);
    CU_ASSERT_EQUAL(pos, 1);
}

static void test_scan_split_resumes(void)
{
    static const char whole[] = "HEAD / HTTP/1.1\r\nHost: h\r\n\r\nrest";
    size_t off = 0, pos = 0, len;
    int rc = RILL__SCAN_MORE;
    size_t expect = (size_t)(strstr(whole, "\r\n\r\n") - whole);

    /* Byte by byte: every prefix is scanned with the offset carried over. */
    for (len = 0; len <= sizeof whole - 1 && rc == RILL__SCAN_MORE; len++) {
        size_t before = off;
        rc = scan(whole, len, "\r\n\r\n", 1000, &off, &pos);
        CU_ASSERT(off >= before);         /* never moves back */
        if (rc == RILL__SCAN_MORE && len >= 4)
            CU_ASSERT_EQUAL(off, len - 3);
    }
    CU_ASSERT_EQUAL(rc, RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, expect);
    CU_ASSERT_EQUAL(len - 1, expect + 4); /* found as soon as its last byte arrived */

    /* Split in the middle of the separator: "\r\n" then "\r\n". */
    off = 0;
    CU_ASSERT_EQUAL(scan("ab\r\n", 4, "\r\n\r\n", 1000, &off, &pos), RILL__SCAN_MORE);
    CU_ASSERT_EQUAL(off, 1);
    CU_ASSERT_EQUAL(scan("ab\r\n\r\n", 6, "\r\n\r\n", 1000, &off, &pos), RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, 2);
}

static void test_scan_offset_starts_search(void)
{
    size_t off = 2, pos = 0;
    /* Bytes before the offset were searched already: a separator there is not seen again. */
    CU_ASSERT_EQUAL(scan("a\nbc", 4, "\n", 100, &off, &pos), RILL__SCAN_MORE);
    CU_ASSERT_EQUAL(off, 4);
    off = 1;
    CU_ASSERT_EQUAL(scan("\n\n", 2, "\n", 100, &off, &pos), RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, 1);
    /* An offset already past what a separator could fill: no scan, no limit check. */
    off = 3;
    CU_ASSERT_EQUAL(scan("abc\r\n\r", 6, "\r\n\r\n", 0, &off, &pos), RILL__SCAN_MORE);
    CU_ASSERT_EQUAL(off, 3);
}

/* p[0..off) sits on an inaccessible page and p[len] starts another one: the
   scanner faults if it reads a byte it was told was already searched, or any
   byte past the data. */
typedef struct {
    char *map;
    size_t pg;
} guard;

static char *guard_place(guard *g, size_t len, size_t off)
{
    char *mid;
    g->pg = (size_t)sysconf(_SC_PAGESIZE);
    g->map = mmap(NULL, 3 * g->pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(g->map != MAP_FAILED);
    CU_ASSERT_FATAL(off <= g->pg && len - off <= g->pg);
    mid = g->map + g->pg;
    CU_ASSERT_FATAL(mprotect(g->map, g->pg, PROT_NONE) == 0);
    CU_ASSERT_FATAL(mprotect(mid + g->pg, g->pg, PROT_NONE) == 0);
    return mid + g->pg - len;   /* p; p + off is inside the readable page */
}

static void guard_free(guard *g)
{
    munmap(g->map, 3 * g->pg);
}

static void test_scan_guard_pages(void)
{
    guard g;
    size_t len, off, pos = 0;
    char *p;

    /* Resume at offset 100 of a page-long tail: the separator is the very last byte. */
    p = guard_place(&g, 100 + (size_t)sysconf(_SC_PAGESIZE), 100);
    len = g.pg + 100;
    memset(p + 100, 'a', len - 100);
    p[len - 1] = '\n';
    off = 100;
    CU_ASSERT_EQUAL(scan(p, len, "\n", (size_t)-1, &off, &pos), RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, len - 1);
    guard_free(&g);

    /* Not found: the 4-byte search ends exactly at the page end. */
    len = (size_t)sysconf(_SC_PAGESIZE);
    p = guard_place(&g, len, 0);
    memset(p, '\r', len);
    p[len - 1] = '\n';
    off = 0;
    CU_ASSERT_EQUAL(scan(p, len, "\r\n\r\n", (size_t)-1, &off, &pos), RILL__SCAN_MORE);
    CU_ASSERT_EQUAL(off, len - 3);
    guard_free(&g);

    /* A resumed search reads only the last seplen - 1 old bytes and the new ones:
       first 3 readable bytes (nothing to decide), then one more arrives. */
    p = guard_place(&g, 10, 7);
    memcpy(p + 7, "\r\n\r", 3);
    off = 7;
    CU_ASSERT_EQUAL(scan(p, 10, "\r\n\r\n", (size_t)-1, &off, &pos), RILL__SCAN_MORE);
    CU_ASSERT_EQUAL(off, 7);
    guard_free(&g);
    p = guard_place(&g, 11, 7);
    memcpy(p + 7, "\r\n\r\n", 4);
    off = 7;
    CU_ASSERT_EQUAL(scan(p, 11, "\r\n\r\n", (size_t)-1, &off, &pos), RILL__SCAN_FOUND);
    CU_ASSERT_EQUAL(pos, 7);
    guard_free(&g);
}

/* Naive port of asyncio's readuntil search step (Lib/asyncio/streams.py 3.8b). */
static int ref_scan(const char *p, size_t len, const char *sep, size_t seplen, size_t limit,
                    size_t *offset, size_t *pos)
{
    long buflen = (long)len, off = (long)*offset, i;
    if (buflen - off >= (long)seplen) {
        for (i = off; i + (long)seplen <= buflen; i++)
            if (memcmp(p + i, sep, seplen) == 0) {
                *pos = (size_t)i;
                return (size_t)i > limit ? RILL__SCAN_LIMIT : RILL__SCAN_FOUND;
            }
        off = buflen + 1 - (long)seplen;
        *offset = (size_t)off;
        if ((size_t)off > limit) {
            *pos = (size_t)off;
            return RILL__SCAN_LIMIT;
        }
    }
    return RILL__SCAN_MORE;
}

static unsigned long rng_state;
static unsigned long rng(void)
{
    rng_state = rng_state * 6364136223846793005ul + 1442695040888963407ul;
    return (rng_state >> 33) & 0x7fffffff;
}

static void test_scan_random_vs_asyncio(void)
{
    static const char *const seps[] = { "\n", "\r\n", "\r\n\r\n", "aba", "abab", "a", "\r\n\r\n\r\n\r\n\r" };
    static const char alphabet[] = "ab\r\n";
    char buf[64];
    int iter, mismatches = 0, found = 0, limits = 0;

    rng_state = 12345;
    for (iter = 0; iter < 20000; iter++) {
        size_t n = rng() % sizeof buf, i, len = 0, off = 0, roff = 0, pos = 0, rpos = 0;
        const char *sep = seps[rng() % (sizeof seps / sizeof seps[0])];
        size_t seplen = strlen(sep), limit = rng() % 40;
        int rc = RILL__SCAN_MORE, rrc = RILL__SCAN_MORE;

        for (i = 0; i < n; i++)
            buf[i] = alphabet[rng() % 4];
        /* Arrivals of random sizes; both scanners resume with their own offsets. */
        while (rc == RILL__SCAN_MORE && len < n) {
            len += 1 + rng() % 6;
            if (len > n)
                len = n;
            rc = rill__scan_sep(buf, len, sep, seplen, limit, &off, &pos);
            rrc = ref_scan(buf, len, sep, seplen, limit, &roff, &rpos);
            if (rc != rrc || off != roff || (rc != RILL__SCAN_MORE && pos != rpos)) {
                mismatches++;
                break;
            }
        }
        found += rc == RILL__SCAN_FOUND;
        limits += rc == RILL__SCAN_LIMIT;
    }
    CU_ASSERT_EQUAL(mismatches, 0);
    CU_ASSERT(found > 1000);
    CU_ASSERT(limits > 1000);
}

/* ------------------------------------------------------------- buffer */

static void test_buf_space_commit(void)
{
    rill__buf b;
    size_t avail = 0;
    char *p;

    rill__buf_init(&b);
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(b.len, 0);
    p = rill__buf_space(&b, 10, &avail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT(avail >= 10);
    memcpy(p, "hello", 5);
    rill__buf_commit(&b, 5);
    CU_ASSERT_EQUAL(b.len, 5);
    CU_ASSERT(memcmp(rill__buf_head(&b), "hello", 5) == 0);
    /* More room than is there: grows and keeps the bytes. */
    p = rill__buf_space(&b, 100000, &avail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT(avail >= 100000);
    CU_ASSERT(b.cap >= 100005);
    CU_ASSERT(p == rill__buf_head(&b) + 5);
    CU_ASSERT(memcmp(rill__buf_head(&b), "hello", 5) == 0);
    memset(p, 'x', 100000);
    rill__buf_commit(&b, 100000);
    CU_ASSERT_EQUAL(b.len, 100005);
    CU_ASSERT_EQUAL(rill__buf_head(&b)[100004], 'x');
    rill__buf_free(&b);
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(b.cap, 0);
}

static void test_buf_append_consume(void)
{
    rill__buf b;
    const char *old;

    rill__buf_init(&b);
    CU_ASSERT_EQUAL(rill__buf_append(&b, "", 0), 0);
    CU_ASSERT_PTR_NULL(b.data);          /* nothing to hold: no allocation */
    CU_ASSERT_EQUAL(rill__buf_append(&b, "hello ", 6), 0);
    CU_ASSERT_EQUAL(rill__buf_append(&b, "world", 5), 0);
    CU_ASSERT_EQUAL(b.len, 11);
    old = rill__buf_head(&b);
    rill__buf_consume(&b, 6);
    CU_ASSERT_EQUAL(b.len, 5);
    CU_ASSERT(memcmp(rill__buf_head(&b), "world", 5) == 0);
    CU_ASSERT(rill__buf_head(&b) == old + 6);
    /* Consumed bytes stay readable where they were (a read callback's data). */
    CU_ASSERT(memcmp(old, "hello ", 6) == 0);
    rill__buf_consume(&b, 5);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT(memcmp(old, "hello world", 11) == 0);
    /* Over-consuming empties, never underflows. */
    CU_ASSERT_EQUAL(rill__buf_append(&b, "ab", 2), 0);
    rill__buf_consume(&b, 100);
    CU_ASSERT_EQUAL(b.len, 0);
    rill__buf_consume(&b, 1);
    CU_ASSERT_EQUAL(b.len, 0);
    rill__buf_free(&b);
}

static void test_buf_consumed_kept_until_space(void)
{
    rill__buf b;
    size_t avail, cap;
    const char *old;
    char *p;

    rill__buf_init(&b);
    p = rill__buf_space(&b, 16, &avail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    cap = b.cap;
    memset(p, 'a', cap);
    memcpy(p, "0123456789", 10);
    rill__buf_commit(&b, cap);            /* full */
    old = rill__buf_head(&b);
    rill__buf_consume(&b, 10);
    /* Commit and consume never move bytes: only a space/append call may. */
    CU_ASSERT(memcmp(old, "0123456789", 10) == 0);
    CU_ASSERT_EQUAL(b.start, 10);
    /* The room at the front is enough: compaction instead of growth. */
    p = rill__buf_space(&b, 10, &avail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(b.cap, cap);
    CU_ASSERT_EQUAL(b.start, 0);
    CU_ASSERT_EQUAL(avail, 10);
    CU_ASSERT_EQUAL(b.len, cap - 10);
    CU_ASSERT(rill__buf_head(&b)[0] == 'a' && rill__buf_head(&b)[cap - 11] == 'a');
    rill__buf_free(&b);

    /* Growth with consumed bytes at the front keeps exactly the unconsumed ones. */
    rill__buf_init(&b);
    CU_ASSERT_EQUAL(rill__buf_append(&b, "xxxxabcd", 8), 0);
    rill__buf_consume(&b, 4);
    p = rill__buf_space(&b, 1 << 20, &avail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT(avail >= (size_t)1 << 20);
    CU_ASSERT_EQUAL(b.len, 4);
    CU_ASSERT(memcmp(rill__buf_head(&b), "abcd", 4) == 0);
    rill__buf_free(&b);
}

static void test_buf_trim(void)
{
    rill__buf b;
    rill__buf_init(&b);
    CU_ASSERT_EQUAL(rill__buf_append(&b, "abc", 3), 0);
    rill__buf_trim(&b, 0);
    CU_ASSERT_PTR_NOT_NULL(b.data);       /* holds bytes: kept */
    CU_ASSERT_EQUAL(b.len, 3);
    rill__buf_consume(&b, 3);
    rill__buf_trim(&b, b.cap);
    CU_ASSERT_PTR_NOT_NULL(b.data);       /* small enough: kept for reuse */
    rill__buf_trim(&b, b.cap - 1);
    CU_ASSERT_PTR_NULL(b.data);           /* empty and large: given back */
    CU_ASSERT_EQUAL(b.cap, 0);
    CU_ASSERT_EQUAL(b.start, 0);
    CU_ASSERT_EQUAL(rill__buf_append(&b, "again", 5), 0);
    CU_ASSERT(memcmp(rill__buf_head(&b), "again", 5) == 0);
    rill__buf_free(&b);
    rill__buf_trim(&b, 0);                /* on an empty, unallocated buffer */
    CU_ASSERT_PTR_NULL(b.data);
}

static void test_buf_enomem(void)
{
    static char big[100000];
    rill__buf b;
    size_t avail = 0;
    rill__buf_init(&b);
    CU_ASSERT_EQUAL(rill__buf_append(&b, "abc", 3), 0);
    rill__alloc_fail_at(1);
    CU_ASSERT_EQUAL(rill__buf_append(&b, big, sizeof big), RILL_ENOMEM);
    rill__alloc_fail_at(0);
    CU_ASSERT_EQUAL(b.len, 3);
    CU_ASSERT(memcmp(rill__buf_head(&b), "abc", 3) == 0);
    /* A request that cannot be represented fails instead of looping or wrapping. */
    CU_ASSERT_PTR_NULL(rill__buf_space(&b, SIZE_MAX, &avail));
    CU_ASSERT_PTR_NULL(rill__buf_space(&b, SIZE_MAX - 2, &avail));
    CU_ASSERT_PTR_NULL(rill__buf_space(&b, SIZE_MAX / 2 + 2, &avail));
    CU_ASSERT_EQUAL(b.len, 3);
    CU_ASSERT(memcmp(rill__buf_head(&b), "abc", 3) == 0);
    rill__buf_free(&b);
}

static const test_case cases[] = {
    { "scan: found (first separator, repeated first byte, NULs)", test_scan_found },
    { "scan: more, offset at the last seplen-1 bytes", test_scan_more },
    { "scan: seplen > len is neither scanned nor limited", test_scan_seplen_over_len },
    { "scan: limit when not found, consumed = len+1-seplen", test_scan_limit_not_found },
    { "scan: limit when found beyond it, consumed = offset", test_scan_limit_found_beyond },
    { "scan: separator split across calls, offset resumes", test_scan_split_resumes },
    { "scan: the search starts at the offset", test_scan_offset_starts_search },
    { "scan: guard pages around the bytes it may read", test_scan_guard_pages },
    { "scan: 20000 random splits against asyncio's loop", test_scan_random_vs_asyncio },
    { "buf: space and commit, growth keeps bytes", test_buf_space_commit },
    { "buf: append and consume", test_buf_append_consume },
    { "buf: consumed bytes stay until the next space call", test_buf_consumed_kept_until_space },
    { "buf: trim gives back empty large buffers only", test_buf_trim },
    { "buf: out of memory and impossible sizes", test_buf_enomem },
    { NULL, NULL }
};

int test_buf_register(void)
{
    return test_add_suite("buf", cases);
}
