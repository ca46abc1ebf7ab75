/*
 * run_lines — asyncio's create_subprocess_exec, line by line.
 *
 *   proc = await asyncio.create_subprocess_exec(*argv, stdout=PIPE)
 *   n = 0
 *   while line := await proc.stdout.readline():
 *       n += 1
 *       print(f"{n}: {line.decode().rstrip()}")
 *   print("exit status", await proc.wait())
 *
 * The child's stdout is a rill_stream; readline never blocks the loop, and the
 * exit status comes from rill_process_wait, which rill's SIGCHLD handling answers.
 * A child killed by a signal has a negative status, as in asyncio.
 *
 * usage: run_lines [--dns SERVERS] [--] PROGRAM [ARG...]
 * exits with the child's exit status (128 + signal number if it was killed).
 */
#define _POSIX_C_SOURCE 200809L
#include <rill.h>

#include <stdio.h>
#include <string.h>

struct app {
    rill_loop *loop;
    rill_process *proc;
    unsigned long n;
    int exit_code;
};

static void on_exit_status(rill_process *p, int returncode, void *ud)
{
    struct app *app = ud;
    if (returncode >= 0) {
        printf("exit status %d\n", returncode);
        app->exit_code = returncode;
    } else {
        printf("exit status %d (killed by signal %d)\n", returncode, -returncode);
        app->exit_code = 128 - returncode;
    }
    rill_process_close(p, 0);
}

static void on_line(rill_stream *s, int status, const char *data, size_t len, void *ud)
{
    struct app *app = ud;
    int rc;

    if (status < 0 || len == 0) {
        if (status < 0 && status != RILL_ELIMIT)
            fprintf(stderr, "error: read: %s\n", rill_strerror(status));
        /* EOF (or a failed read): the child's stdout is done; wait for the child itself. */
        rill_close(s, NULL, NULL);
        if ((rc = rill_process_wait(app->proc, on_exit_status, app)) < 0) {
            fprintf(stderr, "error: wait: %s\n", rill_strerror(rc));
            app->exit_code = 1;
            rill_process_close(app->proc, RILL_PROCESS_KILL);
        }
        return;
    }
    if (data[len - 1] == '\n')
        len--;
    printf("%lu: %.*s\n", ++app->n, (int)len, data);
    if ((rc = rill_readline(s, on_line, app)) < 0)
        on_line(s, rc, NULL, 0, app);
}

static void on_spawned(rill_process *p, int status, void *ud)
{
    struct app *app = ud;
    int rc;

    if (status < 0) {
        fprintf(stderr, "error: spawn: %s\n", rill_strerror(status));
        app->exit_code = 1;
        return;
    }
    app->proc = p;
    if ((rc = rill_readline(rill_process_stdout(p), on_line, app)) < 0)
        on_line(rill_process_stdout(p), rc, NULL, 0, app);
}

int main(int argc, char **argv)
{
    rill_loop_opts lopts;
    rill_spawn_opts opts;
    struct app app;
    int first, rc;

    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&lopts, 0, sizeof lopts);
    for (first = 1; first < argc && argv[first][0] == '-'; first++) {
        if (strcmp(argv[first], "--help") == 0) {
            puts("usage: run_lines [--dns SERVERS] [--] PROGRAM [ARG...]\n"
                 "Runs PROGRAM, prints each line of its stdout as `N: LINE`, then `exit status N`;\n"
                 "exits with the child's status (128 + the signal number if a signal killed it).");
            return 0;
        } else if (strcmp(argv[first], "--dns") == 0) {
            if (first + 1 >= argc) {
                fprintf(stderr, "run_lines: missing value for --dns (try --help)\n");
                return 2;
            }
            lopts.dns_servers = argv[++first];
        } else if (strcmp(argv[first], "--") == 0) {
            first++;
            break;
        } else {
            fprintf(stderr, "run_lines: unknown option %s (try --help)\n", argv[first]);
            return 2;
        }
    }
    if (first >= argc) {
        fprintf(stderr, "run_lines: missing PROGRAM (try --help)\n");
        return 2;
    }
    memset(&app, 0, sizeof app);
    memset(&opts, 0, sizeof opts);
    opts.argv = (const char *const *)(argv + first);
    opts.stdio[0].how = RILL_STDIO_DEVNULL;
    opts.stdio[1].how = RILL_STDIO_PIPE;
    opts.stdio[2].how = RILL_STDIO_INHERIT;
    if ((app.loop = rill_loop_new(&lopts)) == NULL) {
        fprintf(stderr, "error: loop: %s\n", rill_strerror(-errno));
        return 1;
    }
    if ((rc = rill_spawn(app.loop, &opts, on_spawned, &app)) < 0) {
        fprintf(stderr, "error: spawn: %s\n", rill_strerror(rc));
        app.exit_code = 1;
    } else {
        rill_loop_run(app.loop);
    }
    rill_loop_free(app.loop);
    return app.exit_code;
}
