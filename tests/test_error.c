/* rill_strerror / rill_err_name and the internal conversions from errno and c-ares. */
#include "support/testutil.h"
#include "../lib/core/error.h"   /* by path: glibc also has an <error.h> */

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <ares.h>

typedef struct { int code; const char *name; } named_code;

#define OWN_(name, text) { name, #name },
static const named_code rill_codes[] = { RILL__OWN_ERRORS(OWN_) };
#undef OWN_
#define N_RILL (sizeof rill_codes / sizeof rill_codes[0])

/* errno values the table must know (positive, as <errno.h> defines them).
   Aliases (EWOULDBLOCK == EAGAIN, ...) come after the name that should win. */
#define X(n) { n, #n },
static const named_code errno_codes[] = {
#ifdef E2BIG
    X(E2BIG)
#endif
#ifdef EACCES
    X(EACCES)
#endif
#ifdef EADDRINUSE
    X(EADDRINUSE)
#endif
#ifdef EADDRNOTAVAIL
    X(EADDRNOTAVAIL)
#endif
#ifdef EAFNOSUPPORT
    X(EAFNOSUPPORT)
#endif
#ifdef EAGAIN
    X(EAGAIN)
#endif
#ifdef EWOULDBLOCK
    X(EWOULDBLOCK)
#endif
#ifdef EALREADY
    X(EALREADY)
#endif
#ifdef EBADF
    X(EBADF)
#endif
#ifdef EBADMSG
    X(EBADMSG)
#endif
#ifdef EBUSY
    X(EBUSY)
#endif
#ifdef ECANCELED
    X(ECANCELED)
#endif
#ifdef ECHILD
    X(ECHILD)
#endif
#ifdef ECONNABORTED
    X(ECONNABORTED)
#endif
#ifdef ECONNREFUSED
    X(ECONNREFUSED)
#endif
#ifdef ECONNRESET
    X(ECONNRESET)
#endif
#ifdef EDEADLK
    X(EDEADLK)
#endif
#ifdef EDESTADDRREQ
    X(EDESTADDRREQ)
#endif
#ifdef EDOM
    X(EDOM)
#endif
#ifdef EDQUOT
    X(EDQUOT)
#endif
#ifdef EEXIST
    X(EEXIST)
#endif
#ifdef EFAULT
    X(EFAULT)
#endif
#ifdef EFBIG
    X(EFBIG)
#endif
#ifdef EHOSTDOWN
    X(EHOSTDOWN)
#endif
#ifdef EHOSTUNREACH
    X(EHOSTUNREACH)
#endif
#ifdef EIDRM
    X(EIDRM)
#endif
#ifdef EILSEQ
    X(EILSEQ)
#endif
#ifdef EINPROGRESS
    X(EINPROGRESS)
#endif
#ifdef EINTR
    X(EINTR)
#endif
#ifdef EINVAL
    X(EINVAL)
#endif
#ifdef EIO
    X(EIO)
#endif
#ifdef EISCONN
    X(EISCONN)
#endif
#ifdef EISDIR
    X(EISDIR)
#endif
#ifdef ELOOP
    X(ELOOP)
#endif
#ifdef EMFILE
    X(EMFILE)
#endif
#ifdef EMLINK
    X(EMLINK)
#endif
#ifdef EMSGSIZE
    X(EMSGSIZE)
#endif
#ifdef EMULTIHOP
    X(EMULTIHOP)
#endif
#ifdef ENAMETOOLONG
    X(ENAMETOOLONG)
#endif
#ifdef ENETDOWN
    X(ENETDOWN)
#endif
#ifdef ENETRESET
    X(ENETRESET)
#endif
#ifdef ENETUNREACH
    X(ENETUNREACH)
#endif
#ifdef ENFILE
    X(ENFILE)
#endif
#ifdef ENOBUFS
    X(ENOBUFS)
#endif
#ifdef ENODATA
    X(ENODATA)
#endif
#ifdef ENODEV
    X(ENODEV)
#endif
#ifdef ENOENT
    X(ENOENT)
#endif
#ifdef ENOEXEC
    X(ENOEXEC)
#endif
#ifdef ENOLCK
    X(ENOLCK)
#endif
#ifdef ENOLINK
    X(ENOLINK)
#endif
#ifdef ENOMEM
    X(ENOMEM)
#endif
#ifdef ENOMSG
    X(ENOMSG)
#endif
#ifdef ENOPROTOOPT
    X(ENOPROTOOPT)
#endif
#ifdef ENOSPC
    X(ENOSPC)
#endif
#ifdef ENOSR
    X(ENOSR)
#endif
#ifdef ENOSTR
    X(ENOSTR)
#endif
#ifdef ENOSYS
    X(ENOSYS)
#endif
#ifdef ENOTCONN
    X(ENOTCONN)
#endif
#ifdef ENOTDIR
    X(ENOTDIR)
#endif
#ifdef ENOTEMPTY
    X(ENOTEMPTY)
#endif
#ifdef ENOTRECOVERABLE
    X(ENOTRECOVERABLE)
#endif
#ifdef ENOTSOCK
    X(ENOTSOCK)
#endif
#ifdef EOPNOTSUPP
    X(EOPNOTSUPP)
#endif
#ifdef ENOTSUP
    X(ENOTSUP)
#endif
#ifdef ENOTTY
    X(ENOTTY)
#endif
#ifdef ENXIO
    X(ENXIO)
#endif
#ifdef EOVERFLOW
    X(EOVERFLOW)
#endif
#ifdef EOWNERDEAD
    X(EOWNERDEAD)
#endif
#ifdef EPERM
    X(EPERM)
#endif
#ifdef EPIPE
    X(EPIPE)
#endif
#ifdef EPROTO
    X(EPROTO)
#endif
#ifdef EPROTONOSUPPORT
    X(EPROTONOSUPPORT)
#endif
#ifdef EPROTOTYPE
    X(EPROTOTYPE)
#endif
#ifdef ERANGE
    X(ERANGE)
#endif
#ifdef EROFS
    X(EROFS)
#endif
#ifdef ESHUTDOWN
    X(ESHUTDOWN)
#endif
#ifdef ESPIPE
    X(ESPIPE)
#endif
#ifdef ESRCH
    X(ESRCH)
#endif
#ifdef ESTALE
    X(ESTALE)
#endif
#ifdef ETIME
    X(ETIME)
#endif
#ifdef ETIMEDOUT
    X(ETIMEDOUT)
#endif
#ifdef ETXTBSY
    X(ETXTBSY)
#endif
#ifdef EXDEV
    X(EXDEV)
#endif
};
#undef X
#define N_ERRNO (sizeof errno_codes / sizeof errno_codes[0])

