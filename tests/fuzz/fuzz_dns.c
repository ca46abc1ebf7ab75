/* fuzz_dns: rill_connect("fuzz.test", port) while a loopback responder answers its A and
   AAAA queries with bytes from the input (tests/support/dns_responder.h, raw replies).

   Input: [flags][extra][lenA: 2 bytes][A reply: lenA bytes][AAAA reply: the rest]
     flags  bits 0-1 how the loop runs (epoll, poll, select backend, or the program's
            own poll() through rill_loop_prepare_poll); bits 2-3 family (unspec, inet,
            inet6, unspec); bits 4-5 both set: the replies go as they are (c-ares drops
            most of them, and then waits for its timeout), else each is a header with
            QDCOUNT 1, the query's own question, then records: what c-ares takes as its
            answer;
            bit 6: cancel the connect after (extra & 15) iterations; bit 7: make the
            (extra + 1)-th allocation of the library fail
     extra  bit 4: sequential attempts (happy_eyeballs_delay_ms -1); bit 5: timeout_ms 1-40
            from bits 0-3 and 6-7
   No connection is ever made: every attempt's socket is refused by on_socket before its
   connect(), so an address a reply made up never sees a packet.

   Properties: rill_connect returns 0 and calls back exactly once, never synchronously,
   with s == NULL and an error status; or returns an error and never calls back. The run
   ends within its bound (no hang); afterwards rill_loop_free() returns 0 and the library
   holds no allocation (rill__alloc_live). */
#include "fuzz_common.h"
#include "rill_private.h"
#include "../support/dns_responder.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define RUN_MS 10000
#define DNS_TIMEOUT_MS 5   /* a reply c-ares drops costs this much */
#define REFUSED (-EHOSTUNREACH)   /* what on_socket fails every attempt with */

static dns_responder *responder;

typedef struct state {
    int calls, status, family;
    rill_stream *s;
    int sockets;
} state;

static int on_socket(int fd, int family, void *ud)
{
    state *st = ud;
    (void)fd;
    FZ_CALLBACK();
    FZ_CHECK(family == AF_INET || family == AF_INET6);
    FZ_CHECK(st->family == AF_UNSPEC || family == st->family);
    st->sockets++;
    return REFUSED;
}

static void on_connect(rill_stream *s, int status, void *ud)
{
    state *st = ud;
    FZ_CALLBACK();
    st->calls++;
    st->status = status;
    st->s = s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    responder = dns_responder_start(AF_INET);
    FZ_CHECK(responder != NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int families[4] = { AF_UNSPEC, AF_INET, AF_INET6, AF_UNSPEC };
    fz_in in;
    uint8_t flags, extra;
    size_t la, laaaa;
    const uint8_t *a, *aaaa;
    rill_loop *loop;
    rill_connect_opts o;
    rill_connect_req *req = NULL;
    state st;
    static uint8_t abuf[DNS_RAW_MAX], aaaabuf[DNS_RAW_MAX];
    int rc, cancel_at = -1, iter = 0, echo;
    unsigned long live;
    uint64_t end;

    in.p = data;
    in.n = size;
    flags = fz_u8(&in);
    extra = fz_u8(&in);
    la = fz_u16(&in);
    a = fz_bytes(&in, la > DNS_RAW_MAX ? DNS_RAW_MAX : la, &la);
    aaaa = fz_bytes(&in, DNS_RAW_MAX, &laaaa);
    memcpy(abuf, a, la);
    memcpy(aaaabuf, aaaa, laaaa);
    echo = (flags & 0x30) != 0x30 ? DNS_RAW_ECHO_QUESTION : 0;
    if (echo) {
        /* One question, as asked: c-ares drops a reply whose question is not its own. */
        if (la >= 6)
            abuf[4] = 0, abuf[5] = 1;
        if (laaaa >= 6)
            aaaabuf[4] = 0, aaaabuf[5] = 1;
    }
    FZ_CHECK(dns_responder_set_raw(responder, 1, abuf, la, echo) == 0);
    FZ_CHECK(dns_responder_set_raw(responder, 28, aaaabuf, laaaa, echo) == 0);
    /* Any other query type (none is expected) gets the A bytes. */
    FZ_CHECK(dns_responder_set_raw(responder, 0, abuf, la, echo) == 0);

    memset(&st, 0, sizeof st);
    st.family = families[(flags >> 2) & 3];
    memset(&o, 0, sizeof o);
    o.family = st.family;
    o.on_socket = on_socket;
    if (extra & 0x10)
        o.happy_eyeballs_delay_ms = -1;
    if (extra & 0x20)
        o.timeout_ms = 1 + ((extra & 15) | (extra >> 6) << 4) % 40;
    if (flags & 0x40)
        cancel_at = extra & 15;

    live = rill__alloc_live();
    loop = fz_loop_new(flags & 3, dns_responder_addr(responder), DNS_TIMEOUT_MS);
    if (flags & 0x80)
        fz_alloc_fail_at((unsigned long)extra + 1);
    rc = FZ_CALL(rill_connect(loop, "fuzz.test", 4242, &o, on_connect, &st, &req));
    if (fz_verbose)
        fprintf(stderr, "  rill_connect: %d\n", rc);
    if (rc == 0) {
        end = fz_now_ms() + RUN_MS;
        while (st.calls == 0) {
            FZ_CHECK(fz_now_ms() < end);   /* a connect that never ends */
            if (iter++ == cancel_at)
                FZ_CALL_VOID(rill_connect_cancel(req));
            FZ_CHECK(fz_run_once(loop, iter < 64 ? 0 : 1) >= 0);
        }
        if (fz_verbose)
            fprintf(stderr, "  status %d %s, %d sockets\n", st.status, rill_err_name(st.status), st.sockets);
        FZ_CHECK(st.calls == 1 && st.s == NULL && st.status < 0);
        if (cancel_at < 0 && !(flags & 0x80) && st.status != REFUSED && st.status != RILL_ETIMEDOUT)
            FZ_CHECK(st.status == RILL_ENOTFOUND || st.status == RILL_EDNS);
    }
    fz_alloc_fail_at(0);
    fz_finish(loop, RUN_MS);
    FZ_CHECK(st.calls == (rc == 0));
    FZ_CHECK(rill__alloc_live() == live);
    return 0;
}
