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
 * The exec itself: posix_spawn where configure found it (glibc and musl report a
 * failed exec as its errno); fork + exec otherwise, and when the request needs
 * what posix_spawn cannot do portably (cwd, a new session). The fork child reports
 * a failed exec through a close-on-exec pipe: EOF means the exec succeeded. */
#include "config.h"
#include "stream.h"
#include "syshooks.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>
#ifdef HAVE_POSIX_SPAWN
#include <spawn.h>
#endif

extern char **environ;

#define POLL_MS 100
#define NSIGS 64

/* Test-only: 1 makes every spawn take the fork + exec path (tests cover both in one build). */
int rill__spawn_force_fork;

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
    if (WIFEXITED(st))
        p->returncode = WEXITSTATUS(st);
    else if (WIFSIGNALED(st))
        p->returncode = -WTERMSIG(st);
    else
        p->returncode = 255;
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

/* Descriptors rill creates for a child sit at 3 or above, so the child's dup2 onto
   0, 1, 2 never overwrites one it still needs; all are close-on-exec. */
static int move_high(int fd)
{
    int nfd, e;
    if (fd >= 3)
        return fd;
    if ((nfd = fcntl(fd, F_DUPFD, 3)) < 0) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    return nfd;
}

static int set_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

static int set_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* A pipe whose both ends are >= 3 and close-on-exec. */
static int make_pipe(int fds[2])
{
    if (rill__sys_pipe(fds) < 0)
        return -errno;
    if ((fds[0] = move_high(fds[0])) < 0) {
        int e = errno;
        close(fds[1]);
        return -e;
    }
    if ((fds[1] = move_high(fds[1])) < 0) {
        int e = errno;
        close(fds[0]);
        return -e;
    }
    if (rill__set_nonblock_cloexec(fds[0]) < 0 || rill__set_nonblock_cloexec(fds[1]) < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return -e;
    }
    return 0;
}

typedef struct plan {
    const rill_spawn_opts *o;
    int child_fd[3];     /* what becomes the child's 0, 1, 2; -1: inherited */
    int err_to_out;      /* stderr = stdout, after stdout is in place */
    char *pathbuf;       /* fork path: room for PATH entry + '/' + argv[0] */
    const char *path;
} plan;

static void child_exec(const plan *pl, int errfd)
{
    const rill_spawn_opts *o = pl->o;
    char *const *argv = (char *const *)o->argv;
    char *const *envp = o->envp != NULL ? (char *const *)o->envp : environ;
    struct sigaction sa;
    sigset_t none;
    int i, e = 0, saw_eacces = 0;

    /* Only async-signal-safe calls from here on. rill's handlers must not run in
       the child (they would write to the parent's wake-up pipes): every caught
       signal goes back to its default before the mask opens. SIGPIPE too, so a
       child of a program that ignores it still dies writing to a closed pipe. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (i = 1; i < NSIGS; i++) {
        struct sigaction cur;
        if (i == SIGKILL || i == SIGSTOP || sigaction(i, NULL, &cur) < 0)
            continue;
        if (i == SIGPIPE || (cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN))
            sigaction(i, &sa, NULL);
    }
    if (o->flags & RILL_SPAWN_NEW_SESSION) {
        if (setsid() < 0)
            goto fail;
    } else if (o->flags & RILL_SPAWN_NEW_PGROUP) {
        if (setpgid(0, 0) < 0)
            goto fail;
    }
    for (i = 0; i < 3; i++)
        if (pl->child_fd[i] >= 0 && dup2(pl->child_fd[i], i) < 0)
            goto fail;
    if (pl->err_to_out && dup2(1, 2) < 0)
        goto fail;
    if (o->cwd != NULL && chdir(o->cwd) < 0)
        goto fail;
    sigemptyset(&none);
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): the fork child has one thread (pthread_sigmask is not async-signal-safe) */
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (strchr(argv[0], '/') != NULL) {
        execve(argv[0], argv, envp);
    } else {
        /* execvp's search, on the parent's PATH, without malloc. */
        const char *p = pl->path;
        size_t alen = strlen(argv[0]);
        for (;;) {
            const char *end = strchr(p, ':');
            size_t dlen = end != NULL ? (size_t)(end - p) : strlen(p);
            if (dlen == 0) {
                memcpy(pl->pathbuf, argv[0], alen + 1);
            } else {
                memcpy(pl->pathbuf, p, dlen);
                pl->pathbuf[dlen] = '/';
                memcpy(pl->pathbuf + dlen + 1, argv[0], alen + 1);
            }
            execve(pl->pathbuf, argv, envp);
            if (errno == EACCES)
                saw_eacces = 1;
            else if (errno != ENOENT && errno != ENOTDIR)
                break;
            if (end == NULL)
                break;
            p = end + 1;
        }
        if (saw_eacces && (errno == ENOENT || errno == ENOTDIR))
            errno = EACCES;
    }
fail:
    e = errno;
    while (write(errfd, &e, sizeof e) < 0 && errno == EINTR)
        ;
    _exit(127);
}

