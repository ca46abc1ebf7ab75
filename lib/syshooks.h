/* Test-only system call hooks. The transports (sock.c, tls.c) move bytes through
   these wrappers instead of calling read/recv/sendmsg/send/writev directly, so a
   test can inject short writes, EINTR, EAGAIN storms or ECONNRESET without any
   kernel trick. Unset (always, outside tests) each wrapper is the real call
   behind one pointer load and a well-predicted branch. */
#ifndef RILL_SYSHOOKS_H
#define RILL_SYSHOOKS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Each member behaves as the system call of the same name (returns -1 and sets
   errno on failure); a NULL member means the real call. */
typedef struct rill__sys_hooks {
    ssize_t (*read)(int fd, void *buf, size_t len);
    ssize_t (*recv)(int fd, void *buf, size_t len, int flags);
    ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
    ssize_t (*send)(int fd, const void *buf, size_t len, int flags);
    ssize_t (*writev)(int fd, const struct iovec *iov, int iovcnt);
} rill__sys_hooks;

/* NULL unless a test installed hooks (lib/sock.c). */
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

#endif
