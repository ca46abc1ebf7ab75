/* [core] Text into a caller's buffer, with the one truncation rule every
   get_extra_info and format call follows: all of it, or RILL_ENOBUFS and "". */
#include "rill_private.h"

#include <string.h>

/* Copies text into buf: its length, or RILL_ENOBUFS with buf set to "". */
int rill__put_text(char *buf, size_t buflen, const char *text)
{
    size_t n = strlen(text);
    if (buf == NULL || n >= buflen) {
        if (buf != NULL && buflen > 0)
            buf[0] = '\0';
        return RILL_ENOBUFS;
    }
    memcpy(buf, text, n + 1);
    return (int)n;
}
