/* soak — `make soak`: rill's echo_server under many concurrent clients, checked
 * byte for byte. Not part of `make check`; bounded to a few minutes.
 *
 *   soak --server PATH/echo_server [--clients N] [--tls-clients N] [--idle N]
 *        [--active N] [--size BYTES] [--timeout SEC]
 *
 * Three phases, each against a fresh `echo_server --mode chunk` started as a
 * subprocess (127.0.0.1, port 0) and stopped by its PID at the end:
 *
 *   plain  N clients (1000) connect; once all are connected, each sends SIZE
 *          bytes (1 MiB) of pseudo-random data in writes of random sizes
 *          (1..64 KiB, each waited for: write + drain) while reading the echo;
 *          the CRC-32 of what came back must equal that of what was sent.
 *   tls    the same over TLS with 200 clients (echo_server --tls CERT KEY,
 *          certificates made at run time into a temporary directory with the
 *          openssl command; the client verifies them).
 *   idle   10 000 connections are opened and held idle while 10 clients echo
 *          SIZE bytes each; then every idle connection proves it is still
 *          served by one short echo.
 *
 * For each phase: connections held at once, bytes verified, errors (must be
 * 0), the server's peak RSS (VmHWM) and its descriptor count at the start and
 * at the end (must be equal). RLIMIT_NOFILE is raised to its hard limit first
 * (the server inherits it). The clients are written with rill itself.
 * The last line is `soak: N passed, M failed`; the exit status is 0 only when
 * every phase passed.
 */
#include <rill.h>
#include "support/certs.h"
#include "support/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define MAX_CONNECTING 64        /* connects in flight: the server's backlog is 100 */
#define CHUNK_MAX      65536
#define IDLE_PING      "still here\n"

/* ------------------------------------------------------------------ CRC-32 */

static uint32_t crc_table[256];

