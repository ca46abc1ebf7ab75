/* [stream] TLS with wolfSSL: contexts (rill_tls), the handshake machine, and the transport
 * a stream reads and writes through once the handshake is done.
 *
 *   START --step--> WANT_READ | WANT_WRITE --readiness--> step ... --> DONE | FAILED
 *     \--- timer (ssl_handshake_timeout) ------------------------------> FAILED
 *   DONE --close_notify sent--> SHUTDOWN;  DONE --peer's close_notify--> EOF;
 *   DONE --record error, EOF without close_notify--> FAILED
 *
 * wolfSSL never touches the descriptor itself: its I/O callbacks call recv/send
 * on the stream's non-blocking socket and report EAGAIN as WANT_READ/WANT_WRITE,
 * so the loop alone decides when to wait. While the handshake runs it owns the
 * stream's readiness (s->io_hook); afterwards the stream drives this transport
 * like any other and only learns from rd_want/wr_want which readiness unblocks it. */
#include "tls.h"
#include "syshooks.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Keeps options.h from redefining _FORTIFY_SOURCE behind the build's back. */
#define WOLFSSL_OPTIONS_IGNORE_SYS
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/openssl/x509v3.h>


/* --------------------------------------------------------------- library */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void tls_global_init(void)
{
    init_rc = wolfSSL_Init();
}

/* -------------------------------------------------------------- contexts */

struct rill_tls {
    WOLFSSL_CTX *ctx;
    int is_server;
    int verify;              /* client: 1 chain + name, 0 none; server: 0/1/2 */
    char *alpn;              /* "h2,http/1.1": the form wolfSSL_UseALPN takes */
    pthread_mutex_t mu;      /* a context may be shared by loops in several threads */
    unsigned long refs;
};

void rill__tls_ref(rill_tls *t)
{
    pthread_mutex_lock(&t->mu);
    t->refs++;
    pthread_mutex_unlock(&t->mu);
}

static void tls_unref(rill_tls *t)
{
    unsigned long left;

    pthread_mutex_lock(&t->mu);
    left = --t->refs;
    pthread_mutex_unlock(&t->mu);
    if (left > 0)
        return;
    if (t->ctx != NULL)
        wolfSSL_CTX_free(t->ctx);
    rill__free(t->alpn);
    pthread_mutex_destroy(&t->mu);
    rill__free(t);
}

void rill_tls_free(rill_tls *tls)
{
    if (tls != NULL)
        tls_unref(tls);
}

void *rill_tls_native(rill_tls *tls)
{
    return tls != NULL ? tls->ctx : NULL;
}

/* Writes the reason into the caller's errbuf and returns err. */
static int opt_fail(const rill_tls_opts *o, int err, const char *fmt, ...)
{
    va_list ap;
    if (o->errbuf != NULL && o->errbuf_len > 0) {
        va_start(ap, fmt);
        vsnprintf(o->errbuf, o->errbuf_len, fmt, ap);
        va_end(ap);
    }
    return err;
}

static const char *wolf_reason(int code, char *buf, size_t len)
{
    wolfSSL_ERR_error_string_n((unsigned long)code, buf, (unsigned long)len);
    return buf;
}

/* Opening the file first gives the caller the system's own reason (ENOENT,
   EACCES), which wolfSSL's load functions flatten into one failure code. */
static int check_readable(const rill_tls_opts *o, const char *what, const char *path, int dir)
{
    int e;
    if (dir) {
        DIR *d = opendir(path);
        if (d != NULL) {
            closedir(d);
            return 0;
        }
    } else {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            fclose(f);
            return 0;
        }
    }
    e = errno ? errno : EIO;
    return opt_fail(o, -e, "%s %s: %s", what, path, rill_strerror(-e));   /* strerror is not thread-safe */
}

static int check_alpn(const char *list)
{
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n == 0 || n > 255)
            return RILL_EINVAL;
        if (end == NULL)
            return 0;
        p = end + 1;
    }
}

/* wolfSSL's failure codes are negative; WOLFSSL_FAILURE (0) says nothing more. */
static const char *load_reason(int rc, char *buf, size_t len)
{
    if (rc >= 0)
        return "no usable PEM certificate in it";
    return wolf_reason(rc, buf, len);
}

static int load_cas(rill_tls *t, const rill_tls_opts *o, int needed)
{
    char why[WOLFSSL_MAX_ERROR_SZ];
    int rc;

    if (o->ca_file != NULL) {
        if ((rc = check_readable(o, "ca_file", o->ca_file, 0)) < 0)
            return rc;
        rc = wolfSSL_CTX_load_verify_locations(t->ctx, o->ca_file, NULL);
        if (rc != WOLFSSL_SUCCESS)
            return opt_fail(o, RILL_ECERT, "ca_file %s: no CA certificate could be loaded (%s)", o->ca_file,
                            load_reason(rc, why, sizeof why));
    }
    if (o->ca_path != NULL) {
        if ((rc = check_readable(o, "ca_path", o->ca_path, 1)) < 0)
            return rc;
        /* A CA directory holds whatever else its owner keeps there: skip what is not a CA. */
        rc = wolfSSL_CTX_load_verify_locations_ex(t->ctx, NULL, o->ca_path,
                                                  WOLFSSL_LOAD_FLAG_IGNORE_ERR | WOLFSSL_LOAD_FLAG_PEM_CA_ONLY);
        if (rc != WOLFSSL_SUCCESS)
            return opt_fail(o, RILL_ECERT, "ca_path %s: no CA certificate could be loaded (%s)", o->ca_path,
                            load_reason(rc, why, sizeof why));
    }
    if (o->ca_file != NULL || o->ca_path != NULL || !needed)
        return 0;
    if (wolfSSL_CTX_load_system_CA_certs(t->ctx) != WOLFSSL_SUCCESS)
        return opt_fail(o, RILL_ECERT, "system CA certificates: none could be loaded "
                        "(give ca_file or ca_path, or verify = -1)");
    return 0;
}

