/* [proc] Child processes (asyncio's create_subprocess_exec): spawn, reap, wait, signal.
 *
 *   STARTING ---spawned---> RUNNING ---reaped---> EXITED ---closed, callbacks done---> FREED
 *       \------------------spawn failed: callback with the error-------------------^
 *
 * Everything rill_spawn does happens inside the call (pipes, streams, the spawn
 * itself); only the outcome waits for the loop, so the callback is never synchronous.
 *
 * Reaping: a loop with unreaped children subscribes to SIGCHLD (lib/core/signal.c);
 * the handler wakes every subscribed loop and each calls waitpid(pid, WNOHANG) on
 * its own pids, never waitpid(-1), so nobody else's child status is taken. A
 * program that replaces rill's SIGCHLD handler would leave children unreaped, so
 * a timer also polls the pids, every POLL_MS, whenever rill's handler is not the
 * one installed. A status someone else took (ECHILD) is reported as 255, as asyncio.
 *
 * The exec itself is spawn.c's. */
#include "config.h"
#include "stream.h"
#include "spawn.h"
#include "syshooks.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>

#define POLL_MS 100

#define PROC_STATES(X, LAST) X(PROC, STARTING) X(PROC, RUNNING) X(PROC, EXITED) LAST(PROC, FREED)
typedef enum { PROC_STATES(RILL__STATE_ENUM, RILL__STATE_ENUM_LAST) } proc_state;
static const char *const proc_names[] = { PROC_STATES(RILL__STATE_NAME, RILL__STATE_NAME) };

typedef struct wait_req {
    rill__list node;
    rill_wait_cb cb;
    void *ud;
} wait_req;

struct rill_process {
    rill__handle h;              /* the one lifecycle (lib/core/handle.c) */
    rill_loop *loop;
    unsigned long id;
    proc_state state;
    pid_t pid;
    int returncode;
    int spawn_status;
    rill_spawn_cb spawn_cb;      /* NULL once delivered */
    void *spawn_ud;
    int closed;                  /* rill_process_close was called */
    int in_step;
    rill_stream *pipes[3];
    rill__list waiters;          /* wait_req */
    rill__list node;             /* on loop->procs while RUNNING */
    rill__task task;
};

static void proc_to(rill_process *p, proc_state to, const char *detail)
{
    RILL__TRACE("process", p->id, "process", proc_names[p->state], proc_names[to], "%s",
                detail != NULL ? detail : "");
    p->state = to;
}

/* ----------------------------------------------------------------- reaping */

static void reap_one(rill_process *p, int st)
{
    char detail[32];
    /* Without WUNTRACED, waitpid reports an exit or a death by signal, nothing else. */
    p->returncode = WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st);
    rill__list_unlink(&p->node);
    p->loop->nprocs--;
    snprintf(detail, sizeof detail, "pid=%ld rc=%d", (long)p->pid, p->returncode);
    proc_to(p, PROC_EXITED, detail);
    rill__task_post(p->loop, &p->task);
}

static void proc_timer_cb(void *ud);

static void idle_check(rill_loop *loop)
{
    if (loop->nprocs == 0) {
        rill__timer_stop(&loop->proc_timer);
        rill__chld_unsubscribe(loop);
    }
}

static void reap_loop(rill_loop *loop)
{
    rill__list *n, *next;

    for (n = loop->procs.next; n != &loop->procs; n = next) {
        rill_process *p = rill__container_of(n, rill_process, node);
        int st = 0;
        pid_t r;
        next = n->next;
        do
            r = waitpid(p->pid, &st, WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r == p->pid)
            reap_one(p, st);
        else if (r < 0)   /* ECHILD: a foreign waitpid(-1) took it */
            reap_one(p, 255 << 8);
    }
    idle_check(loop);
}

static void proc_timer_cb(void *ud)
{
    rill_loop *loop = ud;
    /* SIGCHLD reaches this loop: nothing to do but look again later. */
    if (!(loop->chld_slot >= 0 && rill__chld_handler_installed()))
        reap_loop(loop);
    if (loop->nprocs > 0)
        rill__timer_start(&loop->proc_timer, POLL_MS);
}

static int watch_children(rill_loop *loop)
{
    int rc;
    if (loop->chld_fn != NULL)
        return 0;
    if ((rc = rill__chld_subscribe(loop, reap_loop)) < 0)
        return rc;
    rill__timer_init(&loop->proc_timer, loop, proc_timer_cb, loop);
    rill__timer_start(&loop->proc_timer, POLL_MS);
    return 0;
}

/* --------------------------------------------------------- the machine */

