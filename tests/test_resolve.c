/* The resolver: c-ares on the loop, answered by the loopback responder of
   tests/support/dns_responder.c. No test may reach the system's DNS server: every loop
   here is created by dns_loop(), which always sets dns_servers to the responder or to
   an unused loopback port. */
#include "support/testutil.h"
#include "support/dns_responder.h"
#include "rill_private.h"
#include "resolve.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define T_A 1
#define T_AAAA 28
#define UNUSED_SERVER "127.0.0.1:9"   /* discard port: nothing answers */

/* ---------------------------------------------------------------- helpers */

typedef struct result {
    int calls;
    int status, family;
    size_t n;
    struct sockaddr_storage addrs[8];
    int returned;                 /* rill__resolve has returned */
    int early;                    /* called before that: not from the loop */
    uint64_t at;
    int order;
    int *seq;                     /* shared callback counter, for ordering */
    rill_loop *loop;              /* the handle an owner (connect request) would hold */
    rill__resolve_req *victim;    /* cancelled from this callback */
} result;

static void on_result(int status, int family, const struct sockaddr_storage *addrs, size_t n, void *ud)
{
    result *r = ud;
    size_t i;

    r->calls++;
    if (!r->returned)
        r->early = 1;
    r->status = status;
    r->family = family;
    r->n = n;
    for (i = 0; i < n && i < 8; i++)
        r->addrs[i] = addrs[i];
    r->at = test_now_ms();
    if (r->seq != NULL)
        r->order = ++*r->seq;
    if (r->victim != NULL) {
        rill__resolve_cancel(r->victim);
        rill__handle_unref(r->loop);   /* the victim's owner is gone too */
    }
    rill__handle_unref(r->loop);
}

