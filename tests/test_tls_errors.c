/* TLS error paths: context options that name unusable files, allocation failures in
   rill and inside wolfSSL, bad arguments to rill__tls_start, socket errors under the
   handshake and under an established session, certificates that fail in ways the
   main suite does not make (not yet valid, no subjectAltName, a broken signature),
   a descriptor the loop cannot watch, and the extra-info calls' refusals.

   Peers are rill's own TLS client and server over socketpairs; the certificates
   beyond tests/support/certs.c's are made here, in the same directory, with the
   same CA. */
#include "support/testutil.h"
#include "support/streams.h"
#include "support/certs.h"
#include "rill_private.h"
#include "stream.h"
#include "syshooks.h"
#include "tls.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define WOLFSSL_OPTIONS_IGNORE_SYS
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/memory.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#define WAIT_MS 15000

/* ---------------------------------------------------------------- helpers */

typedef struct peer {
    rill_stream *s;
    int hs_done, hs_status, hs_calls;
    char reason[256];
} peer;

static int adopt(rill_loop *loop, int fd, peer *p)
{
    memset(p, 0, sizeof *p);
    p->s = test_adopt_try(loop, fd, NULL);
    return p->s != NULL ? 0 : -1;
}

static int pair_new(rill_loop *loop, peer *cli, peer *srv)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return -1;
    if (adopt(loop, sv[0], cli) < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (adopt(loop, sv[1], srv) < 0) {
        close(sv[1]);
        return -1;
    }
    return 0;
}

static void on_hs(rill_stream *s, int status, void *ud)
{
    peer *p = ud;
    const char *r = rill__tls_last_error(s);
    p->hs_status = status;
    p->hs_done = 1;
    p->hs_calls++;
    snprintf(p->reason, sizeof p->reason, "%s", r != NULL ? r : "");
}

static int wait_both(rill_loop *loop, const int *a, const int *b, int ms)
{
    uint64_t end = test_now_ms() + (uint64_t)ms;
    while (!(*a && *b) && test_now_ms() < end)
        if (rill_loop_run_once(loop, 20) < 0)
            break;
    return *a && *b;
}

static void drop(peer *p)
{
    if (p->s != NULL)
        rill_abort(p->s);
    p->s = NULL;
}

static rill_tls *client_ctx(const char *ca, int verify, const char *alpn)
{
    rill_tls_opts o;
    memset(&o, 0, sizeof o);
    o.ca_file = ca;
    o.verify = verify;
    o.alpn = alpn;
    return rill_tls_client_new(&o);
}

static rill_tls *server_ctx(const char *cert, const char *key)
{
    rill_tls_opts o;
    memset(&o, 0, sizeof o);
    o.cert_file = cert;
    o.key_file = key;
    return rill_tls_server_new(&o);
}

/* A loop, a socketpair of plain streams and both handshakes started; 0 when all started. */
typedef struct hs_run {
    rill_loop *loop;
    rill_tls *ctls, *stls;
    peer cli, srv;
} hs_run;

static int hs_timeout_ms = WAIT_MS;   /* the handshakes' deadline; 0: none */

static int hs_start(hs_run *r, int backend, rill_tls *ctls, const char *host, rill_tls *stls)
{
    memset(r, 0, sizeof *r);
    r->loop = test_loop_new(backend);
    r->ctls = ctls;
    r->stls = stls;
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctls);
    CU_ASSERT_PTR_NOT_NULL_FATAL(stls);
    CU_ASSERT_EQUAL_FATAL(pair_new(r->loop, &r->cli, &r->srv), 0);
    CU_ASSERT_EQUAL_FATAL(rill__tls_start(r->cli.s, ctls, 0, host, hs_timeout_ms, on_hs, &r->cli), 0);
    CU_ASSERT_EQUAL_FATAL(rill__tls_start(r->srv.s, stls, 1, NULL, hs_timeout_ms, on_hs, &r->srv), 0);
    return 0;
}

static void hs_end(hs_run *r)
{
    drop(&r->cli);
    drop(&r->srv);
    test_loop_finish(r->loop);
    rill_tls_free(r->ctls);
    rill_tls_free(r->stls);
}

/* ---------------------------------------------------- extra certificates */

static const char extra_config[] =
    "[ nosan ]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = serverAuth\n"
    "[ many ]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = serverAuth\n";

typedef struct extra_certs {
    char future[TEST_CERT_PATH];     /* like server, valid only from 2099 */
    char nosan[TEST_CERT_PATH];      /* CN=localhost without any subjectAltName */
    char many[TEST_CERT_PATH];       /* localhost plus 150 more DNS names: a long peercert text */
    char tampered[TEST_CERT_PATH];   /* server.pem with one bit of its signature flipped */
    char garbage[TEST_CERT_PATH];    /* a CERTIFICATE block whose contents are not DER */
    char emptydir[TEST_CERT_PATH];   /* a directory without any file */
    char chain[TEST_CERT_PATH];      /* server.pem followed by the CA: a chain of two */
    char rsakey[TEST_CERT_PATH];     /* an RSA key: no certificate here holds its public half */
} extra_certs;

