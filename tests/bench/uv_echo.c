/* uv_echo — the libuv peer of rill's examples/echo_server for `make bench`.
 *
 *   uv_echo [--host H] [--port P] [--mode chunk|line]
 *
 * Prints `Serving on ADDR` (port 0 picks a free one), then echoes: chunk, every byte
 * as it comes; line, line by line, split by hand (libuv has no line reader). Writes go
 * out at once with uv_try_write; what the socket does not take is queued with uv_write,
 * and reading stops while more than HIGH_WATER bytes wait (the same backpressure as
 * asyncio's drain). SIGINT or SIGTERM: exit 0.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define READ_SIZE  65536
#define LINE_LIMIT 65536        /* a line longer than this is echoed as it is (no error) */
#define HIGH_WATER (1u << 20)

typedef struct conn {
    uv_tcp_t tcp;
    char *buf;                  /* chunk: the read buffer; line: the unsplit input */
    size_t len;                 /* line: bytes in buf */
    size_t cap;
    int reading;
    int eof;
} conn;

typedef struct wreq {
    uv_write_t req;
    conn *c;
    char *copy;                 /* NULL: chunk mode wrote straight from c->buf */
} wreq;

static int line_mode;
static uv_loop_t *loop;

static void die(const char *what, int err)
{
    fprintf(stderr, "error: %s: %s\n", what, uv_strerror(err));
    exit(1);
}

static void on_closed(uv_handle_t *h)
{
    conn *c = h->data;
    free(c->buf);
    free(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    uv_close((uv_handle_t *)req->handle, on_closed);
    free(req);
}

/* After EOF: flush what is queued, then close. */
static void finish(conn *c)
{
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void set_reading(conn *c, int on)
{
    if (on && !c->reading && !c->eof)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    else if (!on && c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = on && !c->eof;
}

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    conn *c = w->c;
    free(w->copy);
    free(w);
    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    /* chunk: queued bytes may still point into c->buf (an earlier request can
       finish while a later one is still queued), so read only once none is left */
    if (line_mode ? c->tcp.write_queue_size < HIGH_WATER / 2 : c->tcp.write_queue_size == 0)
        set_reading(c, 1);
}

/* Sends len bytes: now if the socket takes them, the rest through uv_write.
   copy: the bytes must be copied (they live in a buffer that is reused). */
static int send_bytes(conn *c, char *data, size_t len, int copy)
{
    uv_buf_t b = uv_buf_init(data, (unsigned int)len);
    wreq *w;
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);

    if (n == (int)len)
        return 0;
    if (n < 0 && n != UV_EAGAIN)
        return n;
    if (n > 0) {
        data += n;
        len -= (size_t)n;
    }
    if (!(w = malloc(sizeof *w)))
        return UV_ENOMEM;
    w->c = c;
    w->copy = NULL;
    if (copy) {
        if (!(w->copy = malloc(len))) {
            free(w);
            return UV_ENOMEM;
        }
        memcpy(w->copy, data, len);
        data = w->copy;
    }
    b = uv_buf_init(data, (unsigned int)len);
    return uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
    conn *c = h->data;
    (void)hint;
    if (!line_mode) {
        *out = uv_buf_init(c->buf, READ_SIZE);
        return;
    }
    if (c->cap - c->len < READ_SIZE / 4) {
        size_t cap = c->cap * 2;
        char *nb = realloc(c->buf, cap);
        if (!nb) {
            *out = uv_buf_init(NULL, 0);
            return;
        }
        c->buf = nb;
        c->cap = cap;
    }
    *out = uv_buf_init(c->buf + c->len, (unsigned int)(c->cap - c->len));
}

/* Line mode: echo every complete line in buf, keep the partial one. */
static int split_lines(conn *c)
{
    size_t start = 0;
    char *nl;
    int rc;

    while ((nl = memchr(c->buf + start, '\n', c->len - start)) != NULL) {
        size_t end = (size_t)(nl - c->buf) + 1;
        if ((rc = send_bytes(c, c->buf + start, end - start, 1)) < 0)
            return rc;
        start = end;
    }
    if (c->len - start >= LINE_LIMIT || (c->eof && c->len > start)) {
        if ((rc = send_bytes(c, c->buf + start, c->len - start, 1)) < 0)
            return rc;
        start = c->len;
    }
    if (start > 0) {
        memmove(c->buf, c->buf + start, c->len - start);
        c->len -= start;
    }
    if (c->tcp.write_queue_size >= HIGH_WATER)
        set_reading(c, 0);
    return 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    conn *c = s->data;
    int rc = 0;
    (void)b;

    if (n == 0)
        return;
    if (n == UV_EOF) {
        c->eof = 1;
        set_reading(c, 0);
        if (line_mode)
            rc = split_lines(c);
        if (rc == 0) {
            finish(c);
            return;
        }
    } else if (n < 0) {
        rc = (int)n;
    } else if (line_mode) {
        c->len += (size_t)n;
        rc = split_lines(c);
    } else {
        /* chunk: write straight from the read buffer; while a write of it is queued,
           reading stops so the buffer is not reused */
        rc = send_bytes(c, c->buf, (size_t)n, 0);
        if (rc == 0 && c->tcp.write_queue_size > 0)
            set_reading(c, 0);
    }
    if (rc < 0 && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    conn *c;
    if (status < 0)
        return;
    if (!(c = calloc(1, sizeof *c)) || !(c->buf = malloc(READ_SIZE))) {
        free(c);
        return;
    }
    c->cap = READ_SIZE;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    set_reading(c, 1);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    uv_stop(sig->loop);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8888, i, rc, namelen;
    uv_tcp_t server;
    uv_signal_t sigint, sigterm;
    struct sockaddr_storage ss;
    struct rlimit rl;
    char addr[64];

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            puts("usage: uv_echo [--host H] [--port P] [--mode chunk|line]");
            return 0;
        } else if (!strcmp(argv[i], "--host") && i + 1 < argc) {
            host = argv[++i];
        } else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
            i++;
            if (!strcmp(argv[i], "line"))
                line_mode = 1;
            else if (strcmp(argv[i], "chunk") != 0) {
                fprintf(stderr, "uv_echo: bad mode: %s\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "uv_echo: bad argument: %s\n", argv[i]);
            return 2;
        }
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    loop = uv_default_loop();
    uv_tcp_init(loop, &server);
    if ((rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss)) != 0)
        die("address", rc);
    if ((rc = uv_tcp_bind(&server, (struct sockaddr *)&ss, 0)) != 0)
        die("bind", rc);
    if ((rc = uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection)) != 0)
        die("listen", rc);
    namelen = sizeof ss;
    uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &namelen);
    uv_ip4_name((struct sockaddr_in *)&ss, addr, sizeof addr);
    printf("Serving on %s:%d\n", addr, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    fflush(stdout);

    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
