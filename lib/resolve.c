/* c-ares glue (filled in by the connect work). */
#include "rill_private.h"

void rill__resolver_destroy(rill_loop *loop)
{
    (void)loop;
}