static int run_in(const char *dir, char *const argv[])
{
    pid_t pid = fork();
    int st;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        if (chdir(dir) < 0)
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

static int write_config(const char *dir)
{
    char path[TEST_CERT_PATH + 32];
    FILE *f;
    int i;

    snprintf(path, sizeof path, "%s/tlserr.cnf", dir);
    if ((f = fopen(path, "w")) == NULL)
        return -1;
    fputs(extra_config, f);
    fputs("subjectAltName = DNS:localhost,IP:127.0.0.9,IP:::2,email:rill@rill-test.example,"
          "URI:https://rill-test.example/", f);
    for (i = 0; i < 150; i++)
        fprintf(f, ",DNS:name%03d.rill-test.example", i);
    fputs("\n", f);
    return fclose(f) == 0 ? 0 : -1;
}

/* Flips the last byte of the DER: the end of the signature, so the certificate still parses. */
static int make_tampered(const char *in, const char *out)
{
    unsigned char der[8192], pem[12288];
    int dlen, plen;
    size_t n;
    FILE *f;

    if ((f = fopen(in, "rb")) == NULL)
        return -1;
    n = fread(pem, 1, sizeof pem, f);
    fclose(f);
    if ((dlen = wc_CertPemToDer(pem, (long)n, der, (long)sizeof der, CERT_TYPE)) <= 0)
        return -1;
    der[dlen - 1] ^= 0x01;
    if ((plen = wc_DerToPem(der, (word32)dlen, pem, (word32)sizeof pem, CERT_TYPE)) <= 0)
        return -1;
    if ((f = fopen(out, "wb")) == NULL)
        return -1;
    if (fwrite(pem, 1, (size_t)plen, f) != (size_t)plen) {
        fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int concat(const char *out, const char *a, const char *b)
{
    const char *in[2];
    char buf[4096];
    FILE *f = fopen(out, "w");
    int i, ok = f != NULL;

    in[0] = a;
    in[1] = b;
    for (i = 0; ok && i < 2; i++) {
        FILE *g = fopen(in[i], "r");
        size_t n;
        if (g == NULL) {
            ok = 0;
            break;
        }
        while ((n = fread(buf, 1, sizeof buf, g)) > 0)
            ok = ok && fwrite(buf, 1, n, f) == n;
        fclose(g);
    }
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

static const extra_certs *extra_get(const test_certs *c)
{
    static extra_certs x;
    static int state;   /* 0 not tried, 1 made, -1 failed */
    char *future[] = { "openssl", "ca", "-batch", "-config", "rill.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
                       "-in", "localhost.csr", "-out", "future.pem", "-startdate", "20990101000000Z",
                       "-enddate", "20991231000000Z", "-extfile", "rill.cnf", "-extensions", "srv", "-notext", NULL };
    char *rsa[] = { "openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", "rsa.key", NULL };
    char *nosan[] = { "openssl", "x509", "-req", "-in", "localhost.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                      "-set_serial", "40", "-days", "30", "-extfile", "tlserr.cnf", "-extensions", "nosan",
                      "-out", "nosan.pem", NULL };
    char *many[] = { "openssl", "x509", "-req", "-in", "localhost.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                     "-set_serial", "41", "-days", "30", "-extfile", "tlserr.cnf", "-extensions", "many",
                     "-out", "many.pem", NULL };

    if (state != 0)
        return state == 1 ? &x : NULL;
    state = -1;
    snprintf(x.future, sizeof x.future, "%s/future.pem", c->dir);
    snprintf(x.nosan, sizeof x.nosan, "%s/nosan.pem", c->dir);
    snprintf(x.many, sizeof x.many, "%s/many.pem", c->dir);
    snprintf(x.tampered, sizeof x.tampered, "%s/tampered.pem", c->dir);
    snprintf(x.garbage, sizeof x.garbage, "%s/garbage.pem", c->dir);
    snprintf(x.emptydir, sizeof x.emptydir, "%s/empty.d", c->dir);
    snprintf(x.rsakey, sizeof x.rsakey, "%s/rsa.key", c->dir);
    snprintf(x.chain, sizeof x.chain, "%s/chain.pem", c->dir);
    if (write_config(c->dir) < 0 || run_in(c->dir, future) < 0 || run_in(c->dir, nosan) < 0 ||
        run_in(c->dir, many) < 0 || run_in(c->dir, rsa) < 0 || make_tampered(c->server, x.tampered) < 0)
        return NULL;
    if (write_text(x.garbage, "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGUgYXQgYWxsLCBqdXN0IHRleHQu\n"
                              "-----END CERTIFICATE-----\n") < 0)
        return NULL;
    if (concat(x.chain, c->server, c->ca) < 0)
        return NULL;
    /* certs.c removes plain files only: the directory goes at exit with ours */
    if (mkdir(x.emptydir, 0700) < 0 && errno != EEXIST)
        return NULL;
    state = 1;
    return &x;
}

static char emptydir_to_remove[TEST_CERT_PATH];
static void remove_emptydir(void)
{
    rmdir(emptydir_to_remove);
}

static const extra_certs *extra_or_fail(const test_certs *c)
{
    static int registered;
    const extra_certs *x = extra_get(c);
    if (x == NULL) {
        CU_FAIL("making the extra test certificates failed");
        return NULL;
    }
    if (!registered) {
        registered = 1;
        snprintf(emptydir_to_remove, sizeof emptydir_to_remove, "%s", x->emptydir);
        atexit(remove_emptydir);
    }
    return x;
}

/* ---------------------------------------------------------- syscall hooks */

/* Send and recv on one descriptor: pass the first *_pass calls, then fail *_fails
   calls (-1: all of them) with *_errno. */
static struct {
    int fd;
    int send_pass, send_fails, send_errno, send_failed;
    int recv_pass, recv_fails, recv_errno, recv_failed;
} hk;

static int hook_should_fail(int *pass, int *fails, int *failed)
{
    if (*fails == 0)
        return 0;
    if (*pass > 0) {
        (*pass)--;
        return 0;
    }
    if (*fails > 0)
        (*fails)--;
    (*failed)++;
    return 1;
}

static ssize_t hook_send(int fd, const void *buf, size_t len, int flags)
{
    if (fd == hk.fd && hook_should_fail(&hk.send_pass, &hk.send_fails, &hk.send_failed)) {
        errno = hk.send_errno;
        return -1;
    }
    return send(fd, buf, len, flags);
}

static ssize_t hook_recv(int fd, void *buf, size_t len, int flags)
{
    if (fd == hk.fd && hook_should_fail(&hk.recv_pass, &hk.recv_fails, &hk.recv_failed)) {
        errno = hk.recv_errno;
        return -1;
    }
    return recv(fd, buf, len, flags);
}

static const rill__sys_hooks hooks = { .recv = hook_recv, .send = hook_send };

static void hooks_on(int fd)
{
    memset(&hk, 0, sizeof hk);
    hk.fd = fd;
    rill__sys_hooks_set(&hooks);
}

static void hooks_off(void)
{
    rill__sys_hooks_set(NULL);
    memset(&hk, 0, sizeof hk);
    hk.fd = -1;
}

/* ------------------------------------------------------ wolfSSL allocator */

/* Counts wolfSSL's own allocations (rill__alloc_fail_at sees only rill's) and fails the
   armed one; blocks are libc's either way, so switching back and forth is safe. */
static unsigned long wolf_count, wolf_fail_at;

static void *wolf_malloc(size_t n)
{
    if (wolf_fail_at != 0 && ++wolf_count == wolf_fail_at)
        return NULL;
    return malloc(n);
}

static void wolf_free(void *p)
{
    free(p);
}

static void *wolf_realloc(void *p, size_t n)
{
    if (wolf_fail_at != 0 && ++wolf_count == wolf_fail_at)
        return NULL;
    return realloc(p, n);
}

static void wolf_fail_arm(unsigned long n)
{
    wolf_count = 0;
    wolf_fail_at = n;
    wolfSSL_SetAllocators(wolf_malloc, wolf_free, wolf_realloc);
}

static void wolf_fail_disarm(void)
{
    wolf_fail_at = 0;
    wolfSSL_SetAllocators(NULL, NULL, NULL);
}

/* ------------------------------------------------------------- contexts */

static void expect_ctx_fail(rill_tls *t, int err, const char *errbuf, const char *needle)
{
    CU_ASSERT_PTR_NULL(t);
    rill_tls_free(t);
    CU_ASSERT_EQUAL(errno, err);
    if (needle != NULL && strstr(errbuf, needle) == NULL) {
        fprintf(stderr, "errbuf \"%s\" lacks \"%s\"\n", errbuf, needle);
        CU_FAIL("the reason does not say what failed");
    }
}

static void test_ctx_file_errors(void)
{
    const test_certs *c = test_certs_or_skip();
    const extra_certs *x;
    rill_tls_opts o;
    char err[512];

    if (c == NULL || (x = extra_or_fail(c)) == NULL)
        return;
    memset(&o, 0, sizeof o);
    o.errbuf = err;
    o.errbuf_len = sizeof err;

    /* CA directories: missing, then present without any CA in it */
    o.ca_path = "/nonexistent/rill-ca.d";
    errno = 0;
    expect_ctx_fail(rill_tls_client_new(&o), ENOENT, err, "ca_path /nonexistent/rill-ca.d");
    o.ca_path = x->emptydir;
    errno = 0;
    expect_ctx_fail(rill_tls_client_new(&o), -RILL_ECERT, err, "no CA certificate could be loaded");
    CU_ASSERT_PTR_NOT_NULL(strstr(err, x->emptydir));
    o.ca_path = NULL;

    /* a CERTIFICATE block that is not DER */
    o.ca_file = x->garbage;
    errno = 0;
    expect_ctx_fail(rill_tls_client_new(&o), -RILL_ECERT, err, "no usable PEM certificate in it");
    CU_ASSERT_PTR_NOT_NULL(strstr(err, x->garbage));
    o.ca_file = NULL;

    /* a client certificate without its key */
    o.verify = -1;
    o.cert_file = c->client;
    errno = 0;
    expect_ctx_fail(rill_tls_client_new(&o), EINVAL, err, "cert_file and key_file go together");
    o.cert_file = NULL;
    o.key_file = c->key;
    errno = 0;
    expect_ctx_fail(rill_tls_client_new(&o), EINVAL, err, "cert_file and key_file go together");
    o.verify = 0;

    /* server files: missing certificate, missing key, a key where the chain goes, a key of another certificate */
    o.cert_file = "/nonexistent/rill-cert.pem";
    o.key_file = c->key;
    errno = 0;
    expect_ctx_fail(rill_tls_server_new(&o), ENOENT, err, "cert_file /nonexistent/rill-cert.pem");
    o.cert_file = c->server;
    o.key_file = "/nonexistent/rill-key.pem";
    errno = 0;
    expect_ctx_fail(rill_tls_server_new(&o), ENOENT, err, "key_file /nonexistent/rill-key.pem");
    o.cert_file = c->key;
    o.key_file = c->key;
    errno = 0;
    expect_ctx_fail(rill_tls_server_new(&o), EINVAL, err, "not a PEM certificate chain");
    /* wolfSSL 5.5 tells two P-256 keys apart only when they differ in type: an RSA key */
    o.cert_file = c->server;
    o.key_file = x->rsakey;
    errno = 0;
    expect_ctx_fail(rill_tls_server_new(&o), EINVAL, err, "does not match cert_file");

    /* a server that checks clients, with CAs it cannot read */
    o.key_file = c->key;
    o.verify = 1;
    o.ca_file = "/nonexistent/rill-client-ca.pem";
    errno = 0;
    expect_ctx_fail(rill_tls_server_new(&o), ENOENT, err, "ca_file /nonexistent/rill-client-ca.pem");
    o.ca_file = NULL;
    o.verify = 2;
    o.ca_path = "/nonexistent/rill-client-ca.d";
    errno = 0;
    expect_ctx_fail(rill_tls_server_new(&o), ENOENT, err, "ca_path /nonexistent/rill-client-ca.d");
}

/* The checks done before any file is opened, each in both directions. */
static void test_ctx_option_checks(void)
{
    const test_certs *c = test_certs_or_skip();
    rill_tls_opts o;
    rill_tls *t;
    char err[256], name[300];

    if (c == NULL)
        return;
    memset(&o, 0, sizeof o);
    /* no errbuf, or one without room: errno alone tells */
    o.verify = 5;
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_tls_client_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);
    strcpy(err, "untouched");
    o.errbuf = err;
    o.errbuf_len = 0;
    errno = 0;
    CU_ASSERT_PTR_NULL(rill_tls_client_new(&o));
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "untouched");
    o.errbuf_len = sizeof err;
    o.verify = 0;

    /* a server takes verify 0 to 2 and needs both files */
    o.verify = -1;
    errno = 0;
    expect_ctx_fail(rill_tls_server_new(&o), EINVAL, err, "a server takes 0, 1 or 2");
    o.verify = 0;
    o.cert_file = c->server;
    errno = 0;
    expect_ctx_fail(rill_tls_server_new(&o), EINVAL, err, "a server needs cert_file and key_file");
    o.cert_file = NULL;

    /* ALPN names are 1 to 255 bytes */
    memset(name, 'p', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    o.ca_file = c->ca;
    o.alpn = name;
    errno = 0;
    expect_ctx_fail(rill_tls_client_new(&o), EINVAL, err, "alpn \"ppp");
    name[255] = '\0';
    t = rill_tls_client_new(&o);
    CU_ASSERT_PTR_NOT_NULL(t);
    rill_tls_free(t);
    o.alpn = NULL;

    /* a cipher list wolfSSL takes */
    o.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:TLS13-AES128-GCM-SHA256";
    t = rill_tls_client_new(&o);
    CU_ASSERT_PTR_NOT_NULL(t);
    CU_ASSERT_STRING_EQUAL(err, "");
    rill_tls_free(t);
}

/* Every allocation rill__tls_new and wolfSSL make for a context, failed in turn:
   a clean NULL with errno set, never a half-made context, never a leak. */
static void test_ctx_alloc_walk(void)
{
    const test_certs *c = test_certs_or_skip();
    rill_tls_opts o;
    rill_tls *t = NULL;
    unsigned long n, live;
    char err[256];
    int enomem = 0;

    if (c == NULL)
        return;
    memset(&o, 0, sizeof o);
    o.ca_file = c->ca;
    o.alpn = "h2,http/1.1";
    o.errbuf = err;
    o.errbuf_len = sizeof err;
    live = rill__alloc_live();
    for (n = 1; n < 50; n++) {
        rill__alloc_fail_at(n);
        errno = 0;
        t = rill_tls_client_new(&o);
        rill__alloc_fail_at(0);
        if (t != NULL)
            break;
        CU_ASSERT_EQUAL(errno, ENOMEM);
        CU_ASSERT_STRING_EQUAL(err, "out of memory");
        CU_ASSERT_EQUAL(rill__alloc_live(), live);
    }
    CU_ASSERT(n >= 3);   /* the context and its ALPN copy */
    CU_ASSERT_PTR_NOT_NULL(t);
    rill_tls_free(t);
    CU_ASSERT_EQUAL(rill__alloc_live(), live);

    /* inside wolfSSL: the context itself says ENOMEM; a CA store that ran out of
       memory reads as an unloadable CA file, which is all wolfSSL reports */
    t = NULL;
    for (n = 1; n < 2000; n++) {
        wolf_fail_arm(n);
        errno = 0;
        t = rill_tls_client_new(&o);
        wolf_fail_disarm();
        if (t != NULL)
            break;
        CU_ASSERT(errno == ENOMEM || errno == -RILL_ECERT);
        CU_ASSERT(err[0] != '\0');
        enomem += errno == ENOMEM;
        CU_ASSERT_EQUAL(rill__alloc_live(), live);
    }
    CU_ASSERT_PTR_NOT_NULL(t);
    CU_ASSERT(enomem > 0);
    rill_tls_free(t);
    CU_ASSERT_EQUAL(rill__alloc_live(), live);
}

/* ------------------------------------------------------- rill__tls_start */

static void test_start_args(void)
{
    const test_certs *c = test_certs_or_skip();
    rill_tls *ctls, *loose, *stls, *longalpn;
    char *huge, alpn[1100];
    hs_run r;
    peer cli, srv;
    rill_loop *loop;
    size_t i;

    if (c == NULL)
        return;
    ctls = client_ctx(c->ca, 0, NULL);
    loose = client_ctx(NULL, -1, NULL);
    stls = server_ctx(c->server, c->key);
    /* four names of 255 bytes and one more: a valid list wolfSSL_UseALPN's copy cannot hold */
    for (i = 0; i < sizeof alpn - 1; i++)
        alpn[i] = (i % 256 == 255) ? ',' : 'a';
    alpn[sizeof alpn - 1] = '\0';
    longalpn = client_ctx(NULL, -1, alpn);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctls);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loose);
    CU_ASSERT_PTR_NOT_NULL_FATAL(stls);
    CU_ASSERT_PTR_NOT_NULL_FATAL(longalpn);
    loop = test_loop_new(0);
    CU_ASSERT_EQUAL_FATAL(pair_new(loop, &cli, &srv), 0);

    CU_ASSERT_EQUAL(rill__tls_start(NULL, ctls, 0, "localhost", 0, on_hs, &cli), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__tls_start(cli.s, NULL, 0, "localhost", 0, on_hs, &cli), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__tls_start(cli.s, ctls, 0, "localhost", 0, NULL, &cli), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__tls_start(srv.s, stls, 0, NULL, 0, on_hs, &srv), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__tls_start(cli.s, ctls, 0, "", 0, on_hs, &cli), RILL_EINVAL);
    /* SNI carries at most 65535 bytes */
    huge = malloc(70001);
    CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
    memset(huge, 'h', 70000);
    huge[70000] = '\0';
    CU_ASSERT_EQUAL(rill__tls_start(cli.s, ctls, 0, huge, 0, on_hs, &cli), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__tls_start(cli.s, loose, 0, huge, 0, on_hs, &cli), RILL_EINVAL);
    free(huge);
    CU_ASSERT_EQUAL(rill__tls_start(cli.s, longalpn, 0, NULL, 0, on_hs, &cli), RILL_EINVAL);
    /* each refusal left the stream plain and usable */
    CU_ASSERT_EQUAL(rill_write(cli.s, "plain", 5, NULL, NULL), 0);
    CU_ASSERT_EQUAL(cli.hs_calls, 0);
    /* a closed stream */
    CU_ASSERT_EQUAL(rill_close(cli.s, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill__tls_start(cli.s, loose, 0, NULL, 0, on_hs, &cli), RILL_ECLOSED);
    cli.s = NULL;
    drop(&srv);
    test_loop_finish(loop);
    CU_ASSERT_EQUAL(cli.hs_calls, 0);
    rill_tls_free(longalpn);

    /* A name longer than any address text is a name: SNI, and the check against the
       certificate fails on the name (the server's certificate says localhost). */
    {
        char name[80];
        memset(name, 'n', 60);
        memcpy(name + 60, ".rill-test.example", 19);
        hs_start(&r, 0, ctls, name, stls);
        wait_both(r.loop, &r.cli.hs_done, &r.srv.hs_done, WAIT_MS);
        CU_ASSERT_EQUAL(r.cli.hs_status, RILL_ECERT);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.cli.reason, "host name mismatch"));
        CU_ASSERT_EQUAL(r.cli.hs_calls, 1);
        r.stls = NULL;   /* shared with the next run */
        hs_end(&r);
    }
    /* no name at all, for a client that does not verify: fine */
    hs_start(&r, 0, loose, "", stls);
    wait_both(r.loop, &r.cli.hs_done, &r.srv.hs_done, WAIT_MS);
    CU_ASSERT_EQUAL(r.cli.hs_status, 0);
    CU_ASSERT_EQUAL(r.srv.hs_status, 0);
    hs_end(&r);
}

