/* [core] Test-only system call hooks. The transports (sock.c, tls.c) move bytes through
   these wrappers instead of calling read/recv/sendmsg/send/writev directly, so a
   test can inject short writes, EINTR, EAGAIN storms or ECONNRESET without any
   kernel trick. The connect machine's socket/connect/getsockopt/close, the
   server's accept, the loop's clock and the resolver go through them too, so a
   simulation (tests/support/netsim.c) can script whole Happy Eyeballs races in
   virtual time. Unset (always, outside tests) each wrapper is the real call
   behind one pointer load and a well-predicted branch. */
#ifndef RILL_SYSHOOKS_H
#define RILL_SYSHOOKS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <stdint.h>
#include <unistd.h>
#include <fcntl.h>

struct rill__resolve_req;
struct sockaddr_storage;

/* Each member behaves as the system call of the same name (returns -1 and sets
   errno on failure); a NULL member means the real call. */
typedef struct rill__sys_hooks {
    ssize_t (*read)(int fd, void *buf, size_t len);
    ssize_t (*recv)(int fd, void *buf, size_t len, int flags);
    ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
    ssize_t (*send)(int fd, const void *buf, size_t len, int flags);
    ssize_t (*writev)(int fd, const struct iovec *iov, int iovcnt);
    int (*socket)(int domain, int type, int protocol);
    int (*connect)(int fd, const struct sockaddr *addr, socklen_t len);
    int (*getsockopt)(int fd, int level, int name, void *val, socklen_t *len);
    int (*accept)(int fd, struct sockaddr *addr, socklen_t *len);
    int (*accept4)(int fd, struct sockaddr *addr, socklen_t *len, int flags);
    int (*close)(int fd);
    /* Milliseconds of a monotonic clock (rill__clock_ms): a test's virtual time. */
    uint64_t (*clock_ms)(void);
    /* Replace rill__resolve / rill__resolve_cancel (lib/net/resolve.h has the contract); the
       hook owns the request object, which the library only passes back. */
    int (*resolve)(const char *host, int port, int family,
                   void (*cb)(int status, int family, const struct sockaddr_storage *addrs, size_t n, void *ud),
                   void *ud, struct rill__resolve_req **out);
    void (*resolve_cancel)(struct rill__resolve_req *r);
    /* Pipes (the loop's wake-up pipe, lib/proc's) and descriptor flags (lib/io/fd.c):
       a test fails them without exhausting the system. A hooked pipe replaces pipe2. */
    int (*pipe)(int fds[2]);
    int (*fcntl)(int fd, int cmd, int arg);
    /* Replaces fork() (the fallback spawn); -1 and errno fail it, as fork does. */
    pid_t (*fork)(void);
} rill__sys_hooks;

/* NULL unless a test installed hooks (lib/stream/sock.c). */
extern const rill__sys_hooks *rill__sys_hooks_cur;

/* Installs h for the whole process (NULL: the real calls again). The table must
   outlive its use. Tests only: not thread-safe, never called by the library. */
void rill__sys_hooks_set(const rill__sys_hooks *h);

static inline ssize_t rill__sys_read(int fd, void *buf, size_t len)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    return h != NULL && h->read != NULL ? h->read(fd, buf, len) : read(fd, buf, len);
}

static inline ssize_t rill__sys_recv(int fd, void *buf, size_t len, int flags)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    return h != NULL && h->recv != NULL ? h->recv(fd, buf, len, flags) : recv(fd, buf, len, flags);
}

static inline ssize_t rill__sys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    return h != NULL && h->sendmsg != NULL ? h->sendmsg(fd, msg, flags) : sendmsg(fd, msg, flags);
}

static inline ssize_t rill__sys_send(int fd, const void *buf, size_t len, int flags)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    return h != NULL && h->send != NULL ? h->send(fd, buf, len, flags) : send(fd, buf, len, flags);
}

static inline ssize_t rill__sys_writev(int fd, const struct iovec *iov, int iovcnt)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    return h != NULL && h->writev != NULL ? h->writev(fd, iov, iovcnt) : writev(fd, iov, iovcnt);
}

static inline int rill__sys_socket(int domain, int type, int protocol)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    return h != NULL && h->socket != NULL ? h->socket(domain, type, protocol) : socket(domain, type, protocol);
}

static inline int rill__sys_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    return h != NULL && h->connect != NULL ? h->connect(fd, addr, len) : connect(fd, addr, len);
}

static inline int rill__sys_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    return h != NULL && h->getsockopt != NULL ? h->getsockopt(fd, level, name, val, len)
                                              : getsockopt(fd, level, name, val, len);
}

static inline int rill__sys_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    return h != NULL && h->accept != NULL ? h->accept(fd, addr, len) : accept(fd, addr, len);
}

#if defined(HAVE_ACCEPT4) && defined(_GNU_SOURCE)   /* accept4 is declared only then (server.c) */
static inline int rill__sys_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    return h != NULL && h->accept4 != NULL ? h->accept4(fd, addr, len, flags) : accept4(fd, addr, len, flags);
}
#endif

static inline int rill__sys_close(int fd)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    return h != NULL && h->close != NULL ? h->close(fd) : close(fd);
}

static inline int rill__sys_fcntl(int fd, int cmd, int arg)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    return h != NULL && h->fcntl != NULL ? h->fcntl(fd, cmd, arg) : fcntl(fd, cmd, arg);
}

#endif