static int configure(rill_tls *t, const rill_tls_opts *o)
{
    char why[WOLFSSL_MAX_ERROR_SZ];
    int rc, mode;

    rc = wolfSSL_CTX_SetMinVersion(t->ctx, o->min_version == RILL_TLS_1_3 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2);
    if (rc != WOLFSSL_SUCCESS)
        return opt_fail(o, RILL_EINVAL, "min_version %d: refused by wolfSSL (%s)", o->min_version,
                        wolf_reason(rc, why, sizeof why));
    if (o->ciphers != NULL && wolfSSL_CTX_set_cipher_list(t->ctx, o->ciphers) != WOLFSSL_SUCCESS)
        return opt_fail(o, RILL_EINVAL, "ciphers \"%s\": wolfSSL supports none of them", o->ciphers);
    if (o->cert_file != NULL) {
        if ((rc = check_readable(o, "cert_file", o->cert_file, 0)) < 0 ||
            (rc = check_readable(o, "key_file", o->key_file, 0)) < 0)
            return rc;
        rc = wolfSSL_CTX_use_certificate_chain_file(t->ctx, o->cert_file);
        if (rc != WOLFSSL_SUCCESS)
            return opt_fail(o, RILL_EINVAL, "cert_file %s: not a PEM certificate chain (%s)", o->cert_file,
                            wolf_reason(rc, why, sizeof why));
        rc = wolfSSL_CTX_use_PrivateKey_file(t->ctx, o->key_file, WOLFSSL_FILETYPE_PEM);
        if (rc != WOLFSSL_SUCCESS)
            return opt_fail(o, RILL_EINVAL, "key_file %s: not a PEM private key (%s)", o->key_file,
                            wolf_reason(rc, why, sizeof why));
        if (wolfSSL_CTX_check_private_key(t->ctx) != WOLFSSL_SUCCESS)
            return opt_fail(o, RILL_EINVAL, "key_file %s does not match cert_file %s", o->key_file, o->cert_file);
    }
    if (t->is_server) {
        t->verify = o->verify;
        mode = o->verify == 0 ? WOLFSSL_VERIFY_NONE
             : o->verify == 1 ? WOLFSSL_VERIFY_PEER
             : WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        if ((rc = load_cas(t, o, o->verify > 0)) < 0)
            return rc;
    } else {
        t->verify = o->verify == 0;
        mode = t->verify ? WOLFSSL_VERIFY_PEER : WOLFSSL_VERIFY_NONE;
        if ((rc = load_cas(t, o, t->verify)) < 0)
            return rc;
    }
    wolfSSL_CTX_set_verify(t->ctx, mode, NULL);
    if (o->alpn != NULL && (t->alpn = rill__strdup(o->alpn)) == NULL)
        return opt_fail(o, RILL_ENOMEM, "out of memory");
    return 0;
}

