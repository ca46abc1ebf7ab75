#!/usr/bin/env python3
"""run.py -- the runner of `make bench` (see tests/bench/README.md).

Builds nothing: `make bench` builds first. Starts every echo server on loopback,
alternates them (A B C D A B C D ...) for each test, drives them with loadgen,
takes the server's CPU time from /proc/PID/stat (loadgen reads it at both ends of
the measured window), and reports medians and ratios against libuv: a table on the
terminal, results/table.md, results/summary.csv, results/raw.csv, results/syscalls.csv
and results/bench.png (gnuplot).

Settings (environment): BENCH_QUICK=1 (about a minute), BENCH_ROUNDS, BENCH_WARMUP,
BENCH_DURATION (seconds), BENCH_IDLE (idle connections), BENCH_SERVERS and
BENCH_TESTS (comma lists, to run a subset), BENCH_STRACE=0 (skip strace),
BENCH_TLS=0 (skip TLS).
"""
import argparse
import csv
import datetime
import os
import platform
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
BASE = "libuv"          # ratios are against this server


def env_num(name, default):
    v = os.environ.get(name)
    return type(default)(v) if v not in (None, "") else default


class Settings:
    def __init__(self):
        quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        self.quick = quick
        self.rounds = env_num("BENCH_ROUNDS", 3)
        self.warmup = env_num("BENCH_WARMUP", 0.2 if quick else 0.5)
        self.duration = env_num("BENCH_DURATION", 0.3 if quick else 2.5)
        self.idle = env_num("BENCH_IDLE", 2000 if quick else 10000)
        self.strace_counts = (500, 2500) if quick else (2000, 12000)
        self.strace_modes = ("chunk",) if quick else ("chunk", "line")
        self.strace = os.environ.get("BENCH_STRACE", "1") != "0"
        self.tls = os.environ.get("BENCH_TLS", "1") != "0"
        self.servers = [s for s in os.environ.get("BENCH_SERVERS", "").split(",") if s]
        self.tests = [t for t in os.environ.get("BENCH_TESTS", "").split(",") if t]


# ----------------------------------------------------------------------- tests

def tests(st):
    return [
        dict(id="pp1", label="ping-pong, 1 conn, 64 B", mode="chunk",
             args=["--mode", "pingpong", "--conns", "1", "--size", "64"]),
        dict(id="pp100", label="ping-pong, 100 conns, 64 B", mode="chunk",
             args=["--mode", "pingpong", "--conns", "100", "--size", "64"]),
        dict(id="line1", label="line ping-pong, 1 conn, 64 B", mode="line",
             args=["--mode", "line", "--conns", "1", "--size", "64"]),
        dict(id="line100", label="line ping-pong, 100 conns, 64 B", mode="line",
             args=["--mode", "line", "--conns", "100", "--size", "64"]),
        dict(id="bulk", label="bulk echo, 1 conn", mode="chunk",
             args=["--mode", "bulk"]),
        dict(id="connrate", label="connect+line+close, 8 in flight", mode="line",
             args=["--mode", "connrate", "--inflight", "8"]),
        dict(id="idle", label=f"{st.idle} idle + 1 ping-pong", mode="chunk",
             args=["--mode", "idle", "--idle", str(st.idle), "--size", "64"], rss=True,
             extra_timeout=60 + st.idle / 200.0),
    ]


# --------------------------------------------------------------------- servers