static void on_read_none(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    (void)s; (void)data; (void)len;
    *(int *)ud = status;
}

/* Bytes the plain stream read before TLS started are handed to wolfSSL first: a
   walk over the allocations of rill__tls_start, then junk from the peer fails the handshake. */
static void test_start_alloc_walk(void)
{
    const test_certs *c = test_certs_or_skip();
    static const char junk[] = "EHLO not-a-client-hello\r\n";
    rill_tls *stls;
    rill_loop *loop;
    peer srv;
    unsigned long n;
    int sv[2], rc = -1, rd = 1;

    if (c == NULL)
        return;
    stls = server_ctx(c->server, c->key);
    CU_ASSERT_PTR_NOT_NULL_FATAL(stls);
    loop = test_loop_new(0);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL_FATAL(adopt(loop, sv[1], &srv), 0);
    CU_ASSERT_EQUAL(write(sv[0], junk, sizeof junk - 1), (ssize_t)(sizeof junk - 1));
    CU_ASSERT_EQUAL(rill_readuntil(srv.s, "\n\n\n", 3, on_read_none, &rd), 0);
    test_run_until(loop, &srv.hs_done, 200);   /* the line arrives; the separator never does */
    CU_ASSERT_EQUAL(rill_read_cancel(srv.s), 0);
    test_run_until(loop, &srv.hs_done, 50);
    CU_ASSERT_EQUAL(rd, RILL_ECANCELED);
    CU_ASSERT_EQUAL(srv.s->rbuf.len, sizeof junk - 1);
    for (n = 1; n < 20; n++) {
        rill__alloc_fail_at(n);
        rc = rill__tls_start(srv.s, stls, 1, NULL, WAIT_MS, on_hs, &srv);
        rill__alloc_fail_at(0);
        if (rc == 0)
            break;
        CU_ASSERT_EQUAL(rc, RILL_ENOMEM);
        CU_ASSERT_EQUAL(srv.s->rbuf.len, sizeof junk - 1);   /* a failed start keeps the bytes */
    }
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(n >= 3);   /* the connection and the copy of the bytes at least */
    CU_ASSERT_EQUAL(srv.s->rbuf.len, 0);
    test_run_until(loop, &srv.hs_done, WAIT_MS);
    CU_ASSERT_EQUAL(srv.hs_status, RILL_ETLS);
    CU_ASSERT_EQUAL(srv.hs_calls, 1);
    drop(&srv);
    close(sv[0]);
    test_loop_finish(loop);
    rill_tls_free(stls);
}