static rill_tls *tls_new(const rill_tls_opts *opts, int is_server)
{
    rill_tls_opts def;
    const rill_tls_opts *o = opts;
    rill_tls *t;
    int rc;

    if (o == NULL) {
        memset(&def, 0, sizeof def);
        o = &def;
    }
    if (o->errbuf != NULL && o->errbuf_len > 0)
        o->errbuf[0] = '\0';
    if (rill__check_reserved(o->reserved) < 0)
        rc = opt_fail(o, RILL_EINVAL, "reserved fields must be zero");
    else if (is_server ? (o->verify < 0 || o->verify > 2) : (o->verify != 0 && o->verify != -1))
        rc = opt_fail(o, RILL_EINVAL, "verify %d: a %s takes %s", o->verify, is_server ? "server" : "client",
                      is_server ? "0, 1 or 2" : "0 or -1");
    else if (o->min_version != 0 && o->min_version != RILL_TLS_1_2 && o->min_version != RILL_TLS_1_3)
        rc = opt_fail(o, RILL_EINVAL, "min_version %d: use 0, 12 or 13", o->min_version);
    else if (is_server && (o->cert_file == NULL || o->key_file == NULL))
        rc = opt_fail(o, RILL_EINVAL, "a server needs cert_file and key_file");
    else if ((o->cert_file == NULL) != (o->key_file == NULL))
        rc = opt_fail(o, RILL_EINVAL, "cert_file and key_file go together");
    else if (o->alpn != NULL && check_alpn(o->alpn) < 0)
        rc = opt_fail(o, RILL_EINVAL, "alpn \"%s\": comma-separated names of 1 to 255 bytes", o->alpn);
    else
        rc = 0;
    if (rc < 0) {
        errno = -rc;
        return NULL;
    }
    pthread_once(&init_once, tls_global_init);
    if (init_rc != WOLFSSL_SUCCESS) {
        rc = opt_fail(o, RILL_ETLS, "wolfSSL_Init failed (%d)", init_rc);
        errno = -rc;
        return NULL;
    }
    if ((t = rill__calloc(1, sizeof *t)) == NULL) {
        opt_fail(o, RILL_ENOMEM, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        rill__free(t);
        opt_fail(o, RILL_ENOMEM, "cannot create a mutex");
        errno = ENOMEM;
        return NULL;
    }
    t->refs = 1;
    t->is_server = is_server;
    t->ctx = wolfSSL_CTX_new(is_server ? wolfSSLv23_server_method() : wolfSSLv23_client_method());
    rc = t->ctx == NULL ? opt_fail(o, RILL_ENOMEM, "wolfSSL_CTX_new failed") : configure(t, o);
    if (rc < 0) {
        tls_unref(t);
        errno = -rc;
        return NULL;
    }
    return t;
}

rill_tls *rill_tls_client_new(const rill_tls_opts *opts) { return tls_new(opts, 0); }
rill_tls *rill_tls_server_new(const rill_tls_opts *opts) { return tls_new(opts, 1); }

/* ----------------------------------------------------------- connection */

#define HS_STATES(X, LAST) \
    X(HS, START) X(HS, WANT_READ) X(HS, WANT_WRITE) X(HS, DONE) X(HS, SHUTDOWN) X(HS, EOF) LAST(HS, FAILED)
typedef enum { HS_STATES(RILL__STATE_ENUM, RILL__STATE_ENUM_LAST) } hs_state;
static const char *const hs_names[] = { HS_STATES(RILL__STATE_NAME, RILL__STATE_NAME) };

typedef struct tls_conn {
    rill_stream *s;
    rill_tls *tls;
    WOLFSSL *ssl;
    int is_server;
    hs_state state;
    int established;          /* the handshake succeeded: the session can be described */
    int hs_status;            /* why the handshake failed */
    rill__handshake_cb cb;
    void *ud;
    int timeout_ms;
    rill_timer timer;
    rill__task task;          /* the first step runs from the loop, never inside rill__tls_start */
    char *pre;                /* bytes the stream had read before TLS started: wolfSSL gets them first */
    size_t npre, offpre;
    int sock_eof;             /* the socket said EOF under wolfSSL */
    int sock_err;             /* errno of a failed recv/send under wolfSSL */
    int rd_status;            /* once the read side ended: 0 (EOF) or the error, returned from then on */
    int rd_ended;
    int wr_status;            /* once a write failed: the error, returned from then on */
    int ipcheck;              /* numeric host: the certificate must carry this IP address */
    int ip_verified, ip_mismatch;
    unsigned char ipbin[16];
    int iplen;
    char ip[INET6_ADDRSTRLEN];
    WOLFSSL_X509 *peer;       /* the peer's certificate, kept for extra info and DER */
    char *alpn;
    char reason[256];         /* why the handshake or the session failed */
} tls_conn;

static const rill__transport tls_transport;

static void conn_to(tls_conn *c, hs_state to, const char *detail)
{
    RILL__TRACE("stream", c->s->id, "tls", hs_names[c->state], hs_names[to], "%s", detail != NULL ? detail : "");
    c->state = to;
}

/* --- I/O under wolfSSL */

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    tls_conn *c = ctx;
    ssize_t n;

    (void)ssl;
    if (c->offpre < c->npre) {
        size_t k = c->npre - c->offpre;
        if (k > (size_t)sz)
            k = (size_t)sz;
        memcpy(buf, c->pre + c->offpre, k);
        c->offpre += k;
        return (int)k;
    }
    if (c->s->flags & S_EOF) {          /* seen by the plain stream before TLS started */
        c->sock_eof = 1;
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    do
        n = rill__sys_recv(c->s->fd, buf, (size_t)sz, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        return (int)n;
    if (n == 0) {
        c->sock_eof = 1;
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    c->sock_err = errno;
    return errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    tls_conn *c = ctx;
    ssize_t n;

    (void)ssl;
#if defined(HAVE_MSG_NOSIGNAL)
    do
        n = rill__sys_send(c->s->fd, buf, (size_t)sz, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
#else
    {
        struct iovec iov;
        iov.iov_base = buf;
        iov.iov_len = (size_t)sz;
        n = rill__writev_nosigpipe(c->s->fd, &iov, 1);
    }
#endif
    if (n >= 0)
        return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    c->sock_err = errno;
    if (errno == EPIPE)
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    return errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
}

/* --- error classification */

static void set_reason(tls_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof c->reason, fmt, ap);
    va_end(ap);
}

/* Maps a failed wolfSSL call to rill's error and a reason a person can act on. */
static int classify(tls_conn *c, int err)
{
    char why[WOLFSSL_MAX_ERROR_SZ];
    WOLFSSL_ALERT_HISTORY h;

    /* Each connection reports its own failures; nothing is left for the next one on this thread. */
    wolfSSL_ERR_clear_error();
    if (c->ip_mismatch)
        err = IPADDR_MISMATCH;
    switch (err) {
    case ASN_NO_SIGNER_E:
        set_reason(c, "certificate verify failed: unknown issuer (no trusted CA signed the %s certificate)",
                   c->is_server ? "client" : "server");
        return RILL_ECERT;
    case ASN_AFTER_DATE_E:
        set_reason(c, "certificate verify failed: the certificate has expired");
        return RILL_ECERT;
    case ASN_BEFORE_DATE_E:
        set_reason(c, "certificate verify failed: the certificate is not yet valid");
        return RILL_ECERT;
    case DOMAIN_NAME_MISMATCH:
        set_reason(c, "certificate verify failed: host name mismatch");
        return RILL_ECERT;
    case IPADDR_MISMATCH:
        set_reason(c, "certificate verify failed: IP address mismatch (%s)", c->ip);
        return RILL_ECERT;
    case NO_PEER_CERT:
        set_reason(c, "certificate verify failed: the peer sent no certificate");
        return RILL_ECERT;
    case ASN_SIG_CONFIRM_E:
    case ASN_SIG_OID_E:
    case ASN_SIG_KEY_E:
    case ASN_SIG_HASH_E:
    case ASN_PARSE_E:
    case VERIFY_CERT_ERROR:
    case ASN_SELF_SIGNED_E:
    case ASN_PATHLEN_INV_E:
    case ASN_PATHLEN_SIZE_E:
        set_reason(c, "certificate verify failed: %s", wolf_reason(err, why, sizeof why));
        return RILL_ECERT;
    default:
        break;
    }
    if (c->sock_err != 0) {
        set_reason(c, "socket error: %s", rill_strerror(-c->sock_err));
        return -c->sock_err;
    }
    if (err == FATAL_ERROR && wolfSSL_get_alert_history(c->ssl, &h) == WOLFSSL_SUCCESS && h.last_rx.code > 0) {
        set_reason(c, "the peer sent a fatal alert: %s", wolfSSL_alert_desc_string_long(h.last_rx.code));
        return RILL_ETLS;
    }
    if (c->sock_eof) {
        set_reason(c, c->established ? "the peer closed the connection without close_notify (truncated)"
                                     : "the peer closed the connection during the handshake");
        return RILL_ETLS;
    }
    set_reason(c, "%s (%d)", wolf_reason(err, why, sizeof why), err);
    return RILL_ETLS;
}

/* --- the handshake machine */

static void hs_step(tls_conn *c);

static void hs_finish(tls_conn *c, int status)
{
    rill_stream *s = c->s;
    rill__handshake_cb cb = c->cb;
    void *ud = c->ud;
    char detail[320];
    char *name;
    unsigned short len;

    rill__timer_stop(&c->timer);
    rill__task_cancel(s->loop, &c->task);
    if (status == 0) {
        c->established = 1;
        c->peer = wolfSSL_get_peer_certificate(c->ssl);
        name = NULL;
        len = 0;
        if (wolfSSL_ALPN_GetProtocol(c->ssl, &name, &len) == WOLFSSL_SUCCESS && name != NULL && len > 0 &&
            (c->alpn = rill__malloc((size_t)len + 1)) != NULL) {
            memcpy(c->alpn, name, len);
            c->alpn[len] = '\0';
        }
        snprintf(detail, sizeof detail, "%s %s%s%s", wolfSSL_get_version(c->ssl), wolfSSL_get_cipher_name(c->ssl),
                 c->alpn ? " alpn=" : "", c->alpn ? c->alpn : "");
        conn_to(c, HS_DONE, detail);
        s->io_hook = NULL;
        s->rd_want = RILL_READABLE;
        s->wr_want = RILL_WRITABLE;
        rill__stream_update_io(s);
        /* Application data that came with the last flight will not make the socket readable again. */
        if (wolfSSL_pending(c->ssl) > 0)
            rill__task_post(s->loop, &s->more_task);
    } else {
        c->hs_status = status;
        snprintf(detail, sizeof detail, "%s %s", rill_err_name(status), c->reason);
        conn_to(c, HS_FAILED, detail);
        /* The hook stays: nothing reaches the read and write sides until the caller aborts. */
        rill__io_stop(s->loop, &s->io);
    }
    cb(s, status, ud);   /* last: the callback may abort s, which frees c */
}

/* 1 when one of x's subjectAltName IP addresses is the address asked for. Bytes
   are compared, not text: "::1" and wolfSSL's spelled-out IPv6 text never match. */
static int cert_has_ip(WOLFSSL_X509 *x, const unsigned char *addr, int alen)
{
    WOLFSSL_STACK *names = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int i, n, found = 0;

    if (names == NULL)
        return 0;
    n = wolfSSL_sk_GENERAL_NAME_num(names);
    for (i = 0; i < n && !found; i++) {
        WOLFSSL_GENERAL_NAME *gn = wolfSSL_sk_GENERAL_NAME_value(names, i);
        if (gn != NULL && gn->type == GEN_IPADD && gn->d.iPAddress != NULL &&
            wolfSSL_ASN1_STRING_length(gn->d.iPAddress) == alen &&
            memcmp(wolfSSL_ASN1_STRING_data(gn->d.iPAddress), addr, (size_t)alen) == 0)
            found = 1;
    }
    wolfSSL_GENERAL_NAMES_free(names);
    return found;
}

/* Checks the leaf against a numeric host during the handshake, so the server
   hears a proper alert; wolfSSL's own verdict on the chain is kept as it is. */
static int verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    tls_conn *c = store->userCtx;
    WOLFSSL_X509 *x;

    if (!preverify || c == NULL || !c->ipcheck || wolfSSL_X509_STORE_CTX_get_error_depth(store) != 0)
        return preverify;
    x = wolfSSL_X509_STORE_CTX_get_current_cert(store);
    if (x != NULL && cert_has_ip(x, c->ipbin, c->iplen)) {
        c->ip_verified = 1;
        return 1;
    }
    c->ip_mismatch = 1;
    return 0;
}

/* The same check after the handshake, for builds that call the verify callback only on failures. */
static int peer_ip_ok(tls_conn *c)
{
    WOLFSSL_X509 *x;
    int ok;

    if (c->ip_verified)
        return 1;
    if ((x = wolfSSL_get_peer_certificate(c->ssl)) == NULL)
        return 0;
    ok = cert_has_ip(x, c->ipbin, c->iplen);
    wolfSSL_X509_free(x);
    return ok;
}

static void hs_step(tls_conn *c)
{
    rill_stream *s = c->s;
    int ret, err, rc;

    if (c->state != HS_START && c->state != HS_WANT_READ && c->state != HS_WANT_WRITE)
        return;
    ret = c->is_server ? wolfSSL_accept(c->ssl) : wolfSSL_connect(c->ssl);
    if (ret == WOLFSSL_SUCCESS) {
        if (c->ipcheck && !peer_ip_ok(c)) {
            set_reason(c, "certificate verify failed: IP address mismatch (%s)", c->ip);
            hs_finish(c, RILL_ECERT);
            return;
        }
        hs_finish(c, 0);
        return;
    }
    err = wolfSSL_get_error(c->ssl, ret);
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) {
        int ev = err == WOLFSSL_ERROR_WANT_READ ? RILL_READABLE : RILL_WRITABLE;
        hs_state to = err == WOLFSSL_ERROR_WANT_READ ? HS_WANT_READ : HS_WANT_WRITE;
        if (c->state != to)
            conn_to(c, to, "");
        if ((rc = rill__io_start(s->loop, &s->io, ev)) < 0) {
            set_reason(c, "cannot watch the socket");
            hs_finish(c, rc);
        }
        return;
    }
    hs_finish(c, classify(c, err));
}

static void hs_task_run(rill__task *t)
{
    hs_step(rill__container_of(t, tls_conn, task));
}

static void hs_io(rill_stream *s, int revents)
{
    (void)revents;   /* a hang-up or error shows up in the next recv/send */
    hs_step(s->tr_ctx);
}

static void hs_timeout(void *ud)
{
    tls_conn *c = ud;
    set_reason(c, "handshake timed out after %d ms", c->timeout_ms);
    hs_finish(c, RILL_ETIMEDOUT);
}

/* --- the transport */

/* An address, never a name: an IPv6 zone index ("fe80::1%eth0") names the
   link, not the peer, so it is dropped before the certificate check and is
   never sent as SNI. */
static int is_numeric(tls_conn *c, const char *host)
{
    char addr[sizeof c->ip];
    const char *pct = strchr(host, '%');
    size_t n = pct != NULL ? (size_t)(pct - host) : strlen(host);

    if (n >= sizeof addr)
        return 0;
    memcpy(addr, host, n);
    addr[n] = '\0';
    if (pct == NULL && inet_pton(AF_INET, addr, c->ipbin) == 1)
        c->iplen = 4;
    else if (inet_pton(AF_INET6, addr, c->ipbin) == 1)
        c->iplen = 16;
    else
        return 0;
    snprintf(c->ip, sizeof c->ip, "%s", addr);
    return 1;
}

/* The status the read side ends with: a clean close_notify is EOF; anything else is an error.
   wolfSSL 5.5 also sets RECEIVED_SHUTDOWN when the socket is reset, so the bit counts
   only when the socket itself reported no error: a reset stream was truncated. */
static int read_end(tls_conn *c, int err)
{
    int status;
    if (c->sock_err == 0
        && (err == WOLFSSL_ERROR_ZERO_RETURN || (wolfSSL_get_shutdown(c->ssl) & WOLFSSL_RECEIVED_SHUTDOWN))) {
        conn_to(c, HS_EOF, "close_notify received");
        return 0;
    }
    status = classify(c, err);
    if (c->state != HS_FAILED)
        conn_to(c, HS_FAILED, c->reason);
    return status;
}

#define MAX_RECORD_PLAINTEXT 16384u   /* 2^14, RFC 8446 5.1 and RFC 5246 6.2.1 */

static ssize_t tls_recv(rill_stream *s, char *buf, size_t len)
{
    tls_conn *c = s->tr_ctx;
    size_t got = 0;

    if (c == NULL)
        return RILL_ECLOSED;
    if (c->rd_ended)
        return c->rd_status;
    if (!c->established || len == 0) {   /* a zero-length read must not look like EOF */
        s->rd_want = RILL_READABLE;
        return -EAGAIN;
    }
    /* Several records per call, fewer trips through the loop; but a record is split
       only when the caller's buffer cannot hold even one: bytes left inside wolfSSL
       are invisible to poll(), and a stream that stopped reading (paused, above its
       limit) would not look for them when it starts again. */
    while (got < len && (got == 0 || len - got >= MAX_RECORD_PLAINTEXT)) {
        size_t want = len - got;
        int n = wolfSSL_read(c->ssl, buf + got, want > INT_MAX ? INT_MAX : (int)want);
        int err;
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        err = wolfSSL_get_error(c->ssl, n);
        if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) {
            if (got > 0)
                break;
            s->rd_want = err == WOLFSSL_ERROR_WANT_READ ? RILL_READABLE : RILL_WRITABLE;
            return -EAGAIN;
        }
        c->rd_ended = 1;
        c->rd_status = read_end(c, err);
        break;
    }
    return got > 0 ? (ssize_t)got : c->rd_status;
}

