/* TLS (wolfSSL): not built yet. Every entry point says so with -ENOSYS. */
#include "tls.h"

rill_tls *rill_tls_client_new(const rill_tls_opts *opts) { (void)opts; errno = ENOSYS; return NULL; }
rill_tls *rill_tls_server_new(const rill_tls_opts *opts) { (void)opts; errno = ENOSYS; return NULL; }
void rill_tls_free(rill_tls *tls) { (void)tls; }
void *rill_tls_native(rill_tls *tls) { (void)tls; return NULL; }
void *rill_tls_object(const rill_stream *s) { (void)s; return NULL; }
const char *rill_tls_alpn(const rill_stream *s) { (void)s; return NULL; }

int rill_tls_peer_cert_der(const rill_stream *s, const unsigned char **der, size_t *len)
{
    (void)s; (void)der; (void)len;
    return RILL_EMODE;
}

int rill__tls_extra_info(const rill_stream *s, const char *name, char *buf, size_t buflen)
{
    (void)s; (void)name;
    if (buf != NULL && buflen > 0)
        buf[0] = '\0';
    return RILL_EMODE;
}

int rill__tls_start(rill_stream *s, rill_tls *ctx, int is_server, const char *hostname,
                    int timeout_ms, rill__handshake_cb cb, void *ud)
{
    (void)s; (void)ctx; (void)is_server; (void)hostname; (void)timeout_ms; (void)cb; (void)ud;
    return -ENOSYS;
}

void rill__tls_ref(rill_tls *ctx) { (void)ctx; }