/* Case-insensitive substring test (strcasestr is not standard). */
static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle), i;
    for (; *hay; hay++) {
        for (i = 0; i < n && hay[i]; i++)
            if (tolower((unsigned char)hay[i]) != tolower((unsigned char)needle[i]))
                break;
        if (i == n)
            return 1;
    }
    return n == 0;
}

/* Index of the first entry in errno_codes with this code. */
static size_t first_with_code(int code)
{
    size_t i;
    for (i = 0; i < N_ERRNO; i++)
        if (errno_codes[i].code == code)
            break;
    return i;
}

static void test_rill_names(void)
{
    size_t i, j;
    for (i = 0; i < N_RILL; i++) {
        const char *name = rill_err_name(rill_codes[i].code);
        CU_ASSERT_PTR_NOT_NULL_FATAL(name);
        CU_ASSERT_EQUAL(strncmp(name, "RILL_", 5), 0);
        CU_ASSERT_STRING_EQUAL(name, rill_codes[i].name);
        for (j = 0; j < i; j++)
            CU_ASSERT_STRING_NOT_EQUAL(name, rill_err_name(rill_codes[j].code));
    }
}

static void test_rill_texts(void)
{
    size_t i, j;
    for (i = 0; i < N_RILL; i++) {
        const char *text = rill_strerror(rill_codes[i].code);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        CU_ASSERT(text[0] != '\0');
        CU_ASSERT_STRING_NOT_EQUAL(text, "unknown error");
        for (j = 0; j < i; j++)
            CU_ASSERT_STRING_NOT_EQUAL(text, rill_strerror(rill_codes[j].code));
    }
}

static void test_rill_values(void)
{
    size_t i, j;
    for (i = 0; i < N_RILL; i++) {
        CU_ASSERT(rill_codes[i].code < -4000);
        /* frozen: -4001, -4002, ... in declaration order */
        CU_ASSERT_EQUAL(rill_codes[i].code, -4001 - (int)i);
        for (j = 0; j < i; j++)
            CU_ASSERT_NOT_EQUAL(rill_codes[i].code, rill_codes[j].code);
    }
}

