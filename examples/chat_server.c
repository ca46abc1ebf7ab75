/*
 * chat_server — a broadcast chat: every line a client sends goes to every other
 * client, as it came. A client that stops reading must not stall the room nor
 * eat the server's memory, so each stream's write buffer is capped
 * (rill_set_write_buffer_max, --max) and every line is a plain write that never
 * waits for a drain.
 *
 * The policy for a client over the cap is to skip: a line that would take its
 * buffer over --max is not queued for it (rill refuses it whole, so it never
 * gets half a line), and the server prints `Skipping ADDR: ...`. Once it has
 * room again it first gets `*** N lines skipped`, then the line, and the server
 * prints `Resuming ADDR after N skipped lines`. Memory is bounded by
 * clients x --max, however slow anyone reads.
 * SIGINT/SIGTERM close the server (a client still owed data gets 2 s) and the
 * program exits 0.
 *
 * usage: chat_server [--dns SERVERS] [--host H] [--port P] [--unix PATH]
 *                    [--max BYTES] [--limit BYTES]
 */
#define _POSIX_C_SOURCE 200809L
#include <rill.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: chat_server [--dns SERVERS] [--host H] [--port P] [--unix PATH]\n"
    "                   [--max BYTES] [--limit BYTES]\n"
    "Chat server: prints `Serving on ADDR`, then sends each client's lines to every\n"
    "other client until SIGINT or SIGTERM. --max (default 1 MiB) caps what waits for\n"
    "one client; lines over it are skipped for that client.\n";

struct client {
    struct client *prev, *next;
    rill_stream *s;
    struct app *app;
    unsigned long skipped;   /* lines not queued since the client was last given one */
    char addr[128];
};

struct app {
    rill_loop *loop;
    rill_server *server;
    struct client room;      /* list head: room.next is the first client */
    size_t max;
    int exit_code;
    char where[300];         /* the address asked for, for error messages */
};

static void leave(struct client *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    rill_close(c->s, NULL, NULL);   /* no callback of ours is pending after this one */
    free(c);
}

/* One line to one client. After skipping, the notice and the line go as one
   writelines: both or neither, so the notice always comes right before a line. */
static void deliver(struct client *c, const char *line, size_t len)
{
    char notice[64];
    struct iovec iov[2];
    int n = 0, rc;

    if (c->skipped > 0) {
        iov[0].iov_len = (size_t)snprintf(notice, sizeof notice, "*** %lu lines skipped\n", c->skipped);
        iov[0].iov_base = notice;
        n = 1;
    }
    iov[n].iov_base = (void *)line;
    iov[n].iov_len = len;
    rc = rill_writelines(c->s, iov, n + 1, NULL, NULL);
    if (rc == RILL_ENOBUFS) {
        if (c->skipped++ == 0)
            printf("Skipping %s: %lu bytes wait for it, over --max %lu\n", c->addr,
                   (unsigned long)rill_get_write_buffer_size(c->s), (unsigned long)c->app->max);
    } else if (rc == 0 && n > 0) {
        printf("Resuming %s after %lu skipped lines\n", c->addr, c->skipped);
        c->skipped = 0;
    }
    /* Any other error: the connection is lost, and its pending read says so. */
}

static void on_line(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    struct client *from = ud, *c;
    (void)s;
    if (status < 0 || len == 0) {   /* EOF, a line over --limit, lost, or the server closing */
        leave(from);
        return;
    }
    for (c = from->app->room.next; c != &from->app->room; c = c->next)
        if (c != from)
            deliver(c, data, len);
    if (rill_readline(from->s, on_line, from) < 0)
        leave(from);
}

