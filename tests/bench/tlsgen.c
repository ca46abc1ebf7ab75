/* tlsgen — the TLS load generator of `make bench`: wolfSSL over non-blocking sockets
 * and poll(). (loadgen has no library; TLS needs one.)
 *
 *   tlsgen --port P [--host 127.0.0.1] --mode bulk|handshake [--inflight K]
 *          [--warmup SEC] [--duration SEC] [--pid SERVER_PID] [--timeout SEC]
 *
 * bulk       one TLS connection writes a continuous stream (16 KiB records) and reads
 *            the echo: MB/s (1e6 B) of echoed plaintext.
 * handshake  K connections in flight, each: connect, full handshake (no resumption,
 *            no certificate check: the client's cost is kept small), write "ping\n",
 *            read the echo, close_notify, close: handshakes per second.
 *
 * Output: one `RESULT key=value ...` line like loadgen's (ops are MB or handshakes;
 * cpu_us_per_op is the server's CPU per op from /proc/PID/stat).
 */
#define _POSIX_C_SOURCE 200809L

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

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
#include <time.h>
#include <unistd.h>

static struct {
    const char *host;
    int port, bulk, inflight;
    double warmup, duration, timeout;
    long pid;
} opt = { "127.0.0.1", 0, 1, 8, 0.5, 2.0, 0, 0 };

static struct sockaddr_in server_addr;
static WOLFSSL_CTX *ctx;
static char cipher[80] = "-";         /* what the bulk connection negotiated */
static double deadline;
static long errors;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tlsgen: ", stderr);
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

static int ms_until(double t, double tnow)
{
    double ms = (t - tnow) * 1000.0;
    return ms < 0 ? 0 : ms > 100 ? 100 : (int)ms + 1;
}

static double server_cpu(void)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;
    size_t n;
    int field;

    if (opt.pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%ld/stat", opt.pid);
    if (!(f = fopen(path, "r")))
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (!(p = strrchr(buf, ')')))
        return -1;
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

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

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

static int start_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, fl;
    if (fd < 0)
        die("socket: %s", strerror(errno));
    fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        errors++;
        return -1;
    }
    return fd;
}

/* poll events wolfSSL waits for after a call returned ret (<= 0); -1 on a real error */
static int wants(WOLFSSL *ssl, int ret)
{
    int e = wolfSSL_get_error(ssl, ret);
    if (e == WOLFSSL_ERROR_WANT_READ)
        return POLLIN;
    if (e == WOLFSSL_ERROR_WANT_WRITE)
        return POLLOUT;
    return -1;
}

static WOLFSSL *new_ssl(int fd)
{
    WOLFSSL *ssl = wolfSSL_new(ctx);
    if (!ssl)
        die("wolfSSL_new failed");
    wolfSSL_set_fd(ssl, fd);
    return ssl;
}

/* ------------------------------------------------------------------- bulk */

#define CHUNK 16384
#define PATTERN 251
#define MAX_OUTSTANDING (8u << 20)

