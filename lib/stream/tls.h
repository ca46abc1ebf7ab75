/* [stream] The TLS transport as the connect machine and the server see it. */
#ifndef RILL_TLS_H
#define RILL_TLS_H

#include "stream.h"

typedef void (*rill__handshake_cb)(rill_stream *s, int status, void *ud);

/* Puts s under TLS with ctx (which the stream references until it is freed), as a
   client (hostname: SNI and the name verified; a numeric hostname sends no SNI and is
   verified against the certificate's IP addresses; NULL: no verification possible,
   RILL_EINVAL unless ctx does not verify) or a server, and runs the handshake machine.
   cb runs once, from the loop: 0 when s is ready (reads and writes go through TLS),
   or RILL_ECERT, RILL_ETLS, RILL_ETIMEDOUT (after timeout_ms; <= 0: none) or -errno;
   after an error the caller aborts s. If s is aborted first, cb is never called.
   Returns 0, or an error without calling back. */
int rill__tls_start(rill_stream *s, rill_tls *ctx, int is_server, const char *hostname,
                    int timeout_ms, rill__handshake_cb cb, void *ud);

/* Why the handshake or session failed, for messages and tests; NULL without TLS. */
const char *rill__tls_last_error(const rill_stream *s);

/* One more reference to ctx (rill_tls_free drops one). */
void rill__tls_ref(rill_tls *ctx);

#endif
