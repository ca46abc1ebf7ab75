"""tls_bench -- the TLS part of `make bench`, called by run.py last.

rill's `echo_server --tls CERT KEY --mode chunk` against wolf_echo (a plain wolfSSL
echo server in a blocking loop: the crypto limit), on the same throw-away ECDSA P-256
certificate, driven by tlsgen: bulk MB/s over one connection and full handshakes per
second with 8 in flight. Alternating rounds, medians, rill / wolfSSL ratios.
"""
import csv
import os
import shutil
import statistics
import subprocess
import tempfile

HOST = "127.0.0.1"


def make_cert(d):
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("openssl could not make the certificate: " + p.stderr.strip())
    return cert, key


def parse(text):
    for line in text.splitlines():
        if line.startswith("RESULT "):
            out = {}
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
            return out
    return None


def tlsgen(gen, port, pid, args, st):
    limit = st.warmup + st.duration + 40
    argv = [gen, "--host", HOST, "--port", str(port), "--pid", str(pid), "--warmup", str(st.warmup),
            "--duration", str(st.duration), "--timeout", str(limit)] + args
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=limit + 10)
    r = parse(p.stdout)
    if p.returncode != 0 or r is None:
        raise RuntimeError(f"tlsgen failed (rc {p.returncode}): {p.stderr.strip()}")
    return r


def run(builddir, srcdir, loadgen, st, Server):
    """Returns [header, rows...] for the report, or [] when the TLS part cannot run."""
    gen = os.path.join(builddir, "tests", "bench", "tlsgen")
    wolf = os.path.join(builddir, "tests", "bench", "wolf_echo")
    rill = os.path.join(builddir, "examples", "echo_server")
    for p in (gen, wolf):
        if not os.access(p, os.X_OK):
            raise RuntimeError(f"{os.path.relpath(p, builddir)} is not built")
    if not shutil.which("openssl"):
        raise RuntimeError("no openssl command to make the certificate")
    d = tempfile.mkdtemp(prefix="bench-tls-")
    try:
        cert, key = make_cert(d)
        servers = {
            "rill": [rill, "--host", HOST, "--port", "0", "--tls", cert, key, "--mode", "chunk"],
            "wolfSSL loop": [wolf, "--host", HOST, "--port", "0", "--cert", cert, "--key", key],
        }
        tests = [("tls_bulk", "TLS bulk echo, 1 conn", ["--mode", "bulk"]),
                 ("tls_hs", "TLS handshakes, 8 in flight", ["--mode", "handshake", "--inflight", "8"])]
        # probe rill's TLS server first: it may not work yet
        srv = Server(servers["rill"])
        try:
            tlsgen(gen, srv.port, srv.pid, ["--mode", "handshake", "--inflight", "1"],
                   type("S", (), dict(warmup=0.0, duration=0.2))())
        finally:
            srv.stop()
        raw = []
        for tid, label, args in tests:
            for r in range(st.rounds):
                for name, argv in servers.items():
                    row = dict(test=tid, round=r + 1, server=name)
                    try:
                        srv = Server(argv)
                        try:
                            row.update(tlsgen(gen, srv.port, srv.pid, args, st))
                        finally:
                            srv.stop()
                    except Exception as e:   # noqa: BLE001 -- one failed run is reported
                        row["failed"] = str(e)
                        print(f"bench: {tid} round {r + 1} {name}: FAILED: {e}")
                    raw.append(row)
                    if "rate" in row:
                        print(f"  {tid:9} round {r + 1} {name:12} {row['rate']:>10,.1f} {row['unit']:5} "
                              f"cpu/op {row['cpu_us_per_op']:9.2f} us  gen {row['gen_cpu']:.2f}", flush=True)
        ciphers = sorted({x["cipher"] for x in raw if isinstance(x.get("cipher"), str) and x["cipher"] != "-"})
        if ciphers:
            tests[0] = (tests[0][0], f"{tests[0][1]} ({', '.join(ciphers)})", tests[0][2])
        header = ["test", "server", "rate", "unit", "rate/wolfSSL", "srv CPU us/op", "CPU/wolfSSL", "client CPU"]
        rows = [header]
        outdir_rows = []
        for tid, label, _ in tests:
            med = {}
            for name in servers:
                rs = [x for x in raw if x["test"] == tid and x["server"] == name and "rate" in x]
                m = lambda k: statistics.median([x[k] for x in rs if x[k] >= 0]) if rs else None  # noqa: E731
                med[name] = dict(rate=m("rate"), cpu=m("cpu_us_per_op"), gen=m("gen_cpu"),
                                 unit=rs[0]["unit"] if rs else "")
            base = med["wolfSSL loop"]
            for i, name in enumerate(servers):
                s = med[name]
                rr = s["rate"] / base["rate"] if s["rate"] and base["rate"] else None
                cr = s["cpu"] / base["cpu"] if s["cpu"] and base["cpu"] else None
                f = lambda x, d=2: "-" if x is None else f"{x:,.{d}f}"  # noqa: E731
                rows.append([label if i == 0 else "", name, f(s["rate"], 1), s["unit"], f(rr), f(s["cpu"], 1),
                             f(cr), f(s["gen"])])
                outdir_rows.append([tid, name, s["rate"], s["unit"], rr, s["cpu"], cr, s["gen"]])
        out = os.path.join(st.outdir, "tls.csv")
        with open(out, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["test", "server", "rate_median", "unit", "rate_vs_wolfssl", "cpu_us_per_op_median",
                        "cpu_vs_wolfssl", "client_cpu"])
            w.writerows(outdir_rows)
        with open(out.replace("tls.csv", "tls_raw.csv"), "w", newline="") as fh:
            w = csv.DictWriter(fh, ["test", "round", "server", "rate", "unit", "cpu_us_per_op", "srv_cpu_s",
                                    "ops", "secs", "gen_cpu", "errors", "failed"], extrasaction="ignore")
            w.writeheader()
            w.writerows(raw)
        return rows
    finally:
        shutil.rmtree(d, ignore_errors=True)
