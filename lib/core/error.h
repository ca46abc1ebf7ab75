/* [core] Internal error conversions (lib/core/error.c). Standalone: needs neither config.h
   nor <ares.h>, so tests can include it directly. */
#ifndef RILL_ERROR_H
#define RILL_ERROR_H

/* errno value -> rill error: -e, with EWOULDBLOCK normalised to -EAGAIN.
   0 gives 0; an already negative value is returned unchanged. */
int rill__err_from_errno(int e);

/* c-ares status -> rill error: ARES_SUCCESS 0; ARES_ENOTFOUND/ARES_ENODATA
   RILL_ENOTFOUND; ARES_ENOMEM RILL_ENOMEM; ARES_ECANCELLED/ARES_EDESTRUCTION
   RILL_ECANCELED; bad arguments (ARES_EBADNAME, ARES_EBADFAMILY, ARES_EBADFLAGS,
   ARES_EBADHINTS) RILL_EINVAL; everything else RILL_EDNS. */
int rill__err_from_ares(int ares_status);

#endif
