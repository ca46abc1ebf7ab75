/* Scaffolding of the stream suites: the one way to assert that no callback is
   synchronous, to count callbacks, to make socket pairs and to adopt a
   descriptor as a stream. */
#ifndef RILL_TEST_STREAMS_H
#define RILL_TEST_STREAMS_H

#include <stddef.h>
#include <stdint.h>
#include <CUnit/CUnit.h>
#include "rill.h"

struct sockaddr;

/* ------------------------------------------------------- never synchronous */

/* Every call that may start an operation runs inside TEST_CALL (or TEST_CALLV
   for one without a result); a callback that runs while one is active was
   called synchronously, which the callback contract forbids. run_tests resets
   the count before each test, so a test that stopped inside a call (a FATAL
   assertion) does not taint the next. */
extern int test_calling;     /* > 0 while such a call runs */
extern int test_sync_seen;   /* callbacks that ran inside one since the reset */
extern int test_call_rc;
#define TEST_CALL(expr) (test_calling++, test_call_rc = (expr), test_calling--, test_call_rc)
#define TEST_CALLV(expr) do { test_calling++; expr; test_calling--; } while (0)

/* In a callback: 1 (and counted in test_sync_seen) when it runs inside a call. */
int test_sync_check(void);
/* In a callback: fails the test at once when it runs inside a call. */
#define TEST_ASSERT_NOT_SYNC() CU_ASSERT_FALSE(test_sync_check())
void test_sync_reset(void);

/* ------------------------------------------------------- counting callbacks */

/* A log of callbacks in the order they ran: kind is the test's own enum, tag
   tells operations of one kind apart (TEST_TAG packs both into a user-data
   pointer: kind * 100 + tag). */
#define TEST_TAG(kind, i) ((void *)(intptr_t)((kind) * 100 + (i)))

typedef struct {
    int kind, tag, status;
    size_t size;    /* what the test records: a buffer size, a byte count */
    int when;       /* test_log.tick at the time */
} test_event;

typedef struct {
    test_event e[128];
    int n;
    int tick;       /* the test's own clock (a peer's ticks), stamped on each event */
} test_event_log;

extern test_event_log test_log;

void test_log_reset(void);
void test_log_add(int kind, int tag, int status, size_t size);
int test_log_count(int kind);
/* Position of the first (kind, tag) event, or -1. */
int test_log_index(int kind, int tag);
/* The first (kind, tag) event; one with status 1 (no callback gives it) when none. */
const test_event *test_log_get(int kind, int tag);
int test_log_status(int kind, int tag);

/* ------------------------------------------------------- descriptors */

void test_nonblock(int fd);                      /* asserted */
void test_set_buf(int fd, int opt, int bytes);   /* SO_SNDBUF / SO_RCVBUF, asserted */

/* socketpair(AF_UNIX, type): sv[0] for rill, sv[1] the test's end, non-blocking;
   sndbuf > 0 sets sv[0]'s send buffer. Fatal on failure. */
void test_unix_pair(int type, int sv[2], int sndbuf);

/* Kernel buffers for test_tcp_pair, set before the connection exists so the
   window follows them; 0 leaves the kernel's (and its autotuning). The
   accepted end has the listener's. */
typedef struct {
    int accepted_snd, accepted_rcv, connecting_snd, connecting_rcv;
} test_tcp_bufs;

/* A connected TCP pair over 127.0.0.1, both ends blocking; bufs may be NULL.
   0, or -1 with nothing left open: nothing is asserted, since suites that
   inject faults call it while the library's hooks fail. */
int test_tcp_pair(int *accepted, int *connecting, const test_tcp_bufs *bufs);

/* ------------------------------------------------------- adopting */

/* What the adoption callback saw; test_adopt_cb (checked not synchronous)
   fills one given as user data, for tests that look at the adoption itself. */
typedef struct {
    rill_stream *s;
    int status, calls;
} test_adopted;
void test_adopt_cb(rill_stream *s, int status, void *ud);

/* fd adopted as a stream with rill_connect_sock (o may be NULL), waiting for
   the completion (from the loop, never synchronous: both asserted); NULL when
   the call or the adoption failed. */
rill_stream *test_adopt_try(rill_loop *loop, int fd, const rill_connect_opts *o);
/* The same, where failing to adopt ends the test (fatal). */
rill_stream *test_adopt(rill_loop *loop, int fd, const rill_connect_opts *o);

/* ------------------------------------------------------- the peer */

/* FNV-1a over bytes, to compare what a peer read with what was written. */
#define TEST_FNV_INIT 14695981039346656037ull
uint64_t test_fnv(uint64_t h, const unsigned char *p, size_t n);

/* The other end of a stream, read with plain system calls from the loop: at
   once (a watch) or slowly (a few small reads per timer tick, each tick
   counted in test_log.tick). */
typedef struct test_sink {
    rill_loop *loop;
    int fd;
    rill_watch *w;
    rill_timer *t;
    size_t chunk;
    int per_tick, tick_ms;
    size_t total;
    uint64_t hash;            /* test_fnv of every byte read */
    unsigned char *keep;      /* when set, the first keepcap bytes are kept here */
    size_t keepcap;
    int eof, err;
    void (*on_tick)(struct test_sink *k);
} test_sink;

void test_sink_init(test_sink *k, rill_loop *loop, int fd);
void test_sink_watch(test_sink *k);      /* reads whatever is there */
void test_sink_paced(test_sink *k, size_t chunk, int per_tick, int tick_ms);
/* init, then paced_chunk bytes a millisecond, or (0) a watch */
void test_sink_start(test_sink *k, rill_loop *loop, int fd, size_t paced_chunk);
void test_sink_stop(test_sink *k);

/* ------------------------------------------------------- echo servers */

/* A read callback that writes back what it reads until EOF or an error, then
   closes the stream. */
void test_echo_read(rill_stream *s, int status, const char *data, size_t len, void *ud);

/* What a one-line echo server saw (its user data). */
typedef struct {
    int clients, errors, last_error, had_peer;
    uint64_t error_at;        /* test_now_ms() of the last error */
} test_srv_rec;
/* on_client: counts the client, echoes one line and closes. */
void test_srv_echo_line(rill_server *srv, rill_stream *s, void *ud);
/* on_error: counts the error, its status, whether a peer came with it. */
void test_srv_on_error(rill_server *srv, int status, const struct sockaddr *peer, void *ud);

#endif
