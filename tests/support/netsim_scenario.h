/* One randomized Happy Eyeballs scenario over netsim, checked against RFC 8305's rules.
   Shared by the sim_connect suite (choices from a seeded generator) and fuzz_connect
   (choices from the fuzzer's bytes). */
#ifndef RILL_NETSIM_SCENARIO_H
#define RILL_NETSIM_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

/* Where the scenario's choices come from: next(ctx, bound) returns a number below bound. */
typedef struct netsim_choices {
    unsigned (*next)(void *ctx, unsigned bound);
    void *ctx;
    /* 1: both answers at the start (A, then AAAA) (the attempt order and spacing are then checked
       exactly); 0: the choices also script answer times and socket() failures. */
    int strict;
} netsim_choices;

/* Builds, runs and checks one scenario: 0, or -1 with the first broken rule in why. */
int netsim_scenario(const netsim_choices *c, char *why, size_t cap);

#endif
