/* loadgen — the load generator of `make bench`: plain C, non-blocking sockets and
 * poll(), no library.
 *
 *   loadgen --port P [--host 127.0.0.1] --mode pingpong|line|bulk|connrate|idle
 *           [--conns N] [--size BYTES] [--inflight K] [--idle M]
 *           [--warmup SEC] [--duration SEC] [--count N] [--pid SERVER_PID] [--timeout SEC]
 *
 * pingpong  N connections, each sends a SIZE-byte message (the last byte '\n') and
 *           waits for the whole echo before sending the next: round trips per second.
 * line      the same; the server is expected to be in line mode (the runner starts it so).
 * bulk      one connection writes a continuous stream and reads the echo: MB/s (1e6 B).
 * connrate  K connections in flight, each: connect, write "ping\n", read the echo,
 *           close: connections per second.
 * idle      opens M connections (each proves it was accepted by one echoed byte, then
 *           stays idle), then one more connection ping-pongs: round trips per second,
 *           and the server's RSS before (srv_rss0_kb) and with (srv_rss_kb) them.
 *
 * Measuring: the first --warmup seconds are not counted, then --duration seconds are.
 * --count N instead does exactly N round trips (pingpong, line) and measures them all,
 * for the runner's strace differencing. With --pid, the server's CPU time (utime+stime
 * from /proc/PID/stat) is read at both ends of the measured window.
 *
 * Output: one line on stdout,
 *   RESULT mode=... conns=... size=... ops=... secs=... rate=... unit=... srv_cpu_s=...
 *          cpu_us_per_op=... gen_cpu=... srv_rss0_kb=... srv_rss_kb=... setup_s=... errors=...
 * (ops are round trips, MB or connections; cpu_us_per_op is server CPU microseconds per
 * op; gen_cpu is this program's own CPU use in the window as a fraction of one core;
 * -1 where not measured). Exit 0 on success, 1 on a failure (message on stderr),
 * 2 on a bad argument.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum mode { M_PINGPONG, M_LINE, M_BULK, M_CONNRATE, M_IDLE };
static const char *const mode_names[] = { "pingpong", "line", "bulk", "connrate", "idle" };

static struct {
    const char *host;
    int port;
    enum mode mode;
    int conns;
    size_t size;
    int inflight;
    int idle;
    double warmup, duration, timeout;
    long count;
    pid_t pid;
} opt = { "127.0.0.1", 0, M_PINGPONG, 1, 64, 8, 10000, 0.5, 2.0, 0, 0, 0 };

static struct sockaddr_in server_addr;
static double deadline;          /* hard bound: the whole run */
static long errors;

/* ------------------------------------------------------------------ utilities */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check_deadline(double t)
{
    if (t > deadline)
        die("timed out after %.1f s (mode %s)", opt.timeout, mode_names[opt.mode]);
}

/* Milliseconds until t (at least 0, at most 100 so the deadline is checked). */
static int ms_until(double t, double tnow)
{
    double ms = (t - tnow) * 1000.0;
    if (ms < 0)
        return 0;
    if (ms > 100)
        return 100;
    return (int)ms + 1;
}

/* Server CPU seconds (utime + stime) from /proc/PID/stat; -1 if unknown. */
static double server_cpu(void)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;
    size_t n;
    int field;

    if (opt.pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)opt.pid);
    if (!(f = fopen(path, "r")))
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (!(p = strrchr(buf, ')')))
        return -1;
    /* after ") " comes field 3 (state); utime is field 14, stime 15 */
    p++;
    for (field = 3; field <= 15 && *p; field++) {
        while (*p == ' ')
            p++;
        if (field == 14)
            ut = strtoul(p, NULL, 10);
        else if (field == 15)
            st = strtoul(p, NULL, 10);
        while (*p && *p != ' ')
            p++;
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Server resident set size in kB from /proc/PID/status; -1 if unknown. */
static long server_rss_kb(void)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    if (opt.pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%ld/status", (long)opt.pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* One end of the measured window. */
struct snap {
    double t, srv, self, ops;
};

static void take_snap(struct snap *s, double ops)
{
    s->t = now();
    s->srv = server_cpu();
    s->self = self_cpu();
    s->ops = ops;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        die("fcntl: %s", strerror(errno));
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* A non-blocking socket with connect() started; -1 (errors counted) on failure. */
static int start_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    set_nonblock(fd);
    set_nodelay(fd);
    if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0 &&
        errno != EINPROGRESS) {
        errors++;
        close(fd);
        return -1;
    }
    return fd;
}

/* Called on POLLOUT of a connecting socket: 0 when connected, -1 (counted) on error. */
static int finish_connect(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        errors++;
        return -1;
    }
    return 0;
}

