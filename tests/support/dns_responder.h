/* A tiny authoritative DNS server on loopback UDP, run by a thread of the test process,
   so resolver tests point c-ares at it and never touch the system DNS.

   Answers only what it was told: unknown names get NXDOMAIN, a known name without
   records of the queried type gets NOERROR with no answers (also for QTYPEs other than
   A/AAAA), answers carry a compressed name (0xC00C) and TTL 60. UDP only, replies are
   at most 512 bytes (TC is set if the records do not fit; there is no TCP fallback).

   All functions returning int give 0 on success, -1 on bad arguments or a full table
   (at most 128 names, counting unknown names seen in queries, 16 records and 8 delays
   per name, 256 delayed replies in flight; further delayed replies are dropped).
   Every call is thread-safe and may be made while the responder runs. */
#ifndef RILL_DNS_RESPONDER_H
#define RILL_DNS_RESPONDER_H

#include <stddef.h>

typedef struct dns_responder dns_responder;

enum dns_rcode_behaviour {
    DNS_OK = 0,     /* answer from the records (the default of a configured name) */
    DNS_NXDOMAIN,   /* RCODE 3, no answers */
    DNS_SERVFAIL,   /* RCODE 2, no answers. c-ares 1.18 takes SERVFAIL and REFUSED as a
                       failed server and, out of servers/tries, reports ARES_ECONNREFUSED;
                       only with ARES_FLAG_NOCHECKRESP ARES_ESERVFAIL / ARES_EREFUSED. */
    DNS_REFUSED,    /* RCODE 5, no answers */
    DNS_DROP,       /* never answer (the query is still counted) */
    DNS_GARBAGE     /* answer with the records, then damage the reply: id, flags and
                       question stay intact (so the client takes it as its answer) while
                       counts and answer bytes are flipped and sometimes cut short.
                       Reproducible per responder (fixed seed), but the client may see a
                       malformed response, another error, or in rare cases odd data:
                       assert only "no crash, no hang", with short timeouts. */
};

/* Starts on 127.0.0.1 (family AF_INET) or ::1 (AF_INET6), an ephemeral UDP port.
   NULL on failure (e.g. no IPv6 loopback: callers may skip the test). */
dns_responder *dns_responder_start(int family);

/* "127.0.0.1:PORT" or "[::1]:PORT", suitable for c-ares ares_set_servers_ports_csv(). */
const char *dns_responder_addr(const dns_responder *d);
int dns_responder_port(const dns_responder *d);

/* Adds a record. name is matched case-insensitively, a trailing dot is ignored.
   type is 1 (A) or 28 (AAAA); addr is text ("127.0.0.1", "::1").
   delay_ms > 0 delays every answer to that query type for the name (e.g. AAAA 200 ms
   after A, for the Happy Eyeballs resolution delay); the largest value given wins,
   dns_responder_set_delay() overrides it. Several calls for the same name/type add
   several addresses, answered in call order. */
int dns_responder_add(dns_responder *d, const char *name, int type, const char *addr, int delay_ms);

/* Behaviour for a name (all query types), one of enum dns_rcode_behaviour.
   Makes the name known if it was not. */
int dns_responder_set_behaviour(dns_responder *d, const char *name, int behaviour);

/* Delays answers of query type `type` (any QTYPE) for a name by delay_ms (0: none),
   even when it has no records of that type. Makes the name known if it was not, so
   it then answers NOERROR/no answer rather than NXDOMAIN unless a behaviour says so. */
int dns_responder_set_delay(dns_responder *d, const char *name, int type, int delay_ms);

/* Queries received in total (every datagram, even malformed ones), and for one name
   (any type, configured or not; names seen only in queries are counted as long as the
   name table has room). */
unsigned dns_responder_queries(dns_responder *d);
unsigned dns_responder_queries_for(dns_responder *d, const char *name);

/* Raw replies, for fuzzing: every query of type qtype (0: of any type that has no raw
   reply of its own) is answered at once with exactly these bytes, the query's id patched
   into the first two. With DNS_RAW_ECHO_QUESTION the reply is reply[0..12) + the query's
   own question section + reply[12..len): the caller's header and records around a
   question the client takes as its own (when the query's question does not parse, or
   len < 12, the bytes go as they are). A raw reply takes precedence over names,
   behaviours and delays, and queries are still counted. len may be 0 (an empty
   datagram); reply == NULL removes qtype's raw reply. At most DNS_RAW_MAX bytes and 4
   query types at once; returns 0 or -1. */
#define DNS_RAW_MAX 4096
enum { DNS_RAW_ECHO_QUESTION = 1 };
int dns_responder_set_raw(dns_responder *d, int qtype, const void *reply, size_t len, int flags);

/* Stops the thread, closes the socket, frees everything; pending delayed replies are
   dropped. NULL is accepted. */
void dns_responder_stop(dns_responder *d);

#endif