static void proc_free(rill_process *p)
{
    rill_loop *loop = p->loop;
    int i;
    /* Streams the user closed may outlive the handle by an iteration: they must not call back into it. */
    for (i = 0; i < 3; i++)
        if (p->pipes[i] != NULL) {
            p->pipes[i]->owner_gone = NULL;
            p->pipes[i]->owner = NULL;
        }
    proc_to(p, PROC_FREED, p->spawn_status < 0 ? rill_err_name(p->spawn_status) : NULL);
    rill__task_cancel(loop, &p->task);
    rill__handle_closed(loop, &p->h);
}

static void proc_free_mem(rill__handle *h)
{
    rill__free(rill__container_of(h, rill_process, h));
}

static void stream_gone(rill_stream *s)
{
    rill_process *p = s->owner;
    int i;
    for (i = 0; i < 3; i++)
        if (p->pipes[i] == s)
            p->pipes[i] = NULL;
}

static void release_streams(rill_process *p, int graceful)
{
    int i;
    for (i = 0; i < 3; i++) {
        rill_stream *s = p->pipes[i];
        if (s == NULL)
            continue;
        if (!graceful) {
            s->owner_gone = NULL;
            s->owner = NULL;
            p->pipes[i] = NULL;
            rill_abort(s);
        } else if (!(s->flags & S_USER_CLOSED)) {
            /* A lost stream (the child's end closed) also waits for its close to be freed. */
            rill_close(s, NULL, NULL);
        }
    }
}

/* Delivers what is due (the spawn outcome, then waits once EXITED) and frees. */
static void proc_step(rill_process *p)
{
    p->in_step++;
    if (p->spawn_cb != NULL) {
        rill_spawn_cb cb = p->spawn_cb;
        p->spawn_cb = NULL;
        if (p->spawn_status < 0)
            RILL__CALLBACK(p->loop, cb(NULL, p->spawn_status, p->spawn_ud));
        else
            RILL__CALLBACK(p->loop, cb(p, 0, p->spawn_ud));
    }
    while (p->state == PROC_EXITED && !rill__list_empty(&p->waiters)) {
        wait_req *w = rill__container_of(rill__list_pop_front(&p->waiters), wait_req, node);
        rill_wait_cb cb = w->cb;
        void *ud = w->ud;
        rill__free(w);
        RILL__CALLBACK(p->loop, cb(p, p->returncode, ud));
    }
    p->in_step--;
    if (p->in_step == 0 && !rill__task_queued(&p->task) &&
        (p->spawn_status < 0 || (p->closed && p->state == PROC_EXITED && rill__list_empty(&p->waiters))))
        proc_free(p);
}

static void proc_task(rill__task *t)
{
    proc_step(rill__container_of(t, rill_process, task));
}

/* ----------------------------------------------------------- spawning */

static int setup_stdio(rill_process *p, rill__spawn_plan *pl, const rill_spawn_opts *o)
{
    int i, rc, fds[2];

    for (i = 0; i < 3; i++) {
        const rill_spawn_stdio *sio = &o->stdio[i];
        switch (sio->how) {
        case RILL_STDIO_PIPE:
            if ((rc = rill__pipe_open(fds, 1)) < 0)
                return rc;
            /* The child's end blocks, as a program expects of its stdio. */
            pl->child_fd[i] = i == 0 ? fds[0] : fds[1];
            if ((rc = rill__fd_set_blocking(pl->child_fd[i])) < 0) {
                close(i == 0 ? fds[1] : fds[0]);
                return rc;
            }
            rc = i == 0 ? rill_connect_write_pipe(p->loop, fds[1], o->limit, &p->pipes[i])
                        : rill_connect_read_pipe(p->loop, fds[0], o->limit, &p->pipes[i]);
            if (rc < 0) {
                close(i == 0 ? fds[1] : fds[0]);
                return rc;
            }
            p->pipes[i]->owner = p;
            p->pipes[i]->owner_gone = stream_gone;
            break;
        case RILL_STDIO_DEVNULL:
            if ((pl->child_fd[i] = open("/dev/null", O_RDWR)) < 0)
                return -errno;
            if ((rc = rill__fd_move_high(&pl->child_fd[i])) < 0 || (rc = rill__fd_set_cloexec(pl->child_fd[i])) < 0)
                return rc;
            break;
        case RILL_STDIO_FD:
            /* A copy, so the dup2 order cannot matter and the program's descriptor stays as it is. */
            if ((pl->child_fd[i] = rill__sys_fcntl(sio->fd, F_DUPFD, 3)) < 0)
                return -errno;
            if ((rc = rill__fd_set_cloexec(pl->child_fd[i])) < 0)
                return rc;
            break;
        case RILL_STDIO_STDOUT:
            pl->err_to_out = 1;
            break;
        default:
            break;
        }
    }
    return 0;
}