/* Every loop of this suite: never without dns_servers. */
static rill_loop *dns_loop(const char *servers, int timeout_ms, int tries)
{
    rill_loop_opts o;
    rill_loop *loop;
    const char *b = getenv("RILL_TEST_BACKEND");

    CU_ASSERT_PTR_NOT_NULL_FATAL(servers);
    memset(&o, 0, sizeof o);
    if (b != NULL)
        o.backend = strcmp(b, "select") == 0 ? RILL_BACKEND_SELECT : RILL_BACKEND_POLL;
    o.dns_servers = servers;
    o.dns_timeout_ms = timeout_ms;
    o.dns_tries = tries;
    loop = rill_loop_new(&o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    return loop;
}

static dns_responder *responder(void)
{
    dns_responder *d = dns_responder_start(AF_INET);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    return d;
}

/* Starts a lookup the way the connect machine does: holding a handle for it. */
static rill__resolve_req *start(rill_loop *loop, const char *host, int port, int family, int flags, result *r)
{
    rill__resolve_req *req = NULL;
    int rc;

    r->loop = loop;
    r->returned = 0;
    rill__handle_ref(loop);
    rc = rill__resolve(loop, host, port, family, flags, on_result, r, &req);
    r->returned = 1;
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(r->calls, 0);   /* never from inside rill__resolve */
    if (rc != 0) {
        rill__handle_unref(loop);
        return NULL;
    }
    CU_ASSERT_PTR_NOT_NULL(req);
    return req;
}

/* Cancels as an owner would: the request, then the owner's handle. */
static void cancel(rill_loop *loop, rill__resolve_req *req)
{
    rill__resolve_cancel(req);
    rill__handle_unref(loop);
}

/* Runs the loop (kept alive by a handle) until c-ares holds no request, bounded. */
static void run_until_drained(rill_loop *loop, int ms)
{
    uint64_t end = test_now_ms() + (uint64_t)ms;
    rill__handle_ref(loop);
    while (rill__resolve_inflight(loop) > 0 && test_now_ms() < end)
        rill_loop_run_once(loop, 20);
    rill__handle_unref(loop);
}

static int is_v4(const struct sockaddr_storage *ss, const char *text, int port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    struct in_addr want;
    return ss->ss_family == AF_INET && inet_pton(AF_INET, text, &want) == 1 &&
           sin->sin_addr.s_addr == want.s_addr && ntohs(sin->sin_port) == port;
}

static int is_v6(const struct sockaddr_storage *ss, const char *text, int port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    struct in6_addr want;
    return ss->ss_family == AF_INET6 && inet_pton(AF_INET6, text, &want) == 1 &&
           memcmp(&sin6->sin6_addr, &want, sizeof want) == 0 && ntohs(sin6->sin6_port) == port;
}

/* ------------------------------------------------------------ numeric hosts */

static void test_numeric_ipv4(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 200, 1);
    result r;

    memset(&r, 0, sizeof r);
    start(loop, "127.0.0.1", 8080, AF_INET, 0, &r);
    CU_ASSERT(test_run_until(loop, &r.calls, 2000));
    CU_ASSERT_EQUAL(r.calls, 1);
    CU_ASSERT_EQUAL(r.early, 0);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.family, AF_INET);
    CU_ASSERT_EQUAL(r.n, 1);
    CU_ASSERT(is_v4(&r.addrs[0], "127.0.0.1", 8080));
    CU_ASSERT_PTR_NULL(loop->resolver);            /* c-ares not even initialised */
    CU_ASSERT_EQUAL(dns_responder_queries(d), 0);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_numeric_ipv6(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 200, 1);
    result r, s;

    memset(&r, 0, sizeof r);
    memset(&s, 0, sizeof s);
    start(loop, "::1", 443, AF_INET6, 0, &r);
    start(loop, "fe80::1%1", 80, AF_INET6, 0, &s);   /* a scoped literal is numeric too */
    CU_ASSERT(test_run_until(loop, &s.calls, 2000));
    CU_ASSERT_EQUAL(r.calls, 1);
    CU_ASSERT_EQUAL(r.early, 0);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.family, AF_INET6);
    CU_ASSERT_EQUAL(r.n, 1);
    CU_ASSERT(is_v6(&r.addrs[0], "::1", 443));
    CU_ASSERT_EQUAL(s.status, 0);
    CU_ASSERT(is_v6(&s.addrs[0], "fe80::1", 80));
    CU_ASSERT_EQUAL(((struct sockaddr_in6 *)&s.addrs[0])->sin6_scope_id, 1);
    CU_ASSERT_PTR_NULL(loop->resolver);
    CU_ASSERT_EQUAL(dns_responder_queries(d), 0);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_numeric_other_family(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 200, 1);
    result v4in6, v6in4, mapped, notnum, badscope;
    int seq = 0;

    memset(&v4in6, 0, sizeof v4in6);
    memset(&v6in4, 0, sizeof v6in4);
    memset(&mapped, 0, sizeof mapped);
    memset(&notnum, 0, sizeof notnum);
    memset(&badscope, 0, sizeof badscope);
    badscope.seq = &seq;
    start(loop, "127.0.0.1", 1, AF_INET6, 0, &v4in6);
    start(loop, "::1", 1, AF_INET, 0, &v6in4);
    start(loop, "127.0.0.1", 2, AF_INET6, ARES_AI_V4MAPPED, &mapped);
    start(loop, "host.test", 1, AF_INET, ARES_AI_NUMERICHOST, &notnum);
    start(loop, "fe80::1%no-such-if0", 1, AF_INET6, 0, &badscope);
    CU_ASSERT(test_run_until(loop, &seq, 2000));
    CU_ASSERT_EQUAL(v4in6.status, RILL_ENOTFOUND);
    CU_ASSERT_EQUAL(v6in4.status, RILL_ENOTFOUND);
    CU_ASSERT_EQUAL(mapped.status, 0);
    CU_ASSERT(is_v6(&mapped.addrs[0], "::ffff:127.0.0.1", 2));
    CU_ASSERT_EQUAL(notnum.status, RILL_ENOTFOUND);
    CU_ASSERT_EQUAL(badscope.status, RILL_EINVAL);
    CU_ASSERT_EQUAL(v4in6.calls + v6in4.calls + mapped.calls + notnum.calls + badscope.calls, 5);
    CU_ASSERT_PTR_NULL(loop->resolver);
    CU_ASSERT_EQUAL(dns_responder_queries(d), 0);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_hosts_file_answer_from_loop(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 200, 1);
    result r;

    /* c-ares answers "localhost" from the hosts file (or RFC 6761) inside
       ares_getaddrinfo: the result must still come from the loop. */
    memset(&r, 0, sizeof r);
    start(loop, "localhost", 7, AF_INET, 0, &r);
    CU_ASSERT(test_run_until(loop, &r.calls, 2000));
    CU_ASSERT_EQUAL(r.calls, 1);
    CU_ASSERT_EQUAL(r.early, 0);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT(r.n >= 1);
    CU_ASSERT(is_v4(&r.addrs[0], "127.0.0.1", 7));
    CU_ASSERT_PTR_NOT_NULL(loop->resolver);
    CU_ASSERT_EQUAL(rill__resolve_inflight(loop), 0);
    CU_ASSERT_EQUAL(dns_responder_queries(d), 0);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* --------------------------------------------------------------- answers */

