/* [core] Internal types and prototypes shared by the library sources. Internal names are rill__*. */
#ifndef RILL_PRIVATE_H
#define RILL_PRIVATE_H

#include "config.h"
/* Feature-test macros, before any system header: the core asks for POSIX.1-2001
   and nothing more. A file that needs an extension (accept4, pipe2, SO_REUSEPORT)
   or XSI (SA_RESTART) defines its macro itself, above its first include, guarded
   by the configure result that makes it use the extension (README "Portability"). */
#if !defined(_POSIX_C_SOURCE) && !defined(_XOPEN_SOURCE) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200112L
#endif
#include "rill.h"
#include "queue.h"

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <sys/types.h>
#include <pthread.h>
#include <signal.h>

/* ------------------------------------------------------------ allocation */

/* Every allocation goes through these, so tests can make the Nth one fail. */
void *rill__malloc(size_t n);
void *rill__calloc(size_t n, size_t size);
void *rill__realloc(void *p, size_t n);
void  rill__free(void *p);
char *rill__strdup(const char *s);
/* Test hook: the n-th allocation from now fails (0: never). Returns how many were made. */
unsigned long rill__alloc_fail_at(unsigned long n);
unsigned long rill__alloc_count(void);
/* Test hook: allocations made and not yet freed (a leak check without a sanitizer). */
unsigned long rill__alloc_live(void);
/* The freed-while-registered check (on with configure --enable-debug, or once a test
   calls rill__debug_set): rill__free and rill__realloc of a block holding a registered
   watcher or an armed timer of any live loop report it, and abort unless abort_on is 0. */
void rill__debug_set(int on, int abort_on);
unsigned long rill__debug_violations(void);
void rill__debug_check_range(const void *block, size_t n);
void rill__debug_loop_add(rill_loop *loop);
void rill__debug_loop_remove(rill_loop *loop);

/* ---------------------------------------------------------------- tracing */

extern int rill__trace_on;
void rill__trace_init(void);
/* "<object>#<id> <machine> <FROM> -> <TO> [detail]" on stderr. */
void rill__trace(const char *object, unsigned long id, const char *machine,
                 const char *from, const char *to, const char *fmt, ...);
#define RILL__TRACE(obj, id, machine, from, to, ...) \
    do { if (rill__trace_on) rill__trace((obj), (id), (machine), (from), (to), __VA_ARGS__); } while (0)

/* A machine's states are listed once, as X(MACHINE, NAME) entries of one macro (the
   last one LAST(...): C90 has no comma after an enum's last member); the enum
   (MACHINE_NAME) and the names RILL_TRACE prints are both made from it, and
   tests/check_state_docs.py reads the same list against docs/state-machines.md. */
#define RILL__STATE_ENUM(m, name) m##_##name,
#define RILL__STATE_ENUM_LAST(m, name) m##_##name
#define RILL__STATE_NAME(m, name) #name,

/* ----------------------------------------------------------------- tasks */

/* A unit of work on the loop's pending queue; embedded in the object that owns it,
   so queueing a completion allocates nothing. */
typedef struct rill__task rill__task;
/* What every handle the user holds embeds: its place on the loop's closing list
   (lib/core/handle.c, the one lifecycle). */
typedef struct rill__handle {
    rill__list closing;
    void (*free_fn)(struct rill__handle *h);   /* releases the memory; nothing is registered by then */
} rill__handle;

struct rill__task {
    rill__list node;                 /* linked while queued */
    void (*run)(rill__task *t);
};
void rill__task_init(rill__task *t, void (*run)(rill__task *t));
void rill__task_post(rill_loop *loop, rill__task *t);   /* no-op if already queued */
void rill__task_cancel(rill_loop *loop, rill__task *t); /* no-op if not queued */
int  rill__task_queued(const rill__task *t);

/* -------------------------------------------------------------- readiness */

#define RILL__EV_HUP 4   /* watch only for hang-up/error (an idle write pipe) */
/* Reported, never watched: select's read set says "readable" for a hang-up watch,
   which on a socket may also be data or EOF; the owner checks which it is. */
#define RILL__EV_HUP_HINT 8

typedef struct rill__io rill__io;
typedef void (*rill__io_cb)(rill__io *io, int revents);
struct rill__io {
    int fd;
    int events;          /* RILL_READABLE | RILL_WRITABLE | RILL__EV_HUP */
    size_t slot;         /* index in loop->slots; RILL__NO_SLOT when stopped */
    unsigned long gen;   /* changes at every start: a reused slot is told apart */
    rill__io_cb cb;
};
#define RILL__NO_SLOT ((size_t)-1)

