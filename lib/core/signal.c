/* [core] asyncio's add_signal_handler. The process-wide handler marks the signal as
   arrived and wakes the watching loop through its wake-up pipe; the user's
   callback runs later, from the loop, where any rill call is allowed. The mark,
   not the pipe byte, is what counts: a pipe full of other wake-ups takes no more
   bytes, but it is readable, so the loop wakes and finds the mark. */
#if !defined(_XOPEN_SOURCE) && !defined(_GNU_SOURCE)
#define _XOPEN_SOURCE 600   /* SA_RESTART is XSI in POSIX.1-2001 */
#endif
#include "rill_private.h"

#include <signal.h>
#include <string.h>

#define NSIGS 64

typedef struct {
    rill_loop *loop;
    void (*cb)(int signum, void *ud);
    void *ud;
    struct sigaction old;
} sig_watch;

/* Which loop watches each signal. The handler reads only wake_fd. */
static sig_watch watches[NSIGS];
static volatile sig_atomic_t wake_fd[NSIGS];
static volatile sig_atomic_t arrived[NSIGS];
static pthread_mutex_t sig_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int signum)
{
    if (signum > 0 && signum < NSIGS && wake_fd[signum] > 0) {
        arrived[signum] = 1;
        rill__wake((int)wake_fd[signum], (unsigned char)signum);
    }
}

int rill_signal_watch(rill_loop *loop, int signum, void (*cb)(int signum, void *ud), void *ud)
{
    struct sigaction sa;
    int rc = 0;

    if (loop == NULL || cb == NULL || signum <= 0 || signum >= NSIGS || signum == SIGKILL || signum == SIGSTOP)
        return RILL_EINVAL;
    pthread_mutex_lock(&sig_mu);
    if (watches[signum].loop == loop) {
        watches[signum].cb = cb;
        watches[signum].ud = ud;
    } else if (watches[signum].loop != NULL) {
        rc = RILL_EBUSY;
    } else {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        wake_fd[signum] = loop->wake_wr;
        if (sigaction(signum, &sa, &watches[signum].old) < 0) {
            rc = -errno;
            wake_fd[signum] = 0;
        } else {
            watches[signum].loop = loop;
            watches[signum].cb = cb;
            watches[signum].ud = ud;
            rill__handle_ref(loop);
        }
    }
    pthread_mutex_unlock(&sig_mu);
    return rc;
}

int rill_signal_unwatch(rill_loop *loop, int signum)
{
    int rc = 0;

    if (loop == NULL || signum <= 0 || signum >= NSIGS)
        return RILL_EINVAL;
    pthread_mutex_lock(&sig_mu);
    if (watches[signum].loop != loop) {
        rc = RILL_EINVAL;
    } else {
        sigaction(signum, &watches[signum].old, NULL);
        wake_fd[signum] = 0;
        memset(&watches[signum], 0, sizeof watches[signum]);
        arrived[signum] = 0;
        rill__handle_unref(loop);
    }
    pthread_mutex_unlock(&sig_mu);
    return rc;
}

void rill__signal_dispatch(rill_loop *loop)
{
    int signum;

    for (signum = 1; signum < NSIGS; signum++) {
        void (*cb)(int, void *) = NULL;
        void *ud = NULL;
        if (!arrived[signum])
            continue;
        pthread_mutex_lock(&sig_mu);
        if (watches[signum].loop == loop) {
            arrived[signum] = 0;   /* before the callback: a signal during it runs it again */
            cb = watches[signum].cb;
            ud = watches[signum].ud;
        }
        pthread_mutex_unlock(&sig_mu);
        if (cb != NULL)
            cb(signum, ud);
    }
}