/* Blocking-style connect for a few connections: started non-blocking, waited with poll. */
static int connect_wait(void)
{
    for (;;) {
        struct pollfd p;
        int fd = start_connect();
        if (fd < 0) {
            check_deadline(now());
            continue;
        }
        p.fd = fd;
        p.events = POLLOUT;
        while (poll(&p, 1, 100) == 0)
            check_deadline(now());
        if (finish_connect(fd) == 0)
            return fd;
        close(fd);
        if (errors > 100)
            die("connect to %s:%d failed %ld times", opt.host, opt.port, errors);
    }
}

/* Half-close every connection and wait (bounded) for the server's EOF, so servers
 * finish their connections gracefully; then close them. */
static void drain_close(int *fds, int n)
{
    struct pollfd *pf = calloc((size_t)n, sizeof *pf);
    char buf[65536];
    double until = now() + 3.0;
    int i, open = 0;

    if (!pf)
        die("out of memory");
    for (i = 0; i < n; i++) {
        pf[i].fd = fds[i];
        pf[i].events = POLLIN;
        if (fds[i] >= 0) {
            shutdown(fds[i], SHUT_WR);
            open++;
        }
    }
    while (open > 0 && now() < until) {
        if (poll(pf, (nfds_t)n, 100) < 0 && errno != EINTR)
            break;
        for (i = 0; i < n; i++) {
            ssize_t r;
            if (pf[i].fd < 0 || !pf[i].revents)
                continue;
            r = read(pf[i].fd, buf, sizeof buf);
            if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR)))
                continue;
            close(pf[i].fd);
            pf[i].fd = -1;
            open--;
        }
    }
    for (i = 0; i < n; i++)
        if (pf[i].fd >= 0)
            close(pf[i].fd);
    free(pf);
}

/* -------------------------------------------------------- ping-pong (and line) */

struct pp {
    int fd;
    size_t sent, rcvd;
};

/* Runs ping-pong on n connected sockets: the measured window (warmup, then
 * duration; or exactly opt.count round trips) is returned in s0/s1. */
