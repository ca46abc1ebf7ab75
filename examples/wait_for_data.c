/*
 * wait_for_data — the seed's "register an open socket to wait for data".
 *
 *   rsock, wsock = socket.socketpair()
 *   async with asyncio.connect(sock=rsock) as stream:
 *       loop.call_soon(wsock.send, 'abc'.encode())
 *       data = await stream.read(100)
 *       print("Received:", data.decode())
 *   wsock.close()
 *
 * rill adopts a socket the program already has: the read below simply waits
 * until the loop sees the descriptor readable, which the timer causes.
 *
 * usage: wait_for_data [--dns SERVERS]
 */
#define _POSIX_C_SOURCE 200809L
#include <rill.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct app {
    rill_loop *loop;
    int wsock;               /* the end we keep and write into ourselves */
    int exit_code;
};

static void fail(struct app *app, const char *what, int err)
{
    fprintf(stderr, "error: %s: %s\n", what, rill_strerror(err));
    app->exit_code = 1;
}

/* "The network": some time later, data arrives on the other end. */
static void send_abc(void *ud)
{
    struct app *app = ud;
    if (write(app->wsock, "abc", 3) != 3)
        fail(app, "write", -errno);
}

static void on_data(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    if (status < 0)
        fail(ud, "read", status);
    else
        printf("Received: %.*s\n", (int)len, data);
    rill_close(s, NULL, NULL);    /* closes rsock too: rill owns it now */
}

static void on_connected(rill_stream *s, int status, void *ud)
{
    struct app *app = ud;
    if (status < 0) {
        fail(app, "connect", status);
        return;
    }
    /* The loop calls send_abc in 50 ms; until then the read just waits. */
    if (rill_call_later(app->loop, 50, send_abc, app) == NULL) {
        fail(app, "timer", -errno);
        rill_abort(s);
        return;
    }
    if ((status = rill_read(s, 100, on_data, app)) < 0) {
        fail(app, "read", status);
        rill_abort(s);
    }
}

int main(int argc, char **argv)
{
    rill_loop_opts lopts = {0};
    struct app app = {0};
    int fds[2], rc, i;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            puts("usage: wait_for_data [--dns SERVERS]\n"
                 "Adopts one end of a socketpair and waits for the `abc` a timer writes into the other.");
            return 0;
        } else if (strcmp(argv[i], "--dns") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "wait_for_data: missing value for --dns (try --help)\n");
                return 2;
            }
            lopts.dns_servers = argv[++i];
        } else {
            fprintf(stderr, "wait_for_data: unexpected argument %s (try --help)\n", argv[i]);
            return 2;
        }
    }
    if ((app.loop = rill_loop_new(&lopts)) == NULL) {
        fprintf(stderr, "error: loop: %s\n", rill_strerror(-errno));
        return 1;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0) {
        fail(&app, "socketpair", -errno);
        rill_loop_free(app.loop);
        return 1;
    }
    app.wsock = fds[1];
    /* connect(sock=rsock): from here on fds[0] belongs to rill (on success). */
    if ((rc = rill_connect_sock(app.loop, fds[0], NULL, on_connected, &app, NULL)) < 0) {
        fail(&app, "connect", rc);
        close(fds[0]);
    } else {
        rill_loop_run(app.loop);
    }
    close(app.wsock);
    rill_loop_free(app.loop);
    return app.exit_code;
}
