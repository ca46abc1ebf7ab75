#!/bin/sh
# make demo: echo_server and echo_client talking over loopback, then the same
# client once more with RILL_TRACE=1 to show the state machines at work.
# usage: tools/demo.sh EXAMPLES_DIR
set -u

dir=${1:-examples}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rill-demo.XXXXXX") || exit 1
server_pid=
printed=0

cleanup() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Prints the server's lines not yet shown, prefixed "server> ".
show_server() {
    total=$(wc -l < "$tmp/server.out")
    if [ "$total" -gt "$printed" ]; then
        sed -n "$((printed + 1)),${total}p" "$tmp/server.out" | sed 's/^/server> /'
        printed=$total
    fi
}

# Waits up to 5 s for the server's output to hold $1 lines matching $2.
wait_server() {
    i=0
    while [ "$(grep -c "$2" "$tmp/server.out")" -lt "$1" ]; do
        i=$((i + 1))
        if [ "$i" -gt 50 ]; then
            echo "demo: the server did not print '$2' in time" >&2
            return 1
        fi
        sleep 0.1
    done
}

echo "== echo_server on a free loopback port (port 0) =="
echo "\$ $dir/echo_server --host 127.0.0.1 --port 0 &"
"$dir/echo_server" --host 127.0.0.1 --port 0 > "$tmp/server.out" 2> "$tmp/server.err" &
server_pid=$!
wait_server 1 '^Serving on ' || { cat "$tmp/server.err" >&2; exit 1; }
addr=$(sed -n 's/^Serving on //p' "$tmp/server.out" | head -n 1)
port=${addr##*:}
show_server

echo
echo "== echo_client =="
echo "\$ $dir/echo_client 127.0.0.1 $port 'Hello World!'"
timeout 10 "$dir/echo_client" 127.0.0.1 "$port" 'Hello World!' || { echo "demo: echo_client failed" >&2; exit 1; }
wait_server 1 '^Close the connection' || exit 1
show_server

echo
echo "== the same client with RILL_TRACE=1: every state transition, on stderr =="
echo "\$ RILL_TRACE=1 $dir/echo_client 127.0.0.1 $port 'Hello World!'"
RILL_TRACE=1 timeout 10 "$dir/echo_client" 127.0.0.1 "$port" 'Hello World!' 2>&1 ||
    { echo "demo: echo_client failed" >&2; exit 1; }
wait_server 2 '^Close the connection' || exit 1
show_server

echo
echo "== stopping the server: SIGTERM to PID $server_pid =="
kill -TERM "$server_pid"
wait "$server_pid"
status=$?
server_pid=
show_server
cat "$tmp/server.err" >&2
echo "echo_server exited with status $status"
[ "$status" -eq 0 ] || exit 1

echo
echo "== run_lines: a child process's stdout, line by line, and its exit status =="
echo "\$ $dir/run_lines /bin/sh -c 'echo one; echo two; exit 3'"
timeout 10 "$dir/run_lines" /bin/sh -c 'echo one; echo two; exit 3'
status=$?
echo "run_lines exited with status $status (the child's)"
[ "$status" -eq 3 ]
