/* [stream] Byte buffers and the separator scanner (pure: testable without sockets). */
#include "rill_private.h"
#include "buf.h"

#include <stdint.h>
#include <string.h>

void rill__buf_init(rill__buf *b)
{
    b->data = NULL;
    b->start = b->len = b->cap = 0;
}

void rill__buf_free(rill__buf *b)
{
    rill__free(b->data);
    rill__buf_init(b);
}

char *rill__buf_space(rill__buf *b, size_t want, size_t *avail)
{
    size_t tail = b->cap - b->start - b->len;

    if (tail < want) {
        if (b->cap - b->len >= want && b->start > 0) {
            memmove(b->data, b->data + b->start, b->len);
            b->start = 0;
        } else {
            size_t cap = b->cap ? b->cap : 1024;
            char *d;
            /* A size that cannot be represented would make the doubling wrap to 0 and spin. */
            if (want > SIZE_MAX - b->len)
                return NULL;
            while (cap - b->len < want) {
                if (cap > SIZE_MAX / 2)
                    return NULL;
                cap *= 2;
            }
            if (b->start > 0) {
                memmove(b->data, b->data + b->start, b->len);
                b->start = 0;
            }
            d = rill__realloc(b->data, cap);
            if (d == NULL)
                return NULL;
            b->data = d;
            b->cap = cap;
        }
        tail = b->cap - b->start - b->len;
    }
    *avail = tail;
    return b->data + b->start + b->len;
}

void rill__buf_commit(rill__buf *b, size_t n) { b->len += n; }

int rill__buf_append(rill__buf *b, const void *p, size_t n)
{
    size_t avail;
    char *dst;
    if (n == 0)
        return 0;
    if ((dst = rill__buf_space(b, n, &avail)) == NULL)
        return RILL_ENOMEM;
    memcpy(dst, p, n);
    b->len += n;
    return 0;
}

void rill__buf_consume(rill__buf *b, size_t n)
{
    if (n >= b->len) {
        b->start = 0;   /* the bytes themselves are left in place */
        b->len = 0;
    } else {
        b->start += n;
        b->len -= n;
    }
}

void rill__buf_trim(rill__buf *b, size_t keep)
{
    if (b->len == 0 && b->cap > keep)
        rill__buf_free(b);
}

int rill__scan_sep(const char *p, size_t len, const char *sep, size_t seplen, size_t limit,
                   size_t *offset, size_t *pos)
{
    size_t off = *offset;

    if (off <= len && len - off >= seplen) {
        const char *hit = NULL, *q = p + off, *end = p + len - seplen + 1;
        /* memchr finds candidates for the first byte; memcmp confirms. */
        while (q < end && (q = memchr(q, (unsigned char)sep[0], (size_t)(end - q))) != NULL) {
            if (memcmp(q, sep, seplen) == 0) {
                hit = q;
                break;
            }
            q++;
        }
        if (hit != NULL) {
            *pos = (size_t)(hit - p);
            return *pos > limit ? RILL__SCAN_LIMIT : RILL__SCAN_FOUND;
        }
        /* The next search restarts where a separator could still begin. */
        off = len + 1 - seplen;
        *offset = off;
        if (off > limit) {
            *pos = off;
            return RILL__SCAN_LIMIT;
        }
    }
    return RILL__SCAN_MORE;
}