static void test_a_records_in_order(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 1000, 2);
    result r;

    CU_ASSERT_EQUAL(dns_responder_add(d, "two.test", T_A, "127.0.0.20", 0), 0);
    CU_ASSERT_EQUAL(dns_responder_add(d, "two.test", T_A, "127.0.0.3", 0), 0);
    memset(&r, 0, sizeof r);
    start(loop, "two.test", 8443, AF_INET, 0, &r);
    CU_ASSERT(test_run_until(loop, &r.calls, 3000));
    CU_ASSERT_EQUAL(r.early, 0);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.family, AF_INET);
    CU_ASSERT_EQUAL_FATAL(r.n, 2);
    CU_ASSERT(is_v4(&r.addrs[0], "127.0.0.20", 8443));   /* the server's order, not sorted */
    CU_ASSERT(is_v4(&r.addrs[1], "127.0.0.3", 8443));
    CU_ASSERT_EQUAL(rill__resolve_inflight(loop), 0);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_aaaa_records(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 1000, 2);
    result r;

    CU_ASSERT_EQUAL(dns_responder_add(d, "six.test", T_AAAA, "2001:db8::9", 0), 0);
    CU_ASSERT_EQUAL(dns_responder_add(d, "six.test", T_AAAA, "2001:db8::1", 0), 0);
    CU_ASSERT_EQUAL(dns_responder_add(d, "six.test", T_A, "127.0.0.21", 0), 0);
    memset(&r, 0, sizeof r);
    start(loop, "six.test", 443, AF_INET6, 0, &r);
    CU_ASSERT(test_run_until(loop, &r.calls, 3000));
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.family, AF_INET6);
    CU_ASSERT_EQUAL_FATAL(r.n, 2);   /* the A record is not mixed in */
    CU_ASSERT(is_v6(&r.addrs[0], "2001:db8::9", 443));
    CU_ASSERT(is_v6(&r.addrs[1], "2001:db8::1", 443));
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_query_reaches_responder(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 1000, 2);
    result r;

    CU_ASSERT_EQUAL(dns_responder_add(d, "proof.test", T_A, "127.0.2.77", 0), 0);
    CU_ASSERT_EQUAL(dns_responder_queries_for(d, "proof.test"), 0);
    memset(&r, 0, sizeof r);
    start(loop, "proof.test", 1, AF_INET, 0, &r);
    CU_ASSERT(test_run_until(loop, &r.calls, 3000));
    /* The answer only the responder knows, and the responder saw exactly this question. */
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT(r.n == 1 && is_v4(&r.addrs[0], "127.0.2.77", 1));
    CU_ASSERT_EQUAL(dns_responder_queries_for(d, "proof.test"), 1);
    CU_ASSERT_EQUAL(dns_responder_queries(d), 1);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* ----------------------------------------------------------------- errors */

