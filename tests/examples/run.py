#!/usr/bin/env python3
"""Checks the example programs against docs/examples.md, with peers that are not rill.

usage: run.py EXAMPLES_DIR [--no-tls]

Every peer is Python (asyncio, http.server, ssl, plain sockets) or curl; every
program gets --dns pointing at an unused loopback port, so nothing reaches the
system's DNS. Each check prints one line; the last line is `N passed, N failed`.
--no-tls leaves out the TLS checks (for development only: `make check` runs them,
and they fail while TLS is not built).
"""
import asyncio
import hashlib
import http.server
import os
import queue
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

TIMEOUT = 15          # seconds, for any one program run
MESSAGE = "Hello World!"

# ----------------------------------------------------------------- helpers


def unused_port(kind=socket.SOCK_STREAM):
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DNS = "127.0.0.1:%d" % unused_port(socket.SOCK_DGRAM)


class Program:
    """A long-running program (echo_server) with its output collected by threads."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.out, self.err = [], []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.out, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err, False), daemon=True).start()

    def _pump(self, f, sink, to_queue):
        for line in f:
            sink.append(line.rstrip("\n"))
            if to_queue:
                self.lines.put(line.rstrip("\n"))
        if to_queue:
            self.lines.put(None)

    def next_line(self, timeout=TIMEOUT):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def lines_until(self, n, timeout=TIMEOUT):
        """The next n stdout lines (fewer if the program ends or time runs out)."""
        got, deadline = [], time.monotonic() + timeout
        while len(got) < n:
            line = self.next_line(max(0.0, deadline - time.monotonic()))
            if line is None:
                break
            got.append(line)
        return got

    def stop(self, sig=signal.SIGTERM, timeout=TIMEOUT):
        """Signals the program by its PID and waits; returns its exit code (None: killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


started = []   # every Program, killed by PID at the end whatever happened


def start(argv):
    p = Program(argv)
    started.append(p)
    return p


def run(argv, stdin_text=None, timeout=TIMEOUT, env=None):
    """Runs a program to completion: (exit code, stdout lines, stderr lines)."""
    try:
        r = subprocess.run(argv, input=stdin_text, capture_output=True, text=True, timeout=timeout,
                           stdin=None if stdin_text is not None else subprocess.DEVNULL,
                           env=dict(os.environ, **env) if env else None)
    except subprocess.TimeoutExpired as e:
        raise Failure("timed out after %ss: %s" % (timeout, " ".join(argv))) from e
    return r.returncode, r.stdout.splitlines(), r.stderr.splitlines()


class Failure(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failure(what)


def expect_eq(got, want, what):
    if got != want:
        raise Failure("%s: got %r, want %r" % (what, got, want))


def serving_addr(server):
    line = server.next_line()
    if line is None or not line.startswith("Serving on "):
        raise Failure("first line %r, want 'Serving on ADDR' (stderr: %r)" % (line, server.err))
    return line[len("Serving on "):]


def recv_all(sock):
    chunks = []
    while True:
        b = sock.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


# --------------------------------------------------------------- peers


class AsyncioServer:
    """An asyncio server on its own thread: handler(reader, writer, self)."""

    def __init__(self, handler, ssl_ctx=None):
        self.handler, self.ssl_ctx = handler, ssl_ctx
        self.received = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(TIMEOUT):
            raise Failure("the Python server did not start")

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.server = await asyncio.start_server(
                lambda r, w: self.handler(r, w, self), "127.0.0.1", 0, ssl=self.ssl_ctx)
            self.port = self.server.sockets[0].getsockname()[1]
            self.ready.set()
        self.loop.run_until_complete(main())
        self.loop.run_forever()
        self.server.close()
        # Handlers still running (a peer's close not yet seen): let them end, then cancel.
        tasks = asyncio.all_tasks(self.loop)
        if tasks:
            self.loop.run_until_complete(asyncio.wait(tasks, timeout=2))
        tasks = asyncio.all_tasks(self.loop)
        self.loop.set_exception_handler(lambda loop, context: None)
        for t in tasks:
            t.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


async def close_writer(writer):
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 5)
    except (asyncio.TimeoutError, OSError, ssl.SSLError):
        pass


async def seed_echo(reader, writer, srv):
    """The seed's handle_echo: one read of up to 100 bytes, echoed, then close."""
    data = await reader.read(100)
    srv.received.append(data)
    writer.write(data)
    await writer.drain()
    await close_writer(writer)


async def line_echo(reader, writer, srv):
    while True:
        line = await reader.readline()
        if not line:
            break
        srv.received.append(line)
        writer.write(line)
        await writer.drain()
    await close_writer(writer)


class HeadHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", "13")
        self.send_header("X-Rill-Test", "headers")
        self.end_headers()

    def log_message(self, *args):
        pass


class HTTPServer:
    def __init__(self, ssl_ctx=None):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HeadHandler)
        self.httpd.daemon_threads = True
        if ssl_ctx is not None:
            self.httpd.socket = ssl_ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(TIMEOUT)


