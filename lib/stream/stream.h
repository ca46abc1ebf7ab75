/* [stream] The stream object shared by its machines (read.c, write.c, close.c), what
   they wait for (interest.c), the transports (sock.c, pipe.c, tls.c) and whoever
   creates streams (stream.c's rill__stream_new, for pipe.c, connect.c, server.c). */
#ifndef RILL_STREAM_H
#define RILL_STREAM_H

#include "rill_private.h"
#include "buf.h"

#include <sys/socket.h>

/* How bytes move. recv/send return bytes moved, 0 for EOF (recv), or a negative
   error; -EAGAIN means "not now" and sets s->rd_want / s->wr_want to the readiness
   that unblocks it (TLS may need the socket writable in order to read). */
typedef struct rill__transport {
    const char *name;
    ssize_t (*recv)(rill_stream *s, char *buf, size_t len);
    ssize_t (*send)(rill_stream *s, const struct iovec *iov, int iovcnt);
    int  (*shutdown_write)(rill_stream *s);  /* write_eof once flushed; NULL: cannot */
    int  (*close_notify)(rill_stream *s);    /* before close: 0 done, -EAGAIN later; NULL: none */
    size_t (*pending)(const rill_stream *s); /* bytes decoded but not yet handed out; NULL: none */
    void (*closing)(rill_stream *s);         /* the descriptor is closing: stop using it; NULL: nothing */
    void (*destroy)(rill_stream *s);         /* the stream is freed: free transport state (never the fd) */
} rill__transport;

extern const rill__transport rill__sock_transport;
extern const rill__transport rill__pipe_transport;

/* The read machine (read.c). IDLE: no read pending; WAIT: pending, the buffer cannot
   answer yet; DELIVER: answer known, consuming and calling back. */
#define RILL__READ_STATES(X, LAST) X(READ, IDLE) X(READ, WAIT) LAST(READ, DELIVER)
typedef enum { RILL__READ_STATES(RILL__STATE_ENUM, RILL__STATE_ENUM_LAST) } rill__read_state;

typedef enum { OP_READ, OP_READ_ALL, OP_READEXACTLY, OP_READUNTIL, OP_READLINE } rill__read_kind;

typedef struct rill__read_op {
    rill__read_state state;
    rill__read_kind kind;
    size_t n;
    char *sep;               /* points at sep_inline or an allocation */
    size_t seplen;
    char sep_inline[8];
    size_t offset;           /* scanner progress */
    int forced;              /* cancel/timeout/close status that ends the read */
    rill_read_cb cb;
    void *ud;
} rill__read_op;

/* The write machine: flow control (drain) and the half-close. FLOWING: writes
   accepted, a drain is answered at once; PAUSED: the buffer went above high, drains
   wait until it falls to low; EOF_PENDING: rill_write_eof, no more writes, flushing,
   then the half-close; EOF_SENT: half-closed. */
#define RILL__WRITE_STATES(X, LAST) X(WRITE, FLOWING) X(WRITE, PAUSED) X(WRITE, EOF_PENDING) LAST(WRITE, EOF_SENT)
typedef enum { RILL__WRITE_STATES(RILL__STATE_ENUM, RILL__STATE_ENUM_LAST) } rill__write_state;

/* The close machine. OPEN; FLUSHING: rill_close, sending what is buffered; NOTIFY:
   TLS, sending close_notify; CLOSED: descriptor closed, callbacks being delivered;
   FREED: memory released (never observed by users). */
#define RILL__CLOSE_STATES(X, LAST) \
    X(CLOSE, OPEN) X(CLOSE, FLUSHING) X(CLOSE, NOTIFY) X(CLOSE, CLOSED) LAST(CLOSE, FREED)
typedef enum { RILL__CLOSE_STATES(RILL__STATE_ENUM, RILL__STATE_ENUM_LAST) } rill__close_state;

typedef struct rill__waiter {
    rill__list node;
    rill_done_cb cb;
    void *ud;
    int status;               /* for drains finished early */
} rill__waiter;

enum {
    S_EOF          = 1 << 0,   /* the peer's EOF was read */
    S_USER_PAUSED  = 1 << 1,   /* rill_pause_reading */
    S_FC_PAUSED    = 1 << 2,   /* read buffer above 2 * limit */
    S_LOST         = 1 << 6,   /* the descriptor failed and was closed */
    S_USER_CLOSED  = 1 << 7,   /* rill_close or rill_abort called: free after delivery */
    S_ABORTED      = 1 << 8,
    S_IS_SOCKET    = 1 << 9,
    S_IN_READ_STEP = 1 << 10,  /* read machine running: re-entrant starts only queue */
    S_IN_IO        = 1 << 11,  /* stream_io running: it updates the interest once, at its end */
    S_HUP_DEAF     = 1 << 12   /* an idle write-only socket's peer sent data or EOF: select
                                  cannot hear a hang-up apart from them, the next write will */
};