def servers(builddir, srcdir, have):
    """name -> argv builder (mode -> argv); a reason string when unavailable."""
    out = {}
    rill = os.path.join(builddir, "examples", "echo_server")
    out["rill"] = (lambda m: [rill, "--host", HOST, "--port", "0", "--mode", m]) \
        if os.access(rill, os.X_OK) else "examples/echo_server is not built (yet)"
    uv = os.path.join(builddir, "tests", "bench", "uv_echo")
    if have.get("libuv") == "no":
        out["libuv"] = "configure did not find libuv (apt-get install libuv1-dev, then ./configure)"
    else:
        out["libuv"] = (lambda m: [uv, "--host", HOST, "--port", "0", "--mode", m]) \
            if os.access(uv, os.X_OK) else "tests/bench/uv_echo is not built"
    ev = os.path.join(builddir, "tests", "bench", "ev_echo")
    if have.get("libevent") == "no":
        out["libevent"] = "configure did not find libevent (apt-get install libevent-dev, then ./configure)"
    else:
        out["libevent"] = (lambda m: [ev, "--host", HOST, "--port", "0", "--mode", m]) \
            if os.access(ev, os.X_OK) else "tests/bench/ev_echo is not built"
    py = os.path.join(srcdir, "tests", "bench", "asyncio_echo.py")
    out["asyncio"] = lambda m: [sys.executable, py, "--host", HOST, "--port", "0", "--mode", m]
    return out


class Server:
    """One running server process we started; stopped by its PID only."""

    def __init__(self, argv, wrap=None, logdir=None):
        self.argv = argv
        self.log = tempfile.NamedTemporaryFile(prefix="bench-srv-", suffix=".log", dir=logdir, delete=False)
        full = (wrap or []) + argv
        self.proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.log)
        self.pid = self.proc.pid    # with a wrapper (strace), the server is its child
        self.port = None
        line = self._first_line(15.0)
        m = re.match(r"Serving on (.*):(\d+)\s*$", line or "")
        if not m:
            self.stop()
            raise RuntimeError(f"{os.path.basename(argv[0])}: no 'Serving on ADDR' line "
                               f"(got {line!r}); stderr: {self.stderr_tail()}")
        self.port = int(m.group(2))
        if wrap:
            self.pid = self._child_of(self.proc.pid)
        # servers print nothing more in chunk/line mode; drain anyway so a pipe never fills
        threading.Thread(target=self._drain, daemon=True).start()

    def _first_line(self, timeout):
        fd = self.proc.stdout.fileno()
        buf = b""
        end = time.monotonic() + timeout
        while b"\n" not in buf:
            left = end - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
                break
            r, _, _ = select.select([fd], [], [], min(left, 0.2))
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
        return buf.split(b"\n")[0].decode(errors="replace")

    def _drain(self):
        try:
            while self.proc.stdout.read(4096):
                pass
        except (OSError, ValueError):
            pass

    @staticmethod
    def _child_of(pid):
        for _ in range(50):
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    kids = f.read().split()
                if kids:
                    return int(kids[0])
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("cannot find the traced server's PID")

    def stderr_tail(self):
        try:
            with open(self.log.name, errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-5:]) or "(empty)"
        except OSError:
            return "(none)"

    def stop(self, timeout=5.0):
        """SIGTERM the server (by PID), then SIGKILL it if it lingers. Returns its exit code."""
        rc = None
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in {self.pid, self.proc.pid}:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                rc = self.proc.wait(5)
        else:
            rc = self.proc.returncode
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass
        return rc


# -------------------------------------------------------------------- loadgen

def parse_result(text):
    for line in text.splitlines():
        if line.startswith("RESULT "):
            d = {}
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                try:
                    d[k] = float(v)
                except ValueError:
                    d[k] = v
            return d
    return None


def prime(loadgen, srv, st):
    """One short connection (200 round trips, then closed) before any measurement, the
    same for every server. Without it a fresh CPython server's first connection stays
    several times slower: glibc's malloc serves each 256 KiB recv() buffer with mmap,
    mremap and munmap until the first EOF frees one unshrunk and raises malloc's dynamic
    mmap threshold. A long-running server is past that point; the bench should be too."""
    run_loadgen(loadgen, srv.port, srv.pid, ["--mode", "pingpong", "--conns", "1", "--count", "200"],
                st, timed=False)