def make_pki(tmp):
    """A test CA and a server certificate for localhost and 127.0.0.1, made now."""
    def openssl(*args):
        r = subprocess.run(["openssl", *args], cwd=tmp, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise Failure("openssl %s: %s" % (args[0], r.stderr.strip()))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=rill examples test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(tmp, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return tuple(os.path.join(tmp, n) for n in ("ca.pem", "server.pem", "server.key"))


def proc_status_kib(pid, field):
    """VmRSS, VmHWM, ... of a process, in KiB, from /proc (None where there is none)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- checks


class Runner:
    def __init__(self, bindir, tls):
        self.bindir, self.tls = bindir, tls
        self.passed = self.failed = 0
        self.tmp = tempfile.mkdtemp(prefix="rill-examples.")
        self._pki = None

    def prog(self, name, *args):
        return [os.path.join(self.bindir, name), "--dns", DNS, *args]

    def check(self, name, fn):
        try:
            detail = fn()
        except Failure as e:
            self.failed += 1
            print("FAIL %s: %s" % (name, e), flush=True)
            return
        except Exception as e:   # a bug in a check is a failed check, not a crash
            self.failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
            return
        self.passed += 1
        print("ok   %s%s" % (name, " (%s)" % detail if detail else ""), flush=True)

    def pki(self):
        if self._pki is None:
            if shutil.which("openssl") is None:
                raise Failure("the openssl command is needed to make the test certificates")
            self._pki = make_pki(self.tmp)
        return self._pki

    def server_ctx(self):
        ca, cert, key = self.pki()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        return ctx

    def client_ctx(self):
        ca, _, _ = self.pki()
        return ssl.create_default_context(cafile=ca)

    # ----------------------------------------------------- common CLI

    def cli(self):
        usage_args = {"echo_client": [], "echo_server": ["--mode", "sideways"], "http_headers": [],
                      "wait_for_data": ["extra"], "select_embed": ["127.0.0.1"], "chat_server": ["--max", "0"],
                      "run_lines": []}
        for name in ("echo_client", "echo_server", "http_headers", "wait_for_data", "select_embed",
                     "chat_server", "run_lines"):
            def help_(name=name):
                rc, out, err = run(self.prog(name, "--help"))
                expect_eq(rc, 0, "exit code")
                expect(out and out[0].startswith("usage: "), "stdout %r has no usage line" % out)
            self.check("%s --help exits 0 with usage on stdout" % name, help_)

            def bad(name=name, args=("--bogus",)):
                rc, out, err = run(self.prog(name, *args))
                expect_eq(rc, 2, "exit code")
                expect(len(err) == 1 and err[0], "stderr should be one line, got %r" % err)
                expect_eq(out, [], "stdout")
                return err[0]
            self.check("%s --bogus exits 2 with one stderr line" % name, bad)
            self.check("%s %s exits 2 with one stderr line" % (name, " ".join(usage_args[name]) or "(no arguments)"),
                       lambda name=name: bad(name, usage_args[name]))

    # ------------------------------------------------------ echo_client

    def echo_client(self):
        def plain():
            with AsyncioServer(seed_echo) as srv:
                rc, out, err = run(self.prog("echo_client", "127.0.0.1", str(srv.port), MESSAGE))
            expect_eq((rc, out), (0, ["Send: 'Hello World!'", "Received: 'Hello World!'"]), "exit code, stdout")
            expect_eq(err, [], "stderr")
            expect_eq(srv.received, [MESSAGE.encode()], "what the Python server received")
        self.check("echo_client against the seed's asyncio echo server", plain)

        def numeric_trace():
            # A literal address is answered without DNS, and the trace says so.
            with AsyncioServer(seed_echo) as srv:
                rc, _, err = run(self.prog("echo_client", "127.0.0.1", str(srv.port), MESSAGE),
                                 env={"RILL_TRACE": "1"})
            expect_eq(rc, 0, "exit code")
            lines = [l for l in err if " resolve NEW -> " in l]
            expect(len(lines) == 1 and "127.0.0.1" in lines[0] and "NUMERIC (no query sent" in lines[0],
                   "the resolve trace line: %r" % lines)
            return lines[0]
        self.check("echo_client 127.0.0.1: the trace says no DNS query was sent", numeric_trace)

        def refused():
            rc, out, err = run(self.prog("echo_client", "127.0.0.1", str(unused_port()), MESSAGE))
            expect_eq(rc, 1, "exit code")
            expect(len(err) == 1 and err[0].startswith("error: ") and "connection refused" in err[0],
                   "stderr %r" % err)
            return err[0]
        self.check("echo_client to a closed port exits 1 with error:", refused)

        if not self.tls:
            return

        def tls(*extra, host="127.0.0.1"):
            ca, _, _ = self.pki()
            with AsyncioServer(seed_echo, self.server_ctx()) as srv:
                rc, out, err = run(self.prog("echo_client", "--tls", "--cafile", ca, *extra,
                                             host, str(srv.port), MESSAGE))
            expect_eq((rc, out, err), (0, ["Send: 'Hello World!'", "Received: 'Hello World!'"], []),
                      "exit code, stdout, stderr")
            expect_eq(srv.received, [MESSAGE.encode()], "what the Python server received")
        self.check("echo_client --tls --cafile CA 127.0.0.1 against a Python ssl asyncio server", tls)
        self.check("echo_client --tls --cafile CA --server-hostname localhost 127.0.0.1",
                   lambda: tls("--server-hostname", "localhost"))

        def wrong_name():
            ca, _, _ = self.pki()
            with AsyncioServer(seed_echo, self.server_ctx()) as srv:
                rc, out, err = run(self.prog("echo_client", "--tls", "--cafile", ca, "--server-hostname",
                                             "wrong.example", "127.0.0.1", str(srv.port), MESSAGE))
            expect_eq(rc, 1, "exit code")
            expect(len(err) == 1 and err[0].startswith("error: "), "stderr %r" % err)
            return err[0]
        self.check("echo_client --tls with a wrong --server-hostname exits 1 with error:", wrong_name)

    # ------------------------------------------------------ echo_server

    def server(self, *args):
        srv = start(self.prog("echo_server", *args))
        return srv, serving_addr(srv)

    def tcp_once(self, sock_family, connect_to, srv, client_ctx=None, server_hostname=None):
        with socket.socket(sock_family, socket.SOCK_STREAM) as raw:
            raw.settimeout(TIMEOUT)
            raw.connect(connect_to)
            s = client_ctx.wrap_socket(raw, server_hostname=server_hostname) if client_ctx else raw
            me = s.getsockname()
            s.sendall(MESSAGE.encode())
            got = recv_all(s)
        expect_eq(got, MESSAGE.encode(), "echoed bytes")
        lines = srv.lines_until(3)
        expect_eq(len(lines), 3, "number of server lines after one connection (%r)" % lines)
        if sock_family == socket.AF_INET:
            expect_eq(lines[0], "Received 'Hello World!' from %s:%d" % me, "first line")
        else:
            expect(lines[0].startswith("Received 'Hello World!' from "), "first line %r" % lines[0])
        expect_eq(lines[1:], ["Send: 'Hello World!'", "Close the connection"], "next lines")

    def echo_server(self):
        def once_tcp():
            srv, addr = self.server("--host", "127.0.0.1", "--port", "0")
            host, port = addr.rsplit(":", 1)
            expect_eq(host, "127.0.0.1", "Serving on host")
            self.tcp_once(socket.AF_INET, ("127.0.0.1", int(port)), srv)
            self.tcp_once(socket.AF_INET, ("127.0.0.1", int(port)), srv)
            expect_eq(srv.stop(signal.SIGTERM), 0, "exit code after SIGTERM")
            expect_eq(srv.err, [], "stderr")
            return addr
        self.check("echo_server --mode once (default) over TCP, two clients, then SIGTERM exits 0", once_tcp)

        def sigint():
            srv, _ = self.server("--port", "0")
            expect_eq(srv.stop(signal.SIGINT), 0, "exit code after SIGINT")
        self.check("echo_server SIGINT exits 0", sigint)

        def sigterm_with_idle_client():
            srv, addr = self.server("--port", "0", "--mode", "line")
            with socket.create_connection(("127.0.0.1", int(addr.rsplit(":", 1)[1])), TIMEOUT) as s:
                s.sendall(b"ping\n")
                expect_eq(s.recv(100), b"ping\n", "echo")
                expect_eq(srv.stop(signal.SIGTERM), 0, "exit code after SIGTERM with a client connected")
                expect_eq(recv_all(s), b"", "the client sees EOF")
        self.check("echo_server SIGTERM with a connected client: graceful close, exits 0",
                   sigterm_with_idle_client)

        def chunk(family="tcp"):
            if family == "tcp":
                srv, addr = self.server("--port", "0", "--mode", "chunk")
                target, fam = ("127.0.0.1", int(addr.rsplit(":", 1)[1])), socket.AF_INET
            else:
                path = os.path.join(self.tmp, "chunk.sock")
                srv, addr = self.server("--unix", path, "--mode", "chunk")
                expect_eq(addr, path, "Serving on")
                target, fam = path, socket.AF_UNIX
            payload = random.Random(7).randbytes(4 << 20)
            results = []
            for _ in range(2):    # two connections at once
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.settimeout(TIMEOUT)
                s.connect(target)

                def send(s=s):
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                t = threading.Thread(target=send, daemon=True)
                t.start()
                results.append((s, t))
            for s, t in results:
                got = recv_all(s)
                t.join(TIMEOUT)
                s.close()
                expect(got == payload, "echoed %d bytes, want the same %d bytes" % (len(got), len(payload)))
            expect_eq(srv.stop(), 0, "exit code after SIGTERM")
            expect_eq(srv.out, ["Serving on " + addr], "stdout (nothing per connection)")
            return "2 x 4 MiB"
        self.check("echo_server --mode chunk over TCP echoes every byte", chunk)
        self.check("echo_server --mode chunk --unix PATH echoes every byte", lambda: chunk("unix"))

        def line(family="tcp"):
            if family == "tcp":
                srv, addr = self.server("--port", "0", "--mode", "line")
                s = socket.create_connection(("127.0.0.1", int(addr.rsplit(":", 1)[1])), TIMEOUT)
            else:
                path = os.path.join(self.tmp, "line.sock")
                srv, addr = self.server("--unix", path, "--mode", "line")
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(TIMEOUT)
                s.connect(path)
            with s:
                # one line at a time, as a request/response client would
                f = s.makefile("rwb")
                for i in range(50):
                    f.write(b"line %d\n" % i)
                    f.flush()
                    expect_eq(f.readline(), b"line %d\n" % i, "reply %d" % i)
                # then many at once, and a last line without its newline
                bulk = b"".join(b"bulk %05d %s\n" % (i, b"x" * (i % 300)) for i in range(20000)) + b"tail"
                t = threading.Thread(target=lambda: (s.sendall(bulk), s.shutdown(socket.SHUT_WR)), daemon=True)
                t.start()
                got = f.read()
                t.join(TIMEOUT)
                expect(got == bulk, "bulk echo: got %d bytes, want %d" % (len(got), len(bulk)))
            expect_eq(srv.stop(), 0, "exit code after SIGTERM")
            expect_eq(srv.out, ["Serving on " + addr], "stdout")
        self.check("echo_server --mode line over TCP echoes line by line", line)
        self.check("echo_server --mode line --unix PATH echoes line by line", lambda: line("unix"))

        def limit():
            srv, addr = self.server("--port", "0", "--mode", "line", "--limit", "64")
            with socket.create_connection(("127.0.0.1", int(addr.rsplit(":", 1)[1])), TIMEOUT) as s:
                s.sendall(b"short\n")
                expect_eq(s.recv(100), b"short\n", "short line echoed")
                s.sendall(b"y" * 1000 + b"\n")
                got = recv_all(s)
            expect_eq(got, b"", "after a line over --limit: closed, nothing echoed")
            expect_eq(srv.stop(), 0, "exit code after SIGTERM")
        self.check("echo_server --mode line --limit 64 closes on a longer line", limit)

        def once_unix():
            path = os.path.join(self.tmp, "once.sock")
            srv, addr = self.server("--unix", path)
            expect_eq(addr, path, "Serving on")
            self.tcp_once(socket.AF_UNIX, path, srv)
            expect_eq(srv.stop(), 0, "exit code after SIGTERM")
            expect(not os.path.exists(path), "the socket file is removed on close")
        self.check("echo_server --unix PATH (mode once)", once_unix)

        def in_use():
            with socket.socket() as busy:
                busy.bind(("127.0.0.1", 0))
                busy.listen()
                rc, out, err = run(self.prog("echo_server", "--port", str(busy.getsockname()[1])))
            expect_eq(rc, 1, "exit code")
            expect(len(err) == 1 and err[0].startswith("error: "), "stderr %r" % err)
            return err[0]
        self.check("echo_server on a port in use exits 1 with error:", in_use)

        if not self.tls:
            return

        def tls():
            ca, cert, key = self.pki()
            srv, addr = self.server("--port", "0", "--tls", cert, key)
            port = int(addr.rsplit(":", 1)[1])
            self.tcp_once(socket.AF_INET, ("127.0.0.1", port), srv, self.client_ctx(), "localhost")
            expect_eq(srv.stop(), 0, "exit code after SIGTERM")
        self.check("echo_server --tls CERT KEY against a Python ssl client", tls)

    # ----------------------------------------------------- http_headers

    def want_headers(self, url, ca=None):
        """What curl -sI prints for url (or, without curl, what http.client sees)."""
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        if shutil.which("curl"):
            argv = ["curl", "-q", "-sS", "-I", "--noproxy", "*", "--max-time", str(TIMEOUT),
                    "--resolve", "localhost:%d:127.0.0.1" % port]
            if ca:
                argv += ["--cacert", ca]
            rc, out, err = run(argv + [url])
            expect_eq(rc, 0, "curl's exit code (%r)" % err)
            return "curl", [line.rstrip("\r") for line in out if line.rstrip("\r")]
        import http.client
        host = url.split("//")[1].rsplit(":", 1)[0]

        class Conn(http.client.HTTPConnection):
            def connect(self):   # always 127.0.0.1: no name lookup at all
                self.sock = socket.create_connection(("127.0.0.1", port), TIMEOUT)
                if ca:
                    self.sock = ssl.create_default_context(cafile=ca).wrap_socket(self.sock, server_hostname=host)
        conn = Conn(host, port, timeout=TIMEOUT)
        conn.request("HEAD", "/")
        r = conn.getresponse()
        lines = ["HTTP/%s %d %s" % ({10: "1.0", 11: "1.1"}[r.version], r.status, r.reason)]
        lines += ["%s: %s" % kv for kv in r.getheaders()]
        conn.close()
        return "http.client", lines

    def compare_headers(self, got, want):
        got = [line[len("HTTP header> "):] if line.startswith("HTTP header> ") else "!" + line for line in got]
        expect(got and want, "no headers: got %r, want %r" % (got, want))
        expect_eq(got[0], want[0], "status line")

        def split(lines):
            return [(n.strip().lower(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
        g, w = split(got), split(want)
        expect_eq([n for n, _ in g], [n for n, _ in w], "header names")
        expect_eq([v for n, v in g if n != "date"], [v for n, v in w if n != "date"], "header values but Date")

    def http_headers(self):
        def http_():
            with HTTPServer() as web:
                url = "http://127.0.0.1:%d/" % web.port
                rc, out, err = run(self.prog("http_headers", url))
                who, want = self.want_headers(url)
            expect_eq((rc, err), (0, []), "exit code, stderr")
            self.compare_headers(out, want)
            return "%d lines, as %s shows them" % (len(out), who)
        self.check("http_headers http://127.0.0.1:PORT/ against Python http.server", http_)

        def refused():
            rc, out, err = run(self.prog("http_headers", "http://127.0.0.1:%d/" % unused_port()))
            expect_eq(rc, 1, "exit code")
            expect(len(err) == 1 and err[0].startswith("error: "), "stderr %r" % err)
            return err[0]
        self.check("http_headers to a closed port exits 1 with error:", refused)

        def bad_url():
            rc, out, err = run(self.prog("http_headers", "ftp://127.0.0.1/"))
            expect_eq((rc, len(err)), (2, 1), "exit code, stderr lines")
        self.check("http_headers ftp://… exits 2 with one stderr line", bad_url)

        if not self.tls:
            return

        def https(host):
            ca, _, _ = self.pki()
            with HTTPServer(self.server_ctx()) as web:
                url = "https://%s:%d/" % (host, web.port)
                rc, out, err = run(self.prog("http_headers", "--cafile", ca, url))
                who, want = self.want_headers(url, ca)
            expect_eq((rc, err), (0, []), "exit code, stderr")
            self.compare_headers(out, want)
            return "%d lines, as %s shows them" % (len(out), who)
        self.check("http_headers --cafile CA https://localhost:PORT/ (verified, SNI)", lambda: https("localhost"))
        self.check("http_headers --cafile CA https://127.0.0.1:PORT/ (verified by IP)", lambda: https("127.0.0.1"))

        def untrusted():
            with HTTPServer(self.server_ctx()) as web:
                rc, out, err = run(self.prog("http_headers", "https://localhost:%d/" % web.port))
            expect_eq(rc, 1, "exit code")
            expect(len(err) == 1 and err[0].startswith("error: "), "stderr %r" % err)
            return err[0]
        self.check("http_headers https:// without the test CA exits 1 with error:", untrusted)

    # ------------------------------------------------------ chat_server

    def chat_server(self, max_bytes=256 * 1024, total=24 << 20, readers=20, bound_kib=8192):
        """readers clients get every line while one client never reads; the server's
        memory stays within bound_kib of where it started. Returns the figures."""
        srv = start(self.prog("chat_server", "--port", "0", "--max", str(max_bytes)))
        port = int(serving_addr(srv).rsplit(":", 1)[1])
        socks = []

        def connect(rcvbuf=0):
            s = socket.socket()
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.settimeout(TIMEOUT)
            s.connect(("127.0.0.1", port))
            socks.append(s)
            return s
        try:
            slow = connect(rcvbuf=16384)
            fast = [connect() for _ in range(readers)]
            # Accepted in the order they connected: every other client is in the
            # room before the sender's first line is read.
            sender = connect()
            hashes, got = [hashlib.sha256() for _ in fast], [0] * len(fast)
            sent, sent_hash, lines, rng = [], hashlib.sha256(), 0, random.Random(15)

            def push(batch):
                sender.sendall(batch)
                sent.append(batch)
                sent_hash.update(batch)
                want = sum(len(b) for b in sent)
                for i, s in enumerate(fast):
                    while got[i] < want:
                        b = s.recv(min(65536, want - got[i]))
                        expect(b, "reader %d: EOF after %d of %d bytes" % (i, got[i], want))
                        hashes[i].update(b)
                        got[i] += len(b)
            push(b"hello\n")
            lines = 1
            start_kib = proc_status_kib(srv.proc.pid, "VmRSS")
            expect(start_kib is not None, "no VmRSS in /proc/%d/status" % srv.proc.pid)
            pushed = 6
            while pushed < total:
                batch = []
                for _ in range(48):
                    n = rng.randrange(40, 2000)
                    batch.append(b"%07d %s\n" % (lines, b"m" * n))
                    lines += 1
                batch = b"".join(batch)
                push(batch)
                pushed += len(batch)
            hwm = proc_status_kib(srv.proc.pid, "VmHWM")
            for i in range(len(fast)):
                expect(hashes[i].digest() == sent_hash.digest(), "reader %d: the bytes differ" % i)
            expect(hwm - start_kib < bound_kib, "server VmHWM %d KiB, %d KiB above its start (%d KiB) "
                   "with one client not reading: want < %d KiB" % (hwm, hwm - start_kib, start_kib, bound_kib))
            # The non-reader reads at last: whole lines in the order they were said,
            # each gap announced by a notice, and a notice before the next line.
            slow.settimeout(0.5)
            have = bytearray()
            try:
                while True:
                    b = slow.recv(65536)
                    if not b:
                        break
                    have += b
            except socket.timeout:
                pass
            slow.settimeout(TIMEOUT)
            sender.sendall(b"last\n")
            said = b"".join(sent).split(b"\n")[:-1] + [b"last"]
            got_lines, want = [], b"last\n"
            while not have.endswith(want):
                b = slow.recv(65536)
                expect(b, "the non-reader: EOF before the last line")
                have += b
            got_lines = bytes(have).split(b"\n")[:-1]
            at, skipped, gaps = 0, 0, 0
            for ln in got_lines:
                m = re.match(rb"\*\*\* (\d+) lines skipped$", ln)
                if m:
                    expect(at + int(m.group(1)) < len(said), "a notice skips past the end")
                    at += int(m.group(1))
                    skipped += int(m.group(1))
                    gaps += 1
                    continue
                expect(at < len(said) and ln == said[at],
                       "non-reader line %d is not line %d as said" % (got_lines.index(ln), at))
                at += 1
            expect_eq(at, len(said), "lines the non-reader got or was told it missed")
            expect(gaps > 0, "the non-reader missed no line: the cap was never reached")
        finally:
            for s in socks:
                s.close()
        expect_eq(srv.stop(), 0, "exit code after SIGTERM")
        expect_eq(srv.err, [], "stderr")
        out = srv.out[1:]
        expect(len(out) == 2 * gaps and all(
            a.startswith("Skipping 127.0.0.1:") and b.startswith("Resuming 127.0.0.1:") and
            b.endswith(" skipped lines") for a, b in zip(out[::2], out[1::2])), "stdout %r" % out)
        return "%d readers got %.1f MiB each; server VmHWM %d KiB (VmRSS %d KiB at the start); " \
               "the non-reader got %.1f MiB, %d lines skipped in %d gaps" % (
                   readers, pushed / 1048576.0, hwm, start_kib, len(have) / 1048576.0, skipped, gaps)

    def chat(self):
        self.check("chat_server --max 256 KiB: 20 readers get every line of 24 MiB, one never reads, "
                   "memory bounded", self.chat_server)

    # ------------------------------------------- wait_for_data, select_embed

    def others(self):
        def wait_for_data():
            rc, out, err = run(self.prog("wait_for_data"))
            expect_eq((rc, out, err), (0, ["Received: abc"], []), "exit code, stdout, stderr")
        self.check("wait_for_data prints Received: abc", wait_for_data)

        def select_embed(lines, tail=""):
            text = "".join(l + "\n" for l in lines) + tail
            with AsyncioServer(line_echo) as srv:
                rc, out, err = run(self.prog("select_embed", "127.0.0.1", str(srv.port)), stdin_text=text)
            want = ["reply: " + l for l in lines] + (["reply: " + tail] if tail else [])
            expect_eq((rc, err), (0, []), "exit code, stderr")
            expect(out == want, "stdout: %d lines, want %d (first difference: %r)" % (
                len(out), len(want), next(((a, b) for a, b in zip(out, want) if a != b), None)))
        self.check("select_embed: three stdin lines, three replies, exit 0",
                   lambda: select_embed(["one", "two", "three"]))
        self.check("select_embed: 20000 lines and a last line without newline",
                   lambda: select_embed(["line %d %s" % (i, "z" * (i % 200)) for i in range(20000)], "tail"))
        self.check("select_embed: empty stdin exits 0", lambda: select_embed([]))

        def refused():
            rc, out, err = run(self.prog("select_embed", "127.0.0.1", str(unused_port())), stdin_text="x\n")
            expect_eq(rc, 1, "exit code")
            expect(len(err) == 1 and err[0].startswith("error: "), "stderr %r" % err)
            return err[0]
        self.check("select_embed to a closed port exits 1 with error:", refused)

        def run_lines(argv, want_rc, want_out):
            rc, out, err = run(self.prog("run_lines", *argv))
            expect_eq((rc, out, err), (want_rc, want_out, []), "exit code, stdout, stderr")
        self.check("run_lines numbers a child's stdout lines and prints its exit status",
                   lambda: run_lines(["/bin/sh", "-c", "echo one; echo; printf 'three'; exit 3"], 3,
                                     ["1: one", "2: ", "3: three", "exit status 3"]))
        self.check("run_lines -- printf: 3000 lines through the pipe, exit 0",
                   lambda: run_lines(["--", "/bin/sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo l$i; i=$((i+1)); done"],
                                     0, ["%d: l%d" % (i + 1, i) for i in range(3000)] + ["exit status 0"]))
        self.check("run_lines: a child killed by SIGTERM prints -15 and exits 143",
                   lambda: run_lines(["/bin/sh", "-c", "echo x; kill -TERM $$"], 143,
                                     ["1: x", "exit status -15 (killed by signal 15)"]))

        def missing():
            rc, out, err = run(self.prog("run_lines", "/nonexistent/rill-no-such-program"))
            expect_eq((rc, out), (1, []), "exit code, stdout")
            expect(len(err) == 1 and err[0].startswith("error: spawn: "), "stderr %r" % err)
            return err[0]
        self.check("run_lines of a missing program exits 1 with error: spawn:", missing)


def main():
    args = [a for a in sys.argv[1:] if a != "--no-tls"]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    r = Runner(args[0], tls="--no-tls" not in sys.argv[1:])
    try:
        r.cli()
        r.echo_client()
        r.echo_server()
        r.http_headers()
        r.chat()
        r.others()
    finally:
        for p in started:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        shutil.rmtree(r.tmp, ignore_errors=True)
    print("%d passed, %d failed" % (r.passed, r.failed))
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
