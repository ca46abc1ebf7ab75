/* [proc] asyncio's Process.communicate: feed stdin, drain stdout and stderr, wait.
   The three run at once, which is the whole point: a parent that writes all of
   stdin before reading deadlocks as soon as the child's stdout pipe fills (the
   child blocks writing, so it stops reading, so the parent blocks writing). Here
   the write is buffered by the stream and both reads are always pending, so
   whichever pipe moves, the loop moves it. */
#include "stream.h"

#include <string.h>

typedef struct sink {
    struct comm *c;
    char *data;
    size_t len, cap;
} sink;

typedef struct comm {
    rill_process *p;
    rill_communicate_cb cb;
    void *ud;
    sink out, err;
    int pending;            /* stdin, stdout, stderr, the wait: each counts until done */
    int status;
    int returncode;
} comm;

static void comm_done_one(comm *c)
{
    rill_communicate_result r;
    if (--c->pending > 0)
        return;
    memset(&r, 0, sizeof r);
    r.status = c->status;
    r.returncode = c->returncode;
    r.out = c->out.data;
    r.outlen = c->out.len;
    r.err = c->err.data;
    r.errlen = c->err.len;
    c->cb(c->p, &r, c->ud);
    rill__free(c->out.data);
    rill__free(c->err.data);
    rill__free(c);
}

static void fail(comm *c, int status)
{
    if (c->status == 0)
        c->status = status;
}

static void on_read(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    sink *k = ud;
    comm *c = k->c;
    int rc;

    if (status == 0 && len > 0) {
        if (k->len + len > k->cap) {
            size_t cap = k->cap ? k->cap : 65536;
            char *nd;
            while (cap < k->len + len)
                cap *= 2;
            if ((nd = rill__realloc(k->data, cap)) == NULL) {
                status = RILL_ENOMEM;
                goto stop;
            }
            k->data = nd;
            k->cap = cap;
        }
        memcpy(k->data + k->len, data, len);
        k->len += len;
        if ((rc = rill_read(s, 65536, on_read, k)) == 0)
            return;
        status = rc;
    }
stop:
    if (status < 0)
        fail(c, status);
    rill_close(s, NULL, NULL);
    comm_done_one(c);
}

static void on_written(rill_stream *s, int status, void *ud)
{
    comm *c = ud;
    /* A child that exits without reading all of its input is not an error (asyncio). */
    if (status < 0 && status != -EPIPE && status != -ECONNRESET)
        fail(c, status);
    rill_close(s, NULL, NULL);
    comm_done_one(c);
}

static void on_exit_status(rill_process *p, int returncode, void *ud)
{
    comm *c = ud;
    (void)p;
    c->returncode = returncode;
    comm_done_one(c);
}

int rill_process_communicate(rill_process *p, const void *input, size_t len,
                             rill_communicate_cb cb, void *ud)
{
    rill_stream *in, *out, *err;
    comm *c;
    int rc;

    if (p == NULL || cb == NULL || (input == NULL && len > 0))
        return RILL_EINVAL;
    in = rill_process_stdin(p);
    out = rill_process_stdout(p);
    err = rill_process_stderr(p);
    if ((c = rill__calloc(1, sizeof *c)) == NULL)
        return RILL_ENOMEM;
    c->p = p;
    c->cb = cb;
    c->ud = ud;
    c->out.c = c->err.c = c;
    /* The wait first: it is the one step that can be refused (ENOMEM) before anything
       else has started, and the other three report their failures to the callback. */
    if ((rc = rill_process_wait(p, on_exit_status, c)) < 0) {
        rill__free(c);
        return rc;
    }
    c->pending = 1 + (in != NULL) + (out != NULL) + (err != NULL);
    /* A read that cannot start (RILL_EBUSY: the program has one pending) leaves that
       stream to the program, and the result says why its output is missing. */
    if (out != NULL && (rc = rill_read(out, 65536, on_read, &c->out)) < 0) {
        fail(c, rc);
        c->pending--;
    }
    if (err != NULL && (rc = rill_read(err, 65536, on_read, &c->err)) < 0) {
        fail(c, rc);
        c->pending--;
    }
    if (in != NULL) {
        rc = len > 0 ? rill_write(in, input, len, on_written, c) : rill_drain(in, on_written, c);
        if (rc < 0) {
            if (rc != -EPIPE && rc != -ECONNRESET)
                fail(c, rc);
            rill_close(in, NULL, NULL);
            c->pending--;
        }
    }
    return 0;
}
