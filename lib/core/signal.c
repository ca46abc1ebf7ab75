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

/* SIGCHLD's subscribers (lib/proc): one wake-up pipe per loop that has children.
   Every loop is woken and looks at its own pids only (waitpid(pid, WNOHANG)), so
   no loop ever takes another loop's or the program's children. */
volatile sig_atomic_t rill__chld_gen;
static volatile sig_atomic_t chld_fds[RILL__CHLD_SLOTS];
static int chld_subs;
/* chld_owned: the subscriptions installed the handler and restore chld_old when
   the last one goes. A rill_signal_watch of SIGCHLD takes that duty over. */
static int chld_owned;
static struct sigaction chld_old;

static void on_signal(int signum)
{
    if (signum == SIGCHLD) {
        int i;
        rill__chld_gen++;
        for (i = 0; i < RILL__CHLD_SLOTS; i++)
            if (chld_fds[i] > 0)
                rill__wake((int)chld_fds[i], (unsigned char)signum);
    }
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
            if (signum == SIGCHLD && chld_owned) {
                /* What the user's unwatch restores is what was there before rill. */
                watches[signum].old = chld_old;
                chld_owned = 0;
            }
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
        if (signum == SIGCHLD && chld_subs > 0) {
            /* Children still need the handler: keep it, restore later. */
            chld_old = watches[signum].old;
            chld_owned = 1;
        } else {
            sigaction(signum, &watches[signum].old, NULL);
        }
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

    if (loop->chld_fn != NULL && loop->chld_seen != rill__chld_gen) {
        loop->chld_seen = rill__chld_gen;
        loop->chld_fn(loop);
    }
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

int rill__chld_subscribe(rill_loop *loop, void (*fn)(rill_loop *loop))
{
    struct sigaction sa;
    int i, rc = 0;

    pthread_mutex_lock(&sig_mu);
    if (chld_subs == 0 && watches[SIGCHLD].loop == NULL) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
        if (sigaction(SIGCHLD, &sa, &chld_old) < 0)
            rc = -errno;
        else
            chld_owned = 1;
    }
    if (rc == 0) {
        loop->chld_slot = -1;
        for (i = 0; i < RILL__CHLD_SLOTS; i++)
            if (chld_fds[i] <= 0) {
                chld_fds[i] = loop->wake_wr;
                loop->chld_slot = i;
                break;
            }
        loop->chld_fn = fn;
        loop->chld_seen = rill__chld_gen;
        chld_subs++;
    }
    pthread_mutex_unlock(&sig_mu);
    return rc;
}

void rill__chld_unsubscribe(rill_loop *loop)
{
    pthread_mutex_lock(&sig_mu);
    if (loop->chld_fn != NULL) {
        if (loop->chld_slot >= 0)
            chld_fds[loop->chld_slot] = 0;
        loop->chld_slot = -1;
        loop->chld_fn = NULL;
        if (--chld_subs == 0 && chld_owned) {
            sigaction(SIGCHLD, &chld_old, NULL);
            chld_owned = 0;
        }
    }
    pthread_mutex_unlock(&sig_mu);
}

int rill__chld_handler_installed(void)
{
    struct sigaction cur;
    if (sigaction(SIGCHLD, NULL, &cur) < 0)
        return 0;
    return !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == on_signal;
}