static void test_aaaa_of_a_only_name(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 1000, 2);
    result r;

    CU_ASSERT_EQUAL(dns_responder_add(d, "four.test", T_A, "127.0.2.4", 0), 0);
    memset(&r, 0, sizeof r);
    start(loop, "four.test", 80, AF_INET6, 0, &r);
    CU_ASSERT(test_run_until(loop, &r.calls, 3000));
    CU_ASSERT_EQUAL(r.status, RILL_ENOTFOUND);
    CU_ASSERT_EQUAL(r.n, 0);
    CU_ASSERT(dns_responder_queries_for(d, "four.test") >= 1);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_unknown_name(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 1000, 2);
    result r;

    memset(&r, 0, sizeof r);
    start(loop, "nosuch.test", 80, AF_INET, 0, &r);
    CU_ASSERT(test_run_until(loop, &r.calls, 3000));
    CU_ASSERT_EQUAL(r.calls, 1);
    CU_ASSERT_EQUAL(r.status, RILL_ENOTFOUND);
    CU_ASSERT(dns_responder_queries_for(d, "nosuch.test") >= 1);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_servfail(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 1000, 1);
    result r;

    CU_ASSERT_EQUAL(dns_responder_add(d, "broken.test", T_A, "127.0.0.21", 0), 0);
    CU_ASSERT_EQUAL(dns_responder_set_behaviour(d, "broken.test", DNS_SERVFAIL), 0);
    memset(&r, 0, sizeof r);
    start(loop, "broken.test", 80, AF_INET, 0, &r);
    CU_ASSERT(test_run_until(loop, &r.calls, 3000));
    CU_ASSERT_EQUAL(r.status, RILL_EDNS);
    CU_ASSERT_EQUAL(r.n, 0);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_timeout(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 200, 1);
    result r;
    uint64_t t0;

    CU_ASSERT_EQUAL(dns_responder_set_behaviour(d, "silent.test", DNS_DROP), 0);
    memset(&r, 0, sizeof r);
    t0 = test_now_ms();
    start(loop, "silent.test", 80, AF_INET, 0, &r);
    /* Only the internal timer (ares_timeout) can end this query. */
    CU_ASSERT(test_run_until(loop, &r.calls, 5000));
    CU_ASSERT_EQUAL(r.status, RILL_EDNS);
    CU_ASSERT(r.at - t0 >= 150);
    CU_ASSERT(r.at - t0 < 3000);
    CU_ASSERT_EQUAL(dns_responder_queries_for(d, "silent.test"), 1);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_garbage_answer(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 200, 1);
    result r;

    CU_ASSERT_EQUAL(dns_responder_add(d, "junk.test", T_A, "127.0.0.21", 0), 0);
    CU_ASSERT_EQUAL(dns_responder_set_behaviour(d, "junk.test", DNS_GARBAGE), 0);
    memset(&r, 0, sizeof r);
    start(loop, "junk.test", 80, AF_INET, 0, &r);
    CU_ASSERT(test_run_until(loop, &r.calls, 5000));   /* no crash, no hang, once */
    CU_ASSERT_EQUAL(r.calls, 1);
    CU_ASSERT(r.status == 0 ? r.n >= 1 : r.n == 0);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_bad_dns_servers(void)
{
    static const char *const bad[] = { "bogus", "" };
    size_t i;

    for (i = 0; i < 2; i++) {
        rill_loop *loop = dns_loop(bad[i], 200, 1);
        rill__resolve_req *req = NULL;
        result r, num;
        int rc;

        memset(&r, 0, sizeof r);
        rc = rill__resolve(loop, "name.test", 80, AF_INET, 0, on_result, &r, &req);
        CU_ASSERT_EQUAL(rc, RILL_EINVAL);
        CU_ASSERT_PTR_NULL(loop->resolver);   /* no channel left to send anything */
        /* numeric hosts do not need the servers */
        memset(&num, 0, sizeof num);
        start(loop, "127.0.0.21", 80, AF_INET, 0, &num);
        CU_ASSERT(test_run_until(loop, &num.calls, 2000));
        CU_ASSERT_EQUAL(num.status, 0);
        rill_loop_run_once(loop, 0);
        CU_ASSERT_EQUAL(r.calls, 0);
        test_loop_finish(loop);
    }
}