static ssize_t tls_send(rill_stream *s, const struct iovec *iov, int iovcnt)
{
    tls_conn *c = s->tr_ctx;
    size_t total = 0;
    int i;

    if (c == NULL)
        return RILL_ECLOSED;
    if (c->wr_status < 0)
        return c->wr_status;
    if (!c->established) {
        if (c->state == HS_FAILED)
            return c->hs_status;
        s->wr_want = RILL_WRITABLE;   /* buffered; the end of the handshake turns writing on */
        return -EAGAIN;
    }
    for (i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            /* After WANT_WRITE wolfSSL has encrypted part of this chunk already: the
               stream keeps those bytes and offers them again from the same start. */
            int chunk = left > (1u << 30) ? (1 << 30) : (int)left;
            int n = wolfSSL_write(c->ssl, p, chunk);
            int err;
            if (n > 0) {
                total += (size_t)n;
                p += n;
                left -= (size_t)n;
                continue;
            }
            err = wolfSSL_get_error(c->ssl, n);
            if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) {
                if (total > 0)
                    return (ssize_t)total;
                s->wr_want = err == WOLFSSL_ERROR_WANT_READ ? RILL_READABLE : RILL_WRITABLE;
                return -EAGAIN;
            }
            c->wr_status = classify(c, err);
            if (c->state != HS_FAILED)
                conn_to(c, HS_FAILED, c->reason);
            return total > 0 ? (ssize_t)total : c->wr_status;
        }
    }
    return (ssize_t)total;
}

