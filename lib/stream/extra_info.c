/* [stream] asyncio's get_extra_info: addresses, the descriptor, and their text forms. */
#include "stream.h"

#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

int rill_format_addr(const struct sockaddr *addr, char *buf, size_t buflen)
{
    char host[INET6_ADDRSTRLEN], text[sizeof(((struct sockaddr_un *)0)->sun_path) + INET6_ADDRSTRLEN + 16];

    if (addr == NULL)
        return RILL_EINVAL;
    switch (addr->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(text, sizeof text, "%s:%u", host, (unsigned)ntohs(in->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(text, sizeof text, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *un = (const struct sockaddr_un *)(const void *)addr;
        snprintf(text, sizeof text, "%.*s", (int)sizeof un->sun_path, un->sun_path);
        break;
    }
    default:
        return RILL_EINVAL;
    }
    return rill__put_text(buf, buflen, text);
}

static int copy_addr(const struct sockaddr_storage *src, socklen_t srclen, struct sockaddr *addr, socklen_t *len)
{
    if (addr == NULL || len == NULL)
        return RILL_EINVAL;
    if (*len < srclen) {
        *len = srclen;   /* tells the caller what it takes */
        return RILL_ENOBUFS;
    }
    memcpy(addr, src, srclen);
    *len = srclen;
    return 0;
}

int rill_peername(const rill_stream *s, struct sockaddr *addr, socklen_t *len)
{
    if (s == NULL)
        return RILL_EINVAL;
    if (!(s->flags & S_IS_SOCKET))
        return RILL_EMODE;
    if (s->peerlen == 0)
        return -ENOTCONN;
    return copy_addr(&s->peer, s->peerlen, addr, len);
}

int rill_sockname(const rill_stream *s, struct sockaddr *addr, socklen_t *len)
{
    if (s == NULL)
        return RILL_EINVAL;
    if (!(s->flags & S_IS_SOCKET))
        return RILL_EMODE;
    return copy_addr(&s->local, s->locallen, addr, len);
}

int rill_fileno(const rill_stream *s)
{
    if (s == NULL)
        return RILL_EINVAL;
    return s->fd >= 0 ? s->fd : RILL_ECLOSED;
}

int rill_get_extra_info(const rill_stream *s, const char *name, char *buf, size_t buflen)
{
    char num[32];

    if (s == NULL || name == NULL)
        return RILL_EINVAL;
    if (strcmp(name, "peername") == 0 || strcmp(name, "sockname") == 0) {
        int peer = name[0] == 'p';
        if (!(s->flags & S_IS_SOCKET))
            return RILL_EMODE;
        if (peer && s->peerlen == 0)
            return -ENOENT;
        return rill_format_addr((const struct sockaddr *)(peer ? &s->peer : &s->local), buf, buflen);
    }
    if (strcmp(name, "socket") == 0 || strcmp(name, "pipe") == 0) {
        int want_socket = name[1] == 'o';
        if (want_socket != ((s->flags & S_IS_SOCKET) != 0))
            return RILL_EMODE;
        if (s->fd < 0)
            return -ENOENT;
        snprintf(num, sizeof num, "%d", s->fd);
        return rill__put_text(buf, buflen, num);
    }
    if (strcmp(name, "peercert") == 0 || strcmp(name, "cipher") == 0 ||
        strcmp(name, "compression") == 0 || strcmp(name, "alpn") == 0)
        return rill__tls_extra_info(s, name, buf, buflen);
    return RILL_EINVAL;
}