/* wolfSSL's allocations for a connection (the session, SNI, the name to check, ALPN)
   failed in turn: rill__tls_start refuses cleanly and the stream stays plain. */
static void test_start_wolf_alloc_walk(void)
{
    const test_certs *c = test_certs_or_skip();
    rill_tls *ctls, *stls;
    rill_loop *loop;
    peer cli, srv;
    unsigned long n;
    int rc = -1, enomem = 0, einval = 0;

    if (c == NULL)
        return;
    ctls = client_ctx(c->ca, 0, "h2,http/1.1");
    stls = server_ctx(c->server, c->key);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctls);
    CU_ASSERT_PTR_NOT_NULL_FATAL(stls);
    loop = test_loop_new(0);
    CU_ASSERT_EQUAL_FATAL(pair_new(loop, &cli, &srv), 0);
    for (n = 1; n < 500; n++) {
        wolf_fail_arm(n);
        rc = rill__tls_start(cli.s, ctls, 0, "localhost", WAIT_MS, on_hs, &cli);
        wolf_fail_disarm();
        if (rc == 0)
            break;
        CU_ASSERT(rc == RILL_ENOMEM || rc == RILL_EINVAL);
        enomem += rc == RILL_ENOMEM;
        einval += rc == RILL_EINVAL;
        CU_ASSERT_PTR_NULL(rill_tls_object(cli.s));   /* still a plain stream */
    }
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(enomem > 0);
    CU_ASSERT(einval > 0);
    CU_ASSERT_EQUAL(cli.hs_calls, 0);
    CU_ASSERT_EQUAL(rill__tls_start(srv.s, stls, 1, NULL, WAIT_MS, on_hs, &srv), 0);
    wait_both(loop, &cli.hs_done, &srv.hs_done, WAIT_MS);
    CU_ASSERT_EQUAL(cli.hs_status, 0);
    CU_ASSERT_EQUAL(srv.hs_status, 0);
    CU_ASSERT_STRING_EQUAL(rill_tls_alpn(cli.s) != NULL ? rill_tls_alpn(cli.s) : "", "");
    drop(&cli);
    drop(&srv);
    test_loop_finish(loop);
    rill_tls_free(ctls);
    rill_tls_free(stls);
}