/* Every rill error include/rill.h defines (a value below -4000) is in the list. */
static void test_rill_header_listed(void)
{
    char line[256], name[64];
    int value, found = 0;
    size_t i;
    FILE *f = fopen(RILL_SRCDIR "/include/rill.h", "r");

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "#define %63s (%d)", name, &value) != 2 || value > -4000)
            continue;
        found++;
        for (i = 0; i < N_RILL; i++)
            if (strcmp(rill_codes[i].name, name) == 0 && rill_codes[i].code == value)
                break;
        CU_ASSERT(i < N_RILL);
        if (i == N_RILL)
            fprintf(stderr, "\n  %s (%d) is not in RILL__OWN_ERRORS\n", name, value);
    }
    fclose(f);
    CU_ASSERT_EQUAL(found, (int)N_RILL);
}

static void test_generic_aliases(void)
{
    CU_ASSERT_EQUAL(RILL_EINVAL, -EINVAL);
    CU_ASSERT_EQUAL(RILL_ENOMEM, -ENOMEM);
    CU_ASSERT_EQUAL(RILL_ECANCELED, -ECANCELED);
    CU_ASSERT_EQUAL(RILL_ETIMEDOUT, -ETIMEDOUT);
    CU_ASSERT_EQUAL(RILL_EBUSY, -EBUSY);
    CU_ASSERT_EQUAL(RILL_ENOBUFS, -ENOBUFS);
    CU_ASSERT_STRING_EQUAL(rill_err_name(RILL_EINVAL), "EINVAL");
    CU_ASSERT_STRING_EQUAL(rill_err_name(RILL_ENOMEM), "ENOMEM");
    CU_ASSERT_STRING_EQUAL(rill_err_name(RILL_ECANCELED), "ECANCELED");
    CU_ASSERT_STRING_EQUAL(rill_err_name(RILL_ETIMEDOUT), "ETIMEDOUT");
    CU_ASSERT_STRING_EQUAL(rill_err_name(RILL_EBUSY), "EBUSY");
    CU_ASSERT_STRING_EQUAL(rill_err_name(RILL_ENOBUFS), "ENOBUFS");
    /* all of them are below zero and clear of rill's own range */
    CU_ASSERT(RILL_EINVAL < 0 && RILL_EINVAL > -4000);
    CU_ASSERT(RILL_ENOBUFS < 0 && RILL_ENOBUFS > -4000);
}

static void test_connection_errors(void)
{
    const char *t = rill_strerror(-ECONNREFUSED);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT(contains_ci(t, "refused"));
    CU_ASSERT_STRING_EQUAL(rill_err_name(-ECONNREFUSED), "ECONNREFUSED");
    CU_ASSERT_STRING_EQUAL(rill_err_name(-ECONNRESET), "ECONNRESET");
    CU_ASSERT(contains_ci(rill_strerror(-ECONNRESET), "reset"));
    CU_ASSERT(contains_ci(rill_strerror(-ETIMEDOUT), "timed out"));
    CU_ASSERT(contains_ci(rill_strerror(-EPIPE), "pipe"));
}

static void test_unknown(void)
{
    static const int unknown[] = { -3999, -4000, -4009, -99999, INT_MIN, INT_MAX, -INT_MAX };
    size_t i;
    for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *t = rill_strerror(unknown[i]);
        const char *n = rill_err_name(unknown[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT_PTR_NOT_NULL_FATAL(n);
        CU_ASSERT_STRING_EQUAL(t, "unknown error");
        CU_ASSERT_STRING_EQUAL(n, "UNKNOWN");
        /* static: the same storage every time */
        CU_ASSERT_PTR_EQUAL(t, rill_strerror(unknown[i]));
        CU_ASSERT_PTR_EQUAL(n, rill_err_name(unknown[i]));
    }
}

static void test_zero(void)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(rill_err_name(0));
    CU_ASSERT_STRING_EQUAL(rill_err_name(0), "OK");
    CU_ASSERT_STRING_EQUAL(rill_strerror(0), "success");
}

