#!/usr/bin/env python3
"""Writes the hand-made seeds of the fuzz targets into tests/fuzz/corpus/<target>/.

Usage: gen_seeds.py [--fuzz-tls BUILDDIR/tests/fuzz/fuzz_tls] [CORPUS_DIR]
       (CORPUS_DIR defaults to the corpus directory next to this script)

Each seed follows its target's input format (see the comment at the top of
tests/fuzz/fuzz_<target>.c). Seeds found by fuzzing are kept next to these, named
found-*. The TLS seeds are real handshake messages made with Python's ssl module
(OpenSSL) in memory; the certificate they carry is made for the occasion with the
openssl command in a temporary directory, which is removed: no private key is ever
written into the corpus. Without the openssl command the TLS flights are skipped.
With --fuzz-tls, the fuzz_tls binary also records real wolfSSL handshakes between a rill
client and a rill server (FUZZ_TLS_RECORD, see fuzz_tls.c): the rec-* seeds.
"""
import os
import shutil
import ssl
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def write(corpus, target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(data))


# ------------------------------------------------------------------- fuzz_read
# [flags][limit index][clen][control][payload]; limits[] in fuzz_read.c:
# 0:1 1:2 2:3 3:4 4:5 5:7 6:8 7:13 8:16 9:31 10:64 11:100 12:1000 13:4096 14:65536 15:default
READ, READ_ALL, READLINE, READEXACTLY, READUNTIL = 0, 1, 2, 3, 4


def rd_op(kind, n=0, sep=b"", flags=0):
    if kind == READ:
        return bytes([0 | flags, n])
    if kind == READ_ALL:
        return bytes([1 | flags])
    if kind == READLINE:
        return bytes([2 | flags])
    if kind == READEXACTLY:
        return bytes([3 | flags]) + struct.pack(">H", n)
    seplen = len(sep)
    code = 4 | ((seplen - 1) & 3) << 3 if seplen <= 4 else 4 | ((seplen - 9) & 3) << 3 | 0xC0
    return bytes([code]) + sep


def read_seed(flags, limit, ops, chunks, payload):
    ctrl = b"".join(ops) + bytes(chunks)
    return bytes([flags, limit, len(ctrl)]) + ctrl + payload