def run_loadgen(loadgen, port, pid, args, st, extra_timeout=0.0, timed=True):
    argv = [loadgen, "--host", HOST, "--port", str(port), "--pid", str(pid)] + args
    if timed:
        argv += ["--warmup", str(st.warmup), "--duration", str(st.duration)]
    limit = st.warmup + st.duration + 30 + extra_timeout
    argv += ["--timeout", str(limit)]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=limit + 10)
    res = parse_result(p.stdout)
    if p.returncode != 0 or res is None:
        raise RuntimeError(f"loadgen failed (rc {p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    return res


# ------------------------------------------------------------------- strace

STRACE_LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?([a-z_0-9]+)\s*$")


def strace_counts(path):
    counts = {}
    with open(path) as f:
        for line in f:
            m = STRACE_LINE.match(line)
            if m and m.group(3) != "total":
                counts[m.group(3)] = counts.get(m.group(3), 0) + int(m.group(1))
    return counts


def strace_one(argv, loadgen, mode, count, st, tmpdir):
    out = os.path.join(tmpdir, f"strace-{os.getpid()}-{count}.txt")
    srv = Server(argv, wrap=["strace", "-f", "-c", "-o", out, "--"])
    try:
        prime(loadgen, srv, st)
        run_loadgen(loadgen, srv.port, srv.pid,
                    ["--mode", "pingpong" if mode == "chunk" else "line", "--conns", "1",
                     "--size", "64", "--count", str(count)], st, extra_timeout=60, timed=False)
    finally:
        srv.stop(timeout=15)
    counts = strace_counts(out)
    os.unlink(out)
    return counts


def strace_server(argv_for, loadgen, mode, st, tmpdir):
    """System calls per round trip in steady state: the difference of two runs of
    N1 and N2 round trips, so start-up, accept and close cancel out."""
    n1, n2 = st.strace_counts
    a = strace_one(argv_for(mode), loadgen, mode, n1, st, tmpdir)
    b = strace_one(argv_for(mode), loadgen, mode, n2, st, tmpdir)
    per = {}
    for k in set(a) | set(b):
        d = (b.get(k, 0) - a.get(k, 0)) / float(n2 - n1)
        if abs(d) >= 0.005:
            per[k] = d
    return sum(per.values()), per


# ----------------------------------------------------------------- reporting

def med(xs):
    xs = [x for x in xs if x is not None and x >= 0]
    return statistics.median(xs) if xs else None


def fmt(x, digits=None):
    if x is None:
        return "-"
    if digits is not None:
        return f"{x:.{digits}f}"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def md_table(header, rows):
    w = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w[i]) if i < 2 else str(c).rjust(w[i])
                                        for i, c in enumerate(r)) + " |"
    sep = "|" + "|".join("-" * (w[i] + 1) + ("-" if i < 2 else ":") for i in range(len(header))) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def machine_info(builddir):
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            models = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
        info["cpu"] = f"{models[0] if models else platform.processor()} x {os.cpu_count()}"
    except OSError:
        info["cpu"] = platform.processor()
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        info["memory"] = f"{kb / 1048576:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    info["kernel"] = platform.release()
    virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True) \
        if shutil.which("systemd-detect-virt") else None
    if virt and virt.stdout.strip():
        info["virtualization"] = virt.stdout.strip()
    for lib in ("libuv", "libevent", "wolfssl"):
        p = subprocess.run(["pkg-config", "--modversion", lib], capture_output=True, text=True)
        if p.returncode == 0:
            info[lib] = p.stdout.strip()
    info["python"] = platform.python_version()
    g = subprocess.run(["git", "-C", builddir, "describe", "--always", "--dirty"], capture_output=True, text=True)
    if g.returncode == 0:
        info["rill"] = g.stdout.strip()
    info["date"] = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return info


