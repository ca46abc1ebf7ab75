/* Registers every suite and runs them with CUnit's basic interface.
   Usage: run_tests [SUITE ...]   (no argument: all suites)
   RILL_TEST_BACKEND=select runs the loop-driven suites on the select backend. */
#include "support/testutil.h"
#include "support/streams.h"
#include "rill_private.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <CUnit/Basic.h>

int test_error_register(void);
int test_connect_register(void);
int test_connect_safety_register(void);
int test_loop_register(void);
int test_loop_safety_register(void);
int test_embed_register(void);
int test_resolve_register(void);
int test_buf_register(void);
int test_read_register(void);
int test_write_register(void);
int test_close_register(void);
int test_server_register(void);
int test_tls_register(void);
int test_tls_errors_register(void);
int test_faults_register(void);
int test_hostile_register(void);
int test_sim_connect_register(void);
int test_connect_errors_register(void);
int test_backends_register(void);
int test_loop_errors_register(void);
int test_server_errors_register(void);
int test_stream_errors_register(void);
int test_lifecycle_register(void);
int test_process_register(void);

static const test_register_fn suites[] = {
    test_error_register,
    test_connect_register,
    test_connect_safety_register,
    test_loop_register,
    test_loop_safety_register,
    test_embed_register,
    test_resolve_register,
    test_buf_register,
    test_read_register,
    test_write_register,
    test_close_register,
    test_server_register,
    test_tls_register,
    test_tls_errors_register,
    test_faults_register,
    test_hostile_register,
    test_sim_connect_register,
    test_connect_errors_register,
    test_backends_register,
    test_loop_errors_register,
    test_server_errors_register,
    test_stream_errors_register,
    test_lifecycle_register,
    test_process_register,
};

/* Watchdog: a test that hangs fails the whole run loudly instead of stalling CI. */
static volatile const char *current_test = "?";
static void on_alarm(int sig)
{
    static const char msg[] = "\nwatchdog: test took longer than 60 s, aborting\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0) { /* nothing to do */ }
    _exit(3);
}

static void test_start(const CU_pTest t, const CU_pSuite s)
{
    (void)s;
    current_test = t->pName;
    test_sync_reset();
    alarm(60);
}

int main(int argc, char **argv)
{
    size_t i;
    int failed, k;

    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_DFL); /* prove rill never needs SIGPIPE ignored */
    rill__debug_set(1, 1);    /* no free of a registered watcher or armed timer goes unseen */
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    for (i = 0; i < sizeof suites / sizeof suites[0]; i++)
        if (suites[i]() != 0) {
            fprintf(stderr, "cannot register suite %zu\n", i);
            return 2;
        }
    CU_set_test_start_handler(test_start);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    if (argc > 1) {
        for (k = 1; k < argc; k++) {
            CU_pSuite s = CU_get_suite(argv[k]);
            if (s == NULL) {
                fprintf(stderr, "no suite named %s\n", argv[k]);
                return 2;
            }
            CU_basic_run_suite(s);
        }
    } else {
        CU_basic_run_tests();
    }
    failed = (int)(CU_get_number_of_failures() + CU_get_number_of_tests_failed());
    if (CU_get_number_of_tests_run() == 0)
        failed = 1;
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
