/* [stream] What a stream waits for: the one place where the read side's, the write
   side's and the close machine's readiness needs meet and become the events its io
   is registered for. It sits below the read, write and close files so each of them
   can ask for the update after a change without calling up. */
#include "stream.h"

int rill__stream_reading_wanted(const rill_stream *s)
{
    if (!(s->mode & RILL_MODE_READ) || s->cstate != CLOSE_OPEN || (s->flags & (S_EOF | S_USER_PAUSED)))
        return 0;
    /* Past 2 * limit reading pauses, but a read that waits needs bytes the buffer
       cannot give, whatever its size (asyncio's _wait_for_data resumes reading):
       read(-1) and readexactly are not capped by limit, and readuntil decides only
       once limit + seplen bytes are there, which a separator longer than limit + 1
       puts above 2 * limit. The others stay bounded: readline and readuntil end
       with RILL_ELIMIT. */
    return !(s->flags & S_FC_PAUSED) || s->rop.state == READ_WAIT;
}

int rill__stream_writing_wanted(const rill_stream *s)
{
    return s->wbuf.len > 0 || s->wstate == WRITE_EOF_PENDING || s->cstate == CLOSE_NOTIFY;
}

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