typedef struct done {
    int done, status;
} done;

static void on_done(rill_stream *s, int status, void *ud)
{
    done *d = ud;
    (void)s;
    d->status = status;
    d->done = 1;
}

typedef struct got {
    int done, status;
    char text[128];
} got;

static void on_got(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    got *g = ud;
    size_t n = len < sizeof g->text - 1 ? len : sizeof g->text - 1;
    (void)s;
    g->status = status;
    memcpy(g->text, data != NULL ? data : "", data != NULL ? n : 0);
    g->text[data != NULL ? n : 0] = '\0';
    g->done = 1;
}

/* ------------------------------------------------- handshake failures */

static void on_read_eof(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    (void)s; (void)data;
    *(int *)ud = status == 0 && len == 0 ? 1 : -1;
}

/* The plain stream saw EOF before TLS started: the server's handshake fails at once
   on that EOF instead of reading a closed socket. */
static void test_eof_before_start(void)
{
    const test_certs *c = test_certs_or_skip();
    rill_tls *stls;
    rill_loop *loop;
    peer srv;
    int sv[2], eof = 0;

    if (c == NULL)
        return;
    stls = server_ctx(c->server, c->key);
    CU_ASSERT_PTR_NOT_NULL_FATAL(stls);
    loop = test_loop_new(0);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL_FATAL(adopt(loop, sv[1], &srv), 0);
    CU_ASSERT_EQUAL(shutdown(sv[0], SHUT_WR), 0);
    CU_ASSERT_EQUAL(rill_read(srv.s, -1, on_read_eof, &eof), 0);
    test_run_until(loop, &eof, WAIT_MS);
    CU_ASSERT_EQUAL(eof, 1);
    CU_ASSERT_EQUAL(rill__tls_start(srv.s, stls, 1, NULL, WAIT_MS, on_hs, &srv), 0);
    test_run_until(loop, &srv.hs_done, WAIT_MS);
    CU_ASSERT_EQUAL(srv.hs_status, RILL_ETLS);
    CU_ASSERT_PTR_NOT_NULL(strstr(srv.reason, "closed the connection during the handshake"));
    drop(&srv);
    close(sv[0]);
    test_loop_finish(loop);
    rill_tls_free(stls);
}

/* The ClientHello cannot be sent: the socket's own error, whichever it is. */
static void test_hs_send_errors(void)
{
    static const int errs[] = { EIO, ECONNRESET, EPIPE };
    const test_certs *c = test_certs_or_skip();
    size_t i;

#ifndef HAVE_MSG_NOSIGNAL
    /* Without MSG_NOSIGNAL TLS records go out through writev: the send hooks this
       test scripts are never called (the posix2001 matrix cell). */
    fprintf(stderr, "(no MSG_NOSIGNAL: skipped) ");
    return;
#endif
    if (c == NULL)
        return;
    for (i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        hs_run r;
        hs_start(&r, 0, client_ctx(c->ca, 0, NULL), "localhost", server_ctx(c->server, c->key));
        hooks_on(rill_fileno(r.cli.s));
        hk.send_fails = -1;
        hk.send_errno = errs[i];
        test_run_until(r.loop, &r.cli.hs_done, WAIT_MS);
        hooks_off();
        CU_ASSERT_EQUAL(r.cli.hs_status, -errs[i]);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.cli.reason, "socket error"));
        CU_ASSERT_EQUAL(r.cli.hs_calls, 1);
        /* nothing can be written on a stream whose handshake failed */
        CU_ASSERT_EQUAL(rill_write(r.cli.s, "x", 1, NULL, NULL), -errs[i]);
        hs_end(&r);
    }
}

/* EINTR on both calls and a full socket under the handshake: it waits and succeeds.
   A reset while waiting for the ServerHello: ECONNRESET. */
static void test_hs_transient_errors(void)
{
    const test_certs *c = test_certs_or_skip();
    hs_run r;

#ifndef HAVE_MSG_NOSIGNAL
    /* Without MSG_NOSIGNAL TLS records go out through writev: the send hooks this
       test scripts are never called (the posix2001 matrix cell). */
    fprintf(stderr, "(no MSG_NOSIGNAL: skipped) ");
    return;
#endif
    if (c == NULL)
        return;
    hs_start(&r, 0, client_ctx(c->ca, 0, NULL), "localhost", server_ctx(c->server, c->key));
    hooks_on(rill_fileno(r.cli.s));
    hk.send_fails = 1;
    hk.send_errno = EINTR;
    hk.recv_fails = 1;
    hk.recv_errno = EINTR;
    wait_both(r.loop, &r.cli.hs_done, &r.srv.hs_done, WAIT_MS);
    CU_ASSERT_EQUAL(hk.send_failed, 1);
    CU_ASSERT_EQUAL(hk.recv_failed, 1);
    hooks_off();
    CU_ASSERT_EQUAL(r.cli.hs_status, 0);
    CU_ASSERT_EQUAL(r.srv.hs_status, 0);
    hs_end(&r);

    hs_start(&r, 0, client_ctx(c->ca, 0, NULL), "localhost", server_ctx(c->server, c->key));
    hooks_on(rill_fileno(r.cli.s));
    hk.send_fails = 2;
    hk.send_errno = EAGAIN;
    wait_both(r.loop, &r.cli.hs_done, &r.srv.hs_done, WAIT_MS);
    CU_ASSERT_EQUAL(hk.send_failed, 2);
    hooks_off();
    CU_ASSERT_EQUAL(r.cli.hs_status, 0);
    CU_ASSERT_EQUAL(r.srv.hs_status, 0);
    hs_end(&r);

    hs_start(&r, 0, client_ctx(c->ca, 0, NULL), "localhost", server_ctx(c->server, c->key));
    hooks_on(rill_fileno(r.cli.s));
    hk.recv_fails = -1;
    hk.recv_errno = ECONNRESET;
    test_run_until(r.loop, &r.cli.hs_done, WAIT_MS);
    hooks_off();
    CU_ASSERT_EQUAL(r.cli.hs_status, -ECONNRESET);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.cli.reason, "socket error"));
    hs_end(&r);
}