static int tls_close_notify(rill_stream *s)
{
    tls_conn *c = s->tr_ctx;
    int ret, err;

    if (c == NULL || !c->established || c->state == HS_FAILED || c->state == HS_SHUTDOWN)
        return 0;
    ret = wolfSSL_shutdown(c->ssl);
    if (ret != WOLFSSL_SUCCESS && !(wolfSSL_get_shutdown(c->ssl) & WOLFSSL_SENT_SHUTDOWN)) {
        err = wolfSSL_get_error(c->ssl, ret);
        if (err == WOLFSSL_ERROR_WANT_WRITE || err == WOLFSSL_ERROR_WANT_READ) {
            s->wr_want = err == WOLFSSL_ERROR_WANT_WRITE ? RILL_WRITABLE : RILL_READABLE;
            return -EAGAIN;
        }
        /* The peer is gone: there is nobody left to notify, and the close still completes. */
        conn_to(c, HS_SHUTDOWN, "close_notify not sent");
        return 0;
    }
    /* Our close_notify is out; like asyncio we do not wait for the peer's. */
    conn_to(c, HS_SHUTDOWN, "close_notify sent");
    return 0;
}

static size_t tls_pending(const rill_stream *s)
{
    tls_conn *c = s->tr_ctx;
    int n;
    if (c == NULL || !c->established || c->rd_ended)
        return 0;
    n = wolfSSL_pending(c->ssl);
    return n > 0 ? (size_t)n : 0;
}

