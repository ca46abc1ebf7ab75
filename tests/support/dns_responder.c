/* Loopback DNS responder for resolver tests; see dns_responder.h. */
#define _POSIX_C_SOURCE 200112L

#include "dns_responder.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NAME_LEN 255      /* text form without trailing dot */
#define MAX_ENTRIES 128
#define MAX_RECS 16
#define MAX_DELAYS 8
#define MAX_PENDING 256
#define UDP_MAX 512       /* no EDNS in replies, so stay within classic UDP size */
#define DRAIN_MAX 64      /* datagrams read per wakeup, so due replies are not starved */

enum { RC_NOERROR = 0, RC_FORMERR = 1, RC_SERVFAIL = 2, RC_NXDOMAIN = 3, RC_NOTIMP = 4,
       RC_REFUSED = 5 };

struct record { int type; unsigned char addr[16]; };
struct delay { int type; int ms; };

struct entry {
    char name[NAME_LEN + 1];
    int configured;       /* 0: only seen in queries, kept for counting, answered NXDOMAIN */
    int behaviour;
    unsigned queries;
    int nrecs, ndelays;
    struct record recs[MAX_RECS];
    struct delay delays[MAX_DELAYS];
};

struct pending {
    uint64_t due;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    size_t len;
    unsigned char buf[UDP_MAX];
};

#define MAX_RAW 4          /* query types with a raw reply (dns_responder_set_raw) */

struct raw_reply {
    int used, qtype, flags;
    size_t len;
    unsigned char buf[DNS_RAW_MAX];
};

