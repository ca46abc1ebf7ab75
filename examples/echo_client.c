/*
 * echo_client — the seed's TCP echo client, in C.
 *
 *   async with asyncio.connect(host, port) as stream:
 *       print(f'Send: {message!r}')
 *       await stream.write(message.encode())
 *       data = await stream.read(100)
 *       print(f'Received: {data.decode()!r}')
 *
 * Every `await` of the Python becomes one callback here: the code after an
 * await moves into the function the loop calls when that step has finished.
 *
 * usage: echo_client [--dns SERVERS] [--tls] [--cafile F] [--server-hostname N] HOST PORT MESSAGE
 */
#define _POSIX_C_SOURCE 200809L
#include <rill.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: echo_client [--dns SERVERS] [--tls] [--cafile F] [--server-hostname N] HOST PORT MESSAGE\n"
    "Sends MESSAGE to the echo server at HOST:PORT and prints what comes back.\n";

/* What the callbacks share: the message, and how the run ended. */
struct client {
    const char *host, *port, *message;
    int exit_code;
};

/* The first failure decides the exit code and the one `error:` line. */
static void fail(struct client *c, const char *what, int err)
{
    if (c->exit_code == 0)
        fprintf(stderr, "error: %s: %s\n", what, rill_strerror(err));
    c->exit_code = 1;
}

static void connect_failed(struct client *c, int err)
{
    char what[300];
    snprintf(what, sizeof what, "connect %s port %s", c->host, c->port);
    fail(c, what, err);
}

static void on_closed(rill_stream *s, int status, void *ud)
{
    (void)s;
    if (status < 0)
        fail(ud, "close", status);
    /* Nothing is left on the loop now, so rill_loop_run returns in main. */
}

/* `data = await stream.read(100)` resumes here. */
static void on_data(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    if (status < 0) {
        fail(ud, "read", status);
        rill_abort(s);
        return;
    }
    printf("Received: '%.*s'\n", (int)len, data);   /* data lives until we return */
    rill_close(s, on_closed, ud);                   /* `async with` ends: graceful close */
}

/* `await stream.write(...)` (write, then drain) resumes here. */
static void on_written(rill_stream *s, int status, void *ud)
{
    int rc;
    if (status < 0) {
        fail(ud, "write", status);
        rill_abort(s);
        return;
    }
    if ((rc = rill_read(s, 100, on_data, ud)) < 0) {
        fail(ud, "read", rc);
        rill_abort(s);
    }
}

/* `async with asyncio.connect(...) as stream` resumes here. */
static void on_connected(rill_stream *s, int status, void *ud)
{
    struct client *c = ud;
    int rc;
    if (status < 0) {
        connect_failed(c, status);
        return;                 /* s is NULL: there is nothing to close */
    }
    printf("Send: '%s'\n", c->message);
    /* With a callback, rill_write is `await stream.write()`: it runs once drained. */
    if ((rc = rill_write(s, c->message, strlen(c->message), on_written, c)) < 0) {
        fail(c, "write", rc);
        rill_abort(s);
    }
}

static int bad_arg(const char *what, const char *arg)
{
    fprintf(stderr, "echo_client: %s%s (try --help)\n", what, arg ? arg : "");
    return 2;
}

int main(int argc, char **argv)
{
    rill_loop_opts lopts = {0};
    rill_connect_opts copts = {0};
    rill_tls_opts topts = {0};
    struct client c = {0};
    const char *pos[3];
    int npos = 0, use_tls = 0, i, rc;
    long port;
    char *end, errbuf[256] = "";
    rill_loop *loop;

    setvbuf(stdout, NULL, _IOLBF, 0);   /* each line reaches a pipe as it is printed */
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--tls") == 0) {
            use_tls = 1;
        } else if (strcmp(a, "--dns") == 0 || strcmp(a, "--cafile") == 0 ||
                   strcmp(a, "--server-hostname") == 0) {
            if (!has_value)
                return bad_arg("missing value for ", a);
            if (a[2] == 'd')
                lopts.dns_servers = argv[++i];
            else if (a[2] == 'c')
                topts.ca_file = argv[++i];
            else
                copts.server_hostname = argv[++i];
        } else if (a[0] == '-' && a[1] == '-') {
            return bad_arg("unknown option ", a);
        } else if (npos < 3) {
            pos[npos++] = a;
        } else {
            return bad_arg("unexpected argument ", a);
        }
    }
    if (npos < 3)
        return bad_arg("expected HOST PORT MESSAGE", NULL);
    port = strtol(pos[1], &end, 10);
    if (*pos[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
        return bad_arg("bad port ", pos[1]);
    c.host = pos[0];
    c.port = pos[1];
    c.message = pos[2];

    if ((loop = rill_loop_new(&lopts)) == NULL) {
        fprintf(stderr, "error: loop: %s\n", rill_strerror(-errno));
        return 1;
    }
    if (use_tls) {
        /* One TLS context can serve many connections; each stream keeps a reference. */
        topts.errbuf = errbuf;
        topts.errbuf_len = sizeof errbuf;
        if ((copts.tls = rill_tls_client_new(&topts)) == NULL) {
            rc = -errno;
            fprintf(stderr, "error: TLS setup%s%s%s: %s\n", *errbuf ? " (" : "", errbuf, *errbuf ? ")" : "", rill_strerror(rc));
            rill_loop_free(loop);
            return 1;
        }
    }
    /* Nothing happens yet: rill_connect only starts the connect machine. */
    rc = rill_connect(loop, c.host, (int)port, &copts, on_connected, &c, NULL);
    if (rc < 0)
        connect_failed(&c, rc);
    else
        rill_loop_run(loop);    /* asyncio.run(): until nothing is left to do */
    if (copts.tls != NULL)
        rill_tls_free(copts.tls);
    rill_loop_free(loop);
    return c.exit_code;
}
