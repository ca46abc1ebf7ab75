/* The connect machine. This first version adopts connected sockets
   (rill_connect_sock); resolving and Happy Eyeballs come with the connect work. */
#include "stream.h"

#include <string.h>

typedef enum { CONN_START, CONN_DONE, CONN_CANCELLED } conn_state;
static const char *const conn_names[] = { "START", "DONE", "CANCELLED" };

struct rill_connect_req {
    rill_loop *loop;
    unsigned long id;
    conn_state state;
    rill_connect_cb cb;
    void *ud;
    rill_stream *stream;
    int status;
    rill__task task;
};

static void conn_to(rill_connect_req *r, conn_state to, int status)
{
    RILL__TRACE("connect", r->id, "connect", conn_names[r->state], conn_names[to], "%s",
                status ? rill_err_name(status) : "");
    r->state = to;
}

static void conn_task(rill__task *t)
{
    rill_connect_req *r = rill__container_of(t, rill_connect_req, task);
    rill_connect_cb cb = r->cb;
    void *ud = r->ud;
    rill_stream *s = r->stream;
    int status = r->status;
    rill_loop *loop = r->loop;

    if (r->state == CONN_CANCELLED) {
        if (s != NULL)
            rill_abort(s);
        s = NULL;
        status = RILL_ECANCELED;
    } else {
        conn_to(r, CONN_DONE, status);
    }
    rill__free(r);
    rill__handle_unref(loop);
    cb(s, status, ud);
}

static int check_opts(const rill_connect_opts *o)
{
    if (o == NULL)
        return 0;
    if (rill__check_reserved(o->reserved) < 0)
        return RILL_EINVAL;
    return 0;
}

int rill_connect_sock(rill_loop *loop, int fd, const rill_connect_opts *opts,
                      rill_connect_cb cb, void *ud, rill_connect_req **req)
{
    rill_connect_req *r;
    rill_stream *s;
    int rc;

    if (loop == NULL || fd < 0 || cb == NULL)
        return RILL_EINVAL;
    if ((rc = check_opts(opts)) < 0)
        return rc;
    if (opts != NULL && opts->tls != NULL)
        return -ENOSYS;   /* TLS is not built yet */
    if ((r = rill__calloc(1, sizeof *r)) == NULL)
        return RILL_ENOMEM;
    if ((s = rill__stream_new(loop, fd, RILL_MODE_READWRITE, opts ? opts->limit : 0, &rill__sock_transport)) == NULL) {
        rc = -errno;
        rill__free(r);
        return rc;
    }
    r->loop = loop;
    r->id = rill__next_id(loop);
    r->cb = cb;
    r->ud = ud;
    r->stream = s;
    rill__task_init(&r->task, conn_task);
    rill__task_post(loop, &r->task);
    rill__handle_ref(loop);
    RILL__TRACE("connect", r->id, "connect", "NEW", conn_names[r->state], "sock fd=%d", fd);
    if (req != NULL)
        *req = r;
    return 0;
}

void rill_connect_cancel(rill_connect_req *r)
{
    if (r == NULL || r->state != CONN_START)
        return;
    conn_to(r, CONN_CANCELLED, RILL_ECANCELED);
}

int rill_connect(rill_loop *loop, const char *host, int port, const rill_connect_opts *opts,
                 rill_connect_cb cb, void *ud, rill_connect_req **req)
{
    (void)loop; (void)host; (void)port; (void)opts; (void)cb; (void)ud; (void)req;
    return -ENOSYS;
}

int rill_connect_unix(rill_loop *loop, const char *path, const rill_connect_opts *opts,
                      rill_connect_cb cb, void *ud, rill_connect_req **req)
{
    (void)loop; (void)path; (void)opts; (void)cb; (void)ud; (void)req;
    return -ENOSYS;
}
