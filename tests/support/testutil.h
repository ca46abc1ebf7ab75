/* Shared helpers of the CUnit suites. */
#ifndef RILL_TESTUTIL_H
#define RILL_TESTUTIL_H

#include <CUnit/CUnit.h>
#include "rill.h"

/* Every suite file defines one registration function, listed in run_tests.c. */
typedef int (*test_register_fn)(void);

/* Adds a suite named name with the given NULL-terminated tests; 0 or -1. */
typedef struct { const char *name; void (*fn)(void); } test_case;
int test_add_suite(const char *name, const test_case *cases);

/* Runs the loop until *flag becomes non-zero or ms milliseconds pass; returns *flag. */
int test_run_until(rill_loop *loop, const int *flag, int ms);
/* Closes-and-frees check at the end of a loop test: runs the loop until idle (bounded)
   and asserts rill_loop_free() returns 0. */
void test_loop_finish(rill_loop *loop);
/* A loop with a given backend; asserts non-NULL. */
rill_loop *test_loop_new(int backend);
/* 1 when this build has the backend; else 0 and the calling test passes as skipped.
   A select-only build (configure --without-poll) has neither poll nor epoll, and
   no poll() flavour of embedding either. */
int test_have_backend(int backend);
/* Monotonic ms, for generous bounds. */
uint64_t test_now_ms(void);

#endif