static void verify_fails(const test_certs *c, const char *cert, const char *host, const char *why)
{
    hs_run r;
    hs_start(&r, 0, client_ctx(c->ca, 0, NULL), host, server_ctx(cert, c->key));
    wait_both(r.loop, &r.cli.hs_done, &r.srv.hs_done, WAIT_MS);
    CU_ASSERT_EQUAL(r.cli.hs_status, RILL_ECERT);
    if (strstr(r.cli.reason, why) == NULL) {
        fprintf(stderr, "reason \"%s\" lacks \"%s\"\n", r.cli.reason, why);
        CU_FAIL("the reason does not say why the certificate was refused");
    }
    CU_ASSERT(r.srv.hs_status < 0);   /* the server hears the alert */
    CU_ASSERT_EQUAL(r.cli.hs_calls, 1);
    CU_ASSERT_EQUAL(rill_write(r.cli.s, "x", 1, NULL, NULL), RILL_ECERT);
    hs_end(&r);
}

static void test_verify_more_failures(void)
{
    const test_certs *c = test_certs_or_skip();
    const extra_certs *x;

    if (c == NULL || (x = extra_or_fail(c)) == NULL)
        return;
    verify_fails(c, x->future, "localhost", "not yet valid");
    verify_fails(c, x->tampered, "localhost", "certificate verify failed: ");
    /* an address: a chain nobody trusts fails as such, before any address check */
    verify_fails(c, c->unknown_ca, "127.0.0.1", "unknown issuer");
    /* a trusted certificate that names no address at all */
    verify_fails(c, x->nosan, "127.0.0.1", "IP address mismatch (127.0.0.1)");
    /* addresses of both lengths in the certificate, none of them the one asked for */
    verify_fails(c, c->server, "127.0.0.2", "IP address mismatch (127.0.0.2)");
    /* names, a mail address and a URI, but not this address */
    verify_fails(c, x->many, "127.0.0.10", "IP address mismatch (127.0.0.10)");
}

/* Handshakes that succeed where the checks take their other turns. */
static void verify_ok(rill_tls *ctls, const char *host, rill_tls *stls, int timeout_ms)
{
    hs_run r;
    hs_timeout_ms = timeout_ms;
    hs_start(&r, 0, ctls, host, stls);
    hs_timeout_ms = WAIT_MS;
    wait_both(r.loop, &r.cli.hs_done, &r.srv.hs_done, WAIT_MS);
    CU_ASSERT_EQUAL(r.cli.hs_status, 0);
    CU_ASSERT_EQUAL(r.srv.hs_status, 0);
    if (r.cli.hs_status != 0)
        fprintf(stderr, "client: %s\n", r.cli.reason);
    hs_end(&r);
}

static void test_verify_more_successes(void)
{
    const test_certs *c = test_certs_or_skip();
    const extra_certs *x;

    if (c == NULL || (x = extra_or_fail(c)) == NULL)
        return;
    /* the CA comes with the leaf: only the leaf must name the address */
    verify_ok(client_ctx(c->ca, 0, NULL), "127.0.0.1", server_ctx(x->chain, c->key), WAIT_MS);
    /* a client that does not verify: an address is neither SNI nor checked; no deadline */
    verify_ok(client_ctx(NULL, -1, NULL), "127.0.0.1", server_ctx(x->nosan, c->key), 0);
    /* an address the certificate does carry, among other kinds of names */
    verify_ok(client_ctx(c->ca, 0, NULL), "127.0.0.9", server_ctx(x->many, c->key), WAIT_MS);
}

/* A session resumed to a numeric host: no certificate is exchanged, so the address
   is checked against the certificate the session was made with. */
static void resume_to(rill_tls *ctls, rill_tls *stls, WOLFSSL_SESSION *sess, const char *host,
                      int want_status, int *reused)
{
    hs_run r;
    hs_start(&r, 0, ctls, host, stls);
    CU_ASSERT_EQUAL(wolfSSL_set_session(rill_tls_object(r.cli.s), sess), WOLFSSL_SUCCESS);
    wait_both(r.loop, &r.cli.hs_done, &r.srv.hs_done, WAIT_MS);
    *reused = r.cli.hs_done && r.cli.hs_status == 0 ? wolfSSL_session_reused(rill_tls_object(r.cli.s)) : -1;
    CU_ASSERT_EQUAL(r.cli.hs_status, want_status);
    if (want_status != 0)
        CU_ASSERT_PTR_NOT_NULL(strstr(r.cli.reason, "IP address mismatch"));
    r.ctls = r.stls = NULL;   /* the caller's */
    hs_end(&r);
}

static void test_resumed_address_check(void)
{
    const test_certs *c = test_certs_or_skip();
    rill_tls *ctls, *stls;
    WOLFSSL_SESSION *sess = NULL;
    hs_run r;
    got g;
    int reused = 0;

    if (c == NULL)
        return;
    ctls = client_ctx(c->ca, 0, NULL);
    stls = server_ctx(c->server, c->key);
    hs_start(&r, 0, ctls, "127.0.0.1", stls);
    wait_both(r.loop, &r.cli.hs_done, &r.srv.hs_done, WAIT_MS);
    CU_ASSERT_EQUAL(r.cli.hs_status, 0);
    /* the ticket comes after the handshake: one line read makes wolfSSL take it */
    memset(&g, 0, sizeof g);
    CU_ASSERT_EQUAL(rill_write(r.srv.s, "hi\n", 3, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rill_readline(r.cli.s, on_got, &g), 0);
    test_run_until(r.loop, &g.done, WAIT_MS);
    CU_ASSERT_STRING_EQUAL(g.text, "hi\n");
    sess = wolfSSL_get1_session(rill_tls_object(r.cli.s));
    CU_ASSERT_PTR_NOT_NULL(sess);
    r.ctls = r.stls = NULL;
    hs_end(&r);
    if (sess != NULL) {
        resume_to(ctls, stls, sess, "127.0.0.1", 0, &reused);
        CU_ASSERT_EQUAL(reused, 1);
        /* the session's certificate names 127.0.0.1, not 127.0.0.2 */
        resume_to(ctls, stls, sess, "127.0.0.2", RILL_ECERT, &reused);
        wolfSSL_SESSION_free(sess);
    }
    rill_tls_free(ctls);
    rill_tls_free(stls);
}

/* A server that requires client certificates, and a client whose CA it does not know. */
static void test_client_cert_unknown_ca(void)
{
    const test_certs *c = test_certs_or_skip();
    rill_tls_opts o;
    rill_tls *ctls, *stls;
    hs_run r;

    if (c == NULL)
        return;
    memset(&o, 0, sizeof o);
    o.ca_file = c->ca;
    o.cert_file = c->unknown_ca;
    o.key_file = c->key;
    ctls = rill_tls_client_new(&o);
    o.cert_file = c->server;
    o.verify = 2;
    stls = rill_tls_server_new(&o);
    hs_start(&r, 0, ctls, "localhost", stls);
    wait_both(r.loop, &r.cli.hs_done, &r.srv.hs_done, WAIT_MS);
    CU_ASSERT_EQUAL(r.srv.hs_status, RILL_ECERT);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.srv.reason, "signed the client certificate"));
    hs_end(&r);   /* a TLS 1.3 client is done before the server judges its certificate */
}

