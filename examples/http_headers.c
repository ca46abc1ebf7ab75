/*
 * http_headers — the seed's "Get HTTP headers" example, in C.
 *
 *   stream = await asyncio.connect(url.hostname, 443, ssl=True)
 *   stream.write(query.encode('latin-1'))
 *   while (line := await stream.readline()):
 *       print(f'HTTP header> {line}')
 *
 * The `while` loop over `await stream.readline()` becomes a callback that
 * starts the next rill_readline itself: the loop lives in the event flow.
 *
 * usage: http_headers [--dns SERVERS] [--cafile F] URL   (http://HOST[:PORT]/PATH or https://…)
 */
#define _POSIX_C_SOURCE 200809L
#include <rill.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: http_headers [--dns SERVERS] [--cafile F] URL\n"
    "Sends HEAD for URL (http:// or https://, verified TLS) and prints the response headers.\n";

struct request {
    char host[256];          /* without the brackets of an IPv6 literal */
    char hostport[300];      /* the Host header: as written in the URL */
    const char *path;
    int port, https, exit_code;
    char query[1024];
};

static void fail(struct request *r, const char *what, int err)
{
    if (r->exit_code == 0)
        fprintf(stderr, "error: %s: %s\n", what, rill_strerror(err));
    r->exit_code = 1;
}

static void on_closed(rill_stream *s, int status, void *ud)
{
    (void)s;
    if (status < 0)
        fail(ud, "close", status);
}

/* One header line; then either the next rill_readline or, after the blank
   line that ends the headers, the close. */
static void on_line(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    if (status < 0) {
        fail(ud, "read", status);
        rill_abort(s);
        return;
    }
    if (len == 0) {                 /* EOF before the blank line */
        fail(ud, "response", RILL_EINCOMPLETE);
        rill_close(s, on_closed, ud);
        return;
    }
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (len == 0) {                 /* the blank line: we ignore the body, if any */
        rill_close(s, on_closed, ud);
        return;
    }
    printf("HTTP header> %.*s\n", (int)len, data);
    if ((status = rill_readline(s, on_line, ud)) < 0) {
        fail(ud, "read", status);
        rill_abort(s);
    }
}

static void on_connected(rill_stream *s, int status, void *ud)
{
    struct request *r = ud;
    char what[300];
    if (status < 0) {
        snprintf(what, sizeof what, "connect %s port %d", r->host, r->port);
        fail(r, what, status);
        return;
    }
    /* No callback: like the seed's plain stream.write(), the request is sent
       in the background while we already wait for the first line. */
    if ((status = rill_write(s, r->query, strlen(r->query), NULL, NULL)) < 0 ||
        (status = rill_readline(s, on_line, r)) < 0) {
        fail(r, "request", status);
        rill_abort(s);
    }
}

/* http://host[:port][/path] and https://…; host may be [v6]. 0, or -1. */
static int parse_url(const char *url, struct request *r)
{
    const char *p, *host, *host_end, *slash;
    size_t n;
    long port;
    char *end;

    if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
        r->port = 80;
    } else if (strncmp(url, "https://", 8) == 0) {
        p = url + 8;
        r->port = 443;
        r->https = 1;
    } else {
        return -1;
    }
    slash = strchr(p, '/');
    r->path = slash != NULL ? slash : "/";
    if (slash == NULL)
        slash = p + strlen(p);
    n = (size_t)(slash - p);
    if (n == 0 || n >= sizeof r->hostport)
        return -1;
    memcpy(r->hostport, p, n);
    r->hostport[n] = '\0';
    host = r->hostport;
    if (*host == '[') {
        host_end = strchr(host, ']');
        if (host_end == NULL)
            return -1;
        host++;
        p = host_end + 1;
    } else {
        host_end = strchr(host, ':');
        if (host_end == NULL)
            host_end = host + n;
        p = host_end;
    }
    if (host_end == host || (size_t)(host_end - host) >= sizeof r->host)
        return -1;
    memcpy(r->host, host, (size_t)(host_end - host));
    r->host[host_end - host] = '\0';
    if (*p == ':') {
        port = strtol(p + 1, &end, 10);
        if (p[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
            return -1;
        r->port = (int)port;
    } else if (*p != '\0') {
        return -1;
    }
    return 0;
}

static int bad_arg(const char *what, const char *arg)
{
    fprintf(stderr, "http_headers: %s%s (try --help)\n", what, arg ? arg : "");
    return 2;
}

int main(int argc, char **argv)
{
    rill_loop_opts lopts = {0};
    rill_connect_opts copts = {0};
    rill_tls_opts topts = {0};
    struct request r = {0};
    const char *url = NULL;
    char errbuf[256] = "";
    rill_loop *loop;
    int i, rc;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--dns") == 0 || strcmp(argv[i], "--cafile") == 0) {
            if (i + 1 >= argc)
                return bad_arg("missing value for ", argv[i]);
            if (argv[i][2] == 'd')
                lopts.dns_servers = argv[++i];
            else
                topts.ca_file = argv[++i];
        } else if (strncmp(argv[i], "--", 2) == 0) {
            return bad_arg("unknown option ", argv[i]);
        } else if (url == NULL) {
            url = argv[i];
        } else {
            return bad_arg("unexpected argument ", argv[i]);
        }
    }
    if (url == NULL)
        return bad_arg("expected URL", NULL);
    if (parse_url(url, &r) < 0)
        return bad_arg("bad URL ", url);
    /* HTTP/1.1 wants Host; Connection: close asks the server to end after the answer. */
    if ((size_t)snprintf(r.query, sizeof r.query,
                         "HEAD %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                         r.path, r.hostport) >= sizeof r.query)
        return bad_arg("URL too long: ", url);

    if ((loop = rill_loop_new(&lopts)) == NULL) {
        fprintf(stderr, "error: loop: %s\n", rill_strerror(-errno));
        return 1;
    }
    if (r.https) {
        /* Verified by default: chain against ca_file (or the system's CAs) and
           the certificate's name against the URL's host, which also goes out as SNI. */
        topts.errbuf = errbuf;
        topts.errbuf_len = sizeof errbuf;
        if ((copts.tls = rill_tls_client_new(&topts)) == NULL) {
            rc = -errno;
            fprintf(stderr, "error: TLS setup%s%s%s: %s\n", *errbuf ? " (" : "", errbuf, *errbuf ? ")" : "", rill_strerror(rc));
            rill_loop_free(loop);
            return 1;
        }
        copts.server_hostname = r.host;
    }
    if ((rc = rill_connect(loop, r.host, r.port, &copts, on_connected, &r, NULL)) < 0)
        fail(&r, "connect", rc);
    else
        rill_loop_run(loop);
    if (copts.tls != NULL)
        rill_tls_free(copts.tls);
    rill_loop_free(loop);
    return r.exit_code;
}
