/* fuzz_connect: Happy Eyeballs in virtual time (tests/support/netsim.h) with every choice
   from the input: rill_connect("netsim.invalid") where a hooked resolver answers AAAA and
   A with 1-16 addresses, each of which connects, refuses or hangs after its own delay (or
   at once, inside connect()), a socket() that fails with EMFILE, the attempt delay, the
   total timeout, a cancel from a timer or from on_socket, and what the callback does with
   the stream (abort, write then abort, write then a graceful close).

   Input: [flags][choice...]
     flags  bit 0 set: strict (both answers at the start, A then AAAA; the attempt order and
            spacing are then checked exactly); clear: the answer times and the socket()
            failure come from the input too
     choice each next byte picks the next choice (tests/support/netsim_scenario.c, in its
            order), modulo the number of options; past the end every choice is 0.

   Properties (tests/support/netsim_scenario.c), any violation aborts: exactly one callback;
   RILL_ECANCELED after a cancel; the stream's descriptor is a connected attempt, the first
   to connect, and what the stream writes reaches its peer; every other descriptor closed at
   the callback and none leaked after rill_loop_free() == 0; when strict, IPv6 first and the
   families interleaved, each attempt the attempt delay after the previous unless one failed
   then, a failure starting the next address at once. */
#include "fuzz_common.h"
#include "../support/netsim_scenario.h"

#include <stdio.h>

static unsigned next_byte(void *ctx, unsigned bound)
{
    fz_in *in = ctx;
    unsigned v = fz_u8(in);
    /* Delays need more than 256 values: a second byte widens large bounds. */
    if (bound > 256)
        v = v << 8 | fz_u8(in);
    return bound ? v % bound : 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in;
    netsim_choices c;
    char why[256];

    in.p = data;
    in.n = size;
    c.next = next_byte;
    c.ctx = &in;
    c.strict = fz_u8(&in) & 1;
    if (netsim_scenario(&c, why, sizeof why) != 0) {
        fprintf(stderr, "fuzz_connect: %s\n", why);
        fz_fail(__FILE__, __LINE__, why);
    }
    return 0;
}