/* ------------------------------------------------ established sessions */

static int open_session(hs_run *r, const test_certs *c)
{
    hs_start(r, 0, client_ctx(c->ca, 0, NULL), "localhost", server_ctx(c->server, c->key));
    wait_both(r->loop, &r->cli.hs_done, &r->srv.hs_done, WAIT_MS);
    CU_ASSERT_EQUAL(r->cli.hs_status, 0);
    CU_ASSERT_EQUAL(r->srv.hs_status, 0);
    return r->cli.hs_status == 0 && r->srv.hs_status == 0 ? 0 : -1;
}

/* A record cannot be sent: the write fails with the socket's error, and so does every later one. */
static void test_write_errors(void)
{
    const test_certs *c = test_certs_or_skip();
    struct iovec iov[2];
    hs_run r;
    done d;
    got g;

#ifndef HAVE_MSG_NOSIGNAL
    /* Without MSG_NOSIGNAL TLS records go out through writev: the send hooks this
       test scripts are never called (the posix2001 matrix cell). */
    fprintf(stderr, "(no MSG_NOSIGNAL: skipped) ");
    return;
#endif
    if (c == NULL)
        return;
    if (open_session(&r, c) == 0) {
        hooks_on(rill_fileno(r.cli.s));
        hk.send_fails = -1;
        hk.send_errno = EIO;
        CU_ASSERT_EQUAL(rill_write(r.cli.s, "lost", 4, NULL, NULL), -EIO);
        hooks_off();
        CU_ASSERT(rill_write(r.cli.s, "later", 5, NULL, NULL) < 0);
    }
    hs_end(&r);

    /* The first line's record goes out, the second's fails: the first is reported
       written, the rest waits in the buffer and fails on the next try. */
    if (open_session(&r, c) == 0) {
        memset(&d, 0, sizeof d);
        memset(&g, 0, sizeof g);
        iov[0].iov_base = "first\n";
        iov[0].iov_len = 6;
        iov[1].iov_base = "second\n";
        iov[1].iov_len = 7;
        hooks_on(rill_fileno(r.cli.s));
        hk.send_pass = 1;
        hk.send_fails = -1;
        hk.send_errno = ECONNRESET;
        CU_ASSERT_EQUAL(rill_writelines(r.cli.s, iov, 2, NULL, NULL), 0);
        CU_ASSERT_EQUAL(rill_get_write_buffer_size(r.cli.s), 7);
        /* the close flushes the rest: that fails, and the close reports why */
        CU_ASSERT_EQUAL(rill_close(r.cli.s, on_done, &d), 0);
        r.cli.s = NULL;
        test_run_until(r.loop, &d.done, WAIT_MS);
        hooks_off();
            CU_ASSERT_EQUAL(d.status, -ECONNRESET);
        CU_ASSERT_EQUAL(rill_readline(r.srv.s, on_got, &g), 0);
        test_run_until(r.loop, &g.done, WAIT_MS);
        CU_ASSERT_EQUAL(g.status, 0);
        CU_ASSERT_STRING_EQUAL(g.text, "first\n");
    }
    hs_end(&r);
}

/* The socket is full after the first record: the first line counts as written and
   the second goes out once the socket takes it again; nothing is lost or doubled. */
static void test_write_partial_eagain(void)
{
    const test_certs *c = test_certs_or_skip();
    struct iovec iov[2];
    hs_run r;
    done d;
    got g1, g2;

#ifndef HAVE_MSG_NOSIGNAL
    /* Without MSG_NOSIGNAL TLS records go out through writev: the send hooks this
       test scripts are never called (the posix2001 matrix cell). */
    fprintf(stderr, "(no MSG_NOSIGNAL: skipped) ");
    return;
#endif
    if (c == NULL)
        return;
    if (open_session(&r, c) == 0) {
        memset(&d, 0, sizeof d);
        memset(&g1, 0, sizeof g1);
        memset(&g2, 0, sizeof g2);
        iov[0].iov_base = "alpha\n";
        iov[0].iov_len = 6;
        iov[1].iov_base = "beta\n";
        iov[1].iov_len = 5;
        hooks_on(rill_fileno(r.cli.s));
        hk.send_pass = 1;
        hk.send_fails = 3;
        hk.send_errno = EAGAIN;
        CU_ASSERT_EQUAL(rill_writelines(r.cli.s, iov, 2, NULL, NULL), 0);
        CU_ASSERT_EQUAL(rill_get_write_buffer_size(r.cli.s), 5);
        CU_ASSERT_EQUAL(rill_readline(r.srv.s, on_got, &g1), 0);
        test_run_until(r.loop, &g1.done, WAIT_MS);
        CU_ASSERT_STRING_EQUAL(g1.text, "alpha\n");
        CU_ASSERT_EQUAL(rill_readline(r.srv.s, on_got, &g2), 0);
        test_run_until(r.loop, &g2.done, WAIT_MS);
        CU_ASSERT_EQUAL(hk.send_failed, 3);   /* every refusal came before the second record went out */
        hooks_off();
        CU_ASSERT_EQUAL(rill_get_write_buffer_size(r.cli.s), 0);
        CU_ASSERT_EQUAL(rill_drain(r.cli.s, on_done, &d), 0);
        test_run_until(r.loop, &d.done, WAIT_MS);
        CU_ASSERT_EQUAL(d.status, 0);
        CU_ASSERT_STRING_EQUAL(g2.text, "beta\n");
    }
    hs_end(&r);
}

/* close_notify meets a full socket: the close waits for writable and still sends it. */
static void test_close_notify_eagain(void)
{
    const test_certs *c = test_certs_or_skip();
    hs_run r;
    done d;
    got g;

#ifndef HAVE_MSG_NOSIGNAL
    /* Without MSG_NOSIGNAL TLS records go out through writev: the send hooks this
       test scripts are never called (the posix2001 matrix cell). */
    fprintf(stderr, "(no MSG_NOSIGNAL: skipped) ");
    return;
#endif
    if (c == NULL)
        return;
    if (open_session(&r, c) == 0) {
        memset(&d, 0, sizeof d);
        memset(&g, 0, sizeof g);
        hooks_on(rill_fileno(r.cli.s));
        hk.send_fails = 2;
        hk.send_errno = EWOULDBLOCK;
        CU_ASSERT_EQUAL(rill_close(r.cli.s, on_done, &d), 0);
        r.cli.s = NULL;
        test_run_until(r.loop, &d.done, WAIT_MS);
        CU_ASSERT_EQUAL(hk.send_failed, 2);
        hooks_off();
        CU_ASSERT_EQUAL(d.status, 0);
        /* the server reads a clean end: the close_notify made it */
        CU_ASSERT_EQUAL(rill_read(r.srv.s, -1, on_got, &g), 0);
        test_run_until(r.loop, &g.done, WAIT_MS);
        CU_ASSERT_EQUAL(g.status, 0);
        CU_ASSERT_STRING_EQUAL(g.text, "");
    }
    hs_end(&r);
}

/* close_notify cannot be sent at all: the close still completes, cleanly for the
   caller; the peer sees the connection end without close_notify. */
