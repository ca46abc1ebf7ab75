/* [stream] The byte buffer of a stream's read and write sides, and the separator scanner. */
#ifndef RILL_BUF_H
#define RILL_BUF_H

#include <stddef.h>

typedef struct rill__buf {
    char *data;
    size_t start;   /* first unconsumed byte */
    size_t len;     /* bytes held from start */
    size_t cap;
} rill__buf;

void rill__buf_init(rill__buf *b);
void rill__buf_free(rill__buf *b);
/* NULL while nothing was ever allocated (NULL + 0 is undefined behaviour in C). */
static inline const char *rill__buf_head(const rill__buf *b) { return b->data != NULL ? b->data + b->start : NULL; }
/* Room for at least want more bytes at the end (moving the held bytes to the
   front when that is enough); *avail gets the room. NULL when out of memory. */
char *rill__buf_space(rill__buf *b, size_t want, size_t *avail);
void rill__buf_commit(rill__buf *b, size_t n);
int  rill__buf_append(rill__buf *b, const void *p, size_t n);
/* Consumed bytes stay where they are until the next space/append call, so a
   callback may still read them: the "valid until the callback returns" rule. */
void rill__buf_consume(rill__buf *b, size_t n);
/* Gives the memory back when empty and larger than keep bytes (idle streams stay small). */
void rill__buf_trim(rill__buf *b, size_t keep);

enum { RILL__SCAN_MORE = 0, RILL__SCAN_FOUND = 1, RILL__SCAN_LIMIT = 2 };
/* asyncio's readuntil search over p[0..len), resuming at *offset (how far earlier
   calls have looked, so bytes are scanned once however they arrive).
   FOUND: *pos is the separator's offset, within limit.
   LIMIT: *pos is asyncio's `consumed` (separator beyond limit, or not found and
          len + 1 - seplen > limit).
   MORE:  not found yet; *offset updated. */
int rill__scan_sep(const char *p, size_t len, const char *sep, size_t seplen, size_t limit,
                   size_t *offset, size_t *pos);

#endif
