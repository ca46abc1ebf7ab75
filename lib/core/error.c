/* [core] Error names and texts, from one table; conversions from errno and c-ares. */
#include "rill_private.h"
#include "error.h"

#include <errno.h>
#include <ares.h>

typedef struct rill__err_entry {
    int code;           /* the rill error value: -errno, or rill's own (< -4000) */
    const char *name;   /* "ECONNRESET", "RILL_ELIMIT" */
    const char *text;   /* short lower-case English; never from strerror() */
} rill__err_entry;

#define E_(name, text) { -(name), #name, text }

/* Every entry is guarded, so the table compiles on any system. Some systems give
   two names one value (EWOULDBLOCK == EAGAIN, ENOTSUP == EOPNOTSUPP on Linux):
   both entries stay and the lookup returns the first, so order decides the name. */
static const rill__err_entry rill__err_table[] = {
    { 0, "OK", "success" },

    /* rill's own, frozen values. */
#define OWN_(name, text) { name, #name, text },
    RILL__OWN_ERRORS(OWN_)
#undef OWN_

    /* POSIX.1-2001 (plus EOWNERDEAD and ENOTRECOVERABLE from POSIX.1-2008). */
#ifdef E2BIG
    E_(E2BIG, "argument list too long"),
#endif
#ifdef EACCES
    E_(EACCES, "permission denied"),
#endif
#ifdef EADDRINUSE
    E_(EADDRINUSE, "address already in use"),
#endif
#ifdef EADDRNOTAVAIL
    E_(EADDRNOTAVAIL, "address not available"),
#endif
#ifdef EAFNOSUPPORT
    E_(EAFNOSUPPORT, "address family not supported"),
#endif
#ifdef EAGAIN
    E_(EAGAIN, "resource temporarily unavailable (try again)"),
#endif
#ifdef EWOULDBLOCK
    E_(EWOULDBLOCK, "operation would block"),
#endif
#ifdef EALREADY
    E_(EALREADY, "operation already in progress"),
#endif
#ifdef EBADF
    E_(EBADF, "bad file descriptor"),
#endif
#ifdef EBADMSG
    E_(EBADMSG, "bad message"),
#endif
#ifdef EBUSY
    E_(EBUSY, "resource busy"),
#endif
#ifdef ECANCELED
    E_(ECANCELED, "operation canceled"),
#endif
#ifdef ECHILD
    E_(ECHILD, "no child processes"),
#endif
#ifdef ECONNABORTED
    E_(ECONNABORTED, "connection aborted"),
#endif
#ifdef ECONNREFUSED
    E_(ECONNREFUSED, "connection refused"),
#endif
#ifdef ECONNRESET
    E_(ECONNRESET, "connection reset by peer"),
#endif
#ifdef EDEADLK
    E_(EDEADLK, "resource deadlock would occur"),
#endif
#ifdef EDESTADDRREQ
    E_(EDESTADDRREQ, "destination address required"),
#endif
#ifdef EDOM
    E_(EDOM, "argument out of domain"),
#endif
#ifdef EDQUOT
    E_(EDQUOT, "disk quota exceeded"),
#endif
#ifdef EEXIST
    E_(EEXIST, "file exists"),
#endif
#ifdef EFAULT
    E_(EFAULT, "bad address"),
#endif
#ifdef EFBIG
    E_(EFBIG, "file too large"),
#endif
#ifdef EHOSTUNREACH
    E_(EHOSTUNREACH, "host is unreachable"),
#endif
#ifdef EIDRM
    E_(EIDRM, "identifier removed"),
#endif
#ifdef EILSEQ
    E_(EILSEQ, "illegal byte sequence"),
#endif
#ifdef EINPROGRESS
    E_(EINPROGRESS, "operation in progress"),
#endif
#ifdef EINTR
    E_(EINTR, "interrupted system call"),
#endif
#ifdef EINVAL
    E_(EINVAL, "invalid argument"),
#endif
#ifdef EIO
    E_(EIO, "input/output error"),
#endif
#ifdef EISCONN
    E_(EISCONN, "socket is already connected"),
#endif
#ifdef EISDIR
    E_(EISDIR, "is a directory"),
#endif
#ifdef ELOOP
    E_(ELOOP, "too many levels of symbolic links"),
#endif
#ifdef EMFILE
    E_(EMFILE, "too many open files in process"),
#endif
#ifdef EMLINK
    E_(EMLINK, "too many links"),
#endif
#ifdef EMSGSIZE
    E_(EMSGSIZE, "message too long"),
#endif
#ifdef EMULTIHOP
    E_(EMULTIHOP, "multihop attempted"),
#endif
#ifdef ENAMETOOLONG
    E_(ENAMETOOLONG, "file name too long"),
#endif
#ifdef ENETDOWN
    E_(ENETDOWN, "network is down"),
#endif
#ifdef ENETRESET
    E_(ENETRESET, "connection reset by network"),
#endif
#ifdef ENETUNREACH
    E_(ENETUNREACH, "network is unreachable"),
#endif
#ifdef ENFILE
    E_(ENFILE, "too many open files in system"),
#endif
#ifdef ENOBUFS
    E_(ENOBUFS, "no buffer space available"),
#endif
#ifdef ENODATA
    E_(ENODATA, "no data available"),
#endif
#ifdef ENODEV
    E_(ENODEV, "no such device"),
#endif
#ifdef ENOENT
    E_(ENOENT, "no such file or directory"),
#endif
#ifdef ENOEXEC
    E_(ENOEXEC, "executable format error"),
#endif
#ifdef ENOLCK
    E_(ENOLCK, "no locks available"),
#endif
#ifdef ENOLINK
    E_(ENOLINK, "link has been severed"),
#endif
#ifdef ENOMEM
    E_(ENOMEM, "out of memory"),
#endif
#ifdef ENOMSG
    E_(ENOMSG, "no message of the desired type"),
#endif
#ifdef ENOPROTOOPT
    E_(ENOPROTOOPT, "protocol option not available"),
#endif
#ifdef ENOSPC
    E_(ENOSPC, "no space left on device"),
#endif
#ifdef ENOSR
    E_(ENOSR, "out of streams resources"),
#endif
#ifdef ENOSTR
    E_(ENOSTR, "not a stream"),
#endif
#ifdef ENOSYS
    E_(ENOSYS, "function not implemented"),
#endif
#ifdef ENOTCONN
    E_(ENOTCONN, "socket is not connected"),
#endif
#ifdef ENOTDIR
    E_(ENOTDIR, "not a directory"),
#endif
#ifdef ENOTEMPTY
    E_(ENOTEMPTY, "directory not empty"),
#endif
#ifdef ENOTRECOVERABLE
    E_(ENOTRECOVERABLE, "state not recoverable"),
#endif
#ifdef ENOTSOCK
    E_(ENOTSOCK, "not a socket"),
#endif
#ifdef EOPNOTSUPP
    E_(EOPNOTSUPP, "operation not supported"),
#endif
#ifdef ENOTSUP
    E_(ENOTSUP, "not supported"),
#endif
#ifdef ENOTTY
    E_(ENOTTY, "inappropriate I/O control operation"),
#endif
#ifdef ENXIO
    E_(ENXIO, "no such device or address"),
#endif
#ifdef EOVERFLOW
    E_(EOVERFLOW, "value too large for defined data type"),
#endif
#ifdef EOWNERDEAD
    E_(EOWNERDEAD, "previous owner died"),
#endif
#ifdef EPERM
    E_(EPERM, "operation not permitted"),
#endif
#ifdef EPIPE
    E_(EPIPE, "broken pipe"),
#endif
#ifdef EPROTO
    E_(EPROTO, "protocol error"),
#endif
#ifdef EPROTONOSUPPORT
    E_(EPROTONOSUPPORT, "protocol not supported"),
#endif
#ifdef EPROTOTYPE
    E_(EPROTOTYPE, "protocol wrong type for socket"),
#endif
#ifdef ERANGE
    E_(ERANGE, "result out of range"),
#endif
#ifdef EROFS
    E_(EROFS, "read-only file system"),
#endif
#ifdef ESPIPE
    E_(ESPIPE, "invalid seek"),
#endif
#ifdef ESRCH
    E_(ESRCH, "no such process"),
#endif
#ifdef ESTALE
    E_(ESTALE, "stale file handle"),
#endif
#ifdef ETIME
    E_(ETIME, "timer expired"),
#endif
#ifdef ETIMEDOUT
    E_(ETIMEDOUT, "operation timed out"),
#endif
#ifdef ETXTBSY
    E_(ETXTBSY, "text file busy"),
#endif
#ifdef EXDEV
    E_(EXDEV, "cross-device link"),
#endif

    /* Common outside POSIX (Linux, the BSDs, macOS). */
#ifdef EHOSTDOWN
    E_(EHOSTDOWN, "host is down"),
#endif
#ifdef ESHUTDOWN
    E_(ESHUTDOWN, "cannot send after transport endpoint shutdown"),
#endif
#ifdef ETOOMANYREFS
    E_(ETOOMANYREFS, "too many references"),
#endif
#ifdef ESOCKTNOSUPPORT
    E_(ESOCKTNOSUPPORT, "socket type not supported"),
#endif
#ifdef EPFNOSUPPORT
    E_(EPFNOSUPPORT, "protocol family not supported"),
#endif
#ifdef ENONET
    E_(ENONET, "machine is not on the network"),
#endif
#ifdef ECOMM
    E_(ECOMM, "communication error on send"),
#endif
#ifdef EREMOTEIO
    E_(EREMOTEIO, "remote I/O error"),
#endif
#ifdef EREMOTE
    E_(EREMOTE, "object is remote"),
#endif
#ifdef EBADFD
    E_(EBADFD, "file descriptor in bad state"),
#endif
#ifdef ENOTUNIQ
    E_(ENOTUNIQ, "name not unique on network"),
#endif
#ifdef ENOTBLK
    E_(ENOTBLK, "block device required"),
#endif
#ifdef EUSERS
    E_(EUSERS, "too many users"),
#endif
#ifdef ENOMEDIUM
    E_(ENOMEDIUM, "no medium found"),
#endif
#ifdef EMEDIUMTYPE
    E_(EMEDIUMTYPE, "wrong medium type"),
#endif
#ifdef ENOKEY
    E_(ENOKEY, "required key not available"),
#endif
#ifdef EKEYEXPIRED
    E_(EKEYEXPIRED, "key has expired"),
#endif
#ifdef EKEYREVOKED
    E_(EKEYREVOKED, "key has been revoked"),
#endif
#ifdef EKEYREJECTED
    E_(EKEYREJECTED, "key was rejected by service"),
#endif
#ifdef ERFKILL
    E_(ERFKILL, "operation not possible due to RF-kill"),
#endif
#ifdef EPROCLIM
    E_(EPROCLIM, "too many processes"),
#endif
#ifdef EAUTH
    E_(EAUTH, "authentication error"),
#endif
#ifdef ENEEDAUTH
    E_(ENEEDAUTH, "need authenticator"),
#endif
#ifdef EFTYPE
    E_(EFTYPE, "inappropriate file type or format"),
#endif
#ifdef ENOATTR
    E_(ENOATTR, "attribute not found"),
#endif

};