static void test_invalid_arguments(void)
{
    rill_loop *loop = dns_loop(UNUSED_SERVER, 200, 1);
    rill__resolve_req *req = NULL;
    result r;

    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL(rill__resolve(loop, NULL, 80, AF_INET, 0, on_result, &r, &req), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, "", 80, AF_INET, 0, on_result, &r, &req), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, "a.test", 80, AF_UNIX, 0, on_result, &r, &req), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, "a.test", 80, AF_UNSPEC, 0, on_result, &r, &req), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, "a.test", -1, AF_INET, 0, on_result, &r, &req), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, "a.test", 65536, AF_INET, 0, on_result, &r, &req), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, "a.test", 80, AF_INET, 0, NULL, &r, &req), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__resolve(loop, "a.test", 80, AF_INET, 0, on_result, &r, NULL), RILL_EINVAL);
    CU_ASSERT_PTR_NULL(req);
    CU_ASSERT_PTR_NULL(loop->resolver);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    CU_ASSERT_EQUAL(r.calls, 0);
    test_loop_finish(loop);
}

static void test_out_of_memory(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 1000, 2);
    rill__resolve_req *req = NULL;
    result r, ok;
    int rc;

    CU_ASSERT_EQUAL(dns_responder_add(d, "mem.test", T_A, "127.0.2.5", 0), 0);
    memset(&r, 0, sizeof r);
    /* the request itself */
    rill__alloc_fail_at(1);
    rc = rill__resolve(loop, "127.0.0.21", 80, AF_INET, 0, on_result, &r, &req);
    rill__alloc_fail_at(0);
    CU_ASSERT_EQUAL(rc, RILL_ENOMEM);
    /* the channel, created lazily by the first name: no half-made channel stays */
    rill__alloc_fail_at(2);
    rc = rill__resolve(loop, "mem.test", 80, AF_INET, 0, on_result, &r, &req);
    rill__alloc_fail_at(0);
    CU_ASSERT_EQUAL(rc, RILL_ENOMEM);
    CU_ASSERT_PTR_NULL(loop->resolver);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    CU_ASSERT_EQUAL(r.calls, 0);
    /* and the next lookup works */
    memset(&ok, 0, sizeof ok);
    start(loop, "mem.test", 80, AF_INET, 0, &ok);
    CU_ASSERT(test_run_until(loop, &ok.calls, 3000));
    CU_ASSERT_EQUAL(ok.status, 0);
    CU_ASSERT(ok.n == 1 && is_v4(&ok.addrs[0], "127.0.2.5", 80));
    test_loop_finish(loop);
    dns_responder_stop(d);
}

/* ------------------------------------------------------------ cancelling */

static void test_cancel_before_answer(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 2000, 1);
    rill__resolve_req *req;
    result r;

    CU_ASSERT_EQUAL(dns_responder_add(d, "slow.test", T_A, "127.0.0.21", 200), 0);
    memset(&r, 0, sizeof r);
    req = start(loop, "slow.test", 80, AF_INET, 0, &r);
    CU_ASSERT_EQUAL(rill__resolve_inflight(loop), 1);
    cancel(loop, req);
    /* The answer still arrives; c-ares then hands the request back and it is freed. */
    run_until_drained(loop, 3000);
    CU_ASSERT_EQUAL(rill__resolve_inflight(loop), 0);
    CU_ASSERT_EQUAL(dns_responder_queries_for(d, "slow.test"), 1);
    CU_ASSERT_EQUAL(r.calls, 0);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_cancel_queued_result_from_other_callback(void)
{
    rill_loop *loop = dns_loop(UNUSED_SERVER, 200, 1);
    result first, second;

    /* Both answers are queued before either runs: the first one's callback cancels
       the second, whose result is already waiting on the pending queue. */
    memset(&first, 0, sizeof first);
    memset(&second, 0, sizeof second);
    start(loop, "127.0.0.21", 80, AF_INET, 0, &first);
    first.victim = start(loop, "127.0.2.2", 80, AF_INET, 0, &second);
    CU_ASSERT(test_run_until(loop, &first.calls, 2000));
    rill_loop_run_once(loop, 0);
    CU_ASSERT_EQUAL(first.calls, 1);
    CU_ASSERT_EQUAL(second.calls, 0);
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    test_loop_finish(loop);
}

