/* [proc] How a child comes to life: posix_spawn where configure found it (glibc and
 * musl report a failed exec as its errno), fork + exec otherwise and when the
 * request needs what posix_spawn cannot do portably (cwd, a new session). The fork
 * child reports a failed exec through a close-on-exec pipe: EOF means the exec
 * succeeded. The child's descriptors sit at 3 or above and are close-on-exec. */
#include "config.h"
#include "spawn.h"
#include "syshooks.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>
#ifdef HAVE_POSIX_SPAWN
#include <spawn.h>
#endif

extern char **environ;

/* A fork child's counters die with its exec or _exit: a coverage build writes
   them before each (gcc's own hooks, coverage only). A dump happens once unless the
   counters are reset after it, and the PATH search may exec many times. */
#ifdef RILL_COVERAGE
void __gcov_dump(void);
void __gcov_reset(void);
#define CHILD_COUNTERS_OUT() (__gcov_dump(), __gcov_reset())
#else
#define CHILD_COUNTERS_OUT() ((void)0)
#endif

int rill__spawn_force_fork;

static void child_exec(const rill__spawn_plan *pl, int errfd)
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
    for (i = 1; i < RILL__NSIGS; i++) {
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
        CHILD_COUNTERS_OUT();
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
            CHILD_COUNTERS_OUT();
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
    CHILD_COUNTERS_OUT();
    _exit(127);
}

static int spawn_fork(const rill__spawn_plan *pl, pid_t *pid)
{
    const rill__sys_hooks *h = rill__sys_hooks_cur;
    sigset_t all, old;
    int ep[2], rc, e = 0;
    ssize_t n;
    pid_t child;

    if ((rc = rill__pipe_open(ep, 1)) < 0)
        return rc;
    if ((rc = rill__fd_set_blocking(ep[0])) < 0) {   /* the read below waits for the exec */
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
static int spawn_posix(const rill__spawn_plan *pl, pid_t *pid)
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

/* posix_spawn has no portable chdir or setsid action; without it, fork is all there is. */
static int needs_fork(const rill_spawn_opts *o)
{
#ifdef HAVE_POSIX_SPAWN
    return rill__spawn_force_fork || o->cwd != NULL || (o->flags & RILL_SPAWN_NEW_SESSION) != 0;
#else
    (void)o;
    return 1;
#endif
}

int rill__spawn_plan_init(rill__spawn_plan *pl, const rill_spawn_opts *o)
{
    int i;

    memset(pl, 0, sizeof *pl);
    pl->o = o;
    for (i = 0; i < 3; i++)
        pl->child_fd[i] = -1;
    pl->use_fork = needs_fork(o);
    if (pl->use_fork && strchr(o->argv[0], '/') == NULL) {
        /* NOLINTNEXTLINE(concurrency-mt-unsafe): read, as execvp would; rill never sets the environment */
        pl->path = getenv("PATH");
        if (pl->path == NULL)
            pl->path = "/usr/local/bin:/bin:/usr/bin";
        if ((pl->pathbuf = rill__malloc(strlen(pl->path) + strlen(o->argv[0]) + 2)) == NULL)
            return RILL_ENOMEM;
    }
    return 0;
}

void rill__spawn_plan_free(rill__spawn_plan *pl)
{
    int i;
    for (i = 0; i < 3; i++)
        if (pl->child_fd[i] >= 0)
            close(pl->child_fd[i]);
    rill__free(pl->pathbuf);
}

int rill__spawn_exec(const rill__spawn_plan *pl, pid_t *pid)
{
#ifdef HAVE_POSIX_SPAWN
    if (!pl->use_fork)
        return spawn_posix(pl, pid);
#endif
    return spawn_fork(pl, pid);
}