struct dns_responder {
    int fd, wake[2], port;
    char addr[64];
    pthread_t thread;
    pthread_mutex_t lock;           /* guards queries and entries */
    unsigned queries;
    int nentries;
    struct entry entries[MAX_ENTRIES];
    int npending;                   /* pending[] and rng belong to the thread */
    struct pending pending[MAX_PENDING];
    uint32_t rng;
    struct raw_reply raw[MAX_RAW];  /* guarded by lock */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

/* Lowercase copy without trailing dot; -1 if too long. Locale-independent on purpose. */
static int normalize(const char *in, char out[NAME_LEN + 1])
{
    size_t n;
    if (!in)
        return -1;
    n = strlen(in);
    if (n > 0 && in[n - 1] == '.')
        n--;
    if (n > NAME_LEN)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = lower(in[i]);
    out[n] = '\0';
    return 0;
}

/* Caller holds the lock; name is normalized. */
static struct entry *find(dns_responder *d, const char *name)
{
    for (int i = 0; i < d->nentries; i++)
        if (strcmp(d->entries[i].name, name) == 0)
            return &d->entries[i];
    return NULL;
}

static struct entry *get(dns_responder *d, const char *name, int configure)
{
    struct entry *e = find(d, name);
    if (!e) {
        if (d->nentries == MAX_ENTRIES)
            return NULL;
        e = &d->entries[d->nentries++];
        memset(e, 0, sizeof *e);
        strcpy(e->name, name);
        e->behaviour = DNS_OK;
    }
    if (configure)
        e->configured = 1;
    return e;
}

static int set_delay(struct entry *e, int type, int ms, int keep_max)
{
    for (int i = 0; i < e->ndelays; i++)
        if (e->delays[i].type == type) {
            if (!keep_max || ms > e->delays[i].ms)
                e->delays[i].ms = ms;
            return 0;
        }
    if (e->ndelays == MAX_DELAYS)
        return -1;
    e->delays[e->ndelays].type = type;
    e->delays[e->ndelays].ms = ms;
    e->ndelays++;
    return 0;
}

static int delay_for(const struct entry *e, int type)
{
    for (int i = 0; i < e->ndelays; i++)
        if (e->delays[i].type == type)
            return e->delays[i].ms;
    return 0;
}

static void put16(unsigned char *p, unsigned v) { p[0] = (unsigned char)(v >> 8); p[1] = (unsigned char)v; }

static uint32_t next_rand(dns_responder *d)
{
    uint32_t x = d->rng;          /* xorshift32: fixed seed keeps garbage reproducible */
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    return d->rng = x;
}

/* Keeps id, flags and question so the client accepts the reply as its own and has to
   parse the damage (counts and answers flipped, sometimes cut short) instead of
   silently discarding it. */
static void mutate(dns_responder *d, unsigned char *buf, size_t qend, size_t *len)
{
    size_t span = 6 + (*len - qend), flips = 1 + span / 4;
    for (size_t i = 0; i < flips; i++) {
        uint32_t r = next_rand(d);
        size_t k = r % span;
        buf[k < 6 ? 6 + k : qend + k - 6] ^= (unsigned char)((r >> 16) | 1);
    }
    if (*len > qend && next_rand(d) % 4 == 0)
        *len = qend + next_rand(d) % (*len - qend);
}

static void send_reply(dns_responder *d, const unsigned char *buf, size_t len,
                       const struct sockaddr_storage *peer, socklen_t peerlen)
{
    /* Loss is acceptable: the client retries like it would with a real server. */
    (void)sendto(d->fd, buf, len, 0, (const struct sockaddr *)peer, peerlen);
}

/* dns_responder_set_raw: answers q with the raw reply for its type, if there is one.
   Returns 1 when it did. */
static int answer_raw(dns_responder *d, const unsigned char *q, size_t n,
                      const struct sockaddr_storage *peer, socklen_t peerlen)
{
    static unsigned char r[DNS_RAW_MAX + UDP_MAX * 2];   /* the responder thread's alone */
    const struct raw_reply *raw = NULL, *any = NULL;
    size_t pos = 12, qend = 0, len = 0;
    int qtype = -1;

    /* The question's end and type, when it parses (labels only, no pointers). */
    while (pos < n) {
        unsigned l = q[pos];
        if (l == 0) {
            if (n - pos - 1 >= 4) {
                qtype = (int)((unsigned)q[pos + 1] << 8 | q[pos + 2]);
                qend = pos + 5;
            }
            break;
        }
        if ((l & 0xc0) || l > n - pos - 1)
            break;
        pos += 1 + l;
    }
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < MAX_RAW; i++) {
        if (!d->raw[i].used)
            continue;
        if (d->raw[i].qtype == qtype)
            raw = &d->raw[i];
        else if (d->raw[i].qtype == 0)
            any = &d->raw[i];
    }
    if (raw == NULL)
        raw = any;
    if (raw != NULL) {
        if ((raw->flags & DNS_RAW_ECHO_QUESTION) && qend > 0 && raw->len >= 12) {
            memcpy(r, raw->buf, 12);
            memcpy(r + 12, q + 12, qend - 12);
            memcpy(r + qend, raw->buf + 12, raw->len - 12);
            len = qend + raw->len - 12;
        } else {
            memcpy(r, raw->buf, raw->len);
            len = raw->len;
        }
        if (len >= 2) {
            r[0] = q[0];
            r[1] = q[1];
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (raw == NULL)
        return 0;
    send_reply(d, r, len, peer, peerlen);
    return 1;
}

static void handle(dns_responder *d, const unsigned char *q, size_t n,
                   const struct sockaddr_storage *peer, socklen_t peerlen)
{
    unsigned char r[UDP_MAX];
    char name[NAME_LEN + 1];
    size_t pos = 12, nlen = 0, rlen, qend;
    unsigned opcode, qtype, qclass, ancount = 0, rcode = RC_NOERROR;
    int delay = 0, garbage = 0, tc = 0;
    struct entry *e;

    pthread_mutex_lock(&d->lock);
    d->queries++;
    pthread_mutex_unlock(&d->lock);

    if (n < 12 || (q[2] & 0x80))  /* too short for an id, or a response: never answer */
        return;
    if (answer_raw(d, q, n, peer, peerlen))
        return;
    memset(r, 0, 12);
    r[0] = q[0];
    r[1] = q[1];
    opcode = (q[2] >> 3) & 0x0f;
    r[2] = (unsigned char)(0x80 | (opcode << 3) | 0x04 | (q[2] & 0x01));  /* QR AA RD */
    if (opcode != 0) {
        r[3] = 0x80 | RC_NOTIMP;
        send_reply(d, r, 12, peer, peerlen);
        return;
    }
    if (q[4] != 0 || q[5] != 1)
        goto formerr;
    for (;;) {
        unsigned l;
        if (pos >= n)
            goto formerr;
        l = q[pos++];
        if (l == 0)
            break;
        /* Compression pointers make no sense in a question, and 63 is the label limit. */
        if ((l & 0xc0) || l > n - pos || nlen + (nlen > 0) + l > NAME_LEN)
            goto formerr;
        if (nlen > 0)
            name[nlen++] = '.';
        for (unsigned i = 0; i < l; i++)
            name[nlen++] = lower((char)q[pos + i]);
        pos += l;
    }
    name[nlen] = '\0';
    if (n - pos < 4)
        goto formerr;
    qtype = (unsigned)q[pos] << 8 | q[pos + 1];
    qclass = (unsigned)q[pos + 2] << 8 | q[pos + 3];
    pos += 4;
    /* Anything after the question (e.g. an EDNS OPT in the additional section) is ignored;
       replies carry no OPT, which is valid for a server without EDNS. */
    memcpy(r + 12, q + 12, pos - 12);
    rlen = qend = pos;

    pthread_mutex_lock(&d->lock);
    e = get(d, name, 0);
    if (e)
        e->queries++;
    if (!e || !e->configured) {
        rcode = RC_NXDOMAIN;
    } else {
        delay = delay_for(e, (int)qtype);
        switch (e->behaviour) {
        case DNS_DROP: pthread_mutex_unlock(&d->lock); return;
        case DNS_NXDOMAIN: rcode = RC_NXDOMAIN; break;
        case DNS_SERVFAIL: rcode = RC_SERVFAIL; break;
        case DNS_REFUSED: rcode = RC_REFUSED; break;
        case DNS_GARBAGE:
            garbage = 1;
            /* fall through - garbage is a mutated real answer */
        default:
            for (int i = 0; i < e->nrecs && qclass == 1; i++) {
                const struct record *rec = &e->recs[i];
                size_t alen = rec->type == 1 ? 4 : 16;
                if ((unsigned)rec->type != qtype)
                    continue;
                if (rlen + 12 + alen > UDP_MAX) {
                    tc = 1;
                    break;
                }
                put16(r + rlen, 0xc00c);
                put16(r + rlen + 2, qtype);
                put16(r + rlen + 4, 1);
                put16(r + rlen + 6, 0);
                put16(r + rlen + 8, 60);
                put16(r + rlen + 10, (unsigned)alen);
                memcpy(r + rlen + 12, rec->addr, alen);
                rlen += 12 + alen;
                ancount++;
            }
        }
    }
    pthread_mutex_unlock(&d->lock);

    if (tc)
        r[2] |= 0x02;
    r[3] = (unsigned char)(0x80 | rcode);  /* RA */
    put16(r + 4, 1);
    put16(r + 6, ancount);
    if (garbage)
        mutate(d, r, qend, &rlen);
    if (delay <= 0) {
        send_reply(d, r, rlen, peer, peerlen);
    } else if (d->npending < MAX_PENDING) {
        struct pending *p = &d->pending[d->npending++];
        p->due = now_ms() + (uint64_t)delay;
        memcpy(&p->peer, peer, sizeof *peer);
        p->peerlen = peerlen;
        p->len = rlen;
        memcpy(p->buf, r, rlen);
    }
    return;

formerr:
    r[3] = 0x80 | RC_FORMERR;
    send_reply(d, r, 12, peer, peerlen);
}

/* Sends due replies in arrival order; returns ms until the next one, or -1 if none. */
static int flush_pending(dns_responder *d)
{
    uint64_t now = now_ms(), next = UINT64_MAX;
    int kept = 0;
    for (int i = 0; i < d->npending; i++) {
        struct pending *p = &d->pending[i];
        if (p->due <= now) {
            send_reply(d, p->buf, p->len, &p->peer, p->peerlen);
        } else {
            if (p->due < next)
                next = p->due;
            if (kept != i)
                d->pending[kept] = *p;
            kept++;
        }
    }
    d->npending = kept;
    if (next == UINT64_MAX)
        return -1;
    return next - now > 60000 ? 60000 : (int)(next - now);
}

static void *run(void *arg)
{
    dns_responder *d = arg;
    unsigned char buf[UDP_MAX * 2];   /* oversize so long queries are seen, then rejected */
    for (;;) {
        struct pollfd pfd[2];
        int timeout = flush_pending(d);
        pfd[0].fd = d->wake[0];
        pfd[0].events = POLLIN;
        pfd[1].fd = d->fd;
        pfd[1].events = POLLIN;
        if (poll(pfd, 2, timeout) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[0].revents)
            break;
        if (!(pfd[1].revents & POLLIN))
            continue;
        for (int i = 0; i < DRAIN_MAX; i++) {
            struct sockaddr_storage peer;
            socklen_t peerlen = sizeof peer;
            ssize_t n = recvfrom(d->fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &peerlen);
            if (n < 0)
                break;    /* EAGAIN, or an ICMP error for an earlier reply: just go on */
            handle(d, buf, (size_t)n, &peer, peerlen);
        }
    }
    return NULL;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

dns_responder *dns_responder_start(int family)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    dns_responder *d;

    if (family != AF_INET && family != AF_INET6)
        return NULL;
    d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->wake[0] = d->wake[1] = -1;
    d->rng = 0x2545f491u;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sslen = sizeof *sin;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = in6addr_loopback;
        sslen = sizeof *sin6;
    }
    d->fd = socket(family, SOCK_DGRAM, 0);
    if (d->fd < 0)
        goto fail;
    if (bind(d->fd, (struct sockaddr *)&ss, sslen) < 0 ||
        getsockname(d->fd, (struct sockaddr *)&ss, &sslen) < 0 || set_nonblock(d->fd) < 0)
        goto fail;
    d->port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                      : ((struct sockaddr_in6 *)&ss)->sin6_port);
    snprintf(d->addr, sizeof d->addr, family == AF_INET ? "127.0.0.1:%d" : "[::1]:%d", d->port);
    if (pipe(d->wake) < 0)
        goto fail;
    if (pthread_mutex_init(&d->lock, NULL) != 0)
        goto fail;
    if (pthread_create(&d->thread, NULL, run, d) != 0) {
        pthread_mutex_destroy(&d->lock);
        goto fail;
    }
    return d;

fail:
    if (d->fd >= 0)
        close(d->fd);
    if (d->wake[0] >= 0) {
        close(d->wake[0]);
        close(d->wake[1]);
    }
    free(d);
    return NULL;
}

