/* [net] Asynchronous name resolution: c-ares driven by the rill loop (lib/net/resolve.c). */
#ifndef RILL_RESOLVE_H
#define RILL_RESOLVE_H

#include "rill_private.h"

#include <stddef.h>
#include <sys/socket.h>

/* One resolution of one address family (AF_INET or AF_INET6) for host:port. The connect machine
   starts one per family (Happy Eyeballs asks A and AAAA in parallel, each answer delivered on its own). */
typedef struct rill__resolve_req rill__resolve_req;

/* status 0: addrs[0..n) (sockaddr_in or sockaddr_in6 with the port set, in the resolver's order);
   status < 0: RILL_ENOTFOUND (NXDOMAIN / no address of that family), RILL_EDNS (server failure, timeout, refused,
   bad response), RILL_ENOMEM, RILL_EINVAL (bad name). Called exactly once, always from the loop (never inside
   rill__resolve), unless cancelled. addrs is valid only during the callback. */
typedef void (*rill__resolve_cb)(int status, int family, const struct sockaddr_storage *addrs, size_t n, void *ud);

/* ai_flags are c-ares ARES_AI_* bits (the caller translates). Numeric hosts never touch c-ares
   (inet_pton; delivered through a rill__task). Returns 0 and *out, or a negative error without
   calling back. The request does not keep the loop alive: its owner (a connect request) does.
   *out stays valid until its callback has returned or it is cancelled. */
int  rill__resolve(rill_loop *loop, const char *host, int port, int family, int ares_flags,
                   rill__resolve_cb cb, void *ud, rill__resolve_req **out);

/* Cancels: the callback is never called. Safe from inside any callback, including another
   request's; inside the request's own callback it does nothing. */
void rill__resolve_cancel(rill__resolve_req *r);

/* Translates the system's AI_NUMERICHOST, AI_ADDRCONFIG, AI_V4MAPPED, AI_ALL (and AI_PASSIVE) bits to ARES_AI_*;
   returns RILL_EINVAL for any other bit. */
int rill__ai_flags_to_ares(int flags, int *ares_flags);

/* Test hook: requests c-ares still holds on this loop (cancelled ones included). */
size_t rill__resolve_inflight(const rill_loop *loop);

#endif