static void test_close_notify_fails(void)
{
    const test_certs *c = test_certs_or_skip();
    hs_run r;
    done d;
    got g;

#ifndef HAVE_MSG_NOSIGNAL
    /* Without MSG_NOSIGNAL TLS records go out through writev: the send hooks this
       test scripts are never called (the posix2001 matrix cell). */
    fprintf(stderr, "(no MSG_NOSIGNAL: skipped) ");
    return;
#endif
    if (c == NULL)
        return;
    if (open_session(&r, c) == 0) {
        memset(&d, 0, sizeof d);
        memset(&g, 0, sizeof g);
        hooks_on(rill_fileno(r.cli.s));
        hk.send_fails = -1;
        hk.send_errno = EIO;
        CU_ASSERT_EQUAL(rill_close(r.cli.s, on_done, &d), 0);
        r.cli.s = NULL;
        test_run_until(r.loop, &d.done, WAIT_MS);
        CU_ASSERT(hk.send_failed >= 1);
        hooks_off();
        CU_ASSERT_EQUAL(d.status, 0);
        CU_ASSERT_EQUAL(rill_read(r.srv.s, -1, on_got, &g), 0);
        test_run_until(r.loop, &g.done, WAIT_MS);
        /* not a clean end: truncated, or reset (an AF_UNIX socket closed with its
           session ticket unread resets the peer) */
        CU_ASSERT(g.status == RILL_ETLS || g.status == -ECONNRESET);
    }
    hs_end(&r);
}

/* RILL_TRACE: the handshake machine's transitions, one line each, on stderr. */
static void test_trace(void)
{
    const test_certs *c = test_certs_or_skip();
    FILE *tmp;
    char text[8192];
    size_t n;
    hs_run r;
    int saved, was = rill__trace_on;

    if (c == NULL)
        return;
    tmp = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
    fflush(stderr);
    saved = dup(2);
    CU_ASSERT_FATAL(saved >= 0);
    dup2(fileno(tmp), 2);
    rill__trace_on = 1;
    hs_start(&r, 0, client_ctx(c->ca, 0, NULL), "localhost", server_ctx(c->server, c->key));
    wait_both(r.loop, &r.cli.hs_done, &r.srv.hs_done, WAIT_MS);
    hs_end(&r);
    rill__trace_on = was;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    n = fread(text, 1, sizeof text - 1, tmp);
    text[n] = '\0';
    fclose(tmp);
    CU_ASSERT_EQUAL(r.cli.hs_status, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "tls NEW -> START client host=localhost"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "tls NEW -> START server\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "tls WANT_READ -> DONE TLS"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "tls START -> WANT_READ\n"));
}

/* ------------------------------------------------------------ extra info */

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (text = strstr(text, needle); text != NULL; text = strstr(text + 1, needle))
        n++;
    return n;
}

static void test_extra_info_errors(void)
{
    const test_certs *c = test_certs_or_skip();
    const extra_certs *x;
    const unsigned char *der = NULL;
    size_t len = 0;
    char buf[4096];
    hs_run r;
    int rc;

    if (c == NULL || (x = extra_or_fail(c)) == NULL)
        return;
    hs_start(&r, 0, client_ctx(c->ca, 0, NULL), "localhost", server_ctx(x->many, c->key));
    /* nothing to describe before the handshake */
    strcpy(buf, "stale");
    CU_ASSERT_EQUAL(rill_get_extra_info(r.cli.s, "cipher", buf, sizeof buf), -ENOENT);
    CU_ASSERT_STRING_EQUAL(buf, "");
    CU_ASSERT_EQUAL(rill_tls_peer_cert_der(r.cli.s, &der, &len), -ENOENT);
    wait_both(r.loop, &r.cli.hs_done, &r.srv.hs_done, WAIT_MS);
    CU_ASSERT_EQUAL(r.cli.hs_status, 0);
    CU_ASSERT_EQUAL(rill_tls_peer_cert_der(NULL, &der, &len), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_tls_peer_cert_der(r.cli.s, NULL, &len), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_tls_peer_cert_der(r.cli.s, &der, NULL), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_tls_peer_cert_der(r.cli.s, &der, &len), 0);
    CU_ASSERT(len > 0);
    CU_ASSERT_EQUAL(rill_get_extra_info(r.cli.s, "no-such-key", buf, sizeof buf), RILL_EINVAL);
    /* 150 names do not fit the text: it ends where the room did, still a proper string */
    rc = rill_get_extra_info(r.cli.s, "peercert", buf, sizeof buf);
    CU_ASSERT(rc > 1000 && rc < 2048);
    CU_ASSERT_EQUAL((size_t)rc, strlen(buf));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "; subjectAltName: DNS:"));
    CU_ASSERT(count_of(buf, "DNS:") > 10 && count_of(buf, "DNS:") < 151);
    CU_ASSERT_EQUAL(rill__tls_extra_info(r.cli.s, "no-such-key", buf, sizeof buf), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill_get_extra_info(r.cli.s, "compression", buf, sizeof buf), -ENOENT);
    CU_ASSERT_EQUAL(rill_get_extra_info(r.cli.s, "cipher", NULL, 0), RILL_ENOBUFS);
    CU_ASSERT_EQUAL(rill_get_extra_info(r.cli.s, "alpn", buf, sizeof buf), -ENOENT);
    CU_ASSERT_PTR_NULL(rill_tls_object(NULL));
    CU_ASSERT_PTR_NULL(rill_tls_alpn(NULL));
    CU_ASSERT_PTR_NULL(rill__tls_last_error(NULL));
    CU_ASSERT_PTR_NULL(rill__tls_last_error(r.cli.s));   /* nothing failed */
    /* the server's client sent no certificate */
    CU_ASSERT_EQUAL(rill_get_extra_info(r.srv.s, "peercert", buf, sizeof buf), -ENOENT);
    CU_ASSERT_EQUAL(rill_tls_peer_cert_der(r.srv.s, &der, &len), -ENOENT);
    hs_end(&r);
}

int test_tls_errors_register(void)
{
    static const test_case cases[] = {
        { "ctx_file_errors", test_ctx_file_errors },
        { "ctx_option_checks", test_ctx_option_checks },
        { "ctx_alloc_walk", test_ctx_alloc_walk },
        { "start_args", test_start_args },
        { "start_alloc_walk", test_start_alloc_walk },
        { "start_wolf_alloc_walk", test_start_wolf_alloc_walk },
        { "eof_before_start", test_eof_before_start },
        { "hs_send_errors", test_hs_send_errors },
        { "verify_more_failures", test_verify_more_failures },
        { "verify_more_successes", test_verify_more_successes },
        { "client_cert_unknown_ca", test_client_cert_unknown_ca },
        { "resumed_address_check", test_resumed_address_check },
        { "hs_transient_errors", test_hs_transient_errors },
        { "close_notify_fails", test_close_notify_fails },
        { "trace", test_trace },
        { "write_errors", test_write_errors },
        { "write_partial_eagain", test_write_partial_eagain },
        { "close_notify_eagain", test_close_notify_eagain },
        { "extra_info_errors", test_extra_info_errors },
        { NULL, NULL }
    };
    return test_add_suite("tls_errors", cases);
}