/* The descriptor closes: a handshake in progress ends without calling back. */
static void tls_closing(rill_stream *s)
{
    tls_conn *c = s->tr_ctx;

    if (c == NULL)
        return;
    if (c->state == HS_START || c->state == HS_WANT_READ || c->state == HS_WANT_WRITE)
        conn_to(c, HS_FAILED, "stream closed during the handshake");
    rill__timer_stop(&c->timer);
    rill__task_cancel(s->loop, &c->task);
    if (s->io_hook == hs_io)
        s->io_hook = NULL;
}

static void tls_destroy(rill_stream *s)
{
    tls_conn *c = s->tr_ctx;

    if (c == NULL)
        return;
    tls_closing(s);
    if (c->peer != NULL)
        wolfSSL_X509_free(c->peer);
    wolfSSL_free(c->ssl);
    tls_unref(c->tls);
    rill__free(c->alpn);
    rill__free(c->pre);
    rill__free(c);
    s->tr_ctx = NULL;
}

static const rill__transport tls_transport = {
    "tls", tls_recv, tls_send, NULL, tls_close_notify, tls_pending, tls_closing, tls_destroy
};

static int setup_client(tls_conn *c, const char *hostname)
{
    if (hostname == NULL || *hostname == '\0')
        return c->tls->verify ? RILL_EINVAL : 0;
    if (is_numeric(c, hostname)) {
        /* RFC 6066: no SNI for an address; the certificate must name the address instead. */
        if (c->tls->verify) {
            c->ipcheck = 1;
            wolfSSL_set_verify(c->ssl, WOLFSSL_VERIFY_PEER, verify_cb);
            wolfSSL_SetCertCbCtx(c->ssl, c);
        }
        return 0;
    }
    if (strlen(hostname) > 0xffff ||
        wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, hostname, (unsigned short)strlen(hostname)) != WOLFSSL_SUCCESS)
        return RILL_EINVAL;
    if (c->tls->verify && wolfSSL_check_domain_name(c->ssl, hostname) != WOLFSSL_SUCCESS)
        return RILL_ENOMEM;
    return 0;
}

