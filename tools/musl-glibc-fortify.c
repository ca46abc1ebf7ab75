/* The matrix's musl cell (tools/ci-matrix.sh) links Debian's static c-ares,
   wolfSSL and CUnit, built against glibc with _FORTIFY_SOURCE, into programs built
   against musl. Those archives call glibc's checked string and stdio functions
   (__memcpy_chk, __snprintf_chk, ...), which musl does not have: these are they,
   with glibc's checks (a write past the destination aborts). Everything else those
   archives call from libc musl provides with glibc's x86-64 ABI (README
   "Portability" says why that holds). Not part of librill. */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

long __fdelt_chk(long d);
void *__memcpy_chk(void *d, const void *s, size_t n, size_t dlen);
void *__memset_chk(void *d, int c, size_t n, size_t dlen);
char *__strcat_chk(char *d, const char *s, size_t dlen);
char *__strncat_chk(char *d, const char *s, size_t n, size_t dlen);
char *__strncpy_chk(char *d, const char *s, size_t n, size_t dlen);
int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, va_list ap);
int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, ...);
int __sprintf_chk(char *s, int flag, size_t slen, const char *fmt, ...);
int __vfprintf_chk(FILE *fp, int flag, const char *fmt, va_list ap);
int __fprintf_chk(FILE *fp, int flag, const char *fmt, ...);
int __printf_chk(int flag, const char *fmt, ...);
void __longjmp_chk(jmp_buf env, int val);

long __fdelt_chk(long d)
{
    CHECK(d >= 0 && d < FD_SETSIZE);
    return d / (long)(8 * sizeof(long));
}

void *__memcpy_chk(void *d, const void *s, size_t n, size_t dlen)
{
    CHECK(n <= dlen);
    return memcpy(d, s, n);
}

void *__memset_chk(void *d, int c, size_t n, size_t dlen)
{
    CHECK(n <= dlen);
    return memset(d, c, n);
}

char *__strcat_chk(char *d, const char *s, size_t dlen)
{
    CHECK(strlen(d) + strlen(s) < dlen);
    return strcat(d, s);
}

char *__strncat_chk(char *d, const char *s, size_t n, size_t dlen)
{
    size_t sl = strnlen(s, n);
    CHECK(strlen(d) + sl < dlen);
    return strncat(d, s, n);
}

char *__strncpy_chk(char *d, const char *s, size_t n, size_t dlen)
{
    CHECK(n <= dlen);
    return strncpy(d, s, n);
}

int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, va_list ap)
{
    (void)flag;
    CHECK(maxlen <= slen);
    return vsnprintf(s, maxlen, fmt, ap);
}

int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = __vsnprintf_chk(s, maxlen, flag, slen, fmt, ap);
    va_end(ap);
    return n;
}

int __sprintf_chk(char *s, int flag, size_t slen, const char *fmt, ...)
{
    va_list ap;
    int n;
    (void)flag;
    va_start(ap, fmt);
    n = vsnprintf(s, slen, fmt, ap);
    va_end(ap);
    CHECK(n >= 0 && (size_t)n < slen);
    return n;
}

int __vfprintf_chk(FILE *fp, int flag, const char *fmt, va_list ap)
{
    (void)flag;
    return vfprintf(fp, fmt, ap);
}

int __fprintf_chk(FILE *fp, int flag, const char *fmt, ...)
{
    va_list ap;
    int n;
    (void)flag;
    va_start(ap, fmt);
    n = vfprintf(fp, fmt, ap);
    va_end(ap);
    return n;
}

int __printf_chk(int flag, const char *fmt, ...)
{
    va_list ap;
    int n;
    (void)flag;
    va_start(ap, fmt);
    n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

void __longjmp_chk(jmp_buf env, int val)
{
    longjmp(env, val);
}