static void run_pingpong(int *fds, int n, const char *msg, size_t size, struct snap *s0, struct snap *s1)
{
    struct pp *c = calloc((size_t)n, sizeof *c);
    struct pollfd *pf = calloc((size_t)n, sizeof *pf);
    char *buf = malloc(size);
    double ops = 0, t, warm_end, meas_end;
    long started = 0;
    int i, measuring = 0;

    if (!c || !pf || !buf)
        die("out of memory");
    t = now();
    warm_end = t + opt.warmup;
    meas_end = warm_end + opt.duration;
    if (opt.count > 0) {
        take_snap(s0, 0);
        measuring = 1;
    }
    for (i = 0; i < n; i++) {
        c[i].fd = fds[i];
        pf[i].fd = fds[i];
        pf[i].events = POLLIN | POLLOUT;
        if (opt.count > 0 && started >= opt.count)
            pf[i].fd = -1;      /* more connections than round trips */
        else
            started++;
    }
    for (;;) {
        t = now();
        check_deadline(t);
        if (opt.count <= 0) {
            if (!measuring && t >= warm_end) {
                take_snap(s0, ops);
                measuring = 1;
            }
            if (measuring && t >= meas_end) {
                take_snap(s1, ops);
                break;
            }
        }
        if (poll(pf, (nfds_t)n, opt.count > 0 ? 100 : ms_until(measuring ? meas_end : warm_end, t)) < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }
        for (i = 0; i < n; i++) {
            struct pp *p = &c[i];
            short re = pf[i].revents;
            ssize_t r;

            if (!re || p->fd < 0)
                continue;
            if (p->sent < size && (re & (POLLOUT | POLLERR | POLLHUP))) {
                r = write(p->fd, msg + p->sent, size - p->sent);
                if (r < 0 && errno != EAGAIN && errno != EINTR)
                    die("write: %s", strerror(errno));
                if (r > 0)
                    p->sent += (size_t)r;
            }
            if (re & (POLLIN | POLLERR | POLLHUP)) {
                r = read(p->fd, buf, size - p->rcvd);
                if (r == 0)
                    die("server closed a connection during ping-pong");
                if (r < 0) {
                    if (errno != EAGAIN && errno != EINTR)
                        die("read: %s", strerror(errno));
                } else {
                    if (memcmp(buf, msg + p->rcvd, (size_t)r) != 0)
                        die("echo mismatch");
                    p->rcvd += (size_t)r;
                    if (p->rcvd == size) {
                        ops++;
                        p->rcvd = 0;
                        p->sent = 0;
                        if (opt.count > 0 && started >= opt.count) {
                            /* enough round trips started: this connection stops */
                            pf[i].fd = -1;
                            if (ops >= (double)opt.count) {
                                take_snap(s1, ops);
                                goto out;
                            }
                            continue;
                        }
                        started++;
                        r = write(p->fd, msg, size);
                        if (r < 0 && errno != EAGAIN && errno != EINTR)
                            die("write: %s", strerror(errno));
                        if (r > 0)
                            p->sent = (size_t)r;
                    }
                }
            }
            pf[i].events = (short)(POLLIN | (p->sent < size ? POLLOUT : 0));
        }
    }
out:
    free(c);
    free(pf);
    free(buf);
}

static void make_msg(char *msg, size_t size)
{
    size_t i;
    for (i = 0; i < size; i++)
        msg[i] = (char)('a' + (int)(i % 26));
    msg[size - 1] = '\n';
}

static void mode_pingpong(struct snap *s0, struct snap *s1)
{
    int *fds = calloc((size_t)opt.conns, sizeof *fds);
    char *msg = malloc(opt.size);
    int i;

    if (!fds || !msg)
        die("out of memory");
    make_msg(msg, opt.size);
    for (i = 0; i < opt.conns; i++)
        fds[i] = connect_wait();
    run_pingpong(fds, opt.conns, msg, opt.size, s0, s1);
    drain_close(fds, opt.conns);
    free(fds);
    free(msg);
}

/* ------------------------------------------------------------------- bulk */

#define BULK_CHUNK 65536
#define BULK_PATTERN 251            /* stream byte k is pattern[k % 251] */
#define BULK_MAX_OUTSTANDING (8u << 20)

