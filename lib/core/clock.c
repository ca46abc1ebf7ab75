/* [core] The monotonic clock every timer and the loop's cached time read; a test's
   hooks (lib/core/syshooks.h) can replace it with virtual time. */
#include "config.h"
#include "rill_private.h"
#include "syshooks.h"

#include <time.h>
#include <sys/time.h>

uint64_t rill__clock_ms(void)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    if (h != NULL && h->clock_ms != NULL)
        return h->clock_ms();
#if defined(HAVE_CLOCK_GETTIME) && defined(CLOCK_MONOTONIC)
    {
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
            return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    }
#endif
    {
        /* Fallback: wall-clock time, which can jump; only where no monotonic clock exists. */
        struct timeval tv;
        gettimeofday(&tv, NULL);
        return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
    }
}

void rill__update_time(rill_loop *loop) { loop->now = rill__clock_ms(); }
uint64_t rill_loop_now(const rill_loop *loop) { return loop->now; }
