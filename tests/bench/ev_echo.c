/* ev_echo — the libevent peer of rill's examples/echo_server for `make bench`.
 *
 *   ev_echo [--host H] [--port P] [--mode chunk|line]
 *
 * Prints `Serving on ADDR` (port 0 picks a free one), then echoes with bufferevents:
 * chunk, every byte as it comes (evbuffer_add_buffer, no copy); line, line by line
 * with evbuffer_readln. Reading stops while more than HIGH_WATER bytes wait to be
 * sent. SIGINT or SIGTERM: exit 0.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define HIGH_WATER (1u << 20)

static int line_mode;

static void on_read(struct bufferevent *bev, void *ud);

/* Closing after EOF: once the output is flushed. */
static void on_flushed(struct bufferevent *bev, void *ud)
{
    (void)ud;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_free(bev);
}

/* Output went below the low water mark: read again. */
static void on_drained(struct bufferevent *bev, void *ud)
{
    (void)ud;
    bufferevent_enable(bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *ud)
{
    struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
    (void)ud;

    if (!line_mode) {
        evbuffer_add_buffer(out, in);
    } else {
        char *line;
        size_t n;
        while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
            line[n] = '\n';                 /* readln strips it; the NUL's place is ours */
            evbuffer_add(out, line, n + 1);
            free(line);
        }
    }
    if (evbuffer_get_length(out) >= HIGH_WATER)
        bufferevent_disable(bev, EV_READ);
}

static void on_event(struct bufferevent *bev, short what, void *ud)
{
    (void)ud;
    if (what & BEV_EVENT_EOF) {
        struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
        if (line_mode && evbuffer_get_length(in) > 0)
            evbuffer_add_buffer(out, in);   /* the partial last line */
        if (evbuffer_get_length(out) > 0) {
            bufferevent_disable(bev, EV_READ);
            bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
            bufferevent_setcb(bev, NULL, on_flushed, NULL, NULL);
            return;
        }
    }
    bufferevent_free(bev);                  /* EOF with nothing to send, or an error */
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *ud)
{
    struct event_base *base = evconnlistener_get_base(l);
    struct bufferevent *bev;
    int one = 1;
    (void)sa;
    (void)salen;
    (void)ud;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!(bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE))) {
        evutil_closesocket(fd);
        return;
    }
    bufferevent_setcb(bev, on_read, on_drained, on_event, NULL);
    bufferevent_setwatermark(bev, EV_WRITE, HIGH_WATER / 2, 0);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_signal(evutil_socket_t sig, short what, void *ud)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(ud);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8888, i;
    struct event_base *base;
    struct evconnlistener *l;
    struct event *sint, *sterm;
    struct sockaddr_in sin;
    socklen_t slen = sizeof sin;
    struct rlimit rl;
    char addr[64];

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            puts("usage: ev_echo [--host H] [--port P] [--mode chunk|line]");
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
                fprintf(stderr, "ev_echo: bad mode: %s\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "ev_echo: bad argument: %s\n", argv[i]);
            return 2;
        }
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);

    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "ev_echo: bad host: %s\n", host);
        return 2;
    }
    if (!(base = event_base_new())) {
        fputs("error: event_base_new failed\n", stderr);
        return 1;
    }
    l = evconnlistener_new_bind(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
                                (struct sockaddr *)&sin, sizeof sin);
    if (!l) {
        perror("error: bind");
        return 1;
    }
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &slen);
    inet_ntop(AF_INET, &sin.sin_addr, addr, sizeof addr);
    printf("Serving on %s:%d\n", addr, ntohs(sin.sin_port));
    fflush(stdout);

    sint = evsignal_new(base, SIGINT, on_signal, base);
    sterm = evsignal_new(base, SIGTERM, on_signal, base);
    evsignal_add(sint, NULL);
    evsignal_add(sterm, NULL);
    event_base_dispatch(base);
    event_free(sint);
    event_free(sterm);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;
}
