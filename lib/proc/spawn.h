/* [proc] How a child comes to life (spawn.c), for process.c: the plan of its stdio,
   and the exec by posix_spawn or fork + exec. */
#ifndef RILL_SPAWN_H
#define RILL_SPAWN_H

#include "rill_private.h"

#include <sys/types.h>

#define RILL__NSIGS 64   /* signals 1..63: what rill_process_signal takes, what the child resets */

typedef struct rill__spawn_plan {
    const rill_spawn_opts *o;
    int child_fd[3];     /* what becomes the child's 0, 1, 2; -1: inherited */
    int err_to_out;      /* stderr = stdout, after stdout is in place */
    int use_fork;        /* fork + exec: no posix_spawn, or the request needs what it lacks */
    char *pathbuf;       /* fork path: room for PATH entry + '/' + argv[0] */
    const char *path;
} rill__spawn_plan;

/* Test-only: 1 makes every spawn take the fork + exec path (tests cover both in one build). */
extern int rill__spawn_force_fork;

/* 0 or RILL_ENOMEM; either way rill__spawn_plan_free may follow. */
int  rill__spawn_plan_init(rill__spawn_plan *pl, const rill_spawn_opts *o);
/* Closes the child's ends the plan holds (the child has its copies) and frees the plan. */
void rill__spawn_plan_free(rill__spawn_plan *pl);
/* Starts the child: 0 with *pid, or the -errno of what failed, the exec's own included. */
int  rill__spawn_exec(const rill__spawn_plan *pl, pid_t *pid);

#endif