def plot(outdir, summary, test_list, names):
    if not shutil.which("gnuplot"):
        print("bench: gnuplot not found: no plot")
        return
    if BASE not in names:
        print(f"bench: no {BASE} results to compare with: no plot")
        return
    dat = os.path.join(outdir, "plot.dat")
    with open(dat, "w") as f:
        f.write("# test " + " ".join(f"{n}_rate {n}_cpu" for n in names) + "\n")
        for t in test_list:
            vals = []
            for n in names:
                s = summary.get((t["id"], n), {})
                vals += [s.get("rate_ratio"), s.get("cpu_ratio")]
            f.write(t["id"] + " " + " ".join(f"{v:.4f}" if v else "NaN" for v in vals) + "\n")
    png = os.path.join(outdir, "bench.png")
    script = f"""
set terminal pngcairo size 1200,800 noenhanced font ',10'
set output '{png}'
set multiplot layout 2,1 title 'rill benchmarks: each server relative to libuv (medians)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y 2
set grid ytics
set key outside right top
set yrange [0.001953125:512]
set ytics ("1/256" 0.00390625, "1/64" 0.015625, "1/16" 0.0625, "1/4" 0.25, "1" 1, "4" 4, "16" 16, "64" 64, "256" 256)
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2
set title 'rate / libuv rate (higher is better)'
plot '{dat}' using {2}:xtic(1) title '{names[0]}'""" + "".join(
        f", '' using {2 + 2 * i} title '{n}'" for i, n in enumerate(names) if i > 0) + f"""
set title 'server CPU per operation / libuv (lower is better)'
plot '{dat}' using {3}:xtic(1) title '{names[0]}'""" + "".join(
        f", '' using {3 + 2 * i} title '{n}'" for i, n in enumerate(names) if i > 0) + """
unset multiplot
"""
    p = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if p.returncode != 0:
        print("bench: gnuplot failed:", p.stderr.strip())
    else:
        print(f"bench: plot written to {png}")