int rill__tls_start(rill_stream *s, rill_tls *tls, int is_server, const char *hostname,
                    int timeout_ms, rill__handshake_cb cb, void *ud)
{
    tls_conn *c;
    int rc;

    if (s == NULL || tls == NULL || cb == NULL || (is_server != 0) != tls->is_server)
        return RILL_EINVAL;
    if (s->tr != &rill__sock_transport || s->tr_ctx != NULL)
        return RILL_EMODE;
    if (s->cstate != CLOSE_OPEN || s->fd < 0 || (s->flags & S_LOST))
        return RILL_ECLOSED;
    if (!is_server && tls->verify && (hostname == NULL || *hostname == '\0'))
        return RILL_EINVAL;
    if ((c = rill__calloc(1, sizeof *c)) == NULL)
        return RILL_ENOMEM;
    c->s = s;
    c->tls = tls;
    c->is_server = is_server != 0;
    c->cb = cb;
    c->ud = ud;
    c->timeout_ms = timeout_ms;
    rill__timer_init(&c->timer, s->loop, hs_timeout, c);
    rill__task_init(&c->task, hs_task_run);
    if ((c->ssl = wolfSSL_new(tls->ctx)) == NULL) {
        rill__free(c);
        return RILL_ENOMEM;
    }
    wolfSSL_SSLSetIORecv(c->ssl, io_recv);
    wolfSSL_SSLSetIOSend(c->ssl, io_send);
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    rc = is_server ? 0 : setup_client(c, hostname);
    if (rc == 0 && tls->alpn != NULL) {
        char list[1024];
        size_t n = strlen(tls->alpn);
        if (n >= sizeof list)
            rc = RILL_EINVAL;
        else {
            memcpy(list, tls->alpn, n + 1);   /* wolfSSL_UseALPN takes a non-const list */
            if (wolfSSL_UseALPN(c->ssl, list, (unsigned)n, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) != WOLFSSL_SUCCESS)
                rc = RILL_EINVAL;
        }
    }
    /* Bytes the plain stream already read belong to the handshake. */
    if (rc == 0 && s->rbuf.len > 0) {
        if ((c->pre = rill__malloc(s->rbuf.len)) == NULL) {
            rc = RILL_ENOMEM;
        } else {
            c->npre = s->rbuf.len;
            memcpy(c->pre, rill__buf_head(&s->rbuf), c->npre);
        }
    }
    if (rc < 0) {
        wolfSSL_free(c->ssl);
        rill__free(c->pre);
        rill__free(c);
        return rc;
    }
    if (timeout_ms > 0)
        rill__timer_start(&c->timer, (uint64_t)timeout_ms);
    /* Only now: a start that failed leaves the stream's bytes where they were. */
    rill__buf_consume(&s->rbuf, c->npre);
    rill__tls_ref(tls);
    s->tr = &tls_transport;
    s->tr_ctx = c;
    s->io_hook = hs_io;
    s->rd_want = RILL_READABLE;
    s->wr_want = RILL_WRITABLE;
    /* Quiet until the first step: the handshake sets the interest it needs. */
    rill__io_start(s->loop, &s->io, 0);
    rill__task_post(s->loop, &c->task);
    RILL__TRACE("stream", s->id, "tls", "NEW", hs_names[c->state], "%s%s%s", is_server ? "server" : "client",
                hostname != NULL ? " host=" : "", hostname != NULL ? hostname : "");
    return 0;
}

/* ----------------------------------------------------------- extra info */

static tls_conn *conn_of(const rill_stream *s)
{
    return s != NULL && s->tr == &tls_transport ? s->tr_ctx : NULL;
}

const char *rill__tls_last_error(const rill_stream *s)
{
    tls_conn *c = conn_of(s);
    return c != NULL && c->reason[0] != '\0' ? c->reason : NULL;
}

