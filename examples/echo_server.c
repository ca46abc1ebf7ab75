/*
 * echo_server — the seed's TCP echo server, in C, plus two modes for benchmarks.
 *
 *   async def handle_echo(stream):
 *       data = await stream.read(100)
 *       print(f"Received {message!r} from {addr!r}"); print(f"Send: {message!r}")
 *       await stream.write(data)
 *       print("Close the connection")
 *       await stream.close()
 *
 * --mode once  (default) the seed's handler above, one message per connection;
 * --mode chunk echoes every byte until EOF, --mode line echoes line by line.
 * SIGINT/SIGTERM close the server gracefully and the program exits 0.
 *
 * usage: echo_server [--dns SERVERS] [--host H] [--port P] [--unix PATH]
 *                    [--tls CERT KEY] [--mode once|chunk|line] [--limit BYTES]
 */
#define _POSIX_C_SOURCE 200809L
#include <rill.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: echo_server [--dns SERVERS] [--host H] [--port P] [--unix PATH]\n"
    "                   [--tls CERT KEY] [--mode once|chunk|line] [--limit BYTES]\n"
    "Echo server: prints `Serving on ADDR`, then echoes until SIGINT or SIGTERM.\n";

enum mode { MODE_ONCE, MODE_CHUNK, MODE_LINE };

/* Write buffer watermarks. Above HIGH a connection stops reading until its
   peer has taken enough of what we owe it (down to LOW): backpressure. */
#define HIGH (64 * 1024)
#define LOW  (16 * 1024)

/* The whole program's state. Every connection's callbacks get this same
   pointer: the stream itself carries everything else, so a connection costs
   no allocation of ours. */
struct app {
    rill_loop *loop;
    rill_server *server;
    enum mode mode;
    int stopping, exit_code;
    char where[300];   /* the address asked for, for error messages */
};

/* ------------------------------------------------------------ mode once */

static void once_written(rill_stream *s, int status, void *ud)
{
    (void)status; (void)ud;
    puts("Close the connection");
    rill_close(s, NULL, NULL);
}

static void once_read(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    char peer[128];
    if (status < 0) {                 /* reset by the peer, or the server is closing */
        rill_close(s, NULL, NULL);
        return;
    }
    if (rill_get_extra_info(s, "peername", peer, sizeof peer) <= 0)
        strcpy(peer, "(unnamed)");    /* a Unix client socket has no name */
    printf("Received '%.*s' from %s\n", (int)len, data, peer);
    printf("Send: '%.*s'\n", (int)len, data);
    /* The callback makes this `await stream.write(data)`; data is copied if not sent at once. */
    if (rill_write(s, data, len, once_written, ud) < 0)
        rill_close(s, NULL, NULL);
}

/* ---------------------------------------------------- modes chunk, line */

static void chunk_read(rill_stream *s, int status, const char *data, size_t len, void *ud);
static void line_read(rill_stream *s, int status, const char *data, size_t len, void *ud);

static void next_read(rill_stream *s, struct app *app)
{
    int rc = app->mode == MODE_CHUNK ? rill_read(s, 65536, chunk_read, app)
                                     : rill_readline(s, line_read, app);
    if (rc < 0)
        rill_close(s, NULL, NULL);
}

static void drained(rill_stream *s, int status, void *ud)
{
    if (status < 0) {
        rill_close(s, NULL, NULL);
        return;
    }
    rill_resume_reading(s);
    next_read(s, ud);
}

/* Echo what was read. A plain rill_write (no callback) never waits: it sends
   what the socket takes and buffers the rest. Only when the buffer has grown
   past HIGH do we stop and wait for it, so a fast peer costs one write per read. */
static void echo(rill_stream *s, const char *data, size_t len, struct app *app)
{
    if (rill_write(s, data, len, NULL, NULL) < 0) {   /* the connection is lost */
        rill_close(s, NULL, NULL);
        return;
    }
    if (rill_get_write_buffer_size(s) > HIGH) {
        rill_pause_reading(s);        /* the peer is slow: stop taking its input */
        if (rill_drain(s, drained, app) < 0)
            rill_close(s, NULL, NULL);
    } else {
        next_read(s, app);
    }
}

static void chunk_read(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    if (status < 0 || len == 0)       /* error or EOF: flush what is owed, then close */
        rill_close(s, NULL, NULL);
    else
        echo(s, data, len, ud);
}

static void line_read(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    if (status < 0 || len == 0)       /* RILL_ELIMIT (a line over --limit), error, or EOF */
        rill_close(s, NULL, NULL);
    else
        echo(s, data, len, ud);
}

/* -------------------------------------------------------------- server */

static void on_client(rill_server *srv, rill_stream *s, void *ud)
{
    struct app *app = ud;
    (void)srv;
    if (app->mode != MODE_ONCE) {
        rill_set_write_buffer_limits(s, HIGH, LOW);   /* so that HIGH is this stream's mark */
        next_read(s, app);
    } else if (rill_read(s, 100, once_read, app) < 0) {
        rill_close(s, NULL, NULL);
    }
}