static void test_cancel_inflight_from_other_callback(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 2000, 1);
    result a, aaaa;

    CU_ASSERT_EQUAL(dns_responder_add(d, "he.test", T_A, "127.0.0.21", 0), 0);
    CU_ASSERT_EQUAL(dns_responder_add(d, "he.test", T_AAAA, "2001:db8::1", 250), 0);
    memset(&a, 0, sizeof a);
    memset(&aaaa, 0, sizeof aaaa);
    a.victim = start(loop, "he.test", 80, AF_INET6, 0, &aaaa);
    start(loop, "he.test", 80, AF_INET, 0, &a);
    CU_ASSERT(test_run_until(loop, &a.calls, 3000));
    CU_ASSERT_EQUAL(a.status, 0);
    CU_ASSERT_EQUAL(rill__resolve_inflight(loop), 1);   /* the AAAA query is still out */
    run_until_drained(loop, 3000);
    CU_ASSERT_EQUAL(rill__resolve_inflight(loop), 0);
    CU_ASSERT_EQUAL(aaaa.calls, 0);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_free_loop_with_cancelled_query_inflight(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 5000, 1);
    rill__resolve_req *req;
    result r;
    int i;

    CU_ASSERT_EQUAL(dns_responder_set_behaviour(d, "void.test", DNS_DROP), 0);
    memset(&r, 0, sizeof r);
    req = start(loop, "void.test", 80, AF_INET, 0, &r);
    for (i = 0; i < 100 && dns_responder_queries_for(d, "void.test") == 0; i++)
        usleep(10000);
    CU_ASSERT_EQUAL(dns_responder_queries_for(d, "void.test"), 1);
    cancel(loop, req);
    /* Neither the channel's socket nor its timer keeps the loop alive. */
    CU_ASSERT_EQUAL(rill_loop_alive(loop), 0);
    CU_ASSERT_EQUAL(rill__resolve_inflight(loop), 1);
    CU_ASSERT_EQUAL(rill_loop_run(loop), 0);
    /* ares_destroy hands the query back (ARES_EDESTRUCTION); the sanitizer run checks
       that it and the channel's watchers are freed. */
    CU_ASSERT_EQUAL(rill_loop_free(loop), 0);
    CU_ASSERT_EQUAL(r.calls, 0);
    dns_responder_stop(d);
}

static void test_cancel_from_own_callback_is_noop(void)
{
    rill_loop *loop = dns_loop(UNUSED_SERVER, 200, 1);
    result r;

    memset(&r, 0, sizeof r);
    r.victim = start(loop, "127.0.0.21", 80, AF_INET, 0, &r);
    rill__handle_ref(loop);   /* on_result drops one handle for the "victim" too */
    CU_ASSERT(test_run_until(loop, &r.calls, 2000));
    CU_ASSERT_EQUAL(r.calls, 1);
    CU_ASSERT_EQUAL(r.status, 0);
    test_loop_finish(loop);
}

/* --------------------------------------------------------------- ordering */

