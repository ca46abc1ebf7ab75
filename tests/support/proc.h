/* What /proc says about a process: the leak checks of the suites and of the
   soak count descriptors and read memory figures the same way. No CUnit here,
   so that programs outside run_tests (the soak) can link it. */
#ifndef RILL_TEST_PROC_H
#define RILL_TEST_PROC_H

#include <sys/types.h>
#include <sys/resource.h>

/* Open descriptors of pid (0: this process, not counting the one the count
   itself holds open), or -1 where /proc cannot be read. */
int test_proc_fds(pid_t pid);

/* A "Field:  N kB" line of /proc/PID/status (pid 0: this process), e.g.
   "VmRSS" or "VmHWM", in KiB; -1 when absent or unreadable. */
long test_proc_status_kib(pid_t pid, const char *field);

/* A full descriptor table without opening anything: RLIMIT_NOFILE's soft limit is
   lowered to the lowest free descriptor number, so every new descriptor fails with
   EMFILE. 0, or -1 (nothing changed); test_fds_restore() puts *saved back. */
int test_fds_exhaust(struct rlimit *saved);
int test_fds_restore(const struct rlimit *saved);

#endif
