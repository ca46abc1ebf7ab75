/* sim_connect: randomized, model-based Happy Eyeballs in virtual time (tests/support/netsim.c).
   Each seed builds one scenario (1-16 addresses of both families, each connecting, refusing or
   hanging after its own delay, an attempt delay, a total timeout, a cancel from a timer or
   from on_socket, what the callback does with the stream) and checks it against RFC 8305's
   rules (tests/support/netsim_scenario.c). A failure prints its seed; RILL_SIM_SEED=N runs
   that one seed alone (with RILL_SIM_LOOSE=1 for the last test's seeds: answers at scripted
   times and failing socket() calls, where only the order-free rules are checked),
   RILL_SIM_VERBOSE=1 prints each seed before it runs (for a crash). */
#include "support/testutil.h"
#include "support/netsim_scenario.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEEDS_PER_TEST 2500u

static unsigned long current_seed;

/* splitmix64: every seed gives an independent stream of choices. */
static unsigned next_choice(void *ctx, unsigned bound)
{
    uint64_t *s = ctx, z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return bound ? (unsigned)(z % bound) : 0;
}

/* Under a sanitizer a crash ends the process before CUnit reports: name the seed then. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__) || defined(RILL_SIM_SANITIZER)
#define SIM_DEATH_CALLBACK 1
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define SIM_DEATH_CALLBACK 1
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));
#endif
#endif
#ifdef SIM_DEATH_CALLBACK
static void on_death(void)
{
    fprintf(stderr, "sim_connect: crashed in seed %lu (replay: RILL_SIM_SEED=%lu tests/run_tests sim_connect)\n",
            current_seed, current_seed);
}
#endif

static int run_seed(unsigned long seed, int strict)
{
    uint64_t state = seed;
    netsim_choices c;
    char why[256];

    c.next = next_choice;
    c.ctx = &state;
    c.strict = strict;
    current_seed = seed;
    if (getenv("RILL_SIM_VERBOSE") != NULL)
        fprintf(stderr, "sim_connect: seed %lu\n", seed);
    if (netsim_scenario(&c, why, sizeof why) == 0)
        return 0;
    fprintf(stderr, "sim_connect: seed %lu: %s (replay: RILL_SIM_SEED=%lu tests/run_tests sim_connect)\n",
            seed, why, seed);
    return -1;
}

static void run_range(unsigned k)
{
    const char *one = getenv("RILL_SIM_SEED");
    unsigned long s;

#ifdef SIM_DEATH_CALLBACK
    if (__sanitizer_set_death_callback != NULL)
        __sanitizer_set_death_callback(on_death);
#endif
    if (one != NULL) {
        if (k == 0)
            CU_ASSERT_EQUAL(run_seed(strtoul(one, NULL, 10), getenv("RILL_SIM_LOOSE") == NULL), 0);
        return;
    }
    for (s = k * SEEDS_PER_TEST; s < (k + 1) * SEEDS_PER_TEST; s++)
        if (run_seed(s, k < 4) != 0) {
            CU_FAIL("a simulated Happy Eyeballs scenario broke a rule (seed on stderr)");
            return;
        }
}

static void test_seeds_0(void) { run_range(0); }
static void test_seeds_1(void) { run_range(1); }
static void test_seeds_2(void) { run_range(2); }
static void test_seeds_3(void) { run_range(3); }
static void test_seeds_4(void) { run_range(4); }

int test_sim_connect_register(void)
{
    static const test_case cases[] = {
        { "seeds 0-2499", test_seeds_0 },
        { "seeds 2500-4999", test_seeds_1 },
        { "seeds 5000-7499", test_seeds_2 },
        { "seeds 7500-9999", test_seeds_3 },
        { "seeds 10000-12499, answers at random times, socket() failures", test_seeds_4 },
        { NULL, NULL }
    };
    return test_add_suite("sim_connect", cases);
}
