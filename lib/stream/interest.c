/* [stream] What a stream waits for: the one place where the read side's, the write
   side's and the close machine's readiness needs (stream.h, inline) meet and become
   the events its io is registered for. It sits below the read, write and close
   files so each of them can ask for the update after a change without calling up. */
#include "stream.h"

int rill__stream_wanted_events(const rill_stream *s)
{
    int ev = 0;
    if (rill__stream_reading_wanted(s))
        ev |= s->rd_want;
    if (rill__stream_writing_wanted(s))
        ev |= s->wr_want;
    /* An idle write pipe still hears its reader go away. */
    if (ev == 0 && s->mode == RILL_MODE_WRITE && !(s->flags & S_HUP_DEAF))
        ev = RILL__EV_HUP;
    return ev;
}

void rill__stream_update_io(rill_stream *s)
{
    if (s->cstate == CLOSE_CLOSED || s->cstate == CLOSE_FREED || s->fd < 0) {
        rill__io_stop(s->loop, &s->io);
        return;
    }
    if (s->io_hook != NULL || (s->flags & S_IN_IO))
        return;   /* the handshake sets its own interest; stream_io sets it when it ends */
    /* Bytes the transport already decoded will not make the descriptor readable again. */
    if (rill__stream_reading_wanted(s) && s->tr->pending != NULL && s->tr->pending(s) > 0)
        rill__task_post(s->loop, &s->more_task);
    /* An open stream's io stays registered from creation to close: this only
       changes its events, which cannot fail. */
    rill__io_start(s->loop, &s->io, rill__stream_wanted_events(s));
}