static void crc_init(void)
{
    uint32_t i, k, c;
    for (i = 0; i < 256; i++) {
        for (c = i, k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* Running CRC-32 (IEEE): start at 0. */
static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------- the server */

static pid_t server_pid = -1;

/* Stops the server by its PID: SIGTERM (echo_server closes gracefully and exits 0),
   SIGKILL after 5 s. Returns its exit status, 128 + signal, or -1. */
static int stop_server(void)
{
    int st = 0, i;
    if (server_pid <= 0)
        return -1;
    kill(server_pid, SIGTERM);
    for (i = 0; i < 500; i++) {
        if (waitpid(server_pid, &st, WNOHANG) == server_pid)
            break;
        usleep(10000);
    }
    if (i == 500) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, &st, 0);
    }
    server_pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

static void on_alarm(int sig)
{
    static const char msg[] = "soak: time limit reached, stopping\nsoak: 0 passed, 1 failed\n";
    (void)sig;
    if (server_pid > 0)
        kill(server_pid, SIGKILL);   /* only the server we started, by its PID */
    if (write(1, msg, sizeof msg - 1) < 0) { /* nothing left to do */ }
    _exit(2);
}

/* Starts echo_server with args; returns its port (from "Serving on HOST:PORT") or -1. */
static int start_server(const char *path, const char *cert, const char *key)
{
    int out[2], port = -1;
    char line[512];
    size_t used = 0;
    uint64_t end;

    if (pipe(out) < 0)
        return -1;
    fflush(NULL);
    server_pid = fork();
    if (server_pid < 0)
        return -1;
    if (server_pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        if (cert != NULL)
            execl(path, path, "--host", "127.0.0.1", "--port", "0", "--mode", "chunk",
                  "--tls", cert, key, (char *)NULL);
        else
            execl(path, path, "--host", "127.0.0.1", "--port", "0", "--mode", "chunk", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    end = now_ms() + 10000;
    while (now_ms() < end && used < sizeof line - 1) {
        ssize_t n = read(out[0], line + used, 1);
        if (n <= 0)
            break;
        used++;
        if (line[used - 1] == '\n') {
            char *colon;
            line[used] = '\0';
            if (strncmp(line, "Serving on ", 11) == 0 && (colon = strrchr(line, ':')) != NULL)
                port = atoi(colon + 1);
            break;
        }
    }
    /* Its later output is not needed: reading end closed, SIGPIPE is not a concern
       since echo_server prints only in --mode once. */
    close(out[0]);
    if (port <= 0)
        stop_server();
    return port;
}

/* ---------------------------------------------------------------- clients */

enum { C_NEW, C_CONNECTING, C_OPEN, C_RUNNING, C_PINGING, C_CLOSING, C_DONE };

struct phase;

typedef struct client {
    struct phase *ph;
    rill_stream *s;
    int state, idle, failed, ended;
    uint32_t rng;
    size_t sent, recvd, total;
    uint32_t crc_tx, crc_rx;
} client;

typedef struct phase {
    const char *name;
    rill_loop *loop;
    rill_tls *tls;
    int port;
    client *cl;                 /* idle ones first, then active ones */
    int n, nidle;
    int next, connecting, connected, open, max_open;
    int active_done, idle_done, idle_ok, finished;
    int errors;
    unsigned long long verified;
    char first_error[256];
} phase;

static unsigned char chunk[CHUNK_MAX];

static void fail(client *c, const char *what, int status)
{
    phase *ph = c->ph;
    if (c->failed)
        return;
    c->failed = 1;
    ph->errors++;
    if (ph->first_error[0] == '\0')
        snprintf(ph->first_error, sizeof ph->first_error, "client %ld: %s: %s",
                 (long)(c - ph->cl), what, status ? rill_strerror(status) : "mismatch");
}

static void closed_cb(rill_stream *s, int status, void *ud)
{
    client *c = ud;
    (void)s; (void)status;
    c->state = C_DONE;
    c->s = NULL;
    c->ph->open--;
    c->ph->finished++;
}

/* An active client is over (verified or failed): counted once. */
static void active_end(client *c)
{
    if (c->idle || c->ended)
        return;
    c->ended = 1;
    c->ph->active_done++;
}

static void finish(client *c)
{
    active_end(c);
    if (c->s == NULL || c->state == C_CLOSING || c->state == C_DONE)
        return;
    c->state = C_CLOSING;
    if (rill_close(c->s, closed_cb, c) < 0) {
        rill_abort(c->s);
        closed_cb(c->s, 0, c);
    }
}

static void tx_next(rill_stream *s, int status, void *ud)
{
    client *c = ud;
    size_t n, i;
    int rc;

    if (status < 0) {
        fail(c, "write", status);
        finish(c);
        return;
    }
    if (c->sent >= c->total || c->failed)
        return;
    n = 1 + xorshift(&c->rng) % CHUNK_MAX;
    if (n > c->total - c->sent)
        n = c->total - c->sent;
    for (i = 0; i + 4 <= n; i += 4) {
        uint32_t r = xorshift(&c->rng);
        memcpy(chunk + i, &r, 4);
    }
    for (; i < n; i++)
        chunk[i] = (unsigned char)xorshift(&c->rng);
    c->crc_tx = crc32_update(c->crc_tx, chunk, n);
    c->sent += n;
    /* the callback is a drain: the next chunk goes once the buffer allows */
    if ((rc = rill_write(s, chunk, n, tx_next, c)) < 0) {
        fail(c, "write", rc);
        finish(c);
    }
}

static void rx(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    client *c = ud;
    int rc;

    if (status < 0 || len == 0) {
        fail(c, len == 0 && status == 0 ? "early EOF" : "read", status);
        finish(c);
        return;
    }
    c->crc_rx = crc32_update(c->crc_rx, (const unsigned char *)data, len);
    c->recvd += len;
    if (c->recvd > c->total) {
        fail(c, "too many bytes", 0);
        finish(c);
        return;
    }
    if (c->recvd == c->total) {
        if (c->crc_rx != c->crc_tx)
            fail(c, "CRC-32 of the echo", 0);
        else
            c->ph->verified += c->recvd;
        finish(c);
        return;
    }
    if ((rc = rill_read(s, 65536, rx, c)) < 0) {
        fail(c, "read", rc);
        finish(c);
    }
}

static void start_transfer(client *c)
{
    int rc;
    c->state = C_RUNNING;
    if ((rc = rill_read(c->s, 65536, rx, c)) < 0) {
        fail(c, "read", rc);
        finish(c);
        return;
    }
    tx_next(c->s, 0, c);
}

static void ping_cb(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    client *c = ud;
    (void)s;
    if (status < 0 || len != sizeof IDLE_PING - 1 || memcmp(data, IDLE_PING, len) != 0)
        fail(c, "idle echo", status);
    else
        c->ph->idle_ok++;
    c->ph->idle_done++;
    finish(c);
}

static void start_ping(client *c)
{
    int rc;
    c->state = C_PINGING;
    if ((rc = rill_write(c->s, IDLE_PING, sizeof IDLE_PING - 1, NULL, NULL)) < 0 ||
        (rc = rill_readexactly(c->s, sizeof IDLE_PING - 1, ping_cb, c)) < 0) {
        fail(c, "idle echo", rc);
        c->ph->idle_done++;
        finish(c);
    }
}

static void pump(phase *ph);

static void connected(rill_stream *s, int status, void *ud)
{
    client *c = ud;
    phase *ph = c->ph;
    int i;

    ph->connecting--;
    if (status < 0) {
        c->state = C_DONE;
        fail(c, "connect", status);
        ph->finished++;
        if (c->idle)
            ph->idle_done++;
        active_end(c);
    } else {
        c->s = s;
        c->state = C_OPEN;
        ph->connected++;
        if (++ph->open > ph->max_open)
            ph->max_open = ph->open;
    }
    pump(ph);
    /* Everyone is in: the active clients start together. */
    if (ph->next == ph->n && ph->connecting == 0)
        for (i = ph->nidle; i < ph->n; i++)
            if (ph->cl[i].state == C_OPEN)
                start_transfer(&ph->cl[i]);
}

static void pump(phase *ph)
{
    rill_connect_opts o;
    memset(&o, 0, sizeof o);
    o.tls = ph->tls;
    o.timeout_ms = 30000;
    while (ph->connecting < MAX_CONNECTING && ph->next < ph->n) {
        client *c = &ph->cl[ph->next++];
        int rc;
        c->state = C_CONNECTING;
        ph->connecting++;
        if ((rc = rill_connect(ph->loop, "127.0.0.1", ph->port, &o, connected, c, NULL)) < 0) {
            ph->connecting--;
            c->state = C_DONE;
            fail(c, "connect", rc);
            ph->finished++;
            active_end(c);
        }
    }
}

/* ------------------------------------------------------------------ phases */

typedef struct opts {
    const char *server;
    int clients, tls_clients, idle, active, timeout_s;
    size_t size;
} opts;

/* Runs one phase against a fresh server; 1 when it passed. */
static int run_phase(const opts *op, const char *name, int nactive, int nidle, const test_certs *certs)
{
    phase ph;
    rill_tls_opts to;
    int i, fds0 = -1, fds1 = -1, pass, exit_status;
    long hwm = -1;
    uint64_t t0 = now_ms(), deadline = t0 + (uint64_t)op->timeout_s * 1000u, wait_end;

    memset(&ph, 0, sizeof ph);
    ph.name = name;
    ph.n = nactive + nidle;
    ph.nidle = nidle;
    if ((ph.cl = calloc((size_t)ph.n, sizeof *ph.cl)) == NULL || (ph.loop = rill_loop_new(NULL)) == NULL) {
        printf("soak: %s: cannot start: %s\n", name, strerror(errno));
        free(ph.cl);
        return 0;
    }
    if (certs != NULL) {
        memset(&to, 0, sizeof to);
        to.ca_file = certs->ca;
        if ((ph.tls = rill_tls_client_new(&to)) == NULL) {
            printf("soak: %s: client TLS context: %s\n", name, rill_strerror(-errno));
            rill_loop_free(ph.loop);
            free(ph.cl);
            return 0;
        }
    }
    ph.port = start_server(op->server, certs ? certs->server : NULL, certs ? certs->key : NULL);
    if (ph.port <= 0) {
        printf("soak: %s: could not start %s\n", name, op->server);
        rill_tls_free(ph.tls);
        rill_loop_free(ph.loop);
        free(ph.cl);
        return 0;
    }
    fds0 = test_proc_fds(server_pid);
    for (i = 0; i < ph.n; i++) {
        client *c = &ph.cl[i];
        c->ph = &ph;
        c->idle = i < nidle;
        c->rng = 0x9E3779B9u ^ (uint32_t)(i * 2654435761u);
        if (c->rng == 0)
            c->rng = 1;
        c->total = c->idle ? 0 : op->size;
    }
    pump(&ph);
    while (ph.finished < ph.n && now_ms() < deadline) {
        /* the active clients are done: the idle ones prove they are still served */
        if (nidle > 0 && ph.active_done == nactive && ph.next == ph.n && ph.connecting == 0) {
            for (i = 0; i < nidle; i++)
                if (ph.cl[i].state == C_OPEN)
                    start_ping(&ph.cl[i]);
        }
        rill_loop_run_once(ph.loop, 100);
    }
    if (ph.finished < ph.n) {
        int stuck = 0;
        for (i = 0; i < ph.n; i++)
            if (ph.cl[i].s != NULL) {
                if (!ph.cl[i].failed)
                    fail(&ph.cl[i], "time limit", RILL_ETIMEDOUT);
                rill_abort(ph.cl[i].s);
                stuck++;
            }
        printf("soak: %s: %d clients still running at the time limit\n", name, stuck);
    }
    wait_end = now_ms() + 5000;
    while (rill_loop_alive(ph.loop) && now_ms() < wait_end)
        rill_loop_run_once(ph.loop, 50);
    /* the server closes its side of every connection: its descriptors come back */
    wait_end = now_ms() + 10000;
    while ((fds1 = test_proc_fds(server_pid)) != fds0 && now_ms() < wait_end)
        usleep(20000);
    hwm = test_proc_status_kib(server_pid, "VmHWM");
    exit_status = stop_server();
    if (rill_loop_free(ph.loop) != 0)
        printf("soak: %s: the client loop did not free\n", name);
    rill_tls_free(ph.tls);
    pass = ph.errors == 0 && fds0 >= 0 && fds0 == fds1 && ph.verified == (unsigned long long)nactive * op->size &&
           ph.idle_ok == nidle && ph.max_open == ph.n && exit_status == 0;
    printf("soak: %s: %d clients x %lu B%s%s: %d connections held, %llu bytes verified (CRC-32), "
           "%d errors; server VmHWM %ld KiB, descriptors %d at start, %d at end, exit %d; %.1f s: %s\n",
           name, nactive, (unsigned long)op->size, nidle ? ", idle held: " : "",
           nidle ? (ph.idle_ok == nidle ? "all still served" : "SOME LOST") : "",
           ph.max_open, ph.verified, ph.errors, hwm, fds0, fds1, exit_status, (double)(now_ms() - t0) / 1000.0,
           pass ? "passed" : "FAILED");
    if (ph.first_error[0] != '\0')
        printf("soak: %s: first error: %s\n", name, ph.first_error);
    free(ph.cl);
    fflush(stdout);
    return pass;
}

static int arg_int(const char *v, long lo, long hi, long *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

int main(int argc, char **argv)
{
    opts op;
    struct rlimit rl;
    const test_certs *certs;
    const char *why = NULL;
    int i, passed = 0, failed = 0;
    long v;

    memset(&op, 0, sizeof op);
    op.clients = 1000;
    op.tls_clients = 200;
    op.idle = 10000;
    op.active = 10;
    op.size = 1024 * 1024;
    op.timeout_s = 120;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL) {
            fprintf(stderr, "soak: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--server") == 0)
            op.server = val;
        else if (strcmp(a, "--clients") == 0 && arg_int(val, 0, 100000, &v) == 0)
            op.clients = (int)v;
        else if (strcmp(a, "--tls-clients") == 0 && arg_int(val, 0, 100000, &v) == 0)
            op.tls_clients = (int)v;
        else if (strcmp(a, "--idle") == 0 && arg_int(val, 0, 1000000, &v) == 0)
            op.idle = (int)v;
        else if (strcmp(a, "--active") == 0 && arg_int(val, 0, 100000, &v) == 0)
            op.active = (int)v;
        else if (strcmp(a, "--size") == 0 && arg_int(val, 1, 1L << 30, &v) == 0)
            op.size = (size_t)v;
        else if (strcmp(a, "--timeout") == 0 && arg_int(val, 1, 3600, &v) == 0)
            op.timeout_s = (int)v;
        else {
            fprintf(stderr, "soak: bad option %s %s\n", a, val);
            return 2;
        }
    }
    if (op.server == NULL) {
        fprintf(stderr, "usage: soak --server PATH/echo_server [--clients N] [--tls-clients N] "
                        "[--idle N] [--active N] [--size BYTES] [--timeout SEC]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);   /* the server's stdout pipe is closed early */
    signal(SIGALRM, on_alarm);
    alarm((unsigned)(3 * op.timeout_s + 120));
    crc_init();
    /* Descriptors for every client here, and (inherited) for the server. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        long room = (long)rl.rlim_cur - 64;
        if (op.idle + op.active > room) {
            printf("soak: RLIMIT_NOFILE is %ld: idle connections lowered from %d to %ld\n",
                   (long)rl.rlim_cur, op.idle, room - op.active);
            op.idle = (int)(room - op.active);
        }
        if (op.clients > room)
            op.clients = (int)room;
    }

    if (op.clients > 0) {
        if (run_phase(&op, "plain", op.clients, 0, NULL))
            passed++;
        else
            failed++;
    }
    if (op.tls_clients > 0) {
        certs = test_certs_get(&why);
        if (certs == NULL) {
            printf("soak: tls: no certificates (%s)\n", why != NULL ? why : "openssl failed");
            failed++;
        } else if (run_phase(&op, "tls", op.tls_clients, 0, certs)) {
            passed++;
        } else {
            failed++;
        }
    }
    if (op.idle > 0 || op.active > 0) {
        if (run_phase(&op, "idle", op.active, op.idle, NULL))
            passed++;
        else
            failed++;
    }
    printf("soak: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