static void mode_bulk(struct snap *s0, struct snap *s1)
{
    static char pat[BULK_CHUNK + BULK_PATTERN], buf[BULK_CHUNK];
    unsigned long long sent = 0, rcvd = 0;
    double t, warm_end, meas_end;
    int fd, measuring = 0;
    struct pollfd p;
    size_t i;

    for (i = 0; i < sizeof pat; i++)
        pat[i] = (char)((i % BULK_PATTERN) * 7 + 1);
    fd = connect_wait();
    t = now();
    warm_end = t + opt.warmup;
    meas_end = warm_end + opt.duration;
    p.fd = fd;
    for (;;) {
        t = now();
        check_deadline(t);
        if (!measuring && t >= warm_end) {
            take_snap(s0, (double)rcvd / 1e6);
            measuring = 1;
        }
        if (measuring && t >= meas_end) {
            take_snap(s1, (double)rcvd / 1e6);
            break;
        }
        p.events = (short)(POLLIN | (sent - rcvd < BULK_MAX_OUTSTANDING ? POLLOUT : 0));
        if (poll(&p, 1, ms_until(measuring ? meas_end : warm_end, t)) < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }
        if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
            ssize_t r = read(fd, buf, sizeof buf);
            if (r == 0)
                die("server closed the bulk connection");
            if (r < 0 && errno != EAGAIN && errno != EINTR)
                die("read: %s", strerror(errno));
            if (r > 0) {
                if (memcmp(buf, pat + rcvd % BULK_PATTERN, (size_t)r) != 0)
                    die("bulk echo mismatch at byte %llu", rcvd);
                rcvd += (unsigned long long)r;
            }
        }
        if (p.revents & POLLOUT) {
            ssize_t r = write(fd, pat + sent % BULK_PATTERN, BULK_CHUNK);
            if (r < 0 && errno != EAGAIN && errno != EINTR)
                die("write: %s", strerror(errno));
            if (r > 0)
                sent += (unsigned long long)r;
        }
    }
    drain_close(&fd, 1);
}

/* -------------------------------------------------------------- connrate */

enum { CR_CONNECTING, CR_WRITING, CR_READING };

static void mode_connrate(struct snap *s0, struct snap *s1)
{
    static const char line[] = "ping\n";
    const size_t len = sizeof line - 1;
    int k = opt.inflight, i, measuring = 0;
    struct pollfd *pf = calloc((size_t)k, sizeof *pf);
    int *state = calloc((size_t)k, sizeof *state);
    size_t *pos = calloc((size_t)k, sizeof *pos);
    double ops = 0, t, warm_end, meas_end;
    char buf[64];

    if (!pf || !state || !pos)
        die("out of memory");
    for (i = 0; i < k; i++) {
        pf[i].fd = -1;
    }
    t = now();
    warm_end = t + opt.warmup;
    meas_end = warm_end + opt.duration;
    for (;;) {
        t = now();
        check_deadline(t);
        if (!measuring && t >= warm_end) {
            take_snap(s0, ops);
            measuring = 1;
        }
        if (measuring && t >= meas_end) {
            take_snap(s1, ops);
            break;
        }
        if (errors > 1000 && errors > ops)
            die("connrate: %ld connection errors against %.0f successes", errors, ops);
        for (i = 0; i < k; i++)
            if (pf[i].fd < 0) {
                pf[i].fd = start_connect();
                pf[i].events = POLLOUT;
                state[i] = CR_CONNECTING;
                pos[i] = 0;
            }
        if (poll(pf, (nfds_t)k, ms_until(measuring ? meas_end : warm_end, t)) < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }
        for (i = 0; i < k; i++) {
            ssize_t r;
            if (pf[i].fd < 0 || !pf[i].revents)
                continue;
            if (state[i] == CR_CONNECTING) {
                if (finish_connect(pf[i].fd) < 0)
                    goto fail;
                state[i] = CR_WRITING;
            }
            if (state[i] == CR_WRITING) {
                r = write(pf[i].fd, line + pos[i], len - pos[i]);
                if (r < 0 && errno != EAGAIN && errno != EINTR)
                    goto fail;
                if (r > 0 && (pos[i] += (size_t)r) == len) {
                    state[i] = CR_READING;
                    pos[i] = 0;
                    pf[i].events = POLLIN;
                }
                continue;
            }
            r = read(pf[i].fd, buf, len - pos[i]);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0 || memcmp(buf, line + pos[i], (size_t)r) != 0)
                goto fail;
            if ((pos[i] += (size_t)r) < len)
                continue;
            close(pf[i].fd);
            pf[i].fd = -1;
            ops++;
            continue;
fail:
            errors++;
            close(pf[i].fd);
            pf[i].fd = -1;
        }
    }
    for (i = 0; i < k; i++)
        if (pf[i].fd >= 0)
            close(pf[i].fd);
    free(pf);
    free(state);
    free(pos);
}