/* Stop: stop watching the signals (they would keep the loop alive) and close
   the server; the loop ends by itself once every connection has closed. */
static void stop(struct app *app)
{
    if (app->stopping)
        return;
    app->stopping = 1;
    rill_signal_unwatch(app->loop, SIGINT);
    rill_signal_unwatch(app->loop, SIGTERM);
    rill_server_close(app->server, NULL, NULL);
}

/* Runs from the loop, not from the signal handler: any rill call is allowed. */
static void on_signal(int signum, void *ud)
{
    (void)signum;
    stop(ud);
}

static void on_listening(rill_server *srv, int status, void *ud)
{
    struct app *app = ud;
    char addr[256];
    if (status < 0) {
        fprintf(stderr, "error: listen on %s: %s\n", app->where, rill_strerror(status));
        app->exit_code = 1;
        stop(app);
        return;
    }
    rill_server_sockname(srv, 0, addr, sizeof addr);
    printf("Serving on %s\n", addr);
}

static int bad_arg(const char *what, const char *arg)
{
    fprintf(stderr, "echo_server: %s%s (try --help)\n", what, arg ? arg : "");
    return 2;
}

int main(int argc, char **argv)
{
    rill_loop_opts lopts = {0};
    rill_server_opts sopts = {0};
    rill_tls_opts topts = {0};
    struct app app = {0};
    const char *host = "127.0.0.1", *path = NULL;
    long port = 8888;
    char *end, errbuf[256] = "";
    int i, rc;

    setvbuf(stdout, NULL, _IOLBF, 0);   /* `Serving on` must reach a pipe at once */
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0)
            return bad_arg("unexpected argument ", a);
        if (strcmp(a, "--dns") != 0 && strcmp(a, "--host") != 0 && strcmp(a, "--port") != 0 &&
            strcmp(a, "--unix") != 0 && strcmp(a, "--tls") != 0 && strcmp(a, "--mode") != 0 &&
            strcmp(a, "--limit") != 0)
            return bad_arg("unknown option ", a);
        if (v == NULL || (strcmp(a, "--tls") == 0 && i + 2 >= argc))
            return bad_arg("missing value for ", a);
        i++;
        if (strcmp(a, "--dns") == 0) {
            lopts.dns_servers = v;
        } else if (strcmp(a, "--host") == 0) {
            host = v;
        } else if (strcmp(a, "--unix") == 0) {
            path = v;
        } else if (strcmp(a, "--tls") == 0) {
            topts.cert_file = v;
            topts.key_file = argv[++i];
        } else if (strcmp(a, "--port") == 0) {
            port = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || port < 0 || port > 65535)
                return bad_arg("bad port ", v);
        } else if (strcmp(a, "--limit") == 0) {
            long limit = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || limit < 1)
                return bad_arg("bad limit ", v);
            sopts.limit = (size_t)limit;
        } else if (strcmp(v, "once") == 0 || strcmp(v, "chunk") == 0 || strcmp(v, "line") == 0) {
            app.mode = v[0] == 'o' ? MODE_ONCE : v[0] == 'c' ? MODE_CHUNK : MODE_LINE;
        } else {
            return bad_arg("bad mode ", v);
        }
    }

    if ((app.loop = rill_loop_new(&lopts)) == NULL) {
        fprintf(stderr, "error: loop: %s\n", rill_strerror(-errno));
        return 1;
    }
    if (topts.cert_file != NULL) {
        topts.errbuf = errbuf;
        topts.errbuf_len = sizeof errbuf;
        if ((sopts.tls = rill_tls_server_new(&topts)) == NULL) {
            rc = -errno;
            fprintf(stderr, "error: TLS setup%s%s%s: %s\n", *errbuf ? " (" : "", errbuf, *errbuf ? ")" : "", rill_strerror(rc));
            rill_loop_free(app.loop);
            return 1;
        }
    }
    if (path != NULL)
        snprintf(app.where, sizeof app.where, "%s", path);
    else
        snprintf(app.where, sizeof app.where, "%s port %ld", host, port);
    app.server = path != NULL ? rill_unix_server_new(app.loop, path, &sopts, on_client, &app)
                              : rill_server_new(app.loop, host, (int)port, &sopts, on_client, &app);
    if (app.server == NULL) {
        fprintf(stderr, "error: server on %s: %s\n", app.where, rill_strerror(-errno));
        app.exit_code = 1;
    } else {
        rill_signal_watch(app.loop, SIGINT, on_signal, &app);
        rill_signal_watch(app.loop, SIGTERM, on_signal, &app);
        /* Binds and listens now; on_listening runs from the loop. */
        if ((rc = rill_server_start_serving(app.server, on_listening, &app)) < 0) {
            fprintf(stderr, "error: listen on %s: %s\n", app.where, rill_strerror(rc));
            app.exit_code = 1;
            stop(&app);
        }
        rill_loop_run(app.loop);
    }
    if (sopts.tls != NULL)
        rill_tls_free(sopts.tls);   /* streams still open would hold their own reference */
    rill_loop_free(app.loop);
    return app.exit_code;
}
