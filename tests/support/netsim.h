/* Deterministic network simulation for the connect machine (lib/core/syshooks.h).
 *
 * The hooked socket() hands out one end of an AF_UNIX socketpair whose send buffer is
 * full, so the loop's backend can wait on a real descriptor that is not writable. The
 * hooked connect() looks the address up in the script (by port: every scripted address
 * is ::1 or 127.0.0.1 with its own port) and returns EINPROGRESS; at the scripted virtual
 * time the harness drains the other end (the descriptor turns writable) and sets the
 * SO_ERROR the hooked getsockopt() reports. The clock is virtual and jumps to the next
 * event or timer deadline; every loop iteration polls with a zero timeout. Name
 * resolution is hooked too (not the loopback DNS responder): the answer of each family
 * arrives at a scripted virtual time, in a scripted order, with no socket and no c-ares
 * timing, so that a seed replays exactly. */
#ifndef RILL_NETSIM_H
#define RILL_NETSIM_H

#include "rill.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    NETSIM_OK,           /* connects after delay_ms */
    NETSIM_REFUSE,       /* ECONNREFUSED after delay_ms */
    NETSIM_HANG,         /* never answers */
    NETSIM_IMM_OK,       /* connect() returns 0 */
    NETSIM_IMM_REFUSE    /* connect() fails at once with ECONNREFUSED */
} netsim_outcome;

#define NETSIM_MAX_ADDRS 16
#define NETSIM_MAX_SOCKS 64
#define NETSIM_BASE_PORT 20000

typedef struct netsim_sock {
    int fd, peer;          /* library end, harness end (peer -1 once checked) */
    int addr;              /* scripted address index, -1 before connect() */
    uint64_t t_connect;    /* virtual time of connect() */
    uint64_t t_event;      /* when the outcome fires */
    int pending;           /* an outcome event is scheduled and has not fired */
    int fired;             /* the outcome was delivered */
    int so_error;
    int closed;            /* through the close hook */
} netsim_sock;

typedef struct netsim_addr {
    int family;
    netsim_outcome outcome;
    uint64_t delay_ms;
} netsim_addr;

/* Starts a scenario: virtual time starts at start_ms, no addresses, no sockets; installs
   the hooks. Must come before rill_loop_new (the loop reads the clock). */
void netsim_begin(uint64_t start_ms);
/* Removes the hooks and closes every harness end. */
void netsim_end(void);

/* Adds a scripted address; returns its index (its port is NETSIM_BASE_PORT + index). */
int netsim_add_addr(int family, netsim_outcome outcome, uint64_t delay_ms);
/* The resolver answers `family` (AF_INET6 or AF_INET) at start + at_ms with its addresses,
   or RILL_ENOTFOUND when it has none. Answers due at the same instant arrive in the order
   this was called. A family never scripted answers RILL_ENOTFOUND at once. */
void netsim_answer(int family, uint64_t at_ms);
/* The nth socket() (0-based) fails with EMFILE; -1: none. */
void netsim_fail_socket(int nth);

uint64_t netsim_now(void);
size_t netsim_nsocks(void);
const netsim_sock *netsim_sock_at(size_t i);
const netsim_addr *netsim_addr_at(int i);
int netsim_naddrs(void);
/* The socket whose library end is fd and which the library has not closed; NULL if none. */
const netsim_sock *netsim_find(int fd);

/* Runs the loop in virtual time until *done is set, the loop has nothing left to do or
   limit_ms of virtual time have passed. Returns 0, or -1 when nothing could happen
   any more (no event, no timer, nothing pending) while the loop was still alive. */
int netsim_run(rill_loop *loop, const int *done, uint64_t limit_ms);

/* After rill_loop_free: how many handed-out descriptors are still open (their peer sees
   no EOF). Reads what each peer received into the sockets' `received` (see below). */
int netsim_leaked(void);
/* Bytes the library end of socket i wrote after it connected (the harness's filler excluded). */
size_t netsim_received(size_t i, char *buf, size_t cap);

#endif