void rill__io_init(rill__io *io, int fd, rill__io_cb cb);
int  rill__io_start(rill_loop *loop, rill__io *io, int events); /* or update events */
void rill__io_stop(rill_loop *loop, rill__io *io);
static inline int rill__io_active(const rill__io *io) { return io->slot != RILL__NO_SLOT; }

/* What a backend (or the embedding's after_*) reports of one descriptor: the
   kernel's facts, not yet what the io hears; rill__loop_dispatch translates them. */
#define RILL__FIRED_IN  RILL_READABLE   /* readable, or in select's read set */
#define RILL__FIRED_OUT RILL_WRITABLE   /* writable */
#define RILL__FIRED_HUP 4   /* hang-up or error */

/* The backend table: add/mod/del mirror the loop's slot registry, wait blocks and
   reports each ready slot's facts to rill__loop_dispatch. */
typedef struct rill__backend {
    const char *name;
    int  (*init)(rill_loop *loop);
    void (*destroy)(rill_loop *loop);
    int  (*add)(rill_loop *loop, size_t slot);
    void (*mod)(rill_loop *loop, size_t slot);
    void (*del)(rill_loop *loop, size_t slot);
    int  (*wait)(rill_loop *loop, int timeout_ms);
} rill__backend;
extern const rill__backend rill__backend_poll;
int rill__poll_facts(short revents);   /* poll() revents -> RILL__FIRED_* (shared with after_poll) */
extern const rill__backend rill__backend_select;
extern const rill__backend rill__backend_epoll;

/* Backends bracket their dispatch with begin/end and report each ready slot;
   an io stopped or started during the dispatch is never given stale readiness. */
void rill__dispatch_begin(rill_loop *loop);
void rill__dispatch_end(rill_loop *loop);
void rill__loop_dispatch(rill_loop *loop, size_t slot, int facts);   /* facts: RILL__FIRED_* */

/* ---------------------------------------------------------------- timers */

struct rill_timer {
    rill_loop *loop;
    uint64_t deadline;
    uint64_t seq;        /* creation order: ties fire first-come */
    rill_timer *heap_parent, *heap_left, *heap_right;   /* lib/core/timer.c's heap */
    int armed;
    void (*cb)(void *ud);
    void *ud;
    int owned;           /* allocated by rill_call_later: freed when fired or cancelled */
};
void rill__timer_init(rill_timer *t, rill_loop *loop, void (*cb)(void *ud), void *ud);
void rill__timer_start(rill_timer *t, uint64_t delay_ms);   /* re-arms if armed; never fails */
void rill__timer_unlink(rill_timer *t);
/* Stopping a timer that is not armed, the common case on every read, costs no call. */
static inline void rill__timer_stop(rill_timer *t)
{
    if (t->armed)
        rill__timer_unlink(t);
}
static inline int rill__timer_armed(const rill_timer *t) { return t->armed; }
/* Fires due timers (rill__run_ready calls it only when the first one is due). */
void rill__run_timers(rill_loop *loop);
int  rill__timer_timeout(const rill_loop *loop);   /* ms until the first deadline; -1: none */

/* ------------------------------------------------------------------ loop */

typedef struct rill__slot {
    rill__io *io;        /* NULL: free, or freed during this dispatch */
    int fd;
    int events;
    unsigned long gen;
} rill__slot;

struct rill_loop {
    const rill__backend *backend;
    void *bdata;
    uint64_t now;
    unsigned long next_id;          /* ids for traces */
    unsigned long stats_id;         /* this loop's own id */

    rill__list debug_node;          /* on lib/core/alloc.c's list of live loops */
    rill__slot *slots;              /* registry of active ios */
    size_t nslots, capslots;
    size_t *free_slots;             /* reusable slots */
    size_t nfree, capfree;
    size_t *dead_slots;             /* freed while dispatching: reusable after it */
    size_t ndead, capdead;
    int dispatching;
    unsigned long io_gen;
    unsigned long wait_gen;         /* io_gen when the current wait started */

    rill_timer *timer_min;          /* root of the intrusive timer heap */
    size_t ntimers;
    uint64_t timer_seq;
    size_t nuser_timers;

    rill__list pending;             /* rill__task FIFO */
    size_t npending;
    int budget_exhausted;

    size_t nhandles;                /* open streams, servers, requests, watches, signals */
    rill__list closing;             /* rill__handle: closed, memory freed at the iteration's end */
    unsigned long npolls;           /* waits made: tests count system calls saved */
    int stop_flag;
    int in_callback;                /* > 0 while any callback runs */