static int do_spawn(rill_process *p, const rill_spawn_opts *o)
{
    rill__spawn_plan pl;
    int rc;

    if ((rc = rill__spawn_plan_init(&pl, o)) < 0)
        goto out;
    if ((rc = setup_stdio(p, &pl, o)) < 0)
        goto out;
    /* Subscribed before the child exists: its SIGCHLD cannot come too early. */
    if ((rc = watch_children(p->loop)) < 0)
        goto out;
    rc = rill__spawn_exec(&pl, &p->pid);
    if (rc == 0) {
        char detail[24];
        rill__list_push_back(&p->loop->procs, &p->node);
        p->loop->nprocs++;
        snprintf(detail, sizeof detail, "pid=%ld", (long)p->pid);
        proc_to(p, PROC_RUNNING, detail);
    } else {
        idle_check(p->loop);
    }
out:
    rill__spawn_plan_free(&pl);
    if (rc < 0)
        release_streams(p, 0);
    return rc;
}

static int check_opts(const rill_spawn_opts *o)
{
    int i;
    if (o->argv == NULL || o->argv[0] == NULL || o->argv[0][0] == '\0')
        return RILL_EINVAL;
    if (rill__check_reserved(o->reserved) < 0 || (o->flags & ~(RILL_SPAWN_NEW_PGROUP | RILL_SPAWN_NEW_SESSION)))
        return RILL_EINVAL;
    for (i = 0; i < 3; i++) {
        int how = o->stdio[i].how;
        if (how < RILL_STDIO_INHERIT || how > RILL_STDIO_STDOUT || (how == RILL_STDIO_STDOUT && i != 2))
            return RILL_EINVAL;
        if (how == RILL_STDIO_FD && o->stdio[i].fd < 0)
            return RILL_EINVAL;
    }
    return 0;
}

int rill_spawn(rill_loop *loop, const rill_spawn_opts *opts, rill_spawn_cb cb, void *ud)
{
    rill_process *p;
    int rc;

    if (loop == NULL || opts == NULL || cb == NULL)
        return RILL_EINVAL;
    if ((rc = check_opts(opts)) < 0)
        return rc;
    if ((p = rill__calloc(1, sizeof *p)) == NULL)
        return RILL_ENOMEM;
    p->loop = loop;
    p->id = rill__next_id(loop);
    p->state = PROC_STARTING;
    p->pid = -1;
    p->spawn_cb = cb;
    p->spawn_ud = ud;
    rill__list_init(&p->waiters);
    rill__list_init(&p->node);
    rill__task_init(&p->task, proc_task);
    rill__handle_open(loop, &p->h, proc_free_mem);
    p->spawn_status = do_spawn(p, opts);
    rill__task_post(loop, &p->task);
    return 0;
}

/* ------------------------------------------------------------ handles */

pid_t rill_process_pid(const rill_process *p) { return p != NULL ? p->pid : -1; }
rill_stream *rill_process_stdin(const rill_process *p) { return p != NULL ? p->pipes[0] : NULL; }
rill_stream *rill_process_stdout(const rill_process *p) { return p != NULL ? p->pipes[1] : NULL; }
rill_stream *rill_process_stderr(const rill_process *p) { return p != NULL ? p->pipes[2] : NULL; }

int rill_process_returncode(const rill_process *p, int *returncode)
{
    if (p == NULL || p->state != PROC_EXITED)
        return 0;
    if (returncode != NULL)
        *returncode = p->returncode;
    return 1;
}

int rill_process_wait(rill_process *p, rill_wait_cb cb, void *ud)
{
    wait_req *w;
    if (p == NULL || cb == NULL || p->closed)
        return RILL_EINVAL;
    if ((w = rill__malloc(sizeof *w)) == NULL)
        return RILL_ENOMEM;
    w->cb = cb;
    w->ud = ud;
    rill__list_push_back(&p->waiters, &w->node);
    if (p->state == PROC_EXITED)
        rill__task_post(p->loop, &p->task);
    return 0;
}

int rill_process_signal(rill_process *p, int sig)
{
    if (p == NULL || sig < 0 || sig >= RILL__NSIGS)
        return RILL_EINVAL;
    if (p->state != PROC_RUNNING)
        return -ESRCH;
    /* Not reaped yet, so the pid is still this child's (a zombie at worst). */
    if (kill(p->pid, sig) < 0)
        return -errno;
    return 0;
}

int rill_process_close(rill_process *p, int flags)
{
    if (p == NULL || p->closed || (flags & ~RILL_PROCESS_KILL))
        return RILL_EINVAL;
    p->closed = 1;
    if ((flags & RILL_PROCESS_KILL) && p->state == PROC_RUNNING)
        kill(p->pid, SIGKILL);
    release_streams(p, 1);
    if (p->in_step == 0)
        rill__task_post(p->loop, &p->task);   /* frees it from the loop once reaped */
    return 0;
}
