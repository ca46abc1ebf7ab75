/*
 * select_embed — rill inside a program that already has its own select() loop.
 *
 * The program owns the loop below and watches its own descriptor (stdin);
 * rill never runs a loop of its own here. Before each select() rill adds its
 * descriptors and its next deadline (rill_loop_prepare_select); after it, rill
 * runs whatever became ready (rill_loop_after_select), and our callbacks run
 * from inside that call. Each stdin line goes to the echo server HOST:PORT,
 * each reply line is printed as `reply: LINE`; at stdin's EOF, once every
 * reply is in, the stream is closed and the program exits.
 *
 * usage: select_embed [--dns SERVERS] HOST PORT
 */
#define _POSIX_C_SOURCE 200809L
#include <rill.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Stop reading stdin while this much is still unsent to a slow server. */
#define MAX_UNSENT (256 * 1024)

struct app {
    rill_loop *loop;
    rill_stream *stream;     /* NULL until connected */
    const char *host, *port;
    int stdin_open;          /* until stdin's EOF */
    int ends_in_newline;     /* the last byte sent was '\n' */
    long pending;            /* lines sent whose reply has not come back yet */
    int closing, exit_code;
};

static void fail(struct app *app, const char *what, int err)
{
    if (app->exit_code == 0)
        fprintf(stderr, "error: %s: %s\n", what, rill_strerror(err));
    app->exit_code = 1;
}

static void on_closed(rill_stream *s, int status, void *ud)
{
    (void)s;
    if (status < 0)
        fail(ud, "close", status);
}

static void close_stream(struct app *app)
{
    if (!app->closing) {
        app->closing = 1;
        rill_close(app->stream, on_closed, app);
    }
}

/* Done when stdin has ended and every line has had its reply. */
static void maybe_finish(struct app *app)
{
    if (!app->stdin_open && app->pending <= 0)
        close_stream(app);
}

static void on_reply(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    struct app *app = ud;
    if (app->closing)                /* our own close cancelled this read */
        return;
    if (status < 0 || len == 0) {    /* error, or the server closed first */
        if (status < 0)
            fail(app, "read", status);
        close_stream(app);
        return;
    }
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    printf("reply: %.*s\n", (int)len, data);
    app->pending--;
    maybe_finish(app);
    if (!app->closing && (status = rill_readline(s, on_reply, app)) < 0) {
        fail(app, "read", status);
        close_stream(app);
    }
}

static void on_connected(rill_stream *s, int status, void *ud)
{
    struct app *app = ud;
    char what[300];
    if (status < 0) {
        snprintf(what, sizeof what, "connect %s port %s", app->host, app->port);
        fail(app, what, status);
        return;
    }
    app->stream = s;                 /* from now on the main loop also watches stdin */
    if ((status = rill_readline(s, on_reply, app)) < 0) {
        fail(app, "read", status);
        close_stream(app);
    }
}

/* stdin is readable: hand what it has to rill. rill_write copies what the
   socket does not take at once, so the program never blocks on the server. */
static void read_stdin(struct app *app)
{
    char buf[4096];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf), i;
    int rc = 0;

    if (n < 0 && errno == EINTR)
        return;
    if (n < 0)
        fail(app, "stdin", -errno);
    if (n <= 0) {                    /* EOF: finish a last line without its newline */
        app->stdin_open = 0;
        if (!app->ends_in_newline && (rc = rill_write(app->stream, "\n", 1, NULL, NULL)) == 0)
            app->pending++;
    } else {
        for (i = 0; i < n; i++)
            app->pending += buf[i] == '\n';
        app->ends_in_newline = buf[n - 1] == '\n';
        rc = rill_write(app->stream, buf, (size_t)n, NULL, NULL);
    }
    if (rc < 0) {
        fail(app, "write", rc);
        close_stream(app);
        return;
    }
    maybe_finish(app);
}

int main(int argc, char **argv)
{
    rill_loop_opts lopts = {0};
    struct app app = {0};
    const char *pos[2];
    int npos = 0, i, rc;
    long port;
    char *end;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            puts("usage: select_embed [--dns SERVERS] HOST PORT\n"
                 "Sends each stdin line to the echo server HOST:PORT and prints each reply.");
            return 0;
        } else if (strcmp(argv[i], "--dns") == 0 && i + 1 < argc) {
            lopts.dns_servers = argv[++i];
        } else if (strncmp(argv[i], "--", 2) == 0 || npos == 2) {
            fprintf(stderr, "select_embed: unexpected argument %s (try --help)\n", argv[i]);
            return 2;
        } else {
            pos[npos++] = argv[i];
        }
    }
    if (npos < 2) {
        fprintf(stderr, "select_embed: expected HOST PORT (try --help)\n");
        return 2;
    }
    port = strtol(pos[1], &end, 10);
    if (*pos[1] == '\0' || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "select_embed: bad port %s (try --help)\n", pos[1]);
        return 2;
    }
    app.host = pos[0];
    app.port = pos[1];
    app.stdin_open = 1;
    app.ends_in_newline = 1;

    if ((app.loop = rill_loop_new(&lopts)) == NULL) {
        fprintf(stderr, "error: loop: %s\n", rill_strerror(-errno));
        return 1;
    }
    if ((rc = rill_connect(app.loop, app.host, (int)port, NULL, on_connected, &app, NULL)) < 0) {
        fail(&app, "connect", rc);
        rill_loop_free(app.loop);
        return 1;
    }

    /* The program's own loop. It runs while rill has anything alive: the
       connect request, then the stream until its close has completed. */
    while (rill_loop_alive(app.loop)) {
        fd_set rd, wr;
        int maxfd = -1, n, watch_stdin;
        struct timeval tv = { -1, 0 };       /* no deadline of our own */

        FD_ZERO(&rd);
        FD_ZERO(&wr);
        /* Backpressure by hand: stdin is only watched while the server keeps up. */
        watch_stdin = app.stream != NULL && app.stdin_open && !app.closing &&
                      rill_get_write_buffer_size(app.stream) < MAX_UNSENT;
        if (watch_stdin) {
            FD_SET(STDIN_FILENO, &rd);
            maxfd = STDIN_FILENO;
        }
        if ((rc = rill_loop_prepare_select(app.loop, &rd, &wr, &maxfd, &tv)) < 0) {
            fail(&app, "prepare_select", rc);
            return 1;
        }
        n = select(maxfd + 1, &rd, &wr, NULL, tv.tv_sec < 0 ? NULL : &tv);
        if (n < 0) {
            if (errno != EINTR) {
                fail(&app, "select", -errno);
                return 1;
            }
            rill_loop_after_select(app.loop, NULL, NULL);   /* the sets are undefined now */
            continue;
        }
        rill_loop_after_select(app.loop, &rd, &wr);         /* rill's callbacks run in here */
        if (watch_stdin && FD_ISSET(STDIN_FILENO, &rd) && !app.closing)
            read_stdin(&app);
    }
    rill_loop_free(app.loop);
    return app.exit_code;
}