    /* wake-ups from other threads and signal handlers */
    int wake_rd, wake_wr;
    rill__io wake_io;
    pthread_mutex_t ts_mu;
    rill__list ts_queue;            /* call_soon nodes from other threads */
    size_t nts;

    /* embedding: what prepare_* registered */
    struct { size_t slot; unsigned long gen; int fd; } *emb;
    size_t nemb, capemb;

    char *scratch;                  /* RILL__SCRATCH_SIZE bytes lent to streams that hold no read buffer */
    struct rill__resolver *resolver; /* lazily created */
    void (*resolver_free)(rill_loop *loop);   /* set with it: the loop frees it through this */
    char *dns_servers;
    int dns_timeout_ms, dns_tries;

    /* child processes (lib/proc): the unreaped ones, and how SIGCHLD reaches them */
    rill__list procs;
    size_t nprocs;
    rill_timer proc_timer;          /* the fallback poll while children live */
    void (*chld_fn)(rill_loop *loop);   /* set while subscribed: reaps this loop's children */
    sig_atomic_t chld_seen;         /* rill__chld_gen when chld_fn last ran */
    int chld_slot;                  /* in lib/core/signal.c's table; -1: none */
};

#define RILL__SCRATCH_SIZE 65536u

void rill__handle_ref(rill_loop *loop);     /* one more thing keeps the loop alive (signals) */
void rill__handle_unref(rill_loop *loop);
/* lib/core/handle.c: a handle keeps the loop alive from open to closed; its memory
   is released by free_fn at the end of the iteration it closed in. */
void rill__handle_open(rill_loop *loop, rill__handle *h, void (*free_fn)(rill__handle *h));
void rill__handle_closed(rill_loop *loop, rill__handle *h);
void rill__handles_free_closed(rill_loop *loop);
unsigned long rill__next_id(rill_loop *loop);
void rill__update_time(rill_loop *loop);
uint64_t rill__clock_ms(void);
/* Runs due timers and the pending queue (bounded by the fairness budget). */
void rill__run_ready(rill_loop *loop);
/* Timeout for the next wait: 0 when work is queued, -1 when nothing is due. */
int  rill__next_timeout(rill_loop *loop);
/* Brackets around every user callback, so run/free can refuse re-entry. */
#define RILL__CALLBACK(loop, call) do { (loop)->in_callback++; call; (loop)->in_callback--; } while (0)

void rill__wake(int fd, unsigned char what);      /* async-signal-safe */
void rill__signal_dispatch(rill_loop *loop);      /* runs callbacks of signals that arrived */
/* SIGCHLD for child processes, shared by every loop that has children (lib/proc):
   the handler bumps rill__chld_gen and wakes every subscribed loop, whose dispatch
   then calls loop->chld_fn. Subscribing installs rill's handler (unless a
   rill_signal_watch of SIGCHLD already did); the last unsubscribe restores the
   disposition found. 0, or -errno from sigaction; a full table (more loops than
   RILL__CHLD_SLOTS) leaves chld_slot -1 and the loop relies on its poll timer. */
#define RILL__CHLD_SLOTS 64
extern volatile sig_atomic_t rill__chld_gen;
int  rill__chld_subscribe(rill_loop *loop, void (*fn)(rill_loop *loop));
void rill__chld_unsubscribe(rill_loop *loop);
int  rill__chld_handler_installed(void);  /* 1 while SIGCHLD's disposition is rill's handler */
void rill__tasks_drop_threadsafe(rill_loop *loop); /* rill_loop_free: what no iteration took */

/* ------------------------------------------------------------- utilities */

/* Descriptor helpers (lib/io/fd.c): 0 or -errno. A failed rill__fd_move_high leaves
   *fd open; a failed rill__pipe_open leaves nothing open. above_stdio: both ends at 3
   or above, so a child's dup2 onto 0, 1, 2 cannot overwrite one it still needs. */
int rill__set_nonblock_cloexec(int fd);
int rill__fd_set_cloexec(int fd);
int rill__fd_set_blocking(int fd);
int rill__fd_move_high(int *fd);
int rill__pipe_open(int fds[2], int above_stdio);   /* non-blocking, close-on-exec */
int rill__check_reserved(void *const reserved[4]);   /* RILL_EINVAL when any slot is set */
/* Copies text into buf: its length, or RILL_ENOBUFS with buf set to "" (lib/core/text.c). */
int rill__put_text(char *buf, size_t buflen, const char *text);

#endif