/* ------------------------------------------------------------------- idle */

#define IDLE_BATCH 64    /* handshakes in flight while opening the idle connections: below
                            every server's listen backlog (asyncio and rill: 100) */

static long rss0 = -1, rss1 = -1;
static double setup_secs = -1;

static void mode_idle(struct snap *s0, struct snap *s1)
{
    int *fds = malloc((size_t)opt.idle * sizeof *fds);
    struct pollfd pf[IDLE_BATCH];
    int slot_idx[IDLE_BATCH];
    int opened = 0, done = 0, i, active;
    char *msg = malloc(opt.size), c;
    double t0 = now();

    if (!fds || !msg)
        die("out of memory");
    make_msg(msg, opt.size);
    rss0 = server_rss_kb();
    for (i = 0; i < IDLE_BATCH; i++)
        pf[i].fd = -1;
    /* a slot: connecting (POLLOUT), then waiting for the echo of "\n" (POLLIN) */
    while (done < opt.idle) {
        check_deadline(now());
        for (i = 0; i < IDLE_BATCH; i++)
            if (pf[i].fd < 0 && opened < opt.idle) {
                int fd = start_connect();
                if (fd < 0) {
                    if (errors > 100)
                        die("idle: could not open connection %d: %s", opened, strerror(errno));
                    continue;
                }
                pf[i].fd = fd;
                pf[i].events = POLLOUT;
                slot_idx[i] = opened++;
            }
        if (poll(pf, IDLE_BATCH, 100) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        for (i = 0; i < IDLE_BATCH; i++) {
            if (pf[i].fd < 0 || !pf[i].revents)
                continue;
            if (pf[i].events == POLLOUT) {
                if (finish_connect(pf[i].fd) < 0 || write(pf[i].fd, "\n", 1) != 1)
                    die("idle: connection %d failed", slot_idx[i]);
                pf[i].events = POLLIN;
                continue;
            }
            {
                ssize_t r = read(pf[i].fd, &c, 1);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                if (r != 1 || c != '\n')
                    die("idle: connection %d got no echo (%s, revents 0x%x)", slot_idx[i],
                        r < 0 ? strerror(errno) : r == 0 ? "EOF" : "wrong byte", (unsigned)pf[i].revents);
            }
            fds[slot_idx[i]] = pf[i].fd;
            pf[i].fd = -1;
            done++;
        }
    }
    setup_secs = now() - t0;
    active = connect_wait();
    run_pingpong(&active, 1, msg, opt.size, s0, s1);
    rss1 = server_rss_kb();
    drain_close(&active, 1);
    for (i = 0; i < opt.idle; i++)
        close(fds[i]);
    free(fds);
    free(msg);
}

/* ------------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fputs("usage: loadgen --port P [--host 127.0.0.1] --mode pingpong|line|bulk|connrate|idle\n"
          "               [--conns N] [--size BYTES] [--inflight K] [--idle M]\n"
          "               [--warmup SEC] [--duration SEC] [--count N] [--pid PID] [--timeout SEC]\n",
          f);
}

static double num_arg(const char *name, const char *v, double lo, double hi)
{
    char *end;
    double d = strtod(v, &end);
    if (!*v || *end || d < lo || d > hi) {
        fprintf(stderr, "loadgen: bad value for %s: %s\n", name, v);
        exit(2);
    }
    return d;
}

int main(int argc, char **argv)
{
    struct snap s0, s1;
    struct rlimit rl;
    double secs, ops, srv = -1, per_op = -1, gen = -1;
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "loadgen: bad argument: %s\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--host"))
            opt.host = v;
        else if (!strcmp(a, "--port"))
            opt.port = (int)num_arg(a, v, 1, 65535);
        else if (!strcmp(a, "--mode")) {
            int m;
            for (m = 0; m < 5 && strcmp(v, mode_names[m]); m++)
                ;
            if (m == 5) {
                fprintf(stderr, "loadgen: bad mode: %s\n", v);
                return 2;
            }
            opt.mode = (enum mode)m;
        } else if (!strcmp(a, "--conns"))
            opt.conns = (int)num_arg(a, v, 1, 100000);
        else if (!strcmp(a, "--size"))
            opt.size = (size_t)num_arg(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--inflight"))
            opt.inflight = (int)num_arg(a, v, 1, 10000);
        else if (!strcmp(a, "--idle"))
            opt.idle = (int)num_arg(a, v, 0, 1000000);
        else if (!strcmp(a, "--warmup"))
            opt.warmup = num_arg(a, v, 0, 3600);
        else if (!strcmp(a, "--duration"))
            opt.duration = num_arg(a, v, 0.01, 3600);
        else if (!strcmp(a, "--count"))
            opt.count = (long)num_arg(a, v, 1, 1e12);
        else if (!strcmp(a, "--pid"))
            opt.pid = (pid_t)num_arg(a, v, 1, 1e9);
        else if (!strcmp(a, "--timeout"))
            opt.timeout = num_arg(a, v, 0.1, 36000);
        else {
            fprintf(stderr, "loadgen: bad argument: %s\n", a);
            return 2;
        }
    }
    if (opt.port == 0) {
        fprintf(stderr, "loadgen: --port is required\n");
        return 2;
    }
    memset(&server_addr, 0, sizeof server_addr);
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((unsigned short)opt.port);
    if (inet_pton(AF_INET, opt.host, &server_addr.sin_addr) != 1) {
        fprintf(stderr, "loadgen: --host must be an IPv4 address: %s\n", opt.host);
        return 2;
    }
    if (opt.count > 0 && opt.mode != M_PINGPONG && opt.mode != M_LINE) {
        fprintf(stderr, "loadgen: --count only with --mode pingpong or line\n");
        return 2;
    }
    if (opt.timeout <= 0)
        opt.timeout = opt.warmup + opt.duration + 60;
    deadline = now() + opt.timeout;
    signal(SIGPIPE, SIG_IGN);
    /* 10 000 idle connections need more descriptors than the usual soft limit */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    switch (opt.mode) {
    case M_PINGPONG:
    case M_LINE:
        mode_pingpong(&s0, &s1);
        break;
    case M_BULK:
        mode_bulk(&s0, &s1);
        break;
    case M_CONNRATE:
        mode_connrate(&s0, &s1);
        break;
    case M_IDLE:
        mode_idle(&s0, &s1);
        break;
    }

    secs = s1.t - s0.t;
    ops = s1.ops - s0.ops;
    if (s0.srv >= 0 && s1.srv >= 0) {
        srv = s1.srv - s0.srv;
        if (ops > 0)
            per_op = srv * 1e6 / ops;
    }
    if (secs > 0)
        gen = (s1.self - s0.self) / secs;
    printf("RESULT mode=%s conns=%d size=%lu ops=%.3f secs=%.4f rate=%.2f unit=%s "
           "srv_cpu_s=%.3f cpu_us_per_op=%.3f gen_cpu=%.3f srv_rss0_kb=%ld srv_rss_kb=%ld "
           "setup_s=%.3f errors=%ld\n",
           mode_names[opt.mode],
           opt.mode == M_CONNRATE ? opt.inflight : opt.mode == M_BULK ? 1 : opt.mode == M_IDLE ? opt.idle + 1 : opt.conns,
           (unsigned long)opt.size, ops, secs, secs > 0 ? ops / secs : 0.0,
           opt.mode == M_BULK ? "MB/s" : opt.mode == M_CONNRATE ? "conn/s" : "rt/s",
           srv, per_op, gen, rss0, rss1 < 0 ? server_rss_kb() : rss1, setup_secs, errors);
    fflush(stdout);
    return 0;
}
