/* wolf_echo — the TLS reference of `make bench`: a plain wolfSSL echo server in a
 * blocking loop, one connection at a time, no event loop at all. What it reaches is
 * the crypto limit of one core; rill's echo_server --tls is measured against it.
 *
 *   wolf_echo --cert CERT --key KEY [--host H] [--port P]
 *
 * Prints `Serving on ADDR` (port 0 picks a free one), then for each connection:
 * handshake, echo every byte until EOF, close_notify, close. SIGINT or SIGTERM: exit 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_signal(int sig)
{
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *cert = NULL, *key = NULL;
    int port = 0, i, lfd, one = 1;
    struct sockaddr_in sin;
    socklen_t slen = sizeof sin;
    WOLFSSL_CTX *ctx;
    static unsigned char buf[65536];
    char addr[64];

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            puts("usage: wolf_echo --cert CERT --key KEY [--host H] [--port P]");
            return 0;
        } else if (i + 1 < argc && !strcmp(argv[i], "--host")) {
            host = argv[++i];
        } else if (i + 1 < argc && !strcmp(argv[i], "--port")) {
            port = atoi(argv[++i]);
        } else if (i + 1 < argc && !strcmp(argv[i], "--cert")) {
            cert = argv[++i];
        } else if (i + 1 < argc && !strcmp(argv[i], "--key")) {
            key = argv[++i];
        } else {
            fprintf(stderr, "wolf_echo: bad argument: %s\n", argv[i]);
            return 2;
        }
    }
    if (!cert || !key) {
        fputs("wolf_echo: --cert and --key are required\n", stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    wolfSSL_Init();
    if (!(ctx = wolfSSL_CTX_new(wolfSSLv23_server_method())) ||
        wolfSSL_CTX_use_certificate_chain_file(ctx, cert) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        fprintf(stderr, "error: wolfSSL context with %s / %s failed\n", cert, key);
        return 1;
    }
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "wolf_echo: bad host: %s\n", host);
        return 2;
    }
    if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 128) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &slen) < 0) {
        fprintf(stderr, "error: listen: %s\n", strerror(errno));
        return 1;
    }
    inet_ntop(AF_INET, &sin.sin_addr, addr, sizeof addr);
    printf("Serving on %s:%d\n", addr, ntohs(sin.sin_port));
    fflush(stdout);

    for (;;) {
        WOLFSSL *ssl;
        int fd = accept(lfd, NULL, NULL), n;
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "error: accept: %s\n", strerror(errno));
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if ((ssl = wolfSSL_new(ctx)) != NULL) {
            wolfSSL_set_fd(ssl, fd);
            if (wolfSSL_accept(ssl) == WOLFSSL_SUCCESS) {
                while ((n = wolfSSL_read(ssl, buf, (int)sizeof buf)) > 0)
                    if (wolfSSL_write(ssl, buf, n) != n)
                        break;
                wolfSSL_shutdown(ssl);
            }
            wolfSSL_free(ssl);
        }
        close(fd);
    }
}