#undef E_

#define RILL__NERR (sizeof rill__err_table / sizeof rill__err_table[0])

static const rill__err_entry *rill__err_find(int err)
{
    size_t i;

    /* Lenient: a positive value is looked up as its negative, so a raw errno
       (or a forgotten minus sign) still gets a name. Negating a positive int
       cannot overflow; INT_MIN and other unknown values fall through. */
    if (err > 0)
        err = -err;
    for (i = 0; i < RILL__NERR; i++)
        if (rill__err_table[i].code == err)
            return &rill__err_table[i];
    return NULL;
}

const char *rill_strerror(int err)
{
    const rill__err_entry *e = rill__err_find(err);
    return e ? e->text : "unknown error";
}

const char *rill_err_name(int err)
{
    const rill__err_entry *e = rill__err_find(err);
    return e ? e->name : "UNKNOWN";
}

int rill__err_from_errno(int e)
{
    if (e <= 0)
        return e;
#if defined(EWOULDBLOCK) && defined(EAGAIN) && EWOULDBLOCK != EAGAIN
    if (e == EWOULDBLOCK)
        return -EAGAIN;
#endif
    return -e;
}

int rill__err_from_ares(int ares_status)
{
    switch (ares_status) {
    case ARES_SUCCESS:
        return 0;
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
        return RILL_ENOTFOUND;
    case ARES_ENOMEM:
        return RILL_ENOMEM;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
        return RILL_ECANCELED;
    case ARES_EBADNAME:
    case ARES_EBADFAMILY:
    case ARES_EBADFLAGS:
    case ARES_EBADHINTS:
        return RILL_EINVAL;
    default:
        /* ARES_ETIMEOUT, ARES_ESERVFAIL, ARES_EREFUSED, ARES_ECONNREFUSED,
           ARES_EBADRESP, ARES_EFORMERR, ARES_ENOTIMP, ARES_EBADQUERY, ARES_EOF,
           ARES_EFILE, ARES_ENOTINITIALIZED, ... and codes newer than c-ares 1.18. */
        return RILL_EDNS;
    }
}