static void test_delayed_aaaa_after_a(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 2000, 1);
    result a, aaaa;
    int seq = 0;

    CU_ASSERT_EQUAL(dns_responder_add(d, "dual.test", T_A, "127.0.2.8", 0), 0);
    CU_ASSERT_EQUAL(dns_responder_add(d, "dual.test", T_AAAA, "2001:db8::8", 250), 0);
    memset(&a, 0, sizeof a);
    memset(&aaaa, 0, sizeof aaaa);
    a.seq = aaaa.seq = &seq;
    start(loop, "dual.test", 80, AF_INET6, 0, &aaaa);   /* asked first, answered last */
    start(loop, "dual.test", 80, AF_INET, 0, &a);
    CU_ASSERT(test_run_until(loop, &aaaa.calls, 3000));
    CU_ASSERT_EQUAL(a.order, 1);
    CU_ASSERT_EQUAL(aaaa.order, 2);
    CU_ASSERT(a.n == 1 && is_v4(&a.addrs[0], "127.0.2.8", 80));
    CU_ASSERT(aaaa.n == 1 && is_v6(&aaaa.addrs[0], "2001:db8::8", 80));
    CU_ASSERT(aaaa.at >= a.at + 150);   /* each answer delivered on its own */
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void run_lookup_in_embedded_poll_loop(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 1000, 2);
    struct pollfd fds[16];
    uint64_t end;
    result r;

    /* The channel's socket and timer reach a program's own poll() through prepare_poll. */
    CU_ASSERT_EQUAL(dns_responder_add(d, "embed.test", T_A, "127.0.2.9", 0), 0);
    memset(&r, 0, sizeof r);
    start(loop, "embed.test", 80, AF_INET, 0, &r);
    end = test_now_ms() + 3000;
    while (r.calls == 0 && test_now_ms() < end) {
        size_t n = 0;
        int timeout = 1000, rc;
        CU_ASSERT_EQUAL_FATAL(rill_loop_prepare_poll(loop, fds, 16, &n, &timeout), 0);
        rc = poll(fds, n, timeout);
        rill_loop_after_poll(loop, rc < 0 ? NULL : fds, rc < 0 ? 0 : n);
    }
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT(r.n == 1 && is_v4(&r.addrs[0], "127.0.2.9", 80));
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_lookup_in_embedded_poll_loop(void)
{
    if (test_have_backend(RILL_BACKEND_POLL))
        run_lookup_in_embedded_poll_loop();
}

/* Descriptors the loop would poll now (the wake-up pipe is always one). */
static size_t polled_fds(rill_loop *loop)
{
    struct pollfd fds[16];
    size_t n = 0;
    int timeout = -1;
    CU_ASSERT_EQUAL(rill_loop_prepare_poll(loop, fds, 16, &n, &timeout), 0);
    return n;
}

static void run_sockets_watched_only_while_open(void)
{
    dns_responder *d = responder();
    rill_loop *loop = dns_loop(dns_responder_addr(d), 2000, 1);
    size_t idle = polled_fds(loop);
    result r;

    CU_ASSERT_EQUAL(dns_responder_add(d, "sock.test", T_A, "127.0.2.6", 100), 0);
    memset(&r, 0, sizeof r);
    start(loop, "sock.test", 80, AF_INET, 0, &r);
    CU_ASSERT_EQUAL(polled_fds(loop), idle + 1);   /* c-ares's UDP socket */
    CU_ASSERT(test_run_until(loop, &r.calls, 3000));
    CU_ASSERT_EQUAL(r.status, 0);
    /* Its last query done, c-ares closed the socket and said so first: unwatched. */
    CU_ASSERT_EQUAL(polled_fds(loop), idle);
    test_loop_finish(loop);
    dns_responder_stop(d);
}

static void test_sockets_watched_only_while_open(void)
{
    if (test_have_backend(RILL_BACKEND_POLL))
        run_sockets_watched_only_while_open();
}

/* ------------------------------------------------------------------ flags */

