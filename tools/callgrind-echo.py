#!/usr/bin/env python3
"""User-space instructions per echoed round trip, rill's echo_server against libuv's.

Usage: callgrind-echo.py BUILDDIR [ROUND_TRIPS]   (make callgrind-echo)

Each server runs under valgrind's callgrind; one connection sends 64 bytes and waits
for the echo, ROUND_TRIPS times (default 20000), after a warm-up of 1000. The counters
are zeroed after the warm-up and dumped after the measured trips (callgrind_control),
so start-up and accept are left out. Servers are stopped by their own PID. Prints one
line per server and the ratio.
"""
import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import time


def run_loadgen(build, port, count):
    subprocess.run([os.path.join(build, "tests/bench/loadgen"), "--port", str(port), "--mode", "pingpong",
                    "--conns", "1", "--size", "64", "--count", str(count), "--warmup", "0",
                    "--timeout", "120"], check=True, stdout=subprocess.DEVNULL, timeout=300)


def measure(build, name, argv, trips, tmp):
    out = os.path.join(tmp, name + ".cg")
    srv = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out + ".%p"] + argv,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = srv.stdout.readline()
        m = re.search(r":(\d+)\s*$", line)
        if not m:
            raise SystemExit("%s: no 'Serving on' line (got %r)" % (name, line))
        port = int(m.group(1))
        run_loadgen(build, port, 1000)
        subprocess.run(["callgrind_control", "-z", str(srv.pid)], check=True, stdout=subprocess.DEVNULL)
        run_loadgen(build, port, trips)
        subprocess.run(["callgrind_control", "-d", str(srv.pid)], check=True, stdout=subprocess.DEVNULL)
        time.sleep(0.5)
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(timeout=20)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
    dumps = sorted(p for p in glob.glob(out + ".%d.*" % srv.pid) if not p.endswith(".0"))
    if not dumps:
        raise SystemExit("%s: callgrind wrote no dump" % name)
    total = None
    for line in open(dumps[0]):
        if line.startswith("summary:") or line.startswith("totals:"):
            total = int(line.split()[1])
    if total is None:
        raise SystemExit("%s: no total in %s" % (name, dumps[0]))
    return total / trips


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "."
    trips = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    servers = [("rill", [os.path.join(build, "examples/echo_server"), "--host", "127.0.0.1", "--port", "0",
                         "--mode", "chunk"])]
    uv = os.path.join(build, "tests/bench/uv_echo")
    if os.path.exists(uv):
        servers.append(("libuv", [uv, "--host", "127.0.0.1", "--port", "0", "--mode", "chunk"]))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in servers:
            results[name] = measure(build, name, argv, trips, tmp)
            print("%-6s %7.0f user-space instructions per 64-byte round trip (%d trips, callgrind)"
                  % (name, results[name], trips))
    if "libuv" in results:
        print("rill/libuv: %.2f" % (results["rill"] / results["libuv"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