static void test_positive_lenient(void)
{
    CU_ASSERT_STRING_EQUAL(rill_err_name(ECONNRESET), "ECONNRESET");
    CU_ASSERT_PTR_EQUAL(rill_strerror(ECONNRESET), rill_strerror(-ECONNRESET));
    CU_ASSERT_STRING_EQUAL(rill_err_name(-RILL_ELIMIT), "RILL_ELIMIT");
    CU_ASSERT_PTR_EQUAL(rill_strerror(-RILL_ELIMIT), rill_strerror(RILL_ELIMIT));
}

static void test_errno_table(void)
{
    size_t i, j;
    for (i = 0; i < N_ERRNO; i++) {
        int err = -errno_codes[i].code;
        size_t first = first_with_code(errno_codes[i].code);
        const char *name = rill_err_name(err);
        const char *text = rill_strerror(err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        CU_ASSERT(name[0] != '\0');
        CU_ASSERT(text[0] != '\0');
        CU_ASSERT_STRING_NOT_EQUAL(name, "UNKNOWN");
        CU_ASSERT_STRING_NOT_EQUAL(text, "unknown error");
        /* an alias gets the name of the value's first spelling */
        CU_ASSERT_STRING_EQUAL(name, errno_codes[first].name);
        if (strcmp(name, errno_codes[first].name) != 0)
            fprintf(stderr, "\n  %s (%d) is named %s\n", errno_codes[i].name, err, name);
        /* distinct values: distinct names and texts */
        for (j = 0; j < i; j++) {
            if (errno_codes[j].code == errno_codes[i].code)
                continue;
            CU_ASSERT_STRING_NOT_EQUAL(name, rill_err_name(-errno_codes[j].code));
            CU_ASSERT_STRING_NOT_EQUAL(text, rill_strerror(-errno_codes[j].code));
        }
    }
}

static void test_from_errno(void)
{
    CU_ASSERT_EQUAL(rill__err_from_errno(EINVAL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__err_from_errno(ECONNRESET), -ECONNRESET);
    CU_ASSERT_EQUAL(rill__err_from_errno(EAGAIN), -EAGAIN);
    CU_ASSERT_EQUAL(rill__err_from_errno(EWOULDBLOCK), -EAGAIN);
    CU_ASSERT_EQUAL(rill__err_from_errno(0), 0);
}

static void test_from_ares(void)
{
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_SUCCESS), 0);
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_ENOTFOUND), RILL_ENOTFOUND);
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_ENODATA), RILL_ENOTFOUND);
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_ESERVFAIL), RILL_EDNS);
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_ETIMEOUT), RILL_EDNS);
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_ECONNREFUSED), RILL_EDNS);
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_EREFUSED), RILL_EDNS);
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_EBADRESP), RILL_EDNS);
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_ECANCELLED), RILL_ECANCELED);
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_EDESTRUCTION), RILL_ECANCELED);
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_ENOMEM), RILL_ENOMEM);
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_EBADNAME), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_EBADFAMILY), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__err_from_ares(ARES_EBADFLAGS), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__err_from_ares(9999), RILL_EDNS);
    CU_ASSERT_EQUAL(rill__err_from_ares(-1), RILL_EDNS);
}

static void test_dns_texts(void)
{
    const char *nf = rill_strerror(RILL_ENOTFOUND);
    const char *dns = rill_strerror(RILL_EDNS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dns);
    CU_ASSERT_STRING_NOT_EQUAL(nf, dns);
    CU_ASSERT(contains_ci(nf, "not found"));
    CU_ASSERT(!contains_ci(nf, "failed"));
    CU_ASSERT(contains_ci(dns, "failed"));
    CU_ASSERT(!contains_ci(dns, "not found"));
}

int test_error_register(void)
{
    static const test_case cases[] = {
        { "rill codes have distinct RILL_ names", test_rill_names },
        { "rill codes have distinct texts", test_rill_texts },
        { "rill codes are frozen below -4000", test_rill_values },
        { "every rill code rill.h defines is listed", test_rill_header_listed },
        { "generic codes are -errno", test_generic_aliases },
        { "connection error names and texts", test_connection_errors },
        { "unknown values give static text", test_unknown },
        { "0 is OK", test_zero },
        { "positive values are looked up as negative", test_positive_lenient },
        { "every errno has a name and text", test_errno_table },
        { "errno conversion", test_from_errno },
        { "c-ares conversion", test_from_ares },
        { "not found and DNS failure differ", test_dns_texts },
        { NULL, NULL }
    };
    return test_add_suite("error", cases);
}
