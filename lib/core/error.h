/* [core] Internal error conversions (lib/core/error.c). Standalone: needs neither config.h
   nor <ares.h>, so tests can include it directly. */
#ifndef RILL_ERROR_H
#define RILL_ERROR_H

/* rill's own errors, each once: its name (defined with its frozen value in
   include/rill.h, the API contract's macros) and the text rill_strerror gives.
   error.c's table and the tests are built from this list; a test fails when
   rill.h defines one it lacks. */
#define RILL__OWN_ERRORS(X) \
    X(RILL_EINCOMPLETE, "end of stream before the read was complete") \
    X(RILL_ELIMIT,      "buffer limit reached before the separator was found") \
    X(RILL_ECLOSED,     "stream is closing or closed") \
    X(RILL_EMODE,       "operation not allowed by the stream's mode or transport") \
    X(RILL_EDNS,        "DNS resolution failed (server failure, timeout or refused)") \
    X(RILL_ENOTFOUND,   "host name not found (no such name or no address)") \
    X(RILL_ETLS,        "TLS handshake or record error") \
    X(RILL_ECERT,       "peer certificate not verified or host name mismatch")

/* errno value -> rill error: -e, with EWOULDBLOCK normalised to -EAGAIN.
   0 gives 0; an already negative value is returned unchanged. */
int rill__err_from_errno(int e);

/* c-ares status -> rill error: ARES_SUCCESS 0; ARES_ENOTFOUND/ARES_ENODATA
   RILL_ENOTFOUND; ARES_ENOMEM RILL_ENOMEM; ARES_ECANCELLED/ARES_EDESTRUCTION
   RILL_ECANCELED; bad arguments (ARES_EBADNAME, ARES_EBADFAMILY, ARES_EBADFLAGS,
   ARES_EBADHINTS) RILL_EINVAL; everything else RILL_EDNS. */
int rill__err_from_ares(int ares_status);

#endif