def read_seeds(corpus):
    s = lambda name, *a: write(corpus, "read", name, read_seed(*a))
    s("lines", 0, 15, [rd_op(READLINE)] * 3, [], b"line1\nline2\nline3\npartial")
    s("lines-chunked", 4, 15, [rd_op(READLINE)] * 4, [1, 2, 3], b"a\nbb\nccc\n\n")
    s("readline-limit7", 0, 5, [rd_op(READLINE)] * 4, [3],
      b"1234567\n12345678\nok\n12345678")
    s("readline-limit-nosep", 1, 3, [rd_op(READLINE)] * 3, [2, 9], b"abcdefghijklmnop\nq\n")
    s("readuntil-crlf", 0, 15, [rd_op(READUNTIL, sep=b"\r\n")] * 3, [5, 1],
      b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody")
    s("readuntil-split-sep", 4, 15, [rd_op(READUNTIL, sep=b"\r\n\r\n"), rd_op(READ_ALL)], [1],
      b"header: value\r\nother: x\r\n\r\ntail")
    s("readuntil-limit", 2, 4, [rd_op(READUNTIL, sep=b"::"), rd_op(READ, 100), rd_op(READUNTIL, sep=b"::")],
      [1, 1, 1], b"aaaaaaaaa::bb::cc")
    s("readuntil-long-sep", 0, 12, [rd_op(READUNTIL, sep=b"BOUNDARY-123")] * 2, [7],
      b"part one BOUNDARY-123part two BOUNDARY-123end")
    s("readuntil-eof", 1, 15, [rd_op(READUNTIL, sep=b"END")], [], b"no end marker here")
    s("readexactly", 0, 15, [rd_op(READEXACTLY, 5), rd_op(READEXACTLY, 0), rd_op(READEXACTLY, 100)], [2],
      b"hello world, short")
    s("read-n", 2, 15, [rd_op(READ, 5), rd_op(READ, 0), rd_op(READ, 255), rd_op(READ, 3)], [4, 8],
      b"line1line2line3")
    s("read-all-tiny-limit", 0, 0, [rd_op(READ_ALL)], [200, 201], bytes(range(256)) * 8)
    s("cancel-and-pause", 4, 10, [rd_op(READLINE, flags=0xF0), rd_op(READLINE, flags=0x60),
                                  rd_op(READ, 9, flags=0x70), rd_op(READLINE)], [3],
      b"first\nsecond\nthird\n")
    s("flow-control", 1, 0, [rd_op(READEXACTLY, 3000), rd_op(READLINE), rd_op(READ, 7)], [129, 130],
      b"x" * 2999 + b"\n" + b"y" * 500 + b"\nz")
    s("empty", 0, 15, [rd_op(READ, 1), rd_op(READLINE), rd_op(READUNTIL, sep=b"x"), rd_op(READEXACTLY, 1)],
      [], b"")
    s("select-backend", 2, 7, [rd_op(READLINE)] * 5, [1], b"a\n" * 3 + b"b" * 20 + b"\n")
    s("poll-backend", 1, 8, [rd_op(READUNTIL, sep=b"\n\n"), rd_op(READLINE)] * 2, [6],
      b"k: v\nk2: v2\n\nbody\n")
    s("binary-sep", 0x10, 9, [rd_op(READUNTIL, sep=b"\x00\xff")] * 3, [1, 4],
      b"\x01\x00\x00\xff\x02" * 5 + b"\x00")
    # flags 0x48: through TLS (rill client -> rill server)
    s("tls-lines", 0x48, 15, [rd_op(READLINE)] * 3, [1, 2, 3], b"line1\nline2\nline3\nrest")
    s("tls-limit-flow", 0x4C | 1, 3, [rd_op(READLINE)] * 4 + [rd_op(READ, 5)], [0],
      b"12345\nab\nabcdefghijk\nxyz\n" + b"q" * 3000 + b"\n")
    s("tls-readexactly-records", 0x4A, 0, [rd_op(READEXACTLY, 1200), rd_op(READUNTIL, sep=b"END!")],
      [200, 201, 202], b"z" * 2000 + b"END!" + b"tail")


# ------------------------------------------------------------------ fuzz_write
# [flags][op...]; opcodes in fuzz_write.c run_op()
def write_seeds(corpus):
    w = lambda name, data: write(corpus, "write", name, data)
    W, WCB, LINES, DRAIN, EOF, CLOSE, ABORT, RUN, PAUSE, RSIZE, GONE, LIMITS, EMPTY, WAITC, QUERY = range(15)
    w("write-close", [0, W, 50, WCB, 100, DRAIN, RUN, 3, CLOSE])
    w("big-writes-small-buffers", [4 | 0x70, 0x31, 255, 0x31, 255, DRAIN, DRAIN, RUN, 15, 15, 4, 0, CLOSE])
    w("paused-peer", [4, PAUSE, 0x71, 250, DRAIN, RUN, 15, PAUSE, RUN, 15, DRAIN, QUERY, CLOSE])
    w("writelines", [1, LINES | 0x70, 1, 2, 3, 4, 5, 6, 7, 8, LINES | 0x80, 201, DRAIN, CLOSE])
    w("write-eof", [2, W, 77, EOF, EOF, W, 5, DRAIN, RUN, 5, WAITC, CLOSE])
    w("abort", [4, 0x31, 255, DRAIN, ABORT | 0x10, WAITC])
    w("abort-at-end", [8 | 4, 0x71, 255, DRAIN, RUN, 1])
    w("peer-gone", [4, W, 50, GONE | 0xA0, WCB, 255, DRAIN, RUN, 10, WAITC, CLOSE])
    w("peer-gone-while-flushing", [4, 0x71, 255, GONE | 0xA0, CLOSE, WAITC])
    w("watermarks", [0, LIMITS, 10, 5, 0x31, 255, DRAIN, LIMITS, 0, 0, DRAIN, LIMITS, 1, 200, RUN, 15, CLOSE])
    w("close-twice", [0, W, 10, CLOSE, CLOSE | 0x10, W, 1, DRAIN, EOF])
    w("empty-writes", [2, EMPTY, EMPTY | 0x10, DRAIN, RSIZE, 1, W, 200, RUN, 15, CLOSE])
    w("read-size-1", [0x04, RSIZE, 1, 0x71, 255, DRAIN, RUN, 15, RUN, 15, CLOSE])
    w("large", [0, 15, 200, 0, 15 | 0x10, 100, 0, DRAIN, CLOSE])
    w("close-timeout", [4, PAUSE, 0x71, 255, 0x71, 255, DRAIN, QUERY | 0x10, CLOSE, RUN, 15, RUN, 15])
    w("close-timeout-flushes", [4, 0x71, 255, DRAIN, QUERY | 0xF0, CLOSE, WAITC])
    # ABORT | 0x20 (| 0x08): the (1 [+1] + next byte % 8)-th library allocation fails
    w("alloc-fail-write", [4, W, 10, ABORT | 0x20, 0, 0x71, 255, DRAIN, RUN, 15, CLOSE])
    w("alloc-fail-drain-close", [4, ABORT | 0x28, 1, 0x31, 255, 0x31, 255, DRAIN, DRAIN, CLOSE, WAITC])


# -------------------------------------------------------------------- fuzz_dns
# [flags][extra][lenA: 2][A reply][AAAA reply]; with the echo mode (default) a reply is
# its 12-byte header, then the query's question is put in, then the rest (records).
def hdr(flags=0x8180, qd=1, an=0, ns=0, ar=0):
    return struct.pack(">HHHHHH", 0, flags, qd, an, ns, ar)


def rr(rtype, rdata, name=b"\xc0\x0c", ttl=60):
    return name + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


def a(ip):
    return rr(1, bytes(ip))


def aaaa(last=1):
    return rr(28, bytes(15) + bytes([last]))


def dns_seed(flags, extra, ra, raaaa):
    return bytes([flags, extra]) + struct.pack(">H", len(ra)) + ra + raaaa


def dns_seeds(corpus):
    d = lambda name, *args: write(corpus, "dns", name, dns_seed(*args))
    d("both", 0, 0, hdr(an=1) + a([127, 0, 0, 1]), hdr(an=1) + aaaa())
    d("a-only", 0, 0, hdr(an=2) + a([127, 0, 0, 1]) + a([127, 0, 0, 2]), hdr())
    d("aaaa-only", 1, 0, hdr(), hdr(an=1) + aaaa())
    d("nxdomain", 0, 0, hdr(0x8183), hdr(0x8183))
    d("servfail", 2, 0, hdr(0x8182), hdr(0x8182))
    d("refused", 0, 0, hdr(0x8185), hdr(0x8185))
    d("truncated-tc", 0, 0, hdr(0x8380), hdr(0x8380))
    d("family-inet", 4, 0, hdr(an=1) + a([127, 0, 0, 1]), b"")
    d("family-inet6", 8, 0, b"", hdr(an=1) + aaaa())
    d("cname-chain", 0, 0,
      hdr(an=3) + rr(5, b"\x01b\xc0\x0c") + rr(5, b"\x01c\xc0\x0c", name=b"\xc0\x27") + a([127, 0, 0, 1]),
      hdr(an=1) + rr(5, b"\x01x\x00"))
    d("pointer-loop", 0, 0, hdr(an=1) + rr(1, b"\x7f\x00\x00\x01", name=b"\xc0\x1b"),
      hdr(an=1) + rr(28, bytes(16), name=b"\xc0\x0c\xc0\x0c"))
    d("many-addresses", 0, 0x10, hdr(an=70) + b"".join(a([127, 0, 0, i]) for i in range(70)),
      hdr(an=70) + b"".join(aaaa(i) for i in range(70)))
    d("bad-rdlength", 0, 0, hdr(an=1) + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x10\x7f\x00",
      hdr(an=1) + b"\xc0\x0c\x00\x1c\x00\x01\x00\x00\x00\x3c\xff\xff")
    d("counts-lie", 0, 0, hdr(an=9, ns=9, ar=9) + a([127, 0, 0, 1]), hdr(an=0xffff))
    d("short-header", 0, 0, b"\x00\x00\x81", b"")
    d("raw-garbage", 0x30, 0, b"\x00\x00\x81\x80\x00\x01\x00\x01garbage", b"\xff" * 40)
    d("empty-datagrams", 0x30, 0, b"", b"")
    d("cancel", 0x40, 2, hdr(an=1) + a([127, 0, 0, 1]), hdr(an=1) + aaaa())
    d("timeout-option", 0, 0x23, hdr(an=1) + a([127, 0, 0, 1]), b"\x00")
    d("alloc-fail", 0x80, 3, hdr(an=1) + a([127, 0, 0, 1]), hdr(an=1) + aaaa())
    d("alloc-fail-later", 0x80, 12, hdr(an=1) + a([127, 0, 0, 1]), hdr(an=1) + aaaa())
    d("select-sequential", 2, 0x10, hdr(an=2) + a([127, 0, 0, 1]) + a([127, 0, 0, 3]), hdr(an=1) + aaaa())


# -------------------------------------------------------------------- fuzz_tls
# [flags][4 chunk sizes][bytes]; flags bit 2: rill is the client, else the server.
def tls_handshake_bytes(tmp):
    """ClientHellos and the first server flights, made in memory with Python's ssl."""
    out = {}
    key, crt = os.path.join(tmp, "k.pem"), os.path.join(tmp, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "3650", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for name, maxv in (("13", ssl.TLSVersion.TLSv1_3), ("12", ssl.TLSVersion.TLSv1_2)):
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cctx.check_hostname = False
        cctx.verify_mode = ssl.CERT_NONE
        cctx.maximum_version = maxv
        cctx.set_alpn_protocols(["h2", "http/1.1"])
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(crt, key)
        sctx.maximum_version = maxv
        ci, co, si, so = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
        c = cctx.wrap_bio(ci, co, server_hostname="localhost")
        s = sctx.wrap_bio(si, so, server_side=True)
        try:
            c.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = co.read()
        out["clienthello-" + name] = hello
        si.write(hello)
        try:
            s.do_handshake()
        except ssl.SSLWantReadError:
            pass
        out["serverflight-" + name] = so.read()
    return out


def tls_seeds(corpus):
    t = lambda name, flags, chunks, data: write(corpus, "tls", name, bytes([flags]) + bytes(chunks) + data)
    alert = b"\x15\x03\x03\x00\x02\x02\x28"
    t("garbage-to-server", 0, [0, 0, 0, 0], b"\x00" * 16 + b"GET / HTTP/1.1\r\n\r\n")
    t("alert-to-server", 0x10, [0, 0, 0, 0], alert)
    t("alert-to-client", 0x04, [0, 0, 0, 0], alert)
    t("huge-record-length", 0x01, [3, 3, 3, 3], b"\x16\x03\x01\xff\xff" + b"\x01" * 64)
    t("sslv2-hello", 0x02, [0, 0, 0, 0], b"\x80\x2e\x01\x00\x02\x00\x15" + bytes(46))
    t("timeout-no-eof", 0x40, [0, 0, 0, 0], b"\x16\x03\x01")
    t("client-timeout-no-eof", 0x44, [0, 0, 0, 0], b"")
    # flags bit 7: the (1 + last chunk size % 32)-th library allocation fails
    t("alloc-fail-server", 0x80 | 0x20, [10, 0, 0, 2], b"\x16\x03\x01\x00\x05hello")
    t("alloc-fail-client", 0x80 | 0x04, [0, 0, 0, 6], alert)
    if shutil.which("openssl") is None:
        print("gen_seeds.py: no openssl command: TLS handshake seeds skipped", file=sys.stderr)
        return
    tmp = tempfile.mkdtemp(prefix="rill-seeds-")
    try:
        hs = tls_handshake_bytes(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for v in ("13", "12"):
        ch, sf = hs["clienthello-" + v], hs["serverflight-" + v]
        t("clienthello-tls" + v, 0x00, [0, 0, 0, 0], ch)
        t("clienthello-tls" + v + "-mtls-chunked", 0x08 | 0x01, [5, 1, 60, 0], ch)
        t("clienthello-tls" + v + "-prebuffered", 0x20 | 0x02, [10, 0, 0, 0], ch)
        t("serverflight-tls" + v + "-verify", 0x04, [0, 0, 0, 0], sf)
        t("serverflight-tls" + v + "-noverify", 0x04 | 0x08 | 0x10, [7, 200, 1, 0], sf)


def main():
    args = sys.argv[1:]
    fuzz_tls = None
    if len(args) >= 2 and args[0] == "--fuzz-tls":
        fuzz_tls = args[1]
        args = args[2:]
    corpus = args[0] if args else os.path.join(HERE, "corpus")
    read_seeds(corpus)
    write_seeds(corpus)
    dns_seeds(corpus)
    tls_seeds(corpus)
    if fuzz_tls is not None:
        env = dict(os.environ, FUZZ_TLS_RECORD=os.path.join(corpus, "tls"))
        subprocess.run([fuzz_tls, os.devnull], env=env, check=True)
    for target in sorted(os.listdir(corpus)):
        files = os.listdir(os.path.join(corpus, target))
        size = sum(os.path.getsize(os.path.join(corpus, target, f)) for f in files)
        print("%s: %d seeds, %d bytes" % (target, len(files), size))


if __name__ == "__main__":
    main()