static int spawn_fork(const plan *pl, pid_t *pid)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    sigset_t all, old;
    int ep[2], rc, e = 0;
    ssize_t n;
    pid_t child;

    if ((rc = make_pipe(ep)) < 0)
        return rc;
    if ((rc = set_blocking(ep[0])) < 0) {   /* the read below waits for the exec */
        close(ep[0]);
        close(ep[1]);
        return rc;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    child = h != NULL && h->fork != NULL ? h->fork() : fork();
    if (child == 0) {
        close(ep[0]);
        child_exec(pl, ep[1]);
    }
    e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(ep[1]);
    if (child < 0) {
        close(ep[0]);
        return -e;
    }
    do
        n = read(ep[0], &e, sizeof e);
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof e) {
        /* The child is exiting with 127 right now: reap it here, it was never a process. */
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
        return e > 0 ? -e : RILL_EINVAL;
    }
    *pid = child;
    return 0;
}

#ifdef HAVE_POSIX_SPAWN
static int spawn_posix(const plan *pl, pid_t *pid)
{
    const rill_spawn_opts *o = pl->o;
    char *const *argv = (char *const *)o->argv;
    char *const *envp = o->envp != NULL ? (char *const *)o->envp : environ;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, def;
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    int i, rc;

    if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
        return -rc;
    if ((rc = posix_spawnattr_init(&at)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -rc;
    }
    for (i = 0; i < 3 && rc == 0; i++)
        if (pl->child_fd[i] >= 0)
            rc = posix_spawn_file_actions_adddup2(&fa, pl->child_fd[i], i);
    if (rc == 0 && pl->err_to_out)
        rc = posix_spawn_file_actions_adddup2(&fa, 1, 2);
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    if (o->flags & RILL_SPAWN_NEW_PGROUP) {
        flags |= POSIX_SPAWN_SETPGROUP;
        if (rc == 0)
            rc = posix_spawnattr_setpgroup(&at, 0);
    }
    if (rc == 0)
        rc = posix_spawnattr_setflags(&at, flags);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&at, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&at, &def);
    if (rc == 0)
        rc = strchr(argv[0], '/') != NULL ? posix_spawn(pid, argv[0], &fa, &at, argv, envp)
                                          : posix_spawnp(pid, argv[0], &fa, &at, argv, envp);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return rc != 0 ? -rc : 0;
}
#endif

static int setup_stdio(rill_process *p, plan *pl, const rill_spawn_opts *o)
{
    int i, rc, fds[2];

    for (i = 0; i < 3; i++) {
        const rill_spawn_stdio *sio = &o->stdio[i];
        switch (sio->how) {
        case RILL_STDIO_PIPE:
            if ((rc = make_pipe(fds)) < 0)
                return rc;
            /* The child's end blocks, as a program expects of its stdio. */
            pl->child_fd[i] = i == 0 ? fds[0] : fds[1];
            if ((rc = set_blocking(pl->child_fd[i])) < 0) {
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
            if ((fds[0] = open("/dev/null", O_RDWR)) < 0 || (fds[0] = move_high(fds[0])) < 0)
                return -errno;
            pl->child_fd[i] = fds[0];
            if ((rc = set_cloexec(fds[0])) < 0 || (rc = set_blocking(fds[0])) < 0)
                return rc;
            break;
        case RILL_STDIO_FD:
            /* A copy, so the dup2 order cannot matter and the program's descriptor stays as it is. */
            if ((fds[0] = fcntl(sio->fd, F_DUPFD, 3)) < 0)
                return -errno;
            pl->child_fd[i] = fds[0];
            if ((rc = set_cloexec(fds[0])) < 0)
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
    plan pl;
    int i, rc;
#ifdef HAVE_POSIX_SPAWN
    int use_fork;
#endif

    memset(&pl, 0, sizeof pl);
    pl.o = o;
    for (i = 0; i < 3; i++)
        pl.child_fd[i] = -1;
#ifdef HAVE_POSIX_SPAWN
    use_fork = rill__spawn_force_fork || o->cwd != NULL || (o->flags & RILL_SPAWN_NEW_SESSION);
    if (use_fork && strchr(o->argv[0], '/') == NULL) {
#else
    if (strchr(o->argv[0], '/') == NULL) {
#endif
        /* NOLINTNEXTLINE(concurrency-mt-unsafe): read, as execvp would; rill never sets the environment */
        pl.path = getenv("PATH");
        if (pl.path == NULL)
            pl.path = "/usr/local/bin:/bin:/usr/bin";
        if ((pl.pathbuf = rill__malloc(strlen(pl.path) + strlen(o->argv[0]) + 2)) == NULL) {
            rc = RILL_ENOMEM;
            goto out;
        }
    }
    if ((rc = setup_stdio(p, &pl, o)) < 0)
        goto out;
    /* Subscribed before the child exists: its SIGCHLD cannot come too early. */
    if ((rc = watch_children(p->loop)) < 0)
        goto out;
#ifdef HAVE_POSIX_SPAWN
    if (!use_fork)
        rc = spawn_posix(&pl, &p->pid);
    else
#endif
        rc = spawn_fork(&pl, &p->pid);
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
    for (i = 0; i < 3; i++)
        if (pl.child_fd[i] >= 0)
            close(pl.child_fd[i]);
    rill__free(pl.pathbuf);
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
    if (p == NULL || sig < 0 || sig >= NSIGS)
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
