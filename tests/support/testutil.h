/* Shared helpers of the CUnit suites. */
#ifndef RILL_TESTUTIL_H
#define RILL_TESTUTIL_H

#include <CUnit/CUnit.h>
#include "rill.h"

#include <sys/types.h>

/* Every suite file defines one registration function, listed in run_tests.c. */
typedef int (*test_register_fn)(void);

/* Adds a suite named name with the given NULL-terminated tests; 0 or -1. */
typedef struct { const char *name; void (*fn)(void); } test_case;
int test_add_suite(const char *name, const test_case *cases);

/* Runs the loop until *flag becomes non-zero or ms milliseconds pass (or
   the loop fails), in slices of at most 20 ms; returns *flag. */
int test_run_until(rill_loop *loop, const int *flag, int ms);
/* The same in slices of slice_ms, for tests that count the loop's polls. */
int test_run_until_every(rill_loop *loop, const int *flag, int ms, int slice_ms);
/* Closes-and-frees check at the end of a loop test: runs the loop until idle (bounded)
   and asserts rill_loop_free() returns 0. */
void test_loop_finish(rill_loop *loop);
/* A loop with a given backend (RILL_BACKEND_AUTO: the one RILL_TEST_BACKEND
   names, else the best), that never asks the system's DNS; asserts non-NULL. */
rill_loop *test_loop_new(int backend);
/* The same loop, NULL when it cannot be made: for the suites that make loops
   while allocations or system calls are made to fail. */
rill_loop *test_loop_try_new(int backend);
/* 1 when this build has the backend; else 0 and the calling test passes as skipped.
   A select-only build (configure --without-poll) has neither poll nor epoll, and
   no poll() flavour of embedding either. */
int test_have_backend(int backend);
/* Waits for a child at most ms, then kills it by its PID; its exit code, or -1
   when it was killed or did not end. */
int test_reap(pid_t pid, int ms);
/* Runs fn in a child (alarmed after ms, so the inherited watchdog ends a stuck
   one) and asserts it returned 0; else prints name and the step it returned. */
void test_in_child(const char *name, int (*fn)(void), int ms);

/* The TLS test certificates (support/certs.h); NULL after the calling test
   passed as skipped (no openssl command) or failed (they could not be made). */
struct test_certs;
const struct test_certs *test_certs_or_skip(void);
/* Monotonic ms, for generous bounds. */
uint64_t test_now_ms(void);

/* Turns the loop in 10 ms slices until cond holds or ms pass. */
#define TEST_RUN_UNTIL(loop, cond, ms) do {                             \
        uint64_t end_ = test_now_ms() + (uint64_t)(ms);                 \
        while (!(cond) && test_now_ms() < end_)                         \
            rill_loop_run_once((loop), 10);                             \
    } while (0)

/* Every rill allocation made since live0 (rill__alloc_live()) was taken has
   been freed; the line of the caller is printed when not. */
void test_check_live(unsigned long live0, int line);
#define TEST_CHECK_LIVE(live0) test_check_live((live0), __LINE__)

#endif