const char *dns_responder_addr(const dns_responder *d) { return d->addr; }

int dns_responder_port(const dns_responder *d) { return d->port; }

int dns_responder_add(dns_responder *d, const char *name, int type, const char *addr, int delay_ms)
{
    char norm[NAME_LEN + 1];
    struct record rec;
    struct entry *e;
    int rc = -1;

    memset(&rec, 0, sizeof rec);
    rec.type = type;
    if (normalize(name, norm) < 0 || !addr || (type != 1 && type != 28) ||
        inet_pton(type == 1 ? AF_INET : AF_INET6, addr, rec.addr) != 1)
        return -1;
    pthread_mutex_lock(&d->lock);
    e = get(d, norm, 1);
    if (e && e->nrecs < MAX_RECS && (delay_ms <= 0 || set_delay(e, type, delay_ms, 1) == 0)) {
        e->recs[e->nrecs++] = rec;
        rc = 0;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int dns_responder_set_behaviour(dns_responder *d, const char *name, int behaviour)
{
    char norm[NAME_LEN + 1];
    struct entry *e;

    if (normalize(name, norm) < 0 || behaviour < DNS_OK || behaviour > DNS_GARBAGE)
        return -1;
    pthread_mutex_lock(&d->lock);
    e = get(d, norm, 1);
    if (e)
        e->behaviour = behaviour;
    pthread_mutex_unlock(&d->lock);
    return e ? 0 : -1;
}

int dns_responder_set_delay(dns_responder *d, const char *name, int type, int delay_ms)
{
    char norm[NAME_LEN + 1];
    struct entry *e;
    int rc = -1;

    if (normalize(name, norm) < 0 || type < 0 || type > 0xffff || delay_ms < 0)
        return -1;
    pthread_mutex_lock(&d->lock);
    e = get(d, norm, 1);
    if (e)
        rc = set_delay(e, type, delay_ms, 0);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

unsigned dns_responder_queries(dns_responder *d)
{
    unsigned n;
    pthread_mutex_lock(&d->lock);
    n = d->queries;
    pthread_mutex_unlock(&d->lock);
    return n;
}

unsigned dns_responder_queries_for(dns_responder *d, const char *name)
{
    char norm[NAME_LEN + 1];
    const struct entry *e;
    unsigned n = 0;

    if (normalize(name, norm) < 0)
        return 0;
    pthread_mutex_lock(&d->lock);
    e = find(d, norm);
    if (e)
        n = e->queries;
    pthread_mutex_unlock(&d->lock);
    return n;
}

int dns_responder_set_raw(dns_responder *d, int qtype, const void *reply, size_t len, int flags)
{
    struct raw_reply *slot = NULL;

    if (d == NULL || qtype < 0 || qtype > 0xffff || len > DNS_RAW_MAX || (reply == NULL && len > 0) ||
        (flags & ~DNS_RAW_ECHO_QUESTION))
        return -1;
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < MAX_RAW; i++)
        if (d->raw[i].used && d->raw[i].qtype == qtype)
            slot = &d->raw[i];
    if (reply == NULL) {
        if (slot != NULL)
            slot->used = 0;
        pthread_mutex_unlock(&d->lock);
        return 0;
    }
    for (int i = 0; i < MAX_RAW && slot == NULL; i++)
        if (!d->raw[i].used)
            slot = &d->raw[i];
    if (slot != NULL) {
        slot->used = 1;
        slot->qtype = qtype;
        slot->flags = flags;
        slot->len = len;
        memcpy(slot->buf, reply, len);
    }
    pthread_mutex_unlock(&d->lock);
    return slot != NULL ? 0 : -1;
}

void dns_responder_stop(dns_responder *d)
{
    if (!d)
        return;
    /* The thread exits as soon as the pipe is readable; retry only on EINTR. */
    while (write(d->wake[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(d->thread, NULL);
    pthread_mutex_destroy(&d->lock);
    close(d->fd);
    close(d->wake[0]);
    close(d->wake[1]);
    free(d);
}
