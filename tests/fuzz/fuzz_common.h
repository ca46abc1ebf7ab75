/* Helpers shared by the fuzz targets (tests/fuzz/README.md).

   Each target defines LLVMFuzzerInitialize and LLVMFuzzerTestOneInput. Built with
   --enable-fuzz they are libFuzzer binaries; otherwise replay.c gives them a main that
   runs every file named on the command line (or every file of a named directory).

   A target checks its properties with FZ_CHECK, which prints the failed condition and
   calls abort(): libFuzzer saves the input, the replay reports the file. Every run is
   bounded: a target that would wait longer than its bound is a hang, and aborts too. */
#ifndef RILL_FUZZ_COMMON_H
#define RILL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "rill.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A cursor over the fuzz input; reads past the end give zeros. */
typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

uint8_t  fz_u8(fz_in *in);
uint16_t fz_u16(fz_in *in);
/* Up to n bytes (fewer at the end of the input); *got says how many. */
const uint8_t *fz_bytes(fz_in *in, size_t n, size_t *got);
static inline size_t fz_left(const fz_in *in) { return in->n; }

void fz_fail(const char *file, int line, const char *what);
#define FZ_CHECK(cond) do { if (!(cond)) fz_fail(__FILE__, __LINE__, #cond); } while (0)

uint64_t fz_now_ms(void);

/* A loop driven by b % 4: the epoll, poll or select backend (poll where epoll is not
   built), or 3: the program's own poll() through rill_loop_prepare_poll/after_poll
   (embedding); DNS pointed at dns (NULL: an unused loopback port, so nothing reaches a
   real server). One such loop at a time. */
rill_loop *fz_loop_new(unsigned b, const char *dns, int dns_timeout_ms);
/* One iteration of the loop made by fz_loop_new, the way it is driven: as
   rill_loop_run_once (1 while anything is alive, 0 when nothing is). */
int fz_run_once(rill_loop *loop, int timeout_ms);

/* Makes the n-th library allocation from now fail (0: none); fz_allocfail says one
   is armed, so RILL_ENOMEM is an allowed answer. */
extern int fz_allocfail;
void fz_alloc_fail_at(unsigned long n);

/* Callback discipline: every rill call that may start an operation runs inside
   FZ_CALL(); a callback that finds fz_calling set ran synchronously: a bug. */
extern int fz_calling;
#define FZ_CALL(expr) (fz_calling++, fz_rc = (expr), fz_calling--, fz_rc)
extern int fz_rc;
#define FZ_CALL_VOID(stmt) do { fz_calling++; stmt; fz_calling--; } while (0)
#define FZ_CALLBACK() FZ_CHECK(fz_calling == 0)

/* Runs the loop until *flag is set or nothing is alive; aborts after ms (a hang). */
void fz_run_until(rill_loop *loop, const int *flag, int ms);
/* Runs the loop until nothing is alive (bounded by ms: a hang aborts), then frees it:
   rill_loop_free must return 0. */
void fz_finish(rill_loop *loop, int ms);

/* Verbose diagnostics (FUZZ_VERBOSE=1 in the environment), read by fz_init(),
   which every LLVMFuzzerInitialize calls. */
extern int fz_verbose;
void fz_init(void);

#endif