struct rill_stream {
    rill_loop *loop;
    rill__handle h;
    unsigned long id;
    int fd;
    int mode;
    int flags;
    int err;                     /* the connection's error, once lost */
    const rill__transport *tr;
    void *tr_ctx;
    rill__io io;
    int rd_want, wr_want;
    /* While set (a TLS handshake), readiness goes here instead of the read/write sides. */
    void (*io_hook)(rill_stream *s, int revents);
    rill__task more_task;        /* the transport holds decoded bytes: read them without a poll */

    /* read side */
    rill__buf rbuf;
    size_t limit;
    rill__read_op rop;
    rill__task read_task;
    rill_timer read_timer;
    int read_timeout_ms;

    /* write side */
    rill__write_state wstate;
    rill__buf wbuf;
    size_t high, low;
    size_t wmax;                 /* rill_set_write_buffer_max; 0: unlimited */
    rill__list drains;           /* rill__waiter */
    rill__list spare;            /* reusable waiters: no allocation per write in steady state */
    rill__task drain_task;

    /* close */
    rill__close_state cstate;
    int close_status;
    rill__list closers;          /* rill_close callbacks */
    rill__list closed_waiters;   /* rill_wait_closed callbacks */
    rill__task close_task;
    rill_timer close_timer;
    int close_timeout_ms;

    /* whoever tracks the stream (a server) hears when it is freed */
    void (*owner_gone)(rill_stream *s);
    void *owner;
    rill__list owner_node;

    void *data;
    struct sockaddr_storage peer, local;
    socklen_t peerlen, locallen;
};

/* sock.c */
ssize_t rill__writev_nosigpipe(int fd, const struct iovec *iov, int iovcnt);

/* tls.c, for extra_info.c */
int rill__tls_extra_info(const rill_stream *s, const char *name, char *buf, size_t buflen);

/* The stream's files, lowest first; each calls only down this list. */

/* interest.c; the two sides' needs are inline: stream_io asks them on every event. */
static inline int rill__stream_reading_wanted(const rill_stream *s)
{
    if (!(s->mode & RILL_MODE_READ) || s->cstate != CLOSE_OPEN || (s->flags & (S_EOF | S_USER_PAUSED)))
        return 0;
    /* Past 2 * limit reading pauses, but a read that waits needs bytes the buffer
       cannot give, whatever its size (asyncio's _wait_for_data resumes reading):
       read(-1) and readexactly are not capped by limit, and readuntil decides only
       once limit + seplen bytes are there, which a separator longer than limit + 1
       puts above 2 * limit. The others stay bounded: readline and readuntil end
       with RILL_ELIMIT. */
    return !(s->flags & S_FC_PAUSED) || s->rop.state == READ_WAIT;
}

static inline int rill__stream_writing_wanted(const rill_stream *s)
{
    return s->wbuf.len > 0 || s->wstate == WRITE_EOF_PENDING || s->cstate == CLOSE_NOTIFY;
}

int  rill__stream_wanted_events(const rill_stream *s);
void rill__stream_update_io(rill_stream *s);

/* waiter.c */
int  rill__waiter_add(rill_stream *s, rill__list *list, rill_done_cb cb, void *ud);
void rill__waiter_withdraw_last(rill_stream *s, rill__list *list);
void rill__waiters_run(rill_stream *s, rill__list *list, int status);
void rill__waiters_free(rill__list *list);

/* read.c */
void rill__read_init(rill_stream *s, size_t limit);
int  rill__read_ready(rill_stream *s);
void rill__read_step(rill_stream *s);
void rill__read_finish(rill_stream *s, int status);
void rill__read_end_later(rill_stream *s, int status);
void rill__read_free(rill_stream *s);
const char *rill__read_state_name(rill__read_state st);

/* close.c */
void rill__close_init(rill_stream *s);
void rill__stream_free_memory(rill__handle *h);
void rill__close_advance(rill_stream *s);
void rill__stream_lost(rill_stream *s, int err);
const char *rill__close_state_name(rill__close_state st);

/* write.c */
void rill__write_init(rill_stream *s);
void rill__write_ready(rill_stream *s);

/* stream.c */
rill_stream *rill__stream_new(rill_loop *loop, int fd, int mode, size_t limit,
                              const rill__transport *tr);

#define RILL__DEFAULT_LIMIT 65536u

#endif