void *rill_tls_object(const rill_stream *s)
{
    tls_conn *c = conn_of(s);
    return c != NULL ? c->ssl : NULL;
}

const char *rill_tls_alpn(const rill_stream *s)
{
    tls_conn *c = conn_of(s);
    return c != NULL ? c->alpn : NULL;
}

int rill_tls_peer_cert_der(const rill_stream *s, const unsigned char **der, size_t *len)
{
    tls_conn *c;
    const unsigned char *p;
    int n = 0;

    if (s == NULL || der == NULL || len == NULL)
        return RILL_EINVAL;
    if (s->tr != &tls_transport)
        return RILL_EMODE;
    c = s->tr_ctx;
    if (c == NULL || c->peer == NULL || (p = wolfSSL_X509_get_der(c->peer, &n)) == NULL || n <= 0)
        return -ENOENT;
    *der = p;
    *len = (size_t)n;
    return 0;
}

/* Appends to a bounded text; a cut-off text is caught by rill__put_text's length check. */
static void append(char *out, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(out);
    va_list ap;
    if (used + 1 >= cap)
        return;
    va_start(ap, fmt);
    vsnprintf(out + used, cap - used, fmt, ap);
    va_end(ap);
}

static void append_sans(WOLFSSL_X509 *x, char *out, size_t cap)
{
    WOLFSSL_STACK *names = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int i, n, first = 1;

    if (names == NULL)
        return;
    n = wolfSSL_sk_GENERAL_NAME_num(names);
    for (i = 0; i < n; i++) {
        WOLFSSL_GENERAL_NAME *gn = wolfSSL_sk_GENERAL_NAME_value(names, i);
        char ip[INET6_ADDRSTRLEN];
        if (gn == NULL)
            continue;
        if (gn->type == GEN_DNS && gn->d.dNSName != NULL) {
            append(out, cap, "%s DNS:%.*s", first ? "; subjectAltName:" : ",",
                   wolfSSL_ASN1_STRING_length(gn->d.dNSName), (const char *)wolfSSL_ASN1_STRING_data(gn->d.dNSName));
            first = 0;
        } else if (gn->type == GEN_IPADD && gn->d.iPAddress != NULL) {
            int len = wolfSSL_ASN1_STRING_length(gn->d.iPAddress);
            const unsigned char *a = wolfSSL_ASN1_STRING_data(gn->d.iPAddress);
            if ((len == 4 && inet_ntop(AF_INET, a, ip, sizeof ip) != NULL) ||
                (len == 16 && inet_ntop(AF_INET6, a, ip, sizeof ip) != NULL)) {
                append(out, cap, "%s IP:%s", first ? "; subjectAltName:" : ",", ip);
                first = 0;
            }
        }
    }
    wolfSSL_GENERAL_NAMES_free(names);
}

static int peercert_text(tls_conn *c, char *buf, size_t buflen)
{
    char text[2048], name[512], when[64];
    WOLFSSL_ASN1_TIME *t;

    if (c->peer == NULL)
        return -ENOENT;
    text[0] = '\0';
    if (wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_subject_name(c->peer), name, (int)sizeof name) != NULL)
        append(text, sizeof text, "subject=%s", name);
    if (wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_issuer_name(c->peer), name, (int)sizeof name) != NULL)
        append(text, sizeof text, "; issuer=%s", name);
    if ((t = wolfSSL_X509_get_notAfter(c->peer)) != NULL &&
        wolfSSL_ASN1_TIME_to_string(t, when, (int)sizeof when) != NULL)
        append(text, sizeof text, "; notAfter=%s", when);
    append_sans(c->peer, text, sizeof text);
    return rill__put_text(buf, buflen, text);
}

int rill__tls_extra_info(const rill_stream *s, const char *name, char *buf, size_t buflen)
{
    tls_conn *c;
    char text[256];

    if (buf != NULL && buflen > 0)
        buf[0] = '\0';
    if (s == NULL || s->tr != &tls_transport)
        return RILL_EMODE;
    c = s->tr_ctx;
    if (c == NULL || !c->established)
        return -ENOENT;
    if (strcmp(name, "compression") == 0)
        return -ENOENT;   /* wolfSSL never compresses (CRIME) */
    if (strcmp(name, "alpn") == 0)
        return c->alpn != NULL ? rill__put_text(buf, buflen, c->alpn) : -ENOENT;
    if (strcmp(name, "cipher") == 0) {
        int alg_bits = 0, bits = 0;
        WOLFSSL_CIPHER *ci = wolfSSL_get_current_cipher(c->ssl);
        if (ci != NULL)   /* the secret bits are the return value; wolfSSL 5.5 leaves alg_bits as it was */
            bits = wolfSSL_CIPHER_get_bits(ci, &alg_bits);
        snprintf(text, sizeof text, "%s %s %d", wolfSSL_get_cipher_name(c->ssl), wolfSSL_get_version(c->ssl), bits);
        return rill__put_text(buf, buflen, text);
    }
    if (strcmp(name, "peercert") == 0)
        return peercert_text(c, buf, buflen);
    return RILL_EINVAL;
}