static void on_client(rill_server *srv, rill_stream *s, void *ud)
{
    struct app *app = ud;
    struct client *c = calloc(1, sizeof *c);
    (void)srv;
    if (c == NULL) {
        rill_close(s, NULL, NULL);
        return;
    }
    c->s = s;
    c->app = app;
    if (rill_get_extra_info(s, "peername", c->addr, sizeof c->addr) <= 0)
        strcpy(c->addr, "(unnamed)");   /* a Unix client socket has no name */
    rill_set_write_buffer_max(s, app->max);
    c->next = &app->room;
    c->prev = app->room.prev;
    app->room.prev->next = c;
    app->room.prev = c;
    if (rill_readline(s, on_line, c) < 0)
        leave(c);
}

/* Runs from the loop, not from the signal handler, so any rill call is allowed.
   Closing the server closes every client, whose pending read then ends and frees
   it; with the signals unwatched the loop ends by itself. */
static void on_signal(int signum, void *ud)
{
    struct app *app = ud;
    (void)signum;
    rill_signal_unwatch(app->loop, SIGINT);
    rill_signal_unwatch(app->loop, SIGTERM);
    rill_server_close(app->server, NULL, NULL);
}

static int bad_arg(const char *what, const char *arg)
{
    fprintf(stderr, "chat_server: %s%s (try --help)\n", what, arg ? arg : "");
    return 2;
}

/* A byte count of at least 1; 0 when v is not one. */
static size_t bytes_arg(const char *v)
{
    char *end;
    long n = strtol(v, &end, 10);
    return *v != '\0' && *end == '\0' && n >= 1 ? (size_t)n : 0;
}

int main(int argc, char **argv)
{
    rill_loop_opts lopts = {0};
    rill_server_opts sopts = {0};
    struct app app = {0};
    const char *host = "127.0.0.1", *path = NULL;
    long port = 8888;
    char *end, addr[256];
    int i, rc;

    setvbuf(stdout, NULL, _IOLBF, 0);   /* `Serving on` must reach a pipe at once */
    app.max = 1 << 20;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0)
            return bad_arg("unexpected argument ", a);
        if (strcmp(a, "--dns") != 0 && strcmp(a, "--host") != 0 && strcmp(a, "--port") != 0 &&
            strcmp(a, "--unix") != 0 && strcmp(a, "--max") != 0 && strcmp(a, "--limit") != 0)
            return bad_arg("unknown option ", a);
        if (v == NULL)
            return bad_arg("missing value for ", a);
        i++;
        if (strcmp(a, "--dns") == 0) {
            lopts.dns_servers = v;
        } else if (strcmp(a, "--host") == 0) {
            host = v;
        } else if (strcmp(a, "--unix") == 0) {
            path = v;
        } else if (strcmp(a, "--port") == 0) {
            port = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || port < 0 || port > 65535)
                return bad_arg("bad port ", v);
        } else if (strcmp(a, "--max") == 0) {
            if ((app.max = bytes_arg(v)) == 0)
                return bad_arg("bad --max ", v);
        } else if ((sopts.limit = bytes_arg(v)) == 0) {
            return bad_arg("bad limit ", v);
        }
    }

    app.room.next = app.room.prev = &app.room;
    sopts.shutdown_timeout_ms = 2000;   /* a client that never reads is not waited for long */
    if ((app.loop = rill_loop_new(&lopts)) == NULL) {
        fprintf(stderr, "error: loop: %s\n", rill_strerror(-errno));
        return 1;
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
    } else if ((rc = rill_server_bind(app.server)) < 0 ||
               (rc = rill_server_start_serving(app.server, NULL, NULL)) < 0) {
        /* Bound now, synchronously: the error is known here, no callback needed. */
        fprintf(stderr, "error: listen on %s: %s\n", app.where, rill_strerror(rc));
        rill_server_close(app.server, NULL, NULL);
        app.exit_code = 1;
        rill_loop_run(app.loop);
    } else {
        rill_server_sockname(app.server, 0, addr, sizeof addr);
        printf("Serving on %s\n", addr);
        rill_signal_watch(app.loop, SIGINT, on_signal, &app);
        rill_signal_watch(app.loop, SIGTERM, on_signal, &app);
        rill_loop_run(app.loop);
    }
    rill_loop_free(app.loop);
    return app.exit_code;
}
