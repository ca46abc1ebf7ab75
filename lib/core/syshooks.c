/* [core] The one pointer every system call wrapper of syshooks.h reads: NULL, the
   real calls, unless a test installed hooks. */
#include "rill_private.h"
#include "syshooks.h"

const rill__sys_hooks *rill__sys_hooks_cur;

void rill__sys_hooks_set(const rill__sys_hooks *h) { rill__sys_hooks_cur = h; }
