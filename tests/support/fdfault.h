/* Descriptor faults through rill's hooks (lib/core/syshooks.h): walks that fail
   each fcntl of a call in turn, for lib/io/fd.c's helpers and lib/proc's spawns.
   No CUnit here: the walk reports, the test asserts. */
#ifndef RILL_TEST_FDFAULT_H
#define RILL_TEST_FDFAULT_H

#include "syshooks.h"

/* Runs attempt(ctx) with its k-th fcntl failing (EMFILE), k = 1, 2, ..., until an
   attempt returns 0 (at most 100). Hooks: base's, with fcntl replaced (NULL: none
   else). low: 0 and 1 are closed during each attempt, so new descriptors land there.
   Returns how many attempts failed; -1 when one returned anything but -EMFILE or
   left the count of open descriptors changed, or none succeeded. */
int test_fcntl_walk(const rill__sys_hooks *base, int low, int (*attempt)(void *ctx), void *ctx);

#endif
