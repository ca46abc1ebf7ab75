/*
 * rill — the asyncio Streams model in C.
 *
 * Every operation that takes a callback and returns 0 calls it exactly once,
 * and never from inside the call that started it: completions are delivered
 * from the loop. An operation that returns an error never calls back.
 *
 * Errors are negative ints: system errors are -errno, rill's own sit below
 * -4000. rill_strerror() describes any of them.
 *
 * Manual: see rill(3), rill_loop(3), rill_stream(3), rill_connect(3),
 * rill_server(3), rill_tls(3), rill_process(3); docs/api.md, docs/guide.md, docs/semantics.md
 * and docs/examples.md are installed under $(docdir). This header includes
 * <netdb.h> for the AI_* flags; with a strict -std=c99 (no GNU extensions)
 * the C library shows them only under _POSIX_C_SOURCE >= 200112L.
 */
#ifndef RILL_H
#define RILL_H

#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <sys/types.h>
#include <sys/time.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netdb.h>       /* the AI_* values rill_connect_opts.flags and rill_server_opts.flags take */

#ifdef __cplusplus
extern "C" {
#endif

#define RILL_VERSION_MAJOR 0
#define RILL_VERSION_MINOR 1
#define RILL_VERSION_PATCH 0

/* ------------------------------------------------------------------ errors */

#define RILL_EINVAL    (-EINVAL)
#define RILL_ENOMEM    (-ENOMEM)
#define RILL_ECANCELED (-ECANCELED)
#define RILL_ETIMEDOUT (-ETIMEDOUT)
#define RILL_EBUSY     (-EBUSY)
#define RILL_ENOBUFS   (-ENOBUFS)
#define RILL_EEXIST    (-EEXIST)   /* the descriptor is already watched by this loop */

/* rill's own errors: frozen values, never reused. */
#define RILL_EINCOMPLETE (-4001) /* EOF before the read was complete (IncompleteReadError) */
#define RILL_ELIMIT      (-4002) /* the buffer limit was reached (LimitOverrunError) */
#define RILL_ECLOSED     (-4003) /* the stream is closing or closed */
#define RILL_EMODE       (-4004) /* not allowed by the stream's mode or transport */
#define RILL_EDNS        (-4005) /* name resolution failed (server failure, timeout, refused) */
#define RILL_ENOTFOUND   (-4006) /* the name does not exist or has no address */
#define RILL_ETLS        (-4007) /* TLS handshake or record error */
#define RILL_ECERT       (-4008) /* peer certificate not verified, or wrong host name */

/* Static text for any error value, rill's or the system's; never NULL. */
const char *rill_strerror(int err);
/* "RILL_ELIMIT", "ECONNRESET", ...; static text, never NULL. */
const char *rill_err_name(int err);

/* --------------------------------------------------------- library, loop */

typedef struct rill_loop rill_loop;
typedef struct rill_timer rill_timer;
typedef struct rill_watch rill_watch;
typedef struct rill_stream rill_stream;
typedef struct rill_server rill_server;
typedef struct rill_tls rill_tls;
typedef struct rill_connect_req rill_connect_req;

/* "MAJOR.MINOR.PATCH" of the library actually linked. */
const char *rill_version(void);

/* AUTO: epoll where configure found it, else poll, else select. Asking for a
   backend this build does not have fails with ENOSYS. */
enum { RILL_BACKEND_AUTO = 0, RILL_BACKEND_POLL = 1, RILL_BACKEND_SELECT = 2, RILL_BACKEND_EPOLL = 3 };

typedef struct rill_loop_opts {
    int backend;              /* RILL_BACKEND_AUTO (0): the best this system has */
    const char *dns_servers;  /* "127.0.0.1:5353,[::1]:53"; NULL: system configuration */
    int dns_timeout_ms;       /* 0: c-ares default */
    int dns_tries;            /* 0: c-ares default */
    void *reserved[4];        /* must be zero */
} rill_loop_opts;

/* A new loop; NULL opts means defaults. NULL and errno set on failure. */
rill_loop *rill_loop_new(const rill_loop_opts *opts);
/* Runs until rill_loop_stop() (returns 1) or nothing is active (returns 0);
   < 0 on a backend error; RILL_EBUSY from inside a callback. */
int  rill_loop_run(rill_loop *loop);
/* One iteration waiting at most timeout_ms (-1: as long as needed).
   Returns 1 if work remains, 0 if none, < 0 on error. */
int  rill_loop_run_once(rill_loop *loop, int timeout_ms);
/* Makes rill_loop_run return 1 after the current iteration. */
void rill_loop_stop(rill_loop *loop);
/* 1 while any stream, server, request, watch, signal, timer or queued callback lives. */
int  rill_loop_alive(const rill_loop *loop);
/* Frees an idle loop: 0, or RILL_EBUSY while anything lives or from a callback. */
int  rill_loop_free(rill_loop *loop);
/* Monotonic milliseconds, read once per iteration. */
uint64_t rill_loop_now(const rill_loop *loop);

/* Calls cb(ud) once after delay_ms, counted from now. NULL and errno on failure. */
rill_timer *rill_call_later(rill_loop *loop, uint64_t delay_ms, void (*cb)(void *ud), void *ud);
/* Safe until the timer's callback has started; the handle is freed. */
void rill_timer_cancel(rill_timer *t);
/* Queues cb(ud) to run from the loop, after the current callback; FIFO. */
int  rill_call_soon(rill_loop *loop, void (*cb)(void *ud), void *ud);
/* The same from any thread; wakes a loop blocked in poll()/select(). */
int  rill_call_soon_threadsafe(rill_loop *loop, void (*cb)(void *ud), void *ud);

enum { RILL_READABLE = 1, RILL_WRITABLE = 2 };
/* asyncio's add_reader/add_writer for a descriptor the program owns.
   A hang-up or error is reported as readiness of the watched events. */
rill_watch *rill_watch_fd(rill_loop *loop, int fd, int events,
                          void (*cb)(rill_watch *w, int revents, void *ud), void *ud);
/* Changes the watched events; 0 pauses the watch. */
int  rill_watch_update(rill_watch *w, int events);
/* Frees the handle; its callback never runs again. */
void rill_watch_stop(rill_watch *w);

/* asyncio's add_signal_handler: cb runs from the loop, never from the handler.
   Watching again on the same loop replaces cb; RILL_EBUSY if another loop watches signum. */
int  rill_signal_watch(rill_loop *loop, int signum, void (*cb)(int signum, void *ud), void *ud);
/* Restores the disposition the signal had before rill_signal_watch. */
int  rill_signal_unwatch(rill_loop *loop, int signum);

/* Embedding into a program's own select() loop. Start *maxfd at -1 when the program
   has no descriptor; tv->tv_sec < 0 means no deadline on entry and on return.
   -EMFILE when rill holds a descriptor >= FD_SETSIZE; RILL_EINVAL for NULL tv. */
int  rill_loop_prepare_select(rill_loop *loop, fd_set *rd, fd_set *wr, int *maxfd, struct timeval *tv);
/* After the program's select(): dispatch what became ready, due timers, queued
   callbacks. rd == wr == NULL after a failed select(): dispatch no descriptor. */
void rill_loop_after_select(rill_loop *loop, const fd_set *rd, const fd_set *wr);

struct pollfd;
/* poll() flavour: fills up to cap entries (*n says how many; RILL_ENOBUFS with
   the needed count in *n when cap is too small) and lowers *timeout_ms (< 0: none). */
int  rill_loop_prepare_poll(rill_loop *loop, struct pollfd *fds, size_t cap, size_t *n, int *timeout_ms);
/* Pass the entries prepare_poll wrote (the program may append its own after them);
   fds == NULL after a failed poll(). */
void rill_loop_after_poll(rill_loop *loop, const struct pollfd *fds, size_t n);

/* ---------------------------------------------------------------- streams */

enum { RILL_MODE_READ = 1, RILL_MODE_WRITE = 2, RILL_MODE_READWRITE = 3 };

typedef void (*rill_read_cb)(rill_stream *s, int status, const char *data, size_t len, void *ud);
typedef void (*rill_done_cb)(rill_stream *s, int status, void *ud);

/* Reads. data points into the stream's buffer, valid until the callback
   returns; the bytes are already consumed when it runs. One read at a time:
   RILL_EBUSY while another is pending. */
int  rill_read(rill_stream *s, ssize_t n, rill_read_cb cb, void *ud);       /* up to n bytes; -1: until EOF; len 0 = EOF */
int  rill_readline(rill_stream *s, rill_read_cb cb, void *ud);              /* through '\n'; the partial line at EOF */
int  rill_readexactly(rill_stream *s, size_t n, rill_read_cb cb, void *ud); /* RILL_EINCOMPLETE + partial bytes at EOF */
int  rill_readuntil(rill_stream *s, const void *sep, size_t seplen, rill_read_cb cb, void *ud);
int  rill_read_cancel(rill_stream *s);     /* the pending read gets RILL_ECANCELED; buffered data stays */
int  rill_at_eof(const rill_stream *s);    /* 1: buffer empty and EOF seen */
int  rill_pause_reading(rill_stream *s);
int  rill_resume_reading(rill_stream *s);
size_t rill_stream_get_limit(const rill_stream *s);
int  rill_set_read_timeout(rill_stream *s, int ms);  /* <= 0: none */
int  rill_set_close_timeout(rill_stream *s, int ms); /* <= 0: none */

/* Writes: try the descriptor now, buffer (copy) the rest. With cb, the callback
   behaves as a rill_drain started right after the write. */
int  rill_write(rill_stream *s, const void *data, size_t len, rill_done_cb cb, void *ud);
int  rill_writelines(rill_stream *s, const struct iovec *iov, int iovcnt, rill_done_cb cb, void *ud);
int  rill_drain(rill_stream *s, rill_done_cb cb, void *ud);
int  rill_write_eof(rill_stream *s);
int  rill_can_write_eof(const rill_stream *s);
int  rill_set_write_buffer_limits(rill_stream *s, size_t high, size_t low);
size_t rill_get_write_buffer_size(const rill_stream *s);
/* A hard cap for slow readers: a write that could take the buffer above bytes
   fails with RILL_ENOBUFS and queues nothing (all or nothing: the stream stays
   usable, no message is ever half sent). 0: unlimited, the default (asyncio).
   RILL_EMODE on a read-only stream. */
int  rill_set_write_buffer_max(rill_stream *s, size_t bytes);

/* Graceful close: flush, then close; cb runs when fully closed (may be NULL). */
int  rill_close(rill_stream *s, rill_done_cb cb, void *ud);
int  rill_wait_closed(rill_stream *s, rill_done_cb cb, void *ud);
/* Close now, dropping buffered data; pending callbacks get RILL_ECANCELED. */
void rill_abort(rill_stream *s);
int  rill_is_closing(const rill_stream *s);
int  rill_stream_mode(const rill_stream *s);

void *rill_stream_get_data(const rill_stream *s);
void  rill_stream_set_data(rill_stream *s, void *data);
rill_loop *rill_stream_loop(const rill_stream *s);

/* Extra info. Text results return the text's length, or RILL_ENOBUFS with buf set to "". */
int rill_peername(const rill_stream *s, struct sockaddr *addr, socklen_t *len);
int rill_sockname(const rill_stream *s, struct sockaddr *addr, socklen_t *len);
int rill_fileno(const rill_stream *s);
int rill_get_extra_info(const rill_stream *s, const char *name, char *buf, size_t buflen);
int rill_format_addr(const struct sockaddr *addr, char *buf, size_t buflen);
void *rill_tls_object(const rill_stream *s);
const char *rill_tls_alpn(const rill_stream *s);
int rill_tls_peer_cert_der(const rill_stream *s, const unsigned char **der, size_t *len);

/* ------------------------------------------------------------- connecting */

typedef struct rill_connect_opts {
    size_t limit;                 /* buffer limit; 0: 64 KiB */
    rill_tls *tls;                /* non-NULL: TLS over the connection */
    const char *server_hostname;  /* SNI and certificate name; NULL: the host argument */
    int family;                   /* AF_UNSPEC (0), AF_INET, AF_INET6 */
    int flags;                    /* AI_NUMERICHOST, AI_ADDRCONFIG, AI_V4MAPPED, AI_ALL */
    const char *local_host;       /* bind every attempt here first; NULL: none */
    int local_port;
    int happy_eyeballs_delay_ms;  /* 0: 250; -1: sequential attempts */
    int interleave;               /* 0: 1 */
    int ssl_handshake_timeout_ms; /* 0: 60 000; -1: none */
    int timeout_ms;               /* whole connect; 0 or -1: none */
    int (*on_socket)(int fd, int family, void *ud); /* each socket before bind/connect */
    char *errbuf; size_t errbuf_len;  /* a failed connect writes why here before its callback */
    void *reserved[2];
} rill_connect_opts;

typedef void (*rill_connect_cb)(rill_stream *s, int status, void *ud); /* s NULL when status < 0 */

int  rill_connect(rill_loop *loop, const char *host, int port, const rill_connect_opts *opts,
                  rill_connect_cb cb, void *ud, rill_connect_req **req);
int  rill_connect_unix(rill_loop *loop, const char *path, const rill_connect_opts *opts,
                       rill_connect_cb cb, void *ud, rill_connect_req **req);
int  rill_connect_sock(rill_loop *loop, int fd, const rill_connect_opts *opts,
                       rill_connect_cb cb, void *ud, rill_connect_req **req);
void rill_connect_cancel(rill_connect_req *req);
int  rill_connect_read_pipe(rill_loop *loop, int fd, size_t limit, rill_stream **out);
int  rill_connect_write_pipe(rill_loop *loop, int fd, size_t limit, rill_stream **out);

/* ---------------------------------------------------------------- servers */

typedef struct rill_server_opts {
    size_t limit;                 /* 0: 64 KiB */
    int family;                   /* AF_UNSPEC (0): every family the host has */
    int flags;                    /* added to AI_PASSIVE */
    int backlog;                  /* 0: 100 */
    rill_tls *tls;                /* non-NULL: TLS server */
    int reuse_address;            /* 0: on, 1: on, -1: off */
    int reuse_port;               /* 1: SO_REUSEPORT */
    int ssl_handshake_timeout_ms; /* 0: 60 000; -1: none */
    int shutdown_timeout_ms;      /* 0: 60 000; -1: none */
    const int *socks; size_t nsocks;
    void (*on_error)(rill_server *srv, int status, const struct sockaddr *peer, void *ud);
    int (*on_socket)(int fd, int family, void *ud);
    void *reserved[4];
} rill_server_opts;

typedef void (*rill_client_cb)(rill_server *srv, rill_stream *s, void *ud);
typedef void (*rill_server_cb)(rill_server *srv, int status, void *ud);

rill_server *rill_server_new(rill_loop *loop, const char *host, int port,
                             const rill_server_opts *opts, rill_client_cb on_client, void *ud);
rill_server *rill_unix_server_new(rill_loop *loop, const char *path, const rill_server_opts *opts,
                                  rill_client_cb on_client, void *ud);
int  rill_server_bind(rill_server *srv);
int  rill_server_is_bound(const rill_server *srv);
int  rill_server_start_serving(rill_server *srv, rill_server_cb cb, void *ud);
int  rill_server_serve_forever(rill_server *srv, rill_server_cb on_closed, void *ud);
int  rill_server_is_serving(const rill_server *srv);
int  rill_server_close(rill_server *srv, rill_server_cb cb, void *ud);
int  rill_server_abort(rill_server *srv, rill_server_cb cb, void *ud);
size_t rill_server_nsockets(const rill_server *srv);
int  rill_server_socket(const rill_server *srv, size_t i);
int  rill_server_sockname(const rill_server *srv, size_t i, char *buf, size_t buflen);
int  rill_server_port(const rill_server *srv);
void *rill_server_get_data(const rill_server *srv);
void  rill_server_set_data(rill_server *srv, void *data);
rill_loop *rill_server_loop(const rill_server *srv);

/* -------------------------------------------------------------------- TLS */

enum { RILL_TLS_1_2 = 12, RILL_TLS_1_3 = 13 };

typedef struct rill_tls_opts {
    const char *ca_file, *ca_path;    /* NULL, NULL: the system's trusted CAs */
    const char *cert_file, *key_file; /* PEM; required for a server */
    int verify;                       /* client: 0 verify (default), -1 none; server: 0 none, 1 request, 2 require */
    const char *alpn;                 /* "h2,http/1.1"; NULL: none */
    int min_version;                  /* 0: TLS 1.2 */
    const char *ciphers;              /* NULL: wolfSSL's defaults */
    char *errbuf; size_t errbuf_len;  /* a failed *_new writes the reason here */
    void *reserved[4];
} rill_tls_opts;

rill_tls *rill_tls_client_new(const rill_tls_opts *opts);
rill_tls *rill_tls_server_new(const rill_tls_opts *opts);
void      rill_tls_free(rill_tls *tls);
void     *rill_tls_native(rill_tls *tls);

/* -------------------------------------------------------------- processes */

/* asyncio's create_subprocess_exec. Manual: rill_process(3). */
typedef struct rill_process rill_process;

/* What a child's stdin, stdout or stderr is. */
enum {
    RILL_STDIO_INHERIT = 0,   /* the parent's descriptor (the default) */
    RILL_STDIO_PIPE = 1,      /* a pipe: a rill_stream (stdin RILL_MODE_WRITE, the others RILL_MODE_READ) */
    RILL_STDIO_DEVNULL = 2,   /* /dev/null */
    RILL_STDIO_FD = 3,        /* the descriptor in .fd (the parent keeps its own) */
    RILL_STDIO_STDOUT = 4     /* stderr only: wherever stdout goes */
};
enum { RILL_SPAWN_NEW_PGROUP = 1, RILL_SPAWN_NEW_SESSION = 2 };
enum { RILL_PROCESS_KILL = 1 };   /* rill_process_close: SIGKILL the child first */

typedef struct rill_spawn_stdio {
    int how;                  /* RILL_STDIO_INHERIT, _PIPE, _DEVNULL, _FD, _STDOUT */
    int fd;                   /* RILL_STDIO_FD only */
} rill_spawn_stdio;

typedef struct rill_spawn_opts {
    const char *const *argv;  /* NULL-terminated; argv[0] without '/' is searched in PATH */
    const char *const *envp;  /* NULL: the parent's environment */
    const char *cwd;          /* NULL: the parent's */
    rill_spawn_stdio stdio[3];/* stdin, stdout, stderr */
    int flags;                /* RILL_SPAWN_NEW_PGROUP, RILL_SPAWN_NEW_SESSION */
    size_t limit;             /* buffer limit of the pipe streams; 0: 64 KiB */
    void *reserved[4];        /* must be zero */
} rill_spawn_opts;

typedef void (*rill_spawn_cb)(rill_process *p, int status, void *ud);   /* p NULL when status < 0 */
/* returncode: the exit status, or minus the signal that ended the child (asyncio). */
typedef void (*rill_wait_cb)(rill_process *p, int returncode, void *ud);

typedef struct rill_communicate_result {
    int status;               /* 0, or the first read error; EPIPE on stdin is not one */
    int returncode;
    const char *out;          /* all of stdout (NULL, 0 when not a pipe); valid during the callback */
    size_t outlen;
    const char *err;          /* all of stderr */
    size_t errlen;
} rill_communicate_result;
typedef void (*rill_communicate_cb)(rill_process *p, const rill_communicate_result *r, void *ud);

/* Starts a child. 0: cb runs once, from the loop, with the process or the error
   (-ENOENT, -EACCES for a program that cannot be executed, -EMFILE, ...); < 0: no callback. */
int   rill_spawn(rill_loop *loop, const rill_spawn_opts *opts, rill_spawn_cb cb, void *ud);
pid_t rill_process_pid(const rill_process *p);
/* The pipe streams; NULL when not a pipe or once the stream is freed. */
rill_stream *rill_process_stdin(const rill_process *p);
rill_stream *rill_process_stdout(const rill_process *p);
rill_stream *rill_process_stderr(const rill_process *p);
/* 1 and *returncode once the child was reaped; 0 while it runs. */
int   rill_process_returncode(const rill_process *p, int *returncode);
/* cb runs once the child has exited and was reaped (next iteration if it already was). */
int   rill_process_wait(rill_process *p, rill_wait_cb cb, void *ud);
/* send_signal; -ESRCH once the child was reaped (its pid may be someone else's). */
int   rill_process_signal(rill_process *p, int sig);
/* Writes input to stdin and closes it, reads stdout and stderr to EOF, waits. */
int   rill_process_communicate(rill_process *p, const void *input, size_t len,
                               rill_communicate_cb cb, void *ud);
/* Releases the handle: closes the pipe streams still open, SIGKILLs the child with
   RILL_PROCESS_KILL; the child is reaped whenever it exits (the loop stays alive). */
int   rill_process_close(rill_process *p, int flags);

#ifdef __cplusplus
}
#endif
#endif /* RILL_H */