static void test_ai_flags_to_ares(void)
{
    int out = -1;

    CU_ASSERT_EQUAL(rill__ai_flags_to_ares(0, &out), 0);
    CU_ASSERT_EQUAL(out, 0);
    CU_ASSERT_EQUAL(rill__ai_flags_to_ares(AI_NUMERICHOST, &out), 0);
    CU_ASSERT_EQUAL(out, ARES_AI_NUMERICHOST);
    CU_ASSERT_EQUAL(rill__ai_flags_to_ares(AI_ADDRCONFIG, &out), 0);
    CU_ASSERT_EQUAL(out, ARES_AI_ADDRCONFIG);
    CU_ASSERT_EQUAL(rill__ai_flags_to_ares(AI_V4MAPPED | AI_ALL, &out), 0);
    CU_ASSERT_EQUAL(out, ARES_AI_V4MAPPED | ARES_AI_ALL);
    /* AI_PASSIVE is for servers: a connect refuses it (rill_connect(3)) */
    CU_ASSERT_EQUAL(rill__ai_flags_to_ares(AI_PASSIVE, &out), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__ai_flags_to_ares(AI_NUMERICHOST | AI_ADDRCONFIG | AI_V4MAPPED | AI_ALL, &out), 0);
    CU_ASSERT_EQUAL(out, ARES_AI_NUMERICHOST | ARES_AI_ADDRCONFIG | ARES_AI_V4MAPPED | ARES_AI_ALL);
    out = 12345;
    CU_ASSERT_EQUAL(rill__ai_flags_to_ares(AI_CANONNAME, &out), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__ai_flags_to_ares(AI_NUMERICHOST | AI_NUMERICSERV, &out), RILL_EINVAL);
    CU_ASSERT_EQUAL(rill__ai_flags_to_ares(1 << 30, &out), RILL_EINVAL);
    CU_ASSERT_EQUAL(out, 12345);   /* untouched on error */
    CU_ASSERT_EQUAL(rill__ai_flags_to_ares(0, NULL), RILL_EINVAL);
}

int test_resolve_register(void)
{
    static const test_case cases[] = {
        { "numeric IPv4 host: no DNS query, delivered from the loop", test_numeric_ipv4 },
        { "numeric IPv6 host (also scoped): no DNS query, delivered from the loop", test_numeric_ipv6 },
        { "numeric host of the other family, V4MAPPED, AI_NUMERICHOST, bad scope", test_numeric_other_family },
        { "hosts-file answer (synchronous in c-ares) is delivered from the loop", test_hosts_file_answer_from_loop },
        { "A records: both addresses, server order, port set", test_a_records_in_order },
        { "AAAA records only for AF_INET6", test_aaaa_records },
        { "the query goes to the configured responder", test_query_reaches_responder },
        { "AF_INET6 on a name with only A: RILL_ENOTFOUND", test_aaaa_of_a_only_name },
        { "unknown name: RILL_ENOTFOUND", test_unknown_name },
        { "SERVFAIL: RILL_EDNS", test_servfail },
        { "no answer: RILL_EDNS after the configured timeout", test_timeout },
        { "damaged answer: called once, no crash, no hang", test_garbage_answer },
        { "bad dns_servers: RILL_EINVAL at first lookup, numeric still works", test_bad_dns_servers },
        { "invalid arguments: RILL_EINVAL, no callback", test_invalid_arguments },
        { "allocation failures: RILL_ENOMEM, no callback, next lookup works", test_out_of_memory },
        { "cancel before the answer: never called, request freed", test_cancel_before_answer },
        { "cancel a queued result from another request's callback", test_cancel_queued_result_from_other_callback },
        { "cancel an in-flight query from another request's callback", test_cancel_inflight_from_other_callback },
        { "loop frees with a cancelled query still inside c-ares", test_free_loop_with_cancelled_query_inflight },
        { "cancel from the request's own callback does nothing", test_cancel_from_own_callback_is_noop },
        { "delayed AAAA answer arrives after A, each on its own", test_delayed_aaaa_after_a },
        { "a lookup completes inside a program's own poll() loop", test_lookup_in_embedded_poll_loop },
        { "c-ares sockets are watched only while c-ares has them open", test_sockets_watched_only_while_open },
        { "rill__ai_flags_to_ares translation and RILL_EINVAL", test_ai_flags_to_ares },
        { NULL, NULL }
    };
    return test_add_suite("resolve", cases);
}