# ---------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--builddir", default=".")
    ap.add_argument("--srcdir", default=None)
    ap.add_argument("--out", default=None, help="results directory (default SRCDIR/tests/bench/results)")
    ap.add_argument("--have-libuv", default="yes")
    ap.add_argument("--have-libevent", default="yes")
    a = ap.parse_args()
    st = Settings()
    t_start = time.monotonic()
    builddir = os.path.abspath(a.builddir)
    srcdir = os.path.abspath(a.srcdir or builddir)
    outdir = os.path.abspath(a.out or os.path.join(srcdir, "tests", "bench", "results"))
    os.makedirs(outdir, exist_ok=True)
    st.outdir = outdir
    loadgen = os.path.join(builddir, "tests", "bench", "loadgen")
    if not os.access(loadgen, os.X_OK):
        sys.exit("bench: tests/bench/loadgen is not built: run `make bench`")

    # 10 000 idle connections: soft descriptor limit up to the hard one (inherited)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < st.idle + 100:
        print(f"bench: RLIMIT_NOFILE hard limit {hard} < {st.idle + 100}: idle connections lowered")
        st.idle = max(100, hard - 200)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    avail = servers(builddir, srcdir, {"libuv": a.have_libuv, "libevent": a.have_libevent})
    order = ["rill", "libuv", "libevent", "asyncio"]
    if st.servers:
        order = [s for s in order if s in st.servers]
    names = []
    for n in order:
        if isinstance(avail[n], str):
            print(f"bench: {n} skipped: {avail[n]}")
        else:
            names.append(n)
    test_list = [t for t in tests(st) if not st.tests or t["id"] in st.tests]

    # probe: each server answers in both modes, else it is left out (with the reason)
    for n in list(names):
        for mode in ("chunk", "line"):
            try:
                srv = Server(avail[n](mode))
                try:
                    run_loadgen(loadgen, srv.port, srv.pid,
                                ["--mode", "pingpong", "--count", "50", "--conns", "2"], st, timed=False)
                finally:
                    srv.stop()
            except Exception as e:   # noqa: BLE001 -- report and go on without it
                print(f"bench: {n} skipped: {mode} mode does not work: {e}")
                names.remove(n)
                break
    if not names:
        sys.exit("bench: no server to measure")

    info = machine_info(builddir)
    print("bench: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(f"bench: servers {' '.join(names)}; {st.rounds} rounds, warmup {st.warmup} s, "
          f"{st.duration} s measured per run" + (" (BENCH_QUICK)" if st.quick else ""))

    raw = []
    for t in test_list:
        for r in range(st.rounds):
            for n in names:
                row = dict(test=t["id"], round=r + 1, server=n)
                try:
                    srv = Server(avail[n](t["mode"]))
                    try:
                        prime(loadgen, srv, st)
                        res = run_loadgen(loadgen, srv.port, srv.pid, t["args"], st,
                                          extra_timeout=t.get("extra_timeout", 0))
                    finally:
                        rc = srv.stop()
                    row.update(res)
                    if rc not in (0, None):
                        print(f"bench: note: {n} exited with {rc} after {t['id']}")
                except Exception as e:   # noqa: BLE001 -- one failed run is reported, not fatal
                    print(f"bench: {t['id']} round {r + 1} {n}: FAILED: {e}")
                    row["failed"] = str(e)
                raw.append(row)
                print(f"  {t['id']:9} round {r + 1} {n:9} " +
                      (f"{row['rate']:>12,.1f} {row['unit']:7} cpu/op {row['cpu_us_per_op']:8.2f} us"
                       f"  gen {row['gen_cpu']:.2f}" +
                       (f"  rss {row['srv_rss_kb']:.0f} kB" if t.get("rss") else "")
                       if "rate" in row else "failed"), flush=True)

    # medians and ratios
    summary = {}
    for t in test_list:
        for n in names:
            rows = [x for x in raw if x["test"] == t["id"] and x["server"] == n and "rate" in x]
            summary[(t["id"], n)] = dict(
                rate=med([x["rate"] for x in rows]), cpu=med([x["cpu_us_per_op"] for x in rows]),
                gen=med([x["gen_cpu"] for x in rows]), rss=med([x["srv_rss_kb"] for x in rows]),
                rss0=med([x["srv_rss0_kb"] for x in rows]), setup=med([x["setup_s"] for x in rows]),
                unit=rows[0]["unit"] if rows else "", n=len(rows))
        base = summary.get((t["id"], BASE))
        for n in names:
            s = summary[(t["id"], n)]
            s["rate_ratio"] = s["rate"] / base["rate"] if base and base["rate"] and s["rate"] else None
            s["cpu_ratio"] = s["cpu"] / base["cpu"] if base and base["cpu"] and s["cpu"] else None

    # system calls per round trip (strace -c -f, steady state by differencing)
    sysc = {}
    if st.strace and shutil.which("strace"):
        tmpdir = tempfile.mkdtemp(prefix="bench-strace-")
        for mode in st.strace_modes:
            for n in names:
                try:
                    sysc[(n, mode)] = strace_server(avail[n], loadgen, mode, st, tmpdir)
                    tot, per = sysc[(n, mode)]
                    print(f"  strace {mode:5} {n:9} {tot:.2f} syscalls/rt: " +
                          ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])))
                except Exception as e:   # noqa: BLE001
                    print(f"bench: strace {n} {mode}: FAILED: {e}")
        shutil.rmtree(tmpdir, ignore_errors=True)
    elif st.strace:
        print("bench: strace not found: no system call counts")

    # TLS (rill vs a plain wolfSSL blocking loop), when rill's TLS server works
    tls_rows = []
    if st.tls and "rill" in names:
        try:
            import tls_bench   # tests/bench/tls_bench.py
            tls_rows = tls_bench.run(builddir, srcdir, loadgen, st, Server)
        except ImportError:
            pass
        except Exception as e:   # noqa: BLE001
            print(f"bench: TLS part skipped: {e}")

    # ------------------------------------------------------------- output
    with open(os.path.join(outdir, "raw.csv"), "w", newline="") as f:
        keys = ["test", "round", "server", "rate", "unit", "cpu_us_per_op", "srv_cpu_s", "ops", "secs",
                "gen_cpu", "srv_rss0_kb", "srv_rss_kb", "setup_s", "errors", "failed"]
        w = csv.DictWriter(f, keys, extrasaction="ignore")
        w.writeheader()
        for x in raw:
            w.writerow(x)
    with open(os.path.join(outdir, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["test", "server", "rate_median", "unit", "rate_vs_libuv", "cpu_us_per_op_median",
                    "cpu_vs_libuv", "loadgen_cpu", "rss_kb", "rss0_kb", "runs"])
        for t in test_list:
            for n in names:
                s = summary[(t["id"], n)]
                w.writerow([t["id"], n, s["rate"], s["unit"], s["rate_ratio"], s["cpu"], s["cpu_ratio"],
                            s["gen"], s["rss"] if t.get("rss") else "", s["rss0"] if t.get("rss") else "", s["n"]])
    with open(os.path.join(outdir, "syscalls.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["server", "mode", "syscalls_per_rt", "breakdown"])
        for (n, mode), (tot, per) in sorted(sysc.items()):
            w.writerow([n, mode, f"{tot:.3f}",
                        " ".join(f"{k}={v:.3f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))])

    header = ["test", "server", "rate", "unit", "rate/libuv", "srv CPU us/op", "CPU/libuv", "loadgen CPU", "RSS kB"]
    rows = []
    for t in test_list:
        for n in names:
            s = summary[(t["id"], n)]
            rss = ""
            if t.get("rss") and s["rss"] is not None:
                rss = f"{s['rss']:.0f}" + (f" (from {s['rss0']:.0f})" if s["rss0"] else "")
            rows.append([t["label"] if n == names[0] else "", n, fmt(s["rate"]), s["unit"],
                         fmt(s["rate_ratio"], 2), fmt(s["cpu"]), fmt(s["cpu_ratio"], 2),
                         fmt(s["gen"], 2), rss])
    table = md_table(header, rows)
    sys_table = ""
    if sysc:
        modes = [m for m in st.strace_modes if any(k[1] == m for k in sysc)]
        srows = []
        for n in names:
            cells = [n]
            for m in modes:
                if (n, m) in sysc:
                    tot, per = sysc[(n, m)]
                    cells.append(f"{tot:.2f}")
                    cells.append(", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])))
                else:
                    cells += ["-", ""]
            srows.append(cells)
        sh = ["server"]
        for m in modes:
            sh += [f"{m}: syscalls/rt", f"{m}: per round trip"]
        sys_table = md_table(sh, srows)
    machine = ", ".join(f"{k} {v}" for k, v in info.items())
    text = [f"Machine: {machine}.",
            f"Settings: {st.rounds} alternating rounds, warmup {st.warmup} s, {st.duration} s measured; "
            f"medians; ratios against libuv; server CPU = utime+stime from /proc/PID/stat.", "",
            table, ""]
    if sys_table:
        n1, n2 = st.strace_counts
        text += [f"System calls per round trip (strace -c -f, 1 connection, 64 B, steady state: "
                 f"the difference of {n2} and {n1} round trips):", "", sys_table, ""]
    if tls_rows:
        text += ["TLS (1 connection; handshakes: new connection each, 8 in flight):", "",
                 md_table(tls_rows[0], tls_rows[1:]), ""]
    text.append(f"Total time: {time.monotonic() - t_start:.0f} s.")
    with open(os.path.join(outdir, "table.md"), "w") as f:
        f.write("\n".join(text) + "\n")
    print()
    print("\n".join(text))
    plot(outdir, summary, test_list, names)
    print(f"bench: results in {outdir}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