static void mode_bulk(struct snap *s0, struct snap *s1)
{
    static char pat[CHUNK + PATTERN], buf[65536];
    unsigned long long sent = 0, rcvd = 0;
    int fd, r, measuring = 0, hs_done = 0, wlen = 0;
    double t, warm_end, meas_end;
    struct pollfd p;
    WOLFSSL *ssl;
    size_t i;

    for (i = 0; i < sizeof pat; i++)
        pat[i] = (char)((i % PATTERN) * 7 + 1);
    if ((fd = start_connect()) < 0)
        die("connect: %s", strerror(errno));
    ssl = new_ssl(fd);
    p.fd = fd;
    p.events = POLLOUT;
    while (!hs_done) {
        if (now() > deadline)
            die("handshake timed out");
        poll(&p, 1, 100);
        if ((r = wolfSSL_connect(ssl)) == WOLFSSL_SUCCESS)
            hs_done = 1;
        else if ((p.events = (short)wants(ssl, r)) < 0)
            die("handshake failed: %s", wolfSSL_ERR_reason_error_string((unsigned long)wolfSSL_get_error(ssl, r)));
    }
    snprintf(cipher, sizeof cipher, "%s/%s", wolfSSL_get_version(ssl), wolfSSL_get_cipher_name(ssl));
    t = now();
    warm_end = t + opt.warmup;
    meas_end = warm_end + opt.duration;
    for (;;) {
        t = now();
        if (t > deadline)
            die("timed out");
        if (!measuring && t >= warm_end) {
            take_snap(s0, (double)rcvd / 1e6);
            measuring = 1;
        }
        if (measuring && t >= meas_end) {
            take_snap(s1, (double)rcvd / 1e6);
            break;
        }
        p.events = (short)(POLLIN | (wlen || sent - rcvd < MAX_OUTSTANDING ? POLLOUT : 0));
        if (poll(&p, 1, ms_until(measuring ? meas_end : warm_end, t)) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        /* read all that is decryptable now */
        if (p.revents & (POLLIN | POLLERR | POLLHUP) || wolfSSL_pending(ssl)) {
            while ((r = wolfSSL_read(ssl, buf, (int)sizeof buf)) > 0) {
                if (memcmp(buf, pat + rcvd % PATTERN, (size_t)r) != 0)
                    die("TLS bulk echo mismatch at byte %llu", rcvd);
                rcvd += (unsigned long long)r;
            }
            if (r == 0 || wants(ssl, r) < 0)
                die("TLS read failed (%d)", wolfSSL_get_error(ssl, r));
        }
        if (p.revents & POLLOUT) {
            /* a write that wanted more room is retried with the same arguments */
            if (!wlen)
                wlen = CHUNK;
            r = wolfSSL_write(ssl, pat + sent % PATTERN, wlen);
            if (r > 0) {
                sent += (unsigned long long)r;
                wlen = 0;
            } else if (wants(ssl, r) < 0) {
                die("TLS write failed (%d)", wolfSSL_get_error(ssl, r));
            }
        }
    }
    wolfSSL_free(ssl);
    close(fd);
}

/* -------------------------------------------------------------- handshakes */

enum { H_TCP, H_HANDSHAKE, H_WRITE, H_READ };

struct slot {
    int fd, state;
    WOLFSSL *ssl;
    size_t got;
};

static void slot_close(struct slot *s, int ok)
{
    if (s->ssl) {
        if (ok)
            wolfSSL_shutdown(s->ssl);       /* close_notify, not waiting for the peer's */
        wolfSSL_free(s->ssl);
    }
    if (s->fd >= 0)
        close(s->fd);
    s->ssl = NULL;
    s->fd = -1;
    if (!ok)
        errors++;
}

static void mode_handshake(struct snap *s0, struct snap *s1)
{
    static const char line[] = "ping\n";
    const int len = (int)sizeof line - 1;
    int k = opt.inflight, i, measuring = 0;
    struct slot *sl = calloc((size_t)k, sizeof *sl);
    struct pollfd *pf = calloc((size_t)k, sizeof *pf);
    double ops = 0, t, warm_end, meas_end;
    char buf[64];

    if (!sl || !pf)
        die("out of memory");
    for (i = 0; i < k; i++)
        sl[i].fd = -1;
    t = now();
    warm_end = t + opt.warmup;
    meas_end = warm_end + opt.duration;
    for (;;) {
        t = now();
        if (t > deadline)
            die("timed out");
        if (!measuring && t >= warm_end) {
            take_snap(s0, ops);
            measuring = 1;
        }
        if (measuring && t >= meas_end) {
            take_snap(s1, ops);
            break;
        }
        if (errors > 100 && errors > ops)
            die("%ld failed handshakes against %.0f good ones", errors, ops);
        for (i = 0; i < k; i++) {
            if (sl[i].fd < 0) {
                sl[i].fd = start_connect();
                sl[i].state = H_TCP;
                sl[i].got = 0;
                pf[i].events = POLLOUT;
            }
            pf[i].fd = sl[i].fd;
        }
        if (poll(pf, (nfds_t)k, ms_until(measuring ? meas_end : warm_end, t)) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        for (i = 0; i < k; i++) {
            struct slot *s = &sl[i];
            int r, w;
            if (s->fd < 0 || !pf[i].revents)
                continue;
            if (s->state == H_TCP) {
                int err = 0;
                socklen_t el = sizeof err;
                if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
                    slot_close(s, 0);
                    continue;
                }
                s->ssl = new_ssl(s->fd);
                s->state = H_HANDSHAKE;
            }
            if (s->state == H_HANDSHAKE) {
                if ((r = wolfSSL_connect(s->ssl)) != WOLFSSL_SUCCESS) {
                    if ((w = wants(s->ssl, r)) < 0)
                        slot_close(s, 0);
                    else
                        pf[i].events = (short)w;
                    continue;
                }
                s->state = H_WRITE;
            }
            if (s->state == H_WRITE) {
                if ((r = wolfSSL_write(s->ssl, line, len)) != len) {
                    if ((w = wants(s->ssl, r)) < 0)
                        slot_close(s, 0);
                    else
                        pf[i].events = (short)w;
                    continue;
                }
                s->state = H_READ;
            }
            r = wolfSSL_read(s->ssl, buf, (int)(len - (int)s->got));
            if (r > 0) {
                if (memcmp(buf, line + s->got, (size_t)r) != 0) {
                    slot_close(s, 0);
                    continue;
                }
                if ((s->got += (size_t)r) == (size_t)len) {
                    slot_close(s, 1);
                    ops++;
                }
                pf[i].events = POLLIN;
                continue;
            }
            if ((w = wants(s->ssl, r)) < 0)
                slot_close(s, 0);
            else
                pf[i].events = (short)w;
        }
    }
    for (i = 0; i < k; i++)
        if (sl[i].fd >= 0)
            slot_close(&sl[i], 1);
    free(sl);
    free(pf);
}

/* ------------------------------------------------------------------- main */

static double num_arg(const char *name, const char *v, double lo, double hi)
{
    char *end;
    double d = strtod(v, &end);
    if (!*v || *end || d < lo || d > hi) {
        fprintf(stderr, "tlsgen: bad value for %s: %s\n", name, v);
        exit(2);
    }
    return d;
}

int main(int argc, char **argv)
{
    struct snap s0, s1;
    double secs, ops, srv = -1, per_op = -1, gen = -1;
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            puts("usage: tlsgen --port P [--host 127.0.0.1] --mode bulk|handshake [--inflight K]\n"
                 "              [--warmup SEC] [--duration SEC] [--pid PID] [--timeout SEC]");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "tlsgen: bad argument: %s\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--host"))
            opt.host = v;
        else if (!strcmp(a, "--port"))
            opt.port = (int)num_arg(a, v, 1, 65535);
        else if (!strcmp(a, "--mode")) {
            if (!strcmp(v, "bulk"))
                opt.bulk = 1;
            else if (!strcmp(v, "handshake"))
                opt.bulk = 0;
            else {
                fprintf(stderr, "tlsgen: bad mode: %s\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--inflight"))
            opt.inflight = (int)num_arg(a, v, 1, 1000);
        else if (!strcmp(a, "--warmup"))
            opt.warmup = num_arg(a, v, 0, 3600);
        else if (!strcmp(a, "--duration"))
            opt.duration = num_arg(a, v, 0.01, 3600);
        else if (!strcmp(a, "--pid"))
            opt.pid = (long)num_arg(a, v, 1, 1e9);
        else if (!strcmp(a, "--timeout"))
            opt.timeout = num_arg(a, v, 0.1, 36000);
        else {
            fprintf(stderr, "tlsgen: bad argument: %s\n", a);
            return 2;
        }
    }
    if (!opt.port) {
        fputs("tlsgen: --port is required\n", stderr);
        return 2;
    }
    memset(&server_addr, 0, sizeof server_addr);
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((unsigned short)opt.port);
    if (inet_pton(AF_INET, opt.host, &server_addr.sin_addr) != 1) {
        fprintf(stderr, "tlsgen: --host must be an IPv4 address: %s\n", opt.host);
        return 2;
    }
    if (opt.timeout <= 0)
        opt.timeout = opt.warmup + opt.duration + 60;
    deadline = now() + opt.timeout;
    signal(SIGPIPE, SIG_IGN);
    wolfSSL_Init();
    if (!(ctx = wolfSSL_CTX_new(wolfTLS_client_method())))
        die("wolfSSL_CTX_new failed");
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
#ifdef HAVE_SESSION_TICKET
    wolfSSL_CTX_NoTicketTLSv12(ctx);
#endif

    if (opt.bulk)
        mode_bulk(&s0, &s1);
    else
        mode_handshake(&s0, &s1);

    secs = s1.t - s0.t;
    ops = s1.ops - s0.ops;
    if (s0.srv >= 0 && s1.srv >= 0) {
        srv = s1.srv - s0.srv;
        if (ops > 0)
            per_op = srv * 1e6 / ops;
    }
    if (secs > 0)
        gen = (s1.self - s0.self) / secs;
    printf("RESULT mode=%s conns=%d size=0 ops=%.3f secs=%.4f rate=%.2f unit=%s srv_cpu_s=%.3f "
           "cpu_us_per_op=%.3f gen_cpu=%.3f srv_rss0_kb=-1 srv_rss_kb=-1 setup_s=-1 errors=%ld cipher=%s\n",
           opt.bulk ? "tls_bulk" : "tls_handshake", opt.bulk ? 1 : opt.inflight, ops, secs,
           secs > 0 ? ops / secs : 0.0, opt.bulk ? "MB/s" : "hs/s", srv, per_op, gen, errors, cipher);
    fflush(stdout);
    wolfSSL_CTX_free(ctx);
    wolfSSL_Cleanup();
    return 0;
}
