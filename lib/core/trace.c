/* [core] RILL_TRACE=1: every state transition of every machine, one line each. */
#include "rill_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rill__trace_on;

static pthread_once_t trace_once = PTHREAD_ONCE_INIT;

static void trace_read_env(void)
{
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): read once (pthread_once); rill never sets the environment */
    const char *v = getenv("RILL_TRACE");
    rill__trace_on = v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

void rill__trace_init(void) { pthread_once(&trace_once, trace_read_env); }

void rill__trace(const char *object, unsigned long id, const char *machine,
                 const char *from, const char *to, const char *fmt, ...)
{
    char detail[256];
    va_list ap;

    detail[0] = '\0';
    if (fmt != NULL && *fmt != '\0') {
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    /* One fprintf per line so lines from several loops do not interleave. */
    fprintf(stderr, "%s#%lu %s %s -> %s%s%s\n", object, id, machine, from, to,
            detail[0] ? " " : "", detail);
}
